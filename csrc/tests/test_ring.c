/* The ring ends on a heap region (not a memfd: ASan sees overflows of a heap
 * buffer of exactly 768 + capacity bytes, never of a mapping): placement and
 * wrap-around at every offset, SKIP handling, reservations, publication
 * batching, release cursors, the wake words, the closed state, and every
 * fatal case of ABI.md ("What our consumer checks") on both sides.
 * Single-threaded: the test plays the peer by writing the shared words
 * itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "testring.h"
#include "tachyon/tachyon.h"

#define CAP 1024u

static ring ring_new(uint64_t cap)
{
	return ring_new_at(cap, 0);
}

static void ring_free(ring *r)
{
	free(r->mem);
	r->mem = NULL;
}

/* A hand-made slot header at physical offset off. */
static void put_header(ring *r, uint64_t off, uint32_t size, uint32_t type_id, uint32_t reserved)
{
	struct tachyon_slot_header *h = (struct tachyon_slot_header *)(void *)(r->data + off);
	h->size = size;
	h->type_id = type_id;
	h->reserved_size = reserved;
}

static uint8_t pattern(uint64_t seed, size_t i)
{
	return (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* reserve + fill + commit */
static int send_msg(tachyon_producer *p, size_t n, uint32_t type_id, uint64_t seed)
{
	void *buf;
	int rc = tachyon_producer_try_reserve(p, n, &buf);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++)
		((uint8_t *)buf)[i] = pattern(seed, i);
	return tachyon_producer_commit(p, n, type_id);
}

static int payload_ok(const tachyon_msg *m, size_t n, uint64_t seed)
{
	if (m->size != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (m->data[i] != pattern(seed, i))
			return 0;
	return 1;
}

/* Whether attach_both's consumer reads position stamps. Off, it reads by
 * head alone, as it reads a 0.5.1 producer's ring (our producer stamps
 * anyway; the consumer does not look). main runs the tests whose promises
 * hold either way in both modes; test_stamps.c covers what differs. */
static int stamp_mode;

/* Attach both ends to r; REQUIRE success. */
static void attach_both(ring *r, tachyon_producer *p, tachyon_consumer *c)
{
	REQUIRE(tachyon_producer_attach(p, r->mem, r->size) == 0);
	if (!stamp_mode)
		r->hdr->producer_stamps = 0;
	REQUIRE(tachyon_consumer_attach(c, r->mem, r->size) == 0);
	CHECK_EQ(c->stamps, stamp_mode);
}

/* ------------------------------------------------------------------------ */

static void test_attach(void)
{
	tachyon_producer p;
	tachyon_consumer c;
	ring r = ring_new(CAP);
	CHECK_EQ(tachyon_producer_attach(&p, r.mem, r.size), 0);
	CHECK_EQ(tachyon_consumer_attach(&c, r.mem, r.size), 0);
	CHECK_EQ(tachyon_producer_attach(&p, r.mem, r.size - 1), -TACHYON_EHANDSHAKE);
	CHECK_EQ(tachyon_consumer_attach(&c, NULL, r.size), -TACHYON_EHANDSHAKE);
	CHECK_EQ(tachyon_consumer_attach(&c, r.mem, 100), -TACHYON_EHANDSHAKE);

	/* header fields, one at a time */
	struct {
		size_t off;
		uint32_t value;
		int expect;
	} cases[] = {
		{0, 0x54414349u, -TACHYON_EHANDSHAKE},            /* magic */
		{4, 3, -TACHYON_EHANDSHAKE},                      /* version */
		{4, 5, -TACHYON_EHANDSHAKE},
		{8, 1000, -TACHYON_EHANDSHAKE},                   /* not a power of two */
		{8, 32, -TACHYON_EHANDSHAKE},                     /* below 64 */
		{8, 0, -TACHYON_EHANDSHAKE},
		{8, 2048, -TACHYON_EHANDSHAKE},                   /* larger than the region */
		{8, 512, 0},                                      /* smaller: fine */
		{12, 32, -TACHYON_EHANDSHAKE},                    /* alignment */
		{12, 128, -TACHYON_EHANDSHAKE},
		{16, TACHYON_STATE_UNINITIALIZED, -TACHYON_EHANDSHAKE},
		{16, TACHYON_STATE_INITIALIZING, -TACHYON_EHANDSHAKE},
		{16, TACHYON_STATE_FATAL, -TACHYON_EHANDSHAKE},
		{16, 7, -TACHYON_EHANDSHAKE},
		{16, TACHYON_STATE_CLOSED, 0},                    /* closed: attach, drain */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ring b = ring_new(CAP);
		memcpy(b.mem + cases[i].off, &cases[i].value, 4);
		CHECK_EQ(tachyon_producer_attach(&p, b.mem, b.size), cases[i].expect);
		CHECK_EQ(tachyon_consumer_attach(&c, b.mem, b.size), cases[i].expect);
		ring_free(&b);
	}

	/* starting indices: tail <= head <= tail + capacity, multiples of 64 */
	struct {
		uint64_t head, tail;
		int expect;
	} idx[] = {
		{0, 0, 0},
		{CAP, 0, 0},
		{CAP + 64, 64, 0},
		{100, 0, -TACHYON_ECORRUPT},
		{128, 32, -TACHYON_ECORRUPT},
		{0, 64, -TACHYON_ECORRUPT},          /* tail ahead of head */
		{CAP + 64, 0, -TACHYON_ECORRUPT},    /* more than capacity in use */
		{64, UINT64_MAX - 63, 0},            /* across 2^64: 128 bytes in use */
	};
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
		for (int side = 0; side < 2; side++) {
			ring b = ring_new(CAP);
			b.hdr->head = idx[i].head;
			b.hdr->tail = idx[i].tail;
			int rc = side ? tachyon_consumer_attach(&c, b.mem, b.size)
			              : tachyon_producer_attach(&p, b.mem, b.size);
			CHECK_EQ(rc, idx[i].expect);
			if (idx[i].expect == -TACHYON_ECORRUPT)
				CHECK_EQ(b.hdr->state, TACHYON_STATE_FATAL);
			ring_free(&b);
		}
	}
	ring_free(&r);
}

/* Every head offset x every slot size: placed in place, wrapped behind a
 * SKIP, or refused at once, exactly as the placement rule says. */
static void test_wrap_every_offset(void)
{
	for (uint64_t s = 0; s < CAP; s += 64) {
		for (uint64_t slot = 64; slot <= CAP; slot += 64) {
			/* a base far from 0 so the counters are not physical offsets */
			uint64_t base = 7 * CAP;
			ring r = ring_new_at(CAP, base + s);
			tachyon_producer p;
			tachyon_consumer c;
			attach_both(&r, &p, &c);
			size_t n = slot - 64 - (slot > 64 ? 5 : 0); /* rounds up to slot */
			int wraps = slot > CAP - s;
			int fits = !wraps || slot <= s;
			CHECK_EQ(tachyon_producer_fits(&p, n), fits);
			void *buf;
			int rc = tachyon_producer_try_reserve(&p, n, &buf);
			if (!fits) {
				CHECK_EQ(rc, -TACHYON_ENEVERFITS);
				ring_free(&r);
				continue;
			}
			CHECK_EQ(rc, 0);
			if (rc) {
				ring_free(&r);
				continue;
			}
			uint64_t slot_off = wraps ? 0 : s;
			CHECK(buf == r.data + slot_off + 64);
			/* a flush with the reservation open publishes nothing past
			 * the padding */
			CHECK_EQ(tachyon_producer_flush(&p), 0);
			CHECK_EQ(r.hdr->head, base + s);
			memset(buf, 0x5A, n);
			CHECK_EQ(tachyon_producer_commit(&p, n, 77), 0);
			CHECK_EQ(tachyon_producer_flush(&p), 0);
			uint64_t pos = wraps ? base + CAP : base + s;
			CHECK_EQ(r.hdr->head, pos + slot);
			if (wraps) {
				/* SKIP: size SKIP, the other bytes zero but for
				 * the position stamp (ours) */
				struct tachyon_slot_header sk;
				memcpy(&sk, r.data + s, sizeof sk);
				CHECK_EQ(sk.size, TACHYON_SKIP);
				CHECK_EQ(sk.pos_stamp, TACHYON_POS_STAMP(base + s));
				int zero = 1;
				for (int i = 4; i < 64; i++)
					zero &= (i >= 24 && i < 32) || r.data[s + i] == 0;
				CHECK(zero);
			}
			tachyon_msg m;
			CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
			CHECK_EQ(m.pos, pos);
			CHECK_EQ(m.end, pos + slot);
			CHECK_EQ(m.size, n);
			CHECK_EQ(m.type_id, 77);
			CHECK(tachyon_msg_aligned_data(&m) == r.data + slot_off + 64);
			/* a small payload taken by its stamp: the inline copy */
			CHECK(m.data == r.data + slot_off +
			                        (stamp_mode && n <= TACHYON_INLINE_MAX ? 32 : 64));
			CHECK(n == 0 || (m.data[0] == 0x5A && m.data[n - 1] == 0x5A));
			CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
			CHECK_EQ(tachyon_consumer_release_to(&c, pos + slot, 1), 0);
			tachyon_consumer_publish(&c);
			CHECK_EQ(r.hdr->tail, pos + slot);
			CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
			ring_free(&r);
		}
	}
}

/* Many laps of mixed sizes, counters starting just below 2^64 so they wrap
 * during the run: nothing changes (every comparison is a difference). */
static void test_many_laps(void)
{
	ring r = ring_new_at(CAP, (uint64_t)0 - 2 * CAP - 64);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	uint64_t rng = 12345, sent = 0, got = 0;
	for (int round = 0; round < 400; round++) {
		size_t n = (size_t)(test_rand(&rng) % (CAP / 2 - 64 + 1));
		int rc = send_msg(&p, n, (uint32_t)sent, sent);
		if (rc == -EAGAIN) {
			/* drain everything, then it must fit */
			tachyon_msg m;
			while ((rc = tachyon_consumer_try_peek(&c, &m)) == 0) {
				CHECK_EQ(m.type_id, (uint32_t)got);
				got++;
				CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
			}
			CHECK_EQ(rc, -EAGAIN);
			rc = send_msg(&p, n, (uint32_t)sent, sent);
		}
		CHECK_EQ(rc, 0);
		sent++;
		if (round % 3 == 0)
			CHECK_EQ(tachyon_producer_flush(&p), 0);
	}
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	tachyon_msg m;
	int rc;
	while ((rc = tachyon_consumer_try_peek(&c, &m)) == 0) {
		CHECK_EQ(m.type_id, (uint32_t)got);
		got++;
		CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	}
	CHECK_EQ(rc, -EAGAIN);
	CHECK_EQ(got, sent);
	CHECK(r.hdr->head < (1u << 30)); /* it did wrap at 2^64 */
	CHECK_EQ(r.hdr->tail, r.hdr->head);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	ring_free(&r);
}

/* A lone SKIP (padding ending exactly at head, as a 0.5.1 producer may
 * publish) is an empty ring: nothing read at offset 0, no error. */
static void test_lone_skip(void)
{
	tachyon_producer p;
	tachyon_consumer c;
	tachyon_msg m;

	ring r = ring_new_at(CAP, 512);
	put_header(&r, 512, TACHYON_SKIP, 0, 0);
	put_header(&r, 0, 5, 9, 128); /* stale, valid-looking: must not appear */
	r.hdr->head = CAP;
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	CHECK_EQ(r.hdr->tail, CAP); /* the padding was freed and published */
	/* our producer continues at offset 0 */
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	CHECK_EQ(send_msg(&p, CAP - 64, 3, 3), 0); /* the whole ring: tail == head */
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.pos, CAP);
	CHECK(payload_ok(&m, CAP - 64, 3));
	ring_free(&r);

	/* The same with a slot before the SKIP still pinned: the padding is
	 * freed together with that slot. */
	r = ring_new_at(CAP, 448);
	put_header(&r, 448, 0, 4, 64);
	put_header(&r, 512, TACHYON_SKIP, 0, 0);
	put_header(&r, 0, 5, 9, 128);
	r.hdr->head = CAP;
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.pos, 448);
	CHECK_EQ(m.type_id, 4);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(r.hdr->tail, 448);
	CHECK_EQ(tachyon_consumer_release_to(&c, 512, 1), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(r.hdr->tail, CAP);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	/* and a message after the padding is found once published */
	put_header(&r, 0, 5, 9, 128);
	r.hdr->head = CAP + 128;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.pos, CAP);
	CHECK_EQ(m.size, 5);
	ring_free(&r);

	/* A SKIP followed by a published slot: both cursors pass the padding
	 * when nothing is pinned; with a pinned slot release_to(end) covers it. */
	r = ring_new_at(CAP, 448);
	put_header(&r, 448, 0, 4, 64);
	put_header(&r, 512, TACHYON_SKIP, 0, 0);
	put_header(&r, 0, 0, 5, 64);
	r.hdr->head = CAP + 64;
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	tachyon_msg a, b;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &a), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &b), 0);
	CHECK_EQ(b.pos, CAP);
	CHECK_EQ(b.end, CAP + 64);
	CHECK_EQ(tachyon_consumer_release_to(&c, a.end, 1), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, b.pos, 0), 0); /* past the padding: a boundary */
	CHECK_EQ(tachyon_consumer_release_to(&c, b.end, 1), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(r.hdr->tail, CAP + 64);
	ring_free(&r);
}

static void test_zero_length(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	for (int i = 0; i < 40; i++) { /* 40 x 64 bytes: wraps 2.5 times */
		CHECK_EQ(send_msg(&p, 0, (uint32_t)i, 0), 0);
		CHECK_EQ(tachyon_producer_flush(&p), 0);
		tachyon_msg m;
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
		CHECK_EQ(m.size, 0);
		CHECK_EQ(m.type_id, (uint32_t)i);
		CHECK_EQ(m.end - m.pos, 64);
		CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
		/* fewer than 32 releases: only finding the ring empty publishes
		 * the tail, and without that the producer would stall */
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
		CHECK_EQ(r.hdr->tail, m.end);
	}
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	ring_free(&r);
}

static void test_max_payload(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	void *buf;
	/* anything larger than capacity - 64, including absurd sizes */
	CHECK_EQ(tachyon_producer_try_reserve(&p, CAP - 63, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_try_reserve(&p, SIZE_MAX, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_try_reserve(&p, SIZE_MAX - 62, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_try_reserve(&p, (size_t)1 << 40, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_fits(&p, SIZE_MAX), 0);
	/* the whole ring on a fresh ring */
	CHECK_EQ(send_msg(&p, CAP - 64, 1, 1), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	tachyon_msg m;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK(payload_ok(&m, CAP - 64, 1));
	CHECK_EQ(m.end - m.pos, CAP);
	/* the ring is full and the next one could fit: -EAGAIN */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 0, &buf), -EAGAIN);
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	/* move to offset capacity/2 */
	CHECK_EQ(send_msg(&p, CAP / 2 - 64, 2, 2), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	/* half the ring unread, and a slot that never fits at offset
	 * capacity/2: -TACHYON_ENEVERFITS at once, not -EAGAIN */
	CHECK_EQ(tachyon_producer_fits(&p, CAP - 64), 0);
	CHECK_EQ(tachyon_producer_try_reserve(&p, CAP - 64, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_try_reserve(&p, CAP / 2 + 1 - 64, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_producer_fits(&p, CAP / 2 - 64), 1);
	/* still never on an empty ring; a slot of capacity/2 fits */
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(tachyon_producer_try_reserve(&p, CAP - 64, &buf), -TACHYON_ENEVERFITS);
	CHECK_EQ(send_msg(&p, CAP / 2 - 64, 3, 3), 0);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	ring_free(&r);
}

static void test_full_ring(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	int sent = 0;
	void *buf;
	while (send_msg(&p, 100, 0, 0) == 0) /* 192-byte slots */
		sent++;
	CHECK_EQ(sent, CAP / 192);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 100, &buf), -EAGAIN);
	/* -EAGAIN published head first */
	CHECK_EQ(r.hdr->head, (uint64_t)sent * 192);
	/* a small one still fits in the 64 bytes left */
	CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 0, &buf), -EAGAIN);
	CHECK_EQ(r.hdr->head, CAP);
	/* freeing one slot is seen only once the consumer publishes it */
	tachyon_msg m;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 100, &buf), -EAGAIN);
	tachyon_consumer_publish(&c);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 100, &buf), 0);
	CHECK(buf == r.data + 64);
	tachyon_producer_rollback(&p);
	ring_free(&r);
}

static void test_rollback(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	void *buf, *buf2;
	CHECK_EQ(tachyon_producer_commit(&p, 0, 0), -EINVAL); /* no reservation */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 10, &buf), 0);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 10, &buf2), -EBUSY);
	CHECK_EQ(tachyon_producer_commit(&p, 11, 0), -EINVAL); /* more than reserved */
	CHECK_EQ(tachyon_producer_commit(&p, 10, 0), 0);       /* still open after -EINVAL */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 10, &buf), 0);
	tachyon_producer_rollback(&p);
	tachyon_producer_rollback(&p); /* no-op without a reservation */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 10, &buf2), 0);
	CHECK(buf == buf2);
	tachyon_producer_rollback(&p);

	/* a bigger reservation can follow a rollback (the slot does not stick) */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 800, &buf2), 0);
	CHECK(buf2 == r.data + 128 + 64); /* after the 128-byte slot committed above */
	tachyon_producer_rollback(&p);
	ring_free(&r);

	/* rollback after wrap padding: head goes back before the padding */
	r = ring_new_at(CAP, 5 * CAP - 128);
	attach_both(&r, &p, &c);
	CHECK_EQ(tachyon_producer_try_reserve(&p, 200, &buf), 0); /* 320 bytes: wraps */
	CHECK(buf == r.data + 64);
	memset(r.data + CAP - 128, 0xCD, 128); /* what the SKIP slot holds */
	tachyon_producer_rollback(&p);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->head, 5 * CAP - 128);
	CHECK_EQ(r.data[CAP - 128], 0xCD); /* no SKIP written for a rolled-back slot */
	/* the next small reservation goes where the padding would have been */
	CHECK_EQ(tachyon_producer_try_reserve(&p, 10, &buf), 0);
	CHECK(buf == r.data + CAP - 128 + 64);
	CHECK_EQ(tachyon_producer_commit(&p, 10, 1), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->head, 5 * CAP);
	tachyon_msg m;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.pos, 5 * CAP - 128);
	CHECK_EQ(m.type_id, 1);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	ring_free(&r);
}

/* commit writes size, type_id and reserved_size and nothing else of the
 * header; the payload bytes past the committed size are untouched too. */
static void test_header_bytes(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	void *buf;
	CHECK_EQ(tachyon_producer_try_reserve(&p, 100, &buf), 0);
	CHECK_EQ(tachyon_producer_commit(&p, 3, 0x00010002u), 0);
	struct tachyon_slot_header h;
	memcpy(&h, r.data, sizeof(h));
	CHECK_EQ(h.size, 3);
	CHECK_EQ(h.type_id, 0x00010002u);
	CHECK_EQ(h.reserved_size, 192);
	/* ours: the position stamp, the inline copy of the 3 payload bytes
	 * (as the caller left them), and the next header's stamp cleared */
	CHECK_EQ(h.pos_stamp, TACHYON_POS_STAMP(0));
	CHECK(h.inline_payload[0] == 0xAB && h.inline_payload[2] == 0xAB);
	uint64_t next_stamp;
	memcpy(&next_stamp, r.data + 192 + 24, 8);
	CHECK_EQ(next_stamp, 0);
	int untouched = 1;
	for (int i = 12; i < 64 + 100; i++)
		untouched &= (i >= 24 && i < 35) || r.data[i] == 0xAB;
	CHECK(untouched);
	ring_free(&r);
}

static void test_batch_peek(void)
{
	ring r = ring_new(CAP * 4);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	tachyon_msg ms[16];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), -EAGAIN);
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 0), -EINVAL);
	for (uint32_t i = 0; i < 10; i++)
		CHECK_EQ(send_msg(&p, i * 10, i, i), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 4), 4);
	for (uint32_t i = 0; i < 4; i++) {
		CHECK_EQ(ms[i].type_id, i);
		CHECK(payload_ok(&ms[i], i * 10, i));
	}
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms + 4, 12), 6);
	for (uint32_t i = 4; i < 10; i++) {
		CHECK_EQ(ms[i].type_id, i);
		CHECK(payload_ok(&ms[i], i * 10, i));
		CHECK_EQ(ms[i].pos, ms[i - 1].end);
	}
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), -EAGAIN);
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[9].end, 10), 0);
	ring_free(&r);
}

/* release_to: a slot boundary between the release and the read cursor; a
 * pinned slot holds tail while reading continues. */
static void test_release_cursor(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	for (uint32_t i = 0; i < 3; i++)
		CHECK_EQ(send_msg(&p, 100, i, i), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	tachyon_msg m[3];
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m[i]), 0);
	/* m[0] pinned: tail stays at its start while read is at m[2].end */
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].pos, 0), 0); /* no-op: allowed */
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].pos + 1, 1), -EINVAL);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].pos + 32, 1), -EINVAL);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[2].end + 64, 1), -EINVAL); /* past read */
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[0]), -EAGAIN); /* empty: publishes */
	CHECK_EQ(r.hdr->tail, 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[1].end, 2), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].end, 1), -EINVAL); /* backwards */
	CHECK_EQ(tachyon_consumer_release_to(&c, UINT64_MAX - 63, 1), -EINVAL);
	tachyon_consumer_publish(&c);
	CHECK_EQ(r.hdr->tail, m[1].end);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[2].end, 1), 0);
	tachyon_consumer_publish(&c);
	CHECK_EQ(r.hdr->tail, m[2].end);
	ring_free(&r);
}

/* head published every 32 commits, tail every 32 released messages, and
 * tail whenever the consumer finds the ring empty. A consumer reading
 * stamps works through the backlog batching too: each slot it takes has the
 * next one stamped behind it, so no release but the last is caught up. */
static void test_publication(void)
{
	ring r = ring_new(1u << 16);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	for (int i = 1; i <= 31; i++)
		CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
	CHECK_EQ(r.hdr->head, 0);
	tachyon_msg m;
	if (!stamp_mode) /* (stamped slots are there before head says so) */
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
	CHECK_EQ(r.hdr->head, 32 * 64);
	for (int i = 1; i <= 31; i++)
		CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
	CHECK_EQ(r.hdr->head, 32 * 64);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->head, 63 * 64);
	/* consumer: 31 releases publish nothing, the 32nd does */
	for (int i = 1; i <= 31; i++) {
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
		CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	}
	CHECK_EQ(r.hdr->tail, 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	CHECK_EQ(r.hdr->tail, 32 * 64);
	/* a batch release counts its messages */
	tachyon_msg ms[31];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 31), 31);
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[29].end, 30), 0);
	CHECK_EQ(r.hdr->tail, 32 * 64);
	/* ... not yet 32, but this release caught up with the head seen */
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[30].end, 1), 0);
	CHECK_EQ(r.hdr->tail, 63 * 64);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN);
	CHECK_EQ(r.hdr->tail, 63 * 64);
	ring_free(&r);
}

/* The display words (ABI.md, "Traffic counters"): both sides' counters move
 * only when head or tail is published, and the consumer's read cursor shows
 * what a pinned slot holds back, also when tail itself cannot move. */
static void test_traffic_counters(void)
{
	ring r = ring_new(1u << 16);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	for (int i = 0; i < 31; i++)
		CHECK_EQ(send_msg(&p, 10, 0, (uint64_t)i), 0);
	CHECK_EQ(r.hdr->sent_messages, 0); /* nothing published yet */
	CHECK_EQ(send_msg(&p, 10, 0, 31), 0);
	CHECK_EQ(r.hdr->sent_messages, 32);
	CHECK_EQ(r.hdr->sent_bytes, 320);
	CHECK_EQ(send_msg(&p, 100, 0, 32), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->sent_messages, 33);
	CHECK_EQ(r.hdr->sent_bytes, 420);
	/* Read two, pin the first, release the second behind it. */
	tachyon_msg a, b, m;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &a), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &b), 0);
	CHECK_EQ(r.hdr->received_messages, 0);
	CHECK_EQ(r.hdr->consumer_read, 0);
	for (int i = 2; i < 33; i++) {
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	}
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -EAGAIN); /* empty: publishes */
	CHECK_EQ(r.hdr->tail, 0);                            /* a is pinned */
	CHECK_EQ(r.hdr->received_messages, 33);
	CHECK_EQ(r.hdr->received_bytes, 420);
	CHECK_EQ(r.hdr->consumer_read, m.end);
	CHECK_EQ(r.hdr->consumer_read - r.hdr->tail, r.hdr->head); /* all held back */
	/* More traffic while tail stays put: the empty ring still publishes it. */
	CHECK_EQ(send_msg(&p, 5, 0, 33), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &b), -EAGAIN);
	CHECK_EQ(r.hdr->tail, 0);
	CHECK_EQ(r.hdr->received_messages, 34);
	CHECK_EQ(r.hdr->consumer_read, m.end);
	/* Released: tail catches up and nothing is held back. */
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 34), 0);
	CHECK_EQ(r.hdr->tail, m.end);
	CHECK_EQ(r.hdr->consumer_read - r.hdr->tail, 0);
	ring_free(&r);
}

/* A consumer that releases everything up to the newest head it has seen
 * publishes tail at once (and wakes a producer waiting for room): it may go
 * idle right after, and the freed room must not stay counted as used. Not
 * while a slot before it is still pinned, and not for a release short of
 * that head (batching stays). */
static void test_release_caught_up(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	tachyon_msg m[4];
	for (uint32_t i = 0; i < 3; i++)
		CHECK_EQ(send_msg(&p, 100, i, i), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m[i]), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].end, 1), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[1].end, 1), 0);
	CHECK_EQ(r.hdr->tail, 0); /* short of the head seen: batched */
	r.hdr->producer_wait = TACHYON_WAIT_SLEEPING;
	CHECK_EQ(tachyon_consumer_release_to(&c, m[2].end, 1), 0);
	CHECK_EQ(r.hdr->tail, m[2].end); /* caught up: published ... */
	CHECK_EQ(r.hdr->producer_wait, TACHYON_WAIT_AWAKE); /* ... and the producer woken */

	/* read caught up, but the first of two slots is pinned: tail stays */
	for (uint32_t i = 0; i < 2; i++)
		CHECK_EQ(send_msg(&p, 200, i, i), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[0]), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[1]), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].pos, 0), 0);
	CHECK_EQ(r.hdr->tail, m[0].pos);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[3]), -EAGAIN); /* empty: publishes the release point */
	CHECK_EQ(r.hdr->tail, m[0].pos);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[1].end, 2), 0);
	CHECK_EQ(r.hdr->tail, m[1].end);

	/* head moved past what the consumer saw: catching up with what it saw
	 * still publishes (its next receive finds the rest). A consumer that
	 * reads stamps sees the next slot stamped at its read cursor, so it is
	 * not caught up and batches. */
	uint64_t tail_before = r.hdr->tail;
	CHECK_EQ(send_msg(&p, 0, 7, 7), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[0]), 0);
	CHECK_EQ(send_msg(&p, 0, 8, 8), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[0].end, 1), 0);
	CHECK_EQ(r.hdr->tail, stamp_mode ? tail_before : m[0].end);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m[1]), 0);
	CHECK_EQ(m[1].type_id, 8);
	CHECK_EQ(tachyon_consumer_release_to(&c, m[1].end, 1), 0);
	CHECK_EQ(r.hdr->tail, m[1].end);
	CHECK_EQ(r.hdr->head, r.hdr->tail);
	ring_free(&r);
}

/* The wake checks: a sleeping peer's word goes 1 -> 0 (by CAS), pure spin
 * (2) is left alone. No waiter exists, so FUTEX_WAKE wakes nobody. */
static void test_wake_words(void)
{
	ring r = ring_new(4 * CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	r.hdr->consumer_wait = TACHYON_WAIT_SLEEPING;
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->consumer_wait, TACHYON_WAIT_AWAKE);
	r.hdr->consumer_wait = TACHYON_WAIT_PURE_SPIN;
	CHECK_EQ(send_msg(&p, 1, 0, 0), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(r.hdr->consumer_wait, TACHYON_WAIT_PURE_SPIN);
	/* a batch publication checks the word too */
	r.hdr->consumer_wait = TACHYON_WAIT_SLEEPING;
	for (int i = 0; i < 32; i++)
		CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
	CHECK_EQ(r.hdr->consumer_wait, TACHYON_WAIT_AWAKE);
	/* the producer wait word (offset 448) */
	r.hdr->producer_wait = TACHYON_WAIT_SLEEPING;
	tachyon_consumer_publish(&c);
	CHECK_EQ(r.hdr->producer_wait, TACHYON_WAIT_AWAKE);
	r.hdr->producer_wait = TACHYON_WAIT_SLEEPING;
	tachyon_msg m;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	while (tachyon_consumer_try_peek(&c, &m) == 0)
		CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
	CHECK_EQ(r.hdr->producer_wait, TACHYON_WAIT_AWAKE);
	ring_free(&r);
}

/* State 3: everything below the final head is delivered, then
 * -TACHYON_EPEERCLOSED, for ever. */
static void test_closed(void)
{
	ring r = ring_new(CAP);
	tachyon_producer p;
	tachyon_consumer c;
	attach_both(&r, &p, &c);
	tachyon_msg m;
	CHECK_EQ(send_msg(&p, 10, 1, 1), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0); /* caches head */
	CHECK_EQ(send_msg(&p, 10, 2, 2), 0);
	CHECK_EQ(send_msg(&p, 10, 3, 3), 0);
	/* the producer's close: publish, then 2 -> 3 */
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	r.hdr->state = TACHYON_STATE_CLOSED;
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.type_id, 2);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
	CHECK_EQ(m.type_id, 3);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -TACHYON_EPEERCLOSED);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -TACHYON_EPEERCLOSED);
	tachyon_msg ms[4];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 4), -TACHYON_EPEERCLOSED);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_CLOSED);
	/* the producer sees the consumer's close as EPEERCLOSED */
	void *buf;
	CHECK_EQ(tachyon_producer_try_reserve(&p, 1, &buf), -TACHYON_EPEERCLOSED);
	ring_free(&r);

	/* a region attached in state 3 delivers what it holds, then reports */
	r = ring_new(CAP);
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	CHECK_EQ(send_msg(&p, 0, 7, 0), 0);
	CHECK_EQ(tachyon_producer_flush(&p), 0);
	r.hdr->state = TACHYON_STATE_CLOSED;
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 4), 1);
	CHECK_EQ(ms[0].type_id, 7);
	CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -TACHYON_EPEERCLOSED);
	ring_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Consumer fatal cases                                                      */

/* After a violation: -TACHYON_ECORRUPT from every peek, state 4, and nothing
 * exposed even once the bad bytes are repaired. */
static void expect_fatal_consumer(ring *r, tachyon_consumer *c, const char *what)
{
	tachyon_msg m;
	memset(&m, 0, sizeof(m));
	int rc = tachyon_consumer_try_peek(c, &m);
	if (rc != -TACHYON_ECORRUPT)
		fprintf(stderr, "case %s: try_peek = %d\n", what, rc);
	CHECK_EQ(rc, -TACHYON_ECORRUPT);
	CHECK(m.data == NULL);
	CHECK_EQ(r->hdr->state, TACHYON_STATE_FATAL);
	CHECK_EQ(tachyon_consumer_try_peek(c, &m), -TACHYON_ECORRUPT);
	tachyon_msg ms[2];
	CHECK_EQ(tachyon_consumer_try_peek_batch(c, ms, 2), -TACHYON_ECORRUPT);
	/* repair: a clean valid slot at the read position; still nothing */
	r->hdr->state = TACHYON_STATE_READY;
	memset(r->data, 0, r->cap);
	put_header(r, c->read & (r->cap - 1), 0, 0, 64);
	CHECK_EQ(tachyon_consumer_try_peek(c, &m), -TACHYON_ECORRUPT);
	CHECK(m.data == NULL);
}

/* The end recorded what the peer did wrong: a phrase containing kw. */
static void check_reason(const char *got, const char *kw, const char *what)
{
	if (!got || !strstr(got, kw))
		fprintf(stderr, "case %s: fatal_reason = \"%s\", wanted \"%s\"\n", what,
		        got ? got : "(null)", kw);
	CHECK(got != NULL && strstr(got, kw) != NULL);
}

/* One hand-crafted ring: tail = start, a header at phys(start), head; with
 * kw, the consumer's fatal_reason must contain it. */
static void fatal_header_case_kw(const char *what, const char *kw, uint64_t start, uint32_t size,
                                 uint32_t reserved, uint64_t head)
{
	ring r = ring_new_at(CAP, start);
	/* a valid slot at offset 0, so that a wrongly accepted SKIP would go on
	 * to deliver it instead of failing on garbage by luck */
	put_header(&r, 0, 0, 0, 64);
	put_header(&r, start & (CAP - 1), size, 1, reserved);
	r.hdr->head = head;
	tachyon_consumer c;
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	CHECK(c.fatal_reason == NULL);
	expect_fatal_consumer(&r, &c, what);
	if (kw)
		check_reason(c.fatal_reason, kw, what);
	ring_free(&r);
}

static void fatal_header_case(const char *what, uint64_t start, uint32_t size, uint32_t reserved,
                              uint64_t head)
{
	fatal_header_case_kw(what, NULL, start, size, reserved, head);
}

static void test_consumer_fatal(void)
{
	/* slot headers */
	fatal_header_case("reserved_size 0", 0, 0, 0, 128);
	fatal_header_case("reserved_size 32", 0, 0, 32, 128);
	fatal_header_case("reserved_size unaligned", 0, 0, 100, 256);
	fatal_header_case("reserved_size > capacity", 0, 0, 2 * CAP, CAP);
	fatal_header_case("reserved_size huge", 0, 0, 0xFFFFFFC0u, CAP);
	fatal_header_case("past the ring end", 896, 0, 256, 896 + 256);
	fatal_header_case("past the end, lap 2", CAP + 960, 0, 128, CAP + 960 + 128);
	fatal_header_case("size > slot", 0, 65, 128, 128);
	fatal_header_case("size = reserved", 0, 128, 128, 128);
	fatal_header_case("size = SKIP-1", 0, 0xFFFFFFFEu, 128, 128);
	fatal_header_case("slot beyond head", 0, 0, 256, 128);
	fatal_header_case("SKIP, padding not published", 512, TACHYON_SKIP, 0, 512 + 256);
	fatal_header_case("SKIP at offset 0", 0, TACHYON_SKIP, 0, 256);
	fatal_header_case("SKIP at offset 0, lap 3", 3 * CAP, TACHYON_SKIP, 0, 3 * CAP + 256);
	/* a full ring: a SKIP at 0 would "pad" a whole lap; only the offset
	 * rule catches it */
	fatal_header_case("SKIP at offset 0, full ring", 0, TACHYON_SKIP, 0, CAP);
	fatal_header_case("SKIP at offset 0, full, lap 2", CAP, TACHYON_SKIP, 0, 2 * CAP);
	/* each records what the producer did wrong */
	fatal_header_case_kw("reserved_size 0", "smaller than", 0, 0, 0, 128);
	fatal_header_case_kw("reserved_size unaligned", "not a multiple of 64", 0, 0, 100, 256);
	fatal_header_case_kw("reserved_size > capacity", "larger than the ring", 0, 0, 2 * CAP, CAP);
	fatal_header_case_kw("past the ring end", "past the end", 896, 0, 256, 896 + 256);
	fatal_header_case_kw("size > slot", "larger than its slot", 0, 65, 128, 128);
	fatal_header_case_kw("slot beyond head", "beyond the published head", 0, 0, 256, 128);
	fatal_header_case_kw("SKIP, padding not published", "SKIP marker whose padding", 512,
	                     TACHYON_SKIP, 0, 512 + 256);
	fatal_header_case_kw("SKIP at offset 0", "SKIP marker at offset 0", 0, TACHYON_SKIP, 0, 256);

	/* a good message first: it is delivered, then the bad one is fatal */
	{
		ring r = ring_new(CAP);
		put_header(&r, 0, 0, 1, 64);
		put_header(&r, 64, 1, 1, 64);
		r.hdr->head = 128;
		tachyon_consumer c;
		REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
		tachyon_msg m;
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
		expect_fatal_consumer(&r, &c, "second slot");
		ring_free(&r);
	}
	/* in a batch: the whole batch fails */
	{
		ring r = ring_new(CAP);
		put_header(&r, 0, 0, 1, 64);
		put_header(&r, 64, 0, 1, 64);
		put_header(&r, 128, 0, 1, 0);
		r.hdr->head = 192;
		tachyon_consumer c;
		REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
		tachyon_msg ms[8];
		CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 8), -TACHYON_ECORRUPT);
		CHECK_EQ(r.hdr->state, TACHYON_STATE_FATAL);
		ring_free(&r);
	}

	/* head values loaded after attach; `publish`: the consumer published
	 * its tail first, so a head moved back below it wraps in head - tail
	 * and must still be called "backwards" */
	struct {
		const char *what;
		uint64_t head;
		const char *kw;
		int publish;
	} heads[] = {
		{"head not a multiple of 64", 100, "not a multiple of 64", 0},
		/* tail is 256 here: releasing up to the head seen publishes it */
		{"head - tail > capacity", 256 + CAP + 64, "more than the capacity", 0},
		{"head far ahead", UINT64_MAX - 63, "more than the capacity", 0},
		{"head backwards", 128, "backwards", 0},
		{"head below the published tail", 128, "backwards", 1},
	};
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		ring r = ring_new(CAP);
		tachyon_producer p;
		tachyon_consumer c;
		attach_both(&r, &p, &c);
		for (int k = 0; k < 4; k++)
			CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
		CHECK_EQ(tachyon_producer_flush(&p), 0);
		tachyon_msg m;
		for (int k = 0; k < 4; k++) {
			CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
			CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
		}
		if (heads[i].publish) {
			tachyon_consumer_publish(&c);
			CHECK_EQ(r.hdr->tail, 256);
		}
		/* read == head == 256: the next peek reloads head. A valid slot
		 * at the read position, so that only the head check can refuse. */
		put_header(&r, 256, 0, 0, 64);
		r.hdr->head = heads[i].head;
		expect_fatal_consumer(&r, &c, heads[i].what);
		check_reason(c.fatal_reason, heads[i].kw, heads[i].what);
		ring_free(&r);
	}
	/* head more than capacity above the published tail, though not above
	 * the read cursor: the producer may only count on what we published */
	{
		ring r = ring_new(CAP);
		put_header(&r, 0, 0, 0, 512);
		r.hdr->head = 512;
		tachyon_consumer c;
		REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
		tachyon_msg m;
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
		/* the slot stays pinned (not released), so tail stays 0; a valid
		 * slot at the read position, so that only the head check refuses */
		CHECK_EQ(r.hdr->tail, 0);
		put_header(&r, 512, 0, 0, 64);
		r.hdr->head = CAP + 64;
		expect_fatal_consumer(&r, &c, "head - published tail > capacity");
		ring_free(&r);
	}
	/* the producer marked the ring fatal: the empty consumer reports it */
	{
		ring r = ring_new(CAP);
		tachyon_consumer c;
		REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
		r.hdr->state = TACHYON_STATE_FATAL;
		expect_fatal_consumer(&r, &c, "state 4");
		check_reason(c.fatal_reason, "marked the ring fatal", "state 4");
		ring_free(&r);
	}
	/* a garbage state word is as bad */
	{
		ring r = ring_new(CAP);
		tachyon_consumer c;
		REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
		r.hdr->state = 99;
		expect_fatal_consumer(&r, &c, "state 99");
		check_reason(c.fatal_reason, "state word", "state 99");
		ring_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* Producer fatal cases                                                      */

static void expect_fatal_producer(ring *r, tachyon_producer *p, int rc, const char *what)
{
	if (rc != -TACHYON_ECORRUPT)
		fprintf(stderr, "case %s: rc = %d\n", what, rc);
	CHECK_EQ(rc, -TACHYON_ECORRUPT);
	CHECK_EQ(r->hdr->state, TACHYON_STATE_FATAL);
	void *buf;
	r->hdr->state = TACHYON_STATE_READY; /* even repaired: the end stays dead */
	CHECK_EQ(tachyon_producer_try_reserve(p, 0, &buf), -TACHYON_ECORRUPT);
	CHECK_EQ(tachyon_producer_flush(p), -TACHYON_ECORRUPT);
	CHECK_EQ(tachyon_producer_commit(p, 0, 0), -EINVAL);
}

static void test_producer_fatal(void)
{
	/* tail values the producer loads when its cached tail says "full":
	 * start with tail 512, head 1024 (512 in use), ask for 576 bytes */
	struct {
		const char *what;
		uint64_t tail;
		const char *kw;
	} tails[] = {
		{"tail not a multiple of 64", 600, "not a multiple of 64"},
		{"tail backwards", 448, "backwards"},
		{"tail backwards, far", 0, "backwards"},
		{"tail ahead of the committed head", CAP + 64, "past the committed head"},
		{"tail claims more than capacity", UINT64_MAX - 63, "tail"},
	};
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		ring r = ring_new_at(CAP, 512);
		r.hdr->head = CAP;
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		void *buf;
		r.hdr->tail = tails[i].tail;
		int rc = tachyon_producer_try_reserve(&p, 576 - 64, &buf);
		expect_fatal_producer(&r, &p, rc, tails[i].what);
		check_reason(p.fatal_reason, tails[i].kw, tails[i].what);
		ring_free(&r);
	}
	/* the same tail values while there is still room: the cached tail is
	 * enough, the shared one is not even loaded (no false alarm) */
	{
		ring r = ring_new_at(CAP, 512);
		r.hdr->head = CAP;
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		r.hdr->tail = 600;
		void *buf;
		CHECK_EQ(tachyon_producer_try_reserve(&p, 100, &buf), 0);
		tachyon_producer_rollback(&p);
		CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
		ring_free(&r);
	}
	/* a valid tail that frees room */
	{
		ring r = ring_new_at(CAP, 512);
		r.hdr->head = CAP;
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		r.hdr->tail = CAP;
		void *buf;
		CHECK_EQ(tachyon_producer_try_reserve(&p, CAP - 64, &buf), 0);
		CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
		ring_free(&r);
	}
	/* a foreign writer of head: seen at the next publication */
	{
		ring r = ring_new(CAP);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
		CHECK_EQ(tachyon_producer_flush(&p), 0);
		CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
		r.hdr->head = 64 * 5;
		int rc = tachyon_producer_flush(&p);
		CHECK_EQ(r.hdr->head, 64 * 5); /* we did not write over it */
		expect_fatal_producer(&r, &p, rc, "foreign head writer");
		check_reason(p.fatal_reason, "foreign process wrote head", "foreign head writer");
		ring_free(&r);
	}
	/* ... also at a batch publication inside commit */
	{
		ring r = ring_new(CAP * 4);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		for (int i = 0; i < 31; i++)
			CHECK_EQ(send_msg(&p, 0, 0, 0), 0);
		r.hdr->head = 64;
		int rc = send_msg(&p, 0, 0, 0);
		expect_fatal_producer(&r, &p, rc, "foreign head writer, batch");
		ring_free(&r);
	}
	/* the state word */
	{
		ring r = ring_new(CAP);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		void *buf;
		r.hdr->state = TACHYON_STATE_CLOSED;
		CHECK_EQ(tachyon_producer_try_reserve(&p, 0, &buf), -TACHYON_EPEERCLOSED);
		CHECK_EQ(r.hdr->state, TACHYON_STATE_CLOSED);
		r.hdr->state = TACHYON_STATE_FATAL;
		int rc = tachyon_producer_try_reserve(&p, 0, &buf);
		expect_fatal_producer(&r, &p, rc, "state 4");
		check_reason(p.fatal_reason, "marked the ring fatal", "producer, state 4");
		ring_free(&r);
	}
	/* the consumer marked it fatal: the producer stops too */
	{
		ring r = ring_new(CAP);
		tachyon_producer p;
		tachyon_consumer c;
		attach_both(&r, &p, &c);
		put_header(&r, 0, 1, 0, 0);
		r.hdr->head = 64;
		p.head = p.published_head = 64; /* pretend it was ours */
		tachyon_msg m;
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), -TACHYON_ECORRUPT);
		void *buf;
		CHECK_EQ(tachyon_producer_try_reserve(&p, 0, &buf), -TACHYON_ECORRUPT);
		ring_free(&r);
	}
}

int main(void)
{
	test_attach();
	test_wrap_every_offset();
	test_many_laps();
	test_lone_skip();
	test_zero_length();
	test_max_payload();
	test_full_ring();
	test_rollback();
	test_header_bytes();
	test_batch_peek();
	test_release_cursor();
	test_publication();
	test_release_caught_up();
	test_traffic_counters();
	test_wake_words();
	test_closed();
	test_consumer_fatal();
	test_producer_fatal();
	/* The same promises from a consumer that reads position stamps. */
	stamp_mode = 1;
	test_wrap_every_offset();
	test_many_laps();
	test_zero_length();
	test_max_payload();
	test_rollback();
	test_batch_peek();
	test_release_cursor();
	test_publication();
	test_release_caught_up();
	test_traffic_counters();
	test_closed();
	return test_result("test_ring");
}

/*
 * libFuzzer target: the consumer end against whatever the shared region
 * holds (docs/RELIABILITY.md R1).
 *
 * Input: a capacity choice, a region header (possibly broken), the starting
 * head and tail, the ring bytes, then a program of operations. The consumer
 * operations are peek, peek_batch, release_to and publish; between them the
 * program plays the producer's side: an honest producer (slots and SKIPs
 * laid out as ours or 0.5.1 would, with position stamps once it announces
 * them) or a hostile one that rewrites head, slot headers, position stamps,
 * the state word or the wait words at any point.
 *
 * Oracle, always: every exposed payload lies inside the data ring right
 * after its slot header (or, 32 bytes or less, in that header's inline
 * copy), and is copied whole into a scratch buffer so ASan
 * checks every byte (the region is malloc'd at exactly 768 + capacity
 * bytes); results are only the documented codes; once -TACHYON_ECORRUPT is
 * returned, nothing is ever exposed again.
 * Oracle, while everything was honest (the ring started empty and no hostile
 * operation ran): no error at all, and exactly the produced messages arrive,
 * in order, with their sizes, type ids and bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/atomics.h"
#include "fuzz_input.h"

#define MAX_OPS      2048
#define MAX_PEEKED   64
#define MAX_PRODUCED 4096

typedef struct run {
	uint8_t *region;
	struct tachyon_region_header *hdr;
	uint8_t *ring;
	uint64_t cap;
	tachyon_consumer c;
	int fatal_seen;
	/* peeked, not yet released, in ring order */
	tachyon_msg peeked[MAX_PEEKED];
	size_t npeeked;
	/* the honest producer's model */
	int honest;
	uint64_t prod_head;                 /* private head of the model producer */
	int stamping;                       /* it announced position stamps */
	uint32_t seq_next, seq_expect;
	uint32_t sizes[MAX_PRODUCED];       /* size of message seq % MAX_PRODUCED */
	uint8_t scratch[8192];
} run;

static uint8_t pattern(uint32_t seq)
{
	return (uint8_t)(seq * 131u + 7u);
}

/* The oracle for one exposed message. */
static void check_msg(run *r, const tachyon_msg *m)
{
	const uint8_t *lo = r->ring, *hi = r->ring + r->cap;
	TRACE("msg pos %llu size %u type %u\n", (unsigned long long)m->pos, m->size, m->type_id);
	FUZZ_ASSERT(!r->fatal_seen);
	const uint8_t *place = tachyon_msg_aligned_data(m);
	FUZZ_ASSERT(place >= lo + 64 && place <= hi);
	FUZZ_ASSERT(m->size <= (size_t)(hi - place));
	/* the payload sits right after the header of the slot at pos; a small
	 * one may be read from its copy in that header */
	FUZZ_ASSERT((m->pos & 63) == 0);
	FUZZ_ASSERT((uint64_t)(place - lo) == (m->pos & (r->cap - 1)) + 64);
	FUZZ_ASSERT(m->data == place || (m->data == place - 32 && m->size <= TACHYON_INLINE_MAX));
	FUZZ_ASSERT(m->end - m->pos >= 64 + (uint64_t)m->size && m->end - m->pos <= r->cap);
	/* Touch every byte: ASan reports any that is outside the allocation. */
	memcpy(r->scratch, m->data, m->size);

	if (r->honest) {
		FUZZ_ASSERT(r->seq_expect != r->seq_next);
		uint32_t seq = r->seq_expect++;
		FUZZ_ASSERT(m->type_id == seq);
		FUZZ_ASSERT(m->size == r->sizes[seq % MAX_PRODUCED]);
		for (uint32_t i = 0; i < m->size; i++)
			FUZZ_ASSERT(r->scratch[i] == pattern(seq));
	}
	if (r->npeeked < MAX_PEEKED)
		r->peeked[r->npeeked++] = *m;
}

static void check_rc(run *r, int rc)
{
	TRACE("rc %d\n", rc);
	if (rc == -TACHYON_ECORRUPT) {
		FUZZ_ASSERT(!r->honest);
		r->fatal_seen = 1;
		return;
	}
	FUZZ_ASSERT(!r->fatal_seen); /* fatal is permanent */
	FUZZ_ASSERT(rc == -EAGAIN || rc == -TACHYON_EPEERCLOSED);
}

static void op_peek(run *r)
{
	tachyon_msg m;
	int rc = tachyon_consumer_try_peek(&r->c, &m);
	if (rc == 0)
		check_msg(r, &m);
	else
		check_rc(r, rc);
}

static void op_peek_batch(run *r, size_t max)
{
	tachyon_msg ms[16];
	int rc = tachyon_consumer_try_peek_batch(&r->c, ms, max);
	if (rc > 0) {
		FUZZ_ASSERT((size_t)rc <= max);
		for (int i = 0; i < rc; i++) {
			check_msg(r, &ms[i]);
			/* ring order, no overlap */
			if (i > 0)
				FUZZ_ASSERT(ms[i].pos - ms[i - 1].end <= r->cap);
		}
	} else {
		check_rc(r, rc);
	}
}

/* Release the first k+1 peeked messages, as a caller done with them would. */
static void op_release(run *r, uint8_t k)
{
	if (r->npeeked == 0)
		return;
	size_t i = k % r->npeeked;
	int rc = tachyon_consumer_release_to(&r->c, r->peeked[i].end, (uint32_t)(i + 1));
	FUZZ_ASSERT(rc == 0);
	memmove(r->peeked, r->peeked + i + 1, (r->npeeked - i - 1) * sizeof r->peeked[0]);
	r->npeeked -= i + 1;
}

/* A caller passing a bad position: refused unless it is a boundary in
 * [release, read]; never a crash. */
static void op_release_raw(run *r, uint64_t pos)
{
	uint64_t rel = r->c.release, rd = r->c.read;
	int rc = tachyon_consumer_release_to(&r->c, pos, 1);
	if (rc == 0) {
		FUZZ_ASSERT((pos & 63) == 0 && pos - rel <= rd - rel);
		/* messages below pos are gone for the model too */
		size_t j = 0;
		while (j < r->npeeked && r->peeked[j].end - rel <= pos - rel)
			j++;
		memmove(r->peeked, r->peeked + j, (r->npeeked - j) * sizeof r->peeked[0]);
		r->npeeked -= j;
	} else {
		FUZZ_ASSERT(rc == -EINVAL);
	}
}

/* The model producer clears the stamp of the header position `pos` (where
 * the consumer looks next) when it is free room, as ours does. */
static void stamp_clear(run *r, uint64_t pos, uint64_t tail)
{
	if (pos - tail < r->cap)
		((struct tachyon_slot_header *)(void *)(r->ring + (pos & (r->cap - 1))))->pos_stamp = 0;
}

/* The model producer announces position stamps, as ours does at attach,
 * before its first commit (a slot committed unstamped before the marker
 * could be taken by a stale stamp): first the stamp at its head cleared,
 * then the marker. */
static void op_announce_stamps(run *r)
{
	uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
	if (r->stamping || r->seq_next != 0 || (r->prod_head & 63) != 0 ||
	    r->prod_head - tail > r->cap)
		return;
	stamp_clear(r, r->prod_head, tail);
	r->stamping = 1;
	TRACE("stamps announced at %llu\n", (unsigned long long)r->prod_head);
	tachyon_atomic_store_release32(&r->hdr->producer_stamps, TACHYON_STAMPS_MARKER);
}

/* The honest producer: one slot of n payload bytes (ours: the SKIP becomes
 * visible only with the slot after it), if it fits; publish if asked. */
static void op_produce(run *r, uint16_t n16, int publish)
{
	uint64_t cap = r->cap;
	uint32_t st = tachyon_atomic_load_relaxed32(&r->hdr->state);
	if (st != TACHYON_STATE_READY || r->seq_next - r->seq_expect >= MAX_PRODUCED)
		return;
	uint64_t n = n16 % (cap - 64 + 1);
	uint64_t slot = (64 + n + 63) & ~UINT64_C(63);
	uint64_t head = r->prod_head, off = head & (cap - 1), pad = 0;
	if ((head & 63) != 0)
		return; /* a hostile op left head unaligned: the model stops */
	if (slot > cap - off) {
		if (slot > off)
			return; /* never fits here */
		pad = cap - off;
	}
	uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
	if (head - tail + pad + slot > cap)
		return; /* no room */
	if (pad) {
		memset(r->ring + off, 0, 64);
		((struct tachyon_slot_header *)(void *)(r->ring + off))->size = TACHYON_SKIP;
	}
	uint64_t so = (head + pad) & (cap - 1);
	struct tachyon_slot_header *h = (struct tachyon_slot_header *)(void *)(r->ring + so);
	uint32_t seq = r->seq_next++;
	TRACE("produce seq %u size %llu at %llu pad %llu%s%s\n", seq, (unsigned long long)n,
	      (unsigned long long)(head + pad), (unsigned long long)pad,
	      r->stamping ? " stamped" : "", publish ? " published" : "");
	h->size = (uint32_t)n;
	h->type_id = seq;
	h->reserved_size = (uint32_t)slot;
	memset(r->ring + so + 64, pattern(seq), n);
	r->sizes[seq % MAX_PRODUCED] = (uint32_t)n;
	r->prod_head = head + pad + slot;
	if (r->stamping) {
		/* as ours stamps (ring.c): the inline copy, the next header's
		 * stamp cleared when it is free room, the slot's stamp, then the
		 * SKIP's */
		if (n <= TACHYON_INLINE_MAX)
			memset(h->inline_payload, pattern(seq), n);
		stamp_clear(r, r->prod_head, tail);
		h->pos_stamp = TACHYON_POS_STAMP(head + pad);
		if (pad)
			((struct tachyon_slot_header *)(void *)(r->ring + off))->pos_stamp =
			        TACHYON_POS_STAMP(head);
	}
	if (publish)
		tachyon_atomic_store_release64(&r->hdr->head, r->prod_head);
}

/* 0.5.1's legal oddity: a SKIP published alone (reserve, rollback, flush). */
static void op_lone_skip(run *r)
{
	uint64_t cap = r->cap, head = r->prod_head, off = head & (cap - 1);
	uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
	if ((head & 63) != 0 || off == 0 || head - tail + (cap - off) > cap)
		return;
	memset(r->ring + off, 0, 64);
	((struct tachyon_slot_header *)(void *)(r->ring + off))->size = TACHYON_SKIP;
	r->prod_head = head + (cap - off);
	if (r->stamping)
		stamp_clear(r, r->prod_head, tail); /* unstamped: found by head */
	tachyon_atomic_store_release64(&r->hdr->head, r->prod_head);
}

static void op_close(run *r)
{
	tachyon_atomic_store_release64(&r->hdr->head, r->prod_head);
	(void)tachyon_atomic_cas32(&r->hdr->state, TACHYON_STATE_READY, TACHYON_STATE_CLOSED);
}

/* Hostile: the producer side rewrites a shared word or a header. */
static void op_hostile(run *r, fuzz_in *in)
{
	uint8_t what = fin_u8(in);
	uint64_t cap = r->cap;
	r->honest = 0;
	switch (what % 10) {
	case 0: /* head: anything */
		tachyon_atomic_store_release64(&r->hdr->head, fin_u64(in));
		break;
	case 1: { /* head: a nearby slot boundary, forwards or backwards */
		int16_t d = (int16_t)fin_u16(in);
		uint64_t h = tachyon_atomic_load_relaxed64(&r->hdr->head) + (uint64_t)(int64_t)d * 64;
		tachyon_atomic_store_release64(&r->hdr->head, h);
		r->prod_head = h;
		break;
	}
	case 2: { /* a header field of the slot the consumer reads next */
		uint64_t off = r->c.read & (cap - 1);
		uint8_t field = fin_u8(in) % 4;
		uint32_t v = fin_u32(in);
		memcpy(r->ring + off + 4 * field, &v, 4);
		break;
	}
	case 3: { /* any aligned 4 bytes of the ring */
		uint64_t off = (fin_u16(in) % cap) & ~UINT64_C(3);
		uint32_t v = fin_u32(in);
		memcpy(r->ring + off, &v, 4);
		break;
	}
	case 4: /* the state word */
		tachyon_atomic_store_release32(&r->hdr->state, fin_u8(in) % 6);
		break;
	case 5: /* the wait words */
		tachyon_atomic_store_release32(&r->hdr->consumer_wait, fin_u32(in));
		tachyon_atomic_store_release32(&r->hdr->producer_wait, fin_u8(in) % 3);
		break;
	case 6: /* the tail (the consumer's own word, written by a stranger) */
		tachyon_atomic_store_release64(&r->hdr->tail, fin_u64(in));
		break;
	case 8: { /* a position stamp that names the read position, over
	           * whatever header (or nothing) is there */
		uint64_t off = r->c.read & (cap - 1);
		uint64_t v = TACHYON_POS_STAMP(r->c.read + 64 * (uint64_t)(fin_u8(in) % 2));
		memcpy(r->ring + off + 24, &v, 8);
		break;
	}
	case 9: /* the stamps marker, on or off, whatever the producer does */
		tachyon_atomic_store_release32(&r->hdr->producer_stamps,
		                               (fin_u8(in) & 1) ? TACHYON_STAMPS_MARKER : 0);
		break;
	default: { /* a reserved_size that reaches past the end of the ring */
		uint64_t off = r->c.read & (cap - 1);
		uint32_t rs = (uint32_t)((cap - off + 64 * (fin_u8(in) % 4)) & ~UINT64_C(63));
		memcpy(r->ring + off + 8, &rs, 4);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in in = {data, size};
	static run r; /* large (scratch, model): static, reset below */
	memset(&r, 0, offsetof(run, sizes));
	size_t region_size;
	uint32_t mine;
	r.region = fin_region(&in, &r.cap, &region_size, &mine);
	r.hdr = (struct tachyon_region_header *)(void *)r.region;
	r.ring = r.region + TACHYON_REGION_HEADER_SIZE;
	uint64_t head = r.hdr->head, tail = r.hdr->tail;
	fin_bytes(&in, r.ring, r.cap);

	/* The bus claims its role before it attaches; refused, it attaches
	 * nothing. The other role's owner word is never ours to write. */
	uint32_t other_owner = r.hdr->producer_owner;
	if (!fuzz_claim(r.region, region_size, TACHYON_ROLE_CONSUMER, mine)) {
		free(r.region);
		return 0;
	}
	int rc = tachyon_consumer_attach(&r.c, r.region, region_size);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -TACHYON_EHANDSHAKE || rc == -TACHYON_ECORRUPT);
		free(r.region);
		return 0;
	}
	/* A header may announce less than the region holds (attach accepts a
	 * larger region); from here on the oracle bounds payloads by the
	 * announced capacity, which is stricter than ASan's. */
	FUZZ_ASSERT(r.c.capacity <= r.cap);
	r.cap = r.c.capacity;
	/* Honest only if nothing unknown sits in the ring at the start. */
	r.honest = head == tail;
	r.prod_head = head;
	/* A marker already set is a producer that announced its stamps before
	 * we attached, which cleared the stamp at its head as it did so. */
	if (r.hdr->producer_stamps == TACHYON_STAMPS_MARKER && head - tail <= r.cap) {
		stamp_clear(&r, head, tail);
		r.stamping = 1;
	}

	for (int ops = 0; ops < MAX_OPS && fin_more(&in); ops++) {
		uint8_t op = fin_u8(&in);
		switch (op % 13) {
		case 0:
		case 1:
			op_peek(&r);
			break;
		case 2:
			op_peek_batch(&r, 1 + fin_u8(&in) % 16);
			break;
		case 3:
		case 4:
			op_release(&r, fin_u8(&in));
			break;
		case 5:
			op_release_raw(&r, fin_u64(&in));
			break;
		case 6:
			tachyon_consumer_publish(&r.c);
			break;
		case 7:
		case 8: {
			uint16_t n = fin_u16(&in);
			op_produce(&r, n, op & 1);
			break;
		}
		case 9:
			op_lone_skip(&r);
			break;
		case 10:
			if (fin_u8(&in) == 0x43) /* rare: closing ends the honest stream */
				op_close(&r);
			else
				tachyon_atomic_store_release64(&r.hdr->head, r.prod_head); /* flush */
			break;
		case 11:
			op_hostile(&r, &in);
			break;
		default:
			op_announce_stamps(&r);
			break;
		}
	}
	/* Drain what an honest producer published: all of it must arrive. */
	if (r.honest) {
		tachyon_atomic_store_release64(&r.hdr->head, r.prod_head);
		for (;;) {
			tachyon_msg m;
			rc = tachyon_consumer_try_peek(&r.c, &m);
			if (rc != 0)
				break;
			check_msg(&r, &m);
			r.npeeked = 0;
			FUZZ_ASSERT(tachyon_consumer_release_to(&r.c, m.end, 1) == 0);
		}
		check_rc(&r, rc);
		FUZZ_ASSERT(r.seq_expect == r.seq_next);
	}
	/* Our end wrote only inside its role: its own owner word still says
	 * ours, the other one is as the peer left it. */
	FUZZ_ASSERT(r.hdr->consumer_owner == mine);
	FUZZ_ASSERT(r.hdr->producer_owner == other_owner);
	free(r.region);
	return 0;
}

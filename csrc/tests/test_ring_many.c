/* The vectored send (tachyon_producer_try_send_many) and the batch peek
 * (tachyon_consumer_try_peek_batch) on a heap region, single-threaded, the
 * test playing the peer where one is needed:
 *  - send_many leaves the ring exactly as reserve + copy + commit + flush
 *    of the same messages do (bytes, head, counters), from every starting
 *    offset, so wraps with a SKIP in the middle of a batch are covered;
 *  - a batch larger than the room: partial progress, -EAGAIN, head
 *    published; the rest goes once the consumer released;
 *  - a message that never fits, NULL data, an open reservation, a closed
 *    or fatal ring: how many were sent and why the rest was not;
 *  - head is published every 32 messages (and every quarter ring) inside
 *    one call, counting commits made before it;
 *  - tachyon_bus_send_many: -EAGAIN with the count when it may not wait,
 *    and, waiting, every message in order past a full ring;
 *  - the batch peek delivers exactly what a loop of try_peek delivers, with
 *    the same end state, on honest rings and on rings with a broken header
 *    at a random place, a lone SKIP behind a pinned slot, a close. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "testring.h"
#include "tachyon/tachyon.h"

static ring ring_copy(const ring *o)
{
	ring r = *o;
	r.mem = aligned_alloc(64, r.size);
	REQUIRE(r.mem != NULL);
	memcpy(r.mem, o->mem, r.size);
	r.hdr = (struct tachyon_region_header *)(void *)r.mem;
	r.data = r.mem + TACHYON_REGION_HEADER_SIZE;
	return r;
}

static void ring_free(ring *r)
{
	free(r->mem);
	r->mem = NULL;
}

/* Payload bytes of message i: recognisable, different per message. */
static uint8_t src[64][600];

static void fill_sources(void)
{
	for (int i = 0; i < 64; i++)
		for (int j = 0; j < 600; j++)
			src[i][j] = (uint8_t)(i * 37 + j * 11 + 1);
}

static int payload_is(const tachyon_msg *m, int i, size_t n)
{
	return m->size == n && (n == 0 || memcmp(m->data, src[i], n) == 0);
}

/* ------------------------------------------------------------------------ */

/* send_many vs reserve + copy + commit per message and one flush: the same
 * bytes in the ring, the same head and counters, from every start offset;
 * sizes chosen so that most batches wrap somewhere in the middle. */
static void test_same_as_commits(void)
{
	const uint64_t cap = 2048;
	static const size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 200};
	const size_t nsz = sizeof sizes / sizeof sizes[0];
	tachyon_iov v[8];
	int wraps = 0;
	for (uint64_t start = 0; start < 3 * cap; start += 64) {
		for (size_t first = 0; first < nsz; first += 3) {
			ring a = ring_new_at(cap, start), b = ring_new_at(cap, start);
			tachyon_producer pa, pb;
			REQUIRE(tachyon_producer_attach(&pa, a.mem, a.size) == 0);
			REQUIRE(tachyon_producer_attach(&pb, b.mem, b.size) == 0);
			uint64_t used = 0;
			size_t k = 0;
			for (; k < 8; k++) {
				size_t n = sizes[(first + k * 5) % nsz];
				used += 64 + ((n + 63) & ~(size_t)63);
				if (used > cap / 2)
					break;
				v[k] = (tachyon_iov){src[k], n};
				void *p = NULL;
				REQUIRE(tachyon_producer_try_reserve(&pa, n, &p) == 0);
				memcpy(p, src[k], n);
				REQUIRE(tachyon_producer_commit(&pa, n, 0x10000u + (uint32_t)first) == 0);
			}
			REQUIRE(tachyon_producer_flush(&pa) == 0);
			size_t sent = 99;
			CHECK_EQ(tachyon_producer_try_send_many(&pb, v, k, 0x10000u + (uint32_t)first, &sent), 0);
			CHECK_EQ(sent, k);
			CHECK(memcmp(a.mem, b.mem, a.size) == 0);
			CHECK_EQ(pa.head, pb.head);
			CHECK_EQ(b.hdr->head, pb.head);
			CHECK_EQ(b.hdr->sent_messages, k);
			if ((start & (cap - 1)) != 0 && (pb.head - 1) / cap != start / cap)
				wraps++; /* crossed the end of the ring mid-batch */
			ring_free(&a);
			ring_free(&b);
		}
	}
	CHECK(wraps > 0);
}

/* A wrap in the middle of a batch: the SKIP and the slot after it appear
 * together, the consumer passes the padding, every message arrives whole. */
static void test_skip_mid_batch(void)
{
	const uint64_t cap = 1024;
	ring r = ring_new_at(cap, 640); /* 384 bytes to the end */
	tachyon_producer p;
	tachyon_consumer c;
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	/* slots of 128, 128, 192 (does not fit in the last 128: wraps), 64 */
	tachyon_iov v[4] = {{src[0], 10}, {src[1], 64}, {src[2], 100}, {src[3], 0}};
	size_t sent = 0;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 5, &sent), 0);
	CHECK_EQ(sent, 4);
	CHECK_EQ(((struct tachyon_slot_header *)(void *)(r.data + 896))->size, TACHYON_SKIP);
	CHECK_EQ(r.hdr->head, cap + 192 + 64);
	tachyon_msg ms[8];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 8), 4);
	CHECK(payload_is(&ms[0], 0, 10) && payload_is(&ms[1], 1, 64));
	CHECK(payload_is(&ms[2], 2, 100) && payload_is(&ms[3], 3, 0));
	CHECK_EQ(ms[2].pos, cap);
	CHECK_EQ(ms[1].end, 896);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(ms[i].type_id, 5);
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[3].end, 4), 0);
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 8), -EAGAIN);
	CHECK_EQ(r.hdr->tail, cap + 256);
	ring_free(&r);
}

/* More messages than the room: as many as fit, -EAGAIN for the rest with
 * head published; the rest goes once room was released. */
static void test_larger_than_room(void)
{
	const uint64_t cap = 1024;
	ring r = ring_new_at(cap, 0);
	tachyon_producer p;
	tachyon_consumer c;
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	tachyon_iov v[12];
	for (int i = 0; i < 12; i++)
		v[i] = (tachyon_iov){src[i], 100}; /* slots of 192: 5 fit */
	size_t sent = 0;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 12, 1, &sent), -EAGAIN);
	CHECK_EQ(sent, 5);
	CHECK_EQ(r.hdr->head, 5 * 192);
	CHECK_EQ(p.head, 5 * 192);
	/* nothing past them was written */
	CHECK_EQ(r.data[5 * 192], 0xAB);
	tachyon_msg ms[16];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), 5);
	for (int i = 0; i < 5; i++)
		CHECK(payload_is(&ms[i], i, 100));
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[4].end, 5), 0);
	CHECK_EQ(r.hdr->tail, 5 * 192);
	size_t done = sent;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v + done, 12 - done, 1, &sent), -EAGAIN);
	CHECK_EQ(sent, 5); /* 64 bytes left at the end: the first wraps behind a SKIP */
	done += sent;
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), 5);
	for (int i = 0; i < 5; i++)
		CHECK(payload_is(&ms[i], 5 + i, 100));
	CHECK_EQ(tachyon_consumer_release_to(&c, ms[4].end, 5), 0);
	CHECK_EQ(tachyon_producer_try_send_many(&p, v + done, 12 - done, 1, &sent), 0);
	CHECK_EQ(sent, 2);
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), 2);
	CHECK(payload_is(&ms[0], 10, 100) && payload_is(&ms[1], 11, 100));
	CHECK_EQ(r.hdr->state, TACHYON_STATE_READY);
	ring_free(&r);
}

/* Stops: what was sent before the stop is published; the code names why
 * msgs[sent] was not sent. */
static void test_partial_progress(void)
{
	const uint64_t cap = 4096;
	ring r = ring_new_at(cap, 0);
	tachyon_producer p;
	tachyon_consumer c;
	REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
	REQUIRE(tachyon_consumer_attach(&c, r.mem, r.size) == 0);
	tachyon_iov v[4] = {{src[0], 3}, {src[1], 4}, {src[2], cap}, {src[3], 5}};
	size_t sent = 0;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 2, &sent), -TACHYON_ENEVERFITS);
	CHECK_EQ(sent, 2);
	CHECK_EQ(r.hdr->head, 256); /* two slots of 128 */
	v[2] = (tachyon_iov){NULL, 9};
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 2, &sent), -EINVAL);
	CHECK_EQ(sent, 2);
	CHECK_EQ(r.hdr->head, 512);
	v[2] = (tachyon_iov){NULL, 0}; /* an empty message needs no data */
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 2, &sent), 0);
	CHECK_EQ(sent, 4);
	CHECK_EQ(r.hdr->head, 512 + 128 + 128 + 64 + 128);
	tachyon_msg ms[16];
	CHECK_EQ(tachyon_consumer_try_peek_batch(&c, ms, 16), 8);
	CHECK(payload_is(&ms[7], 3, 5) && payload_is(&ms[6], 2, 0));
	/* an open reservation: nothing */
	void *pl;
	REQUIRE(tachyon_producer_try_reserve(&p, 10, &pl) == 0);
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 2, &sent), -EBUSY);
	CHECK_EQ(sent, 0);
	tachyon_producer_rollback(&p);
	/* none asked for: all (zero) sent */
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 0, 2, &sent), 0);
	CHECK_EQ(sent, 0);
	/* closed by the consumer */
	r.hdr->state = TACHYON_STATE_CLOSED;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 4, 2, &sent), -TACHYON_EPEERCLOSED);
	CHECK_EQ(sent, 0);
	r.hdr->state = TACHYON_STATE_READY;
	/* a foreign writer of head: found at the end's publication */
	r.hdr->head += 64;
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 2, 2, &sent), -TACHYON_ECORRUPT);
	CHECK_EQ(sent, 2);
	CHECK_EQ(r.hdr->state, TACHYON_STATE_FATAL);
	CHECK_EQ(tachyon_producer_try_send_many(&p, v, 2, 2, &sent), -TACHYON_ECORRUPT);
	CHECK_EQ(sent, 0);
	ring_free(&r);
}

/* Head inside one call: published every 32 messages (counting commits made
 * before the call) and every quarter ring. A publication is seen from
 * inside the call by planting a foreign head: the first publication fails,
 * so `sent` says where it happened. */
static void test_publication_inside(void)
{
	tachyon_iov v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (tachyon_iov){src[i], (size_t)i};
	for (int before = 0; before < 32; before += 7) {
		ring r = ring_new_at(1u << 16, 0);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		for (int i = 0; i < before; i++) {
			void *pl;
			REQUIRE(tachyon_producer_try_reserve(&p, 0, &pl) == 0);
			REQUIRE(tachyon_producer_commit(&p, 0, 0) == 0);
		}
		CHECK_EQ(r.hdr->head, 0);
		r.hdr->head = 64 * 1000; /* foreign */
		size_t sent = 0;
		CHECK_EQ(tachyon_producer_try_send_many(&p, v, 40, 1, &sent), -TACHYON_ECORRUPT);
		CHECK_EQ(sent, (size_t)(32 - before));
		ring_free(&r);
	}
	/* honest: 33 and more messages in one call, head moves in between */
	{
		ring r = ring_new_at(1u << 16, 0);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		size_t sent = 0;
		CHECK_EQ(tachyon_producer_try_send_many(&p, v, 33, 1, &sent), 0);
		CHECK_EQ(sent, 33);
		CHECK_EQ(r.hdr->head, p.head);
		CHECK_EQ(r.hdr->sent_messages, 33);
		ring_free(&r);
	}
	/* a quarter of the ring: 960-byte payloads (1024-byte slots) in a 4 KiB
	 * ring publish after each message */
	{
		static uint8_t big[960];
		ring r = ring_new_at(4096, 0);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		tachyon_iov b[3] = {{big, 960}, {big, 960}, {big, 960}};
		r.hdr->head = 64; /* foreign */
		size_t sent = 0;
		CHECK_EQ(tachyon_producer_try_send_many(&p, b, 3, 1, &sent), -TACHYON_ECORRUPT);
		CHECK_EQ(sent, 1);
		ring_free(&r);
	}
	/* the hybrid wake: a consumer that announced sleep is woken by the
	 * call's publication (the claim moves its word 1 -> 0) */
	{
		ring r = ring_new_at(4096, 0);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, r.mem, r.size) == 0);
		r.hdr->consumer_wait = TACHYON_WAIT_SLEEPING;
		size_t sent = 0;
		CHECK_EQ(tachyon_producer_try_send_many(&p, v, 2, 1, &sent), 0);
		CHECK_EQ(r.hdr->consumer_wait, TACHYON_WAIT_AWAKE);
		ring_free(&r);
	}
}

/* ------------------------------------------------------------------------ */
/* the batch peek against a loop of single peeks                             */

typedef struct outcome {
	int rc[64];
	int nrc;
	tachyon_msg m[256];
	int nm;
} outcome;

static int peek_loop(tachyon_consumer *c, tachyon_msg *ms, size_t max)
{
	size_t n = 0;
	int rc = tachyon_consumer_try_peek(c, &ms[0]);
	if (rc)
		return rc;
	for (n = 1; n < max; n++) {
		rc = tachyon_consumer_try_peek(c, &ms[n]);
		if (rc == -TACHYON_ECORRUPT)
			return rc;
		if (rc)
			break;
	}
	return (int)n;
}

/* Run a fixed program of peeks (batch sizes from seed) and releases
 * (release everything every other call) on r; record what came out. */
static void run_program(ring *r, int batch, uint64_t seed, outcome *o)
{
	tachyon_consumer c;
	memset(o, 0, sizeof *o);
	if (tachyon_consumer_attach(&c, r->mem, r->size) != 0) {
		o->rc[o->nrc++] = 1000;
		return;
	}
	for (int call = 0; call < 40 && o->nrc < 64; call++) {
		size_t max = 1 + test_rand(&seed) % 9;
		tachyon_msg ms[16];
		int rc = batch ? tachyon_consumer_try_peek_batch(&c, ms, max) : peek_loop(&c, ms, max);
		o->rc[o->nrc++] = rc;
		for (int i = 0; i < rc && o->nm < 256; i++) {
			o->m[o->nm] = ms[i];
			/* the two runs use two copies of the ring: compare offsets */
			o->m[o->nm++].data = (const uint8_t *)(uintptr_t)(ms[i].data - r->data);
		}
		if (rc > 0 && (test_rand(&seed) & 1))
			tachyon_consumer_release_to(&c, ms[rc - 1].end, (uint32_t)rc);
	}
	o->rc[o->nrc++] = (int)c.read;
	o->rc[o->nrc++] = (int)c.release;
	o->rc[o->nrc++] = c.fatal;
}

static void test_batch_equals_loop(void)
{
	const uint64_t cap = 2048;
	uint64_t seed = 12345;
	int corrupt_seen = 0, skips = 0, closed_seen = 0, past_head = 0, failures_before = test_failures;
	for (int iter = 0; iter < 3000; iter++) {
		uint64_t start = (test_rand(&seed) % (2 * cap / 64)) * 64;
		ring a = ring_new_at(cap, start);
		tachyon_producer p;
		REQUIRE(tachyon_producer_attach(&p, a.mem, a.size) == 0);
		int k = (int)(test_rand(&seed) % 30);
		for (int i = 0; i < k; i++) {
			size_t n = test_rand(&seed) % 300;
			size_t sent;
			tachyon_iov v = {src[i % 64], n};
			if (tachyon_producer_try_send_many(&p, &v, 1, (uint32_t)i, &sent) != 0)
				break;
		}
		uint64_t head = a.hdr->head;
		switch (test_rand(&seed) % 7) {
		case 0: { /* break one header field of some slot below head */
			uint64_t pos = start + (test_rand(&seed) % ((head - start) / 64 + 1)) * 64;
			uint32_t *w = (uint32_t *)(void *)(a.data + (pos & (cap - 1)));
			w[test_rand(&seed) % 3] = (uint32_t)test_rand(&seed);
			break;
		}
		case 1: /* a lone SKIP at the head (a 0.5.1 producer may publish one) */
			if ((head & (cap - 1)) != 0) {
				memset(a.data + (head & (cap - 1)), 0, 64);
				((uint32_t *)(void *)(a.data + (head & (cap - 1))))[0] = TACHYON_SKIP;
				a.hdr->head = head + (cap - (head & (cap - 1)));
				skips++;
			}
			break;
		case 2:
			a.hdr->state = TACHYON_STATE_CLOSED;
			closed_seen++;
			break;
		case 4: /* the last slot claims to end past head (by 64..192) */
			if (k > 0 && p.head - start >= 64) {
				uint64_t last = start, pos = start;
				while (pos < p.head) { /* walk our own slots to the last one */
					const uint32_t *w = (const uint32_t *)(const void *)(a.data + (pos & (cap - 1)));
					if (w[0] == TACHYON_SKIP) {
						pos += cap - (pos & (cap - 1));
						continue;
					}
					last = pos;
					pos += w[2];
				}
				uint32_t *w = (uint32_t *)(void *)(a.data + (last & (cap - 1)));
				w[2] += 64u * (uint32_t)(1 + test_rand(&seed) % 3);
				past_head++;
			}
			break;
		case 3: /* a head past the capacity or unaligned */
			a.hdr->head = head + (test_rand(&seed) % 2 ? 8 : cap + 64);
			break;
		default:
			break;
		}
		ring b = ring_copy(&a);
		static outcome oa, ob;
		uint64_t s2 = seed;
		run_program(&a, 0, s2, &oa);
		run_program(&b, 1, s2, &ob);
		CHECK_EQ(oa.nrc, ob.nrc);
		CHECK_EQ(oa.nm, ob.nm);
		CHECK(memcmp(oa.rc, ob.rc, sizeof oa.rc) == 0);
		CHECK(memcmp(oa.m, ob.m, sizeof oa.m) == 0);
		CHECK(memcmp(a.mem, b.mem, a.size) == 0); /* tail, counters, state alike */
		for (int i = 0; i < oa.nrc; i++)
			if (oa.rc[i] == -TACHYON_ECORRUPT)
				corrupt_seen++;
		if (test_failures != failures_before) {
			for (int i = 0; i < oa.nm || i < ob.nm; i++)
				if (memcmp(&oa.m[i], &ob.m[i], sizeof oa.m[i]))
					fprintf(stderr, "msg %d: pos %llu/%llu end %llu/%llu size %u/%u type %u/%u\n", i,
					        (unsigned long long)oa.m[i].pos, (unsigned long long)ob.m[i].pos,
					        (unsigned long long)oa.m[i].end, (unsigned long long)ob.m[i].end,
					        oa.m[i].size, ob.m[i].size, oa.m[i].type_id, ob.m[i].type_id);
			fprintf(stderr, "iteration %d differs\n", iter);
			ring_free(&a);
			ring_free(&b);
			return;
		}
		ring_free(&a);
		ring_free(&b);
	}
	CHECK(corrupt_seen > 100);
	CHECK(skips > 100);
	CHECK(closed_seen > 100);
	CHECK(past_head > 100);
}

/* ------------------------------------------------------------------------ */
/* the bus call                                                              */

static void *drain_thread(void *arg)
{
	tachyon_bus *cons = arg;
	tachyon_wait w = test_wait_ms(10000);
	for (int got = 0; got < 60;) {
		tachyon_msg ms[8];
		int n = tachyon_bus_recv_batch(cons, ms, 8, &w);
		REQUIRE(n > 0);
		for (int i = 0; i < n; i++, got++)
			CHECK(ms[i].type_id == 9 && payload_is(&ms[i], got % 64, 100));
		CHECK_EQ(tachyon_bus_release_to(cons, ms[n - 1].end, (uint32_t)n), 0);
	}
	return NULL;
}

static void test_bus_send_many(void)
{
	tachyon_bus *prod, *cons;
	test_make_pair(1024, TACHYON_ROLE_CONSUMER, "many", &cons, &prod);
	tachyon_iov v[60];
	for (int i = 0; i < 60; i++)
		v[i] = (tachyon_iov){src[i % 64], 100}; /* slots of 192: 5 fit */
	tachyon_wait now = {0, 0, NULL, NULL};
	size_t sent = 99;
	CHECK_EQ(tachyon_bus_send_many(prod, v, 60, 9, &now, &sent), -EAGAIN);
	CHECK_EQ(sent, 5);
	/* the consumer takes them as they come; the rest waits for room */
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, drain_thread, cons) == 0);
	tachyon_wait w = test_wait_ms(10000);
	CHECK_EQ(tachyon_bus_send_many(prod, v + 5, 55, 9, &w, &sent), 0);
	CHECK_EQ(sent, 55);
	pthread_join(t, NULL);
	CHECK_EQ(tachyon_bus_send_many(prod, NULL, 1, 9, &w, &sent), -EINVAL);
	CHECK_EQ(sent, 0);
	tachyon_bus_close(prod);
	CHECK_EQ(tachyon_bus_send_many(prod, v, 1, 9, &w, &sent), -TACHYON_ECLOSED);
	CHECK_EQ(sent, 0);
	tachyon_bus_unref(prod);
	tachyon_bus_close(cons);
	tachyon_bus_unref(cons);
}

int main(void)
{
	fill_sources();
	test_same_as_commits();
	test_skip_mid_batch();
	test_larger_than_room();
	test_partial_progress();
	test_publication_inside();
	test_batch_equals_loop();
	test_bus_send_many();
	return test_result("test_ring_many");
}

/* R2, second half: a third thread scribbles on the shared region while a
 * producer produces and a consumer drains; the region's end (or, every other
 * round, its start) sits against a PROT_NONE guard page, so a read or write
 * past the mapping is a crash, not a silent overrun.
 *
 * The scribbler writes random and plausible values (slot boundaries, SKIP,
 * reserved sizes up to and past the end, free-running counters nearby and
 * far away) to slot headers, ring bytes, head, tail, the state word and both
 * wait words, at random moments. Both ends must only ever return their
 * documented codes (0, -EAGAIN, -TACHYON_EPEERCLOSED, -TACHYON_ECORRUPT);
 * every message exposed must lie inside the data ring and is copied whole;
 * every reservation lies inside the ring and is written whole. Rounds
 * restart on a freshly formatted region until the wall-time cap; the test
 * prints what it reached. Waiting yields (2 vCPUs, three busy threads). */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "testlib.h"

#define CAP         4096u
#define MAX_PAYLOAD (CAP / 2 - 64)
#define REGION_SIZE (TACHYON_REGION_HEADER_SIZE + CAP)
#define WALL_NS     INT64_C(3000000000)
#define ROUND_NS    INT64_C(60000000)

typedef struct chaos {
	uint8_t *region;
	struct tachyon_region_header *hdr;
	uint8_t *ring;
	uint32_t stop;            /* atomic: end of the round */
	uint32_t seed;
	/* per-round results, each written by one thread */
	uint64_t produced, consumed, intact, scribbles, bytes_checked;
	int prod_end, cons_end;   /* the code that ended each side (0: time) */
	int prod_bad, cons_bad;   /* an undocumented code, or out of bounds */
} chaos;

static int stopped(chaos *ch)
{
	/* relaxed: a flag polled in loops; joins order everything after it */
	return tachyon_atomic_load_relaxed32(&ch->stop) != 0;
}

static void format_region(chaos *ch)
{
	memset(ch->region, 0, REGION_SIZE);
	struct tachyon_region_header *h = ch->hdr;
	h->magic = TACHYON_MAGIC;
	h->version = TACHYON_WIRE_VERSION;
	h->capacity = CAP;
	h->msg_alignment = TACHYON_MSG_ALIGNMENT;
	h->listener_marker = h->connector_marker = TACHYON_PEER_MARKER;
	/* Counters start anywhere, sometimes near 2^64. */
	uint64_t s = ch->seed * 0x9E3779B97F4A7C15ull + 3;
	uint64_t start = (test_rand(&s) & 1) ? (UINT64_MAX - 64 * 100 + 1) : (test_rand(&s) << 6);
	h->head = h->tail = start;
	h->state = TACHYON_STATE_READY;
}

static void *producer_main(void *arg)
{
	chaos *ch = arg;
	tachyon_producer p;
	if (tachyon_producer_attach(&p, ch->region, REGION_SIZE) != 0) {
		ch->prod_end = -1000; /* the scribbler got there first: not a failure */
		return NULL;
	}
	uint64_t rng = ch->seed + 11;
	uint64_t seq = 0;
	while (!stopped(ch)) {
		uint64_t r = test_rand(&rng);
		size_t n = (size_t)(r >> 8) % (MAX_PAYLOAD + 1);
		void *buf;
		int rc = tachyon_producer_try_reserve(&p, n, &buf);
		if (rc == -EAGAIN) {
			sched_yield();
			continue;
		}
		if (rc != 0) {
			if (rc != -TACHYON_ECORRUPT && rc != -TACHYON_EPEERCLOSED)
				ch->prod_bad = rc;
			ch->prod_end = rc;
			return NULL;
		}
		uint8_t *b = buf;
		if (b < ch->ring + 64 || b > ch->ring + CAP || n > (size_t)(ch->ring + CAP - b)) {
			ch->prod_bad = 1;
			return NULL;
		}
		memset(b, 0, n); /* whole reservation: the guard page traps overruns */
		uint32_t sum = test_checksum(&seq, sizeof seq);
		if (n >= 12) {
			memcpy(b, &seq, 8);
			memcpy(b + 8, &sum, 4);
		}
		if ((r & 15) == 0) {
			tachyon_producer_rollback(&p);
			continue;
		}
		rc = tachyon_producer_commit(&p, n, (uint32_t)seq);
		if (rc == 0 && (r & 0x30) == 0)
			rc = tachyon_producer_flush(&p);
		if (rc != 0) {
			if (rc != -TACHYON_ECORRUPT)
				ch->prod_bad = rc;
			ch->prod_end = rc;
			return NULL;
		}
		seq++;
		ch->produced++;
	}
	(void)tachyon_producer_flush(&p);
	return NULL;
}

static void *consumer_main(void *arg)
{
	chaos *ch = arg;
	tachyon_consumer c;
	if (tachyon_consumer_attach(&c, ch->region, REGION_SIZE) != 0) {
		ch->cons_end = -1000;
		return NULL;
	}
	static _Thread_local uint8_t scratch[CAP];
	uint64_t rng = ch->seed + 22;
	tachyon_msg held[4];
	unsigned nheld = 0;
	while (!stopped(ch)) {
		tachyon_msg ms[8];
		uint64_t r = test_rand(&rng);
		int rc = (r & 1) ? tachyon_consumer_try_peek_batch(&c, ms, 1 + (r >> 1) % 8)
		                 : tachyon_consumer_try_peek(&c, ms);
		if (rc == 0 && !(r & 1))
			rc = 1;
		if (rc == -EAGAIN) {
			if (nheld) {
				(void)tachyon_consumer_release_to(&c, held[nheld - 1].end, nheld);
				nheld = 0;
			}
			sched_yield();
			continue;
		}
		if (rc < 0) {
			if (rc != -TACHYON_ECORRUPT && rc != -TACHYON_EPEERCLOSED)
				ch->cons_bad = rc;
			ch->cons_end = rc;
			return NULL;
		}
		for (int i = 0; i < rc; i++) {
			const tachyon_msg *m = &ms[i];
			/* the payload's place after its header, and the copy read
			 * (the inline one in the header, for a small stamped message) */
			const uint8_t *place = tachyon_msg_aligned_data(m);
			if (place < ch->ring + 64 || place > ch->ring + CAP ||
			    m->size > (size_t)(ch->ring + CAP - place) || m->data < ch->ring + 32 ||
			    m->size > (size_t)(ch->ring + CAP - m->data)) {
				ch->cons_bad = 1;
				return NULL;
			}
			/* whole payload: the guard page traps overruns */
			memcpy(scratch, m->data, m->size);
			ch->bytes_checked += m->size;
			if (m->size >= 12) {
				uint64_t seq;
				uint32_t sum;
				memcpy(&seq, scratch, 8);
				memcpy(&sum, scratch + 8, 4);
				ch->intact += sum == test_checksum(&seq, sizeof seq);
			}
			ch->consumed++;
			/* hold a few (pinned, released late), release the rest */
			if (nheld < 4 && ((r >> 20) & 1)) {
				held[nheld++] = *m;
			} else {
				rc = tachyon_consumer_release_to(&c, m->end, nheld + 1);
				if (rc != 0) {
					ch->cons_bad = rc; /* our own positions: never refused */
					return NULL;
				}
				nheld = 0;
			}
		}
	}
	return NULL;
}

static void scribble_once(chaos *ch, uint64_t *rng)
{
	struct tachyon_region_header *h = ch->hdr;
	uint64_t r = test_rand(rng), v = test_rand(rng);
	/* relaxed: the shared words as a hostile peer sees them */
	uint64_t head = tachyon_atomic_load_relaxed64(&h->head);
	uint64_t tail = tachyon_atomic_load_relaxed64(&h->tail);
	uint32_t *w32 = NULL;
	uint32_t val32 = (uint32_t)v;
	switch (r % 10) {
	case 0:
	case 1:
	case 2: { /* a header field of a slot near the consumer's position */
		/* (the tail may be scribbled unaligned itself: align) */
		uint64_t pos = (tail & ~(uint64_t)63) + 64 * ((r >> 8) % 16);
		uint64_t off = pos & (CAP - 64);
		if (((r >> 24) & 3) == 0) {
			/* a position stamp that names its own position, as the
			 * producer's would, over whatever the header holds */
			tachyon_atomic_store_release64((uint64_t *)(void *)(ch->ring + off + 24),
			                               TACHYON_POS_STAMP(pos));
			return;
		}
		w32 = (uint32_t *)(void *)(ch->ring + off + 4 * ((r >> 16) % 3));
		switch ((r >> 20) % 4) {
		case 0: val32 = TACHYON_SKIP; break;
		case 1: val32 = (uint32_t)(64 * ((v % 80))); break; /* up to past the end */
		case 2: val32 = (uint32_t)(v % CAP); break;
		default: break;
		}
		break;
	}
	case 3: /* any ring word */
		w32 = (uint32_t *)(void *)(ch->ring + ((r >> 8) % (CAP / 4)) * 4);
		break;
	case 4: /* head: nearby boundaries, unaligned, far */
		tachyon_atomic_store_release64(&h->head,
		        (v & 1) ? head + 64 * ((int64_t)(v >> 1) % 70 - 35) : (v & 2) ? head + 8 : v);
		return;
	case 5: /* tail */
		tachyon_atomic_store_release64(&h->tail,
		        (v & 1) ? tail + 64 * ((int64_t)(v >> 1) % 70 - 35) : (v & 2) ? tail + 1 : v);
		return;
	case 6: /* state */
		w32 = &h->state;
		val32 = (uint32_t)(v % 6);
		break;
	case 7:
		w32 = &h->consumer_wait;
		val32 = (uint32_t)(v % 4);
		break;
	case 8:
		w32 = &h->producer_wait;
		val32 = (uint32_t)(v % 4);
		break;
	default: /* capacity and friends: read once at attach, must not matter */
		w32 = (r & 256) ? &h->capacity : &h->magic;
		break;
	}
	tachyon_atomic_store_release32(w32, val32);
}

static void *scribbler_main(void *arg)
{
	chaos *ch = arg;
	uint64_t rng = ch->seed + 33;
	/* Each round has its own pace: from a scribble per yield to a few per
	 * round, so both early and late corruption is covered. */
	unsigned gap_us = (unsigned)(test_rand(&rng) % 4 == 0 ? 0 : test_rand(&rng) % 20000);
	while (!stopped(ch)) {
		if (gap_us)
			usleep(gap_us / 2 + (unsigned)(test_rand(&rng) % (gap_us + 1)));
		else
			sched_yield();
		if (stopped(ch))
			break;
		scribble_once(ch, &rng);
		ch->scribbles++;
	}
	return NULL;
}

int main(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t span = ((REGION_SIZE + (size_t)page - 1) / (size_t)page) * (size_t)page;
	/* [guard][span][guard]: the region sits either right before the last
	 * guard (its end against it) or right after the first (its start). */
	uint8_t *map = mmap(NULL, span + 2 * (size_t)page, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(map != MAP_FAILED);
	REQUIRE(mprotect(map, (size_t)page, PROT_NONE) == 0);
	REQUIRE(mprotect(map + page + span, (size_t)page, PROT_NONE) == 0);

	uint64_t rounds = 0, produced = 0, consumed = 0, intact = 0, scribbles = 0, bytes = 0;
	uint64_t corrupt = 0, closed = 0, timed = 0, attach_refused = 0;
	int64_t deadline = tachyon_now_ns() + WALL_NS;
	while (tachyon_now_ns() < deadline) {
		chaos ch;
		memset(&ch, 0, sizeof ch);
		ch.seed = (uint32_t)rounds + 1;
		ch.region = (rounds & 1) ? map + page : map + page + span - REGION_SIZE;
		ch.hdr = (struct tachyon_region_header *)(void *)ch.region;
		ch.ring = ch.region + TACHYON_REGION_HEADER_SIZE;
		format_region(&ch);

		pthread_t tp, tc, ts;
		REQUIRE(pthread_create(&tc, NULL, consumer_main, &ch) == 0);
		REQUIRE(pthread_create(&tp, NULL, producer_main, &ch) == 0);
		REQUIRE(pthread_create(&ts, NULL, scribbler_main, &ch) == 0);
		int64_t round_end = tachyon_now_ns() + ROUND_NS;
		while (tachyon_now_ns() < round_end)
			usleep(2000);
		tachyon_atomic_store_release32(&ch.stop, 1);
		pthread_join(tp, NULL);
		pthread_join(tc, NULL);
		pthread_join(ts, NULL);

		CHECK_EQ(ch.prod_bad, 0);
		CHECK_EQ(ch.cons_bad, 0);
		rounds++;
		produced += ch.produced;
		consumed += ch.consumed;
		intact += ch.intact;
		scribbles += ch.scribbles;
		bytes += ch.bytes_checked;
		for (int e = 0; e < 2; e++) {
			int code = e ? ch.cons_end : ch.prod_end;
			corrupt += code == -TACHYON_ECORRUPT;
			closed += code == -TACHYON_EPEERCLOSED;
			timed += code == 0;
			attach_refused += code == -1000;
		}
	}
	printf("test_chaos: %llu rounds, %llu scribbles, %llu produced, %llu consumed "
	       "(%llu with intact seq/checksum, %llu payload bytes copied); ends: %llu corrupt, "
	       "%llu closed, %llu ran to the round's end, %llu attach refused\n",
	       (unsigned long long)rounds, (unsigned long long)scribbles,
	       (unsigned long long)produced, (unsigned long long)consumed,
	       (unsigned long long)intact, (unsigned long long)bytes, (unsigned long long)corrupt,
	       (unsigned long long)closed, (unsigned long long)timed,
	       (unsigned long long)attach_refused);
	/* The run must have exercised both the data path and the error path. */
	CHECK(rounds >= 10);
	CHECK(consumed > 1000);
	CHECK(corrupt > 0);
	munmap(map, span + 2 * (size_t)page);
	return test_result("test_chaos");
}

/* Two threads, one producer end and one consumer end over one heap region:
 * random sizes from 0 to capacity/2 - 64 (many wraps), random rollbacks,
 * flushes, batch peeks and pinned (late) releases, and both wait words
 * exercised with real futex sleeps. Every message carries its sequence
 * number (type_id) and a payload derived from it; the consumer checks
 * order, size and checksum. The run stops at a message count or a wall-time
 * cap, whichever comes first, then the producer closes (state 3) and the
 * consumer must drain everything before -TACHYON_EPEERCLOSED.
 *
 * Under TSan (make check-tsan) this is the R13 proof: 0 reports. Waiting
 * never busy-spins for long (2 vCPUs): a few pauses, then sched_yield, then
 * a bounded futex sleep. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "internal.h"
#include "testlib.h"

#define CAP         4096u
#define MAX_PAYLOAD (CAP / 2 - 64)
#define MAX_PINNED  6

#if defined(TACHYON_TSAN)
#define TARGET_MSGS 100000u
#define WALL_NS     INT64_C(10000000000)
#else
#define TARGET_MSGS 400000u
#define WALL_NS     INT64_C(8000000000)
#endif

typedef struct shared {
	uint8_t *mem;
	size_t size;
	struct tachyon_region_header *hdr;
	uint64_t sent;       /* written by the producer thread before it exits */
	uint64_t received;   /* consumer thread */
	uint64_t rollbacks, flushes, batches, producer_sleeps, consumer_sleeps;
	int failures;        /* consumer-side mismatches (counted, not racy: one writer) */
	int producer_error;
	int consumer_error;
} shared;

/* The message for sequence number seq: its size and its bytes. Both sides
 * derive them from seq alone. */
static size_t msg_size(uint64_t seq)
{
	uint64_t s = seq * 0x9E3779B97F4A7C15ull + 1;
	uint64_t r = test_rand(&s);
	/* mostly small, sometimes up to the largest size that always fits */
	switch (r & 3) {
	case 0:
		return 0;
	case 1:
		return (size_t)((r >> 8) % 200);
	default:
		return (size_t)((r >> 8) % (MAX_PAYLOAD + 1));
	}
}

static void fill(uint8_t *buf, size_t n, uint64_t seq)
{
	uint64_t s = seq + 0x1234;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = test_rand(&s);
		memcpy(buf + i, &v, 8);
	}
	if (i < n) {
		uint64_t v = test_rand(&s);
		memcpy(buf + i, &v, n - i);
	}
}

static uint32_t expected_checksum(uint64_t seq, size_t n, uint8_t *scratch)
{
	fill(scratch, n, seq);
	return test_checksum(scratch, n);
}

/* Wait on one of the wait words the way the bus does: claim it with a CAS
 * 0 -> 1, fence, look once more (recheck), sleep at most 20 ms, CAS back. */
static void sleep_on(uint32_t *word, int (*recheck)(void *), void *arg)
{
	/* seq_cst CAS: announces the sleep; pairs with the peer's fence + load
	 * after its publication (the ring's wake check). */
	if (!tachyon_atomic_cas32(word, TACHYON_WAIT_AWAKE, TACHYON_WAIT_SLEEPING))
		return;
	/* full fence: our 1 before our last look at the peer's index. */
	tachyon_atomic_fence();
	if (!recheck(arg))
		(void)tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, 20 * 1000000);
	/* back to awake unless the waker already did it */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
}

/* "Is there something now?" for the consumer's last look before sleeping:
 * the shared head differs from its cached one. */
static int head_moved(void *arg)
{
	tachyon_consumer *c = arg;
	/* acquire: pairs with the producer's release store of head. */
	return tachyon_atomic_load_acquire64(&c->hdr->head) != c->cached_head ||
	       tachyon_atomic_load_acquire32(&c->hdr->state) != TACHYON_STATE_READY;
}

static int tail_moved(void *arg)
{
	tachyon_producer *p = arg;
	/* acquire: pairs with the consumer's release store of tail. */
	return tachyon_atomic_load_acquire64(&p->hdr->tail) != p->cached_tail;
}

/* Back off: pause, then yield, then (rarely) sleep on the wait word. */
static int backoff(unsigned *spins)
{
	++*spins;
	if (*spins < 8) {
		tachyon_cpu_relax();
		return 0;
	}
	if (*spins < 64) {
		sched_yield();
		return 0;
	}
	*spins = 0;
	return 1; /* the caller sleeps */
}

static void *producer_main(void *arg)
{
	shared *sh = arg;
	tachyon_producer p;
	if (tachyon_producer_attach(&p, sh->mem, sh->size) != 0) {
		sh->producer_error = -1;
		return NULL;
	}
	uint64_t rng = 42;
	int64_t deadline = tachyon_now_ns() + WALL_NS;
	uint64_t seq = 0;
	unsigned spins = 0;
	while (seq < TARGET_MSGS) {
		if ((seq & 255) == 0 && tachyon_now_ns() > deadline)
			break;
		size_t n = msg_size(seq);
		uint64_t r = test_rand(&rng);
		void *buf;
		/* a reservation larger than needed, committed smaller */
		size_t want = n + (size_t)((r >> 40) % 3 == 0 ? (r >> 20) % 100 : 0);
		if (want > MAX_PAYLOAD)
			want = MAX_PAYLOAD;
		int rc = tachyon_producer_try_reserve(&p, want, &buf);
		if (rc == -EAGAIN) {
			if (backoff(&spins)) {
				sh->producer_sleeps++;
				sleep_on(&sh->hdr->producer_wait, tail_moved, &p);
			}
			continue;
		}
		spins = 0;
		if (rc != 0) {
			sh->producer_error = rc;
			break;
		}
		if ((r & 31) == 0) {
			/* scribble, then roll back: the consumer must never see it */
			memset(buf, 0xEE, want);
			tachyon_producer_rollback(&p);
			sh->rollbacks++;
			continue;
		}
		fill(buf, n, seq);
		rc = tachyon_producer_commit(&p, n, (uint32_t)seq);
		if (rc != 0) {
			sh->producer_error = rc;
			break;
		}
		seq++;
		if (((r >> 8) & 15) == 0) {
			rc = tachyon_producer_flush(&p);
			sh->flushes++;
			if (rc != 0) {
				sh->producer_error = rc;
				break;
			}
		}
	}
	int rc = tachyon_producer_flush(&p);
	if (rc && !sh->producer_error)
		sh->producer_error = rc;
	sh->sent = seq;
	/* The producer's close: publish (above), then 2 -> 3 (seq_cst CAS,
	 * ordered after the head store; pairs with the consumer's acquire load
	 * of the state), then the wake check by one more flush. */
	(void)tachyon_atomic_cas32(&sh->hdr->state, TACHYON_STATE_READY, TACHYON_STATE_CLOSED);
	(void)tachyon_producer_flush(&p);
	return NULL;
}

static void check_msg(shared *sh, const tachyon_msg *m, uint64_t seq, uint8_t *scratch)
{
	size_t n = msg_size(seq);
	if (m->type_id != (uint32_t)seq || m->size != n ||
	    test_checksum(m->data, m->size) != expected_checksum(seq, n, scratch)) {
		if (sh->failures++ < 5)
			fprintf(stderr, "message %llu: type_id %u size %u (expected %zu)\n",
			        (unsigned long long)seq, m->type_id, m->size, n);
	}
}

static void *consumer_main(void *arg)
{
	shared *sh = arg;
	tachyon_consumer c;
	uint8_t *scratch = malloc(CAP);
	if (!scratch || tachyon_consumer_attach(&c, sh->mem, sh->size) != 0) {
		sh->consumer_error = -1;
		free(scratch);
		return NULL;
	}
	uint64_t rng = 7, seq = 0;
	unsigned spins = 0;
	/* pinned messages: peeked, checked, not yet released (zero-copy exports
	 * kept alive for a while); released in ring order */
	tachyon_msg pinned[MAX_PINNED + 8];
	unsigned npinned = 0;
	for (;;) {
		uint64_t r = test_rand(&rng);
		tachyon_msg ms[8];
		int rc;
		if (r & 1) {
			rc = tachyon_consumer_try_peek_batch(&c, ms, 1 + (size_t)((r >> 4) % 8));
			if (rc > 0)
				sh->batches++;
		} else {
			rc = tachyon_consumer_try_peek(&c, &ms[0]);
			if (rc == 0)
				rc = 1;
		}
		if (rc == -EAGAIN || rc == -TACHYON_EPEERCLOSED) {
			/* nothing to read: release what is pinned so the producer can
			 * go on, then wait */
			if (npinned) {
				if (tachyon_consumer_release_to(&c, pinned[npinned - 1].end, npinned))
					sh->consumer_error = -EINVAL;
				npinned = 0;
				continue;
			}
			if (rc == -TACHYON_EPEERCLOSED)
				break;
			if (backoff(&spins)) {
				sh->consumer_sleeps++;
				tachyon_consumer_publish(&c);
				sleep_on(&sh->hdr->consumer_wait, head_moved, &c);
			}
			continue;
		}
		if (rc < 0) {
			sh->consumer_error = rc;
			break;
		}
		spins = 0;
		for (int i = 0; i < rc; i++) {
			check_msg(sh, &ms[i], seq++, scratch);
			pinned[npinned++] = ms[i];
		}
		/* release: often at once, sometimes a prefix, sometimes later */
		unsigned choice = (unsigned)((r >> 16) % 4);
		if (npinned > MAX_PINNED || choice == 0) {
			if (tachyon_consumer_release_to(&c, pinned[npinned - 1].end, npinned))
				sh->consumer_error = -EINVAL;
			npinned = 0;
		} else if (choice == 1 && npinned > 1) {
			unsigned k = 1 + (unsigned)((r >> 24) % (npinned - 1));
			if (tachyon_consumer_release_to(&c, pinned[k - 1].end, k))
				sh->consumer_error = -EINVAL;
			memmove(pinned, pinned + k, (npinned - k) * sizeof(pinned[0]));
			npinned -= k;
		}
		if (((r >> 32) & 63) == 0)
			tachyon_consumer_publish(&c);
	}
	sh->received = seq;
	free(scratch);
	return NULL;
}

int main(void)
{
	shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.size = TACHYON_REGION_HEADER_SIZE + CAP;
	sh.mem = aligned_alloc(64, sh.size);
	REQUIRE(sh.mem != NULL);
	memset(sh.mem, 0, sh.size);
	sh.hdr = (struct tachyon_region_header *)(void *)sh.mem;
	sh.hdr->magic = TACHYON_MAGIC;
	sh.hdr->version = TACHYON_WIRE_VERSION;
	sh.hdr->capacity = CAP;
	sh.hdr->msg_alignment = TACHYON_MSG_ALIGNMENT;
	sh.hdr->state = TACHYON_STATE_READY; /* before the threads exist */

	int64_t t0 = tachyon_now_ns();
	pthread_t prod, cons;
	REQUIRE(pthread_create(&cons, NULL, consumer_main, &sh) == 0);
	REQUIRE(pthread_create(&prod, NULL, producer_main, &sh) == 0);
	REQUIRE(pthread_join(prod, NULL) == 0);
	REQUIRE(pthread_join(cons, NULL) == 0);
	double secs = (double)(tachyon_now_ns() - t0) / 1e9;

	printf("test_ring_stress: %llu sent, %llu received in %.2f s (target %u); "
	       "%llu rollbacks, %llu flushes, %llu batches, sleeps: producer %llu consumer %llu\n",
	       (unsigned long long)sh.sent, (unsigned long long)sh.received, secs, TARGET_MSGS,
	       (unsigned long long)sh.rollbacks, (unsigned long long)sh.flushes,
	       (unsigned long long)sh.batches, (unsigned long long)sh.producer_sleeps,
	       (unsigned long long)sh.consumer_sleeps);
	CHECK_EQ(sh.producer_error, 0);
	CHECK_EQ(sh.consumer_error, 0);
	CHECK_EQ(sh.failures, 0);
	CHECK_EQ(sh.received, sh.sent);
	CHECK(sh.sent > 1000); /* the run did something, even on a slow machine */
	CHECK_EQ(sh.hdr->state, TACHYON_STATE_CLOSED);
	/* everything was released and published */
	CHECK_EQ(sh.hdr->tail, sh.hdr->head);
	free(sh.mem);
	return test_result("test_ring_stress");
}

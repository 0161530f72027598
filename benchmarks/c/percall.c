/*
 * percall - the instruction cost of one message through the C ring ends:
 * send + receive + release, both ends in one thread, nothing ever waits.
 *
 * Made for valgrind's callgrind, whose instruction counts are exact and
 * repeatable (wall time on this shared VM is neither). Only the work inside
 * the loop functions is counted:
 *
 *   valgrind --tool=callgrind --collect-atstart=no build/bench/percall --mode one
 *
 * then divide the total Ir ("Collected") by the message count the tool
 * prints: the loop switches counting on and off itself, so setup and exit
 * are not counted. (A toggle by function name miscounts here: the core's
 * cold paths are split into .cold parts, whose entry toggles again.) Modes:
 *   one    per message: try_send (reserve, copy, commit, flush), try_peek,
 *          release_to: the per-message work of each side of a round trip
 *   batch  per message of a batch of --batch: reserve + copy + commit each,
 *          one flush, one try_peek_batch, one release_to for the batch
 *   many   the same batch through the vectored send: one try_send_many
 *          (which ends with a flush), one try_peek_batch, one release_to
 * Without valgrind it prints the wall time per message too (a rough number:
 * one thread, everything in L1).
 */
#include "bench_common.h"

#include "tachyon/tachyon.h"

/* The client request that switches counting on and off around the loop
 * (no-ops outside valgrind); without the header the whole run is counted
 * and only the two-count difference method works. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT
#endif

#define CAPACITY (1u << 16)

typedef struct percall {
	tachyon_region region;
	tachyon_producer prod;
	tachyon_consumer cons;
	size_t size;
	unsigned batch;
	uint8_t payload[4096];
	tachyon_msg msgs[1024];
	tachyon_iov iov[1024];
} percall;

static _Noreturn void die(const char *what, int rc)
{
	fprintf(stderr, "percall: %s failed: %s\n", what, tachyon_strerror(rc));
	exit(1);
}

/* The consumer's side of a batch: peek all s->batch messages, read each,
 * release them in one call. */
static inline uint64_t consume_batch(percall *s)
{
	uint64_t sum = 0;
	unsigned got = 0;
	while (got < s->batch) {
		int rc = tachyon_consumer_try_peek_batch(&s->cons, s->msgs + got, s->batch - got);
		if (rc < 0)
			die("try_peek_batch", rc);
		got += (unsigned)rc;
	}
	for (unsigned i = 0; i < got; i++)
		sum += s->msgs[i].size + ((const uint8_t *)s->msgs[i].data)[0];
	int rc = tachyon_consumer_release_to(&s->cons, s->msgs[got - 1].end, got);
	if (rc)
		die("release_to", rc);
	return sum;
}

static uint64_t percall_one(percall *s, unsigned n)
{
	uint64_t sum = 0;
	/* Masked: tells the compiler (which inlines the core under LTO) that no
	 * payload reaches the large-copy path. main checks the bound. */
	size_t size = s->size & (sizeof s->payload - 1);
	for (unsigned i = 0; i < n; i++) {
		int rc = tachyon_producer_try_send(&s->prod, s->payload, size, 7);
		if (rc)
			die("try_send", rc);
		tachyon_msg m;
		rc = tachyon_consumer_try_peek(&s->cons, &m);
		if (rc)
			die("try_peek", rc);
		sum += m.size + ((const uint8_t *)m.data)[0];
		rc = tachyon_consumer_release_to(&s->cons, m.end, 1);
		if (rc)
			die("release_to", rc);
	}
	return sum;
}

static uint64_t percall_batch(percall *s, unsigned n)
{
	uint64_t sum = 0;
	size_t size = s->size & (sizeof s->payload - 1);
	for (unsigned done = 0; done < n; done += s->batch) {
		for (unsigned i = 0; i < s->batch; i++) {
			void *dst = NULL;
			int rc = tachyon_producer_try_reserve(&s->prod, size, &dst);
			if (rc)
				die("try_reserve", rc);
			memcpy(dst, s->payload, size);
			rc = tachyon_producer_commit(&s->prod, size, 7);
			if (rc)
				die("commit", rc);
		}
		int rc = tachyon_producer_flush(&s->prod);
		if (rc)
			die("flush", rc);
		sum += consume_batch(s);
	}
	return sum;
}

static uint64_t percall_many(percall *s, unsigned n)
{
	uint64_t sum = 0;
	size_t size = s->size & (sizeof s->payload - 1);
	for (unsigned i = 0; i < s->batch; i++)
		s->iov[i] = (tachyon_iov){s->payload, size};
	for (unsigned done = 0; done < n; done += s->batch) {
		size_t sent = 0;
		int rc = tachyon_producer_try_send_many(&s->prod, s->iov, s->batch, 7, &sent);
		if (rc || sent != s->batch)
			die("try_send_many", rc ? rc : -EAGAIN);
		sum += consume_batch(s);
	}
	return sum;
}

int main(int argc, char **argv)
{
	const char *mode = "one";
	unsigned count = 100000;
	static percall s;
	s.size = 32;
	s.batch = 256;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			s.size = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			s.batch = (unsigned)strtoul(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: percall [--mode one|batch|many] [--count N] [--size B] [--batch K]\n");
			return 2;
		}
	}
	if (s.size >= sizeof s.payload || s.batch == 0 || s.batch > 1024 ||
	    (uint64_t)s.batch * (64 + ((s.size + 63) & ~(size_t)63)) > CAPACITY / 2) {
		fprintf(stderr, "percall: size or batch out of range\n");
		return 2;
	}
	int many = strcmp(mode, "many") == 0;
	int one = strcmp(mode, "batch") != 0 && !many;
	if (!one)
		count -= count % s.batch;
	memset(s.payload, 0x5A, sizeof s.payload);
	int rc = tachyon_region_create("percall", CAPACITY, &s.region);
	if (rc)
		die("region_create", rc);
	if ((rc = tachyon_producer_attach(&s.prod, s.region.base, s.region.size)) ||
	    (rc = tachyon_consumer_attach(&s.cons, s.region.base, s.region.size)))
		die("attach", rc);
	/* Pure spin: the producer's publication skips the wake fence, as in
	 * the pingpong and batch stream benchmarks. */
	((struct tachyon_region_header *)s.region.base)->consumer_wait = TACHYON_WAIT_PURE_SPIN;
	int64_t t0 = bench_now_ns();
	CALLGRIND_TOGGLE_COLLECT;
	uint64_t sum = one ? percall_one(&s, count) : many ? percall_many(&s, count) : percall_batch(&s, count);
	CALLGRIND_TOGGLE_COLLECT;
	int64_t t1 = bench_now_ns();
	printf("mode %s size %zu batch %u messages %u ns/msg %.1f (checksum %llu)\n", one ? "one" : many ? "many" : "batch",
	       s.size, one ? 1 : s.batch, count, (double)(t1 - t0) / count, (unsigned long long)sum);
	tachyon_region_release(&s.region);
	return 0;
}

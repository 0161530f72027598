/*
 * Round-trip latency between two processes: our bus against the bare floor.
 *
 * Two buses, one each way; the parent sends a payload, the child echoes it.
 * The floor is the same two processes bouncing one cache line through shared
 * memory with nothing else in the way. The two alternate in short rounds, so
 * that a change of vCPU placement during the run hits both alike, and the
 * result is the median of the per-round ratios of the p50s.
 *
 *   pingpong [--size 32] [--rounds 20] [--iters 20000] [--cpus 0,1] [--hybrid]
 *
 * Each sample is one round trip timed with CLOCK_MONOTONIC (vDSO, no syscall);
 * the clock's own cost is in both the floor and ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tachyon/tachyon.h"

struct options {
	size_t size;
	int rounds;
	int iters;
	int cpu_parent, cpu_child; /* -1: not pinned */
	int hybrid;                /* consumers may sleep (default: pure spin) */
};

static void usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--size BYTES] [--rounds N] [--iters N] [--cpus A,B] [--hybrid]\n",
	        argv0);
	exit(2);
}

static struct options parse(int argc, char **argv)
{
	struct options o = {32, 20, 20000, -1, -1, 0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--size") && v)
			o.size = strtoul(v, NULL, 10), i++;
		else if (!strcmp(a, "--rounds") && v)
			o.rounds = atoi(v), i++;
		else if (!strcmp(a, "--iters") && v)
			o.iters = atoi(v), i++;
		else if (!strcmp(a, "--cpus") && v) {
			if (sscanf(v, "%d,%d", &o.cpu_parent, &o.cpu_child) != 2)
				usage(argv[0]);
			i++;
		} else if (!strcmp(a, "--hybrid"))
			o.hybrid = 1;
		else
			usage(argv[0]);
	}
	if (o.rounds < 1 || o.iters < 1 || o.size > 4096)
		usage(argv[0]);
	return o;
}

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("sched_setaffinity");
}

static void die(const char *what, int err)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, tachyon_strerror(err));
	exit(1);
}

/* ---- the floor: one cache line, two processes ---------------------------- */

struct floor_line {
	_Alignas(64) _Atomic uint64_t word;
};

static inline void relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Parent: write an odd value, wait for the child's even answer. */
static void floor_ping(struct floor_line *l, uint64_t *seq, int64_t *samples, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t out = ++*seq;
		int64_t t0 = tachyon_now_ns();
		atomic_store_explicit(&l->word, out, memory_order_release);
		while (atomic_load_explicit(&l->word, memory_order_acquire) != out + 1)
			relax();
		samples[i] = tachyon_now_ns() - t0;
		++*seq;
	}
}

static void floor_pong(struct floor_line *l, uint64_t *seq, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t in = ++*seq;
		while (atomic_load_explicit(&l->word, memory_order_acquire) != in)
			relax();
		atomic_store_explicit(&l->word, in + 1, memory_order_release);
		++*seq;
	}
}

/* ---- ours ---------------------------------------------------------------- */

static void bus_send(tachyon_bus *b, const void *data, size_t n)
{
	tachyon_wait w = {TACHYON_FOREVER, 0, NULL, NULL};
	int rc = tachyon_bus_send(b, data, n, 1, &w);
	if (rc < 0)
		die("send", rc);
}

static void bus_recv(tachyon_bus *b, void *into, size_t n)
{
	tachyon_wait w = {TACHYON_FOREVER, 0, NULL, NULL};
	tachyon_msg m;
	int rc = tachyon_bus_recv(b, &m, &w);
	if (rc < 0)
		die("recv", rc);
	if (m.size != n)
		die("recv: unexpected size", EBADMSG);
	memcpy(into, m.data, n);
	rc = tachyon_bus_release_to(b, m.end, 1);
	if (rc < 0)
		die("release", rc);
}

static void ours_ping(tachyon_bus *tx, tachyon_bus *rx, char *buf, size_t size, int64_t *samples,
                      int n)
{
	for (int i = 0; i < n; i++) {
		int64_t t0 = tachyon_now_ns();
		bus_send(tx, buf, size);
		bus_recv(rx, buf, size);
		samples[i] = tachyon_now_ns() - t0;
	}
}

static void ours_pong(tachyon_bus *tx, tachyon_bus *rx, char *buf, size_t size, int n)
{
	for (int i = 0; i < n; i++) {
		bus_recv(rx, buf, size);
		bus_send(tx, buf, size);
	}
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double percentile(const int64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)sorted[i < n ? i : n - 1];
}

static void report(const char *name, int64_t *s, size_t n)
{
	qsort(s, n, sizeof(*s), cmp_i64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)s[i];
	printf("%-8s %8.0f %8.0f %8.0f %8.0f %8.0f %9.0f %9.0f %12.0f\n", name, (double)s[0],
	       percentile(s, n, 50), percentile(s, n, 90), percentile(s, n, 99),
	       percentile(s, n, 99.9), percentile(s, n, 99.99), (double)s[n - 1], 1e9 * n / sum);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct options o = parse(argc, argv);
	char ping_path[108], pong_path[108];
	snprintf(ping_path, sizeof(ping_path), "/tmp/tachyon-pingpong-%d-a.sock", (int)getpid());
	snprintf(pong_path, sizeof(pong_path), "/tmp/tachyon-pingpong-%d-b.sock", (int)getpid());

	struct floor_line *line = mmap(NULL, sizeof(*line), PROT_READ | PROT_WRITE,
	                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (line == MAP_FAILED)
		die("mmap", errno);
	atomic_init(&line->word, 0);

	tachyon_listener *lping, *lpong;
	int rc = tachyon_listener_open(ping_path, 1 << 16, NULL, &lping);
	if (rc < 0)
		die("listen", rc);
	rc = tachyon_listener_open(pong_path, 1 << 16, NULL, &lpong);
	if (rc < 0)
		die("listen", rc);

	tachyon_wait connect_wait = {tachyon_deadline_after(INT64_C(5000000000)), 0, NULL, NULL};
	pid_t child = fork();
	if (child < 0)
		die("fork", errno);
	if (child == 0) {
		/* The listeners belong to the parent; the child only connects. */
		pin(o.cpu_child);
		tachyon_bus *rx, *tx;
		if ((rc = tachyon_bus_connect(ping_path, &connect_wait, &rx)) < 0)
			die("connect", rc);
		if ((rc = tachyon_bus_connect(pong_path, &connect_wait, &tx)) < 0)
			die("connect", rc);
		tachyon_bus_set_role(rx, TACHYON_ROLE_CONSUMER);
		tachyon_bus_set_role(tx, TACHYON_ROLE_PRODUCER);
		if (!o.hybrid)
			tachyon_bus_set_polling_mode(rx, 1);
		char buf[4096] = {0};
		uint64_t seq = 0;
		ours_pong(tx, rx, buf, o.size, o.iters); /* warm-up */
		for (int r = 0; r < o.rounds; r++) {
			floor_pong(line, &seq, o.iters);
			ours_pong(tx, rx, buf, o.size, o.iters);
		}
		tachyon_bus_close(tx);
		tachyon_bus_close(rx);
		_exit(0);
	}

	pin(o.cpu_parent);
	tachyon_bus *tx, *rx;
	if ((rc = tachyon_listener_accept(lping, &connect_wait, &tx)) < 0)
		die("accept", rc);
	if ((rc = tachyon_listener_accept(lpong, &connect_wait, &rx)) < 0)
		die("accept", rc);
	tachyon_listener_close(lping);
	tachyon_listener_close(lpong);
	tachyon_bus_set_role(tx, TACHYON_ROLE_PRODUCER);
	tachyon_bus_set_role(rx, TACHYON_ROLE_CONSUMER);
	if (!o.hybrid)
		tachyon_bus_set_polling_mode(rx, 1);

	size_t total = (size_t)o.rounds * (size_t)o.iters;
	int64_t *floor_s = malloc(total * sizeof(int64_t));
	int64_t *ours_s = malloc(total * sizeof(int64_t));
	int64_t *round_s = malloc((size_t)o.iters * sizeof(int64_t));
	double *ratios = malloc((size_t)o.rounds * sizeof(double));
	if (!floor_s || !ours_s || !round_s || !ratios)
		die("malloc", ENOMEM);

	char buf[4096];
	memset(buf, 0xA5, sizeof(buf));
	uint64_t seq = 0;
	ours_ping(tx, rx, buf, o.size, round_s, o.iters); /* warm-up */
	for (int r = 0; r < o.rounds; r++) {
		int64_t *f = floor_s + (size_t)r * o.iters, *u = ours_s + (size_t)r * o.iters;
		floor_ping(line, &seq, f, o.iters);
		ours_ping(tx, rx, buf, o.size, u, o.iters);
		memcpy(round_s, f, (size_t)o.iters * sizeof(int64_t));
		qsort(round_s, (size_t)o.iters, sizeof(int64_t), cmp_i64);
		double fp50 = percentile(round_s, (size_t)o.iters, 50);
		memcpy(round_s, u, (size_t)o.iters * sizeof(int64_t));
		qsort(round_s, (size_t)o.iters, sizeof(int64_t), cmp_i64);
		double up50 = percentile(round_s, (size_t)o.iters, 50);
		ratios[r] = up50 / fp50;
		fprintf(stderr, "\rround %d/%d: floor p50 %.0f ns, ours p50 %.0f ns, ratio %.3f   ",
		        r + 1, o.rounds, fp50, up50, ratios[r]);
	}
	fprintf(stderr, "\n");
	int status;
	waitpid(child, &status, 0);
	tachyon_bus_close(tx);
	tachyon_bus_close(rx);

	printf("round trip, %zu-byte payload, %d rounds x %d round trips, cpus %d,%d, %s consumers\n",
	       o.size, o.rounds, o.iters, o.cpu_parent, o.cpu_child, o.hybrid ? "hybrid" : "pure-spin");
	printf("%-8s %8s %8s %8s %8s %8s %9s %9s %12s\n", "ns", "min", "p50", "p90", "p99", "p99.9",
	       "p99.99", "max", "rtt/s");
	report("floor", floor_s, total);
	report("tachyon", ours_s, total);
	qsort(ratios, (size_t)o.rounds, sizeof(double), cmp_double);
	double median = o.rounds % 2 ? ratios[o.rounds / 2]
	                             : (ratios[o.rounds / 2 - 1] + ratios[o.rounds / 2]) / 2;
	printf("median paired p50 ratio tachyon/floor: %.3f (min %.3f, max %.3f)\n", median, ratios[0],
	       ratios[o.rounds - 1]);
	tachyon_bus_unref(tx);
	tachyon_bus_unref(rx);
	free(floor_s);
	free(ours_s);
	free(round_s);
	free(ratios);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

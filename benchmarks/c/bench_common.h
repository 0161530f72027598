/*
 * Shared pieces of the C benchmarks: clocks, pinning, latency summaries, the
 * machine-readable output, and the two floors that the latency tools pair
 * with (a bare cache-line ping-pong and a raw futex ping-pong).
 *
 * Everything is static: each tool is one .c file plus this header.
 *
 * How to read the numbers. These VMs are noisy and the cross-CPU latency is
 * bimodal (the vCPUs move between placements without notice), so a number
 * is only ever compared with a floor measured in the same short round,
 * alternating floor and candidate; a tool reports the median of the per-round
 * ratios, never the ratio of two numbers taken minutes apart.
 */
#ifndef TACHYON_BENCH_COMMON_H
#define TACHYON_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- time and placement ---------------------------------------------------- */

/* CLOCK_MONOTONIC through the vDSO: no syscall. Its own cost (~20 ns here)
 * is inside every sample, of the floor and of ours alike. */
static inline int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Pin the calling process to one CPU; -1 leaves it free. */
static inline void bench_pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		perror("sched_setaffinity");
}

/* "A,B" -> two CPUs. Returns 0, or -1 for a malformed argument. */
static inline int bench_parse_cpus(const char *s, int *a, int *b)
{
	return sscanf(s, "%d,%d", a, b) == 2 ? 0 : -1;
}

/* The default placement: CPUs 0 and 1 when the machine has two, else free.
 * Unpinned processes on two vCPUs migrate and measure the scheduler. */
static inline void bench_default_cpus(int *a, int *b)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	*a = n >= 2 ? 0 : -1;
	*b = n >= 2 ? 1 : -1;
}

static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- statistics ------------------------------------------------------------ */

static inline int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static inline double bench_pct(const int64_t *sorted, size_t n, double p)
{
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)sorted[i < n ? i : n - 1];
}

/* Median of n doubles (sorts them). */
static inline double bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct bench_lat {
	double min, p50, p90, p99, p999, max, mean;
	size_t n;
} bench_lat;

/* Summarize n samples in nanoseconds (sorts them). */
static inline bench_lat bench_summarize(int64_t *s, size_t n)
{
	bench_lat l = {0};
	if (n == 0)
		return l;
	qsort(s, n, sizeof *s, bench_cmp_i64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)s[i];
	l.min = (double)s[0];
	l.p50 = bench_pct(s, n, 50);
	l.p90 = bench_pct(s, n, 90);
	l.p99 = bench_pct(s, n, 99);
	l.p999 = bench_pct(s, n, 99.9);
	l.max = (double)s[n - 1];
	l.mean = sum / (double)n;
	l.n = n;
	return l;
}

static inline void bench_lat_header(void)
{
	printf("%-13s %9s %9s %9s %9s %9s %11s %10s\n", "ns", "min", "p50", "p90", "p99", "p99.9",
	       "max", "samples");
}

static inline void bench_lat_row(const char *name, const bench_lat *l)
{
	printf("%-13s %9.0f %9.0f %9.0f %9.0f %9.0f %11.0f %10zu\n", name, l->min, l->p50, l->p90,
	       l->p99, l->p999, l->max, l->n);
}

/* {"min":..,"p50":..,...} for the --json line. */
static inline void bench_lat_json(FILE *f, const char *key, const bench_lat *l)
{
	fprintf(f, "\"%s\":{\"min\":%.0f,\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p99_9\":%.0f,"
	           "\"max\":%.0f,\"mean\":%.1f,\"n\":%zu}",
	        key, l->min, l->p50, l->p90, l->p99, l->p999, l->max, l->mean, l->n);
}

/* ---- the floors ------------------------------------------------------------ */

/*
 * Shared between the two processes of a latency tool (MAP_SHARED before the
 * fork). One cache line each way, each written by one side only, as a ring
 * end's lines are: a single line bounced both ways would let the CPU hand it
 * over already owned (AMD's migratory sharing), a shortcut no two-ring
 * transport can take, and was measured up to 1.4x faster than two lines in
 * one of this VM's placements. The lines are 128 bytes apart so the
 * adjacent-line prefetcher does not pair them.
 */
typedef struct bench_floor {
	_Alignas(128) _Atomic uint64_t ping;   /* parent -> child, cache-line floor */
	_Alignas(128) _Atomic uint64_t pong;   /* child -> parent */
	_Alignas(128) _Atomic uint32_t fping;  /* parent -> child, futex floor */
	_Alignas(128) _Atomic uint32_t fpong;  /* child -> parent */
} bench_floor;

/* Sequence numbers, private to each process (copies after the fork): both
 * sides count the same round trips, so they agree without sharing a line. */
__attribute__((unused)) static uint64_t bench_line_seq;
__attribute__((unused)) static uint32_t bench_futex_seq;

static inline bench_floor *bench_floor_map(void)
{
	bench_floor *f = mmap(NULL, sizeof *f, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	                      -1, 0);
	if (f == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(f, 0, sizeof *f);
	return f;
}

/* Cache-line floor, parent side: n round trips, one sample each. */
static inline void bench_line_ping(bench_floor *f, int64_t *samples, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = ++bench_line_seq;
		int64_t t0 = bench_now_ns();
		atomic_store_explicit(&f->ping, v, memory_order_release);
		while (atomic_load_explicit(&f->pong, memory_order_acquire) != v)
			bench_relax();
		if (samples)
			samples[i] = bench_now_ns() - t0;
	}
}

static inline void bench_line_pong(bench_floor *f, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = ++bench_line_seq;
		while (atomic_load_explicit(&f->ping, memory_order_acquire) != v)
			bench_relax();
		atomic_store_explicit(&f->pong, v, memory_order_release);
	}
}

static inline void bench_futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Sleep until *w == want: FUTEX_WAIT (shared, as ours) on the old value,
 * no spinning at all, so every round trip is two sleeps and two wakes. */
static inline void bench_futex_wait_for(_Atomic uint32_t *w, uint32_t want)
{
	for (;;) {
		uint32_t v = atomic_load_explicit(w, memory_order_acquire);
		if (v == want)
			return;
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
	}
}

/* Raw futex floor, parent side: store, FUTEX_WAKE, sleep for the answer. */
static inline void bench_futex_ping(bench_floor *f, int64_t *samples, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t v = ++bench_futex_seq;
		int64_t t0 = bench_now_ns();
		atomic_store_explicit(&f->fping, v, memory_order_release);
		bench_futex_wake(&f->fping);
		bench_futex_wait_for(&f->fpong, v);
		if (samples)
			samples[i] = bench_now_ns() - t0;
	}
}

static inline void bench_futex_pong(bench_floor *f, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t v = ++bench_futex_seq;
		bench_futex_wait_for(&f->fping, v);
		atomic_store_explicit(&f->fpong, v, memory_order_release);
		bench_futex_wake(&f->fpong);
	}
}

#endif /* TACHYON_BENCH_COMMON_H */

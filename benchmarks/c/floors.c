/*
 * The floors our numbers are read against, measured on this machine:
 *
 *   line    round trip of a bare cache-line ping-pong between two processes
 *           (one line each way, both spinning): the least any shared-memory
 *           message can cost while both sides are awake;
 *   futex   round trip of a raw FUTEX_WAKE / FUTEX_WAIT ping-pong between two
 *           processes, no spinning: the least a message to a sleeping
 *           receiver can cost;
 *   memcpy  single-thread copy bandwidth at 64 KiB (cache), 1 MiB (the last
 *           private level and beyond) and 64 MiB (memory): the ceiling of
 *           streaming, which copies each payload in and out.
 *
 * The latency tools (pingpong) pair their own floor round by round; this one
 * reports the floors alone, for the record and for a report script.
 *
 *   floors [--cpus 0,1] [--rounds 10] [--iters 20000] [--futex-iters 2000] [--json]
 */
#include "bench_common.h"

#include <sys/wait.h>

struct options {
	int cpu_parent, cpu_child;
	int rounds;
	int iters;
	int futex_iters;
	int json;
};

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--cpus A,B] [--rounds N] [--iters N] [--futex-iters N] [--json]\n",
	        argv0);
	exit(2);
}

static struct options parse(int argc, char **argv)
{
	struct options o = {-1, -1, 10, 20000, 2000, 0};
	bench_default_cpus(&o.cpu_parent, &o.cpu_child);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--rounds") && v)
			o.rounds = atoi(v), i++;
		else if (!strcmp(a, "--iters") && v)
			o.iters = atoi(v), i++;
		else if (!strcmp(a, "--futex-iters") && v)
			o.futex_iters = atoi(v), i++;
		else if (!strcmp(a, "--cpus") && v) {
			if (bench_parse_cpus(v, &o.cpu_parent, &o.cpu_child))
				usage(argv[0]);
			i++;
		} else if (!strcmp(a, "--json"))
			o.json = 1;
		else
			usage(argv[0]);
	}
	if (o.rounds < 1 || o.iters < 1 || o.futex_iters < 1)
		usage(argv[0]);
	return o;
}

/* Both ping-pongs, alternating in rounds (round 0 is a warm-up). */
static void latency_floors(const struct options *o)
{
	bench_floor *f = bench_floor_map();
	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		exit(1);
	}
	if (child == 0) {
		bench_pin(o->cpu_child);
		for (int r = 0; r <= o->rounds; r++) {
			bench_line_pong(f, o->iters);
			bench_futex_pong(f, o->futex_iters);
		}
		_exit(0);
	}
	bench_pin(o->cpu_parent);
	size_t nl = (size_t)o->rounds * (size_t)o->iters, nf = (size_t)o->rounds * (size_t)o->futex_iters;
	int64_t *ls = malloc(nl * sizeof *ls), *fs = malloc(nf * sizeof *fs);
	if (!ls || !fs) {
		perror("malloc");
		exit(1);
	}
	for (int r = 0; r <= o->rounds; r++) {
		bench_line_ping(f, r ? ls + (size_t)(r - 1) * o->iters : NULL, o->iters);
		bench_futex_ping(f, r ? fs + (size_t)(r - 1) * o->futex_iters : NULL, o->futex_iters);
	}
	int status;
	waitpid(child, &status, 0);
	bench_lat ll = bench_summarize(ls, nl), lf = bench_summarize(fs, nf);
	printf("round trip between two processes, cpus %d,%d, %d rounds\n", o->cpu_parent,
	       o->cpu_child, o->rounds);
	bench_lat_header();
	bench_lat_row("line", &ll);
	bench_lat_row("futex", &lf);
	if (o->json) {
		printf("{\"bench\":\"floor_line\",\"cpus\":[%d,%d],", o->cpu_parent, o->cpu_child);
		bench_lat_json(stdout, "rtt_ns", &ll);
		printf("}\n{\"bench\":\"floor_futex\",\"cpus\":[%d,%d],", o->cpu_parent, o->cpu_child);
		bench_lat_json(stdout, "rtt_ns", &lf);
		printf("}\n");
	}
	free(ls);
	free(fs);
	munmap(f, sizeof *f);
}

/* memcpy bandwidth for one size: repetitions of at least ~20 ms each until
 * ~0.3 s have passed; the median repetition's rate. */
static double memcpy_gbs(size_t size, double *best)
{
	uint8_t *src = malloc(size), *dst = malloc(size);
	if (!src || !dst) {
		perror("malloc");
		exit(1);
	}
	memset(src, 0x5A, size);
	memset(dst, 0, size); /* fault every page in before timing */
	size_t per_rep = (size_t)(64u << 20) / size;
	if (per_rep < 1)
		per_rep = 1;
	double rates[256];
	int n = 0;
	int64_t end = bench_now_ns() + 300000000;
	while (n < 256 && (n < 5 || bench_now_ns() < end)) {
		int64_t t0 = bench_now_ns();
		for (size_t i = 0; i < per_rep; i++) {
			memcpy(dst, src, size);
			/* Keep the copy: the compiler must not drop or merge it. */
			__asm__ __volatile__("" : : "r"(dst) : "memory");
		}
		int64_t dt = bench_now_ns() - t0;
		rates[n++] = (double)size * (double)per_rep / (double)dt; /* bytes/ns = GB/s */
	}
	double med = bench_median(rates, (size_t)n);
	*best = rates[n - 1];
	free(src);
	free(dst);
	return med;
}

int main(int argc, char **argv)
{
	struct options o = parse(argc, argv);
	latency_floors(&o);

	bench_pin(o.cpu_parent);
	static const size_t sizes[] = {64u << 10, 1u << 20, 64u << 20};
	printf("\nmemcpy bandwidth, one thread on cpu %d (median and best repetition)\n",
	       o.cpu_parent);
	printf("%10s %10s %10s\n", "size", "GB/s", "best");
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		double best;
		double med = memcpy_gbs(sizes[i], &best);
		printf("%10zu %10.2f %10.2f\n", sizes[i], med, best);
		if (o.json)
			printf("{\"bench\":\"floor_memcpy\",\"size\":%zu,\"cpu\":%d,\"gb_per_s\":%.3f,"
			       "\"gb_per_s_best\":%.3f}\n",
			       sizes[i], o.cpu_parent, med, best);
	}
	return 0;
}

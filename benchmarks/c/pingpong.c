/*
 * Round-trip latency between two processes: our bus against its floor.
 *
 * Two buses, one each way; the parent sends a payload, the child copies it
 * out and sends it back, the parent copies the answer out. One sample is one
 * round trip, timed by the parent with CLOCK_MONOTONIC (vDSO; its ~20 ns are
 * in the floor's samples too).
 *
 * The floor runs between the same two pinned processes:
 *   line   (default) one cache line each way, bounced by spinning; what a
 *          message costs at the very least when both sides are awake.
 *   futex  a raw FUTEX_WAKE / FUTEX_WAIT ping-pong with no spinning; what a
 *          message costs at the very least when the receiver sleeps.
 * In pure-spin mode a second reference runs too, the layout floor: the least
 * any ring of our wire layout can do. Each direction is a head line plus a
 * ring of slots (a 64-byte header line, then the payload); the writer fills
 * the slot and stores head with release, the reader spins on head, reads the
 * header and copies the payload out. No checks, no API, no batching: the
 * cache-line transfers the layout itself costs, which the line floor does
 * not pay (it announces and carries a message in one line).
 * A third reference is the stamped-layout floor: the least a ring of the
 * layout with position stamps (ABI.md) can do while keeping what that
 * protocol must write. The writer copies a small payload into the header
 * line as well as after it, clears the stamp at the next header position,
 * stamps the header with release and stores head (a 0.5.1 reader learns of
 * the message from head alone); the reader spins on the stamp at its read
 * cursor, copies the payload from the header line and stores tail (our
 * consumer publishes tail whenever it finds the ring empty, as in a
 * ping-pong after every message). No checks, no API.
 * Floor, layout floors and ours alternate in short rounds (after one
 * unrecorded warm-up round of each), so a change of vCPU placement hits all
 * alike; the result is the median of the per-round ratios of the p50s.
 *
 * Modes:
 *   (default)  pure spin: both consumers in polling mode 1 (never sleep);
 *              floor: line.
 *   --hybrid   consumers may sleep, after --spin pauses (default 1, so they
 *              sleep at once and every message is a futex wake); floor:
 *              futex. With --spin 0 the bus default applies (a few thousand
 *              pauses): the awake hybrid path; use --floor line then.
 *
 *   pingpong [--size 32] [--rounds 20] [--iters N] [--cpus 0,1]
 *            [--capacity 65536] [--hybrid [--spin 1]] [--floor line|futex]
 *            [--json]
 */
#include "bench_common.h"

#include <signal.h>
#include <sys/wait.h>

#include "tachyon/tachyon.h"

struct options {
	size_t size;
	int rounds;
	int iters;
	int cpu_parent, cpu_child;
	uint64_t capacity;
	int hybrid;
	uint32_t spin;    /* hybrid: pauses before sleeping (0: bus default) */
	int futex_floor;  /* floor kind: 1 futex, 0 line */
	int json;
};

static void usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--size BYTES] [--rounds N] [--iters N] [--cpus A,B] [--capacity BYTES]\n"
	        "          [--hybrid [--spin N]] [--floor line|futex] [--json]\n",
	        argv0);
	exit(2);
}

static struct options parse(int argc, char **argv)
{
	struct options o = {32, 20, -1, -1, -1, 1 << 16, 0, 1, -1, 0};
	bench_default_cpus(&o.cpu_parent, &o.cpu_child);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--size") && v)
			o.size = strtoul(v, NULL, 10), i++;
		else if (!strcmp(a, "--rounds") && v)
			o.rounds = atoi(v), i++;
		else if (!strcmp(a, "--iters") && v)
			o.iters = atoi(v), i++;
		else if (!strcmp(a, "--capacity") && v)
			o.capacity = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--spin") && v)
			o.spin = (uint32_t)strtoul(v, NULL, 10), i++;
		else if (!strcmp(a, "--cpus") && v) {
			if (bench_parse_cpus(v, &o.cpu_parent, &o.cpu_child))
				usage(argv[0]);
			i++;
		} else if (!strcmp(a, "--floor") && v) {
			if (strcmp(v, "line") && strcmp(v, "futex"))
				usage(argv[0]);
			o.futex_floor = !strcmp(v, "futex");
			i++;
		} else if (!strcmp(a, "--hybrid"))
			o.hybrid = 1;
		else if (!strcmp(a, "--json"))
			o.json = 1;
		else
			usage(argv[0]);
	}
	if (o.futex_floor < 0)
		o.futex_floor = o.hybrid;
	if (o.iters < 0)
		o.iters = o.hybrid ? 2000 : 20000;
	if (o.rounds < 1 || o.iters < 1 || o.size > 1 << 20 || !tachyon_capacity_valid(o.capacity) ||
	    o.size > o.capacity / 2 - 64)
		usage(argv[0]);
	return o;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, tachyon_strerror(err));
	exit(1);
}

/* ---- ours ---------------------------------------------------------------- */

static tachyon_wait wait_forever(const struct options *o)
{
	tachyon_wait w = {TACHYON_FOREVER, o->hybrid ? o->spin : 0, NULL, NULL};
	return w;
}

static void bus_send(tachyon_bus *b, const void *data, size_t n, const tachyon_wait *w)
{
	int rc = tachyon_bus_send(b, data, n, 1, w);
	if (rc < 0)
		die("send", rc);
}

/* Receive, copy the payload out (what a receiver does with it), release. */
static void bus_recv(tachyon_bus *b, void *into, size_t n, const tachyon_wait *w)
{
	tachyon_msg m;
	int rc = tachyon_bus_recv(b, &m, w);
	if (rc < 0)
		die("recv", rc);
	if (m.size != n)
		die("recv: unexpected size", EBADMSG);
	memcpy(into, m.data, n);
	rc = tachyon_bus_release_to(b, m.end, 1);
	if (rc < 0)
		die("release", rc);
}

static void ours_ping(tachyon_bus *tx, tachyon_bus *rx, char *buf, const struct options *o,
                      int64_t *samples)
{
	tachyon_wait w = wait_forever(o);
	for (int i = 0; i < o->iters; i++) {
		int64_t t0 = bench_now_ns();
		bus_send(tx, buf, o->size, &w);
		bus_recv(rx, buf, o->size, &w);
		if (samples)
			samples[i] = bench_now_ns() - t0;
	}
}

static void ours_pong(tachyon_bus *tx, tachyon_bus *rx, char *buf, const struct options *o)
{
	tachyon_wait w = wait_forever(o);
	for (int i = 0; i < o->iters; i++) {
		bus_recv(rx, buf, o->size, &w);
		bus_send(tx, buf, o->size, &w);
	}
}

static void floor_ping(bench_floor *f, const struct options *o, int64_t *samples)
{
	if (o->futex_floor)
		bench_futex_ping(f, samples, o->iters);
	else
		bench_line_ping(f, samples, o->iters);
}

static void floor_pong(bench_floor *f, const struct options *o)
{
	if (o->futex_floor)
		bench_futex_pong(f, o->iters);
	else
		bench_line_pong(f, o->iters);
}

static void setup_end(tachyon_bus *tx, tachyon_bus *rx, const struct options *o)
{
	int rc;
	if ((rc = tachyon_bus_set_role(tx, TACHYON_ROLE_PRODUCER)) < 0 ||
	    (rc = tachyon_bus_set_role(rx, TACHYON_ROLE_CONSUMER)) < 0)
		die("set_role", rc);
	/* Mode 1 marks our receiving ring pure spin (its producer then skips the
	 * fence); hybrid leaves the word at 0 so our consumer may sleep. */
	if (!o->hybrid && (rc = tachyon_bus_set_polling_mode(rx, 1)) < 0)
		die("set_polling_mode", rc);
}

/* ---- the layout floor (pure-spin mode) -------------------------------------- */

#define LAYOUT_RING   65536u /* as the buses' default capacity */
#define LAYOUT_HEADER 64u

/* One direction: head alone on its line (as at region offset 128), then the
 * slots. Written by one side, read by the other, as a bus ring. */
struct layout_dir {
	_Alignas(128) _Atomic uint64_t head;
	_Alignas(128) unsigned char ring[LAYOUT_RING];
};

struct layout_floor {
	struct layout_dir dir[2]; /* 0: parent -> child, 1: child -> parent */
};

/* Private to each process (copies after the fork), like bench_line_seq. */
static uint64_t layout_head[2], layout_read[2];

static size_t layout_slot(size_t n)
{
	return (LAYOUT_HEADER + n + 63) & ~(size_t)63;
}

static void layout_send(struct layout_floor *l, int d, const void *data, size_t n)
{
	struct layout_dir *dir = &l->dir[d];
	uint64_t h = layout_head[d];
	size_t slot = layout_slot(n);
	if ((h & (LAYOUT_RING - 1)) + slot > LAYOUT_RING)
		h += LAYOUT_RING - (h & (LAYOUT_RING - 1)); /* both sides skip the tail end */
	unsigned char *s = dir->ring + (h & (LAYOUT_RING - 1));
	uint32_t hdr[3] = {(uint32_t)n, 0, (uint32_t)slot}; /* size, type_id, reserved_size */
	memcpy(s, hdr, sizeof hdr);
	memcpy(s + LAYOUT_HEADER, data, n);
	layout_head[d] = h + slot;
	atomic_store_explicit(&dir->head, h + slot, memory_order_release);
}

static void layout_recv(struct layout_floor *l, int d, void *into, size_t n)
{
	struct layout_dir *dir = &l->dir[d];
	uint64_t t = layout_read[d];
	while (atomic_load_explicit(&dir->head, memory_order_acquire) == t)
		bench_relax();
	if ((t & (LAYOUT_RING - 1)) + layout_slot(n) > LAYOUT_RING)
		t += LAYOUT_RING - (t & (LAYOUT_RING - 1));
	const unsigned char *s = dir->ring + (t & (LAYOUT_RING - 1));
	uint32_t hdr[3];
	memcpy(hdr, s, sizeof hdr);
	memcpy(into, s + LAYOUT_HEADER, hdr[0] < n ? hdr[0] : n);
	layout_read[d] = t + hdr[2];
}

static void layout_ping(struct layout_floor *l, char *buf, const struct options *o,
                        int64_t *samples)
{
	for (int i = 0; i < o->iters; i++) {
		int64_t t0 = bench_now_ns();
		layout_send(l, 0, buf, o->size);
		layout_recv(l, 1, buf, o->size);
		if (samples)
			samples[i] = bench_now_ns() - t0;
	}
}

static void layout_pong(struct layout_floor *l, char *buf, const struct options *o)
{
	for (int i = 0; i < o->iters; i++) {
		layout_recv(l, 0, buf, o->size);
		layout_send(l, 1, buf, o->size);
	}
}

static struct layout_floor *layout_map(void)
{
	struct layout_floor *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
	                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l == MAP_FAILED)
		die("mmap", errno);
	return l; /* fresh pages are zero: head 0 each way */
}

/* ---- the stamped-layout floor (pure-spin mode) ------------------------------ */

#define STAMP_AT  24u /* slot header offsets, as in ABI.md */
#define INLINE_AT 32u
#define INLINE_MAX 32u

/* One direction: head and tail each alone on a line, then the slots. */
struct stamped_dir {
	_Alignas(128) _Atomic uint64_t head;
	_Alignas(128) _Atomic uint64_t tail;
	_Alignas(128) unsigned char ring[LAYOUT_RING];
};

struct stamped_floor {
	struct stamped_dir dir[2]; /* 0: parent -> child, 1: child -> parent */
};

/* Private to each process, like layout_head: the writer's head and the
 * tail it saw last, the reader's read cursor. */
static uint64_t stamped_head[2], stamped_tail_seen[2], stamped_read[2];

static _Atomic uint64_t *stamp_word(struct stamped_dir *dir, uint64_t pos)
{
	return (_Atomic uint64_t *)(void *)(dir->ring + (pos & (LAYOUT_RING - 1)) + STAMP_AT);
}

/* Where the slot of n bytes that starts at or after pos goes: both sides
 * skip the tail end of the ring when it does not fit (the floor sends one
 * size, so no padding slot is needed). */
static uint64_t stamped_place(uint64_t pos, size_t n)
{
	uint64_t off = pos & (LAYOUT_RING - 1);
	return off + layout_slot(n) > LAYOUT_RING ? pos + LAYOUT_RING - off : pos;
}

static void stamped_send(struct stamped_floor *l, int d, const void *data, size_t n)
{
	struct stamped_dir *dir = &l->dir[d];
	size_t slot = layout_slot(n);
	uint64_t h = stamped_place(stamped_head[d], n);
	uint64_t end = h + slot;
	while (end - stamped_tail_seen[d] > LAYOUT_RING) /* full: the reader's tail gives room */
		stamped_tail_seen[d] = atomic_load_explicit(&dir->tail, memory_order_acquire);
	unsigned char *s = dir->ring + (h & (LAYOUT_RING - 1));
	uint32_t hdr[3] = {(uint32_t)n, 0, (uint32_t)slot}; /* size, type_id, reserved_size */
	memcpy(s, hdr, sizeof hdr);
	if (n <= INLINE_MAX)
		memcpy(s + INLINE_AT, data, n);
	memcpy(s + LAYOUT_HEADER, data, n);
	/* Old payload bytes where the next header goes must not read as its
	 * stamp; that place is free room once the reader's tail is past it. */
	uint64_t next = stamped_place(end, n);
	if (next + STAMP_AT + 8 - stamped_tail_seen[d] <= LAYOUT_RING)
		atomic_store_explicit(stamp_word(dir, next), 0, memory_order_relaxed);
	atomic_store_explicit(stamp_word(dir, h), ~h, memory_order_release);
	stamped_head[d] = end;
	atomic_store_explicit(&dir->head, end, memory_order_release);
}

static void stamped_recv(struct stamped_floor *l, int d, void *into, size_t n)
{
	struct stamped_dir *dir = &l->dir[d];
	uint64_t t = stamped_place(stamped_read[d], n);
	while (atomic_load_explicit(stamp_word(dir, t), memory_order_acquire) != ~t)
		bench_relax();
	const unsigned char *s = dir->ring + (t & (LAYOUT_RING - 1));
	uint32_t hdr[3];
	memcpy(hdr, s, sizeof hdr);
	size_t size = hdr[0] < n ? hdr[0] : n;
	memcpy(into, s + (size <= INLINE_MAX ? INLINE_AT : LAYOUT_HEADER), size);
	stamped_read[d] = t + hdr[2];
	atomic_store_explicit(&dir->tail, t + hdr[2], memory_order_release);
}

static void stamped_ping(struct stamped_floor *l, char *buf, const struct options *o,
                         int64_t *samples)
{
	for (int i = 0; i < o->iters; i++) {
		int64_t t0 = bench_now_ns();
		stamped_send(l, 0, buf, o->size);
		stamped_recv(l, 1, buf, o->size);
		if (samples)
			samples[i] = bench_now_ns() - t0;
	}
}

static void stamped_pong(struct stamped_floor *l, char *buf, const struct options *o)
{
	for (int i = 0; i < o->iters; i++) {
		stamped_recv(l, 0, buf, o->size);
		stamped_send(l, 1, buf, o->size);
	}
}

static struct stamped_floor *stamped_map(void)
{
	struct stamped_floor *l = mmap(NULL, sizeof *l, PROT_READ | PROT_WRITE,
	                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (l == MAP_FAILED)
		die("mmap", errno);
	return l; /* zero pages: no stamp reads as ~pos for a position in use */
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct options o = parse(argc, argv);
	char ping_path[108], pong_path[108];
	snprintf(ping_path, sizeof ping_path, "/tmp/tachyon-pingpong-%d-a.sock", (int)getpid());
	snprintf(pong_path, sizeof pong_path, "/tmp/tachyon-pingpong-%d-b.sock", (int)getpid());

	bench_floor *fl = bench_floor_map();
	/* Its ring is fixed at 64 KiB: messages too large for it go without. */
	struct layout_floor *lay =
	        o.hybrid || layout_slot(o.size) > LAYOUT_RING / 2 ? NULL : layout_map();
	struct stamped_floor *stm = lay ? stamped_map() : NULL;
	tachyon_listener *lping, *lpong;
	int rc = tachyon_listener_open(ping_path, o.capacity, NULL, &lping);
	if (rc < 0)
		die("listen", rc);
	rc = tachyon_listener_open(pong_path, o.capacity, NULL, &lpong);
	if (rc < 0)
		die("listen", rc);

	tachyon_wait connect_wait = {tachyon_deadline_after(INT64_C(5000000000)), 0, NULL, NULL};
	pid_t child = fork();
	if (child < 0)
		die("fork", errno);
	if (child == 0) {
		/* Pinned before anything else, so the bus is attached (and its
		 * pages first touched) from the CPU that uses it. */
		bench_pin(o.cpu_child);
		tachyon_bus *rx, *tx;
		if ((rc = tachyon_bus_connect(ping_path, &connect_wait, &rx)) < 0)
			die("connect", rc);
		if ((rc = tachyon_bus_connect(pong_path, &connect_wait, &tx)) < 0)
			die("connect", rc);
		setup_end(tx, rx, &o);
		char *buf = calloc(1, o.size ? o.size : 1);
		for (int r = 0; r <= o.rounds; r++) { /* round 0: warm-up */
			floor_pong(fl, &o);
			if (lay) {
				layout_pong(lay, buf, &o);
				stamped_pong(stm, buf, &o);
			}
			ours_pong(tx, rx, buf, &o);
		}
		tachyon_bus_close(tx);
		tachyon_bus_close(rx);
		_exit(0);
	}

	bench_pin(o.cpu_parent);
	tachyon_bus *tx, *rx;
	if ((rc = tachyon_listener_accept(lping, &connect_wait, &tx)) < 0)
		die("accept", rc);
	if ((rc = tachyon_listener_accept(lpong, &connect_wait, &rx)) < 0)
		die("accept", rc);
	tachyon_listener_close(lping);
	tachyon_listener_close(lpong);
	setup_end(tx, rx, &o);

	size_t total = (size_t)o.rounds * (size_t)o.iters;
	int64_t *floor_s = malloc(total * sizeof(int64_t));
	int64_t *ours_s = malloc(total * sizeof(int64_t));
	int64_t *layout_s = lay ? malloc(total * sizeof(int64_t)) : NULL;
	int64_t *stamped_s = lay ? malloc(total * sizeof(int64_t)) : NULL;
	double *ratios_stamped = malloc((size_t)o.rounds * sizeof(double)); /* ours / stamped */
	double *ratios_stm_line = malloc((size_t)o.rounds * sizeof(double)); /* stamped / line */
	double *ratios_layout = malloc((size_t)o.rounds * sizeof(double)); /* ours / layout */
	double *ratios_lay_line = malloc((size_t)o.rounds * sizeof(double)); /* layout / line */
	int64_t *round_s = malloc((size_t)o.iters * sizeof(int64_t));
	double *ratios = malloc((size_t)o.rounds * sizeof(double));
	double *ratios99 = malloc((size_t)o.rounds * sizeof(double));
	char *buf = malloc(o.size ? o.size : 1);
	if (!floor_s || !ours_s || !round_s || !ratios || !ratios99 || !buf ||
	    (lay && (!layout_s || !stamped_s)) || !ratios_layout || !ratios_lay_line ||
	    !ratios_stamped || !ratios_stm_line)
		die("malloc", ENOMEM);
	memset(buf, 0xA5, o.size ? o.size : 1);

	for (int r = 0; r <= o.rounds; r++) {
		if (r == 0) { /* warm-up: page faults, caches, branch predictors */
			floor_ping(fl, &o, NULL);
			if (lay) {
				layout_ping(lay, buf, &o, NULL);
				stamped_ping(stm, buf, &o, NULL);
			}
			ours_ping(tx, rx, buf, &o, NULL);
			continue;
		}
		size_t at = (size_t)(r - 1) * o.iters;
		int64_t *f = floor_s + at, *u = ours_s + at;
		floor_ping(fl, &o, f);
		if (lay) {
			layout_ping(lay, buf, &o, layout_s + at);
			stamped_ping(stm, buf, &o, stamped_s + at);
		}
		ours_ping(tx, rx, buf, &o, u);
		memcpy(round_s, f, (size_t)o.iters * sizeof(int64_t));
		bench_lat lf = bench_summarize(round_s, (size_t)o.iters);
		memcpy(round_s, u, (size_t)o.iters * sizeof(int64_t));
		bench_lat lu = bench_summarize(round_s, (size_t)o.iters);
		ratios[r - 1] = lu.p50 / lf.p50;
		ratios99[r - 1] = lu.p99 / lf.p99;
		if (lay) {
			memcpy(round_s, layout_s + at, (size_t)o.iters * sizeof(int64_t));
			bench_lat ll = bench_summarize(round_s, (size_t)o.iters);
			ratios_layout[r - 1] = lu.p50 / ll.p50;
			ratios_lay_line[r - 1] = ll.p50 / lf.p50;
			memcpy(round_s, stamped_s + at, (size_t)o.iters * sizeof(int64_t));
			bench_lat ls = bench_summarize(round_s, (size_t)o.iters);
			ratios_stamped[r - 1] = lu.p50 / ls.p50;
			ratios_stm_line[r - 1] = ls.p50 / lf.p50;
		}
		fprintf(stderr, "\rround %d/%d: floor p50 %.0f ns, ours p50 %.0f ns, ratio %.3f   ", r,
		        o.rounds, lf.p50, lu.p50, ratios[r - 1]);
	}
	fprintf(stderr, "\n");
	int status = 0;
	waitpid(child, &status, 0);
	tachyon_bus_close(tx);
	tachyon_bus_close(rx);

	const char *mode = o.hybrid ? "hybrid" : "pure-spin";
	const char *floor_kind = o.futex_floor ? "futex" : "line";
	bench_lat lf = bench_summarize(floor_s, total);
	bench_lat lu = bench_summarize(ours_s, total);
	double med = bench_median(ratios, (size_t)o.rounds);
	double lo = ratios[0], hi = ratios[o.rounds - 1]; /* sorted by bench_median */
	double med99 = bench_median(ratios99, (size_t)o.rounds);

	printf("round trip, %zu-byte payload, capacity %llu, %d rounds x %d, cpus %d,%d, %s consumers",
	       o.size, (unsigned long long)o.capacity, o.rounds, o.iters, o.cpu_parent, o.cpu_child,
	       mode);
	if (o.hybrid)
		printf(" (spin %u)", o.spin);
	printf(", floor: %s\n", floor_kind);
	bench_lat_header();
	bench_lat_row("floor", &lf);
	bench_lat ll = {0}, ls = {0};
	double med_layout = 0, med_lay_line = 0, med_stamped = 0, med_stm_line = 0;
	if (lay) {
		ll = bench_summarize(layout_s, total);
		bench_lat_row("layout floor", &ll);
		ls = bench_summarize(stamped_s, total);
		bench_lat_row("stamped floor", &ls);
		med_layout = bench_median(ratios_layout, (size_t)o.rounds);
		med_lay_line = bench_median(ratios_lay_line, (size_t)o.rounds);
		med_stamped = bench_median(ratios_stamped, (size_t)o.rounds);
		med_stm_line = bench_median(ratios_stm_line, (size_t)o.rounds);
	}
	bench_lat_row("tachyon", &lu);
	printf("median paired p50 ratio tachyon/floor: %.3f (min %.3f, max %.3f); p99 ratio %.3f\n",
	       med, lo, hi, med99);
	if (lay) {
		printf("median paired p50 ratio tachyon/layout floor: %.3f; layout floor/floor: %.3f\n",
		       med_layout, med_lay_line);
		printf("median paired p50 ratio tachyon/stamped floor: %.3f; stamped floor/floor: %.3f\n",
		       med_stamped, med_stm_line);
	}
	if (o.json) {
		printf("{\"bench\":\"pingpong\",\"mode\":\"%s\",\"spin\":%u,\"floor_kind\":\"%s\","
		       "\"size\":%zu,\"capacity\":%llu,\"rounds\":%d,\"iters\":%d,\"cpus\":[%d,%d],",
		       mode, o.hybrid ? o.spin : 0, floor_kind, o.size, (unsigned long long)o.capacity,
		       o.rounds, o.iters, o.cpu_parent, o.cpu_child);
		bench_lat_json(stdout, "floor_ns", &lf);
		printf(",");
		bench_lat_json(stdout, "tachyon_ns", &lu);
		printf(",\"ratio_p50_median\":%.4f,\"ratio_p50_min\":%.4f,\"ratio_p50_max\":%.4f,"
		       "\"ratio_p99_median\":%.4f",
		       med, lo, hi, med99);
		if (lay) {
			printf(",");
			bench_lat_json(stdout, "layout_ns", &ll);
			printf(",\"ratio_layout_p50_median\":%.4f,\"layout_over_floor_p50_median\":%.4f,",
			       med_layout, med_lay_line);
			bench_lat_json(stdout, "stamped_ns", &ls);
			printf(",\"ratio_stamped_p50_median\":%.4f,\"stamped_over_floor_p50_median\":%.4f",
			       med_stamped, med_stm_line);
		}
		printf("}\n");
	}
	tachyon_bus_unref(tx);
	tachyon_bus_unref(rx);
	free(floor_s);
	free(ours_s);
	free(layout_s);
	free(stamped_s);
	free(ratios_stamped);
	free(ratios_stm_line);
	free(ratios_layout);
	free(ratios_lay_line);
	free(round_s);
	free(ratios);
	free(ratios99);
	free(buf);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/*
 * Streaming throughput of one bus between two processes: messages/s and
 * payload GB/s for message sizes from 8 B to 1 MiB, each paired with a floor.
 *
 * Ours. The child produces: for --seconds per round it sends messages of one
 * size as fast as the ring takes them (a plain send per message, which
 * publishes head each time; --batch N instead hands N messages at a time to
 * the vectored send, tachyon_bus_send_many, which publishes every 32
 * messages or a quarter ring and at its end; while N payloads would take
 * more than 16 MiB, fewer per call), then
 * an end marker. The parent consumes: it drains up to 64 messages per call,
 * copies each payload out (what a receiver that keeps the bytes does), checks
 * the sequence number the producer put in the first 8 bytes (nothing lost or
 * reordered) and releases each message once copied (with --batch, messages
 * under 4 KiB are released together once the drained batch of up to 64 is
 * copied: one release call per batch, which publishes tail).
 *
 * The floor. A bare single-producer single-consumer ring in shared memory
 * between the same two pinned processes, of the same capacity and with the
 * same publication policy as ours (the producer publishes after every
 * message, the consumer every 32 messages, every quarter ring and whenever
 * it finds the ring empty): the producer copies the payload into a
 * 64-byte-aligned slot, the consumer copies it out and checks the sequence
 * number; both spin, there are no slot headers, and neither checks anything
 * the other wrote. What moving these bytes between these two CPUs costs with
 * nothing else in the way.
 *
 * Floor and ours alternate round by round (one unrecorded warm-up round of
 * each first): this VM's vCPU placement changes the copy bandwidth between
 * the two CPUs several times over, so only same-round ratios are compared.
 * Throughput is measured at the consumer, from its first message to its
 * last. The median over --rounds is shown, with the median paired ratio.
 *
 *   stream [--sizes 8,64,512,4096,65536,1048576] [--seconds 0.2] [--rounds 5]
 *          [--capacity 8388608] [--cpus 0,1] [--pure-spin] [--batch N] [--json]
 */
#include "bench_common.h"

#include <sys/wait.h>

#include "tachyon/tachyon.h"

#define MAX_SIZES  32
#define MAX_ROUNDS 256
#define TYPE_DATA  1u
#define TYPE_END   2u
#define DRAIN_MAX  64

struct options {
	size_t sizes[MAX_SIZES];
	int nsizes;
	double seconds;
	int rounds;
	uint64_t capacity;
	int cpu_parent, cpu_child;
	int pure_spin;
	int batch; /* 0: plain send per message */
	int json;
};

static void usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--sizes A,B,...] [--seconds S] [--rounds N] [--capacity BYTES]\n"
	        "          [--cpus A,B] [--pure-spin] [--batch N] [--json]\n",
	        argv0);
	exit(2);
}

static int parse_sizes(const char *s, struct options *o)
{
	o->nsizes = 0;
	while (*s && o->nsizes < MAX_SIZES) {
		char *end;
		unsigned long long v = strtoull(s, &end, 0);
		if (end == s || (*end && *end != ','))
			return -1;
		o->sizes[o->nsizes++] = (size_t)v;
		s = *end == ',' ? end + 1 : end;
	}
	return o->nsizes ? 0 : -1;
}

static struct options parse(int argc, char **argv)
{
	struct options o = {{8, 64, 512, 4096, 65536, 1048576}, 6, 0.2, 5, 8u << 20, -1, -1, 0, 0, 0};
	bench_default_cpus(&o.cpu_parent, &o.cpu_child);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--sizes") && v) {
			if (parse_sizes(v, &o))
				usage(argv[0]);
			i++;
		} else if (!strcmp(a, "--seconds") && v)
			o.seconds = atof(v), i++;
		else if (!strcmp(a, "--rounds") && v)
			o.rounds = atoi(v), i++;
		else if (!strcmp(a, "--capacity") && v)
			o.capacity = strtoull(v, NULL, 0), i++;
		else if (!strcmp(a, "--batch") && v)
			o.batch = atoi(v), i++;
		else if (!strcmp(a, "--cpus") && v) {
			if (bench_parse_cpus(v, &o.cpu_parent, &o.cpu_child))
				usage(argv[0]);
			i++;
		} else if (!strcmp(a, "--pure-spin"))
			o.pure_spin = 1;
		else if (!strcmp(a, "--json"))
			o.json = 1;
		else
			usage(argv[0]);
	}
	if (o.rounds < 1 || o.rounds > MAX_ROUNDS || o.seconds <= 0 || o.batch < 0 ||
	    !tachyon_capacity_valid(o.capacity))
		usage(argv[0]);
	for (int i = 0; i < o.nsizes; i++)
		if (o.sizes[i] > o.capacity / 2 - 64) {
			fprintf(stderr, "stream: size %zu needs a capacity of at least %zu (--capacity)\n",
			        o.sizes[i], 2 * (o.sizes[i] + 64));
			exit(2);
		}
	return o;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "stream: %s: %s\n", what, tachyon_strerror(err));
	exit(1);
}

static void bad_sequence(uint64_t n, uint64_t seq)
{
	fprintf(stderr, "stream: message %llu carries sequence number %llu\n", (unsigned long long)n,
	        (unsigned long long)seq);
	exit(1);
}

typedef struct round_result {
	double msgs_per_s;
	double gb_per_s;
	uint64_t msgs;
} round_result;

static round_result rate(uint64_t n, int64_t t_first, int64_t t_last, size_t size)
{
	round_result r = {0, 0, n};
	if (n > 1 && t_last > t_first) {
		r.msgs_per_s = (double)(n - 1) / ((double)(t_last - t_first) / 1e9);
		r.gb_per_s = r.msgs_per_s * (double)size / 1e9;
	}
	return r;
}

/* ---- the floor: a bare SPSC ring ------------------------------------------- */

typedef struct floor_ring {
	_Alignas(128) _Atomic uint64_t head;    /* producer: bytes published */
	_Alignas(128) _Atomic uint64_t tail;    /* consumer: bytes consumed */
	_Alignas(128) _Atomic uint64_t end_at;  /* producer: head after a round's last message */
	_Atomic uint32_t end_seq;               /* producer: rounds finished */
	_Alignas(128) uint8_t data[];
} floor_ring;

/* Slots are 64-byte multiples and never straddle the end: one that does
 * not fit before the end starts at the next lap (both sides compute it). */
static inline uint64_t floor_place(uint64_t pos, uint64_t slot, uint64_t cap)
{
	uint64_t off = pos & (cap - 1);
	return off + slot > cap ? pos + (cap - off) : pos;
}

static void floor_produce(floor_ring *f, uint64_t cap, size_t size, double seconds, uint8_t *buf)
{
	uint64_t slot = (size + 63) & ~(uint64_t)63;
	if (slot == 0)
		slot = 64;
	/* Relaxed: our own index. */
	uint64_t head = atomic_load_explicit(&f->head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&f->tail, memory_order_acquire);
	int64_t stop = bench_now_ns() + (int64_t)(seconds * 1e9);
	for (uint64_t seq = 0;; seq++) {
		if ((seq & 63) == 0 && bench_now_ns() >= stop)
			break;
		uint64_t pos = floor_place(head, slot, cap);
		while (pos + slot - tail > cap) {
			bench_relax();
			tail = atomic_load_explicit(&f->tail, memory_order_acquire);
		}
		if (size >= sizeof seq)
			memcpy(buf, &seq, sizeof seq);
		memcpy(f->data + (pos & (cap - 1)), buf, size);
		head = pos + slot;
		atomic_store_explicit(&f->head, head, memory_order_release);
	}
	atomic_store_explicit(&f->end_at, head, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->end_seq, 1, memory_order_release);
}

static round_result floor_consume(floor_ring *f, uint64_t cap, size_t size, uint32_t round,
                                  uint8_t *out)
{
	uint64_t slot = (size + 63) & ~(uint64_t)63;
	if (slot == 0)
		slot = 64;
	uint64_t tail = atomic_load_explicit(&f->tail, memory_order_relaxed);
	uint64_t published = tail;
	uint64_t n = 0;
	int64_t t_first = 0, t_last = 0;
	for (;;) {
		uint64_t head = atomic_load_explicit(&f->head, memory_order_acquire);
		if (head == tail) {
			if (published != tail) { /* found empty: publish, as ours does */
				atomic_store_explicit(&f->tail, tail, memory_order_release);
				published = tail;
			}
			if (atomic_load_explicit(&f->end_seq, memory_order_acquire) == round + 1 &&
			    atomic_load_explicit(&f->end_at, memory_order_relaxed) == tail)
				break;
			bench_relax();
			continue;
		}
		int64_t t = bench_now_ns();
		while (tail != head) {
			uint64_t pos = floor_place(tail, slot, cap);
			memcpy(out, f->data + (pos & (cap - 1)), size);
			if (size >= sizeof n) {
				uint64_t seq;
				memcpy(&seq, out, sizeof seq);
				if (seq != n)
					bad_sequence(n, seq);
			}
			tail = pos + slot;
			if ((n & 31) == 31 || tail - published >= cap / 4) {
				atomic_store_explicit(&f->tail, tail, memory_order_release);
				published = tail;
			}
			if (n++ == 0)
				t_first = t;
			t_last = t;
		}
	}
	return rate(n, t_first, t_last, size);
}

/* ---- ours: producer (child) ------------------------------------------------ */

/* --batch: the messages of one vectored send, each with a payload of its
 * own (they carry different sequence numbers). */
#define MANY_BYTES ((size_t)16 << 20)

static void produce_many(tachyon_bus *b, const struct options *o, size_t size, uint8_t *bufs,
                         tachyon_iov *iov)
{
	tachyon_wait w = {TACHYON_FOREVER, 0, NULL, NULL};
	int64_t stop = bench_now_ns() + (int64_t)(o->seconds * 1e9);
	size_t per = (size_t)o->batch, stride = size ? size : 1;
	if (per * stride > MANY_BYTES)
		per = MANY_BYTES / stride ? MANY_BYTES / stride : 1;
	uint64_t seq = 0;
	int rc;
	for (uint64_t calls = 0;; calls++) {
		/* the clock about every 64 messages, as the plain mode reads it */
		if ((calls * per) / 64 != ((calls + 1) * per) / 64 || calls == 0)
			if (bench_now_ns() >= stop)
				break;
		for (size_t i = 0; i < per; i++, seq++) {
			uint8_t *p = bufs + i * stride;
			if (size >= sizeof seq)
				memcpy(p, &seq, sizeof seq);
			iov[i] = (tachyon_iov){p, size};
		}
		size_t sent = 0;
		if ((rc = tachyon_bus_send_many(b, iov, per, TYPE_DATA, &w, &sent)) < 0)
			die("send_many", rc);
	}
	if ((rc = tachyon_bus_send(b, bufs, 0, TYPE_END, &w)) < 0)
		die("send end", rc);
}

static void produce_round(tachyon_bus *b, const struct options *o, size_t size, uint8_t *buf)
{
	tachyon_wait w = {TACHYON_FOREVER, 0, NULL, NULL};
	int64_t stop = bench_now_ns() + (int64_t)(o->seconds * 1e9);
	int rc;
	for (uint64_t seq = 0;; seq++) {
		/* The clock every 64 messages: its ~20 ns would be a measurable part
		 * of an 8-byte send. */
		if ((seq & 63) == 0 && bench_now_ns() >= stop)
			break;
		if (size >= sizeof seq)
			memcpy(buf, &seq, sizeof seq);
		if (o->batch == 0) {
			if ((rc = tachyon_bus_send(b, buf, size, TYPE_DATA, &w)) < 0)
				die("send", rc);
		} else {
			void *p;
			if ((rc = tachyon_bus_reserve(b, size, &p, &w)) < 0)
				die("reserve", rc);
			/* as send copies: large payloads by the measured faster way */
			tachyon_bus_copy_payload(b, p, buf, size);
			if ((rc = tachyon_bus_commit(b, size, TYPE_DATA)) < 0)
				die("commit", rc);
			if ((seq + 1) % (uint64_t)o->batch == 0 && (rc = tachyon_bus_flush(b)) < 0)
				die("flush", rc);
		}
	}
	/* A plain send: it also flushes what --batch left unpublished. */
	if ((rc = tachyon_bus_send(b, buf, 0, TYPE_END, &w)) < 0)
		die("send end", rc);
}

/* ---- ours: consumer (parent) ----------------------------------------------- */

/* The consumer's view of the stream, kept across rounds: one drained batch
 * and the position in it. A batch may hold the end marker of one round and
 * the first messages of the next; they stay in the batch for the next round.
 * Each message is released as soon as its payload was copied out, so the
 * producer can reuse its room while we copy the rest of the batch. */
typedef struct reader {
	tachyon_msg m[DRAIN_MAX];
	int got, pos;
	int64_t t_batch; /* when the batch arrived */
	int per_batch;   /* release once per drained batch (--batch, small messages) */
	uint32_t unreleased; /* copied since the last release */
} reader;

static const tachyon_msg *next_msg(tachyon_bus *b, reader *rd)
{
	if (rd->pos == rd->got) {
		tachyon_wait w = {TACHYON_FOREVER, 0, NULL, NULL};
		rd->got = tachyon_bus_recv_batch(b, rd->m, DRAIN_MAX, &w);
		if (rd->got < 0)
			die("recv_batch", rd->got);
		rd->pos = 0;
		rd->t_batch = bench_now_ns();
	}
	return &rd->m[rd->pos++];
}

static round_result consume_round(tachyon_bus *b, reader *rd, size_t size, uint8_t *out)
{
	uint64_t n = 0;
	int64_t t_first = 0, t_last = 0;
	for (;;) {
		const tachyon_msg *m = next_msg(b, rd);
		int rc;
		int end = m->type_id == TYPE_END;
		if (!end) {
			if (m->size != size) {
				fprintf(stderr, "stream: message %llu: size %u, expected %zu\n",
				        (unsigned long long)n, m->size, size);
				exit(1);
			}
			memcpy(out, m->data, size);
			if (size >= sizeof n) {
				uint64_t seq;
				memcpy(&seq, out, sizeof seq);
				if (seq != n)
					bad_sequence(n, seq);
			}
		}
		rd->unreleased++;
		if (!rd->per_batch || end || rd->pos == rd->got) {
			if ((rc = tachyon_bus_release_to(b, m->end, rd->unreleased)) < 0)
				die("release", rc);
			rd->unreleased = 0;
		}
		if (end)
			break;
		if (n++ == 0)
			t_first = rd->t_batch;
		t_last = rd->t_batch;
	}
	return rate(n, t_first, t_last, size);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct options o = parse(argc, argv);
	char path[108];
	snprintf(path, sizeof path, "/tmp/tachyon-stream-%d.sock", (int)getpid());
	size_t max_size = 8;
	for (int i = 0; i < o.nsizes; i++)
		if (o.sizes[i] > max_size)
			max_size = o.sizes[i];

	floor_ring *fr = mmap(NULL, sizeof(floor_ring) + o.capacity, PROT_READ | PROT_WRITE,
	                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fr == MAP_FAILED)
		die("mmap", errno);
	tachyon_listener *l;
	int rc = tachyon_listener_open(path, o.capacity, NULL, &l);
	if (rc < 0)
		die("listen", rc);
	tachyon_wait connect_wait = {tachyon_deadline_after(INT64_C(5000000000)), 0, NULL, NULL};
	pid_t child = fork();
	if (child < 0)
		die("fork", errno);
	if (child == 0) {
		bench_pin(o.cpu_child);
		tachyon_bus *b;
		if ((rc = tachyon_bus_connect(path, &connect_wait, &b)) < 0)
			die("connect", rc);
		if ((rc = tachyon_bus_set_role(b, TACHYON_ROLE_PRODUCER)) < 0)
			die("set_role", rc);
		uint8_t *buf = malloc(max_size);
		size_t many = o.batch ? (size_t)o.batch * max_size : 0;
		uint8_t *bufs = many ? malloc(many < MANY_BYTES ? many : MANY_BYTES + max_size) : NULL;
		tachyon_iov *iov = o.batch ? calloc((size_t)o.batch, sizeof *iov) : NULL;
		if (o.batch && (!bufs || !iov))
			die("malloc", ENOMEM);
		if (bufs)
			memset(bufs, 0x5A, many < MANY_BYTES ? many : MANY_BYTES + max_size);
		if (!buf)
			die("malloc", ENOMEM);
		memset(buf, 0x5A, max_size);
		for (int s = 0; s < o.nsizes; s++)
			for (int r = 0; r <= o.rounds; r++) { /* round 0: warm-up */
				floor_produce(fr, o.capacity, o.sizes[s], o.seconds, buf);
				if (o.batch)
					produce_many(b, &o, o.sizes[s], bufs, iov);
				else
					produce_round(b, &o, o.sizes[s], buf);
			}
		tachyon_bus_close(b);
		_exit(0);
	}

	bench_pin(o.cpu_parent);
	tachyon_bus *b;
	if ((rc = tachyon_listener_accept(l, &connect_wait, &b)) < 0)
		die("accept", rc);
	tachyon_listener_close(l);
	if ((rc = tachyon_bus_set_role(b, TACHYON_ROLE_CONSUMER)) < 0)
		die("set_role", rc);
	if (o.pure_spin && (rc = tachyon_bus_set_polling_mode(b, 1)) < 0)
		die("set_polling_mode", rc);
	uint8_t *out = malloc(max_size);
	static reader rd;
	if (!out)
		die("malloc", ENOMEM);

	printf("streaming, capacity %llu, %s consumer, %s, %.2f s x %d rounds per size, cpus %d,%d\n",
	       (unsigned long long)o.capacity, o.pure_spin ? "pure-spin" : "hybrid",
	       o.batch ? "send_many of --batch messages" : "send per message", o.seconds,
	       o.rounds, o.cpu_parent, o.cpu_child);
	printf("%10s %13s %13s %9s %9s %9s %10s\n", "size", "floor msg/s", "ours msg/s", "ours GB/s",
	       "min GB/s", "max GB/s", "ours/floor");
	uint32_t floor_rounds = 0;
	for (int s = 0; s < o.nsizes; s++) {
		size_t size = o.sizes[s];
		double fm[MAX_ROUNDS], um[MAX_ROUNDS], ug[MAX_ROUNDS], ratio[MAX_ROUNDS];
		for (int r = 0; r <= o.rounds; r++) {
			round_result f = floor_consume(fr, o.capacity, size, floor_rounds++, out);
			rd.per_batch = o.batch && size < 4096;
			round_result u = consume_round(b, &rd, size, out);
			if (f.msgs < 2 || u.msgs < 2)
				die("too few messages in a round (raise --seconds)", EINVAL);
			if (r > 0) {
				fm[r - 1] = f.msgs_per_s;
				um[r - 1] = u.msgs_per_s;
				ug[r - 1] = u.gb_per_s;
				ratio[r - 1] = u.msgs_per_s / f.msgs_per_s;
			}
		}
		size_t n = (size_t)o.rounds;
		double med_f = bench_median(fm, n), med_u = bench_median(um, n);
		double med_g = bench_median(ug, n); /* sorts ug: [0] min, [n-1] max */
		double med_r = bench_median(ratio, n);
		printf("%10zu %13.0f %13.0f %9.3f %9.3f %9.3f %10.3f\n", size, med_f, med_u, med_g, ug[0],
		       ug[n - 1], med_r);
		if (o.json)
			printf("{\"bench\":\"stream\",\"size\":%zu,\"capacity\":%llu,\"mode\":\"%s\","
			       "\"batch\":%d,\"rounds\":%d,\"seconds\":%.3f,\"cpus\":[%d,%d],"
			       "\"floor_msgs_per_s\":%.0f,\"msgs_per_s\":%.0f,\"gb_per_s\":%.4f,"
			       "\"gb_per_s_min\":%.4f,\"gb_per_s_max\":%.4f,\"ratio_median\":%.4f,"
			       "\"ratio_min\":%.4f,\"ratio_max\":%.4f}\n",
			       size, (unsigned long long)o.capacity, o.pure_spin ? "pure-spin" : "hybrid",
			       o.batch, o.rounds, o.seconds, o.cpu_parent, o.cpu_child, med_f, med_u, med_g,
			       ug[0], ug[n - 1], med_r, ratio[0], ratio[n - 1]);
		fflush(stdout);
	}
	int status = 0;
	waitpid(child, &status, 0);
	tachyon_bus_close(b);
	tachyon_bus_unref(b);
	free(out);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

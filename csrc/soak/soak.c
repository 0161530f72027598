/*
 * R14 soak: two processes over a real socket, for as long as asked.
 *
 *   soak --seconds N [--session-seconds S] [--seed X] [--inject-leak]
 *
 * The run is a chain of sessions (S seconds each, default 2). Each session
 * forks a child and makes one bus with it through tachyon_bus_listen /
 * tachyon_bus_connect on a fresh socket path; the four pairings take turns
 * (the parent listens or connects, produces or consumes), and the capacity
 * changes (4 KiB, 64 KiB, 1 MiB) so leaks of either end, of the listener and
 * of the connector all accumulate in the long-lived parent.
 *
 * Traffic: random sizes from 0 to capacity/2 - 64 (both ends included),
 * copy sends and in-place reservations (some larger than what is committed),
 * batch receives with messages held and released late (a held one is
 * re-verified after later ones were read: the producer must not overwrite
 * it), and random pauses on both sides so the consumer sleeps on its futex
 * and the producer waits for room. Every message carries its sequence number
 * (type_id and payload) and a checksum; sizes derive from the sequence
 * number, so a loss, duplicate, reorder or torn message is caught. The last
 * message carries the count; then the producer closes and the consumer must
 * see -TACHYON_EPEERCLOSED.
 *
 * Flatness: after each session the parent samples its resident set, its fd
 * count and its number of mappings. After a warm-up (the first session of
 * each pairing) fds and mappings must equal their baseline exactly and the
 * resident set stay within RSS_SLACK of it (a leaked 1 MiB ring mapping
 * shows up within a few sessions). Each child also checks its own fd count
 * around its bus.
 *
 * Prints one line per session and the totals; exits 0 only if every message
 * arrived intact and nothing grew.
 */
#include <dirent.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define LAST_TYPE  0xFFFFFFFFu     /* the producer's final message: its count */
#define HANG_MS    10000           /* a wait this long is a failure, not a pause */
#define RSS_SLACK  (2u << 20)      /* bytes of resident-set noise tolerated */
#define MAX_HELD   8

static const uint64_t capacities[] = {4096, 64 * 1024, 1024 * 1024};

typedef struct session_cfg {
	const char *path;
	uint64_t cap;
	uint64_t seed;
	int listen;       /* this process listens (else connects) */
	int produce;      /* this process produces (else consumes) */
	double seconds;
} session_cfg;

typedef struct session_out {
	uint64_t msgs, bytes, laps, waits, lost_wakeups;
} session_out;

/* ---- messages ------------------------------------------------------------ */

static uint32_t size_of(uint64_t seq, uint64_t seed, uint64_t cap)
{
	uint64_t maxp = cap / 2 - 64;
	uint64_t st = (seq ^ seed) * 0x9E3779B97F4A7C15ull + 1;
	uint64_t r = test_rand(&st);
	switch (r % 8) {
	case 0:
		return 0;
	case 1:
		return (uint32_t)maxp;
	case 2:
	case 3:
		return (uint32_t)((r >> 8) % 256);
	default:
		return (uint32_t)((r >> 8) % (maxp + 1));
	}
}

static int verify(const tachyon_msg *m, uint64_t seq, uint64_t seed, uint64_t cap)
{
	if (m->type_id != (uint32_t)seq || m->size != size_of(seq, seed, cap))
		return 0;
	return test_check_payload(m->data, m->size, seq);
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Now and then a pause of 1..30 ms: the other side must sleep and wake. */
static void maybe_pause(uint64_t *rng)
{
	uint64_t r = test_rand(rng);
	if (r % 4000 == 0)
		pause_ms(1 + (unsigned)((r >> 16) % 30));
}

/* ---- the two roles --------------------------------------------------------- */

static int produce(tachyon_bus *b, const session_cfg *cfg, session_out *out)
{
	uint64_t maxp = cfg->cap / 2 - 64;
	uint8_t *buf = malloc(maxp);
	if (!buf)
		return 1;
	uint64_t rng = cfg->seed + 1;
	int64_t stop = tachyon_now_ns() + (int64_t)(cfg->seconds * 1e9);
	uint64_t seq = 0;
	int rc = 0;
	for (;; seq++) {
		if ((seq & 15) == 0 && tachyon_now_ns() >= stop)
			break;
		uint32_t size = size_of(seq, cfg->seed, cfg->cap);
		tachyon_wait w = test_wait_ms(HANG_MS);
		void *pl;
		uint64_t r = test_rand(&rng);
		if (r % 3 == 0) {
			test_fill_message(buf, size, seq);
			rc = tachyon_bus_send(b, buf, size, (uint32_t)seq, &w);
		} else {
			uint64_t more = (r % 3 == 1) ? size : size + (r >> 32) % 512;
			if (more > maxp)
				more = maxp;
			rc = tachyon_bus_reserve(b, more, &pl, &w);
			if (rc == 0) {
				test_fill_message(pl, size, seq);
				rc = tachyon_bus_commit(b, size, (uint32_t)seq);
			}
			if (rc == 0 && (r >> 8) % 7 == 0)
				rc = tachyon_bus_flush(b);
		}
		if (rc != 0) {
			fprintf(stderr, "soak: producer: message %llu: %s\n", (unsigned long long)seq,
			        tachyon_strerror(rc));
			free(buf);
			return 1;
		}
		out->bytes += size;
		maybe_pause(&rng);
	}
	free(buf);
	out->msgs = seq;
	tachyon_wait w = test_wait_ms(HANG_MS);
	rc = tachyon_bus_send(b, &seq, sizeof seq, LAST_TYPE, &w);
	if (rc != 0) {
		fprintf(stderr, "soak: producer: final message: %s\n", tachyon_strerror(rc));
		return 1;
	}
	return 0;
}

static int consume(tachyon_bus *b, const session_cfg *cfg, session_out *out)
{
	uint64_t rng = cfg->seed + 2;
	uint64_t seq = 0, first_pos = 0, last_end = 0;
	tachyon_msg held[MAX_HELD];
	uint64_t held_seq[MAX_HELD];
	unsigned nheld = 0;
	int have_first = 0;
	for (;;) {
		tachyon_msg ms[16];
		size_t want = 1 + test_rand(&rng) % 16;
		tachyon_wait w = test_wait_ms(0);
		int n = -ETIMEDOUT;
		if (nheld) {
			/* Held slots may be what the producer waits for: try first,
			 * and release them before blocking (else both sides wait). */
			n = tachyon_bus_recv_batch(b, ms, want, &w);
			if (n == -ETIMEDOUT || n == -EAGAIN) {
				if (!verify(&held[0], held_seq[0], cfg->seed, cfg->cap)) {
					fprintf(stderr, "soak: consumer: held message %llu was overwritten\n",
					        (unsigned long long)held_seq[0]);
					return 1;
				}
				if (tachyon_bus_release_to(b, held[nheld - 1].end, nheld) != 0)
					return 1;
				nheld = 0;
			}
		}
		int64_t t0 = tachyon_now_ns();
		if (n == -ETIMEDOUT || n == -EAGAIN) {
			w = test_wait_ms(HANG_MS);
			n = tachyon_bus_recv_batch(b, ms, want, &w);
		}
		if (tachyon_now_ns() - t0 > 1000000)
			out->waits++;
		if (n < 0) {
			fprintf(stderr, "soak: consumer: after %llu messages: %s\n",
			        (unsigned long long)seq, tachyon_strerror(n));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			const tachyon_msg *m = &ms[i];
			if (!have_first) {
				first_pos = m->pos;
				have_first = 1;
			}
			last_end = m->end;
			if (m->type_id == LAST_TYPE && m->size == sizeof(uint64_t)) {
				uint64_t count;
				memcpy(&count, m->data, sizeof count);
				if (count != seq) {
					fprintf(stderr, "soak: consumer: producer sent %llu, received %llu\n",
					        (unsigned long long)count, (unsigned long long)seq);
					return 1;
				}
				if (tachyon_bus_release_to(b, m->end, nheld + 1) != 0)
					return 1;
				/* then the close, and nothing after it */
				w = test_wait_ms(HANG_MS);
				tachyon_msg extra;
				int rc = tachyon_bus_recv(b, &extra, &w);
				if (rc != -TACHYON_EPEERCLOSED) {
					fprintf(stderr, "soak: consumer: after the last message: %s\n",
					        rc == 0 ? "one more message" : tachyon_strerror(rc));
					return 1;
				}
				out->msgs = seq;
				out->laps = (last_end - first_pos) / cfg->cap;
				tachyon_stats st;
				if (tachyon_bus_stats(b, &st) == 0)
					out->lost_wakeups = st.lost_wakeups;
				return 0;
			}
			if (!verify(m, seq, cfg->seed, cfg->cap)) {
				fprintf(stderr, "soak: consumer: message %llu lost, reordered or corrupt "
				        "(type_id %u, size %u)\n", (unsigned long long)seq, m->type_id, m->size);
				return 1;
			}
			out->bytes += m->size;
			/* hold some, release late; re-verify the oldest held one first */
			if (nheld < MAX_HELD && test_rand(&rng) % 4 == 0) {
				held[nheld] = *m;
				held_seq[nheld++] = seq;
			} else {
				if (nheld && !verify(&held[0], held_seq[0], cfg->seed, cfg->cap)) {
					fprintf(stderr, "soak: consumer: held message %llu was overwritten\n",
					        (unsigned long long)held_seq[0]);
					return 1;
				}
				if (tachyon_bus_release_to(b, m->end, nheld + 1) != 0)
					return 1;
				nheld = 0;
			}
			seq++;
		}
		maybe_pause(&rng);
	}
}

static int run_session_side(const session_cfg *cfg, session_out *out)
{
	tachyon_bus *b = NULL;
	tachyon_wait w = test_wait_ms(HANG_MS);
	int rc = cfg->listen ? tachyon_bus_listen(cfg->path, cfg->cap, NULL, &w, &b)
	                     : tachyon_bus_connect(cfg->path, &w, &b);
	if (rc != 0) {
		fprintf(stderr, "soak: %s: %s\n", cfg->listen ? "listen" : "connect",
		        tachyon_strerror(rc));
		return 1;
	}
	int bad = cfg->produce ? produce(b, cfg, out) : consume(b, cfg, out);
	tachyon_bus_close(b);
	tachyon_bus_unref(b);
	return bad;
}

/* ---- flatness ---------------------------------------------------------------- */

static long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* ---- main -------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	double seconds = 60, session_seconds = 2;
	uint64_t seed = (uint64_t)time(NULL);
	/* --inject-leak: leak one fd per session on purpose, to show that the
	 * flatness check fails (a check that cannot fail proves nothing). */
	int inject_leak = 0;
	static const struct option opts[] = {
		{"seconds", required_argument, NULL, 's'},
		{"session-seconds", required_argument, NULL, 'S'},
		{"seed", required_argument, NULL, 'x'},
		{"inject-leak", no_argument, NULL, 'L'},
		{NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': seconds = atof(optarg); break;
		case 'S': session_seconds = atof(optarg); break;
		case 'x': seed = strtoull(optarg, NULL, 0); break;
		case 'L': inject_leak = 1; break;
		default:
			fprintf(stderr, "usage: soak [--seconds N] [--session-seconds S] [--seed X]\n");
			return 2;
		}
	}
	if (seconds <= 0 || session_seconds <= 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	printf("soak: %.0f s, sessions of %.1f s, seed %llu\n", seconds, session_seconds,
	       (unsigned long long)seed);
	fflush(stdout);

	int64_t start = tachyon_now_ns();
	int64_t end = start + (int64_t)(seconds * 1e9);
	session_out total = {0};
	long rss_base = -1, rss_max = 0;
	int fds_base = -1, maps_base = -1;
	int failed = 0;
	unsigned s = 0;
	for (; !failed && (s == 0 || tachyon_now_ns() < end); s++) {
		double left = (double)(end - tachyon_now_ns()) / 1e9;
		char path[128];
		session_cfg cfg = {
			.path = test_socket_path(path, sizeof path, "soak"),
			.cap = capacities[(s / 4) % 3],
			.seed = seed * 1000003 + s,
			.listen = (s & 1) == 0,
			.produce = (s & 2) != 0,
			.seconds = left < session_seconds ? (left > 0.5 ? left : 0.5) : session_seconds,
		};
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			/* The child: the other role; checks its own fds around the bus. */
			session_cfg mine = cfg;
			mine.listen = !cfg.listen;
			mine.produce = !cfg.produce;
			int fds0 = test_count_fds();
			session_out out = {0};
			int bad = run_session_side(&mine, &out);
			int fds1 = test_count_fds();
			if (fds1 != fds0) {
				fprintf(stderr, "soak: child: %d fds before the bus, %d after\n", fds0, fds1);
				bad = 1;
			}
			_exit(bad);
		}
		session_out out = {0};
		int bad = run_session_side(&cfg, &out);
		int child = test_wait_child(pid);
		if (inject_leak && s > 11)
			(void)dup(1);
		if (bad || child != 0) {
			fprintf(stderr, "soak: session %u failed (parent %d, child exit %d)\n", s, bad, child);
			failed = 1;
		}
		long rss = rss_bytes();
		int fds = test_count_fds(), maps = count_maps();
		/* Baseline after every pairing and capacity ran once. */
		if (s == 11) {
			rss_base = rss;
			fds_base = fds;
			maps_base = maps;
		}
		if (rss > rss_max)
			rss_max = rss;
		const char *grew = "";
		if (s > 11) {
			if (fds != fds_base)
				grew = " FDS GREW";
			else if (maps != maps_base)
				grew = " MAPPINGS GREW";
			else if (rss > rss_base + (long)RSS_SLACK)
				grew = " RSS GREW";
			if (*grew)
				failed = 1;
		}
		total.msgs += out.msgs;
		total.bytes += out.bytes;
		total.laps += out.laps;
		total.waits += out.waits;
		total.lost_wakeups += out.lost_wakeups;
		printf("session %u: cap %llu, parent %s+%s: %llu msgs, %.1f MB%s, rss %ld KiB, "
		       "%d fds, %d maps%s\n",
		       s, (unsigned long long)cfg.cap, cfg.listen ? "listens" : "connects",
		       cfg.produce ? "produces" : "consumes", (unsigned long long)out.msgs,
		       (double)out.bytes / 1e6, cfg.produce ? "" : " received", rss / 1024, fds, maps,
		       grew);
		fflush(stdout);
	}
	double secs = (double)(tachyon_now_ns() - start) / 1e9;
	printf("soak: %s after %.1f s: %u sessions, %llu messages, %.1f MB, %llu ring laps "
	       "(consumer side of the parent), %llu consumer waits >= 1 ms, %llu lost wake-ups; "
	       "rss max %ld KiB (baseline %ld), fds %d, maps %d\n",
	       failed ? "FAILED" : "ok", secs, s, (unsigned long long)total.msgs,
	       (double)total.bytes / 1e6, (unsigned long long)total.laps,
	       (unsigned long long)total.waits, (unsigned long long)total.lost_wakeups,
	       rss_max / 1024, rss_base / 1024, fds_base, maps_base);
	if (s <= 11)
		printf("soak: note: fewer than 13 sessions, so the flatness checks did not run "
		       "(give --seconds >= 13 x --session-seconds)\n");
	return failed;
}

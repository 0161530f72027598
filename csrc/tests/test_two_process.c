/*
 * Two processes over a real socket: one listens, the other (forked) connects;
 * both pairings (the listener produces, the listener consumes). Up to a
 * million messages or a wall-time cap, whichever comes first; the count is
 * printed. Sizes are random in 0..capacity/2-64 inclusive (both ends hit),
 * in a 64 KiB ring, so it wraps constantly. Every message carries its
 * sequence number (type_id, and in the payload when it has room) and a
 * checksum; the consumer recomputes the expected size from the sequence
 * number. The consumer takes batches, releases them at random points
 * (lagging release cursor) and re-checks a still-pinned message after
 * reading past it: the producer must not have overwritten it.
 *
 * Time cap per pairing: TACHYON_STRESS_SECONDS, else 5 s (2 s under a
 * sanitizer).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define CAP       (64u * 1024u)
#define MAXP      (CAP / 2 - 64)
#define MAX_MSGS  1000000u
#define LAST_TYPE 0xFFFFFFFFu   /* the producer's final message: its count */
#define BATCH     16
#define HANG_MS   10000         /* a wait this long is a failure, not a slow peer */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_SECONDS 2
#else
#define DEFAULT_SECONDS 5
#endif

static double seconds_cap(void)
{
	const char *e = getenv("TACHYON_STRESS_SECONDS");
	double s = e ? atof(e) : 0;
	return s > 0 ? s : DEFAULT_SECONDS;
}

/* The size of message seq: both ends compute it. */
static uint32_t size_of(uint64_t seq)
{
	if (seq % 53 == 0)
		return MAXP;
	if (seq % 53 == 1)
		return 0;
	uint64_t st = seq * 0x9E3779B97F4A7C15ull + 1;
	return (uint32_t)(test_rand(&st) % (MAXP + 1));
}

static int verify(const tachyon_msg *m, uint64_t seq)
{
	if (m->type_id != (uint32_t)seq || m->size != size_of(seq))
		return 0;
	return test_check_payload(m->data, m->size, seq);
}

static int produce(tachyon_bus *b, const char *who)
{
	static uint8_t buf[MAXP];
	int64_t start = tachyon_now_ns();
	int64_t stop = start + (int64_t)(seconds_cap() * 1e9);
	uint64_t seq = 0, bytes = 0;
	int rc = 0;
	for (; seq < MAX_MSGS; seq++) {
		if ((seq & 63) == 0 && tachyon_now_ns() >= stop)
			break;
		uint32_t size = size_of(seq);
		tachyon_wait w = test_wait_ms(HANG_MS);
		void *pl;
		switch (seq % 3) {
		case 0: /* copy + commit + flush */
			test_fill_message(buf, size, seq);
			rc = tachyon_bus_send(b, buf, size, (uint32_t)seq, &w);
			break;
		case 1: /* in place, published by the batch rule */
			rc = tachyon_bus_reserve(b, size, &pl, &w);
			if (rc == 0) {
				test_fill_message(pl, size, seq);
				rc = tachyon_bus_commit(b, size, (uint32_t)seq);
			}
			break;
		default: { /* reserve more than is committed */
			uint32_t more = size + 100 > MAXP ? MAXP : size + 100;
			rc = tachyon_bus_reserve(b, more, &pl, &w);
			if (rc == 0) {
				test_fill_message(pl, size, seq);
				rc = tachyon_bus_commit(b, size, (uint32_t)seq);
			}
			break;
		}
		}
		if (rc != 0) {
			fprintf(stderr, "%s: producer: message %llu: %s\n", who, (unsigned long long)seq,
			        tachyon_strerror(rc));
			return 1;
		}
		bytes += size;
	}
	uint64_t count = seq;
	tachyon_wait w = test_wait_ms(HANG_MS);
	rc = tachyon_bus_send(b, &count, sizeof count, LAST_TYPE, &w);
	if (rc != 0) {
		fprintf(stderr, "%s: producer: final message: %s\n", who, tachyon_strerror(rc));
		return 1;
	}
	printf("%s: produced %llu messages, %.1f MB, ~%llu ring laps, in %.2f s\n", who,
	       (unsigned long long)count, bytes / 1e6, (unsigned long long)(bytes / CAP),
	       (tachyon_now_ns() - start) / 1e9);
	tachyon_bus_close(b);
	return 0;
}

static int consume(tachyon_bus *b, const char *who)
{
	tachyon_msg msgs[BATCH];
	uint64_t expect = 0, rng = 77, pinned_checks = 0, final_count = UINT64_MAX;
	/* Unreleased messages: release cursor at rel, the first one kept for a
	 * re-check (pin), how many there are. */
	uint64_t rel = 0;
	tachyon_msg pin;
	uint64_t pin_seq = 0;
	uint32_t unreleased = 0;
	uint64_t read_end = 0;
	int bad = 0;

	if (tachyon_bus_set_role(b, TACHYON_ROLE_CONSUMER) != 0)
		return 1;

	for (;;) {
		/* Never block while holding slots: the producer may need them. */
		tachyon_wait w = test_wait_ms(unreleased ? 0 : HANG_MS);
		int n = tachyon_bus_recv_batch(b, msgs, 1 + test_rand(&rng) % BATCH, &w);
		if (n == -ETIMEDOUT && unreleased) {
			if (!verify(&pin, pin_seq))
				bad = 1;
			if (tachyon_bus_release_to(b, read_end, unreleased) != 0)
				bad = 1;
			rel = read_end;
			unreleased = 0;
			continue;
		}
		if (n == -TACHYON_EPEERCLOSED)
			break;
		if (n < 0) {
			fprintf(stderr, "%s: consumer: after %llu: %s\n", who, (unsigned long long)expect,
			        tachyon_strerror(n));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			if (msgs[i].type_id == LAST_TYPE && msgs[i].size == 8) {
				memcpy(&final_count, msgs[i].data, 8);
				continue;
			}
			if (final_count != UINT64_MAX || !verify(&msgs[i], expect)) {
				fprintf(stderr, "%s: consumer: message %llu bad (type %u size %u)\n", who,
				        (unsigned long long)expect, msgs[i].type_id, msgs[i].size);
				return 1;
			}
			expect++;
		}
		if (unreleased) {
			/* Read past it; it must be intact. */
			if (!verify(&pin, pin_seq)) {
				fprintf(stderr, "%s: consumer: pinned message %llu overwritten\n", who,
				        (unsigned long long)pin_seq);
				return 1;
			}
			pinned_checks++;
		}
		/* Release up to a random message of this batch (or none, or all);
		 * the rest stay pinned. */
		int k = (int)(test_rand(&rng) % (uint64_t)(n + 2)) - 1; /* -1 .. n */
		if (k >= n || msgs[n - 1].end - rel > CAP / 2)
			k = n - 1;
		uint64_t first_seq = expect - (uint64_t)n;
		if (msgs[n - 1].type_id == LAST_TYPE)
			first_seq++;
		if (k >= 0) {
			uint32_t cnt = unreleased + (uint32_t)k + 1;
			if (tachyon_bus_release_to(b, msgs[k].end, cnt) != 0) {
				fprintf(stderr, "%s: consumer: release_to failed\n", who);
				return 1;
			}
			rel = msgs[k].end;
			unreleased = 0;
		}
		if (k < n - 1) {
			if (unreleased == 0 && msgs[k + 1].type_id != LAST_TYPE) {
				pin = msgs[k + 1];
				pin_seq = first_seq + (uint64_t)(k + 1);
			} else if (unreleased == 0) {
				pin = msgs[k + 1]; /* the final message: nothing to re-check */
				pin_seq = UINT64_MAX;
			}
			unreleased += (uint32_t)(n - 1 - k);
		}
		read_end = msgs[n - 1].end;
		if (unreleased && pin_seq == UINT64_MAX) {
			if (tachyon_bus_release_to(b, read_end, unreleased) != 0)
				bad = 1;
			rel = read_end;
			unreleased = 0;
		}
	}
	if (final_count != expect) {
		fprintf(stderr, "%s: consumer: got %llu messages, the producer sent %llu\n", who,
		        (unsigned long long)expect, (unsigned long long)final_count);
		return 1;
	}
	tachyon_stats st;
	if (tachyon_bus_stats(b, &st) != 0)
		return 1;
	printf("%s: consumed %llu messages, %llu re-checks of a pinned message, %llu lost wake-ups\n",
	       who, (unsigned long long)expect, (unsigned long long)pinned_checks,
	       (unsigned long long)st.lost_wakeups);
	return bad;
}

static int run_end(tachyon_bus *b, int producer, const char *who)
{
	int r = producer ? produce(b, who) : consume(b, who);
	tachyon_bus_unref(b);
	return r;
}

static void pairing(int listener_produces)
{
	char path[108];
	test_socket_path(path, sizeof path, "two");
	const char *who = listener_produces ? "listener produces" : "listener consumes";
	fflush(stdout);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		alarm(60);
		tachyon_bus *b;
		tachyon_wait w = test_wait_ms(5000);
		int rc = tachyon_bus_connect(path, &w, &b);
		if (rc != 0) {
			fprintf(stderr, "connect: %s\n", tachyon_strerror(rc));
			_exit(1);
		}
		int r = run_end(b, !listener_produces, who);
		fflush(stdout);
		_exit(r);
	}
	tachyon_bus *b;
	tachyon_wait w = test_wait_ms(5000);
	int rc = tachyon_bus_listen(path, CAP, NULL, &w, &b);
	if (rc != 0) {
		fprintf(stderr, "listen: %s\n", tachyon_strerror(rc));
		kill(pid, SIGKILL);
		test_wait_child(pid);
		test_failures++;
		return;
	}
	CHECK_EQ(run_end(b, listener_produces, who), 0);
	CHECK_EQ(test_wait_child(pid), 0);
}

int main(void)
{
	alarm(120); /* a hang is a failure, never a stuck CI job */
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fds = test_count_fds();
	pairing(1);
	pairing(0);
	CHECK_EQ(test_count_fds(), fds);
	return test_result("test_two_process");
}

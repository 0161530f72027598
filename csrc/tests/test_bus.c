/*
 * The bus object within one process: roles, timeouts, close from another
 * thread (latency printed), close idempotence and flush-on-close, the
 * interrupted callback and EINTR, the fork check, polling-mode words, stats,
 * a reservation that can never fit, a full ring with a deadline.
 *
 * Each pair is a real listen/connect over a socket path (the listener in a
 * thread); the two ends live in this process, so the peer is SELF. Two
 * tests play a 0.5.1 peer by hand on a second mapping of a region (no
 * marker, no wake): -TACHYON_ESTUCK and the lost-wake counter (R6).
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "testlib.h"

#define CAP 4096u

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static double ms_since(int64_t t0)
{
	return (double)(tachyon_now_ns() - t0) / 1e6;
}

/* A connected pair: *l the listener end, *c the connector end. */
static void make_pair(tachyon_bus **l, tachyon_bus **c)
{
	test_make_pair(CAP, TACHYON_ROLE_NONE, "bus", l, c);
}

static void free_pair(tachyon_bus *l, tachyon_bus *c)
{
	tachyon_bus_unref(l);
	tachyon_bus_unref(c);
}

static tachyon_wait now_wait(void)
{
	return test_wait_ms(0);
}

/* Send a message of n bytes whose bytes are `fill`; returns the bus code. */
static int send_fill(tachyon_bus *b, size_t n, int fill, uint32_t type_id, int64_t timeout_ms)
{
	char buf[CAP];
	memset(buf, fill, n);
	tachyon_wait w = test_wait_ms(timeout_ms);
	return tachyon_bus_send(b, buf, n, type_id, &w);
}

/* Fill the ring with 200-byte messages until send says -EAGAIN. */
static int fill_ring(tachyon_bus *p)
{
	int n = 0;
	int rc;
	while ((rc = send_fill(p, 200, 'f', 0, 0)) == 0)
		n++;
	CHECK_EQ(rc, -EAGAIN);
	return n;
}

/* ------------------------------------------------------------------------ */

static void test_roles(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	CHECK_EQ(tachyon_bus_role(l), TACHYON_ROLE_NONE);
	CHECK_EQ(tachyon_bus_set_role(l, 7), -EINVAL);

	/* The first data call fixes the role. */
	tachyon_msg m;
	tachyon_wait w = now_wait();
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -ETIMEDOUT);
	CHECK_EQ(tachyon_bus_role(l), TACHYON_ROLE_CONSUMER);
	CHECK_EQ(send_fill(l, 8, 'x', 0, 0), -TACHYON_EROLE);
	void *pl;
	CHECK_EQ(tachyon_bus_reserve(l, 8, &pl, &w), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_flush(l), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_commit(l, 0, 0), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_set_role(l, TACHYON_ROLE_PRODUCER), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_set_role(l, TACHYON_ROLE_CONSUMER), 0);

	CHECK_EQ(tachyon_bus_flush(c), 0);
	CHECK_EQ(tachyon_bus_role(c), TACHYON_ROLE_PRODUCER);
	CHECK_EQ(tachyon_bus_recv(c, &m, &w), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_recv_batch(c, &m, 1, &w), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_release_to(c, 0, 0), -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_set_role(c, TACHYON_ROLE_CONSUMER), -TACHYON_EROLE);

	/* Up front, by set_role. */
	tachyon_bus *l2, *c2;
	make_pair(&l2, &c2);
	CHECK_EQ(tachyon_bus_set_role(l2, TACHYON_ROLE_PRODUCER), 0);
	CHECK_EQ(tachyon_bus_set_role(c2, TACHYON_ROLE_CONSUMER), 0);
	CHECK_EQ(tachyon_bus_recv(l2, &m, &w), -TACHYON_EROLE);
	CHECK_EQ(send_fill(l2, 3, 'r', 42, 0), 0);
	CHECK_EQ(tachyon_bus_recv(c2, &m, &w), 0);
	CHECK_EQ(m.size, 3);
	CHECK_EQ(m.type_id, 42);
	CHECK(memcmp(m.data, "rrr", 3) == 0);
	free_pair(l2, c2);
	free_pair(l, c);
}

static void test_timeouts(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	tachyon_msg m[4];
	tachyon_wait w = test_wait_ms(50);
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_recv(l, m, &w), -ETIMEDOUT);
	double el = ms_since(t0);
	printf("recv with a 50 ms deadline returned after %.1f ms\n", el);
	CHECK(el >= 50.0);
	CHECK(el < 1000.0);

	w = test_wait_ms(30);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_recv_batch(l, m, 4, &w), -ETIMEDOUT);
	CHECK(ms_since(t0) >= 30.0);

	/* A message that arrives during the wait ends it. */
	CHECK_EQ(send_fill(c, 10, 'a', 1, 0), 0);
	CHECK_EQ(send_fill(c, 20, 'b', 2, 0), 0);
	w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv_batch(l, m, 4, &w), 2);
	CHECK_EQ(m[0].size, 10);
	CHECK_EQ(m[1].size, 20);
	CHECK_EQ(tachyon_bus_release_to(l, m[1].end, 2), 0);
	free_pair(l, c);
}

struct blocked {
	tachyon_bus *b;
	int is_recv;
	int rc;
	int64_t done_ns;
};

static void *blocked_main(void *p)
{
	struct blocked *a = p;
	if (a->is_recv) {
		tachyon_msg m;
		a->rc = tachyon_bus_recv(a->b, &m, NULL);
	} else {
		void *pl;
		a->rc = tachyon_bus_reserve(a->b, 200, &pl, NULL);
	}
	a->done_ns = tachyon_now_ns();
	return NULL;
}

static void test_close_wakes_recv(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	struct blocked a = {.b = l, .is_recv = 1};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, blocked_main, &a) == 0);
	sleep_ms(300); /* well into its futex sleep */
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_SLEEPING);
	/* While it blocks: asking for the fixed role answers at once; a second
	 * concurrent call of the family breaks the caller's contract: -EBUSY. */
	CHECK_EQ(tachyon_bus_set_role(l, TACHYON_ROLE_CONSUMER), 0);
	CHECK_EQ(tachyon_bus_set_role(l, TACHYON_ROLE_PRODUCER), -TACHYON_EROLE);
	tachyon_msg m2;
	tachyon_wait w0 = now_wait();
	CHECK_EQ(tachyon_bus_recv(l, &m2, &w0), -EBUSY);
	int64_t t0 = tachyon_now_ns();
	tachyon_bus_close(l);
	pthread_join(t, NULL);
	double lat = (double)(a.done_ns - t0) / 1e6;
	printf("close woke a blocked recv after %.3f ms\n", lat);
	CHECK_EQ(a.rc, -TACHYON_ECLOSED);
	CHECK(lat < 1000.0); /* 5x the watchdog */
	/* The producer sees the close. */
	CHECK_EQ(send_fill(c, 8, 'z', 0, 0), -TACHYON_EPEERCLOSED);
	free_pair(l, c);
}

static void test_close_wakes_reserve(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	int n = fill_ring(c);
	CHECK(n > 0);
	struct blocked a = {.b = c, .is_recv = 0};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, blocked_main, &a) == 0);
	sleep_ms(300);
	int64_t t0 = tachyon_now_ns();
	tachyon_bus_close(c);
	pthread_join(t, NULL);
	double lat = (double)(a.done_ns - t0) / 1e6;
	printf("close woke a blocked reserve after %.3f ms\n", lat);
	CHECK_EQ(a.rc, -TACHYON_ECLOSED);
	CHECK(lat < 1000.0);
	/* The consumer gets everything that was sent, then the close. */
	tachyon_msg m;
	tachyon_wait w = test_wait_ms(1000);
	int got = 0, rc;
	while ((rc = tachyon_bus_recv(l, &m, &w)) == 0) {
		CHECK_EQ(m.size, 200);
		CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
		got++;
	}
	CHECK_EQ(rc, -TACHYON_EPEERCLOSED);
	CHECK_EQ(got, n);
	free_pair(l, c);
}

static void test_close_idempotent_and_flush(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	/* Committed but not flushed (fewer than a batch): close publishes. */
	for (int i = 0; i < 5; i++) {
		void *pl;
		tachyon_wait w = now_wait();
		CHECK_EQ(tachyon_bus_reserve(c, 16, &pl, &w), 0);
		memset(pl, 'a' + i, 16);
		CHECK_EQ(tachyon_bus_commit(c, 16, (uint32_t)i), 0);
	}
	/* An open reservation at close is dropped, not published. */
	void *pl;
	tachyon_wait w0 = now_wait();
	CHECK_EQ(tachyon_bus_reserve(c, 16, &pl, &w0), 0);
	tachyon_msg m;
	/* Nothing published yet. (A consumer that reads position stamps may
	 * take committed slots before head says so: only head is asked.) */
	tachyon_stats st0;
	CHECK_EQ(tachyon_bus_stats(l, &st0), 0);
	CHECK_EQ(st0.bytes_in_use, 0);

	CHECK_EQ(tachyon_bus_is_closed(c), 0);
	tachyon_bus_close(c);
	tachyon_bus_close(c);
	CHECK_EQ(tachyon_bus_is_closed(c), 1);
	tachyon_bus_close(c);
	CHECK_EQ(tachyon_bus_commit(c, 16, 9), -TACHYON_ECLOSED);
	CHECK_EQ(tachyon_bus_flush(c), -TACHYON_ECLOSED);
	CHECK_EQ(send_fill(c, 1, 'q', 0, 0), -TACHYON_ECLOSED);
	CHECK_EQ(tachyon_bus_set_polling_mode(c, 0), -TACHYON_ECLOSED);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(c, &st), 0);
	CHECK_EQ(st.state, TACHYON_STATE_CLOSED);

	for (int i = 0; i < 5; i++) {
		tachyon_wait w = test_wait_ms(1000);
		int rc = tachyon_bus_recv(l, &m, &w);
		CHECK_EQ(rc, 0);
		if (rc != 0)
			break;
		CHECK_EQ(m.type_id, i);
		CHECK_EQ(m.size, 16);
		CHECK_EQ(m.data[15], 'a' + i);
		CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	}
	tachyon_wait w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -TACHYON_EPEERCLOSED);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -TACHYON_EPEERCLOSED);
	tachyon_bus_close(l);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -TACHYON_ECLOSED);
	free_pair(l, c);

	/* Dropping the last reference of an unclosed bus closes it. */
	make_pair(&l, &c);
	CHECK_EQ(send_fill(c, 4, 'u', 0, 0), 0);
	tachyon_bus_ref(c);
	tachyon_bus_unref(c); /* one reference left: still open */
	CHECK_EQ(tachyon_bus_is_closed(c), 0);
	tachyon_bus_unref(c);
	w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
	CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -TACHYON_EPEERCLOSED);
	tachyon_bus_unref(l);
}

struct intr_arg {
	_Atomic int flag;
	int calls;
};

static int intr_cb(void *p)
{
	struct intr_arg *a = p;
	a->calls++;
	return a->flag;
}

static void *set_flag_main(void *p)
{
	sleep_ms(100);
	((struct intr_arg *)p)->flag = 1;
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void *signal_main(void *p)
{
	sleep_ms(100);
	pthread_kill(*(pthread_t *)p, SIGUSR1);
	return NULL;
}

static void test_interrupted(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	struct intr_arg ia = {0};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, set_flag_main, &ia) == 0);
	tachyon_wait w = test_wait_ms(-1);
	w.interrupted = intr_cb;
	w.arg = &ia;
	tachyon_msg m;
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -EINTR);
	double el = ms_since(t0);
	pthread_join(t, NULL);
	printf("interrupted callback ended a recv after %.1f ms (%d calls)\n", el, ia.calls);
	CHECK(el < 1000.0);
	CHECK(ia.calls >= 1);

	/* Without the callback, an EINTR from the sleep ends the wait. */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1; /* no SA_RESTART */
	sigaction(SIGUSR1, &sa, NULL);
	pthread_t self = pthread_self();
	REQUIRE(pthread_create(&t, NULL, signal_main, &self) == 0);
	w = test_wait_ms(5000);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -EINTR);
	el = ms_since(t0);
	pthread_join(t, NULL);
	printf("a signal ended a recv with -EINTR after %.1f ms\n", el);
	CHECK(el < 1000.0);

	/* The bus stays usable. */
	CHECK_EQ(send_fill(c, 5, 'i', 0, 0), 0);
	w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
	CHECK_EQ(m.size, 5);
	free_pair(l, c);
}

/* tachyon_bus_interrupt from another thread: the waiting call asks its
 * callback at once, not at the watchdog period. */
struct ask_arg {
	tachyon_bus *bus;
	struct intr_arg *ia;
	int delay_ms;
	int64_t asked_ns;
};

static void *ask_main(void *p)
{
	struct ask_arg *a = p;
	sleep_ms(a->delay_ms); /* the waiter sleeps on its word in watchdog-long steps by now */
	a->ia->flag = 1;
	a->asked_ns = tachyon_now_ns();
	tachyon_bus_interrupt(a->bus);
	return NULL;
}

static void test_interrupt_request(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	tachyon_msg m;
	for (int side = 0; side < 2; side++) {
		struct intr_arg ia = {0};
		/* a waiting producer's sleeps grow from 50 us to the watchdog
		 * period (and it asks the callback after each): ask once they are
		 * long */
		struct ask_arg aa = {side == 0 ? l : c, &ia, side == 0 ? 50 : 500, 0};
		tachyon_wait w = test_wait_ms(-1);
		w.interrupted = intr_cb;
		w.arg = &ia;
		pthread_t t;
		if (side == 1)
			(void)fill_ring(c);
		REQUIRE(pthread_create(&t, NULL, ask_main, &aa) == 0);
		int r;
		if (side == 0) {
			r = tachyon_bus_recv(l, &m, &w);
		} else {
			void *payload;
			r = tachyon_bus_reserve(c, 200, &payload, &w);
		}
		double lag = ms_since(aa.asked_ns);
		pthread_join(t, NULL);
		printf("%s: an interrupt request ended the wait %.2f ms after it was made (bound 50 ms)\n",
		       side == 0 ? "recv" : "reserve", lag);
		CHECK_EQ(r, -EINTR);
		CHECK(lag < 50.0); /* 5x of 10 ms; the watchdog period is 200 ms */
	}
	/* A request made while nothing waits is kept: the next wait asks the
	 * callback at its first round. The ring is still full of 'f's. */
	while (tachyon_bus_recv(l, &m, &(tachyon_wait){.deadline_ns = 0}) == 0)
		CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	struct intr_arg ia = {.flag = 1};
	tachyon_bus_interrupt(l);
	tachyon_wait w = test_wait_ms(-1);
	w.interrupted = intr_cb;
	w.arg = &ia;
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), -EINTR);
	CHECK(ms_since(t0) < 50.0);
	free_pair(l, c);
}

/* What a producer sent and its consumer has not released: ring bytes and
 * messages, counted from the producer's own slot headers. */
static void test_unreleased(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	uint64_t bytes = 1, msgs = 1;
	CHECK_EQ(tachyon_bus_unreleased(c, &bytes, &msgs), -EINVAL); /* no role yet */
	CHECK_EQ(send_fill(c, 200, 'u', 0, 0), 0);
	CHECK_EQ(tachyon_bus_unreleased(c, &bytes, &msgs), 0);
	CHECK_EQ(bytes, 320); /* 64-byte header + 200, rounded up to 64 */
	CHECK_EQ(msgs, 1);
	int n = 1 + fill_ring(c);
	CHECK_EQ(tachyon_bus_unreleased(c, &bytes, &msgs), 0);
	CHECK_EQ(msgs, n);
	CHECK_EQ(bytes, 320 * (uint64_t)n);
	/* read two, release one: only the released one leaves the count */
	tachyon_msg m[2];
	tachyon_wait w = now_wait();
	CHECK_EQ(tachyon_bus_recv_batch(l, m, 2, &w), 2);
	CHECK_EQ(tachyon_bus_release_to(l, m[0].end, 1), 0);
	CHECK_EQ(tachyon_bus_publish_release(l), 0);
	CHECK_EQ(tachyon_bus_unreleased(c, &bytes, &msgs), 0);
	CHECK_EQ(msgs, n - 1);
	CHECK_EQ(tachyon_bus_unreleased(l, &bytes, &msgs), -EINVAL); /* a consumer end */
	free_pair(l, c);
}

static void test_fork(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	CHECK_EQ(send_fill(c, 7, 'p', 1, 0), 0);
	tachyon_msg m;
	tachyon_wait w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
	/* an unreleased message and a pending commit cross the fork */
	void *pl;
	CHECK_EQ(tachyon_bus_reserve(c, 9, &pl, &w), 0);
	memset(pl, 'k', 9);
	CHECK_EQ(tachyon_bus_commit(c, 9, 2), 0);

	fflush(stdout);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		tachyon_msg cm;
		tachyon_stats st;
		bad |= tachyon_bus_recv(l, &cm, &w) != -TACHYON_EFORKED;
		bad |= tachyon_bus_release_to(l, m.end, 1) != -TACHYON_EFORKED;
		bad |= send_fill(c, 3, 'c', 0, 0) != -TACHYON_EFORKED;
		bad |= tachyon_bus_flush(c) != -TACHYON_EFORKED;
		bad |= tachyon_bus_stats(l, &st) != -TACHYON_EFORKED;
		bad |= tachyon_bus_set_polling_mode(l, 1) != -TACHYON_EFORKED;
		bad |= tachyon_bus_set_role(l, TACHYON_ROLE_CONSUMER) != -TACHYON_EFORKED;
		/* the inherited message stays readable */
		bad |= m.size != 7 || m.data[0] != 'p';
		tachyon_bus_close(l);
		tachyon_bus_close(c);
		tachyon_bus_unref(l);
		tachyon_bus_unref(c);
		_exit(bad ? 1 : 0);
	}
	CHECK_EQ(test_wait_child(pid), 0);

	/* Nothing shared changed: no close, the stream goes on. */
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.state, TACHYON_STATE_READY);
	CHECK_EQ(st.bytes_pinned, 128);
	CHECK_EQ(tachyon_bus_is_closed(l), 0);
	CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	CHECK_EQ(tachyon_bus_flush(c), 0);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
	CHECK_EQ(m.type_id, 2);
	CHECK_EQ(m.size, 9);
	CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	CHECK_EQ(send_fill(c, 3, 'd', 3, 0), 0);
	CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
	CHECK_EQ(m.type_id, 3);
	free_pair(l, c);
}

static void wait_for_word(tachyon_bus *b, uint32_t want)
{
	tachyon_stats st;
	for (int i = 0; i < 2000; i++) {
		REQUIRE(tachyon_bus_stats(b, &st) == 0);
		if (st.consumer_wait == want)
			return;
		sleep_ms(1);
	}
	CHECK_EQ(st.consumer_wait, want);
}

static void test_polling_mode(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_set_polling_mode(l, 2), -EINVAL);
	CHECK_EQ(tachyon_bus_set_polling_mode(l, 1), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_PURE_SPIN);
	CHECK_EQ(tachyon_bus_set_polling_mode(c, 1), 0); /* either end; already 2 */
	CHECK_EQ(tachyon_bus_set_polling_mode(c, 0), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_AWAKE);
	CHECK_EQ(tachyon_bus_set_polling_mode(l, 0), 0); /* our consumer: hybrid again */

	/* Over a sleeping consumer: 1 -> 2 and a wake; the consumer then spins
	 * (kept short: two vCPUs) until a message comes. */
	struct blocked a = {.b = l, .is_recv = 1};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, blocked_main, &a) == 0);
	wait_for_word(l, TACHYON_WAIT_SLEEPING);
	CHECK_EQ(tachyon_bus_set_polling_mode(c, 1), 0);
	CHECK_EQ(tachyon_bus_stats(c, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_PURE_SPIN);
	sleep_ms(5);
	/* the woken consumer left 2 alone (it never sleeps over it) */
	CHECK_EQ(tachyon_bus_stats(c, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_PURE_SPIN);
	CHECK_EQ(send_fill(c, 1, 'w', 5, 0), 0);
	pthread_join(t, NULL);
	CHECK_EQ(a.rc, 0);
	CHECK_EQ(tachyon_bus_set_polling_mode(c, 0), 0);
	CHECK_EQ(tachyon_bus_stats(c, &st), 0);
	CHECK_EQ(st.consumer_wait, TACHYON_WAIT_AWAKE);
	free_pair(l, c);
}

static void test_stats(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.capacity, CAP);
	CHECK_EQ(tachyon_bus_capacity(l), CAP);
	CHECK_EQ(st.bytes_in_use, 0);
	CHECK_EQ(st.bytes_pinned, 0);
	CHECK_EQ(st.state, TACHYON_STATE_READY);
	CHECK_EQ(st.role, TACHYON_ROLE_NONE);
	CHECK_EQ(st.peer_pid, getpid());
	CHECK_EQ(st.peer_liveness, TACHYON_PEER_SELF);
	CHECK_EQ(tachyon_bus_peer_liveness(c), TACHYON_PEER_SELF);
	CHECK_EQ(tachyon_bus_peer_pid(c), getpid());

	CHECK_EQ(send_fill(c, 100, 's', 0, 0), 0); /* slot 192 */
	CHECK_EQ(send_fill(c, 0, 's', 0, 0), 0);   /* slot 64 */
	CHECK_EQ(tachyon_bus_stats(c, &st), 0);
	CHECK_EQ(st.bytes_in_use, 256);
	CHECK_EQ(st.role, TACHYON_ROLE_PRODUCER);
	CHECK_EQ(st.bytes_pinned, 0);

	tachyon_msg m[3];
	tachyon_wait w = test_wait_ms(1000);
	CHECK_EQ(tachyon_bus_recv(l, &m[0], &w), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_pinned, 192);
	CHECK_EQ(st.role, TACHYON_ROLE_CONSUMER);
	CHECK_EQ(tachyon_bus_recv(l, &m[1], &w), 0);
	CHECK_EQ(m[1].size, 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_pinned, 256);
	/* release in ring order, lagging behind the read cursor */
	CHECK_EQ(tachyon_bus_release_to(l, m[0].end, 1), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_pinned, 64);
	CHECK_EQ(tachyon_bus_release_to(l, m[1].end, 1), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_pinned, 0);
	CHECK_EQ(tachyon_bus_release_to(l, m[1].end + 64, 1), -EINVAL);
	/* an empty peek publishes the release point */
	w = now_wait();
	CHECK_EQ(tachyon_bus_recv(l, &m[0], &w), -ETIMEDOUT);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_in_use, 0);
	CHECK_EQ(st.lost_wakeups, 0);

	/* a late release (below the batch, short of the head seen) stays
	 * private until published; the release that catches up with that head
	 * is published at once (the consumer may go idle after it) */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(send_fill(c, 100, 's', 0, 0), 0);
	w = test_wait_ms(1000);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(tachyon_bus_recv(l, &m[i], &w), 0);
	CHECK_EQ(tachyon_bus_release_to(l, m[1].end, 2), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_in_use, 576);
	CHECK_EQ(tachyon_bus_publish_release(l), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_in_use, 192);
	CHECK_EQ(tachyon_bus_release_to(l, m[2].end, 1), 0);
	CHECK_EQ(tachyon_bus_stats(l, &st), 0);
	CHECK_EQ(st.bytes_in_use, 0);
	CHECK_EQ(tachyon_bus_publish_release(c), -TACHYON_EROLE);

	/* NUMA: node 0 always exists; a node that does not is refused. */
	CHECK_EQ(tachyon_bus_set_numa_node(l, 0), 0);
	CHECK_EQ(tachyon_bus_set_numa_node(c, 0), 0);
	CHECK_EQ(tachyon_bus_set_numa_node(l, -1), -EINVAL);
	CHECK_EQ(tachyon_bus_set_numa_node(l, 1023), -EINVAL);
	if (access("/sys/devices/system/node/node1", F_OK) != 0)
		CHECK_EQ(tachyon_bus_set_numa_node(l, 1), -EINVAL);
	free_pair(l, c);
}

static void test_never_fits_and_full(void)
{
	tachyon_bus *l, *c;
	make_pair(&l, &c);
	void *pl;
	tachyon_wait forever = test_wait_ms(-1);
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_reserve(c, CAP, &pl, &forever), -TACHYON_ENEVERFITS);
	CHECK_EQ(tachyon_bus_reserve(c, CAP - 63, &pl, &forever), -TACHYON_ENEVERFITS);
	/* the largest payload fits at offset 0 */
	CHECK_EQ(tachyon_bus_reserve(c, CAP - 64, &pl, &forever), 0);
	tachyon_bus_rollback(c);
	/* At offset 256 a slot of CAP - 64 bytes fits neither before the end
	 * nor after wrapping: reported at once, not waited for. */
	CHECK_EQ(send_fill(c, 60, 'o', 0, 0), 0);
	CHECK_EQ(send_fill(c, 60, 'o', 0, 0), 0);
	CHECK_EQ(tachyon_bus_reserve(c, CAP - 128, &pl, &forever), -TACHYON_ENEVERFITS);
	CHECK_EQ(send_fill(c, CAP - 128, 'o', 0, -1), -TACHYON_ENEVERFITS);
	double el = ms_since(t0);
	printf("never-fitting reservations answered in %.3f ms\n", el);
	CHECK(el < 100.0);

	/* Full ring: a deadline ends the wait with -EAGAIN. */
	tachyon_msg m;
	tachyon_wait w = test_wait_ms(1000);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(tachyon_bus_recv(l, &m, &w), 0);
		CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
	}
	int n = fill_ring(c);
	CHECK(n >= 10);
	t0 = tachyon_now_ns();
	CHECK_EQ(send_fill(c, 200, 'f', 0, 50), -EAGAIN);
	el = ms_since(t0);
	printf("send to a full ring with a 50 ms deadline: -EAGAIN after %.1f ms\n", el);
	CHECK(el >= 50.0);
	CHECK(el < 1000.0);
	/* Everything sent arrives; the empty peek at the end publishes the
	 * release point, so there is room again. */
	int got = 0;
	w = now_wait();
	while (tachyon_bus_recv(l, &m, &w) == 0) {
		CHECK_EQ(m.size, 200);
		CHECK_EQ(tachyon_bus_release_to(l, m.end, 1), 0);
		got++;
	}
	CHECK_EQ(got, n);
	CHECK_EQ(send_fill(c, 200, 'g', 0, 1000), 0);
	free_pair(l, c);
}


/* A listener-side bus over a fresh region, and a second mapping of the
 * same memory for the hand-played 0.5.1 peer (its connector marker stays 0). */
static tachyon_bus *bus_with_raw_peer(tachyon_region *peer_view)
{
	tachyon_link link = {.sockfd = -1, .peer = {.pidfd = -1, .pid = getpid(), .self = 1},
	                     .is_listener = 1};
	REQUIRE(tachyon_region_create("tachyon-test-raw", CAP, &link.region) == 0);
	REQUIRE(tachyon_region_attach(dup(link.region.fd), CAP, peer_view) == 0);
	tachyon_bus *b;
	REQUIRE(tachyon_bus_create(&link, &b) == 0);
	return b;
}

static void test_stuck_0_5_1_consumer(void)
{
	tachyon_region view;
	tachyon_bus *b = bus_with_raw_peer(&view);
	struct tachyon_region_header *hdr = view.base;
	int n = fill_ring(b);
	CHECK(n > 0);

	/* Awake but slow: a deadline ends the wait, no diagnosis. */
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(send_fill(b, 200, 'f', 0, 300), -EAGAIN);
	CHECK(ms_since(t0) >= 300.0);

	/* Asleep (it publishes its tail only every 32 messages): stuck. */
	tachyon_atomic_store_release32(&hdr->consumer_wait, TACHYON_WAIT_SLEEPING);
	t0 = tachyon_now_ns();
	CHECK_EQ(send_fill(b, 200, 'f', 0, -1), -TACHYON_ESTUCK);
	double el = ms_since(t0);
	printf("a sleeping 0.5.1 consumer: -TACHYON_ESTUCK after %.1f ms\n", el);
	CHECK(el >= TACHYON_WATCHDOG_MS);
	CHECK(el < 5 * TACHYON_WATCHDOG_MS);

	/* The same with our marker: our consumer may hold room; keep waiting. */
	tachyon_atomic_store_release32(&hdr->connector_marker, TACHYON_PEER_MARKER);
	CHECK_EQ(send_fill(b, 200, 'f', 0, 300), -EAGAIN);
	tachyon_bus_unref(b);
	tachyon_region_release(&view);
}

static void test_lost_wake_counter(void)
{
	tachyon_region view;
	tachyon_bus *b = bus_with_raw_peer(&view);
	struct tachyon_region_header *hdr = view.base;
	tachyon_producer p;
	REQUIRE(tachyon_producer_attach(&p, view.base, view.size) == 0);

	struct blocked a = {.b = b, .is_recv = 1};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, blocked_main, &a) == 0);
	wait_for_word(b, TACHYON_WAIT_SLEEPING);
	/* Publish head behind the sleeper's back, without the wake check. */
	void *pl;
	CHECK_EQ(tachyon_producer_try_reserve(&p, 8, &pl), 0);
	memset(pl, 'L', 8);
	CHECK_EQ(tachyon_producer_commit(&p, 8, 0), 0);
	int64_t t0 = tachyon_now_ns();
	tachyon_atomic_store_release64(&hdr->head, p.head);
	pthread_join(t, NULL);
	double el = (double)(a.done_ns - t0) / 1e6;
	CHECK_EQ(a.rc, 0);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(b, &st), 0);
	printf("unwoken message delivered after %.1f ms; lost_wakeups = %llu\n", el,
	       (unsigned long long)st.lost_wakeups);
	CHECK_EQ(st.lost_wakeups, 1);
	CHECK(el < 5 * TACHYON_WATCHDOG_MS);
	tachyon_bus_unref(b);
	tachyon_region_release(&view);
}

struct race_end {
	tachyon_bus *b;
	int rc;             /* the call that ended the loop */
	uint32_t count;     /* messages sent, or received in order and intact */
	uint32_t bad;       /* consumer: messages that were wrong, out of order, or not released */
	uint32_t first_bad; /* the count at the first of them */
};

/* The race messages: the sequence number, its complement (so a torn or
 * corrupted payload cannot pass), and the size varies with it. */
static uint32_t race_size(uint32_t seq)
{
	return 8 + (seq % 5) * 4;
}

static void *race_producer(void *p)
{
	struct race_end *e = p;
	for (;;) {
		tachyon_wait w = test_wait_ms(5000);
		uint32_t v[6] = {e->count, ~e->count, e->count, e->count, e->count, e->count};
		e->rc = tachyon_bus_send(e->b, v, race_size(e->count), e->count, &w);
		if (e->rc != 0)
			return NULL;
		e->count++;
	}
}

static void race_bad(struct race_end *e)
{
	if (e->bad++ == 0)
		e->first_bad = e->count;
}

static void *race_consumer(void *p)
{
	struct race_end *e = p;
	tachyon_msg m[8];
	for (;;) {
		tachyon_wait w = test_wait_ms(5000);
		int n = tachyon_bus_recv_batch(e->b, m, 8, &w);
		if (n < 0) {
			e->rc = n; /* the end of the stream; data faults stay in bad */
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			uint32_t v[2];
			memcpy(v, m[i].data, sizeof v);
			if (v[0] != e->count || v[1] != ~e->count || m[i].type_id != e->count ||
			    m[i].size != race_size(e->count))
				race_bad(e);
			e->count++;
		}
		/* A close of this end may come between the recv and the release;
		 * anything else refused is a fault. */
		int rr = tachyon_bus_release_to(e->b, m[n - 1].end, (uint32_t)n);
		if (rr != 0 && rr != -TACHYON_ECLOSED)
			race_bad(e);
	}
}

/* Close either end at a random moment while both ends are busy, many times:
 * the finalization runs once, never beside the ring end in use; both sides
 * end with the right code, and a closed producer's messages all arrive. */
static void test_close_race(void)
{
	uint64_t rng = 99;
	int rounds = 40;
	unsigned long long sent = 0;
	for (int i = 0; i < rounds; i++) {
		tachyon_bus *l, *c;
		make_pair(&l, &c);
		struct race_end prod = {.b = c}, cons = {.b = l};
		pthread_t tp, tc;
		REQUIRE(pthread_create(&tc, NULL, race_consumer, &cons) == 0);
		REQUIRE(pthread_create(&tp, NULL, race_producer, &prod) == 0);
		struct timespec ts = {0, (long)(test_rand(&rng) % 3000000)};
		nanosleep(&ts, NULL);
		int close_producer = i & 1;
		tachyon_bus_close(close_producer ? c : l);
		pthread_join(tp, NULL);
		pthread_join(tc, NULL);
		if (cons.bad)
			fprintf(stderr, "close race round %d: %u bad messages, the first at #%u\n", i,
			        cons.bad, cons.first_bad);
		CHECK_EQ(cons.bad, 0);
		if (close_producer) {
			CHECK_EQ(prod.rc, -TACHYON_ECLOSED);
			CHECK_EQ(cons.rc, -TACHYON_EPEERCLOSED);
			CHECK_EQ(cons.count, prod.count);
		} else {
			CHECK_EQ(cons.rc, -TACHYON_ECLOSED);
			CHECK_EQ(prod.rc, -TACHYON_EPEERCLOSED);
			CHECK(cons.count <= prod.count);
		}
		sent += prod.count;
		free_pair(l, c);
	}
	printf("close race: %d rounds, %llu messages sent in all\n", rounds, sent);
}

int main(void)
{
	int fds = test_count_fds();
	test_roles();
	test_timeouts();
	test_close_wakes_recv();
	test_close_wakes_reserve();
	test_close_idempotent_and_flush();
	test_interrupted();
	test_interrupt_request();
	test_unreleased();
	test_fork();
	test_polling_mode();
	test_stats();
	test_never_fits_and_full();
	test_stuck_0_5_1_consumer();
	test_lost_wake_counter();
	test_close_race();
	CHECK_EQ(test_count_fds(), fds);
	return test_result("test_bus");
}

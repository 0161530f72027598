/*
 * tachyon_bus_wait_any: which buses it reports and that it takes nothing,
 * the deadline, close from another thread, the argument and role checks,
 * a closed peer, the wake latency beside a plain recv (printed), and a
 * stream over two buses whose consumer only ever sleeps in wait_any
 * (a lost wake-up shows as a timeout while messages are pending); then
 * tachyon_bus_wait_room, its wait for room on a producer end, the same ways.
 *
 * Everything runs twice: with futex_waitv, then (the program runs itself
 * again with TACHYON_NO_FUTEX_WAITV=1) with the one-word-at-a-time
 * fallback.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testlib.h"

#define CAP 4096u
#define NBUS 3

static const char *mode = "futex_waitv";

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* A connected pair: *cons the listener end, *prod the connector end. */
static void make_pair(tachyon_bus **cons, tachyon_bus **prod)
{
	test_make_pair(CAP, TACHYON_ROLE_NONE, "waitany", cons, prod);
}

static int send_u64(tachyon_bus *b, uint64_t v)
{
	tachyon_wait w = test_wait_ms(2000);
	return tachyon_bus_send(b, &v, sizeof v, 1, &w);
}

static int wait_ms(tachyon_bus **buses, size_t n, uint8_t *ready, int64_t ms)
{
	tachyon_wait w = test_wait_ms(ms);
	return tachyon_bus_wait_any(buses, n, ready, &w);
}

struct pairs {
	tachyon_bus *cons[NBUS], *prod[NBUS];
};

static void open_pairs(struct pairs *p)
{
	for (int i = 0; i < NBUS; i++)
		make_pair(&p->cons[i], &p->prod[i]);
}

static void close_pairs(struct pairs *p)
{
	for (int i = 0; i < NBUS; i++) {
		tachyon_bus_unref(p->cons[i]);
		tachyon_bus_unref(p->prod[i]);
	}
}

/* ------------------------------------------------------------------------ */

static void test_reports_and_takes_nothing(void)
{
	struct pairs p;
	open_pairs(&p);
	uint8_t ready[NBUS];

	/* Nothing there: the deadline, every entry 0. */
	memset(ready, 7, sizeof ready);
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 30), -ETIMEDOUT);
	int64_t took = tachyon_now_ns() - t0;
	CHECK(took >= 30 * 1000000 && took < 1000 * 1000000);
	for (int i = 0; i < NBUS; i++)
		CHECK_EQ(ready[i], 0);
	/* wait_any made the role-less ends consumers. */
	CHECK_EQ(tachyon_bus_role(p.cons[0]), TACHYON_ROLE_CONSUMER);

	/* One message on bus 1: only bus 1, and asking again says the same
	 * (nothing was taken). */
	CHECK_EQ(send_u64(p.prod[1], 11), 0);
	for (int k = 0; k < 2; k++) {
		CHECK_EQ(wait_ms(p.cons, NBUS, ready, 1000), 1);
		CHECK(ready[0] == 0 && ready[1] == 1 && ready[2] == 0);
	}
	CHECK_EQ(send_u64(p.prod[2], 22), 0);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 1000), 2);
	CHECK(ready[0] == 0 && ready[1] == 1 && ready[2] == 1);

	/* The messages are still there for recv. */
	tachyon_msg m;
	tachyon_wait now = test_wait_ms(0);
	CHECK_EQ(tachyon_bus_recv(p.cons[1], &m, &now), 0);
	CHECK(m.size == 8 && *(const uint64_t *)(const void *)m.data == 11);
	CHECK_EQ(tachyon_bus_release_to(p.cons[1], m.end, 1), 0);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 1000), 1);
	CHECK(ready[1] == 0 && ready[2] == 1);
	CHECK_EQ(tachyon_bus_recv(p.cons[2], &m, &now), 0);
	CHECK_EQ(tachyon_bus_release_to(p.cons[2], m.end, 1), 0);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 20), -ETIMEDOUT);

	/* A zero-copy message read and still held is not "ready". */
	CHECK_EQ(send_u64(p.prod[0], 5), 0);
	CHECK_EQ(tachyon_bus_recv(p.cons[0], &m, &now), 0);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 20), -ETIMEDOUT);
	CHECK_EQ(tachyon_bus_release_to(p.cons[0], m.end, 1), 0);

	/* The peer closed: ready, and recv reports it. */
	tachyon_bus_close(p.prod[0]);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 1000), 1);
	CHECK_EQ(ready[0], 1);
	CHECK_EQ(tachyon_bus_recv(p.cons[0], &m, &now), -TACHYON_EPEERCLOSED);
	close_pairs(&p);
}

static void test_arguments(void)
{
	struct pairs p;
	open_pairs(&p);
	uint8_t ready[NBUS];
	CHECK_EQ(wait_ms(p.cons, 0, ready, 10), -EINVAL);
	CHECK_EQ(wait_ms(NULL, 1, ready, 10), -EINVAL);
	tachyon_bus *with_null[2] = {p.cons[0], NULL};
	CHECK_EQ(wait_ms(with_null, 2, ready, 10), -EINVAL);
	/* A producer end cannot be waited on for messages. */
	CHECK_EQ(send_u64(p.prod[0], 1), 0);
	tachyon_bus *mixed[2] = {p.cons[1], p.prod[0]};
	CHECK_EQ(wait_ms(mixed, 2, ready, 10), -TACHYON_EROLE);
	close_pairs(&p);
}

struct closer {
	tachyon_bus *bus;
	int delay_ms;
	int64_t at;
};

static void *close_later(void *arg)
{
	struct closer *c = arg;
	sleep_ms(c->delay_ms);
	c->at = tachyon_now_ns();
	tachyon_bus_close(c->bus);
	return NULL;
}

static void *send_later(void *arg)
{
	struct closer *c = arg;
	sleep_ms(c->delay_ms);
	c->at = tachyon_now_ns();
	(void)send_u64(c->bus, 42);
	return NULL;
}

static void test_close_wakes(void)
{
	struct pairs p;
	open_pairs(&p);
	uint8_t ready[NBUS];
	/* Closing our own end of the last bus from another thread. */
	struct closer c = {p.cons[NBUS - 1], 50, 0};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, close_later, &c) == 0);
	CHECK_EQ(wait_ms(p.cons, NBUS, ready, 5000), 1);
	int64_t woke = tachyon_now_ns();
	pthread_join(t, NULL); /* c.at is read after the join: the closer wrote it */
	int64_t late = woke - c.at;
	CHECK_EQ(ready[NBUS - 1], 1);
	printf("[%s] close from another thread woke wait_any after %.3f ms\n", mode, late / 1e6);
	/* Liveness bound: the watchdog period, with the 5x margin. */
	CHECK(late < 5 * TACHYON_WATCHDOG_NS);
	tachyon_msg m;
	tachyon_wait now = test_wait_ms(0);
	CHECK_EQ(tachyon_bus_recv(p.cons[NBUS - 1], &m, &now), -TACHYON_ECLOSED);
	close_pairs(&p);
}

/* Median wake latency over rounds: a sender thread sends once the waiter
 * sleeps; with the waiter in wait_any over all buses (on the last bus) or
 * in a plain recv on one. */
static double median_us(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	return v[n / 2];
}

static void test_wake_latency(void)
{
	enum { ROUNDS = 30 };
	struct pairs p;
	open_pairs(&p);
	uint8_t ready[NBUS];
	double any[ROUNDS], one[ROUNDS];
	tachyon_wait no_spin = {TACHYON_FOREVER, 1, NULL, NULL};
	for (int r = 0; r < ROUNDS; r++) {
		for (int way = 0; way < 2; way++) {
			struct closer c = {p.prod[NBUS - 1], 5, 0};
			pthread_t t;
			REQUIRE(pthread_create(&t, NULL, send_later, &c) == 0);
			no_spin.deadline_ns = tachyon_deadline_after(INT64_C(2000000000));
			int64_t back;
			if (way == 0) {
				CHECK_EQ(tachyon_bus_wait_any(p.cons, NBUS, ready, &no_spin), 1);
				back = tachyon_now_ns();
			}
			tachyon_msg m;
			CHECK_EQ(tachyon_bus_recv(p.cons[NBUS - 1], &m, &no_spin), 0);
			if (way == 1)
				back = tachyon_now_ns();
			CHECK_EQ(tachyon_bus_release_to(p.cons[NBUS - 1], m.end, 1), 0);
			pthread_join(t, NULL);
			(way == 0 ? any : one)[r] = (double)(back - c.at) / 1e3;
		}
	}
	double a = median_us(any, ROUNDS), o = median_us(one, ROUNDS);
	printf("[%s] wake latency, median of %d: wait_any over %d buses %.1f us, recv on one %.1f us\n",
	       mode, ROUNDS, NBUS, a, o);
	close_pairs(&p);
}

/* A stream to random buses with random pauses; the consumer sleeps only in
 * wait_any, then takes what it reports. */
struct stream {
	struct pairs *p;
	int count;
};

static void *stream_send(void *arg)
{
	struct stream *s = arg;
	uint64_t rng = 12345;
	for (int i = 0; i < s->count; i++) {
		uint64_t x = test_rand(&rng);
		if (x % 16 == 0)
			sleep_ms(1);
		else if (x % 4 == 0)
			sched_yield();
		REQUIRE(send_u64(s->p->prod[(x >> 8) % NBUS], (uint64_t)i) == 0);
	}
	return NULL;
}

static void test_stream(void)
{
	struct pairs p;
	open_pairs(&p);
	struct stream s = {&p, 3000};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, stream_send, &s) == 0);
	int64_t cap = tachyon_now_ns() + INT64_C(20000000000); /* wall-time cap */
	uint8_t ready[NBUS];
	tachyon_wait w = {0, 64, NULL, NULL}; /* short spins: the test sleeps often */
	int got = 0, timeouts = 0;
	while (got < s.count && tachyon_now_ns() < cap) {
		w.deadline_ns = tachyon_deadline_after(INT64_C(2000000000));
		int n = tachyon_bus_wait_any(p.cons, NBUS, ready, &w);
		if (n == -ETIMEDOUT) {
			timeouts++;
			continue;
		}
		CHECK(n >= 1);
		for (int i = 0; i < NBUS; i++) {
			if (!ready[i])
				continue;
			tachyon_msg m;
			tachyon_wait now = test_wait_ms(0);
			/* Reported ready, so the receive finds something at once. */
			CHECK_EQ(tachyon_bus_recv(p.cons[i], &m, &now), 0);
			CHECK_EQ(tachyon_bus_release_to(p.cons[i], m.end, 1), 0);
			got++;
		}
	}
	pthread_join(t, NULL);
	printf("[%s] stream: %d of %d messages through wait_any, %d timeouts of 2 s\n", mode, got,
	       s.count, timeouts);
	CHECK_EQ(got, s.count);
	CHECK_EQ(timeouts, 0);
	close_pairs(&p);
}

/* ---- tachyon_bus_wait_room ---------------------------------------------- */

/* Send with timeout 0 until the ring is full; the count sent. */
static int fill(tachyon_bus *prod)
{
	static const char payload[100];
	tachyon_wait now = test_wait_ms(0);
	int n = 0;
	while (tachyon_bus_send(prod, payload, sizeof payload, 1, &now) == 0)
		n++;
	return n;
}

/* Receive and release until n messages were taken, after delay_ms. */
struct drainer {
	tachyon_bus *cons;
	int delay_ms, n;
	int64_t at;
};

static void *drain_later(void *arg)
{
	struct drainer *d = arg;
	sleep_ms(d->delay_ms);
	d->at = tachyon_now_ns();
	for (int i = 0; i < d->n; i++) {
		tachyon_msg m;
		tachyon_wait w = test_wait_ms(2000);
		REQUIRE(tachyon_bus_recv(d->cons, &m, &w) == 0);
		REQUIRE(tachyon_bus_release_to(d->cons, m.end, 1) == 0);
	}
	return NULL;
}

static int wait_room_ms(tachyon_bus *b, size_t size, int64_t ms)
{
	tachyon_wait w = test_wait_ms(ms);
	return tachyon_bus_wait_room(b, size, &w);
}

static void test_wait_room(void)
{
	tachyon_bus *cons, *prod;
	make_pair(&cons, &prod);
	/* An end with no role becomes the producer; room is there at once. */
	CHECK_EQ(wait_room_ms(prod, 100, 0), 1);
	CHECK_EQ(wait_room_ms(cons, 100, 0), -TACHYON_EROLE);
	int filled = fill(prod);
	CHECK(filled > 0);
	/* Full: the deadline passes, and nothing was reserved meanwhile. */
	CHECK_EQ(wait_room_ms(prod, 100, 20), -ETIMEDOUT);
	char byte = 0;
	tachyon_wait now = test_wait_ms(0);
	CHECK_EQ(tachyon_bus_send(prod, &byte, 1, 1, &now), -EAGAIN);
	/* A payload that never fits is reported at once (the send says why). */
	CHECK_EQ(wait_room_ms(prod, CAP, 5000), 1);

	/* The consumer frees room: the wait ends, and a send then succeeds. */
	struct drainer d = {cons, 50, filled, 0};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, drain_later, &d) == 0);
	CHECK_EQ(wait_room_ms(prod, 100, 5000), 1);
	int64_t woke = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_send(prod, &byte, 1, 1, &now), 0);
	pthread_join(t, NULL); /* d.at is read after the join: the drainer wrote it */
	int64_t late = woke - d.at;
	printf("[%s] wait_room woke %.3f ms after the consumer began freeing room\n", mode, late / 1e6);
	/* Liveness bound: the watchdog period, with the 5x margin. */
	CHECK(late < 5 * TACHYON_WATCHDOG_NS);

	/* Close of our own end from another thread wakes it. */
	fill(prod);
	struct closer c = {prod, 50, 0};
	REQUIRE(pthread_create(&t, NULL, close_later, &c) == 0);
	CHECK_EQ(wait_room_ms(prod, 100, 5000), 1);
	woke = tachyon_now_ns();
	pthread_join(t, NULL);
	late = woke - c.at;
	printf("[%s] close woke wait_room after %.3f ms\n", mode, late / 1e6);
	CHECK(late < 5 * TACHYON_WATCHDOG_NS);
	tachyon_bus_unref(prod);
	tachyon_bus_unref(cons);
}

/* A producer that only ever waits in wait_room (then sends with timeout 0)
 * against a consumer that pauses for 1 ms now and then: a lost wake shows as
 * a wait that lasts until the watchdog (200 ms) ends the sleep, while room
 * was freed long before. */
struct room_stream {
	tachyon_bus *cons;
	int count;
};

static void *room_consume(void *arg)
{
	struct room_stream *s = arg;
	uint64_t rng = 777;
	for (int i = 0; i < s->count; i++) {
		if (test_rand(&rng) % 64 == 0)
			sleep_ms(1);
		tachyon_msg m;
		tachyon_wait w = test_wait_ms(5000);
		REQUIRE(tachyon_bus_recv(s->cons, &m, &w) == 0);
		uint64_t v;
		REQUIRE(m.size == sizeof v);
		memcpy(&v, m.data, sizeof v);
		CHECK_EQ(v, (uint64_t)i);
		REQUIRE(tachyon_bus_release_to(s->cons, m.end, 1) == 0);
	}
	return NULL;
}

static void test_room_stream(void)
{
	tachyon_bus *cons, *prod;
	make_pair(&cons, &prod);
	struct room_stream s = {cons, 20000};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, room_consume, &s) == 0);
	int64_t cap = tachyon_now_ns() + INT64_C(20000000000); /* wall-time cap */
	tachyon_wait w = {0, 64, NULL, NULL};
	int sent = 0, timeouts = 0, slow = 0;
	int64_t longest = 0;
	while (sent < s.count && tachyon_now_ns() < cap) {
		uint64_t v = (uint64_t)sent;
		tachyon_wait now = test_wait_ms(0);
		int r = tachyon_bus_send(prod, &v, sizeof v, 1, &now);
		if (r == 0) {
			sent++;
			continue;
		}
		CHECK_EQ(r, -EAGAIN);
		w.deadline_ns = tachyon_deadline_after(INT64_C(2000000000));
		int64_t t0 = tachyon_now_ns();
		r = tachyon_bus_wait_room(prod, sizeof v, &w);
		int64_t took = tachyon_now_ns() - t0;
		longest = took > longest ? took : longest;
		slow += took > TACHYON_WATCHDOG_NS / 2;
		if (r == -ETIMEDOUT)
			timeouts++;
		else
			CHECK_EQ(r, 1);
	}
	pthread_join(t, NULL);
	printf("[%s] room stream: %d of %d messages sent after waiting in wait_room, longest wait "
	       "%.3f ms, %d waits over 100 ms, %d timeouts of 2 s\n",
	       mode, sent, s.count, longest / 1e6, slow, timeouts);
	CHECK_EQ(sent, s.count);
	CHECK_EQ(slow, 0);
	CHECK_EQ(timeouts, 0);
	tachyon_bus_unref(prod);
	tachyon_bus_unref(cons);
}

static void run_all(void)
{
	test_reports_and_takes_nothing();
	test_arguments();
	test_close_wakes();
	test_wake_latency();
	test_stream();
	test_wait_room();
	test_room_stream();
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "fallback") == 0) {
		mode = "fallback";
		REQUIRE(!tachyon_futex_waitv_usable());
		run_all();
		return test_result("test_wait_any (fallback)");
	}
	if (!tachyon_futex_waitv_usable())
		mode = "fallback (no futex_waitv here)";
	run_all();
	int rc = test_result("test_wait_any");
	/* The same again on the fallback. */
	fflush(stdout);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "TACHYON_NO_FUTEX_WAITV=1 '%s' fallback", argv[0]);
	int frc = system(cmd);
	return rc != 0 ? rc : (frc == 0 ? 0 : 1);
}

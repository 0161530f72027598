/*
 * Peer death across real processes (docs/RELIABILITY.md R5):
 *  - a producer killed with SIGKILL while we block in recv: everything it
 *    published arrives first, then -TACHYON_EPEERDEAD within 500 ms of the
 *    kill (measured and printed); the child is not reaped before that;
 *  - a producer blocked waiting for room whose consumer is killed gets
 *    -TACHYON_EPEERDEAD within 500 ms;
 *  - a peer that closes its socket right after the handshake (as 0.5.1
 *    does) and stays alive and idle for 1 s is not dead: recv times out.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define CAP 4096u
#define NPUB 24 /* 24 slots of 128 bytes fit the ring: the child never waits */

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

enum child_kind { CHILD_PRODUCE, CHILD_CONSUME_NOTHING, CHILD_CLOSE_SOCKET };

/* Close every socket of this process: the bus's own end of the handshake
 * socket, as a 0.5.1 peer does right after the handshake. */
static void close_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		_exit(3);
	int self = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		struct stat st;
		if (e->d_name[0] != '.' && fd != self && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			close(fd);
	}
	closedir(d);
}

/* Fork the connecting peer; it reports readiness with one byte on *ready. */
static pid_t spawn(const char *path, enum child_kind kind, int *ready)
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	fflush(stdout);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		alarm(30);
		close(p[0]);
		tachyon_bus *b;
		tachyon_wait w = test_wait_ms(5000);
		if (tachyon_bus_connect(path, &w, &b) != 0)
			_exit(2);
		if (kind == CHILD_PRODUCE) {
			for (uint32_t i = 0; i < NPUB; i++) {
				w = test_wait_ms(5000);
				if (tachyon_bus_send(b, &i, sizeof i, i, &w) != 0)
					_exit(4);
			}
			/* committed, never published: it dies with it, unless
			 * the consumer took it by its position stamp */
			void *pl;
			w = test_wait_ms(5000);
			if (tachyon_bus_reserve(b, 4, &pl, &w) != 0 || tachyon_bus_commit(b, 0, 999) != 0)
				_exit(5);
		} else if (kind == CHILD_CONSUME_NOTHING) {
			if (tachyon_bus_set_role(b, TACHYON_ROLE_CONSUMER) != 0)
				_exit(6);
		} else {
			close_sockets();
		}
		if (write(p[1], "r", 1) != 1)
			_exit(7);
		for (;;)
			sleep_ms(kind == CHILD_CLOSE_SOCKET ? 10 : 1000); /* idle until killed */
	}
	close(p[1]);
	*ready = p[0];
	return pid;
}

static tachyon_bus *listen_for(const char *path)
{
	tachyon_bus *b = NULL;
	tachyon_wait w = test_wait_ms(5000);
	REQUIRE(tachyon_bus_listen(path, CAP, NULL, &w, &b) == 0);
	return b;
}

static void wait_ready(int fd)
{
	char c;
	REQUIRE(read(fd, &c, 1) == 1);
	close(fd);
}

struct killer {
	pid_t pid;
	int64_t killed_ns;
};

static void *killer_main(void *p)
{
	struct killer *k = p;
	sleep_ms(250); /* the other thread is blocked by now */
	k->killed_ns = tachyon_now_ns();
	kill(k->pid, SIGKILL);
	return NULL;
}

static void test_producer_killed(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "death-p");
	int ready;
	pid_t pid = spawn(path, CHILD_PRODUCE, &ready);
	tachyon_bus *b = listen_for(path);
	wait_ready(ready);

	struct killer k = {.pid = pid};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, killer_main, &k) == 0);
	tachyon_msg m;
	uint32_t got = 0;
	int rc;
	for (;;) {
		tachyon_wait w = test_wait_ms(5000);
		rc = tachyon_bus_recv(b, &m, &w);
		if (rc != 0)
			break;
		if (got == NPUB && m.type_id == 999) {
			/* The committed one, taken by its position stamp before any
			 * head said so: a whole message the producer finished, and
			 * delivered at most once, after all the others. */
			CHECK_EQ(m.size, 0);
			CHECK_EQ(tachyon_bus_release_to(b, m.end, 1), 0);
			continue;
		}
		uint32_t v;
		CHECK_EQ(m.size, 4);
		memcpy(&v, m.data, 4);
		CHECK_EQ(v, got);
		CHECK_EQ(m.type_id, got);
		CHECK_EQ(tachyon_bus_release_to(b, m.end, 1), 0);
		got++;
	}
	int64_t err_ns = tachyon_now_ns();
	pthread_join(t, NULL);
	double lat = (double)(err_ns - k.killed_ns) / 1e6;
	printf("killed producer: %u messages delivered, then -EPEERDEAD %.1f ms after the kill\n",
	       got, lat);
	CHECK_EQ(rc, -TACHYON_EPEERDEAD);
	CHECK_EQ(got, NPUB);
	CHECK(lat < 500.0);
	/* sticky, and still not reaped */
	tachyon_wait w0 = test_wait_ms(0);
	CHECK_EQ(tachyon_bus_recv(b, &m, &w0), -TACHYON_EPEERDEAD);
	CHECK_EQ(tachyon_bus_peer_liveness(b), TACHYON_PEER_DEAD);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(b, &st), 0);
	CHECK_EQ(st.peer_liveness, TACHYON_PEER_DEAD);
	CHECK_EQ(st.state, TACHYON_STATE_READY); /* dead, not closed */
	CHECK_EQ(test_wait_child(pid), 128 + SIGKILL);
	tachyon_bus_unref(b);
}

static void test_consumer_killed(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "death-c");
	int ready;
	pid_t pid = spawn(path, CHILD_CONSUME_NOTHING, &ready);
	tachyon_bus *b = listen_for(path);
	wait_ready(ready);

	char buf[200] = {0};
	int n = 0, rc;
	tachyon_wait w0 = test_wait_ms(0);
	while ((rc = tachyon_bus_send(b, buf, sizeof buf, 0, &w0)) == 0)
		n++;
	CHECK_EQ(rc, -EAGAIN);
	CHECK(n > 0);

	struct killer k = {.pid = pid};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, killer_main, &k) == 0);
	tachyon_wait w = test_wait_ms(5000);
	rc = tachyon_bus_send(b, buf, sizeof buf, 0, &w);
	int64_t err_ns = tachyon_now_ns();
	pthread_join(t, NULL);
	double lat = (double)(err_ns - k.killed_ns) / 1e6;
	printf("producer waiting for room: -EPEERDEAD %.1f ms after its consumer was killed\n", lat);
	CHECK_EQ(rc, -TACHYON_EPEERDEAD);
	CHECK(lat < 500.0);
	CHECK_EQ(tachyon_bus_send(b, buf, 1, 0, &w0), -TACHYON_EPEERDEAD);
	CHECK_EQ(test_wait_child(pid), 128 + SIGKILL);
	tachyon_bus_unref(b);
}

static void test_closed_socket_is_not_death(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "death-s");
	int ready;
	pid_t pid = spawn(path, CHILD_CLOSE_SOCKET, &ready);
	tachyon_bus *b = listen_for(path);
	wait_ready(ready);

	tachyon_msg m;
	tachyon_wait w = test_wait_ms(1000);
	int64_t t0 = tachyon_now_ns();
	int rc = tachyon_bus_recv(b, &m, &w);
	double el = (double)(tachyon_now_ns() - t0) / 1e6;
	printf("peer alive with its socket closed: recv returned %d after %.1f ms\n", rc, el);
	CHECK_EQ(rc, -ETIMEDOUT);
	CHECK(el >= 1000.0);
	CHECK_EQ(tachyon_bus_peer_liveness(b), TACHYON_PEER_ALIVE);
	kill(pid, SIGKILL);
	CHECK_EQ(test_wait_child(pid), 128 + SIGKILL);
	tachyon_bus_unref(b);
}

int main(void)
{
	alarm(60);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int fds = test_count_fds();
	test_producer_killed();
	test_consumer_killed();
	test_closed_socket_is_not_death();
	CHECK_EQ(test_count_fds(), fds);
	return test_result("test_peer_death");
}

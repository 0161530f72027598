/*
 * Peer liveness through a pidfd (ABI.md, "Peer liveness", docs/RELIABILITY.md R5):
 * a live child is ALIVE, a SIGKILLed child is DEAD before it is reaped, a
 * child that closed its socket but lives is ALIVE, our own process is SELF.
 *
 * SO_PEERCRED records the process that made the connection: for a
 * socketpair that is whoever called socketpair(), even after a fork. So the
 * socketpair stands for "the peer is this process", and the child cases
 * connect from the child to a listening socket of the parent.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testlib.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int listen_at(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof addr->sun_path, "%s", path);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(ls >= 0);
	REQUIRE(bind(ls, (struct sockaddr *)addr, sizeof *addr) == 0);
	REQUIRE(listen(ls, 4) == 0);
	return ls;
}

enum child_mode { CHILD_SLEEP, CHILD_CLOSE_THEN_SLEEP };

/* Fork a child that connects to the listening socket; returns the accepted
 * end in *conn. The child then sleeps (until killed), in CHILD_CLOSE_THEN_SLEEP
 * after closing its end. */
static pid_t spawn_child(int ls, const struct sockaddr_un *addr, enum child_mode mode, int *conn)
{
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		close(ls);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0 || connect(s, (const struct sockaddr *)addr, sizeof *addr) < 0)
			_exit(2);
		if (mode == CHILD_CLOSE_THEN_SLEEP)
			close(s);
		for (int i = 0; i < 300; i++) /* 30 s at most, should the parent die */
			sleep_ms(100);
		_exit(0);
	}
	*conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	REQUIRE(*conn >= 0);
	return pid;
}

/* Poll liveness until it is `want` or ms pass; returns what was seen last. */
static int liveness_within(const tachyon_peer *p, int want, int ms)
{
	int v = tachyon_peer_liveness(p);
	for (int i = 0; v != want && i < ms; i++) {
		sleep_ms(1);
		v = tachyon_peer_liveness(p);
	}
	return v;
}

static void test_self(void)
{
	int base = test_count_fds();
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	tachyon_peer p;
	CHECK_EQ(tachyon_peer_from_socket(sv[0], &p), 0);
	CHECK_EQ(p.self, 1);
	CHECK_EQ(p.pid, getpid());
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_SELF);
	/* Even a closed socket never makes our own process dead. */
	close(sv[1]);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_SELF);
	tachyon_peer_release(&p);
	tachyon_peer_release(&p);
	close(sv[0]);
	CHECK_EQ(test_count_fds(), base);
}

static void test_unknown(void)
{
	/* pid 0 (another pid namespace) or no pidfd: never dead. */
	tachyon_peer p = {.pidfd = -1, .pid = 0, .self = 0};
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_UNKNOWN);
	p.pid = 12345;
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_UNKNOWN);
	CHECK_EQ(tachyon_peer_liveness(NULL), TACHYON_PEER_UNKNOWN);
	/* A socket that is not connected: an error, and no handle. */
	int base = test_count_fds();
	tachyon_peer q;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(s >= 0);
	int rc = tachyon_peer_from_socket(s, &q);
	if (rc == 0) /* some kernels answer pid 0 for an unconnected socket */
		CHECK_EQ(q.pid, 0);
	CHECK_EQ(tachyon_peer_liveness(&q), TACHYON_PEER_UNKNOWN);
	tachyon_peer_release(&q);
	close(s);
	CHECK_EQ(test_count_fds(), base);
}

static void test_children(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "peer");
	struct sockaddr_un addr;
	int base = test_count_fds();
	int ls = listen_at(path, &addr);

	/* 1. alive, then SIGKILL: DEAD while still unreaped. */
	int conn;
	pid_t pid = spawn_child(ls, &addr, CHILD_SLEEP, &conn);
	tachyon_peer p;
	CHECK_EQ(tachyon_peer_from_socket(conn, &p), 0);
	CHECK_EQ(p.pid, pid);
	CHECK_EQ(p.self, 0);
	CHECK(p.pidfd >= 0);
	if (p.pidfd >= 0)
		CHECK(fcntl(p.pidfd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_ALIVE);
	sleep_ms(50);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_ALIVE);

	int64_t t0 = tachyon_now_ns();
	REQUIRE(kill(pid, SIGKILL) == 0);
	int v = liveness_within(&p, TACHYON_PEER_DEAD, 2000);
	int64_t dt = tachyon_now_ns() - t0;
	CHECK_EQ(v, TACHYON_PEER_DEAD);
	/* Still a zombie: kill(pid, 0) would call it alive, the pidfd does not. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid);
	CHECK_EQ(kill(pid, 0), 0);
	fprintf(stderr, "test_peer: SIGKILLed child seen dead after %.1f ms (unreaped)\n", dt / 1e6);
	CHECK_EQ(test_wait_child(pid), 128 + SIGKILL);
	/* Reaped: still dead. */
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_DEAD);
	tachyon_peer_release(&p);
	CHECK_EQ(p.pidfd, -1);
	close(conn);

	/* 2. a child that closed its end (as a 0.5.1 peer does after the
	 * handshake) and lives on is alive. */
	pid = spawn_child(ls, &addr, CHILD_CLOSE_THEN_SLEEP, &conn);
	CHECK_EQ(tachyon_peer_from_socket(conn, &p), 0);
	CHECK_EQ(p.pid, pid);
	char c;
	CHECK_EQ(read(conn, &c, 1), 0); /* EOF: its end is closed */
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_ALIVE);
	sleep_ms(100);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_ALIVE);
	kill(pid, SIGKILL);
	CHECK_EQ(liveness_within(&p, TACHYON_PEER_DEAD, 2000), TACHYON_PEER_DEAD);
	test_wait_child(pid);
	tachyon_peer_release(&p);
	close(conn);

	/* 3. a stopped child is alive (SIGSTOP is not death). */
	pid = spawn_child(ls, &addr, CHILD_SLEEP, &conn);
	CHECK_EQ(tachyon_peer_from_socket(conn, &p), 0);
	kill(pid, SIGSTOP);
	sleep_ms(100);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_ALIVE);
	kill(pid, SIGKILL);
	test_wait_child(pid);
	CHECK_EQ(tachyon_peer_liveness(&p), TACHYON_PEER_DEAD);
	tachyon_peer_release(&p);
	close(conn);

	close(ls);
	unlink(path);
	CHECK_EQ(test_count_fds(), base);
}

int main(void)
{
	test_self();
	test_unknown();
	test_children();
	return test_result("test_peer");
}

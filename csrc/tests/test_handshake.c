/*
 * The control plane (ABI.md, "The handshake", docs/RELIABILITY.md R4, R7, R8):
 *  - a real listener and a real connector in two processes;
 *  - a fake listener (raw socket code below, in a child process) sending
 *    every kind of bad message: each is refused with the right error within
 *    the deadline, and the connector's fd count is unchanged;
 *  - a fake connector checking the bytes and the fd our listener sends;
 *  - path safety: live, stale, symlink, regular file, mode 0600, too long;
 *  - deadlines and interruption of accept and connect.
 *
 * How MSG_CTRUNC is provoked: the connector has control room for two fds
 * (what a request/reply bus sends), so the fake listener sends eight fds in
 * one SCM_RIGHTS message; the kernel installs what fits, sets MSG_CTRUNC
 * and drops the rest. The connector must close the installed ones.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "testlib.h"

#define CAP 4096u
/* Slack over a deadline: two vCPUs, sanitizers, a forked child starting. */
#define SLACK_MS 150

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static double ms_since(int64_t t0)
{
	return (double)(tachyon_now_ns() - t0) / 1e6;
}

/* Every fd we opened is close-on-exec (R8): nothing of ours would leak
 * into a program this process execs. Returns how many are not. */
static unsigned char inherited_fd[1024]; /* open when main() began: not ours */

static void note_inherited_fds(void)
{
	for (int fd = 0; fd < (int)sizeof inherited_fd; fd++)
		inherited_fd[fd] = fcntl(fd, F_GETFD) >= 0;
}

static int count_inheritable_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d) ||
		    (fd < (int)sizeof inherited_fd && inherited_fd[fd]))
			continue;
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC)) {
			fprintf(stderr, "fd %d is not close-on-exec\n", fd);
			bad++;
		}
	}
	closedir(d);
	return bad;
}

static void fill_addr(const char *path, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	snprintf(addr->sun_path, sizeof addr->sun_path, "%s", path);
}

/* A raw listening socket, as 0.5.1 or a hostile process would make it. */
static int raw_listen(const char *path)
{
	struct sockaddr_un addr;
	fill_addr(path, &addr);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 4) < 0)
		_exit(3);
	return ls;
}

static int send_with_fds(int s, const void *data, size_t len, const int *fds, int nfds)
{
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr msg = {0};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	return sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* A memfd of size bytes holding a well-formed header for cap, sealed with
 * seals (0: none), optionally with the version spoilt. */
static int raw_region(uint64_t cap, size_t size, int seals, uint32_t version, uint32_t state)
{
	int fd = memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		_exit(3);
	struct tachyon_region_header h;
	memset(&h, 0, sizeof h);
	h.magic = TACHYON_MAGIC;
	h.version = version;
	h.capacity = (uint32_t)cap;
	h.msg_alignment = TACHYON_MSG_ALIGNMENT;
	h.state = state;
	h.listener_marker = TACHYON_PEER_MARKER;
	if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		_exit(3);
	if (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)
		_exit(3);
	return fd;
}

#define FULL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* ------------------------------------------------------------------------ */
/* Fake listener                                                             */

enum fake {
	FK_GOOD,            /* honest: connect succeeds, our marker lands at 24 */
	FK_GOOD_CLOSED,     /* honest, but the region is already closed (state 3) */
	FK_GOOD_SPLIT,      /* honest, 32 bytes in two writes, fd with the first */
	FK_MAGIC, FK_VERSION, FK_ALIGN, FK_FLAGS, FK_RPC,
	FK_BADCAP, FK_BADSIZE, FK_CAP2,
	FK_PIPE, FK_REGFILE, FK_SHMFILE, FK_UNSEALED, FK_SMALL,
	FK_HDR_VERSION, FK_HDR_CAP, FK_HDR_STATE,
	FK_NOFD, FK_TWOFDS, FK_MANYFDS, FK_LATEFD,
	FK_PARTIAL_SILENT, FK_PARTIAL_EOF, FK_SILENT, FK_EOF, FK_NOACCEPT,
};

static int regular_file(const char *dir)
{
	char p[256];
	snprintf(p, sizeof p, "%s/tachyon-test-fake-%d", dir, (int)getpid());
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(3);
	unlink(p);
	struct tachyon_region_header h;
	memset(&h, 0, sizeof h);
	h.magic = TACHYON_MAGIC;
	h.version = TACHYON_WIRE_VERSION;
	h.capacity = CAP;
	h.msg_alignment = TACHYON_MSG_ALIGNMENT;
	h.state = TACHYON_STATE_READY;
	if (ftruncate(fd, TACHYON_REGION_HEADER_SIZE + CAP) < 0 ||
	    pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		_exit(3);
	return fd;
}

static void linger(void)
{
	for (int i = 0; i < 300; i++) /* until killed; 30 s should the parent die */
		sleep_ms(100);
	_exit(0);
}

static void fake_listener(const char *path, enum fake mode)
{
	int ls = raw_listen(path);
	if (mode == FK_NOACCEPT)
		linger();
	int c = accept(ls, NULL, NULL);
	if (c < 0)
		_exit(3);

	struct tachyon_handshake h;
	tachyon_handshake_encode(CAP, &h);
	size_t size = TACHYON_REGION_HEADER_SIZE + CAP;
	tachyon_region good;
	if (tachyon_region_create(path, CAP, &good) < 0)
		_exit(3);
	int fds[16];
	int nfds = 1;
	fds[0] = good.fd;

	switch (mode) {
	case FK_MAGIC: h.magic = 0x54414349; break;
	case FK_VERSION: h.version = 3; break;
	case FK_ALIGN: h.msg_alignment = 128; break;
	case FK_FLAGS: h.flags = 2; break;
	case FK_RPC:
		h.flags = TACHYON_FLAG_RPC;
		h.capacity2 = CAP;
		h.shm_size2 = (uint32_t)size;
		fds[1] = dup(good.fd);
		nfds = 2;
		break;
	case FK_BADCAP: h.capacity = 100; h.shm_size = TACHYON_REGION_HEADER_SIZE + 100; break;
	case FK_BADSIZE: h.shm_size = (uint32_t)size + 64; break;
	case FK_CAP2: h.capacity2 = CAP; break;
	case FK_PIPE: {
		int p[2];
		if (pipe(p) < 0)
			_exit(3);
		fds[0] = p[0];
		break;
	}
	case FK_REGFILE: fds[0] = regular_file("/tmp"); break;
	case FK_SHMFILE: fds[0] = regular_file("/dev/shm"); break;
	case FK_UNSEALED: fds[0] = raw_region(CAP, size, 0, TACHYON_WIRE_VERSION, 2); break;
	case FK_SMALL: fds[0] = raw_region(CAP, size - 64, FULL_SEALS, TACHYON_WIRE_VERSION, 2); break;
	case FK_HDR_VERSION: fds[0] = raw_region(CAP, size, FULL_SEALS, 3, 2); break;
	case FK_HDR_CAP: /* announces CAP, holds a region for 2 * CAP */
		fds[0] = raw_region(2 * CAP, size + CAP, FULL_SEALS, TACHYON_WIRE_VERSION, 2);
		break;
	case FK_HDR_STATE: fds[0] = raw_region(CAP, size, FULL_SEALS, TACHYON_WIRE_VERSION, 4); break;
	case FK_GOOD_CLOSED: fds[0] = raw_region(CAP, size, FULL_SEALS, TACHYON_WIRE_VERSION, 3); break;
	case FK_NOFD: nfds = 0; break;
	case FK_TWOFDS: fds[1] = dup(good.fd); nfds = 2; break;
	case FK_MANYFDS:
		for (nfds = 1; nfds < 8; nfds++)
			fds[nfds] = dup(good.fd);
		break;
	default: break;
	}

	switch (mode) {
	case FK_SILENT:
		linger();
		break;
	case FK_EOF:
		close(c);
		linger();
		break;
	case FK_PARTIAL_SILENT:
	case FK_PARTIAL_EOF:
		if (send_with_fds(c, &h, 10, fds, nfds) < 0)
			_exit(3);
		if (mode == FK_PARTIAL_EOF)
			close(c);
		linger();
		break;
	case FK_LATEFD:
	case FK_GOOD_SPLIT:
		/* First half bare (LATEFD) or with the fd (SPLIT), the rest 100 ms
		 * later, so the connector has surely read the first half alone. */
		if (send_with_fds(c, &h, 16, fds, mode == FK_GOOD_SPLIT ? nfds : 0) < 0)
			_exit(3);
		sleep_ms(100);
		if (send_with_fds(c, (char *)&h + 16, 16, fds, mode == FK_LATEFD ? nfds : 0) < 0)
			_exit(3);
		break;
	default:
		if (send_with_fds(c, &h, sizeof h, fds, nfds) < 0)
			_exit(3);
		break;
	}

	if (mode == FK_GOOD || mode == FK_GOOD_SPLIT) {
		/* The connector stores its marker at offset 24 once attached. */
		struct tachyon_region_header *hdr = good.base;
		for (int i = 0; i < 500; i++) {
			if (tachyon_atomic_load_acquire32(&hdr->connector_marker) == TACHYON_PEER_MARKER)
				_exit(0);
			sleep_ms(10);
		}
		_exit(4);
	}
	linger();
}

/* Connect to a fake listener of the given mode; expect rc within the
 * deadline (timeout_ms) and no fd left behind. */
static void run_fake(const char *what, enum fake mode, int expect, int timeout_ms)
{
	char path[108];
	test_socket_path(path, sizeof path, "fake");
	int base = test_count_fds();
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		fake_listener(path, mode);

	tachyon_wait w = test_wait_ms(timeout_ms);
	int64_t t0 = tachyon_now_ns();
	tachyon_bus *bus = NULL;
	int rc = tachyon_bus_connect(path, &w, &bus);
	double dt = ms_since(t0);
	if (rc != expect)
		fprintf(stderr, "fake listener %s: connect = %d (%s), expected %d\n", what, rc,
		        tachyon_strerror(rc), expect);
	CHECK_EQ(rc, expect);
	CHECK(dt <= timeout_ms + SLACK_MS);
	if (expect == -ETIMEDOUT) {
		CHECK(dt >= timeout_ms - 1);
		fprintf(stderr, "test_handshake: %s: -ETIMEDOUT after %.1f ms (deadline %d ms)\n", what,
		        dt, timeout_ms);
	}
	if (rc == 0) {
		CHECK(bus != NULL);
		if (bus) {
			CHECK_EQ(tachyon_bus_capacity(bus), CAP);
			CHECK_EQ(tachyon_bus_peer_pid(bus), pid);
		}
	} else {
		CHECK(bus == NULL);
	}

	int status;
	if (mode == FK_GOOD || mode == FK_GOOD_SPLIT) {
		status = test_wait_child(pid); /* it exits 0 once it saw our marker */
		CHECK_EQ(status, 0);
	} else {
		kill(pid, SIGKILL);
		status = test_wait_child(pid);
		CHECK_EQ(status, 128 + SIGKILL); /* not 3: the fake itself worked */
	}
	if (bus)
		tachyon_bus_unref(bus);
	unlink(path);
	int now = test_count_fds();
	if (now != base)
		fprintf(stderr, "fake listener %s: %d fds after, %d before\n", what, now, base);
	CHECK_EQ(now, base);
}

static void test_fake_listeners(void)
{
	const int t = 2000; /* errors must come at once, far below this */
	run_fake("honest", FK_GOOD, 0, t);
	run_fake("honest, split in two writes", FK_GOOD_SPLIT, 0, t);
	run_fake("honest, region already closed", FK_GOOD_CLOSED, 0, t);
	run_fake("wrong magic", FK_MAGIC, -TACHYON_EABI, t);
	run_fake("wrong version", FK_VERSION, -TACHYON_EABI, t);
	run_fake("wrong alignment", FK_ALIGN, -TACHYON_EABI, t);
	run_fake("wrong flags", FK_FLAGS, -TACHYON_EABI, t);
	run_fake("request/reply bus (flags 1, two fds)", FK_RPC, -TACHYON_EABI, t);
	run_fake("bad capacity", FK_BADCAP, -TACHYON_EHANDSHAKE, t);
	run_fake("shm size not 768 + capacity", FK_BADSIZE, -TACHYON_EHANDSHAKE, t);
	run_fake("a second ring on a plain bus", FK_CAP2, -TACHYON_EHANDSHAKE, t);
	run_fake("a pipe", FK_PIPE, -TACHYON_EHANDSHAKE, t);
	run_fake("a regular file in /tmp", FK_REGFILE, -TACHYON_EHANDSHAKE, t);
	run_fake("a regular tmpfs file", FK_SHMFILE, -TACHYON_EHANDSHAKE, t);
	run_fake("an unsealed memfd", FK_UNSEALED, -TACHYON_EHANDSHAKE, t);
	run_fake("a memfd too small", FK_SMALL, -TACHYON_EHANDSHAKE, t);
	run_fake("region header version 3", FK_HDR_VERSION, -TACHYON_EHANDSHAKE, t);
	run_fake("region header capacity differs", FK_HDR_CAP, -TACHYON_EHANDSHAKE, t);
	run_fake("region header fatal", FK_HDR_STATE, -TACHYON_EHANDSHAKE, t);
	run_fake("no fd", FK_NOFD, -TACHYON_EHANDSHAKE, t);
	run_fake("two fds", FK_TWOFDS, -TACHYON_EHANDSHAKE, t);
	run_fake("eight fds (MSG_CTRUNC)", FK_MANYFDS, -TACHYON_EHANDSHAKE, t);
	run_fake("fd with the second read", FK_LATEFD, -TACHYON_EHANDSHAKE, t);
	run_fake("10 bytes then EOF", FK_PARTIAL_EOF, -TACHYON_EHANDSHAKE, t);
	run_fake("EOF at once", FK_EOF, -TACHYON_EHANDSHAKE, t);
	run_fake("10 bytes then silence", FK_PARTIAL_SILENT, -ETIMEDOUT, 300);
	run_fake("accepted, nothing sent", FK_SILENT, -ETIMEDOUT, 300);
	run_fake("never accepted", FK_NOACCEPT, -ETIMEDOUT, 300);
}

/* ------------------------------------------------------------------------ */
/* Real listener and connector                                               */

/* Fork a child that connects with our connector after delay_ms and exits 0
 * when it got a bus whose peer is the parent. */
static pid_t spawn_connector(const char *path, int delay_ms, int expect)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		if (delay_ms)
			sleep_ms(delay_ms);
		tachyon_wait w = test_wait_ms(3000);
		tachyon_bus *bus = NULL;
		int rc = tachyon_bus_connect(path, &w, &bus);
		if (rc != expect)
			_exit(10);
		if (rc == 0) {
			int ok = tachyon_bus_capacity(bus) == CAP && tachyon_bus_peer_pid(bus) == parent &&
			         tachyon_bus_peer_liveness(bus) == TACHYON_PEER_ALIVE &&
			         count_inheritable_fds() == 0;
			tachyon_bus_unref(bus);
			_exit(ok ? 0 : 11);
		}
		_exit(0);
	}
	return pid;
}

/* Accept on l, expecting the bus of the connector `child`. */
static void accept_child(tachyon_listener *l, pid_t child)
{
	tachyon_wait w = test_wait_ms(5000);
	tachyon_bus *bus = NULL;
	int rc = tachyon_listener_accept(l, &w, &bus);
	CHECK_EQ(rc, 0);
	if (rc == 0) {
		CHECK_EQ(tachyon_bus_capacity(bus), CAP);
		CHECK_EQ(tachyon_bus_peer_pid(bus), child);
	}
	CHECK_EQ(test_wait_child(child), 0);
	if (bus)
		tachyon_bus_unref(bus);
}

static void test_real_pair(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "pair");
	int base = test_count_fds();
	tachyon_listener *l = NULL;
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	struct stat st;
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(count_inheritable_fds(), 0);

	/* The connector holds its bus until we have looked at ours. */
	int go[2];
	REQUIRE(pipe2(go, O_CLOEXEC) == 0);
	pid_t parent = getpid();
	pid_t child = fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		close(go[1]);
		tachyon_wait cw = test_wait_ms(3000);
		tachyon_bus *b = NULL;
		if (tachyon_bus_connect(path, &cw, &b) != 0)
			_exit(10);
		int ok = tachyon_bus_capacity(b) == CAP && tachyon_bus_peer_pid(b) == parent &&
		         tachyon_bus_peer_liveness(b) == TACHYON_PEER_ALIVE &&
		         count_inheritable_fds() == 0;
		char c;
		if (read(go[0], &c, 1) != 1)
			ok = 0;
		/* exits without closing the bus: to the listener it died */
		_exit(ok ? 0 : 11);
	}
	close(go[0]);
	{
		tachyon_wait w = test_wait_ms(5000);
		tachyon_bus *bus = NULL;
		CHECK_EQ(tachyon_listener_accept(l, &w, &bus), 0);
		CHECK_EQ(count_inheritable_fds(), 0); /* listener, region, pidfd, socket */
		if (bus) {
			CHECK_EQ(tachyon_bus_peer_pid(bus), child);
			CHECK_EQ(tachyon_bus_peer_liveness(bus), TACHYON_PEER_ALIVE);
		}
		CHECK_EQ(write(go[1], "g", 1), 1);
		close(go[1]);
		CHECK_EQ(test_wait_child(child), 0);
		if (bus) {
			/* It exited without closing: dead, as its pidfd says. */
			CHECK_EQ(tachyon_bus_peer_liveness(bus), TACHYON_PEER_DEAD);
			tachyon_bus_unref(bus);
		}
	}
	/* The path is unlinked once the one peer has its handshake. */
	CHECK(lstat(path, &st) < 0 && errno == ENOENT);
	/* The one slot is used up. */
	tachyon_wait w = test_wait_ms(0);
	tachyon_bus *bus = NULL;
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), -EINVAL);
	tachyon_listener_close(l);
	CHECK_EQ(test_count_fds(), base);

	/* tachyon_bus_listen in a child, connect in the parent. */
	test_socket_path(path, sizeof path, "pair2");
	child = fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		tachyon_wait cw = test_wait_ms(3000);
		tachyon_bus *b = NULL;
		int rc = tachyon_bus_listen(path, CAP, NULL, &cw, &b);
		int ok = rc == 0 && tachyon_bus_peer_pid(b) == parent;
		if (b)
			tachyon_bus_unref(b);
		_exit(ok ? 0 : 1);
	}
	w = test_wait_ms(3000);
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), 0);
	if (bus) {
		CHECK_EQ(tachyon_bus_peer_pid(bus), child);
		tachyon_bus_unref(bus);
	}
	CHECK_EQ(test_wait_child(child), 0);
	CHECK(lstat(path, &st) < 0);
	CHECK_EQ(test_count_fds(), base);
}

/* A fake connector reads exactly what our listener sends: one message of
 * 32 bytes and one fd, a sealed memfd with our marker at 20. */
static void test_fake_connector(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "fakeconn");
	int base = test_count_fds();
	tachyon_listener *l = NULL;
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	pid_t child = fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		struct sockaddr_un addr;
		fill_addr(path, &addr);
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0)
			_exit(10);
		unsigned char buf[64];
		union {
			struct cmsghdr align;
			char b[CMSG_SPACE(sizeof(int) * 4)];
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
		struct msghdr msg = {0};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof ctl.b;
		ssize_t n = recvmsg(s, &msg, 0);
		if (n != 32)
			_exit(11); /* one message of exactly 32 bytes */
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)) ||
		    CMSG_NXTHDR(&msg, cm))
			_exit(12);
		int fd;
		memcpy(&fd, CMSG_DATA(cm), sizeof fd);
		struct tachyon_handshake h;
		memcpy(&h, buf, sizeof h);
		if (h.magic != TACHYON_MAGIC || h.version != 4 || h.capacity != CAP ||
		    h.shm_size != TACHYON_REGION_HEADER_SIZE + CAP || h.capacity2 || h.shm_size2 ||
		    h.msg_alignment != 64 || h.flags)
			_exit(13);
		int seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || (seals & FULL_SEALS) != FULL_SEALS)
			_exit(14);
		struct stat fst;
		if (fstat(fd, &fst) < 0 || fst.st_size != TACHYON_REGION_HEADER_SIZE + CAP ||
		    (fst.st_mode & 0777) != 0600)
			_exit(15);
		const struct tachyon_region_header *hdr =
		    mmap(NULL, TACHYON_REGION_HEADER_SIZE + CAP, PROT_READ, MAP_SHARED, fd, 0);
		if (hdr == MAP_FAILED || hdr->listener_marker != TACHYON_PEER_MARKER ||
		    hdr->connector_marker != 0 || hdr->state != TACHYON_STATE_READY)
			_exit(16);
		/* Then it closes everything at once, as 0.5.1 does. */
		_exit(0);
	}
	tachyon_wait w = test_wait_ms(3000);
	tachyon_bus *bus = NULL;
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), 0);
	CHECK_EQ(test_wait_child(child), 0);
	if (bus) {
		CHECK_EQ(tachyon_bus_peer_pid(bus), child);
		tachyon_bus_unref(bus);
	}
	tachyon_listener_close(l);
	CHECK_EQ(test_count_fds(), base);
}

/* ------------------------------------------------------------------------ */
/* Path safety                                                               */

static void test_path_too_long(void)
{
	char path[200];
	memset(path, 0, sizeof path);
	int n = snprintf(path, sizeof path, "/tmp/tachyon-test-%d-", (int)getpid());
	memset(path + n, 'x', 108 - (size_t)n); /* 108 bytes: one over the limit */
	int base = test_count_fds();
	tachyon_listener *l = (tachyon_listener *)1;
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), -ENAMETOOLONG);
	CHECK(l == NULL);
	tachyon_wait w = test_wait_ms(100);
	tachyon_bus *bus = NULL;
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), -ENAMETOOLONG);
	CHECK_EQ(tachyon_bus_listen(path, CAP, NULL, &w, &bus), -ENAMETOOLONG);
	/* Nothing was created under the full or the cut name. */
	struct stat st;
	CHECK(lstat(path, &st) < 0);
	path[107] = '\0';
	CHECK(lstat(path, &st) < 0);
	/* 107 bytes is the longest that fits, and works. */
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), 0);
	if (l) {
		CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
		tachyon_listener_close(l);
		CHECK(lstat(path, &st) < 0);
	}
	/* Bad arguments are refused before anything is created. */
	path[60] = '\0';
	CHECK_EQ(tachyon_listener_open(path, 96, NULL, &l), -EINVAL);
	CHECK(lstat(path, &st) < 0);
	CHECK_EQ(tachyon_listener_open("", CAP, NULL, &l), -EINVAL);
	CHECK_EQ(test_count_fds(), base);
}

static void test_mode_0600(void)
{
	char path[108];
	int base = test_count_fds();
	/* No umask games: even with umask 0 the file is 0600 at once. */
	mode_t old = umask(0);
	for (int i = 0; i < 2; i++) {
		test_socket_path(path, sizeof path, "mode");
		tachyon_listener *l = NULL;
		REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
		struct stat st;
		CHECK(lstat(path, &st) == 0);
		CHECK_EQ(st.st_mode & 07777, 0600);
		CHECK_EQ(st.st_uid, geteuid());
		tachyon_listener_close(l);
		CHECK(lstat(path, &st) < 0 && errno == ENOENT);
		umask(old);
	}
	CHECK_EQ(test_count_fds(), base);
}

static void test_busy_path(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "busy");
	int base = test_count_fds();
	tachyon_listener *l1 = NULL, *l2 = NULL;
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l1) == 0);
	struct stat st1, st2;
	REQUIRE(lstat(path, &st1) == 0);
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l2), -TACHYON_EBUSYPATH);
	CHECK(l2 == NULL);
	/* The first listener's file is untouched and it still works. */
	CHECK(lstat(path, &st2) == 0 && st2.st_ino == st1.st_ino);
	pid_t child = spawn_connector(path, 0, 0);
	accept_child(l1, child);
	tachyon_listener_close(l1);
	CHECK_EQ(test_count_fds(), base);

	/* A live foreign listener (0.5.1's, or anyone's): likewise refused,
	 * whether it bound the same absolute path (0), a relative one (1), or we
	 * spell the directory differently (2); and a socket still between its
	 * bind and its listen (3). */
	for (int rel = 0; rel < 4; rel++) {
		test_socket_path(path, sizeof path, "busyraw");
		int ready[2];
		REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
		pid_t pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			if (rel == 1 && chdir("/tmp") < 0)
				_exit(3);
			if (rel == 3) {
				struct sockaddr_un addr;
				fill_addr(path, &addr);
				int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
				if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0)
					_exit(3);
			} else {
				raw_listen(rel == 1 ? path + 5 : path); /* "/tmp/" stripped */
			}
			if (write(ready[1], "x", 1) != 1)
				_exit(3);
			linger();
		}
		close(ready[1]);
		char c;
		REQUIRE(read(ready[0], &c, 1) == 1);
		close(ready[0]);
		REQUIRE(lstat(path, &st1) == 0);
		/* rel 2: we name it through a different spelling of the directory */
		char other[128];
		snprintf(other, sizeof other, "/tmp/./%s", path + 5);
		CHECK_EQ(tachyon_listener_open(rel == 2 ? other : path, CAP, NULL, &l2),
		         -TACHYON_EBUSYPATH);
		CHECK(lstat(path, &st2) == 0 && st2.st_ino == st1.st_ino);
		kill(pid, SIGKILL);
		test_wait_child(pid);
		unlink(path);
	}
	CHECK_EQ(test_count_fds(), base);
}

static void test_stale_path(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "stale");
	int base = test_count_fds();
	int ready[2];
	REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		tachyon_listener *l = NULL;
		if (tachyon_listener_open(path, CAP, NULL, &l) < 0)
			_exit(3);
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		linger();
	}
	close(ready[1]);
	char c;
	REQUIRE(read(ready[0], &c, 1) == 1);
	close(ready[0]);
	kill(pid, SIGKILL);
	CHECK_EQ(test_wait_child(pid), 128 + SIGKILL);
	struct stat st1, st2;
	REQUIRE(lstat(path, &st1) == 0 && S_ISSOCK(st1.st_mode)); /* left behind */
	/* Mark the stale file, to see it replaced (ext4 may hand the new file
	 * the same inode number, so that tells nothing). A bind over it would
	 * fail with EADDRINUSE, so success alone also says it was removed. */
	REQUIRE(chmod(path, 0640) == 0);
	/* A connector meets the stale file: refused, and told so on timeout. */
	tachyon_bus *none = NULL;
	tachyon_wait w = test_wait_ms(50);
	CHECK_EQ(tachyon_bus_connect(path, &w, &none), -ETIMEDOUT);
	CHECK(strstr(tachyon_handshake_detail(), "no process accepts connections at") != NULL);

	tachyon_listener *l = NULL;
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), 0);
	if (l) {
		CHECK(lstat(path, &st2) == 0 && S_ISSOCK(st2.st_mode));
		CHECK_EQ(st2.st_mode & 0777, 0600);
		pid_t child = spawn_connector(path, 0, 0);
		accept_child(l, child);
		tachyon_listener_close(l);
	}
	CHECK_EQ(test_count_fds(), base);
}

static void test_refused_paths(void)
{
	char path[108], target[128];
	int base = test_count_fds();
	tachyon_listener *l = NULL;
	struct stat st;

	/* A symlink (dangling, to a stale socket, or to a directory) is refused
	 * and left in place; its target is neither created nor removed. */
	test_socket_path(path, sizeof path, "symlink");
	snprintf(target, sizeof target, "%s.target", path);
	unlink(target);
	REQUIRE(symlink(target, path) == 0);
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), -EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(lstat(target, &st) < 0);
	{
		/* a stale socket file as the target */
		struct sockaddr_un addr;
		fill_addr(target, &addr);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&addr, sizeof addr) == 0);
		close(s);
	}
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), -EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(lstat(target, &st) == 0 && S_ISSOCK(st.st_mode));
	unlink(path);
	unlink(target);

	/* A regular file is refused and keeps its content. */
	test_socket_path(path, sizeof path, "regular");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0 && write(fd, "precious", 8) == 8);
	close(fd);
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), -EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 8);
	unlink(path);

	/* A directory too. */
	test_socket_path(path, sizeof path, "dir");
	REQUIRE(mkdir(path, 0700) == 0);
	CHECK_EQ(tachyon_listener_open(path, CAP, NULL, &l), -EEXIST);
	CHECK(lstat(path, &st) == 0 && S_ISDIR(st.st_mode));
	rmdir(path);

	/* close unlinks only its own file: replaced behind its back, it stays. */
	test_socket_path(path, sizeof path, "replaced");
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0);
	close(fd);
	tachyon_listener_close(l);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	unlink(path);

	/* ...nor when the replacement is another socket, which on ext4 tends to
	 * get the very inode number ours had. */
	test_socket_path(path, sizeof path, "rebound");
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	struct stat ours;
	REQUIRE(lstat(path, &ours) == 0);
	unlink(path);
	{
		struct sockaddr_un addr;
		fill_addr(path, &addr);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&addr, sizeof addr) == 0);
		close(s);
	}
	REQUIRE(lstat(path, &st) == 0);
	if (st.st_ino == ours.st_ino)
		fprintf(stderr, "test_handshake: the foreign socket reused our inode number\n");
	tachyon_listener_close(l);
	CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	unlink(path);
	CHECK_EQ(test_count_fds(), base);
}

/* A connector that is gone before the handshake (connected, then exited)
 * does not use up the listener's one slot. */
static void test_vanished_connector(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "vanished");
	int base = test_count_fds();
	tachyon_listener *l = NULL;
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	pid_t ghost = fork();
	REQUIRE(ghost >= 0);
	if (ghost == 0) {
		struct sockaddr_un addr;
		fill_addr(path, &addr);
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		_exit(s >= 0 && connect(s, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : 1);
	}
	CHECK_EQ(test_wait_child(ghost), 0); /* connected, exited, reaped */
	pid_t child = spawn_connector(path, 0, 0);
	accept_child(l, child);
	tachyon_listener_close(l);
	CHECK_EQ(test_count_fds(), base);
}

/* ------------------------------------------------------------------------ */
/* Credentials (R7): root only, since it needs a process of another uid      */

static void test_credentials(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_handshake: credential check skipped: needs root to run a peer "
		                "of another uid\n");
		return;
	}
	const uid_t nobody = 65534;
	char path[108];
	int base = test_count_fds();
	for (int allow = 0; allow < 2; allow++) {
		test_socket_path(path, sizeof path, "cred");
		tachyon_listen_opts opts = {.allow_uids = &nobody, .n_allow_uids = 1};
		tachyon_listener *l = NULL;
		REQUIRE(tachyon_listener_open(path, CAP, allow ? &opts : NULL, &l) == 0);
		/* 0666, so the refusal provably comes from the credential check and
		 * not from the file mode. */
		REQUIRE(chmod(path, 0666) == 0);

		pid_t stranger = fork();
		REQUIRE(stranger >= 0);
		if (stranger == 0) {
			if (setgid(nobody) < 0 || setuid(nobody) < 0)
				_exit(3);
			tachyon_wait w = test_wait_ms(2000);
			tachyon_bus *bus = NULL;
			int rc = tachyon_bus_connect(path, &w, &bus);
			if (bus)
				tachyon_bus_unref(bus);
			/* refused: the listener hangs up on it without a handshake */
			_exit(rc == (allow ? 0 : -TACHYON_EHANDSHAKE) ? 0 : 10);
		}
		if (!allow) {
			/* The refused stranger did not use up the slot: our own uid
			 * connects after it and gets the bus. */
			pid_t friend_ = spawn_connector(path, 300, 0);
			accept_child(l, friend_);
			CHECK_EQ(test_wait_child(stranger), 0);
		} else {
			accept_child(l, stranger);
		}
		tachyon_listener_close(l);
		unlink(path);
	}
	CHECK_EQ(test_count_fds(), base);
}

/* ------------------------------------------------------------------------ */
/* Deadlines and interruption                                                */

static int calls;
static int64_t last_call_ns, max_gap_ns;

static int interrupt_on_third(void *arg)
{
	int64_t now = tachyon_now_ns();
	if (now - last_call_ns > max_gap_ns)
		max_gap_ns = now - last_call_ns;
	last_call_ns = now;
	return ++calls >= *(int *)arg;
}

static int never_interrupt(void *arg)
{
	(void)arg;
	calls++;
	return 0;
}

static void on_alarm(int sig) { (void)sig; }

static void arm_alarm_ms(int ms)
{
	struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

/* SIGALRM after ms, then every 5 ms until disarmed (arm_alarm_ms(0)): a
 * wait without an interrupted callback learns of a signal only from a
 * system call that it interrupts, and one alarm that lands between two
 * calls (a connect retry's, say) would leave such a wait waiting forever. */
static void arm_alarm_repeating_ms(int ms)
{
	struct itimerval it = {{0, 5000}, {ms / 1000, (ms % 1000) * 1000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

static void test_deadlines(void)
{
	char path[108];
	int base = test_count_fds();
	tachyon_bus *bus = NULL;
	struct stat st;

	/* connect with nobody there: -ETIMEDOUT at the deadline. */
	test_socket_path(path, sizeof path, "nobody");
	tachyon_wait w = test_wait_ms(300);
	int64_t t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), -ETIMEDOUT);
	double dt = ms_since(t0);
	fprintf(stderr, "test_handshake: connect, no listener: -ETIMEDOUT after %.1f ms (deadline 300)\n",
	        dt);
	CHECK(dt >= 299 && dt <= 300 + SLACK_MS);
	CHECK(strstr(tachyon_handshake_detail(), "nothing appeared at") != NULL);
	CHECK(lstat(path, &st) < 0);
	/* a deadline already past: one attempt, then -ETIMEDOUT */
	w = test_wait_ms(0);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), -ETIMEDOUT);
	CHECK(ms_since(t0) < 50);
	/* a regular file at the path refuses connections like a missing one */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	w = test_wait_ms(100);
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), -ETIMEDOUT);
	CHECK(strstr(tachyon_handshake_detail(), "no process accepts connections at") != NULL);
	unlink(path);

	/* connect waits for a listener that appears 100 ms later. */
	test_socket_path(path, sizeof path, "late");
	pid_t parent = getpid();
	pid_t child = fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		sleep_ms(100);
		tachyon_wait cw = test_wait_ms(3000);
		tachyon_bus *b = NULL;
		int rc = tachyon_bus_listen(path, CAP, NULL, &cw, &b);
		int ok = rc == 0 && tachyon_bus_peer_pid(b) == parent;
		if (b)
			tachyon_bus_unref(b);
		_exit(ok ? 0 : 1);
	}
	w = test_wait_ms(3000);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_connect(path, &w, &bus), 0);
	dt = ms_since(t0);
	fprintf(stderr, "test_handshake: connect to a listener appearing after 100 ms: %.1f ms\n", dt);
	CHECK(dt >= 100 && dt < 1000);
	if (bus)
		tachyon_bus_unref(bus);
	bus = NULL;
	CHECK_EQ(test_wait_child(child), 0);

	/* accept: -ETIMEDOUT at the deadline, then usable again. */
	test_socket_path(path, sizeof path, "acceptto");
	tachyon_listener *l = NULL;
	REQUIRE(tachyon_listener_open(path, CAP, NULL, &l) == 0);
	w = test_wait_ms(200);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), -ETIMEDOUT);
	dt = ms_since(t0);
	fprintf(stderr, "test_handshake: accept, nobody: -ETIMEDOUT after %.1f ms (deadline 200)\n", dt);
	CHECK(dt >= 199 && dt <= 200 + SLACK_MS);
	CHECK(lstat(path, &st) == 0); /* still listening */

	/* interrupted: the callback is asked at least every watchdog period */
	int limit = 3;
	calls = 0;
	max_gap_ns = 0;
	w = test_wait_ms(-1);
	w.interrupted = interrupt_on_third;
	w.arg = &limit;
	t0 = last_call_ns = tachyon_now_ns();
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), -EINTR);
	dt = ms_since(t0);
	fprintf(stderr, "test_handshake: accept interrupted on the 3rd check after %.1f ms, "
	                "longest gap %.1f ms\n", dt, max_gap_ns / 1e6);
	CHECK_EQ(calls, 3);
	CHECK(max_gap_ns <= (int64_t)(TACHYON_WATCHDOG_MS + SLACK_MS) * 1000000);

	/* EINTR without a callback ends the wait at once... */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, &old);
	w = test_wait_ms(-1);
	arm_alarm_repeating_ms(100);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), -EINTR);
	dt = ms_since(t0);
	arm_alarm_ms(0);
	CHECK(dt >= 90 && dt < 100 + SLACK_MS);
	/* ...with one that says "go on", the wait goes on to its deadline. */
	calls = 0;
	w = test_wait_ms(300);
	w.interrupted = never_interrupt;
	arm_alarm_ms(100);
	CHECK_EQ(tachyon_listener_accept(l, &w, &bus), -ETIMEDOUT);
	CHECK(calls >= 1);
	/* connect to a missing path: interruptible the same ways */
	char missing[108];
	test_socket_path(missing, sizeof missing, "missing");
	w = test_wait_ms(-1);
	arm_alarm_repeating_ms(100);
	t0 = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_connect(missing, &w, &bus), -EINTR);
	CHECK(ms_since(t0) < 100 + SLACK_MS);
	arm_alarm_ms(0);
	sigaction(SIGALRM, &old, NULL);
	limit = 2;
	calls = 0;
	max_gap_ns = 0;
	w = test_wait_ms(-1);
	w.interrupted = interrupt_on_third;
	w.arg = &limit;
	t0 = last_call_ns = tachyon_now_ns();
	CHECK_EQ(tachyon_bus_connect(missing, &w, &bus), -EINTR);
	dt = ms_since(t0);
	fprintf(stderr, "test_handshake: connect interrupted on the 2nd check after %.1f ms\n", dt);
	CHECK(max_gap_ns <= (int64_t)(TACHYON_WATCHDOG_MS + SLACK_MS) * 1000000);

	/* After all that the listener still serves its one peer. */
	child = spawn_connector(path, 0, 0);
	accept_child(l, child);
	tachyon_listener_close(l);
	CHECK(bus == NULL);
	CHECK_EQ(test_count_fds(), base);
}

static void test_codec(void)
{
	struct tachyon_handshake h;
	uint64_t cap = 0;
	tachyon_handshake_encode(CAP, &h);
	CHECK_EQ(h.magic, TACHYON_MAGIC);
	CHECK_EQ(h.version, 4);
	CHECK_EQ(h.capacity, CAP);
	CHECK_EQ(h.shm_size, 768 + CAP);
	CHECK_EQ(h.capacity2, 0);
	CHECK_EQ(h.shm_size2, 0);
	CHECK_EQ(h.msg_alignment, 64);
	CHECK_EQ(h.flags, 0);
	CHECK_EQ(tachyon_handshake_decode(&h, sizeof h, &cap), 0);
	CHECK_EQ(cap, CAP);
	CHECK_EQ(tachyon_handshake_decode(&h, 31, &cap), -TACHYON_EHANDSHAKE);
	CHECK_EQ(tachyon_handshake_decode(NULL, 32, &cap), -TACHYON_EHANDSHAKE);
	/* the largest ring: 768 + 2^31 still fits the u32 shm size */
	tachyon_handshake_encode(UINT64_C(1) << 31, &h);
	CHECK_EQ(tachyon_handshake_decode(&h, sizeof h, &cap), 0);
	CHECK_EQ(cap, UINT64_C(1) << 31);
	struct tachyon_handshake b = h;
	b.capacity = 1u << 30; /* shm size now disagrees */
	CHECK_EQ(tachyon_handshake_decode(&b, sizeof b, &cap), -TACHYON_EHANDSHAKE);
	b = h;
	b.capacity = 32;
	b.shm_size = 768 + 32;
	CHECK_EQ(tachyon_handshake_decode(&b, sizeof b, &cap), -TACHYON_EHANDSHAKE);
	b = h;
	b.flags = 1;
	CHECK_EQ(tachyon_handshake_decode(&b, sizeof b, &cap), -TACHYON_EABI);
	b = h;
	b.magic = 0;
	b.capacity = 3; /* both wrong: the ABI answer wins */
	CHECK_EQ(tachyon_handshake_decode(&b, sizeof b, &cap), -TACHYON_EABI);
}

int main(void)
{
	note_inherited_fds();
	int64_t t0 = tachyon_now_ns();
	test_codec();
	test_fake_listeners();
	test_real_pair();
	test_fake_connector();
	test_path_too_long();
	test_mode_0600();
	test_busy_path();
	test_stale_path();
	test_refused_paths();
	test_vanished_connector();
	test_credentials();
	test_deadlines();
	fprintf(stderr, "test_handshake: %.0f ms in all\n", ms_since(t0));
	return test_result("test_handshake");
}

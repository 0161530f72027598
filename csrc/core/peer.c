/*
 * Peer liveness through a pidfd (ABI.md, "Peer liveness").
 *
 * A pidfd polls readable once its process has exited, zombie included, so
 * a killed but unreaped child counts as dead; kill(pid, 0) and /proc would
 * call it alive, and a pid can be reused while a pidfd cannot. The socket
 * is never used to judge liveness: a 0.5.1 peer closes its end right after
 * the handshake and lives on.
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

#ifdef __linux__

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

/* Linux 6.5+; glibc 2.36's headers do not name it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* pidfds are created close-on-exec by the kernel (both SO_PEERPIDFD and
 * pidfd_open); check anyway, since a leaked pidfd would keep a dead peer's
 * pid pinned in an exec'd child. */
static int ensure_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	if (!(fl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int tachyon_peer_from_socket(int sockfd, tachyon_peer *out)
{
	out->pidfd = -1;
	out->pid = 0;
	out->self = 0;

	/* The pid as seen from our pid namespace; 0 when the peer lives in
	 * another one, and then liveness stays unknown (ABI.md, "Peer liveness"). */
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	out->pid = cred.pid;
	if (cred.pid != 0 && cred.pid == getpid()) {
		/* Our own process: no pidfd needed, only a close ends this peer. */
		out->self = 1;
		return 0;
	}
	if (cred.pid == 0)
		return 0;

	/* SO_PEERPIDFD refers to the very process that connected (or listened),
	 * with no window for pid reuse. */
	int pidfd = -1;
	len = sizeof pidfd;
	if (getsockopt(sockfd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
		out->pidfd = pidfd;
		return ensure_cloexec(pidfd);
	}
	/* ENOPROTOOPT: a kernel before 6.5. EINVAL: 6.5 to 6.15 refuse a peer
	 * that has already been reaped; pidfd_open below then says ESRCH. Any
	 * other error leaves liveness unknown rather than guessing. */
	if (errno != ENOPROTOOPT && errno != EINVAL)
		return -errno;

#ifdef SYS_pidfd_open
	/* At once after SO_PEERCRED: the pid cannot have been reused unless the
	 * peer exited and was reaped in between (then ESRCH, or at worst a
	 * stranger's pidfd; the price of a kernel without SO_PEERPIDFD). */
	long r = syscall(SYS_pidfd_open, (pid_t)cred.pid, 0u);
	if (r < 0)
		return -errno;
	out->pidfd = (int)r;
	return ensure_cloexec(out->pidfd);
#else
	return -ENOSYS;
#endif
}

int tachyon_peer_liveness(const tachyon_peer *p)
{
	if (!p)
		return TACHYON_PEER_UNKNOWN;
	if (p->self)
		return TACHYON_PEER_SELF;
	if (p->pid == 0 || p->pidfd < 0)
		return TACHYON_PEER_UNKNOWN;

	struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
	for (;;) {
		int r = poll(&pfd, 1, 0);
		if (r > 0)
			/* POLLIN: the process exited (newer kernels add POLLHUP once it
			 * is reaped). POLLNVAL would mean a bug of ours, not a death. */
			return (pfd.revents & (POLLIN | POLLHUP)) ? TACHYON_PEER_DEAD
			                                          : TACHYON_PEER_UNKNOWN;
		if (r == 0)
			return TACHYON_PEER_ALIVE;
		if (errno != EINTR)
			return TACHYON_PEER_UNKNOWN;
	}
}

#else /* !__linux__: no pidfds; liveness is unknown, never dead. */

int tachyon_peer_from_socket(int sockfd, tachyon_peer *out)
{
	(void)sockfd;
	out->pidfd = -1;
	out->pid = 0;
	out->self = 0;
	return -ENOSYS;
}

int tachyon_peer_liveness(const tachyon_peer *p)
{
	if (p && p->self)
		return TACHYON_PEER_SELF;
	return TACHYON_PEER_UNKNOWN;
}

#endif

void tachyon_peer_release(tachyon_peer *p)
{
	if (!p)
		return;
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
	p->self = 0;
}

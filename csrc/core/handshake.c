/*
 * The control plane (ABI.md, "The handshake"): a Unix stream socket at a
 * path carries one 32-byte message and the region's memfd from the listener
 * to the connector; after that the socket carries nothing.
 *
 * The listener owns the path (sockpath.c decides what may be removed there):
 * it creates the socket file 0600 and unlinks it only while it is still its
 * own file. The connector trusts nothing it receives: every received fd is
 * closed on every failure, and the whole exchange is bounded by the
 * caller's deadline.
 *
 * A finished handshake yields a link (region, socket, peer); the bus layer
 * (bus.c) turns it into a bus. Nothing here knows the bus.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"

/* Room for two fds: the most a wire-4 peer sends (a request/reply bus), so
 * a third one shows up as MSG_CTRUNC. */
#define MAX_FDS 2

#define CONNECT_RETRY_NS ((int64_t)10 * 1000000)
#define LISTEN_BACKLOG 16

struct tachyon_listener {
	int sockfd;                 /* listening, non-blocking, -1 once closed */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	tachyon_file_id bound;      /* the socket file we bound, to unlink only it */
	int path_owned;             /* our socket file may still be at path */
	tachyon_region region;      /* fd -1 once handed to a link */
	tachyon_region region2;     /* request/reply: the reverse ring; fd -1 on a plain bus */
	uid_t *allow_uids;
	size_t n_allow_uids;
	int role;                   /* enum tachyon_role claimed in the region, or none */
};

/* ------------------------------------------------------------------------ */
/* Handshake message                                                         */

void tachyon_handshake_encode(uint64_t capacity, struct tachyon_handshake *out)
{
	memset(out, 0, sizeof *out);
	out->magic = TACHYON_MAGIC;
	out->version = TACHYON_WIRE_VERSION;
	out->capacity = (uint32_t)capacity;
	out->shm_size = (uint32_t)(TACHYON_REGION_HEADER_SIZE + capacity);
	out->capacity2 = 0;
	out->shm_size2 = 0;
	out->msg_alignment = TACHYON_MSG_ALIGNMENT;
	out->flags = 0;
}

void tachyon_handshake_encode_rpc(uint64_t cap_fwd, uint64_t cap_rev, struct tachyon_handshake *out)
{
	tachyon_handshake_encode(cap_fwd, out);
	out->capacity2 = (uint32_t)cap_rev;
	out->shm_size2 = (uint32_t)(TACHYON_REGION_HEADER_SIZE + cap_rev);
	out->flags = TACHYON_FLAG_RPC;
}

/* Is (capacity, shm_size) one ring as the wire format announces it? */
static int ring_announced_ok(uint32_t capacity, uint32_t shm_size, const char *which)
{
	if (!tachyon_capacity_valid(capacity))
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "it announces a %sring capacity of %u bytes, not a power "
		                              "of two between 64 and 2**31",
		                              which, capacity);
	if ((uint64_t)shm_size != TACHYON_REGION_HEADER_SIZE + (uint64_t)capacity)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "it announces %u bytes of shared memory for a %scapacity "
		                              "of %u; the wire format says 768 + capacity = %llu",
		                              shm_size, which, capacity,
		                              (unsigned long long)(TACHYON_REGION_HEADER_SIZE +
		                                                   (uint64_t)capacity));
	return 0;
}

/* The checks of both kinds of bus; rpc says which kind the caller wants.
 * A request/reply handshake sets cap2 to the reverse ring's capacity. */
static int decode_handshake(const void *buf, size_t len, int rpc, uint64_t *capacity,
                            uint64_t *cap2)
{
	if (!buf || len < TACHYON_HANDSHAKE_SIZE)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "its handshake is %zu bytes long, not %u", buf ? len : 0,
		                              TACHYON_HANDSHAKE_SIZE);
	struct tachyon_handshake h;
	memcpy(&h, buf, sizeof h);
	/* A different format first: those fields say "not our protocol", and a
	 * caller should hear that rather than "bad message". A request/reply
	 * bus (flags 1) is wire 4 too, but not something a plain bus can use. */
	if (h.magic != TACHYON_MAGIC)
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "its handshake starts with magic 0x%08x, not tachyon's "
		                              "0x%08x: it is not a tachyon listener",
		                              h.magic, TACHYON_MAGIC);
	if (h.version != TACHYON_WIRE_VERSION)
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "it speaks wire version %u; this build speaks version %u",
		                              h.version, TACHYON_WIRE_VERSION);
	if (h.msg_alignment != TACHYON_MSG_ALIGNMENT)
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "it announces a message alignment of %u bytes; the wire "
		                              "format needs %u",
		                              h.msg_alignment, TACHYON_MSG_ALIGNMENT);
	/* The kind of bus before its sizes: a plain connector meeting a
	 * request/reply listener (or the reverse) is a mismatch of protocols,
	 * refused before any descriptor is looked at. */
	if (!rpc && h.flags == TACHYON_FLAG_RPC)
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "it offers a request/reply bus (flags 1); a plain bus "
		                              "has flags 0");
	if (rpc && h.flags == 0)
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "it offers a plain bus (flags 0); a request/reply bus "
		                              "has flags 1");
	if (h.flags != (rpc ? TACHYON_FLAG_RPC : 0u))
		return tachyon_detail_fail(-TACHYON_EABI,
		                              "its handshake has flags 0x%x; a %s bus has flags %u",
		                              h.flags, rpc ? "request/reply" : "plain", rpc ? 1u : 0u);
	int rc = ring_announced_ok(h.capacity, h.shm_size, rpc ? "forward " : "");
	if (rc < 0)
		return rc;
	if (rpc) {
		rc = ring_announced_ok(h.capacity2, h.shm_size2, "reverse ");
		if (rc < 0)
			return rc;
	} else if (h.capacity2 != 0 || h.shm_size2 != 0) {
		/* A plain bus announces no second ring; anything else is malformed. */
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "it announces a second ring (capacity %u, %u bytes) on a "
		                              "plain bus",
		                              h.capacity2, h.shm_size2);
	}
	if (capacity)
		*capacity = h.capacity;
	if (cap2)
		*cap2 = rpc ? h.capacity2 : 0;
	return 0;
}

int tachyon_handshake_decode(const void *buf, size_t len, uint64_t *capacity)
{
	return decode_handshake(buf, len, 0, capacity, NULL);
}

int tachyon_handshake_decode_rpc(const void *buf, size_t len, uint64_t *cap_fwd, uint64_t *cap_rev)
{
	return decode_handshake(buf, len, 1, cap_fwd, cap_rev);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static const tachyon_wait forever_wait = {.deadline_ns = TACHYON_FOREVER};

/* One ppoll of fd for up to ns, at most one watchdog period, so the
 * caller's interrupt check runs at least that often. */
static int poll_slice(int fd, short events, int64_t ns)
{
	struct timespec ts = tachyon_timespec(ns > TACHYON_WATCHDOG_NS ? TACHYON_WATCHDOG_NS : ns);
	struct pollfd pfd = {.fd = fd, .events = events};
	return ppoll(&pfd, 1, &ts, NULL);
}

/*
 * Wait until fd reports one of events, in slices of at most the watchdog
 * period, asking w->interrupted after each slice and after EINTR. A deadline
 * already past still polls once. Returns 0 when ready, -ETIMEDOUT, -EINTR
 * or another -errno of ppoll.
 */
static int wait_fd(int fd, short events, const tachyon_wait *w)
{
	int64_t last_check = tachyon_now_ns();
	for (;;) {
		int r = poll_slice(fd, events, tachyon_time_left(w->deadline_ns, tachyon_now_ns(),
		                                                 TACHYON_WATCHDOG_NS));
		if (r > 0)
			return 0;
		if (r < 0) {
			if (errno != EINTR)
				return -errno;
			if ((r = tachyon_wait_eintr(w)) < 0)
				return r;
			continue;
		}
		/* A slice ended: the deadline, then the callback (always asked). */
		if ((r = tachyon_wait_check(w, tachyon_now_ns(), &last_check, 1)) < 0)
			return r;
	}
}

/* ------------------------------------------------------------------------ */
/* Listener                                                                  */

/* Both kinds of listener: rpc asks for a request/reply bus, whose reverse
 * ring has capacity cap2. */
static int listener_open(const char *path, uint64_t capacity, int rpc, uint64_t cap2,
                         const tachyon_listen_opts *opts, tachyon_listener **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct sockaddr_un addr;
	int rc = tachyon_sockpath_addr(path, &addr);
	if (rc < 0)
		return rc;
	if (!tachyon_capacity_valid(capacity) || (rpc && !tachyon_capacity_valid(cap2)))
		return -EINVAL;
	if (opts && opts->n_allow_uids && !opts->allow_uids)
		return -EINVAL;
	int role = opts ? opts->role : TACHYON_ROLE_NONE;
	if (role != TACHYON_ROLE_NONE && role != TACHYON_ROLE_PRODUCER && role != TACHYON_ROLE_CONSUMER)
		return -EINVAL;

	tachyon_listener *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->sockfd = -1;
	l->region.fd = -1;
	l->region2.fd = -1;
	memcpy(l->path, path, strlen(path) + 1);
	if (opts && opts->n_allow_uids) {
		/* Our own copy: the caller's array need not outlive this call. */
		l->allow_uids = calloc(opts->n_allow_uids, sizeof(uid_t));
		if (!l->allow_uids) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(l->allow_uids, opts->allow_uids, opts->n_allow_uids * sizeof(uid_t));
		l->n_allow_uids = opts->n_allow_uids;
	}

	rc = tachyon_sockpath_clear(path);
	if (rc < 0)
		goto fail;

	/* Non-blocking, so an accept after a ready poll never blocks on a
	 * connection its client withdrew in between. */
	l->sockfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->sockfd < 0) {
		rc = -errno;
		goto fail;
	}
	/* Linux gives the socket file the mode of the socket's inode (less the
	 * umask) at bind: 0600 from the moment the file exists, without
	 * touching the process-wide umask. */
	if (fchmod(l->sockfd, 0600) < 0) {
		rc = -errno;
		goto fail;
	}
	if (bind(l->sockfd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		/* Someone created the path between our check and our bind. */
		rc = errno == EADDRINUSE ? -TACHYON_EBUSYPATH : -errno;
		goto fail;
	}
	rc = tachyon_sockpath_id(path, &l->bound);
	if (rc < 0)
		goto fail; /* replaced already: not ours to remove */
	l->path_owned = 1;
	if (listen(l->sockfd, LISTEN_BACKLOG) < 0) {
		rc = -errno;
		goto fail;
	}

	rc = tachyon_region_create(path, capacity, &l->region);
	if (rc == 0 && rpc)
		rc = tachyon_region_create(path, cap2, &l->region2);
	if (rc < 0)
		goto fail;
	if (rpc) {
		/* The callee's claims, made like a plain listener's (below): it
		 * consumes the forward ring and produces on the reverse one. */
		struct tachyon_region_header *fwd = l->region.base, *rev = l->region2.base;
		tachyon_atomic_store_relaxed32(&fwd->consumer_owner, TACHYON_OWNER_LISTENER);
		tachyon_atomic_store_relaxed32(&rev->producer_owner, TACHYON_OWNER_LISTENER);
	}
	if (role != TACHYON_ROLE_NONE) {
		/* The listener's claim (ABI.md, "Roles"). The region says ready
		 * already, but nobody else can see it before accept sends the fd,
		 * so claiming now is claiming before the ring is ready for anyone:
		 * no peer's claim can race with it. Relaxed: sendmsg and the
		 * peer's mmap order it before anything the peer loads. */
		struct tachyon_region_header *hdr = l->region.base;
		uint32_t *word = role == TACHYON_ROLE_PRODUCER ? &hdr->producer_owner
		                                               : &hdr->consumer_owner;
		tachyon_atomic_store_relaxed32(word, TACHYON_OWNER_LISTENER);
	}
	l->role = role;
	*out = l;
	return 0;

fail:
	tachyon_listener_close(l);
	return rc;
}

int tachyon_listener_open(const char *path, uint64_t capacity, const tachyon_listen_opts *opts,
                          tachyon_listener **out)
{
	return listener_open(path, capacity, 0, 0, opts, out);
}

int tachyon_listener_open_rpc(const char *path, uint64_t cap_fwd, uint64_t cap_rev,
                              const tachyon_listen_opts *opts, tachyon_listener **out)
{
	/* The roles of a request/reply bus are fixed by the kind of bus (the
	 * listener is the callee), so opts may not name one. */
	if (opts && opts->role != TACHYON_ROLE_NONE)
		return -EINVAL;
	return listener_open(path, cap_fwd, 1, cap_rev, opts, out);
}

/* Remove our socket file, once, if it is still the one we bound. */
static void unlink_if_ours(tachyon_listener *l)
{
	if (!l->path_owned)
		return;
	l->path_owned = 0;
	tachyon_sockpath_unlink_if(l->path, &l->bound);
}

static int uid_allowed(const tachyon_listener *l, uid_t uid)
{
	if (uid == geteuid())
		return 1;
	for (size_t i = 0; i < l->n_allow_uids; i++)
		if (l->allow_uids[i] == uid)
			return 1;
	return 0;
}

/* Send the handshake and the memfd(s) in one message: a request/reply bus
 * sends two in the one SCM_RIGHTS message, forward ring first. Returns 0 or
 * -errno. */
static int send_handshake(int fd, const tachyon_listener *l)
{
	struct tachyon_handshake h;
	int fds[MAX_FDS] = {l->region.fd, l->region2.fd};
	int nfds = l->region2.fd >= 0 ? 2 : 1;
	if (nfds == 2)
		tachyon_handshake_encode_rpc(l->region.capacity, l->region2.capacity, &h);
	else
		tachyon_handshake_encode(l->region.capacity, &h);
	struct iovec iov = {.iov_base = &h, .iov_len = sizeof h};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr msg = {0};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);

	/* NOSIGNAL: a vanished peer is an error here, not a SIGPIPE. DONTWAIT:
	 * a fresh socket's buffer takes 32 bytes at once; if it does not, the
	 * peer is not one we can serve. */
	ssize_t n;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof h ? 0 : -EPIPE;
}

int tachyon_handshake_accept(tachyon_listener *l, const tachyon_wait *w, tachyon_link *out)
{
	if (!l || !out)
		return -EINVAL;
	if (!w)
		w = &forever_wait;
	/* The one slot is used up, or the listener was never complete. */
	if (l->sockfd < 0 || l->region.fd < 0)
		return -EINVAL;

	int64_t last_check = tachyon_now_ns();
	int turned_away = 0;
	for (;;) {
		/* A stream of refused or vanished connectors must not hold us past
		 * the deadline or past an interrupt: check both between them. */
		if (turned_away) {
			turned_away = 0;
			int rc = tachyon_wait_check(w, tachyon_now_ns(), &last_check, 0);
			if (rc < 0)
				return rc;
		}
		int afd = accept4(l->sockfd, NULL, NULL, SOCK_CLOEXEC);
		if (afd < 0) {
			int e = errno;
			if (e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED || e == EINTR) {
				/* Nobody yet (or a client that gave up): wait for the next
				 * one. EINTR here is rare, but means the same as in a sleep. */
				int rc = e == EINTR ? tachyon_wait_eintr(w) : 0;
				if (rc == 0)
					rc = wait_fd(l->sockfd, POLLIN, w);
				if (rc < 0)
					return rc; /* the listener stays usable */
				continue;
			}
			return -e;
		}

		/* SO_PEERCRED holds the peer's credentials at connect(): a process
		 * of another uid is turned away without a word and does not use
		 * up the one slot. */
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(afd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    !uid_allowed(l, cred.uid)) {
			close(afd);
			turned_away = 1;
			continue;
		}

		tachyon_peer peer;
		int prc = tachyon_peer_from_socket(afd, &peer);
		if (prc == -ESRCH) {
			/* The connector has already exited and been reaped: no peer to
			 * serve; keep the slot for the next one. */
			tachyon_peer_release(&peer);
			close(afd);
			turned_away = 1;
			continue;
		}
		if (send_handshake(afd, l) < 0) {
			/* The connector went away before the handshake: likewise. */
			tachyon_peer_release(&peer);
			close(afd);
			turned_away = 1;
			continue;
		}

		/* The peer holds the memfd now; nobody else may connect. */
		unlink_if_ours(l);
		out->region = l->region;
		l->region.fd = -1;
		l->region.base = NULL;
		out->region2 = l->region2;
		l->region2.fd = -1;
		l->region2.base = NULL;
		/* We keep our socket end, but its closure is never taken for death:
		 * a 0.5.1 peer closes right after the handshake. */
		out->sockfd = afd;
		out->peer = peer;
		out->is_listener = 1;
		out->role = l->role;
		return 0;
	}
}

void tachyon_listener_close(tachyon_listener *l)
{
	if (!l)
		return;
	unlink_if_ours(l);
	if (l->sockfd >= 0)
		close(l->sockfd);
	l->sockfd = -1;
	tachyon_region_release(&l->region);
	tachyon_region_release(&l->region2);
	free(l->allow_uids);
	free(l);
}

/* ------------------------------------------------------------------------ */
/* Connector                                                                 */

/* -ETIMEDOUT, with a detail saying what the last attempt met: a timed-out
 * connect is most often a listener that is not there yet, or no longer. */
static int timeout_detail(const char *path, int last_err)
{
	switch (last_err) {
	case ECONNREFUSED:
		return tachyon_detail_fail(-ETIMEDOUT,
		                           "no process accepts connections at %s (a socket file left "
		                           "by a listener that exited, or not a socket at all)",
		                           path);
	case EAGAIN:
		return tachyon_detail_fail(-ETIMEDOUT,
		                           "the listener at %s did not take the connection within the "
		                           "timeout (its one slot is busy with another connector?)",
		                           path);
	default:
		return tachyon_detail_fail(-ETIMEDOUT,
		                           "nothing appeared at %s within the timeout (is the listener "
		                           "running, with this path?)",
		                           path);
	}
}

/*
 * Connect to path, retrying every <= 10 ms while it is missing or refuses
 * (or its backlog is full), until the deadline. The socket is non-blocking
 * so that no step can outlive the deadline. Returns the fd or -errno.
 */
static int connect_retry(const struct sockaddr_un *addr, const tachyon_wait *w)
{
	int64_t last_check = tachyon_now_ns();
	int last_err = ENOENT;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e == EINTR) {
			int rc = tachyon_wait_eintr(w);
			if (rc < 0)
				return rc;
			continue;
		}
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN)
			return -e;
		last_err = e;

		int64_t now = tachyon_now_ns();
		int rc = tachyon_wait_check(w, now, &last_check, 0);
		if (rc == -ETIMEDOUT)
			return timeout_detail(addr->sun_path, last_err);
		if (rc < 0)
			return rc;
		if (tachyon_nap(tachyon_time_left(w->deadline_ns, now, CONNECT_RETRY_NS)) < 0) {
			rc = tachyon_wait_eintr(w);
			if (rc < 0)
				return rc;
			last_check = tachyon_now_ns();
		}
	}
}

/* -EMFILE or -ENFILE when this process cannot open one more descriptor
 * (fd is any open one, to duplicate), else 0. */
static int fd_table_full(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d >= 0) {
		close(d);
		return 0;
	}
	return errno == EMFILE || errno == ENFILE ? -errno : 0;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * Read the 32-byte handshake and the fds that come with it. fds may arrive
 * only with the first read; short reads are fine; a truncated control
 * message, fds in a later read or EOF is -TACHYON_EHANDSHAKE, with every
 * received fd closed. Returns 0 and the fds (the caller judges how many),
 * -ETIMEDOUT, -EINTR, -TACHYON_EHANDSHAKE, or -EMFILE / -ENFILE (no room for the memfd).
 */
static int recv_handshake(int fd, const tachyon_wait *w, unsigned char *buf, int *out_fds,
                          int *out_nfds)
{
	int fds[MAX_FDS];
	int nfds = 0;
	size_t got = 0;
	int rc = 0;
	*out_nfds = 0;

	while (got < TACHYON_HANDSHAKE_SIZE) {
		struct iovec iov = {.iov_base = buf + got, .iov_len = TACHYON_HANDSHAKE_SIZE - got};
		union {
			struct cmsghdr align;
			char bytes[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		} ctl;
		struct msghdr msg = {0};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.bytes;
		msg.msg_controllen = sizeof ctl.bytes;

		/* CMSG_CLOEXEC: the fds are close-on-exec from the moment they
		 * exist in our table, not one fcntl later. */
		ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			int e = errno;
			if (e == EAGAIN || e == EWOULDBLOCK) {
				rc = wait_fd(fd, POLLIN, w);
				if (rc == -ETIMEDOUT)
					tachyon_detail_fail(rc,
					                       "the listener took the connection but sent %zu "
					                       "of the %u handshake bytes within the timeout",
					                       got, TACHYON_HANDSHAKE_SIZE);
				if (rc < 0)
					goto fail;
				continue;
			}
			if (e == EINTR) {
				if ((rc = tachyon_wait_eintr(w)) < 0)
					goto fail;
				continue;
			}
			/* reset by the peer, ... */
			rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
			                            "the connection failed after %zu of the %u handshake "
			                            "bytes (%s)",
			                            got, TACHYON_HANDSHAKE_SIZE, strerror(e));
			goto fail;
		}

		/* Collect what arrived before judging it, so that every fd the
		 * kernel installed is closed on failure. */
		int bad = (msg.msg_flags & MSG_CTRUNC) != 0;
		/* The kernel also truncates when our own table has no room for the
		 * memfd: then the limit is ours, not the listener's doing. */
		int full = bad ? fd_table_full(fd) : 0;
		if (full)
			tachyon_detail_fail(full, "this process had no descriptor left to receive the "
			                          "ring's memfd");
		else if (bad)
			tachyon_detail_fail(-TACHYON_EHANDSHAKE,
			                       "it sent more descriptors or control data with the "
			                       "handshake than a wire-4 listener sends (at most %d "
			                       "descriptors): the control data was truncated",
			                       MAX_FDS);
		int arrived = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
			    cm->cmsg_len < CMSG_LEN(0)) {
				/* we asked for no credentials or other extras */
				bad = tachyon_detail_fail(1,
				                             "it sent control data that is not descriptors "
				                             "(level %d, type %d) with the handshake",
				                             cm->cmsg_level, cm->cmsg_type);
				continue;
			}
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int rfd;
				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof rfd);
				if (nfds < MAX_FDS)
					fds[nfds++] = rfd;
				else
					close(rfd); /* cannot happen with our buffer; stay safe */
				arrived++;
			}
		}
		/* fds belong to the first read; a later one carrying more means a
		 * message we did not ask for. */
		if (arrived && got > 0)
			bad = tachyon_detail_fail(1,
			                             "it sent descriptors after the first %zu handshake "
			                             "bytes; they come with the first byte",
			                             got);
		if (bad) {
			rc = full ? full : -TACHYON_EHANDSHAKE;
			goto fail;
		}
		if (n == 0) { /* EOF before 32 bytes */
			if (got == 0)
				rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
				                            "it closed the connection without sending "
				                            "the handshake (a tachyon listener does "
				                            "that to a peer whose uid it does not allow)");
			else
				rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
				                            "it sent %zu of the %u handshake bytes, then "
				                            "closed the connection",
				                            got, TACHYON_HANDSHAKE_SIZE);
			goto fail;
		}
		got += (size_t)n;
	}
	memcpy(out_fds, fds, sizeof(int) * (size_t)nfds);
	*out_nfds = nfds;
	return 0;

fail:
	close_fds(fds, nfds);
	return rc;
}

/* After mapping: the connector's marks in a region (ABI.md, "Roles" and
 * "Observing a bus"). */
static void mark_attached(tachyon_region *region)
{
	struct tachyon_region_header *hdr = region->base;
	/* Relaxed: for an observer only (ABI.md, "Observing a bus"); the marker
	 * store below publishes it with the attach. */
	tachyon_atomic_store_relaxed32(&hdr->connector_pid, (uint32_t)getpid());
	/* Release: a listener end that loads our marker (to tell our consumer
	 * from a 0.5.1 one) sees a fully attached peer, not an announcement. */
	tachyon_atomic_store_release32(&hdr->connector_marker, TACHYON_PEER_MARKER);
}

/* Both kinds of connector; rpc asks for a request/reply bus. */
static int handshake_connect(const char *path, int rpc, const tachyon_wait *w, tachyon_link *out)
{
	if (!out)
		return -EINVAL;
	tachyon_detail_clear();
	if (!w)
		w = &forever_wait;
	struct sockaddr_un addr;
	int rc = tachyon_sockpath_addr(path, &addr);
	if (rc < 0)
		return rc;

	int sockfd = connect_retry(&addr, w);
	if (sockfd < 0)
		return sockfd;

	/* Take the listener's pidfd at once: SO_PEERCRED names the process that
	 * called listen(), and it is most surely alive right now. ESRCH: it
	 * has already exited and been reaped (kernels without SO_PEERPIDFD for
	 * reaped peers), so there is nobody to talk to. */
	tachyon_peer peer;
	rc = tachyon_peer_from_socket(sockfd, &peer);
	if (rc == -ESRCH) {
		rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                            "its process exited before the handshake");
		goto fail;
	}

	unsigned char buf[TACHYON_HANDSHAKE_SIZE];
	int fds[MAX_FDS];
	int nfds;
	rc = recv_handshake(sockfd, w, buf, fds, &nfds);
	if (rc < 0)
		goto fail;

	/* Decode before counting fds: the other kind of bus (flags 1 and two
	 * fds against flags 0 and one) should be told as such. */
	uint64_t capacity = 0, cap2 = 0; /* set by a successful decode; 0 keeps LTO's flow analysis quiet */
	int want = rpc ? 2 : 1;
	rc = decode_handshake(buf, sizeof buf, rpc, &capacity, &cap2);
	if (rc == 0 && nfds == 0)
		rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                            "it sent the handshake without a descriptor; %s",
		                            rpc ? "a request/reply bus sends its two rings' memfds "
		                                  "with it"
		                                : "a plain bus sends its ring's memfd with it");
	else if (rc == 0 && nfds != want)
		rc = tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                            "it sent %d descriptors with the handshake; a %s bus "
		                            "sends exactly %s",
		                            nfds, rpc ? "request/reply" : "plain", rpc ? "two" : "one");
	if (rc < 0) {
		close_fds(fds, nfds);
		goto fail;
	}

	tachyon_region region, region2 = {.fd = -1};
	rc = tachyon_region_attach(fds[0], capacity, &region); /* owns the fd now */
	if (rc < 0) {
		if (rpc)
			close(fds[1]);
		goto fail;
	}
	if (rpc) {
		rc = tachyon_region_attach(fds[1], cap2, &region2);
		if (rc < 0) {
			tachyon_region_release(&region);
			goto fail;
		}
		mark_attached(&region2);
	}
	mark_attached(&region);

	/* The bus gets a plain blocking socket, like the listener's end. */
	int fl = fcntl(sockfd, F_GETFL);
	if (fl >= 0)
		fcntl(sockfd, F_SETFL, fl & ~O_NONBLOCK);
	out->region = region;
	out->region2 = region2;
	out->sockfd = sockfd;
	out->peer = peer;
	out->is_listener = 0;
	out->role = TACHYON_ROLE_NONE;
	return 0;

fail:
	tachyon_peer_release(&peer);
	close(sockfd);
	return rc;
}

int tachyon_handshake_connect(const char *path, const tachyon_wait *w, tachyon_link *out)
{
	return handshake_connect(path, 0, w, out);
}

int tachyon_handshake_connect_rpc(const char *path, const tachyon_wait *w, tachyon_link *out)
{
	return handshake_connect(path, 1, w, out);
}

/*
 * Private interfaces between the core's files. Not installed, not used by
 * the extension (which sees only tachyon/tachyon.h).
 *
 * Each file has one job; the arrows point down only (a file calls the ones
 * below it, never one above):
 *
 *   bus.c        the bus: create, references, close, roles, the data calls,
 *                and the listen/connect calls that wrap a handshake's result
 *   tuning.c     polling mode and NUMA placement of a bus
 *   stats.c      stats and the read-only questions about a bus
 *   wait.c       the one blocking loop of a bus (recv's wait and reserve's)
 *   waitany.c    waiting outside the gates: for a message on any of several
 *                buses, for room on one producer end
 *   rpc.c        the request/reply bus: two buses over one handshake, the
 *                correlation ids and the reply order
 *   gate.c       the in-flight gate's slow side, close, finalisation
 *   fork.c       fork detection (the atfork generation)
 *      (bus_impl.h: the bus struct and the hot inline checks these share)
 *   handshake.c  the control plane: message, listener, connector
 *   sockpath.c   the socket path: address, live/stale decision, ownership
 *   region.c     sealed memfd: create, check, attach
 *   ring.c       producer and consumer ends (non-blocking, validating)
 *   ------------ utilities every layer may use
 *   peer.c       peer liveness through a pidfd
 *   copy.c       copying payloads into the ring (memcpy or non-temporal stores)
 *   futex.c      futex wait/wake on a word, the wake-up claim
 *   clock.c      the clock, deadlines, naps, interrupt and EINTR rules
 *   error.c      tachyon_strerror, the per-thread handshake detail
 *
 * Layers: ring < region < handshake < bus (gate, wait, waitany, fork,
 * tuning, stats are parts of the bus layer).
 */
#ifndef TACHYON_CORE_INTERNAL_H
#define TACHYON_CORE_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include "atomics.h"
#include "tachyon/tachyon.h"

#define TACHYON_WATCHDOG_NS ((int64_t)TACHYON_WATCHDOG_MS * 1000000)

/* Linux keeps errno values below 4096; a private outcome below -4096 can
 * never be mistaken for a -errno (nor for a count, which is >= 0). */
#define TACHYON_MAX_ERRNO 4095

/* The slow paths (waits, syscalls, close) stay out of line so the
 * per-message paths stay small. */
#if defined(__GNUC__)
#define TACHYON_SLOW __attribute__((noinline))
#define TACHYON_COLD __attribute__((noinline, cold))
#define TACHYON_HIDDEN __attribute__((visibility("hidden")))
#else
#define TACHYON_SLOW
#define TACHYON_COLD
#define TACHYON_HIDDEN
#endif

/* ---- error.c ----------------------------------------------------------- */

/* Record one sentence (printf format) saying what the peer did wrong, for
 * tachyon_handshake_detail(), and return rc unchanged. */
int tachyon_detail_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Forget this thread's sentence (a new attempt starts). */
void tachyon_detail_clear(void);

/* ---- clock.c ----------------------------------------------------------- */

/* ns (negative counts as 0) as a relative timespec. */
struct timespec tachyon_timespec(int64_t ns);

/* Sleep ns relative to CLOCK_MONOTONIC; 0, or -EINTR when a signal cut it. */
int tachyon_nap(int64_t ns);

/* Default spin of a blocking call whose tachyon_wait says 0: a few thousand
 * pauses, tens to a couple of hundred microseconds depending on the CPU. */
#define TACHYON_DEFAULT_SPIN 4096u

/* The caller's wait with its defaults filled in (NULL: wait for ever, no
 * callback; spin 0: TACHYON_DEFAULT_SPIN), so a loop never looks at NULL. */
static inline tachyon_wait tachyon_wait_resolved(const tachyon_wait *w)
{
	tachyon_wait r = {.deadline_ns = w ? w->deadline_ns : TACHYON_FOREVER,
	                  .spin = w && w->spin ? w->spin : TACHYON_DEFAULT_SPIN,
	                  .interrupted = w ? w->interrupted : NULL,
	                  .arg = w ? w->arg : NULL};
	return r;
}

/* Does the caller's callback (if any) ask to stop now? */
int tachyon_wait_interrupted(const tachyon_wait *w);

/* What an EINTR means to a wait on w's terms: 0 go on (the callback says
 * so), -EINTR stop (the callback says so, or there is none). */
int tachyon_wait_eintr(const tachyon_wait *w);

/* The deadline and interrupt checks every blocking loop makes, in that
 * order: -ETIMEDOUT once w's deadline passed; -EINTR when the callback,
 * asked after a wake-up (woke) or else at most once per watchdog period
 * (*last_check keeps the time it was last asked), says stop; else 0. */
int tachyon_wait_check(const tachyon_wait *w, int64_t now, int64_t *last_check, int woke);

static inline int tachyon_deadline_passed(int64_t deadline, int64_t now)
{
	return deadline != TACHYON_FOREVER && now >= deadline;
}

/* Time left until deadline, capped (cap > 0); <= 0 once it has passed. */
static inline int64_t tachyon_time_left(int64_t deadline, int64_t now, int64_t cap)
{
	if (deadline == TACHYON_FOREVER || deadline - now > cap)
		return cap;
	return deadline - now;
}

/* CLOCK_MONOTONIC at tick resolution: a few ns (vDSO, no TSC read) against
 * ~25 ns for the precise clock. Enough for a per-message "is it time to
 * poll the peer" check, whose period is the 200 ms watchdog; it lags the
 * precise clock by at most one tick. Inline: a send calls it per message. */
static inline int64_t tachyon_coarse_now_ns(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
		return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
	return tachyon_now_ns();
}

/* ---- futex.c ----------------------------------------------------------- */

/* Sleep while *word == expected, for at most timeout_ns (> 0). A shared
 * (not private) futex: the word lives in memory mapped by two processes.
 * Returns 0 when woken or the value differed, -ETIMEDOUT, or -EINTR. */
int tachyon_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wake up to n sleepers on word (INT32_MAX for all). */
void tachyon_futex_wake(uint32_t *word, int n);

/* The kernel's limit on the words of one futex_waitv. */
#define TACHYON_FUTEX_WAIT_ANY_MAX 128

/* Sleep while every *words[i] == expected[i] (shared futexes), for at most
 * timeout_ns: 0 when woken or a word differed, -ETIMEDOUT, -EINTR, or
 * -ENOSYS when this cannot be done here (no futex_waitv, n out of
 * [1, TACHYON_FUTEX_WAIT_ANY_MAX]); the caller then sleeps on one word. */
int tachyon_futex_wait_any(uint32_t *const *words, const uint32_t *expected, size_t n,
                           int64_t timeout_ns);

/* Can tachyon_futex_wait_any be used (as far as is known yet)? */
int tachyon_futex_waitv_usable(void);

/* The wake-up claim of a shared wait word: if a sleeper announced itself
 * (the word is 1), change it 1 -> 0 and wake every sleeper; only the winner
 * of that change calls the kernel. The caller fences between its
 * publication and this call. Always inline: a producer in hybrid mode runs
 * the first load on every publication, from functions marked cold (where
 * the compiler would otherwise keep one out-of-line copy). */
static inline __attribute__((always_inline)) void tachyon_futex_claim_wake(uint32_t *word)
{
	/* Relaxed: a first look only, so that the common case (nobody asleep)
	 * leaves the line shared instead of taking it for a CAS. The caller's
	 * full fence orders its publication before this load; the CAS decides. */
	if (tachyon_atomic_load_relaxed32(word) != TACHYON_WAIT_SLEEPING)
		return;
	/* seq_cst CAS 1 -> 0: the wake-up claim (ABI.md, "Publication and
	 * waking"). A FUTEX_WAIT expecting 1 that has not slept yet returns at
	 * once, so the wake cannot be lost; only the winner calls the kernel. */
	if (tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE))
		tachyon_futex_wake(word, INT32_MAX);
}

/* ---- ring.c ------------------------------------------------------------ */

/* The producer's fatal reason when the shared head is not the value it
 * published. The bus layer recognises it by address to reword it against a
 * peer that claims no role (tachyon_bus_fatal_reason). */
extern const char tachyon_reason_foreign_head[] TACHYON_HIDDEN;

/* ---- copy.c ------------------------------------------------------------ */

/* From this payload size up, the copy method is measured and chosen. */
#define TACHYON_COPY_LARGE ((size_t)256 * 1024)

enum { TACHYON_COPY_CACHED = 0, TACHYON_COPY_STREAMING = 1 };

/* A large copy: the method tachyon_copy_choose picks, timed; every 16th also
 * times its first 64 KiB done the other way. */
void tachyon_copy_large(tachyon_copy_state *st, void *dst, const void *src, size_t n);

/* Inline: below the threshold a send pays nothing for the choice. */
static inline void tachyon_copy_payload(tachyon_copy_state *st, void *dst, const void *src, size_t n)
{
	if (__builtin_expect(n < TACHYON_COPY_LARGE, 1)) {
		if (n)
			memcpy(dst, src, n);
		return;
	}
	tachyon_copy_large(st, dst, src, n);
}

/* The parts, for tests: the method to use (streaming only when its estimate
 * is under half of memcpy's; memcpy until both are measured, and always
 * where streaming stores are unavailable);
 * fold in one timing (a probe replaces the estimate, otherwise it is
 * averaged in); the streaming copy itself (memcpy where unavailable),
 * fenced before it returns. */
int tachyon_copy_choose(const tachyon_copy_state *st);
void tachyon_copy_record(tachyon_copy_state *st, int method, int64_t ns, size_t bytes, int probe);
void tachyon_copy_streaming(void *dst, const void *src, size_t n);
int tachyon_copy_streaming_available(void);

/* ---- peer.c ------------------------------------------------------------ */

typedef struct tachyon_peer {
	int pidfd;      /* -1 when none could be had */
	pid_t pid;      /* 0 when unknown (another pid namespace) */
	int self;       /* the peer is this process */
} tachyon_peer;

/* Take the liveness handle of the process at the other end of a connected
 * Unix socket: SO_PEERPIDFD where the kernel has it, else SO_PEERCRED's pid
 * followed at once by pidfd_open. Always fills *out; returns 0 or -errno
 * (then liveness is unknown). */
int tachyon_peer_from_socket(int sockfd, tachyon_peer *out);

/* enum tachyon_liveness: one poll() of the pidfd. Never DEAD for pid 0,
 * for a missing pidfd, or for our own process. */
int tachyon_peer_liveness(const tachyon_peer *p);

void tachyon_peer_release(tachyon_peer *p);

/* ---- sockpath.c -------------------------------------------------------- */

/* Who a file is. dev and ino alone are not enough: ext4 hands a freed inode
 * number to the next file at once, so a socket bound at our path after ours
 * was removed can carry our old number; the birth time tells them apart
 * where the filesystem records it. */
typedef struct tachyon_file_id {
	dev_t dev;
	ino_t ino;
	int has_btime;
	int64_t btime_sec;
	uint32_t btime_nsec;
} tachyon_file_id;

/* Fill a Unix socket address for path: 0, -EINVAL (empty) or -ENAMETOOLONG. */
int tachyon_sockpath_addr(const char *path, struct sockaddr_un *addr);

/* Make path free for a bind: nothing there, or a stale socket file that is
 * removed. Returns 0, -EEXIST (a symlink or a non-socket: refused and left
 * alone), -TACHYON_EBUSYPATH (a live listener, or liveness unknowable) or
 * -errno. */
int tachyon_sockpath_clear(const char *path);

/* Identify the socket file at path without following a symlink. Returns 0,
 * -ENOTSOCK when something else is there, or -errno. */
int tachyon_sockpath_id(const char *path, tachyon_file_id *id);

/* Unlink path only if the socket file there is still `bound`. */
void tachyon_sockpath_unlink_if(const char *path, const tachyon_file_id *bound);

/* ---- handshake.c ------------------------------------------------------- */

/* What a finished handshake hands to the bus layer: the mapped region, our
 * socket end (may be -1; kept, never read), the peer's liveness handle and
 * the role a listener already claimed. */
typedef struct tachyon_link {
	tachyon_region region;
	tachyon_region region2;  /* request/reply: the reverse ring; fd -1 on a plain bus */
	int sockfd;
	tachyon_peer peer;
	int is_listener;
	int role;           /* enum tachyon_role the listener claimed in the region, or none */
} tachyon_link;

/* The handshake halves of tachyon_listener_accept and tachyon_bus_connect:
 * the same results, with a link instead of a bus. */
int tachyon_handshake_accept(tachyon_listener *l, const tachyon_wait *w, tachyon_link *out);
int tachyon_handshake_connect(const char *path, const tachyon_wait *w, tachyon_link *out);
/* The request/reply connector: flags 1 and two fds, forward ring first;
 * the link carries both regions. */
int tachyon_handshake_connect_rpc(const char *path, const tachyon_wait *w, tachyon_link *out);
/* The request/reply listener: two regions, the callee's role claims made in
 * both before any peer can see them; opts->role must be none. */
int tachyon_listener_open_rpc(const char *path, uint64_t cap_fwd, uint64_t cap_rev,
                              const tachyon_listen_opts *opts, tachyon_listener **out);

/* ---- bus.c ------------------------------------------------------------- */

/* Build a bus from a link. Takes ownership of everything in it, on success
 * and on failure. Returns 0, -EINVAL or -ENOMEM. */
int tachyon_bus_create(tachyon_link *link, tachyon_bus **out);

/* Claim role (enum tachyon_role) in the region's owner word for the end
 * whose value is mine (TACHYON_OWNER_LISTENER or _CONNECTOR), ABI.md
 * "Roles": 0 when the word is now ours (or already was: a listener's claim
 * made before the peer could see the region), -TACHYON_EROLE when it holds
 * anything else, the other end's value or a peer's junk. Writes nothing on
 * failure. What every bus end runs before it attaches a ring end. */
int tachyon_role_claim(struct tachyon_region_header *hdr, uint32_t role, uint32_t mine);

#endif /* TACHYON_CORE_INTERNAL_H */

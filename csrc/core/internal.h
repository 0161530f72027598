/*
 * Private interfaces between the core's files. Not installed, not used by
 * the extension (which sees only tachyon/tachyon.h).
 *
 *   ring.c       producer and consumer ends (non-blocking, validating)
 *   futex.c      futex wait/wake on a shared word (Linux), a polling fallback elsewhere
 *   region.c     sealed memfd: create, check, attach
 *   handshake.c  the control plane: listener, connector, credential check
 *   peer.c       peer liveness through a pidfd
 *   bus.c        the bus object: roles, blocking forms, close, references, fork check
 *   copy.c       copying payloads into the ring (memcpy or non-temporal stores)
 *   error.c      tachyon_strerror, clocks
 */
#ifndef TACHYON_CORE_INTERNAL_H
#define TACHYON_CORE_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "tachyon/tachyon.h"

#define TACHYON_WATCHDOG_NS ((int64_t)TACHYON_WATCHDOG_MS * 1000000)

/* ---- futex.c ----------------------------------------------------------- */

/* Sleep while *word == expected, for at most timeout_ns (> 0). A shared
 * (not private) futex: the word lives in memory mapped by two processes.
 * Returns 0 when woken or the value differed, -ETIMEDOUT, or -EINTR. */
int tachyon_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wake up to n sleepers on word (INT32_MAX for all). */
void tachyon_futex_wake(uint32_t *word, int n);

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

/* ---- handshake.c ------------------------------------------------------- */

/* Record one sentence (printf format) saying what the peer did wrong, for
 * tachyon_handshake_detail(), and return rc unchanged. */
int tachyon_handshake_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- bus.c ------------------------------------------------------------- */

/* Build a bus from what the handshake produced. Takes ownership of region,
 * sockfd (may be -1) and peer on success and on failure. */
int tachyon_bus_create(tachyon_region *region, int sockfd, tachyon_peer *peer,
                       int is_listener, tachyon_bus **out);

#endif /* TACHYON_CORE_INTERNAL_H */

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
 *   error.c      tachyon_strerror, clocks
 */
#ifndef TACHYON_CORE_INTERNAL_H
#define TACHYON_CORE_INTERNAL_H

#include <stdint.h>
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

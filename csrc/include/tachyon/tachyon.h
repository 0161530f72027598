/*
 * tachyon/tachyon.h - the C API of the tachyon shared-memory bus.
 *
 * Three layers, each usable on its own:
 *  1. Ring ends (tachyon_producer, tachyon_consumer): non-blocking state
 *     machines over a formatted region in memory. No syscalls except a
 *     FUTEX_WAKE when the peer sleeps. Every value the peer can write is
 *     validated; any violation marks the ring fatal.
 *  2. Regions: a sealed memfd holding one ring (create, check, attach).
 *  3. The bus: a region, one ring end, the peer's liveness and the blocking
 *     forms (spin, then futex sleep), tied together by listen/connect.
 *
 * Errors: every fallible function returns 0 (or a count) on success and a
 * negative errno on failure; the codes with a bus-specific meaning are the
 * TACHYON_E* below. Nothing here prints, aborts or leaves errno as a result.
 *
 * Roles: a bus carries one direction. Each end of a bus claims its role in
 * the shared region (ABI.md, "Roles") the first time it is fixed, by
 * tachyon_bus_set_role or by the first producer or consumer call, and a
 * second end claiming the same role gets -TACHYON_EROLE. The raw ring ends
 * (tachyon_producer_*, tachyon_consumer_*) and tachyon_bus_set_polling_mode
 * claim nothing: a program using ring ends directly keeps to one producer
 * and one consumer itself.
 *
 * Threads: a ring end is used by one thread at a time. A bus may be shared:
 * the caller serializes calls of one family (producer or consumer), and
 * tachyon_bus_close() may be called from any thread at any time; it makes
 * every blocked call on that bus return -TACHYON_ECLOSED within the watchdog
 * period.
 */
#ifndef TACHYON_TACHYON_H
#define TACHYON_TACHYON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tachyon/api.h"
#include "tachyon/frame.h"
#include "tachyon/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TACHYON_VERSION_STRING "0.1.0"

/* Error codes with a meaning of their own (returned negated). */
#define TACHYON_ECLOSED     ESHUTDOWN        /* this end was closed (by us) */
#define TACHYON_EPEERCLOSED EPIPE            /* the peer closed and everything was delivered */
#define TACHYON_EPEERDEAD   EOWNERDEAD       /* the peer process died; everything was delivered */
#define TACHYON_ECORRUPT    EBADMSG          /* the ring is fatal (state 4): nothing more is exposed */
#define TACHYON_EABI        EPROTONOSUPPORT  /* handshake: magic/version/alignment/flags differ */
#define TACHYON_EHANDSHAKE  EPROTO           /* handshake: bad fd, bad region, bad message */
#define TACHYON_EFORKED     ECHILD           /* the bus was inherited across fork() */
#define TACHYON_ENEVERFITS  EMSGSIZE         /* the slot can never be placed at this offset */
#define TACHYON_ESTUCK      EDEADLK          /* a 0.5.1 consumer sleeps and will never free room */
#define TACHYON_EBUSYPATH   EADDRINUSE       /* a live listener holds the socket path */
#define TACHYON_EROLE       EISCONN          /* the role is taken: by the other end, or this end has the other one */

/* A human-readable sentence for any code above or any errno (negated or not). */
TACHYON_API const char *tachyon_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Time and waiting                                                          */

#define TACHYON_FOREVER INT64_C(-1)

/* CLOCK_MONOTONIC in nanoseconds. */
TACHYON_API int64_t tachyon_now_ns(void);

/* The absolute deadline for a relative timeout: TACHYON_FOREVER for a negative
 * timeout, now for 0 (try once), now + timeout_ns otherwise. */
TACHYON_API int64_t tachyon_deadline_after(int64_t timeout_ns);

/*
 * How a blocking call waits. deadline_ns is absolute (tachyon_now_ns clock),
 * TACHYON_FOREVER, or any time in the past for "do not wait".
 * spin: pause iterations before sleeping (0: the default, 4096).
 * interrupted: optional; called at least every watchdog period while
 * waiting and after every EINTR; a nonzero return ends the wait with -EINTR.
 * Without it, an EINTR from a sleep ends the wait with -EINTR at once.
 */
typedef struct tachyon_wait {
	int64_t deadline_ns;
	uint32_t spin;
	int (*interrupted)(void *arg);
	void *arg;
} tachyon_wait;

/*
 * Process-private wait words, for a binding that coordinates its own threads
 * around a bus (the Python extension serializes the calls of one family with
 * one). A word is a plain uint32_t in this process's memory; these are its
 * only accessors, so every ordering point stays in the core.
 */
/* Release store: what the storing thread wrote before is visible to a
 * thread that loads the new value with tachyon_word_load. */
TACHYON_API void tachyon_word_store(uint32_t *word, uint32_t value);
/* Acquire load, pairing with tachyon_word_store. */
TACHYON_API uint32_t tachyon_word_load(const uint32_t *word);
/* Sleep while *word == expected, at most timeout_ns (> 0). Returns 0 when
 * woken or when the word already differed, -ETIMEDOUT or -EINTR. */
TACHYON_API int tachyon_word_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);
/* Wake every thread sleeping on word. */
TACHYON_API void tachyon_word_wake_all(uint32_t *word);

/* ------------------------------------------------------------------------ */
/* Ring ends                                                                 */

/* One received message. data points into the shared data ring and stays
 * valid until the consumer releases past `end`. It is 64-byte aligned,
 * except for a payload of at most TACHYON_INLINE_MAX bytes taken by its
 * position stamp (ABI.md, "Position stamps"): data then points at the
 * copy in the slot header, 32 bytes before its place (same bytes, one
 * cache line for the whole message); tachyon_msg_aligned_data gives the
 * 64-byte aligned place either way. */
typedef struct tachyon_msg {
	const uint8_t *data;
	uint32_t size;
	uint32_t type_id;
	uint64_t pos;   /* counter position of the slot header */
	uint64_t end;   /* counter position right after the slot: its release point */
} tachyon_msg;

/* The payload at its place after the slot header, 64-byte aligned (the
 * ring is), whichever of its two copies m->data points at: the inline copy
 * sits at header offset 32, the payload at 64. */
static inline const uint8_t *tachyon_msg_aligned_data(const tachyon_msg *m)
{
	return m->data + ((uintptr_t)m->data & 32u);
}

/* A ring end's state is written on every call by the thread that uses it.
 * Aligned (and so sized) to 128 bytes: a producer end and a consumer end
 * declared side by side and used by two threads never share a cache line,
 * nor the 128-byte pair the adjacent-line prefetcher fetches together.
 * Allocate them with the alignment (aligned_alloc, or inside a struct). */
#if defined(__cplusplus)
#define TACHYON_END_ALIGNED alignas(128)
#define TACHYON_ALIGNOF(t) alignof(t)
#else
#define TACHYON_END_ALIGNED _Alignas(128)
#define TACHYON_ALIGNOF(t) _Alignof(t)
#endif

/* How a producer copies large payloads (copy.c); private. */
typedef struct tachyon_copy_state {
	uint32_t cost_ns_per_mib[2]; /* per method, running estimate; 0 = not measured */
	uint32_t large_copies;
} tachyon_copy_state;

/* Private state of a producer end; fields are not part of the API. */
typedef struct tachyon_producer {
	TACHYON_END_ALIGNED struct tachyon_region_header *hdr;
	uint8_t *ring;              /* data ring, capacity bytes */
	uint64_t capacity;
	uint64_t head;              /* next write position (private) */
	uint64_t published_head;    /* last value stored to the shared head */
	uint64_t cached_tail;       /* last validated tail */
	uint32_t unpublished;       /* commits since the last publication */
	int fatal;
	const char *fatal_reason;   /* static text: what the peer did wrong, or NULL */
	/* open reservation */
	int reserved;
	uint64_t resv_start;        /* head before the reservation, padding excluded */
	uint64_t resv_slot;         /* counter position of the slot header */
	uint32_t resv_slot_size;
	uint32_t resv_max_payload;
	tachyon_copy_state copy;
	/* Committed so far; copied to the region's counters (ABI.md) whenever
	 * head is published, so a per-message commit only adds locally. */
	uint64_t sent_messages;
	uint64_t sent_bytes;        /* payload bytes */
} tachyon_producer;

/* Private state of a consumer end; fields are not part of the API. */
typedef struct tachyon_consumer {
	TACHYON_END_ALIGNED struct tachyon_region_header *hdr;
	const uint8_t *ring;
	uint64_t capacity;
	uint64_t read;              /* read cursor: next slot to peek */
	uint64_t release;           /* release cursor: what tail will say */
	uint64_t published_tail;    /* last value stored to the shared tail */
	uint64_t cached_head;       /* last validated head */
	uint64_t publish_span;      /* min(capacity / 2, newest known - published_tail) */
	uint32_t unpublished;       /* released messages since the last publication */
	int fatal;
	const char *fatal_reason;   /* static text: what the peer did wrong, or NULL */
	int closed_seen;            /* state 3 was loaded: drain, then report */
	int stamps;                 /* the producer stamps slot headers (its marker was seen) */
	int looked_empty;           /* found the ring empty since tail's last publication check */
	/* Peeked so far; copied to the region's counters (ABI.md) whenever
	 * tail is published. */
	uint64_t received_messages;
	uint64_t received_bytes;    /* payload bytes */
	uint64_t published_read;    /* read cursor as last copied to the region */
} tachyon_consumer;

TACHYON_LAYOUT_ASSERT(TACHYON_ALIGNOF(tachyon_producer) == 128, "a producer end is 128-byte aligned");
TACHYON_LAYOUT_ASSERT(sizeof(tachyon_producer) == 128, "a producer end is one 128-byte pair");
TACHYON_LAYOUT_ASSERT(TACHYON_ALIGNOF(tachyon_consumer) == 128, "a consumer end is 128-byte aligned");
TACHYON_LAYOUT_ASSERT(sizeof(tachyon_consumer) == 128, "a consumer end is one 128-byte pair");

/*
 * Attach a ring end to a formatted region of region_size bytes (768 +
 * capacity). Checks the header (magic, version, power-of-two capacity that
 * fits, alignment 64, state ready or closed) and the starting head and tail
 * (multiples of 64, tail <= head <= tail + capacity). Returns 0,
 * -TACHYON_EHANDSHAKE for a bad header, -TACHYON_ECORRUPT for bad indices.
 */
TACHYON_API int tachyon_producer_attach(tachyon_producer *p, void *region, size_t region_size);
TACHYON_API int tachyon_consumer_attach(tachyon_consumer *c, void *region, size_t region_size);

/*
 * Reserve a slot for up to max_payload bytes and return its payload pointer.
 * Returns 0; -EAGAIN when there is no room now (head was published first);
 * -TACHYON_ENEVERFITS when the slot cannot fit at the current offset even on
 * an empty ring; -TACHYON_EPEERCLOSED / -TACHYON_ECORRUPT for the state word
 * or a bad tail; -EBUSY when a reservation is already open.
 */
TACHYON_API int tachyon_producer_try_reserve(tachyon_producer *p, size_t max_payload, void **payload);

/* Close the open reservation as a message of actual_size bytes (<= the
 * reserved size). Publishes head every TACHYON_BATCH commits, and once a
 * quarter of the capacity is unpublished. Returns 0,
 * -EINVAL (size too large, no reservation) or -TACHYON_ECORRUPT. */
TACHYON_API int tachyon_producer_commit(tachyon_producer *p, size_t actual_size, uint32_t type_id);

/* Drop the open reservation (and its wrap padding); no-op without one. */
TACHYON_API void tachyon_producer_rollback(tachyon_producer *p);

/* Publish head now and wake a sleeping consumer. Returns 0 or -TACHYON_ECORRUPT
 * (a foreign writer changed head). */
TACHYON_API int tachyon_producer_flush(tachyon_producer *p);

/* try_reserve + copy size bytes from data + commit + flush, in one call (the
 * per-message path of a plain send). Returns what those return; on -EAGAIN
 * nothing was reserved and head was published. */
TACHYON_API int tachyon_producer_try_send(tachyon_producer *p, const void *data, size_t size, uint32_t type_id);

/* One message of a vectored send: size bytes at data (NULL only when size is 0). */
typedef struct tachyon_iov {
	const void *data;
	size_t size;
} tachyon_iov;

/*
 * The vectored send: msgs[0..n) as n messages of one type_id, in order, as
 * far as they fit now. The end and the state word are checked once per
 * call; each message gets every size, placement and room check of a
 * reserve and is written as commit writes it (a SKIP first when it wraps).
 * Head is published at least every TACHYON_BATCH messages (and once a
 * quarter of the capacity is unpublished) and at the end, which then wakes
 * a sleeping consumer as a flush does. *sent (when not NULL) is set to the
 * number of messages sent, always. Returns 0 when all n were sent, else
 * why msgs[*sent] was not: -EAGAIN (no room now; head was published),
 * -TACHYON_ENEVERFITS, -EINVAL (NULL data with a size), -EBUSY (a
 * reservation is open), -TACHYON_EPEERCLOSED or -TACHYON_ECORRUPT; the
 * messages before it were sent and published all the same.
 */
TACHYON_API int tachyon_producer_try_send_many(tachyon_producer *p, const tachyon_iov *msgs, size_t n,
                                               uint32_t type_id, size_t *sent);

/* Can a slot for max_payload bytes ever be placed at the current offset? */
TACHYON_API int tachyon_producer_fits(const tachyon_producer *p, size_t max_payload);

/*
 * Peek the next message past the read cursor and advance the read cursor
 * past it. Returns 0; -EAGAIN when the ring is empty (the release point is
 * published first); -TACHYON_EPEERCLOSED once the producer closed and
 * everything below its head was read; -TACHYON_ECORRUPT on any violation
 * (the ring is marked fatal and nothing is exposed from then on).
 */
TACHYON_API int tachyon_consumer_try_peek(tachyon_consumer *c, tachyon_msg *msg);

/* Peek up to max messages; returns the count (>= 1) or an error as above.
 * One call with its own loop: the end's state is checked once and head is
 * loaded again only when the messages below the cached head ran out; every
 * slot gets the checks of try_peek. Stops early (returning the count) when
 * the ring is found empty or closed, which the next call reports;
 * -TACHYON_ECORRUPT at any message returns that, not the count. */
TACHYON_API int tachyon_consumer_try_peek_batch(tachyon_consumer *c, tachyon_msg *msgs, size_t max);

/* Move the release cursor to pos (a slot boundary between the release and
 * the read cursor), counting nmsgs released messages; publishes tail every
 * TACHYON_BATCH messages, once half the capacity is released, and whenever
 * the release catches up with the newest head this end has seen (so an end
 * that goes idle after its last message holds no freed room). Returns 0 or
 * -EINVAL. */
TACHYON_API int tachyon_consumer_release_to(tachyon_consumer *c, uint64_t pos, uint32_t nmsgs);

/* Publish the release point now (and wake a producer waiting for room). */
TACHYON_API void tachyon_consumer_publish(tachyon_consumer *c);

/* Mark the ring fatal from this end because a layer above found a message
 * the peer had no right to send (why: static text, kept as the fatal
 * reason). Nothing is exposed from then on. Returns -TACHYON_ECORRUPT. */
TACHYON_API int tachyon_consumer_fail(tachyon_consumer *c, const char *why);

/* ------------------------------------------------------------------------ */
/* Regions                                                                   */

typedef struct tachyon_region {
	int fd;
	void *base;
	size_t size;        /* 768 + capacity */
	uint64_t capacity;
} tachyon_region;

/* Is capacity a power of two in [64, 2^31]? */
TACHYON_API int tachyon_capacity_valid(uint64_t capacity);

/* Create a sealed memfd named `name`, map it and format the header (state
 * ready last). Returns 0, -EINVAL for a bad capacity, or the syscall's error. */
TACHYON_API int tachyon_region_create(const char *name, uint64_t capacity, tachyon_region *out);

/* Check fd (a memfd, seals read before the size, sealed against shrinking,
 * at least 768 + capacity bytes), map it and check the region header against
 * capacity. Takes ownership of fd: it is closed on failure. Returns 0 or
 * -TACHYON_EHANDSHAKE. */
TACHYON_API int tachyon_region_attach(int fd, uint64_t capacity, tachyon_region *out);

/* Unmap and close. */
TACHYON_API void tachyon_region_release(tachyon_region *r);

/* ------------------------------------------------------------------------ */
/* Handshake                                                                 */

TACHYON_API void tachyon_handshake_encode(uint64_t capacity, struct tachyon_handshake *out);

/* Decode and check a received handshake of len bytes (plain bus). Returns 0
 * and the capacity; -TACHYON_EABI on magic/version/alignment/flags mismatch;
 * -TACHYON_EHANDSHAKE on a short message, a bad capacity or a shm size that
 * is not 768 + capacity. */
TACHYON_API int tachyon_handshake_decode(const void *buf, size_t len, uint64_t *capacity);

/* The request/reply forms: flags 1, both rings announced. decode_rpc answers
 * -TACHYON_EABI for a plain handshake (flags 0), as decode does for flags 1. */
TACHYON_API void tachyon_handshake_encode_rpc(uint64_t cap_fwd, uint64_t cap_rev,
                                              struct tachyon_handshake *out);
TACHYON_API int tachyon_handshake_decode_rpc(const void *buf, size_t len, uint64_t *cap_fwd,
                                             uint64_t *cap_rev);

/* ------------------------------------------------------------------------ */
/* The bus                                                                   */

typedef struct tachyon_bus tachyon_bus;
typedef struct tachyon_listener tachyon_listener;

enum tachyon_role {
	TACHYON_ROLE_NONE = 0,
	TACHYON_ROLE_PRODUCER = 1,
	TACHYON_ROLE_CONSUMER = 2,
};

enum tachyon_liveness {
	TACHYON_PEER_UNKNOWN = 0,  /* pid 0 (other pid namespace) or no pidfd */
	TACHYON_PEER_ALIVE = 1,
	TACHYON_PEER_DEAD = 2,
	TACHYON_PEER_SELF = 3,     /* the peer is this process: only a close ends it */
};

typedef struct tachyon_listen_opts {
	const uid_t *allow_uids;   /* peers of these uids are accepted besides our own */
	size_t n_allow_uids;
	/* enum tachyon_role: claimed in the region before any peer can see it,
	 * so the accepted bus has it fixed; TACHYON_ROLE_NONE leaves the role
	 * to the first data call. */
	int role;
} tachyon_listen_opts;

typedef struct tachyon_stats {
	uint64_t capacity;
	uint64_t bytes_in_use;      /* shared head - shared tail */
	uint64_t bytes_pinned;      /* consumer end: read cursor - release cursor */
	uint32_t consumer_wait;     /* the wait word */
	uint32_t state;             /* the state word */
	uint64_t lost_wakeups;      /* docs/RELIABILITY.md R6 */
	int32_t peer_pid;           /* 0 when unknown */
	int peer_liveness;          /* enum tachyon_liveness */
	int role;                   /* enum tachyon_role */
	/* The traffic counters in the region (ABI.md, "Traffic counters"), as
	 * each side last published them; 0 for a side a 0.5.1 peer holds. */
	uint64_t sent_messages;
	uint64_t sent_bytes;
	uint64_t received_messages;
	uint64_t received_bytes;
} tachyon_stats;

/*
 * Bind the socket path and create the region. Refuses a symlink or a
 * non-socket at the path (-EEXIST), and a path held by a live listener
 * (-TACHYON_EBUSYPATH); a stale socket file is replaced. The socket file is
 * 0600. -ENAMETOOLONG for a path over the platform limit, -EINVAL for a bad
 * capacity or role. opts may be NULL.
 */
TACHYON_API int tachyon_listener_open(const char *path, uint64_t capacity,
                          const tachyon_listen_opts *opts, tachyon_listener **out);

/* Accept peers until one passes the credential check, send it the handshake
 * and the fd, unlink the path and return the bus, with the role of the
 * listener's opts fixed (attaching it may fail as set_role does). May be
 * called again after -ETIMEDOUT or -EINTR. */
TACHYON_API int tachyon_listener_accept(tachyon_listener *l, const tachyon_wait *w, tachyon_bus **out);

/* Close the listening socket and unlink the path if it is still ours. */
TACHYON_API void tachyon_listener_close(tachyon_listener *l);

/* listener_open + listener_accept + listener_close. */
TACHYON_API int tachyon_bus_listen(const char *path, uint64_t capacity, const tachyon_listen_opts *opts,
                       const tachyon_wait *w, tachyon_bus **out);

/* Connect, retrying every <= 10 ms while the path is missing or refuses,
 * until w->deadline_ns, which covers the whole handshake and every check.
 * Returns 0, -ETIMEDOUT, -EINTR, -TACHYON_EABI, -TACHYON_EHANDSHAKE or
 * -ENAMETOOLONG. */
TACHYON_API int tachyon_bus_connect(const char *path, const tachyon_wait *w, tachyon_bus **out);

/* After tachyon_bus_connect, tachyon_region_attach or tachyon_handshake_decode
 * failed on this thread: one sentence saying what the listener did wrong
 * ("it sent 2 descriptors with the handshake; ..."), or, after a timeout,
 * what the last attempt met (no socket at the path, a socket nobody accepts
 * on, a listener that sent part of the handshake); "" when there is nothing
 * to say (a signal). Per thread; valid until this thread's next call of
 * those. */
TACHYON_API const char *tachyon_handshake_detail(void);

/* References: the bus is freed (unmapped, fds closed) when the last one
 * goes. Dropping the last reference of an unclosed bus closes it first,
 * except in a forked child, which only unmaps. */
TACHYON_API void tachyon_bus_ref(tachyon_bus *b);
TACHYON_API void tachyon_bus_unref(tachyon_bus *b);

/* Idempotent; from any thread. Producer end: publishes what was committed,
 * then marks the ring closed; consumer end: publishes its release point,
 * then marks it closed. Wakes every call blocked on this bus. In a forked
 * child it changes nothing shared. */
TACHYON_API void tachyon_bus_close(tachyon_bus *b);
TACHYON_API int tachyon_bus_is_closed(const tachyon_bus *b);

/* Fix this end's role, claiming it in the region (see Roles above): 0,
 * -TACHYON_EROLE when the other end holds it or this end has the other
 * role (then nothing changed: an end the other end beat stays free to take
 * the other role), -TACHYON_ECLOSED, -TACHYON_EFORKED, or an attach error
 * (-TACHYON_ECORRUPT for impossible indices in the region). The producer
 * calls (reserve, flush, send) and the consumer calls (recv, recv_batch,
 * release_to, publish_release) fix it the same way when it is unset and
 * return the same codes. */
TACHYON_API int tachyon_bus_set_role(tachyon_bus *b, int role);
TACHYON_API int tachyon_bus_role(const tachyon_bus *b);

/* Producer. reserve waits for room until w->deadline_ns (publishing head
 * before it waits); -EAGAIN when the deadline passed without room. */
TACHYON_API int tachyon_bus_reserve(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w);
TACHYON_API int tachyon_bus_commit(tachyon_bus *b, size_t actual_size, uint32_t type_id);
/* Fill a payload that tachyon_bus_reserve returned, as send does: memcpy,
 * or for payloads of 256 KiB and more, whichever of memcpy and
 * non-temporal stores this producer measured faster lately (copy.c). By
 * the thread that reserved, before the commit. */
TACHYON_API void tachyon_bus_copy_payload(tachyon_bus *b, void *payload, const void *data, size_t n);
TACHYON_API void tachyon_bus_rollback(tachyon_bus *b);
TACHYON_API int tachyon_bus_flush(tachyon_bus *b);
/* reserve + copy + commit + flush */
TACHYON_API int tachyon_bus_send(tachyon_bus *b, const void *data, size_t size, uint32_t type_id,
                     const tachyon_wait *w);

/* The vectored send (tachyon_producer_try_send_many): msgs[0..n) as n
 * messages of type_id, in order; where the ring is full, waits for room as
 * send does (until w->deadline_ns) and goes on. *sent (when not NULL) is
 * always the number of messages sent. Returns 0 when all were sent, else
 * why msgs[*sent] was not, as send returns it (-EAGAIN when the deadline
 * passed without room); those before it were sent and published. */
TACHYON_API int tachyon_bus_send_many(tachyon_bus *b, const tachyon_iov *msgs, size_t n,
                                      uint32_t type_id, const tachyon_wait *w, size_t *sent);

/* Consumer. recv waits for one message until w->deadline_ns (-ETIMEDOUT);
 * recv_batch for at least one and returns the count. Messages stay valid
 * until released with tachyon_bus_release_to. */
TACHYON_API int tachyon_bus_recv(tachyon_bus *b, tachyon_msg *msg, const tachyon_wait *w);
TACHYON_API int tachyon_bus_recv_batch(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w);
TACHYON_API int tachyon_bus_release_to(tachyon_bus *b, uint64_t pos, uint32_t nmsgs);
/* Publish the release point now and wake a producer waiting for room: for
 * releases that come late (a zero-copy export dropped long after the read),
 * which a producer may be waiting for. Returns 0 or a negative errno. */
TACHYON_API int tachyon_bus_publish_release(tachyon_bus *b);
/* From another thread of this process: make a call of b that is waiting
 * (recv, recv_batch, reserve, send) ask its w->interrupted callback at once
 * instead of at the next watchdog period, e.g. because that thread has work
 * waiting for it. The request is sticky until a waiting call sees it; a
 * call that is not waiting sees it the next time it waits (one extra ask of
 * the callback). Safe from any thread at any time, never blocks. */
TACHYON_API void tachyon_bus_interrupt(tachyon_bus *b);

/*
 * Wait until a receive on at least one of the n buses would return at once:
 * a message is there, or something to report (this end closed, the peer
 * closed or died, a broken ring). Sets ready[i] to 1 for those buses and 0
 * for the others. The buses are consumer ends; an end with no role yet
 * becomes one. Takes no message and enters no bus's gate: other threads may
 * receive on these buses meanwhile (then a message seen here may be gone by
 * the time the caller looks). Spins for w->spin pauses, then sleeps on
 * every bus's consumer wait word at once (futex_waitv on Linux 5.16+; else
 * one word at a time in slices of at most 1 ms); polls each peer at least
 * every watchdog period; a close of any of the buses from another thread
 * ends the wait with that bus ready. Returns the number of ready buses
 * (>= 1), -ETIMEDOUT, -EINTR, -EINVAL (no buses, a NULL), -TACHYON_EROLE (a
 * producer end, or the other end holds the consumer role) or
 * -TACHYON_EFORKED.
 */
TACHYON_API int tachyon_bus_wait_any(tachyon_bus *const *buses, size_t n, uint8_t *ready,
                                     const tachyon_wait *w);

/*
 * Wait until a send of max_payload bytes on producer end b would find room
 * (or report something at once: this end closed, the peer closed or died, a
 * broken ring, a payload that never fits). Reserves nothing and enters no
 * gate: another thread sends meanwhile (an event loop retrying a send that
 * found the ring full, while its waiter thread sits here). Spins for
 * w->spin pauses, then sleeps on the producer wait word (our consumer wakes
 * it as it frees room) or, opposite a 0.5.1 consumer, in naps of 50 us
 * doubling to 1 ms; polls the peer at least every watchdog period. An end
 * with no role yet becomes the producer. Returns 1, -ETIMEDOUT, -EINTR,
 * -EINVAL, -TACHYON_EROLE (a consumer end), -TACHYON_ESTUCK (a 0.5.1
 * consumer asleep for longer than the watchdog while no room is free) or
 * -TACHYON_EFORKED.
 */
TACHYON_API int tachyon_bus_wait_room(tachyon_bus *b, size_t max_payload, const tachyon_wait *w);

/* 1: the consumer never sleeps (sticky while our end consumes); 0: hybrid.
 * Claims no role. */
TACHYON_API int tachyon_bus_set_polling_mode(tachyon_bus *b, int pure_spin);
TACHYON_API int tachyon_bus_set_numa_node(tachyon_bus *b, int node);

TACHYON_API int tachyon_bus_stats(tachyon_bus *b, tachyon_stats *out);
TACHYON_API uint64_t tachyon_bus_capacity(const tachyon_bus *b);
/* The largest payload that fits at every ring offset once the consumer has
 * caught up: max(0, capacity / 2 - 64). */
TACHYON_API size_t tachyon_bus_max_payload(const tachyon_bus *b);
/* Nonzero when called in a fork() child of the process that opened b (no
 * system call): every data call there returns -TACHYON_EFORKED and nothing
 * shared is written. */
TACHYON_API int tachyon_bus_forked(const tachyon_bus *b);
TACHYON_API pid_t tachyon_bus_peer_pid(const tachyon_bus *b);
/* After a call returned -TACHYON_ECORRUPT: a short static phrase saying what
 * the peer did wrong ("the producer moved head backwards"), from this end's
 * ring state; NULL when the ring is not fatal here or the reason is unknown
 * (e.g. the ring was already fatal when this end attached). */
TACHYON_API const char *tachyon_bus_fatal_reason(const tachyon_bus *b);
/* On a producer end: what it published that the consumer has not given
 * back, as the shared head and tail say now. *bytes: ring bytes (payloads,
 * their 64-byte headers, wrap padding); *messages: the slots among them,
 * counted from our own slot headers. Returns 0; -ENODATA when only *bytes
 * is known (*messages is 0): the consumer is not ours (0.5.1 publishes its
 * tail only every 32 messages) or the bytes do not add up to whole slots;
 * -EINVAL when b is not a producer end; -TACHYON_EFORKED. Our consumer
 * publishes its tail in batches too, so after its death up to 31 messages
 * it had released may still be counted. Called while no producer call of b
 * runs (the caller serializes them). */
TACHYON_API int tachyon_bus_unreleased(tachyon_bus *b, uint64_t *bytes, uint64_t *messages);
/* enum tachyon_liveness, from a poll of the pidfd (one syscall). */
TACHYON_API int tachyon_bus_peer_liveness(tachyon_bus *b);


/* ------------------------------------------------------------------------ */
/* The request/reply bus                                                     */

/*
 * Two rings over one handshake (ABI.md, "The request/reply bus"): the
 * listener is the callee, reading requests from the forward ring and
 * writing replies to the reverse ring; the connector is the caller. Each
 * ring is an ordinary bus underneath (tachyon_rpc_requests and
 * tachyon_rpc_replies hand them out), with every check, wait and close rule
 * of a plain bus; this layer adds the correlation ids and the reply order.
 *
 * Ids. The caller numbers its requests 1, 2, 3... A callee answers in
 * request order, each reply carrying its request's id. The caller waits for
 * its replies in the order it called (an id that is not the oldest
 * unanswered one is -EINVAL, and nothing is read); a reply whose id is not
 * the one due marks the reverse ring fatal (-TACHYON_ECORRUPT), as a 0.5.1
 * caller does.
 *
 * Threads: the caller's call (and call_commit) and its wait may run on two
 * threads, one of each at a time; likewise the callee's serve and reply.
 * tachyon_rpc_close may be called from any thread.
 */
typedef struct tachyon_rpc tachyon_rpc;

/* Bind path, create both rings, accept one caller (credential check as
 * tachyon_bus_listen; opts->role must be TACHYON_ROLE_NONE, opts may be
 * NULL) and return the callee end. Errors as tachyon_bus_listen. */
TACHYON_API int tachyon_rpc_listen(const char *path, uint64_t cap_fwd, uint64_t cap_rev,
                                   const tachyon_listen_opts *opts, const tachyon_wait *w,
                                   tachyon_rpc **out);
/* Connect as the caller. Errors as tachyon_bus_connect; a plain listener
 * is -TACHYON_EABI (and a plain connector meeting a request/reply listener
 * gets -TACHYON_EABI too). */
TACHYON_API int tachyon_rpc_connect(const char *path, const tachyon_wait *w, tachyon_rpc **out);

TACHYON_API void tachyon_rpc_ref(tachyon_rpc *r);
TACHYON_API void tachyon_rpc_unref(tachyon_rpc *r);
/* Close both buses (idempotent, any thread): every blocked call returns
 * -TACHYON_ECLOSED within the watchdog period. */
TACHYON_API void tachyon_rpc_close(tachyon_rpc *r);
/* 1 for the callee (listener) end, 0 for the caller. */
TACHYON_API int tachyon_rpc_is_callee(const tachyon_rpc *r);
/* The two buses underneath (borrowed; valid while r is): forward carries
 * requests, reverse carries replies. For stats, releasing received slots
 * (tachyon_bus_release_to), tachyon_bus_wait_any, polling mode. */
TACHYON_API tachyon_bus *tachyon_rpc_requests(const tachyon_rpc *r);
TACHYON_API tachyon_bus *tachyon_rpc_replies(const tachyon_rpc *r);
/* set_polling_mode on both rings. */
TACHYON_API int tachyon_rpc_set_polling_mode(tachyon_rpc *r, int pure_spin);

/* Write the request/reply fields of the header of an open reservation whose
 * payload tachyon_bus_reserve returned (offset 12 zero, the correlation id
 * at offset 16); by the thread that reserved, before the commit. */
TACHYON_API void tachyon_rpc_stamp(void *payload, uint64_t correlation_id);
/* The correlation id of a received slot (one load of the header field). */
TACHYON_API uint64_t tachyon_rpc_msg_id(const tachyon_msg *m);

/* Caller. call: send one request of size bytes as type msg_type (route 0),
 * waiting for room until w's deadline; its id goes to *cid. call_commit
 * does the same for a reservation made with tachyon_bus_reserve on
 * tachyon_rpc_requests(r) (stamp, commit, flush). Errors as
 * tachyon_bus_send; -EINVAL on the callee end. */
TACHYON_API int tachyon_rpc_call(tachyon_rpc *r, const void *data, size_t size, uint16_t msg_type,
                                 uint64_t *cid, const tachyon_wait *w);
TACHYON_API int tachyon_rpc_call_commit(tachyon_rpc *r, void *payload, size_t actual_size,
                                        uint16_t msg_type, uint64_t *cid);
/* The id the next call will carry, and the id the next reply must carry
 * (equal when nothing is outstanding). */
TACHYON_API uint64_t tachyon_rpc_next_id(const tachyon_rpc *r);
TACHYON_API uint64_t tachyon_rpc_due_id(const tachyon_rpc *r);
/* For a binding that commits a stamped reservation itself
 * (tachyon_rpc_stamp, then tachyon_bus_commit and flush): record that the
 * request with id cid (tachyon_rpc_next_id) went out. */
TACHYON_API void tachyon_rpc_call_sent(tachyon_rpc *r, uint64_t cid);
/* Wait for the reply to cid until w's deadline. The reply stays valid until
 * released with tachyon_bus_release_to(tachyon_rpc_replies(r), msg->end, 1).
 * -EINVAL: cid is not the oldest unanswered request (nothing was read);
 * -TACHYON_ECORRUPT: the reply carried another id (the ring is now fatal);
 * else as tachyon_bus_recv. */
TACHYON_API int tachyon_rpc_wait(tachyon_rpc *r, uint64_t cid, tachyon_msg *msg,
                                 const tachyon_wait *w);
/* The two halves of tachyon_rpc_wait, for a binding that receives on
 * tachyon_rpc_replies itself: wait_check before the receive (0 or
 * -EINVAL), wait_accept on the received reply, with that bus's consumer
 * calls serialized by the caller (0, or -TACHYON_ECORRUPT and the ring is
 * fatal). */
TACHYON_API int tachyon_rpc_wait_check(const tachyon_rpc *r, uint64_t cid);
TACHYON_API int tachyon_rpc_wait_accept(tachyon_rpc *r, uint64_t cid, const tachyon_msg *msg);

/* Callee. serve: wait for the next request until w's deadline; its id goes
 * to *cid (release the slot on tachyon_rpc_requests(r) as with wait).
 * serve_accept records the id of a request received by other means. */
TACHYON_API int tachyon_rpc_serve(tachyon_rpc *r, tachyon_msg *msg, uint64_t *cid,
                                  const tachyon_wait *w);
TACHYON_API int tachyon_rpc_serve_accept(tachyon_rpc *r, const tachyon_msg *msg, uint64_t *cid);
/* reply: send the reply to cid, which must be the oldest request served and
 * not yet answered (else -EINVAL, nothing written). reply_check asks that
 * alone; reply_commit stamps, commits and flushes a reservation made on
 * tachyon_rpc_replies(r). Errors otherwise as tachyon_bus_send. */
TACHYON_API int tachyon_rpc_reply(tachyon_rpc *r, uint64_t cid, const void *data, size_t size,
                                  uint16_t msg_type, const tachyon_wait *w);
TACHYON_API int tachyon_rpc_reply_check(tachyon_rpc *r, uint64_t cid);
TACHYON_API int tachyon_rpc_reply_commit(tachyon_rpc *r, uint64_t cid, void *payload,
                                         size_t actual_size, uint16_t msg_type);
/* As tachyon_rpc_call_sent, for a reply to cid committed by the binding. */
TACHYON_API void tachyon_rpc_reply_sent(tachyon_rpc *r, uint64_t cid);

#ifdef __cplusplus
}
#endif

#endif /* TACHYON_TACHYON_H */

/*
 * The bus object as the files of the bus layer see it: its layout, and the
 * checks every data call makes, inline because they sit on the per-message
 * path (fork check, gate enter and exit, the peer check by the clock). The
 * slow halves live in fork.c, gate.c and wait.c.
 *
 * The gate. Close may come from any thread while another thread is inside a
 * data call that uses the ring end's private state. One word orders them:
 *   GATE_INFLIGHT   a data call is inside (the caller serializes data calls,
 *                   so one at most; a second concurrent one gets -EBUSY)
 *   GATE_CLOSING    close was called; no data call may enter any more
 *   GATE_FINALIZED  the shared part of closing (publish, state 2 -> 3, wake)
 *                   has been claimed, by close itself when nothing was
 *                   inside, else by the data call as it leaves
 * So finalization runs exactly once and never beside a call that is using
 * the ring end.
 *
 * Where membarrier(2) is available (Linux >= 4.14, not blocked by seccomp),
 * GATE_INFLIGHT lives in a word of its own that only data calls write, with
 * plain stores: a data call stores "inside", then loads the gate; close sets
 * GATE_CLOSING, then calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED),
 * which runs a full barrier on every CPU running one of our threads, then
 * loads "inside". The data call's store-load pair needs no fence of its own:
 * the heavy barrier on close's side orders it (the asymmetric Dekker of
 * liburcu and folly). Close is rare and costs ~1 us more; each data call
 * saves two locked instructions, which also act as full barriers and stall
 * the loads that follow them (measured: ~10% of a 32-byte round trip).
 * Elsewhere the uncontended enter and exit are one CAS each.
 */
#ifndef TACHYON_CORE_BUS_IMPL_H
#define TACHYON_CORE_BUS_IMPL_H

#include <stddef.h>

#include "atomics.h"
#include "internal.h"

#define GATE_INFLIGHT  1u
#define GATE_CLOSING   2u
#define GATE_FINALIZED 4u

/* Hot fields first: the words every data call reads or writes share the
 * first 64-byte line, and the ring end in use fills bytes 128-255 (it is
 * 128-aligned itself). The struct is allocated 128-byte aligned and its
 * size is a multiple of 128, so the hot lines of two buses in one process
 * (a request bus and a reply bus used by two threads) never share a line
 * or an adjacent-line prefetch pair. */
struct tachyon_bus {
	_Alignas(128) struct tachyon_region_header *hdr;
	unsigned fork_gen;          /* tachyon_fork_generation at creation */
	uint32_t role;              /* atomic: enum tachyon_role, fixed once */
	uint32_t gate;              /* atomic: GATE_* bits */
	uint32_t inflight;          /* atomic: a data call is inside (asymmetric gate only) */
	int asym_gate;              /* the gate uses membarrier (fixed at creation) */
	uint32_t pure_spin;         /* atomic: set_polling_mode's last mode (sticky) */
	uint32_t peer_dead;         /* atomic: the pidfd reported death once */
	uint64_t pinned;            /* atomic: consumer read - release, for stats */
	uint64_t read_pos;          /* atomic: the consumer's read cursor as a call left it (waitany.c) */

	/* Used only inside the gate. */
	int64_t last_peer_check_ns;
	union {
		tachyon_producer prod;
		tachyon_consumer cons;
	} end;

	/* Cold. */
	tachyon_region region;
	int sockfd;                 /* kept, never read: a closed socket is not death */
	tachyon_peer peer;
	int is_listener;
	pid_t pid;                  /* getpid() at creation */
	uint64_t lost_wakeups;      /* atomic: written by the consumer call only */
	uint32_t role_lock;         /* atomic: held while the role is fixed (bus.c) */
	uint32_t interrupt;         /* atomic: tachyon_bus_interrupt asked a waiting call to look up (wait.c) */

	/* Changed by any thread that takes or drops a reference. */
	_Alignas(64) uint32_t refs; /* atomic (atomics.h helpers) */
};

_Static_assert(_Alignof(struct tachyon_bus) == 128, "a bus is 128-byte aligned");
_Static_assert(sizeof(struct tachyon_bus) % 128 == 0, "a bus fills whole 128-byte pairs");
_Static_assert(offsetof(struct tachyon_bus, last_peer_check_ns) + sizeof(int64_t) <= 64,
               "the hot words of a bus share its first line");
_Static_assert(offsetof(struct tachyon_bus, end) == 128 && sizeof(((struct tachyon_bus *)0)->end) == 128,
               "the ring end fills bytes 128-255");
_Static_assert(offsetof(struct tachyon_bus, refs) % 64 == 0 && offsetof(struct tachyon_bus, refs) >= 256,
               "the reference count has a line of its own, away from the hot ones");

/* Does the other end carry our marker (it is tachyon-ipc, not 0.5.1)? The
 * connector's marker (offset 24) when we listen, the listener's (20)
 * otherwise. Cold callers only: it chooses a way of waiting or a wording. */
static inline int bus_peer_is_ours(const tachyon_bus *b)
{
	const uint32_t *m = b->is_listener ? &b->hdr->connector_marker : &b->hdr->listener_marker;
	/* Relaxed: written once at attach, before any message flowed; a wrong
	 * answer (a peer faking it) only picks the other choice. */
	return tachyon_atomic_load_relaxed32(m) == TACHYON_PEER_MARKER;
}

/* ---- fork.c ------------------------------------------------------------ */

/* Bumped in every fork() child (pthread_atfork). Hidden: read per message,
 * so it must not go through the GOT of a shared library. */
extern unsigned tachyon_fork_generation TACHYON_HIDDEN;

/* Register the atfork handler (once per process). */
void tachyon_fork_watch(void);

/* The per-message check: a compare, no system call. */
static inline int bus_forked(const tachyon_bus *b)
{
	return b->fork_gen != tachyon_fork_generation;
}

/* The thorough form for close and unref: also catches a raw clone(). */
int tachyon_fork_detected(const tachyon_bus *b);

/* ---- gate.c ------------------------------------------------------------ */

static inline int bus_is_closing(const tachyon_bus *b)
{
	/* Relaxed: a hint polled in wait loops. The decisive check is the CAS
	 * in gate enter, and a sleeper re-reads it after its seq_cst CAS on the
	 * wait word, which pairs with close's seq_cst CAS on the gate. */
	return (tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0;
}

/* Can this process use the membarrier gate? Asked at bus creation. */
int tachyon_gate_asymmetric_ready(void);

/* The slow sides of enter and exit, and the finalization claim. */
int tachyon_gate_enter_slow(tachyon_bus *b);
void tachyon_gate_exit_slow(tachyon_bus *b);
void tachyon_gate_finalize_if_idle(tachyon_bus *b);

/* Close's part: set CLOSING, then finalize now or wake the call inside. */
void tachyon_gate_close(tachyon_bus *b);

static inline void bus_gate_exit(tachyon_bus *b)
{
	if (__builtin_expect(b->asym_gate, 1)) {
		/* Release: our ring-end writes happen before the acquire load of a
		 * finalizer that sees 0. */
		tachyon_atomic_store_release32(&b->inflight, 0);
		/* Compiler barrier only, as in bus_gate_enter: if close saw our 1
		 * (so left finalizing to us), our store of 0 came after its
		 * barrier, and so does this load, which then sees CLOSING. */
		tachyon_compiler_barrier();
		/* Relaxed: ordered by close's barrier, see above. */
		if (__builtin_expect((tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0, 0))
			tachyon_gate_finalize_if_idle(b);
		return;
	}
	/* seq_cst CAS: releases the ring-end state to the next call or to the
	 * finalizer; fails only when close came meanwhile. */
	if (__builtin_expect(tachyon_atomic_cas32(&b->gate, GATE_INFLIGHT, 0), 1))
		return;
	tachyon_gate_exit_slow(b);
}

/* Enter a data call. 0, -TACHYON_ECLOSED, or -EBUSY (a concurrent call of
 * this end: the caller broke the one-call-at-a-time rule). */
static inline int bus_gate_enter(tachyon_bus *b)
{
	if (__builtin_expect(b->asym_gate, 1)) {
		/* Relaxed: only data calls write the word and the caller serializes
		 * them (the caller's own synchronization orders one call after the
		 * other). A 1 is a call still inside: a concurrent call breaks that
		 * rule. Best effort: two calls racing into the gate at the same
		 * instant may both pass; the CAS gate catches every case. */
		if (__builtin_expect(tachyon_atomic_load_relaxed32(&b->inflight) != 0, 0))
			return -EBUSY;
		/* Relaxed store: "inside". Nothing is published through it; close
		 * orders it against its own load with membarrier (gate.c). */
		tachyon_atomic_store_relaxed32(&b->inflight, 1);
		/* Compiler barrier only: the store above and the load below stay in
		 * this order in the code. The CPU may let the load pass the store;
		 * close's membarrier() between its CLOSING store and its load of
		 * this word makes that harmless: either close sees our 1, or our
		 * load (after its barrier) sees CLOSING. */
		tachyon_compiler_barrier();
		/* Relaxed: see above; the decisive ordering is close's barrier. */
		if (__builtin_expect((tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0, 0)) {
			bus_gate_exit(b); /* leaves the finalization to whoever can claim it */
			return -TACHYON_ECLOSED;
		}
		return 0;
	}
	/* seq_cst CAS: acquires the ring-end state the previous call (maybe on
	 * another thread) left, and orders us against close's CAS on the gate. */
	if (__builtin_expect(tachyon_atomic_cas32(&b->gate, 0, GATE_INFLIGHT), 1))
		return 0;
	return tachyon_gate_enter_slow(b);
}

/* ---- wait.c ------------------------------------------------------------ */

/* Poll the peer's pidfd now: 1 when it is dead (sticky from then on). */
int tachyon_wait_poll_peer(tachyon_bus *b);

/* The peer's process is gone: -TACHYON_EPEERCLOSED when the state word says
 * the ring was closed (a clean close, whatever the process did after it),
 * else -TACHYON_EPEERDEAD. */
int tachyon_wait_peer_gone(const tachyon_bus *b);

/*
 * Peer liveness at least every watchdog period, and at once after a wake-up
 * (woke); the time of the last poll is kept across calls, so non-waiting
 * calls poll at most that often, and a death seen once is sticky. Inside
 * the gate. Returns 0 or -TACHYON_EPEERDEAD: the process is gone; whether
 * the ring was closed first is tachyon_wait_peer_gone's to say (kept out of
 * here so that a caller that ignores the result pays nothing for it).
 */
static inline int bus_check_peer(tachyon_bus *b, int64_t now, int woke)
{
	if (woke || now - b->last_peer_check_ns >= TACHYON_WATCHDOG_NS) {
		b->last_peer_check_ns = now;
		return tachyon_wait_poll_peer(b) ? -TACHYON_EPEERDEAD : 0;
	}
	/* Relaxed: the sticky flag carries no data. */
	return tachyon_atomic_load_relaxed32(&b->peer_dead) ? -TACHYON_EPEERDEAD : 0;
}

/* ---- waitany.c --------------------------------------------------------- */

/* Publish the consumer's read cursor for waiters that do not enter the
 * gate (tachyon_bus_wait_any). Inside the gate, by the consumer call. */
static inline void bus_publish_read_pos(tachyon_bus *b)
{
	/* Relaxed: a waiter only compares it with head to decide whether to
	 * look again; an old value makes it report "ready" once too often,
	 * never miss a message (the cursor only grows). Nothing is read
	 * through it. */
	tachyon_atomic_store_relaxed64(&b->read_pos, b->end.cons.read);
}

/* Inside the gate, after a try found the ring empty: wait for at least one
 * message (up to max) on w's terms. Returns the count, -ETIMEDOUT, -EINTR,
 * -TACHYON_ECLOSED, -TACHYON_EPEERCLOSED, -TACHYON_EPEERDEAD or a ring error. */
int tachyon_wait_message(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w);

/* Inside the gate, after try_reserve found no room (head published): wait
 * for room on w's terms and reserve it. Returns 0, -EAGAIN (the deadline
 * passed), -EINTR, -TACHYON_ECLOSED, -TACHYON_EPEERCLOSED, -TACHYON_EPEERDEAD, -TACHYON_ESTUCK or
 * a ring error. */
int tachyon_wait_room(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w);

#endif /* TACHYON_CORE_BUS_IMPL_H */

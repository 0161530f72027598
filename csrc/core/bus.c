/*
 * The bus: one region, one ring end, the peer's liveness, and the blocking
 * forms of the ring-end calls (spin, then sleep on a futex word).
 *
 * Roles. An end starts with no role; set_role or its first data call fixes
 * it (reserve/commit/rollback/flush/send: producer; recv/recv_batch/
 * release_to: consumer) and attaches the matching ring end. A call of the
 * other family is -EPERM from then on.
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
 *
 * Waking a blocked call. Close sets GATE_CLOSING, then changes both wait
 * words 1 -> 0 with CAS and wakes them: a sleeper that already sleeps is
 * woken, and one that is about to sleep finds the word changed (FUTEX_WAIT
 * returns at once) or sees GATE_CLOSING in the check it makes after
 * announcing its sleep. Spinners load the gate on every iteration.
 *
 * fork(). The child inherits the mapping and our struct. Every call in the
 * child returns -TACHYON_EFORKED; close and unref there only unmap and close
 * descriptors, so the parent's ring and its peer see nothing. The check on
 * the per-message path is a compare with a generation counter that a
 * pthread_atfork child handler bumps (getpid() is a syscall in glibc >= 2.25);
 * close and unref also compare getpid().
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* TACHYON_NO_MEMBARRIER builds the CAS gate only: the Makefile's
 * test_bus_casgate tests that form, which kernels without membarrier use. */
#if defined(__linux__) && defined(SYS_membarrier) && !defined(TACHYON_NO_MEMBARRIER)
#include <linux/membarrier.h>
#define HAVE_MEMBARRIER 1
#endif

#include "atomics.h"
#include "internal.h"

/* The slow paths (waits, syscalls, close) stay out of line so the
 * per-message path stays small. */
#if defined(__GNUC__)
#define SLOW_PATH __attribute__((noinline))
#define COLD_PATH __attribute__((noinline, cold))
#else
#define SLOW_PATH
#define COLD_PATH
#endif

#define GATE_INFLIGHT  1u
#define GATE_CLOSING   2u
#define GATE_FINALIZED 4u

/* Default spin before sleeping: a few thousand pauses, tens to a couple of
 * hundred microseconds depending on the CPU's pause latency. */
#define DEFAULT_SPIN 4096u
/* Pause iterations between two clock reads while spinning. */
#define SPIN_CHUNK 256u
/* A producer waiting for room sleeps 50 us first, doubling up to 1 ms
 * (nanosleep, a 0.5.1 consumer never wakes us) or up to the watchdog
 * (futex on the producer wait word, which our consumer wakes). */
#define ROOM_BACKOFF_MIN_NS INT64_C(50000)
#define ROOM_BACKOFF_MAX_NS INT64_C(1000000)
/* R6: how long a timed-out sleeper gives a late producer to claim its wake. */
#define LOST_WAKE_GRACE_NS INT64_C(1000000)

/* linux/mempolicy.h values, defined here so no libnuma header is needed. */
#define MPOL_BIND_ 2
#define MPOL_MF_MOVE_ (1 << 1)
#define MAX_NUMA_NODE 1023

/* Hot fields first: what every data call reads or writes (the first three
 * lines, one thread at a time). The struct is allocated 128-byte aligned and
 * its size is a multiple of 128, so the hot lines of two buses in one process
 * (a request bus and a reply bus used by two threads) never share a line or
 * an adjacent-line prefetch pair. */
struct tachyon_bus {
	_Alignas(128) struct tachyon_region_header *hdr;
	unsigned fork_gen;          /* fork_generation at creation */
	uint32_t role;              /* atomic: enum tachyon_role, fixed once */
	uint32_t gate;              /* atomic: GATE_* bits */
	uint32_t inflight;          /* atomic: a data call is inside (asymmetric gate only) */
	int asym_gate;              /* the gate uses membarrier (fixed at creation) */
	uint32_t spin;              /* atomic: default spin of blocking calls */
	uint32_t pure_spin;         /* atomic: set_polling_mode's last mode (sticky) */
	uint32_t peer_dead;         /* atomic: the pidfd reported death once */
	uint64_t pinned;            /* atomic: consumer read - release, for stats */

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
	uint32_t role_lock;         /* atomic: held while the role is fixed (fix_role) */

	/* Changed by any thread that takes or drops a reference. */
	_Alignas(64) uint32_t refs; /* atomic (atomics.h helpers) */
};

/* ------------------------------------------------------------------------ */
/* fork detection                                                            */

/* Written only by the atfork child handler, which runs in the child before
 * it has a second thread: no other thread can read it concurrently. */
static unsigned fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	fork_generation++;
}

static void register_atfork(void)
{
	/* If this fails, the getpid() checks in close/unref still protect the
	 * shared state; only the data calls would miss the fork. */
	(void)pthread_atfork(NULL, NULL, on_fork_child);
}

static inline int forked(const tachyon_bus *b)
{
	return b->fork_gen != fork_generation;
}

/* The thorough form for close and unref: also catches a raw clone(). */
static int forked_slow(const tachyon_bus *b)
{
	return forked(b) || getpid() != b->pid;
}

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */

static inline int is_closing(const tachyon_bus *b)
{
	/* Relaxed: a hint polled in wait loops. The decisive check is the CAS
	 * in gate_enter, and a sleeper re-reads it after its seq_cst CAS on the
	 * wait word, which pairs with close's seq_cst CAS on the gate. */
	return (tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int deadline_passed(int64_t deadline, int64_t now)
{
	return deadline != TACHYON_FOREVER && now >= deadline;
}

/* Time left until deadline, capped (cap > 0); <= 0 when it has passed. */
static int64_t time_left(int64_t deadline, int64_t now, int64_t cap)
{
	if (deadline == TACHYON_FOREVER)
		return cap;
	return min64(deadline - now, cap);
}

/* CLOCK_MONOTONIC at tick resolution: a few ns (vDSO, no TSC read) against
 * ~25 ns for the precise clock. Enough for the per-message "is it time to
 * poll the peer" check, whose period is the 200 ms watchdog; it lags the
 * precise clock by at most one tick, which only delays that poll a little. */
static inline int64_t coarse_now_ns(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
		return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
	return tachyon_now_ns();
}

/* Change *word 1 -> 0 and wake its sleepers if we did. The CAS is the
 * wake-up claim of WIRE.md: a FUTEX_WAIT expecting 1 that has not slept yet
 * returns at once, so the wake cannot be lost. */
static void claim_and_wake(uint32_t *word)
{
	if (tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE))
		tachyon_futex_wake(word, INT32_MAX);
}

/* Can this process use membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)? It
 * needs a registration per process (per mm: a fork child has its own), so
 * the answer is cached with the pid it was obtained in. Called at bus
 * creation only. */
static int membarrier_ready(void)
{
#ifdef HAVE_MEMBARRIER
	static uint32_t registered_pid;
	uint32_t me = (uint32_t)getpid();
	/* Relaxed: a cache of a syscall's answer; registering twice is harmless. */
	if (tachyon_atomic_load_relaxed32(&registered_pid) == me)
		return 1;
	int saved = errno;
	long r = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
	errno = saved;
	if (r != 0)
		return 0; /* ENOSYS, EINVAL (kernel < 4.14), EPERM (seccomp): CAS gate */
	/* Relaxed: as above. */
	tachyon_atomic_store_relaxed32(&registered_pid, me);
	return 1;
#else
	return 0;
#endif
}

/* A full memory barrier on every CPU that runs one of our threads (and on
 * ours). Documented not to fail once the process registered (man 2
 * membarrier: EINVAL, ENOSYS and EPERM are all ruled out by then). */
static int heavy_barrier(void)
{
#ifdef HAVE_MEMBARRIER
	int saved = errno;
	long r = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	errno = saved;
	return r == 0;
#else
	return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* peer liveness                                                             */

static SLOW_PATH int peer_is_dead(tachyon_bus *b)
{
	/* Relaxed: the flag only ever goes 0 -> 1 and carries no data. */
	if (tachyon_atomic_load_relaxed32(&b->peer_dead))
		return 1;
	if (tachyon_peer_liveness(&b->peer) != TACHYON_PEER_DEAD)
		return 0;
	/* Relaxed: as above; stats may see it a moment late. */
	tachyon_atomic_store_relaxed32(&b->peer_dead, 1);
	return 1;
}

/* ------------------------------------------------------------------------ */
/* finalization and the gate                                                 */

/* The shared part of closing. Runs once (the GATE_FINALIZED claim), with no
 * data call inside, so the ring end's private state is ours. */
static COLD_PATH void finalize(tachyon_bus *b)
{
	struct tachyon_region_header *hdr = b->hdr;
	/* Acquire: pairs with the release store in fix_role, so the attached
	 * ring end is visible (the gate CAS orders it too). */
	uint32_t role = tachyon_atomic_load_acquire32(&b->role);

	if (role == TACHYON_ROLE_PRODUCER) {
		/* An open reservation is never published: drop it (and its padding)
		 * so flush publishes exactly what was committed. */
		tachyon_producer_rollback(&b->end.prod);
		(void)tachyon_producer_flush(&b->end.prod);
	} else if (role == TACHYON_ROLE_CONSUMER) {
		tachyon_consumer_publish(&b->end.cons);
	}
	/* seq_cst CAS (a release and more): a consumer that loads CLOSED with
	 * acquire also sees the head (or tail) published above. Never over
	 * FATAL, never over an earlier CLOSED. */
	(void)tachyon_atomic_cas32(&hdr->state, TACHYON_STATE_READY, TACHYON_STATE_CLOSED);
	/* Full fence: the state store above before the wait-word loads in
	 * claim_and_wake (store-load), so a peer that went to sleep before
	 * seeing CLOSED is woken: its own fence-then-check pairs with this. */
	tachyon_atomic_fence();
	claim_and_wake(&hdr->consumer_wait);
	claim_and_wake(&hdr->producer_wait);
}

/* Claim finalization if closing is requested and nothing is inside. */
static COLD_PATH void finalize_if_idle(tachyon_bus *b)
{
	for (;;) {
		/* Acquire: pairs with the releasing CAS of a data call leaving the
		 * gate, so its writes to the ring end happen before finalize. */
		uint32_t g = tachyon_atomic_load_acquire32(&b->gate);
		if (!(g & GATE_CLOSING) || (g & (GATE_INFLIGHT | GATE_FINALIZED)))
			return;
		/* Acquire: pairs with the release store of 0 by a data call leaving
		 * the asymmetric gate (its ring-end writes happen before finalize).
		 * A call that stored 1 but is not visible yet will see CLOSING and
		 * leave without touching the ring end (tachyon_bus_close). */
		if (b->asym_gate && tachyon_atomic_load_acquire32(&b->inflight))
			return;
		/* seq_cst CAS: exactly one claimer wins. */
		if (tachyon_atomic_cas32(&b->gate, g, g | GATE_FINALIZED)) {
			finalize(b);
			return;
		}
	}
}

static COLD_PATH int gate_enter_slow(tachyon_bus *b)
{
	for (;;) {
		/* Acquire: see the previous call's ring-end writes (also done by a
		 * successful CAS below). */
		uint32_t g = tachyon_atomic_load_acquire32(&b->gate);
		if (g & GATE_CLOSING)
			return -TACHYON_ECLOSED;
		if (g & GATE_INFLIGHT)
			return -EBUSY;
		if (tachyon_atomic_cas32(&b->gate, g, g | GATE_INFLIGHT))
			return 0;
	}
}

/* Enter a data call. 0, -TACHYON_ECLOSED, or -EBUSY (a concurrent call of
 * this end: the caller broke the one-call-at-a-time rule). */
static inline void gate_exit(tachyon_bus *b);

static inline int gate_enter(tachyon_bus *b)
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
		 * orders it against its own load with membarrier (below). */
		tachyon_atomic_store_relaxed32(&b->inflight, 1);
		/* Compiler barrier only: the store above and the load below stay in
		 * this order in the code. The CPU may let the load pass the store;
		 * close's membarrier() between its CLOSING store and its load of
		 * this word makes that harmless: either close sees our 1, or our
		 * load (after its barrier) sees CLOSING. */
		tachyon_compiler_barrier();
		/* Relaxed: see above; the decisive ordering is close's barrier. */
		if (__builtin_expect((tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0, 0)) {
			gate_exit(b); /* leaves the finalization to whoever can claim it */
			return -TACHYON_ECLOSED;
		}
		return 0;
	}
	/* seq_cst CAS: acquires the ring-end state the previous call (maybe on
	 * another thread) left, and orders us against close's CAS on the gate. */
	if (__builtin_expect(tachyon_atomic_cas32(&b->gate, 0, GATE_INFLIGHT), 1))
		return 0;
	return gate_enter_slow(b);
}

static COLD_PATH void gate_exit_slow(tachyon_bus *b)
{
	for (;;) {
		uint32_t g = tachyon_atomic_load_relaxed32(&b->gate);
		/* seq_cst CAS: releases our ring-end writes to whoever finalizes. */
		if (tachyon_atomic_cas32(&b->gate, g, g & ~GATE_INFLIGHT))
			break;
	}
	finalize_if_idle(b);
}

static inline void gate_exit(tachyon_bus *b)
{
	if (__builtin_expect(b->asym_gate, 1)) {
		/* Release: our ring-end writes happen before the acquire load of a
		 * finalizer that sees 0. */
		tachyon_atomic_store_release32(&b->inflight, 0);
		/* Compiler barrier only, as in gate_enter: if close saw our 1 (so
		 * left finalizing to us), our store of 0 came after its barrier,
		 * and so does this load, which then sees CLOSING. */
		tachyon_compiler_barrier();
		/* Relaxed: ordered by close's barrier, see above. */
		if (__builtin_expect((tachyon_atomic_load_relaxed32(&b->gate) & GATE_CLOSING) != 0, 0))
			finalize_if_idle(b);
		return;
	}
	/* seq_cst CAS: releases the ring-end state to the next call or to the
	 * finalizer; fails only when close came meanwhile. */
	if (__builtin_expect(tachyon_atomic_cas32(&b->gate, GATE_INFLIGHT, 0), 1))
		return;
	gate_exit_slow(b);
}

/* Inside the gate: fix the role and attach its ring end. */
/*
 * Fix the role and attach its ring end, once: 0, -EPERM (the other role is
 * fixed) or the attach error. Serialized by role_lock, not by the gate, so
 * that set_role (from any thread, at any time) and a first data call never
 * attach twice, whichever gate form is in use: the membarrier gate does not
 * exclude a set_role racing with a data call. The ring end is used only
 * after the role is published (release store), so attaching needs nothing
 * more. Held for an attach only (a few loads and stores, no syscall).
 */
static COLD_PATH int fix_role(tachyon_bus *b, uint32_t role)
{
	/* seq_cst CAS: one fixer at a time; the loser waits (yielding: the
	 * holder may have been preempted) and then sees the role it set. */
	for (unsigned spins = 0; !tachyon_atomic_cas32(&b->role_lock, 0, 1); spins++) {
		if (spins < 64)
			tachyon_cpu_relax();
		else
			sched_yield();
	}
	/* Acquire: pairs with the release store below by an earlier fixer. */
	uint32_t cur = tachyon_atomic_load_acquire32(&b->role);
	int r = 0;
	if (cur == TACHYON_ROLE_NONE) {
		r = role == TACHYON_ROLE_PRODUCER
		            ? tachyon_producer_attach(&b->end.prod, b->region.base, b->region.size)
		            : tachyon_consumer_attach(&b->end.cons, b->region.base, b->region.size);
		/* Release: whoever loads the role with acquire (enter, finalize,
		 * stats) sees the attached ring end. */
		if (r == 0)
			tachyon_atomic_store_release32(&b->role, role);
	} else if (cur != role) {
		r = -EPERM;
	}
	/* Release: unlock; the next fixer's CAS acquires what we did. */
	tachyon_atomic_store_release32(&b->role_lock, 0);
	return r;
}

/* Enter a data call of a family: fork check, role check, gate, role fix. */
static inline int enter(tachyon_bus *b, uint32_t role)
{
	if (__builtin_expect(!b, 0))
		return -EINVAL;
	if (__builtin_expect(forked(b), 0))
		return -TACHYON_EFORKED;
	/* Acquire: a role fixed by another thread comes with its attached end. */
	uint32_t cur = tachyon_atomic_load_acquire32(&b->role);
	if (__builtin_expect(cur != role, 0) && cur != TACHYON_ROLE_NONE)
		return -EPERM;
	int r = gate_enter(b);
	if (__builtin_expect(r < 0, 0))
		return r;
	if (__builtin_expect(cur == TACHYON_ROLE_NONE, 0)) {
		r = fix_role(b, role);
		if (r < 0) {
			gate_exit(b);
			return r;
		}
	}
	return 0;
}

/* Leave a consumer call: publish the pinned byte count for stats. */
static inline void consumer_exit(tachyon_bus *b)
{
	const tachyon_consumer *c = &b->end.cons;
	/* Release: only a number for stats; no data rides on it. */
	tachyon_atomic_store_release64(&b->pinned, c->read - c->release);
	gate_exit(b);
}

/* ------------------------------------------------------------------------ */
/* creation, references, close                                               */

int tachyon_bus_create(tachyon_region *region, int sockfd, tachyon_peer *peer,
                       int is_listener, tachyon_bus **out)
{
	tachyon_bus *b = NULL;
	void *mem = NULL;
	/* 128-byte aligned (see the struct): posix_memalign, then zeroed. */
	if (region && out && region->base && region->size >= TACHYON_REGION_HEADER_SIZE &&
	    posix_memalign(&mem, _Alignof(tachyon_bus), sizeof *b) == 0) {
		b = mem;
		memset(b, 0, sizeof *b);
	}
	if (!b) {
		int err = (region && out && region->base) ? -ENOMEM : -EINVAL;
		if (region)
			tachyon_region_release(region);
		if (sockfd >= 0)
			close(sockfd);
		if (peer)
			tachyon_peer_release(peer);
		if (out)
			*out = NULL;
		return err;
	}
	pthread_once(&atfork_once, register_atfork);

	b->region = *region;
	region->fd = -1;
	region->base = NULL;
	b->hdr = b->region.base;
	b->sockfd = sockfd;
	if (peer) {
		b->peer = *peer;
		peer->pidfd = -1;
	} else {
		b->peer.pidfd = -1;
	}
	b->is_listener = is_listener != 0;
	b->pid = getpid();
	b->fork_gen = fork_generation;
	b->refs = 1;
	b->asym_gate = membarrier_ready();
	b->spin = DEFAULT_SPIN;
	b->last_peer_check_ns = tachyon_now_ns();
	*out = b;
	return 0;
}

void tachyon_bus_ref(tachyon_bus *b)
{
	if (!b)
		return;
	for (;;) {
		uint32_t r = tachyon_atomic_load_relaxed32(&b->refs);
		/* seq_cst CAS; a reference count needs no more than atomicity here,
		 * the caller already holds a reference. */
		if (tachyon_atomic_cas32(&b->refs, r, r + 1))
			return;
	}
}

static void destroy(tachyon_bus *b)
{
	/* In a forked child: nothing shared is written, no wake; only our copy
	 * of the mapping and descriptors go. */
	if (!forked_slow(b))
		tachyon_bus_close(b);
	tachyon_region_release(&b->region);
	if (b->sockfd >= 0)
		close(b->sockfd);
	tachyon_peer_release(&b->peer);
	free(b);
}

void tachyon_bus_unref(tachyon_bus *b)
{
	if (!b)
		return;
	for (;;) {
		uint32_t r = tachyon_atomic_load_relaxed32(&b->refs);
		if (r == 0)
			return; /* a caller's double unref: leave it rather than underflow */
		/* seq_cst CAS: the last dropper sees every other holder's writes
		 * (their CAS released them) before it frees. */
		if (tachyon_atomic_cas32(&b->refs, r, r - 1)) {
			if (r == 1)
				destroy(b);
			return;
		}
	}
}

void tachyon_bus_close(tachyon_bus *b)
{
	if (!b || forked_slow(b))
		return;
	uint32_t g;
	for (;;) {
		g = tachyon_atomic_load_relaxed32(&b->gate);
		if (g & GATE_CLOSING)
			return; /* idempotent: the first close did (or does) the rest */
		/* seq_cst CAS: after it no data call can enter; pairs with the
		 * sleeper's seq_cst CAS on its wait word and its re-check of the
		 * gate (Dekker: one of us sees the other). */
		if (tachyon_atomic_cas32(&b->gate, g, g | GATE_CLOSING))
			break;
	}
	if (b->asym_gate) {
		/* Every thread of ours passes a full barrier: a data call that
		 * stored "inside" before it is visible to the load below, and one
		 * that loads the gate after it sees CLOSING and leaves untouched.
		 * Should the barrier ever fail, finalize_if_idle still requires a
		 * visible 0, and a call inside finalizes as it leaves. */
		(void)heavy_barrier();
		/* Acquire: pairs with the release store of 0 of a call leaving. */
		if (!tachyon_atomic_load_acquire32(&b->inflight)) {
			finalize_if_idle(b);
			return;
		}
	} else if (!(g & GATE_INFLIGHT)) {
		finalize_if_idle(b);
		return;
	}
	/* A call is inside and may be asleep: kick both words. It sees CLOSING,
	 * returns -TACHYON_ECLOSED and finalizes as it leaves. Waking the peer's
	 * word too is harmless (a spurious wake).
	 * Full fence: our CLOSING store before the loads of the wait words
	 * (store-load). The sleeper announces itself on its word, fences, then
	 * loads the gate: either it sees CLOSING, or our CAS below sees its 1,
	 * claims it and wakes it. */
	tachyon_atomic_fence();
	claim_and_wake(&b->hdr->consumer_wait);
	claim_and_wake(&b->hdr->producer_wait);
}

int tachyon_bus_is_closed(const tachyon_bus *b)
{
	return b ? is_closing(b) : 1;
}

/* ------------------------------------------------------------------------ */
/* role                                                                      */

int tachyon_bus_set_role(tachyon_bus *b, int role)
{
	if (!b || (role != TACHYON_ROLE_PRODUCER && role != TACHYON_ROLE_CONSUMER))
		return -EINVAL;
	if (forked(b))
		return -TACHYON_EFORKED;
	/* Acquire: pairs with the release store in fix_role. A fixed role
	 * needs no gate, so asking while another thread is inside a call of
	 * that family (say, blocked in recv) answers at once. */
	uint32_t cur = tachyon_atomic_load_acquire32(&b->role);
	if (cur == (uint32_t)role)
		return 0;
	if (cur != TACHYON_ROLE_NONE)
		return -EPERM;
	if (is_closing(b))
		return -TACHYON_ECLOSED;
	/* No gate: fixing the role uses no ring end (fix_role has its own
	 * lock), and a close racing with us finds the role unset or the end
	 * fully attached, which it then finalizes as usual. */
	return fix_role(b, (uint32_t)role);
}

int tachyon_bus_role(const tachyon_bus *b)
{
	/* Relaxed: an answer for the caller; no data follows from it. */
	return b ? (int)tachyon_atomic_load_relaxed32(&b->role) : TACHYON_ROLE_NONE;
}

/* ------------------------------------------------------------------------ */
/* waiting: shared pieces                                                    */

typedef struct waiter {
	int64_t deadline;
	uint32_t spin;
	int (*interrupted)(void *);
	void *arg;
	int64_t start;
	int64_t last_check;     /* last interrupted() call */
} waiter;

static void waiter_init(waiter *wt, const tachyon_bus *b, const tachyon_wait *w, int64_t now)
{
	wt->deadline = w ? w->deadline_ns : TACHYON_FOREVER;
	wt->spin = w && w->spin ? w->spin : tachyon_atomic_load_relaxed32(&b->spin);
	wt->interrupted = w ? w->interrupted : NULL;
	wt->arg = w ? w->arg : NULL;
	wt->start = now;
	wt->last_check = now;
}

/* What an EINTR from a sleep means: with a callback, what it says; without
 * one, stop at once. */
static int on_eintr(const waiter *wt)
{
	if (!wt->interrupted)
		return -EINTR;
	return wt->interrupted(wt->arg) ? -EINTR : 0;
}

/*
 * The periodic checks of a waiting call, made after each sleep (woke) and
 * by the clock while spinning.
 *
 * Peer liveness at least every watchdog period; the time of the last poll
 * is kept across calls, so non-waiting calls poll at most that often, and
 * a death seen once is sticky. Returns 0 or -TACHYON_EPEERDEAD.
 */
static int check_peer(tachyon_bus *b, int64_t now, int woke)
{
	if (woke || now - b->last_peer_check_ns >= TACHYON_WATCHDOG_NS) {
		b->last_peer_check_ns = now;
		return peer_is_dead(b) ? -TACHYON_EPEERDEAD : 0;
	}
	/* Relaxed: the sticky flag carries no data. */
	return tachyon_atomic_load_relaxed32(&b->peer_dead) ? -TACHYON_EPEERDEAD : 0;
}

/* The caller's interrupt check, at least every watchdog period and after
 * each sleep. Returns 0 or -EINTR. */
static int check_interrupted(waiter *wt, int64_t now, int woke)
{
	if (wt->interrupted && (woke || now - wt->last_check >= TACHYON_WATCHDOG_NS)) {
		wt->last_check = now;
		if (wt->interrupted(wt->arg))
			return -EINTR;
	}
	return 0;
}

/* Relative sleep; 0 or -EINTR. */
static int nap(int64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
	return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == EINTR ? -EINTR : 0;
}

/* ------------------------------------------------------------------------ */
/* consumer                                                                  */

static inline int peek(tachyon_consumer *c, tachyon_msg *msgs, size_t max)
{
	if (max == 1) {
		int r = tachyon_consumer_try_peek(c, msgs);
		return r < 0 ? r : 1;
	}
	return tachyon_consumer_try_peek_batch(c, msgs, max);
}

/* Spin n pauses, trying the ring after each; -EAGAIN when nothing came. */
static int spin_peek(tachyon_bus *b, tachyon_msg *msgs, size_t max, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		tachyon_cpu_relax();
		int r = peek(&b->end.cons, msgs, max);
		if (r != -EAGAIN)
			return r;
		if (is_closing(b))
			return -TACHYON_ECLOSED;
	}
	return -EAGAIN;
}

/* R6: the sleep timed out. If head moved while we slept, a producer
 * published without waking us: give it a moment to claim the wake (a
 * producer between its publication and its wake check), then count. */
static COLD_PATH void check_lost_wake(tachyon_bus *b, uint64_t head_seen)
{
	uint32_t *word = &b->hdr->consumer_wait;
	/* Relaxed: a diagnostic comparison; no data is read through it. */
	if (tachyon_atomic_load_relaxed64(&b->hdr->head) == head_seen)
		return;
	(void)tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, LOST_WAKE_GRACE_NS);
	/* Relaxed: as above. */
	if (tachyon_atomic_load_relaxed32(word) != TACHYON_WAIT_SLEEPING)
		return;
	/* Relaxed load and release store: only this call writes the counter
	 * (inside the gate); stats reads it as a number. */
	uint64_t n = tachyon_atomic_load_relaxed64(&b->lost_wakeups);
	tachyon_atomic_store_release64(&b->lost_wakeups, n + 1);
}

/* Outcomes of one sleep attempt that found no message: below every -errno
 * (errno values stay under 4096) and every count, so they never collide. */
#define SLEPT (-0x10000)
#define NO_SLEEP_PURE_SPIN (-0x10001)

/*
 * One round of the sleep protocol of WIRE.md. Returns a count or an error
 * from the ring, -TACHYON_ECLOSED, -EINTR (the futex said so), SLEPT, or
 * NO_SLEEP_PURE_SPIN when the word says pure spin.
 */
static int consumer_sleep(tachyon_bus *b, tachyon_msg *msgs, size_t max, int64_t timeout)
{
	uint32_t *word = &b->hdr->consumer_wait;
	/* seq_cst CAS 0 -> 1: announces the sleep to the producer, whose
	 * fence-then-load of the word after publishing head pairs with it. */
	if (!tachyon_atomic_cas32(word, TACHYON_WAIT_AWAKE, TACHYON_WAIT_SLEEPING)) {
		/* Relaxed: we only decide how to wait. */
		uint32_t v = tachyon_atomic_load_relaxed32(word);
		if (v == TACHYON_WAIT_PURE_SPIN)
			return NO_SLEEP_PURE_SPIN;
		if (v != TACHYON_WAIT_SLEEPING) {
			/* Not a value of the protocol (a hostile or broken peer): we
			 * cannot announce a sleep, so poll gently instead. */
			int r = nap(min64(timeout, ROOM_BACKOFF_MAX_NS));
			return r < 0 ? r : SLEPT;
		}
		/* 1 left over (a peer wrote it): sleep on it as if we had set it. */
	}
	/* Full fence: our announcement before the re-check of head (store-load);
	 * the producer's store of head then its load of the word is the mirror
	 * image, so one of us sees the other. */
	tachyon_atomic_fence();
	int r = peek(&b->end.cons, msgs, max);
	if (r == -EAGAIN && is_closing(b))
		r = -TACHYON_ECLOSED;
	if (r != -EAGAIN) {
		(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
		return r;
	}
	/* The head our last check saw (the peek above loaded and validated it),
	 * for the lost-wake diagnostic. */
	uint64_t head_seen = b->end.cons.cached_head;
	int fr = tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, timeout);
	if (fr == -ETIMEDOUT)
		check_lost_wake(b, head_seen);
	/* seq_cst CAS 1 -> 0: mark ourselves awake; it fails when the producer
	 * (or close) claimed the wake, or a 0.5.1 producer stored 0 itself. */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
	return fr == -EINTR ? -EINTR : SLEPT;
}

/* Inside the gate, after a try found the ring empty. */
static SLOW_PATH int recv_wait(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w)
{
	tachyon_consumer *c = &b->end.cons;
	int64_t now = tachyon_now_ns();
	waiter wt;
	waiter_init(&wt, b, w, now);
	uint32_t spun = 0;
	int woke = 0;

	for (;;) {
		if (is_closing(b))
			return -TACHYON_ECLOSED;
		int r = check_peer(b, now, woke);
		if (r < 0) {
			/* Everything published before the death first. */
			r = peek(c, msgs, max);
			return r == -EAGAIN ? -TACHYON_EPEERDEAD : r;
		}
		if (deadline_passed(wt.deadline, now))
			return -ETIMEDOUT;
		if ((r = check_interrupted(&wt, now, woke)) < 0)
			return r;
		woke = 0;

		/* Relaxed: the mode only chooses how we wait. */
		int pure = tachyon_atomic_load_relaxed32(&b->pure_spin) != 0;
		if (spun < wt.spin || pure) {
			uint32_t n = pure ? 4 * SPIN_CHUNK : min64(SPIN_CHUNK, wt.spin - spun);
			spun += n;
			r = spin_peek(b, msgs, max, n);
			if (r != -EAGAIN)
				return r;
		} else {
			int64_t timeout = time_left(wt.deadline, now, TACHYON_WATCHDOG_NS);
			if (timeout > 0) {
				r = consumer_sleep(b, msgs, max, timeout);
				if (r == NO_SLEEP_PURE_SPIN) {
					/* The word says pure spin: never sleep over it. */
					r = spin_peek(b, msgs, max, 4 * SPIN_CHUNK);
					if (r != -EAGAIN)
						return r;
				} else if (r == -EINTR) {
					if ((r = on_eintr(&wt)) < 0)
						return r;
					woke = 1;
				} else if (r != SLEPT) {
					return r;
				} else {
					woke = 1;
				}
			}
			r = peek(c, msgs, max);
			if (r != -EAGAIN)
				return r;
		}
		now = tachyon_now_ns();
	}
}

static int recv_common(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w)
{
	if (!msgs || max == 0)
		return -EINVAL;
	int r = enter(b, TACHYON_ROLE_CONSUMER);
	if (r < 0)
		return r;
	r = peek(&b->end.cons, msgs, max);
	if (r == -EAGAIN)
		r = recv_wait(b, msgs, max, w);
	consumer_exit(b);
	return r;
}

int tachyon_bus_recv(tachyon_bus *b, tachyon_msg *msg, const tachyon_wait *w)
{
	int r = recv_common(b, msg, 1, w);
	return r < 0 ? r : 0;
}

int tachyon_bus_recv_batch(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w)
{
	return recv_common(b, msgs, max, w);
}

int tachyon_bus_release_to(tachyon_bus *b, uint64_t pos, uint32_t nmsgs)
{
	int r = enter(b, TACHYON_ROLE_CONSUMER);
	if (r < 0)
		return r;
	r = tachyon_consumer_release_to(&b->end.cons, pos, nmsgs);
	consumer_exit(b);
	return r;
}

int tachyon_bus_publish_release(tachyon_bus *b)
{
	int r = enter(b, TACHYON_ROLE_CONSUMER);
	if (r < 0)
		return r;
	tachyon_consumer_publish(&b->end.cons);
	consumer_exit(b);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* producer                                                                  */

/* Does the consumer end carry our marker? The consumer is the peer: the
 * connector (offset 24) when we listen, the listener (offset 20) otherwise. */
static int consumer_is_ours(const tachyon_bus *b)
{
	const uint32_t *m = b->is_listener ? &b->hdr->connector_marker : &b->hdr->listener_marker;
	/* Relaxed: written once at attach, before any message flowed; a wrong
	 * answer only picks the other (still bounded) way of waiting. */
	return tachyon_atomic_load_relaxed32(m) == TACHYON_PEER_MARKER;
}

/* One sleep of a producer waiting for room. Returns what try_reserve said
 * if the re-check found room (0) or an error, -EAGAIN after a sleep,
 * -TACHYON_ECLOSED or -EINTR (from the sleep). */
static int producer_sleep(tachyon_bus *b, size_t max_payload, void **payload, int64_t timeout)
{
	if (!consumer_is_ours(b))
		return nap(min64(timeout, ROOM_BACKOFF_MAX_NS)) < 0 ? -EINTR : -EAGAIN;

	uint32_t *word = &b->hdr->producer_wait;
	/* Release store of 1 (only we write 1 here): announces the sleep. */
	tachyon_atomic_store_release32(word, TACHYON_WAIT_SLEEPING);
	/* Full fence: the announcement before the re-check of tail; our
	 * consumer's store of tail then fence then load of this word mirrors it. */
	tachyon_atomic_fence();
	int r = tachyon_producer_try_reserve(&b->end.prod, max_payload, payload);
	if (r == -EAGAIN && is_closing(b))
		r = -TACHYON_ECLOSED;
	if (r != -EAGAIN) {
		(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
		return r;
	}
	int fr = tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, timeout);
	/* seq_cst CAS 1 -> 0: awake again (fails when the consumer or close
	 * claimed the wake). */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
	return fr == -EINTR ? -EINTR : -EAGAIN;
}

/* Inside the gate, after try_reserve said -EAGAIN (head already published). */
static SLOW_PATH int reserve_wait(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w)
{
	tachyon_producer *p = &b->end.prod;
	int64_t now = tachyon_now_ns();
	waiter wt;
	waiter_init(&wt, b, w, now);
	uint32_t spun = 0;
	int64_t backoff = ROOM_BACKOFF_MIN_NS;
	int woke = 0;

	for (;;) {
		if (is_closing(b))
			return -TACHYON_ECLOSED;
		int r = check_peer(b, now, woke);
		if (r < 0)
			return r;
		if (deadline_passed(wt.deadline, now))
			return -EAGAIN;
		if ((r = check_interrupted(&wt, now, woke)) < 0)
			return r;
		woke = 0;
		int ours = consumer_is_ours(b);
		/* A 0.5.1 consumer asleep while we lack room for more than the
		 * watchdog: it publishes its tail only every 32 messages and will
		 * never free what we wait for. Relaxed: a diagnosis, not a sync. */
		if (!ours && now - wt.start > TACHYON_WATCHDOG_NS &&
		    tachyon_atomic_load_relaxed32(&b->hdr->consumer_wait) == TACHYON_WAIT_SLEEPING)
			return -TACHYON_ESTUCK;

		if (spun < wt.spin) {
			uint32_t n = min64(SPIN_CHUNK, wt.spin - spun);
			spun += n;
			for (uint32_t i = 0; i < n; i++) {
				tachyon_cpu_relax();
				r = tachyon_producer_try_reserve(p, max_payload, payload);
				if (r != -EAGAIN)
					return r;
				if (is_closing(b))
					return -TACHYON_ECLOSED;
			}
		} else {
			int64_t timeout = time_left(wt.deadline, now, backoff);
			if (timeout > 0) {
				r = producer_sleep(b, max_payload, payload, timeout);
				if (r == -EINTR) {
					if ((r = on_eintr(&wt)) < 0)
						return r;
				} else if (r != -EAGAIN) {
					return r;
				}
				/* After a futex sleep (up to the watchdog) check at once;
				 * the 1 ms naps of the 0.5.1 case check by the clock. */
				woke = ours;
				backoff = min64(2 * backoff, ours ? TACHYON_WATCHDOG_NS : ROOM_BACKOFF_MAX_NS);
			}
			r = tachyon_producer_try_reserve(p, max_payload, payload);
			if (r != -EAGAIN)
				return r;
		}
		now = tachyon_now_ns();
	}
}

/* Inside the gate. */
static int reserve_locked(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w)
{
	/* A non-waiting send still notices a dead consumer within the watchdog
	 * period: a coarse clock read per message, a poll at most that often. */
	int r = check_peer(b, coarse_now_ns(), 0);
	if (r < 0)
		return r;
	r = tachyon_producer_try_reserve(&b->end.prod, max_payload, payload);
	if (r == -EAGAIN)
		r = reserve_wait(b, max_payload, payload, w);
	return r;
}

int tachyon_bus_reserve(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w)
{
	if (!payload)
		return -EINVAL;
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	r = reserve_locked(b, max_payload, payload, w);
	gate_exit(b);
	return r;
}

/* Commit and rollback close a reservation, so they never fix the role:
 * without one there is nothing to close. Relaxed: a role fixed by another
 * thread is re-checked with acquire in enter(). */
static int has_no_role(const tachyon_bus *b)
{
	return b && tachyon_atomic_load_relaxed32(&b->role) == TACHYON_ROLE_NONE;
}

int tachyon_bus_commit(tachyon_bus *b, size_t actual_size, uint32_t type_id)
{
	if (has_no_role(b))
		return forked(b) ? -TACHYON_EFORKED : -EINVAL;
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	r = tachyon_producer_commit(&b->end.prod, actual_size, type_id);
	gate_exit(b);
	return r;
}

void tachyon_bus_copy_payload(tachyon_bus *b, void *payload, const void *data, size_t n)
{
	/* Acquire, as in enter(): the producer end is attached once the role
	 * says so. Any other end has no copy state to learn in: plain copy. */
	if (b && !forked(b) && tachyon_atomic_load_acquire32(&b->role) == TACHYON_ROLE_PRODUCER)
		tachyon_copy_payload(&b->end.prod.copy, payload, data, n);
	else if (n)
		memcpy(payload, data, n);
}

void tachyon_bus_rollback(tachyon_bus *b)
{
	if (has_no_role(b) || enter(b, TACHYON_ROLE_PRODUCER) < 0)
		return;
	tachyon_producer_rollback(&b->end.prod);
	gate_exit(b);
}

int tachyon_bus_flush(tachyon_bus *b)
{
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	r = tachyon_producer_flush(&b->end.prod);
	gate_exit(b);
	return r;
}

/* Inside the gate, after try_send found no room (head already published):
 * wait for room as reserve does, then copy, commit and flush. */
static SLOW_PATH int send_wait(tachyon_bus *b, const void *data, size_t size, uint32_t type_id,
                               const tachyon_wait *w)
{
	void *payload;
	int r = reserve_wait(b, size, &payload, w);
	if (r != 0)
		return r;
	tachyon_copy_payload(&b->end.prod.copy, payload, data, size);
	r = tachyon_producer_commit(&b->end.prod, size, type_id);
	if (r != 0) {
		tachyon_producer_rollback(&b->end.prod);
		return r;
	}
	return tachyon_producer_flush(&b->end.prod);
}

int tachyon_bus_send(tachyon_bus *b, const void *data, size_t size, uint32_t type_id,
                     const tachyon_wait *w)
{
	if (!data && size)
		return -EINVAL;
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	/* Relaxed: the sticky flag carries no data. */
	if (__builtin_expect(tachyon_atomic_load_relaxed32(&b->peer_dead) != 0, 0)) {
		r = -TACHYON_EPEERDEAD;
	} else {
		/* The per-message path: room now, one call. */
		r = tachyon_producer_try_send(&b->end.prod, data, size, type_id);
		if (r == -EAGAIN)
			r = send_wait(b, data, size, type_id, w);
		/* Liveness by the coarse clock (a pidfd poll at most every
		 * watchdog period), after the publication rather than before the
		 * reserve: the clock read stays off the path from this call to the
		 * peer seeing head. A death found here fails the next call (the
		 * flag is sticky); this message went to a ring nobody reads. */
		if (r == 0)
			(void)check_peer(b, coarse_now_ns(), 0);
	}
	gate_exit(b);
	return r;
}

/* ------------------------------------------------------------------------ */
/* modes, NUMA, stats                                                        */

int tachyon_bus_set_polling_mode(tachyon_bus *b, int pure_spin)
{
	if (!b || (pure_spin != 0 && pure_spin != 1))
		return -EINVAL;
	if (forked(b))
		return -TACHYON_EFORKED;
	if (is_closing(b))
		return -TACHYON_ECLOSED;
	/* Relaxed: our own consumer reads it to choose how to wait. */
	tachyon_atomic_store_relaxed32(&b->pure_spin, (uint32_t)pure_spin);

	uint32_t *word = &b->hdr->consumer_wait;
	/* Bounded: a peer flipping the word for ever must not hang us. */
	for (int tries = 0; tries < 64; tries++) {
		/* Relaxed: every change below is a CAS that re-checks the value. */
		uint32_t v = tachyon_atomic_load_relaxed32(word);
		if (pure_spin) {
			if (v == TACHYON_WAIT_PURE_SPIN || v > TACHYON_WAIT_PURE_SPIN)
				return 0;
			/* seq_cst CAS: 0 -> 2, or 1 -> 2 then wake the sleeper, which
			 * then finds 2 and spins. */
			if (tachyon_atomic_cas32(word, v, TACHYON_WAIT_PURE_SPIN)) {
				if (v == TACHYON_WAIT_SLEEPING)
					tachyon_futex_wake(word, INT32_MAX);
				return 0;
			}
		} else {
			if (v != TACHYON_WAIT_PURE_SPIN)
				return 0;
			/* seq_cst CAS 2 -> 0: hybrid again. */
			if (tachyon_atomic_cas32(word, TACHYON_WAIT_PURE_SPIN, TACHYON_WAIT_AWAKE))
				return 0;
		}
	}
	return 0;
}

void tachyon_bus_set_spin(tachyon_bus *b, uint32_t spin)
{
	if (!b || forked(b))
		return;
	/* Relaxed: a tuning knob read at the start of the next wait. */
	tachyon_atomic_store_relaxed32(&b->spin, spin ? spin : DEFAULT_SPIN);
}

/* Does NUMA node `node` exist? Without /sys/devices/system/node (a kernel
 * without NUMA) the machine has one node, 0. */
static int numa_node_exists(int node)
{
	DIR *d = opendir("/sys/devices/system/node");
	if (!d)
		return node == 0 ? 1 : 0;
	closedir(d);
	char path[64];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d", node);
	return access(path, F_OK) == 0;
}

int tachyon_bus_set_numa_node(tachyon_bus *b, int node)
{
	if (!b)
		return -EINVAL;
	if (forked(b))
		return -TACHYON_EFORKED;
	if (is_closing(b))
		return -TACHYON_ECLOSED;
	if (node < 0 || node > MAX_NUMA_NODE || !numa_node_exists(node))
		return -EINVAL;
#ifdef SYS_mbind
	unsigned long mask[(MAX_NUMA_NODE + 1) / (8 * sizeof(unsigned long))] = {0};
	mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
	/* maxnode counts bits the kernel may read, plus one (its historical
	 * off-by-one); MPOL_MF_MOVE also moves pages already placed, those
	 * only we map. */
	long r = syscall(SYS_mbind, b->region.base, b->region.size, MPOL_BIND_, mask,
	                 (unsigned long)node + 2, MPOL_MF_MOVE_);
	if (r < 0) {
		int e = errno;
		/* Without a NUMA-capable kernel node 0 is the only node: nothing to do. */
		if (e == ENOSYS && node == 0)
			return 0;
		return -e;
	}
	return 0;
#else
	return node == 0 ? 0 : -EINVAL;
#endif
}

int tachyon_bus_stats(tachyon_bus *b, tachyon_stats *out)
{
	if (!b || !out)
		return -EINVAL;
	if (forked(b))
		return -TACHYON_EFORKED;
	struct tachyon_region_header *hdr = b->hdr;
	memset(out, 0, sizeof *out);
	out->capacity = b->region.capacity;
	/* Relaxed loads: a snapshot for display; nothing is read through them.
	 * The difference of two moments may be off by what moved in between,
	 * or nonsense from a hostile peer: clamp it to the ring. */
	uint64_t head = tachyon_atomic_load_relaxed64(&hdr->head);
	uint64_t tail = tachyon_atomic_load_relaxed64(&hdr->tail);
	uint64_t used = head - tail;
	out->bytes_in_use = used > b->region.capacity ? b->region.capacity : used;
	/* Acquire: pairs with the release store of the role (and then the
	 * consumer exits' release stores of the count). */
	out->role = (int)tachyon_atomic_load_acquire32(&b->role);
	out->bytes_pinned = out->role == TACHYON_ROLE_CONSUMER ? tachyon_atomic_load_acquire64(&b->pinned) : 0;
	out->consumer_wait = tachyon_atomic_load_relaxed32(&hdr->consumer_wait);
	out->state = tachyon_atomic_load_relaxed32(&hdr->state);
	out->lost_wakeups = tachyon_atomic_load_relaxed64(&b->lost_wakeups);
	out->peer_pid = (int32_t)b->peer.pid;
	out->peer_liveness = tachyon_bus_peer_liveness(b);
	return 0;
}

uint64_t tachyon_bus_capacity(const tachyon_bus *b)
{
	return b ? b->region.capacity : 0;
}

size_t tachyon_bus_max_payload(const tachyon_bus *b)
{
	uint64_t half = b ? b->region.capacity / 2 : 0;
	/* ABI.md, placement: a slot of at most capacity/2 bytes fits at every offset. */
	return half > TACHYON_MSG_ALIGNMENT ? (size_t)(half - TACHYON_MSG_ALIGNMENT) : 0;
}

int tachyon_bus_forked(const tachyon_bus *b)
{
	return b && forked(b);
}

const char *tachyon_bus_fatal_reason(const tachyon_bus *b)
{
	if (!b)
		return NULL;
	/* Acquire: pairs with fix_role's release store; the end is attached.
	 * The reason is written once, by the data call that made the ring
	 * fatal, before it returned -TACHYON_ECORRUPT to its caller. */
	switch (tachyon_atomic_load_acquire32(&b->role)) {
	case TACHYON_ROLE_PRODUCER:
		return b->end.prod.fatal ? b->end.prod.fatal_reason : NULL;
	case TACHYON_ROLE_CONSUMER:
		return b->end.cons.fatal ? b->end.cons.fatal_reason : NULL;
	default:
		return NULL;
	}
}

pid_t tachyon_bus_peer_pid(const tachyon_bus *b)
{
	return b ? b->peer.pid : 0;
}

int tachyon_bus_peer_liveness(tachyon_bus *b)
{
	if (!b)
		return -EINVAL;
	if (forked(b))
		return -TACHYON_EFORKED;
	if (b->peer.self)
		return TACHYON_PEER_SELF;
	/* Relaxed: the sticky flag carries no data. */
	if (tachyon_atomic_load_relaxed32(&b->peer_dead))
		return TACHYON_PEER_DEAD;
	int l = tachyon_peer_liveness(&b->peer);
	if (l == TACHYON_PEER_DEAD)
		/* Relaxed: as above; any thread may set it, it only goes 0 -> 1. */
		tachyon_atomic_store_relaxed32(&b->peer_dead, 1);
	return l;
}

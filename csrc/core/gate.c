/*
 * The gate's slow side (see bus_impl.h for the protocol): entering and
 * leaving when close is near, close's half, and the finalization that runs
 * exactly once when close and the last call inside have both happened.
 *
 * Waking a blocked call. Close sets GATE_CLOSING, then claims both wait
 * words 1 -> 0 and wakes them: a sleeper that already sleeps is woken, and
 * one that is about to sleep finds the word changed (FUTEX_WAIT returns at
 * once) or sees GATE_CLOSING in the check it makes after announcing its
 * sleep. Spinners load the gate on every iteration.
 */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

/* TACHYON_NO_MEMBARRIER builds the CAS gate only: the Makefile's
 * test_bus_casgate tests that form, which kernels without membarrier use. */
#if defined(__linux__) && defined(SYS_membarrier) && !defined(TACHYON_NO_MEMBARRIER)
#include <linux/membarrier.h>
#define HAVE_MEMBARRIER 1
#endif

#include "bus_impl.h"

/* Can this process use membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)? It
 * needs a registration per process (per mm: a fork child has its own), so
 * the answer is cached with the pid it was obtained in. */
int tachyon_gate_asymmetric_ready(void)
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

/* The shared part of closing. Runs once (the GATE_FINALIZED claim), with no
 * data call inside, so the ring end's private state is ours. */
static TACHYON_COLD void finalize(tachyon_bus *b)
{
	struct tachyon_region_header *hdr = b->hdr;
	/* Acquire: pairs with the release store in fix_role (bus.c), so the
	 * attached ring end is visible (the gate CAS orders it too). */
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
	/* Full fence: the state store above before the wait-word loads of the
	 * claims (store-load), so a peer that went to sleep before seeing
	 * CLOSED is woken: its own fence-then-check pairs with this. */
	tachyon_atomic_fence();
	tachyon_futex_claim_wake(&hdr->consumer_wait);
	tachyon_futex_claim_wake(&hdr->producer_wait);
}

/* Claim finalization if closing is requested and nothing is inside. */
TACHYON_COLD void tachyon_gate_finalize_if_idle(tachyon_bus *b)
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
		 * leave without touching the ring end (tachyon_gate_close). */
		if (b->asym_gate && tachyon_atomic_load_acquire32(&b->inflight))
			return;
		/* seq_cst CAS: exactly one claimer wins. */
		if (tachyon_atomic_cas32(&b->gate, g, g | GATE_FINALIZED)) {
			finalize(b);
			return;
		}
	}
}

TACHYON_COLD int tachyon_gate_enter_slow(tachyon_bus *b)
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

TACHYON_COLD void tachyon_gate_exit_slow(tachyon_bus *b)
{
	for (;;) {
		uint32_t g = tachyon_atomic_load_relaxed32(&b->gate);
		/* seq_cst CAS: releases our ring-end writes to whoever finalizes. */
		if (tachyon_atomic_cas32(&b->gate, g, g & ~GATE_INFLIGHT))
			break;
	}
	tachyon_gate_finalize_if_idle(b);
}

void tachyon_gate_close(tachyon_bus *b)
{
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
			tachyon_gate_finalize_if_idle(b);
			return;
		}
	} else if (!(g & GATE_INFLIGHT)) {
		tachyon_gate_finalize_if_idle(b);
		return;
	}
	/* A call is inside and may be asleep: kick both words. It sees CLOSING,
	 * returns -TACHYON_ECLOSED and finalizes as it leaves. Waking the peer's
	 * word too is harmless (a spurious wake).
	 * Full fence: our CLOSING store before the loads of the wait words
	 * (store-load). The sleeper announces itself on its word, fences, then
	 * loads the gate: either it sees CLOSING, or the claim below sees its
	 * 1, takes it and wakes it. */
	tachyon_atomic_fence();
	tachyon_futex_claim_wake(&b->hdr->consumer_wait);
	tachyon_futex_claim_wake(&b->hdr->producer_wait);
}

/*
 * Per-family call serialization: the wait of a caller that found its
 * family busy, and the wake of such callers (family.h has the fast path).
 */
#include "family.h"

/* A waiter wakes at least every watchdog period to run signal handlers. */
#define LOCK_STEP_NS ((int64_t)TACHYON_WATCHDOG_MS * 1000000)

int tx_family_wait(BusObject *self, int fam, int64_t deadline)
{
	unsigned long me = (unsigned long)pthread_self();
	if (self->owner[fam] == me) {
		/* e.g. a signal handler run from our own wait calls into the bus:
		 * waiting would wait for ourselves */
		PyErr_Format(PyExc_RuntimeError,
		             "re-entrant call: this thread is already inside a %s call of this bus "
		             "(a signal handler or a callback called it again)",
		             fam == FAM_TX ? "producer" : "consumer");
		return -1;
	}
	self->waiters[fam]++;
	for (;;) {
		int64_t step = LOCK_STEP_NS;
		if (deadline != TACHYON_FOREVER) {
			int64_t left = deadline - tachyon_now_ns();
			if (left < 1000000)
				left = 1000000; /* let a holder that waits for the GIL finish */
			if (left < step)
				step = left;
		}
		/* Returns at once when the word is no longer 1, so a release that
		 * cleared it after we dropped the GIL is never missed. A timeout
		 * or EINTR is fine: everything is checked again with the GIL. */
		Py_BEGIN_ALLOW_THREADS
		(void)tachyon_word_wait(&self->busy[fam], 1, step);
		Py_END_ALLOW_THREADS
		if (!self->busy[fam]) {
			self->busy[fam] = 1;
			self->owner[fam] = me;
			break;
		}
		if (PyErr_CheckSignals() < 0)
			goto fail;
		if (self->closed) {
			tx_errctx cx = {.in = TX_IN_FAMILY};
			tx_raise(self->st, -TACHYON_ECLOSED, &cx);
			goto fail;
		}
		if (deadline != TACHYON_FOREVER && tachyon_now_ns() >= deadline) {
			self->waiters[fam]--;
			return -TX_ELATE;
		}
	}
	self->waiters[fam]--;
	tx_slots_apply_deferred(self, fam);
	return 0;
fail:
	self->waiters[fam]--;
	return -1;
}

void tx_family_release_slow(BusObject *self, int fam)
{
	/* A waiter's FUTEX_WAIT compares the word in the kernel, without the
	 * GIL: the release store makes the clear visible there before the
	 * wake, which is what ends that wait. */
	tachyon_word_store(&self->busy[fam], 0);
	tachyon_word_wake_all(&self->busy[fam]);
}

void tx_family_wake_closed(BusObject *self)
{
	/* the waiters see `closed` (set by the caller) as soon as they wake */
	if (self->waiters[FAM_TX])
		tachyon_word_wake_all(&self->busy[FAM_TX]);
	if (self->waiters[FAM_RX])
		tachyon_word_wake_all(&self->busy[FAM_RX]);
}

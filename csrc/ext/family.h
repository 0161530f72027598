/*
 * Layer 3: per-family call serialization.
 *
 * The core lets one call of a family (producer / consumer) into a bus end
 * at a time. The GIL is held from tx_family_enter to tx_family_exit except
 * inside a blocking core call (calls.c), so a flag tested and set with the
 * GIL held serializes the family: no other thread runs between the test and
 * the set. (A PyThread lock cost ~200 instructions per call, a third of a
 * send.) A caller that finds the flag set sleeps on it as a wait word in
 * watchdog-period steps, running signal handlers and noticing close() in
 * between; close() also wakes it.
 *
 * Entering and leaving apply the work deferred to the family's holder
 * (slots.h).
 */
#ifndef TACHYON_EXT_FAMILY_H
#define TACHYON_EXT_FAMILY_H

#include <pthread.h>

#include "errors.h"
#include "slots.h"

/* The slow path of tx_family_enter: the family is busy. */
int tx_family_wait(BusObject *self, int fam, int64_t deadline);
/* Clear the flag for a sleeping waiter (GIL held). */
void tx_family_release_slow(BusObject *self, int fam);
/* Wake the callers waiting for either family: close() was called. */
void tx_family_wake_closed(BusObject *self);

/*
 * Take family fam of self (GIL held). Returns 0: the caller holds it;
 * -1: an exception is set; -TX_ELATE: the deadline passed while another
 * call held it (nothing is set; the caller raises its own timeout).
 */
static inline int tx_family_enter(BusObject *self, int fam, int64_t deadline)
{
	if (TX_LIKELY(!self->busy[fam])) {
		self->busy[fam] = 1;
		self->owner[fam] = (unsigned long)pthread_self();
		tx_slots_apply_deferred(self, fam);
		return 0;
	}
	return tx_family_wait(self, fam, deadline);
}

/* Give family fam back (GIL held). */
static inline void tx_family_exit(BusObject *self, int fam)
{
	tx_slots_apply_deferred(self, fam);
	self->owner[fam] = 0;
	if (TX_LIKELY(self->waiters[fam] == 0))
		self->busy[fam] = 0; /* nobody sleeps on the word: the GIL orders it */
	else
		tx_family_release_slow(self, fam);
}

#endif /* TACHYON_EXT_FAMILY_H */

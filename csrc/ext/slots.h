/*
 * Layer 2: what a bus end holds back from the core until Python lets go.
 *
 * Consumer: received slots not yet released. Slots with live holders
 * (guards, memoryviews, DLPack tensors) sit in a queue in ring order with a
 * count of holders; the longest prefix without holders is given back with
 * tachyon_bus_release_to. Producer: a zero-copy reservation whose guard is
 * gone is rolled back.
 *
 * Both must run while no other call of their family is inside the core.
 * With the GIL held and the family free (busy[fam] clear, see ext.h) they
 * run at once; otherwise a flag defers them to the family's holder, which
 * applies them with tx_slots_apply_deferred on its way in or out
 * (family.h) or while it waits (calls.c).
 * A release deferred to a holder of another thread that is waiting in the
 * core also asks that wait to look up at once (tachyon_bus_interrupt), so
 * the tail is published within microseconds, not at the watchdog tick.
 */
#ifndef TACHYON_EXT_SLOTS_H
#define TACHYON_EXT_SLOTS_H

#include "ext.h"

/* Grow the queue; 0, or -1 with MemoryError. */
int tx_slots_grow(BusObject *self);

/* Append a slot ending at `end` with refs holders; its sequence number goes
 * to *seq. 0, or -1 with MemoryError. GIL held, RX family held. */
static inline int tx_slots_push(BusObject *self, uint64_t end, uint32_t refs, uint64_t *seq)
{
	if (TX_UNLIKELY(self->q_len == self->q_cap) && tx_slots_grow(self) < 0)
		return -1;
	self->q[(self->q_start + self->q_len) & (self->q_cap - 1)] = (tx_pending){end, refs};
	*seq = self->q_seq + self->q_len;
	self->q_len++;
	return 0;
}

/* One more / one fewer holder of entry seq (GIL held, any family state). */
void tx_slot_incref(BusObject *self, uint64_t seq);
void tx_slot_decref(BusObject *self, uint64_t seq);

/* Give back the longest released prefix. RX family held, or free. */
void tx_slots_flush_locked(BusObject *self);

/* Roll back the open reservation whose guard is gone. TX family held, or free. */
void tx_rollback_locked(BusObject *self);
/* Roll back now if the TX family is free, else when it is next entered or left. */
void tx_rollback_soon(BusObject *self);

/* Apply what was deferred to the holder of family fam (held by the caller). */
static inline void tx_slots_apply_deferred(BusObject *self, int fam)
{
	if (fam == FAM_RX) {
		if (TX_UNLIKELY(self->rx_release_pending))
			tx_slots_flush_locked(self);
	} else {
		if (TX_UNLIKELY(self->tx_rollback_pending))
			tx_rollback_locked(self);
	}
}

#endif /* TACHYON_EXT_SLOTS_H */

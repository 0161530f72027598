/*
 * Received slots not yet released, and the deferred rollback of an
 * abandoned reservation (see slots.h for when each runs).
 */
#include <pthread.h>

#include "slots.h"

int tx_slots_grow(BusObject *self)
{
	size_t ncap = self->q_cap ? self->q_cap * 2 : 64, i;
	tx_pending *nq = PyMem_Malloc(ncap * sizeof *nq);
	if (!nq) {
		PyErr_NoMemory();
		return -1;
	}
	for (i = 0; i < self->q_len; i++)
		nq[i] = self->q[(self->q_start + i) & (self->q_cap - 1)];
	PyMem_Free(self->q);
	self->q = nq;
	self->q_cap = ncap;
	self->q_start = 0;
	return 0;
}

static tx_pending *slot_at(BusObject *self, uint64_t seq)
{
	uint64_t idx = seq - self->q_seq;
	if (idx >= self->q_len)
		return NULL; /* cannot happen: holders keep their entry */
	return &self->q[(self->q_start + idx) & (self->q_cap - 1)];
}

void tx_slot_incref(BusObject *self, uint64_t seq)
{
	tx_pending *e = slot_at(self, seq);
	if (e)
		e->refs++;
}

void tx_slots_flush_locked(BusObject *self)
{
	uint64_t end = 0;
	uint32_t n = 0;
	self->rx_release_pending = 0;
	while (self->q_len && self->q[self->q_start].refs == 0) {
		end = self->q[self->q_start].end;
		self->q_start = (self->q_start + 1) & (self->q_cap - 1);
		self->q_len--;
		self->q_seq++;
		n++;
	}
	/* After close or in a forked child nothing shared is written. These
	 * are zero-copy releases, often long after the read: a producer may be
	 * waiting for exactly these bytes, so the tail is published (and a
	 * sleeping producer woken) at once rather than at the next batch. */
	if (n && !self->closed && !tachyon_bus_forked(self->bus) &&
	    tachyon_bus_release_to(self->bus, end, n) == 0)
		(void)tachyon_bus_publish_release(self->bus);
}

/* The family is busy: leave the release to its holder. Out of line, so the
 * common path of tx_slot_decref stays as small as it was. */
static __attribute__((noinline, cold)) void defer_release(BusObject *self)
{
	if (self->rx_release_pending)
		return; /* already asked: the holder flushes everything at once */
	self->rx_release_pending = 1;
	/* The holder is another thread; as we hold the GIL it is (or is about
	 * to be) waiting in the core, the one place it lets the GIL go. Ask
	 * that wait to run its callback now, which applies the release
	 * (calls.c), instead of at its watchdog tick; the request stays until
	 * a wait sees it. A holder that is this thread applies it on its way
	 * out. */
	if (self->owner[FAM_RX] != (unsigned long)pthread_self())
		tachyon_bus_interrupt(self->bus);
}

void tx_slot_decref(BusObject *self, uint64_t seq)
{
	tx_pending *e = slot_at(self, seq);
	if (!e || e->refs == 0)
		return;
	if (--e->refs != 0 || seq != self->q_seq)
		return;
	/* GIL held and the flush never lets it go: with no consumer call
	 * inside, nothing else can touch the consumer end meanwhile. In a
	 * forked child the flush only pops (it writes nothing shared), so it
	 * need not wait for the family. */
	if (!self->busy[FAM_RX] || tachyon_bus_forked(self->bus))
		tx_slots_flush_locked(self);
	else
		defer_release(self);
}

void tx_rollback_locked(BusObject *self)
{
	self->tx_rollback_pending = 0;
	if (!tachyon_bus_forked(self->bus))
		tachyon_bus_rollback(self->bus);
}

void tx_rollback_soon(BusObject *self)
{
	if (tachyon_bus_forked(self->bus))
		return;
	/* as in tx_slot_decref: GIL held, the rollback never lets it go */
	if (!self->busy[FAM_TX])
		tx_rollback_locked(self);
	else
		self->tx_rollback_pending = 1;
}

/*
 * What a bus can be asked without changing it: stats, capacity, the largest
 * payload, the peer's pid and liveness, why the ring went fatal.
 */
#include <errno.h>
#include <string.h>

#include "bus_impl.h"
#include "shared.h"

int tachyon_bus_stats(tachyon_bus *b, tachyon_stats *out)
{
	if (!b || !out)
		return -EINVAL;
	if (bus_forked(b))
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
	/* A consumer reading position stamps may publish a tail a little ahead
	 * of the published head (ABI.md, "Position stamps"): nothing in use. */
	if (tail - head - 1 < b->region.capacity)
		used = 0;
	out->bytes_in_use = used > b->region.capacity ? b->region.capacity : used;
	/* Acquire: pairs with the release store of the role (and then the
	 * consumer exits' release stores of the count). */
	out->role = (int)tachyon_atomic_load_acquire32(&b->role);
	out->bytes_pinned = out->role == TACHYON_ROLE_CONSUMER ? tachyon_atomic_load_acquire64(&b->pinned) : 0;
	out->consumer_wait = tachyon_atomic_load_relaxed32(&hdr->consumer_wait);
	out->state = tachyon_atomic_load_relaxed32(&hdr->state);
	out->lost_wakeups = tachyon_atomic_load_relaxed64(&b->lost_wakeups);
	/* Relaxed: display counters (ABI.md, "Traffic counters"); nothing is
	 * read through them, and a peer may write anything there. */
	out->sent_messages = tachyon_atomic_load_relaxed64(&hdr->sent_messages);
	out->sent_bytes = tachyon_atomic_load_relaxed64(&hdr->sent_bytes);
	out->received_messages = tachyon_atomic_load_relaxed64(&hdr->received_messages);
	out->received_bytes = tachyon_atomic_load_relaxed64(&hdr->received_bytes);
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

const char *tachyon_bus_fatal_reason(const tachyon_bus *b)
{
	if (!b)
		return NULL;
	/* Acquire: pairs with fix_role's release store; the end is attached.
	 * The reason is written once, by the data call that made the ring
	 * fatal, before it returned -TACHYON_ECORRUPT to its caller. */
	switch (tachyon_atomic_load_acquire32(&b->role)) {
	case TACHYON_ROLE_PRODUCER:
		if (!b->end.prod.fatal)
			return NULL;
		/* A second writer of head. Our peer cannot be one: its producer
		 * claim would have been refused (ABI.md, "Roles"). A 0.5.1 peer
		 * claims nothing, and the likeliest second writer is that peer
		 * sending too. */
		if (b->end.prod.fatal_reason == tachyon_reason_foreign_head && !bus_peer_is_ours(b))
			return "the other end also sends on this bus (a tachyon-ipc 0.5.1 peer, which "
			       "claims no role); a bus carries one direction: open a second bus for "
			       "replies";
		return b->end.prod.fatal_reason;
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
	if (bus_forked(b))
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

int tachyon_bus_unreleased(tachyon_bus *b, uint64_t *bytes, uint64_t *messages)
{
	if (!b || !bytes || !messages)
		return -EINVAL;
	*bytes = *messages = 0;
	if (bus_forked(b))
		return -TACHYON_EFORKED;
	/* Acquire, as in stats: the producer end is attached once the role
	 * says so; its ring pointer and capacity never change after. */
	if (tachyon_atomic_load_acquire32(&b->role) != TACHYON_ROLE_PRODUCER)
		return -EINVAL;
	const tachyon_producer *p = &b->end.prod;
	uint64_t cap = p->capacity, mask = cap - 1;
	/* The committed head, not the published one: a consumer reading
	 * position stamps may have taken (and released) slots not yet
	 * published. Our own end's state, and no producer call runs meanwhile
	 * (the caller's promise). Acquire tail: pairs with the consumer's
	 * release store of it; the slots from tail on are not its to reuse, so
	 * the headers read below are the ones we wrote. */
	uint64_t head = p->head;
	uint64_t tail = tachyon_atomic_load_acquire64(&b->hdr->tail);
	uint64_t used = head - tail;
	if (used > cap || (tail & (TACHYON_MSG_ALIGNMENT - 1)) != 0)
		return -ENODATA; /* a tail no honest consumer writes: nothing adds up */
	*bytes = used;
	if (!bus_peer_is_ours(b))
		return -ENODATA;
	uint64_t n = 0;
	for (uint64_t pos = tail; pos != head;) {
		const struct tachyon_slot_header *h =
		        (const struct tachyon_slot_header *)(const void *)(p->ring + (pos & mask));
		uint64_t step;
		if (TACHYON_SLOT_LOAD32(h, size) == TACHYON_SKIP) {
			step = cap - (pos & mask); /* padding runs to the end of the lap */
		} else {
			step = TACHYON_SLOT_LOAD32(h, reserved_size);
			n++;
		}
		/* Each header is loaded once and the step checked before use, so
		 * the walk ends within head - tail whatever the ring holds. */
		if (step < TACHYON_MSG_ALIGNMENT || (step & (TACHYON_MSG_ALIGNMENT - 1)) != 0 ||
		    step > head - pos)
			return -ENODATA;
		pos += step;
	}
	*messages = n;
	return 0;
}

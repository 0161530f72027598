/*
 * Waiting outside the gate: for a message on any of several buses
 * (tachyon_bus_wait_any), and for room on one producer end
 * (tachyon_bus_wait_room, at the end of this file).
 *
 * Unlike recv's wait (wait.c) this never enters a bus's gate and never
 * takes a message: it only asks whether a receive would return at once,
 * from the shared words and the read cursor the last consumer call left
 * (read_pos, published on its way out). So another thread may receive on
 * the same buses meanwhile (an event loop taking the message a waiter
 * thread saw arrive) and neither gets -EBUSY; a waiter that is abandoned
 * half way loses nothing, because it holds nothing.
 *
 * Each round: the deadline and the caller's interrupt callback; then a spin
 * (a chunk of pauses, looking at every ring after each); once the spin
 * budget is spent, a sleep on all the consumer wait words at once, with the
 * protocol of ABI.md "Publication and waking" on each word: CAS 0 -> 1,
 * one full fence for all of them, look at every ring again, then sleep;
 * CAS 1 -> 0 on each on waking. Any producer that publishes into one of the
 * rings after our look sees our 1 and wakes us; one that published before
 * it is seen by the look.
 *
 * The sleep is futex_waitv(2) (Linux 5.16+) over every word. Where it is
 * missing, it sleeps on one word at a time in rotation, in slices that
 * start at 50 us and double up to 1 ms while nothing comes, so a message
 * on a bus whose word is not the one slept on waits at most one slice
 * (a single bus needs no slices: its word is always the one).
 *
 * Peer liveness: every watchdog period (and before the first sleep) each
 * bus's pidfd is polled; a death found sets the bus's sticky flag, after
 * which a receive reports it at once, so the bus counts as ready.
 */
#include <errno.h>

#include "bus_impl.h"
#include "shared.h"

#define SPIN_CHUNK 256u
/* The fallback's slices (one word slept on, the others looked at between
 * slices), and the nap when a word holds a value the protocol never
 * writes (we cannot announce a sleep there, so we look every so often). */
#define SLICE_MIN_NS INT64_C(50000)
#define SLICE_MAX_NS INT64_C(1000000)
#define NAP_NS INT64_C(1000000)

/* Marks in ready[] while a sleep is set up: this bus's word carries our 1.
 * The array is the caller's; every entry is 0 or 1 again before we return. */
#define ANNOUNCED 2u

static inline int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Would a receive on b return at once? Outside the gate: shared words and
 * read_pos only, nothing of the ring end's private state. */
static int probe(tachyon_bus *b)
{
	if (bus_is_closing(b))
		return 1;
	/* Relaxed: the sticky flag carries no data. */
	if (tachyon_atomic_load_relaxed32(&b->peer_dead))
		return 1;
	struct tachyon_region_header *hdr = b->hdr;
	/* Acquire: pairs with the peer's (or a close's) CAS that left READY;
	 * any other value is something a receive reports at once (a drain to
	 * finish, the peer's close, a fatal ring). */
	if (tachyon_atomic_load_acquire32(&hdr->state) != TACHYON_STATE_READY)
		return 1;
	/* Relaxed: see bus_publish_read_pos. */
	uint64_t read = tachyon_atomic_load_relaxed64(&b->read_pos);
	/* Acquire: pairs with the producer's release store of head, so the
	 * slot header loaded below is the one it wrote before publishing. */
	uint64_t head = tachyon_atomic_load_acquire64(&hdr->head);
	/* Nothing published beyond read. read may be ahead of head: a
	 * consumer reading position stamps takes slots before their head is
	 * published (ABI.md, "Position stamps"), and the producer publishes
	 * that head at the latest when it flushes. */
	uint64_t cap = b->region.capacity;
	if (head - read - 1 >= cap)
		return 0;
	/* A lone SKIP (padding up to the end of the lap and nothing after it,
	 * which a 0.5.1 producer may publish) is an empty ring to a receive.
	 * read is our own multiple of 64, so the header lies inside the ring.
	 * Any other difference, even an impossible one, is for the receive to
	 * deliver or to reject. */
	uint64_t off = read & (cap - 1);
	if (off != 0 && head - read == cap - off) {
		const struct tachyon_slot_header *sh =
		        (const void *)((const uint8_t *)hdr + TACHYON_REGION_HEADER_SIZE + off);
		/* Relaxed: ordered by the acquire load of head above; the value
		 * only chooses whether to look again. */
		if (tachyon_atomic_load_relaxed32(&sh->size) == TACHYON_SKIP)
			return 0;
	}
	return 1;
}

/* Fill ready[] from one look at every bus; the number ready. */
static int probe_all(tachyon_bus *const *buses, size_t n, uint8_t *ready)
{
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		ready[i] = (uint8_t)probe(buses[i]);
		count += ready[i];
	}
	return count;
}

/* Take our 1 back from every word that carries it. */
static void unannounce(tachyon_bus *const *buses, size_t n, uint8_t *ready)
{
	for (size_t i = 0; i < n; i++) {
		if (ready[i] != ANNOUNCED)
			continue;
		/* seq_cst CAS 1 -> 0: awake again; fails when a producer (or a
		 * close) claimed the wake, or a 0.5.1 producer stored 0 itself. */
		(void)tachyon_atomic_cas32(&buses[i]->hdr->consumer_wait, TACHYON_WAIT_SLEEPING,
		                           TACHYON_WAIT_AWAKE);
		ready[i] = 0;
	}
}

/* What one sleep did. */
enum { LOOK = 0, SLEPT = 1, SPIN_INSTEAD = 2 };

typedef struct {
	tachyon_wait w;
	unsigned rotation;       /* fallback: which word to sleep on next */
	int64_t slice;           /* fallback: the next slice's length */
} multi;

/* One sleep of at most timeout ns (> 0) on every bus's word: LOOK (a ring
 * is ready, look now), SLEPT, SPIN_INSTEAD (a word says pure spin: that
 * consumer never sleeps, and neither do we), or -EINTR. */
static int sleep_any(tachyon_bus *const *buses, size_t n, uint8_t *ready, int64_t timeout,
                     multi *m)
{
	int spin_only = 0, unannounced = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t *word = &buses[i]->hdr->consumer_wait;
		ready[i] = 0;
		/* seq_cst CAS 0 -> 1: announces the sleep to that ring's producer,
		 * whose fence-then-load of the word after publishing head pairs
		 * with it (and the fence below). */
		if (tachyon_atomic_cas32(word, TACHYON_WAIT_AWAKE, TACHYON_WAIT_SLEEPING)) {
			ready[i] = ANNOUNCED;
			continue;
		}
		/* Relaxed: we only decide how to wait. */
		uint32_t v = tachyon_atomic_load_relaxed32(word);
		if (v == TACHYON_WAIT_SLEEPING)
			ready[i] = ANNOUNCED; /* left over, or another waiter's: sleep on it too */
		else if (v == TACHYON_WAIT_PURE_SPIN)
			spin_only = 1;
		else
			unannounced = 1; /* not a protocol value: look every NAP_NS */
	}
	/* Full fence: every announcement above before the looks below
	 * (store-load); each producer's store of head, fence, load of its word
	 * is the mirror image, so for every ring one of us sees the other. A
	 * close stores CLOSING, fences and claims the word the same way. */
	tachyon_atomic_fence();
	int found = 0;
	for (size_t i = 0; i < n && !found; i++)
		found = probe(buses[i]);
	if (found || spin_only) {
		unannounce(buses, n, ready);
		return found ? LOOK : SPIN_INSTEAD;
	}
	if (unannounced)
		timeout = min64(timeout, NAP_NS);

	uint32_t *words[TACHYON_FUTEX_WAIT_ANY_MAX];
	uint32_t expect[TACHYON_FUTEX_WAIT_ANY_MAX];
	size_t k = 0, first = n;
	for (size_t i = 0; i < n; i++) {
		if (ready[i] != ANNOUNCED)
			continue;
		if (first == n)
			first = i;
		if (k < TACHYON_FUTEX_WAIT_ANY_MAX) {
			words[k] = &buses[i]->hdr->consumer_wait;
			expect[k] = TACHYON_WAIT_SLEEPING;
		}
		k++;
	}
	int r;
	if (k == 0) {
		r = tachyon_nap(timeout);
	} else if (k == 1) {
		/* One word (one bus, or the only one announceable): the plain
		 * single-word sleep, the same latency as recv's. */
		r = tachyon_futex_wait(&buses[first]->hdr->consumer_wait, TACHYON_WAIT_SLEEPING, timeout);
	} else if ((r = tachyon_futex_wait_any(words, expect, k, timeout)) == -ENOSYS) {
		/* Fallback: one announced word, in rotation, for one slice. */
		size_t pick = m->rotation++ % k, i;
		for (i = 0; i < n; i++)
			if (ready[i] == ANNOUNCED && pick-- == 0)
				break;
		r = tachyon_futex_wait(&buses[i]->hdr->consumer_wait, TACHYON_WAIT_SLEEPING,
		                       min64(timeout, m->slice));
		m->slice = min64(2 * m->slice, SLICE_MAX_NS);
	}
	unannounce(buses, n, ready);
	if (r == -EINTR && tachyon_wait_eintr(&m->w) < 0)
		return -EINTR;
	return SLEPT;
}

/* Poll every bus's pidfd (a death found sets its sticky flag). */
static void poll_peers(tachyon_bus *const *buses, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!bus_is_closing(buses[i]))
			(void)tachyon_wait_poll_peer(buses[i]);
}

/* Make every bus a consumer end we may look at: 0 or a -errno. */
static int check_buses(tachyon_bus *const *buses, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tachyon_bus *b = buses[i];
		if (!b)
			return -EINVAL;
		if (bus_forked(b))
			return -TACHYON_EFORKED;
		/* Acquire: a role fixed by another thread comes with read_pos
		 * (fix_role publishes it before the role). */
		uint32_t role = tachyon_atomic_load_acquire32(&b->role);
		if (role == TACHYON_ROLE_PRODUCER)
			return -TACHYON_EROLE;
		if (role == TACHYON_ROLE_NONE) {
			int r = tachyon_bus_set_role(b, TACHYON_ROLE_CONSUMER);
			/* A bus closed before it had a role is ready (probe looks at
			 * the gate first and never reaches read_pos). */
			if (r < 0 && r != -TACHYON_ECLOSED)
				return r;
		}
	}
	return 0;
}

int tachyon_bus_wait_any(tachyon_bus *const *buses, size_t n, uint8_t *ready, const tachyon_wait *w)
{
	if (!buses || !ready || n == 0)
		return -EINVAL;
	int r = check_buses(buses, n);
	if (r < 0)
		return r;
	int count = probe_all(buses, n, ready);
	if (count)
		return count;

	int64_t now = tachyon_now_ns();
	multi m = {
		.w = tachyon_wait_resolved(w),
		.rotation = 0,
		.slice = SLICE_MIN_NS,
	};
	int64_t last_check = now, last_peer_poll = 0;
	uint32_t spun = 0;
	int polled = 0;

	for (;;) {
		/* The callback by the clock only (at least every watchdog period,
		 * and after an EINTR in sleep_any): the fallback's slices are far
		 * shorter, and each call of a binding's callback may take a lock. */
		r = tachyon_wait_check(&m.w, now, &last_check, 0);
		if (r < 0)
			return r;
		if (spun < m.w.spin) {
			uint32_t chunk = (uint32_t)min64(SPIN_CHUNK, m.w.spin - spun);
			spun += chunk;
			for (uint32_t i = 0; i < chunk; i++) {
				tachyon_cpu_relax();
				if ((count = probe_all(buses, n, ready)) != 0)
					return count;
			}
		} else {
			if (!polled || now - last_peer_poll >= TACHYON_WATCHDOG_NS) {
				poll_peers(buses, n);
				polled = 1;
				last_peer_poll = now;
				if ((count = probe_all(buses, n, ready)) != 0)
					return count;
			}
			int64_t timeout = tachyon_time_left(m.w.deadline_ns, now, TACHYON_WATCHDOG_NS);
			if (timeout > 0) {
				r = sleep_any(buses, n, ready, timeout, &m);
				if (r < 0)
					return r;
				if (r == SPIN_INSTEAD)
					spun = 0;
			}
			if ((count = probe_all(buses, n, ready)) != 0) {
				m.slice = SLICE_MIN_NS;
				return count;
			}
		}
		now = tachyon_now_ns();
	}
}

/* ------------------------------------------------------------------------ */
/* waiting for room, outside the gate                                        */

/* Would a send of max_payload bytes on producer end b find room now (or
 * report something at once: a close, the peer's close or death, a broken
 * ring, a payload that can never fit)? Outside the gate: the shared words
 * only. head is the one our own producer published; a send that found no
 * room published everything first, so it is the producer's own head then
 * (an older one only makes the answer "room" early, and the send that
 * follows publishes and asks again). */
static int probe_room(tachyon_bus *b, size_t max_payload)
{
	if (bus_is_closing(b))
		return 1;
	/* Relaxed: the sticky flag carries no data. */
	if (tachyon_atomic_load_relaxed32(&b->peer_dead))
		return 1;
	struct tachyon_region_header *hdr = b->hdr;
	/* Acquire: as in probe(); any value but READY is reported by a send. */
	if (tachyon_atomic_load_acquire32(&hdr->state) != TACHYON_STATE_READY)
		return 1;
	uint64_t cap = b->region.capacity;
	const uint64_t hdr_size = sizeof(struct tachyon_slot_header), align = TACHYON_MSG_ALIGNMENT;
	if (max_payload > cap - hdr_size)
		return 1; /* never fits: the send says so */
	uint64_t slot = (hdr_size + (uint64_t)max_payload + align - 1) & ~(align - 1);
	/* Relaxed: our own producer's word; only its value is used. */
	uint64_t head = tachyon_atomic_load_relaxed64(&hdr->head);
	/* Acquire: pairs with the consumer's release store of tail (nothing is
	 * read through it here, but the send that follows must see no older
	 * tail than we did). */
	uint64_t tail = tachyon_atomic_load_acquire64(&hdr->tail);
	uint64_t off = head & (cap - 1), pad = 0;
	if (slot > cap - off) {
		if (slot > off)
			return 1; /* never fits at this offset: the send says so */
		pad = cap - off;
	}
	if (head - tail > cap || (tail & (align - 1)) != 0)
		return 1; /* a tail no honest consumer writes: the send reports it */
	return head - tail + pad + slot <= cap;
}

/* One sleep for room: on the producer wait word when our consumer is at the
 * other end (its release publication wakes us, wait.c's protocol), else a
 * nap that doubles from 50 us up to 1 ms (a 0.5.1 consumer wakes nobody).
 * 1 when a look after announcing found room, else 0 or -EINTR. */
static int sleep_room(tachyon_bus *b, size_t max_payload, int64_t timeout, int64_t *nap)
{
	if (!bus_peer_is_ours(b)) {
		int r = tachyon_nap(min64(timeout, *nap));
		*nap = min64(2 * *nap, SLICE_MAX_NS);
		return r == -EINTR ? r : 0;
	}
	uint32_t *word = &b->hdr->producer_wait;
	/* Release store of 1, full fence, look again: wait.c's sleep_for_room.
	 * Only our producer side writes 1 here; the sending thread never
	 * sleeps on it while this waits (its sends do not wait). */
	tachyon_atomic_store_release32(word, TACHYON_WAIT_SLEEPING);
	tachyon_atomic_fence();
	int r = 1;
	if (!probe_room(b, max_payload))
		r = tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, timeout) == -EINTR ? -EINTR : 0;
	/* seq_cst CAS 1 -> 0: awake again (fails when the consumer or a close
	 * claimed the wake). */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
	return r;
}

int tachyon_bus_wait_room(tachyon_bus *b, size_t max_payload, const tachyon_wait *w)
{
	if (!b)
		return -EINVAL;
	if (bus_forked(b))
		return -TACHYON_EFORKED;
	/* Acquire: a role fixed by another thread. */
	uint32_t role = tachyon_atomic_load_acquire32(&b->role);
	if (role == TACHYON_ROLE_CONSUMER)
		return -TACHYON_EROLE;
	if (role == TACHYON_ROLE_NONE) {
		int r = tachyon_bus_set_role(b, TACHYON_ROLE_PRODUCER);
		if (r < 0 && r != -TACHYON_ECLOSED)
			return r;
	}
	if (probe_room(b, max_payload))
		return 1;

	int64_t now = tachyon_now_ns();
	const int64_t start = now;
	tachyon_wait ww = tachyon_wait_resolved(w);
	int64_t last_check = now, last_peer_poll = 0, nap = SLICE_MIN_NS;
	uint32_t spun = 0;
	int polled = 0;

	for (;;) {
		int r = tachyon_wait_check(&ww, now, &last_check, 0);
		if (r < 0)
			return r;
		if (spun < ww.spin) {
			uint32_t chunk = (uint32_t)min64(SPIN_CHUNK, ww.spin - spun);
			spun += chunk;
			for (uint32_t i = 0; i < chunk; i++) {
				tachyon_cpu_relax();
				if (probe_room(b, max_payload))
					return 1;
			}
		} else {
			if (!polled || now - last_peer_poll >= TACHYON_WATCHDOG_NS) {
				if (!bus_is_closing(b))
					(void)tachyon_wait_poll_peer(b);
				polled = 1;
				last_peer_poll = now;
				if (probe_room(b, max_payload))
					return 1;
			}
			/* A 0.5.1 consumer asleep while we lack room: it frees room
			 * only every 32 messages and never will (wait.c, check_stuck). */
			if (!bus_peer_is_ours(b) && now - start > TACHYON_WATCHDOG_NS &&
			    tachyon_atomic_load_relaxed32(&b->hdr->consumer_wait) == TACHYON_WAIT_SLEEPING)
				return -TACHYON_ESTUCK;
			int64_t timeout = tachyon_time_left(ww.deadline_ns, now, TACHYON_WATCHDOG_NS);
			if (timeout > 0 && (r = sleep_room(b, max_payload, timeout, &nap)) != 0) {
				if (r < 0 && tachyon_wait_eintr(&ww) < 0)
					return -EINTR;
				if (r > 0 && probe_room(b, max_payload))
					return 1;
			}
			if (probe_room(b, max_payload))
				return 1;
		}
		now = tachyon_now_ns();
	}
}

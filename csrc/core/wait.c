/*
 * Waiting on a bus: the one loop a blocked recv and a blocked reserve both
 * run, and the two sleep protocols it drives.
 *
 * Each round of the loop, in this order: a close ends the wait; the peer's
 * death ends it (after what was published before the death); the deadline
 * ends it; the caller's interrupt callback may end it. Then it spins (a
 * chunk of pauses, trying the ring after each), and once the spin budget is
 * spent it sleeps once and tries again. What differs between the two sides
 * is what "try" means, how a sleep is announced, and a few rules, all in a
 * `side` below; the loop itself is written once and instantiated for each
 * side (always_inline with a constant side: no indirect calls remain).
 *
 * The sleep protocols are ABI.md's "Publication and waking": announce on a
 * wait word, fence, look once more, then FUTEX_WAIT on the word; the other
 * side publishes, fences, and claims the wake (tachyon_futex_claim_wake).
 *
 * Another thread of this process may ask a waiting call to consult its
 * interrupt callback now (tachyon_bus_interrupt, at the end of this file):
 * it raises the bus's interrupt word and claims the wake of the word this
 * end sleeps on, by the same protocol as a publication.
 */
#include <errno.h>

#include "bus_impl.h"

/* Pause iterations between two clock reads while spinning. */
#define SPIN_CHUNK 256u
/* A producer waiting for room sleeps 50 us first, doubling up to 1 ms
 * (nanosleep, a 0.5.1 consumer never wakes us) or up to the watchdog
 * (futex on the producer wait word, which our consumer wakes). */
#define ROOM_BACKOFF_MIN_NS INT64_C(50000)
#define ROOM_BACKOFF_MAX_NS INT64_C(1000000)
/* R6: how long a timed-out sleeper gives a late producer to claim its wake. */
#define LOST_WAKE_GRACE_NS INT64_C(1000000)

/* What one sleep did, when it did not end the wait. Below -TACHYON_MAX_ERRNO,
 * so never a -errno, and negative, so never a count. */
enum sleep_outcome {
	SLEPT_ON_WORD = -0x10000, /* slept on the wait word: check the peer and the caller at once */
	NAPPED = -0x10001,        /* a short timed nap nobody can cut: check by the clock */
	SPIN_INSTEAD = -0x10002,  /* the word says pure spin: spin a chunk, never sleep */
};
_Static_assert(-0x10002 < -TACHYON_MAX_ERRNO, "sleep outcomes never equal a -errno");

static inline int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* Has another thread asked for an early look at the callback? Peeking does
 * not take the request (the loop's next round does), so a sleep that finds
 * it returns and the round after the sleep asks the callback. */
static inline int interrupt_asked(const tachyon_bus *b)
{
	/* Relaxed: the request carries no data (the asker's own state is
	 * shared through the caller's lock). A sleeper reads it after its
	 * announcement and full fence, which is what orders it. */
	return tachyon_atomic_load_relaxed32(&b->interrupt) != 0;
}

/* Take a pending request: 1 when there was one. */
static inline int interrupt_take(tachyon_bus *b)
{
	if (__builtin_expect(!interrupt_asked(b), 1))
		return 0;
	/* seq_cst CAS 1 -> 0: one round takes one request; a request made
	 * after it is a new 0 -> 1 and is seen by the next round. */
	return tachyon_atomic_cas32(&b->interrupt, 1, 0);
}

/* The caller's terms with the defaults filled in. */
typedef struct waiter {
	tachyon_wait w;         /* deadline, callback; spin is never 0 here */
	int64_t start;
	int64_t last_check;     /* last call of the interrupt callback */
} waiter;

/* A sleep's result when the futex or the nap said EINTR: what the caller's
 * terms say (go on as after any such sleep, or stop). */
static int after_sleep(int rc, const waiter *wt, int outcome)
{
	if (rc == -EINTR && (rc = tachyon_wait_eintr(&wt->w)) < 0)
		return rc;
	return outcome;
}

/* One side of the bus. Every hook is called inside the gate. */
struct side {
	/* Try the ring once: a result (>= 0 or an error), or -EAGAIN. */
	int (*attempt)(tachyon_bus *b, void *arg);
	/* One sleep of at most timeout ns (> 0): a result that ends the wait
	 * (a try after announcing found one, a close, -EINTR), or a
	 * sleep_outcome. */
	int (*sleep)(tachyon_bus *b, void *arg, int64_t timeout, const waiter *wt);
	/* A check of its own after the caller's (NULL: none): 0 or an error. */
	int (*check)(tachyon_bus *b, const waiter *wt, int64_t now);
	int deadline_rc;        /* returned when the deadline passes */
	int drain_on_death;     /* a dead peer's published messages come first */
	int obeys_pure_spin;    /* the bus's polling mode applies to this side */
	int64_t first_sleep_ns; /* the first sleep's length; it doubles after each */
};

/* Spin n pauses, trying after each; -EAGAIN when nothing came. */
static inline int spin(tachyon_bus *b, const struct side *s, void *arg, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		tachyon_cpu_relax();
		int r = s->attempt(b, arg);
		if (r != -EAGAIN)
			return r;
		if (bus_is_closing(b))
			return -TACHYON_ECLOSED;
	}
	return -EAGAIN;
}

/* The loop. Inside the gate, after a first try said -EAGAIN. */
static inline __attribute__((always_inline)) int wait_loop(tachyon_bus *b, const struct side *s,
                                                           void *arg, const tachyon_wait *w)
{
	int64_t now = tachyon_now_ns();
	waiter wt = {
		.w = tachyon_wait_resolved(w),
		.start = now,
		.last_check = now,
	};
	int64_t sleep_ns = s->first_sleep_ns;
	uint32_t spun = 0;
	int woke = 0;

	for (;;) {
		if (bus_is_closing(b))
			return -TACHYON_ECLOSED;
		int asked = interrupt_take(b);
		int r = bus_check_peer(b, now, woke);
		if (r < 0) {
			if (!s->drain_on_death)
				return tachyon_wait_peer_gone(b);
			/* Everything published before the death first. */
			r = s->attempt(b, arg);
			return r == -EAGAIN ? -TACHYON_EPEERDEAD : r;
		}
		r = tachyon_wait_check(&wt.w, now, &wt.last_check, woke || asked);
		if (r == -ETIMEDOUT)
			return s->deadline_rc;
		if (r < 0)
			return r;
		if (s->check && (r = s->check(b, &wt, now)) < 0)
			return r;
		woke = 0;

		/* Relaxed: the mode only chooses how we wait. */
		int pure = s->obeys_pure_spin && tachyon_atomic_load_relaxed32(&b->pure_spin) != 0;
		if (spun < wt.w.spin || pure) {
			uint32_t n = pure ? 4 * SPIN_CHUNK : (uint32_t)min64(SPIN_CHUNK, wt.w.spin - spun);
			spun += n;
			r = spin(b, s, arg, n);
			if (r != -EAGAIN)
				return r;
		} else {
			int64_t timeout = tachyon_time_left(wt.w.deadline_ns, now, sleep_ns);
			if (timeout > 0) {
				r = s->sleep(b, arg, timeout, &wt);
				if (r == SPIN_INSTEAD) {
					r = spin(b, s, arg, 4 * SPIN_CHUNK);
					if (r != -EAGAIN)
						return r;
				} else if (r != SLEPT_ON_WORD && r != NAPPED) {
					return r;
				}
				/* After a sleep on the word (up to the watchdog) check at
				 * once; after a short nap, by the clock. */
				woke = r == SLEPT_ON_WORD;
				sleep_ns = min64(2 * sleep_ns, r == NAPPED ? ROOM_BACKOFF_MAX_NS : TACHYON_WATCHDOG_NS);
			}
			r = s->attempt(b, arg);
			if (r != -EAGAIN)
				return r;
		}
		now = tachyon_now_ns();
	}
}

/* ------------------------------------------------------------------------ */
/* the peer                                                                  */

TACHYON_SLOW int tachyon_wait_poll_peer(tachyon_bus *b)
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

TACHYON_COLD int tachyon_wait_peer_gone(const tachyon_bus *b)
{
	/* Acquire: pairs with the peer's close, a CAS to 3 made after its last
	 * publication; the word never leaves 3, so a death seen afterwards (or
	 * a stats read that noticed it) cannot make the close untrue. */
	uint32_t state = tachyon_atomic_load_acquire32(&b->hdr->state);
	return state == TACHYON_STATE_CLOSED ? -TACHYON_EPEERCLOSED : -TACHYON_EPEERDEAD;
}

/* ------------------------------------------------------------------------ */
/* the consumer side: waiting for a message                                  */

struct msg_arg {
	tachyon_msg *msgs;
	size_t max;
};

static inline int peek_msgs(tachyon_bus *b, void *arg)
{
	struct msg_arg *a = arg;
	if (a->max == 1) {
		int r = tachyon_consumer_try_peek(&b->end.cons, a->msgs);
		return r < 0 ? r : 1;
	}
	return tachyon_consumer_try_peek_batch(&b->end.cons, a->msgs, a->max);
}

/* R6: the sleep timed out. If head moved while we slept, a producer
 * published without waking us: give it a moment to claim the wake (a
 * producer between its publication and its wake check), then count. */
static TACHYON_COLD void check_lost_wake(tachyon_bus *b, uint64_t head_seen)
{
	uint32_t *word = &b->hdr->consumer_wait;
	/* Relaxed: a diagnostic comparison; no data is read through it. Only
	 * a head beyond what we had seen counts (a consumer reading stamps
	 * may be ahead of the published head). */
	if (tachyon_atomic_load_relaxed64(&b->hdr->head) - head_seen - 1 >= b->region.capacity)
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

/* One round of the consumer's sleep protocol on the consumer wait word. */
static int sleep_for_message(tachyon_bus *b, void *arg, int64_t timeout, const waiter *wt)
{
	uint32_t *word = &b->hdr->consumer_wait;
	/* seq_cst CAS 0 -> 1: announces the sleep to the producer, whose
	 * fence-then-load of the word after publishing head pairs with it. */
	if (!tachyon_atomic_cas32(word, TACHYON_WAIT_AWAKE, TACHYON_WAIT_SLEEPING)) {
		/* Relaxed: we only decide how to wait. */
		uint32_t v = tachyon_atomic_load_relaxed32(word);
		if (v == TACHYON_WAIT_PURE_SPIN)
			return SPIN_INSTEAD;
		if (v != TACHYON_WAIT_SLEEPING) {
			/* Not a value of the protocol (a hostile or broken peer): we
			 * cannot announce a sleep, so poll gently instead. */
			return after_sleep(tachyon_nap(min64(timeout, ROOM_BACKOFF_MAX_NS)), wt,
			                   SLEPT_ON_WORD);
		}
		/* 1 left over (a peer wrote it): sleep on it as if we had set it. */
	}
	/* Full fence: our announcement before the re-check of head (store-load);
	 * the producer's store of head then its load of the word is the mirror
	 * image, so one of us sees the other. */
	tachyon_atomic_fence();
	int r = peek_msgs(b, arg);
	if (r == -EAGAIN && bus_is_closing(b))
		r = -TACHYON_ECLOSED;
	if (r == -EAGAIN && interrupt_asked(b))
		r = SLEPT_ON_WORD; /* as if woken: the next round asks the callback */
	if (r != -EAGAIN) {
		(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
		return r;
	}
	/* What our last check had seen, for the lost-wake diagnostic: the
	 * head the peek above loaded and validated, or, when the producer
	 * stamps (the peek looked at the stamp, not at head), the read cursor,
	 * everything below which was committed. */
	const tachyon_consumer *cons = &b->end.cons;
	uint64_t head_seen = cons->stamps && cons->read - cons->cached_head - 1 < b->region.capacity
	                             ? cons->read
	                             : cons->cached_head;
	int fr = tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, timeout);
	if (fr == -ETIMEDOUT)
		check_lost_wake(b, head_seen);
	/* seq_cst CAS 1 -> 0: mark ourselves awake; it fails when the producer
	 * (or close) claimed the wake, or a 0.5.1 producer stored 0 itself. */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
	return after_sleep(fr, wt, SLEPT_ON_WORD);
}

static const struct side consumer_side = {
	.attempt = peek_msgs,
	.sleep = sleep_for_message,
	.check = NULL,
	.deadline_rc = -ETIMEDOUT,
	.drain_on_death = 1,
	.obeys_pure_spin = 1,
	.first_sleep_ns = TACHYON_WATCHDOG_NS,
};

TACHYON_SLOW int tachyon_wait_message(tachyon_bus *b, tachyon_msg *msgs, size_t max,
                                      const tachyon_wait *w)
{
	struct msg_arg a = {msgs, max};
	return wait_loop(b, &consumer_side, &a, w);
}

/* ------------------------------------------------------------------------ */
/* the producer side: waiting for room                                       */

struct room_arg {
	size_t max_payload;
	void **payload;
};

static inline int reserve_room(tachyon_bus *b, void *arg)
{
	struct room_arg *a = arg;
	return tachyon_producer_try_reserve(&b->end.prod, a->max_payload, a->payload);
}

/* Does the consumer end (the peer) carry our marker? A wrong answer only
 * picks the other (still bounded) way of waiting. */
static int consumer_is_ours(const tachyon_bus *b)
{
	return bus_peer_is_ours(b);
}

/* A 0.5.1 consumer asleep while we lack room for more than the watchdog:
 * it publishes its tail only every 32 messages and will never free what we
 * wait for. */
static int check_stuck(tachyon_bus *b, const waiter *wt, int64_t now)
{
	/* Relaxed: a diagnosis, not a synchronization. */
	if (!consumer_is_ours(b) && now - wt->start > TACHYON_WATCHDOG_NS &&
	    tachyon_atomic_load_relaxed32(&b->hdr->consumer_wait) == TACHYON_WAIT_SLEEPING)
		return -TACHYON_ESTUCK;
	return 0;
}

/* One sleep of a producer waiting for room, on the producer wait word when
 * our consumer is at the other end (it wakes us), else a short nap. */
static int sleep_for_room(tachyon_bus *b, void *arg, int64_t timeout, const waiter *wt)
{
	if (!consumer_is_ours(b))
		return after_sleep(tachyon_nap(min64(timeout, ROOM_BACKOFF_MAX_NS)), wt, NAPPED);

	uint32_t *word = &b->hdr->producer_wait;
	/* Release store of 1 (only we write 1 here): announces the sleep. */
	tachyon_atomic_store_release32(word, TACHYON_WAIT_SLEEPING);
	/* Full fence: the announcement before the re-check of tail; our
	 * consumer's store of tail then fence then load of this word mirrors it. */
	tachyon_atomic_fence();
	int r = reserve_room(b, arg);
	if (r == -EAGAIN && bus_is_closing(b))
		r = -TACHYON_ECLOSED;
	if (r == -EAGAIN && interrupt_asked(b))
		r = SLEPT_ON_WORD; /* as if woken: the next round asks the callback */
	if (r != -EAGAIN) {
		(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
		return r;
	}
	int fr = tachyon_futex_wait(word, TACHYON_WAIT_SLEEPING, timeout);
	/* seq_cst CAS 1 -> 0: awake again (fails when the consumer or close
	 * claimed the wake). */
	(void)tachyon_atomic_cas32(word, TACHYON_WAIT_SLEEPING, TACHYON_WAIT_AWAKE);
	return after_sleep(fr, wt, SLEPT_ON_WORD);
}

static const struct side producer_side = {
	.attempt = reserve_room,
	.sleep = sleep_for_room,
	.check = check_stuck,
	.deadline_rc = -EAGAIN,
	.drain_on_death = 0,
	.obeys_pure_spin = 0,
	.first_sleep_ns = ROOM_BACKOFF_MIN_NS,
};

TACHYON_SLOW int tachyon_wait_room(tachyon_bus *b, size_t max_payload, void **payload,
                                   const tachyon_wait *w)
{
	struct room_arg a = {max_payload, payload};
	return wait_loop(b, &producer_side, &a, w);
}

/* ------------------------------------------------------------------------ */
/* an early look at the callback, asked from another thread                  */

void tachyon_bus_interrupt(tachyon_bus *b)
{
	if (!b || bus_forked(b))
		return; /* a forked child writes nothing shared */
	/* Release store: the request. Its meaning lives in the asker's and the
	 * waiter's own (locked) state, so nothing else needs publishing. */
	tachyon_atomic_store_release32(&b->interrupt, 1);
	/* Full fence: our request before the load of the wait word (store-load).
	 * The sleeper announces itself on the word, fences, then loads the
	 * request: either it sees the request and does not sleep, or the claim
	 * below sees its 1, takes it and wakes it. */
	tachyon_atomic_fence();
	/* Relaxed: the role is fixed before any call can wait; a call racing
	 * with the fixing of the role has not started to wait yet and sees the
	 * request at its first round. */
	uint32_t role = tachyon_atomic_load_relaxed32(&b->role);
	if (role == TACHYON_ROLE_CONSUMER)
		tachyon_futex_claim_wake(&b->hdr->consumer_wait);
	else if (role == TACHYON_ROLE_PRODUCER)
		tachyon_futex_claim_wake(&b->hdr->producer_wait);
}

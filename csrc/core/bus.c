/*
 * The bus: one region, one ring end, the peer's liveness, and the blocking
 * forms of the ring-end calls. This file holds the object's life (create,
 * references, close), its roles, and the data calls; each data call enters
 * the gate (bus_impl.h, gate.c), tries the ring end once, and only when that
 * finds nothing goes to the wait loop (wait.c).
 *
 * Roles. An end starts with no role; set_role or its first data call fixes
 * it (reserve/commit/rollback/flush/send: producer; recv/recv_batch/
 * release_to: consumer): it claims the role in the region's owner word
 * (ABI.md, "Roles"), then attaches the matching ring end. A claim the other
 * end already holds is -TACHYON_EROLE and leaves this end without a role;
 * a call of the other family is -TACHYON_EROLE once the role is fixed.
 * Claiming happens once per end, never per message.
 *
 * Opening. The handshake (handshake.c) yields a link; the listen, accept
 * and connect calls here wrap that link into a bus.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus_impl.h"

/* ------------------------------------------------------------------------ */
/* creation, references, close                                               */

int tachyon_bus_create(tachyon_link *link, tachyon_bus **out)
{
	tachyon_bus *b = NULL;
	void *mem = NULL;
	tachyon_region *region = link ? &link->region : NULL;
	/* 128-byte aligned (see the struct): posix_memalign, then zeroed. */
	if (region && out && region->base && region->size >= TACHYON_REGION_HEADER_SIZE &&
	    posix_memalign(&mem, _Alignof(tachyon_bus), sizeof *b) == 0) {
		b = mem;
		memset(b, 0, sizeof *b);
	}
	if (!b) {
		int err = (region && out && region->base) ? -ENOMEM : -EINVAL;
		if (link) {
			tachyon_region_release(&link->region);
			if (link->sockfd >= 0)
				close(link->sockfd);
			link->sockfd = -1;
			tachyon_peer_release(&link->peer);
		}
		if (out)
			*out = NULL;
		return err;
	}
	tachyon_fork_watch();

	b->region = link->region;
	link->region.fd = -1;
	link->region.base = NULL;
	b->hdr = b->region.base;
	b->sockfd = link->sockfd;
	link->sockfd = -1;
	b->peer = link->peer;
	link->peer.pidfd = -1;
	b->is_listener = link->is_listener != 0;
	b->pid = getpid();
	b->fork_gen = tachyon_fork_generation;
	b->refs = 1;
	b->asym_gate = tachyon_gate_asymmetric_ready();
	b->last_peer_check_ns = tachyon_now_ns();
	*out = b;
	return 0;
}

static TACHYON_COLD int fix_role(tachyon_bus *b, uint32_t role);

int tachyon_listener_accept(tachyon_listener *l, const tachyon_wait *w, tachyon_bus **out)
{
	if (!l || !out)
		return -EINVAL;
	*out = NULL;
	tachyon_link link;
	int rc = tachyon_handshake_accept(l, w, &link);
	if (rc < 0)
		return rc;
	int role = link.role;
	rc = tachyon_bus_create(&link, out);
	if (rc < 0 || role == TACHYON_ROLE_NONE)
		return rc;
	/* The listener claimed the role in the region before it sent the fd,
	 * so fix_role finds the owner word already ours and only attaches. It
	 * can still fail: the peer may have written impossible indices since. */
	rc = fix_role(*out, (uint32_t)role);
	if (rc < 0) {
		tachyon_bus_unref(*out);
		*out = NULL;
	}
	return rc;
}

int tachyon_bus_listen(const char *path, uint64_t capacity, const tachyon_listen_opts *opts,
                       const tachyon_wait *w, tachyon_bus **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	tachyon_listener *l;
	int rc = tachyon_listener_open(path, capacity, opts, &l);
	if (rc < 0)
		return rc;
	rc = tachyon_listener_accept(l, w, out);
	tachyon_listener_close(l);
	return rc;
}

int tachyon_bus_connect(const char *path, const tachyon_wait *w, tachyon_bus **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	tachyon_link link;
	int rc = tachyon_handshake_connect(path, w, &link);
	return rc < 0 ? rc : tachyon_bus_create(&link, out);
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
	if (!tachyon_fork_detected(b))
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
	if (!b || tachyon_fork_detected(b))
		return;
	tachyon_gate_close(b);
}

int tachyon_bus_is_closed(const tachyon_bus *b)
{
	return b ? bus_is_closing(b) : 1;
}

/* ------------------------------------------------------------------------ */
/* roles                                                                     */

/* The claim itself (internal.h); also run by the fuzz targets on arbitrary
 * owner words. */
int tachyon_role_claim(struct tachyon_region_header *hdr, uint32_t role, uint32_t mine)
{
	uint32_t *word = role == TACHYON_ROLE_PRODUCER ? &hdr->producer_owner : &hdr->consumer_owner;
	/* seq_cst CAS 0 -> mine: of two ends claiming the same role at once,
	 * exactly one succeeds; the other end's CAS on the same word is the
	 * only access that decides anything here. Nothing is published through
	 * the word: the ring end is attached after it, from the ring's own
	 * head and tail. */
	if (tachyon_atomic_cas32(word, TACHYON_OWNER_NONE, mine))
		return 0;
	/* Relaxed: the word is not 0; only whether it is our own value matters
	 * (a peer changing it now changes nothing we rely on). */
	return tachyon_atomic_load_relaxed32(word) == mine ? 0 : -TACHYON_EROLE;
}

static int claim_role(tachyon_bus *b, uint32_t role)
{
	return tachyon_role_claim(b->hdr, role,
	                          b->is_listener ? TACHYON_OWNER_LISTENER : TACHYON_OWNER_CONNECTOR);
}

/*
 * Fix the role and attach its ring end, once: 0, -TACHYON_EROLE (the other
 * role is fixed here, or the other end claimed this one) or the attach
 * error. The claim comes before the attach, so an end refused the role has
 * attached and written nothing and stays free to take the other role. (A
 * claim whose attach then fails stays ours: the region's indices are
 * impossible and the ring is fatal for both ends anyway.)
 *
 * Serialized by role_lock, not by the gate, so that set_role (from any
 * thread, at any time) and a first data call never attach twice, whichever gate form is in use: the membarrier gate does not
 * exclude a set_role racing with a data call. The ring end is used only
 * after the role is published (release store), so attaching needs nothing
 * more. Held for an attach only (a few loads and stores, no syscall).
 */
static TACHYON_COLD int fix_role(tachyon_bus *b, uint32_t role)
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
		r = claim_role(b, role);
		if (r == 0)
			r = role == TACHYON_ROLE_PRODUCER
			            ? tachyon_producer_attach(&b->end.prod, b->region.base, b->region.size)
			            : tachyon_consumer_attach(&b->end.cons, b->region.base, b->region.size);
		/* A waiter outside the gate compares head with this. */
		if (r == 0 && role == TACHYON_ROLE_CONSUMER)
			bus_publish_read_pos(b);
		/* Release: whoever loads the role with acquire (enter, finalize,
		 * stats) sees the attached ring end. */
		if (r == 0)
			tachyon_atomic_store_release32(&b->role, role);
	} else if (cur != role) {
		r = -TACHYON_EROLE;
	}
	/* Release: unlock; the next fixer's CAS acquires what we did. */
	tachyon_atomic_store_release32(&b->role_lock, 0);
	return r;
}

int tachyon_bus_set_role(tachyon_bus *b, int role)
{
	if (!b || (role != TACHYON_ROLE_PRODUCER && role != TACHYON_ROLE_CONSUMER))
		return -EINVAL;
	if (bus_forked(b))
		return -TACHYON_EFORKED;
	/* Acquire: pairs with the release store in fix_role. A fixed role
	 * needs no gate, so asking while another thread is inside a call of
	 * that family (say, blocked in recv) answers at once. */
	uint32_t cur = tachyon_atomic_load_acquire32(&b->role);
	if (cur == (uint32_t)role)
		return 0;
	if (cur != TACHYON_ROLE_NONE)
		return -TACHYON_EROLE;
	if (bus_is_closing(b))
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
/* entering a data call                                                      */

/* Enter a data call of a family: fork check, role check, gate, role fix. */
static inline int enter(tachyon_bus *b, uint32_t role)
{
	if (__builtin_expect(!b, 0))
		return -EINVAL;
	if (__builtin_expect(bus_forked(b), 0))
		return -TACHYON_EFORKED;
	/* Acquire: a role fixed by another thread comes with its attached end. */
	uint32_t cur = tachyon_atomic_load_acquire32(&b->role);
	if (__builtin_expect(cur != role, 0) && cur != TACHYON_ROLE_NONE)
		return -TACHYON_EROLE;
	int r = bus_gate_enter(b);
	if (__builtin_expect(r < 0, 0))
		return r;
	if (__builtin_expect(cur == TACHYON_ROLE_NONE, 0)) {
		r = fix_role(b, role);
		if (r < 0) {
			bus_gate_exit(b);
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
	bus_publish_read_pos(b);
	bus_gate_exit(b);
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

static int recv_common(tachyon_bus *b, tachyon_msg *msgs, size_t max, const tachyon_wait *w)
{
	if (!msgs || max == 0)
		return -EINVAL;
	int r = enter(b, TACHYON_ROLE_CONSUMER);
	if (r < 0)
		return r;
	r = peek(&b->end.cons, msgs, max);
	if (r == -EAGAIN)
		r = tachyon_wait_message(b, msgs, max, w);
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

/* Inside the gate. */
static int reserve_locked(tachyon_bus *b, size_t max_payload, void **payload, const tachyon_wait *w)
{
	/* A non-waiting send still notices a dead consumer within the watchdog
	 * period: a coarse clock read per message, a poll at most that often. */
	if (bus_check_peer(b, tachyon_coarse_now_ns(), 0) < 0)
		return tachyon_wait_peer_gone(b);
	int r = tachyon_producer_try_reserve(&b->end.prod, max_payload, payload);
	if (r == -EAGAIN)
		r = tachyon_wait_room(b, max_payload, payload, w);
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
	bus_gate_exit(b);
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
		return bus_forked(b) ? -TACHYON_EFORKED : -EINVAL;
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	r = tachyon_producer_commit(&b->end.prod, actual_size, type_id);
	bus_gate_exit(b);
	return r;
}

void tachyon_bus_copy_payload(tachyon_bus *b, void *payload, const void *data, size_t n)
{
	/* Acquire, as in enter(): the producer end is attached once the role
	 * says so. Any other end has no copy state to learn in: plain copy. */
	if (b && !bus_forked(b) && tachyon_atomic_load_acquire32(&b->role) == TACHYON_ROLE_PRODUCER)
		tachyon_copy_payload(&b->end.prod.copy, payload, data, n);
	else if (n)
		memcpy(payload, data, n);
}

void tachyon_bus_rollback(tachyon_bus *b)
{
	if (has_no_role(b) || enter(b, TACHYON_ROLE_PRODUCER) < 0)
		return;
	tachyon_producer_rollback(&b->end.prod);
	bus_gate_exit(b);
}

int tachyon_bus_flush(tachyon_bus *b)
{
	int r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		return r;
	r = tachyon_producer_flush(&b->end.prod);
	bus_gate_exit(b);
	return r;
}

/* Inside the gate, after try_send found no room (head already published):
 * wait for room as reserve does, then copy, commit and flush. */
static TACHYON_SLOW int send_wait(tachyon_bus *b, const void *data, size_t size, uint32_t type_id,
                               const tachyon_wait *w)
{
	void *payload;
	int r = tachyon_wait_room(b, size, &payload, w);
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
		r = tachyon_wait_peer_gone(b);
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
			(void)bus_check_peer(b, tachyon_coarse_now_ns(), 0);
	}
	bus_gate_exit(b);
	return r;
}


int tachyon_bus_send_many(tachyon_bus *b, const tachyon_iov *msgs, size_t n, uint32_t type_id,
                          const tachyon_wait *w, size_t *sent)
{
	size_t done = 0;
	int r;
	if (!msgs && n) {
		r = -EINVAL;
		goto out;
	}
	r = enter(b, TACHYON_ROLE_PRODUCER);
	if (r < 0)
		goto out;
	/* Relaxed: the sticky flag carries no data (as in send). */
	if (__builtin_expect(tachyon_atomic_load_relaxed32(&b->peer_dead) != 0, 0)) {
		r = tachyon_wait_peer_gone(b);
	} else {
		for (;;) {
			size_t k = 0;
			r = tachyon_producer_try_send_many(&b->end.prod, msgs + done, n - done, type_id, &k);
			done += k;
			if (r != -EAGAIN)
				break;
			/* No room for msgs[done] (head published): wait for it as
			 * send does, send that one, then go on with the rest. */
			r = send_wait(b, msgs[done].data, msgs[done].size, type_id, w);
			if (r != 0)
				break;
			done++;
			if (done == n)
				break;
		}
		/* Liveness by the coarse clock after the publication, as in send. */
		if (done > 0)
			(void)bus_check_peer(b, tachyon_coarse_now_ns(), 0);
	}
	bus_gate_exit(b);
out:
	if (sent)
		*sent = done;
	return r;
}

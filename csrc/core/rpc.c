/*
 * The request/reply bus (ABI.md, "The request/reply bus"): one handshake
 * (flags 1, two memfds) yields two ordinary buses, the forward ring for
 * requests and the reverse ring for replies. Everything a ring needs (the
 * hostile-input checks, the gate, waiting, peer liveness, close) is the
 * plain bus's, once per ring; this file adds only what a request/reply
 * bus has on top: the correlation id in each slot header, the numbering of
 * requests, and the rule that replies come in request order.
 *
 * Who writes what here:
 *   next_id   the caller's producer calls (call, call_commit), one at a time
 *   due_id    the caller's consumer calls (wait_accept), one at a time
 *   served    the callee's consumer calls push, its producer calls pop; the
 *             two may run on two threads, so a mutex guards the queue
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus_impl.h"

struct tachyon_rpc {
	tachyon_bus *fwd;           /* requests: caller produces, callee consumes */
	tachyon_bus *rev;           /* replies: callee produces, caller consumes */
	int callee;                 /* the listener end */
	uint32_t refs;              /* atomic */
	uint64_t next_id;           /* atomic: the id the next request carries */
	uint64_t due_id;            /* atomic: the id the next reply must carry */
	pthread_mutex_t lock;       /* guards served */
	uint64_t *served;           /* ids received and not yet answered, a ring */
	size_t served_cap;          /* power of two, or 0 */
	size_t served_start;
	size_t served_len;
};

/* ------------------------------------------------------------------------ */
/* opening                                                                   */

/* Build the two buses from a finished request/reply handshake. Takes
 * ownership of everything in the link, on success and on failure. */
static int rpc_from_link(tachyon_link *link, tachyon_rpc **out)
{
	/* The reverse ring's bus gets its own copy of the peer's liveness
	 * handle; the socket end stays with the forward one. */
	tachyon_link second = {.region = link->region2, .region2 = {.fd = -1}, .sockfd = -1,
	                       .peer = link->peer, .is_listener = link->is_listener,
	                       .role = TACHYON_ROLE_NONE};
	link->region2.fd = -1;
	link->region2.base = NULL;
	int rc = 0;
	if (link->peer.pidfd >= 0) {
		second.peer.pidfd = fcntl(link->peer.pidfd, F_DUPFD_CLOEXEC, 0);
		if (second.peer.pidfd < 0)
			rc = -errno;
	}
	tachyon_rpc *r = calloc(1, sizeof *r);
	if (!r && rc == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		tachyon_region_release(&second.region);
		tachyon_peer_release(&second.peer);
		tachyon_region_release(&link->region);
		if (link->sockfd >= 0)
			close(link->sockfd);
		tachyon_peer_release(&link->peer);
		free(r);
		return rc;
	}
	r->callee = link->is_listener != 0;
	r->refs = 1;
	r->next_id = 1; /* ids start at 1 (ABI.md) */
	r->due_id = 1;
	pthread_mutex_init(&r->lock, NULL);

	rc = tachyon_bus_create(link, &r->fwd);
	if (rc < 0) {
		tachyon_region_release(&second.region);
		tachyon_peer_release(&second.peer);
	} else {
		rc = tachyon_bus_create(&second, &r->rev);
	}
	/* Fixed once, here: the roles follow from the kind of end. The
	 * listener claimed its own in both regions before it sent the fds. */
	if (rc == 0)
		rc = tachyon_bus_set_role(r->fwd, r->callee ? TACHYON_ROLE_CONSUMER : TACHYON_ROLE_PRODUCER);
	if (rc == 0)
		rc = tachyon_bus_set_role(r->rev, r->callee ? TACHYON_ROLE_PRODUCER : TACHYON_ROLE_CONSUMER);
	if (rc < 0) {
		tachyon_rpc_unref(r);
		return rc;
	}
	*out = r;
	return 0;
}

int tachyon_rpc_listen(const char *path, uint64_t cap_fwd, uint64_t cap_rev,
                       const tachyon_listen_opts *opts, const tachyon_wait *w, tachyon_rpc **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	tachyon_listener *l;
	int rc = tachyon_listener_open_rpc(path, cap_fwd, cap_rev, opts, &l);
	if (rc < 0)
		return rc;
	tachyon_link link;
	rc = tachyon_handshake_accept(l, w, &link);
	tachyon_listener_close(l);
	return rc < 0 ? rc : rpc_from_link(&link, out);
}

int tachyon_rpc_connect(const char *path, const tachyon_wait *w, tachyon_rpc **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	tachyon_link link;
	int rc = tachyon_handshake_connect_rpc(path, w, &link);
	return rc < 0 ? rc : rpc_from_link(&link, out);
}

/* ------------------------------------------------------------------------ */
/* life                                                                      */

void tachyon_rpc_ref(tachyon_rpc *r)
{
	if (!r)
		return;
	for (;;) {
		uint32_t n = tachyon_atomic_load_relaxed32(&r->refs);
		/* seq_cst CAS: atomicity is all a count needs; the caller holds a
		 * reference already. */
		if (tachyon_atomic_cas32(&r->refs, n, n + 1))
			return;
	}
}

void tachyon_rpc_unref(tachyon_rpc *r)
{
	if (!r)
		return;
	for (;;) {
		uint32_t n = tachyon_atomic_load_relaxed32(&r->refs);
		if (n == 0)
			return; /* a double unref: leave it rather than underflow */
		/* seq_cst CAS: the last dropper sees every holder's writes. */
		if (tachyon_atomic_cas32(&r->refs, n, n - 1)) {
			if (n > 1)
				return;
			tachyon_bus_unref(r->fwd);
			tachyon_bus_unref(r->rev);
			pthread_mutex_destroy(&r->lock);
			free(r->served);
			free(r);
			return;
		}
	}
}

void tachyon_rpc_close(tachyon_rpc *r)
{
	if (!r)
		return;
	tachyon_bus_close(r->fwd);
	tachyon_bus_close(r->rev);
}

int tachyon_rpc_is_callee(const tachyon_rpc *r)
{
	return r ? r->callee : 0;
}

tachyon_bus *tachyon_rpc_requests(const tachyon_rpc *r)
{
	return r ? r->fwd : NULL;
}

tachyon_bus *tachyon_rpc_replies(const tachyon_rpc *r)
{
	return r ? r->rev : NULL;
}

int tachyon_rpc_set_polling_mode(tachyon_rpc *r, int pure_spin)
{
	if (!r)
		return -EINVAL;
	int rc = tachyon_bus_set_polling_mode(r->fwd, pure_spin);
	return rc < 0 ? rc : tachyon_bus_set_polling_mode(r->rev, pure_spin);
}

/* ------------------------------------------------------------------------ */
/* the slot header's request/reply fields                                    */

void tachyon_rpc_stamp(void *payload, uint64_t correlation_id)
{
	/* Plain stores: the reservation is ours until the commit's stamp and
	 * head publication (release stores in ring.c), which hand these bytes
	 * to the consumer together with the rest of the slot. */
	struct tachyon_slot_header *h =
	        (struct tachyon_slot_header *)(void *)((uint8_t *)payload - TACHYON_MSG_ALIGNMENT);
	h->unused0 = 0;
	h->correlation_id = correlation_id;
}

uint64_t tachyon_rpc_msg_id(const tachyon_msg *m)
{
	const struct tachyon_slot_header *h =
	        (const struct tachyon_slot_header *)(const void *)(tachyon_msg_aligned_data(m) -
	                                                           TACHYON_MSG_ALIGNMENT);
	/* Relaxed, once: the slot came with the acquire load of head (or of
	 * its position stamp, ring.c); the peer
	 * may rewrite the field at any time, so the one value loaded here is
	 * the one every comparison uses (docs/RELIABILITY.md R2). */
	return tachyon_atomic_load_relaxed64(&h->correlation_id);
}

/* Commit and flush the open reservation on b as one request/reply message.
 * *committed says whether the message went into the ring (it did even when
 * only the flush failed). */
static int commit_stamped(tachyon_bus *b, void *payload, size_t actual_size, uint16_t msg_type,
                          uint64_t id, int *committed)
{
	*committed = 0;
	tachyon_rpc_stamp(payload, id);
	/* type_id = msg_type, route 0, as 0.5.1 writes it on both rings. */
	int rc = tachyon_bus_commit(b, actual_size, msg_type);
	if (rc < 0) {
		tachyon_bus_rollback(b);
		return rc;
	}
	*committed = 1;
	return tachyon_bus_flush(b);
}

/* ------------------------------------------------------------------------ */
/* caller                                                                    */

uint64_t tachyon_rpc_next_id(const tachyon_rpc *r)
{
	/* Acquire: pairs with call_commit's release store; only a number. */
	return r ? tachyon_atomic_load_acquire64(&r->next_id) : 0;
}

int tachyon_rpc_call_commit(tachyon_rpc *r, void *payload, size_t actual_size, uint16_t msg_type,
                            uint64_t *cid)
{
	if (!r || r->callee || !payload)
		return -EINVAL;
	/* Relaxed: only this end's producer calls write it, one at a time. */
	uint64_t id = tachyon_atomic_load_relaxed64(&r->next_id);
	int committed;
	int rc = commit_stamped(r->fwd, payload, actual_size, msg_type, id, &committed);
	if (!committed)
		return rc;
	/* Counted even when only the flush failed: the id is used. */
	tachyon_rpc_call_sent(r, id);
	if (cid)
		*cid = id;
	return rc;
}

void tachyon_rpc_call_sent(tachyon_rpc *r, uint64_t cid)
{
	/* Release: a wait on another thread that loads the new value may wait
	 * for this id (a number; the message itself went with head). */
	if (r && !r->callee && cid == tachyon_atomic_load_relaxed64(&r->next_id))
		tachyon_atomic_store_release64(&r->next_id, cid + 1);
}

uint64_t tachyon_rpc_due_id(const tachyon_rpc *r)
{
	/* Acquire: pairs with wait_accept's release store; only a number. */
	return r ? tachyon_atomic_load_acquire64(&r->due_id) : 0;
}

int tachyon_rpc_call(tachyon_rpc *r, const void *data, size_t size, uint16_t msg_type, uint64_t *cid,
                     const tachyon_wait *w)
{
	if (!r || r->callee || (!data && size))
		return -EINVAL;
	void *payload;
	int rc = tachyon_bus_reserve(r->fwd, size, &payload, w);
	if (rc < 0)
		return rc;
	tachyon_bus_copy_payload(r->fwd, payload, data, size);
	return tachyon_rpc_call_commit(r, payload, size, msg_type, cid);
}

int tachyon_rpc_wait_check(const tachyon_rpc *r, uint64_t cid)
{
	if (!r || r->callee)
		return -EINVAL;
	/* Acquire loads: numbers only (see next_id and due_id above). */
	uint64_t due = tachyon_atomic_load_acquire64(&r->due_id);
	uint64_t next = tachyon_atomic_load_acquire64(&r->next_id);
	return cid == due && cid < next ? 0 : -EINVAL;
}

int tachyon_rpc_wait_accept(tachyon_rpc *r, uint64_t cid, const tachyon_msg *msg)
{
	if (!r || r->callee || !msg)
		return -EINVAL;
	if (tachyon_rpc_msg_id(msg) != cid) {
		/* What a 0.5.1 caller does too: the callee broke the reply order
		 * (or wrote junk), so nothing more on this ring can be trusted. */
		tachyon_bus *b = r->rev;
		if (bus_gate_enter(b) == 0) {
			(void)tachyon_consumer_fail(&b->end.cons,
			                            "a reply carried a correlation id other than the one due "
			                            "(replies come in request order)");
			bus_gate_exit(b);
		}
		return -TACHYON_ECORRUPT;
	}
	/* Release: a number for wait_check on another thread. */
	tachyon_atomic_store_release64(&r->due_id, cid + 1);
	return 0;
}

int tachyon_rpc_wait(tachyon_rpc *r, uint64_t cid, tachyon_msg *msg, const tachyon_wait *w)
{
	int rc = tachyon_rpc_wait_check(r, cid);
	if (rc < 0)
		return rc;
	rc = tachyon_bus_recv(r->rev, msg, w);
	return rc < 0 ? rc : tachyon_rpc_wait_accept(r, cid, msg);
}

/* ------------------------------------------------------------------------ */
/* callee                                                                    */

int tachyon_rpc_serve_accept(tachyon_rpc *r, const tachyon_msg *msg, uint64_t *cid)
{
	if (!r || !r->callee || !msg)
		return -EINVAL;
	uint64_t id = tachyon_rpc_msg_id(msg);
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	if (r->served_len == r->served_cap) {
		/* Grow, keeping the order: the oldest entry moves to index 0. */
		size_t cap = r->served_cap ? r->served_cap * 2 : 16;
		uint64_t *q = malloc(cap * sizeof *q);
		if (!q) {
			rc = -ENOMEM;
		} else {
			for (size_t i = 0; i < r->served_len; i++)
				q[i] = r->served[(r->served_start + i) & (r->served_cap - 1)];
			free(r->served);
			r->served = q;
			r->served_cap = cap;
			r->served_start = 0;
		}
	}
	if (rc == 0) {
		r->served[(r->served_start + r->served_len) & (r->served_cap - 1)] = id;
		r->served_len++;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == 0 && cid)
		*cid = id;
	return rc;
}

int tachyon_rpc_serve(tachyon_rpc *r, tachyon_msg *msg, uint64_t *cid, const tachyon_wait *w)
{
	if (!r || !r->callee)
		return -EINVAL;
	int rc = tachyon_bus_recv(r->fwd, msg, w);
	return rc < 0 ? rc : tachyon_rpc_serve_accept(r, msg, cid);
}

int tachyon_rpc_reply_check(tachyon_rpc *r, uint64_t cid)
{
	if (!r || !r->callee)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	int ok = r->served_len && r->served[r->served_start] == cid;
	pthread_mutex_unlock(&r->lock);
	return ok ? 0 : -EINVAL;
}

int tachyon_rpc_reply_commit(tachyon_rpc *r, uint64_t cid, void *payload, size_t actual_size,
                             uint16_t msg_type)
{
	int rc = tachyon_rpc_reply_check(r, cid);
	if (rc < 0 || !payload) {
		/* Nothing may be written for an id out of order: drop the slot. */
		tachyon_bus_rollback(r ? r->rev : NULL);
		return -EINVAL;
	}
	int committed;
	rc = commit_stamped(r->rev, payload, actual_size, msg_type, cid, &committed);
	if (committed)
		tachyon_rpc_reply_sent(r, cid); /* maybe not flushed, but answered */
	return rc;
}

void tachyon_rpc_reply_sent(tachyon_rpc *r, uint64_t cid)
{
	if (!r || !r->callee)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->served_len && r->served[r->served_start] == cid) {
		r->served_start = (r->served_start + 1) & (r->served_cap - 1);
		r->served_len--;
	}
	pthread_mutex_unlock(&r->lock);
}

int tachyon_rpc_reply(tachyon_rpc *r, uint64_t cid, const void *data, size_t size, uint16_t msg_type,
                      const tachyon_wait *w)
{
	if (!data && size)
		return -EINVAL;
	int rc = tachyon_rpc_reply_check(r, cid);
	if (rc < 0)
		return rc;
	void *payload;
	rc = tachyon_bus_reserve(r->rev, size, &payload, w);
	if (rc < 0)
		return rc;
	tachyon_bus_copy_payload(r->rev, payload, data, size);
	return tachyon_rpc_reply_commit(r, cid, payload, size, msg_type);
}

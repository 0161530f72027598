/*
 * What every bus call goes through: the slow paths of the entry checks,
 * and the blocking wait with the GIL released (calls.h).
 */
#include "calls.h"

int tx_bus_unusable(BusObject *self)
{
	tx_errctx cx = {.in = TX_IN_ENTRY};
	tx_raise(self->st, tachyon_bus_forked(self->bus) ? -TACHYON_EFORKED : -TACHYON_ECLOSED, &cx);
	return -1;
}

int tx_bus_fix_role(BusObject *self, int role)
{
	int r = tachyon_bus_set_role(self->bus, role);
	if (r == 0 && self->role != TACHYON_ROLE_NONE && self->role != role)
		r = -TACHYON_EROLE; /* the cached role is the other one */
	if (r < 0) {
		/* -TACHYON_EROLE: this end has the other role, or the other end
		 * claimed this one (the wording tells them apart by this end's
		 * role); else e.g. a region whose starting head or tail breaks the
		 * wire format */
		tx_errctx cx = {.in = TX_IN_ROLE,
		                .role = role,
		                .bus = self->bus,
		                .call = role == TACHYON_ROLE_PRODUCER
		                                ? "attaching the producer end of the ring"
		                                : "attaching the consumer end of the ring"};
		tx_raise(self->st, r, &cx);
		return -1;
	}
	self->role = role;
	return 0;
}

enum { WHY_NONE = 0, WHY_EXCEPTION = 1, WHY_RELEASE = 2 };

typedef struct {
	PyThreadState *ts;
	BusObject *self;
	int fam;
	int why;
} tx_waiter;

/* Called by the core, without the GIL, at least every watchdog period and
 * after every EINTR while it waits. Takes the GIL back, runs pending signal
 * handlers (main thread only), and asks the core to return when an
 * exception is pending or a deferred slot release should be applied. */
static int tx_interrupted(void *arg)
{
	tx_waiter *w = arg;
	int stop = 0;
	PyEval_RestoreThread(w->ts);
	if (PyErr_CheckSignals() < 0) {
		w->why = WHY_EXCEPTION;
		stop = 1;
	} else if (w->self && w->fam == FAM_RX && w->self->rx_release_pending) {
		w->why = WHY_RELEASE;
		stop = 1;
	}
	w->ts = PyEval_SaveThread();
	return stop;
}

int tx_blocking(tx_call *c)
{
	for (;;) {
		tx_waiter wt = {NULL, c->self, FAM_TX, WHY_NONE};
		tachyon_wait w;
		int r = -EINVAL;

		if (c->op == OP_RECV || c->op == OP_RECV_BATCH) {
			wt.fam = FAM_RX;
			/* A release deferred to us (e.g. by a handler we ran) goes out
			 * before we sleep: later releases only ask us to look up when
			 * none is pending yet (slots.c). */
			if (TX_UNLIKELY(c->self->rx_release_pending))
				tx_slots_flush_locked(c->self);
		}
		w.deadline_ns = c->deadline;
		w.spin = c->spin;
		w.interrupted = tx_interrupted;
		w.arg = &wt;

		wt.ts = PyEval_SaveThread();
		switch (c->op) {
		case OP_SEND:
			r = tachyon_bus_send(c->self->bus, c->data, c->size, c->type_id, &w);
			break;
		case OP_RESERVE:
			r = tachyon_bus_reserve(c->self->bus, c->size, c->payload, &w);
			break;
		case OP_RECV:
			r = tachyon_bus_recv(c->self->bus, c->msgs, &w);
			break;
		case OP_RECV_BATCH:
			r = tachyon_bus_recv_batch(c->self->bus, c->msgs, c->max, &w);
			break;
		case OP_ACCEPT:
			r = tachyon_listener_accept(c->listener, &w, c->out);
			break;
		case OP_CONNECT:
			r = tachyon_bus_connect(c->path, &w, c->out);
			break;
		case OP_WAIT_ANY:
			/* holds no family: it enters no gate and takes nothing */
			r = tachyon_bus_wait_any(c->buses, c->max, c->ready, &w);
			break;
		case OP_WAIT_ROOM:
			/* the same: reserves nothing */
			r = tachyon_bus_wait_room(c->buses[0], c->size, &w);
			break;
		case OP_RPC_LISTEN:
			r = tachyon_rpc_listen(c->path, c->size, c->cap_rev, c->opts, &w, c->rpc_out);
			break;
		case OP_RPC_CONNECT:
			r = tachyon_rpc_connect(c->path, &w, c->rpc_out);
			break;
		}
		PyEval_RestoreThread(wt.ts);

		if (r != -EINTR)
			return r;
		if (wt.why == WHY_EXCEPTION || PyErr_Occurred())
			return -EINTR;
		if (wt.why == WHY_RELEASE) {
			/* the caller holds the RX family: apply the release it was
			 * deferred to, then wait on */
			tx_slots_flush_locked(c->self);
			continue;
		}
		/* an EINTR we did not ask for: run handlers, then wait on */
		if (PyErr_CheckSignals() < 0)
			return -EINTR;
	}
}

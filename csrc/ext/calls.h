/*
 * Layer 3: what every bus call goes through. First the entry checks (the
 * bus was not inherited across fork, is not closed, has the role the call
 * needs); then, when the call must wait, tx_blocking, the one place where
 * the GIL is released around a blocking core call.
 */
#ifndef TACHYON_EXT_CALLS_H
#define TACHYON_EXT_CALLS_H

#include "errors.h"
#include "slots.h"

/* Raise for a bus that is forked or closed; always -1. */
int tx_bus_unusable(BusObject *self);
/* Fix the role of an end whose cached role differs; 0, or -1 with an exception. */
int tx_bus_fix_role(BusObject *self, int role);

/* Can a call run on this end? 0, or -1 with an exception. */
static inline int tx_bus_usable(BusObject *self)
{
	if (TX_UNLIKELY(tachyon_bus_forked(self->bus) || self->closed))
		return tx_bus_unusable(self);
	return 0;
}

/* Make sure this end has role (enum tachyon_role); the first data call
 * fixes it. 0, or -1 with an exception. */
static inline int tx_bus_want_role(BusObject *self, int role)
{
	if (TX_LIKELY(self->role == role))
		return 0;
	return tx_bus_fix_role(self, role);
}

/* The absolute deadline of a call with timeout tns: TACHYON_FOREVER, 0
 * for "do not wait" (no clock read), or now + tns. */
static inline int64_t tx_deadline(int64_t tns)
{
	if (tns == TACHYON_FOREVER)
		return TACHYON_FOREVER;
	if (tns == 0)
		return 0;
	return tachyon_deadline_after(tns);
}

/* A blocking core call and its arguments. */
typedef enum {
	OP_SEND, OP_RESERVE, OP_RECV, OP_RECV_BATCH, OP_ACCEPT, OP_CONNECT, OP_WAIT_ANY,
	OP_WAIT_ROOM, OP_RPC_LISTEN, OP_RPC_CONNECT
} tx_op;
typedef struct {
	tx_op op;
	BusObject *self;            /* NULL for accept/connect */
	int64_t deadline;
	uint32_t spin;              /* spin before sleeping; 0: the bus default */
	/* op arguments */
	const void *data;
	size_t size;
	uint32_t type_id;
	void **payload;
	tachyon_msg *msgs;
	size_t max;                 /* recv_batch: messages; wait_any: buses */
	tachyon_bus *const *buses;  /* wait_any; wait_room: the one bus */
	uint8_t *ready;             /* wait_any */
	tachyon_listener *listener;
	const char *path;
	tachyon_bus **out;
	/* request/reply listen and connect (the path above; size: forward capacity) */
	uint64_t cap_rev;
	const tachyon_listen_opts *opts;
	tachyon_rpc **rpc_out;
} tx_call;

/* Run c with the GIL released, running signal handlers at least every
 * watchdog period and applying deferred slot releases while it waits.
 * Returns the core's result; -EINTR means a Python exception is set. */
int tx_blocking(tx_call *c);

#endif /* TACHYON_EXT_CALLS_H */

/*
 * Layer 1: the one map from an error code to a Python exception.
 *
 * Every core error code (and the extension's own TX_ELATE) becomes an
 * exception through tx_raise and nowhere else: the table in errors.c says,
 * per code and per place the error was met, which exception and which
 * sentence. Errors that are not codes (bad arguments, buffer misuse) are
 * raised where they are found.
 */
#ifndef TACHYON_EXT_ERRORS_H
#define TACHYON_EXT_ERRORS_H

#include "ext.h"

/* A family's wait for its turn ended at the call's deadline. Returned
 * negated, like the core's codes; errno values stay below 4096, so this
 * never collides with one. */
#define TX_ELATE 0x10000

/* Where the error was met: picks the wording (and for some codes the
 * exception) among the table's rows. */
typedef enum {
	TX_IN_CALL = 0,   /* any bus call: "<call>: <what happened>" */
	TX_IN_ENTRY,      /* the checks every call makes before it starts */
	TX_IN_FAMILY,     /* waiting for the family's turn */
	TX_IN_ROLE,       /* fixing this end's role */
	TX_IN_SEND,       /* send, send_many, send_zero_copy: no room is BusFullError */
	TX_IN_RECV,       /* recv*, drain_batch: no message is TachyonTimeoutError */
	TX_IN_LISTEN,     /* opening the listening socket */
	TX_IN_ACCEPT,     /* waiting for the peer to connect */
	TX_IN_CONNECT,    /* connecting: the listener's misdeed, when known, is named */
	TX_IN_NUMA,       /* binding the mapping to a NUMA node */
} tx_where;

/* What the message may name. Unused fields stay zero. */
typedef struct {
	tx_where in;
	const char *call;         /* the call's name, e.g. "send" */
	tachyon_bus *bus;         /* data calls: a corrupt ring's reason, capacity, max_payload;
	                           * a refused role: whether this end has one */
	PyObject *path;           /* listen/connect: the socket_path argument (repr) */
	unsigned long long capacity; /* listen: the capacity asked for */
	size_t size;              /* send: the payload size */
	int64_t timeout_ns;       /* send: the call's timeout (0: it did not wait) */
	long node;                /* set_numa_node: the node */
	int role;                 /* fixing the role: the role asked for */
} tx_errctx;

/* Set the exception for err (negative or not) and return NULL. An EINTR
 * keeps an exception that is already set (a signal handler raised). */
PyObject *tx_raise(tx_state *st, int err, const tx_errctx *cx);

/* tx_raise for a bus call named call; a corrupt ring's reason is appended
 * when bus is given. (Out of line, like tx_raise: the per-message callers
 * keep no error context on their stack.) */
PyObject *tx_raise_call(tx_state *st, tachyon_bus *bus, int err, const char *call);

/* The bus was inherited across fork(). */
PyObject *tx_raise_forked(tx_state *st);

#endif /* TACHYON_EXT_ERRORS_H */

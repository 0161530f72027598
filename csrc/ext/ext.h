/*
 * The base of the CPython extension tachyon._core: the module state and the
 * layout of every object, which all files read. No functions except small
 * compatibility helpers.
 *
 * Layers. Each X.c has its interface in X.h (hot paths static inline
 * there, so a call across files costs nothing). A file includes the
 * headers of lower layers only, and calls go down only; the core sits under
 * everything and is reached through the public header tachyon/tachyon.h
 * alone:
 *
 *   8  module.c   module definition, state, exceptions, BusStats, functions
 *   7  rpc.c      RpcBus (request/reply) and its guards, over two TachyonBus
 *   6  bus.c      TachyonBus (methods and tables) and its iterator
 *      waitany.c  _wait_any: a message on any of several buses
 *   5  guards.c   TxGuard, RxGuard, RxBatchGuard, RxMsgView (zero copy)
 *      foreign.c  _ForeignView: the same views over memory another object owns
 *   4  dlpack.c   __dlpack__ export of a received slot and its deleters
 *                 (dlpack_abi.h: the DLPack structs)
 *      message.c  Message, what a copying receive returns
 *   3  family.c   per-family call serialization (one call of a family at a time)
 *      calls.c    what every bus call goes through: entry checks, and the
 *                 blocking wait with the GIL released
 *   2  slots.c    received slots not yet released (given back in ring order)
 *                 and the deferred rollback of an abandoned reservation
 *   1  errors.c   the one map from a core error code to a Python exception
 *      args.c     argument parsing
 *   0  ext.h      this file
 *
 * Deferred work does not call up either: a release or rollback that finds
 * its family busy only sets a flag (slots.c; a release also asks the
 * holder's wait in the core to look up at once); the family's holder calls
 * down into slots.c to apply it on its way in or out (family.h) or while
 * it waits (calls.c).
 *
 * Everything that touches a Python object runs with the GIL held; the GIL
 * is released only inside a blocking core call, whose interrupted()
 * callback takes it back at least every watchdog period.
 */
#ifndef TACHYON_EXT_H
#define TACHYON_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <stdint.h>

#include "tachyon/tachyon.h"

#if PY_VERSION_HEX < 0x030A0000
#error "tachyon needs CPython 3.10 or newer"
#endif

#if PY_VERSION_HEX >= 0x030D0000
#define TX_IS_FINALIZING() Py_IsFinalizing()
#else
#define TX_IS_FINALIZING() _Py_IsFinalizing()
#endif

#define TX_LIKELY(x) __builtin_expect(!!(x), 1)
#define TX_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* The error indicator as one object (3.12's PyErr_GetRaisedException). */
static inline PyObject *tx_err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
	return PyErr_GetRaisedException();
#else
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	if (!t)
		return NULL;
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb && v)
		PyException_SetTraceback(v, tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
#endif
}

/* Set the error indicator to exc (stolen; NULL clears nothing). */
static inline void tx_err_restore(PyObject *exc)
{
	if (!exc)
		return;
#if PY_VERSION_HEX >= 0x030C0000
	PyErr_SetRaisedException(exc);
#else
	PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Make `cause` (stolen) the __cause__ of the exception being raised. */
static inline void tx_chain_cause(PyObject *cause)
{
	PyObject *exc;
	if (!cause)
		return;
	exc = tx_err_fetch();
	if (!exc) {
		Py_DECREF(cause);
		return;
	}
	PyException_SetContext(exc, Py_NewRef(cause));
	PyException_SetCause(exc, cause);
	tx_err_restore(exc);
}

/* Module state: every type and exception of the module. */
typedef struct {
	PyTypeObject *bus_type;
	PyTypeObject *iter_type;
	PyTypeObject *message_type;
	PyTypeObject *txguard_type;
	PyTypeObject *rxguard_type;
	PyTypeObject *rxbatch_type;
	PyTypeObject *rxview_type;
	PyTypeObject *rxbatchiter_type; /* iter(batch); not in the module's namespace */
	PyTypeObject *rpc_type;
	PyTypeObject *rpc_rxguard_type;
	PyTypeObject *rpc_txguard_type;

	PyObject *TachyonError;
	PyObject *HandshakeError;
	PyObject *AbiMismatchError;
	PyObject *TachyonTimeoutError;
	PyObject *BusFullError;
	PyObject *ConnectTimeoutError;
	PyObject *BusClosedError;
	PyObject *PeerClosedError;
	PyObject *PeerDeadError;
	PyObject *RingCorruptError;
	PyObject *RoleError;

	PyObject *stats_type; /* tachyon.BusStats, the named tuple Bus.stats returns */
	PyObject *bus_state_enum;      /* tachyon.BusState (IntEnum of the state word) */
	PyObject *consumer_state_enum; /* tachyon.ConsumerState (of the consumer wait word) */
	PyObject *str_sent;
	PyObject *str_unreleased_bytes;    /* PeerClosedError / PeerDeadError attributes */
	PyObject *str_unreleased_messages;
	PyObject *str_add_note;
} tx_state;

/* The two call families of a bus end; calls of one family are serialized. */
enum { FAM_TX = 0, FAM_RX = 1 };

/* "producer" / "consumer" for an enum tachyon_role, NULL for none. */
static inline const char *tx_role_name(int role)
{
	return role == TACHYON_ROLE_PRODUCER ? "producer"
	       : role == TACHYON_ROLE_CONSUMER ? "consumer" : NULL;
}

/* One received slot not yet given back to the producer. */
typedef struct {
	uint64_t end;   /* release point of the slot */
	uint32_t refs;  /* live holders: guards, memoryviews, DLPack tensors */
} tx_pending;

typedef struct TxGuardObject TxGuardObject;

typedef struct {
	PyObject_HEAD
	PyObject *module;           /* strong: keeps the state below alive */
	tx_state *st;
	/* One reference, dropped at dealloc only: guards, iterators and DLPack
	 * contexts hold the BusObject, so every user sees a live bus (the
	 * fork check, tachyon_bus_forked, reads it on every call). */
	tachyon_bus *bus;
	PyObject *path;             /* str */
	int closed;
	int role;                   /* cached enum tachyon_role */
	uint64_t capacity;
	int peer_self;              /* the peer end is in this process (recv_first) */

	/* Family serialization (family.h). Read and written with the GIL held,
	 * so a plain flag serializes the fast path, which never lets the GIL
	 * go; only a caller that must wait sleeps, on busy[fam] as a wait word
	 * (the kernel reads it without the GIL). family.c writes busy; slots.c
	 * reads it to learn whether a call of the family is inside. */
	uint32_t busy[2];           /* a call of the family is inside */
	uint32_t waiters[2];        /* callers sleeping until busy[fam] clears */
	unsigned long owner[2];     /* thread inside (valid while busy) */

	/* producer */
	TxGuardObject *tx_guard;    /* borrowed: the guard holding the open reservation */
	int tx_rollback_pending;    /* roll back when the TX lock is next free */

	/* consumer: slots read but not released, in ring order */
	tx_pending *q;
	size_t q_cap;               /* power of two */
	size_t q_start;             /* index of the oldest entry */
	size_t q_len;
	uint64_t q_seq;             /* sequence number of the oldest entry */
	int rx_release_pending;     /* a release waits for the RX lock */
	tachyon_msg *rx_scratch;    /* drain_batch's message array (RX_SCRATCH_MAX), RX family held */
} BusObject;

struct TxGuardObject {
	PyObject_HEAD
	BusObject *bus;
	uint8_t *data;
	Py_ssize_t size;
	Py_ssize_t actual_size;
	uint32_t type_id;
	int state;                  /* TXG_OPEN, TXG_STALE, TXG_DONE */
	Py_ssize_t exports;
};
enum { TXG_OPEN = 0, TXG_STALE = 1, TXG_DONE = 2 };

typedef struct {
	const uint8_t *data;
	uint32_t size;
	uint32_t type_id;
	uint64_t seq;               /* entry in the bus's pending queue */
} tx_rxmsg;

typedef struct {
	PyObject_HEAD
	BusObject *bus;
	tx_rxmsg msg;
	int spent;
} RxGuardObject;

typedef struct {
	PyObject_HEAD
	BusObject *bus;
	Py_ssize_t n;
	int spent;
	tx_rxmsg *msgs;             /* &one for a batch of one, else PyMem */
	tx_rxmsg one;
} RxBatchObject;

typedef struct {
	PyObject_HEAD
	RxBatchObject *batch;
	Py_ssize_t index;
} RxViewObject;

typedef struct {
	PyObject_HEAD
	RxBatchObject *batch;       /* NULL once the views ran out */
	Py_ssize_t next;
} RxBatchIterObject;

typedef struct {
	PyObject_HEAD
	uint32_t type_id;
	PyObject *data;             /* bytes */
} MessageObject;

typedef struct {
	PyObject_HEAD
	BusObject *bus;
} BusIterObject;

#endif /* TACHYON_EXT_H */

/*
 * Private interfaces of the CPython extension tachyon._core.
 *
 *   module.c   module definition, state (types + exceptions), error mapping,
 *              argument helpers, the blocking-wait machinery
 *   bus.c      TachyonBus: listen/connect/close, send*, recv*, roles, stats
 *   message.c  Message (what receiving yields) and the bus iterator
 *   guards.c   TxGuard, RxGuard, RxBatchGuard, RxMsgView (zero-copy)
 *   dlpack.c   __dlpack__ / __dlpack_device__ and the capsule deleters
 *
 * Only tachyon/tachyon.h is used from the core. Everything that touches a
 * Python object runs with the GIL held; the GIL is released only inside a
 * blocking core call, whose interrupted() callback takes it back at least
 * every watchdog period.
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

	PyObject *stats_type; /* tachyon.BusStats once the package registered it */
	PyObject *str_sent;
	PyObject *str_add_note;
} tx_state;

/* The two call families of a bus end; calls of one family are serialized. */
enum { FAM_TX = 0, FAM_RX = 1 };

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
	tachyon_bus *bus;           /* one reference, dropped at dealloc */
	PyObject *path;             /* str */
	unsigned fork_gen;          /* tx_fork_generation at open */
	int closed;
	int role;                   /* cached enum tachyon_role */
	uint64_t capacity;
	int peer_self;              /* the peer end is in this process (recv_first) */

	/* Family serialization (tx_family_enter). Read and written with the GIL
	 * held, so a plain flag serializes the fast path, which never lets the
	 * GIL go; only a caller that must wait sleeps, on busy[fam] as a futex
	 * word (the kernel reads it without the GIL). */
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
	uint32_t type_id;
	PyObject *data;             /* bytes */
} MessageObject;

typedef struct {
	PyObject_HEAD
	BusObject *bus;
} BusIterObject;

/* ---- module.c ---------------------------------------------------------- */

extern volatile unsigned tx_fork_generation;

/* Set the exception for a core error code; ctx names the call. */
PyObject *tx_raise(tx_state *st, int err, const char *ctx);
/* tx_raise for a data call on bus: a RingCorruptError says what the peer did. */
PyObject *tx_raise_bus(tx_state *st, tachyon_bus *bus, int err, const char *ctx);
PyObject *tx_raise_forked(tx_state *st);
PyObject *tx_raise_neverfits(size_t size, uint64_t capacity);

/* Parse a timeout (None -> TACHYON_FOREVER, else seconds >= 0) into ns. */
int tx_parse_timeout(PyObject *o, int64_t *ns);
/* Parse a type_id in 0..2**32-1. */
int tx_parse_type_id(PyObject *o, uint32_t *out);
/* Minimal fastcall parser: names[i] for every parameter, the first npos
 * may be positional, the first nreq are required. */
int tx_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int nnames, int npos, int nreq, PyObject **out);

/* Blocking core calls, with the GIL released and signals checked. */
typedef enum { OP_SEND, OP_RESERVE, OP_RECV, OP_RECV_BATCH, OP_ACCEPT, OP_CONNECT } tx_op;
typedef struct {
	tx_op op;
	BusObject *self;            /* NULL for accept/connect */
	int64_t deadline;
	uint32_t spin;
	/* op arguments */
	const void *data;
	size_t size;
	uint32_t type_id;
	void **payload;
	tachyon_msg *msgs;
	size_t max;
	tachyon_listener *listener;
	const char *path;
	tachyon_bus **out;
} tx_call;
/* Returns the core's result; -EINTR means a Python exception is set. */
int tx_blocking(tx_call *c);

/* ---- bus.c ------------------------------------------------------------- */

extern PyType_Spec tx_bus_spec;

/* Family serialization (GIL held). enter returns 0 or -1 with an exception. */
int tx_family_enter(BusObject *self, int fam, int64_t deadline);
void tx_family_exit(BusObject *self, int fam);
/* Check fork and closed; -1 with an exception. */
int tx_bus_usable(BusObject *self);
int tx_bus_want_role(BusObject *self, int role);

/* Pending-slot queue (GIL held). */
int tx_slots_push(BusObject *self, uint64_t end, uint32_t refs, uint64_t *seq);
void tx_slot_incref(BusObject *self, uint64_t seq);
void tx_slot_decref(BusObject *self, uint64_t seq);
/* With the RX lock held: give back the longest released prefix. */
void tx_slots_flush_locked(BusObject *self);
/* With the TX lock held: roll back a reservation whose guard is gone. */
void tx_rollback_locked(BusObject *self);
/* Roll back now if the TX lock is free, else when it is next released. */
void tx_rollback_soon(BusObject *self);

/* ---- message.c --------------------------------------------------------- */

extern PyType_Spec tx_message_spec;
extern PyType_Spec tx_iter_spec;
PyObject *tx_message_new(tx_state *st, const tachyon_msg *m);
/* Free the Message blocks kept for reuse (module teardown). */
void tx_message_freelist_clear(void);
PyObject *tx_bus_iter(PyObject *self);
/* recv one message as a Message; mode 0 recv, 1 try_recv, 2 iteration */
PyObject *tx_bus_recv_message(BusObject *self, int64_t timeout_ns, int mode);

/* ---- guards.c ---------------------------------------------------------- */

extern PyType_Spec tx_txguard_spec;
extern PyType_Spec tx_rxguard_spec;
extern PyType_Spec tx_rxbatch_spec;
extern PyType_Spec tx_rxview_spec;
PyObject *tx_txguard_new(BusObject *bus, void *payload, size_t size, uint32_t type_id);
PyObject *tx_rxguard_new(BusObject *bus, const tachyon_msg *m, uint64_t seq);
PyObject *tx_rxbatch_new(BusObject *bus, const tachyon_msg *m, Py_ssize_t n, uint64_t seq0);
/* Free the guard and view blocks kept for reuse (module teardown). */
void tx_guard_freelists_clear(void);

/* ---- dlpack.c ---------------------------------------------------------- */

/* Export one received slot; pins the slot until the deleter runs. */
PyObject *tx_dlpack_export(BusObject *bus, const tx_rxmsg *m, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
PyObject *tx_dlpack_device(void);
/* Debug counters: contexts created and deleted (tests: deleter exactly once). */
PyObject *tx_dlpack_counters(void);

#endif /* TACHYON_EXT_H */

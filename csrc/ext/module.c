/*
 * tachyon._core: module definition (PEP 489 multi-phase init), module state,
 * the exception tree, error mapping, argument helpers and the one place where
 * the GIL is released around a blocking core call.
 */
#include "ext.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* fork detection                                                            */

/* Bumped in every child after fork(); objects compare it with the value they
 * recorded at creation. Cheaper than getpid() on the per-message path. */
volatile unsigned tx_fork_generation;
static int tx_atfork_registered;

static void tx_after_fork_child(void) { tx_fork_generation++; }

/* ------------------------------------------------------------------------ */
/* errors                                                                    */

PyObject *tx_raise_forked(tx_state *st)
{
	PyErr_SetString(st->TachyonError, "bus inherited across fork(); open a new bus in the child");
	return NULL;
}

static uint64_t capacity_for(size_t size)
{
	/* the smallest ring where the slot fits at any offset: slot <= capacity/2 */
	uint64_t slot = ((uint64_t)size + 64 + 63) & ~(uint64_t)63;
	uint64_t cap = TACHYON_MIN_CAPACITY;
	while (cap < 2 * slot)
		cap <<= 1;
	return cap;
}

PyObject *tx_raise_neverfits(size_t size, uint64_t capacity)
{
	uint64_t need = capacity_for(size);
	uint64_t maxp = capacity / 2 > 64 ? capacity / 2 - 64 : 0;
	if (need > TACHYON_MAX_CAPACITY)
		PyErr_Format(PyExc_ValueError,
		             "a payload of %zu bytes can never fit in a tachyon ring (the largest capacity, "
		             "2**31, carries at most %llu bytes); split it into smaller messages",
		             size, (unsigned long long)(TACHYON_MAX_CAPACITY / 2 - 64));
	else
		PyErr_Format(PyExc_ValueError,
		             "a payload of %zu bytes can never fit in this ring (capacity %llu, max_payload "
		             "%llu); open the bus with capacity >= %llu",
		             size, (unsigned long long)capacity, (unsigned long long)maxp,
		             (unsigned long long)need);
	return NULL;
}

static PyObject *raise_with_reason(tx_state *st, int err, const char *ctx, const char *why);

PyObject *tx_raise(tx_state *st, int err, const char *ctx)
{
	return raise_with_reason(st, err, ctx, NULL);
}

PyObject *tx_raise_bus(tx_state *st, tachyon_bus *bus, int err, const char *ctx)
{
	/* A fatal ring: append what the peer did wrong, when this end knows. */
	const char *why = err == -TACHYON_ECORRUPT ? tachyon_bus_fatal_reason(bus) : NULL;
	return raise_with_reason(st, err, ctx, why);
}

static PyObject *raise_with_reason(tx_state *st, int err, const char *ctx, const char *why)
{
	int e = err < 0 ? -err : err;
	const char *what = tachyon_strerror(e);
	PyObject *type = st->TachyonError;

	if (e == EINTR && PyErr_Occurred())
		return NULL;
	switch (e) {
	case TACHYON_ECLOSED:
		PyErr_Format(st->BusClosedError, "%s: this end of the bus is closed", ctx);
		return NULL;
	case TACHYON_EPEERCLOSED:
		PyErr_Format(st->PeerClosedError,
		             "%s: the peer closed the bus (everything it sent was delivered)", ctx);
		return NULL;
	case TACHYON_EPEERDEAD:
		PyErr_Format(st->PeerDeadError,
		             "%s: the peer process exited without closing the bus (everything it "
		             "published was delivered); reconnect to a new peer",
		             ctx);
		return NULL;
	case TACHYON_ECORRUPT:
		type = st->RingCorruptError;
		break;
	case TACHYON_EABI:
		type = st->AbiMismatchError;
		break;
	case TACHYON_EHANDSHAKE:
		type = st->HandshakeError;
		break;
	case TACHYON_EFORKED:
		return tx_raise_forked(st);
	case TACHYON_ESTUCK:
		break;
	case EAGAIN:
		type = st->BusFullError;
		what = "no room in the ring within the timeout (pass timeout=None to wait for room)";
		break;
	case ETIMEDOUT:
		type = st->TachyonTimeoutError;
		what = "the timeout expired before anything happened";
		break;
	case ENAMETOOLONG:
		type = PyExc_ValueError;
		what = "the socket path is longer than the platform limit (107 bytes)";
		break;
	case EINVAL:
		type = PyExc_ValueError;
		break;
	case ENOMEM:
		PyErr_NoMemory();
		return NULL;
	case EINTR:
		if (PyErr_CheckSignals() < 0)
			return NULL;
		break;
	default:
		break;
	}
	if (e == TACHYON_ECORRUPT && why && why[0])
		PyErr_Format(type, "%s: %s: %s", ctx, what, why);
	else
		PyErr_Format(type, "%s: %s", ctx, what);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* argument helpers                                                          */

int tx_parse_timeout(PyObject *o, int64_t *ns)
{
	double t;
	if (o == NULL || o == Py_None) {
		*ns = TACHYON_FOREVER;
		return 0;
	}
	if (PyFloat_Check(o)) {
		t = PyFloat_AS_DOUBLE(o);
	} else if (PyLong_Check(o)) {
		t = PyLong_AsDouble(o);
		if (t == -1.0 && PyErr_Occurred())
			return -1;
	} else {
		PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %.100s",
		             Py_TYPE(o)->tp_name);
		return -1;
	}
	if (isnan(t) || t < 0) {
		PyErr_SetString(PyExc_ValueError,
		                "timeout must be >= 0 seconds (0: do not wait) or None (no limit)");
		return -1;
	}
	if (t > 4.0e9) /* over a century: no limit */
		*ns = TACHYON_FOREVER;
	else
		*ns = (int64_t)(t * 1e9);
	return 0;
}

int tx_parse_type_id(PyObject *o, uint32_t *out)
{
	int overflow = 0;
	long long v;
	if (o == NULL) {
		*out = 0;
		return 0;
	}
	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "type_id must be an int, not %.100s", Py_TYPE(o)->tp_name);
		return -1;
	}
	v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (overflow || v < 0 || v > 0xFFFFFFFFLL) {
		PyErr_Format(PyExc_ValueError, "type_id must be in 0..2**32-1 (got %R)", o);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int tx_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int nnames, int npos, int nreq, PyObject **out)
{
	Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	int j;
	for (j = 0; j < nnames; j++)
		out[j] = NULL;
	if (nargs > npos) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
		             fname, npos, npos == 1 ? "" : "s", nargs);
		return -1;
	}
	for (i = 0; i < nargs; i++)
		out[i] = args[i];
	for (i = 0; i < nkw; i++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, i);
		for (j = 0; j < nnames; j++)
			if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0)
				break;
		if (j == nnames) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
			             key);
			return -1;
		}
		if (out[j]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
			             names[j]);
			return -1;
		}
		out[j] = args[nargs + i];
	}
	for (j = 0; j < nreq; j++) {
		if (!out[j]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[j]);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* blocking calls                                                            */

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

		if (c->op == OP_RECV || c->op == OP_RECV_BATCH)
			wt.fam = FAM_RX;
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
		}
		PyEval_RestoreThread(wt.ts);

		if (r != -EINTR)
			return r;
		if (wt.why == WHY_EXCEPTION || PyErr_Occurred())
			return -EINTR;
		if (wt.why == WHY_RELEASE) {
			tx_slots_flush_locked(c->self);
			continue;
		}
		/* an EINTR we did not ask for: run handlers, then wait on */
		if (PyErr_CheckSignals() < 0)
			return -EINTR;
	}
}

/* ------------------------------------------------------------------------ */
/* module functions                                                          */

static int part16(PyObject *o, const char *what, long *out)
{
	long v;
	if (!PyLong_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
		return -1;
	}
	v = PyLong_AsLong(o);
	if (v == -1 && PyErr_Occurred()) {
		if (!PyErr_ExceptionMatches(PyExc_OverflowError))
			return -1;
		PyErr_Clear();
		v = -1;
	}
	if (v < 0 || v > 0xFFFF) {
		PyErr_Format(PyExc_ValueError, "%s must be in 0..65535 (got %R)", what, o);
		return -1;
	}
	*out = v;
	return 0;
}

static PyObject *mod_make_type_id(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
	static const char *const names[] = {"route", "msg_type"};
	PyObject *a[2];
	long route, type;
	if (tx_parse_args("make_type_id", args, nargs, kwnames, names, 2, 2, 2, a) < 0)
		return NULL;
	if (part16(a[0], "route", &route) < 0 || part16(a[1], "msg_type", &type) < 0)
		return NULL;
	return PyLong_FromUnsignedLong(((unsigned long)route << 16) | (unsigned long)type);
}

static PyObject *mod_route_id(PyObject *m, PyObject *arg)
{
	uint32_t t;
	if (tx_parse_type_id(arg, &t) < 0)
		return NULL;
	return PyLong_FromUnsignedLong(t >> 16);
}

static PyObject *mod_msg_type(PyObject *m, PyObject *arg)
{
	uint32_t t;
	if (tx_parse_type_id(arg, &t) < 0)
		return NULL;
	return PyLong_FromUnsignedLong(t & 0xFFFF);
}

static PyObject *mod_register_stats_type(PyObject *m, PyObject *cls)
{
	tx_state *st = PyModule_GetState(m);
	if (!PyCallable_Check(cls)) {
		PyErr_SetString(PyExc_TypeError, "BusStats must be a callable type");
		return NULL;
	}
	Py_XSETREF(st->stats_type, Py_NewRef(cls));
	Py_RETURN_NONE;
}

static PyObject *mod_dlpack_counters(PyObject *m, PyObject *unused)
{
	return tx_dlpack_counters();
}

static PyMethodDef module_methods[] = {
	{"make_type_id", (PyCFunction)(void (*)(void))mod_make_type_id, METH_FASTCALL | METH_KEYWORDS,
	 "make_type_id(route, msg_type)\n--\n\n"
	 "Combine a route and a message type (each 0..65535) into a type_id: route << 16 | msg_type."},
	{"route_id", mod_route_id, METH_O,
	 "route_id(type_id, /)\n--\n\nThe route part (bits 31..16) of a type_id."},
	{"msg_type", mod_msg_type, METH_O,
	 "msg_type(type_id, /)\n--\n\nThe message-type part (bits 15..0) of a type_id."},
	{"_register_stats_type", mod_register_stats_type, METH_O,
	 "_register_stats_type(cls, /)\n--\n\nSet the named tuple that Bus.stats returns (internal)."},
	{"_dlpack_counters", mod_dlpack_counters, METH_NOARGS,
	 "_dlpack_counters()\n--\n\n"
	 "(created, deleted) DLPack export contexts since import (tests: every deleter runs once)."},
	{NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* module state and exec                                                     */

static PyObject *new_exc(PyObject *module, const char *name, const char *doc, PyObject *base1,
                         PyObject *base2, PyObject *dict)
{
	PyObject *bases, *exc;
	char full[96];
	snprintf(full, sizeof full, "tachyon.%s", name);
	if (base2)
		bases = PyTuple_Pack(2, base1, base2);
	else
		bases = PyTuple_Pack(1, base1);
	if (!bases)
		return NULL;
	exc = PyErr_NewExceptionWithDoc(full, doc, bases, dict);
	Py_DECREF(bases);
	if (!exc)
		return NULL;
	if (PyModule_AddObjectRef(module, name, exc) < 0) {
		Py_DECREF(exc);
		return NULL;
	}
	return exc;
}

static int add_type(PyObject *module, PyType_Spec *spec, PyObject *base, const char *name,
                    PyTypeObject **slot)
{
	PyObject *t = PyType_FromModuleAndSpec(module, spec, base);
	if (!t)
		return -1;
	*slot = (PyTypeObject *)t;
	return PyModule_AddObjectRef(module, name, t);
}

static int module_exec(PyObject *m)
{
	tx_state *st = PyModule_GetState(m);
	PyObject *dict;

	if (!tx_atfork_registered) {
		if (pthread_atfork(NULL, NULL, tx_after_fork_child) != 0) {
			PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
			return -1;
		}
		tx_atfork_registered = 1;
	}

	st->str_sent = PyUnicode_InternFromString("sent");
	st->str_add_note = PyUnicode_InternFromString("add_note");
	if (!st->str_sent || !st->str_add_note)
		return -1;

	if (!(st->TachyonError = new_exc(m, "TachyonError",
	                                  "Every error the bus raises, except bad arguments "
	                                  "(ValueError / TypeError).",
	                                  PyExc_Exception, NULL, NULL)))
		return -1;
	if (!(st->HandshakeError = new_exc(m, "HandshakeError",
	                                    "listen/connect failed: bad fd, bad credentials, bad region "
	                                    "or a socket path that cannot be used.",
	                                    st->TachyonError, PyExc_ConnectionError, NULL)))
		return -1;
	if (!(st->AbiMismatchError = new_exc(m, "AbiMismatchError",
	                                      "The peer's magic, wire version, alignment or flags differ.",
	                                      st->HandshakeError, NULL, NULL)))
		return -1;
	if (!(st->TachyonTimeoutError = new_exc(m, "TachyonTimeoutError",
	                                         "A blocking call's timeout expired; the call had no "
	                                         "effect.",
	                                         st->TachyonError, PyExc_TimeoutError, NULL)))
		return -1;
	dict = Py_BuildValue("{s:i}", "sent", 0);
	if (!dict)
		return -1;
	st->BusFullError = new_exc(m, "BusFullError",
	                           "send found no room within its timeout. For send_many, `sent` is "
	                           "the number of items that were sent before it.",
	                           st->TachyonTimeoutError, NULL, dict);
	Py_DECREF(dict);
	if (!st->BusFullError)
		return -1;
	if (!(st->ConnectTimeoutError = new_exc(m, "ConnectTimeoutError",
	                                         "No listener or no complete handshake within the "
	                                         "connect timeout.",
	                                         st->TachyonTimeoutError, PyExc_ConnectionError, NULL)))
		return -1;
	if (!(st->BusClosedError = new_exc(m, "BusClosedError",
	                                    "This end was closed (by us, or from another thread).",
	                                    st->TachyonError, NULL, NULL)))
		return -1;
	if (!(st->PeerClosedError = new_exc(m, "PeerClosedError",
	                                     "The peer called close() and everything it sent was "
	                                     "delivered; iteration turns it into StopIteration.",
	                                     st->TachyonError, PyExc_EOFError, NULL)))
		return -1;
	if (!(st->PeerDeadError = new_exc(m, "PeerDeadError",
	                                   "The peer process exited without close(); everything it "
	                                   "published was delivered first.",
	                                   st->TachyonError, NULL, NULL)))
		return -1;
	if (!(st->RingCorruptError = new_exc(m, "RingCorruptError",
	                                      "The ring is fatal (state 4): nothing more is delivered.",
	                                      st->PeerDeadError, NULL, NULL)))
		return -1;

	if (add_type(m, &tx_bus_spec, NULL, "TachyonBus", &st->bus_type) < 0 ||
	    add_type(m, &tx_iter_spec, NULL, "BusIterator", &st->iter_type) < 0 ||
	    add_type(m, &tx_message_spec, NULL, "Message", &st->message_type) < 0 ||
	    add_type(m, &tx_txguard_spec, NULL, "TxGuard", &st->txguard_type) < 0 ||
	    add_type(m, &tx_rxguard_spec, NULL, "RxGuard", &st->rxguard_type) < 0 ||
	    add_type(m, &tx_rxbatch_spec, NULL, "RxBatchGuard", &st->rxbatch_type) < 0 ||
	    add_type(m, &tx_rxview_spec, NULL, "RxMsgView", &st->rxview_type) < 0)
		return -1;

	if (PyModule_AddStringConstant(m, "CORE_VERSION", TACHYON_VERSION_STRING) < 0 ||
	    PyModule_AddIntConstant(m, "WATCHDOG_MS", TACHYON_WATCHDOG_MS) < 0 ||
	    PyModule_AddIntConstant(m, "WIRE_VERSION", TACHYON_WIRE_VERSION) < 0)
		return -1;
	return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
	tx_state *st = PyModule_GetState(m);
	if (!st)
		return 0;
	Py_VISIT(st->bus_type);
	Py_VISIT(st->iter_type);
	Py_VISIT(st->message_type);
	Py_VISIT(st->txguard_type);
	Py_VISIT(st->rxguard_type);
	Py_VISIT(st->rxbatch_type);
	Py_VISIT(st->rxview_type);
	Py_VISIT(st->TachyonError);
	Py_VISIT(st->HandshakeError);
	Py_VISIT(st->AbiMismatchError);
	Py_VISIT(st->TachyonTimeoutError);
	Py_VISIT(st->BusFullError);
	Py_VISIT(st->ConnectTimeoutError);
	Py_VISIT(st->BusClosedError);
	Py_VISIT(st->PeerClosedError);
	Py_VISIT(st->PeerDeadError);
	Py_VISIT(st->RingCorruptError);
	Py_VISIT(st->stats_type);
	return 0;
}

static int module_clear(PyObject *m)
{
	tx_state *st = PyModule_GetState(m);
	if (!st)
		return 0;
	Py_CLEAR(st->bus_type);
	Py_CLEAR(st->iter_type);
	Py_CLEAR(st->message_type);
	Py_CLEAR(st->txguard_type);
	Py_CLEAR(st->rxguard_type);
	Py_CLEAR(st->rxbatch_type);
	Py_CLEAR(st->rxview_type);
	Py_CLEAR(st->TachyonError);
	Py_CLEAR(st->HandshakeError);
	Py_CLEAR(st->AbiMismatchError);
	Py_CLEAR(st->TachyonTimeoutError);
	Py_CLEAR(st->BusFullError);
	Py_CLEAR(st->ConnectTimeoutError);
	Py_CLEAR(st->BusClosedError);
	Py_CLEAR(st->PeerClosedError);
	Py_CLEAR(st->PeerDeadError);
	Py_CLEAR(st->RingCorruptError);
	Py_CLEAR(st->stats_type);
	Py_CLEAR(st->str_sent);
	Py_CLEAR(st->str_add_note);
	return 0;
}

static void module_free(void *m)
{
	module_clear((PyObject *)m);
	tx_message_freelist_clear();
	tx_guard_freelists_clear();
}

static PyModuleDef_Slot module_slots[] = {
	{Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
	/* DLPack deleters take the GIL with PyGILState_Ensure, which knows only
	 * the main interpreter. */
	{Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
	{0, NULL},
};

static struct PyModuleDef tx_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "tachyon._core",
	.m_doc = "The tachyon shared-memory bus (extension module; import tachyon instead).",
	.m_size = sizeof(tx_state),
	.m_methods = module_methods,
	.m_slots = module_slots,
	.m_traverse = module_traverse,
	.m_clear = module_clear,
	.m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void);
PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&tx_module); }

/*
 * tachyon._core: the module definition (PEP 489 multi-phase init), its
 * state (types, exceptions, BusStats), and the module-level functions.
 */
#include "ext.h"

#include "args.h"
#include "bus.h"
#include "dlpack.h"
#include "guards.h"
#include "message.h"

/* ------------------------------------------------------------------------ */
/* module functions                                                          */

static int part16(PyObject *o, const char *what, long *out)
{
	long v;
	/* bool refused, as for a whole type_id (args.c) */
	if (!PyLong_Check(o) || PyBool_Check(o)) {
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

/* BusStats, what Bus.stats returns: a named tuple made here, so that the
 * extension owns the type it fills (field order: Bus_get_stats). */
static const char STATS_DOC[] =
	"A snapshot of one bus end (Bus.stats).\n\n"
	"ring_capacity   data ring size in bytes\n"
	"ring_occupancy  bytes published and not yet released (shared head - shared tail)\n"
	"consumer_state  the consumer wait word: 0 awake, 1 sleeping, 2 pure spin\n"
	"state           the ring state word: 2 ready, 3 closed, 4 fatal\n"
	"pinned_bytes    consumer end: bytes read but held back by live zero-copy exports\n"
	"lost_wakeups    consumer end: futex waits that timed out although data had arrived\n"
	"peer_pid        the peer's pid, None when unknown";

static int add_stats_type(PyObject *m, tx_state *st)
{
	PyObject *collections, *namedtuple = NULL, *args = NULL, *kwargs = NULL, *cls = NULL;
	PyObject *doc = NULL;
	int r = -1;
	collections = PyImport_ImportModule("collections");
	if (collections)
		namedtuple = PyObject_GetAttrString(collections, "namedtuple");
	args = Py_BuildValue("s(sssssss)", "BusStats", "ring_capacity", "ring_occupancy",
	                     "consumer_state", "state", "pinned_bytes", "lost_wakeups", "peer_pid");
	/* module: pickle finds the class as tachyon.BusStats */
	kwargs = Py_BuildValue("{s:s}", "module", "tachyon");
	doc = PyUnicode_FromString(STATS_DOC);
	if (namedtuple && args && kwargs && doc)
		cls = PyObject_Call(namedtuple, args, kwargs);
	if (cls && PyObject_SetAttrString(cls, "__doc__", doc) == 0 &&
	    PyModule_AddObjectRef(m, "BusStats", cls) == 0) {
		st->stats_type = Py_NewRef(cls);
		r = 0;
	}
	Py_XDECREF(doc);
	Py_XDECREF(cls);
	Py_XDECREF(kwargs);
	Py_XDECREF(args);
	Py_XDECREF(namedtuple);
	Py_XDECREF(collections);
	return r;
}

static int module_exec(PyObject *m)
{
	tx_state *st = PyModule_GetState(m);
	PyObject *dict;

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

	if (add_stats_type(m, st) < 0)
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

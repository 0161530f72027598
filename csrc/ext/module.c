/*
 * tachyon._core: the module definition (PEP 489 multi-phase init), its
 * state (types, exceptions, BusStats), and the module-level functions.
 */
#include "ext.h"

#include "args.h"
#include "bus.h"
#include "dlpack.h"
#include "foreign.h"
#include "frames.h"
#include "guards.h"
#include "message.h"
#include "rpc.h"
#include "waitany.h"

/* ------------------------------------------------------------------------ */
/* module functions                                                          */

static int part16(PyObject *o, const char *what, long *out)
{
	long v;
	/* as for a whole type_id (args.c) */
	PyObject *i = tx_as_int(o, what);
	if (!i)
		return -1;
	v = PyLong_AsLong(i);
	Py_DECREF(i);
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

static PyObject *mod_frame_zero_copy(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	tx_state *st = PyModule_GetState(m);
	return tx_frame_zero_copy(args, nargs, st->txguard_type);
}

/* The one integer rule (args.c) for the package's Python-level calls. */
static PyObject *mod_frame_bytes(PyObject *m, PyObject *obj)
{
	return tx_frame_bytes(obj);
}

static PyObject *mod_as_int(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	const char *what;
	if (nargs != 2 || !PyUnicode_Check(args[1])) {
		PyErr_SetString(PyExc_TypeError, "_as_int(value, what, /): what is a str");
		return NULL;
	}
	what = PyUnicode_AsUTF8(args[1]);
	return what ? tx_as_int(args[0], what) : NULL;
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
	{"_frame_zero_copy", (PyCFunction)(void (*)(void))mod_frame_zero_copy, METH_FASTCALL,
	 "_frame_zero_copy(guard, shape, code, bits, typestr, /)\n--\n\n"
	 "Write a C-contiguous tensor frame header into an open TxGuard (or a tcp:// bus's\n"
	 "NetTxGuard, a writable buffer), set its actual_size, and return an __array_interface__\n"
	 "dict over the frame's data (send_array_zero_copy)."},
	{"_frame_bytes", (PyCFunction)mod_frame_bytes, METH_O,
	 "_frame_bytes(obj, /)\n--\n\n"
	 "obj (anything send_array takes) as the bytes of a tensor frame: header, then its data in\n"
	 "C order (a tcp:// bus's send_array)."},
	{"_as_int", (PyCFunction)(void (*)(void))mod_as_int, METH_FASTCALL,
	 "_as_int(value, what, /)\n--\n\n"
	 "value as an int by the rule of every integer argument: an int or any object with\n"
	 "__index__, never a bool (Python's or numpy's); TypeError naming `what` otherwise."},
	{"_wait_any", (PyCFunction)(void (*)(void))tx_wait_any, METH_FASTCALL | METH_KEYWORDS,
	 "_wait_any(buses, timeout=None, *, spin=0)\n--\n\n"
	 "The indices of the buses among `buses` whose receive would return (or raise) at once;\n"
	 "[] when timeout passed first. Takes no message (tachyon.wait). spin: pauses before\n"
	 "the first sleep (0: the default)."},
	{"_wait_room", (PyCFunction)(void (*)(void))tx_wait_room, METH_FASTCALL | METH_KEYWORDS,
	 "_wait_room(bus, size, timeout=None)\n--\n\n"
	 "True when a send of `size` bytes on producer end `bus` would find room (or raise) at\n"
	 "once, False when timeout passed first. Reserves nothing (Bus.send_async)."},
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
 * extension owns the type it fills (field order: Bus_get_stats). The tuple
 * keeps its seven fields (code that unpacks it keeps working); the traffic
 * counters are attributes outside the tuple, the way os.stat_result keeps
 * st_atime_ns out of its tuple. */
static const char STATS_DOC[] =
	"A snapshot of one bus end (Bus.stats).\n\n"
	"ring_capacity   data ring size in bytes\n"
	"ring_occupancy  bytes published and not yet released (shared head - shared tail)\n"
	"consumer_state  the consumer wait word, a ConsumerState: 0 awake, 1 sleeping, 2 pure spin\n"
	"state           the ring state word, a BusState: 2 ready, 3 closed, 4 fatal\n"
	"pinned_bytes    consumer end: bytes read but held back by live zero-copy exports\n"
	"lost_wakeups    consumer end: futex waits that timed out although data had arrived\n"
	"peer_pid        the peer's pid, None when unknown\n\n"
	"Attributes outside the tuple (the ring's traffic counters, as each side last\n"
	"published them; 0 for a side held by a tachyon-ipc 0.5.1 peer):\n"
	"sent_messages, sent_bytes          the producer's, payload bytes\n"
	"received_messages, received_bytes  the consumer's, payload bytes";

/* BusStats.__repr__: the named tuple's, with the counters after the fields. */
static PyObject *stats_repr(PyObject *unused, PyObject *self)
{
	PyObject *base = PyObject_GetAttrString((PyObject *)Py_TYPE(self)->tp_base, "__repr__");
	PyObject *r = base ? PyObject_CallOneArg(base, self) : NULL;
	Py_XDECREF(base);
	if (!r)
		return NULL;
	Py_ssize_t n = PyUnicode_GetLength(r);
	PyObject *head = n > 0 ? PyUnicode_Substring(r, 0, n - 1) : NULL; /* drop ")" */
	Py_DECREF(r);
	if (!head)
		return NULL;
	for (int i = 0; i < TX_STATS_EXTRA && head; i++) {
		PyObject *v = PyObject_GetAttrString(self, tx_stats_extra[i]);
		PyObject *next = v ? PyUnicode_FromFormat("%U, %s=%R", head, tx_stats_extra[i], v) : NULL;
		Py_XDECREF(v);
		Py_SETREF(head, next);
	}
	if (!head)
		return NULL;
	PyObject *out = PyUnicode_FromFormat("%U)", head);
	Py_DECREF(head);
	return out;
}

static PyMethodDef stats_repr_def = {"__repr__", stats_repr, METH_O, NULL};

/* A counter's getter: the function's self is the counter's name, and the
 * value sits under that name in the instance's __dict__ (Bus_get_stats). A
 * read-only property per counter, so that the class itself declares them. */
static PyObject *stats_counter(PyObject *name, PyObject *self)
{
	PyObject *d = PyObject_GenericGetDict(self, NULL);
	PyObject *v = d ? PyDict_GetItemWithError(d, name) : NULL;
	Py_XDECREF(d);
	if (!v) {
		if (!PyErr_Occurred())
			PyErr_Format(PyExc_AttributeError, "this BusStats has no %R", name);
		return NULL;
	}
	return Py_NewRef(v);
}

static PyMethodDef stats_counter_def = {"counter", stats_counter, METH_O, NULL};

static int add_counter_properties(PyObject *ns)
{
	for (int i = 0; i < TX_STATS_EXTRA; i++) {
		PyObject *name = PyUnicode_FromString(tx_stats_extra[i]);
		PyObject *get = name ? PyCFunction_New(&stats_counter_def, name) : NULL;
		PyObject *prop = get ? PyObject_CallOneArg((PyObject *)&PyProperty_Type, get) : NULL;
		int r = prop ? PyDict_SetItem(ns, name, prop) : -1;
		Py_XDECREF(prop);
		Py_XDECREF(get);
		Py_XDECREF(name);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int add_stats_type(PyObject *m, tx_state *st)
{
	PyObject *collections, *namedtuple = NULL, *args = NULL, *kwargs = NULL, *base = NULL;
	PyObject *fn = NULL, *meth = NULL, *ns = NULL, *cls = NULL;
	int r = -1;
	collections = PyImport_ImportModule("collections");
	if (collections)
		namedtuple = PyObject_GetAttrString(collections, "namedtuple");
	args = Py_BuildValue("s(sssssss)", "BusStats", "ring_capacity", "ring_occupancy",
	                     "consumer_state", "state", "pinned_bytes", "lost_wakeups", "peer_pid");
	/* module: pickle finds the class as tachyon.BusStats */
	kwargs = Py_BuildValue("{s:s}", "module", "tachyon");
	if (namedtuple && args && kwargs)
		base = PyObject_Call(namedtuple, args, kwargs);
	fn = PyCFunction_New(&stats_repr_def, NULL);
	if (fn)
		meth = PyInstanceMethod_New(fn); /* binds like a function: self comes first */
	/* No __slots__: the counters live in each instance's __dict__, behind
	 * read-only properties. */
	if (base && meth)
		ns = Py_BuildValue("{s:s,s:s,s:O}", "__doc__", STATS_DOC, "__module__", "tachyon",
		                   "__repr__", meth);
	if (ns && add_counter_properties(ns) < 0)
		Py_CLEAR(ns);
	if (ns)
		cls = PyObject_CallFunction((PyObject *)&PyType_Type, "s(O)O", "BusStats", base, ns);
	if (cls && PyModule_AddObjectRef(m, "BusStats", cls) == 0) {
		st->stats_type = Py_NewRef(cls);
		r = 0;
	}
	Py_XDECREF(cls);
	Py_XDECREF(ns);
	Py_XDECREF(meth);
	Py_XDECREF(fn);
	Py_XDECREF(base);
	Py_XDECREF(kwargs);
	Py_XDECREF(args);
	Py_XDECREF(namedtuple);
	Py_XDECREF(collections);
	return r;
}

/* BusState and ConsumerState, the IntEnums of the two words stats shows. */
static PyObject *new_int_enum(PyObject *m, PyObject *intenum, const char *name, const char *doc,
                              PyObject *members)
{
	PyObject *kw = Py_BuildValue("{s:s}", "module", "tachyon");
	PyObject *a = members ? Py_BuildValue("(sO)", name, members) : NULL;
	PyObject *cls = kw && a ? PyObject_Call(intenum, a, kw) : NULL;
	Py_XDECREF(a);
	Py_XDECREF(kw);
	if (!cls)
		return NULL;
	PyObject *d = PyUnicode_FromString(doc);
	if (!d || PyObject_SetAttrString(cls, "__doc__", d) < 0 ||
	    PyModule_AddObjectRef(m, name, cls) < 0) {
		Py_XDECREF(d);
		Py_DECREF(cls);
		return NULL;
	}
	Py_DECREF(d);
	return cls;
}

static int add_state_enums(PyObject *m, tx_state *st)
{
	PyObject *mod = PyImport_ImportModule("enum");
	PyObject *intenum = mod ? PyObject_GetAttrString(mod, "IntEnum") : NULL;
	Py_XDECREF(mod);
	if (!intenum)
		return -1;
	PyObject *bus_members = Py_BuildValue(
	        "[(sI)(sI)(sI)(sI)(sI)]", "UNINITIALIZED", TACHYON_STATE_UNINITIALIZED,
	        "INITIALIZING", TACHYON_STATE_INITIALIZING, "READY", TACHYON_STATE_READY, "CLOSED",
	        TACHYON_STATE_CLOSED, "FATAL", TACHYON_STATE_FATAL);
	PyObject *wait_members = Py_BuildValue("[(sI)(sI)(sI)]", "AWAKE", TACHYON_WAIT_AWAKE,
	                                       "SLEEPING", TACHYON_WAIT_SLEEPING, "PURE_SPIN",
	                                       TACHYON_WAIT_PURE_SPIN);
	st->bus_state_enum = new_int_enum(m, intenum, "BusState",
	                                  "The ring's state word (ABI.md): READY, CLOSED by an end, or "
	                                  "FATAL after a broken rule.",
	                                  bus_members);
	st->consumer_state_enum = new_int_enum(m, intenum, "ConsumerState",
	                                       "The consumer wait word (ABI.md): AWAKE, SLEEPING in a "
	                                       "futex wait, or PURE_SPIN (never sleeps).",
	                                       wait_members);
	Py_XDECREF(bus_members);
	Py_XDECREF(wait_members);
	Py_DECREF(intenum);
	return st->bus_state_enum && st->consumer_state_enum ? 0 : -1;
}

static int module_exec(PyObject *m)
{
	tx_state *st = PyModule_GetState(m);
	PyObject *dict;

	st->str_sent = PyUnicode_InternFromString("sent");
	st->str_add_note = PyUnicode_InternFromString("add_note");
	if (!st->str_sent || !st->str_add_note)
		return -1;
	st->str_unreleased_bytes = PyUnicode_InternFromString("unreleased_bytes");
	st->str_unreleased_messages = PyUnicode_InternFromString("unreleased_messages");
	if (!st->str_unreleased_bytes || !st->str_unreleased_messages)
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
	/* What a producer sent that its departed consumer never released: ring
	 * bytes and messages, set on the producer side; None where unknown. */
	dict = Py_BuildValue("{s:O,s:O}", "unreleased_bytes", Py_None, "unreleased_messages", Py_None);
	if (!dict)
		return -1;
	st->PeerClosedError = new_exc(m, "PeerClosedError",
	                              "The peer called close(). A consumer gets it after everything "
	                              "was delivered (iteration turns it into StopIteration); a "
	                              "producer learns from unreleased_bytes and "
	                              "unreleased_messages what the consumer left unreleased.",
	                              st->TachyonError, PyExc_EOFError, dict);
	st->PeerDeadError = st->PeerClosedError
	                            ? new_exc(m, "PeerDeadError",
	                                      "The peer process exited without close(). A consumer "
	                                      "gets it after everything published was delivered; a "
	                                      "producer learns from unreleased_bytes and "
	                                      "unreleased_messages what the consumer left unreleased.",
	                                      st->TachyonError, NULL, dict)
	                            : NULL;
	Py_DECREF(dict);
	if (!st->PeerDeadError)
		return -1;
	if (!(st->RingCorruptError = new_exc(m, "RingCorruptError",
	                                      "The ring is fatal (state 4): nothing more is delivered.",
	                                      st->PeerDeadError, NULL, NULL)))
		return -1;
	if (!(st->RoleError = new_exc(m, "RoleError",
	                               "A bus carries one direction: the other end already holds "
	                               "this role, or this end has the other one. The end stays "
	                               "usable in its own (or the other) role.",
	                               st->TachyonError, NULL, NULL)))
		return -1;

	if (add_stats_type(m, st) < 0 || add_state_enums(m, st) < 0)
		return -1;

	if (add_type(m, &tx_bus_spec, NULL, "TachyonBus", &st->bus_type) < 0 ||
	    add_type(m, &tx_iter_spec, NULL, "BusIterator", &st->iter_type) < 0 ||
	    add_type(m, &tx_message_spec, NULL, "Message", &st->message_type) < 0 ||
	    add_type(m, &tx_txguard_spec, NULL, "TxGuard", &st->txguard_type) < 0 ||
	    add_type(m, &tx_rxguard_spec, NULL, "RxGuard", &st->rxguard_type) < 0 ||
	    add_type(m, &tx_rxbatch_spec, NULL, "RxBatchGuard", &st->rxbatch_type) < 0 ||
	    add_type(m, &tx_rxview_spec, NULL, "RxMsgView", &st->rxview_type) < 0 ||
	    !(st->rxbatchiter_type = (PyTypeObject *)PyType_FromModuleAndSpec(
	              m, &tx_rxbatchiter_spec, NULL)) ||
	    add_type(m, &tx_rpc_spec, NULL, "RpcBus", &st->rpc_type) < 0 ||
	    add_type(m, &tx_rpc_rxguard_spec, NULL, "RpcRxGuard", &st->rpc_rxguard_type) < 0 ||
	    add_type(m, &tx_rpc_txguard_spec, NULL, "RpcTxGuard", &st->rpc_txguard_type) < 0 ||
	    tx_foreign_add(m) < 0)
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
	Py_VISIT(st->rxbatchiter_type);
	Py_VISIT(st->rpc_type);
	Py_VISIT(st->rpc_rxguard_type);
	Py_VISIT(st->rpc_txguard_type);
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
	Py_VISIT(st->RoleError);
	Py_VISIT(st->stats_type);
	Py_VISIT(st->bus_state_enum);
	Py_VISIT(st->consumer_state_enum);
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
	Py_CLEAR(st->rxbatchiter_type);
	Py_CLEAR(st->rpc_type);
	Py_CLEAR(st->rpc_rxguard_type);
	Py_CLEAR(st->rpc_txguard_type);
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
	Py_CLEAR(st->RoleError);
	Py_CLEAR(st->stats_type);
	Py_CLEAR(st->bus_state_enum);
	Py_CLEAR(st->consumer_state_enum);
	Py_CLEAR(st->str_sent);
	Py_CLEAR(st->str_add_note);
	Py_CLEAR(st->str_unreleased_bytes);
	Py_CLEAR(st->str_unreleased_messages);
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

/*
 * RpcBus: the request/reply bus of tachyon-ipc 0.5.1 (ABI.md, "The
 * request/reply bus"), with 0.5.1's method names and signatures.
 *
 * The core hands out one ordinary bus per ring (tachyon_rpc_requests,
 * tachyon_rpc_replies); an RpcBus keeps a TachyonBus over each, so every
 * call here runs on the plain bus's machinery: family serialization,
 * blocking with the GIL released, signals, close from another thread, the
 * pending-slot queue, and the guards (an RpcRxGuard wraps an RxGuard, with
 * its buffer, DLPack and array frames; an RpcTxGuard wraps a TxGuard). What
 * this file adds is the correlation id: stamped before a commit, checked
 * after a receive, through the core's tachyon_rpc_* calls.
 *
 * Reply order. Replies come in request order, so a caller waits for the
 * oldest unanswered call; request() that gives up (timeout, Ctrl-C) marks
 * its id abandoned, and the next wait drops that reply when it arrives
 * instead of refusing to go past it.
 */
#include "rpc.h"

#include "args.h"
#include "bus.h"
#include "calls.h"
#include "family.h"
#include "frames.h"
#include "guards.h"
#include "message.h"

#define RPC_DEFAULT_SPIN 10000u

typedef struct {
	PyObject_HEAD
	PyObject *module;           /* strong: keeps the state alive */
	tx_state *st;
	tachyon_rpc *rpc;           /* one reference */
	BusObject *fwd;             /* requests (strong) */
	BusObject *rev;             /* replies (strong) */
	int callee;                 /* the listener end */
	uint64_t abandoned;         /* caller: replies up to this id are dropped on arrival */
} RpcBusObject;

typedef struct {
	PyObject_HEAD
	PyObject *inner;            /* the RxGuard over the slot */
	uint64_t cid;
} RpcRxGuardObject;

typedef struct {
	PyObject_HEAD
	RpcBusObject *owner;
	TxGuardObject *inner;       /* the TxGuard over the reservation */
	uint64_t cid;               /* reply: the request's id; call: set once sent */
	int is_reply;
	int sent;
} RpcTxGuardObject;

/* ------------------------------------------------------------------------ */
/* arguments                                                                 */

static int parse_msg_type(PyObject *o, uint16_t *out)
{
	PyObject *n = tx_as_int(o, "msg_type");
	if (!n)
		return -1;
	long v = PyLong_AsLong(n);
	Py_DECREF(n);
	if (v == -1 && PyErr_Occurred())
		PyErr_Clear(); /* out of range for a long: refused below */
	if (v < 0 || v > 0xFFFF) {
		PyErr_Format(PyExc_ValueError,
		             "msg_type must be in 0..65535 (request/reply messages carry route 0); "
		             "got %R",
		             o);
		return -1;
	}
	*out = (uint16_t)v;
	return 0;
}

static int parse_cid(PyObject *o, uint64_t *out)
{
	PyObject *n = tx_as_int(o, "correlation_id");
	if (!n)
		return -1;
	unsigned long long v = PyLong_AsUnsignedLongLong(n);
	Py_DECREF(n);
	if (v == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Clear();
		PyErr_Format(PyExc_ValueError, "correlation_id must be in 1..2**64-1 (got %R)", o);
		return -1;
	}
	*out = v;
	return 0;
}

/* spin_threshold: 0.5.1's spin before sleeping (None/absent: its default). */
static int parse_spin(PyObject *o, uint32_t *spin)
{
	Py_ssize_t v;
	*spin = RPC_DEFAULT_SPIN;
	if (!o || o == Py_None)
		return 0;
	if (tx_parse_index(o, "spin_threshold", &v) < 0)
		return -1;
	if (v < 0 || (unsigned long long)v > 0xFFFFFFFFull) {
		PyErr_Format(PyExc_ValueError, "spin_threshold must be in 0..2**32-1 (got %R)", o);
		return -1;
	}
	*spin = v == 0 ? 1u : (uint32_t)v; /* the core reads 0 as "its default" */
	return 0;
}

static int parse_capacity(PyObject *o, const char *what, uint64_t *out)
{
	PyObject *n = tx_as_int(o, what);
	if (!n)
		return -1;
	unsigned long long cap = PyLong_AsUnsignedLongLong(n);
	Py_DECREF(n);
	if (cap == (unsigned long long)-1 && PyErr_Occurred()) {
		PyErr_Clear();
		cap = 0;
	}
	if (!tachyon_capacity_valid(cap)) {
		PyErr_Format(PyExc_ValueError,
		             "%s must be a power of two between 64 and 2**31 bytes (got %R); e.g. 1 << 16",
		             what, o);
		return -1;
	}
	*out = cap;
	return 0;
}

/* The end must be the caller (want_callee 0) or the callee (1). */
static int check_side(RpcBusObject *self, int want_callee, const char *fname)
{
	if (self->callee == want_callee)
		return 0;
	PyErr_Format(self->st->RoleError,
	             want_callee ? "%s: this end is the caller (it connected); only the end that "
	                           "listened serves and replies"
	                         : "%s: this end is the callee (it listened); calls go from the end "
	                           "that connected",
	             fname);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* guards                                                                    */

static PyObject *rx_wrap(tx_state *st, PyObject *inner, uint64_t cid)
{
	RpcRxGuardObject *g;
	if (!inner)
		return NULL;
	g = PyObject_GC_New(RpcRxGuardObject, st->rpc_rxguard_type);
	if (!g) {
		Py_DECREF(inner);
		return NULL;
	}
	g->inner = inner;
	g->cid = cid;
	PyObject_GC_Track(g);
	return (PyObject *)g;
}

/* Call method `name` of the wrapped guard with these arguments. */
static PyObject *forward(PyObject *inner, const char *name, PyObject *const *args, size_t nargsf,
                         PyObject *kwnames)
{
	PyObject *m = PyObject_GetAttrString(inner, name), *r;
	if (!m)
		return NULL;
	r = PyObject_Vectorcall(m, args, PyVectorcall_NARGS(nargsf), kwnames);
	Py_DECREF(m);
	return r;
}

static PyObject *RpcRx_dlpack(RpcRxGuardObject *g, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
	return forward(g->inner, "__dlpack__", args, (size_t)nargs, kwnames);
}

static PyObject *RpcRx_dlpack_device(RpcRxGuardObject *g, PyObject *unused)
{
	return forward(g->inner, "__dlpack_device__", NULL, 0, NULL);
}

/* The type_id of a request or reply is the user's msg_type, so the frame
 * is recognised by its header alone (ABI.md, "Tensor frames on the
 * request/reply bus"); the array holds a buffer export of the RxGuard,
 * which pins the slot. */
static PyObject *RpcRx_array(RpcRxGuardObject *g, PyObject *unused)
{
	RxGuardObject *in = (RxGuardObject *)g->inner;
	tachyon_tensor_frame f;
	if (in->spent)
		return forward(g->inner, "array", NULL, 0, NULL); /* its refusal, in its words */
	if (tx_payload_frame_of(in->msg.data, in->msg.size, in->msg.type_id, &f, PyExc_ValueError) < 0)
		return NULL;
	return tx_frame_array(g->inner, &f);
}

static PyObject *RpcRx_get_type_id(RpcRxGuardObject *g, void *c)
{
	return PyLong_FromUnsignedLong(((RxGuardObject *)g->inner)->msg.type_id);
}

static PyObject *RpcRx_get_actual_size(RpcRxGuardObject *g, void *c)
{
	return PyLong_FromUnsignedLong(((RxGuardObject *)g->inner)->msg.size);
}

static int RpcRx_getbuffer(RpcRxGuardObject *g, Py_buffer *view, int flags)
{
	/* The view's owner is the RxGuard, which counts it and keeps the slot. */
	return PyObject_GetBuffer(g->inner, view, flags);
}

static PyObject *RpcRx_enter(RpcRxGuardObject *g, PyObject *unused)
{
	if (((RxGuardObject *)g->inner)->spent) {
		/* the RxGuard's own refusal, with its words */
		PyObject *r = forward(g->inner, "__enter__", NULL, 0, NULL);
		Py_XDECREF(r);
		return NULL;
	}
	return Py_NewRef(g);
}

static PyObject *RpcRx_exit(RpcRxGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
	tx_rxguard_release((RxGuardObject *)g->inner); /* never raises */
	Py_RETURN_FALSE;
}

static PyObject *RpcRx_get_cid(RpcRxGuardObject *g, void *c)
{
	return PyLong_FromUnsignedLongLong(g->cid);
}

static int RpcRx_traverse(RpcRxGuardObject *g, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(g));
	Py_VISIT(g->inner);
	return 0;
}

static int RpcRx_clear(RpcRxGuardObject *g)
{
	Py_CLEAR(g->inner);
	return 0;
}

static void RpcRx_dealloc(RpcRxGuardObject *g)
{
	PyTypeObject *tp = Py_TYPE(g);
	PyObject_GC_UnTrack(g);
	Py_CLEAR(g->inner); /* the RxGuard gives the slot back */
	PyObject_GC_Del(g);
	Py_DECREF(tp);
}

static PyMethodDef RpcRx_methods[] = {
	{"array", (PyCFunction)RpcRx_array, METH_NOARGS,
	 "array($self, /)\n--\n\n"
	 "The tensor frame in the slot (call_array, reply_array) as a read-only numpy array of its\n"
	 "dtype and shape, in place; it pins the slot until it is gone. The payload's header alone\n"
	 "says it is a frame: TypeError when it has none, ValueError when it fails a check."},
	{"__dlpack__", (PyCFunction)(void (*)(void))RpcRx_dlpack, METH_FASTCALL | METH_KEYWORDS,
	 "__dlpack__($self, /, stream=None, *, max_version=None, dl_device=None, copy=None)\n--\n\n"
	 "The payload as a 1-D uint8 DLPack capsule, without a copy (RxGuard.__dlpack__), frame\n"
	 "or not: for a frame's dtype and shape, export .array() instead."},
	{"__dlpack_device__", (PyCFunction)RpcRx_dlpack_device, METH_NOARGS,
	 "__dlpack_device__($self, /)\n--\n\n(kDLCPU, 0)."},
	{"__enter__", (PyCFunction)RpcRx_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))RpcRx_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\nRelease the slot to the producer."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef RpcRx_getset[] = {
	{"correlation_id", (getter)RpcRx_get_cid, NULL, "The id of the call this message belongs to.",
	 NULL},
	{"type_id", (getter)RpcRx_get_type_id, NULL, "The message's type_id (its msg_type, route 0).",
	 NULL},
	{"actual_size", (getter)RpcRx_get_actual_size, NULL, "Payload size in bytes.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RpcRx_slots[] = {
	{Py_tp_doc, "A received request or reply in place (RpcBus.serve, RpcBus.wait): an RxGuard "
	            "(buffer, type_id, actual_size, __dlpack__, array) with its correlation_id."},
	{Py_tp_dealloc, RpcRx_dealloc},
	{Py_tp_traverse, RpcRx_traverse},
	{Py_tp_clear, RpcRx_clear},
	{Py_tp_methods, RpcRx_methods},
	{Py_tp_getset, RpcRx_getset},
	{Py_bf_getbuffer, RpcRx_getbuffer},
	{0, NULL},
};

PyType_Spec tx_rpc_rxguard_spec = {
	.name = "tachyon.RpcRxGuard",
	.basicsize = sizeof(RpcRxGuardObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RpcRx_slots,
};

static PyObject *tx_wrap(RpcBusObject *owner, PyObject *inner, int is_reply, uint64_t cid)
{
	RpcTxGuardObject *g;
	if (!inner)
		return NULL;
	g = PyObject_GC_New(RpcTxGuardObject, owner->st->rpc_txguard_type);
	if (!g) {
		Py_DECREF(inner);
		return NULL;
	}
	g->owner = (RpcBusObject *)Py_NewRef(owner);
	g->inner = (TxGuardObject *)inner;
	g->is_reply = is_reply;
	g->cid = cid;
	g->sent = 0;
	PyObject_GC_Track(g);
	return (PyObject *)g;
}

static int RpcTx_getbuffer(RpcTxGuardObject *g, Py_buffer *view, int flags)
{
	return PyObject_GetBuffer((PyObject *)g->inner, view, flags);
}

static PyObject *RpcTx_enter(RpcTxGuardObject *g, PyObject *unused)
{
	PyObject *r = PyObject_CallMethod((PyObject *)g->inner, "__enter__", NULL);
	if (!r)
		return NULL;
	Py_DECREF(r);
	return Py_NewRef(g);
}

/* A clean exit stamps the id into the slot header, then lets the TxGuard
 * commit and publish; an exception (or a live view) rolls back as there. */
static PyObject *RpcTx_exit(RpcTxGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
	TxGuardObject *in = g->inner;
	tachyon_rpc *rpc = g->owner->rpc;
	PyObject *exc_type = nargs > 0 ? args[0] : Py_None;
	int clean = in->state == TXG_OPEN && exc_type == Py_None;
	uint64_t id = 0;
	PyObject *m, *r;

	if (clean) {
		if (g->is_reply && tachyon_rpc_reply_check(rpc, g->cid) < 0) {
			/* Another reply went out meanwhile, so this one is out of
			 * order now: roll back as on an exception, then say why. */
			PyObject *drop[3] = {PyExc_ValueError, Py_None, Py_None};
			m = PyObject_GetAttrString((PyObject *)in, "__exit__");
			if (m) {
				r = PyObject_Vectorcall(m, drop, 3, NULL);
				Py_DECREF(m);
				Py_XDECREF(r);
			}
			PyErr_Clear();
			PyErr_Format(PyExc_ValueError,
			             "reply_zero_copy(%llu): replies go in request order and this is no "
			             "longer the oldest unanswered request; nothing was sent",
			             (unsigned long long)g->cid);
			return NULL;
		}
		id = g->is_reply ? g->cid : tachyon_rpc_next_id(rpc);
		if (in->exports == 0)
			tachyon_rpc_stamp(in->data, id);
	}
	m = PyObject_GetAttrString((PyObject *)in, "__exit__");
	if (!m)
		return NULL;
	r = PyObject_Vectorcall(m, args, (size_t)nargs, NULL);
	Py_DECREF(m);
	if (r && clean && in->state == TXG_DONE) {
		/* committed and published */
		if (g->is_reply) {
			tachyon_rpc_reply_sent(rpc, id);
		} else {
			tachyon_rpc_call_sent(rpc, id);
			g->cid = id;
		}
		g->sent = 1;
	}
	return r;
}

static PyObject *RpcTx_get_out_cid(RpcTxGuardObject *g, void *c)
{
	if (!g->sent && !g->is_reply)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(g->cid);
}

static PyObject *RpcTx_get_msg_type(RpcTxGuardObject *g, void *c)
{
	return PyLong_FromUnsignedLong(g->inner->type_id);
}

static int RpcTx_set_msg_type(RpcTxGuardObject *g, PyObject *v, void *c)
{
	uint16_t t;
	if (!v) {
		PyErr_SetString(PyExc_TypeError, "msg_type cannot be deleted");
		return -1;
	}
	if (parse_msg_type(v, &t) < 0)
		return -1;
	g->inner->type_id = t;
	return 0;
}

static PyObject *RpcTx_get_size(RpcTxGuardObject *g, void *c)
{
	return PyLong_FromSsize_t(g->inner->size);
}

static PyObject *RpcTx_get_actual_size(RpcTxGuardObject *g, void *c)
{
	return PyObject_GetAttrString((PyObject *)g->inner, "actual_size");
}

static int RpcTx_set_actual_size(RpcTxGuardObject *g, PyObject *v, void *c)
{
	return PyObject_SetAttrString((PyObject *)g->inner, "actual_size", v);
}

static int RpcTx_traverse(RpcTxGuardObject *g, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(g));
	Py_VISIT(g->owner);
	Py_VISIT(g->inner);
	return 0;
}

static int RpcTx_clear(RpcTxGuardObject *g)
{
	Py_CLEAR(g->inner);
	Py_CLEAR(g->owner);
	return 0;
}

static void RpcTx_dealloc(RpcTxGuardObject *g)
{
	PyTypeObject *tp = Py_TYPE(g);
	PyObject_GC_UnTrack(g);
	Py_CLEAR(g->inner); /* an uncommitted TxGuard rolls back */
	Py_CLEAR(g->owner);
	PyObject_GC_Del(g);
	Py_DECREF(tp);
}

static PyMethodDef RpcTx_methods[] = {
	{"__enter__", (PyCFunction)RpcTx_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))RpcTx_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\n"
	 "On a clean exit stamp the correlation id, commit and publish; else roll back."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef RpcTx_getset[] = {
	{"out_cid", (getter)RpcTx_get_out_cid, NULL,
	 "The correlation id: a call's once it was sent (None before), a reply's from the start.",
	 NULL},
	{"correlation_id", (getter)RpcTx_get_out_cid, NULL, "Same as out_cid.", NULL},
	{"msg_type", (getter)RpcTx_get_msg_type, (setter)RpcTx_set_msg_type,
	 "The message type, 0..65535 (written as the type_id, route 0).", NULL},
	{"size", (getter)RpcTx_get_size, NULL, "The reserved payload size (the buffer's length).",
	 NULL},
	{"actual_size", (getter)RpcTx_get_actual_size, (setter)RpcTx_set_actual_size,
	 "Bytes to commit, 0..size (default: size).", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RpcTx_slots[] = {
	{Py_tp_doc, "An open zero-copy request or reply (RpcBus.call_zero_copy, reply_zero_copy): "
	            "a writable buffer; a clean exit of the with block sends it."},
	{Py_tp_dealloc, RpcTx_dealloc},
	{Py_tp_traverse, RpcTx_traverse},
	{Py_tp_clear, RpcTx_clear},
	{Py_tp_methods, RpcTx_methods},
	{Py_tp_getset, RpcTx_getset},
	{Py_bf_getbuffer, RpcTx_getbuffer},
	{0, NULL},
};

PyType_Spec tx_rpc_txguard_spec = {
	.name = "tachyon.RpcTxGuard",
	.basicsize = sizeof(RpcTxGuardObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RpcTx_slots,
};

/* ------------------------------------------------------------------------ */
/* RpcBus: opening and life                                                  */

/* Wrap the core's request/reply bus (its reference is taken over). */
static PyObject *rpc_wrap(PyTypeObject *cls, PyTypeObject *defining, tachyon_rpc *rpc,
                          PyObject *path_bytes)
{
	tx_state *st = PyType_GetModuleState(defining);
	RpcBusObject *self = (RpcBusObject *)cls->tp_alloc(cls, 0);
	tachyon_bus *fwd = tachyon_rpc_requests(rpc), *rev = tachyon_rpc_replies(rpc);
	int callee = tachyon_rpc_is_callee(rpc);
	if (!self) {
		tachyon_rpc_unref(rpc);
		return NULL;
	}
	self->module = Py_NewRef(PyType_GetModule(defining));
	self->st = st;
	self->rpc = rpc;
	self->callee = callee;
	/* One TachyonBus per ring, each with a reference of its own. */
	tachyon_bus_ref(fwd);
	self->fwd = (BusObject *)tx_bus_new(
	        defining, fwd, path_bytes, callee ? TACHYON_ROLE_CONSUMER : TACHYON_ROLE_PRODUCER);
	if (!self->fwd) {
		Py_DECREF(self);
		return NULL;
	}
	tachyon_bus_ref(rev);
	self->rev = (BusObject *)tx_bus_new(
	        defining, rev, path_bytes, callee ? TACHYON_ROLE_PRODUCER : TACHYON_ROLE_CONSUMER);
	if (!self->rev) {
		Py_DECREF(self);
		return NULL;
	}
	return (PyObject *)self;
}

static PyObject *Rpc_listen(PyObject *cls, PyTypeObject *defining, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
	static const char *const names[] = {"socket_path", "cap_fwd", "cap_rev", "timeout"};
	tx_state *st = PyType_GetModuleState(defining);
	PyObject *a[4], *path = NULL, *res = NULL;
	uint64_t cap_fwd, cap_rev;
	int64_t tns;
	tachyon_rpc *rpc = NULL;
	int r;

	if (tx_parse_args("rpc_listen", args, PyVectorcall_NARGS(nargsf), kwnames, names, 4, 3, 3, a) < 0)
		return NULL;
	if (parse_capacity(a[1], "cap_fwd", &cap_fwd) < 0 ||
	    parse_capacity(a[2], "cap_rev", &cap_rev) < 0 || tx_parse_timeout(a[3], &tns) < 0)
		return NULL;
	if (!PyUnicode_FSConverter(a[0], &path))
		return NULL;
	{
		tx_call c = {.op = OP_RPC_LISTEN, .deadline = tachyon_deadline_after(tns),
		             .path = PyBytes_AS_STRING(path), .size = cap_fwd, .cap_rev = cap_rev,
		             .rpc_out = &rpc};
		r = tx_blocking(&c);
	}
	if (r < 0) {
		/* Waiting for the caller ended, or the path or ring could not be set up. */
		tx_errctx cx = {.in = (r == -ETIMEDOUT || r == -EINTR) ? TX_IN_ACCEPT : TX_IN_LISTEN,
		                .call = "rpc_listen", .path = a[0], .capacity = cap_fwd};
		tx_raise(st, r, &cx);
	} else {
		res = rpc_wrap((PyTypeObject *)cls, defining, rpc, path);
	}
	Py_DECREF(path);
	return res;
}

static PyObject *Rpc_connect(PyObject *cls, PyTypeObject *defining, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames)
{
	static const char *const names[] = {"socket_path", "timeout"};
	tx_state *st = PyType_GetModuleState(defining);
	PyObject *a[2], *path = NULL, *res = NULL;
	int64_t tns = 5000000000LL; /* 5 s, as Bus.connect */
	tachyon_rpc *rpc = NULL;
	int r;

	if (tx_parse_args("rpc_connect", args, PyVectorcall_NARGS(nargsf), kwnames, names, 2, 1, 1, a) < 0)
		return NULL;
	if (a[1] && tx_parse_timeout(a[1], &tns) < 0)
		return NULL;
	if (!PyUnicode_FSConverter(a[0], &path))
		return NULL;
	{
		tx_call c = {.op = OP_RPC_CONNECT, .deadline = tachyon_deadline_after(tns),
		             .path = PyBytes_AS_STRING(path), .rpc_out = &rpc};
		r = tx_blocking(&c);
	}
	if (r < 0) {
		tx_errctx cx = {.in = TX_IN_CONNECT, .path = a[0]};
		tx_raise(st, r, &cx);
	} else {
		res = rpc_wrap((PyTypeObject *)cls, defining, rpc, path);
	}
	Py_DECREF(path);
	return res;
}

static PyObject *Rpc_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	PyErr_SetString(PyExc_TypeError,
	                "create an RpcBus with RpcBus.rpc_listen(...) or RpcBus.rpc_connect(...)");
	return NULL;
}

static PyObject *Rpc_close(RpcBusObject *self, PyObject *unused)
{
	/* Each TachyonBus's close: marks it closed, wakes its waiting callers
	 * (a close from another thread), closes its ring. */
	PyObject *r = self->fwd ? PyObject_CallMethod((PyObject *)self->fwd, "close", NULL) : NULL;
	Py_XDECREF(r);
	if (!r && self->fwd)
		return NULL;
	r = self->rev ? PyObject_CallMethod((PyObject *)self->rev, "close", NULL) : NULL;
	Py_XDECREF(r);
	if (!r && self->rev)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *Rpc_enter(RpcBusObject *self, PyObject *unused)
{
	if (tachyon_bus_forked(self->fwd->bus))
		return tx_raise_forked(self->st);
	return Py_NewRef(self);
}

static PyObject *Rpc_exit(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *r = Rpc_close(self, NULL);
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static int Rpc_traverse(RpcBusObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	Py_VISIT(self->fwd);
	Py_VISIT(self->rev);
	return 0;
}

static void Rpc_dealloc(RpcBusObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	PyObject_GC_UnTrack(self);
	/* The TachyonBus objects close their rings when they go (unless held
	 * elsewhere: rpc.requests kept by the user). */
	Py_CLEAR(self->fwd);
	Py_CLEAR(self->rev);
	tachyon_rpc_unref(self->rpc);
	Py_CLEAR(self->module);
	tp->tp_free((PyObject *)self);
	Py_DECREF(tp);
}

/* ------------------------------------------------------------------------ */
/* sending                                                                   */

/* Reserve room for `reserve` bytes on bus's producer end (family held),
 * waiting until deadline. */
static int reserve_on(BusObject *bus, size_t reserve, void **p, int64_t deadline, uint32_t spin)
{
	static const tachyon_wait now = {0, 0, NULL, NULL};
	if (bus->tx_guard)
		return -EBUSY; /* a zero-copy call or reply is open on this ring */
	int r = tachyon_bus_reserve(bus->bus, reserve, p, &now);
	if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
		tx_call c = {.op = OP_RESERVE, .self = bus, .deadline = deadline, .size = reserve,
		             .payload = p, .spin = spin};
		r = tx_blocking(&c);
	}
	return r;
}

/* What a send copies into its slot: a buffer's bytes, or an array as a
 * tensor frame (ABI.md, "Tensor frames on the request/reply bus"). */
typedef struct {
	int is_array;
	Py_buffer view;             /* bytes */
	tx_array_src src;           /* array */
	size_t reserve;             /* the slot's payload size */
} rpc_payload;

/* Send one request or reply: reply when is_reply (id cid), else a call
 * (its id to *cid). Returns the core's result. */
static int send_copy(RpcBusObject *self, int is_reply, const rpc_payload *pl, uint16_t mt,
                     int64_t deadline, uint32_t spin, uint64_t *cid)
{
	BusObject *bus = is_reply ? self->rev : self->fwd;
	void *p = NULL;
	size_t len = pl->is_array ? pl->reserve : (size_t)pl->view.len;
	int r = tx_family_enter(bus, FAM_TX, deadline);
	if (r != 0)
		return r == -1 ? -EINTR : r; /* -1: an exception is set */
	r = reserve_on(bus, pl->reserve, &p, deadline, spin);
	if (r == 0) {
		if (pl->is_array)
			r = tx_array_src_write(&pl->src, bus->bus, p, pl->reserve);
		else
			tachyon_bus_copy_payload(bus->bus, p, pl->view.buf, len);
		if (r < 0)
			tachyon_bus_rollback(bus->bus);
		else if (is_reply)
			r = tachyon_rpc_reply_commit(self->rpc, *cid, p, len, mt);
		else
			r = tachyon_rpc_call_commit(self->rpc, p, len, mt, cid);
	}
	tx_family_exit(bus, FAM_TX);
	return r;
}

static PyObject *send_failed(RpcBusObject *self, int is_reply, int r, size_t size, int64_t tns,
                             const char *fname)
{
	BusObject *bus = is_reply ? self->rev : self->fwd;
	tx_errctx cx = {.in = TX_IN_SEND, .call = fname, .bus = bus->bus, .size = size,
	                .timeout_ns = tns};
	if (r == -EINTR && PyErr_Occurred())
		return NULL;
	return tx_raise(self->st, r, &cx);
}

/* A reply to cid may go now: cid is the oldest request served and not yet
 * answered. */
static int check_reply_due(RpcBusObject *self, uint64_t cid, const char *fname)
{
	if (tachyon_rpc_reply_check(self->rpc, cid) == 0)
		return 0;
	PyErr_Format(PyExc_ValueError,
	             "%s(%llu): replies go in request order, and %llu is not the oldest request "
	             "served and not yet answered",
	             fname, (unsigned long long)cid, (unsigned long long)cid);
	return -1;
}

/* The payload of call, reply and request (is_array 0: obj's bytes, room
 * for max_size when given) or of the _array forms (obj's array, read with
 * no family held, as send_array does). */
static int payload_get(RpcBusObject *self, int is_reply, PyObject *obj, PyObject *max_size,
                       int is_array, rpc_payload *pl)
{
	Py_ssize_t want;
	pl->is_array = is_array;
	if (tx_bus_usable(is_reply ? self->rev : self->fwd) < 0)
		return -1;
	if (is_array) {
		if (tx_array_src_get(obj, &pl->src) < 0)
			return -1;
		pl->reserve = (size_t)tachyon_tensor_frame_payload_size(&pl->src.frame);
		return 0;
	}
	if (PyObject_GetBuffer(obj, &pl->view, PyBUF_SIMPLE) < 0)
		return -1;
	pl->reserve = (size_t)pl->view.len;
	if (max_size && max_size != Py_None) {
		if (tx_parse_index(max_size, "max_payload_size", &want) < 0) {
			PyBuffer_Release(&pl->view);
			return -1;
		}
		if (want < pl->view.len) {
			PyErr_Format(PyExc_ValueError,
			             "max_payload_size (%zd) is smaller than the payload (%zd bytes)", want,
			             pl->view.len);
			PyBuffer_Release(&pl->view);
			return -1;
		}
		pl->reserve = (size_t)want;
	}
	return 0;
}

static void payload_release(rpc_payload *pl)
{
	if (pl->is_array)
		tx_array_src_release(&pl->src);
	else
		PyBuffer_Release(&pl->view);
}

/* call, reply and their _array forms after their arguments: the payload
 * taken, sent, let go of. */
static int send_one(RpcBusObject *self, int is_reply, PyObject *obj, PyObject *max_size,
                    int is_array, uint16_t mt, int64_t tns, uint32_t spin, uint64_t *cid,
                    const char *fname)
{
	rpc_payload pl;
	int r;
	if (payload_get(self, is_reply, obj, max_size, is_array, &pl) < 0)
		return -1;
	r = send_copy(self, is_reply, &pl, mt, tx_deadline(tns), spin, cid);
	payload_release(&pl);
	if (r < 0) {
		send_failed(self, is_reply, r, pl.reserve, tns, fname);
		return -1;
	}
	return 0;
}

static PyObject *Rpc_call(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
	static const char *const names[] = {"payload", "msg_type", "max_payload_size",
	                                    "spin_threshold", "timeout"};
	PyObject *a[5];
	uint16_t mt;
	uint32_t spin;
	int64_t tns;
	uint64_t cid = 0;

	if (tx_parse_args("call", args, nargs, kwnames, names, 5, 4, 2, a) < 0 ||
	    parse_msg_type(a[1], &mt) < 0 || parse_spin(a[3], &spin) < 0 ||
	    tx_parse_timeout(a[4], &tns) < 0 || check_side(self, 0, "call") < 0 ||
	    send_one(self, 0, a[0], a[2], 0, mt, tns, spin, &cid, "call") < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(cid);
}

static PyObject *Rpc_reply(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "payload", "msg_type",
	                                    "max_payload_size", "timeout"};
	PyObject *a[5];
	uint16_t mt;
	int64_t tns;
	uint64_t cid;

	if (tx_parse_args("reply", args, nargs, kwnames, names, 5, 4, 3, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || parse_msg_type(a[2], &mt) < 0 ||
	    tx_parse_timeout(a[4], &tns) < 0 || check_side(self, 1, "reply") < 0)
		return NULL;
	if (check_reply_due(self, cid, "reply") < 0 ||
	    send_one(self, 1, a[1], a[3], 0, mt, tns, 0, &cid, "reply") < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* call_zero_copy and reply_zero_copy: the ring's own send_zero_copy
 * (reservation, TxGuard), wrapped so its exit stamps the id. */
static PyObject *zero_copy(RpcBusObject *self, int is_reply, uint64_t cid, PyObject *size,
                           uint16_t mt, PyObject *timeout)
{
	BusObject *bus = is_reply ? self->rev : self->fwd;
	PyObject *argv[4], *kw, *name, *inner;
	argv[0] = NULL;
	argv[1] = size;
	argv[2] = PyLong_FromUnsignedLong(mt);
	argv[3] = timeout ? timeout : Py_None; /* None: wait for room without limit */
	kw = Py_BuildValue("(s)", "timeout");
	name = PyUnicode_FromString("send_zero_copy");
	argv[0] = (PyObject *)bus;
	inner = (argv[2] && kw && name)
	                ? PyObject_VectorcallMethod(name, argv, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw)
	                : NULL;
	Py_XDECREF(argv[2]);
	Py_XDECREF(kw);
	Py_XDECREF(name);
	return tx_wrap(self, inner, is_reply, cid);
}

static PyObject *Rpc_call_zero_copy(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
	static const char *const names[] = {"max_payload_size", "msg_type", "timeout"};
	PyObject *a[3];
	uint16_t mt;
	if (tx_parse_args("call_zero_copy", args, nargs, kwnames, names, 3, 2, 2, a) < 0 ||
	    parse_msg_type(a[1], &mt) < 0 || check_side(self, 0, "call_zero_copy") < 0)
		return NULL;
	return zero_copy(self, 0, 0, a[0], mt, a[2]);
}

static PyObject *Rpc_reply_zero_copy(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "max_payload_size", "msg_type",
	                                    "timeout"};
	PyObject *a[4];
	uint16_t mt;
	uint64_t cid;
	if (tx_parse_args("reply_zero_copy", args, nargs, kwnames, names, 4, 3, 3, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || parse_msg_type(a[2], &mt) < 0 ||
	    check_side(self, 1, "reply_zero_copy") < 0)
		return NULL;
	if (check_reply_due(self, cid, "reply_zero_copy") < 0)
		return NULL;
	return zero_copy(self, 1, cid, a[1], mt, a[3]);
}

/* ------------------------------------------------------------------------ */
/* receiving                                                                 */

/* Give a received slot back (RX family held), as a copying recv does. */
static void give_back(BusObject *bus, const tachyon_msg *m)
{
	uint64_t seq;
	if (bus->q_len == 0)
		(void)tachyon_bus_release_to(bus->bus, m->end, 1);
	else if (tx_slots_push(bus, m->end, 0, &seq) < 0)
		PyErr_Clear(); /* the slot stays pinned until the bus goes; nothing is lost */
}

/* What a received slot becomes: an RpcRxGuard over it (copy 0) or a
 * Message with a copy of it (copy 1). RX family held. */
static PyObject *deliver(RpcBusObject *self, BusObject *bus, const tachyon_msg *m, uint64_t cid,
                         int copy)
{
	uint64_t seq;
	PyObject *res;
	if (copy) {
		res = tx_message_new(self->st, m);
		give_back(bus, m);
		return res;
	}
	if (tx_slots_push(bus, m->end, 1, &seq) < 0)
		return NULL;
	res = tx_rxguard_new(bus, m, seq);
	if (!res) {
		tx_slot_decref(bus, seq);
		return NULL;
	}
	return rx_wrap(self->st, res, cid);
}

static PyObject *recv_failed(RpcBusObject *self, BusObject *bus, int r, const char *fname)
{
	tx_errctx cx = {.in = TX_IN_RECV, .call = fname, .bus = bus->bus};
	if (r == -EINTR && PyErr_Occurred())
		return NULL;
	return tx_raise(self->st, r, &cx);
}

/* The reply to cid: replies of abandoned calls before it are dropped as
 * they arrive. */
static PyObject *take_reply(RpcBusObject *self, uint64_t cid, int64_t tns, uint32_t spin, int copy,
                            const char *fname)
{
	BusObject *bus = self->rev;
	int64_t deadline;
	PyObject *res = NULL;
	uint64_t due, next;
	tachyon_msg m;
	int r;

	if (tx_bus_usable(bus) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(bus, FAM_RX, deadline);
	if (r != 0)
		return r == -1 ? NULL : recv_failed(self, bus, r, fname);
	due = tachyon_rpc_due_id(self->rpc);
	next = tachyon_rpc_next_id(self->rpc);
	if (cid >= next || cid < due || (cid > due && cid - 1 > self->abandoned)) {
		tx_family_exit(bus, FAM_RX);
		if (due == next)
			PyErr_Format(PyExc_ValueError,
			             "%s(%llu): no call is waiting for its reply (the next call gets id "
			             "%llu)",
			             fname, (unsigned long long)cid, (unsigned long long)next);
		else if (cid >= next || cid < due)
			PyErr_Format(PyExc_ValueError,
			             "%s(%llu): no call with this id is waiting for its reply (ids "
			             "%llu..%llu are)",
			             fname, (unsigned long long)cid, (unsigned long long)due,
			             (unsigned long long)next - 1);
		else
			PyErr_Format(PyExc_ValueError,
			             "%s(%llu): replies come in call order; wait for %llu first", fname,
			             (unsigned long long)cid, (unsigned long long)due);
		return NULL;
	}
	for (;;) {
		r = tx_bus_recv_one(bus, &m, deadline, spin, spin);
		if (r < 0)
			break;
		r = tachyon_rpc_wait_accept(self->rpc, due, &m);
		if (r < 0)
			break; /* the wrong id: the ring is fatal now */
		if (due == cid) {
			res = deliver(self, bus, &m, cid, copy);
			break;
		}
		give_back(bus, &m); /* an abandoned call's reply */
		due++;
	}
	tx_family_exit(bus, FAM_RX);
	if (r < 0)
		return recv_failed(self, bus, r, fname);
	return res;
}

static PyObject *Rpc_wait(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "spin_threshold", "timeout"};
	PyObject *a[3];
	uint64_t cid;
	uint32_t spin;
	int64_t tns;
	if (tx_parse_args("wait", args, nargs, kwnames, names, 3, 2, 1, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || parse_spin(a[1], &spin) < 0 ||
	    tx_parse_timeout(a[2], &tns) < 0 || check_side(self, 0, "wait") < 0)
		return NULL;
	return take_reply(self, cid, tns, spin, 0, "wait");
}

static PyObject *Rpc_serve(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
	static const char *const names[] = {"spin_threshold", "timeout"};
	PyObject *a[2];
	BusObject *bus = self->fwd;
	uint32_t spin;
	int64_t tns, deadline;
	uint64_t cid = 0;
	tachyon_msg m;
	PyObject *res = NULL;
	int r;

	if (tx_parse_args("serve", args, nargs, kwnames, names, 2, 1, 0, a) < 0 ||
	    parse_spin(a[0], &spin) < 0 || tx_parse_timeout(a[1], &tns) < 0 ||
	    check_side(self, 1, "serve") < 0 || tx_bus_usable(bus) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(bus, FAM_RX, deadline);
	if (r != 0)
		return r == -1 ? NULL : recv_failed(self, bus, r, "serve");
	r = tx_bus_recv_one(bus, &m, deadline, spin, spin);
	if (r == 0) {
		r = tachyon_rpc_serve_accept(self->rpc, &m, &cid);
		if (r == 0)
			res = deliver(self, bus, &m, cid, 0);
		else
			give_back(bus, &m);
	}
	tx_family_exit(bus, FAM_RX);
	if (r < 0)
		return recv_failed(self, bus, r, "serve");
	return res;
}

/* request and request_array may start a round trip: no call made with
 * call() still waits for its reply, so the next reply is this one's. */
static int request_ready(RpcBusObject *self, const char *fname)
{
	uint64_t due = tachyon_rpc_due_id(self->rpc), next = tachyon_rpc_next_id(self->rpc);
	if (due != next && next - 1 > self->abandoned) {
		PyErr_Format(PyExc_ValueError,
		             "%s: calls %llu..%llu still wait for their replies (wait() for them "
		             "first); replies come in call order",
		             fname, (unsigned long long)due, (unsigned long long)next - 1);
		return -1;
	}
	return 0;
}

/* request and request_array after their arguments: the payload (obj's
 * bytes, or its array as a frame) sent, then the reply as a Message. One
 * timeout covers the round trip. */
static PyObject *round_trip(RpcBusObject *self, PyObject *obj, int is_array, uint16_t mt,
                            int64_t tns, const char *fname)
{
	int64_t deadline = tx_deadline(tns), left;
	uint64_t cid = 0;
	PyObject *res;
	rpc_payload pl;
	int r;

	if (check_side(self, 0, fname) < 0 || request_ready(self, fname) < 0 ||
	    payload_get(self, 0, obj, NULL, is_array, &pl) < 0)
		return NULL;
	r = send_copy(self, 0, &pl, mt, deadline, RPC_DEFAULT_SPIN, &cid);
	payload_release(&pl);
	if (r < 0) {
		if (cid != 0)
			self->abandoned = cid; /* sent (ids only grow), but its publication failed */
		return send_failed(self, 0, r, pl.reserve, tns, fname);
	}
	if (deadline == TACHYON_FOREVER)
		left = TACHYON_FOREVER;
	else if (deadline == 0)
		left = 0;
	else if ((left = deadline - tachyon_now_ns()) <= 0)
		left = 0;
	res = take_reply(self, cid, left, RPC_DEFAULT_SPIN, 1, fname);
	if (!res && tachyon_rpc_due_id(self->rpc) <= cid)
		self->abandoned = cid; /* its reply is dropped when it comes */
	return res;
}

static PyObject *Rpc_request(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
	static const char *const names[] = {"payload", "msg_type", "timeout"};
	PyObject *a[3];
	uint16_t mt;
	int64_t tns;
	if (tx_parse_args("request", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
	    parse_msg_type(a[1], &mt) < 0 || tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	return round_trip(self, a[0], 0, mt, tns, "request");
}

/* ------------------------------------------------------------------------ */
/* arrays (ABI.md, "Tensor frames on the request/reply bus")                 */

static PyObject *Rpc_call_array(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
	static const char *const names[] = {"obj", "msg_type", "timeout"};
	PyObject *a[3];
	uint16_t mt;
	int64_t tns;
	uint64_t cid = 0;
	if (tx_parse_args("call_array", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
	    parse_msg_type(a[1], &mt) < 0 || tx_parse_timeout(a[2], &tns) < 0 ||
	    check_side(self, 0, "call_array") < 0 ||
	    send_one(self, 0, a[0], NULL, 1, mt, tns, RPC_DEFAULT_SPIN, &cid, "call_array") < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(cid);
}

static PyObject *Rpc_reply_array(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "obj", "msg_type", "timeout"};
	PyObject *a[4];
	uint16_t mt;
	int64_t tns;
	uint64_t cid;
	if (tx_parse_args("reply_array", args, nargs, kwnames, names, 4, 4, 3, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || parse_msg_type(a[2], &mt) < 0 ||
	    tx_parse_timeout(a[3], &tns) < 0 || check_side(self, 1, "reply_array") < 0 ||
	    check_reply_due(self, cid, "reply_array") < 0 ||
	    send_one(self, 1, a[1], NULL, 1, mt, tns, 0, &cid, "reply_array") < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* The tensor frame of a reply (a Message, whose reference this takes; NULL
 * passes an error through) as a numpy array over the reply's copy. The
 * payload header says it is a frame: on request/reply the type_id is the
 * caller's msg_type. */
static PyObject *reply_frame_array(PyObject *reply)
{
	MessageObject *msg = (MessageObject *)reply;
	PyObject *res, *data;
	tachyon_tensor_frame f;
	if (!msg)
		return NULL;
	data = msg->data;
	if (tx_payload_frame_of((const uint8_t *)PyBytes_AS_STRING(data),
	                        (size_t)PyBytes_GET_SIZE(data), msg->type_id, &f,
	                        PyExc_ValueError) < 0)
		res = NULL;
	else
		res = tx_frame_array(data, &f);
	Py_DECREF(msg);
	return res;
}

/* call_array then the reply's frame as a numpy array over the reply's copy. */
static PyObject *Rpc_request_array(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
	static const char *const names[] = {"obj", "msg_type", "timeout"};
	PyObject *a[3];
	uint16_t mt;
	int64_t tns;

	if (tx_parse_args("request_array", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
	    parse_msg_type(a[1], &mt) < 0 || tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	return reply_frame_array(round_trip(self, a[0], 1, mt, tns, "request_array"));
}

/* For tachyon.aio's request_async, which sends with call() and then polls:
 * the reply to cid as a Message, and giving a call up. */
static PyObject *Rpc_reply_message(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "timeout"};
	PyObject *a[2];
	uint64_t cid;
	int64_t tns;
	if (tx_parse_args("_reply_message", args, nargs, kwnames, names, 2, 2, 2, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || tx_parse_timeout(a[1], &tns) < 0 ||
	    check_side(self, 0, "_reply_message") < 0)
		return NULL;
	return take_reply(self, cid, tns, 1, 1, "request_async");
}

/* The same for request_array_async: the reply's tensor frame as an array. */
static PyObject *Rpc_take_reply_array(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
	static const char *const names[] = {"correlation_id", "timeout"};
	PyObject *a[2];
	uint64_t cid;
	int64_t tns;
	if (tx_parse_args("_reply_array", args, nargs, kwnames, names, 2, 2, 2, a) < 0 ||
	    parse_cid(a[0], &cid) < 0 || tx_parse_timeout(a[1], &tns) < 0 ||
	    check_side(self, 0, "_reply_array") < 0)
		return NULL;
	return reply_frame_array(take_reply(self, cid, tns, 1, 1, "request_array_async"));
}

static PyObject *Rpc_abandon(RpcBusObject *self, PyObject *arg)
{
	uint64_t cid;
	if (parse_cid(arg, &cid) < 0)
		return NULL;
	if (cid > self->abandoned && cid < tachyon_rpc_next_id(self->rpc))
		self->abandoned = cid;
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* the rest                                                                  */

static PyObject *Rpc_set_polling_mode(RpcBusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
	static const char *const names[] = {"pure_spin"};
	PyObject *a[1];
	int v, r;
	if (tx_parse_args("set_polling_mode", args, nargs, kwnames, names, 1, 1, 1, a) < 0)
		return NULL;
	v = PyObject_IsTrue(a[0]);
	if (v < 0 || tx_bus_usable(self->fwd) < 0)
		return NULL;
	r = tachyon_rpc_set_polling_mode(self->rpc, v);
	if (r < 0)
		return tx_raise_call(self->st, self->fwd->bus, r, "set_polling_mode");
	Py_RETURN_NONE;
}

static PyObject *Rpc_get_requests(RpcBusObject *self, void *c)
{
	return Py_NewRef(self->fwd);
}

static PyObject *Rpc_get_replies(RpcBusObject *self, void *c)
{
	return Py_NewRef(self->rev);
}

static PyObject *Rpc_get_closed(RpcBusObject *self, void *c)
{
	return PyBool_FromLong(self->fwd->closed || self->rev->closed);
}

static PyObject *Rpc_get_is_callee(RpcBusObject *self, void *c)
{
	return PyBool_FromLong(self->callee);
}

static PyObject *Rpc_get_path(RpcBusObject *self, void *c)
{
	return Py_NewRef(self->fwd->path);
}

static PyObject *Rpc_repr(RpcBusObject *self)
{
	return PyUnicode_FromFormat("<RpcBus %s %R%s>", self->callee ? "callee" : "caller",
	                            self->fwd->path,
	                            (self->fwd->closed || self->rev->closed) ? " closed" : "");
}

#define FKW (METH_FASTCALL | METH_KEYWORDS)
#define CLS_FKW (METH_METHOD | METH_FASTCALL | METH_KEYWORDS | METH_CLASS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef Rpc_methods[] = {
	{"rpc_listen", FN(Rpc_listen), CLS_FKW,
	 "rpc_listen($type, /, socket_path, cap_fwd, cap_rev, timeout=None)\n--\n\n"
	 "Create the request ring (cap_fwd bytes) and the reply ring (cap_rev bytes), bind\n"
	 "socket_path and wait for one caller (timeout seconds; None: no limit). This end is\n"
	 "the callee: serve() and reply()."},
	{"rpc_connect", FN(Rpc_connect), CLS_FKW,
	 "rpc_connect($type, /, socket_path, timeout=5.0)\n--\n\n"
	 "Connect to a listening callee as the caller: call(), wait(), request()."},
	{"call", FN(Rpc_call), FKW,
	 "call($self, /, payload, msg_type, max_payload_size=None, spin_threshold=10000, "
	 "timeout=None)\n--\n\n"
	 "Send one request (a copy of payload) of msg_type (0..65535); returns its\n"
	 "correlation_id. Waits for room up to timeout seconds (None: no limit)."},
	{"call_zero_copy", FN(Rpc_call_zero_copy), FKW,
	 "call_zero_copy($self, /, max_payload_size, msg_type, timeout=None)\n--\n\n"
	 "Reserve a request slot and return an RpcTxGuard to fill in place; a clean exit of\n"
	 "its with block sends it, and its out_cid is the request's correlation_id."},
	{"wait", FN(Rpc_wait), FKW,
	 "wait($self, /, correlation_id, spin_threshold=10000, timeout=None)\n--\n\n"
	 "Wait for the reply to a call, the oldest one not yet answered (replies come in call\n"
	 "order), and return an RpcRxGuard over it."},
	{"request", FN(Rpc_request), FKW,
	 "request($self, /, payload, msg_type, timeout=None)\n--\n\n"
	 "call() then wait(), in one: returns the reply as a Message. timeout covers the whole\n"
	 "round trip; a reply that comes after it gave up is dropped on arrival."},
	{"call_array", FN(Rpc_call_array), FKW,
	 "call_array($self, /, obj, msg_type, timeout=None)\n--\n\n"
	 "Send obj (numpy array, torch CPU tensor, anything with the buffer protocol or\n"
	 "__dlpack__) as a tensor frame request of msg_type: its dtype and shape travel with it,\n"
	 "in one copy into the ring. Returns its correlation_id; rx.array() reads it."},
	{"request_array", FN(Rpc_request_array), FKW,
	 "request_array($self, /, obj, msg_type, timeout=None)\n--\n\n"
	 "call_array() then wait for the reply and return its tensor frame as a read-only numpy\n"
	 "array over a copy. timeout covers the round trip. TypeError when the reply is not a\n"
	 "frame, ValueError when its header fails a check (the reply is taken either way)."},
	{"serve", FN(Rpc_serve), FKW,
	 "serve($self, /, spin_threshold=10000, timeout=None)\n--\n\n"
	 "Wait for the next request and return an RpcRxGuard over it, with its correlation_id."},
	{"reply", FN(Rpc_reply), FKW,
	 "reply($self, /, correlation_id, payload, msg_type, max_payload_size=None, "
	 "timeout=None)\n--\n\n"
	 "Send the reply to a served request (a copy of payload). Replies go in request order."},
	{"reply_array", FN(Rpc_reply_array), FKW,
	 "reply_array($self, /, correlation_id, obj, msg_type, timeout=None)\n--\n\n"
	 "Send the reply to a served request as a tensor frame of obj (as call_array)."},
	{"reply_zero_copy", FN(Rpc_reply_zero_copy), FKW,
	 "reply_zero_copy($self, /, correlation_id, max_payload_size, msg_type, timeout=None)\n"
	 "--\n\nReserve a reply slot and return an RpcTxGuard to fill in place."},
	{"set_polling_mode", FN(Rpc_set_polling_mode), FKW,
	 "set_polling_mode($self, /, pure_spin)\n--\n\n"
	 "1: the consumers of both rings never sleep (pure spin); 0: spin, then sleep."},
	{"_reply_message", FN(Rpc_reply_message), FKW,
	 "_reply_message($self, /, correlation_id, timeout)\n--\n\n"
	 "The reply to a call as a Message (request_async's receive)."},
	{"_reply_array", FN(Rpc_take_reply_array), FKW,
	 "_reply_array($self, /, correlation_id, timeout)\n--\n\n"
	 "The tensor frame of the reply to a call as a read-only numpy array\n"
	 "(request_array_async's receive)."},
	{"_abandon", (PyCFunction)Rpc_abandon, METH_O,
	 "_abandon($self, correlation_id, /)\n--\n\n"
	 "Give a call up: its reply is dropped when it arrives."},
	{"close", (PyCFunction)Rpc_close, METH_NOARGS,
	 "close($self, /)\n--\n\nClose both rings; calls blocked on them (any thread) end."},
	{"__enter__", (PyCFunction)Rpc_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))Rpc_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\nClose."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Rpc_getset[] = {
	{"requests", (getter)Rpc_get_requests, NULL,
	 "The request ring's TachyonBus (stats; tachyon.wait on the callee end).", NULL},
	{"replies", (getter)Rpc_get_replies, NULL,
	 "The reply ring's TachyonBus (stats; tachyon.wait on the caller end).", NULL},
	{"closed", (getter)Rpc_get_closed, NULL, "True once close() was called.", NULL},
	{"is_callee", (getter)Rpc_get_is_callee, NULL, "True on the end that listened.", NULL},
	{"path", (getter)Rpc_get_path, NULL, "The socket path.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Rpc_slots[] = {
	{Py_tp_doc, "RpcBus()\n--\n\n"
	            "A request/reply bus (wire-compatible with tachyon-ipc 0.5.1): create it with "
	            "rpc_listen() (the callee) or rpc_connect() (the caller)."},
	{Py_tp_new, Rpc_new},
	{Py_tp_dealloc, Rpc_dealloc},
	{Py_tp_traverse, Rpc_traverse},
	{Py_tp_repr, Rpc_repr},
	{Py_tp_methods, Rpc_methods},
	{Py_tp_getset, Rpc_getset},
	{0, NULL},
};

PyType_Spec tx_rpc_spec = {
	.name = "tachyon.RpcBus",
	.basicsize = sizeof(RpcBusObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
	         Py_TPFLAGS_IMMUTABLETYPE,
	.slots = Rpc_slots,
};

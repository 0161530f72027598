/*
 * Zero-copy guards and views.
 *
 * TxGuard      an open reservation: a writable buffer of exactly `size` bytes;
 *              commit + publish on a clean exit, rollback on an exception or
 *              dealloc. A memoryview alive at exit publishes nothing; the
 *              reservation is held until it is released, then rolled back.
 * RxGuard      one received slot, read-only buffer + DLPack.
 * RxBatchGuard up to max_msgs received slots; indexing gives RxMsgView.
 * RxMsgView    one slot of a batch, read-only buffer + DLPack.
 *
 * Every RX export (memoryview, DLPack capsule) holds one count on its slot
 * in the bus's pending queue; the guard or batch holds one more until its
 * with block ends. After that it is spent: new exports, indexing and
 * attribute reads raise BufferError, existing exports stay valid.
 */
#include "guards.h"

#include <string.h>

#include "args.h"
#include "dlpack.h"
#include "errors.h"
#include "family.h"
#include "frames.h"
#include "slots.h"

static const char SPENT_RX[] =
	"this RxGuard is spent (its with block ended); copy what you need inside the block "
	"(bytes(rx)) or keep a memoryview, array or tensor made inside it";
static const char SPENT_BATCH[] =
	"this RxBatchGuard is spent (its with block ended); keep a memoryview, array or tensor "
	"made inside the block, or copy with bytes(batch[i])";
static const char SPENT_VIEW[] =
	"this RxMsgView's batch is spent (its with block ended); keep a memoryview, array or "
	"tensor made inside the block, or copy with bytes(view)";

/* ------------------------------------------------------------------------ */
/* free lists                                                                */

/* Guards and views live for one message each: allocating a GC object
 * (_PyObject_GC_New, ~100 instructions) and freeing it again is a large
 * part of a zero-copy call. Deallocated ones are kept, untracked, and made
 * objects again with PyObject_Init + PyObject_GC_Track (CPython's own
 * tuple and frame free lists work the same way). One list per type, all
 * blocks of a list have its type's size (the types are neither
 * subclassable nor instantiable from Python). The GIL guards the lists. */
#define GUARD_FREE_MAX 16

typedef struct {
	void *blocks[GUARD_FREE_MAX];
	int n;
} tx_freelist;

static tx_freelist fl_txguard, fl_rxguard, fl_rxview, fl_rxbatch;

#define FL_NEW(fl, T, tp) ((T *)fl_new(&(fl), (tp)))

static PyObject *fl_new(tx_freelist *fl, PyTypeObject *tp)
{
	if (TX_LIKELY(fl->n > 0))
		return PyObject_Init(fl->blocks[--fl->n], tp);
	return (PyObject *)_PyObject_GC_New(tp);
}

/* In place of tp_free, after PyObject_GC_UnTrack. */
static void fl_free(tx_freelist *fl, PyObject *o)
{
	PyTypeObject *tp = Py_TYPE(o);
	if (fl->n < GUARD_FREE_MAX && tp->tp_free == PyObject_GC_Del)
		fl->blocks[fl->n++] = o;
	else
		tp->tp_free(o);
}

void tx_guard_freelists_clear(void)
{
	tx_freelist *all[] = {&fl_txguard, &fl_rxguard, &fl_rxview, &fl_rxbatch};
	size_t i;
	for (i = 0; i < sizeof all / sizeof all[0]; i++)
		while (all[i]->n > 0)
			PyObject_GC_Del(all[i]->blocks[--all[i]->n]);
}

/* ------------------------------------------------------------------------ */
/* TxGuard                                                                   */

PyObject *tx_txguard_new(BusObject *bus, void *payload, size_t size, uint32_t type_id)
{
	TxGuardObject *g = FL_NEW(fl_txguard, TxGuardObject, bus->st->txguard_type);
	if (!g)
		return NULL;
	g->bus = (BusObject *)Py_NewRef(bus);
	g->data = payload;
	g->size = (Py_ssize_t)size;
	/* The whole reservation unless the writer says less: a writer that
	 * fills the buffer and forgets actual_size must not send an empty
	 * message. */
	g->actual_size = (Py_ssize_t)size;
	g->type_id = type_id;
	g->state = TXG_OPEN;
	g->exports = 0;
	PyObject_GC_Track(g);
	return (PyObject *)g;
}

/* The reservation ends without a message (guard gone, exception, stale view). */
static void txguard_drop(TxGuardObject *g)
{
	BusObject *bus = g->bus;
	g->state = TXG_DONE;
	if (bus->tx_guard == g)
		bus->tx_guard = NULL;
	tx_rollback_soon(bus);
}

static int TxGuard_getbuffer(TxGuardObject *g, Py_buffer *view, int flags)
{
	if (tachyon_bus_forked(g->bus->bus)) {
		tx_raise_forked(g->bus->st);
		return -1;
	}
	if (g->state != TXG_OPEN) {
		PyErr_SetString(PyExc_BufferError,
		                "this TxGuard is finished (committed or rolled back); open a new "
		                "send_zero_copy() for another message");
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)g, g->data, g->size, 0, flags) < 0)
		return -1;
	g->exports++;
	return 0;
}

static void TxGuard_releasebuffer(TxGuardObject *g, Py_buffer *view)
{
	if (--g->exports == 0 && g->state == TXG_STALE)
		txguard_drop(g);
}

static void attach_buffer_error(TxGuardObject *g, PyObject *exc, const char *msg)
{
	if (!PyExceptionInstance_Check(exc))
		return;
#if PY_VERSION_HEX >= 0x030B0000
	{
		PyObject *note = PyUnicode_FromFormat("BufferError: %s", msg), *r = NULL;
		if (note)
			r = PyObject_CallMethodOneArg(exc, g->bus->st->str_add_note, note);
		Py_XDECREF(note);
		if (!r)
			PyErr_Clear(); /* never mask the user's exception */
		Py_XDECREF(r);
	}
#else
	{
		PyObject *be = PyObject_CallFunction(PyExc_BufferError, "s", msg), *ctx;
		if (!be) {
			PyErr_Clear();
			return;
		}
		ctx = PyException_GetContext(exc);
		if (ctx)
			PyException_SetContext(be, ctx);
		PyException_SetContext(exc, be);
	}
#endif
}

static PyObject *TxGuard_enter(TxGuardObject *g, PyObject *unused)
{
	if (g->state != TXG_OPEN) {
		PyErr_SetString(g->bus->st->TachyonError,
		                "this TxGuard is finished; open a new send_zero_copy() for another "
		                "message");
		return NULL;
	}
	return Py_NewRef(g);
}

static PyObject *TxGuard_exit(TxGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
	static const char LIVE_VIEW[] =
		"a memoryview of the zero-copy send is still alive at the end of the with block, so "
		"nothing was sent; release it inside the block (with memoryview(tx) as mv: ...). The "
		"reservation is rolled back when the memoryview is released";
	BusObject *bus = g->bus;
	PyObject *exc_type = nargs > 0 ? args[0] : Py_None;
	PyObject *exc = nargs > 1 ? args[1] : Py_None;
	int r;

	if (g->state != TXG_OPEN)
		Py_RETURN_FALSE;
	if (tachyon_bus_forked(bus->bus))
		return tx_raise_forked(bus->st);
	if (g->exports > 0) {
		g->state = TXG_STALE; /* bus->tx_guard stays: send* raise BufferError */
		if (exc_type != Py_None) {
			attach_buffer_error(g, exc, LIVE_VIEW);
			Py_RETURN_FALSE;
		}
		PyErr_SetString(PyExc_BufferError, LIVE_VIEW);
		return NULL;
	}
	if (exc_type != Py_None) {
		txguard_drop(g);
		Py_RETURN_FALSE;
	}
	/* clean exit: commit and publish */
	r = tx_family_enter(bus, FAM_TX, TACHYON_FOREVER);
	if (r < 0) {
		g->state = TXG_DONE;
		if (bus->tx_guard == g)
			bus->tx_guard = NULL;
		bus->tx_rollback_pending = 1; /* applied by the next producer call */
		return NULL;
	}
	g->state = TXG_DONE;
	if (bus->tx_guard == g)
		bus->tx_guard = NULL;
	if (bus->closed) {
		r = -TACHYON_ECLOSED;
	} else {
		r = tachyon_bus_commit(bus->bus, (size_t)g->actual_size, g->type_id);
		if (r == 0)
			r = tachyon_bus_flush(bus->bus);
		else
			tachyon_bus_rollback(bus->bus);
	}
	tx_family_exit(bus, FAM_TX);
	if (r < 0)
		return tx_raise_call(bus->st, bus->bus, r, "send_zero_copy commit");
	Py_RETURN_FALSE;
}

static PyObject *TxGuard_get_size(TxGuardObject *g, void *c)
{
	return PyLong_FromSsize_t(g->size);
}

static PyObject *TxGuard_get_actual_size(TxGuardObject *g, void *c)
{
	return PyLong_FromSsize_t(g->actual_size);
}

static int TxGuard_set_actual_size(TxGuardObject *g, PyObject *v, void *c)
{
	Py_ssize_t n;
	if (!v) {
		PyErr_SetString(PyExc_TypeError, "actual_size cannot be deleted");
		return -1;
	}
	/* as every size: bool refused; below 0 comes back as -1 */
	if (tx_parse_index(v, "actual_size", &n) < 0)
		return -1;
	if (n < 0 || n > g->size) {
		PyErr_Format(PyExc_ValueError,
		             "actual_size must be in 0..%zd (the size reserved by send_zero_copy); got %R",
		             g->size, v);
		return -1;
	}
	g->actual_size = n;
	return 0;
}

static PyObject *TxGuard_get_type_id(TxGuardObject *g, void *c)
{
	return PyLong_FromUnsignedLong(g->type_id);
}

static int TxGuard_set_type_id(TxGuardObject *g, PyObject *v, void *c)
{
	if (!v) {
		PyErr_SetString(PyExc_TypeError, "type_id cannot be deleted");
		return -1;
	}
	return tx_parse_type_id(v, &g->type_id);
}

static int TxGuard_traverse(TxGuardObject *g, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(g));
	Py_VISIT(g->bus);
	return 0;
}

static void TxGuard_dealloc(TxGuardObject *g)
{
	PyTypeObject *tp = Py_TYPE(g);
	PyObject_GC_UnTrack(g);
	if (g->state != TXG_DONE)
		txguard_drop(g); /* never committed: roll back */
	Py_CLEAR(g->bus);
	fl_free(&fl_txguard, (PyObject *)g);
	Py_DECREF(tp);
}

static PyObject *no_pickle(PyObject *self, PyObject *proto)
{
	PyErr_Format(PyExc_TypeError,
	             "cannot pickle '%.100s': it refers to shared memory of this process; send "
	             "bytes(...) instead",
	             Py_TYPE(self)->tp_name);
	return NULL;
}

static PyMethodDef TxGuard_methods[] = {
	{"__enter__", (PyCFunction)TxGuard_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))TxGuard_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\nCommit and publish on a clean exit, else roll back."},
	{"__reduce_ex__", no_pickle, METH_O, "__reduce_ex__($self, protocol, /)\n--\n\n"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef TxGuard_getset[] = {
	{"size", (getter)TxGuard_get_size, NULL, "The reserved payload size (the buffer's length).",
	 NULL},
	{"actual_size", (getter)TxGuard_get_actual_size, (setter)TxGuard_set_actual_size,
	 "Bytes to commit, 0..size (default: size, the whole reservation).", NULL},
	{"type_id", (getter)TxGuard_get_type_id, (setter)TxGuard_set_type_id,
	 "The message's type_id.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot TxGuard_slots[] = {
	{Py_tp_doc, "An open zero-copy send: a writable buffer of exactly `size` bytes."},
	{Py_tp_dealloc, TxGuard_dealloc},
	{Py_tp_traverse, TxGuard_traverse},
	{Py_tp_methods, TxGuard_methods},
	{Py_tp_getset, TxGuard_getset},
	{Py_bf_getbuffer, TxGuard_getbuffer},
	{Py_bf_releasebuffer, TxGuard_releasebuffer},
	{0, NULL},
};

PyType_Spec tx_txguard_spec = {
	.name = "tachyon.TxGuard",
	.basicsize = sizeof(TxGuardObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = TxGuard_slots,
};

/* ------------------------------------------------------------------------ */
/* shared by RxGuard and RxMsgView                                           */

static int rx_getbuffer(PyObject *owner, BusObject *bus, const tx_rxmsg *m, Py_buffer *view,
                        int flags)
{
	if (flags & PyBUF_WRITABLE) {
		PyErr_SetString(PyExc_BufferError,
		                "a received message is read-only; copy it (bytearray(view)) to modify it");
		return -1;
	}
	if (PyBuffer_FillInfo(view, owner, (void *)m->data, (Py_ssize_t)m->size, 1, flags) < 0)
		return -1;
	tx_slot_incref(bus, m->seq);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* RxGuard                                                                   */

PyObject *tx_rxguard_new(BusObject *bus, const tachyon_msg *m, uint64_t seq)
{
	RxGuardObject *g = FL_NEW(fl_rxguard, RxGuardObject, bus->st->rxguard_type);
	if (!g)
		return NULL;
	g->bus = (BusObject *)Py_NewRef(bus);
	/* A view promises 64-byte alignment: the payload's place, not the
	 * inline copy a small stamped message may come with. */
	g->msg.data = tachyon_msg_aligned_data(m);
	g->msg.size = m->size;
	g->msg.type_id = m->type_id;
	g->msg.seq = seq;
	g->spent = 0;
	PyObject_GC_Track(g);
	return (PyObject *)g;
}

static int RxGuard_getbuffer(RxGuardObject *g, Py_buffer *view, int flags)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return -1;
	}
	return rx_getbuffer((PyObject *)g, g->bus, &g->msg, view, flags);
}

static void RxGuard_releasebuffer(RxGuardObject *g, Py_buffer *view)
{
	tx_slot_decref(g->bus, g->msg.seq);
}

static void rxguard_spend(RxGuardObject *g)
{
	if (!g->spent) {
		g->spent = 1;
		tx_slot_decref(g->bus, g->msg.seq);
	}
}

void tx_rxguard_release(RxGuardObject *g)
{
	rxguard_spend(g);
}

static PyObject *RxGuard_enter(RxGuardObject *g, PyObject *unused)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return NULL;
	}
	return Py_NewRef(g);
}

static PyObject *RxGuard_exit(RxGuardObject *g, PyObject *const *args, Py_ssize_t nargs)
{
	rxguard_spend(g); /* never raises, never hides the user's exception */
	Py_RETURN_FALSE;
}

static PyObject *RxGuard_get_type_id(RxGuardObject *g, void *c)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return NULL;
	}
	return PyLong_FromUnsignedLong(g->msg.type_id);
}

static PyObject *RxGuard_get_actual_size(RxGuardObject *g, void *c)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return NULL;
	}
	return PyLong_FromUnsignedLong(g->msg.size);
}

static PyObject *RxGuard_dlpack(RxGuardObject *g, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return NULL;
	}
	return tx_dlpack_export(g->bus, &g->msg, args, nargs, kwnames);
}

static PyObject *rx_dlpack_device(PyObject *self, PyObject *unused) { return tx_dlpack_device(); }

/* .array() of RxGuard and RxMsgView: the frame checked, then a numpy array
 * over a buffer export of owner (the export pins the slot). */
static PyObject *rx_array(PyObject *owner, const tx_rxmsg *m)
{
	tachyon_tensor_frame f;
	if (tx_frame_of(m->data, m->size, m->type_id, &f, PyExc_ValueError) < 0)
		return NULL;
	return tx_frame_array(owner, &f);
}

static PyObject *RxGuard_array(RxGuardObject *g, PyObject *unused)
{
	if (g->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_RX);
		return NULL;
	}
	return rx_array((PyObject *)g, &g->msg);
}

static int RxGuard_traverse(RxGuardObject *g, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(g));
	Py_VISIT(g->bus);
	return 0;
}

static void RxGuard_dealloc(RxGuardObject *g)
{
	PyTypeObject *tp = Py_TYPE(g);
	PyObject_GC_UnTrack(g);
	rxguard_spend(g);
	Py_CLEAR(g->bus);
	fl_free(&fl_rxguard, (PyObject *)g);
	Py_DECREF(tp);
}

#define DLPACK_DOC                                                                                \
	"__dlpack__($self, /, stream=None, *, max_version=None, dl_device=None, copy=None)\n--\n\n"            \
	"Export the payload in place as a 1-D uint8 DLPack tensor (versioned capsule with\n"        \
	"READ_ONLY when max_version allows, else legacy). stream must be None, dl_device (1, 0);\n" \
	"copy=True raises BufferError: received payloads are never copied here (bytes(view)\n"       \
	"copies). The slot stays pinned until the consumer's deleter runs. numpy makes read-only\n" \
	"arrays; torch (2.13) ignores READ_ONLY and makes a writable tensor: a write changes only\n"  \
	"this process's view of the slot, never the protocol. The peer can still write the slot:\n"  \
	"with an untrusted peer, copy."

#define ARRAY_DOC                                                                                 \
	"array($self, /)\n--\n\n"                                                                   \
	"The tensor frame in this slot as a read-only numpy array of its dtype and shape, in place;\n" \
	"it pins the slot until it is gone. TypeError for a message that is not a frame (route\n"     \
	"0xFFFF) or a bfloat16 frame (use torch.from_dlpack); ValueError for a frame whose header\n"   \
	"fails a check (nothing is exposed)."

static PyMethodDef RxGuard_methods[] = {
	{"array", (PyCFunction)RxGuard_array, METH_NOARGS, ARRAY_DOC},
	{"__enter__", (PyCFunction)RxGuard_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))RxGuard_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\nHand the slot back once no export is alive."},
	{"__dlpack__", (PyCFunction)(void (*)(void))RxGuard_dlpack, METH_FASTCALL | METH_KEYWORDS,
	 DLPACK_DOC},
	{"__dlpack_device__", rx_dlpack_device, METH_NOARGS,
	 "__dlpack_device__($self, /)\n--\n\n(1, 0): CPU memory."},
	{"__reduce_ex__", no_pickle, METH_O, "__reduce_ex__($self, protocol, /)\n--\n\n"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef RxGuard_getset[] = {
	{"type_id", (getter)RxGuard_get_type_id, NULL, "The message's type_id.", NULL},
	{"actual_size", (getter)RxGuard_get_actual_size, NULL, "Payload size in bytes.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RxGuard_slots[] = {
	{Py_tp_doc, "One received message in place: a read-only buffer and a DLPack exporter."},
	{Py_tp_dealloc, RxGuard_dealloc},
	{Py_tp_traverse, RxGuard_traverse},
	{Py_tp_methods, RxGuard_methods},
	{Py_tp_getset, RxGuard_getset},
	{Py_bf_getbuffer, RxGuard_getbuffer},
	{Py_bf_releasebuffer, RxGuard_releasebuffer},
	{0, NULL},
};

PyType_Spec tx_rxguard_spec = {
	.name = "tachyon.RxGuard",
	.basicsize = sizeof(RxGuardObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RxGuard_slots,
};

/* ------------------------------------------------------------------------ */
/* RxBatchGuard                                                              */

PyObject *tx_rxbatch_new(BusObject *bus, const tachyon_msg *m, Py_ssize_t n, uint64_t seq0)
{
	RxBatchObject *b = FL_NEW(fl_rxbatch, RxBatchObject, bus->st->rxbatch_type);
	Py_ssize_t i;
	if (!b)
		return NULL;
	/* A batch of one (a latency loop's drain_batch) needs no second block. */
	b->msgs = n == 1 ? &b->one : PyMem_Malloc((size_t)n * sizeof *b->msgs);
	if (!b->msgs) {
		b->bus = NULL;
		b->n = 0;
		b->spent = 1;
		Py_DECREF(b);
		return PyErr_NoMemory();
	}
	for (i = 0; i < n; i++) {
		b->msgs[i].data = tachyon_msg_aligned_data(&m[i]); /* as in tx_rxguard_new */
		b->msgs[i].size = m[i].size;
		b->msgs[i].type_id = m[i].type_id;
		b->msgs[i].seq = seq0 + (uint64_t)i;
	}
	b->bus = (BusObject *)Py_NewRef(bus);
	b->n = n;
	b->spent = 0;
	PyObject_GC_Track(b);
	return (PyObject *)b;
}

static void rxbatch_spend(RxBatchObject *b)
{
	Py_ssize_t i;
	if (b->spent)
		return;
	b->spent = 1;
	/* last first: the oldest entry's release then gives back the whole batch at once */
	for (i = b->n - 1; i >= 0; i--)
		tx_slot_decref(b->bus, b->msgs[i].seq);
}

static Py_ssize_t RxBatch_len(RxBatchObject *b) { return b->n; }

static PyObject *rxview_new(RxBatchObject *b, Py_ssize_t i)
{
	RxViewObject *v;
	if (b->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_BATCH);
		return NULL;
	}
	if (i < 0 || i >= b->n) {
		PyErr_SetString(PyExc_IndexError, "batch index out of range");
		return NULL;
	}
	v = FL_NEW(fl_rxview, RxViewObject, b->bus->st->rxview_type);
	if (!v)
		return NULL;
	v->batch = (RxBatchObject *)Py_NewRef(b);
	v->index = i;
	PyObject_GC_Track(v);
	return (PyObject *)v;
}

static PyObject *RxBatch_item(RxBatchObject *b, Py_ssize_t i)
{
	return rxview_new(b, i);
}

static PyObject *RxBatch_subscript(RxBatchObject *b, PyObject *key)
{
	Py_ssize_t i;
	if (!PyIndex_Check(key)) {
		PyErr_Format(PyExc_TypeError, "batch indices must be integers, not %.100s",
		             Py_TYPE(key)->tp_name);
		return NULL;
	}
	i = PyNumber_AsSsize_t(key, PyExc_IndexError);
	if (i == -1 && PyErr_Occurred())
		return NULL;
	if (i < 0)
		i += b->n;
	return rxview_new(b, i);
}

static PyObject *RxBatch_enter(RxBatchObject *b, PyObject *unused)
{
	if (b->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_BATCH);
		return NULL;
	}
	return Py_NewRef(b);
}

static PyObject *RxBatch_exit(RxBatchObject *b, PyObject *const *args, Py_ssize_t nargs)
{
	rxbatch_spend(b);
	Py_RETURN_FALSE;
}

/* iter(batch): the views in order, each made right here (the generic
 * sequence iterator would reach it through PySequence_GetItem and sq_item,
 * a third of what a view costs in a drain loop). A spent batch raises at
 * the first next(), as batch[i] does. */
static PyObject *RxBatch_iter(RxBatchObject *b)
{
	RxBatchIterObject *it;
	if (!b->bus) /* only a batch whose making failed half-way has none */
		return PySeqIter_New((PyObject *)b);
	it = PyObject_GC_New(RxBatchIterObject, b->bus->st->rxbatchiter_type);
	if (!it)
		return NULL;
	it->batch = (RxBatchObject *)Py_NewRef(b);
	it->next = 0;
	PyObject_GC_Track(it);
	return (PyObject *)it;
}

static PyObject *RxBatchIter_next(RxBatchIterObject *it)
{
	RxBatchObject *b = it->batch;
	if (!b)
		return NULL;
	if (it->next < b->n)
		return rxview_new(b, it->next++);
	it->batch = NULL; /* ran out: StopIteration, now and for good */
	Py_DECREF(b);
	return NULL;
}

static int RxBatchIter_traverse(RxBatchIterObject *it, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(it));
	Py_VISIT(it->batch);
	return 0;
}

static int RxBatchIter_clear(RxBatchIterObject *it)
{
	Py_CLEAR(it->batch);
	return 0;
}

static void RxBatchIter_dealloc(RxBatchIterObject *it)
{
	PyTypeObject *tp = Py_TYPE(it);
	PyObject_GC_UnTrack(it);
	Py_CLEAR(it->batch);
	tp->tp_free(it);
	Py_DECREF(tp);
}

static PyType_Slot RxBatchIter_slots[] = {
	{Py_tp_dealloc, RxBatchIter_dealloc},
	{Py_tp_traverse, RxBatchIter_traverse},
	{Py_tp_clear, RxBatchIter_clear},
	{Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, RxBatchIter_next},
	{0, NULL},
};

PyType_Spec tx_rxbatchiter_spec = {
	.name = "tachyon._core.RxBatchIterator",
	.basicsize = sizeof(RxBatchIterObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RxBatchIter_slots,
};

static int RxBatch_traverse(RxBatchObject *b, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(b));
	Py_VISIT(b->bus);
	return 0;
}

static void RxBatch_dealloc(RxBatchObject *b)
{
	PyTypeObject *tp = Py_TYPE(b);
	PyObject_GC_UnTrack(b);
	if (b->bus)
		rxbatch_spend(b);
	if (b->msgs != &b->one)
		PyMem_Free(b->msgs);
	Py_CLEAR(b->bus);
	fl_free(&fl_rxbatch, (PyObject *)b);
	Py_DECREF(tp);
}

static PyMethodDef RxBatch_methods[] = {
	{"__enter__", (PyCFunction)RxBatch_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", (PyCFunction)(void (*)(void))RxBatch_exit, METH_FASTCALL,
	 "__exit__($self, exc_type, exc, tb, /)\n--\n\nHand the slots back once no export is alive."},
	{"__reduce_ex__", no_pickle, METH_O, "__reduce_ex__($self, protocol, /)\n--\n\n"},
	{NULL, NULL, 0, NULL},
};

static PyType_Slot RxBatch_slots[] = {
	{Py_tp_doc, "A batch of received messages in place; batch[i] is an RxMsgView."},
	{Py_tp_dealloc, RxBatch_dealloc},
	{Py_tp_traverse, RxBatch_traverse},
	{Py_tp_methods, RxBatch_methods},
	{Py_tp_iter, RxBatch_iter},
	{Py_sq_length, RxBatch_len},
	{Py_sq_item, RxBatch_item},
	{Py_mp_length, RxBatch_len},
	{Py_mp_subscript, RxBatch_subscript},
	{0, NULL},
};

PyType_Spec tx_rxbatch_spec = {
	.name = "tachyon.RxBatchGuard",
	.basicsize = sizeof(RxBatchObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RxBatch_slots,
};

/* ------------------------------------------------------------------------ */
/* RxMsgView                                                                 */

static const tx_rxmsg *view_msg(RxViewObject *v)
{
	if (v->batch->spent) {
		PyErr_SetString(PyExc_BufferError, SPENT_VIEW);
		return NULL;
	}
	return &v->batch->msgs[v->index];
}

static int RxView_getbuffer(RxViewObject *v, Py_buffer *view, int flags)
{
	const tx_rxmsg *m = view_msg(v);
	if (!m)
		return -1;
	return rx_getbuffer((PyObject *)v, v->batch->bus, m, view, flags);
}

static void RxView_releasebuffer(RxViewObject *v, Py_buffer *view)
{
	tx_slot_decref(v->batch->bus, v->batch->msgs[v->index].seq);
}

static Py_ssize_t RxView_len(RxViewObject *v)
{
	const tx_rxmsg *m = view_msg(v);
	return m ? (Py_ssize_t)m->size : -1;
}

static PyObject *RxView_get_type_id(RxViewObject *v, void *c)
{
	const tx_rxmsg *m = view_msg(v);
	return m ? PyLong_FromUnsignedLong(m->type_id) : NULL;
}

static PyObject *RxView_get_actual_size(RxViewObject *v, void *c)
{
	const tx_rxmsg *m = view_msg(v);
	return m ? PyLong_FromUnsignedLong(m->size) : NULL;
}

static PyObject *RxView_dlpack(RxViewObject *v, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
	const tx_rxmsg *m = view_msg(v);
	if (!m)
		return NULL;
	return tx_dlpack_export(v->batch->bus, m, args, nargs, kwnames);
}

static PyObject *RxView_array(RxViewObject *v, PyObject *unused)
{
	const tx_rxmsg *m = view_msg(v);
	return m ? rx_array((PyObject *)v, m) : NULL;
}

static int RxView_traverse(RxViewObject *v, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(v));
	Py_VISIT(v->batch);
	return 0;
}

static void RxView_dealloc(RxViewObject *v)
{
	PyTypeObject *tp = Py_TYPE(v);
	PyObject_GC_UnTrack(v);
	Py_CLEAR(v->batch);
	fl_free(&fl_rxview, (PyObject *)v);
	Py_DECREF(tp);
}

static PyMethodDef RxView_methods[] = {
	{"array", (PyCFunction)RxView_array, METH_NOARGS, ARRAY_DOC},
	{"__dlpack__", (PyCFunction)(void (*)(void))RxView_dlpack, METH_FASTCALL | METH_KEYWORDS,
	 DLPACK_DOC},
	{"__dlpack_device__", rx_dlpack_device, METH_NOARGS,
	 "__dlpack_device__($self, /)\n--\n\n(1, 0): CPU memory."},
	{"__reduce_ex__", no_pickle, METH_O, "__reduce_ex__($self, protocol, /)\n--\n\n"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef RxView_getset[] = {
	{"type_id", (getter)RxView_get_type_id, NULL, "The message's type_id.", NULL},
	{"actual_size", (getter)RxView_get_actual_size, NULL, "Payload size in bytes.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RxView_slots[] = {
	{Py_tp_doc, "One message of an RxBatchGuard: a read-only buffer and a DLPack exporter."},
	{Py_tp_dealloc, RxView_dealloc},
	{Py_tp_traverse, RxView_traverse},
	{Py_tp_methods, RxView_methods},
	{Py_tp_getset, RxView_getset},
	{Py_sq_length, RxView_len},
	{Py_bf_getbuffer, RxView_getbuffer},
	{Py_bf_releasebuffer, RxView_releasebuffer},
	{0, NULL},
};

PyType_Spec tx_rxview_spec = {
	.name = "tachyon.RxMsgView",
	.basicsize = sizeof(RxViewObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = RxView_slots,
};

/*
 * Message: what a copying receive returns (type_id, size, and data as a
 * bytes copy that is safe to keep).
 */
#include "message.h"

#include "args.h"
#include "frames.h"

/* ------------------------------------------------------------------------ */
/* Message                                                                   */

/* Memory blocks of deallocated Messages, reused by tx_message_new: a
 * Message per received message is allocated and freed at the message rate,
 * and the allocator's round trip costs more than half of the object's own
 * setup (the bytes copy is the one allocation that cannot be avoided).
 * Raw blocks: no type reference, no refcount; PyObject_Init makes them an
 * object again. The GIL guards the list (the module does not declare
 * itself free-threading safe). Every Message has the same size: the type is
 * not subclassable. */
#define MSG_FREE_MAX 64
static void *msg_free[MSG_FREE_MAX];
static int msg_nfree;

PyObject *tx_message_new(tx_state *st, const tachyon_msg *m)
{
	MessageObject *o;
	PyObject *data = PyBytes_FromStringAndSize((const char *)m->data, (Py_ssize_t)m->size);
	if (!data)
		return NULL;
	if (TX_LIKELY(msg_nfree > 0)) {
		o = msg_free[--msg_nfree];
		(void)PyObject_Init((PyObject *)o, st->message_type);
	} else {
		o = PyObject_New(MessageObject, st->message_type);
		if (!o) {
			Py_DECREF(data);
			return NULL;
		}
	}
	o->type_id = m->type_id;
	o->data = data;
	return (PyObject *)o;
}

void tx_message_freelist_clear(void)
{
	while (msg_nfree > 0)
		PyObject_Free(msg_free[--msg_nfree]);
}

static PyObject *Message_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *names[] = {"type_id", "data", NULL};
	PyObject *tid, *data, *bytes;
	uint32_t type_id;
	MessageObject *o;
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Message", names, &tid, &data))
		return NULL;
	if (tx_parse_type_id(tid, &type_id) < 0)
		return NULL;
	if (!PyObject_CheckBuffer(data)) {
		PyErr_Format(PyExc_TypeError, "data must be a bytes-like object, not %.100s",
		             Py_TYPE(data)->tp_name);
		return NULL;
	}
	bytes = PyBytes_CheckExact(data) ? Py_NewRef(data) : PyBytes_FromObject(data);
	if (!bytes)
		return NULL;
	o = (MessageObject *)type->tp_alloc(type, 0);
	if (!o) {
		Py_DECREF(bytes);
		return NULL;
	}
	o->type_id = type_id;
	o->data = bytes;
	return (PyObject *)o;
}

static void Message_dealloc(MessageObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	Py_XDECREF(self->data);
	/* tp_free is PyObject_Free for this non-GC type: keep the block instead */
	if (msg_nfree < MSG_FREE_MAX && tp->tp_free == PyObject_Free)
		msg_free[msg_nfree++] = self;
	else
		tp->tp_free((PyObject *)self);
	Py_DECREF(tp);
}

static PyObject *Message_get_type_id(MessageObject *self, void *c)
{
	return PyLong_FromUnsignedLong(self->type_id);
}

static PyObject *Message_get_size(MessageObject *self, void *c)
{
	return PyLong_FromSsize_t(PyBytes_GET_SIZE(self->data));
}

static PyObject *Message_get_data(MessageObject *self, void *c)
{
	return Py_NewRef(self->data);
}

static PyObject *Message_repr(MessageObject *self)
{
	Py_ssize_t n = PyBytes_GET_SIZE(self->data);
	PyObject *head, *r;
	if (n <= 48)
		return PyUnicode_FromFormat("Message(type_id=%lu, size=%zd, data=%R)",
		                            (unsigned long)self->type_id, n, self->data);
	head = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->data), 32);
	if (!head)
		return NULL;
	r = PyUnicode_FromFormat("Message(type_id=%lu, size=%zd, data=%R...)",
	                         (unsigned long)self->type_id, n, head);
	Py_DECREF(head);
	return r;
}

static PyObject *Message_richcompare(PyObject *a, PyObject *b, int op)
{
	MessageObject *x = (MessageObject *)a, *y = (MessageObject *)b;
	int eq;
	if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b))
		Py_RETURN_NOTIMPLEMENTED;
	eq = x->type_id == y->type_id;
	if (eq) {
		eq = PyObject_RichCompareBool(x->data, y->data, Py_EQ);
		if (eq < 0)
			return NULL;
	}
	return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t Message_hash(MessageObject *self)
{
	Py_hash_t h = PyObject_Hash(self->data);
	if (h == -1)
		return -1;
	h ^= (Py_hash_t)self->type_id * 1000003;
	return h == -1 ? -2 : h;
}

static PyObject *Message_reduce(MessageObject *self, PyObject *unused)
{
	return Py_BuildValue("(O(kO))", (PyObject *)Py_TYPE(self), (unsigned long)self->type_id,
	                     self->data);
}

static PyObject *Message_array(MessageObject *self, PyObject *unused)
{
	tachyon_tensor_frame f;
	if (tx_frame_of((const uint8_t *)PyBytes_AS_STRING(self->data),
	                (size_t)PyBytes_GET_SIZE(self->data), self->type_id, &f, PyExc_ValueError) < 0)
		return NULL;
	return tx_frame_array(self->data, &f);
}

static PyMethodDef Message_methods[] = {
	{"array", (PyCFunction)Message_array, METH_NOARGS,
	 "array($self, /)\n--\n\n"
	 "The tensor frame this message holds, as a read-only numpy array over the copy in `data`.\n"
	 "TypeError when the message is not a frame (route 0xFFFF) or its dtype has no numpy\n"
	 "form (bfloat16); ValueError when its header fails a check."},
	{"__reduce__", (PyCFunction)Message_reduce, METH_NOARGS, "__reduce__($self, /)\n--\n\n"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Message_getset[] = {
	{"type_id", (getter)Message_get_type_id, NULL, "The message's type_id (0..2**32-1).", NULL},
	{"size", (getter)Message_get_size, NULL, "Payload size in bytes.", NULL},
	{"data", (getter)Message_get_data, NULL, "The payload (a copy, safe to keep).", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Message_slots[] = {
	{Py_tp_doc, "Message(type_id, data)\n--\n\nOne received message: type_id, size and data "
	            "(bytes, a copy safe to keep)."},
	{Py_tp_new, Message_new},
	{Py_tp_dealloc, Message_dealloc},
	{Py_tp_repr, Message_repr},
	{Py_tp_richcompare, Message_richcompare},
	{Py_tp_hash, Message_hash},
	{Py_tp_methods, Message_methods},
	{Py_tp_getset, Message_getset},
	{0, NULL},
};

PyType_Spec tx_message_spec = {
	.name = "tachyon.Message",
	.basicsize = sizeof(MessageObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = Message_slots,
};

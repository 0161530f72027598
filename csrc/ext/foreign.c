/*
 * _ForeignView(owner, type_id=0): a read-only view of a payload that did not
 * come through a ring (tachyon.net receives into libzmq's buffers).
 *
 * The view holds a buffer export of owner for its whole life, so its
 * memoryviews, arrays and DLPack tensors (which hold the view) keep the
 * payload alive; there is no slot to pin and nothing to give back.
 *
 * The buffer protocol exports the payload in place, wherever it lies (a
 * byte buffer promises no alignment). DLPack consumers and the tensor
 * frames (ABI.md "Tensor frames") count on 64-byte alignment: the first
 * __dlpack__ or array() of a payload whose data does not start on a 64-byte
 * boundary copies it once into an aligned block, kept for the view's life
 * and used by every later export. A view only read as bytes never copies.
 */
#include "foreign.h"

#include <stdlib.h>
#include <string.h>

#include "dlpack.h"
#include "frames.h"

typedef struct {
	PyObject_HEAD
	PyObject *owner;            /* strong, for the view's life */
	Py_buffer src;              /* owner's export, valid while owner is set */
	void *copy;                 /* the aligned copy, made on demand, or NULL */
	tx_rxmsg msg;               /* data (in place), size, type_id (seq unused) */
} ForeignViewObject;

/* The payload at a 64-byte boundary: in place when it lies on one, else
 * the aligned copy, made at the first call. NULL with MemoryError set. */
static const void *aligned_data(ForeignViewObject *self)
{
	if (!self->msg.size || !((uintptr_t)self->msg.data & 63))
		return self->msg.data;
	if (!self->copy) {
		void *p;
		if (posix_memalign(&p, 64, self->msg.size) != 0) {
			PyErr_NoMemory();
			return NULL;
		}
		memcpy(p, self->msg.data, self->msg.size);
		self->copy = p;
	}
	return self->copy;
}

static PyObject *FView_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	static char *kw[] = {"owner", "type_id", NULL};
	PyObject *owner;
	unsigned long long type_id = 0;
	ForeignViewObject *self;
	if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|K:_ForeignView", kw, &owner, &type_id))
		return NULL;
	if (type_id > UINT32_MAX) {
		PyErr_Format(PyExc_ValueError, "type_id must be 0..2**32-1, got %llu", type_id);
		return NULL;
	}
	self = (ForeignViewObject *)type->tp_alloc(type, 0);
	if (!self)
		return NULL;
	if (PyObject_GetBuffer(owner, &self->src, PyBUF_C_CONTIGUOUS) < 0) {
		Py_DECREF(self);
		return NULL;
	}
	self->owner = Py_NewRef(owner);
	if ((uint64_t)self->src.len > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "a payload is at most 2**32-1 bytes");
		Py_DECREF(self);
		return NULL;
	}
	self->msg.size = (uint32_t)self->src.len;
	self->msg.type_id = (uint32_t)type_id;
	self->msg.data = self->src.buf;
	return (PyObject *)self;
}

static void FView_dealloc(ForeignViewObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	if (self->owner) {
		PyBuffer_Release(&self->src);
		Py_CLEAR(self->owner);
	}
	free(self->copy);
	tp->tp_free((PyObject *)self);
	Py_DECREF(tp);
}

static int FView_getbuffer(ForeignViewObject *self, Py_buffer *view, int flags)
{
	/* in place and read-only, as a received slot: PyBUF_WRITABLE is refused */
	return PyBuffer_FillInfo(view, (PyObject *)self, (void *)self->msg.data, self->msg.size, 1,
	                         flags);
}

static PyObject *FView_array(ForeignViewObject *self, PyObject *unused)
{
	tachyon_tensor_frame f;
	const void *data = aligned_data(self);
	if (!data)
		return NULL;
	if (tx_frame_of(data, self->msg.size, self->msg.type_id, &f, PyExc_ValueError) < 0)
		return NULL;
	return tx_frame_array((PyObject *)self, &f);
}

static PyObject *FView_dlpack(ForeignViewObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
	tx_rxmsg m = self->msg;
	m.data = aligned_data(self);
	if (!m.data)
		return NULL;
	return tx_dlpack_export_owned((PyObject *)self, &m, args, nargs, kwnames);
}

static PyObject *FView_dlpack_device(PyObject *self, PyObject *unused)
{
	return tx_dlpack_device();
}

static Py_ssize_t FView_len(ForeignViewObject *self) { return self->msg.size; }

static PyObject *FView_get_type_id(ForeignViewObject *self, void *c)
{
	return PyLong_FromUnsignedLong(self->msg.type_id);
}

static PyObject *FView_get_size(ForeignViewObject *self, void *c)
{
	return PyLong_FromUnsignedLong(self->msg.size);
}

static PyObject *FView_get_copied(ForeignViewObject *self, void *c)
{
	return PyBool_FromLong(self->copy != NULL);
}

static PyMethodDef FView_methods[] = {
	{"array", (PyCFunction)FView_array, METH_NOARGS,
	 "array($self, /)\n--\n\nA read-only numpy array over the tensor frame this payload holds."},
	{"__dlpack__", (PyCFunction)(void (*)(void))FView_dlpack, METH_FASTCALL | METH_KEYWORDS,
	 "__dlpack__($self, /, stream=None, *, max_version=None, dl_device=None, copy=None)\n--\n\n"
	 "Export the payload in place (read-only), as a received slot is exported."},
	{"__dlpack_device__", (PyCFunction)FView_dlpack_device, METH_NOARGS,
	 "__dlpack_device__($self, /)\n--\n\n(1, 0): CPU memory."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef FView_getset[] = {
	{"type_id", (getter)FView_get_type_id, NULL, "The message's type_id.", NULL},
	{"actual_size", (getter)FView_get_size, NULL, "The payload's size in bytes.", NULL},
	{"copied", (getter)FView_get_copied, NULL,
	 "True once an aligned copy was made: the payload is not 64-byte aligned and was "
	 "exported by __dlpack__ or array(), which copy it once. The buffer protocol never copies.",
	 NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot FView_slots[] = {
	{Py_tp_doc, "_ForeignView(owner, type_id=0)\n--\n\n"
	            "A read-only view of a payload held by owner (any C-contiguous buffer), with "
	            "the buffer protocol (in place), __dlpack__ and array() of a received slot. "
	            "Data not 64-byte aligned is copied once into an aligned block by the first "
	            "__dlpack__ or array(), which need that alignment."},
	{Py_tp_new, FView_new},
	{Py_tp_dealloc, FView_dealloc},
	{Py_tp_methods, FView_methods},
	{Py_tp_getset, FView_getset},
	{Py_sq_length, FView_len},
	{Py_bf_getbuffer, FView_getbuffer},
	{0, NULL},
};

static PyType_Spec FView_spec = {
	.name = "tachyon._ForeignView",
	.basicsize = sizeof(ForeignViewObject),
	/* a base: tachyon.net's receive guard adds its context manager to it */
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_BASETYPE,
	.slots = FView_slots,
};

int tx_foreign_add(PyObject *module)
{
	PyObject *t = PyType_FromModuleAndSpec(module, &FView_spec, NULL);
	int r;
	if (!t)
		return -1;
	r = PyModule_AddObjectRef(module, "_ForeignView", t);
	Py_DECREF(t);
	return r;
}

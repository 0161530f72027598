/*
 * Tensor frames for Python (ABI.md "Tensor frames").
 *
 * Receiving: a frame's header is checked by the core's decoder (one copy
 * out of the slot) before anything is built; the array is then a numpy
 * array over a buffer export of the slot's owner, so it pins the slot as
 * long as it lives, and is read-only because the owner's buffer is.
 *
 * Sending: send_array reads an object's dtype, shape and strides from its
 * buffer (numpy, array.array, memoryview) or, lacking one, its DLPack
 * export (torch), and copies the elements into the slot in C order: a
 * non-contiguous source (Fortran order, a slice) is gathered during the one
 * copy a send makes anyway, so every frame we write is C-contiguous.
 *
 * numpy is imported when first needed, never at module import.
 */
#include "frames.h"

#include <string.h>

#include "dlpack_abi.h"

/* ------------------------------------------------------------------------ */
/* receiving                                                                 */

/* The core's refusal of a header, raised as `bad`. */
static int frame_corrupt(int r, uint32_t type_id, size_t size, PyObject *bad)
{
	PyErr_Format(bad, "corrupt tensor frame (type_id 0x%08x, %zu bytes): %s", (unsigned)type_id,
	             size, tachyon_tensor_frame_strerror(r));
	return -1;
}

int tx_frame_of(const uint8_t *data, size_t size, uint32_t type_id, tachyon_tensor_frame *f,
                PyObject *bad)
{
	int r;
	if (!TACHYON_FRAME_IS_TYPE_ID(type_id)) {
		PyErr_Format(PyExc_TypeError,
		             "this message is not a tensor frame (type_id 0x%08x; frames have route "
		             "0xFFFF, as bus.send_array writes them); read it as bytes or memoryview",
		             (unsigned)type_id);
		return -1;
	}
	r = tachyon_tensor_frame_decode(data, size, f);
	return r < 0 ? frame_corrupt(r, type_id, size, bad) : 0;
}

int tx_payload_frame_of(const uint8_t *data, size_t size, uint32_t type_id,
                        tachyon_tensor_frame *f, PyObject *bad)
{
	int r = tachyon_tensor_frame_decode(data, size, f);
	if (r == -ENOMSG) {
		/* the decoder's own "no frame here": too short or not the magic */
		PyErr_Format(PyExc_TypeError,
		             "this request or reply holds no tensor frame (msg_type %u, %zu bytes, no "
		             "frame header at its start; call_array, reply_array and request_array "
		             "write one); read it as bytes or memoryview",
		             (unsigned)(type_id & 0xFFFFu), size);
		return -1;
	}
	return r < 0 ? frame_corrupt(r, type_id, size, bad) : 0;
}

/* numpy's name of a frame dtype, native byte order; NULL for bfloat16. */
static const char *numpy_typestr(uint8_t code, uint8_t bits)
{
	static const char *const ints[] = {"i1", "=i2", "=i4", "=i8"};
	static const char *const uints[] = {"u1", "=u2", "=u4", "=u8"};
	int k = bits == 8 ? 0 : bits == 16 ? 1 : bits == 32 ? 2 : 3;
	switch (code) {
	case TACHYON_DT_INT:
		return ints[k];
	case TACHYON_DT_UINT:
		return uints[k];
	case TACHYON_DT_FLOAT:
		return bits == 16 ? "=f2" : bits == 32 ? "=f4" : "=f8";
	case TACHYON_DT_COMPLEX:
		return bits == 64 ? "=c8" : "=c16";
	case TACHYON_DT_BOOL:
		return "?";
	default:
		return NULL;
	}
}

static PyObject *int64_tuple(const int64_t *v, uint32_t n, int64_t scale)
{
	PyObject *t = PyTuple_New((Py_ssize_t)n);
	uint32_t i;
	if (!t)
		return NULL;
	for (i = 0; i < n; i++) {
		PyObject *x = PyLong_FromLongLong(v[i] * scale);
		if (!x) {
			Py_DECREF(t);
			return NULL;
		}
		PyTuple_SET_ITEM(t, i, x);
	}
	return t;
}

PyObject *tx_frame_array(PyObject *owner, const tachyon_tensor_frame *f)
{
	const char *ts = numpy_typestr(f->code, f->bits);
	PyObject *np = NULL, *dtype = NULL, *shape = NULL, *strides = NULL, *kw = NULL;
	PyObject *ndarray = NULL, *args = NULL, *arr = NULL, *flat = NULL;

	if (!ts) {
		PyErr_SetString(PyExc_TypeError,
		                "numpy has no bfloat16 dtype: read this frame with "
		                "torch.from_dlpack(view) (the view, not .array())");
		return NULL;
	}
	np = PyImport_ImportModule("numpy");
	if (!np)
		return NULL;
	dtype = PyObject_CallMethod(np, "dtype", "s", ts);
	shape = int64_tuple(f->shape, f->ndim, 1);
	if (f->strided && f->nelems > 0)
		strides = int64_tuple(f->strides, f->ndim, f->bits / 8);
	else
		strides = Py_NewRef(Py_None);
	ndarray = PyObject_GetAttrString(np, "ndarray");
	/* numpy.frombuffer holds its buffer export (the pin on a slot) for the
	 * life of the flat array, which the shaped array keeps as its base;
	 * numpy.ndarray(buffer=owner) would let go of the export at once */
	flat = PyObject_CallMethod(np, "frombuffer", "OsKK", owner, "u1",
	                           (unsigned long long)f->data_size,
	                           (unsigned long long)f->data_offset);
	if (!dtype || !shape || !strides || !ndarray || !flat)
		goto done;
	args = PyTuple_Pack(1, shape);
	kw = Py_BuildValue("{sOsOsO}", "dtype", dtype, "buffer", flat, "strides", strides);
	if (!args || !kw)
		goto done;
	arr = PyObject_Call(ndarray, args, kw);
done:
	Py_XDECREF(np);
	Py_XDECREF(dtype);
	Py_XDECREF(shape);
	Py_XDECREF(strides);
	Py_XDECREF(ndarray);
	Py_XDECREF(flat);
	Py_XDECREF(args);
	Py_XDECREF(kw);
	return arr;
}

/* ------------------------------------------------------------------------ */
/* sending                                                                   */

/* A struct-module format of one native scalar -> DLPack code; bits from the
 * item size. -1 for anything a frame cannot carry. */
static int format_code(const char *fmt, Py_ssize_t itemsize)
{
	if (!fmt)
		return TACHYON_DT_UINT; /* plain bytes */
	if (*fmt == '@' || *fmt == '=' || (*fmt == '<' && PY_LITTLE_ENDIAN) ||
	    (*fmt == '>' && !PY_LITTLE_ENDIAN))
		fmt++;
	if (fmt[0] == 'Z' && (fmt[1] == 'f' || fmt[1] == 'd') && fmt[2] == '\0')
		return TACHYON_DT_COMPLEX;
	if (fmt[0] == '\0' || fmt[1] != '\0')
		return -1;
	switch (fmt[0]) {
	case '?':
		return itemsize == 1 ? (int)TACHYON_DT_BOOL : -1;
	case 'b': case 'h': case 'i': case 'l': case 'q': case 'n':
		return TACHYON_DT_INT;
	case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N': case 'c':
		return TACHYON_DT_UINT;
	case 'e': case 'f': case 'd':
		return TACHYON_DT_FLOAT;
	default:
		return -1;
	}
}

static int frame_error(int r, const char *what)
{
	PyErr_Format(r == -EINVAL ? PyExc_TypeError : PyExc_ValueError,
	             "send_array: %s cannot travel as a tensor frame: %s", what,
	             tachyon_tensor_frame_strerror(r));
	return -1;
}

/* Shape and byte strides known: fill the frame and the contiguity. */
static int src_finish(tx_array_src *src, uint8_t code, uint8_t bits, int ndim,
                      const int64_t *shape, const char *what)
{
	int64_t expect = bits / 8;
	int i, r;
	if (ndim < 0 || ndim > (int)TACHYON_FRAME_MAX_NDIM)
		return frame_error(-E2BIG, what);
	r = tachyon_tensor_frame_init(&src->frame, code, bits, (uint32_t)ndim, shape);
	if (r < 0)
		return frame_error(r, what);
	src->contiguous = 1;
	for (i = ndim - 1; i >= 0; i--) {
		if (shape[i] != 1 && src->byte_strides[i] != expect)
			src->contiguous = 0;
		expect *= shape[i];
	}
	if (src->frame.nelems == 0)
		src->contiguous = 1;
	return 0;
}

static int src_from_buffer(PyObject *obj, tx_array_src *src)
{
	Py_buffer *v = &src->view;
	int64_t shape[TACHYON_FRAME_MAX_NDIM];
	int code, i;
	if (PyObject_GetBuffer(obj, v, PyBUF_RECORDS_RO) < 0)
		return -1;
	code = format_code(v->format, v->itemsize);
	if (code < 0 || v->itemsize < 1 || v->itemsize > 16 ||
	    (code == TACHYON_DT_COMPLEX && v->itemsize != 8 && v->itemsize != 16)) {
		PyErr_Format(PyExc_TypeError,
		             "send_array: a %.100s of format %s has no DLPack dtype a tensor frame can "
		             "carry (bool, int/uint 8-64, float 16-64, complex 64/128)",
		             Py_TYPE(obj)->tp_name, v->format ? v->format : "B");
		PyBuffer_Release(v);
		return -1;
	}
	if (v->ndim > (int)TACHYON_FRAME_MAX_NDIM) {
		PyBuffer_Release(v);
		return frame_error(-E2BIG, "the array");
	}
	for (i = 0; i < v->ndim; i++) {
		shape[i] = v->shape ? (int64_t)v->shape[i] : (int64_t)(v->len / v->itemsize);
		src->byte_strides[i] = v->strides ? v->strides[i] : v->itemsize;
	}
	if (v->ndim == 1 && !v->shape)
		shape[0] = v->len / v->itemsize;
	src->data = v->buf;
	if (src_finish(src, (uint8_t)code, (uint8_t)(v->itemsize * 8), v->ndim, shape, "the array") < 0) {
		PyBuffer_Release(v);
		return -1;
	}
	return 0;
}

static int src_from_dlpack(PyObject *obj, PyObject *method, tx_array_src *src)
{
	PyObject *cap, *kw, *empty;
	tdl_tensor *t;
	int64_t shape[TACHYON_FRAME_MAX_NDIM];
	int i;

	/* versioned first: numpy exports read-only arrays only that way */
	empty = PyTuple_New(0);
	kw = Py_BuildValue("{s(ii)}", "max_version", 1, 0);
	cap = (empty && kw) ? PyObject_Call(method, empty, kw) : NULL;
	Py_XDECREF(kw);
	Py_XDECREF(empty);
	if (!cap && PyErr_ExceptionMatches(PyExc_TypeError)) {
		PyErr_Clear();
		cap = PyObject_CallNoArgs(method);
	}
	if (!cap)
		return -1;
	if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
		tdl_managed_versioned *mv = PyCapsule_GetPointer(cap, "dltensor_versioned");
		src->versioned = 1;
		src->managed = mv;
		t = &mv->dl_tensor;
		(void)PyCapsule_SetName(cap, "used_dltensor_versioned");
	} else if (PyCapsule_IsValid(cap, "dltensor")) {
		tdl_managed *ml = PyCapsule_GetPointer(cap, "dltensor");
		src->versioned = 0;
		src->managed = ml;
		t = &ml->dl_tensor;
		(void)PyCapsule_SetName(cap, "used_dltensor");
	} else {
		Py_DECREF(cap);
		PyErr_Format(PyExc_TypeError, "send_array: %.100s.__dlpack__() returned no DLPack capsule",
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	src->capsule = cap; /* from here tx_array_src_release runs the deleter */
	if (t->device.device_type != TDL_CPU) {
		PyErr_Format(PyExc_ValueError,
		             "send_array copies CPU memory only; this %.100s is on DLPack device %d "
		             "(move it with .cpu() first)",
		             Py_TYPE(obj)->tp_name, (int)t->device.device_type);
		goto fail;
	}
	if (t->dtype.lanes != 1 || t->dtype.bits % 8 != 0 || t->ndim < 0 ||
	    t->ndim > (int)TACHYON_FRAME_MAX_NDIM) {
		frame_error(t->dtype.lanes != 1 || t->dtype.bits % 8 ? -EINVAL : -E2BIG, "the tensor");
		goto fail;
	}
	for (i = 0; i < t->ndim; i++) {
		shape[i] = t->shape[i];
		src->byte_strides[i] = 0;
	}
	if (t->strides) {
		for (i = 0; i < t->ndim; i++)
			src->byte_strides[i] = (Py_ssize_t)(t->strides[i] * (t->dtype.bits / 8));
	} else {
		Py_ssize_t st = t->dtype.bits / 8;
		for (i = t->ndim - 1; i >= 0; i--) {
			src->byte_strides[i] = st;
			st *= (Py_ssize_t)shape[i];
		}
	}
	src->data = (const uint8_t *)t->data + t->byte_offset;
	if (src_finish(src, t->dtype.code, t->dtype.bits, t->ndim, shape, "the tensor") < 0)
		goto fail;
	return 0;
fail:
	tx_array_src_release(src);
	return -1;
}

int tx_array_src_get(PyObject *obj, tx_array_src *src)
{
	PyObject *method;
	int r;
	memset(src, 0, sizeof *src);
	if (PyObject_CheckBuffer(obj))
		return src_from_buffer(obj, src);
	method = PyObject_GetAttrString(obj, "__dlpack__");
	if (!method) {
		PyErr_Clear();
		PyErr_Format(PyExc_TypeError,
		             "send_array() needs an object with the buffer protocol or __dlpack__ "
		             "(numpy array, torch CPU tensor, array.array, memoryview), not %.100s",
		             Py_TYPE(obj)->tp_name);
		return -1;
	}
	r = src_from_dlpack(obj, method, src);
	Py_DECREF(method);
	return r;
}

void tx_array_src_copy(const tx_array_src *src, uint8_t *dst)
{
	const tachyon_tensor_frame *f = &src->frame;
	int64_t idx[TACHYON_FRAME_MAX_NDIM] = {0};
	size_t run = f->bits / 8u;
	int inner = (int)f->ndim, d;

	if (src->contiguous) {
		memcpy(dst, src->data, f->data_size);
		return;
	}
	if (f->nelems == 0)
		return;
	/* trailing dimensions laid out densely are one memcpy each */
	while (inner > 0 && src->byte_strides[inner - 1] == (Py_ssize_t)run) {
		run *= (size_t)f->shape[inner - 1];
		inner--;
	}
	for (;;) {
		const uint8_t *p = src->data;
		for (d = 0; d < inner; d++)
			p += idx[d] * src->byte_strides[d];
		memcpy(dst, p, run);
		dst += run;
		for (d = inner - 1; d >= 0; d--) {
			if (++idx[d] < f->shape[d])
				break;
			idx[d] = 0;
		}
		if (d < 0)
			return;
	}
}

int tx_array_src_write(const tx_array_src *src, tachyon_bus *bus, void *p, size_t size)
{
	int r = tachyon_tensor_frame_encode(p, size, &src->frame);
	if (r < 0)
		return r;
	if (src->contiguous)
		tachyon_bus_copy_payload(bus, (uint8_t *)p + src->frame.data_offset, src->data,
		                         (size_t)src->frame.data_size);
	else
		tx_array_src_copy(src, (uint8_t *)p + src->frame.data_offset);
	return 0;
}

PyObject *tx_frame_bytes(PyObject *obj)
{
	tx_array_src src;
	PyObject *out = NULL;
	if (tx_array_src_get(obj, &src) < 0)
		return NULL;
	uint64_t size = tachyon_tensor_frame_payload_size(&src.frame);
	if (size > (uint64_t)PY_SSIZE_T_MAX) {
		PyErr_NoMemory();
		goto done;
	}
	out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
	if (!out)
		goto done;
	uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
	int r = tachyon_tensor_frame_encode(p, (size_t)size, &src.frame);
	if (r < 0) {
		/* tx_array_src_get built the frame from a checked source */
		PyErr_Format(PyExc_ValueError, "send_array: the frame does not encode (%s)", strerror(-r));
		Py_CLEAR(out);
		goto done;
	}
	if (src.contiguous)
		memcpy(p + src.frame.data_offset, src.data, (size_t)src.frame.data_size);
	else
		tx_array_src_copy(&src, p + src.frame.data_offset);
done:
	tx_array_src_release(&src);
	return out;
}

void tx_array_src_release(tx_array_src *src)
{
	if (src->view.obj)
		PyBuffer_Release(&src->view);
	if (src->capsule) {
		/* renamed: its destructor leaves the deleter to us */
		if (src->versioned) {
			tdl_managed_versioned *mv = src->managed;
			if (mv->deleter)
				mv->deleter(mv);
		} else {
			tdl_managed *ml = src->managed;
			if (ml->deleter)
				ml->deleter(ml);
		}
		Py_CLEAR(src->capsule);
	}
}

/* ------------------------------------------------------------------------ */
/* send_array_zero_copy's slot                                               */

PyObject *tx_frame_zero_copy(PyObject *const *args, Py_ssize_t nargs, PyTypeObject *guard_type)
{
	TxGuardObject *g = NULL;
	PyObject *shape_seq, *shape_t = NULL, *data = NULL, *res;
	tachyon_tensor_frame f;
	int64_t shape[TACHYON_FRAME_MAX_NDIM];
	unsigned long code, bits;
	Py_ssize_t i, n;
	uint64_t need;
	Py_buffer view = {0};
	uint8_t *dst;
	Py_ssize_t room;
	int r;

	if (nargs != 5 || !PyUnicode_Check(args[4])) {
		PyErr_SetString(PyExc_TypeError,
		                "_frame_zero_copy(guard, shape, code, bits, typestr)");
		return NULL;
	}
	code = PyLong_AsUnsignedLong(args[2]);
	bits = PyLong_AsUnsignedLong(args[3]);
	if (PyErr_Occurred())
		return NULL;
	shape_seq = PySequence_Fast(args[1], "shape must be a sequence of ints");
	if (!shape_seq)
		return NULL;
	n = PySequence_Fast_GET_SIZE(shape_seq);
	if (n > (Py_ssize_t)TACHYON_FRAME_MAX_NDIM) {
		Py_DECREF(shape_seq);
		return frame_error(-E2BIG, "the shape"), NULL;
	}
	for (i = 0; i < n; i++) {
		shape[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(shape_seq, i));
		if (shape[i] == -1 && PyErr_Occurred()) {
			Py_DECREF(shape_seq);
			return NULL;
		}
	}
	Py_DECREF(shape_seq);
	r = tachyon_tensor_frame_init(&f, (uint8_t)code, (uint8_t)bits, (uint32_t)n, shape);
	if (r < 0)
		return frame_error(r, "the shape and dtype"), NULL;
	need = tachyon_tensor_frame_payload_size(&f);

	/* Where the frame goes: an open TxGuard's slot, or the writable buffer
	 * of a tcp:// bus's NetTxGuard (a bytearray of the message, sent at its
	 * exit). This is the one place the two are told apart. */
	if (PyObject_TypeCheck(args[0], guard_type)) {
		g = (TxGuardObject *)args[0];
		if (g->state != TXG_OPEN) {
			PyErr_SetString(PyExc_ValueError, "the guard is not open or too small for the frame");
			return NULL;
		}
		dst = g->data;
		room = g->size;
	} else {
		if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
			return NULL;
		dst = view.buf;
		room = view.len;
	}
	if ((uint64_t)room < need) {
		PyErr_SetString(PyExc_ValueError, "the guard is not open or too small for the frame");
		goto fail;
	}
	r = tachyon_tensor_frame_encode(dst, (size_t)need, &f);
	if (r < 0) {
		frame_error(r, "the shape and dtype");
		goto fail;
	}
	shape_t = int64_tuple(f.shape, f.ndim, 1);
	if (!shape_t)
		goto fail;
	if (g) {
		g->actual_size = (Py_ssize_t)need;
		data = Py_BuildValue("(Ki)", (unsigned long long)(uintptr_t)(dst + f.data_offset), 0);
		res = data ? Py_BuildValue("{sisNsOsN}", "version", 3, "shape", shape_t, "typestr",
		                           args[4], "data", data)
		           : NULL;
		if (!data)
			Py_DECREF(shape_t);
		return res;
	}
	PyBuffer_Release(&view);
	{
		PyObject *size = PyLong_FromUnsignedLongLong(need);
		r = size ? PyObject_SetAttrString(args[0], "actual_size", size) : -1;
		Py_XDECREF(size);
	}
	/* The array holds a memoryview of the buffer as its base (numpy keeps
	 * the interface's data object), which keeps the bytearray alive and
	 * unresizable for as long as the array lives. */
	data = r < 0 ? NULL : PyMemoryView_FromObject(args[0]);
	if (!data) {
		Py_DECREF(shape_t);
		return NULL;
	}
	return Py_BuildValue("{sisNsOsNsK}", "version", 3, "shape", shape_t, "typestr", args[4],
	                     "data", data, "offset", (unsigned long long)f.data_offset);
fail:
	if (view.obj)
		PyBuffer_Release(&view);
	return NULL;
}

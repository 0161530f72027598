/*
 * DLPack export of a received slot (RxGuard and RxMsgView).
 *
 * A tensor frame (route 0xFFFF, ABI.md "Tensor frames") exports the
 * array its header describes, once the header passed every check; any
 * other message exports its payload as 1-D uint8.
 *
 * Each export owns a context allocated with the raw allocator: the managed
 * tensor, its shape and strides, a strong reference to the bus and the slot's
 * sequence number (or, for memory that is not a slot, a strong reference
 * to the object that owns it). The slot stays pinned until the deleter runs. The deleter
 * may run on any thread (it takes the GIL) and at any time; while the
 * interpreter finalizes it touches no Python object (the bus reference is
 * leaked, the mapping simply stays). Consumers rename the capsule to
 * "used_dltensor[_versioned]"; our capsule destructor calls the deleter only
 * when the capsule kept its original name (never consumed).
 */
#include "dlpack.h"

#include "args.h"
#include "dlpack_abi.h"
#include "errors.h"
#include "frames.h"
#include "slots.h"

static const char CAP_LEGACY[] = "dltensor";
static const char CAP_VERSIONED[] = "dltensor_versioned";

typedef struct {
	union {
		tdl_managed legacy;
		tdl_managed_versioned versioned;
	} mt;                     /* first: the capsule points here */
	int64_t shape[TACHYON_FRAME_MAX_NDIM];
	int64_t strides[TACHYON_FRAME_MAX_NDIM];
	BusObject *bus;           /* strong, or NULL when owner holds the memory */
	uint64_t seq;
	PyObject *owner;          /* strong: the memory's owner when it is not a slot */
} tx_dlctx;

/* Plain counters, written and read only with the GIL held: a deleter
 * counts after it took the GIL. A deleter that runs while the interpreter
 * finalizes takes no GIL and does not count: no Python code can read the
 * counters any more by then. */
static unsigned long long dl_created;
static unsigned long long dl_deleted;

PyObject *tx_dlpack_counters(void)
{
	return Py_BuildValue("(KK)", dl_created, dl_deleted);
}

static void dlctx_release(tx_dlctx *ctx)
{
	PyGILState_STATE g;
	if (!ctx)
		return;
	if (TX_IS_FINALIZING()) {
		/* no Python object may be touched; the bus (and its mapping) is leaked */
		PyMem_RawFree(ctx);
		return;
	}
	g = PyGILState_Ensure();
	dl_deleted++;
	if (ctx->bus) {
		tx_slot_decref(ctx->bus, ctx->seq);
		Py_DECREF(ctx->bus);
	}
	Py_XDECREF(ctx->owner);
	PyGILState_Release(g);
	PyMem_RawFree(ctx);
}

static void deleter_legacy(tdl_managed *mt)
{
	if (mt)
		dlctx_release(mt->manager_ctx);
}

static void deleter_versioned(tdl_managed_versioned *mt)
{
	if (mt)
		dlctx_release(mt->manager_ctx);
}

/* Capsule destructors: run the deleter only for a capsule nobody consumed.
 * They may run with an exception set, so the indicator is saved. */
static void capsule_dtor_legacy(PyObject *cap)
{
	PyObject *exc;
	tdl_managed *mt;
	if (!PyCapsule_IsValid(cap, CAP_LEGACY))
		return;
	exc = tx_err_fetch();
	mt = PyCapsule_GetPointer(cap, CAP_LEGACY);
	if (mt && mt->deleter)
		mt->deleter(mt);
	PyErr_Clear();
	tx_err_restore(exc);
}

static void capsule_dtor_versioned(PyObject *cap)
{
	PyObject *exc;
	tdl_managed_versioned *mt;
	if (!PyCapsule_IsValid(cap, CAP_VERSIONED))
		return;
	exc = tx_err_fetch();
	mt = PyCapsule_GetPointer(cap, CAP_VERSIONED);
	if (mt && mt->deleter)
		mt->deleter(mt);
	PyErr_Clear();
	tx_err_restore(exc);
}

PyObject *tx_dlpack_device(void) { return Py_BuildValue("(ii)", TDL_CPU, 0); }

static int wants_versioned(PyObject *max_version, int *versioned)
{
	PyObject *major_o;
	long major;
	*versioned = 0;
	if (!max_version || max_version == Py_None)
		return 0;
	if (!PyTuple_Check(max_version) || PyTuple_GET_SIZE(max_version) != 2) {
		PyErr_SetString(PyExc_TypeError, "max_version must be a (major, minor) tuple or None");
		return -1;
	}
	major_o = PyTuple_GET_ITEM(max_version, 0);
	major = PyLong_AsLong(major_o);
	if (major == -1 && PyErr_Occurred())
		return -1;
	*versioned = major >= (long)TDL_MAJOR_VERSION;
	return 0;
}

static int check_device(PyObject *dl_device)
{
	PyObject *t;
	int ok = 0;
	if (!dl_device || dl_device == Py_None)
		return 0;
	t = PySequence_Tuple(dl_device);
	if (t && PyTuple_GET_SIZE(t) == 2) {
		long type = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
		long id = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
		ok = !PyErr_Occurred() && type == TDL_CPU && id == 0;
	}
	Py_XDECREF(t);
	PyErr_Clear();
	if (!ok) {
		PyErr_Format(PyExc_BufferError,
		             "tachyon exports CPU memory only: dl_device must be (1, 0), got %R",
		             dl_device);
		return -1;
	}
	return 0;
}

/* The export of m, pinned through the slot of bus or, bus NULL, through owner. */
static PyObject *export(BusObject *bus, PyObject *owner, const tx_rxmsg *m,
                        PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = {"stream", "max_version", "dl_device", "copy"};
	PyObject *a[4], *cap;
	tx_dlctx *ctx;
	tdl_tensor *t;
	tachyon_tensor_frame f;
	int versioned, is_frame;
	uint32_t i;

	if (tx_parse_args("__dlpack__", args, nargs, kwnames, names, 4, 1, 0, a) < 0)
		return NULL;
	if (a[0] && a[0] != Py_None) {
		PyErr_Format(PyExc_BufferError,
		             "stream must be None for CPU memory (got %R)", a[0]);
		return NULL;
	}
	if (wants_versioned(a[1], &versioned) < 0 || check_device(a[2]) < 0)
		return NULL;
	if (a[3] && a[3] != Py_None) {
		int copy = PyObject_IsTrue(a[3]);
		if (copy < 0)
			return NULL;
		if (copy) {
			PyErr_SetString(PyExc_BufferError,
			                "copy=True: tachyon exports received payloads in place and never "
			                "copies them; take bytes(view) or Message.data for a copy");
			return NULL;
		}
	}
	if (bus && tachyon_bus_forked(bus->bus))
		return tx_raise_forked(bus->st);
	/* a tensor frame exports its own dtype, shape and strides; its header
	 * is checked first and a bad one exports nothing */
	is_frame = TACHYON_FRAME_IS_TYPE_ID(m->type_id);
	if (is_frame && tx_frame_of(m->data, m->size, m->type_id, &f, PyExc_BufferError) < 0)
		return NULL;

	ctx = PyMem_RawCalloc(1, sizeof *ctx);
	if (!ctx)
		return PyErr_NoMemory();
	if (is_frame) {
		for (i = 0; i < f.ndim; i++) {
			ctx->shape[i] = f.shape[i];
			ctx->strides[i] = f.strides[i];
		}
	} else {
		ctx->shape[0] = (int64_t)m->size;
		ctx->strides[0] = 1;
	}
	ctx->bus = bus ? (BusObject *)Py_NewRef(bus) : NULL;
	ctx->seq = m->seq;
	ctx->owner = bus ? NULL : Py_NewRef(owner);
	if (versioned) {
		tdl_managed_versioned *mv = &ctx->mt.versioned;
		mv->version.major = TDL_MAJOR_VERSION;
		mv->version.minor = TDL_MINOR_VERSION;
		mv->manager_ctx = ctx;
		mv->deleter = deleter_versioned;
		mv->flags = TDL_FLAG_READ_ONLY;
		t = &mv->dl_tensor;
	} else {
		tdl_managed *ml = &ctx->mt.legacy;
		ml->manager_ctx = ctx;
		ml->deleter = deleter_legacy;
		t = &ml->dl_tensor;
	}
	t->data = (void *)(is_frame ? m->data + f.data_offset : m->data);
	t->device.device_type = TDL_CPU;
	t->device.device_id = 0;
	t->ndim = is_frame ? (int32_t)f.ndim : 1;
	t->dtype.code = is_frame ? f.code : TDL_UINT;
	t->dtype.bits = is_frame ? f.bits : 8;
	t->dtype.lanes = 1;
	t->shape = ctx->shape;
	t->strides = ctx->strides;
	t->byte_offset = 0;

	if (bus)
		tx_slot_incref(bus, m->seq);
	dl_created++;
	cap = PyCapsule_New(&ctx->mt, versioned ? CAP_VERSIONED : CAP_LEGACY,
	                    versioned ? capsule_dtor_versioned : capsule_dtor_legacy);
	if (!cap)
		dlctx_release(ctx);
	return cap;
}

PyObject *tx_dlpack_export(BusObject *bus, const tx_rxmsg *m, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
	return export(bus, NULL, m, args, nargs, kwnames);
}

PyObject *tx_dlpack_export_owned(PyObject *owner, const tx_rxmsg *m, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
	return export(NULL, owner, m, args, nargs, kwnames);
}

/*
 * Layer 3: tensor frames for Python (ABI.md "Tensor frames"): a received
 * payload's frame checked, numpy arrays over it, and what send_array reads
 * out of a DLPack or buffer-protocol object.
 */
#ifndef TACHYON_EXT_FRAMES_H
#define TACHYON_EXT_FRAMES_H

#include "ext.h"

/* The frame of a received message. 0, or -1 with: TypeError when type_id
 * does not mark a frame, `bad` (ValueError, BufferError...) when its header
 * fails a check. */
int tx_frame_of(const uint8_t *data, size_t size, uint32_t type_id, tachyon_tensor_frame *f,
                PyObject *bad);
/* The frame of a request or reply, whose type_id is the user's msg_type
 * (route 0) and so cannot mark a frame: the payload's own header decides,
 * checked by the same decoder. TypeError when it has no frame header (too
 * short, or not the magic), `bad` when the header fails any other check. */
int tx_payload_frame_of(const uint8_t *data, size_t size, uint32_t type_id,
                        tachyon_tensor_frame *f, PyObject *bad);

/* A read-only numpy array of frame f over the buffer of owner, whose byte 0
 * is the payload's (a received slot's exporter, or a bytes copy). The array
 * holds a buffer export of owner, which pins a slot like any memoryview.
 * TypeError for a dtype numpy lacks (bfloat16). */
PyObject *tx_frame_array(PyObject *owner, const tachyon_tensor_frame *f);

/* An array send_array can copy: dtype, C-order shape, byte strides and the
 * bytes, from an object's buffer or its DLPack export. */
typedef struct {
	tachyon_tensor_frame frame;    /* C-contiguous frame of the shape (data_offset 192) */
	const uint8_t *data;
	Py_ssize_t byte_strides[TACHYON_FRAME_MAX_NDIM];
	int contiguous;                /* C order: one memcpy */
	/* what to let go of afterwards */
	Py_buffer view;                /* view.obj != NULL when from the buffer protocol */
	PyObject *capsule;             /* the DLPack capsule, renamed "used_..." */
	void *managed;                 /* its managed tensor */
	int versioned;
} tx_array_src;

/* Fill src from obj (TypeError or ValueError on failure, nothing held). */
int tx_array_src_get(PyObject *obj, tx_array_src *src);
/* Copy the source's elements to dst in C order (frame.data_size bytes). */
void tx_array_src_copy(const tx_array_src *src, uint8_t *dst);
/* The frame into a reserved slot p of size bytes (the frame's payload
 * size): header, then the elements in one copy. 0, or the encoder's
 * negative code with nothing written. */
int tx_array_src_write(const tx_array_src *src, tachyon_bus *bus, void *p, size_t size);
/* Let go of what tx_array_src_get took. */
void tx_array_src_release(tx_array_src *src);
/* _frame_bytes(obj): obj's tensor frame (header and C-order data) as a new
 * bytes object, for a bus that sends bytes (tcp://). */
PyObject *tx_frame_bytes(PyObject *obj);

/* _frame_zero_copy(guard, shape, code, bits, typestr): the header of a
 * C-contiguous frame written into a TxGuard, or into the writable buffer
 * of a tcp:// bus's NetTxGuard, its actual_size set; returns an
 * __array_interface__ dict over the data (for a buffer, with a memoryview
 * of it as the data object, which the array keeps). */
PyObject *tx_frame_zero_copy(PyObject *const *args, Py_ssize_t nargs, PyTypeObject *guard_type);

#endif /* TACHYON_EXT_FRAMES_H */

/*
 * Tensor frames (tachyon/frame.h, ABI.md "Tensor frames"): the header that
 * says which array a payload holds, and its checks.
 *
 * One checker serves both directions: decode runs it on a private copy of
 * the received header, encode on the header it is about to write, so a
 * frame we send is by construction one we accept. All arithmetic is on
 * unsigned 64-bit values with explicit overflow checks against 2^63 - 1,
 * so every count also fits an int64_t (numpy's and DLPack's index type).
 */
#include <errno.h>
#include <string.h>

#include "tachyon/frame.h"

#define LIMIT ((uint64_t)INT64_MAX)

/* a * b, or -1 when the product exceeds LIMIT. */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (a != 0 && b > LIMIT / a)
		return -1;
	*out = a * b;
	return 0;
}

static int add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b > LIMIT - a)
		return -1;
	*out = a + b;
	return 0;
}

static int dtype_ok(uint8_t code, uint8_t bits, uint16_t lanes)
{
	if (lanes != 1)
		return 0;
	switch (code) {
	case TACHYON_DT_INT:
	case TACHYON_DT_UINT:
		return bits == 8 || bits == 16 || bits == 32 || bits == 64;
	case TACHYON_DT_FLOAT:
		return bits == 16 || bits == 32 || bits == 64;
	case TACHYON_DT_BFLOAT:
		return bits == 16;
	case TACHYON_DT_COMPLEX:
		return bits == 64 || bits == 128;
	case TACHYON_DT_BOOL:
		return bits == 8;
	default:
		return 0;
	}
}

/* Check header h (private memory) against a payload of size bytes; fill out. */
static int check(const struct tachyon_frame_header *h, uint64_t size, tachyon_tensor_frame *out)
{
	tachyon_tensor_frame f;
	uint64_t itemsize, nelems = 1, extent = 0, need;
	uint32_t i;
	int strided;

	if (h->magic != TACHYON_FRAME_MAGIC)
		return -ENOMSG;
	if (h->version != TACHYON_FRAME_VERSION || (h->flags & ~TACHYON_FRAME_F_STRIDED) != 0)
		return -EPROTONOSUPPORT;
	for (i = 0; i < sizeof h->reserved; i++)
		if (h->reserved[i] != 0)
			return -EPROTONOSUPPORT;
	if (!dtype_ok(h->code, h->bits, h->lanes))
		return -EINVAL;
	if (h->ndim > TACHYON_FRAME_MAX_NDIM)
		return -E2BIG;
	strided = (h->flags & TACHYON_FRAME_F_STRIDED) != 0;
	itemsize = h->bits / 8u;

	memset(&f, 0, sizeof f);
	f.code = h->code;
	f.bits = h->bits;
	f.lanes = h->lanes;
	f.ndim = h->ndim;
	f.strided = strided;
	for (i = 0; i < TACHYON_FRAME_MAX_NDIM; i++) {
		int64_t n = h->shape[i], s = h->strides[i];
		if (i >= h->ndim) {
			if (n != 0 || s != 0)
				return -EOVERFLOW;
			continue;
		}
		if (n < 0 || s < 0 || (!strided && s != 0))
			return -EOVERFLOW;
		if (mul_ok(nelems, (uint64_t)n, &nelems) < 0)
			return -EOVERFLOW;
		f.shape[i] = n;
		f.strides[i] = s;
	}
	/* nelems counts every element even when an earlier dimension is 0, so
	 * a shape product that overflows is refused whatever its order. */
	{
		uint64_t prod = 1;
		for (i = 0; i < h->ndim; i++)
			if (h->shape[i] != 0 && mul_ok(prod, (uint64_t)h->shape[i], &prod) < 0)
				return -EOVERFLOW;
	}
	f.nelems = nelems;

	if (strided) {
		/* the furthest element is sum((shape-1) * stride); the data needs
		 * that one plus one, times the item size (nothing when empty) */
		uint64_t last = 0, t;
		if (nelems != 0) {
			for (i = 0; i < h->ndim; i++) {
				if (mul_ok((uint64_t)f.shape[i] - 1, (uint64_t)f.strides[i], &t) < 0 ||
				    add_ok(last, t, &last) < 0)
					return -EOVERFLOW;
			}
			if (add_ok(last, 1, &extent) < 0 || mul_ok(extent, itemsize, &extent) < 0)
				return -EOVERFLOW;
		}
		need = extent;
	} else {
		int64_t st = 1;
		if (mul_ok(nelems, itemsize, &need) < 0)
			return -EOVERFLOW;
		for (i = h->ndim; i-- > 0;) {
			f.strides[i] = st;
			/* the product of non-zero dimensions fits (checked above) */
			if (f.shape[i] > 1)
				st *= f.shape[i];
		}
	}

	if (h->data_offset % TACHYON_FRAME_ALIGN != 0 || h->data_offset < TACHYON_FRAME_HEADER_SIZE)
		return -ERANGE;
	if (strided ? h->data_size < need : h->data_size != need)
		return -ERANGE;
	if (h->data_offset > size || h->data_size > size - h->data_offset)
		return -ERANGE;
	f.data_offset = h->data_offset;
	f.data_size = h->data_size;
	*out = f;
	return 0;
}

int tachyon_tensor_frame_decode(const void *payload, size_t size, tachyon_tensor_frame *out)
{
	struct tachyon_frame_header h;
	if (size < TACHYON_FRAME_HEADER_SIZE)
		return -ENOMSG;
	/* the only read of the shared bytes: everything below uses the copy */
	memcpy(&h, payload, sizeof h);
	return check(&h, size, out);
}

static void to_header(const tachyon_tensor_frame *f, struct tachyon_frame_header *h)
{
	uint32_t i, n = f->ndim < TACHYON_FRAME_MAX_NDIM ? f->ndim : TACHYON_FRAME_MAX_NDIM;
	memset(h, 0, sizeof *h);
	h->magic = TACHYON_FRAME_MAGIC;
	h->version = TACHYON_FRAME_VERSION;
	h->flags = f->strided ? TACHYON_FRAME_F_STRIDED : 0;
	h->code = f->code;
	h->bits = f->bits;
	h->lanes = f->lanes;
	h->ndim = f->ndim;
	h->data_offset = f->data_offset;
	h->data_size = f->data_size;
	for (i = 0; i < n; i++) {
		h->shape[i] = f->shape[i];
		h->strides[i] = f->strided ? f->strides[i] : 0;
	}
}

int tachyon_tensor_frame_init(tachyon_tensor_frame *f, uint8_t code, uint8_t bits, uint32_t ndim,
                              const int64_t *shape)
{
	struct tachyon_frame_header h;
	uint64_t n = 1, bytes;
	uint32_t i;

	if (!dtype_ok(code, bits, 1))
		return -EINVAL;
	if (ndim > TACHYON_FRAME_MAX_NDIM)
		return -E2BIG;
	for (i = 0; i < ndim; i++)
		if (shape[i] < 0 || mul_ok(n, (uint64_t)shape[i], &n) < 0)
			return -EOVERFLOW;
	if (mul_ok(n, bits / 8u, &bytes) < 0 ||
	    bytes > LIMIT - TACHYON_FRAME_HEADER_SIZE)
		return -EOVERFLOW;
	memset(f, 0, sizeof *f);
	f->code = code;
	f->bits = bits;
	f->lanes = 1;
	f->ndim = ndim;
	for (i = 0; i < ndim; i++)
		f->shape[i] = shape[i];
	f->data_offset = TACHYON_FRAME_HEADER_SIZE;
	f->data_size = bytes;
	/* fills strides and nelems the way decode will see them */
	to_header(f, &h);
	return check(&h, TACHYON_FRAME_HEADER_SIZE + bytes, f);
}

uint64_t tachyon_tensor_frame_payload_size(const tachyon_tensor_frame *f)
{
	return f->data_offset + f->data_size;
}

int tachyon_tensor_frame_encode(void *payload, size_t payload_size, const tachyon_tensor_frame *f)
{
	struct tachyon_frame_header h;
	tachyon_tensor_frame checked;
	int r;

	if (f->ndim > TACHYON_FRAME_MAX_NDIM)
		return -E2BIG;
	if (payload_size < TACHYON_FRAME_HEADER_SIZE)
		return -ERANGE;
	to_header(f, &h);
	r = check(&h, payload_size, &checked);
	if (r < 0)
		return r;
	memcpy(payload, &h, sizeof h);
	return 0;
}

const char *tachyon_tensor_frame_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return "no error";
	case ENOMSG:
		return "not a tensor frame: the payload is shorter than the 192-byte frame header or "
		       "its magic is wrong";
	case EPROTONOSUPPORT:
		return "tensor frame of an unknown version, or with unknown flags or non-zero reserved "
		       "bytes";
	case EINVAL:
		return "tensor frame dtype not supported (DLPack int/uint 8-64, float 16-64, bfloat16, "
		       "complex 64/128 or bool, one lane)";
	case E2BIG:
		return "tensor frame has more than 8 dimensions";
	case EOVERFLOW:
		return "tensor frame shape or strides are negative, set beyond ndim, or their products "
		       "overflow";
	case ERANGE:
		return "tensor frame data offset is misaligned or inside the header, its data size does "
		       "not match the shape, or the data runs past the payload";
	default:
		return "tensor frame error";
	}
}

/*
 * libFuzzer target: tachyon_tensor_frame_decode on arbitrary payload bytes
 * (a frame header written by a hostile peer; ABI.md "Tensor frames").
 *
 * libFuzzer hands over a heap buffer of exactly `size` bytes, so ASan
 * reports any read past the payload. Oracle: only the documented codes and
 * no output on failure; on success the data lies inside the payload at a
 * 64-aligned offset past the header, the dtype is one a frame may carry,
 * the element count and byte counts agree with shape (and strides), every
 * byte of the extent is readable (copied whole, so ASan checks it), and the
 * decoded frame encodes back to a header that decodes the same.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[1 << 16];
static uint8_t again[1 << 16] __attribute__((aligned(64)));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tachyon_tensor_frame f, g;
	uint64_t n = 1, itemsize;
	uint32_t i;
	int rc;

	memset(&f, 0xC3, sizeof f);
	g = f;
	rc = tachyon_tensor_frame_decode(data, size, &f);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -ENOMSG || rc == -EPROTONOSUPPORT || rc == -EINVAL ||
		            rc == -E2BIG || rc == -EOVERFLOW || rc == -ERANGE);
		FUZZ_ASSERT(memcmp(&f, &g, sizeof f) == 0);
		return 0;
	}
	FUZZ_ASSERT(size >= TACHYON_FRAME_HEADER_SIZE);
	FUZZ_ASSERT(f.ndim <= TACHYON_FRAME_MAX_NDIM && f.lanes == 1);
	FUZZ_ASSERT(f.bits % 8 == 0 && f.bits >= 8 && f.bits <= 128);
	FUZZ_ASSERT(f.data_offset % 64 == 0 && f.data_offset >= TACHYON_FRAME_HEADER_SIZE);
	FUZZ_ASSERT(f.data_offset <= size && f.data_size <= size - f.data_offset);
	itemsize = f.bits / 8;
	for (i = 0; i < f.ndim; i++) {
		FUZZ_ASSERT(f.shape[i] >= 0 && f.strides[i] >= 0);
		n *= (uint64_t)f.shape[i];
	}
	FUZZ_ASSERT(n == f.nelems);
	if (!f.strided)
		FUZZ_ASSERT(f.data_size == n * itemsize);
	if (n > 0) {
		/* the furthest element ends inside the data */
		uint64_t last = 0;
		for (i = 0; i < f.ndim; i++)
			last += (uint64_t)(f.shape[i] - 1) * (uint64_t)f.strides[i];
		FUZZ_ASSERT((last + 1) * itemsize <= f.data_size);
	}
	/* touch the data: ASan reports any byte outside the input */
	if (f.data_size <= sizeof scratch)
		memcpy(scratch, data + f.data_offset, f.data_size);

	/* round trip through the encoder */
	if (f.data_offset + f.data_size <= sizeof again) {
		rc = tachyon_tensor_frame_encode(again, f.data_offset + f.data_size, &f);
		FUZZ_ASSERT(rc == 0);
		rc = tachyon_tensor_frame_decode(again, f.data_offset + f.data_size, &g);
		FUZZ_ASSERT(rc == 0);
		FUZZ_ASSERT(g.code == f.code && g.bits == f.bits && g.lanes == f.lanes);
		FUZZ_ASSERT(g.ndim == f.ndim && g.strided == f.strided && g.nelems == f.nelems);
		FUZZ_ASSERT(g.data_offset == f.data_offset && g.data_size == f.data_size);
		for (i = 0; i < TACHYON_FRAME_MAX_NDIM; i++)
			FUZZ_ASSERT(g.shape[i] == f.shape[i] && g.strides[i] == f.strides[i]);
	}
	return 0;
}

/*
 * Tensor frames (tachyon/frame.h): round trips of every dtype and of 0-d,
 * empty, 6-d, 8-d and strided shapes, then every hostile header a peer can
 * write, each of which must be refused with its own code and leave the
 * output untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define PAYLOAD_MAX 4096

static uint8_t payload[PAYLOAD_MAX] __attribute__((aligned(64)));

static void round_trip(uint8_t code, uint8_t bits, uint32_t ndim, const int64_t *shape)
{
	tachyon_tensor_frame f, g;
	uint64_t size;
	uint32_t i;
	int r = tachyon_tensor_frame_init(&f, code, bits, ndim, shape);
	CHECK_EQ(r, 0);
	if (r < 0)
		return;
	size = tachyon_tensor_frame_payload_size(&f);
	REQUIRE(size <= PAYLOAD_MAX);
	CHECK_EQ(f.data_offset % 64, 0);
	CHECK_EQ(f.data_offset, TACHYON_FRAME_HEADER_SIZE);
	memset(payload, 0xA5, sizeof payload);
	CHECK_EQ(tachyon_tensor_frame_encode(payload, size, &f), 0);
	memset(&g, 0xEE, sizeof g);
	CHECK_EQ(tachyon_tensor_frame_decode(payload, size, &g), 0);
	CHECK_EQ(g.code, code);
	CHECK_EQ(g.bits, bits);
	CHECK_EQ(g.lanes, 1);
	CHECK_EQ(g.ndim, ndim);
	CHECK_EQ(g.strided, 0);
	CHECK_EQ(g.data_size, f.data_size);
	CHECK_EQ(g.nelems, f.nelems);
	for (i = 0; i < ndim; i++)
		CHECK_EQ(g.shape[i], shape[i]);
	/* C-contiguous strides in elements: the last is 1, each is the product after it */
	if (ndim > 0 && g.nelems > 0) {
		int64_t st = 1;
		for (i = ndim; i-- > 0;) {
			CHECK_EQ(g.strides[i], st);
			st *= shape[i];
		}
	}
	/* a payload one byte short of the data is refused */
	if (f.data_size > 0)
		CHECK_EQ(tachyon_tensor_frame_decode(payload, size - 1, &g), -ERANGE);
}

static void test_round_trips(void)
{
	static const struct { uint8_t code, bits; } dt[] = {
		{0, 8}, {0, 16}, {0, 32}, {0, 64}, {1, 8}, {1, 16}, {1, 32}, {1, 64},
		{2, 16}, {2, 32}, {2, 64}, {4, 16}, {5, 64}, {5, 128}, {6, 8},
	};
	int64_t s2[2] = {3, 5}, s0[1] = {0}, s6[6] = {2, 1, 3, 1, 2, 2};
	int64_t s8[8] = {1, 2, 1, 2, 1, 2, 1, 2}, empty[3] = {4, 0, 7};
	size_t i;
	for (i = 0; i < sizeof dt / sizeof dt[0]; i++)
		round_trip(dt[i].code, dt[i].bits, 2, s2);
	round_trip(2, 32, 0, NULL);  /* 0-d: one element */
	round_trip(1, 8, 1, s0);     /* empty */
	round_trip(1, 8, 3, empty);  /* empty in the middle */
	round_trip(2, 64, 6, s6);
	round_trip(0, 16, 8, s8);
}

/* A strided frame (a padded image: rows of 5 elements every 8) round trips. */
static void test_strided(void)
{
	tachyon_tensor_frame f, g;
	int64_t shape[2] = {3, 5};
	CHECK_EQ(tachyon_tensor_frame_init(&f, 1, 8, 2, shape), 0);
	f.strided = 1;
	f.strides[0] = 8;
	f.strides[1] = 1;
	f.data_size = 2 * 8 + 5; /* the extent; padding after the last row is optional */
	CHECK_EQ(tachyon_tensor_frame_encode(payload, PAYLOAD_MAX, &f), 0);
	CHECK_EQ(tachyon_tensor_frame_decode(payload, PAYLOAD_MAX, &g), 0);
	CHECK_EQ(g.strided, 1);
	CHECK_EQ(g.strides[0], 8);
	CHECK_EQ(g.strides[1], 1);
	/* one byte less than the extent */
	f.data_size = 2 * 8 + 4;
	CHECK_EQ(tachyon_tensor_frame_encode(payload, PAYLOAD_MAX, &f), -ERANGE);
}

/* A valid 2x3 float32 header in h. */
static void good_header(struct tachyon_frame_header *h)
{
	memset(h, 0, sizeof *h);
	h->magic = TACHYON_FRAME_MAGIC;
	h->version = TACHYON_FRAME_VERSION;
	h->code = 2;
	h->bits = 32;
	h->lanes = 1;
	h->ndim = 2;
	h->shape[0] = 2;
	h->shape[1] = 3;
	h->data_offset = 192;
	h->data_size = 24;
}

/* Decode h from a payload of size bytes; the output must stay untouched on failure. */
static int decode_hdr(const struct tachyon_frame_header *h, size_t size)
{
	tachyon_tensor_frame out, before;
	int r;
	memset(payload, 0, sizeof payload);
	memcpy(payload, h, sizeof *h);
	memset(&out, 0x5A, sizeof out);
	before = out;
	r = tachyon_tensor_frame_decode(payload, size, &out);
	if (r < 0)
		CHECK(memcmp(&out, &before, sizeof out) == 0);
	CHECK(tachyon_tensor_frame_strerror(r) != NULL);
	return r;
}

static void test_hostile(void)
{
	struct tachyon_frame_header h;

	good_header(&h);
	CHECK_EQ(decode_hdr(&h, 192 + 24), 0);
	CHECK_EQ(decode_hdr(&h, 191), -ENOMSG);                 /* shorter than the header */
	CHECK_EQ(decode_hdr(&h, 0), -ENOMSG);

	good_header(&h); h.magic ^= 1;
	CHECK_EQ(decode_hdr(&h, 256), -ENOMSG);
	good_header(&h); h.version = 2;
	CHECK_EQ(decode_hdr(&h, 256), -EPROTONOSUPPORT);
	good_header(&h); h.flags = 2;
	CHECK_EQ(decode_hdr(&h, 256), -EPROTONOSUPPORT);
	good_header(&h); h.reserved[31] = 1;
	CHECK_EQ(decode_hdr(&h, 256), -EPROTONOSUPPORT);

	good_header(&h); h.code = 3;                            /* opaque handle */
	CHECK_EQ(decode_hdr(&h, 256), -EINVAL);
	good_header(&h); h.bits = 24;
	CHECK_EQ(decode_hdr(&h, 256), -EINVAL);
	good_header(&h); h.lanes = 4;
	CHECK_EQ(decode_hdr(&h, 256), -EINVAL);
	good_header(&h); h.code = 4; h.bits = 32;              /* bfloat32 */
	CHECK_EQ(decode_hdr(&h, 256), -EINVAL);

	good_header(&h); h.ndim = 9;
	CHECK_EQ(decode_hdr(&h, 4096), -E2BIG);
	good_header(&h); h.ndim = 0xFFFFFFFFu;
	CHECK_EQ(decode_hdr(&h, 4096), -E2BIG);

	good_header(&h); h.shape[1] = -3;                       /* negative shape */
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	good_header(&h); h.shape[2] = 7;                        /* beyond ndim */
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	good_header(&h); h.strides[0] = 3;                      /* strides without the flag */
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	/* element count overflows 2^63 */
	good_header(&h); h.ndim = 3; h.shape[0] = INT64_C(1) << 32; h.shape[1] = INT64_C(1) << 32;
	h.shape[2] = 1;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	/* the same behind a zero dimension (an empty array claiming absurd dims) */
	good_header(&h); h.ndim = 3; h.shape[0] = 0; h.shape[1] = INT64_C(1) << 40;
	h.shape[2] = INT64_C(1) << 40; h.data_size = 0;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	/* the element count fits, the byte count does not */
	good_header(&h); h.ndim = 1; h.shape[0] = INT64_C(1) << 62; h.shape[1] = 0;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	/* a byte count that wraps to a small data_size in 64 bits */
	good_header(&h); h.ndim = 1; h.shape[0] = INT64_C(1) << 62; h.shape[1] = 0; h.bits = 32;
	h.data_size = 0;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);

	/* strided: negative stride, overflowing extent, extent past data */
	good_header(&h); h.flags = TACHYON_FRAME_F_STRIDED; h.strides[0] = -3; h.strides[1] = 1;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	good_header(&h); h.flags = TACHYON_FRAME_F_STRIDED; h.strides[0] = INT64_MAX;
	h.strides[1] = 1;
	CHECK_EQ(decode_hdr(&h, 4096), -EOVERFLOW);
	good_header(&h); h.flags = TACHYON_FRAME_F_STRIDED; h.strides[0] = 100; h.strides[1] = 1;
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);               /* extent 412 > data_size 24 */
	good_header(&h); h.flags = TACHYON_FRAME_F_STRIDED; h.strides[0] = 3; h.strides[1] = 1;
	CHECK_EQ(decode_hdr(&h, 4096), 0);                      /* the honest strided form */
	/* strides of 0 (a broadcast) read in range */
	good_header(&h); h.flags = TACHYON_FRAME_F_STRIDED;
	CHECK_EQ(decode_hdr(&h, 4096), 0);

	/* offsets */
	good_header(&h); h.data_offset = 200;                   /* misaligned */
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
	good_header(&h); h.data_offset = 128;                   /* inside the header */
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
	good_header(&h); h.data_offset = 0;
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
	good_header(&h); h.data_offset = 256;                   /* data runs past the payload */
	CHECK_EQ(decode_hdr(&h, 256 + 23), -ERANGE);
	good_header(&h); h.data_offset = 256;
	CHECK_EQ(decode_hdr(&h, 256 + 24), 0);                  /* extra alignment is fine */
	good_header(&h); h.data_offset = UINT64_MAX - 63;       /* offset + size wraps */
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
	good_header(&h); h.data_size = UINT64_MAX;
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
	good_header(&h); h.data_size = 25;                      /* not what the shape needs */
	CHECK_EQ(decode_hdr(&h, 4096), -ERANGE);
}

static void test_encode_refuses(void)
{
	tachyon_tensor_frame f;
	int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1};
	int64_t big[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
	CHECK_EQ(tachyon_tensor_frame_init(&f, 1, 8, 9, shape), -E2BIG);
	CHECK_EQ(tachyon_tensor_frame_init(&f, 1, 8, 1, neg), -EOVERFLOW);
	CHECK_EQ(tachyon_tensor_frame_init(&f, 1, 8, 2, big), -EOVERFLOW);
	CHECK_EQ(tachyon_tensor_frame_init(&f, 7, 8, 1, shape), -EINVAL);
	CHECK_EQ(tachyon_tensor_frame_init(&f, 1, 8, 2, shape), 0);
	/* a payload too small for the data: nothing is written */
	memset(payload, 0, sizeof payload);
	CHECK_EQ(tachyon_tensor_frame_encode(payload, 192, &f), -ERANGE);
	CHECK_EQ(tachyon_tensor_frame_encode(payload, 100, &f), -ERANGE);
	CHECK_EQ(payload[0], 0);
	CHECK_EQ(tachyon_tensor_frame_encode(payload, 193, &f), 0);
	CHECK_EQ(TACHYON_FRAME_IS_TYPE_ID(TACHYON_FRAME_TYPE_ID(7)), 1);
	CHECK_EQ(TACHYON_FRAME_TYPE_ID(7), 0xFFFF0007u);
	CHECK_EQ(TACHYON_FRAME_IS_TYPE_ID(0xFFFE0007u), 0);
}

int main(void)
{
	test_round_trips();
	test_strided();
	test_hostile();
	test_encode_refuses();
	return test_result("test_frame");
}

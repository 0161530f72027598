/*
 * tachyon/frame.h - tensor frames: an array's dtype, shape and strides
 * carried at the start of a message payload (ABI.md, "Tensor frames").
 *
 * A frame is an ordinary wire-v4 message whose type_id has route
 * TACHYON_FRAME_ROUTE (0xFFFF) in its upper 16 bits. Its payload starts
 * with the 192-byte header below, then, at data_offset (a multiple of 64
 * from the payload start, so the data is cache-line and SIMD aligned, since
 * payloads themselves start 64-aligned), data_size bytes of array data.
 *
 * The header is written by the producer and is untrusted on the receiving
 * side: tachyon_tensor_frame_decode copies it once into private memory and
 * checks every field against the payload size before reporting anything.
 * All integers are native-endian, as everywhere on this wire.
 *
 * Included by tachyon/tachyon.h; usable on its own (it needs only tachyon/api.h).
 */
#ifndef TACHYON_FRAME_H
#define TACHYON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tachyon/api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TACHYON_FRAME_MAGIC       0x4D524654u /* "TFRM" as a little-endian u32 */
#define TACHYON_FRAME_VERSION     1u
#define TACHYON_FRAME_HEADER_SIZE 192u        /* three cache lines */
#define TACHYON_FRAME_ALIGN       64u         /* data_offset is a multiple of this */
#define TACHYON_FRAME_MAX_NDIM    8u
#define TACHYON_FRAME_ROUTE       0xFFFFu     /* type_id bits 31..16 of every frame */

/* header flags */
#define TACHYON_FRAME_F_STRIDED 1u            /* strides[] are given; else C-contiguous */

/* DLPack type codes a frame may carry (with the bit widths of decode's table). */
#define TACHYON_DT_INT     0u /* 8, 16, 32, 64 */
#define TACHYON_DT_UINT    1u /* 8, 16, 32, 64 */
#define TACHYON_DT_FLOAT   2u /* 16, 32, 64 */
#define TACHYON_DT_BFLOAT  4u /* 16 */
#define TACHYON_DT_COMPLEX 5u /* 64, 128 */
#define TACHYON_DT_BOOL    6u /* 8 */

/* The type_id of a frame whose user-visible message type is tag (0..65535). */
#define TACHYON_FRAME_TYPE_ID(tag) (((uint32_t)TACHYON_FRAME_ROUTE << 16) | ((uint32_t)(tag) & 0xFFFFu))
/* Whether a type_id marks a frame. */
#define TACHYON_FRAME_IS_TYPE_ID(type_id) (((uint32_t)(type_id) >> 16) == TACHYON_FRAME_ROUTE)

/* Layout checks in C and C++ alike. */
#if !defined(__cplusplus)
#define TACHYON_FRAME_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#define TACHYON_FRAME_ASSERT(cond, msg) static_assert(cond, msg)
#endif

/* The header as it sits at the start of the payload. */
struct tachyon_frame_header {
	uint32_t magic;       /* TACHYON_FRAME_MAGIC */
	uint16_t version;     /* TACHYON_FRAME_VERSION */
	uint16_t flags;       /* TACHYON_FRAME_F_*; unknown bits are refused */
	uint8_t code;         /* DLPack DLDataType: code, bits, lanes (lanes must be 1) */
	uint8_t bits;
	uint16_t lanes;
	uint32_t ndim;        /* 0..TACHYON_FRAME_MAX_NDIM */
	uint64_t data_offset; /* from the payload start; multiple of 64, >= header size */
	uint64_t data_size;   /* bytes of data at data_offset */
	int64_t shape[TACHYON_FRAME_MAX_NDIM];   /* entries >= ndim are 0 */
	int64_t strides[TACHYON_FRAME_MAX_NDIM]; /* in elements; all 0 unless F_STRIDED */
	uint8_t reserved[32]; /* 0 */
};

TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, magic) == 0, "frame magic @0");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, version) == 4, "frame version @4");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, flags) == 6, "frame flags @6");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, code) == 8, "frame dtype @8");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, lanes) == 10, "frame lanes @10");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, ndim) == 12, "frame ndim @12");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, data_offset) == 16, "frame data_offset @16");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, data_size) == 24, "frame data_size @24");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, shape) == 32, "frame shape @32");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, strides) == 96, "frame strides @96");
TACHYON_FRAME_ASSERT(offsetof(struct tachyon_frame_header, reserved) == 160, "frame reserved @160");
TACHYON_FRAME_ASSERT(sizeof(struct tachyon_frame_header) == TACHYON_FRAME_HEADER_SIZE,
               "the frame header is 192 bytes");

/* A frame as the API sees it: checked, in private memory. */
typedef struct tachyon_tensor_frame {
	uint8_t code;         /* TACHYON_DT_* */
	uint8_t bits;
	uint16_t lanes;       /* 1 */
	uint32_t ndim;
	int64_t shape[TACHYON_FRAME_MAX_NDIM];
	/* In elements. decode fills C-contiguous strides when the frame has
	 * none; encode writes them only when `strided` is set. */
	int64_t strides[TACHYON_FRAME_MAX_NDIM];
	int strided;          /* 0: C-contiguous */
	uint64_t nelems;      /* product of shape */
	uint64_t data_offset; /* from the payload start */
	uint64_t data_size;   /* bytes at data_offset */
} tachyon_tensor_frame;

/*
 * Describe a C-contiguous array of ndim dimensions: fills f (strides,
 * nelems, data_offset = TACHYON_FRAME_HEADER_SIZE, data_size). Returns 0,
 * or the same negative codes as decode for a dtype, ndim or shape a frame
 * cannot carry.
 */
TACHYON_API int tachyon_tensor_frame_init(tachyon_tensor_frame *f, uint8_t code, uint8_t bits,
                                          uint32_t ndim, const int64_t *shape);

/* The payload bytes a frame described by f needs: data_offset + data_size. */
TACHYON_API uint64_t tachyon_tensor_frame_payload_size(const tachyon_tensor_frame *f);

/*
 * Write the header of f at the start of payload (payload_size bytes, the
 * size the message will be committed with); the caller then writes
 * f->data_size bytes at payload + f->data_offset. f is checked exactly as
 * decode checks a received header (strided frames included), so what encode
 * accepts decode accepts. Returns 0 or a negative code; on failure nothing
 * is written.
 */
TACHYON_API int tachyon_tensor_frame_encode(void *payload, size_t payload_size,
                                            const tachyon_tensor_frame *f);

/*
 * Read the frame at the start of a received payload of `size` bytes. The
 * header is copied once; every check and every result uses the copy.
 * Returns 0 and fills out, or, with out untouched:
 *   -ENOMSG           shorter than the header, or the magic is wrong
 *   -EPROTONOSUPPORT  a version, flag or non-zero reserved byte this
 *                     library does not know
 *   -EINVAL           a dtype a frame may not carry (see TACHYON_DT_*), lanes != 1
 *   -E2BIG            ndim above TACHYON_FRAME_MAX_NDIM
 *   -EOVERFLOW        a negative shape or stride, a non-zero unused entry,
 *                     or an element count, byte count or extent that does not
 *                     fit in 63 bits
 *   -ERANGE           data_offset not a multiple of 64 or inside the header;
 *                     the data runs past the payload; data_size differs
 *                     from what shape (and strides) need
 */
TACHYON_API int tachyon_tensor_frame_decode(const void *payload, size_t size,
                                            tachyon_tensor_frame *out);

/* A sentence for a code returned by the functions above. */
TACHYON_API const char *tachyon_tensor_frame_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TACHYON_FRAME_H */

/*
 * The DLPack 1.x ABI, declared for the extension (x86-64 / aarch64, LP64).
 *
 * Field order and sizes are the ABI; the static asserts below pin them.
 * Only what tachyon exports is declared: CPU memory, 1-D uint8 tensors.
 */
#ifndef TACHYON_EXT_DLPACK_ABI_H
#define TACHYON_EXT_DLPACK_ABI_H

#include <stddef.h>
#include <stdint.h>

#define TDL_MAJOR_VERSION 1u
#define TDL_MINOR_VERSION 0u

/* device types */
#define TDL_CPU 1

/* type codes */
#define TDL_INT 0u
#define TDL_UINT 1u
#define TDL_FLOAT 2u
#define TDL_OPAQUE_HANDLE 3u
#define TDL_BFLOAT 4u
#define TDL_COMPLEX 5u
#define TDL_BOOL 6u

/* flags of a versioned tensor */
#define TDL_FLAG_READ_ONLY (UINT64_C(1) << 0)
#define TDL_FLAG_IS_COPIED (UINT64_C(1) << 1)
#define TDL_FLAG_IS_SUBBYTE_TYPE_PADDED (UINT64_C(1) << 2)

typedef struct {
	uint32_t major;
	uint32_t minor;
} tdl_version;

typedef struct {
	int32_t device_type;
	int32_t device_id;
} tdl_device;

typedef struct {
	uint8_t code;
	uint8_t bits;
	uint16_t lanes;
} tdl_dtype;

typedef struct {
	void *data;
	tdl_device device;
	int32_t ndim;
	tdl_dtype dtype;
	int64_t *shape;
	int64_t *strides;
	uint64_t byte_offset;
} tdl_tensor;

/* Legacy managed tensor, exported in a capsule named "dltensor". */
typedef struct tdl_managed {
	tdl_tensor dl_tensor;
	void *manager_ctx;
	void (*deleter)(struct tdl_managed *self);
} tdl_managed;

/* Versioned managed tensor, exported in a capsule named "dltensor_versioned". */
typedef struct tdl_managed_versioned {
	tdl_version version;
	void *manager_ctx;
	void (*deleter)(struct tdl_managed_versioned *self);
	uint64_t flags;
	tdl_tensor dl_tensor;
} tdl_managed_versioned;

_Static_assert(sizeof(tdl_version) == 8, "DLPackVersion is 8 bytes");
_Static_assert(sizeof(tdl_device) == 8, "DLDevice is 8 bytes");
_Static_assert(sizeof(tdl_dtype) == 4, "DLDataType is 4 bytes");
_Static_assert(offsetof(tdl_tensor, data) == 0, "DLTensor.data @0");
_Static_assert(offsetof(tdl_tensor, device) == 8, "DLTensor.device @8");
_Static_assert(offsetof(tdl_tensor, ndim) == 16, "DLTensor.ndim @16");
_Static_assert(offsetof(tdl_tensor, dtype) == 20, "DLTensor.dtype @20");
_Static_assert(offsetof(tdl_tensor, shape) == 24, "DLTensor.shape @24");
_Static_assert(offsetof(tdl_tensor, strides) == 32, "DLTensor.strides @32");
_Static_assert(offsetof(tdl_tensor, byte_offset) == 40, "DLTensor.byte_offset @40");
_Static_assert(sizeof(tdl_tensor) == 48, "DLTensor is 48 bytes");
_Static_assert(offsetof(tdl_managed, manager_ctx) == 48, "DLManagedTensor.manager_ctx @48");
_Static_assert(offsetof(tdl_managed, deleter) == 56, "DLManagedTensor.deleter @56");
_Static_assert(sizeof(tdl_managed) == 64, "DLManagedTensor is 64 bytes");
_Static_assert(offsetof(tdl_managed_versioned, manager_ctx) == 8, "versioned manager_ctx @8");
_Static_assert(offsetof(tdl_managed_versioned, deleter) == 16, "versioned deleter @16");
_Static_assert(offsetof(tdl_managed_versioned, flags) == 24, "versioned flags @24");
_Static_assert(offsetof(tdl_managed_versioned, dl_tensor) == 32, "versioned dl_tensor @32");
_Static_assert(sizeof(tdl_managed_versioned) == 80, "DLManagedTensorVersioned is 80 bytes");

#endif /* TACHYON_EXT_DLPACK_ABI_H */

/*
 * Shared by the fuzz targets: a reader over the fuzzer's input (running out
 * of input reads zeros, so every byte string is a valid program) and the
 * heap region every ring target runs on.
 *
 * Why the heap: ASan sees nothing inside an mmap, so a region for a fuzz
 * target is malloc'd at exactly 768 + capacity bytes; one byte past the data
 * ring is a heap-buffer-overflow report (docs/RELIABILITY.md R1, R3).
 */
#ifndef TACHYON_FUZZ_INPUT_H
#define TACHYON_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tachyon/tachyon.h"

typedef struct fuzz_in {
	const uint8_t *p;
	size_t n;
} fuzz_in;

static inline int fin_more(const fuzz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fin_u8(fuzz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fin_u16(fuzz_in *in)
{
	uint16_t lo = fin_u8(in);
	return (uint16_t)(lo | (uint16_t)fin_u8(in) << 8);
}

static inline uint32_t fin_u32(fuzz_in *in)
{
	uint32_t lo = fin_u16(in);
	return lo | (uint32_t)fin_u16(in) << 16;
}

static inline uint64_t fin_u64(fuzz_in *in)
{
	uint64_t lo = fin_u32(in);
	return lo | (uint64_t)fin_u32(in) << 32;
}

/* Copy up to len bytes of input to dst, zero-filling what the input lacks. */
static inline void fin_bytes(fuzz_in *in, void *dst, size_t len)
{
	size_t k = in->n < len ? in->n : len;
	memcpy(dst, in->p, k);
	memset((uint8_t *)dst + k, 0, len - k);
	in->p += k;
	in->n -= k;
}

/* Capacities 64 .. 8192: small enough that the ring bytes fit in an input,
 * large enough for wraps with slots of several sizes. */
static inline uint64_t fin_capacity(fuzz_in *in)
{
	return UINT64_C(64) << (fin_u8(in) % 8);
}

/*
 * The starting head and tail. Mostly an honest pair (tail an arbitrary
 * multiple of 64, so free-running counters near 2^64 are covered, and head
 * at most capacity above it), sometimes raw 64-bit values, which attach must
 * refuse with -TACHYON_ECORRUPT unless they happen to be valid.
 */
static inline void fin_indices(fuzz_in *in, uint64_t cap, uint64_t *head, uint64_t *tail)
{
	uint8_t mode = fin_u8(in);
	uint64_t t = fin_u64(in);
	uint64_t d = fin_u16(in);
	if (mode & 1) {
		*tail = t;
		*head = fin_u64(in);
		return;
	}
	*tail = t & ~UINT64_C(63);
	*head = *tail + (d % (cap / 64 + 1)) * 64;
}

/* The 768-byte header of a ring region, possibly broken as the input says. */
static inline void fin_region_header(fuzz_in *in, struct tachyon_region_header *h, uint64_t cap)
{
	memset(h, 0, sizeof *h);
	uint8_t breakage = fin_u8(in);
	h->magic = (breakage & 1) ? fin_u32(in) : TACHYON_MAGIC;
	h->version = (breakage & 2) ? fin_u32(in) : TACHYON_WIRE_VERSION;
	h->capacity = (breakage & 4) ? fin_u32(in) : (uint32_t)cap;
	h->msg_alignment = (breakage & 8) ? fin_u32(in) : TACHYON_MSG_ALIGNMENT;
	/* Mostly ready, sometimes closed, rarely anything. */
	uint8_t s = fin_u8(in);
	h->state = (breakage & 16) ? s : (s & 1) ? TACHYON_STATE_CLOSED : TACHYON_STATE_READY;
	h->consumer_wait = fin_u8(in) % 4;
	h->producer_wait = fin_u8(in) % 4;
	h->listener_marker = TACHYON_PEER_MARKER;
	h->connector_marker = TACHYON_PEER_MARKER;
}

/* A heap region of exactly 768 + capacity bytes whose capacity, header and
 * starting indices come from the input; the data ring is left for the
 * caller to fill. Never NULL (an allocation failure aborts the run). */
static inline uint8_t *fin_region(fuzz_in *in, uint64_t *cap, size_t *size)
{
	*cap = fin_capacity(in);
	*size = TACHYON_REGION_HEADER_SIZE + *cap;
	uint8_t *region = malloc(*size);
	if (!region)
		abort();
	struct tachyon_region_header *hdr = (struct tachyon_region_header *)(void *)region;
	fin_region_header(in, hdr, *cap);
	fin_indices(in, *cap, &hdr->head, &hdr->tail);
	return region;
}

/* FUZZ_TRACE=1 in the environment prints every operation: for triage of a
 * saved crash input (run the target on that file alone). */
static inline int fuzz_tracing(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("FUZZ_TRACE") != NULL;
	return on;
}
#define TRACE(...)                                            \
	do {                                                  \
		if (fuzz_tracing())                           \
			fprintf(stderr, __VA_ARGS__);         \
	} while (0)

/* Abort with a message: libFuzzer reports the abort as a crash and saves
 * the input (the oracle's way of failing). */
#define FUZZ_ASSERT(cond)                                                                 \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: oracle failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                          \
		}                                                                         \
	} while (0)

#endif

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
#include "../core/internal.h"

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

/* The 768-byte header of a ring region, possibly broken as the input says.
 * Returns the owner value of our end (listener or connector), which the
 * input chooses too. */
static inline uint32_t fin_region_header(fuzz_in *in, struct tachyon_region_header *h, uint64_t cap)
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
	/* The owner words (ABI.md, "Roles"): bits 0-1 and 2-3 a small value
	 * each (none, listener, connector, junk); bits 4 and 5 replace them
	 * with any u32 from the input (a hostile peer's store); bit 6 makes our
	 * end the connector. */
	uint8_t o = fin_u8(in);
	h->producer_owner = (o & 16) ? fin_u32(in) : (uint32_t)(o & 3);
	h->consumer_owner = (o & 32) ? fin_u32(in) : (uint32_t)((o >> 2) & 3);
	return (o & 64) ? TACHYON_OWNER_CONNECTOR : TACHYON_OWNER_LISTENER;
}

/* A heap region of exactly 768 + capacity bytes whose capacity, header and
 * starting indices come from the input; the data ring is left for the
 * caller to fill. Never NULL (an allocation failure aborts the run). */
static inline uint8_t *fin_region(fuzz_in *in, uint64_t *cap, size_t *size, uint32_t *mine)
{
	*cap = fin_capacity(in);
	*size = TACHYON_REGION_HEADER_SIZE + *cap;
	uint8_t *region = malloc(*size);
	if (!region)
		abort();
	struct tachyon_region_header *hdr = (struct tachyon_region_header *)(void *)region;
	*mine = fin_region_header(in, hdr, *cap);
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

/* What a bus end does before it attaches a ring end: claim role in the
 * region's owner word as `mine` (tachyon_role_claim). Oracle: a claim
 * succeeds exactly when the word held 0 or our own value, and then holds
 * ours; a refused claim changes no byte of the region. Returns 1 when the
 * role is ours (attach may follow), 0 when refused. */
static inline int fuzz_claim(uint8_t *region, size_t size, uint32_t role, uint32_t mine)
{
	struct tachyon_region_header *hdr = (struct tachyon_region_header *)(void *)region;
	uint32_t *word = role == TACHYON_ROLE_PRODUCER ? &hdr->producer_owner : &hdr->consumer_owner;
	uint32_t before = *word;
	uint8_t *copy = malloc(size);
	if (!copy)
		abort();
	memcpy(copy, region, size);
	int rc = tachyon_role_claim(hdr, role, mine);
	TRACE("claim %s as %u over %u -> %d\n", role == TACHYON_ROLE_PRODUCER ? "producer" : "consumer",
	      mine, before, rc);
	if (before == TACHYON_OWNER_NONE || before == mine) {
		FUZZ_ASSERT(rc == 0 && *word == mine);
	} else {
		FUZZ_ASSERT(rc == -TACHYON_EROLE);
		FUZZ_ASSERT(memcmp(copy, region, size) == 0);
	}
	free(copy);
	return rc == 0;
}

#endif /* TACHYON_FUZZ_INPUT_H */

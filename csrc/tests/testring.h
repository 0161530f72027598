/* A bare ring region for the ring tests (test_ring.c, test_ring_many.c):
 * formatted in memory of the test's own, no handshake, no peer. */
#ifndef TACHYON_TESTRING_H
#define TACHYON_TESTRING_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tachyon/tachyon.h"

typedef struct ring {
	uint8_t *mem;
	size_t size;
	uint64_t cap;
	struct tachyon_region_header *hdr;
	uint8_t *data;
} ring;

/* A formatted region whose head and tail both start at `start`. The data
 * ring is filled with 0xAB so that untouched bytes are recognizable. */
static inline ring ring_new_at(uint64_t cap, uint64_t start)
{
	ring r;
	r.cap = cap;
	r.size = TACHYON_REGION_HEADER_SIZE + cap;
	r.mem = aligned_alloc(64, r.size);
	REQUIRE(r.mem != NULL);
	memset(r.mem, 0, TACHYON_REGION_HEADER_SIZE);
	memset(r.mem + TACHYON_REGION_HEADER_SIZE, 0xAB, cap);
	r.hdr = (struct tachyon_region_header *)(void *)r.mem;
	r.data = r.mem + TACHYON_REGION_HEADER_SIZE;
	r.hdr->magic = TACHYON_MAGIC;
	r.hdr->version = TACHYON_WIRE_VERSION;
	r.hdr->capacity = (uint32_t)cap;
	r.hdr->msg_alignment = TACHYON_MSG_ALIGNMENT;
	r.hdr->head = start;
	r.hdr->tail = start;
	r.hdr->state = TACHYON_STATE_READY;
	return r;
}

#endif

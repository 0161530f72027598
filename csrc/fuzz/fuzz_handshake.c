/*
 * libFuzzer target: tachyon_handshake_decode on arbitrary bytes
 * (docs/RELIABILITY.md R4, the part that parses what a peer sent).
 *
 * libFuzzer hands over a heap buffer of exactly `size` bytes, so ASan
 * reports any read past the message. Oracle: only the documented codes, and
 * a success only for a message that really is a plain-bus handshake: 32
 * bytes or more whose fields say magic, version 4, alignment 64, flags 0, a
 * power-of-two capacity in [64, 2^31] with shm size 768 + capacity, and no
 * second ring; the decoded capacity is the announced one.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t cap = 0xDEADBEEF;
	int rc = tachyon_handshake_decode(data, size, &cap);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -TACHYON_EABI || rc == -TACHYON_EHANDSHAKE);
		FUZZ_ASSERT(cap == 0xDEADBEEF); /* no output on failure */
		return 0;
	}
	FUZZ_ASSERT(size >= TACHYON_HANDSHAKE_SIZE);
	struct tachyon_handshake h;
	memcpy(&h, data, sizeof h);
	FUZZ_ASSERT(h.magic == TACHYON_MAGIC && h.version == TACHYON_WIRE_VERSION);
	FUZZ_ASSERT(h.msg_alignment == TACHYON_MSG_ALIGNMENT && h.flags == 0);
	FUZZ_ASSERT(h.capacity >= TACHYON_MIN_CAPACITY && h.capacity <= TACHYON_MAX_CAPACITY);
	FUZZ_ASSERT((h.capacity & (h.capacity - 1)) == 0);
	FUZZ_ASSERT((uint64_t)h.shm_size == TACHYON_REGION_HEADER_SIZE + (uint64_t)h.capacity);
	FUZZ_ASSERT(h.capacity2 == 0 && h.shm_size2 == 0);
	FUZZ_ASSERT(cap == h.capacity);

	/* Round trip: what our encoder writes for that capacity decodes the same. */
	struct tachyon_handshake e;
	tachyon_handshake_encode(cap, &e);
	FUZZ_ASSERT(memcmp(&e, &h, sizeof h) == 0);
	return 0;
}

/* The wire layout at run time: every offset and size of tachyon/wire.h and
 * every constant, against the numbers of ABI.md (wire version 4). The
 * header's _Static_asserts cover part of this at compile time; this test
 * covers every field, so a reordering that keeps the asserted ones in place
 * still fails here. */
#include <stddef.h>
#include <string.h>

#include "testlib.h"
#include "tachyon/wire.h"

#define OFF(type, field) ((long long)offsetof(struct type, field))
#define FSIZE(type, field) ((long long)sizeof(((struct type *)0)->field))

static void check_region_header(void)
{
	CHECK_EQ(sizeof(struct tachyon_region_header), 768);
	CHECK_EQ(OFF(tachyon_region_header, magic), 0);
	CHECK_EQ(FSIZE(tachyon_region_header, magic), 4);
	CHECK_EQ(OFF(tachyon_region_header, version), 4);
	CHECK_EQ(FSIZE(tachyon_region_header, version), 4);
	CHECK_EQ(OFF(tachyon_region_header, capacity), 8);
	CHECK_EQ(FSIZE(tachyon_region_header, capacity), 4);
	CHECK_EQ(OFF(tachyon_region_header, msg_alignment), 12);
	CHECK_EQ(FSIZE(tachyon_region_header, msg_alignment), 4);
	CHECK_EQ(OFF(tachyon_region_header, state), 16);
	CHECK_EQ(FSIZE(tachyon_region_header, state), 4);
	CHECK_EQ(OFF(tachyon_region_header, listener_marker), 20);
	CHECK_EQ(FSIZE(tachyon_region_header, listener_marker), 4);
	CHECK_EQ(OFF(tachyon_region_header, connector_marker), 24);
	CHECK_EQ(FSIZE(tachyon_region_header, connector_marker), 4);
	CHECK_EQ(OFF(tachyon_region_header, producer_owner), 28);
	CHECK_EQ(FSIZE(tachyon_region_header, producer_owner), 4);
	CHECK_EQ(OFF(tachyon_region_header, consumer_owner), 32);
	CHECK_EQ(FSIZE(tachyon_region_header, consumer_owner), 4);
	CHECK_EQ(OFF(tachyon_region_header, listener_pid), 36);
	CHECK_EQ(FSIZE(tachyon_region_header, listener_pid), 4);
	CHECK_EQ(OFF(tachyon_region_header, connector_pid), 40);
	CHECK_EQ(FSIZE(tachyon_region_header, connector_pid), 4);
	CHECK_EQ(OFF(tachyon_region_header, producer_stamps), 44);
	CHECK_EQ(OFF(tachyon_region_header, zero0), 48);
	CHECK_EQ(FSIZE(tachyon_region_header, zero0), 80);
	CHECK_EQ(OFF(tachyon_region_header, head), 128);
	CHECK_EQ(FSIZE(tachyon_region_header, head), 8);
	CHECK_EQ(OFF(tachyon_region_header, zero1), 136);
	CHECK_EQ(FSIZE(tachyon_region_header, zero1), 120);
	CHECK_EQ(OFF(tachyon_region_header, tail), 256);
	CHECK_EQ(FSIZE(tachyon_region_header, tail), 8);
	CHECK_EQ(OFF(tachyon_region_header, zero2), 264);
	CHECK_EQ(FSIZE(tachyon_region_header, zero2), 120);
	CHECK_EQ(OFF(tachyon_region_header, consumer_wait), 384);
	CHECK_EQ(FSIZE(tachyon_region_header, consumer_wait), 4);
	CHECK_EQ(OFF(tachyon_region_header, zero3), 388);
	CHECK_EQ(FSIZE(tachyon_region_header, zero3), 60);
	CHECK_EQ(OFF(tachyon_region_header, producer_wait), 448);
	CHECK_EQ(FSIZE(tachyon_region_header, producer_wait), 4);
	CHECK_EQ(OFF(tachyon_region_header, zero4), 452);
	CHECK_EQ(FSIZE(tachyon_region_header, zero4), 124);
	CHECK_EQ(OFF(tachyon_region_header, sent_messages), 576);
	CHECK_EQ(FSIZE(tachyon_region_header, sent_messages), 8);
	CHECK_EQ(OFF(tachyon_region_header, sent_bytes), 584);
	CHECK_EQ(FSIZE(tachyon_region_header, sent_bytes), 8);
	CHECK_EQ(OFF(tachyon_region_header, zero5), 592);
	CHECK_EQ(FSIZE(tachyon_region_header, zero5), 112);
	CHECK_EQ(OFF(tachyon_region_header, received_messages), 704);
	CHECK_EQ(FSIZE(tachyon_region_header, received_messages), 8);
	CHECK_EQ(OFF(tachyon_region_header, received_bytes), 712);
	CHECK_EQ(FSIZE(tachyon_region_header, received_bytes), 8);
	CHECK_EQ(OFF(tachyon_region_header, consumer_read), 720);
	CHECK_EQ(FSIZE(tachyon_region_header, consumer_read), 8);
	CHECK_EQ(OFF(tachyon_region_header, zero6), 728);
	CHECK_EQ(FSIZE(tachyon_region_header, zero6), 40);
	/* head, tail and the consumer wait word each alone on their 64-byte
	 * cache lines (false sharing between the two sides costs throughput). */
	CHECK_EQ(OFF(tachyon_region_header, head) / 64, 2);
	CHECK_EQ(OFF(tachyon_region_header, tail) / 64, 4);
	CHECK_EQ(OFF(tachyon_region_header, consumer_wait) / 64, 6);
	/* the atomics are naturally aligned */
	CHECK_EQ(OFF(tachyon_region_header, head) % 8, 0);
	CHECK_EQ(OFF(tachyon_region_header, tail) % 8, 0);
	CHECK_EQ(OFF(tachyon_region_header, state) % 4, 0);
	CHECK_EQ(OFF(tachyon_region_header, producer_owner) % 4, 0);
	CHECK_EQ(OFF(tachyon_region_header, consumer_owner) % 4, 0);
	/* the claim words stay clear of head's line and of 0.5.1's counters */
	CHECK(OFF(tachyon_region_header, consumer_owner) + 4 <= 128);
	CHECK(OFF(tachyon_region_header, connector_pid) + 4 <= 128);
	/* The traffic counters: each side's pair on a 64-byte line of its own,
	 * in a different 128-byte pair from the other side's, and never on
	 * 0.5.1's unused counter lines (512, 640) or a wait word's line. */
	CHECK_EQ(OFF(tachyon_region_header, sent_messages) / 64, 9);
	CHECK_EQ(OFF(tachyon_region_header, sent_bytes) / 64, 9);
	CHECK_EQ(OFF(tachyon_region_header, received_messages) / 64, 11);
	CHECK_EQ(OFF(tachyon_region_header, received_bytes) / 64, 11);
	CHECK(OFF(tachyon_region_header, sent_messages) / 128 != OFF(tachyon_region_header, received_messages) / 128);
	CHECK_EQ(OFF(tachyon_region_header, sent_messages) % 8, 0);
	CHECK_EQ(OFF(tachyon_region_header, received_messages) % 8, 0);
}

static void check_slot_header(void)
{
	CHECK_EQ(sizeof(struct tachyon_slot_header), 64);
	CHECK_EQ(OFF(tachyon_slot_header, size), 0);
	CHECK_EQ(FSIZE(tachyon_slot_header, size), 4);
	CHECK_EQ(OFF(tachyon_slot_header, type_id), 4);
	CHECK_EQ(FSIZE(tachyon_slot_header, type_id), 4);
	CHECK_EQ(OFF(tachyon_slot_header, reserved_size), 8);
	CHECK_EQ(FSIZE(tachyon_slot_header, reserved_size), 4);
	CHECK_EQ(OFF(tachyon_slot_header, unused0), 12);
	CHECK_EQ(FSIZE(tachyon_slot_header, unused0), 4);
	CHECK_EQ(OFF(tachyon_slot_header, correlation_id), 16);
	CHECK_EQ(FSIZE(tachyon_slot_header, correlation_id), 8);
	CHECK_EQ(OFF(tachyon_slot_header, pos_stamp), 24);
	CHECK_EQ(FSIZE(tachyon_slot_header, pos_stamp), 8);
	CHECK_EQ(OFF(tachyon_slot_header, inline_payload), 32);
	CHECK_EQ(FSIZE(tachyon_slot_header, inline_payload), 32);
}

static void check_handshake(void)
{
	CHECK_EQ(sizeof(struct tachyon_handshake), 32);
	CHECK_EQ(OFF(tachyon_handshake, magic), 0);
	CHECK_EQ(OFF(tachyon_handshake, version), 4);
	CHECK_EQ(OFF(tachyon_handshake, capacity), 8);
	CHECK_EQ(OFF(tachyon_handshake, shm_size), 12);
	CHECK_EQ(OFF(tachyon_handshake, capacity2), 16);
	CHECK_EQ(OFF(tachyon_handshake, shm_size2), 20);
	CHECK_EQ(OFF(tachyon_handshake, msg_alignment), 24);
	CHECK_EQ(OFF(tachyon_handshake, flags), 28);
	CHECK_EQ(FSIZE(tachyon_handshake, magic), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, version), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, capacity), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, shm_size), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, capacity2), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, shm_size2), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, msg_alignment), 4);
	CHECK_EQ(FSIZE(tachyon_handshake, flags), 4);
}

static void check_constants(void)
{
	CHECK_EQ(TACHYON_MAGIC, 0x54414348u);
	CHECK_EQ(TACHYON_WIRE_VERSION, 4);
	CHECK_EQ(TACHYON_MSG_ALIGNMENT, 64);
	CHECK_EQ(TACHYON_SKIP, 0xFFFFFFFFu);
	CHECK_EQ(TACHYON_BATCH, 32);
	CHECK_EQ(TACHYON_WATCHDOG_MS, 200);
	CHECK_EQ(TACHYON_REGION_HEADER_SIZE, 768);
	CHECK_EQ(TACHYON_MIN_CAPACITY, 64);
	CHECK_EQ(TACHYON_MAX_CAPACITY, 2147483648ll);
	CHECK_EQ(TACHYON_HANDSHAKE_SIZE, 32);
	CHECK_EQ(TACHYON_STATE_UNINITIALIZED, 0);
	CHECK_EQ(TACHYON_STATE_INITIALIZING, 1);
	CHECK_EQ(TACHYON_STATE_READY, 2);
	CHECK_EQ(TACHYON_STATE_CLOSED, 3);
	CHECK_EQ(TACHYON_STATE_FATAL, 4);
	CHECK_EQ(TACHYON_OWNER_NONE, 0);
	CHECK_EQ(TACHYON_OWNER_LISTENER, 1);
	CHECK_EQ(TACHYON_OWNER_CONNECTOR, 2);
	CHECK_EQ(TACHYON_WAIT_AWAKE, 0);
	CHECK_EQ(TACHYON_WAIT_SLEEPING, 1);
	CHECK_EQ(TACHYON_WAIT_PURE_SPIN, 2);
	CHECK_EQ(TACHYON_FLAG_RPC, 1);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* The integers are native-endian; on little-endian hosts the marker
	 * reads "TYON" in a hex dump (and the magic "HCAT"). */
	uint32_t m = TACHYON_MAGIC, k = TACHYON_PEER_MARKER;
	unsigned char b[4];
	memcpy(b, &m, 4);
	CHECK(b[0] == 'H' && b[1] == 'C' && b[2] == 'A' && b[3] == 'T');
	memcpy(b, &k, 4);
	CHECK(b[0] == 'T' && b[1] == 'Y' && b[2] == 'O' && b[3] == 'N');
#endif
	CHECK_EQ(TACHYON_PEER_MARKER, 0x4E4F5954u);
}

int main(void)
{
	check_region_header();
	check_slot_header();
	check_handshake();
	check_constants();
	return test_result("test_layout");
}

/*
 * tachyon/wire.h - the wire format, version 4 (see ABI.md).
 *
 * Plain layout declarations a C or C++ program can include: no atomics here.
 * The library accesses the shared words through the helpers in
 * csrc/core/atomics.h, never through these field names directly.
 *
 * Protocol in three sentences:
 *  - head is written only by the producer, tail only by the consumer; both are
 *    free-running byte counters (multiples of 64) that never wrap in practice,
 *    and phys(x) = x & (capacity - 1) locates them in the data ring.
 *  - The producer owns the bytes in [tail, head + capacity) of the data ring
 *    not yet published and the consumer owns [tail, head); a release store of
 *    head (tail) hands bytes to the consumer (back to the producer).
 *  - Exactly one producer and one consumer per ring (single-producer
 *    single-consumer); two-way traffic uses two rings. Our ends enforce it:
 *    each claims its role in producer_owner or consumer_owner (0 -> 1 for
 *    the listener, 0 -> 2 for the connector, by compare-and-swap) before it
 *    touches the ring, and an end that finds the word taken is refused.
 */
#ifndef TACHYON_WIRE_H
#define TACHYON_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TACHYON_MAGIC          0x54414348u
#define TACHYON_WIRE_VERSION   4u
#define TACHYON_MSG_ALIGNMENT  64u
#define TACHYON_SKIP           0xFFFFFFFFu
#define TACHYON_BATCH          32u
#define TACHYON_WATCHDOG_MS    200
#define TACHYON_REGION_HEADER_SIZE 768u
#define TACHYON_MIN_CAPACITY   64u
#define TACHYON_MAX_CAPACITY   (1u << 31)
#define TACHYON_HANDSHAKE_SIZE 32u

/* Stored by our listener at offset 20 and by our connector at offset 24;
 * 0.5.1 leaves both zero. ASCII "TYON" read as a little-endian u32. */
#define TACHYON_PEER_MARKER    0x4E4F5954u

/* state word values */
#define TACHYON_STATE_UNINITIALIZED 0u
#define TACHYON_STATE_INITIALIZING  1u
#define TACHYON_STATE_READY         2u
#define TACHYON_STATE_CLOSED        3u
#define TACHYON_STATE_FATAL         4u

/* Role claim word values (ours, offsets 28 and 32): who holds the role.
 * 0.5.1 leaves both words zero and never reads them. */
#define TACHYON_OWNER_NONE      0u
#define TACHYON_OWNER_LISTENER  1u
#define TACHYON_OWNER_CONNECTOR 2u

/* Position stamps (ours, ABI.md "Position stamps"): a producer end that
 * stamps every slot header it commits stores this at region offset 44
 * before its first commit; 0.5.1 leaves the word zero and never reads it.
 * ASCII "STMP" read as a little-endian u32. */
#define TACHYON_STAMPS_MARKER   0x504D5453u
/* The stamp of the slot (or SKIP) header at counter position pos: never 0
 * (pos is a multiple of 64), and different for every lap of one offset. */
#define TACHYON_POS_STAMP(pos)  (~(uint64_t)(pos))
/* A payload of at most this many bytes is copied into header bytes 32..63
 * as well as to its place after the header, so that a consumer reading
 * stamps takes the whole message from one cache line. */
#define TACHYON_INLINE_MAX      32u

/* consumer wait word values */
#define TACHYON_WAIT_AWAKE     0u
#define TACHYON_WAIT_SLEEPING  1u
#define TACHYON_WAIT_PURE_SPIN 2u

/* handshake flags */
#define TACHYON_FLAG_RPC       1u

struct tachyon_region_header {
	uint32_t magic;            /*   0 creator, once */
	uint32_t version;          /*   4 creator, once */
	uint32_t capacity;         /*   8 creator, once */
	uint32_t msg_alignment;    /*  12 creator, once */
	uint32_t state;            /*  16 either side, atomic */
	uint32_t listener_marker;  /*  20 ours: our listener */
	uint32_t connector_marker; /*  24 ours: our connector */
	uint32_t producer_owner;   /*  28 ours: claimed once by compare-and-swap */
	uint32_t consumer_owner;   /*  32 ours: claimed once by compare-and-swap */
	uint32_t listener_pid;     /*  36 ours: our listener, once, before the fd is sent */
	uint32_t connector_pid;    /*  40 ours: our connector, once, with its marker */
	uint32_t producer_stamps;  /*  44 ours: TACHYON_STAMPS_MARKER, by a stamping producer */
	uint8_t  zero0[80];        /*  48 */
	uint64_t head;             /* 128 producer, atomic */
	uint8_t  zero1[120];       /* 136 */
	uint64_t tail;             /* 256 consumer, atomic */
	uint8_t  zero2[120];       /* 264 */
	uint32_t consumer_wait;    /* 384 both, atomic futex word */
	uint8_t  zero3[60];        /* 388 */
	uint32_t producer_wait;    /* 448 ours: producer's futex word */
	uint8_t  zero4[124];       /* 452; 0.5.1's unused counter at 512 */
	uint64_t sent_messages;    /* 576 ours: producer, stored when it publishes head */
	uint64_t sent_bytes;       /* 584 ours: producer, payload bytes, likewise */
	uint8_t  zero5[112];       /* 592; 0.5.1's unused counter at 640 */
	uint64_t received_messages; /* 704 ours: consumer, stored when it publishes tail */
	uint64_t received_bytes;   /* 712 ours: consumer, payload bytes, likewise */
	uint64_t consumer_read;    /* 720 ours: consumer's read cursor, likewise */
	uint8_t  zero6[40];        /* 728 */
};

struct tachyon_slot_header {
	uint32_t size;             /*  0 payload bytes used, or TACHYON_SKIP */
	uint32_t type_id;          /*  4 opaque; route << 16 | msg_type by convention */
	uint32_t reserved_size;    /*  8 whole slot, header included, multiple of 64 */
	uint32_t unused0;          /* 12 0 on request/reply rings, else not written */
	uint64_t correlation_id;   /* 16 request/reply rings only */
	uint64_t pos_stamp;        /* 24 ours: TACHYON_POS_STAMP(position), stored last */
	uint8_t  inline_payload[TACHYON_INLINE_MAX]; /* 32 ours: a copy of a small payload */
};

struct tachyon_handshake {
	uint32_t magic;            /*  0 */
	uint32_t version;          /*  4 */
	uint32_t capacity;         /*  8 first ring */
	uint32_t shm_size;         /* 12 768 + capacity */
	uint32_t capacity2;        /* 16 second ring, 0 on a plain bus */
	uint32_t shm_size2;        /* 20 */
	uint32_t msg_alignment;    /* 24 */
	uint32_t flags;            /* 28 0 plain, TACHYON_FLAG_RPC request/reply */
};

#if !defined(__cplusplus)
#define TACHYON_LAYOUT_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
#define TACHYON_LAYOUT_ASSERT(cond, msg) static_assert(cond, msg)
#endif

TACHYON_LAYOUT_ASSERT(sizeof(void *) == 8, "wire version 4 is defined for 64-bit targets only");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, magic) == 0, "magic @0");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, version) == 4, "version @4");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, capacity) == 8, "capacity @8");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, msg_alignment) == 12, "alignment @12");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, state) == 16, "state @16");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, listener_marker) == 20, "listener marker @20");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, connector_marker) == 24, "connector marker @24");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, producer_owner) == 28, "producer owner @28");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, consumer_owner) == 32, "consumer owner @32");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, listener_pid) == 36, "listener pid @36");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, connector_pid) == 40, "connector pid @40");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, head) == 128, "head @128");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, tail) == 256, "tail @256");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, consumer_wait) == 384, "consumer wait @384");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, producer_wait) == 448, "producer wait @448");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, sent_messages) == 576, "sent messages @576");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, sent_bytes) == 584, "sent bytes @584");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, received_messages) == 704, "received messages @704");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, received_bytes) == 712, "received bytes @712");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_region_header, consumer_read) == 720, "consumer read cursor @720");
TACHYON_LAYOUT_ASSERT(sizeof(struct tachyon_region_header) == TACHYON_REGION_HEADER_SIZE, "header is 768 bytes");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, size) == 0, "size @0");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, type_id) == 4, "type_id @4");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, reserved_size) == 8, "reserved_size @8");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, correlation_id) == 16, "correlation_id @16");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, pos_stamp) == 24, "pos_stamp @24");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_slot_header, inline_payload) == 32, "inline payload @32");
TACHYON_LAYOUT_ASSERT(sizeof(struct tachyon_slot_header) == TACHYON_MSG_ALIGNMENT, "slot header is 64 bytes");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_handshake, shm_size) == 12, "shm size @12");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_handshake, msg_alignment) == 24, "alignment @24");
TACHYON_LAYOUT_ASSERT(offsetof(struct tachyon_handshake, flags) == 28, "flags @28");
TACHYON_LAYOUT_ASSERT(sizeof(struct tachyon_handshake) == TACHYON_HANDSHAKE_SIZE, "handshake is 32 bytes");

#endif /* TACHYON_WIRE_H */

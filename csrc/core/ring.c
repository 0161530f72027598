/*
 * ring.c - the two ends of the single-producer single-consumer data ring
 * (wire version 4, see ABI.md / tachyon/wire.h).
 *
 * Protocol, one sentence per rule:
 *  - Who writes what: the producer alone writes head (offset 128) and the
 *    slot bytes of the data ring; the consumer alone writes tail (offset
 *    256); the state word (16) and the wait words (384, 448) change only by
 *    compare-and-swap, from either side.
 *  - head and tail are free-running u64 byte counters, multiples of 64,
 *    that are never reduced modulo the capacity; phys(x) = x & (capacity-1)
 *    locates a counter in the ring, and every comparison below is a
 *    difference of counters (so the arithmetic stays right even if a counter
 *    ever wrapped at 2^64).
 *  - Ownership moves by release/acquire: the producer's release store of
 *    head hands the bytes in [tail, head) to the consumer, the consumer's
 *    release store of tail hands [old tail, tail) back to the producer.
 *  - Exactly one producer end and one consumer end per ring, each used by
 *    one thread at a time; two-way traffic uses two rings.
 *
 * The peer may be buggy or hostile: every value it can write (tail for the
 * producer; head, slot headers and the state for the consumer) is loaded
 * once into a local, validated, and only the local is used. Nothing here
 * reads or writes outside [ring, ring + capacity) whatever the shared
 * memory holds. A violation marks the ring fatal (state 4) and the end
 * refuses every later operation.
 *
 * Producer. A slot for n payload bytes is round_up(64 + n, 64) bytes. When
 * it does not fit before the end of the ring it goes to offset 0 behind a
 * SKIP header that pads the rest of the lap. The producer keeps its head
 * private and publishes it every TACHYON_BATCH commits (or once a quarter
 * of the ring is unpublished), on flush, and before reporting -EAGAIN. A reservation does not move head: commit writes
 * the SKIP (if any) and the slot header, then moves head past both, so the
 * padding becomes visible only together with the slot after it, and a
 * rollback has nothing to undo. Our producer therefore never publishes a
 * head that ends right after a SKIP (a 0.5.1 consumer would misread it).
 *
 * Consumer. Two cursors: read (the next slot to peek) and release (what tail
 * will say; slots between them are still in use by the caller, e.g. live
 * zero-copy exports). msg.pos is the position of a slot's header, msg.end
 * the position right after it; releasing to msg.end also passes any SKIP
 * padding in front of that slot. Padding with no pinned slot before it is
 * passed by both cursors at once. A lone SKIP (its padding ends exactly at
 * head, as a 0.5.1 producer may publish) is an empty ring: nothing is read
 * at offset 0. While an earlier slot is pinned the read cursor waits on
 * such a SKIP instead of passing it, so that releasing that slot makes the
 * padding free too; otherwise the padding would stay counted as used until
 * the next message and could starve a producer that needs a large slot.
 * The consumer publishes tail every TACHYON_BATCH releases, once half the
 * ring is released, whenever it finds the ring empty, and whenever a
 * release catches up with the newest head it has seen, so that a consumer
 * that goes idle after a burst holds no freed room.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "internal.h"
#include "shared.h"

#define HDR_SIZE  ((uint64_t)TACHYON_MSG_ALIGNMENT)
#define ALIGN_MSK ((uint64_t)TACHYON_MSG_ALIGNMENT - 1)

_Static_assert(TACHYON_MSG_ALIGNMENT == 64, "slots are 64-byte granular");
_Static_assert(sizeof(struct tachyon_slot_header) == HDR_SIZE, "a slot header is one granule");
_Static_assert(TACHYON_MAX_CAPACITY - HDR_SIZE <= UINT32_MAX,
               "reserved sizes and payload sizes fit the u32 header fields");

#if defined(__GNUC__)
#define SLOW_PATH __attribute__((noinline, cold))
#define ALWAYS_INLINE __attribute__((always_inline))
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define SLOW_PATH
#define ALWAYS_INLINE
#define UNLIKELY(x) (x)
#endif

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

/* The ring's size rule (ABI.md, "Constants"): a power of two, so that
 * phys(x) is a mask, between the two bounds. */
int tachyon_capacity_valid(uint64_t capacity)
{
	return capacity >= TACHYON_MIN_CAPACITY && capacity <= TACHYON_MAX_CAPACITY &&
	       (capacity & (capacity - 1)) == 0;
}

/* Move the state word to fatal unless it already is. Fatal is permanent and
 * overrides ready and closed alike; nobody ever overwrites 4. */
static SLOW_PATH int mark_fatal(struct tachyon_region_header *hdr)
{
	/* relaxed: only the starting guess of the compare-and-swap loop; the CAS
	 * itself (seq_cst) decides. */
	uint32_t s = tachyon_atomic_load_relaxed32(&hdr->state);
	while (s != TACHYON_STATE_FATAL) {
		/* seq_cst CAS: publishes "fatal" to the peer, which loads the state
		 * (acquire) on every reserve / every empty peek. */
		if (tachyon_atomic_cas32(&hdr->state, s, TACHYON_STATE_FATAL))
			break;
		/* relaxed: the peer changed it meanwhile (closed or fatal); retry. */
		s = tachyon_atomic_load_relaxed32(&hdr->state);
	}
	return -TACHYON_ECORRUPT;
}

/* Check the region header and the starting indices; shared by both attach
 * calls. Fills the capacity and the starting head and tail. */
static int check_region(void *region, size_t region_size, uint64_t *capacity, uint64_t *head,
                        uint64_t *tail)
{
	if (!region || ((uintptr_t)region & 7) != 0 || region_size < TACHYON_REGION_HEADER_SIZE)
		return -TACHYON_EHANDSHAKE;
	struct tachyon_region_header *hdr = region;

	/* acquire: the creator stores state 2 (release) after every other
	 * header field, so the fields loaded below are the formatted ones. */
	uint32_t state = tachyon_atomic_load_acquire32(&hdr->state);
	/* relaxed (here and for the three below): written once by the creator
	 * and ordered by the state load above; atomic only so each is fetched
	 * exactly once. */
	uint32_t magic = tachyon_atomic_load_relaxed32(&hdr->magic);
	uint32_t version = tachyon_atomic_load_relaxed32(&hdr->version);
	uint64_t cap = tachyon_atomic_load_relaxed32(&hdr->capacity);
	uint32_t align = tachyon_atomic_load_relaxed32(&hdr->msg_alignment);

	if (magic != TACHYON_MAGIC || version != TACHYON_WIRE_VERSION ||
	    align != TACHYON_MSG_ALIGNMENT || !tachyon_capacity_valid(cap) ||
	    region_size - TACHYON_REGION_HEADER_SIZE < cap ||
	    (state != TACHYON_STATE_READY && state != TACHYON_STATE_CLOSED))
		return -TACHYON_EHANDSHAKE;

	/* acquire: pairs with the producer's release store of head; the slots
	 * below it are visible to a consumer attaching now. */
	uint64_t h = tachyon_atomic_load_acquire64(&hdr->head);
	/* acquire: pairs with the consumer's release store of tail; its reads of
	 * the slots below it are done before a producer attaching now writes. */
	uint64_t t = tachyon_atomic_load_acquire64(&hdr->tail);
	if ((h & ALIGN_MSK) != 0 || (t & ALIGN_MSK) != 0 || h - t > cap)
		return mark_fatal(hdr); /* h - t > cap also catches t > h */

	*capacity = cap;
	*head = h;
	*tail = t;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Producer                                                                  */

/* A copy of at most 64 bytes: two fixed-size copies that overlap in the
 * middle (each inlined as a load and a store), so a small message pays no
 * call and no length dispatch; reads and writes stay within [src, src + n)
 * and [dst, dst + n). */
static inline void copy_small(uint8_t *dst, const uint8_t *src, size_t n)
{
	if (n >= 16) {
		if (n >= 32) {
			memcpy(dst, src, 32);
			memcpy(dst + n - 32, src + n - 32, 32);
		} else {
			memcpy(dst, src, 16);
			memcpy(dst + n - 16, src + n - 16, 16);
		}
	} else if (n >= 8) {
		memcpy(dst, src, 8);
		memcpy(dst + n - 8, src + n - 8, 8);
	} else if (n >= 4) {
		memcpy(dst, src, 4);
		memcpy(dst + n - 4, src + n - 4, 4);
	} else if (n) {
		dst[0] = src[0];
		dst[n / 2] = src[n / 2];
		dst[n - 1] = src[n - 1];
	}
}

/* The inline copy of a payload of at most TACHYON_INLINE_MAX (32) bytes:
 * copy_small's method without its 32-byte case, which would copy a 32-byte
 * payload twice over. */
static inline void copy_inline(uint8_t *dst, const uint8_t *src, size_t n)
{
	_Static_assert(TACHYON_INLINE_MAX == 32, "two 16-byte copies cover an inline payload");
	if (n >= 16) {
		memcpy(dst, src, 16);
		memcpy(dst + n - 16, src + n - 16, 16);
	} else {
		copy_small(dst, src, n);
	}
}

/* A payload copy for the vectored send: small ones as above, larger ones
 * as a send copies them. */
static inline void copy_small_or_payload(tachyon_copy_state *st, uint8_t *dst, const uint8_t *src,
                                         size_t n)
{
	if (n <= 64)
		copy_small(dst, src, n);
	else
		tachyon_copy_payload(st, dst, src, n);
}

/* Position stamps, producer side (ABI.md, "Position stamps"). The stamp
 * word of the header position `end`, where a stamp-reading consumer looks
 * once it has taken the slot ending there, must not hold an old value that
 * reads as TACHYON_POS_STAMP(end): payload bytes of an earlier lap could.
 * So before a slot's stamp is stored, that word is cleared when it lies in
 * free room. When it does not (end == cached tail + capacity), it is the
 * header at the cached tail, written by us one lap earlier, whose stamp
 * names that lap's position: no match either. Relaxed: the consumer cannot
 * be looking at this position yet (it learns of it from the slot's stamp,
 * stored after this with release); atomic because it loads the word so. */
static inline void producer_clear_next_stamp(uint8_t *ring, uint64_t mask, uint64_t room_end,
                                             uint64_t end)
{
	/* room_end = cached tail + capacity, the first position not ours */
	if (end != room_end) {
		struct tachyon_slot_header *next =
		        (struct tachyon_slot_header *)(void *)(ring + (end & mask));
		tachyon_atomic_store_relaxed64(&next->pos_stamp, 0);
	}
}

int tachyon_producer_attach(tachyon_producer *p, void *region, size_t region_size)
{
	uint64_t cap, h, t;
	int rc = check_region(region, region_size, &cap, &h, &t);
	if (rc)
		return rc;
	memset(p, 0, sizeof(*p));
	p->hdr = region;
	p->ring = (uint8_t *)region + TACHYON_REGION_HEADER_SIZE;
	p->capacity = cap;
	p->head = h;
	p->published_head = h;
	p->cached_tail = t;
	/* Position stamps: the first header position a consumer may look at
	 * holds no stale match (see producer_clear_next_stamp), and then the
	 * promise that every slot from here on is stamped. release: pairs with
	 * the consumer's acquire load of the marker, after which it may trust
	 * the stamp at any position it reaches. */
	producer_clear_next_stamp(p->ring, cap - 1, t + cap, h);
	tachyon_atomic_store_release32(&p->hdr->producer_stamps, TACHYON_STAMPS_MARKER);
	return 0;
}

/* `why` is a static phrase saying what the peer did wrong (kept for
 * tachyon_bus_fatal_reason); computed from values already loaded. */
static SLOW_PATH int producer_fail(tachyon_producer *p, const char *why)
{
	/* An open reservation stays open: a flush can fail while one is open,
	 * and the caller's commit must then hear -TACHYON_ECORRUPT, not "no
	 * reservation" (found by fuzz_producer); commit and rollback close it.
	 * Every other call checks fatal first. */
	p->fatal = 1;
	p->fatal_reason = why;
	return mark_fatal(p->hdr);
}

const char tachyon_reason_foreign_head[] =
	"a foreign process wrote head (the shared head is not the value this producer published)";

/* Store our private head into the shared head (if it moved). */
static inline int producer_publish(tachyon_producer *p)
{
	/* relaxed: head is ours alone; any value other than the one we stored
	 * last means a foreign writer, whatever the ordering of its store. */
	uint64_t shared = tachyon_atomic_load_relaxed64(&p->hdr->head);
	if (UNLIKELY(shared != p->published_head))
		return producer_fail(p, tachyon_reason_foreign_head);
	if (p->head != p->published_head) {
		/* relaxed: display counters for an outside observer (ABI.md,
		 * "Traffic counters"); the head store below orders them, so a
		 * reader that loads head with acquire sees at least these. */
		tachyon_atomic_store_relaxed64(&p->hdr->sent_messages, p->sent_messages);
		tachyon_atomic_store_relaxed64(&p->hdr->sent_bytes, p->sent_bytes);
		/* release: publishes the headers and payloads (and SKIP padding) of
		 * every slot below head; pairs with the consumer's acquire load of
		 * head, after which it reads them. */
		tachyon_atomic_store_release64(&p->hdr->head, p->head);
		p->published_head = p->head;
	}
	p->unpublished = 0;
	return 0;
}

static SLOW_PATH void producer_wake_check(tachyon_producer *p);

/* After a publication: wake a consumer that went to sleep on the wait word
 * (ABI.md, "Publication and waking"). Inline, since every send ends here;
 * only the hybrid case (fence, load, maybe a wake) is out of line. */
static inline void producer_wake_consumer(tachyon_producer *p)
{
	/* relaxed: a mode hint only. 2 = pure spin, the consumer never sleeps,
	 * skip the fence. A 0.5.1 consumer may still overwrite 2 with 1; the
	 * next publication reads the word again and wakes it then, and its
	 * sleep is bounded by the watchdog anyway. */
	if (tachyon_atomic_load_relaxed32(&p->hdr->consumer_wait) == TACHYON_WAIT_PURE_SPIN)
		return;
	producer_wake_check(p);
}

/* The fence and the wait-word check of a publication in hybrid mode. */
static SLOW_PATH void producer_wake_check(tachyon_producer *p)
{
	uint32_t *word = &p->hdr->consumer_wait;
	/* full fence: orders our head store (above) before the load of the wait
	 * word (store-load). Pairs with the consumer's CAS 0->1 + fence before
	 * its last look at head: either it sees our head, or we see its 1. */
	tachyon_atomic_fence();
	tachyon_futex_claim_wake(word);
}

static SLOW_PATH int producer_publish_and_wake(tachyon_producer *p)
{
	uint64_t before = p->published_head;
	int rc = producer_publish(p);
	if (rc == 0 && p->published_head != before)
		producer_wake_consumer(p);
	return rc;
}

/* The cached tail says there is no room for `needed` bytes: load the shared
 * tail, validate it, and decide. */
static SLOW_PATH int producer_refresh_tail(tachyon_producer *p, uint64_t needed)
{
	uint64_t cap = p->capacity;
	uint64_t old = p->cached_tail;
	/* acquire: pairs with the consumer's release store of tail. The
	 * consumer's tail store is our licence to overwrite the slots below it:
	 * its reads of them happen before our writes. */
	uint64_t t = tachyon_atomic_load_acquire64(&p->hdr->tail);
	/* tail only moves forward, never past what we committed (the consumer
	 * can only release what it saw: below the published head, or, from a
	 * consumer reading position stamps, slots stamped and not yet
	 * published), and never leaves more than capacity in use. */
	if ((t & ALIGN_MSK) != 0 || t - old > p->head - old || p->head - t > cap)
		return producer_fail(p, (t & ALIGN_MSK) != 0 ? "the consumer's tail is not a multiple of 64"
		                        : t - old > p->head - old
		                                ? "the consumer's tail moved backwards or past the "
		                                  "committed head"
		                                : "the consumer's tail claims more than the capacity in use");
	p->cached_tail = t;
	if (p->head - t + needed <= cap)
		return 0;
	/* No room: publish first, the consumer must see what would free it. */
	int rc = producer_publish_and_wake(p);
	return rc ? rc : -EAGAIN;
}

static SLOW_PATH int producer_state_error(tachyon_producer *p, uint32_t state)
{
	if (state == TACHYON_STATE_CLOSED)
		return -TACHYON_EPEERCLOSED;
	/* 4, or a value no honest peer writes after ready (0, 1, garbage). */
	return producer_fail(p, state == TACHYON_STATE_FATAL
	                                ? "the peer marked the ring fatal"
	                                : "the state word holds a value no honest peer writes");
}

/* Write a committed slot's header (and the SKIP before it, when pad != 0)
 * and stamp both. The order is what a stamp-reading consumer relies on:
 * payload (already written), header fields, inline copy and the cleared
 * next stamp first, then the slot's stamp (release), then the SKIP's
 * (release), since a consumer that takes the SKIP by its stamp goes on to
 * the slot at once. A SKIP is thus never stamped before the slot after it:
 * a stamp exposes no padding without its slot. Only size, type_id and
 * reserved_size of the wire's fields: offset 12 and correlation_id belong
 * to request/reply rings (ABI.md, "Slots"), which write them themselves. */
static inline ALWAYS_INLINE void producer_write_slot(uint8_t *ring, uint64_t mask,
                                                     uint64_t room_end, uint64_t start,
                                                     uint64_t pad, uint32_t slot, uint32_t size,
                                                     uint32_t type_id, const uint8_t *small)
{
	/* The end's fields come in as arguments: kept in registers, where
	 * loads through p would be repeated after every store to the ring
	 * (a byte store may alias anything). */
	uint64_t pos = start + pad;
	struct tachyon_slot_header *h = (struct tachyon_slot_header *)(void *)(ring + (pos & mask));
	h->size = size;
	h->type_id = type_id;
	h->reserved_size = slot;
	if (size <= TACHYON_INLINE_MAX)
		copy_inline(h->inline_payload, small, size);
	producer_clear_next_stamp(ring, mask, room_end, pos + slot);
	/* release: publishes the payload, the header fields and the inline
	 * copy to a consumer that loads this stamp with acquire. */
	tachyon_atomic_store_release64(&h->pos_stamp, TACHYON_POS_STAMP(pos));
	if (pad) {
		/* Wrap padding: SKIP, every other byte zero as 0.5.1 writes it;
		 * the room to the end is >= 64, so it fits. The stamp word is not
		 * cleared with the rest: a consumer may be loading it now. */
		struct tachyon_slot_header *skip =
		        (struct tachyon_slot_header *)(void *)(ring + (start & mask));
		memset(skip, 0, offsetof(struct tachyon_slot_header, pos_stamp));
		memset(skip->inline_payload, 0, sizeof skip->inline_payload);
		skip->size = TACHYON_SKIP;
		/* release: the slot after the padding is stamped already. */
		tachyon_atomic_store_release64(&skip->pos_stamp, TACHYON_POS_STAMP(start));
	}
}

/* The bodies of try_reserve, commit and flush are static inline so that
 * try_send can compose them into one function: exported functions are not
 * inlined into each other under -fPIC (they could be interposed). */
static inline int producer_reserve(tachyon_producer *p, size_t max_payload, void **payload)
{
	if (UNLIKELY(p->fatal))
		return -TACHYON_ECORRUPT;
	if (UNLIKELY(p->reserved))
		return -EBUSY;
	/* acquire: pairs with the consumer's CAS to 3 (close) or 4 (fatal); we
	 * act on the value only, nothing else is published through it. */
	uint32_t state = tachyon_atomic_load_acquire32(&p->hdr->state);
	if (UNLIKELY(state != TACHYON_STATE_READY))
		return producer_state_error(p, state);

	uint64_t cap = p->capacity;
	/* A slot is at most capacity; compare before adding (n is a size_t). */
	if (UNLIKELY(max_payload > cap - HDR_SIZE))
		return -TACHYON_ENEVERFITS;
	uint64_t slot = (HDR_SIZE + (uint64_t)max_payload + ALIGN_MSK) & ~ALIGN_MSK;
	uint64_t head = p->head;
	uint64_t off = head & (cap - 1);
	uint64_t room = cap - off; /* >= 64: off and cap are multiples of 64 */
	uint64_t pad = 0;
	if (slot > room) {
		/* Placement rule: wrapping needs the padding plus the slot to fit
		 * an empty ring, i.e. slot <= off; otherwise waiting cannot help. */
		if (UNLIKELY(slot > off))
			return -TACHYON_ENEVERFITS;
		pad = room;
	}
	/* head - cached_tail <= cap (validated) and pad + slot <= cap: no overflow. */
	if (head - p->cached_tail + pad + slot > cap) {
		int rc = producer_refresh_tail(p, pad + slot);
		if (rc)
			return rc;
	}
	p->reserved = 1;
	p->resv_start = head;
	p->resv_slot = head + pad;
	p->resv_slot_size = (uint32_t)slot;
	p->resv_max_payload = (uint32_t)max_payload;
	*payload = p->ring + ((head + pad) & (cap - 1)) + HDR_SIZE;
	return 0;
}

int tachyon_producer_try_reserve(tachyon_producer *p, size_t max_payload, void **payload)
{
	return producer_reserve(p, max_payload, payload);
}

static inline ALWAYS_INLINE int producer_commit(tachyon_producer *p, size_t actual_size,
                                              uint32_t type_id)
{
	if (UNLIKELY(!p->reserved || actual_size > p->resv_max_payload))
		return -EINVAL;
	if (UNLIKELY(p->fatal)) {
		p->reserved = 0;
		return -TACHYON_ECORRUPT;
	}
	const uint8_t *payload = p->ring + (p->resv_slot & (p->capacity - 1)) + HDR_SIZE;
	producer_write_slot(p->ring, p->capacity - 1, p->cached_tail + p->capacity, p->resv_start,
	                    p->resv_slot - p->resv_start, p->resv_slot_size,
	                    (uint32_t)actual_size, type_id, payload);
	p->sent_messages++;
	p->sent_bytes += actual_size;
	p->head = p->resv_slot + p->resv_slot_size;
	p->reserved = 0;
	/* ABI.md ("Publication and waking") asks for a publication at least every BATCH commits. Ours
	 * also publishes once a quarter of the ring is unpublished: with large
	 * messages 32 of them may not even fit, and the consumer should start
	 * copying out while we copy in. Small messages never reach it first. */
	if (UNLIKELY(++p->unpublished >= TACHYON_BATCH ||
	             p->head - p->published_head >= p->capacity / 4))
		return producer_publish_and_wake(p);
	return 0;
}

int tachyon_producer_commit(tachyon_producer *p, size_t actual_size, uint32_t type_id)
{
	return producer_commit(p, actual_size, type_id);
}

void tachyon_producer_rollback(tachyon_producer *p)
{
	/* head never moved for the reservation (nor for its padding), and the
	 * SKIP header is written only at commit: just forget it. */
	p->reserved = 0;
}

static inline int producer_flush(tachyon_producer *p)
{
	if (UNLIKELY(p->fatal))
		return -TACHYON_ECORRUPT;
	/* With a reservation open this publishes the head before it (and before
	 * its padding): never a head ending right after a SKIP. */
	int rc = producer_publish(p);
	if (rc)
		return rc;
	/* Always check the wait word on an explicit flush, even when nothing new
	 * was published: a flush is the caller's "make sure the peer knows". */
	producer_wake_consumer(p);
	return 0;
}

int tachyon_producer_flush(tachyon_producer *p)
{
	return producer_flush(p);
}

int tachyon_producer_try_send(tachyon_producer *p, const void *data, size_t size, uint32_t type_id)
{
	/* Exactly reserve, copy, commit, flush (every check of each kept), in
	 * one function: on the per-message path of a send this saves three
	 * calls and lets the compiler drop what it can prove twice. */
	void *payload = NULL;
	int rc = producer_reserve(p, size, &payload);
	if (UNLIKELY(rc))
		return rc;
	tachyon_copy_payload(&p->copy, payload, data, size);
	rc = producer_commit(p, size, type_id);
	if (UNLIKELY(rc)) {
		tachyon_producer_rollback(p);
		return rc;
	}
	return producer_flush(p);
}

/* send_many's counters, kept in locals between publications: fold them
 * into the end before anything that may publish head (which stores them). */
static inline void producer_count(tachyon_producer *p, uint64_t *msgs, uint64_t *bytes)
{
	p->sent_messages += *msgs;
	p->sent_bytes += *bytes;
	*msgs = 0;
	*bytes = 0;
}

int tachyon_producer_try_send_many(tachyon_producer *p, const tachyon_iov *msgs, size_t n,
                                   uint32_t type_id, size_t *sent)
{
	/* The checks of a reserve that concern the end and the state word are
	 * made once per call; each message then gets the size, placement and
	 * room checks of a reserve and is committed as commit does: payload,
	 * then the SKIP (when it wraps) and the header, head past both. */
	size_t i = 0;
	int rc;
	if (UNLIKELY(p->fatal)) {
		rc = -TACHYON_ECORRUPT;
		goto out;
	}
	if (UNLIKELY(p->reserved)) {
		rc = -EBUSY;
		goto out;
	}
	/* acquire: as in producer_reserve (a close or fatal by the consumer). */
	uint32_t state = tachyon_atomic_load_acquire32(&p->hdr->state);
	if (UNLIKELY(state != TACHYON_STATE_READY)) {
		rc = producer_state_error(p, state);
		goto out;
	}
	rc = 0;
	const uint64_t cap = p->capacity, mask = cap - 1, quarter = cap / 4;
	uint64_t head = p->head;
	/* Room: a slot may end at most at room_end (the validated tail plus
	 * capacity; head - tail <= capacity, so room_end - head cannot wrap). */
	uint64_t room_end = p->cached_tail + cap;
	uint64_t published = p->published_head;
	uint64_t nmsgs = 0, nbytes = 0;
	uint32_t unpublished = p->unpublished;
	for (; i < n; i++) {
		size_t size = msgs[i].size;
		const uint8_t *data = msgs[i].data;
		if (UNLIKELY(!data && size)) {
			rc = -EINVAL;
			break;
		}
		/* A slot is at most capacity; compare before adding. */
		if (UNLIKELY(size > cap - HDR_SIZE)) {
			rc = -TACHYON_ENEVERFITS;
			break;
		}
		uint64_t slot = (HDR_SIZE + (uint64_t)size + ALIGN_MSK) & ~ALIGN_MSK;
		uint64_t off = head & mask;
		uint64_t pad = 0;
		if (UNLIKELY(slot > cap - off)) {
			if (slot > off) { /* the placement rule of producer_reserve */
				rc = -TACHYON_ENEVERFITS;
				break;
			}
			pad = cap - off;
		}
		if (UNLIKELY(room_end - head < pad + slot)) {
			/* refresh_tail reads the end and may publish it. */
			p->head = head;
			p->unpublished = unpublished;
			producer_count(p, &nmsgs, &nbytes);
			rc = producer_refresh_tail(p, pad + slot);
			unpublished = p->unpublished;
			published = p->published_head;
			room_end = p->cached_tail + cap;
			if (rc)
				break;
		}
		uint8_t *sh = p->ring + ((head + pad) & mask);
		copy_small_or_payload(&p->copy, sh + HDR_SIZE, data, size);
		/* The header and stamps as commit writes them. */
		producer_write_slot(p->ring, mask, room_end, head, pad, (uint32_t)slot, (uint32_t)size,
		                    type_id, data);
		head += pad + slot;
		nmsgs++;
		nbytes += size;
		/* commit's publication rules: every BATCH messages (ABI.md,
		 * "Publication and waking"), or a quarter of the ring unpublished. */
		if (UNLIKELY(++unpublished >= TACHYON_BATCH || head - published >= quarter)) {
			p->head = head;
			producer_count(p, &nmsgs, &nbytes);
			rc = producer_publish_and_wake(p);
			unpublished = p->unpublished;
			published = p->published_head;
			if (rc) {
				i++; /* this one was committed before the publication failed */
				break;
			}
		}
	}
	p->head = head;
	p->unpublished = unpublished;
	producer_count(p, &nmsgs, &nbytes);
	/* End as a flush does: publish and wake (after -EAGAIN, refresh_tail
	 * published already; after another stop, what was sent goes out). */
	if (!p->fatal && rc != -EAGAIN) {
		int fr = producer_flush(p);
		if (fr)
			rc = fr;
	}
out:
	if (sent)
		*sent = i;
	return rc;
}

int tachyon_producer_fits(const tachyon_producer *p, size_t max_payload)
{
	uint64_t cap = p->capacity;
	if (max_payload > cap - HDR_SIZE)
		return 0;
	uint64_t slot = (HDR_SIZE + (uint64_t)max_payload + ALIGN_MSK) & ~ALIGN_MSK;
	uint64_t off = p->head & (cap - 1);
	return slot <= cap - off || slot <= off;
}

/* ------------------------------------------------------------------------ */
/* Consumer                                                                  */

/* How far past the published tail a release must reach to be published at
 * once (release_to): half the ring, or the newest head seen when that is
 * nearer. Kept up to date wherever either end of it moves, so that the
 * per-message release makes one comparison for both rules. */
static inline void consumer_set_span(tachyon_consumer *c)
{
	/* The newest position known committed: the head seen, or the read
	 * cursor when slots taken by their stamps put it ahead of that head. */
	uint64_t newest = c->cached_head;
	if (c->read - newest - 1 < c->capacity)
		newest = c->read;
	uint64_t ahead = newest - c->published_tail;
	uint64_t half = c->capacity / 2;
	c->publish_span = ahead < half ? ahead : half;
}

int tachyon_consumer_attach(tachyon_consumer *c, void *region, size_t region_size)
{
	uint64_t cap, h, t;
	int rc = check_region(region, region_size, &cap, &h, &t);
	if (rc)
		return rc;
	memset(c, 0, sizeof(*c));
	c->hdr = region;
	c->ring = (const uint8_t *)region + TACHYON_REGION_HEADER_SIZE;
	c->capacity = cap;
	c->read = t;
	c->release = t;
	c->published_tail = t;
	c->cached_head = h;
	consumer_set_span(c);
	/* acquire: pairs with the producer's release store of its marker,
	 * made before its first commit; every slot it commits is stamped. */
	c->stamps = tachyon_atomic_load_acquire32(&c->hdr->producer_stamps) == TACHYON_STAMPS_MARKER;
	return 0;
}

static SLOW_PATH int consumer_fail(tachyon_consumer *c, const char *why)
{
	c->fatal = 1;
	c->fatal_reason = why;
	return mark_fatal(c->hdr);
}

int tachyon_consumer_fail(tachyon_consumer *c, const char *why)
{
	if (c->fatal)
		return -TACHYON_ECORRUPT; /* the first reason stands */
	return consumer_fail(c, why);
}

/* The consumer's display words for an outside observer (ABI.md, "Traffic
 * counters"): relaxed, published at the moments tail is and ordered before
 * its store like the producer's counters before head. The read cursor
 * beside them makes read - tail, the bytes still pinned, visible too. */
static SLOW_PATH void consumer_publish_display(tachyon_consumer *c)
{
	tachyon_atomic_store_relaxed64(&c->hdr->received_messages, c->received_messages);
	tachyon_atomic_store_relaxed64(&c->hdr->received_bytes, c->received_bytes);
	tachyon_atomic_store_relaxed64(&c->hdr->consumer_read, c->read);
	c->published_read = c->read;
}

/* Store the release cursor into tail, then wake a producer sleeping for
 * room on the producer wait word (ours, offset 448). */
static SLOW_PATH void consumer_publish_tail(tachyon_consumer *c)
{
	consumer_publish_display(c);
	if (c->release != c->published_tail) {
		/* release: hands [published tail, release) back to the producer; our
		 * reads of those slots (and the caller's, done before release_to)
		 * happen before its acquire load of tail and its next writes. */
		tachyon_atomic_store_release64(&c->hdr->tail, c->release);
		c->published_tail = c->release;
		consumer_set_span(c);
	}
	c->unpublished = 0;
	uint32_t *word = &c->hdr->producer_wait;
	/* full fence: orders the tail store before the load of the producer
	 * wait word (store-load). Pairs with the producer's CAS 0->1 + fence
	 * before its last look at tail: either it sees our tail or we its 1. */
	tachyon_atomic_fence();
	tachyon_futex_claim_wake(word);
}

/* Load and validate head; on success cached_head holds it. Inline: on a
 * ping-pong every message is found by this load, in try_peek's loop. */
static inline int consumer_load_head(tachyon_consumer *c)
{
	uint64_t seen = c->cached_head;
	/* acquire: pairs with the producer's release store of head; every slot
	 * header and payload below it is visible after this load. */
	uint64_t h = tachyon_atomic_load_acquire64(&c->hdr->head);
	/* Never behind the previous head, and not more than capacity ahead of
	 * the tail we published (which the producer may have seen). Both as
	 * one difference from the head seen: a consumer that took slots by
	 * their stamps may have published a tail ahead of every head it saw,
	 * and seen <= published tail + capacity holds (this check keeps it). */
	if (UNLIKELY((h & ALIGN_MSK) != 0 || h - seen > c->published_tail + c->capacity - seen))
		/* Which one: a head below the one we saw is "backwards" even when
		 * the difference from it wraps past the capacity bound too; the
		 * counters start at 0 and never wrap, so plain < tells. */
		return consumer_fail(c, (h & ALIGN_MSK) != 0 ? "the producer's head is not a multiple of 64"
		                        : h < c->cached_head
		                                ? "the producer moved head backwards"
		                                : "the producer's head claims more than the capacity in use");
	c->cached_head = h;
	consumer_set_span(c);
	return 0;
}

/*
 * Nothing deliverable below the cached head. Returns 0 when head moved (the
 * caller looks again), else -EAGAIN, -TACHYON_EPEERCLOSED or
 * -TACHYON_ECORRUPT.
 */
static SLOW_PATH int consumer_still_empty(tachyon_consumer *c, uint64_t seen);

static SLOW_PATH int consumer_empty(tachyon_consumer *c)
{
	uint64_t seen = c->cached_head;
	int rc = consumer_load_head(c);
	if (rc)
		return rc;
	if (c->cached_head != seen)
		return 0;
	return consumer_still_empty(c, seen);
}

/* consumer_empty's second half: nothing is known committed beyond `seen`
 * (head was just loaded and is not beyond it, or the stamp there does not
 * name it). Returns 0 once head lies beyond `seen` after a close. */
static SLOW_PATH int consumer_still_empty(tachyon_consumer *c, uint64_t seen)
{
	int rc;
	c->looked_empty = 1; /* for consumer_released: what comes next arrived while we looked */
	/* Really empty: the producer must see what we freed (ABI.md, "Publication and waking": ours
	 * publishes tail whenever it finds the ring empty). */
	if (c->release != c->published_tail)
		consumer_publish_tail(c);
	else if (c->read != c->published_read && !c->fatal)
		/* Tail cannot move (a pinned slot holds it) but we read on behind
		 * it: the producer learns nothing new, an observer does. */
		consumer_publish_display(c);
	/* acquire: pairs with the producer's close, a CAS 2->3 (release) made
	 * after its last store of head; after seeing 3 the head reloaded below
	 * is the final one. */
	uint32_t state = tachyon_atomic_load_acquire32(&c->hdr->state);
	if (state == TACHYON_STATE_READY) {
		/* acquire: as at attach. A producer that attached after us
		 * announces its stamps here, before anything is committed. */
		if (!c->stamps && tachyon_atomic_load_acquire32(&c->hdr->producer_stamps) ==
		                          TACHYON_STAMPS_MARKER)
			c->stamps = 1; /* from the next look on */
		return -EAGAIN;
	}
	if (state != TACHYON_STATE_CLOSED)
		/* 4, or a value no honest peer writes */
		return consumer_fail(c, state == TACHYON_STATE_FATAL
		                                ? "the peer marked the ring fatal"
		                                : "the state word holds a value no honest peer writes");
	c->closed_seen = 1;
	rc = consumer_load_head(c);
	if (rc)
		return rc;
	/* The producer publishes head before it closes, so whatever it
	 * stamped lies below this head. */
	return c->cached_head - seen - 1 < c->capacity ? 0 : -TACHYON_EPEERCLOSED;
}

/* Which check of a slot header failed, from the copies already loaded. */
static SLOW_PATH const char *slot_fault(uint64_t rs, uint32_t size, uint64_t cap, uint64_t off)
{
	if (rs < HDR_SIZE)
		return "a slot header's reserved_size is smaller than the 64-byte header";
	if (rs > cap)
		return "a slot header's reserved_size is larger than the ring";
	if ((rs & ALIGN_MSK) != 0)
		return "a slot header's reserved_size is not a multiple of 64";
	if (size > rs - HDR_SIZE)
		return "a slot header's size is larger than its slot";
	if (rs > cap - off)
		return "a slot runs past the end of the ring";
	return "a slot ends beyond the published head";
}

/*
 * Position stamps, consumer side (ABI.md, "Position stamps"). With nothing
 * published beyond the read cursor, a consumer whose producer stamps looks
 * at the stamp of the header there instead of at head: the header's cache
 * line announces the slot and carries it (and a small payload's copy), so
 * a message costs one line instead of head's and then the header's. The
 * stamp is loaded once with acquire (the producer stores it last with
 * release); the header is then checked exactly as one below head would be,
 * with one bound in place of head: the producer can have been given no
 * room beyond the tail we published plus capacity. So a stamp, hostile or
 * stale, can expose nothing outside the ring nor anything twice: it is
 * only believed at the read cursor, which only moves forward.
 *
 * Returns STAMP_NONE (the stamp does not name this position: nothing
 * committed here yet), STAMP_SLOT or STAMP_SKIP with the header's fields
 * (for a SKIP, rs is the padding up to the end of the lap), or the fatal
 * error.
 */
enum { STAMP_NONE = 0, STAMP_SLOT = 1, STAMP_SKIP = 2 };

struct stamped {
	uint32_t size, type_id;
	uint64_t rs;
};

static inline int consumer_stamped(tachyon_consumer *c, uint64_t read, struct stamped *f)
{
	uint64_t cap = c->capacity;
	uint64_t off = read & (cap - 1);
	/* What the producer may have written at most, from the read cursor:
	 * in [0, cap], since read never passes published tail + capacity. At
	 * 0 the header there is the one at our published tail, a lap ago:
	 * nothing can be new. */
	uint64_t given = c->published_tail + cap - read;
	if (given == 0)
		return STAMP_NONE;
	const struct tachyon_slot_header *sh =
	        (const struct tachyon_slot_header *)(const void *)(c->ring + off);
	if (TACHYON_SLOT_LOAD_STAMP(sh) != TACHYON_POS_STAMP(read))
		return STAMP_NONE;
	uint64_t to_end = cap - off;
	uint32_t size = TACHYON_SLOT_LOAD32(sh, size);
	if (UNLIKELY(size == TACHYON_SKIP)) {
		/* Padding sits only at the end of a lap, inside the room given. */
		if (UNLIKELY(off == 0 || to_end > given))
			return consumer_fail(c, off == 0 ? "a SKIP marker at offset 0"
			                                 : "a stamped SKIP marker whose padding runs "
			                                   "beyond the room the producer was given");
		f->rs = to_end;
		return STAMP_SKIP;
	}
	uint32_t type_id = TACHYON_SLOT_LOAD32(sh, type_id);
	uint64_t rs = TACHYON_SLOT_LOAD32(sh, reserved_size);
	if (UNLIKELY(rs < HDR_SIZE || rs > to_end || (rs & ALIGN_MSK) != 0 || size > rs - HDR_SIZE))
		return consumer_fail(c, slot_fault(rs, size, cap, off));
	if (UNLIKELY(rs > given))
		return consumer_fail(c, "a stamped slot runs beyond the room the producer was given");
	f->size = size;
	f->type_id = type_id;
	f->rs = rs;
	return STAMP_SLOT;
}

/* A stamped slot's payload: its inline copy in the header when it fits
 * there (the line the stamp came on), else its place after the header. */
static inline const uint8_t *stamped_payload(const tachyon_consumer *c, uint64_t off, uint32_t size)
{
	const struct tachyon_slot_header *sh =
	        (const struct tachyon_slot_header *)(const void *)(c->ring + off);
	return size <= TACHYON_INLINE_MAX ? sh->inline_payload : c->ring + off + HDR_SIZE;
}

int tachyon_consumer_try_peek(tachyon_consumer *c, tachyon_msg *msg)
{
	if (UNLIKELY(c->fatal))
		return -TACHYON_ECORRUPT;
	uint64_t cap = c->capacity;
	for (;;) {
		uint64_t read = c->read;
		uint64_t avail = c->cached_head - read; /* in (0, cap] when head is beyond read */
		if (avail - 1 >= cap) {
			/* Nothing published beyond read (read == head, or read ahead
			 * of it after stamped slots). Inline (consumer_empty without
			 * the call): a message that arrives while we wait is found
			 * right here, and this path is the latency of every
			 * ping-pong. Only a ring still empty goes out of line. */
			int rc;
			if (c->stamps) {
				/* The stamp first: a slot committed here is taken from
				 * its header's line without waiting for head's. */
				struct stamped f = {0, 0, 0};
				rc = consumer_stamped(c, read, &f);
				if (rc == STAMP_SLOT) {
					uint64_t off = read & (cap - 1);
					msg->data = stamped_payload(c, off, f.size);
					msg->size = f.size;
					msg->type_id = f.type_id;
					msg->pos = read;
					msg->end = read + f.rs;
					c->read = read + f.rs;
					c->received_messages++;
					c->received_bytes += f.size;
					/* publish_span is not moved: it stays short of
					 * read, so the release that catches up with read
					 * goes to consumer_released, which decides. */
					return 0;
				}
				if (rc == STAMP_SKIP) {
					/* Its slot is stamped already: pass the padding. */
					if (c->release == read)
						c->release = read + f.rs;
					c->read = read + f.rs;
					continue;
				}
				if (UNLIKELY(rc < 0))
					return rc;
			}
			/* Head is still loaded (and so checked) whenever the
			 * ring looks empty, stamps or not. */
			rc = consumer_load_head(c);
			if (UNLIKELY(rc))
				return rc;
			if (c->cached_head - read - 1 < cap)
				continue;
			if ((rc = consumer_still_empty(c, read)) != 0)
				return rc;
			continue;
		}
		uint64_t off = read & (cap - 1);
		const struct tachyon_slot_header *sh =
		        (const struct tachyon_slot_header *)(const void *)(c->ring + off);
		/* relaxed (the three header loads): the bytes were handed to us by
		 * the acquire load of head; atomic loads so each field is fetched
		 * exactly once and every check below uses that one copy. Every
		 * slot header load goes through shared.h's accessor, which
		 * test_double_fetch counts (R2). */
		uint32_t size = TACHYON_SLOT_LOAD32(sh, size);
		if (UNLIKELY(size == TACHYON_SKIP)) {
			uint64_t room = cap - off;
			/* Padding sits only at the end of a lap, published whole. */
			if (off == 0 || room > avail)
				return consumer_fail(c, off == 0 ? "a SKIP marker at offset 0"
				                                 : "a SKIP marker whose padding was not "
				                                   "published whole");
			if (room == avail && c->release != read) {
				/* A lone SKIP while an earlier slot is pinned: empty; stay
				 * here so that releasing that slot frees the padding too. */
				int rc = consumer_empty(c);
				if (rc)
					return rc;
				/* Head moved past the padding (it only grows): pass it
				 * now instead of looping, which would fetch this header
				 * a second time (R2, caught by test_double_fetch). */
			}
			/* Nothing pinned before the padding: it is free at once. */
			if (c->release == read)
				c->release = read + room;
			c->read = read + room; /* a lone SKIP: now read == head, empty */
			continue;
		}
		uint32_t type_id = TACHYON_SLOT_LOAD32(sh, type_id);
		uint64_t rs = TACHYON_SLOT_LOAD32(sh, reserved_size);
		if (UNLIKELY(rs < HDR_SIZE || rs > cap || (rs & ALIGN_MSK) != 0 ||
		             size > rs - HDR_SIZE || rs > cap - off || rs > avail))
			return consumer_fail(c, slot_fault(rs, size, cap, off));
		msg->data = c->ring + off + HDR_SIZE;
		msg->size = size;
		msg->type_id = type_id;
		msg->pos = read;
		msg->end = read + rs;
		c->read = read + rs;
		c->received_messages++;
		c->received_bytes += size;
		return 0;
	}
}

int tachyon_consumer_try_peek_batch(tachyon_consumer *c, tachyon_msg *msgs, size_t max)
{
	/* try_peek's loop with the cursor, the cached head and the counters
	 * kept in locals: the end's state is checked once, head is loaded only
	 * when the slots below the cached head ran out, and each slot gets
	 * exactly try_peek's checks, each header field fetched once. Whatever
	 * may publish (an empty ring publishes tail and the display words)
	 * sees the end brought up to date first (SYNC). */
	if (max == 0)
		return -EINVAL;
	if (max > INT_MAX)
		max = INT_MAX;
	if (UNLIKELY(c->fatal))
		return -TACHYON_ECORRUPT;
	const uint64_t cap = c->capacity;
	const uint8_t *const ring = c->ring;
	uint64_t read = c->read, head = c->cached_head;
	uint64_t nbytes = 0;
	size_t n = 0, counted = 0;
	int rc = 0, head_loaded = 0;
#define SYNC()                                                   \
	do {                                                     \
		c->read = read;                                  \
		c->received_messages += n - counted;             \
		c->received_bytes += nbytes;                     \
		counted = n;                                     \
		nbytes = 0;                                      \
	} while (0)
	while (n < max) {
		uint64_t avail = head - read; /* in (0, cap] when head is beyond read */
		if (avail - 1 >= cap) {
			/* Nothing published beyond read. Unlike try_peek, head
			 * first (once a call when the producer stamps): a batch is
			 * read where throughput matters, and slots below head cost
			 * fewer checks than stamped ones. Then the stamps, for
			 * what is committed beyond that head. */
			if (!head_loaded || !c->stamps) {
				rc = consumer_load_head(c);
				if (UNLIKELY(rc))
					break;
				head = c->cached_head;
				head_loaded = 1;
				if (head - read - 1 < cap)
					continue;
			}
			if (c->stamps) {
				struct stamped f = {0, 0, 0};
				rc = consumer_stamped(c, read, &f);
				if (rc == STAMP_SLOT) {
					tachyon_msg *m = &msgs[n++];
					m->data = stamped_payload(c, read & (cap - 1), f.size);
					m->size = f.size;
					m->type_id = f.type_id;
					m->pos = read;
					m->end = read + f.rs;
					read += f.rs;
					nbytes += f.size;
					rc = 0;
					continue;
				}
				if (rc == STAMP_SKIP) {
					if (c->release == read)
						c->release = read + f.rs;
					read += f.rs;
					rc = 0;
					continue;
				}
				if (UNLIKELY(rc < 0))
					break;
			}
			/* Found empty: what try_peek does then, once. With messages
			 * in hand the next call reports it. */
			SYNC();
			rc = consumer_still_empty(c, read);
			head = c->cached_head;
			if (rc)
				break;
			continue;
		}
		uint64_t off = read & (cap - 1);
		const struct tachyon_slot_header *sh =
		        (const struct tachyon_slot_header *)(const void *)(ring + off);
		/* relaxed, through the counted accessor: as in try_peek. */
		uint32_t size = TACHYON_SLOT_LOAD32(sh, size);
		if (UNLIKELY(size == TACHYON_SKIP)) {
			uint64_t room = cap - off;
			if (off == 0 || room > avail) {
				rc = consumer_fail(c, off == 0 ? "a SKIP marker at offset 0"
				                               : "a SKIP marker whose padding was not "
				                                 "published whole");
				break;
			}
			if (room == avail && c->release != read) {
				/* A lone SKIP behind a pinned slot: as in try_peek, wait
				 * here; if head moved, pass the padding without fetching
				 * this header again. */
				SYNC();
				rc = consumer_empty(c);
				head = c->cached_head;
				if (rc)
					break;
			}
			if (c->release == read)
				c->release = read + room;
			read += room;
			continue;
		}
		uint32_t type_id = TACHYON_SLOT_LOAD32(sh, type_id);
		uint64_t rs = TACHYON_SLOT_LOAD32(sh, reserved_size);
		/* try_peek's six checks in four: with lim = min(cap - off, avail)
		 * (a multiple of 64, >= 64, <= cap), rs - 64 > lim - 64 is true
		 * exactly when rs < 64 (the u64 difference wraps) or rs > cap -
		 * off or rs > avail, and rs > cap implies rs > cap - off. */
		uint64_t lim = cap - off < avail ? cap - off : avail;
		if (UNLIKELY(rs - HDR_SIZE > lim - HDR_SIZE || (rs & ALIGN_MSK) != 0 ||
		             size > rs - HDR_SIZE)) {
			rc = consumer_fail(c, slot_fault(rs, size, cap, off));
			break;
		}
		tachyon_msg *m = &msgs[n++];
		m->data = ring + off + HDR_SIZE;
		m->size = size;
		m->type_id = type_id;
		m->pos = read;
		m->end = read + rs;
		read += rs;
		nbytes += size;
	}
	SYNC();
#undef SYNC
	/* Slots taken by their stamps moved the newest known position. */
	if (c->stamps)
		consumer_set_span(c);
	if (rc == -TACHYON_ECORRUPT)
		return rc; /* fatal: not even the messages already peeked */
	return n ? (int)n : rc;
}

/* release_to's slow side: one of its publication triggers fired. */
/*
 * The caught-up rule of release_to for a consumer that takes slots by their
 * stamps: it knows of nothing committed beyond its read cursor, so every
 * release up to read looks caught up, and publishing each one would cost a
 * fence a message while it works through a backlog. Caught up means: pos is
 * read, and either the message came while we found the ring empty (a
 * ping-pong: publish at once, as before), or no slot is stamped at read now.
 * That last look loads a line the next receive reads anyway; its value is
 * only compared, so a hostile stamp can delay a publication at most until
 * the next count or size trigger or the next empty look, which publish.
 */
static inline int consumer_caught_up(tachyon_consumer *c, uint64_t pos)
{
	uint64_t read = c->read;
	if (pos != read)
		return 0; /* slots taken and not yet released: the release of the last one decides */
	if (c->looked_empty || c->published_tail + c->capacity == read)
		return 1; /* at published tail + capacity nothing new can be stamped */
	const struct tachyon_slot_header *sh =
	        (const struct tachyon_slot_header *)(const void *)(c->ring + (read & (c->capacity - 1)));
	return TACHYON_SLOT_STAMP_HINT(sh) != TACHYON_POS_STAMP(read);
}

static SLOW_PATH void consumer_released(tachyon_consumer *c, uint64_t pos, uint32_t nmsgs)
{
	uint64_t n = (uint64_t)c->unpublished + nmsgs; /* cannot wrap in 64 bits */
	if (c->fatal) {
		/* A fatal ring is dead: no more shared writes. The count stays
		 * at most BATCH, as release_to's subtraction needs. */
		c->unpublished = n < TACHYON_BATCH ? (uint32_t)n : TACHYON_BATCH;
		return;
	}
	/* The caught-up trigger with nothing new to say (pos is the tail
	 * already published) needs no store, fence or wake. */
	if (n < TACHYON_BATCH && pos == c->published_tail) {
		c->unpublished = (uint32_t)n;
		return;
	}
	if (c->stamps && n < TACHYON_BATCH && pos - c->published_tail < c->capacity / 2 &&
	    !consumer_caught_up(c, pos)) {
		c->unpublished = (uint32_t)n;
		consumer_set_span(c);
		return;
	}
	c->looked_empty = 0;
	consumer_publish_tail(c);
}

int tachyon_consumer_release_to(tachyon_consumer *c, uint64_t pos, uint32_t nmsgs)
{
	uint64_t release = c->release;
	/* A slot boundary in [release, read] (differences: modular-safe). */
	if ((pos & ALIGN_MSK) != 0 || pos - release > c->read - release)
		return -EINVAL;
	c->release = pos;
	/* unpublished is below BATCH here (a publication resets it, and the
	 * slow side keeps it at most BATCH on a fatal ring), so the subtraction
	 * cannot wrap and the sum below stays under BATCH.
	 *
	 * Publish tail at least every BATCH messages (ABI.md, "Publication and
	 * waking"); once half the ring is released, since a producer of large
	 * messages waiting for room would otherwise wait until we find the
	 * ring empty, and the two sides would take turns instead of copying at
	 * the same time; and when this release caught up with the newest head
	 * we have seen (pos == cached_head implies pos == read, as release <=
	 * read <= cached_head): the caller may now go idle for good, and until
	 * its next receive finds the ring empty the freed bytes would stay
	 * counted as used, starving a producer that needs room for a large
	 * slot on a ring that is in fact empty. Slots still pinned (live
	 * zero-copy exports) are below read and not released: tail never
	 * passes them. publish_span folds the last two rules into one
	 * comparison. */
	uint32_t u = c->unpublished;
	if (UNLIKELY(nmsgs >= TACHYON_BATCH - u || pos - c->published_tail >= c->publish_span))
		consumer_released(c, pos, nmsgs);
	else
		c->unpublished = u + nmsgs;
	return 0;
}

void tachyon_consumer_publish(tachyon_consumer *c)
{
	if (c->fatal)
		return; /* a fatal ring is dead: no more shared writes */
	consumer_publish_tail(c);
}

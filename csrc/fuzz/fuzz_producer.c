/*
 * libFuzzer target: the producer end against a hostile consumer
 * (docs/RELIABILITY.md R3).
 *
 * Input: a capacity choice, a region header (possibly broken), the starting
 * head and tail, then a program: reserve (any size, huge ones included),
 * commit (sizes up to one past the reservation), rollback, flush, the
 * vectored send (up to 40 messages of any sizes, a NULL payload now and
 * then), and the
 * consumer's side: an honest consumer that walks and checks the published
 * slots and moves tail past them, or a hostile one that stores any tail
 * (behind, ahead of head, unaligned, huge jumps), a foreign writer of head,
 * the state word and the wait words.
 *
 * Oracle, always: a reservation's payload lies inside the data ring after
 * its header and is written whole (memset) so ASan checks every byte (the
 * region is malloc'd at exactly 768 + capacity bytes); results are only the
 * documented codes; -TACHYON_ECORRUPT is permanent.
 * Oracle, while the consumer is honest: no error except -EAGAIN (and that
 * only while something is unconsumed), no reservation overlaps bytes the
 * consumer has not released, and the consumer finds every committed
 * message, in order, with its size, type id and bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/atomics.h"
#include "fuzz_input.h"

#define MAX_OPS      2048
#define MAX_PRODUCED 4096

typedef struct run {
	uint8_t *region;
	struct tachyon_region_header *hdr;
	uint8_t *ring;
	uint64_t cap;
	tachyon_producer p;
	int fatal_seen;
	int honest;
	/* open reservation */
	int reserved;
	uint8_t *payload;
	size_t max_payload;
	/* what the honest consumer expects */
	uint32_t seq_next, seq_expect;
	uint32_t sizes[MAX_PRODUCED];
	uint32_t types[MAX_PRODUCED];
} run;

static uint8_t pattern(uint32_t seq)
{
	return (uint8_t)(seq * 151u + 3u);
}

static void check_rc(run *r, int rc)
{
	if (rc == -TACHYON_ECORRUPT) {
		FUZZ_ASSERT(!r->honest);
		r->fatal_seen = 1;
		return;
	}
	FUZZ_ASSERT(!r->fatal_seen);
	if (rc == -TACHYON_EPEERCLOSED)
		FUZZ_ASSERT(!r->honest || r->hdr->state == TACHYON_STATE_CLOSED);
	else
		FUZZ_ASSERT(rc == -EAGAIN || rc == -TACHYON_ENEVERFITS);
}

static void op_reserve(run *r, size_t n)
{
	void *payload = NULL;
	int rc = tachyon_producer_try_reserve(&r->p, n, &payload);
	TRACE("reserve %zu -> %d\n", n, rc);
	if (r->reserved) {
		FUZZ_ASSERT(rc == -EBUSY || rc == -TACHYON_ECORRUPT);
		if (rc == -TACHYON_ECORRUPT)
			FUZZ_ASSERT(r->fatal_seen);
		return;
	}
	if (rc != 0) {
		check_rc(r, rc);
		if (rc == -EAGAIN && r->honest) {
			/* EAGAIN publishes head first; with everything consumed
			 * there is room for any slot that can ever fit here. */
			uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
			FUZZ_ASSERT(tachyon_atomic_load_relaxed64(&r->hdr->head) == r->p.head);
			FUZZ_ASSERT(tail != r->p.head);
		}
		if (rc == -TACHYON_ENEVERFITS)
			FUZZ_ASSERT(!tachyon_producer_fits(&r->p, n));
		return;
	}
	FUZZ_ASSERT(!r->fatal_seen);
	uint8_t *lo = r->ring, *hi = r->ring + r->cap, *pl = payload;
	FUZZ_ASSERT(pl >= lo + 64 && pl <= hi && n <= (size_t)(hi - pl));
	if (r->honest) {
		/* the slot ends no more than capacity above the consumer's tail:
		 * it overwrites nothing unreleased */
		uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
		uint64_t slot_end = r->p.resv_slot + r->p.resv_slot_size;
		FUZZ_ASSERT(slot_end - tail <= r->cap);
		FUZZ_ASSERT(r->p.resv_slot - tail <= r->cap);
	}
	/* Write every byte: ASan reports any outside the allocation. */
	memset(pl, 0xA5, n);
	r->reserved = 1;
	r->payload = pl;
	r->max_payload = n;
}

static void op_commit(run *r, uint16_t a)
{
	size_t actual = r->reserved ? a % (r->max_payload + 2) : a;
	uint32_t seq = r->seq_next;
	if (r->reserved && actual <= r->max_payload)
		memset(r->payload, pattern(seq), actual);
	int rc = tachyon_producer_commit(&r->p, actual, seq);
	TRACE("commit %zu (reserved %d, max %zu) -> %d\n", actual, r->reserved, r->max_payload, rc);
	if (!r->reserved || actual > r->max_payload) {
		FUZZ_ASSERT(rc == -EINVAL);
		return;
	}
	r->reserved = 0;
	if (rc != 0) {
		check_rc(r, rc);
		return;
	}
	FUZZ_ASSERT(!r->fatal_seen);
	r->sizes[seq % MAX_PRODUCED] = (uint32_t)actual;
	r->types[seq % MAX_PRODUCED] = seq;
	r->seq_next++;
}

static size_t pick_size(run *r, fuzz_in *in);

/* The vectored send: every message it reports sent is recorded for the
 * honest consumer; the one it stopped at is what its code says. */
static void op_send_many(run *r, fuzz_in *in)
{
	enum { K = 40 };
	tachyon_iov v[K];
	uint8_t *bufs[K];
	size_t k = 1 + fin_u8(in) % K;
	uint32_t type_id = fin_u32(in);
	for (size_t i = 0; i < k; i++) {
		size_t n = pick_size(r, in);
		bufs[i] = NULL;
		if (n <= r->cap && fin_u8(in) % 16 != 0) {
			bufs[i] = malloc(n ? n : 1);
			FUZZ_ASSERT(bufs[i] != NULL);
			/* the payload of the seq it gets if sent */
			memset(bufs[i], pattern(r->seq_next + (uint32_t)i), n);
		}
		/* a huge size with some pointer: the size check must come first */
		v[i] = (tachyon_iov){bufs[i] ? bufs[i] : (n > r->cap ? (const void *)r : NULL), n};
	}
	size_t sent = SIZE_MAX;
	int rc = tachyon_producer_try_send_many(&r->p, v, k, type_id, &sent);
	TRACE("send_many %zu -> %d, sent %zu\n", k, rc, sent);
	FUZZ_ASSERT(sent <= k);
	FUZZ_ASSERT(rc == 0 ? sent == k : rc < 0);
	for (size_t i = 0; i < sent; i++) {
		uint32_t seq = r->seq_next++;
		r->sizes[seq % MAX_PRODUCED] = (uint32_t)v[i].size;
		r->types[seq % MAX_PRODUCED] = type_id;
	}
	if (r->reserved) {
		FUZZ_ASSERT(sent == 0 && (rc == -EBUSY || rc == -TACHYON_ECORRUPT));
	} else if (rc == -EINVAL) {
		FUZZ_ASSERT(v[sent].data == NULL && v[sent].size != 0);
	} else if (rc == -TACHYON_ENEVERFITS) {
		FUZZ_ASSERT(!tachyon_producer_fits(&r->p, v[sent].size));
	} else if (rc != 0) {
		check_rc(r, rc);
	}
	if (r->honest && rc != -TACHYON_EPEERCLOSED && rc != -EBUSY)
		/* published at the end, whatever stopped it */
		FUZZ_ASSERT(tachyon_atomic_load_relaxed64(&r->hdr->head) == r->p.head);
	if (rc == -TACHYON_ECORRUPT)
		FUZZ_ASSERT(!r->honest);
	for (size_t i = 0; i < k; i++)
		free(bufs[i]);
}

/* The honest consumer: walk published slots from tail (at most k messages),
 * check each against what was committed, then store the new tail. */
static void op_consume(run *r, uint8_t k)
{
	if (!r->honest) {
		/* a hostile run still needs room now and then: take everything */
		uint64_t h = tachyon_atomic_load_relaxed64(&r->hdr->head);
		tachyon_atomic_store_release64(&r->hdr->tail, h);
		return;
	}
	uint64_t cap = r->cap;
	uint64_t head = tachyon_atomic_load_acquire64(&r->hdr->head);
	uint64_t tail = tachyon_atomic_load_relaxed64(&r->hdr->tail);
	for (unsigned i = 0; i <= k && tail != head; i++) {
		FUZZ_ASSERT(head - tail <= cap && (tail & 63) == 0);
		uint64_t off = tail & (cap - 1);
		const struct tachyon_slot_header *h = (const void *)(r->ring + off);
		if (h->size == TACHYON_SKIP) {
			/* our producer never publishes a lone SKIP */
			FUZZ_ASSERT(off != 0 && head - tail > cap - off);
			tail += cap - off;
			off = 0;
			h = (const void *)r->ring;
		}
		FUZZ_ASSERT(r->seq_expect != r->seq_next);
		uint32_t seq = r->seq_expect++;
		FUZZ_ASSERT(h->type_id == r->types[seq % MAX_PRODUCED]);
		FUZZ_ASSERT(h->size == r->sizes[seq % MAX_PRODUCED]);
		FUZZ_ASSERT(h->reserved_size >= 64 + h->size && h->reserved_size % 64 == 0);
		FUZZ_ASSERT(off + h->reserved_size <= cap && h->reserved_size <= head - tail);
		for (uint32_t j = 0; j < h->size; j++)
			FUZZ_ASSERT(r->ring[off + 64 + j] == pattern(seq));
		tail += h->reserved_size;
	}
	tachyon_atomic_store_release64(&r->hdr->tail, tail);
}

static void op_hostile(run *r, fuzz_in *in)
{
	uint8_t what = fin_u8(in);
	r->honest = 0;
	uint64_t t = tachyon_atomic_load_relaxed64(&r->hdr->tail);
	TRACE("hostile %u\n", what % 7);
	switch (what % 7) {
	case 0: /* any tail */
		tachyon_atomic_store_release64(&r->hdr->tail, fin_u64(in));
		break;
	case 1: { /* tail jumps by whole slots, either way (ahead of head too) */
		int16_t d = (int16_t)fin_u16(in);
		tachyon_atomic_store_release64(&r->hdr->tail, t + (uint64_t)(int64_t)d * 64);
		break;
	}
	case 2: /* tail a little off alignment */
		tachyon_atomic_store_release64(&r->hdr->tail, t + 1 + fin_u8(in) % 63);
		break;
	case 3: /* a foreign writer of head */
		tachyon_atomic_store_release64(&r->hdr->head, fin_u64(in));
		break;
	case 4: /* the state word */
		tachyon_atomic_store_release32(&r->hdr->state, fin_u8(in) % 6);
		break;
	case 5: /* the consumer wait word: the wake path must cope */
		tachyon_atomic_store_release32(&r->hdr->consumer_wait, fin_u32(in));
		break;
	default: /* tail near 2^64: the free-running arithmetic must hold */
		tachyon_atomic_store_release64(&r->hdr->tail, UINT64_MAX - 63 - 64 * (uint64_t)fin_u8(in));
		break;
	}
}

/* Payload sizes: mostly fitting, sometimes near or past the capacity, and
 * sometimes enormous (size_t overflow in the slot arithmetic). */
static size_t pick_size(run *r, fuzz_in *in)
{
	uint8_t mode = fin_u8(in);
	switch (mode % 8) {
	case 0:
		return 0;
	case 1:
		return (size_t)fin_u64(in);
	case 2:
		return r->cap - 64 + fin_u8(in) % 3 - 1; /* around the largest slot */
	case 3:
		return SIZE_MAX - fin_u8(in);
	default:
		return fin_u16(in) % (r->cap / 2);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in in = {data, size};
	static run r;
	memset(&r, 0, offsetof(run, sizes));
	size_t region_size;
	uint32_t mine;
	r.region = fin_region(&in, &r.cap, &region_size, &mine);
	r.hdr = (struct tachyon_region_header *)(void *)r.region;
	r.ring = r.region + TACHYON_REGION_HEADER_SIZE;
	uint64_t head = r.hdr->head, tail = r.hdr->tail;
	/* The ring's old contents do not matter to a producer: a fixed fill. */
	memset(r.ring, 0xEE, r.cap);

	/* The bus claims its role before it attaches; refused, it attaches
	 * nothing. The other role's owner word is never ours to write. */
	uint32_t other_owner = r.hdr->consumer_owner;
	if (!fuzz_claim(r.region, region_size, TACHYON_ROLE_PRODUCER, mine)) {
		free(r.region);
		return 0;
	}
	int rc = tachyon_producer_attach(&r.p, r.region, region_size);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -TACHYON_EHANDSHAKE || rc == -TACHYON_ECORRUPT);
		free(r.region);
		return 0;
	}
	/* As in fuzz_consumer: the announced capacity bounds the oracle. */
	FUZZ_ASSERT(r.p.capacity <= r.cap);
	r.cap = r.p.capacity;
	/* Honest when the consumer has consumed everything at the start (what
	 * lies between tail and head is unknown) and the ring is ready. */
	r.honest = head == tail && r.hdr->state == TACHYON_STATE_READY;

	for (int ops = 0; ops < MAX_OPS && fin_more(&in); ops++) {
		uint8_t op = fin_u8(&in);
		switch (op % 11) {
		case 0:
		case 1:
		case 2:
			op_reserve(&r, pick_size(&r, &in));
			break;
		case 10:
			op_send_many(&r, &in);
			break;
		case 3:
		case 4:
			op_commit(&r, fin_u16(&in));
			break;
		case 5:
			tachyon_producer_rollback(&r.p);
			r.reserved = 0;
			TRACE("rollback\n");
			break;
		case 6:
			rc = tachyon_producer_flush(&r.p);
			TRACE("flush -> %d\n", rc);
			if (rc)
				check_rc(&r, rc);
			break;
		case 7:
		case 8:
			op_consume(&r, fin_u8(&in));
			break;
		default:
			op_hostile(&r, &in);
			break;
		}
	}
	if (r.honest) {
		/* Everything committed reaches an honest consumer after a flush. */
		if (r.reserved)
			tachyon_producer_rollback(&r.p);
		FUZZ_ASSERT(tachyon_producer_flush(&r.p) == 0);
		op_consume(&r, 255);
		while (tachyon_atomic_load_relaxed64(&r.hdr->tail) != r.p.head)
			op_consume(&r, 255);
		FUZZ_ASSERT(r.seq_expect == r.seq_next);
	}
	/* Our end wrote only inside its role: its own owner word still says
	 * ours, the other one is as the peer left it. */
	FUZZ_ASSERT(r.hdr->producer_owner == mine);
	FUZZ_ASSERT(r.hdr->consumer_owner == other_owner);
	free(r.region);
	return 0;
}

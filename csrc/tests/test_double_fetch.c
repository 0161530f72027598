/* R2: no double fetch. Built with -DTACHYON_COUNT_LOADS (see the Makefile),
 * so every slot header load of the core goes through shared.h's accessor and
 * reports here, with the field and the address.
 *
 * One producer end and one consumer end over a heap region, in one thread:
 * random sizes with many wraps, batch peeks, pinned (late) releases, and now
 * and then a lone SKIP published the way a 0.5.1 producer may; run twice,
 * with a consumer that learns of slots from head (as from a 0.5.1 producer)
 * and with one that reads position stamps (ours; the lone SKIPs are left
 * out there, our producer never publishes one). Each peek or
 * batch call is a window; within it no header field at one address may be
 * loaded more than once, and every delivered message (and every SKIP
 * passed) must have had each of its fields loaded exactly once, which also
 * proves the accessor is really on the path (a bypass counts 0 and fails).
 * A negative control first shows that the checker does catch a repeat. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atomics.h"
#include "internal.h"
#include "shared.h"
#include "testlib.h"

#define CAP         4096u
#define MAX_PAYLOAD (CAP / 2 - 64)
#define TARGET_MSGS 200000u
#define WALL_NS     INT64_C(20000000000)

/* ---- the counting hook ---------------------------------------------------- */

#define MAX_ENTRIES 512

typedef struct load_entry {
	const void *addr; /* address of the header field */
	int field;
	unsigned count;
} load_entry;

static load_entry entries[MAX_ENTRIES];
static size_t n_entries;
static int overflowed;
static uint64_t total_loads[TACHYON_SLOT_FIELD_COUNT];

void tachyon_count_load(int field, const void *addr)
{
	if (field < 0 || field >= TACHYON_SLOT_FIELD_COUNT) {
		overflowed = 1; /* an unknown field id is a failure too */
		return;
	}
	total_loads[field]++;
	for (size_t i = 0; i < n_entries; i++) {
		if (entries[i].addr == addr && entries[i].field == field) {
			entries[i].count++;
			return;
		}
	}
	if (n_entries == MAX_ENTRIES) {
		overflowed = 1;
		return;
	}
	entries[n_entries++] = (load_entry){addr, field, 1};
}

static void window_reset(void)
{
	n_entries = 0;
	overflowed = 0;
}

/* Loads of one field at one address in the current window. */
static unsigned loads_of(const void *addr, int field)
{
	for (size_t i = 0; i < n_entries; i++)
		if (entries[i].addr == addr && entries[i].field == field)
			return entries[i].count;
	return 0;
}

/* The largest per-(field, address) count of the window. */
static unsigned window_max(void)
{
	unsigned m = 0;
	for (size_t i = 0; i < n_entries; i++)
		if (entries[i].count > m)
			m = entries[i].count;
	return overflowed ? UINT32_MAX : m;
}

/* ---- the run ---------------------------------------------------------------- */

typedef struct counts {
	uint64_t msgs, windows, skips, lone_skips, batches, max_per_field, by_stamp;
} counts;

/* Every message of a window: each field of its header loaded exactly once,
 * its position stamp at most once (once when it was found by its stamp,
 * which only a consumer reading stamps does). Returns that count. */
static unsigned check_msg_loads(const tachyon_msg *m, int stamps)
{
	const struct tachyon_slot_header *sh =
	        (const struct tachyon_slot_header *)(const void *)(tachyon_msg_aligned_data(m) - 64);
	unsigned by_stamp = loads_of(&sh->pos_stamp, TACHYON_SLOT_FIELD_pos_stamp);
	CHECK(by_stamp <= (unsigned)stamps);
	CHECK_EQ(loads_of(&sh->size, TACHYON_SLOT_FIELD_size), 1);
	CHECK_EQ(loads_of(&sh->type_id, TACHYON_SLOT_FIELD_type_id), 1);
	CHECK_EQ(loads_of(&sh->reserved_size, TACHYON_SLOT_FIELD_reserved_size), 1);
	return by_stamp;
}

/* The loads of a SKIP the consumer passed in this window: its size once,
 * nothing else (the other fields of a SKIP are ignored). */
static void check_skip_loads(const uint8_t *ring, uint64_t cap, uint64_t pos)
{
	const struct tachyon_slot_header *sh =
	        (const struct tachyon_slot_header *)(const void *)(ring + (pos & (cap - 1)));
	CHECK(loads_of(&sh->pos_stamp, TACHYON_SLOT_FIELD_pos_stamp) <= 1);
	CHECK(loads_of(&sh->size, TACHYON_SLOT_FIELD_size) <= 1);
	CHECK_EQ(loads_of(&sh->type_id, TACHYON_SLOT_FIELD_type_id), 0);
	CHECK_EQ(loads_of(&sh->reserved_size, TACHYON_SLOT_FIELD_reserved_size), 0);
}

static void negative_control(void)
{
	struct tachyon_slot_header fake;
	memset(&fake, 0, sizeof fake);
	window_reset();
	(void)TACHYON_SLOT_LOAD32(&fake, size);
	CHECK_EQ(window_max(), 1);
	(void)TACHYON_SLOT_LOAD32(&fake, size); /* a double fetch */
	CHECK_EQ(window_max(), 2);
	window_reset();
	memset(total_loads, 0, sizeof total_loads);
}

static void run(int stamps)
{
	memset(total_loads, 0, sizeof total_loads);
	size_t size = TACHYON_REGION_HEADER_SIZE + CAP;
	uint8_t *mem = aligned_alloc(64, size);
	REQUIRE(mem);
	memset(mem, 0, size);
	struct tachyon_region_header *hdr = (void *)mem;
	hdr->magic = TACHYON_MAGIC;
	hdr->version = TACHYON_WIRE_VERSION;
	hdr->capacity = CAP;
	hdr->msg_alignment = TACHYON_MSG_ALIGNMENT;
	hdr->state = TACHYON_STATE_READY;
	uint8_t *ring = mem + TACHYON_REGION_HEADER_SIZE;

	tachyon_producer p;
	tachyon_consumer c;
	REQUIRE(tachyon_producer_attach(&p, mem, size) == 0);
	if (!stamps)
		hdr->producer_stamps = 0; /* the consumer reads by head alone */
	REQUIRE(tachyon_consumer_attach(&c, mem, size) == 0);
	REQUIRE(c.stamps == stamps);

	counts k = {0};
	uint64_t rng = 7, seq_sent = 0, seq_recv = 0;
	tachyon_msg pinned[64];
	size_t npinned = 0;
	int64_t deadline = tachyon_now_ns() + WALL_NS;

	while (seq_recv < TARGET_MSGS && tachyon_now_ns() < deadline) {
		/* produce a few */
		unsigned burst = (unsigned)(test_rand(&rng) % 8);
		for (unsigned i = 0; i < burst; i++) {
			uint64_t r = test_rand(&rng);
			size_t n = (r & 1) ? (size_t)(r >> 8) % 200 : (size_t)(r >> 8) % (MAX_PAYLOAD + 1);
			void *buf;
			int rc = tachyon_producer_try_reserve(&p, n, &buf);
			if (rc == -EAGAIN)
				break;
			REQUIRE(rc == 0);
			memset(buf, (int)(seq_sent & 0xff), n);
			REQUIRE(tachyon_producer_commit(&p, n, (uint32_t)seq_sent) == 0);
			seq_sent++;
		}
		REQUIRE(tachyon_producer_flush(&p) == 0);

		/* Sometimes a lone SKIP, as 0.5.1 publishes after a rollback: our
		 * producer never does, so write it by hand when the ring is empty
		 * of unpublished data and the padding fits. */
		uint64_t off = p.head & (CAP - 1);
		if (!stamps && (test_rand(&rng) & 15) == 0 && off != 0 &&
		    p.head - tachyon_atomic_load_relaxed64(&hdr->tail) + (CAP - off) <= CAP) {
			memset(ring + off, 0, 64);
			((struct tachyon_slot_header *)(void *)(ring + off))->size = TACHYON_SKIP;
			p.head += CAP - off;
			p.published_head = p.head;
			tachyon_atomic_store_release64(&hdr->head, p.head);
			p.cached_tail = tachyon_atomic_load_relaxed64(&hdr->tail);
			k.lone_skips++;
		}

		/* consume: a batch or single peeks, each call one window */
		uint64_t r = test_rand(&rng);
		tachyon_msg ms[16];
		uint64_t read_before = c.read;
		window_reset();
		int rc;
		if (r & 1) {
			rc = tachyon_consumer_try_peek_batch(&c, ms, 1 + (r >> 1) % 16);
			k.batches++;
		} else {
			rc = tachyon_consumer_try_peek(&c, &ms[0]);
			if (rc == 0)
				rc = 1;
		}
		k.windows++;
		unsigned wmax = window_max();
		if (wmax > k.max_per_field)
			k.max_per_field = wmax;
		CHECK(wmax <= 1);
		if (rc == -EAGAIN)
			rc = 0; /* nothing new; still release below, or nothing moves */
		REQUIRE(rc >= 0);
		/* walk the window: SKIPs passed and messages delivered */
		uint64_t pos = read_before;
		for (int i = 0; i < rc; i++) {
			if (ms[i].pos != pos) {
				check_skip_loads(ring, CAP, pos);
				k.skips++;
			}
			k.by_stamp += check_msg_loads(&ms[i], stamps);
			CHECK_EQ(ms[i].type_id, (uint32_t)seq_recv);
			seq_recv++;
			pos = ms[i].end;
			if (npinned < 64)
				pinned[npinned++] = ms[i];
			else
				REQUIRE(tachyon_consumer_release_to(&c, ms[i].end, 1) == 0);
		}
		k.msgs += (uint64_t)rc;
		/* release some or all pinned, late */
		if (npinned && (test_rand(&rng) % 3) != 0) {
			size_t j = (size_t)(test_rand(&rng) % npinned);
			REQUIRE(tachyon_consumer_release_to(&c, pinned[j].end, (uint32_t)(j + 1)) == 0);
			memmove(pinned, pinned + j + 1, (npinned - j - 1) * sizeof pinned[0]);
			npinned -= j + 1;
		}
		if ((test_rand(&rng) & 7) == 0)
			tachyon_consumer_publish(&c);
	}
	printf("test_double_fetch (%s): %llu messages, %llu windows (%llu batches), %llu SKIPs passed "
	       "(%llu lone SKIPs published), loads size/type_id/reserved_size = %llu/%llu/%llu, "
	       "max loads per field per header per window = %llu\n",
	       stamps ? "position stamps" : "head", (unsigned long long)k.msgs,
	       (unsigned long long)k.windows,
	       (unsigned long long)k.batches, (unsigned long long)k.skips,
	       (unsigned long long)k.lone_skips, (unsigned long long)total_loads[0],
	       (unsigned long long)total_loads[1], (unsigned long long)total_loads[2],
	       (unsigned long long)k.max_per_field);
	CHECK(k.msgs >= TARGET_MSGS);
	CHECK(k.skips > 100);
	CHECK(stamps ? k.lone_skips == 0 : k.lone_skips > 10);
	CHECK_EQ(k.max_per_field, 1);
	/* every delivered message had type_id and reserved_size loaded once */
	CHECK_EQ(total_loads[1], k.msgs);
	CHECK_EQ(total_loads[2], k.msgs);
	/* single peeks look at the stamp first, batches at head first: both
	 * paths must have been taken */
	printf("  found by their stamp: %llu\n", (unsigned long long)k.by_stamp);
	CHECK(stamps ? k.by_stamp > k.msgs / 10 && k.by_stamp < k.msgs : k.by_stamp == 0);
	free(mem);
}

int main(void)
{
	negative_control();
	run(0);
	run(1);
	return test_result("test_double_fetch");
}

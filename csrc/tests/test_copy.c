/*
 * Payload copies (copy.c): the streaming copy writes exactly the bytes memcpy
 * would, at any alignment and length, and nothing around them; the choice
 * between memcpy and streaming follows the estimates; large messages sent
 * through a ring arrive intact whichever way each was copied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testlib.h"

#define GUARD 64

static uint8_t pattern(uint64_t seed, size_t i)
{
	return (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void test_streaming_bytes(void)
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 1000, 4096 + 3,
	                               65536 + 5, 300 * 1024 + 7};
	static const size_t dst_offs[] = {0, 1, 8, 15, 16, 33, 63};
	static const size_t src_offs[] = {0, 3, 16};
	size_t max = 300 * 1024 + 7;
	size_t span = (max + 2 * GUARD + 64 + 63) & ~(size_t)63; /* aligned_alloc: a multiple */
	uint8_t *src = malloc(max + 64);
	uint8_t *dst = aligned_alloc(64, span);
	REQUIRE(src && dst);
	for (size_t i = 0; i < max + 64; i++)
		src[i] = pattern(1, i);
	int cases = 0;
	for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
		for (size_t b = 0; b < sizeof dst_offs / sizeof dst_offs[0]; b++)
			for (size_t k = 0; k < sizeof src_offs / sizeof src_offs[0]; k++) {
				size_t n = sizes[a], off = GUARD + dst_offs[b];
				memset(dst, 0xEE, span);
				tachyon_copy_streaming(dst + off, src + src_offs[k], n);
				CHECK(memcmp(dst + off, src + src_offs[k], n) == 0);
				for (size_t i = 0; i < off; i++)
					CHECK(dst[i] == 0xEE);
				for (size_t i = off + n; i < span; i++)
					if (dst[i] != 0xEE) {
						CHECK(dst[i] == 0xEE);
						break;
					}
				cases++;
			}
	printf("streaming copy: %d size/alignment cases byte-exact, guards intact (streaming stores %s)\n",
	       cases, tachyon_copy_streaming_available() ? "available" : "unavailable: memcpy");
	free(src);
	free(dst);
}

static void test_choice(void)
{
	tachyon_copy_state st = {{0, 0}, 0};
	CHECK_EQ(tachyon_copy_choose(&st), TACHYON_COPY_CACHED); /* nothing measured */
	tachyon_copy_record(&st, TACHYON_COPY_STREAMING, 40000, 1 << 20, 1);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_STREAMING], 40000);
	CHECK_EQ(tachyon_copy_choose(&st), TACHYON_COPY_CACHED); /* cached not measured yet */
	/* cached at 3 GB/s (~330 us a MiB) against streaming at 25 GB/s */
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 330000, 1 << 20, 0);
	int want = tachyon_copy_streaming_available() ? TACHYON_COPY_STREAMING : TACHYON_COPY_CACHED;
	CHECK_EQ(tachyon_copy_choose(&st), want);
	/* the method in use is averaged in ... */
	tachyon_copy_record(&st, TACHYON_COPY_STREAMING, 60000, 1 << 20, 0);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_STREAMING], 50000);
	/* ... a probe replaces: the placement changed, cached is fast again */
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 1600, 64 * 1024, 1);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_CACHED], 25600);
	CHECK_EQ(tachyon_copy_choose(&st), TACHYON_COPY_CACHED);
	/* streaming must be more than twice as fast: 1.6x is not enough */
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 80000, 1 << 20, 1);
	CHECK_EQ(tachyon_copy_choose(&st), TACHYON_COPY_CACHED);
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 100001, 1 << 20, 1);
	CHECK_EQ(tachyon_copy_choose(&st), want);
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 25600, 1 << 20, 1);
	/* no information: a clock that did not move, an empty copy */
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 0, 1 << 20, 1);
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, -5, 1 << 20, 1);
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 100, 0, 1);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_CACHED], 25600);
	/* extremes stay in range and never read as "not measured" */
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, 1, (size_t)1 << 40, 1);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_CACHED], 1);
	tachyon_copy_record(&st, TACHYON_COPY_CACHED, INT64_MAX / 2, 1, 1);
	CHECK_EQ(st.cost_ns_per_mib[TACHYON_COPY_CACHED], UINT32_MAX);
}

/* Large payloads through tachyon_copy_payload: content intact over many
 * copies (probes included), both methods measured, the counter moving. */
static void test_large_copies(void)
{
	size_t n = (size_t)1 << 20;
	uint8_t *src = malloc(n), *dst = aligned_alloc(64, n);
	REQUIRE(src && dst);
	tachyon_copy_state st = {{0, 0}, 0};
	for (int k = 0; k < 40; k++) {
		for (size_t i = 0; i < n; i += 4096)
			src[i] = pattern((uint64_t)k, i);
		src[n - 1] = (uint8_t)k;
		tachyon_copy_payload(&st, dst, src, n - (size_t)k);
		CHECK(memcmp(dst, src, n - (size_t)k) == 0);
	}
	CHECK_EQ(st.large_copies, 40);
	CHECK(st.cost_ns_per_mib[TACHYON_COPY_CACHED] != 0);
	if (tachyon_copy_streaming_available())
		CHECK(st.cost_ns_per_mib[TACHYON_COPY_STREAMING] != 0);
	/* below the threshold: plain memcpy, nothing learned */
	tachyon_copy_payload(&st, dst, src, TACHYON_COPY_LARGE - 1);
	CHECK_EQ(st.large_copies, 40);
	printf("1 MiB copies in one process: cached ~%u ns/MiB, streaming ~%u ns/MiB, now using %s\n",
	       st.cost_ns_per_mib[TACHYON_COPY_CACHED], st.cost_ns_per_mib[TACHYON_COPY_STREAMING],
	       tachyon_copy_choose(&st) == TACHYON_COPY_STREAMING ? "streaming" : "memcpy");
	free(src);
	free(dst);
}

/* Through a ring: try_send of large payloads of several sizes, each read
 * back through the consumer, whichever method wrote it. */
static void test_ring_round_trip(void)
{
	uint64_t cap = (uint64_t)4 << 20;
	size_t size = TACHYON_REGION_HEADER_SIZE + cap;
	uint8_t *mem = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	REQUIRE(mem);
	memset(mem, 0, size);
	struct tachyon_region_header *h = (struct tachyon_region_header *)(void *)mem;
	h->magic = TACHYON_MAGIC;
	h->version = TACHYON_WIRE_VERSION;
	h->capacity = (uint32_t)cap;
	h->msg_alignment = TACHYON_MSG_ALIGNMENT;
	h->state = TACHYON_STATE_READY;
	tachyon_producer p;
	tachyon_consumer c;
	REQUIRE(tachyon_producer_attach(&p, mem, size) == 0);
	REQUIRE(tachyon_consumer_attach(&c, mem, size) == 0);
	size_t max = (size_t)cap / 2 - 64;
	uint8_t *src = malloc(max);
	REQUIRE(src);
	int msgs = 0;
	for (int k = 0; k < 48; k++) {
		size_t n = TACHYON_COPY_LARGE + (size_t)k * 37 * 1024 + (size_t)k;
		if (n > max)
			n = max;
		for (size_t i = 0; i < n; i++)
			src[i] = pattern((uint64_t)k + 7, i);
		CHECK_EQ(tachyon_producer_try_send(&p, src, n, (uint32_t)k), 0);
		tachyon_msg m;
		CHECK_EQ(tachyon_consumer_try_peek(&c, &m), 0);
		CHECK_EQ(m.size, n);
		CHECK_EQ(m.type_id, (uint32_t)k);
		CHECK(memcmp(m.data, src, n) == 0);
		CHECK_EQ(tachyon_consumer_release_to(&c, m.end, 1), 0);
		tachyon_consumer_publish(&c);
		msgs++;
	}
	CHECK_EQ(p.copy.large_copies, (uint32_t)msgs);
	printf("ring round trip: %d large messages intact (256 KiB .. 2 MiB)\n", msgs);
	free(src);
	free(mem);
}

int main(void)
{
	test_streaming_bytes();
	test_choice();
	test_large_copies();
	test_ring_round_trip();
	return test_result("test_copy");
}

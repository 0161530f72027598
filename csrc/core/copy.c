/*
 * Copying a payload into the ring.
 *
 * Small payloads: memcpy. Large ones (TACHYON_COPY_LARGE and up) go one of
 * two ways, whichever is faster on this machine right now:
 *
 *   cached     memcpy. The destination lines were last read by the consumer,
 *              so every store first fetches its line back from the consumer's
 *              cache (a read-for-ownership). Cheap when the two CPUs share a
 *              cache; when they do not, each such fetch costs a cross-die
 *              round trip and a 1 MiB copy crawls (measured on this VM kind:
 *              3 GB/s against 40 GB/s, depending on the vCPU placement).
 *   streaming  non-temporal stores: lines are written whole, straight towards
 *              memory, without fetching them first; the consumer then reads
 *              them from memory (about 22-26 GB/s in either placement).
 *
 * The placement is not ours to see and changes without notice, so the choice
 * is measured: every large copy times itself, and every COPY_PROBE_EVERY-th
 * one does its first COPY_PROBE bytes the other way, so the estimate of the
 * method not in use stays fresh. Wrong guesses cost a few copies' time,
 * never correctness: both ways write the same bytes, and a streaming copy
 * ends with a store fence, so every byte is visible before the release store
 * of head that publishes it.
 */
#include "internal.h"

#include <string.h>

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define HAVE_STREAMING 1
#else
#define HAVE_STREAMING 0
#endif

/* Streaming also moves the consumer's reads from the producer's cache to
 * memory, a cost the producer's clock does not see; so streaming is chosen
 * only when it copies more than this many times faster. Measured: across
 * dies about 8x faster; within a shared cache about 1.1-1.8x slower, but
 * noisy enough that a plain comparison flipped to it now and then and cost
 * a third of the bandwidth. */
#define STREAMING_MARGIN 2u
/* Every this many large copies, one probes the other method. */
#define COPY_PROBE_EVERY 16u
/* The probe's share of that copy: large enough to time (tens of us), small
 * next to the message (a quarter of the smallest large copy). */
#define COPY_PROBE ((size_t)64 * 1024)

int tachyon_copy_streaming_available(void)
{
	return HAVE_STREAMING;
}

void tachyon_copy_streaming(void *dst, const void *src, size_t n)
{
#if HAVE_STREAMING
	uint8_t *d = dst;
	const uint8_t *s = src;
	/* Non-temporal stores need 16-byte aligned destinations; ring payloads
	 * are 64-byte aligned, but stay correct for any pointer. */
	size_t lead = (size_t)(-(uintptr_t)d & 15);
	if (lead > n)
		lead = n;
	memcpy(d, s, lead);
	d += lead;
	s += lead;
	n -= lead;
	size_t body = n & ~(size_t)63;
	for (size_t i = 0; i < body; i += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 48));
		_mm_stream_si128((__m128i *)(void *)(d + i), a);
		_mm_stream_si128((__m128i *)(void *)(d + i + 16), b);
		_mm_stream_si128((__m128i *)(void *)(d + i + 32), c);
		_mm_stream_si128((__m128i *)(void *)(d + i + 48), e);
	}
	memcpy(d + body, s + body, n - body);
	/* Non-temporal stores are not ordered with later stores: fence them
	 * before the caller's release store of head can publish the slot. */
	_mm_sfence();
#else
	memcpy(dst, src, n);
#endif
}

void tachyon_copy_record(tachyon_copy_state *st, int method, int64_t ns, size_t bytes, int probe)
{
	if (ns <= 0 || bytes == 0)
		return; /* the clock did not move: no information */
	uint64_t per_mib = (uint64_t)ns > (UINT64_MAX >> 20) ? UINT64_MAX
	                                                      : ((uint64_t)ns << 20) / bytes;
	if (per_mib == 0)
		per_mib = 1; /* 0 means "not measured" */
	if (per_mib > UINT32_MAX)
		per_mib = UINT32_MAX;
	uint32_t old = st->cost_ns_per_mib[method];
	/* A probe replaces its method's estimate (it is the only fresh news of
	 * a method not in use, and a stale one would keep us on the wrong
	 * side for many probes); the method in use is smoothed. */
	if (old == 0 || probe)
		st->cost_ns_per_mib[method] = (uint32_t)per_mib;
	else
		st->cost_ns_per_mib[method] = (uint32_t)(((uint64_t)old + per_mib) / 2);
}

int tachyon_copy_choose(const tachyon_copy_state *st)
{
	uint32_t cached = st->cost_ns_per_mib[TACHYON_COPY_CACHED];
	uint32_t streaming = st->cost_ns_per_mib[TACHYON_COPY_STREAMING];
	if (!HAVE_STREAMING || cached == 0 || streaming == 0)
		return TACHYON_COPY_CACHED;
	return (uint64_t)streaming * STREAMING_MARGIN < cached ? TACHYON_COPY_STREAMING
	                                                       : TACHYON_COPY_CACHED;
}

static void copy_with(int method, void *dst, const void *src, size_t n)
{
	if (method == TACHYON_COPY_STREAMING)
		tachyon_copy_streaming(dst, src, n);
	else
		memcpy(dst, src, n);
}

void tachyon_copy_large(tachyon_copy_state *st, void *dst, const void *src, size_t n)
{
	int best = tachyon_copy_choose(st);
	size_t done = 0;
	uint32_t k = st->large_copies++;
	if (HAVE_STREAMING && n > COPY_PROBE &&
	    (k % COPY_PROBE_EVERY == 0 || st->cost_ns_per_mib[!best] == 0)) {
		int other = !best;
		int64_t t0 = tachyon_now_ns();
		copy_with(other, dst, src, COPY_PROBE);
		tachyon_copy_record(st, other, tachyon_now_ns() - t0, COPY_PROBE, 1);
		done = COPY_PROBE;
	}
	int64_t t0 = tachyon_now_ns();
	copy_with(best, (uint8_t *)dst + done, (const uint8_t *)src + done, n - done);
	tachyon_copy_record(st, best, tachyon_now_ns() - t0, n - done, 0);
}

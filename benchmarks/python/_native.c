/*
 * _native.c - in-process floors for the Python benchmarks, loaded with ctypes.
 *
 * The Python benchmarks alternate a floor and a candidate in short rounds
 * inside the same two pinned processes, so that a change of vCPU placement
 * hits both alike. The floors that cannot be written in Python live here:
 *
 *   c2c_ping / c2c_pong      the bare cache-line round trip: one 64-bit word
 *                            each way, on lines 128 bytes apart, each written
 *                            by one side only (as benchmarks/c/bench_common.h
 *                            does: a single line bounced both ways lets the CPU
 *                            hand it over already owned, a shortcut no two-ring
 *                            transport can take)
 *   futex_ping / futex_pong  one 32-bit word; each side stores, FUTEX_WAKEs,
 *                            then FUTEX_WAITs for the answer (no spinning)
 *   memcpy_ns                single-thread memcpy, n bytes, iters times
 *   ring_produce /           a bare single-producer single-consumer ring of
 *   ring_consume             fixed slots between two processes: the producer
 *                            copies a payload in, the consumer reads every
 *                            8-byte word of it (as the Python consumer's numpy
 *                            sum does); counters published per message, both
 *                            sides spin. What moving the bytes between these
 *                            two CPUs costs with nothing else in the way.
 *
 * The timed loops run entirely in C: ctypes' call overhead is paid once per
 * round, never per sample. Every wait gives up after ~10 s and returns -1,
 * so a lost peer never hangs a benchmark run.
 *
 * Built by benchmarks/python/_common.py: cc -O3 -march=native -shared -fPIC.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GIVE_UP_NS INT64_C(10000000000)

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Spin until *w == want; -1 after GIVE_UP_NS. The clock is read only every
 * 64Ki spins, so it is not in the hot loop. */
static int spin_until64(_Atomic uint64_t *w, uint64_t want)
{
	uint32_t k = 0;
	int64_t start = 0;
	while (atomic_load_explicit(w, memory_order_acquire) != want) {
		relax();
		if ((++k & 0xFFFF) == 0) {
			int64_t t = now_ns();
			if (!start)
				start = t;
			else if (t - start > GIVE_UP_NS)
				return -1;
		}
	}
	return 0;
}

/* w[0] is the ping word, w[16] (128 bytes on) the pong word. Ping: store
 * the next sequence number, wait for the echo of it. *seq is the caller's
 * running counter (kept across rounds; both sides count alike). */
int c2c_ping(_Atomic uint64_t *w, uint64_t *seq, int64_t *samples, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = *seq + 1;
		int64_t t0 = now_ns();
		atomic_store_explicit(&w[0], v, memory_order_release);
		if (spin_until64(&w[16], v) < 0)
			return -1;
		samples[i] = now_ns() - t0;
		*seq = v;
	}
	return 0;
}

int c2c_pong(_Atomic uint64_t *w, uint64_t *seq, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = *seq + 1;
		if (spin_until64(&w[0], v) < 0)
			return -1;
		atomic_store_explicit(&w[16], v, memory_order_release);
		*seq = v;
	}
	return 0;
}

/* ---- futex ping-pong: sleep, never spin ------------------------------ */

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts)
{
	/* Shared (not _PRIVATE): the two processes map the word at different
	 * addresses. */
	return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

/* Sleep while *w == cur; -1 after GIVE_UP_NS. */
static int sleep_while32(_Atomic uint32_t *w, uint32_t cur)
{
	int64_t start = now_ns();
	struct timespec ts = {1, 0};
	while (atomic_load_explicit(w, memory_order_acquire) == cur) {
		futex(w, FUTEX_WAIT, cur, &ts); /* EAGAIN / EINTR / ETIMEDOUT: look again */
		if (now_ns() - start > GIVE_UP_NS)
			return -1;
	}
	return 0;
}

int futex_ping(_Atomic uint32_t *w, uint32_t *seq, int64_t *samples, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t out = *seq + 1;
		int64_t t0 = now_ns();
		atomic_store_explicit(w, out, memory_order_release);
		futex(w, FUTEX_WAKE, 1, NULL);
		if (sleep_while32(w, out) < 0)
			return -1;
		samples[i] = now_ns() - t0;
		*seq = out + 1;
	}
	return 0;
}

int futex_pong(_Atomic uint32_t *w, uint32_t *seq, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t in = *seq + 1;
		if (sleep_while32(w, *seq) < 0)
			return -1;
		if (atomic_load_explicit(w, memory_order_acquire) != in)
			return -1; /* out of step: a bug in the harness */
		atomic_store_explicit(w, in + 1, memory_order_release);
		futex(w, FUTEX_WAKE, 1, NULL);
		*seq = in + 1;
	}
	return 0;
}

/* ---- memcpy ----------------------------------------------------------- */

/* Nanoseconds for `iters` copies of n bytes (one warm-up copy first). */
int64_t memcpy_ns(void *dst, const void *src, size_t n, int iters)
{
	memcpy(dst, src, n);
	__asm__ __volatile__("" ::"r"(dst) : "memory");
	int64_t t0 = now_ns();
	for (int i = 0; i < iters; i++) {
		memcpy(dst, src, n);
		/* keep the copy: the compiler may not drop or merge it */
		__asm__ __volatile__("" ::"r"(dst) : "memory");
	}
	return now_ns() - t0;
}

/* ---- bare ring -------------------------------------------------------- */

/* ctl[0] head (producer), ctl[16] tail (consumer), ctl[32] stop flag: three
 * words on lines 128 bytes apart. Slots of `slot` bytes at data. */

static int stopped(_Atomic uint64_t *ctl)
{
	return atomic_load_explicit(&ctl[32], memory_order_relaxed) != 0;
}

/* Until the stop flag is set: copy `payload` into the next free slot and
 * publish it. Returns the number of messages produced. */
int64_t ring_produce(_Atomic uint64_t *ctl, uint8_t *data, uint64_t nslots, uint64_t slot,
                     const uint8_t *payload)
{
	uint64_t head = atomic_load_explicit(&ctl[0], memory_order_relaxed);
	int64_t n = 0;
	while (!stopped(ctl)) {
		/* acquire: the consumer's tail store says it is done reading the slot */
		while (head - atomic_load_explicit(&ctl[16], memory_order_acquire) >= nslots) {
			if (stopped(ctl))
				return n;
			relax();
		}
		memcpy(data + (head % nslots) * slot, payload, slot);
		/* release: publishes the slot's bytes to the consumer */
		atomic_store_explicit(&ctl[0], ++head, memory_order_release);
		n++;
	}
	return n;
}

/* Consume for at least min_ns (then set the stop flag); *ns gets the time
 * from the first message to the last. Returns the number of messages. */
int64_t ring_consume(_Atomic uint64_t *ctl, const uint8_t *data, uint64_t nslots, uint64_t slot,
                     int64_t min_ns, int64_t *ns, uint64_t *checksum)
{
	uint64_t tail = atomic_load_explicit(&ctl[16], memory_order_relaxed), sum = 0;
	int64_t n = 0, t0 = 0, t = 0, start = now_ns();
	for (;;) {
		/* acquire: the producer's head store published the slot's bytes */
		while (atomic_load_explicit(&ctl[0], memory_order_acquire) == tail) {
			relax();
			if (now_ns() - start > GIVE_UP_NS)
				return -1;
		}
		const uint64_t *w = (const uint64_t *)(data + (tail % nslots) * slot);
		uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
		for (; i + 4 <= slot / 8; i += 4) { /* four chains: vectorizes, as numpy's sum does */
			s0 += w[i];
			s1 += w[i + 1];
			s2 += w[i + 2];
			s3 += w[i + 3];
		}
		for (; i < slot / 8; i++)
			s0 += w[i];
		sum += s0 + s1 + s2 + s3;
		/* release: hands the slot back to the producer */
		atomic_store_explicit(&ctl[16], ++tail, memory_order_release);
		t = now_ns();
		if (n++ == 0)
			t0 = t;
		if (t - t0 >= min_ns && n > 2)
			break;
	}
	atomic_store_explicit(&ctl[32], 1, memory_order_relaxed);
	*ns = t - t0;
	*checksum = sum;
	return n - 1; /* messages after the first, over t - t0 */
}

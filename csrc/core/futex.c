/*
 * futex.c - sleeping on a 32-bit word of the shared region.
 *
 * The words (the consumer wait word at 384, the producer wait word at 448)
 * live in a MAP_SHARED mapping used by two processes, so the futex must be
 * the shared kind: FUTEX_WAIT / FUTEX_WAKE, never the _PRIVATE variants,
 * whose key is the (process-local) virtual address and would never match a
 * waker in the other process.
 *
 * Elsewhere (macOS, the BSDs) there is no portable cross-process futex; the
 * fallback polls the word with short sleeps and FUTEX_WAKE becomes a no-op.
 * Callers never depend on a wake for correctness (every sleep is bounded by
 * the watchdog), only for latency.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "atomics.h"
#include "internal.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Poll period of the fallback: short enough for latency, long enough not to
 * burn a core (2 vCPUs in CI). */
#define POLL_NS INT64_C(100000)

/* Sleep in short steps while *word == expected: the fallback where the
 * kernel has no (usable) futex. Same results as the futex path. */
static int poll_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	int64_t deadline = tachyon_now_ns() + timeout_ns;
	for (;;) {
		/* acquire: a change of the word is the peer's signal; pairs with the
		 * peer's compare-and-swap (seq_cst) that changed it. */
		if (tachyon_atomic_load_acquire32(word) != expected)
			return 0;
		int64_t left = deadline - tachyon_now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		struct timespec ts = tachyon_timespec(left < POLL_NS ? left : POLL_NS);
		if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
			return -EINTR;
	}
}

/* One FUTEX_WAIT of either kind (op: FUTEX_WAIT or FUTEX_WAIT_PRIVATE). */
static int futex_wait_op(uint32_t *word, int op, uint32_t expected, int64_t timeout_ns)
{
	if (timeout_ns <= 0) {
		/* Contract says > 0; answer "try once" rather than sleep forever. */
		/* acquire: as in poll_wait. */
		return tachyon_atomic_load_acquire32(word) != expected ? 0 : -ETIMEDOUT;
	}
#if defined(__linux__)
	/* FUTEX_WAIT takes a relative timeout (CLOCK_MONOTONIC). The kernel
	 * compares *word with expected atomically with queueing us, so a wake
	 * that comes after the peer changed the word is never lost. */
	struct timespec ts = tachyon_timespec(timeout_ns);
	int saved = errno;
	long rc = syscall(SYS_futex, word, op, expected, &ts, NULL, 0);
	int err = rc == 0 ? 0 : errno;
	errno = saved; /* the result is the return value, never errno */
	switch (err) {
	case 0:
	case EAGAIN: /* the word already differed: as good as a wake */
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default:
		/* ENOSYS (a seccomp filter), EFAULT, EINVAL: never return an error
		 * the caller's contract does not know; poll instead. */
		return poll_wait(word, expected, timeout_ns);
	}
#else
	(void)op;
	return poll_wait(word, expected, timeout_ns);
#endif
}

static void futex_wake_op(uint32_t *word, int op, int n)
{
#if defined(__linux__)
	int saved = errno;
	/* Errors are ignored: a failed wake only delays a sleeper until its
	 * timeout. */
	(void)syscall(SYS_futex, word, op, n, NULL, NULL, 0);
	errno = saved;
#else
	(void)word;
	(void)op;
	(void)n;
#endif
}

#if !defined(__linux__)
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#endif

int tachyon_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	return futex_wait_op(word, FUTEX_WAIT, expected, timeout_ns);
}

void tachyon_futex_wake(uint32_t *word, int n)
{
	futex_wake_op(word, FUTEX_WAKE, n);
}

/* The process-private words of tachyon.h. The _PRIVATE futex ops key on the
 * virtual address, which is right here: both threads share this mapping. */

void tachyon_word_store(uint32_t *word, uint32_t value)
{
	/* release: the storing thread's earlier writes are visible to a thread
	 * whose tachyon_word_load sees this value. */
	tachyon_atomic_store_release32(word, value);
}

uint32_t tachyon_word_load(const uint32_t *word)
{
	/* acquire: pairs with the release in tachyon_word_store. */
	return tachyon_atomic_load_acquire32(word);
}

int tachyon_word_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	return futex_wait_op(word, FUTEX_WAIT_PRIVATE, expected, timeout_ns);
}

void tachyon_word_wake_all(uint32_t *word)
{
	futex_wake_op(word, FUTEX_WAKE_PRIVATE, INT32_MAX);
}

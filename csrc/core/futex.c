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

static struct timespec ns_to_timespec(int64_t ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	return ts;
}

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
		struct timespec ts = ns_to_timespec(left < POLL_NS ? left : POLL_NS);
		if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
			return -EINTR;
	}
}

int tachyon_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns)
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
	struct timespec ts = ns_to_timespec(timeout_ns);
	int saved = errno;
	long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
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
	return poll_wait(word, expected, timeout_ns);
#endif
}

void tachyon_futex_wake(uint32_t *word, int n)
{
#if defined(__linux__)
	int saved = errno;
	/* Errors are ignored: a failed wake only delays a sleeper until its
	 * watchdog timeout. */
	(void)syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
	errno = saved;
#else
	(void)word;
	(void)n;
#endif
}

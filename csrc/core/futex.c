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
#include <stdlib.h>
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

#if defined(__linux__)
/* What a futex wait's return value and errno mean to our callers: 0 (woken,
 * or a word already differed: as good as a wake), -ETIMEDOUT, -EINTR, or
 * WAIT_OTHER for an error the caller handles its own way. */
#define WAIT_OTHER 1
static int wait_result(long rc, int err)
{
	if (rc >= 0)
		return 0;
	switch (err) {
	case EAGAIN:
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default:
		return WAIT_OTHER;
	}
}
#endif

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
	int r = wait_result(rc, errno);
	errno = saved; /* the result is the return value, never errno */
	if (r != WAIT_OTHER)
		return r;
	/* ENOSYS (a seccomp filter), EFAULT, EINVAL: never return an error the
	 * caller's contract does not know; poll instead. */
	return poll_wait(word, expected, timeout_ns);
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

/* Sleeping on several shared words at once: futex_waitv(2), Linux 5.16+.
 * Without it (an older kernel, a seccomp filter that refuses it, another
 * system, or TACHYON_NO_FUTEX_WAITV set in the environment) the caller
 * gets -ENOSYS and falls back to one word at a time. */
#if defined(__linux__) && defined(SYS_futex_waitv) && defined(FUTEX_32)
#define HAVE_FUTEX_WAITV 1
#endif

/* 0 unknown, 1 usable, 2 not: cached after the first answer. */
static uint32_t waitv_state;

int tachyon_futex_waitv_usable(void)
{
#ifdef HAVE_FUTEX_WAITV
	/* Relaxed: a cache of an answer every thread computes alike. */
	uint32_t s = tachyon_atomic_load_relaxed32(&waitv_state);
	if (s == 0) {
		const char *off = getenv("TACHYON_NO_FUTEX_WAITV");
		s = off && *off && *off != '0' ? 2 : 1;
		tachyon_atomic_store_relaxed32(&waitv_state, s);
	}
	return s == 1;
#else
	return 0;
#endif
}

int tachyon_futex_wait_any(uint32_t *const *words, const uint32_t *expected, size_t n,
                           int64_t timeout_ns)
{
#ifdef HAVE_FUTEX_WAITV
	if (n == 0 || n > TACHYON_FUTEX_WAIT_ANY_MAX || !tachyon_futex_waitv_usable())
		return -ENOSYS;
	struct futex_waitv v[TACHYON_FUTEX_WAIT_ANY_MAX];
	for (size_t i = 0; i < n; i++) {
		/* FUTEX_32 without FUTEX_PRIVATE_FLAG: the shared kind, as above. */
		v[i] = (struct futex_waitv){.val = expected[i],
		                            .uaddr = (uint64_t)(uintptr_t)words[i],
		                            .flags = FUTEX_32};
	}
	/* futex_waitv takes an absolute timeout on the clock it is given. */
	struct timespec ts = tachyon_timespec(tachyon_now_ns() + (timeout_ns > 0 ? timeout_ns : 0));
	int saved = errno;
	long rc = syscall(SYS_futex_waitv, v, (unsigned)n, 0, &ts, CLOCK_MONOTONIC);
	int r = wait_result(rc, errno);
	errno = saved;
	if (r != WAIT_OTHER)
		return r;
	/* ENOSYS (kernel < 5.16) or EPERM (seccomp): never again. EFAULT or
	 * EINVAL: the caller's single-word fallback copes as well. */
	/* Relaxed: as in tachyon_futex_waitv_usable. */
	tachyon_atomic_store_relaxed32(&waitv_state, 2);
	return -ENOSYS;
#else
	(void)words;
	(void)expected;
	(void)n;
	(void)timeout_ns;
	return -ENOSYS;
#endif
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

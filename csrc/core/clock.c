/*
 * Time and the caller's terms for waiting: the clock, deadlines, naps, and
 * what a tachyon_wait says about interrupts and EINTR. Every blocking loop
 * of the core (the bus's waits, the handshake's) asks these, so the rules
 * are written once.
 */
#include <time.h>

#include "internal.h"

int64_t tachyon_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tachyon_deadline_after(int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return TACHYON_FOREVER;
	return tachyon_now_ns() + timeout_ns;
}

struct timespec tachyon_timespec(int64_t ns)
{
	struct timespec ts;
	if (ns < 0)
		ns = 0;
	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	return ts;
}

int tachyon_nap(int64_t ns)
{
	struct timespec ts = tachyon_timespec(ns);
	return clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL) == EINTR ? -EINTR : 0;
}

int tachyon_wait_interrupted(const tachyon_wait *w)
{
	return w && w->interrupted && w->interrupted(w->arg);
}

int tachyon_wait_eintr(const tachyon_wait *w)
{
	/* Without a callback the caller asked to hear of a signal at once; with
	 * one, a signal it does not care about is no reason to stop. */
	if (!w || !w->interrupted)
		return -EINTR;
	return w->interrupted(w->arg) ? -EINTR : 0;
}

int tachyon_wait_check(const tachyon_wait *w, int64_t now, int64_t *last_check, int woke)
{
	if (tachyon_deadline_passed(w ? w->deadline_ns : TACHYON_FOREVER, now))
		return -ETIMEDOUT;
	if (w && w->interrupted && (woke || now - *last_check >= TACHYON_WATCHDOG_NS)) {
		*last_check = now;
		if (w->interrupted(w->arg))
			return -EINTR;
	}
	return 0;
}

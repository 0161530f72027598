/*
 * Words for failures: tachyon_strerror for every code, and the per-thread
 * sentence that says what a peer did wrong during a handshake.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *tachyon_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case TACHYON_ECLOSED:
		return "this end of the bus was closed";
	case TACHYON_EPEERCLOSED:
		return "the peer closed the bus";
	case TACHYON_EPEERDEAD:
		return "the peer process exited without closing the bus";
	case TACHYON_ECORRUPT:
		return "the ring is corrupt (fatal): the peer wrote an index or header that breaks the wire format";
	case TACHYON_EABI:
		return "the peer speaks another wire format (magic, version, alignment or flags differ)";
	case TACHYON_EHANDSHAKE:
		return "the handshake failed: the peer sent a bad message, descriptor or region";
	case TACHYON_EFORKED:
		return "bus inherited across fork(); open a new bus in the child";
	case TACHYON_ENEVERFITS:
		return "the message can never fit in this ring at the current offset";
	case TACHYON_ESTUCK:
		return "the consumer (a tachyon-ipc 0.5.1 peer) sleeps and publishes its tail only every "
		       "32 messages, so it will never free room; use capacity >= 64 x the largest slot";
	case TACHYON_EBUSYPATH:
		return "a live listener already holds this socket path";
	case TACHYON_EROLE:
		return "the role is taken: the other end of the bus holds it, or this end has the other "
		       "role; a bus carries one direction";
	case EAGAIN:
		return "no room or no message right now";
	case ETIMEDOUT:
		return "the timeout expired";
	default:
		return strerror(err);
	}
}

/* One sentence per failure, for the caller's error message: the return codes
 * say which kind of failure, this says what exactly the peer sent. Per
 * thread, because a connect runs on its caller's thread from start to end,
 * and two threads may connect at once. Never the result of anything. */
static _Thread_local char detail[192];

int tachyon_detail_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	return rc;
}

void tachyon_detail_clear(void)
{
	detail[0] = '\0';
}

const char *tachyon_handshake_detail(void)
{
	return detail;
}

/* Error sentences and the clock. */
#include <string.h>
#include <time.h>

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
	case EAGAIN:
		return "no room or no message right now";
	case ETIMEDOUT:
		return "the timeout expired";
	default:
		return strerror(err);
	}
}

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

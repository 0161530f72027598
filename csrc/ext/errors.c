/*
 * The one map from an error code to a Python exception: a table of rows
 * (code, where it was met, an optional condition, exception, sentence) and
 * tx_raise, which takes the first row that matches. Rows for a place come
 * before the rows for any place, so a place overrides the general wording;
 * a place whose last row matches every code (listen, connect) never falls
 * through to the general rows.
 *
 * Sentences are templates: {call} the call's name, {what} the core's
 * sentence for the code (tachyon_strerror), {why} what the peer did wrong
 * (the ring's fatal reason, or on connect the handshake detail), {path} the
 * socket path's repr, {size} {capacity} {max_payload} {need} {limit} {node}
 * numbers, {held} the role this end has, {verb} what the call wanted to do,
 * {peer_verb} what the other end already does, {other} what a second bus
 * would carry.
 * {timeout} the call's timeout in seconds, {in_use} the bytes of the ring
 * the consumer has not released (as the producer sees them now),
 * {unreleased} the same for a consumer that is gone, with the message count
 * where it is known (the exception carries both as attributes).
 */
#include "errors.h"

#include <string.h>

enum {
	X_TACHYON,
	X_HANDSHAKE,
	X_ABI,
	X_TIMEOUT,
	X_FULL,
	X_CONNECT_TIMEOUT,
	X_CLOSED,
	X_PEER_CLOSED,
	X_PEER_DEAD,
	X_CORRUPT,
	X_ROLE,
	X_VALUE,
	X_MEMORY,
};

/* conditions */
enum {
	W_ANY = 0,
	W_WHY = 1,   /* {why} has a sentence */
	W_HUGE = 2,  /* the payload fits in no ring at all, whatever its capacity */
	W_OWN = 4,   /* this end already has a role (else the other end holds the one asked for) */
	W_WAITED = 8, /* the call had a timeout and waited it out */
	W_SOMEWHERE = 16, /* the payload fits this ring, but not at the current offset */
	W_PRODUCER = 32, /* a producer end: its peer is the consumer, which may have left data unread */
};

#define ANY_CODE 0
#define ANY_PLACE ((tx_where)-1)

typedef struct {
	int err;            /* positive code, or ANY_CODE */
	tx_where in;        /* or ANY_PLACE */
	unsigned char when;
	unsigned char exc;
	const char *text;
} tx_errrow;

static const char NO_ROOM_WAITED[] =
	"{call}: no room for a {size}-byte message within {timeout} s: the consumer has not "
	"released {in_use} of the ring's {capacity} bytes (it is behind, idle, or holds zero-copy "
	"messages); a longer timeout (or timeout=None) waits longer, a larger capacity buffers more";
static const char NO_ROOM_NOW[] =
	"{call}: no room for a {size}-byte message now: the consumer has not released {in_use} of "
	"the ring's {capacity} bytes yet; pass a timeout (or timeout=None) to wait for the consumer";
static const char BUSY_WAITED[] =
	"{call}: another thread's call on this producer end held it for the whole {timeout} s "
	"timeout; nothing was sent";
static const char BUSY_NOW[] =
	"{call}: another thread's call on this producer end is in progress; nothing was sent; pass "
	"a timeout (or timeout=None) to wait for it";
static const char NO_MESSAGE[] = "{call}: no message within the timeout";
static const char PATH_TOO_LONG[] = "socket path {path} is longer than the platform limit";
static const char NO_FD_LEFT[] =
	"{what}: this process has no file descriptor left (its limit, RLIMIT_NOFILE, is what "
	"`ulimit -n` shows); raise the limit or close descriptors";
static const char NO_FILE_LEFT[] =
	"{what}: the system-wide table of open files is full (fs.file-max)";

static const tx_errrow rows[] = {
	/* before a call starts, and while it waits for its family */
	{TACHYON_ECLOSED, TX_IN_ENTRY, W_ANY, X_CLOSED,
	 "this end of the bus is closed; open a new bus to go on"},
	{TACHYON_ECLOSED, TX_IN_FAMILY, W_ANY, X_CLOSED,
	 "this end of the bus was closed while the call waited"},
	{TACHYON_EROLE, TX_IN_ROLE, W_OWN, X_ROLE,
	 "this end is the {held} of its bus and cannot {verb}; open a second bus for the other "
	 "direction"},
	{TACHYON_EROLE, TX_IN_ROLE, W_ANY, X_ROLE,
	 "the other end already {peer_verb} on this bus; a bus carries one direction: open a "
	 "second bus for {other}"},

	/* sending */
	{EAGAIN, TX_IN_SEND, W_WAITED, X_FULL, NO_ROOM_WAITED},
	{EAGAIN, TX_IN_SEND, W_ANY, X_FULL, NO_ROOM_NOW},
	{ETIMEDOUT, TX_IN_SEND, W_WAITED, X_FULL, NO_ROOM_WAITED},
	{ETIMEDOUT, TX_IN_SEND, W_ANY, X_FULL, NO_ROOM_NOW},
	{TX_ELATE, TX_IN_SEND, W_WAITED, X_FULL, BUSY_WAITED},
	{TX_ELATE, TX_IN_SEND, W_ANY, X_FULL, BUSY_NOW},
	{TACHYON_ENEVERFITS, TX_IN_SEND, W_HUGE, X_VALUE,
	 "a payload of {size} bytes can never fit in a tachyon ring (the largest capacity, 2**31, "
	 "carries at most {limit} bytes); split it into smaller messages"},
	{TACHYON_ENEVERFITS, TX_IN_SEND, W_SOMEWHERE, X_VALUE,
	 "a {size}-byte payload fits this {capacity}-byte ring only at some write positions, not "
	 "at the current one (max_payload {max_payload} is the most that fits at every position); "
	 "keep payloads within max_payload, or open the bus with capacity >= {need} to send this "
	 "one at any position"},
	{TACHYON_ENEVERFITS, TX_IN_SEND, W_ANY, X_VALUE,
	 "a payload of {size} bytes can never fit in this ring (capacity {capacity}, max_payload "
	 "{max_payload}); open the bus with capacity >= {need}"},
	{EBUSY, TX_IN_SEND, W_ANY, X_TACHYON, "{call}: a zero-copy reservation is open"},

	/* receiving */
	{EAGAIN, TX_IN_RECV, W_ANY, X_TIMEOUT, NO_MESSAGE},
	{ETIMEDOUT, TX_IN_RECV, W_ANY, X_TIMEOUT, NO_MESSAGE},
	{TX_ELATE, TX_IN_RECV, W_ANY, X_TIMEOUT, NO_MESSAGE},

	/* opening the listening socket: every code has a listen sentence */
	{TACHYON_EBUSYPATH, TX_IN_LISTEN, W_ANY, X_HANDSHAKE,
	 "cannot listen on {path}: a live listener already holds this path; pick another path or "
	 "stop the other listener"},
	{EEXIST, TX_IN_LISTEN, W_ANY, X_HANDSHAKE,
	 "cannot listen on {path}: it exists and is a symlink or not a socket; remove it or pick "
	 "another path"},
	{ENAMETOOLONG, TX_IN_LISTEN, W_ANY, X_VALUE, PATH_TOO_LONG},
	{EINVAL, TX_IN_LISTEN, W_ANY, X_VALUE, "cannot listen on {path} with capacity {capacity}: {what}"},
	{ENOMEM, TX_IN_LISTEN, W_ANY, X_MEMORY, NULL},
	{EMFILE, TX_IN_LISTEN, W_ANY, X_HANDSHAKE, "cannot listen on {path}: {fds}"},
	{ENFILE, TX_IN_LISTEN, W_ANY, X_HANDSHAKE, "cannot listen on {path}: {files}"},
	{ANY_CODE, TX_IN_LISTEN, W_ANY, X_HANDSHAKE, "cannot listen on {path}: {what}"},

	/* waiting for the peer: every code has a sentence, a HandshakeError
	 * unless it is a timeout or memory */
	{ETIMEDOUT, TX_IN_ACCEPT, W_ANY, X_TIMEOUT, "listen({path}): no peer connected within the timeout"},
	{ENOMEM, TX_IN_ACCEPT, W_ANY, X_MEMORY, NULL},
	{EMFILE, TX_IN_ACCEPT, W_ANY, X_HANDSHAKE, "listen({path}): accepting the peer: {fds}"},
	{ENFILE, TX_IN_ACCEPT, W_ANY, X_HANDSHAKE, "listen({path}): accepting the peer: {files}"},
	{ANY_CODE, TX_IN_ACCEPT, W_ANY, X_HANDSHAKE, "listen({path}): accepting the peer: {what}"},

	/* connecting: every code has a connect sentence */
	{ETIMEDOUT, TX_IN_CONNECT, W_WHY, X_CONNECT_TIMEOUT,
	 "connect({path}): no listener within the timeout: {why}"},
	{ETIMEDOUT, TX_IN_CONNECT, W_ANY, X_CONNECT_TIMEOUT,
	 "connect({path}): no listener accepted and completed the handshake within the timeout; is "
	 "the listener running (Bus.listen) on this path?"},
	{ENAMETOOLONG, TX_IN_CONNECT, W_ANY, X_VALUE, PATH_TOO_LONG},
	{EMFILE, TX_IN_CONNECT, W_ANY, X_HANDSHAKE, "connect({path}): {fds}"},
	{ENFILE, TX_IN_CONNECT, W_ANY, X_HANDSHAKE, "connect({path}): {files}"},
	{TACHYON_EABI, TX_IN_CONNECT, W_WHY, X_ABI,
	 "connect({path}): the listener speaks another wire format: {why}"},
	{TACHYON_EHANDSHAKE, TX_IN_CONNECT, W_WHY, X_HANDSHAKE,
	 "connect({path}): bad handshake from the listener: {why}"},
	{TACHYON_EABI, TX_IN_CONNECT, W_ANY, X_ABI, "connect({path}): {what}"},
	{ANY_CODE, TX_IN_CONNECT, W_ANY, X_HANDSHAKE, "connect({path}): {what}"},

	/* set_numa_node */
	{EINVAL, TX_IN_NUMA, W_ANY, X_VALUE, "NUMA node {node} does not exist on this machine"},
	{ENODEV, TX_IN_NUMA, W_ANY, X_VALUE, "NUMA node {node} does not exist on this machine"},
	{ENOENT, TX_IN_NUMA, W_ANY, X_VALUE, "NUMA node {node} does not exist on this machine"},

	/* any call */
	{TACHYON_ECLOSED, ANY_PLACE, W_ANY, X_CLOSED, "{call}: this end of the bus is closed"},
	{TACHYON_EPEERCLOSED, ANY_PLACE, W_PRODUCER, X_PEER_CLOSED,
	 "{call}: the consumer closed the bus; {unreleased}"},
	{TACHYON_EPEERDEAD, ANY_PLACE, W_PRODUCER, X_PEER_DEAD,
	 "{call}: the consumer process exited without closing the bus; {unreleased}; reconnect to "
	 "a new peer"},
	{TACHYON_EPEERCLOSED, ANY_PLACE, W_ANY, X_PEER_CLOSED,
	 "{call}: the peer closed the bus (everything it sent was delivered)"},
	{TACHYON_EPEERDEAD, ANY_PLACE, W_ANY, X_PEER_DEAD,
	 "{call}: the peer process exited without closing the bus (everything it published was "
	 "delivered); reconnect to a new peer"},
	{TACHYON_ECORRUPT, ANY_PLACE, W_WHY, X_CORRUPT, "{call}: {what}: {why}"},
	{TACHYON_ECORRUPT, ANY_PLACE, W_ANY, X_CORRUPT, "{call}: {what}"},
	{TACHYON_EABI, ANY_PLACE, W_ANY, X_ABI, "{call}: {what}"},
	{TACHYON_EHANDSHAKE, ANY_PLACE, W_ANY, X_HANDSHAKE, "{call}: {what}"},
	{TACHYON_EROLE, ANY_PLACE, W_ANY, X_ROLE, "{call}: {what}"},
	{TACHYON_EFORKED, ANY_PLACE, W_ANY, X_TACHYON,
	 "bus inherited across fork(); open a new bus in the child"},
	{EAGAIN, ANY_PLACE, W_ANY, X_FULL,
	 "{call}: no room in the ring within the timeout (pass timeout=None to wait for room)"},
	{ETIMEDOUT, ANY_PLACE, W_ANY, X_TIMEOUT, "{call}: the timeout expired before anything happened"},
	{ENAMETOOLONG, ANY_PLACE, W_ANY, X_VALUE,
	 "{call}: the socket path is longer than the platform limit (107 bytes)"},
	{EINVAL, ANY_PLACE, W_ANY, X_VALUE, "{call}: {what}"},
	{ENOMEM, ANY_PLACE, W_ANY, X_MEMORY, NULL},
	{ANY_CODE, ANY_PLACE, W_ANY, X_TACHYON, "{call}: {what}"},
};

static PyObject *exception_of(tx_state *st, int x)
{
	switch (x) {
	case X_HANDSHAKE: return st->HandshakeError;
	case X_ABI: return st->AbiMismatchError;
	case X_TIMEOUT: return st->TachyonTimeoutError;
	case X_FULL: return st->BusFullError;
	case X_CONNECT_TIMEOUT: return st->ConnectTimeoutError;
	case X_CLOSED: return st->BusClosedError;
	case X_PEER_CLOSED: return st->PeerClosedError;
	case X_PEER_DEAD: return st->PeerDeadError;
	case X_CORRUPT: return st->RingCorruptError;
	case X_ROLE: return st->RoleError;
	case X_VALUE: return PyExc_ValueError;
	default: return st->TachyonError;
	}
}

/* The smallest ring in which a payload of size bytes fits at every offset:
 * its slot (header + payload, rounded up to the alignment) is at most half
 * the capacity (ABI.md, "Placement"). */
static uint64_t capacity_for(size_t size)
{
	/* Past the largest ring no capacity helps; stopping here also keeps
	 * the doubling below from wrapping at 2**64 (it would never end). */
	if ((uint64_t)size > TACHYON_MAX_CAPACITY)
		return UINT64_MAX;
	uint64_t slot = ((uint64_t)size + sizeof(struct tachyon_slot_header) + TACHYON_MSG_ALIGNMENT - 1) &
	                ~(uint64_t)(TACHYON_MSG_ALIGNMENT - 1);
	uint64_t cap = TACHYON_MIN_CAPACITY;
	while (cap < 2 * slot)
		cap <<= 1;
	return cap;
}

/* A growing text; on overflow it keeps what fit (messages are short). */
typedef struct {
	char buf[1024];
	size_t len;
} tx_text;

static void put(tx_text *t, const char *s, size_t n)
{
	if (n > sizeof t->buf - 1 - t->len)
		n = sizeof t->buf - 1 - t->len;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void put_str(tx_text *t, const char *s) { put(t, s, strlen(s)); }

static void put_u64(tx_text *t, unsigned long long v)
{
	char num[24];
	put(t, num, (size_t)snprintf(num, sizeof num, "%llu", v));
}

static void put_repr(tx_text *t, PyObject *o)
{
	PyObject *r = o ? PyObject_Repr(o) : NULL;
	const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
	if (!s)
		PyErr_Clear();
	put_str(t, s ? s : "?");
	Py_XDECREF(r);
}

/* What a producer sent that its departed consumer never gave back. */
typedef struct {
	int known;               /* tachyon_bus_unreleased answered */
	int exact;               /* ... with the message count too */
	uint64_t bytes, messages;
} tx_unreleased;

static void put_unreleased(tx_text *t, const tx_unreleased *u)
{
	if (!u->known) {
		put_str(t, "what it left unreleased is unknown");
	} else if (u->bytes == 0) {
		put_str(t, "it had released everything this end sent");
	} else if (u->exact) {
		put_u64(t, u->messages);
		put_str(t, u->messages == 1 ? " message (" : " messages (");
		put_u64(t, u->bytes);
		put_str(t, " bytes of the ring) this end sent were never released by it");
	} else {
		put_u64(t, u->bytes);
		put_str(t, " bytes of the ring this end sent were never released by it (the message "
		           "count is unknown: a 0.5.1 consumer reports its position only every 32 "
		           "messages)");
	}
}

/* Fill the template's placeholders (see the top of this file). */
static void expand(tx_text *t, const char *tpl, int e, const tx_errctx *cx, const char *why,
                   const tx_unreleased *u)
{
	const char *p = tpl;
	while (*p) {
		const char *open = strchr(p, '{'), *close;
		size_t n;
		if (!open) {
			put_str(t, p);
			return;
		}
		put(t, p, (size_t)(open - p));
		close = strchr(open, '}');
		n = (size_t)(close - open - 1);
#define IS(name) (n == sizeof name - 1 && memcmp(open + 1, name, n) == 0)
		if (IS("call"))
			put_str(t, cx->call ? cx->call : "");
		else if (IS("what"))
			put_str(t, tachyon_strerror(e));
		else if (IS("fds"))
			expand(t, NO_FD_LEFT, e, cx, why, u);
		else if (IS("files"))
			expand(t, NO_FILE_LEFT, e, cx, why, u);
		else if (IS("why"))
			put_str(t, why ? why : "");
		else if (IS("path"))
			put_repr(t, cx->path);
		else if (IS("size"))
			put_u64(t, cx->size);
		else if (IS("capacity"))
			put_u64(t, cx->bus ? tachyon_bus_capacity(cx->bus) : cx->capacity);
		else if (IS("max_payload"))
			put_u64(t, cx->bus ? tachyon_bus_max_payload(cx->bus) : 0);
		else if (IS("need"))
			put_u64(t, capacity_for(cx->size));
		else if (IS("limit")) /* max_payload of the largest ring, by the rule above */
			put_u64(t, TACHYON_MAX_CAPACITY / 2 - TACHYON_MSG_ALIGNMENT);
		else if (IS("timeout")) {
			char num[32];
			if (cx->timeout_ns == TACHYON_FOREVER)
				put_str(t, "unlimited");
			else
				put(t, num, (size_t)snprintf(num, sizeof num, "%.3g", (double)cx->timeout_ns / 1e9));
		} else if (IS("in_use")) {
			tachyon_stats s;
			if (cx->bus && tachyon_bus_stats(cx->bus, &s) == 0)
				put_u64(t, s.bytes_in_use);
			else
				put_str(t, "?");
		} else if (IS("unreleased")) {
			put_unreleased(t, u);
		} else if (IS("node")) {
			char num[24];
			put(t, num, (size_t)snprintf(num, sizeof num, "%ld", cx->node));
		} else if (IS("held"))
			put_str(t, tx_role_name(cx->role == TACHYON_ROLE_PRODUCER ? TACHYON_ROLE_CONSUMER
			                                                         : TACHYON_ROLE_PRODUCER));
		else if (IS("verb"))
			put_str(t, cx->role == TACHYON_ROLE_PRODUCER ? "send" : "receive");
		else if (IS("peer_verb"))
			put_str(t, cx->role == TACHYON_ROLE_PRODUCER ? "sends" : "receives");
		else if (IS("other"))
			put_str(t, cx->role == TACHYON_ROLE_PRODUCER ? "replies" : "the other direction");
#undef IS
		p = close + 1;
	}
}

/* The counts as attributes of the exception being raised (the class says
 * None for what is unknown, and on the consumer side). */
static void set_unreleased(tx_state *st, const tx_unreleased *u)
{
	PyObject *exc = tx_err_fetch(), *v;
	if (!exc)
		return;
	if (u->known && (v = PyLong_FromUnsignedLongLong(u->bytes))) {
		(void)PyObject_SetAttr(exc, st->str_unreleased_bytes, v);
		Py_DECREF(v);
	}
	if (u->exact && (v = PyLong_FromUnsignedLongLong(u->messages))) {
		(void)PyObject_SetAttr(exc, st->str_unreleased_messages, v);
		Py_DECREF(v);
	}
	/* a failure above (MemoryError) only leaves the class's None */
	PyErr_Clear();
	tx_err_restore(exc);
}

/* A HandshakeError is an OSError (through ConnectionError): give it the
 * errno of the failure. strerror stays None, so str() is our sentence. */
static void set_errno(int e)
{
	PyObject *exc = tx_err_fetch(), *v;
	if (!exc)
		return;
	if ((v = PyLong_FromLong(e))) {
		(void)PyObject_SetAttrString(exc, "errno", v);
		Py_DECREF(v);
	}
	PyErr_Clear();
	tx_err_restore(exc);
}

PyObject *tx_raise(tx_state *st, int err, const tx_errctx *cx)
{
	int e = err < 0 ? -err : err;
	const char *why = NULL;
	unsigned when = 0;
	const tx_errrow *row;
	tx_unreleased u = {0, 0, 0, 0};
	tx_text t;

	if (e == EINTR) {
		/* A signal handler raised, or a callback set an exception: it
		 * stands. Otherwise run the handlers now; one may raise. */
		if (PyErr_Occurred() || PyErr_CheckSignals() < 0)
			return NULL;
	}
	if (cx->in == TX_IN_CONNECT)
		why = tachyon_handshake_detail();
	else if (e == TACHYON_ECORRUPT && cx->bus)
		why = tachyon_bus_fatal_reason(cx->bus);
	if (why && why[0])
		when |= W_WHY;
	if (e == TACHYON_ENEVERFITS && capacity_for(cx->size) > TACHYON_MAX_CAPACITY)
		when |= W_HUGE;
	/* A refused role: this end's own role stands in the way, or (no role
	 * here) the other end's claim does. */
	if (e == TACHYON_EROLE && cx->bus && tachyon_bus_role(cx->bus) != TACHYON_ROLE_NONE)
		when |= W_OWN;
	/* over max_payload yet within the ring: it fits where a lap has room */
	if (e == TACHYON_ENEVERFITS && cx->bus &&
	    (uint64_t)cx->size <= tachyon_bus_capacity(cx->bus) - sizeof(struct tachyon_slot_header))
		when |= W_SOMEWHERE;
	if (cx->timeout_ns != 0)
		when |= W_WAITED;
	if ((e == TACHYON_EPEERCLOSED || e == TACHYON_EPEERDEAD) && cx->bus &&
	    tachyon_bus_role(cx->bus) == TACHYON_ROLE_PRODUCER) {
		int r = tachyon_bus_unreleased(cx->bus, &u.bytes, &u.messages);
		when |= W_PRODUCER;
		u.exact = r == 0;
		u.known = r == 0 || r == -ENODATA;
	}

	for (row = rows;; row++) {
		if ((row->err == e || row->err == ANY_CODE) && (row->in == cx->in || row->in == ANY_PLACE) &&
		    (row->when & when) == row->when)
			break; /* the last row matches everything */
	}
	if (row->exc == X_MEMORY)
		return PyErr_NoMemory();
	t.len = 0;
	t.buf[0] = '\0';
	expand(&t, row->text, e, cx, why, &u);
	PyErr_SetString(exception_of(st, row->exc), t.buf);
	if (when & W_PRODUCER)
		set_unreleased(st, &u);
	else if (row->exc == X_HANDSHAKE || row->exc == X_ABI)
		set_errno(e);
	return NULL;
}

PyObject *tx_raise_call(tx_state *st, tachyon_bus *bus, int err, const char *call)
{
	tx_errctx cx = {.in = TX_IN_CALL, .call = call, .bus = bus};
	return tx_raise(st, err, &cx);
}

PyObject *tx_raise_forked(tx_state *st)
{
	tx_errctx cx = {.in = TX_IN_CALL};
	return tx_raise(st, -TACHYON_EFORKED, &cx);
}

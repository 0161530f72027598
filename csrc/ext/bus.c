/*
 * TachyonBus, one end of a tachyon bus: its methods and tables, and the
 * iterator over it.
 *
 * Every data call checks the end (calls.h), takes its family (family.h),
 * tries the core once with the GIL held, and only when it must wait goes
 * through tx_blocking (calls.h), which lets the GIL go. Slots received in
 * place are handed to the pending queue (slots.h) and released in ring
 * order when their last holder goes.
 */
#include "bus.h"

#include <string.h>
#include <sys/un.h>

#include "args.h"
#include "calls.h"
#include "errors.h"
#include "family.h"
#include "frames.h"
#include "guards.h"
#include "message.h"
#include "slots.h"

static int parse_role(PyObject *o, int *role)
{
	*role = TACHYON_ROLE_NONE;
	if (o == NULL || o == Py_None)
		return 0;
	if (PyUnicode_Check(o)) {
		if (PyUnicode_CompareWithASCIIString(o, "producer") == 0) {
			*role = TACHYON_ROLE_PRODUCER;
			return 0;
		}
		if (PyUnicode_CompareWithASCIIString(o, "consumer") == 0) {
			*role = TACHYON_ROLE_CONSUMER;
			return 0;
		}
	}
	PyErr_Format(PyExc_ValueError, "role must be \"producer\", \"consumer\" or None (got %R)", o);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* the open zero-copy reservation                                            */

static int check_no_tx_guard(BusObject *self)
{
	if (TX_LIKELY(self->tx_guard == NULL))
		return 0;
	if (self->tx_guard->state == TXG_STALE)
		PyErr_SetString(PyExc_BufferError,
		                "a zero-copy send still has a live memoryview; release it first");
	else
		PyErr_SetString(self->st->TachyonError,
		                "a zero-copy send is open on this bus; leave its with block (or drop "
		                "its TxGuard) first");
	return -1;
}

/* ------------------------------------------------------------------------ */
/* construction                                                              */

static int parse_path(PyObject *o, PyObject **bytes_out)
{
	PyObject *b = NULL;
	if (!PyUnicode_FSConverter(o, &b))
		return -1;
	if (PyBytes_GET_SIZE(b) == 0) {
		Py_DECREF(b);
		PyErr_SetString(PyExc_ValueError, "socket_path must not be empty");
		return -1;
	}
	if ((size_t)PyBytes_GET_SIZE(b) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		PyErr_Format(PyExc_ValueError,
		             "socket_path is %zd bytes; Unix socket paths are limited to %zu bytes on "
		             "this platform: use a shorter path (e.g. under /tmp)",
		             PyBytes_GET_SIZE(b), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		Py_DECREF(b);
		return -1;
	}
	*bytes_out = b;
	return 0;
}

static PyObject *bus_wrap(PyTypeObject *cls, PyTypeObject *defining, tachyon_bus *bus,
                          PyObject *path_bytes, int role)
{
	BusObject *self;
	tx_state *st = PyType_GetModuleState(defining);
	self = (BusObject *)cls->tp_alloc(cls, 0);
	if (!self) {
		tachyon_bus_unref(bus);
		return NULL;
	}
	self->module = Py_NewRef(PyType_GetModule(defining));
	self->st = st;
	self->bus = bus;
	self->capacity = tachyon_bus_capacity(bus);
	self->peer_self = tachyon_bus_peer_liveness(bus) == TACHYON_PEER_SELF;
	self->path = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path_bytes));
	if (!self->path) {
		Py_DECREF(self);
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		return NULL;
	}
	/* listen and connect fixed the role in the core already; this caches it. */
	if (role != TACHYON_ROLE_NONE && tx_bus_want_role(self, role) < 0) {
		Py_DECREF(self);
		return NULL;
	}
	return (PyObject *)self;
}

static PyObject *Bus_listen(PyObject *cls, PyTypeObject *defining, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
	static const char *const names[] = {"socket_path", "capacity", "timeout", "role",
	                                    "allow_uids"};
	tx_state *st = PyType_GetModuleState(defining);
	PyObject *a[5], *path = NULL, *res = NULL;
	unsigned long long cap;
	int64_t tns;
	int role, r;
	uid_t *uids = NULL;
	size_t nuids = 0;
	tachyon_listen_opts opts;
	tachyon_listener *l = NULL;
	tachyon_bus *bus = NULL;

	if (tx_parse_args("listen", args, PyVectorcall_NARGS(nargsf), kwnames, names, 5, 2, 2, a) < 0)
		return NULL;
	{
		PyObject *c = tx_as_int(a[1], "capacity");
		if (!c)
			return NULL;
		cap = PyLong_AsUnsignedLongLong(c);
		Py_DECREF(c);
		if (cap == (unsigned long long)-1 && PyErr_Occurred()) {
			PyErr_Clear();
			cap = 0;
		}
	}
	if (!tachyon_capacity_valid(cap)) {
		PyErr_Format(PyExc_ValueError,
		             "capacity must be a power of two between 64 and 2**31 bytes (got %R); "
		             "e.g. 1 << 16",
		             a[1]);
		return NULL;
	}
	if (tx_parse_timeout(a[2], &tns) < 0 || parse_role(a[3], &role) < 0)
		return NULL;
	if (a[4] && a[4] != Py_None) {
		PyObject *seq = PySequence_Tuple(a[4]);
		Py_ssize_t i;
		if (!seq)
			return NULL;
		nuids = (size_t)PyTuple_GET_SIZE(seq);
		uids = PyMem_Malloc((nuids ? nuids : 1) * sizeof *uids);
		if (!uids) {
			Py_DECREF(seq);
			return PyErr_NoMemory();
		}
		for (i = 0; i < (Py_ssize_t)nuids; i++) {
			long v = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
			if ((v == -1 && PyErr_Occurred()) || v < 0 || v > 0x7FFFFFFFL) {
				if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
					PyErr_Clear();
					PyErr_SetString(PyExc_ValueError, "allow_uids must hold uids (ints >= 0)");
				}
				Py_DECREF(seq);
				PyMem_Free(uids);
				return NULL;
			}
			uids[i] = (uid_t)v;
		}
		Py_DECREF(seq);
	}
	if (parse_path(a[0], &path) < 0) {
		PyMem_Free(uids);
		return NULL;
	}
	opts.allow_uids = uids;
	opts.n_allow_uids = nuids;
	/* The listener claims the role in the region before any peer can see
	 * it, so the accepted bus comes with it fixed and cannot lose it. */
	opts.role = role;

	r = tachyon_listener_open(PyBytes_AS_STRING(path), cap, &opts, &l);
	if (r < 0) {
		tx_errctx cx = {.in = TX_IN_LISTEN, .path = a[0], .capacity = cap};
		tx_raise(st, r, &cx);
		goto out;
	}
	{
		tx_call c = {.op = OP_ACCEPT, .deadline = tachyon_deadline_after(tns),
		             .listener = l, .out = &bus};
		r = tx_blocking(&c);
	}
	tachyon_listener_close(l);
	if (r < 0) {
		tx_errctx cx = {.in = TX_IN_ACCEPT, .call = "listen", .path = a[0]};
		tx_raise(st, r, &cx);
		goto out;
	}
	res = bus_wrap((PyTypeObject *)cls, defining, bus, path, role);
out:
	Py_XDECREF(path);
	PyMem_Free(uids);
	return res;
}

static PyObject *Bus_connect(PyObject *cls, PyTypeObject *defining, PyObject *const *args,
                             size_t nargsf, PyObject *kwnames)
{
	static const char *const names[] = {"socket_path", "timeout", "role"};
	tx_state *st = PyType_GetModuleState(defining);
	PyObject *a[3], *path = NULL, *res = NULL;
	int64_t tns = 5000000000LL;
	int role, r;
	tachyon_bus *bus = NULL;

	if (tx_parse_args("connect", args, PyVectorcall_NARGS(nargsf), kwnames, names, 3, 1, 1, a) < 0)
		return NULL;
	if (a[1] && tx_parse_timeout(a[1], &tns) < 0)
		return NULL;
	if (parse_role(a[2], &role) < 0 || parse_path(a[0], &path) < 0)
		return NULL;
	{
		tx_call c = {.op = OP_CONNECT, .deadline = tachyon_deadline_after(tns),
		             .path = PyBytes_AS_STRING(path), .out = &bus};
		r = tx_blocking(&c);
	}
	if (r < 0) {
		/* names what the listener did wrong, when it did */
		tx_errctx cx = {.in = TX_IN_CONNECT, .path = a[0]};
		tx_raise(st, r, &cx);
		goto out;
	}
	if (role != TACHYON_ROLE_NONE) {
		/* Claimed at once, before anything else can use the new bus: if the
		 * listener holds the role already, connect fails with RoleError and
		 * the bus goes (it has attached and written nothing). */
		r = tachyon_bus_set_role(bus, role);
		if (r < 0) {
			tx_errctx cx = {.in = TX_IN_ROLE,
			                .role = role,
			                .bus = bus,
			                .call = role == TACHYON_ROLE_PRODUCER
			                                ? "attaching the producer end of the ring"
			                                : "attaching the consumer end of the ring"};
			tx_raise(st, r, &cx);
			tachyon_bus_close(bus);
			tachyon_bus_unref(bus);
			goto out;
		}
	}
	res = bus_wrap((PyTypeObject *)cls, defining, bus, path, role);
out:
	Py_XDECREF(path);
	return res;
}

static PyObject *Bus_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
	PyErr_Format(PyExc_TypeError,
	             "%s cannot be created directly; use %s.listen(path, capacity) or "
	             "%s.connect(path)",
	             type->tp_name, type->tp_name, type->tp_name);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* closing, lifetime                                                         */

static PyObject *Bus_close(BusObject *self, PyObject *unused)
{
	if (tachyon_bus_forked(self->bus)) {
		/* A child that inherited the bus: the ring belongs to the parent,
		 * so close only marks this handle closed (no shared write, no
		 * wake; the parent's end goes on). Cleanup code that closes what
		 * it holds (a with block, a finally) works in the child too. The
		 * forking thread is the only one here: no caller waits on a family. */
		self->closed = 1;
		Py_RETURN_NONE;
	}
	if (!self->closed) {
		self->closed = 1;
		tachyon_bus_close(self->bus);
		/* callers waiting for a family see `closed` at once */
		tx_family_wake_closed(self);
	}
	Py_RETURN_NONE;
}

static PyObject *Bus_enter(BusObject *self, PyObject *unused)
{
	if (tachyon_bus_forked(self->bus))
		return tx_raise_forked(self->st);
	return Py_NewRef(self);
}

static PyObject *Bus_exit(BusObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *r = Bus_close(self, NULL);
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyObject *Bus_reduce_ex(BusObject *self, PyObject *proto)
{
	PyErr_Format(PyExc_TypeError,
	             "cannot pickle '%.100s': a bus is one end of a shared-memory ring owned by this "
	             "process; open a new bus in the other process (Bus.listen / Bus.connect)",
	             Py_TYPE(self)->tp_name);
	return NULL;
}

static int Bus_traverse(BusObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	Py_VISIT(self->module);
	return 0;
}

static void Bus_dealloc(BusObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	PyObject_GC_UnTrack(self);
	if (self->bus) {
		if (!self->closed && !tachyon_bus_forked(self->bus))
			tachyon_bus_close(self->bus);
		tachyon_bus_unref(self->bus); /* in a forked child: unmaps only */
		self->bus = NULL;
	}
	PyMem_Free(self->q);
	PyMem_Free(self->rx_scratch);
	Py_CLEAR(self->path);
	Py_CLEAR(self->module);
	tp->tp_free((PyObject *)self);
	Py_DECREF(tp);
}

static PyObject *Bus_repr(BusObject *self)
{
	int role = self->role;
	return PyUnicode_FromFormat("<%s path=%R capacity=%llu role=%s%s>", Py_TYPE(self)->tp_name,
	                            self->path ? self->path : Py_None,
	                            (unsigned long long)self->capacity,
	                            role ? tx_role_name(role) : "None", self->closed ? " closed" : "");
}

/* ------------------------------------------------------------------------ */
/* producer                                                                  */

static int get_send_buffer_slow(PyObject *o, Py_buffer *view, const char *fname)
{
	if (!PyObject_CheckBuffer(o)) {
		PyErr_Format(PyExc_TypeError,
		             "%s() needs a bytes-like object (bytes, bytearray, memoryview, numpy "
		             "array...), not %.100s",
		             fname, Py_TYPE(o)->tp_name);
		return -1;
	}
	if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
		PyObject *cause = tx_err_fetch();
		PyErr_Format(PyExc_TypeError,
		             "%s() needs a C-contiguous buffer; pass bytes(x) or "
		             "numpy.ascontiguousarray(x) for a %.100s that is not",
		             fname, Py_TYPE(o)->tp_name);
		tx_chain_cause(cause);
		return -1;
	}
	return 0;
}

/* The payload of a send. An exact bytes object is read in place: it is
 * immutable and the caller's argument (or send_many's private tuple) keeps
 * it alive for the whole call, so no buffer export is needed; obj = NULL
 * tells release_send_buffer there is nothing to release. This skips
 * PyObject_GetBuffer + PyBuffer_Release (~110 instructions per message). */
static inline int get_send_buffer(PyObject *o, Py_buffer *view, const char *fname)
{
	if (TX_LIKELY(PyBytes_CheckExact(o))) {
		view->buf = PyBytes_AS_STRING(o);
		view->len = PyBytes_GET_SIZE(o);
		view->obj = NULL;
		return 0;
	}
	return get_send_buffer_slow(o, view, fname);
}

static inline void release_send_buffer(Py_buffer *view)
{
	if (view->obj)
		PyBuffer_Release(view);
}

static PyObject *send_failed(BusObject *self, int r, size_t size, int64_t tns, const char *fname)
{
	tx_errctx cx = {.in = TX_IN_SEND, .call = fname, .bus = self->bus, .size = size,
	                .timeout_ns = tns};
	/* a reservation is open: say whose, when it is a guard's */
	if (r == -EBUSY && check_no_tx_guard(self) < 0)
		return NULL;
	return tx_raise(self->st, r, &cx);
}

static PyObject *Bus_send(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
	static const char *const names[] = {"data", "type_id", "timeout"};
	PyObject *a[3];
	uint32_t type_id = 0;
	int64_t tns = 0, deadline;
	Py_buffer view;
	tachyon_wait now = {0, 0, NULL, NULL};
	int r;

	if (TX_LIKELY(kwnames == NULL && nargs >= 1 && nargs <= 2)) {
		a[0] = args[0];
		a[1] = nargs == 2 ? args[1] : NULL;
		a[2] = NULL;
	} else if (tx_parse_args("send", args, nargs, kwnames, names, 3, 2, 1, a) < 0) {
		return NULL;
	}
	if (a[1] && tx_parse_type_id(a[1], &type_id) < 0)
		return NULL;
	if (a[2] && tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	if (get_send_buffer(a[0], &view, "send") < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_TX, deadline);
	if (r == -1)
		goto fail;
	if (r == 0) {
		if (check_no_tx_guard(self) < 0) {
			tx_family_exit(self, FAM_TX);
			goto fail;
		}
		r = tachyon_bus_send(self->bus, view.buf, (size_t)view.len, type_id, &now);
		if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
			tx_call c = {.op = OP_SEND, .self = self, .deadline = deadline,
			             .data = view.buf, .size = (size_t)view.len, .type_id = type_id};
			r = tx_blocking(&c);
		}
		tx_family_exit(self, FAM_TX);
	}
	if (r < 0) {
		send_failed(self, r, (size_t)view.len, tns, "send");
		goto fail;
	}
	release_send_buffer(&view);
	Py_RETURN_NONE;
fail:
	release_send_buffer(&view);
	return NULL;
}

/* send_many takes the payloads in chunks of this many: their buffers are
 * held while the chunk goes out in one vectored send. */
#define SEND_MANY_CHUNK 64

static PyObject *Bus_send_many(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
	static const char *const names[] = {"buffers", "type_id", "timeout"};
	PyObject *a[3], *items;
	uint32_t type_id = 0;
	int64_t tns = 0, deadline;
	Py_ssize_t k = 0, n;
	size_t failed_size = 0;
	tachyon_wait now = {0, 0, NULL, NULL};
	int r = 0, fr;

	if (tx_parse_args("send_many", args, nargs, kwnames, names, 3, 2, 1, a) < 0)
		return NULL;
	if (a[1] && tx_parse_type_id(a[1], &type_id) < 0)
		return NULL;
	if (a[2] && tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	/* a private tuple: no user code runs while the family is held */
	items = PySequence_Tuple(a[0]);
	if (!items)
		return NULL;
	n = PyTuple_GET_SIZE(items);
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_TX, deadline);
	if (r == -1) {
		Py_DECREF(items);
		return NULL;
	}
	if (r == 0 && check_no_tx_guard(self) < 0) {
		tx_family_exit(self, FAM_TX);
		Py_DECREF(items);
		return NULL;
	}
	/* k counts the messages sent. Each chunk: take the buffers (up to a
	 * payload that is none: the ones before it still go), send them in one
	 * vectored call, wait for room where the ring is full, release them. */
	while (r == 0 && k < n) {
		Py_buffer views[SEND_MANY_CHUNK];
		tachyon_iov iov[SEND_MANY_CHUNK];
		Py_ssize_t cnt = 0, j = 0, i;
		int bad = 0;
		while (cnt < SEND_MANY_CHUNK && k + cnt < n) {
			if (get_send_buffer(PyTuple_GET_ITEM(items, k + cnt), &views[cnt], "send_many") < 0) {
				bad = 1;
				break;
			}
			iov[cnt].data = views[cnt].buf;
			iov[cnt].size = (size_t)views[cnt].len;
			cnt++;
		}
		while (j < cnt) {
			size_t sent = 0;
			void *p = NULL;
			r = tachyon_bus_send_many(self->bus, iov + j, (size_t)(cnt - j), type_id, &now, &sent);
			j += (Py_ssize_t)sent;
			if (r == 0)
				break;
			failed_size = iov[j].size;
			if ((r != -EAGAIN && r != -ETIMEDOUT) || deadline == 0)
				break;
			/* Full: wait for room for iov[j] (GIL released), as send does. */
			tx_call c = {.op = OP_RESERVE, .self = self, .deadline = deadline,
			             .size = iov[j].size, .payload = &p};
			r = tx_blocking(&c);
			if (r != 0)
				break;
			tachyon_bus_copy_payload(self->bus, p, iov[j].data, iov[j].size);
			r = tachyon_bus_commit(self->bus, iov[j].size, type_id);
			if (r < 0) {
				tachyon_bus_rollback(self->bus);
				break;
			}
			j++;
		}
		k += j;
		for (i = 0; i < cnt; i++)
			release_send_buffer(&views[i]);
		if (r == 0 && bad)
			r = -1;
	}
	if (r != -TX_ELATE) { /* else the family was never entered */
		/* publish everything committed, also on the error path */
		fr = tachyon_bus_flush(self->bus);
		if (r == 0 && fr < 0)
			r = fr;
		tx_family_exit(self, FAM_TX);
	}
	Py_DECREF(items);
	if (r == 0)
		return PyLong_FromSsize_t(n);
	if (r != -1)
		send_failed(self, r, failed_size, tns, "send_many");
	if (PyErr_Occurred()) {
		PyObject *exc = tx_err_fetch();
		PyObject *sent = PyLong_FromSsize_t(k);
		if (sent && PyObject_IsInstance(exc, self->st->BusFullError) == 1)
			(void)PyObject_SetAttr(exc, self->st->str_sent, sent);
		Py_XDECREF(sent);
		tx_err_restore(exc);
	}
	return NULL;
}

static PyObject *zero_copy_send(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames, const char *fname)
{
	static const char *const names[] = {"size", "type_id", "timeout"};
	PyObject *a[3], *guard;
	Py_ssize_t size;
	uint32_t type_id = 0;
	int64_t tns = 0, deadline;
	void *p = NULL;
	tachyon_wait now = {0, 0, NULL, NULL};
	int r;

	/* Positional (size[, type_id]) needs no keyword matching (as in send). */
	if (TX_LIKELY(kwnames == NULL && nargs >= 1 && nargs <= 2)) {
		a[0] = args[0];
		a[1] = nargs == 2 ? args[1] : NULL;
		a[2] = NULL;
	} else if (tx_parse_args(fname, args, nargs, kwnames, names, 3, 2, 1, a) < 0) {
		return NULL;
	}
	if (tx_parse_index(a[0], "size", &size) < 0)
		return NULL;
	if (size < 0) {
		PyErr_Format(PyExc_ValueError, "%s: size must be >= 0 (got %R)", fname, a[0]);
		return NULL;
	}
	if (TX_UNLIKELY(size == PY_SSIZE_T_MAX)) {
		/* 2**63-1 or beyond: no ring comes near (the core would say so
		 * too, but not with this number) */
		PyErr_Format(PyExc_ValueError,
		             "%s: a payload of %R bytes can never fit in a tachyon ring (the largest "
		             "capacity, 2**31, carries at most %llu bytes); split it into smaller "
		             "messages",
		             fname, a[0],
		             (unsigned long long)(TACHYON_MAX_CAPACITY / 2 - TACHYON_MSG_ALIGNMENT));
		return NULL;
	}
	if (a[1] && tx_parse_type_id(a[1], &type_id) < 0)
		return NULL;
	if (a[2] && tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_TX, deadline);
	if (r == -1)
		return NULL;
	if (r == 0) {
		if (check_no_tx_guard(self) < 0) {
			tx_family_exit(self, FAM_TX);
			return NULL;
		}
		r = tachyon_bus_reserve(self->bus, (size_t)size, &p, &now);
		if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
			tx_call c = {.op = OP_RESERVE, .self = self, .deadline = deadline,
			             .size = (size_t)size, .payload = &p};
			r = tx_blocking(&c);
		}
		if (r == 0) {
			guard = tx_txguard_new(self, p, (size_t)size, type_id);
			if (!guard)
				tachyon_bus_rollback(self->bus);
			else
				self->tx_guard = (TxGuardObject *)guard;
			tx_family_exit(self, FAM_TX);
			return guard;
		}
		tx_family_exit(self, FAM_TX);
	}
	return send_failed(self, r, (size_t)size, tns, fname);
}

static PyObject *Bus_send_zero_copy(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
	return zero_copy_send(self, args, nargs, kwnames, "send_zero_copy");
}

static PyObject *Bus_acquire_tx(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
	return zero_copy_send(self, args, nargs, kwnames, "acquire_tx");
}

/* send_array: the frame header and the elements, gathered into C order, in
 * one copy straight into the reserved slot. The source is read with the
 * producer family held, so no other send of this bus interleaves. */
static PyObject *Bus_send_array(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
	static const char *const names[] = {"obj", "type_id", "timeout"};
	PyObject *a[3];
	uint32_t tag = 0, type_id;
	int64_t tns = 0, deadline;
	tx_array_src src;
	size_t size;
	void *p = NULL;
	tachyon_wait now = {0, 0, NULL, NULL};
	int r;

	if (tx_parse_args("send_array", args, nargs, kwnames, names, 3, 2, 1, a) < 0)
		return NULL;
	if (a[1] && tx_parse_type_id(a[1], &tag) < 0)
		return NULL;
	if (tag > 0xFFFF) {
		PyErr_Format(PyExc_ValueError,
		             "send_array: type_id is the frame's 16-bit message type (0..65535), got %R; "
		             "the route half of a frame's type_id is always 0xFFFF",
		             a[1]);
		return NULL;
	}
	type_id = TACHYON_FRAME_TYPE_ID(tag);
	if (a[2] && tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	if (tx_array_src_get(a[0], &src) < 0)
		return NULL;
	size = (size_t)tachyon_tensor_frame_payload_size(&src.frame);
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_TX, deadline);
	if (r == -1)
		goto fail;
	if (r == 0) {
		if (check_no_tx_guard(self) < 0) {
			tx_family_exit(self, FAM_TX);
			goto fail;
		}
		r = tachyon_bus_reserve(self->bus, size, &p, &now);
		if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
			tx_call c = {.op = OP_RESERVE, .self = self, .deadline = deadline,
			             .size = size, .payload = &p};
			r = tx_blocking(&c);
		}
		if (r == 0) {
			r = tx_array_src_write(&src, self->bus, p, size);
			if (r == 0)
				r = tachyon_bus_commit(self->bus, size, type_id);
			if (r == 0)
				r = tachyon_bus_flush(self->bus);
			else
				tachyon_bus_rollback(self->bus);
		}
		tx_family_exit(self, FAM_TX);
	}
	if (r < 0) {
		send_failed(self, r, size, tns, "send_array");
		goto fail;
	}
	tx_array_src_release(&src);
	Py_RETURN_NONE;
fail:
	tx_array_src_release(&src);
	return NULL;
}

static PyObject *Bus_flush(BusObject *self, PyObject *unused)
{
	int r;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	if (tx_family_enter(self, FAM_TX, TACHYON_FOREVER) < 0)
		return NULL;
	r = tachyon_bus_flush(self->bus);
	tx_family_exit(self, FAM_TX);
	if (r < 0)
		return tx_raise_call(self->st, self->bus, r, "flush");
	Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* consumer                                                                  */

static PyObject *recv_failed(BusObject *self, int r, const char *fname)
{
	tx_errctx cx = {.in = TX_IN_RECV, .call = fname, .bus = self->bus};
	return tx_raise(self->st, r, &cx);
}

/* How long a receive that found the ring empty keeps looking with the GIL
 * held before tx_blocking lets the GIL go: dropping and retaking the GIL
 * costs more than a round trip to a peer process that answers at once
 * (ping-pong, request/reply), and retaking it is on the path from the
 * message's arrival to our return. Bounded in time and in tries (the
 * caller's spin budget), so other threads wait at most this long. */
#define GIL_SPIN_NS    INT64_C(5000)
#define GIL_SPIN_TRIES 1024u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* One look, no wait. max 0: a single message (tachyon_bus_recv, 0 on
 * success); else a batch of up to max (a count on success). */
static inline int recv_try(BusObject *self, tachyon_msg *msgs, size_t max)
{
	static const tachyon_wait now = {0, 0, NULL, NULL};
	if (max == 0)
		return tachyon_bus_recv(self->bus, msgs, &now);
	return tachyon_bus_recv_batch(self->bus, msgs, max, &now);
}

/* The first look of a receive, family held: one try; then, when the call
 * may wait, a spin of up to `spin` tries (GIL_SPIN_*) with the GIL held.
 * Not when the peer is in this process: it needs the GIL to send. max as
 * in recv_try. Returns what the last try returned (-EAGAIN / -ETIMEDOUT:
 * still empty). */
static int recv_first(BusObject *self, tachyon_msg *msgs, size_t max, int64_t deadline,
                      uint32_t spin)
{
	int64_t end = 0;
	uint32_t i;
	int r = recv_try(self, msgs, max);
	if (TX_LIKELY(r >= 0) || (r != -EAGAIN && r != -ETIMEDOUT) || deadline == 0 ||
	    self->peer_self)
		return r;
	if (spin > GIL_SPIN_TRIES)
		spin = GIL_SPIN_TRIES;
	for (i = 1; i < spin; i++) {
		cpu_relax();
		r = recv_try(self, msgs, max);
		if (r != -EAGAIN && r != -ETIMEDOUT)
			return r;
		if ((i & 15) == 0) {
			/* the clock only every 16 tries: a try costs ~50 ns */
			int64_t t = tachyon_now_ns();
			if (end == 0)
				end = t + GIL_SPIN_NS;
			else if (t >= end)
				break;
		}
	}
	return r;
}

/* Take one message with the consumer family held: try (spinning up to
 * first_spin tries with the GIL), then wait without the GIL until the
 * deadline, spinning wait_spin times before sleeping (0: the bus default). */
static int recv_one(BusObject *self, tachyon_msg *m, int64_t deadline, uint32_t first_spin,
                    uint32_t wait_spin)
{
	int r = recv_first(self, m, 0, deadline, first_spin);
	if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
		tx_call c = {.op = OP_RECV, .self = self, .deadline = deadline, .spin = wait_spin,
		             .msgs = m};
		r = tx_blocking(&c);
	}
	return r;
}

/* Receive one message as a Message; mode 0 recv, 1 try_recv, 2 iteration. */
static PyObject *recv_message(BusObject *self, int64_t tns, int mode)
{
	static const char *const fnames[] = {"recv", "try_recv", "iteration"};
	tachyon_msg m;
	PyObject *res = NULL;
	int64_t deadline;
	int r;

	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_CONSUMER) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_RX, deadline);
	if (r == -1)
		return NULL;
	if (r == 0) {
		r = recv_one(self, &m, deadline, GIL_SPIN_TRIES, 0);
		if (r == 0) {
			/* the message is taken: it is returned whatever happens next */
			res = tx_message_new(self->st, &m);
			if (self->q_len == 0) {
				(void)tachyon_bus_release_to(self->bus, m.end, 1);
			} else {
				uint64_t seq;
				if (tx_slots_push(self, m.end, 0, &seq) < 0)
					Py_CLEAR(res);
			}
		}
		tx_family_exit(self, FAM_RX);
	}
	if (r == 0)
		return res;
	if (mode == 1 && (r == -EAGAIN || r == -ETIMEDOUT || r == -TX_ELATE))
		Py_RETURN_NONE;
	if (mode == 2 && r == -TACHYON_EPEERCLOSED)
		return NULL; /* StopIteration */
	return recv_failed(self, r, fnames[mode]);
}

static PyObject *Bus_recv(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
	static const char *const names[] = {"timeout"};
	PyObject *a[1];
	int64_t tns = TACHYON_FOREVER;
	if (nargs || kwnames) {
		if (tx_parse_args("recv", args, nargs, kwnames, names, 1, 1, 0, a) < 0 ||
		    tx_parse_timeout(a[0], &tns) < 0)
			return NULL;
	}
	return recv_message(self, tns, 0);
}

static PyObject *Bus_try_recv(BusObject *self, PyObject *unused)
{
	return recv_message(self, 0, 1);
}

/* spin_threshold of acquire_rx and drain_batch (0.5.1's default 10000):
 * the spin count of the first look and of the wait. NULL keeps *spin. */
#define DEFAULT_SPIN_THRESHOLD 10000u

static int parse_spin(PyObject *o, uint32_t *spin)
{
	Py_ssize_t v;
	if (!o)
		return 0;
	if (tx_parse_index(o, "spin_threshold", &v) < 0)
		return -1;
	if (v < 0 || (unsigned long long)v > 0xFFFFFFFFull) {
		PyErr_Format(PyExc_ValueError, "spin_threshold must be in 0..2**32-1 (got %R)", o);
		return -1;
	}
	/* 0 asks for no spin; the core reads a spin of 0 as "its default",
	 * so the least it can be asked for, one try, stands in for it. */
	*spin = v == 0 ? 1u : (uint32_t)v;
	return 0;
}

/* recv_zero_copy and acquire_rx; spin as in recv_one */
static PyObject *zero_copy_recv(BusObject *self, int64_t tns, uint32_t first_spin,
                                uint32_t wait_spin, const char *fname)
{
	tachyon_msg m;
	PyObject *res = NULL;
	int64_t deadline;
	int r;

	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_CONSUMER) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_RX, deadline);
	if (r == -1)
		return NULL;
	if (r == 0) {
		r = recv_one(self, &m, deadline, first_spin, wait_spin);
		if (r == 0) {
			uint64_t seq;
			if (tx_slots_push(self, m.end, 1, &seq) == 0) {
				res = tx_rxguard_new(self, &m, seq);
				if (!res)
					tx_slot_decref(self, seq);
			}
		}
		tx_family_exit(self, FAM_RX);
	}
	if (r == 0)
		return res;
	return recv_failed(self, r, fname);
}

static PyObject *Bus_recv_zero_copy(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
	static const char *const names[] = {"timeout"};
	PyObject *a[1];
	int64_t tns = TACHYON_FOREVER;
	if ((nargs || kwnames) &&
	    (tx_parse_args("recv_zero_copy", args, nargs, kwnames, names, 1, 1, 0, a) < 0 ||
	     tx_parse_timeout(a[0], &tns) < 0))
		return NULL;
	return zero_copy_recv(self, tns, GIL_SPIN_TRIES, 0, "recv_zero_copy");
}

static PyObject *Bus_acquire_rx(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
	static const char *const names[] = {"spin_threshold", "timeout"};
	PyObject *a[2];
	int64_t tns = TACHYON_FOREVER;
	uint32_t spin = DEFAULT_SPIN_THRESHOLD;
	if (tx_parse_args("acquire_rx", args, nargs, kwnames, names, 2, 2, 0, a) < 0 ||
	    parse_spin(a[0], &spin) < 0 || tx_parse_timeout(a[1], &tns) < 0)
		return NULL;
	/* as drain_batch: the threshold bounds both the first look's spin with
	 * the GIL and the wait's spin before it sleeps */
	return zero_copy_recv(self, tns, spin, spin, "acquire_rx");
}

/* drain_batch's message array for max entries, with the RX family held: a
 * caller's stack array for a few, the bus's kept array up to RX_SCRATCH_MAX
 * (the default max_msgs; allocated once, not per call), else a block of its
 * own, which the caller frees. NULL when out of memory. */
#define RX_SCRATCH_MAX 1024u

static tachyon_msg *rx_msgs(BusObject *self, size_t max, tachyon_msg *small, size_t nsmall)
{
	if (max <= nsmall)
		return small;
	if (max > RX_SCRATCH_MAX)
		return PyMem_Malloc(max * sizeof(tachyon_msg));
	if (!self->rx_scratch)
		self->rx_scratch = PyMem_Malloc(RX_SCRATCH_MAX * sizeof(tachyon_msg));
	return self->rx_scratch;
}

static PyObject *Bus_drain_batch(BusObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
	static const char *const names[] = {"max_msgs", "spin_threshold", "timeout"};
	PyObject *a[3], *res = NULL;
	Py_ssize_t max = 1024;
	uint32_t spin = DEFAULT_SPIN_THRESHOLD;
	int64_t tns = TACHYON_FOREVER, deadline;
	tachyon_msg small[16], *msgs;
	int r;

	if (tx_parse_args("drain_batch", args, nargs, kwnames, names, 3, 3, 0, a) < 0)
		return NULL;
	if (a[0]) {
		if (tx_parse_index(a[0], "max_msgs", &max) < 0)
			return NULL;
		if (max < 1 || max > 1 << 20) {
			PyErr_Format(PyExc_ValueError, "max_msgs must be in 1..1048576 (got %R)", a[0]);
			return NULL;
		}
	}
	if (parse_spin(a[1], &spin) < 0 || tx_parse_timeout(a[2], &tns) < 0)
		return NULL;
	if (tx_bus_usable(self) < 0 || tx_bus_want_role(self, TACHYON_ROLE_CONSUMER) < 0)
		return NULL;
	deadline = tx_deadline(tns);
	r = tx_family_enter(self, FAM_RX, deadline);
	if (r == -1)
		return NULL;
	if (r == 0) {
		msgs = rx_msgs(self, (size_t)max, small, sizeof small / sizeof small[0]);
		if (!msgs) {
			tx_family_exit(self, FAM_RX);
			return PyErr_NoMemory();
		}
		r = recv_first(self, msgs, (size_t)max, deadline, spin);
		if ((r == -EAGAIN || r == -ETIMEDOUT) && deadline != 0) {
			tx_call c = {.op = OP_RECV_BATCH, .self = self, .deadline = deadline,
			             .spin = spin, .msgs = msgs, .max = (size_t)max};
			r = tx_blocking(&c);
		}
		if (r > 0) {
			uint64_t seq0 = 0, seq;
			int i, pushed = 0;
			for (i = 0; i < r; i++) {
				if (tx_slots_push(self, msgs[i].end, 1, &seq) < 0)
					break; /* MemoryError: the rest are lost */
				if (i == 0)
					seq0 = seq;
				pushed++;
			}
			if (pushed == r)
				res = tx_rxbatch_new(self, msgs, r, seq0);
			if (!res)
				for (i = 0; i < pushed; i++)
					tx_slot_decref(self, seq0 + (uint64_t)i);
			r = 0;
		}
		tx_family_exit(self, FAM_RX);
		if (msgs != small && msgs != self->rx_scratch)
			PyMem_Free(msgs);
	}
	if (r == 0)
		return res;
	return recv_failed(self, r, "drain_batch");
}

/* ------------------------------------------------------------------------ */
/* either end                                                                */

static PyObject *Bus_set_polling_mode(BusObject *self, PyObject *arg)
{
	int on = PyObject_IsTrue(arg), r;
	if (on < 0)
		return NULL;
	if (tx_bus_usable(self) < 0)
		return NULL;
	r = tachyon_bus_set_polling_mode(self->bus, on);
	if (r < 0)
		return tx_raise_call(self->st, NULL, r, "set_polling_mode");
	Py_RETURN_NONE;
}

static PyObject *Bus_set_numa_node(BusObject *self, PyObject *arg)
{
	long node = PyLong_AsLong(arg);
	int r;
	if (node == -1 && PyErr_Occurred())
		return NULL;
	if (tx_bus_usable(self) < 0)
		return NULL;
	if (node < 0 || node > 0xFFFF) {
		PyErr_Format(PyExc_ValueError, "node_id must be a NUMA node number >= 0 (got %ld)", node);
		return NULL;
	}
	r = tachyon_bus_set_numa_node(self->bus, (int)node);
	if (r < 0) {
		tx_errctx cx = {.in = TX_IN_NUMA, .call = "set_numa_node", .node = node};
		return tx_raise(self->st, r, &cx);
	}
	Py_RETURN_NONE;
}

const char *const tx_stats_extra[TX_STATS_EXTRA] = {
	"sent_messages", "sent_bytes", "received_messages", "received_bytes",
};

/* value as a member of the IntEnum cls, or a plain int when it names none:
 * a peer may write any value into the shared words. */
static PyObject *enum_member(PyObject *cls, unsigned long value)
{
	PyObject *v = PyLong_FromUnsignedLong(value);
	PyObject *m = v ? PyObject_CallOneArg(cls, v) : NULL;
	if (!m && v && PyErr_ExceptionMatches(PyExc_ValueError)) {
		PyErr_Clear();
		return v;
	}
	Py_XDECREF(v);
	return m;
}

static PyObject *Bus_get_stats(BusObject *self, void *closure)
{
	tachyon_stats s;
	PyObject *t, *res;
	int r;
	if (tachyon_bus_forked(self->bus))
		return tx_raise_forked(self->st);
	r = tachyon_bus_stats(self->bus, &s);
	if (r < 0)
		return tx_raise_call(self->st, NULL, r, "stats");
	/* the field order of BusStats */
	t = Py_BuildValue("(KKNNKKN)", (unsigned long long)s.capacity,
	                  (unsigned long long)s.bytes_in_use,
	                  enum_member(self->st->consumer_state_enum, s.consumer_wait),
	                  enum_member(self->st->bus_state_enum, s.state),
	                  (unsigned long long)s.bytes_pinned, (unsigned long long)s.lost_wakeups,
	                  s.peer_pid > 0 ? PyLong_FromLong(s.peer_pid) : Py_NewRef(Py_None));
	if (!t)
		return NULL;
	res = PyObject_Call(self->st->stats_type, t, NULL);
	Py_DECREF(t);
	const uint64_t extra[TX_STATS_EXTRA] = {s.sent_messages, s.sent_bytes, s.received_messages,
	                                        s.received_bytes};
	/* Into the instance's __dict__, where the class's read-only properties
	 * find them (module.c). */
	PyObject *d = res ? PyObject_GenericGetDict(res, NULL) : NULL;
	for (int i = 0; i < TX_STATS_EXTRA && d; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(extra[i]);
		if (!v || PyDict_SetItemString(d, tx_stats_extra[i], v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	if (!d)
		Py_CLEAR(res);
	Py_XDECREF(d);
	return res;
}

static PyObject *Bus_get_closed(BusObject *self, void *closure)
{
	return PyBool_FromLong(self->closed);
}

static PyObject *Bus_get_max_payload(BusObject *self, void *closure)
{
	return PyLong_FromSize_t(tachyon_bus_max_payload(self->bus));
}

static PyObject *Bus_get_capacity(BusObject *self, void *closure)
{
	return PyLong_FromUnsignedLongLong(self->capacity);
}

static PyObject *Bus_get_role(BusObject *self, void *closure)
{
	int role = self->role;
	if (role == TACHYON_ROLE_NONE && !tachyon_bus_forked(self->bus))
		role = tachyon_bus_role(self->bus);
	if (role == TACHYON_ROLE_PRODUCER || role == TACHYON_ROLE_CONSUMER)
		return PyUnicode_FromString(tx_role_name(role));
	Py_RETURN_NONE;
}

static PyObject *Bus_get_path(BusObject *self, void *closure)
{
	return Py_NewRef(self->path);
}

static PyObject *Bus_get_peer_pid(BusObject *self, void *closure)
{
	pid_t pid = tachyon_bus_peer_pid(self->bus);
	if (pid <= 0)
		Py_RETURN_NONE;
	return PyLong_FromLong((long)pid);
}

/* ------------------------------------------------------------------------ */
/* the iterator: recv() until the peer closed and everything was delivered  */

static PyObject *Bus_iter(BusObject *self)
{
	BusIterObject *it = PyObject_GC_New(BusIterObject, self->st->iter_type);
	if (!it)
		return NULL;
	it->bus = (BusObject *)Py_NewRef(self);
	PyObject_GC_Track(it);
	return (PyObject *)it;
}

static PyObject *BusIter_next(BusIterObject *it)
{
	/* resumable: after an exception the next call receives again */
	return recv_message(it->bus, TACHYON_FOREVER, 2);
}

static int BusIter_traverse(BusIterObject *it, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(it));
	Py_VISIT(it->bus);
	return 0;
}

static void BusIter_dealloc(BusIterObject *it)
{
	PyTypeObject *tp = Py_TYPE(it);
	PyObject_GC_UnTrack(it);
	Py_CLEAR(it->bus);
	tp->tp_free((PyObject *)it);
	Py_DECREF(tp);
}

static PyType_Slot BusIter_slots[] = {
	{Py_tp_doc, "Iterator over a bus: yields Message copies until the peer closed and "
	            "everything it sent was delivered."},
	{Py_tp_iter, PyObject_SelfIter},
	{Py_tp_iternext, BusIter_next},
	{Py_tp_traverse, BusIter_traverse},
	{Py_tp_dealloc, BusIter_dealloc},
	{0, NULL},
};

PyType_Spec tx_iter_spec = {
	.name = "tachyon.BusIterator",
	.basicsize = sizeof(BusIterObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
	         Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = BusIter_slots,
};

/* ------------------------------------------------------------------------ */
/* tables                                                                    */

#define FKW (METH_FASTCALL | METH_KEYWORDS)
#define CLS_FKW (METH_METHOD | METH_FASTCALL | METH_KEYWORDS | METH_CLASS)
#define FN(f) ((PyCFunction)(void (*)(void))(f))

static PyMethodDef Bus_methods[] = {
	{"listen", FN(Bus_listen), CLS_FKW,
	 "listen($type, /, socket_path, capacity, *, timeout=None, role=None, allow_uids=None)\n--\n\n"
	 "Create a ring of `capacity` bytes (a power of two, 64..2**31), bind socket_path and wait\n"
	 "for exactly one peer (timeout seconds; None: no limit). Peers of another uid are refused\n"
	 "unless listed in allow_uids. role fixes this end's role up front."},
	{"connect", FN(Bus_connect), CLS_FKW,
	 "connect($type, /, socket_path, *, timeout=5.0, role=None)\n--\n\n"
	 "Connect to a listener; waits for the path to appear within timeout (ConnectTimeoutError)."},
	{"close", (PyCFunction)Bus_close, METH_NOARGS,
	 "close($self, /)\n--\n\nClose this end (idempotent, never fails because exports are alive). The\n"
	 "producer publishes what it committed first. Blocked calls raise BusClosedError."},
	{"destroy", (PyCFunction)Bus_close, METH_NOARGS,
	 "destroy($self, /)\n--\n\nSame as close() (0.5.1 name)."},
	{"__enter__", (PyCFunction)Bus_enter, METH_NOARGS, "__enter__($self, /)\n--\n\n"},
	{"__exit__", FN(Bus_exit), METH_FASTCALL, "__exit__($self, exc_type, exc, tb, /)\n--\n\nClose the bus."},
	{"__reduce_ex__", (PyCFunction)Bus_reduce_ex, METH_O,
	 "__reduce_ex__($self, protocol, /)\n--\n\nA bus cannot be pickled."},
	{"send", FN(Bus_send), FKW,
	 "send($self, /, data, type_id=0, *, timeout=0)\n--\n\n"
	 "Copy one message (any C-contiguous bytes-like object) into the ring and publish it.\n"
	 "timeout=0 raises BusFullError at once when there is no room; None waits for room."},
	{"send_many", FN(Bus_send_many), FKW,
	 "send_many($self, /, buffers, type_id=0, *, timeout=0)\n--\n\n"
	 "Send every buffer as one message, publishing at least every 32 and at the end; returns\n"
	 "the count. On BusFullError at item k, the items before k are sent and `sent` is k."},
	{"send_zero_copy", FN(Bus_send_zero_copy), FKW,
	 "send_zero_copy($self, /, size, type_id=0, *, timeout=0)\n--\n\n"
	 "Reserve a slot of `size` bytes and return a TxGuard to write into (with-statement):\n"
	 "commit + publish on a clean exit, rollback on an exception. The message is\n"
	 "tx.actual_size bytes long: all `size` bytes unless set smaller."},
	{"send_array", FN(Bus_send_array), FKW,
	 "send_array($self, /, obj, type_id=0, *, timeout=0)\n--\n\n"
	 "Send an array (numpy, torch CPU tensor, array.array, memoryview with a format) as a\n"
	 "tensor frame: its dtype and shape travel with it; non-contiguous input is copied in C\n"
	 "order. type_id is the frame's 16-bit message type (the route is 0xFFFF)."},
	{"acquire_tx", FN(Bus_acquire_tx), FKW,
	 "acquire_tx($self, /, size, type_id=0, *, timeout=0)\n--\n\nSame as send_zero_copy (0.5.1 name)."},
	{"flush", (PyCFunction)Bus_flush, METH_NOARGS,
	 "flush($self, /)\n--\n\nPublish everything committed and wake a sleeping consumer."},
	{"recv", FN(Bus_recv), FKW,
	 "recv($self, /, timeout=None)\n--\n\nReceive one Message (a copy). TachyonTimeoutError after timeout\n"
	 "seconds; PeerClosedError once the peer closed and everything was delivered."},
	{"try_recv", (PyCFunction)Bus_try_recv, METH_NOARGS,
	 "try_recv($self, /)\n--\n\nA Message if one is there now, else None."},
	{"recv_zero_copy", FN(Bus_recv_zero_copy), FKW,
	 "recv_zero_copy($self, /, timeout=None)\n--\n\n"
	 "Receive one message in place: an RxGuard (read-only buffer, DLPack) whose slot goes back\n"
	 "to the producer when the guard and every export of it are gone."},
	{"acquire_rx", FN(Bus_acquire_rx), FKW,
	 "acquire_rx($self, /, spin_threshold=10000, timeout=None)\n--\n\n"
	 "Same as recv_zero_copy (0.5.1 name); spin_threshold bounds the spin before it sleeps."},
	{"drain_batch", FN(Bus_drain_batch), FKW,
	 "drain_batch($self, /, max_msgs=1024, spin_threshold=10000, timeout=None)\n--\n\n"
	 "Receive between 1 and max_msgs messages in place as an RxBatchGuard."},
	{"set_polling_mode", (PyCFunction)Bus_set_polling_mode, METH_O,
	 "set_polling_mode($self, pure_spin, /)\n--\n\n1: the consumer never sleeps; 0: spin, then sleep."},
	{"set_numa_node", (PyCFunction)Bus_set_numa_node, METH_O,
	 "set_numa_node($self, node_id, /)\n--\n\nBind the mapping to a NUMA node (Linux mbind)."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Bus_getset[] = {
	{"stats", (getter)Bus_get_stats, NULL, "BusStats of this end.", NULL},
	{"closed", (getter)Bus_get_closed, NULL, "True once close() was called.", NULL},
	{"max_payload", (getter)Bus_get_max_payload, NULL,
	 "The largest payload that always fits: max(0, capacity // 2 - 64).", NULL},
	{"capacity", (getter)Bus_get_capacity, NULL, "Ring capacity in bytes.", NULL},
	{"role", (getter)Bus_get_role, NULL, "\"producer\", \"consumer\" or None.", NULL},
	{"path", (getter)Bus_get_path, NULL, "The socket path.", NULL},
	{"peer_pid", (getter)Bus_get_peer_pid, NULL, "The peer's pid, None when unknown.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Bus_slots[] = {
	{Py_tp_doc, "TachyonBus()\n--\n\n"
	            "One end of a tachyon shared-memory bus: create it with listen() or connect()."},
	{Py_tp_new, Bus_new},
	{Py_tp_dealloc, Bus_dealloc},
	{Py_tp_traverse, Bus_traverse},
	{Py_tp_repr, Bus_repr},
	{Py_tp_iter, Bus_iter},
	{Py_tp_methods, Bus_methods},
	{Py_tp_getset, Bus_getset},
	{0, NULL},
};

PyType_Spec tx_bus_spec = {
	.name = "tachyon.TachyonBus",
	.basicsize = sizeof(BusObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
	         Py_TPFLAGS_IMMUTABLETYPE,
	.slots = Bus_slots,
};

/* ------------------------------------------------------------------------ */
/* for the request/reply bus (rpc.c), which keeps one bus per ring           */

PyObject *tx_bus_new(PyTypeObject *defining, tachyon_bus *bus, PyObject *path_bytes, int role)
{
	tx_state *st = PyType_GetModuleState(defining);
	return bus_wrap(st->bus_type, defining, bus, path_bytes, role);
}

int tx_bus_recv_one(BusObject *self, tachyon_msg *m, int64_t deadline, uint32_t first_spin,
                    uint32_t wait_spin)
{
	return recv_one(self, m, deadline, first_spin, wait_spin);
}

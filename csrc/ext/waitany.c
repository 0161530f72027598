/*
 * Waiting for a message on several buses, or for room on one (waitany.h).
 * The wait holds no
 * family of any bus: the core looks at the rings without entering their
 * gates, so another thread may receive on them meanwhile (the asyncio
 * layer's event loop does, while its waiter thread sits here).
 */
#include "waitany.h"

#include "args.h"
#include "calls.h"
#include "errors.h"

/* Check one entry and make it a consumer end: 0, or -1 with an exception. */
static int take_bus(tx_state *st, PyObject *o, Py_ssize_t i, tachyon_bus **out)
{
	if (!PyObject_TypeCheck(o, st->bus_type)) {
		PyErr_Format(PyExc_TypeError, "wait: buses[%zd] is a %.100s, not a Bus", i,
		             Py_TYPE(o)->tp_name);
		return -1;
	}
	BusObject *b = (BusObject *)o;
	if (tachyon_bus_forked(b->bus))
		return tx_bus_unusable(b);
	/* A closed bus is ready (its receive raises at once); it takes no role. */
	if (!b->closed && tx_bus_want_role(b, TACHYON_ROLE_CONSUMER) < 0)
		return -1;
	*out = b->bus;
	return 0;
}

PyObject *tx_wait_any(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = {"buses", "timeout", "spin"};
	tx_state *st = PyModule_GetState(module);
	PyObject *a[3] = {NULL, NULL, NULL}, *items, *res = NULL;
	tachyon_bus **buses = NULL;
	uint8_t *ready = NULL;
	int64_t tns = TACHYON_FOREVER;
	Py_ssize_t n, i, spin = 0;

	/* spin: pauses before the first sleep (0: the core's default). A wait
	 * that also watches tcp:// buses sleeps here in short slices, each of
	 * which would otherwise start with the whole default spin. */
	if (tx_parse_args("_wait_any", args, nargs, kwnames, names, 3, 2, 1, a) < 0 ||
	    (a[1] && tx_parse_timeout(a[1], &tns) < 0) ||
	    (a[2] && tx_parse_index(a[2], "spin", &spin) < 0))
		return NULL;
	if (spin < 0 || spin > UINT32_MAX) {
		PyErr_SetString(PyExc_ValueError, "_wait_any: spin must be 0..2**32-1");
		return NULL;
	}
	/* A tuple of our own: it keeps every bus alive while the GIL is
	 * released, whatever the caller does to its list meanwhile. */
	items = PySequence_Tuple(a[0]);
	if (!items)
		return NULL;
	n = PyTuple_GET_SIZE(items);
	if (n == 0) {
		PyErr_SetString(PyExc_ValueError, "wait: no buses to wait on");
		goto done;
	}
	buses = PyMem_Calloc((size_t)n, sizeof *buses);
	ready = PyMem_Calloc((size_t)n, 1);
	if (!buses || !ready) {
		PyErr_NoMemory();
		goto done;
	}
	for (i = 0; i < n; i++)
		if (take_bus(st, PyTuple_GET_ITEM(items, i), i, &buses[i]) < 0)
			goto done;

	tx_call c = {.op = OP_WAIT_ANY, .deadline = tx_deadline(tns), .buses = buses,
	             .ready = ready, .max = (size_t)n, .spin = (uint32_t)spin};
	int r = tx_blocking(&c);
	if (r == -EINTR)
		goto done; /* an exception from a signal handler is set */
	if (r < 0 && r != -ETIMEDOUT) {
		res = tx_raise_call(st, NULL, r, "wait");
		goto done;
	}
	res = PyList_New(0);
	for (i = 0; res && r > 0 && i < n; i++) {
		if (!ready[i])
			continue;
		PyObject *idx = PyLong_FromSsize_t(i);
		if (!idx || PyList_Append(res, idx) < 0)
			Py_CLEAR(res);
		Py_XDECREF(idx);
	}
done:
	PyMem_Free(buses);
	PyMem_Free(ready);
	Py_DECREF(items);
	return res;
}

PyObject *tx_wait_room(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = {"bus", "size", "timeout"};
	tx_state *st = PyModule_GetState(module);
	PyObject *a[3] = {NULL, NULL, NULL};
	int64_t tns = TACHYON_FOREVER;
	Py_ssize_t size;

	if (tx_parse_args("_wait_room", args, nargs, kwnames, names, 3, 3, 2, a) < 0 ||
	    (a[2] && tx_parse_timeout(a[2], &tns) < 0))
		return NULL;
	if (!PyObject_TypeCheck(a[0], st->bus_type))
		return PyErr_Format(PyExc_TypeError, "_wait_room: bus is a %.100s, not a Bus",
		                    Py_TYPE(a[0])->tp_name);
	if (tx_parse_index(a[1], "size", &size) < 0)
		return NULL;
	if (size < 0)
		return PyErr_Format(PyExc_ValueError, "_wait_room: size must be >= 0");
	BusObject *b = (BusObject *)a[0];
	if (b->closed)
		Py_RETURN_TRUE; /* a send raises at once */
	if (tachyon_bus_forked(b->bus))
		return tx_bus_unusable(b), NULL;
	if (tx_bus_want_role(b, TACHYON_ROLE_PRODUCER) < 0)
		return NULL;
	/* The argument tuple keeps the bus alive while the GIL is released. */
	tachyon_bus *one[1] = {b->bus};
	tx_call c = {.op = OP_WAIT_ROOM, .deadline = tx_deadline(tns), .buses = one,
	             .size = (size_t)size};
	int r = tx_blocking(&c);
	if (r == -EINTR)
		return NULL; /* an exception from a signal handler is set */
	if (r == -ETIMEDOUT)
		Py_RETURN_FALSE;
	if (r < 0)
		return tx_raise_call(st, b->bus, r, "send_async");
	Py_RETURN_TRUE;
}

/*
 * Argument parsing shared by the methods of every type: timeouts, type ids,
 * and a small keyword matcher for METH_FASTCALL | METH_KEYWORDS methods.
 */
#include "args.h"

#include <math.h>
#include <string.h>

/* Sizes, counts, timeouts and type ids are numbers: a bool passed for one
 * is a mistake (send(data, True) is not type_id 1, timeout=True is not one
 * second), so bool is refused everywhere here, while ints, int subclasses
 * and objects with __index__ (numpy integers) are taken wherever an integer
 * is (docs/PYTHON_API.md, "Timeouts"). */
static int is_bool(PyObject *o)
{
	const char *name;
	if (PyBool_Check(o))
		return 1;
	/* numpy's bool scalar: numpy 1.x and 2.0-2.2 still give it a deprecated
	 * __index__ (a DeprecationWarning, an error under -W error); refused
	 * by name, numpy is never imported for it. */
	name = Py_TYPE(o)->tp_name;
	return strcmp(name, "numpy.bool") == 0 || strcmp(name, "numpy.bool_") == 0;
}

static int refuse_bool(PyObject *o, const char *what)
{
	if (!is_bool(o))
		return 0;
	PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", what,
	             strcmp(what, "timeout") == 0 ? "a number of seconds or None" : "an int",
	             Py_TYPE(o)->tp_name);
	return -1;
}

/* Over a century counts as no limit: the deadline (ns, int64) stays far
 * from overflowing whatever the clock says. */
#define TIMEOUT_NO_LIMIT_S 4.0e9

PyObject *tx_as_int(PyObject *o, const char *what)
{
	if (PyLong_CheckExact(o))
		return Py_NewRef(o);
	if (refuse_bool(o, what) < 0)
		return NULL;
	if (!PyIndex_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
		return NULL;
	}
	return PyNumber_Index(o);
}

static int timeout_value(PyObject *o, double *t)
{
	if (PyFloat_Check(o)) {
		*t = PyFloat_AS_DOUBLE(o);
		return 0;
	}
	if (PyLong_Check(o) || (PyIndex_Check(o) && !is_bool(o))) {
		PyObject *i;
		if (refuse_bool(o, "timeout") < 0 || !(i = PyNumber_Index(o)))
			return -1;
		*t = PyLong_AsDouble(i);
		if (*t == -1.0 && PyErr_Occurred()) {
			/* beyond a double's range: a huge wait is no limit, a huge
			 * negative one is as wrong as -1 */
			if (!PyErr_ExceptionMatches(PyExc_OverflowError))
				return -1;
			PyErr_Clear();
			*t = _PyLong_Sign(i) < 0 ? -1.0 : HUGE_VAL;
		}
		Py_DECREF(i);
		return 0;
	}
	PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, not %.100s",
	             Py_TYPE(o)->tp_name);
	return -1;
}

int tx_parse_timeout(PyObject *o, int64_t *ns)
{
	double t;
	if (o == NULL || o == Py_None) {
		*ns = TACHYON_FOREVER;
		return 0;
	}
	if (TX_LIKELY(PyFloat_CheckExact(o)))
		t = PyFloat_AS_DOUBLE(o);
	else if (timeout_value(o, &t) < 0)
		return -1;
	if (isnan(t) || t < 0) {
		PyErr_Format(PyExc_ValueError,
		             "timeout must be >= 0 seconds (0: do not wait) or None (no limit); got %R", o);
		return -1;
	}
	if (t > TIMEOUT_NO_LIMIT_S) /* inf too */
		*ns = TACHYON_FOREVER;
	else
		*ns = (int64_t)(t * 1e9);
	return 0;
}

int tx_parse_type_id(PyObject *o, uint32_t *out)
{
	int overflow = 0;
	long long v;
	if (o == NULL) {
		*out = 0;
		return 0;
	}
	if (TX_UNLIKELY(!PyLong_CheckExact(o))) {
		PyObject *i = tx_as_int(o, "type_id");
		int r;
		if (!i)
			return -1;
		r = tx_parse_type_id(i, out);
		Py_DECREF(i);
		return r;
	}
	v = PyLong_AsLongLongAndOverflow(o, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (overflow || v < 0 || v > 0xFFFFFFFFLL) {
		PyErr_Format(PyExc_ValueError, "type_id must be in 0..2**32-1 (got %R)", o);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int tx_parse_index_slow(PyObject *o, const char *what, Py_ssize_t *out)
{
	PyObject *i;
	Py_ssize_t v;
	if (PyLong_CheckExact(o)) {
		/* the fast path's leftovers: a negative value, or one beyond
		 * Py_ssize_t with the OverflowError still set */
		if (PyErr_Occurred()) {
			if (!PyErr_ExceptionMatches(PyExc_OverflowError))
				return -1;
			PyErr_Clear();
			*out = _PyLong_Sign(o) < 0 ? -1 : PY_SSIZE_T_MAX;
		} else {
			*out = -1;
		}
		return 0;
	}
	if (!(i = tx_as_int(o, what)))
		return -1;
	v = PyLong_AsSsize_t(i);
	if (v >= 0) {
		Py_DECREF(i);
		*out = v;
		return 0;
	}
	/* exact now: the branch above finishes it */
	v = tx_parse_index_slow(i, what, out);
	Py_DECREF(i);
	return (int)v;
}

int tx_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int nnames, int npos, int nreq, PyObject **out)
{
	Py_ssize_t i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	int j;
	for (j = 0; j < nnames; j++)
		out[j] = NULL;
	if (nargs > npos) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
		             fname, npos, npos == 1 ? "" : "s", nargs);
		return -1;
	}
	for (i = 0; i < nargs; i++)
		out[i] = args[i];
	for (i = 0; i < nkw; i++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, i);
		for (j = 0; j < nnames; j++)
			if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0)
				break;
		if (j == nnames) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
			             key);
			return -1;
		}
		if (out[j]) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
			             names[j]);
			return -1;
		}
		out[j] = args[nargs + i];
	}
	for (j = 0; j < nreq; j++) {
		if (!out[j]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[j]);
			return -1;
		}
	}
	return 0;
}

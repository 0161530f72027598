/*
 * Layer 1: argument parsing shared by the methods of every type.
 */
#ifndef TACHYON_EXT_ARGS_H
#define TACHYON_EXT_ARGS_H

#include "ext.h"

/* Parse a timeout into ns: None (and inf, and anything over a century)
 * -> TACHYON_FOREVER, else seconds >= 0 (0: do not wait). NaN, negative
 * values and bool are refused. */
int tx_parse_timeout(PyObject *o, int64_t *ns);
/* o as an exact int, for an integer argument named `what`: an int (or int
 * subclass) or any object with __index__ (a numpy integer, say), never a
 * bool. A new reference, or NULL with TypeError ("<what> must be an int"). */
PyObject *tx_as_int(PyObject *o, const char *what);
/* Parse a type_id in 0..2**32-1 (NULL: 0): tx_as_int's rules. */
int tx_parse_type_id(PyObject *o, uint32_t *out);
/* Parse a size or count named `what`: an int or an object with __index__,
 * not bool, not a float. Never fails on the value: below 0 comes out as -1,
 * beyond PY_SSIZE_T_MAX as PY_SSIZE_T_MAX, for the caller's range check and
 * its own message. */
int tx_parse_index_slow(PyObject *o, const char *what, Py_ssize_t *out);
static inline int tx_parse_index(PyObject *o, const char *what, Py_ssize_t *out)
{
	/* inline: send_zero_copy parses its size per message */
	if (TX_LIKELY(PyLong_CheckExact(o))) {
		Py_ssize_t v = PyLong_AsSsize_t(o);
		if (TX_LIKELY(v >= 0)) {
			*out = v;
			return 0;
		}
	}
	return tx_parse_index_slow(o, what, out);
}
/* Minimal fastcall parser: names[i] for every parameter, the first npos
 * may be positional, the first nreq are required. */
int tx_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int nnames, int npos, int nreq, PyObject **out);

#endif /* TACHYON_EXT_ARGS_H */

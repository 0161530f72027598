/*
 * Layer 1: argument parsing shared by the methods of every type.
 */
#ifndef TACHYON_EXT_ARGS_H
#define TACHYON_EXT_ARGS_H

#include "ext.h"

/* Parse a timeout (None -> TACHYON_FOREVER, else seconds >= 0) into ns. */
int tx_parse_timeout(PyObject *o, int64_t *ns);
/* Parse a type_id in 0..2**32-1 (NULL: 0). */
int tx_parse_type_id(PyObject *o, uint32_t *out);
/* Minimal fastcall parser: names[i] for every parameter, the first npos
 * may be positional, the first nreq are required. */
int tx_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, int nnames, int npos, int nreq, PyObject **out);

#endif /* TACHYON_EXT_ARGS_H */

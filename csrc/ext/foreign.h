/*
 * Layer 5: _ForeignView, a received payload that another object owns (a
 * zmq.Frame, bytes), with the same read-only buffer, DLPack export and
 * tensor-frame array as a view of a slot.
 */
#ifndef TACHYON_EXT_FOREIGN_H
#define TACHYON_EXT_FOREIGN_H

#include "ext.h"

/* Create the _ForeignView type and add it to module; 0, or -1 with an exception. */
int tx_foreign_add(PyObject *module);

#endif /* TACHYON_EXT_FOREIGN_H */

/*
 * Layer 6: tachyon._core._wait_any, waiting for a message on several
 * buses (the Python side of tachyon_bus_wait_any), and _wait_room, waiting
 * for room on one (tachyon_bus_wait_room).
 */
#ifndef TACHYON_EXT_WAITANY_H
#define TACHYON_EXT_WAITANY_H

#include "ext.h"

/* _wait_any(buses, timeout=None) -> list of the indices of the ready buses
 * ([] when the timeout passed). */
PyObject *tx_wait_any(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

/* _wait_room(bus, size, timeout=None) -> True when a send of size bytes
 * would find room now (or raise at once), False when the timeout passed. */
PyObject *tx_wait_room(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

#endif /* TACHYON_EXT_WAITANY_H */

/*
 * Layer 4: DLPack export of a received slot (RxGuard and RxMsgView), or of
 * memory another object owns (foreign.c).
 */
#ifndef TACHYON_EXT_DLPACK_H
#define TACHYON_EXT_DLPACK_H

#include "ext.h"

/* __dlpack__(stream=None, *, max_version=None, dl_device=None, copy=None)
 * of slot m of bus: pins the slot until the consumer's deleter runs. */
PyObject *tx_dlpack_export(BusObject *bus, const tx_rxmsg *m, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames);
/* The same export of memory m->data that owner keeps alive (m->seq unused):
 * the capsule holds a strong reference to owner until its deleter runs. */
PyObject *tx_dlpack_export_owned(PyObject *owner, const tx_rxmsg *m, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames);
/* __dlpack_device__(): (1, 0), CPU memory. */
PyObject *tx_dlpack_device(void);
/* (created, deleted) export contexts since import (tests: every deleter
 * runs exactly once). */
PyObject *tx_dlpack_counters(void);

#endif /* TACHYON_EXT_DLPACK_H */

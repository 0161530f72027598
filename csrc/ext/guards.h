/*
 * Layer 5: the zero-copy guards and views (TxGuard, RxGuard, RxBatchGuard,
 * RxMsgView).
 */
#ifndef TACHYON_EXT_GUARDS_H
#define TACHYON_EXT_GUARDS_H

#include "ext.h"

extern PyType_Spec tx_txguard_spec;
extern PyType_Spec tx_rxguard_spec;
extern PyType_Spec tx_rxbatch_spec;
extern PyType_Spec tx_rxview_spec;
extern PyType_Spec tx_rxbatchiter_spec;

/* A TxGuard over the open reservation (payload, size); TX family held. */
PyObject *tx_txguard_new(BusObject *bus, void *payload, size_t size, uint32_t type_id);
/* An RxGuard over slot m, pending-queue entry seq (its reference is the guard's). */
PyObject *tx_rxguard_new(BusObject *bus, const tachyon_msg *m, uint64_t seq);
/* An RxBatchGuard over n slots, entries seq0.. (their references are the batch's). */
PyObject *tx_rxbatch_new(BusObject *bus, const tachyon_msg *m, Py_ssize_t n, uint64_t seq0);
/* Give an RxGuard's slot back now, as its __exit__ does (idempotent). */
void tx_rxguard_release(RxGuardObject *g);
/* Free the guard and view blocks kept for reuse (module teardown). */
void tx_guard_freelists_clear(void);

#endif /* TACHYON_EXT_GUARDS_H */

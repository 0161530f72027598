/*
 * Layer 6: the TachyonBus type and its iterator.
 */
#ifndef TACHYON_EXT_BUS_H
#define TACHYON_EXT_BUS_H

#include "ext.h"

extern PyType_Spec tx_bus_spec;
extern PyType_Spec tx_iter_spec;

/* BusStats' attributes outside the tuple, in the order Bus.stats sets them
 * (module.c's repr shows them in this order too). */
#define TX_STATS_EXTRA 4
extern const char *const tx_stats_extra[TX_STATS_EXTRA];

/* A TachyonBus over bus (its reference is taken over, also on failure),
 * role fixed and cached; path_bytes is the socket path (bytes). defining is
 * any type of this module (for its state). */
PyObject *tx_bus_new(PyTypeObject *defining, tachyon_bus *bus, PyObject *path_bytes, int role);
/* Take one message with the consumer family held, as recv does: a spin of
 * up to first_spin tries with the GIL, then a wait without it until
 * deadline (wait_spin as tachyon_wait.spin). */
int tx_bus_recv_one(BusObject *self, tachyon_msg *m, int64_t deadline, uint32_t first_spin,
                    uint32_t wait_spin);

#endif /* TACHYON_EXT_BUS_H */

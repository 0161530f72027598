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

#endif /* TACHYON_EXT_BUS_H */

/*
 * Layer 6: the TachyonBus type and its iterator.
 */
#ifndef TACHYON_EXT_BUS_H
#define TACHYON_EXT_BUS_H

#include "ext.h"

extern PyType_Spec tx_bus_spec;
extern PyType_Spec tx_iter_spec;

#endif /* TACHYON_EXT_BUS_H */

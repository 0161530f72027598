/*
 * Layer 7: RpcBus, the request/reply bus, and its two guards (RpcRxGuard,
 * RpcTxGuard).
 */
#ifndef TACHYON_EXT_RPC_H
#define TACHYON_EXT_RPC_H

#include "ext.h"

extern PyType_Spec tx_rpc_spec;
extern PyType_Spec tx_rpc_rxguard_spec;
extern PyType_Spec tx_rpc_txguard_spec;

#endif /* TACHYON_EXT_RPC_H */

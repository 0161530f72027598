/*
 * Layer 4: the Message type.
 */
#ifndef TACHYON_EXT_MESSAGE_H
#define TACHYON_EXT_MESSAGE_H

#include "ext.h"

extern PyType_Spec tx_message_spec;
/* A Message holding a copy of m's payload. */
PyObject *tx_message_new(tx_state *st, const tachyon_msg *m);
/* Free the Message blocks kept for reuse (module teardown). */
void tx_message_freelist_clear(void);

#endif /* TACHYON_EXT_MESSAGE_H */

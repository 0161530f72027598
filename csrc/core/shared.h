/*
 * The one accessor for slot header fields in the shared data ring
 * (docs/RELIABILITY.md R2: no double fetch).
 *
 * A slot header lives in memory the peer can rewrite at any moment, so each
 * field must be fetched once into a local and every check and every pointer
 * must use that local (the ipcz and virtio rule). Routing every load through
 * TACHYON_SLOT_LOAD32 makes that checkable instead of a matter of review: a
 * build with -DTACHYON_COUNT_LOADS reports each load, with the field and the
 * address, to tachyon_count_load(), and csrc/tests/test_double_fetch.c
 * asserts that no header field is fetched twice while one message is
 * decoded. A build with that define must provide tachyon_count_load() (the
 * test does); the library itself is never built with it.
 *
 * Loads are relaxed (but the position stamp's, which is acquire): the slot
 * bytes were handed over by the acquire load of head or of the stamp
 * (ring.c); the load is atomic only so the compiler fetches the field
 * exactly once and cannot re-read it later (a plain load may be repeated or
 * split by the optimiser, which is exactly a double fetch).
 */
#ifndef TACHYON_CORE_SHARED_H
#define TACHYON_CORE_SHARED_H

#include <stdint.h>

#include "atomics.h"
#include "tachyon/wire.h"

/* Which header field a load reads (the counting hook's first argument). */
enum tachyon_slot_field {
	TACHYON_SLOT_FIELD_size = 0,
	TACHYON_SLOT_FIELD_type_id = 1,
	TACHYON_SLOT_FIELD_reserved_size = 2,
	TACHYON_SLOT_FIELD_pos_stamp = 3,
	/* A look at the stamp of a slot not yet being decoded, whose value only
	 * decides when tail is published (ring.c, consumer_released): counted
	 * apart, since the decode that follows loads the stamp again. */
	TACHYON_SLOT_FIELD_stamp_hint = 4,
	TACHYON_SLOT_FIELD_COUNT = 5
};

#if defined(TACHYON_COUNT_LOADS)
/* Called before every slot header load of a counting build. */
void tachyon_count_load(int field, const void *addr);
#define TACHYON_SLOT_LOAD32(sh, field)                                            \
	(tachyon_count_load(TACHYON_SLOT_FIELD_##field, &(sh)->field),            \
	 tachyon_atomic_load_relaxed32(&(sh)->field))
#define TACHYON_SLOT_LOAD_STAMP(sh)                                               \
	(tachyon_count_load(TACHYON_SLOT_FIELD_pos_stamp, &(sh)->pos_stamp),      \
	 tachyon_atomic_load_acquire64(&(sh)->pos_stamp))
#define TACHYON_SLOT_STAMP_HINT(sh)                                               \
	(tachyon_count_load(TACHYON_SLOT_FIELD_stamp_hint, &(sh)->pos_stamp),     \
	 tachyon_atomic_load_relaxed64(&(sh)->pos_stamp))
#else
#define TACHYON_SLOT_LOAD32(sh, field) tachyon_atomic_load_relaxed32(&(sh)->field)
/* The position stamp is the one header field loaded with acquire: it is
 * what hands the slot over when the consumer learns of it from the stamp
 * (ring.c, "Position stamps"). */
#define TACHYON_SLOT_LOAD_STAMP(sh) tachyon_atomic_load_acquire64(&(sh)->pos_stamp)
/* Relaxed: a hint that publishes nothing and exposes nothing. */
#define TACHYON_SLOT_STAMP_HINT(sh) tachyon_atomic_load_relaxed64(&(sh)->pos_stamp)
#endif

#endif /* TACHYON_CORE_SHARED_H */

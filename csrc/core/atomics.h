/*
 * Every ordering point of the library goes through these helpers, so that
 * `grep tachyon_atomic_` finds them all. The shared words are declared as
 * plain integers in tachyon/wire.h (so C++ can include it); here they are
 * accessed as C11 atomics of the same size and alignment.
 *
 * Callers comment each use: what it publishes or observes, and which access
 * on the other side it pairs with.
 */
#ifndef TACHYON_CORE_ATOMICS_H
#define TACHYON_CORE_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

#define TACHYON_AS_ATOMIC64(p) ((_Atomic uint64_t *)(void *)(p))
#define TACHYON_AS_ATOMIC32(p) ((_Atomic uint32_t *)(void *)(p))

static inline uint64_t tachyon_atomic_load_acquire64(const uint64_t *p)
{
	return atomic_load_explicit(TACHYON_AS_ATOMIC64(p), memory_order_acquire);
}

static inline uint64_t tachyon_atomic_load_relaxed64(const uint64_t *p)
{
	return atomic_load_explicit(TACHYON_AS_ATOMIC64(p), memory_order_relaxed);
}

static inline void tachyon_atomic_store_release64(uint64_t *p, uint64_t v)
{
	atomic_store_explicit(TACHYON_AS_ATOMIC64(p), v, memory_order_release);
}

static inline void tachyon_atomic_store_relaxed64(uint64_t *p, uint64_t v)
{
	atomic_store_explicit(TACHYON_AS_ATOMIC64(p), v, memory_order_relaxed);
}

static inline uint32_t tachyon_atomic_load_acquire32(const uint32_t *p)
{
	return atomic_load_explicit(TACHYON_AS_ATOMIC32(p), memory_order_acquire);
}

static inline uint32_t tachyon_atomic_load_relaxed32(const uint32_t *p)
{
	return atomic_load_explicit(TACHYON_AS_ATOMIC32(p), memory_order_relaxed);
}

static inline void tachyon_atomic_store_release32(uint32_t *p, uint32_t v)
{
	atomic_store_explicit(TACHYON_AS_ATOMIC32(p), v, memory_order_release);
}

static inline void tachyon_atomic_store_relaxed32(uint32_t *p, uint32_t v)
{
	atomic_store_explicit(TACHYON_AS_ATOMIC32(p), v, memory_order_relaxed);
}

/* Strong compare-and-swap, sequentially consistent on success (the wait-word
 * and state-word protocols rely on these being full barriers). */
static inline int tachyon_atomic_cas32(uint32_t *p, uint32_t expected, uint32_t desired)
{
	return atomic_compare_exchange_strong_explicit(TACHYON_AS_ATOMIC32(p), &expected, desired,
	                                               memory_order_seq_cst, memory_order_acquire);
}

/* Full fence: orders a preceding store before a following load (store-load),
 * which acquire/release alone never do.
 *
 * Under ThreadSanitizer (the tsan flavour defines TACHYON_TSAN) gcc does not
 * model atomic_thread_fence (-Wtsan warns, and the detector ignores it), so the
 * fence becomes a seq_cst read-modify-write of a dummy word. On x86-64 that is
 * a locked instruction, a full barrier in hardware, so the store-load ordering
 * of the wake protocols is kept. To the detector it adds synchronization
 * between fencing threads, which could hide a race but never report a false
 * one; the protocols it serves use atomics only, and every data hand-over
 * already has its own release/acquire pair on head or tail. */
static inline void tachyon_atomic_fence(void)
{
#if defined(TACHYON_TSAN)
	static _Atomic uint32_t fence_word;
	(void)atomic_fetch_add_explicit(&fence_word, 0, memory_order_seq_cst);
#elif defined(__x86_64__) && defined(__GNUC__)
	/* A locked read-modify-write of the stack top: a full barrier on x86
	 * (locked instructions are not reordered with loads or stores), and
	 * cheaper than the mfence gcc emits for a seq_cst fence, which also
	 * waits for non-temporal and weakly ordered memory traffic that this
	 * protocol never uses. The line is our own stack's, already hot. */
	__asm__ __volatile__("lock; orq $0, (%%rsp)" ::: "memory", "cc");
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Compiler-only barrier: the compiler keeps memory accesses on their side of
 * it, the CPU may still reorder (on x86 a later load may pass an earlier
 * store). Used where the other side supplies the hardware ordering with
 * membarrier() (bus.c, the asymmetric gate); every use says so. */
static inline void tachyon_compiler_barrier(void)
{
	atomic_signal_fence(memory_order_seq_cst);
}

/* A CPU pause for spin loops: frees the sibling hyperthread and the memory
 * pipeline while we wait for another core's store. */
static inline void tachyon_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif /* TACHYON_CORE_ATOMICS_H */

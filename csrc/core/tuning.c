/*
 * Tuning a bus: the consumer's polling mode (hybrid or pure spin, also
 * announced to the producer through the consumer wait word) and the NUMA
 * node of the region's pages.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bus_impl.h"

/* linux/mempolicy.h values, defined here so no libnuma header is needed. */
#define MPOL_BIND_ 2
#define MPOL_MF_MOVE_ (1 << 1)
#define MAX_NUMA_NODE 1023

int tachyon_bus_set_polling_mode(tachyon_bus *b, int pure_spin)
{
	if (!b || (pure_spin != 0 && pure_spin != 1))
		return -EINVAL;
	if (bus_forked(b))
		return -TACHYON_EFORKED;
	if (bus_is_closing(b))
		return -TACHYON_ECLOSED;
	/* Relaxed: our own consumer reads it to choose how to wait. */
	tachyon_atomic_store_relaxed32(&b->pure_spin, (uint32_t)pure_spin);

	uint32_t *word = &b->hdr->consumer_wait;
	/* Bounded: a peer flipping the word for ever must not hang us. */
	for (int tries = 0; tries < 64; tries++) {
		/* Relaxed: every change below is a CAS that re-checks the value. */
		uint32_t v = tachyon_atomic_load_relaxed32(word);
		if (pure_spin) {
			if (v == TACHYON_WAIT_PURE_SPIN || v > TACHYON_WAIT_PURE_SPIN)
				return 0;
			/* seq_cst CAS: 0 -> 2, or 1 -> 2 then wake the sleeper, which
			 * then finds 2 and spins. */
			if (tachyon_atomic_cas32(word, v, TACHYON_WAIT_PURE_SPIN)) {
				if (v == TACHYON_WAIT_SLEEPING)
					tachyon_futex_wake(word, INT32_MAX);
				return 0;
			}
		} else {
			if (v != TACHYON_WAIT_PURE_SPIN)
				return 0;
			/* seq_cst CAS 2 -> 0: hybrid again. */
			if (tachyon_atomic_cas32(word, TACHYON_WAIT_PURE_SPIN, TACHYON_WAIT_AWAKE))
				return 0;
		}
	}
	return 0;
}

/* Does NUMA node `node` exist? Without /sys/devices/system/node (a kernel
 * without NUMA) the machine has one node, 0. */
static int numa_node_exists(int node)
{
	DIR *d = opendir("/sys/devices/system/node");
	if (!d)
		return node == 0 ? 1 : 0;
	closedir(d);
	char path[64];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d", node);
	return access(path, F_OK) == 0;
}

int tachyon_bus_set_numa_node(tachyon_bus *b, int node)
{
	if (!b)
		return -EINVAL;
	if (bus_forked(b))
		return -TACHYON_EFORKED;
	if (bus_is_closing(b))
		return -TACHYON_ECLOSED;
	if (node < 0 || node > MAX_NUMA_NODE || !numa_node_exists(node))
		return -EINVAL;
#ifdef SYS_mbind
	unsigned long mask[(MAX_NUMA_NODE + 1) / (8 * sizeof(unsigned long))] = {0};
	mask[node / (8 * sizeof(unsigned long))] = 1ul << (node % (8 * sizeof(unsigned long)));
	/* maxnode counts bits the kernel may read, plus one (its historical
	 * off-by-one); MPOL_MF_MOVE also moves pages already placed, those
	 * only we map. */
	long r = syscall(SYS_mbind, b->region.base, b->region.size, MPOL_BIND_, mask,
	                 (unsigned long)node + 2, MPOL_MF_MOVE_);
	if (r < 0) {
		int e = errno;
		/* Without a NUMA-capable kernel node 0 is the only node: nothing to do. */
		if (e == ENOSYS && node == 0)
			return 0;
		return -e;
	}
	return 0;
#else
	return node == 0 ? 0 : -EINVAL;
#endif
}

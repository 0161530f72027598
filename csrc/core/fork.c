/*
 * Fork detection. The child of a fork() inherits the mapping and our bus
 * structs; every call there returns -TACHYON_EFORKED, and close and unref
 * only unmap and close descriptors, so the parent's ring and its peer see
 * nothing. The per-message check compares a generation counter that a
 * pthread_atfork child handler bumps (getpid() is a system call in glibc
 * >= 2.25); close and unref also compare getpid().
 */
#include <pthread.h>
#include <unistd.h>

#include "bus_impl.h"

/* Written only by the atfork child handler, which runs in the child before
 * it has a second thread: no other thread can read it concurrently. */
unsigned tachyon_fork_generation;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	tachyon_fork_generation++;
}

static void register_atfork(void)
{
	/* If this fails, the getpid() checks in close/unref still protect the
	 * shared state; only the data calls would miss the fork. */
	(void)pthread_atfork(NULL, NULL, on_fork_child);
}

void tachyon_fork_watch(void)
{
	pthread_once(&atfork_once, register_atfork);
}

int tachyon_fork_detected(const tachyon_bus *b)
{
	return bus_forked(b) || getpid() != b->pid;
}

int tachyon_bus_forked(const tachyon_bus *b)
{
	return b && bus_forked(b);
}

/*
 * Regions: one sealed memfd of 768 + capacity bytes holding one ring.
 *
 * The creator (our listener) formats the header; the attacher (our
 * connector) received the fd from a process it does not trust, so it checks
 * the fd itself before mapping it (a memfd, sealed against shrinking, big
 * enough) and the header after mapping it (ABI.md, "The handshake").
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/magic.h>
#include <sys/vfs.h>
#endif

#include "atomics.h"
#include "internal.h"

/* Kernels >= 6.3 have it; older headers (glibc 2.36) do not name it. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* memfd names are limited to 249 bytes (NAME_MAX minus the "memfd:" prefix);
 * the name is only a label in /proc, so a longer one is cut, not refused. */
#define MEMFD_NAME_MAX 249

#ifdef __linux__

static int make_memfd(const char *name)
{
	char label[MEMFD_NAME_MAX + 1];
	snprintf(label, sizeof label, "%s", name && name[0] ? name : "tachyon");

	/* MFD_NOEXEC_SEAL keeps the ring from ever becoming executable and is
	 * what vm.memfd_noexec=2 demands; kernels before 6.3 reject the flag
	 * with EINVAL, so try once without it. */
	int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

int tachyon_region_create(const char *name, uint64_t capacity, tachyon_region *out)
{
	if (!out)
		return -EINVAL;
	out->fd = -1;
	out->base = NULL;
	out->size = 0;
	out->capacity = 0;
	if (!tachyon_capacity_valid(capacity))
		return -EINVAL;

	size_t size = TACHYON_REGION_HEADER_SIZE + (size_t)capacity;
	int fd = make_memfd(name);
	if (fd < 0)
		return fd;

	int rc;
	if (ftruncate(fd, (off_t)size) < 0 || fchmod(fd, 0600) < 0 ||
	    /* SHRINK keeps the peer's mapping from turning into SIGBUS, GROW keeps
	     * the size the handshake announces true, SEAL makes both permanent. */
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		rc = -errno;
		close(fd);
		return rc;
	}

	/* Fresh memfd pages are zero: head, tail, wait words and the zero areas
	 * are already right. Nobody else holds the fd yet, so the creator's
	 * fields are plain stores; the state store below publishes them. */
	struct tachyon_region_header *hdr = base;
	hdr->magic = TACHYON_MAGIC;
	hdr->version = TACHYON_WIRE_VERSION;
	hdr->capacity = (uint32_t)capacity;
	hdr->msg_alignment = TACHYON_MSG_ALIGNMENT;
	/* Relaxed is enough: the release store of the state right after it
	 * publishes the marker together with the header. */
	tachyon_atomic_store_relaxed32(&hdr->listener_marker, TACHYON_PEER_MARKER);
	/* Relaxed, published the same way: for an observer only (ABI.md). */
	tachyon_atomic_store_relaxed32(&hdr->listener_pid, (uint32_t)getpid());
	/* Release: a peer that loads READY (acquire, in tachyon_region_attach or
	 * a ring end's attach) also sees magic, version, capacity, alignment and
	 * our marker as written above. */
	tachyon_atomic_store_release32(&hdr->state, TACHYON_STATE_READY);

	out->fd = fd;
	out->base = base;
	out->size = size;
	out->capacity = capacity;
	return 0;
}

static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a pipe";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISDIR(mode))
		return "a directory";
	return "not a regular file";
}

/* The fd checks that come before mapping. Returns 0 or -TACHYON_EHANDSHAKE. */
static int check_fd(int fd, size_t need)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent cannot be examined (%s)",
		                              strerror(errno));
	if (!S_ISREG(st.st_mode))
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent is %s, not a memfd",
		                              file_kind(st.st_mode));

	/* Only a memfd lives on tmpfs or hugetlbfs and answers F_GET_SEALS; a
	 * file on disk could be truncated by anyone who can open it. */
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent cannot be examined (%s)",
		                              strerror(errno));
	unsigned long fstype = (unsigned long)sfs.f_type;
	if (fstype != (unsigned long)TMPFS_MAGIC && fstype != (unsigned long)HUGETLBFS_MAGIC)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent is a file on a filesystem of type "
		                              "0x%lx, not a memfd: whoever can open that file could "
		                              "truncate it under our mapping",
		                              fstype);

	/* Seals first, size second: once SHRINK is set it can never be removed,
	 * so a size read after it is a lower bound for ever. The other order
	 * leaves a window where the sender shrinks the file after we measured
	 * it and only then seals it. */
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent is a tmpfs file but not a memfd "
		                              "(it takes no seals), so it cannot be sealed against "
		                              "shrinking");
	if (!(seals & F_SEAL_SHRINK))
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the descriptor it sent is not sealed against shrinking "
		                              "(F_SEAL_SHRINK): it could be truncated under our mapping");
	if (fstat(fd, &st) < 0 || st.st_size < 0 || (uint64_t)st.st_size < (uint64_t)need)
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the memfd it sent holds %lld bytes, less than the %zu "
		                              "(768 + capacity) its handshake announces",
		                              (long long)st.st_size, need);
	return 0;
}

int tachyon_region_attach(int fd, uint64_t capacity, tachyon_region *out)
{
	if (!out) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	out->fd = -1;
	out->base = NULL;
	out->size = 0;
	out->capacity = 0;
	if (fd < 0)
		return -TACHYON_EHANDSHAKE;
	if (!tachyon_capacity_valid(capacity)) {
		close(fd);
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "it announces a ring capacity of %llu bytes, not a power "
		                              "of two between 64 and 2**31",
		                              (unsigned long long)capacity);
	}
	size_t size = TACHYON_REGION_HEADER_SIZE + (size_t)capacity;
	if (check_fd(fd, size) < 0) {
		close(fd);
		return -TACHYON_EHANDSHAKE;
	}
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		/* e.g. F_SEAL_WRITE/FUTURE_WRITE, or a huge page size that does not
		 * divide the size: not a ring we can use. */
		int e = errno;
		close(fd);
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the memfd it sent cannot be mapped for reading and "
		                              "writing (%s; sealed against writing?)",
		                              strerror(e));
	}

	/* The header is shared memory written by the other side: each field is
	 * loaded once into a local and only the locals are checked. */
	struct tachyon_region_header *hdr = base;
	/* Acquire: pairs with the creator's release store of READY (or a later
	 * CLOSED), so the creator's fields read below are the ones it wrote. */
	uint32_t state = tachyon_atomic_load_acquire32(&hdr->state);
	/* Relaxed: the creator writes these once, before the state store the
	 * acquire above observed. */
	uint32_t magic = tachyon_atomic_load_relaxed32(&hdr->magic);
	uint32_t version = tachyon_atomic_load_relaxed32(&hdr->version);
	uint32_t cap = tachyon_atomic_load_relaxed32(&hdr->capacity);
	uint32_t align = tachyon_atomic_load_relaxed32(&hdr->msg_alignment);
	if (magic != TACHYON_MAGIC || version != TACHYON_WIRE_VERSION || cap != capacity ||
	    align != TACHYON_MSG_ALIGNMENT ||
	    (state != TACHYON_STATE_READY && state != TACHYON_STATE_CLOSED)) {
		munmap(base, size);
		close(fd);
		if (magic != TACHYON_MAGIC || version != TACHYON_WIRE_VERSION ||
		    align != TACHYON_MSG_ALIGNMENT)
			return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
			                              "the region it sent has magic 0x%08x, version %u and "
			                              "alignment %u in its header; the handshake promised "
			                              "0x%08x, %u and %u",
			                              magic, version, align, TACHYON_MAGIC,
			                              TACHYON_WIRE_VERSION, TACHYON_MSG_ALIGNMENT);
		if (cap != capacity)
			return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
			                              "the region it sent says capacity %u in its header; "
			                              "the handshake said %llu",
			                              cap, (unsigned long long)capacity);
		return tachyon_detail_fail(-TACHYON_EHANDSHAKE,
		                              "the region it sent is in state %u, neither ready (2) "
		                              "nor closed (3)",
		                              state);
	}

	out->fd = fd;
	out->base = base;
	out->size = size;
	out->capacity = capacity;
	return 0;
}

#else /* !__linux__: no memfd, no seals */

int tachyon_region_create(const char *name, uint64_t capacity, tachyon_region *out)
{
	if (out) {
		out->fd = -1;
		out->base = NULL;
		out->size = 0;
		out->capacity = 0;
	}
	return tachyon_capacity_valid(capacity) ? -ENOSYS : -EINVAL;
}

int tachyon_region_attach(int fd, uint64_t capacity, tachyon_region *out)
{
	if (out) {
		out->fd = -1;
		out->base = NULL;
		out->size = 0;
		out->capacity = 0;
	}
	if (fd >= 0)
		close(fd);
	return -TACHYON_EHANDSHAKE;
}

#endif

void tachyon_region_release(tachyon_region *r)
{
	if (!r)
		return;
	if (r->base)
		munmap(r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->base = NULL;
	r->fd = -1;
	r->size = 0;
	r->capacity = 0;
}

/*
 * Regions: create/attach round trip, capacity validation, and every kind of
 * fd or header tachyon_region_attach must refuse (docs/RELIABILITY.md R4, R8),
 * with the process's fd count unchanged after each.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomics.h"
#include "internal.h"
#include "testlib.h"

#define CAP 4096u

/* A memfd of `size` bytes holding a well-formed header for `cap`, sealed
 * with `seals` (0: unsealed). `mutate` may then spoil one header field. */
static int make_region_fd(uint64_t cap, size_t size, int seals,
                          void (*mutate)(struct tachyon_region_header *))
{
	int fd = memfd_create("test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	REQUIRE(fd >= 0);
	REQUIRE(ftruncate(fd, (off_t)size) == 0);
	struct tachyon_region_header h;
	memset(&h, 0, sizeof h);
	h.magic = TACHYON_MAGIC;
	h.version = TACHYON_WIRE_VERSION;
	h.capacity = (uint32_t)cap;
	h.msg_alignment = TACHYON_MSG_ALIGNMENT;
	h.state = TACHYON_STATE_READY;
	if (mutate)
		mutate(&h);
	REQUIRE(pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h);
	if (seals)
		REQUIRE(fcntl(fd, F_ADD_SEALS, seals) == 0);
	return fd;
}

/* The same well-formed header in a plain file (no memfd, no seals). */
static int make_file_fd(const char *dir, uint64_t cap)
{
	char path[256];
	snprintf(path, sizeof path, "%s/tachyon-test-region-%d", dir, (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	unlink(path);
	REQUIRE(ftruncate(fd, (off_t)(TACHYON_REGION_HEADER_SIZE + cap)) == 0);
	struct tachyon_region_header h;
	memset(&h, 0, sizeof h);
	h.magic = TACHYON_MAGIC;
	h.version = TACHYON_WIRE_VERSION;
	h.capacity = (uint32_t)cap;
	h.msg_alignment = TACHYON_MSG_ALIGNMENT;
	h.state = TACHYON_STATE_READY;
	REQUIRE(pwrite(fd, &h, sizeof h, 0) == (ssize_t)sizeof h);
	return fd;
}

static void bad_magic(struct tachyon_region_header *h) { h->magic ^= 1; }
static void bad_version(struct tachyon_region_header *h) { h->version = 3; }
static void bad_capacity(struct tachyon_region_header *h) { h->capacity = CAP / 2; }
static void bad_alignment(struct tachyon_region_header *h) { h->msg_alignment = 128; }
static void state_uninit(struct tachyon_region_header *h) { h->state = TACHYON_STATE_UNINITIALIZED; }
static void state_initializing(struct tachyon_region_header *h) { h->state = TACHYON_STATE_INITIALIZING; }
static void state_fatal(struct tachyon_region_header *h) { h->state = TACHYON_STATE_FATAL; }
static void state_bogus(struct tachyon_region_header *h) { h->state = 77; }
static void state_closed(struct tachyon_region_header *h) { h->state = TACHYON_STATE_CLOSED; }

#define FULL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* attach must refuse fd with -TACHYON_EHANDSHAKE, close it, and leave
 * the fd count as it was before fd was made (base). */
static void expect_refused(const char *what, int fd, uint64_t cap, int base)
{
	tachyon_region r;
	int rc = tachyon_region_attach(fd, cap, &r);
	if (rc != -TACHYON_EHANDSHAKE)
		fprintf(stderr, "attach(%s) = %d\n", what, rc);
	CHECK_EQ(rc, -TACHYON_EHANDSHAKE);
	CHECK(r.base == NULL && r.fd == -1);
	if (rc == 0)
		tachyon_region_release(&r);
	int now = test_count_fds();
	if (now != base)
		fprintf(stderr, "attach(%s) leaked: %d fds, was %d\n", what, now, base);
	CHECK_EQ(now, base);
}

static void test_round_trip(void)
{
	int base = test_count_fds();
	tachyon_region a;
	REQUIRE(tachyon_region_create("/tmp/test-region.sock", CAP, &a) == 0);
	CHECK(a.fd >= 0);
	CHECK_EQ(a.size, TACHYON_REGION_HEADER_SIZE + CAP);
	CHECK_EQ(a.capacity, CAP);
	CHECK(fcntl(a.fd, F_GETFD) & FD_CLOEXEC);

	/* The memfd itself: mode 0600, sealed against resizing for good. */
	struct stat st;
	REQUIRE(fstat(a.fd, &st) == 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(st.st_size, TACHYON_REGION_HEADER_SIZE + CAP);
	int seals = fcntl(a.fd, F_GET_SEALS);
	CHECK(seals >= 0 && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW) && (seals & F_SEAL_SEAL));
	CHECK(ftruncate(a.fd, 100) < 0);

	const struct tachyon_region_header *h = a.base;
	CHECK_EQ(h->magic, TACHYON_MAGIC);
	CHECK_EQ(h->version, TACHYON_WIRE_VERSION);
	CHECK_EQ(h->capacity, CAP);
	CHECK_EQ(h->msg_alignment, TACHYON_MSG_ALIGNMENT);
	CHECK_EQ(h->state, TACHYON_STATE_READY);
	CHECK_EQ(h->listener_marker, TACHYON_PEER_MARKER);
	CHECK_EQ(h->connector_marker, 0);
	CHECK_EQ(h->head, 0);
	CHECK_EQ(h->tail, 0);
	CHECK_EQ(h->consumer_wait, 0);

	int fd2 = fcntl(a.fd, F_DUPFD_CLOEXEC, 0);
	REQUIRE(fd2 >= 0);
	tachyon_region b;
	CHECK_EQ(tachyon_region_attach(fd2, CAP, &b), 0);
	CHECK_EQ(b.fd, fd2);
	CHECK_EQ(b.capacity, CAP);
	CHECK_EQ(b.size, a.size);
	CHECK(b.base != NULL && b.base != a.base);
	/* Two mappings of one memory: a write through one shows in the other. */
	if (b.base) {
		uint8_t *ra = (uint8_t *)a.base + TACHYON_REGION_HEADER_SIZE;
		const uint8_t *rb = (const uint8_t *)b.base + TACHYON_REGION_HEADER_SIZE;
		memset(ra, 0x5A, CAP);
		CHECK_EQ(rb[0], 0x5A);
		CHECK_EQ(rb[CAP - 1], 0x5A);
		tachyon_atomic_store_release32(&((struct tachyon_region_header *)b.base)->connector_marker,
		                               TACHYON_PEER_MARKER);
		CHECK_EQ(h->connector_marker, TACHYON_PEER_MARKER);
	}
	tachyon_region_release(&b);
	CHECK(b.fd == -1 && b.base == NULL);
	tachyon_region_release(&a);
	tachyon_region_release(&a); /* twice is harmless */
	CHECK_EQ(test_count_fds(), base);

	/* A closed region (state 3) may still be attached: deliver, then report. */
	int fd = make_region_fd(CAP, TACHYON_REGION_HEADER_SIZE + CAP, FULL_SEALS, state_closed);
	CHECK_EQ(tachyon_region_attach(fd, CAP, &b), 0);
	tachyon_region_release(&b);
	/* Larger than announced is fine (a hugetlbfs memfd is rounded up). */
	fd = make_region_fd(CAP, TACHYON_REGION_HEADER_SIZE + 2 * CAP, FULL_SEALS, NULL);
	CHECK_EQ(tachyon_region_attach(fd, CAP, &b), 0);
	tachyon_region_release(&b);
	/* SHRINK alone is the seal that matters. */
	fd = make_region_fd(CAP, TACHYON_REGION_HEADER_SIZE + CAP, F_SEAL_SHRINK, NULL);
	CHECK_EQ(tachyon_region_attach(fd, CAP, &b), 0);
	tachyon_region_release(&b);
	CHECK_EQ(test_count_fds(), base);
}

static void test_capacities(void)
{
	static const uint64_t bad[] = {
		0, 1, 32, 63, 65, 96, 100, 4095, 4097,
		(UINT64_C(1) << 31) + 64, (UINT64_C(1) << 31) + 1, UINT64_C(1) << 32,
		(UINT64_C(1) << 32) + 64, UINT64_C(1) << 63, UINT64_MAX,
	};
	static const uint64_t good[] = {64, 128, 4096, UINT64_C(1) << 20, UINT64_C(1) << 31};
	int base = test_count_fds();
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(!tachyon_capacity_valid(bad[i]));
		tachyon_region r;
		CHECK_EQ(tachyon_region_create("bad", bad[i], &r), -EINVAL);
		CHECK(r.fd == -1 && r.base == NULL);
		/* attach with a bad capacity refuses and still takes the fd */
		int fd = make_region_fd(64, TACHYON_REGION_HEADER_SIZE + 64, FULL_SEALS, NULL);
		CHECK_EQ(tachyon_region_attach(fd, bad[i], &r), -TACHYON_EHANDSHAKE);
		CHECK_EQ(test_count_fds(), base);
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(tachyon_capacity_valid(good[i]));

	/* The smallest ring works end to end. */
	tachyon_region r;
	CHECK_EQ(tachyon_region_create("", 64, &r), 0);
	CHECK_EQ(r.size, TACHYON_REGION_HEADER_SIZE + 64);
	tachyon_region_release(&r);
	CHECK_EQ(test_count_fds(), base);
}

static void test_attach_refusals(void)
{
	int base = test_count_fds();
	size_t size = TACHYON_REGION_HEADER_SIZE + CAP;

	int p[2];
	REQUIRE(pipe2(p, O_CLOEXEC) == 0);
	close(p[1]);
	expect_refused("pipe", p[0], CAP, base);

	/* Well-formed headers in plain files: refused for what the fd is. */
	int fd = make_file_fd("/tmp", CAP);
	REQUIRE(fd >= 0);
	expect_refused("regular file in /tmp", fd, CAP, base);
	fd = make_file_fd("/dev/shm", CAP); /* tmpfs, answers F_GET_SEALS, but unsealed */
	if (fd >= 0)
		expect_refused("regular file in /dev/shm", fd, CAP, base);

	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	expect_refused("/dev/null", fd, CAP, base);

	fd = make_region_fd(CAP, size, 0, NULL);
	expect_refused("unsealed memfd", fd, CAP, base);
	fd = make_region_fd(CAP, size, F_SEAL_GROW | F_SEAL_SEAL, NULL);
	expect_refused("memfd sealed without SHRINK", fd, CAP, base);
	fd = make_region_fd(CAP, size - 64, FULL_SEALS, NULL);
	expect_refused("memfd sealed but too small", fd, CAP, base);
	fd = make_region_fd(CAP, TACHYON_REGION_HEADER_SIZE, FULL_SEALS, NULL);
	expect_refused("memfd of a bare header", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS | F_SEAL_FUTURE_WRITE, NULL);
	expect_refused("memfd sealed against writing", fd, CAP, base);

	fd = make_region_fd(CAP, size, FULL_SEALS, bad_magic);
	expect_refused("wrong magic", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, bad_version);
	expect_refused("wrong version", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, bad_capacity);
	expect_refused("wrong capacity in the header", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, bad_alignment);
	expect_refused("wrong alignment", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, state_uninit);
	expect_refused("state 0", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, state_initializing);
	expect_refused("state 1", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, state_fatal);
	expect_refused("state 4", fd, CAP, base);
	fd = make_region_fd(CAP, size, FULL_SEALS, state_bogus);
	expect_refused("state 77", fd, CAP, base);
	/* A good region attached with another capacity than it holds. */
	fd = make_region_fd(CAP, size, FULL_SEALS, NULL);
	expect_refused("capacity differs from the announcement", fd, CAP / 2, base);

	tachyon_region r;
	CHECK_EQ(tachyon_region_attach(-1, CAP, &r), -TACHYON_EHANDSHAKE);
	CHECK_EQ(test_count_fds(), base);
}

int main(void)
{
	test_round_trip();
	test_capacities();
	test_attach_refusals();
	return test_result("test_region");
}

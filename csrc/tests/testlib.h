/* Small helpers shared by the C tests: checks that report file and line,
 * fd counting, unique socket paths, child processes. */
#ifndef TACHYON_TESTLIB_H
#define TACHYON_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "tachyon/tachyon.h"

#define TEST_SKIP 77

extern int test_failures;

/* Record a failure and go on. */
#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			test_failures++; \
		} \
	} while (0)

/* Compare two integers, printing both on failure. */
#define CHECK_EQ(a, b) \
	do { \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
		if (check_a_ != check_b_) { \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, \
			        __LINE__, #a, #b, check_a_, check_b_); \
			test_failures++; \
		} \
	} while (0)

/* Stop the test at once (a state the rest cannot run from). */
#define REQUIRE(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1); \
		} \
	} while (0)

/* Exit status for main(): 0 when every check passed. */
int test_result(const char *name);

/* Number of open file descriptors of this process. */
int test_count_fds(void);

/* A fresh socket path under /tmp unique to this process and call. */
const char *test_socket_path(char *buf, size_t len, const char *tag);

/* A tachyon_wait with a relative timeout in milliseconds (negative: forever). */
tachyon_wait test_wait_ms(int64_t ms);

/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t test_rand(uint64_t *state);

/* FNV-1a over a buffer: the checksum of the message tests. */
uint32_t test_checksum(const void *data, size_t len);

/* The checked message format of the stream tests and the soak: [seq u64]
 * [FNV-1a of the rest u32][pseudo-random bytes] when size >= 12, else the
 * first size bytes of seq. */
void test_fill_message(uint8_t *p, uint32_t size, uint64_t seq);

/* Does a received payload carry exactly what test_fill_message wrote for seq? */
int test_check_payload(const uint8_t *data, uint32_t size, uint64_t seq);

/* Wait for a child and return its exit status (or 128 + signal). */
int test_wait_child(pid_t pid);

/* A connected pair of buses in this process over a fresh socket path named
 * after tag: the listener accepts in a thread while this thread connects;
 * the listener claims listen_role up front (TACHYON_ROLE_NONE: no claim).
 * Stops the test when either side fails. */
void test_make_pair(uint64_t capacity, int listen_role, const char *tag, tachyon_bus **listener,
                    tachyon_bus **connector);

#endif

#include "testlib.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int test_failures;

int test_result(const char *name)
{
	if (test_failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
		return 1;
	}
	return 0;
}

int test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

const char *test_socket_path(char *buf, size_t len, const char *tag)
{
	static int counter;
	snprintf(buf, len, "/tmp/tachyon-test-%d-%s-%d.sock", (int)getpid(), tag, counter++);
	unlink(buf);
	return buf;
}

tachyon_wait test_wait_ms(int64_t ms)
{
	tachyon_wait w = {0};
	w.deadline_ns = ms < 0 ? TACHYON_FOREVER : tachyon_deadline_after(ms * 1000000);
	return w;
}

uint64_t test_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

uint32_t test_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

void test_fill_message(uint8_t *p, uint32_t size, uint64_t seq)
{
	uint8_t small[12] = {0};
	memcpy(small, &seq, 8);
	if (size < 12) {
		memcpy(p, small, size);
		return;
	}
	uint64_t st = seq * 31 + 7;
	uint32_t i = 12;
	for (; i + 8 <= size; i += 8) {
		uint64_t r = test_rand(&st);
		memcpy(p + i, &r, 8);
	}
	uint64_t r = test_rand(&st);
	memcpy(p + i, &r, size - i);
	uint32_t sum = test_checksum(p + 12, size - 12);
	memcpy(p, &seq, 8);
	memcpy(p + 8, &sum, 4);
}

int test_check_payload(const uint8_t *data, uint32_t size, uint64_t seq)
{
	if (size < 12) {
		uint8_t small[12] = {0};
		memcpy(small, &seq, 8);
		return memcmp(data, small, size) == 0;
	}
	uint64_t s;
	uint32_t sum;
	memcpy(&s, data, 8);
	memcpy(&sum, data + 8, 4);
	return s == seq && sum == test_checksum(data + 12, size - 12);
}

int test_wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

struct accept_arg {
	tachyon_listener *l;
	tachyon_bus *bus;
	int rc;
};

static void *accept_main(void *p)
{
	struct accept_arg *a = p;
	tachyon_wait w = test_wait_ms(5000);
	a->rc = tachyon_listener_accept(a->l, &w, &a->bus);
	return NULL;
}

void test_make_pair(uint64_t capacity, int listen_role, const char *tag, tachyon_bus **listener,
                    tachyon_bus **connector)
{
	char path[108];
	test_socket_path(path, sizeof path, tag);
	tachyon_listen_opts opts = {.role = listen_role};
	struct accept_arg a = {0};
	REQUIRE(tachyon_listener_open(path, capacity, &opts, &a.l) == 0);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, accept_main, &a) == 0);
	tachyon_wait w = test_wait_ms(5000);
	int rc = tachyon_bus_connect(path, &w, connector);
	pthread_join(t, NULL);
	tachyon_listener_close(a.l);
	REQUIRE(rc == 0);
	REQUIRE(a.rc == 0);
	*listener = a.bus;
}

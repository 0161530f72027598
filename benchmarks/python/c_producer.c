/*
 * c_producer - a C producer for the Python consumer benchmarks.
 *
 *   c_producer SOCKET_PATH SIZE [--cpu N] [--batch 256]
 *
 * Connects to a listening bus as its producer and sends SIZE-byte messages
 * as fast as the ring takes them (reserve + memcpy + commit, flush every
 * --batch messages, like send_many with batches of 256), waiting for room
 * when the ring is full, until the consumer closes the bus. Prints the
 * number of messages sent. Exit 0 when the consumer closed, 1 on error.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tachyon/tachyon.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SOCKET_PATH SIZE [--cpu N] [--batch N]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	size_t size = strtoul(argv[2], NULL, 10);
	int cpu = -1;
	unsigned batch = 256;
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--cpu"))
			cpu = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--batch"))
			batch = (unsigned)strtoul(argv[i + 1], NULL, 10);
	}
	if (batch == 0)
		batch = 1;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			perror("sched_setaffinity");
	}
	char *payload = malloc(size ? size : 1);
	if (!payload)
		return 1;
	memset(payload, 0x5A, size);

	tachyon_wait cw = {tachyon_deadline_after(INT64_C(10000000000)), 0, NULL, NULL};
	tachyon_bus *bus;
	int rc = tachyon_bus_connect(path, &cw, &bus);
	if (rc < 0) {
		fprintf(stderr, "c_producer: connect: %s\n", tachyon_strerror(rc));
		return 1;
	}
	tachyon_bus_set_role(bus, TACHYON_ROLE_PRODUCER);

	tachyon_wait forever = {TACHYON_FOREVER, 0, NULL, NULL};
	unsigned long long sent = 0;
	for (;;) {
		for (unsigned k = 0; k < batch; k++) {
			void *p;
			rc = tachyon_bus_reserve(bus, size, &p, &forever);
			if (rc < 0)
				goto done;
			memcpy(p, payload, size);
			rc = tachyon_bus_commit(bus, size, 1);
			if (rc < 0)
				goto done;
			sent++;
		}
		rc = tachyon_bus_flush(bus);
		if (rc < 0)
			goto done;
	}
done:
	printf("%llu\n", sent);
	tachyon_bus_close(bus);
	tachyon_bus_unref(bus);
	if (rc == -TACHYON_EPEERCLOSED || rc == -TACHYON_EPEERDEAD)
		return 0;
	fprintf(stderr, "c_producer: %s\n", tachyon_strerror(rc));
	return 1;
}

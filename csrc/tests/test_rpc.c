/* The request/reply bus: the handshake (flags 1, two fds, refusal of the
 * other kind of bus), the slot header fields, the id and reply-order rules,
 * a reply with the wrong id, a hostile reverse ring, close from another
 * thread, and a callee process that dies while a call waits. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus_impl.h"
#include "testlib.h"

#define CAP 4096

struct listen_args {
	const char *path;
	tachyon_rpc *rpc;
	tachyon_bus *plain;
	int rc;
	int want_plain;
};

static void *listen_main(void *p)
{
	struct listen_args *a = p;
	tachyon_wait w = test_wait_ms(5000);
	if (a->want_plain)
		a->rc = tachyon_bus_listen(a->path, CAP, NULL, &w, &a->plain);
	else
		a->rc = tachyon_rpc_listen(a->path, CAP, CAP * 2, NULL, &w, &a->rpc);
	return NULL;
}

/* A connected request/reply pair in this process. */
static void make_pair(const char *tag, tachyon_rpc **callee, tachyon_rpc **caller)
{
	char path[108];
	struct listen_args a = {.path = test_socket_path(path, sizeof path, tag)};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, listen_main, &a) == 0);
	tachyon_wait w = test_wait_ms(5000);
	int rc = tachyon_rpc_connect(path, &w, caller);
	pthread_join(t, NULL);
	REQUIRE(rc == 0 && a.rc == 0);
	*callee = a.rpc;
}

static void test_encode_decode(void)
{
	struct tachyon_handshake h;
	tachyon_handshake_encode_rpc(4096, 8192, &h);
	CHECK_EQ(h.flags, 1);
	CHECK_EQ(h.capacity, 4096);
	CHECK_EQ(h.shm_size, 768 + 4096);
	CHECK_EQ(h.capacity2, 8192);
	CHECK_EQ(h.shm_size2, 768 + 8192);
	uint64_t f = 0, r = 0;
	CHECK_EQ(tachyon_handshake_decode_rpc(&h, sizeof h, &f, &r), 0);
	CHECK_EQ(f, 4096);
	CHECK_EQ(r, 8192);
	/* Each kind refuses the other as a protocol mismatch. */
	CHECK_EQ(tachyon_handshake_decode(&h, sizeof h, &f), -TACHYON_EABI);
	struct tachyon_handshake p;
	tachyon_handshake_encode(4096, &p);
	CHECK_EQ(tachyon_handshake_decode_rpc(&p, sizeof p, &f, &r), -TACHYON_EABI);
	/* A reverse ring announced with the wrong size is malformed. */
	h.shm_size2 = 768 + 4096;
	CHECK_EQ(tachyon_handshake_decode_rpc(&h, sizeof h, &f, &r), -TACHYON_EHANDSHAKE);
}

/* Plain connector against a request/reply listener, and the reverse: both
 * refused as an ABI mismatch, and no descriptor leaks. */
static void test_kind_mismatch(void)
{
	int fds = test_count_fds();
	char path[108];
	for (int plain_listener = 0; plain_listener < 2; plain_listener++) {
		struct listen_args a = {.path = test_socket_path(path, sizeof path, "rpc-kind"),
		                        .want_plain = plain_listener};
		pthread_t t;
		REQUIRE(pthread_create(&t, NULL, listen_main, &a) == 0);
		tachyon_wait w = test_wait_ms(5000);
		int rc;
		if (plain_listener) {
			tachyon_rpc *r = NULL;
			rc = tachyon_rpc_connect(path, &w, &r);
			CHECK(r == NULL);
		} else {
			tachyon_bus *b = NULL;
			rc = tachyon_bus_connect(path, &w, &b);
			CHECK(b == NULL);
		}
		CHECK_EQ(rc, -TACHYON_EABI);
		CHECK(strstr(tachyon_handshake_detail(), plain_listener ? "plain bus" : "request/reply"));
		pthread_join(t, NULL);
		/* The listener handed its fds over and is done either way. */
		tachyon_rpc_unref(a.rpc);
		tachyon_bus_unref(a.plain);
	}
	CHECK_EQ(test_count_fds(), fds);
}

static void test_round_trips(void)
{
	tachyon_rpc *callee, *caller;
	make_pair("rpc-rt", &callee, &caller);
	CHECK(tachyon_rpc_is_callee(callee));
	CHECK(!tachyon_rpc_is_callee(caller));
	CHECK_EQ(tachyon_bus_role(tachyon_rpc_requests(caller)), TACHYON_ROLE_PRODUCER);
	CHECK_EQ(tachyon_bus_role(tachyon_rpc_replies(caller)), TACHYON_ROLE_CONSUMER);
	CHECK_EQ(tachyon_bus_role(tachyon_rpc_requests(callee)), TACHYON_ROLE_CONSUMER);
	CHECK_EQ(tachyon_bus_role(tachyon_rpc_replies(callee)), TACHYON_ROLE_PRODUCER);
	CHECK_EQ(tachyon_bus_capacity(tachyon_rpc_replies(caller)), CAP * 2);
	tachyon_wait w = test_wait_ms(2000);

	/* Three calls in flight: ids 1, 2, 3. */
	uint64_t ids[3];
	for (int i = 0; i < 3; i++) {
		char req[16];
		int n = snprintf(req, sizeof req, "req%d", i);
		CHECK_EQ(tachyon_rpc_call(caller, req, (size_t)n, (uint16_t)(10 + i), &ids[i], &w), 0);
		CHECK_EQ(ids[i], (uint64_t)i + 1);
	}
	CHECK_EQ(tachyon_rpc_next_id(caller), 4);
	/* Replies are waited for in call order: 2 before 1 is refused, and so
	 * is an id never sent; nothing is read. */
	tachyon_msg m;
	CHECK_EQ(tachyon_rpc_wait(caller, 2, &m, &w), -EINVAL);
	CHECK_EQ(tachyon_rpc_wait(caller, 9, &m, &w), -EINVAL);
	/* The callee end cannot call, the caller cannot serve. */
	CHECK_EQ(tachyon_rpc_call(callee, "x", 1, 1, NULL, &w), -EINVAL);
	CHECK_EQ(tachyon_rpc_serve(caller, &m, NULL, &w), -EINVAL);

	for (int i = 0; i < 3; i++) {
		uint64_t cid = 0;
		CHECK_EQ(tachyon_rpc_serve(callee, &m, &cid, &w), 0);
		CHECK_EQ(cid, ids[i]);
		CHECK_EQ(m.type_id, 10 + i);
		/* The wire fields: offset 12 zero, the id at offset 16. */
		const struct tachyon_slot_header *h = (const void *)(tachyon_msg_aligned_data(&m) - 64);
		CHECK_EQ(h->unused0, 0);
		CHECK_EQ(h->correlation_id, ids[i]);
		tachyon_bus_release_to(tachyon_rpc_requests(callee), m.end, 1);
	}
	/* Replies go in request order: 2 before 1 is refused, nothing written. */
	CHECK_EQ(tachyon_rpc_reply(callee, 2, "r", 1, 1, &w), -EINVAL);
	CHECK_EQ(tachyon_rpc_reply(callee, 7, "r", 1, 1, &w), -EINVAL);
	for (int i = 0; i < 3; i++) {
		char rep[16];
		int n = snprintf(rep, sizeof rep, "reply%d", i);
		CHECK_EQ(tachyon_rpc_reply(callee, ids[i], rep, (size_t)n, (uint16_t)(20 + i), &w), 0);
	}
	CHECK_EQ(tachyon_rpc_reply(callee, 4, "r", 1, 1, &w), -EINVAL); /* nothing left to answer */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(tachyon_rpc_wait(caller, ids[i], &m, &w), 0);
		char rep[16];
		int n = snprintf(rep, sizeof rep, "reply%d", i);
		CHECK_EQ(m.size, n);
		CHECK(memcmp(m.data, rep, (size_t)n) == 0);
		CHECK_EQ(m.type_id, 20 + i);
		CHECK_EQ(tachyon_rpc_msg_id(&m), ids[i]);
		tachyon_bus_release_to(tachyon_rpc_replies(caller), m.end, 1);
	}
	/* Nothing pending: a wait for the next id (not yet called) is refused. */
	CHECK_EQ(tachyon_rpc_wait(caller, 4, &m, &w), -EINVAL);
	tachyon_rpc_close(caller);
	tachyon_rpc_close(callee);
	tachyon_rpc_unref(caller);
	tachyon_rpc_unref(callee);
}

/* A callee that answers with the wrong id (a broken or hostile peer): the
 * caller marks the reverse ring fatal, as 0.5.1 does, and exposes nothing. */
static void test_wrong_id(void)
{
	tachyon_rpc *callee, *caller;
	make_pair("rpc-wrongid", &callee, &caller);
	tachyon_wait w = test_wait_ms(2000);
	uint64_t cid;
	CHECK_EQ(tachyon_rpc_call(caller, "q", 1, 1, &cid, &w), 0);
	tachyon_msg m;
	CHECK_EQ(tachyon_rpc_serve(callee, &m, NULL, &w), 0);
	/* Bypass reply's order check: reserve, stamp another id, commit. */
	tachyon_bus *rev = tachyon_rpc_replies(callee);
	void *p;
	CHECK_EQ(tachyon_bus_reserve(rev, 4, &p, &w), 0);
	memcpy(p, "evil", 4);
	tachyon_rpc_stamp(p, cid + 41);
	CHECK_EQ(tachyon_bus_commit(rev, 4, 1), 0);
	CHECK_EQ(tachyon_bus_flush(rev), 0);

	CHECK_EQ(tachyon_rpc_wait(caller, cid, &m, &w), -TACHYON_ECORRUPT);
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(tachyon_rpc_replies(caller), &st), 0);
	CHECK_EQ(st.state, TACHYON_STATE_FATAL);
	CHECK(tachyon_bus_fatal_reason(tachyon_rpc_replies(caller)) != NULL);
	/* Fatal is permanent: the next receive reports it too. */
	CHECK_EQ(tachyon_bus_recv(tachyon_rpc_replies(caller), &m, &w), -TACHYON_ECORRUPT);
	tachyon_rpc_unref(caller);
	tachyon_rpc_unref(callee);
}

/* The reverse ring gets the plain ring's checks: a head that is not a
 * multiple of 64 is fatal at the caller. */
static void test_hostile_reverse_head(void)
{
	tachyon_rpc *callee, *caller;
	make_pair("rpc-hostile", &callee, &caller);
	tachyon_wait w = test_wait_ms(500);
	uint64_t cid;
	CHECK_EQ(tachyon_rpc_call(caller, "q", 1, 1, &cid, &w), 0);
	struct tachyon_region_header *hdr = tachyon_rpc_replies(callee)->hdr;
	__atomic_store_n(&hdr->head, (uint64_t)100, __ATOMIC_RELEASE);
	tachyon_msg m;
	CHECK_EQ(tachyon_rpc_wait(caller, cid, &m, &w), -TACHYON_ECORRUPT);
	tachyon_rpc_unref(caller);
	tachyon_rpc_unref(callee);
}

struct close_args {
	tachyon_rpc *r;
};

static void *close_later(void *p)
{
	struct close_args *a = p;
	usleep(50 * 1000);
	tachyon_rpc_close(a->r);
	return NULL;
}

/* Close from another thread ends a blocked wait and a blocked serve. */
static void test_close_from_thread(void)
{
	for (int i = 0; i < 2; i++) {
		/* A fresh pair each time: closing one end closes the peer's rings. */
		tachyon_rpc *callee, *caller;
		make_pair("rpc-close", &callee, &caller);
		tachyon_wait w = test_wait_ms(5000);
		uint64_t cid;
		CHECK_EQ(tachyon_rpc_call(caller, "q", 1, 1, &cid, &w), 0);
		struct close_args a = {i ? callee : caller};
		pthread_t t;
		REQUIRE(pthread_create(&t, NULL, close_later, &a) == 0);
		tachyon_msg m;
		int64_t t0 = tachyon_now_ns();
		int rc;
		if (i == 0) {
			rc = tachyon_rpc_wait(caller, cid, &m, &w);
		} else {
			/* Drain the one request first, then block on the next. */
			CHECK_EQ(tachyon_rpc_serve(callee, &m, NULL, &w), 0);
			rc = tachyon_rpc_serve(callee, &m, NULL, &w);
		}
		pthread_join(t, NULL);
		CHECK_EQ(rc, -TACHYON_ECLOSED);
		CHECK(tachyon_now_ns() - t0 < (int64_t)1000 * 1000000);
		tachyon_rpc_unref(caller);
		tachyon_rpc_unref(callee);
	}
}

/* A callee process killed while a call waits: the caller hears of the death
 * within the watchdog period (200 ms); the bound checked is 500 ms, and the
 * measured value is printed. */
static void test_callee_dies(void)
{
	char path[108];
	test_socket_path(path, sizeof path, "rpc-death");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		tachyon_rpc *r;
		tachyon_wait w = test_wait_ms(5000);
		if (tachyon_rpc_listen(path, CAP, CAP, NULL, &w, &r) != 0)
			_exit(2);
		tachyon_msg m;
		if (tachyon_rpc_serve(r, &m, NULL, &w) != 0)
			_exit(3);
		pause(); /* holds the request, never answers */
		_exit(0);
	}
	tachyon_rpc *caller;
	tachyon_wait w = test_wait_ms(5000);
	REQUIRE(tachyon_rpc_connect(path, &w, &caller) == 0);
	uint64_t cid;
	CHECK_EQ(tachyon_rpc_call(caller, "q", 1, 1, &cid, &w), 0);
	usleep(100 * 1000);
	int64_t t0 = tachyon_now_ns();
	kill(pid, SIGKILL);
	tachyon_msg m;
	int rc = tachyon_rpc_wait(caller, cid, &m, &w);
	int64_t ms = (tachyon_now_ns() - t0) / 1000000;
	printf("test_rpc: a dead callee was reported after %lld ms\n", (long long)ms);
	CHECK_EQ(rc, -TACHYON_EPEERDEAD);
	CHECK(ms < 500);
	test_wait_child(pid);
	tachyon_rpc_unref(caller);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_encode_decode();
	test_kind_mismatch();
	test_round_trips();
	test_wrong_id();
	test_hostile_reverse_head();
	test_close_from_thread();
	test_callee_dies();
	return test_result("test_rpc");
}

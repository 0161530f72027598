/*
 * One sender and one receiver per bus (ABI.md, "Roles"): every way of
 * claiming a role, on each end, against every way on the other end; the
 * listener's up-front claim; owner words a hostile or 0.5.1 peer wrote; and
 * races of two processes claiming one role at the same instant.
 *
 * In every case exactly one end gets the role, the other gets
 * -TACHYON_EROLE without writing a byte of the region, keeps no role, and
 * then works in the other role: the winner's messages arrive intact.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus_impl.h"
#include "testlib.h"

#define CAP 4096u

/* ------------------------------------------------------------------------ */
/* pairs                                                                     */

/* A connected pair in this process; the listener claims listen_role up
 * front (TACHYON_ROLE_NONE: no claim). */
static void make_pair(int listen_role, tachyon_bus **l, tachyon_bus **c)
{
	test_make_pair(CAP, listen_role, "roles", l, c);
}

static void free_pair(tachyon_bus *l, tachyon_bus *c)
{
	tachyon_bus_unref(l);
	tachyon_bus_unref(c);
}

static uint32_t owner_word(tachyon_bus *b, int role)
{
	return atomic_load((_Atomic uint32_t *)(role == TACHYON_ROLE_PRODUCER ? &b->hdr->producer_owner
	                                                                     : &b->hdr->consumer_owner));
}

/* ------------------------------------------------------------------------ */
/* the ways of claiming                                                      */

enum { P_SET_ROLE, P_SEND, P_RESERVE, P_FLUSH, N_PRODUCER_WAYS };
static const char *const producer_way[] = {"set_role", "send", "reserve", "flush"};
enum { C_SET_ROLE, C_RECV, C_RECV_BATCH, C_RELEASE_TO, C_PUBLISH_RELEASE, N_CONSUMER_WAYS };
static const char *const consumer_way[] = {"set_role", "recv", "recv_batch", "release_to",
                                           "publish_release"};

static const char FIRST[] = "the winner's first message";

/* Claim the producer role one way. A reservation it opens is filled with
 * FIRST and committed, so every way leaves the same kind of ring behind.
 * Returns the claiming call's code. */
static int claim_producer(tachyon_bus *b, int way)
{
	tachyon_wait w0 = test_wait_ms(0);
	void *pl = NULL;
	int rc;
	switch (way) {
	case P_SET_ROLE:
		return tachyon_bus_set_role(b, TACHYON_ROLE_PRODUCER);
	case P_SEND:
		return tachyon_bus_send(b, FIRST, sizeof FIRST, 7, &w0);
	case P_RESERVE:
		rc = tachyon_bus_reserve(b, sizeof FIRST, &pl, &w0);
		if (rc == 0) {
			memcpy(pl, FIRST, sizeof FIRST);
			CHECK_EQ(tachyon_bus_commit(b, sizeof FIRST, 7), 0);
			CHECK_EQ(tachyon_bus_flush(b), 0);
		} else {
			CHECK(pl == NULL);
		}
		return rc;
	default:
		return tachyon_bus_flush(b);
	}
}

static int claim_consumer(tachyon_bus *b, int way)
{
	tachyon_wait w0 = test_wait_ms(0);
	tachyon_msg m;
	switch (way) {
	case C_SET_ROLE:
		return tachyon_bus_set_role(b, TACHYON_ROLE_CONSUMER);
	case C_RECV:
		return tachyon_bus_recv(b, &m, &w0);
	case C_RECV_BATCH:
		return tachyon_bus_recv_batch(b, &m, 1, &w0);
	case C_RELEASE_TO:
		return tachyon_bus_release_to(b, 0, 0); /* nothing read: releases nothing */
	default:
		return tachyon_bus_publish_release(b);
	}
}

static int producer_way_ok(int way, int rc)
{
	return rc == 0;
}

static int consumer_way_ok(int way, int rc)
{
	return (way == C_RECV || way == C_RECV_BATCH) ? rc == -ETIMEDOUT : rc == 0;
}

/* Receive one message within a second and check it. */
static void expect_message(tachyon_bus *b, const char *text, uint32_t type_id, const char *ctx)
{
	tachyon_msg m;
	tachyon_wait w = test_wait_ms(1000);
	int rc = tachyon_bus_recv(b, &m, &w);
	CHECK_EQ(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "  in %s\n", ctx);
		return;
	}
	CHECK_EQ(m.size, strlen(text) + 1);
	CHECK_EQ(m.type_id, type_id);
	if (m.size != strlen(text) + 1 || memcmp(m.data, text, m.size) != 0) {
		fprintf(stderr, "  in %s: the message arrived damaged\n", ctx);
		test_failures++;
	}
	CHECK_EQ(tachyon_bus_release_to(b, m.end, 1), 0);
}

/* The region as the loser sees it before its refused call, to prove it
 * wrote nothing. */
static unsigned char before[TACHYON_REGION_HEADER_SIZE + CAP];

static void matrix_one(int role, int winner_is_listener, int wway, int lway)
{
	tachyon_bus *l, *c;
	make_pair(TACHYON_ROLE_NONE, &l, &c);
	tachyon_bus *win = winner_is_listener ? l : c, *lose = winner_is_listener ? c : l;
	int producer = role == TACHYON_ROLE_PRODUCER;
	int failures_before = test_failures;
	char ctx[160];
	snprintf(ctx, sizeof ctx, "%s: the %s claims by %s, the %s by %s", producer ? "producer" : "consumer",
	         winner_is_listener ? "listener" : "connector",
	         producer ? producer_way[wway] : consumer_way[wway],
	         winner_is_listener ? "connector" : "listener",
	         producer ? producer_way[lway] : consumer_way[lway]);

	int rc = producer ? claim_producer(win, wway) : claim_consumer(win, wway);
	int ok = producer ? producer_way_ok(wway, rc) : consumer_way_ok(wway, rc);
	CHECK(ok);
	CHECK_EQ(tachyon_bus_role(win), role);
	CHECK_EQ(owner_word(win, role), winner_is_listener ? TACHYON_OWNER_LISTENER
	                                                   : TACHYON_OWNER_CONNECTOR);

	memcpy(before, lose->hdr, sizeof before);
	rc = producer ? claim_producer(lose, lway) : claim_consumer(lose, lway);
	CHECK_EQ(rc, -TACHYON_EROLE);
	CHECK_EQ(tachyon_bus_role(lose), TACHYON_ROLE_NONE);
	if (memcmp(before, lose->hdr, sizeof before) != 0) {
		fprintf(stderr, "  the refused end wrote to the region\n");
		test_failures++;
	}
	/* Refused again the same way: nothing sticks. */
	CHECK_EQ(producer ? claim_producer(lose, lway) : claim_consumer(lose, lway), -TACHYON_EROLE);

	/* The loser works in the other role; the winner's traffic is intact. */
	tachyon_wait w = test_wait_ms(1000);
	if (producer) {
		if (wway == P_SEND || wway == P_RESERVE)
			expect_message(lose, FIRST, 7, ctx);
		CHECK_EQ(tachyon_bus_send(win, "second", 7, 8, &w), 0);
		expect_message(lose, "second", 8, ctx);
		CHECK_EQ(tachyon_bus_role(lose), TACHYON_ROLE_CONSUMER);
	} else {
		CHECK_EQ(tachyon_bus_send(lose, "back", 5, 9, &w), 0);
		CHECK_EQ(tachyon_bus_role(lose), TACHYON_ROLE_PRODUCER);
		expect_message(win, "back", 9, ctx);
	}
	tachyon_stats st;
	CHECK_EQ(tachyon_bus_stats(win, &st), 0);
	CHECK_EQ(st.state, TACHYON_STATE_READY);
	if (test_failures != failures_before)
		fprintf(stderr, "  (the failures above: %s)\n", ctx);
	free_pair(l, c);
}

static void test_matrix(void)
{
	int n = 0;
	for (int first = 0; first < 2; first++) {
		for (int a = 0; a < N_PRODUCER_WAYS; a++)
			for (int b = 0; b < N_PRODUCER_WAYS; b++, n++)
				matrix_one(TACHYON_ROLE_PRODUCER, first, a, b);
		for (int a = 0; a < N_CONSUMER_WAYS; a++)
			for (int b = 0; b < N_CONSUMER_WAYS; b++, n++)
				matrix_one(TACHYON_ROLE_CONSUMER, first, a, b);
	}
	printf("matrix: %d pairs of claims checked\n", n);
}

/* ------------------------------------------------------------------------ */
/* listen with a role                                                        */

struct handshake_arg {
	tachyon_listener *l;
	tachyon_link link;
	int rc;
};

/* The handshake alone: the listener side stops before building its bus. */
static void *handshake_main(void *p)
{
	struct handshake_arg *a = p;
	tachyon_wait w = test_wait_ms(5000);
	a->rc = tachyon_handshake_accept(a->l, &w, &a->link);
	return NULL;
}

static void test_listen_with_role(void)
{
	tachyon_listener *l;
	char path[108];
	test_socket_path(path, sizeof path, "roles-bad");
	tachyon_listen_opts bad = {.role = 3};
	CHECK_EQ(tachyon_listener_open(path, CAP, &bad, &l), -EINVAL);

	for (int role = TACHYON_ROLE_PRODUCER; role <= TACHYON_ROLE_CONSUMER; role++) {
		int other = role == TACHYON_ROLE_PRODUCER ? TACHYON_ROLE_CONSUMER : TACHYON_ROLE_PRODUCER;
		tachyon_bus *lb, *cb;
		make_pair(role, &lb, &cb);
		/* Fixed before any call of the listener's, claimed in the region. */
		CHECK_EQ(tachyon_bus_role(lb), role);
		CHECK_EQ(owner_word(cb, role), TACHYON_OWNER_LISTENER);
		CHECK_EQ(owner_word(cb, other), TACHYON_OWNER_NONE);
		/* The connector asking for it, up front (what connect(role=) does)
		 * or by a data call, is refused. */
		CHECK_EQ(tachyon_bus_set_role(cb, role), -TACHYON_EROLE);
		tachyon_wait w0 = test_wait_ms(0), w = test_wait_ms(1000);
		tachyon_msg m;
		if (role == TACHYON_ROLE_PRODUCER) {
			CHECK_EQ(tachyon_bus_send(cb, "x", 2, 0, &w0), -TACHYON_EROLE);
			CHECK_EQ(tachyon_bus_send(lb, "from the listener", 18, 1, &w), 0);
			expect_message(cb, "from the listener", 1, "listen(role=producer)");
		} else {
			CHECK_EQ(tachyon_bus_recv(cb, &m, &w0), -TACHYON_EROLE);
			CHECK_EQ(tachyon_bus_send(cb, "to the listener", 16, 2, &w), 0);
			expect_message(lb, "to the listener", 2, "listen(role=consumer)");
		}
		CHECK_EQ(tachyon_bus_role(cb), other);
		free_pair(lb, cb);
	}

	/* The claim is in the region before the fd leaves: a connector that
	 * claims while the listener side has not even built its bus yet (only
	 * the handshake is done) is refused. */
	for (int role = TACHYON_ROLE_PRODUCER; role <= TACHYON_ROLE_CONSUMER; role++) {
		struct handshake_arg a = {0};
		test_socket_path(path, sizeof path, "roles-early");
		tachyon_listen_opts opts = {.role = role};
		REQUIRE(tachyon_listener_open(path, CAP, &opts, &a.l) == 0);
		pthread_t t;
		REQUIRE(pthread_create(&t, NULL, handshake_main, &a) == 0);
		tachyon_bus *cb, *lb;
		tachyon_wait w = test_wait_ms(5000);
		int rc = tachyon_bus_connect(path, &w, &cb);
		pthread_join(t, NULL);
		tachyon_listener_close(a.l);
		REQUIRE(rc == 0 && a.rc == 0);
		CHECK_EQ(tachyon_bus_set_role(cb, role), -TACHYON_EROLE);
		REQUIRE(tachyon_bus_create(&a.link, &lb) == 0);
		CHECK_EQ(tachyon_bus_set_role(lb, role), 0); /* finds the word its own */
		free_pair(lb, cb);
	}
	printf("listen with a role: claimed before the peer could see the region\n");
}

/* ------------------------------------------------------------------------ */
/* owner words written by someone else                                       */

/* A bus over a fresh region (is_listener as given, no socket, no marker
 * from the other side) and a second mapping of it for the hand-played peer. */
static tachyon_bus *raw_bus(int is_listener, tachyon_region *peer_view)
{
	tachyon_link link = {.sockfd = -1, .peer = {.pidfd = -1, .pid = getpid(), .self = 1},
	                     .is_listener = is_listener};
	REQUIRE(tachyon_region_create("tachyon-test-roles", CAP, &link.region) == 0);
	REQUIRE(tachyon_region_attach(dup(link.region.fd), CAP, peer_view) == 0);
	tachyon_bus *b;
	REQUIRE(tachyon_bus_create(&link, &b) == 0);
	return b;
}

static void test_foreign_owner_words(void)
{
	static const uint32_t values[] = {0, 1, 2, 3, 0x80000000u, 0xFFFFFFFFu};
	int cases = 0;
	for (int is_listener = 0; is_listener < 2; is_listener++) {
		uint32_t mine = is_listener ? TACHYON_OWNER_LISTENER : TACHYON_OWNER_CONNECTOR;
		for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
			for (int role = TACHYON_ROLE_PRODUCER; role <= TACHYON_ROLE_CONSUMER; role++, cases++) {
				tachyon_region view;
				tachyon_bus *b = raw_bus(is_listener, &view);
				struct tachyon_region_header *hdr = view.base;
				uint32_t *word = role == TACHYON_ROLE_PRODUCER ? &hdr->producer_owner
				                                               : &hdr->consumer_owner;
				*word = values[i];
				memcpy(before, hdr, sizeof before);
				int rc = role == TACHYON_ROLE_PRODUCER ? claim_producer(b, P_SEND)
				                                       : claim_consumer(b, C_RECV);
				int expect_win = values[i] == 0 || values[i] == mine;
				if (expect_win) {
					CHECK(role == TACHYON_ROLE_PRODUCER ? rc == 0 : rc == -ETIMEDOUT);
					CHECK_EQ(*word, mine);
				} else {
					CHECK_EQ(rc, -TACHYON_EROLE);
					CHECK_EQ(*word, values[i]);
					if (memcmp(before, hdr, sizeof before) != 0) {
						fprintf(stderr, "a refused end wrote to the region (word %#x)\n",
						        values[i]);
						test_failures++;
					}
					CHECK_EQ(tachyon_bus_role(b), TACHYON_ROLE_NONE);
				}
				CHECK_EQ(hdr->state, TACHYON_STATE_READY);
				tachyon_bus_unref(b);
				tachyon_region_release(&view);
			}
		}
	}
	printf("foreign owner words: %d cases checked\n", cases);
}

/* Against a 0.5.1 peer (no marker, no claim) a second writer of head is
 * most likely that peer sending too; with our marker present it is not. */
static void test_second_head_writer_wording(void)
{
	for (int marked = 0; marked < 2; marked++) {
		tachyon_region view;
		tachyon_bus *b = raw_bus(1, &view);
		struct tachyon_region_header *hdr = view.base;
		if (marked)
			hdr->connector_marker = TACHYON_PEER_MARKER;
		tachyon_wait w0 = test_wait_ms(0);
		CHECK_EQ(tachyon_bus_send(b, "mine", 5, 1, &w0), 0);
		/* The peer writes a slot of its own and publishes head, as a 0.5.1
		 * producer does. */
		uint64_t h = atomic_load((_Atomic uint64_t *)&hdr->head);
		struct tachyon_slot_header *sh =
		        (void *)((uint8_t *)view.base + TACHYON_REGION_HEADER_SIZE + (h & (CAP - 1)));
		sh->size = 4;
		sh->type_id = 2;
		sh->reserved_size = 128;
		atomic_store((_Atomic uint64_t *)&hdr->head, h + 128);
		CHECK_EQ(tachyon_bus_send(b, "again", 6, 1, &w0), -TACHYON_ECORRUPT);
		const char *why = tachyon_bus_fatal_reason(b);
		CHECK(why != NULL);
		if (why) {
			printf("second head writer, %s peer: %s\n", marked ? "marked" : "0.5.1", why);
			CHECK(strstr(why, marked ? "a foreign process wrote head"
			                         : "the other end also sends on this bus") != NULL);
		}
		tachyon_bus_unref(b);
		tachyon_region_release(&view);
	}
}

/* ------------------------------------------------------------------------ */
/* races across processes                                                    */

#define RACE_MAX_TRIALS 1000
#define RACE_WALL_NS ((int64_t)8 * 1000000000)
#define SPIN_LIMIT_NS ((int64_t)10 * 1000000000)

/* One MAP_SHARED anonymous page between parent (the listener) and child
 * (the connector). */
struct race_page {
	char path[108];
	_Atomic uint32_t go;        /* trial number + 1 whose listener is open; UINT32_MAX: stop */
	_Atomic uint32_t arrive;    /* barrier arrivals, two per barrier */
	_Atomic int rc[2];          /* each side's claim result: [0] listener, [1] connector */
	_Atomic int got_ok[2];      /* the side that received checked the message */
};

/* Both sides call it with the same running n (2, 4, 6, ...). Spins with a
 * yield: two CPUs and two processes. */
static void barrier(struct race_page *pg, uint32_t n)
{
	atomic_fetch_add(&pg->arrive, 1);
	int64_t t0 = tachyon_now_ns();
	for (unsigned spins = 0; atomic_load(&pg->arrive) < n; spins++) {
		if (spins > 256)
			sched_yield();
		REQUIRE(tachyon_now_ns() - t0 < SPIN_LIMIT_NS);
	}
}

static void race_message(char *buf, size_t len, int trial, int side)
{
	snprintf(buf, len, "trial %d: the %s won", trial, side ? "connector" : "listener");
}

/* One side's part of a trial: claim at the barrier, then the loser takes
 * the other role and the message from winner to loser is checked by the
 * receiving side. Even trials race first sends, odd ones first receives. */
static void race_trial(struct race_page *pg, tachyon_bus *b, int side, int trial, uint32_t *bar)
{
	int sends = trial % 2 == 0;
	char msg[64];
	tachyon_wait w0 = test_wait_ms(0), w = test_wait_ms(2000);
	tachyon_msg m;

	barrier(pg, *bar += 2);
	race_message(msg, sizeof msg, trial, side);
	int rc = sends ? tachyon_bus_send(b, msg, strlen(msg) + 1, (uint32_t)trial, &w0)
	               : tachyon_bus_recv(b, &m, &w0);
	atomic_store(&pg->rc[side], rc);
	barrier(pg, *bar += 2);

	int mine = atomic_load(&pg->rc[side]), theirs = atomic_load(&pg->rc[!side]);
	int won = sends ? mine == 0 : mine == -ETIMEDOUT;
	int they_won = sends ? theirs == 0 : theirs == -ETIMEDOUT;
	if (won == they_won || (!won && mine != -TACHYON_EROLE) || (!they_won && theirs != -TACHYON_EROLE)) {
		if (side == 0) {
			fprintf(stderr, "trial %d (%s): listener %d, connector %d: not exactly one winner\n",
			        trial, sends ? "send" : "recv", mine, theirs);
			test_failures++;
		}
		barrier(pg, *bar += 2);
		return;
	}
	int ok = 0;
	if (sends && !won) {
		/* The loser receives the winner's message. */
		race_message(msg, sizeof msg, trial, !side);
		ok = tachyon_bus_recv(b, &m, &w) == 0 && m.size == strlen(msg) + 1 &&
		     m.type_id == (uint32_t)trial && memcmp(m.data, msg, m.size) == 0 &&
		     tachyon_bus_role(b) == TACHYON_ROLE_CONSUMER;
	} else if (!sends && !won) {
		/* The loser sends; the winner receives. */
		race_message(msg, sizeof msg, trial, side);
		ok = tachyon_bus_send(b, msg, strlen(msg) + 1, (uint32_t)trial, &w) == 0 &&
		     tachyon_bus_role(b) == TACHYON_ROLE_PRODUCER;
	} else if (!sends && won) {
		race_message(msg, sizeof msg, trial, !side);
		ok = tachyon_bus_recv(b, &m, &w) == 0 && m.size == strlen(msg) + 1 &&
		     memcmp(m.data, msg, m.size) == 0;
	} else {
		ok = 1;
	}
	atomic_store(&pg->got_ok[side], ok);
	barrier(pg, *bar += 2);
	if (side == 0 && !(atomic_load(&pg->got_ok[0]) && atomic_load(&pg->got_ok[1]))) {
		fprintf(stderr, "trial %d (%s): the winner's message did not arrive intact\n", trial,
		        sends ? "send" : "recv");
		test_failures++;
	}
}

static int race_child(struct race_page *pg)
{
	uint32_t bar = 0;
	for (int trial = 0;; trial++) {
		int64_t t0 = tachyon_now_ns();
		uint32_t go;
		for (unsigned spins = 0; (go = atomic_load(&pg->go)) != (uint32_t)trial + 1 && go != UINT32_MAX;
		     spins++) {
			if (spins > 256)
				sched_yield();
			REQUIRE(tachyon_now_ns() - t0 < SPIN_LIMIT_NS);
		}
		if (go == UINT32_MAX)
			break;
		tachyon_bus *b;
		tachyon_wait w = test_wait_ms(5000);
		REQUIRE(tachyon_bus_connect(pg->path, &w, &b) == 0);
		race_trial(pg, b, 1, trial, &bar);
		tachyon_bus_unref(b);
	}
	return test_result("test_roles (race child)");
}

static void test_races(void)
{
	struct race_page *pg = mmap(NULL, sizeof *pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(pg != MAP_FAILED);
	memset(pg, 0, sizeof *pg);
	fflush(NULL);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(race_child(pg));

	uint32_t bar = 0;
	int trial = 0, failures_before = test_failures;
	int64_t t0 = tachyon_now_ns();
	int listener_wins[2] = {0, 0};
	for (; trial < RACE_MAX_TRIALS && tachyon_now_ns() - t0 < RACE_WALL_NS; trial++) {
		tachyon_listener *l;
		test_socket_path(pg->path, sizeof pg->path, "race");
		REQUIRE(tachyon_listener_open(pg->path, CAP, NULL, &l) == 0);
		atomic_store(&pg->go, (uint32_t)trial + 1);
		tachyon_bus *b;
		tachyon_wait w = test_wait_ms(5000);
		REQUIRE(tachyon_listener_accept(l, &w, &b) == 0);
		tachyon_listener_close(l);
		race_trial(pg, b, 0, trial, &bar);
		int sends = trial % 2 == 0;
		if (atomic_load(&pg->rc[0]) == (sends ? 0 : -ETIMEDOUT))
			listener_wins[sends]++;
		tachyon_bus_unref(b);
	}
	atomic_store(&pg->go, UINT32_MAX);
	CHECK_EQ(test_wait_child(pid), 0);
	int sends = (trial + 1) / 2, recvs = trial / 2;
	printf("races: %d trials in %.2f s (%d first sends: listener won %d; %d first receives: "
	       "listener won %d), %d with other than one winner and an intact message\n",
	       trial, (double)(tachyon_now_ns() - t0) / 1e9, sends, listener_wins[1], recvs,
	       listener_wins[0], test_failures - failures_before);
	CHECK(trial >= 100);
	munmap(pg, sizeof *pg);
}

int main(void)
{
	/* First, before this process has threads: the race forks. */
	test_races();
	test_matrix();
	test_listen_with_role();
	test_foreign_owner_words();
	test_second_head_writer_wording();
	return test_result("test_roles");
}

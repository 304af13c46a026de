// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Order: server-speaks-first protocols; the first bytes written right after
 * connect() (the peer's end may not be in the map yet), under CPU load;
 * TCP Fast Open, whose first bytes travel in the SYN, before either end is
 * established and before SK_MSG ever sees them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

#define THREADS	   4
#define CONNS_EACH 150

struct order_arg {
	int server_first; /* the accepted end speaks first */
	int load;	  /* CPU burners while it runs */
};

static atomic_int stop_burn;

static void *burn(void *p)
{
	volatile unsigned long x = 0;

	(void)p;
	while (!atomic_load(&stop_burn))
		x++;
	return NULL;
}

struct worker {
	const struct order_arg *a;
	int id;
	int ok, bad, err;
	struct result *r;
};

/* One connection: the talker sends three messages at once, the other end
 * reads them in order and answers with one; 0 when all exact. */
static int one_conn(struct worker *w, int lfd, int k)
{
	struct pair_opt po = {0};
	unsigned char buf[600];
	unsigned seed = w->id * 1000 + k;
	int c, s, talker, other, ret = -1;

	c = tcp_connect_to(lfd, &po);
	if (c < 0)
		return -1;
	/* client first: write before the accept, right after connect() */
	talker = c;
	if (!w->a->server_first &&
	    (send_pat(c, 100, 0, seed) || send_pat(c, 200, 100, seed) ||
	     send_pat(c, 300, 300, seed)))
		goto out_c;
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		goto out_c;
	if (w->a->server_first) {
		talker = s;
		if (send_pat(s, 100, 0, seed) || send_pat(s, 200, 100, seed) ||
		    send_pat(s, 300, 300, seed))
			goto out;
	}
	other = talker == c ? s : c;
	if (recv_exact(w->r, other, buf, 600) != 600 ||
	    pat_check(buf, 600, 0, seed) >= 0)
		goto out;
	/* the answer */
	if (send_pat(other, 50, 0, seed + 1) ||
	    recv_exact(w->r, talker, buf, 50) != 50 ||
	    pat_check(buf, 50, 0, seed + 1) >= 0)
		goto out;
	ret = 0;
out:
	close(s);
out_c:
	close(c);
	return ret;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct pair_opt po = {0};
	int lfd = tcp_listener(&po);

	if (lfd < 0) {
		w->err = -lfd;
		return NULL;
	}
	for (int k = 0; k < CONNS_EACH; k++) {
		if (one_conn(w, lfd, k))
			w->bad++;
		else
			w->ok++;
	}
	close(lfd);
	return NULL;
}

static int order_scenario(struct result *r, void *arg)
{
	const struct order_arg *a = arg;
	struct worker w[THREADS];
	pthread_t t[THREADS], b[2];
	int ok = 0, bad = 0, err = 0;

	atomic_store(&stop_burn, 0);
	if (a->load)
		for (int i = 0; i < 2; i++)
			pthread_create(&b[i], NULL, burn, NULL);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.a = a, .id = i, .r = r};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ok += w[i].ok;
		bad += w[i].bad;
		err |= w[i].err;
	}
	atomic_store(&stop_burn, 1);
	if (a->load)
		for (int i = 0; i < 2; i++)
			pthread_join(b[i], NULL);
	res_same(r, "listener_errno", err);
	res_same(r, "connections_exact_in_order", ok);
	res_same(r, "connections_wrong", bad);
	return 0;
}

static void order_case(struct env *e, const char *what, struct order_arg *a)
{
	struct diff d;
	const long conns = THREADS * CONNS_EACH;

	/*
	 * Every socket accelerated: short connections on one port, so the
	 * short-connection rule (tested in integration) is off here.
	 */
	if (conf_start(e, "short_conn_msgs = 0") ||
	    diff_run(e, what, order_scenario, a, &d,
		     &(struct diff_opts){.timeout_s = 60}))
		return;
	ASSERT_EQ(res_get(&d.accel, "connections_exact_in_order"), conns,
		  "every connection exact and in order");
	ASSERT_EQ(d.da.sockets_added, 2 * conns, "every socket accelerated");
	ASSERT_GT(d.da.msgs_redirected, 0, "redirected");
	/* a first message that missed its peer takes the stack for good */
	ASSERT_EQ(d.da.msgs_redirected + d.da.msgs_passed, 4 * conns,
		  "every message counted once");
	fprintf(stderr,
		"    %s: %llu of %ld directions' first message missed the peer\n",
		what, (unsigned long long)d.da.peer_misses, 2 * conns);
}

TEST(order_server_speaks_first_under_load)
{
	struct order_arg a = {.server_first = 1, .load = 1};

	order_case(e, "server speaks first, CPU load", &a);
}

TEST(order_first_bytes_right_after_connect_under_load)
{
	struct order_arg a = {.server_first = 0, .load = 1};

	order_case(e, "client writes right after connect(), CPU load", &a);
}

/* --- TCP Fast Open: the first bytes ride in the SYN -------------------- */

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

#define TFO_FIRST  1000
#define TFO_SECOND (64 * 1024)

static int write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int tfo_scenario(struct result *r, void *arg)
{
	static unsigned char buf[TFO_FIRST + TFO_SECOND];
	struct pair_opt po = {0};
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int lfd, c, s, qlen = 16, ret;
	ssize_t n;

	(void)arg;
	/*
	 * This network namespace only: client and server Fast Open, data in
	 * the SYN without a cookie (0x1 | 0x2 | 0x4 | 0x200).
	 */
	ret = write_sysctl("/proc/sys/net/ipv4/tcp_fastopen", "519");
	if (ret) {
		res_broken(r, "tcp_fastopen sysctl: %s", strerror(-ret));
		return 1;
	}
	lfd = tcp_listener(&po);
	if (lfd < 0 ||
	    setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen))) {
		res_broken(r, "listener: %s", strerror(errno));
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pat_fill(buf, TFO_FIRST, 0, 31);
	/* connect and send in one: the bytes go in the SYN */
	n = sendto(c, buf, TFO_FIRST, MSG_FASTOPEN, (struct sockaddr *)&sin,
		   sizeof(sin));
	res_same(r, "sendto_fastopen_returned", n);
	/* more right behind, before the server reads anything */
	n = send_pat(c, TFO_SECOND, TFO_FIRST, 31);
	res_same(r, "second_send", n);
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	sleep_ms(20);
	n = recv_exact(r, s, buf, sizeof(buf));
	res_same(r, "rx_bytes", n);
	res_same(r, "rx_first_bad_byte", pat_check(buf, sizeof(buf), 0, 31));
	/* and the same with TCP_FASTOPEN_CONNECT (connect(), then write) */
	close(c);
	close(s);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	qlen = 1;
	setsockopt(c, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &qlen, sizeof(qlen));
	res_same(r, "fastopen_connect",
		 connect(c, (struct sockaddr *)&sin, sizeof(sin)));
	res_same(r, "fastopen_connect_first_write",
		 send_pat(c, TFO_FIRST, 0, 32));
	res_same(r, "fastopen_connect_second_write",
		 send_pat(c, TFO_SECOND, TFO_FIRST, 32));
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	sleep_ms(20);
	n = recv_exact(r, s, buf, sizeof(buf));
	res_same(r, "connect_rx_bytes", n);
	res_same(r, "connect_rx_first_bad_byte",
		 pat_check(buf, sizeof(buf), 0, 32));
	close(c);
	close(s);
	close(lfd);
	return 0;
}

TEST(order_tcp_fast_open_first_bytes)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "TCP Fast Open", tfo_scenario, NULL, &d, NULL))
		return;
	/*
	 * What the application needs is its bytes in order; sockmesh may
	 * leave such connections on the stack. sock_ops saw them at least.
	 */
	ASSERT_GT(d.da.sockets_added + d.da.sockets_skipped, 0,
		  "sock_ops saw the connections");
	fprintf(stderr,
		"    TCP Fast Open: %llu B redirected, %llu B passed, %llu misses\n",
		(unsigned long long)d.da.bytes_redirected,
		(unsigned long long)d.da.bytes_passed,
		(unsigned long long)d.da.peer_misses);
}

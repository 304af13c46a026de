// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Pressure: 4 KiB socket buffers with a slow receiver, a 64 MiB single
 * send(), 1,024 connections open at once, 10,000 short connections in a
 * row (the socket map back to its baseline afterwards).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

/* --- 4 KiB buffers, slow receiver -------------------------------------- */

#define SLOW_TOTAL (1u << 20)

struct slow_sender {
	int fd;
	size_t sent;
	int err;
};

static void *slow_sender_main(void *p)
{
	struct slow_sender *ss = p;

	for (ss->sent = 0; ss->sent < SLOW_TOTAL; ss->sent += 65536) {
		int ret = send_pat(ss->fd, 65536, ss->sent, 71);

		if (ret) {
			ss->err = -ret;
			break;
		}
	}
	shutdown(ss->fd, SHUT_WR);
	return NULL;
}

static int small_buffers(struct result *r, void *arg)
{
	struct pair_opt po = {.bufsize = 4096};
	struct reader rd = {
		.seed = 71, .chunk = 4096, .delay_us = 1000, .r = r};
	struct slow_sender ss = {0};
	pthread_t t;
	size_t max_ahead = 0;
	int c, s, ret;

	(void)arg;
	ret = tcp_pair(&c, &s, &po);
	if (ret) {
		res_broken(r, "connect: %s", strerror(-ret));
		return 1;
	}
	rd.fd = s;
	ss.fd = c;
	reader_start(&rd);
	pthread_create(&t, NULL, slow_sender_main, &ss);
	/* how far the sender gets ahead of the reader: flow control */
	while (!rd.t_end) {
		size_t sent = ss.sent, got = rd.got;

		if (sent > got && sent - got > max_ahead)
			max_ahead = sent - got;
		sleep_ms(5);
	}
	pthread_join(t, NULL);
	reader_join(&rd);
	res_same(r, "sender_errno", ss.err);
	res_same(r, "rx_bytes", rd.got);
	res_same(r, "rx_first_bad_byte", rd.bad_at);
	res_same(r, "rx_errno", rd.err);
	res_info(r, "sender_max_bytes_ahead", max_ahead);
	res_same(r, "sender_ahead_under_512KiB", max_ahead < (512u << 10));
	close(c);
	close(s);
	return 0;
}

TEST(pressure_4k_buffers_slow_receiver)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "4 KiB buffers, slow receiver",
					  small_buffers, NULL, &d, NULL))
		return;
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected");
	diff_check_bytes(e, &d, SLOW_TOTAL);
	fprintf(stderr,
		"    4 KiB buffers: %llu msgs redirected, %llu passed, %llu bulk fallbacks\n",
		(unsigned long long)d.da.msgs_redirected,
		(unsigned long long)d.da.msgs_passed,
		(unsigned long long)d.da.bulk_fallbacks);
}

/* --- one 64 MiB send() ------------------------------------------------- */

#define BIG (64u << 20)

static int big_send(struct result *r, void *arg)
{
	struct pair_opt po = {0};
	struct reader rd = {.seed = 72, .chunk = 1 << 20, .r = r};
	unsigned char *buf = malloc(BIG);
	ssize_t n;
	int c, s, ret;

	(void)arg;
	if (!buf) {
		res_broken(r, "malloc");
		return 1;
	}
	pat_fill(buf, BIG, 0, 72);
	ret = tcp_pair(&c, &s, &po);
	if (ret) {
		res_broken(r, "connect: %s", strerror(-ret));
		return 1;
	}
	rd.fd = s;
	reader_start(&rd);
	n = send(c, buf, BIG, MSG_NOSIGNAL);
	res_same(r, "send_returned", n);
	res_same(r, "send_errno", n < 0 ? errno : 0);
	shutdown(c, SHUT_WR);
	reader_join(&rd);
	res_same(r, "rx_bytes", rd.got);
	res_same(r, "rx_first_bad_byte", rd.bad_at);
	free(buf);
	close(c);
	close(s);
	return 0;
}

TEST(pressure_64MiB_single_send)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "one 64 MiB send()", big_send, NULL, &d, NULL))
		return;
	/* all redirected unless the reader fell far behind (a queue limit
	 * may then move the rest to the stack) */
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected");
	diff_check_bytes(e, &d, BIG);
	fprintf(stderr, "    64 MiB send(): %llu B redirected, %llu B passed\n",
		(unsigned long long)d.da.bytes_redirected,
		(unsigned long long)d.da.bytes_passed);
}

/* --- 1,024 connections at once ----------------------------------------- */

#define MANY 1024

struct many_cp {
	long sockets[2]; /* in the map at the checkpoint, plain/accelerated */
};

static void many_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct many_cp *cp = arg;

	(void)n;
	cp->sockets[accel] = env_sockets(e);
}

static int many(struct result *r, void *arg)
{
	static int c[MANY], s[MANY];
	struct pair_opt po = {0};
	unsigned char buf[1000];
	int lfd, opened = 0, ok = 0;

	(void)arg;
	lfd = tcp_listener(&po);
	if (lfd < 0) {
		res_broken(r, "listen: %s", strerror(-lfd));
		return 1;
	}
	for (int i = 0; i < MANY; i++) {
		c[i] = tcp_connect_to(lfd, &po);
		s[i] = c[i] >= 0 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
		if (c[i] < 0 || s[i] < 0) {
			res_same(r, "open_errno", c[i] < 0 ? -c[i] : errno);
			break;
		}
		opened++;
	}
	res_same(r, "connections_open", opened);
	scen_checkpoint(1); /* the test counts the map while all are open */
	for (int i = 0; i < opened; i++)
		send_pat(c[i], sizeof(buf), 0, i);
	for (int i = 0; i < opened; i++) {
		if (recv_exact(r, s[i], buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, i) < 0)
			send_pat(s[i], sizeof(buf), 0, i + MANY);
	}
	for (int i = 0; i < opened; i++) {
		if (recv_exact(r, c[i], buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, i + MANY) < 0)
			ok++;
	}
	res_same(r, "connections_exact_both_ways", ok);
	for (int i = 0; i < opened; i++) {
		close(c[i]);
		close(s[i]);
	}
	close(lfd);
	return 0;
}

TEST(pressure_1024_connections_at_once)
{
	struct many_cp cp = {{-1, -1}};
	struct diff_opts o = {.timeout_s = 60,
			      .at_checkpoint = many_checkpoint,
			      .cp_arg = &cp,
			      .rlimit_nofile = 8192};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "1,024 connections at once", many, NULL, &d, &o))
		return;
	ASSERT_EQ(res_get(&d.accel, "connections_exact_both_ways"), MANY,
		  "every connection exact");
	ASSERT_EQ(cp.sockets[0], 0, "plain: nothing in the map");
	ASSERT_EQ(cp.sockets[1], 2 * MANY, "accelerated: every socket in it");
	ASSERT_EQ(d.da.sockets_added, 2 * MANY, "every socket added");
	ASSERT_EQ(d.da.bytes_redirected, 2 * MANY * 1000,
		  "every byte redirected");
	ASSERT_EQ(env_sockets(e), 0, "all left the map when closed");
}

/* --- 10,000 short connections ------------------------------------------ */

#define CHURN 10000

static int churn(struct result *r, void *arg)
{
	struct pair_opt po = {0};
	unsigned char buf[100];
	int lfd, ok = 0, err = 0;

	(void)arg;
	lfd = tcp_listener(&po);
	if (lfd < 0) {
		res_broken(r, "listen: %s", strerror(-lfd));
		return 1;
	}
	for (int i = 0; i < CHURN; i++) {
		int c = tcp_connect_to(lfd, &po), s;

		if (c < 0) {
			err = -c;
			break;
		}
		s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0) {
			err = errno;
			close(c);
			break;
		}
		/* a request and its response, exact */
		if (!send_pat(c, sizeof(buf), 0, i) &&
		    recv_exact(r, s, buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, i) < 0 &&
		    !send_pat(s, sizeof(buf), 0, ~i) &&
		    recv_exact(r, c, buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, ~i) < 0)
			ok++;
		close(c);
		close(s);
	}
	close(lfd);
	res_same(r, "errno", err);
	res_same(r, "connections_exact", ok);
	return 0;
}

TEST(pressure_churn_10000_short_connections)
{
	struct diff d;
	long base;

	/* every socket added: the short-connection rule is off here */
	if (conf_start(e, "short_conn_msgs = 0"))
		return;
	base = env_sockets(e);
	if (diff_run(e, "10,000 short connections", churn, NULL, &d,
		     &(struct diff_opts){.timeout_s = 100}))
		return;
	ASSERT_EQ(base, 0, "baseline: an empty map");
	ASSERT_EQ(res_get(&d.accel, "connections_exact"), CHURN,
		  "every connection exact");
	ASSERT_EQ(d.da.sockets_added, 2 * CHURN, "every socket added");
	ASSERT_EQ(d.da.sockets_add_failed, 0, "no add failure");
	ASSERT_EQ(d.da.bytes_redirected, 2 * CHURN * 100,
		  "every byte redirected");
	ASSERT_EQ(env_sockets(e), base, "the map is back to its baseline");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Readiness: poll, select, epoll level- and edge-triggered, for data, for
 * writability after backpressure, for the peer's half-close; SO_RCVLOWAT;
 * a blocked recv() woken by data. Every wake-up must arrive within 1 s (a
 * correctness bound, not a performance assertion) and not before the event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

#define BOUND_S 1.0 /* a wake-up comes within this, or it is lost */

struct delayed {
	int fd;
	int delay_ms;
	size_t len;
	uint64_t off;
	int shut; /* shutdown(SHUT_WR) instead of sending */
	double t_sent;
};

static void *delayed_main(void *p)
{
	struct delayed *d = p;

	sleep_ms(d->delay_ms);
	d->t_sent = now_s();
	if (d->shut)
		shutdown(d->fd, SHUT_WR);
	else
		send_pat(d->fd, d->len, d->off, 21);
	return NULL;
}

static void delayed_start(pthread_t *t, struct delayed *d)
{
	pthread_create(t, NULL, delayed_main, d);
}

/* Record a wake-up: within the bound, and not before the event. */
static void woke(struct result *r, const char *name, double t0, double t_ev,
		 double t1)
{
	char n[40];

	snprintf(n, sizeof(n), "%s_in_bound", name);
	res_same(r, n, t1 - t0 < BOUND_S && t1 >= t_ev);
	snprintf(n, sizeof(n), "%s_us", name);
	res_info(r, n, (long long)((t1 - t_ev) * 1e6));
}

enum waiter { W_POLL, W_SELECT, W_EPOLL_LT, W_EPOLL_ET };

/* Wait for readability of @fd with @w for up to @ms; 1 if readable. */
static int wait_in(enum waiter w, int fd, int ep, int ms)
{
	switch (w) {
	case W_POLL: {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
	}
	case W_SELECT: {
		fd_set set;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

		FD_ZERO(&set);
		FD_SET(fd, &set);
		return select(fd + 1, &set, NULL, NULL, &tv) == 1;
	}
	default: {
		struct epoll_event ev;

		return epoll_wait(ep, &ev, 1, ms) == 1 && (ev.events & EPOLLIN);
	}
	}
}

static int data_ready(struct result *r, void *arg)
{
	enum waiter w = *(enum waiter *)arg;
	unsigned char buf[256];
	struct delayed d = {.delay_ms = 50, .len = 100};
	struct epoll_event ev = {.events = EPOLLIN};
	pthread_t t;
	double t0;
	int c, s, ep = -1;
	ssize_t n;

	if (scen_pair(r, &c, &s, NULL))
		return 1;
	set_nonblock(s, 1);
	if (w == W_EPOLL_LT || w == W_EPOLL_ET) {
		ep = epoll_create1(EPOLL_CLOEXEC);
		if (w == W_EPOLL_ET)
			ev.events |= EPOLLET;
		epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	}
	res_same(r, "ready_before_data", wait_in(w, s, ep, 0));
	d.fd = c;
	t0 = now_s();
	delayed_start(&t, &d);
	res_same(r, "ready_after_data", wait_in(w, s, ep, 2000));
	woke(r, "wakeup", t0, d.t_sent, now_s());
	pthread_join(t, NULL);
	n = recv(s, buf, 50, 0);
	res_same(r, "read_50", n);
	/* 50 bytes still queued: level says ready, edge says nothing new */
	res_same(r, "ready_with_50_left", wait_in(w, s, ep, 100));
	/* more data: a new edge */
	d.delay_ms = 20;
	d.off = 100;
	delayed_start(&t, &d);
	res_same(r, "ready_after_more_data", wait_in(w, s, ep, 2000));
	pthread_join(t, NULL);
	n = recv(s, buf, sizeof(buf), 0);
	res_same(r, "read_rest", n);
	res_same(r, "read_rest_bad_byte",
		 n == 150 ? pat_check(buf, 150, 50, 21) : -2);
	n = recv(s, buf, sizeof(buf), 0);
	res_same(r, "then_EAGAIN", n < 0 && errno == EAGAIN);
	res_same(r, "ready_when_drained", wait_in(w, s, ep, 100));
	if (ep >= 0)
		close(ep);
	close(c);
	close(s);
	return 0;
}

static void ready_case(struct env *e, const char *what, enum waiter w)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, what, data_ready, &w, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 200, "every byte redirected");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

TEST(ready_poll_data)
{
	ready_case(e, "poll for data", W_POLL);
}

TEST(ready_select_data)
{
	ready_case(e, "select for data", W_SELECT);
}

TEST(ready_epoll_level_data)
{
	ready_case(e, "epoll level-triggered", W_EPOLL_LT);
}

TEST(ready_epoll_edge_data)
{
	ready_case(e, "epoll edge-triggered", W_EPOLL_ET);
}

/* --- writability after backpressure ------------------------------------ */

#define FILL_CAP (64u << 20)

static int write_ready(struct result *r, void *arg)
{
	static unsigned char buf[65536];
	struct reader rd = {.seed = 22, .r = r};
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};
	struct pollfd p;
	size_t sent = 0;
	double t0;
	int c, s, ep, n_ev, eagain = 0;
	ssize_t n;

	(void)arg;
	if (scen_pair(r, &c, &s, &(struct pair_opt){.bufsize = 64 * 1024}))
		return 1;
	set_nonblock(c, 1);
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	n_ev = epoll_wait(ep, &(struct epoll_event){0}, 1, 0);
	res_same(r, "epollout_edge_at_start", n_ev);
	while (sent < FILL_CAP) {
		pat_fill(buf, sizeof(buf), sent, 22);
		n = send(c, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n < 0) {
			eagain = errno == EAGAIN;
			break;
		}
		sent += n;
	}
	res_same(r, "fill_hit_EAGAIN", eagain);
	res_info(r, "bytes_before_EAGAIN", sent);
	res_info(r, "bytes_sent_total", sent);
	p = (struct pollfd){.fd = c, .events = POLLOUT};
	res_same(r, "pollout_when_full", poll(&p, 1, 0));
	/* the receiver drains: the sender becomes writable, one edge */
	rd.fd = s;
	t0 = now_s();
	reader_start(&rd);
	p = (struct pollfd){.fd = c, .events = POLLOUT};
	res_same(r, "pollout_after_drain", poll(&p, 1, 2000));
	res_same(r, "pollout_in_bound", now_s() - t0 < BOUND_S);
	n_ev = epoll_wait(ep, &(struct epoll_event){0}, 1, 2000);
	res_same(r, "epollout_edge_after_drain", n_ev);
	shutdown(c, SHUT_WR);
	reader_join(&rd);
	res_same(r, "rx_bytes_equal_sent", rd.got == sent);
	res_same(r, "rx_first_bad_byte", rd.bad_at);
	close(ep);
	close(c);
	close(s);
	return 0;
}

TEST(ready_writable_after_backpressure)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "writability after backpressure",
					  write_ready, NULL, &d, NULL))
		return;
	/* a limit on the receiver's queue may move the rest to the stack */
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected");
	diff_check_bytes(e, &d, res_get(&d.accel, "bytes_sent_total"));
}

/* --- the peer's half-close --------------------------------------------- */

static int rdhup(struct result *r, void *arg)
{
	struct delayed d = {.delay_ms = 50, .shut = 1};
	struct pollfd p;
	unsigned char b;
	pthread_t t;
	double t0;
	int c, s, ep, n;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	send_pat(c, 10, 0, 23);
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	sleep_ms(20);
	ev.events = 0;
	n = epoll_wait(ep, &ev, 1, 1000);
	res_same(r, "epoll_data_event", n);
	res_same(r, "epoll_data_event_rdhup", !!(ev.events & EPOLLRDHUP));
	d.fd = c;
	t0 = now_s();
	delayed_start(&t, &d);
	ev.events = 0;
	n = epoll_wait(ep, &ev, 1, 2000);
	woke(r, "rdhup_wakeup", t0, d.t_sent, now_s());
	pthread_join(t, NULL);
	res_same(r, "epoll_rdhup_event", n == 1 && (ev.events & EPOLLRDHUP));
	p = (struct pollfd){.fd = s, .events = POLLIN | POLLRDHUP};
	poll(&p, 1, 0);
	res_same(r, "poll_revents", p.revents);
	res_same(r, "read_data", recv(s, &b, 1, MSG_DONTWAIT));
	res_same(r, "read_rest", recv(s, (unsigned char[16]){0}, 16, 0));
	res_same(r, "read_eof", recv(s, &b, 1, 0));
	close(ep);
	close(c);
	close(s);
	return 0;
}

TEST(ready_peer_half_close)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "EPOLLRDHUP", rdhup, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 10, "redirected");
}

/* --- SO_RCVLOWAT ------------------------------------------------------- */

static int rcvlowat(struct result *r, void *arg)
{
	unsigned char buf[2000];
	int c, s, lowat = 1000;
	struct pollfd p = {.events = POLLIN};

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
	send_pat(c, 500, 0, 24);
	sleep_ms(30);
	p.fd = s;
	res_gap(r, "poll_500_of_lowat_1000", poll(&p, 1, 100),
		"tcp_bpf: SO_RCVLOWAT ignored by poll");
	send_pat(c, 600, 500, 24);
	sleep_ms(30);
	res_same(r, "poll_1100_of_lowat_1000", poll(&p, 1, 1000));
	res_same(r, "recv_returned", recv(s, buf, sizeof(buf), 0));
	close(c);
	close(s);
	return 0;
}

TEST(ready_so_rcvlowat)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "SO_RCVLOWAT", rcvlowat, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 1100, "redirected");
}

/* --- a blocked recv() woken by data ------------------------------------ */

static int blocked_recv(struct result *r, void *arg)
{
	unsigned char buf[256];
	struct delayed d = {.delay_ms = 50, .len = 100};
	pthread_t t;
	double t0;
	ssize_t n;
	int c, s, tries = 0;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	d.fd = c;
	t0 = now_s();
	delayed_start(&t, &d);
	do {
		n = recv(s, buf, sizeof(buf), 0);
		tries++;
		if (n < 0 && errno == EAGAIN)
			r->eagain_gap++;
	} while (n < 0 && errno == EAGAIN && tries < 100);
	woke(r, "recv_wakeup", t0, d.t_sent, now_s());
	pthread_join(t, NULL);
	res_same(r, "recv_returned", n);
	close(c);
	close(s);
	return 0;
}

TEST(ready_blocked_recv_woken)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "blocked recv() woken by data",
					  blocked_recv, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 100, "redirected");
}

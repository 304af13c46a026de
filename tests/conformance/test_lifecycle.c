// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Connection lifecycle: shutdown(SHUT_WR) from each side; close and RST
 * (SO_LINGER 0) in the middle of a transfer; a sender blocked on a
 * receiver that closes; the same port pair reused after close. Both ends
 * must see what plain TCP shows them: the same bytes, then EOF (0) or the
 * same error class (ECONNRESET/EPIPE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

#define KNOWN_EAGAIN \
	"known: blocking recv() EAGAIN when woken without data (docs/datapath.md)"

/* --- shutdown(SHUT_WR) ------------------------------------------------- */

struct blocked_recv {
	int fd;
	ssize_t ret;
	int err;
	double t;
};

static void *blocked_recv_main(void *p)
{
	struct blocked_recv *b = p;
	unsigned char c;

	b->ret = recv(b->fd, &c, 1, 0);
	b->err = b->ret < 0 ? errno : 0;
	b->t = now_s();
	return NULL;
}

static int half_close(struct result *r, void *arg)
{
	int server_first = *(int *)arg;
	static unsigned char buf[70000];
	struct blocked_recv b;
	pthread_t t;
	int c, s, first, second;
	double t0;
	ssize_t n;

	if (scen_pair(r, &c, &s, NULL))
		return 1;
	first = server_first ? s : c;
	second = server_first ? c : s;
	/* first: 70000 bytes, then half-close; second reads them, then EOF */
	send_pat(first, 70000, 0, 41);
	shutdown(first, SHUT_WR);
	n = recv_exact(r, second, buf, 70000);
	res_same(r, "second_reads_all", n);
	res_same(r, "second_bytes_bad_at", pat_check(buf, 70000, 0, 41));
	n = recv(second, buf, 100, 0);
	res_same(r, "second_then_reads_eof", n);
	res_same(r, "second_eof_errno", n < 0 ? errno : 0);
	/* the other direction still works: second answers, first reads */
	res_same(r, "second_can_still_send", send_pat(second, 50000, 0, 42));
	n = recv_exact(r, first, buf, 50000);
	res_same(r, "first_reads_answer", n);
	res_same(r, "first_answer_bad_at", pat_check(buf, 50000, 0, 42));
	res_same(r, "first_send_after_shut_wr",
		 send(first, "x", 1, MSG_NOSIGNAL) < 0 ? errno : 0);
	/* second has seen the EOF: nothing may follow it */
	sleep_ms(10);
	n = recv(second, buf, 100, MSG_DONTWAIT);
	res_same(r, "second_reads_after_eof", n);
	/* first blocks in recv(); second half-closes: EOF, after a wait */
	b = (struct blocked_recv){.fd = first};
	pthread_create(&t, NULL, blocked_recv_main, &b);
	sleep_ms(50);
	t0 = now_s();
	shutdown(second, SHUT_WR);
	pthread_join(t, NULL);
	res_gap(r, "blocked_recv_at_peer_fin_returned", b.ret, KNOWN_EAGAIN);
	res_gap(r, "blocked_recv_at_peer_fin_errno", b.err, KNOWN_EAGAIN);
	res_same(r, "blocked_recv_woke_in_1s", b.t - t0 < 1.0);
	n = recv(first, buf, 100, 0);
	res_same(r, "first_then_reads_eof", n);
	close(c);
	close(s);
	return 0;
}

static void half_close_case(struct env *e, const char *what, int server_first)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, what, half_close, &server_first, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 120000, "every byte redirected");
	/* the send after shutdown(SHUT_WR) goes to the stack, which says EPIPE */
	ASSERT_EQ(d.da.msgs_passed, 1, "only the refused send took the stack");
}

TEST(life_shutdown_wr_client_first)
{
	half_close_case(e, "client shuts down first", 0);
}

TEST(life_shutdown_wr_server_first)
{
	half_close_case(e, "server shuts down first", 1);
}

/* --- a blocked recv() when the peer ends the stream -------------------- */

#define EOF_ROUNDS 40

static int blocked_at_eof(struct result *r, void *arg)
{
	/* bit 0: the peer close()s instead of shutdown(SHUT_WR); bit 1: the
	 * reader half-closed its own side first (a client that sent its
	 * request and waits for the response and the EOF) */
	int how = *(int *)arg;
	int eof = 0, eagain = 0, other = 0, eventually = 0;

	for (int i = 0; i < EOF_ROUNDS; i++) {
		struct blocked_recv b;
		unsigned char c1;
		pthread_t t;
		int c, s;

		if (scen_pair(r, &c, &s, NULL))
			return 1;
		if (how & 2)
			shutdown(c, SHUT_WR);
		b = (struct blocked_recv){.fd = c};
		pthread_create(&t, NULL, blocked_recv_main, &b);
		sleep_ms(10); /* the reader is asleep in recv() */
		if (how & 1)
			close(s);
		else
			shutdown(s, SHUT_WR);
		pthread_join(t, NULL);
		eof += b.ret == 0;
		eagain += b.ret < 0 && b.err == EAGAIN;
		other += b.ret != 0 && !(b.ret < 0 && b.err == EAGAIN);
		/* a retry after the EAGAIN sees the EOF */
		eventually += b.ret == 0 || recv(c, &c1, 1, 0) == 0;
		close(c);
		if (!(how & 1))
			close(s);
	}
	res_gap(r, "blocked_recv_returned_0", eof, KNOWN_EAGAIN);
	res_gap(r, "blocked_recv_returned_EAGAIN", eagain, KNOWN_EAGAIN);
	res_same(r, "blocked_recv_returned_other", other);
	res_same(r, "eof_at_the_latest_on_retry", eventually);
	return 0;
}

TEST(life_blocked_recv_at_peer_eof)
{
	static const char *const what[4] = {
		"blocked recv(), peer shutdown(SHUT_WR)",
		"blocked recv(), peer close()",
		"own SHUT_WR, blocked recv(), peer shutdown(SHUT_WR)",
		"own SHUT_WR, blocked recv(), peer close()",
	};
	struct diff d;

	memset(&d, 0, sizeof(d));
	if (conf_start(e, ""))
		return;
	for (int how = 0; how < 4; how++) {
		diff_run(e, what[how], blocked_at_eof, &how, &d, NULL);
		ASSERT_EQ(d.da.sockets_added, 2 * EOF_ROUNDS,
			  "every connection accelerated");
		fprintf(stderr,
			"    %s: accelerated recv() returned EAGAIN %lld of %d times\n",
			what[how],
			res_get(&d.accel, "blocked_recv_returned_EAGAIN"),
			EOF_ROUNDS);
	}
}

/* --- close and RST in the middle of a transfer -------------------------- */

struct streamer {
	int fd;
	size_t cap;	   /* stop after this many bytes */
	size_t sent;	   /* out */
	long ret;	   /* out: the last send()'s return */
	int err;	   /* out: its errno */
	double t_err;	   /* out: when it failed */
	atomic_int inside; /* in a send() right now */
	atomic_int stop;   /* set: stop at the next send() (SO_SNDTIMEO) */
};

static void *streamer_main(void *p)
{
	struct streamer *st = p;
	static __thread unsigned char buf[65536];

	st->ret = 0;
	while (st->sent < st->cap && !atomic_load(&st->stop)) {
		ssize_t n;

		pat_fill(buf, sizeof(buf), st->sent, 43);
		atomic_store(&st->inside, 1);
		n = send(st->fd, buf, sizeof(buf), MSG_NOSIGNAL);
		atomic_store(&st->inside, 0);
		st->ret = n;
		if (n < 0 && errno == EAGAIN) /* SO_SNDTIMEO: look at stop */
			continue;
		if (n < 0) {
			st->err = errno;
			st->t_err = now_s();
			break;
		}
		st->sent += n;
	}
	return NULL;
}

enum abort_how {
	RECEIVER_CLOSES, /* with unread bytes: the kernel sends RST */
	RECEIVER_RESETS, /* SO_LINGER 0 then close(): RST */
	SENDER_RESETS,	 /* SO_LINGER 0 then close(): RST */
};

static int abort_mid(struct result *r, void *arg)
{
	enum abort_how how = *(enum abort_how *)arg;
	static unsigned char buf[65536];
	struct streamer st = {.cap = 64u << 20};
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	pthread_t t;
	size_t got = 0;
	ssize_t n = 0;
	int c, s, err = 0;
	double t0;

	if (scen_pair(r, &c, &s, NULL))
		return 1;
	st.fd = c;
	if (how == SENDER_RESETS) /* a blocked send() can see st.stop */
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO,
			   &(struct timeval){.tv_usec = 50000},
			   sizeof(struct timeval));
	pthread_create(&t, NULL, streamer_main, &st);
	/* the receiver reads 1 MiB, exact */
	n = recv_exact(r, s, buf, sizeof(buf));
	for (got = 0; n > 0 && got < (1u << 20);) {
		if (pat_check(buf, n, got, 43) >= 0)
			break;
		got += n;
		n = recv_exact(r, s, buf, sizeof(buf));
	}
	res_same(r, "receiver_read_1MiB_exact", got == (1u << 20));
	t0 = now_s();
	if (how == RECEIVER_CLOSES || how == RECEIVER_RESETS) {
		if (how == RECEIVER_RESETS)
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(s);
		s = -1;
		pthread_join(t, NULL);
		res_same(r, "sender_error_class", err_class(st.ret, st.err));
		res_info(r, "sender_errno", st.err);
		res_same(r, "sender_error_in_1s",
			 st.ret < 0 && st.t_err - t0 < 1.0);
		res_info(r, "sender_bytes_after_close", st.sent - (1u << 20));
		/* a later send fails the same way */
		n = send(c, "x", 1, MSG_NOSIGNAL);
		res_same(r, "next_send_error_class", err_class(n, errno));
	} else {
		/* stop the sender (no FIN: this must be a bare reset) */
		atomic_store(&st.stop, 1);
		pthread_join(t, NULL);
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
		c = -1;
		/* the receiver: bytes still queued, then the reset */
		got = 0;
		for (;;) {
			n = recv(s, buf, sizeof(buf), 0);
			if (n < 0 && errno == EAGAIN) {
				r->eagain_gap++;
				poll(&(struct pollfd){.fd = s,
						      .events = POLLIN},
				     1, 1000);
				continue;
			}
			if (n <= 0)
				break;
			got += n;
		}
		err = n < 0 ? errno : 0;
		res_same(r, "receiver_end_class", err_class(n, err));
		res_info(r, "receiver_end_errno", err);
		res_info(r, "receiver_bytes_after_reset", got);
		res_same(r, "receiver_end_in_1s", now_s() - t0 < 1.0);
		n = recv(s, buf, sizeof(buf), 0);
		res_same(r, "receiver_next_recv_class", err_class(n, errno));
	}
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	return 0;
}

TEST(life_receiver_closes_mid_transfer)
{
	enum abort_how how = RECEIVER_CLOSES;
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "receiver closes mid-transfer",
					  abort_mid, &how, &d, NULL))
		return;
	ASSERT_GE(d.da.bytes_redirected, 1u << 20, "redirected");
}

TEST(life_receiver_resets_mid_transfer)
{
	enum abort_how how = RECEIVER_RESETS;
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "receiver RST (SO_LINGER 0) mid-transfer", abort_mid,
		     &how, &d, NULL))
		return;
	ASSERT_GE(d.da.bytes_redirected, 1u << 20, "redirected");
}

TEST(life_sender_resets_mid_transfer)
{
	enum abort_how how = SENDER_RESETS;
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "sender RST (SO_LINGER 0) mid-transfer", abort_mid,
		     &how, &d, NULL))
		return;
	ASSERT_GE(d.da.bytes_redirected, 1u << 20, "redirected");
}

/* --- a sender blocked on a receiver that closes ------------------------- */

static int blocked_sender(struct result *r, void *arg)
{
	struct streamer st = {.cap = 64u << 20};
	struct pair_opt po = {.bufsize = 64 * 1024};
	pthread_t t;
	size_t before;
	int c, s;
	double t0;

	(void)arg;
	if (scen_pair(r, &c, &s, &po))
		return 1;
	st.fd = c;
	pthread_create(&t, NULL, streamer_main, &st);
	sleep_ms(300); /* the receiver reads nothing */
	before = st.sent;
	sleep_ms(100);
	/* TCP: the sender is stuck in send(), nothing moved for 100 ms */
	res_same(r, "sender_blocked_in_send",
		 atomic_load(&st.inside) && st.sent == before);
	res_info(r, "sender_bytes_accepted", st.sent);
	t0 = now_s();
	close(s); /* with unread bytes: RST */
	pthread_join(t, NULL);
	res_same(r, "sender_error_class", err_class(st.ret, st.err));
	res_info(r, "sender_errno", st.err);
	res_same(r, "sender_woke_in_1s", st.ret < 0 && st.t_err - t0 < 1.0);
	close(c);
	return 0;
}

TEST(life_blocked_sender_receiver_closes)
{
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "blocked sender, receiver closes",
					  blocked_sender, NULL, &d, NULL))
		return;
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected");
}

/* --- the same ports again after close ----------------------------------- */

#define REUSE_SERVER_PORT 47011
#define REUSE_CLIENT_PORT 47012
#define REUSE_ROUNDS	  5

static int port_reuse(struct result *r, void *arg)
{
	struct pair_opt po = {.port = REUSE_SERVER_PORT,
			      .client_port = REUSE_CLIENT_PORT};
	unsigned char buf[40000];
	int ok = 0, c, s, ret;

	(void)arg;
	for (int i = 0; i < REUSE_ROUNDS; i++) {
		ret = tcp_pair(&c, &s, &po);
		if (ret) {
			res_same(r, "connect_errno", -ret);
			break;
		}
		/* each round its own bytes: a stale entry would misdeliver */
		if (!send_pat(c, sizeof(buf), 0, 50 + i) &&
		    recv_exact(r, s, buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, 50 + i) < 0 &&
		    !send_pat(s, sizeof(buf), 0, 60 + i) &&
		    recv_exact(r, c, buf, sizeof(buf)) == sizeof(buf) &&
		    pat_check(buf, sizeof(buf), 0, 60 + i) < 0)
			ok++;
		/* the server closes first: TIME_WAIT on its side, and a new
		 * SYN for the same tuple is accepted */
		close(s);
		sleep_ms(5);
		close(c);
		sleep_ms(5);
	}
	res_same(r, "rounds_exact", ok);
	return 0;
}

TEST(life_port_reuse_after_close)
{
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "same port pair reused", port_reuse, NULL, &d, NULL))
		return;
	ASSERT_EQ(res_get(&d.accel, "rounds_exact"), REUSE_ROUNDS,
		  "every round exact");
	ASSERT_EQ(d.da.sockets_added, 2 * REUSE_ROUNDS,
		  "each round's sockets accelerated (no stale key)");
	ASSERT_EQ(d.da.sockets_add_failed, 0, "no stale entry refused a key");
	ASSERT_EQ(d.da.bytes_redirected, 2 * 40000 * REUSE_ROUNDS,
		  "every byte redirected");
	ASSERT_EQ(env_sockets(e), 0, "closed sockets left the map");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * compat = strict (sockmesh.h, SM_STRICT_*): the programs of docs/compat.md's
 * blocking rows (a blocking recv() woken by a signal, with and without
 * SA_RESTART, or by another thread; MSG_WAITALL; a reader whose own side
 * half-closes) see exactly what plain TCP shows them, because strict keeps
 * their connections on TCP, and the counters say by which rule. Event-loop
 * programs (non-blocking connect, SOCK_NONBLOCK at accept) and
 * signal-driven ones (O_ASYNC) stay redirected.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conform.h"

#define REQ 100 /* bytes of a request and of its answer */

/* A pair made the way event loops make theirs, on listener @lfd: a
 * non-blocking listener and connect(), accept4(SOCK_NONBLOCK) once the
 * listener polls readable. @blocking_after: then
 * both made blocking (the connect-with-a-timeout of iperf3 and hiredis);
 * BLOCKING_CLIENT: only the client (hiredis against an event-loop server).
 * 0 or -errno. */
#define BLOCKING_CLIENT 2
static int nb_pair_on(int lfd, int *c, int *s, int blocking_after)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct pollfd p;
	int ret;

	*c = *s = -1;
	if (getsockname(lfd, (struct sockaddr *)&a, &alen) ||
	    set_nonblock(lfd, 1))
		goto fail;
	*c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*c < 0)
		goto fail;
	if (connect(*c, (struct sockaddr *)&a, alen) && errno != EINPROGRESS)
		goto fail;
	p = (struct pollfd){.fd = *c, .events = POLLOUT};
	if (poll(&p, 1, 10000) != 1)
		goto fail;
	p = (struct pollfd){.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, 10000) != 1)
		goto fail;
	*s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (*s < 0)
		goto fail;
	if (blocking_after) {
		set_nonblock(*c, 0);
		if (blocking_after != BLOCKING_CLIENT)
			set_nonblock(*s, 0);
	}
	return 0;
fail:
	ret = errno ? -errno : -EIO;
	if (*c >= 0)
		close(*c);
	*c = -1;
	return ret;
}

static int nb_pair(int *c, int *s, int blocking_after)
{
	int lfd = tcp_listener(&(struct pair_opt){0}), ret;

	if (lfd < 0)
		return lfd;
	ret = nb_pair_on(lfd, c, s, blocking_after);
	close(lfd);
	return ret;
}

/* Send all of @len pattern bytes from @off on a non-blocking @fd. */
static int nb_send(int fd, size_t len, uint64_t off, unsigned seed)
{
	unsigned char buf[4096];
	size_t done = 0;

	while (done < len) {
		size_t k = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t n;

		pat_fill(buf, k, off + done, seed);
		n = send(fd, buf, k, MSG_NOSIGNAL);
		if (n > 0) {
			done += n;
		} else if (n < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1,
			     1000);
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

/* Read exactly @len bytes from a non-blocking @fd into @buf, polling on
 * EAGAIN, as an event loop does; 0, or -1 at EOF or error. */
static int nb_recv_all(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		if (n > 0)
			got += n;
		else if (n < 0 && errno == EAGAIN)
			poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1,
			     1000);
		else
			return -1;
	}
	return 0;
}

/*
 * Read exactly @len pattern bytes from @off with blocking recv() calls on
 * a blocking @fd, the way a program that trusts its socket does: EINTR is
 * retried (counted in *@eintr), EAGAIN, which a blocking socket never
 * returns on TCP, is counted in *@eagain and retried after poll(). Returns
 * the offset of the first wrong byte, -1 if all are right, -2 at EOF or
 * error.
 */
static long blocking_read(int fd, size_t len, uint64_t off, unsigned seed,
			  int *eintr, int *eagain)
{
	unsigned char buf[4096];
	size_t got = 0;
	long bad = -1;

	while (got < len) {
		size_t k = len - got < sizeof(buf) ? len - got : sizeof(buf);
		ssize_t n = recv(fd, buf, k, 0);

		if (n > 0) {
			long b = pat_check(buf, n, off + got, seed);

			if (b >= 0 && bad < 0)
				bad = got + b;
			got += n;
		} else if (n < 0 && errno == EINTR) {
			(*eintr)++;
		} else if (n < 0 && errno == EAGAIN) {
			(*eagain)++;
			poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1,
			     1000);
		} else {
			return -2;
		}
	}
	return bad;
}

/* --- a blocking recv() interrupted by a signal ---------------------------- */

#define SIG_ROUNDS 20

struct sig_arg {
	int restart;	    /* SA_RESTART in the handler's flags */
	int nb_connect;	    /* nb_pair_on(.., 1), else a blocking connect(),
			     * after a first connection without the timer */
	int s;		    /* the server's socket, for its thread */
	int server_bad;	    /* the server thread's own verdict */
	int server_eagain;  /* ... EAGAIN its blocking recv()s saw */
	int server_started; /* the request's reader is at work */
};

static void on_alarm(int sig)
{
	(void)sig;
}

/* The answering end: blocks in recv() for each request, answers 10 ms
 * later. SIGALRM is blocked here: the timer interrupts the client. */
static void *sig_server(void *p)
{
	struct sig_arg *a = p;
	sigset_t set;
	int eintr = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < SIG_ROUNDS; i++) {
		if (blocking_read(a->s, REQ, i * REQ, 11, &eintr,
				  &a->server_eagain) != -1) {
			a->server_bad = 1;
			break;
		}
		sleep_ms(10);
		if (send_pat(a->s, REQ, i * REQ, 12)) {
			a->server_bad = 1;
			break;
		}
	}
	return NULL;
}

static int sig_scen(struct result *r, void *arg)
{
	struct sig_arg *a = arg;
	struct sigaction sa = {.sa_handler = on_alarm};
	struct itimerval it = {{0, 1000}, {0, 1000}}; /* every 1 ms */
	int c, s, eintr = 0, eagain = 0, bad = 0, ret;
	pthread_t th;

	if (a->restart)
		sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	if (a->nb_connect) {
		int lfd = tcp_listener(&(struct pair_opt){0});

		/* the first connection of such a program: its first message
		 * (the answer's round trip) in the map, then its port known */
		ret = lfd < 0 ? lfd : nb_pair_on(lfd, &c, &s, 1);
		if (!ret) {
			ret = send_pat(c, REQ, 0, 13) ||
			      blocking_read(s, REQ, 0, 13, &eintr, &eagain) !=
				      -1;
			close(c);
			close(s);
			ret = ret ? -EIO : nb_pair_on(lfd, &c, &s, 1);
		}
		if (lfd >= 0)
			close(lfd);
		res_same(r, "first_connection_eagain", eagain);
		eagain = 0;
	} else {
		ret = tcp_pair(&c, &s, &(struct pair_opt){0});
	}
	if (ret) {
		res_broken(r, "pair: %s", strerror(-ret));
		return 1;
	}
	a->s = s;
	a->server_bad = a->server_eagain = 0;
	pthread_create(&th, NULL, sig_server, a);
	setitimer(ITIMER_REAL, &it, NULL);
	for (int i = 0; i < SIG_ROUNDS && !bad; i++) {
		if (send_pat(c, REQ, i * REQ, 11))
			bad = 1;
		else if (blocking_read(c, REQ, i * REQ, 12, &eintr, &eagain) !=
			 -1)
			bad = 1;
	}
	setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
	pthread_join(th, NULL);
	res_same(r, "answers_exact", !bad && !a->server_bad);
	res_same(r, "blocking_recv_eagain", eagain + a->server_eagain);
	if (a->restart)
		res_same(r, "eintr_with_sa_restart", eintr);
	else
		res_same(r, "some_recv_interrupted", eintr > 0);
	res_info(r, "eintr", eintr);
	close(c);
	close(s);
	return 0;
}

static void strict_start(struct env *e, const char *what, scenario_fn fn,
			 void *arg, struct diff *d)
{
	if (conf_start(e, "compat = strict"))
		return;
	diff_run(e, what, fn, arg, d, NULL);
}

/* A blocking connect() is never in the map. */
static void assert_kept_at_connect(struct env *e, const struct diff *d,
				   long long conns)
{
	ASSERT_EQ(d->da.sockets_added, 0, "no socket in the map");
	ASSERT_EQ(d->da.strict_blocking, conns,
		  "strict_blocking counts every connection");
	ASSERT_EQ(d->da.msgs_redirected, 0, "nothing redirected");
}

TEST(strict_blocking_recv_signal_sa_restart)
{
	struct sig_arg a = {.restart = 1};
	struct diff d;

	strict_start(e, "recv() under SIGALRM, SA_RESTART", sig_scen, &a, &d);
	assert_kept_at_connect(e, &d, 1);
}

TEST(strict_blocking_recv_signal_no_restart)
{
	struct sig_arg a = {.restart = 0};
	struct diff d;

	strict_start(e, "recv() under SIGALRM, no SA_RESTART", sig_scen, &a,
		     &d);
	assert_kept_at_connect(e, &d, 1);
}

/*
 * Made blocking after a non-blocking connect(): the first connection is in
 * the map until its first message, which takes it to the stack (both ends
 * leave) and marks the port; the next connection, under the timer, stays
 * on TCP from its connect(). (The first connection's wait for its answer
 * is the window docs/compat.md names: no timer there.)
 */
TEST(strict_blocking_after_nonblocking_connect_signal)
{
	struct sig_arg a = {.restart = 1, .nb_connect = 1};
	struct diff d;

	strict_start(e, "made blocking after connect, SIGALRM", sig_scen, &a,
		     &d);
	ASSERT_EQ(d.da.sockets_added, 2, "the first connection was in the map");
	ASSERT_EQ(d.da.strict_blocking, 2,
		  "strict_blocking: the first at its message, the second at "
		  "connect");
	ASSERT_EQ(d.da.msgs_redirected, 0, "nothing redirected");
	ASSERT_EQ(d.da.sockets_left, 2, "both ends left the map");
}

/* --- a blocking client of an event-loop server --------------------------- */

#define EVL_CONNS 3

/* One connection of evl_scen: the server's socket, the seeds' index. */
struct evl_arg {
	int s, i;
	int bad;
};

/*
 * The event-loop server of evl_scen: poll() and non-blocking reads until
 * the request is in, 10 ms, the answer. SIGALRM is blocked here: the timer
 * interrupts the client.
 */
static void *evl_server(void *p)
{
	struct evl_arg *a = p;
	unsigned char buf[REQ];
	size_t got = 0;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (got < REQ) {
		ssize_t k = recv(a->s, buf + got, REQ - got, 0);

		if (k > 0)
			got += k;
		else if (k < 0 && errno == EAGAIN)
			poll(&(struct pollfd){.fd = a->s, .events = POLLIN}, 1,
			     1000);
		else if (!(k < 0 && errno == EINTR))
			break;
	}
	if (got < REQ || pat_check(buf, REQ, 0, 70 + a->i) >= 0) {
		a->bad = 1;
		return NULL;
	}
	sleep_ms(10);
	a->bad = nb_send(a->s, REQ, 0, 80 + a->i) != 0;
	return NULL;
}

/* The event-loop client's read of the answer: poll() and recv(). */
static int evl_client_read(int c, unsigned seed)
{
	unsigned char buf[REQ];
	size_t got = 0;

	while (got < REQ) {
		ssize_t k = recv(c, buf + got, REQ - got, 0);

		if (k > 0)
			got += k;
		else if (k < 0 && (errno == EAGAIN || errno == EINTR))
			poll(&(struct pollfd){.fd = c, .events = POLLIN}, 1,
			     1000);
		else
			return -1;
	}
	return pat_check(buf, REQ, 0, seed) >= 0 ? -1 : 0;
}

/*
 * redis-benchmark's first connection, and hiredis' in general: a
 * non-blocking connect(), then the socket made blocking; the request
 * first, then a blocking recv() of the answer, under a 1 ms timer
 * (SA_RESTART), against an event-loop server (accept4(SOCK_NONBLOCK)).
 * EVL_CONNS such connections, one after the other, then an event-loop
 * client on the same port.
 */
static int evl_scen(struct result *r, void *arg)
{
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	struct itimerval it = {{0, 1000}, {0, 1000}};
	int lfd = tcp_listener(&(struct pair_opt){0});
	int eintr = 0, eagain = 0, bad = 0, server_bad = 0;

	(void)arg;
	if (lfd < 0) {
		res_broken(r, "listener: %s", strerror(-lfd));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	for (int i = 0; i <= EVL_CONNS && !bad; i++) {
		struct evl_arg a = {.i = i};
		int c, blocking = i < EVL_CONNS, ret;
		pthread_t th;

		ret = nb_pair_on(lfd, &c, &a.s, blocking ? BLOCKING_CLIENT : 0);
		if (ret) {
			res_broken(r, "pair %d: %s", i, strerror(-ret));
			close(lfd);
			return 1;
		}
		/* delayed ACKs at the server: the client hears nothing from it
		 * until the answer, 10 ms later, whatever its quick-ACK mode */
		setsockopt(a.s, IPPROTO_TCP, TCP_QUICKACK, &(int){0},
			   sizeof(int));
		pthread_create(&th, NULL, evl_server, &a);
		if (blocking) {
			setitimer(ITIMER_REAL, &it, NULL);
			bad = send_pat(c, REQ, 0, 70 + i) ||
			      blocking_read(c, REQ, 0, 80 + i, &eintr,
					    &eagain) != -1;
			setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
		} else {
			bad = nb_send(c, REQ, 0, 70 + i) ||
			      evl_client_read(c, 80 + i);
		}
		pthread_join(th, NULL);
		server_bad |= a.bad;
		close(c);
		close(a.s);
	}
	close(lfd);
	res_same(r, "answers_exact", !bad && !server_bad);
	res_same(r, "blocking_recv_eagain", eagain);
	res_info(r, "eintr", eintr);
	return 0;
}

/*
 * Each blocking client takes its own connection to the stack at its
 * request, and leaves the map in that sendmsg(), before its recv(): no
 * EAGAIN under the timer. It does not mark the port (its peer never
 * waited in the map): the event-loop client after it is redirected.
 */
TEST(strict_blocking_client_of_an_event_loop_server)
{
	struct diff d;

	strict_start(e, "blocking client, event-loop server, under SIGALRM",
		     evl_scen, NULL, &d);
	ASSERT_EQ(d.da.sockets_added, 2 * (EVL_CONNS + 1),
		  "every connection joined the map");
	ASSERT_EQ(d.da.strict_blocking, EVL_CONNS,
		  "strict_blocking: each blocking client, at its request");
	ASSERT_EQ(d.da.sockets_left, 2 * EVL_CONNS,
		  "both ends of each blocking connection left the map");
	ASSERT_EQ(d.da.msgs_redirected, 2,
		  "the event-loop client's request and answer redirected");
}

/* --- a server that speaks first ------------------------------------------ */

/* The greeting of greet_scen's second connection, 10 ms after its client
 * blocked in recv() (SIGALRM blocked here). */
static void *greet_late(void *p)
{
	struct evl_arg *a = p;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sleep_ms(10);
	a->bad = nb_send(a->s, REQ, 0, 90 + a->i) != 0;
	return NULL;
}

/*
 * An event-loop server that greets (SMTP, FTP, MySQL), a client made
 * blocking after a non-blocking connect() that reads the greeting: the
 * first connection greeted at once, the second 10 ms after its client
 * blocked in recv() under the 1 ms timer (SA_RESTART).
 */
static int greet_scen(struct result *r, void *arg)
{
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	struct itimerval it = {{0, 1000}, {0, 1000}};
	int lfd = tcp_listener(&(struct pair_opt){0});
	int eintr = 0, eagain = 0, bad = 0, server_bad = 0;

	(void)arg;
	if (lfd < 0) {
		res_broken(r, "listener: %s", strerror(-lfd));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	for (int i = 0; i < 2 && !bad; i++) {
		struct evl_arg a = {.i = i};
		pthread_t th;
		int c, ret;

		ret = nb_pair_on(lfd, &c, &a.s, BLOCKING_CLIENT);
		if (ret) {
			res_broken(r, "pair %d: %s", i, strerror(-ret));
			close(lfd);
			return 1;
		}
		if (!i) {
			bad = nb_send(a.s, REQ, 0, 90) ||
			      blocking_read(c, REQ, 0, 90, &eintr, &eagain) !=
				      -1;
		} else {
			pthread_create(&th, NULL, greet_late, &a);
			setitimer(ITIMER_REAL, &it, NULL);
			bad = blocking_read(c, REQ, 0, 91, &eintr, &eagain) !=
			      -1;
			setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
			pthread_join(th, NULL);
			server_bad = a.bad;
		}
		close(c);
		close(a.s);
	}
	close(lfd);
	res_same(r, "greetings_exact", !bad && !server_bad);
	res_same(r, "blocking_recv_eagain", eagain);
	res_info(r, "eintr", eintr);
	return 0;
}

/*
 * The greeting's sendmsg() sees its receiver blocking, through sk_redir on
 * every kernel (before 6.2 copied out of the context), and sends it
 * through the stack; that receiver may already wait in the map, so the
 * port is marked and the second connection never joins it.
 */
TEST(strict_greeting_server_marks_the_port)
{
	struct diff d;

	strict_start(e, "greeting server, blocking client, SIGALRM", greet_scen,
		     NULL, &d);
	ASSERT_EQ(d.da.sockets_added, 2, "only the first connection joined");
	ASSERT_EQ(d.da.strict_blocking, 2,
		  "strict_blocking: the first at the greeting, the second at "
		  "connect");
	ASSERT_EQ(d.da.msgs_redirected, 0,
		  "the greeting itself went through the stack");
}

/* --- another thread sends, or half-closes, while one blocks in recv() ----- */

#define THR_MSGS 200

struct thr_arg {
	int half_close; /* the second thread shuts down instead of sending */
	int nb_connect;
	int c, s;
	int eagain, eintr;
	long bad;
	size_t got;
};

/* The reader: blocking recv() for everything the peer answers. */
static void *thr_reader(void *p)
{
	struct thr_arg *a = p;
	size_t want = a->half_close ? 1000 : (size_t)THR_MSGS * REQ;

	a->bad = blocking_read(a->c, want, 0, 21, &a->eintr, &a->eagain);
	a->got = want;
	if (a->half_close) {
		char b;

		a->got += recv(a->c, &b, 1, 0) == 0 ? 0 : 1; /* EOF */
	}
	return NULL;
}

/* The peer: echoes each message 1 ms later (or, half-close, answers the
 * EOF with 1000 B and closes). */
static void *thr_peer(void *p)
{
	struct thr_arg *a = p;
	unsigned char buf[REQ];
	int eintr = 0, eagain = 0;

	if (a->half_close) {
		while (recv(a->s, buf, sizeof(buf), 0) > 0)
			;
		sleep_ms(10);
		send_pat(a->s, 1000, 0, 21);
		shutdown(a->s, SHUT_WR);
		return NULL;
	}
	for (int i = 0; i < THR_MSGS; i++) {
		if (blocking_read(a->s, REQ, i * REQ, 20, &eintr, &eagain) !=
		    -1)
			break;
		sleep_ms(1);
		send_pat(a->s, REQ, i * REQ, 21);
	}
	a->eagain += eagain;
	return NULL;
}

static int thr_scen(struct result *r, void *arg)
{
	struct thr_arg *a = arg;
	pthread_t rd, pe;
	int ret;

	ret = a->nb_connect ? nb_pair(&a->c, &a->s, 1)
			    : tcp_pair(&a->c, &a->s, &(struct pair_opt){0});
	if (ret) {
		res_broken(r, "pair: %s", strerror(-ret));
		return 1;
	}
	a->eagain = a->eintr = 0;
	a->got = 0;
	pthread_create(&rd, NULL, thr_reader, a);
	pthread_create(&pe, NULL, thr_peer, a);
	sleep_ms(20); /* the reader is blocked in recv() */
	if (a->half_close) {
		shutdown(a->c, SHUT_WR);
	} else {
		for (int i = 0; i < THR_MSGS; i++) {
			send_pat(a->c, REQ, i * REQ, 20);
			sleep_ms(1);
		}
	}
	pthread_join(rd, NULL);
	pthread_join(pe, NULL);
	res_same(r, "reader_bytes_exact", a->bad == -1);
	res_same(r, "reader_got", a->got);
	res_same(r, "blocking_recv_eagain", a->eagain);
	res_same(r, "blocking_recv_eintr", a->eintr);
	close(a->c);
	close(a->s);
	return 0;
}

TEST(strict_threaded_reader_while_another_thread_sends)
{
	struct thr_arg a = {0};
	struct diff d;

	strict_start(e, "blocking reader, a writer thread", thr_scen, &a, &d);
	assert_kept_at_connect(e, &d, 1);
}

TEST(strict_threaded_reader_after_nonblocking_connect)
{
	struct thr_arg a = {.nb_connect = 1};
	struct diff d;

	strict_start(e, "blocking reader, a writer thread, made blocking",
		     thr_scen, &a, &d);
	ASSERT_EQ(d.da.strict_blocking, 1, "strict_blocking");
	ASSERT_EQ(d.da.msgs_redirected, 0, "nothing redirected");
}

TEST(strict_threaded_reader_while_another_thread_half_closes)
{
	struct thr_arg a = {.half_close = 1};
	struct diff d;

	strict_start(e, "blocking reader, a thread half-closes", thr_scen, &a,
		     &d);
	assert_kept_at_connect(e, &d, 1);
}

/* --- MSG_WAITALL on a blocking socket -------------------------------------- */

static int waitall_scen(struct result *r, void *arg)
{
	unsigned char buf[3000];
	ssize_t n;
	pid_t pid;
	int c, s;

	(void)arg;
	if (scen_pair(r, &c, &s, NULL))
		return 1;
	pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 3; i++) {
			send_pat(c, 1000, i * 1000, 31);
			sleep_ms(30);
		}
		_exit(0);
	}
	n = recv(s, buf, sizeof(buf), MSG_WAITALL);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	res_same(r, "waitall_returned", n);
	res_same(r, "first_bad_byte", n > 0 ? pat_check(buf, n, 0, 31) : -2);
	close(c);
	close(s);
	return 0;
}

TEST(strict_msg_waitall_blocking)
{
	struct diff d;

	strict_start(e, "MSG_WAITALL, 3 x 1000 B 30 ms apart", waitall_scen,
		     NULL, &d);
	assert_kept_at_connect(e, &d, 1);
}

/* --- event loops stay accelerated ------------------------------------------ */

#define LOOP_ROUNDS 200

/* Request/response through poll() on non-blocking sockets, 4 KiB each
 * way; @arg non-NULL: made non-blocking only after a blocking connect(). */
static int loop_scen(struct result *r, void *arg)
{
	unsigned char buf[4096];
	int c, s, ret, bad = 0;

	if (arg) {
		ret = tcp_pair(&c, &s, &(struct pair_opt){.nonblock = 1});
	} else {
		ret = nb_pair(&c, &s, 0);
	}
	if (ret) {
		res_broken(r, "pair: %s", strerror(-ret));
		return 1;
	}
	for (int i = 0; i < LOOP_ROUNDS && !bad; i++) {
		int fds[2] = {c, s};

		for (int k = 0; k < 2 && !bad; k++) {
			size_t got = 0;

			if (nb_send(fds[k], sizeof(buf), i * sizeof(buf),
				    40 + k))
				bad = 1;
			while (!bad && got < sizeof(buf)) {
				ssize_t n = recv(fds[!k], buf + got,
						 sizeof(buf) - got, 0);

				if (n > 0)
					got += n;
				else if (n < 0 && errno == EAGAIN)
					poll(&(struct pollfd){.fd = fds[!k],
							      .events = POLLIN},
					     1, 1000);
				else
					bad = 1;
			}
			if (!bad && pat_check(buf, sizeof(buf), i * sizeof(buf),
					      40 + k) >= 0)
				bad = 1;
		}
	}
	res_same(r, "rounds_exact", !bad);
	close(c);
	close(s);
	return 0;
}

TEST(strict_event_loop_stays_accelerated)
{
	struct diff d;

	strict_start(e, "event loop, non-blocking connect and accept",
		     loop_scen, NULL, &d);
	ASSERT_EQ(d.da.sockets_added, 2, "both ends in the map");
	ASSERT_EQ(d.da.strict_blocking + d.da.strict_rcvlowat +
			  d.da.strict_peek_off,
		  0, "no strict rule");
	ASSERT_EQ(d.da.bytes_redirected, 2ULL * LOOP_ROUNDS * 4096,
		  "every byte redirected");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

/* Made non-blocking after a blocking connect(): strict cannot know it at
 * establishment, the only time a socket can join the map: kept on TCP. */
TEST(strict_nonblocking_after_blocking_connect)
{
	struct diff d;

	strict_start(e, "made non-blocking after a blocking connect", loop_scen,
		     (void *)1, &d);
	assert_kept_at_connect(e, &d, 1);
}

/* --- a blocking server marks its port --------------------------------------- */

#define PORT_CONNS 3

/* An event-loop client, a blocking server (accept() without SOCK_NONBLOCK)
 * whose listener is non-blocking (an acceptor that polls, handing blocking
 * sockets to its threads: the listener does not tell), PORT_CONNS
 * connections one after the other. */
static int port_scen(struct result *r, void *arg)
{
	unsigned char buf[REQ];
	int lfd = tcp_listener(&(struct pair_opt){0}), bad = 0, eagain = 0;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	(void)arg;
	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) ||
	    set_nonblock(lfd, 1)) {
		res_broken(r, "listener: %s", strerror(errno));
		return 1;
	}
	for (int i = 0; i < PORT_CONNS && !bad; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), s,
		    eintr = 0;

		if (connect(c, (struct sockaddr *)&a, alen) &&
		    errno != EINPROGRESS)
			bad = 1;
		poll(&(struct pollfd){.fd = c, .events = POLLOUT}, 1, 10000);
		poll(&(struct pollfd){.fd = lfd, .events = POLLIN}, 1, 10000);
		s = accept(lfd, NULL, NULL);
		if (s < 0 || nb_send(c, REQ, 0, 50) ||
		    blocking_read(s, REQ, 0, 50, &eintr, &eagain) != -1 ||
		    send_pat(s, REQ, 0, 51))
			bad = 1;
		if (!bad && nb_recv_all(c, buf, REQ))
			bad = 1;
		if (!bad && pat_check(buf, REQ, 0, 51) >= 0)
			bad = 1;
		close(c);
		if (s >= 0)
			close(s);
	}
	res_same(r, "connections_exact", !bad);
	res_same(r, "blocking_recv_eagain", eagain);
	close(lfd);
	return 0;
}

TEST(strict_blocking_server_marks_its_port)
{
	char out[8192];
	struct diff d;

	strict_start(e, "blocking server, event-loop client, 3 connections",
		     port_scen, NULL, &d);
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status");
	ASSERT_STR_HAS(out, "strict ports (a blocking end or a splice() reader",
		       "status names the port an operator may exclude");
	ASSERT_STR_HAS(out, " blocking\n", "and why");
	ASSERT_EQ(d.da.sockets_added, 2, "only the first connection joined");
	ASSERT_EQ(d.da.strict_blocking, PORT_CONNS,
		  "strict_blocking: the first at a message, the others at "
		  "connect");
}

/* --- a blocking server that accepts after the first request ---------------- */

#define LATE_CONNS 2

struct late_arg {
	int lfd;
	int bad, eagain, eintr;
	unsigned seed;
};

/* A thread-per-connection server: accept() (blocking, as the listener),
 * read the request's two halves with blocking recv()s, answer. SIGALRM
 * is delivered here: the other threads block it. */
static void *late_server(void *p)
{
	struct late_arg *a = p;
	sigset_t set;
	int s;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	s = accept(a->lfd, NULL, NULL);
	if (s < 0 ||
	    blocking_read(s, 2 * REQ, 0, a->seed, &a->eintr, &a->eagain) !=
		    -1 ||
	    send_pat(s, REQ, 0, a->seed + 1))
		a->bad = 1;
	if (s >= 0)
		close(s);
	return NULL;
}

/*
 * An event-loop client writes the first half of its request as soon as
 * connect() completes, before the server's accept(): the accepted socket
 * has no file yet to say that it will be blocking. The server reads it,
 * then waits in recv() for the second half, 20 ms later, under a 1 ms
 * timer (SA_RESTART). Were the half redirected, that recv() would wait in
 * the map and return EAGAIN at a tick.
 */
static int late_scen(struct result *r, void *arg)
{
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	struct itimerval it = {{0, 1000}, {0, 1000}};
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	int bad = 0, lfd = tcp_listener(&(struct pair_opt){0});
	sigset_t set, old;

	(void)arg;
	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		res_broken(r, "listener: %s", strerror(errno));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (int i = 0; i < LATE_CONNS && !bad; i++) {
		struct late_arg a = {.lfd = lfd, .seed = 60 + 2 * i};
		unsigned char buf[REQ];
		char name[32];
		pthread_t th;
		int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

		if (c < 0 || (connect(c, (struct sockaddr *)&addr, alen) &&
			      errno != EINPROGRESS)) {
			res_broken(r, "connect: %s", strerror(errno));
			bad = 1;
			break;
		}
		poll(&(struct pollfd){.fd = c, .events = POLLOUT}, 1, 10000);
		bad = nb_send(c, REQ, 0, a.seed) != 0;
		pthread_create(&th, NULL, late_server, &a);
		setitimer(ITIMER_REAL, &it, NULL);
		sleep_ms(20);
		bad = bad || nb_send(c, REQ, REQ, a.seed) != 0;
		if (!bad && nb_recv_all(c, buf, REQ))
			bad = 1;
		setitimer(ITIMER_REAL, &(struct itimerval){0}, NULL);
		pthread_join(th, NULL);
		bad = bad || a.bad || pat_check(buf, REQ, 0, a.seed + 1) >= 0;
		snprintf(name, sizeof(name), "conn%d_server_eagain", i);
		res_same(r, name, a.eagain);
		res_info(r, "eintr", a.eintr);
		close(c);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(lfd);
	res_same(r, "requests_exact", !bad);
	return 0;
}

TEST(strict_blocking_server_accepting_late)
{
	struct diff d;

	strict_start(e, "blocking server, accept() after the first request",
		     late_scen, NULL, &d);
	ASSERT_EQ(d.da.sockets_added, 1,
		  "the first connecting end only: the accepted end saw its "
		  "blocking listener and stayed out");
	ASSERT_EQ(d.da.strict_blocking, LATE_CONNS,
		  "strict_blocking: the first at establishment, the other at "
		  "connect (the port marked)");
	ASSERT_EQ(d.da.msgs_redirected, 0, "not a byte redirected");
}

/* --- receive options tcp_bpf ignores ---------------------------------------- */

/* SO_RCVLOWAT 1000 (@arg NULL) or SO_PEEK_OFF 0 set by the accepted end
 * after accept(), then 500 B (peeked twice, 100 B each) from an event-loop
 * client. */
static int opt_scen(struct result *r, void *arg)
{
	unsigned char a[100], b[100];
	struct pollfd p;
	int c, s, v = arg ? 0 : 1000, ret;

	ret = nb_pair(&c, &s, 0);
	if (ret) {
		res_broken(r, "pair: %s", strerror(-ret));
		return 1;
	}
	setsockopt(s, SOL_SOCKET, arg ? SO_PEEK_OFF : SO_RCVLOWAT, &v,
		   sizeof(v));
	nb_send(c, 500, 0, 60);
	wait_sent(c, 1000);
	sleep_ms(20);
	if (!arg) {
		p = (struct pollfd){.fd = s, .events = POLLIN};
		res_same(r, "readable_below_lowat", poll(&p, 1, 50));
	} else {
		res_same(r, "peek1", recv(s, a, sizeof(a), MSG_PEEK));
		res_same(r, "peek2", recv(s, b, sizeof(b), MSG_PEEK));
		res_same(r, "peek1_first_bad", pat_check(a, 100, 0, 60));
		res_same(r, "peek2_first_bad", pat_check(b, 100, 100, 60));
	}
	close(c);
	close(s);
	return 0;
}

static void opt_test(struct env *e, int peek_off)
{
	struct diff d;

	if (peek_off) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), v = 0, ret;

		ret = fd < 0 ? -1
			     : setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &v,
					  sizeof(v));
		if (ret && errno == EOPNOTSUPP) {
			close(fd);
			env_skip(e, "this kernel's TCP lacks SO_PEEK_OFF "
				    "(6.9): setsockopt() says EOPNOTSUPP, "
				    "so there is nothing for strict to keep");
			return;
		}
		if (fd >= 0)
			close(fd);
	}
	if (conf_start(e, "compat = strict"))
		return;
	if (diff_run(e, peek_off ? "SO_PEEK_OFF" : "SO_RCVLOWAT", opt_scen,
		     peek_off ? (void *)1 : NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.sockets_added, 2, "both ends were in the map");
	ASSERT_EQ(peek_off ? d.da.strict_peek_off : d.da.strict_rcvlowat, 1,
		  "the rule counted the connection");
	ASSERT_EQ(d.da.msgs_redirected, 0, "nothing redirected");
}

TEST(strict_so_rcvlowat)
{
	opt_test(e, 0);
}

TEST(strict_so_peek_off)
{
	opt_test(e, 1);
}

/* --- signal-driven I/O ----------------------------------------------------- */

static volatile sig_atomic_t sigios;

static void on_sigio(int sig)
{
	(void)sig;
	sigios++;
}

/* An O_ASYNC receiver (SIGIO on arrival, F_SETOWN to itself), non-blocking
 * as signal-driven programs are: 20 messages 5 ms apart, read in the
 * handler's wake. */
static int sigio_scen(struct result *r, void *arg)
{
	struct sigaction sa = {.sa_handler = on_sigio};
	unsigned char buf[REQ];
	int c, s, ret, got = 0, bad = 0;

	(void)arg;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGIO, &sa, NULL);
	ret = nb_pair(&c, &s, 0);
	if (ret) {
		res_broken(r, "pair: %s", strerror(-ret));
		return 1;
	}
	sigios = 0;
	fcntl(s, F_SETOWN, getpid());
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_ASYNC | O_NONBLOCK);
	for (int i = 0; i < 20; i++) {
		int before = sigios;
		double t0 = now_s();

		nb_send(c, REQ, i * REQ, 70);
		while (sigios == before && now_s() - t0 < 1.0)
			sleep_ms(1);
		for (;;) {
			ssize_t n = recv(s, buf, sizeof(buf), 0);

			if (n <= 0)
				break;
			bad |= pat_check(buf, n, got, 70) >= 0;
			got += n;
		}
		sleep_ms(5);
	}
	res_same(r, "bytes_read", got);
	res_same(r, "bytes_exact", !bad);
	res_same(r, "a_sigio_per_message", sigios >= 20);
	res_info(r, "sigios", sigios);
	close(c);
	close(s);
	return 0;
}

TEST(strict_sigio_receiver)
{
	struct diff d;

	strict_start(e, "O_ASYNC receiver, SIGIO per message", sigio_scen, NULL,
		     &d);
	/* SIGIO comes from the receiver's sk_data_ready, which a redirect
	 * calls too: no rule needed, the connection stays accelerated */
	ASSERT_EQ(d.da.sockets_added, 2, "both ends in the map");
	ASSERT_EQ(d.da.msgs_redirected, 20, "every message redirected");
}

/* --- splice() readers -------------------------------------------------------- */

#define SPL_TOTAL (256 * 1024)

struct spl_arg {
	int header; /* the reader recv()s a 1000 B header before it splices */
	int conns;  /* 2: the first's bytes are queued before its splice() */
	int c;	    /* the sender thread's socket */
};

/* The sender thread: 50 ms after the reader began, SPL_TOTAL bytes. */
static void *spl_sender(void *p)
{
	struct spl_arg *a = p;

	sleep_ms(50);
	nb_send(a->c, SPL_TOTAL, 1000, 91);
	return NULL;
}

/* An event loop's splice() of @s into a pipe until @want bytes or @limit
 * seconds, speculative as HAProxy's and nginx's are (splice first, poll()
 * on EAGAIN); the bytes that came, -1 if one was wrong. */
static long splice_in(int s, size_t want, double limit)
{
	static unsigned char buf[SPL_TOTAL];
	size_t got = 0;
	double t0 = now_s();
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		return -1;
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	while (got < want && now_s() - t0 < limit) {
		ssize_t n;

		n = splice(s, NULL, p[1], NULL, want - got, SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){.fd = s, .events = POLLIN}, 1,
			     100);
			continue;
		}
		if (n <= 0 || read(p[0], buf + got, n) != n)
			break;
		got += n;
	}
	close(p[0]);
	close(p[1]);
	return pat_check(buf, got, 1000, 91) >= 0 ? -1 : (long)got;
}

static int spl_scen(struct result *r, void *arg)
{
	struct spl_arg *a = arg;
	int lfd = tcp_listener(&(struct pair_opt){0});

	if (lfd < 0) {
		res_broken(r, "listener: %s", strerror(-lfd));
		return 1;
	}
	for (int k = 0; k < a->conns; k++) {
		unsigned char hdr[1000];
		int s, queued = a->conns == 2 && k == 0;
		size_t got = 0;
		pthread_t th;
		char name[32];
		long n;

		if (nb_pair_on(lfd, &a->c, &s, 0)) {
			res_broken(r, "pair: %s", strerror(errno));
			return 1;
		}
		if (a->header) {
			nb_send(a->c, sizeof(hdr), 0, 91);
			while (got < sizeof(hdr)) {
				ssize_t m = recv(s, hdr + got,
						 sizeof(hdr) - got, 0);

				if (m > 0)
					got += m;
				else if (m < 0 && errno == EAGAIN)
					poll(&(struct pollfd){.fd = s,
							      .events = POLLIN},
					     1, 1000);
				else
					break;
			}
			res_same(r, "header_bad_at",
				 pat_check(hdr, got, 0, 91));
		}
		snprintf(name, sizeof(name), "conn%d_spliced", k);
		if (queued) {
			/* queued before the reader's first splice(): that
			 * connection keeps the gap (order), the port learns */
			nb_send(a->c, SPL_TOTAL, 1000, 91);
			wait_sent(a->c, 2000);
			res_info(r, name, splice_in(s, SPL_TOTAL, 0.5));
		} else {
			pthread_create(&th, NULL, spl_sender, a);
			n = splice_in(s, SPL_TOTAL, 10);
			pthread_join(th, NULL);
			res_same(r, name, n);
		}
		close(a->c);
		close(s);
	}
	close(lfd);
	return 0;
}

static void spl_test(struct env *e, struct spl_arg *a, const char *what)
{
	struct diff d;

	if (conf_start(e, "compat = strict"))
		return;
	if (!(env_feat(e) & SM_FEAT_RECV_TRACE)) {
		env_skip(e,
			 "this kernel cannot run the splice() trace (fentry "
			 "on tcp_splice_read() with socket storage, 5.11; or "
			 "it refused the program: sockmeshd's log says "
			 "which): no program sees a splice() reader");
		return;
	}
	if (diff_run(e, what, spl_scen, a, &d, NULL))
		return;
	ASSERT_EQ(d.da.splice_readers, 1, "the splice() reader counted");
	ASSERT_EQ(d.da.strict_splice, 1, "strict_splice counts the connection");
	ASSERT_EQ(d.da.sockets_added, 2, "one connection was in the map");
	/* the first connection of two: all of its bytes were redirected
	 * before its reader's first splice(), and stayed */
	ASSERT_EQ(d.da.bytes_redirected,
		  a->header	  ? 1000
		  : a->conns == 2 ? SPL_TOTAL
				  : 0,
		  "only what came before the splice() was redirected");
}

/* The reader splices before anything came: from then on, TCP. */
TEST(strict_splice_reader_first)
{
	struct spl_arg a = {.conns = 1};

	spl_test(e, &a, "splice() before the bytes");
}

/* HAProxy's way: the header by recv(), then the body by splice(). */
TEST(strict_splice_after_a_header)
{
	struct spl_arg a = {.header = 1, .conns = 1};

	spl_test(e, &a, "recv() a header, then splice()");
}

/* The bytes were redirected before the reader's first splice(): that
 * connection cannot be helped, the next one to the port stays on TCP. */
TEST(strict_splice_port_remembered)
{
	struct spl_arg a = {.conns = 2};

	spl_test(e, &a, "bytes before splice(), then a second connection");
}

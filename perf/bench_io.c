// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_io.c - the client and server loops: one io_uring per process and the
 * same code for tcp, accel and uds, so that only the transport differs.
 *
 * rr      the client sends size bytes and posts the receive of the echo in
 *         the same submission; the server reads exactly size bytes, then
 *         echoes them. The client compares the echo with what it sent (each
 *         request carries its sequence number at both ends).
 * crr     socket(), io_uring connect, one rr exchange, close(): one op.
 * stream  the client writes size-byte slices of a pattern whose period is a
 *         prime, as fast as the transport takes them; the server reads into a
 *         256 KiB buffer and checks every byte against the pattern at its
 *         stream offset, so a lost, repeated or reordered write is caught.
 *
 * Latency is taken per operation with CLOCK_MONOTONIC in the client: from
 * the start of the op (the send, or socket() for crr) to its end (the last
 * byte of the echo, the close for crr, the completion of the write for
 * stream). Ops that complete during the warm-up are not recorded.
 *
 * rr open loop (--rate): each connection has its own schedule of intended
 * send times at rate/conns requests/s, constant or Poisson (the connections'
 * Poisson streams add up to one of the total rate). A connection has one
 * request in flight at most, as wrk2's connections do: a request whose time
 * has come while its connection waits for the previous echo is sent as soon
 * as that echo is in, never skipped, and its latency runs from its intended
 * send time, so a stall is counted in every request it delays (no
 * coordinated omission). The requests scheduled in the window are the ones
 * measured, their echoes waited for after it (BENCH_DRAIN_MAX_NS at most);
 * the requests completed in the window give the achieved rate.
 *
 * --target: the client alone, against a server that is not ours (a redis,
 * an nginx, or one behind proxies); its sockets are non-blocking, as an
 * event loop's are (so compat = strict leaves them accelerated), and an
 * EAGAIN completion is retried once the socket is ready. --proto redis and
 * http send a fixed request and read one response, framed by
 * bench_proto.c; the server's side of the check is the framing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <liburing.h>

#include "bench.h"

#define PAT_PERIOD	4093 /* prime: no power-of-two write size divides it */
#define STREAM_RBUF	(256 * 1024)
#define LISTEN_BACKLOG	4096
#define SERVER_LINGER_S 5 /* after the client is done, for the last EOFs */
#define ACCEPT_WAIT_NS	(5ULL * 1000000000ULL)
#define RBUF_INIT	(64 * 1024) /* --proto: grown to the largest response */

enum op {
	OP_SEND = 1,
	OP_RECV,
	OP_CONNECT,
	OP_ACCEPT,
	OP_CTL,
	OP_TIMEOUT,
};

/* user_data: the connection's index and the operation */
#define UD(idx, op) (((__u64)(idx) << 3) | (op))
#define UD_IDX(ud)  ((int)((ud) >> 3))
#define UD_OP(ud)   ((int)((ud)&7))

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t tv_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000000ULL +
	       (uint64_t)tv->tv_usec * 1000ULL;
}

/* User + system time of this process, io_uring workers included. */
static uint64_t cpu_now_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime);
}

/* Record what failed in @side; returns @ret. */
static int __attribute__((format(printf, 3, 4)))
side_fail(struct bench_side *side, int ret, const char *fmt, ...)
{
	va_list ap;

	if (side->ret)
		return ret; /* keep the first failure */
	side->ret = ret;
	va_start(ap, fmt);
	vsnprintf(side->err, sizeof(side->err), fmt, ap);
	va_end(ap);
	return ret;
}

static bool is_tcp(const struct bench_params *p)
{
	return p->transport != BENCH_UDS;
}

/* Nagle off for request/response, as RPC stacks do; stream keeps the
 * default, as bulk senders do. */
static int set_nodelay(const struct bench_params *p, int fd)
{
	int one = 1;

	if (!is_tcp(p) || bench_is_stream(p->mode))
		return 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
	return 0;
}

/* Pattern of period PAT_PERIOD, @len bytes: pat[i] == pat[i % PAT_PERIOD],
 * so any window of a stream offset o is at pat + o % PAT_PERIOD. */
static unsigned char *pattern_new(size_t len)
{
	unsigned char *pat = malloc(len);
	uint32_t x = 2463534242U;

	if (!pat)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (i < PAT_PERIOD) {
			x ^= x << 13; /* xorshift32 */
			x ^= x >> 17;
			x ^= x << 5;
			pat[i] = (unsigned char)x;
		} else {
			pat[i] = pat[i - PAT_PERIOD];
		}
	}
	return pat;
}

/* A buffer of @len bytes, touched so that page faults stay out of the run. */
static void *buf_new(size_t len)
{
	void *buf = NULL;

	if (posix_memalign(&buf, 4096, len ? len : 1))
		return NULL;
	memset(buf, 0x5a, len);
	return buf;
}

static int ring_init(struct io_uring *ring, unsigned int entries)
{
	struct io_uring_params prm = {
		/* completions run when we wait, not as interrupts */
		.flags =
			IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	};
	int ret;

	ret = io_uring_queue_init_params(entries, ring, &prm);
	if (ret == -EINVAL) { /* a kernel before 6.1 */
		memset(&prm, 0, sizeof(prm));
		ret = io_uring_queue_init_params(entries, ring, &prm);
	}
	return ret;
}

static unsigned int ring_entries(int conns)
{
	unsigned int n = 16;

	while (n < 4U * (unsigned int)conns + 8 && n < 4096)
		n <<= 1;
	return n;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe && io_uring_submit(ring) >= 0)
		sqe = io_uring_get_sqe(ring);
	return sqe;
}

/* @poll_first: the last try found the socket's send buffer full. */
static int queue_send(struct io_uring *ring, int fd, const void *buf,
		      size_t len, int idx, bool poll_first)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	if (poll_first)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, UD(idx, OP_SEND));
	return 0;
}

/* @poll_first: nothing can be there yet (the peer has not answered), so
 * wait for readability instead of trying the receive first. */
static int queue_recv(struct io_uring *ring, int fd, void *buf, size_t len,
		      int idx, bool poll_first)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	if (poll_first)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, UD(idx, OP_RECV));
	return 0;
}

int bench_listen(const struct bench_params *p, struct bench_shared *sh)
{
	struct bench_side *side = &sh->server;
	int fd, one = 1, ret;

	fd = socket(sh->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return side_fail(side, -errno, "socket: %s", strerror(errno));
	if (is_tcp(p) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) {
		ret = side_fail(side, -errno, "SO_REUSEADDR: %s",
				strerror(errno));
		goto err_close;
	}
	if (bind(fd, (struct sockaddr *)&sh->addr, sh->addrlen)) {
		ret = side_fail(side, -errno, "bind: %s", strerror(errno));
		goto err_close;
	}
	if (listen(fd, LISTEN_BACKLOG)) {
		ret = side_fail(side, -errno, "listen: %s", strerror(errno));
		goto err_close;
	}
	if (is_tcp(p)) { /* the port the kernel chose */
		socklen_t len = sizeof(sh->addr);

		if (getsockname(fd, (struct sockaddr *)&sh->addr, &len)) {
			ret = side_fail(side, -errno, "getsockname: %s",
					strerror(errno));
			goto err_close;
		}
		sh->addrlen = len;
	}
	return fd;
err_close:
	close(fd);
	return ret;
}

/* ---- client ---------------------------------------------------------- */

struct cconn {
	int fd;
	size_t sent, got; /* of the current operation */
	uint64_t t0;	  /* its start */
	uint64_t seq;	  /* rr, crr: operations on this slot */
	uint64_t off;	  /* stream: bytes written before this write */
	unsigned char *sbuf, *rbuf;
	size_t rcap;   /* rbuf's size */
	long need;     /* --proto: the response's length once known, or 0 */
	bool rdone;    /* the response (or echo) is complete */
	uint64_t next; /* open loop: intended send time of the next request */
	uint64_t rng;  /* open loop, exp: xorshift64* state */
	bool busy;     /* open loop: a request is in flight */
};

struct client {
	const struct bench_params *p;
	struct bench_shared *sh;
	struct bench_side *side;
	struct io_uring ring;
	struct cconn *c;
	size_t slen;	    /* bytes of a request */
	bool framed;	    /* --proto redis or http */
	unsigned char *pat; /* stream */
	bool measuring, stopping;
	int active; /* slots with an operation in progress */
	/* open loop */
	double gap_ns; /* mean time between one connection's requests */
	uint64_t warm_end, end;
	bool abandon; /* drain deadline: start nothing more */
};

static void stamp(unsigned char *buf, size_t size, uint64_t seq)
{
	memcpy(buf, &seq, size < sizeof(seq) ? size : sizeof(seq));
	if (size >= 2 * sizeof(seq))
		memcpy(buf + size - sizeof(seq), &seq, sizeof(seq));
}

static int client_socket(struct client *cl, int *out)
{
	int fd, ret;

	fd = socket(cl->sh->addr.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC |
			    (cl->p->target ? SOCK_NONBLOCK : 0),
		    0);
	if (fd < 0)
		return side_fail(cl->side, -errno, "socket: %s",
				 strerror(errno));
	ret = set_nodelay(cl->p, fd);
	if (ret) {
		close(fd);
		return side_fail(cl->side, ret, "TCP_NODELAY: %s",
				 strerror(-ret));
	}
	*out = fd;
	return 0;
}

static int client_send(struct client *cl, int i, bool poll_first)
{
	struct cconn *c = &cl->c[i];
	const unsigned char *buf;

	if (cl->p->mode == BENCH_STREAM)
		buf = cl->pat + (c->off + c->sent) % PAT_PERIOD;
	else
		buf = c->sbuf + c->sent;
	return queue_send(&cl->ring, c->fd, buf, cl->slen - c->sent, i,
			  poll_first);
}

static int client_recv(struct client *cl, int i, bool first)
{
	struct cconn *c = &cl->c[i];

	return queue_recv(&cl->ring, c->fd, c->rbuf + c->got, c->rcap - c->got,
			  i, first);
}

/* --proto: @res more bytes of a response are in; receive the rest, or
 * mark it complete. */
static int client_framed(struct client *cl, int i)
{
	struct cconn *c = &cl->c[i];
	char err[160] = "";
	size_t cap;
	void *buf;

	if (!c->need) {
		c->need = bench_proto_need(cl->p->proto, c->rbuf, c->got, err,
					   sizeof(err));
		if (c->need < 0)
			return side_fail(cl->side, (int)c->need,
					 "connection %d, response %llu: %s", i,
					 (unsigned long long)c->seq, err);
	}
	if (c->need && c->got > (size_t)c->need)
		return side_fail(
			cl->side, -EPROTO,
			"connection %d: %zu bytes beyond a %ld-byte response (one request was in flight)",
			i, c->got - (size_t)c->need, c->need);
	if (c->need && c->got == (size_t)c->need) {
		c->rdone = true;
		return 0;
	}
	cap = c->need ? (size_t)c->need : 2 * c->rcap;
	if (c->got == c->rcap || cap > c->rcap) {
		buf = realloc(c->rbuf, cap);
		if (!buf)
			return side_fail(cl->side, -ENOMEM, "out of memory");
		c->rbuf = buf;
		c->rcap = cap;
	}
	return client_recv(cl, i, false);
}

/* The request and the receive of its echo, in one submission. */
static int client_exchange(struct client *cl, int i)
{
	int ret = client_send(cl, i, false);

	return ret ? ret : client_recv(cl, i, true);
}

static int client_start(struct client *cl, int i)
{
	struct cconn *c = &cl->c[i];
	struct io_uring_sqe *sqe;
	int ret;

	c->sent = 0;
	c->got = 0;
	c->need = 0;
	c->rdone = false;
	c->t0 = bench_now_ns();
	if (cl->p->mode == BENCH_STREAM)
		return client_send(cl, i, false);
	++c->seq;
	if (!cl->framed)
		stamp(c->sbuf, cl->p->size, c->seq);
	if (cl->p->mode == BENCH_RR)
		return client_exchange(cl, i);
	ret = client_socket(cl, &c->fd);
	if (ret)
		return ret;
	sqe = get_sqe(&cl->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&cl->sh->addr,
			      cl->sh->addrlen);
	io_uring_sqe_set_data64(sqe, UD(i, OP_CONNECT));
	return 0;
}

static int client_done(struct client *cl, int i)
{
	struct cconn *c = &cl->c[i];
	size_t size = cl->p->size;
	uint64_t t1;

	if (cl->p->mode == BENCH_CRR) {
		close(c->fd);
		c->fd = -1;
	}
	t1 = bench_now_ns();
	if (cl->framed) {
		cl->side->resp_bytes += c->got;
		cl->side->bytes_total += c->got;
		size = cl->slen;
	} else if (cl->p->mode != BENCH_STREAM &&
		   memcmp(c->sbuf, c->rbuf, size))
		return side_fail(
			cl->side, -EBADMSG,
			"the echo of request %llu on connection %d differs from the request",
			(unsigned long long)c->seq, i);
	if (cl->p->rate > 0) {
		/* measured: the requests scheduled in the window; achieved:
		 * the completions in it */
		if (c->t0 >= cl->warm_end && c->t0 < cl->end)
			bench_hist_add(&cl->sh->hist, t1 - c->t0);
		if (cl->measuring && !cl->stopping)
			cl->side->ops++;
		cl->side->ops_total++;
		cl->side->bytes_total += size;
		c->busy = false;
		cl->active--;
		return 0;
	}
	if (cl->measuring && !cl->stopping) {
		bench_hist_add(&cl->sh->hist, t1 - c->t0);
		cl->side->ops++;
	}
	cl->side->ops_total++;
	cl->side->bytes_total += size;
	c->off += size;
	if (!cl->stopping)
		return client_start(cl, i);
	cl->active--;
	return 0;
}

static int client_cqe(struct client *cl, const struct io_uring_cqe *cqe)
{
	int i = UD_IDX(cqe->user_data), res = cqe->res;
	struct cconn *c = &cl->c[i];
	size_t size = cl->slen;

	if (res == -EAGAIN && UD_OP(cqe->user_data) == OP_SEND)
		return client_send(cl, i, true); /* --target: non-blocking */
	if (res == -EAGAIN && UD_OP(cqe->user_data) == OP_RECV)
		return client_recv(cl, i, true);
	switch (UD_OP(cqe->user_data)) {
	case OP_CONNECT:
		if (res < 0)
			return side_fail(cl->side, res, "connect: %s%s",
					 strerror(-res),
					 res == -EADDRNOTAVAIL
						 ? " (out of ephemeral ports)"
						 : "");
		return client_exchange(cl, i);
	case OP_SEND:
		if (res < 0)
			return side_fail(cl->side, res, "send: %s",
					 strerror(-res));
		c->sent += (size_t)res;
		if (c->sent < size)
			return client_send(cl, i, false);
		if (cl->p->mode == BENCH_STREAM)
			return client_done(cl, i);
		break;
	case OP_RECV:
		if (res < 0)
			return side_fail(cl->side, res, "recv: %s",
					 strerror(-res));
		if (!res && cl->framed)
			return side_fail(
				cl->side, -EPIPE,
				"the server closed connection %d after %zu bytes of response %llu",
				i, c->got, (unsigned long long)c->seq);
		if (!res)
			return side_fail(
				cl->side, -EPIPE,
				"the server closed connection %d after %zu of %zu bytes of an echo",
				i, c->got, size);
		c->got += (size_t)res;
		if (cl->framed) {
			int ret = client_framed(cl, i);

			if (ret || !c->rdone)
				return ret;
			break;
		}
		if (c->got < size)
			return client_recv(cl, i, false);
		c->rdone = true;
		break;
	default:
		return side_fail(cl->side, -EPROTO,
				 "unexpected completion %llu",
				 (unsigned long long)cqe->user_data);
	}
	if (c->sent == size && c->rdone)
		return client_done(cl, i);
	return 0;
}

/* --target: the non-blocking connects of every connection complete. */
static int client_connect_wait(struct client *cl)
{
	uint64_t deadline = bench_now_ns() + ACCEPT_WAIT_NS, now;
	struct pollfd *pfd;
	int left = cl->p->conns, err, ret = 0;
	socklen_t len = sizeof(err);

	pfd = calloc((size_t)cl->p->conns, sizeof(*pfd));
	if (!pfd)
		return side_fail(cl->side, -ENOMEM, "out of memory");
	for (int i = 0; i < cl->p->conns; i++)
		pfd[i] = (struct pollfd){.fd = cl->c[i].fd, .events = POLLOUT};
	while (left > 0) {
		now = bench_now_ns();
		if (now >= deadline) {
			ret = side_fail(
				cl->side, -ETIMEDOUT,
				"connect: %d of %d connections not established after %llu s",
				left, cl->p->conns,
				ACCEPT_WAIT_NS / 1000000000ULL);
			break;
		}
		if (poll(pfd, (nfds_t)cl->p->conns,
			 (int)((deadline - now) / 1000000 + 1)) < 0 &&
		    errno != EINTR) {
			ret = side_fail(cl->side, -errno, "poll: %s",
					strerror(errno));
			break;
		}
		for (int i = 0; i < cl->p->conns; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err,
				       &len))
				err = errno;
			if (err) {
				ret = side_fail(cl->side, -err, "connect: %s",
						strerror(err));
				goto out;
			}
			pfd[i].fd = -1;
			left--;
		}
	}
out:
	free(pfd);
	return ret;
}

/* rr and stream: every connection established, and accepted (so in the
 * socket map, for accel) before the first byte. */
static int client_connect_all(struct client *cl)
{
	uint64_t deadline;
	int ret;

	for (int i = 0; i < cl->p->conns; i++) {
		ret = client_socket(cl, &cl->c[i].fd);
		if (ret)
			return ret;
		if (connect(cl->c[i].fd, (struct sockaddr *)&cl->sh->addr,
			    cl->sh->addrlen) &&
		    !(cl->p->target && errno == EINPROGRESS))
			return side_fail(cl->side, -errno, "connect: %s",
					 strerror(errno));
	}
	if (cl->p->target) /* not our server: nothing counts its accepts */
		return client_connect_wait(cl);
	deadline = bench_now_ns() + ACCEPT_WAIT_NS;
	while (__atomic_load_n(&cl->sh->server.conns, __ATOMIC_ACQUIRE) <
	       (uint64_t)cl->p->conns) {
		if (bench_now_ns() > deadline)
			return side_fail(
				cl->side, -ETIMEDOUT,
				"the server did not accept the connections");
		usleep(200);
	}
	return 0;
}

static int client_alloc(struct client *cl)
{
	const struct bench_params *p = cl->p;

	cl->c = calloc((size_t)p->conns, sizeof(*cl->c));
	if (!cl->c)
		return side_fail(cl->side, -ENOMEM, "out of memory");
	for (int i = 0; i < p->conns; i++)
		cl->c[i].fd = -1;
	cl->framed = p->proto != BENCH_PROTO_ECHO;
	cl->slen = cl->framed ? p->req_len : p->size;
	if (bench_is_stream(p->mode)) {
		cl->pat = pattern_new(PAT_PERIOD + p->size);
		if (!cl->pat)
			return side_fail(cl->side, -ENOMEM, "out of memory");
		return 0;
	}
	for (int i = 0; i < p->conns; i++) {
		struct cconn *c = &cl->c[i];

		c->rcap = cl->framed ? RBUF_INIT : p->size;
		c->sbuf = buf_new(cl->slen);
		c->rbuf = buf_new(c->rcap);
		if (!c->sbuf || !c->rbuf)
			return side_fail(cl->side, -ENOMEM, "out of memory");
		if (cl->framed)
			memcpy(c->sbuf, p->req, cl->slen);
	}
	return 0;
}

static void client_free(struct client *cl)
{
	if (cl->c) {
		for (int i = 0; i < cl->p->conns; i++) {
			if (cl->c[i].fd >= 0)
				close(cl->c[i].fd);
			free(cl->c[i].sbuf);
			free(cl->c[i].rbuf);
		}
	}
	free(cl->c);
	free(cl->pat);
}

/* Phase changes, at the boundaries of completion batches. */
static void client_clock(struct client *cl, uint64_t t, uint64_t warm_end,
			 uint64_t end, uint64_t *win0, uint64_t *cpu0)
{

	if (!cl->measuring && t >= warm_end) {
		cl->measuring = true;
		bench_hist_reset(&cl->sh->hist);
		cl->side->ops = 0;
		*win0 = t;
		*cpu0 = cpu_now_ns();
		__atomic_store_n(&cl->sh->phase, BENCH_PH_MEASURE,
				 __ATOMIC_RELEASE);
	}
	if (cl->measuring && !cl->stopping && t >= end) {
		cl->stopping = true;
		cl->side->window_ns = t - *win0;
		cl->side->cpu_ns = cpu_now_ns() - *cpu0;
		__atomic_store_n(&cl->sh->phase, BENCH_PH_DRAIN,
				 __ATOMIC_RELEASE);
	}
}

/*
 * stream-rw: blocking write() of size bytes of the pattern, one connection,
 * no io_uring; one clock read per write (its end is the next one's start).
 */
static int client_rw(struct client *cl)
{
	const struct bench_params *p = cl->p;
	uint64_t warm_end, end, win0 = 0, cpu0 = 0, t0, t1;
	struct cconn *c = &cl->c[0];
	ssize_t n;
	int ret;

	ret = client_connect_all(cl);
	if (ret)
		return ret;
	t0 = bench_now_ns();
	warm_end = t0 + p->warmup_ns;
	end = warm_end + p->duration_ns;
	for (;;) {
		client_clock(cl, t0, warm_end, end, &win0, &cpu0);
		if (cl->stopping)
			break;
		for (c->sent = 0; c->sent < p->size; c->sent += (size_t)n) {
			n = write(c->fd,
				  cl->pat + (c->off + c->sent) % PAT_PERIOD,
				  p->size - c->sent);
			if (n < 0 && errno == EINTR) {
				n = 0;
				continue;
			}
			if (n < 0)
				return side_fail(cl->side, -errno, "write: %s",
						 strerror(errno));
		}
		t1 = bench_now_ns();
		if (cl->measuring) {
			bench_hist_add(&cl->sh->hist, t1 - t0);
			cl->side->ops++;
		}
		cl->side->ops_total++;
		cl->side->bytes_total += p->size;
		c->off += p->size;
		t0 = t1;
	}
	return 0;
}

/* ---- open loop ------------------------------------------------------- */

/* The time from one of a connection's requests to its next one. */
static uint64_t ol_gap(struct client *cl, struct cconn *c)
{
	double u;

	if (!cl->p->exp_arrivals)
		return (uint64_t)cl->gap_ns;
	c->rng ^= c->rng >> 12; /* xorshift64* */
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	/* (0, 1]: 53 random bits */
	u = (double)((c->rng * 0x2545F4914F6CDD1DULL) >> 11) + 1.0;
	u /= 9007199254740992.0;
	return (uint64_t)(-log(u) * cl->gap_ns);
}

static void ol_init(struct client *cl, uint64_t base)
{
	const struct bench_params *p = cl->p;

	cl->gap_ns = 1e9 * p->conns / p->rate;
	for (int i = 0; i < p->conns; i++) {
		struct cconn *c = &cl->c[i];

		c->rng = (p->seed ? p->seed : 0x9E3779B97F4A7C15ULL) +
			 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
		/* constant: the connections' requests interleave evenly */
		if (p->exp_arrivals)
			c->next = base + ol_gap(cl, c);
		else
			c->next = base + (uint64_t)(cl->gap_ns * i / p->conns);
	}
	/* timer wake-ups as sharp as the kernel gives them */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

/* Start every request whose time has come on an idle connection; the
 * earliest intended time still to come, or UINT64_MAX. */
static int ol_start_due(struct client *cl, uint64_t now, uint64_t *wake)
{
	int ret;

	*wake = UINT64_MAX;
	for (int i = 0; i < cl->p->conns; i++) {
		struct cconn *c = &cl->c[i];

		if (c->busy || cl->abandon || c->next >= cl->end)
			continue;
		if (c->next > now) {
			if (c->next < *wake)
				*wake = c->next;
			continue;
		}
		ret = client_start(cl, i);
		if (ret)
			return ret;
		c->t0 = c->next; /* latency from the intended time */
		if (c->t0 >= cl->warm_end)
			cl->side->sched++;
		c->next += ol_gap(cl, c);
		c->busy = true;
		cl->active++;
	}
	return 0;
}

/* The drain deadline: count what was scheduled in the window and not sent. */
static void ol_abandon(struct client *cl)
{
	cl->abandon = true;
	for (int i = 0; i < cl->p->conns; i++) {
		struct cconn *c = &cl->c[i];

		for (; c->next < cl->end; c->next += ol_gap(cl, c))
			if (c->next >= cl->warm_end) {
				cl->side->sched++;
				cl->side->unfinished++;
			}
	}
}

static bool ol_done(const struct client *cl)
{
	if (!cl->stopping || cl->active)
		return false;
	if (cl->abandon)
		return true;
	for (int i = 0; i < cl->p->conns; i++)
		if (cl->c[i].next < cl->end)
			return false;
	return true;
}

static int client_open_loop(struct client *cl)
{
	const struct bench_params *p = cl->p;
	uint64_t win0 = 0, cpu0 = 0, now, wake, deadline;
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	unsigned int head, n;
	int ret;

	now = bench_now_ns();
	cl->warm_end = now + p->warmup_ns;
	cl->end = cl->warm_end + p->duration_ns;
	deadline = cl->end + BENCH_DRAIN_MAX_NS;
	ol_init(cl, now);
	for (;;) {
		now = bench_now_ns();
		client_clock(cl, now, cl->warm_end, cl->end, &win0, &cpu0);
		if (cl->stopping && !cl->abandon && now >= deadline)
			ol_abandon(cl);
		ret = ol_start_due(cl, now, &wake);
		if (ret)
			return ret;
		if (ol_done(cl))
			return 0;
		if (!cl->stopping && cl->end < wake)
			wake = cl->end;
		if (cl->stopping && !cl->abandon && deadline < wake)
			wake = deadline;
		if (wake != UINT64_MAX && wake > now) {
			ts.tv_sec = (long long)((wake - now) / 1000000000ULL);
			ts.tv_nsec = (long long)((wake - now) % 1000000000ULL);
			ret = io_uring_submit_and_wait_timeout(&cl->ring, &cqe,
							       1, &ts, NULL);
		} else if (wake == UINT64_MAX) {
			ret = io_uring_submit_and_wait(&cl->ring, 1);
		} else {
			ret = io_uring_submit(&cl->ring);
		}
		if (ret < 0 && ret != -EINTR && ret != -ETIME)
			return side_fail(cl->side, ret,
					 "io_uring_submit_and_wait: %s",
					 strerror(-ret));
		n = 0;
		ret = 0;
		io_uring_for_each_cqe(&cl->ring, head, cqe)
		{
			n++;
			ret = client_cqe(cl, cqe);
			if (ret)
				break;
		}
		io_uring_cq_advance(&cl->ring, n);
		if (ret)
			return ret;
	}
}

int bench_client(const struct bench_params *p, struct bench_shared *sh)
{
	struct client cl = {.p = p, .sh = sh, .side = &sh->client};
	uint64_t warm_end, end, win0 = 0, cpu0 = 0;
	struct io_uring_cqe *cqe;
	unsigned int head, n;
	int ret;

	ret = client_alloc(&cl);
	if (ret)
		goto out_free;
	if (p->mode == BENCH_STREAM_RW) {
		ret = client_rw(&cl);
		goto out_free;
	}
	ret = ring_init(&cl.ring, ring_entries(p->conns));
	if (ret) {
		side_fail(cl.side, ret, "io_uring_queue_init: %s",
			  strerror(-ret));
		goto out_free;
	}
	if (p->mode != BENCH_CRR) {
		ret = client_connect_all(&cl);
		if (ret)
			goto out_ring;
	}
	if (p->rate > 0) {
		ret = client_open_loop(&cl);
		goto out_ring;
	}
	warm_end = bench_now_ns() + p->warmup_ns;
	end = warm_end + p->duration_ns;
	for (int i = 0; i < p->conns; i++) {
		ret = client_start(&cl, i);
		if (ret)
			goto out_ring;
		cl.active++;
	}
	for (;;) {
		client_clock(&cl, bench_now_ns(), warm_end, end, &win0, &cpu0);
		if (cl.stopping && !cl.active)
			break;
		ret = io_uring_submit_and_wait(&cl.ring, 1);
		if (ret < 0 && ret != -EINTR) {
			side_fail(cl.side, ret, "io_uring_submit_and_wait: %s",
				  strerror(-ret));
			goto out_ring;
		}
		n = 0;
		ret = 0;
		io_uring_for_each_cqe(&cl.ring, head, cqe)
		{
			n++;
			ret = client_cqe(&cl, cqe);
			if (ret)
				break;
		}
		io_uring_cq_advance(&cl.ring, n);
		if (ret)
			goto out_ring;
	}
	ret = 0;
out_ring:
	io_uring_queue_exit(&cl.ring);
out_free:
	client_free(&cl);
	if (ret && !cl.side->ret)
		side_fail(cl.side, ret, "%s", strerror(-ret));
	return ret;
}

/* ---- server ---------------------------------------------------------- */

struct sconn {
	int fd;	      /* -1: free slot */
	size_t got;   /* rr, crr: bytes of the request read */
	size_t sent;  /* rr, crr: bytes of the echo sent */
	uint64_t off; /* stream: bytes read and verified */
	unsigned char *buf;
};

struct server {
	const struct bench_params *p;
	struct bench_shared *sh;
	struct bench_side *side;
	struct io_uring ring;
	int lfd, ctl_fd;
	struct sconn *c; /* slots; their buffers are kept for reuse */
	int n_slots;
	int open; /* connections not yet closed by the client */
	size_t bufsize;
	unsigned char *pat; /* stream */
	struct __kernel_timespec linger;
	char ctl_byte;
	bool stopping;
	bool cpu0_set, cpu1_set;
	uint64_t cpu0;
	bool stalled; /* test: the one stall of stall_ns is done */
};

static int server_accept(struct server *sv)
{
	struct io_uring_sqe *sqe = get_sqe(&sv->ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_multishot_accept(sqe, sv->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(0, OP_ACCEPT));
	return 0;
}

static int server_recv(struct server *sv, int i, bool first)
{
	struct sconn *c = &sv->c[i];

	if (sv->p->mode == BENCH_STREAM)
		return queue_recv(&sv->ring, c->fd, c->buf, sv->bufsize, i,
				  false);
	return queue_recv(&sv->ring, c->fd, c->buf + c->got,
			  sv->p->size - c->got, i, first);
}

static int server_slot(struct server *sv, int *out)
{
	struct sconn *more;
	int i;

	for (i = 0; i < sv->n_slots; i++)
		if (sv->c[i].fd < 0)
			break;
	if (i == sv->n_slots) {
		more = realloc(sv->c,
			       (size_t)(sv->n_slots + 1) * sizeof(*more));
		if (!more)
			return -ENOMEM;
		sv->c = more;
		memset(&sv->c[i], 0, sizeof(sv->c[i]));
		sv->c[i].fd = -1;
		sv->n_slots++;
	}
	if (!sv->c[i].buf) {
		sv->c[i].buf = buf_new(sv->bufsize);
		if (!sv->c[i].buf)
			return -ENOMEM;
	}
	*out = i;
	return 0;
}

static int server_new_conn(struct server *sv, int fd)
{
	struct sconn *c;
	int i, ret;

	ret = server_slot(sv, &i);
	if (ret) {
		close(fd);
		return side_fail(sv->side, ret, "out of memory");
	}
	c = &sv->c[i];
	c->fd = fd;
	c->got = 0;
	c->sent = 0;
	c->off = 0;
	sv->open++;
	__atomic_store_n(&sv->side->conns, sv->side->conns + 1,
			 __ATOMIC_RELEASE);
	ret = set_nodelay(sv->p, fd);
	if (ret)
		return side_fail(sv->side, ret, "TCP_NODELAY: %s",
				 strerror(-ret));
	return server_recv(sv, i, true);
}

static void server_close(struct server *sv, int i)
{
	close(sv->c[i].fd);
	sv->c[i].fd = -1;
	sv->open--;
}

static int server_verify(struct server *sv, int i, size_t len)
{
	struct sconn *c = &sv->c[i];
	const unsigned char *want = sv->pat + c->off % PAT_PERIOD;

	if (memcmp(c->buf, want, len)) {
		size_t k = 0;

		while (c->buf[k] == want[k])
			k++;
		return side_fail(
			sv->side, -EBADMSG,
			"stream data differs from what was written at byte %llu of connection %d",
			(unsigned long long)(c->off + k), i);
	}
	c->off += len;
	sv->side->bytes_total += len;
	return 0;
}

static int server_got(struct server *sv, int i, int res)
{
	struct sconn *c = &sv->c[i];
	size_t size = sv->p->size;
	int ret;

	if (res < 0)
		return side_fail(sv->side, res, "recv: %s", strerror(-res));
	if (!res) { /* the client closed */
		if (sv->p->mode != BENCH_STREAM && c->got)
			return side_fail(
				sv->side, -EPIPE,
				"connection %d closed after %zu of %zu bytes of a request",
				i, c->got, size);
		server_close(sv, i);
		return 0;
	}
	if (sv->p->mode == BENCH_STREAM) {
		ret = server_verify(sv, i, (size_t)res);
		return ret ? ret : server_recv(sv, i, false);
	}
	c->got += (size_t)res;
	sv->side->bytes_total += (size_t)res;
	if (c->got < size)
		return server_recv(sv, i, false);
	c->sent = 0;
	if (sv->p->stall_ns && !sv->stalled &&
	    __atomic_load_n(&sv->sh->phase, __ATOMIC_ACQUIRE) ==
		    BENCH_PH_MEASURE) {
		/* test: one stall in the window, as a page fault storm or a
		 * preempted server would do */
		struct timespec st = {
			.tv_sec = (time_t)(sv->p->stall_ns / 1000000000ULL),
			.tv_nsec = (long)(sv->p->stall_ns % 1000000000ULL),
		};

		sv->stalled = true;
		while (nanosleep(&st, &st) && errno == EINTR)
			;
	}
	return queue_send(&sv->ring, c->fd, c->buf, size, i, false);
}

static int server_sent(struct server *sv, int i, int res)
{
	struct sconn *c = &sv->c[i];
	size_t size = sv->p->size;

	if (res < 0)
		return side_fail(sv->side, res, "send: %s", strerror(-res));
	c->sent += (size_t)res;
	if (c->sent < size)
		return queue_send(&sv->ring, c->fd, c->buf + c->sent,
				  size - c->sent, i, false);
	sv->side->ops_total++;
	c->got = 0;
	return server_recv(sv, i, true);
}

static int server_ctl(struct server *sv)
{
	struct io_uring_sqe *sqe;

	/* the client is done: wait for the last EOFs, not for ever */
	sv->stopping = true;
	sqe = get_sqe(&sv->ring);
	if (!sqe)
		return -EBUSY;
	sv->linger.tv_sec = SERVER_LINGER_S;
	io_uring_prep_timeout(sqe, &sv->linger, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(0, OP_TIMEOUT));
	return 0;
}

static int server_cqe(struct server *sv, const struct io_uring_cqe *cqe)
{
	int i = UD_IDX(cqe->user_data), res = cqe->res, ret;

	switch (UD_OP(cqe->user_data)) {
	case OP_ACCEPT:
		if (res < 0)
			return side_fail(sv->side, res, "accept: %s",
					 strerror(-res));
		ret = server_new_conn(sv, res);
		if (!ret && !(cqe->flags & IORING_CQE_F_MORE))
			ret = server_accept(sv);
		return ret;
	case OP_RECV:
		return server_got(sv, i, res);
	case OP_SEND:
		return server_sent(sv, i, res);
	case OP_CTL:
		return server_ctl(sv);
	case OP_TIMEOUT:
		return side_fail(
			sv->side, -ETIMEDOUT,
			"%d connections still open %d s after the client finished",
			sv->open, SERVER_LINGER_S);
	}
	return side_fail(sv->side, -EPROTO, "unexpected completion %llu",
			 (unsigned long long)cqe->user_data);
}

/* CPU time over the window, from the phases the client sets. */
static void server_clock(struct server *sv)
{
	int ph = __atomic_load_n(&sv->sh->phase, __ATOMIC_ACQUIRE);

	if (ph >= BENCH_PH_MEASURE && !sv->cpu0_set) {
		sv->cpu0 = cpu_now_ns();
		sv->cpu0_set = true;
	}
	if (ph >= BENCH_PH_DRAIN && !sv->cpu1_set) {
		sv->side->cpu_ns = cpu_now_ns() - sv->cpu0;
		sv->cpu1_set = true;
	}
}

static int server_alloc(struct server *sv)
{
	sv->bufsize = sv->p->size;
	if (sv->p->mode != BENCH_STREAM)
		return 0;
	if (sv->bufsize < STREAM_RBUF)
		sv->bufsize = STREAM_RBUF;
	sv->pat = pattern_new(PAT_PERIOD + sv->bufsize);
	if (!sv->pat)
		return side_fail(sv->side, -ENOMEM, "out of memory");
	return 0;
}

/* Accept connections; the parent's EOF on @ctl_fd says the client is done. */
static int server_arm(struct server *sv)
{
	struct io_uring_sqe *sqe;
	int ret;

	ret = server_accept(sv);
	if (ret)
		return ret;
	sqe = get_sqe(&sv->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, sv->ctl_fd, &sv->ctl_byte, 1, 0);
	io_uring_sqe_set_data64(sqe, UD(0, OP_CTL));
	return 0;
}

static void server_free(struct server *sv)
{
	for (int i = 0; i < sv->n_slots; i++) {
		if (sv->c[i].fd >= 0)
			close(sv->c[i].fd);
		free(sv->c[i].buf);
	}
	free(sv->c);
	free(sv->pat);
}

/*
 * stream-rw: one connection, blocking read() of up to size bytes at a time
 * (as iperf3 reads -l bytes) into a ring of 4 x size bytes, so that the last
 * size bytes of the stream are still there at EOF: those are compared with
 * the pattern, and the parent compares the byte counts. No check per read.
 * --rw-poll: poll() before every read(), as iperf3's select() loop does.
 */
static int server_rw(struct server *sv)
{
	size_t size = sv->p->size, ring_len = 4 * size, pos = 0, len, k;
	struct pollfd pfd[2] = {
		{.fd = sv->lfd, .events = POLLIN},
		{.fd = sv->ctl_fd, .events = POLLIN},
	};
	struct pollfd rfd = {.fd = -1, .events = POLLIN};
	unsigned char *ring = NULL, *pat = NULL;
	uint64_t total = 0, o;
	int fd = -1, ret = 0;
	ssize_t n;

	ring = buf_new(ring_len);
	pat = pattern_new(PAT_PERIOD);
	if (!ring || !pat) {
		ret = side_fail(sv->side, -ENOMEM, "out of memory");
		goto out_free;
	}
	/* the connection, or the parent's EOF: the client gave up */
	while (poll(pfd, 2, -1) < 0)
		if (errno != EINTR) {
			ret = side_fail(sv->side, -errno, "poll: %s",
					strerror(errno));
			goto out_free;
		}
	if (!(pfd[0].revents & POLLIN)) {
		ret = side_fail(sv->side, -ENOTCONN,
				"the client finished without connecting");
		goto out_free;
	}
	fd = accept4(sv->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		ret = side_fail(sv->side, -errno, "accept: %s",
				strerror(errno));
		goto out_free;
	}
	__atomic_store_n(&sv->side->conns, 1, __ATOMIC_RELEASE);
	rfd.fd = fd;
	for (;;) {
		if (sv->p->rw_poll && poll(&rfd, 1, -1) < 0 && errno != EINTR) {
			ret = side_fail(sv->side, -errno, "poll: %s",
					strerror(errno));
			goto out_close;
		}
		len = ring_len - pos < size ? ring_len - pos : size;
		n = read(fd, ring + pos, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = side_fail(sv->side, -errno, "read: %s",
					strerror(errno));
			goto out_close;
		}
		if (!n)
			break;
		total += (uint64_t)n;
		pos = (pos + (size_t)n) % ring_len;
		server_clock(sv);
	}
	sv->side->bytes_total = total;
	k = total < size ? (size_t)total : size;
	for (o = total - k; o < total; o++) {
		if (ring[o % ring_len] != pat[o % PAT_PERIOD]) {
			ret = side_fail(
				sv->side, -EBADMSG,
				"stream data differs from what was written at byte %llu (of the last block)",
				(unsigned long long)o);
			goto out_close;
		}
	}
out_close:
	close(fd);
out_free:
	free(ring);
	free(pat);
	return ret;
}

int bench_server(const struct bench_params *p, struct bench_shared *sh, int lfd,
		 int ctl_fd)
{
	struct server sv = {
		.p = p,
		.sh = sh,
		.side = &sh->server,
		.lfd = lfd,
		.ctl_fd = ctl_fd,
	};
	struct io_uring_cqe *cqe;
	unsigned int head, n;
	int ret;

	if (p->mode == BENCH_STREAM_RW) {
		ret = server_rw(&sv);
		server_clock(&sv);
		return ret;
	}
	ret = server_alloc(&sv);
	if (ret)
		goto out_free;
	ret = ring_init(&sv.ring, ring_entries(p->conns));
	if (ret) {
		side_fail(sv.side, ret, "io_uring_queue_init: %s",
			  strerror(-ret));
		goto out_free;
	}
	ret = server_arm(&sv);
	if (ret)
		goto out_ring;
	while (!sv.stopping || sv.open) {
		ret = io_uring_submit_and_wait(&sv.ring, 1);
		if (ret < 0 && ret != -EINTR) {
			side_fail(sv.side, ret, "io_uring_submit_and_wait: %s",
				  strerror(-ret));
			goto out_ring;
		}
		n = 0;
		ret = 0;
		io_uring_for_each_cqe(&sv.ring, head, cqe)
		{
			n++;
			ret = server_cqe(&sv, cqe);
			if (ret)
				break;
		}
		io_uring_cq_advance(&sv.ring, n);
		if (ret)
			goto out_ring;
		server_clock(&sv);
	}
	ret = 0;
out_ring:
	io_uring_queue_exit(&sv.ring);
out_free:
	server_free(&sv);
	if (ret && !sv.side->ret)
		side_fail(sv.side, ret, "%s", strerror(-ret));
	return ret;
}

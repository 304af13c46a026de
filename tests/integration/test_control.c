// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemon's own endpoints under attack (issue 15): the metrics port's
 * HTTP (GET, HEAD, errors, pipelining, HTTP/1.0 and 1.1), and the control
 * socket and the metrics port held by attackers (slow request lines, a
 * header that never ends, 200 kB headers, thousands of idle connections,
 * clients that never read, a flooded control socket) while `sockmesh
 * reload`, `status`, a scrape and at last `unload` must still answer, and
 * the daemon's file descriptors and memory stay bounded.
 *
 * The contract: separate client pools (control 16, metrics 64), the oldest
 * of a full pool dropped to admit a new one, one 5 s deadline per client,
 * replies that never block the loop, and
 * sockmesh_daemon_clients_dropped_total{endpoint,reason} counters.
 *
 * No verdict depends on the machine's speed: each request's latency is
 * printed, and only a generous hang guard (GUARD_S) fails one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define GUARD_S	      30 /* a request that takes longer has hung */
#define HOLD_S	      7	 /* an attack is measured this long (> 5 s deadline) */
#define CTL_POOL      16
#define METRICS_POOL  64
#define RSS_GROWTH_KB (32 * 1024)
#define REQ_MAX	      8192 /* the contract's request line and header limit */

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The test's config with the metrics endpoint on 127.0.0.1:@port. @n_sub:
 * 0 accelerates the test's cgroup; else that many sub-cgroups of it (the
 * daemon creates them), each with its per-cgroup series in /metrics: as
 * many as fit in a list value (1024 bytes, config.h) when @n_sub < 0.
 * Returns the number of cgroups listed, or -errno.
 */
static int ctl_config(struct env *e, int port, int n_sub)
{
	size_t item = strlen(e->cg_rel) + strlen("/00, ");
	FILE *f = fopen(e->conf, "w");
	int n = n_sub;

	if (!f)
		return -errno;
	if (n < 0)
		n = (int)((1024 - 16) / item);
	if (n > 50)
		n = 50;
	fprintf(f,
		"[daemon]\npin_dir = %s\nrun_dir = %s\n"
		"metrics = 127.0.0.1:%d\n\n[accelerate]\ncgroups = ",
		e->pin_dir, e->run_dir, port);
	if (!n)
		fprintf(f, "%s\n", e->cg_rel);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%s/%02d\n", i ? "    " : "", e->cg_rel, i);
	fprintf(f, "compat = fast\n");
	if (fclose(f))
		return -errno;
	return n ? n : 1;
}

/* --- HTTP as a client sees it ------------------------------------------ */

struct resp {
	char *buf; /* every byte received, NUL-terminated */
	size_t len;
	int status;  /* of the status line, 0 if none */
	long clen;   /* Content-Length, -1 if absent */
	long body;   /* bytes after the header block, -1 if it never ended */
	int ended;   /* 1: EOF, 2: reset after the reply, 0: guard expired */
	int replies; /* status lines ("HTTP/1.") at a line start */
	double ms;   /* from connect to the end */
};

static void resp_free(struct resp *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* A header's value in @r's header block ("Name: "), or NULL. */
static const char *resp_header(const struct resp *r, const char *name)
{
	size_t n = strlen(name);
	const char *end = r->buf ? strstr(r->buf, "\r\n\r\n") : NULL;

	for (const char *p = r->buf ? strstr(r->buf, "\r\n") : NULL;
	     p && end && p < end; p = strstr(p + 2, "\r\n"))
		if (!strncasecmp(p + 2, name, n) && p[2 + n] == ':')
			return p + 2 + n + 1 + strspn(p + 3 + n, " ");
	return NULL;
}

static void resp_parse(struct resp *r)
{
	const char *hend = strstr(r->buf, "\r\n\r\n"), *cl;

	r->status = 0;
	if (!strncmp(r->buf, "HTTP/1.", 7) && r->len >= 12)
		r->status = atoi(r->buf + 9);
	r->body = hend ? (long)(r->len - (hend + 4 - r->buf)) : -1;
	cl = resp_header(r, "Content-Length");
	r->clen = cl ? strtol(cl, NULL, 10) : -1;
	r->replies = !strncmp(r->buf, "HTTP/1.", 7);
	for (const char *p = r->buf; (p = strstr(p, "\nHTTP/1.")); p++)
		r->replies++;
}

/* A TCP connection to 127.0.0.1:@port within GUARD_S, or -1. */
static int tcp_connect(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = GUARD_S};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read @fd until EOF, a reset, or GUARD_S; into @r. */
static void read_reply(int fd, struct resp *r, double t0)
{
	size_t cap = 65536;

	r->buf = malloc(cap);
	r->len = 0;
	r->ended = 0;
	while (r->buf) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, GUARD_S * 1000) <= 0)
			break;
		if (r->len + 1 >= cap) {
			char *nb = realloc(r->buf, cap * 2);

			if (!nb)
				break;
			r->buf = nb;
			cap *= 2;
		}
		n = recv(fd, r->buf + r->len, cap - r->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r->ended = errno == ECONNRESET ? 2 : 0;
			break;
		}
		if (!n) {
			r->ended = 1;
			break;
		}
		r->len += n;
	}
	if (!r->buf) {
		r->buf = strdup("");
		r->len = 0;
	}
	r->buf[r->len] = '\0';
	r->ms = (mono() - t0) * 1000;
	resp_parse(r);
}

/* Send @len bytes of @req in one write, then read the reply. */
static int http_raw(int port, const char *req, size_t len, struct resp *r)
{
	double t0 = mono();
	int fd = tcp_connect(port);

	memset(r, 0, sizeof(*r));
	if (fd < 0) {
		r->buf = strdup("");
		return -1;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			break; /* a reply may already have come: read it */
		off += n;
	}
	read_reply(fd, r, t0);
	close(fd);
	return 0;
}

static int http_req(int port, const char *req, struct resp *r)
{
	return http_raw(port, req, strlen(req), r);
}

/*
 * The reply to @req is @status with Connection: close and a
 * Content-Length, a body of that length (none for HEAD), then EOF (or a
 * reset when @rst_ok: the daemon closed with the rest of an oversized
 * request unread).
 */
static void expect_reply(struct env *e, int port, const char *what,
			 const char *req, size_t len, int status, bool head,
			 bool rst_ok, struct resp *out)
{
	struct resp r = {0};
	const char *conn;
	char msg[256];

	http_raw(port, req, len, &r);
	snprintf(msg, sizeof(msg), "%s: status", what);
	if (!ASSERT_EQ(r.status, status, msg))
		fprintf(stderr, "    reply: %.*s\n",
			(int)strcspn(r.buf, "\r\n"), r.buf);
	conn = resp_header(&r, "Connection");
	snprintf(msg, sizeof(msg), "%s: Connection: close", what);
	ASSERT_TRUE(conn && !strncasecmp(conn, "close", 5), msg);
	snprintf(msg, sizeof(msg), "%s: a Content-Length", what);
	ASSERT_GE(r.clen, 0, msg);
	snprintf(msg, sizeof(msg), "%s: body bytes before EOF", what);
	ASSERT_EQ(r.body, head ? 0 : r.clen, msg);
	snprintf(msg, sizeof(msg), "%s: one reply", what);
	ASSERT_EQ(r.replies, 1, msg);
	snprintf(msg, sizeof(msg), "%s: the daemon then closes (EOF%s)", what,
		 rst_ok ? " or reset" : "");
	ASSERT_TRUE(r.ended == 1 || (rst_ok && r.ended == 2), msg);
	if (out)
		*out = r;
	else
		resp_free(&r);
}

#define EXPECT(what, req, status, head, out) \
	expect_reply(e, port, what, req, strlen(req), status, head, false, out)

/* The sample "\n@series VALUE" in @text; -1 if absent. */
static long long prom_value(const char *text, const char *series)
{
	char pat[512];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s ", series);
	p = strstr(text, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static long long dropped(const char *text, const char *endpoint,
			 const char *reason)
{
	char series[256];

	snprintf(
		series, sizeof(series),
		"sockmesh_daemon_clients_dropped_total{endpoint=\"%s\",reason=\"%s\"}",
		endpoint, reason);
	return prom_value(text, series);
}

static int start(struct env *e, int port, int n_sub)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[1024];

	/* under ASan freed memory sits in quarantine, never reused: RSS
	 * would grow with every allocation, leak or not */
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0",
		 asan ? asan : "", asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1); /* no effect without ASan */
	if (!ASSERT_GT(port, 0, "a free port") ||
	    !ASSERT_GT(ctl_config(e, port, n_sub), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return -1;
	return 0;
}

/* --- HTTP correctness --------------------------------------------------- */

#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

TEST(control_http_get_head)
{
	struct resp get, head, hz;
	int port = env_free_port();

	if (start(e, port, 0))
		return;
	EXPECT("GET /metrics", GET_METRICS, 200, false, &get);
	ASSERT_STR_HAS(get.buf, "Content-Type: text/plain; version=0.0.4",
		       "Prometheus text");
	ASSERT_STR_HAS(get.buf, "\nsockmesh_reloads_total 0\n",
		       "a counter in the body");
	EXPECT("HEAD /metrics",
	       "HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200, true,
	       &head);
	ASSERT_EQ(head.clen, get.clen,
		  "HEAD: the Content-Length of GET's body");
	ASSERT_TRUE(resp_header(&head, "Content-Type") &&
			    !strncmp(resp_header(&head, "Content-Type"),
				     "text/plain; version=0.0.4", 25),
		    "HEAD: GET's Content-Type");
	EXPECT("GET /healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200,
	       false, &hz);
	ASSERT_GT(hz.clen, 0, "healthz has a body");
	EXPECT("HEAD /healthz", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	       200, true, &head);
	ASSERT_EQ(head.clen, hz.clen, "HEAD /healthz: GET's Content-Length");
	resp_free(&head);
	resp_free(&hz);
	resp_free(&get);
	EXPECT("GET /metrics?x=1 (a query)",
	       "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, false,
	       NULL);
	EXPECT("HTTP/1.0 without Host", "GET /metrics HTTP/1.0\r\n\r\n", 200,
	       false, NULL);
	EXPECT("HTTP/1.0 HEAD", "HEAD /healthz HTTP/1.0\r\n\r\n", 200, true,
	       NULL);
	EXPECT("GET /nope", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, false,
	       NULL);
}

TEST(control_http_errors)
{
	char *big = malloc(3 * REQ_MAX);
	struct resp r = {0};
	int port = env_free_port(), n;

	if (!ASSERT_TRUE(big != NULL, "malloc") || start(e, port, 0))
		goto out;
	EXPECT("POST", "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, false,
	       &r);
	ASSERT_TRUE(
		resp_header(&r, "Allow") &&
			!strncmp(resp_header(&r, "Allow"), "GET, HEAD\r\n", 11),
		"405 has Allow: GET, HEAD");
	resp_free(&r);
	EXPECT("DELETE", "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405,
	       false, NULL);
	EXPECT("malformed request line", "GARBAGE\r\n\r\n", 400, false, NULL);
	EXPECT("no version", "GET /metrics\r\n\r\n", 400, false, NULL);
	EXPECT("a header without a colon",
	       "GET /metrics HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", 400, false,
	       NULL);
	EXPECT("HTTP/1.1 without Host", "GET /metrics HTTP/1.1\r\n\r\n", 400,
	       false, NULL);
	EXPECT("HTTP/2.0", "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505,
	       false, NULL);
	EXPECT("HTTP/0.9", "GET /metrics HTTP/0.9\r\nHost: x\r\n\r\n", 505,
	       false, NULL);

	/* a request line longer than 8192 bytes: 414 */
	n = snprintf(big, 3 * REQ_MAX, "GET /metrics?");
	memset(big + n, 'a', REQ_MAX + 100);
	n += REQ_MAX + 100;
	n += snprintf(big + n, 3 * REQ_MAX - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_reply(e, port, "request line > 8192", big, n, 414, false, true,
		     NULL);
	/* headers that do not end within 8192 bytes: 431, without waiting
	 * for the end that never comes (the connection stays open) */
	n = snprintf(big, 3 * REQ_MAX, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	while (n < REQ_MAX + 1000)
		n += snprintf(big + n, 3 * REQ_MAX - n, "X-Pad-%05d: y\r\n", n);
	expect_reply(e, port, "headers > 8192", big, n, 431, false, true, NULL);
	/* and the endpoint still serves */
	EXPECT("GET /metrics after the errors", GET_METRICS, 200, false, NULL);
out:
	free(big);
}

TEST(control_http_pipelined_and_aborted)
{
	struct resp r = {0};
	int port = env_free_port(), fd;

	if (start(e, port, 0))
		return;
	/* two requests in one write: one reply, then EOF */
	EXPECT("pipelined GET /healthz + GET /metrics",
	       "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" GET_METRICS, 200,
	       false, &r);
	ASSERT_TRUE(strstr(r.buf, "sockmesh_") == NULL,
		    "pipelined: the reply is the first request's");
	resp_free(&r);
	EXPECT("pipelined HEAD + GET",
	       "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n" GET_METRICS, 200,
	       true, NULL);
	EXPECT("pipelined HTTP/1.0 x3",
	       "GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n"
	       "GET /healthz HTTP/1.0\r\n\r\n",
	       200, false, NULL);

	/* clients that go away before finishing their request */
	for (int i = 0; i < 20; i++) {
		static const char *const parts[] = {
			"", "G", "GET /met", "GET /metrics HTTP/1.1\r\n",
			"GET /metrics HTTP/1.1\r\nHo"};
		const char *p = parts[i % 5];

		fd = tcp_connect(port);
		if (!ASSERT_GE(fd, 0, "connect"))
			break;
		if (*p && send(fd, p, strlen(p), MSG_NOSIGNAL) < 0)
			perror("    send");
		if (i % 2) /* half of them reset the connection */
			setsockopt(fd, SOL_SOCKET, SO_LINGER,
				   &(struct linger){.l_onoff = 1},
				   sizeof(struct linger));
		close(fd);
	}
	/* one that half-closes after half a request: 400, then EOF */
	fd = tcp_connect(port);
	if (ASSERT_GE(fd, 0, "connect")) {
		double t0 = mono();

		ASSERT_EQ(send(fd, "GET /metr", 9, MSG_NOSIGNAL), 9, "send");
		shutdown(fd, SHUT_WR);
		read_reply(fd, &r, t0);
		/* no reply, or a 400 (http.h): either way, then EOF */
		ASSERT_TRUE(r.len == 0 || r.status == 400,
			    "half a request, then EOF: nothing or a 400");
		ASSERT_EQ(r.ended, 1, "... then EOF");
		resp_free(&r);
		close(fd);
	}
	ASSERT_EQ(kill(e->daemon, 0), 0, "the daemon runs");
	EXPECT("GET /metrics after them", GET_METRICS, 200, false, NULL);
	ASSERT_EQ(env_cli(e, (char[4096]){0}, 4096, "reload", (char *)NULL), 0,
		  "reload after them");
}

TEST(control_metrics_dropped_counters)
{
	static const char *const series[] = {
		"sockmesh_daemon_clients_dropped_total{endpoint=\"control\",reason=\"evicted\"} ",
		"sockmesh_daemon_clients_dropped_total{endpoint=\"control\",reason=\"deadline\"} ",
		"sockmesh_daemon_clients_dropped_total{endpoint=\"metrics\",reason=\"evicted\"} ",
		"sockmesh_daemon_clients_dropped_total{endpoint=\"metrics\",reason=\"deadline\"} ",
	};
	struct resp r = {0};
	int port = env_free_port();

	if (start(e, port, 0))
		return;
	EXPECT("GET /metrics", GET_METRICS, 200, false, &r);
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
		char want[256];

		snprintf(want, sizeof(want), "\n%s0\n", series[i]);
		if (!ASSERT_TRUE(strstr(r.buf, want) != NULL,
				 "present, 0 at start"))
			fprintf(stderr, "    missing: %s0\n", series[i]);
	}
	ASSERT_TRUE(strstr(r.buf,
			   "\n# TYPE sockmesh_daemon_clients_dropped_total "
			   "counter\n") != NULL,
		    "# TYPE ... counter");
	resp_free(&r);
}

/* --- attackers ---------------------------------------------------------- */

enum att_kind {
	A_SLOWLORIS,	  /* a request line, one byte per tick */
	A_ENDLESS_HEADER, /* headers, a line per tick, never the end */
	A_BIG_HEADERS,	  /* 200 kB of headers at once */
	A_IDLE,		  /* connect, send nothing */
	A_NOREAD,	  /* tiny SO_RCVBUF, a full GET /metrics, never read */
	A_CTL,		  /* the control socket: nothing, or half a line */
};

struct attack {
	const char *name;
	enum att_kind kind;
	int n;	      /* connections held */
	int port;     /* the metrics port; A_CTL: the control socket */
	int tick_ms;  /* the attack's pace */
	int per_tick; /* of those the daemon closed, reconnected per tick */
	char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int ready_fd; /* 'r' once every connection is made */
};

struct aconn {
	int fd;		/* -1: closed (by the daemon), to reconnect */
	int connecting; /* connect() in progress */
	size_t sent;	/* of the payload */
};

#define BIG_HEADERS (200 * 1024)
#define OPEN_BATCH  12 /* first connections opened per turn of the loop */

static volatile sig_atomic_t att_stop;

static void att_on_term(int sig)
{
	(void)sig;
	att_stop = 1;
}

/* What connection @i sends at once; NULL: only per tick (or nothing). */
static const char *att_payload(const struct attack *a, int i, size_t *len)
{
	static char *big;

	switch (a->kind) {
	case A_ENDLESS_HEADER:
		*len = strlen("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
		return "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	case A_BIG_HEADERS:
		if (!big) {
			int n = snprintf(
				NULL, 0,
				"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");

			big = malloc(BIG_HEADERS + 64);
			if (!big)
				return NULL;
			snprintf(big, 64,
				 "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
			memset(big + n, 'b', BIG_HEADERS);
			memcpy(big + n + BIG_HEADERS, "\r\n\r\n", 5);
		}
		*len = strlen(big);
		return big;
	case A_NOREAD:
		*len = strlen(GET_METRICS);
		return GET_METRICS;
	case A_CTL:
		*len = 3;
		return i % 2 ? "rel" : NULL; /* half a line, or nothing */
	default:
		return NULL;
	}
}

static int att_open(const struct attack *a, struct aconn *c)
{
	int fd;

	c->fd = -1;
	c->sent = 0;
	c->connecting = 0;
	if (a->kind == A_CTL) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a->ctl_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
		    errno != EINPROGRESS) {
			close(fd); /* EAGAIN: the backlog is full, later */
			return -1;
		}
	} else {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons(a->port),
					  .sin_addr.s_addr =
						  htonl(INADDR_LOOPBACK)};

		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
		if (fd < 0)
			return -1;
		if (a->kind == A_NOREAD) {
			int one = 1, mss = 88;

			/* before connect: the window it advertises, and the
			 * daemon's segments (its send buffer) stay small */
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one,
				   sizeof(one));
			setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss,
				   sizeof(mss));
		}
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) &&
		    errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
	}
	c->fd = fd;
	c->connecting = 1;
	return 0;
}

static void att_close(struct aconn *c, int *closed)
{
	close(c->fd);
	c->fd = -1;
	(*closed)++;
}

/* Send what is left of connection @i's payload. */
static void att_send(const struct attack *a, int i, struct aconn *c)
{
	size_t len = 0;
	const char *p = att_payload(a, i, &len);

	while (p && c->sent < len) {
		ssize_t n = send(c->fd, p + c->sent, len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n <= 0)
			break;
		c->sent += n;
	}
}

/* The attacker: make a->n connections, say so, hold them until SIGTERM. */
static int attack_child(struct attack *a)
{
	struct rlimit rl = {.rlim_cur = a->n + 256, .rlim_max = a->n + 256};
	struct aconn *c = calloc(a->n, sizeof(*c));
	struct pollfd *p = calloc(a->n, sizeof(*p));
	int opened = 0, closed = 0, reconnects = 0, ready = 0, rr = 0;
	int next_open = 0;
	double t0 = mono(), next_tick = t0;
	char sink[65536];
	long ticks = 0;

	signal(SIGTERM, att_on_term);
	signal(SIGPIPE, SIG_IGN);
	if (!c || !p || setrlimit(RLIMIT_NOFILE, &rl)) {
		perror("    attacker");
		free(c);
		free(p);
		return 1;
	}
	for (int i = 0; i < a->n; i++)
		c[i].fd = -2; /* not opened yet */
	while (!att_stop) {
		int pending = 0, reopen = a->per_tick;
		double now = mono();

		/*
		 * The first connections in batches: a burst larger than the
		 * daemon's listen backlog would have the kernel drop the
		 * handshakes' last ACKs, and their retransmissions come back
		 * as a wave a second later, while the parent measures.
		 */
		for (int k = 0; k < OPEN_BATCH && next_open < a->n; k++)
			opened += !att_open(a, &c[next_open++]);

		if (now >= next_tick) {
			next_tick = now + a->tick_ms / 1000.0;
			ticks++;
			/* never-readers come and go: the oldest few make way
			 * for new ones, each with a reply it will not read */
			for (int k = 0; a->kind == A_NOREAD && k < a->per_tick;
			     k++, rr = (rr + 1) % a->n) {
				if (c[rr].fd < 0 || c[rr].connecting)
					continue;
				close(c[rr].fd);
				reconnects += !att_open(a, &c[rr]);
			}
			for (int i = 0; i < a->n; i++) {
				char line[32];
				int n;

				if (c[i].fd == -1) {
					if (reopen > 0 && !att_open(a, &c[i])) {
						reopen--;
						reconnects++;
					}
					continue;
				}
				if (c[i].fd < 0 || c[i].connecting)
					continue;
				if (a->kind == A_SLOWLORIS) {
					/* "GET /metrics?aaaa...": never ends */
					line[0] = c[i].sent < 13
							  ? "GET /metrics?"
								    [c[i].sent]
							  : 'a';
					n = send(c[i].fd, line, 1,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
					c[i].sent += n > 0;
				} else if (a->kind == A_ENDLESS_HEADER) {
					n = snprintf(line, sizeof(line),
						     "X-Pad-%ld: yyyy\r\n",
						     ticks);
					n = send(c[i].fd, line, n,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
					(void)n;
				}
			}
		}
		for (int i = 0; i < a->n; i++) {
			p[i].fd = c[i].fd;
			p[i].revents = 0;
			pending += c[i].connecting;
			if (c[i].connecting)
				p[i].events = POLLOUT;
			else if (a->kind == A_NOREAD)
				p[i].events = POLLRDHUP; /* never read */
			else
				p[i].events = POLLIN;
			if (a->kind == A_BIG_HEADERS && !c[i].connecting &&
			    c[i].sent < BIG_HEADERS)
				p[i].events |= POLLOUT;
		}
		/* (after the tick: it closes and opens sockets)
		 * ready: every connect done (or refused) at least once */
		if (!ready && next_open == a->n &&
		    (!pending || now - t0 > 20)) {
			ready = 1;
			if (write(a->ready_fd, "r", 1) != 1)
				break;
		}
		if (poll(p, a->n, next_open < a->n ? 5 : 20) < 0 &&
		    errno != EINTR)
			break;
		for (int i = 0; i < a->n; i++) {
			int err = 0;
			socklen_t elen = sizeof(err);

			if (c[i].fd < 0 || !p[i].revents)
				continue;
			if (c[i].connecting) {
				if (getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR,
					       &err, &elen) ||
				    err) {
					att_close(&c[i], &closed);
					continue;
				}
				c[i].connecting = 0;
				att_send(a, i, &c[i]);
				continue;
			}
			if (p[i].revents & POLLOUT)
				att_send(a, i, &c[i]);
			if (p[i].revents &
			    (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) {
				ssize_t n = a->kind == A_NOREAD
						    ? 0
						    : recv(c[i].fd, sink,
							   sizeof(sink),
							   MSG_DONTWAIT);

				if (n > 0 || (n < 0 && errno == EAGAIN))
					continue;
				/* closed by the daemon */
				att_close(&c[i], &closed);
				if (a->kind == A_IDLE && i == 0) {
					/* the one that comes right back */
					reconnects += !att_open(a, &c[i]);
				}
			}
		}
	}
	fprintf(stderr,
		"    %s attacker: %d connections, %d closed by the daemon, "
		"%d reconnected\n",
		a->name, opened, closed, reconnects);
	free(c);
	free(p);
	return 0;
}

static void attack_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	if (env_wait(pid, 5) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* --- the parent: every request must answer while the attack holds ------ */

struct lat {
	double reload, status, ctl, scrape;
};

static void lat_max(double *m, double t0)
{
	double ms = (mono() - t0) * 1000;

	if (ms > *m)
		*m = ms;
}

/* A normal scrape: 200, the whole body, the reloads counted; 0 if so. */
static int scrape(int port, struct resp *r)
{
	http_req(port, GET_METRICS, r);
	return r->status == 200 && r->ended == 1 && r->clen >= 0 &&
			       r->body == r->clen
		       ? 0
		       : -1;
}

static long long dropped_sum(const char *text, const char *endpoint)
{
	long long ev = dropped(text, endpoint, "evicted"),
		  dl = dropped(text, endpoint, "deadline");

	return ev < 0 || dl < 0 ? -1 : ev + dl;
}

/*
 * Run attack @a against a daemon with metrics on @port (@n_sub as
 * ctl_config), for HOLD_S seconds of reload, status and scrape rounds,
 * then unload, the attack still in force. @endpoint: whose dropped
 * counters must rise ("metrics", "control"), or NULL.
 */
static void attack_test(struct env *e, struct attack *a, int n_sub,
			const char *endpoint)
{
	char out[16384], msg[128];
	struct lat m = {0};
	struct resp r = {0};
	int pfd[2] = {-1, -1}, fds0, fds_max = 0, rounds = 0, failed = 0;
	int reloads = 0, alive;
	long long drop0 = -1, drop1 = -1;
	long rss0, rss_max = 0;
	double t_end;
	pid_t pid = -1;
	char c;

	a->port = env_free_port();
	snprintf(a->ctl_path, sizeof(a->ctl_path), "%s/sockmeshd.sock",
		 e->run_dir);
	if (start(e, a->port, n_sub))
		return;
	if (!ASSERT_EQ(scrape(a->port, &r), 0, "a scrape before the attack"))
		fprintf(stderr, "    reply: %.*s\n",
			(int)strcspn(r.buf, "\r\n"), r.buf);
	if (endpoint)
		drop0 = dropped_sum(r.buf, endpoint);
	fprintf(stderr, "    %s: /metrics is %ld bytes\n", a->name, r.clen);
	resp_free(&r);
	fds0 = env_count_fds(e->daemon);
	rss0 = env_rss_kib(e->daemon);

	if (!ASSERT_EQ(pipe2(pfd, O_CLOEXEC), 0, "pipe"))
		return;
	fflush(NULL);
	pid = fork();
	if (!pid) {
		close(pfd[0]);
		a->ready_fd = pfd[1];
		_exit(attack_child(a));
	}
	close(pfd[1]);
	t_end = mono();
	if (!ASSERT_GT(pid, 0, "fork the attacker") ||
	    !ASSERT_EQ(poll(&(struct pollfd){.fd = pfd[0], .events = POLLIN}, 1,
			    60000),
		       1, "the attacker connected within 60 s") ||
	    !ASSERT_EQ(read(pfd[0], &c, 1), 1, "the attacker is ready"))
		goto out;
	fprintf(stderr, "    %s: the attacker connected in %.1f ms\n", a->name,
		(mono() - t_end) * 1000);
	/* handshakes the kernel still completes (retransmitted) arrive in
	 * the next second: the paced arrivals of the attack are what
	 * the requests below are measured against */
	usleep(1000000);

	for (t_end = mono() + HOLD_S; mono() < t_end && !failed; rounds++) {
		double t0 = mono();
		int rc;

		rc = env_cli(e, out, sizeof(out), "reload", (char *)NULL);
		lat_max(&m.reload, t0);
		if (!ASSERT_EQ(rc, 0, "sockmesh reload under attack")) {
			fprintf(stderr, "    %s", out);
			failed++;
		} else {
			reloads++;
		}
		t0 = mono();
		rc = env_cli(e, out, sizeof(out), "status", (char *)NULL);
		lat_max(&m.status, t0);
		if (!ASSERT_EQ(rc, 0, "sockmesh status under attack"))
			failed++;
		t0 = mono();
		rc = env_ctl(e, "status json", out, sizeof(out));
		lat_max(&m.ctl, t0);
		if (!ASSERT_EQ(rc, 0, "status json over the control socket")) {
			fprintf(stderr, "    %s\n", strerror(-rc));
			failed++;
		}
		rc = scrape(a->port, &r);
		if (r.ms > m.scrape)
			m.scrape = r.ms;
		if (!ASSERT_EQ(rc, 0,
			       "a scrape under attack: 200, whole body")) {
			fprintf(stderr, "    reply: '%.*s', %zu bytes, %s\n",
				(int)strcspn(r.buf, "\r\n"), r.buf, r.len,
				r.ended == 1   ? "then EOF"
				: r.ended == 2 ? "then a reset"
					       : "no EOF within the guard");
			failed++;
		} else {
			ASSERT_EQ(prom_value(r.buf, "sockmesh_reloads_total"),
				  reloads, "the scrape counts every reload");
			if (endpoint)
				drop1 = dropped_sum(r.buf, endpoint);
		}
		resp_free(&r);
		if (env_count_fds(e->daemon) > fds_max)
			fds_max = env_count_fds(e->daemon);
		if (env_rss_kib(e->daemon) > rss_max)
			rss_max = env_rss_kib(e->daemon);
		usleep(100000);
	}
	alive = waitpid(pid, NULL, WNOHANG) == 0;
	ASSERT_TRUE(alive, "the attack was in force throughout");
	fprintf(stderr,
		"    %s: %d rounds; max reload %.1f ms, status %.1f ms, "
		"control status %.1f ms, scrape %.1f ms; fds %d -> max %d, "
		"RSS %ld -> max %ld KiB\n",
		a->name, rounds, m.reload, m.status, m.ctl, m.scrape, fds0,
		fds_max, rss0, rss_max);
	ASSERT_TRUE(fds_max <= fds0 + CTL_POOL + METRICS_POOL + 16,
		    "the daemon's fds stay within its pools");
	ASSERT_TRUE(rss_max - rss0 <= RSS_GROWTH_KB,
		    "the daemon's RSS grows by 32 MiB at most");
	if (endpoint) {
		snprintf(msg, sizeof(msg),
			 "dropped_total{endpoint=\"%s\"} (evicted + deadline) "
			 "rose",
			 endpoint);
		ASSERT_GT(drop1, drop0, msg);
		ASSERT_GE(drop0, 0, "the dropped counters are there");
	}

	/* and unload, the attack still in force */
	if (!failed && alive) {
		double t0 = mono();
		int rc = env_cli(e, out, sizeof(out), "unload", (char *)NULL);

		fprintf(stderr, "    %s: unload %.1f ms\n", a->name,
			(mono() - t0) * 1000);
		if (!ASSERT_EQ(rc, 0, "sockmesh unload under attack"))
			fprintf(stderr, "    %s", out);
		else
			ASSERT_STR_HAS(out, "detached and removed the pins",
				       "unload says what happened");
		rc = env_wait(e->daemon, 10);
		ASSERT_EQ(rc, 0, "the daemon exited cleanly");
		if (rc >= 0)
			e->daemon = 0;
		if (!n_sub)
			ASSERT_EQ(env_sockops_attached(e), 0, "detached");
		ASSERT_TRUE(waitpid(pid, NULL, WNOHANG) == 0,
			    "the attack was in force during the unload");
	}
out:
	attack_kill(pid);
	if (pfd[0] >= 0)
		close(pfd[0]);
}

/* (a) 300 connections, each a byte of a request line every 500 ms */
TEST(control_attack_slowloris)
{
	struct attack a = {.name = "slowloris",
			   .kind = A_SLOWLORIS,
			   .n = 300,
			   .tick_ms = 500,
			   .per_tick = 10};

	attack_test(e, &a, 0, "metrics");
}

/* (b) headers that never end: a header line every 200 ms */
TEST(control_attack_endless_header)
{
	struct attack a = {.name = "endless header",
			   .kind = A_ENDLESS_HEADER,
			   .n = 100,
			   .tick_ms = 200,
			   .per_tick = 4};

	attack_test(e, &a, 0, "metrics");
}

/* (c) 200 kB of headers at once, 16 connections */
TEST(control_attack_big_headers)
{
	struct attack a = {.name = "200 kB headers",
			   .kind = A_BIG_HEADERS,
			   .n = 16,
			   .tick_ms = 250,
			   .per_tick = 4};

	attack_test(e, &a, 0, NULL);
}

/* (d) 3000 idle connections, and one that comes back when closed */
TEST(control_attack_3000_idle)
{
	struct attack a = {.name = "3000 idle",
			   .kind = A_IDLE,
			   .n = 3000,
			   .tick_ms = 500,
			   .per_tick = 0};

	attack_test(e, &a, 0, "metrics");
}

/* (e) 200 clients that never read a body larger than their buffers */
TEST(control_attack_noread)
{
	struct attack a = {.name = "never read",
			   .kind = A_NOREAD,
			   .n = 200,
			   .tick_ms = 500,
			   .per_tick = 5};

	attack_test(e, &a, -1, NULL);
}

/* (f) 100 connections to the control socket: nothing, or half a line */
TEST(control_attack_control_socket)
{
	struct attack a = {.name = "control socket",
			   .kind = A_CTL,
			   .n = 100,
			   .tick_ms = 500,
			   .per_tick = 2};

	attack_test(e, &a, 0, "control");
}

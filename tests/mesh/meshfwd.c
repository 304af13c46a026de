// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshfwd - the mesh's IPv6 sidecar: a small event-loop TCP forwarder that
 * does what an Istio sidecar does with istio-init's REDIRECTs. Debian's
 * HAProxy (2.6) does not read IP6T_SO_ORIGINAL_DST: as an IPv6 sidecar it
 * connects to its own listener. meshfwd does, for IPv4 and IPv6.
 *
 *   meshfwd [-4] [-6] [-o PORT] [-i PORT]
 *
 * -4, -6   the families to listen on (default both; IPv6 sockets are
 *          IPV6_V6ONLY, so meshfwd -6 runs beside an IPv4 HAProxy)
 * -o PORT  outbound (default 15001): connect to the original destination
 * -i PORT  inbound (default 15006): connect to loopback (::1 or 127.0.0.1)
 *          on the original destination's port
 *
 * Run it as the sidecar's uid (1337): its own connections must not be
 * REDIRECTed again. A connection whose original destination is one of its
 * own ports (no REDIRECT happened) is closed. Each connection, when both
 * sides are closed, logs one line on stdout:
 *
 *   conn CLIENT orig ORIGDST via SRC srv SERVER outbound|inbound up U down D
 *
 * (addresses [v6]:port or v4:port; U bytes client to server, D back), so a
 * test can hold every byte and every original destination against what its
 * client sent. Both directions are relayed with half-close kept (one side's
 * EOF becomes shutdown(SHUT_WR) on the other once its bytes are written).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MF_BUF	 65536
#define MF_CONNS 4096

enum { MF_OUT, MF_IN };

struct mf_half { /* bytes read from one socket, to be written to the other */
	char buf[MF_BUF];
	size_t len, off;
	bool eof;  /* the reading socket reached EOF */
	bool shut; /* shutdown(SHUT_WR) done on the writing socket */
	unsigned long long bytes;
};

struct mf_conn {
	int fd[2]; /* 0 client (accepted), 1 server (connected) */
	bool connecting;
	bool dead; /* closed; freed after this epoll batch */
	struct mf_conn *next_dead;
	int dir; /* MF_OUT, MF_IN */
	struct sockaddr_storage peer, orig, via, srv;
	struct mf_half h[2]; /* h[0]: client -> server, h[1]: back */
};

static int ep;
static unsigned short ports[2] = {15001, 15006};
static int n_conns;
static struct mf_conn
	*dead; /* closed in this batch: events may still name them */

static const char *addr_str(const struct sockaddr_storage *ss, char *buf,
			    size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	} else {
		snprintf(buf, len, "-");
	}
	return buf;
}

static unsigned short addr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6
			     ? ((const struct sockaddr_in6 *)ss)->sin6_port
			     : ((const struct sockaddr_in *)ss)->sin_port);
}

static void ep_set(struct mf_conn *c, int side)
{
	struct mf_half *in = &c->h[side], *out = &c->h[!side];
	struct epoll_event ev = {.events = 0};

	if (c->fd[side] < 0)
		return;
	/* read while there is room for what this side sends, write while
	 * the other side has bytes for it; a connecting socket waits for
	 * EPOLLOUT only */
	if (side == 1 && c->connecting) {
		ev.events = EPOLLOUT;
	} else {
		if (!in->eof && in->len == 0)
			ev.events |= EPOLLIN;
		if (out->len > out->off)
			ev.events |= EPOLLOUT;
	}
	ev.data.u64 = (unsigned long long)(uintptr_t)c | (unsigned)side;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd[side], &ev);
}

static void conn_close(struct mf_conn *c)
{
	char a[4][INET6_ADDRSTRLEN + 8];

	printf("conn %s orig %s via %s srv %s %s up %llu down %llu\n",
	       addr_str(&c->peer, a[0], sizeof(a[0])),
	       addr_str(&c->orig, a[1], sizeof(a[1])),
	       addr_str(&c->via, a[2], sizeof(a[2])),
	       addr_str(&c->srv, a[3], sizeof(a[3])),
	       c->dir == MF_OUT ? "outbound" : "inbound", c->h[0].bytes,
	       c->h[1].bytes);
	fflush(stdout);
	for (int s = 0; s < 2; s++)
		if (c->fd[s] >= 0)
			close(c->fd[s]);
	c->fd[0] = c->fd[1] = -1;
	c->dead = true;
	c->next_dead = dead;
	dead = c;
	n_conns--;
}

/* Move bytes for side @side's socket: read into h[side], write h[!side]. */
static int conn_io(struct mf_conn *c, int side, unsigned events)
{
	struct mf_half *in = &c->h[side], *out = &c->h[!side];
	int fd = c->fd[side];

	if (side == 1 && c->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err)
			return -1; /* the client sees its connection closed */
		c->connecting = false;
		l = sizeof(c->via);
		getsockname(fd, (struct sockaddr *)&c->via, &l);
		ep_set(c, 0);
		ep_set(c, 1);
		return 0;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !in->eof &&
	    in->len == 0) {
		ssize_t n = read(fd, in->buf, sizeof(in->buf));

		if (n > 0) {
			in->len = n;
			in->off = 0;
			in->bytes += n;
		} else if (n == 0) {
			in->eof = true;
		} else if (errno != EAGAIN && errno != EINTR) {
			return -1;
		}
	}
	if ((events & EPOLLOUT) && out->len > out->off) {
		ssize_t n = write(fd, out->buf + out->off, out->len - out->off);

		if (n > 0)
			out->off += n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (out->off == out->len)
			out->len = out->off = 0;
	}
	/* the other side's bytes are all written here and it reached EOF */
	for (int s = 0; s < 2; s++) {
		struct mf_half *h = &c->h[s];

		if (h->eof && h->len == 0 && !h->shut) {
			shutdown(c->fd[!s], SHUT_WR);
			h->shut = true;
		}
	}
	if (c->h[0].shut && c->h[1].shut)
		return -1; /* done both ways */
	/* the other side may now have room, or bytes to write */
	ep_set(c, 0);
	ep_set(c, 1);
	return 0;
}

static void conn_new(int lfd, int dir)
{
	struct mf_conn *c;
	struct epoll_event ev;
	struct sockaddr_storage lo = {0};
	socklen_t l;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int s, one = 1;

	if (fd < 0)
		return;
	if (n_conns >= MF_CONNS || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	n_conns++;
	c->fd[0] = fd;
	c->fd[1] = -1;
	c->dir = dir;
	l = sizeof(c->peer);
	getpeername(fd, (struct sockaddr *)&c->peer, &l);
	l = sizeof(c->orig);
	if (c->peer.ss_family == AF_INET6)
		s = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &c->orig,
			       &l);
	else
		s = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &c->orig, &l);
	if (s || addr_port(&c->orig) == ports[MF_OUT] ||
	    addr_port(&c->orig) == ports[MF_IN]) {
		fprintf(stderr,
			"meshfwd: no original destination (%s): closed\n",
			s ? strerror(errno)
			  : "a connection to meshfwd's own port");
		conn_close(c);
		return;
	}
	c->srv = c->orig;
	if (dir == MF_IN) { /* the app in this pod, on the port asked for */
		lo.ss_family = c->orig.ss_family;
		if (lo.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (void *)&lo;

			s6->sin6_addr = in6addr_loopback;
			s6->sin6_port = htons(addr_port(&c->orig));
		} else {
			struct sockaddr_in *s4 = (void *)&lo;

			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			s4->sin_port = htons(addr_port(&c->orig));
		}
		c->srv = lo;
	}
	c->fd[1] = socket(c->srv.ss_family,
			  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd[1] < 0) {
		conn_close(c);
		return;
	}
	setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->connecting = true;
	if (connect(c->fd[1], (struct sockaddr *)&c->srv,
		    c->srv.ss_family == AF_INET6
			    ? sizeof(struct sockaddr_in6)
			    : sizeof(struct sockaddr_in)) &&
	    errno != EINPROGRESS) {
		conn_close(c);
		return;
	}
	for (int side = 0; side < 2; side++) {
		ev.events = 0;
		ev.data.u64 = (unsigned long long)(uintptr_t)c | (unsigned)side;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd[side], &ev);
	}
	ep_set(c, 1); /* wait for the connect; the client waits meanwhile */
}

static int listen_on(int family, unsigned short port)
{
	struct sockaddr_storage ss = {.ss_family = family};
	int one = 1,
	    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	} else {
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
	}
	if (bind(fd, (struct sockaddr *)&ss,
		 family == AF_INET6 ? sizeof(struct sockaddr_in6)
				    : sizeof(struct sockaddr_in)) ||
	    listen(fd, 1024)) {
		fprintf(stderr, "meshfwd: listen on %s port %u: %s\n",
			family == AF_INET6 ? "IPv6" : "IPv4", port,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: meshfwd [-4] [-6] [-o OUTBOUND_PORT] [-i INBOUND_PORT]\n");
}

int main(int argc, char **argv)
{
	bool v4 = false, v6 = false;
	struct epoll_event evs[64];
	int opt, nl = 0, lfds[4], ldirs[4];

	while ((opt = getopt(argc, argv, "46o:i:h")) != -1) {
		switch (opt) {
		case '4':
			v4 = true;
			break;
		case '6':
			v6 = true;
			break;
		case 'o':
		case 'i': {
			char *end;
			long p = strtol(optarg, &end, 10);

			if (*end || p < 1 || p > 65535) {
				fprintf(stderr,
					"meshfwd: -%c %s: a port, 1-65535\n",
					opt, optarg);
				return 2;
			}
			ports[opt == 'o' ? MF_OUT : MF_IN] = p;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!v4 && !v6)
		v4 = v6 = true;
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("meshfwd: epoll_create1");
		return 1;
	}
	for (int f = 0; f < 2; f++) {
		if (!(f ? v6 : v4))
			continue;
		for (int d = 0; d < 2; d++) {
			struct epoll_event ev = {.events = EPOLLIN};
			int fd = listen_on(f ? AF_INET6 : AF_INET, ports[d]);

			if (fd < 0)
				return 1;
			/* listeners: data.u64 below 4 (a conn pointer is larger) */
			ev.data.u64 = nl;
			lfds[nl] = fd;
			ldirs[nl++] = d;
			epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		}
	}
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("meshfwd: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			unsigned long long u = evs[i].data.u64;
			struct mf_conn *c;

			if (u < 4) {
				conn_new(lfds[u], ldirs[u]);
				continue;
			}
			c = (struct mf_conn *)(uintptr_t)(u & ~1ULL);
			if (!c->dead && conn_io(c, u & 1, evs[i].events))
				conn_close(c);
		}
		while (dead) {
			struct mf_conn *d = dead;

			dead = d->next_dead;
			free(d);
		}
	}
}

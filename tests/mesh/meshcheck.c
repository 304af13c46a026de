// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * meshcheck - the mesh tests' redis client: SET random binary values of
 * 1 B .. 1 MiB, GET them back, compare every byte. It counts the bytes it
 * wrote and read, so the test can hold them against the proxies' stats.
 *
 *   meshcheck [-n PAIRS | -t SECONDS] [-m MAXSIZE] [-r PAIRS_PER_CONN]
 *             [-k KEYPREFIX] [-s SEED] [-f STOPFILE] HOST PORT
 *
 * -f FILE: stop (after the pair in flight) once FILE exists.
 *
 * It is an event-loop client, as redis-benchmark and hiredis's async API
 * are: a non-blocking connect() and non-blocking reads and writes, each
 * waiting in poll(). compat = strict (the default) keeps blocking clients
 * on TCP (their case is the conformance suite's, test_strict.c), so a
 * blocking client here would test nothing of the mesh's redirects.
 * The last line is "meshcheck: ok: N pairs, C connections, sent S B,
 * received R B", or "meshcheck: FAIL: ..." and exit status 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MC_MAX_VALUE (1 << 20)
#define MC_RBUF	     65536

struct mc_conn {
	int fd;
	char rbuf[MC_RBUF];
	size_t rlen, rpos;
};

struct mc_stats {
	unsigned long long pairs, conns, sent, received;
};

static struct mc_stats st;
static const char *last_op = "connect"; /* the call that failed */
static double t_start;

/* The sizes every run covers first, then random ones up to the maximum. */
static const size_t mc_sizes[] = {1,	 100,	1000,	1460,	4096,
				  16384, 65536, 262144, 1048576};

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait until @c's socket is ready for @events: 0, or -errno. */
static int mc_wait(struct mc_conn *c, short events)
{
	struct pollfd p = {.fd = c->fd, .events = events};
	int n;

	do
		n = poll(&p, 1, 60000);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

static int mc_connect(struct mc_conn *c, const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int one = 1, err;

	c->fd = -1;
	c->rlen = c->rpos = 0;
	err = getaddrinfo(host, port, &hints, &ai);
	if (err)
		return -EINVAL;
	c->fd = socket(ai->ai_family,
		       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = -errno;
		goto out_free;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		err = -errno;
		goto out_close;
	}
	err = mc_wait(c, POLLOUT);
	if (!err) {
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
		err = -err;
	}
	if (err) {
	out_close:
		close(c->fd);
		c->fd = -1;
		goto out_free;
	}
	st.conns++;
	err = 0;
out_free:
	freeaddrinfo(ai);
	return err;
}

static int mc_write(struct mc_conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(c->fd, p, len);

		if (n < 0) {
			int err;

			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				err = mc_wait(c, POLLOUT);
				if (!err)
					continue;
			} else {
				err = -errno;
			}
			last_op = "write";
			return err;
		}
		p += n;
		len -= n;
		st.sent += n;
	}
	return 0;
}

static int mc_fill(struct mc_conn *c)
{
	ssize_t n;

	if (c->rpos < c->rlen)
		return 0;
	for (;;) {
		n = read(c->fd, c->rbuf, sizeof(c->rbuf));
		if (n >= 0)
			break;
		if (errno == EAGAIN) {
			int err = mc_wait(c, POLLIN);

			if (err) {
				last_op = "read";
				return err;
			}
		} else if (errno != EINTR) {
			break;
		}
	}
	if (n <= 0) {
		last_op = "read";
		return n < 0 ? -errno : -ECONNRESET;
	}
	st.received += n;
	c->rlen = n;
	c->rpos = 0;
	return 0;
}

static int mc_read(struct mc_conn *c, char *buf, size_t len)
{
	while (len) {
		size_t n;
		int err = mc_fill(c);

		if (err)
			return err;
		n = c->rlen - c->rpos;
		if (n > len)
			n = len;
		memcpy(buf, c->rbuf + c->rpos, n);
		c->rpos += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* One reply line, without its CRLF, into line (size cap). */
static int mc_line(struct mc_conn *c, char *line, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char ch;
		int err = mc_read(c, &ch, 1);

		if (err)
			return err;
		if (ch == '\n')
			break;
		if (n + 1 >= cap)
			return -EPROTO;
		line[n++] = ch;
	}
	if (n == 0 || line[n - 1] != '\r')
		return -EPROTO;
	line[n - 1] = '\0';
	return 0;
}

static int mc_cmd(struct mc_conn *c, const char *verb, const char *key,
		  const char *val, size_t vlen)
{
	char hdr[128];
	int n, err;

	if (val)
		n = snprintf(hdr, sizeof(hdr),
			     "*3\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$%zu\r\n",
			     strlen(verb), verb, strlen(key), key, vlen);
	else
		n = snprintf(hdr, sizeof(hdr),
			     "*2\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(verb),
			     verb, strlen(key), key);
	err = mc_write(c, hdr, n);
	if (!err && val)
		err = mc_write(c, val, vlen);
	if (!err && val)
		err = mc_write(c, "\r\n", 2);
	return err;
}

static void fail(unsigned long long pair, const char *what, const char *why)
{
	printf("meshcheck: FAIL: pair %llu: %s: %s: %s (at %.3f s, after %llu "
	       "pairs, %llu connections, sent %llu B, received %llu B)\n",
	       pair + 1, what, last_op, why, now() - t_start, st.pairs,
	       st.conns, st.sent, st.received);
}

static const char *strerr(int err)
{
	return err == -EPROTO ? "malformed reply" : strerror(-err);
}

/* SET then GET one value; 0 when GET returned exactly what SET stored. */
static int mc_pair(struct mc_conn *c, const char *key, char *val, char *got,
		   size_t len)
{
	char line[64], what[160], expect[32];
	size_t i;
	int err;

	for (i = 0; i < len; i += 8) {
		uint64_t r = rng();

		memcpy(val + i, &r, len - i < 8 ? len - i : 8);
	}
	snprintf(what, sizeof(what), "SET %s (%zu B)", key, len);
	err = mc_cmd(c, "SET", key, val, len);
	if (!err)
		err = mc_line(c, line, sizeof(line));
	if (err) {
		fail(st.pairs, what, strerr(err));
		return err;
	}
	if (strcmp(line, "+OK")) {
		fail(st.pairs, what, line);
		return -EPROTO;
	}
	snprintf(what, sizeof(what), "GET %s (%zu B)", key, len);
	err = mc_cmd(c, "GET", key, NULL, 0);
	if (!err)
		err = mc_line(c, line, sizeof(line));
	if (err) {
		fail(st.pairs, what, strerr(err));
		return err;
	}
	snprintf(expect, sizeof(expect), "$%zu", len);
	if (strcmp(line, expect)) {
		fail(st.pairs, what, line[0] == '$' ? "wrong length" : line);
		return -EPROTO;
	}
	err = mc_read(c, got, len);
	if (!err)
		err = mc_read(c, line + 40, 2);
	if (err) {
		fail(st.pairs, what, strerr(err));
		return err;
	}
	for (i = 0; i < len; i++)
		if (val[i] != got[i])
			break;
	if (i < len || memcmp(line + 40, "\r\n", 2)) {
		snprintf(line, sizeof(line), "value differs at byte %zu", i);
		fail(st.pairs, what, line);
		return -EPROTO;
	}
	st.pairs++;
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: meshcheck [-n PAIRS | -t SECONDS] [-m MAXSIZE] "
		"[-r PAIRS_PER_CONN] [-k KEYPREFIX] [-s SEED] [-f STOPFILE] "
		"HOST PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long long pairs = 20, per_conn = 0, i;
	const char *prefix = "meshcheck", *stopfile = NULL;
	struct mc_conn *c = NULL;
	char *val = NULL, *got = NULL, key[96];
	size_t max = MC_MAX_VALUE;
	double seconds = 0, end = 0;
	int opt, err = 0;

	while ((opt = getopt(argc, argv, "n:t:m:r:k:s:f:")) != -1) {
		switch (opt) {
		case 'n':
			pairs = strtoull(optarg, NULL, 10);
			break;
		case 't':
			seconds = strtod(optarg, NULL);
			break;
		case 'm':
			max = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			per_conn = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			prefix = optarg;
			break;
		case 'f':
			stopfile = optarg;
			break;
		case 's':
			rng_state ^= strtoull(optarg, NULL, 10) *
				     0x9e3779b97f4a7c15ULL;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2 || max < 1 || max > MC_MAX_VALUE)
		return usage();
	c = calloc(1, sizeof(*c));
	val = malloc(max);
	got = malloc(max);
	if (!c || !val || !got) {
		printf("meshcheck: FAIL: out of memory\n");
		err = -ENOMEM;
		goto out;
	}
	c->fd = -1;
	t_start = now();
	if (seconds > 0)
		end = t_start + seconds;
	for (i = 0; end ? now() < end : i < pairs; i++) {
		if (stopfile && access(stopfile, F_OK) == 0)
			break;
		size_t n = sizeof(mc_sizes) / sizeof(mc_sizes[0]);
		size_t len = i < n ? mc_sizes[i] : 1 + rng() % max;

		if (len > max)
			len = max;
		if (c->fd >= 0 && per_conn && i % per_conn == 0) {
			close(c->fd);
			c->fd = -1;
		}
		if (c->fd < 0) {
			err = mc_connect(c, argv[optind], argv[optind + 1]);
			if (err) {
				fail(i, "connect", strerr(err));
				goto out;
			}
		}
		snprintf(key, sizeof(key), "%s:%llu", prefix, i);
		err = mc_pair(c, key, val, got, len);
		if (err)
			goto out;
	}
	printf("meshcheck: ok: %llu pairs, %llu connections, sent %llu B, "
	       "received %llu B\n",
	       st.pairs, st.conns, st.sent, st.received);
out:
	if (c && c->fd >= 0)
		close(c->fd);
	free(c);
	free(val);
	free(got);
	return err ? 1 : 0;
}

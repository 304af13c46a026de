// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pingpong - one loopback TCP connection inside the caller's cgroup: the
 * client sends ROUNDS messages of SIZE bytes, the server reads each one
 * whole, checks every byte and sends it back, and the client checks the
 * echo. Both ends live in this one process (and so in its cgroup), so
 * `sockmesh run -- pingpong` accelerates both of them.
 *
 * Request/response keeps every message on the redirect path, so on an
 * accelerated run the counters grow by exactly 2 * ROUNDS messages and
 * 2 * ROUNDS * SIZE bytes. Prints "pingpong: ROUNDS x SIZE bytes verified"
 * and exits 0, or names what went wrong and exits 1 (2: usage).
 *
 * Its sockets are non-blocking, waited on with poll(), as an event loop's
 * are: compat = strict (the default) keeps blocking sockets on TCP.
 *
 * -W FILE: after the first half of the rounds, print "pingpong: half" and
 * wait until FILE exists before the second half (the connection stays open
 * meanwhile: a test restarts the daemon there).
 *
 * Usage: pingpong [-a ADDR] [-W FILE] [ROUNDS [SIZE]]
 *        (defaults 127.0.0.1, 100 rounds, 1000 bytes)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE_MAX_ 65536

static int fail(const char *what)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
	return 1;
}

/* Wait for @events on the non-blocking @fd; 0, or -1 with errno set. */
static int wait_for(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	do
		n = poll(&p, 1, 60000);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n > 0 ? 0 : -1;
}

/* Read exactly @len bytes; 0, or -1 with errno set (0 on EOF: EPIPE). */
static int read_full(int fd, unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(fd, POLLIN))
				return -1;
			continue;
		}
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EPIPE;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_for(fd, POLLOUT))
				return -1;
			continue;
		}
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void fill(unsigned char *buf, size_t len, unsigned round)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(round * 31 + i * 7 + 1);
}

int main(int argc, char **argv)
{
	static unsigned char out[SIZE_MAX_], in[SIZE_MAX_];
	const char *addr = "127.0.0.1", *wait_file = NULL;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	long rounds = 100, size = 1000;
	int lfd = -1, cfd = -1, sfd = -1, one = 1, ret = 1, opt;

	while ((opt = getopt(argc, argv, "a:W:")) != -1) {
		if (opt == 'a')
			addr = optarg;
		else if (opt == 'W')
			wait_file = optarg;
		else
			goto usage;
	}
	if (optind < argc)
		rounds = strtol(argv[optind++], NULL, 10);
	if (optind < argc)
		size = strtol(argv[optind++], NULL, 10);
	if (optind < argc || rounds < 1 || size < 1 || size > SIZE_MAX_ ||
	    inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		goto usage;

	/* an event loop's listener: non-blocking, accepted from when it polls
	 * readable (a blocking one is a thread-per-connection server's, which
	 * compat = strict keeps on TCP) */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (lfd < 0)
		return fail("socket");
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen)) {
		ret = fail("listen");
		goto out;
	}
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (cfd < 0 ||
	    (connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) &&
	     errno != EINPROGRESS) ||
	    wait_for(cfd, POLLOUT)) {
		ret = fail("connect");
		goto out;
	}
	sfd = wait_for(lfd, POLLIN) ? -1
				    : accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	if (sfd < 0) {
		ret = fail("accept");
		goto out;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	for (long r = 0; r < rounds; r++) {
		if (wait_file && r == rounds / 2) {
			struct stat st;

			printf("pingpong: half\n");
			fflush(stdout);
			while (stat(wait_file, &st))
				usleep(10000);
		}
		fill(out, (size_t)size, (unsigned)r);
		if (write_full(cfd, out, (size_t)size)) {
			ret = fail("client write");
			goto out;
		}
		if (read_full(sfd, in, (size_t)size)) {
			ret = fail("server read");
			goto out;
		}
		if (memcmp(in, out, (size_t)size)) {
			fprintf(stderr,
				"pingpong: round %ld: the server read other bytes than were sent\n",
				r);
			goto out;
		}
		if (write_full(sfd, in, (size_t)size)) {
			ret = fail("server write");
			goto out;
		}
		if (read_full(cfd, in, (size_t)size)) {
			ret = fail("client read");
			goto out;
		}
		if (memcmp(in, out, (size_t)size)) {
			fprintf(stderr,
				"pingpong: round %ld: the echo differs\n", r);
			goto out;
		}
	}
	printf("pingpong: %ld x %ld bytes verified\n", rounds, size);
	ret = 0;
out:
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return ret;
usage:
	fprintf(stderr,
		"usage: pingpong [-a ADDR] [ROUNDS [SIZE]] (SIZE 1-%d)\n",
		SIZE_MAX_);
	return 2;
}

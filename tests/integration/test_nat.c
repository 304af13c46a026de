// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * NAT-tolerant pairing: a connection that an iptables REDIRECT sent to a
 * local "proxy" (as istio-init's OUTPUT rule does) is seen by its two ends
 * with different tuples; both must still find each other, and the bytes
 * arrive exact both ways. Each test runs in a private network namespace with
 * its own addresses and nat rule (198.18.0.0/15, the benchmarking range).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define POD_A	 "198.18.0.2" /* the client's own address */
#define POD_B	 "198.18.0.3" /* where it connects: redirected */
#define APP_PORT 6379
#define PROXY	 15001
#define NAT_SIZE (1 << 20)

struct nat_arg {
	const char *client_addr; /* bind the client here */
	const char *dst_addr;	 /* and connect here */
};

static int sh(const char *cmd)
{
	int rc = system(cmd);

	if (rc)
		fprintf(stderr, "    '%s' failed (%d)\n", cmd, rc);
	return rc;
}

static unsigned char nat_pat(size_t off, unsigned seed)
{
	return (unsigned char)(((off + seed) * 2654435761u) >> 24);
}

static int send_pattern(int fd, size_t len, unsigned seed)
{
	unsigned char buf[16384];

	for (size_t off = 0; off < len;) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = nat_pat(off + i, seed);
		w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += w;
	}
	return 0;
}

static int recv_pattern(int fd, size_t len, unsigned seed)
{
	unsigned char buf[16384];

	for (size_t off = 0; off < len;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			fprintf(stderr, "    got %zu of %zu bytes\n", off, len);
			return -1;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != nat_pat(off + i, seed)) {
				fprintf(stderr, "    byte %zu differs\n",
					off + i);
				return -1;
			}
		off += n;
	}
	return 0;
}

/* In the child's own netns: addresses, the nat rule, one request/reply. */
static int nat_child(void *p)
{
	const struct nat_arg *a = p;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(PROXY)};
	struct sockaddr_in od;
	socklen_t len = sizeof(od);
	char cmd[256];
	int one = 1, lfd, cfd, afd;

	if (sh("ip addr add " POD_A "/32 dev lo && "
	       "ip addr add " POD_B "/32 dev lo"))
		return 10;
	snprintf(cmd, sizeof(cmd),
		 "iptables -t nat -A OUTPUT -p tcp -d %s --dport %d "
		 "-j REDIRECT --to-ports %d",
		 a->dst_addr, APP_PORT, PROXY);
	if (sh(cmd))
		return 11;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 1))
		return 12;
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_port = 0;
	inet_pton(AF_INET, a->client_addr, &sin.sin_addr);
	if (cfd < 0 || bind(cfd, (struct sockaddr *)&sin, sizeof(sin)))
		return 13;
	sin.sin_port = htons(APP_PORT);
	inet_pton(AF_INET, a->dst_addr, &sin.sin_addr);
	if (connect(cfd, (struct sockaddr *)&sin, sizeof(sin)))
		return 14;
	afd = accept(lfd, NULL, NULL);
	if (afd < 0)
		return 15;
	/* the "proxy" sees where the client meant to go */
	if (getsockopt(afd, SOL_IP, SO_ORIGINAL_DST, &od, &len) ||
	    od.sin_port != htons(APP_PORT) ||
	    od.sin_addr.s_addr != sin.sin_addr.s_addr) {
		fprintf(stderr, "    SO_ORIGINAL_DST is not %s:%d\n",
			a->dst_addr, APP_PORT);
		return 16;
	}
	/* a request and a reply each way, 1 MiB, bytes checked */
	if (send_pattern(cfd, NAT_SIZE, 1) || recv_pattern(afd, NAT_SIZE, 1))
		return 17;
	if (send_pattern(afd, NAT_SIZE, 2) || recv_pattern(cfd, NAT_SIZE, 2))
		return 18;
	close(cfd);
	close(afd);
	close(lfd);
	return 0;
}

static void redirected_pair(struct env *e, const char *client_addr,
			    const char *dst_addr)
{
	struct nat_arg arg = {client_addr, dst_addr};
	struct sm_counters c;

	if (!ASSERT_EQ(env_write_config(e, "",
					"cidrs = 127.0.0.0/8, 198.18.0.0/15\n"
					"node_unique_cidrs = 198.18.0.0/15"),
		       0, "write config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, nat_child, &arg),
			   60),
		  0, "1 MiB each way through the REDIRECT, exact");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 2, "both ends recorded");
	ASSERT_EQ(c.peers_paired, 1, "the proxy's end found the client's");
	ASSERT_EQ(c.peers_paired_nat, 1, "and saw another tuple: NAT");
	ASSERT_EQ(c.peer_misses, 0, "no message missed its peer");
	ASSERT_EQ(c.msgs_passed, 0, "nothing through the stack");
	ASSERT_EQ(c.bytes_redirected, 2 * NAT_SIZE, "every byte redirected");
}

/* A pod address (node-unique): paired host-wide, as proxy to proxy. */
TEST(redirect_pairs_pod_address)
{
	redirected_pair(e, POD_A, POD_B);
}

/* A loopback client (not unique): paired inside its namespace. */
TEST(redirect_pairs_loopback_in_netns)
{
	redirected_pair(e, "127.0.0.1", "127.0.0.5");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Policy decided at establishment: ports, exclude_ports, cidrs. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int start(struct env *e, const char *extra)
{
	return ASSERT_EQ(env_write_config(e, "", extra), 0, "write config") &&
			       ASSERT_EQ(env_start_daemon(e), 0,
					 "start sockmeshd")
		       ? 0
		       : -1;
}

static int xfer_on(struct env *e, int family, int port)
{
	struct xfer x = {.family = family,
			 .v6only = 1,
			 .port = port,
			 .size = 256 << 10,
			 .seed = port};

	return env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child, &x),
			60);
}

TEST(excluded_port_not_redirected)
{
	struct sm_counters c;

	if (start(e, "exclude_ports = 7001, 7100-7200"))
		return;
	ASSERT_EQ(xfer_on(e, AF_INET, 7150), 0, "transfer on an excluded port");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 0, "excluded sockets not recorded");
	ASSERT_EQ(c.sockets_skipped, 2, "both ends skipped by policy");
	ASSERT_EQ(c.msgs_redirected, 0, "nothing redirected");
	ASSERT_EQ(xfer_on(e, AF_INET, 7201), 0, "transfer next to the range");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 2,
		  "a port outside the range is accelerated");
	ASSERT_EQ(c.bytes_redirected, 2 * (256 << 10), "its bytes redirected");
}

TEST(port_list_selects)
{
	struct sm_counters c;

	if (start(e, "ports = 6379, 8000-8100"))
		return;
	ASSERT_EQ(xfer_on(e, AF_INET, 9000), 0, "transfer on an unlisted port");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 0, "unlisted port not recorded");
	ASSERT_EQ(xfer_on(e, AF_INET, 8100), 0, "transfer on a listed port");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 2, "listed port recorded");
	ASSERT_EQ(c.bytes_redirected, 2 * (256 << 10), "its bytes redirected");
}

TEST(cidrs_select)
{
	struct sm_counters c;

	if (start(e, "cidrs = ::1/128"))
		return;
	ASSERT_EQ(xfer_on(e, AF_INET, 7300), 0, "IPv4 transfer");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 0, "127.0.0.1 is not in cidrs");
	ASSERT_EQ(c.sockets_skipped, 2, "both ends skipped");
	ASSERT_EQ(xfer_on(e, AF_INET6, 7300), 0, "IPv6 transfer");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 2, "::1 is in cidrs");
	ASSERT_EQ(c.bytes_redirected, 2 * (256 << 10), "its bytes redirected");
}

/* A full socket map: new connections fall back to TCP and are counted. */
TEST(max_sockets_full_falls_back)
{
	struct xfer first = {.family = AF_INET, .size = 1 << 20, .seed = 5};
	struct xfer second = {.family = AF_INET, .size = 1 << 20, .seed = 6};
	struct sm_counters c;
	int sv[2];
	char ch;
	pid_t p1;

	if (start(e, "max_sockets = 2"))
		return;
	if (!ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0,
		       "socketpair"))
		return;
	first.ready_fd = sv[1];
	/* the first connection fills the map and stays open */
	p1 = env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child, &first);
	ASSERT_EQ(read(sv[0], &ch, 1), 1, "first connection established");
	ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child,
				     &second),
			   60),
		  0, "second connection: exact bytes over TCP");
	ASSERT_EQ(write(sv[0], "g", 1), 1, "go");
	ASSERT_EQ(env_wait(p1, 60), 0, "first connection: exact bytes");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 2, "the first connection filled the map");
	ASSERT_EQ(c.sockets_add_failed, 2, "both ends of the second counted");
	ASSERT_EQ(c.bytes_redirected, 2 * first.size,
		  "only the first connection was redirected");
}

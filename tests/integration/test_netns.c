// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The same 127.0.0.1 port pair in two namespaces: each byte to its own peer. */
#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TEST(two_netns_same_tuple)
{
	struct xfer x[2];
	int sv[2][2];
	pid_t pid[2];
	struct sm_counters c;
	long sockets;
	char ch;

	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "write config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	for (int i = 0; i < 2; i++) {
		if (!ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0,
			       "socketpair"))
			return;
		/* same ports in both: the tuples are identical */
		x[i] = (struct xfer){.family = AF_INET,
				     .port = 7777,
				     .client_port = 40001,
				     /* within SM_RCVBUF_FLOOR: all redirected
				      * in the window variant too */
				     .size = 2 << 20,
				     .seed = 100 + 50 * i,
				     .ready_fd = sv[i][1]};
		pid[i] = env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child, &x[i]);
	}
	/* both connections established before either sends */
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(read(sv[i][0], &ch, 1), 1, "connection established");
	ASSERT_EQ(env_counters(e, &c, &sockets), 0, "read counters");
	ASSERT_EQ(sockets, 4, "four sockets, identical tuples, in the map");
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(write(sv[i][0], "g", 1), 1, "go");
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(env_wait(pid[i], 120), 0,
			  "each namespace got exactly its own bytes");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 4, "all four sockets recorded");
	ASSERT_EQ(c.sockets_add_failed, 0, "no key collision");
	ASSERT_EQ(c.bytes_redirected, 4 * (2 << 20), "all bytes redirected");
	ASSERT_EQ(c.peer_misses, 0, "every message found its peer");
}

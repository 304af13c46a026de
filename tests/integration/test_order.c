// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Order: a direction whose first bytes went through the stack must never
 * switch to redirect, because the receiver reads redirected bytes first.
 * Constructed: the client (accelerated) sends while its peer is not in the
 * map; then the peer is put into the map from user space; the client sends
 * again; only then does the receiver read. Without the rule the second
 * bytes would be read before the first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "harness.h"

struct order_arg {
	struct env *e;
};

static int send_all(int fd, const unsigned char *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, buf + off, len - off, 0);

		if (n <= 0)
			return -1;
		off += n;
	}
	return 0;
}

/*
 * The key the accepted socket would have: the client's, the only socket in
 * the map, with the end flipped (the key holds the handshake's sequence
 * numbers, which user space cannot read).
 */
static int peer_key_of_only_socket(int map, struct sm_key *k)
{
	struct sm_key next;

	if (bpf_map_get_next_key(map, NULL, k))
		return -1;
	if (!bpf_map_get_next_key(map, k, &next)) {
		errno = EEXIST; /* more than one: which is the client? */
		return -1;
	}
	sm_key_peer(k, k);
	return 0;
}

#define PART (64 * 1024)

static int order_child(void *arg)
{
	struct env *e = ((struct order_arg *)arg)->e;
	static unsigned char sent[2 * PART], got[2 * PART];
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	char path[PATH_MAX + 32];
	int lfd, cfd, afd, map;
	struct sm_key key;
	__u64 value;
	size_t have = 0;

	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (unsigned char)(i * 7 + i / 251);
	/* the listener is made outside the cgroup: its sockets are not ours */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sin, &len))
		return 10;
	if (env_join_cgroup(e))
		return 11;
	cfd = socket(AF_INET, SOCK_STREAM, 0); /* accelerated */
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sin, sizeof(sin)))
		return 12;
	afd = accept(lfd, NULL, NULL);
	if (afd < 0)
		return 13;
	/* 1: the peer is not in the map: these bytes take the stack */
	if (send_all(cfd, sent, PART))
		return 14;
	/* 2: the peer appears in the map */
	snprintf(path, sizeof(path), "%s/%s/%s", e->pin_dir, SM_PIN_LAYOUT,
		 SM_MAP_SOCKHASH);
	map = bpf_obj_get(path);
	value = (__u64)afd;
	if (map < 0 || peer_key_of_only_socket(map, &key) ||
	    bpf_map_update_elem(map, &key, &value, BPF_NOEXIST)) {
		fprintf(stderr, "    insert the peer: %s\n", strerror(errno));
		return 15;
	}
	/* 3: more bytes, still unread on the other side */
	if (send_all(cfd, sent + PART, PART))
		return 16;
	shutdown(cfd, SHUT_WR);
	while (have < sizeof(got)) {
		ssize_t n = recv(afd, got + have, sizeof(got) - have, 0);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		have += n;
	}
	if (have != sizeof(got)) {
		fprintf(stderr, "    received %zu of %zu bytes\n", have,
			sizeof(got));
		return 17;
	}
	for (size_t i = 0; i < sizeof(got); i++) {
		if (got[i] != sent[i]) {
			fprintf(stderr,
				"    byte %zu out of order (the second part overtook the first?)\n",
				i);
			return 18;
		}
	}
	return 0;
}

TEST(stack_first_never_switches_to_redirect)
{
	struct order_arg arg = {e};
	struct sm_counters c;

	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "write config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(env_wait(env_spawn(e, NEW_NETNS, order_child, &arg), 60), 0,
		  "all bytes in the order sent");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.sockets_added, 1,
		  "only the client was recorded by sock_ops");
	ASSERT_EQ(c.peer_misses, 1, "its first message missed the peer");
	ASSERT_EQ(c.msgs_redirected, 0,
		  "nothing redirected once a direction used the stack");
	ASSERT_EQ(c.bytes_passed, 2 * PART, "every byte took the stack");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_key.c - the inline helpers of include/sockmesh.h that both ends of a
 * connection rely on to find each other: IPv4-mapped addresses, the peer
 * key and the port selection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sockmesh.h"

/* Text of the 16 bytes of @addr, for messages. */
static const char *addr_str(const __u32 addr[4], char *buf)
{
	if (!inet_ntop(AF_INET6, addr, buf, INET6_ADDRSTRLEN))
		strcpy(buf, "?");
	return buf;
}

static __u32 be_v4(const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		fail_msg("test bug: '%s' is not an IPv4 address", s);
	return a.s_addr;
}

static void test_addr_from_v4_matches_inet_pton_of_mapped_address(void **state)
{
	static const char *const v4[] = {
		"0.0.0.0",	   "127.0.0.1",	      "10.1.2.3",
		"192.168.255.254", "255.255.255.255", "1.0.0.128",
	};
	char want_s[INET6_ADDRSTRLEN], got_s[INET6_ADDRSTRLEN], mapped[64];

	(void)state;
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		unsigned char want[16];
		__u32 got[4];

		snprintf(mapped, sizeof(mapped), "::ffff:%s", v4[i]);
		assert_int_equal(inet_pton(AF_INET6, mapped, want), 1);
		memset(got, 0xa5, sizeof(got));
		sm_addr_from_v4(got, be_v4(v4[i]));
		if (memcmp(got, want, 16))
			fail_msg("sm_addr_from_v4(%s) = %s, want %s", v4[i],
				 addr_str(got, got_s),
				 addr_str((const __u32 *)want, want_s));
	}
}

/*
 * The key a socket computes for itself, from the addresses getsockname()
 * and getpeername() would give: IPv4 sockets use sm_addr_from_v4, IPv6
 * sockets copy the 16 bytes as they are.
 */
static void key_v4(struct sm_key *k, const struct sockaddr_in *local,
		   const struct sockaddr_in *remote)
{
	memset(k, 0, sizeof(*k));
	k->netns = 4026531840ULL;
	sm_addr_from_v4(k->local_ip, local->sin_addr.s_addr);
	sm_addr_from_v4(k->remote_ip, remote->sin_addr.s_addr);
	k->local_port = ntohs(local->sin_port);
	k->remote_port = ntohs(remote->sin_port);
}

static void key_v6(struct sm_key *k, const struct sockaddr_in6 *local,
		   const struct sockaddr_in6 *remote)
{
	memset(k, 0, sizeof(*k));
	k->netns = 4026531840ULL;
	memcpy(k->local_ip, &local->sin6_addr, 16);
	memcpy(k->remote_ip, &remote->sin6_addr, 16);
	k->local_port = ntohs(local->sin6_port);
	k->remote_port = ntohs(remote->sin6_port);
}

static void sa4(struct sockaddr_in *sa, const char *addr, __u16 port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = be_v4(addr);
	sa->sin_port = htons(port);
}

static void sa6(struct sockaddr_in6 *sa, const char *addr, __u16 port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin6_family = AF_INET6;
	if (inet_pton(AF_INET6, addr, &sa->sin6_addr) != 1)
		fail_msg("test bug: '%s' is not an IPv6 address", addr);
	sa->sin6_port = htons(port);
}

static void
test_v4_key_equals_dual_stack_v6_key_of_same_connection(void **state)
{
	struct sockaddr_in l4, r4;
	struct sockaddr_in6 l6, r6;
	struct sm_key k4, k6;

	(void)state;
	/* 10.0.0.1:45678 -> 10.0.0.2:6379, seen by an IPv4 socket and by an
	 * IPv6 socket (dual-stack) on the same host */
	sa4(&l4, "10.0.0.1", 45678);
	sa4(&r4, "10.0.0.2", 6379);
	sa6(&l6, "::ffff:10.0.0.1", 45678);
	sa6(&r6, "::ffff:10.0.0.2", 6379);
	key_v4(&k4, &l4, &r4);
	key_v6(&k6, &l6, &r6);
	assert_int_equal(sizeof(k4), 48); /* no padding to compare */
	assert_memory_equal(&k4, &k6, sizeof(k4));
}

static void test_v4_client_finds_dual_stack_v6_server_as_peer(void **state)
{
	struct sockaddr_in cl, srv;
	struct sockaddr_in6 srv6, cl6;
	struct sm_key client, server, peer;

	(void)state;
	/* client: IPv4 socket; server: accepted on an IPv6 [::]:6379 listener */
	sa4(&cl, "127.0.0.1", 50000);
	sa4(&srv, "127.0.0.1", 6379);
	sa6(&srv6, "::ffff:127.0.0.1", 6379);
	sa6(&cl6, "::ffff:127.0.0.1", 50000);
	key_v4(&client, &cl, &srv);
	key_v6(&server, &srv6, &cl6);
	sm_key_peer(&peer, &client);
	assert_memory_equal(&peer, &server, sizeof(peer));
	sm_key_peer(&peer, &server);
	assert_memory_equal(&peer, &client, sizeof(peer));
}

static void test_key_peer_swaps_local_and_remote_keeps_netns(void **state)
{
	struct sm_key k = {
		.netns = 0x1122334455667788ULL,
		.local_ip = {1, 2, 3, 4},
		.remote_ip = {5, 6, 7, 8},
		.local_port = 1234,
		.remote_port = 80,
	};
	struct sm_key p;

	(void)state;
	memset(&p, 0xa5, sizeof(p));
	sm_key_peer(&p, &k);
	assert_true(p.netns == 0x1122334455667788ULL);
	assert_memory_equal(p.local_ip, k.remote_ip, sizeof(p.local_ip));
	assert_memory_equal(p.remote_ip, k.local_ip, sizeof(p.remote_ip));
	assert_int_equal(p.local_port, 80);
	assert_int_equal(p.remote_port, 1234);
}

static void test_key_peer_is_an_involution(void **state)
{
	struct sm_key keys[3], p, pp;

	(void)state;
	memset(keys, 0, sizeof(keys));
	for (int i = 0; i < 3; i++) {
		keys[i].netns = (__u64)i * 7919;
		for (int w = 0; w < 4; w++) {
			keys[i].local_ip[w] = 0x01020304U * (__u32)(w + 1 + i);
			keys[i].remote_ip[w] = 0xa0b0c0d0U ^ (__u32)(w + i);
		}
		keys[i].local_port = 1 + (__u32)i * 1000;
		keys[i].remote_port = 65535 - (__u32)i;
	}
	for (int i = 0; i < 3; i++) {
		sm_key_peer(&p, &keys[i]);
		if (!memcmp(&p, &keys[i], sizeof(p)))
			fail_msg("key %d: its peer key equals itself", i);
		sm_key_peer(&pp, &p);
		if (memcmp(&pp, &keys[i], sizeof(pp)))
			fail_msg("key %d: peer(peer(k)) != k", i);
	}
}

static const char *flag_name(__u8 f)
{
	switch (f) {
	case 0:
		return "none";
	case SM_PORT_INCLUDE:
		return "include";
	case SM_PORT_EXCLUDE:
		return "exclude";
	default:
		return "include|exclude";
	}
}

static void test_ports_select_truth_table(void **state)
{
	static const struct {
		__u8 local, remote;
		int want;
	} table[] = {
		{0, 0, 0},
		{0, SM_PORT_INCLUDE, 1},
		{0, SM_PORT_EXCLUDE, 0},
		{SM_PORT_INCLUDE, 0, 1},
		{SM_PORT_INCLUDE, SM_PORT_INCLUDE, 1},
		{SM_PORT_INCLUDE, SM_PORT_EXCLUDE, 0},
		{SM_PORT_EXCLUDE, 0, 0},
		{SM_PORT_EXCLUDE, SM_PORT_INCLUDE, 0},
		{SM_PORT_EXCLUDE, SM_PORT_EXCLUDE, 0},
		/* a port both listed and excluded: exclusion wins */
		{SM_PORT_INCLUDE | SM_PORT_EXCLUDE, 0, 0},
		{SM_PORT_INCLUDE | SM_PORT_EXCLUDE, SM_PORT_INCLUDE, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		int got = sm_ports_select(table[i].local, table[i].remote);

		if (got != table[i].want)
			fail_msg(
				"sm_ports_select(local %s, remote %s) = %d, want %d",
				flag_name(table[i].local),
				flag_name(table[i].remote), got, table[i].want);
	}
}

static void test_ports_select_is_symmetric(void **state)
{
	(void)state;
	/* every flag byte, so that future flags keep both ends in agreement */
	for (unsigned int a = 0; a < 256; a++) {
		for (unsigned int b = 0; b < 256; b++) {
			int ab = sm_ports_select((__u8)a, (__u8)b);
			int ba = sm_ports_select((__u8)b, (__u8)a);

			if (ab != ba)
				fail_msg(
					"sm_ports_select(%#x, %#x) = %d but (%#x, %#x) = %d",
					a, b, ab, b, a, ba);
			if (ab != 0 && ab != 1)
				fail_msg(
					"sm_ports_select(%#x, %#x) = %d, not 0 or 1",
					a, b, ab);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_addr_from_v4_matches_inet_pton_of_mapped_address),
		cmocka_unit_test(
			test_v4_key_equals_dual_stack_v6_key_of_same_connection),
		cmocka_unit_test(
			test_v4_client_finds_dual_stack_v6_server_as_peer),
		cmocka_unit_test(
			test_key_peer_swaps_local_and_remote_keeps_netns),
		cmocka_unit_test(test_key_peer_is_an_involution),
		cmocka_unit_test(test_ports_select_truth_table),
		cmocka_unit_test(test_ports_select_is_symmetric),
	};

	return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}

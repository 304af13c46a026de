// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_key.c - the inline helpers of include/sockmesh.h that both ends of a
 * connection rely on to find each other, NAT or not: IPv4-mapped addresses,
 * the key each end builds from what it sees, the peer key and the port
 * selection.
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

/* What a socket sees at establishment, as sock_ops reads it. */
static void view4(struct sm_view *v, const char *local, __u16 lport,
		  const char *remote, __u16 rport, __u32 snd_una, __u32 rcv_nxt,
		  int passive)
{
	memset(v, 0, sizeof(*v));
	sm_addr_from_v4(v->local_ip, be_v4(local));
	sm_addr_from_v4(v->remote_ip, be_v4(remote));
	v->local_port = lport;
	v->remote_port = rport;
	v->snd_una = snd_una;
	v->rcv_nxt = rcv_nxt;
	v->passive = passive;
}

static void view6(struct sm_view *v, const char *local, __u16 lport,
		  const char *remote, __u16 rport, __u32 snd_una, __u32 rcv_nxt,
		  int passive)
{
	memset(v, 0, sizeof(*v));
	if (inet_pton(AF_INET6, local, v->local_ip) != 1 ||
	    inet_pton(AF_INET6, remote, v->remote_ip) != 1)
		fail_msg("test bug: not IPv6 addresses: %s %s", local, remote);
	v->local_port = lport;
	v->remote_port = rport;
	v->snd_una = snd_una;
	v->rcv_nxt = rcv_nxt;
	v->passive = passive;
}

/* @a's peer key must be @b's key, and the other way round. */
static void assert_peers(const struct sm_key *a, const struct sm_key *b)
{
	struct sm_key p;
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];

	sm_key_peer(&p, a);
	if (memcmp(&p, b, sizeof(p)))
		fail_msg(
			"not peers: [%s]:%u seq %u/%u end %u vs [%s]:%u seq %u/%u end %u",
			addr_str(a->active_ip, x), a->active_port,
			a->active_seq, a->passive_seq, a->end,
			addr_str(b->active_ip, y), b->active_port,
			b->active_seq, b->passive_seq, b->end);
	sm_key_peer(&p, b);
	assert_memory_equal(&p, a, sizeof(p));
	assert_true(sm_conn_id(a) == sm_conn_id(b));
}

static void test_key_has_no_padding(void **state)
{
	(void)state;
	/* the map hashes every byte: no holes that could differ */
	assert_int_equal(sizeof(struct sm_key), 8 + 16 + 4 * 4);
}

static void test_v4_client_finds_dual_stack_v6_server_as_peer(void **state)
{
	struct sm_view cv, sv;
	struct sm_key client, server;

	(void)state;
	/* client: IPv4 socket; server: accepted on an IPv6 [::]:6379 listener;
	 * client ISN 1000, server ISN 5000 */
	view4(&cv, "127.0.0.1", 50000, "127.0.0.1", 6379, 1001, 5001, 0);
	view6(&sv, "::ffff:127.0.0.1", 6379, "::ffff:127.0.0.1", 50000, 5001,
	      1001, 1);
	sm_key_make(&client, &cv, 77);
	sm_key_make(&server, &sv, 77);
	assert_peers(&client, &server);
}

static void test_redirected_connection_pairs_with_its_proxy(void **state)
{
	struct sm_view app, proxy, sidecar_out, sidecar_in;
	struct sm_key ka, kp, ko, ki;

	(void)state;
	/* app -> 198.18.0.3:6379, OUTPUT REDIRECT to the proxy's 15001 */
	view4(&app, "198.18.0.2", 40000, "198.18.0.3", 6379, 11, 900001, 0);
	view4(&proxy, "127.0.0.1", 15001, "198.18.0.2", 40000, 900001, 11, 1);
	sm_key_make(&ka, &app, 0);
	sm_key_make(&kp, &proxy, 0);
	assert_peers(&ka, &kp);
	/* proxy A -> 198.18.0.3:6379, PREROUTING REDIRECT in pod B to 15006 */
	view4(&sidecar_out, "198.18.0.2", 40001, "198.18.0.3", 6379,
	      0xfffffff0U, 7, 0);
	view4(&sidecar_in, "198.18.0.3", 15006, "198.18.0.2", 40001, 7,
	      0xfffffff0U, 1);
	sm_key_make(&ko, &sidecar_out, 0);
	sm_key_make(&ki, &sidecar_in, 0);
	assert_peers(&ko, &ki);
}

static void test_other_connections_never_pair(void **state)
{
	struct sm_view c1, s2;
	struct sm_key k1, k2, p;

	(void)state;
	view4(&c1, "127.0.0.1", 50000, "127.0.0.1", 6379, 1001, 5001, 0);
	sm_key_make(&k1, &c1, 77);
	sm_key_peer(&p, &k1);
	/* the same client port to another server: other sequence numbers */
	view4(&s2, "127.0.0.1", 8080, "127.0.0.1", 50000, 9001, 1001, 1);
	sm_key_make(&k2, &s2, 77);
	assert_memory_not_equal(&p, &k2, sizeof(p));
	/* the same connection tuple in another namespace */
	view4(&s2, "127.0.0.1", 6379, "127.0.0.1", 50000, 5001, 1001, 1);
	sm_key_make(&k2, &s2, 78);
	assert_memory_not_equal(&p, &k2, sizeof(p));
	assert_true(sm_conn_id(&k1) != sm_conn_id(&k2));
	/* only the client's sequence number differs */
	view4(&s2, "127.0.0.1", 6379, "127.0.0.1", 50000, 5001, 1002, 1);
	sm_key_make(&k2, &s2, 77);
	assert_memory_not_equal(&p, &k2, sizeof(p));
	/* and a socket is never its own peer */
	assert_memory_not_equal(&p, &k1, sizeof(p));
}

static void test_key_peer_is_an_involution(void **state)
{
	struct sm_key k = {.scope = 0x1122334455667788ULL,
			   .active_ip = {1, 2, 3, 4},
			   .active_port = 1234,
			   .active_seq = 5,
			   .passive_seq = 6,
			   .end = 1};
	struct sm_key p, pp;

	(void)state;
	sm_key_peer(&p, &k);
	assert_int_equal(p.end, 0);
	assert_true(p.scope == k.scope);
	sm_key_peer(&pp, &p);
	assert_memory_equal(&pp, &k, sizeof(pp));
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
		cmocka_unit_test(test_key_has_no_padding),
		cmocka_unit_test(
			test_v4_client_finds_dual_stack_v6_server_as_peer),
		cmocka_unit_test(
			test_redirected_connection_pairs_with_its_proxy),
		cmocka_unit_test(test_other_connections_never_pair),
		cmocka_unit_test(test_key_peer_is_an_involution),
		cmocka_unit_test(test_ports_select_truth_table),
		cmocka_unit_test(test_ports_select_is_symmetric),
	};

	return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}

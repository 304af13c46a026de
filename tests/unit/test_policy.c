// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_policy.c - config -> policy map contents (cgroupd/lib/policy.c): the
 * sm_ports flags of every port, LPM keys, prefix membership.
 *
 * The configs are built field by field, not parsed, so that a parser bug
 * cannot hide a policy bug (test_config.c covers the parser).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "policy.h"
#include "sockmesh.h"

static struct sm_config cfg; /* ~60 KB: not on the stack */
static __u8 flags[SM_PORTS_MAX];

static void no_ports(void)
{
	sm_config_defaults(&cfg);
	cfg.ports_all = false;
	cfg.n_ports = 0;
	cfg.n_exclude_ports = 0;
}

static void add_ports(__u16 lo, __u16 hi)
{
	cfg.ports[cfg.n_ports].lo = lo;
	cfg.ports[cfg.n_ports].hi = hi;
	cfg.n_ports++;
}

static void add_exclude(__u16 lo, __u16 hi)
{
	cfg.exclude_ports[cfg.n_exclude_ports].lo = lo;
	cfg.exclude_ports[cfg.n_exclude_ports].hi = hi;
	cfg.n_exclude_ports++;
}

/* sm_policy_port_flags, on a buffer full of garbage: it must set all. */
static void port_flags(void)
{
	memset(flags, 0xff, sizeof(flags));
	sm_policy_port_flags(&cfg, flags);
}

static void expect_flags(unsigned int port, __u8 want)
{
	if (flags[port] != want)
		fail_msg("port %u: flags %#x, want %#x", port, flags[port],
			 want);
}

/* Every port outside the listed ones has flags 0. */
static void expect_only(const unsigned int *ports, size_t n)
{
	for (unsigned int p = 0; p < SM_PORTS_MAX; p++) {
		int listed = 0;

		for (size_t i = 0; i < n; i++)
			listed |= ports[i] == p;
		if (!listed && flags[p])
			fail_msg("port %u: flags %#x, want 0 (not configured)",
				 p, flags[p]);
	}
}

static void test_port_flags_star_includes_1_to_65535_not_0(void **state)
{
	(void)state;
	sm_config_defaults(&cfg); /* ports = * */
	assert_true(cfg.ports_all);
	port_flags();
	expect_flags(0, 0);
	for (unsigned int p = 1; p < SM_PORTS_MAX; p++)
		expect_flags(p, SM_PORT_INCLUDE);
}

static void test_port_flags_star_with_excludes(void **state)
{
	(void)state;
	sm_config_defaults(&cfg);
	add_exclude(22, 22);
	add_exclude(65535, 65535);
	port_flags();
	expect_flags(0, 0);
	expect_flags(21, SM_PORT_INCLUDE);
	expect_flags(22, SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
	expect_flags(23, SM_PORT_INCLUDE);
	expect_flags(65534, SM_PORT_INCLUDE);
	expect_flags(65535, SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
	/* a connection to or from 22 is not accelerated */
	assert_false(sm_ports_select(flags[22], flags[40000]));
	assert_false(sm_ports_select(flags[40000], flags[22]));
	assert_true(sm_ports_select(flags[40000], flags[40001]));
}

static void test_port_flags_list_and_range_edges(void **state)
{
	unsigned int n = 0;

	(void)state;
	no_ports();
	add_ports(6379, 6379);
	add_ports(8000, 8100);
	add_ports(65535, 65535);
	port_flags();
	expect_flags(0, 0);
	expect_flags(6378, 0);
	expect_flags(6379, SM_PORT_INCLUDE);
	expect_flags(6380, 0);
	expect_flags(7999, 0);
	for (unsigned int p = 8000; p <= 8100; p++)
		expect_flags(p, SM_PORT_INCLUDE);
	expect_flags(8101, 0);
	expect_flags(65534, 0);
	expect_flags(65535, SM_PORT_INCLUDE);
	/* and nothing else */
	for (unsigned int p = 0; p < SM_PORTS_MAX; p++)
		n += flags[p] != 0;
	if (n != 1 + 101 + 1)
		fail_msg(
			"%u ports have flags, want 103 (6379, 8000-8100, 65535)",
			n);
}

static void test_port_flags_exclude_wins_inside_a_range(void **state)
{
	static const unsigned int set[] = {8049, 8050, 8051};

	(void)state;
	no_ports();
	add_ports(8049, 8051);
	add_exclude(8050, 8050);
	port_flags();
	expect_flags(8049, SM_PORT_INCLUDE);
	expect_flags(8050, SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
	expect_flags(8051, SM_PORT_INCLUDE);
	expect_only(set, 3);
	assert_true(sm_ports_select(flags[8049], flags[50000]));
	assert_false(sm_ports_select(flags[8050], flags[8049]));
	assert_false(sm_ports_select(flags[8049], flags[8050]));
}

static void test_port_flags_exclude_outside_ports_is_exclude_only(void **state)
{
	static const unsigned int set[] = {80, 443};

	(void)state;
	no_ports();
	add_ports(80, 80);
	add_exclude(443, 443);
	port_flags();
	expect_flags(80, SM_PORT_INCLUDE);
	expect_flags(443, SM_PORT_EXCLUDE);
	expect_only(set, 2);
	/* 80 <-> 443 is excluded although 80 is listed */
	assert_false(sm_ports_select(flags[80], flags[443]));
}

static void test_port_flags_full_range_and_overlaps(void **state)
{
	(void)state;
	no_ports();
	add_ports(1, 65535);
	add_ports(100, 200); /* overlaps: still just INCLUDE */
	add_exclude(1, 1);
	add_exclude(60000, 65535);
	port_flags();
	expect_flags(0, 0);
	expect_flags(1, SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
	expect_flags(2, SM_PORT_INCLUDE);
	expect_flags(150, SM_PORT_INCLUDE);
	expect_flags(59999, SM_PORT_INCLUDE);
	for (unsigned int p = 60000; p < SM_PORTS_MAX; p++)
		expect_flags(p, SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
}

static void test_port_flags_no_ports_listed_selects_nothing(void **state)
{
	(void)state;
	no_ports();
	port_flags();
	expect_only(NULL, 0);
}

/* A prefix from an IPv6 text ("::ffff:10.0.0.0" for IPv4) and prefixlen. */
static struct sm_cidr cidr(const char *addr, __u32 prefixlen)
{
	struct sm_cidr c;

	memset(&c, 0, sizeof(c));
	if (inet_pton(AF_INET6, addr, c.addr) != 1)
		fail_msg("test bug: '%s' is not an IPv6 address", addr);
	c.prefixlen = prefixlen;
	return c;
}

static void addr6(__u32 out[4], const char *s)
{
	if (inet_pton(AF_INET6, s, out) != 1)
		fail_msg("test bug: '%s' is not an IPv6 address", s);
}

static void addr4(__u32 out[4], const char *s)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		fail_msg("test bug: '%s' is not an IPv4 address", s);
	sm_addr_from_v4(out, a.s_addr);
}

static void expect_lpm(const char *addr, __u32 len, const char *want)
{
	struct sm_cidr c = cidr(addr, len);
	struct sm_lpm_key key;
	__u32 w[4];
	char got_s[INET6_ADDRSTRLEN];

	addr6(w, want);
	memset(&key, 0xa5, sizeof(key));
	sm_policy_lpm_key(&c, &key);
	if (key.prefixlen != len)
		fail_msg("lpm key of %s/%u: prefixlen %u", addr, len,
			 key.prefixlen);
	if (memcmp(key.addr, w, 16))
		fail_msg("lpm key of %s/%u: %s, want %s", addr, len,
			 inet_ntop(AF_INET6, key.addr, got_s, sizeof(got_s)),
			 want);
}

static void test_lpm_key_clears_host_bits(void **state)
{
	(void)state;
	expect_lpm("::ffff:10.1.2.3", 104, "::ffff:10.0.0.0");
	expect_lpm("::ffff:192.168.1.255", 119, "::ffff:192.168.0.0");
	expect_lpm("::ffff:192.168.1.255", 120, "::ffff:192.168.1.0");
	expect_lpm("::ffff:10.1.2.3", 96, "::ffff:0.0.0.0");
	expect_lpm("::ffff:10.1.2.3", 128, "::ffff:10.1.2.3");
	expect_lpm("2001:db8:ffff::1", 32, "2001:db8::");
	expect_lpm("2001:db8:ffff::1", 36, "2001:db8:f000::");
	expect_lpm("2001:db8::3", 127, "2001:db8::2");
	expect_lpm("ffff:ffff::1", 1, "8000::");
	expect_lpm("ffff:ffff::1", 0, "::");
	expect_lpm("::1", 128, "::1");
}

struct in_case {
	const char *addr; /* dotted quad: IPv4 socket; else IPv6 */
	int want;
};

static void expect_in(const struct sm_cidr *c, int n, const char *what,
		      const struct in_case *cases, size_t n_cases)
{
	for (size_t i = 0; i < n_cases; i++) {
		__u32 a[4];
		int got;

		if (strchr(cases[i].addr, ':'))
			addr6(a, cases[i].addr);
		else
			addr4(a, cases[i].addr);
		got = sm_policy_addr_in(c, n, a);
		if (got != cases[i].want)
			fail_msg("%s in %s: %d, want %d", cases[i].addr, what,
				 got, cases[i].want);
	}
}

#define EXPECT_IN(c, n, what, ...)                                    \
	do {                                                          \
		static const struct in_case cases_[] = {__VA_ARGS__}; \
		expect_in(c, n, what, cases_,                         \
			  sizeof(cases_) / sizeof(cases_[0]));        \
	} while (0)

static void test_addr_in_v4_prefix_edges(void **state)
{
	struct sm_cidr c = cidr("::ffff:127.0.0.0", 104); /* 127.0.0.0/8 */

	(void)state;
	EXPECT_IN(&c, 1, "127.0.0.0/8", {"127.0.0.0", 1}, {"127.0.0.1", 1},
		  {"127.255.255.255", 1}, {"126.255.255.255", 0},
		  {"128.0.0.0", 0}, {"::ffff:127.1.2.3", 1},
		  /* same low bits, not IPv4-mapped */
		  {"::127.0.0.1", 0}, {"::fffe:127.0.0.1", 0}, {"::1", 0});
}

static void test_addr_in_v4_prefix_not_on_a_byte_boundary(void **state)
{
	struct sm_cidr c = cidr("::ffff:192.168.0.0", 119); /* /23 */

	(void)state;
	EXPECT_IN(&c, 1, "192.168.0.0/23", {"192.168.0.0", 1},
		  {"192.168.1.255", 1}, {"192.168.2.0", 0},
		  {"192.167.255.255", 0}, {"64.168.0.1", 0});
}

static void test_addr_in_all_v4_is_slash_96(void **state)
{
	struct sm_cidr c = cidr("::ffff:0.0.0.0", 96); /* 0.0.0.0/0 */

	(void)state;
	EXPECT_IN(&c, 1, "0.0.0.0/0", {"0.0.0.0", 1}, {"255.255.255.255", 1},
		  {"10.0.0.1", 1}, {"::1", 0}, {"2001:db8::1", 0},
		  {"::fffe:1.2.3.4", 0});
}

static void test_addr_in_v6_prefixes(void **state)
{
	struct sm_cidr c = cidr("2001:db8::", 32);
	struct sm_cidr odd = cidr("2001:db8::", 127);

	(void)state;
	EXPECT_IN(&c, 1, "2001:db8::/32", {"2001:db8::", 1},
		  {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
		  {"2001:db9::", 0}, {"2001:db7:ffff::", 0}, {"3001:db8::", 0},
		  {"10.0.0.1", 0});
	EXPECT_IN(&odd, 1, "2001:db8::/127", {"2001:db8::", 1},
		  {"2001:db8::1", 1}, {"2001:db8::2", 0},
		  {"2001:db8::8000:0", 0});
}

static void test_addr_in_slash_0_and_slash_128(void **state)
{
	struct sm_cidr all = cidr("::", 0);
	struct sm_cidr one = cidr("::1", 128);

	(void)state;
	EXPECT_IN(&all, 1, "::/0", {"::", 1}, {"::1", 1},
		  {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
		  {"10.0.0.1", 1}, {"255.255.255.255", 1});
	EXPECT_IN(&one, 1, "::1/128", {"::1", 1}, {"::", 0}, {"::2", 0},
		  {"::3", 0}, {"8000::1", 0}, {"0.0.0.1", 0});
}

static void test_addr_in_any_of_several_prefixes(void **state)
{
	struct sm_cidr c[3];

	(void)state;
	c[0] = cidr("::ffff:10.0.0.0", 104);
	c[1] = cidr("::ffff:192.168.1.0", 120);
	c[2] = cidr("fd00::", 8);
	EXPECT_IN(c, 3, "10/8, 192.168.1/24, fd00::/8", {"10.9.8.7", 1},
		  {"192.168.1.200", 1}, {"192.168.2.1", 0}, {"fdff::1", 1},
		  {"fe00::1", 0}, {"11.0.0.0", 0});
	/* no prefixes: nothing is in */
	EXPECT_IN(c, 0, "an empty list", {"10.9.8.7", 0}, {"::", 0});
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_port_flags_star_includes_1_to_65535_not_0),
		cmocka_unit_test(test_port_flags_star_with_excludes),
		cmocka_unit_test(test_port_flags_list_and_range_edges),
		cmocka_unit_test(test_port_flags_exclude_wins_inside_a_range),
		cmocka_unit_test(
			test_port_flags_exclude_outside_ports_is_exclude_only),
		cmocka_unit_test(test_port_flags_full_range_and_overlaps),
		cmocka_unit_test(
			test_port_flags_no_ports_listed_selects_nothing),
		cmocka_unit_test(test_lpm_key_clears_host_bits),
		cmocka_unit_test(test_addr_in_v4_prefix_edges),
		cmocka_unit_test(test_addr_in_v4_prefix_not_on_a_byte_boundary),
		cmocka_unit_test(test_addr_in_all_v4_is_slash_96),
		cmocka_unit_test(test_addr_in_v6_prefixes),
		cmocka_unit_test(test_addr_in_slash_0_and_slash_128),
		cmocka_unit_test(test_addr_in_any_of_several_prefixes),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_pins_errors.c - sm_pins_fill_policy (cgroupd/lib/pins.c) against fake
 * map syscalls: what it writes, in which order, and that a failing call
 * makes it stop and return that call's -errno.
 *
 * The four libbpf functions it calls are defined here. pins.o comes from
 * build/libsmcore.a and is linked into this executable, so its references
 * bind to these definitions before -lbpf is searched: no --wrap, no root,
 * no kernel needed, and the Makefile's generic rule builds it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <cmocka.h>

#include "config.h"
#include "pins.h"
#include "policy.h"
#include "sockmesh.h"

#define FD_PORTS  101
#define FD_CIDRS  102
#define FD_UNIQUE 103

enum fn { BATCH, UPDATE, NEXT_KEY, DELETE, N_FN };
static const char *const fn_names[N_FN] = {
	"bpf_map_update_batch", "bpf_map_update_elem", "bpf_map_get_next_key",
	"bpf_map_delete_elem"};

struct call {
	enum fn fn;
	int fd;
	int failed;
};

/* What the fakes saw. */
static struct call calls[1024];
static int n_calls, n_of[N_FN];
static __u8 batch_values[SM_PORTS_MAX];
static __u32 batch_count;
static int batch_keys_ok;

/* Make the @nth (1-based) call of @fn fail with @err. */
static struct {
	enum fn fn;
	int nth, err;
} fault;

/* The two LPM maps, as a list of keys each. */
struct fake_lpm {
	int fd;
	struct sm_lpm_key keys[64];
	int n;
};
static struct fake_lpm lpm[2];

static struct sm_config cfg;
static struct sm_pins pins;

static int record(enum fn fn, int fd)
{
	int fail;

	n_of[fn]++;
	fail = fault.nth && fault.fn == fn && n_of[fn] == fault.nth;
	if (n_calls < (int)(sizeof(calls) / sizeof(calls[0])))
		calls[n_calls++] = (struct call){fn, fd, fail};
	if (fail) {
		errno = fault.err;
		return -fault.err;
	}
	return 0;
}

static struct fake_lpm *lpm_of(int fd)
{
	for (int i = 0; i < 2; i++)
		if (lpm[i].fd == fd)
			return &lpm[i];
	fail_msg("a call on fd %d, which is not an LPM map", fd);
	return NULL;
}

static int lpm_find(const struct fake_lpm *m, const void *key)
{
	for (int i = 0; i < m->n; i++)
		if (!memcmp(&m->keys[i], key, sizeof(m->keys[i])))
			return i;
	return -1;
}

int bpf_map_update_batch(int fd, const void *keys, const void *values,
			 __u32 *count, const struct bpf_map_batch_opts *opts)
{
	const __u32 *k = keys;
	int ret;

	(void)opts;
	ret = record(BATCH, fd);
	if (ret)
		return ret;
	batch_count = *count;
	batch_keys_ok = 1;
	for (__u32 i = 0; i < *count && i < SM_PORTS_MAX; i++)
		batch_keys_ok &= k[i] == i;
	memcpy(batch_values, values,
	       *count < SM_PORTS_MAX ? *count : SM_PORTS_MAX);
	return 0;
}

int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	struct fake_lpm *m;
	int ret;

	(void)value;
	(void)flags;
	ret = record(UPDATE, fd);
	if (ret)
		return ret;
	m = lpm_of(fd);
	if (lpm_find(m, key) < 0) {
		assert_true(m->n < 64);
		memcpy(&m->keys[m->n++], key, sizeof(m->keys[0]));
	}
	return 0;
}

int bpf_map_get_next_key(int fd, const void *key, void *next_key)
{
	struct fake_lpm *m;
	int i, ret;

	ret = record(NEXT_KEY, fd);
	if (ret)
		return ret;
	m = lpm_of(fd);
	i = key ? lpm_find(m, key) + 1 : 0; /* a missing key: from the start */
	if (i >= m->n) {
		errno = ENOENT;
		return -ENOENT;
	}
	memcpy(next_key, &m->keys[i], sizeof(m->keys[i]));
	return 0;
}

int bpf_map_delete_elem(int fd, const void *key)
{
	struct fake_lpm *m;
	int i, ret;

	ret = record(DELETE, fd);
	if (ret)
		return ret;
	m = lpm_of(fd);
	i = lpm_find(m, key);
	if (i < 0) {
		errno = ENOENT;
		return -ENOENT;
	}
	m->keys[i] = m->keys[--m->n];
	return 0;
}

/* LPM key of an IPv6 text ("::ffff:10.0.0.0" for IPv4) and prefixlen. */
static struct sm_lpm_key lpm_key(const char *addr, __u32 prefixlen)
{
	struct sm_lpm_key k;

	memset(&k, 0, sizeof(k));
	if (inet_pton(AF_INET6, addr, k.addr) != 1)
		fail_msg("test bug: '%s' is not an IPv6 address", addr);
	k.prefixlen = prefixlen;
	return k;
}

static struct sm_cidr cidr(const char *addr, __u32 prefixlen)
{
	struct sm_lpm_key k = lpm_key(addr, prefixlen);
	struct sm_cidr c;

	memcpy(c.addr, k.addr, sizeof(c.addr));
	c.prefixlen = prefixlen;
	return c;
}

static void lpm_put(int fd, struct sm_lpm_key k)
{
	struct fake_lpm *m = lpm_of(fd);

	m->keys[m->n++] = k;
}

static void expect_lpm_has(int fd, struct sm_lpm_key k, int want)
{
	char s[INET6_ADDRSTRLEN];

	if ((lpm_find(lpm_of(fd), &k) >= 0) != want)
		fail_msg("LPM map fd %d %s %s/%u", fd,
			 want ? "lacks" : "still has",
			 inet_ntop(AF_INET6, k.addr, s, sizeof(s)),
			 k.prefixlen);
}

static const char *call_list(void)
{
	static char buf[4096];
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < n_calls && len < sizeof(buf) - 64; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
					"\n  %s(fd %d)%s",
					fn_names[calls[i].fn], calls[i].fd,
					calls[i].failed ? " FAILED" : "");
	return buf;
}

/* The failing call is the last one made. */
static void expect_stopped_at_fault(int ret)
{
	if (ret != -fault.err)
		fail_msg(
			"returned %d, want %d (-errno of the failing %s #%d); calls:%s",
			ret, -fault.err, fn_names[fault.fn], fault.nth,
			call_list());
	if (!n_calls || !calls[n_calls - 1].failed)
		fail_msg("went on after the failing %s; calls:%s",
			 fn_names[fault.fn], call_list());
}

static int reset(void **state)
{
	(void)state;
	memset(calls, 0, sizeof(calls));
	n_calls = 0;
	memset(n_of, 0, sizeof(n_of));
	memset(batch_values, 0xee, sizeof(batch_values));
	batch_count = 0;
	batch_keys_ok = 0;
	memset(&fault, 0, sizeof(fault));
	memset(lpm, 0, sizeof(lpm));
	lpm[0].fd = FD_CIDRS;
	lpm[1].fd = FD_UNIQUE;

	sm_pins_init(&pins, "/sys/fs/bpf/sm-unit-test");
	pins.map_fds[SM_M_PORTS] = FD_PORTS;
	pins.map_fds[SM_M_CIDRS] = FD_CIDRS;
	pins.map_fds[SM_M_UNIQUE] = FD_UNIQUE;

	/* ports 6379, 8000-8100 minus 8050; cidrs 127/8, ::1; unique 10.244/16 */
	sm_config_defaults(&cfg);
	cfg.ports_all = false;
	cfg.ports[0] = (struct sm_port_range){6379, 6379};
	cfg.ports[1] = (struct sm_port_range){8000, 8100};
	cfg.n_ports = 2;
	cfg.exclude_ports[0] = (struct sm_port_range){8050, 8050};
	cfg.n_exclude_ports = 1;
	cfg.node_unique_cidrs[0] = cidr("::ffff:10.244.0.0", 112);
	cfg.n_node_unique_cidrs = 1;
	return 0;
}

static void test_apply_writes_flags_of_every_port_in_one_batch(void **state)
{
	int ret;

	(void)state;
	ret = sm_pins_fill_policy(&pins, 0, &cfg);
	if (ret)
		fail_msg("returned %d; calls:%s", ret, call_list());
	assert_int_equal(n_of[BATCH], 1);
	assert_int_equal(calls[0].fn, BATCH);
	assert_int_equal(calls[0].fd, FD_PORTS);
	assert_int_equal(batch_count, SM_PORTS_MAX);
	assert_true(batch_keys_ok);
	assert_int_equal(batch_values[0], 0);
	assert_int_equal(batch_values[6378], 0);
	assert_int_equal(batch_values[6379], SM_PORT_INCLUDE);
	assert_int_equal(batch_values[8000], SM_PORT_INCLUDE);
	assert_int_equal(batch_values[8050], SM_PORT_INCLUDE | SM_PORT_EXCLUDE);
	assert_int_equal(batch_values[8100], SM_PORT_INCLUDE);
	assert_int_equal(batch_values[8101], 0);
	assert_int_equal(batch_values[65535], 0);
}

static void test_apply_syncs_lpm_maps_adding_before_deleting(void **state)
{
	struct sm_lpm_key v4 = lpm_key("::ffff:127.0.0.0", 104);
	struct sm_lpm_key lo6 = lpm_key("::1", 128);
	struct sm_lpm_key stale = lpm_key("::ffff:192.168.0.0", 112);
	struct sm_lpm_key uniq = lpm_key("::ffff:10.244.0.0", 112);
	struct sm_lpm_key stale_u = lpm_key("::ffff:10.96.0.0", 108);
	int ret, first_delete = -1, last_update = -1;

	(void)state;
	lpm_put(FD_CIDRS, stale);
	lpm_put(FD_CIDRS, v4); /* already there: kept */
	lpm_put(FD_UNIQUE, stale_u);
	ret = sm_pins_fill_policy(&pins, 0, &cfg);
	if (ret)
		fail_msg("returned %d; calls:%s", ret, call_list());
	expect_lpm_has(FD_CIDRS, v4, 1);
	expect_lpm_has(FD_CIDRS, lo6, 1);
	expect_lpm_has(FD_CIDRS, stale, 0);
	assert_int_equal(lpm[0].n, 2);
	expect_lpm_has(FD_UNIQUE, uniq, 1);
	expect_lpm_has(FD_UNIQUE, stale_u, 0);
	assert_int_equal(lpm[1].n, 1);
	/* the cidrs map is never empty: every add comes before any delete */
	for (int i = 0; i < n_calls; i++) {
		if (calls[i].fd != FD_CIDRS)
			continue;
		if (calls[i].fn == UPDATE)
			last_update = i;
		if (calls[i].fn == DELETE && first_delete < 0)
			first_delete = i;
	}
	if (first_delete < 0 || last_update > first_delete)
		fail_msg("cidrs map: deletes before all adds; calls:%s",
			 call_list());
}

static void test_apply_lpm_keys_have_host_bits_cleared(void **state)
{
	int ret;

	(void)state;
	/* a prefix built by hand with host bits (the parser rejects them) */
	cfg.cidrs[0] = cidr("::ffff:10.1.2.3", 104);
	cfg.n_cidrs = 1;
	ret = sm_pins_fill_policy(&pins, 0, &cfg);
	assert_int_equal(ret, 0);
	assert_int_equal(lpm[0].n, 1);
	expect_lpm_has(FD_CIDRS, lpm_key("::ffff:10.0.0.0", 104), 1);
}

static void test_apply_returns_batch_errno_and_stops(void **state)
{
	(void)state;
	fault.fn = BATCH;
	fault.nth = 1;
	fault.err = E2BIG;
	expect_stopped_at_fault(sm_pins_fill_policy(&pins, 0, &cfg));
	assert_int_equal(n_calls, 1);
}

static void test_apply_returns_cidr_update_errno_and_stops(void **state)
{
	(void)state;
	fault.fn = UPDATE;
	fault.nth = 2; /* the second prefix, ::1/128 */
	fault.err = ENOSPC;
	expect_stopped_at_fault(sm_pins_fill_policy(&pins, 0, &cfg));
	assert_int_equal(n_of[DELETE], 0);
	assert_int_equal(n_of[NEXT_KEY], 0);
}

static void test_apply_returns_unique_update_errno(void **state)
{
	(void)state;
	fault.fn = UPDATE;
	fault.nth = 3; /* 127/8, ::1, then 10.244/16 in sm_unique */
	fault.err = ENOMEM;
	expect_stopped_at_fault(sm_pins_fill_policy(&pins, 0, &cfg));
	assert_int_equal(calls[n_calls - 1].fd, FD_UNIQUE);
	/* sm_cidrs was complete before */
	assert_int_equal(lpm[0].n, 2);
}

static void test_apply_returns_delete_errno_and_stops(void **state)
{
	(void)state;
	lpm_put(FD_CIDRS, lpm_key("::ffff:192.168.0.0", 112));
	fault.fn = DELETE;
	fault.nth = 1;
	fault.err = EPERM;
	expect_stopped_at_fault(sm_pins_fill_policy(&pins, 0, &cfg));
	for (int i = 0; i < n_calls; i++)
		if (calls[i].fd == FD_UNIQUE)
			fail_msg("went on to sm_unique; calls:%s", call_list());
}

static void test_apply_ignores_delete_of_a_key_already_gone(void **state)
{
	int ret;

	(void)state;
	lpm_put(FD_CIDRS, lpm_key("::ffff:192.168.0.0", 112));
	fault.fn = DELETE;
	fault.nth = 1;
	fault.err = ENOENT; /* deleted by someone else meanwhile */
	ret = sm_pins_fill_policy(&pins, 0, &cfg);
	if (ret)
		fail_msg("returned %d, want 0; calls:%s", ret, call_list());
	assert_int_equal(lpm[1].n, 1); /* and sm_unique was synced */
}

/*
 * Walking the map to find stale prefixes: a failure other than ENOENT (the
 * end of the map) is an error like any other, not the end of the walk -
 * else stale prefixes stay, and the caller is told the policy is applied.
 */
static void test_apply_returns_get_next_key_errno(void **state)
{
	struct sm_lpm_key stale = lpm_key("::ffff:192.168.0.0", 112);
	int ret;

	(void)state;
	lpm_put(FD_CIDRS, stale);
	fault.fn = NEXT_KEY;
	fault.nth = 1;
	fault.err = EFAULT;
	ret = sm_pins_fill_policy(&pins, 0, &cfg);
	if (ret != -EFAULT)
		fail_msg(
			"bpf_map_get_next_key failing with EFAULT: returned %d, want %d; the stale 192.168.0.0/16 is %s; calls:%s",
			ret, -EFAULT,
			lpm_find(&lpm[0], &stale) >= 0 ? "still there" : "gone",
			call_list());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(
			test_apply_writes_flags_of_every_port_in_one_batch,
			reset),
		cmocka_unit_test_setup(
			test_apply_syncs_lpm_maps_adding_before_deleting,
			reset),
		cmocka_unit_test_setup(
			test_apply_lpm_keys_have_host_bits_cleared, reset),
		cmocka_unit_test_setup(test_apply_returns_batch_errno_and_stops,
				       reset),
		cmocka_unit_test_setup(
			test_apply_returns_cidr_update_errno_and_stops, reset),
		cmocka_unit_test_setup(test_apply_returns_unique_update_errno,
				       reset),
		cmocka_unit_test_setup(
			test_apply_returns_delete_errno_and_stops, reset),
		cmocka_unit_test_setup(
			test_apply_ignores_delete_of_a_key_already_gone, reset),
		cmocka_unit_test_setup(test_apply_returns_get_next_key_errno,
				       reset),
	};

	return cmocka_run_group_tests_name("pins_errors", tests, NULL, NULL);
}

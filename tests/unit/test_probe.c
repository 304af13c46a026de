// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_probe.c - sm_probe_kernel (cgroupd/lib/probe.c) on a kernel that lacks
 * one feature or another. The libbpf probe functions and the BTF loader
 * are defined here, so probe.o from build/libsmcore.a binds to them (as
 * in test_pins_errors.c): no root, no kernel needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>

#include "probe.h"

static int missing_map = -1, missing_prog = -1, missing_helper = -1;
static int no_btf, btf_without_link, btf_old_kernel, prog_errno;

int libbpf_probe_bpf_map_type(enum bpf_map_type type, const void *opts)
{
	(void)opts;
	return (int)type == missing_map ? 0 : 1;
}

int libbpf_probe_bpf_prog_type(enum bpf_prog_type type, const void *opts)
{
	(void)opts;
	if (prog_errno)
		return -prog_errno;
	return (int)type == missing_prog ? 0 : 1;
}

int libbpf_probe_bpf_helper(enum bpf_prog_type type, enum bpf_func_id id,
			    const void *opts)
{
	(void)type;
	(void)opts;
	return (int)id == missing_helper ? 0 : 1;
}

/*
 * A BTF with what the datapath reads through BTF: sk_msg_md.sk and
 * bpf_sock_ops.skb_data inside anonymous unions (as __bpf_md_ptr() makes
 * them), sk_psock.msg_tot_len, bpf_cgroup_link unless told, and the
 * optional sock_cgroup_data.cgroup, kfuncs bpf_cast_to_kern_ctx and
 * bpf_rdonly_cast, tcp_bpf_ioctl and what the reader and splice traces
 * need unless told (btf_old_kernel: 5.10).
 */
static struct btf *fake_btf(void)
{
	struct btf *btf = btf__new_empty();
	int int_id = btf__add_int(btf, "int", 4, BTF_INT_SIGNED), u;

	u = btf__add_union(btf, NULL, 8);
	btf__add_field(btf, "sk", int_id, 0, 0);
	btf__add_struct(btf, "sk_msg_md", 8);
	btf__add_field(btf, "size", int_id, 0, 0);
	btf__add_field(btf, NULL, u, 64, 0);
	u = btf__add_union(btf, NULL, 8);
	btf__add_field(btf, "skb_data", int_id, 0, 0);
	btf__add_struct(btf, "bpf_sock_ops", 8);
	btf__add_field(btf, NULL, u, 0, 0);
	btf__add_struct(btf, "sk_psock", 4);
	btf__add_field(btf, "ingress_msg", int_id, 0, 0);
	if (!btf_without_link) {
		btf__add_struct(btf, "bpf_cgroup_link", 4);
		btf__add_field(btf, "x", int_id, 0, 0);
	}
	if (!btf_old_kernel) {
		/* the reader trace: trampolines, the function, 5.11 storage */
		btf__add_struct(btf, "bpf_trampoline", 4);
		btf__add_field(btf, "x", int_id, 0, 0);
		btf__add_func(btf, "tcp_bpf_recvmsg", BTF_FUNC_STATIC,
			      btf__add_func_proto(btf, int_id));
		btf__add_func(btf, "bpf_sk_storage_get_tracing",
			      BTF_FUNC_STATIC,
			      btf__add_func_proto(btf, int_id));
		btf__add_func(btf, "tcp_splice_read", BTF_FUNC_GLOBAL,
			      btf__add_func_proto(btf, int_id));
	}
	btf__add_struct(btf, "sock_cgroup_data", 8);
	if (btf_old_kernel) {
		btf__add_field(btf, "val", int_id, 0, 0); /* 5.10 */
	} else {
		btf__add_field(btf, "cgroup", int_id, 0, 0);
		/* a function's proto comes after: fields above are done */
		btf__add_func(btf, "bpf_cast_to_kern_ctx", BTF_FUNC_GLOBAL,
			      btf__add_func_proto(btf, int_id));
		btf__add_func(btf, "bpf_rdonly_cast", BTF_FUNC_GLOBAL,
			      btf__add_func_proto(btf, int_id));
		btf__add_func(btf, "tcp_bpf_ioctl", BTF_FUNC_STATIC,
			      btf__add_func_proto(btf, int_id));
	}
	return btf;
}

struct btf *btf__load_vmlinux_btf(void)
{
	if (no_btf) {
		errno = ENOENT;
		return NULL;
	}
	return fake_btf();
}

static int reset(void **state)
{
	(void)state;
	missing_map = missing_prog = missing_helper = -1;
	no_btf = btf_without_link = btf_old_kernel = prog_errno = 0;
	return 0;
}

static void test_all_present(void **state)
{
	char msg[512];
	__u32 feat;

	(void)state;
	assert_int_equal(sm_probe_kernel(&feat, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	assert_int_equal(feat, SM_FEAT_ALL);
	assert_string_equal(sm_probe_skmsg(feat), "sm_skmsg");
}

static void expect_missing(const char *what)
{
	char msg[512];
	__u32 feat;

	assert_int_equal(sm_probe_kernel(&feat, msg, sizeof(msg)), -EOPNOTSUPP);
	if (!strstr(msg, what))
		fail_msg("'%s' not named in: %s", what, msg);
}

static void test_no_sockhash(void **state)
{
	(void)state;
	missing_map = BPF_MAP_TYPE_SOCKHASH;
	expect_missing("sockhash maps");
}

static void test_no_sk_msg(void **state)
{
	(void)state;
	missing_prog = BPF_PROG_TYPE_SK_MSG;
	expect_missing("sk_msg programs");
}

static void test_no_sock_ops(void **state)
{
	(void)state;
	missing_prog = BPF_PROG_TYPE_SOCK_OPS;
	expect_missing("sock_ops programs");
}

/* 5.10-5.14: no netns cookie in sock_ops; the variant reads the inode */
static void test_no_netns_cookie_is_a_variant(void **state)
{
	char msg[512];
	__u32 feat;

	(void)state;
	missing_helper = BPF_FUNC_get_netns_cookie;
	assert_int_equal(sm_probe_kernel(&feat, msg, sizeof(msg)), 0);
	assert_int_equal(feat, SM_FEAT_ALL & ~SM_FEAT_NETNS_COOKIE);
}

/* before 6.2 / 5.15: no kfunc, no cgroup pointer; the window variant */
static void test_old_kernel_gets_the_window_variant(void **state)
{
	struct sm_rule r[SM_RULES_NR];
	char msg[512];
	__u32 feat;

	(void)state;
	btf_old_kernel = 1;
	assert_int_equal(sm_probe_kernel(&feat, msg, sizeof(msg)), 0);
	assert_int_equal(feat, SM_FEAT_NETNS_COOKIE);
	assert_string_equal(sm_probe_skmsg(feat), "sm_skmsg_win");
	/* every rule but netns scope differs, and FIONREAD is named */
	sm_datapath_rules(feat, r);
	for (int i = 0; i < SM_RULES_NR; i++)
		if (strcmp(r[i].name, "netns_scope"))
			assert_non_null(r[i].lacks);
	assert_string_equal(r[4].name, "fionread");
	assert_non_null(strstr(r[4].lacks, "tcp_bpf_ioctl()"));
	assert_string_equal(r[5].name, "splice_readers");
	assert_string_equal(r[5].way, "not seen");
	sm_datapath_rules(SM_FEAT_ALL, r);
	for (int i = 0; i < SM_RULES_NR; i++)
		assert_null(r[i].lacks);
}

static void test_no_storage_in_sk_msg(void **state)
{
	(void)state;
	missing_helper = BPF_FUNC_sk_storage_get;
	expect_missing("socket storage in sk_msg");
	expect_missing("socket storage in sock_ops");
}

static void test_no_btf_pointer_access(void **state)
{
	(void)state;
	missing_helper = BPF_FUNC_skc_to_tcp_sock;
	expect_missing("BTF pointer access");
}

static void test_no_cgroup_links(void **state)
{
	(void)state;
	btf_without_link = 1;
	expect_missing("cgroup BPF links");
}

static void test_no_btf_names_it_and_what_needs_it(void **state)
{
	(void)state;
	no_btf = 1;
	expect_missing("kernel BTF (/sys/kernel/btf/vmlinux)");
	expect_missing("cgroup BPF links");
}

/* Without CAP_BPF the probes fail with EPERM: say so, do not blame the
 * kernel. */
static void test_no_permission_is_not_a_missing_feature(void **state)
{
	char msg[512];

	(void)state;
	prog_errno = EPERM;
	__u32 feat;

	assert_int_equal(sm_probe_kernel(&feat, msg, sizeof(msg)), -EPERM);
	if (!strstr(msg, "Operation not permitted") || !strstr(msg, "CAP_BPF"))
		fail_msg("the permission is not named in: %s", msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_all_present, reset),
		cmocka_unit_test_setup(test_no_sockhash, reset),
		cmocka_unit_test_setup(test_no_sk_msg, reset),
		cmocka_unit_test_setup(test_no_sock_ops, reset),
		cmocka_unit_test_setup(test_no_netns_cookie_is_a_variant,
				       reset),
		cmocka_unit_test_setup(test_old_kernel_gets_the_window_variant,
				       reset),
		cmocka_unit_test_setup(test_no_storage_in_sk_msg, reset),
		cmocka_unit_test_setup(test_no_btf_pointer_access, reset),
		cmocka_unit_test_setup(test_no_cgroup_links, reset),
		cmocka_unit_test_setup(test_no_btf_names_it_and_what_needs_it,
				       reset),
		cmocka_unit_test_setup(
			test_no_permission_is_not_a_missing_feature, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * probe.c - kernel features, probed the way libbpf does (it loads a tiny
 * program or creates a tiny map of each kind), plus the kernel's own BTF
 * for what the programs read through BTF pointers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "probe.h"

enum { P_MAP, P_PROG, P_HELPER, P_BTF_TYPE, P_BTF_MEMBER };

/* Every feature once: what is probed and how it is named to the user. */
static const struct feature {
	int kind;
	int type;   /* map or program type */
	int helper; /* for P_HELPER */
	const char *btf_struct, *btf_member;
	const char *name;
} features[] = {
	{P_MAP, BPF_MAP_TYPE_SOCKHASH, 0, NULL, NULL, "sockhash maps"},
	{P_MAP, BPF_MAP_TYPE_SK_STORAGE, 0, NULL, NULL,
	 "socket storage (sk_storage) maps"},
	{P_MAP, BPF_MAP_TYPE_LPM_TRIE, 0, NULL, NULL, "LPM trie maps"},
	{P_PROG, BPF_PROG_TYPE_SK_MSG, 0, NULL, NULL, "sk_msg programs"},
	{P_PROG, BPF_PROG_TYPE_SOCK_OPS, 0, NULL, NULL, "sock_ops programs"},
	{P_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, NULL, NULL,
	 "bpf_msg_redirect_hash()"},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, NULL,
	 NULL, "netns cookies in sock_ops (bpf_get_netns_cookie)"},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_skc_to_tcp_sock, NULL, NULL,
	 "BTF pointer access to TCP sockets (bpf_skc_to_tcp_sock)"},
	{P_BTF_TYPE, 0, 0, "bpf_cgroup_link", NULL, "cgroup BPF links"},
	{P_BTF_MEMBER, 0, 0, "sock", "sk_cgrp_data",
	 "the socket's cgroup in BTF (struct sock.sk_cgrp_data)"},
};

static int btf_has(const struct btf *btf, const char *st, const char *member)
{
	const struct btf_type *t;
	const struct btf_member *m;
	int id;

	if (!btf)
		return 0;
	id = btf__find_by_name_kind(btf, st, BTF_KIND_STRUCT);
	if (id < 0)
		return 0;
	if (!member)
		return 1;
	t = btf__type_by_id(btf, id);
	m = btf_members(t);
	for (int i = 0; i < btf_vlen(t); i++)
		if (!strcmp(btf__name_by_offset(btf, m[i].name_off), member))
			return 1;
	return 0;
}

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/*
 * The capabilities the datapath's bpf() calls need, as the kernel checks
 * them (CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON). Without them
 * the feature probes fail as if the kernel lacked the features, so they are
 * checked first. 0, or -EPERM with the missing ones named in @msg.
 */
static int caps_check(char *msg, size_t len)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {};
	static const struct {
		int cap, or_cap;
		const char *name;
	} need[] = {
		{CAP_BPF, CAP_SYS_ADMIN, "CAP_BPF"},
		{CAP_NET_ADMIN, -1, "CAP_NET_ADMIN"},
		{CAP_PERFMON, CAP_SYS_ADMIN, "CAP_PERFMON"},
	};
	size_t used = 0;

	if (syscall(SYS_capget, &hdr, data))
		return 0; /* cannot tell: let the probes speak */
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		int c = need[i].cap, o = need[i].or_cap;

		if (data[c / 32].effective & (1U << (c % 32)))
			continue;
		if (o >= 0 && (data[o / 32].effective & (1U << (o % 32))))
			continue;
		if (!used)
			used = snprintf(msg, len,
					"Operation not permitted: sockmeshd "
					"needs CAP_BPF, CAP_NET_ADMIN and "
					"CAP_PERFMON (sockmeshd(8)); missing:");
		if (used < len)
			used += snprintf(msg + used, len - used, " %s",
					 need[i].name);
	}
	return used ? -EPERM : 0;
}

int sm_probe_kernel(char *missing, size_t len)
{
	struct btf *btf = btf__load_vmlinux_btf();
	size_t used = 0;
	int ok, n_missing = 0;

	if (len)
		missing[0] = '\0';
	if (caps_check(missing, len)) {
		btf__free(btf);
		return -EPERM;
	}
	if (!btf) {
		snprintf(missing, len, "kernel BTF (/sys/kernel/btf/vmlinux)");
		n_missing++;
		used = strlen(missing);
	}
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		const struct feature *f = &features[i];

		switch (f->kind) {
		case P_MAP:
			ok = libbpf_probe_bpf_map_type(f->type, NULL);
			break;
		case P_PROG:
			ok = libbpf_probe_bpf_prog_type(f->type, NULL);
			break;
		case P_HELPER:
			ok = libbpf_probe_bpf_helper(f->type, f->helper, NULL);
			break;
		default:
			ok = btf_has(btf, f->btf_struct, f->btf_member);
		}
		if (ok == -EPERM || ok == -EACCES) {
			/* not the kernel: this process may not use bpf() */
			snprintf(missing, len,
				 "probing %s: %s: sockmeshd needs CAP_BPF, "
				 "CAP_NET_ADMIN and CAP_PERFMON (sockmeshd(8))",
				 f->name, strerror(-ok));
			btf__free(btf);
			return -EPERM;
		}
		if (ok == 1)
			continue;
		if (used < len)
			used += snprintf(missing + used, len - used, "%s%s",
					 n_missing ? ", " : "", f->name);
		n_missing++;
	}
	btf__free(btf);
	return n_missing ? -EOPNOTSUPP : 0;
}

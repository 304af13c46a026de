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

enum { P_MAP, P_PROG, P_HELPER, P_BTF_TYPE, P_BTF_MEMBER, P_BTF_FUNC };

/*
 * Every feature once: what is probed, how it is named to the user (with the
 * upstream release that added it: distributions backport, so the probe
 * decides, never the version), and for those the datapath can do without,
 * its SM_FEAT_* bit (SM_DATAPATH_RULES in probe.h says what then differs).
 */
static const struct feature {
	int kind;
	int type;   /* map or program type */
	int helper; /* for P_HELPER */
	const char *btf_struct, *btf_member;
	const char *name;
	__u32 feat; /* 0: required */
} features[] = {
	{P_MAP, BPF_MAP_TYPE_SOCKHASH, 0, NULL, NULL, "sockhash maps (4.18)",
	 0},
	{P_MAP, BPF_MAP_TYPE_SK_STORAGE, 0, NULL, NULL,
	 "socket storage (sk_storage) maps (5.2)", 0},
	{P_MAP, BPF_MAP_TYPE_LPM_TRIE, 0, NULL, NULL, "LPM trie maps", 0},
	{P_PROG, BPF_PROG_TYPE_SK_MSG, 0, NULL, NULL, "sk_msg programs", 0},
	{P_PROG, BPF_PROG_TYPE_SOCK_OPS, 0, NULL, NULL, "sock_ops programs", 0},
	{P_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, NULL, NULL,
	 "bpf_msg_redirect_hash()", 0},
	{P_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, NULL, NULL,
	 "socket storage in sk_msg (bpf_sk_storage_get)", 0},
	{P_HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_skc_to_tcp_sock, NULL, NULL,
	 "BTF pointer access to TCP sockets in sk_msg (bpf_skc_to_tcp_sock, "
	 "5.9)",
	 0},
	{P_BTF_MEMBER, 0, 0, "sk_msg_md", "sk",
	 "the socket in sk_msg (sk_msg_md.sk)", 0},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, NULL, NULL,
	 "socket storage in sock_ops (bpf_sk_storage_get)", 0},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update, NULL,
	 NULL, "bpf_sock_hash_update()", 0},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_skc_to_tcp_sock, NULL, NULL,
	 "BTF pointer access to TCP sockets (bpf_skc_to_tcp_sock, 5.9)", 0},
	{P_BTF_MEMBER, 0, 0, "bpf_sock_ops", "skb_data",
	 "TCP header-option callbacks in sock_ops (5.10)", 0},
	{P_BTF_MEMBER, 0, 0, "sk_psock", "ingress_msg",
	 "the psock in BTF (struct sk_psock.ingress_msg)", 0},
	{P_BTF_TYPE, 0, 0, "bpf_cgroup_link", NULL, "cgroup BPF links (5.7)",
	 0},
	{P_HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie, NULL,
	 NULL, "netns cookies in sock_ops (bpf_get_netns_cookie, 5.15)",
	 SM_FEAT_NETNS_COOKIE},
	{P_BTF_FUNC, 0, 0, "bpf_cast_to_kern_ctx", NULL,
	 "the kfunc bpf_cast_to_kern_ctx (6.2)", SM_FEAT_KERN_CTX},
	{P_BTF_FUNC, 0, 0, "bpf_rdonly_cast", NULL,
	 "the kfunc bpf_rdonly_cast (6.2)", SM_FEAT_KERN_CTX},
	{P_BTF_MEMBER, 0, 0, "sock_cgroup_data", "cgroup",
	 "the socket's cgroup in BTF (struct sock_cgroup_data.cgroup, 5.15)",
	 SM_FEAT_CG_BTF},
	/* the window variant's reader trace: an fexit program on the
	 * receive path of sockmap sockets, with socket storage (5.11); and
	 * the splice() reader trace, the same with fentry */
	{P_BTF_FUNC, 0, 0, "tcp_bpf_recvmsg", NULL, "tcp_bpf_recvmsg() in BTF",
	 SM_FEAT_RECV_TRACE},
	{P_BTF_FUNC, 0, 0, "bpf_sk_storage_get_tracing", NULL,
	 "socket storage in fexit programs (5.11)", SM_FEAT_RECV_TRACE},
	{P_BTF_FUNC, 0, 0, "tcp_splice_read", NULL, "tcp_splice_read() in BTF",
	 SM_FEAT_RECV_TRACE},
	/* fexit needs trampolines (5.5); libbpf cannot probe the program
	 * type without a target */
	{P_BTF_TYPE, 0, 0, "bpf_trampoline", NULL, "BPF trampolines (5.5)",
	 SM_FEAT_RECV_TRACE},
	/* not the datapath's: what FIONREAD of an accelerated socket counts */
	{P_BTF_FUNC, 0, 0, "tcp_bpf_ioctl", NULL,
	 "tcp_bpf_ioctl(): FIONREAD of sockets in a sockmap (6.8)",
	 SM_FEAT_SIOCINQ},
};

/* Has struct or union @t a member @name, at its top or in an anonymous
 * member (as __bpf_md_ptr() makes them)? */
static int btf_member_in(const struct btf *btf, const struct btf_type *t,
			 const char *name, int depth)
{
	const struct btf_member *m = btf_members(t);
	const struct btf_type *mt;

	for (int i = 0; i < btf_vlen(t); i++) {
		const char *n = btf__name_by_offset(btf, m[i].name_off);

		if (n && !strcmp(n, name))
			return 1;
		if (n && *n)
			continue;
		mt = btf__type_by_id(btf, m[i].type);
		while (mt && (btf_is_mod(mt) || btf_is_typedef(mt)))
			mt = btf__type_by_id(btf, mt->type);
		if (mt && btf_is_composite(mt) && depth < 4 &&
		    btf_member_in(btf, mt, name, depth + 1))
			return 1;
	}
	return 0;
}

static int btf_has(const struct btf *btf, const char *st, const char *member)
{
	int id;

	if (!btf)
		return 0;
	id = btf__find_by_name_kind(btf, st, BTF_KIND_STRUCT);
	if (id < 0)
		return 0;
	return !member ||
	       btf_member_in(btf, btf__type_by_id(btf, id), member, 0);
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

void sm_datapath_rules(__u32 feat, struct sm_rule r[SM_RULES_NR])
{
	static const char kctx[] = "bpf_cast_to_kern_ctx() (6.2)";
	int k = !!(feat & SM_FEAT_KERN_CTX);

	r[0].name = "receiver_behind";
	if (k)
		r[0] = (struct sm_rule){r[0].name, "receiver's queue", NULL};
	else if (feat & SM_FEAT_RECV_TRACE)
		r[0] = (struct sm_rule){r[0].name, "window, reads traced",
					kctx};
	else
		r[0] = (struct sm_rule){
			r[0].name, "window, reported at the receiver's writes",
			"bpf_cast_to_kern_ctx() (6.2) and socket storage in "
			"fexit programs (5.11)"};
	r[1] = (struct sm_rule){"small_write_switch",
				k ? "once the receiver has read" : "at once",
				k ? NULL : kctx};
	r[2] = (struct sm_rule){
		"netns_scope",
		feat & SM_FEAT_NETNS_COOKIE ? "netns cookie"
					    : "netns inode number",
		feat & SM_FEAT_NETNS_COOKIE
			? NULL
			: "bpf_get_netns_cookie() in sock_ops (5.15)"};
	r[3] = (struct sm_rule){
		"cgroup_counters", feat & SM_FEAT_CG_BTF ? "per cgroup" : "off",
		feat & SM_FEAT_CG_BTF ? NULL
				      : "the socket's cgroup in BTF, "
					"sock_cgroup_data.cgroup (5.15)"};
	/* the kernel's, not a rule of ours: docs/compat.md says what an
	 * application sees */
	r[4] = (struct sm_rule){
		"fionread",
		feat & SM_FEAT_SIOCINQ ? "counts redirected bytes"
				       : "misses redirected bytes",
		feat & SM_FEAT_SIOCINQ ? NULL
				       : "tcp_bpf_ioctl(), FIONREAD of "
					 "sockets in a sockmap (6.8)"};
	r[5] = (struct sm_rule){
		"splice_readers",
		feat & SM_FEAT_RECV_TRACE ? "seen at their first splice()"
					  : "not seen",
		feat & SM_FEAT_RECV_TRACE
			? NULL
			: "tracing programs with socket storage (fentry on "
			  "tcp_splice_read(), 5.11), or they were refused"};
}

const char *sm_probe_skmsg(__u32 feat)
{
	return feat & SM_FEAT_KERN_CTX ? "sm_skmsg" : "sm_skmsg_win";
}

int sm_probe_kernel(__u32 *feat, char *missing, size_t len)
{
	struct btf *btf = btf__load_vmlinux_btf();
	size_t used = 0;
	int ok, n_missing = 0;

	*feat = SM_FEAT_ALL;
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
		case P_BTF_FUNC: /* a kfunc is a function in the kernel's BTF */
			ok = btf && btf__find_by_name_kind(btf, f->btf_struct,
							   BTF_KIND_FUNC) > 0;
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
		if (f->feat) {
			*feat &= ~f->feat;
			continue;
		}
		if (used < len)
			used += snprintf(missing + used, len - used, "%s%s",
					 n_missing ? ", " : "", f->name);
		n_missing++;
	}
	btf__free(btf);
	return n_missing ? -EOPNOTSUPP : 0;
}

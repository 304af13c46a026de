/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* probe.h - does this kernel have what the datapath needs? */
#ifndef SM_PROBE_H
#define SM_PROBE_H

#include <stddef.h>
#include <linux/types.h>

#include "sockmesh.h"

/*
 * The rules whose way of working depends on the kernel: X(FEAT, RULE,
 * WITH, WITHOUT, NEEDS). RULE is the name status, --json and the metrics
 * show; WITH what it does when the kernel has SM_FEAT_* FEAT (NEEDS, with
 * the release that added it upstream), WITHOUT what it does instead.
 * docs/datapath.md, "Kernels", says the same at length.
 */
#define SM_DATAPATH_RULES(X)                                                 \
	X(SM_FEAT_KERN_CTX, "receiver_behind", "receiver's queue",           \
	  "reported window", "bpf_cast_to_kern_ctx() (6.2)")                 \
	X(SM_FEAT_KERN_CTX, "small_write_switch",                            \
	  "once the receiver has read", "at once",                           \
	  "bpf_cast_to_kern_ctx() (6.2)")                                    \
	X(SM_FEAT_NETNS_COOKIE, "netns_scope", "netns cookie",               \
	  "netns inode number", "bpf_get_netns_cookie() in sock_ops (5.15)") \
	X(SM_FEAT_CG_BTF, "cgroup_counters", "per cgroup", "off",            \
	  "the socket's cgroup in BTF, sock_cgroup_data.cgroup (5.15)")

/*
 * Probe every kernel feature the datapath uses. 0 if all it cannot do
 * without are there, with the SM_FEAT_* the kernel has in @feat;
 * -EOPNOTSUPP with the missing ones named in @missing (comma list), or
 * -EPERM when this process may not probe (a capability is missing), said
 * in @missing.
 */
int sm_probe_kernel(__u32 *feat, char *missing, size_t len);

/* The SK_MSG program the datapath runs with @feat (its pin is sm_skmsg). */
const char *sm_probe_skmsg(__u32 feat);

#endif

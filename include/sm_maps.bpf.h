/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sm_maps.bpf.h - the maps of the datapath, for BPF programs only.
 *
 * sockops.bpf.c defines them (SM_MAPS_DEFINE); skmsg.bpf.c sees them extern,
 * and `bpftool gen object` links both objects so that each map exists once.
 */
#ifndef SM_MAPS_BPF_H
#define SM_MAPS_BPF_H

#include <bpf/bpf_core_read.h>

#include "sockmesh.h"

#ifdef SM_MAPS_DEFINE
#define SM_MAP
#else
#define SM_MAP extern
#endif

/*
 * struct sm_key -> socket. Only sockets that policy selected: every socket in
 * here pays the SK_MSG program on each sendmsg(). max_entries is set from
 * max_sockets by sockmeshd before load.
 */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SM_SOCKETS_DEFAULT);
	__type(key, struct sm_key);
	__type(value, __u64);
} sm_sockhash SEC(".maps");

/* socket -> struct sm_sock_state: its peer's key and its direction flags. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sm_sock_state);
} sm_state SEC(".maps");

/* 0 -> struct sm_counters, one per CPU; summed by `sockmesh status`. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_counters);
} sm_counters SEC(".maps");

/* port (host byte order) -> SM_PORT_* flags; filled from ports/exclude_ports. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_PORTS_MAX);
	__type(key, __u32);
	__type(value, __u8);
} sm_ports SEC(".maps");

/* struct sm_lpm_key -> 1: prefixes from cidrs, both ends must match. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SM_CIDRS_MAX);
	__type(key, struct sm_lpm_key);
	__type(value, __u8);
} sm_cidrs SEC(".maps");

/* struct sm_lpm_key -> 1: node_unique_cidrs; both ends match -> netns 0. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SM_CIDRS_MAX);
	__type(key, struct sm_lpm_key);
	__type(value, __u8);
} sm_unique SEC(".maps");

/* 0 -> struct sm_ctl: SM_CTL_DRAIN once unload began. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_ctl);
} sm_ctl SEC(".maps");

/* slot -> struct sm_flow: per-connection run of small messages. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_FLOWS);
	__type(key, __u32);
	__type(value, struct sm_flow);
} sm_flows SEC(".maps");

/* sk_user_data of a socket in a sockmap is its psock, with flag bits. */
#define SM_SK_USER_DATA_PTRMASK (~7UL)

/* The psock of @sk, or NULL if it has none; read with BPF_CORE_READ. */
static __always_inline struct sk_psock *sm_psock_of(struct sock *sk)
{
	unsigned long ud = (unsigned long)BPF_CORE_READ(sk, sk_user_data);

	return (struct sk_psock *)(ud & SM_SK_USER_DATA_PTRMASK);
}

static __always_inline struct sm_counters *sm_counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sm_counters, &zero);
}

#endif /* SM_MAPS_BPF_H */

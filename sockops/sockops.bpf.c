// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockops.bpf.c - select established TCP sockets and record them.
 *
 * Runs for every TCP socket of the processes in the cgroups sockmeshd
 * attached it to. Policy is decided here, once, at establishment: a socket
 * that is selected goes into sm_sockhash with its peer's key in sm_state, so
 * that the per-message program only looks up and redirects.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define SM_MAPS_DEFINE
#include "sm_maps.bpf.h"

#define AF_INET	 2
#define AF_INET6 10

/* sock_ops programs return 1; the value is not a verdict for these ops. */
#define SM_SOCKOPS_DONE 1

/* Fill @key from the socket's own view; 0 if it is not IPv4 or IPv6. */
static __always_inline int sm_key_build(struct bpf_sock_ops *skops,
					struct sm_key *key)
{
	switch (skops->family) {
	case AF_INET:
		sm_addr_from_v4(key->local_ip, skops->local_ip4);
		sm_addr_from_v4(key->remote_ip, skops->remote_ip4);
		break;
	case AF_INET6:
		key->local_ip[0] = skops->local_ip6[0];
		key->local_ip[1] = skops->local_ip6[1];
		key->local_ip[2] = skops->local_ip6[2];
		key->local_ip[3] = skops->local_ip6[3];
		key->remote_ip[0] = skops->remote_ip6[0];
		key->remote_ip[1] = skops->remote_ip6[1];
		key->remote_ip[2] = skops->remote_ip6[2];
		key->remote_ip[3] = skops->remote_ip6[3];
		break;
	default:
		return 0;
	}
	/* local_port is host byte order; remote_port is network byte order */
	key->local_port = skops->local_port;
	key->remote_port = bpf_ntohl(skops->remote_port);
	return 1;
}

/*
 * Policy lookups read the generation sockmeshd flipped last (struct sm_ctl):
 * reload fills the idle generation completely, then flips.
 */
static __always_inline int sm_addr_in(void *lpm, const __u32 addr[4])
{
	struct sm_lpm_key k = {.prefixlen = 128};

	if (sm_policy_gen())
		lpm = lpm == (void *)&sm_cidrs ? (void *)&sm_cidrs1
					       : (void *)&sm_unique1;
	__builtin_memcpy(k.addr, addr, sizeof(k.addr));
	return bpf_map_lookup_elem(lpm, &k) != NULL;
}

static __always_inline __u8 sm_port_flags(__u32 port)
{
	__u8 *flags = bpf_map_lookup_elem(
		sm_policy_gen() ? (void *)&sm_ports1 : (void *)&sm_ports,
		&port);

	return flags ? *flags : 0;
}

/*
 * Not ours: sockets with an upper layer protocol (kTLS, MPTCP subflows),
 * and MSG_ZEROCOPY senders (SO_ZEROCOPY set), whose completions arrive only
 * for bytes that went through the stack.
 */
static __always_inline int sm_sk_unsuitable(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	return !tp || tp->inet_conn.icsk_ulp_ops ||
	       (tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags &
		(1UL << SOCK_ZEROCOPY));
}

SEC("sockops")
int sm_sockops(struct bpf_sock_ops *skops)
{
	struct sm_key key = {};
	struct sm_sock_state *st;
	struct sm_counters *c;
	struct sm_flow *flow;
	struct bpf_sock *sk;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return SM_SOCKOPS_DONE;
	c = sm_counters_get();
	sk = skops->sk;
	if (!c || !sk)
		return SM_SOCKOPS_DONE;

	if (!sm_key_build(skops, &key) ||
	    !sm_ports_select(sm_port_flags(key.local_port),
			     sm_port_flags(key.remote_port)) ||
	    !sm_addr_in(&sm_cidrs, key.local_ip) ||
	    !sm_addr_in(&sm_cidrs, key.remote_ip) || sm_sk_unsuitable(sk)) {
		c->sockets_skipped++;
		return SM_SOCKOPS_DONE;
	}
	/* node-unique on both ends: the tuple names one socket pair host-wide */
	if (!sm_addr_in(&sm_unique, key.local_ip) ||
	    !sm_addr_in(&sm_unique, key.remote_ip))
		key.netns = bpf_get_netns_cookie(skops);

	/* state first: a socket in the map always has its peer key */
	st = bpf_sk_storage_get(&sm_state, sk, NULL,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		c->sockets_add_failed++;
		return SM_SOCKOPS_DONE;
	}
	sm_key_peer(&st->peer, &key);
	/*
	 * Data sent before establishment (TCP Fast Open: in the SYN, or by a
	 * fast-open server before the final ACK) took the stack: this
	 * direction stays there, or later redirected bytes would overtake it.
	 */
	st->flags = 0;
	if (skops->data_segs_out) {
		st->flags = SM_SF_STACK;
		c->early_data++;
	}
	st->dir = skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
	st->cg_slot = sm_cg_slot(sk);
	st->conn = sm_conn_id(st->dir ? &st->peer : &key);
	st->flow = (__u32)st->conn & (SM_FLOWS - 1);
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (flow && flow->conn != st->conn) {
		/* a new connection takes the slot; the active end comes first */
		flow->conn = st->conn;
		flow->last_dir = 0;
		flow->run = 0;
	}

	if (bpf_sock_hash_update(skops, &sm_sockhash, &key, BPF_NOEXIST)) {
		bpf_sk_storage_delete(&sm_state, sk);
		c->sockets_add_failed++;
		return SM_SOCKOPS_DONE;
	}
	c->sockets_added++;
	sm_cg_count(st, SM_CG_sockets_added, 1);
	return SM_SOCKOPS_DONE;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/*
 * socket -> struct sm_sock_state, for each socket sock_ops recorded: its
 * peer's key, the connection id and its sm_flows slot, its direction and
 * SM_SF_* flags, rcv_nxt at establishment, the callbacks it asked for, its
 * cgroup's counter slot. Outlives the socket's time in the map (SM_SF_LEFT).
 */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sm_sock_state);
} sm_state SEC(".maps");

/*
 * listening socket -> its own address, recorded at listen() (sockops.bpf.c,
 * rule 9). BPF_F_CLONE: each socket the listener accepts is born with a
 * copy, which tells its accepted end, at establishment, which listener it
 * came from: under compat = strict a blocking listener's connections stay
 * on TCP (rule 4). The accepted end drops its copy there.
 */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, __u64);
} sm_listen SEC(".maps");

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

/*
 * 0 -> struct sm_ctl, written by sockmeshd: SM_CTL_DRAIN once unload began,
 * SM_CTL_FAST for compat = fast, the policy generation sock_ops reads,
 * short_conn_msgs, small_write_gap_us, the features it was loaded with.
 */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_ctl);
} sm_ctl SEC(".maps");

/*
 * slot (the connection id's low bits) -> struct sm_flow: the one place
 * both ends of a connection see. Pairing (what the connecting end reached),
 * each direction's stack, leave and redirect state, the run of small
 * writes, kTLS and strict verdicts, the window variant's figures. A slot
 * another connection took is left alone (sm_flow.conn is not ours).
 */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_FLOWS);
	__type(key, __u32);
	__type(value, struct sm_flow);
} sm_flows SEC(".maps");

/* SM_FEAT_* of the kernel, set by sockmeshd (defined in sockops.bpf.c) */
#ifdef SM_MAPS_DEFINE
const volatile __u32 sm_feat = 0;
#else
extern const volatile __u32 sm_feat;
#endif

#define SOCK_RCVBUF_LOCK 2 /* sk_userlocks: SO_RCVBUF was set */

/* sk_user_data of a socket in a sockmap is its psock, with flag bits. */
#define SM_SK_USER_DATA_PTRMASK (~7UL)

/* The psock of @sk, or NULL if it has none; read with BPF_CORE_READ. */
static __always_inline struct sk_psock *sm_psock_of(struct sock *sk)
{
	unsigned long ud = (unsigned long)BPF_CORE_READ(sk, sk_user_data);

	return (struct sk_psock *)(ud & SM_SK_USER_DATA_PTRMASK);
}

/*
 * Bytes redirected to the socket of @psock that its reader has not taken:
 * psock->msg_tot_len where the kernel keeps it (6.9 and later, for
 * FIONREAD); before, the sum over its queue of redirected messages, walked
 * up to SM_PSOCK_WALK of them (more: reported as ~0, "far behind").
 */
#define SM_PSOCK_WALK 32
static __always_inline __u32 sm_psock_unread(struct sk_psock *psock)
{
	struct list_head *head, *pos;
	struct sk_msg *m;
	__u32 sum = 0;

	if (!psock)
		return 0;
	if (bpf_core_field_exists(psock->msg_tot_len))
		return BPF_CORE_READ(psock, msg_tot_len);
	head = &psock->ingress_msg;
	pos = BPF_CORE_READ(psock, ingress_msg.next);
	for (int i = 0; i < SM_PSOCK_WALK; i++) {
		if (!pos || pos == head)
			return sum;
		m = (struct sk_msg *)((char *)pos -
				      bpf_core_field_offset(struct sk_msg,
							    list));
		sum += BPF_CORE_READ(m, sg.size);
		pos = BPF_CORE_READ(pos, next);
	}
	return ~0U;
}

/* Generation 1 of the policy maps (sm_ctl.policy_gen = 1 selects them). */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_PORTS_MAX);
	__type(key, __u32);
	__type(value, __u8);
} sm_ports1 SEC(".maps");

SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SM_CIDRS_MAX);
	__type(key, struct sm_lpm_key);
	__type(value, __u8);
} sm_cidrs1 SEC(".maps");

SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SM_CIDRS_MAX);
	__type(key, struct sm_lpm_key);
	__type(value, __u8);
} sm_unique1 SEC(".maps");

/* cgroup id -> slot (1..SM_CG_SLOTS-1): one per configured cgroup. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_CG_SLOTS);
	__type(key, __u64);
	__type(value, __u16);
} sm_cgslots SEC(".maps");

/* slot -> struct sm_cg_counters, one per CPU; summed by `sockmesh status`. */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SM_CG_SLOTS);
	__type(key, __u32);
	__type(value, struct sm_cg_counters);
} sm_cgcounters SEC(".maps");

/* server port and netns -> struct sm_portstat (sockmesh.h, "Short
 * connections"; sm_portstat_slot() in sockops.bpf.c). */
SM_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_PORTS_MAX);
	__type(key, __u32);
	__type(value, struct sm_portstat);
} sm_portstats SEC(".maps");

/* The policy generation sock_ops reads: 0 or 1 (see struct sm_ctl). */
static __always_inline __u32 sm_policy_gen(void)
{
	__u32 zero = 0;
	struct sm_ctl *ctl = bpf_map_lookup_elem(&sm_ctl, &zero);

	return ctl ? ctl->policy_gen : 0;
}

/*
 * Slot of the nearest configured cgroup of @sk (its own or an ancestor),
 * 0 if none. The socket's cgroup is the one it was created in, read
 * through BTF (sk_cgrp_data), so this holds at the passive end too, where
 * the callback does not run in the owner's context.
 */
static __always_inline __u16 sm_cg_slot(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct cgroup *cg;
	__u16 *slot;
	__u64 id;

	/* before 5.15 the socket's cgroup is not a pointer in BTF: none */
	if (!tp || !(sm_feat & SM_FEAT_CG_BTF) ||
	    !bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return 0;
	cg = tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
	for (int i = 0; i < SM_CG_DEPTH && cg; i++) {
		id = cg->kn->id;
		slot = bpf_map_lookup_elem(&sm_cgslots, &id);
		if (slot)
			return *slot < SM_CG_SLOTS ? *slot : 0;
		cg = cg->self.parent ? cg->self.parent->cgroup : NULL;
	}
	return 0;
}

/* Add @n to counter @field of the cgroup of the socket with state @st. */
static __always_inline void sm_cg_count(const struct sm_sock_state *st,
					enum sm_cg_counter field, __u64 n)
{
	struct sm_cg_counters *v;
	__u32 slot;

	if (!st || !st->cg_slot)
		return;
	slot = st->cg_slot;
	v = bpf_map_lookup_elem(&sm_cgcounters, &slot);
	if (v && field < SM_CG_NR)
		v->v[field] += n;
}

/*
 * One message of @size bytes: counter @msgs and @bytes of the socket's
 * cgroup, with one lookup (the per-message path).
 */
static __always_inline void sm_cg_count_msg(const struct sm_sock_state *st,
					    enum sm_cg_counter msgs,
					    enum sm_cg_counter bytes,
					    __u64 size)
{
	struct sm_cg_counters *v;
	__u32 slot;

	if (!st || !st->cg_slot)
		return;
	slot = st->cg_slot;
	v = bpf_map_lookup_elem(&sm_cgcounters, &slot);
	if (v && msgs < SM_CG_NR && bytes < SM_CG_NR) {
		v->v[msgs]++;
		v->v[bytes] += size;
	}
}

/* Is compat = strict in effect (the default: sm_ctl.flags lacks FAST)? */
static __always_inline int sm_strict_on(void)
{
	__u32 zero = 0;
	struct sm_ctl *ctl = bpf_map_lookup_elem(&sm_ctl, &zero);

	return ctl && !(ctl->flags & SM_CTL_FAST);
}

/*
 * Is @s a blocking socket (its file without O_NONBLOCK)? An accepted
 * socket has no file until accept() returns it: not known, 0.
 */
static __always_inline int sm_sock_blocking(const struct sock *s)
{
	struct socket *so = BPF_CORE_READ(s, sk_socket);
	struct file *f = so ? BPF_CORE_READ(so, file) : NULL;

	return f && !(BPF_CORE_READ(f, f_flags) & SM_O_NONBLOCK);
}

/*
 * Does a task wait on @s now (its wait queue, sk_sleep(), is not empty)?
 * A blocking reader in recv() does; so does poll(), or an epoll instance
 * that holds the socket (then it errs towards "exposed").
 */
static __always_inline int sm_sock_waited_on(const struct sock *s)
{
	struct socket_wq *wq = BPF_CORE_READ(s, sk_wq);
	unsigned long head;

	if (!wq)
		return 0;
	head = (unsigned long)wq +
	       bpf_core_field_offset(struct socket_wq, wait) +
	       bpf_core_field_offset(struct wait_queue_head, head);
	return (unsigned long)BPF_CORE_READ(wq, wait.head.next) != head;
}

/* The SM_STRICT_* rule socket @s falls under, 0 if none (sockmesh.h). */
static __always_inline __u8 sm_strict_gap(const struct sock *s)
{
	if (!s)
		return 0;
	if (sm_sock_blocking(s))
		return SM_STRICT_BLOCKING;
	if (BPF_CORE_READ(s, sk_rcvlowat) > 1)
		return SM_STRICT_RCVLOWAT;
	if (BPF_CORE_READ(s, sk_peek_off) >= 0)
		return SM_STRICT_PEEK_OFF;
	return 0;
}

static __always_inline struct sm_counters *sm_counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sm_counters, &zero);
}

/* Count the connection one rule of strict kept on, or took to, the stack. */
static __always_inline void sm_strict_count(struct sm_counters *c, __u8 rule)
{
	if (!c)
		return;
	if (rule == SM_STRICT_BLOCKING)
		c->strict_blocking++;
	else if (rule == SM_STRICT_RCVLOWAT)
		c->strict_rcvlowat++;
	else if (rule == SM_STRICT_PEEK_OFF)
		c->strict_peek_off++;
	else if (rule == SM_STRICT_SPLICE)
		c->strict_splice++;
}

/*
 * Mark the port of @flow (and the connecting end's namespace: the slot of
 * sm_portstats) with @bit (SM_PS_*): later connections to it stay on TCP
 * from the start under strict (sockops.bpf.c, sm_strict_connect()).
 */
static __always_inline void sm_port_mark(const struct sm_flow *flow, __u32 bit)
{
	struct sm_portstat *ps;
	__u32 slot = flow->ps_slot;

	ps = bpf_map_lookup_elem(&sm_portstats, &slot);
	if (ps) {
		ps->port = flow->dst_port;
		ps->strict |= bit;
	}
}

/*
 * A connection takes the stack by strict @rule, seen by end @dir: first
 * sight counts it, and a blocking end that may already have waited in the
 * map (@port: see sm_strict_exposed() in skmsg.bpf.c) marks the port, so
 * that later connections to it stay on TCP from connect(). The atomic add
 * after the store orders it before whatever this CPU reads next (a
 * lock-prefixed instruction on x86-64): the other half of
 * sm_strict_unsent().
 */
static __always_inline void sm_strict_mark(struct sm_flow *flow,
					   struct sm_counters *c, __u8 rule,
					   int port, __u32 dir)
{
	if (!flow) {
		sm_strict_count(c, rule);
		return;
	}
	if (flow->strict)
		return;
	flow->strict = rule;
	__sync_fetch_and_add(&flow->began[dir & 1], 1);
	sm_strict_count(c, rule);
	if (rule == SM_STRICT_BLOCKING && port)
		sm_port_mark(flow, SM_PS_BLOCKING);
}

/*
 * Strict took @flow to the stack and the end @dir has never run its SK_MSG
 * program: it never will redirect, since its first run reads strict after
 * its own atomic add of began[dir], and one of the two atomic adds comes
 * first (sm_strict_mark()). So nothing of it can be in flight, and its
 * peer may leave the map at once, in the very sendmsg() that found the
 * gap: a blocking end that sends first never waits in the map. That
 * argument needs the adds to be full barriers, which x86-64's JIT makes
 * them (lock-prefixed); elsewhere the peer leaves as before, when bytes
 * come in through the stack.
 */
static __always_inline int sm_strict_unsent(const struct sm_flow *flow,
					    __u32 dir)
{
#if defined(__TARGET_ARCH_x86)
	return flow->strict && !flow->began[dir & 1];
#else
	return 0;
#endif
}

#endif /* SM_MAPS_BPF_H */

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockops.bpf.c - select established TCP sockets and record them.
 *
 * Runs for every TCP socket of the processes in the cgroups sockmeshd
 * attached it to. Policy is decided here, once, at establishment: a socket
 * that is selected goes into sm_sockhash with its peer's key in sm_state, so
 * that the per-message program only looks up and redirects.
 *
 * The rules, by callback (sm_sockops dispatches):
 *
 *   established, either end (sm_established):
 *     1 select   ports, addresses, kind (not kTLS, MPTCP,   sm_rule_select
 *                SO_ZEROCOPY): else skipped
 *     2 key      host-wide for a node-unique connecting     sm_rule_select
 *                address, else this network namespace's
 *     3 short    connecting end, short-connection port:     sm_rule_connect_skip
 *                the connection stays out
 *     4 strict   connecting end, compat = strict gap:       sm_rule_connect_skip
 *                the connection stays out; accepted end, a   sm_accept_blocking
 *                blocking listener: both ends out
 *     5 pair     take (connecting end) or join (accepted    sm_flow_join
 *                end) the connection's sm_flows slot
 *     6 record   sm_state, the sockhash, the callbacks      sm_rule_record
 *   a packet in or out, while in the map:
 *     7 leave    nothing more to redirect either way        sm_maybe_leave
 *   TCP_CLOSE, connecting end (short connections on):
 *     8 count    the connection in its port's figure        sm_short_count
 *   listen():
 *     9 listen   a new service: its port's figure reset,    sm_short_reset
 *                its address for its children               sm_listen_record
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define SM_MAPS_DEFINE
#include "sm_maps.bpf.h"

#define AF_INET	 2
#define AF_INET6 10

/* sock_ops programs return 1; the value is not a verdict for these ops. */
#define SM_SOCKOPS_DONE 1

/*
 * The callbacks a socket in the map asks for, so that it notices when it can
 * leave: every received packet (PARSE_ALL_HDR_OPT) and every sent one
 * (WRITE_HDR_OPT: the ACKs it sends after its reader took stack bytes). A
 * fully redirected connection sends and receives almost no packets, so
 * these cost nothing until a direction has moved to the stack.
 */
#define SM_CB_FLAGS                               \
	(BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG | \
	 BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)
/*
 * And at the connecting end, while the short-connection rule is on, its
 * state changes (STATE_CB): at TCP_CLOSE it adds the connection to its
 * port's sm_portstat. Kept after the socket left the map.
 */
#define SM_CB_FLAGS_ACTIVE (SM_CB_FLAGS | BPF_SOCK_OPS_STATE_CB_FLAG)

/*
 * The network namespace of the socket, as the key's scope: its netns cookie
 * (bpf_get_netns_cookie in sock_ops, 5.15), or before that the namespace's
 * inode number read through BTF (unique among live namespaces, like the
 * cookie; never 0, which means node-unique).
 */
static __always_inline __u64 sm_netns(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk;
	struct tcp_sock *tp;

	if (sm_feat & SM_FEAT_NETNS_COOKIE)
		return bpf_get_netns_cookie(skops);
	sk = skops->sk;
	/* one load: each load of skops->sk is a new "maybe NULL" */
	asm volatile("" : "+r"(sk));
	tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;
	if (!tp)
		return 0;
	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u32 sm_short_msgs(void)
{
	__u32 zero = 0;
	struct sm_ctl *ctl = bpf_map_lookup_elem(&sm_ctl, &zero);

	return ctl ? ctl->short_msgs : 0;
}

/*
 * Slot of @port in the connecting end's network namespace: a port number
 * means one service per namespace (pods), so each namespace has its own
 * figure (two may share a slot: they then share the figure).
 */
static __always_inline __u32 sm_portstat_slot(struct bpf_sock_ops *skops,
					      __u32 port)
{
	__u64 ns = sm_netns(skops) * 0x9e3779b97f4a7c15ULL;

	return (port + (__u32)(ns >> 48)) & (SM_PORTS_MAX - 1);
}

/*
 * Is the port of @slot, which a connection is being made to, a
 * short-connection port (sockmesh.h, "Short connections")? One in
 * SM_SHORT_PROBE of its connections is accelerated anyway: the others are
 * not, and so are not counted. The counts are shared by all CPUs, updated without locks: they
 * are estimates, and a lost update costs one misjudged connection.
 */
static __always_inline int sm_short_port(__u32 slot, __u32 short_msgs)
{
	struct sm_portstat *ps;
	__u32 n;

	if (!short_msgs)
		return 0;
	ps = bpf_map_lookup_elem(&sm_portstats, &slot);
	if (!ps || !sm_portstat_short(ps, bpf_ktime_get_ns()))
		return 0;
	n = ps->skips++;
	return (n & (SM_SHORT_PROBE - 1)) != 0;
}

/*
 * compat = strict at the connecting end (sockmesh.h, SM_STRICT_*): the
 * rule its own socket falls under (a blocking connect(), SO_RCVLOWAT or
 * SO_PEEK_OFF set before it), or the rule that marked its port (@slot)
 * before: a blocking end, a splice() reader; 0: accelerate it.
 */
static __always_inline __u8 sm_strict_connect(struct bpf_sock *sk, __u32 slot)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct sm_portstat *ps;
	__u8 rule;

	if (!tp)
		return 0;
	rule = sm_strict_gap(&tp->inet_conn.icsk_inet.sk);
	if (rule)
		return rule;
	ps = bpf_map_lookup_elem(&sm_portstats, &slot);
	if (!ps)
		return 0;
	if (ps->strict & SM_PS_BLOCKING)
		return SM_STRICT_BLOCKING;
	return ps->strict & SM_PS_SPLICE ? SM_STRICT_SPLICE : 0;
}

/*
 * A server starts listening on a port: a new service, with a figure of its
 * own (and a port the kernel picked, once some other's, starts clean).
 */
static __always_inline void sm_short_reset(struct bpf_sock_ops *skops)
{
	__u32 slot = sm_portstat_slot(skops, skops->local_port);
	struct sm_portstat *ps = bpf_map_lookup_elem(&sm_portstats, &slot);

	if (ps)
		__builtin_memset(ps, 0, sizeof(*ps));
}

/* The connecting end closed: count its connection in its port's figure. */
static __always_inline void sm_short_count(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sm_sock_state *st;
	struct sm_portstat *ps;
	struct sm_flow *flow;
	__u32 short_msgs = sm_short_msgs(), port;

	if (!sk || !short_msgs)
		return;
	st = bpf_sk_storage_get(&sm_state, sk, NULL, 0);
	if (!st || st->dir)
		return;
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (!flow || flow->conn != st->conn)
		return; /* its slot was taken: no count */
	port = sm_portstat_slot(skops, flow->dst_port);
	ps = bpf_map_lookup_elem(&sm_portstats, &port);
	if (!ps)
		return;
	ps->port = flow->dst_port;
	__sync_fetch_and_add(&ps->closed, 1);
	if (flow->msgs < short_msgs) {
		__sync_fetch_and_add(&ps->short_conns, 1);
		sm_portstat_short_closed(ps, bpf_ktime_get_ns());
	}
	if (ps->closed >= SM_SHORT_WINDOW) {
		ps->closed >>= 1;
		ps->short_conns >>= 1;
	}
}

/* Fill @v from the socket's own view; 0 if it is not IPv4 or IPv6. */
static __always_inline int sm_view_build(struct bpf_sock_ops *skops,
					 struct sm_view *v)
{
	switch (skops->family) {
	case AF_INET:
		sm_addr_from_v4(v->local_ip, skops->local_ip4);
		sm_addr_from_v4(v->remote_ip, skops->remote_ip4);
		break;
	case AF_INET6:
		v->local_ip[0] = skops->local_ip6[0];
		v->local_ip[1] = skops->local_ip6[1];
		v->local_ip[2] = skops->local_ip6[2];
		v->local_ip[3] = skops->local_ip6[3];
		v->remote_ip[0] = skops->remote_ip6[0];
		v->remote_ip[1] = skops->remote_ip6[1];
		v->remote_ip[2] = skops->remote_ip6[2];
		v->remote_ip[3] = skops->remote_ip6[3];
		break;
	default:
		return 0;
	}
	/* local_port is host byte order; remote_port is network byte order */
	v->local_port = skops->local_port;
	v->remote_port = bpf_ntohl(skops->remote_port);
	v->snd_una = skops->snd_una;
	v->rcv_nxt = skops->rcv_nxt;
	v->passive = skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
	return 1;
}

/*
 * Policy lookups read generation @gen, the one sockmeshd flipped last
 * (struct sm_ctl), read once per connection: reload fills the idle
 * generation completely, then flips, so no connection sees half a policy.
 */
static __always_inline int sm_addr_in(void *lpm, const __u32 addr[4], __u32 gen)
{
	struct sm_lpm_key k = {.prefixlen = 128};

	if (gen)
		lpm = lpm == (void *)&sm_cidrs ? (void *)&sm_cidrs1
					       : (void *)&sm_unique1;
	__builtin_memcpy(k.addr, addr, sizeof(k.addr));
	return bpf_map_lookup_elem(lpm, &k) != NULL;
}

static __always_inline __u8 sm_port_flags(__u32 port, __u32 gen)
{
	__u8 *flags = bpf_map_lookup_elem(
		gen ? (void *)&sm_ports1 : (void *)&sm_ports, &port);

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
		(1UL << bpf_core_enum_value(enum sock_flags, SOCK_ZEROCOPY)));
}

/*
 * Has data come in through the stack? In PARSE_HDR_OPT_CB, this segment's
 * payload (the callback runs before the segment is queued, so a socket that
 * leaves here never shows its reader a stack byte while in the map); on any
 * callback, rcv_nxt past its value at establishment. A FIN moves rcv_nxt by
 * one more, and a half-closed peer still reads our redirected bytes, so the
 * FIN alone is not a reason to leave.
 */
static __always_inline int sm_stack_bytes_in(struct bpf_sock_ops *skops,
					     const struct sm_sock_state *st)
{
	__u32 moved = skops->rcv_nxt - st->rcv_nxt0;
	struct tcphdr *th;

	if (skops->op == BPF_SOCK_OPS_PARSE_HDR_OPT_CB) {
		th = (struct tcphdr *)(long)skops->skb_data;
		if ((void *)(th + 1) <= (void *)(long)skops->skb_data_end &&
		    skops->skb_len > th->doff * 4U)
			return 1;
	}
	switch (skops->state) {
	case BPF_TCP_CLOSE_WAIT:
	case BPF_TCP_LAST_ACK:
	case BPF_TCP_CLOSING:
	case BPF_TCP_TIME_WAIT:
		moved--; /* the FIN */
		break;
	}
	return moved != 0;
}

/*
 * On any packet callback of a socket in the map: leave it once nothing more
 * can be redirected to this socket and nothing redirected waits in it.
 * "Nothing more": the peer's direction is on the stack for good (its SK_MSG
 * program said so in sm_flows, or bytes came in through the stack, or the
 * peer left, or strict took the connection out before the peer's first
 * message: sm_strict_unsent()) and none of its redirects can still be in
 * flight (it never redirected, or its SK_MSG program saw a stack verdict
 * that no other sendmsg() overlapped, or SM_LEAVE_GUARD_NS passed since
 * its last redirect). Deleting a socket frees its unread redirected bytes, hence the
 * empty queue. A socket that leaves while only the map holds its psock
 * has no redirect of its own in flight either: it says so (sm_flow.done),
 * and its peer need not wait out the guard.
 */
static __always_inline void sm_maybe_leave(struct bpf_sock_ops *skops,
					   struct sm_counters *c)
{
	struct bpf_sock *sk = skops->sk;
	struct sm_sock_state *st;
	struct sk_psock *psock;
	struct tcp_sock *tp;
	struct sm_flow *flow;
	struct sm_key self;
	__u32 peer;
	int done;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&sm_state, sk, NULL, 0);
	if (!st || (st->flags & SM_SF_LEFT))
		return;
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (!flow || flow->conn != st->conn)
		return; /* no shared view of the peer: stay (always safe) */
	peer = !st->dir;
	if (!flow->stack[peer] && !flow->left[peer] &&
	    !sm_strict_unsent(flow, peer) && !sm_stack_bytes_in(skops, st))
		return;
	if (flow->redir_ns[peer] && !flow->done[peer] &&
	    bpf_ktime_get_ns() - flow->redir_ns[peer] < SM_LEAVE_GUARD_NS)
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	psock = tp ? sm_psock_of(&tp->inet_conn.icsk_inet.sk) : NULL;
	if (!tp || sm_psock_unread(psock))
		return;
	/*
	 * A blocking accepted end (a blocking server) may have waited in
	 * recv() in the map: its port is marked for the next connections,
	 * though its own messages may never have shown it (strict had
	 * taken the connection out at its peer's first message).
	 */
	if (st->dir && sm_strict_on() &&
	    sm_sock_blocking(&tp->inet_conn.icsk_inet.sk))
		sm_port_mark(flow, SM_PS_BLOCKING);
	/*
	 * Only the map holds the psock: no sendmsg() of ours is under way,
	 * and any later one finds SM_SF_STACK (it waits for the socket lock
	 * this callback holds), so none of our redirects is in flight.
	 */
	done = psock && BPF_CORE_READ(psock, refcnt.refs.counter) <= 1;
	sm_key_peer(&self, &st->peer);
	if (bpf_map_delete_elem(&sm_sockhash, &self))
		return;
	st->flags |= SM_SF_LEFT | SM_SF_STACK;
	/* each end writes only its own bytes */
	flow->stack[st->dir & 1] = 1;
	flow->left[st->dir & 1] = 1;
	if (done)
		flow->done[st->dir & 1] = 1;
	/* ours only: another sock_ops program may want its own */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
						 ~(st->cb_flags & SM_CB_FLAGS));
	c->sockets_left++;
}

/*
 * Take or join the connection's sm_flows slot; 0 if this end must stay out
 * of the map. The active end is established (and recorded) before the
 * passive end's final ACK arrives, so it takes the slot and leaves what it
 * connected to; the passive end finds it there (the connection is paired)
 * and compares with where it was reached (through NAT if they differ), or
 * finds no trace of it: the client is not in the map (outside the cgroups,
 * not selected) and never will be, so this end stays out too (design.md:
 * nothing goes into the map that will not be redirected). @skip
 * (SM_SKIP_*): the active end stays out, and so will the passive end.
 */
static __always_inline int sm_flow_join(struct sm_flow *flow, __u64 conn,
					const struct sm_view *v, __u32 ps_slot,
					int skip, struct sm_counters *c)
{
	if (v->passive) {
		if (flow->conn != conn) {
			c->peers_unpaired++;
			return 0;
		}
		if (flow->skip)
			return 0; /* counted at the other end */
		c->peers_paired++;
		if (flow->dst_port != v->local_port ||
		    flow->dst_ip[0] != v->local_ip[0] ||
		    flow->dst_ip[1] != v->local_ip[1] ||
		    flow->dst_ip[2] != v->local_ip[2] ||
		    flow->dst_ip[3] != v->local_ip[3])
			c->peers_paired_nat++;
		return 1;
	}
	/* a new connection takes the slot */
	__builtin_memset(flow, 0, sizeof(*flow));
	flow->conn = conn;
	__builtin_memcpy(flow->dst_ip, v->remote_ip, sizeof(flow->dst_ip));
	flow->dst_port = v->remote_port;
	flow->ps_slot = ps_slot;
	if (skip) {
		flow->skip = skip;
		if (skip == SM_SKIP_SHORT)
			c->short_skipped++;
		return 0;
	}
	return 1;
}

/*
 * This end's SO_RCVBUF, if the application set one (before connect() or on
 * the listener, as it must to shape the window): the window variant's
 * bound on what may be redirected to it before it reports (skmsg.bpf.c).
 */
static __always_inline void sm_rcvbuf_report(struct sm_flow *flow,
					     struct bpf_sock *sk, __u32 dir)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct sock *s;

	if (!tp)
		return;
	s = &tp->inet_conn.icsk_inet.sk;
	flow->win_limit[!dir] =
		(BPF_CORE_READ_BITFIELD(s, sk_userlocks) & SOCK_RCVBUF_LOCK)
			? (__u32)s->sk_rcvbuf
			: 0;
}

/*
 * 1 select: a socket whose ports, addresses or kind (sm_sk_unsuitable) are
 * not configured for acceleration is skipped. 2 key: a node-unique
 * connecting address (a pod's) names the connection host-wide, whatever
 * NAT did to its destination; any other (loopback, addresses repeated in
 * every namespace) only inside this namespace. 0 if skipped.
 */
static __always_inline int sm_rule_select(struct bpf_sock_ops *skops,
					  struct bpf_sock *sk,
					  struct sm_view *v, struct sm_key *key,
					  struct sm_counters *c)
{
	__u32 gen = sm_policy_gen();

	if (!sm_view_build(skops, v) ||
	    !sm_ports_select(sm_port_flags(v->local_port, gen),
			     sm_port_flags(v->remote_port, gen)) ||
	    !sm_addr_in(&sm_cidrs, v->local_ip, gen) ||
	    !sm_addr_in(&sm_cidrs, v->remote_ip, gen) || sm_sk_unsuitable(sk)) {
		c->sockets_skipped++;
		return 0;
	}
	sm_key_make(key, v,
		    sm_addr_in(&sm_unique,
			       v->passive ? v->remote_ip : v->local_ip, gen)
			    ? 0
			    : sm_netns(skops));
	return 1;
}

/*
 * 3 short, 4 strict, at the connecting end: to a short-connection port
 * (SM_SKIP_SHORT), or under compat = strict with a gap of its own or its
 * port's (SM_SKIP_STRICT), the connection stays out, both ends (rule 5
 * tells the passive end). Its port's slot in @ps_slot.
 */
static __always_inline int
sm_rule_connect_skip(struct bpf_sock_ops *skops, struct bpf_sock *sk,
		     const struct sm_view *v, __u32 short_msgs, __u32 *ps_slot,
		     struct sm_counters *c)
{
	__u8 rule;

	if (v->passive)
		return 0;
	*ps_slot = sm_portstat_slot(skops, v->remote_port);
	if (sm_short_port(*ps_slot, short_msgs))
		return SM_SKIP_SHORT;
	if (sm_strict_on() && (rule = sm_strict_connect(sk, *ps_slot))) {
		sm_strict_count(c, rule);
		return SM_SKIP_STRICT;
	}
	return 0;
}

/*
 * 4 strict at the accepted end: was its listener blocking (its file without
 * O_NONBLOCK) when the connection was established? A thread-per-connection
 * server's is, and its accept() may come after the client's first bytes,
 * when the accepted socket has no file to tell (sm_sock_blocking(): not
 * known); those bytes would be redirected, and its next blocking recv()
 * would wait in the map, where a signal makes it return EAGAIN. The
 * listener is the one recorded at listen(), read through the copy of
 * sm_listen its child was born with (BPF_F_CLONE); it is alive while its
 * child waits to be accepted, and must still listen. The child's copy is
 * dropped here, on every path. 1: a blocking listener.
 */
static __always_inline int sm_accept_blocking(struct bpf_sock *sk)
{
	__u64 *l = bpf_sk_storage_get(&sm_listen, sk, NULL, 0);
	const struct sock *ls;
	int blocking;

	if (!l)
		return 0;
	ls = (const struct sock *)*l;
	blocking = BPF_CORE_READ(ls, __sk_common.skc_state) == BPF_TCP_LISTEN &&
		   sm_sock_blocking(ls);
	bpf_sk_storage_delete(&sm_listen, sk);
	return blocking;
}

/* 9 listen: the listener's own address, for the copy each child gets. */
static __always_inline void sm_listen_record(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	__u64 *l;

	if (!sk)
		return;
	l = bpf_sk_storage_get(&sm_listen, sk, NULL,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (l)
		*l = (__u64)sk;
}

/*
 * 6 record: the socket's state first (a socket in the map always has its
 * peer key), then the sockhash, then the callbacks it needs to leave.
 */
static __always_inline void
sm_rule_record(struct bpf_sock_ops *skops, struct bpf_sock *sk,
	       const struct sm_view *v, struct sm_key *key, __u64 conn,
	       __u32 slot, __u32 short_msgs, struct sm_counters *c)
{
	struct sm_sock_state *st;
	__u32 cb;

	st = bpf_sk_storage_get(&sm_state, sk, NULL,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		c->sockets_add_failed++;
		return;
	}
	sm_key_peer(&st->peer, key);
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
	st->dir = v->passive;
	st->rcv_nxt0 = skops->rcv_nxt;
	st->cg_slot = sm_cg_slot(sk);
	st->conn = conn;
	st->flow = slot;

	if (bpf_sock_hash_update(skops, &sm_sockhash, key, BPF_NOEXIST)) {
		bpf_sk_storage_delete(&sm_state, sk);
		c->sockets_add_failed++;
		return;
	}
	c->sockets_added++;
	sm_cg_count(st, SM_CG_sockets_added, 1);
	cb = !v->passive && short_msgs ? SM_CB_FLAGS_ACTIVE : SM_CB_FLAGS;
	st->cb_flags = cb & ~skops->bpf_sock_ops_cb_flags;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | cb);
}

/* An end is established: rules 1 to 6. */
static __always_inline void sm_established(struct bpf_sock_ops *skops)
{
	struct sm_view v = {};
	struct sm_key key = {};
	__u32 slot, ps_slot = 0, short_msgs;
	struct sm_counters *c;
	struct sm_flow *flow;
	struct bpf_sock *sk;
	int skip, blocking = 0;
	__u64 conn;

	c = sm_counters_get();
	if (!c)
		return;
	sk = skops->sk;
	if (!sk)
		return;
	if (skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		blocking = sm_accept_blocking(sk);
	if (!sm_rule_select(skops, sk, &v, &key, c))
		return;
	conn = sm_conn_id(&key);
	slot = (__u32)conn & (SM_FLOWS - 1);
	flow = bpf_map_lookup_elem(&sm_flows, &slot);
	short_msgs = sm_short_msgs();
	skip = sm_rule_connect_skip(skops, sk, &v, short_msgs, &ps_slot, c);
	/* 5 pair */
	if (!flow || !sm_flow_join(flow, conn, &v, ps_slot, skip, c))
		return;
	if (blocking && sm_strict_on()) {
		/* 4 strict, accepted end: the connecting end, already in the
		 * map, takes the stack at its first message (flow->strict);
		 * later connections to the port stay out at connect() */
		sm_strict_mark(flow, c, SM_STRICT_BLOCKING, 1, 1);
		return;
	}
	sm_rcvbuf_report(flow, sk, v.passive);
	sm_rule_record(skops, sk, &v, &key, conn, slot, short_msgs, c);
}

/* The dispatcher: most callbacks of a connection are none of ours. */
SEC("sockops")
int sm_sockops(struct bpf_sock_ops *skops)
{
	struct sm_counters *c;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sm_established(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		c = sm_counters_get();
		if (c)
			sm_maybe_leave(skops, c); /* 7 leave */
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			sm_short_count(skops); /* 8 count */
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		sm_short_reset(skops); /* 9 listen */
		sm_listen_record(skops);
		break;
	}
	return SM_SOCKOPS_DONE;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

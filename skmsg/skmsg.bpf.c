// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skmsg.bpf.c - hand each sendmsg() of a recorded socket to its peer.
 *
 * The per-message path: read the state sock_ops left, redirect into the
 * peer's receive queue, count. A direction moves to the stack for good (see
 * SM_SF_STACK) when its peer is absent, when it is a small-write stream, or
 * when the receiver is behind by more than its receive buffer. Never drops.
 *
 * The rules, in the order each sendmsg() meets them (sm_msg_run); the
 * first that decides ends the walk, and every verdict is SK_PASS:
 *
 *   1 open      only an open sending side redirects        sm_rule_open
 *   2 state     what sock_ops recorded; none: pass         sm_rule_state
 *   3 report    window variant: what this end has not read sm_rule_report
 *   4 drain     unload under way: the stack, for good      sm_rule_drain
 *   5 stack     a direction on the stack stays there       SM_SF_STACK
 *   6 ulp       kTLS at this end: the stack, both ways     sm_rule_ulp
 *   7 strict    compat = strict, a gap at either end       sm_rule_strict
 *   8 bulk      a run of small writes marks SM_SF_BULK     sm_rule_bulk
 *   9 redirect  into the peer; peer absent: the stack      sm_rule_redirect
 *  10 switch    peer kTLS, peer's strict gap, or a caught-  sm_rule_switch
 *               up small-write stream: this message to our
 *               own egress, the stack from now on
 *  11 behind    receiver past its bound: next ones stack   sm_rule_behind
 *
 * Beside the programs, two traces (SM_FEAT_RECV_TRACE): the window
 * variant's reader (sm_recv_win) and the splice() reader (sm_splice).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sm_maps.bpf.h"

/*
 * 6.2 and later. Weak: on older kernels libbpf leaves it unresolved, and
 * sockmeshd loads sm_skmsg_win instead of sm_skmsg (the verifiers before
 * 6.3 refuse even a dead call to a missing kfunc, so one program cannot
 * carry both paths).
 */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;
/* 6.2 and later too: a read-only view of the peer as another type */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* sk_userlocks, a bitfield before 6.2 and a byte since: read either way */
static __always_inline __u32 sm_userlocks(const struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD(sk, sk_userlocks);
}

/*
 * Is @peer, which we just redirected to, behind by more than it may be?
 * Redirected bytes are charged to its sk_rmem_alloc until read (6.18,
 * bpf_tcp_ingress), but they never autotune sk_rcvbuf, which stays at
 * tcp_rmem[1] (128 KiB) unless the application set SO_RCVBUF. A reader that
 * keeps up with a 128 KiB-write stream is often more than that behind, so
 * the bound is the application's SO_RCVBUF if it set one, else
 * SM_RCVBUF_FLOOR, about what plain TCP holds for a receiver that does not
 * read (its autotuned send buffer, tcp_wmem[2] = 4 MiB, plus the receiver's).
 */
static __always_inline int sm_peer_behind(struct sock *peer)
{
	int queued = peer->sk_backlog.rmem_alloc.counter;
	int limit = peer->sk_rcvbuf;

	if (queued <= limit)
		return 0;
	if (sm_userlocks(peer) & SOCK_RCVBUF_LOCK)
		return 1;
	return queued > SM_RCVBUF_FLOOR;
}

/*
 * Has our own socket @tp an upper-layer protocol (TCP_ULP: kTLS), set after
 * it joined the map? With kTLS TX this program sees each record's plaintext
 * before it is encrypted, and a redirect would hand the peer plaintext
 * instead of records; with kTLS RX the peer must get records through TCP.
 * Kernels with "tls: reject the combination of TLS and sockmap" refuse the
 * keys (EINVAL) to a socket in a map, those before accept them: the
 * connection then takes the stack, both ways, before any record.
 */
static __always_inline int sm_has_ulp(const struct tcp_sock *tp)
{
	return tp && tp->inet_conn.icsk_ulp_ops;
}

/* The same for the peer, seen through the kernel's context (6.2 and later:
 * sk_redir is not a pointer the socket helpers take) */
static __always_inline int sm_peer_has_ulp(struct sock *peer)
{
	struct inet_connection_sock *icsk = bpf_rdonly_cast(
		peer, bpf_core_type_id_kernel(struct inet_connection_sock));

	return icsk && icsk->icsk_ulp_ops;
}

/*
 * The window variant's view of the peer (before 6.2, where the program
 * cannot take the kernel's context as such): the socket the redirect
 * verdict just chose, sk_redir, copied out of the struct sk_msg that the
 * program's context is with bpf_probe_read_kernel(). A plain address, read
 * further only through BPF_CORE_READ(); NULL if the copy failed.
 */
static __always_inline struct sock *sm_redir_read(struct sk_msg_md *md)
{
	__u32 off = bpf_core_field_offset(struct sk_msg, sk_redir);
	struct sock *peer = NULL;

	bpf_probe_read_kernel(&peer, sizeof(peer), (void *)md + off);
	return peer;
}

/* sm_peer_has_ulp() for such an address */
static __always_inline int sm_peer_has_ulp_read(struct sock *peer)
{
	return BPF_CORE_READ((struct inet_connection_sock *)peer,
			     icsk_ulp_ops) != NULL;
}

/* The psock of the socket this program runs for (its own, never the peer). */
static __always_inline struct sk_psock *sm_own_psock(struct tcp_sock *tp)
{
	return tp ? sm_psock_of(&tp->inet_conn.icsk_inet.sk) : NULL;
}

/*
 * A stack verdict: tell the peer, which leaves the map once this direction
 * has no redirect in flight. That holds when no other sendmsg() of this
 * socket holds its psock (only the map's reference and this call's), since
 * every earlier redirect verdict of this direction came before this one.
 */
static __always_inline void sm_mark_stack(struct sm_flow *flow,
					  const struct sm_sock_state *st,
					  struct tcp_sock *tp)
{
	struct sk_psock *psock;

	if (!flow || flow->done[st->dir & 1])
		return;
	flow->stack[st->dir & 1] = 1;
	psock = sm_own_psock(tp);
	if (psock && BPF_CORE_READ(psock, refcnt.refs.counter) <= 2)
		flow->done[st->dir & 1] = 1;
}

/*
 * The window variant (kernels without bpf_cast_to_kern_ctx, before 6.2):
 * the program cannot see the socket it redirects to, only its own. So each
 * end reports, at each of its own messages, what it has not read yet of
 * what was redirected to it (its psock's msg_tot_len), and its SO_RCVBUF if
 * the application set one; the sender bounds what it redirected past the
 * last report (sm_win_behind). A receiver that never sends (a one-way
 * stream) never reports: its sender redirects SM_RCVBUF_FLOOR bytes, then
 * takes the stack, as a receiver that does not read would make it.
 */
static __always_inline void sm_win_report(struct sm_flow *flow,
					  const struct sm_sock_state *st,
					  struct tcp_sock *tp)
{
	__u32 in = !st->dir, unread = 0, locked;
	struct sk_psock *psock;

	if (!tp)
		return;
	psock = sm_own_psock(tp);
	unread = sm_psock_unread(psock);
	locked = sm_userlocks(&tp->inet_conn.icsk_inet.sk) & SOCK_RCVBUF_LOCK;
	/* sent first: a redirect between the two reads only adds to unread,
	 * so the figure errs towards "behind" */
	flow->win_read[in] = flow->win_sent[in] - unread;
	flow->win_limit[in] =
		locked ? (__u32)tp->inet_conn.icsk_inet.sk.sk_rcvbuf : 0;
}

/* Window variant: @size more bytes went to the peer; is it behind now? */
static __always_inline int sm_win_behind(struct sm_flow *flow, __u32 dir,
					 __u64 size)
{
	__u32 queued, limit;

	flow->win_sent[dir] += size;
	queued = flow->win_sent[dir] - flow->win_read[dir];
	limit = flow->win_limit[dir];
	return queued > (limit ? limit : SM_RCVBUF_FLOOR);
}

/* One sendmsg() as the steps below see it. */
struct sm_msg {
	struct sk_msg_md *md;
	struct sm_counters *c;
	struct sm_sock_state *st; /* NULL until rule 2 found it */
	struct sm_flow *flow;	  /* NULL: the slot is another connection's */
	struct sm_ctl *ctl;
	struct tcp_sock *tp; /* our own socket, read through BTF */
	struct sk_msg *kmsg; /* the kernel's view, once redirected (@kctx) */
	__u64 size, now;
	int strict; /* compat = strict */
};

/* 1 open: only an open sending side redirects. After shutdown(SHUT_WR) or
 * in any closing state the stack must answer (EPIPE), as TCP does. */
static __always_inline int sm_rule_open(const struct sm_msg *m)
{
	struct bpf_sock *sk = m->md->sk;

	return !sk || sk->state == BPF_TCP_ESTABLISHED ||
	       sk->state == BPF_TCP_CLOSE_WAIT;
}

/* 2 state: what sock_ops recorded, the flow slot, the control word; 0 for
 * a socket it did not record (cannot be: counted as an error). */
static __always_inline int sm_rule_state(struct sm_msg *m)
{
	struct bpf_sock *sk = m->md->sk;
	__u32 zero = 0;

	m->st = sk ? bpf_sk_storage_get(&sm_state, sk, NULL, 0) : NULL;
	if (!m->st) {
		m->c->redirect_errors++;
		return 0;
	}
	m->tp = bpf_skc_to_tcp_sock(sk); /* once: every step below reads it */
	m->flow = bpf_map_lookup_elem(&sm_flows, &m->st->flow);
	if (m->flow && m->flow->conn != m->st->conn)
		m->flow = NULL; /* the slot is another connection's */
	/* an array lookup, inlined by the verifier */
	m->ctl = bpf_map_lookup_elem(&sm_ctl, &zero);
	m->strict = !(m->ctl && (m->ctl->flags & SM_CTL_FAST));
	return 1;
}

/* 3 report: this end has begun (before rule 7 reads strict: see
 * sm_strict_unsent()), the window variant's report of what it has not
 * read, and the connection's length, for the short-connection rule. */
static __always_inline void sm_rule_report(struct sm_msg *m, const int kctx)
{
	struct sm_flow *flow = m->flow;

	if (flow && !flow->began[m->st->dir & 1])
		__sync_fetch_and_add(&flow->began[m->st->dir & 1], 1);
	if (!kctx && flow && !flow->stack[!m->st->dir])
		sm_win_report(flow, m->st, m->tp);
	if (flow && flow->msgs < SM_SHORT_MSGS_MAX)
		flow->msgs++;
}

/* 4 drain: `sockmesh unload` under way; the stack for good, like any
 * stack verdict (order). */
static __always_inline int sm_rule_drain(struct sm_msg *m)
{
	if (!m->ctl || !(m->ctl->flags & SM_CTL_DRAIN))
		return 0;
	m->st->flags |= SM_SF_STACK;
	m->c->msgs_drained++;
	return 1;
}

/* 6 ulp: kTLS at this end (sm_has_ulp): the stack for good, both ways;
 * the peer's next message sees flow->ulp. */
static __always_inline int sm_rule_ulp(struct sm_msg *m)
{
	if (!(m->flow && m->flow->ulp) && !sm_has_ulp(m->tp))
		return 0;
	if (m->flow)
		m->flow->ulp = 1;
	m->st->flags |= SM_SF_STACK;
	m->c->ulp_fallbacks++;
	return 1;
}

/*
 * Found blocking at its own message, may our end already have waited in
 * the map? The accepted end may have (it had no file flags to see before
 * accept() returned it; a blocking server is blocking on every
 * connection); so may one that something was redirected to, or that a
 * task waits on now (another thread in recv()). A connecting end that
 * sends first, made blocking after a non-blocking connect() (hiredis,
 * iperf3: their first connection; the others are event loops), has not:
 * its connection takes the stack, its port stays open to the others, and
 * it leaves the map in this very sendmsg() (sm_strict_unsent()).
 */
static __always_inline int sm_strict_exposed(const struct sm_msg *m)
{
	/* dir 0 is the connecting end; what goes to it is direction 1 */
	return m->st->dir || !m->flow || m->flow->redir_ns[1] ||
	       sm_sock_waited_on(&m->tp->inet_conn.icsk_inet.sk);
}

/*
 * 7 strict: compat = strict, and our own socket, or the peer's rule seen
 * by the peer, keeps the connection on TCP (sockmesh.h, SM_STRICT_*): for
 * good, both ways, like kTLS.
 */
static __always_inline int sm_rule_strict(struct sm_msg *m)
{
	__u8 rule = 0;

	if (!m->strict ||
	    !((m->flow && m->flow->strict) ||
	      (m->tp &&
	       (rule = sm_strict_gap(&m->tp->inet_conn.icsk_inet.sk)))))
		return 0;
	if (rule)
		sm_strict_mark(m->flow, m->c, rule, sm_strict_exposed(m),
			       m->st->dir);
	m->st->flags |= SM_SF_STACK;
	return 1;
}

/*
 * 8 bulk: every message of a redirected direction ends the other
 * direction's run; so does a pause longer than SM_BULK_GAP_NS or a large
 * message. So does a message with no bytes in line: before 6.5, sendfile()
 * and splice() come here a page at a time through tcp_bpf_sendpage(), whose
 * pages the program cannot read (data == data_end), pieces of one large
 * write, not small writes. SM_BULK_RUN messages in a run make this a
 * small-write stream (SM_SF_BULK), which rule 10 switches. (A direction on
 * the stack no longer counts: its connection is leaving the map.)
 */
static __always_inline void sm_rule_bulk(struct sm_msg *m)
{
	struct sm_flow *flow = m->flow;
	struct sm_ctl *ctl = m->ctl;
	void *data, *data_end;
	__u64 gap;

	m->now = bpf_ktime_get_ns();
	if (!flow)
		return;
	gap = ctl && ctl->bulk_gap_us ? ctl->bulk_gap_us * 1000ULL
				      : SM_BULK_GAP_NS;
	data = m->md->data;
	data_end = m->md->data_end;
	if (flow->last_dir != m->st->dir || m->size >= SM_BULK_MSG_MAX ||
	    data + 1 > data_end || m->now - flow->last_ns > gap) {
		flow->last_dir = m->st->dir;
		flow->run = 1; /* this message starts a run */
	} else if (++flow->run >= SM_BULK_RUN) {
		m->st->flags |= SM_SF_BULK;
	}
	flow->last_ns = m->now;
}

/* 9 redirect: into the peer's receive queue; 0 if the peer is absent
 * (this direction has used the stack, for good). */
static __always_inline int sm_rule_redirect(struct sm_msg *m, const int kctx)
{
	if (bpf_msg_redirect_hash(m->md, &sm_sockhash, &m->st->peer,
				  BPF_F_INGRESS) != SK_PASS) {
		m->st->flags |= SM_SF_STACK;
		m->c->peer_misses++;
		return 0;
	}
	if (kctx)
		m->kmsg = bpf_cast_to_kern_ctx(m->md);
	return 1;
}

/*
 * 10 switch, after the redirect verdict: the peer set kTLS (RX) since its
 * last message (records go by TCP), or under strict the peer's own socket,
 * seen from here (it may not send), has a gap, or this is a small-write
 * stream. The peer is the verdict's sk_redir: through the kernel's context
 * (6.2 and later), else copied out of it (sm_redir_read()). A small-write
 * stream switches once its receiver has read everything redirected, so
 * that no stack byte ever waits behind a redirected one (the receiver then
 * leaves the map at once, and FIONREAD never misses a byte). The window
 * variant does not read the peer's queue and switches at once: order holds all the same (the receiver reads what was
 * redirected first), the receiver leaves the map once it has read it.
 * This message goes out of our own socket: redirected to its egress, that
 * is through the stack, as a pass would. 1 if it did.
 */
static __always_inline int sm_rule_switch(struct sm_msg *m, const int kctx)
{
	struct sock *peer = kctx ? m->kmsg->sk_redir : sm_redir_read(m->md);
	struct sm_sock_state *st = m->st;
	struct sm_key self;
	int ulp_peer;
	__u8 rule = 0;

	ulp_peer = peer &&
		   (kctx ? sm_peer_has_ulp(peer) : sm_peer_has_ulp_read(peer));
	if (peer && m->strict)
		rule = sm_strict_gap(peer);
	if (!ulp_peer && !rule &&
	    !((st->flags & SM_SF_BULK) &&
	      (kctx ? peer && !peer->sk_backlog.rmem_alloc.counter : 1)))
		return 0;
	sm_key_peer(&self, &st->peer);
	if (bpf_msg_redirect_hash(m->md, &sm_sockhash, &self, 0) != SK_PASS)
		/* not found (cannot be: this program runs for sockets in the
		 * map): the message still goes to the peer, as redirected */
		return 0;
	st->flags |= SM_SF_STACK;
	if (ulp_peer) {
		if (m->flow)
			m->flow->ulp = 1;
		m->c->ulp_fallbacks++;
	} else if (rule) {
		/* the peer may wait in recv() since it joined the map */
		sm_strict_mark(m->flow, m->c, rule, 1, m->st->dir);
	} else {
		m->c->bulk_fallbacks++;
	}
	sm_mark_stack(m->flow, st, m->tp);
	return 1;
}

/*
 * 11 behind: this message goes to the peer (the verdict is taken), the
 * next ones through the stack if the peer has fallen behind: the bound on
 * what a receiver that does not read holds is its limit plus one message
 * (at most 17 x 32 KiB per verdict). Without a flow slot (another
 * connection took it) the window variant has no figure: it takes the
 * stack, which bounds the receiver as TCP does.
 */
static __always_inline void sm_rule_behind(struct sm_msg *m, const int kctx)
{
	struct sock *peer = kctx ? m->kmsg->sk_redir : NULL;

	if (kctx ? peer && sm_peer_behind(peer)
		 : m->flow && sm_win_behind(m->flow, m->st->dir & 1, m->size)) {
		m->st->flags |= SM_SF_STACK;
		m->c->rcvbuf_fallbacks++;
	} else if (!kctx && !m->flow) {
		m->st->flags |= SM_SF_STACK;
		m->c->slot_fallbacks++;
	}
}

/*
 * The program, in two variants: @kctx, the receiver's own queue read
 * through the kernel's context (6.2 and later), or its reported window.
 * @kctx is a constant in each: the other path is compiled out. The rules
 * run in the order of the index at the top of this file; rule 5 (stack)
 * is the SM_SF_STACK test.
 */
static __always_inline int sm_msg_run(struct sk_msg_md *md, const int kctx)
{
	struct sm_msg m = {.md = md, .size = md->size};

	m.c = sm_counters_get();
	if (!m.c)
		return SK_PASS;
	if (!sm_rule_open(&m) || !sm_rule_state(&m))
		goto pass;
	sm_rule_report(&m, kctx);
	if (sm_rule_drain(&m) || (m.st->flags & SM_SF_STACK) ||
	    sm_rule_ulp(&m) || sm_rule_strict(&m))
		goto stack;
	sm_rule_bulk(&m);
	if (!sm_rule_redirect(&m, kctx))
		goto stack;
	if (sm_rule_switch(&m, kctx))
		goto pass;
	m.c->msgs_redirected++;
	m.c->bytes_redirected += m.size;
	sm_cg_count_msg(m.st, SM_CG_msgs_redirected, SM_CG_bytes_redirected,
			m.size);
	if (m.flow)
		m.flow->redir_ns[m.st->dir & 1] = m.now;
	sm_rule_behind(&m, kctx);
	return SK_PASS;
stack:
	sm_mark_stack(m.flow, m.st, m.tp);
pass:
	m.c->msgs_passed++;
	m.c->bytes_passed += m.size;
	sm_cg_count_msg(m.st, SM_CG_msgs_passed, SM_CG_bytes_passed, m.size);
	return SK_PASS;
}

/* 6.2 and later (bpf_cast_to_kern_ctx): what is measured in datapath.md */
SEC("sk_msg")
int sm_skmsg(struct sk_msg_md *msg)
{
	return sm_msg_run(msg, 1);
}

/* Before 6.2: the receiver-behind bound by reported window */
SEC("sk_msg")
int sm_skmsg_win(struct sk_msg_md *msg)
{
	return sm_msg_run(msg, 0);
}

/*
 * The window variant's reader trace (SM_FEAT_RECV_TRACE: 5.11 and later,
 * loaded with sm_skmsg_win only): after each read of a socket in the map,
 * what it has not read yet of what was redirected to it, as its own
 * sendmsg() would report it (sm_win_report), so that the sender of a
 * one-way stream sees its reader keep up. tcp_bpf_recvmsg() is the receive
 * path of every TCP socket in a sockmap; only ours have sm_state.
 */
SEC("fexit/tcp_bpf_recvmsg")
int BPF_PROG(sm_recv_win, struct sock *sk)
{
	struct sm_sock_state *st = bpf_sk_storage_get(&sm_state, sk, NULL, 0);
	struct sk_psock *psock;
	struct sm_flow *flow;
	__u32 in, unread = 0;
	__u8 rule;

	if (!st)
		return 0;
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (!flow || flow->conn != st->conn)
		return 0;
	in = !st->dir;
	psock = sm_psock_of(sk);
	unread = sm_psock_unread(psock);
	/* sent first, as in sm_win_report: errs towards "behind" */
	flow->win_read[in] = flow->win_sent[in] - unread;
	/*
	 * strict: a reader that does not send is seen only here (this
	 * variant's SK_MSG cannot see its peer): its sender's next message
	 * takes the stack.
	 */
	if (!flow->strict && sm_strict_on() && (rule = sm_strict_gap(sk)))
		sm_strict_mark(flow, sm_counters_get(), rule, 1, /* it read */
			       st->dir);
	return 0;
}

/*
 * The splice() reader trace (SM_FEAT_RECV_TRACE, either variant):
 * tcp_splice_read() reads a socket's TCP queue only, never what was
 * redirected to it, so a splice() reader (HAProxy, nginx with splice)
 * never sees redirected bytes. Its first call is the first sight of it:
 * counted (splice_readers), its port marked; under strict, if nothing
 * redirected waits unread, the connection takes the stack there (the
 * peer's next message), so this reader sees every byte from now on.
 */
SEC("fentry/tcp_splice_read")
int BPF_PROG(sm_splice, struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct sm_sock_state *st;
	struct sm_counters *c;
	struct sm_flow *flow;

	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&sm_state, sk, NULL, 0);
	if (!st || (st->flags & SM_SF_LEFT))
		return 0;
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (!flow || flow->conn != st->conn || flow->splice)
		return 0;
	flow->splice = 1;
	c = sm_counters_get();
	if (c)
		c->splice_readers++;
	sm_port_mark(flow, SM_PS_SPLICE);
	if (sm_strict_on() && !flow->strict &&
	    !sm_psock_unread(sm_psock_of(sk)))
		sm_strict_mark(flow, c, SM_STRICT_SPLICE, 1, st->dir);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

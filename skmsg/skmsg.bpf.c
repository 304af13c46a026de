// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skmsg.bpf.c - hand each sendmsg() of a recorded socket to its peer.
 *
 * The per-message path: read the state sock_ops left, redirect into the
 * peer's receive queue, count. A direction moves to the stack for good (see
 * SM_SF_STACK) when its peer is absent, when it is a small-write stream, or
 * when the receiver is behind by more than its receive buffer. Never drops.
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

/*
 * The program, in two variants: @kctx, the receiver's own queue read
 * through the kernel's context (6.2 and later), or its reported window.
 * @kctx is a constant in each: the other path is compiled out.
 */
static __always_inline int sm_msg_run(struct sk_msg_md *msg, const int kctx)
{
	struct sm_counters *c = sm_counters_get();
	struct sm_sock_state *st = NULL;
	struct sm_key self;
	struct sm_flow *flow;
	struct sm_ctl *ctl;
	struct sk_msg *kmsg = NULL;
	__u32 zero = 0;
	struct bpf_sock *sk = msg->sk;
	struct tcp_sock *tp; /* our own socket, read through BTF */
	__u64 size = msg->size;
	int ulp_peer, strict;
	__u8 rule = 0;
	__u64 now;

	if (!c)
		return SK_PASS;
	/*
	 * Only an open sending side redirects: after shutdown(SHUT_WR) or in
	 * any closing state the stack must answer (EPIPE), as TCP does.
	 */
	if (sk && sk->state != BPF_TCP_ESTABLISHED &&
	    sk->state != BPF_TCP_CLOSE_WAIT)
		goto pass;
	st = sk ? bpf_sk_storage_get(&sm_state, sk, NULL, 0) : NULL;
	if (!st) {
		c->redirect_errors++;
		goto pass;
	}
	tp = bpf_skc_to_tcp_sock(sk); /* once: every step below reads it */
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (flow && flow->conn != st->conn)
		flow = NULL; /* the slot is another connection's */
	if (!kctx && flow && !flow->stack[!st->dir])
		sm_win_report(flow, st, tp);
	/* the connection's length, for the short-connection rule */
	if (flow && flow->msgs < SM_SHORT_MSGS_MAX)
		flow->msgs++;
	/* an array lookup, inlined by the verifier */
	ctl = bpf_map_lookup_elem(&sm_ctl, &zero);
	if (ctl && (ctl->flags & SM_CTL_DRAIN)) {
		/* for good, like any stack verdict: order */
		st->flags |= SM_SF_STACK;
		c->msgs_drained++;
		goto stack;
	}
	if (st->flags & SM_SF_STACK)
		goto stack;
	if ((flow && flow->ulp) || sm_has_ulp(tp)) {
		/* for good, both ways: the peer's next message sees flow->ulp */
		if (flow)
			flow->ulp = 1;
		st->flags |= SM_SF_STACK;
		c->ulp_fallbacks++;
		goto stack;
	}
	/*
	 * compat = strict: our own socket, or the peer's rule seen by the
	 * peer, keeps the connection on TCP (sockmesh.h, SM_STRICT_*): for
	 * good, both ways, like kTLS.
	 */
	strict = !(ctl && (ctl->flags & SM_CTL_FAST));
	if (strict &&
	    ((flow && flow->strict) ||
	     (tp && (rule = sm_strict_gap(&tp->inet_conn.icsk_inet.sk))))) {
		if (rule)
			sm_strict_mark(flow, c, rule);
		st->flags |= SM_SF_STACK;
		goto stack;
	}
	/*
	 * Every message of a redirected direction ends the other direction's
	 * run; so does a pause longer than SM_BULK_GAP_NS or a large message.
	 * So does a message with no bytes in line: before 6.5, sendfile() and
	 * splice() come here a page at a time through tcp_bpf_sendpage(),
	 * whose pages the program cannot read (data == data_end), pieces of
	 * one large write, not small writes. (A direction on the stack no
	 * longer counts: its connection is leaving the map.)
	 */
	now = bpf_ktime_get_ns();
	if (flow) {
		__u64 gap = ctl && ctl->bulk_gap_us ? ctl->bulk_gap_us * 1000ULL
						    : SM_BULK_GAP_NS;
		void *data = msg->data, *data_end = msg->data_end;

		if (flow->last_dir != st->dir || size >= SM_BULK_MSG_MAX ||
		    data + 1 > data_end || now - flow->last_ns > gap) {
			flow->last_dir = st->dir;
			flow->run = 1; /* this message starts a run */
		} else if (++flow->run >= SM_BULK_RUN) {
			st->flags |= SM_SF_BULK;
		}
		flow->last_ns = now;
	}
	if (bpf_msg_redirect_hash(msg, &sm_sockhash, &st->peer,
				  BPF_F_INGRESS) != SK_PASS) {
		/* peer absent: this direction has used the stack for good */
		st->flags |= SM_SF_STACK;
		c->peer_misses++;
		goto stack;
	}
	if (kctx)
		kmsg = bpf_cast_to_kern_ctx(msg);
	/*
	 * A small-write stream switches once its receiver has read everything
	 * redirected, so that no stack byte ever waits behind a redirected one
	 * (the receiver then leaves the map at once, and FIONREAD never misses
	 * a byte). The window variant cannot see that moment and switches at
	 * once: order holds all the same (the receiver reads what was
	 * redirected first), the receiver leaves the map once it has read it.
	 * This message goes out of our own socket: redirected to its egress,
	 * that is through the stack, as a pass would.
	 */
	/* the peer set kTLS (RX) since its last message: records go by TCP */
	ulp_peer = kctx && kmsg->sk_redir && sm_peer_has_ulp(kmsg->sk_redir);
	/* strict: the peer's own socket, seen from here (it may not send) */
	if (kctx && strict && kmsg->sk_redir)
		rule = sm_strict_gap(kmsg->sk_redir);
	if (ulp_peer || rule ||
	    ((st->flags & SM_SF_BULK) &&
	     (kctx ? kmsg->sk_redir &&
			      !kmsg->sk_redir->sk_backlog.rmem_alloc.counter
		   : 1))) {
		sm_key_peer(&self, &st->peer);
		if (bpf_msg_redirect_hash(msg, &sm_sockhash, &self, 0) ==
		    SK_PASS) {
			st->flags |= SM_SF_STACK;
			if (ulp_peer) {
				if (flow)
					flow->ulp = 1;
				c->ulp_fallbacks++;
			} else if (rule) {
				sm_strict_mark(flow, c, rule);
			} else {
				c->bulk_fallbacks++;
			}
			sm_mark_stack(flow, st, tp);
			goto pass;
		}
		/* not found (cannot be: this program runs for sockets in the
		 * map): the message still goes to the peer, as redirected */
	}
	c->msgs_redirected++;
	c->bytes_redirected += size;
	sm_cg_count_msg(st, SM_CG_msgs_redirected, SM_CG_bytes_redirected,
			size);
	if (flow)
		flow->redir_ns[st->dir & 1] = now;
	/*
	 * This message goes to the peer (the verdict is taken), the next
	 * ones through the stack if the peer has fallen behind: the bound on
	 * what a receiver that does not read holds is its limit plus one
	 * message (at most 17 x 32 KiB per verdict). Without a flow slot
	 * (another connection took it) the window variant has no figure: it
	 * takes the stack, which bounds the receiver as TCP does.
	 */
	if (kctx ? kmsg->sk_redir && sm_peer_behind(kmsg->sk_redir)
		 : flow && sm_win_behind(flow, st->dir & 1, size)) {
		st->flags |= SM_SF_STACK;
		c->rcvbuf_fallbacks++;
	} else if (!kctx && !flow) {
		st->flags |= SM_SF_STACK;
		c->slot_fallbacks++;
	}
	return SK_PASS;
stack:
	sm_mark_stack(flow, st, tp);
pass:
	c->msgs_passed++;
	c->bytes_passed += size;
	sm_cg_count_msg(st, SM_CG_msgs_passed, SM_CG_bytes_passed, size);
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
		sm_strict_mark(flow, sm_counters_get(), rule);
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
		sm_strict_mark(flow, c, SM_STRICT_SPLICE);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

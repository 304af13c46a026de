// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skmsg.bpf.c - hand each sendmsg() of a recorded socket to its peer.
 *
 * The per-message path: read the state sock_ops left, redirect into the
 * peer's receive queue, count. On a miss the bytes go through the stack and
 * the direction stays there for good (see SM_SF_STACK). Never drops.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sm_maps.bpf.h"

SEC("sk_msg")
int sm_skmsg(struct sk_msg_md *msg)
{
	struct sm_counters *c = sm_counters_get();
	struct sm_sock_state *st = NULL;
	struct sm_flow *flow;
	struct sm_ctl *ctl;
	__u32 zero = 0;
	struct bpf_sock *sk = msg->sk;
	__u64 size = msg->size;

	if (!c)
		return SK_PASS;
	/* an array lookup, inlined by the verifier */
	ctl = bpf_map_lookup_elem(&sm_ctl, &zero);
	if (ctl && (ctl->flags & SM_CTL_DRAIN)) {
		c->msgs_drained++;
		goto pass;
	}
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
	/* every message, redirected or not, ends the other direction's run */
	flow = bpf_map_lookup_elem(&sm_flows, &st->flow);
	if (flow && flow->conn == st->conn) {
		if (flow->last_dir != st->dir || size >= SM_BULK_MSG_MAX) {
			flow->last_dir = st->dir;
			flow->run = 0;
		} else if (++flow->run >= SM_BULK_RUN &&
			   !(st->flags & SM_SF_STACK)) {
			st->flags |= SM_SF_STACK;
			c->bulk_fallbacks++;
		}
	}
	if (st->flags & SM_SF_STACK)
		goto pass;
	if (bpf_msg_redirect_hash(msg, &sm_sockhash, &st->peer,
				  BPF_F_INGRESS) == SK_PASS) {
		c->msgs_redirected++;
		sm_cg_count(st, SM_CG_msgs_redirected, 1);
		c->bytes_redirected += size;
		sm_cg_count(st, SM_CG_bytes_redirected, size);
		return SK_PASS;
	}
	/* peer absent: this direction has used the stack, so it stays there */
	st->flags |= SM_SF_STACK;
	c->peer_misses++;
pass:
	c->msgs_passed++;
	sm_cg_count(st, SM_CG_msgs_passed, 1);
	c->bytes_passed += size;
	sm_cg_count(st, SM_CG_bytes_passed, size);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

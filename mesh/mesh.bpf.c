// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * mesh.bpf.c - `[mesh] mode = connect`: istio-init's nat rules as cgroup
 * programs (sm_mesh.h says what each does). Needs bpf_get_netns_cookie()
 * in sock_ops and sockopt programs (5.15) and getpeername hooks (5.8).
 *
 * The rules, in the order istio-init's ISTIO_OUTPUT chain applies them:
 *   a sidecar's connect()        to a meshed pod's address (learned at its
 *                                readiness port), on a port not excluded:
 *                                to that address's inbound_port; else as is
 *   loopback destinations        as is
 *   a pod without a sidecar      (no listener on outbound_port in its netns:
 *                                not in the mesh) the same as a sidecar's:
 *                                a meshed pod's inbound_port, else as is
 *   excluded outbound ports      as is
 *   everything else              to the pod's own address, outbound_port
 *                                (127.0.0.1 / ::1 until that address is
 *                                known)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sm_mesh.h"
#include "sockmesh.h" /* sm_addr_from_v4() */

#define AF_INET		2
#define AF_INET6	10
#define SOCK_STREAM	1
#define SOL_IP		0
#define SOL_IPV6	41
#define SO_ORIGINAL_DST 80 /* and IP6T_SO_ORIGINAL_DST */
#define PAGE_SIZE	4096

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smm_conf);
} smm_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} smm_xports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMM_BYCOOKIE_MAX);
	__type(key, __u64);
	__type(value, struct smm_dst);
} smm_bycookie SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMM_BYTUPLE_MAX);
	__type(key, struct smm_tkey);
	__type(value, struct smm_dst);
} smm_bytuple SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMM_PODS_MAX);
	__type(key, struct smm_dst); /* addr only; port and pad 0 */
	__type(value, struct smm_pod);
} smm_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMM_PODS_MAX);
	__type(key, struct smm_nskey);
	__type(value, struct smm_dst);
} smm_nsaddr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smm_counters);
} smm_counters SEC(".maps");

#define SMM_COUNT(field)                                            \
	do {                                                        \
		__u32 zero_ = 0;                                    \
		struct smm_counters *c_ =                           \
			bpf_map_lookup_elem(&smm_counters, &zero_); \
		if (c_)                                             \
			c_->field++;                                \
	} while (0)

static __always_inline struct smm_conf *conf(void)
{
	__u32 zero = 0;
	struct smm_conf *c = bpf_map_lookup_elem(&smm_conf, &zero);

	return c && c->on ? c : NULL;
}

static __always_inline int xport(__u16 port, __u8 flag)
{
	__u32 k = port;
	__u8 *v = bpf_map_lookup_elem(&smm_xports, &k);

	return v && (*v & flag);
}

static __always_inline int is_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* 127.0.0.0/8, 0.0.0.0, ::1, ::, and their ::ffff: forms */
static __always_inline int is_local(const __u32 *a)
{
	if (is_mapped(a))
		return (bpf_ntohl(a[3]) >> 24) == 127 || a[3] == 0;
	return a[0] == 0 && a[1] == 0 && a[2] == 0 &&
	       (a[3] == 0 || a[3] == bpf_htonl(1));
}

/* Is there a listener for @addr (the ::ffff: form for IPv4) on @port in
 * this netns? Bound to the address or to the wildcard alike. */
static __always_inline int listens(struct bpf_sock_addr *ctx, const __u32 *addr,
				   __u16 port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	if (!is_mapped(addr)) {
		t.ipv6.daddr[0] = addr[0];
		t.ipv6.daddr[1] = addr[1];
		t.ipv6.daddr[2] = addr[2];
		t.ipv6.daddr[3] = addr[3];
		t.ipv6.dport = bpf_htons(port);
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6),
				       BPF_F_CURRENT_NETNS, 0);
	} else {
		t.ipv4.daddr = addr[3];
		t.ipv4.dport = bpf_htons(port);
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4),
				       BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/*
 * A connect() to a meshed pod's address on a port not of the mesh's own
 * goes to that address's inbound_port (what the pod's PREROUTING rule would
 * do with it); fills @to and returns 1, or returns 0.
 */
static __always_inline int
inbound(const struct smm_conf *c, const struct smm_dst *dst, struct smm_dst *to)
{
	struct smm_dst pod = {};

	if (dst->port == c->inbound_port || dst->port == c->outbound_port ||
	    dst->port == c->readiness_port || xport(dst->port, SMM_X_IN))
		return 0;
	__builtin_memcpy(pod.addr, dst->addr, sizeof(pod.addr));
	if (!bpf_map_lookup_elem(&smm_pods, &pod))
		return 0;
	__builtin_memcpy(to->addr, dst->addr, sizeof(to->addr));
	to->port = c->inbound_port;
	SMM_COUNT(inbound);
	return 1;
}

/*
 * Decide for a connect() to @dst (the ::ffff: form for IPv4); fills @to
 * with where it goes instead and returns 1, or returns 0: as is.
 */
static __always_inline int redirect(struct bpf_sock_addr *ctx,
				    const struct smm_conf *c,
				    const struct smm_dst *dst,
				    struct smm_dst *to)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	int v4 = is_mapped(dst->addr);
	struct smm_nskey nk = {};
	__u32 lo[4] = {};
	struct smm_dst *own;

	/* a sidecar's own connect: inbound capture, done at the client */
	if (uid == c->sidecar_uid)
		return inbound(c, dst, to);
	if (is_local(dst->addr))
		return 0;
	/*
	 * The pod's sidecar: a listener on outbound_port at the pod's own
	 * address (as a REDIRECT's source would be, once the address is
	 * known), else at loopback (a proxy bound to 127.0.0.1 only, as
	 * Linkerd's is, or the address not learned yet); none: the pod is
	 * not in the mesh
	 */
	nk.netns = bpf_get_netns_cookie(ctx);
	nk.family = v4 ? AF_INET : AF_INET6;
	own = bpf_map_lookup_elem(&smm_nsaddr, &nk);
	if (v4)
		sm_addr_from_v4(lo, bpf_htonl(0x7f000001));
	else
		lo[3] = bpf_htonl(1);
	if (own && listens(ctx, own->addr, c->outbound_port)) {
		__builtin_memcpy(to->addr, own->addr, sizeof(to->addr));
	} else if (listens(ctx, lo, c->outbound_port)) {
		__builtin_memcpy(to->addr, lo, sizeof(to->addr));
	} else {
		/* a pod without a sidecar, in the configured cgroups */
		if (inbound(c, dst, to))
			return 1;
		SMM_COUNT(unmeshed);
		return 0;
	}
	if (xport(dst->port, SMM_X_OUT))
		return 0;
	to->port = c->outbound_port;
	SMM_COUNT(outbound);
	return 1;
}

static __always_inline void remember(void *ctx, const struct smm_dst *dst)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	bpf_map_update_elem(&smm_bycookie, &cookie, dst, BPF_ANY);
}

SEC("cgroup/connect4")
int smm_connect4(struct bpf_sock_addr *ctx)
{
	struct smm_conf *c = conf();
	struct smm_dst dst = {}, to = {};

	if (!c || ctx->type != SOCK_STREAM)
		return 1;
	sm_addr_from_v4(dst.addr, ctx->user_ip4);
	dst.port = bpf_ntohs((__u16)ctx->user_port);
	if (!redirect(ctx, c, &dst, &to))
		return 1;
	remember(ctx, &dst);
	ctx->user_ip4 = to.addr[3];
	ctx->user_port = bpf_htons(to.port);
	return 1;
}

SEC("cgroup/connect6")
int smm_connect6(struct bpf_sock_addr *ctx)
{
	struct smm_conf *c = conf();
	struct smm_dst dst = {}, to = {};

	if (!c || ctx->type != SOCK_STREAM)
		return 1;
	dst.addr[0] = ctx->user_ip6[0];
	dst.addr[1] = ctx->user_ip6[1];
	dst.addr[2] = ctx->user_ip6[2];
	dst.addr[3] = ctx->user_ip6[3];
	dst.port = bpf_ntohs((__u16)ctx->user_port);
	if (!redirect(ctx, c, &dst, &to))
		return 1;
	remember(ctx, &dst);
	ctx->user_ip6[0] = to.addr[0];
	ctx->user_ip6[1] = to.addr[1];
	ctx->user_ip6[2] = to.addr[2];
	ctx->user_ip6[3] = to.addr[3];
	ctx->user_port = bpf_htons(to.port);
	return 1;
}

static __always_inline void skops_local(struct bpf_sock_ops *skops, __u32 *a)
{
	if (skops->family == AF_INET) {
		sm_addr_from_v4(a, skops->local_ip4);
	} else {
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
	}
}

/* TCP_CONNECT_CB: the SYN is about to leave, the source port is chosen */
static __always_inline void moved(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct smm_dst *dst = bpf_map_lookup_elem(&smm_bycookie, &cookie);
	struct smm_tkey k = {};

	skops_local(skops, k.addr);
	k.port = (__u16)skops->local_port;
	k.lport = (__u16)bpf_ntohl(skops->remote_port);
	k.netns = is_local(k.addr) ? bpf_get_netns_cookie(skops) : 0;
	if (dst)
		bpf_map_update_elem(&smm_bytuple, &k, dst, BPF_ANY);
	else /* a tuple used before by a redirected connection */
		bpf_map_delete_elem(&smm_bytuple, &k);
}

/*
 * PASSIVE_ESTABLISHED. On readiness_port: the probe reached this pod's
 * sidecar at the pod's address, which is now a meshed pod's. On any other
 * port: if the local address is a meshed pod's of another netns, that pod
 * is gone and its address was given to a pod that is not probed as meshed
 * (the kubelet probes a pod's own readiness port before it is an
 * endpoint): it is no longer meshed.
 */
static __always_inline void accepted(struct bpf_sock_ops *skops,
				     const struct smm_conf *c)
{
	struct smm_nskey nk = {};
	struct smm_dst pod = {};
	struct smm_pod v = {}, *was;

	skops_local(skops, pod.addr);
	if (is_local(pod.addr))
		return;
	v.netns = bpf_get_netns_cookie(skops);
	if (skops->local_port != c->readiness_port) {
		was = bpf_map_lookup_elem(&smm_pods, &pod);
		if (was && was->netns != v.netns) {
			bpf_map_delete_elem(&smm_pods, &pod);
			SMM_COUNT(pods_moved);
		}
		return;
	}
	v.seen_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&smm_pods, &pod, &v, BPF_ANY);
	nk.netns = v.netns;
	nk.family = is_mapped(pod.addr) ? AF_INET : AF_INET6;
	bpf_map_update_elem(&smm_nsaddr, &nk, &pod, BPF_ANY);
	SMM_COUNT(pods_ready);
}

SEC("sockops")
int smm_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	struct smm_conf *c;

	/* first: the datapath's per-packet callbacks (the header option
	 * ones it asks for) run this program too, and pass here */
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	c = conf();
	if (!c || (skops->family != AF_INET && skops->family != AF_INET6))
		return 1;
	if (op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		moved(skops);
	else
		accepted(skops, c);
	return 1;
}

/*
 * SO_ORIGINAL_DST (SOL_IP) and IP6T_SO_ORIGINAL_DST (SOL_IPV6) on an
 * accepted socket whose connection was redirected: the address the app
 * asked for. Runs after the kernel's own handler; anything else is left as
 * it answered (an optlen above PAGE_SIZE is set to 0, which tells kernels
 * before 6.5 to keep the kernel's answer rather than fail with EFAULT).
 */
SEC("cgroup/getsockopt")
int smm_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct smm_tkey k = {};
	struct smm_dst *dst;
	void *end = ctx->optval_end;
	void *val = ctx->optval;
	__u32 p;

	if (ctx->optname != SO_ORIGINAL_DST ||
	    (ctx->level != SOL_IP && ctx->level != SOL_IPV6) || !sk)
		goto pass;
	if (ctx->level == SOL_IP && sk->family != AF_INET)
		goto pass;
	if (ctx->level == SOL_IPV6 && sk->family != AF_INET6)
		goto pass;
	if (sk->family == AF_INET) {
		sm_addr_from_v4(k.addr, sk->dst_ip4);
	} else {
		k.addr[0] = sk->dst_ip6[0];
		k.addr[1] = sk->dst_ip6[1];
		k.addr[2] = sk->dst_ip6[2];
		k.addr[3] = sk->dst_ip6[3];
	}
	/* a 4-byte load: dst_port is 16 bits wide from 5.18, 32 before */
	p = *(volatile __u32 *)&sk->dst_port;
	k.port = bpf_ntohs((__u16)p);
	k.lport = (__u16)sk->src_port;
	k.netns = is_local(k.addr) ? bpf_get_netns_cookie(ctx) : 0;
	dst = bpf_map_lookup_elem(&smm_bytuple, &k);
	if (!dst)
		goto pass;
	if (ctx->level == SOL_IP) {
		struct sockaddr_in *sin = val;

		if (!is_mapped(dst->addr) || val + sizeof(*sin) > end)
			goto pass;
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_port = bpf_htons(dst->port);
		sin->sin_addr.s_addr = dst->addr[3];
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = val;

		if (val + sizeof(*sin6) > end)
			goto pass;
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = bpf_htons(dst->port);
		sin6->sin6_addr.in6_u.u6_addr32[0] = dst->addr[0];
		sin6->sin6_addr.in6_u.u6_addr32[1] = dst->addr[1];
		sin6->sin6_addr.in6_u.u6_addr32[2] = dst->addr[2];
		sin6->sin6_addr.in6_u.u6_addr32[3] = dst->addr[3];
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	SMM_COUNT(answered);
	return 1;
pass:
	if (ctx->optlen > PAGE_SIZE)
		ctx->optlen = 0;
	return 1;
}

SEC("cgroup/getpeername4")
int smm_getpeer4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct smm_dst *dst = bpf_map_lookup_elem(&smm_bycookie, &cookie);

	if (dst && is_mapped(dst->addr)) {
		ctx->user_ip4 = dst->addr[3];
		ctx->user_port = bpf_htons(dst->port);
	}
	return 1;
}

SEC("cgroup/getpeername6")
int smm_getpeer6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct smm_dst *dst = bpf_map_lookup_elem(&smm_bycookie, &cookie);

	if (dst) {
		ctx->user_ip6[0] = dst->addr[0];
		ctx->user_ip6[1] = dst->addr[1];
		ctx->user_ip6[2] = dst->addr[2];
		ctx->user_ip6[3] = dst->addr[3];
		ctx->user_port = bpf_htons(dst->port);
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

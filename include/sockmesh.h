/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmesh.h - the one header the BPF datapath, sockmeshd, the sockmesh CLI
 * and the tests share: map key and value layouts, counters, limits.
 *
 * It must compile both under clang -target bpf (with vmlinux.h already
 * included) and in user space (with <linux/types.h>).
 */
#ifndef SOCKMESH_H
#define SOCKMESH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Layout version of everything under pin_dir; bump on any change below. */
#define SM_PIN_LAYOUT "v1" /* bpffs names may not contain dots */

/*
 * Every pinned map and program, once: X(IDX, name). The names are the pin
 * names and the skeleton's; prefixed, under 16 characters (BPF_OBJ_NAME_LEN).
 * core.h makes the enum, core.c the pin, open and skeleton tables from it.
 * The *1 policy maps are generation 1 (sm_ctl.policy_gen) of the maps
 * without the suffix (generation 0): reload fills the idle one and flips.
 */
#define SM_MAPS(X)                                                            \
	X(SOCKHASH, sm_sockhash)     /* struct sm_key -> socket */            \
	X(STATE, sm_state)	     /* socket -> struct sm_sock_state */     \
	X(COUNTERS, sm_counters)     /* 0 -> struct sm_counters per CPU */    \
	X(PORTS, sm_ports)	     /* port -> SM_PORT_* (generation 0) */   \
	X(CIDRS, sm_cidrs)	     /* prefix -> 1: cidrs (generation 0) */  \
	X(UNIQUE, sm_unique)	     /* prefix -> 1: node_unique (gen. 0) */  \
	X(CTL, sm_ctl)		     /* 0 -> struct sm_ctl */                 \
	X(FLOWS, sm_flows)	     /* slot -> struct sm_flow */             \
	X(PORTS1, sm_ports1)	     /* sm_ports, generation 1 */             \
	X(CIDRS1, sm_cidrs1)	     /* sm_cidrs, generation 1 */             \
	X(UNIQUE1, sm_unique1)	     /* sm_unique, generation 1 */            \
	X(CGSLOTS, sm_cgslots)	     /* cgroup id -> slot in sm_cgcounters */ \
	X(CGCOUNTERS, sm_cgcounters) /* slot -> struct sm_cg_counters per CPU */
#define SM_PROGS(X)                                                     \
	X(SOCKOPS, sm_sockops) /* cgroup sock_ops: select and record */ \
	X(SKMSG, sm_skmsg)     /* sk_msg on sm_sockhash: redirect */

#define SM_MAP_SOCKHASH "sm_sockhash"
#define SM_MAP_COUNTERS "sm_counters"

#define SM_PORTS_MAX	   65536 /* one sm_ports entry per TCP port */
#define SM_CIDRS_MAX	   1024	 /* prefixes per LPM map */
#define SM_SOCKETS_DEFAULT 65536 /* default max_sockets */
#define SM_CG_SLOTS	   256	 /* per-cgroup counter slots; 0 is "none" */
#define SM_CG_DEPTH	   16	 /* cgroup ancestors sockops looks through */

/*
 * Key of sm_sockhash: one established TCP socket, as seen from its own side.
 * The peer of a socket has the same key with local and remote swapped.
 *
 * netns:  netns cookie of the socket, or 0 when both addresses are in
 *         node_unique_cidrs (then sockets pair across namespaces).
 * addrs:  IPv6-sized, network byte order; IPv4 as ::ffff:a.b.c.d so that an
 *         IPv4 socket pairs with its dual-stack IPv6 peer.
 * ports:  host byte order, in the low 16 bits.
 */
struct sm_key {
	__u64 netns;
	__u32 local_ip[4];
	__u32 remote_ip[4];
	__u32 local_port;
	__u32 remote_port;
};

/* Per-socket state in sm_state (sk_storage), written once at establishment. */
struct sm_sock_state {
	struct sm_key peer; /* key of the socket our sends are redirected to */
	__u64 conn;	    /* connection id, the same at both ends; never 0 */
	__u32 flow;	    /* its slot in sm_flows */
	__u16 flags;	    /* SM_SF_* */
	__u16 dir;	    /* 0 at the active end, 1 at the passive end */
	__u16 cg_slot;	    /* its cgroup's slot in sm_cgcounters, 0: none */
};

/*
 * Value of sm_flows, one slot per connection (shared by colliding ones: a
 * slot whose conn is not ours is left alone). Tracks the run of small
 * messages sent one way without a message the other way.
 */
struct sm_flow {
	__u64 conn;
	__u32 last_dir; /* direction of the last message */
	__u32 run;	/* small messages in a row in that direction */
};

/*
 * Bulk small writes: redirecting costs the receiver a wake-up and a socket
 * lock handover per message, which the stack amortises by coalescing small
 * writes into large segments. Measured on 6.18 (iperf3, 2 cores): redirect
 * is ~0.5x of TCP at 1 KiB writes, ~0.85x at 16 KiB, ~1.7x at 32 KiB and
 * ~2x at 64 KiB and up. So a direction that sends SM_BULK_RUN messages in
 * a row, each under SM_BULK_MSG_MAX bytes, with nothing coming back, is a
 * small-write stream: it moves to the stack for good (order-safe). Request/
 * response traffic resets the run at every reply and stays redirected.
 */
#define SM_FLOWS	65536 /* slots in sm_flows, a power of two */
#define SM_BULK_RUN	128
#define SM_BULK_MSG_MAX (32 * 1024)

/* Connection id from the active end's key: both ends compute the same. */
static inline __u64 sm_conn_id(const struct sm_key *active)
{
	const __u32 *w = (const __u32 *)active;
	__u64 h = 0xcbf29ce484222325ULL; /* FNV-1a offset basis */

	for (unsigned int i = 0; i < sizeof(*active) / sizeof(__u32); i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL; /* FNV prime */
	}
	return h ? h : 1;
}

/*
 * SM_SF_STACK: this direction goes through the TCP/IP stack for good.
 * Set on the first message that misses its peer: bytes already sent through
 * the stack must be read before anything redirected, and the receiver reads
 * redirected bytes first, so stack -> redirect would reorder.
 */
#define SM_SF_STACK (1U << 0)

/* Value of sm_ctl (one entry): switches set by sockmeshd and the CLI. */
struct sm_ctl {
	__u32 flags;	  /* SM_CTL_* */
	__u32 policy_gen; /* 0 or 1: which policy maps sock_ops reads */
};

/*
 * SM_CTL_DRAIN: redirect nothing more; set by unload. Sockets cannot be
 * taken out of the map safely (the kernel frees their unread redirected
 * bytes), so they stay until they close, passing every message.
 */
#define SM_CTL_DRAIN (1U << 0)

/* Value of sm_ports, indexed by port (host byte order). */
#define SM_PORT_INCLUDE (1U << 0) /* listed in ports (or ports = *) */
#define SM_PORT_EXCLUDE (1U << 1) /* listed in exclude_ports: wins */

/* Key of the LPM maps sm_cidrs and sm_unique: addresses as in sm_key. */
struct sm_lpm_key {
	__u32 prefixlen; /* 0..128; IPv4 prefixes are offset by 96 */
	__u32 addr[4];
};

/*
 * Counters, one struct per CPU in sm_counters (PERCPU_ARRAY, one entry).
 * Order and names are the contract of `sockmesh status` and the metrics.
 */
#define SM_COUNTERS(X)                                                               \
	X(sockets_added)      /* sockets put into sm_sockhash */                     \
	X(sockets_add_failed) /* selected, but the map refused them (full...) */     \
	X(sockets_skipped) /* established in an attached cgroup, not selected */     \
	X(msgs_redirected)  /* sendmsg()s handed straight to the peer */             \
	X(bytes_redirected) /* their bytes */                                        \
	X(msgs_passed)	/* sendmsg()s that went through the TCP/IP stack */          \
	X(bytes_passed) /* their bytes */                                            \
	X(early_data) /* sockets that sent before establishment (TFO): stack */      \
	X(peer_misses) /* directions switched to the stack: peer absent */           \
	X(bulk_fallbacks) /* directions switched to the stack: small-write stream */ \
	X(msgs_drained)	   /* sendmsg()s passed because unload drained */            \
	X(redirect_errors) /* socket in the map but its state lost */

struct sm_counters {
#define SM_COUNTER_FIELD(name) __u64 name;
	SM_COUNTERS(SM_COUNTER_FIELD)
#undef SM_COUNTER_FIELD
};

/*
 * Per-cgroup counters: the subset of SM_COUNTERS that sock_ops and sk_msg
 * can attribute to the socket's accelerated cgroup (its sm_sock_state
 * cg_slot). One struct sm_cg_counters per slot and CPU in sm_cgcounters.
 */
#define SM_CG_COUNTERS(X)   \
	X(sockets_added)    \
	X(msgs_redirected)  \
	X(bytes_redirected) \
	X(msgs_passed)      \
	X(bytes_passed)

enum sm_cg_counter {
#define SM_CG_ENUM(name) SM_CG_##name,
	SM_CG_COUNTERS(SM_CG_ENUM)
#undef SM_CG_ENUM
		SM_CG_NR,
};

struct sm_cg_counters {
	__u64 v[SM_CG_NR]; /* indexed by enum sm_cg_counter */
};

/* IPv4 address (network byte order) -> IPv4-mapped IPv6 words. */
static inline void sm_addr_from_v4(__u32 out[4], __u32 be_addr)
{
	out[0] = 0;
	out[1] = 0;
	/* ::ffff:0:0/96, the third word in network byte order */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	out[2] = 0xffff0000U;
#else
	out[2] = 0x0000ffffU;
#endif
	out[3] = be_addr;
}

/* The key of the socket at the other end of the connection @k describes. */
static inline void sm_key_peer(struct sm_key *peer, const struct sm_key *k)
{
	peer->netns = k->netns;
	for (int i = 0; i < 4; i++) {
		peer->local_ip[i] = k->remote_ip[i];
		peer->remote_ip[i] = k->local_ip[i];
	}
	peer->local_port = k->remote_port;
	peer->remote_port = k->local_port;
}

/*
 * Port policy for a connection, from the sm_ports flags of its two ports.
 * Symmetric in (local, remote) so that both ends of a connection decide
 * alike: an excluded port on either side wins, else either side listed.
 */
static inline int sm_ports_select(__u8 local_flags, __u8 remote_flags)
{
	__u8 any = local_flags | remote_flags;

	if (any & SM_PORT_EXCLUDE)
		return 0;
	return (any & SM_PORT_INCLUDE) != 0;
}

#endif /* SOCKMESH_H */

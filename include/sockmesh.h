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
#define SM_PIN_LAYOUT "v7" /* bpffs names may not contain dots */

/*
 * Every pinned map and program, once: X(IDX, name). The names are the pin
 * names and the skeleton's; prefixed, under 16 characters (BPF_OBJ_NAME_LEN).
 * pins.h makes the enum, pins.c the pin, open and skeleton tables from it.
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
	X(CGCOUNTERS, sm_cgcounters) /* slot -> sm_cg_counters per CPU */     \
	X(PORTSTATS, sm_portstats)   /* port, netns -> sm_portstat */         \
	X(LISTEN, sm_listen)	     /* listener -> its address, cloned */
#define SM_PROGS(X)                                                     \
	X(SOCKOPS, sm_sockops) /* cgroup sock_ops: select and record */ \
	X(SKMSG, sm_skmsg)     /* sk_msg on sm_sockhash: redirect */

#define SM_MAP_SOCKHASH "sm_sockhash"
#define SM_MAP_COUNTERS "sm_counters"
#define SM_MAP_FLOWS	"sm_flows" /* the tests read these three by name */

#define SM_PORTS_MAX	   65536 /* one sm_ports entry per TCP port */
#define SM_CIDRS_MAX	   1024	 /* prefixes per LPM map */
#define SM_SOCKETS_DEFAULT 65536 /* default max_sockets */
#define SM_CG_SLOTS	   256	 /* per-cgroup counter slots; 0 is "none" */
#define SM_CG_DEPTH	   16	 /* cgroup ancestors sockops looks through */

/*
 * Key of sm_sockhash: one end of one TCP connection. It names the
 * connection by what network address translation leaves alone, so that both
 * ends of a connection that a mesh's iptables REDIRECTed or DNATed to a proxy
 * find each other: the active (connecting) end's address and port, and the
 * first sequence number after each end's SYN, the same at both ends at
 * establishment (measured through an OUTPUT REDIRECT: the client's
 * snd_una/rcv_nxt are the proxy's rcv_nxt/snd_una). The peer of a socket has
 * the same key with @end flipped.
 *
 * scope:       netns cookie of the socket, or 0 when the active address is
 *              in node_unique_cidrs (a pod address: then the two ends pair
 *              across namespaces). Loopback and other repeated addresses
 *              pair only inside one namespace.
 * active_ip:   IPv6-sized, network byte order; IPv4 as ::ffff:a.b.c.d so an
 *              IPv4 client pairs with its dual-stack IPv6 server.
 * active_port: host byte order.
 * active_seq:  the active end's ISN + 1; passive_seq: the passive end's.
 * end:         0 at the active end, 1 at the passive end.
 *
 * Two connections share a key only with the same client address and port
 * and both ISNs equal (2^-64 for two live connections of one client port).
 */
struct sm_key {
	__u64 scope;
	__u32 active_ip[4];
	__u32 active_port;
	__u32 active_seq;
	__u32 passive_seq;
	__u32 end;
};

/* What one end sees at establishment; input of sm_key_make(). */
struct sm_view {
	__u32 local_ip[4], remote_ip[4]; /* as in sm_key */
	__u32 local_port, remote_port;	 /* host byte order */
	__u32 snd_una, rcv_nxt;		 /* at the ESTABLISHED callback */
	__u32 passive;			 /* 1 at the accepting end */
};

/* Per-socket state in sm_state (sk_storage), written at establishment. */
struct sm_sock_state {
	struct sm_key peer; /* key of the socket our sends are redirected to */
	__u64 conn;	    /* connection id, the same at both ends; never 0 */
	__u32 flow;	    /* its slot in sm_flows */
	__u16 flags;	    /* SM_SF_* */
	__u16 dir;	    /* 0 at the active end, 1 at the passive end */
	__u32 rcv_nxt0; /* rcv_nxt at establishment: moved = stack bytes in */
	__u32 cb_flags; /* sock_ops callback flags we added (and clear) */
	__u16 cg_slot;	/* its cgroup's slot in sm_cgcounters, 0: none */
	__u16 pad;
};

/*
 * Value of sm_flows, one slot per connection (shared by colliding ones: a
 * slot whose conn is not ours is left alone). The one place both ends of a
 * connection can see: what the connecting end connected to (pairing, NAT),
 * the run of small messages sent one way without a message the other way,
 * which directions are on the stack and when each last redirected, which
 * ends have left the map, the kTLS and strict verdicts, and the window
 * variant's receiver figures.
 */
struct sm_flow {
	__u64 conn;
	__u64 last_ns;	   /* bpf_ktime_get_ns() of the last message */
	__u64 redir_ns[2]; /* of the last redirect, per direction; 0: never */
	__u32 last_dir;	   /* direction of the last message */
	__u32 run;	   /* small messages in a row, close together */
	__u8 stack[2];	   /* [dir]: that direction is on the stack for good */
	__u8 done[2];	   /* [dir]: ... and none of its redirects in flight */
	__u8 left[2];	   /* [dir]: that end has left sm_sockhash */
	__u8 skip;	   /* the active end was not accelerated: SM_SKIP_* */
	__u8 ulp;	 /* an end set TCP_ULP (kTLS): both ways on the stack */
	__u32 dst_ip[4]; /* what the active end connected to (before NAT) */
	__u32 dst_port;	 /* ... and its port */
	__u32 msgs;	 /* sendmsg()s of both ends, up to SM_SHORT_MSGS_MAX */
	/*
	 * [dir]: that end's SK_MSG program has run (an atomic add before it
	 * reads strict), or that end marked strict (an atomic add after):
	 * an end that has neither may be left at once by a peer that strict
	 * took to the stack (sm_strict_unsent()). 64 bits: the BPF atomics
	 * of every supported kernel.
	 */
	__u64 began[2];
	/*
	 * The window variant of the receiver-behind bound (before 6.2, see
	 * sm_win_report() in skmsg.bpf.c), per direction, wrapping: bytes
	 * redirected, of those what the receiver had read at its last
	 * report, and its SO_RCVBUF if the application set one (0: not).
	 */
	__u32 win_sent[2];
	__u32 win_read[2];
	__u32 win_limit[2];
	__u16 ps_slot; /* the active end's sm_portstats slot of its port */
	__u8 strict;   /* SM_STRICT_* that took it to the stack, both ways */
	__u8 splice;   /* its reader called splice() (counted once) */
};

/*
 * compat = strict (sm_ctl without SM_CTL_FAST): a connection one of whose
 * ends the kernel's sockmap paths would let tell it from TCP takes the
 * stack, both ways, and both ends leave the map. What the programs can
 * see of an end (struct sock, read through BTF), by rule:
 *
 * SM_STRICT_BLOCKING: its file is blocking (no O_NONBLOCK). A blocking
 *   recv() in tcp_bpf_recvmsg() returns EAGAIN when any wake-up finds no
 *   data (a signal, with or without SA_RESTART; another thread's send() or
 *   shutdown()), and MSG_WAITALL returns short. Seen at the connecting
 *   end's establishment (a blocking connect(): never in the map), at every
 *   sendmsg() for its own socket and, 6.2 and later, for its peer, and
 *   after each read (the window variant's reader trace), and when an
 *   accepted end leaves the map. An accepted end has no file before
 *   accept(), and a connecting end may turn blocking after a non-blocking
 *   connect(): such a socket that may have waited in the map marks the
 *   port (sm_portstat.strict; sm_strict_exposed() in skmsg.bpf.c), and
 *   later connections to it are not accelerated; one that sends first,
 *   unwaited, takes only its own connection out (hiredis).
 * SM_STRICT_RCVLOWAT: SO_RCVLOWAT above 1, which tcp_bpf ignores.
 * SM_STRICT_PEEK_OFF: SO_PEEK_OFF set, which tcp_bpf ignores.
 * SM_STRICT_SPLICE: its reader called splice(): tcp_splice_read() reads
 *   the TCP queue only, never redirected bytes. Seen at that call (the
 *   splice trace, 5.11 and later), which cannot come before it: the
 *   connection takes the stack then if nothing redirected waits unread
 *   (else order forbids it, and that connection keeps the gap), and the
 *   port is marked, so later connections stay on TCP from the start.
 *   Counted in splice_readers in both modes.
 */
#define SM_SKIP_SHORT	   1 /* sm_flow.skip: a short-connection port */
#define SM_SKIP_STRICT	   2 /* ... a strict rule */
#define SM_STRICT_BLOCKING 1
#define SM_STRICT_RCVLOWAT 2
#define SM_STRICT_PEEK_OFF 3
#define SM_STRICT_SPLICE   4
/* sm_portstat.strict: what compat = strict found on the port */
#define SM_PS_BLOCKING (1U << 0) /* a connection with a blocking end */
#define SM_PS_SPLICE   (1U << 1) /* a splice() reader */
#define SM_O_NONBLOCK  04000	 /* f_flags, as in <asm-generic/fcntl.h> */

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
/*
 * Only messages sent within SM_BULK_GAP_NS of the previous one count in the
 * run: a writer that outpaces the receiver's wake-ups. A low-rate push
 * (pub/sub, telemetry: 512 B every millisecond) is latency traffic and
 * stays redirected. small_write_gap_us sets it (sm_ctl.bulk_gap_us): a
 * slower machine (emulated, or a busy one) writes further apart.
 */
#define SM_BULK_GAP_US 50 /* small_write_gap_us's default */
#define SM_BULK_GAP_NS (SM_BULK_GAP_US * 1000ULL)

/*
 * Leaving the map. A socket whose peer no longer redirects to it and whose
 * redirected queue is empty is deleted from sm_sockhash by its own sock_ops
 * program: it is plain TCP again (no sockmap send/receive paths, FIONREAD
 * counts every byte). "No longer": the peer's direction is on the stack and
 * none of its redirects can still be in flight, which its SK_MSG program
 * proves (sm_flow.done) on a stack verdict that no other sendmsg() of that
 * socket overlaps, or, failing that, SM_LEAVE_GUARD_NS after its last
 * redirect.
 */
#define SM_RCVBUF_FLOOR	  (4 << 20) /* see sm_peer_behind() in skmsg.bpf.c */
#define SM_LEAVE_GUARD_NS (10 * 1000 * 1000ULL)

/* Connection id from either end's key (@end left out): the same at both. */
static inline __u64 sm_conn_id(const struct sm_key *k)
{
	__u32 w[sizeof(*k) / sizeof(__u32)];
	__u64 h = 0xcbf29ce484222325ULL; /* FNV-1a offset basis */

	/* a copy, not a cast: user space compilers keep strict aliasing */
	__builtin_memcpy(w, k, sizeof(w));
	for (unsigned int i = 0; i < sizeof(w) / sizeof(w[0]) - 1; i++) {
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
/*
 * SM_SF_BULK: this direction is a small-write stream; it moves to the stack
 * at its first message that finds the receiver's redirected queue empty.
 */
#define SM_SF_BULK (1U << 2)
/* SM_SF_LEFT: this socket has left sm_sockhash (it is plain TCP again). */
#define SM_SF_LEFT (1U << 1)

/* Value of sm_ctl (one entry): switches set by sockmeshd and the CLI. */
struct sm_ctl {
	__u32 flags;	   /* SM_CTL_* */
	__u32 policy_gen;  /* 0 or 1: which policy maps sock_ops reads */
	__u32 short_msgs;  /* short_conn_msgs of the config; 0: rule off */
	__u32 feat;	   /* SM_FEAT_* | SM_FEAT_SET it was loaded with */
	__u32 bulk_gap_us; /* small_write_gap_us; 0: SM_BULK_GAP_NS */
	__u32 pad;
};

/*
 * Short connections: a connection costs sockmesh more to set up and tear
 * down than plain TCP (a psock, socket storage, the sockhash entry, and
 * their RCU-deferred release), which its redirected messages win back only
 * if there are enough of them. Measured (nginx, wrk -c 64, a 100 B file):
 * one request per connection 0.75x of plain, two 0.97x, four 0.90x, eight
 * 1.05x, keep-alive 1.2x and up. So sock_ops keeps, per server port (what
 * the connecting end connected to), how many of its last connections
 * closed and how many of those had sent fewer than short_conn_msgs
 * messages (both ends together). Once SM_SHORT_SAMPLES have closed and at
 * least 7 in 8 were short, new connections to that port are not
 * accelerated (short_skipped), except one in SM_SHORT_PROBE, whose count
 * keeps the figure current; the counts halve at SM_SHORT_WINDOW closed.
 * Only while short connections keep closing, though: SM_SHORT_BURST of
 * them within the last SM_SHORT_FRESH_NS or so, so that a keep-alive
 * client that follows a run of short ones, or occasional short ones (a
 * health check, a client's connect() to test the address, as wrk does),
 * do not hold back the connections after them.
 */
struct sm_portstat {
	__u32 closed;	   /* accelerated connections closed (decayed) */
	__u32 short_conns; /* ... with fewer than short_msgs messages */
	__u32 skips;	   /* connections not accelerated, for the probes */
	__u32 port;	/* the port, for `sockmesh status` (0: never counted) */
	__u64 epoch_ns; /* start of the current SM_SHORT_FRESH_NS epoch */
	__u32 epoch_short; /* short connections closed in it */
	__u32 prev_short;  /* ... in the one before, if it just ended */
	__u32 strict; /* SM_PS_*: what strict found here, until a new listener */
	__u32 pad;
};

#define SM_SHORT_DEFAULT      16 /* short_conn_msgs default */
#define SM_SHORT_MSGS_MAX     65535
#define SM_SHORT_MSGS_DEFAULT 16 /* short_conn_msgs's default */
#define SM_SHORT_SAMPLES      32
#define SM_SHORT_WINDOW	      128
#define SM_SHORT_PROBE	      8 /* a power of two */
#define SM_SHORT_FRESH_NS     (100 * 1000 * 1000ULL)
#define SM_SHORT_BURST	      4

/* Were 7 in 8 of the last connections to the port of @ps short? */
static inline int sm_portstat_mostly_short(const struct sm_portstat *ps)
{
	return ps->closed >= SM_SHORT_SAMPLES &&
	       (__u64)ps->short_conns * 8 >= (__u64)ps->closed * 7;
}

/* ... and do they still close, at @now (CLOCK_MONOTONIC)? */
static inline int sm_portstat_short(const struct sm_portstat *ps, __u64 now)
{
	return sm_portstat_mostly_short(ps) &&
	       now - ps->epoch_ns < SM_SHORT_FRESH_NS &&
	       ps->epoch_short + ps->prev_short >= SM_SHORT_BURST;
}

/* A short connection to the port of @ps closed at @now. */
static inline void sm_portstat_short_closed(struct sm_portstat *ps, __u64 now)
{
	__u64 age = now - ps->epoch_ns;

	if (age >= SM_SHORT_FRESH_NS) {
		ps->prev_short =
			age < 2 * SM_SHORT_FRESH_NS ? ps->epoch_short : 0;
		ps->epoch_short = 0;
		ps->epoch_ns = now;
	}
	ps->epoch_short++;
}

/*
 * Kernel features the datapath can do without (cgroupd/lib/probe.c probes them;
 * SM_DATAPATH_RULES in probe.h says what each rule does without them). Set
 * in sockops.bpf.c's sm_feat before load, so the verifier drops the path a
 * kernel cannot run; bpf_cast_to_kern_ctx chooses the SK_MSG program.
 */
#define SM_FEAT_NETNS_COOKIE (1U << 0) /* bpf_get_netns_cookie in sock_ops */
#define SM_FEAT_KERN_CTX     (1U << 1) /* bpf_cast_to_kern_ctx: sm_skmsg */
#define SM_FEAT_CG_BTF	     (1U << 2) /* sock_cgroup_data.cgroup in BTF */
#define SM_FEAT_RECV_TRACE   (1U << 3) /* fexit/tcp_bpf_recvmsg + storage */
#define SM_FEAT_SIOCINQ	     (1U << 4) /* tcp_bpf_ioctl: FIONREAD sees psock */
#define SM_FEAT_ALL                                                 \
	(SM_FEAT_NETNS_COOKIE | SM_FEAT_KERN_CTX | SM_FEAT_CG_BTF | \
	 SM_FEAT_RECV_TRACE | SM_FEAT_SIOCINQ)
#define SM_FEAT_SET (1U << 31) /* in sm_ctl.feat: written at load */

/*
 * SM_CTL_DRAIN: redirect nothing more; set by unload. Every direction then
 * moves to the stack for good; an unloaded datapath has no sock_ops
 * callbacks left, so its sockets stay in the orphaned map until they close,
 * passing every message (a socket with unread redirected bytes cannot be
 * deleted: the kernel would free them).
 */
#define SM_CTL_DRAIN (1U << 0)
/* SM_CTL_FAST: compat = fast, the SM_STRICT_* rules are off. */
#define SM_CTL_FAST (1U << 1)

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
 * X(name, help): order, names and help texts (the metrics' HELP) are the
 * contract of `sockmesh status` and the metrics.
 */
#define SM_COUNTERS(X)                                                        \
	X(sockets_added, "sockets put into the socket map")                   \
	X(sockets_add_failed,                                                 \
	  "sockets selected but refused by the map (full)")                   \
	X(sockets_skipped,                                                    \
	  "sockets in an attached cgroup policy did not select")              \
	X(peers_paired, "accepted ends whose connecting end was in the map")  \
	X(peers_paired_nat,                                                   \
	  "accepted ends paired through NAT (the two ends saw other tuples)") \
	X(peers_unpaired,                                                     \
	  "accepted ends whose connecting end was not in the map")            \
	X(msgs_redirected, "sendmsg() calls handed straight to the peer")     \
	X(bytes_redirected, "bytes handed straight to the peer")              \
	X(msgs_passed, "sendmsg() calls that went through the TCP/IP stack")  \
	X(bytes_passed, "bytes that went through the TCP/IP stack")           \
	X(early_data, "sockets that sent before establishment (TFO): stack")  \
	X(peer_misses, "directions switched to the stack: peer absent")       \
	X(bulk_fallbacks, "directions switched to the stack: small writes")   \
	X(rcvbuf_fallbacks,                                                   \
	  "directions switched to the stack: receiver behind")                \
	X(slot_fallbacks,                                                     \
	  "directions switched to the stack: no flow slot to bound the "      \
	  "receiver (kernels before 6.2)")                                    \
	X(ulp_fallbacks,                                                      \
	  "directions switched to the stack: the socket or its peer set an "  \
	  "upper-layer protocol (kTLS)")                                      \
	X(strict_blocking,                                                    \
	  "connections kept on TCP (compat = strict): an end is a blocking "  \
	  "socket")                                                           \
	X(strict_rcvlowat,                                                    \
	  "connections kept on TCP (compat = strict): an end set "            \
	  "SO_RCVLOWAT")                                                      \
	X(strict_peek_off,                                                    \
	  "connections kept on TCP (compat = strict): an end set "            \
	  "SO_PEEK_OFF")                                                      \
	X(strict_splice,                                                      \
	  "connections moved to TCP (compat = strict): their reader used "    \
	  "splice()")                                                         \
	X(splice_readers,                                                     \
	  "connections whose reader called splice(), which misses "           \
	  "redirected bytes")                                                 \
	X(sockets_left, "sockets that left the map: plain TCP again")         \
	X(short_skipped,                                                      \
	  "connections not accelerated: their server port makes mostly "      \
	  "short connections (short_conn_msgs)")                              \
	X(msgs_drained, "sendmsg() calls passed because unload drained")      \
	X(redirect_errors, "sockets in the map whose state was lost")

struct sm_counters {
#define SM_COUNTER_FIELD(name, ...) __u64 name;
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
	*peer = *k;
	peer->end = !k->end;
}

/*
 * The key of the end that saw @v, in @scope. At the active end snd_una is
 * its ISN + 1 and rcv_nxt the passive end's; the passive end sees the same
 * two numbers the other way round.
 */
static inline void sm_key_make(struct sm_key *k, const struct sm_view *v,
			       __u64 scope)
{
	const __u32 *ip = v->passive ? v->remote_ip : v->local_ip;

	k->scope = scope;
	for (int i = 0; i < 4; i++)
		k->active_ip[i] = ip[i];
	k->active_port = v->passive ? v->remote_port : v->local_port;
	k->active_seq = v->passive ? v->rcv_nxt : v->snd_una;
	k->passive_seq = v->passive ? v->snd_una : v->rcv_nxt;
	k->end = v->passive;
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

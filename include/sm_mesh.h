/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sm_mesh.h - `[mesh] mode = connect`: what mesh/mesh.bpf.c and sockmeshd
 * share. The programs do what istio-init's nat rules do, without a rule:
 *
 *   cgroup/connect4, connect6   an app's connect() in a meshed pod (one whose
 *                               netns has a listener on outbound_port) goes
 *                               to that listener; a sidecar's (sidecar_uid)
 *                               connect() to a meshed pod's address goes to
 *                               that pod's inbound_port. The destination
 *                               asked for is kept by socket cookie.
 *   sock_ops                    at TCP_CONNECT_CB (the source port exists)
 *                               the cookie's destination moves to the
 *                               connection's tuple; a connection accepted
 *                               on readiness_port marks its local address
 *                               as a meshed pod's (and its netns's own)
 *   cgroup/getsockopt           SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST of an
 *                               accepted socket whose tuple was redirected;
 *                               every other call is left as the kernel
 *                               answered it
 *   cgroup/getpeername4, 6      the redirected socket's peer is what the
 *                               app connected to, as through a REDIRECT
 *
 * Pinned under pin_dir/SM_MESH_PIN_DIR, beside the datapath's directory;
 * bump its version on any change below (a pinned object is adopted).
 */
#ifndef SM_MESH_H
#define SM_MESH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SM_MESH_PIN_DIR	    "mesh-v1"
#define SM_MESH_DEFAULT_UID 1337

/* every pinned map and program of the mesh object, X(IDX, name) */
#define SM_MESH_MAPS(X)                                                       \
	X(CONF, smm_conf)	  /* 0 -> struct smm_conf */                  \
	X(XPORTS, smm_xports)	  /* port -> SMM_X_* */                       \
	X(BYCOOKIE, smm_bycookie) /* socket cookie -> struct smm_dst */       \
	X(BYTUPLE, smm_bytuple)	  /* struct smm_tkey -> struct smm_dst */     \
	X(PODS, smm_pods)	  /* address -> struct smm_pod */             \
	X(NSADDR, smm_nsaddr)	  /* struct smm_nskey -> the pod's address */ \
	X(COUNTERS, smm_counters) /* 0 -> struct smm_counters per CPU */

#define SM_MESH_PROGS(X)                                                 \
	X(CONNECT4, smm_connect4)     /* BPF_CGROUP_INET4_CONNECT */     \
	X(CONNECT6, smm_connect6)     /* BPF_CGROUP_INET6_CONNECT */     \
	X(SOCKOPS, smm_sockops)	      /* BPF_CGROUP_SOCK_OPS */          \
	X(GETSOCKOPT, smm_getsockopt) /* BPF_CGROUP_GETSOCKOPT */        \
	X(GETPEER4, smm_getpeer4)     /* BPF_CGROUP_INET4_GETPEERNAME */ \
	X(GETPEER6, smm_getpeer6)     /* BPF_CGROUP_INET6_GETPEERNAME */

#define SMM_BYCOOKIE_MAX 65536
#define SMM_BYTUPLE_MAX	 65536
#define SMM_PODS_MAX	 4096

/* smm_xports flags */
#define SMM_X_OUT 1 /* exclude_outbound_ports: an app's connect() passes */
#define SMM_X_IN  2 /* exclude_inbound_ports: a sidecar's connect() passes */

struct smm_conf {
	__u32 sidecar_uid;    /* the host's view of the sidecar's uid */
	__u16 outbound_port;  /* host byte order */
	__u16 inbound_port;   /* host byte order */
	__u16 readiness_port; /* host byte order */
	__u16 on;	      /* 0: every program passes everything */
};

/* A destination as the app asked for it. IPv4 as ::ffff:a.b.c.d. */
struct smm_dst {
	__u32 addr[4]; /* network byte order */
	__u16 port;    /* host byte order */
	__u16 pad;
};

/*
 * An accepted connection, as its listener's end sees it: the connecting
 * end's address and port and the port it reached. netns: the namespace's
 * cookie when the connecting address is loopback (repeated in every pod),
 * else 0 (pod addresses are unique on the node).
 */
struct smm_tkey {
	__u64 netns;
	__u32 addr[4]; /* the connecting end's, as in smm_dst */
	__u16 port;    /* the connecting end's, host byte order */
	__u16 lport;   /* the port it reached, host byte order */
	__u32 pad;
};

/* smm_pods: a meshed pod's address (key: struct smm_dst, port 0) */
struct smm_pod {
	__u64 netns;   /* the cookie of the netns its probe was accepted in */
	__u64 seen_ns; /* bpf_ktime_get_ns() of the last probe */
};

/* smm_nsaddr: a pod's own address, by its netns cookie and family */
struct smm_nskey {
	__u64 netns;
	__u32 family; /* AF_INET, AF_INET6 */
	__u32 pad;
};

struct smm_counters {
	__u64 outbound;	  /* an app's connect() sent to its sidecar */
	__u64 inbound;	  /* a sidecar's connect() sent to a pod's inbound */
	__u64 answered;	  /* SO_ORIGINAL_DST answered */
	__u64 unmeshed;	  /* an app's connect() in a pod with no sidecar */
	__u64 pods_ready; /* readiness connections accepted (pods seen) */
	__u64 pods_moved; /* a meshed address accepted a connection in another
			   * netns without a probe there: no longer meshed */
};

#endif

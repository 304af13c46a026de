/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bench.h - sockmesh-bench, the parts its files share.
 *
 *   sockmesh-bench.c  options, the sockmesh config and pins, the matrix
 *   bench_run.c       one run: server and client processes, cgroup, counters
 *   bench_io.c        the client and server loops (liburing), one process each
 *   bench_hist.c      the latency histogram
 *   bench_proto.c     --proto: redis and HTTP requests, response framing
 *   bench_report.c    table, JSON, markdown and TSV output
 *
 * Functions return 0 or -errno. The client and server processes leave their
 * results, and the message of an error, in a struct bench_shared that the
 * parent maps before forking them.
 */
#ifndef SM_BENCH_H
#define SM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockmesh.h"

enum bench_mode {
	BENCH_RR,	 /* ping-pong: size bytes, echoed back */
	BENCH_CRR,	 /* connect, one rr exchange, close */
	BENCH_STREAM,	 /* size-byte writes one way, verified by the reader */
	BENCH_STREAM_RW, /* the same with blocking write()/read(), no io_uring;
			  * the reader checks the byte count and the last block */
	BENCH_MODES,
};

/* Writes one way: stream and stream-rw. */
static inline bool bench_is_stream(int mode)
{
	return mode == BENCH_STREAM || mode == BENCH_STREAM_RW;
}

enum bench_transport {
	BENCH_TCP,   /* loopback TCP, in the cgroup the bench was started in */
	BENCH_ACCEL, /* loopback TCP in the sockmesh-accelerated cgroup */
	BENCH_UDS,   /* UNIX stream socket: the floor for same-host IPC */
	BENCH_TRANSPORTS,
};

/* What the client speaks (--proto); anything but echo needs --target. */
enum bench_proto {
	BENCH_PROTO_ECHO,  /* SIZE bytes, echoed back */
	BENCH_PROTO_REDIS, /* GET KEY, one RESP reply */
	BENCH_PROTO_HTTP,  /* GET PATH HTTP/1.1, a Content-Length response */
	BENCH_PROTOS,
};

/* A response's header (HTTP) or first line (redis) at most, and its body. */
#define BENCH_PROTO_HDR_MAX  (16 * 1024)
#define BENCH_PROTO_BODY_MAX (64UL * 1024 * 1024)
#define BENCH_PROTO_REQ_MAX  1024

extern const char *const bench_proto_names[BENCH_PROTOS];

/* The request of @proto for @arg (redis: the key; http: the path, with
 * @host its Host header) into @buf; 0, -E2BIG or -EINVAL. */
int bench_proto_request(enum bench_proto proto, const char *arg,
			const char *host, char *buf, size_t len, size_t *out);
/* The length of the response that starts @buf, once @len bytes of it are
 * in: > 0 known, 0 more bytes needed to tell, -EPROTO (the reason in @err)
 * when it is not a response the run accepts. */
long bench_proto_need(enum bench_proto proto, const unsigned char *buf,
		      size_t len, char *err, size_t errlen);

extern const char *const bench_mode_names[BENCH_MODES];
extern const char *const bench_transport_names[BENCH_TRANSPORTS];

/*
 * Latency histogram, log-linear (HDR style): values below 2^HIST_SUB_BITS
 * ns are exact; above, each power of two is cut into HIST_HALF buckets, so a
 * bucket is at most 1/64 of its values wide and its midpoint is within 0.8%
 * of any of them. Covers 1 ns to 2^HIST_MAX_BITS ns (17 s); longer values
 * land in the last bucket and are counted in @overflow.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1U << HIST_SUB_BITS)
#define HIST_HALF     (HIST_SUB / 2)
#define HIST_MAX_BITS 34
#define HIST_LIMIT    (1ULL << HIST_MAX_BITS)
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)

struct bench_hist {
	uint64_t n;	   /* values recorded */
	uint64_t sum;	   /* their sum, ns */
	uint64_t min, max; /* exact */
	uint64_t overflow; /* values at or above HIST_LIMIT */
	uint64_t count[HIST_BUCKETS];
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* The value at quantile @q (0..1]: the midpoint of its bucket. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);

/* One run, as the client and the server are told it. */
struct bench_params {
	enum bench_mode mode;
	enum bench_transport transport;
	size_t size; /* message (rr, crr) or write (stream) size, bytes */
	int conns;   /* connections, or crr slots, in flight at once */
	uint64_t warmup_ns;
	uint64_t duration_ns;
	bool rw_poll; /* stream-rw: poll() before every read(), as iperf3 */
	double rate;  /* rr open loop: requests/s over all connections;
		       * 0: closed loop */
	bool exp_arrivals; /* open loop: Poisson arrivals, else constant */
	uint64_t seed;	   /* open loop, exp: the arrivals' random seed */
	uint64_t stall_ns; /* test: the server stalls once this long */
	bool target;	   /* --target: no server of ours, connect there */
	enum bench_proto proto;
	const char *req; /* proto other than echo: the request */
	size_t req_len;
};

/* Open loop: a run is valid when the requests completed in the window are
 * at least this fraction of those scheduled in it (see perf/README.md). */
#define BENCH_RATE_VALID 0.99

/* Open loop: how long after the window the requests scheduled in it may take
 * to complete, at most (then the run is invalid). */
#define BENCH_DRAIN_MAX_NS (2ULL * 1000000000ULL)

/* Set by the client; the server samples its CPU time when it sees them. */
enum bench_phase {
	BENCH_PH_SETUP,	  /* connecting, warming up */
	BENCH_PH_MEASURE, /* the measured window */
	BENCH_PH_DRAIN,	  /* window over: in-flight operations finish */
};

/* What one process reports. */
struct bench_side {
	uint64_t ops;	      /* client: operations completed in the window */
	uint64_t ops_total;   /* client: operations completed; server:
			       * requests echoed (rr, crr) */
	uint64_t bytes_total; /* client: payload sent; server: received, and
			       * verified in stream mode */
	uint64_t window_ns;   /* client: length of the measured window */
	uint64_t cpu_ns;      /* user + system time within the window */
	uint64_t conns;	      /* server: connections accepted */
	uint64_t sched;	      /* open loop: requests scheduled in the window */
	uint64_t unfinished;  /* open loop: of those, not completed before
			       * the drain deadline */
	uint64_t resp_bytes;  /* client, --proto redis or http: of responses */
	int ret;	      /* 0 or -errno */
	char err[256];	      /* what failed, when ret is not 0 */
};

/* Shared memory between the parent and the two processes of a run. */
struct bench_shared {
	int phase; /* enum bench_phase; __atomic accesses */
	socklen_t addrlen;
	struct sockaddr_storage
		addr; /* set by the parent, port by the server */
	struct bench_side client, server;
	struct bench_hist hist; /* the client's latencies in the window */
};

uint64_t bench_now_ns(void);
/* The server's listening socket, in the caller's cgroup; returns the fd. */
int bench_listen(const struct bench_params *p, struct bench_shared *sh);
/* Serve until @ctl_fd reads EOF (the client is done) and every connection
 * has been closed by the client. */
int bench_server(const struct bench_params *p, struct bench_shared *sh, int lfd,
		 int ctl_fd);
/* Connect, warm up, measure, let in-flight operations finish, close. */
int bench_client(const struct bench_params *p, struct bench_shared *sh);

struct sm_pins;

/* What every run needs from the parent. */
struct bench_env {
	struct bench_shared *sh;    /* MAP_SHARED, seen by the children */
	struct sockaddr_storage ip; /* tcp, accel: the address, port 0 */
	socklen_t iplen;
	int cpu_server, cpu_client; /* -1: not pinned */
	int cg_fd;		    /* accel: the accelerated cgroup */
	const char *cg_name;	    /* its name, for messages */
	const struct sm_pins *pins; /* the pins, for counters; or NULL */
	bool target;		    /* --target: ip is the server's */
	pid_t parent;
	sigset_t child_mask; /* the children's signal mask */
	unsigned int run_no; /* names the UNIX socket of each run */
};

struct bench_result;
/* One run of @p: 0, or -errno with the reason in r->err (the first failure
 * of a result is kept); a run that passed is merged into @r. */
int bench_run(struct bench_env *env, const struct bench_params *p,
	      struct bench_result *r);

#define BENCH_SIZES_MAX	 32
#define BENCH_ROUNDS_MAX 100

/* The runs asked for: every mode x size x transport, @rounds times. */
struct bench_matrix {
	enum bench_mode modes[BENCH_MODES];
	int n_modes;
	size_t sizes[BENCH_SIZES_MAX];
	int n_sizes;
	enum bench_transport transports[BENCH_TRANSPORTS];
	int n_transports;
	int conns;
	int rounds;
	double duration, warmup;       /* seconds, per run */
	bool rw_poll;		       /* --rw-poll */
	double rate;		       /* --rate, or 0 */
	bool exp_arrivals;	       /* --arrivals exp */
	bool sweep;		       /* --sweep */
	double knee_us;		       /* --knee-us */
	uint64_t stall_ns;	       /* --test-server-stall */
	int cpu_server, cpu_client;    /* -1: not pinned */
	const char *target;	       /* --target HOST:PORT, or NULL */
	enum bench_proto proto;	       /* --proto */
	char proto_arg[256];	       /* its key (redis) or path (http) */
	char req[BENCH_PROTO_REQ_MAX]; /* its request (redis, http) */
	size_t req_len;
	char cmdline[1024];
};

/* The results of one mode x size x transport, its rounds merged. */
struct bench_result {
	struct bench_params p;
	int rounds;		/* rounds that ran */
	uint64_t ops;		/* in the measured windows */
	uint64_t window_ns;	/* sum of the windows */
	uint64_t cpu_client_ns; /* within the windows */
	uint64_t cpu_server_ns;
	double ops_per_s_round[BENCH_ROUNDS_MAX];
	struct bench_hist hist;
	bool have_counters;	/* sockmesh counters were readable */
	struct sm_counters ctr; /* their growth during the runs */
	uint64_t sched;	     /* open loop: requests scheduled in the windows */
	uint64_t unfinished; /* open loop: scheduled, not completed */
	uint64_t resp_bytes; /* --proto redis, http: bytes of the responses */
	uint64_t resp_n;     /* and how many */
	double load;	     /* sweep: fraction of the reference maximum */
	bool verified;	     /* every round completed and checked its data */
	char err[512];	     /* the first failure */
};

/* Index of a result: modes, then sizes, then transports (run order). */
static inline int bench_idx(const struct bench_matrix *m, int mi, int si,
			    int ti)
{
	return (mi * m->n_sizes + si) * m->n_transports + ti;
}

static inline int bench_nresults(const struct bench_matrix *m)
{
	return m->n_modes * m->n_sizes * m->n_transports;
}

double bench_ops_per_s(const struct bench_result *r);
/* Open loop: the rate the schedule asked for in the windows (requests/s). */
double bench_sched_per_s(const struct bench_result *r);
/* Open loop: the run kept up with its schedule (BENCH_RATE_VALID). Closed
 * loop: true. */
bool bench_rate_valid(const struct bench_result *r);
/* Payload bytes per second, both directions counted (rr and crr echo). */
double bench_bytes_per_s(const struct bench_result *r);
double bench_cpu_ns_per_op(const struct bench_result *r);
/* "64 B", "16 KiB", "1 MiB" */
void bench_fmt_size(char *buf, size_t len, size_t size);

void bench_print_table(FILE *out, const struct bench_matrix *m,
		       const struct bench_result *res);
void bench_print_json(FILE *out, const struct bench_matrix *m,
		      const struct bench_result *res);
void bench_print_markdown(FILE *out, const struct bench_matrix *m,
			  const struct bench_result *res);
void bench_print_tsv(FILE *out, const struct bench_matrix *m,
		     const struct bench_result *res);

/* --sweep: closed-loop maxima, then open-loop loads of the reference. */
#define BENCH_SWEEP_LOADS 7
extern const double bench_sweep_loads[BENCH_SWEEP_LOADS];

struct bench_sweep {
	size_t size;
	int n_transports;
	enum bench_transport transports[BENCH_TRANSPORTS];
	int ref;	/* index of the reference transport (tcp, else 0) */
	double ref_max; /* its closed-loop maximum, requests/s */
	double knee_us; /* the p99 bound of a knee */
	/* closed[ti]; open[li * n_transports + ti] */
	struct bench_result closed[BENCH_TRANSPORTS];
	struct bench_result open[BENCH_SWEEP_LOADS * BENCH_TRANSPORTS];
};

/* Index into sw->open of the highest load whose run and every lower one
 * were valid with p99 under the bound; -1: none. */
int bench_sweep_knee(const struct bench_sweep *sw, int ti);
void bench_print_sweep_table(FILE *out, const struct bench_matrix *m,
			     const struct bench_sweep *sw);
void bench_print_sweep_json(FILE *out, const struct bench_matrix *m,
			    const struct bench_sweep *sw);
void bench_print_sweep_markdown(FILE *out, const struct bench_matrix *m,
				const struct bench_sweep *sw);
void bench_print_sweep_tsv(FILE *out, const struct bench_matrix *m,
			   const struct bench_sweep *sw);

#endif

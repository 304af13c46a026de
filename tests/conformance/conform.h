/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * conform.h - differential conformance tests: every scenario runs twice in
 * one test, on plain loopback TCP (a private network namespace outside the
 * accelerated cgroup) and accelerated (the same, inside it), and what the
 * application can observe must be the same. The accelerated run must also
 * really have been redirected: the test checks the counter deltas.
 *
 * A scenario records observations (name, value, kind) in a struct result
 * shared with the test process; diff_run() compares them field by field and
 * prints both runs when they differ.
 */
#ifndef SM_CONFORM_H
#define SM_CONFORM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

enum obs_kind {
	OBS_SAME, /* must be equal in both runs, else the test fails */
	OBS_GAP,  /* a documented difference (docs/compat.md): reported */
	OBS_INFO, /* measured, printed, never compared (timing, sizes) */
};

#define RES_OBS	 64
#define NOTE_LEN 96

struct obs {
	char name[40];
	long long v;
	int kind;
	char note[NOTE_LEN]; /* OBS_GAP: which row of docs/compat.md */
};

struct result {
	int n;
	int broken;	/* the scenario could not run as written */
	char why[256];	/* what broke it */
	int eagain_gap; /* blocking recv()s that returned EAGAIN (known gap) */
	struct obs o[RES_OBS];
};

/* Record an observation; a name recorded twice keeps the last value. */
void res_same(struct result *r, const char *name, long long v);
void res_gap(struct result *r, const char *name, long long v, const char *note);
void res_info(struct result *r, const char *name, long long v);
/* The scenario failed in a way that is not a comparable observation. */
void res_broken(struct result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
long long res_get(const struct result *r, const char *name);

typedef int (*scenario_fn)(struct result *r, void *arg);

struct diff_opts {
	int timeout_s; /* per run; 0: 60 s */
	/* Called in the test process each time the scenario calls
	 * scen_checkpoint(n); the scenario waits until it returns. */
	void (*at_checkpoint)(struct env *e, int accel, int n, void *arg);
	void *cp_arg;
	int rlimit_nofile; /* > 0: raise RLIMIT_NOFILE in the scenario */
	/* Run the accelerated run first: the scenario may then learn from it
	 * (through shared memory its checkpoints fill) where the redirected
	 * bytes end, and the plain run repeats the same reads. */
	int accel_first;
};

struct diff {
	struct result plain, accel;
	struct sm_counters dp; /* counter deltas over the plain run */
	struct sm_counters da; /* ... over the accelerated run */
	int gaps;	       /* documented differences seen */
};

/*
 * Run @fn(@arg) on plain loopback, then accelerated; compare. Fails the test
 * (and returns -1) when a run broke, timed out, or an OBS_SAME observation
 * differs; checks that the plain run moved no counter and that the
 * accelerated one had no redirect error. @d may be NULL.
 */
int diff_run(struct env *e, const char *what, scenario_fn fn, void *arg,
	     struct diff *d, const struct diff_opts *o);

/*
 * The accelerated run of @d sent @total bytes, some redirected. The counters
 * count what each verdict saw: all of @total while the connection is in the
 * map; after a fallback, sends the stack then refused (EAGAIN) count too,
 * and bytes sent after both ends left the map (datapath.md, "Leaving the
 * map") are not seen at all. So the count may differ from @total only
 * after a fallback.
 */
void diff_check_bytes(struct env *e, const struct diff *d,
		      unsigned long long total);

/* One run only (accelerated or not) into @r; 0 unless it broke. */
int scen_run(struct env *e, int accel, scenario_fn fn, void *arg,
	     struct result *r, const struct diff_opts *o);

/* In a scenario: let the test process act (see diff_opts.at_checkpoint). */
void scen_checkpoint(int n);

/* Write config (with @accel_extra in [accelerate]) and start sockmeshd. */
int conf_start(struct env *e, const char *accel_extra);

/* sockmesh status --json: the number of sockets in the map, -1 on error. */
long env_sockets(struct env *e);

/*
 * Every socket in the pinned sockhash, through @fn with its key and whether
 * its connection lost its sm_flows slot to a later one (@lost: it then has
 * no small-write rule and cannot leave the map, datapath.md). Returns the
 * number of sockets walked or -errno.
 */
int env_map_walk(struct env *e,
		 void (*fn)(const struct sm_key *k, int lost, void *arg),
		 void *arg);

/* --- sockets ----------------------------------------------------------- */

struct pair_opt {
	int family; /* AF_INET (0) or AF_INET6 */
	int port;   /* fixed server port, 0: any */
	int client_port;
	int bufsize;	  /* > 0: SO_SNDBUF and SO_RCVBUF on both ends */
	int nonblock;	  /* both ends O_NONBLOCK */
	int zerocopy;	  /* SO_ZEROCOPY on the client before connect() */
	int rcvbuf_force; /* > 0: SO_RCVBUFFORCE on the listener (so the
			   * accepted end) before listen() */
};

/* A listener on loopback; its fd or -errno. */
int tcp_listener(const struct pair_opt *o);
/* Connect to @lfd's port from a new socket; fd or -errno. */
int tcp_connect_to(int lfd, const struct pair_opt *o);
/* A connected pair: *c the client (active end), *s the accepted one. */
int tcp_pair(int *c, int *s, const struct pair_opt *o);

/* tcp_pair() in a scenario (@o may be NULL): on failure the result says
 * why (res_broken); 0 or -errno. */
int scen_pair(struct result *r, int *c, int *s, const struct pair_opt *o);

/* FIONREAD of @fd, or -errno. */
int sock_inq(int fd);
/* Wait up to @ms until everything @fd sent was acknowledged (SIOCOUTQ 0):
 * the bytes are in the receiver's queue. 0 or -ETIMEDOUT. */
int wait_sent(int fd, int ms);

/*
 * Sockets belong to the cgroup their creator was in when socket() ran.
 * cgroup_step_out() moves the calling (single-threaded) process into the
 * cgroup of its parent process (outside the accelerated one, in the
 * accelerated run) and saves where it was; cgroup_step_back() returns it.
 * Both are no-ops when the two cgroups are the same (the plain run).
 */
struct cg_hop {
	char here[512];	 /* the cgroup it came from, relative path */
	char there[512]; /* the parent's */
};
int cgroup_step_out(const char *cg_mnt, struct cg_hop *h);
int cgroup_step_back(const char *cg_mnt, const struct cg_hop *h);

double now_s(void);
void sleep_ms(int ms);
int set_nonblock(int fd, int on);

/* The pattern byte at offset @off of stream @seed (as in the harness). */
static inline unsigned char pat(uint64_t off, unsigned seed)
{
	uint32_t x = (uint32_t)off * 2654435761u + seed * 40503u;

	return (unsigned char)((x >> 24) ^ (off >> 32));
}
void pat_fill(unsigned char *buf, size_t len, uint64_t off, unsigned seed);
/* Offset of the first byte that is not the pattern, or -1. */
long pat_check(const unsigned char *buf, size_t len, uint64_t off,
	       unsigned seed);

/* Send exactly @len pattern bytes from @off (blocking; MSG_NOSIGNAL);
 * 0 or -errno. */
int send_pat(int fd, size_t len, uint64_t off, unsigned seed);

/*
 * Receive exactly @len bytes into @buf with blocking recv(); a recv() that
 * returns EAGAIN on the blocking socket (the known gap of docs/datapath.md)
 * is counted in r->eagain_gap and retried after poll(). Returns the bytes
 * received (short at EOF) or -errno.
 */
ssize_t recv_exact(struct result *r, int fd, void *buf, size_t len);

/* A reader thread: reads until EOF or error, checks the pattern. */
struct reader {
	int fd;
	unsigned seed;
	size_t chunk;	  /* recv() size, 0: 64 KiB */
	int delay_us;	  /* sleep between reads (a slow receiver) */
	int start_ms;	  /* sleep before the first read (a late receiver) */
	size_t want;	  /* > 0: stop after this many bytes, not at EOF */
	size_t got;	  /* out: bytes, all checked */
	int err;	  /* out: errno of the error that ended it, 0 at EOF */
	long bad_at;	  /* out: first wrong byte, -1 */
	long eagain;	  /* out: blocking recv() EAGAIN (known gap) */
	uint64_t hash;	  /* out: FNV-1a of every byte */
	double t_end;	  /* out: when it ended */
	struct result *r; /* for eagain_gap */
	pthread_t tid;
};
void reader_start(struct reader *rd);
void reader_join(struct reader *rd);

uint64_t fnv(uint64_t h, const void *buf, size_t len);
#define FNV_INIT 0xcbf29ce484222325ULL

/* 0 ok, 1 EOF, 2 reset class (ECONNRESET, EPIPE), 3 EAGAIN, 4 other. */
int err_class(long ret, int err);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * harness.h - integration tests: real BPF, real sockets, real daemon.
 *
 * Every test runs in a forked process with its own cgroup, pin_dir, run_dir
 * and network namespaces; the runner removes them all afterwards, whatever
 * happened. ASSERT_* say what differed and evaluate to whether they held.
 */
#ifndef SM_HARNESS_H
#define SM_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "sockmesh.h"

struct env {
	const char *build;	/* build directory with the binaries */
	char name[64];		/* unique per test run */
	char cg_mnt[PATH_MAX];	/* cgroup2 mount */
	char cg_rel[128];	/* the test's cgroup, relative to the mount */
	char cg_path[PATH_MAX]; /* absolute */
	char pin_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char conf[PATH_MAX];
	char log[PATH_MAX]; /* daemon stderr */
	pid_t daemon;
	int failures;
	int skipped; /* env_skip() was called: the kernel lacks a feature */
};

typedef void (*test_fn)(struct env *e);
void register_test(const char *name, test_fn fn);

#define TEST(n)                                                     \
	static void test_##n(struct env *e);                        \
	__attribute__((constructor)) static void register_##n(void) \
	{                                                           \
		register_test(#n, test_##n);                        \
	}                                                           \
	static void test_##n(struct env *e)

bool check(struct env *e, bool ok, const char *file, int line, const char *fmt,
	   ...) __attribute__((format(printf, 5, 6)));

/* Mark the test skipped (it still fails if a check failed): only for a
 * feature the kernel lacks; @fmt says which. */
void env_skip(struct env *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define ASSERT_TRUE(cond, what)                                               \
	check(e, !!(cond), __FILE__, __LINE__, "%s: expected true: %s", what, \
	      #cond)
#define ASSERT_EQ(a, b, what)                                                \
	({                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);          \
		check(e, _a == _b, __FILE__, __LINE__,                       \
		      "%s: %s = %lld, expected %s = %lld", what, #a, _a, #b, \
		      _b);                                                   \
	})
#define ASSERT_GE(a, b, what)                                               \
	({                                                                  \
		long long _a = (long long)(a), _b = (long long)(b);         \
		check(e, _a >= _b, __FILE__, __LINE__,                      \
		      "%s: %s = %lld, expected >= %s = %lld", what, #a, _a, \
		      #b, _b);                                              \
	})
#define ASSERT_LT(a, b, what)                                                  \
	({                                                                     \
		long long _a = (long long)(a), _b = (long long)(b);            \
		check(e, _a < _b, __FILE__, __LINE__,                          \
		      "%s: %s = %lld, expected < %s = %lld", what, #a, _a, #b, \
		      _b);                                                     \
	})
#define ASSERT_GT(a, b, what)                                                  \
	({                                                                     \
		long long _a = (long long)(a), _b = (long long)(b);            \
		check(e, _a > _b, __FILE__, __LINE__,                          \
		      "%s: %s = %lld, expected > %s = %lld", what, #a, _a, #b, \
		      _b);                                                     \
	})
#define ASSERT_STR_HAS(hay, needle, what)                             \
	check(e, strstr((hay), (needle)) != NULL, __FILE__, __LINE__, \
	      "%s: '%s' not found in: %s", what, needle, hay)

/* --- config and daemon ------------------------------------------------- */

/* Write the test's config: its pin_dir, run_dir and cgroup, plus @extra
 * lines appended to [accelerate] (may be ""), and @daemon_extra to [daemon]. */
int env_write_config(struct env *e, const char *daemon_extra,
		     const char *extra);
/* Start build/sockmeshd -c conf; wait until its pid file appears. */
int env_start_daemon(struct env *e);
/* Send @sig to the daemon and reap it; returns its exit status or -1. */
int env_stop_daemon(struct env *e, int sig);
/* Run a command (NULL-terminated argv) and capture stdout+stderr into @out;
 * returns the exit status (or 128+signal). */
int env_run(char *out, size_t len, char *const argv[]);
/* build/sockmesh status --json: the counters and the socket count. */
int env_counters(struct env *e, struct sm_counters *c, long *sockets);

/* The first "@key": N in @json; -1 if absent. */
long long env_json_num(const char *json, const char *key);
/* Ask the running daemon over its control socket (sm_ctl_request): 0 on
 * "ok", -EREMOTEIO on "error" (the reason in @out), else -errno. */
int env_ctl(struct env *e, const char *req, char *out, size_t len);

/* --- processes in the test's cgroup and namespaces --------------------- */

#define IN_CGROUP 1 /* join the accelerated cgroup */
#define NEW_NETNS 2 /* a private network namespace with lo up */

/* Move the calling process into the test's cgroup; 0 or -errno. */
int env_join_cgroup(struct env *e);
/* Fork; the child joins what @flags say, runs @fn(@arg) and exits with its
 * return value. */
pid_t env_spawn(struct env *e, int flags, int (*fn)(void *), void *arg);
/* The same, into the cgroup at the absolute path @cg (IN_CGROUP ignored). */
pid_t env_spawn_at(struct env *e, const char *cg, int flags, int (*fn)(void *),
		   void *arg);
/* Wait for @pid; its exit status, or 128+signal; -1 after @timeout_s. */
int env_wait(pid_t pid, int timeout_s);

/* --- traffic ----------------------------------------------------------- */

struct xfer {
	int family;	   /* of the listener: AF_INET or AF_INET6 */
	int v6only;	   /* for AF_INET6 listeners: 0 accepts IPv4 too */
	int client_family; /* 0: same as family */
	int port;	   /* server port, 0: any */
	int client_port;   /* 0: any */
	size_t size;	   /* bytes each way */
	unsigned seed;	   /* of the byte pattern */
	int ready_fd;	   /* > 0: write 'r' once connected, read 'g' */
	long eagain;	   /* out: blocking recv()s that returned EAGAIN */
};

/* Connect a pair of sockets and send @size pattern bytes each way at once,
 * checking every byte received; 0 when both directions arrived exact. */
int xfer_run(struct xfer *x);
int xfer_child(void *arg); /* env_spawn adapter for xfer_run */

/* A stream from client to server for as long as @stop_fd stays unreadable;
 * checks every byte; 0 when all arrived exact and in order. */
struct stream {
	int stop_fd;
	int ready_fd; /* written once connected */
	unsigned seed;
};
int stream_child(void *arg);

/* A free TCP port on 127.0.0.1 (bound, then closed), or -1. */
int env_free_port(void);
/* Open fds of @pid, or -1. */
int env_count_fds(pid_t pid);
/* VmRSS of @pid in KiB, or -1. */
long env_rss_kib(pid_t pid);

#endif

/* --- BPF objects, read directly ---------------------------------------- */

/* fd of the pinned counters map (kept open, it outlives an unload). */
int env_counters_fd(struct env *e);
/* SM_FEAT_* the running datapath was loaded with (| SM_FEAT_SET), 0 if
 * none is loaded: the kernel's variant (cgroupd/lib/probe.h) */
__u32 env_feat(struct env *e);
/* Does the datapath keep per-cgroup counters? If not (a kernel before
 * 5.15), the test is marked skipped with the missing feature named. */
bool env_has_cg_counters(struct env *e);
/* Is the receiver-behind rule the window reported at the receiver's own
 * writes (before 6.2, without the reader trace)? Then a direction whose
 * receiver does not write redirects SM_RCVBUF_FLOOR bytes, then takes the
 * stack (docs/datapath.md, "Kernels"). */
bool env_window_at_writes(struct env *e);
int env_read_counters_fd(int fd, struct sm_counters *c);
/* Programs attached to the test's cgroup at the sock_ops hook. */
int env_sockops_attached(struct env *e);
/* The same for the cgroup directory @cg_path. */
int env_sockops_attached_at(const char *cg_path);

/* Run build/sockmesh with @args (NULL-terminated, after the command name
 * and "-c conf" are added); output in @out, exit status returned. */
int env_cli(struct env *e, char *out, size_t len, const char *cmd, ...);

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loop_priv.h - what loop.c (the ring, the clients), control.c (the control
 * socket's requests) and metrics.c (the HTTP endpoint) share. Not an API.
 */
#ifndef SM_LOOP_PRIV_H
#define SM_LOOP_PRIV_H

#include <stdbool.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <liburing.h>

#include "http.h"
#include "loop.h"

#define RING_ENTRIES	256
#define BATCH		64
#define STATUS_INTERVAL 60 /* seconds between STATUS= refreshes */

enum op_kind {
	OP_SIGNAL,   /* read from the signalfd */
	OP_ACCEPT,   /* on a pool's listener */
	OP_RECV,     /* a client's bytes */
	OP_SEND,     /* a client's reply */
	OP_DEADLINE, /* a client's whole exchange */
	OP_TIMER,    /* the STATUS= refresh */
	OP_INOTIFY,  /* systemd's cgroups made or removed */
	OP_IGNORE,   /* cancels, timeout removals */
};

enum pool_id { POOL_CTL, POOL_METRICS, POOLS };

struct client;
struct pool;

/* What each submission is for: its user_data points to one of these. */
struct op {
	enum op_kind kind;
	struct pool *pool; /* OP_ACCEPT */
	int fd;		   /* OP_ACCEPT: the listener */
	struct client *cl; /* OP_RECV, OP_SEND, OP_DEADLINE */
};

/* A reply's body, shared by the scrapes of one batch. */
struct body {
	int refs;
	size_t len;
	char *data; /* malloc()ed */
};

enum cl_state { CL_READ, CL_WRITE, CL_DRAIN, CL_DEAD };

struct client {
	struct client *prev, *next; /* in its pool, oldest first */
	struct pool *pool;
	int fd;
	enum cl_state state;
	int pending; /* submissions in flight */
	bool recv_armed, send_armed, deadline_armed;
	struct op recv, send, deadline;
	struct __kernel_timespec ts;
	/* the reply: head (status line or HTTP headers), then body */
	char head[256];
	size_t head_len, total, sent;
	struct body *body;
	struct msghdr mh;
	struct iovec iov[2];
	struct ucred cred; /* control socket: who connected (SO_PEERCRED) */
	size_t len;	   /* request bytes in buf */
	char buf[SM_HTTP_REQ_MAX + 1];
};

struct pool {
	const char *name; /* the endpoint label */
	int id, max, n;
	struct client *head, *tail;
	struct op *accept; /* armed on accept->fd, or NULL */
	unsigned long long evicted, deadline;
};

enum stop { RUNNING, STOP, STOP_UNLOAD };

struct sm_loop {
	struct io_uring ring;
	struct sm_daemon *d;
	int sfd;
	struct signalfd_siginfo si;
	struct op sig, timer, ignore, ino_op;
	/* inotify on the parents of systemd's cgroups (cgroup.h) */
	int ino;
	struct {
		int wd;
		char parent[SM_CGROUP_LEN];
	} watch[SM_LOOP_WATCH_MAX];
	int n_watch;
	char ino_buf[4096] __attribute__((aligned(8)));
	struct pool pools[POOLS];
	struct client *dead; /* DEAD clients waiting for their CQEs */
	struct __kernel_timespec tick;
	struct body *metrics; /* the last /metrics, or NULL */
	__u64 metrics_at;     /* when it was rendered, monotonic ms */
	enum stop stop;
	int unload_fd; /* the client that asked to unload */
};

/* loop.c */
struct io_uring_sqe *loop_sqe(struct sm_loop *l);
struct body *loop_body_new(char *data, size_t len); /* takes @data */
void loop_body_put(struct body *b);
int loop_arm_recv(struct sm_loop *l, struct client *cl);
/* Close @cl now; reap() frees it once its last CQE has come. */
void loop_client_kill(struct sm_loop *l, struct client *cl);
/* Reply cl->head, then @body (its reference is taken), unless @head_only. */
void loop_client_reply(struct sm_loop *l, struct client *cl, struct body *body,
		       bool head_only);
void loop_reload(struct sm_loop *l, const char *path, char *msg, size_t len,
		 int *ok);
/* The status as JSON, human text or Prometheus text; NULL if the pins
 * cannot be read. */
struct body *loop_render(struct sm_loop *l, int as_json, int prometheus);

/* control.c: a request line of the control socket ('\n' now '\0') */
void sm_control_handle(struct sm_loop *l, struct client *cl);
/* "ok\n" or "error\n", then @text or @body */
void sm_control_reply(struct sm_loop *l, struct client *cl, int ok,
		      const char *text, struct body *body);

/* metrics.c: the HTTP request in cl->buf; @eof: the client sent all */
void sm_metrics_handle(struct sm_loop *l, struct client *cl, bool eof);
/* Forget the cached /metrics render (a reload changed what it says). */
void sm_metrics_forget(struct sm_loop *l);

#endif

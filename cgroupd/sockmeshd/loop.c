// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loop.c - see loop.h: the ring, the clients and their states; what they
 * ask is control.c's and metrics.c's.
 *
 * A client goes READ (its request) -> WRITE (the reply, through the ring)
 * -> DRAIN (metrics: our side shut, its bytes read until EOF, so that
 * closing does not reset a reply it has not read yet) -> DEAD, and is
 * freed once the kernel has answered every submission it had. Each
 * submission's user_data is one of the client's struct op; cancels and
 * timeout removals carry loop.ignore.
 *
 * The CQEs are taken in batches. In each, the control socket's and the
 * signals' are handled before the metrics endpoint's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <liburing.h>

#include "cgroup.h"
#include "rundir.h"
#include "log.h"
#include "loop_priv.h"
#include "notify.h"
#include "status.h"

struct io_uring_sqe *loop_sqe(struct sm_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) { /* full: hand what is queued to the kernel first */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

void loop_body_put(struct body *b)
{
	if (b && !--b->refs) {
		free(b->data);
		free(b);
	}
}

struct body *loop_body_new(char *data, size_t len)
{
	struct body *b = calloc(1, sizeof(*b));

	if (!b) {
		free(data);
		return NULL;
	}
	b->refs = 1;
	b->data = data;
	b->len = len;
	return b;
}

/* --- arming ------------------------------------------------------------- */

static int arm_signal(struct sm_loop *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, l->sfd, &l->si, sizeof(l->si), 0);
	io_uring_sqe_set_data(sqe, &l->sig);
	return 0;
}

static int arm_accept(struct sm_loop *l, struct op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

static int arm_timer(struct sm_loop *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return -EBUSY;
	l->tick.tv_sec = STATUS_INTERVAL;
	io_uring_prep_timeout(sqe, &l->tick, 0, 0);
	io_uring_sqe_set_data(sqe, &l->timer);
	return 0;
}

int loop_arm_recv(struct sm_loop *l, struct client *cl)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	size_t room = SM_HTTP_REQ_MAX - cl->len;

	if (!sqe)
		return -EBUSY;
	if (cl->state == CL_DRAIN) { /* what it sends now is thrown away */
		cl->len = 0;
		room = SM_HTTP_REQ_MAX;
	}
	io_uring_prep_recv(sqe, cl->fd, cl->buf + cl->len, room, 0);
	io_uring_sqe_set_data(sqe, &cl->recv);
	cl->recv_armed = true;
	cl->pending++;
	return 0;
}

static int arm_send(struct sm_loop *l, struct client *cl)
{
	struct io_uring_sqe *sqe = loop_sqe(l);
	size_t off = cl->sent;
	int n = 0;

	if (!sqe)
		return -EBUSY;
	if (off < cl->head_len) {
		cl->iov[n++] =
			(struct iovec){cl->head + off, cl->head_len - off};
		off = 0;
	} else {
		off -= cl->head_len;
	}
	if (cl->total > cl->head_len)
		cl->iov[n++] = (struct iovec){cl->body->data + off,
					      cl->total - cl->head_len - off};
	cl->mh = (struct msghdr){.msg_iov = cl->iov, .msg_iovlen = n};
	io_uring_prep_sendmsg(sqe, cl->fd, &cl->mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, &cl->send);
	cl->send_armed = true;
	cl->pending++;
	return 0;
}

static int arm_deadline(struct sm_loop *l, struct client *cl)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return -EBUSY;
	cl->ts.tv_sec = SM_LOOP_DEADLINE;
	io_uring_prep_timeout(sqe, &cl->ts, 0, 0);
	io_uring_sqe_set_data(sqe, &cl->deadline);
	cl->deadline_armed = true;
	cl->pending++;
	return 0;
}

/* Cancel the submission whose user_data is @op; its CQE still comes. */
static void cancel(struct sm_loop *l, struct op *op)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return; /* the shutdown() or the deadline ends it */
	if (op->kind == OP_DEADLINE)
		io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)op, 0);
	else
		io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, &l->ignore);
}

/* Keep the metrics accept on the listener the running config has. */
static void sync_metrics(struct sm_loop *l)
{
	struct pool *p = &l->pools[POOL_METRICS];
	int fd = p->accept ? p->accept->fd : -1;

	if (fd == l->d->metrics_fd)
		return;
	if (p->accept) {
		cancel(l, p->accept);
		p->accept = NULL; /* freed when its CQE comes */
	}
	if (l->d->metrics_fd < 0)
		return;
	p->accept = calloc(1, sizeof(*p->accept));
	if (!p->accept)
		return;
	*p->accept = (struct op){
		.kind = OP_ACCEPT, .pool = p, .fd = l->d->metrics_fd};
	arm_accept(l, p->accept);
}

static int arm_inotify(struct sm_loop *l)
{
	struct io_uring_sqe *sqe = loop_sqe(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, l->ino, l->ino_buf, sizeof(l->ino_buf), 0);
	io_uring_sqe_set_data(sqe, &l->ino_op);
	return 0;
}

/* Does the cgroup of the first @n bytes of @cg exist? */
static bool cg_exists(const struct sm_loop *l, const char *cg, int n)
{
	char path[PATH_MAX];
	struct stat sb;

	return (size_t)snprintf(path, sizeof(path), "%s/%.*s", l->d->cg_mnt, n,
				cg) < sizeof(path) &&
	       !stat(path, &sb) && S_ISDIR(sb.st_mode);
}

/* Watch the first @n bytes of @cg (relative to the mount; 0: the mount). */
static int watch_dir(struct sm_loop *l, const char *cg, int n)
{
	char path[PATH_MAX];
	int wd;

	if (l->n_watch >= SM_LOOP_WATCH_MAX)
		return -ENOSPC;
	if ((size_t)snprintf(path, sizeof(path), "%s/%.*s", l->d->cg_mnt, n,
			     cg) >= sizeof(path))
		return -ENAMETOOLONG;
	wd = inotify_add_watch(
		l->ino, path, IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_ONLYDIR);
	if (wd < 0)
		return -errno;
	l->watch[l->n_watch].wd = wd;
	snprintf(l->watch[l->n_watch].parent, sizeof(l->watch[0].parent),
		 "%.*s", n, cg);
	l->n_watch++;
	return 0;
}

/*
 * Watch, for each systemd cgroup the running config names, every directory
 * on its path that exists below the mount (and the mount itself while the
 * first is missing): a template's slice (system-foo.slice) is made with
 * its first instance and removed when systemd stops the slice, and a
 * cgroup directory that goes gets no event of its own (kernfs sends no
 * IN_DELETE_SELF), only its parent does. Returns true if a wanted cgroup,
 * or a directory on its way, exists unseen: made between the last apply
 * and this watch, so no event will say so.
 */
static bool sync_watches(struct sm_loop *l)
{
	const struct sm_config *cfg = &l->d->cfg;
	int old[SM_LOOP_WATCH_MAX], n_old = l->n_watch;
	bool missed = false;

	/* a watch kept is never removed meanwhile: no event is lost; adding
	 * a watched directory again gives the same wd */
	for (int i = 0; i < n_old; i++)
		old[i] = l->watch[i].wd;
	l->n_watch = 0;
	for (int i = 0; l->ino >= 0 && i < l->d->n_cg; i++) {
		const char *cg = cfg->cgroups[i], *next;
		int len = (int)strlen(cg), ret = 0, deepest = -1;

		if (!sm_cgroup_systemd_owned(cg))
			continue;
		/* each ancestor, top down, while they exist */
		for (int n = 1; n < len && !ret; n++) {
			if (cg[n] != '/')
				continue;
			if (!cg_exists(l, cg, n))
				break;
			ret = watch_dir(l, cg, n);
			deepest = n;
		}
		/* the mount: a top-level unit's parent, or the first missing */
		if (!ret && deepest < 0) {
			ret = watch_dir(l, cg, 0);
			deepest = 0;
		}
		if (ret) {
			pr_warn("cannot watch the path of cgroup /%s: %s; it "
				"is attached at the next reload",
				cg, strerror(-ret));
			continue;
		}
		/* made meanwhile: the cgroup, or the directory below the
		 * deepest watched one */
		next = strchr(cg + deepest + (deepest > 0), '/');
		if (l->d->cg_fds[i] < 0 && cg_exists(l, cg, len))
			missed = true;
		else if (next && cg_exists(l, cg, (int)(next - cg)))
			missed = true;
	}
	for (int i = 0; i < n_old; i++) {
		bool kept = false;

		for (int k = 0; k < l->n_watch; k++)
			kept |= l->watch[k].wd == old[i];
		if (!kept)
			inotify_rm_watch(l->ino, old[i]);
	}
	return missed;
}

/*
 * Is @name, made or removed in the directory of @wd, a cgroup we want or
 * a directory on the way to one?
 */
static bool wanted_cgroup(struct sm_loop *l, int wd, const char *name)
{
	char cg[SM_CGROUP_LEN * 2];
	size_t n;

	for (int i = 0; i < l->n_watch; i++) {
		if (l->watch[i].wd != wd)
			continue;
		n = (size_t)snprintf(cg, sizeof(cg), "%s%s%s",
				     l->watch[i].parent,
				     l->watch[i].parent[0] ? "/" : "", name);
		for (int k = 0; k < l->d->n_cg; k++)
			if (!strncmp(cg, l->d->cfg.cgroups[k], n) &&
			    (!l->d->cfg.cgroups[k][n] ||
			     l->d->cfg.cgroups[k][n] == '/'))
				return true;
	}
	return false;
}

/*
 * Apply the running config again and move the watches: until a pass finds
 * nothing made meanwhile (bounded: a path has few directories).
 */
static void refresh_cgroups(struct sm_loop *l)
{
	char err[SM_ERR_LEN];

	for (int pass = 0; pass < 8; pass++) {
		if (daemon_refresh(l->d, err, sizeof(err)))
			pr_warn("%s", err);
		if (!sync_watches(l))
			break;
	}
	sm_metrics_forget(l); /* another set of cgroups attached */
	daemon_notify_status(l->d);
}

static void on_inotify(struct sm_loop *l, int res)
{
	bool refresh = false;

	for (int off = 0; off + (int)sizeof(struct inotify_event) <= res;) {
		const struct inotify_event *ev =
			(const void *)(l->ino_buf + off);

		if (ev->len && (ev->mask & IN_ISDIR) &&
		    wanted_cgroup(l, ev->wd, ev->name)) {
			pr_info("cgroup %s was %s", ev->name,
				ev->mask & IN_DELETE ? "removed"
						     : "made (by systemd?)");
			refresh = true;
		}
		off += sizeof(*ev) + ev->len;
	}
	if (refresh)
		refresh_cgroups(l);
	if (res > 0 || res == -EINTR || res == -EAGAIN)
		arm_inotify(l);
	else
		pr_warn("inotify: %s: systemd's cgroups are attached at the "
			"next reload only",
			res < 0 ? strerror(-res) : "closed");
}

/* --- clients ------------------------------------------------------------ */

static void list_del(struct client **head, struct client **tail,
		     struct client *cl)
{
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		*head = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	else if (tail)
		*tail = cl->prev;
	cl->prev = cl->next = NULL;
}

/* Free the DEAD clients whose last CQE has come: after each batch, so
 * that no completion of the batch points to freed memory. */
static void reap(struct sm_loop *l)
{
	struct client *cl = l->dead, *next;

	for (; cl; cl = next) {
		next = cl->next;
		if (cl->pending)
			continue;
		list_del(&l->dead, NULL, cl);
		loop_body_put(cl->body);
		free(cl);
	}
}

/* Close @cl now; reap() frees it once its last CQE has come. */
void loop_client_kill(struct sm_loop *l, struct client *cl)
{
	struct pool *p = cl->pool;

	if (cl->state == CL_DEAD)
		return;
	cl->state = CL_DEAD;
	list_del(&p->head, &p->tail, cl);
	p->n--;
	cl->next = l->dead;
	if (l->dead)
		l->dead->prev = cl;
	l->dead = cl;
	if (cl->fd >= 0) {
		/* wakes what waits on it, though the ring holds the file;
		 * else the close alone, so the peer's EOF means it is closed */
		if (cl->recv_armed || cl->send_armed)
			shutdown(cl->fd, SHUT_RDWR);
		close(cl->fd);
		cl->fd = -1;
	}
	if (cl->recv_armed)
		cancel(l, &cl->recv);
	if (cl->send_armed)
		cancel(l, &cl->send);
	if (cl->deadline_armed)
		cancel(l, &cl->deadline);
}

static void client_new(struct sm_loop *l, struct pool *p, int fd)
{
	struct client *cl;

	if (p->n >= p->max) { /* the oldest goes, the new one stays */
		pr_debug("%s: %d clients, dropping the oldest", p->name, p->n);
		p->evicted++;
		loop_client_kill(l, p->head);
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(fd);
		return;
	}
	cl->pool = p;
	cl->fd = fd;
	cl->state = CL_READ;
	cl->recv = (struct op){.kind = OP_RECV, .cl = cl};
	cl->send = (struct op){.kind = OP_SEND, .cl = cl};
	cl->deadline = (struct op){.kind = OP_DEADLINE, .cl = cl};
	cl->prev = p->tail;
	if (p->tail)
		p->tail->next = cl;
	else
		p->head = cl;
	p->tail = cl;
	p->n++;
	cl->cred.uid = (uid_t)-1;
	if (p->id == POOL_CTL) {
		socklen_t sl = sizeof(cl->cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cl->cred, &sl))
			cl->cred = (struct ucred){.pid = 0, .uid = (uid_t)-1};
	}
	if (arm_deadline(l, cl) || loop_arm_recv(l, cl))
		loop_client_kill(l, cl);
}

/* Reply @head_len bytes of cl->head, then @body (its reference is
 * taken), @body_len of it sent unless @head_only. */
void loop_client_reply(struct sm_loop *l, struct client *cl, struct body *body,
		       bool head_only)
{
	size_t blen = body && !head_only ? body->len : 0;

	cl->body = body;
	cl->total = cl->head_len + blen;
	cl->sent = 0;
	cl->state = CL_WRITE;
	if (!cl->total || arm_send(l, cl))
		loop_client_kill(l, cl);
}

/*
 * The reply is out. A TCP client: shut our side and read its bytes until
 * it is done, as a close with bytes unread would reset the connection and
 * could take the reply with it. On the control socket (AF_UNIX) the reply
 * stays readable whatever we do: close now.
 */
static void client_drain(struct sm_loop *l, struct client *cl)
{
	if (cl->pool->id == POOL_CTL) {
		loop_client_kill(l, cl);
		return;
	}
	cl->state = CL_DRAIN;
	shutdown(cl->fd, SHUT_WR);
	if (loop_arm_recv(l, cl))
		loop_client_kill(l, cl);
}

/* --- what the clients ask ----------------------------------------------- */

void loop_reload(struct sm_loop *l, const char *path, char *msg, size_t len,
		 int *ok)
{
	sm_notify("RELOADING=1\nMONOTONIC_USEC=%llu", sm_monotonic_usec());
	*ok = !daemon_reload(l->d, path, msg, len);
	sm_metrics_forget(l); /* a scrape after a reload sees it */
	sync_metrics(l);
	if (sync_watches(l))
		refresh_cgroups(l);
	sm_notify("READY=1");
	daemon_notify_status(l->d);
}

/* The status as JSON, human text or Prometheus text; NULL if the pins
 * cannot be read. */
struct body *loop_render(struct sm_loop *l, int as_json, int prometheus)
{
	static struct sm_status st;
	struct pool *c = &l->pools[POOL_CTL], *m = &l->pools[POOL_METRICS];
	struct sm_status_daemon sd = {
		.reloads = l->d->reloads,
		.reload_failures = l->d->reload_failures,
		.ctl_evicted = c->evicted,
		.ctl_deadline = c->deadline,
		.metrics_evicted = m->evicted,
		.metrics_deadline = m->deadline,
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int ret;

	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	ret = sm_status_read(&l->d->pins, l->d->cfg.run_dir, &st);
	if (!ret)
		sm_status_waiting(&st, &l->d->cfg);
	if (!ret && prometheus)
		sm_status_prometheus(&st, &sd, f);
	else if (!ret && as_json)
		sm_status_json(&st, f);
	else if (!ret)
		sm_status_human(&st, f);
	fclose(f);
	if (ret) {
		free(buf);
		return NULL;
	}
	return loop_body_new(buf, len);
}

/* --- completions -------------------------------------------------------- */

static void on_recv(struct sm_loop *l, struct client *cl, int res)
{
	bool eof = res == 0;
	char *nl;

	if (cl->state == CL_DEAD)
		return;
	if (res < 0 || (eof && (cl->state == CL_DRAIN || !cl->len))) {
		loop_client_kill(l, cl); /* done, gone, or a silent close */
		return;
	}
	cl->len += res;
	if (cl->state == CL_DRAIN) {
		if (loop_arm_recv(l, cl))
			loop_client_kill(l, cl);
		return;
	}
	if (cl->state != CL_READ)
		return;
	cl->buf[cl->len] = '\0';
	if (cl->pool->id == POOL_METRICS) {
		sm_metrics_handle(l, cl, eof);
		return;
	}
	nl = memchr(cl->buf, '\n', cl->len);
	if (nl || eof) {
		if (nl)
			*nl = '\0';
		sm_control_handle(l, cl);
	} else if (cl->len >= SM_CTL_MAX) {
		sm_control_reply(l, cl, 0, "request line too long\n", NULL);
	} else if (loop_arm_recv(l, cl)) {
		loop_client_kill(l, cl);
	}
}

static void on_send(struct sm_loop *l, struct client *cl, int res)
{
	if (cl->state != CL_WRITE)
		return;
	if (res <= 0) {
		loop_client_kill(l, cl);
		return;
	}
	cl->sent += res;
	if (cl->sent < cl->total) {
		if (arm_send(l, cl))
			loop_client_kill(l, cl);
		return;
	}
	client_drain(l, cl);
}

static void on_signal(struct sm_loop *l, int res)
{
	char msg[PATH_MAX + SM_ERR_LEN * 2];
	int ok;

	if (res != sizeof(l->si)) {
		pr_err("signalfd: %s", res < 0 ? strerror(-res) : "short read");
		l->stop = STOP;
		return;
	}
	if (l->si.ssi_signo == SIGHUP) {
		pr_info("SIGHUP: reloading %s", l->d->cfg.path);
		loop_reload(l, NULL, msg, sizeof(msg), &ok);
	} else {
		pr_info("%s: stopping", strsignal(l->si.ssi_signo));
		l->stop = STOP;
		return;
	}
	arm_signal(l);
}

static void on_accept(struct sm_loop *l, struct op *op, int res)
{
	struct pool *p = op->pool;

	if (p->id == POOL_METRICS && op != p->accept) {
		/* a listener since replaced */
		if (res >= 0)
			close(res);
		free(op);
		return;
	}
	if (res >= 0)
		client_new(l, p, res);
	else if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED)
		pr_debug("accept on the %s socket: %s", p->name,
			 strerror(-res));
	arm_accept(l, op);
}

static void on_cqe(struct sm_loop *l, struct op *op, int res)
{
	struct client *cl = op->cl;

	switch (op->kind) {
	case OP_SIGNAL:
		on_signal(l, res);
		return;
	case OP_ACCEPT:
		on_accept(l, op, res);
		return;
	case OP_TIMER:
		daemon_notify_status(l->d);
		arm_timer(l);
		return;
	case OP_INOTIFY:
		on_inotify(l, res);
		return;
	case OP_IGNORE:
		return;
	case OP_RECV: /* its client is freed by reap() at the earliest */
		cl->recv_armed = false;
		cl->pending--;
		on_recv(l, cl, res);
		break;
	case OP_SEND:
		cl->send_armed = false;
		cl->pending--;
		on_send(l, cl, res);
		break;
	case OP_DEADLINE:
		cl->deadline_armed = false;
		cl->pending--;
		if (res == -ETIME && cl->state != CL_DEAD) {
			/* a drain that outlives it is no failure */
			if (cl->state != CL_DRAIN)
				cl->pool->deadline++;
			pr_debug("%s: a client's %d s are up, closing it",
				 cl->pool->name, SM_LOOP_DEADLINE);
			loop_client_kill(l, cl);
		}
		break;
	}
}

/* The pool a completion belongs to: the control socket's and the
 * signals' come first in each batch. */
static int cqe_pool(const struct op *op)
{
	if (op->kind == OP_ACCEPT)
		return op->pool->id;
	if (op->cl)
		return op->cl->pool->id;
	return POOL_CTL;
}

int sm_loop_run(struct sm_loop *l)
{
	struct {
		struct op *op;
		int res;
	} batch[BATCH];
	struct io_uring_cqe *cqes[BATCH];
	struct pool *c = &l->pools[POOL_CTL];
	int ret;

	c->accept = calloc(1, sizeof(*c->accept));
	if (!c->accept)
		return -ENOMEM;
	*c->accept =
		(struct op){.kind = OP_ACCEPT, .pool = c, .fd = l->d->ctl_fd};
	ret = arm_signal(l);
	if (!ret)
		ret = arm_accept(l, c->accept);
	if (!ret)
		ret = arm_timer(l);
	if (!ret && l->ino >= 0)
		ret = arm_inotify(l);
	if (ret)
		return ret;
	sync_metrics(l);
	if (sync_watches(l))
		refresh_cgroups(l);
	while (l->stop == RUNNING) {
		unsigned int n;

		ret = io_uring_submit_and_wait(&l->ring, 1);
		if (ret < 0 && ret != -EINTR)
			return ret;
		n = io_uring_peek_batch_cqe(&l->ring, cqes, BATCH);
		for (unsigned int i = 0; i < n; i++) {
			batch[i].op = io_uring_cqe_get_data(cqes[i]);
			batch[i].res = cqes[i]->res;
		}
		io_uring_cq_advance(&l->ring, n);
		for (int pool = 0; pool < POOLS; pool++)
			for (unsigned int i = 0; i < n && l->stop == RUNNING;
			     i++)
				if (batch[i].op &&
				    cqe_pool(batch[i].op) == pool)
					on_cqe(l, batch[i].op, batch[i].res);
		reap(l);
	}
	return 0;
}

struct sm_loop *sm_loop_new(struct sm_daemon *d, int sfd)
{
	struct sm_loop *l = calloc(1, sizeof(*l));
	int ret;

	if (!l) {
		pr_err("event loop: %s", strerror(ENOMEM));
		return NULL;
	}
	ret = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
	if (ret) {
		pr_err("cannot set up io_uring for the event loop: %s%s",
		       strerror(-ret),
		       ret == -EPERM || ret == -ENOSYS
			       ? " (disabled by kernel.io_uring_disabled, or by a seccomp profile: allow io_uring_setup/enter/register for sockmeshd)"
			       : "");
		free(l);
		return NULL;
	}
	l->d = d;
	l->sfd = sfd;
	l->unload_fd = -1;
	l->sig = (struct op){.kind = OP_SIGNAL};
	l->timer = (struct op){.kind = OP_TIMER};
	l->ignore = (struct op){.kind = OP_IGNORE};
	l->ino_op = (struct op){.kind = OP_INOTIFY};
	l->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (l->ino < 0)
		pr_warn("inotify: %s: systemd's cgroups are attached at a "
			"reload only",
			strerror(errno));
	l->pools[POOL_CTL] = (struct pool){
		.name = "control", .id = POOL_CTL, .max = SM_LOOP_CTL_MAX};
	l->pools[POOL_METRICS] = (struct pool){.name = "metrics",
					       .id = POOL_METRICS,
					       .max = SM_LOOP_METRICS_MAX};
	return l;
}

bool sm_loop_unloading(const struct sm_loop *l)
{
	return l->stop == STOP_UNLOAD;
}

int sm_loop_take_unload_fd(struct sm_loop *l)
{
	int fd = l->unload_fd;

	l->unload_fd = -1;
	return fd;
}

static void free_all(struct client *cl)
{
	while (cl) {
		struct client *next = cl->next;

		if (cl->fd >= 0)
			close(cl->fd);
		loop_body_put(cl->body);
		free(cl);
		cl = next;
	}
}

void sm_loop_free(struct sm_loop *l)
{
	if (!l)
		return;
	io_uring_queue_exit(&l->ring);
	for (int i = 0; i < POOLS; i++) {
		free_all(l->pools[i].head);
		/* an accept replaced by a reload is lost with the ring */
		free(l->pools[i].accept);
	}
	free_all(l->dead);
	loop_body_put(l->metrics);
	if (l->unload_fd >= 0)
		close(l->unload_fd);
	if (l->ino >= 0)
		close(l->ino);
	free(l);
}

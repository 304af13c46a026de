// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd - load or adopt the datapath, attach it to the configured
 * cgroups, fill the policy maps, then serve: signals, the control socket,
 * the metrics endpoint and timers, in one io_uring event loop that sleeps
 * until something happens. Never in the data path: with on_exit = keep,
 * acceleration outlives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "common.h"
#include "config.h"
#include "core.h"
#include "daemon.h"
#include "notify.h"
#include "probe.h"
#include "status.h"

#define RING_ENTRIES	    64
#define CLIENT_TIMEOUT	    5  /* seconds a client has to send its request */
#define STATUS_INTERVAL	    60 /* seconds between STATUS= refreshes */
#define SEND_TIMEOUT	    5  /* seconds to write a reply */
#define METRICS_CLIENTS_MAX 64

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: sockmeshd [-c FILE] [--check]\n"
		"\n"
		"Load the sockmesh datapath, attach it to the configured cgroups and\n"
		"stay in the foreground, logging to stderr.\n"
		"\n"
		"  -c, --config FILE  config file (default %s,\n"
		"                     built-in defaults if that file does not exist)\n"
		"      --check        validate the config, print it and exit\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n"
		"\n"
		"Signals: SIGHUP reloads the config (all or nothing), SIGTERM/SIGINT\n"
		"stop (on_exit decides keep or detach). `sockmesh reload` and\n"
		"`sockmesh unload` talk to it over %s in run_dir.\n",
		SM_CONF_DEFAULT, SM_CTL_SOCK);
}

/* libbpf's own messages: its warnings always, its debug output on debug. */
/*
 * SOCKMESH_DATAPATH_WITHOUT=netns_cookie,kern_ctx,cg_btf,recv_trace: the variant
 * of a kernel that lacks those features (sockmeshd(8)), so that every
 * variant can be tested on one kernel. 0, or -EINVAL on an unknown name.
 */
static int feat_without(__u32 *feat, const char *list)
{
	static const struct {
		const char *name;
		__u32 feat;
	} names[] = {
		{"netns_cookie", SM_FEAT_NETNS_COOKIE},
		{"kern_ctx", SM_FEAT_KERN_CTX},
		{"cg_btf", SM_FEAT_CG_BTF},
		{"recv_trace", SM_FEAT_RECV_TRACE},
	};
	const char *p = list;

	while (p && *p) {
		size_t n = strcspn(p, ", "), i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (n == strlen(names[i].name) &&
			    !strncmp(p, names[i].name, n))
				break;
		if (n && i == sizeof(names) / sizeof(names[0]))
			return -EINVAL;
		if (n)
			*feat &= ~names[i].feat;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/*
 * Say which datapath this kernel gets, and each rule that works otherwise
 * than on a kernel that has every feature (probe.h, SM_DATAPATH_RULES).
 */
static void log_datapath(__u32 feat)
{
	struct sm_rule r[SM_RULES_NR];
	int n = 0;

	sm_datapath_rules(feat, r);
	for (int i = 0; i < SM_RULES_NR; i++)
		if (r[i].lacks) {
			pr_warn("this kernel lacks %s: %s is \"%s\", see "
				"docs/datapath.md, \"Kernels\"",
				r[i].lacks, r[i].name, r[i].way);
			n++;
		}
	pr_info("datapath: %s, %s", sm_probe_skmsg(feat),
		n ? "with the rules above for this kernel"
		  : "every rule as on current kernels");
}

/* --- the event loop ----------------------------------------------------- */

enum op_kind {
	OP_SIGNAL,	   /* read from the signalfd */
	OP_CTL_ACCEPT,	   /* accept on the control socket */
	OP_METRICS_ACCEPT, /* accept on the metrics listener */
	OP_RECV,	   /* a client's request bytes */
	OP_RECV_TIMEOUT,   /* linked to OP_RECV */
	OP_TIMER,	   /* the STATUS= refresh */
	OP_CANCEL,	   /* cancelling a stale metrics accept */
};

struct client;

/* What each submission is for: its user_data points to one of these. */
struct op {
	enum op_kind kind;
	int fd;		   /* the listener, for accepts */
	struct client *cl; /* for OP_RECV and OP_RECV_TIMEOUT */
};

struct client {
	struct client *prev, *next; /* in loop.clients */
	int fd;
	int http;    /* a metrics client, else a control one */
	int pending; /* submissions in flight; freed at 0 once done */
	int done;
	size_t len;
	struct op recv, timeout;
	struct __kernel_timespec ts;
	char buf[SM_CTL_MAX];
};

enum stop { RUNNING, STOP, STOP_UNLOAD };

struct loop {
	struct io_uring ring;
	struct sm_daemon *d;
	int sfd;
	struct signalfd_siginfo si;
	struct op sig, ctl_accept, timer, cancel;
	struct op *metrics_accept; /* armed on metrics_fd, or NULL */
	int metrics_fd;		   /* the fd it is armed on */
	int n_clients;
	struct client *clients; /* every client not yet freed */
	struct __kernel_timespec tick;
	enum stop stop;
	int unload_fd; /* the client that asked to unload: told when done */
};

static struct io_uring_sqe *sqe_get(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) { /* full: hand what is queued to the kernel first */
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static int arm_signal(struct loop *l)
{
	struct io_uring_sqe *sqe = sqe_get(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, l->sfd, &l->si, sizeof(l->si), 0);
	io_uring_sqe_set_data(sqe, &l->sig);
	return 0;
}

static int arm_accept(struct loop *l, struct op *op)
{
	struct io_uring_sqe *sqe = sqe_get(l);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, op);
	return 0;
}

static int arm_timer(struct loop *l)
{
	struct io_uring_sqe *sqe = sqe_get(l);

	if (!sqe)
		return -EBUSY;
	l->tick.tv_sec = STATUS_INTERVAL;
	io_uring_prep_timeout(sqe, &l->tick, 0, 0);
	io_uring_sqe_set_data(sqe, &l->timer);
	return 0;
}

/* Keep the metrics accept on the listener the running config has. */
static void sync_metrics(struct loop *l)
{
	struct io_uring_sqe *sqe;

	if (l->metrics_fd == l->d->metrics_fd)
		return;
	if (l->metrics_accept) {
		sqe = sqe_get(l);
		if (sqe) {
			io_uring_prep_cancel(sqe, l->metrics_accept, 0);
			io_uring_sqe_set_data(sqe, &l->cancel);
		}
		l->metrics_accept = NULL; /* freed when its CQE comes */
	}
	l->metrics_fd = l->d->metrics_fd;
	if (l->metrics_fd < 0)
		return;
	l->metrics_accept = calloc(1, sizeof(*l->metrics_accept));
	if (!l->metrics_accept)
		return;
	l->metrics_accept->kind = OP_METRICS_ACCEPT;
	l->metrics_accept->fd = l->metrics_fd;
	arm_accept(l, l->metrics_accept);
}

static int arm_recv(struct loop *l, struct client *cl)
{
	struct io_uring_sqe *sqe, *to;

	if (io_uring_sq_space_left(&l->ring) < 2)
		io_uring_submit(&l->ring);
	sqe = io_uring_get_sqe(&l->ring);
	to = sqe ? io_uring_get_sqe(&l->ring) : NULL;
	if (!to)
		return -EBUSY;
	io_uring_prep_recv(sqe, cl->fd, cl->buf + cl->len,
			   sizeof(cl->buf) - cl->len - 1, 0);
	io_uring_sqe_set_data(sqe, &cl->recv);
	sqe->flags |= IOSQE_IO_LINK;
	cl->ts.tv_sec = CLIENT_TIMEOUT;
	io_uring_prep_link_timeout(to, &cl->ts, 0);
	io_uring_sqe_set_data(to, &cl->timeout);
	cl->pending += 2;
	return 0;
}

static void client_free(struct loop *l, struct client *cl)
{
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		l->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl);
	l->n_clients--;
}

static void client_done(struct loop *l, struct client *cl);

static void client_new(struct loop *l, int fd, int http)
{
	struct client *cl;
	struct timeval tv = {.tv_sec = SEND_TIMEOUT};

	if (l->n_clients >= METRICS_CLIENTS_MAX ||
	    !(cl = calloc(1, sizeof(*cl)))) {
		close(fd);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	cl->fd = fd;
	cl->http = http;
	cl->recv = (struct op){.kind = OP_RECV, .cl = cl};
	cl->timeout = (struct op){.kind = OP_RECV_TIMEOUT, .cl = cl};
	cl->next = l->clients;
	if (l->clients)
		l->clients->prev = cl;
	l->clients = cl;
	l->n_clients++;
	if (arm_recv(l, cl))
		client_done(l, cl);
}

static void client_done(struct loop *l, struct client *cl)
{
	if (!cl->done) {
		cl->done = 1;
		if (cl->fd >= 0)
			close(cl->fd);
		cl->fd = -1;
	}
	if (!cl->pending)
		client_free(l, cl);
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

static void notify_status(const struct sm_daemon *d)
{
	__u32 sockets = 0;

	sm_core_count_sockets(&d->core, &sockets);
	sm_notify(
		"STATUS=attached to %d cgroup%s, %u sockets, %llu reloads (%llu refused)",
		d->n_cg, d->n_cg == 1 ? "" : "s", sockets, d->reloads,
		d->reload_failures);
}

static void reload(struct loop *l, const char *path, char *msg, size_t len,
		   int *ok)
{
	sm_notify("RELOADING=1\nMONOTONIC_USEC=%llu", sm_monotonic_usec());
	*ok = !daemon_reload(l->d, path, msg, len);
	sync_metrics(l);
	sm_notify("READY=1");
	notify_status(l->d);
}

/* Render the status into a malloc()ed buffer: JSON or human text. */
static char *render_status(struct loop *l, int as_json, int prometheus,
			   size_t *len)
{
	static struct sm_status st;
	struct sm_status_daemon sd = {.reloads = l->d->reloads,
				      .reload_failures = l->d->reload_failures};
	char *buf = NULL;
	FILE *f;
	int ret;

	f = open_memstream(&buf, len);
	if (!f)
		return NULL;
	ret = sm_status_read(&l->d->core, l->d->cfg.run_dir, &st);
	if (ret)
		fprintf(f, "cannot read %s: %s\n", l->d->core.dir,
			strerror(-ret));
	else if (prometheus)
		sm_status_prometheus(&st, &sd, f);
	else if (as_json)
		sm_status_json(&st, f);
	else
		sm_status_human(&st, f);
	fclose(f);
	if (ret) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void handle_ctl(struct loop *l, struct client *cl)
{
	char msg[PATH_MAX + SM_ERR_LEN * 2], *req = cl->buf;
	char *nl = strchr(req, '\n');
	int ok = 0;

	if (nl)
		*nl = '\0';
	if (!strcmp(req, "reload") || !strncmp(req, "reload ", 7)) {
		reload(l, req[6] ? req + 7 : NULL, msg, sizeof(msg), &ok);
	} else if (!strcmp(req, "unload")) {
		pr_info("unload requested over %s: detaching and stopping",
			SM_CTL_SOCK);
		l->stop = STOP_UNLOAD;
		if (l->unload_fd < 0) {
			l->unload_fd = cl->fd; /* answered once it is done */
			cl->fd = -1;
		}
		return;
	} else if (!strcmp(req, "status") || !strcmp(req, "status json")) {
		size_t len = 0;
		char *out = render_status(l, req[6] != '\0', 0, &len);

		if (out) {
			send_all(cl->fd, SM_CTL_OK, strlen(SM_CTL_OK));
			send_all(cl->fd, out, len);
			free(out);
			return;
		}
		snprintf(msg, sizeof(msg), "cannot read %s", l->d->core.dir);
	} else {
		snprintf(
			msg, sizeof(msg),
			"unknown request '%.64s' (reload [PATH], unload, status [json])",
			req);
	}
	send_all(cl->fd, ok ? SM_CTL_OK : SM_CTL_ERROR,
		 strlen(ok ? SM_CTL_OK : SM_CTL_ERROR));
	send_all(cl->fd, msg, strlen(msg));
}

static void http_reply(int fd, const char *status, const char *type,
		       const char *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, len);

	send_all(fd, head, n);
	send_all(fd, body, len);
}

static void handle_http(struct loop *l, struct client *cl)
{
	char method[16] = "", path[256] = "";
	size_t len = 0;
	char *body;

	if (sscanf(cl->buf, "%15s %255s", method, path) != 2) {
		http_reply(cl->fd, "400 Bad Request", "text/plain", "", 0);
		return;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		http_reply(cl->fd, "405 Method Not Allowed", "text/plain", "",
			   0);
		return;
	}
	if (!strcmp(path, "/healthz")) {
		http_reply(cl->fd, "200 OK", "text/plain", "ok\n", 3);
		return;
	}
	if (strcmp(path, "/metrics") && strncmp(path, "/metrics?", 9)) {
		http_reply(cl->fd, "404 Not Found", "text/plain",
			   "not found: try /metrics or /healthz\n", 36);
		return;
	}
	body = render_status(l, 0, 1, &len);
	if (!body) {
		http_reply(cl->fd, "503 Service Unavailable", "text/plain",
			   "cannot read the pins\n", 21);
		return;
	}
	http_reply(cl->fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
		   body, len);
	free(body);
}

static void on_recv(struct loop *l, struct client *cl, int res)
{
	int complete;

	cl->pending--;
	if (cl->done || res <= 0) {
		client_done(l, cl);
		return;
	}
	cl->len += res;
	cl->buf[cl->len] = '\0';
	complete = cl->http ? strstr(cl->buf, "\r\n\r\n") != NULL ||
				      strstr(cl->buf, "\n\n") != NULL
			    : strchr(cl->buf, '\n') != NULL;
	if (!complete && cl->len + 1 < sizeof(cl->buf) && !arm_recv(l, cl))
		return;
	if (cl->http)
		handle_http(l, cl);
	else
		handle_ctl(l, cl);
	client_done(l, cl);
}

static void on_signal(struct loop *l, int res)
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
		reload(l, NULL, msg, sizeof(msg), &ok);
	} else {
		pr_info("%s: stopping", strsignal(l->si.ssi_signo));
		l->stop = STOP;
		return;
	}
	arm_signal(l);
}

static void on_cqe(struct loop *l, struct op *op, int res)
{
	switch (op->kind) {
	case OP_SIGNAL:
		on_signal(l, res);
		break;
	case OP_CTL_ACCEPT:
		if (res >= 0)
			client_new(l, res, 0);
		arm_accept(l, op);
		break;
	case OP_METRICS_ACCEPT:
		if (op != l->metrics_accept) { /* a listener since replaced */
			if (res >= 0)
				close(res);
			free(op);
			break;
		}
		if (res >= 0)
			client_new(l, res, 1);
		arm_accept(l, op);
		break;
	case OP_RECV:
		on_recv(l, op->cl, res);
		break;
	case OP_RECV_TIMEOUT:
		/* on -ETIME the recv ends with -ECANCELED and closes it */
		op->cl->pending--;
		if (!op->cl->pending && op->cl->done)
			client_done(l, op->cl);
		break;
	case OP_TIMER:
		notify_status(l->d);
		arm_timer(l);
		break;
	case OP_CANCEL:
		break;
	}
}

static int loop_run(struct loop *l)
{
	struct io_uring_cqe *cqe;
	int ret;

	l->sig = (struct op){.kind = OP_SIGNAL};
	l->ctl_accept = (struct op){.kind = OP_CTL_ACCEPT, .fd = l->d->ctl_fd};
	l->timer = (struct op){.kind = OP_TIMER};
	l->cancel = (struct op){.kind = OP_CANCEL};
	l->metrics_fd = -1;
	ret = arm_signal(l);
	if (!ret)
		ret = arm_accept(l, &l->ctl_accept);
	if (!ret)
		ret = arm_timer(l);
	if (ret)
		return ret;
	sync_metrics(l);
	while (l->stop == RUNNING) {
		ret = io_uring_submit_and_wait(&l->ring, 1);
		if (ret < 0 && ret != -EINTR)
			return ret;
		while (l->stop == RUNNING &&
		       !io_uring_peek_cqe(&l->ring, &cqe)) {
			struct op *op = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&l->ring, cqe);
			if (op)
				on_cqe(l, op, res);
		}
	}
	return 0;
}

/* --- main --------------------------------------------------------------- */

static int config_file_check(const char *path)
{
	char err[SM_ERR_LEN];
	struct stat st;

	if (!path && stat(SM_CONF_DEFAULT, &st))
		return 0; /* built-in defaults */
	if (sm_config_file_safe(path ? path : SM_CONF_DEFAULT, err,
				sizeof(err))) {
		fprintf(stderr, "sockmeshd: %s\n", err);
		return -EPERM;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{},
	};
	static struct sm_daemon d;
	static struct sm_config cfg;
	static struct loop l = {.sfd = -1, .unload_fd = -1};
	const char *path = NULL;
	char err[SM_ERR_LEN], reply[PATH_MAX + 64];
	__u32 feat;
	int check = 0, opt, ret;
	sigset_t set;

	while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sockmeshd %s\n", SM_VERSION);
			return 0;
		default:
			usage(stderr);
			return SM_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sockmeshd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return SM_EXIT_USAGE;
	}

	/* parse */
	if (config_file_check(path))
		return SM_EXIT_USAGE;
	if (sm_config_load_default(&cfg, path, err, sizeof(err))) {
		fprintf(stderr, "sockmeshd: %s\n", err);
		return SM_EXIT_USAGE;
	}
	if (check) {
		printf("# %s: OK\n", cfg.path);
		sm_config_print(&cfg, stdout);
		return 0;
	}
	sm_log_max = cfg.log_level;
	libbpf_set_print(sm_libbpf_print);
	pr_info("sockmeshd %s starting with %s", SM_VERSION, cfg.path);
	ret = sm_probe_kernel(&feat, err, sizeof(err));
	if (ret == -EPERM) {
		pr_err("%s", err);
		return SM_EXIT_FAILURE;
	}
	if (ret) {
		pr_err("this kernel lacks what sockmesh needs: %s", err);
		return SM_EXIT_FAILURE;
	}
	ret = feat_without(&feat, getenv("SOCKMESH_DATAPATH_WITHOUT"));
	if (ret) {
		pr_err("SOCKMESH_DATAPATH_WITHOUT: unknown feature '%s' "
		       "(known: netns_cookie, kern_ctx, cg_btf, recv_trace)",
		       getenv("SOCKMESH_DATAPATH_WITHOUT"));
		return SM_EXIT_USAGE;
	}
	log_datapath(feat);

	/* signals are read from a signalfd by the loop */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	l.sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (l.sfd < 0) {
		pr_err("signalfd: %s", strerror(errno));
		return SM_EXIT_FAILURE;
	}
	ret = io_uring_queue_init(RING_ENTRIES, &l.ring, 0);
	if (ret) {
		pr_err("cannot set up io_uring for the event loop: %s%s",
		       strerror(-ret),
		       ret == -EPERM || ret == -ENOSYS
			       ? " (disabled by kernel.io_uring_disabled, or by a seccomp profile: allow io_uring_setup/enter/register for sockmeshd)"
			       : "");
		close(l.sfd);
		return SM_EXIT_FAILURE;
	}

	/* apply */
	daemon_init(&d);
	d.feat = feat;
	l.d = &d;
	ret = daemon_start(&d, &cfg);
	if (ret)
		goto out;
	pr_info("ready: pid %d, pid file %s, control socket %s", getpid(),
		d.pid_file, d.ctl_path);
	sm_notify("READY=1\nMAINPID=%d", getpid());
	notify_status(&d);

	/* run the loop */
	ret = loop_run(&l);
	if (ret)
		pr_err("event loop: %s", strerror(-ret));
	while (l.clients) /* their submissions die with the ring */
		client_free(&l, l.clients);
	free(l.metrics_accept);
	sm_notify("STOPPING=1");
	daemon_stop(&d, l.stop == STOP_UNLOAD ||
				d.cfg.on_exit == SM_ON_EXIT_DETACH);
	if (l.unload_fd >= 0) {
		snprintf(reply, sizeof(reply),
			 "%sdetached and removed the pins in %s\n", SM_CTL_OK,
			 d.core.dir);
		send_all(l.unload_fd, reply, strlen(reply));
		close(l.unload_fd);
	}
out:
	daemon_close(&d);
	io_uring_queue_exit(&l.ring);
	close(l.sfd);
	return ret ? SM_EXIT_FAILURE : SM_EXIT_OK;
}

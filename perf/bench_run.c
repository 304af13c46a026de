// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_run.c - one run: fork the server, wait until it listens, fork the
 * client, wait for both (with deadlines), check the totals, read the sockmesh
 * counters around it and merge the result. With --target there is no
 * server of ours: the client alone, against the address given.
 *
 * Each child pins itself and, for accel, joins the accelerated cgroup before
 * it creates a socket: a socket's cgroup is fixed at creation, and accepted
 * sockets inherit the listener's. Children die with the parent
 * (PR_SET_PDEATHSIG), so an interrupted bench leaves nothing running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cgroup.h"
#include "pins.h"

#define READY_TIMEOUT_NS (5ULL * 1000000000ULL)
#define CLIENT_GRACE_NS	 (10ULL * 1000000000ULL) /* beyond warm-up + time */
#define SERVER_GRACE_NS	 (8ULL * 1000000000ULL)	 /* after the client */

static void set_addr(struct bench_env *x, const struct bench_params *p)
{
	struct bench_shared *sh = x->sh;
	struct sockaddr_un *un = (struct sockaddr_un *)&sh->addr;
	int n;

	if (p->transport != BENCH_UDS) {
		memcpy(&sh->addr, &x->ip, sizeof(x->ip));
		sh->addrlen = x->iplen;
		return;
	}
	/* abstract: nothing to remove afterwards */
	un->sun_family = AF_UNIX;
	n = snprintf(un->sun_path + 1, sizeof(un->sun_path) - 1,
		     "sockmesh-bench-%d-%u", (int)x->parent, ++x->run_no);
	sh->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				  (size_t)n);
}

/* In a child: signals, death with the parent, CPU, cgroup. */
static int child_setup(struct bench_env *x, const struct bench_params *p,
		       int cpu, struct bench_side *side)
{
	cpu_set_t set;
	int ret;

	sigprocmask(SIG_SETMASK, &x->child_mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != x->parent)
		return -ESRCH;
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			ret = -errno;
			snprintf(side->err, sizeof(side->err),
				 "cannot pin to CPU %d: %s", cpu,
				 strerror(errno));
			return side->ret = ret;
		}
	}
	if (p->transport == BENCH_ACCEL) {
		ret = sm_cgroup_join(x->cg_fd, 0);
		if (ret) {
			snprintf(side->err, sizeof(side->err),
				 "cannot join cgroup /%.200s: %s", x->cg_name,
				 strerror(-ret));
			return side->ret = ret;
		}
	}
	return 0;
}

static void __attribute__((noreturn))
server_main(struct bench_env *x, const struct bench_params *p, int ready_fd,
	    int ctl_fd)
{
	int ret, lfd;

	ret = child_setup(x, p, x->cpu_server, &x->sh->server);
	if (ret)
		_exit(1);
	lfd = bench_listen(p, x->sh);
	if (lfd < 0)
		_exit(1);
	if (write(ready_fd, "R", 1) != 1)
		_exit(1);
	close(ready_fd);
	ret = bench_server(p, x->sh, lfd, ctl_fd);
	close(lfd);
	_exit(ret ? 1 : 0);
}

static void __attribute__((noreturn))
client_main(struct bench_env *x, const struct bench_params *p)
{
	int ret = child_setup(x, p, x->cpu_client, &x->sh->client);

	if (!ret)
		ret = bench_client(p, x->sh);
	_exit(ret ? 1 : 0);
}

/* Wait for @pid to exit, at most @timeout_ns (SIGCHLD is blocked). */
static int wait_child(pid_t pid, uint64_t timeout_ns, int *status)
{
	uint64_t deadline = bench_now_ns() + timeout_ns, now, left;
	struct timespec ts;
	sigset_t set;
	pid_t r;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		now = bench_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		left = deadline - now;
		if (left > 100000000ULL)
			left = 100000000ULL;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left;
		sigtimedwait(&set, NULL, &ts);
	}
}

static void kill_child(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* The server is listening: 0; it failed: -EPIPE; -ETIMEDOUT. */
static int wait_ready(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char c;
	int ret;

	ret = poll(&pfd, 1, (int)(READY_TIMEOUT_NS / 1000000));
	if (ret < 0)
		return -errno;
	if (!ret)
		return -ETIMEDOUT;
	return read(fd, &c, 1) == 1 ? 0 : -EPIPE;
}

/* Why a process failed, into @buf. */
static void side_error(char *buf, size_t len, const char *who,
		       const struct bench_side *side, int status, int waited)
{
	if (side->ret || side->err[0])
		snprintf(buf, len, "%s: %s", who, side->err);
	else if (waited == -ETIMEDOUT)
		snprintf(buf, len, "%s: timed out", who);
	else if (waited)
		snprintf(buf, len, "%s: %s", who, strerror(-waited));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "%s: killed by signal %d", who,
			 WTERMSIG(status));
	else
		snprintf(buf, len, "%s: exit status %d", who,
			 WEXITSTATUS(status));
}

static bool exited_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The data checks of a finished run, into @err. */
static void check_totals(const struct bench_params *p,
			 const struct bench_shared *sh, char *err, size_t len)
{
	const struct bench_side *c = &sh->client, *s = &sh->server;

	if (!c->ops)
		snprintf(err, len,
			 "no operation completed in the measured time");
	else if (bench_is_stream(p->mode) && s->bytes_total != c->bytes_total)
		snprintf(
			err, len,
			"the server verified %llu bytes, the client wrote %llu",
			(unsigned long long)s->bytes_total,
			(unsigned long long)c->bytes_total);
	else if (!bench_is_stream(p->mode) && !p->target &&
		 s->ops_total != c->ops_total)
		snprintf(
			err, len,
			"the server echoed %llu requests, the client completed %llu",
			(unsigned long long)s->ops_total,
			(unsigned long long)c->ops_total);
}

static void merge(struct bench_result *r, const struct bench_shared *sh,
		  bool have_ctr, const struct sm_counters *before,
		  const struct sm_counters *after)
{
	const struct bench_side *c = &sh->client;

	r->ops_per_s_round[r->rounds++] =
		c->window_ns ? (double)c->ops * 1e9 / (double)c->window_ns : 0;
	r->ops += c->ops;
	r->sched += c->sched;
	r->unfinished += c->unfinished;
	r->resp_bytes += c->resp_bytes;
	if (c->resp_bytes)
		r->resp_n += c->ops_total;
	r->window_ns += c->window_ns;
	r->cpu_client_ns += c->cpu_ns;
	r->cpu_server_ns += sh->server.cpu_ns;
	bench_hist_merge(&r->hist, &sh->hist);
	if (!have_ctr)
		return;
	r->have_counters = true;
#define SM_DELTA(name, ...) r->ctr.name += after->name - before->name;
	SM_COUNTERS(SM_DELTA)
#undef SM_DELTA
}

int bench_run(struct bench_env *x, const struct bench_params *p,
	      struct bench_result *r)
{
	struct bench_shared *sh = x->sh;
	struct sm_counters before, after;
	int ready[2] = {-1, -1}, ctl[2] = {-1, -1};
	int cstatus = 0, sstatus = 0, cw = 0, sw = 0, ret;
	pid_t server = -1, client = -1;
	bool have_ctr;
	char err[512] = "";

	memset(sh, 0, sizeof(*sh));
	set_addr(x, p);
	have_ctr = x->pins && !sm_pins_counters(x->pins, &before);
	if (pipe(ready) || pipe(ctl)) {
		ret = -errno;
		snprintf(err, sizeof(err), "pipe: %s", strerror(errno));
		goto out_pipes;
	}
	fflush(NULL);
	if (p->target)
		goto client;
	server = fork();
	if (server < 0) {
		ret = -errno;
		snprintf(err, sizeof(err), "fork: %s", strerror(errno));
		goto out_pipes;
	}
	if (!server) {
		close(ready[0]);
		close(ctl[1]); /* the server's EOF is the parent closing it */
		server_main(x, p, ready[1], ctl[0]);
	}
	close(ready[1]);
	ready[1] = -1;
	close(ctl[0]);
	ctl[0] = -1;
	ret = wait_ready(ready[0]);
	if (ret) {
		side_error(err, sizeof(err), "server", &sh->server, 0, ret);
		goto out_children;
	}
client:
	client = fork();
	if (client < 0) {
		ret = -errno;
		snprintf(err, sizeof(err), "fork: %s", strerror(errno));
		goto out_children;
	}
	if (!client) {
		close(ready[0]);
		close(ctl[1]);
		client_main(x, p);
	}
	cw = wait_child(client, p->warmup_ns + p->duration_ns + CLIENT_GRACE_NS,
			&cstatus);
	if (cw)
		kill_child(client);
	client = -1;
	close(ctl[1]); /* the client is done: the server finishes */
	ctl[1] = -1;
	if (server > 0) {
		sw = wait_child(server, SERVER_GRACE_NS, &sstatus);
		if (sw)
			kill_child(server);
		server = -1;
	}
	if (cw || !exited_ok(cstatus))
		side_error(err, sizeof(err), "client", &sh->client, cstatus,
			   cw);
	if (sw || !exited_ok(sstatus)) {
		char serr[256];
		size_t len = strlen(err);

		/* both: the server's failure often causes the client's */
		side_error(serr, sizeof(serr), "server", &sh->server, sstatus,
			   sw);
		snprintf(err + len, sizeof(err) - len, "%s%s", len ? "; " : "",
			 serr);
	}
	if (!err[0])
		check_totals(p, sh, err, sizeof(err));
	ret = err[0] ? -EIO : 0;
	if (have_ctr)
		have_ctr = !sm_pins_counters(x->pins, &after);
	if (!ret)
		merge(r, sh, have_ctr, &before, &after);
out_children: /* whatever still runs (nothing, when all went well) */
	kill_child(client);
	kill_child(server);
out_pipes:
	for (int i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (ctl[i] >= 0)
			close(ctl[i]);
	}
	if (err[0]) {
		r->verified = false;
		if (!r->err[0])
			snprintf(r->err, sizeof(r->err), "%s", err);
	}
	return ret;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * control.c - the control socket's requests, a {name, handler} table: what
 * `sockmesh reload`, `unload`, `status` and `run` ask sockmeshd. Who asks
 * is known from SO_PEERCRED (loop.c); reload and unload are root's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cgroup.h"
#include "rundir.h"
#include "log.h"
#include "loop_priv.h"

#define UNLOAD_SEND_TO 5 /* seconds to answer unload, at exit */

/* A control reply: "ok\n" or "error\n", then @text or @body. */
void sm_control_reply(struct sm_loop *l, struct client *cl, int ok,
		      const char *text, struct body *body)
{
	cl->head_len = snprintf(cl->head, sizeof(cl->head), "%s",
				ok ? SM_CTL_OK : SM_CTL_ERROR);
	if (!body && text) {
		char *s = strdup(text);

		body = s ? loop_body_new(s, strlen(s)) : NULL;
	}
	loop_client_reply(l, cl, body, false);
}

static void ctl_reload(struct sm_loop *l, struct client *cl, const char *arg)
{
	char msg[PATH_MAX + SM_ERR_LEN * 2];
	int ok;

	loop_reload(l, arg, msg, sizeof(msg), &ok);
	sm_control_reply(l, cl, ok, msg, NULL);
}

static void ctl_unload(struct sm_loop *l, struct client *cl, const char *arg)
{
	struct timeval tv = {.tv_sec = UNLOAD_SEND_TO};

	(void)arg;
	pr_info("unload requested over %s: detaching and stopping",
		SM_CTL_SOCK);
	l->stop = STOP_UNLOAD;
	if (l->unload_fd >= 0) {
		sm_control_reply(l, cl, 0, "an unload is already under way\n",
				 NULL);
		return;
	}
	/* answered, blocking, once it is done: the loop is over by then */
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	l->unload_fd = cl->fd;
	cl->fd = -1;
	loop_client_kill(l, cl);
}

static void ctl_status(struct sm_loop *l, struct client *cl, const char *arg)
{
	struct body *b;
	char msg[PATH_MAX + 32];

	if (arg && strcmp(arg, "json")) {
		snprintf(msg, sizeof(msg),
			 "unknown status format '%.64s' (json)\n", arg);
		sm_control_reply(l, cl, 0, msg, NULL);
		return;
	}
	b = loop_render(l, arg != NULL, 0);
	if (b) {
		sm_control_reply(l, cl, 1, NULL, b);
		return;
	}
	snprintf(msg, sizeof(msg), "cannot read %s\n", l->d->pins.dir);
	sm_control_reply(l, cl, 0, msg, NULL);
}

/* /proc/PID/status's real and effective uid are both @uid. */
static bool pid_owned_by(pid_t pid, uid_t uid)
{
	char path[64], line[256];
	unsigned int r, e;
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u %u", &r, &e) == 2) {
			ok = r == uid && e == uid;
			break;
		}
	fclose(f);
	return ok;
}

/* The peer is in run_group: its gid, or one of its groups. */
static bool peer_in_group(const struct client *cl, long gid)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (gid < 0)
		return false;
	if (cl->cred.gid == (gid_t)gid)
		return true;
	if (getsockopt(cl->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == (gid_t)gid)
			return true;
	return false;
}

/*
 * run CGROUP: move the process that connected into CGROUP, one of the
 * configured ones, for `sockmesh run` by root or a member of run_group.
 * No pid is asked for: a client moves itself and nothing else; the pid
 * must still belong to the uid that connected (not reused since).
 */
static void ctl_run(struct sm_loop *l, struct client *cl, const char *arg)
{
	const struct sm_daemon *d = l->d;
	char msg[SM_CGROUP_LEN + 128];
	pid_t pid = cl->cred.pid;
	uid_t uid = cl->cred.uid;
	int i, ret;

	if (uid && !peer_in_group(cl, d->cfg.run_gid)) {
		snprintf(msg, sizeof(msg),
			 "uid %u is neither root nor in run_group (%s)\n",
			 (unsigned int)uid,
			 d->cfg.run_group[0] ? d->cfg.run_group : "not set");
		sm_control_reply(l, cl, 0, msg, NULL);
		return;
	}
	for (i = 0; arg && i < d->n_cg; i++)
		if (!strcmp(arg, d->cfg.cgroups[i]))
			break;
	if (!arg || i == d->n_cg) {
		snprintf(msg, sizeof(msg),
			 "cgroup '%.64s' is not one sockmeshd accelerates\n",
			 arg ? arg : "");
		sm_control_reply(l, cl, 0, msg, NULL);
		return;
	}
	if (d->cg_fds[i] < 0) {
		snprintf(
			msg, sizeof(msg),
			"cgroup /%.64s does not exist yet (its unit is not running)\n",
			arg);
		sm_control_reply(l, cl, 0, msg, NULL);
		return;
	}
	if (pid <= 0 || !pid_owned_by(pid, uid)) {
		sm_control_reply(
			l, cl, 0,
			"the process that asked is gone, or no longer yours\n",
			NULL);
		return;
	}
	ret = sm_cgroup_join(d->cg_fds[i], pid);
	if (ret) {
		snprintf(msg, sizeof(msg), "cannot move pid %d into /%s: %s\n",
			 (int)pid, d->cfg.cgroups[i], strerror(-ret));
		sm_control_reply(l, cl, 0, msg, NULL);
		return;
	}
	pr_info("run: moved pid %d (uid %u) into /%s, as it asked", (int)pid,
		(unsigned int)uid, d->cfg.cgroups[i]);
	snprintf(msg, sizeof(msg), "moved pid %d into /%s\n", (int)pid,
		 d->cfg.cgroups[i]);
	sm_control_reply(l, cl, 1, msg, NULL);
}

static const struct ctl_req {
	const char *name;
	bool root; /* only root may ask it */
	void (*fn)(struct sm_loop *l, struct client *cl, const char *arg);
} ctl_reqs[] = {
	{"reload", true, ctl_reload}, /* reload [PATH] */
	{"unload", true, ctl_unload},
	{"status", false, ctl_status}, /* status [json] */
	{"run", false, ctl_run},       /* run CGROUP */
};
/* A request line of the control socket, its '\n' replaced by '\0'. */
void sm_control_handle(struct sm_loop *l, struct client *cl)
{
	char msg[192], *req = cl->buf, *arg = strchr(req, ' ');
	size_t n = arg ? (size_t)(arg - req) : strlen(req);

	if (arg)
		arg++;
	for (size_t i = 0; i < sizeof(ctl_reqs) / sizeof(ctl_reqs[0]); i++)
		if (n == strlen(ctl_reqs[i].name) &&
		    !strncmp(req, ctl_reqs[i].name, n)) {
			if (ctl_reqs[i].root && cl->cred.uid) {
				snprintf(msg, sizeof(msg),
					 "%s needs root (you are uid %u)\n",
					 ctl_reqs[i].name,
					 (unsigned int)cl->cred.uid);
				sm_control_reply(l, cl, 0, msg, NULL);
				return;
			}
			ctl_reqs[i].fn(l, cl, arg);
			return;
		}
	snprintf(
		msg, sizeof(msg),
		"unknown request '%.64s' (reload [PATH], unload, status [json], run CGROUP)",
		req);
	sm_control_reply(l, cl, 0, msg, NULL);
}

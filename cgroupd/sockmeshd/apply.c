// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * apply.c - daemon_apply() and what calls it (see daemon.h): a config is
 * made the running one in named steps, all or nothing.
 *
 *   check_restart_keys   refuse what only a restart can change
 *   check_nesting        refuse a cgroup listed inside another
 *   open_cgroups         open (create) each cgroup; systemd's are waited for
 *   open_metrics         bind the metrics listener if its address changed
 *   attach_all           counter slots, then the new attachments, then the
 *                        policy maps; undone by rollback() on failure
 *   mesh_attach          [mesh] mode = connect: its programs loaded or
 *                        adopted, attached beside, configured
 *   commit               from here nothing fails: log, detach what is no
 *                        longer configured, drop stale slots, swap the state
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "rundir.h"

#define errf(...) snprintf(err, errlen, __VA_ARGS__)

/* What daemon_apply() has opened and attached so far, to commit or undo. */
struct apply {
	int n;			 /* == cfg->n_cgroups */
	int fds[SM_CGROUPS_MAX]; /* -1: a systemd cgroup not made yet */
	int opened
		[SM_CGROUPS_MAX]; /* fds[i] is this apply's, not the running */
	__u64 ids[SM_CGROUPS_MAX];
	__u64 live[SM_CGROUPS_MAX]; /* the ids of the cgroups that exist */
	int n_live;
	__u64 created[SM_CGROUPS_MAX]; /* attachments this apply made */
	int n_created;
	__u64 mesh_created[SM_CGROUPS_MAX]; /* mesh links this apply made */
	int n_mesh_created;
	int mesh_loaded; /* this apply loaded the mesh object */
	int metrics_fd;	 /* a new listener, or -1 */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A listening TCP socket on the address of `metrics` (parsed by config.c). */
static int metrics_listen(const struct sm_config *cfg, char *err, size_t errlen)
{
	const char *spec = cfg->metrics;
	int fd, one = 1;

	fd = socket(cfg->metrics_addr.ss_family,
		    SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		errf("metrics = %s: %s", spec, strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cfg->metrics_addr,
		 cfg->metrics_addr_len) ||
	    listen(fd, 1024)) {
		int ret = -errno;

		errf("metrics = %s: cannot listen: %s", spec, strerror(errno));
		close(fd);
		return ret;
	}
	return fd;
}

/* Is @id among the first @n of @ids? */
static int has_id(const __u64 *ids, int n, __u64 id)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Running index of cgroup @name, or -1. */
static int running_index(const struct sm_daemon *d, const char *name)
{
	for (int i = 0; d->applied && i < d->n_cg; i++)
		if (!strcmp(d->cfg.cgroups[i], name))
			return i;
	return -1;
}

/* Does @cfg list cgroup @name? */
static bool configured(const struct sm_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_cgroups; i++)
		if (!strcmp(cfg->cgroups[i], name))
			return true;
	return false;
}

/* Is cgroup @a below @b (or @b itself)? Both relative to the mount. */
static int nested(const char *a, const char *b)
{
	size_t n = strlen(b);

	return !strncmp(a, b, n) && (a[n] == '/' || !a[n]);
}

/* pin_dir, run_dir, run_group and max_sockets are fixed while running. */
static int check_restart_keys(const struct sm_daemon *d,
			      const struct sm_config *cfg, char *err,
			      size_t errlen)
{
	__u32 max = 0;

	if (!d->applied)
		return 0;
	if (strcmp(cfg->pin_dir, d->cfg.pin_dir)) {
		errf("%s: pin_dir changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path, d->cfg.pin_dir, cfg->pin_dir);
		return -EINVAL;
	}
	if (strcmp(cfg->run_dir, d->cfg.run_dir)) {
		errf("%s: run_dir changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path, d->cfg.run_dir, cfg->run_dir);
		return -EINVAL;
	}
	if (cfg->run_gid != d->cfg.run_gid) {
		errf("%s: run_group changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path,
		     d->cfg.run_group[0] ? d->cfg.run_group : "unset",
		     cfg->run_group[0] ? cfg->run_group : "unset");
		return -EINVAL;
	}
	if (cfg->max_sockets != d->cfg.max_sockets &&
	    !sm_pins_max_sockets(&d->pins, &max) && max != cfg->max_sockets) {
		errf("%s: max_sockets changed (%u -> %u): the socket map is sized at load; that needs `sockmesh unload` and a restart; the running config is kept",
		     cfg->path, d->cfg.max_sockets, cfg->max_sockets);
		return -EINVAL;
	}
	return 0;
}

/* A socket of a cgroup inside another listed one would be recorded twice. */
static int check_nesting(const struct sm_config *cfg, char *err, size_t errlen)
{
	for (int i = 0; i < cfg->n_cgroups; i++)
		for (int k = 0; k < cfg->n_cgroups; k++)
			if (i != k &&
			    nested(cfg->cgroups[i], cfg->cgroups[k])) {
				errf("%s: cgroups: /%s is inside /%s: a socket there would be recorded twice; list only one of them",
				     cfg->path, cfg->cgroups[i],
				     cfg->cgroups[k]);
				return -EINVAL;
			}
	return 0;
}

/*
 * Open (create) the cgroups: kept ones are reused as they are, unless the
 * path now names another cgroup (systemd made it anew). systemd's are
 * never created: while one is missing it is waited for (fd -1, id 0).
 */
static int open_cgroups(const struct sm_daemon *d, const struct sm_config *cfg,
			struct apply *a, char *err, size_t errlen)
{
	int ret;

	for (int i = 0; i < a->n; i++) {
		int r = running_index(d, cfg->cgroups[i]);
		bool systemd = sm_cgroup_systemd_owned(cfg->cgroups[i]);
		__u64 now = 0;

		if (r >= 0 && d->cg_fds[r] >= 0) {
			int fd = sm_cgroup_open(d->cg_mnt, cfg->cgroups[i], 0);

			if (fd >= 0) {
				sm_cgroup_id(fd, &now);
				close(fd);
			}
			if (now == d->cg_ids[r]) {
				a->fds[i] = d->cg_fds[r];
				a->ids[i] = d->cg_ids[r];
				continue;
			}
		}
		ret = sm_cgroup_open(d->cg_mnt, cfg->cgroups[i], !systemd);
		if (ret == -ENOENT && systemd) {
			a->ids[i] = 0;
			continue;
		}
		if (ret < 0) {
			errf("cgroup %s/%s: %s", d->cg_mnt, cfg->cgroups[i],
			     strerror(-ret));
			return ret;
		}
		a->fds[i] = ret;
		a->opened[i] = 1;
		ret = sm_cgroup_id(a->fds[i], &a->ids[i]);
		if (ret) {
			errf("cgroup /%s: cannot read its id: %s",
			     cfg->cgroups[i], strerror(-ret));
			return ret;
		}
	}
	for (int i = 0; i < a->n; i++)
		if (a->fds[i] >= 0)
			a->live[a->n_live++] = a->ids[i];
	return 0;
}

/* A new listener when `metrics` is set and differs from the running one. */
static int open_metrics(const struct sm_daemon *d, const struct sm_config *cfg,
			struct apply *a, char *err, size_t errlen)
{
	if (!cfg->metrics[0] ||
	    (d->applied && !strcmp(cfg->metrics, d->cfg.metrics)))
		return 0;
	a->metrics_fd = metrics_listen(cfg, err, errlen);
	return a->metrics_fd < 0 ? a->metrics_fd : 0;
}

/*
 * Counter slots first (a socket of a new cgroup finds its slot), then the
 * new attachments (kept cgroups stay attached throughout), then the
 * policy maps.
 */
static int attach_all(struct sm_daemon *d, const struct sm_config *cfg,
		      struct apply *a, char *err, size_t errlen)
{
	int ret, is_new;

	ret = sm_pins_cg_slots_sync(&d->pins, a->live, a->n_live, 0);
	if (ret) {
		errf("cannot assign per-cgroup counter slots: %s",
		     strerror(-ret));
		return ret;
	}
	for (int i = 0; i < a->n; i++) {
		if (a->fds[i] < 0)
			continue;
		ret = sm_pins_attach(&d->pins, a->fds[i], a->ids[i], &is_new);
		if (ret) {
			errf("cannot attach to cgroup /%s: %s", cfg->cgroups[i],
			     strerror(-ret));
			return ret;
		}
		if (is_new)
			a->created[a->n_created++] = a->ids[i];
	}
	ret = sm_pins_apply_policy(&d->pins, cfg);
	if (ret)
		errf("cannot fill the policy maps: %s", strerror(-ret));
	return ret;
}

/*
 * [mesh] mode = connect: the mesh object loaded (or adopted from the pins),
 * attached to each cgroup the datapath is attached to, then configured.
 * mode = iptables asks for nothing here; commit() removes what is there.
 */
static int mesh_attach(struct sm_daemon *d, const struct sm_config *cfg,
		       struct apply *a, char *err, size_t errlen)
{
	int ret, is_new;

	if (!cfg->mesh_connect)
		return 0;
	if (!sm_mesh_is_open(&d->mesh)) {
		ret = sm_mesh_open(&d->mesh);
		if (ret == -ENOENT) {
			ret = sm_mesh_load(&d->mesh);
			if (!ret)
				a->mesh_loaded = 1;
			else {
				const char *why = sm_libbpf_failure();

				errf("[mesh] mode = connect: cannot load its "
				     "programs: %s (the mode needs Linux 5.15 "
				     "or later: bpf_get_netns_cookie() in "
				     "sock_ops and getsockopt programs; use "
				     "mode = iptables)",
				     *why ? why : strerror(-ret));
				return ret;
			}
		} else if (ret) {
			errf("[mesh] mode = connect: cannot open the pins in "
			     "%s: %s",
			     d->mesh.dir, strerror(-ret));
			return ret;
		}
	}
	for (int i = 0; i < a->n; i++) {
		if (a->fds[i] < 0)
			continue;
		ret = sm_mesh_attach(&d->mesh, a->fds[i], a->ids[i], &is_new);
		if (ret) {
			errf("[mesh] mode = connect: cannot attach to cgroup "
			     "/%s: %s",
			     cfg->cgroups[i], strerror(-ret));
			return ret;
		}
		if (is_new)
			a->mesh_created[a->n_mesh_created++] = a->ids[i];
	}
	ret = sm_mesh_configure(&d->mesh, cfg, 1);
	if (ret)
		errf("[mesh] mode = connect: cannot fill its maps: %s",
		     strerror(-ret));
	return ret;
}

/* commit()'s part for the mesh: links of cgroups no longer attached go;
 * with mode = iptables, all of it. */
static void mesh_commit(struct sm_daemon *d, const struct sm_config *cfg,
			const struct apply *a)
{
	__u64 links[SM_LINKS_MAX];
	int n, ret;

	if (!cfg->mesh_connect) {
		if (access(d->mesh.dir, F_OK))
			return;
		ret = sm_mesh_unload(&d->mesh);
		if (ret)
			pr_warn("[mesh] mode = iptables: cannot remove %s: %s",
				d->mesh.dir, strerror(-ret));
		else
			pr_info("[mesh] mode = iptables: the connect mode's "
				"programs are detached and unpinned");
		return;
	}
	n = sm_mesh_links(&d->mesh, links, SM_LINKS_MAX);
	for (int i = 0; i < n; i++)
		if (!has_id(a->ids, a->n, links[i]))
			sm_mesh_detach(&d->mesh, links[i]);
	if (a->mesh_loaded)
		pr_info("[mesh] mode = connect: loaded, pinned in %s, attached "
			"with the datapath (sidecar uid %u, outbound %u, "
			"inbound %u, readiness %u)",
			d->mesh.dir, cfg->mesh_uid, cfg->mesh_outbound_port,
			cfg->mesh_inbound_port, cfg->mesh_readiness_port);
}

/* Undo what this apply did; the running config's state is untouched. */
static void rollback(struct sm_daemon *d, struct apply *a)
{
	while (a->n_mesh_created--)
		sm_mesh_detach(&d->mesh, a->mesh_created[a->n_mesh_created]);
	if (a->mesh_loaded)
		sm_mesh_unload(&d->mesh);
	while (a->n_created--)
		sm_pins_detach(&d->pins, a->created[a->n_created]);
	if (d->applied)
		sm_pins_cg_slots_sync(&d->pins, d->cg_ids, d->n_cg, 1);
	close_fd(&a->metrics_fd);
	for (int i = 0; i < a->n; i++)
		if (a->opened[i])
			close_fd(&a->fds[i]);
}

/* Log what changed, release what is no longer configured, swap. */
static void commit(struct sm_daemon *d, const struct sm_config *cfg,
		   struct apply *a)
{
	__u64 links[SM_LINKS_MAX];
	int n_links, ret;

	n_links = sm_pins_links(&d->pins, links, SM_LINKS_MAX);
	for (int i = 0; i < n_links; i++) {
		const char *gone = NULL;

		if (has_id(a->ids, a->n, links[i]))
			continue;
		/* a running cgroup still configured: its directory went
		 * (systemd stopped or restarted the unit) */
		for (int r = 0; d->applied && r < d->n_cg; r++)
			if (d->cg_ids[r] == links[i] &&
			    configured(cfg, d->cfg.cgroups[r]))
				gone = d->cfg.cgroups[r];
		ret = sm_pins_detach(&d->pins, links[i]);
		if (ret)
			pr_warn("cannot detach from cgroup id %" PRIu64 ": %s",
				(uint64_t)links[i], strerror(-ret));
		else if (gone)
			pr_info("cgroup /%s (id %" PRIu64
				") is gone: its attachment released; attached "
				"again when it is made",
				gone, (uint64_t)links[i]);
		else
			pr_info("detached from cgroup id %" PRIu64
				" (no longer configured)",
				(uint64_t)links[i]);
	}
	/* the wait for a systemd cgroup is logged once, when it begins */
	for (int i = 0; i < a->n; i++) {
		int r = running_index(d, cfg->cgroups[i]);

		if (a->fds[i] < 0 && !(r >= 0 && d->cg_fds[r] < 0))
			pr_info("cgroup /%s does not exist: it is systemd's, "
				"made when its unit starts; attached then",
				cfg->cgroups[i]);
		else if (a->fds[i] >= 0 &&
			 has_id(a->created, a->n_created, a->ids[i]))
			pr_info("attached to cgroup /%s (id %" PRIu64 ")",
				cfg->cgroups[i], (uint64_t)a->ids[i]);
		else if (a->fds[i] >= 0)
			pr_info("kept the attachment of cgroup /%s (id %" PRIu64
				")",
				cfg->cgroups[i], (uint64_t)a->ids[i]);
	}
	mesh_commit(d, cfg, a);
	ret = sm_pins_cg_slots_sync(&d->pins, a->live, a->n_live, 1);
	if (ret)
		pr_warn("cannot drop stale counter slots: %s", strerror(-ret));
	for (int i = 0; d->applied && i < d->n_cg; i++)
		if (!has_id(a->ids, a->n, d->cg_ids[i]))
			close_fd(&d->cg_fds[i]);
	for (int i = 0; i < SM_CGROUPS_MAX; i++) {
		d->cg_fds[i] = i < a->n ? a->fds[i] : -1;
		d->cg_ids[i] = i < a->n ? a->ids[i] : 0;
	}
	d->n_cg = a->n;
	if (a->metrics_fd >= 0 || !cfg->metrics[0]) {
		close_fd(&d->metrics_fd);
		d->metrics_fd = a->metrics_fd;
		if (a->metrics_fd >= 0)
			pr_info("metrics on http://%s/metrics", cfg->metrics);
	}
	d->cfg = *cfg;
	d->applied = 1;
	sm_log_max = cfg->log_level;
}

int daemon_apply(struct sm_daemon *d, const struct sm_config *cfg, char *err,
		 size_t errlen)
{
	struct apply a = {.n = cfg->n_cgroups, .metrics_fd = -1};
	int ret;

	for (int i = 0; i < a.n; i++)
		a.fds[i] = -1;
	ret = check_restart_keys(d, cfg, err, errlen);
	if (!ret)
		ret = check_nesting(cfg, err, errlen);
	if (ret)
		return ret;
	ret = open_cgroups(d, cfg, &a, err, errlen);
	if (!ret)
		ret = open_metrics(d, cfg, &a, err, errlen);
	if (!ret)
		ret = attach_all(d, cfg, &a, err, errlen);
	if (!ret)
		ret = mesh_attach(d, cfg, &a, err, errlen);
	if (ret) {
		rollback(d, &a);
		return ret < 0 ? ret : -EINVAL;
	}
	commit(d, cfg, &a);
	return 0;
}

int daemon_refresh(struct sm_daemon *d, char *err, size_t errlen)
{
	static struct sm_config cfg; /* large: not on the stack */

	cfg = d->cfg;
	return daemon_apply(d, &cfg, err, errlen);
}

int daemon_reload(struct sm_daemon *d, const char *path, char *msg, size_t len)
{
	static struct sm_config cfg; /* large: not on the stack */
	char err[SM_ERR_LEN];
	char file[PATH_MAX];
	int ret;

	snprintf(file, sizeof(file), "%s", path && *path ? path : d->cfg.path);
	ret = sm_config_file_safe(file, err, sizeof(err));
	if (!ret)
		ret = sm_config_load(&cfg, file, err, sizeof(err));
	if (!ret)
		ret = daemon_apply(d, &cfg, err, sizeof(err));
	if (ret) {
		d->reload_failures++;
		pr_err("reload refused, the running config (%s) stays in force: %s",
		       d->cfg.path, err);
		snprintf(
			msg, len,
			"reload refused, the running config (%s) stays in force: %s",
			d->cfg.path, err);
		return ret;
	}
	d->reloads++;
	pr_info("reloaded %s: %d cgroup%s attached", file, daemon_n_attached(d),
		daemon_n_attached(d) == 1 ? "" : "s");
	snprintf(msg, len, "reloaded %s: %d cgroup%s attached%s\n", file,
		 daemon_n_attached(d), daemon_n_attached(d) == 1 ? "" : "s",
		 daemon_n_attached(d) < d->n_cg
			 ? " (the others' units are not running)"
			 : "");
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* daemon.c - see daemon.h. sockmeshd's own code: it logs. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cgroup.h"
#include "rundir.h"
#include "daemon.h"
#include "notify.h"

#define errf(...) snprintf(err, errlen, __VA_ARGS__)

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void daemon_init(struct sm_daemon *d)
{
	memset(d, 0, sizeof(*d));
	for (int i = 0; i < SM_CGROUPS_MAX; i++)
		d->cg_fds[i] = -1;
	d->metrics_fd = -1;
	d->ctl_fd = -1;
	d->run_lock_fd = -1;
	sm_pins_init(&d->pins, "");
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

/* The control socket: AF_UNIX in run_dir, mode 0600, or 0660 and group
 * run_group. */
static int ctl_listen(struct sm_daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, ret;

	ret = sm_run_path(d->ctl_path, sizeof(d->ctl_path), d->cfg.run_dir,
			  SM_CTL_SOCK);
	if (!ret && strlen(d->ctl_path) >= sizeof(sa.sun_path))
		ret = -ENAMETOOLONG;
	if (ret)
		return ret;
	strcpy(sa.sun_path, d->ctl_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(d->ctl_path); /* a stale one: we hold the run_dir lock */
	if (fchmod(fd, 0600) || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(d->ctl_path, 0600) || listen(fd, 64)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	/* run_group: its members may connect; loop.c checks what they ask */
	if (d->cfg.run_gid >= 0 && (chown(d->ctl_path, 0, d->cfg.run_gid) ||
				    chmod(d->ctl_path, 0660))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	d->ctl_fd = fd;
	return 0;
}

/*
 * One daemon per run_dir, as per pin_dir: its control socket and pid file
 * are the daemon's that holds SM_RUN_LOCK, written with its pid, config and
 * pin_dir the moment it holds it (so that status never shows a dead pid),
 * and kept (unlinking a lock file races with the next daemon's open).
 */
static int run_dir_lock(struct sm_daemon *d, const struct sm_config *cfg)
{
	char path[PATH_MAX], who[2 * PATH_MAX + 16];
	pid_t pid;
	int fd, ret;

	ret = sm_run_path(path, sizeof(path), cfg->run_dir, SM_RUN_LOCK);
	if (ret)
		return ret;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = -errno;
		pr_err("run_dir %s: cannot open %s: %s", cfg->run_dir, path,
		       strerror(errno));
		return ret;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		if (ret != -EBUSY) {
			pr_err("cannot lock %s: %s", path, strerror(-ret));
			return ret;
		}
		if (sm_run_lock_holder(cfg->run_dir, &pid, who, sizeof(who)) !=
			    1 ||
		    !who[0])
			snprintf(who, sizeof(who), "config unknown");
		pr_err("another sockmeshd is running with run_dir %s (pid %d, "
		       "config %s): give each daemon a run_dir of its own",
		       cfg->run_dir, (int)pid, who);
		return ret;
	}
	if (ftruncate(fd, 0) || dprintf(fd, "%d\n%s\n%s\n", (int)getpid(),
					cfg->path, cfg->pin_dir) < 0) {
		ret = -errno;
		pr_err("cannot write %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	d->run_lock_fd = fd;
	return 0;
}

static int write_pid_file(struct sm_daemon *d)
{
	char tmp[PATH_MAX + 16];
	FILE *f;
	int ret;

	ret = sm_run_path(d->pid_file, sizeof(d->pid_file), d->cfg.run_dir,
			  SM_PID_FILE);
	if (ret)
		return ret;
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->pid_file);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", getpid());
	if (fclose(f) || rename(tmp, d->pid_file))
		return -errno;
	return 0;
}

/*
 * Another release's datapath (pin_dir/vN, N not ours) left attached, as
 * on_exit = keep does: both sock_ops programs then run, and a socket goes
 * into whichever map comes first (the other counts sockets_add_failed).
 * Say so; its own `sockmesh unload` removes it.
 */
static void warn_other_layouts(const struct sm_config *cfg)
{
	DIR *dir = opendir(cfg->pin_dir);
	struct dirent *de;

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		const char *n = de->d_name;
		size_t i = 1;

		if (n[0] != 'v' || !n[1] || !strcmp(n, SM_PIN_LAYOUT))
			continue;
		while (isdigit((unsigned char)n[i]))
			i++;
		if (n[i])
			continue;
		pr_warn("%s/%s holds the datapath of another sockmesh release "
			"(pin layout %s; this one is %s): while it is attached, "
			"sockets go to either; remove it with that release's "
			"`sockmesh unload`",
			cfg->pin_dir, n, n, SM_PIN_LAYOUT);
	}
	closedir(dir);
}

static int load_or_adopt(struct sm_daemon *d, const struct sm_config *cfg)
{
	__u32 max, feat;
	int ret;

	warn_other_layouts(cfg);
	ret = sm_pins_open(&d->pins);
	if (!ret) {
		if (!sm_pins_max_sockets(&d->pins, &max) &&
		    max != cfg->max_sockets)
			pr_warn("max_sockets = %u, but the pinned map holds %u: "
				"keeping %u (run `sockmesh unload` to resize)",
				cfg->max_sockets, max, max);
		pr_info("adopted the datapath pinned in %s", d->pins.dir);
		return 0;
	}
	if (ret != -ENOENT) {
		pr_err("cannot open the pins in %s: %s", d->pins.dir,
		       strerror(-ret));
		return ret;
	}
	feat = d->feat;
	ret = sm_pins_load(&d->pins, cfg->max_sockets, &d->feat);
	if (!ret && d->feat != feat)
		pr_warn("the kernel refused the tracing programs (%s): "
			"splice() readers are not seen%s, see docs/datapath.md, "
			"\"Kernels\"",
			sm_libbpf_failure(),
			feat & SM_FEAT_KERN_CTX
				? ""
				: ", and receiver_behind is the window reported "
				  "at the receiver's writes");
	if (ret == -EEXIST) {
		pr_err("%s holds pins that are incomplete or of another version: "
		       "run `sockmesh unload -c %s` first",
		       d->pins.dir, cfg->path);
		return ret;
	}
	if (ret) {
		if (*sm_libbpf_failure())
			pr_err("cannot load the BPF programs: %s (a sockmesh "
			       "bug on a kernel that passed its probe: please "
			       "report it with the output of log_level = debug)",
			       sm_libbpf_failure());
		else
			pr_err("cannot load the BPF programs: %s",
			       strerror(-ret));
		return ret;
	}
	d->loaded = 1;
	pr_info("loaded the datapath and pinned it in %s (max_sockets %u)",
		d->pins.dir, cfg->max_sockets);
	return 0;
}

int daemon_start(struct sm_daemon *d, const struct sm_config *cfg)
{
	char err[SM_ERR_LEN];
	int ret;

	sm_pins_init(&d->pins, cfg->pin_dir);
	ret = sm_private_dir(cfg->run_dir);
	if (ret) {
		pr_err(ret == -EPERM
			       ? "run_dir %s is a shared directory (sticky or writable by others): give sockmeshd one of its own"
			       : "run_dir %s: %s",
		       cfg->run_dir, strerror(-ret));
		return ret;
	}
	/* run_group may enter run_dir, to reach the control socket only */
	if (cfg->run_gid >= 0 && (chown(cfg->run_dir, 0, cfg->run_gid) ||
				  chmod(cfg->run_dir, 0710))) {
		ret = -errno;
		pr_err("run_dir %s: cannot give it to run_group %s: %s",
		       cfg->run_dir, cfg->run_group, strerror(-ret));
		return ret;
	}
	ret = run_dir_lock(d, cfg);
	if (ret)
		return ret;
	ret = sm_pins_prepare_dir(&d->pins);
	if (ret) {
		/* -EPERM here: mounting the missing bpffs was not allowed */
		pr_err(ret == -EXDEV ? "pin_dir %s is not on a bpf filesystem"
		       : ret == -EPERM
			       ? "pin_dir %s: no bpffs mounted, and mounting one: %s (CAP_SYS_ADMIN)"
			       : "pin_dir %s: %s",
		       cfg->pin_dir, strerror(-ret));
		return ret;
	}
	ret = sm_private_dir(cfg->pin_dir);
	if (ret) {
		pr_err(ret == -EPERM
			       ? "pin_dir %s is a shared directory (sticky or writable by others): give sockmeshd one of its own"
			       : "pin_dir %s: %s",
		       cfg->pin_dir, strerror(-ret));
		return ret;
	}
	ret = sm_pins_lock(&d->pins);
	if (ret) {
		pr_err(ret == -EBUSY
			       ? "another sockmeshd is running on pin_dir %s"
			       : "cannot lock pin_dir %s: %s",
		       cfg->pin_dir, strerror(-ret));
		return ret;
	}
	ret = sm_cgroup2_mount(d->cg_mnt, sizeof(d->cg_mnt));
	if (ret) {
		pr_err("no cgroup2 hierarchy is mounted: %s", strerror(-ret));
		return ret;
	}
	ret = load_or_adopt(d, cfg);
	if (ret)
		return ret;
	ret = daemon_apply(d, cfg, err, sizeof(err));
	if (ret) {
		pr_err("%s", err);
		goto err_unload;
	}
	ret = ctl_listen(d);
	if (ret) {
		pr_err("cannot listen on %s/%s: %s", cfg->run_dir, SM_CTL_SOCK,
		       strerror(-ret));
		goto err_unload;
	}
	ret = write_pid_file(d);
	if (ret) {
		pr_err("cannot write the pid file in %s: %s", cfg->run_dir,
		       strerror(-ret));
		goto err_unload;
	}
	return 0;
err_unload:
	if (d->loaded)
		sm_pins_unload(&d->pins);
	return ret;
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

/* Is cgroup @a below @b (or @b itself)? Both relative to the mount. */
static int nested(const char *a, const char *b)
{
	size_t n = strlen(b);

	return !strncmp(a, b, n) && (a[n] == '/' || !a[n]);
}

int daemon_apply(struct sm_daemon *d, const struct sm_config *cfg, char *err,
		 size_t errlen)
{
	int fds[SM_CGROUPS_MAX], opened[SM_CGROUPS_MAX] = {0};
	__u64 ids[SM_CGROUPS_MAX], created[SM_CGROUPS_MAX], links[SM_LINKS_MAX];
	int n = cfg->n_cgroups, n_created = 0, n_links, is_new, ret = 0;
	int metrics_fd = -1, n_live = 0;
	__u64 live[SM_CGROUPS_MAX]; /* the ids of the cgroups that exist */
	__u32 max = 0;

	for (int i = 0; i < n; i++)
		fds[i] = -1;
	/* what only a restart can change */
	if (d->applied && strcmp(cfg->pin_dir, d->cfg.pin_dir)) {
		errf("%s: pin_dir changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path, d->cfg.pin_dir, cfg->pin_dir);
		return -EINVAL;
	}
	if (d->applied && strcmp(cfg->run_dir, d->cfg.run_dir)) {
		errf("%s: run_dir changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path, d->cfg.run_dir, cfg->run_dir);
		return -EINVAL;
	}
	if (d->applied && cfg->run_gid != d->cfg.run_gid) {
		errf("%s: run_group changed (%s -> %s): that needs a restart of sockmeshd; the running config is kept",
		     cfg->path,
		     d->cfg.run_group[0] ? d->cfg.run_group : "unset",
		     cfg->run_group[0] ? cfg->run_group : "unset");
		return -EINVAL;
	}
	if (d->applied && cfg->max_sockets != d->cfg.max_sockets &&
	    !sm_pins_max_sockets(&d->pins, &max) && max != cfg->max_sockets) {
		errf("%s: max_sockets changed (%u -> %u): the socket map is sized at load; that needs `sockmesh unload` and a restart; the running config is kept",
		     cfg->path, d->cfg.max_sockets, cfg->max_sockets);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++)
		for (int k = 0; k < n; k++)
			if (i != k &&
			    nested(cfg->cgroups[i], cfg->cgroups[k])) {
				errf("%s: cgroups: /%s is inside /%s: a socket there would be recorded twice; list only one of them",
				     cfg->path, cfg->cgroups[i],
				     cfg->cgroups[k]);
				return -EINVAL;
			}

	/*
	 * Open (create) the cgroups: kept ones are reused as they are, unless
	 * the path now names another cgroup (systemd made it anew). systemd's
	 * are never created: while one is missing it is waited for (fd -1).
	 */
	for (int i = 0; i < n; i++) {
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
				fds[i] = d->cg_fds[r];
				ids[i] = d->cg_ids[r];
				continue;
			}
		}
		ret = sm_cgroup_open(d->cg_mnt, cfg->cgroups[i], !systemd);
		if (ret == -ENOENT && systemd) {
			ids[i] = 0; /* fds[i] stays -1 */
			continue;
		}
		if (ret < 0) {
			errf("cgroup %s/%s: %s", d->cg_mnt, cfg->cgroups[i],
			     strerror(-ret));
			goto err_close;
		}
		fds[i] = ret;
		opened[i] = 1;
		ret = sm_cgroup_id(fds[i], &ids[i]);
		if (ret) {
			errf("cgroup /%s: cannot read its id: %s",
			     cfg->cgroups[i], strerror(-ret));
			goto err_close;
		}
	}
	if (cfg->metrics[0] &&
	    (!d->applied || strcmp(cfg->metrics, d->cfg.metrics))) {
		metrics_fd = metrics_listen(cfg, err, errlen);
		if (metrics_fd < 0) {
			ret = metrics_fd;
			goto err_close;
		}
	}

	/* counter slots first: a socket of a new cgroup finds its slot */
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			live[n_live++] = ids[i];
	ret = sm_pins_cg_slots_sync(&d->pins, live, n_live, 0);
	if (ret) {
		errf("cannot assign per-cgroup counter slots: %s",
		     strerror(-ret));
		goto err_close;
	}
	/* attach what is new; kept cgroups stay attached throughout */
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		ret = sm_pins_attach(&d->pins, fds[i], ids[i], &is_new);
		if (ret) {
			errf("cannot attach to cgroup /%s: %s", cfg->cgroups[i],
			     strerror(-ret));
			goto err_detach;
		}
		if (is_new)
			created[n_created++] = ids[i];
	}
	ret = sm_pins_apply_policy(&d->pins, cfg);
	if (ret) {
		errf("cannot fill the policy maps: %s", strerror(-ret));
		goto err_detach;
	}

	/* committed: from here on nothing fails the reload */
	for (int i = 0; i < n; i++)
		if (fds[i] < 0)
			pr_info("cgroup /%s does not exist: it is systemd's, "
				"made when its unit starts; attached then",
				cfg->cgroups[i]);
		else if (has_id(created, n_created, ids[i]))
			pr_info("attached to cgroup /%s (id %" PRIu64 ")",
				cfg->cgroups[i], (uint64_t)ids[i]);
		else
			pr_info("kept the attachment of cgroup /%s (id %" PRIu64
				")",
				cfg->cgroups[i], (uint64_t)ids[i]);
	n_links = sm_pins_links(&d->pins, links, SM_LINKS_MAX);
	for (int i = 0; i < n_links; i++) {
		if (has_id(ids, n, links[i]))
			continue;
		ret = sm_pins_detach(&d->pins, links[i]);
		if (ret)
			pr_warn("cannot detach from cgroup id %" PRIu64 ": %s",
				(uint64_t)links[i], strerror(-ret));
		else
			pr_info("detached from cgroup id %" PRIu64
				" (no longer configured)",
				(uint64_t)links[i]);
	}
	ret = sm_pins_cg_slots_sync(&d->pins, live, n_live, 1);
	if (ret)
		pr_warn("cannot drop stale counter slots: %s", strerror(-ret));
	for (int i = 0; d->applied && i < d->n_cg; i++)
		if (!has_id(ids, n, d->cg_ids[i]))
			close_fd(&d->cg_fds[i]);
	for (int i = 0; i < SM_CGROUPS_MAX; i++) {
		d->cg_fds[i] = i < n ? fds[i] : -1;
		d->cg_ids[i] = i < n ? ids[i] : 0;
	}
	d->n_cg = n;
	if (metrics_fd >= 0 || !cfg->metrics[0]) {
		close_fd(&d->metrics_fd);
		d->metrics_fd = metrics_fd;
		if (metrics_fd >= 0)
			pr_info("metrics on http://%s/metrics", cfg->metrics);
	}
	d->cfg = *cfg;
	d->applied = 1;
	sm_log_max = cfg->log_level;
	return 0;

err_detach:
	while (n_created--)
		sm_pins_detach(&d->pins, created[n_created]);
	if (d->applied)
		sm_pins_cg_slots_sync(&d->pins, d->cg_ids, d->n_cg, 1);
err_close:
	if (metrics_fd >= 0)
		close(metrics_fd);
	for (int i = 0; i < n; i++)
		if (opened[i])
			close_fd(&fds[i]);
	return ret < 0 ? ret : -EINVAL;
}

int daemon_refresh(struct sm_daemon *d, char *err, size_t errlen)
{
	static struct sm_config cfg; /* large: not on the stack */

	cfg = d->cfg;
	return daemon_apply(d, &cfg, err, errlen);
}

/* The configured cgroups that exist and are attached. */
static int n_attached(const struct sm_daemon *d)
{
	int k = 0;

	for (int i = 0; i < d->n_cg; i++)
		k += d->cg_fds[i] >= 0;
	return k;
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
	pr_info("reloaded %s: %d cgroup%s attached", file, n_attached(d),
		n_attached(d) == 1 ? "" : "s");
	snprintf(msg, len, "reloaded %s: %d cgroup%s attached%s\n", file,
		 n_attached(d), n_attached(d) == 1 ? "" : "s",
		 n_attached(d) < d->n_cg
			 ? " (the others' units are not running)"
			 : "");
	return 0;
}

void daemon_stop(struct sm_daemon *d, int detach)
{
	if (d->pid_file[0])
		unlink(d->pid_file);
	if (d->ctl_path[0] && d->ctl_fd >= 0)
		unlink(d->ctl_path);
	close_fd(&d->ctl_fd);
	close_fd(&d->metrics_fd);
	if (detach) {
		sm_pins_unload(&d->pins);
		pr_info("detached and removed the pins in %s", d->pins.dir);
	} else {
		pr_info("on_exit = keep: the datapath stays attached and pinned in %s",
			d->pins.dir);
	}
}

void daemon_close(struct sm_daemon *d)
{
	for (int i = 0; i < SM_CGROUPS_MAX; i++)
		close_fd(&d->cg_fds[i]);
	close_fd(&d->ctl_fd);
	close_fd(&d->metrics_fd);
	sm_pins_close(&d->pins);
	close_fd(&d->run_lock_fd); /* last: the run_dir is free */
}

void daemon_notify_status(const struct sm_daemon *d)
{
	__u32 sockets = 0;

	sm_pins_count_sockets(&d->pins, &sockets);
	sm_notify(
		"STATUS=attached to %d cgroup%s, %u sockets, %llu reloads (%llu refused)",
		n_attached(d), n_attached(d) == 1 ? "" : "s", sockets,
		d->reloads, d->reload_failures);
}

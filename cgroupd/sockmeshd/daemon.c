// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* daemon.c - see daemon.h: start (run_dir, pins, cgroup2, load or adopt,
 * the control socket, the pid file) and stop; apply.c makes a config the
 * running one. sockmeshd's own code: it logs. */
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
	sm_mesh_init(&d->mesh, "");
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
	sm_mesh_init(&d->mesh, cfg->pin_dir);
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
	sm_mesh_close(&d->mesh);
	sm_pins_close(&d->pins);
	close_fd(&d->run_lock_fd); /* last: the run_dir is free */
}

int daemon_n_attached(const struct sm_daemon *d)
{
	int k = 0;

	for (int i = 0; i < d->n_cg; i++)
		k += d->cg_fds[i] >= 0;
	return k;
}

void daemon_notify_status(const struct sm_daemon *d)
{
	__u32 sockets = 0;

	sm_pins_count_sockets(&d->pins, &sockets);
	sm_notify(
		"STATUS=attached to %d cgroup%s, %u sockets, %llu reloads (%llu refused)",
		daemon_n_attached(d), daemon_n_attached(d) == 1 ? "" : "s",
		sockets, d->reloads, d->reload_failures);
}

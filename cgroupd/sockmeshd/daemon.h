/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * daemon.h - sockmeshd's state and the steps of its life: start (lock,
 * load or adopt), apply a config all or nothing (at start and on every
 * reload; apply.c), stop. The event loop (loop.c) drives it.
 */
#ifndef SM_DAEMON_H
#define SM_DAEMON_H

#include <limits.h>

#include "config.h"
#include "mesh.h"
#include "pins.h"

struct sm_daemon {
	struct sm_config cfg; /* the running config */
	struct sm_pins pins;
	struct sm_mesh mesh; /* [mesh] mode = connect's programs */
	char cg_mnt[PATH_MAX];
	int n_cg; /* == cfg.n_cgroups once applied */
	int cg_fds[SM_CGROUPS_MAX];
	__u64 cg_ids[SM_CGROUPS_MAX];
	__u32 feat;	 /* SM_FEAT_* of this kernel (probe.h) */
	int loaded;	 /* this run loaded the programs */
	int applied;	 /* a config is in force */
	int metrics_fd;	 /* listening socket of `metrics`, or -1 */
	int ctl_fd;	 /* control socket in run_dir, or -1 */
	int run_lock_fd; /* SM_RUN_LOCK, held for the daemon's life */
	char pid_file[PATH_MAX];
	char ctl_path[PATH_MAX];
	unsigned long long reloads, reload_failures;
};

void daemon_init(struct sm_daemon *d);
/* Everything up to a datapath attached as @cfg says, or nothing. */
int daemon_start(struct sm_daemon *d, const struct sm_config *cfg);
/*
 * Make @cfg the running config, all or nothing: new cgroups are attached
 * before removed ones are released (kept ones are never touched), the
 * policy maps are swapped, the metrics listener rebound. On failure the
 * running config stays in force and @err says why.
 */
int daemon_apply(struct sm_daemon *d, const struct sm_config *cfg, char *err,
		 size_t errlen);
/* Read @path (NULL: the running config's file), check it, apply it.
 * Counts reloads and failures; @msg says what happened. */
int daemon_reload(struct sm_daemon *d, const char *path, char *msg, size_t len);
/* Apply the running config again: a cgroup systemd made, or made anew,
 * is attached (logged; @err if it could not be). */
int daemon_refresh(struct sm_daemon *d, char *err, size_t errlen);
/* Remove the pid file and control socket; with @detach, unload. */
void daemon_stop(struct sm_daemon *d, int detach);
/* The configured cgroups that exist and are attached. */
int daemon_n_attached(const struct sm_daemon *d);
/* Tell systemd (STATUS=) what is attached and counted. */
void daemon_notify_status(const struct sm_daemon *d);
/* Close what is left open. */
void daemon_close(struct sm_daemon *d);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * rundir.h - facts every client of sockmeshd needs, in one place: the
 * files in run_dir, the exit codes, whether a daemon runs, the control
 * protocol, and the checks on the config file.
 */
#ifndef SM_RUNDIR_H
#define SM_RUNDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "pins.h"

/* In run_dir (mode 0700): */
#define SM_PID_FILE "sockmeshd.pid"  /* the daemon's pid, written when ready */
#define SM_CTL_SOCK "sockmeshd.sock" /* control socket, AF_UNIX, mode 0600 */
/* held (flock) by the run_dir's daemon for its life: "PID\nCONFIG\nPIN_DIR\n" */
#define SM_RUN_LOCK "sockmeshd.lock"

/* Exit codes of sockmeshd and sockmesh. */
enum sm_exit {
	SM_EXIT_OK = 0,
	SM_EXIT_FAILURE = 1,
	SM_EXIT_USAGE = 2,	/* bad usage or config */
	SM_EXIT_NOT_LOADED = 3, /* nothing pinned, or no daemon to ask */
	SM_EXIT_BUSY = 4,	/* a daemon runs but did not answer */
	SM_EXIT_REFUSED = 5,	/* the daemon answered no (not a config) */
};

/*
 * The control protocol: one request line ("reload [PATH]", "unload",
 * "status", "status json"), then one reply: "ok\n" or "error\n", the text
 * to show, and the connection closes.
 */
#define SM_CTL_MAX     4096 /* longest request line */
#define SM_CTL_OK      "ok\n"
#define SM_CTL_ERROR   "error\n"
#define SM_CTL_TIMEOUT 30 /* seconds a client waits for a reply */

/* @run_dir/@name into @buf; -ENAMETOOLONG if it does not fit. */
int sm_run_path(char *buf, size_t len, const char *run_dir, const char *name);
/*
 * Who holds @run_dir's SM_RUN_LOCK: 1 with its @pid (0 while it starts)
 * and, if @cfg, its config path and pin_dir ("CONFIG, pin_dir DIR"); 0 if
 * no daemon holds it; -errno if it cannot be read.
 */
int sm_run_lock_holder(const char *run_dir, pid_t *pid, char *cfg, size_t len);
/*
 * The running daemon of @run_dir (or, failing that, of @pins's pin_dir):
 * its pid, -1 if one runs whose pid is not known (it is starting, or it
 * holds pin_dir with another run_dir), 0 if none runs. Never a pid from a
 * file a dead daemon left: the lock says who is alive.
 */
pid_t sm_daemon_pid(const struct sm_pins *pins, const char *run_dir);
/*
 * Ask the daemon at @run_dir: send @request, put the reply's text in @out.
 * Returns 0 (reply "ok"), -EREMOTEIO (reply "error"; the text says why),
 * -ENOENT/-ECONNREFUSED (no daemon listens) or another -errno.
 */
int sm_ctl_request(const char *run_dir, const char *request, char *out,
		   size_t len);

/*
 * The config file must be a regular file not writable by group or others
 * (it decides what root attaches to). 0, or -EPERM/-errno with a message
 * naming the file in @err.
 */
int sm_config_file_safe(const char *path, char *err, size_t errlen);
/* Make @dir exist with mode 0700 (created, or tightened if wider);
 * -EPERM for a shared directory (sticky or writable by others). */
int sm_private_dir(const char *dir);

#endif

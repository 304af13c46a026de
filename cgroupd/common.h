/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * common.h - facts every client of sockmeshd needs, in one place: the
 * files in run_dir, the exit codes, whether a daemon runs, the control
 * protocol, and the checks on the config file.
 */
#ifndef SM_COMMON_H
#define SM_COMMON_H

#include <stddef.h>
#include <sys/types.h>

#include "core.h"

/* In run_dir (mode 0700): */
#define SM_PID_FILE "sockmeshd.pid"  /* the daemon's pid, written when ready */
#define SM_CTL_SOCK "sockmeshd.sock" /* control socket, AF_UNIX, mode 0600 */

/* Exit codes of sockmeshd and sockmesh. */
enum sm_exit {
	SM_EXIT_OK = 0,
	SM_EXIT_FAILURE = 1,
	SM_EXIT_USAGE = 2,	/* bad usage or config */
	SM_EXIT_NOT_LOADED = 3, /* nothing pinned, or no daemon to ask */
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
/* The running daemon of @core's pin_dir: its pid, -1 if it runs but its
 * pid file is unreadable, 0 if none runs. */
pid_t sm_daemon_pid(const struct sm_core *core, const char *run_dir);
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

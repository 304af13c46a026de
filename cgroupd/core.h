/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * core.h - the datapath as pinned objects: load or adopt, attach to
 * cgroups, fill the policy maps, read counters, unload. Shared by sockmeshd
 * and the sockmesh CLI; functions return 0 or -errno and never log.
 *
 * Under pin_dir (a bpffs directory, flock()ed by the running daemon):
 *   v1/sm_sockhash sm_state sm_counters sm_ports sm_cidrs sm_unique
 *      sm_ctl sm_flows                                                 maps
 *   v1/sm_sockops sm_skmsg                                            programs
 *   v1/cg_<cgroup id>                             one sock_ops link per cgroup
 */
#ifndef SM_CORE_H
#define SM_CORE_H

#include <limits.h>
#include <linux/types.h>

#include "config.h"
#include "sockmesh.h"

enum sm_map_idx {
	SM_M_SOCKHASH,
	SM_M_STATE,
	SM_M_COUNTERS,
	SM_M_PORTS,
	SM_M_CIDRS,
	SM_M_UNIQUE,
	SM_M_CTL,
	SM_M_FLOWS,
	SM_M_NR,
};

struct sm_core {
	char pin_dir[PATH_MAX];
	char dir[PATH_MAX]; /* pin_dir/SM_PIN_LAYOUT */
	int lock_fd;
	int map_fds[SM_M_NR];
	int prog_sockops_fd;
	int prog_skmsg_fd;
};

#define SM_LINKS_MAX 256

void sm_core_init(struct sm_core *core, const char *pin_dir);
void sm_core_close(struct sm_core *core);

/* Mount bpffs on /sys/fs/bpf if pin_dir is below it and it is missing;
 * create pin_dir; -EXDEV if pin_dir is not on bpffs. */
int sm_core_prepare_dir(struct sm_core *core);
/* Take the pin_dir lock for this process's lifetime; -EBUSY if held. */
int sm_core_lock(struct sm_core *core);
/* Is the pin_dir lock held by someone (a running sockmeshd)? */
int sm_core_locked(const struct sm_core *core);

/* Open pinned objects; -ENOENT when nothing is pinned. */
int sm_core_open(struct sm_core *core);
/* Load the programs fresh, attach SK_MSG to the sockhash, pin atomically. */
int sm_core_load(struct sm_core *core, __u32 max_sockets);
/* max_entries of the pinned sockhash. */
int sm_core_max_sockets(const struct sm_core *core, __u32 *max);

/* Fill the policy maps from @cfg (new connections see it; old ones keep
 * the decision taken at their establishment). */
int sm_core_apply_policy(const struct sm_core *core,
			 const struct sm_config *cfg);

/* Attach the sock_ops program to cgroup @cg_fd unless a link is pinned for
 * it already; *@created says which. */
int sm_core_attach(const struct sm_core *core, int cg_fd, __u64 cg_id,
		   int *created);
int sm_core_detach(const struct sm_core *core, __u64 cg_id);
/* Cgroup ids with a pinned link; returns their count or -errno. */
int sm_core_links(const struct sm_core *core, __u64 *ids, int max);

int sm_core_counters(const struct sm_core *core, struct sm_counters *sum);
/* Sum the per-CPU values of an sm_counters map @fd (pinned or not). */
int sm_counters_read(int fd, struct sm_counters *sum);
int sm_core_count_sockets(const struct sm_core *core, __u32 *n);

/* Stop redirecting: every later message takes the stack. */
int sm_core_set_drain(const struct sm_core *core);
/* Drain, detach every link and remove every pin. Connections go on over
 * TCP; their sockets leave the unpinned map as they close. */
int sm_core_unload(struct sm_core *core);

#endif

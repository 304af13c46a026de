/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * status.h - what `sockmesh status`, the daemon's control socket, `sockmesh
 * top` and the Prometheus endpoint show, read once from the pins and
 * rendered from the same numbers: human text, JSON, Prometheus text.
 */
#ifndef SM_STATUS_H
#define SM_STATUS_H

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

#include "pins.h"
#include "sm_mesh.h"

struct sm_status_cg {
	char path[PATH_MAX]; /* relative to the cgroup2 mount, "/x" */
	__u64 id;
	__u32 slot;		 /* 0: no counter slot */
	struct sm_cg_counters c; /* zero without a slot */
};

#define SM_STATUS_SHORT 16

struct sm_status {
	char pin_dir[PATH_MAX];
	char dir[PATH_MAX];
	pid_t daemon_pid; /* as sm_daemon_pid() */
	int n;		  /* attached cgroups */
	struct sm_status_cg cg[SM_LINKS_MAX];
	__u32 sockets, max_sockets;
	struct sm_counters c;
	__u32 feat;  /* SM_FEAT_* the datapath was loaded with; 0: unknown */
	int n_short; /* short-connection ports; the first SM_STATUS_SHORT: */
	struct sm_portstat short_ports[SM_STATUS_SHORT];
	int short_skipping[SM_STATUS_SHORT]; /* new connections skipped now */
	__u32 ctl_flags; /* SM_CTL_*: SM_CTL_FAST is compat = fast */
	int n_strict;	 /* ports compat = strict keeps on TCP; the first: */
	struct sm_portstat strict_ports[SM_STATUS_SHORT];
	/* [mesh] mode = connect's programs (pin_dir/SM_MESH_PIN_DIR) */
	int mesh_on;		/* pinned and configured on */
	int mesh_links;		/* cgroups they are attached to */
	__u32 mesh_pods;	/* meshed pod addresses learned */
	struct smm_counters mc; /* summed over CPUs */
	int n_waiting;		/* configured systemd cgroups not made yet: */
	char waiting[SM_CGROUPS_MAX][SM_CGROUP_LEN];
};

/* Read everything from @pins (opened) into @st. */
int sm_status_read(const struct sm_pins *pins, const char *run_dir,
		   struct sm_status *st);
/*
 * The cgroups of @cfg a running daemon waits for: systemd's (a unit's,
 * sm_cgroup_systemd_owned) that are not attached, into @st->waiting.
 */
void sm_status_waiting(struct sm_status *st, const struct sm_config *cfg);
void sm_status_json(const struct sm_status *st, FILE *out);
void sm_status_human(const struct sm_status *st, FILE *out);

/* What only the daemon knows, for the metrics. */
struct sm_status_daemon {
	unsigned long long reloads, reload_failures;
	/* clients closed before their exchange ended (loop.h): their pool
	 * was full and they were the oldest, or their deadline came */
	unsigned long long ctl_evicted, ctl_deadline;
	unsigned long long metrics_evicted, metrics_deadline;
};
void sm_status_prometheus(const struct sm_status *st,
			  const struct sm_status_daemon *d, FILE *out);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pins.h - the datapath as pinned objects: load or adopt, attach to
 * cgroups, fill the policy maps, read counters, unload. Shared by sockmeshd
 * and the sockmesh CLI; functions return 0 or -errno and never log.
 *
 * Under pin_dir (a bpffs directory, flock()ed by the running daemon):
 *   v1/<every map and program of SM_MAPS and SM_PROGS, by its name>
 *   v1/cg_<cgroup id>                             one sock_ops link per cgroup
 */
#ifndef SM_PINS_H
#define SM_PINS_H

#include <limits.h>
#include <linux/types.h>

#include "config.h"
#include "sockmesh.h"

enum sm_map_idx {
#define SM_MAP_ENUM(idx, name) SM_M_##idx,
	SM_MAPS(SM_MAP_ENUM)
#undef SM_MAP_ENUM
		SM_M_NR,
};

enum sm_prog_idx {
#define SM_PROG_ENUM(idx, name) SM_P_##idx,
	SM_PROGS(SM_PROG_ENUM)
#undef SM_PROG_ENUM
		SM_P_NR,
};

struct sm_pins {
	char pin_dir[PATH_MAX];
	char dir[PATH_MAX]; /* pin_dir/SM_PIN_LAYOUT */
	int lock_fd;
	int map_fds[SM_M_NR];
	int prog_fds[SM_P_NR];
};

#define SM_LINKS_MAX 256

void sm_pins_init(struct sm_pins *pins, const char *pin_dir);
void sm_pins_close(struct sm_pins *pins);

/* Mount bpffs on /sys/fs/bpf if pin_dir is below it and it is missing;
 * create pin_dir; -EXDEV if pin_dir is not on bpffs. */
int sm_pins_prepare_dir(struct sm_pins *pins);
/* Take the pin_dir lock for this process's lifetime; -EBUSY if held. */
int sm_pins_lock(struct sm_pins *pins);
/* Is the pin_dir lock held by someone (a running sockmeshd)? */
int sm_pins_locked(const struct sm_pins *pins);

/* Open pinned objects; -ENOENT when nothing is pinned. */
int sm_pins_open(struct sm_pins *pins);
/* Load the programs fresh, attach SK_MSG to the sockhash, pin atomically. */
/* @feat: the kernel's SM_FEAT_*; cleared of what the kernel refused. */
int sm_pins_load(struct sm_pins *pins, __u32 max_sockets, __u32 *feat);
/* The SM_FEAT_* the pinned datapath was loaded with (| SM_FEAT_SET), and
 * (@flags, may be NULL) its SM_CTL_* switches now. */
int sm_pins_feat(const struct sm_pins *pins, __u32 *feat, __u32 *flags);
/* max_entries of the pinned sockhash. */
int sm_pins_max_sockets(const struct sm_pins *pins, __u32 *max);

/*
 * Make the policy maps say @cfg, swapped, not edited in place: fill the
 * idle generation completely, flip sm_ctl.policy_gen to it, then wait an
 * RCU grace period so that no sock_ops still reads the old one when the
 * next call fills it. New connections see the whole new policy; old ones
 * keep the decision taken at their establishment.
 */
int sm_pins_apply_policy(const struct sm_pins *pins,
			 const struct sm_config *cfg);
/* Fill the maps of policy generation @gen (0 or 1) from @cfg. */
int sm_pins_fill_policy(const struct sm_pins *pins, int gen,
			const struct sm_config *cfg);
/* The generation sock_ops reads now. */
int sm_pins_policy_gen(const struct sm_pins *pins, __u32 *gen);

/*
 * Per-cgroup counter slots: make sm_cgslots hold a slot for each of the
 * @n cgroup @ids, keeping the slots they have (sockets carry them) and
 * giving new ones a free slot with zeroed counters. With @prune, drop the
 * slots of cgroups not in @ids (after they were detached).
 */
int sm_pins_cg_slots_sync(const struct sm_pins *pins, const __u64 *ids, int n,
			  int prune);
/* Slot of cgroup @id; -ENOENT if it has none. */
int sm_pins_cg_slot(const struct sm_pins *pins, __u64 id, __u32 *slot);
/* Per-CPU sum of the counters of @slot. */
int sm_pins_cg_counters(const struct sm_pins *pins, __u32 slot,
			struct sm_cg_counters *sum);

/* Attach the sock_ops program to cgroup @cg_fd unless a link is pinned for
 * it already; *@created says which. */
int sm_pins_attach(const struct sm_pins *pins, int cg_fd, __u64 cg_id,
		   int *created);
int sm_pins_detach(const struct sm_pins *pins, __u64 cg_id);
/* Cgroup ids with a pinned link; returns their count or -errno. */
int sm_pins_links(const struct sm_pins *pins, __u64 *ids, int max);
/* Is cgroup @id attached (a link pinned for it)? 1, 0 or -errno. */
int sm_pins_attached(const struct sm_pins *pins, __u64 id);

int sm_pins_counters(const struct sm_pins *pins, struct sm_counters *sum);
/*
 * What the ports' slots say, in one walk of sm_portstats (65536 slots):
 * the ports whose last connections were mostly short
 * (sm_portstat_mostly_short()), each with @skipping[i] set while new ones
 * are not accelerated (sm_portstat_short()); and the ports where compat =
 * strict found a connection with a blocking end or a splice() reader
 * (sm_portstat.strict, SM_PS_*; under strict, new connections to them stay
 * on TCP). Up to max_* of each into the arrays, in slot order; n_* counts
 * them all.
 */
struct sm_port_report {
	struct sm_portstat *short_ports, *strict_ports;
	int *skipping;
	int max_short, max_strict;
	int n_short, n_strict; /* out */
	__u64 now;
};
int sm_pins_ports(const struct sm_pins *pins, struct sm_port_report *r);
/* Sum the per-CPU values of an sm_counters map @fd (pinned or not). */
int sm_counters_read(int fd, struct sm_counters *sum);
int sm_pins_count_sockets(const struct sm_pins *pins, __u32 *n);

/* Stop redirecting: every later message takes the stack. */
int sm_pins_set_drain(const struct sm_pins *pins);
/* Drain, detach every link and remove every pin. Connections go on over
 * TCP; their sockets leave the unpinned map as they close. */
int sm_pins_unload(struct sm_pins *pins);

/* bpffs helpers the mesh object's pins (mesh.c) use too: DIR/NAME into
 * @buf; bpf_obj_get / bpf_obj_pin of DIR/NAME; remove the files of a pin
 * directory and the directory (best effort). */
int sm_pin_path(char *buf, size_t len, const char *dir, const char *name);
int sm_obj_get(const char *dir, const char *name, int *fd);
int sm_obj_pin(int fd, const char *dir, const char *name);
void sm_remove_dir(const char *dir);

#endif

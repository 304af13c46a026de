/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * mesh.h - `[mesh] mode = connect`: the mesh object (mesh/mesh.bpf.c,
 * sm_mesh.h) loaded, pinned under pin_dir/SM_MESH_PIN_DIR, configured and
 * attached to cgroups beside the datapath. Functions return 0 or -errno and
 * never log.
 *
 * Under pin_dir/SM_MESH_PIN_DIR:
 *   <every map and program of SM_MESH_MAPS and SM_MESH_PROGS, by its name>
 *   <program name>_<cgroup id>          its link to that cgroup
 */
#ifndef SM_MESH_LIB_H
#define SM_MESH_LIB_H

#include <limits.h>
#include <linux/types.h>

#include "config.h"
#include "sm_mesh.h"

enum sm_mesh_map_idx {
#define SMM_MAP_ENUM(idx, name) SMM_M_##idx,
	SM_MESH_MAPS(SMM_MAP_ENUM)
#undef SMM_MAP_ENUM
		SMM_M_NR,
};

enum sm_mesh_prog_idx {
#define SMM_PROG_ENUM(idx, name) SMM_P_##idx,
	SM_MESH_PROGS(SMM_PROG_ENUM)
#undef SMM_PROG_ENUM
		SMM_P_NR,
};

struct sm_mesh {
	char dir[PATH_MAX]; /* pin_dir/SM_MESH_PIN_DIR */
	int map_fds[SMM_M_NR];
	int prog_fds[SMM_P_NR];
};

void sm_mesh_init(struct sm_mesh *m, const char *pin_dir);
void sm_mesh_close(struct sm_mesh *m);
/* Is it open (loaded or adopted)? */
int sm_mesh_is_open(const struct sm_mesh *m);
/* Open the pinned object; -ENOENT when nothing is pinned. */
int sm_mesh_open(struct sm_mesh *m);
/* Load it fresh and pin it (all pins or none). It passes everything until
 * sm_mesh_configure() turns it on. */
int sm_mesh_load(struct sm_mesh *m);
/* Make smm_conf and smm_xports say @cfg's [mesh]; @on 0 turns it off. */
int sm_mesh_configure(const struct sm_mesh *m, const struct sm_config *cfg,
		      int on);
/* Attach every program to cgroup @cg_fd unless linked already; *@created
 * says whether this call made the links. */
int sm_mesh_attach(const struct sm_mesh *m, int cg_fd, __u64 cg_id,
		   int *created);
int sm_mesh_detach(const struct sm_mesh *m, __u64 cg_id);
/* Cgroup ids with links; their count or -errno. */
int sm_mesh_links(const struct sm_mesh *m, __u64 *ids, int max);
/* Per-CPU sum of smm_counters. */
int sm_mesh_counters(const struct sm_mesh *m, struct smm_counters *sum);
/* Meshed pod addresses learned (smm_pods). */
int sm_mesh_count_pods(const struct sm_mesh *m, __u32 *n);
/* Detach every link, remove every pin and the directory. 0 if there was
 * nothing. */
int sm_mesh_unload(struct sm_mesh *m);

#endif

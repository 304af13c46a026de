/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* cgroup.h - the cgroup2 hierarchy: find it, create, identify, join. */
#ifndef SM_CGROUP_H
#define SM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

/* Mount point of cgroup2 into @buf (/sys/fs/cgroup or .../unified). */
int sm_cgroup2_mount(char *buf, size_t len);
/* Create @rel (and its parents) below @mnt if missing; return an O_RDONLY fd. */
int sm_cgroup_open(const char *mnt, const char *rel, int create);
/* The kernel's cgroup id of the directory @fd. */
int sm_cgroup_id(int fd, __u64 *id);
/* Path relative to @mnt ("/" for the root) of the cgroup with @id. */
int sm_cgroup_path(const char *mnt, __u64 id, char *buf, size_t len);
/*
 * @rel is systemd's (a component ends in .slice, .service or .scope):
 * sockmeshd never creates it, waits for it, and attaches again when
 * systemd makes it anew (a unit's restart).
 */
bool sm_cgroup_systemd_owned(const char *rel);
/* Move process @pid (0: the caller) into the cgroup @fd. */
int sm_cgroup_join(int fd, pid_t pid);

#endif

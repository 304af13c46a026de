// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup.c - cgroup2 through plain cgroupfs calls.
 *
 * libcgroup's mount discovery targets v1 controllers and the unified-only
 * layout; hosts that mount cgroup2 beside v1 (.../unified) are found more
 * simply and reliably from /proc/self/mounts, so this stays with the kernel
 * interface.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"

int sm_cgroup2_mount(char *buf, size_t len)
{
	struct mntent *m;
	FILE *f;
	int ret = -ENOENT;

	f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2"))
			continue;
		if (strlen(m->mnt_dir) >= len) {
			ret = -ENAMETOOLONG;
			break;
		}
		strcpy(buf, m->mnt_dir);
		ret = 0;
		/* prefer the canonical places when several are mounted */
		if (!strcmp(buf, "/sys/fs/cgroup") ||
		    !strcmp(buf, "/sys/fs/cgroup/unified"))
			break;
	}
	endmntent(f);
	return ret;
}

int sm_cgroup_open(const char *mnt, const char *rel, int create)
{
	char path[4096], *p;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", mnt, rel) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	if (create) {
		for (p = path + strlen(mnt) + 1; (p = strchr(p, '/')); p++) {
			*p = '\0';
			if (mkdir(path, 0755) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int sm_cgroup_id(int fd, __u64 *id)
{
	struct {
		struct file_handle fh;
		__u64 id;
	} h = {.fh.handle_bytes = sizeof(__u64)};
	int mount_id;

	if (name_to_handle_at(fd, "", &h.fh, &mount_id, AT_EMPTY_PATH))
		return -errno;
	memcpy(id, h.fh.f_handle, sizeof(*id));
	return 0;
}

/* nftw has no context argument: the search state lives here. */
static __u64 want_id;
static char *found_buf;
static size_t found_len, mnt_len;
static int found;

static int visit(const char *path, const struct stat *st, int type,
		 struct FTW *ftw)
{
	__u64 id = 0;
	int fd;

	(void)st;
	(void)ftw;
	if (type != FTW_D)
		return 0;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (!sm_cgroup_id(fd, &id) && id == want_id) {
		snprintf(found_buf, found_len, "%s",
			 path[mnt_len] ? path + mnt_len : "/");
		found = 1;
	}
	close(fd);
	return found ? FTW_STOP : 0;
}

int sm_cgroup_path(const char *mnt, __u64 id, char *buf, size_t len)
{
	want_id = id;
	found_buf = buf;
	found_len = len;
	mnt_len = strlen(mnt);
	found = 0;
	if (nftw(mnt, visit, 16, FTW_PHYS | FTW_ACTIONRETVAL) < 0)
		return -errno;
	return found ? 0 : -ENOENT;
}

int sm_cgroup_join(int fd, pid_t pid)
{
	char buf[32];
	int n, procs, ret = 0;

	procs = openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (procs < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", pid ? pid : getpid());
	if (write(procs, buf, n) != n)
		ret = -errno;
	close(procs);
	return ret;
}

bool sm_cgroup_systemd_owned(const char *rel)
{
	static const char *const units[] = {".slice", ".service", ".scope"};

	for (const char *p = rel; *p;) {
		size_t n = strcspn(p, "/");

		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t u = strlen(units[i]);

			if (n > u && !strncmp(p + n - u, units[i], u))
				return true;
		}
		p += n;
		p += strspn(p, "/");
	}
	return false;
}

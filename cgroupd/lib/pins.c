// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* pins.c - load, adopt, attach, fill, read and unload the pinned datapath. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mesh.h"
#include "pins.h"
#include "policy.h"
#include "sockmesh.skel.h"

#define BPFFS_DEFAULT "/sys/fs/bpf"

static const char *const map_names[SM_M_NR] = {
#define SM_MAP_NAME(idx, name) [SM_M_##idx] = #name,
	SM_MAPS(SM_MAP_NAME)
#undef SM_MAP_NAME
};

static const char *const prog_names[SM_P_NR] = {
#define SM_PROG_NAME(idx, name) [SM_P_##idx] = #name,
	SM_PROGS(SM_PROG_NAME)
#undef SM_PROG_NAME
};

/* The policy maps of each generation: ports, cidrs, node-unique cidrs. */
static const enum sm_map_idx policy_maps[2][3] = {
	{SM_M_PORTS, SM_M_CIDRS, SM_M_UNIQUE},
	{SM_M_PORTS1, SM_M_CIDRS1, SM_M_UNIQUE1},
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void sm_pins_init(struct sm_pins *pins, const char *pin_dir)
{
	memset(pins, 0, sizeof(*pins));
	snprintf(pins->pin_dir, sizeof(pins->pin_dir), "%s", pin_dir);
	snprintf(pins->dir, sizeof(pins->dir), "%s/%s", pin_dir, SM_PIN_LAYOUT);
	pins->lock_fd = -1;
	for (int i = 0; i < SM_P_NR; i++)
		pins->prog_fds[i] = -1;
	for (int i = 0; i < SM_M_NR; i++)
		pins->map_fds[i] = -1;
}

static void close_objects(struct sm_pins *pins)
{
	for (int i = 0; i < SM_M_NR; i++)
		close_fd(&pins->map_fds[i]);
	for (int i = 0; i < SM_P_NR; i++)
		close_fd(&pins->prog_fds[i]);
}

void sm_pins_close(struct sm_pins *pins)
{
	if (!pins)
		return;
	close_objects(pins);
	close_fd(&pins->lock_fd);
}

static int is_bpffs(const char *path)
{
	struct statfs st;

	if (statfs(path, &st))
		return -errno;
	return st.f_type == BPF_FS_MAGIC;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int sm_pins_prepare_dir(struct sm_pins *pins)
{
	size_t n = strlen(BPFFS_DEFAULT);
	int ret;

	if (!strncmp(pins->pin_dir, BPFFS_DEFAULT, n) &&
	    (pins->pin_dir[n] == '/' || !pins->pin_dir[n]) &&
	    is_bpffs(BPFFS_DEFAULT) == 0) {
		if (mount("bpf", BPFFS_DEFAULT, "bpf", 0, "mode=0700"))
			return -errno;
	}
	ret = mkdir_p(pins->pin_dir, 0700);
	if (ret)
		return ret;
	ret = is_bpffs(pins->pin_dir);
	if (ret < 0)
		return ret;
	return ret ? 0 : -EXDEV;
}

int sm_pins_lock(struct sm_pins *pins)
{
	pins->lock_fd = open(pins->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pins->lock_fd < 0)
		return -errno;
	if (flock(pins->lock_fd, LOCK_EX | LOCK_NB)) {
		int ret = errno == EWOULDBLOCK ? -EBUSY : -errno;

		close_fd(&pins->lock_fd);
		return ret;
	}
	return 0;
}

int sm_pins_locked(const struct sm_pins *pins)
{
	int fd, ret = 0;

	if (pins->lock_fd >= 0)
		return 0; /* held by us */
	fd = open(pins->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB))
		ret = errno == EWOULDBLOCK;
	else
		flock(fd, LOCK_UN);
	close(fd);
	return ret;
}

int sm_pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int sm_obj_get(const char *dir, const char *name, int *fd)
{
	char path[PATH_MAX];
	int ret = sm_pin_path(path, sizeof(path), dir, name);

	if (ret)
		return ret;
	*fd = bpf_obj_get(path);
	return *fd < 0 ? -errno : 0;
}

int sm_pins_open(struct sm_pins *pins)
{
	int ret;

	close_objects(pins);
	for (int i = 0; i < SM_M_NR; i++) {
		ret = sm_obj_get(pins->dir, map_names[i], &pins->map_fds[i]);
		if (ret)
			goto err_close;
	}
	for (int i = 0; i < SM_P_NR; i++) {
		ret = sm_obj_get(pins->dir, prog_names[i], &pins->prog_fds[i]);
		if (ret)
			goto err_close;
	}
	return 0;
err_close:
	close_objects(pins);
	return ret;
}

int sm_obj_pin(int fd, const char *dir, const char *name)
{
	char path[PATH_MAX];
	int ret = sm_pin_path(path, sizeof(path), dir, name);

	if (ret)
		return ret;
	return bpf_obj_pin(fd, path) ? -errno : 0;
}

/* Remove the files of a pin directory and the directory; best effort. */
void sm_remove_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
}

static int dup_fd(int fd, int *out)
{
	*out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return *out < 0 ? -errno : 0;
}

/* The window variant's reader trace: loaded, attached and pinned with it. */
#define SM_RECV_LINK "sm_recv_link"
#define SM_WANT_TRACE(feat) \
	(!((feat)&SM_FEAT_KERN_CTX) && ((feat)&SM_FEAT_RECV_TRACE))
/* The splice() reader trace, with either variant (skmsg.bpf.c, sm_splice). */
#define SM_SPLICE_LINK	     "sm_splice_link"
#define SM_WANT_SPLICE(feat) ((feat)&SM_FEAT_RECV_TRACE)

/* Open the object and load the variant of @feat into the kernel. */
static struct sockmesh_bpf *skel_load(__u32 max_sockets, __u32 feat, int *err)
{
	struct sockmesh_bpf *skel = sockmesh_bpf__open();
	int ret;

	if (!skel) {
		*err = -errno;
		return NULL;
	}
	/* the kernel's variant (probe.h): the programs it can run, and
	 * sm_feat for the paths inside them */
	skel->rodata->sm_feat = feat;
	ret = bpf_program__set_autoload(skel->progs.sm_skmsg,
					!!(feat & SM_FEAT_KERN_CTX));
	if (!ret)
		ret = bpf_program__set_autoload(skel->progs.sm_skmsg_win,
						!(feat & SM_FEAT_KERN_CTX));
	if (!ret)
		ret = bpf_program__set_autoload(skel->progs.sm_recv_win,
						SM_WANT_TRACE(feat));
	if (!ret)
		ret = bpf_program__set_autoload(skel->progs.sm_splice,
						SM_WANT_SPLICE(feat));
	if (!ret)
		ret = bpf_map__set_max_entries(skel->maps.sm_sockhash,
					       max_sockets);
	if (!ret)
		ret = sockmesh_bpf__load(skel);
	if (ret) {
		sockmesh_bpf__destroy(skel);
		*err = ret;
		return NULL;
	}
	return skel;
}

int sm_pins_load(struct sm_pins *pins, __u32 max_sockets, __u32 *featp)
{
	struct sm_ctl ctl = {};
	__u32 zero = 0, feat = *featp;
	struct sockmesh_bpf *skel;
	struct bpf_map *maps[SM_M_NR];
	struct bpf_program *progs[SM_P_NR];
	struct bpf_link *recv = NULL, *splice = NULL;
	char tmp[PATH_MAX], path[PATH_MAX + 32];
	int ret;

	close_objects(pins);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s_new_%d", pins->dir,
			     getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;

	skel = skel_load(max_sockets, feat, &ret);
	if (!skel && (feat & SM_FEAT_RECV_TRACE)) {
		/* the probe found what the traces need, the verifier said no:
		 * the window as reported at the receiver's writes, and no
		 * splice() reader seen */
		feat &= ~SM_FEAT_RECV_TRACE;
		skel = skel_load(max_sockets, feat, &ret);
		if (skel)
			*featp = feat;
	}
	if (!skel)
		return ret;
#define SM_MAP_SKEL(idx, name) maps[SM_M_##idx] = skel->maps.name;
	SM_MAPS(SM_MAP_SKEL)
#undef SM_MAP_SKEL
#define SM_PROG_SKEL(idx, name) progs[SM_P_##idx] = skel->progs.name;
	SM_PROGS(SM_PROG_SKEL)
#undef SM_PROG_SKEL
	if (!(feat & SM_FEAT_KERN_CTX))
		progs[SM_P_SKMSG] = skel->progs.sm_skmsg_win;
	/* what the datapath was loaded with, for `sockmesh status` */
	ctl.feat = feat | SM_FEAT_SET;
	if (bpf_map_update_elem(bpf_map__fd(maps[SM_M_CTL]), &zero, &ctl,
				BPF_ANY)) {
		ret = -errno;
		goto err_destroy;
	}
	/* SK_MSG belongs to the map: it runs for every socket put in it */
	if (bpf_prog_attach(bpf_program__fd(progs[SM_P_SKMSG]),
			    bpf_map__fd(maps[SM_M_SOCKHASH]),
			    BPF_SK_MSG_VERDICT, 0)) {
		ret = -errno;
		goto err_destroy;
	}

	/* pin into a private directory, then rename: all pins or none */
	sm_remove_dir(tmp);
	if (mkdir(tmp, 0700)) {
		ret = -errno;
		goto err_destroy;
	}
	for (int i = 0; i < SM_M_NR; i++) {
		ret = sm_obj_pin(bpf_map__fd(maps[i]), tmp, map_names[i]);
		if (ret)
			goto err_remove;
	}
	for (int i = 0; i < SM_P_NR; i++) {
		ret = sm_obj_pin(bpf_program__fd(progs[i]), tmp, prog_names[i]);
		if (ret)
			goto err_remove;
	}
	if (SM_WANT_TRACE(feat)) {
		recv = bpf_program__attach_trace(skel->progs.sm_recv_win);
		if (!recv) {
			ret = -errno;
			goto err_remove;
		}
		ret = sm_pin_path(path, sizeof(path), tmp, SM_RECV_LINK);
		if (!ret)
			ret = bpf_link__pin(recv, path);
		if (ret)
			goto err_remove;
	}
	if (SM_WANT_SPLICE(feat)) {
		splice = bpf_program__attach_trace(skel->progs.sm_splice);
		if (!splice) {
			ret = -errno;
			goto err_remove;
		}
		ret = sm_pin_path(path, sizeof(path), tmp, SM_SPLICE_LINK);
		if (!ret)
			ret = bpf_link__pin(splice, path);
		if (ret)
			goto err_remove;
	}
	if (rename(tmp, pins->dir)) {
		ret = errno == ENOTEMPTY ? -EEXIST : -errno;
		goto err_remove;
	}

	for (int i = 0; i < SM_M_NR && !ret; i++)
		ret = dup_fd(bpf_map__fd(maps[i]), &pins->map_fds[i]);
	for (int i = 0; i < SM_P_NR && !ret; i++)
		ret = dup_fd(bpf_program__fd(progs[i]), &pins->prog_fds[i]);
	bpf_link__destroy(recv); /* the fds: the pins hold the links */
	bpf_link__destroy(splice);
	sockmesh_bpf__destroy(skel);
	if (ret)
		close_objects(pins);
	return ret;

err_remove:
	sm_remove_dir(tmp);
err_destroy:
	bpf_link__destroy(recv);
	bpf_link__destroy(splice);
	sockmesh_bpf__destroy(skel);
	return ret;
}

int sm_pins_max_sockets(const struct sm_pins *pins, __u32 *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(pins->map_fds[SM_M_SOCKHASH], &info, &len))
		return -errno;
	*max = info.max_entries;
	return 0;
}

/* Make the LPM map @fd hold exactly @n prefixes: add first, then remove
 * what is stale, so that no moment sees an empty map. */
static int sync_lpm(int fd, const struct sm_cidr *cidrs, int n)
{
	struct sm_lpm_key want[SM_CONF_CIDRS], key, next, stale[SM_CIDRS_MAX];
	int n_stale = 0, more;
	__u8 one = 1;

	for (int i = 0; i < n; i++) {
		sm_policy_lpm_key(&cidrs[i], &want[i]);
		if (bpf_map_update_elem(fd, &want[i], &one, BPF_ANY))
			return -errno;
	}
	for (more = !bpf_map_get_next_key(fd, NULL, &next); more;
	     more = !bpf_map_get_next_key(fd, &key, &next)) {
		int keep = 0;

		key = next;
		for (int i = 0; i < n && !keep; i++)
			keep = !memcmp(&key, &want[i], sizeof(key));
		if (!keep && n_stale < SM_CIDRS_MAX)
			stale[n_stale++] = key;
	}
	if (errno != ENOENT) /* only the end of the map ends the walk */
		return -errno;
	for (int i = 0; i < n_stale; i++)
		if (bpf_map_delete_elem(fd, &stale[i]) && errno != ENOENT)
			return -errno;
	return 0;
}

int sm_pins_fill_policy(const struct sm_pins *pins, int gen,
			const struct sm_config *cfg)
{
	static __u8 flags[SM_PORTS_MAX];
	static __u32 keys[SM_PORTS_MAX];
	const enum sm_map_idx *m = policy_maps[gen ? 1 : 0];
	__u32 count = SM_PORTS_MAX;
	int ret;

	sm_policy_port_flags(cfg, flags);
	for (__u32 i = 0; i < SM_PORTS_MAX; i++)
		keys[i] = i;
	if (bpf_map_update_batch(pins->map_fds[m[0]], keys, flags, &count,
				 NULL))
		return -errno;
	ret = sync_lpm(pins->map_fds[m[1]], cfg->cidrs, cfg->n_cidrs);
	if (ret)
		return ret;
	return sync_lpm(pins->map_fds[m[2]], cfg->node_unique_cidrs,
			cfg->n_node_unique_cidrs);
}

static int ctl_read(const struct sm_pins *pins, struct sm_ctl *ctl)
{
	__u32 zero = 0;

	if (bpf_map_lookup_elem(pins->map_fds[SM_M_CTL], &zero, ctl))
		return -errno;
	return 0;
}

int sm_pins_policy_gen(const struct sm_pins *pins, __u32 *gen)
{
	struct sm_ctl ctl;
	int ret = ctl_read(pins, &ctl);

	if (!ret)
		*gen = ctl.policy_gen;
	return ret;
}

int sm_pins_apply_policy(const struct sm_pins *pins,
			 const struct sm_config *cfg)
{
	struct sm_ctl ctl;
	__u32 zero = 0, idle;
	int ret;

	ret = ctl_read(pins, &ctl);
	if (ret)
		return ret;
	idle = !ctl.policy_gen;
	ret = sm_pins_fill_policy(pins, idle, cfg);
	if (ret)
		return ret;
	/* only this process writes sm_ctl while it holds the pin_dir lock */
	ctl.policy_gen = idle;
	ctl.short_msgs = cfg->short_conn_msgs;
	ctl.bulk_gap_us = cfg->small_write_gap_us;
	ctl.flags = (ctl.flags & ~SM_CTL_FAST) |
		    (cfg->compat_fast ? SM_CTL_FAST : 0);
	if (bpf_map_update_elem(pins->map_fds[SM_M_CTL], &zero, &ctl, BPF_ANY))
		return -errno;
	/*
	 * sock_ops runs under RCU: after a grace period none still reads the
	 * generation just left, so the next reload may rewrite it.
	 * MEMBARRIER_CMD_GLOBAL is synchronize_rcu() for user space.
	 */
	if (!syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0))
		return 0;
	if (errno != EINVAL)
		return -errno;
	usleep(100000); /* nohz_full: wait out a generous grace period */
	return 0;
}

int sm_pins_cg_slot(const struct sm_pins *pins, __u64 id, __u32 *slot)
{
	__u16 v;

	if (bpf_map_lookup_elem(pins->map_fds[SM_M_CGSLOTS], &id, &v))
		return -errno;
	*slot = v;
	return 0;
}

/* A zeroed per-CPU value buffer of sm_cgcounters; NULL with *@ncpu set to
 * -errno on failure. */
static struct sm_cg_counters *cg_percpu_alloc(int *ncpu)
{
	struct sm_cg_counters *per;

	*ncpu = libbpf_num_possible_cpus();
	if (*ncpu < 0)
		return NULL;
	per = calloc(*ncpu, sizeof(*per));
	if (!per)
		*ncpu = -ENOMEM;
	return per;
}

int sm_pins_cg_counters(const struct sm_pins *pins, __u32 slot,
			struct sm_cg_counters *sum)
{
	int ncpu, ret = 0;
	struct sm_cg_counters *per = cg_percpu_alloc(&ncpu);

	if (!per)
		return ncpu;
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(pins->map_fds[SM_M_CGCOUNTERS], &slot, per)) {
		ret = -errno;
		goto out;
	}
	for (int cpu = 0; cpu < ncpu; cpu++)
		for (int i = 0; i < SM_CG_NR; i++)
			sum->v[i] += per[cpu].v[i];
out:
	free(per);
	return ret;
}

static int cg_counters_zero(const struct sm_pins *pins, __u32 slot)
{
	int ncpu, ret = 0;
	struct sm_cg_counters *per = cg_percpu_alloc(&ncpu);

	if (!per)
		return ncpu;
	if (bpf_map_update_elem(pins->map_fds[SM_M_CGCOUNTERS], &slot, per,
				BPF_ANY))
		ret = -errno;
	free(per);
	return ret;
}

int sm_pins_cg_slots_sync(const struct sm_pins *pins, const __u64 *ids, int n,
			  int prune)
{
	int fd = pins->map_fds[SM_M_CGSLOTS], more, n_have = 0, ret;
	__u64 key, next, have_id[SM_CG_SLOTS];
	unsigned char used[SM_CG_SLOTS] = {1}; /* slot 0 means "none" */
	__u16 slot, last = 0;

	for (more = !bpf_map_get_next_key(fd, NULL, &next); more;
	     more = !bpf_map_get_next_key(fd, &key, &next)) {
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &slot))
			continue;
		if (slot < SM_CG_SLOTS) {
			used[slot] = 1;
			last = slot > last ? slot : last;
		}
		if (n_have < SM_CG_SLOTS)
			have_id[n_have++] = key;
	}
	for (int i = 0; i < n; i++) {
		__u32 s = 0;

		if (!ids[i]) /* a cgroup waited for */
			continue;
		if (!sm_pins_cg_slot(pins, ids[i], &s))
			continue;
		/* a fresh slot, after the last one used: a slot freed by a
		 * removed cgroup is reused last (its sockets still carry it) */
		for (int k = 1; k < SM_CG_SLOTS && !s; k++) {
			__u32 c = 1 + (last + k - 1) % (SM_CG_SLOTS - 1);

			if (!used[c])
				s = c;
		}
		if (!s)
			return -ENOSPC;
		ret = cg_counters_zero(pins, s);
		if (ret)
			return ret;
		slot = s;
		if (bpf_map_update_elem(fd, &ids[i], &slot, BPF_ANY))
			return -errno;
		used[s] = 1;
		last = s;
	}
	for (int h = 0; prune && h < n_have; h++) {
		int keep = 0;

		for (int i = 0; i < n && !keep; i++)
			keep = ids[i] == have_id[h];
		if (!keep && bpf_map_delete_elem(fd, &have_id[h]) &&
		    errno != ENOENT)
			return -errno;
	}
	return 0;
}

static void link_name(char *buf, size_t len, __u64 cg_id)
{
	snprintf(buf, len, "cg_%" PRIu64, (uint64_t)cg_id);
}

int sm_pins_attach(const struct sm_pins *pins, int cg_fd, __u64 cg_id,
		   int *created)
{
	char name[32];
	int fd, ret;

	*created = 0;
	link_name(name, sizeof(name), cg_id);
	if (!sm_obj_get(pins->dir, name, &fd)) {
		close(fd);
		return 0;
	}
	fd = bpf_link_create(pins->prog_fds[SM_P_SOCKOPS], cg_fd,
			     BPF_CGROUP_SOCK_OPS, NULL);
	if (fd < 0)
		return -errno;
	ret = sm_obj_pin(fd, pins->dir, name);
	if (ret)
		bpf_link_detach(fd);
	else
		*created = 1;
	close(fd);
	return ret;
}

int sm_pins_detach(const struct sm_pins *pins, __u64 cg_id)
{
	char name[32], path[PATH_MAX];
	int fd, ret;

	link_name(name, sizeof(name), cg_id);
	ret = sm_obj_get(pins->dir, name, &fd);
	if (ret)
		return ret;
	/* detach now, even if another process still holds the link */
	bpf_link_detach(fd);
	close(fd);
	ret = sm_pin_path(path, sizeof(path), pins->dir, name);
	if (!ret && unlink(path))
		ret = -errno;
	return ret;
}

int sm_pins_links(const struct sm_pins *pins, __u64 *ids, int max)
{
	struct dirent *de;
	unsigned long long id;
	int n = 0;
	char c;
	DIR *d = opendir(pins->dir);

	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max)
		if (sscanf(de->d_name, "cg_%llu%c", &id, &c) == 1)
			ids[n++] = id;
	closedir(d);
	return n;
}

int sm_pins_attached(const struct sm_pins *pins, __u64 id)
{
	__u64 ids[SM_LINKS_MAX];
	int n = sm_pins_links(pins, ids, SM_LINKS_MAX);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

int sm_counters_read(int fd, struct sm_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sm_counters *per;
	__u32 zero = 0;
	int ret = 0;

	if (ncpu < 0)
		return ncpu;
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		ret = -errno;
		goto out;
	}
	for (int cpu = 0; cpu < ncpu; cpu++) {
#define SM_ADD(name, ...) sum->name += per[cpu].name;
		SM_COUNTERS(SM_ADD)
#undef SM_ADD
	}
out:
	free(per);
	return ret;
}

int sm_pins_counters(const struct sm_pins *pins, struct sm_counters *sum)
{
	return sm_counters_read(pins->map_fds[SM_M_COUNTERS], sum);
}

/* Every sm_portstats entry through @fn, in batches; 0 or -errno. */
static int portstat_walk(const struct sm_pins *pins,
			 void (*fn)(const struct sm_portstat *ps, void *arg),
			 void *arg)
{
	enum { CHUNK = 4096 };
	static struct sm_portstat v[CHUNK];
	static __u32 keys[CHUNK];
	int fd = pins->map_fds[SM_M_PORTSTATS];
	__u32 batch = 0, count;
	void *in = NULL;

	for (;;) {
		int ret;

		count = CHUNK;
		ret = bpf_map_lookup_batch(fd, in, &batch, keys, v, &count,
					   NULL);
		if (ret && errno != ENOENT)
			return -errno;
		for (__u32 i = 0; i < count; i++)
			fn(&v[i], arg);
		if (ret) /* ENOENT: that was the last batch */
			return 0;
		in = &batch;
	}
}

static void port_one(const struct sm_portstat *ps, void *arg)
{
	struct sm_port_report *r = arg;

	if (sm_portstat_mostly_short(ps)) {
		if (r->n_short < r->max_short) {
			r->short_ports[r->n_short] = *ps;
			r->skipping[r->n_short] = sm_portstat_short(ps, r->now);
		}
		r->n_short++;
	}
	if (ps->strict) {
		if (r->n_strict < r->max_strict)
			r->strict_ports[r->n_strict] = *ps;
		r->n_strict++;
	}
}

int sm_pins_ports(const struct sm_pins *pins, struct sm_port_report *r)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns()'s clock */
	r->now = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	r->n_short = r->n_strict = 0;
	return portstat_walk(pins, port_one, r);
}

int sm_pins_count_sockets(const struct sm_pins *pins, __u32 *n)
{
	struct sm_key key, next;
	int fd = pins->map_fds[SM_M_SOCKHASH];

	*n = 0;
	if (bpf_map_get_next_key(fd, NULL, &next))
		return errno == ENOENT ? 0 : -errno;
	do {
		key = next;
		(*n)++;
	} while (!bpf_map_get_next_key(fd, &key, &next));
	return errno == ENOENT ? 0 : -errno;
}

int sm_pins_feat(const struct sm_pins *pins, __u32 *feat, __u32 *flags)
{
	struct sm_ctl ctl;
	int ret = ctl_read(pins, &ctl);

	if (!ret) {
		*feat = ctl.feat;
		if (flags)
			*flags = ctl.flags;
	}
	return ret;
}

int sm_pins_set_drain(const struct sm_pins *pins)
{
	struct sm_ctl ctl = {.flags = SM_CTL_DRAIN};
	__u32 zero = 0;

	/* keep what it was loaded with: status still shows it */
	if (!ctl_read(pins, &ctl))
		ctl.flags |= SM_CTL_DRAIN;
	if (bpf_map_update_elem(pins->map_fds[SM_M_CTL], &zero, &ctl, BPF_ANY))
		return -errno;
	return 0;
}

int sm_pins_unload(struct sm_pins *pins)
{
	__u64 ids[SM_LINKS_MAX];
	int n = sm_pins_links(pins, ids, SM_LINKS_MAX);

	if (n == -ENOENT)
		return -ENOENT;
	/*
	 * Never delete sockets from the map: the kernel frees a socket's unread
	 * redirected bytes when it leaves the map. Drain instead: every later
	 * message takes the stack (redirect -> stack keeps order), and each
	 * socket leaves the unpinned map when it closes.
	 */
	if (pins->map_fds[SM_M_CTL] >= 0) {
		int ret = sm_pins_set_drain(pins);

		if (ret)
			return ret;
	}
	for (int i = 0; i < n; i++)
		sm_pins_detach(pins, ids[i]);
	close_objects(pins);
	sm_remove_dir(pins->dir);
	{
		/* [mesh] mode = connect's programs go with the datapath */
		struct sm_mesh mesh;

		sm_mesh_init(&mesh, pins->pin_dir);
		sm_mesh_unload(&mesh);
	}
	if (access(pins->dir, F_OK) == 0)
		return -ENOTEMPTY;
	rmdir(pins->pin_dir); /* ours if empty; leave it if not */
	return 0;
}

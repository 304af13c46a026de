// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* mesh.c - load, pin, configure, attach and unload the mesh object. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mesh.h"
#include "pins.h"
#include "mesh.skel.h"

static const char *const map_names[SMM_M_NR] = {
#define SMM_MAP_NAME(idx, name) [SMM_M_##idx] = #name,
	SM_MESH_MAPS(SMM_MAP_NAME)
#undef SMM_MAP_NAME
};

static const char *const prog_names[SMM_P_NR] = {
#define SMM_PROG_NAME(idx, name) [SMM_P_##idx] = #name,
	SM_MESH_PROGS(SMM_PROG_NAME)
#undef SMM_PROG_NAME
};

static const enum bpf_attach_type attach_types[SMM_P_NR] = {
	[SMM_P_CONNECT4] = BPF_CGROUP_INET4_CONNECT,
	[SMM_P_CONNECT6] = BPF_CGROUP_INET6_CONNECT,
	[SMM_P_SOCKOPS] = BPF_CGROUP_SOCK_OPS,
	[SMM_P_GETSOCKOPT] = BPF_CGROUP_GETSOCKOPT,
	[SMM_P_GETPEER4] = BPF_CGROUP_INET4_GETPEERNAME,
	[SMM_P_GETPEER6] = BPF_CGROUP_INET6_GETPEERNAME,
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void sm_mesh_init(struct sm_mesh *m, const char *pin_dir)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->dir, sizeof(m->dir), "%s/%s", pin_dir, SM_MESH_PIN_DIR);
	for (int i = 0; i < SMM_M_NR; i++)
		m->map_fds[i] = -1;
	for (int i = 0; i < SMM_P_NR; i++)
		m->prog_fds[i] = -1;
}

void sm_mesh_close(struct sm_mesh *m)
{
	for (int i = 0; i < SMM_M_NR; i++)
		close_fd(&m->map_fds[i]);
	for (int i = 0; i < SMM_P_NR; i++)
		close_fd(&m->prog_fds[i]);
}

int sm_mesh_is_open(const struct sm_mesh *m)
{
	return m->map_fds[SMM_M_CONF] >= 0;
}

int sm_mesh_open(struct sm_mesh *m)
{
	int ret = 0;

	sm_mesh_close(m);
	for (int i = 0; i < SMM_M_NR && !ret; i++)
		ret = sm_obj_get(m->dir, map_names[i], &m->map_fds[i]);
	for (int i = 0; i < SMM_P_NR && !ret; i++)
		ret = sm_obj_get(m->dir, prog_names[i], &m->prog_fds[i]);
	if (ret)
		sm_mesh_close(m);
	return ret;
}

int sm_mesh_load(struct sm_mesh *m)
{
	struct sockmesh_mesh_bpf *skel;
	struct bpf_map *maps[SMM_M_NR];
	struct bpf_program *progs[SMM_P_NR];
	char tmp[PATH_MAX];
	int ret = 0;

	sm_mesh_close(m);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s_new_%d", m->dir, getpid()) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	skel = sockmesh_mesh_bpf__open_and_load();
	if (!skel)
		return -errno ? -errno : -EINVAL;
#define SMM_MAP_SKEL(idx, name) maps[SMM_M_##idx] = skel->maps.name;
	SM_MESH_MAPS(SMM_MAP_SKEL)
#undef SMM_MAP_SKEL
#define SMM_PROG_SKEL(idx, name) progs[SMM_P_##idx] = skel->progs.name;
	SM_MESH_PROGS(SMM_PROG_SKEL)
#undef SMM_PROG_SKEL
	sm_remove_dir(tmp);
	if (mkdir(tmp, 0700)) {
		ret = -errno;
		goto out;
	}
	for (int i = 0; i < SMM_M_NR && !ret; i++)
		ret = sm_obj_pin(bpf_map__fd(maps[i]), tmp, map_names[i]);
	for (int i = 0; i < SMM_P_NR && !ret; i++)
		ret = sm_obj_pin(bpf_program__fd(progs[i]), tmp, prog_names[i]);
	if (!ret && rename(tmp, m->dir))
		ret = errno == ENOTEMPTY ? -EEXIST : -errno;
	if (ret) {
		sm_remove_dir(tmp);
		goto out;
	}
	ret = sm_mesh_open(m);
out:
	sockmesh_mesh_bpf__destroy(skel);
	return ret;
}

static void set_ports(const struct sm_port_range *r, int n, __u8 flag, __u8 *v)
{
	for (int i = 0; i < n; i++)
		for (__u32 p = r[i].lo; p <= r[i].hi; p++)
			v[p] |= flag;
}

int sm_mesh_configure(const struct sm_mesh *m, const struct sm_config *cfg,
		      int on)
{
	static __u8 want[65536];
	struct smm_conf c = {
		.sidecar_uid = cfg->mesh_uid,
		.outbound_port = (__u16)cfg->mesh_outbound_port,
		.inbound_port = (__u16)cfg->mesh_inbound_port,
		.readiness_port = (__u16)cfg->mesh_readiness_port,
		.on = !!on,
	};
	int fd = m->map_fds[SMM_M_XPORTS];
	__u32 zero = 0;

	memset(want, 0, sizeof(want));
	set_ports(cfg->mesh_x_out, cfg->n_mesh_x_out, SMM_X_OUT, want);
	set_ports(cfg->mesh_x_in, cfg->n_mesh_x_in, SMM_X_IN, want);
	/* the ports first: a connect() between the two writes sees the new
	 * ports with the old conf, never a half-written table */
	for (__u32 p = 0; p < 65536; p++) {
		__u8 have = 0;

		if (bpf_map_lookup_elem(fd, &p, &have))
			return -errno;
		if (have != want[p] &&
		    bpf_map_update_elem(fd, &p, &want[p], BPF_ANY))
			return -errno;
	}
	if (bpf_map_update_elem(m->map_fds[SMM_M_CONF], &zero, &c, BPF_ANY))
		return -errno;
	return 0;
}

static void link_name(char *buf, size_t len, int prog, __u64 cg_id)
{
	snprintf(buf, len, "%s_%" PRIu64, prog_names[prog], (uint64_t)cg_id);
}

int sm_mesh_detach(const struct sm_mesh *m, __u64 cg_id)
{
	char name[64], path[PATH_MAX];
	int fd, ret = -ENOENT;

	for (int i = 0; i < SMM_P_NR; i++) {
		link_name(name, sizeof(name), i, cg_id);
		if (sm_obj_get(m->dir, name, &fd))
			continue;
		bpf_link_detach(fd);
		close(fd);
		ret = sm_pin_path(path, sizeof(path), m->dir, name);
		if (!ret && unlink(path))
			ret = -errno;
	}
	return ret;
}

int sm_mesh_attach(const struct sm_mesh *m, int cg_fd, __u64 cg_id,
		   int *created)
{
	char name[64];
	int fd, ret = 0;

	*created = 0;
	for (int i = 0; i < SMM_P_NR && !ret; i++) {
		link_name(name, sizeof(name), i, cg_id);
		if (!sm_obj_get(m->dir, name, &fd)) {
			close(fd);
			continue;
		}
		fd = bpf_link_create(m->prog_fds[i], cg_fd, attach_types[i],
				     NULL);
		if (fd < 0) {
			ret = -errno;
			break;
		}
		ret = sm_obj_pin(fd, m->dir, name);
		if (ret)
			bpf_link_detach(fd);
		else
			*created = 1;
		close(fd);
	}
	if (ret && *created)
		sm_mesh_detach(m, cg_id);
	return ret;
}

int sm_mesh_links(const struct sm_mesh *m, __u64 *ids, int max)
{
	char fmt[64];
	unsigned long long id;
	struct dirent *de;
	int n = 0;
	char c;
	DIR *d = opendir(m->dir);

	if (!d)
		return -errno;
	/* one program's links name the cgroups: every program has one */
	snprintf(fmt, sizeof(fmt), "%s_%%llu%%c", prog_names[SMM_P_SOCKOPS]);
	while ((de = readdir(d)) && n < max)
		if (sscanf(de->d_name, fmt, &id, &c) == 1)
			ids[n++] = id;
	closedir(d);
	return n;
}

int sm_mesh_counters(const struct sm_mesh *m, struct smm_counters *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	struct smm_counters *v;
	__u32 zero = 0;

	memset(sum, 0, sizeof(*sum));
	if (ncpu < 0)
		return ncpu;
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(m->map_fds[SMM_M_COUNTERS], &zero, v)) {
		free(v);
		return -errno;
	}
	for (int i = 0; i < ncpu; i++) {
		sum->outbound += v[i].outbound;
		sum->inbound += v[i].inbound;
		sum->answered += v[i].answered;
		sum->unmeshed += v[i].unmeshed;
		sum->pods_ready += v[i].pods_ready;
		sum->pods_moved += v[i].pods_moved;
	}
	free(v);
	return 0;
}

int sm_mesh_count_pods(const struct sm_mesh *m, __u32 *n)
{
	struct smm_dst k, next;
	int more;

	*n = 0;
	for (more = !bpf_map_get_next_key(m->map_fds[SMM_M_PODS], NULL, &next);
	     more;
	     more = !bpf_map_get_next_key(m->map_fds[SMM_M_PODS], &k, &next)) {
		k = next;
		(*n)++;
	}
	return 0;
}

int sm_mesh_unload(struct sm_mesh *m)
{
	__u64 ids[256];
	int n;

	if (access(m->dir, F_OK))
		return 0;
	n = sm_mesh_links(m, ids, 256);
	for (int i = 0; i < n; i++)
		sm_mesh_detach(m, ids[i]);
	sm_mesh_close(m);
	sm_remove_dir(m->dir);
	return access(m->dir, F_OK) == 0 ? -ENOTEMPTY : 0;
}

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * config.h - sockmesh.ini: one table defines each key, its default, its
 * parser and its limits (config.c), so the parser, the defaults and the
 * `--check` output cannot drift apart.
 */
#ifndef SM_CONFIG_H
#define SM_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stdio.h>
#include <linux/types.h>

#include "log.h"

#define SM_CONF_DEFAULT "/etc/sockmesh/sockmesh.ini"
#define SM_CGROUPS_MAX	64
#define SM_CGROUP_LEN	256
#define SM_RANGES_MAX	256
#define SM_CONF_CIDRS	256
#define SM_KEYS_MAX	32
#define SM_ERR_LEN	512

enum sm_on_exit {
	SM_ON_EXIT_KEEP,   /* pins stay: accelerated connections go on */
	SM_ON_EXIT_DETACH, /* like `sockmesh unload` */
};

struct sm_port_range {
	__u16 lo, hi; /* inclusive, host byte order */
};

/* A prefix in the IPv4-mapped IPv6 space of struct sm_key. */
struct sm_cidr {
	__u32 addr[4];	 /* network byte order */
	__u32 prefixlen; /* 0..128; an IPv4 /n is 96 + n */
};

struct sm_config {
	char path[PATH_MAX]; /* the file it was read from */

	/* [daemon] */
	char pin_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char metrics[64];		      /* "host:port", or "" when off */
	struct sockaddr_storage metrics_addr; /* it, parsed once */
	socklen_t metrics_addr_len;
	enum sm_log_level log_level;
	enum sm_on_exit on_exit;
	char run_group[64]; /* as written, or "" */
	long run_gid;	    /* its gid, or -1: only root uses the daemon */

	/* [accelerate] */
	char cgroups[SM_CGROUPS_MAX][SM_CGROUP_LEN];
	int n_cgroups;
	bool ports_all;
	struct sm_port_range ports[SM_RANGES_MAX];
	int n_ports;
	struct sm_port_range exclude_ports[SM_RANGES_MAX];
	int n_exclude_ports;
	struct sm_cidr cidrs[SM_CONF_CIDRS];
	int n_cidrs;
	struct sm_cidr node_unique_cidrs[SM_CONF_CIDRS];
	int n_node_unique_cidrs;
	__u32 max_sockets;
	__u32 short_conn_msgs;	  /* sm_ctl.short_msgs; 0: the rule is off */
	__u32 small_write_gap_us; /* sm_ctl.bulk_gap_us */
	bool compat_fast;	  /* compat = fast: sm_ctl SM_CTL_FAST */

	/* [mesh] (docs/mesh.md, "The iptables-free mode") */
	bool mesh_connect; /* mode = connect: sockmesh's programs capture */
	__u32 mesh_uid;	   /* sidecar_uid */
	__u32 mesh_outbound_port, mesh_inbound_port, mesh_readiness_port;
	struct sm_port_range mesh_x_out[SM_RANGES_MAX];
	int n_mesh_x_out;
	struct sm_port_range mesh_x_in[SM_RANGES_MAX];
	int n_mesh_x_in;

	/* canonical text of every key, for --check and status */
	char text[SM_KEYS_MAX][1024];
	bool seen[SM_KEYS_MAX];
};

/*
 * Read @path into @cfg, on top of the defaults. Returns 0, or -errno with a
 * message naming the file (and line, for content errors) in @err.
 */
int sm_config_load(struct sm_config *cfg, const char *path, char *err,
		   size_t errlen);
/* @path, or with @path NULL the default file if it exists, else defaults. */
int sm_config_load_default(struct sm_config *cfg, const char *path, char *err,
			   size_t errlen);
/* Same for an open stream; @name is used in messages. */
int sm_config_load_file(struct sm_config *cfg, FILE *f, const char *name,
			char *err, size_t errlen);
/* Defaults only. */
void sm_config_defaults(struct sm_config *cfg);
/* Print every key as `key = value`, grouped by section. */
void sm_config_print(const struct sm_config *cfg, FILE *out);

/* Parsers of single values, exposed for the tests. 0 or -EINVAL + @err. */
int sm_parse_cidr(const char *s, struct sm_cidr *out, char *err, size_t errlen);
int sm_parse_port_range(const char *s, struct sm_port_range *out, char *err,
			size_t errlen);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* status.c - see status.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "rundir.h"
#include "json.h"
#include "mesh.h"
#include "probe.h"
#include "status.h"

static const char *const cg_names[SM_CG_NR] = {
#define SM_CG_NAME(name) [SM_CG_##name] = #name,
	SM_CG_COUNTERS(SM_CG_NAME)
#undef SM_CG_NAME
};

/* [mesh] mode = connect: whether it is on, where, and its counters */
static void mesh_read(const struct sm_pins *pins, struct sm_status *st)
{
	__u64 ids[SM_LINKS_MAX];
	struct smm_conf c = {};
	struct sm_mesh m;
	__u32 zero = 0;
	int n;

	sm_mesh_init(&m, pins->pin_dir);
	if (sm_mesh_open(&m))
		return;
	if (!bpf_map_lookup_elem(m.map_fds[SMM_M_CONF], &zero, &c))
		st->mesh_on = c.on;
	n = sm_mesh_links(&m, ids, SM_LINKS_MAX);
	st->mesh_links = n > 0 ? n : 0;
	sm_mesh_counters(&m, &st->mc);
	sm_mesh_count_pods(&m, &st->mesh_pods);
	sm_mesh_close(&m);
}

int sm_status_read(const struct sm_pins *pins, const char *run_dir,
		   struct sm_status *st)
{
	__u64 ids[SM_LINKS_MAX];
	char mnt[PATH_MAX] = "";
	int n, ret;

	memset(st, 0, sizeof(*st));
	snprintf(st->pin_dir, sizeof(st->pin_dir), "%s", pins->pin_dir);
	snprintf(st->dir, sizeof(st->dir), "%s", pins->dir);
	n = sm_pins_links(pins, ids, SM_LINKS_MAX);
	if (n < 0)
		return n;
	ret = sm_pins_counters(pins, &st->c);
	if (!ret)
		ret = sm_pins_count_sockets(pins, &st->sockets);
	if (!ret)
		ret = sm_pins_max_sockets(pins, &st->max_sockets);
	if (!ret && !sm_pins_feat(pins, &st->feat, &st->ctl_flags) &&
	    !(st->feat & SM_FEAT_SET))
		st->feat = 0;
	if (!ret) {
		struct sm_port_report r = {
			.short_ports = st->short_ports,
			.skipping = st->short_skipping,
			.max_short = SM_STATUS_SHORT,
			.strict_ports = st->strict_ports,
			.max_strict = SM_STATUS_SHORT,
		};

		ret = sm_pins_ports(pins, &r);
		st->n_short = r.n_short;
		st->n_strict = r.n_strict;
	}
	if (ret)
		return ret;
	sm_cgroup2_mount(mnt, sizeof(mnt));
	for (int i = 0; i < n; i++) {
		struct sm_status_cg *cg = &st->cg[i];

		cg->id = ids[i];
		if (!mnt[0] ||
		    sm_cgroup_path(mnt, ids[i], cg->path, sizeof(cg->path)))
			strcpy(cg->path, "(removed)");
		if (sm_pins_cg_slot(pins, ids[i], &cg->slot))
			cg->slot = 0;
		if (cg->slot && sm_pins_cg_counters(pins, cg->slot, &cg->c))
			cg->slot = 0;
	}
	st->n = n;
	st->daemon_pid = sm_daemon_pid(pins, run_dir);
	mesh_read(pins, st);
	return 0;
}

static const char *compat_name(const struct sm_status *st)
{
	return st->ctl_flags & SM_CTL_FAST ? "fast" : "strict";
}

void sm_status_waiting(struct sm_status *st, const struct sm_config *cfg)
{
	st->n_waiting = 0;
	for (int i = 0; st->daemon_pid && i < cfg->n_cgroups; i++) {
		bool attached = false;

		if (!sm_cgroup_systemd_owned(cfg->cgroups[i]))
			continue;
		for (int k = 0; k < st->n; k++)
			attached |=
				!strcmp(st->cg[k].path + 1, cfg->cgroups[i]);
		if (!attached)
			snprintf(st->waiting[st->n_waiting++],
				 sizeof(st->waiting[0]), "/%s",
				 cfg->cgroups[i]);
	}
}

void sm_status_json(const struct sm_status *st, FILE *out)
{
	struct sm_json j;

	sm_json_init(&j, out);
	sm_json_begin_object(&j);
	sm_json_kstring(&j, "version", SM_VERSION);
	sm_json_kstring(&j, "pin_dir", st->pin_dir);
	sm_json_kint(&j, "daemon_pid", st->daemon_pid > 0 ? st->daemon_pid : 0);
	sm_json_key(&j, "attached");
	sm_json_begin_array(&j);
	for (int i = 0; i < st->n; i++) {
		sm_json_begin_object(&j);
		sm_json_kstring(&j, "cgroup", st->cg[i].path);
		sm_json_ku64(&j, "cgroup_id", st->cg[i].id);
		sm_json_end_object(&j);
	}
	sm_json_end_array(&j);
	sm_json_key(&j, "waiting");
	sm_json_begin_array(&j);
	for (int i = 0; i < st->n_waiting; i++)
		sm_json_string(&j, st->waiting[i]);
	sm_json_end_array(&j);
	sm_json_ku64(&j, "sockets", st->sockets);
	sm_json_ku64(&j, "max_sockets", st->max_sockets);
	sm_json_kstring(&j, "compat", compat_name(st));
	sm_json_key(&j, "mesh");
	sm_json_begin_object(&j);
	sm_json_kstring(&j, "mode", st->mesh_on ? "connect" : "iptables");
	sm_json_kint(&j, "attached_cgroups", st->mesh_links);
	sm_json_ku64(&j, "pods", st->mesh_pods);
	sm_json_ku64(&j, "outbound", st->mc.outbound);
	sm_json_ku64(&j, "inbound", st->mc.inbound);
	sm_json_ku64(&j, "answered", st->mc.answered);
	sm_json_ku64(&j, "unmeshed", st->mc.unmeshed);
	sm_json_ku64(&j, "pods_ready", st->mc.pods_ready);
	sm_json_ku64(&j, "pods_moved", st->mc.pods_moved);
	sm_json_end_object(&j);
	if (st->feat) {
		struct sm_rule r[SM_RULES_NR];

		/* the kernel's variant: its SK_MSG program, each rule's way */
		sm_datapath_rules(st->feat, r);
		sm_json_key(&j, "datapath");
		sm_json_begin_object(&j);
		sm_json_kstring(&j, "program", sm_probe_skmsg(st->feat));
		sm_json_key(&j, "rules");
		sm_json_begin_object(&j);
		for (int i = 0; i < SM_RULES_NR; i++)
			sm_json_kstring(&j, r[i].name, r[i].way);
		sm_json_end_object(&j);
		sm_json_key(&j, "kernel_lacks");
		sm_json_begin_array(&j);
		for (int i = 0; i < SM_RULES_NR; i++) {
			int seen = 0;

			for (int k = 0; k < i; k++)
				seen |= r[k].lacks && r[i].lacks &&
					!strcmp(r[k].lacks, r[i].lacks);
			if (r[i].lacks && !seen)
				sm_json_string(&j, r[i].lacks);
		}
		sm_json_end_array(&j);
		sm_json_end_object(&j);
	}
	sm_json_key(&j, "counters");
	sm_json_begin_object(&j);
#define SM_JSON_COUNTER(name, ...) sm_json_ku64(&j, #name, st->c.name);
	SM_COUNTERS(SM_JSON_COUNTER)
#undef SM_JSON_COUNTER
	sm_json_end_object(&j);
	/* per cgroup, after the node's counters (first match stays global) */
	sm_json_key(&j, "cgroups");
	sm_json_begin_array(&j);
	for (int i = 0; i < st->n; i++) {
		sm_json_begin_object(&j);
		sm_json_kstring(&j, "cgroup", st->cg[i].path);
		sm_json_ku64(&j, "cgroup_id", st->cg[i].id);
		sm_json_key(&j, "counters");
		sm_json_begin_object(&j);
		for (int k = 0; k < SM_CG_NR; k++)
			sm_json_ku64(&j, cg_names[k], st->cg[i].c.v[k]);
		sm_json_end_object(&j);
		sm_json_end_object(&j);
	}
	sm_json_end_array(&j);
	/* ports a connection with a blocking end marked (strict) */
	sm_json_ku64(&j, "strict_ports_total", st->n_strict);
	sm_json_key(&j, "strict_ports");
	sm_json_begin_array(&j);
	for (int i = 0; i < st->n_strict && i < SM_STATUS_SHORT; i++) {
		sm_json_begin_object(&j);
		sm_json_ku64(&j, "port", st->strict_ports[i].port);
		sm_json_kbool(&j, "blocking",
			      !!(st->strict_ports[i].strict & SM_PS_BLOCKING));
		sm_json_kbool(&j, "splice",
			      !!(st->strict_ports[i].strict & SM_PS_SPLICE));
		sm_json_end_object(&j);
	}
	sm_json_end_array(&j);
	/* ports whose connections are not accelerated (1 in 8 aside) */
	sm_json_ku64(&j, "short_ports_total", st->n_short);
	sm_json_key(&j, "short_ports");
	sm_json_begin_array(&j);
	for (int i = 0; i < st->n_short && i < SM_STATUS_SHORT; i++) {
		sm_json_begin_object(&j);
		sm_json_ku64(&j, "port", st->short_ports[i].port);
		sm_json_ku64(&j, "closed", st->short_ports[i].closed);
		sm_json_ku64(&j, "short", st->short_ports[i].short_conns);
		sm_json_kbool(&j, "skipping", st->short_skipping[i]);
		sm_json_end_object(&j);
	}
	sm_json_end_array(&j);
	sm_json_end_object(&j);
}

void sm_status_human(const struct sm_status *st, FILE *out)
{
	fprintf(out, "sockmesh %s\n", SM_VERSION);
	fprintf(out, "pin_dir:  %s\n", st->dir);
	if (st->daemon_pid > 0)
		fprintf(out, "daemon:   running (pid %d)\n", st->daemon_pid);
	else
		fprintf(out, "daemon:   %s\n",
			st->daemon_pid ? "running"
				       : "not running (pins stay in effect)");
	fprintf(out, "attached:%s\n", st->n ? "" : " nowhere");
	for (int i = 0; i < st->n; i++)
		fprintf(out, "  %-30s cgroup id %" PRIu64 "\n", st->cg[i].path,
			(uint64_t)st->cg[i].id);
	if (st->n_waiting)
		fprintf(out, "waiting:  (systemd's: attached when their unit "
			     "starts)\n");
	for (int i = 0; i < st->n_waiting; i++)
		fprintf(out, "  %s\n", st->waiting[i]);
	fprintf(out, "sockets:  %u of %u\n", st->sockets, st->max_sockets);
	fprintf(out, "compat:   %s\n",
		st->ctl_flags & SM_CTL_FAST
			? "fast (every selected connection accelerated; "
			  "docs/compat.md)"
			: "strict (connections with a blocking end, "
			  "SO_RCVLOWAT or SO_PEEK_OFF stay on TCP)");
	if (st->mesh_on)
		fprintf(out,
			"mesh:     connect (sockmesh captures: %d cgroup%s, "
			"%u meshed pod address%s; connect()s to the sidecar "
			"%" PRIu64 ", to a pod's inbound %" PRIu64
			", SO_ORIGINAL_DST answered %" PRIu64
			", from pods without a sidecar %" PRIu64 ")\n",
			st->mesh_links, st->mesh_links == 1 ? "" : "s",
			st->mesh_pods, st->mesh_pods == 1 ? "" : "es",
			(uint64_t)st->mc.outbound, (uint64_t)st->mc.inbound,
			(uint64_t)st->mc.answered, (uint64_t)st->mc.unmeshed);
	else
		fprintf(out,
			"mesh:     iptables (the mesh's own rules capture)\n");
	if (st->feat) {
		struct sm_rule r[SM_RULES_NR];
		int n = 0;

		sm_datapath_rules(st->feat, r);
		fprintf(out, "datapath: %s", sm_probe_skmsg(st->feat));
		for (int i = 0; i < SM_RULES_NR; i++)
			if (r[i].lacks)
				fprintf(out, "%s %s: %s (the kernel lacks %s)",
					n++ ? "," : ";", r[i].name, r[i].way,
					r[i].lacks);
		fprintf(out, "%s\n",
			n ? "" : ", every rule as on current kernels");
	}
	fprintf(out, "counters:\n");
#define SM_HUMAN(name, ...) \
	fprintf(out, "  %-20s %llu\n", #name, (unsigned long long)st->c.name);
	SM_COUNTERS(SM_HUMAN)
#undef SM_HUMAN
	if (st->n_short) {
		fprintf(out,
			"short-connection ports (short_conn_msgs; while short "
			"ones keep closing, new connections are not "
			"accelerated, 1 in %d aside):\n",
			SM_SHORT_PROBE);
		for (int i = 0; i < st->n_short && i < SM_STATUS_SHORT; i++)
			fprintf(out,
				"  port %u: %u of the last %u closed were short"
				"%s\n",
				st->short_ports[i].port,
				st->short_ports[i].short_conns,
				st->short_ports[i].closed,
				st->short_skipping[i]
					? ", skipping"
					: "; idle: accelerated again");
		if (st->n_short > SM_STATUS_SHORT)
			fprintf(out, "  (and %d more)\n",
				st->n_short - SM_STATUS_SHORT);
	}
	if (st->n_strict) {
		fprintf(out,
			"strict ports (a blocking end or a splice() reader "
			"was seen: %s):\n",
			st->ctl_flags & SM_CTL_FAST
				? "compat = strict would keep new connections "
				  "on TCP"
				: "new connections stay on TCP");
		for (int i = 0; i < st->n_strict && i < SM_STATUS_SHORT; i++) {
			const struct sm_portstat *ps = &st->strict_ports[i];

			fprintf(out, "  port %u:%s%s\n", ps->port,
				ps->strict & SM_PS_BLOCKING ? " blocking" : "",
				ps->strict & SM_PS_SPLICE ? " splice" : "");
		}
		if (st->n_strict > SM_STATUS_SHORT)
			fprintf(out, "  (and %d more)\n",
				st->n_strict - SM_STATUS_SHORT);
	}
	if (!st->n)
		return;
	fprintf(out, "per cgroup:\n  %-30s", "cgroup");
	for (int k = 0; k < SM_CG_NR; k++)
		fprintf(out, " %16s", cg_names[k]);
	fputc('\n', out);
	for (int i = 0; i < st->n; i++) {
		fprintf(out, "  %-30s", st->cg[i].path);
		for (int k = 0; k < SM_CG_NR; k++)
			fprintf(out, " %16llu",
				(unsigned long long)st->cg[i].c.v[k]);
		fputc('\n', out);
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void prom_label(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', out);
		if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static int cg_index(const char *name)
{
	for (int k = 0; k < SM_CG_NR; k++)
		if (!strcmp(cg_names[k], name))
			return k;
	return -1;
}

static void prom_counter(const struct sm_status *st, FILE *out,
			 const char *name, const char *help, __u64 v)
{
	int k = cg_index(name);

	fprintf(out,
		"# HELP sockmesh_%s_total %s (unlabelled: the node%s)\n"
		"# TYPE sockmesh_%s_total counter\n"
		"sockmesh_%s_total %" PRIu64 "\n",
		name, help, k >= 0 ? "; cgroup: per accelerated cgroup" : "",
		name, name, (uint64_t)v);
	for (int i = 0; k >= 0 && i < st->n; i++) {
		fprintf(out, "sockmesh_%s_total{cgroup=", name);
		prom_label(out, st->cg[i].path);
		fprintf(out, "} %" PRIu64 "\n", (uint64_t)st->cg[i].c.v[k]);
	}
}

void sm_status_prometheus(const struct sm_status *st,
			  const struct sm_status_daemon *d, FILE *out)
{
	struct sm_rule r[SM_RULES_NR];

#define SM_PROM(name, help) prom_counter(st, out, #name, help, st->c.name);
	SM_COUNTERS(SM_PROM)
#undef SM_PROM
	fprintf(out,
		"# HELP sockmesh_sockets sockets in the socket map now\n"
		"# TYPE sockmesh_sockets gauge\n"
		"sockmesh_sockets %u\n"
		"# HELP sockmesh_max_sockets capacity of the socket map\n"
		"# TYPE sockmesh_max_sockets gauge\n"
		"sockmesh_max_sockets %u\n"
		"# HELP sockmesh_attached_cgroups cgroups the datapath is attached to\n"
		"# TYPE sockmesh_attached_cgroups gauge\n"
		"sockmesh_attached_cgroups %d\n"
		"# HELP sockmesh_build_info version of sockmeshd\n"
		"# TYPE sockmesh_build_info gauge\n"
		"sockmesh_build_info{version=\"%s\"} 1\n"
		"# HELP sockmesh_reloads_total config reloads applied\n"
		"# TYPE sockmesh_reloads_total counter\n"
		"sockmesh_reloads_total %llu\n"
		"# HELP sockmesh_reload_failures_total config reloads refused (running config kept)\n"
		"# TYPE sockmesh_reload_failures_total counter\n"
		"sockmesh_reload_failures_total %llu\n"
		"# HELP sockmesh_short_ports server ports whose connections are not accelerated now (short_conn_msgs)\n"
		"# TYPE sockmesh_short_ports gauge\n"
		"sockmesh_short_ports %d\n",
		st->sockets, st->max_sockets, st->n, SM_VERSION,
		d ? d->reloads : 0, d ? d->reload_failures : 0, st->n_short);
	fprintf(out,
		"# HELP sockmesh_daemon_clients_dropped_total clients of the control socket or the metrics endpoint closed before their exchange ended: evicted (their pool full, the oldest goes) or deadline (their 5 s were up)\n"
		"# TYPE sockmesh_daemon_clients_dropped_total counter\n");
	{
		const struct {
			const char *ep, *why;
			unsigned long long v;
		} rows[] = {
			{"control", "evicted", d ? d->ctl_evicted : 0},
			{"control", "deadline", d ? d->ctl_deadline : 0},
			{"metrics", "evicted", d ? d->metrics_evicted : 0},
			{"metrics", "deadline", d ? d->metrics_deadline : 0},
		};

		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
			fprintf(out,
				"sockmesh_daemon_clients_dropped_total{endpoint=\"%s\",reason=\"%s\"} %llu\n",
				rows[i].ep, rows[i].why, rows[i].v);
	}
	fprintf(out,
		"# HELP sockmesh_mesh_connects_total [mesh] mode = connect: "
		"connect()s sent to the pod's sidecar (outbound), to a meshed "
		"pod's inbound port (inbound), left alone in a pod without a "
		"sidecar (unmeshed)\n"
		"# TYPE sockmesh_mesh_connects_total counter\n"
		"sockmesh_mesh_connects_total{to=\"outbound\"} %" PRIu64 "\n"
		"sockmesh_mesh_connects_total{to=\"inbound\"} %" PRIu64 "\n"
		"sockmesh_mesh_connects_total{to=\"unmeshed\"} %" PRIu64 "\n"
		"# HELP sockmesh_mesh_original_dst_total SO_ORIGINAL_DST "
		"answered for a redirected connection\n"
		"# TYPE sockmesh_mesh_original_dst_total counter\n"
		"sockmesh_mesh_original_dst_total %" PRIu64 "\n"
		"# HELP sockmesh_mesh_pods meshed pod addresses learned at "
		"their readiness port\n"
		"# TYPE sockmesh_mesh_pods gauge\n"
		"sockmesh_mesh_pods %u\n",
		(uint64_t)st->mc.outbound, (uint64_t)st->mc.inbound,
		(uint64_t)st->mc.unmeshed, (uint64_t)st->mc.answered,
		st->mesh_pods);
	if (!st->feat)
		return;
	sm_datapath_rules(st->feat, r);
	fprintf(out,
		"# HELP sockmesh_datapath_info the kernel's datapath variant: "
		"its SK_MSG program and how each kernel-dependent rule works\n"
		"# TYPE sockmesh_datapath_info gauge\n"
		"sockmesh_datapath_info{program=\"%s\",compat=\"%s\"",
		sm_probe_skmsg(st->feat), compat_name(st));
	for (int i = 0; i < SM_RULES_NR; i++)
		fprintf(out, ",%s=\"%s\"", r[i].name, r[i].way);
	fprintf(out, "} 1\n");
}

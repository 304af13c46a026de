// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd - load or adopt the datapath, attach it to the configured
 * cgroups, fill the policy maps, then serve signals, the control socket
 * and the metrics endpoint (loop.c) until told to stop. Never in the data
 * path: with on_exit = keep, acceleration outlives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <liburing.h>

#include "rundir.h"
#include "config.h"
#include "pins.h"
#include "daemon.h"
#include "loop.h"
#include "notify.h"
#include "probe.h"
#include "status.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: sockmeshd [-c FILE] [--check]\n"
		"\n"
		"Load the sockmesh datapath, attach it to the configured cgroups and\n"
		"stay in the foreground, logging to stderr.\n"
		"\n"
		"  -c, --config FILE  config file (default %s,\n"
		"                     built-in defaults if that file does not exist)\n"
		"      --check        validate the config, print it and exit\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n"
		"\n"
		"Signals: SIGHUP reloads the config (all or nothing), SIGTERM/SIGINT\n"
		"stop (on_exit decides keep or detach). `sockmesh reload` and\n"
		"`sockmesh unload` talk to it over %s in run_dir.\n",
		SM_CONF_DEFAULT, SM_CTL_SOCK);
}

/* libbpf's own messages: its warnings always, its debug output on debug. */
/*
 * SOCKMESH_DATAPATH_WITHOUT=netns_cookie,kern_ctx,cg_btf,recv_trace: the variant
 * of a kernel that lacks those features (sockmeshd(8)), so that every
 * variant can be tested on one kernel. 0, or -EINVAL on an unknown name.
 */
static int feat_without(__u32 *feat, const char *list)
{
	static const struct {
		const char *name;
		__u32 feat;
	} names[] = {
		{"netns_cookie", SM_FEAT_NETNS_COOKIE},
		{"kern_ctx", SM_FEAT_KERN_CTX},
		{"cg_btf", SM_FEAT_CG_BTF},
		{"recv_trace", SM_FEAT_RECV_TRACE},
	};
	const char *p = list;

	while (p && *p) {
		size_t n = strcspn(p, ", "), i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (n == strlen(names[i].name) &&
			    !strncmp(p, names[i].name, n))
				break;
		if (n && i == sizeof(names) / sizeof(names[0]))
			return -EINVAL;
		if (n)
			*feat &= ~names[i].feat;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

/*
 * Say which datapath this kernel gets, and each rule that works otherwise
 * than on a kernel that has every feature (probe.h, SM_DATAPATH_RULES).
 */
static void log_datapath(__u32 feat)
{
	struct sm_rule r[SM_RULES_NR];
	int n = 0;

	sm_datapath_rules(feat, r);
	for (int i = 0; i < SM_RULES_NR; i++)
		if (r[i].lacks) {
			pr_warn("this kernel lacks %s: %s is \"%s\", see "
				"docs/datapath.md, \"Kernels\"",
				r[i].lacks, r[i].name, r[i].way);
			n++;
		}
	pr_info("datapath: %s, %s", sm_probe_skmsg(feat),
		n ? "with the rules above for this kernel"
		  : "every rule as on current kernels");
}

/* --- main --------------------------------------------------------------- */

/* A blocking write, bounded by the socket's SO_SNDTIMEO. */
static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

static int config_file_check(const char *path)
{
	char err[SM_ERR_LEN];
	struct stat st;

	if (!path && stat(SM_CONF_DEFAULT, &st))
		return 0; /* built-in defaults */
	if (sm_config_file_safe(path ? path : SM_CONF_DEFAULT, err,
				sizeof(err))) {
		fprintf(stderr, "sockmeshd: %s\n", err);
		return -EPERM;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{},
	};
	static struct sm_daemon d;
	static struct sm_config cfg;
	struct sm_loop *l;
	const char *path = NULL;
	char err[SM_ERR_LEN], reply[PATH_MAX + 64];
	__u32 feat;
	int check = 0, opt, ret, sfd, unload_fd, unload;
	sigset_t set;

	while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sockmeshd %s\n", SM_VERSION);
			return 0;
		default:
			usage(stderr);
			return SM_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sockmeshd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return SM_EXIT_USAGE;
	}

	/* parse */
	if (config_file_check(path))
		return SM_EXIT_USAGE;
	if (sm_config_load_default(&cfg, path, err, sizeof(err))) {
		fprintf(stderr, "sockmeshd: %s\n", err);
		return SM_EXIT_USAGE;
	}
	if (check) {
		printf("# %s: OK\n", cfg.path);
		sm_config_print(&cfg, stdout);
		return 0;
	}
	sm_log_max = cfg.log_level;
	libbpf_set_print(sm_libbpf_print);
	pr_info("sockmeshd %s starting with %s", SM_VERSION, cfg.path);
	ret = sm_probe_kernel(&feat, err, sizeof(err));
	if (ret == -EPERM) {
		pr_err("%s", err);
		return SM_EXIT_FAILURE;
	}
	if (ret) {
		pr_err("this kernel lacks what sockmesh needs: %s", err);
		return SM_EXIT_FAILURE;
	}
	ret = feat_without(&feat, getenv("SOCKMESH_DATAPATH_WITHOUT"));
	if (ret) {
		pr_err("SOCKMESH_DATAPATH_WITHOUT: unknown feature '%s' "
		       "(known: netns_cookie, kern_ctx, cg_btf, recv_trace)",
		       getenv("SOCKMESH_DATAPATH_WITHOUT"));
		return SM_EXIT_USAGE;
	}
	log_datapath(feat);

	/* signals are read from a signalfd by the loop */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		pr_err("signalfd: %s", strerror(errno));
		return SM_EXIT_FAILURE;
	}
	daemon_init(&d);
	d.feat = feat;
	l = sm_loop_new(&d, sfd);
	if (!l) {
		close(sfd);
		return SM_EXIT_FAILURE;
	}

	/* apply */
	ret = daemon_start(&d, &cfg);
	if (ret)
		goto out;
	pr_info("ready: pid %d, pid file %s, control socket %s", getpid(),
		d.pid_file, d.ctl_path);
	sm_notify("READY=1\nMAINPID=%d", getpid());
	daemon_notify_status(&d);

	/* serve */
	ret = sm_loop_run(l);
	if (ret)
		pr_err("event loop: %s", strerror(-ret));
	unload_fd = sm_loop_take_unload_fd(l);
	unload = sm_loop_unloading(l);
	sm_loop_free(l); /* every client but that one closed */
	l = NULL;
	sm_notify("STOPPING=1");
	daemon_stop(&d, unload || d.cfg.on_exit == SM_ON_EXIT_DETACH);
	if (unload_fd >= 0) {
		snprintf(reply, sizeof(reply),
			 "%sdetached and removed the pins in %s\n", SM_CTL_OK,
			 d.pins.dir);
		send_all(unload_fd, reply, strlen(reply));
		close(unload_fd);
	}
out:
	sm_loop_free(l);
	daemon_close(&d);
	close(sfd);
	return ret ? SM_EXIT_FAILURE : SM_EXIT_OK;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd - load or adopt the datapath, attach it to the configured
 * cgroups, fill the policy maps, and stay in the foreground until signalled.
 * Never in the data path: with on_exit = keep, acceleration outlives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "config.h"
#include "core.h"

#define EXIT_USAGE 2

struct daemon {
	struct sm_config cfg;
	struct sm_core core;
	char cg_mnt[PATH_MAX];
	int cg_fds[SM_CGROUPS_MAX];
	__u64 cg_ids[SM_CGROUPS_MAX];
	char pid_file[PATH_MAX];
};

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
		"Signals: SIGTERM/SIGINT stop (on_exit decides keep or detach).\n",
		SM_CONF_DEFAULT);
}

/* libbpf's own messages: its warnings always, its debug output on debug. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG && sm_log_max < SM_LOG_DEBUG)
		return 0;
	if (level == LIBBPF_INFO && sm_log_max < SM_LOG_INFO)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int write_pid_file(struct daemon *d)
{
	char tmp[PATH_MAX + 16];
	FILE *f;

	if ((size_t)snprintf(d->pid_file, sizeof(d->pid_file),
			     "%s/sockmeshd.pid",
			     d->cfg.run_dir) >= sizeof(d->pid_file))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->pid_file);
	if (mkdir(d->cfg.run_dir, 0755) && errno != EEXIST)
		return -errno;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", getpid());
	if (fclose(f) || rename(tmp, d->pid_file))
		return -errno;
	return 0;
}

/* Open (creating if missing) every configured cgroup before touching BPF. */
static int open_cgroups(struct daemon *d)
{
	int ret;

	ret = sm_cgroup2_mount(d->cg_mnt, sizeof(d->cg_mnt));
	if (ret) {
		pr_err("no cgroup2 hierarchy is mounted: %s", strerror(-ret));
		return ret;
	}
	for (int i = 0; i < d->cfg.n_cgroups; i++) {
		ret = sm_cgroup_open(d->cg_mnt, d->cfg.cgroups[i], 1);
		if (ret < 0) {
			pr_err("cgroup %s/%s: %s", d->cg_mnt, d->cfg.cgroups[i],
			       strerror(-ret));
			return ret;
		}
		d->cg_fds[i] = ret;
		ret = sm_cgroup_id(d->cg_fds[i], &d->cg_ids[i]);
		if (ret) {
			pr_err("cgroup %s: cannot read its id: %s",
			       d->cfg.cgroups[i], strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int load_or_adopt(struct daemon *d, int *loaded)
{
	__u32 max;
	int ret;

	*loaded = 0;
	ret = sm_core_open(&d->core);
	if (!ret) {
		if (!sm_core_max_sockets(&d->core, &max) &&
		    max != d->cfg.max_sockets)
			pr_warn("max_sockets = %u, but the pinned map holds %u: "
				"keeping %u (run `sockmesh unload` to resize)",
				d->cfg.max_sockets, max, max);
		pr_info("adopted the datapath pinned in %s", d->core.dir);
		return 0;
	}
	if (ret != -ENOENT) {
		pr_err("cannot open the pins in %s: %s", d->core.dir,
		       strerror(-ret));
		return ret;
	}
	ret = sm_core_load(&d->core, d->cfg.max_sockets);
	if (ret == -EEXIST) {
		pr_err("%s holds pins that are incomplete or of another version: "
		       "run `sockmesh unload -c %s` first",
		       d->core.dir, d->cfg.path);
		return ret;
	}
	if (ret) {
		pr_err("cannot load the BPF programs: %s", strerror(-ret));
		return ret;
	}
	*loaded = 1;
	pr_info("loaded the datapath and pinned it in %s (max_sockets %u)",
		d->core.dir, d->cfg.max_sockets);
	return 0;
}

static int configured(const struct daemon *d, __u64 id)
{
	for (int i = 0; i < d->cfg.n_cgroups; i++)
		if (d->cg_ids[i] == id)
			return 1;
	return 0;
}

static int attach_all(struct daemon *d)
{
	__u64 created[SM_CGROUPS_MAX], ids[SM_LINKS_MAX];
	int n_created = 0, n, ret = 0, is_new;

	for (int i = 0; i < d->cfg.n_cgroups; i++) {
		ret = sm_core_attach(&d->core, d->cg_fds[i], d->cg_ids[i],
				     &is_new);
		if (ret) {
			pr_err("cannot attach to cgroup /%s: %s",
			       d->cfg.cgroups[i], strerror(-ret));
			goto err_undo;
		}
		if (is_new)
			created[n_created++] = d->cg_ids[i];
		pr_info("%s cgroup /%s (id %" PRIu64 ")",
			is_new ? "attached to" : "kept the attachment of",
			d->cfg.cgroups[i], (uint64_t)d->cg_ids[i]);
	}
	/* links of cgroups no longer configured */
	n = sm_core_links(&d->core, ids, SM_LINKS_MAX);
	for (int i = 0; i < n; i++) {
		if (configured(d, ids[i]))
			continue;
		sm_core_detach(&d->core, ids[i]);
		pr_info("detached from cgroup id %" PRIu64
			" (no longer configured)",
			(uint64_t)ids[i]);
	}
	return 0;
err_undo:
	while (n_created--)
		sm_core_detach(&d->core, created[n_created]);
	return ret;
}

static int wait_for_signals(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (sig == SIGHUP) {
			pr_warn("SIGHUP: reload is not supported yet; restart sockmeshd to apply a new config");
			continue;
		}
		pr_info("%s: stopping", strsignal(sig));
		return 0;
	}
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
	static struct daemon d;
	const char *path = NULL;
	char err[SM_ERR_LEN];
	int check = 0, opt, ret, loaded = 0;
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
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sockmeshd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (sm_config_load_default(&d.cfg, path, err, sizeof(err))) {
		fprintf(stderr, "sockmeshd: %s\n", err);
		return EXIT_USAGE;
	}
	if (check) {
		printf("# %s: OK\n", d.cfg.path);
		sm_config_print(&d.cfg, stdout);
		return 0;
	}
	sm_log_max = d.cfg.log_level;
	libbpf_set_print(libbpf_print);
	for (int i = 0; i < SM_CGROUPS_MAX; i++)
		d.cg_fds[i] = -1;
	sm_core_init(&d.core, d.cfg.pin_dir);

	/* signals are taken synchronously in wait_for_signals() */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	pr_info("sockmeshd %s starting with %s", SM_VERSION, d.cfg.path);
	ret = sm_core_prepare_dir(&d.core);
	if (ret) {
		pr_err(ret == -EXDEV ? "pin_dir %s is not on a bpf filesystem"
				     : "pin_dir %s: %s",
		       d.cfg.pin_dir, strerror(-ret));
		goto out;
	}
	ret = sm_core_lock(&d.core);
	if (ret) {
		pr_err(ret == -EBUSY
			       ? "another sockmeshd is running on pin_dir %s"
			       : "cannot lock pin_dir %s: %s",
		       d.cfg.pin_dir, strerror(-ret));
		goto out;
	}
	ret = open_cgroups(&d);
	if (ret)
		goto out;
	ret = load_or_adopt(&d, &loaded);
	if (ret)
		goto out;
	ret = sm_core_apply_policy(&d.core, &d.cfg);
	if (ret) {
		pr_err("cannot fill the policy maps: %s", strerror(-ret));
		goto err_unload;
	}
	ret = attach_all(&d);
	if (ret)
		goto err_unload;
	if (d.cfg.metrics[0])
		pr_info("metrics = %s: the Prometheus endpoint is not served by this version",
			d.cfg.metrics);
	ret = write_pid_file(&d);
	if (ret) {
		pr_err("cannot write the pid file in %s: %s", d.cfg.run_dir,
		       strerror(-ret));
		goto err_unload;
	}
	pr_info("ready: pid %d, pid file %s", getpid(), d.pid_file);

	ret = wait_for_signals();
	unlink(d.pid_file);
	if (d.cfg.on_exit == SM_ON_EXIT_DETACH) {
		sm_core_unload(&d.core);
		pr_info("on_exit = detach: detached and removed the pins");
	} else {
		pr_info("on_exit = keep: the datapath stays attached and pinned in %s",
			d.core.dir);
	}
	goto out;

err_unload:
	if (loaded)
		sm_core_unload(&d.core);
out:
	for (int i = 0; i < SM_CGROUPS_MAX; i++)
		if (d.cg_fds[i] >= 0)
			close(d.cg_fds[i]);
	sm_core_close(&d.core);
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}

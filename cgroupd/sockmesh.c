// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh - the command-line tool: run a command accelerated, show what is
 * attached and the counters, unload. Reads the pins: no daemon needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "config.h"
#include "core.h"

#define EXIT_USAGE	2
#define EXIT_NOT_LOADED 3

static int json;

/* Errors go to stderr, or as {"error": ...} to stdout under --json. */
static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!json) {
		fprintf(stderr, "sockmesh: %s\n", msg);
		return;
	}
	fputs("{\"error\": \"", stdout);
	for (const char *p = msg; *p; p++) {
		if (*p == '"' || *p == '\\')
			putchar('\\');
		putchar(*p);
	}
	fputs("\"}\n", stdout);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: sockmesh COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  run [-c FILE] [--cgroup NAME] -- CMD [ARGS...]\n"
		"                 run CMD in an accelerated cgroup (the first configured\n"
		"                 one unless named)\n"
		"  status [-c FILE] [--json]\n"
		"                 what is attached where, sockets in the map, counters\n"
		"  unload [-c FILE]\n"
		"                 detach and remove every pin; live connections go on\n"
		"                 over normal TCP\n"
		"  help           this help\n"
		"  version        print the version\n"
		"\n"
		"-c FILE is the config sockmeshd runs with (default %s,\n"
		"built-in defaults if that file does not exist).\n"
		"Exit status: 0 ok, 1 failure, 2 usage or config error, 3 not loaded.\n",
		SM_CONF_DEFAULT);
}

struct common {
	struct sm_cli_args args;
	struct sm_config cfg;
	struct sm_core core;
};

static int open_pins(struct common *c)
{
	int ret = sm_core_open(&c->core);

	if (ret == -ENOENT) {
		fail("sockmesh is not loaded: no pins in %s (start sockmeshd: make run)",
		     c->core.dir);
		return EXIT_NOT_LOADED;
	}
	if (ret) {
		fail("cannot open the pins in %s: %s", c->core.dir,
		     strerror(-ret));
		return EXIT_FAILURE;
	}
	return 0;
}

static int cmd_run(struct common *c, int argc, char **argv)
{
	const char *cg = NULL, *want = c->args.cgroup;
	char mnt[PATH_MAX];
	int first = c->args.first, cg_fd, ret;
	__u64 id, ids[SM_LINKS_MAX];
	int n, attached = 0;

	if (first >= argc) {
		fprintf(stderr,
			"sockmesh run: no command given: sockmesh run [-c FILE] [--cgroup NAME] -- CMD [ARGS...]\n");
		return EXIT_USAGE;
	}
	for (int i = 0; i < c->cfg.n_cgroups; i++) {
		if (!want || !strcmp(want, c->cfg.cgroups[i]) ||
		    (want[0] == '/' && !strcmp(want + 1, c->cfg.cgroups[i]))) {
			cg = c->cfg.cgroups[i];
			break;
		}
	}
	if (!cg) {
		fail("cgroup '%s' is not configured in %s (cgroups = %s)", want,
		     c->cfg.path, c->cfg.text[5]);
		return EXIT_USAGE;
	}
	ret = open_pins(c);
	if (ret)
		return ret;
	ret = sm_cgroup2_mount(mnt, sizeof(mnt));
	if (ret) {
		fail("no cgroup2 hierarchy is mounted");
		return EXIT_FAILURE;
	}
	cg_fd = sm_cgroup_open(mnt, cg, 0);
	if (cg_fd < 0 || sm_cgroup_id(cg_fd, &id)) {
		fail("cgroup %s/%s does not exist: start sockmeshd first (make run)",
		     mnt, cg);
		return EXIT_NOT_LOADED;
	}
	n = sm_core_links(&c->core, ids, SM_LINKS_MAX);
	for (int i = 0; i < n; i++)
		attached |= ids[i] == id;
	if (!attached) {
		fail("sockmesh is not attached to cgroup /%s: start sockmeshd first (make run)",
		     cg);
		return EXIT_NOT_LOADED;
	}
	ret = sm_cgroup_join(cg_fd, 0);
	if (ret) {
		fail("cannot move into cgroup /%s: %s", cg, strerror(-ret));
		return EXIT_FAILURE;
	}
	close(cg_fd);
	sm_core_close(&c->core);
	execvp(argv[first], &argv[first]);
	fail("cannot run %s: %s", argv[first], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

static int daemon_pid(const struct common *c)
{
	char path[PATH_MAX + 32];
	int pid = 0;
	FILE *f;

	if (!sm_core_locked(&c->core))
		return 0;
	snprintf(path, sizeof(path), "%s/sockmeshd.pid", c->cfg.run_dir);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid ? pid : -1; /* -1: running, pid unknown */
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static int cmd_status(struct common *c, int argc)
{
	struct sm_counters ctr;
	char mnt[PATH_MAX] = "", paths[SM_LINKS_MAX][PATH_MAX];
	__u64 ids[SM_LINKS_MAX];
	__u32 sockets = 0, max = 0;
	int n, ret, pid;

	if (c->args.first < argc) {
		fprintf(stderr, "sockmesh status: unexpected argument\n");
		return EXIT_USAGE;
	}
	ret = open_pins(c);
	if (ret)
		return ret;
	n = sm_core_links(&c->core, ids, SM_LINKS_MAX);
	ret = n < 0 ? n : sm_core_counters(&c->core, &ctr);
	if (!ret)
		ret = sm_core_count_sockets(&c->core, &sockets);
	if (!ret)
		ret = sm_core_max_sockets(&c->core, &max);
	if (ret) {
		fail("cannot read %s: %s", c->core.dir, strerror(-ret));
		return EXIT_FAILURE;
	}
	sm_cgroup2_mount(mnt, sizeof(mnt));
	for (int i = 0; i < n; i++)
		if (!mnt[0] || sm_cgroup_path(mnt, ids[i], paths[i], PATH_MAX))
			strcpy(paths[i], "(removed)");
	pid = daemon_pid(c);

	if (json) {
		printf("{\"version\": \"%s\", \"pin_dir\": ", SM_VERSION);
		json_str(c->cfg.pin_dir);
		printf(", \"daemon_pid\": %d, \"attached\": [",
		       pid > 0 ? pid : 0);
		for (int i = 0; i < n; i++) {
			printf("%s{\"cgroup\": ", i ? ", " : "");
			json_str(paths[i]);
			printf(", \"cgroup_id\": %" PRIu64 "}",
			       (uint64_t)ids[i]);
		}
		printf("], \"sockets\": %u, \"max_sockets\": %u, \"counters\": {",
		       sockets, max);
		const char *sep = "";
#define SM_JSON(name)                                                       \
	printf("%s\"" #name "\": %llu", sep, (unsigned long long)ctr.name); \
	sep = ", ";
		SM_COUNTERS(SM_JSON)
#undef SM_JSON
		printf("}}\n");
		return 0;
	}
	printf("sockmesh %s\n", SM_VERSION);
	printf("pin_dir:  %s\n", c->core.dir);
	if (pid > 0)
		printf("daemon:   running (pid %d)\n", pid);
	else
		printf("daemon:   %s\n",
		       pid ? "running" : "not running (pins stay in effect)");
	printf("attached:%s\n", n ? "" : " nowhere");
	for (int i = 0; i < n; i++)
		printf("  %-30s cgroup id %" PRIu64 "\n", paths[i],
		       (uint64_t)ids[i]);
	printf("sockets:  %u of %u\n", sockets, max);
	printf("counters:\n");
#define SM_HUMAN(name) \
	printf("  %-20s %llu\n", #name, (unsigned long long)ctr.name);
	SM_COUNTERS(SM_HUMAN)
#undef SM_HUMAN
	return 0;
}

static int cmd_unload(struct common *c, int argc)
{
	int ret, pid;

	if (c->args.first < argc) {
		fprintf(stderr, "sockmesh unload: unexpected argument\n");
		return EXIT_USAGE;
	}
	pid = daemon_pid(c);
	if (pid) {
		if (pid > 0)
			fail("sockmeshd (pid %d) is running on %s: stop it first (kill -TERM %d)",
			     pid, c->cfg.pin_dir, pid);
		else
			fail("a sockmeshd is running on %s: stop it first",
			     c->cfg.pin_dir);
		return EXIT_FAILURE;
	}
	ret = open_pins(c);
	if (ret == EXIT_NOT_LOADED) {
		printf("sockmesh: nothing to unload in %s\n", c->core.dir);
		return 0;
	}
	if (ret)
		return ret;
	ret = sm_core_unload(&c->core);
	if (ret) {
		fail("cannot remove every pin in %s: %s", c->core.dir,
		     strerror(-ret));
		return EXIT_FAILURE;
	}
	printf("sockmesh: detached and removed the pins in %s\n", c->core.dir);
	return 0;
}

int main(int argc, char **argv)
{
	static struct common c;
	char err[SM_ERR_LEN];

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (sm_cli_parse(argc, argv, &c.args, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	switch (c.args.cmd) {
	case SM_CLI_HELP:
		usage(stdout);
		return 0;
	case SM_CLI_VERSION:
		printf("sockmesh %s\n", SM_VERSION);
		return 0;
	default:
		break;
	}
	json = c.args.json;
	if (sm_config_load_default(&c.cfg, c.args.config, err, sizeof(err))) {
		fail("%s", err);
		return EXIT_USAGE;
	}
	sm_core_init(&c.core, c.cfg.pin_dir);
	switch (c.args.cmd) {
	case SM_CLI_RUN:
		return cmd_run(&c, argc, argv);
	case SM_CLI_STATUS:
		return cmd_status(&c, argc);
	default:
		return cmd_unload(&c, argc);
	}
}

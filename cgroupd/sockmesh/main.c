// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh - the command-line tool: run a command accelerated, show what is
 * attached and the counters, watch rates, reload or unload. Reads the pins
 * itself; reload and unload ask a running sockmeshd over its control socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "rundir.h"
#include "config.h"
#include "pins.h"
#include "json.h"
#include "status.h"

static int json;

/* Errors go to stderr, or as {"error": ...} to stdout under --json. */
static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	struct sm_json j;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!json) {
		fprintf(stderr, "sockmesh: %s\n", msg);
		return;
	}
	sm_json_init(&j, stdout);
	sm_json_begin_object(&j);
	sm_json_kstring(&j, "error", msg);
	sm_json_end_object(&j);
}

struct common {
	struct sm_cli_args args;
	struct sm_config cfg;
	struct sm_pins pins;
	char cfg_err[SM_ERR_LEN]; /* the config did not load: why */
};

typedef int (*cmd_fn)(struct common *c, int argc, char **argv);

static void usage(FILE *out);

static int cmd_help(struct common *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

static int cmd_version(struct common *c, int argc, char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	printf("sockmesh %s\n", SM_VERSION);
	return 0;
}

static int open_pins(struct common *c)
{
	int ret = sm_pins_open(&c->pins);

	if (ret == -ENOENT) {
		fail("sockmesh is not loaded: no pins in %s (start sockmeshd: make run)",
		     c->pins.dir);
		return SM_EXIT_NOT_LOADED;
	}
	if (ret) {
		fail("cannot open the pins in %s: %s", c->pins.dir,
		     strerror(-ret));
		return SM_EXIT_FAILURE;
	}
	return 0;
}

/*
 * @what got no answer from the control socket (@err): no daemon runs
 * (SM_EXIT_NOT_LOADED), or one runs and did not answer (SM_EXIT_BUSY).
 */
static int no_answer(struct common *c, const char *what, int err)
{
	pid_t pid = sm_daemon_pid(&c->pins, c->cfg.run_dir);
	char who[32] = "pid unknown";

	if (!pid) {
		fail("no sockmeshd runs with run_dir %s (%s/%s: %s): start "
		     "it (make run, or systemctl start sockmeshd)",
		     c->cfg.run_dir, c->cfg.run_dir, SM_CTL_SOCK,
		     strerror(-err));
		return SM_EXIT_NOT_LOADED;
	}
	if (pid > 0)
		snprintf(who, sizeof(who), "pid %d", (int)pid);
	fail("sockmeshd (%s) runs but did not answer %s on %s/%s: %s: it is "
	     "stopped or stuck; try again",
	     who, what, c->cfg.run_dir, SM_CTL_SOCK, strerror(-err));
	return SM_EXIT_BUSY;
}

static int no_operands(struct common *c, int argc, char **argv)
{
	if (c->args.first < argc) {
		fprintf(stderr, "sockmesh %s: unexpected argument '%s'\n",
			sm_cli_name(c->args.cmd), argv[c->args.first]);
		return SM_EXIT_USAGE;
	}
	return 0;
}

/*
 * Not root: ask the daemon to move this process into @cg (it checks the
 * peer's credentials, loop.c). 0, or the exit status with the message.
 */
static int run_ask_daemon(struct common *c, const char *cg)
{
	char req[SM_CGROUP_LEN + 8], out[1024];
	int ret;

	snprintf(req, sizeof(req), "run %s", cg);
	ret = sm_ctl_request(c->cfg.run_dir, req, out, sizeof(out));
	if (!ret)
		return 0;
	if (ret == -EACCES || ret == -EPERM) {
		fail("uid %d may not use sockmeshd's control socket %s/%s: "
		     "only root and the members of run_group (%s) may; ask "
		     "root to add you, or run it with sudo",
		     (int)getuid(), c->cfg.run_dir, SM_CTL_SOCK,
		     c->cfg.run_group[0] ? c->cfg.run_group
					 : "not set in the config");
		return SM_EXIT_FAILURE;
	}
	if (ret == -EREMOTEIO) {
		out[strcspn(out, "\n")] = '\0';
		fail("sockmeshd refused: %s", out);
		return SM_EXIT_REFUSED;
	}
	return no_answer(c, "run", ret);
}

/* Under sudo, become the user who ran it (SUDO_UID, SUDO_GID). */
static int run_drop_to_sudo_user(void)
{
	const char *u = getenv("SUDO_UID"), *g = getenv("SUDO_GID");
	struct passwd *pw;
	char *end;
	long uid, gid;

	if (!u || !g)
		return 0;
	uid = strtol(u, &end, 10);
	if (*end || end == u || uid < 0)
		return 0;
	gid = strtol(g, &end, 10);
	if (*end || end == g || gid < 0 || uid == 0)
		return 0;
	pw = getpwuid(uid);
	if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) ||
	    setgid(gid) || setuid(uid)) {
		fail("cannot become uid %ld (SUDO_UID) to run the command: %s "
		     "(--as-root runs it as root)",
		     uid, strerror(errno));
		return SM_EXIT_FAILURE;
	}
	if (pw) {
		setenv("HOME", pw->pw_dir, 1);
		setenv("USER", pw->pw_name, 1);
		setenv("LOGNAME", pw->pw_name, 1);
	}
	return 0;
}

static int cmd_run(struct common *c, int argc, char **argv)
{
	const char *cg = NULL, *want = c->args.cgroup;
	char mnt[PATH_MAX];
	int first = c->args.first, cg_fd, ret;
	__u64 id;

	if (first >= argc) {
		fprintf(stderr,
			"sockmesh run: no command given: sockmesh run [-c FILE] [--cgroup NAME] -- CMD [ARGS...]\n");
		return SM_EXIT_USAGE;
	}
	for (int i = 0; i < c->cfg.n_cgroups; i++) {
		if (!want || !strcmp(want, c->cfg.cgroups[i]) ||
		    (want[0] == '/' && !strcmp(want + 1, c->cfg.cgroups[i]))) {
			cg = c->cfg.cgroups[i];
			break;
		}
	}
	if (!cg) {
		char list[512] = "";

		for (int i = 0; i < c->cfg.n_cgroups; i++)
			snprintf(list + strlen(list),
				 sizeof(list) - strlen(list), "%s%s",
				 i ? ", " : "", c->cfg.cgroups[i]);
		fail("cgroup '%s' is not configured in %s (cgroups = %s)", want,
		     c->cfg.path, list);
		return SM_EXIT_USAGE;
	}
	if (geteuid()) {
		ret = run_ask_daemon(c, cg);
		if (ret)
			return ret;
		goto exec;
	}
	ret = open_pins(c);
	if (ret)
		return ret;
	ret = sm_cgroup2_mount(mnt, sizeof(mnt));
	if (ret) {
		fail("no cgroup2 hierarchy is mounted");
		return SM_EXIT_FAILURE;
	}
	cg_fd = sm_cgroup_open(mnt, cg, 0);
	if (cg_fd < 0 || sm_cgroup_id(cg_fd, &id)) {
		fail("cgroup %s/%s does not exist: start sockmeshd first (make run)",
		     mnt, cg);
		return SM_EXIT_NOT_LOADED;
	}
	if (sm_pins_attached(&c->pins, id) != 1) {
		fail("sockmesh is not attached to cgroup /%s: start sockmeshd first (make run)",
		     cg);
		return SM_EXIT_NOT_LOADED;
	}
	ret = sm_cgroup_join(cg_fd, 0);
	if (ret) {
		fail("cannot move into cgroup /%s: %s", cg, strerror(-ret));
		return SM_EXIT_FAILURE;
	}
	close(cg_fd);
	sm_pins_close(&c->pins);
	if (!c->args.as_root) {
		ret = run_drop_to_sudo_user();
		if (ret)
			return ret;
	}
exec:
	execvp(argv[first], &argv[first]);
	fail("cannot run %s: %s", argv[first], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

static int cmd_status(struct common *c, int argc, char **argv)
{
	static struct sm_status st;
	int ret;

	ret = no_operands(c, argc, argv);
	if (!ret)
		ret = open_pins(c);
	if (ret)
		return ret;
	ret = sm_status_read(&c->pins, c->cfg.run_dir, &st);
	if (ret) {
		fail("cannot read %s: %s", c->pins.dir, strerror(-ret));
		return SM_EXIT_FAILURE;
	}
	sm_status_waiting(&st, &c->cfg);
	if (json)
		sm_status_json(&st, stdout);
	else
		sm_status_human(&st, stdout);
	return 0;
}

/* Wait until no daemon holds the pin_dir lock; 0, or -ETIMEDOUT. */
static int wait_daemon_gone(const struct common *c, int seconds)
{
	for (int i = 0; i < seconds * 20; i++) {
		if (!sm_pins_locked(&c->pins))
			return 0;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static int cmd_unload(struct common *c, int argc, char **argv)
{
	char reply[4096];
	pid_t pid;
	int ret;

	ret = no_operands(c, argc, argv);
	if (ret)
		return ret;
	pid = sm_daemon_pid(&c->pins, c->cfg.run_dir);
	if (pid) {
		ret = sm_ctl_request(c->cfg.run_dir, "unload", reply,
				     sizeof(reply));
		if (ret == -EREMOTEIO) {
			fail("sockmeshd refused to unload: %s", reply);
			return SM_EXIT_REFUSED;
		}
		if (ret)
			return no_answer(c, "unload", ret);
		if (wait_daemon_gone(c, 10)) {
			fail("sockmeshd (pid %d) detached but did not exit within 10 s",
			     pid);
			return SM_EXIT_FAILURE;
		}
		printf("sockmesh: sockmeshd (pid %d) %s", pid, reply);
		return 0;
	}
	ret = open_pins(c);
	if (ret == SM_EXIT_NOT_LOADED) {
		printf("sockmesh: nothing to unload in %s\n", c->pins.dir);
		return 0;
	}
	if (ret)
		return ret;
	ret = sm_pins_unload(&c->pins);
	if (ret) {
		fail("cannot remove every pin in %s: %s", c->pins.dir,
		     strerror(-ret));
		return SM_EXIT_FAILURE;
	}
	printf("sockmesh: detached and removed the pins in %s\n", c->pins.dir);
	return 0;
}

static int cmd_reload(struct common *c, int argc, char **argv)
{
	char reply[4096], req[PATH_MAX + 16], abs[PATH_MAX];
	int ret;

	ret = no_operands(c, argc, argv);
	if (ret)
		return ret;
	/*
	 * Absolute, but symlinks kept: a Kubernetes ConfigMap is a symlink
	 * into a directory the kubelet replaces at each update, so the
	 * daemon must go on reading the link, not today's target.
	 */
	if (c->args.config && c->args.config[0] != '/' &&
	    getcwd(abs, sizeof(abs)))
		snprintf(req, sizeof(req), "reload %s/%s", abs, c->args.config);
	else if (c->args.config)
		snprintf(req, sizeof(req), "reload %s", c->args.config);
	else
		snprintf(req, sizeof(req), "reload");
	ret = sm_ctl_request(c->cfg.run_dir, req, reply, sizeof(reply));
	if (ret == -EREMOTEIO) {
		fail("%s", reply);
		return SM_EXIT_USAGE;
	}
	if (ret) {
		/* no daemon to ask, and the file is bad: say what is wrong */
		if (c->cfg_err[0] && !sm_daemon_pid(&c->pins, c->cfg.run_dir)) {
			fail("%s", c->cfg_err);
			return SM_EXIT_USAGE;
		}
		return no_answer(c, "reload", ret);
	}
	fputs(reply, stdout);
	return 0;
}

static volatile sig_atomic_t top_stop;

static void on_stop(int sig)
{
	(void)sig;
	top_stop = 1;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One frame of `top`: per-cgroup and node rates between two reads. */
static void top_frame(const struct sm_status *a, const struct sm_status *b,
		      double dt, int tty)
{
	static const char *const head[SM_CG_NR] = {
#define SM_TOP_HEAD(name) [SM_CG_##name] = #name "/s",
		SM_CG_COUNTERS(SM_TOP_HEAD)
#undef SM_TOP_HEAD
	};

	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("sockmesh top - %s, every %.1f s, sockets %u of %u\n", b->dir,
	       dt, b->sockets, b->max_sockets);
	printf("%-30s", "CGROUP");
	for (int k = 0; k < SM_CG_NR; k++)
		printf(" %18s", head[k]);
	putchar('\n');
	for (int i = 0; i < b->n; i++) {
		const struct sm_status_cg *was = NULL;

		for (int p = 0; p < a->n && !was; p++)
			if (a->cg[p].id == b->cg[i].id)
				was = &a->cg[p];
		printf("%-30s", b->cg[i].path);
		for (int k = 0; k < SM_CG_NR; k++) {
			__u64 d = b->cg[i].c.v[k] -
				  (was && was->c.v[k] <= b->cg[i].c.v[k]
					   ? was->c.v[k]
					   : b->cg[i].c.v[k]);

			printf(" %18.1f", d / dt);
		}
		putchar('\n');
	}
	printf("%-30s", "(node)");
#define SM_TOP_NODE(name) printf(" %18.1f", (b->c.name - a->c.name) / dt);
	SM_CG_COUNTERS(SM_TOP_NODE)
#undef SM_TOP_NODE
	putchar('\n');
	fflush(stdout);
}

static int cmd_top(struct common *c, int argc, char **argv)
{
	static struct sm_status st[2];
	int ret, cur = 0, tty = isatty(STDOUT_FILENO);
	double t0, t1;

	ret = no_operands(c, argc, argv);
	if (!ret)
		ret = open_pins(c);
	if (ret)
		return ret;
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	ret = sm_status_read(&c->pins, c->cfg.run_dir, &st[cur]);
	t0 = mono();
	for (long frame = 0;
	     !ret && !top_stop && (!c->args.count || frame < c->args.count);
	     frame++) {
		usleep((useconds_t)(c->args.delay * 1e6));
		if (top_stop)
			break;
		ret = sm_status_read(&c->pins, c->cfg.run_dir, &st[!cur]);
		t1 = mono();
		if (ret)
			break;
		top_frame(&st[cur], &st[!cur], t1 - t0, tty);
		cur = !cur;
		t0 = t1;
	}
	if (ret) {
		fail("cannot read %s: %s", c->pins.dir, strerror(-ret));
		return SM_EXIT_FAILURE;
	}
	return 0;
}

/* The command table: {name, handler}, one row per SM_CLI_COMMANDS entry. */
static const struct {
	const char *name;
	cmd_fn fn;
	const char *synopsis, *help;
} commands[SM_CLI_NR] = {
#define SM_CMD_ROW(id, name, opts, synopsis, help) \
	[SM_CLI_##id] = {#name, cmd_##name, synopsis, help},
	SM_CLI_COMMANDS(SM_CMD_ROW)
#undef SM_CMD_ROW
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: sockmesh COMMAND [OPTIONS]\n\nCommands:\n");
	for (int i = 0; i < SM_CLI_NR; i++) {
		if (strlen(commands[i].synopsis) > 14)
			fprintf(out, "  %s\n                 %s\n",
				commands[i].synopsis, commands[i].help);
		else
			fprintf(out, "  %-14s %s\n", commands[i].synopsis,
				commands[i].help);
	}
	fprintf(out,
		"\n"
		"-c FILE is the config sockmeshd runs with (default %s,\n"
		"built-in defaults if that file does not exist).\n"
		"Exit status: 0 ok, 1 failure, 2 usage or config error, 3 not loaded,\n"
		"4 daemon busy, 5 refused by the daemon.\n",
		SM_CONF_DEFAULT);
}

/*
 * reload: a broken FILE is the daemon's to report (with file:line), so the
 * control socket is found from the run_dir line alone when FILE does not
 * load.
 */
static int config_for_reload(struct common *c)
{
	char line[PATH_MAX + 64], *p, *v, *end;
	FILE *f;

	sm_config_defaults(&c->cfg);
	f = c->args.config ? fopen(c->args.config, "r") : NULL;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " \t");
		if (strncmp(p, "run_dir", 7))
			continue;
		p += 7 + strspn(p + 7, " \t");
		if (*p != '=')
			continue;
		v = p + 1 + strspn(p + 1, " \t");
		end = v + strcspn(v, ";#\r\n");
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		snprintf(c->cfg.run_dir, sizeof(c->cfg.run_dir), "%s", v);
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	static struct common c;
	char err[SM_ERR_LEN];

	if (argc < 2) {
		usage(stderr);
		return SM_EXIT_USAGE;
	}
	if (sm_cli_parse(argc, argv, &c.args, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return SM_EXIT_USAGE;
	}
	json = c.args.json;
	if (sm_cli_options(c.args.cmd) & SM_OPT_CONFIG) {
		if (sm_config_load_default(&c.cfg, c.args.config, c.cfg_err,
					   sizeof(c.cfg_err))) {
			if (c.args.cmd != SM_CLI_RELOAD) {
				fail("%s", c.cfg_err);
				return SM_EXIT_USAGE;
			}
			config_for_reload(&c);
		}
		sm_pins_init(&c.pins, c.cfg.pin_dir);
	}
	return commands[c.args.cmd].fn(&c, argc, argv);
}

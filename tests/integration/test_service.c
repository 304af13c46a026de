// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The node service: reload (valid, invalid, missing, 200 in a row, cgroups
 * added and removed under live traffic), per-cgroup counters, the
 * Prometheus endpoint against status, sd_notify, the config file's
 * permissions, `sockmesh top`, unload with the daemon running.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"

/* A config for the test's pin_dir and run_dir with cgroups @cgroups (a
 * comma list relative to the mount), written to @path. */
static int write_conf(struct env *e, const char *path, const char *cgroups,
		      const char *daemon_extra, const char *extra)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f,
		"[daemon]\npin_dir = %s\nrun_dir = %s\n%s\n"
		"[accelerate]\ncgroups = %s\n%s\n%s",
		e->pin_dir, e->run_dir,
		daemon_extra && *daemon_extra ? daemon_extra : "metrics = off",
		cgroups, extra,
		/* blocking test traffic: as env_write_config() */
		strstr(extra, "compat") ? "" : "compat = fast\n");
	return fclose(f) ? -errno : 0;
}

/* The value of "@key": N after "cgroup": "@cg" in status JSON; -1 if absent. */
static long long cg_num(const char *json, const char *cg, const char *key)
{
	char pat[512];
	const char *p, *end;

	p = strstr(json, "\"cgroups\": [");
	if (!p)
		return -1;
	snprintf(pat, sizeof(pat), "\"cgroup\": \"%s\"", cg);
	p = strstr(p, pat);
	if (!p)
		return -1;
	end = strstr(p, "}}");
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(p, pat);
	if (!p || (end && p > end))
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

static int status_json(struct env *e, char *out, size_t len)
{
	return env_cli(e, out, len, "status", "--json", (char *)NULL);
}

/* GET @path from 127.0.0.1:@port; the whole response in @out. */
static int http_get(int port, const char *path, char *out, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char req[256];
	size_t used = 0;
	ssize_t n;
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -1;
	}
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		     "Connection: close\r\n\r\n",
		     path);
	if (send(fd, req, n, 0) != n) {
		close(fd);
		return -1;
	}
	while (used + 1 < len && (n = read(fd, out + used, len - used - 1)) > 0)
		used += n;
	out[used] = '\0';
	close(fd);
	return 0;
}

static int read_file(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY), n;

	if (fd < 0)
		return -1;
	n = read(fd, out, len - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return n;
}

/* An exact transfer in a private netns inside the test's cgroup. */
static int xfer_in(struct env *e, const char *cg, int port, size_t size)
{
	struct xfer x = {
		.family = AF_INET, .port = port, .size = size, .seed = 7};
	pid_t pid = cg ? env_spawn_at(e, cg, NEW_NETNS, xfer_child, &x)
		       : env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child, &x);

	return env_wait(pid, 60);
}

/* --- reload ------------------------------------------------------------ */

TEST(reload_valid_invalid_missing)
{
	char out[8192], bad[PATH_MAX + 16], want[PATH_MAX + 64], log[16384];
	struct sm_counters c0, c1, c2;

	if (!ASSERT_EQ(env_write_config(e, "", "ports = *"), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(xfer_in(e, NULL, 7001, 100000), 0, "xfer before reload");
	ASSERT_EQ(env_counters(e, &c0, NULL), 0, "counters");
	ASSERT_EQ(c0.sockets_added, 2, "port 7001 accelerated at first");

	/* valid: port 7001 excluded from now on, for new connections */
	ASSERT_EQ(env_write_config(e, "", "ports = *\nexclude_ports = 7001"), 0,
		  "new config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "sockmesh reload of a valid file");
	ASSERT_STR_HAS(out, "reloaded", "reload says what it did");
	ASSERT_EQ(xfer_in(e, NULL, 7001, 100000), 0, "xfer after reload");
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "counters");
	ASSERT_EQ(c1.sockets_added, c0.sockets_added,
		  "the new policy applies at once: 7001 not accelerated");
	ASSERT_EQ(c1.sockets_skipped, c0.sockets_skipped + 2,
		  "both ends skipped by policy");

	/* invalid: refused with file:line, the running config stays */
	snprintf(bad, sizeof(bad), "%s/bad.ini", e->run_dir);
	ASSERT_EQ(write_conf(e, bad, e->cg_rel, "", "ports = *\nports = nope"),
		  0, "bad config");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "reload", "-c", bad, (char *)NULL),
		2, "sockmesh reload of an invalid file fails");
	snprintf(want, sizeof(want), "%s:8:", bad);
	ASSERT_STR_HAS(out, want, "error names file:line");
	ASSERT_STR_HAS(out, "stays in force",
		       "error says the old config stays");
	ASSERT_EQ(xfer_in(e, NULL, 7001, 100000), 0, "xfer after bad reload");
	ASSERT_EQ(env_counters(e, &c2, NULL), 0, "counters");
	ASSERT_EQ(c2.sockets_added, c1.sockets_added,
		  "old config still in force: 7001 still excluded");
	ASSERT_EQ(xfer_in(e, NULL, 7002, 1000), 0, "xfer on another port");
	ASSERT_EQ(env_counters(e, &c2, NULL), 0, "counters");
	ASSERT_EQ(c2.sockets_added, c1.sockets_added + 2,
		  "old config still in force: 7002 accelerated");
	ASSERT_EQ(env_sockops_attached(e), 1, "still attached");

	/* missing: over the control socket, and by SIGHUP once the daemon's
	 * own file is gone */
	snprintf(want, sizeof(want), "reload %s/missing.ini", e->run_dir);
	ASSERT_EQ(env_ctl(e, want, out, sizeof(out)), -EREMOTEIO,
		  "reload of a missing file refused");
	ASSERT_STR_HAS(out, "missing.ini: No such file",
		       "error names the file");
	snprintf(want, sizeof(want), "%s/missing.ini", e->run_dir);
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", "-c", want,
			  (char *)NULL),
		  2, "sockmesh reload -c MISSING fails");
	ASSERT_STR_HAS(out, "missing.ini", "and names the file");
	snprintf(want, sizeof(want), "%s.moved", e->conf);
	ASSERT_EQ(rename(e->conf, want), 0, "move the config away");
	kill(e->daemon, SIGHUP);
	usleep(300000);
	ASSERT_EQ(rename(want, e->conf), 0, "put it back");
	read_file(e->log, log, sizeof(log));
	ASSERT_STR_HAS(log, "reload refused", "SIGHUP with no file: logged");
	ASSERT_EQ(kill(e->daemon, 0), 0, "the daemon still runs");
	ASSERT_EQ(xfer_in(e, NULL, 7002, 1000), 0, "xfer after that");
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "counters");
	ASSERT_EQ(c1.sockets_added, c2.sockets_added + 2,
		  "still accelerating as configured");
	/* max_sockets needs a restart: refused, kept */
	ASSERT_EQ(env_write_config(e, "", "max_sockets = 1024"), 0, "config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 2,
		  "max_sockets change refused");
	ASSERT_STR_HAS(out, "needs `sockmesh unload` and a restart",
		       "says it needs a restart");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	ASSERT_STR_HAS(out, "\"max_sockets\": 65536", "map size kept");
}

TEST(reload_200_times_fds_and_rss_flat)
{
	char out[4096], alt[PATH_MAX + 16], req[PATH_MAX + 32];
	int fds0 = -1, fds1, failed = 0;
	long rss0 = -1, rss1;

	const char *asan = getenv("ASAN_OPTIONS");
	char opts[1024];

	/* under ASan freed memory sits in quarantine, never reused: RSS
	 * would grow with every allocation, leak or not */
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0",
		 asan ? asan : "", asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1); /* no effect without ASan */
	snprintf(alt, sizeof(alt), "%s/alt.ini", e->run_dir);
	if (!ASSERT_EQ(env_write_config(e, "", "ports = 1-30000"), 0,
		       "config") ||
	    !ASSERT_EQ(write_conf(e, alt, e->cg_rel, "",
				  "ports = *\ncidrs = 127.0.0.0/8\n"
				  "node_unique_cidrs = 10.0.0.0/8"),
		       0, "alternate config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	for (int i = 0; i < 220; i++) {
		snprintf(req, sizeof(req), "reload %s", i % 2 ? alt : e->conf);
		if (env_ctl(e, req, out, sizeof(out))) {
			failed++;
			fprintf(stderr, "    reload %d: %s\n", i, out);
		}
		if (i == 19) { /* warmed up: allocator and libbpf caches */
			fds0 = env_count_fds(e->daemon);
			rss0 = env_rss_kib(e->daemon);
		}
	}
	fds1 = env_count_fds(e->daemon);
	rss1 = env_rss_kib(e->daemon);
	fprintf(stderr,
		"    after 20 reloads: %d fds, %ld KiB RSS; after 220: %d fds, %ld KiB\n",
		fds0, rss0, fds1, rss1);
	ASSERT_EQ(failed, 0, "every reload applied");
	ASSERT_EQ(fds1, fds0, "fd count flat over 200 reloads");
	ASSERT_TRUE(rss1 - rss0 < 512, "RSS flat over 200 reloads (< 512 KiB)");
	ASSERT_EQ(xfer_in(e, NULL, 0, 10000), 0, "still accelerating");
	ASSERT_EQ(env_ctl(e, "status json", out, sizeof(out)), 0, "status");
	ASSERT_STR_HAS(out, "\"sockets_added\": 2", "the xfer was accelerated");
}

struct live {
	int stop[2], ready[2];
	struct stream st;
	pid_t pid;
};

static int live_start(struct env *e, struct live *s, const char *cg)
{
	char c;

	if (!ASSERT_EQ(pipe(s->stop), 0, "pipe") ||
	    !ASSERT_EQ(pipe(s->ready), 0, "pipe"))
		return -1;
	s->st = (struct stream){
		.stop_fd = s->stop[0], .ready_fd = s->ready[1], .seed = 9};
	s->pid = env_spawn_at(e, cg, NEW_NETNS, stream_child, &s->st);
	if (!ASSERT_EQ(read(s->ready[0], &c, 1), 1, "stream connected"))
		return -1;
	return 0;
}

static int live_stop(struct live *s)
{
	if (write(s->stop[1], "s", 1) != 1)
		return -1;
	return env_wait(s->pid, 60);
}

static int cg_attached(const char *cg)
{
	__u32 cnt = 0;
	int fd = open(cg, O_RDONLY | O_DIRECTORY), ret;

	if (fd < 0)
		return -1;
	ret = bpf_prog_query(fd, BPF_CGROUP_SOCK_OPS, 0, NULL, NULL, &cnt);
	close(fd);
	return ret ? -1 : (int)cnt;
}

TEST(reload_adds_and_removes_cgroups_under_traffic)
{
	char ab[512], ac[512], a_abs[PATH_MAX + 8], b_abs[PATH_MAX + 8],
		c_abs[PATH_MAX + 8], cga[300], cgc[300], out[16384];
	struct sm_counters c0, c1;
	struct live s = {.pid = 0};
	long long a0, a1;
	int gaps = 0;

	snprintf(ab, sizeof(ab), "%s/a, %s/b", e->cg_rel, e->cg_rel);
	snprintf(ac, sizeof(ac), "%s/a, %s/c", e->cg_rel, e->cg_rel);
	snprintf(a_abs, sizeof(a_abs), "%s/a", e->cg_path);
	snprintf(b_abs, sizeof(b_abs), "%s/b", e->cg_path);
	snprintf(c_abs, sizeof(c_abs), "%s/c", e->cg_path);
	snprintf(cga, sizeof(cga), "/%s/a", e->cg_rel);
	snprintf(cgc, sizeof(cgc), "/%s/c", e->cg_rel);
	if (!ASSERT_EQ(write_conf(e, e->conf, ab, "", ""), 0, "config a, b") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd") ||
	    live_start(e, &s, a_abs))
		return;
	usleep(200000);
	ASSERT_EQ(env_counters(e, &c0, NULL), 0, "counters");
	ASSERT_GT(c0.msgs_redirected, 0, "stream in a redirected");
	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(write_conf(e, e->conf, i % 2 ? ac : ab, "", ""), 0,
			  "config");
		if (!ASSERT_EQ(env_cli(e, out, sizeof(out), "reload",
				       (char *)NULL),
			       0, "reload"))
			fprintf(stderr, "    %s\n", out);
		gaps += cg_attached(a_abs) != 1;
	}
	/* the last one wrote a, c */
	ASSERT_EQ(gaps, 0, "a stayed attached through every reload");
	ASSERT_EQ(cg_attached(b_abs), 0, "b released");
	ASSERT_EQ(cg_attached(c_abs), 1, "c attached");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	a0 = cg_num(out, cga, "msgs_redirected");
	ASSERT_EQ(xfer_in(e, c_abs, 0, 100000), 0, "xfer in c");
	usleep(200000);
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "counters");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	a1 = cg_num(out, cga, "msgs_redirected");
	ASSERT_EQ(c1.sockets_added - c0.sockets_added, 2,
		  "a connection in the new cgroup c is accelerated");
	if (env_has_cg_counters(e)) {
		ASSERT_GT(a1, a0, "the stream in a is still redirected");
		ASSERT_EQ(cg_num(out, cgc, "sockets_added"), 2,
			  "... and counted in c");
		ASSERT_EQ(cg_num(out, cgc, "bytes_redirected") +
				  cg_num(out, cgc, "bytes_passed"),
			  200000, "c's bytes counted in c");
	}
	ASSERT_EQ(c1.peer_misses + c1.redirect_errors, 0,
		  "nothing fell back or lost its state");
	ASSERT_EQ(live_stop(&s), 0, "every byte of the stream arrived exact");
}

/* --- per-cgroup counters ------------------------------------------------ */

struct split {
	const char *srv_cg, *cli_cg; /* absolute */
	size_t up, down; /* bytes client -> server, server -> client */
};

static int send_n(int fd, size_t n, unsigned char v)
{
	unsigned char buf[8192];

	memset(buf, v, sizeof(buf));
	while (n) {
		ssize_t k = send(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);

		if (k <= 0)
			return -1;
		n -= k;
	}
	return 0;
}

static int recv_n(int fd, size_t n, unsigned char v)
{
	unsigned char buf[8192];

	while (n) {
		ssize_t k = recv(fd, buf, n < sizeof(buf) ? n : sizeof(buf), 0);

		if (k < 0 && errno == EAGAIN) {
			poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1,
			     1000);
			continue;
		}
		if (k <= 0)
			return -1;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != v)
				return -1;
		n -= k;
	}
	return 0;
}

static int move_to(const char *cg)
{
	char path[PATH_MAX + 16], buf[32];
	int fd, n, ret;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	ret = write(fd, buf, n) == n ? 0 : -1;
	close(fd);
	return ret;
}

/* Listener made in srv_cg, client in cli_cg: the passive end's callback
 * runs in the client's context, its socket belongs to srv_cg. */
static int split_child(void *arg)
{
	struct split *sp = arg;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int lfd, cfd, afd;

	if (move_to(sp->srv_cg))
		return 10;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sin, &len))
		return 11;
	if (move_to(sp->cli_cg))
		return 12;
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sin, sizeof(sin)))
		return 13;
	afd = accept(lfd, NULL, NULL);
	if (afd < 0)
		return 14;
	if (send_n(cfd, sp->up, 'u') || recv_n(afd, sp->up, 'u'))
		return 15;
	if (send_n(afd, sp->down, 'd') || recv_n(cfd, sp->down, 'd'))
		return 16;
	close(cfd);
	close(afd);
	close(lfd);
	return 0;
}

TEST(per_cgroup_counters_follow_the_socket)
{
	char ab[512], a_abs[PATH_MAX + 8], b_abs[PATH_MAX + 8], cga[300],
		cgb[300], out[16384];
	struct split sp = {.up = 100000, .down = 30000};
	struct sm_counters c;
	pid_t pid;

	snprintf(ab, sizeof(ab), "%s/a, %s/b", e->cg_rel, e->cg_rel);
	snprintf(a_abs, sizeof(a_abs), "%s/a", e->cg_path);
	snprintf(b_abs, sizeof(b_abs), "%s/b", e->cg_path);
	snprintf(cga, sizeof(cga), "/%s/a", e->cg_rel);
	snprintf(cgb, sizeof(cgb), "/%s/b", e->cg_rel);
	if (!ASSERT_EQ(write_conf(e, e->conf, ab, "", ""), 0, "config a, b") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	sp.srv_cg = b_abs;
	sp.cli_cg = a_abs;
	pid = env_spawn_at(e, e->cg_path, NEW_NETNS, split_child, &sp);
	ASSERT_EQ(env_wait(pid, 60), 0,
		  "client in a, server in b: bytes exact");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "counters");
	if (!env_has_cg_counters(e))
		return;
	ASSERT_EQ(cg_num(out, cga, "sockets_added"), 1, "client end in a");
	ASSERT_EQ(cg_num(out, cgb, "sockets_added"), 1,
		  "server end in b (its callback ran in a's context)");
	ASSERT_EQ(cg_num(out, cga, "bytes_redirected") +
			  cg_num(out, cga, "bytes_passed"),
		  sp.up, "a sent what the client sent");
	ASSERT_EQ(cg_num(out, cgb, "bytes_redirected") +
			  cg_num(out, cgb, "bytes_passed"),
		  sp.down, "b sent what the server sent");
	ASSERT_GT(cg_num(out, cga, "msgs_redirected"), 0, "a redirected");
	ASSERT_EQ(cg_num(out, cga, "msgs_redirected") +
			  cg_num(out, cgb, "msgs_redirected"),
		  c.msgs_redirected, "per-cgroup sums equal the node's");
	ASSERT_EQ(cg_num(out, cga, "bytes_redirected") +
			  cg_num(out, cgb, "bytes_redirected"),
		  c.bytes_redirected, "per-cgroup bytes sum to the node's");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "human status");
	ASSERT_STR_HAS(out, "per cgroup:", "human status shows cgroups");
	ASSERT_STR_HAS(out, cgb, "and names them");
}

/* --- metrics ------------------------------------------------------------ */

/* The sample "@name VALUE" or "@name{cgroup="@cg"} VALUE"; -1 if absent. */
static long long prom_value(const char *text, const char *name, const char *cg)
{
	char pat[512];
	const char *p = text;

	if (cg)
		snprintf(pat, sizeof(pat), "\n%s{cgroup=\"%s\"} ", name, cg);
	else
		snprintf(pat, sizeof(pat), "\n%s ", name);
	p = strstr(p, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

TEST(metrics_parse_and_match_status)
{
	char extra[64], resp[65536], json[16384], file[PATH_MAX + 16],
		cmd[PATH_MAX + 64], out[8192], name[64], cg[300];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	const char *body;
	int port = env_free_port(), mismatches = 0;
	FILE *f;

	snprintf(extra, sizeof(extra), "metrics = 127.0.0.1:%d", port);
	snprintf(cg, sizeof(cg), "/%s", e->cg_rel);
	if (!ASSERT_GT(port, 0, "a free port") ||
	    !ASSERT_EQ(write_conf(e, e->conf, e->cg_rel, extra, ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(xfer_in(e, NULL, 0, 200000), 0, "traffic");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "one reload");
	ASSERT_EQ(http_get(port, "/metrics", resp, sizeof(resp)), 0,
		  "GET /metrics");
	ASSERT_EQ(status_json(e, json, sizeof(json)), 0, "status --json");
	ASSERT_STR_HAS(resp, "HTTP/1.1 200 OK", "200");
	ASSERT_STR_HAS(resp, "text/plain; version=0.0.4", "Prometheus text");
	body = strstr(resp, "\r\n\r\n");
	if (!ASSERT_TRUE(body != NULL, "a body"))
		return;
	body += 3; /* keep a '\n' before the first line for prom_value */

	/* promtool from Debian's prometheus package (scripts/setup.sh) */
	snprintf(file, sizeof(file), "%s/metrics.txt", e->run_dir);
	f = fopen(file, "w");
	if (f) {
		fputs(body + 1, f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", file);
	if (!ASSERT_EQ(env_run(out, sizeof(out), argv), 0,
		       "promtool check metrics"))
		fprintf(stderr, "    %s\n", out);

#define CHECK_COUNTER(n, ...)                                                  \
	snprintf(name, sizeof(name), "sockmesh_%s_total", #n);                 \
	if (prom_value(body, name, NULL) != env_json_num(json, #n)) {          \
		fprintf(stderr, "    %s: metrics %lld, status %lld\n", name,   \
			prom_value(body, name, NULL), env_json_num(json, #n)); \
		mismatches++;                                                  \
	}
	SM_COUNTERS(CHECK_COUNTER)
#undef CHECK_COUNTER
	ASSERT_EQ(mismatches, 0, "every node counter equals status --json's");
	ASSERT_GT(prom_value(body, "sockmesh_msgs_redirected_total", NULL), 0,
		  "traffic counted");
	ASSERT_EQ(prom_value(body, "sockmesh_bytes_redirected_total", cg),
		  cg_num(json, cg, "bytes_redirected"),
		  "per-cgroup bytes equal status --json's");
	ASSERT_EQ(prom_value(body, "sockmesh_sockets_added_total", cg),
		  cg_num(json, cg, "sockets_added"),
		  "per-cgroup sockets equal status --json's");
	ASSERT_EQ(prom_value(body, "sockmesh_msgs_passed_total", cg),
		  cg_num(json, cg, "msgs_passed"),
		  "per-cgroup passed equal status --json's");
	ASSERT_EQ(prom_value(body, "sockmesh_sockets", NULL),
		  env_json_num(json, "sockets"), "sockmesh_sockets");
	ASSERT_EQ(prom_value(body, "sockmesh_reloads_total", NULL), 1,
		  "one reload counted");
	ASSERT_EQ(prom_value(body, "sockmesh_reload_failures_total", NULL), 0,
		  "no failed reload");
	ASSERT_STR_HAS(body,
		       "sockmesh_build_info{version=\"" SM_VERSION "\"} 1",
		       "build info");
	ASSERT_STR_HAS(body, "# TYPE sockmesh_msgs_redirected_total counter",
		       "TYPE lines");
	ASSERT_EQ(http_get(port, "/healthz", resp, sizeof(resp)), 0,
		  "GET /healthz");
	ASSERT_STR_HAS(resp, "200 OK", "healthy");
	ASSERT_EQ(http_get(port, "/nope", resp, sizeof(resp)), 0, "GET /nope");
	ASSERT_STR_HAS(resp, "404", "unknown path: 404");
}

/* --- sd_notify ------------------------------------------------------------ */

static int next_msg(int fd, char *buf, size_t len)
{
	ssize_t n;

	if (poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 10000) <= 0)
		return -1;
	n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* Messages until one contains @want (skipping STATUS= lines); 0 if found
 * and nothing but STATUS= came before it. */
static int expect_msg(struct env *e, int fd, const char *want)
{
	char buf[1024];

	while (!next_msg(fd, buf, sizeof(buf))) {
		if (strstr(buf, want))
			return 0;
		if (strncmp(buf, "STATUS=", 7)) {
			check(e, false, __FILE__, __LINE__,
			      "sd_notify: '%s' came before '%s'", buf, want);
			return -1;
		}
	}
	check(e, false, __FILE__, __LINE__, "sd_notify: no '%s'", want);
	return -1;
}

static int notify_socket(const char *name, int abstract)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
	len = offsetof(struct sockaddr_un, sun_path) + strlen(name);
	if (abstract)
		sa.sun_path[0] = '\0';
	if (bind(fd, (struct sockaddr *)&sa, len)) {
		close(fd);
		return -1;
	}
	return fd;
}

TEST(sd_notify_in_order)
{
	char path[PATH_MAX + 16], abs_name[128], out[4096], buf[1024];
	int fd, afd;

	snprintf(path, sizeof(path), "%s/notify.sock", e->run_dir);
	fd = notify_socket(path, 0);
	if (!ASSERT_GE(fd, 0, "notify socket") ||
	    !ASSERT_EQ(env_write_config(e, "", ""), 0, "config"))
		return;
	setenv("NOTIFY_SOCKET", path, 1);
	if (!ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	if (!expect_msg(e, fd, "READY=1"))
		ASSERT_EQ(env_sockops_attached(e), 1, "READY=1 once attached");
	ASSERT_EQ(next_msg(fd, buf, sizeof(buf)), 0, "a STATUS= line");
	ASSERT_STR_HAS(buf, "STATUS=attached to 1 cgroup", "STATUS= says it");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "reload");
	ASSERT_EQ(next_msg(fd, buf, sizeof(buf)), 0, "reload message");
	ASSERT_STR_HAS(buf, "RELOADING=1", "RELOADING=1 first");
	ASSERT_STR_HAS(buf, "MONOTONIC_USEC=", "with MONOTONIC_USEC=");
	ASSERT_EQ(next_msg(fd, buf, sizeof(buf)), 0, "then");
	ASSERT_STR_HAS(buf, "READY=1", "READY=1 after the reload");
	kill(e->daemon, SIGHUP);
	expect_msg(e, fd, "RELOADING=1");
	expect_msg(e, fd, "READY=1");
	env_stop_daemon(e, SIGTERM);
	expect_msg(e, fd, "STOPPING=1");
	close(fd);

	/* an abstract socket: NOTIFY_SOCKET=@name */
	snprintf(abs_name, sizeof(abs_name), "@%s-notify", e->name);
	afd = notify_socket(abs_name, 1);
	if (!ASSERT_GE(afd, 0, "abstract notify socket"))
		return;
	setenv("NOTIFY_SOCKET", abs_name, 1);
	ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd again");
	expect_msg(e, afd, "READY=1");
	env_stop_daemon(e, SIGTERM);
	expect_msg(e, afd, "STOPPING=1");
	unsetenv("NOTIFY_SOCKET");
	close(afd);
}

/* --- safety at start ------------------------------------------------------ */

TEST(bad_permission_config_refused)
{
	char bin[PATH_MAX], out[4096], want[PATH_MAX + 64], dir[PATH_MAX + 8];
	char *argv[] = {bin, "-c", e->conf, NULL};
	struct stat st;

	snprintf(bin, sizeof(bin), "%s/sockmeshd", e->build);
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config"))
		return;
	chmod(e->conf, 0664);
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2,
		  "group-writable config refused");
	snprintf(want, sizeof(want), "%s: writable by group", e->conf);
	ASSERT_STR_HAS(out, want, "error names the file and why");
	ASSERT_TRUE(stat(e->pin_dir, &st) != 0, "nothing pinned");
	chmod(e->conf, 0646);
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2,
		  "world-writable config refused");
	ASSERT_STR_HAS(out, "writable by others", "error says who");
	snprintf(dir, sizeof(dir), "%s/d.ini", e->run_dir);
	mkdir(dir, 0700);
	argv[2] = dir;
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2, "a directory refused");
	ASSERT_STR_HAS(out, "not a regular file", "error says why");
	argv[2] = e->conf;

	/* a safe file starts; the dirs are private; a reload to an unsafe
	 * file is refused and changes nothing */
	chmod(e->conf, 0644);
	chmod(e->run_dir, 0755);
	if (!ASSERT_EQ(env_start_daemon(e), 0, "start with mode 0644"))
		return;
	ASSERT_EQ(stat(e->run_dir, &st), 0, "run_dir");
	ASSERT_EQ(st.st_mode & 0777, 0700, "run_dir is 0700");
	ASSERT_EQ(stat(e->pin_dir, &st), 0, "pin_dir");
	ASSERT_EQ(st.st_mode & 0777, 0700, "pin_dir is 0700");
	snprintf(want, sizeof(want), "%s/sockmeshd.sock", e->run_dir);
	ASSERT_EQ(stat(want, &st), 0, "control socket");
	ASSERT_EQ(st.st_mode & 0777, 0600, "control socket is 0600");
	chmod(e->conf, 0666);
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 2,
		  "reload of a world-writable file refused");
	ASSERT_STR_HAS(out, "writable by group and others", "says why");
	chmod(e->conf, 0644);
	ASSERT_EQ(env_sockops_attached(e), 1, "still attached");
	env_stop_daemon(e, SIGTERM);

	/* a shared run_dir is refused, not chmod()ed */
	snprintf(dir, sizeof(dir), "%s/shared", e->run_dir);
	mkdir(dir, 0700);
	chmod(dir, 01777);
	ASSERT_EQ(write_conf(e, e->conf, e->cg_rel, "", ""), 0, "config");
	{
		char conf2[PATH_MAX + 16];
		FILE *f;

		snprintf(conf2, sizeof(conf2), "%s/shared.ini", e->run_dir);
		f = fopen(conf2, "w");
		if (f) {
			fprintf(f,
				"[daemon]\npin_dir = %s\nrun_dir = %s\n"
				"metrics = off\n[accelerate]\ncgroups = %s\n",
				e->pin_dir, dir, e->cg_rel);
			fclose(f);
		}
		argv[2] = conf2;
		ASSERT_EQ(env_run(out, sizeof(out), argv), 1,
			  "a sticky world-writable run_dir refused");
		ASSERT_STR_HAS(out, "is a shared directory", "says why");
		ASSERT_EQ(stat(dir, &st), 0, "run_dir");
		ASSERT_EQ(st.st_mode & 07777, 01777, "left as it was");
	}
}

/* --- CLI ------------------------------------------------------------------ */

TEST(top_once)
{
	char out[8192], cg[300], *line;
	struct live s = {.pid = 0};
	double redirected = 0;

	snprintf(cg, sizeof(cg), "\n/%s ", e->cg_rel);
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd") ||
	    live_start(e, &s, e->cg_path))
		return;
	ASSERT_EQ(env_cli(e, out, sizeof(out), "top", "-n", "1", "-d", "0.5",
			  (char *)NULL),
		  0, "sockmesh top -n 1");
	ASSERT_EQ(live_stop(&s), 0, "stream exact");
	ASSERT_STR_HAS(out, "CGROUP", "a header");
	ASSERT_STR_HAS(out, "msgs_redirected/s", "rates");
	ASSERT_STR_HAS(out, "(node)", "the node's line");
	ASSERT_TRUE(strstr(out, "\033[") == NULL,
		    "no terminal control when not a terminal");
	line = strstr(out, cg);
	if (ASSERT_TRUE(line != NULL, "a line for the cgroup") &&
	    env_has_cg_counters(e))
		sscanf(line + strlen(cg), " %*f %lf", &redirected);
	else if ((line = strstr(out, "\n(node) ")))
		sscanf(line + strlen("\n(node) "), " %*f %lf", &redirected);
	ASSERT_GT(redirected, 0, "the stream's msgs_redirected/s");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "top", "-n", "x", (char *)NULL),
		  2, "bad -n refused");
}

TEST(status_same_from_daemon_and_pins)
{
	char a[16384], b[16384], reply[16384];

	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(xfer_in(e, NULL, 0, 50000), 0, "traffic");
	ASSERT_EQ(status_json(e, a, sizeof(a)), 0, "status --json (pins)");
	ASSERT_EQ(env_ctl(e, "status json", reply, sizeof(reply)), 0,
		  "status json (daemon)");
	ASSERT_TRUE(!strcmp(a, reply), "the same JSON both ways");
	ASSERT_EQ(env_cli(e, b, sizeof(b), "status", (char *)NULL), 0,
		  "status (pins)");
	ASSERT_EQ(env_ctl(e, "status", reply, sizeof(reply)), 0,
		  "status (daemon)");
	ASSERT_TRUE(!strcmp(b, reply), "the same text both ways");
	ASSERT_EQ(env_ctl(e, "frobnicate", reply, sizeof(reply)), -EREMOTEIO,
		  "an unknown request is refused");
	ASSERT_STR_HAS(reply, "unknown request", "and says so");
}

TEST(unload_with_daemon_running)
{
	char out[4096], path[PATH_MAX + 16];
	struct live s = {.pid = 0};
	struct sm_counters c;
	int fd, status;

	if (!ASSERT_EQ(env_write_config(e, "on_exit = keep", ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd") ||
	    live_start(e, &s, e->cg_path))
		return;
	fd = env_counters_fd(e);
	ASSERT_GE(fd, 0, "open the counters map");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "unload", (char *)NULL), 0,
		  "unload with the daemon running");
	ASSERT_STR_HAS(out, "detached and removed the pins",
		       "unload says what happened");
	status = env_wait(e->daemon, 10);
	ASSERT_EQ(status, 0, "the daemon exited cleanly");
	if (status >= 0)
		e->daemon = 0;
	snprintf(path, sizeof(path), "%s/%s", e->pin_dir, SM_PIN_LAYOUT);
	ASSERT_TRUE(access(path, F_OK) != 0, "pins removed");
	ASSERT_EQ(env_sockops_attached(e), 0, "cgroup detached");
	usleep(300000);
	ASSERT_EQ(env_read_counters_fd(fd, &c), 0, "read the counters");
	ASSERT_GT(c.msgs_drained, 0, "the stream goes on over TCP");
	ASSERT_EQ(live_stop(&s), 0, "every byte arrived exact and in order");
	if (fd >= 0)
		close(fd);
}

/* --- a real Prometheus scrape ------------------------------------------- */

/* The value of the first sample in a Prometheus query API answer. */
static long long api_value(const char *resp)
{
	const char *p = strstr(resp, "\"value\":[");

	if (!p || !(p = strchr(p, ',')) || p[1] != '"')
		return -1;
	return strtoll(p + 2, NULL, 10);
}

TEST(prometheus_scrapes_the_endpoint)
{
	char extra[64], yml[PATH_MAX + 16], data[PATH_MAX + 16],
		plog[PATH_MAX + 16], listen_arg[64], cfg_arg[PATH_MAX + 32],
		data_arg[PATH_MAX + 32], json[16384], resp[65536], q[512];
	int port = env_free_port(), web = env_free_port(), found = 0, fd;

	for (int i = 0; i < 10 && web == port; i++)
		web = env_free_port();
	long long want_node, want_cg;
	pid_t prom;
	FILE *f;

	snprintf(extra, sizeof(extra), "metrics = 127.0.0.1:%d", port);
	if (!ASSERT_GT(port, 0, "a free port") ||
	    !ASSERT_EQ(write_conf(e, e->conf, e->cg_rel, extra, ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(xfer_in(e, NULL, 0, 300000), 0, "traffic");
	ASSERT_EQ(status_json(e, json, sizeof(json)), 0, "status --json");
	snprintf(q, sizeof(q), "/%s", e->cg_rel);
	want_node = env_json_num(json, "bytes_redirected");
	want_cg = cg_num(json, q, "bytes_redirected");

	snprintf(yml, sizeof(yml), "%s/prometheus.yml", e->run_dir);
	snprintf(data, sizeof(data), "%s/prometheus-data", e->run_dir);
	snprintf(plog, sizeof(plog), "%s/prometheus.log", e->run_dir);
	f = fopen(yml, "w");
	if (!f) {
		ASSERT_TRUE(false, "create prometheus.yml");
		return;
	}
	fprintf(f,
		"global:\n  scrape_interval: 1s\nscrape_configs:\n"
		"  - job_name: sockmesh\n    static_configs:\n"
		"      - targets: ['127.0.0.1:%d']\n",
		port);
	fclose(f);
	snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", yml);
	snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s", data);
	snprintf(listen_arg, sizeof(listen_arg),
		 "--web.listen-address=127.0.0.1:%d", web);
	prom = fork();
	if (!prom) {
		fd = open(plog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("prometheus", "prometheus", cfg_arg, data_arg,
		       listen_arg, (char *)NULL);
		_exit(127);
	}
	/* the node's and the cgroup's bytes, as Prometheus stored them */
	for (int i = 0; i < 300 && !found; i++) {
		usleep(100000);
		if (http_get(
			    web,
			    "/api/v1/query?query=sockmesh_bytes_redirected_total%7Bcgroup%3D%22%22%7D",
			    resp, sizeof(resp)))
			continue;
		found = strstr(resp, "\"result\":[{") != NULL;
	}
	if (ASSERT_TRUE(found, "Prometheus scraped sockmeshd within 30 s"))
		ASSERT_EQ(api_value(resp), want_node,
			  "Prometheus has the node's bytes_redirected");
	snprintf(
		q, sizeof(q),
		"/api/v1/query?query=sockmesh_bytes_redirected_total%%7Bcgroup%%3D%%22/%s%%22%%7D",
		e->cg_rel);
	ASSERT_EQ(http_get(web, q, resp, sizeof(resp)), 0, "query per cgroup");
	ASSERT_EQ(api_value(resp), want_cg,
		  "Prometheus has the cgroup's bytes_redirected");
	ASSERT_EQ(http_get(web, "/api/v1/query?query=up", resp, sizeof(resp)),
		  0, "query up");
	ASSERT_EQ(api_value(resp), 1, "the target is up");
	kill(prom, SIGTERM);
	if (env_wait(prom, 10) < 0) {
		kill(prom, SIGKILL);
		waitpid(prom, NULL, 0);
	}
}

TEST(reload_refuses_restart_keys_and_nested_cgroups)
{
	char out[8192], other[PATH_MAX + 16], nested[512], extra[64];
	int port = env_free_port(), port2 = env_free_port(), busy;
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	FILE *f;

	for (int i = 0; i < 10 && port2 == port; i++)
		port2 = env_free_port();
	snprintf(extra, sizeof(extra), "metrics = 127.0.0.1:%d", port);
	if (!ASSERT_EQ(write_conf(e, e->conf, e->cg_rel, extra, ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;

	/* pin_dir: a restart */
	snprintf(other, sizeof(other), "%s/other.ini", e->run_dir);
	f = fopen(other, "w");
	if (f) {
		fprintf(f,
			"[daemon]\npin_dir = %s-other\nrun_dir = %s\nmetrics = off\n"
			"[accelerate]\ncgroups = %s\n",
			e->pin_dir, e->run_dir, e->cg_rel);
		fclose(f);
	}
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", "-c", other,
			  (char *)NULL),
		  2, "pin_dir change refused");
	ASSERT_STR_HAS(out, "pin_dir changed", "says what changed");
	ASSERT_STR_HAS(out, "needs a restart", "and what it takes");

	/* nested cgroups would record a socket twice */
	snprintf(nested, sizeof(nested), "%s, %s/inner", e->cg_rel, e->cg_rel);
	ASSERT_EQ(write_conf(e, other, nested, extra, ""), 0, "nested config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", "-c", other,
			  (char *)NULL),
		  2, "nested cgroups refused");
	ASSERT_STR_HAS(out, "is inside", "says which is inside which");

	/* metrics moves to a new port; a port in use is refused */
	busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_port = htons(port2);
	ASSERT_EQ(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0,
		  "occupy a port");
	ASSERT_EQ(listen(busy, 1), 0, "listen");
	snprintf(extra, sizeof(extra), "metrics = 127.0.0.1:%d", port2);
	ASSERT_EQ(write_conf(e, other, e->cg_rel, extra, ""), 0, "config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", "-c", other,
			  (char *)NULL),
		  2, "metrics on a busy port refused");
	ASSERT_STR_HAS(out, "cannot listen", "says why");
	ASSERT_EQ(http_get(port, "/healthz", out, sizeof(out)), 0,
		  "the old endpoint still serves");
	ASSERT_STR_HAS(out, "200 OK", "healthy");
	close(busy);
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", "-c", other,
			  (char *)NULL),
		  0, "metrics moves once the port is free");
	ASSERT_EQ(http_get(port2, "/healthz", out, sizeof(out)), 0,
		  "the new endpoint serves");
	ASSERT_STR_HAS(out, "200 OK", "healthy");
	ASSERT_TRUE(http_get(port, "/healthz", out, sizeof(out)) != 0,
		    "the old endpoint is closed");
	ASSERT_EQ(http_get(port2, "/metrics", out, sizeof(out)), 0, "scrape");
	ASSERT_STR_HAS(out, "sockmesh_reload_failures_total 3",
		       "three reloads refused");
	ASSERT_STR_HAS(out, "sockmesh_reloads_total 1", "one applied");
	ASSERT_EQ(env_sockops_attached(e), 1, "attached throughout");
}

TEST(another_release_pin_layout_reported)
{
	char other[PATH_MAX + 8], log[8192];

	/* what an older release that exited with on_exit = keep leaves */
	snprintf(other, sizeof(other), "%s/v2", e->pin_dir);
	if (!ASSERT_EQ(mkdir(e->pin_dir, 0700), 0, "mkdir pin_dir") ||
	    !ASSERT_EQ(mkdir(other, 0700), 0, "mkdir pin_dir/v2"))
		goto out;
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		goto out;
	read_file(e->log, log, sizeof(log));
	ASSERT_STR_HAS(log, "another sockmesh release", "a warning");
	ASSERT_STR_HAS(log, other, "naming the directory");
	ASSERT_STR_HAS(log, "sockmesh unload", "and what removes it");
	ASSERT_EQ(xfer_in(e, NULL, 7003, 1000), 0,
		  "and it runs: a transfer exact");
out:
	rmdir(other);
}

/*
 * compat: strict by default (a blocking connection stays on TCP and
 * strict_blocking counts it), fast by reload (the same traffic is
 * accelerated), a bad value refused with file:line and the mode kept.
 */
TEST(compat_strict_by_default_fast_by_reload)
{
	char out[8192], bad[PATH_MAX + 16], want[PATH_MAX + 64];
	struct sm_counters c0, c1;

	/* a config without the key (the harness writes compat = fast into
	 * any config that does not name it: this comment names it) */
	if (!ASSERT_EQ(env_write_config(e, "", "; compat: the default"), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status");
	ASSERT_STR_HAS(out, "compat:   strict", "status names the mode");
	ASSERT_EQ(xfer_in(e, NULL, 7011, 100000), 0, "blocking xfer");
	ASSERT_EQ(env_counters(e, &c0, NULL), 0, "counters");
	ASSERT_EQ(c0.sockets_added, 0, "strict: a blocking connect stays out");
	ASSERT_EQ(c0.strict_blocking, 1, "strict_blocking counts it");
	ASSERT_EQ(c0.msgs_redirected, 0, "nothing redirected");

	ASSERT_EQ(env_write_config(e, "", "compat = fast"), 0, "fast config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "reload to fast");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	ASSERT_STR_HAS(out, "\"compat\": \"fast\"", "JSON names the mode");
	ASSERT_EQ(xfer_in(e, NULL, 7011, 100000), 0, "the same xfer");
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "counters");
	ASSERT_EQ(c1.sockets_added, 2, "fast: both ends accelerated");
	ASSERT_EQ(c1.strict_blocking, c0.strict_blocking, "no strict rule");
	ASSERT_GE(c1.msgs_redirected, 1, "redirected");

	snprintf(bad, sizeof(bad), "%s/bad.ini", e->run_dir);
	ASSERT_EQ(write_conf(e, bad, e->cg_rel, "", "compat = strikt"), 0,
		  "bad config");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "reload", "-c", bad, (char *)NULL),
		2, "reload of a bad compat fails");
	snprintf(want, sizeof(want), "%s:7:", bad);
	ASSERT_STR_HAS(out, want, "error names file:line");
	ASSERT_STR_HAS(out, "compat must be strict or fast, not 'strikt'",
		       "error names the key and the values");
	ASSERT_EQ(status_json(e, out, sizeof(out)), 0, "status");
	ASSERT_STR_HAS(out, "\"compat\": \"fast\"", "the mode is kept");
}

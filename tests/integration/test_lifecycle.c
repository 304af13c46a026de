// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The daemon's life around live connections: restart (clean and kill -9)
 * and unload while a connection streams; bad configs and a second instance
 * change nothing; the CLI works without the daemon.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmeshd/loop.h" /* SM_LOOP_CTL_MAX */

struct streaming {
	int stop[2];
	int ready[2];
	struct stream st;
	pid_t pid;
};

static int stream_start(struct env *e, struct streaming *s)
{
	char c;

	if (!ASSERT_EQ(pipe(s->stop), 0, "pipe") ||
	    !ASSERT_EQ(pipe(s->ready), 0, "pipe"))
		return -1;
	s->st = (struct stream){
		.stop_fd = s->stop[0], .ready_fd = s->ready[1], .seed = 42};
	s->pid = env_spawn(e, IN_CGROUP | NEW_NETNS, stream_child, &s->st);
	if (!ASSERT_EQ(read(s->ready[0], &c, 1), 1, "stream connected"))
		return -1;
	usleep(200000);
	return 0;
}

static int stream_stop(struct streaming *s)
{
	if (write(s->stop[1], "s", 1) != 1)
		return -1;
	return env_wait(s->pid, 60);
}

static void restart_while_streaming(struct env *e, int sig)
{
	struct sm_counters c1, c2, c3;
	struct streaming s = {.pid = 0};

	if (!ASSERT_EQ(env_write_config(e, "on_exit = keep", ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd") ||
	    stream_start(e, &s))
		return;
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "counters before");
	ASSERT_GT(c1.msgs_redirected, 0,
		  "stream redirected before the restart");
	env_stop_daemon(e, sig);
	usleep(200000);
	ASSERT_EQ(env_start_daemon(e), 0, "restart sockmeshd");
	ASSERT_EQ(env_counters(e, &c2, NULL), 0, "counters after restart");
	usleep(300000);
	ASSERT_EQ(env_counters(e, &c3, NULL), 0, "counters later");
	ASSERT_GT(c3.msgs_redirected, c2.msgs_redirected,
		  "redirection goes on after the restart");
	ASSERT_EQ(c3.peer_misses + c3.bulk_fallbacks, 0,
		  "no direction fell back to the stack");
	ASSERT_EQ(env_sockops_attached(e), 1, "one attachment on the hook");
	ASSERT_EQ(stream_stop(&s), 0, "every byte arrived exact and in order");
}

TEST(daemon_restart_while_streaming)
{
	restart_while_streaming(e, SIGTERM);
}

TEST(daemon_kill9_while_streaming)
{
	restart_while_streaming(e, SIGKILL);
}

TEST(unload_while_streaming)
{
	struct sm_counters c;
	struct streaming s = {.pid = 0};
	char out[4096], path[PATH_MAX + 16];
	int fd;

	if (!ASSERT_EQ(env_write_config(e, "on_exit = keep", ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd") ||
	    stream_start(e, &s))
		return;
	fd = env_counters_fd(e);
	ASSERT_GE(fd, 0, "open the counters map");
	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "daemon stops cleanly");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "unload", (char *)NULL), 0,
		  "unload");
	ASSERT_STR_HAS(out, "detached", "unload says what it did");
	snprintf(path, sizeof(path), "%s/%s", e->pin_dir, SM_PIN_LAYOUT);
	ASSERT_TRUE(access(path, F_OK) != 0, "pins removed");
	ASSERT_EQ(env_sockops_attached(e), 0, "cgroup detached");
	usleep(300000);
	ASSERT_EQ(env_read_counters_fd(fd, &c), 0,
		  "read the unpinned counters");
	ASSERT_GT(c.msgs_drained, 0, "after unload the stream goes over TCP");
	ASSERT_EQ(stream_stop(&s), 0, "every byte arrived exact and in order");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 3,
		  "status after unload: not loaded");
	if (fd >= 0)
		close(fd);
}

TEST(bad_config_changes_nothing)
{
	char bin[PATH_MAX], out[4096], want[PATH_MAX + 16];
	char *argv[] = {bin, "-c", e->conf, NULL};
	struct stat st;

	snprintf(bin, sizeof(bin), "%s/sockmeshd", e->build);
	/* line 9 of the file env_write_config writes: the second extra line */
	ASSERT_EQ(env_write_config(e, "", "ports = 6379\nexclud_ports = 1"), 0,
		  "config");
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2, "sockmeshd refuses it");
	snprintf(want, sizeof(want), "%s:9: unknown key 'exclud_ports'",
		 e->conf);
	ASSERT_STR_HAS(out, want, "error names file, line and key");
	ASSERT_TRUE(stat(e->pin_dir, &st) != 0, "no pin_dir created");
	ASSERT_TRUE(stat(e->cg_path, &st) != 0, "no cgroup created");

	ASSERT_EQ(env_write_config(e, "", "cidrs = 127.0.0.1/8"), 0, "config");
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2, "bad CIDR refused");
	ASSERT_STR_HAS(out, "host bits", "error explains the CIDR");
	ASSERT_TRUE(stat(e->pin_dir, &st) != 0, "still no pin_dir");

	snprintf(want, sizeof(want), "%s/missing.ini", e->run_dir);
	argv[2] = want;
	ASSERT_EQ(env_run(out, sizeof(out), argv), 2, "missing file refused");
	ASSERT_STR_HAS(out, "No such file or directory", "error says why");
}

TEST(second_instance_refused)
{
	char bin[PATH_MAX], out[4096];
	char *argv[] = {bin, "-c", e->conf, NULL};

	snprintf(bin, sizeof(bin), "%s/sockmeshd", e->build);
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(env_run(out, sizeof(out), argv), 1, "second instance exits");
	ASSERT_STR_HAS(out, "another sockmeshd is running", "it says why");
	ASSERT_EQ(env_sockops_attached(e), 1, "still one attachment");
}

/* The "pid N" of `sockmesh status --json`'s daemon_pid, or -1. */
static int status_pid(struct env *e)
{
	char out[8192], *p;

	if (env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL))
		return -1;
	p = strstr(out, "\"daemon_pid\": ");
	return p ? atoi(p + strlen("\"daemon_pid\": ")) : -1;
}

/*
 * Two daemons, two pin_dirs, one run_dir: the second is refused before it
 * touches anything, and names the first; the first keeps its control
 * socket and pid file. After a kill -9 status never shows the dead pid.
 */
TEST(second_daemon_on_the_same_run_dir_refused)
{
	char bin[PATH_MAX], out[4096], conf2[PATH_MAX + 8], pin2[PATH_MAX + 8];
	char want[PATH_MAX + 64];
	/* bounded, and on_exit = detach: a second daemon that wrongly
	 * starts is stopped and leaves nothing */
	char *argv[] = {"/usr/bin/timeout", "20", bin, "-c", conf2, NULL};
	struct stat st;
	pid_t first, dead;
	FILE *f;

	snprintf(bin, sizeof(bin), "%s/sockmeshd", e->build);
	snprintf(conf2, sizeof(conf2), "%s.2", e->conf);
	snprintf(pin2, sizeof(pin2), "%s-2", e->pin_dir);
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	first = e->daemon;
	f = fopen(conf2, "w");
	if (!f) { /* spelled out: cppcheck does not see through ASSERT_* */
		ASSERT_TRUE(0, "second config");
		return;
	}
	fprintf(f,
		"[daemon]\npin_dir = %s\nrun_dir = %s\nmetrics = off\n"
		"on_exit = detach\n[accelerate]\ncgroups = %s\n",
		pin2, e->run_dir, e->cg_rel);
	fclose(f);
	ASSERT_EQ(env_run(out, sizeof(out), argv), 1, "the second exits 1");
	snprintf(want, sizeof(want),
		 "another sockmeshd is running with run_dir %s (pid %d, config "
		 "%s, pin_dir %s)",
		 e->run_dir, (int)first, e->conf, e->pin_dir);
	ASSERT_STR_HAS(out, want, "and names the first, its config, pin_dir");
	ASSERT_TRUE(stat(pin2, &st) && errno == ENOENT,
		    "the second made no pin_dir");
	rmdir(pin2);
	unlink(conf2);
	ASSERT_EQ(status_pid(e), first, "status: the first's pid");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "reload reaches the first");
	ASSERT_EQ(kill(first, 0), 0, "the first still runs");
	ASSERT_EQ(env_sockops_attached(e), 1, "one attachment");

	/* kill -9: no daemon, whatever the pid file says; then the new one */
	dead = first;
	kill(dead, SIGKILL);
	waitpid(dead, NULL, 0);
	e->daemon = 0;
	ASSERT_EQ(status_pid(e), 0, "after kill -9: no daemon in status");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 3,
		  "reload: no daemon, exit 3");
	ASSERT_STR_HAS(out, "no sockmeshd runs with run_dir", "says so");
	if (!ASSERT_EQ(env_start_daemon(e), 0, "restart on the same dirs"))
		return;
	ASSERT_TRUE(e->daemon != dead, "a new pid");
	ASSERT_EQ(status_pid(e), e->daemon, "status: the new pid only");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "human status");
	snprintf(want, sizeof(want), "pid %d)", (int)dead);
	ASSERT_TRUE(!strstr(out, want), "never the dead pid");
}

#define HOLD_N 80 /* more than the control socket's pool */

/* @n control-socket clients that send nothing; how many connected. */
static int hold_clients(struct env *e, int *fds, int n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int connected = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sockmeshd.sock",
		 e->run_dir);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		/* the backlog is full until the daemon accepts: wait */
		for (int k = 0; fds[i] >= 0 && k < 10000; k++) {
			if (!connect(fds[i], (struct sockaddr *)&sa,
				     sizeof(sa))) {
				connected++;
				break;
			}
			if (errno != EAGAIN)
				break;
			usleep(1000);
		}
	}
	return connected;
}

/* Of @n held clients, how many the daemon closed (EOF) and how many it
 * holds open. */
static void held_count(const int *fds, int n, int *closed, int *open)
{
	char b;

	*closed = *open = 0;
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (recv(fds[i], &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN)
			(*open)++;
		else
			(*closed)++;
	}
}

/*
 * Clients that connect to the control socket and send nothing cannot keep
 * the CLI out: the daemon holds at most SM_LOOP_CTL_MAX of them, drops the
 * oldest for each new one, and closes each at its deadline.
 */
TEST(cli_answers_past_held_control_clients)
{
	int fds[HOLD_N], rc, closed = 0, open = 0, n;
	char out[4096];

	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	n = hold_clients(e, fds, HOLD_N);
	ASSERT_EQ(n, HOLD_N, "every client connected");
	/* the daemon accepts them in order; wait until it has the last */
	for (int k = 0; k < 3000 && closed < HOLD_N - SM_LOOP_CTL_MAX; k++) {
		usleep(10000);
		held_count(fds, HOLD_N, &closed, &open);
	}
	ASSERT_EQ(closed, HOLD_N - SM_LOOP_CTL_MAX, "the oldest were dropped");
	rc = env_cli(e, out, sizeof(out), "reload", (char *)NULL);
	ASSERT_EQ(rc, 0, "reload answers while they are held");
	ASSERT_STR_HAS(out, "reloaded", "reload says what it did");
	held_count(fds, HOLD_N, &closed, &open);
	ASSERT_TRUE(open <= SM_LOOP_CTL_MAX - 1,
		    "the daemon holds at most its pool");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status answers too");
	/* each is closed at its deadline; a guard, not a timing check */
	for (int k = 0; k < 3000 && open; k++) {
		usleep(10000);
		held_count(fds, HOLD_N, &closed, &open);
	}
	ASSERT_EQ(open, 0, "the rest closed at their deadline");
	for (int i = 0; i < HOLD_N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

TEST(cli_run_and_status)
{
	char bin[PATH_MAX], out[8192], want[256];
	int fd;

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	if (!ASSERT_EQ(env_write_config(e, "on_exit = detach", ""), 0,
		       "config"))
		return;
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "run", "--", "true", (char *)NULL),
		3, "run before the daemon: not loaded");
	ASSERT_STR_HAS(out, "not loaded", "run says why");
	if (!ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_EQ(env_cli(e, out, sizeof(out), "run", "--", "cat",
			  "/proc/self/cgroup", (char *)NULL),
		  0, "run cat");
	snprintf(want, sizeof(want), "0::/%s\n", e->cg_rel);
	ASSERT_STR_HAS(out, want, "the command runs in the cgroup");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "run", "--cgroup", "nope", "--",
			  "true", (char *)NULL),
		  2, "unknown cgroup");
	ASSERT_STR_HAS(out, "not configured", "run says why");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "run", "--", "/nonexistent/cmd",
			  (char *)NULL),
		  127, "missing command: 127 like a shell");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL),
		0, "status --json");
	snprintf(want, sizeof(want), "\"cgroup\": \"/%s\"", e->cg_rel);
	ASSERT_STR_HAS(out, want, "status names the attached cgroup");
	ASSERT_STR_HAS(out, "\"sockets_added\": ", "status has the counters");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status");
	ASSERT_STR_HAS(out, "daemon:   running", "human status");
	/* on_exit = detach: stopping removes everything */
	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "stop");
	fd = env_counters_fd(e);
	ASSERT_TRUE(fd < 0, "on_exit = detach removed the pins");
	ASSERT_EQ(env_sockops_attached(e), 0, "and detached");
	if (fd >= 0)
		close(fd);
}

/*
 * A host where bpffs is not mounted: sockmeshd mounts it. Run in a private
 * mount namespace with /sys/fs/bpf unmounted there, so the host keeps its
 * own; pins made there vanish with the namespace.
 */
TEST(bpffs_not_mounted)
{
	struct xfer x = {.family = AF_INET, .size = 1 << 20, .seed = 9};
	struct sm_counters c;
	struct statfs st;

	if (!ASSERT_EQ(unshare(CLONE_NEWNS), 0, "private mount namespace") ||
	    !ASSERT_EQ(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0,
		       "private mounts"))
		return;
	while (!statfs("/sys/fs/bpf", &st) && st.f_type == BPF_FS_MAGIC &&
	       !umount2("/sys/fs/bpf", MNT_DETACH))
		;
	if (!ASSERT_TRUE(!statfs("/sys/fs/bpf", &st) &&
				 st.f_type != BPF_FS_MAGIC,
			 "no bpffs on /sys/fs/bpf in this namespace"))
		return;
	if (!ASSERT_EQ(env_write_config(e, "on_exit = detach", ""), 0,
		       "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	ASSERT_TRUE(!statfs("/sys/fs/bpf", &st) && st.f_type == BPF_FS_MAGIC,
		    "sockmeshd mounted bpffs on /sys/fs/bpf");
	ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, xfer_child, &x),
			   60),
		  0, "transfer");
	ASSERT_EQ(env_counters(e, &c, NULL), 0, "read counters");
	ASSERT_EQ(c.bytes_redirected, 2 * x.size, "accelerated");
	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "stop");
	ASSERT_EQ(env_sockops_attached(e), 0, "on_exit = detach detached");
}

/* --- sockmesh run as an ordinary user ----------------------------------- */

#define RUN_GID	  64242 /* run_group; no such group needs to exist */
#define RUN_UID	  64243 /* a member of it */
#define OTHER_UID 64244 /* not a member */

/*
 * Run @argv as @uid with primary group @uid and, if @in_group, RUN_GID as
 * a supplementary group; its stdout and stderr into @out. The exit status,
 * or -1.
 */
static int run_as(uid_t uid, bool in_group, char *out, size_t len,
		  char *const argv[])
{
	gid_t groups[1] = {RUN_GID};
	int p[2], status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	out[0] = '\0';
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		if (setgroups(in_group ? 1 : 0, groups) || setgid(uid) ||
		    setuid(uid))
			_exit(99);
		unsetenv("SUDO_UID");
		execv(argv[0], argv);
		_exit(98);
	}
	close(p[1]);
	while (used + 1 < len &&
	       (n = read(p[0], out + used, len - used - 1)) > 0)
		used += n;
	out[used] = '\0';
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * A member of run_group runs `sockmesh run -- CMD` as itself: the daemon
 * moves it into the accelerated cgroup, CMD runs with its uid, and its
 * connections are redirected. A user outside the group is refused and
 * told why; a member may not reload or unload.
 */
TEST(run_as_member_of_run_group)
{
	char bin[PATH_MAX], pp[PATH_MAX], out[8192], want[256], gid[32];
	struct sm_counters c0, c1;
	long sockets;
	struct stat st;

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	snprintf(pp, sizeof(pp), "%s/tests/pingpong", e->build);
	snprintf(gid, sizeof(gid), "run_group = %d", RUN_GID);
	if (!ASSERT_EQ(env_write_config(e, gid, ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	snprintf(out, sizeof(out), "%s/sockmeshd.sock", e->run_dir);
	ASSERT_EQ(stat(out, &st), 0, "control socket");
	ASSERT_EQ(st.st_gid, RUN_GID, "the socket's group is run_group");
	ASSERT_EQ(st.st_mode & 0777, 0660, "the socket is group-writable");
	ASSERT_EQ(stat(e->run_dir, &st), 0, "run_dir");
	ASSERT_EQ(st.st_mode & 0777, 0710, "run_dir: the group may enter");

	{
		char *argv[] = {
			bin,  "run",	 "-c", e->conf,
			"--", "/bin/sh", "-c", "id -u; cat /proc/self/cgroup",
			NULL};

		ASSERT_EQ(run_as(RUN_UID, true, out, sizeof(out), argv), 0,
			  "a member runs sockmesh run");
		snprintf(want, sizeof(want), "%d\n", RUN_UID);
		ASSERT_STR_HAS(out, want, "the command runs as the user");
		snprintf(want, sizeof(want), "0::/%s\n", e->cg_rel);
		ASSERT_STR_HAS(out, want, "the command runs in the cgroup");
	}
	{
		char *argv[] = {bin, "run", "-c",   e->conf, "--",
				pp,  "100", "1000", NULL};

		if (!ASSERT_EQ(env_counters(e, &c0, &sockets), 0, "counters"))
			return;
		ASSERT_EQ(run_as(RUN_UID, true, out, sizeof(out), argv), 0,
			  "a member's ping-pong");
		ASSERT_STR_HAS(out, "100 x 1000 bytes verified", "exact bytes");
		if (!ASSERT_EQ(env_counters(e, &c1, &sockets), 0, "counters"))
			return;
		ASSERT_EQ(c1.sockets_added - c0.sockets_added, 2,
			  "its sockets entered the map");
		ASSERT_EQ(c1.bytes_redirected - c0.bytes_redirected, 200000,
			  "its bytes were redirected, every one");
	}
	{
		/* the config where anyone can read it, as /etc/sockmesh's */
		char conf[PATH_MAX], cmd[2 * PATH_MAX + 16];
		char *argv[] = {bin,  "run",	   "-c", conf,
				"--", "/bin/true", NULL};
		int rc;

		snprintf(conf, sizeof(conf), "/tmp/%s.ini", e->name);
		snprintf(cmd, sizeof(cmd), "cp %s %s", e->conf, conf);
		rc = system(cmd)
			     ? -1
			     : run_as(OTHER_UID, false, out, sizeof(out), argv);
		unlink(conf);
		ASSERT_EQ(rc, 1, "a user outside run_group is refused");
		ASSERT_STR_HAS(out, "may not use sockmeshd's control socket",
			       "says why");
		ASSERT_STR_HAS(out, "run_group", "names the key");
	}
	{
		char *argv[] = {bin, "reload", "-c", e->conf, NULL};

		ASSERT_EQ(run_as(RUN_UID, true, out, sizeof(out), argv) == 0, 0,
			  "a member may not reload");
		ASSERT_STR_HAS(out, "needs root", "says why");
	}
	{
		char *argv[] = {bin, "unload", "-c", e->conf, NULL};

		ASSERT_TRUE(run_as(RUN_UID, true, out, sizeof(out), argv) != 0,
			    "a member may not unload");
		ASSERT_TRUE(env_sockops_attached(e) == 1, "still attached");
	}
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "root still reloads");
}

/* Under sudo, the command runs as the user who ran sudo, unless
 * --as-root. */
TEST(run_under_sudo_drops_to_the_user)
{
	char bin[PATH_MAX], out[8192], want[256], uid[16];
	char *argv[] = {
		bin,  "run",	 "-c", e->conf,
		"--", "/bin/sh", "-c", "id -u; id -G; cat /proc/self/cgroup",
		NULL};
	char *argv_root[] = {bin,  "run",     "-c", e->conf, "--as-root",
			     "--", "/bin/sh", "-c", "id -u", NULL};

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	if (!ASSERT_EQ(env_write_config(e, "", ""), 0, "config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return;
	snprintf(uid, sizeof(uid), "%d", RUN_UID);
	setenv("SUDO_UID", uid, 1);
	setenv("SUDO_GID", uid, 1);
	ASSERT_EQ(env_run(out, sizeof(out), argv), 0, "sudo sockmesh run");
	snprintf(want, sizeof(want), "%d\n%d\n", RUN_UID, RUN_UID);
	ASSERT_STR_HAS(out, want, "runs as SUDO_UID, with SUDO_GID only");
	snprintf(want, sizeof(want), "0::/%s\n", e->cg_rel);
	ASSERT_STR_HAS(out, want, "in the accelerated cgroup");
	ASSERT_EQ(env_run(out, sizeof(out), argv_root), 0, "--as-root");
	ASSERT_TRUE(!strcmp(out, "0\n"), "--as-root keeps root (id -u: 0)");
	unsetenv("SUDO_UID");
	unsetenv("SUDO_GID");
}

/* --- a systemd unit's cgroup -------------------------------------------- */

/* Wait (a guard, not a timing check) until @path is attached or not. */
static bool wait_attached(const char *path, int want)
{
	for (int k = 0; k < 3000; k++) {
		if ((env_sockops_attached_at(path) > 0) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* `sockmesh run -- pingpong` in @cg: every byte redirected. */
static void pingpong_in(struct env *e, const char *cg, const char *what)
{
	char bin[PATH_MAX], pp[PATH_MAX], out[4096];
	struct sm_counters c0, c1;
	long sockets;
	char *argv[] = {bin,  "run", "-c",  e->conf, "--cgroup", (char *)cg,
			"--", pp,    "100", "1000",  NULL};

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	snprintf(pp, sizeof(pp), "%s/tests/pingpong", e->build);
	if (!ASSERT_EQ(env_counters(e, &c0, &sockets), 0, "counters"))
		return;
	ASSERT_EQ(env_run(out, sizeof(out), argv), 0, what);
	ASSERT_STR_HAS(out, "100 x 1000 bytes verified", what);
	if (!ASSERT_EQ(env_counters(e, &c1, &sockets), 0, "counters"))
		return;
	ASSERT_EQ(c1.bytes_redirected - c0.bytes_redirected, 200000, what);
}

/*
 * cgroups = .../app.service: a systemd unit's cgroup. sockmeshd does not
 * create it; it attaches when systemd makes it (here: the test, as
 * systemd does, with mkdir), again when a restart makes it anew, and
 * leaves it where it is when it stops.
 */
/* The daemon's log so far, into @log. */
static void read_log(struct env *e, char *log, size_t len)
{
	int fd = open(e->log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, log, len - 1) : -1;

	log[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Has the daemon logged @what (within 30 s)? */
static bool wait_log(struct env *e, const char *what)
{
	static char log[65536];

	for (int k = 0; k < 3000; k++) {
		read_log(e, log, sizeof(log));
		if (strstr(log, what))
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * sockmeshd on a config that names only @cg, a systemd unit's cgroup below
 * the test's own (which exists, as system.slice does); 0 once it runs.
 */
static int start_for_unit(struct env *e, const char *cg)
{
	FILE *f = fopen(e->conf, "w");

	if (f) {
		fprintf(f,
			"[daemon]\npin_dir = %s\nrun_dir = %s\nmetrics = off\n"
			"[accelerate]\ncgroups = %s\n",
			e->pin_dir, e->run_dir, cg);
		fclose(f);
	}
	if (!ASSERT_TRUE(f, "config") ||
	    !ASSERT_TRUE(!mkdir(e->cg_path, 0755) || errno == EEXIST,
			 "the parent slice") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return -1;
	return 0;
}

TEST(systemd_unit_cgroup_waited_for_and_attached_again)
{
	char cg[256], path[PATH_MAX], log[16384];

	snprintf(cg, sizeof(cg), "%s/app.service", e->cg_rel);
	snprintf(path, sizeof(path), "%s/app.service", e->cg_path);
	/* the slice exists, as system.slice does */
	if (start_for_unit(e, cg))
		return;
	ASSERT_TRUE(access(path, F_OK) != 0, "the unit's cgroup not created");
	read_log(e, log, sizeof(log));
	ASSERT_STR_HAS(log, "it is systemd's", "the log says it waits");

	/* the unit starts: systemd makes its cgroup */
	if (!ASSERT_EQ(mkdir(path, 0755), 0, "mkdir, as systemd"))
		return;
	ASSERT_TRUE(wait_attached(path, 1), "attached once it exists");
	pingpong_in(e, cg, "ping-pong in the unit's cgroup");

	/* the unit restarts: the cgroup goes and comes back, a new one */
	ASSERT_EQ(rmdir(path), 0, "rmdir, as systemd at stop");
	if (!ASSERT_EQ(mkdir(path, 0755), 0, "mkdir, as systemd at start"))
		return;
	ASSERT_TRUE(wait_attached(path, 1), "attached to the new cgroup");
	pingpong_in(e, cg, "ping-pong after the restart");

	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "stop sockmeshd");
	ASSERT_EQ(access(path, F_OK), 0, "the unit's cgroup left in place");
}

/*
 * A template unit's instance (postgresql@15-main.service) lives in a
 * slice systemd makes with the first instance and keeps until the slice
 * is stopped: sockmeshd watches every directory on the path that exists
 * and follows the path as systemd makes and removes them.
 */
TEST(systemd_template_slice_made_with_its_first_unit)
{
	char cg[256], slice[PATH_MAX], path[PATH_MAX], out[8192], log[32768],
		want[512];

	snprintf(cg, sizeof(cg), "%s/system-app.slice/app@1.service",
		 e->cg_rel);
	snprintf(slice, sizeof(slice), "%s/system-app.slice", e->cg_path);
	snprintf(path, sizeof(path), "%s/app@1.service", slice);
	if (start_for_unit(e, cg))
		return;
	ASSERT_TRUE(access(slice, F_OK) != 0, "the template's slice not made");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status");
	snprintf(want, sizeof(want),
		 "waiting:  (systemd's: attached when "
		 "their unit starts)\n  /%s\n",
		 cg);
	ASSERT_STR_HAS(out, want, "status names the cgroup it waits for");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL),
		0, "status --json");
	snprintf(want, sizeof(want), "\"waiting\": [\"/%s\"]", cg);
	ASSERT_STR_HAS(out, want, "--json lists it under waiting");

	/* the first instance starts: the slice, then its cgroup, at once */
	if (!ASSERT_EQ(mkdir(slice, 0755), 0, "mkdir the slice, as systemd") ||
	    !ASSERT_EQ(mkdir(path, 0755), 0, "mkdir the unit, as systemd"))
		return;
	ASSERT_TRUE(wait_attached(path, 1), "attached, without a reload");
	pingpong_in(e, cg, "ping-pong in the instance's cgroup");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL),
		0, "status --json");
	ASSERT_STR_HAS(out, "\"waiting\": []", "no longer waiting");

	/*
	 * The instance stops (systemd keeps its slice), later the slice is
	 * stopped too: each removal seen before the next step. A cgroup that
	 * goes gets no event of its own, only its parent does.
	 */
	ASSERT_EQ(rmdir(path), 0, "rmdir the unit");
	snprintf(want, sizeof(want), "cgroup /%s (id ", cg);
	ASSERT_TRUE(wait_log(e, want), "the log says the unit's cgroup went");
	ASSERT_EQ(rmdir(slice), 0, "rmdir the slice");
	ASSERT_TRUE(wait_log(e, "cgroup system-app.slice was removed"),
		    "the log says the slice went");
	if (!ASSERT_EQ(mkdir(slice, 0755), 0, "mkdir the slice again") ||
	    !ASSERT_EQ(mkdir(path, 0755), 0, "mkdir the unit again"))
		return;
	ASSERT_TRUE(wait_attached(path, 1), "attached to the new cgroup");
	pingpong_in(e, cg, "ping-pong after the slice came back");
	read_log(e, log, sizeof(log));
	ASSERT_STR_HAS(log, "is gone: its attachment released",
		       "the log says it is gone, not unconfigured");
	ASSERT_TRUE(!strstr(log, "no longer configured"),
		    "nothing said to be unconfigured");

	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "stop sockmeshd");
	ASSERT_EQ(access(path, F_OK), 0, "the instance's cgroup left");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* harness.c - the runner, the private environment of a test, traffic. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "rundir.h"
#include "pins.h"
#include "harness.h"

/* TEST_TIMEOUT: seconds, then the test's processes are killed
 * (SM_TEST_TIMEOUT in the environment sets another). */
#define TESTS_MAX    128
#define TEST_TIMEOUT 240
#define EXIT_SKIP    77 /* a test's exit status after env_skip() */

static struct {
	const char *name;
	test_fn fn;
} tests[TESTS_MAX];
static int n_tests;

void register_test(const char *name, test_fn fn)
{
	if (n_tests < TESTS_MAX) {
		tests[n_tests].name = name;
		tests[n_tests++].fn = fn;
	}
}

bool check(struct env *e, bool ok, const char *file, int line, const char *fmt,
	   ...)
{
	va_list ap;

	if (ok)
		return true;
	e->failures++;
	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return false;
}

void env_skip(struct env *e, const char *fmt, ...)
{
	va_list ap;

	e->skipped = 1;
	fprintf(stderr, "    skipped: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool env_has_cg_counters(struct env *e)
{
	if (env_feat(e) & SM_FEAT_CG_BTF)
		return true;
	env_skip(e, "per-cgroup counters are off: the kernel lacks the "
		    "socket's cgroup in BTF (sock_cgroup_data.cgroup, 5.15)");
	return false;
}

bool env_window_at_writes(struct env *e)
{
	return !(env_feat(e) & (SM_FEAT_KERN_CTX | SM_FEAT_RECV_TRACE));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- config and daemon ------------------------------------------------- */

/*
 * The tests' small-write gap (small_write_gap_us), unless a test sets its
 * own: a small-write stream is what the scenario writes in a loop, and a
 * loop under emulation, or on a busy CI machine, writes 1 KiB a few hundred
 * microseconds apart, past the default 50. The rule is the same at any
 * gap; what a test that wants it to trip must control is that its writes
 * come closer together than the gap, and 2 ms holds on any machine.
 */
#define TEST_SMALL_WRITE_GAP_US 2000

int env_write_config(struct env *e, const char *daemon_extra, const char *extra)
{
	FILE *f = fopen(e->conf, "w");

	if (!f)
		return -errno;
	fprintf(f,
		"[daemon]\npin_dir = %s\nrun_dir = %s\nmetrics = off\n%s\n"
		"[accelerate]\ncgroups = %s\n%s\n",
		e->pin_dir, e->run_dir, daemon_extra, e->cg_rel, extra);
	if (!strstr(extra, "small_write_gap_us"))
		fprintf(f, "small_write_gap_us = %d\n",
			TEST_SMALL_WRITE_GAP_US);
	/* the rules' tests use blocking sockets: strict would keep them on
	 * TCP; the strict cases say compat = strict */
	if (!strstr(extra, "compat"))
		fprintf(f, "compat = fast\n");
	return fclose(f) ? -errno : 0;
}

static pid_t read_pid_file(const struct env *e)
{
	char path[PATH_MAX + 32];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->run_dir, SM_PID_FILE);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

int env_start_daemon(struct env *e)
{
	char bin[PATH_MAX];
	pid_t pid;
	int status, fd;

	snprintf(bin, sizeof(bin), "%s/sockmeshd", e->build);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "-c", e->conf, (char *)NULL);
		_exit(127);
	}
	/* a guard only: under emulation a start under load took over 10 s */
	for (double t0 = now(); now() - t0 < 60;) {
		if (read_pid_file(e) == pid) {
			e->daemon = pid;
			return 0;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr,
				"    sockmeshd exited early (status %d)\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			return -ECHILD;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -ETIMEDOUT;
}

int env_stop_daemon(struct env *e, int sig)
{
	int status = 0, ret;

	if (e->daemon <= 0)
		return -1;
	kill(e->daemon, sig);
	ret = env_wait(e->daemon, 10);
	if (ret < 0) {
		kill(e->daemon, SIGKILL);
		waitpid(e->daemon, &status, 0);
	}
	e->daemon = 0;
	return ret;
}

int env_run(char *out, size_t len, char *const argv[])
{
	int pfd[2], status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (!pid) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	while (used + 1 < len &&
	       (n = read(pfd[0], out + used, len - used - 1)) > 0)
		used += n;
	out[used] = '\0';
	/* drain what did not fit */
	while (read(pfd[0], &(char){0}, 1) > 0)
		;
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

long long env_json_num(const char *json, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(json, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

int env_counters(struct env *e, struct sm_counters *c, long *sockets)
{
	char bin[PATH_MAX], out[8192];
	char *argv[] = {bin, "status", "-c", e->conf, "--json", NULL};

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	if (env_run(out, sizeof(out), argv)) {
		fprintf(stderr, "    sockmesh status failed: %s\n", out);
		return -1;
	}
#define GET(name, ...) c->name = env_json_num(out, #name);
	SM_COUNTERS(GET)
#undef GET
	if (sockets)
		*sockets = env_json_num(out, "sockets");
	return 0;
}

int env_cli(struct env *e, char *out, size_t len, const char *cmd, ...)
{
	char bin[PATH_MAX];
	char *argv[16] = {bin, (char *)cmd, "-c", e->conf};
	int n = 4;
	va_list ap;

	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	va_start(ap, cmd);
	while (n < 15 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return env_run(out, len, argv);
}

int env_ctl(struct env *e, const char *req, char *out, size_t len)
{
	return sm_ctl_request(e->run_dir, req, out, len);
}

int env_counters_fd(struct env *e)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s/%s", e->pin_dir, SM_PIN_LAYOUT,
		 SM_MAP_COUNTERS);
	return bpf_obj_get(path);
}

__u32 env_feat(struct env *e)
{
	char path[PATH_MAX + 32];
	struct sm_ctl ctl = {};
	__u32 zero = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/sm_ctl", e->pin_dir, SM_PIN_LAYOUT);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_map_lookup_elem(fd, &zero, &ctl))
		ctl.feat = 0;
	close(fd);
	return ctl.feat;
}

int env_read_counters_fd(int fd, struct sm_counters *c)
{
	return sm_counters_read(fd, c) ? -1 : 0;
}

int env_sockops_attached(struct env *e)
{
	return env_sockops_attached_at(e->cg_path);
}

int env_sockops_attached_at(const char *cg_path)
{
	__u32 cnt = 0;
	int fd = open(cg_path, O_RDONLY | O_DIRECTORY), ret;

	if (fd < 0)
		return -1;
	ret = bpf_prog_query(fd, BPF_CGROUP_SOCK_OPS, 0, NULL, NULL, &cnt);
	close(fd);
	return ret ? -1 : (int)cnt;
}

/* --- processes --------------------------------------------------------- */

static int lo_up(void)
{
	struct ifreq ifr = {.ifr_name = "lo"};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		ret = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!ret && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int env_join_cgroup(struct env *e)
{
	char path[PATH_MAX + 16], buf[32];
	int fd, n, ret;

	snprintf(path, sizeof(path), "%s/cgroup.procs", e->cg_path);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	ret = write(fd, buf, n) == n ? 0 : -errno;
	close(fd);
	return ret;
}

static int join_cgroup_at(const char *cg)
{
	char path[PATH_MAX + 16], buf[32];
	int fd, n, ret;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	ret = write(fd, buf, n) == n ? 0 : -errno;
	close(fd);
	return ret;
}

pid_t env_spawn_at(struct env *e, const char *cg, int flags, int (*fn)(void *),
		   void *arg)
{
	pid_t pid = fork();

	(void)e;
	if (pid)
		return pid;
	if (join_cgroup_at(cg)) {
		perror("    join cgroup");
		_exit(100);
	}
	if (flags & NEW_NETNS) {
		if (unshare(CLONE_NEWNET) || lo_up()) {
			perror("    new netns");
			_exit(101);
		}
	}
	_exit(fn(arg));
}

pid_t env_spawn(struct env *e, int flags, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if ((flags & IN_CGROUP) && env_join_cgroup(e)) {
		perror("    join cgroup");
		_exit(100);
	}
	if (flags & NEW_NETNS) {
		if (unshare(CLONE_NEWNET) || lo_up()) {
			perror("    new netns");
			_exit(101);
		}
	}
	_exit(fn(arg));
}

int env_wait(pid_t pid, int timeout_s)
{
	int status;

	for (double t0 = now(); now() - t0 < timeout_s;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		usleep(5000);
	}
	return -1;
}

/* --- traffic ----------------------------------------------------------- */

static inline unsigned char pattern(uint64_t off, unsigned seed)
{
	uint32_t x = (uint32_t)off * 2654435761u + seed * 40503u;

	return (unsigned char)((x >> 24) ^ (off >> 32));
}

struct pump {
	int fd;
	size_t size; /* bytes to send, or to expect (SIZE_MAX: until EOF) */
	unsigned seed;
	int stop_fd; /* sender: stop when readable */
	size_t done;
	int ok;
	long eagain; /* blocking recv() that returned EAGAIN (kernel gap) */
	/* sender: the receiving pump, to stay within PUMP_WINDOW of it */
	const struct pump *reader;
	int window; /* receiver: send a window update every PUMP_WINDOW / 4 */
};

/*
 * Like an application with a flow-control window of its own (HTTP/2, gRPC),
 * a sender stays within PUMP_WINDOW bytes of its reader. Without it a
 * sender that outpaces a verifying reader is, correctly, moved to the stack
 * once its receiver is SM_RCVBUF_FLOOR behind (test_bulk.c tests that), and
 * the tests that check that a stream stays redirected would test nothing.
 */
#define PUMP_WINDOW (1 << 20)

static void pump_wait_window(const struct pump *p)
{
	char upd[64];

	while (p->reader && p->ok &&
	       p->done - __atomic_load_n(&p->reader->done, __ATOMIC_ACQUIRE) >
		       PUMP_WINDOW)
		usleep(50);
	/* the window updates, read as they come (never blocking) */
	while (p->reader && p->reader->window &&
	       recv(p->fd, upd, sizeof(upd), MSG_DONTWAIT) > 0)
		;
}

static void *send_thread(void *arg)
{
	struct pump *p = arg;
	static const size_t max_chunk = 256 * 1024;
	unsigned char *buf = malloc(max_chunk);
	uint64_t k = 0;

	p->ok = buf != NULL;
	while (p->ok && p->done < p->size) {
		/* streams write >= SM_BULK_MSG_MAX: they stay redirected */
		size_t chunk = p->stop_fd >= 0
				       ? SM_BULK_MSG_MAX +
						 (k++ * 7919) % SM_BULK_MSG_MAX
				       : 1 + (k++ * 7919) % max_chunk;

		if (p->stop_fd >= 0 &&
		    poll(&(struct pollfd){.fd = p->stop_fd, .events = POLLIN},
			 1, 0) > 0)
			break;
		if (chunk > p->size - p->done)
			chunk = p->size - p->done;
		pump_wait_window(p);
		for (size_t i = 0; i < chunk; i++)
			buf[i] = pattern(p->done + i, p->seed);
		for (size_t sent = 0; sent < chunk;) {
			ssize_t n = send(p->fd, buf + sent, chunk - sent,
					 MSG_NOSIGNAL);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "    send at %zu: %s\n",
					p->done + sent, strerror(errno));
				p->ok = 0;
				break;
			}
			sent += n;
		}
		p->done += chunk;
	}
	shutdown(p->fd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *recv_thread(void *arg)
{
	struct pump *p = arg;
	unsigned char buf[65536];
	uint64_t k = 0;
	size_t updated = 0;

	p->ok = 1;
	for (;;) {
		size_t want = 1 + (k++ * 104729) % sizeof(buf);

		/*
		 * A window update on the wire, as HTTP/2 and gRPC receivers
		 * send them: without one, a kernel without
		 * bpf_cast_to_kern_ctx cannot tell a reader that keeps up
		 * from one that does not read (docs/datapath.md, "Kernels").
		 */
		if (p->window && p->done - updated >= PUMP_WINDOW / 4) {
			send(p->fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			updated = p->done;
		}
		ssize_t n = recv(p->fd, buf, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * tcp_bpf_recvmsg() returns EAGAIN from a *blocking* socket
		 * when a wake-up without data (a state change, write space for
		 * a sender on the same socket) ends its single wait; see
		 * docs/datapath.md. Robust code polls and retries.
		 */
		if (n < 0 && errno == EAGAIN) {
			p->eagain++;
			poll(&(struct pollfd){.fd = p->fd, .events = POLLIN}, 1,
			     -1);
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "    recv at %zu: %s\n", p->done,
				strerror(errno));
			p->ok = 0;
			return NULL;
		}
		if (!n)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != pattern(p->done + i, p->seed)) {
				fprintf(stderr,
					"    byte %zu differs: got 0x%02x, sent 0x%02x\n",
					p->done + i, buf[i],
					pattern(p->done + i, p->seed));
				p->ok = 0;
				return NULL;
			}
		}
		__atomic_store_n(&p->done, p->done + n, __ATOMIC_RELEASE);
	}
	if (p->size != SIZE_MAX && p->done != p->size) {
		fprintf(stderr, "    received %zu bytes, expected %zu\n",
			p->done, p->size);
		p->ok = 0;
	}
	return NULL;
}

static void loopback(int family, int port, struct sockaddr_storage *ss,
		     socklen_t *len, int any)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = any ? in6addr_any : in6addr_loopback;
		*len = sizeof(*sin6);
	}
}

/* A connected pair on loopback as @x describes; 0 or -1. */
static int make_pair(const struct xfer *x, int *cfd, int *afd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, lfd,
	    cfam = x->client_family ? x->client_family : x->family;

	*cfd = *afd = -1;
	lfd = socket(x->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		goto err;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (x->family == AF_INET6)
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &x->v6only,
			   sizeof(x->v6only));
	loopback(x->family, x->port, &ss, &len,
		 x->family == AF_INET6 && !x->v6only);
	if (bind(lfd, (struct sockaddr *)&ss, len) || listen(lfd, 16))
		goto err;
	len = sizeof(ss);
	getsockname(lfd, (struct sockaddr *)&ss, &len);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

	*cfd = socket(cfam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cfd < 0)
		goto err;
	if (x->client_port) {
		setsockopt(*cfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		loopback(cfam, x->client_port, &ss, &len, 0);
		if (bind(*cfd, (struct sockaddr *)&ss, len))
			goto err;
	}
	loopback(cfam, port, &ss, &len, 0);
	if (connect(*cfd, (struct sockaddr *)&ss, len))
		goto err;
	*afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*afd < 0)
		goto err;
	close(lfd);
	return 0;
err:
	perror("    make_pair");
	if (lfd >= 0)
		close(lfd);
	if (*cfd >= 0)
		close(*cfd);
	return -1;
}

static void handshake(int fd)
{
	char c = 'r';

	if (fd <= 0) /* 0: not asked for */
		return;
	if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1)
		perror("    handshake");
}

int xfer_run(struct xfer *x)
{
	struct pump s1 = {}, s2 = {}, r1 = {}, r2 = {};
	pthread_t t[4];
	int cfd, afd;

	if (make_pair(x, &cfd, &afd))
		return 1;
	handshake(x->ready_fd);
	s1 = (struct pump){
		.fd = cfd, .size = x->size, .seed = x->seed, .stop_fd = -1};
	r1 = (struct pump){.fd = afd, .size = x->size, .seed = x->seed};
	s2 = (struct pump){
		.fd = afd, .size = x->size, .seed = x->seed + 1, .stop_fd = -1};
	r2 = (struct pump){.fd = cfd, .size = x->size, .seed = x->seed + 1};
	s1.reader = &r1;
	s2.reader = &r2;
	pthread_create(&t[0], NULL, send_thread, &s1);
	pthread_create(&t[1], NULL, recv_thread, &r1);
	pthread_create(&t[2], NULL, send_thread, &s2);
	pthread_create(&t[3], NULL, recv_thread, &r2);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	close(cfd);
	close(afd);
	x->eagain = r1.eagain + r2.eagain;
	if (x->eagain)
		fprintf(stderr, "    %ld blocking recv() returned EAGAIN\n",
			x->eagain);
	if (!(s1.ok && s2.ok && r1.ok && r2.ok))
		fprintf(stderr, "    xfer of %zu bytes each way failed\n",
			x->size);
	return !(s1.ok && s2.ok && r1.ok && r2.ok);
}

int xfer_child(void *arg)
{
	return xfer_run(arg);
}

int stream_child(void *arg)
{
	struct stream *st = arg;
	struct xfer x = {.family = AF_INET};
	struct pump s, r;
	pthread_t ts, tr;
	int cfd, afd;
	char c = 'r';

	if (make_pair(&x, &cfd, &afd))
		return 1;
	if (write(st->ready_fd, &c, 1) != 1)
		return 1;
	s = (struct pump){.fd = cfd,
			  .size = SIZE_MAX,
			  .seed = st->seed,
			  .stop_fd = st->stop_fd};
	r = (struct pump){
		.fd = afd, .size = SIZE_MAX, .seed = st->seed, .window = 1};
	s.reader = &r;
	pthread_create(&ts, NULL, send_thread, &s);
	pthread_create(&tr, NULL, recv_thread, &r);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	if (r.done != s.done) {
		fprintf(stderr, "    stream: sent %zu, received %zu\n", s.done,
			r.done);
		return 1;
	}
	fprintf(stderr, "    stream: %zu bytes exact\n", r.done);
	return !(s.ok && r.ok);
}

/* --- runner ------------------------------------------------------------ */

/* Is @pid a sockmeshd running on this test's config? */
static int is_our_daemon(const struct env *e, pid_t pid)
{
	char path[64], cmd[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		if (!cmd[i])
			cmd[i] = ' ';
	cmd[n] = '\0';
	return strstr(cmd, "sockmeshd") && strstr(cmd, e->conf);
}

/* Remove everything the test may have left, whatever state it is in. */
/* Kill what runs in the cgroups below @dir and remove them, @depth
 * levels down at most, deepest first. */
static void rm_cgroups_below(const char *dir, int depth)
{
	DIR *d = depth > 0 ? opendir(dir) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char sub[PATH_MAX + 300];
		int fd;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		rm_cgroups_below(sub, depth - 1);
		snprintf(sub, sizeof(sub), "%s/%s/cgroup.kill", dir,
			 de->d_name);
		fd = open(sub, O_WRONLY);
		if (fd >= 0) {
			if (write(fd, "1", 1) != 1)
				perror("cgroup.kill");
			close(fd);
		}
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		for (int i = 0; i < 100 && rmdir(sub) && errno == EBUSY; i++)
			usleep(10000);
	}
	if (d)
		closedir(d);
}

static void cleanup(struct env *e)
{
	char bin[PATH_MAX], out[4096], path[PATH_MAX + 32];
	char *argv[] = {bin, "unload", "-c", e->conf, NULL};
	pid_t pid = read_pid_file(e);
	int fd;

	if (pid > 0 && is_our_daemon(e, pid)) {
		kill(pid, SIGKILL);
		for (int i = 0; i < 100 && !kill(pid, 0); i++)
			usleep(10000);
	}
	/* processes left in the private cgroup are the test's own */
	snprintf(path, sizeof(path), "%s/cgroup.kill", e->cg_path);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			perror("cgroup.kill");
		close(fd);
	}
	snprintf(bin, sizeof(bin), "%s/sockmesh", e->build);
	if (access(e->conf, F_OK) == 0)
		env_run(out, sizeof(out), argv);
	rmdir(e->pin_dir);
	/* cgroups a test made below its own, deepest first */
	rm_cgroups_below(e->cg_path, 3);
	for (int i = 0; i < 100 && rmdir(e->cg_path) && errno == EBUSY; i++)
		usleep(10000);
	snprintf(path, sizeof(path), "rm -rf '%s'", e->run_dir);
	if (system(path))
		fprintf(stderr, "cleanup: %s failed\n", path);
}

static void print_log(const struct env *e)
{
	char line[1024];
	FILE *f = fopen(e->log, "r");

	if (!f)
		return;
	fprintf(stderr, "    --- sockmeshd log ---\n");
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "    | %s", line);
	fclose(f);
}

static int test_timeout(void)
{
	const char *v = getenv("SM_TEST_TIMEOUT");
	int t = v ? atoi(v) : 0;

	return t > 0 ? t : TEST_TIMEOUT;
}

static int selected(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return 1;
	for (int i = first; i < argc; i++)
		if (strstr(name, argv[i]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *build = "build";
	const char *suite =
		strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char mnt[PATH_MAX];
	int first = 1, passed = 0, failed = 0, skipped = 0;

	if (argc > 2 && !strcmp(argv[1], "--build")) {
		build = argv[2];
		first = 3;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		fprintf(stderr,
			"integration tests load BPF programs and need root\n");
		printf("%s: 0 passed, 1 failed\n", suite);
		return 1;
	}
	if (sm_cgroup2_mount(mnt, sizeof(mnt))) {
		fprintf(stderr, "no cgroup2 hierarchy is mounted\n");
		printf("%s: 0 passed, 1 failed\n", suite);
		return 1;
	}
	for (int i = 0; i < n_tests; i++) {
		struct env e = {.build = build};
		double t0 = now();
		const char *verdict;
		pid_t pid;
		int status;

		if (!selected(tests[i].name, argc, argv, first))
			continue;
		snprintf(e.name, sizeof(e.name), "sockmesh-test-%d-%d",
			 getpid(), i);
		snprintf(e.cg_mnt, sizeof(e.cg_mnt), "%s", mnt);
		snprintf(e.cg_rel, sizeof(e.cg_rel), "%s", e.name);
		snprintf(e.cg_path, sizeof(e.cg_path), "%s/%s", mnt, e.name);
		snprintf(e.pin_dir, sizeof(e.pin_dir), "/sys/fs/bpf/%s",
			 e.name);
		snprintf(e.run_dir, sizeof(e.run_dir), "/tmp/%s", e.name);
		snprintf(e.conf, sizeof(e.conf), "%s/sockmesh.ini", e.run_dir);
		snprintf(e.log, sizeof(e.log), "%s/sockmeshd.log", e.run_dir);
		if (mkdir(e.run_dir, 0700)) {
			perror(e.run_dir);
			failed++;
			continue;
		}
		fflush(NULL);
		pid = fork();
		if (!pid) {
			setpgid(0, 0);
			tests[i].fn(&e);
			if (e.daemon > 0)
				env_stop_daemon(&e, SIGTERM);
			if (e.failures)
				print_log(&e);
			_exit(e.failures ? 1 : e.skipped ? EXIT_SKIP : 0);
		}
		setpgid(pid, pid);
		status = env_wait(pid, test_timeout());
		if (status < 0) {
			fprintf(stderr, "    timed out after %d s\n",
				test_timeout());
			kill(-pid, SIGKILL);
			waitpid(pid, NULL, 0);
			print_log(&e);
		}
		kill(-pid, SIGKILL); /* anything the test left running */
		cleanup(&e);
		if (status == 0)
			passed++;
		else if (status == EXIT_SKIP)
			skipped++;
		else
			failed++;
		verdict = status == EXIT_SKIP ? "skip" : status ? "FAIL" : "ok";
		printf("%-4s %s (%.1f s)\n", verdict, tests[i].name,
		       now() - t0);
	}
	/* ", K skipped" only when some were: the line stays as it was */
	if (skipped)
		printf("%s: %d passed, %d failed, %d skipped\n", suite, passed,
		       failed, skipped);
	else
		printf("%s: %d passed, %d failed\n", suite, passed, failed);
	return failed ? 1 : 0;
}

/* --- the daemon seen from /proc, and ports ---------------------------- */

int env_free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	if (!bind(fd, (struct sockaddr *)&sin, sizeof(sin)) &&
	    !getsockname(fd, (struct sockaddr *)&sin, &len))
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

int env_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

long env_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* conform.c - the differential runner and the socket helpers of the suite. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "conform.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif

/* --- observations ------------------------------------------------------ */

static struct obs *res_slot(struct result *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->o[i].name, name))
			return &r->o[i];
	if (r->n >= RES_OBS) {
		res_broken(r, "more than %d observations", RES_OBS);
		return NULL;
	}
	snprintf(r->o[r->n].name, sizeof(r->o[r->n].name), "%s", name);
	return &r->o[r->n++];
}

static void res_put(struct result *r, const char *name, long long v, int kind,
		    const char *note)
{
	struct obs *o = res_slot(r, name);

	if (!o)
		return;
	o->v = v;
	o->kind = kind;
	snprintf(o->note, sizeof(o->note), "%s", note ? note : "");
}

void res_same(struct result *r, const char *name, long long v)
{
	res_put(r, name, v, OBS_SAME, NULL);
}

void res_gap(struct result *r, const char *name, long long v, const char *note)
{
	res_put(r, name, v, OBS_GAP, note);
}

void res_info(struct result *r, const char *name, long long v)
{
	res_put(r, name, v, OBS_INFO, NULL);
}

void res_broken(struct result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->broken++)
		return; /* keep the first cause */
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

long long res_get(const struct result *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->o[i].name, name))
			return r->o[i].v;
	return -1;
}

static const struct obs *res_find(const struct result *r, const char *name)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->o[i].name, name))
			return &r->o[i];
	return NULL;
}

/* --- the differential runner ------------------------------------------- */

struct scen_ctx {
	scenario_fn fn;
	void *arg;
	struct result *r;
	int rlimit;
	int cp_req, cp_ack;
};

static int cp_req = -1, cp_ack = -1;

void scen_checkpoint(int n)
{
	unsigned char b = (unsigned char)n;

	if (cp_req < 0)
		return;
	if (write(cp_req, &b, 1) != 1 || read(cp_ack, &b, 1) != 1)
		perror("    checkpoint");
}

static int scen_child(void *p)
{
	struct scen_ctx *c = p;
	int ret;

	cp_req = c->cp_req;
	cp_ack = c->cp_ack;
	signal(SIGPIPE, SIG_IGN);
	if (c->rlimit > 0) {
		struct rlimit rl;

		/* without CAP_SYS_RESOURCE the hard limit is the ceiling */
		getrlimit(RLIMIT_NOFILE, &rl);
		if ((rlim_t)c->rlimit > rl.rlim_max &&
		    setrlimit(RLIMIT_NOFILE,
			      &(struct rlimit){c->rlimit, c->rlimit}) == 0)
			rl.rlim_max = c->rlimit;
		rl.rlim_cur = (rlim_t)c->rlimit < rl.rlim_max
				      ? (rlim_t)c->rlimit
				      : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			res_broken(c->r, "RLIMIT_NOFILE %d: %s", c->rlimit,
				   strerror(errno));
	}
	if (!c->r->broken) {
		ret = c->fn(c->r, c->arg);
		if (ret && !c->r->broken)
			res_broken(c->r, "scenario returned %d", ret);
	}
	return c->r->broken ? 1 : 0;
}

static int read_counters(int fd, struct sm_counters *c)
{
	memset(c, 0, sizeof(*c));
	return fd >= 0 ? env_read_counters_fd(fd, c) : -1;
}

static void counters_sub(struct sm_counters *d, const struct sm_counters *a,
			 const struct sm_counters *b)
{
#define SUB(name, ...) d->name = a->name - b->name;
	SM_COUNTERS(SUB)
#undef SUB
}

/* One run; 0 when the scenario finished (its result says how). */
static int run_one(struct env *e, int accel, scenario_fn fn, void *arg,
		   struct result *r, const struct diff_opts *o, double *secs)
{
	int req[2], ack[2], timeout = o && o->timeout_s ? o->timeout_s : 60;
	struct scen_ctx ctx = {.fn = fn,
			       .arg = arg,
			       .r = r,
			       .rlimit = o ? o->rlimit_nofile : 0};
	double t0 = now_s();
	int status = -1;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe2(req, O_CLOEXEC) || pipe2(ack, O_CLOEXEC)) {
		res_broken(r, "pipe: %s", strerror(errno));
		return -1;
	}
	ctx.cp_req = req[1];
	ctx.cp_ack = ack[0];
	fflush(NULL);
	pid = env_spawn(e, accel ? IN_CGROUP | NEW_NETNS : NEW_NETNS,
			scen_child, &ctx);
	close(req[1]);
	close(ack[0]);
	while (pid > 0) {
		struct pollfd pfd = {.fd = req[0], .events = POLLIN};
		unsigned char b;
		pid_t w;

		if (poll(&pfd, 1, 20) > 0 && read(req[0], &b, 1) == 1) {
			if (o && o->at_checkpoint)
				o->at_checkpoint(e, accel, b, o->cp_arg);
			if (write(ack[1], &b, 1) != 1)
				perror("    checkpoint ack");
		}
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (now_s() - t0 > timeout) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			res_broken(r, "timed out after %d s", timeout);
			break;
		}
	}
	close(req[0]);
	close(ack[1]);
	*secs = now_s() - t0;
	if (pid < 0) {
		res_broken(r, "fork: %s", strerror(errno));
		return -1;
	}
	if (!r->broken && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		res_broken(r, "scenario process ended with status 0x%x",
			   status);
	return 0;
}

int scen_run(struct env *e, int accel, scenario_fn fn, void *arg,
	     struct result *r, const struct diff_opts *o)
{
	struct result *shared;
	double secs;

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return -1;
	run_one(e, accel, fn, arg, shared, o, &secs);
	*r = *shared;
	munmap(shared, sizeof(*shared));
	return r->broken ? -1 : 0;
}

static int verbose(void)
{
	const char *v = getenv("SM_CONFORMANCE_VERBOSE");

	return v && *v && strcmp(v, "0");
}

static void print_table(const char *what, const struct result *p,
			const struct result *a, double tp, double ta)
{
	fprintf(stderr, "    [%s] plain (%.2f s) vs accelerated (%.2f s):\n",
		what, tp, ta);
	if (p->broken)
		fprintf(stderr, "      plain run broke: %s\n", p->why);
	if (a->broken)
		fprintf(stderr, "      accelerated run broke: %s\n", a->why);
	fprintf(stderr, "      %-32s %14s %14s\n", "observation", "plain",
		"accelerated");
	for (int pass = 0; pass < 2; pass++) {
		const struct result *r = pass ? a : p;

		for (int i = 0; i < r->n; i++) {
			const struct obs *x = &r->o[i];
			const struct obs *y = res_find(pass ? p : a, x->name);
			char pv[32], av[32];

			if (pass && y)
				continue; /* printed in the first pass */
			snprintf(pv, sizeof(pv), "%lld", pass ? 0 : x->v);
			snprintf(av, sizeof(av), "%lld",
				 pass ? x->v : (y ? y->v : 0));
			if (!y)
				snprintf(pass ? pv : av, sizeof(pv), "-");
			fprintf(stderr, "      %-32s %14s %14s%s\n", x->name,
				pv, av,
				x->kind == OBS_INFO ? "  (info)"
				: !y || y->v != x->v
					? (x->kind == OBS_GAP
						   ? "  <- differs (documented)"
						   : "  <- DIFFERS")
					: "");
		}
	}
	fprintf(stderr, "      %-32s %14d %14d\n", "blocking recv() EAGAIN",
		p->eagain_gap, a->eagain_gap);
}

/* Every counter that moved, so that a new one shows without an edit. */
static void print_counters(const struct sm_counters *c)
{
	static const char *const names[] = {
#define NAME(name, ...) #name,
		SM_COUNTERS(NAME)
#undef NAME
	};
	__u64 v[sizeof(names) / sizeof(names[0])];

	_Static_assert(sizeof(v) == sizeof(*c), "sm_counters: all __u64");
	memcpy(v, c, sizeof(v));
	fprintf(stderr, "      counters (accelerated run):");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (v[i])
			fprintf(stderr, " %s %llu", names[i],
				(unsigned long long)v[i]);
	fputc('\n', stderr);
}

void diff_check_bytes(struct env *e, const struct diff *d,
		      unsigned long long total)
{
	unsigned long long seen = d->da.bytes_redirected + d->da.bytes_passed;

	ASSERT_GT(d->da.bytes_redirected, 0, "redirected");
	if (seen != total)
		ASSERT_GT(d->da.rcvbuf_fallbacks + d->da.bulk_fallbacks, 0,
			  "counted bytes differ from those sent only after a "
			  "fallback");
}

int diff_run(struct env *e, const char *what, scenario_fn fn, void *arg,
	     struct diff *d, const struct diff_opts *o)
{
	struct result *res;
	struct sm_counters before, after, dp, da;
	double tp = 0, ta = 0;
	int fd = env_counters_fd(e), bad = 0, gaps = 0, show = verbose();
	long long nz = 0;

	res = mmap(NULL, 2 * sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_TRUE(res != MAP_FAILED, "mmap shared results")) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ASSERT_GE(fd, 0, "open the pinned counters");

	for (int k = 0; k < 2; k++) {
		int accel = o && o->accel_first ? !k : k;

		read_counters(fd, &before);
		run_one(e, accel, fn, arg, &res[accel], o, accel ? &ta : &tp);
		read_counters(fd, &after);
		counters_sub(accel ? &da : &dp, &after, &before);
	}
	if (fd >= 0)
		close(fd);

	bad += !check(e, !res[0].broken, __FILE__, __LINE__,
		      "[%s] plain run: %s", what, res[0].why);
	bad += !check(e, !res[1].broken, __FILE__, __LINE__,
		      "[%s] accelerated run: %s", what, res[1].why);
	for (int pass = 0; pass < 2; pass++) {
		const struct result *r = &res[pass], *other = &res[!pass];

		for (int i = 0; i < r->n; i++) {
			const struct obs *x = &r->o[i];
			const struct obs *y = res_find(other, x->name);

			if (x->kind == OBS_INFO || (pass && y))
				continue;
			if (x->kind == OBS_GAP) {
				if (!y || x->v != y->v) {
					gaps++;
					fprintf(stderr,
						"    [%s] documented difference: %s: plain %lld, accelerated %lld (%s)\n",
						what, x->name,
						pass ? (y ? y->v : -1) : x->v,
						pass ? x->v : (y ? y->v : -1),
						x->note);
				}
				continue;
			}
			if (y && y->v == x->v)
				continue;
			/* a mismatch only counts once the runs both finished */
			if (!res[0].broken && !res[1].broken) {
				long long pv = pass ? (y ? y->v : -1) : x->v;
				long long av = pass ? x->v : (y ? y->v : -1);

				bad += !check(
					e, 0, __FILE__, __LINE__,
					"[%s] %s: plain %lld, accelerated %lld%s",
					what, x->name, pv, av,
					y ? "" : " (only one run recorded it)");
			}
			show = 1;
		}
	}
	if (res[1].eagain_gap) {
		gaps++;
		fprintf(stderr,
			"    [%s] documented difference: %d blocking recv() returned EAGAIN (docs/datapath.md)\n",
			what, res[1].eagain_gap);
	}
	bad += !check(e, res[0].eagain_gap == 0, __FILE__, __LINE__,
		      "[%s] plain TCP: a blocking recv() returned EAGAIN",
		      what);
#define NZ(name, ...) nz |= dp.name;
	SM_COUNTERS(NZ)
#undef NZ
	bad += !check(e, nz == 0, __FILE__, __LINE__,
		      "[%s] the plain run moved sockmesh counters", what);
	bad += !check(e, da.redirect_errors == 0, __FILE__, __LINE__,
		      "[%s] accelerated run: %llu redirect errors", what,
		      (unsigned long long)da.redirect_errors);
	if (bad || show)
		print_table(what, &res[0], &res[1], tp, ta);
	if (show || bad)
		print_counters(&da);
	if (d) {
		d->plain = res[0];
		d->accel = res[1];
		d->dp = dp;
		d->da = da;
		d->gaps = gaps;
	}
	munmap(res, 2 * sizeof(*res));
	return bad ? -1 : 0;
}

int conf_start(struct env *e, const char *accel_extra)
{
	if (!ASSERT_EQ(env_write_config(e, "", accel_extra), 0,
		       "write config") ||
	    !ASSERT_EQ(env_start_daemon(e), 0, "start sockmeshd"))
		return -1;
	return 0;
}

/* Pin names of the maps, from the one table in sockmesh.h. */
enum {
#define MAP_IDX(idx, name) MAP_##idx,
	SM_MAPS(MAP_IDX)
#undef MAP_IDX
};
static const char *const map_names[] = {
#define MAP_NAME(idx, name) #name,
	SM_MAPS(MAP_NAME)
#undef MAP_NAME
};

int env_map_walk(struct env *e,
		 void (*fn)(const struct sm_key *k, int lost, void *arg),
		 void *arg)
{
	char path[PATH_MAX + 64];
	struct sm_key key, next;
	struct sm_flow flow;
	int map, flows, n = 0, ret;

	snprintf(path, sizeof(path), "%s/%s/%s", e->pin_dir, SM_PIN_LAYOUT,
		 map_names[MAP_SOCKHASH]);
	map = bpf_obj_get(path);
	if (map < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s/%s", e->pin_dir, SM_PIN_LAYOUT,
		 map_names[MAP_FLOWS]);
	flows = bpf_obj_get(path);
	if (flows < 0) {
		ret = -errno;
		close(map);
		return ret;
	}
	for (ret = bpf_map_get_next_key(map, NULL, &next); !ret;
	     ret = bpf_map_get_next_key(map, &key, &next)) {
		/* sm_conn_id() reads __u32 words: give it __u32 objects
		 * (reading a struct that way breaks strict aliasing) */
		_Alignas(struct sm_key) __u32 w[sizeof(next) / sizeof(__u32)];
		__u64 id;
		__u32 slot;

		memcpy(w, &next, sizeof(next));
		id = sm_conn_id((const struct sm_key *)w);
		slot = (__u32)id & (SM_FLOWS - 1);
		if (bpf_map_lookup_elem(flows, &slot, &flow))
			memset(&flow, 0, sizeof(flow));
		fn(&next, flow.conn != id, arg);
		key = next;
		n++;
	}
	close(flows);
	close(map);
	return n;
}

long env_sockets(struct env *e)
{
	struct sm_counters c;
	long sockets = -1;

	if (env_counters(e, &c, &sockets))
		return -1;
	return sockets;
}

/* --- sockets ----------------------------------------------------------- */

int sock_inq(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) ? -errno : n;
}

int wait_sent(int fd, int ms)
{
	double end = now_s() + ms / 1000.0;
	int n = 0;

	while (!ioctl(fd, SIOCOUTQ, &n) && n > 0) {
		if (now_s() > end)
			return -ETIMEDOUT;
		sleep_ms(1);
	}
	return 0;
}

/* The cgroup2 path of @pid ("0::/path" in /proc/PID/cgroup). */
static int cgroup_of(pid_t pid, char *out, size_t len)
{
	char path[64], line[600];
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(out, len, "%s", line + 3);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static int cgroup_enter(const char *cg_mnt, const char *rel)
{
	char path[PATH_MAX + 600];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s%s/cgroup.procs", cg_mnt, rel);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (dprintf(fd, "%d", (int)getpid()) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int cgroup_step_out(const char *cg_mnt, struct cg_hop *h)
{
	int ret = cgroup_of(getpid(), h->here, sizeof(h->here));

	if (!ret)
		ret = cgroup_of(getppid(), h->there, sizeof(h->there));
	if (ret || !strcmp(h->here, h->there))
		return ret;
	return cgroup_enter(cg_mnt, h->there);
}

int cgroup_step_back(const char *cg_mnt, const struct cg_hop *h)
{
	if (!strcmp(h->here, h->there))
		return 0;
	return cgroup_enter(cg_mnt, h->here);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) ? -errno : 0;
}

static socklen_t loopback(int family, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = in6addr_loopback;
		return sizeof(*s6);
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*s4);
}

static void set_bufs(int fd, int size)
{
	if (size <= 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

int tcp_listener(const struct pair_opt *o)
{
	int family = o->family ? o->family : AF_INET, one = 1, fd;
	struct sockaddr_storage ss;
	socklen_t len = loopback(family, o->port, &ss);

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	set_bufs(fd, o->bufsize); /* accepted sockets inherit them */
	if (o->rcvbuf_force > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->rcvbuf_force,
			   sizeof(o->rcvbuf_force));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4096)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int tcp_connect_to(int lfd, const struct pair_opt *o)
{
	int family = o->family ? o->family : AF_INET, one = 1, fd, err;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;

	if (getsockname(lfd, (struct sockaddr *)&ss, &len))
		return -errno;
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_bufs(fd, o->bufsize);
	if (o->zerocopy &&
	    setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)))
		goto err;
	if (o->client_port) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		len = loopback(family, o->client_port, &ss);
		if (bind(fd, (struct sockaddr *)&ss, len))
			goto err;
	}
	len = loopback(family, port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len))
		goto err;
	return fd;
err:
	err = -errno;
	close(fd);
	return err;
}

int tcp_pair(int *c, int *s, const struct pair_opt *o)
{
	int lfd = tcp_listener(o), ret;

	*c = *s = -1;
	if (lfd < 0)
		return lfd;
	ret = tcp_connect_to(lfd, o);
	if (ret < 0)
		goto out;
	*c = ret;
	ret = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (ret < 0) {
		ret = -errno;
		close(*c);
		*c = -1;
		goto out;
	}
	*s = ret;
	ret = 0;
	if (o->nonblock) {
		set_nonblock(*c, 1);
		set_nonblock(*s, 1);
	}
out:
	close(lfd);
	return ret;
}

int scen_pair(struct result *r, int *c, int *s, const struct pair_opt *o)
{
	static const struct pair_opt none;
	int ret = tcp_pair(c, s, o ? o : &none);

	if (ret)
		res_broken(r, "connect: %s", strerror(-ret));
	return ret;
}

/* --- bytes ------------------------------------------------------------- */

void pat_fill(unsigned char *buf, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(off + i, seed);
}

long pat_check(const unsigned char *buf, size_t len, uint64_t off,
	       unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i, seed))
			return (long)i;
	return -1;
}

uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

int send_pat(int fd, size_t len, uint64_t off, unsigned seed)
{
	unsigned char buf[65536];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t w;

		pat_fill(buf, n, off + done, seed);
		for (size_t s = 0; s < n; s += w) {
			w = send(fd, buf + s, n - s, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w < 0)
				return -errno;
		}
		done += n;
	}
	return 0;
}

ssize_t recv_exact(struct result *r, int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* the gap is a blocking socket's EAGAIN; a
			 * non-blocking one just has nothing yet (a slow
			 * machine's sender is late) */
			if (r && !(fcntl(fd, F_GETFL) & O_NONBLOCK))
				r->eagain_gap++;
			poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1,
			     1000);
			continue;
		}
		if (n < 0)
			return -errno;
		if (!n)
			break;
		got += n;
	}
	return got;
}

static void *reader_main(void *p)
{
	struct reader *rd = p;
	size_t chunk = rd->chunk ? rd->chunk : 65536;
	unsigned char *buf = malloc(chunk);

	rd->got = 0;
	rd->err = 0;
	rd->bad_at = -1;
	rd->eagain = 0;
	rd->hash = FNV_INIT;
	if (!buf) {
		rd->err = ENOMEM;
		return NULL;
	}
	if (rd->start_ms)
		sleep_ms(rd->start_ms);
	while (!rd->want || rd->got < rd->want) {
		size_t ask = rd->want && rd->want - rd->got < chunk
				     ? rd->want - rd->got
				     : chunk;
		ssize_t n = recv(rd->fd, buf, ask, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* as in recv_exact(): a blocking socket's only */
			rd->eagain += !(fcntl(rd->fd, F_GETFL) & O_NONBLOCK);
			poll(&(struct pollfd){.fd = rd->fd, .events = POLLIN},
			     1, 1000);
			continue;
		}
		if (n < 0) {
			rd->err = errno;
			break;
		}
		if (!n)
			break;
		if (rd->bad_at < 0) {
			long bad = pat_check(buf, n, rd->got, rd->seed);

			if (bad >= 0)
				rd->bad_at = rd->got + bad;
		}
		rd->hash = fnv(rd->hash, buf, n);
		rd->got += n;
		if (rd->delay_us)
			usleep(rd->delay_us);
	}
	rd->t_end = now_s();
	free(buf);
	return NULL;
}

void reader_start(struct reader *rd)
{
	pthread_create(&rd->tid, NULL, reader_main, rd);
}

void reader_join(struct reader *rd)
{
	pthread_join(rd->tid, NULL);
	if (rd->r)
		rd->r->eagain_gap += rd->eagain;
}

int err_class(long ret, int err)
{
	if (ret > 0)
		return 0;
	if (ret == 0)
		return 1;
	if (err == ECONNRESET || err == EPIPE)
		return 2;
	if (err == EAGAIN)
		return 3;
	return 4;
}

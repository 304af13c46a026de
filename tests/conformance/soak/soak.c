// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * soak - 10,000 accelerated connections for 10 minutes, each sending a
 * 64-byte heartbeat every second that its server echoes; sockmeshd is
 * restarted half-way. Every heartbeat must come back exact within 5 s, no
 * connection may break, the socket map must hold exactly the open sockets
 * all along (checked every minute) and be empty afterwards; no message may
 * fall back to the stack.
 *
 * Not part of `make test`. Build and run:
 *
 *   make build/tests/soak && build/tests/soak --build build
 *
 * Environment: SOAK_MINUTES (10), SOAK_CONNS (10000), SOAK_INTERVAL_MS
 * (1000), SOAK_PLAIN=1 (run the same on plain TCP first and compare).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conform.h"

#define HB	  64  /* heartbeat bytes: conn id, seq, pattern */
#define LATE_S	  5.0 /* an echo later than this is a failure */
#define CP_MINUTE 1   /* checkpoint: a minute passed */
#define CP_HALF	  2   /* checkpoint: half-way, restart sockmeshd */

struct soak_cfg {
	int minutes;
	int conns;
	int interval_ms;
};

struct conn {
	int c;
	unsigned seq; /* of the last heartbeat sent */
	int waiting;  /* its echo has not come back yet */
	double t_sent;
	unsigned char in[HB];
	int fill; /* a partial read */
};

static int env_int(const char *name, int def)
{
	const char *v = getenv(name);
	int n = v ? atoi(v) : 0;

	return n > 0 ? n : def;
}

static void hb_fill(unsigned char *b, unsigned id, unsigned seq)
{
	memcpy(b, &id, 4);
	memcpy(b + 4, &seq, 4);
	pat_fill(b + 8, HB - 8, seq, id);
}

/* Read what is there into @buf (filled up to *fill); 1 when a whole
 * heartbeat is in, 0 if not yet, -errno or -EPIPE at EOF. */
static int hb_read(int fd, unsigned char *buf, int *fill)
{
	ssize_t n = recv(fd, buf + *fill, HB - *fill, 0);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (!n)
		return -EPIPE;
	*fill += n;
	if (*fill < HB)
		return 0;
	*fill = 0;
	return 1;
}

struct server_stats {
	long accepted, echoed, errors;
};

/* The server process: accept, echo every heartbeat, until every
 * connection closed; its counts go back through @out. */
static void server(int lfd, int conns, int out)
{
	struct server_stats st = {0};
	struct epoll_event evs[256], ev = {.events = EPOLLIN};
	unsigned char(*buf)[HB] = calloc(conns + 64, HB);
	int *fill = calloc(conns + 64, sizeof(int));
	int ep = epoll_create1(EPOLL_CLOEXEC), closed = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (!buf || !fill || ep < 0)
		_exit(1);
	set_nonblock(lfd, 1);
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (closed < conns) {
		int n = epoll_wait(ep, evs, 256, 1000);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, ret;

			if (fd == lfd) {
				int s;

				while ((s = accept4(lfd, NULL, NULL,
						    SOCK_CLOEXEC |
							    SOCK_NONBLOCK)) >=
				       0) {
					if (s >= conns + 64) {
						st.errors++;
						close(s);
						continue;
					}
					ev.data.fd = s;
					epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
					st.accepted++;
				}
				continue;
			}
			ret = hb_read(fd, buf[fd], &fill[fd]);
			if (ret > 0) {
				if (send(fd, buf[fd], HB, MSG_NOSIGNAL) == HB)
					st.echoed++;
				else
					st.errors++;
			} else if (ret < 0) {
				st.errors += ret != -EPIPE;
				closed++;
				close(fd);
			}
		}
	}
	if (write(out, &st, sizeof(st)) != sizeof(st))
		_exit(1);
	_exit(0);
}

static int soak(struct result *r, void *arg)
{
	const struct soak_cfg *cfg = arg;
	struct pair_opt po = {0};
	struct epoll_event evs[256];
	struct server_stats sst = {0};
	struct conn *k = calloc(cfg->conns, sizeof(*k));
	long sent = 0, beats = 0, ok = 0, wrong = 0, late = 0, broken = 0;
	double t0, next_minute, end, max_rtt = 0, interval;
	int lfd, ep, half_done = 0, minute = 0, sp[2];
	pid_t srv;

	if (!k || pipe2(sp, O_CLOEXEC)) {
		res_broken(r, "calloc/pipe");
		free(k);
		return 1;
	}
	lfd = tcp_listener(&po);
	if (lfd < 0) {
		res_broken(r, "listen: %s", strerror(-lfd));
		free(k);
		return 1;
	}
	/* two processes, as a client and a server would be (and each within
	 * the file limit) */
	srv = fork();
	if (srv == 0) {
		close(sp[0]);
		server(lfd, cfg->conns, sp[1]);
	}
	close(sp[1]);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < cfg->conns; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

		k[i].c = tcp_connect_to(lfd, &po);
		if (k[i].c < 0) {
			res_broken(r, "connection %d: %s", i,
				   strerror(-k[i].c));
			kill(srv, SIGKILL);
			free(k);
			return 1;
		}
		set_nonblock(k[i].c, 1);
		epoll_ctl(ep, EPOLL_CTL_ADD, k[i].c, &ev);
	}
	close(lfd); /* the server holds its own */
	res_same(r, "connections", cfg->conns);
	fprintf(stderr, "    soak: %d connections open\n", cfg->conns);
	sleep_ms(500);		    /* the server accepts the last ones */
	scen_checkpoint(CP_MINUTE); /* minute 0: the map holds them all */

	interval = cfg->interval_ms / 1000.0;
	t0 = now_s();
	next_minute = t0 + 60;
	end = t0 + 60.0 * cfg->minutes;
	for (double t = t0; t < end; t = now_s()) {
		long due = (long)((t - t0) / interval * cfg->conns);
		int n;

		/* heartbeats due by now, spread evenly over the interval */
		for (; sent < due; sent++) {
			struct conn *c = &k[sent % cfg->conns];
			unsigned char b[HB];

			if (c->waiting) {
				if (t - c->t_sent > LATE_S) {
					late++;
					c->waiting = 0;
				}
				continue; /* skip a beat, do not pile up */
			}
			hb_fill(b, sent % cfg->conns, ++c->seq);
			if (send(c->c, b, HB, MSG_NOSIGNAL) != HB) {
				broken++;
				continue;
			}
			c->waiting = 1;
			c->t_sent = t;
			beats++;
		}
		n = epoll_wait(ep, evs, 256, 5);
		for (int i = 0; i < n; i++) {
			unsigned id = evs[i].data.u32;
			struct conn *c = &k[id];
			unsigned char want[HB];
			int ret = hb_read(c->c, c->in, &c->fill);

			if (ret > 0) {
				double rtt = now_s() - c->t_sent;

				hb_fill(want, id, c->seq);
				if (memcmp(want, c->in, HB) || !c->waiting)
					wrong++;
				else
					ok++;
				c->waiting = 0;
				if (rtt > max_rtt)
					max_rtt = rtt;
			} else if (ret < 0) {
				broken++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->c, NULL);
			}
		}
		if (!half_done && t - t0 > 30.0 * cfg->minutes) {
			half_done = 1;
			scen_checkpoint(CP_HALF);
		}
		if (t >= next_minute) {
			next_minute += 60;
			minute++;
			fprintf(stderr,
				"    soak: minute %d: %ld heartbeats back exact, %ld wrong, %ld late, %ld broken, max rtt %.1f ms\n",
				minute, ok, wrong, late, broken, max_rtt * 1e3);
			scen_checkpoint(CP_MINUTE);
		}
	}
	fprintf(stderr,
		"    soak: end: %ld heartbeats back exact, %ld wrong, %ld late, %ld broken, max rtt %.1f ms\n",
		ok, wrong, late, broken, max_rtt * 1e3);
	scen_checkpoint(CP_MINUTE); /* the end: the map still holds them all */
	for (int i = 0; i < cfg->conns; i++)
		close(k[i].c);
	if (read(sp[0], &sst, sizeof(sst)) != sizeof(sst))
		res_broken(r, "the server process did not report");
	waitpid(srv, NULL, 0);
	res_info(r, "heartbeats_exact", ok);
	res_same(r, "heartbeats_wrong", wrong);
	res_same(r, "heartbeats_late", late);
	res_same(r, "connections_broken", broken);
	/* all back but those still in flight at the end */
	res_same(r, "heartbeats_back", ok >= beats - cfg->conns);
	res_info(r, "heartbeats_sent", beats);
	res_same(r, "server_accepted", sst.accepted);
	res_same(r, "server_errors", sst.errors);
	res_info(r, "server_echoed", sst.echoed);
	res_info(r, "max_rtt_us", (long long)(max_rtt * 1e6));
	close(ep);
	close(sp[0]);
	free(k);
	return 0;
}

struct soak_state {
	const struct soak_cfg *cfg;
	int checks;
	int bad_sockets; /* checkpoints where the map did not hold them all */
	int restarted;
	int attached_after;
	struct sm_counters last;
};

static long slab_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void soak_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct soak_state *st = arg;
	struct sm_counters c;
	long sockets = -1;

	if (n == CP_HALF) {
		if (!accel)
			return;
		/* a restart must change nothing for live connections */
		env_stop_daemon(e, SIGTERM);
		st->restarted = env_start_daemon(e) == 0;
		st->attached_after = env_sockops_attached(e);
		fprintf(stderr,
			"    soak: sockmeshd restarted (%s), %d attachment(s)\n",
			st->restarted ? "ok" : "FAILED", st->attached_after);
		return;
	}
	env_counters(e, &c, &sockets);
	st->checks++;
	if (sockets != (accel ? 2L * st->cfg->conns : 0))
		st->bad_sockets++;
	fprintf(stderr,
		"    soak %s: %ld sockets in the map, +%llu msgs redirected, +%llu passed, misses %llu, bulk %llu, add failures %llu, Slab %ld kB\n",
		accel ? "accelerated" : "plain", sockets,
		(unsigned long long)(c.msgs_redirected -
				     st->last.msgs_redirected),
		(unsigned long long)(c.msgs_passed - st->last.msgs_passed),
		(unsigned long long)c.peer_misses,
		(unsigned long long)c.bulk_fallbacks,
		(unsigned long long)c.sockets_add_failed, slab_kb());
	st->last = c;
}

/* The harness kills a test after SM_TEST_TIMEOUT s: give the soak time. */
__attribute__((constructor)) static void soak_timeout(void)
{
	char buf[32];
	int minutes = env_int("SOAK_MINUTES", 10);
	int runs = getenv("SOAK_PLAIN") ? 2 : 1;

	snprintf(buf, sizeof(buf), "%d", runs * (minutes * 60 + 300) + 120);
	setenv("SM_TEST_TIMEOUT", buf, 0);
}

TEST(soak_heartbeat_10000_connections)
{
	struct soak_cfg cfg = {
		.minutes = env_int("SOAK_MINUTES", 10),
		.conns = env_int("SOAK_CONNS", 10000),
		.interval_ms = env_int("SOAK_INTERVAL_MS", 1000),
	};
	struct soak_state st = {.cfg = &cfg};
	struct diff_opts o = {.timeout_s = cfg.minutes * 60 + 300,
			      .at_checkpoint = soak_checkpoint,
			      .cp_arg = &st,
			      .rlimit_nofile = cfg.conns + 1024};
	char extra[64];
	struct diff d;

	fprintf(stderr,
		"    soak: %d connections, %d min, heartbeat every %d ms\n",
		cfg.conns, cfg.minutes, cfg.interval_ms);
	snprintf(extra, sizeof(extra), "max_sockets = %d",
		 2 * cfg.conns + 1024);
	if (conf_start(e, extra))
		return;
	if (getenv("SOAK_PLAIN")) {
		if (diff_run(e, "soak", soak, &cfg, &d, &o))
			return;
	} else {
		struct sm_counters before, after;

		env_counters(e, &before, NULL);
		if (!ASSERT_EQ(scen_run(e, 1, soak, &cfg, &d.accel, &o), 0,
			       "accelerated soak ran"))
			fprintf(stderr, "    %s\n", d.accel.why);
		env_counters(e, &after, NULL);
#define SUB(name, ...) d.da.name = after.name - before.name;
		SM_COUNTERS(SUB)
#undef SUB
		for (int i = 0; i < d.accel.n; i++)
			fprintf(stderr, "    %-32s %lld\n", d.accel.o[i].name,
				d.accel.o[i].v);
	}
	ASSERT_EQ(res_get(&d.accel, "connections"), cfg.conns,
		  "every connection opened");
	ASSERT_EQ(res_get(&d.accel, "server_accepted"), cfg.conns,
		  "every connection accepted");
	ASSERT_EQ(res_get(&d.accel, "server_errors"), 0,
		  "the server saw no error");
	ASSERT_EQ(res_get(&d.accel, "heartbeats_wrong"), 0, "no wrong echo");
	ASSERT_EQ(res_get(&d.accel, "heartbeats_late"), 0,
		  "no echo later than 5 s");
	ASSERT_EQ(res_get(&d.accel, "connections_broken"), 0,
		  "no connection broke");
	ASSERT_EQ(res_get(&d.accel, "heartbeats_back"), 1,
		  "every heartbeat but the last in flight came back");
	ASSERT_GT(st.checks, cfg.minutes, "the map was checked every minute");
	ASSERT_EQ(st.bad_sockets, 0,
		  "the map held exactly the open sockets at every check");
	ASSERT_TRUE(st.restarted, "sockmeshd restarted half-way");
	ASSERT_EQ(st.attached_after, 1, "one attachment after the restart");
	ASSERT_EQ(d.da.sockets_added, 2 * cfg.conns, "every socket added");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing fell back to the stack");
	ASSERT_EQ(d.da.redirect_errors, 0, "no redirect error");
	ASSERT_GT(d.da.msgs_redirected, 0, "redirected");
	ASSERT_EQ(env_sockets(e), 0, "the map is empty afterwards");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The short-connection rule (sockmesh.h, "Short connections"): a port whose
 * connections mostly close after a few messages is no longer accelerated,
 * one connection in SM_SHORT_PROBE aside; others are; short_conn_msgs = 0
 * and a reload turn it off. Every byte is checked on every connection,
 * accelerated or not.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define SHORT_MSG 100

struct phase {
	int port;      /* server port, in the child's namespace */
	int n;	       /* connections, one after the other */
	int exchanges; /* per connection: a message each way */
	int pause_ms;  /* sleep before the first one */
	int fresh;     /* a new listening socket even if the port is the same */
};

/* Phases run in one private netns; between two, the child writes 'r' to
 * @ready and waits for a byte on @go (the parent reads counters, reloads). */
struct plan {
	struct phase ph[3];
	int nph;
	int ready, go;
};

static int io_exact(int fd, char *buf, size_t len, int out)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = out ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
				: recv(fd, buf + done, len - done, 0);

		if (r > 0) {
			done += r;
			continue;
		}
		if (r == 0)
			return -1; /* EOF before the last byte */
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		/* a blocking recv() of a socket in the map can return EAGAIN */
		poll(&(struct pollfd){.fd = fd,
				      .events = out ? POLLOUT : POLLIN},
		     1, 1000);
	}
	return 0;
}

/* One connection: @exchanges request/echo rounds, then both close. */
static int one_conn(int lfd, const struct sockaddr_in *sin, int id,
		    int exchanges)
{
	char req[SHORT_MSG], got[SHORT_MSG];
	int c, s, ok = 1;

	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (const struct sockaddr *)sin, sizeof(*sin)))
		return -1;
	s = accept(lfd, NULL, NULL);
	if (s < 0) {
		close(c);
		return -1;
	}
	for (int x = 0; x < exchanges && ok; x++) {
		for (int i = 0; i < SHORT_MSG; i++)
			req[i] = (char)(id * 31 + x * 7 + i);
		ok = !io_exact(c, req, sizeof(req), 1) &&
		     !io_exact(s, got, sizeof(got), 0) &&
		     !memcmp(req, got, sizeof(req)) &&
		     !io_exact(s, got, sizeof(got), 1) &&
		     !io_exact(c, got, sizeof(got), 0) &&
		     !memcmp(req, got, sizeof(req));
	}
	/* the client closes first; it reaches TCP_CLOSE on the server's FIN */
	close(c);
	if (ok) {
		ok = recv(s, got, 1, 0) == 0;
		if (!ok && errno == EAGAIN)
			ok = poll(&(struct pollfd){.fd = s, .events = POLLIN},
				  1, 1000) == 1 &&
			     recv(s, got, 1, 0) == 0;
	}
	close(s);
	return ok ? 0 : -1;
}

static int listener(int port, struct sockaddr_in *sin)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	*sin = (struct sockaddr_in){.sin_family = AF_INET,
				    .sin_port = htons(port),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)sin, sizeof(*sin)) ||
	    listen(lfd, 16)) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	return lfd;
}

/*
 * The phases one after the other, a phase on the port of the one before
 * on the same listening socket unless it is @fresh; the last client's
 * TCP_CLOSE runs in softirq, so each phase ends with 20 ms to let it land.
 */
static int plan_child(void *arg)
{
	const struct plan *pl = arg;
	struct sockaddr_in sin;
	int lfd = -1, bad = 0;
	char b;

	for (int i = 0; i < pl->nph; i++) {
		const struct phase *p = &pl->ph[i];

		if (lfd < 0 || p->fresh || p->port != pl->ph[i - 1].port) {
			if (lfd >= 0)
				close(lfd);
			lfd = listener(p->port, &sin);
			if (lfd < 0)
				return 2;
		}
		if (p->pause_ms)
			usleep(p->pause_ms * 1000);
		for (int k = 0; k < p->n; k++)
			bad += one_conn(lfd, &sin, k, p->exchanges) != 0;
		usleep(20 * 1000);
		if (bad)
			break;
		if (pl->ready && i + 1 < pl->nph &&
		    (write(pl->ready, "r", 1) != 1 || read(pl->go, &b, 1) != 1))
			return 3;
	}
	close(lfd);
	return bad ? 1 : 0;
}

static int start(struct env *e, const char *extra)
{
	return ASSERT_EQ(env_write_config(e, "", extra), 0, "write config") &&
			       ASSERT_EQ(env_start_daemon(e), 0,
					 "start sockmeshd")
		       ? 0
		       : -1;
}

/* Wait for the child to finish a phase; 0, or its exit status. */
static int phase_done(pid_t pid, int ready)
{
	char b;

	if (read(ready, &b, 1) == 1)
		return 0;
	return env_wait(pid, 5);
}

TEST(short_connections_stop_being_accelerated)
{
	/*
	 * 48 connections of 40 exchanges (80 messages) on one port, then 72
	 * of one exchange (2 messages) on another: the first 32 short ones
	 * close and are counted, 7 in 8 of the next 40 are not accelerated.
	 */
	struct plan pl = {.ph = {{7460, 48, 40}, {7461, 72, 1}}, .nph = 1};
	const long total = 48 + 72;
	struct sm_counters c0, c1;
	char out[8192];

	if (start(e, ""))
		return;
	ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, plan_child, &pl),
			   60),
		  0, "48 long connections, bytes exact");
	ASSERT_EQ(env_counters(e, &c0, NULL), 0, "read counters");
	ASSERT_EQ(c0.short_skipped, 0, "long connections: none skipped");
	ASSERT_EQ(c0.sockets_added, 2 * 48, "all 48 accelerated");
	ASSERT_EQ(c0.msgs_redirected, 48 * 80, "every message redirected");

	pl.ph[0] = pl.ph[1];
	ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS, plan_child, &pl),
			   60),
		  0, "72 short connections, bytes exact");
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "read counters");
	/* 72 - 32 learning = 40 judged, of which one in 8 probes */
	ASSERT_GE(c1.short_skipped, 28, "the short port's connections skipped");
	ASSERT_GE(35, c1.short_skipped, "none before 32 had closed");
	ASSERT_EQ(c1.sockets_added + 2 * c1.short_skipped, 2 * total,
		  "every other connection accelerated at both ends");
	ASSERT_EQ(c1.peers_unpaired, 0,
		  "a skipped connection is not counted as unpaired");
	ASSERT_EQ(c1.sockets_skipped, 0, "nor as skipped by policy");
	ASSERT_EQ(c1.sockets_add_failed, 0, "no add failure");
	/* sockmesh status names the port */
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL),
		0, "sockmesh status --json");
	ASSERT_EQ(env_json_num(out, "short_ports_total"), 1,
		  "one short-connection port");
	ASSERT_EQ(env_json_num(out, "port"), 7461, "the short one, 7461");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "sockmesh status");
	ASSERT_STR_HAS(out, "short-connection ports", "a section");
	ASSERT_STR_HAS(out, "  port 7461: ", "listing the port");
	fprintf(stderr,
		"    short port: %llu of 72 skipped, %llu sockets added\n",
		(unsigned long long)c1.short_skipped,
		(unsigned long long)(c1.sockets_added - c0.sockets_added));
}

TEST(short_conn_msgs_0_and_reload)
{
	int rp[2] = {-1, -1}, gp[2] = {-1, -1};
	struct plan pl = {.ph = {{7462, 72, 1}, {7462, 72, 1}, {7462, 16, 1}},
			  .nph = 3};
	struct sm_counters c0, c1, c2;
	char out[4096];
	pid_t pid;

	if (start(e, "short_conn_msgs = 0") ||
	    !ASSERT_EQ(pipe(rp) || pipe(gp), 0, "pipes"))
		return;
	pl.ready = rp[1];
	pl.go = gp[0];
	pid = env_spawn(e, IN_CGROUP | NEW_NETNS, plan_child, &pl);
	close(rp[1]);
	close(gp[0]);
	if (!ASSERT_EQ(phase_done(pid, rp[0]), 0, "72 short connections exact"))
		goto out;
	ASSERT_EQ(env_counters(e, &c0, NULL), 0, "read counters");
	ASSERT_EQ(c0.short_skipped, 0, "short_conn_msgs = 0: none skipped");
	ASSERT_EQ(c0.sockets_added, 2 * 72, "all 72 accelerated");

	/* on: the port is learnt anew (nothing was counted while off) */
	ASSERT_EQ(env_write_config(e, "", "short_conn_msgs = 16"), 0,
		  "write config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "sockmesh reload");
	if (!ASSERT_EQ(write(gp[1], "g", 1), 1, "go") ||
	    !ASSERT_EQ(phase_done(pid, rp[0]), 0, "72 more, exact"))
		goto out;
	ASSERT_EQ(env_counters(e, &c1, NULL), 0, "read counters");
	ASSERT_GE(c1.short_skipped, 28, "after the reload the rule applies");
	ASSERT_EQ(c1.sockets_added + 2 * c1.short_skipped, 4 * 72,
		  "the others accelerated");

	/* off again: every new connection accelerated at once */
	ASSERT_EQ(env_write_config(e, "", "short_conn_msgs = 0"), 0,
		  "write config");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "reload", (char *)NULL), 0,
		  "sockmesh reload");
	if (!ASSERT_EQ(write(gp[1], "g", 1), 1, "go"))
		goto out;
	ASSERT_EQ(env_wait(pid, 60), 0, "16 more, exact");
	pid = -1;
	ASSERT_EQ(env_counters(e, &c2, NULL), 0, "read counters");
	ASSERT_EQ(c2.short_skipped, c1.short_skipped, "none skipped");
	ASSERT_EQ(c2.sockets_added - c1.sockets_added, 2 * 16,
		  "all 16 accelerated");
out:
	close(gp[1]);
	close(rp[0]);
	if (pid > 0)
		env_wait(pid, 60);
}

/* Run @pl's phases back to back in one netns; the counters after. */
static int run_plan(struct env *e, struct plan *pl, struct sm_counters *c)
{
	return ASSERT_EQ(env_wait(env_spawn(e, IN_CGROUP | NEW_NETNS,
					    plan_child, pl),
				  60),
			 0, "every connection exact") &&
			       ASSERT_EQ(env_counters(e, c, NULL), 0,
					 "read counters")
		       ? 0
		       : -1;
}

/*
 * 72 short connections leave 7461's figure short: 35 of the last 40
 * skipped (test 1). What follows right after them is then skipped too,
 * unless a new listening socket cleared the figure or the short ones
 * stopped closing SM_SHORT_FRESH_NS ago.
 */
static void after_short(struct env *e, const struct phase *next, int skipped)
{
	struct plan pl = {.ph = {{7464, 72, 1}, *next}, .nph = 2};
	long total = 72 + next->n;
	struct sm_counters c;

	if (start(e, "") || run_plan(e, &pl, &c))
		return;
	ASSERT_EQ(c.sockets_added + 2 * c.short_skipped, 2 * total,
		  "every other connection accelerated at both ends");
	if (skipped) {
		ASSERT_GE(c.short_skipped, 35 + next->n / 2,
			  "the next ones skipped too");
	} else {
		ASSERT_GE(c.short_skipped, 28, "the short ones skipped");
		ASSERT_GE(35, c.short_skipped, "the next ones accelerated");
	}
}

TEST(short_port_next_connections_skipped)
{
	/* the control: 16 more right after, same listener */
	after_short(e, &(struct phase){7464, 16, 1, .pause_ms = 0}, 1);
}

TEST(short_port_figure_resets_with_a_new_listener)
{
	after_short(e, &(struct phase){7464, 16, 1, .fresh = 1}, 0);
}

TEST(short_port_accelerated_again_after_a_pause)
{
	/* keep-alive-like connections 300 ms after the last short one */
	after_short(e, &(struct phase){7464, 16, 40, .pause_ms = 300}, 0);
}

TEST(short_port_one_short_connection_is_no_burst)
{
	/*
	 * After a pause, one connection that only connects and closes (as
	 * wrk does to test the address), then keep-alive-like ones: they
	 * are accelerated, a single short close does not make a burst.
	 */
	struct plan pl = {.ph = {{7465, 72, 1},
				 {7465, 1, 0, .pause_ms = 300},
				 {7465, 16, 40, .pause_ms = 0}},
			  .nph = 3};
	struct sm_counters c;

	if (start(e, "") || run_plan(e, &pl, &c))
		return;
	ASSERT_GE(c.short_skipped, 28, "the short ones skipped");
	ASSERT_GE(35, c.short_skipped, "none of the 17 after the pause");
	ASSERT_EQ(c.sockets_added + 2 * c.short_skipped, 2 * (72 + 1 + 16),
		  "every other connection accelerated at both ends");
}

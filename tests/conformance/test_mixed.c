// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Mixed-path sockets: a direction that was redirected and then moved to the
 * stack (the small-write rule, an unload's drain), or a socket in the map
 * whose peer is not (a peer miss). The receiver then holds redirected bytes
 * followed by stack bytes, or stack bytes only, and must answer FIONREAD,
 * poll/epoll, MSG_PEEK, reads across the boundary, EOF and the bytes
 * themselves as plain TCP does.
 *
 * The accelerated run goes first (diff_opts.accel_first): a checkpoint
 * reads from the counters how many bytes were redirected (the boundary),
 * and the plain run repeats exactly the same reads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conform.h"

#define FIONREAD_GAP \
	"in the map, FIONREAD counts redirected bytes only (compat.md)"
#define SHORT_READ_GAP \
	"short read at the end of the redirected bytes (compat.md)"
#define AT_SPLIT_GAP "FIONREAD 0 until a packet after the split (compat.md)"
#define UNLOADED_GAP \
	"after unload no sock_ops callback runs: the socket stays in the map"

/* Longer than SM_LEAVE_GUARD_NS: a socket leaves the map once its peer
 * proves no redirect is in flight, or at the latest that long after the
 * peer's last redirect (datapath.md, "Leaving the map") */
#define GUARD_MS (3 * (int)(SM_LEAVE_GUARD_NS / 1000000) + 4)

enum mix_reason { MIX_BULK, MIX_DRAIN, MIX_MISS, MIX_BEHIND };

enum { CP_START = 1, CP_DRAIN, CP_SENT, CP_PHASE };

/* Filled by the accelerated run's checkpoints, read by both runs. */
struct mix_shared {
	long long split; /* bytes redirected before the switch */
};

struct mix_arg {
	enum mix_reason why;
	int shut; /* the sender half-closes at once; a read spans the split */
	const char *cg_mnt;
	struct mix_shared *sh;
};

#define MIX_SEED   91
#define BULK_MSGS  1000	     /* 1 KiB writes in a row, nothing back */
#define MIX_CHUNK  16384     /* drain, miss: 16 KiB writes ... */
#define MIX_CHUNKS 16	     /* ... 8 before the unload, 8 after */
#define MIX_RCVBUF (4 << 20) /* all of it fits unread, in both runs */
#define MIX_REPLY  (300 * 1024)

/* --- checkpoints (in the test process) ---------------------------------- */

struct mix_cp {
	struct mix_shared *sh;
	int cfd;
	struct sm_counters c0;
	int stopped, unloaded;
};

static void mix_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct mix_cp *cp = arg;
	struct sm_counters now;

	if (!accel)
		return; /* the plain run reuses the accelerated run's split */
	if (n == CP_START || n == CP_PHASE) {
		if (n == CP_PHASE && cp->cfd >= 0)
			close(cp->cfd);
		cp->cfd = env_counters_fd(e);
		if (cp->cfd < 0 || env_read_counters_fd(cp->cfd, &cp->c0))
			cp->sh->split = -1;
	} else if (n == CP_DRAIN) {
		char out[4096];

		cp->stopped = env_stop_daemon(e, SIGTERM);
		cp->unloaded =
			env_cli(e, out, sizeof(out), "unload", (char *)NULL);
	} else if (n == CP_SENT && cp->cfd >= 0) {
		if (!env_read_counters_fd(cp->cfd, &now))
			cp->sh->split =
				now.bytes_redirected - cp->c0.bytes_redirected;
		close(cp->cfd);
		cp->cfd = -1;
	}
}

/* --- observations -------------------------------------------------------- */

/* FIONREAD; with @gap a documented difference, then with @nonzero also
 * what applications rely on (readable means FIONREAD > 0) held to TCP. */
static void obs_inq(struct result *r, const char *what, int fd, const char *gap,
		    int nonzero)
{
	char name[40];
	int v = sock_inq(fd);

	snprintf(name, sizeof(name), "%s_fionread", what);
	if (!gap) {
		res_same(r, name, v);
		return;
	}
	res_gap(r, name, v, gap);
	if (!nonzero)
		return;
	snprintf(name, sizeof(name), "%s_fionread_nonzero", what);
	res_same(r, name, v > 0);
}

/* epoll edge-triggered: an edge since the last look? */
static void obs_edge(struct result *r, const char *what, int ept)
{
	struct epoll_event ev = {0};
	char name[40];
	int n = epoll_wait(ept, &ev, 1, 0);

	snprintf(name, sizeof(name), "%s_epoll_edge", what);
	res_same(r, name, n > 0 ? (long long)ev.events : n);
}

static void obs_ready(struct result *r, const char *what, int fd, int ep)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	struct epoll_event ev = {0};
	char name[40];
	int n;

	poll(&p, 1, 0);
	snprintf(name, sizeof(name), "%s_poll", what);
	res_same(r, name, p.revents);
	n = epoll_wait(ep, &ev, 1, 0);
	snprintf(name, sizeof(name), "%s_epoll", what);
	res_same(r, name, n > 0 ? (long long)ev.events : n);
}

/* recv() once (non-blocking) at stream offset @off; records the size
 * (@gap: as a documented difference) and whether the bytes are exact. */
static ssize_t obs_recv(struct result *r, const char *what, int fd,
			unsigned char *buf, size_t len, uint64_t off, int flags,
			const char *gap)
{
	ssize_t n = recv(fd, buf, len, flags | MSG_DONTWAIT);
	char name[40];

	snprintf(name, sizeof(name), "%s", what);
	if (gap)
		res_gap(r, name, n, gap);
	else
		res_same(r, name, n);
	snprintf(name, sizeof(name), "%s_exact", what);
	res_same(r, name, n > 0 && pat_check(buf, n, off, MIX_SEED) < 0);
	return n;
}

/* --- the scenario -------------------------------------------------------- */

static int mix_connect(struct result *r, const struct mix_arg *a, int *c,
		       int *s)
{
	struct pair_opt po = {.rcvbuf_force = MIX_RCVBUF};
	struct cg_hop hop;
	int lfd, ret;

	if (a->why != MIX_MISS)
		return scen_pair(r, c, s, &po);
	/* the client end is accelerated, the listener is made outside the
	 * cgroup (so is every socket it accepts): the client's messages miss
	 * their peer. (The other way round the accepted end is never
	 * recorded: its client is not in the map.) */
	*c = *s = -1;
	ret = cgroup_step_out(a->cg_mnt, &hop);
	if (ret) {
		res_broken(r, "leave the cgroup: %s", strerror(-ret));
		return -1;
	}
	lfd = tcp_listener(&po);
	ret = cgroup_step_back(a->cg_mnt, &hop);
	if (ret || lfd < 0) {
		res_broken(r, "listen outside: %s",
			   strerror(ret ? -ret : -lfd));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	*c = tcp_connect_to(lfd, &po);
	if (*c < 0) {
		res_broken(r, "connect: %s", strerror(-*c));
		goto out;
	}
	*s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*s < 0) {
		res_broken(r, "accept: %s", strerror(errno));
		goto out;
	}
	/* the client speaks first: its message misses the peer */
	ret = send_pat(*c, 1000, 0, MIX_SEED + 2);
	if (!ret) {
		unsigned char g[1000];

		res_same(r, "greeting_exact",
			 recv_exact(r, *s, g, sizeof(g)) == sizeof(g) &&
				 pat_check(g, sizeof(g), 0, MIX_SEED + 2) < 0);
	}
out:
	close(lfd);
	return *s < 0 ? -1 : 0;
}

static int mix_send(struct result *r, const struct mix_arg *a, int c, int s,
		    size_t *total)
{
	size_t off = 0;
	int ret = 0;

	if (a->why == MIX_BULK && a->shut) {
		/* a small-write run the receiver keeps up with (its own
		 * pattern), so the direction moves to the stack once the
		 * receiver's queue is empty; then the observed bytes */
		struct reader rd = {.fd = s,
				    .seed = MIX_SEED + 3,
				    .want = BULK_MSGS / 2 * 1024,
				    .r = r};

		reader_start(&rd);
		for (int i = 0; i < BULK_MSGS / 2 && !ret; i++, off += 1024)
			ret = send_pat(c, 1024, off, MIX_SEED + 3);
		reader_join(&rd);
		res_same(r, "warmup_exact",
			 rd.got == rd.want && rd.bad_at < 0 && !rd.err);
		scen_checkpoint(CP_PHASE); /* count redirects from here */
		off = 0;
		for (int i = 0; i < BULK_MSGS / 2 && !ret; i++, off += 1024)
			ret = send_pat(c, 1024, off, MIX_SEED);
	} else if (a->why == MIX_BULK) {
		for (int i = 0; i < BULK_MSGS && !ret; i++, off += 1024)
			ret = send_pat(c, 1024, off, MIX_SEED);
	} else {
		for (int i = 0; i < MIX_CHUNKS && !ret; i++, off += MIX_CHUNK) {
			if (a->why == MIX_DRAIN && i == MIX_CHUNKS / 2)
				scen_checkpoint(CP_DRAIN);
			ret = send_pat(c, MIX_CHUNK, off, MIX_SEED);
		}
	}
	*total = off;
	return ret;
}

/* The other way: the server answers in 1 KiB writes, the client reads. */
static void mix_reply(struct result *r, int c, int s)
{
	struct reader rd = {.fd = c, .seed = MIX_SEED + 1, .want = MIX_REPLY};
	int ret = 0;

	reader_start(&rd);
	for (size_t off = 0; off < MIX_REPLY && !ret; off += 1024)
		ret = send_pat(s, 1024, off, MIX_SEED + 1);
	reader_join(&rd);
	res_same(r, "reply_send_errno", -ret);
	res_same(r, "reply_bytes", rd.got);
	res_same(r, "reply_first_bad_byte", rd.bad_at);
}

static int mix_scen(struct result *r, void *arg)
{
	const struct mix_arg *a = arg;
	static unsigned char buf[1 << 20];
	size_t total = 0, got = 0, len;
	long long split;
	int c = -1, s = -1, ep = -1, ept = -1, mixed;
	ssize_t n;

	scen_checkpoint(CP_START);
	if (mix_connect(r, a, &c, &s))
		goto out;
	ep = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ep, EPOLL_CTL_ADD, s,
		  &(struct epoll_event){.events = EPOLLIN | EPOLLRDHUP});
	ept = epoll_create1(EPOLL_CLOEXEC);
	epoll_ctl(ept, EPOLL_CTL_ADD, s,
		  &(struct epoll_event){.events = EPOLLIN | EPOLLET});
	if (mix_send(r, a, c, s, &total)) {
		res_broken(r, "send: %s", strerror(errno));
		goto out;
	}
	if (wait_sent(c, 3000)) {
		res_broken(r, "%zu B not acknowledged within 3 s", total);
		goto out;
	}
	if (a->shut) {
		shutdown(c, SHUT_WR);
		wait_sent(c, 3000);
	}
	scen_checkpoint(CP_SENT);
	split = a->sh->split;
	if (split < 0 || (size_t)split > total) {
		res_broken(r, "redirected bytes unknown (%lld)", split);
		goto out;
	}
	/* split redirected bytes, then the rest through the stack */
	mixed = split > 0 && (size_t)split < total;
	res_same(r, "sent", total);
	res_info(r, "redirected_part", split);

	/* 1. all of it queued, nothing read */
	obs_inq(r, "queued", s, mixed ? FIONREAD_GAP : NULL, 1);
	obs_ready(r, "queued", s, ep);
	obs_edge(r, "queued", ept);
	obs_recv(r, "queued_peek", s, buf, sizeof(buf), 0, MSG_PEEK,
		 mixed ? SHORT_READ_GAP : NULL);

	/* 2. a partial read, inside the redirected part if there is one */
	len = split > 0 ? (size_t)split / 2 : total / 4;
	n = obs_recv(r, "read1", s, buf, len, 0, 0, NULL);
	got = n > 0 ? n : 0;
	obs_inq(r, "read1", s, mixed ? FIONREAD_GAP : NULL, 1);
	obs_ready(r, "read1", s, ep);
	obs_edge(r, "read1", ept);

	if (!a->shut) {
		/* 3. exactly up to the split: only stack bytes are left */
		if ((size_t)split > got) {
			n = obs_recv(r, "read2", s, buf, split - got, got, 0,
				     NULL);
			got += n > 0 ? n : 0;
		}
		obs_inq(r, "at_split", s, mixed ? AT_SPLIT_GAP : NULL, 0);
		obs_ready(r, "at_split", s, ep);
		obs_edge(r, "at_split", ept);
		obs_recv(r, "at_split_peek", s, buf, sizeof(buf), got, MSG_PEEK,
			 NULL);
	} else {
		/* 3. one read across the split: half the stack bytes */
		size_t from = (size_t)split > got ? (size_t)split : got;

		len = from - got + (total - from) / 2;
		n = obs_recv(r, "span_read", s, buf, len, got, 0,
			     mixed ? SHORT_READ_GAP : NULL);
		if (n < 0)
			n = 0;
		if ((size_t)n < len &&
		    recv_exact(r, s, buf + n, len - n) != (ssize_t)(len - n))
			n = -1;
		res_same(r, "span_all_exact",
			 n >= 0 && pat_check(buf, len, got, MIX_SEED) < 0);
		got += len;
		obs_inq(r, "after_span", s, mixed ? AT_SPLIT_GAP : NULL, 0);
		obs_ready(r, "after_span", s, ep);
	}

	/* 4. the rest */
	len = total - got;
	n = recv_exact(r, s, buf, len);
	res_same(r, "rest", n);
	res_same(r, "rest_exact",
		 n == (ssize_t)len && pat_check(buf, len, got, MIX_SEED) < 0);
	got += len;
	obs_inq(r, "all_read", s, NULL, 0);
	obs_ready(r, "all_read", s, ep);

	if (!a->shut) {
		/* 5. more bytes once all was read, after the guard: the
		 * receiver has left the map, FIONREAD is TCP's again */
		sleep_ms(GUARD_MS);
		if (send_pat(c, 1000, total, MIX_SEED) || wait_sent(c, 3000)) {
			res_broken(r, "send 1000 more: %s", strerror(errno));
			goto out;
		}
		/* unload detached sock_ops (its contract): a socket still in
		 * the orphaned map cannot leave it any more */
		obs_inq(r, "more", s, a->why == MIX_DRAIN ? UNLOADED_GAP : NULL,
			0);
		obs_ready(r, "more", s, ep);
		obs_edge(r, "more", ept);
		n = recv_exact(r, s, buf, 1000);
		res_same(r, "more_exact",
			 n == 1000 &&
				 pat_check(buf, 1000, total, MIX_SEED) < 0);
		shutdown(c, SHUT_WR);
		wait_sent(c, 3000);
	}
	/* 6. EOF after the last byte, in order */
	obs_ready(r, "eof", s, ep);
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	res_same(r, "eof_read", n);
	res_same(r, "eof_errno", n < 0 ? errno : 0);
	obs_inq(r, "eof", s, NULL, 0);

	/* 7. the other way: the half-closed client still reads an answer */
	mix_reply(r, c, s);
out:
	if (ept >= 0)
		close(ept);
	if (ep >= 0)
		close(ep);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	return 0;
}

static void mix_test(struct env *e, enum mix_reason why, int shut,
		     const char *what)
{
	struct mix_shared *sh;
	struct mix_arg a = {.why = why, .shut = shut, .cg_mnt = e->cg_mnt};
	struct mix_cp cp = {.cfd = -1};
	struct diff_opts o = {.at_checkpoint = mix_checkpoint,
			      .cp_arg = &cp,
			      .accel_first = 1};
	struct diff d;
	/* the observed bytes (the bulk half-close case warms up first) */
	size_t total = why != MIX_BULK ? MIX_CHUNKS * MIX_CHUNK
		       : shut	       ? BULK_MSGS / 2 * 1024
				       : BULK_MSGS * 1024;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_TRUE(sh != MAP_FAILED, "mmap"))
		return;
	sh->split = -1;
	a.sh = sh;
	cp.sh = sh;
	if (conf_start(e, "") || diff_run(e, what, mix_scen, &a, &d, &o))
		goto out;
	fprintf(stderr, "    [%s] %lld of %zu B redirected before the switch\n",
		what, sh->split, total);
	switch (why) {
	case MIX_BULK:
		ASSERT_GE(d.da.bulk_fallbacks, 1,
			  "the small-write rule moved the direction");
		if (!shut)
			ASSERT_GT(sh->split, 0, "redirected before the switch");
		ASSERT_GT(d.da.bytes_passed, 0, "the stack after it");
		break;
	case MIX_DRAIN:
		ASSERT_EQ(cp.stopped, 0, "sockmeshd stopped");
		ASSERT_EQ(cp.unloaded, 0, "unloaded mid-connection");
		ASSERT_EQ(sh->split, total / 2,
			  "redirected until the unload, not after");
		ASSERT_GE(d.da.msgs_drained, MIX_CHUNKS / 2,
			  "after the unload: through the stack");
		break;
	case MIX_MISS:
		ASSERT_EQ(d.da.sockets_added, 1,
			  "only the client end recorded");
		ASSERT_EQ(d.da.peer_misses, 1,
			  "its first message missed the peer");
		ASSERT_EQ(sh->split, 0, "nothing redirected");
		ASSERT_EQ(d.da.sockets_left, 1,
			  "the client left the map: plain TCP");
		break;
	case MIX_BEHIND:
		break;
	}
	if (why == MIX_BULK && !shut)
		ASSERT_EQ(d.da.sockets_left, 2, "both ends left the map");
	if (why != MIX_DRAIN)
		ASSERT_EQ(env_sockets(e), 0, "the map is empty once closed");
out:
	munmap(sh, sizeof(*sh));
}

TEST(mixed_bulk_fionread_poll_peek_eof)
{
	mix_test(e, MIX_BULK, 0, "small-write fallback: queued bytes");
}

TEST(mixed_bulk_read_across_switch_then_shutdown)
{
	mix_test(e, MIX_BULK, 1, "small-write fallback: read across, EOF");
}

TEST(mixed_drain_fionread_poll_peek_eof)
{
	mix_test(e, MIX_DRAIN, 0, "unload drain: queued bytes");
}

TEST(mixed_drain_read_across_switch_then_shutdown)
{
	mix_test(e, MIX_DRAIN, 1, "unload drain: read across, EOF");
}

TEST(mixed_peer_miss_fionread_poll_peek_eof)
{
	mix_test(e, MIX_MISS, 0, "peer miss: client in the map, server not");
}

TEST(mixed_peer_miss_read_then_shutdown)
{
	mix_test(e, MIX_MISS, 1, "peer miss: read, EOF");
}

/* --- bytes exact across every switch, both directions --------------------- */

/* One write of each size, in this order; per reason which steps and in
 * what order (a small-write run first for the bulk rule, large writes
 * first to get the receiver behind). */
struct step {
	size_t size;
	int count;
};

/* {0, -2}: wait until the reader has read all sent so far */
static const struct step steps_small_first[] = {
	{1024, 1000},	{0, -2},    {1 << 20, 2},  {4096, 200},
	{256 << 10, 2}, {100, 500}, {64 << 10, 4}, {0, 0},
};
static const struct step steps_large_first[] = {
	{1 << 20, 2},	{64 << 10, 4}, {1024, 300}, {4096, 200},
	{256 << 10, 2}, {100, 500},    {0, 0},
};
static const struct step steps_drain[] = {
	{16384, 16},  {0, -1}, /* the unload */
	{1 << 20, 2}, {1024, 300}, {64 << 10, 4}, {100, 500}, {0, 0},
};

static size_t steps_total(const struct step *st)
{
	size_t t = 0;

	for (; st->count; st++)
		if (st->count > 0)
			t += st->size * st->count;
	return t;
}

/* Send each step's writes as single send() calls of that size. */
static int send_steps(int fd, const struct step *st, unsigned seed, int cp,
		      pthread_barrier_t *bar, const size_t *drained)
{
	static __thread unsigned char buf[1 << 20];
	uint64_t off = 0;

	for (; st->count; st++) {
		if (st->count == -2) {
			/*
			 * The small-write run has tripped; its switch needs
			 * a message that finds the receiver's queue empty.
			 * A reader that lags at every message never gives
			 * one (9553568 B redirected, 0 through the stack):
			 * the scenario makes that moment itself.
			 */
			for (int k = 0;
			     drained && k < 60000 &&
			     __atomic_load_n(drained, __ATOMIC_ACQUIRE) < off;
			     k++)
				usleep(1000);
			continue;
		}
		if (st->count < 0) {
			/* both directions pause; the unload; both go on */
			pthread_barrier_wait(bar);
			if (cp)
				scen_checkpoint(CP_DRAIN);
			pthread_barrier_wait(bar);
			continue;
		}
		for (int i = 0; i < st->count; i++) {
			pat_fill(buf, st->size, off, seed);
			for (size_t done = 0; done < st->size;) {
				ssize_t w = send(fd, buf + done,
						 st->size - done, MSG_NOSIGNAL);

				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0)
					return -errno;
				done += w;
			}
			off += st->size;
		}
	}
	return 0;
}

struct sender {
	int fd;
	const struct step *st;
	unsigned seed;
	int cp; /* this one calls the unload checkpoint */
	pthread_barrier_t *bar;
	const size_t *drained; /* its reader's count of bytes read */
	int err;
	pthread_t t;
};

static void *sender_main(void *p)
{
	struct sender *sd = p;

	sd->err = -send_steps(sd->fd, sd->st, sd->seed, sd->cp, sd->bar,
			      sd->drained);
	return NULL;
}

static int exact_scen(struct result *r, void *arg)
{
	const struct mix_arg *a = arg;
	const struct step *st = a->why == MIX_DRAIN    ? steps_drain
				: a->why == MIX_BEHIND ? steps_large_first
						       : steps_small_first;
	size_t total = steps_total(st);
	/* the drain case streams both ways at once, across the unload */
	int duplex = a->why == MIX_DRAIN;
	struct reader rd[2] = {
		{.seed = 201, .want = total, .r = r},
		{.seed = 202, .want = total, .r = r},
	};
	struct sender sd[2] = {{.st = st, .seed = 201, .cp = 1},
			       {.st = st, .seed = 202}};
	struct mix_arg ca = *a;
	pthread_barrier_t bar;
	int c = -1, s = -1;

	pthread_barrier_init(&bar, NULL, 2);
	sd[0].bar = sd[1].bar = &bar;
	sd[0].drained = &rd[0].got;
	sd[1].drained = &rd[1].got;

	scen_checkpoint(CP_START);
	/* the receiver-behind case: the server's SO_RCVBUF 64 KiB (the
	 * kernel doubles it), the client's default (the rule's 4 MiB floor) */
	if (a->why == MIX_BEHIND) {
		struct pair_opt po = {.rcvbuf_force = 65536};

		if (scen_pair(r, &c, &s, &po))
			goto out;
	} else {
		ca.why = a->why == MIX_MISS ? MIX_MISS : MIX_BULK;
		if (mix_connect(r, &ca, &c, &s))
			goto out;
	}
	rd[0].fd = sd[1].fd = s;
	rd[1].fd = sd[0].fd = c;
	/* a late receiver: behind by far more than its buffer */
	if (a->why == MIX_BEHIND)
		rd[0].start_ms = rd[1].start_ms = 300;
	for (int i = 0; i < 2; i++) {
		reader_start(&rd[i]);
		pthread_create(&sd[i].t, NULL, sender_main, &sd[i]);
		if (duplex && !i)
			continue;
		for (int k = duplex ? 0 : i; k <= i; k++) {
			pthread_join(sd[k].t, NULL);
			reader_join(&rd[k]);
		}
	}
	scen_checkpoint(CP_SENT);
	for (int i = 0; i < 2; i++) {
		const char *dir = i ? "server_to_client" : "client_to_server";
		char name[40];

		snprintf(name, sizeof(name), "%s_send_errno", dir);
		res_same(r, name, sd[i].err);
		snprintf(name, sizeof(name), "%s_bytes", dir);
		res_same(r, name, rd[i].got);
		snprintf(name, sizeof(name), "%s_first_bad", dir);
		res_same(r, name, rd[i].bad_at);
		snprintf(name, sizeof(name), "%s_fnv", dir);
		res_same(r, name, (long long)rd[i].hash);
		snprintf(name, sizeof(name), "%s_rx_errno", dir);
		res_same(r, name, rd[i].err);
	}
	/* both ways done: EOF in order after everything */
	shutdown(c, SHUT_WR);
	shutdown(s, SHUT_WR);
	{
		unsigned char b;

		res_same(r, "server_eof", recv_exact(r, s, &b, 1));
		res_same(r, "client_eof", recv_exact(r, c, &b, 1));
	}
out:
	pthread_barrier_destroy(&bar);
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	return 0;
}

static void exact_test(struct env *e, enum mix_reason why, const char *what)
{
	struct mix_shared *sh;
	struct mix_arg a = {.why = why, .cg_mnt = e->cg_mnt};
	struct mix_cp cp = {.cfd = -1};
	struct diff_opts o = {.at_checkpoint = mix_checkpoint, .cp_arg = &cp};
	struct diff d;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!ASSERT_TRUE(sh != MAP_FAILED, "mmap"))
		return;
	sh->split = -1;
	a.sh = cp.sh = sh;
	/* the small-write case: any pause under a second keeps the run, so
	 * that it trips however a busy machine schedules the writer; the
	 * rule's timing is tested on its own elsewhere */
	if (conf_start(e,
		       why == MIX_BULK ? "small_write_gap_us = 1000000" : "") ||
	    diff_run(e, what, exact_scen, &a, &d, &o))
		goto out;
	fprintf(stderr,
		"    [%s] %llu B redirected, %llu B through the stack\n", what,
		(unsigned long long)d.da.bytes_redirected,
		(unsigned long long)d.da.bytes_passed);
	if (why != MIX_MISS)
		ASSERT_GT(d.da.bytes_redirected, 0,
			  "redirected before the switch");
	ASSERT_GT(d.da.bytes_passed, 0, "through the stack after it");
	switch (why) {
	case MIX_BULK:
		ASSERT_GE(d.da.bulk_fallbacks, 1, "the small-write rule");
		ASSERT_GE(d.da.sockets_left, 1, "the receiver left mid-stream");
		break;
	case MIX_DRAIN:
		ASSERT_EQ(cp.unloaded, 0, "unloaded mid-stream");
		ASSERT_EQ(d.da.bytes_redirected, 2 * 16 * 16384,
			  "both ways redirected until the unload");
		ASSERT_GT(d.da.msgs_drained, 0, "drained");
		break;
	case MIX_MISS:
		ASSERT_GE(d.da.peer_misses, 1, "the peer miss");
		break;
	case MIX_BEHIND:
		ASSERT_GE(d.da.rcvbuf_fallbacks, 1, "the receiver-behind rule");
		ASSERT_GE(d.da.sockets_left, 1, "the receiver left mid-stream");
		break;
	}
out:
	munmap(sh, sizeof(*sh));
}

TEST(mixed_exact_across_bulk_switch_both_ways)
{
	exact_test(e, MIX_BULK, "bytes across the small-write switch");
}

TEST(mixed_exact_across_receiver_behind_switch_both_ways)
{
	exact_test(e, MIX_BEHIND, "bytes across the receiver-behind switch");
}

TEST(mixed_exact_across_unload_drain_both_ways)
{
	exact_test(e, MIX_DRAIN, "bytes across the unload, full duplex");
}

TEST(mixed_exact_peer_miss_both_ways)
{
	exact_test(e, MIX_MISS, "bytes with one end outside the cgroup");
}

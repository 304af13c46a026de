// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Faults, short ones: kill -9 of sockmeshd under load, then a restart;
 * unload under load; a full socket map; the accelerated cgroup removed
 * while attached; a second sockmap user on the same sockets. Connections
 * sockmesh touched must never reset, hang or lose a byte.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "conform.h"

/* --- request/response load in three batches ----------------------------- */

#define BATCH	 16
#define BATCHES	 3
#define RR_SIZE	 (40 * 1024) /* >= SM_BULK_MSG_MAX: stays redirected */
#define PHASE_MS 300

struct rr_conn {
	int c, s;
	unsigned id;
	atomic_int *stop;
	long rounds;
	int err; /* errno of the first failure */
	int bad; /* a byte differed */
	pthread_t t;
};

/* One leg: @from sends RR_SIZE pattern bytes, @to reads and checks them;
 * 0, or the errno that ended it (EPROTO for an early EOF or wrong bytes). */
static int leg(int from, int to, unsigned seed, unsigned char *buf)
{
	ssize_t n;
	int ret = send_pat(from, RR_SIZE, 0, seed);

	if (ret)
		return -ret;
	n = recv_exact(NULL, to, buf, RR_SIZE);
	if (n < 0)
		return (int)-n;
	if (n != RR_SIZE || pat_check(buf, RR_SIZE, 0, seed) >= 0)
		return EPROTO;
	return 0;
}

static void *rr_main(void *p)
{
	struct rr_conn *k = p;
	static __thread unsigned char buf[RR_SIZE];

	while (!atomic_load(k->stop)) {
		unsigned seed = k->id * 7919 + (unsigned)k->rounds;

		k->err = leg(k->c, k->s, seed, buf);
		if (!k->err)
			k->err = leg(k->s, k->c, ~seed, buf);
		if (k->err) {
			k->bad = k->err == EPROTO;
			break;
		}
		k->rounds++;
	}
	return NULL;
}

struct load {
	struct rr_conn k[BATCHES * BATCH];
	int lfd;
	int n;
	atomic_int stop;
};

static int load_batch(struct result *r, struct load *l)
{
	struct pair_opt po = {0};

	for (int i = 0; i < BATCH; i++) {
		struct rr_conn *k = &l->k[l->n];

		k->c = tcp_connect_to(l->lfd, &po);
		k->s = k->c >= 0 ? accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC)
				 : -1;
		if (k->c < 0 || k->s < 0) {
			res_broken(r, "connection %d: %s", l->n,
				   strerror(k->c < 0 ? -k->c : errno));
			return -1;
		}
		k->id = l->n;
		k->stop = &l->stop;
		pthread_create(&k->t, NULL, rr_main, k);
		l->n++;
	}
	return 0;
}

/* Three batches of request/response connections: the first before
 * checkpoint 1, the second between 1 and 2, the third after 2; all run to
 * the end. */
static int load_scenario(struct result *r, void *arg)
{
	static struct load l;
	int ok = 0, errs = 0, bad = 0, stalled = 0;
	long rounds = 0;

	(void)arg;
	memset(&l, 0, sizeof(l));
	l.lfd = tcp_listener(&(struct pair_opt){0});
	if (l.lfd < 0) {
		res_broken(r, "listen: %s", strerror(-l.lfd));
		return 1;
	}
	for (int b = 0; b < BATCHES; b++) {
		if (load_batch(r, &l))
			break;
		sleep_ms(PHASE_MS);
		if (b < BATCHES - 1)
			scen_checkpoint(b + 1);
	}
	atomic_store(&l.stop, 1);
	for (int i = 0; i < l.n; i++) {
		pthread_join(l.k[i].t, NULL);
		ok += !l.k[i].err && !l.k[i].bad;
		stalled += !l.k[i].rounds; /* a hang would block the join */
		errs += l.k[i].err && !l.k[i].bad;
		bad += l.k[i].bad;
		rounds += l.k[i].rounds;
		if (l.k[i].err == ECONNRESET || l.k[i].err == EPIPE)
			res_same(r, "a_connection_was_reset", 1);
		close(l.k[i].c);
		close(l.k[i].s);
	}
	close(l.lfd);
	res_same(r, "connections", l.n);
	res_same(r, "connections_exact", ok);
	res_info(r, "connections_without_a_round_trip", stalled);
	res_same(r, "connections_with_errors", errs);
	res_same(r, "connections_with_wrong_bytes", bad);
	res_info(r, "round_trips", rounds);
	return 0;
}

/* ids of the pinned sockhash and sock_ops program: adopted, not reloaded */
static void pinned_ids(struct env *e, __u32 ids[2])
{
	static const char *const names[2] = {SM_MAP_SOCKHASH, "sm_sockops"};

	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX + 32];
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd;

		ids[i] = 0;
		snprintf(path, sizeof(path), "%s/%s/%s", e->pin_dir,
			 SM_PIN_LAYOUT, names[i]);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		/* map and program info both start with type, id */
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			ids[i] = info.id;
		close(fd);
	}
}

struct kill9 {
	__u32 ids[2];
	long sockets_before, sockets_after;
	int attached_down, attached_after, restarted;
};

static void kill9_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct kill9 *k = arg;

	if (!accel)
		return;
	if (n == 1) {
		pinned_ids(e, k->ids);
		k->sockets_before = env_sockets(e);
		env_stop_daemon(e, SIGKILL);
		k->attached_down = env_sockops_attached(e);
	} else {
		__u32 ids[2];

		k->restarted = env_start_daemon(e) == 0;
		k->attached_after = env_sockops_attached(e);
		k->sockets_after = env_sockets(e);
		pinned_ids(e, ids);
		ASSERT_EQ(ids[0], k->ids[0],
			  "the restart adopted the sockhash");
		ASSERT_EQ(ids[1], k->ids[1],
			  "the restart adopted the sock_ops program");
	}
}

TEST(fault_kill9_under_load_then_restart)
{
	struct kill9 k = {.restarted = 0};
	struct diff_opts o = {.timeout_s = 300,
			      .at_checkpoint = kill9_checkpoint,
			      .cp_arg = &k};
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "kill -9 of sockmeshd under load",
					  load_scenario, NULL, &d, &o))
		return;
	ASSERT_TRUE(k.ids[0] && k.ids[1], "pins read before the kill");
	ASSERT_EQ(k.sockets_before, 2 * BATCH, "first batch in the map");
	ASSERT_EQ(k.attached_down, 1,
		  "still attached while the daemon is dead");
	ASSERT_TRUE(k.restarted, "sockmeshd restarted");
	ASSERT_EQ(k.attached_after, 1, "one attachment on the hook, not two");
	ASSERT_EQ(k.sockets_after, 4 * BATCH,
		  "connections made while it was dead are in the map");
	ASSERT_EQ(d.da.sockets_added, 2 * BATCHES * BATCH,
		  "every socket accelerated, before, during and after");
	/*
	 * Nothing fell back to the stack, but for the one documented case
	 * that chance decides: on the window variant (before 6.2) a
	 * connection whose sm_flows slot a later one took has no figure of
	 * its receiver and takes the stack (slot_fallbacks). With 48 live
	 * connections in 65536 slots, about 1 run in 60 has such a pair
	 * (seen once on 6.1: 274 messages, one connection's whole life).
	 */
	ASSERT_EQ(d.da.rcvbuf_fallbacks + d.da.bulk_fallbacks +
			  d.da.peer_misses + d.da.ulp_fallbacks +
			  d.da.msgs_drained + d.da.strict_blocking,
		  0, "no fallback rule moved");
	if (!d.da.slot_fallbacks)
		ASSERT_EQ(d.da.msgs_passed, 0, "nothing fell back");
	else
		printf("  %llu messages passed by %llu slot fallbacks "
		       "(a collision in sm_flows, window variant)\n",
		       (unsigned long long)d.da.msgs_passed,
		       (unsigned long long)d.da.slot_fallbacks);
	ASSERT_EQ(env_sockets(e), 0, "all left the map when closed");
}

struct unload_cp {
	int stopped, unloaded, attached_after, status_after;
};

static void unload_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct unload_cp *u = arg;
	char out[4096];

	if (!accel || n != 1)
		return;
	u->stopped = env_stop_daemon(e, SIGTERM);
	u->unloaded = env_cli(e, out, sizeof(out), "unload", (char *)NULL);
	u->attached_after = env_sockops_attached(e);
	u->status_after = env_cli(e, out, sizeof(out), "status", (char *)NULL);
}

TEST(fault_unload_under_load)
{
	struct unload_cp u = {-1, -1, -1, -1};
	struct diff_opts o = {.timeout_s = 300,
			      .at_checkpoint = unload_checkpoint,
			      .cp_arg = &u};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "unload under load", load_scenario, NULL, &d, &o))
		return;
	ASSERT_EQ(u.stopped, 0, "sockmeshd stopped");
	ASSERT_EQ(u.unloaded, 0, "unload under load");
	ASSERT_EQ(u.attached_after, 0, "detached");
	ASSERT_EQ(u.status_after, 3, "status: not loaded");
	ASSERT_EQ(d.da.sockets_added, 2 * BATCH,
		  "only the first batch was accelerated");
	ASSERT_GT(d.da.msgs_drained, 0,
		  "the first batch went on over TCP (drained)");
	ASSERT_EQ(d.da.peer_misses, 0, "no miss");
}

/* --- unload while blocking streams run ----------------------------------- */

#define UB_CONNS 32
#define UB_BYTES (2 << 20) /* each way */

struct ub_writer {
	int fd;
	unsigned seed;
	int err;
	pthread_barrier_t *bar;
	pthread_t tid;
};

/* Half the stream, wait for the unload, the other half, then EOF. */
static void *ub_write(void *arg)
{
	struct ub_writer *w = arg;

	w->err = send_pat(w->fd, UB_BYTES / 2, 0, w->seed);
	pthread_barrier_wait(w->bar); /* the first halves are written */
	pthread_barrier_wait(w->bar); /* the unload is done */
	if (!w->err)
		w->err = send_pat(w->fd, UB_BYTES / 2, UB_BYTES / 2, w->seed);
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/*
 * UB_CONNS connections stream UB_BYTES each way through blocking sockets
 * (a writer and a blocking reader thread per direction); halfway, the
 * test runs `sockmesh unload`. Every direction must arrive exact; a
 * blocking recv() that returns EAGAIN is the known gap (retried, counted).
 */
static int unload_blocking(struct result *r, void *arg)
{
	static int c[UB_CONNS], s[UB_CONNS];
	static struct reader rd[2 * UB_CONNS];
	static struct ub_writer w[2 * UB_CONNS];
	pthread_barrier_t bar;
	int exact = 0, err = 0;

	(void)arg;
	for (int i = 0; i < UB_CONNS; i++) {
		if (scen_pair(r, &c[i], &s[i], NULL))
			return 1;
	}
	pthread_barrier_init(&bar, NULL, 2 * UB_CONNS + 1);
	for (int i = 0; i < 2 * UB_CONNS; i++) {
		int from = i & 1 ? s[i / 2] : c[i / 2];
		int to = i & 1 ? c[i / 2] : s[i / 2];

		rd[i] = (struct reader){.fd = to, .seed = 300 + i, .r = r};
		w[i] = (struct ub_writer){
			.fd = from, .seed = 300 + i, .bar = &bar};
		reader_start(&rd[i]);
		pthread_create(&w[i].tid, NULL, ub_write, &w[i]);
	}
	pthread_barrier_wait(&bar);
	scen_checkpoint(1); /* the test unloads */
	pthread_barrier_wait(&bar);
	for (int i = 0; i < 2 * UB_CONNS; i++) {
		pthread_join(w[i].tid, NULL);
		reader_join(&rd[i]);
		err = err ? err : w[i].err;
		exact +=
			rd[i].got == UB_BYTES && rd[i].bad_at < 0 && !rd[i].err;
	}
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < UB_CONNS; i++) {
		close(c[i]);
		close(s[i]);
	}
	res_same(r, "send_errno", -err);
	res_same(r, "directions_exact", exact);
	return 0;
}

struct ub_cp {
	int unloaded;
};

static void ub_checkpoint(struct env *e, int accel, int n, void *arg)
{
	struct ub_cp *u = arg;
	char out[4096];

	if (!accel || n != 1)
		return;
	u->unloaded = env_cli(e, out, sizeof(out), "unload", (char *)NULL);
	if (e->daemon > 0 && env_wait(e->daemon, 10) >= 0)
		e->daemon = 0; /* it detached and exited */
}

TEST(fault_unload_under_blocking_streams)
{
	struct ub_cp u = {-1};
	struct diff_opts o = {
		.timeout_s = 600, .at_checkpoint = ub_checkpoint, .cp_arg = &u};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "unload while 32 blocking streams run both ways",
		     unload_blocking, NULL, &d, &o))
		return;
	ASSERT_EQ(u.unloaded, 0, "sockmesh unload mid-stream");
	ASSERT_EQ(res_get(&d.accel, "directions_exact"), 2 * UB_CONNS,
		  "every direction exact");
	ASSERT_EQ(d.da.sockets_added, 2 * UB_CONNS, "all were accelerated");
	ASSERT_GT(d.da.bytes_redirected, 0, "redirected before the unload");
	ASSERT_GT(d.da.msgs_drained, 0, "drained after it");
}

/* --- a full socket map -------------------------------------------------- */

#define FULL_MAX   64
#define FULL_CONNS 100
#define FULL_AFTER 10

static int exchange(struct result *r, int c, int s, unsigned seed)
{
	unsigned char buf[40000];

	return !send_pat(c, sizeof(buf), 0, seed) &&
	       recv_exact(r, s, buf, sizeof(buf)) == sizeof(buf) &&
	       pat_check(buf, sizeof(buf), 0, seed) < 0 &&
	       !send_pat(s, sizeof(buf), 0, ~seed) &&
	       recv_exact(r, c, buf, sizeof(buf)) == sizeof(buf) &&
	       pat_check(buf, sizeof(buf), 0, ~seed) < 0;
}

static int full_map(struct result *r, void *arg)
{
	static int c[FULL_CONNS], s[FULL_CONNS];
	struct pair_opt po = {0};
	int lfd, ok = 0, ok_after = 0, n = 0;

	(void)arg;
	lfd = tcp_listener(&po);
	if (lfd < 0) {
		res_broken(r, "listen: %s", strerror(-lfd));
		return 1;
	}
	/* all open at once: the map fills up */
	for (n = 0; n < FULL_CONNS; n++) {
		c[n] = tcp_connect_to(lfd, &po);
		s[n] = c[n] >= 0 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
		if (c[n] < 0 || s[n] < 0)
			break;
	}
	for (int i = 0; i < n; i++)
		ok += exchange(r, c[i], s[i], i);
	for (int i = 0; i < n; i++) {
		close(c[i]);
		close(s[i]);
	}
	/* room again once they closed */
	for (int i = 0; i < FULL_AFTER; i++) {
		int cc, ss;

		if (tcp_pair(&cc, &ss, &po))
			break;
		ok_after += exchange(r, cc, ss, 1000 + i);
		close(cc);
		close(ss);
	}
	close(lfd);
	res_same(r, "connections_exact", ok);
	res_same(r, "connections_after_exact", ok_after);
	return 0;
}

TEST(fault_max_sockets_reached)
{
	struct diff d;
	char extra[64];

	snprintf(extra, sizeof(extra), "max_sockets = %d", FULL_MAX);
	if (conf_start(e, extra) ||
	    diff_run(e, "max_sockets reached", full_map, NULL, &d, NULL))
		return;
	ASSERT_EQ(res_get(&d.accel, "connections_exact"), FULL_CONNS,
		  "every connection exact, accelerated or not");
	ASSERT_EQ(d.da.sockets_added, FULL_MAX + 2 * FULL_AFTER,
		  "the map took what it holds, and more once sockets closed");
	ASSERT_EQ(d.da.sockets_add_failed, 2 * FULL_CONNS - FULL_MAX,
		  "the rest counted as add failures");
	ASSERT_EQ(d.da.bytes_redirected,
		  (FULL_MAX / 2 + FULL_AFTER) * 2 * 40000,
		  "the accelerated connections' bytes redirected");
	ASSERT_EQ(d.da.msgs_passed, 0,
		  "the others never reached SK_MSG: neither end is in the map");
}

/* --- the cgroup removed while attached ---------------------------------- */

static int short_xfer(struct result *r, void *arg)
{
	int c, s;
	struct pair_opt po = {0};

	(void)arg;
	if (scen_pair(r, &c, &s, &po))
		return 1;
	res_same(r, "exchange_exact", exchange(r, c, s, 5));
	close(c);
	close(s);
	return 0;
}

TEST(fault_cgroup_removed_while_attached)
{
	char out[8192], want[256];
	struct diff d;
	struct stat st;

	if (conf_start(e, "") || diff_run(e, "before the cgroup is removed",
					  short_xfer, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 80000, "accelerated");
	/* its processes have left: the cgroup can go */
	if (!ASSERT_EQ(rmdir(e->cg_path), 0, "rmdir the attached cgroup"))
		return;
	ASSERT_EQ(kill(e->daemon, 0), 0, "sockmeshd keeps running");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status copes");
	ASSERT_STR_HAS(out, "(removed)", "status says the cgroup is gone");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "status", "--json", (char *)NULL),
		0, "status --json copes");
	ASSERT_STR_HAS(out, "\"cgroup\": \"(removed)\"", "in JSON too");
	ASSERT_EQ(
		env_cli(e, out, sizeof(out), "run", "--", "true", (char *)NULL),
		3, "run: not loaded (no cgroup to run in)");
	ASSERT_STR_HAS(out, "does not exist", "run says why");
	ASSERT_EQ(env_stop_daemon(e, SIGTERM), 0, "sockmeshd stops cleanly");
	/* a restart recreates the cgroup and attaches there, once */
	if (!ASSERT_EQ(env_start_daemon(e), 0, "restart sockmeshd"))
		return;
	ASSERT_EQ(stat(e->cg_path, &st), 0, "the cgroup was recreated");
	ASSERT_EQ(env_sockops_attached(e), 1, "attached once to the new one");
	ASSERT_EQ(env_cli(e, out, sizeof(out), "status", (char *)NULL), 0,
		  "status");
	ASSERT_TRUE(!strstr(out, "(removed)"),
		    "the stale link of the removed cgroup is gone");
	snprintf(want, sizeof(want), "/%s ", e->cg_rel);
	ASSERT_STR_HAS(out, want, "status names the new cgroup");
	if (diff_run(e, "after the restart", short_xfer, NULL, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 80000, "accelerated again");
}

/* --- a second sockmap user on the same sockets -------------------------- */

struct foreign_arg {
	int with_prog; /* the foreign map has its own SK_MSG program */
};

/* r0 = SK_PASS; exit */
static int load_pass_prog(void)
{
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1},
		{.code = BPF_JMP | BPF_EXIT},
	};

	return bpf_prog_load(BPF_PROG_TYPE_SK_MSG, "foreign_pass", "GPL", insns,
			     2, NULL);
}

static int foreign(struct result *r, void *arg)
{
	const struct foreign_arg *a = arg;
	static unsigned char buf[65536];
	struct pair_opt po = {0};
	__u32 k0 = 0, k1 = 1;
	__u64 v;
	int map, prog = -1, c, s, ret;

	map = bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "foreign", sizeof(__u32),
			     sizeof(__u64), 16, NULL);
	if (map < 0) {
		res_broken(r, "create the foreign sockhash: %s",
			   strerror(errno));
		return 1;
	}
	if (a->with_prog) {
		prog = load_pass_prog();
		if (prog < 0 ||
		    bpf_prog_attach(prog, map, BPF_SK_MSG_VERDICT, 0)) {
			res_broken(r, "foreign SK_MSG program: %s",
				   strerror(errno));
			return 1;
		}
	}
	if (scen_pair(r, &c, &s, &po))
		return 1;
	/* another application puts the same sockets into its own map */
	v = c;
	ret = bpf_map_update_elem(map, &k0, &v, BPF_NOEXIST);
	res_gap(r, "foreign_insert_client_errno", ret ? errno : 0,
		"one SK_MSG program per socket: a second sockmap user with its own program is refused");
	v = s;
	ret = bpf_map_update_elem(map, &k1, &v, BPF_NOEXIST);
	res_gap(r, "foreign_insert_server_errno", ret ? errno : 0,
		"one SK_MSG program per socket: a second sockmap user with its own program is refused");
	res_same(r, "exchange_exact", exchange(r, c, s, 6));
	/* bytes queued and unread while the foreign user lets go of them */
	send_pat(c, sizeof(buf), 0, 7);
	sleep_ms(20);
	bpf_map_delete_elem(map, &k0);
	bpf_map_delete_elem(map, &k1);
	res_same(r, "queued_bytes_after_foreign_delete",
		 recv_exact(r, s, buf, sizeof(buf)));
	res_same(r, "queued_bytes_bad_at", pat_check(buf, sizeof(buf), 0, 7));
	res_same(r, "exchange_after_delete_exact", exchange(r, c, s, 8));
	close(c);
	close(s);
	close(map);
	if (prog >= 0)
		close(prog);
	return 0;
}

TEST(fault_second_sockmap_user_no_program)
{
	struct foreign_arg a = {.with_prog = 0};
	struct diff d;

	if (conf_start(e, "") || diff_run(e, "second sockmap user, no program",
					  foreign, &a, &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 2 * 80000 + 65536,
		  "still redirected, every byte");
	ASSERT_EQ(d.da.msgs_passed, 0, "nothing through the stack");
}

TEST(fault_second_sockmap_user_own_program)
{
	struct foreign_arg a = {.with_prog = 1};
	struct diff d;

	if (conf_start(e, "") ||
	    diff_run(e, "second sockmap user with its own SK_MSG", foreign, &a,
		     &d, NULL))
		return;
	ASSERT_EQ(d.da.bytes_redirected, 2 * 80000 + 65536,
		  "still redirected, every byte");
}

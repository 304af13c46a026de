// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh-bench - latency and throughput of loopback TCP (tcp), TCP in a
 * sockmesh-accelerated cgroup (accel) and UNIX stream sockets (uds), side by
 * side in one run, with the same io_uring loop for all three.
 *
 * For each run the parent forks a server, then a client (bench_run.c). Each
 * pins itself if asked and, for accel, joins the accelerated cgroup before
 * creating any socket (a socket's cgroup is fixed at its creation); both
 * report into shared memory. The parent reads the sockmesh counters before
 * and after the run, so a "fast" run that was not redirected shows.
 *
 * Runs are interleaved: for each round, mode and size, the transports run
 * one after the other, so that a drift in machine load hits them alike.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cgroup.h"
#include "config.h"
#include "pins.h"

#define EXIT_USAGE	2
#define EXIT_NOT_LOADED 3

#define CONNS_MAX      1024
#define RATE_MAX       1e8 /* requests/s: beyond any transport */
#define KNEE_US_DEF    500 /* --knee-us: p99 bound of a knee */
#define SIZE_MAX_BYTES (64UL << 20)
#define MEM_MAX_BYTES  (512UL << 20) /* size x conns, per process */

struct ctx {
	struct bench_matrix m;
	const char *config; /* -c, or NULL: the default */
	bool json, verbose;
	const char *save; /* --save PREFIX */
	struct sm_config cfg;
	struct sm_pins pins;
	struct bench_env env; /* what each run needs */
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: sockmesh-bench [OPTIONS]\n"
		"\n"
		"Latency and throughput of loopback TCP (tcp), TCP in a sockmesh-accelerated\n"
		"cgroup (accel) and UNIX stream sockets (uds), measured with the same io_uring\n"
		"client and server loops, in separate processes. Every mode x size x\n"
		"transport listed is run, the transports one after the other for each mode\n"
		"and size.\n"
		"\n"
		"  -m, --mode LIST         comma-separated, default rr:\n"
		"                            rr      ping-pong: the client sends SIZE bytes, the\n"
		"                                    server reads them and echoes them back\n"
		"                            crr     connect, one rr exchange, close: one op\n"
		"                                    per connection (connections/s)\n"
		"                            stream  the client writes SIZE-byte writes as fast\n"
		"                                    as it can; the server reads (256 KiB\n"
		"                                    buffer) and verifies every byte\n"
		"                            stream-rw  the same with blocking write() and\n"
		"                                    read() (up to SIZE bytes at a time, as\n"
		"                                    iperf3), no io_uring; one connection; the\n"
		"                                    reader checks the byte count and the\n"
		"                                    last SIZE bytes only\n"
		"  -T, --transport LIST    comma-separated, default tcp:\n"
		"                            tcp     loopback TCP, in the bench's own cgroup\n"
		"                            accel   loopback TCP in the first cgroup of the\n"
		"                                    sockmesh config (-c); sockmeshd must be\n"
		"                                    attached there, with compat = fast (the\n"
		"                                    bench's io_uring sockets are blocking,\n"
		"                                    which compat = strict keeps on TCP)\n"
		"                            uds     UNIX stream socket (abstract address)\n"
		"  -s, --size LIST         bytes per message (rr, crr) or write (stream), with\n"
		"                          an optional K or M suffix (KiB, MiB); default 64\n"
		"  -n, --conns N           connections in flight at once (default 1, max %d)\n"
		"  -t, --time SECONDS      measured time of each run (default 2)\n"
		"  -w, --warmup SECONDS    unmeasured warm-up before each run (default 0.2)\n"
		"  -r, --rounds N          run the whole matrix N times, interleaved; the\n"
		"                          rounds of a mode x size x transport are merged\n"
		"                          (histograms added, times summed); default 1\n"
		"  -c, --config FILE       the sockmesh config sockmeshd runs with: accel runs\n"
		"                          join its first cgroup; the counters of every run\n"
		"                          are read from its pin_dir (if -c is given or accel\n"
		"                          is listed). Default: %s, or the\n"
		"                          built-in defaults if it does not exist\n"
		"  -a, --addr ADDR         address for tcp and accel (default 127.0.0.1; ::1)\n"
		"      --cpu-server N      pin the server process to CPU N\n"
		"      --cpu-client N      pin the client process to CPU N\n"
		"      --rw-poll           stream-rw: the reader poll()s before every read(), as\n"
		"                          iperf3's select() loop does (to compare with it)\n"
		"      --rate R            rr only: open loop at R requests/s in total, spread\n"
		"                          over the -n connections (one request in flight per\n"
		"                          connection at most; a request whose time has come is\n"
		"                          sent when its connection is free, never skipped).\n"
		"                          Latency runs from each request's intended send time,\n"
		"                          so a stall counts in every request it delays. A run\n"
		"                          that completed fewer than %.0f%% of the requests it\n"
		"                          scheduled in the measured time is INVALID (exit 1)\n"
		"      --arrivals const|exp  open loop: constant gaps (default) or Poisson\n"
		"                          arrivals (exponential gaps)\n"
		"      --sweep             rr, one size: the closed-loop maximum of every\n"
		"                          transport, then open loop at 10, 25, 50, 75, 90, 100\n"
		"                          and 110%% of plain TCP's maximum (the first transport's\n"
		"                          if tcp is not listed), the transports interleaved;\n"
		"                          reports p50/p99/p99.9 per load and each transport's\n"
		"                          knee. Loads a transport cannot keep up with are\n"
		"                          marked OVERLOADED (their latency is a lower bound),\n"
		"                          not failed. With --save, perf/sweep-plot.sh\n"
		"                          PREFIX.tsv OUT.svg draws the curve\n"
		"      --knee-us US        the knee: the highest load whose p99 (and every\n"
		"                          lower load's) stays at most US microseconds, the run\n"
		"                          valid (default %d); past it, latency climbs steeply\n"
		"      --target HOST:PORT  rr only: no server of ours; the client connects to\n"
		"                          HOST:PORT ([ADDR]:PORT for IPv6), from the bench's\n"
		"                          own cgroup (-T tcp), with non-blocking sockets as\n"
		"                          an event loop's (so compat = strict keeps them\n"
		"                          accelerated). Run the bench where the client should\n"
		"                          be: in a pod (ip netns exec), in a cgroup\n"
		"      --proto P           what the client speaks: echo (default: SIZE bytes,\n"
		"                          the same bytes back), redis[:KEY] (GET KEY, default\n"
		"                          key sockmesh-bench; one reply, an error reply\n"
		"                          fails the run) or http[:PATH] (GET PATH HTTP/1.1,\n"
		"                          keep-alive, default /; a 2xx response with\n"
		"                          Content-Length, anything else fails the run).\n"
		"                          redis and http need --target and take no --size\n"
		"      --test-server-stall MS  (for the bench's tests) the server stalls once,\n"
		"                          MS ms, at the first request of the measured time\n"
		"      --json              print a JSON array of runs instead of the table\n"
		"                          (with --sweep: one object, closed and open runs)\n"
		"      --save PREFIX       also write PREFIX.json, PREFIX.md (a markdown report\n"
		"                          with the accel/tcp and uds/tcp ratios) and PREFIX.tsv\n"
		"                          (for plots; with --sweep: the curve)\n"
		"  -v, --verbose           one line per run on stderr as it completes\n"
		"  -h, --help              this help\n"
		"  -V, --version           print the version\n"
		"\n"
		"Reported per run: operations/s, payload throughput (both directions for rr\n"
		"and crr), latency p50/p90/p99/p99.9 (and p99.99 with --rate) from a\n"
		"histogram of every operation in the measured time (<1%% error), CPU time\n"
		"(user + system, client + server) per operation, and the growth of the\n"
		"sockmesh counters; with --rate, the asked, scheduled and achieved rates.\n"
		"Open vs closed loop, the sweep and its knee: perf/README.md.\n"
		"\n"
		"Exit status: 0 ok, 1 a run failed, 2 usage or config error, 3 sockmesh not\n"
		"loaded (accel). Needs root for accel.\n",
		CONNS_MAX, SM_CONF_DEFAULT, BENCH_RATE_VALID * 100,
		KNEE_US_DEF);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("sockmesh-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'sockmesh-bench --help'.\n", stderr);
	exit(EXIT_USAGE);
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		bad_usage("%s: '%s' is not a number from %ld to %ld", opt, s,
			  min, max);
	return v;
}

static double parse_seconds(const char *opt, const char *s, double min)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > 3600)
		bad_usage("%s: '%s' is not a time in seconds (%s to 3600)", opt,
			  s, min > 0 ? "above 0" : "0");
	if (min > 0 && v <= 0)
		bad_usage("%s: '%s' is not a time in seconds (above 0 to 3600)",
			  opt, s);
	return v;
}

static size_t parse_size(const char *s)
{
	unsigned long long v;
	unsigned long mult = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		goto bad;
	if (!strcasecmp(end, "k") || !strcasecmp(end, "kib"))
		mult = 1024;
	else if (!strcasecmp(end, "m") || !strcasecmp(end, "mib"))
		mult = 1024 * 1024;
	else if (*end && strcasecmp(end, "b"))
		goto bad;
	if (!v || v > SIZE_MAX_BYTES / mult)
		goto bad;
	return (size_t)(v * mult);
bad:
	bad_usage(
		"--size: '%s' is not a size from 1 to 64M (K and M suffixes: KiB, MiB)",
		s);
}

/* Index of @s in @names, or -1. */
static int lookup(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

/* Split a comma list; @fn stores one item. */
static void parse_list(const char *opt, const char *arg,
		       void (*fn)(struct bench_matrix *, const char *),
		       struct bench_matrix *m)
{
	char buf[1024], *item, *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		bad_usage("%s: list too long", opt);
	for (item = strtok_r(buf, ",", &save); item;
	     item = strtok_r(NULL, ",", &save))
		fn(m, item);
	if (!arg[0] || arg[strlen(arg) - 1] == ',' || arg[0] == ',' ||
	    strstr(arg, ",,"))
		bad_usage("%s: empty item in '%s'", opt, arg);
}

static void add_mode(struct bench_matrix *m, const char *s)
{
	int v = lookup(s, bench_mode_names, BENCH_MODES);

	if (v < 0)
		bad_usage(
			"--mode: unknown mode '%s' (rr, crr, stream, stream-rw)",
			s);
	for (int i = 0; i < m->n_modes; i++)
		if (m->modes[i] == (enum bench_mode)v)
			bad_usage("--mode: '%s' listed twice", s);
	m->modes[m->n_modes++] = (enum bench_mode)v;
}

static void add_transport(struct bench_matrix *m, const char *s)
{
	int v = lookup(s, bench_transport_names, BENCH_TRANSPORTS);

	if (v < 0)
		bad_usage(
			"--transport: unknown transport '%s' (tcp, accel, uds)",
			s);
	for (int i = 0; i < m->n_transports; i++)
		if (m->transports[i] == (enum bench_transport)v)
			bad_usage("--transport: '%s' listed twice", s);
	m->transports[m->n_transports++] = (enum bench_transport)v;
}

static void add_size(struct bench_matrix *m, const char *s)
{
	size_t v = parse_size(s);

	if (m->n_sizes == BENCH_SIZES_MAX)
		bad_usage("--size: more than %d sizes", BENCH_SIZES_MAX);
	for (int i = 0; i < m->n_sizes; i++)
		if (m->sizes[i] == v)
			bad_usage("--size: '%s' listed twice", s);
	m->sizes[m->n_sizes++] = v;
}

static int parse_cpu(const char *opt, const char *s)
{
	cpu_set_t allowed;
	long cpu = parse_long(opt, s, 0, CPU_SETSIZE - 1);

	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
	    !CPU_ISSET((int)cpu, &allowed))
		bad_usage("%s: CPU %ld is not available to this process", opt,
			  cpu);
	return (int)cpu;
}

static void parse_addr(struct ctx *x, const char *s)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&x->env.ip;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&x->env.ip;

	memset(&x->env.ip, 0, sizeof(x->env.ip));
	if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		x->env.iplen = sizeof(*in);
	} else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		x->env.iplen = sizeof(*in6);
	} else {
		bad_usage("--addr: '%s' is not an IPv4 or IPv6 address", s);
	}
}

/* --proto echo | redis[:KEY] | http[:PATH]; the request is built once the
 * target (the Host header) is known, in parse_target. */
static const char *proto_arg_of(const char *s, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(s, name, n))
		return NULL;
	if (!s[n])
		return "";
	return s[n] == ':' ? s + n + 1 : NULL;
}

static void parse_proto(struct bench_matrix *m, const char *s)
{
	const char *arg;

	if (!strcmp(s, "echo")) {
		m->proto = BENCH_PROTO_ECHO;
		return;
	}
	if ((arg = proto_arg_of(s, "redis"))) {
		m->proto = BENCH_PROTO_REDIS;
		if (!arg[0])
			arg = "sockmesh-bench";
		if (strpbrk(arg, "\r\n"))
			bad_usage("--proto redis: the key has a line break");
	} else if ((arg = proto_arg_of(s, "http"))) {
		m->proto = BENCH_PROTO_HTTP;
		if (!arg[0])
			arg = "/";
		if (arg[0] != '/' || strpbrk(arg, " \t\r\n"))
			bad_usage(
				"--proto http: '%s' is not a path (it starts with /, no spaces)",
				arg);
	} else {
		bad_usage(
			"--proto: '%s' is not echo, redis[:KEY] or http[:PATH]",
			s);
	}
	snprintf(m->proto_arg, sizeof(m->proto_arg), "%s", arg);
	if (strlen(arg) >= sizeof(m->proto_arg))
		bad_usage("--proto: '%s' is longer than %zu characters", arg,
			  sizeof(m->proto_arg) - 1);
}

/* --target HOST:PORT or [ADDR]:PORT, numeric; builds --proto's request. */
static void parse_target(struct ctx *x, const char *s)
{
	struct bench_matrix *m = &x->m;
	char host[INET6_ADDRSTRLEN + 2], *end;
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hlen;
	long port;
	int ret;

	if (!colon || colon == s)
		bad_usage(
			"--target: '%s' is not HOST:PORT ([ADDR]:PORT for IPv6)",
			s);
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hlen < 3 || s[hlen - 1] != ']')
			bad_usage("--target: '%s' is not [ADDR]:PORT", s);
		h = s + 1;
		hlen -= 2;
	}
	if (hlen >= sizeof(host))
		bad_usage("--target: '%s': the address is too long", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		bad_usage("--target: '%s' is not a port from 1 to 65535",
			  colon + 1);
	if (strchr(host, ':') && s[0] != '[')
		bad_usage(
			"--target: '%s': write an IPv6 address as [ADDR]:PORT",
			s);
	memset(&x->env.ip, 0, sizeof(x->env.ip));
	if (s[0] != '[' &&
	    inet_pton(AF_INET, host,
		      &((struct sockaddr_in *)&x->env.ip)->sin_addr) == 1) {
		struct sockaddr_in *in = (struct sockaddr_in *)&x->env.ip;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		x->env.iplen = sizeof(*in);
	} else if (s[0] == '[' &&
		   inet_pton(AF_INET6, host,
			     &((struct sockaddr_in6 *)&x->env.ip)->sin6_addr) ==
			   1) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&x->env.ip;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		x->env.iplen = sizeof(*in6);
	} else {
		bad_usage(
			"--target: '%s' is not a numeric IPv4 or IPv6 address",
			host);
	}
	x->env.target = true;
	if (m->proto == BENCH_PROTO_ECHO)
		return;
	ret = bench_proto_request(m->proto, m->proto_arg, s, m->req,
				  sizeof(m->req), &m->req_len);
	if (ret)
		bad_usage("--proto: the request would be longer than %zu bytes",
			  sizeof(m->req) - 1);
}

enum {
	OPT_CPU_SERVER = 256,
	OPT_CPU_CLIENT,
	OPT_JSON,
	OPT_SAVE,
	OPT_RW_POLL,
	OPT_RATE,
	OPT_ARRIVALS,
	OPT_SWEEP,
	OPT_KNEE_US,
	OPT_STALL,
	OPT_TARGET,
	OPT_PROTO,
};

static double parse_double(const char *opt, const char *s, double min,
			   double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
		bad_usage("%s: '%s' is not a number from %g to %g", opt, s, min,
			  max);
	return v;
}

static void parse_opts(struct ctx *x, int argc, char **argv)
{
	static const struct option opts[] = {
		{"mode", required_argument, NULL, 'm'},
		{"transport", required_argument, NULL, 'T'},
		{"size", required_argument, NULL, 's'},
		{"conns", required_argument, NULL, 'n'},
		{"time", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{"rounds", required_argument, NULL, 'r'},
		{"config", required_argument, NULL, 'c'},
		{"addr", required_argument, NULL, 'a'},
		{"cpu-server", required_argument, NULL, OPT_CPU_SERVER},
		{"cpu-client", required_argument, NULL, OPT_CPU_CLIENT},
		{"json", no_argument, NULL, OPT_JSON},
		{"save", required_argument, NULL, OPT_SAVE},
		{"rw-poll", no_argument, NULL, OPT_RW_POLL},
		{"rate", required_argument, NULL, OPT_RATE},
		{"arrivals", required_argument, NULL, OPT_ARRIVALS},
		{"sweep", no_argument, NULL, OPT_SWEEP},
		{"knee-us", required_argument, NULL, OPT_KNEE_US},
		{"test-server-stall", required_argument, NULL, OPT_STALL},
		{"target", required_argument, NULL, OPT_TARGET},
		{"proto", required_argument, NULL, OPT_PROTO},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{},
	};
	struct bench_matrix *m = &x->m;
	const char *proto_arg = NULL;
	bool size_set = false, addr_set = false, transport_set = false;
	size_t len = 0;
	int opt;

	m->conns = 1;
	m->rounds = 1;
	m->duration = 2;
	m->warmup = 0.2;
	m->cpu_server = -1;
	m->cpu_client = -1;
	m->knee_us = KNEE_US_DEF;
	parse_addr(x, "127.0.0.1");
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":m:T:s:n:t:w:r:c:a:vhV", opts,
				  NULL)) != -1) {
		switch (opt) {
		case 'm':
			m->n_modes = 0;
			parse_list("--mode", optarg, add_mode, m);
			break;
		case 'T':
			m->n_transports = 0;
			parse_list("--transport", optarg, add_transport, m);
			transport_set = true;
			break;
		case 's':
			m->n_sizes = 0;
			parse_list("--size", optarg, add_size, m);
			size_set = true;
			break;
		case 'n':
			m->conns = (int)parse_long("--conns", optarg, 1,
						   CONNS_MAX);
			break;
		case 't':
			m->duration = parse_seconds("--time", optarg, 1e-3);
			break;
		case 'w':
			m->warmup = parse_seconds("--warmup", optarg, 0);
			break;
		case 'r':
			m->rounds = (int)parse_long("--rounds", optarg, 1,
						    BENCH_ROUNDS_MAX);
			break;
		case 'c':
			x->config = optarg;
			break;
		case 'a':
			parse_addr(x, optarg);
			addr_set = true;
			break;
		case OPT_CPU_SERVER:
			m->cpu_server = parse_cpu("--cpu-server", optarg);
			break;
		case OPT_CPU_CLIENT:
			m->cpu_client = parse_cpu("--cpu-client", optarg);
			break;
		case OPT_RW_POLL:
			m->rw_poll = true;
			break;
		case OPT_RATE:
			m->rate = parse_double("--rate", optarg, 1, RATE_MAX);
			break;
		case OPT_ARRIVALS:
			if (!strcmp(optarg, "exp"))
				m->exp_arrivals = true;
			else if (!strcmp(optarg, "const"))
				m->exp_arrivals = false;
			else
				bad_usage(
					"--arrivals: '%s' is not const or exp",
					optarg);
			break;
		case OPT_SWEEP:
			m->sweep = true;
			break;
		case OPT_KNEE_US:
			m->knee_us = parse_double("--knee-us", optarg, 1, 1e7);
			break;
		case OPT_STALL:
			m->stall_ns =
				(uint64_t)parse_long("--test-server-stall",
						     optarg, 1, 10000) *
				1000000ULL;
			break;
		case OPT_TARGET:
			m->target = optarg;
			break;
		case OPT_PROTO:
			proto_arg = optarg;
			break;
		case OPT_JSON:
			x->json = true;
			break;
		case OPT_SAVE:
			if (!optarg[0])
				bad_usage("--save: empty prefix");
			x->save = optarg;
			break;
		case 'v':
			x->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("sockmesh-bench %s\n", SM_VERSION);
			exit(0);
		case ':':
			bad_usage("option '%s' needs a value",
				  argv[optind - 1]);
		default:
			bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (!m->n_modes)
		add_mode(m, "rr");
	if (!m->n_transports)
		add_transport(m, "tcp");
	if (proto_arg)
		parse_proto(m, proto_arg);
	if (m->target) {
		if (addr_set)
			bad_usage(
				"--addr and --target: --target names the server's address");
		parse_target(x, m->target);
		if (transport_set &&
		    (m->n_transports != 1 || m->transports[0] != BENCH_TCP))
			bad_usage(
				"--target: the client runs where the bench runs (-T tcp only); to measure an accelerated client, start the bench in that cgroup or pod");
		if (m->n_modes != 1 || m->modes[0] != BENCH_RR)
			bad_usage("--target: mode rr only");
		if (m->cpu_server >= 0)
			bad_usage(
				"--cpu-server: no server of ours with --target");
		if (m->stall_ns)
			bad_usage(
				"--test-server-stall: no server of ours with --target");
	} else if (m->proto != BENCH_PROTO_ECHO) {
		bad_usage("--proto %s: needs --target (a %s server to talk to)",
			  bench_proto_names[m->proto],
			  bench_proto_names[m->proto]);
	}
	if (m->proto != BENCH_PROTO_ECHO) {
		if (size_set)
			bad_usage("--size: --proto %s sends its own request",
				  bench_proto_names[m->proto]);
		m->n_sizes = 1;
		m->sizes[0] = m->req_len;
	}
	if (!m->n_sizes)
		add_size(m, "64");
	if ((m->rate > 0 || m->sweep) &&
	    (m->n_modes != 1 || m->modes[0] != BENCH_RR))
		bad_usage("--%s: mode rr only", m->sweep ? "sweep" : "rate");
	if (m->rate > 0 && m->sweep)
		bad_usage("--rate and --sweep: the sweep chooses its rates");
	if (m->sweep && m->n_sizes != 1)
		bad_usage("--sweep: one size only (--size lists %d)",
			  m->n_sizes);
	if (m->sweep && m->rounds > BENCH_ROUNDS_MAX / 2)
		bad_usage("--sweep: --rounds %d at most", BENCH_ROUNDS_MAX / 2);
	for (int i = 0; i < m->n_modes && m->conns > 1; i++)
		if (m->modes[i] == BENCH_STREAM_RW)
			bad_usage(
				"--mode stream-rw: one connection only (it blocks in write() and read()); --conns %d",
				m->conns);
	for (int i = 0; i < m->n_sizes; i++) {
		size_t per =
			m->sizes[i] > 256 * 1024 ? m->sizes[i] : 256 * 1024;

		if (per * (size_t)m->conns > MEM_MAX_BYTES)
			bad_usage(
				"--conns %d x --size %zu needs more than %lu MiB of buffers",
				m->conns, m->sizes[i], MEM_MAX_BYTES >> 20);
	}
	for (int i = 0; i < argc && len < sizeof(m->cmdline) - 1; i++)
		len += (size_t)snprintf(m->cmdline + len,
					sizeof(m->cmdline) - len, "%s%s",
					i ? " " : "", argv[i]);
}

static bool wants(const struct bench_matrix *m, enum bench_transport t)
{
	for (int i = 0; i < m->n_transports; i++)
		if (m->transports[i] == t)
			return true;
	return false;
}

static bool id_in(__u64 id, const __u64 *ids, int n)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* The attached cgroup this process runs in or below, into @buf, if any:
 * then its tcp runs are accelerated too. */
static int self_attached(const char *mnt, const __u64 *ids, int n, char *buf,
			 size_t len)
{
	char line[PATH_MAX] = "", *rel = NULL, *slash;
	FILE *f = fopen("/proc/self/cgroup", "r");
	__u64 id;
	int fd, found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			rel = line + 3;
			rel[strcspn(rel, "\n")] = '\0';
			break;
		}
	fclose(f);
	while (rel && !found) {
		fd = sm_cgroup_open(mnt, rel[0] == '/' ? rel + 1 : rel, 0);
		if (fd >= 0) {
			found = !sm_cgroup_id(fd, &id) && id_in(id, ids, n);
			close(fd);
		}
		if (found)
			snprintf(buf, len, "%s", rel[0] ? rel : "/");
		slash = strrchr(rel, '/');
		if (!rel[0])
			rel = NULL;
		else if (slash)
			*slash = '\0';
		else
			rel[0] = '\0';
	}
	return found;
}

/* The config, its pins (for the counters) and, for accel, its attached
 * cgroup. Prints what is wrong; 0, -EINVAL (config), -ENOENT (not loaded)
 * or another -errno. */
static int open_sockmesh(struct ctx *x)
{
	bool accel = wants(&x->m, BENCH_ACCEL);
	char err[SM_ERR_LEN], mnt[PATH_MAX], self[PATH_MAX + 8];
	__u64 id, ids[SM_LINKS_MAX];
	int ret, n;

	x->env.cg_fd = -1;
	sm_pins_init(&x->pins, "");
	if (!accel && !x->config)
		return 0;
	if (sm_config_load_default(&x->cfg, x->config, err, sizeof(err))) {
		fprintf(stderr, "sockmesh-bench: %s\n", err);
		return -EINVAL;
	}
	sm_pins_init(&x->pins, x->cfg.pin_dir);
	ret = sm_pins_open(&x->pins);
	if (ret && !accel) {
		fprintf(stderr,
			"sockmesh-bench: warning: no sockmesh counters: cannot open the pins in %s: %s\n",
			x->pins.dir, strerror(-ret));
		return 0;
	}
	if (ret == -ENOENT) {
		fprintf(stderr,
			"sockmesh-bench: sockmesh is not loaded: no pins in %s (start sockmeshd%s%s)\n",
			x->pins.dir, x->config ? " -c " : ": make run",
			x->config ? x->config : "");
		return ret;
	}
	if (ret) {
		fprintf(stderr,
			"sockmesh-bench: cannot open the pins in %s: %s\n",
			x->pins.dir, strerror(-ret));
		return ret;
	}
	x->env.pins = &x->pins;
	n = sm_pins_links(&x->pins, ids, SM_LINKS_MAX);
	if (n < 0)
		n = 0;
	ret = sm_cgroup2_mount(mnt, sizeof(mnt));
	if (ret) {
		fprintf(stderr,
			"sockmesh-bench: no cgroup2 hierarchy is mounted\n");
		return accel ? ret : 0;
	}
	/* --target: a client in the accelerated cgroup is the point */
	if (!x->m.target && wants(&x->m, BENCH_TCP) &&
	    self_attached(mnt, ids, n, self, sizeof(self)))
		fprintf(stderr,
			"sockmesh-bench: warning: running in the accelerated cgroup %s: tcp runs will be accelerated too\n",
			self);
	if (!accel)
		return 0;
	if (!x->cfg.n_cgroups) {
		fprintf(stderr, "sockmesh-bench: %s configures no cgroup\n",
			x->cfg.path);
		return -EINVAL;
	}
	x->env.cg_fd = sm_cgroup_open(mnt, x->cfg.cgroups[0], 0);
	if (x->env.cg_fd < 0 || sm_cgroup_id(x->env.cg_fd, &id)) {
		fprintf(stderr,
			"sockmesh-bench: sockmesh is not loaded: cgroup %s/%s does not exist (start sockmeshd first)\n",
			mnt, x->cfg.cgroups[0]);
		return -ENOENT;
	}
	if (!id_in(id, ids, n)) {
		fprintf(stderr,
			"sockmesh-bench: sockmesh is not loaded in cgroup /%s: sockmeshd is not attached there\n",
			x->cfg.cgroups[0]);
		return -ENOENT;
	}
	return 0;
}

static void progress(const struct ctx *x, int done, int total,
		     const struct bench_result *r, int ret)
{
	char size[32];

	if (!x->verbose)
		return;
	bench_fmt_size(size, sizeof(size), r->p.size);
	fprintf(stderr, "[%d/%d] %-9s %-5s %7s: ", done, total,
		bench_mode_names[r->p.mode],
		bench_transport_names[r->p.transport], size);
	if (ret)
		fprintf(stderr, "FAILED: %s\n", r->err);
	else if (r->p.rate > 0)
		fprintf(stderr,
			"asked %.0f/s, achieved %.0f/s, p50 %.1f us, p99 %.1f us%s\n",
			r->p.rate, r->ops_per_s_round[r->rounds - 1],
			(double)bench_hist_quantile(&x->env.sh->hist, 0.5) /
				1e3,
			(double)bench_hist_quantile(&x->env.sh->hist, 0.99) /
				1e3,
			x->env.sh->client.unfinished ||
					(double)x->env.sh->client.ops <
						BENCH_RATE_VALID *
							(double)x->env.sh
								->client.sched
				? " (fell short)"
				: "");
	else
		fprintf(stderr, "%.0f ops/s, p50 %.1f us\n",
			r->ops_per_s_round[r->rounds - 1],
			(double)bench_hist_quantile(&x->env.sh->hist, 0.5) /
				1e3);
}

static void bench_params_target(const struct bench_matrix *m,
				struct bench_params *p)
{
	p->target = m->target != NULL;
	p->proto = m->proto;
	p->req = m->req;
	p->req_len = m->req_len;
}

/* ---- --sweep ----------------------------------------------------------- */

static void sweep_params(const struct bench_matrix *m, struct bench_result *r,
			 enum bench_transport t, double rate, double load)
{
	r->p.mode = BENCH_RR;
	r->p.transport = t;
	r->p.size = m->sizes[0];
	r->p.conns = m->conns;
	r->p.warmup_ns = (uint64_t)(m->warmup * 1e9);
	r->p.duration_ns = (uint64_t)(m->duration * 1e9);
	r->p.rate = rate;
	r->p.exp_arrivals = m->exp_arrivals;
	r->p.stall_ns = m->stall_ns;
	bench_params_target(m, &r->p);
	r->load = load;
	r->verified = true;
}

/* Closed-loop maxima, then the loads, the transports interleaved. Returns
 * the number of failed runs (an overloaded open-loop run is not one), or
 * -1 when the reference maximum is unknown. */
static int run_sweep(struct ctx *x, struct bench_sweep *sw)
{
	const struct bench_matrix *m = &x->m;
	int nt = m->n_transports, failed = 0, done = 0;
	int total = m->rounds * nt * (1 + BENCH_SWEEP_LOADS);

	sw->size = m->sizes[0];
	sw->n_transports = nt;
	sw->knee_us = m->knee_us;
	sw->ref = 0;
	for (int ti = 0; ti < nt; ti++) {
		sw->transports[ti] = m->transports[ti];
		if (m->transports[ti] == BENCH_TCP)
			sw->ref = ti;
		sweep_params(m, &sw->closed[ti], m->transports[ti], 0, 0);
	}
	for (int round = 0; round < m->rounds; round++)
		for (int ti = 0; ti < nt; ti++) {
			struct bench_result *r = &sw->closed[ti];
			int ret = bench_run(&x->env, &r->p, r);

			failed += ret != 0;
			progress(x, ++done, total, r, ret);
		}
	sw->ref_max = bench_ops_per_s(&sw->closed[sw->ref]);
	if (sw->closed[sw->ref].err[0] || sw->ref_max <= 0) {
		fprintf(stderr,
			"sockmesh-bench: --sweep: no closed-loop maximum for %s: %s\n",
			bench_transport_names[sw->transports[sw->ref]],
			sw->closed[sw->ref].err);
		return -1;
	}
	for (int li = 0; li < BENCH_SWEEP_LOADS; li++)
		for (int ti = 0; ti < nt; ti++)
			sweep_params(m, &sw->open[li * nt + ti],
				     m->transports[ti],
				     bench_sweep_loads[li] * sw->ref_max,
				     bench_sweep_loads[li]);
	for (int round = 0; round < m->rounds; round++)
		for (int li = 0; li < BENCH_SWEEP_LOADS; li++)
			for (int ti = 0; ti < nt; ti++) {
				struct bench_result *r =
					&sw->open[li * nt + ti];
				int ret;

				r->p.seed = (uint64_t)(round * 16 + li + 1);
				ret = bench_run(&x->env, &r->p, r);
				failed += ret != 0;
				progress(x, ++done, total, r, ret);
			}
	return failed;
}

/* Every mode x size x transport, in run order. */
static void init_results(const struct bench_matrix *m, struct bench_result *res)
{
	for (int mi = 0; mi < m->n_modes; mi++)
		for (int si = 0; si < m->n_sizes; si++)
			for (int ti = 0; ti < m->n_transports; ti++) {
				struct bench_result *r =
					&res[bench_idx(m, mi, si, ti)];

				r->p.mode = m->modes[mi];
				r->p.size = m->sizes[si];
				r->p.transport = m->transports[ti];
				r->p.conns = m->conns;
				r->p.warmup_ns = (uint64_t)(m->warmup * 1e9);
				r->p.duration_ns =
					(uint64_t)(m->duration * 1e9);
				r->p.rw_poll = m->rw_poll;
				r->p.rate = m->rate;
				r->p.exp_arrivals = m->exp_arrivals;
				r->p.stall_ns = m->stall_ns;
				bench_params_target(m, &r->p);
				r->verified = true;
			}
}

static int run_matrix(struct ctx *x, struct bench_result *res)
{
	const struct bench_matrix *m = &x->m;
	int total = bench_nresults(m) * m->rounds, done = 0, failed = 0;

	for (int round = 0; round < m->rounds; round++)
		for (int mi = 0; mi < m->n_modes; mi++)
			for (int si = 0; si < m->n_sizes; si++)
				for (int ti = 0; ti < m->n_transports; ti++) {
					struct bench_result *r =
						&res[bench_idx(m, mi, si, ti)];
					int ret;

					r->p.seed = (uint64_t)round + 1;
					ret = bench_run(&x->env, &r->p, r);
					failed += ret != 0;
					progress(x, ++done, total, r, ret);
				}
	return failed;
}

static int save(const struct ctx *x, const struct bench_result *res,
		const struct bench_sweep *sw)
{
	static const char *const ext[] = {"json", "md", "tsv"};
	char path[PATH_MAX];
	FILE *f;

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s.%s", x->save, ext[i]);
		f = fopen(path, "w");
		if (!f) {
			fprintf(stderr, "sockmesh-bench: cannot write %s: %s\n",
				path, strerror(errno));
			return -errno;
		}
		if (sw && i == 0)
			bench_print_sweep_json(f, &x->m, sw);
		else if (sw && i == 1)
			bench_print_sweep_markdown(f, &x->m, sw);
		else if (sw)
			bench_print_sweep_tsv(f, &x->m, sw);
		else if (i == 0)
			bench_print_json(f, &x->m, res);
		else if (i == 1)
			bench_print_markdown(f, &x->m, res);
		else
			bench_print_tsv(f, &x->m, res);
		if (fclose(f)) {
			fprintf(stderr, "sockmesh-bench: cannot write %s: %s\n",
				path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct ctx x;
	struct bench_result *res = NULL;
	struct bench_sweep *sw = NULL;
	sigset_t chld;
	int ret, failed, status = EXIT_FAILURE;

	parse_opts(&x, argc, argv);
	ret = open_sockmesh(&x);
	if (ret) {
		status = ret == -EINVAL	  ? EXIT_USAGE
			 : ret == -ENOENT ? EXIT_NOT_LOADED
					  : EXIT_FAILURE;
		goto out_core;
	}
	x.env.sh = mmap(NULL, sizeof(*x.env.sh), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (x.env.sh == MAP_FAILED) {
		fprintf(stderr, "sockmesh-bench: mmap: %s\n", strerror(errno));
		goto out_core;
	}
	res = calloc((size_t)bench_nresults(&x.m), sizeof(*res));
	if (x.m.sweep)
		sw = calloc(1, sizeof(*sw));
	if (!res || (x.m.sweep && !sw)) {
		fprintf(stderr, "sockmesh-bench: out of memory\n");
		goto out_unmap;
	}
	init_results(&x.m, res);
	x.env.parent = getpid();
	x.env.cpu_server = x.m.cpu_server;
	x.env.cpu_client = x.m.cpu_client;
	x.env.cg_name = x.cfg.n_cgroups ? x.cfg.cgroups[0] : "";
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &x.env.child_mask);
	signal(SIGPIPE, SIG_IGN);

	if (sw) {
		failed = run_sweep(&x, sw);
		if (failed < 0)
			goto out_free;
		if (x.json)
			bench_print_sweep_json(stdout, &x.m, sw);
		else
			bench_print_sweep_table(stdout, &x.m, sw);
	} else {
		failed = run_matrix(&x, res);
		/* an open-loop run that fell short of its rate is refused */
		for (int i = 0; i < bench_nresults(&x.m); i++)
			failed += !res[i].err[0] && !bench_rate_valid(&res[i]);
		if (x.json)
			bench_print_json(stdout, &x.m, res);
		else
			bench_print_table(stdout, &x.m, res);
	}
	if (fflush(stdout))
		failed++;
	if (x.save && save(&x, res, sw))
		failed++;
	status = failed ? EXIT_FAILURE : EXIT_SUCCESS;

out_free:
	free(sw);
	free(res);
out_unmap:
	munmap(x.env.sh, sizeof(*x.env.sh));
out_core:
	if (x.env.cg_fd >= 0)
		close(x.env.cg_fd);
	sm_pins_close(&x.pins);
	return status;
}

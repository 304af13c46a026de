// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_report.c - the results as a table (one row per run), a JSON array,
 * a markdown report (each transport's figure per mode and size, the ratios
 * to tcp, the counters that prove the accel runs were redirected) and TSV
 * for gnuplot.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "json.h"

const char *const bench_mode_names[BENCH_MODES] = {
	[BENCH_RR] = "rr",
	[BENCH_CRR] = "crr",
	[BENCH_STREAM] = "stream",
	[BENCH_STREAM_RW] = "stream-rw",
};

const char *const bench_transport_names[BENCH_TRANSPORTS] = {
	[BENCH_TCP] = "tcp",
	[BENCH_ACCEL] = "accel",
	[BENCH_UDS] = "uds",
};

const double bench_sweep_loads[BENCH_SWEEP_LOADS] = {
	0.10, 0.25, 0.50, 0.75, 0.90, 1.00, 1.10,
};

static bool ok(const struct bench_result *r)
{
	return r->rounds > 0 && !r->err[0];
}

double bench_sched_per_s(const struct bench_result *r)
{
	return r->window_ns ? (double)r->sched * 1e9 / (double)r->window_ns : 0;
}

bool bench_rate_valid(const struct bench_result *r)
{
	if (r->p.rate <= 0)
		return true;
	return r->sched && !r->unfinished &&
	       (double)r->ops >= BENCH_RATE_VALID * (double)r->sched;
}

double bench_ops_per_s(const struct bench_result *r)
{
	return r->window_ns ? (double)r->ops * 1e9 / (double)r->window_ns : 0;
}

double bench_bytes_per_s(const struct bench_result *r)
{
	double per_op = (double)r->p.size;

	if (r->p.proto != BENCH_PROTO_ECHO) /* the request and its response */
		per_op += r->resp_n ? (double)r->resp_bytes / (double)r->resp_n
				    : 0;
	else if (!bench_is_stream(r->p.mode))
		per_op *= 2; /* the request and its echo */
	return bench_ops_per_s(r) * per_op;
}

double bench_cpu_ns_per_op(const struct bench_result *r)
{
	return r->ops ? (double)(r->cpu_client_ns + r->cpu_server_ns) /
				(double)r->ops
		      : 0;
}

void bench_fmt_size(char *buf, size_t len, size_t size)
{
	if (size >= (1U << 20) && !(size % (1U << 20)))
		snprintf(buf, len, "%zu MiB", size >> 20);
	else if (size >= 1024 && !(size % 1024))
		snprintf(buf, len, "%zu KiB", size >> 10);
	else
		snprintf(buf, len, "%zu B", size);
}

/* Half the range of the rounds' ops/s, relative to their mean. */
static double spread(const struct bench_result *r)
{
	double lo = 0, hi = 0, sum = 0;

	for (int i = 0; i < r->rounds; i++) {
		double v = r->ops_per_s_round[i];

		if (!i || v < lo)
			lo = v;
		if (!i || v > hi)
			hi = v;
		sum += v;
	}
	return r->rounds > 1 && sum > 0 ? (hi - lo) / 2 / (sum / r->rounds) : 0;
}

static bool counters_moved(const struct bench_result *r)
{
	__u64 any = 0;

#define SM_ANY(name, ...) any |= r->ctr.name;
	SM_COUNTERS(SM_ANY)
#undef SM_ANY
	return any != 0;
}

/* ok; FAILED; NOT REDIRECTED (accel); COUNTERS MOVED (tcp, uds). */
/* Did compat = strict keep the run's connections on TCP? (The bench's
 * io_uring loops use blocking sockets, as io_uring allows.) */
static int strict_kept(const struct bench_result *r)
{
	return r->ctr.strict_blocking || r->ctr.strict_rcvlowat ||
	       r->ctr.strict_peek_off;
}

static const char *check(const struct bench_result *r)
{
	if (!ok(r))
		return "FAILED";
	if (!bench_rate_valid(r))
		return r->load > 0 ? "OVERLOADED" : "INVALID";
	if (!r->have_counters)
		return "ok";
	/* --target: where the client runs decides; the counters say which */
	if (r->p.target && r->ctr.bytes_redirected)
		return "redirected";
	if (r->p.target)
		return strict_kept(r) ? "TCP (compat = strict)" : "ok";
	if (r->p.transport == BENCH_ACCEL && !r->ctr.bytes_redirected &&
	    strict_kept(r))
		return "TCP (compat = strict)";
	if (r->p.transport == BENCH_ACCEL)
		return r->ctr.bytes_redirected ? "ok" : "NOT REDIRECTED";
	return counters_moved(r) ? "COUNTERS MOVED" : "ok";
}

/* 3 significant digits: "812ns", "20.1us", "1.23ms". */
static void fmt_ns(char *buf, size_t len, double ns)
{
	static const char *const unit[] = {"ns", "us", "ms", "s"};
	int u = 0;

	while (ns >= 1000 && u < 3) {
		ns /= 1000;
		u++;
	}
	if (!u || ns >= 100)
		snprintf(buf, len, "%.0f%s", ns, unit[u]);
	else if (ns >= 10)
		snprintf(buf, len, "%.1f%s", ns, unit[u]);
	else
		snprintf(buf, len, "%.2f%s", ns, unit[u]);
}

/* "950", "12.3K", "4.56G" */
static void fmt_count(char *buf, size_t len, double v)
{
	static const char *const unit[] = {"", "K", "M", "G", "T"};
	int u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, u ? "%.3g%s" : "%.0f%s", v, unit[u]);
}

/* Microseconds with 3 significant digits, for the markdown tables. */
static void fmt_us(char *buf, size_t len, double ns)
{
	double us = ns / 1e3;

	snprintf(buf, len, us >= 100 ? "%.0f" : us >= 10 ? "%.1f" : "%.2f", us);
}

static void fmt_num(char *buf, size_t len, double v)
{
	snprintf(buf, len, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
}

static void bench_print_table_closed(FILE *out, const struct bench_matrix *m,
				     const struct bench_result *res);

/* Open loop: one row per run, the rates and p50 .. p99.99. */
static void print_rate_row(FILE *out, const struct bench_result *r,
			   const char *first)
{
	static const double q[] = {0.5, 0.9, 0.99, 0.999, 0.9999};
	char size[32], lat[5][16], asked[16], sched[16], got[16];

	bench_fmt_size(size, sizeof(size), r->p.size);
	for (int k = 0; k < 5; k++)
		if (r->hist.n)
			fmt_ns(lat[k], sizeof(lat[k]),
			       (double)bench_hist_quantile(&r->hist, q[k]));
		else /* nothing scheduled in the window was sent */
			snprintf(lat[k], sizeof(lat[k]), "-");
	fmt_count(asked, sizeof(asked), r->p.rate);
	fmt_count(sched, sizeof(sched), bench_sched_per_s(r));
	fmt_count(got, sizeof(got), bench_ops_per_s(r));
	fprintf(out, "%-5s %-5s %7s %5d %8s %8s %8s %8s %8s %8s %8s %8s  %s\n",
		first, bench_transport_names[r->p.transport], size, r->p.conns,
		asked, sched, got, lat[0], lat[1], lat[2], lat[3], lat[4],
		check(r));
}

static void print_rate_header(FILE *out, const char *first)
{
	fprintf(out, "%-5s %-5s %7s %5s %8s %8s %8s %8s %8s %8s %8s %8s  %s\n",
		first, "trans", "size", "conns", "asked/s", "sched/s", "done/s",
		"p50", "p90", "p99", "p99.9", "p99.99", "check");
}

static void print_failures(FILE *out, const struct bench_result *res, int n)
{
	char size[32];
	int failed = 0;

	for (int i = 0; i < n; i++) {
		if (ok(&res[i]))
			continue;
		if (!failed++)
			fprintf(out, "\nfailed:\n");
		bench_fmt_size(size, sizeof(size), res[i].p.size);
		fprintf(out, "  %s %s %s: %s\n",
			bench_mode_names[res[i].p.mode],
			bench_transport_names[res[i].p.transport], size,
			res[i].err[0] ? res[i].err : "no round ran");
	}
}

void bench_print_table(FILE *out, const struct bench_matrix *m,
		       const struct bench_result *res)
{
	if (m->target && m->proto == BENCH_PROTO_ECHO)
		fprintf(out, "client only, against %s: echo of SIZE bytes\n",
			m->target);
	else if (m->target && res[0].resp_n)
		fprintf(out,
			"client only, against %s: %s %s (SIZE: the request), %.0f-byte responses on average\n",
			m->target, bench_proto_names[m->proto], m->proto_arg,
			(double)res[0].resp_bytes / (double)res[0].resp_n);
	else if (m->target)
		fprintf(out,
			"client only, against %s: %s %s (SIZE: the request)\n",
			m->target, bench_proto_names[m->proto], m->proto_arg);
	if (m->rate > 0) {
		int n = bench_nresults(m), bad = 0;

		fprintf(out,
			"open loop, %s arrivals; latency from each request's intended send time\n",
			m->exp_arrivals ? "Poisson" : "constant");
		print_rate_header(out, "mode");
		for (int i = 0; i < n; i++) {
			print_rate_row(out, &res[i], "rr");
			bad += ok(&res[i]) && !bench_rate_valid(&res[i]);
		}
		if (bad)
			fprintf(out,
				"\nINVALID: completed fewer than %.0f%% of the requests scheduled in the measured time (the transport, or this machine, cannot keep up with the rate)\n",
				BENCH_RATE_VALID * 100);
		print_failures(out, res, n);
		return;
	}
	bench_print_table_closed(out, m, res);
}

static void bench_print_table_closed(FILE *out, const struct bench_matrix *m,
				     const struct bench_result *res)
{
	static const double q[] = {0.5, 0.9, 0.99, 0.999};
	char size[32], lat[4][16], ops[16], mbs[16], cpu[16], red[16], pass[16];
	int n = bench_nresults(m), failed = 0;

	fprintf(out,
		"%-9s %-5s %7s %5s %9s %9s %8s %8s %8s %8s %8s %11s %11s  %s\n",
		"mode", "trans", "size", "conns", "ops/s", "MB/s", "p50", "p90",
		"p99", "p99.9", "cpu/op", "redir.bytes", "passed.msgs",
		"check");
	for (int i = 0; i < n; i++) {
		const struct bench_result *r = &res[i];

		bench_fmt_size(size, sizeof(size), r->p.size);
		for (int k = 0; k < 4; k++)
			fmt_ns(lat[k], sizeof(lat[k]),
			       (double)bench_hist_quantile(&r->hist, q[k]));
		fmt_count(ops, sizeof(ops), bench_ops_per_s(r));
		snprintf(mbs, sizeof(mbs), "%.1f", bench_bytes_per_s(r) / 1e6);
		fmt_ns(cpu, sizeof(cpu), bench_cpu_ns_per_op(r));
		if (r->have_counters) {
			fmt_count(red, sizeof(red),
				  (double)r->ctr.bytes_redirected);
			fmt_count(pass, sizeof(pass),
				  (double)r->ctr.msgs_passed);
		} else {
			strcpy(red, "-");
			strcpy(pass, "-");
		}
		fprintf(out,
			"%-9s %-5s %7s %5d %9s %9s %8s %8s %8s %8s %8s %11s %11s  %s\n",
			bench_mode_names[r->p.mode],
			bench_transport_names[r->p.transport], size, r->p.conns,
			ops, mbs, lat[0], lat[1], lat[2], lat[3], cpu, red,
			pass, check(r));
		failed += !ok(r);
	}
	if (!failed)
		return;
	fprintf(out, "\nfailed:\n");
	for (int i = 0; i < n; i++) {
		if (ok(&res[i]))
			continue;
		bench_fmt_size(size, sizeof(size), res[i].p.size);
		fprintf(out, "  %s %s %s: %s\n",
			bench_mode_names[res[i].p.mode],
			bench_transport_names[res[i].p.transport], size,
			res[i].err[0] ? res[i].err : "no round ran");
	}
}

static void json_str(FILE *out, const char *s)
{
	sm_json_quote(out, s); /* the one escaper (cgroupd/lib/json.c) */
}

static void json_run(FILE *out, const struct bench_matrix *m,
		     const struct bench_result *r)
{
	const struct bench_hist *h = &r->hist;
	const char *sep = "";

	fprintf(out, "  {\"mode\": \"%s\", \"transport\": \"%s\", ",
		bench_mode_names[r->p.mode],
		bench_transport_names[r->p.transport]);
	fprintf(out, "\"size\": %zu, \"conns\": %d, \"rounds\": %d, ",
		r->p.size, r->p.conns, r->rounds);
	fprintf(out, "\"duration\": %.3f, \"warmup\": %.3f, ",
		(double)r->window_ns / 1e9, m->warmup);
	fprintf(out, "\"ops\": %llu, \"ops_per_s\": %.1f, ",
		(unsigned long long)r->ops, bench_ops_per_s(r));
	fprintf(out, "\"ops_per_s_rounds\": [");
	for (int i = 0; i < r->rounds; i++)
		fprintf(out, "%s%.1f", i ? ", " : "", r->ops_per_s_round[i]);
	fprintf(out, "], \"bytes_per_s\": %.0f, ", bench_bytes_per_s(r));
	fprintf(out,
		"\"lat_ns\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"p999\": %llu, ",
		(unsigned long long)bench_hist_quantile(h, 0.5),
		(unsigned long long)bench_hist_quantile(h, 0.9),
		(unsigned long long)bench_hist_quantile(h, 0.99),
		(unsigned long long)bench_hist_quantile(h, 0.999));
	fprintf(out, "\"p9999\": %llu, ",
		(unsigned long long)bench_hist_quantile(h, 0.9999));
	fprintf(out, "\"min\": %llu, \"max\": %llu, \"mean\": %.0f}, ",
		(unsigned long long)h->min, (unsigned long long)h->max,
		h->n ? (double)h->sum / (double)h->n : 0.0);
	fprintf(out,
		"\"cpu_ns_per_op\": %.0f, \"cpu_ns\": {\"client\": %llu, \"server\": %llu}, ",
		bench_cpu_ns_per_op(r), (unsigned long long)r->cpu_client_ns,
		(unsigned long long)r->cpu_server_ns);
	if (r->p.rate > 0)
		fprintf(out,
			"\"open_loop\": {\"arrivals\": \"%s\", \"rate_asked\": %.1f, \"rate_scheduled\": %.1f, \"rate_achieved\": %.1f, \"scheduled\": %llu, \"unfinished\": %llu, \"valid\": %s}, ",
			r->p.exp_arrivals ? "exp" : "const", r->p.rate,
			bench_sched_per_s(r), bench_ops_per_s(r),
			(unsigned long long)r->sched,
			(unsigned long long)r->unfinished,
			bench_rate_valid(r) ? "true" : "false");
	if (r->load > 0)
		fprintf(out, "\"load\": %.2f, ", r->load);
	if (m->target) {
		fprintf(out, "\"target\": ");
		json_str(out, m->target);
		fprintf(out,
			", \"proto\": \"%s\", \"response_bytes_mean\": %.1f, ",
			bench_proto_names[r->p.proto],
			r->resp_n ? (double)r->resp_bytes / (double)r->resp_n
				  : 0.0);
	}
	if (r->p.mode == BENCH_STREAM_RW)
		fprintf(out, "\"rw_poll\": %s, ",
			r->p.rw_poll ? "true" : "false");
	fprintf(out, "\"verified\": %s, \"check\": \"%s\", ",
		ok(r) && r->verified ? "true" : "false", check(r));
	if (r->have_counters) {
		fprintf(out, "\"counters\": {");
#define SM_JSON(name, ...)                         \
	fprintf(out, "%s\"" #name "\": %llu", sep, \
		(unsigned long long)r->ctr.name);  \
	sep = ", ";
		SM_COUNTERS(SM_JSON)
#undef SM_JSON
		fprintf(out, "}, ");
	} else {
		fprintf(out, "\"counters\": null, ");
	}
	fprintf(out, "\"error\": ");
	if (ok(r))
		fprintf(out, "null");
	else
		json_str(out, r->err[0] ? r->err : "no round ran");
	fprintf(out, "}");
}

void bench_print_json(FILE *out, const struct bench_matrix *m,
		      const struct bench_result *res)
{
	int n = bench_nresults(m);

	fprintf(out, "[\n");
	for (int i = 0; i < n; i++) {
		json_run(out, m, &res[i]);
		fprintf(out, "%s\n", i + 1 < n ? "," : "");
	}
	fprintf(out, "]\n");
}

void bench_print_tsv(FILE *out, const struct bench_matrix *m,
		     const struct bench_result *res)
{
	fprintf(out, "# mode\ttransport\tsize\tops_per_s\tbytes_per_s\t"
		     "p50_ns\tp90_ns\tp99_ns\tp999_ns\tcpu_ns_per_op\n");
	for (int i = 0; i < bench_nresults(m); i++) {
		const struct bench_result *r = &res[i];

		if (!ok(r))
			continue;
		fprintf(out,
			"%s\t%s\t%zu\t%.1f\t%.0f\t%llu\t%llu\t%llu\t%llu\t%.0f\n",
			bench_mode_names[r->p.mode],
			bench_transport_names[r->p.transport], r->p.size,
			bench_ops_per_s(r), bench_bytes_per_s(r),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.5),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.9),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.99),
			(unsigned long long)bench_hist_quantile(&r->hist,
								0.999),
			bench_cpu_ns_per_op(r));
	}
}

/* ---- markdown -------------------------------------------------------- */

/* The figure a mode is judged on, and a second one. */
struct md_mode {
	const char *title;
	const char *explain;
	const char *second; /* its column header, after the transport */
};

static const struct md_mode md_modes[BENCH_MODES] = {
	[BENCH_RR] =
		{"rr: request/response latency, p50 (µs)",
		 "Each op sends SIZE bytes and reads them back. Lower is better: accel/tcp below 1 means accel is faster.",
		 "p99 µs"},
	[BENCH_CRR] =
		{"crr: connections/s",
		 "Each op is socket(), connect, one SIZE-byte exchange, close. Higher is better: accel/tcp above 1 means accel is faster.",
		 "p50 µs"},
	[BENCH_STREAM] =
		{"stream: throughput (MB/s, 10^6 bytes/s)",
		 "SIZE-byte writes one way, every byte verified by the reader. Higher is better: accel/tcp above 1 means accel is faster.",
		 "CPU µs/write"},
	[BENCH_STREAM_RW] =
		{"stream-rw: throughput with blocking write()/read() (MB/s)",
		 "SIZE-byte blocking write()s one way, the reader read()s up to SIZE bytes at a time (as iperf3 does) and checks the byte count and the last block. Higher is better.",
		 "CPU µs/write"},
};

static double md_figure(const struct bench_result *r)
{
	switch (r->p.mode) {
	case BENCH_RR:
		return (double)bench_hist_quantile(&r->hist, 0.5);
	case BENCH_CRR:
		return bench_ops_per_s(r);
	default:
		return bench_bytes_per_s(r);
	}
}

static void md_fmt_figure(char *buf, size_t len, const struct bench_result *r)
{
	if (!ok(r))
		snprintf(buf, len, "failed");
	else if (r->p.mode == BENCH_RR)
		fmt_us(buf, len, md_figure(r));
	else if (r->p.mode == BENCH_CRR)
		snprintf(buf, len, "%.0f", md_figure(r));
	else
		fmt_num(buf, len, md_figure(r) / 1e6);
}

static void md_fmt_second(char *buf, size_t len, const struct bench_result *r)
{
	if (!ok(r))
		snprintf(buf, len, "-");
	else if (r->p.mode == BENCH_RR)
		fmt_us(buf, len, (double)bench_hist_quantile(&r->hist, 0.99));
	else if (r->p.mode == BENCH_CRR)
		fmt_us(buf, len, (double)bench_hist_quantile(&r->hist, 0.5));
	else
		fmt_us(buf, len, bench_cpu_ns_per_op(r));
}

static int md_tindex(const struct bench_matrix *m, enum bench_transport t)
{
	for (int i = 0; i < m->n_transports; i++)
		if (m->transports[i] == t)
			return i;
	return -1;
}

static void md_summary(FILE *out, const struct bench_matrix *m,
		       const struct bench_result *res, int mi)
{
	const struct md_mode *md = &md_modes[m->modes[mi]];
	int tcp = md_tindex(m, BENCH_TCP), accel = md_tindex(m, BENCH_ACCEL);
	char buf[64];

	fprintf(out, "## %s\n\n%s\n\n| size |", md->title, md->explain);
	for (int ti = 0; ti < m->n_transports; ti++)
		fprintf(out, " %s |", bench_transport_names[m->transports[ti]]);
	for (int ti = 0; tcp >= 0 && ti < m->n_transports; ti++)
		if (ti != tcp)
			fprintf(out, " %s/tcp |",
				bench_transport_names[m->transports[ti]]);
	for (int ti = 0; ti < m->n_transports; ti++)
		fprintf(out, " %s %s |",
			bench_transport_names[m->transports[ti]], md->second);
	if (accel >= 0)
		fprintf(out, " accel bytes_redirected | accel msgs_passed |");
	fprintf(out, "\n| ---: |");
	for (int ti = 0;
	     ti < m->n_transports * 2 + (tcp >= 0 ? m->n_transports - 1 : 0) +
			  (accel >= 0 ? 2 : 0);
	     ti++)
		fprintf(out, " ---: |");
	fprintf(out, "\n");

	for (int si = 0; si < m->n_sizes; si++) {
		const struct bench_result *row = &res[bench_idx(m, mi, si, 0)];

		bench_fmt_size(buf, sizeof(buf), m->sizes[si]);
		fprintf(out, "| %s |", buf);
		for (int ti = 0; ti < m->n_transports; ti++) {
			md_fmt_figure(buf, sizeof(buf), &row[ti]);
			fprintf(out, " %s |", buf);
		}
		for (int ti = 0; tcp >= 0 && ti < m->n_transports; ti++) {
			if (ti == tcp)
				continue;
			if (ok(&row[ti]) && ok(&row[tcp]) &&
			    md_figure(&row[tcp]) > 0)
				fprintf(out, " %.2f |",
					md_figure(&row[ti]) /
						md_figure(&row[tcp]));
			else
				fprintf(out, " - |");
		}
		for (int ti = 0; ti < m->n_transports; ti++) {
			md_fmt_second(buf, sizeof(buf), &row[ti]);
			fprintf(out, " %s |", buf);
		}
		if (accel >= 0 && row[accel].have_counters)
			fprintf(out, " %llu | %llu |",
				(unsigned long long)row[accel]
					.ctr.bytes_redirected,
				(unsigned long long)row[accel].ctr.msgs_passed);
		else if (accel >= 0)
			fprintf(out, " - | - |");
		fprintf(out, "\n");
	}
	fprintf(out, "\n");
}

static void md_all_runs(FILE *out, const struct bench_matrix *m,
			const struct bench_result *res)
{
	char size[32], p[4][16], cpu[16], spr[16];

	fprintf(out,
		"## All runs\n\n"
		"Latencies in µs; CPU is user + system time of client and server per op; "
		"spread is half the range of the rounds' ops/s, relative to their mean; "
		"counters are the growth of the sockmesh counters during the runs.\n\n"
		"| mode | transport | size | ops/s | MB/s | p50 | p90 | p99 | p99.9 | CPU µs/op | spread | bytes_redirected | msgs_passed | check |\n"
		"| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
	for (int i = 0; i < bench_nresults(m); i++) {
		const struct bench_result *r = &res[i];
		static const double q[] = {0.5, 0.9, 0.99, 0.999};

		bench_fmt_size(size, sizeof(size), r->p.size);
		for (int k = 0; k < 4; k++)
			fmt_us(p[k], sizeof(p[k]),
			       (double)bench_hist_quantile(&r->hist, q[k]));
		fmt_us(cpu, sizeof(cpu), bench_cpu_ns_per_op(r));
		if (r->rounds > 1)
			snprintf(spr, sizeof(spr), "±%.1f%%", spread(r) * 100);
		else
			snprintf(spr, sizeof(spr), "-");
		fprintf(out,
			"| %s | %s | %s | %.0f | %.1f | %s | %s | %s | %s | %s | %s |",
			bench_mode_names[r->p.mode],
			bench_transport_names[r->p.transport], size,
			bench_ops_per_s(r), bench_bytes_per_s(r) / 1e6, p[0],
			p[1], p[2], p[3], cpu, spr);
		if (r->have_counters)
			fprintf(out, " %llu | %llu |",
				(unsigned long long)r->ctr.bytes_redirected,
				(unsigned long long)r->ctr.msgs_passed);
		else
			fprintf(out, " - | - |");
		fprintf(out, " %s |\n", check(r));
	}
	fprintf(out, "\n");
}

static void md_counters(FILE *out, const struct sm_counters *c)
{
	const char *sep = "";

#define SM_NONZERO(name, ...)                         \
	if (c->name) {                                \
		fprintf(out, "%s%s %llu", sep, #name, \
			(unsigned long long)c->name); \
		sep = ", ";                           \
	}
	SM_COUNTERS(SM_NONZERO)
#undef SM_NONZERO
}

static void md_notes(FILE *out, const struct bench_matrix *m,
		     const struct bench_result *res)
{
	char size[32];
	bool counters = false;
	int notes = 0;

	fprintf(out, "## Notes\n\n");
	for (int i = 0; i < bench_nresults(m); i++) {
		const struct bench_result *r = &res[i];
		const char *mode = bench_mode_names[r->p.mode];
		const char *tr = bench_transport_names[r->p.transport];
		__u64 passed = r->ctr.bytes_passed, all;

		bench_fmt_size(size, sizeof(size), r->p.size);
		all = passed + r->ctr.bytes_redirected;
		if (!ok(r)) {
			fprintf(out, "- **FAILED** %s %s %s: %s\n", mode, tr,
				size, r->err[0] ? r->err : "no round ran");
		} else if (!bench_rate_valid(r)) {
			fprintf(out,
				"- **INVALID** %s %s %s: asked %.0f requests/s, scheduled %.0f/s, completed %.0f/s (%llu unsent at the drain deadline): below %.0f%% of the schedule\n",
				mode, tr, size, r->p.rate, bench_sched_per_s(r),
				bench_ops_per_s(r),
				(unsigned long long)r->unfinished,
				BENCH_RATE_VALID * 100);
		} else if (!r->have_counters) {
			continue;
		} else if (r->p.transport == BENCH_ACCEL &&
			   !r->ctr.bytes_redirected) {
			fprintf(out,
				"- **%s %s %s was not redirected**%s (counters: ",
				mode, tr, size,
				strict_kept(r)
					? ": the daemon runs compat = strict, which "
					  "keeps this bench's blocking sockets on "
					  "TCP; run it with compat = fast"
					: "");
			md_counters(out, &r->ctr);
			fprintf(out, ")\n");
		} else if (r->p.transport == BENCH_ACCEL &&
			   r->ctr.msgs_passed) {
			fprintf(out,
				"- %s %s %s: %llu messages, %.1f%% of the bytes, went through the TCP/IP stack (",
				mode, tr, size,
				(unsigned long long)r->ctr.msgs_passed,
				all ? 100.0 * (double)passed / (double)all : 0);
			md_counters(out, &r->ctr);
			fprintf(out, ")\n");
		} else if (r->p.transport != BENCH_ACCEL && counters_moved(r)) {
			fprintf(out,
				"- **%s %s %s moved the sockmesh counters**, which a plain run should not (",
				mode, tr, size);
			md_counters(out, &r->ctr);
			fprintf(out, ")\n");
		} else {
			continue;
		}
		notes++;
	}
	for (int i = 0; i < bench_nresults(m); i++)
		counters |= res[i].have_counters;
	if (!notes && counters)
		fprintf(out,
			"- Every run completed and verified its data; every accel run was redirected end to end (msgs_passed 0) and no plain run touched the sockmesh counters.\n");
	else if (!notes)
		fprintf(out,
			"- Every run completed and verified its data. No sockmesh counters were read (no -c given, no accel run).\n");
	fprintf(out, "\n");
}

void bench_print_markdown(FILE *out, const struct bench_matrix *m,
			  const struct bench_result *res)
{
	char when[64] = "", pin[96] = "not pinned";
	struct utsname u = {0};
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	uname(&u);
	if (m->cpu_server >= 0 || m->cpu_client >= 0)
		snprintf(pin, sizeof(pin), "server on CPU %d, client on CPU %d",
			 m->cpu_server, m->cpu_client);
	fprintf(out, "# sockmesh-bench results\n\n");
	fprintf(out, "- %s, Linux %s %s, %ld CPUs\n", when, u.release,
		u.machine, sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(out, "- `%s`\n", m->cmdline);
	fprintf(out,
		"- each figure: %d round%s of %.2g s (after a %.2g s warm-up each), %d connection%s; %s\n",
		m->rounds, m->rounds > 1 ? "s" : "", m->duration, m->warmup,
		m->conns, m->conns > 1 ? "s" : "", pin);
	fprintf(out,
		"- interleaved: for each round, mode and size, the transports ran one after the other (");
	for (int ti = 0; ti < m->n_transports; ti++)
		fprintf(out, "%s%s", ti ? ", " : "",
			bench_transport_names[m->transports[ti]]);
	fprintf(out, ")\n\n");
	if (m->rw_poll)
		fprintf(out,
			"- stream-rw: the reader poll()ed before every read() (--rw-poll)\n\n");
	if (m->rate > 0)
		fprintf(out,
			"- open loop: %.0f requests/s asked, %s arrivals; latency from each request's intended send time (p50 is of those)\n\n",
			m->rate, m->exp_arrivals ? "Poisson" : "constant");
	for (int mi = 0; mi < m->n_modes; mi++)
		md_summary(out, m, res, mi);
	md_notes(out, m, res);
	md_all_runs(out, m, res);
}

/* ---- --sweep --------------------------------------------------------- */

int bench_sweep_knee(const struct bench_sweep *sw, int ti)
{
	int knee = -1;

	for (int li = 0; li < BENCH_SWEEP_LOADS; li++) {
		const struct bench_result *r =
			&sw->open[li * sw->n_transports + ti];

		if (!ok(r) || !bench_rate_valid(r) ||
		    (double)bench_hist_quantile(&r->hist, 0.99) >
			    sw->knee_us * 1e3)
			break;
		knee = li;
	}
	return knee;
}

static void sweep_knee_str(char *buf, size_t len, const struct bench_sweep *sw,
			   int ti)
{
	int k = bench_sweep_knee(sw, ti);
	char rate[16];

	if (k < 0) {
		snprintf(buf, len, "below %.0f%%", bench_sweep_loads[0] * 100);
		return;
	}
	fmt_count(rate, sizeof(rate),
		  bench_ops_per_s(&sw->open[k * sw->n_transports + ti]));
	snprintf(buf, len, "%.0f%%%s (%s/s)", bench_sweep_loads[k] * 100,
		 k == BENCH_SWEEP_LOADS - 1 ? " or more" : "", rate);
}

void bench_print_sweep_table(FILE *out, const struct bench_matrix *m,
			     const struct bench_sweep *sw)
{
	int nt = sw->n_transports;
	char size[32], first[16], buf[64];

	bench_fmt_size(size, sizeof(size), sw->size);
	fprintf(out, "closed-loop maximum (rr %s, %d connection%s):", size,
		m->conns, m->conns > 1 ? "s" : "");
	for (int ti = 0; ti < nt; ti++) {
		fmt_count(buf, sizeof(buf), bench_ops_per_s(&sw->closed[ti]));
		fprintf(out, "  %s %s/s%s",
			bench_transport_names[sw->transports[ti]], buf,
			ok(&sw->closed[ti]) ? "" : " FAILED");
	}
	fprintf(out,
		"\nopen loop, %s arrivals, loads of %s's maximum; latency from each request's intended send time\n",
		m->exp_arrivals ? "Poisson" : "constant",
		bench_transport_names[sw->transports[sw->ref]]);
	print_rate_header(out, "load");
	for (int li = 0; li < BENCH_SWEEP_LOADS; li++)
		for (int ti = 0; ti < nt; ti++) {
			snprintf(first, sizeof(first), "%.0f%%",
				 bench_sweep_loads[li] * 100);
			print_rate_row(out, &sw->open[li * nt + ti], first);
		}
	fprintf(out, "knee (highest load with p99 <= %.0f us):", sw->knee_us);
	for (int ti = 0; ti < nt; ti++) {
		sweep_knee_str(buf, sizeof(buf), sw, ti);
		fprintf(out, "  %s %s",
			bench_transport_names[sw->transports[ti]], buf);
	}
	fprintf(out, "\n");
	print_failures(out, sw->closed, nt);
	print_failures(out, sw->open, nt * BENCH_SWEEP_LOADS);
}

void bench_print_sweep_json(FILE *out, const struct bench_matrix *m,
			    const struct bench_sweep *sw)
{
	int nt = sw->n_transports, n = nt * BENCH_SWEEP_LOADS;

	fprintf(out,
		"{\"sweep\": {\"size\": %zu, \"conns\": %d, \"arrivals\": \"%s\", \"reference\": \"%s\", \"reference_max\": %.1f, \"knee_us\": %.1f, \"valid_fraction\": %.2f,\n",
		sw->size, m->conns, m->exp_arrivals ? "exp" : "const",
		bench_transport_names[sw->transports[sw->ref]], sw->ref_max,
		sw->knee_us, BENCH_RATE_VALID);
	fprintf(out, " \"knees\": {");
	for (int ti = 0; ti < nt; ti++) {
		int k = bench_sweep_knee(sw, ti);

		fprintf(out, "%s\"%s\": ", ti ? ", " : "",
			bench_transport_names[sw->transports[ti]]);
		if (k < 0)
			fprintf(out, "null");
		else
			fprintf(out,
				"{\"load\": %.2f, \"rate_achieved\": %.1f}",
				bench_sweep_loads[k],
				bench_ops_per_s(&sw->open[k * nt + ti]));
	}
	fprintf(out, "},\n \"closed\": [\n");
	for (int ti = 0; ti < nt; ti++) {
		json_run(out, m, &sw->closed[ti]);
		fprintf(out, "%s\n", ti + 1 < nt ? "," : "");
	}
	fprintf(out, " ],\n \"open\": [\n");
	for (int i = 0; i < n; i++) {
		json_run(out, m, &sw->open[i]);
		fprintf(out, "%s\n", i + 1 < n ? "," : "");
	}
	fprintf(out, " ]}}\n");
}

void bench_print_sweep_tsv(FILE *out, const struct bench_matrix *m,
			   const struct bench_sweep *sw)
{
	(void)m;
	fprintf(out, "# load\ttransport\trate_asked\trate_achieved\t"
		     "p50_ns\tp90_ns\tp99_ns\tp999_ns\tp9999_ns\tvalid\n");
	for (int i = 0; i < sw->n_transports * BENCH_SWEEP_LOADS; i++) {
		const struct bench_result *r = &sw->open[i];

		if (!ok(r))
			continue;
		fprintf(out,
			"%.2f\t%s\t%.1f\t%.1f\t%llu\t%llu\t%llu\t%llu\t%llu\t%d\n",
			r->load, bench_transport_names[r->p.transport],
			r->p.rate, bench_ops_per_s(r),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.5),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.9),
			(unsigned long long)bench_hist_quantile(&r->hist, 0.99),
			(unsigned long long)bench_hist_quantile(&r->hist,
								0.999),
			(unsigned long long)bench_hist_quantile(&r->hist,
								0.9999),
			bench_rate_valid(r));
	}
}

void bench_print_sweep_markdown(FILE *out, const struct bench_matrix *m,
				const struct bench_sweep *sw)
{
	int nt = sw->n_transports, ref = sw->ref, accel = -1;
	char when[64] = "", size[32], buf[64];
	time_t now = time(NULL);
	struct utsname u = {0};
	struct tm tm;

	if (gmtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	uname(&u);
	bench_fmt_size(size, sizeof(size), sw->size);
	for (int ti = 0; ti < nt; ti++)
		if (sw->transports[ti] == BENCH_ACCEL)
			accel = ti;
	fprintf(out, "# sockmesh-bench latency sweep\n\n");
	fprintf(out, "- %s, Linux %s %s, %ld CPUs\n", when, u.release,
		u.machine, sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(out, "- `%s`\n", m->cmdline);
	fprintf(out,
		"- rr %s, %d connection%s, %d round%s of %.2g s per point (after a %.2g s warm-up); open loop with %s arrivals, latency from each request's intended send time\n",
		size, m->conns, m->conns > 1 ? "s" : "", m->rounds,
		m->rounds > 1 ? "s" : "", m->duration, m->warmup,
		m->exp_arrivals ? "Poisson" : "constant");
	fprintf(out, "- closed-loop maximum:");
	for (int ti = 0; ti < nt; ti++)
		fprintf(out, "%s %s %.0f/s", ti ? "," : "",
			bench_transport_names[sw->transports[ti]],
			bench_ops_per_s(&sw->closed[ti]));
	fprintf(out,
		"; loads are fractions of %s's; a point whose transport completed fewer than %.0f%% of the requests scheduled is OVERLOADED (its latency is a lower bound)\n",
		bench_transport_names[sw->transports[ref]],
		BENCH_RATE_VALID * 100);
	fprintf(out,
		"- knee: the highest load whose p99 (and every lower load's) is at most %.0f µs:",
		sw->knee_us);
	for (int ti = 0; ti < nt; ti++) {
		sweep_knee_str(buf, sizeof(buf), sw, ti);
		fprintf(out, "%s %s %s", ti ? "," : "",
			bench_transport_names[sw->transports[ti]], buf);
	}
	fprintf(out, "\n\n| load | asked/s |");
	for (int ti = 0; ti < nt; ti++) {
		const char *t = bench_transport_names[sw->transports[ti]];

		fprintf(out, " %s done/s | %s p50 | %s p99 | %s p99.9 |", t, t,
			t, t);
	}
	if (accel >= 0 && accel != ref)
		fprintf(out, " accel/tcp p99 |");
	fprintf(out, "\n| ---: | ---: |");
	for (int ti = 0; ti < nt * 4 + (accel >= 0 && accel != ref); ti++)
		fprintf(out, " ---: |");
	fprintf(out, "\n");
	for (int li = 0; li < BENCH_SWEEP_LOADS; li++) {
		const struct bench_result *row = &sw->open[li * nt];

		fprintf(out, "| %.0f%% | %.0f |", bench_sweep_loads[li] * 100,
			row[0].p.rate);
		for (int ti = 0; ti < nt; ti++) {
			const struct bench_result *r = &row[ti];
			char p[3][16];

			if (!ok(r)) {
				fprintf(out, " failed | - | - | - |");
				continue;
			}
			fmt_us(p[0], sizeof(p[0]),
			       (double)bench_hist_quantile(&r->hist, 0.5));
			fmt_us(p[1], sizeof(p[1]),
			       (double)bench_hist_quantile(&r->hist, 0.99));
			fmt_us(p[2], sizeof(p[2]),
			       (double)bench_hist_quantile(&r->hist, 0.999));
			fprintf(out, " %.0f%s | %s | %s | %s |",
				bench_ops_per_s(r),
				bench_rate_valid(r) ? "" : " (overloaded)",
				p[0], p[1], p[2]);
		}
		if (accel >= 0 && accel != ref) {
			const struct bench_result *a = &row[accel],
						  *t = &row[ref];
			double tp = (double)bench_hist_quantile(&t->hist, 0.99);

			if (ok(a) && ok(t) && tp > 0)
				fprintf(out, " %.2f |",
					(double)bench_hist_quantile(&a->hist,
								    0.99) /
						tp);
			else
				fprintf(out, " - |");
		}
		fprintf(out, "\n");
	}
	fprintf(out,
		"\nLatencies in µs. Plot: latency (log) against the achieved load, one line per transport and percentile.\n\n");
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_config.c - sockmesh.ini as a user writes it (cgroupd/lib/config.c on
 * top of inih): defaults, every key, every kind of mistake and the message
 * it gets, --check output that reads back, long lines.
 *
 * Files are in memory (fmemopen) and named NAME in messages, except where
 * the test is about real paths.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "sockmesh.h"

#define NAME "test.ini"

static struct sm_config cfg, cfg2; /* ~60 KB each: not on the stack */

/* Parse @text as the file NAME into @c; the message, if any, into @err. */
static int load(struct sm_config *c, const char *text, char *err)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int ret;

	if (!f) {
		fail_msg("fmemopen: %s", strerror(errno));
		return -errno;
	}
	err[0] = '\0';
	ret = sm_config_load_file(c, f, NAME, err, SM_ERR_LEN);
	fclose(f);
	return ret;
}

static void load_ok(struct sm_config *c, const char *text)
{
	char err[SM_ERR_LEN];
	int ret = load(c, text, err);

	if (ret)
		fail_msg("loading this file failed (%d): %s\n%s", ret, err,
			 text);
}

static void expect_cidr(const struct sm_cidr *c, const char *what,
			const char *addr, __u32 prefixlen)
{
	unsigned char want[16];
	char got_s[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, addr, want) != 1)
		fail_msg("test bug: '%s' is not an IPv6 address", addr);
	if (!inet_ntop(AF_INET6, c->addr, got_s, sizeof(got_s)))
		strcpy(got_s, "?");
	if (memcmp(c->addr, want, 16) || c->prefixlen != prefixlen)
		fail_msg("%s is %s/%u, want %s/%u", what, got_s, c->prefixlen,
			 addr, prefixlen);
}

static void expect_range(const struct sm_port_range *r, const char *what,
			 unsigned int lo, unsigned int hi)
{
	if (r->lo != lo || r->hi != hi)
		fail_msg("%s is %u-%u, want %u-%u", what, r->lo, r->hi, lo, hi);
}

#define EXPECT_FIELD_EQ(fmt, field)                                            \
	do {                                                                   \
		if (a->field != b->field)                                      \
			fail_msg("%s: " #field " is " fmt ", want " fmt, what, \
				 a->field, b->field);                          \
	} while (0)

#define EXPECT_STR_EQ(field)                                                \
	do {                                                                \
		if (strcmp(a->field, b->field))                             \
			fail_msg("%s: " #field " is '%s', want '%s'", what, \
				 a->field, b->field);                       \
	} while (0)

static void expect_ranges_equal(const char *what, const char *key,
				const struct sm_port_range *a,
				const struct sm_port_range *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i].lo != b[i].lo || a[i].hi != b[i].hi)
			fail_msg("%s: %s[%d] is %u-%u, want %u-%u", what, key,
				 i, a[i].lo, a[i].hi, b[i].lo, b[i].hi);
}

static void expect_cidrs_equal(const char *what, const char *key,
			       const struct sm_cidr *a, const struct sm_cidr *b,
			       int n)
{
	for (int i = 0; i < n; i++)
		if (memcmp(a[i].addr, b[i].addr, sizeof(a[i].addr)) ||
		    a[i].prefixlen != b[i].prefixlen)
			fail_msg("%s: %s[%d] differs (prefixlen %u vs %u)",
				 what, key, i, a[i].prefixlen, b[i].prefixlen);
}

/* Every value a key sets (not path, text, seen: those say where from). */
static void expect_config_equal(const struct sm_config *a,
				const struct sm_config *b, const char *what)
{
	EXPECT_STR_EQ(pin_dir);
	EXPECT_STR_EQ(run_dir);
	EXPECT_STR_EQ(metrics);
	EXPECT_FIELD_EQ("%d", log_level);
	EXPECT_FIELD_EQ("%d", on_exit);
	EXPECT_FIELD_EQ("%d", n_cgroups);
	for (int i = 0; i < a->n_cgroups; i++)
		EXPECT_STR_EQ(cgroups[i]);
	EXPECT_FIELD_EQ("%d", ports_all);
	EXPECT_FIELD_EQ("%d", n_ports);
	expect_ranges_equal(what, "ports", a->ports, b->ports, a->n_ports);
	EXPECT_FIELD_EQ("%d", n_exclude_ports);
	expect_ranges_equal(what, "exclude_ports", a->exclude_ports,
			    b->exclude_ports, a->n_exclude_ports);
	EXPECT_FIELD_EQ("%d", n_cidrs);
	expect_cidrs_equal(what, "cidrs", a->cidrs, b->cidrs, a->n_cidrs);
	EXPECT_FIELD_EQ("%d", n_node_unique_cidrs);
	expect_cidrs_equal(what, "node_unique_cidrs", a->node_unique_cidrs,
			   b->node_unique_cidrs, a->n_node_unique_cidrs);
	EXPECT_FIELD_EQ("%u", max_sockets);
}

static void expect_defaults(const struct sm_config *c, const char *what)
{
	if (strcmp(c->pin_dir, "/sys/fs/bpf/sockmesh"))
		fail_msg("%s: pin_dir is '%s'", what, c->pin_dir);
	if (strcmp(c->run_dir, "/run/sockmesh"))
		fail_msg("%s: run_dir is '%s'", what, c->run_dir);
	if (strcmp(c->metrics, "127.0.0.1:9464"))
		fail_msg("%s: metrics is '%s'", what, c->metrics);
	if (c->log_level != SM_LOG_INFO)
		fail_msg("%s: log_level is %d, want info", what, c->log_level);
	if (c->on_exit != SM_ON_EXIT_KEEP)
		fail_msg("%s: on_exit is %d, want keep", what, c->on_exit);
	if (c->n_cgroups != 1 || strcmp(c->cgroups[0], "sockmesh"))
		fail_msg("%s: %d cgroups, first '%s', want just 'sockmesh'",
			 what, c->n_cgroups, c->cgroups[0]);
	if (!c->ports_all || c->n_ports)
		fail_msg("%s: ports_all %d with %d ports, want ports = *", what,
			 c->ports_all, c->n_ports);
	if (c->n_exclude_ports)
		fail_msg("%s: %d exclude_ports, want none", what,
			 c->n_exclude_ports);
	if (c->n_cidrs != 2)
		fail_msg("%s: %d cidrs, want 2", what, c->n_cidrs);
	expect_cidr(&c->cidrs[0], "cidrs[0] (127.0.0.0/8)", "::ffff:127.0.0.0",
		    104);
	expect_cidr(&c->cidrs[1], "cidrs[1] (::1/128)", "::1", 128);
	if (c->n_node_unique_cidrs)
		fail_msg("%s: %d node_unique_cidrs, want none", what,
			 c->n_node_unique_cidrs);
	if (c->max_sockets != 65536)
		fail_msg("%s: max_sockets is %u", what, c->max_sockets);
	if (c->compat_fast)
		fail_msg("%s: compat is fast, want strict", what);
	if (c->mesh_connect || c->mesh_uid != 1337 ||
	    c->mesh_outbound_port != 15001 || c->mesh_inbound_port != 15006 ||
	    c->mesh_readiness_port != 15021 || c->n_mesh_x_out ||
	    c->n_mesh_x_in != 4)
		fail_msg(
			"%s: [mesh] mode %s, uid %u, ports %u/%u/%u, %d/%d "
			"excluded; want iptables, 1337, 15001/15006/15021, 0/4",
			what, c->mesh_connect ? "connect" : "iptables",
			c->mesh_uid, c->mesh_outbound_port,
			c->mesh_inbound_port, c->mesh_readiness_port,
			c->n_mesh_x_out, c->n_mesh_x_in);
}

static void test_defaults_are_the_design_values(void **state)
{
	(void)state;
	memset(&cfg, 0xa5, sizeof(cfg));
	sm_config_defaults(&cfg);
	expect_defaults(&cfg, "sm_config_defaults");
}

static void test_file_of_comments_only_gives_defaults(void **state)
{
	(void)state;
	memset(&cfg, 0xa5, sizeof(cfg));
	load_ok(&cfg, "; nothing set\n# nothing either\n\n[daemon]\n"
		      "[accelerate]\n");
	expect_defaults(&cfg, "a file that sets nothing");
}

/* conf/sockmesh.ini of this tree, found from this file's path. */
static void repo_conf(char *buf, size_t len)
{
	const char *file = __FILE__;
	const char *tail = strstr(file, "tests/unit/test_config.c");
	int n = tail ? (int)(tail - file) : 0;

	snprintf(buf, len, "%.*sconf/sockmesh.ini", n, file);
}

static void test_repo_conf_loads_and_equals_defaults(void **state)
{
	char path[PATH_MAX], err[SM_ERR_LEN], *out = NULL;
	int ret, n_keys = 0, n_seen = 0;
	size_t len = 0;
	FILE *f;

	(void)state;
	repo_conf(path, sizeof(path));
	ret = sm_config_load(&cfg, path, err, sizeof(err));
	if (ret)
		fail_msg("%s does not load (%d): %s", path, ret, err);
	assert_string_equal(cfg.path, path);
	sm_config_defaults(&cfg2);
	/* "Every key is shown with its default": as many as --check prints */
	f = open_memstream(&out, &len);
	assert_non_null(f);
	sm_config_print(&cfg2, f);
	fclose(f);
	for (const char *p = out; (p = strstr(p, " = ")); p++)
		n_keys++;
	free(out);
	for (int i = 0; i < SM_KEYS_MAX; i++)
		n_seen += cfg.seen[i];
	if (n_seen != n_keys)
		fail_msg("%s sets %d keys, there are %d", path, n_seen, n_keys);
	expect_config_equal(&cfg, &cfg2, path);
	expect_defaults(&cfg, path);
}

static const char full_file[] =
	"[daemon]\n"
	"pin_dir = /sys/fs/bpf/sm-test\n"
	"run_dir = /var/run/sm-test\n"
	"metrics = off\n"
	"log_level = debug\n"
	"on_exit = detach\n"
	"\n"
	"[accelerate]\n"
	"cgroups = a, b/c\n"
	"ports = 6379, 8000-8100\n"
	"exclude_ports = 8050\n"
	"cidrs = 10.0.0.0/8, 192.168.1.0/24, fd00::/8, 2001:db8::1\n"
	"node_unique_cidrs = 10.244.0.0/16\n"
	"max_sockets = 1024\n"
	"compat = fast\n"
	"\n"
	"[mesh]\n"
	"mode = connect\n"
	"sidecar_uid = 2000\n"
	"outbound_port = 4140\n"
	"inbound_port = 4143\n"
	"readiness_port = 4191\n"
	"exclude_outbound_ports = 25, 4000-4010\n"
	"exclude_inbound_ports = 4190\n";

static void test_full_file_sets_every_key(void **state)
{
	(void)state;
	load_ok(&cfg, full_file);
	assert_string_equal(cfg.path, NAME);
	assert_string_equal(cfg.pin_dir, "/sys/fs/bpf/sm-test");
	assert_string_equal(cfg.run_dir, "/var/run/sm-test");
	assert_string_equal(cfg.metrics, ""); /* off */
	assert_int_equal(cfg.log_level, SM_LOG_DEBUG);
	assert_int_equal(cfg.on_exit, SM_ON_EXIT_DETACH);
	assert_int_equal(cfg.n_cgroups, 2);
	assert_string_equal(cfg.cgroups[0], "a");
	assert_string_equal(cfg.cgroups[1], "b/c");
	assert_false(cfg.ports_all);
	assert_int_equal(cfg.n_ports, 2);
	expect_range(&cfg.ports[0], "ports[0]", 6379, 6379);
	expect_range(&cfg.ports[1], "ports[1]", 8000, 8100);
	assert_int_equal(cfg.n_exclude_ports, 1);
	expect_range(&cfg.exclude_ports[0], "exclude_ports[0]", 8050, 8050);
	assert_int_equal(cfg.n_cidrs, 4);
	expect_cidr(&cfg.cidrs[0], "cidrs[0]", "::ffff:10.0.0.0", 104);
	expect_cidr(&cfg.cidrs[1], "cidrs[1]", "::ffff:192.168.1.0", 120);
	expect_cidr(&cfg.cidrs[2], "cidrs[2]", "fd00::", 8);
	expect_cidr(&cfg.cidrs[3], "cidrs[3] (no /len)", "2001:db8::1", 128);
	assert_int_equal(cfg.n_node_unique_cidrs, 1);
	expect_cidr(&cfg.node_unique_cidrs[0], "node_unique_cidrs[0]",
		    "::ffff:10.244.0.0", 112);
	assert_int_equal(cfg.max_sockets, 1024);
	assert_true(cfg.compat_fast);
	assert_true(cfg.mesh_connect);
	assert_int_equal(cfg.mesh_uid, 2000);
	assert_int_equal(cfg.mesh_outbound_port, 4140);
	assert_int_equal(cfg.mesh_inbound_port, 4143);
	assert_int_equal(cfg.mesh_readiness_port, 4191);
	assert_int_equal(cfg.n_mesh_x_out, 2);
	expect_range(&cfg.mesh_x_out[1], "exclude_outbound_ports[1]", 4000,
		     4010);
	assert_int_equal(cfg.n_mesh_x_in, 1);
	expect_range(&cfg.mesh_x_in[0], "exclude_inbound_ports[0]", 4190, 4190);
}

static void test_path_trailing_slashes_are_dropped(void **state)
{
	(void)state;
	load_ok(&cfg, "[daemon]\npin_dir = /sys/fs/bpf/sm//\n"
		      "run_dir = /run/sm/\n");
	assert_string_equal(cfg.pin_dir, "/sys/fs/bpf/sm");
	assert_string_equal(cfg.run_dir, "/run/sm");
}

static void test_metrics_accepts_v4_v6_and_off(void **state)
{
	static const char *const ok[] = {"0.0.0.0:1", "127.0.0.1:65535",
					 "[::1]:9464", "[::]:80"};
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "[daemon]\nmetrics = %s\n", ok[i]);
		load_ok(&cfg, text);
		assert_string_equal(cfg.metrics, ok[i]);
	}
	load_ok(&cfg, "[daemon]\nmetrics = off\n");
	assert_string_equal(cfg.metrics, "");
}

static void test_log_level_names(void **state)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	static const enum sm_log_level levels[] = {SM_LOG_ERROR, SM_LOG_WARN,
						   SM_LOG_INFO, SM_LOG_DEBUG};
	char text[64];

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "[daemon]\nlog_level = %s\n",
			 names[i]);
		load_ok(&cfg, text);
		if (cfg.log_level != levels[i])
			fail_msg("log_level = %s gives %d, want %d", names[i],
				 cfg.log_level, levels[i]);
	}
}

static void test_max_sockets_limits_are_accepted(void **state)
{
	(void)state;
	load_ok(&cfg, "[accelerate]\nmax_sockets = 1\n");
	assert_int_equal(cfg.max_sockets, 1);
	load_ok(&cfg, "[accelerate]\nmax_sockets = 16777216\n");
	assert_int_equal(cfg.max_sockets, 16777216);
}

static void test_port_forms(void **state)
{
	(void)state;
	load_ok(&cfg, "[accelerate]\nports = 1, 65535, 1-65535, 80 - 81\n"
		      "exclude_ports = 22, 1000-2000\n");
	assert_false(cfg.ports_all);
	assert_int_equal(cfg.n_ports, 4);
	expect_range(&cfg.ports[0], "ports[0]", 1, 1);
	expect_range(&cfg.ports[1], "ports[1]", 65535, 65535);
	expect_range(&cfg.ports[2], "ports[2]", 1, 65535);
	expect_range(&cfg.ports[3], "ports[3] ('80 - 81')", 80, 81);
	assert_int_equal(cfg.n_exclude_ports, 2);
	expect_range(&cfg.exclude_ports[0], "exclude_ports[0]", 22, 22);
	expect_range(&cfg.exclude_ports[1], "exclude_ports[1]", 1000, 2000);
}

static void test_parse_cidr_api(void **state)
{
	char err[SM_ERR_LEN];
	struct sm_cidr c;

	(void)state;
	assert_int_equal(sm_parse_cidr("10.1.2.3", &c, err, sizeof(err)), 0);
	expect_cidr(&c, "10.1.2.3", "::ffff:10.1.2.3", 128);
	assert_int_equal(sm_parse_cidr("0.0.0.0/0", &c, err, sizeof(err)), 0);
	expect_cidr(&c, "0.0.0.0/0", "::ffff:0.0.0.0", 96);
	assert_int_equal(sm_parse_cidr("::/0", &c, err, sizeof(err)), 0);
	expect_cidr(&c, "::/0", "::", 0);
	assert_int_equal(
		sm_parse_cidr("::ffff:10.0.0.0/104", &c, err, sizeof(err)), 0);
	expect_cidr(&c, "::ffff:10.0.0.0/104", "::ffff:10.0.0.0", 104);
	err[0] = '\0';
	assert_int_equal(sm_parse_cidr("10.0.0.1/8", &c, err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, "'10.0.0.1/8'") || !strstr(err, "host bits"))
		fail_msg("sm_parse_cidr(10.0.0.1/8) says '%s'", err);
}

static void test_parse_port_range_api(void **state)
{
	char err[SM_ERR_LEN];
	struct sm_port_range r;

	(void)state;
	assert_int_equal(sm_parse_port_range("443", &r, err, sizeof(err)), 0);
	expect_range(&r, "443", 443, 443);
	assert_int_equal(sm_parse_port_range("1-65535", &r, err, sizeof(err)),
			 0);
	expect_range(&r, "1-65535", 1, 65535);
	err[0] = '\0';
	assert_int_equal(sm_parse_port_range("65536", &r, err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, "'65536'"))
		fail_msg("sm_parse_port_range(65536) says '%s'", err);
}

static void test_inline_comments_are_stripped(void **state)
{
	(void)state;
	load_ok(&cfg, "[daemon] ; the daemon\n"
		      "log_level = warn ; quieter\n"
		      "[accelerate]\n"
		      "ports = 6379 ; redis\n"
		      "cidrs = 10.0.0.0/8, ::1/128\t; lan and loopback\n"
		      "exclude_ports = ; none\n");
	assert_int_equal(cfg.log_level, SM_LOG_WARN);
	assert_int_equal(cfg.n_ports, 1);
	expect_range(&cfg.ports[0], "ports[0]", 6379, 6379);
	assert_int_equal(cfg.n_cidrs, 2);
	expect_cidr(&cfg.cidrs[0], "cidrs[0]", "::ffff:10.0.0.0", 104);
	expect_cidr(&cfg.cidrs[1], "cidrs[1]", "::1", 128);
	assert_int_equal(cfg.n_exclude_ports, 0);
}

static void test_crlf_line_endings_are_accepted(void **state)
{
	(void)state;
	load_ok(&cfg, "[daemon]\r\non_exit = detach\r\n[accelerate]\r\n"
		      "cgroups = web\r\nports = 80\r\n");
	assert_int_equal(cfg.on_exit, SM_ON_EXIT_DETACH);
	assert_int_equal(cfg.n_cgroups, 1);
	assert_string_equal(cfg.cgroups[0], "web");
	assert_int_equal(cfg.n_ports, 1);
	expect_range(&cfg.ports[0], "ports[0]", 80, 80);
}

/* print -> parse gives the same values, and printing that gives the same
 * text again. */
static void round_trip(const struct sm_config *c, const char *what)
{
	char *out = NULL, *out2 = NULL, err[SM_ERR_LEN];
	size_t len = 0, len2 = 0;
	FILE *f = open_memstream(&out, &len);
	int ret;

	assert_non_null(f);
	sm_config_print(c, f);
	fclose(f);
	ret = load(&cfg2, out, err);
	if (ret)
		fail_msg("%s: the printed config does not load (%d): %s\n%s",
			 what, ret, err, out);
	expect_config_equal(&cfg2, c, what);
	f = open_memstream(&out2, &len2);
	assert_non_null(f);
	sm_config_print(&cfg2, f);
	fclose(f);
	if (strcmp(out, out2))
		fail_msg("%s: printing twice differs:\n%s\n---\n%s", what, out,
			 out2);
	free(out);
	free(out2);
}

static void test_print_round_trips_defaults(void **state)
{
	(void)state;
	sm_config_defaults(&cfg);
	round_trip(&cfg, "defaults");
}

static void test_print_round_trips_full_file(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	load_ok(&cfg, full_file);
	round_trip(&cfg, "the full file");
	/* and it prints every key, under its section */
	f = open_memstream(&out, &len);
	assert_non_null(f);
	sm_config_print(&cfg, f);
	fclose(f);
	if (!strstr(out, "[daemon]\n") || !strstr(out, "[accelerate]\n") ||
	    !strstr(out, "metrics = off\n") ||
	    !strstr(out, "ports = 6379, 8000-8100\n") ||
	    !strstr(out, "max_sockets = 1024\n"))
		fail_msg("sm_config_print output lacks keys:\n%s", out);
	free(out);
}

static void test_missing_file_names_path_and_returns_enoent(void **state)
{
	char dir[] = "/tmp/sm-test-XXXXXX", path[PATH_MAX], want[PATH_MAX + 64];
	char err[SM_ERR_LEN];
	int ret;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.ini", dir);
	ret = sm_config_load(&cfg, path, err, sizeof(err));
	rmdir(dir);
	assert_int_equal(ret, -ENOENT);
	snprintf(want, sizeof(want),
		 "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
}

static void test_file_on_disk_errors_name_its_path(void **state)
{
	char path[] = "/tmp/sm-test-XXXXXX", want[64], err[SM_ERR_LEN];
	const char text[] = "[daemon]\nlog_level = info\nlog_level = debug\n";
	int fd, ret;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	ret = sm_config_load(&cfg, path, err, sizeof(err));
	unlink(path);
	assert_int_equal(ret, -EINVAL);
	snprintf(want, sizeof(want), "%s:3: ", path);
	if (strncmp(err, want, strlen(want)) ||
	    !strstr(err, "log_level is set twice"))
		fail_msg("error '%s', want '%slog_level is set twice...'", err,
			 want);
}

/*
 * inih (Debian libinih 55: INI_MAX_LINE 200, stack buffer) reads a line in
 * chunks of 199 characters and parses each chunk as a line of its own: the
 * handler gets the first chunk as the whole value, the rest is a syntax
 * error one line further down. config.c accepts lists of up to 1023
 * characters, so a user with many prefixes hits this. What the user needs:
 * the whole list, or an error at the right line that says the line is too
 * long; never a prefix list cut short or an error about a line that is fine.
 */
/* One trailing comma is allowed; the list is what precedes it. */
static void test_trailing_comma_ends_a_list(void **state)
{
	(void)state;
	load_ok(&cfg, "[accelerate]\nports = 80,\n");
	assert_false(cfg.ports_all);
	assert_int_equal(cfg.n_ports, 1);
	expect_range(&cfg.ports[0], "the one port", 80, 80);
}

/* A long list goes on indented lines, read as one list. */
static void test_indented_lines_continue_a_list(void **state)
{
	char err[SM_ERR_LEN];

	(void)state;
	load_ok(&cfg, "[accelerate]\n"
		      "cidrs = 10.0.0.0/16, 10.1.0.0/16,\n"
		      "        10.2.0.0/16\n"
		      "  ; a comment in between\n"
		      "        ::1/128\n"
		      "max_sockets = 1024\n");
	assert_int_equal(cfg.n_cidrs, 4);
	expect_cidr(&cfg.cidrs[2], "the first continued prefix",
		    "::ffff:10.2.0.0", 112);
	expect_cidr(&cfg.cidrs[3], "the second continued prefix", "::1", 128);
	assert_int_equal(cfg.max_sockets, 1024);
	assert_string_equal(cfg.text[9],
			    "10.0.0.0/16, 10.1.0.0/16, 10.2.0.0/16, ::1/128");

	/* a bad item on a continuation line is reported at that line */
	assert_int_equal(load(&cfg, "[accelerate]\nports = 80,\n  9x\n", err),
			 -EINVAL);
	assert_non_null(strstr(err, NAME ":3: '9x' is not a port"));
	/* a key that is not a list cannot continue */
	assert_int_equal(
		load(&cfg, "[accelerate]\nmax_sockets = 10\n  24\n", err),
		-EINVAL);
	assert_non_null(strstr(err, NAME ":3: max_sockets is not a list"));
}

static void test_long_cidrs_line_is_read_whole_or_rejected(void **state)
{
	char text[2048], err[SM_ERR_LEN], want[32], *p = text;
	const int n = 30;
	size_t line_len;
	int ret;

	(void)state;
	p += sprintf(p, "[accelerate]\n");
	line_len = (size_t)(p - text);
	p += sprintf(p, "cidrs = ");
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s10.%d.0.0/16", i ? ", " : "", i);
	line_len = (size_t)(p - text) - line_len;
	sprintf(p, "\nmax_sockets = 1024\n");

	ret = load(&cfg, text, err);
	if (!ret) {
		if (cfg.n_cidrs != n)
			fail_msg(
				"a %zu-character cidrs line: loaded with %d of its %d prefixes",
				line_len, cfg.n_cidrs, n);
		expect_cidr(&cfg.cidrs[n - 1], "the last prefix",
			    "::ffff:10.29.0.0", 112);
		assert_int_equal(cfg.max_sockets, 1024);
		return;
	}
	snprintf(want, sizeof(want), NAME ":2: ");
	if (strncmp(err, want, strlen(want)) || !strstr(err, "long"))
		fail_msg(
			"a %zu-character cidrs line (line 2, %d prefixes) gives '%s' (n_cidrs %d); want all %d prefixes, or an error at " NAME
			":2: saying the line is too long",
			line_len, n, err, cfg.n_cidrs, n);
}

/* The same for comments: free text that a user may well make long. */
static void test_long_comment_lines_are_ignored_or_rejected(void **state)
{
	char words[256] = "", text[1024], err[SM_ERR_LEN];
	const char *const fmt[] = {
		"[daemon]\n; %s\nlog_level = debug\non_exit = detach\n",
		"[daemon]\nlog_level = debug ; %s\non_exit = detach\n",
	};

	(void)state;
	while (strlen(words) < 240)
		strcat(words, "comment ");
	for (int i = 0; i < 2; i++) {
		int ret;

		snprintf(text, sizeof(text), fmt[i], words);
		ret = load(&cfg, text, err);
		if (!ret && cfg.log_level == SM_LOG_DEBUG &&
		    cfg.on_exit == SM_ON_EXIT_DETACH)
			continue;
		if (ret && !strncmp(err, NAME ":2: ", strlen(NAME ":2: ")) &&
		    strstr(err, "long"))
			continue;
		fail_msg(
			"a %s comment of %zu characters on line 2 gives ret %d, '%s'; want the file loaded, or an error at " NAME
			":2: saying the line is too long",
			i ? "trailing" : "full-line", strlen(words), ret, err);
	}
}

/*
 * metrics is a char[64], but its port may carry any number of leading
 * zeros ("127.0.0.1:000...09464" is port 9464). The value must be
 * rejected or fit: it must not spill over the keys stored after it.
 */
static void test_long_metrics_value_does_not_overwrite_other_keys(void **state)
{
	char text[512], value[160], err[SM_ERR_LEN];
	int ret;

	(void)state;
	snprintf(value, sizeof(value), "127.0.0.1:%080d", 9464);
	snprintf(
		text, sizeof(text),
		"[daemon]\nlog_level = debug\non_exit = detach\nmetrics = %s\n",
		value);
	ret = load(&cfg, text, err);
	if (cfg.log_level != SM_LOG_DEBUG || cfg.on_exit != SM_ON_EXIT_DETACH ||
	    cfg.n_cgroups != 1 || strcmp(cfg.cgroups[0], "sockmesh"))
		fail_msg(
			"metrics = %s (%zu characters) overwrote other keys: log_level %#x, on_exit %#x, cgroups[0] '%.20s...' (load returned %d '%s')",
			value, strlen(value), (unsigned int)cfg.log_level,
			(unsigned int)cfg.on_exit, cfg.cgroups[0], ret, err);
	if (!ret &&
	    strnlen(cfg.metrics, sizeof(cfg.metrics)) == sizeof(cfg.metrics))
		fail_msg("metrics accepted but not NUL-terminated");
	if (ret && (strncmp(err, NAME ":4: ", strlen(NAME ":4: ")) ||
		    !strstr(err, "metrics")))
		fail_msg("error '%s' does not name " NAME ":4: and metrics",
			 err);
}

/*
 * Files that must not load: the message must start with "NAME:LINE: " for
 * the first bad line and mention each of @says (the key, the value, the
 * problem), and none of @not_says (a later bad line).
 */
struct bad_file {
	const char *text;
	int line;
	const char *says[3];
	const char *not_says;
};

static void test_rejects(void **state)
{
	const struct bad_file *b = *state;
	char err[SM_ERR_LEN], want[64];
	int ret = load(&cfg, b->text, err);

	if (ret != -EINVAL)
		fail_msg("returned %d ('%s'), want -EINVAL, for:\n%s", ret, err,
			 b->text);
	snprintf(want, sizeof(want), NAME ":%d: ", b->line);
	if (strncmp(err, want, strlen(want)))
		fail_msg("error '%s' does not start with '%s', for:\n%s", err,
			 want, b->text);
	for (int i = 0; i < 3 && b->says[i]; i++)
		if (!strstr(err, b->says[i]))
			fail_msg("error '%s' does not say \"%s\", for:\n%s",
				 err, b->says[i], b->text);
	if (b->not_says && strstr(err, b->not_says))
		fail_msg("error '%s' is about a later line (\"%s\"), for:\n%s",
			 err, b->not_says, b->text);
}

#define REJECTS(id, text_, line_, ...)                             \
	{                                                          \
		.name = "rejects_" #id, .test_func = test_rejects, \
		.initial_state = &(struct bad_file){               \
			.text = text_,                             \
			.line = line_,                             \
			.says = {__VA_ARGS__},                     \
		},                                                 \
	}

/* The same, and the message must not mention @not_ (from a later line). */
#define REJECTS_FIRST(id, text_, line_, not_, ...)                 \
	{                                                          \
		.name = "reports_" #id, .test_func = test_rejects, \
		.initial_state = &(struct bad_file){               \
			.text = text_,                             \
			.line = line_,                             \
			.says = {__VA_ARGS__},                     \
			.not_says = not_,                          \
		},                                                 \
	}

#define ACC "[daemon]\nlog_level = info\n[accelerate]\n" /* 3 lines */

static void test_run_group_name_or_number(void **state)
{
	struct sm_config cfg;
	char err[SM_ERR_LEN];

	(void)state;
	assert_int_equal(load(&cfg, "[daemon]\nlog_level = info\n", err), 0);
	assert_int_equal(cfg.run_gid, -1);
	assert_int_equal(load(&cfg, "[daemon]\nrun_group = 4242\n", err), 0);
	assert_int_equal(cfg.run_gid, 4242);
	assert_string_equal(cfg.run_group, "4242");
	assert_int_equal(load(&cfg, "[daemon]\nrun_group =\n", err), 0);
	assert_int_equal(cfg.run_gid, -1);
	assert_int_equal(load(&cfg, "[daemon]\nrun_group = root\n", err),
			 -EINVAL);
	assert_non_null(strstr(
		err, NAME ":2: run_group must be a group other than root's"));
	assert_int_equal(load(&cfg, "[daemon]\nrun_group = 0\n", err), -EINVAL);
	assert_int_equal(
		load(&cfg, "[daemon]\n\nrun_group = no-such-group-sm\n", err),
		-EINVAL);
	assert_non_null(
		strstr(err, NAME
		       ":3: run_group: there is no group 'no-such-group-sm'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_are_the_design_values),
		cmocka_unit_test(test_file_of_comments_only_gives_defaults),
		cmocka_unit_test(test_repo_conf_loads_and_equals_defaults),
		cmocka_unit_test(test_full_file_sets_every_key),
		cmocka_unit_test(test_path_trailing_slashes_are_dropped),
		cmocka_unit_test(test_metrics_accepts_v4_v6_and_off),
		cmocka_unit_test(test_log_level_names),
		cmocka_unit_test(test_run_group_name_or_number),
		cmocka_unit_test(test_max_sockets_limits_are_accepted),
		cmocka_unit_test(test_port_forms),
		cmocka_unit_test(test_parse_cidr_api),
		cmocka_unit_test(test_parse_port_range_api),
		cmocka_unit_test(test_inline_comments_are_stripped),
		cmocka_unit_test(test_crlf_line_endings_are_accepted),
		cmocka_unit_test(test_print_round_trips_defaults),
		cmocka_unit_test(test_print_round_trips_full_file),
		cmocka_unit_test(
			test_missing_file_names_path_and_returns_enoent),
		cmocka_unit_test(test_file_on_disk_errors_name_its_path),
		cmocka_unit_test(test_indented_lines_continue_a_list),
		cmocka_unit_test(test_trailing_comma_ends_a_list),
		cmocka_unit_test(
			test_long_cidrs_line_is_read_whole_or_rejected),
		cmocka_unit_test(
			test_long_comment_lines_are_ignored_or_rejected),
		cmocka_unit_test(
			test_long_metrics_value_does_not_overwrite_other_keys),

		/* structure */
		REJECTS(unknown_key_in_known_section,
			"[daemon]\nlog_level = info\nlog_lvl = debug\n", 3,
			"unknown key 'log_lvl'", "[daemon]"),
		REJECTS(key_of_the_other_section, "[daemon]\nports = 80\n", 2,
			"unknown key 'ports'", "[daemon]"),
		/* the reader checks section lines: the error is at the
		 * [section] line itself, even for an empty section */
		REJECTS(unknown_section,
			"[daemon]\nlog_level = info\n\n[acclerate]\nports = 80\n",
			4, "unknown section [acclerate]"),
		REJECTS(unknown_empty_section,
			"[deamon]\n[accelerate]\nports = 80\n", 1,
			"unknown section [deamon]"),
		REJECTS(key_outside_of_any_section,
			"; sockmesh\nports = 80\n[accelerate]\n", 2, "'ports'",
			"outside of any section"),
		REJECTS(duplicate_key,
			ACC "ports = 80\nmax_sockets = 10\nports = 81\n", 6,
			"ports is set twice", "[accelerate]"),
		REJECTS(duplicate_key_in_reopened_section,
			"[accelerate]\nports = 80\n[daemon]\non_exit = keep\n"
			"[accelerate]\nports = 81\n",
			6, "ports is set twice"),
		REJECTS(line_without_equals_sign, "[daemon]\nlog_level info\n",
			2, "syntax error"),
		REJECTS(unclosed_section,
			"[daemon]\nlog_level = info\n[accelerate\n", 3,
			"syntax error"),

		/* ports */
		REJECTS(port_range_backwards, ACC "ports = 6379, 9000-8000\n",
			4, "'9000-8000'", "backwards"),
		REJECTS(port_0, ACC "ports = 0\n", 4, "'0'", "not a port"),
		REJECTS(port_70000, ACC "ports = 80, 70000\n", 4, "'70000'",
			"not a port"),
		REJECTS(port_65536, ACC "ports = 65536\n", 4, "'65536'",
			"not a port"),
		REJECTS(port_abc, ACC "ports = abc\n", 4, "'abc'",
			"not a port"),
		REJECTS(port_range_open_end, ACC "ports = 80-\n", 4, "'80-'",
			"not a port"),
		REJECTS(port_range_from_0, ACC "ports = 0-80\n", 4, "'0-80'",
			"not a port"),
		REJECTS(port_star_in_a_list, ACC "ports = *, 80\n", 4, "'*'",
			"not a port"),
		REJECTS(exclude_port_abc,
			ACC "ports = *\nexclude_ports = abc\n", 5, "'abc'",
			"not a port"),
		REJECTS(empty_ports, ACC "ports =\n", 4, "ports is empty",
			"'*'"),
		REJECTS(empty_item_in_port_list, ACC "ports = 80,,81\n", 4,
			"empty item", "80,,81"),
		REJECTS(two_trailing_commas_in_port_list, ACC "ports = 80,,\n",
			4, "empty item"),
		/* '#' starts a comment only at the start of a line */
		REJECTS(hash_inline_comment_is_part_of_the_value,
			ACC "ports = 6379 # redis\n", 4, "'6379 # redis'",
			"not a port"),

		/* prefixes */
		REJECTS(cidr_octet_300, ACC "cidrs = 300.1.1.1/8\n", 4,
			"'300.1.1.1/8'", "not an IPv4 or IPv6"),
		REJECTS(cidr_host_bits_set,
			ACC "cidrs = ::1/128, 127.0.0.1/8\n", 4,
			"'127.0.0.1/8'", "host bits"),
		REJECTS(cidr_host_bit_just_after_prefix,
			ACC "cidrs = 10.128.0.0/8\n", 4, "'10.128.0.0/8'",
			"host bits"),
		REJECTS(cidr_v6_host_bit_just_after_prefix,
			ACC "cidrs = 2001:db8:8000::/32\n", 4,
			"'2001:db8:8000::/32'", "host bits"),
		REJECTS(cidr_v6_prefix_129, ACC "cidrs = ::1/129\n", 4,
			"'::1/129'", "0-128"),
		REJECTS(cidr_v4_prefix_33, ACC "cidrs = 10.0.0.0/33\n", 4,
			"'10.0.0.0/33'", "0-32"),
		REJECTS(cidr_word, ACC "cidrs = foo\n", 4, "'foo'",
			"not an IPv4 or IPv6"),
		REJECTS(cidr_slash_without_length, ACC "cidrs = 10.0.0.0/\n", 4,
			"'10.0.0.0/'"),
		REJECTS(empty_cidrs, ACC "cidrs =\n", 4, "cidrs is empty"),
		REJECTS(node_unique_cidr_host_bits,
			ACC "node_unique_cidrs = 10.244.0.0/16, 10.0.0.1/8\n",
			4, "'10.0.0.1/8'", "host bits"),

		/* cgroups */
		REJECTS(cgroup_absolute_path, ACC "cgroups = /abs\n", 4,
			"'/abs'", "relative", "write 'abs'"),
		REJECTS(cgroup_absolute_nested,
			ACC "cgroups = ok, //system.slice/app\n", 4,
			"'//system.slice/app'", "write 'system.slice/app'"),
		REJECTS(cgroup_dotdot, ACC "cgroups = ..\n", 4, "'..'",
			"not a plain path"),
		REJECTS(cgroup_dotdot_inside, ACC "cgroups = a/../b\n", 4,
			"'a/../b'", "not a plain path"),
		REJECTS(cgroup_double_slash, ACC "cgroups = a//b\n", 4,
			"'a//b'", "not a plain path"),
		REJECTS(cgroup_listed_twice, ACC "cgroups = a, b, a\n", 4,
			"'a' is listed twice"),
		REJECTS(cgroup_with_space, ACC "cgroups = my app\n", 4,
			"'my app'", "not allowed"),
		REJECTS(empty_cgroups, ACC "cgroups =\n", 4, "cgroups",
			"at least one"),

		/* max_sockets */
		REJECTS(max_sockets_0, ACC "max_sockets = 0\n", 4,
			"max_sockets", "1 to 16777216", "'0'"),
		REJECTS(max_sockets_negative, ACC "max_sockets = -1\n", 4,
			"max_sockets", "'-1'"),
		REJECTS(max_sockets_overflow, ACC "max_sockets = 99999999999\n",
			4, "max_sockets", "'99999999999'"),
		REJECTS(max_sockets_above_limit, ACC "max_sockets = 16777217\n",
			4, "max_sockets", "'16777217'"),
		REJECTS(max_sockets_trailing_garbage, ACC "max_sockets = 12x\n",
			4, "max_sockets", "'12x'"),

		/* [daemon] */
		REJECTS(log_level_verbose, "[daemon]\nlog_level = verbose\n", 2,
			"log_level", "'verbose'", "debug"),
		REJECTS(on_exit_maybe, "[daemon]\non_exit = maybe\n", 2,
			"on_exit", "'maybe'", "detach"),
		REJECTS(compat_loose, "[accelerate]\ncompat = loose\n", 2,
			"compat must be strict or fast", "'loose'"),
		REJECTS(mesh_mode_nat, "[mesh]\nmode = nat\n", 2,
			"mode must be iptables or connect", "'nat'"),
		REJECTS(mesh_port_0, "[mesh]\noutbound_port = 0\n", 2,
			"outbound_port", "1 to 65535", "'0'"),
		REJECTS(mesh_uid_negative, "[mesh]\nsidecar_uid = -1\n", 2,
			"sidecar_uid", "'-1'"),
		REJECTS(mesh_ports_equal,
			"[mesh]\ninbound_port = 15001\nmode = connect\n", 2,
			"outbound_port (15001), inbound_port (15001)",
			"three different ports"),
		REJECTS(metrics_hostname,
			"[daemon]\nmetrics = localhost:9464\n", 2, "metrics",
			"'localhost:9464'"),
		REJECTS(metrics_port_0, "[daemon]\nmetrics = 127.0.0.1:0\n", 2,
			"metrics", "'127.0.0.1:0'"),
		REJECTS(metrics_port_65536,
			"[daemon]\nmetrics = 127.0.0.1:65536\n", 2, "metrics",
			"'127.0.0.1:65536'"),
		REJECTS(metrics_without_port, "[daemon]\nmetrics = 127.0.0.1\n",
			2, "metrics", "'127.0.0.1'"),
		REJECTS(metrics_v6_without_brackets,
			"[daemon]\nmetrics = ::1:9464\n", 2, "metrics",
			"'::1:9464'"),
		REJECTS(pin_dir_relative,
			"[daemon]\nlog_level = info\npin_dir = sys/fs/bpf/sm\n",
			3, "pin_dir", "absolute", "'sys/fs/bpf/sm'"),
		REJECTS(run_dir_relative, "[daemon]\nrun_dir = run\n", 2,
			"run_dir", "absolute", "'run'"),

		/* only the first bad line is reported */
		REJECTS_FIRST(first_error_of_two_bad_values,
			      ACC "ports = 0\nmax_sockets = 0\n", 4,
			      "max_sockets", "'0'", "not a port"),
		REJECTS_FIRST(first_error_of_bad_key_then_syntax_error,
			      "[daemon]\nlog_lvl = 1\nlog_level info\n", 2,
			      "syntax", "unknown key 'log_lvl'"),
		REJECTS_FIRST(first_error_of_syntax_error_then_bad_key,
			      "[daemon]\nlog_level info\nlog_lvl = 1\n", 2,
			      "log_lvl", "syntax error"),
		REJECTS_FIRST(first_error_of_syntax_error_then_bad_value,
			      ACC "ports 80\ncidrs = foo\n", 4, "foo",
			      "syntax error"),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

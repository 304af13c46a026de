// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * fuzz_config.c - libFuzzer harness for the sockmesh.ini parser: the input
 * is a file. Beyond what the sanitizers catch, a file that loads must give
 * a config within its limits, whose --check output (sm_config_print) loads
 * again to the same values, the same text of every key but for whitespace
 * (where a long list breaks), and from then on prints and loads the same.
 * A failed load must say where, and return -EINVAL or -EIO. Any violation
 * aborts.
 *
 * Where a line of the file comes within 2 characters of the longest line
 * (198, INI_MAX_LINE - 2), "key=value" may not fit as "key = value": there
 * the printed config needs only give the same values if it loads.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"

#define NAME	     "fuzz.ini"
#define LINE_MAX_LEN (INI_MAX_LINE - 2)

/* ~100 KB each: not on the stack */
static struct sm_config cfg, again, third;

static void __attribute__((noreturn))
violation(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz_config: %s\n--- input (%zu bytes) ---\n%.*s\n",
		what, size, (int)size, (const char *)data);
	abort();
}

static int load(struct sm_config *c, const void *text, size_t len, char *err)
{
	FILE *f;
	int ret;

	/* fmemopen() refuses a zero-sized buffer */
	f = len ? fmemopen((void *)text, len, "r") : fopen("/dev/null", "r");
	if (!f)
		abort();
	err[0] = '\0';
	ret = sm_config_load_file(c, f, NAME, err, SM_ERR_LEN);
	fclose(f);
	return ret;
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static bool cidr_ok(const struct sm_cidr *c)
{
	const unsigned char *b = (const unsigned char *)c->addr;

	if (c->prefixlen > 128)
		return false;
	for (unsigned int bit = c->prefixlen; bit < 128; bit++)
		if (b[bit / 8] & (0x80 >> (bit % 8)))
			return false;
	return true;
}

static bool ranges_ok(const struct sm_port_range *r, int n)
{
	if (n < 0 || n > SM_RANGES_MAX)
		return false;
	for (int i = 0; i < n; i++)
		if (!r[i].lo || r[i].lo > r[i].hi)
			return false;
	return true;
}

/* A plain relative path: components neither empty nor "." nor "..". */
static bool cgroup_ok(const char *g)
{
	const char *p = g, *end;
	size_t n;

	if (!memchr(g, '\0', SM_CGROUP_LEN))
		return false;
	do {
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (!n || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = end + 1;
	} while (*end);
	return true;
}

static bool path_ok(const char *p, size_t size)
{
	size_t n;

	if (!terminated(p, size))
		return false;
	n = strlen(p);
	/* absolute, room for the pin names, no trailing slash but "/" */
	return p[0] == '/' && n < size - 32 && (n == 1 || p[n - 1] != '/');
}

/* Every limit config.h promises of a config that loaded. */
static const char *limits(const struct sm_config *c)
{
	if (!path_ok(c->pin_dir, sizeof(c->pin_dir)))
		return "bad pin_dir";
	if (!path_ok(c->run_dir, sizeof(c->run_dir)))
		return "bad run_dir";
	if (!terminated(c->metrics, sizeof(c->metrics)))
		return "metrics not terminated";
	if (c->log_level < SM_LOG_ERROR || c->log_level > SM_LOG_DEBUG)
		return "log_level out of range";
	if (c->on_exit != SM_ON_EXIT_KEEP && c->on_exit != SM_ON_EXIT_DETACH)
		return "on_exit out of range";
	if (c->n_cgroups < 1 || c->n_cgroups > SM_CGROUPS_MAX)
		return "n_cgroups out of range";
	for (int i = 0; i < c->n_cgroups; i++) {
		const char *g = c->cgroups[i];

		if (!cgroup_ok(g))
			return "cgroup not a plain relative path";
		for (int j = 0; j < i; j++)
			if (!strcmp(g, c->cgroups[j]))
				return "cgroup listed twice";
	}
	if (c->ports_all && c->n_ports)
		return "ports = * with a list";
	if (!c->ports_all && !c->n_ports)
		return "no ports at all";
	if (!ranges_ok(c->ports, c->n_ports) ||
	    !ranges_ok(c->exclude_ports, c->n_exclude_ports))
		return "bad port range";
	if (c->n_cidrs < 1 || c->n_cidrs > SM_CONF_CIDRS)
		return "n_cidrs out of range";
	if (c->n_node_unique_cidrs < 0 ||
	    c->n_node_unique_cidrs > SM_CONF_CIDRS)
		return "n_node_unique_cidrs out of range";
	for (int i = 0; i < c->n_cidrs; i++)
		if (!cidr_ok(&c->cidrs[i]))
			return "bad cidr";
	for (int i = 0; i < c->n_node_unique_cidrs; i++)
		if (!cidr_ok(&c->node_unique_cidrs[i]))
			return "bad node_unique_cidr";
	if (c->max_sockets < 1 || c->max_sockets > 1 << 24)
		return "max_sockets out of range";
	for (int i = 0; i < SM_KEYS_MAX; i++)
		if (!terminated(c->text[i], sizeof(c->text[i])))
			return "text not terminated";
	return NULL;
}

static bool same_but_space(const char *a, const char *b)
{
	for (;; a++, b++) {
		while (isspace((unsigned char)*a))
			a++;
		while (isspace((unsigned char)*b))
			b++;
		if (*a != *b)
			return false;
		if (!*a)
			return true;
	}
}

#define SAME(f)	    (a->f == b->f)
#define SAME_STR(f) (!strcmp(a->f, b->f))
#define SAME_ARR(f, n) \
	(SAME(n) && !memcmp(a->f, b->f, sizeof(a->f[0]) * (size_t)a->n))

/* The values in effect; not path, not which keys the file had. */
static const char *differs(const struct sm_config *a, const struct sm_config *b,
			   bool same_text)
{
	if (!SAME_STR(pin_dir) || !SAME_STR(run_dir) || !SAME_STR(metrics) ||
	    !SAME(log_level) || !SAME(on_exit))
		return "[daemon] differs";
	if (!SAME(n_cgroups))
		return "cgroups differ";
	for (int i = 0; i < a->n_cgroups; i++)
		if (!SAME_STR(cgroups[i]))
			return "cgroups differ";
	if (!SAME(ports_all) || !SAME_ARR(ports, n_ports) ||
	    !SAME_ARR(exclude_ports, n_exclude_ports))
		return "ports differ";
	if (!SAME_ARR(cidrs, n_cidrs) ||
	    !SAME_ARR(node_unique_cidrs, n_node_unique_cidrs))
		return "cidrs differ";
	if (!SAME(max_sockets))
		return "max_sockets differs";
	for (int i = 0; same_text && i < SM_KEYS_MAX; i++)
		if (!same_but_space(a->text[i], b->text[i]))
			return "text differs (whitespace aside)";
	return NULL;
}

/* No line of @data is longer than @max, '\n' aside. */
static bool lines_fit(const uint8_t *data, size_t size, size_t max)
{
	const uint8_t *p = data, *end = data + size, *nl;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if ((size_t)(nl - p) > max)
			return false;
	}
	return true;
}

static bool error_at_line(const char *err)
{
	const char *p = err + strlen(NAME ":");
	char *end;
	long line;

	if (strncmp(err, NAME ":", strlen(NAME ":")) || *p < '1' || *p > '9')
		return false;
	line = strtol(p, &end, 10);
	return line > 0 && end[0] == ':' && end[1] == ' ' && end[2];
}

/* sm_config_print() into a malloc()ed string, *len its length. */
static char *print(const struct sm_config *c, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);

	if (!f)
		abort();
	sm_config_print(c, f);
	if (fclose(f))
		abort();
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SM_ERR_LEN], err2[SM_ERR_LEN];
	const char *bad;
	char *out, *out2;
	size_t len, len2;
	bool strict;
	int ret;

	ret = load(&cfg, data, size, err);
	if (ret) {
		if (ret != -EINVAL && ret != -EIO)
			violation("an error that is not -EINVAL or -EIO", data,
				  size);
		/* "NAME:LINE: what", LINE from 1 */
		if (ret == -EINVAL && !error_at_line(err))
			violation("a content error without file:line", data,
				  size);
		if (strncmp(err, NAME ":", strlen(NAME ":")))
			violation("an error that does not name the file", data,
				  size);
		return 0;
	}
	bad = limits(&cfg);
	if (bad)
		violation(bad, data, size);

	/* --check output is a config file that gives the same values */
	strict = lines_fit(data, size, LINE_MAX_LEN - 2);
	out = print(&cfg, &len);
	ret = load(&again, out, len, err2);
	if (ret && strict) {
		fprintf(stderr, "fuzz_config: --check output:\n%s\n%s\n", out,
			err2);
		violation("the printed config does not load", data, size);
	}
	bad = ret ? NULL : differs(&cfg, &again, strict);
	if (bad) {
		fprintf(stderr, "fuzz_config: --check output:\n%s\n", out);
		violation(bad, data, size);
	}
	if (strict) {
		/* printed once, it prints and loads the same from then on */
		out2 = print(&again, &len2);
		if (load(&third, out2, len2, err2) ||
		    differs(&again, &third, true)) {
			fprintf(stderr, "fuzz_config: --check output:\n%s\n",
				out2);
			violation(
				"the printed config does not load the same twice",
				data, size);
		}
		for (int i = 0; i < SM_KEYS_MAX; i++)
			if (strcmp(again.text[i], third.text[i]))
				violation("text differs after printing twice",
					  data, size);
		free(out2);
	}
	free(out);
	return 0;
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_cli.c - the command table and option parser of `sockmesh`
 * (cgroupd/sockmesh/cli.c): every command of SM_CLI_COMMANDS is found by its name,
 * each takes only its own options, and the values of -d and -n are checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"

static struct sm_cli_args a;
static char err[512];

/* Parse "sockmesh ARGS..." (NULL-terminated). */
static int parse(const char *first, ...)
{
	char *argv[16] = {"sockmesh", (char *)first};
	int argc = 2;
	va_list ap;

	va_start(ap, first);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	err[0] = '\0';
	return sm_cli_parse(argc, argv, &a, err, sizeof(err));
}

static void test_every_command_is_found_by_its_name(void **state)
{
	(void)state;
	for (int i = 0; i < SM_CLI_NR; i++) {
		assert_int_equal(parse(sm_cli_name(i), (char *)NULL), 0);
		assert_int_equal(a.cmd, i);
	}
	assert_int_equal(parse("--help", (char *)NULL), 0);
	assert_int_equal(a.cmd, SM_CLI_HELP);
	assert_int_equal(parse("--version", (char *)NULL), 0);
	assert_int_equal(a.cmd, SM_CLI_VERSION);
}

static void test_unknown_command(void **state)
{
	(void)state;
	assert_int_equal(parse("frob", (char *)NULL), -ENOENT);
	assert_non_null(strstr(err, "unknown command 'frob'"));
}

static void test_top_delay_and_count(void **state)
{
	(void)state;
	assert_int_equal(parse("top", (char *)NULL), 0);
	assert_true(a.delay == 1.0);
	assert_int_equal(a.count, 0);
	assert_int_equal(parse("top", "-d", "0.25", "-n", "3", "-c", "x.ini",
			       (char *)NULL),
			 0);
	assert_true(a.delay == 0.25);
	assert_int_equal(a.count, 3);
	assert_string_equal(a.config, "x.ini");
}

static void test_top_bad_values_refused(void **state)
{
	(void)state;
	assert_int_equal(parse("top", "-d", "0", (char *)NULL), -EINVAL);
	assert_int_equal(parse("top", "-d", "x", (char *)NULL), -EINVAL);
	assert_int_equal(parse("top", "-d", "1e9", (char *)NULL), -EINVAL);
	assert_int_equal(parse("top", "-n", "-1", (char *)NULL), -EINVAL);
	assert_int_equal(parse("top", "-n", "2x", (char *)NULL), -EINVAL);
	assert_non_null(strstr(err, "sockmesh top: bad option"));
}

static void test_options_belong_to_their_commands(void **state)
{
	(void)state;
	assert_int_equal(parse("status", "--json", (char *)NULL), 0);
	assert_true(a.json);
	assert_int_equal(parse("reload", "--json", (char *)NULL), -EINVAL);
	assert_int_equal(parse("status", "-n", "1", (char *)NULL), -EINVAL);
	assert_int_equal(parse("unload", "--cgroup", "x", (char *)NULL),
			 -EINVAL);
	assert_int_equal(parse("reload", "-c", "/etc/x.ini", (char *)NULL), 0);
	assert_int_equal(a.cmd, SM_CLI_RELOAD);
	assert_string_equal(a.config, "/etc/x.ini");
	assert_int_equal(
		parse("run", "--cgroup", "g", "--", "true", (char *)NULL), 0);
	assert_string_equal(a.cgroup, "g");
	assert_int_equal(a.first, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_is_found_by_its_name),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_top_delay_and_count),
		cmocka_unit_test(test_top_bad_values_refused),
		cmocka_unit_test(test_options_belong_to_their_commands),
	};

	opterr = 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_json.c - the one JSON writer (cgroupd/lib/json.c): separators, nesting,
 * and strings escaped as RFC 8259 requires, control characters included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"

static char *buf;
static size_t len;
static FILE *out;

static int open_buf(void **state)
{
	(void)state;
	out = open_memstream(&buf, &len);
	return out ? 0 : -1;
}

static int close_buf(void **state)
{
	(void)state;
	if (out)
		fclose(out);
	free(buf);
	buf = NULL;
	out = NULL;
	return 0;
}

static const char *text(void)
{
	fflush(out);
	return buf;
}

static void test_quote_escapes_quotes_backslashes_and_controls(void **state)
{
	(void)state;
	sm_json_quote(out, "a\"b\\c\nd\te\r\x01\x1f\x7f/ü");
	assert_string_equal(
		text(), "\"a\\\"b\\\\c\\nd\\te\\r\\u0001\\u001f\\u007f/ü\"");
}

static void test_object_with_array_and_nested_object(void **state)
{
	struct sm_json j;

	(void)state;
	sm_json_init(&j, out);
	sm_json_begin_object(&j);
	sm_json_kstring(&j, "s", "x");
	sm_json_key(&j, "a");
	sm_json_begin_array(&j);
	sm_json_u64(&j, 1);
	sm_json_int(&j, -2);
	sm_json_begin_object(&j);
	sm_json_ku64(&j, "k", 18446744073709551615ULL);
	sm_json_end_object(&j);
	sm_json_end_array(&j);
	sm_json_key(&j, "e");
	sm_json_begin_array(&j);
	sm_json_end_array(&j);
	sm_json_kint(&j, "n", 0);
	sm_json_end_object(&j);
	assert_string_equal(
		text(),
		"{\"s\": \"x\", \"a\": [1, -2, {\"k\": 18446744073709551615}], \"e\": [], \"n\": 0}\n");
}

static void test_keys_are_escaped_too(void **state)
{
	struct sm_json j;

	(void)state;
	sm_json_init(&j, out);
	sm_json_begin_object(&j);
	sm_json_kstring(&j, "k\"\n", "v\b");
	sm_json_end_object(&j);
	assert_string_equal(text(), "{\"k\\\"\\n\": \"v\\u0008\"}\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_quote_escapes_quotes_backslashes_and_controls,
			open_buf, close_buf),
		cmocka_unit_test_setup_teardown(
			test_object_with_array_and_nested_object, open_buf,
			close_buf),
		cmocka_unit_test_setup_teardown(test_keys_are_escaped_too,
						open_buf, close_buf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

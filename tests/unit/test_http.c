// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_http.c - the metrics endpoint's request parser (cgroupd/sockmeshd/http.c):
 * what a scraper sends is answered, what a broken or hostile client sends
 * gets the status RFC 9112 asks for, and an incomplete request waits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "http.h"

static struct sm_http_req req;

static int parse(const char *s, bool eof)
{
	return sm_http_parse(s, strlen(s), eof, &req);
}

static void scrapers(void **state)
{
	(void)state;
	/* Prometheus, curl, wget */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: a:9\r\n"
			       "Accept: text/plain\r\n\r\n",
			       false),
			 200);
	assert_int_equal(req.route, SM_HTTP_METRICS);
	assert_false(req.head);
	assert_int_equal(
		parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", false),
		200);
	assert_int_equal(req.route, SM_HTTP_METRICS);
	assert_int_equal(parse("GET /healthz HTTP/1.0\r\n\r\n", false), 200);
	assert_int_equal(req.route, SM_HTTP_HEALTHZ);
	/* bare LF line ends, a leading empty line */
	assert_int_equal(parse("\r\nHEAD /metrics HTTP/1.0\n\n", false), 200);
	assert_true(req.head);
	assert_int_equal(req.route, SM_HTTP_METRICS);
	assert_int_equal(parse("GET /metricsx HTTP/1.0\r\n\r\n", false), 200);
	assert_int_equal(req.route, SM_HTTP_UNKNOWN);
	assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", false), 200);
	assert_int_equal(req.route, SM_HTTP_UNKNOWN);
}

static void incomplete_waits(void **state)
{
	(void)state;
	assert_int_equal(parse("", false), 0);
	assert_int_equal(parse("G", false), 0);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\n", false), 0);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", false),
			 0);
	/* the client said all it will say: incomplete is malformed */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n", true),
			 400);
	assert_int_equal(parse("GET /met", true), 400);
}

static void malformed(void **state)
{
	(void)state;
	assert_int_equal(parse("GET /metrics\r\n\r\n", false), 400);
	assert_int_equal(parse("GET  /metrics HTTP/1.0\r\n\r\n", false), 400);
	assert_int_equal(parse("GET metrics HTTP/1.0\r\n\r\n", false), 400);
	assert_int_equal(
		parse("GET http://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n",
		      false),
		400);
	assert_int_equal(parse("GET /metrics HTTP/1.1 \r\n\r\n", false), 400);
	assert_int_equal(parse("GET /metrics HTTP/x.1\r\n\r\n", false), 400);
	assert_int_equal(parse("G(T /metrics HTTP/1.0\r\n\r\n", false), 400);
	/* a request line's error shows before the headers end */
	assert_int_equal(parse("GET /metrics FTP/1.0\r\n", false), 400);
	/* headers: no colon, empty name, folding, a space before the colon */
	assert_int_equal(parse("GET / HTTP/1.0\r\nnocolon\r\n\r\n", false),
			 400);
	assert_int_equal(parse("GET / HTTP/1.0\r\n: v\r\n\r\n", false), 400);
	assert_int_equal(parse("GET / HTTP/1.0\r\nA: b\r\n c\r\n\r\n", false),
			 400);
	assert_int_equal(parse("GET / HTTP/1.0\r\nHost : a\r\n\r\n", false),
			 400);
	/* HTTP/1.1 without Host */
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\n\r\n", false), 400);
	/* a NUL anywhere */
	assert_int_equal(
		sm_http_parse("GET /\0 HTTP/1.0\r\n\r\n", 19, false, &req),
		400);
}

static void methods_versions(void **state)
{
	(void)state;
	assert_int_equal(
		parse("POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n", false), 405);
	assert_int_equal(parse("DELETE / HTTP/1.0\r\n\r\n", false), 405);
	/* 405 waits for the headers to end like any request */
	assert_int_equal(parse("PUT / HTTP/1.0\r\n", false), 0);
	assert_int_equal(parse("GET /metrics HTTP/2.0\r\n\r\n", false), 505);
	assert_int_equal(parse("GET /metrics HTTP/0.9\r\n\r\n", false), 505);
}

static void too_long(void **state)
{
	static char big[SM_HTTP_REQ_MAX + 64];

	(void)state;
	/* a request line that does not end within the limit */
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET /", 5);
	assert_int_equal(sm_http_parse(big, SM_HTTP_REQ_MAX, false, &req), 414);
	/* headers that do not end within it */
	memset(big, 'a', sizeof(big) - 1);
	strcpy(big, "GET / HTTP/1.0\r\nX: ");
	big[strlen(big)] = 'a';
	assert_int_equal(sm_http_parse(big, SM_HTTP_REQ_MAX, false, &req), 431);
	/* one byte under the limit still waits */
	assert_int_equal(sm_http_parse(big, SM_HTTP_REQ_MAX - 1, false, &req),
			 0);
}

static void reply_head(void **state)
{
	char out[256];
	int n;

	(void)state;
	n = sm_http_head(out, sizeof(out), 200, "text/plain", 1234);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	assert_string_equal(out, "HTTP/1.1 200 OK\r\n"
				 "Content-Type: text/plain\r\n"
				 "Content-Length: 1234\r\n"
				 "Connection: close\r\n\r\n");
	n = sm_http_head(out, sizeof(out), 405, "text/plain", 0);
	assert_non_null(strstr(out, "\r\nAllow: GET, HEAD\r\n"));
	assert_non_null(strstr(out, "405 Method Not Allowed\r\n"));
	assert_int_equal(sm_http_head(out, 20, 200, "text/plain", 1), -ENOSPC);
	assert_string_equal(sm_http_reason(431),
			    "Request Header Fields Too Large");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scrapers),  cmocka_unit_test(incomplete_waits),
		cmocka_unit_test(malformed), cmocka_unit_test(methods_versions),
		cmocka_unit_test(too_long),  cmocka_unit_test(reply_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

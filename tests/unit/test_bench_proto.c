// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * test_bench_proto.c - sockmesh-bench's --proto framing (perf/bench_proto.c):
 * a response is complete exactly at its last byte however the reads split
 * it, a value that looks like framing is read as data, and what the run must
 * not accept (an error reply, a non-2xx status, a chunked body) is refused
 * with the reason.
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

#include "bench.h"

static char err[200];

static long need(enum bench_proto p, const char *s, size_t len)
{
	err[0] = '\0';
	return bench_proto_need(p, (const unsigned char *)s, len, err,
				sizeof(err));
}

/* Every prefix of @s is incomplete (0) or already knows the length; the
 * whole of it gives its length. */
static void whole_at_every_split(enum bench_proto p, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		long n = need(p, s, i);

		assert_true(n == 0 || n == (long)len);
	}
	assert_int_equal(need(p, s, len), (long)len);
}

static void requests(void **state)
{
	char buf[BENCH_PROTO_REQ_MAX];
	size_t len;

	(void)state;
	assert_int_equal(bench_proto_request(BENCH_PROTO_REDIS, "k:1", "h:1",
					     buf, sizeof(buf), &len),
			 0);
	assert_int_equal(len, strlen("*2\r\n$3\r\nGET\r\n$3\r\nk:1\r\n"));
	assert_memory_equal(buf, "*2\r\n$3\r\nGET\r\n$3\r\nk:1\r\n", len);
	assert_int_equal(bench_proto_request(BENCH_PROTO_HTTP, "/x", "[::1]:80",
					     buf, sizeof(buf), &len),
			 0);
	assert_true(!strncmp(buf, "GET /x HTTP/1.1\r\nHost: [::1]:80\r\n", 33));
	assert_true(!strcmp(buf + len - 4, "\r\n\r\n"));
	assert_int_equal(
		bench_proto_request(BENCH_PROTO_HTTP, "/x", "h", buf, 20, &len),
		-E2BIG);
	assert_int_equal(bench_proto_request(BENCH_PROTO_ECHO, "", "h", buf,
					     sizeof(buf), &len),
			 -EINVAL);
}

static void redis_replies(void **state)
{
	/* a bulk value holding CRLF and "$": data, by its length */
	static const char bulk[] = "$9\r\na\r\n$3\r\nbc\r\n";
	static const char nil[] = "$-1\r\n";
	static const char empty[] = "$0\r\n\r\n";

	(void)state;
	whole_at_every_split(BENCH_PROTO_REDIS, bulk, sizeof(bulk) - 1);
	whole_at_every_split(BENCH_PROTO_REDIS, nil, sizeof(nil) - 1);
	whole_at_every_split(BENCH_PROTO_REDIS, empty, sizeof(empty) - 1);
	whole_at_every_split(BENCH_PROTO_REDIS, "+OK\r\n", 5);
	whole_at_every_split(BENCH_PROTO_REDIS, ":42\r\n", 5);
	/* more than one reply in: the length is the first one's */
	assert_int_equal(need(BENCH_PROTO_REDIS, "+OK\r\n+OK\r\n", 10), 5);
}

static void redis_refused(void **state)
{
	static const char wrong[] =
		"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

	(void)state;
	assert_int_equal(need(BENCH_PROTO_REDIS, wrong, sizeof(wrong) - 1),
			 -EPROTO);
	assert_non_null(strstr(err, "redis answered an error"));
	assert_non_null(strstr(err, "WRONGTYPE"));
	assert_int_equal(need(BENCH_PROTO_REDIS, "$x1\r\n", 5), -EPROTO);
	assert_non_null(strstr(err, "bad bulk length"));
	assert_int_equal(need(BENCH_PROTO_REDIS, "$-2\r\n", 5), -EPROTO);
	assert_int_equal(need(BENCH_PROTO_REDIS, "*1\r\n$1\r\nx\r\n", 11),
			 -EPROTO);
	assert_non_null(strstr(err, "not a GET reply"));
	/* a first line that never ends */
	{
		size_t n = BENCH_PROTO_HDR_MAX + 1;
		char *s = malloc(n);

		assert_non_null(s);
		memset(s, 'x', n);
		s[0] = '+';
		assert_int_equal(need(BENCH_PROTO_REDIS, s, n), -EPROTO);
		free(s);
	}
}

static void http_responses(void **state)
{
	static const char r200[] = "HTTP/1.1 200 OK\r\nServer: nginx\r\n"
				   "content-length:  5 \r\n\r\nhello";
	static const char r204[] = "HTTP/1.1 204 No Content\r\n"
				   "Content-Length: 0\r\n\r\n";
	/* a body that holds a header-like line and CRLF CRLF */
	static const char tricky[] = "HTTP/1.0 200 OK\r\nContent-Length: 21\r\n"
				     "\r\nContent-Length: 1\r\n\r\n";

	(void)state;
	whole_at_every_split(BENCH_PROTO_HTTP, r200, sizeof(r200) - 1);
	whole_at_every_split(BENCH_PROTO_HTTP, r204, sizeof(r204) - 1);
	whole_at_every_split(BENCH_PROTO_HTTP, tricky, sizeof(tricky) - 1);
}

static void http_refused(void **state)
{
	static const char r404[] = "HTTP/1.1 404 Not Found\r\n"
				   "Content-Length: 3\r\n\r\nno!";
	static const char chunked[] = "HTTP/1.1 200 OK\r\n"
				      "Transfer-Encoding: chunked\r\n\r\n";
	static const char nolen[] = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
	static const char badlen[] = "HTTP/1.1 200 OK\r\n"
				     "Content-Length: -1\r\n\r\n";
	static const char notttp[] = "SSH-2.0-OpenSSH\r\n\r\n";

	(void)state;
	assert_int_equal(need(BENCH_PROTO_HTTP, r404, sizeof(r404) - 1),
			 -EPROTO);
	assert_non_null(strstr(err, "not a 2xx response"));
	assert_non_null(strstr(err, "404 Not Found"));
	assert_int_equal(need(BENCH_PROTO_HTTP, chunked, sizeof(chunked) - 1),
			 -EPROTO);
	assert_non_null(strstr(err, "Transfer-Encoding"));
	assert_int_equal(need(BENCH_PROTO_HTTP, nolen, sizeof(nolen) - 1),
			 -EPROTO);
	assert_non_null(strstr(err, "without Content-Length"));
	assert_int_equal(need(BENCH_PROTO_HTTP, badlen, sizeof(badlen) - 1),
			 -EPROTO);
	assert_non_null(strstr(err, "bad Content-Length"));
	assert_int_equal(need(BENCH_PROTO_HTTP, notttp, sizeof(notttp) - 1),
			 -EPROTO);
	/* a header that never ends */
	{
		size_t n = BENCH_PROTO_HDR_MAX + 1;
		char *s = malloc(n);

		assert_non_null(s);
		memset(s, 'x', n);
		assert_int_equal(need(BENCH_PROTO_HTTP, s, n), -EPROTO);
		assert_non_null(strstr(err, "no end of header"));
		free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(requests),
		cmocka_unit_test(redis_replies),
		cmocka_unit_test(redis_refused),
		cmocka_unit_test(http_responses),
		cmocka_unit_test(http_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

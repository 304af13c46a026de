/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http.h - the metrics endpoint's HTTP/1.x: one request per connection,
 * GET and HEAD, origin-form targets, "Connection: close" replies. Pure
 * functions over a buffer, so the daemon's loop owns every byte of I/O and
 * the unit tests can feed them anything.
 *
 * Written here rather than taken from a library (libmicrohttpd): the
 * endpoint answers two paths, the daemon already has an event loop that
 * must never block, and a library with its own threads or select() loop in
 * a process holding CAP_BPF and CAP_SYS_ADMIN is more code reachable from
 * the network than this parser, which the attack tests
 * (tests/integration/test_control.c) and tests/unit/test_http.c cover.
 */
#ifndef SM_HTTP_H
#define SM_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Longest request (line and headers) read; past it, 414 or 431. */
#define SM_HTTP_REQ_MAX 8192

enum sm_http_route {
	SM_HTTP_NONE,	 /* an error status: no route */
	SM_HTTP_METRICS, /* /metrics, with or without a query */
	SM_HTTP_HEALTHZ, /* /healthz */
	SM_HTTP_UNKNOWN, /* any other path: 404 */
};

struct sm_http_req {
	bool head;		  /* HEAD: the reply has no body */
	enum sm_http_route route; /* set when complete and valid */
};

/*
 * Look at the @len bytes received so far (@len <= SM_HTTP_REQ_MAX). Returns
 * 0 while the request is incomplete and may still fit, 200 when it is
 * complete and valid (@req says what was asked), or the error status to
 * answer: 400 malformed, 405 a method other than GET and HEAD, 414 a
 * request line longer than SM_HTTP_REQ_MAX, 431 headers that do not end
 * within it, 505 an HTTP version other than 1.0 and 1.1. @eof: the client
 * sent everything it will send (an incomplete request is then a 400).
 */
int sm_http_parse(const char *buf, size_t len, bool eof,
		  struct sm_http_req *req);

/* The reason phrase of @status ("Not Found"). */
const char *sm_http_reason(int status);

/*
 * The reply's status line and headers into @out: Content-Type @type,
 * Content-Length @body_len, Connection: close, and Allow for 405. Returns
 * the length written, or -ENOSPC if @outlen is too short.
 */
int sm_http_head(char *out, size_t outlen, int status, const char *type,
		 size_t body_len);

#endif

// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench_proto.c - the requests and response framing of --proto, for a
 * client against a server of its own (--target): a real redis or HTTP
 * server, or one behind proxies (perf/mesh-bench.sh).
 *
 *   echo   SIZE bytes, the same bytes back (sockmesh-bench's own server, or
 *          any byte echo)
 *   redis  GET KEY as a RESP array; the reply is one RESP value: a bulk
 *          string ($LEN, or $-1 for a missing key), a simple string or an
 *          integer. An error reply (-ERR) fails the run.
 *   http   GET PATH HTTP/1.1, keep-alive; the response is its header and
 *          Content-Length bytes of body. A status other than 2xx, a chunked
 *          body or a response without Content-Length fails the run.
 *
 * One request is in flight per connection, so a response is complete when
 * its framing says so, and a byte beyond it is an error.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"

const char *const bench_proto_names[BENCH_PROTOS] = {
	[BENCH_PROTO_ECHO] = "echo",
	[BENCH_PROTO_REDIS] = "redis",
	[BENCH_PROTO_HTTP] = "http",
};

int bench_proto_request(enum bench_proto proto, const char *arg,
			const char *host, char *buf, size_t len, size_t *out)
{
	int n;

	switch (proto) {
	case BENCH_PROTO_REDIS:
		n = snprintf(buf, len, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
			     strlen(arg), arg);
		break;
	case BENCH_PROTO_HTTP:
		n = snprintf(
			buf, len,
			"GET %s HTTP/1.1\r\nHost: %s\r\n"
			"User-Agent: sockmesh-bench\r\nAccept: */*\r\n\r\n",
			arg, host);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= len)
		return -E2BIG;
	*out = (size_t)n;
	return 0;
}

/* The end of the line starting at @buf (the offset after its CRLF), or 0. */
static size_t line_end(const unsigned char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n')
			return i + 2;
	return 0;
}

/* A decimal at @s of @n characters, no sign: 0 or -1. */
static int parse_len(const unsigned char *s, size_t n, size_t *out)
{
	size_t v = 0;

	if (!n || n > 12)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit(s[i]))
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Up to @max printable characters of @buf into @err, for messages. */
static void excerpt(char *err, size_t errlen, const char *what,
		    const unsigned char *buf, size_t len, size_t max)
{
	char text[96];
	size_t n = 0;

	for (size_t i = 0; i < len && i < max && n < sizeof(text) - 1; i++)
		text[n++] = isprint(buf[i]) ? (char)buf[i] : '.';
	text[n] = '\0';
	snprintf(err, errlen, "%s: \"%s\"", what, text);
}

static long redis_need(const unsigned char *buf, size_t len, char *err,
		       size_t errlen)
{
	size_t end = line_end(buf, len), blen;

	if (!end) {
		if (len > BENCH_PROTO_HDR_MAX) {
			excerpt(err, errlen,
				"redis: no CRLF in the reply's first line", buf,
				len, 40);
			return -EPROTO;
		}
		return 0;
	}
	switch (buf[0]) {
	case '+':
	case ':':
		return (long)end;
	case '$':
		if (end == 5 && !memcmp(buf, "$-1\r\n", 5))
			return (long)end; /* nil: a key the server lacks */
		if (parse_len(buf + 1, end - 3, &blen) ||
		    blen > BENCH_PROTO_BODY_MAX) {
			excerpt(err, errlen, "redis: bad bulk length", buf,
				end - 2, 40);
			return -EPROTO;
		}
		return (long)(end + blen + 2);
	case '-':
		excerpt(err, errlen, "redis answered an error", buf, end - 2,
			80);
		return -EPROTO;
	default:
		excerpt(err, errlen, "redis: not a GET reply", buf, end - 2,
			40);
		return -EPROTO;
	}
}

/* The value of header @name in the header block @h (@len bytes, CRLF
 * lines), into *@v / *@vlen; false when it is not there. */
static bool header(const unsigned char *h, size_t len, const char *name,
		   const unsigned char **v, size_t *vlen)
{
	size_t nlen = strlen(name), i = 0, end;

	while (i < len && (end = line_end(h + i, len - i)) > 2) {
		const unsigned char *l = h + i;

		if (end - 2 > nlen && l[nlen] == ':' &&
		    !strncasecmp((const char *)l, name, nlen)) {
			size_t s = nlen + 1, e = end - 2;

			while (s < e && (l[s] == ' ' || l[s] == '\t'))
				s++;
			while (e > s && (l[e - 1] == ' ' || l[e - 1] == '\t'))
				e--;
			*v = l + s;
			*vlen = e - s;
			return true;
		}
		i += end;
	}
	return false;
}

static long http_need(const unsigned char *buf, size_t len, char *err,
		      size_t errlen)
{
	const unsigned char *v, *hdr = NULL;
	size_t first, clen, vlen;

	for (size_t i = 0; i + 3 < len; i++)
		if (!memcmp(buf + i, "\r\n\r\n", 4)) {
			hdr = buf + i + 4;
			break;
		}
	if (!hdr) {
		if (len > BENCH_PROTO_HDR_MAX) {
			snprintf(err, errlen,
				 "http: no end of header in the first %d bytes",
				 BENCH_PROTO_HDR_MAX);
			return -EPROTO;
		}
		return 0;
	}
	first = line_end(buf, len);
	if (first < 14 || memcmp(buf, "HTTP/1.", 7) || buf[8] != ' ' ||
	    buf[9] != '2') {
		excerpt(err, errlen, "http: not a 2xx response", buf,
			first ? first - 2 : len, 60);
		return -EPROTO;
	}
	if (header(buf + first, (size_t)(hdr - buf) - first,
		   "Transfer-Encoding", &v, &vlen)) {
		excerpt(err, errlen,
			"http: a body in Transfer-Encoding (only Content-Length is read)",
			v, vlen, 40);
		return -EPROTO;
	}
	if (!header(buf + first, (size_t)(hdr - buf) - first, "Content-Length",
		    &v, &vlen)) {
		snprintf(err, errlen,
			 "http: a response without Content-Length");
		return -EPROTO;
	}
	if (parse_len(v, vlen, &clen) || clen > BENCH_PROTO_BODY_MAX) {
		excerpt(err, errlen, "http: bad Content-Length", v, vlen, 40);
		return -EPROTO;
	}
	return (long)((size_t)(hdr - buf) + clen);
}

long bench_proto_need(enum bench_proto proto, const unsigned char *buf,
		      size_t len, char *err, size_t errlen)
{
	if (!len)
		return 0;
	switch (proto) {
	case BENCH_PROTO_REDIS:
		return redis_need(buf, len, err, errlen);
	case BENCH_PROTO_HTTP:
		return http_need(buf, len, err, errlen);
	default:
		snprintf(err, errlen, "no framing for protocol %d", proto);
		return -EINVAL;
	}
}

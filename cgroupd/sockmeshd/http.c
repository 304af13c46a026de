// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* http.c - see http.h. Request syntax as RFC 9112, sections 2 to 5. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* The end of the line starting at @p (its '\n'), or NULL. */
static const char *line_end(const char *p, const char *end)
{
	return memchr(p, '\n', end - p);
}

/* Without the '\r' before the '\n' at @nl. */
static const char *trim_cr(const char *p, const char *nl)
{
	return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* "METHOD SP TARGET SP HTTP/D.D": 200, 400 or 505; what it asks in @req. */
static int request_line(const char *p, const char *end, int *minor,
			struct sm_http_req *req)
{
	const char *sp1, *sp2, *path_end;
	size_t n;

	sp1 = memchr(p, ' ', end - p);
	if (!sp1 || sp1 == p || sp1 - p > 16)
		return 400;
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar(*c))
			return 400;
	sp2 = memchr(sp1 + 1, ' ', end - sp1 - 1);
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
		return 400;
	for (const char *c = sp1 + 1; c < sp2; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return 400;
	n = end - sp2 - 1;
	if (n != 8 || strncmp(sp2 + 1, "HTTP/", 5) || sp2[6] < '0' ||
	    sp2[6] > '9' || sp2[7] != '.' || sp2[8] < '0' || sp2[8] > '9')
		return 400;
	if (sp2[6] != '1')
		return 505;
	*minor = sp2[8] - '0';

	req->head = sp1 - p == 4 && !strncmp(p, "HEAD", 4);
	if (!req->head && !(sp1 - p == 3 && !strncmp(p, "GET", 3)))
		return 405;
	path_end = memchr(sp1 + 1, '?', sp2 - sp1 - 1);
	if (!path_end)
		path_end = sp2;
	n = path_end - sp1 - 1;
	if (n == 8 && !strncmp(sp1 + 1, "/metrics", 8))
		req->route = SM_HTTP_METRICS;
	else if (n == 8 && !strncmp(sp1 + 1, "/healthz", 8))
		req->route = SM_HTTP_HEALTHZ;
	else
		req->route = SM_HTTP_UNKNOWN;
	return 200;
}

int sm_http_parse(const char *buf, size_t len, bool eof,
		  struct sm_http_req *req)
{
	const char *p = buf, *end = buf + len, *nl, *colon;
	bool host = false;
	int minor = 0, ret;

	*req = (struct sm_http_req){0};
	if (memchr(buf, '\0', len))
		return 400;
	/* a server should ignore empty lines before the request line */
	while (p < end && (*p == '\r' || *p == '\n') && p - buf < 4)
		p++;
	nl = line_end(p, end);
	if (!nl)
		return len >= SM_HTTP_REQ_MAX ? 414 : eof ? 400 : 0;
	/* a request line's errors come first, even before the headers end */
	ret = request_line(p, trim_cr(p, nl), &minor, req);
	if (ret != 200 && ret != 405)
		return ret;
	for (p = nl + 1;; p = nl + 1) {
		const char *e;

		nl = line_end(p, end);
		if (!nl)
			return len >= SM_HTTP_REQ_MAX ? 431 : eof ? 400 : 0;
		e = trim_cr(p, nl);
		if (e == p)
			break; /* the empty line: the headers are complete */
		if (*p == ' ' || *p == '\t')
			return 400; /* obsolete line folding */
		colon = memchr(p, ':', e - p);
		if (!colon || colon == p)
			return 400;
		for (const char *c = p; c < colon; c++)
			if (!is_tchar(*c))
				return 400;
		if (colon - p == 4 && !strncasecmp(p, "host", 4))
			host = true;
	}
	if (ret == 405)
		return 405;
	/* RFC 9112, 3.2: a 1.1 request without Host gets a 400 */
	if (minor >= 1 && !host)
		return 400;
	return 200;
}

const char *sm_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

int sm_http_head(char *out, size_t outlen, int status, const char *type,
		 size_t body_len)
{
	int n = snprintf(out, outlen,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			 status, sm_http_reason(status), type, body_len,
			 status == 405 ? "Allow: GET, HEAD\r\n" : "");

	return n < 0 || (size_t)n >= outlen ? -ENOSPC : n;
}

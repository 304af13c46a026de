// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * metrics.c - the metrics endpoint: /metrics (Prometheus text) and
 * /healthz over HTTP/1.x (http.c parses), one request per connection.
 *
 * /metrics is rendered at most once per METRICS_FRESH_MS and shared by the
 * scrapes meanwhile: a render reads every port's slot (about 9 ms on a
 * 2-core machine), and clients that connect and ask as fast as they can
 * must not make the daemon do nothing else. A reload drops the render.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop_priv.h"
#include "notify.h"

#define METRICS_FRESH_MS 100 /* a /metrics render serves this long */

void sm_metrics_forget(struct sm_loop *l)
{
	loop_body_put(l->metrics);
	l->metrics = NULL;
}

static struct body *text_body(const char *s)
{
	char *d = strdup(s);

	return d ? loop_body_new(d, strlen(d)) : NULL;
}

static void http_reply(struct sm_loop *l, struct client *cl, int status,
		       const char *type, struct body *body, bool head_only)
{
	int n = sm_http_head(cl->head, sizeof(cl->head), status, type,
			     body ? body->len : 0);

	if (n < 0) {
		loop_body_put(body);
		loop_client_kill(l, cl);
		return;
	}
	cl->head_len = n;
	loop_client_reply(l, cl, body, head_only);
}

void sm_metrics_handle(struct sm_loop *l, struct client *cl, bool eof)
{
	struct sm_http_req req;
	char msg[64];
	int status;

	status = sm_http_parse(cl->buf, cl->len, eof, &req);
	if (!status) {
		if (loop_arm_recv(l, cl))
			loop_client_kill(l, cl);
		return;
	}
	if (status != 200) {
		snprintf(msg, sizeof(msg), "%d %s\n", status,
			 sm_http_reason(status));
		http_reply(l, cl, status, "text/plain", text_body(msg), false);
		return;
	}
	switch (req.route) {
	case SM_HTTP_HEALTHZ:
		http_reply(l, cl, 200, "text/plain", text_body("ok\n"),
			   req.head);
		return;
	case SM_HTTP_METRICS:
		if (l->metrics && sm_monotonic_usec() / 1000 - l->metrics_at >=
					  METRICS_FRESH_MS) {
			loop_body_put(l->metrics);
			l->metrics = NULL;
		}
		if (!l->metrics) {
			l->metrics = loop_render(l, 0, 1);
			l->metrics_at = sm_monotonic_usec() / 1000;
		}
		if (!l->metrics) {
			http_reply(l, cl, 503, "text/plain",
				   text_body("cannot read the pins\n"), false);
			return;
		}
		l->metrics->refs++;
		http_reply(l, cl, 200,
			   "text/plain; version=0.0.4; charset=utf-8",
			   l->metrics, req.head);
		return;
	default:
		http_reply(l, cl, 404, "text/plain",
			   text_body("not found: try /metrics or /healthz\n"),
			   req.head);
		return;
	}
}

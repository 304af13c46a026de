// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* json.c - see json.h. */
#include <inttypes.h>
#include <string.h>

#include "json.h"

void sm_json_quote(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

void sm_json_init(struct sm_json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/* Separator before a value or a key at the current level. */
static void sep(struct sm_json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth > 0 && j->count[j->depth - 1]++)
		fputs(", ", j->out);
}

static void open_level(struct sm_json *j, char c)
{
	sep(j);
	fputc(c, j->out);
	if (j->depth < SM_JSON_DEPTH)
		j->count[j->depth] = 0;
	j->depth++;
}

static void close_level(struct sm_json *j, char c)
{
	if (j->depth > 0)
		j->depth--;
	fputc(c, j->out);
	if (!j->depth)
		fputc('\n', j->out);
}

void sm_json_begin_object(struct sm_json *j)
{
	open_level(j, '{');
}

void sm_json_end_object(struct sm_json *j)
{
	close_level(j, '}');
}

void sm_json_begin_array(struct sm_json *j)
{
	open_level(j, '[');
}

void sm_json_end_array(struct sm_json *j)
{
	close_level(j, ']');
}

void sm_json_key(struct sm_json *j, const char *key)
{
	sep(j);
	sm_json_quote(j->out, key);
	fputs(": ", j->out);
	j->after_key = 1;
}

void sm_json_string(struct sm_json *j, const char *s)
{
	sep(j);
	sm_json_quote(j->out, s);
}

void sm_json_u64(struct sm_json *j, __u64 v)
{
	sep(j);
	fprintf(j->out, "%" PRIu64, (uint64_t)v);
}

void sm_json_int(struct sm_json *j, long long v)
{
	sep(j);
	fprintf(j->out, "%lld", v);
}

void sm_json_bool(struct sm_json *j, int v)
{
	sep(j);
	fputs(v ? "true" : "false", j->out);
}

void sm_json_kbool(struct sm_json *j, const char *key, int v)
{
	sm_json_key(j, key);
	sm_json_bool(j, v);
}

void sm_json_kstring(struct sm_json *j, const char *key, const char *s)
{
	sm_json_key(j, key);
	sm_json_string(j, s);
}

void sm_json_ku64(struct sm_json *j, const char *key, __u64 v)
{
	sm_json_key(j, key);
	sm_json_u64(j, v);
}

void sm_json_kint(struct sm_json *j, const char *key, long long v)
{
	sm_json_key(j, key);
	sm_json_int(j, v);
}

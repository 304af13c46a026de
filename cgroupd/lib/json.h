/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * json.h - the one JSON writer of sockmesh: objects, arrays, strings
 * (escaped, control characters included) and numbers, written as
 * `{"key": value, "key": value}`.
 */
#ifndef SM_JSON_H
#define SM_JSON_H

#include <stdio.h>
#include <linux/types.h>

#define SM_JSON_DEPTH 16

struct sm_json {
	FILE *out;
	int depth;
	unsigned char count[SM_JSON_DEPTH]; /* members written per level */
	int after_key;			    /* the next value follows a key */
};

void sm_json_init(struct sm_json *j, FILE *out);
void sm_json_begin_object(struct sm_json *j);
void sm_json_end_object(struct sm_json *j);
void sm_json_begin_array(struct sm_json *j);
void sm_json_end_array(struct sm_json *j);
void sm_json_key(struct sm_json *j, const char *key);
void sm_json_string(struct sm_json *j, const char *s);
void sm_json_u64(struct sm_json *j, __u64 v);
void sm_json_int(struct sm_json *j, long long v);
void sm_json_bool(struct sm_json *j, int v);
/* "key": value in one call. */
void sm_json_kstring(struct sm_json *j, const char *key, const char *s);
void sm_json_ku64(struct sm_json *j, const char *key, __u64 v);
void sm_json_kint(struct sm_json *j, const char *key, long long v);
void sm_json_kbool(struct sm_json *j, const char *key, int v);
/* @s as a quoted JSON string, alone. */
void sm_json_quote(FILE *out, const char *s);

#endif

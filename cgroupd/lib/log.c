// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

enum sm_log_level sm_log_max = SM_LOG_INFO;

static const char *const level_names[] = {
	[SM_LOG_ERROR] = "error",
	[SM_LOG_WARN] = "warn",
	[SM_LOG_INFO] = "info",
	[SM_LOG_DEBUG] = "debug",
};

void sm_log(enum sm_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > sm_log_max)
		return;
	fprintf(stderr, "%s: ", level_names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char failed_prog[64], verifier_last[256], failure[400];
static int in_log;

/* One line of libbpf's output (a verifier log comes as many in one). */
static void libbpf_line(const char *line, size_t n)
{
	const char *p;

	if (memmem(line, n, "-- BEGIN PROG LOAD LOG --", 25))
		in_log = 1;
	else if (memmem(line, n, "-- END PROG LOAD LOG --", 23))
		in_log = 0;
	else if (in_log && n && strncmp(line, "processed ", 10) &&
		 strncmp(line, "verification time", 17) &&
		 strncmp(line, "stack depth", 11))
		snprintf(verifier_last, sizeof(verifier_last), "%.*s",
			 (int)(n < 200 ? n : 200), line);
	p = memmem(line, n, "prog '", 6);
	if (p && memmem(line, n, "failed to load", 14) && !failed_prog[0])
		snprintf(failed_prog, sizeof(failed_prog), "%.*s",
			 (int)strcspn(p + 6, "'\n"), p + 6);
}

int sm_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *text = NULL;
	const char *p;
	int len;

	(void)level;
	len = vasprintf(&text, fmt, ap);
	if (len < 0)
		return 0;
	for (p = text; *p;) {
		size_t n = strcspn(p, "\n");

		libbpf_line(p, n);
		p += n;
		if (*p)
			p++;
	}
	if (sm_log_max >= SM_LOG_DEBUG)
		fputs(text, stderr);
	free(text);
	return len;
}

const char *sm_libbpf_failure(void)
{
	if (!failed_prog[0])
		return "";
	snprintf(failure, sizeof(failure),
		 "program '%s' refused by the kernel's verifier%s%s",
		 failed_prog, verifier_last[0] ? ": " : "", verifier_last);
	return failure;
}

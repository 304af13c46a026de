// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>

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

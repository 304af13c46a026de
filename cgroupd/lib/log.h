/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* log.h - leveled logging to stderr; only main-level code logs. */
#ifndef SM_LOG_H
#define SM_LOG_H

enum sm_log_level {
	SM_LOG_ERROR,
	SM_LOG_WARN,
	SM_LOG_INFO,
	SM_LOG_DEBUG,
};

extern enum sm_log_level sm_log_max;

void sm_log(enum sm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * libbpf's messages: shown with log_level = debug only (a user never sees a
 * raw libbpf or verifier line otherwise); the program that failed to load
 * and the verifier's last word are kept for sm_libbpf_failure().
 */
#include <stdarg.h>
#include <stddef.h>
#include <bpf/libbpf.h>
int sm_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap);
/* "program 'P' refused by the kernel's verifier: LINE", or "" */
const char *sm_libbpf_failure(void);

#define pr_err(...)   sm_log(SM_LOG_ERROR, __VA_ARGS__)
#define pr_warn(...)  sm_log(SM_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  sm_log(SM_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) sm_log(SM_LOG_DEBUG, __VA_ARGS__)

#endif

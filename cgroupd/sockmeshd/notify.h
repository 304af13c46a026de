/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * notify.h - the sd_notify protocol, without libsystemd: one datagram of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a
 * path, or '@' for the abstract namespace).
 */
#ifndef SM_NOTIFY_H
#define SM_NOTIFY_H

/* Send the message; 0 when sent or when $NOTIFY_SOCKET is unset, else
 * -errno. */
int sm_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC= */
unsigned long long sm_monotonic_usec(void);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * loop.h - sockmeshd's event loop: signals, the control socket, the
 * metrics endpoint and the STATUS= timer in one io_uring that sleeps until
 * something happens, and never blocks on a client.
 *
 * The control socket and the metrics port have client pools of their own
 * (SM_LOOP_CTL_MAX, SM_LOOP_METRICS_MAX): nothing on the network can take
 * a control client's place. Each client has one deadline for its whole
 * exchange (SM_LOOP_DEADLINE); when its pool is full, the oldest client is
 * dropped to admit the new one. Replies go out through the ring, so a
 * client that does not read only holds its own slot.
 */
#ifndef SM_LOOP_H
#define SM_LOOP_H

#include <stdbool.h>

#include "daemon.h"

#define SM_LOOP_CTL_MAX	    16 /* control clients at once */
#define SM_LOOP_METRICS_MAX 64 /* metrics clients at once */
#define SM_LOOP_DEADLINE    5  /* seconds for a client's whole exchange */
/* inotify watches on the paths of systemd units' cgroups: 8 levels each */
#define SM_LOOP_WATCH_MAX (SM_CGROUPS_MAX * 8)

struct sm_loop;

/* A loop over @d's sockets and the signalfd @sfd; NULL (logged) if the
 * kernel gives no io_uring. Call before daemon_start(): a daemon that
 * cannot serve does not attach. */
struct sm_loop *sm_loop_new(struct sm_daemon *d, int sfd);
/* Serve until SIGTERM, SIGINT or an unload request: 0, or -errno. */
int sm_loop_run(struct sm_loop *l);
/* An unload request ended the loop. */
bool sm_loop_unloading(const struct sm_loop *l);
/* The client that asked to unload, now the caller's to answer and close
 * (blocking, with a send timeout); -1 if none. */
int sm_loop_take_unload_fd(struct sm_loop *l);
/* The ring first, so the kernel is done with every buffer, then the
 * clients. */
void sm_loop_free(struct sm_loop *l);

#endif

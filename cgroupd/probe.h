/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* probe.h - does this kernel have what the datapath needs? */
#ifndef SM_PROBE_H
#define SM_PROBE_H

#include <stddef.h>

/*
 * Probe every kernel feature the datapath uses. 0 if all are there,
 * -EOPNOTSUPP with the missing ones named in @missing (comma list), or
 * -EPERM when this process may not probe (a capability is missing), said
 * in @missing.
 */
int sm_probe_kernel(char *missing, size_t len);

#endif

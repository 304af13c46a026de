/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* probe.h - does this kernel have what the datapath needs? */
#ifndef SM_PROBE_H
#define SM_PROBE_H

#include <stddef.h>
#include <linux/types.h>

#include "sockmesh.h"

/*
 * The rules whose way of working depends on the kernel, and how each works
 * with the SM_FEAT_* @feat: @name as status, --json and the metrics show
 * it, @way what it does, @lacks the feature it does without (with the
 * release that added it upstream), NULL when it works as on current
 * kernels. docs/datapath.md, "Kernels", says the same at length.
 */
struct sm_rule {
	const char *name, *way, *lacks;
};
#define SM_RULES_NR 6
void sm_datapath_rules(__u32 feat, struct sm_rule r[SM_RULES_NR]);

/*
 * Probe every kernel feature the datapath uses. 0 if all it cannot do
 * without are there, with the SM_FEAT_* the kernel has in @feat;
 * -EOPNOTSUPP with the missing ones named in @missing (comma list), or
 * -EPERM when this process may not probe (a capability is missing), said
 * in @missing.
 */
int sm_probe_kernel(__u32 *feat, char *missing, size_t len);

/* The SK_MSG program the datapath runs with @feat (its pin is sm_skmsg). */
const char *sm_probe_skmsg(__u32 feat);

#endif

/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* policy.h - config -> the contents of the policy maps; pure functions. */
#ifndef SM_POLICY_H
#define SM_POLICY_H

#include "config.h"
#include "sockmesh.h"

/* SM_PORT_* flags of every port, into @flags[SM_PORTS_MAX]. */
void sm_policy_port_flags(const struct sm_config *cfg, __u8 *flags);
/* The LPM key of a prefix, host bits cleared. */
void sm_policy_lpm_key(const struct sm_cidr *c, struct sm_lpm_key *key);
/* Does @addr (sm_key layout) fall in one of @n prefixes? For the tests and
 * for explaining decisions; the datapath asks the LPM maps instead. */
int sm_policy_addr_in(const struct sm_cidr *cidrs, int n, const __u32 addr[4]);

#endif

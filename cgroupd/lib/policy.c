// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <string.h>

#include "policy.h"

static void mark(__u8 *flags, const struct sm_port_range *r, int n, __u8 bit)
{
	for (int i = 0; i < n; i++)
		for (__u32 p = r[i].lo; p <= r[i].hi; p++)
			flags[p] |= bit;
}

void sm_policy_port_flags(const struct sm_config *cfg, __u8 *flags)
{
	memset(flags, 0, SM_PORTS_MAX);
	if (cfg->ports_all)
		memset(flags + 1, SM_PORT_INCLUDE, SM_PORTS_MAX - 1);
	else
		mark(flags, cfg->ports, cfg->n_ports, SM_PORT_INCLUDE);
	mark(flags, cfg->exclude_ports, cfg->n_exclude_ports, SM_PORT_EXCLUDE);
}

void sm_policy_lpm_key(const struct sm_cidr *c, struct sm_lpm_key *key)
{
	unsigned char *b = (unsigned char *)key->addr;

	key->prefixlen = c->prefixlen;
	memcpy(key->addr, c->addr, sizeof(key->addr));
	for (__u32 bit = c->prefixlen; bit < 128; bit++)
		b[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
}

static int prefix_match(const struct sm_cidr *c, const __u32 addr[4])
{
	const unsigned char *a = (const unsigned char *)addr;
	const unsigned char *p = (const unsigned char *)c->addr;
	__u32 full = c->prefixlen / 8, rest = c->prefixlen % 8;

	if (memcmp(a, p, full))
		return 0;
	if (!rest)
		return 1;
	return ((a[full] ^ p[full]) & (0xff00 >> rest)) == 0;
}

int sm_policy_addr_in(const struct sm_cidr *cidrs, int n, const __u32 addr[4])
{
	for (int i = 0; i < n; i++)
		if (prefix_match(&cidrs[i], addr))
			return 1;
	return 0;
}

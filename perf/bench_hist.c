// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* bench_hist.c - the latency histogram: log-linear buckets, <1% error. */
#include <string.h>

#include "bench.h"

void bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

static unsigned int hist_index(uint64_t v)
{
	unsigned int shift;

	if (v < HIST_SUB)
		return (unsigned int)v;
	if (v >= HIST_LIMIT)
		v = HIST_LIMIT - 1;
	/* keep the HIST_SUB_BITS top bits: 64..127 after the shift */
	shift = 63 - __builtin_clzll(v) - (HIST_SUB_BITS - 1);
	return shift * HIST_HALF + (unsigned int)(v >> shift);
}

/* Midpoint of bucket @idx. */
static uint64_t hist_value(unsigned int idx)
{
	unsigned int shift;
	uint64_t lo;

	if (idx < HIST_SUB)
		return idx;
	shift = idx / HIST_HALF - 1;
	lo = (uint64_t)(idx % HIST_HALF + HIST_HALF) << shift;
	return lo + ((1ULL << shift) >> 1);
}

void bench_hist_add(struct bench_hist *h, uint64_t ns)
{
	if (!h->n || ns < h->min)
		h->min = ns;
	if (ns > h->max)
		h->max = ns;
	if (ns >= HIST_LIMIT)
		h->overflow++;
	h->n++;
	h->sum += ns;
	h->count[hist_index(ns)]++;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	if (!src->n)
		return;
	if (!dst->n || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->n += src->n;
	dst->sum += src->sum;
	dst->overflow += src->overflow;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++)
		dst->count[i] += src->count[i];
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (!h->n)
		return 0;
	rank = (uint64_t)(q * (double)h->n);
	if ((double)rank < q * (double)h->n || rank < 1) /* ceil, at least 1 */
		rank++;
	if (rank > h->n)
		rank = h->n;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen < rank)
			continue;
		v = hist_value(i);
		/* the exact extremes are known: never report beyond them */
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max;
}

/* loadtest/lt_hist.h: a log-linear latency histogram (HDR-like): 128
 * linear sub-buckets per power of two, so any recorded value is known to
 * within 1/128 (0.8 %), from 1 ns to 2^40 ns (18 min; larger values are
 * clamped). Fixed size (35 KiB), no allocation, no stored samples: workers
 * fill one each and the parent merges them.
 * SPDX-License-Identifier: MIT */
#ifndef LT_HIST_H
#define LT_HIST_H

#include <stdint.h>

#define LT_HIST_SUB_BITS 7
#define LT_HIST_MAX_BITS 40
#define LT_HIST_BUCKETS                                                        \
    ((1u << LT_HIST_SUB_BITS) * (LT_HIST_MAX_BITS - LT_HIST_SUB_BITS + 1))

typedef struct lt_hist {
    uint64_t count, sum, min, max; /* ns */
    uint64_t b[LT_HIST_BUCKETS];
} lt_hist_t;

void lt_hist_init(lt_hist_t *h);
/* Record one value (ns). Loop-safe, O(1). */
void lt_hist_add(lt_hist_t *h, uint64_t v);
void lt_hist_merge(lt_hist_t *dst, const lt_hist_t *src);
/* Value at quantile q (0..1): the highest value equivalent to the bucket
 * holding the ceil(q*count)-th smallest sample, capped at max. 0 if empty. */
uint64_t lt_hist_quantile(const lt_hist_t *h, double q);

#endif /* LT_HIST_H */

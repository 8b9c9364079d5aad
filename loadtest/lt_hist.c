/* loadtest/lt_hist.c: log-linear latency histogram.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_hist.h"

#include <math.h>
#include <string.h>

#define SUB (1u << LT_HIST_SUB_BITS)

void lt_hist_init(lt_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Values below SUB have their own bucket; above, a value whose highest set
 * bit is m goes to octave (m - SUB_BITS + 1), sub-bucket given by the
 * SUB_BITS bits below that highest bit. */
static uint32_t bucket_of(uint64_t v)
{
    unsigned m;

    if (v < SUB)
        return (uint32_t)v;
    m = 63u - (unsigned)__builtin_clzll(v);
    if (m >= LT_HIST_MAX_BITS)
        return LT_HIST_BUCKETS - 1;
    return SUB * (m - LT_HIST_SUB_BITS + 1) +
           (uint32_t)((v >> (m - LT_HIST_SUB_BITS)) & (SUB - 1));
}

/* Highest value that falls into bucket i. */
static uint64_t bucket_top(uint32_t i)
{
    uint32_t oct = i / SUB, sub = i % SUB;
    unsigned shift;

    if (oct == 0)
        return i;
    shift = oct - 1;
    return (((uint64_t)(SUB + sub) + 1) << shift) - 1;
}

void lt_hist_add(lt_hist_t *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void lt_hist_merge(lt_hist_t *dst, const lt_hist_t *src)
{
    uint32_t i;

    if (src->count == 0)
        return;
    for (i = 0; i < LT_HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t lt_hist_quantile(const lt_hist_t *h, double q)
{
    uint64_t rank, seen = 0, top;
    uint32_t i;

    if (h->count == 0)
        return 0;
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    for (i = 0; i < LT_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            top = bucket_top(i);
            return top > h->max ? h->max : top;
        }
    }
    return h->max;
}

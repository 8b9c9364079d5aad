/* Sums Prometheus text expositions (version 0.0.4) series by series: the
 * supervisor's /metrics is the sum of its workers' (docs/WORKERS.md).
 * Families keep the order in which they were first seen, each with its
 * HELP and TYPE lines once and its series together.
 * SPDX-License-Identifier: MIT */
#ifndef RC_AGG_H
#define RC_AGG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

typedef struct rc_agg rc_agg_t;

rc_agg_t *rc_agg_create(void);    /* owned: rc_agg_destroy() */
void rc_agg_destroy(rc_agg_t *a); /* NULL is a no-op */

/* Adds every sample of text (len bytes, borrowed) to the sums. With
 * monotonic, only the samples of counter and histogram families are taken
 * (what a dead worker leaves behind, so the node's counters never go
 * back). Lines it does not understand are skipped. */
void rc_agg_add(rc_agg_t *a, const char *text, size_t len, bool monotonic);

/* Replaces the value of the series named key ("name" or
 * "name{labels}") if it is there. */
void rc_agg_set(rc_agg_t *a, const char *key, double v);

/* Appends the summed exposition to out. */
void rc_agg_render(const rc_agg_t *a, rc_buf_t *out);

#endif /* RC_AGG_H */

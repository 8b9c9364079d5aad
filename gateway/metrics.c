/* Latency histogram bucketing and metric label names.
 * SPDX-License-Identifier: MIT */
#include "gateway/metrics.h"

#include <math.h>

const double rc_metrics_lat_bounds[RC_METRICS_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0, INFINITY};

void rc_metrics_observe_latency(rc_metrics_t *m, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;

    while (i < RC_METRICS_LAT_BUCKETS - 1 && s > rc_metrics_lat_bounds[i])
        i++;
    m->lat_buckets[i]++;
    m->lat_count++;
    m->lat_sum_s += s;
}

const char *rc_drop_reason_str(rc_drop_reason_t r)
{
    switch (r) {
    case RC_DROP_BAD_JSON:
        return "bad_json";
    case RC_DROP_TOO_BIG:
        return "too_big";
    case RC_DROP_NO_MEMORY:
        return "no_memory";
    case RC_DROP_REASON_COUNT:
        break;
    }
    return "unknown";
}

const char *rc_resume_refusal_str(rc_resume_refusal_t r)
{
    static const char *const names[RC_RESUME_REFUSAL_COUNT] = {
        "forged", "malformed",   "expired",      "other_sub",
        "used",   "no_snapshot", "bad_snapshot", "backend"};

    return r < RC_RESUME_REFUSAL_COUNT ? names[r] : "unknown";
}

/* Node counters and the publish-to-deliver latency histogram. Plain
 * counters owned by the node; rendered by rc_metrics_render().
 * SPDX-License-Identifier: MIT */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define RC_METRICS_LAT_BUCKETS 16

typedef enum rc_drop_reason {
    RC_DROP_BAD_JSON = 0, /* published data that is not JSON */
    RC_DROP_TOO_BIG,      /* published data over max_publish */
    RC_DROP_NO_MEMORY,
    RC_DROP_REASON_COUNT
} rc_drop_reason_t;

typedef enum rc_resume_refusal {
    RC_RESUME_FORGED = 0, /* signature does not verify */
    RC_RESUME_MALFORMED,
    RC_RESUME_EXPIRED,
    RC_RESUME_OTHER_SUB,   /* bound to another JWT sub */
    RC_RESUME_USED,        /* already used (on any node) */
    RC_RESUME_NO_SNAPSHOT, /* nothing stored for the session */
    RC_RESUME_BAD_SNAPSHOT,
    RC_RESUME_BACKEND, /* the backend could not answer */
    RC_RESUME_REFUSAL_COUNT
} rc_resume_refusal_t;

const char *rc_resume_refusal_str(rc_resume_refusal_t r);

typedef struct rc_metrics {
    uint64_t conns_opened;
    uint64_t conns_closed;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t writes;
    uint64_t direct_writes; /* of writes: from the flush, no WRITEABLE */
    uint64_t deliveries;
    uint64_t bytes_out;
    uint64_t slow_consumer_closes;
    uint64_t rate_limited;
    uint64_t rate_limit_closes;
    uint64_t bad_requests;
    uint64_t oversize_closes;
    uint64_t heartbeat_closes;
    uint64_t publishes;
    uint64_t upgrades_refused;
    uint64_t auth_timeouts;
    uint64_t token_expired_closes;
    uint64_t resumes_accepted;
    uint64_t resumes_refused[RC_RESUME_REFUSAL_COUNT];
    uint64_t auth_failures[RC_AUTH_REASON_COUNT];
    uint64_t drops[RC_DROP_REASON_COUNT];
    uint64_t lat_buckets[RC_METRICS_LAT_BUCKETS]; /* cumulative at render */
    uint64_t lat_count;
    double lat_sum_s;
} rc_metrics_t;

/* Bucket upper bounds, seconds (the last is +Inf). */
extern const double rc_metrics_lat_bounds[RC_METRICS_LAT_BUCKETS];

void rc_metrics_observe_latency(rc_metrics_t *m, uint64_t ns);
const char *rc_drop_reason_str(rc_drop_reason_t r);

#endif /* RC_METRICS_H */

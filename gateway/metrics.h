/* Node counters, the publish-to-deliver latency histogram, and their
 * rendering: rc_metrics_render() (Prometheus text for GET /metrics) and
 * rc_metrics_render_stats() (one JSON line for GET /stats). Plain counters
 * owned by the node; the gauges are measured by the node at render time.
 * SPDX-License-Identifier: MIT */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter/adapter.h"
#include "auth/auth.h"
#include "common/buf.h"

#define RC_METRICS_LAT_BUCKETS 16

/* Why a client's publish was dropped before it reached the adapter. (Data
 * that is not JSON cannot get here: rc_proto_parse refuses the frame, and
 * what arrives from Redis is checked by the adapter, which counts its own
 * drops.) */
typedef enum rc_drop_reason {
    RC_DROP_TOO_BIG = 0, /* published data over max_publish */
    RC_DROP_NO_MEMORY,   /* the data could not be encoded for the adapter */
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

/* A bound that bit (roomcast_bounds_hit_total{reason}): what a client
 * asked for was refused, delayed or cut to keep memory bounded. */
typedef enum rc_bound {
    RC_BOUND_HISTORY_CONN = 0, /* history reads in flight, per connection */
    RC_BOUND_HISTORY_NODE,     /* history reads in flight, per node */
    RC_BOUND_RESUME_ROOMS,     /* a resume's rooms read a few at a time */
    RC_BOUND_RESUME_BYTES,     /* history held for a welcome; re-read */
    RC_BOUND_FIRST_FRAME,      /* a first (auth) frame past its cap */
    RC_BOUND_TOKEN_TOO_LONG,   /* a token over the header/URL buffers */
    RC_BOUND_HELD_REQUESTS,    /* requests sent before the welcome */
    RC_BOUND_PENDING_SOURCE,   /* max_pending_per_source: closed at accept */
    RC_BOUND_COUNT
} rc_bound_t;

const char *rc_bound_str(rc_bound_t b);

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
    uint64_t tls_reloads, tls_reload_errors; /* SIGHUP */
    uint64_t bad_requests;
    uint64_t oversize_closes;
    uint64_t heartbeat_closes;
    uint64_t publishes;
    uint64_t upgrades_refused;
    uint64_t auth_timeouts;    /* no auth frame within auth_timeout_ms */
    uint64_t catchups;         /* rooms caught up after a lost subscription */
    uint64_t catchup_messages; /* messages read from history for them */
    uint64_t catchup_failures; /* history unavailable: held frames only */
    uint64_t catchup_gaps;     /* history no longer held the whole gap */
    uint64_t token_expired_closes;
    uint64_t drain_clients_moved; /* sent `reconnect` by a drain */
    uint64_t resumes_accepted;
    uint64_t resumes_refused[RC_RESUME_REFUSAL_COUNT];
    uint64_t resume_takeovers; /* resumes of a session still connected */
    uint64_t replays_paced;    /* replays queued in slices */
    uint64_t bounds_hit[RC_BOUND_COUNT];
    uint64_t history_reads;         /* gauge: since-reads in flight */
    uint64_t history_reads_waiting; /* gauge: waiting for one to end */
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

/* What the node measures when it is asked, next to its counters. The
 * strings are borrowed for the render call. */
typedef struct rc_metrics_gauges {
    const char *node_id;
    const char *state; /* "serving", "draining" or "stopping" */
    const char *adapter;
    uint64_t connections;
    uint64_t pending_auth;
    uint64_t rooms;
    uint64_t memberships;
    uint64_t queue_bytes; /* queued to clients, not yet written */
    bool ready;           /* takes new clients */
    bool draining;
} rc_metrics_gauges_t;

/* Appends the Prometheus text exposition (version 0.0.4) of m and g to b,
 * then every metric of ad (borrowed; its ops->metrics emits them, each
 * rendered as roomcast_<name>). */
void rc_metrics_render(const rc_metrics_t *m, const rc_metrics_gauges_t *g,
                       const rc_adapter_t *ad, rc_buf_t *b);
/* Appends the one-line JSON summary of /stats to b. */
void rc_metrics_render_stats(const rc_metrics_t *m,
                             const rc_metrics_gauges_t *g, rc_buf_t *b);

#endif /* RC_METRICS_H */

/* Node metrics: the latency histogram's buckets, label names, and the two
 * renderings of the admin listener (Prometheus text, /stats JSON).
 * SPDX-License-Identifier: MIT */
#include "gateway/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

const char *rc_bound_str(rc_bound_t b)
{
    static const char *const names[RC_BOUND_COUNT] = {
        "history_per_conn", "history_per_node",  "resume_rooms",
        "resume_bytes",     "first_frame",       "token_too_long",
        "held_requests",    "pending_per_source"};

    return b < RC_BOUND_COUNT ? names[b] : "unknown";
}

/* An adapter's metric, as Prometheus text into the rc_buf_t at ctx. */
static void emit_metric(void *ctx, rc_metric_kind_t kind, const char *name,
                        const char *help, uint64_t value)
{
    rc_buf_printf(ctx,
                  "# HELP roomcast_%s %s\n# TYPE roomcast_%s %s\n"
                  "roomcast_%s %" PRIu64 "\n",
                  name, help, name,
                  kind == RC_METRIC_COUNTER ? "counter" : "gauge", name, value);
}

void rc_metrics_render(const rc_metrics_t *m, const rc_metrics_gauges_t *g,
                       const rc_adapter_t *ad, rc_buf_t *b)
{
    uint64_t cum = 0;

#define G(name, help, v)                                                       \
    rc_buf_printf(b,                                                           \
                  "# HELP roomcast_" name " " help "\n# TYPE roomcast_" name   \
                  " gauge\nroomcast_" name " %" PRIu64 "\n",                   \
                  (uint64_t)(v))
#define C(name, help, v)                                                       \
    rc_buf_printf(b,                                                           \
                  "# HELP roomcast_" name " " help "\n# TYPE roomcast_" name   \
                  " counter\nroomcast_" name " %" PRIu64 "\n",                 \
                  (uint64_t)(v))
    G("connections", "Open client connections.", g->connections);
    G("pending_auth", "Connections waiting for their auth frame.",
      g->pending_auth);
    G("rooms", "Rooms with local members.", g->rooms);
    G("memberships", "Room memberships on this node.", g->memberships);
    G("queue_bytes", "Bytes queued to clients, not yet written.",
      g->queue_bytes);
    G("ready", "1 when the node takes new clients.", g->ready);
    G("draining", "1 while the node drains.", g->draining);
    C("drain_clients_moved_total", "Clients sent reconnect by a drain.",
      m->drain_clients_moved);
    C("resumes_accepted_total", "Sessions restored from a resume token.",
      m->resumes_accepted);
    rc_buf_printf(b, "# HELP roomcast_resumes_refused_total Resume tokens "
                     "refused, by reason.\n# TYPE "
                     "roomcast_resumes_refused_total counter\n");
    for (int r = 0; r < RC_RESUME_REFUSAL_COUNT; r++)
        rc_buf_printf(
            b, "roomcast_resumes_refused_total{reason=\"%s\"} %" PRIu64 "\n",
            rc_resume_refusal_str((rc_resume_refusal_t)r),
            m->resumes_refused[r]);
    G("history_reads_in_flight",
      "History reads with since in flight (joins and resumes).",
      m->history_reads);
    G("history_reads_waiting",
      "History reads waiting for the node's bound (see bounds_hit_total).",
      m->history_reads_waiting);
    C("resume_takeovers_total",
      "Resumes of a session whose old connection was still open here: it "
      "was closed and its rooms and position moved to the new one.",
      m->resume_takeovers);
    C("replays_paced_total",
      "History replays queued in slices as the client's queue drained.",
      m->replays_paced);
    rc_buf_printf(b, "# HELP roomcast_bounds_hit_total Requests refused, "
                     "delayed or cut by a memory bound, by bound.\n# TYPE "
                     "roomcast_bounds_hit_total counter\n");
    for (int r = 0; r < RC_BOUND_COUNT; r++)
        rc_buf_printf(b,
                      "roomcast_bounds_hit_total{reason=\"%s\"} %" PRIu64 "\n",
                      rc_bound_str((rc_bound_t)r), m->bounds_hit[r]);
    C("connections_opened_total", "Connections upgraded.", m->conns_opened);
    C("connections_closed_total", "Connections closed.", m->conns_closed);
    C("frames_in_total", "Frames received from clients.", m->frames_in);
    C("frames_out_total", "Frames written to clients.", m->frames_out);
    C("writes_total", "Socket writes (several frames may share one).",
      m->writes);
    C("direct_writes_total",
      "Writes made at the end of a loop iteration without waiting for "
      "WRITEABLE (a subset of writes_total).",
      m->direct_writes);
    C("deliveries_total", "Room messages queued to clients.", m->deliveries);
    C("bytes_out_total", "Bytes written to clients.", m->bytes_out);
    C("publishes_total", "Publishes accepted from clients.", m->publishes);
    C("slow_consumer_closes_total", "Clients closed with 4009.",
      m->slow_consumer_closes);
    C("rate_limited_total", "Frames refused by the rate limit.",
      m->rate_limited);
    C("rate_limit_closes_total", "Clients closed with 4008.",
      m->rate_limit_closes);
    rc_buf_printf(b,
                  "# HELP roomcast_tls_reloads_total Certificate reloads "
                  "(SIGHUP), by result.\n# TYPE roomcast_tls_reloads_total "
                  "counter\nroomcast_tls_reloads_total{result=\"ok\"} %" PRIu64
                  "\nroomcast_tls_reloads_total{result=\"error\"} %" PRIu64
                  "\n",
                  m->tls_reloads, m->tls_reload_errors);
    C("bad_requests_total", "Frames answered with bad_request or bad_room.",
      m->bad_requests);
    C("oversize_closes_total", "Clients closed with 1009.", m->oversize_closes);
    C("heartbeat_closes_total", "Clients closed for silence.",
      m->heartbeat_closes);
    C("upgrades_refused_total", "Upgrades refused before the handshake.",
      m->upgrades_refused);
    C("token_expired_closes_total", "Clients closed when their token expired.",
      m->token_expired_closes);
    C("auth_timeouts_total",
      "Clients closed with 4001 for sending no auth frame within "
      "auth_timeout_ms (also counted in "
      "auth_failures_total{reason=\"missing\"}).",
      m->auth_timeouts);
    C("catchups_total",
      "Rooms caught up from history after their subscription was lost.",
      m->catchups);
    C("catchup_messages_total", "Messages read from history to catch rooms up.",
      m->catchup_messages);
    C("catchup_failures_total",
      "Catch-ups whose history read failed (the next resync retries).",
      m->catchup_failures);
    C("catchup_gaps_total",
      "Catch-ups whose room history no longer held every missed message.",
      m->catchup_gaps);
    rc_buf_printf(b, "# HELP roomcast_auth_failures_total Tokens refused, "
                     "by reason.\n# TYPE roomcast_auth_failures_total "
                     "counter\n");
    for (int r = 1; r < RC_AUTH_REASON_COUNT; r++)
        rc_buf_printf(
            b, "roomcast_auth_failures_total{reason=\"%s\"} %" PRIu64 "\n",
            rc_auth_reason_str((rc_auth_reason_t)r), m->auth_failures[r]);
    rc_buf_printf(b, "# HELP roomcast_drops_total Published messages dropped, "
                     "by reason.\n# TYPE roomcast_drops_total counter\n");
    for (int r = 0; r < RC_DROP_REASON_COUNT; r++)
        rc_buf_printf(b, "roomcast_drops_total{reason=\"%s\"} %" PRIu64 "\n",
                      rc_drop_reason_str((rc_drop_reason_t)r), m->drops[r]);
    rc_buf_printf(b, "# HELP roomcast_publish_deliver_seconds Publish to "
                     "socket write.\n# TYPE roomcast_publish_deliver_seconds "
                     "histogram\n");
    for (int i = 0; i < RC_METRICS_LAT_BUCKETS; i++) {
        cum += m->lat_buckets[i];
        if (i == RC_METRICS_LAT_BUCKETS - 1)
            rc_buf_printf(b,
                          "roomcast_publish_deliver_seconds_bucket{le=\"+Inf\"}"
                          " %" PRIu64 "\n",
                          cum);
        else
            rc_buf_printf(b,
                          "roomcast_publish_deliver_seconds_bucket{le=\"%g\"} "
                          "%" PRIu64 "\n",
                          rc_metrics_lat_bounds[i], cum);
    }
    rc_buf_printf(b, "roomcast_publish_deliver_seconds_sum %.9f\n",
                  m->lat_sum_s);
    rc_buf_printf(b, "roomcast_publish_deliver_seconds_count %" PRIu64 "\n",
                  m->lat_count);
    if (ad)
        ad->ops->metrics(ad, emit_metric, b);
#undef G
#undef C
}

void rc_metrics_render_stats(const rc_metrics_t *m,
                             const rc_metrics_gauges_t *g, rc_buf_t *b)
{
    json_t *s =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "node",
                  g->node_id, "state", g->state, "adapter", g->adapter,
                  "connections", (json_int_t)g->connections, "pending_auth",
                  (json_int_t)g->pending_auth, "rooms", (json_int_t)g->rooms,
                  "memberships", (json_int_t)g->memberships, "deliveries",
                  (json_int_t)m->deliveries, "frames_out",
                  (json_int_t)m->frames_out, "writes", (json_int_t)m->writes);
    char *txt = s ? json_dumps(s, JSON_COMPACT) : NULL;

    if (txt) {
        rc_buf_append(b, txt, strlen(txt));
        rc_buf_append(b, "\n", 1);
    }
    free(txt);
    json_decref(s);
}

/* Drain (PROTOCOL.md section 4): readiness flips, then a timer tells the
 * clients to `reconnect` in waves spread over drain_window_ms, each one
 * only after its snapshot reached the backend (so that the node it moves
 * to can resume it); the node stops when the last client is gone or at
 * drain_timeout_ms.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "gateway/node_internal.h"

/* The drain tells clients to move in waves, one every DRAIN_TICK_MS. */
#define DRAIN_TICK_MS 50

static void send_reconnect(rc_node_t *n, rc_conn_t *c, uint32_t after_ms)
{
    char resume[1024];
    json_t *f;

    rc__resume_token(n, c, resume, sizeof(resume));
    f = json_pack("{s:s, s:s, s:I, s:s}", "op", "reconnect", "reason", "drain",
                  "after_ms", (json_int_t)after_ms, "resume", resume);
    if (f) {
        rc__session_send(n, c, rc_proto_json(f));
        json_decref(f);
    }
    n->metrics.drain_clients_moved++;
    /* Queued frames go out first; the close follows them (rc__writer_close). */
    rc__writer_close(n, c, 1012);
}

/* The snapshot reached the backend: only now may the client be told to
 * move, or it could reach another node before its session does. */
static void on_snapshot_saved(void *arg, rc_err_t err)
{
    rc__session_op_t *op = arg;

    if (op->c) {
        if (err != RC_OK)
            rc_log(RC_LOG_WARN, "snapshot_failed", "session=%016" PRIx64,
                   op->c->session);
        send_reconnect(op->n, op->c, (uint32_t)op->since);
    }
    rc__session_op_destroy(op);
}

static void tell_reconnect(rc_node_t *n, rc_conn_t *c, uint32_t after_ms)
{
    rc_req_t none;
    rc__session_op_t *op;

    if (c->state == RC_CONN_PENDING_AUTH) {
        rc__timers_pending_remove(n, c);
        rc__writer_close(n, c, 1012);
        return;
    }
    memset(&none, 0, sizeof(none));
    op = rc__session_op_create(n, c, &none);
    op->since = after_ms;
    /* No deliveries from here on (the snapshot's seqs are final), but no
     * close either until the reconnect frame is queued. */
    c->moving = 1;
    if (!rc__resume_save(n, c, true, on_snapshot_saved, op)) {
        rc__session_op_destroy(op);
        send_reconnect(n, c, after_ms);
    }
}

/* Each tick tells the share of clients that the elapsed part of the drain
 * window calls for, so the surviving nodes see a steady arrival rate. */
static void on_drain_tick(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    uint64_t elapsed = uv_now(n->loop) - n->drain_started;
    uint64_t window = (uint64_t)n->cfg->drain_window_ms;
    uint64_t due, jitter;
    rc_list_t *it;

    if (n->nconns == 0 || elapsed >= (uint64_t)n->cfg->drain_timeout_ms) {
        rc_log(RC_LOG_INFO, "drain_done",
               "left=%u moved=%" PRIu64 " ms=%" PRIu64, n->nconns,
               n->metrics.drain_clients_moved, elapsed);
        uv_timer_stop(t);
        rc_node_stop(n);
        return;
    }
    due = elapsed + DRAIN_TICK_MS >= window
              ? n->drain_total
              : n->drain_total * (elapsed + DRAIN_TICK_MS) / window;
    /* after_ms spreads each wave's reconnects over its own tick. */
    jitter = DRAIN_TICK_MS;
    rc_list_foreach(it, &n->conns)
    {
        rc_conn_t *c = rc_container_of(it, rc_conn_t, in_server);
        if (n->drain_told >= due)
            break;
        if (c->state == RC_CONN_CLOSING || c->moving)
            continue;
        n->drain_told++;
        tell_reconnect(
            n, c, (uint32_t)((n->session_ctr + n->drain_told) * 7919 % jitter));
    }
}

void rc_node_drain(rc_node_t *n)
{
    if (n->draining || n->stopping)
        return;
    n->draining = 1;
    n->adapter->ops->announce(n->adapter);
    n->drain_started = uv_now(n->loop);
    n->drain_total = n->nconns;
    rc_log(RC_LOG_INFO, "drain_start",
           "connections=%u window_ms=%" PRId64 " timeout_ms=%" PRId64,
           n->nconns, n->cfg->drain_window_ms, n->cfg->drain_timeout_ms);
    uv_timer_start(&n->drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

/* The node's admin routes: what GET /healthz, /readyz, /metrics, /stats and
 * POST /drain answer. admin.c is the HTTP listener; this file decides the
 * answers from the node's state (metrics.c renders the counters).
 * SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>

#include "common/buf.h"
#include "gateway/metrics.h"
#include "gateway/node_internal.h"

/* The gauges are measured now; the queue bytes walk every connection,
 * which is fine at a scrape interval. */
static void measure(const rc_node_t *n, rc_metrics_gauges_t *g)
{
    const rc_list_t *it;

    memset(g, 0, sizeof(*g));
    g->node_id = n->cfg->node_id;
    g->state = rc__node_state(n);
    g->adapter = n->adapter->ops->name;
    g->connections = n->nconns;
    g->pending_auth = n->npending;
    g->rooms = rc_hub_room_count(n->hub);
    g->memberships = rc_hub_member_count(n->hub);
    rc_list_foreach(it, &n->conns)
    {
        g->queue_bytes +=
            rc_outq_bytes(&rc_container_of(it, rc_conn_t, in_server)->outq);
    }
    g->ready =
        !n->stopping && !n->draining && n->adapter->ops->ready(n->adapter);
    g->draining = n->draining;
}

rc_admin_policy_t rc_admin_policy_of(const rc_config_t *cfg)
{
    rc_admin_policy_t p = {
        .token = cfg->admin_token,
        .token_len = cfg->admin_token_len,
        .protect_stats = cfg->admin_token_stats,
        .max_conns = cfg->admin_max_conns,
        .timeout_ms = (uint64_t)cfg->admin_timeout_ms,
    };
    return p;
}

int rc__admin_routes_handle(void *ctx, const char *method, const char *path,
                            rc_buf_t *body, const char **ctype)
{
    rc_node_t *n = ctx;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    rc_metrics_gauges_t g;

    if (strcmp(path, "/healthz") == 0 && get) {
        rc_buf_printf(body, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") == 0 && get) {
        if (n->stopping || n->draining) {
            rc_buf_printf(body, "draining\n");
            return 503;
        }
        if (!n->adapter->ops->ready(n->adapter)) {
            rc_buf_printf(body, "backend unreachable\n");
            return 503;
        }
        rc_buf_printf(body, "ready\n");
        return 200;
    }
    if (strcmp(path, "/metrics") == 0 && get) {
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        measure(n, &g);
        rc_metrics_render(&n->metrics, &g, n->adapter, body);
        return 200;
    }
    if (strcmp(path, "/stats") == 0 && get) {
        *ctype = "application/json";
        measure(n, &g);
        rc_metrics_render_stats(&n->metrics, &g, body);
        return 200;
    }
    if (strcmp(path, "/drain") == 0) {
        if (strcmp(method, "POST") != 0) {
            rc_buf_printf(body, "use POST\n");
            return 405;
        }
        rc_node_drain(n);
        rc_buf_printf(body, "draining\n");
        return 202;
    }
    rc_buf_printf(body, "not found\n");
    return 404;
}

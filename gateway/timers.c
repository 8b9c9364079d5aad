/* The node's timers: the auth deadline of connections that must send an
 * auth frame (a FIFO: every deadline is now + auth_timeout_ms), the
 * token-expiry min-heap (one uv timer for the earliest exp), and the
 * heartbeat sweep (a slice of the connections per tick).
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "common/log.h"
#include "common/mem.h"
#include "gateway/node_internal.h"

/* The heartbeat visits 1/HB_SLICES of the connections per tick. */
#define HB_SLICES 10

static void on_exp_timer(uv_timer_t *t);
static void on_auth_timer(uv_timer_t *t);

/* ------------------------------------------------ token expiry heap */

static void heap_set(rc_node_t *n, uint32_t i, rc_conn_t *c)
{
    n->exp_heap[i] = c;
    c->exp_slot = i + 1;
}

static void heap_up(rc_node_t *n, uint32_t i)
{
    rc_conn_t *c = n->exp_heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (n->exp_heap[p]->exp_ms <= c->exp_ms)
            break;
        heap_set(n, i, n->exp_heap[p]);
        i = p;
    }
    heap_set(n, i, c);
}

static void heap_down(rc_node_t *n, uint32_t i)
{
    rc_conn_t *c = n->exp_heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = c->exp_ms;
        if (l < n->exp_len && n->exp_heap[l]->exp_ms < best)
            m = l, best = n->exp_heap[l]->exp_ms;
        if (r < n->exp_len && n->exp_heap[r]->exp_ms < best)
            m = r;
        if (m == i)
            break;
        heap_set(n, i, n->exp_heap[m]);
        i = m;
    }
    heap_set(n, i, c);
}

void rc__timers_exp_arm(rc_node_t *n)
{
    int64_t due;

    if (n->stopping)
        return;
    if (!n->exp_len) {
        uv_timer_stop(&n->exp_timer);
        return;
    }
    due = n->exp_heap[0]->exp_ms - (int64_t)uv_now(n->loop);
    uv_timer_start(&n->exp_timer, on_exp_timer, due > 0 ? (uint64_t)due : 0, 0);
}

void rc__timers_exp_remove(rc_node_t *n, rc_conn_t *c)
{
    uint32_t i;
    rc_conn_t *last;

    if (!c->exp_slot)
        return;
    i = c->exp_slot - 1;
    c->exp_slot = 0;
    last = n->exp_heap[--n->exp_len];
    if (last != c) {
        n->exp_heap[i] = last;
        last->exp_slot = i + 1;
        heap_up(n, i);
        heap_down(n, last->exp_slot - 1);
    }
}

void rc__timers_exp_set(rc_node_t *n, rc_conn_t *c, int64_t exp_unix_ms)
{
    /* The token's exp (plus leeway) moved onto the loop clock. The loop's
     * time is cached at the start of its iteration, the wall clock is
     * read now: refresh the loop's first, or a long iteration (a burst of
     * token checks) would set the deadline early by its length (seen
     * under valgrind: a close 150 ms before exp). */
    int64_t left;

    uv_update_time(n->loop);
    left = exp_unix_ms + n->cfg->jwt_leeway_ms - rc__node_wall_ms();
    rc__timers_exp_remove(n, c);
    c->exp_ms = (int64_t)uv_now(n->loop) + (left > 0 ? left : 0);
    if (n->exp_len == n->exp_cap) {
        n->exp_cap = n->exp_cap ? n->exp_cap * 2 : 256;
        n->exp_heap =
            rc_xrealloc(n->exp_heap, n->exp_cap * sizeof(*n->exp_heap));
    }
    heap_set(n, n->exp_len++, c);
    heap_up(n, n->exp_len - 1);
}

/* ---------------------------------------------------- auth deadline */

void rc__timers_pending_add(rc_node_t *n, rc_conn_t *c)
{
    c->deadline_ms = rc__node_loop_ms(n) + (uint32_t)n->cfg->auth_timeout_ms;
    rc_list_push(&n->pending, &c->in_timer);
    n->npending++;
    if (!uv_is_active((uv_handle_t *)&n->auth_timer))
        uv_timer_start(&n->auth_timer, on_auth_timer,
                       (uint64_t)n->cfg->auth_timeout_ms, 0);
}

void rc__timers_pending_remove(rc_node_t *n, rc_conn_t *c)
{
    if (!rc_list_empty(&c->in_timer)) {
        rc_list_remove(&c->in_timer);
        n->npending--;
    }
}

static void on_auth_timer(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    uint32_t now = rc__node_loop_ms(n);

    while (!rc_list_empty(&n->pending)) {
        rc_conn_t *c = rc_container_of(n->pending.next, rc_conn_t, in_timer);
        /* Loop ms wrap; a deadline is never more than 2^31 ms away. */
        int32_t left = (int32_t)(c->deadline_ms - now);
        if (left > 0) {
            uv_timer_start(t, on_auth_timer, (uint64_t)left, 0);
            return;
        }
        rc__timers_pending_remove(n, c);
        n->metrics.auth_timeouts++;
        n->metrics.auth_failures[RC_AUTH_MISSING]++;
        rc__writer_close(n, c, 4001);
    }
}

static void on_exp_timer(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    int64_t now = (int64_t)uv_now(n->loop);

    while (n->exp_len && n->exp_heap[0]->exp_ms <= now) {
        rc_conn_t *c = n->exp_heap[0];
        rc__timers_exp_remove(n, c);
        n->metrics.token_expired_closes++;
        rc__session_send_error(n, c, NULL, "token_expired", "token expired");
        rc__writer_close(n, c, 4001);
    }
    rc__timers_exp_arm(n);
}

/* Each tick visits a slice of the connections, so a heartbeat costs the
 * same every tick instead of a burst of pings every interval. */
static void on_hb_timer(uv_timer_t *t)
{
    rc_node_t *n = t->data;
    uint32_t now = rc__node_loop_ms(n), budget = n->nconns / HB_SLICES + 1;
    uint32_t dead_after = (uint32_t)(2 * n->cfg->heartbeat_ms);

    while (budget-- && n->nconns) {
        rc_conn_t *c = n->hb_cursor;
        rc_list_t *next;
        if (!c)
            c = rc_container_of(n->conns.next, rc_conn_t, in_server);
        next = c->in_server.next;
        n->hb_cursor = next == &n->conns
                           ? NULL
                           : rc_container_of(next, rc_conn_t, in_server);
        if (c->state == RC_CONN_CLOSING)
            continue;
        /* Nothing goes out before its welcome, not even a ping; it is not
         * judged silent meanwhile (its clock restarts at the welcome). */
        if (c->resuming)
            continue;
        if (now - c->last_rx_ms > dead_after) {
            n->metrics.heartbeat_closes++;
            rc_log(RC_LOG_INFO, "heartbeat_timeout", "session=%016" PRIx64,
                   c->session);
            /* A silent peer will not read a close frame. Kill it now: an
             * async kill would wait for lws to service something, which an
             * idle socket never makes it do. We are in our own timer, not
             * in a callback of this wsi, and c is not touched after. */
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
            continue;
        }
        /* Keep its snapshot current, so that a resume on another node
         * while this link still looks alive finds its rooms. */
        rc__resume_refresh(n, c);
        if (rc_hub_send(n->hub, c, n->ping) != RC_OK)
            continue;
    }
}

void rc__timers_start(rc_node_t *n)
{
    uint64_t tick = (uint64_t)n->cfg->heartbeat_ms / HB_SLICES;

    uv_timer_start(&n->hb_timer, on_hb_timer, tick, tick);
}

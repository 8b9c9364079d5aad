/* The write path, the node's hot path: how queued frames leave for the
 * sockets. Nothing else in the gateway calls lws_write on a client (ws.c
 * writes only the HTTP refusals of an upgrade).
 *
 * A frame reaches a client's queue (rc_outq_t) from rc_hub_deliver (the
 * fan-out, hub.c), a reply or the heartbeat ping (rc_hub_send). When a
 * queue goes from empty to not empty the hub calls rc__writer_wake, which
 * puts the client on the node's flush list. on_flush, a uv_check handle,
 * runs once per loop iteration after that iteration's I/O callbacks and
 * writes every listed client: one queued frame is written as is (zero
 * copy), several are copied back to back into the node's scratch buffer
 * (RC_NODE_WBUF_CAP), so everything queued for a client in one iteration
 * leaves in one lws_write(LWS_WRITE_RAW). Only what does not fit, or a
 * client whose socket is full (lws holds a partial write), that is closing
 * or whose peer sent its close, waits for SERVER_WRITEABLE
 * (rc__writer_writeable), which writes the same way and also sends our
 * close frame.
 *
 * Writing outside WRITEABLE departs from STYLE rule 6; docs/ARCHITECTURE.md
 * ("Departure from STYLE rule 6") says why, what it costs otherwise, and
 * why it is safe (see also flush_conn below).
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "gateway/node_internal.h"

/* A close that cannot be delivered (peer not reading) is forced after. */
#define CLOSE_GRACE_S 5

static void on_flush(uv_check_t *h);
static void on_flush_idle(uv_idle_t *h);

/* One lws_write carrying as many queued frames as fit (from the head
 * frame's first byte: lws keeps what the kernel did not take, so we never
 * hold a partly written frame). Returns -1 when the socket failed. */
static int write_queued(rc_node_t *n, rc_conn_t *c, struct lws *wsi)
{
    uint32_t cnt = rc_outq_count(&c->outq), k = 0;
    const unsigned char *p;
    size_t len = 0;
    uint64_t now;

    if (cnt == 1 || rc_outq_peek(&c->outq, 0)->len >= RC_NODE_WBUF_CAP) {
        /* Zero copy: the shared frame itself. */
        rc_msg_t *m = rc_outq_peek(&c->outq, 0);
        p = rc_msg_bytes(m);
        len = m->len;
        k = 1;
    } else {
        for (; k < cnt; k++) {
            rc_msg_t *m = rc_outq_peek(&c->outq, k);
            if (len + m->len > RC_NODE_WBUF_CAP)
                break;
            memcpy(n->wbuf + len, rc_msg_bytes(m), m->len);
            len += m->len;
        }
        p = n->wbuf;
    }
    /* lws keeps what the kernel did not take, asks for WRITEABLE itself
     * and sends it before anything else, so a short write needs nothing
     * from us. */
    if (lws_write(wsi, (unsigned char *)p, len, LWS_WRITE_RAW) < 0)
        return -1;
    now = uv_hrtime(); /* the clock of m->t_pub_ns */
    for (uint32_t i = 0; i < k; i++) {
        rc_msg_t *m = rc_outq_peek(&c->outq, i);
        if (m->t_pub_ns && now > m->t_pub_ns)
            rc_metrics_observe_latency(&n->metrics, now - m->t_pub_ns);
    }
    n->metrics.frames_out += k;
    n->metrics.bytes_out += len;
    n->metrics.writes++;
    rc_outq_pop(&c->outq, k);
    if (c->paced && c->state != RC_CONN_CLOSING &&
        rc_outq_bytes(&c->outq) <= n->cfg->outbound_queue_bytes / 2)
        rc__session_pump(n, c);
    return 0;
}

/* One WRITEABLE: one lws_write carrying as many queued frames as fit. */
int rc__writer_writeable(rc_node_t *n, rc_conn_t *c, struct lws *wsi)
{
    if (rc_outq_count(&c->outq) == 0) {
        if (c->state == RC_CONN_CLOSING && c->close_code && !c->close_sent) {
            /* lws 4.1 drops the socket without a close frame when
             * WRITEABLE returns -1 (and on timeouts), so send the close
             * frame here and let the peer's answer (or the timeout) end
             * the connection. */
            unsigned char cf[4] = {0x80 | RC_WS_OP_CLOSE, 2,
                                   (unsigned char)(c->close_code >> 8),
                                   (unsigned char)c->close_code};
            c->close_sent = 1;
            if (lws_write(wsi, cf, sizeof(cf), LWS_WRITE_RAW) < 0)
                return -1;
            lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_GRACE_S);
            return 0;
        }
        return 0; /* spurious WRITEABLE */
    }
    if (write_queued(n, c, wsi) < 0)
        return -1;
    if (rc_outq_count(&c->outq) ||
        (c->state == RC_CONN_CLOSING && c->close_code && !c->close_sent))
        lws_callback_on_writable(wsi);
    return 0;
}

/* The flush list: clients whose queue went from empty to not empty in
 * this loop iteration. It is written once, after the iteration's I/O
 * callbacks (uv_check), so every frame queued for a client meanwhile
 * leaves in one write, and a client whose socket has room is written
 * without the round trip through lws_callback_on_writable -> epoll_ctl ->
 * epoll_wait -> WRITEABLE -> epoll_ctl that would otherwise cost as much
 * as the send itself (the Redis beforeSleep / handleClientsWithPendingWrites
 * pattern).
 *
 * This is the one place that calls lws_write outside WRITEABLE (a
 * departure from STYLE rule 6, see docs/ARCHITECTURE.md). It is safe
 * because it writes only when lws holds no partial output for the socket
 * (lws_partial_buffered), only whole frames, and never once the client or
 * we started closing: the ordering lws protects with its one-write rule
 * (a buffered partial goes out before anything else) still holds. */
static void flush_conn(rc_node_t *n, rc_conn_t *c)
{
    struct lws *wsi = c->wsi;

    if (!wsi)
        return;
    if (c->state == RC_CONN_CLOSING || c->peer_closed ||
        lws_partial_buffered(wsi)) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (rc_outq_count(&c->outq) == 0)
        return;
    if (write_queued(n, c, wsi) < 0) {
        /* The socket is dead (lws marked it unusable); nothing up the
         * stack holds c (the flush loop reads no more of it). */
        rc_hub_drop_queue(n->hub, c);
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
        return;
    }
    n->metrics.direct_writes++;
    if (rc_outq_count(&c->outq))
        lws_callback_on_writable(wsi); /* more than one write's worth */
}

static void on_flush(uv_check_t *h)
{
    rc_node_t *n = h->data;

    /* Re-read flush_len: a flush may queue to another client. */
    for (uint32_t i = 0; i < n->flush_len; i++) {
        rc_conn_t *c = n->flush[i];
        if (!c)
            continue; /* freed after it was listed */
        c->flush_slot = 0;
        flush_conn(n, c);
    }
    n->flush_len = 0;
    uv_check_stop(&n->flush_check);
    uv_idle_stop(&n->flush_idle);
}

static void on_flush_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop from blocking in poll before on_flush */
}

/* c's queue went from empty to not empty: write it at the end of this
 * loop iteration (on_flush). */
void rc__writer_wake(void *ctx, rc_conn_t *c)
{
    rc_node_t *n = ctx;

    if (!c->wsi || c->flush_slot)
        return;
    if (n->stopping) { /* the flush handles are closing */
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (n->flush_len == n->flush_cap) {
        n->flush_cap = n->flush_cap ? n->flush_cap * 2 : 256;
        n->flush = rc_xrealloc(n->flush, n->flush_cap * sizeof(*n->flush));
    }
    n->flush[n->flush_len++] = c;
    c->flush_slot = n->flush_len;
    if (n->flush_len == 1) {
        uv_check_start(&n->flush_check, on_flush);
        /* A frame queued by a timer must not wait for poll to return. */
        uv_idle_start(&n->flush_idle, on_flush_idle);
    }
}

/* c is being freed: it stays listed (the flush loop may be past it or
 * not), as NULL, which on_flush skips. */
void rc__writer_unlist(rc_node_t *n, rc_conn_t *c)
{
    if (c->flush_slot)
        n->flush[c->flush_slot - 1] = NULL;
    c->flush_slot = 0;
}

/* Ask for a close with code once queued frames are out (STYLE rule 7: the
 * close happens in WRITEABLE, never under a caller's feet). */
void rc__writer_close(rc_node_t *n, rc_conn_t *c, uint16_t code)
{
    if (!c->wsi)
        return;
    if (c->state != RC_CONN_CLOSING || !c->close_code) {
        c->state = RC_CONN_CLOSING;
        c->close_code = code;
    }
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
    (void)n;
}

void rc__writer_slow(void *ctx, rc_conn_t *c)
{
    rc_node_t *n = ctx;

    n->metrics.slow_consumer_closes++;
    rc_log(RC_LOG_INFO, "slow_consumer", "session=%016" PRIx64, c->session);
    c->close_code = 4009;
    rc__writer_close(n, c, 4009);
    /* Its socket is not writable, so lws may not service it soon: wake lws
     * so that it arms the grace timeout set by rc__writer_close. */
    if (n->lws)
        lws_cancel_service(n->lws);
}

/* The Redis adapter: rooms across nodes through Redis pub/sub (interest
 * based: a node subscribes to a room's channel only while it has members),
 * durable publish and history through a Redis function library, reconnect
 * with catch-up, a PING liveness probe on the subscription link, durable
 * envelopes checked by MAC, the node registry and the
 * control channel. This file creates and destroys it and holds its ops
 * table; adapter/redis_internal.h says which file does what, and
 * common/keys.h (docs/REDIS.md) has the key layout.
 * SPDX-License-Identifier: MIT */
#include "adapter/redis.h"
#include "adapter/redis_internal.h"
#include "adapter/sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/keys.h"
#include "common/mem.h"

static bool r_ready(const rc_adapter_t *ad)
{
    return ((const redis_adapter_t *)ad)->state == LINK_UP;
}

static void r_metrics(const rc_adapter_t *ad, rc_metric_emit_fn emit, void *ctx)
{
    const redis_adapter_t *r = (const redis_adapter_t *)ad;

#define RM(name, kind, help, v)                                                \
    emit(ctx, kind, "redis_" name, help, (uint64_t)(v))
    RM("up", RC_METRIC_GAUGE, "1 while both Redis links are up.",
       r->state == LINK_UP);
    RM("subscribed_rooms", RC_METRIC_GAUGE,
       "Room channels this node subscribes to.", r->m_subscribed);
    RM("messages_received_total", RC_METRIC_COUNTER,
       "Room messages from Redis.", r->m_received);
    RM("durable_received_total", RC_METRIC_COUNTER,
       "Durable messages from Redis.", r->m_durable);
    RM("ephemeral_received_total", RC_METRIC_COUNTER,
       "Ephemeral messages from Redis.", r->m_ephemeral);
    RM("dropped_bad_total", RC_METRIC_COUNTER,
       "Messages from Redis dropped: data not JSON or malformed envelope.",
       r->m_bad);
    RM("dropped_too_big_total", RC_METRIC_COUNTER,
       "Messages from Redis dropped: data over max_publish.", r->m_too_big);
    RM("reconnects_total", RC_METRIC_COUNTER,
       "Times the Redis links came back up.", r->m_reconnects);
    RM("resubscribed_rooms_total", RC_METRIC_COUNTER,
       "Rooms resubscribed after a reconnect.", r->m_resubscribed);
    RM("resyncs_total", RC_METRIC_COUNTER,
       "Open rooms handed to the node to catch up after their subscription "
       "was lost and confirmed again.",
       r->m_resyncs);
    RM("probe_failures_total", RC_METRIC_COUNTER,
       "Times the pub/sub link was found silent and restarted.",
       r->m_probe_fail);
    RM("publish_errors_total", RC_METRIC_COUNTER,
       "Durable publishes that failed.", r->m_publish_err);
    RM("dropped_forged_total", RC_METRIC_COUNTER,
       "Durable envelopes from Redis dropped: no valid MAC (a raw PUBLISH).",
       r->m_forged);
    RM("dropped_bad_seq_total", RC_METRIC_COUNTER,
       "Seqs from Redis refused: negative, malformed or above 2^53-1.",
       r->m_bad_seq);
    RM("subscribe_refused_total", RC_METRIC_COUNTER,
       "Room SUBSCRIBEs Redis answered with an error (retried later).",
       r->m_sub_refused);
    RM("replication_failures_total", RC_METRIC_COUNTER,
       "Durable publishes WAIT found on too few replicas.", r->m_repl_fail);
    RM("commands_in_flight", RC_METRIC_GAUGE,
       "Commands sent on the command link and not answered.", r->inflight);
#undef RM
    if (r->cl)
        rc__redis_cl_metrics(r, emit, ctx);
}

void rc__redis_on_handle_closed(uv_handle_t *h)
{
    rc__redis_release(h->data);
}

void rc__redis_release(redis_adapter_t *r)
{
    if (--r->handles > 0)
        return;
    rc__redis_rooms_free(r);
    rc_htab_dispose(&r->rooms);
    rc__redis_cl_free(r);
    free(r->prefix);
    free(r->node_id);
    free(r->library);
    free(r->ch_ctl);
    free(r->k_envkey);
    free(r->k_node);
    free(r);
}

static void r_destroy(rc_adapter_t *ad)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;

    r->closing = 1;
    /* No callback after this returns; its memory goes with its handles. */
    rc_sentinel_destroy(r->sentinel);
    r->sentinel = NULL;
    rc__redis_registry_leave(r);
    /* Every op callback now, before destroy returns (adapter.h); replies
     * that still come find their request with nothing owed. */
    rc__redis_fail_owed(r);
    r->handles = 3;
    uv_close((uv_handle_t *)&r->tick, rc__redis_on_handle_closed);
    uv_close((uv_handle_t *)&r->flush, rc__redis_on_handle_closed);
    /* The retry timer bounds the command link's flush; its close (when the
     * link is gone) may be the last, and frees r. */
    if (!rc__redis_link_close(r))
        uv_close((uv_handle_t *)&r->retry, rc__redis_on_handle_closed);
}

static const rc_adapter_ops_t redis_ops = {
    .name = "redis",
    .room_open = rc__redis_room_open,
    .room_close = rc__redis_room_close,
    .publish = rc__redis_publish,
    .history = rc__redis_history,
    .ready = r_ready,
    .session_save = rc__redis_session_save,
    .session_take = rc__redis_session_take,
    .announce = rc__redis_announce,
    .metrics = r_metrics,
    .destroy = r_destroy,
};

/* Penvkey: the envelope key, shared by every node (docs/REDIS.md). */
static rc_err_t envkey_name(char *buf, size_t len, const char *prefix,
                            const char *unused)
{
    (void)unused;
    if (snprintf(buf, len, "%senvkey", prefix) >= (int)len)
        return RC_ELIMIT;
    return RC_OK;
}

/* One of this node's names (common/keys.h), owned; the prefix and node id
 * are checked at config load, so it always fits. */
static char *node_name(rc_err_t (*fn)(char *, size_t, const char *,
                                      const char *),
                       const char *prefix, const char *id)
{
    char buf[RC_KEYS_MAX];

    if (fn(buf, sizeof(buf), prefix, id) != RC_OK)
        return NULL;
    return rc_xstrdup(buf);
}

rc_adapter_t *rc_redis_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              const rc_adapter_config_t *cfg, char *err,
                              size_t errlen)
{
    redis_adapter_t *r;
    rc_redis_url_t url;

    if (rc_redis_url_parse(cfg->url, &url) != RC_OK) {
        snprintf(err, errlen,
                 "redis_url: expected redis://[[user]:password@]host[:port]"
                 "[/db]");
        return NULL;
    }
    if (!rc_redis_prefix_ok(cfg->prefix)) {
        snprintf(err, errlen,
                 "key_prefix: at most 64 bytes, no quotes, braces, "
                 "backslashes or control characters");
        return NULL;
    }
    r = rc_xcalloc(1, sizeof(*r));
    r->base.ops = &redis_ops;
    r->base.sink = *sink;
    r->loop = loop;
    r->url = url;
    r->link_port = url.port;
    r->prefix = rc_xstrdup(cfg->prefix);
    r->node_id = rc_xstrdup(cfg->node_id);
    r->history_size = cfg->history_size;
    r->history_ttl_ms = cfg->history_ttl_ms;
    r->wait_replicas = cfg->wait_replicas;
    r->wait_timeout_ms = cfg->wait_timeout_ms;
    r->ch_ctl = node_name(rc_keys_ctl, cfg->prefix, cfg->node_id);
    r->k_node = node_name(rc_keys_node, cfg->prefix, cfg->node_id);
    r->k_envkey = node_name(envkey_name, cfg->prefix, "");
    if (!r->ch_ctl || !r->k_envkey || !r->k_node) {
        snprintf(err, errlen, "node_id: too long for a Redis key");
        free(r->prefix);
        free(r->node_id);
        free(r->library);
        free(r->ch_ctl);
        free(r->k_envkey);
        free(r->k_node);
        free(r);
        return NULL;
    }
    r->unsub_delay = cfg->unsubscribe_delay_ms;
    r->max_publish = cfg->max_publish;
    r->backoff_ms = RC_REDIS_BACKOFF_MIN_MS;
    if (getrandom(r->key, sizeof(r->key), GRND_NONBLOCK) != sizeof(r->key)) {
        r->key[0] = (uint64_t)(uintptr_t)r;
        r->key[1] = uv_hrtime();
    }
    rc_htab_init(&r->rooms);
    rc_list_init(&r->sub_batch);
    rc_list_init(&r->unsub_batch);
    rc_list_init(&r->owed);
    uv_timer_init(loop, &r->tick);
    uv_timer_init(loop, &r->retry);
    uv_timer_init(loop, &r->flush);
    r->tick.data = r->retry.data = r->flush.data = r;
    if (rc__redis_sentinel_start(r) != RC_OK) {
        snprintf(err, errlen, "redis_url: cannot start the Sentinel finder");
        r->handles = 3;
        uv_close((uv_handle_t *)&r->tick, rc__redis_on_handle_closed);
        uv_close((uv_handle_t *)&r->retry, rc__redis_on_handle_closed);
        uv_close((uv_handle_t *)&r->flush, rc__redis_on_handle_closed);
        return NULL;
    }
    rc__redis_link_start(r);
    return &r->base;
}

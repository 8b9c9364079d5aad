/* Shared adapter helpers: the factory that picks an adapter by the URL's
 * scheme, and the one place a `msg` frame is built.
 * SPDX-License-Identifier: MIT */
#include "adapter/adapter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "adapter/local.h"
#include "adapter/redis.h"
#include "common/redis_url.h"

rc_msg_t *rc_adapter_frame_msg(const char *room, uint64_t seq, const char *data,
                               size_t len, uint64_t t_pub_ns)
{
    size_t rlen = strlen(room);
    /* {"op":"msg","room":"","seq":,"data":} is 37 bytes; seq <= 20 digits */
    size_t cap = 64 + rlen + len;
    unsigned char *p;
    rc_msg_t *m = rc_msg_alloc(cap, &p);
    int n;

    if (!m)
        return NULL;
    /* Room names are validated to a JSON-safe alphabet, and data is valid
     * JSON text: both are copied in without re-encoding. */
    if (seq)
        n = snprintf((char *)p, cap,
                     "{\"op\":\"msg\",\"room\":\"%s\",\"seq\":%" PRIu64
                     ",\"data\":",
                     room, seq);
    else
        n = snprintf((char *)p, cap,
                     "{\"op\":\"msg\",\"room\":\"%s\",\"data\":", room);
    memcpy(p + n, data, len);
    p[n + len] = '}';
    rc_msg_finish(m, RC_WS_OP_TEXT, (size_t)n + len + 1);
    /* Where the room name sits in the frame: a snapshot uses it to tell
     * which queued frames a closing client never got. */
    m->room_off = (uint16_t)(p + 20 - rc_msg_bytes(m));
    m->room_len = (uint8_t)rlen;
    m->seq = seq;
    m->t_pub_ns = t_pub_ns;
    return m;
}

rc_err_t rc_adapter_config_check(const rc_adapter_config_t *cfg, char *err,
                                 size_t errlen)
{
    rc_redis_url_t url;

    if (!cfg->url)
        return RC_OK;
    if (rc_redis_url_parse(cfg->url, &url) != RC_OK) {
        snprintf(err, errlen,
                 "redis_url: expected redis://[[user]:password@]host[:port]"
                 "[/db]");
        return RC_EINVAL;
    }
    if (!cfg->prefix || !rc_redis_prefix_ok(cfg->prefix)) {
        snprintf(err, errlen,
                 "key_prefix: at most 64 bytes, no quotes, braces, "
                 "backslashes or control characters");
        return RC_EINVAL;
    }
    return RC_OK;
}

rc_adapter_t *rc_adapter_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                                const rc_adapter_config_t *cfg, char *err,
                                size_t errlen)
{
    if (rc_adapter_config_check(cfg, err, errlen) != RC_OK)
        return NULL;
    if (!cfg->url)
        return rc_local_create(loop, sink, cfg->history_size,
                               cfg->history_ttl_ms);
    return rc_redis_create(loop, sink, cfg, err, errlen);
}

void rc_adapter_destroy(rc_adapter_t *ad)
{
    if (ad)
        ad->ops->destroy(ad);
}

/* loadtest/lt_pub.c: picks the publisher implementation named by --via;
 * the data format the roomcast publishers share.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"

#include <stdio.h>
#include <string.h>

size_t lt_pub_data_json(char *out, size_t cap, const lt_pub_msg_t *m)
{
    int n = snprintf(out, cap, "{\"t\":%llu,\"pad\":\"%.*s\"}",
                     (unsigned long long)m->t_ns, (int)m->padlen,
                     m->pad ? m->pad : "");

    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

lt_pub_t *lt_pub_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                        char *err, size_t errlen)
{
    if (strcmp(cfg->via, "ws") == 0 && cfg->proto == LT_PROTO_SOCKETIO) {
        snprintf(err, errlen, "--proto socketio publishes --via redis only");
        return NULL;
    }
    if (strcmp(cfg->via, "ws") == 0)
        return lt_pub_ws_create(cfg, on_ack, ud, err, errlen);
    if (strcmp(cfg->via, "redis") == 0)
        return lt_pub_redis_create(cfg, on_ack, ud, err, errlen);
    snprintf(err, errlen, "--via must be ws or redis, not '%s'", cfg->via);
    return NULL;
}

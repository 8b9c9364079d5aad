/* loadtest/lt_pub.c: picks the publisher implementation named by --via.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"

#include <stdio.h>
#include <string.h>

lt_pub_t *lt_pub_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                        char *err, size_t errlen)
{
    if (strcmp(cfg->via, "ws") == 0)
        return lt_pub_ws_create(cfg, on_ack, ud, err, errlen);
    if (strcmp(cfg->via, "redis") == 0)
        return lt_pub_redis_create(cfg, on_ack, ud, err, errlen);
    snprintf(err, errlen, "--via must be ws or redis, not '%s'", cfg->via);
    return NULL;
}

/* Connection state helpers that need no socket: init, dispose, rate bucket.
 * SPDX-License-Identifier: MIT */
#include "gateway/conn.h"

#include <stdlib.h>
#include <string.h>

/* Paid per client: glibc rounds a malloc up to 16 bytes after an 8-byte
 * header, so 216 is the largest size in the 224-byte chunk. */
_Static_assert(sizeof(rc_conn_t) <= 216, "rc_conn_t grew past 216 bytes");

void rc_conn_init(rc_conn_t *c)
{
    memset(c, 0, sizeof(*c));
    rc_outq_init(&c->outq);
    rc_list_init(&c->members);
    rc_list_init(&c->in_server);
    rc_list_init(&c->in_timer);
    rc_list_init(&c->ops);
}

void rc_conn_dispose(rc_conn_t *c)
{
    rc_outq_dispose(&c->outq);
    free(c->rx);
    c->rx = NULL;
    free(c->resume);
    c->resume = NULL;
    c->rx_len = 0;
}

bool rc_conn_rate_take(rc_conn_t *c, uint32_t now_ms, uint32_t rate,
                       uint32_t burst)
{
    uint64_t full = (uint64_t)burst * 1000;
    uint32_t elapsed = now_ms - c->refill_ms; /* wraps correctly */
    uint64_t t = c->tokens + (uint64_t)elapsed * rate;

    c->refill_ms = now_ms;
    c->tokens = (uint32_t)(t > full ? full : t);
    if (c->tokens < 1000)
        return false;
    c->tokens -= 1000;
    return true;
}

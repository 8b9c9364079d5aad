/* Sentinel master finder: on the loop, asks the sentinels of a
 * redis-sentinel:// URL for the address of the master, confirms it with ROLE
 * on the server itself, and follows failovers (a +switch-master
 * subscription on one sentinel, a periodic re-check, and a re-check on
 * demand). The Redis adapter connects wherever on_master points.
 *
 * Names in the URL (sentinels, or a master announced by hostname) are
 * resolved with uv_getaddrinfo off the loop; hiredis then connects by
 * numeric address. Sentinels are asked without AUTH; the URL's user and
 * password are sent to the master before ROLE.
 * SPDX-License-Identifier: MIT */
#ifndef RC_SENTINEL_H
#define RC_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"
#include "common/redis_url.h"

typedef struct rc_sentinel rc_sentinel_t; /* defined in sentinel.c */

typedef struct rc_sentinel_cbs {
    /* A master was confirmed (ROLE says master) and differs from the last
     * one reported, or follows an on_lost. ip is borrowed, valid until the
     * callback returns. */
    void (*on_master)(void *ctx, const char *ip, int port);
    /* A whole round (every sentinel asked) confirmed no master. Called once
     * per loss: again only after an on_master. */
    void (*on_lost)(void *ctx);
    void *ctx; /* borrowed, passed back as is */
} rc_sentinel_cbs_t;

typedef struct rc_sentinel_opts {
    uint32_t recheck_ms; /* between rounds while a master is known; 0: 2000 */
    uint32_t retry_ms;   /* between rounds while none is; 0: 500 */
    uint32_t timeout_ms; /* one step (resolve, connect, reply); 0: 1000 */
} rc_sentinel_opts_t;

/* Starts finding the master of url (which must be RC_REDIS_SENTINEL: else
 * NULL). url is copied; opts may be NULL (defaults); cbs is copied. The first
 * round starts on the next loop iteration: no callback runs inside create.
 * Release with rc_sentinel_destroy(). Loop thread only. */
rc_sentinel_t *rc_sentinel_create(uv_loop_t *loop, const rc_redis_url_t *url,
                                  const rc_sentinel_opts_t *opts,
                                  const rc_sentinel_cbs_t *cbs);

/* Stops everything: pending replies and timers are dropped, no callback runs
 * after it returns. The memory goes once the loop has closed the handles
 * (run the loop on). Safe from inside on_master/on_lost. NULL is a no-op;
 * s must not be used after. */
void rc_sentinel_destroy(rc_sentinel_t *s);

/* "Find the master again": call on READONLY, LOADING, or a dropped link to
 * the master. Starts a round on the next loop iteration, or right after the
 * round in flight; never calls back from inside. */
void rc_sentinel_recheck(rc_sentinel_t *s);

/* The master last reported by on_master: copies its address into ip (cap
 * bytes) and *port and returns true; false (ip "", *port 0) while none is
 * known. */
bool rc_sentinel_master(const rc_sentinel_t *s, char *ip, size_t cap,
                        int *port);

#endif /* RC_SENTINEL_H */

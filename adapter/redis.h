/* The Redis adapter: rooms across nodes through Redis pub/sub, with
 * numbered history kept by a Redis function library (adapter/roomcast.lua:
 * roomcast_publish, roomcast_history, roomcast_resume). hiredis async on
 * the node's libuv loop: one connection for subscriptions, one for commands
 * (pipelined). See docs/REDIS.md for the key layout and the failure
 * behaviour, adapter/redis_internal.h for how its files divide the work.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_REDIS_H
#define RC_ADAPTER_REDIS_H

#include <uv.h>

#include "adapter/adapter.h"

/* Returns an owned adapter (rc_adapter_destroy()) that connects in the
 * background (ready() is false until it is up), or NULL with a reason in
 * err for a bad URL, prefix or node id. cfg strings are copied. Callers go
 * through rc_adapter_create(). */
rc_adapter_t *rc_redis_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              const rc_adapter_config_t *cfg, char *err,
                              size_t errlen);

#endif /* RC_ADAPTER_REDIS_H */

/* The Redis adapter: rooms across nodes through Redis pub/sub, with
 * numbered history kept by a Redis function library (roomcast_publish,
 * roomcast_history). hiredis async on the node's libuv loop: one
 * connection for subscriptions, one for commands (pipelined).
 * See docs/REDIS.md for the key layout and the failure behaviour.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_REDIS_H
#define RC_ADAPTER_REDIS_H

#include <stdint.h>
#include <uv.h>

#include "adapter/adapter.h"
#include "common/redis_url.h"

/* Returns an owned adapter (rc_adapter_destroy()) that connects in the
 * background (ready() is false until it is up), or NULL with a reason in
 * err for a bad URL or prefix. cfg strings are copied. Callers go through
 * rc_adapter_create(). */
rc_adapter_t *rc_redis_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              const rc_adapter_config_t *cfg, char *err,
                              size_t errlen);

/* The function library text for prefix/sizes (owned, free()); exposed for
 * the CLI and tests. NULL when prefix holds characters that are not
 * allowed in it. */
char *rc_redis_library(const char *prefix, uint32_t history_size,
                       int64_t history_ttl_ms, uint32_t max_publish);

#endif /* RC_ADAPTER_REDIS_H */

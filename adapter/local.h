/* The `local` adapter: one node, no backend. Seqs and a bounded history per
 * room live in this process (history_size messages, history_ttl_ms).
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_LOCAL_H
#define RC_ADAPTER_LOCAL_H

#include <uv.h>

#include "adapter/adapter.h"

/* Returns an owned adapter (rc_adapter_destroy()). loop is borrowed, for
 * the clock. */
rc_adapter_t *rc_local_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              uint32_t history_size, int64_t history_ttl_ms);

#endif /* RC_ADAPTER_LOCAL_H */

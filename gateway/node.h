/* A roomcast node: the client listener (lws on the node's libuv loop), the
 * sessions, the hub, the adapter and the admin listener, wired together.
 * main.c owns the loop and the node; everything here runs on that loop.
 * SPDX-License-Identifier: MIT */
#ifndef RC_NODE_H
#define RC_NODE_H

#include <stddef.h>
#include <uv.h>

#include "common/err.h"
#include "gateway/config.h"

typedef struct rc_node rc_node_t;

/* Builds and starts listening. cfg is borrowed and must outlive the node.
 * Returns NULL with a one-line reason in err. */
rc_node_t *rc_node_create(uv_loop_t *loop, const rc_config_t *cfg, char *err,
                          size_t errlen);

/* Drain (PROTOCOL.md section 4): readyz turns 503, new upgrades get 503,
 * clients get `reconnect` in waves over drain_window_ms and close 1012
 * once their queues are flushed; the node stops when the last one is gone
 * or at drain_timeout_ms. Safe to call twice. */
void rc_node_drain(rc_node_t *node);

/* Begin a clean stop: stop taking clients, close them (1001), close every
 * listener and timer. The loop returns once all of it is closed. Safe to
 * call twice. */
void rc_node_stop(rc_node_t *node);

/* After uv_run() returned: release what is left. Run the loop once more
 * afterwards (handles closed here). NULL is a no-op. */
void rc_node_destroy(rc_node_t *node);

#endif /* RC_NODE_H */

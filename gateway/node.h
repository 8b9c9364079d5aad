/* A roomcast node: the client listener (lws on the node's libuv loop), the
 * sessions, the hub, the adapter and the admin listener, wired together.
 * main.c owns the loop and the node; everything here runs on that loop.
 * SPDX-License-Identifier: MIT */
#ifndef RC_NODE_H
#define RC_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "gateway/config.h"

typedef struct rc_node rc_node_t;

/* How a node runs as one worker process of several (gateway/worker.c,
 * docs/WORKERS.md). Every member is optional (zero: as a whole node). */
typedef struct rc_node_role {
    /* Its id on Redis (control and probe channels, registry key); borrowed,
     * must outlive the node. NULL: cfg->node_id. */
    const char *adapter_id;
    bool share_port; /* SO_REUSEPORT: several workers listen on one port */
    bool no_admin;   /* the supervisor serves admin_listen */
    /* A command arrived on the node's control channel ("drain"); NULL: the
     * node handles it itself. */
    void (*control)(void *ctx, const char *cmd);
    /* The registry entry instead of the node's own (0: none this time). */
    size_t (*node_info)(void *ctx, char *buf, size_t len);
    void *ctx;
} rc_node_role_t;

/* Builds and starts listening. cfg is borrowed and must outlive the node.
 * Returns NULL with a one-line reason in err. */
rc_node_t *rc_node_create(uv_loop_t *loop, const rc_config_t *cfg, char *err,
                          size_t errlen);
/* The same, as a worker: role is copied (its pointers are borrowed). */
rc_node_t *rc_node_create_role(uv_loop_t *loop, const rc_config_t *cfg,
                               const rc_node_role_t *role, char *err,
                               size_t errlen);

/* Answers one admin request (GET /healthz, /readyz, /metrics, /stats,
 * POST /drain) as the admin listener would: fills body (and *ctype, a
 * static string), returns the HTTP status. A node that stopped answers
 * 503. */
int rc_node_admin(rc_node_t *node, const char *method, const char *path,
                  rc_buf_t *body, const char **ctype);

/* Write the registry entry now (its contents changed). */
void rc_node_announce(rc_node_t *node);

/* Drain (PROTOCOL.md section 4): readyz turns 503, new upgrades get 503,
 * clients get `reconnect` in waves over drain_window_ms and close 1012
 * once their queues are flushed; the node stops when the last one is gone
 * or at drain_timeout_ms. Safe to call twice. */
void rc_node_drain(rc_node_t *node);
/* SIGHUP: load tls_cert and tls_key again for new handshakes, after
 * checking that they belong together; a bad pair is logged and the old
 * one stays (roomcast_tls_reloads_total{result}). Without TLS: a log
 * line, nothing else. Open connections are never touched. */
void rc_node_tls_reload(rc_node_t *node);

/* Begin a clean stop: stop taking clients, close them (1001), close every
 * listener and timer. The loop returns once all of it is closed. Safe to
 * call twice. */
void rc_node_stop(rc_node_t *node);

/* After uv_run() returned: release what is left. Run the loop once more
 * afterwards (handles closed here). NULL is a no-op. */
void rc_node_destroy(rc_node_t *node);

#endif /* RC_NODE_H */

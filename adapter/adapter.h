/* How room messages reach this node and others: the adapter interface.
 *
 * The node talks to one adapter through rc_adapter_ops_t; the adapter hands
 * messages back through rc_adapter_sink_t. The `local` adapter (single node,
 * in-process) and the Redis adapter implement the same ops, so the fan-out
 * code never knows which one runs.
 *
 * Callbacks given to an op are called exactly once, possibly before the op
 * returns (local), unless the op itself returns an error (then never).
 * Loop-only.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_H
#define RC_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"
#include <uv.h>

typedef struct rc_adapter rc_adapter_t;

/* What an adapter reports about itself: one sample per call, rendered by the
 * node (an adapter never writes an exposition format). name is the metric's
 * name after "roomcast_" (e.g. "redis_up"); name and help are borrowed for
 * the call. */
typedef enum rc_metric_kind {
    RC_METRIC_COUNTER = 0,
    RC_METRIC_GAUGE,
} rc_metric_kind_t;

typedef void (*rc_metric_emit_fn)(void *ctx, rc_metric_kind_t kind,
                                  const char *name, const char *help,
                                  uint64_t value);

/* What the node gives the adapter. */
typedef struct rc_adapter_sink {
    /* A message for the room opened with token (room_open): m is a framed
     * `msg` (borrowed; take a ref to keep it). Called for local and remote
     * publishes alike, never for a room that is not open: the adapter's own
     * room lookup is the only one on the path from the backend to a socket. */
    void (*deliver)(void *ctx, void *token, rc_msg_t *m);
    /* The room opened with token may have missed messages: its
     * subscription was lost (the backend went away, failed over, or moved
     * the room) and is confirmed again. Called before any live message for
     * the room that follows the new confirmation. The node catches the
     * room's members up from history (ops->history after each member's
     * last seq), holding live frames meanwhile: seq dedupe and holding
     * live frames live in the node (gateway/catchup.c, gateway/hub.c), and
     * an adapter keeps neither. */
    void (*resync)(void *ctx, void *token);
    /* The backend became reachable (up) or not. */
    void (*state)(void *ctx, bool up);
    /* A control command for this node arrived ("drain"). */
    void (*control)(void *ctx, const char *cmd);
    /* This node's registry entry: one JSON object into buf (NUL-terminated),
     * returns its length (0: nothing to announce). */
    size_t (*node_info)(void *ctx, char *buf, size_t len);
    void *ctx;
} rc_adapter_sink_t;

typedef void (*rc_adapter_publish_cb)(void *arg, rc_err_t err, uint64_t seq);

/* History after a join with `since`: msgs[0..n) are framed `msg` frames with
 * seq > since in order (borrowed for the call); latest is the room's seq;
 * recovered is false when some message after since is gone. */
typedef void (*rc_adapter_history_cb)(void *arg, rc_err_t err, uint64_t latest,
                                      bool recovered, rc_msg_t *const *msgs,
                                      size_t n);

/* A session snapshot taken for resume: json is the snapshot (borrowed for
 * the call), or NULL when there was none; used is true when the token had
 * been used already (then json is NULL). */
typedef void (*rc_adapter_session_cb)(void *arg, rc_err_t err, bool used,
                                      const char *json, size_t len);

typedef void (*rc_adapter_done_cb)(void *arg, rc_err_t err);

typedef struct rc_adapter_ops {
    const char *name;
    /* The node has its first local member in room: token is the node's
     * handle for it, passed back by deliver; borrowed, valid until
     * room_close. room_close: no more members; the adapter forgets token
     * and never delivers for it again. */
    void (*room_open)(rc_adapter_t *ad, const char *room, void *token);
    void (*room_close)(rc_adapter_t *ad, const char *room);
    /* Durable publish of data (len bytes of valid JSON, borrowed). */
    RC_MUST_CHECK rc_err_t (*publish)(rc_adapter_t *ad, const char *room,
                                      const char *data, size_t len,
                                      rc_adapter_publish_cb cb, void *arg);
    /* Latest seq and, when has_since, the messages after since. */
    RC_MUST_CHECK rc_err_t (*history)(rc_adapter_t *ad, const char *room,
                                      bool has_since, uint64_t since,
                                      rc_adapter_history_cb cb, void *arg);
    /* True while the backend can take publishes and deliver. */
    bool (*ready)(const rc_adapter_t *ad);
    /* Keep a session snapshot (json, borrowed) for ttl_ms, shared by every
     * node. cb (may be NULL) is called once the backend has it, or failed;
     * it is called even when the request could not be sent. */
    void (*session_save)(rc_adapter_t *ad, const char *session,
                         const char *json, size_t len, int64_t ttl_ms,
                         rc_adapter_done_cb cb, void *arg);
    /* Claim a session's resume once (atomically, across nodes) and take
     * its snapshot. */
    RC_MUST_CHECK rc_err_t (*session_take)(rc_adapter_t *ad,
                                           const char *session, int64_t ttl_ms,
                                           rc_adapter_session_cb cb, void *arg);
    /* Publish this node's registry entry now (state changed). */
    void (*announce)(rc_adapter_t *ad);
    /* Report every metric of the adapter, one emit() call each. */
    void (*metrics)(const rc_adapter_t *ad, rc_metric_emit_fn emit, void *ctx);
    void (*destroy)(rc_adapter_t *ad);
} rc_adapter_ops_t;

/* Every adapter struct starts with this. */
struct rc_adapter {
    const rc_adapter_ops_t *ops;
    rc_adapter_sink_t sink;
};

/* Build the `msg` frame for room/seq/data (data: valid JSON text, borrowed).
 * seq 0 means ephemeral (no seq field). Returns an owned ref or NULL on
 * allocation failure. Shared by every adapter so a message is framed once
 * per node, whoever published it. */
rc_msg_t *rc_adapter_frame_msg(const char *room, uint64_t seq, const char *data,
                               size_t len, uint64_t t_pub_ns);

/* What every adapter may need; strings are borrowed for rc_adapter_create()
 * (adapters copy what they keep). */
typedef struct rc_adapter_config {
    const char *url;     /* NULL: the in-process `local` adapter */
    const char *prefix;  /* key and channel prefix ("roomcast:") */
    const char *node_id; /* for the registry and the control channel */
    uint32_t history_size;
    int64_t history_ttl_ms;
    uint32_t max_publish;
    int64_t unsubscribe_delay_ms; /* absorb join/leave churn */
} rc_adapter_config_t;

/* The factory: picks the adapter by the URL's scheme (none: `local`;
 * redis://: Redis). Returns an owned adapter (rc_adapter_destroy()), or NULL
 * with a one-line reason in err. sink is copied; loop is borrowed and must
 * outlive the adapter. */
rc_adapter_t *rc_adapter_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                                const rc_adapter_config_t *cfg, char *err,
                                size_t errlen);

/* Checks a config without building anything (for config validation at
 * start): RC_OK, or RC_EINVAL with a reason in err naming the key. */
RC_MUST_CHECK rc_err_t rc_adapter_config_check(const rc_adapter_config_t *cfg,
                                               char *err, size_t errlen);

void rc_adapter_destroy(rc_adapter_t *ad); /* NULL is a no-op */

#endif /* RC_ADAPTER_H */

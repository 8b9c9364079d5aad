/* The node's insides, shared by the files of gateway/ that make it up
 * (node.c lifecycle, ws.c the lws callback, writer.c the write path,
 * session.c requests, resume.c snapshots and resume, timers.c, drain.c,
 * admin_routes.c). Nothing outside gateway/ includes it; helpers shared
 * between those files are rc__<file>_*, everything else stays static.
 * Everything here runs on the node's loop.
 * SPDX-License-Identifier: MIT */
#ifndef RC_NODE_INTERNAL_H
#define RC_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "adapter/adapter.h"
#include "auth/auth.h"
#include "common/list.h"
#include "common/msg.h"
#include "gateway/admin.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/hub.h"
#include "gateway/metrics.h"
#include "gateway/node.h"

struct lws;
struct lws_context;

#define SUBPROTOCOL "roomcast.v1"
/* lws reads ws payload into a per-connection buffer of this size; larger
 * frames arrive in several RECEIVE calls and are reassembled here. Small,
 * because it is paid by every idle client. */
#define RX_CHUNK 128
/* One write coalesces queued frames up to this many bytes. */
#define WBUF_CAP (64 * 1024)
/* A close that cannot be delivered (peer not reading) is forced after. */
#define CLOSE_GRACE_S 5
#define HB_SLICES 10
/* The drain tells clients to move in waves, one every DRAIN_TICK_MS. */
#define DRAIN_TICK_MS 50
/* uv handles the node owns: five timers, the flush check and its idle. */
#define NODE_HANDLES 7

struct rc_node {
    uv_loop_t *loop;
    const rc_config_t *cfg;
    rc_auth_t *auth; /* NULL in dev_no_auth mode */
    struct lws_context *lws;
    rc_hub_t *hub;
    rc_adapter_t *adapter;
    rc_admin_t *admin;
    rc_metrics_t metrics;

    rc_list_t conns; /* rc_conn.in_server */
    uint32_t nconns;
    rc_conn_t *hb_cursor; /* next conn the heartbeat sweep visits */
    rc_list_t pending;    /* rc_conn.in_timer, by auth deadline */
    uint32_t npending;
    rc_conn_t **exp_heap; /* min-heap on exp_ms */
    uint32_t exp_len, exp_cap;

    uv_timer_t hb_timer, auth_timer, exp_timer, drain_timer, reap_timer;
    uint64_t stop_started;
    int draining;
    uint64_t drain_started; /* loop ms */
    uint32_t drain_total;   /* clients when the drain began */
    uint32_t drain_told;    /* clients sent `reconnect` so far */
    rc_msg_t *ping;         /* shared ping frame */
    unsigned char *wbuf;
    rc_conn_t **flush; /* see on_flush; NULL where a listed conn was freed */
    uint32_t flush_len, flush_cap;
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    uint64_t session_seed, session_ctr;
    unsigned char resume_key[32];
    size_t resume_key_len;
    int stopping;
    int handles_open;
};

/* admin_routes.c: the rc_admin_handler of the node's admin listener; ctx
 * is the node. */
int rc__admin_routes_handle(void *ctx, const char *method, const char *path,
                            rc_buf_t *body, const char **ctype);

#endif /* RC_NODE_INTERNAL_H */

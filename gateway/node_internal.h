/* The node's insides, shared by the files of gateway/ that make it up,
 * one concern each:
 *   node.c          lifecycle (create, stop, destroy), adapter sink glue
 *   ws.c            the lws callback: upgrade and refusals, open, free
 *   writer.c        the write path (flush list, WRITEABLE, close frame)
 *   session.c       frames in: auth frame, rate limit, the ops table
 *   resume.c        welcome, snapshots, resume tokens and resumes
 *   timers.c        auth deadline, token-expiry heap, heartbeat
 *   drain.c         drain waves and rc_node_drain
 *   admin_routes.c  the admin endpoints (rendering is metrics.c)
 * Nothing outside gateway/ includes it. Helpers shared between those files
 * are rc__<file>_* and declared here; everything else stays static.
 * Everything here runs on the node's loop.
 * SPDX-License-Identifier: MIT */
#ifndef RC_NODE_INTERNAL_H
#define RC_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>
#include <uv.h>

#include "adapter/adapter.h"
#include "auth/auth.h"
#include "common/buf.h"
#include "common/htab.h"
#include "common/list.h"
#include "common/msg.h"
#include "gateway/admin.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/hub.h"
#include "gateway/metrics.h"
#include "gateway/node.h"
#include "gateway/proto.h"
#include "gateway/srclimit.h"

/* The one WebSocket subprotocol of the client port (PROTOCOL.md). */
#define RC_NODE_SUBPROTOCOL "roomcast.v1"
/* One write coalesces queued frames up to this many bytes: the size of
 * the node's scratch buffer (writer.c) and the protocol's tx_packet_size. */
#define RC_NODE_WBUF_CAP (64 * 1024)

struct rc_node {
    uv_loop_t *loop;        /* borrowed from main.c */
    const rc_config_t *cfg; /* borrowed, outlives the node */
    rc_auth_t *auth;        /* NULL in dev_no_auth mode */
    struct lws_context *lws;
    rc_hub_t *hub;
    rc_adapter_t *adapter; /* NULL once the node stopped (on_reap) */
    rc_admin_t *admin;     /* NULL in a worker (role.no_admin) */
    rc_node_role_t role;   /* zero for a whole node */
    rc_metrics_t metrics;

    /* ws.c */
    struct lws_token_limits token_limits; /* rc__ws_token_limits */
    rc_srclimit_t srclimit; /* max_pending_per_source, at accept */
    rc_list_t conns;        /* rc_conn.in_server: every established conn */
    uint32_t nconns;
    uint64_t session_seed, session_ctr; /* session ids */

    /* timers.c */
    rc_conn_t *hb_cursor; /* next conn the heartbeat sweep visits */
    rc_list_t pending;    /* rc_conn.in_timer, by auth deadline */
    uint32_t npending;
    rc_conn_t **exp_heap; /* min-heap on exp_ms */
    uint32_t exp_len, exp_cap;
    rc_msg_t *ping; /* shared ping frame */

    /* writer.c */
    unsigned char *wbuf; /* RC_NODE_WBUF_CAP bytes of scratch */
    rc_conn_t **flush;   /* see on_flush; NULL where a listed conn was freed */
    uint32_t flush_len, flush_cap;
    uv_check_t flush_check;
    uv_idle_t flush_idle;

    /* session.c: history reads with since in flight (joins, resumes) are
     * metrics.history_reads; those waiting for room are here */
    rc_list_t read_waiters; /* rc__session_op.in_wait; lazily initialized */
    int read_waking;

    /* resume.c */
    rc_htab_t sessions; /* session_entry by session id, authenticated
                           conns; buckets allocated while non-empty */
    unsigned char resume_key[32];
    size_t resume_key_len;

    /* drain.c */
    int draining;
    uint64_t drain_started; /* loop ms */
    uint32_t drain_total;   /* clients when the drain began */
    uint32_t drain_told;    /* clients sent `reconnect` so far */

    /* TLS: the listener's SSL_CTX (lws owns it; ws.c is handed it when
     * lws builds the vhost), reloaded on SIGHUP (rc_node_tls_reload) */
    void *ssl_ctx;

    /* listen.c (role.share_port only) */
    struct lws_vhost *vhost;
    uv_poll_t listen_poll;
    int listen_fd, listen_open;

    /* node.c */
    uv_timer_t hb_timer, auth_timer, exp_timer, drain_timer, reap_timer;
    uint64_t stop_started; /* loop ms */
    int stopping;
    int handles_open;
};

static inline uint32_t rc__node_loop_ms(const rc_node_t *n)
{
    return (uint32_t)uv_now(n->loop);
}

/* A request waiting for the adapter (history or publish). The adapter may
 * answer before the call returns (local) or much later (Redis); the client
 * may be gone by then, so the op is linked on its conn and cut loose by
 * conn_free (c = NULL) or by leaving the room (member = NULL). */
typedef struct rc__session_op {
    rc_list_t in_conn;
    rc_list_t in_wait; /* n->read_waiters while its read waits for room */
    rc_node_t *n;
    rc_conn_t *c;
    rc_member_t *member;
    bool has_id, has_since;
    int64_t id;
    uint64_t since;
    struct resume_ctx *parent; /* resume.c: set for the rooms of a resume */
    uint32_t index;            /* resume.c: the room's index in parent */
    /* A paced replay (rc__session_replay): the history not queued yet,
     * owned refs [ireplay, nreplay), queued as the client's queue drains
     * (rc__session_pump). NULL for every other op. */
    rc_msg_t **replay;
    uint32_t ireplay, nreplay;
    bool reading; /* holds one of the node's history reads (session.c) */
    char room[RC_ROOM_MAX + 1];
} rc__session_op_t;

/* node.c */
/* Wall-clock time (Unix ms), for what is compared with wall-clock times
 * from elsewhere: JWT exp, resume token expiry, the registry's ts. Every
 * duration on the loop uses uv_now() or uv_hrtime() instead. */
int64_t rc__node_wall_ms(void);
/* "serving", "draining" or "stopping" (static text). */
const char *rc__node_state(const rc_node_t *n);

/* listen.c: a worker's SO_REUSEPORT listener; each accepted socket goes
 * to n->vhost. */
RC_MUST_CHECK rc_err_t rc__listen_start(rc_node_t *n, char *err, size_t errlen);
void rc__listen_stop(rc_node_t *n);

/* ws.c: the header value limits lws applies (info.token_limits). */
void rc__ws_token_limits(struct lws_token_limits *tl);
/* A socket closed at accept: its source holds max_pending_per_source. */
void rc__ws_refused_at_accept(rc_node_t *n);
/* ws.c: the lws protocol callback. */
int rc__ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len);

/* writer.c: the write path. */
/* Hub ops: c's queue went from empty to not empty / past its bound. */
void rc__writer_wake(void *ctx, rc_conn_t *c);
void rc__writer_slow(void *ctx, rc_conn_t *c);
/* Ask for a close with code once queued frames are out: the close frame
 * is written by the next WRITEABLE, never under a caller's feet. */
void rc__writer_close(rc_node_t *n, rc_conn_t *c, uint16_t code);
/* c is being freed: take it off the flush list. */
void rc__writer_unlist(rc_node_t *n, rc_conn_t *c);
/* SERVER_WRITEABLE. Returns -1 to have lws close the connection. */
int rc__writer_writeable(rc_node_t *n, rc_conn_t *c, struct lws *wsi);

/* catchup.c: a room's members caught up after its subscription was lost
 * (the adapter sink's resync), and cut loose when the room closes. */
void rc__catchup_resync(void *ctx, void *token);
void rc__catchup_room_closed(rc_room_t *room);

/* client_js.c: GET /roomcast.js on the client port. While a response is
 * being written, the wsi's opaque pointer holds its position (tagged, odd):
 * ws.c routes such a wsi here and never takes it for an rc_conn_t. */
bool rc__client_js_is_state(const void *opaque);
int rc__client_js_http(struct lws *wsi);
int rc__client_js_writeable(struct lws *wsi);

/* session.c: authentication and requests. */
/* Queue an owned frame (NULL: allocation failed, nothing sent) to c;
 * drops the ref. */
void rc__session_send(rc_node_t *n, rc_conn_t *c, rc_msg_t *m);
/* Queue an error reply; req may be NULL (no id). */
void rc__session_send_error(rc_node_t *n, rc_conn_t *c, const rc_req_t *req,
                            const char *code, const char *message);
/* c authenticated (at upgrade or by its first frame): arm its token
 * expiry and start its session (welcome, resume). */
void rc__session_open(rc_node_t *n, rc_conn_t *c);
void rc__session_count_auth_failure(rc_node_t *n, rc_auth_reason_t r);
bool rc__session_may_join(const rc_node_t *n, const rc_conn_t *c,
                          const char *room);
/* Returns an op linked on c->ops (freed by rc__session_op_destroy). */
rc__session_op_t *rc__session_op_create(rc_node_t *n, rc_conn_t *c,
                                        const rc_req_t *req);
void rc__session_op_destroy(rc__session_op_t *op);
/* History reads with since are bounded per node (their worst case,
 * history_size x max_publish each, within RC_SESSION_READ_BYTES) and per
 * connection (RC_SESSION_CONN_READS, joins): a read that does not fit
 * waits (rc__session_read_wait) until one ends (rc__session_read_end). */
bool rc__session_read_begin(rc_node_t *n);
void rc__session_read_end(rc_node_t *n);
void rc__session_read_wait(rc_node_t *n, rc__session_op_t *op);
/* Hub op: a member with a pending op is leaving. */
void rc__session_cancel(void *ctx, rc_member_t *m);
/* Queue a member's history after since, then what was held while it
 * synced, and make it live. msgs are borrowed. A history larger than half
 * the client's queue bound is paced: the rest is kept (refs) on an op
 * pending on the member, which stays syncing, and is queued slice by
 * slice as the queue drains (rc__session_pump), so a client that missed
 * more than outbound_queue_bytes can still catch up. */
void rc__session_replay(rc_node_t *n, rc_member_t *mb, uint64_t since,
                        rc_msg_t *const *msgs, size_t nmsgs);
/* c's queue drained below half its bound and c->paced: queue the next
 * slice of its paced replays (writer.c, after a write). */
void rc__session_pump(rc_node_t *n, rc_conn_t *c);
/* Handle one whole request frame of an authenticated client (buf is
 * borrowed for the call; binary frames are refused). */
void rc__session_handle(rc_node_t *n, rc_conn_t *c, const char *buf, size_t len,
                        bool binary);
/* A frame held while c's resume was in flight, after the welcome: through
 * the rate limit (a refusal answers it; a flood closes c, 4008), then
 * handled. */
void rc__session_handle_held(rc_node_t *n, rc_conn_t *c, const char *buf,
                             size_t len, bool binary);
/* RECEIVE: gather, rate-limit and handle a message. Returns -1 to close. */
int rc__session_receive(rc_node_t *n, rc_conn_t *c, struct lws *wsi,
                        const char *in, size_t len);

/* resume.c: snapshots and resume tokens. */
/* A sealed resume token for c's session into out ("" when it cannot be
 * made). */
void rc__resume_token(rc_node_t *n, rc_conn_t *c, char *out, size_t len);
/* Send the welcome, after restoring the session named by c's resume token
 * when it offered a valid one. */
void rc__resume_start(rc_node_t *n, rc_conn_t *c);
/* The index of authenticated conns by session id (a resume of a session
 * whose old connection is still open here takes it over). */
void rc__resume_index_add(rc_node_t *n, rc_conn_t *c);
void rc__resume_index_remove(rc_node_t *n, rc_conn_t *c);
/* Store c's snapshot again when its rooms or positions changed since the
 * last time (the heartbeat sweep, joins and leaves): a client that comes
 * back on another node while this connection still looks alive resumes
 * from it (at worst one heartbeat behind: the replay then repeats what it
 * had, which clients drop by seq). Not the final snapshot (c->saved). */
void rc__resume_refresh(rc_node_t *n, rc_conn_t *c);
/* A resume waiting for the node's read bound may go on (session.c). */
void rc__resume_wake(rc__session_op_t *op);
/* A stored session snapshot {"sub": S, "rooms": [[room, since], ...]}
 * (json: len bytes, from the backend): its parsed root (owned:
 * json_decref) with *rooms its array, or NULL when it is not one or is
 * another sub's. Pure: fuzzed by tests/fuzz/fuzz_redis.c. */
json_t *rc__resume_snapshot_rooms(const char *json, size_t len, const char *sub,
                                  json_t **rooms);
/* Entry i of rooms: true with a valid room name (borrowed from rooms) and
 * a since in [0, 2^53-1]; false for anything else (skipped). */
bool rc__resume_snapshot_room(const json_t *rooms, size_t i, const char **room,
                              uint64_t *since);
/* A frame c sent while its resume is in flight (c->resuming): kept, to be
 * handled after the welcome. Returns -1 when past the bound (then close). */
int rc__resume_hold(rc_node_t *n, rc_conn_t *c, const char *buf, size_t len,
                    bool binary);
/* Store c's snapshot. will_flush: its queue will still be written (drain),
 * else what is queued is lost (the client is gone). cb (may be NULL) runs
 * once the backend has it; returns false (and never calls cb) when there
 * is nothing to store. */
bool rc__resume_save(rc_node_t *n, rc_conn_t *c, bool will_flush,
                     rc_adapter_done_cb cb, void *arg);

/* timers.c: auth deadline, token expiry, heartbeat. */
void rc__timers_exp_set(rc_node_t *n, rc_conn_t *c, int64_t exp_unix_ms);
void rc__timers_exp_remove(rc_node_t *n, rc_conn_t *c);
void rc__timers_exp_arm(rc_node_t *n);
/* c waits for its auth frame until now + auth_timeout_ms (then 4001). */
void rc__timers_pending_add(rc_node_t *n, rc_conn_t *c);
void rc__timers_pending_remove(rc_node_t *n, rc_conn_t *c);
/* Start the heartbeat (the timers were initialized by rc_node_create). */
void rc__timers_start(rc_node_t *n);

/* admin_routes.c: the rc_admin_handler of the node's admin listener; ctx
 * is the node. */
int rc__admin_routes_handle(void *ctx, const char *method, const char *path,
                            rc_buf_t *body, const char **ctype);

#endif /* RC_NODE_INTERNAL_H */

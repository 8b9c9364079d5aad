/* Sessions and requests: the frames a client sends, from RECEIVE on.
 * A message split over reads is gathered (bounded by max_frame), takes a
 * rate-limit token, authenticates the connection when it is the first
 * frame, else is parsed and handed to its op's handler (the ops table
 * below). Requests that wait for the adapter (join's history, publish)
 * are rc__session_op_t's, cut loose when the client or the member goes.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/mem.h"
#include "gateway/node_internal.h"

/* The largest first frame of a connection waiting for its auth frame: a
 * token of RC_AUTH_MAX_TOKEN, a resume token (< 1024) and the JSON around
 * them. */
#define RC_SESSION_FIRST_FRAME_MAX (RC_AUTH_MAX_TOKEN + 2048)

/* Queue an owned frame to one client (drops the ref). */
void rc__session_send(rc_node_t *n, rc_conn_t *c, rc_msg_t *m)
{
    if (!m)
        return; /* allocation failed: the reply is lost, the client lives */
    if (rc_hub_send(n->hub, c, m) != RC_OK)
        rc_log(RC_LOG_DEBUG, "reply_dropped", "session=%016" PRIx64,
               c->session);
    rc_msg_unref(m);
}

void rc__session_send_error(rc_node_t *n, rc_conn_t *c, const rc_req_t *req,
                            const char *code, const char *message)
{
    rc__session_send(
        n, c,
        rc_proto_error(req && req->has_id, req ? req->id : 0, code, message));
}

/* The connection authenticated (at upgrade or by its first frame). */
void rc__session_open(rc_node_t *n, rc_conn_t *c)
{
    c->state = RC_CONN_OPEN;
    if (c->id) {
        rc__timers_exp_set(n, c, rc_identity_exp_ms(c->id));
        rc__resume_index_add(n, c);
    }
    rc__timers_exp_arm(n);
    rc__resume_start(n, c);
}

void rc__session_count_auth_failure(rc_node_t *n, rc_auth_reason_t r)
{
    if (r > RC_AUTH_OK && r < RC_AUTH_REASON_COUNT)
        n->metrics.auth_failures[r]++;
}

bool rc__session_may_join(const rc_node_t *n, const rc_conn_t *c, const char *r)
{
    return c->id ? rc_identity_may_join(c->id, r) : n->cfg->dev_no_auth;
}

static bool may_publish(const rc_node_t *n, const rc_conn_t *c, const char *r)
{
    return c->id ? rc_identity_may_publish(c->id, r) : n->cfg->dev_no_auth;
}

rc__session_op_t *rc__session_op_create(rc_node_t *n, rc_conn_t *c,
                                        const rc_req_t *req)
{
    rc__session_op_t *op = rc_xmalloc(sizeof(*op));

    op->n = n;
    op->c = c;
    op->member = NULL;
    op->has_id = req->has_id;
    op->id = req->id;
    op->has_since = req->has_since;
    op->since = req->since;
    op->parent = NULL;
    op->index = 0;
    op->replay = NULL;
    op->ireplay = op->nreplay = 0;
    op->reading = false;
    rc_list_init(&op->in_wait);
    snprintf(op->room, sizeof(op->room), "%s", req->room ? req->room : "");
    rc_list_push(&c->ops, &op->in_conn);
    return op;
}

void rc__session_op_destroy(rc__session_op_t *op)
{
    for (uint32_t i = op->ireplay; i < op->nreplay; i++)
        rc_msg_unref(op->replay[i]);
    free(op->replay);
    if (!rc_list_empty(&op->in_wait))
        op->n->metrics.history_reads_waiting--;
    rc_list_remove(&op->in_wait);
    rc_list_remove(&op->in_conn);
    if (op->member)
        op->member->pending = NULL;
    free(op);
}

static void op_error(rc__session_op_t *op, const char *code,
                     const char *message)
{
    rc__session_send(op->n, op->c,
                     rc_proto_error(op->has_id, op->id, code, message));
}

void rc__session_cancel(void *ctx, rc_member_t *m)
{
    rc__session_op_t *op = m->pending;
    (void)ctx;
    op->member = NULL;
    m->pending = NULL;
    /* A paced replay has nobody left to serve: drop its refs now. Nothing
     * up the stack walks c->ops while a member leaves. */
    if (op->replay)
        rc__session_op_destroy(op);
}

/* Queue msgs[i..n) to mb while its client's queue is under half its bound
 * (at least one frame into an empty queue). Returns where it stopped;
 * *dead when the client was closed meanwhile. */
static size_t replay_slice(rc_node_t *n, rc_member_t *mb, rc_msg_t *const *msgs,
                           size_t i, size_t nmsgs, bool *dead)
{
    rc_conn_t *c = mb->conn;
    uint64_t bytes = n->cfg->outbound_queue_bytes / 2;
    uint32_t count = n->cfg->outbound_queue_msgs / 2;

    *dead = false;
    for (; i < nmsgs; i++) {
        rc_msg_t *m = msgs[i];
        if (m->seq <= mb->last_seq)
            continue;
        if (rc_outq_count(&c->outq) &&
            ((uint64_t)rc_outq_bytes(&c->outq) + m->len > bytes ||
             rc_outq_count(&c->outq) >= count))
            break;
        mb->last_seq = m->seq;
        if (rc_hub_send(n->hub, c, m) != RC_OK) {
            *dead = true;
            return i;
        }
        n->metrics.deliveries++;
    }
    return i;
}

void rc__session_replay(rc_node_t *n, rc_member_t *mb, uint64_t since,
                        rc_msg_t *const *msgs, size_t nmsgs)
{
    rc_conn_t *c = mb->conn;
    rc__session_op_t *op;
    rc_req_t none;
    bool dead;
    size_t i;

    if (since > mb->last_seq)
        mb->last_seq = since;
    i = replay_slice(n, mb, msgs, 0, nmsgs, &dead);
    if (dead)
        return;
    if (i < nmsgs) {
        /* The rest waits for the queue to drain; live frames are held for
         * the member meanwhile (it is still syncing). */
        memset(&none, 0, sizeof(none));
        op = rc__session_op_create(n, c, &none);
        op->replay = rc_xmalloc((nmsgs - i) * sizeof(*op->replay));
        for (size_t k = i; k < nmsgs; k++)
            op->replay[op->nreplay++] = rc_msg_ref(msgs[k]);
        op->member = mb;
        mb->pending = op;
        c->paced = 1;
        n->metrics.replays_paced++;
        return;
    }
    n->metrics.deliveries += rc_hub_sync_end(n->hub, mb);
}

void rc__session_pump(rc_node_t *n, rc_conn_t *c)
{
    rc_list_t *it, *tmp;

    c->paced = 0;
    rc_list_foreach_safe(it, tmp, &c->ops)
    {
        rc__session_op_t *op = rc_container_of(it, rc__session_op_t, in_conn);
        rc_member_t *mb = op->member;
        bool dead;

        if (!op->replay)
            continue;
        uint32_t from = op->ireplay;

        op->ireplay = (uint32_t)replay_slice(n, mb, op->replay, op->ireplay,
                                             op->nreplay, &dead);
        for (uint32_t i = from; i < op->ireplay; i++)
            rc_msg_unref(op->replay[i]); /* queued (the queue has its ref) */
        if (dead)
            return; /* closing: conn_free destroys the op */
        if (op->ireplay < op->nreplay) {
            c->paced = 1; /* the queue is full again: next drain */
            return;
        }
        mb->pending = NULL;
        op->member = NULL;
        rc__session_op_destroy(op);
        n->metrics.deliveries += rc_hub_sync_end(n->hub, mb);
        if (c->state == RC_CONN_CLOSING)
            return;
    }
}

/* Worst-case bytes of history reads in flight per node, and since-reads
 * one connection may have in flight or waiting (join/leave cycles). */
#define RC_SESSION_READ_BYTES (256ull << 20)
#define RC_SESSION_CONN_READS 4

static uint32_t read_cap(const rc_node_t *n)
{
    uint64_t per = (uint64_t)n->cfg->history_size * n->cfg->max_publish;
    uint64_t cap = RC_SESSION_READ_BYTES / (per ? per : 1);

    return cap < 16 ? 16 : cap > 4096 ? 4096 : (uint32_t)cap;
}

static rc_list_t *read_waiters(rc_node_t *n)
{
    if (!n->read_waiters.next)
        rc_list_init(&n->read_waiters);
    return &n->read_waiters;
}

bool rc__session_read_begin(rc_node_t *n)
{
    if (n->metrics.history_reads >= read_cap(n))
        return false;
    n->metrics.history_reads++;
    return true;
}

void rc__session_read_wait(rc_node_t *n, rc__session_op_t *op)
{
    rc_list_push(read_waiters(n), &op->in_wait);
    n->metrics.history_reads_waiting++;
}

static void start_read(rc_node_t *n, rc__session_op_t *op);

void rc__session_read_end(rc_node_t *n)
{
    rc_list_t *w = read_waiters(n);

    n->metrics.history_reads--;
    if (n->read_waking)
        return; /* the loop below is running up the stack */
    n->read_waking = 1;
    while (n->metrics.history_reads < read_cap(n) && !rc_list_empty(w)) {
        rc__session_op_t *op =
            rc_container_of(w->next, rc__session_op_t, in_wait);
        rc_list_remove(&op->in_wait);
        n->metrics.history_reads_waiting--;
        if (op->index == UINT32_MAX && !op->parent)
            rc__resume_wake(op); /* a resume: it takes its own reads */
        else
            start_read(n, op);
    }
    n->read_waking = 0;
}

static void history_done(rc__session_op_t *op, rc_err_t err, uint64_t latest,
                         bool recovered, rc_msg_t *const *msgs, size_t nmsgs);

static void on_history(void *arg, rc_err_t err, uint64_t latest, bool recovered,
                       rc_msg_t *const *msgs, size_t nmsgs)
{
    rc__session_op_t *op = arg;
    rc_node_t *n = op->n;
    bool reading = op->reading;

    history_done(op, err, latest, recovered, msgs, nmsgs); /* frees op */
    if (reading)
        rc__session_read_end(n);
}

/* A join's history read (op->member syncing when it is a new member). */
static void start_read(rc_node_t *n, rc__session_op_t *op)
{
    if (op->has_since) {
        if (!op->c || !n->adapter) {
            rc__session_op_destroy(op); /* the client went while it waited */
            return;
        }
        n->metrics.history_reads++;
        op->reading = true;
    }
    if (!n->adapter ||
        n->adapter->ops->history(n->adapter, op->room, op->has_since, op->since,
                                 on_history, op) != RC_OK) {
        if (op->member)
            rc_hub_leave_member(n->hub, op->member);
        if (op->c)
            op_error(op, "internal", "history unavailable");
        if (op->reading)
            n->metrics.history_reads--;
        rc__session_op_destroy(op);
    }
}

static void history_done(rc__session_op_t *op, rc_err_t err, uint64_t latest,
                         bool recovered, rc_msg_t *const *msgs, size_t nmsgs)
{
    rc_node_t *n = op->n;
    rc_member_t *mb = op->member;

    if (!op->c) {
        rc__session_op_destroy(op); /* the client is gone */
        return;
    }
    if (err != RC_OK) {
        if (mb)
            rc_hub_leave_member(n->hub, mb);
        op_error(op, "internal", "history unavailable");
        rc__session_op_destroy(op);
        return;
    }
    rc__session_send(n, op->c,
                     rc_proto_ok_room(op->has_id, op->id, op->room, true,
                                      latest, op->has_since ? recovered : -1));
    if (!mb) {
        rc__session_op_destroy(op); /* it left the room while we waited */
        return;
    }
    mb->pending = NULL;
    op->member = NULL;
    /* Without since the client starts at the latest seq; with since, the
     * missed ones are replayed; then what arrived live while we waited,
     * with no gap or duplicate (last_seq drops what was queued already). */
    rc__session_replay(n, mb, op->has_since ? op->since : latest, msgs,
                       op->has_since ? nmsgs : 0);
    rc__resume_refresh(n, op->c);
    rc__session_op_destroy(op);
}

/* c's history reads with since in flight or waiting (this one included
 * once its op exists). */
static uint32_t conn_reads(const rc_conn_t *c)
{
    const rc_list_t *it;
    uint32_t k = 0;

    rc_list_foreach(it, &c->ops)
    {
        const rc__session_op_t *op =
            rc_container_of(it, rc__session_op_t, in_conn);
        if (op->has_since && !op->parent && op->index != UINT32_MAX &&
            !op->replay)
            k++;
    }
    return k;
}

static void do_join(rc_node_t *n, rc_conn_t *c, const rc_req_t *req)
{
    rc_member_t *mb;
    rc_err_t err;
    rc__session_op_t *op;

    if (!rc__session_may_join(n, c, req->room)) {
        rc__session_send_error(n, c, req, "forbidden",
                               "token does not allow this room");
        return;
    }
    if (!rc_hub_member(n->hub, c, req->room) &&
        c->nrooms >= n->cfg->max_rooms) {
        rc__session_send_error(n, c, req, "too_many_rooms",
                               "max_rooms reached");
        return;
    }
    err = rc_hub_join(n->hub, c, req->room, &mb);
    if (err == RC_EEXIST && mb->pending) {
        rc__session_send_error(n, c, req, "bad_request",
                               "join already in progress");
        return;
    }
    op = rc__session_op_create(n, c, req);
    if (err == RC_OK) {
        /* A new member waits for its history; live frames are held. */
        op->member = mb;
        mb->pending = op;
        rc_hub_sync_begin(n->hub, mb);
    } else {
        /* Already a member: answer with the seq, replay nothing (it is
         * live already, and a replay could reorder its stream). */
        op->has_since = false;
    }
    if (op->has_since) {
        /* A read of up to history_size messages: bounded per connection
         * (refused) and per node (it waits its turn). */
        if (conn_reads(c) > RC_SESSION_CONN_READS) {
            n->metrics.bounds_hit[RC_BOUND_HISTORY_CONN]++;
            if (op->member)
                rc_hub_leave_member(n->hub, op->member);
            op_error(op, "rate_limited", "too many history reads in flight");
            rc__session_op_destroy(op);
            return;
        }
        if (!rc__session_read_begin(n)) {
            n->metrics.bounds_hit[RC_BOUND_HISTORY_NODE]++;
            rc__session_read_wait(n, op);
            return;
        }
        n->metrics.history_reads--; /* start_read takes it */
    }
    start_read(n, op);
}

static void on_published(void *arg, rc_err_t err, uint64_t seq)
{
    rc__session_op_t *op = arg;

    if (op->c) {
        if (err != RC_OK) {
            op_error(op, "internal",
                     err == RC_EREPLICA
                         ? "publish failed: replication (too few replicas "
                           "confirmed)"
                         : "publish failed");
        } else {
            op->n->metrics.publishes++;
            rc__session_send(
                op->n, op->c,
                rc_proto_ok_room(op->has_id, op->id, op->room, true, seq, -1));
        }
    }
    rc__session_op_destroy(op);
}

static void do_publish(rc_node_t *n, rc_conn_t *c, const rc_req_t *req)
{
    char *data;
    size_t len;
    rc__session_op_t *op;

    if (!may_publish(n, c, req->room)) {
        rc__session_send_error(n, c, req, "forbidden",
                               "token does not allow publishing");
        return;
    }
    data = json_dumps(req->data, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!data) {
        /* req->data is parsed JSON: only an allocation can fail here. */
        n->metrics.drops[RC_DROP_NO_MEMORY]++;
        rc__session_send_error(n, c, req, "internal", "cannot encode data");
        return;
    }
    len = strlen(data);
    if (len > n->cfg->max_publish) {
        n->metrics.drops[RC_DROP_TOO_BIG]++;
        rc__session_send_error(n, c, req, "bad_request",
                               "data larger than max_publish");
        free(data);
        return;
    }
    op = rc__session_op_create(n, c, req);
    if (n->adapter->ops->publish(n->adapter, op->room, data, len, on_published,
                                 op) != RC_OK) {
        op_error(op, "internal", "publish failed");
        rc__session_op_destroy(op);
    }
    free(data);
}

static void do_refresh(rc_node_t *n, rc_conn_t *c, const rc_req_t *req)
{
    rc_identity_t *id = NULL;
    rc_auth_reason_t r;
    rc_list_t *it, *tmp;

    if (!n->auth) {
        rc__session_send(n, c, rc_proto_ok_exp(req->has_id, req->id, 0));
        return;
    }
    r = rc_auth_verify(n->auth, req->token, req->token_len, rc__node_wall_ms(),
                       &id);
    if (r != RC_AUTH_OK) {
        rc__session_count_auth_failure(n, r);
        rc__session_send_error(
            n, c, req, r == RC_AUTH_EXPIRED ? "token_expired" : "unauthorized",
            rc_auth_reason_str(r));
        return;
    }
    if (strcmp(rc_identity_sub(id), rc_identity_sub(c->id)) != 0) {
        rc_identity_destroy(id);
        rc__session_send_error(n, c, req, "unauthorized",
                               "refresh must keep the sub");
        return;
    }
    rc_identity_destroy(c->id);
    c->id = id;
    /* Rights may have shrunk: leave what the new token no longer allows. */
    rc_list_foreach_safe(it, tmp, &c->members)
    {
        rc_member_t *mb = rc_container_of(it, rc_member_t, in_conn);
        if (!rc_identity_may_join(id, mb->room->name))
            rc_hub_leave_member(n->hub, mb);
    }
    rc__timers_exp_set(n, c, rc_identity_exp_ms(id));
    rc__timers_exp_arm(n);
    rc__session_send(
        n, c,
        rc_proto_ok_exp(req->has_id, req->id, rc_identity_exp_ms(id) / 1000));
}

static void do_leave(rc_node_t *n, rc_conn_t *c, const rc_req_t *req)
{
    if (rc_hub_leave(n->hub, c, req->room) != RC_OK) {
        rc__session_send_error(n, c, req, "not_joined", "not a member of room");
        return;
    }
    rc__session_send(
        n, c, rc_proto_ok_room(req->has_id, req->id, req->room, false, 0, -1));
    rc__resume_refresh(n, c);
}

static void do_ping(rc_node_t *n, rc_conn_t *c, const rc_req_t *req)
{
    rc__session_send(n, c, rc_proto_ok(req->has_id, req->id));
}

/* The client ops, by rc_op_t. proto.c maps an op's name to its rc_op_t and
 * checks its fields; what the op does is its row here. Adding an op: its
 * name and fields in proto.c, one row, one handler. */
typedef struct op_def {
    /* Handles the op on an authenticated connection; the request and c
     * are borrowed for the call. NULL: refused there (bad_request). */
    void (*handle)(rc_node_t *n, rc_conn_t *c, const rc_req_t *req);
    /* The op that authenticates: the only one a connection waiting for
     * its auth frame may send (do_first_frame). */
    bool first_frame;
} op_def_t;

static const op_def_t op_defs[] = {
    [RC_OP_AUTH] = {.handle = NULL, .first_frame = true},
    [RC_OP_JOIN] = {.handle = do_join},
    [RC_OP_LEAVE] = {.handle = do_leave},
    [RC_OP_PUBLISH] = {.handle = do_publish},
    [RC_OP_PING] = {.handle = do_ping},
    [RC_OP_REFRESH] = {.handle = do_refresh},
};

/* The row of a parsed request; rc_proto_parse only returns known ops. */
static const op_def_t *op_def(rc_op_t op)
{
    static const op_def_t none = {NULL, false};

    return (size_t)op < RC_ARRAY_LEN(op_defs) ? &op_defs[op] : &none;
}

void rc__session_handle(rc_node_t *n, rc_conn_t *c, const char *buf, size_t len,
                        bool binary)
{
    rc_req_t req;
    const char *code, *msg;
    const op_def_t *def;

    if (binary) {
        n->metrics.bad_requests++;
        rc__session_send_error(n, c, NULL, "bad_request",
                               "frames must be JSON text");
        return;
    }
    if (rc_proto_parse(buf, len, &req, &code, &msg) != RC_OK) {
        n->metrics.bad_requests++;
        rc__session_send_error(n, c, &req, code, msg);
        rc_req_dispose(&req);
        return;
    }
    def = op_def(req.op);
    if (def->handle) {
        def->handle(n, c, &req);
    } else {
        n->metrics.bad_requests++;
        rc__session_send_error(n, c, &req, "bad_request",
                               def->first_frame ? "already authenticated"
                                                : "unknown op");
    }
    rc_req_dispose(&req);
}

/* Authenticate from the first frame. Returns -1 to close now. */
static int do_first_frame(rc_node_t *n, rc_conn_t *c, struct lws *wsi,
                          const char *buf, size_t len)
{
    rc_req_t req;
    const char *code, *msg;
    rc_auth_reason_t r = RC_AUTH_MALFORMED;
    rc_err_t err = rc_proto_parse(buf, len, &req, &code, &msg);

    if (err == RC_OK && op_def(req.op)->first_frame) {
        r = rc_auth_verify(n->auth, req.token, req.token_len,
                           rc__node_wall_ms(), &c->id);
        if (req.resume && strlen(req.resume) < 1024) {
            free(c->resume);
            c->resume = rc_xstrdup(req.resume);
        }
    } else if (err == RC_OK)
        r = RC_AUTH_MISSING;
    rc_req_dispose(&req);
    rc__timers_pending_remove(n, c);
    if (r != RC_AUTH_OK) {
        rc__session_count_auth_failure(n, r);
        rc_log(RC_LOG_INFO, "auth_refused", "source=frame reason=%s",
               rc_auth_reason_str(r));
        lws_close_reason(wsi, (enum lws_close_status)4001,
                         (unsigned char *)rc_auth_reason_str(r),
                         strlen(rc_auth_reason_str(r)));
        return -1;
    }
    rc__session_open(n, c);
    return 0;
}

/* The rate limit, for a whole request frame about to be handled. True:
 * handle it. False: it was refused (rate_limited answers its id, the
 * reading of the id being the only work done for it); *close_now then says
 * the client is still sending a whole burst more while refused (4008). */
static bool rate_admit(rc_node_t *n, rc_conn_t *c, const char *buf, size_t len,
                       bool *close_now)
{
    *close_now = false;
    if (rc_conn_rate_take(c, rc__node_loop_ms(n), n->cfg->rate_limit,
                          n->cfg->rate_burst)) {
        c->strikes = 0;
        return true;
    }
    n->metrics.rate_limited++;
    if (++c->strikes > n->cfg->rate_burst) {
        n->metrics.rate_limit_closes++;
        *close_now = true;
        return false;
    }
    {
        json_t *root = json_loadb(buf, len, 0, NULL);
        json_t *id = json_object_get(root, "id");
        rc__session_send(
            n, c,
            rc_proto_error(json_is_integer(id),
                           json_is_integer(id) ? json_integer_value(id) : 0,
                           "rate_limited", "slow down"));
        json_decref(root);
    }
    return false;
}

void rc__session_handle_held(rc_node_t *n, rc_conn_t *c, const char *buf,
                             size_t len, bool binary)
{
    bool close_now;

    if (rate_admit(n, c, buf, len, &close_now))
        rc__session_handle(n, c, buf, len, binary);
    else if (close_now)
        rc__writer_close(n, c, 4008);
}

/* A whole inbound message. Returns -1 to close the connection now. */
static int on_message(rc_node_t *n, rc_conn_t *c, struct lws *wsi,
                      const char *buf, size_t len, bool binary)
{
    bool close_now;

    n->metrics.frames_in++;
    if (c->state == RC_CONN_OPEN && c->resuming) {
        /* Its welcome is not out yet: kept (bounded), then rate-limited
         * and handled after it, in order (rc__session_handle_held): not
         * even a refusal goes out before the welcome. */
        if (rc__resume_hold(n, c, buf, len, binary) != 0) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, NULL, 0);
            return -1;
        }
        return 0;
    }
    if (!rate_admit(n, c, buf, len, &close_now)) {
        if (close_now) {
            lws_close_reason(wsi, (enum lws_close_status)4008, NULL, 0);
            return -1;
        }
        return 0;
    }
    if (c->state == RC_CONN_PENDING_AUTH)
        return do_first_frame(n, c, wsi, buf, len);
    if (c->state != RC_CONN_OPEN)
        return 0; /* closing: ignore what still comes in */
    rc__session_handle(n, c, buf, len, binary);
    return 0;
}

int rc__session_receive(rc_node_t *n, rc_conn_t *c, struct lws *wsi,
                        const char *in, size_t len)
{
    size_t remaining = lws_remaining_packet_payload(wsi);
    bool final = lws_is_final_fragment(wsi);
    unsigned char *nb;

    c->last_rx_ms = rc__node_loop_ms(n);
    /* Before auth the only frame that means anything is the auth frame:
     * a socket nobody authenticated may not make us buffer max_frame. */
    if (c->state == RC_CONN_PENDING_AUTH &&
        (uint64_t)c->rx_len + len + remaining > RC_SESSION_FIRST_FRAME_MAX) {
        n->metrics.oversize_closes++;
        n->metrics.bounds_hit[RC_BOUND_FIRST_FRAME]++;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if ((uint64_t)c->rx_len + len + remaining > n->cfg->max_frame) {
        n->metrics.oversize_closes++;
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (c->rx_len == 0 && final)
        return on_message(n, c, wsi, in, len, lws_frame_is_binary(wsi));
    /* A message split over several reads: gather it, bounded above. */
    nb = rc_tryrealloc(c->rx, c->rx_len + len + 1);
    if (!nb) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, NULL, 0);
        return -1;
    }
    c->rx = nb;
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += (uint32_t)len;
    if (final) {
        int rc = on_message(n, c, wsi, (const char *)c->rx, c->rx_len,
                            lws_frame_is_binary(wsi));
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
        return rc;
    }
    return 0;
}

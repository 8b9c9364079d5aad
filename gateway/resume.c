/* Sessions that outlive a connection: the welcome and its sealed resume
 * token, the snapshot of a client's rooms and per-room last seq stored
 * through the adapter (rc__resume_save, when an authenticated client goes
 * and when a drain moves it), and the resume itself: a client that comes
 * back with a valid token has its snapshot claimed once (session_take),
 * each room rejoined and synced from its last seq, then `welcome` with
 * resumed:true (rc__resume_start).
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth/sealed.h"
#include "common/log.h"
#include "common/mem.h"
#include "gateway/node_internal.h"

void rc__resume_token(rc_node_t *n, rc_conn_t *c, char *out, size_t len)
{
    char payload[RC_AUTH_MAX_SUB + 64];
    rc_sealed_keys_t keys = {n->resume_key, n->resume_key_len, NULL, 0};
    int plen;

    plen = snprintf(payload, sizeof(payload), "1|%016" PRIx64 "|%" PRId64 "|%s",
                    c->session, rc__node_wall_ms() + n->cfg->resume_ttl_ms,
                    c->id ? rc_identity_sub(c->id) : "");
    if (plen < 0 || (size_t)plen >= sizeof(payload) ||
        rc_sealed_seal(&keys, payload, (size_t)plen, out, len) != RC_OK)
        out[0] = '\0';
}

/* rooms (stolen; NULL when not resumed) lists the restored rooms. */
static void send_welcome(rc_node_t *n, rc_conn_t *c, json_t *rooms)
{
    char session[17], resume[1024];
    json_t *w;

    snprintf(session, sizeof(session), "%016" PRIx64, c->session);
    rc__resume_token(n, c, resume, sizeof(resume));
    w = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b}", "op", "welcome", "session",
                  session, "node", n->cfg->node_id, "resume", resume,
                  "heartbeat_ms", (json_int_t)n->cfg->heartbeat_ms, "resumed",
                  rooms != NULL);
    if (w && rooms)
        json_object_set_new(w, "rooms", rooms);
    else
        json_decref(rooms);
    if (w) {
        rc__session_send(n, c, rc_proto_json(w));
        json_decref(w);
    }
}

/* Snapshot: {"sub":S,"rooms":[[room,last_seq],...]}, kept by the adapter
 * for resume_ttl so that whichever node the client comes back to can
 * restore it. Owned string or NULL. */
static char *snapshot_json(const rc_conn_t *c, bool will_flush, size_t *len)
{
    json_t *o = json_object(), *rooms = json_array();
    rc_list_t *it;
    char *s;

    rc_list_foreach(it, &c->members)
    {
        const rc_member_t *mb = rc_container_of(it, rc_member_t, in_conn);
        uint64_t seq = mb->last_seq;
        /* last_seq is what was queued. A drain flushes the queue before
         * the close; a client that is gone never got what is still in it,
         * so its resume must start before that. */
        for (uint32_t i = 0; !will_flush && i < rc_outq_count(&c->outq); i++) {
            const rc_msg_t *m = rc_outq_peek(&c->outq, i);
            if (m->seq && m->seq <= seq && m->room_len == mb->room->len &&
                memcmp(rc_msg_bytes(m) + m->room_off, mb->room->name,
                       m->room_len) == 0)
                seq = m->seq - 1;
        }
        json_array_append_new(
            rooms, json_pack("[s, I]", mb->room->name, (json_int_t)seq));
    }
    json_object_set_new(o, "sub", json_string(rc_identity_sub(c->id)));
    json_object_set_new(o, "rooms", rooms);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

/* Store c's snapshot. will_flush: its queue will still be written (drain),
 * else what is queued is lost (the client is gone). cb (may be NULL) runs
 * once the backend has it; returns false (and never calls cb) when there is
 * nothing to store. */
bool rc__resume_save(rc_node_t *n, rc_conn_t *c, bool will_flush,
                     rc_adapter_done_cb cb, void *arg)
{
    char sid[17], *json;
    size_t len;

    if (c->saved || !c->id || c->state == RC_CONN_PENDING_AUTH ||
        rc_list_empty(&c->members) || !n->adapter)
        return false;
    c->saved = 1;
    json = snapshot_json(c, will_flush, &len);
    if (!json)
        return false;
    snprintf(sid, sizeof(sid), "%016" PRIx64, c->session);
    n->adapter->ops->session_save(n->adapter, sid, json, len,
                                  n->cfg->resume_ttl_ms, cb, arg);
    free(json);
    return true;
}

/* A fingerprint of c's rooms and positions (FNV-1a over each membership
 * and its last_seq); 0 when it is in no room. */
static uint32_t snap_print(const rc_conn_t *c)
{
    uint32_t h = 2166136261u;
    rc_list_t *it;

    if (rc_list_empty(&c->members))
        return 0;
    rc_list_foreach(it, &c->members)
    {
        const rc_member_t *mb = rc_container_of(it, rc_member_t, in_conn);
        uint64_t v[2] = {(uint64_t)(uintptr_t)mb->room, mb->last_seq};
        const unsigned char *p = (const unsigned char *)v;
        for (size_t i = 0; i < sizeof(v); i++)
            h = (h ^ p[i]) * 16777619u;
    }
    return h ? h : 1;
}

void rc__resume_refresh(rc_node_t *n, rc_conn_t *c)
{
    char sid[17], *json;
    uint32_t print;
    size_t len;

    if (c->saved || c->moving || c->resuming || !c->id ||
        c->state != RC_CONN_OPEN || !n->adapter)
        return;
    print = snap_print(c);
    if (print == c->snap_print)
        return;
    json = snapshot_json(c, false, &len);
    if (!json)
        return;
    c->snap_print = print;
    snprintf(sid, sizeof(sid), "%016" PRIx64, c->session);
    n->adapter->ops->session_save(n->adapter, sid, json, len,
                                  n->cfg->resume_ttl_ms, NULL, NULL);
    free(json);
}

typedef struct resume_room {
    rc_member_t *mb; /* NULL when the room was not restored */
    uint64_t since, latest;
    bool recovered, ok;
    rc_msg_t **msgs; /* refs held until the welcome went out */
    size_t nmsgs;
    char room[RC_ROOM_MAX + 1];
} resume_room_t;

/* Requests a client sent before its welcome, kept (bounded) until the
 * welcome went out: PROTOCOL section 2 makes `welcome` the first frame. */
#define HELD_MAX_FRAMES 16
#define HELD_MAX_BYTES (16 * 1024)

typedef struct resume_ctx {
    rc__session_op_t op; /* op.c is the client, cut loose if it goes */
    uint64_t sid;        /* the session being resumed */
    size_t n, pending;
    rc_buf_t held; /* frames sent before the welcome: [u32 len][bytes]... */
    uint32_t nheld;
    resume_room_t rooms[];
} resume_ctx_t;

/* The resume in flight on c (its op is marked by index UINT32_MAX). */
static resume_ctx_t *resume_of(rc_conn_t *c)
{
    rc_list_t *it;

    rc_list_foreach(it, &c->ops)
    {
        rc__session_op_t *op = rc_container_of(it, rc__session_op_t, in_conn);
        if (op->index == UINT32_MAX && !op->parent)
            return (resume_ctx_t *)op; /* op is the first member */
    }
    return NULL;
}

/* The length word of a held frame; its top bit marks a binary frame. */
#define HELD_BINARY 0x80000000u

int rc__resume_hold(rc_node_t *n, rc_conn_t *c, const char *buf, size_t len,
                    bool binary)
{
    resume_ctx_t *rs = resume_of(c);
    uint32_t l = (uint32_t)len | (binary ? HELD_BINARY : 0);

    if (!rs)
        return 0; /* cannot happen: resuming is set with the op */
    if (rs->nheld >= HELD_MAX_FRAMES ||
        rs->held.len + sizeof(l) + len > HELD_MAX_BYTES) {
        n->metrics.bounds_hit[RC_BOUND_HELD_REQUESTS]++;
        return -1;
    }
    rc_buf_append(&rs->held, (const char *)&l, sizeof(l));
    rc_buf_append(&rs->held, buf, len);
    rs->nheld++;
    return 0;
}

/* The welcome is out: handle what the client sent meanwhile, in order. */
static void release_held(resume_ctx_t *rs)
{
    rc_node_t *n = rs->op.n;
    rc_conn_t *c = rs->op.c;
    size_t off = 0;

    if (!c)
        return;
    c->resuming = 0;
    for (uint32_t i = 0; i < rs->nheld && c->state == RC_CONN_OPEN; i++) {
        uint32_t l;
        memcpy(&l, rs->held.data + off, sizeof(l));
        off += sizeof(l);
        rc__session_handle(n, c, rs->held.data + off, l & ~HELD_BINARY,
                           (l & HELD_BINARY) != 0);
        off += l & ~HELD_BINARY;
    }
}

static void resume_free(resume_ctx_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        for (size_t j = 0; j < rs->rooms[i].nmsgs; j++)
            rc_msg_unref(rs->rooms[i].msgs[j]);
        free(rs->rooms[i].msgs);
    }
    rc_buf_dispose(&rs->held);
    rc__session_op_destroy(&rs->op); /* frees rs: op is its first member */
}

/* Every room answered: welcome first, then each room's missed messages
 * and what arrived live meanwhile, as for join with since. */
static void resume_finish(resume_ctx_t *rs)
{
    rc_node_t *n = rs->op.n;
    rc_conn_t *c = rs->op.c;
    json_t *list;

    if (!c) {
        resume_free(rs);
        return;
    }
    list = json_array();
    for (size_t i = 0; i < rs->n; i++) {
        resume_room_t *rr = &rs->rooms[i];
        if (rr->ok && rr->mb)
            json_array_append_new(list,
                                  json_pack("{s:s, s:I, s:b}", "room", rr->room,
                                            "seq", (json_int_t)rr->latest,
                                            "recovered", rr->recovered));
    }
    n->metrics.resumes_accepted++;
    send_welcome(n, c, list);
    for (size_t i = 0; i < rs->n; i++) {
        resume_room_t *rr = &rs->rooms[i];
        if (rr->mb)
            rc__session_replay(n, rr->mb, rr->since, rr->msgs, rr->nmsgs);
    }
    release_held(rs);
    rc__resume_refresh(n, c);
    resume_free(rs);
}

static void resume_room_done(rc__session_op_t *op, rc_err_t err,
                             uint64_t latest, bool recovered,
                             rc_msg_t *const *msgs, size_t nmsgs)
{
    resume_ctx_t *rs = op->parent;
    resume_room_t *rr = &rs->rooms[op->index];

    rr->mb = op->member; /* NULL if it left (or the client went) */
    if (rr->mb)
        rr->mb->pending = NULL;
    op->member = NULL;
    if (err == RC_OK && rr->mb) {
        rr->ok = true;
        rr->latest = latest;
        rr->recovered = recovered;
        rr->msgs = nmsgs ? rc_xmalloc(nmsgs * sizeof(*rr->msgs)) : NULL;
        for (size_t i = 0; i < nmsgs; i++)
            rr->msgs[i] = rc_msg_ref(msgs[i]);
        rr->nmsgs = nmsgs;
    } else if (rr->mb) {
        rc_hub_leave_member(op->n->hub, rr->mb);
        rr->mb = NULL;
    }
    rc__session_op_destroy(op);
    if (--rs->pending == 0)
        resume_finish(rs);
}

/* The history of one room of a resume (a join with since). */
static void on_room_history(void *arg, rc_err_t err, uint64_t latest,
                            bool recovered, rc_msg_t *const *msgs, size_t nmsgs)
{
    resume_room_done(arg, err, latest, recovered, msgs, nmsgs);
}

static void resume_refused(rc_node_t *n, rc_conn_t *c, rc_resume_refusal_t why)
{
    n->metrics.resumes_refused[why]++;
    rc_log(RC_LOG_INFO, "resume_refused", "session=%016" PRIx64 " why=%s",
           c->session, rc_resume_refusal_str(why));
    send_welcome(n, c, NULL);
}

/* One per authenticated conn, in n->sessions. Session ids are drawn by
 * the node (splitmix64 over a random seed), never by a client, so they
 * serve as their own hash. */
typedef struct session_entry {
    rc_hnode_t node;
    rc_conn_t *conn;
} session_entry_t;

void rc__resume_index_add(rc_node_t *n, rc_conn_t *c)
{
    session_entry_t *e = rc_xmalloc(sizeof(*e));

    if (!n->sessions._buckets)
        rc_htab_init(&n->sessions);
    e->node.hash = c->session;
    e->conn = c;
    rc_htab_insert(&n->sessions, &e->node);
}

void rc__resume_index_remove(rc_node_t *n, rc_conn_t *c)
{
    rc_hnode_t *h;

    if (!n->sessions._buckets)
        return;
    for (h = rc_htab_first(&n->sessions, c->session); h; h = rc_htab_next(h)) {
        session_entry_t *e = rc_container_of(h, session_entry_t, node);
        if (e->conn == c) {
            rc_htab_remove(&n->sessions, h);
            free(e);
            break;
        }
    }
    if (n->sessions.count == 0)
        rc_htab_dispose(&n->sessions); /* an idle node keeps nothing */
}

/* The connection of session sid on this node that is still open (its
 * client came back before we noticed the old link died), or NULL. */
static rc_conn_t *live_session(rc_node_t *n, uint64_t sid, const rc_conn_t *c)
{
    rc_hnode_t *h;

    if (!n->sessions._buckets)
        return NULL;
    for (h = rc_htab_first(&n->sessions, sid); h; h = rc_htab_next(h)) {
        rc_conn_t *o = rc_container_of(h, session_entry_t, node)->conn;
        if (o->session == sid && o != c && o->state == RC_CONN_OPEN && o->id &&
            !o->saved && !o->moving &&
            strcmp(rc_identity_sub(o->id), rc_identity_sub(c->id)) == 0)
            return o;
    }
    return NULL;
}

/* Take the session over from its old connection: its rooms and position
 * (what was written to its socket) move to c, and it is closed, so what it
 * would have saved when freed is not lost behind a used claim. Returns an
 * owned snapshot, or NULL. */
static char *take_over(rc_node_t *n, rc_conn_t *old, size_t *len)
{
    char *json = snapshot_json(old, false, len);

    old->saved = 1; /* its snapshot is this one: never save it again */
    rc_hub_drop_queue(n->hub, old);
    rc__writer_close(n, old, 1000);
    n->metrics.resume_takeovers++;
    rc_log(RC_LOG_INFO, "resume_takeover", "session=%016" PRIx64, old->session);
    return json;
}

static void on_session_taken(void *arg, rc_err_t err, bool used,
                             const char *json, size_t len)
{
    resume_ctx_t *rs = arg;
    rc_node_t *n = rs->op.n;
    rc_conn_t *c = rs->op.c;
    json_t *root = NULL, *rooms;
    size_t i, k = 0;
    resume_ctx_t *big;
    char *mine = NULL;
    rc_conn_t *old;

    if (!c) {
        resume_free(rs);
        return;
    }
    /* The old connection is still open here: its own account of what was
     * written beats any snapshot stored earlier (rc__resume_refresh). */
    if (err == RC_OK && !used && (old = live_session(n, rs->sid, c))) {
        mine = take_over(n, old, &len);
        json = mine;
    }
    if (err != RC_OK || used || !json) {
        resume_refused(n, c,
                       err != RC_OK ? RC_RESUME_BACKEND
                       : used       ? RC_RESUME_USED
                                    : RC_RESUME_NO_SNAPSHOT);
        release_held(rs);
        resume_free(rs);
        return;
    }
    root = json_loadb(json, len, 0, NULL);
    free(mine);
    rooms = json_object_get(root, "rooms");
    if (!json_is_array(rooms) ||
        !json_is_string(json_object_get(root, "sub")) ||
        strcmp(json_string_value(json_object_get(root, "sub")),
               rc_identity_sub(c->id)) != 0) {
        json_decref(root);
        resume_refused(n, c, RC_RESUME_BAD_SNAPSHOT);
        release_held(rs);
        resume_free(rs);
        return;
    }
    /* Grow the context to hold every room, then join each one the
     * current token still allows and fetch its history after since. */
    big = rc_xrealloc(rs, sizeof(*rs) +
                              json_array_size(rooms) * sizeof(resume_room_t));
    /* realloc moved the op: relink it on the conn's list */
    big->op.in_conn.next->prev = &big->op.in_conn;
    big->op.in_conn.prev->next = &big->op.in_conn;
    /* held.data is a heap pointer: moved along with the struct */
    rs = big;
    rs->n = 0;
    rs->pending = 1; /* held until every room was asked */
    for (i = 0; i < json_array_size(rooms); i++) {
        json_t *e = json_array_get(rooms, i);
        const char *room = json_string_value(json_array_get(e, 0));
        json_t *seq = json_array_get(e, 1);
        resume_room_t *rr = &rs->rooms[rs->n];
        rc_member_t *mb;
        rc__session_op_t *op;
        rc_req_t fake;

        if (!room || !json_is_integer(seq) ||
            !rc_room_name_valid(room, strlen(room)) ||
            !rc__session_may_join(n, c, room) || c->nrooms >= n->cfg->max_rooms)
            continue;
        if (rc_hub_join(n->hub, c, room, &mb) != RC_OK)
            continue;
        memset(rr, 0, sizeof(*rr));
        snprintf(rr->room, sizeof(rr->room), "%s", room);
        rr->since = (uint64_t)json_integer_value(seq);
        memset(&fake, 0, sizeof(fake));
        fake.room = room;
        fake.has_since = true;
        fake.since = rr->since;
        op = rc__session_op_create(n, c, &fake);
        op->parent = rs;
        op->index = (uint32_t)rs->n;
        op->member = mb;
        mb->pending = op;
        rc_hub_sync_begin(n->hub, mb);
        rs->n++;
        rs->pending++;
        k++;
        if (n->adapter->ops->history(n->adapter, room, true, rr->since,
                                     on_room_history, op) != RC_OK)
            resume_room_done(op, RC_EBACKEND, 0, false, NULL, 0);
    }
    json_decref(root);
    if (--rs->pending == 0)
        resume_finish(rs);
}

/* The welcome, after restoring the session named by a valid resume token
 * (bound to the JWT's sub, unexpired, usable once). Anything else is
 * refused quietly: resumed:false. */
void rc__resume_start(rc_node_t *n, rc_conn_t *c)
{
    char payload[RC_AUTH_MAX_SUB + 64], sid[17], *tok = c->resume;
    rc_sealed_keys_t keys = {n->resume_key, n->resume_key_len, NULL, 0};
    size_t plen = 0;
    unsigned long long expiry;
    int off = 0;
    resume_ctx_t *rs;
    rc_req_t fake;

    c->resume = NULL;
    if (!tok || !c->id) {
        free(tok);
        send_welcome(n, c, NULL);
        return;
    }
    if (rc_sealed_open(&keys, tok, strlen(tok), payload, sizeof(payload) - 1,
                       &plen) != RC_OK) {
        free(tok);
        resume_refused(n, c, RC_RESUME_FORGED);
        return;
    }
    free(tok);
    payload[plen] = '\0';
    if (sscanf(payload, "1|%16[0-9a-f]|%llu|%n", sid, &expiry, &off) != 2 ||
        off == 0) {
        resume_refused(n, c, RC_RESUME_MALFORMED);
        return;
    }
    if ((int64_t)expiry < rc__node_wall_ms()) {
        resume_refused(n, c, RC_RESUME_EXPIRED);
        return;
    }
    if (strcmp(payload + off, rc_identity_sub(c->id)) != 0) {
        resume_refused(n, c, RC_RESUME_OTHER_SUB);
        return;
    }
    memset(&fake, 0, sizeof(fake));
    rs = rc_xcalloc(1, sizeof(*rs));
    {
        rc__session_op_t *op = rc__session_op_create(n, c, &fake);
        rs->op = *op;
        /* move the list link from the temporary op to rs->op */
        rc_list_remove(&op->in_conn);
        free(op);
        rc_list_init(&rs->op.in_conn);
        rc_list_push(&c->ops, &rs->op.in_conn);
    }
    rs->op.index = UINT32_MAX; /* marks the resume op (resume_of) */
    rs->sid = strtoull(sid, NULL, 16);
    /* Until the welcome nothing else goes out: requests are held by
     * rc__resume_hold (bounded; the rate limit still counts them), the
     * heartbeat skips c. (lws_rx_flow_control is not used: lws 4.1 on
     * libuv does not hand over what it buffered meanwhile when reading
     * is enabled again.) */
    c->resuming = 1;
    if (n->adapter->ops->session_take(n->adapter, sid, n->cfg->resume_ttl_ms,
                                      on_session_taken, rs) != RC_OK) {
        release_held(rs);
        resume_free(rs);
        resume_refused(n, c, RC_RESUME_BACKEND);
    }
}

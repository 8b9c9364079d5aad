/* Sessions that outlive a connection: the welcome and its sealed resume
 * token, the snapshot of a client's rooms and per-room last seq stored
 * through the adapter (rc__resume_save, when an authenticated client goes
 * and when a drain moves it), and the resume itself: a client that comes
 * back with a valid token has its snapshot claimed once (session_take),
 * each room rejoined and synced from its last seq, then `welcome` with
 * resumed:true (rc__resume_start).
 *
 * A snapshot's position is what was written to the socket (last_seq less
 * what is still queued; a dropped queue rewinds last_seq, hub.c). A
 * session whose old connection is still open takes it over: on this node
 * through the session index (take_over), elsewhere from the snapshot the
 * old node keeps current (rc__resume_refresh, at join/leave and heartbeat).
 * Until the welcome, the client's requests are held (rc__resume_hold) and
 * no ping goes out. A resume reads RESUME_READS_AT_ONCE rooms at a time
 * within the node's read bound and holds at most RESUME_HOLD_BYTES.
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

json_t *rc__resume_snapshot_rooms(const char *json, size_t len, const char *sub,
                                  json_t **rooms)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *s = json_object_get(root, "sub");

    *rooms = json_object_get(root, "rooms");
    if (!json_is_array(*rooms) || !json_is_string(s) || !sub ||
        strcmp(json_string_value(s), sub) != 0) {
        json_decref(root);
        *rooms = NULL;
        return NULL;
    }
    return root;
}

bool rc__resume_snapshot_room(const json_t *rooms, size_t i, const char **room,
                              uint64_t *since)
{
    json_t *e = json_array_get(rooms, i);
    json_t *seq = json_array_get(e, 1);
    const char *name = json_string_value(json_array_get(e, 0));

    if (!name || !json_is_integer(seq) || json_integer_value(seq) < 0 ||
        (uint64_t)json_integer_value(seq) > RC_MSG_MAX_SEQ ||
        !rc_room_name_valid(name, strlen(name)))
        return false;
    *room = name;
    *since = (uint64_t)json_integer_value(seq);
    return true;
}

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

/* A resume reads the history of at most RESUME_READS_AT_ONCE rooms at a
 * time (each also takes one of the node's reads, rc__session_read_begin),
 * and holds at most RESUME_HOLD_BYTES of history until its welcome: a
 * room past that keeps only its seq and recovered flag for the welcome
 * and is read again after it (phase 2), then replayed as for a join. */
#define RESUME_READS_AT_ONCE 8
#define RESUME_HOLD_BYTES (8u << 20)

typedef struct resume_room {
    rc__session_op_t *op; /* its read in this phase, until it answered */
    rc_member_t *mb;      /* NULL when the room was not restored */
    uint64_t since, latest;
    bool recovered, ok;
    bool refetch;    /* history past the hold budget: read after welcome */
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
    size_t n, pending;   /* rooms; rooms of this phase not answered yet */
    size_t next;         /* next room whose read to start */
    size_t inflight;     /* its reads in flight */
    uint64_t held_bytes; /* history held for the welcome */
    uint8_t phase;       /* 1: before the welcome; 2: re-reads after it */
    uint8_t stepping;    /* resume_step is running */
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
    c->last_rx_ms = rc__node_loop_ms(n); /* heartbeat: see on_hb_timer */
    for (uint32_t i = 0; i < rs->nheld && c->state == RC_CONN_OPEN; i++) {
        uint32_t l;
        memcpy(&l, rs->held.data + off, sizeof(l));
        off += sizeof(l);
        rc__session_handle_held(n, c, rs->held.data + off, l & ~HELD_BINARY,
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
        if (rs->rooms[i].op) /* never started (the context goes early) */
            rc__session_op_destroy(rs->rooms[i].op);
    }
    rc_buf_dispose(&rs->held);
    rc__session_op_destroy(&rs->op); /* frees rs: op is its first member */
}

/* One room's read answered (or never ran: err). Records it; calls
 * nothing that could free rs. */
static void room_record(resume_ctx_t *rs, resume_room_t *rr, rc_err_t err,
                        uint64_t latest, bool recovered, rc_msg_t *const *msgs,
                        size_t nmsgs)
{
    rc__session_op_t *op = rr->op;
    rc_node_t *n = rs->op.n;
    rc_member_t *mb = op->member; /* NULL if it left (or the client went) */
    uint64_t bytes = 0;

    rr->op = NULL;
    if (mb)
        mb->pending = NULL;
    op->member = NULL;
    rc__session_op_destroy(op);
    rs->pending--;
    if (rs->phase == 2) {
        /* A room re-read after the welcome: replayed as for a join. */
        rr->refetch = false;
        if (err == RC_OK && mb && rs->op.c)
            rc__session_replay(n, mb, rr->since, msgs, nmsgs);
        else if (mb)
            rc_hub_leave_member(n->hub, mb);
        return;
    }
    rr->mb = mb;
    if (err != RC_OK || !mb) {
        if (mb)
            rc_hub_leave_member(n->hub, mb);
        rr->mb = NULL;
        return;
    }
    rr->ok = true;
    rr->latest = latest;
    rr->recovered = recovered;
    for (size_t i = 0; i < nmsgs; i++)
        bytes += msgs[i]->len;
    if (rs->held_bytes + bytes > RESUME_HOLD_BYTES) {
        n->metrics.bounds_hit[RC_BOUND_RESUME_BYTES]++;
        rr->refetch = true; /* read again once the welcome is out */
        return;
    }
    rs->held_bytes += bytes;
    rr->msgs = nmsgs ? rc_xmalloc(nmsgs * sizeof(*rr->msgs)) : NULL;
    for (size_t i = 0; i < nmsgs; i++)
        rr->msgs[i] = rc_msg_ref(msgs[i]);
    rr->nmsgs = nmsgs;
}

static void on_room_history(void *arg, rc_err_t err, uint64_t latest,
                            bool recovered, rc_msg_t *const *msgs,
                            size_t nmsgs);

/* A read for rr in the current phase. */
static rc__session_op_t *room_op(resume_ctx_t *rs, size_t i)
{
    resume_room_t *rr = &rs->rooms[i];
    rc__session_op_t *op;
    rc_req_t fake;

    memset(&fake, 0, sizeof(fake));
    fake.room = rr->room;
    fake.has_since = true;
    fake.since = rr->since;
    op = rc__session_op_create(rs->op.n, rs->op.c, &fake);
    op->parent = rs;
    op->index = (uint32_t)i;
    op->member = rr->mb;
    rr->mb->pending = op;
    rr->op = op;
    rs->pending++;
    return op;
}

/* Start the reads this phase may have in flight. */
static void resume_pump(resume_ctx_t *rs)
{
    rc_node_t *n = rs->op.n;

    while (rs->next < rs->n && rs->inflight < RESUME_READS_AT_ONCE &&
           rc_list_empty(&rs->op.in_wait)) {
        resume_room_t *rr = &rs->rooms[rs->next];
        rc__session_op_t *op = rr->op;

        if (!op) {
            rs->next++; /* nothing to read for it in this phase */
            continue;
        }
        if (!op->c || !op->member || !n->adapter) {
            rs->next++; /* the client went, or left the room */
            room_record(rs, rr, RC_ECLOSED, 0, false, NULL, 0);
            continue;
        }
        if (!rc__session_read_begin(n)) {
            n->metrics.bounds_hit[RC_BOUND_HISTORY_NODE]++;
            rc__session_read_wait(n, &rs->op); /* rc__resume_wake */
            return;
        }
        rs->next++;
        rs->inflight++;
        op->reading = true;
        if (n->adapter->ops->history(n->adapter, rr->room, true, rr->since,
                                     on_room_history, op) != RC_OK) {
            rs->inflight--;
            n->metrics.history_reads--;
            room_record(rs, rr, RC_EBACKEND, 0, false, NULL, 0);
        }
    }
}

/* Every room of phase 1 answered: welcome first, then each room's missed
 * messages and what arrived live meanwhile, as for join with since.
 * Returns true when rooms are to be read again (phase 2). */
static bool resume_welcome(resume_ctx_t *rs)
{
    rc_node_t *n = rs->op.n;
    rc_conn_t *c = rs->op.c;
    json_t *list;

    if (!c)
        return false;
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
    rs->phase = 2;
    rs->next = 0;
    for (size_t i = 0; i < rs->n; i++) {
        resume_room_t *rr = &rs->rooms[i];
        if (rr->mb && rr->refetch)
            (void)room_op(rs, i); /* still syncing: live frames held */
        else if (rr->mb)
            rc__session_replay(n, rr->mb, rr->since, rr->msgs, rr->nmsgs);
        for (size_t j = 0; j < rr->nmsgs; j++)
            rc_msg_unref(rr->msgs[j]);
        free(rr->msgs);
        rr->msgs = NULL;
        rr->nmsgs = 0;
    }
    rs->held_bytes = 0;
    release_held(rs);
    if (rs->op.c)
        rc__resume_refresh(n, rs->op.c);
    return rs->pending > 0;
}

/* Move the resume on: start reads, then the welcome when every room of
 * phase 1 answered, then the re-reads; free it when all is done. Safe to
 * call from anywhere, including under itself (a local adapter answers
 * within the history call). */
static void resume_step(resume_ctx_t *rs)
{
    if (rs->stepping)
        return;
    rs->stepping = 1;
    for (;;) {
        resume_pump(rs);
        if (rs->pending)
            break;
        if (rs->phase == 1 && resume_welcome(rs))
            continue;
        resume_free(rs);
        return;
    }
    rs->stepping = 0;
}

/* The history of one room of a resume (a join with since). */
static void on_room_history(void *arg, rc_err_t err, uint64_t latest,
                            bool recovered, rc_msg_t *const *msgs, size_t nmsgs)
{
    rc__session_op_t *op = arg;
    resume_ctx_t *rs = op->parent;
    rc_node_t *n = op->n;

    rs->inflight--;
    room_record(rs, &rs->rooms[op->index], err, latest, recovered, msgs, nmsgs);
    resume_step(rs); /* may free rs */
    rc__session_read_end(n);
}

void rc__resume_wake(rc__session_op_t *op)
{
    resume_step((resume_ctx_t *)op); /* op is its first member */
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
    size_t i;
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
    root = rc__resume_snapshot_rooms(json, len, rc_identity_sub(c->id), &rooms);
    free(mine);
    if (!root) {
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
    rc_list_init(&big->op.in_wait); /* not waiting yet */
    /* held.data is a heap pointer: moved along with the struct */
    rs = big;
    rs->n = 0;
    rs->pending = 0;
    rs->phase = 1;
    for (i = 0; i < json_array_size(rooms); i++) {
        const char *room;
        uint64_t since;
        resume_room_t *rr = &rs->rooms[rs->n];
        rc_member_t *mb;

        if (!rc__resume_snapshot_room(rooms, i, &room, &since) ||
            !rc__session_may_join(n, c, room) || c->nrooms >= n->cfg->max_rooms)
            continue;
        if (rc_hub_join(n->hub, c, room, &mb) != RC_OK)
            continue;
        memset(rr, 0, sizeof(*rr));
        snprintf(rr->room, sizeof(rr->room), "%s", room);
        rr->since = since;
        rr->mb = mb;
        rc_hub_sync_begin(n->hub, mb); /* live frames held until replay */
        (void)room_op(rs, rs->n);
        rs->n++;
    }
    json_decref(root);
    if (rs->n > RESUME_READS_AT_ONCE)
        n->metrics.bounds_hit[RC_BOUND_RESUME_ROOMS]++;
    resume_step(rs);
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
        rc_list_init(&rs->op.in_wait);
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

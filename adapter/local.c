/* The local adapter: seqs and history in this process, delivery in place.
 * SPDX-License-Identifier: MIT */
#include "adapter/local.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/htab.h"
#include "common/list.h"
#include "common/mem.h"

#define SWEEP_MS 10000

typedef struct local_room {
    rc_hnode_t node;
    uint64_t seq;
    rc_msg_t **ring; /* history_size slots, oldest at head */
    int64_t *at_ms;  /* when each was published (loop clock) */
    uint32_t head, count;
    void *token; /* the node's room while it has local members, or NULL */
    char name[];
} local_room_t;

typedef struct local_session {
    rc_hnode_t node;
    int64_t expires; /* loop ms */
    char *json;      /* NULL once taken */
    size_t len;
    bool used;
    char id[];
} local_session_t;

typedef struct local_adapter {
    rc_adapter_t base;
    uv_loop_t *loop;
    uv_timer_t sweep;
    uint32_t history_size;
    int64_t history_ttl_ms;
    uint64_t key[2];
    rc_htab_t rooms;
    rc_htab_t sessions;
} local_adapter_t;

static local_room_t *find(local_adapter_t *la, const char *name, bool create)
{
    size_t len = strlen(name);
    uint64_t h = rc_hash_bytes(la->key, name, len);
    rc_hnode_t *n;
    local_room_t *r;

    for (n = rc_htab_first(&la->rooms, h); n; n = rc_htab_next(n)) {
        r = rc_container_of(n, local_room_t, node);
        if (strcmp(r->name, name) == 0)
            return r;
    }
    if (!create)
        return NULL;
    r = rc_xcalloc(1, sizeof(*r) + len + 1);
    memcpy(r->name, name, len + 1);
    r->node.hash = h;
    if (la->history_size) {
        r->ring = rc_xcalloc(la->history_size, sizeof(*r->ring));
        r->at_ms = rc_xcalloc(la->history_size, sizeof(*r->at_ms));
    }
    rc_htab_insert(&la->rooms, &r->node);
    return r;
}

static void drop_oldest(local_adapter_t *la, local_room_t *r)
{
    rc_msg_unref(r->ring[r->head]);
    r->ring[r->head] = NULL;
    r->head = (r->head + 1) % la->history_size;
    r->count--;
}

static void expire(local_adapter_t *la, local_room_t *r)
{
    int64_t cutoff = (int64_t)uv_now(la->loop) - la->history_ttl_ms;

    while (r->count && r->at_ms[r->head] < cutoff)
        drop_oldest(la, r);
}

static void free_room(local_adapter_t *la, local_room_t *r)
{
    while (r->count)
        drop_oldest(la, r);
    rc_htab_remove(&la->rooms, &r->node);
    free(r->ring);
    free(r->at_ms);
    free(r);
}

static local_session_t *session_find(local_adapter_t *la, const char *id,
                                     bool create)
{
    size_t len = strlen(id);
    uint64_t h = rc_hash_bytes(la->key, id, len);
    rc_hnode_t *n;
    local_session_t *s;

    for (n = rc_htab_first(&la->sessions, h); n; n = rc_htab_next(n)) {
        s = rc_container_of(n, local_session_t, node);
        if (strcmp(s->id, id) == 0)
            return s;
    }
    if (!create)
        return NULL;
    s = rc_xcalloc(1, sizeof(*s) + len + 1);
    memcpy(s->id, id, len + 1);
    s->node.hash = h;
    rc_htab_insert(&la->sessions, &s->node);
    return s;
}

static void session_free(local_adapter_t *la, local_session_t *s)
{
    rc_htab_remove(&la->sessions, &s->node);
    free(s->json);
    free(s);
}

static void l_session_save(rc_adapter_t *ad, const char *session,
                           const char *json, size_t len, int64_t ttl_ms,
                           rc_adapter_done_cb cb, void *arg)
{
    local_adapter_t *la = (local_adapter_t *)ad;
    local_session_t *s = session_find(la, session, true);

    if (cb)
        cb(arg, RC_OK);
    if (s->used)
        return;
    free(s->json);
    s->json = rc_xstrndup(json, len);
    s->len = len;
    s->expires = (int64_t)uv_now(la->loop) + ttl_ms;
}

static rc_err_t l_session_take(rc_adapter_t *ad, const char *session,
                               int64_t ttl_ms, rc_adapter_session_cb cb,
                               void *arg)
{
    local_adapter_t *la = (local_adapter_t *)ad;
    local_session_t *s = session_find(la, session, true);
    int64_t now = (int64_t)uv_now(la->loop);
    char *json;

    if (s->used && s->expires > now) {
        cb(arg, RC_OK, true, NULL, 0);
        return RC_OK;
    }
    json = s->expires > now ? s->json : NULL;
    s->json = NULL;
    s->used = true;
    s->expires = now + ttl_ms; /* remember the use as long as a token lives */
    cb(arg, RC_OK, false, json, json ? s->len : 0);
    free(json);
    return RC_OK;
}

static void on_sweep(uv_timer_t *t)
{
    local_adapter_t *la = t->data;
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;
    int64_t now = (int64_t)uv_now(la->loop);

    while ((n = rc_htab_iter(&la->sessions, &it))) {
        local_session_t *s = rc_container_of(n, local_session_t, node);
        if (s->expires <= now)
            session_free(la, s);
    }
    it.bucket = 0;
    it.next = NULL;

    /* A room with no members and no history left has nothing to remember:
     * forget it, or one-off room names would pile up forever. */
    while ((n = rc_htab_iter(&la->rooms, &it))) {
        local_room_t *r = rc_container_of(n, local_room_t, node);
        expire(la, r);
        if (!r->token && r->count == 0)
            free_room(la, r);
    }
}

static void l_room_open(rc_adapter_t *ad, const char *room, void *token)
{
    find((local_adapter_t *)ad, room, true)->token = token;
}

static void l_room_close(rc_adapter_t *ad, const char *room)
{
    local_room_t *r = find((local_adapter_t *)ad, room, false);
    if (r)
        r->token = NULL;
}

static rc_err_t l_publish(rc_adapter_t *ad, const char *room, const char *data,
                          size_t len, rc_adapter_publish_cb cb, void *arg)
{
    local_adapter_t *la = (local_adapter_t *)ad;
    local_room_t *r = find(la, room, true);
    rc_msg_t *m =
        rc_adapter_frame_msg(room, r->seq + 1, data, len, uv_hrtime());

    if (!m)
        return RC_ENOMEM;
    r->seq++;
    if (la->history_size) {
        uint32_t slot;
        expire(la, r);
        if (r->count == la->history_size)
            drop_oldest(la, r);
        slot = (r->head + r->count) % la->history_size;
        r->ring[slot] = rc_msg_ref(m);
        r->at_ms[slot] = (int64_t)uv_now(la->loop);
        r->count++;
    }
    /* Reply first, then deliver: the publisher sees its ok before its own
     * message, as it would through Redis. */
    cb(arg, RC_OK, r->seq);
    /* room may belong to the caller's op, which the callback freed; r is
     * ours and still here (the sweep frees rooms only on its timer). */
    if (r->token)
        ad->sink.deliver(ad->sink.ctx, r->token, m);
    rc_msg_unref(m);
    return RC_OK;
}

static rc_err_t l_history(rc_adapter_t *ad, const char *room, bool has_since,
                          uint64_t since, rc_adapter_history_cb cb, void *arg)
{
    local_adapter_t *la = (local_adapter_t *)ad;
    local_room_t *r = find(la, room, false);
    rc_msg_t *stack[64], **msgs = stack;
    uint64_t latest = r ? r->seq : 0, oldest;
    bool recovered;
    size_t n = 0;

    if (r)
        expire(la, r);
    if (!has_since || since >= latest || !r) {
        /* Nothing missed (or a since from the future: not ours). */
        cb(arg, RC_OK, latest, !has_since || since == latest, NULL, 0);
        return RC_OK;
    }
    oldest = r->count ? r->ring[r->head]->seq : latest + 1;
    recovered = since + 1 >= oldest;
    if (r->count > RC_ARRAY_LEN(stack))
        msgs = rc_xmalloc(sizeof(*msgs) * r->count);
    for (uint32_t i = 0; i < r->count; i++) {
        rc_msg_t *m = r->ring[(r->head + i) % la->history_size];
        if (m->seq > since)
            msgs[n++] = m;
    }
    cb(arg, RC_OK, latest, recovered, msgs, n);
    if (msgs != stack)
        free(msgs);
    return RC_OK;
}

static bool l_ready(const rc_adapter_t *ad)
{
    (void)ad;
    return true;
}

static void l_announce(rc_adapter_t *ad)
{
    (void)ad; /* one node: no registry */
}

static void l_metrics(const rc_adapter_t *ad, rc_metric_emit_fn emit, void *ctx)
{
    (void)ad; /* nothing beyond the node's own metrics */
    (void)emit;
    (void)ctx;
}

static void on_timer_closed(uv_handle_t *h)
{
    local_adapter_t *la = h->data;
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    while ((n = rc_htab_iter(&la->rooms, &it)))
        free_room(la, rc_container_of(n, local_room_t, node));
    rc_htab_dispose(&la->rooms);
    it.bucket = 0;
    it.next = NULL;
    while ((n = rc_htab_iter(&la->sessions, &it)))
        session_free(la, rc_container_of(n, local_session_t, node));
    rc_htab_dispose(&la->sessions);
    free(la);
}

static void l_destroy(rc_adapter_t *ad)
{
    local_adapter_t *la = (local_adapter_t *)ad;
    uv_close((uv_handle_t *)&la->sweep, on_timer_closed);
}

static const rc_adapter_ops_t local_ops = {
    .name = "local",
    .room_open = l_room_open,
    .room_close = l_room_close,
    .publish = l_publish,
    .history = l_history,
    .ready = l_ready,
    .session_save = l_session_save,
    .session_take = l_session_take,
    .announce = l_announce,
    .metrics = l_metrics,
    .destroy = l_destroy,
};

rc_adapter_t *rc_local_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              uint32_t history_size, int64_t history_ttl_ms)
{
    local_adapter_t *la = rc_xcalloc(1, sizeof(*la));

    la->base.ops = &local_ops;
    la->base.sink = *sink;
    la->loop = loop;
    la->history_size = history_size;
    la->history_ttl_ms = history_ttl_ms;
    /* Room names and session ids come from clients: a random key keeps
     * them from choosing colliding names. */
    if (getrandom(la->key, sizeof(la->key), GRND_NONBLOCK) !=
        (ssize_t)sizeof(la->key)) {
        la->key[0] = (uint64_t)(uintptr_t)la;
        la->key[1] = uv_hrtime();
    }
    rc_htab_init(&la->rooms);
    rc_htab_init(&la->sessions);
    uv_timer_init(loop, &la->sweep);
    la->sweep.data = la;
    uv_timer_start(&la->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&la->sweep);
    return &la->base;
}

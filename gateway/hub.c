/* Rooms, memberships and the fan-out loop.
 * SPDX-License-Identifier: MIT */
#include "gateway/hub.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* One per (client, room): 88 bytes fill a 96-byte glibc chunk. */
_Static_assert(sizeof(rc_member_t) <= 88, "rc_member_t grew past 88 bytes");

struct rc_hub {
    const rc_hub_ops_t *ops;
    void *ctx;
    rc_hub_limits_t limits;
    uint64_t key[2]; /* hash key, random per process */
    rc_htab_t rooms;
    rc_htab_t members;
};

static void release_held(rc_room_t *r);

rc_hub_t *rc_hub_create(const rc_hub_ops_t *ops, void *ctx,
                        const rc_hub_limits_t *limits)
{
    rc_hub_t *hub = rc_xcalloc(1, sizeof(*hub));

    hub->ops = ops;
    hub->ctx = ctx;
    hub->limits = *limits;
    rc_hash_key_init(hub->key, hub);
    rc_htab_init(&hub->rooms);
    rc_htab_init(&hub->members);
    return hub;
}

void rc_hub_destroy(rc_hub_t *hub)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    if (!hub)
        return;
    /* Members belong to connections, which must have left already; rooms
     * can only exist with members, but free any defensively. */
    while ((n = rc_htab_iter(&hub->rooms, &it))) {
        rc_room_t *r = rc_container_of(n, rc_room_t, _node);
        release_held(r);
        free(r);
    }
    rc_htab_dispose(&hub->rooms);
    rc_htab_dispose(&hub->members);
    free(hub);
}

bool rc_room_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > RC_ROOM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9'))
            continue;
        if (!strchr("_-.:/@", ch) || ch == '\0')
            return false;
    }
    return true;
}

static uint64_t room_hash(const rc_hub_t *hub, const char *name, size_t len)
{
    return rc_hash_bytes(hub->key, name, len);
}

static uint64_t member_hash(const rc_hub_t *hub, const rc_conn_t *c,
                            const rc_room_t *r)
{
    uintptr_t k[2] = {(uintptr_t)c, (uintptr_t)r};
    return rc_hash_bytes(hub->key, k, sizeof(k));
}

static rc_room_t *find_room(const rc_hub_t *hub, const char *name, size_t len)
{
    uint64_t h = room_hash(hub, name, len);
    rc_hnode_t *n;

    for (n = rc_htab_first(&hub->rooms, h); n; n = rc_htab_next(n)) {
        rc_room_t *r = rc_container_of(n, rc_room_t, _node);
        if (r->len == len && memcmp(r->name, name, len) == 0)
            return r;
    }
    return NULL;
}

static rc_member_t *find_member(const rc_hub_t *hub, const rc_conn_t *c,
                                const rc_room_t *r)
{
    uint64_t h = member_hash(hub, c, r);
    rc_hnode_t *n;

    for (n = rc_htab_first(&hub->members, h); n; n = rc_htab_next(n)) {
        rc_member_t *m = rc_container_of(n, rc_member_t, _node);
        if (m->conn == c && m->room == r)
            return m;
    }
    return NULL;
}

rc_room_t *rc_hub_room(const rc_hub_t *hub, const char *name)
{
    return find_room(hub, name, strlen(name));
}

rc_member_t *rc_hub_member(const rc_hub_t *hub, const rc_conn_t *c,
                           const char *name)
{
    rc_room_t *r = rc_hub_room(hub, name);
    return r ? find_member(hub, c, r) : NULL;
}

rc_err_t rc_hub_join(rc_hub_t *hub, rc_conn_t *c, const char *name,
                     rc_member_t **out)
{
    size_t len = strlen(name);
    rc_room_t *r = find_room(hub, name, len);
    rc_member_t *m;
    bool fresh = false;

    if (r && (m = find_member(hub, c, r))) {
        *out = m;
        return RC_EEXIST;
    }
    if (!r) {
        r = rc_xmalloc(sizeof(*r) + len + 1);
        r->_node.hash = room_hash(hub, name, len);
        rc_list_init(&r->members);
        r->nmembers = 0;
        r->_nsyncing = 0;
        r->_held = NULL;
        r->_nheld = r->_capheld = 0;
        r->_held_base = 0;
        r->_heldbytes = 0;
        r->user = NULL;
        r->len = (uint16_t)len;
        memcpy(r->name, name, len + 1);
        rc_htab_insert(&hub->rooms, &r->_node);
        fresh = true;
    }
    m = rc_xmalloc(sizeof(*m));
    m->room = r;
    m->conn = c;
    m->last_seq = 0;
    m->pending = NULL;
    m->_hold_from = 0;
    m->_syncing = 0;
    m->catchup = 0;
    m->_node.hash = member_hash(hub, c, r);
    rc_htab_insert(&hub->members, &m->_node);
    rc_list_push(&r->members, &m->in_room);
    rc_list_push(&c->members, &m->in_conn);
    r->nmembers++;
    c->nrooms++;
    if (fresh && hub->ops->room_open)
        hub->ops->room_open(hub->ctx, r);
    *out = m;
    return RC_OK;
}

static void release_held(rc_room_t *r)
{
    for (uint32_t i = 0; i < r->_nheld; i++)
        rc_msg_unref(r->_held[i]);
    r->_held_base += r->_nheld;
    r->_nheld = 0;
    r->_heldbytes = 0;
    free(r->_held);
    r->_held = NULL;
    r->_capheld = 0;
}

static void sync_stop(rc_room_t *r, rc_member_t *m)
{
    if (!m->_syncing)
        return;
    m->_syncing = 0;
    if (--r->_nsyncing == 0)
        release_held(r);
}

void rc_hub_leave_member(rc_hub_t *hub, rc_member_t *m)
{
    rc_room_t *r = m->room;

    if (m->pending && hub->ops->cancel)
        hub->ops->cancel(hub->ctx, m);
    sync_stop(r, m);
    rc_htab_remove(&hub->members, &m->_node);
    rc_list_remove(&m->in_room);
    rc_list_remove(&m->in_conn);
    m->conn->nrooms--;
    free(m);
    if (--r->nmembers == 0) {
        release_held(r);
        if (hub->ops->room_close)
            hub->ops->room_close(hub->ctx, r);
        rc_htab_remove(&hub->rooms, &r->_node);
        free(r);
    }
}

rc_err_t rc_hub_leave(rc_hub_t *hub, rc_conn_t *c, const char *name)
{
    rc_member_t *m = rc_hub_member(hub, c, name);

    if (!m)
        return RC_ENOENT;
    rc_hub_leave_member(hub, m);
    return RC_OK;
}

void rc_hub_leave_all(rc_hub_t *hub, rc_conn_t *c)
{
    while (!rc_list_empty(&c->members))
        rc_hub_leave_member(
            hub, rc_container_of(c->members.next, rc_member_t, in_conn));
}

/* m's membership of c (a `msg` frame's room), or NULL. */
static rc_member_t *member_of_msg(const rc_hub_t *hub, const rc_conn_t *c,
                                  const rc_msg_t *m)
{
    rc_room_t *r;

    if (!m->seq || !m->room_len)
        return NULL;
    r = find_room(hub, (const char *)rc_msg_bytes(m) + m->room_off,
                  m->room_len);
    return r ? find_member(hub, c, r) : NULL;
}

/* A member's last_seq counts what was queued; a frame that is dropped
 * unwritten was never received, so the member's position goes back to
 * just before it (the snapshot, and a resume, start there). */
static void rewind_for(const rc_hub_t *hub, const rc_conn_t *c,
                       const rc_msg_t *m)
{
    rc_member_t *mb = member_of_msg(hub, c, m);

    if (mb && m->seq <= mb->last_seq)
        mb->last_seq = m->seq - 1;
}

void rc_hub_drop_queue(rc_hub_t *hub, rc_conn_t *c)
{
    for (uint32_t i = 0; i < rc_outq_count(&c->outq); i++)
        rewind_for(hub, c, rc_outq_peek(&c->outq, i));
    rc_outq_pop(&c->outq, rc_outq_count(&c->outq));
}

rc_err_t rc_hub_send(rc_hub_t *hub, rc_conn_t *c, rc_msg_t *m)
{
    bool was_empty = rc_outq_count(&c->outq) == 0;
    rc_err_t err;

    if (c->state == RC_CONN_CLOSING)
        return RC_ECLOSED;
    err = rc_outq_push(&c->outq, rc_msg_ref(m), hub->limits.queue_bytes,
                       hub->limits.queue_msgs);
    if (err != RC_OK) {
        /* Past the bound, or no memory for the ring: either way this
         * client cannot keep up; drop its backlog, never buffer more.
         * Neither m nor the backlog reached it: its rooms' positions go
         * back to the last frame written. */
        rewind_for(hub, c, m);
        rc_hub_drop_queue(hub, c);
        c->state = RC_CONN_CLOSING;
        hub->ops->slow(hub->ctx, c);
        return RC_ELIMIT;
    }
    if (was_empty)
        hub->ops->wake(hub->ctx, c);
    return RC_OK;
}

static void hold(rc_hub_t *hub, rc_room_t *r, rc_msg_t *m)
{
    rc_list_t *it;

    if (r->_nheld == r->_capheld ||
        r->_heldbytes + m->len > RC_HUB_MAX_HELD_BYTES) {
        if (r->_capheld < RC_HUB_MAX_HELD &&
            r->_heldbytes + m->len <= RC_HUB_MAX_HELD_BYTES) {
            r->_capheld = r->_capheld ? r->_capheld * 2 : 16;
            r->_held = rc_xrealloc(r->_held, r->_capheld * sizeof(*r->_held));
        } else {
            /* History is taking too long while the room is busy: the
             * syncing members cannot be served without a gap or unbounded
             * memory, so they are treated as slow consumers. */
            rc_list_foreach(it, &r->members)
            {
                rc_member_t *mb = rc_container_of(it, rc_member_t, in_room);
                if (mb->_syncing) {
                    sync_stop(r, mb);
                    rc_hub_drop_queue(hub, mb->conn);
                    mb->conn->state = RC_CONN_CLOSING;
                    hub->ops->slow(hub->ctx, mb->conn);
                }
            }
            return;
        }
    }
    r->_held[r->_nheld++] = rc_msg_ref(m);
    r->_heldbytes += m->len;
}

void rc_hub_sync_begin(rc_hub_t *hub, rc_member_t *m)
{
    (void)hub;
    if (m->_syncing)
        return;
    m->_syncing = 1;
    m->_hold_from = m->room->_held_base + m->room->_nheld;
    m->room->_nsyncing++;
}

size_t rc_hub_sync_end(rc_hub_t *hub, rc_member_t *m)
{
    rc_room_t *r = m->room;
    size_t n = 0;

    if (!m->_syncing)
        return 0;
    /* uint32 arithmetic: the difference is right across a wrap. */
    for (uint32_t i = m->_hold_from - r->_held_base; i < r->_nheld; i++) {
        rc_msg_t *h = r->_held[i];
        if (h->seq) {
            if (h->seq <= m->last_seq)
                continue;
            m->last_seq = h->seq;
        }
        if (rc_hub_send(hub, m->conn, h) != RC_OK)
            break;
        n++;
    }
    sync_stop(r, m);
    return n;
}

size_t rc_hub_deliver(rc_hub_t *hub, const char *room, rc_msg_t *m)
{
    rc_room_t *r = rc_hub_room(hub, room);

    return r ? rc_hub_deliver_room(hub, r, m) : 0;
}

size_t rc_hub_deliver_room(rc_hub_t *hub, rc_room_t *r, rc_msg_t *m)
{
    rc_list_t *it;
    size_t n = 0;

    if (r->_nsyncing)
        hold(hub, r, m);
    /* The hot loop: one ref and one ring slot per member. rc_hub_send may
     * mark a member closing, but never unlinks it, so the walk is safe. */
    rc_list_foreach(it, &r->members)
    {
        rc_member_t *mb = rc_container_of(it, rc_member_t, in_room);
        if (mb->_syncing || mb->conn->state == RC_CONN_CLOSING ||
            mb->conn->moving)
            continue;
        if (m->seq) {
            if (m->seq <= mb->last_seq)
                continue;
            mb->last_seq = m->seq;
        }
        if (rc_hub_send(hub, mb->conn, m) == RC_OK)
            n++;
    }
    return n;
}

size_t rc_hub_room_count(const rc_hub_t *hub)
{
    return hub->rooms.count;
}

size_t rc_hub_member_count(const rc_hub_t *hub)
{
    return hub->members.count;
}

rc_room_t *rc_hub_room_iter(const rc_hub_t *hub, rc_htab_it_t *it)
{
    rc_hnode_t *n = rc_htab_iter(&hub->rooms, it);
    return n ? rc_container_of(n, rc_room_t, _node) : NULL;
}

/* Catching a room up after its subscription was lost: the one place where
 * the node fills a gap that the backend, not the client, caused (a Redis
 * outage, a failover, a room's slot moving).
 *
 * The adapter calls the sink's resync for an open room once its
 * subscription is confirmed again, before any live message that follows.
 * Every live member then syncs exactly as after a join with `since`: the
 * hub holds live frames for it (hub.c, one bound in frames and bytes, one
 * overflow policy), one history read after the lowest last seq of the
 * members answers, and each member gets what it has not seen (seq above
 * its own last_seq), then the held frames, then live traffic. The seq
 * dedupe is the hub's per-member last_seq; no adapter keeps one.
 *
 * Lifetimes (STYLE rule 16): the read's context is in room->user while it
 * is in flight; a room that closes first cuts it loose (room = NULL), and
 * the reply then only frees it.
 * SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "common/log.h"
#include "common/mem.h"
#include "gateway/hub.h"
#include "gateway/node_internal.h"

typedef struct catchup {
    rc_node_t *n;
    rc_room_t *room; /* NULL once the room closed */
    uint64_t since;
    bool again; /* another resync came while this one was in flight */
} catchup_t;

static void on_history(void *arg, rc_err_t err, uint64_t latest, bool recovered,
                       rc_msg_t *const *msgs, size_t nmsgs);

/* Ends the sync of every member taking part: with the history when there
 * is one, else with what was held (the next resync covers the rest). */
static size_t finish(rc_node_t *n, rc_room_t *room, rc_msg_t *const *msgs,
                     size_t nmsgs)
{
    rc_list_t *it, *next;
    size_t members = 0;

    /* rc__session_replay may mark a member closing but never unlinks it;
     * next is taken first all the same. */
    for (it = room->members.next; it != &room->members; it = next) {
        rc_member_t *mb = rc_container_of(it, rc_member_t, in_room);
        next = it->next;
        if (!mb->catchup)
            continue;
        mb->catchup = 0;
        rc__session_replay(n, mb, mb->last_seq, msgs, nmsgs);
        members++;
    }
    return members;
}

static void start(rc_node_t *n, rc_room_t *room)
{
    catchup_t *cu;
    rc_list_t *it;
    uint64_t since = UINT64_MAX;
    size_t members = 0;

    rc_list_foreach(it, &room->members)
    {
        rc_member_t *mb = rc_container_of(it, rc_member_t, in_room);
        /* A member still syncing waits on its own join or resume read,
         * which answers from after the new subscription; one closing
         * needs nothing more. */
        if (mb->_syncing || mb->conn->state == RC_CONN_CLOSING)
            continue;
        rc_hub_sync_begin(n->hub, mb);
        mb->catchup = 1;
        if (mb->last_seq < since)
            since = mb->last_seq;
        members++;
    }
    if (!members)
        return;
    cu = rc_xcalloc(1, sizeof(*cu));
    cu->n = n;
    cu->room = room;
    cu->since = since;
    room->user = cu;
    n->metrics.catchups++;
    if (n->adapter->ops->history(n->adapter, room->name, true, since,
                                 on_history, cu) != RC_OK) {
        /* The backend went away again: deliver what was held; its next
         * resync comes when the room is subscribed again. */
        room->user = NULL;
        free(cu);
        finish(n, room, NULL, 0);
        n->metrics.catchup_failures++;
    }
}

static void on_history(void *arg, rc_err_t err, uint64_t latest, bool recovered,
                       rc_msg_t *const *msgs, size_t nmsgs)
{
    catchup_t *cu = arg;
    rc_node_t *n = cu->n;
    rc_room_t *room = cu->room;
    bool again = cu->again;

    (void)latest;
    free(cu);
    if (!room)
        return; /* every member left meanwhile */
    room->user = NULL;
    if (err != RC_OK) {
        n->metrics.catchup_failures++;
        finish(n, room, NULL, 0);
        return;
    }
    if (!recovered) {
        /* The room's history no longer holds all of the outage: members
         * see a seq gap, as a client joining with an old since would see
         * recovered: false. */
        n->metrics.catchup_gaps++;
        rc_log(RC_LOG_WARN, "catchup_gap", "room=%s", room->name);
    }
    n->metrics.catchup_messages += nmsgs;
    finish(n, room, msgs, nmsgs);
    if (again)
        start(n, room);
}

void rc__catchup_resync(void *ctx, void *token)
{
    rc_node_t *n = ctx;
    rc_room_t *room = token;

    if (room->user) {
        ((catchup_t *)room->user)->again = true;
        return;
    }
    start(n, room);
}

void rc__catchup_room_closed(rc_room_t *room)
{
    if (room->user) {
        ((catchup_t *)room->user)->room = NULL;
        room->user = NULL;
    }
}

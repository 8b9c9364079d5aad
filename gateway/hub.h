/* The room registry and the fan-out loop.
 *
 * A room exists while it has local members. A membership sits on two
 * intrusive lists (the room's and the connection's) and in one hash keyed by
 * (connection, room), so join, leave and "is it a member" are O(1), and a
 * closing connection leaves all its rooms in O(its rooms).
 *
 * Fan-out: rc_hub_deliver() pushes one ref of a shared frame onto each
 * member's queue; no per-recipient copy or allocation while a queue is short.
 * Loop-only, not reentrant from its own callbacks except as documented.
 * SPDX-License-Identifier: MIT */
#ifndef RC_HUB_H
#define RC_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/htab.h"
#include "common/list.h"
#include "gateway/conn.h"
#include "common/msg.h"

#define RC_ROOM_MAX 128 /* bytes of a room name */

typedef struct rc_hub rc_hub_t;

/* Live frames a room holds while members sync, by count and by bytes;
 * past either, the syncing members are closed as slow consumers (4009)
 * and catch up again when they resume: no gap, no unbounded memory. */
#define RC_HUB_MAX_HELD 65536
#define RC_HUB_MAX_HELD_BYTES (32u * 1024 * 1024)

typedef struct rc_room {
    rc_hnode_t _node;  /* in the hub's room table */
    rc_list_t members; /* rc_member.in_room */
    uint32_t nmembers;
    uint32_t _nsyncing; /* members waiting for their history */
    rc_msg_t **_held;   /* live frames that arrived meanwhile, in order */
    uint32_t _nheld, _capheld;
    uint32_t _held_base; /* absolute index of _held[0] (wraps) */
    uint32_t _heldbytes; /* frame bytes in _held */
    void *user;          /* the node's: its catch-up in flight, or NULL */
    uint16_t len;
    char name[]; /* NUL-terminated */
} rc_room_t;

typedef struct rc_member {
    rc_hnode_t _node;  /* in the hub's membership table */
    rc_list_t in_room; /* rc_room.members */
    rc_list_t in_conn; /* rc_conn.members */
    rc_room_t *room;
    rc_conn_t *conn;
    uint64_t last_seq;   /* last durable seq queued to this client here
                            (written, once its queue is dropped) */
    void *pending;       /* the node's op waiting for history, or NULL */
    uint32_t _hold_from; /* while syncing: first held frame it needs
                            (absolute, wraps like _held_base) */
    uint8_t _syncing;
    uint8_t catchup; /* the node's: part of the room's catch-up in flight */
} rc_member_t;

typedef struct rc_hub_ops {
    /* c's queue went from empty to non-empty: have it written (the node
     * lists it for its end-of-iteration flush; WRITEABLE only when the
     * socket is full). */
    void (*wake)(void *ctx, rc_conn_t *c);
    /* c passed its queue bound: the hub has emptied its queue; the callee
     * closes it (4009). Must not free c now (STYLE rule 7). */
    void (*slow)(void *ctx, rc_conn_t *c);
    /* The first local member joined / the last one left. room is borrowed:
     * valid from room_open until room_close returns. */
    void (*room_open)(void *ctx, rc_room_t *room);
    void (*room_close)(void *ctx, rc_room_t *room);
    /* A member with a pending op (m->pending) is leaving: forget it. */
    void (*cancel)(void *ctx, rc_member_t *m);
} rc_hub_ops_t;

typedef struct rc_hub_limits {
    uint64_t queue_bytes;
    uint32_t queue_msgs;
} rc_hub_limits_t;

/* ops is borrowed and must outlive the hub; ctx is passed back. */
rc_hub_t *rc_hub_create(const rc_hub_ops_t *ops, void *ctx,
                        const rc_hub_limits_t *limits);
/* The hub must be empty of members (every conn left). NULL is a no-op. */
void rc_hub_destroy(rc_hub_t *hub);

/* Room name rules of the contract: 1..128 bytes of A-Z a-z 0-9 _ - . : / @ */
bool rc_room_name_valid(const char *name, size_t len);

/* Adds c to room (created when new). RC_EEXIST when already a member (then
 * *out is that membership). *out is borrowed, valid until leave. name must
 * be valid (rc_room_name_valid). Does not check c's room cap. */
RC_MUST_CHECK rc_err_t rc_hub_join(rc_hub_t *hub, rc_conn_t *c,
                                   const char *name, rc_member_t **out);
/* RC_ENOENT when c is not in room. */
RC_MUST_CHECK rc_err_t rc_hub_leave(rc_hub_t *hub, rc_conn_t *c,
                                    const char *name);
void rc_hub_leave_member(rc_hub_t *hub, rc_member_t *m);
void rc_hub_leave_all(rc_hub_t *hub, rc_conn_t *c);

rc_member_t *rc_hub_member(const rc_hub_t *hub, const rc_conn_t *c,
                           const char *name);
rc_room_t *rc_hub_room(const rc_hub_t *hub, const char *name);

/* Queue m (borrowed; each recipient takes a ref) to every member of room.
 * A durable frame (m->seq > 0) is skipped for members that already have that
 * seq (no duplicates at the history/live seam). Members that pass their
 * queue bound are reported with ops->slow. Returns the number queued. */
size_t rc_hub_deliver(rc_hub_t *hub, const char *room, rc_msg_t *m);
/* The same for a room already in hand (the adapter's token): no lookup. */
size_t rc_hub_deliver_room(rc_hub_t *hub, rc_room_t *room, rc_msg_t *m);

/* Queue m (borrowed) to one connection, with the same bound and callbacks.
 * RC_ELIMIT when that made it a slow consumer. */
RC_MUST_CHECK rc_err_t rc_hub_send(rc_hub_t *hub, rc_conn_t *c, rc_msg_t *m);

/* Empty c's queue unwritten (slow consumer, dead socket): each of its
 * rooms' last_seq goes back to just before the first dropped frame of that
 * room, so that last_seq is what was written and a snapshot taken after
 * (a resume) starts there. */
void rc_hub_drop_queue(rc_hub_t *hub, rc_conn_t *c);

/* The seam between history and live traffic. While a member syncs, live
 * frames for its room are not queued to it but held by the room (one ref
 * each, shared by every syncing member). rc_hub_sync_end() then queues the
 * held frames it has not seen (seq > last_seq; ephemeral ones that arrived
 * after its sync began), in arrival order, and makes it live. The caller
 * queues the reply and history in between. */
void rc_hub_sync_begin(rc_hub_t *hub, rc_member_t *m);
/* Returns the number of frames queued. */
size_t rc_hub_sync_end(rc_hub_t *hub, rc_member_t *m);

size_t rc_hub_room_count(const rc_hub_t *hub);
size_t rc_hub_member_count(const rc_hub_t *hub);

/* Every room: start with it = {0, NULL}; see rc_htab_iter. */
rc_room_t *rc_hub_room_iter(const rc_hub_t *hub, rc_htab_it_t *it);

#endif /* RC_HUB_H */

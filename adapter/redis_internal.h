/* The Redis adapter's shared state, seen only by adapter/redis*.c: the
 * adapter struct, a room's subscription state, a history request, and the
 * rc__redis_* helpers each file gives the others.
 *
 *   redis.c          create/destroy, the ops table, metrics
 *   redis_link.c     the two hiredis links: DNS, connect, AUTH, SELECT,
 *                    library load, up/down, backoff, the tick (command
 *                    timeout, probe, registry refresh, delayed unsubscribe)
 *   redis_sub.c      the room table, the subscription state machine and its
 *                    batches, channel messages -> frames -> sink.deliver
 *   redis_history.c  history reads (joins and catch-up after an outage),
 *                    durable publish
 *   redis_session.c  session save/take, the registry entry, this node's
 *                    control and probe channels
 *   redis_lib.c      the function library (adapter/roomcast.lua) for a
 *                    prefix and sizes
 *
 * Everything here runs on the node's loop. A hiredis reply callback may
 * come with a NULL reply (the link is being freed: teardown()); every one
 * handles that first.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_REDIS_INTERNAL_H
#define RC_ADAPTER_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "adapter/adapter.h"
#include "common/htab.h"
#include "common/list.h"
#include "common/msg.h"
#include "common/redis_url.h"

#define RC_REDIS_TICK_MS 250
#define RC_REDIS_PROBE_IDLE_MS 1000  /* probe when the sub link was quiet */
#define RC_REDIS_PROBE_DEAD_MS 3500  /* declare it dead after this silence */
#define RC_REDIS_CMD_TIMEOUT_MS 5000 /* a command unanswered: kill the link */
#define RC_REDIS_REGISTRY_MS 2000    /* registry entry refresh */
#define RC_REDIS_REGISTRY_TTL_MS 10000
#define RC_REDIS_BACKOFF_MIN_MS 100
#define RC_REDIS_BACKOFF_MAX_MS 5000
#define RC_REDIS_SUB_BATCH 256  /* channels per SUBSCRIBE/UNSUBSCRIBE */
#define RC_REDIS_MAX_HELD 65536 /* live frames held during one catch-up */

typedef enum link_state {
    LINK_DOWN = 0,
    LINK_CONNECTING,
    LINK_UP,
} link_state_t;

typedef enum sub_state {
    SUB_NONE = 0, /* not subscribed, nothing in flight */
    SUB_PENDING,  /* SUBSCRIBE sent, not confirmed */
    SUB_ON,       /* confirmed: traffic flows */
    SUB_LEAVING,  /* UNSUBSCRIBE sent, not confirmed */
} sub_state_t;

/* A room the adapter knows: open (token set), or still subscribed, or with
 * requests or a catch-up in flight. Freed by rc__redis_room_maybe_free()
 * once none of those holds. */
typedef struct rroom {
    rc_hnode_t node;    /* redis_adapter.rooms */
    rc_list_t in_batch; /* subscribe or unsubscribe batch */
    rc_list_t waiters;  /* hist_req_t waiting for SUB_ON */
    uint64_t last_seq;  /* last durable seq delivered to the node */
    uint64_t known_seq; /* latest seq a history read reported */
    uint64_t unsub_at;  /* loop ms; 0 when not scheduled */
    rc_msg_t **held;    /* live frames held during a catch-up */
    uint32_t nheld, capheld;
    void *token;      /* the node's room while it has members, or NULL */
    uint8_t state;    /* sub_state_t */
    uint8_t catching; /* fetching what a Redis outage made it miss */
    char name[];
} rroom_t;

typedef struct redis_adapter redis_adapter_t;

/* A history request, from a join (cb set) or from a catch-up. */
typedef struct hist_req {
    rc_list_t link; /* rroom.waiters while waiting */
    redis_adapter_t *r;
    rroom_t *room;
    bool has_since, catchup;
    uint64_t since;
    rc_adapter_history_cb cb;
    void *arg;
} hist_req_t;

struct redis_adapter {
    rc_adapter_t base;
    uv_loop_t *loop; /* borrowed */
    rc_redis_url_t url;
    char *prefix, *node_id, *library; /* owned */
    char *ch_ctl, *ch_probe, *k_node; /* owned: this node's names */

    redisAsyncContext *cmd, *sub; /* NULL while down */
    link_state_t state;
    int cmd_connected, sub_connected, lib_loaded, ctl_subscribed;
    uv_getaddrinfo_t gai;
    int gai_busy;
    uv_timer_t tick, retry, flush;
    uint32_t backoff_ms;
    /* uv_now() of the last sub link traffic, probe, registry write, and of
     * the command link's last progress */
    uint64_t last_sub_rx, last_probe, last_registry, progress_ms;
    uint32_t inflight; /* commands sent and not answered */
    int64_t unsub_delay;
    int closing, handles;

    uint64_t key[2]; /* SipHash key of the room table */
    rc_htab_t rooms; /* rroom_t */
    rc_list_t sub_batch, unsub_batch;

    /* metrics */
    uint64_t m_received, m_durable, m_ephemeral, m_bad, m_too_big;
    uint64_t m_reconnects, m_resubscribed, m_recovered, m_probe_fail;
    uint64_t m_subscribed; /* gauge */
    uint64_t m_publish_err;
    uint32_t max_publish;
};

/* ---- redis_link.c */

/* Starts the tick and the first connect. */
void rc__redis_link_start(redis_adapter_t *r);
/* Shutdown: lets a connected command link send what is queued, then drops
 * both links (teardown). r->closing must be set. */
void rc__redis_link_close(redis_adapter_t *r);
/* Drops both links (pending replies get NULL), fails waiting requests,
 * tells the node when it was up, and schedules a reconnect. why is
 * borrowed for the call. May call back into the node (history and state
 * callbacks). */
void rc__redis_teardown(redis_adapter_t *r, const char *why);
/* Goes up when both links, the library and the control channel are ready:
 * resubscribes rooms, starts their catch-up, announces. */
void rc__redis_maybe_up(redis_adapter_t *r);
/* Queues a command on the command link; cb gets a NULL reply when the link
 * dies first. RC_EBACKEND (cb never called) when the link is not there.
 * argv/lens are borrowed for the call. Not RC_MUST_CHECK: a command whose
 * reply nobody waits for (registry, probe) may be dropped while down. */
rc_err_t rc__redis_cmd(redis_adapter_t *r, redisCallbackFn *cb, void *pd,
                       int argc, const char **argv, const size_t *lens);
/* Every reply callback of a command sent with rc__redis_cmd() calls this
 * once: the command-timeout clock sees progress. */
void rc__redis_cmd_done(redis_adapter_t *r);
/* A reply nobody waits for: logs an error reply; pd is a static string
 * naming the command (or NULL). */
void rc__redis_on_void_reply(redisAsyncContext *ac, void *reply, void *pd);

/* ---- redis_sub.c */

/* The room of that name, or NULL; create adds it (never NULL then). */
rroom_t *rc__redis_room_find(redis_adapter_t *r, const char *name, size_t len,
                             bool create);
/* Frees rm when nothing holds it any more (see rroom_t). */
void rc__redis_room_maybe_free(redis_adapter_t *r, rroom_t *rm);
void rc__redis_release_held(rroom_t *rm);
/* One frame for rm: held while it catches up, else dropped when its seq
 * was delivered already, else handed to the node's deliver. m borrowed. */
void rc__redis_deliver(redis_adapter_t *r, rroom_t *rm, rc_msg_t *m);
/* Parses "seq|t_us|data" (s: len bytes); *data points into s. */
bool rc__redis_parse_entry(const char *s, size_t len, uint64_t *seq,
                           int64_t *t_us, const char **data, size_t *dlen);
/* The frame for a message from Redis (data borrowed), or NULL when it is
 * dropped (over max_publish, not JSON: counted). Owned ref. */
rc_msg_t *rc__redis_frame(redis_adapter_t *r, const char *room, uint64_t seq,
                          int64_t t_us, const char *data, size_t dlen);
/* The subscription link's reply callback (messages and confirmations). */
void rc__redis_on_sub_reply(redisAsyncContext *ac, void *reply, void *pd);
/* Sends the pending SUBSCRIBE/UNSUBSCRIBE batches (when up). */
void rc__redis_flush_batches(redis_adapter_t *r);
/* Links up: every open room goes into the subscribe batch and gets a
 * catch-up queued behind its subscription. */
void rc__redis_rooms_up(redis_adapter_t *r);
/* Links down: every room back to SUB_NONE, its waiters failed, what a
 * catch-up held delivered. May call back into the node. */
void rc__redis_rooms_down(redis_adapter_t *r);
/* The tick: rooms whose last member left unsub_delay ago are unsubscribed. */
void rc__redis_rooms_sweep(redis_adapter_t *r, uint64_t now);
/* Destroy: frees every room. */
void rc__redis_rooms_free(redis_adapter_t *r);
void rc__redis_room_open(rc_adapter_t *ad, const char *room, void *token);
void rc__redis_room_close(rc_adapter_t *ad, const char *room);

/* ---- redis_history.c */

/* Sends h (its room is SUB_ON); on failure fails it and frees it. */
void rc__redis_history_issue(redis_adapter_t *r, hist_req_t *h);
/* Fails every request waiting on rm (detached from rm first); clears a
 * catch-up. Calls the node's history callbacks. */
void rc__redis_fail_waiters(redis_adapter_t *r, rroom_t *rm);
/* Queues rm's catch-up read behind its subscription (no-op when one is in
 * flight). */
void rc__redis_catchup_begin(redis_adapter_t *r, rroom_t *rm);
RC_MUST_CHECK rc_err_t rc__redis_publish(rc_adapter_t *ad, const char *room,
                                         const char *data, size_t len,
                                         rc_adapter_publish_cb cb, void *arg);
RC_MUST_CHECK rc_err_t rc__redis_history(rc_adapter_t *ad, const char *room,
                                         bool has_since, uint64_t since,
                                         rc_adapter_history_cb cb, void *arg);

/* ---- redis_session.c */

void rc__redis_session_save(rc_adapter_t *ad, const char *session,
                            const char *json, size_t len, int64_t ttl_ms,
                            rc_adapter_done_cb cb, void *arg);
RC_MUST_CHECK rc_err_t rc__redis_session_take(rc_adapter_t *ad,
                                              const char *session,
                                              int64_t ttl_ms,
                                              rc_adapter_session_cb cb,
                                              void *arg);
/* Writes this node's registry entry (when up). */
void rc__redis_announce(rc_adapter_t *ad);
/* Shutdown: deletes the registry entry at once (when up). */
void rc__redis_registry_leave(redis_adapter_t *r);
/* A message on this node's own control or probe channel: handled, true;
 * any other channel: false. Strings borrowed for the call. */
bool rc__redis_node_message(redis_adapter_t *r, const char *ch, size_t chlen,
                            const char *payload, size_t plen);

/* ---- redis_lib.c */

/* The function library (adapter/roomcast.lua) with prefix and sizes filled
 * in: owned (free()), or NULL when prefix fails rc_redis_prefix_ok(). */
char *rc__redis_library(const char *prefix, uint32_t history_size,
                        int64_t history_ttl_ms, uint32_t max_publish);

#endif /* RC_ADAPTER_REDIS_INTERNAL_H */

/* The Redis adapter's shared state, seen only by adapter/redis*.c: the
 * adapter struct, a room's subscription state, a request, and the
 * rc__redis_* helpers each file gives the others.
 *
 *   redis.c          create/destroy, the ops table, metrics
 *   redis_link.c     the command link (hiredis async: DNS, connect, AUTH,
 *                    SELECT, envelope key, library load) and the
 *                    subscription link (adapter/sublink.c), up/down,
 *                    backoff, the tick (command timeout, PING probe,
 *                    registry refresh, delayed unsubscribe)
 *   redis_sub.c      the room table, the subscription state machine and its
 *                    batches, resync after a lost subscription, channel
 *                    messages -> check -> frame -> deliver (the node holds
 *                    and dedupes: gateway/catchup.c)
 *   redis_history.c  history reads, durable publish (and WAIT for
 *                    replicas), the envelope's MAC check
 *   redis_session.c  session save/take, the registry entry, this node's
 *                    control channel
 *   redis_lib.c      the function library (adapter/roomcast.lua) for a
 *                    prefix, sizes and the envelope key
 *   redis_cluster.c  redis-cluster://: commands routed by key
 *                    (adapter/cluster.c), one subscription link per
 *                    master, SSUBSCRIBE by slot, resubscribe and resync
 *                    when a slot moves or a master fails; redis_link.c
 *                    hands over to it when r->cl is set
 *
 * Lifetimes (STYLE rule 16): a reply never finds its owner freed.
 * - Requests (rreq_t) own what they touch. A history request holds a
 *   reference on its room (rroom.refs): a room is freed only when no
 *   request refers to it, it has no token, no subscription and is in no
 *   batch. Every other request holds only the adapter pointer.
 * - The op callback is owed once (rreq.owed): whoever calls it (a reply, a
 *   teardown, destroy) clears owed and unlinks the request first. The
 *   struct is freed by the last hiredis callback of the commands it sent
 *   (rreq.hold; hiredis calls each once, with NULL when the link is freed)
 *   or, never sent, by whoever failed it.
 * - The adapter outlives every hiredis callback: destroy fails every owed
 *   request at once (so no op callback runs after rc_adapter_destroy()
 *   returns), lets the command link flush for at most
 *   RC_REDIS_CLOSE_GRACE_MS, and frees itself only once its timers are
 *   closed and the command link is gone. The subscription link
 *   (sublink.c) calls nothing after rc_sublink_destroy().
 * - A teardown that fails waiters first moves every waiter of every room
 *   onto one detached list, then calls the callbacks: they may close and
 *   free rooms, never the list it walks.
 *
 * Everything here runs on the node's loop. A hiredis reply callback may
 * come with a NULL reply (the link is being freed); every one handles that
 * first.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_REDIS_INTERNAL_H
#define RC_ADAPTER_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "adapter/adapter.h"
#include "adapter/sublink.h"
#include "common/htab.h"
#include "common/list.h"
#include "common/msg.h"
#include "common/redis_url.h"

typedef struct rc_sentinel rc_sentinel_t; /* adapter/sentinel.h */

#define RC_REDIS_TICK_MS 250
#define RC_REDIS_PROBE_IDLE_MS 1000  /* PING when the sub link was quiet */
#define RC_REDIS_PROBE_DEAD_MS 3500  /* declare it dead after this silence */
#define RC_REDIS_CMD_TIMEOUT_MS 5000 /* a command unanswered: kill the link */
#define RC_REDIS_CLOSE_GRACE_MS 1000 /* destroy: the command link flushes */
#define RC_REDIS_REGISTRY_MS 2000    /* registry entry refresh */
#define RC_REDIS_REGISTRY_TTL_MS 10000
#define RC_REDIS_BACKOFF_MIN_MS 100
#define RC_REDIS_BACKOFF_MAX_MS 5000
#define RC_REDIS_SUB_BATCH 256 /* channels per SUBSCRIBE/UNSUBSCRIBE */
/* The largest seq a client may see: JavaScript's Number.MAX_SAFE_INTEGER,
 * so every seq is exact in a JS client (docs/REDIS.md). */
#define RC_REDIS_MAX_SEQ 9007199254740991ULL
#define RC_REDIS_ENVKEY_HEX 64 /* the envelope key: 32 random bytes, hex */
#define RC_REDIS_MAC_HEX 32    /* hex digits of the MAC in an envelope */

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

/* A room the adapter knows: open (token set), or still subscribed, or
 * referred to by a request, or in a batch. Freed by
 * rc__redis_room_maybe_free() once none of those holds. */
typedef struct rroom {
    rc_hnode_t node;         /* redis_adapter.rooms */
    rc_list_t in_batch;      /* subscribe or unsubscribe batch */
    rc_list_t waiters;       /* rreq_t (history) waiting for SUB_ON */
    uint32_t refs;           /* requests pointing here (rreq.room) */
    uint64_t unsub_at;       /* loop ms; 0 when not scheduled */
    uint64_t retry_at;       /* loop ms: resubscribe after a refusal; 0: none */
    uint32_t sub_backoff_ms; /* doubles with each refused SUBSCRIBE */
    void *token;             /* the node's room while it has members, or NULL */
    uint8_t state;           /* sub_state_t */
    /* Cluster: the master link (redis_cluster.c's cnode) the room is, or
     * is being, (un)subscribed on; NULL otherwise. */
    void *slink;
    /* The open room's subscription was lost (teardown, or Redis dropped
     * it): its next confirmation calls the sink's resync first. */
    uint8_t lost;
    char name[];
} rroom_t;

typedef struct redis_adapter redis_adapter_t;

typedef enum rreq_kind {
    REQ_HISTORY = 0, /* a history read (a join's, or the node's catch-up) */
    REQ_PUBLISH,
    REQ_TAKE,
    REQ_SAVE,
} rreq_kind_t;

/* One request whose callback is owed (see Lifetimes above). */
typedef struct rreq {
    rc_list_t link; /* rroom.waiters (history not sent yet), or
                       redis_adapter.owed (sent, callback owed) */
    redis_adapter_t *r;
    rroom_t *room; /* history: holds a ref (rroom.refs) */
    uint8_t kind;  /* rreq_kind_t */
    bool owed;     /* the op's callback is still to be called */
    bool has_since;
    uint8_t hold; /* hiredis callbacks still to come */
    rc_err_t err; /* publish: the FCALL's outcome, until WAIT answers */
    uint64_t since, seq;
    uint64_t since_ms; /* history: loop ms it was made (waiting bound) */
    union {
        rc_adapter_history_cb hist;
        rc_adapter_publish_cb pub;
        rc_adapter_session_cb take;
        rc_adapter_done_cb save;
    } cb;
    void *arg;
} rreq_t;

struct redis_adapter {
    rc_adapter_t base;
    uv_loop_t *loop; /* borrowed */
    rc_redis_url_t url;
    /* redis-sentinel://: the master finder (owned), and the master it last
     * confirmed (master_ip "" while none is). Both links connect to
     * master_ip:link_port; for redis:// link_port is the URL's port. */
    rc_sentinel_t *sentinel;
    char master_ip[64];
    int link_port;
    int wrong_role;   /* a READONLY/LOADING reply: reconnect at the tick */
    int sub_draining; /* teardown is reading what the sublink holds */
    int in_finder;    /* inside on_master/on_lost: no recheck from teardown */
    char *prefix, *node_id, *library; /* owned */
    char *ch_ctl, *k_node, *k_envkey; /* owned: this node's names */
    uint32_t history_size, max_publish;
    int64_t history_ttl_ms;
    uint32_t wait_replicas;
    int64_t wait_timeout_ms;

    struct rcl *cl;         /* redis-cluster:// (redis_cluster.c), or NULL */
    redisAsyncContext *cmd; /* NULL while down; always NULL on Cluster */
    /* destroy: the command link flushing its last commands, or NULL */
    redisAsyncContext *draining;
    int grace_armed;     /* the retry timer bounds draining */
    uint64_t connect_ms; /* uv_now() when the connect began */
    rc_sublink_t *sub;   /* NULL while down */
    link_state_t state;
    int cmd_connected, sub_connected, lib_loaded, ctl_subscribed;
    uv_getaddrinfo_t gai;
    int gai_busy;
    uv_timer_t tick, retry, flush;
    uint32_t backoff_ms;
    /* uv_now() of the last sub link traffic, PING, registry write, and of
     * the command link's last progress */
    uint64_t last_sub_rx, last_probe, last_registry, progress_ms;
    uint32_t inflight; /* command link: commands sent and not answered */
    int64_t unsub_delay;
    int closing, handles;
    rc_list_t owed; /* rreq_t sent whose callback is owed */
    /* The envelope key (32 bytes, as 64 hex digits; "" until read from
     * Redis): durable envelopes carry a MAC under it. */
    char envkey[RC_REDIS_ENVKEY_HEX + 1];

    uint64_t key[2]; /* SipHash key of the room table */
    rc_htab_t rooms; /* rroom_t */
    rc_list_t sub_batch, unsub_batch;

    /* metrics */
    uint64_t m_received, m_durable, m_ephemeral, m_bad, m_too_big;
    uint64_t m_reconnects, m_resubscribed, m_resyncs, m_probe_fail;
    uint64_t m_subscribed; /* gauge */
    uint64_t m_publish_err, m_forged, m_bad_seq, m_sub_refused;
    uint64_t m_repl_fail;
};

/* Moves every node of src to the end of dst, in order (src ends empty). */
static inline void rc__redis_list_move(rc_list_t *dst, rc_list_t *src)
{
    while (!rc_list_empty(src)) {
        rc_list_t *n = src->next;
        rc_list_remove(n);
        rc_list_push(dst, n);
    }
}

/* ---- redis_link.c: Sentinel */

/* redis-sentinel://: starts the master finder (r->sentinel); RC_OK and
 * nothing to do for redis://. */
RC_MUST_CHECK rc_err_t rc__redis_sentinel_start(redis_adapter_t *r);
/* An error reply on the command link: READONLY or LOADING means the
 * server is no (longer a usable) master; the link is dropped at the next
 * tick and the sentinels are asked again. */
void rc__redis_reply_error(redis_adapter_t *r, const char *err);

/* ---- redis.c */

/* The close callback of the adapter's timers: the last release frees r. */
void rc__redis_on_handle_closed(uv_handle_t *h);
/* Drops one of destroy's holds on r (r->handles); the last frees r. */
void rc__redis_release(redis_adapter_t *r);

/* ---- redis_link.c */

/* Starts the tick and the first connect. */
void rc__redis_link_start(redis_adapter_t *r);
/* Shutdown: lets a connected command link send what is queued (at most
 * RC_REDIS_CLOSE_GRACE_MS, then it is freed), drops the subscription link,
 * fails what waits. r->closing must be set. Returns true when the command
 * link is still flushing: the retry timer then stays open until it is
 * gone, and its close frees the adapter. */
bool rc__redis_link_close(redis_adapter_t *r);
/* Drops both links (pending replies get NULL), fails waiting requests,
 * tells the node when it was up, and schedules a reconnect. why is
 * borrowed for the call. May call back into the node (history and state
 * callbacks). */
void rc__redis_teardown(redis_adapter_t *r, const char *why);
/* Goes up when both links, the library and the control channel are ready:
 * resubscribes rooms, announces. */
void rc__redis_maybe_up(redis_adapter_t *r);
/* Queues a command on the command link; cb gets a NULL reply when the link
 * dies first. RC_EBACKEND (cb never called) when the link is not there.
 * argv/lens are borrowed for the call. Not RC_MUST_CHECK: a command whose
 * reply nobody waits for (registry) may be dropped while down. */
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
/* A request's reference on rm: taken when it is made, dropped (maybe
 * freeing rm) when the request is freed. */
void rc__redis_room_ref(rroom_t *rm);
void rc__redis_room_unref(redis_adapter_t *r, rroom_t *rm);
/* Parses "seq|t_us|data" (s: len bytes); *data points into s. A seq that
 * is not a plain positive decimal at most RC_REDIS_MAX_SEQ fails. */
bool rc__redis_parse_entry(const char *s, size_t len, uint64_t *seq,
                           int64_t *t_us, const char **data, size_t *dlen);
/* Reads a seq Redis reported (a history reply's latest or epoch): a plain
 * decimal in [0, RC_REDIS_MAX_SEQ]; false otherwise. */
bool rc__redis_parse_seq(const char *s, size_t len, uint64_t *seq);
/* A seq element of a reply (an integer or a decimal string) in
 * [0, RC_REDIS_MAX_SEQ]. */
bool rc__redis_reply_seq(const redisReply *e, uint64_t *seq);
/* The head of a roomcast_history reply [latest, epoch, entries...]:
 * true with both seqs when rep is such an array (epoch may be a
 * non-string, read as 0). Pure, like the two below: fuzzed. */
bool rc__redis_history_head(const redisReply *rep, uint64_t *latest,
                            uint64_t *epoch);
/* Whether a history read after since that returned first as its oldest
 * entry (0: none) holds everything after since. */
bool rc__redis_history_recovered(uint64_t since, uint64_t latest,
                                 uint64_t epoch, uint64_t first);
/* The frame for a message from Redis (data borrowed), or NULL when it is
 * dropped (over max_publish, not JSON: counted). Owned ref. */
rc_msg_t *rc__redis_frame(redis_adapter_t *r, const char *room, uint64_t seq,
                          int64_t t_us, const char *data, size_t dlen);
/* The subscription link's callbacks (adapter/sublink.h); ctx is r. */
void rc__redis_on_message(void *ctx, const char *ch, size_t chlen,
                          const char *payload, size_t plen, bool sharded);
void rc__redis_on_subscribed(void *ctx, const char *ch, size_t len,
                             bool sharded, long long count);
void rc__redis_on_unsubscribed(void *ctx, const char *ch, size_t len,
                               bool sharded, bool solicited);
void rc__redis_on_sub_error(void *ctx, const char *text, size_t len,
                            const rc_sublink_cmd_t *cmd);
/* Sends the pending SUBSCRIBE/UNSUBSCRIBE batches (when up). */
void rc__redis_flush_batches(redis_adapter_t *r);
/* Links up: every open room goes into the subscribe batch (its
 * confirmation calls resync). */
void rc__redis_rooms_up(redis_adapter_t *r);
/* Links down: every room back to SUB_NONE (an open one marked lost), its
 * waiters failed (after the table walk, from a detached list). May call
 * back into the node. */
void rc__redis_rooms_down(redis_adapter_t *r);
/* The tick: rooms whose last member left unsub_delay ago are unsubscribed;
 * rooms whose SUBSCRIBE was refused are retried after their backoff. */
void rc__redis_rooms_sweep(redis_adapter_t *r, uint64_t now);
/* Destroy: frees every room. */
void rc__redis_rooms_free(redis_adapter_t *r);
void rc__redis_room_open(rc_adapter_t *ad, const char *room, void *token);
void rc__redis_room_close(rc_adapter_t *ad, const char *room);

/* ---- redis_history.c */

/* A new request of kind (zeroed, owed, hold 0, link initialised). */
rreq_t *rc__redis_req_new(redis_adapter_t *r, rreq_kind_t kind);
/* Calls q's op callback with err when it is still owed (then unlinks q);
 * never frees q. */
void rc__redis_req_fail(rreq_t *q, rc_err_t err);
/* Frees q (dropping its room reference). */
void rc__redis_req_free(rreq_t *q);
/* Destroy: calls every owed callback (RC_ECLOSED), from a detached list. */
void rc__redis_fail_owed(redis_adapter_t *r);
/* Sends h (its room is SUB_ON); on failure fails it and frees it. */
void rc__redis_history_issue(redis_adapter_t *r, rreq_t *h);
/* Fails every request on list (detached by the caller) with RC_EBACKEND
 * and frees it. Calls the node's history callbacks. */
void rc__redis_fail_list(redis_adapter_t *r, rc_list_t *list);
/* Checks a durable envelope "seq|t_us|mac|data" of room (s: len bytes)
 * against envkey (the hex envelope key, NUL-ended): true with the entry's
 * fields, false when it is malformed or its MAC is wrong (*forged true
 * then). Pure: fuzzed by tests/fuzz/fuzz_redis.c. */
bool rc__redis_open_envelope(const char *envkey, const char *room,
                             const char *s, size_t len, uint64_t *seq,
                             int64_t *t_us, const char **data, size_t *dlen,
                             bool *forged);
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
/* A message on this node's own control channel: handled, true;
 * any other channel: false. Strings borrowed for the call. */
bool rc__redis_node_message(redis_adapter_t *r, const char *ch, size_t chlen,
                            const char *payload, size_t plen);

/* ---- redis_cluster.c */

/* Sends a command that names key (keylen bytes): on Redis Cluster to the
 * master owning key's slot (cb then gets a NULL reply when the command
 * failed), else as rc__redis_cmd(). Borrowed for the call. */
rc_err_t rc__redis_cmd_key(redis_adapter_t *r, const char *key, size_t keylen,
                           redisCallbackFn *cb, void *pd, int argc,
                           const char **argv, const size_t *lens);
/* redis_link.c's entry points on Cluster: start (map, envelope key,
 * library, links per master), the tick, a teardown (every master's link
 * restarts), and the shutdown (true while the registry DEL flushes: the
 * retry timer stays open until then). */
void rc__redis_cl_start(redis_adapter_t *r);
void rc__redis_cl_tick(redis_adapter_t *r, uint64_t now);
void rc__redis_cl_teardown(redis_adapter_t *r, const char *why);
bool rc__redis_cl_close(redis_adapter_t *r);
/* Frees what is left (with the adapter). */
void rc__redis_cl_free(redis_adapter_t *r);
/* redis_sub.c's hooks: a batch goes out by master and slot; an SSUBSCRIBE
 * answered with a redirection is no refusal (true: handled); an open room
 * that Redis unsubscribed subscribes again after a map refresh. */
void rc__redis_cl_send_batch(redis_adapter_t *r, bool subscribe,
                             rc_list_t *batch, sub_state_t next);
bool rc__redis_cl_sub_error(redis_adapter_t *r, const char *text, size_t len,
                            const rc_sublink_cmd_t *cmd);
void rc__redis_cl_lost(redis_adapter_t *r, rroom_t *rm);
/* The cluster's metrics (redis_cluster_*). */
void rc__redis_cl_metrics(const redis_adapter_t *r, rc_metric_emit_fn emit,
                          void *ctx);

/* ---- redis_lib.c */

/* The function library (adapter/roomcast.lua) with prefix, sizes, the
 * envelope key (envkey: hex digits only, or NULL: "") and the publish
 * command (sharded: SPUBLISH, for Redis Cluster) filled in: owned
 * (free()), or NULL when prefix fails rc_redis_prefix_ok() or envkey is
 * not hex. */
char *rc__redis_library(const char *prefix, uint32_t history_size,
                        int64_t history_ttl_ms, uint32_t max_publish,
                        const char *envkey, bool sharded);

#endif /* RC_ADAPTER_REDIS_INTERNAL_H */

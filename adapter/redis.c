/* The Redis adapter: interest-based pub/sub routing, durable publish and
 * history through a Redis function library, reconnect with catch-up, a
 * pub/sub liveness probe, the node registry and the control channel.
 *
 * Redis layout (prefix P, default "roomcast:"), all keys of a room in one
 * hash slot thanks to the {room} tag:
 *   P{room}        channel: "d|seq|t_us|data" (durable) or raw JSON
 *                  (ephemeral, PUBLISH by anyone)
 *   P{room}:meta   hash: seq, epoch
 *   P{room}:hist   list of "seq|t_us|data", newest last, history_size long
 *   Pnode:<id>     registry entry (JSON), PX 10 s, refreshed every 2 s
 *   Pctl:<id>      channel: control commands for one node ("drain")
 *   Pprobe:<id>    channel: the node's own liveness probe
 *   Psess:{<sid>}  a session snapshot for resume (JSON), PX resume_ttl
 *   Psess:{<sid>}:used  set once the resume token was used
 * SPDX-License-Identifier: MIT */
#include "adapter/redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>
#include <jansson.h>

#include "common/htab.h"
#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

#define TICK_MS 250
#define PROBE_IDLE_MS 1000 /* probe when the sub link was quiet this long */
#define PROBE_DEAD_MS 3500 /* declare it dead after this much silence */
#define CMD_TIMEOUT_MS                                                         \
    5000 /* a command unanswered this long kills the link                      \
          */
#define REGISTRY_MS 2000
#define REGISTRY_TTL_MS 10000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SUB_BATCH 256
#define MAX_HELD 65536

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

typedef struct rroom {
    rc_hnode_t node;
    rc_list_t in_batch; /* subscribe or unsubscribe batch */
    rc_list_t waiters;  /* history requests waiting for SUB_ON */
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

/* A history request, from a join or from a catch-up. */
typedef struct hist_req {
    rc_list_t link; /* rroom.waiters while waiting */
    redis_adapter_t *r;
    rroom_t *room;
    bool has_since, catchup;
    uint64_t since;
    rc_adapter_history_cb cb;
    void *arg;
} hist_req_t;

typedef struct pub_req {
    redis_adapter_t *r;
    rc_adapter_publish_cb cb;
    void *arg;
} pub_req_t;

struct redis_adapter {
    rc_adapter_t base;
    uv_loop_t *loop;
    rc_redis_url_t url;
    char *prefix, *node_id, *library;
    char *ch_ctl, *ch_probe, *k_node;
    size_t prefix_len;

    redisAsyncContext *cmd, *sub;
    link_state_t state;
    int cmd_connected, sub_connected, lib_loaded, ctl_subscribed;
    uv_getaddrinfo_t gai;
    int gai_busy;
    uv_timer_t tick, retry, flush;
    uint32_t backoff_ms;
    uint64_t last_sub_rx, last_probe, last_registry, progress_ms;
    uint32_t inflight;
    int64_t unsub_delay;
    int closing, handles;

    uint64_t key[2];
    rc_htab_t rooms;
    rc_list_t sub_batch, unsub_batch;

    /* metrics */
    uint64_t m_received, m_durable, m_ephemeral, m_bad, m_too_big;
    uint64_t m_reconnects, m_resubscribed, m_recovered, m_probe_fail;
    uint64_t m_subscribed; /* gauge */
    uint64_t m_publish_err;
    uint32_t max_publish;
};

static void teardown(redis_adapter_t *r, const char *why);
static void flush_batches(redis_adapter_t *r);
static void on_void_reply(redisAsyncContext *ac, void *reply, void *pd);
static void maybe_up(redis_adapter_t *r);

static uint64_t now_ms(redis_adapter_t *r)
{
    return uv_now(r->loop);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----------------------------------------------------------- URL, lib */

char *rc_redis_library(const char *prefix, uint32_t history_size,
                       int64_t history_ttl_ms, uint32_t max_publish)
{
    static const char fmt[] =
        "#!lua name=roomcast\n"
        "local P = '%s'\n"
        "local HSIZE = %u\n"
        "local TTL = %" PRId64 "\n"
        "local MAXB = %u\n"
        "local function keys_of(room)\n"
        "  local base = P .. '{' .. room .. '}'\n"
        "  return base .. ':meta', base .. ':hist', base\n"
        "end\n"
        /* seq, history and publish in one atomic step. A room that is new,
         * or whose keys expired or were lost, starts a new epoch whose seq
         * base is the current time in microseconds (minus 1.7e15): later
         * than any seq the lost epoch reached, so a client's old `since`
         * is detected as a gap, never replayed against other messages. */
        "local function publish(keys, args)\n"
        "  local room, data = keys[1], args[1]\n"
        "  if data == nil or #data > MAXB then\n"
        "    return redis.error_reply('ERR roomcast: data missing or over "
        "max_publish')\n"
        "  end\n"
        "  local meta, hist, chan = keys_of(room)\n"
        "  local t = redis.call('TIME')\n"
        "  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
        "  local ts = string.format('%%d', now_us)\n"
        "  if redis.call('HSETNX', meta, 'epoch', string.format('%%d', now_us "
        "- 1700000000000000)) == 1 then\n"
        "    redis.call('HSET', meta, 'seq', redis.call('HGET', meta, "
        "'epoch'))\n"
        "  end\n"
        "  local seq = redis.call('HINCRBY', meta, 'seq', 1)\n"
        "  local s = string.format('%%d', seq)\n"
        "  if HSIZE > 0 then\n"
        "    redis.call('RPUSH', hist, s .. '|' .. ts .. '|' .. data)\n"
        "    redis.call('LTRIM', hist, -HSIZE, -1)\n"
        "    redis.call('PEXPIRE', hist, TTL)\n"
        "  end\n"
        "  redis.call('PEXPIRE', meta, TTL)\n"
        "  redis.call('PUBLISH', chan, 'd|' .. s .. '|' .. ts .. '|' .. data)\n"
        "  return seq\n"
        "end\n"
        /* [latest, epoch, entries with seq > since...]; since < 0: latest
         * and epoch only */
        "local function history(keys, args)\n"
        "  local meta, hist = keys_of(keys[1])\n"
        "  local since = tonumber(args[1]) or -1\n"
        "  local out = { redis.call('HGET', meta, 'seq') or '0',\n"
        "                redis.call('HGET', meta, 'epoch') or '0' }\n"
        "  if since < 0 then return out end\n"
        "  local entries = redis.call('LRANGE', hist, 0, -1)\n"
        "  for i = 1, #entries do\n"
        "    local e = entries[i]\n"
        "    local p = string.find(e, '|', 1, true)\n"
        "    if p and tonumber(string.sub(e, 1, p - 1)) > since then\n"
        "      out[#out + 1] = e\n"
        "    end\n"
        "  end\n"
        "  return out\n"
        "end\n"
        /* Claim a resume token once, across nodes, and take the session
         * snapshot: nil when already used, '' when there is none. */
        "local function resume(keys, args)\n"
        "  local base = P .. 'sess:{' .. keys[1] .. '}'\n"
        "  if not redis.call('SET', base .. ':used', '1', 'NX', 'PX', "
        "tonumber(args[1])) then\n"
        "    return false\n"
        "  end\n"
        "  local snap = redis.call('GET', base)\n"
        "  if snap then redis.call('DEL', base) end\n"
        "  return snap or ''\n"
        "end\n"
        "redis.register_function('roomcast_resume', resume)\n"
        "redis.register_function('roomcast_publish', publish)\n"
        "redis.register_function{function_name='roomcast_history', "
        "callback=history, flags={'no-writes'}}\n";
    size_t cap = sizeof(fmt) + strlen(prefix) + 64;
    char *lib;

    if (!rc_redis_prefix_ok(prefix))
        return NULL;
    lib = rc_xmalloc(cap);
    snprintf(lib, cap, fmt, prefix, history_size, history_ttl_ms, max_publish);
    return lib;
}

/* -------------------------------------------------------------- rooms */

static rroom_t *room_find(redis_adapter_t *r, const char *name, size_t len,
                          bool create)
{
    uint64_t h = rc_hash_bytes(r->key, name, len);
    rc_hnode_t *n;
    rroom_t *rm;

    for (n = rc_htab_first(&r->rooms, h); n; n = rc_htab_next(n)) {
        rm = rc_container_of(n, rroom_t, node);
        if (strlen(rm->name) == len && memcmp(rm->name, name, len) == 0)
            return rm;
    }
    if (!create)
        return NULL;
    rm = rc_xcalloc(1, sizeof(*rm) + len + 1);
    memcpy(rm->name, name, len);
    rm->node.hash = h;
    rc_list_init(&rm->in_batch);
    rc_list_init(&rm->waiters);
    rc_htab_insert(&r->rooms, &rm->node);
    return rm;
}

static void release_held(rroom_t *rm)
{
    for (uint32_t i = 0; i < rm->nheld; i++)
        rc_msg_unref(rm->held[i]);
    free(rm->held);
    rm->held = NULL;
    rm->nheld = rm->capheld = 0;
}

static void room_maybe_free(redis_adapter_t *r, rroom_t *rm)
{
    if (rm->token || rm->state != SUB_NONE || !rc_list_empty(&rm->waiters) ||
        !rc_list_empty(&rm->in_batch) || rm->catching)
        return;
    release_held(rm);
    rc_htab_remove(&r->rooms, &rm->node);
    free(rm);
}

static void channel_of(redis_adapter_t *r, const char *room, char *buf,
                       size_t len)
{
    snprintf(buf, len, "%s{%s}", r->prefix, room);
}

/* "P{room}" -> room, or NULL */
static const char *room_of_channel(redis_adapter_t *r, const char *ch,
                                   size_t len, size_t *rlen)
{
    if (len < r->prefix_len + 3 || memcmp(ch, r->prefix, r->prefix_len) ||
        ch[r->prefix_len] != '{' || ch[len - 1] != '}')
        return NULL;
    *rlen = len - r->prefix_len - 2;
    return ch + r->prefix_len + 1;
}

/* --------------------------------------------------------- commands */

static void cmd_sent(redis_adapter_t *r)
{
    if (r->inflight++ == 0)
        r->progress_ms = now_ms(r);
}

static void cmd_done(redis_adapter_t *r)
{
    if (r->inflight)
        r->inflight--;
    r->progress_ms = now_ms(r);
}

/* Queue a command on the command link. cb gets a NULL reply when the link
 * dies first. Returns RC_EBACKEND when the link is not up. */
static rc_err_t cmd_argv(redis_adapter_t *r, redisCallbackFn *cb, void *pd,
                         int argc, const char **argv, const size_t *lens)
{
    if (!r->cmd || r->state == LINK_DOWN)
        return RC_EBACKEND;
    if (redisAsyncCommandArgv(r->cmd, cb, pd, argc, argv, lens) != REDIS_OK)
        return RC_EBACKEND;
    cmd_sent(r);
    return RC_OK;
}

static void deliver_frame(redis_adapter_t *r, rroom_t *rm, rc_msg_t *m)
{
    if (rm->catching) {
        if (rm->nheld == rm->capheld) {
            if (rm->capheld >= MAX_HELD) {
                /* Catch-up is stuck: drop the hold; members will see the
                 * seq gap and can rejoin with since. */
                rc_log(RC_LOG_WARN, "redis_catchup_overflow", "room=%s",
                       rm->name);
                release_held(rm);
                rm->catching = 0;
                goto live;
            }
            rm->capheld = rm->capheld ? rm->capheld * 2 : 16;
            rm->held = rc_xrealloc(rm->held, rm->capheld * sizeof(*rm->held));
        }
        rm->held[rm->nheld++] = rc_msg_ref(m);
        return;
    }
live:
    if (m->seq) {
        if (m->seq <= rm->last_seq)
            return; /* seen (catch-up overlap) */
        rm->last_seq = m->seq;
    }
    if (rm->token)
        r->base.sink.deliver(r->base.sink.ctx, rm->token, m);
}

/* Parse "seq|t_us|data"; data points into s. */
static bool parse_entry(const char *s, size_t len, uint64_t *seq, int64_t *t_us,
                        const char **data, size_t *dlen)
{
    const char *p1 = memchr(s, '|', len), *p2;
    char *end;

    if (!p1)
        return false;
    p2 = memchr(p1 + 1, '|', len - (size_t)(p1 + 1 - s));
    if (!p2)
        return false;
    *seq = strtoull(s, &end, 10);
    if (end != p1 || *seq == 0)
        return false;
    *t_us = strtoll(p1 + 1, &end, 10);
    if (end != p2)
        return false;
    *data = p2 + 1;
    *dlen = len - (size_t)(p2 + 1 - s);
    return true;
}

static bool valid_json(const char *data, size_t len)
{
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, NULL);

    if (!v)
        return false;
    json_decref(v);
    return true;
}

/* Build the frame for a message that came from Redis, or NULL (dropped). */
static rc_msg_t *frame_from_redis(redis_adapter_t *r, const char *room,
                                  uint64_t seq, int64_t t_us, const char *data,
                                  size_t dlen)
{
    uint64_t t_ns = 0;

    /* Anyone can PUBLISH to a room's channel: the size is bounded before
     * the data is parsed, and what is not JSON never reaches a client. */
    if (dlen > r->max_publish) {
        r->m_too_big++;
        return NULL;
    }
    if (dlen == 0 || !valid_json(data, dlen)) {
        r->m_bad++;
        return NULL;
    }
    if (t_us > 0) {
        /* The publish time is Redis's wall clock; move it onto our
         * monotonic clock for the latency histogram. */
        int64_t age_us = wall_us() - t_us;
        uint64_t now = mono_ns();
        if (age_us >= 0 && (uint64_t)age_us * 1000 < now)
            t_ns = now - (uint64_t)age_us * 1000;
    } else {
        t_ns = mono_ns();
    }
    return rc_adapter_frame_msg(room, seq, data, dlen, t_ns);
}

static void on_channel_message(redis_adapter_t *r, const char *ch, size_t chlen,
                               const char *payload, size_t plen)
{
    const char *room, *data = payload;
    size_t rlen, dlen = plen;
    uint64_t seq = 0;
    int64_t t_us = 0;
    char name[256];
    rroom_t *rm;
    rc_msg_t *m;

    if (chlen == strlen(r->ch_probe) && memcmp(ch, r->ch_probe, chlen) == 0)
        return;
    if (chlen == strlen(r->ch_ctl) && memcmp(ch, r->ch_ctl, chlen) == 0) {
        char cmdb[64];
        snprintf(cmdb, sizeof(cmdb), "%.*s", (int)(plen < 63 ? plen : 63),
                 payload);
        rc_log(RC_LOG_INFO, "redis_control", "cmd=%s", cmdb);
        if (r->base.sink.control)
            r->base.sink.control(r->base.sink.ctx, cmdb);
        return;
    }
    room = room_of_channel(r, ch, chlen, &rlen);
    if (!room || rlen >= sizeof(name))
        return;
    memcpy(name, room, rlen);
    name[rlen] = '\0';
    rm = room_find(r, name, rlen, false);
    if (!rm || !rm->token)
        return;
    r->m_received++;
    if (plen >= 2 && payload[0] == 'd' && payload[1] == '|') {
        if (!parse_entry(payload + 2, plen - 2, &seq, &t_us, &data, &dlen)) {
            r->m_bad++;
            return;
        }
        r->m_durable++;
    } else {
        r->m_ephemeral++;
    }
    m = frame_from_redis(r, name, seq, t_us, data, dlen);
    if (!m)
        return;
    deliver_frame(r, rm, m);
    rc_msg_unref(m);
}

static void issue_history(redis_adapter_t *r, hist_req_t *h);

static void fail_waiters(redis_adapter_t *r, rroom_t *rm)
{
    while (!rc_list_empty(&rm->waiters)) {
        hist_req_t *h = rc_container_of(rm->waiters.next, hist_req_t, link);
        rc_list_remove(&h->link);
        if (h->cb)
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        if (h->catchup)
            rm->catching = 0;
        free(h);
    }
    (void)r;
}

static void room_subscribed(redis_adapter_t *r, rroom_t *rm)
{
    rm->state = SUB_ON;
    r->m_subscribed++;
    while (!rc_list_empty(&rm->waiters)) {
        hist_req_t *h = rc_container_of(rm->waiters.next, hist_req_t, link);
        rc_list_remove(&h->link);
        issue_history(r, h);
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply, *kind, *ch;
    (void)pd;

    if (!r || !rep)
        return; /* the link is going away */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    r->last_sub_rx = now_ms(r);
    kind = rep->element[0];
    ch = rep->element[1];
    if (ch->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "message") == 0) {
        redisReply *pl = rep->element[2];
        if (pl->type == REDIS_REPLY_STRING)
            on_channel_message(r, ch->str, ch->len, pl->str, pl->len);
        return;
    }
    if (strcmp(kind->str, "subscribe") == 0) {
        size_t rlen;
        const char *room = room_of_channel(r, ch->str, ch->len, &rlen);
        rroom_t *rm;
        if (!room) {
            if (strcmp(ch->str, r->ch_ctl) == 0) {
                r->ctl_subscribed = 1;
                maybe_up(r); /* this may be the last thing it waited for */
            }
            return;
        }
        rm = room_find(r, room, rlen, false);
        if (rm && rm->state == SUB_PENDING)
            room_subscribed(r, rm);
        return;
    }
    if (strcmp(kind->str, "unsubscribe") == 0) {
        size_t rlen;
        const char *room = room_of_channel(r, ch->str, ch->len, &rlen);
        rroom_t *rm = room ? room_find(r, room, rlen, false) : NULL;
        if (!rm || rm->state != SUB_LEAVING)
            return;
        rm->state = SUB_NONE;
        if (r->m_subscribed)
            r->m_subscribed--;
        if (rm->token) {
            /* Rejoined while the unsubscribe was in flight: hiredis has
             * dropped the channel's callback only now, so resubscribe
             * after it, never before. */
            rc_list_push(&r->sub_batch, &rm->in_batch);
            flush_batches(r);
        } else {
            rm->last_seq = rm->known_seq = 0;
            room_maybe_free(r, rm);
        }
    }
}

static void send_channel_batch(redis_adapter_t *r, const char *verb,
                               rc_list_t *batch, sub_state_t next)
{
    const char *argv[SUB_BATCH + 1];
    size_t lens[SUB_BATCH + 1];
    char *chans[SUB_BATCH];
    int argc;

    while (!rc_list_empty(batch)) {
        argc = 1;
        argv[0] = verb;
        lens[0] = strlen(verb);
        while (!rc_list_empty(batch) && argc <= SUB_BATCH) {
            rroom_t *rm = rc_container_of(batch->next, rroom_t, in_batch);
            size_t cl = r->prefix_len + strlen(rm->name) + 3;
            rc_list_remove(&rm->in_batch);
            chans[argc - 1] = rc_xmalloc(cl);
            channel_of(r, rm->name, chans[argc - 1], cl);
            argv[argc] = chans[argc - 1];
            lens[argc] = strlen(chans[argc - 1]);
            rm->state = (uint8_t)next;
            argc++;
        }
        /* hiredis registers on_sub_reply for each channel of the batch. */
        if (redisAsyncCommandArgv(r->sub, on_sub_reply, NULL, argc, argv,
                                  lens) != REDIS_OK)
            rc_log(RC_LOG_WARN, "redis_batch_failed", "verb=%s", verb);
        for (int i = 0; i < argc - 1; i++)
            free(chans[i]);
    }
}

static void flush_batches(redis_adapter_t *r)
{
    if (r->state != LINK_UP || !r->sub)
        return;
    send_channel_batch(r, "SUBSCRIBE", &r->sub_batch, SUB_PENDING);
    send_channel_batch(r, "UNSUBSCRIBE", &r->unsub_batch, SUB_LEAVING);
}

static void on_flush(uv_timer_t *t)
{
    flush_batches(t->data);
}

static void schedule_flush(redis_adapter_t *r)
{
    /* Batches go out on the next loop turn: a burst of joins becomes one
     * SUBSCRIBE. */
    if (!r->closing && !uv_is_active((uv_handle_t *)&r->flush))
        uv_timer_start(&r->flush, on_flush, 0, 0);
}

/* ------------------------------------------------------------ history */

static void free_msgs(rc_msg_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rc_msg_unref(msgs[i]);
    free(msgs);
}

static void finish_catchup(redis_adapter_t *r, rroom_t *rm, rc_msg_t **msgs,
                           size_t n)
{
    rm->catching = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->seq > rm->last_seq)
            r->m_recovered++;
        deliver_frame(r, rm, msgs[i]);
    }
    for (uint32_t i = 0; i < rm->nheld; i++)
        deliver_frame(r, rm, rm->held[i]);
    release_held(rm);
}

static void on_history_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    hist_req_t *h = pd;
    redis_adapter_t *r = h->r;
    redisReply *rep = reply;
    rroom_t *rm = h->room;
    rc_msg_t **msgs = NULL;
    size_t n = 0;
    uint64_t latest = 0, epoch = 0, first = 0;
    bool recovered;

    (void)ac;
    cmd_done(r);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        (rep->element[0]->type != REDIS_REPLY_STRING &&
         rep->element[0]->type != REDIS_REPLY_INTEGER)) {
        if (rep && rep->type == REDIS_REPLY_ERROR)
            rc_log(RC_LOG_WARN, "redis_history_error", "room=%s err=\"%s\"",
                   rm->name, rep->str);
        if (h->catchup)
            finish_catchup(r, rm, NULL, 0);
        else
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        goto out;
    }
    latest = rep->element[0]->type == REDIS_REPLY_INTEGER
                 ? (uint64_t)rep->element[0]->integer
                 : strtoull(rep->element[0]->str, NULL, 10);
    if (rep->element[1]->type == REDIS_REPLY_STRING)
        epoch = strtoull(rep->element[1]->str, NULL, 10);
    if (rep->elements > 2)
        msgs = rc_xcalloc(rep->elements - 2, sizeof(*msgs));
    for (size_t i = 2; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        uint64_t seq;
        int64_t t_us;
        const char *data;
        size_t dlen;
        rc_msg_t *m;
        if (e->type != REDIS_REPLY_STRING ||
            !parse_entry(e->str, e->len, &seq, &t_us, &data, &dlen))
            continue;
        m = frame_from_redis(r, rm->name, seq, t_us, data, dlen);
        if (!m)
            continue;
        if (!first)
            first = seq;
        msgs[n++] = m;
    }
    /* Everything after since is here when since is the latest, or when the
     * oldest message returned is the very next one; since 0 ("saw nothing
     * yet") is whole when history starts at the epoch's first message. A
     * since of another epoch (lost history) is never recovered. */
    recovered = h->since == latest || (first && first == h->since + 1) ||
                (h->since == 0 && first && first == epoch + 1);
    /* Not last_seq: a message published just before this read may still
     * be on its way on the subscription link, and must not be taken for a
     * duplicate. known_seq only tells a later catch-up where to start. */
    if (latest > rm->known_seq)
        rm->known_seq = latest;
    if (h->catchup)
        finish_catchup(r, rm, msgs, n);
    else
        h->cb(h->arg, RC_OK, latest, h->has_since ? recovered : true, msgs, n);
    free_msgs(msgs, n);
out:
    free(h);
    room_maybe_free(r, rm);
}

static void issue_history(redis_adapter_t *r, hist_req_t *h)
{
    char since[32];
    const char *argv[5] = {"FCALL", "roomcast_history", "1", h->room->name,
                           since};
    size_t lens[5];

    snprintf(since, sizeof(since), "%" PRId64,
             h->has_since ? (int64_t)h->since : (int64_t)-1);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if (cmd_argv(r, on_history_reply, h, 5, argv, lens) != RC_OK) {
        rroom_t *rm = h->room;
        if (h->catchup)
            rm->catching = 0;
        else
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        free(h);
        room_maybe_free(r, rm);
    }
}

/* ---------------------------------------------------------------- ops */

static void r_room_open(rc_adapter_t *ad, const char *room, void *token)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = room_find(r, room, strlen(room), true);

    rm->token = token;
    rm->unsub_at = 0;
    if (rm->state == SUB_NONE && rc_list_empty(&rm->in_batch)) {
        rc_list_push(&r->sub_batch, &rm->in_batch);
        schedule_flush(r);
    }
}

static void r_room_close(rc_adapter_t *ad, const char *room)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = room_find(r, room, strlen(room), false);

    if (!rm)
        return;
    rm->token = NULL;
    if (rm->state == SUB_NONE) {
        /* Never got to subscribe: just forget it. */
        rc_list_remove(&rm->in_batch);
        room_maybe_free(r, rm);
        return;
    }
    /* Unsubscribe later: a member coming back soon costs nothing. */
    rm->unsub_at = now_ms(r) + (uint64_t)r->unsub_delay;
}

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    pub_req_t *p = pd;
    redisReply *rep = reply;
    (void)ac;

    cmd_done(p->r);
    if (rep && rep->type == REDIS_REPLY_INTEGER) {
        p->cb(p->arg, RC_OK, (uint64_t)rep->integer);
    } else {
        p->r->m_publish_err++;
        if (rep && rep->type == REDIS_REPLY_ERROR)
            rc_log(RC_LOG_WARN, "redis_publish_error", "err=\"%s\"", rep->str);
        p->cb(p->arg, RC_EBACKEND, 0);
    }
    free(p);
}

static rc_err_t r_publish(rc_adapter_t *ad, const char *room, const char *data,
                          size_t len, rc_adapter_publish_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    const char *argv[5] = {"FCALL", "roomcast_publish", "1", room, data};
    size_t lens[5] = {5, 16, 1, strlen(room), len};
    pub_req_t *p;

    if (r->state != LINK_UP)
        return RC_EBACKEND;
    p = rc_xmalloc(sizeof(*p));
    p->r = r;
    p->cb = cb;
    p->arg = arg;
    if (cmd_argv(r, on_publish_reply, p, 5, argv, lens) != RC_OK) {
        free(p);
        return RC_EBACKEND;
    }
    return RC_OK;
}

static rc_err_t r_history(rc_adapter_t *ad, const char *room, bool has_since,
                          uint64_t since, rc_adapter_history_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = room_find(r, room, strlen(room), false);
    hist_req_t *h;

    if (r->state != LINK_UP || !rm)
        return RC_EBACKEND;
    h = rc_xcalloc(1, sizeof(*h));
    h->r = r;
    h->room = rm;
    h->has_since = has_since;
    h->since = since;
    h->cb = cb;
    h->arg = arg;
    rc_list_init(&h->link);
    /* History is read after the subscription is confirmed, so nothing
     * published in between can fall through the seam. */
    if (rm->state == SUB_ON)
        issue_history(r, h);
    else
        rc_list_push(&rm->waiters, &h->link);
    return RC_OK;
}

typedef struct sess_req {
    redis_adapter_t *r;
    rc_adapter_session_cb cb;
    void *arg;
} sess_req_t;

typedef struct done_req {
    redis_adapter_t *r;
    rc_adapter_done_cb cb;
    void *arg;
} done_req_t;

static void on_saved(redisAsyncContext *ac, void *reply, void *pd)
{
    done_req_t *q = pd;
    redisReply *rep = reply;
    (void)ac;

    cmd_done(q->r);
    q->cb(q->arg, rep && rep->type != REDIS_REPLY_ERROR ? RC_OK : RC_EBACKEND);
    free(q);
}

static void r_session_save(rc_adapter_t *ad, const char *session,
                           const char *json, size_t len, int64_t ttl_ms,
                           rc_adapter_done_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char key[256], ttl[32];
    const char *argv[5] = {"SET", key, json, "PX", ttl};
    size_t lens[5];
    done_req_t *q = NULL;

    snprintf(key, sizeof(key), "%ssess:{%s}", r->prefix, session);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    lens[0] = 3;
    lens[1] = strlen(key);
    lens[2] = len;
    lens[3] = 2;
    lens[4] = strlen(ttl);
    if (!cb) {
        (void)cmd_argv(r, on_void_reply, (void *)"session_save", 5, argv, lens);
        return;
    }
    q = rc_xmalloc(sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    if (cmd_argv(r, on_saved, q, 5, argv, lens) != RC_OK) {
        free(q);
        cb(arg, RC_EBACKEND);
    }
}

static void on_resume_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    sess_req_t *q = pd;
    redisReply *rep = reply;
    (void)ac;

    cmd_done(q->r);
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        q->cb(q->arg, RC_EBACKEND, false, NULL, 0);
    else if (rep->type == REDIS_REPLY_NIL)
        q->cb(q->arg, RC_OK, true, NULL, 0);
    else if (rep->type == REDIS_REPLY_STRING && rep->len > 0)
        q->cb(q->arg, RC_OK, false, rep->str, rep->len);
    else
        q->cb(q->arg, RC_OK, false, NULL, 0);
    free(q);
}

static rc_err_t r_session_take(rc_adapter_t *ad, const char *session,
                               int64_t ttl_ms, rc_adapter_session_cb cb,
                               void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char ttl[32];
    const char *argv[5] = {"FCALL", "roomcast_resume", "1", session, ttl};
    size_t lens[5];
    sess_req_t *q;

    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    q = rc_xmalloc(sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    if (cmd_argv(r, on_resume_reply, q, 5, argv, lens) != RC_OK) {
        free(q);
        return RC_EBACKEND;
    }
    return RC_OK;
}

static bool r_ready(const rc_adapter_t *ad)
{
    return ((const redis_adapter_t *)ad)->state == LINK_UP;
}

static void on_void_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;

    if (!r)
        return;
    cmd_done(r);
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rc_log(RC_LOG_WARN, "redis_error", "what=%s err=\"%s\"",
               pd ? (const char *)pd : "command", rep->str);
}

static void r_announce(rc_adapter_t *ad)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char info[1024], ttl[32];
    size_t n;

    if (r->state != LINK_UP || !r->base.sink.node_info)
        return;
    n = r->base.sink.node_info(r->base.sink.ctx, info, sizeof(info));
    if (!n)
        return;
    snprintf(ttl, sizeof(ttl), "%d", REGISTRY_TTL_MS);
    {
        const char *argv[5] = {"SET", r->k_node, info, "PX", ttl};
        size_t lens[5] = {3, strlen(r->k_node), n, 2, strlen(ttl)};
        (void)cmd_argv(r, on_void_reply, (void *)"registry", 5, argv, lens);
    }
    r->last_registry = now_ms(r);
}

static void r_metrics(const rc_adapter_t *ad, rc_metric_emit_fn emit, void *ctx)
{
    const redis_adapter_t *r = (const redis_adapter_t *)ad;

#define RM(name, kind, help, v)                                                \
    emit(ctx, kind, "redis_" name, help, (uint64_t)(v))
    RM("up", RC_METRIC_GAUGE, "1 while both Redis links are up.",
       r->state == LINK_UP);
    RM("subscribed_rooms", RC_METRIC_GAUGE,
       "Room channels this node subscribes to.", r->m_subscribed);
    RM("messages_received_total", RC_METRIC_COUNTER,
       "Room messages from Redis.", r->m_received);
    RM("durable_received_total", RC_METRIC_COUNTER,
       "Durable messages from Redis.", r->m_durable);
    RM("ephemeral_received_total", RC_METRIC_COUNTER,
       "Ephemeral messages from Redis.", r->m_ephemeral);
    RM("dropped_bad_total", RC_METRIC_COUNTER,
       "Messages from Redis dropped: data not JSON or malformed envelope.",
       r->m_bad);
    RM("dropped_too_big_total", RC_METRIC_COUNTER,
       "Messages from Redis dropped: data over max_publish.", r->m_too_big);
    RM("reconnects_total", RC_METRIC_COUNTER,
       "Times the Redis links came back up.", r->m_reconnects);
    RM("resubscribed_rooms_total", RC_METRIC_COUNTER,
       "Rooms resubscribed after a reconnect.", r->m_resubscribed);
    RM("recovered_messages_total", RC_METRIC_COUNTER,
       "Messages fetched from history after an outage.", r->m_recovered);
    RM("probe_failures_total", RC_METRIC_COUNTER,
       "Times the pub/sub link was found silent and restarted.",
       r->m_probe_fail);
    RM("publish_errors_total", RC_METRIC_COUNTER,
       "Durable publishes that failed.", r->m_publish_err);
#undef RM
}

/* -------------------------------------------------------- connection */

static void maybe_up(redis_adapter_t *r)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    if (r->state != LINK_CONNECTING || !r->cmd_connected || !r->sub_connected ||
        !r->lib_loaded || !r->ctl_subscribed)
        return;
    r->state = LINK_UP;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->last_sub_rx = now_ms(r);
    r->m_reconnects++;
    rc_log(RC_LOG_INFO, "redis_up", "host=%s port=%d", r->url.host,
           r->url.port);
    /* Resubscribe every room with members, in batches; each fetches what
     * it missed from its history once subscribed. */
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        if (!rm->token)
            continue;
        if (rc_list_empty(&rm->in_batch))
            rc_list_push(&r->sub_batch, &rm->in_batch);
        r->m_resubscribed++;
        /* Every room catches up, even one that saw no traffic yet: a
         * message may have been published while the link was down. */
        if (!rm->catching) {
            hist_req_t *h = rc_xcalloc(1, sizeof(*h));
            h->r = r;
            h->room = rm;
            h->catchup = true;
            h->has_since = true;
            /* Members drop what they already have, so starting low is
             * safe; starting high could skip. */
            h->since = rm->last_seq ? rm->last_seq : rm->known_seq;
            rc_list_init(&h->link);
            rm->catching = 1;
            rc_list_push(&rm->waiters, &h->link);
        }
    }
    flush_batches(r);
    r_announce(&r->base);
    r->base.sink.state(r->base.sink.ctx, true);
}

static void on_lib_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;
    (void)pd;

    if (!r)
        return;
    cmd_done(r);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rc_log(RC_LOG_ERROR, "redis_function_load", "err=\"%s\"",
               rep ? rep->str : "no reply");
        teardown(r, "function load failed");
        return;
    }
    r->lib_loaded = 1;
    maybe_up(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_adapter_t *r = ac->data;

    if (!r)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (ac == r->cmd)
            r->cmd = NULL;
        if (ac == r->sub)
            r->sub = NULL;
        teardown(r, ac->errstr);
        return;
    }
    if (ac == r->cmd)
        r->cmd_connected = 1;
    else
        r->sub_connected = 1;
    maybe_up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_adapter_t *r = ac->data;

    (void)status;
    if (!r)
        return; /* we freed it ourselves */
    if (ac == r->cmd)
        r->cmd = NULL;
    if (ac == r->sub)
        r->sub = NULL;
    teardown(r, ac->errstr[0] ? ac->errstr : "disconnected");
}

static redisAsyncContext *open_link(redis_adapter_t *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->url.port);

    if (!ac)
        return NULL;
    if (ac->err) {
        rc_log(RC_LOG_WARN, "redis_connect", "err=\"%s\"", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    redisLibuvAttach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void auth_link(redis_adapter_t *r, redisAsyncContext *ac)
{
    if (!r->url.password[0])
        return;
    if (r->url.user[0]) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        redisAsyncCommandArgv(ac, on_void_reply, (void *)"auth", 3, argv, lens);
    } else {
        const char *argv[2] = {"AUTH", r->url.password};
        size_t lens[2] = {4, strlen(r->url.password)};
        redisAsyncCommandArgv(ac, on_void_reply, (void *)"auth", 2, argv, lens);
    }
    if (ac == r->cmd)
        cmd_sent(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_adapter_t *r = req->data;
    char ip[64] = "";

    r->gai_busy = 0;
    if (r->closing) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status == 0 && res)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (!ip[0]) {
        teardown(r, "cannot resolve host");
        return;
    }
    r->cmd = open_link(r, ip);
    r->sub = open_link(r, ip);
    if (!r->cmd || !r->sub) {
        teardown(r, "cannot connect");
        return;
    }
    auth_link(r, r->cmd);
    auth_link(r, r->sub);
    if (r->url.db) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2];
        snprintf(db, sizeof(db), "%d", r->url.db);
        lens[0] = 6;
        lens[1] = strlen(db);
        redisAsyncCommandArgv(r->cmd, on_void_reply, (void *)"select", 2, argv,
                              lens);
        cmd_sent(r);
    }
    {
        const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", r->library};
        size_t lens[4] = {8, 4, 7, strlen(r->library)};
        redisAsyncCommandArgv(r->cmd, on_lib_reply, NULL, 4, argv, lens);
        cmd_sent(r);
    }
    {
        const char *argv[3] = {"SUBSCRIBE", r->ch_ctl, r->ch_probe};
        size_t lens[3] = {9, strlen(r->ch_ctl), strlen(r->ch_probe)};
        redisAsyncCommandArgv(r->sub, on_sub_reply, NULL, 3, argv, lens);
    }
}

static void start_connect(redis_adapter_t *r)
{
    struct addrinfo hints;

    if (r->closing || r->gai_busy || r->state != LINK_DOWN)
        return;
    r->state = LINK_CONNECTING;
    r->cmd_connected = r->sub_connected = r->lib_loaded = 0;
    r->ctl_subscribed = 0;
    r->inflight = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->gai.data = r;
    /* Resolve off the loop: hiredis would call getaddrinfo() in place. */
    if (uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->url.host, NULL,
                       &hints) == 0)
        r->gai_busy = 1;
    else
        teardown(r, "cannot resolve host");
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void teardown(redis_adapter_t *r, const char *why)
{
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;
    bool was_up = r->state == LINK_UP;
    uint32_t jitter;

    if (r->state == LINK_DOWN)
        return;
    r->state = LINK_DOWN;
    r->cmd = r->sub = NULL;
    rc_log(was_up ? RC_LOG_WARN : RC_LOG_INFO, "redis_down", "why=\"%s\"",
           why ? why : "");
    /* Pending replies get NULL (callbacks handle it); ours are detached
     * first so the disconnect callbacks do not come back here. */
    if (cmd) {
        cmd->data = NULL;
        redisAsyncFree(cmd);
    }
    if (sub) {
        sub->data = NULL;
        redisAsyncFree(sub);
    }
    r->inflight = 0;
    r->m_subscribed = 0;
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        rm->state = SUB_NONE;
        rc_list_remove(&rm->in_batch);
        fail_waiters(r, rm);
        if (rm->catching) {
            /* Deliver what was held; the next catch-up covers the rest. */
            rm->catching = 0;
            for (uint32_t i = 0; i < rm->nheld; i++)
                deliver_frame(r, rm, rm->held[i]);
            release_held(rm);
        }
        room_maybe_free(r, rm);
    }
    if (was_up)
        r->base.sink.state(r->base.sink.ctx, false);
    if (r->closing)
        return;
    /* Capped exponential backoff with jitter, so a fleet of nodes does not
     * hammer a Redis that just came back. */
    if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
        jitter = (uint32_t)now_ms(r);
    uv_timer_start(&r->retry, on_retry,
                   r->backoff_ms / 2 + jitter % (r->backoff_ms / 2 + 1), 0);
    r->backoff_ms =
        r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void on_tick(uv_timer_t *t)
{
    redis_adapter_t *r = t->data;
    uint64_t now = now_ms(r);
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    if (r->state != LINK_UP) {
        if (r->state == LINK_CONNECTING && r->inflight &&
            now - r->progress_ms > CMD_TIMEOUT_MS)
            teardown(r, "connect timeout");
        return;
    }
    if (r->inflight && now - r->progress_ms > CMD_TIMEOUT_MS) {
        teardown(r, "command timeout");
        return;
    }
    /* The pub/sub link can die silently (a proxy, a half-open socket): a
     * quiet link gets a probe through itself, and a link that does not
     * deliver its own probe is restarted. */
    if (now - r->last_sub_rx > PROBE_DEAD_MS) {
        r->m_probe_fail++;
        teardown(r, "pubsub probe lost");
        return;
    }
    if (now - r->last_sub_rx > PROBE_IDLE_MS &&
        now - r->last_probe > PROBE_IDLE_MS) {
        const char *argv[3] = {"PUBLISH", r->ch_probe, "probe"};
        size_t lens[3] = {7, strlen(r->ch_probe), 5};
        r->last_probe = now;
        (void)cmd_argv(r, on_void_reply, (void *)"probe", 3, argv, lens);
    }
    if (now - r->last_registry >= REGISTRY_MS)
        r_announce(&r->base);
    /* Unsubscribe rooms whose last member left long enough ago. */
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        if (!rm->token && rm->state == SUB_ON && rm->unsub_at &&
            rm->unsub_at <= now && rc_list_empty(&rm->waiters)) {
            rm->unsub_at = 0;
            rc_list_push(&r->unsub_batch, &rm->in_batch);
        }
    }
    flush_batches(r);
}

/* ----------------------------------------------------------- lifecycle */

static void on_handle_closed(uv_handle_t *h)
{
    redis_adapter_t *r = h->data;
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    if (--r->handles > 0)
        return;
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        release_held(rm);
        rc_htab_remove(&r->rooms, n);
        free(rm);
    }
    rc_htab_dispose(&r->rooms);
    free(r->prefix);
    free(r->node_id);
    free(r->library);
    free(r->ch_ctl);
    free(r->ch_probe);
    free(r->k_node);
    free(r);
}

static void r_destroy(rc_adapter_t *ad)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;

    r->closing = 1;
    if (r->gai_busy)
        uv_cancel((uv_req_t *)&r->gai);
    /* Leave the registry at once instead of waiting for the TTL. */
    if (r->state == LINK_UP) {
        const char *argv[2] = {"DEL", r->k_node};
        size_t lens[2] = {3, strlen(r->k_node)};
        (void)cmd_argv(r, NULL, NULL, 2, argv, lens);
    }
    /* A connected link sends what is queued, then closes. One still
     * connecting has nothing worth sending and would wait for its queued
     * replies (or its connect timeout) past the loop's end: teardown frees
     * it now, like the subscription link. */
    if (r->cmd && r->cmd_connected) {
        r->cmd->data = NULL;
        redisAsyncDisconnect(r->cmd);
        r->cmd = NULL;
    }
    r->state = LINK_UP; /* so teardown runs its cleanup */
    teardown(r, "shutdown");
    r->handles = 3;
    uv_close((uv_handle_t *)&r->tick, on_handle_closed);
    uv_close((uv_handle_t *)&r->retry, on_handle_closed);
    uv_close((uv_handle_t *)&r->flush, on_handle_closed);
}

static const rc_adapter_ops_t redis_ops = {
    .name = "redis",
    .room_open = r_room_open,
    .room_close = r_room_close,
    .publish = r_publish,
    .history = r_history,
    .ready = r_ready,
    .session_save = r_session_save,
    .session_take = r_session_take,
    .announce = r_announce,
    .metrics = r_metrics,
    .destroy = r_destroy,
};

static char *strfmt(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = rc_xmalloc(n);
    snprintf(s, n, "%s%s", a, b);
    return s;
}

rc_adapter_t *rc_redis_create(uv_loop_t *loop, const rc_adapter_sink_t *sink,
                              const rc_adapter_config_t *cfg, char *err,
                              size_t errlen)
{
    redis_adapter_t *r;
    rc_redis_url_t url;
    char tmp[512];

    if (rc_redis_url_parse(cfg->url, &url) != RC_OK) {
        snprintf(err, errlen,
                 "redis_url: expected redis://[[user]:password@]host[:port]"
                 "[/db]");
        return NULL;
    }
    if (!rc_redis_prefix_ok(cfg->prefix)) {
        snprintf(err, errlen,
                 "key_prefix: at most 64 bytes, no quotes, braces, "
                 "backslashes or control characters");
        return NULL;
    }
    r = rc_xcalloc(1, sizeof(*r));
    r->base.ops = &redis_ops;
    r->base.sink = *sink;
    r->loop = loop;
    r->url = url;
    r->prefix = rc_xstrdup(cfg->prefix);
    r->prefix_len = strlen(cfg->prefix);
    r->node_id = rc_xstrdup(cfg->node_id);
    r->library = rc_redis_library(cfg->prefix, cfg->history_size,
                                  cfg->history_ttl_ms, cfg->max_publish);
    snprintf(tmp, sizeof(tmp), "ctl:%s", cfg->node_id);
    r->ch_ctl = strfmt(cfg->prefix, tmp);
    snprintf(tmp, sizeof(tmp), "probe:%s", cfg->node_id);
    r->ch_probe = strfmt(cfg->prefix, tmp);
    snprintf(tmp, sizeof(tmp), "node:%s", cfg->node_id);
    r->k_node = strfmt(cfg->prefix, tmp);
    r->unsub_delay = cfg->unsubscribe_delay_ms;
    r->max_publish = cfg->max_publish;
    r->backoff_ms = BACKOFF_MIN_MS;
    if (getrandom(r->key, sizeof(r->key), GRND_NONBLOCK) != sizeof(r->key)) {
        r->key[0] = (uint64_t)(uintptr_t)r;
        r->key[1] = (uint64_t)wall_us();
    }
    rc_htab_init(&r->rooms);
    rc_list_init(&r->sub_batch);
    rc_list_init(&r->unsub_batch);
    uv_timer_init(loop, &r->tick);
    uv_timer_init(loop, &r->retry);
    uv_timer_init(loop, &r->flush);
    r->tick.data = r->retry.data = r->flush.data = r;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    start_connect(r);
    return &r->base;
}

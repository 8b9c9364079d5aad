/* The Redis adapter's rooms: the room table, each room's subscription
 * state machine (SUBSCRIBE/UNSUBSCRIBE in batches on the subscription
 * link, adapter/sublink.c), and the path of a channel message to the node:
 * parse, check the envelope's MAC and seq, frame once, drop duplicates by
 * seq, hold during a catch-up, deliver.
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"
#include "adapter/sublink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/mem.h"

/* ------------------------------------------------------------- rooms */

rroom_t *rc__redis_room_find(redis_adapter_t *r, const char *name, size_t len,
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

void rc__redis_room_ref(rroom_t *rm)
{
    rm->refs++;
}

void rc__redis_room_unref(redis_adapter_t *r, rroom_t *rm)
{
    rm->refs--;
    rc__redis_room_maybe_free(r, rm);
}

void rc__redis_room_maybe_free(redis_adapter_t *r, rroom_t *rm)
{
    /* A request refers to rm (waiting or in flight: refs covers both), or
     * the room is open, subscribed, or in a batch: it stays. */
    if (rm->refs || rm->token || rm->state != SUB_NONE ||
        !rc_list_empty(&rm->in_batch))
        return;
    rc_htab_remove(&r->rooms, &rm->node);
    free(rm);
}

void rc__redis_rooms_free(redis_adapter_t *r)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        rc_htab_remove(&r->rooms, n);
        free(rm);
    }
}

/* ---------------------------------------------------------- messages */

bool rc__redis_parse_seq(const char *s, size_t len, uint64_t *seq)
{
    uint64_t v = 0;

    /* Digits only: strtoull() would take "-1" for 2^64-1. */
    if (len == 0 || len > 16)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > RC_REDIS_MAX_SEQ)
        return false;
    *seq = v;
    return true;
}

bool rc__redis_parse_entry(const char *s, size_t len, uint64_t *seq,
                           int64_t *t_us, const char **data, size_t *dlen)
{
    const char *p1 = memchr(s, '|', len), *p2;
    char *end;

    if (!p1)
        return false;
    p2 = memchr(p1 + 1, '|', len - (size_t)(p1 + 1 - s));
    if (!p2)
        return false;
    if (!rc__redis_parse_seq(s, (size_t)(p1 - s), seq) || *seq == 0)
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

/* The adapter's one wall clock: a message's publish time is Redis's
 * wall-clock time (TIME), so only a wall clock can tell its age. */
static int64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

rc_msg_t *rc__redis_frame(redis_adapter_t *r, const char *room, uint64_t seq,
                          int64_t t_us, const char *data, size_t dlen)
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
        /* Move Redis's publish time onto the monotonic clock (uv_hrtime(),
         * as the node's latency histogram reads it) by its age. */
        int64_t age_us = wall_us() - t_us;
        uint64_t now = uv_hrtime();
        if (age_us >= 0 && (uint64_t)age_us * 1000 < now)
            t_ns = now - (uint64_t)age_us * 1000;
    } else {
        t_ns = uv_hrtime();
    }
    return rc_adapter_frame_msg(room, seq, data, dlen, t_ns);
}

void rc__redis_on_message(void *ctx, const char *ch, size_t chlen,
                          const char *payload, size_t plen, bool sharded)
{
    redis_adapter_t *r = ctx;
    const char *room, *data = payload;
    size_t rlen, dlen = plen;
    uint64_t seq = 0;
    int64_t t_us = 0;
    char name[256];
    rroom_t *rm;
    rc_msg_t *m;

    (void)sharded;
    r->last_sub_rx = uv_now(r->loop);
    if (rc__redis_node_message(r, ch, chlen, payload, plen))
        return;
    room = rc_keys_room_of(r->prefix, ch, chlen, &rlen);
    if (!room || rlen >= sizeof(name))
        return;
    memcpy(name, room, rlen);
    name[rlen] = '\0';
    rm = rc__redis_room_find(r, name, rlen, false);
    if (!rm || !rm->token)
        return;
    r->m_received++;
    if (plen >= 2 && payload[0] == 'd' && payload[1] == '|') {
        /* Anyone may PUBLISH here: a durable envelope is believed only
         * with the MAC the function library computed under the envelope
         * key (PROTOCOL.md section 5: a raw PUBLISH never changes a room's
         * seq). */
        bool forged = false;
        if (!rc__redis_open_envelope(r->envkey, name, payload + 2, plen - 2,
                                     &seq, &t_us, &data, &dlen, &forged)) {
            if (forged)
                r->m_forged++;
            else
                r->m_bad++;
            return;
        }
        r->m_durable++;
    } else {
        r->m_ephemeral++;
    }
    m = rc__redis_frame(r, name, seq, t_us, data, dlen);
    if (!m)
        return;
    /* No hold and no seq dedupe here: the node does both, per member. */
    r->base.sink.deliver(r->base.sink.ctx, rm->token, m);
    rc_msg_unref(m);
}

/* ----------------------------------------------------- subscriptions */

/* rm is held by the caller (rc__redis_on_subscribed) across the node's
 * resync, which may close rooms. */
static void room_subscribed(redis_adapter_t *r, rroom_t *rm)
{
    rm->state = SUB_ON;
    rm->sub_backoff_ms = 0;
    r->m_subscribed++;
    if (rm->lost && rm->token) {
        /* Confirmed again after a loss: the node catches the members up
         * (it holds live frames meanwhile) before any live message of the
         * new subscription, which can only come after this callback. */
        rm->lost = 0;
        r->m_resyncs++;
        if (r->base.sink.resync)
            r->base.sink.resync(r->base.sink.ctx, rm->token);
    }
    while (!rc_list_empty(&rm->waiters)) {
        rreq_t *h = rc_container_of(rm->waiters.next, rreq_t, link);
        rc_list_remove(&h->link);
        rc__redis_history_issue(r, h);
    }
}

/* The room of a room channel we subscribe to, or NULL. */
static rroom_t *room_of_channel(redis_adapter_t *r, const char *ch, size_t len)
{
    size_t rlen;
    const char *room = rc_keys_room_of(r->prefix, ch, len, &rlen);

    return room ? rc__redis_room_find(r, room, rlen, false) : NULL;
}

void rc__redis_on_subscribed(void *ctx, const char *ch, size_t len,
                             bool sharded, long long count)
{
    redis_adapter_t *r = ctx;
    rroom_t *rm;

    (void)sharded;
    (void)count;
    r->last_sub_rx = uv_now(r->loop);
    if (len == strlen(r->ch_ctl) && memcmp(ch, r->ch_ctl, len) == 0) {
        r->ctl_subscribed = 1;
        rc__redis_maybe_up(r); /* this may be the last thing it waited for */
        return;
    }
    rm = room_of_channel(r, ch, len);
    if (rm && rm->state == SUB_PENDING) {
        rc__redis_room_ref(rm);
        room_subscribed(r, rm);
        rc__redis_room_unref(r, rm);
    }
}

void rc__redis_on_unsubscribed(void *ctx, const char *ch, size_t len,
                               bool sharded, bool solicited)
{
    redis_adapter_t *r = ctx;
    rroom_t *rm = room_of_channel(r, ch, len);
    bool was_on;

    (void)sharded;
    r->last_sub_rx = uv_now(r->loop);
    if (!rm)
        return;
    if (!solicited) {
        /* Redis dropped the subscription by itself (a Cluster slot moved,
         * a failover): an open room subscribes again and catches up. */
        if (rm->state != SUB_ON && rm->state != SUB_PENDING)
            return;
        was_on = rm->state == SUB_ON;
        rm->state = SUB_NONE;
        if (was_on && r->m_subscribed)
            r->m_subscribed--;
        if (rm->token) {
            rc_log(RC_LOG_WARN, "redis_unsubscribed_by_server", "room=%s",
                   rm->name);
            rm->lost = was_on || rm->lost;
            if (r->cl) {
                /* the map is stale now: subscribe after a refresh */
                rc__redis_cl_lost(r, rm);
                return;
            }
            if (rc_list_empty(&rm->in_batch))
                rc_list_push(&r->sub_batch, &rm->in_batch);
            rc__redis_flush_batches(r);
        } else {
            rc__redis_room_maybe_free(r, rm);
        }
        return;
    }
    if (rm->state != SUB_LEAVING)
        return;
    rm->state = SUB_NONE;
    if (r->m_subscribed)
        r->m_subscribed--;
    if (rm->token) {
        /* Rejoined while the unsubscribe was in flight: resubscribe after
         * it, never before. */
        rc_list_push(&r->sub_batch, &rm->in_batch);
        rc__redis_flush_batches(r);
    } else {
        rc__redis_room_maybe_free(r, rm);
    }
}

void rc__redis_on_sub_error(void *ctx, const char *text, size_t len,
                            const rc_sublink_cmd_t *cmd)
{
    redis_adapter_t *r = ctx;
    rc_list_t failed;

    r->last_sub_rx = uv_now(r->loop);
    if (r->cl && rc__redis_cl_sub_error(r, text, len, cmd))
        return;
    rc_log(RC_LOG_WARN, "redis_subscribe_refused",
           "op=%d channels=%zu err=\"%.*s\"", (int)cmd->op, cmd->n,
           (int)(len > 200 ? 200 : len), text);
    if (cmd->op == RC_SUBLINK_PING)
        return; /* still an answer: the link lives */
    rc_list_init(&failed);
    for (size_t i = cmd->confirmed; i < cmd->n; i++) {
        rroom_t *rm = room_of_channel(r, cmd->channels[i], cmd->lens[i]);
        if (!rm) {
            if (cmd->lens[i] == strlen(r->ch_ctl) &&
                memcmp(cmd->channels[i], r->ch_ctl, cmd->lens[i]) == 0)
                rc__redis_teardown(r, "control channel SUBSCRIBE refused");
            continue;
        }
        if (cmd->op == RC_SUBLINK_SUBSCRIBE ||
            cmd->op == RC_SUBLINK_SSUBSCRIBE) {
            if (rm->state != SUB_PENDING)
                continue;
            /* Refused (an ACL, say): the joins waiting on it get an error,
             * and an open room tries again after a backoff instead of
             * staying pending forever. */
            r->m_sub_refused++;
            rm->state = SUB_NONE;
            rc__redis_list_move(&failed, &rm->waiters);
            rm->sub_backoff_ms = rm->sub_backoff_ms
                                     ? rm->sub_backoff_ms * 2
                                     : RC_REDIS_BACKOFF_MIN_MS * 10;
            if (rm->sub_backoff_ms > RC_REDIS_BACKOFF_MAX_MS * 6)
                rm->sub_backoff_ms = RC_REDIS_BACKOFF_MAX_MS * 6;
            rm->retry_at = uv_now(r->loop) + rm->sub_backoff_ms;
        } else if (rm->state == SUB_LEAVING) {
            /* Still subscribed: try to leave again later. */
            rm->state = SUB_ON;
            if (!rm->token)
                rm->unsub_at = uv_now(r->loop) + (uint64_t)r->unsub_delay;
        }
    }
    /* Callbacks last: they may close rooms. Each request holds its room. */
    rc__redis_fail_list(r, &failed);
    for (size_t i = cmd->confirmed; i < cmd->n && r->state == LINK_UP; i++) {
        rroom_t *rm = room_of_channel(r, cmd->channels[i], cmd->lens[i]);
        if (rm)
            rc__redis_room_maybe_free(r, rm);
    }
}

static void send_channel_batch(redis_adapter_t *r, bool subscribe,
                               rc_list_t *batch, sub_state_t next)
{
    const char *argv[RC_REDIS_SUB_BATCH];
    size_t lens[RC_REDIS_SUB_BATCH];
    char *chans[RC_REDIS_SUB_BATCH];
    size_t n;

    if (r->cl) {
        rc__redis_cl_send_batch(r, subscribe, batch, next);
        return;
    }
    while (!rc_list_empty(batch) && r->sub) {
        rc_err_t err;
        n = 0;
        while (!rc_list_empty(batch) && n < RC_REDIS_SUB_BATCH) {
            rroom_t *rm = rc_container_of(batch->next, rroom_t, in_batch);
            char ch[RC_KEYS_MAX];
            rc_list_remove(&rm->in_batch);
            if (rc_keys_room(ch, sizeof(ch), r->prefix, rm->name) != RC_OK) {
                /* Room names are at most 128 bytes: never here. */
                rc_log(RC_LOG_WARN, "redis_room_too_long", "room=%s", rm->name);
                continue;
            }
            chans[n] = rc_xstrdup(ch);
            argv[n] = chans[n];
            lens[n] = strlen(chans[n]);
            rm->state = (uint8_t)next;
            n++;
        }
        if (n == 0)
            break;
        /* The cookie is unused: an error names the batch's channels. */
        err = subscribe
                  ? rc_sublink_subscribe(r->sub, argv, lens, n, false, 0)
                  : rc_sublink_unsubscribe(r->sub, argv, lens, n, false, 0);
        for (size_t i = 0; i < n; i++)
            free(chans[i]);
        if (err != RC_OK) {
            /* The link is failing (on_close follows and resubscribes
             * everything) or full: either way, a teardown rebuilds it. */
            rc_log(RC_LOG_WARN, "redis_batch_failed", "verb=%s err=%s",
                   subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", rc_err_str(err));
            rc__redis_teardown(r, "subscription batch failed");
            return;
        }
    }
}

void rc__redis_flush_batches(redis_adapter_t *r)
{
    if (r->state != LINK_UP || (!r->sub && !r->cl))
        return;
    send_channel_batch(r, true, &r->sub_batch, SUB_PENDING);
    send_channel_batch(r, false, &r->unsub_batch, SUB_LEAVING);
}

static void on_flush(uv_timer_t *t)
{
    rc__redis_flush_batches(t->data);
}

static void schedule_flush(redis_adapter_t *r)
{
    /* Batches go out on the next loop turn: a burst of joins becomes one
     * SUBSCRIBE. */
    if (!r->closing && !uv_is_active((uv_handle_t *)&r->flush))
        uv_timer_start(&r->flush, on_flush, 0, 0);
}

void rc__redis_rooms_up(redis_adapter_t *r)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    /* Resubscribe every room with members, in batches; a room that lost
     * its subscription gets its resync when confirmed. */
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        if (!rm->token)
            continue;
        if (rc_list_empty(&rm->in_batch))
            rc_list_push(&r->sub_batch, &rm->in_batch);
        r->m_resubscribed++;
    }
    rc__redis_flush_batches(r);
}

void rc__redis_rooms_down(redis_adapter_t *r)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;
    rc_list_t failed;

    /* First the walk, with no callback into the node: every waiter goes
     * onto one detached list (each holds its room), and only rooms
     * nothing holds are freed, each while it is the current one. */
    rc_list_init(&failed);
    r->m_subscribed = 0;
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        /* Every open room that was subscribed catches up once confirmed
         * again, even one that saw no traffic yet: a message may have been
         * published while the link was down. */
        if (rm->token && (rm->state == SUB_ON || rm->state == SUB_LEAVING))
            rm->lost = 1;
        rm->state = SUB_NONE;
        rm->retry_at = 0;
        rc_list_remove(&rm->in_batch);
        rc__redis_list_move(&failed, &rm->waiters);
        rc__redis_room_maybe_free(r, rm);
    }
    /* Then the callbacks: they may close (and so free) any room. */
    rc__redis_fail_list(r, &failed);
}

void rc__redis_rooms_sweep(redis_adapter_t *r, uint64_t now)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *n;

    /* Unsubscribe rooms whose last member left long enough ago; retry
     * refused subscriptions of open rooms. Nothing here frees a room. */
    while ((n = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(n, rroom_t, node);
        if (!rm->token && rm->state == SUB_ON && rm->unsub_at &&
            rm->unsub_at <= now && rc_list_empty(&rm->waiters)) {
            rm->unsub_at = 0;
            rc_list_push(&r->unsub_batch, &rm->in_batch);
        }
        if (rm->retry_at && rm->retry_at <= now) {
            rm->retry_at = 0;
            if (rm->token && rm->state == SUB_NONE &&
                rc_list_empty(&rm->in_batch))
                rc_list_push(&r->sub_batch, &rm->in_batch);
        }
    }
}

/* ---------------------------------------------------------------- ops */

void rc__redis_room_open(rc_adapter_t *ad, const char *room, void *token)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = rc__redis_room_find(r, room, strlen(room), true);

    rm->token = token;
    rm->unsub_at = 0;
    if (rm->state == SUB_NONE && rc_list_empty(&rm->in_batch)) {
        rc_list_push(&r->sub_batch, &rm->in_batch);
        schedule_flush(r);
    }
}

void rc__redis_room_close(rc_adapter_t *ad, const char *room)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = rc__redis_room_find(r, room, strlen(room), false);

    if (!rm)
        return;
    rm->token = NULL;
    rm->lost = 0; /* a later open's members join with their own reads */
    if (rm->state == SUB_NONE) {
        /* Never got to subscribe: just forget it. */
        rc_list_remove(&rm->in_batch);
        rc__redis_room_maybe_free(r, rm);
        return;
    }
    /* Unsubscribe later: a member coming back soon costs nothing. */
    rm->unsub_at = uv_now(r->loop) + (uint64_t)r->unsub_delay;
}

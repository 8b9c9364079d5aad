/* The Redis adapter on Redis Cluster, subscriptions: one subscription
 * link (adapter/sublink.c) per master, rooms SSUBSCRIBEd on the master
 * owning their slot in batches of one slot, and what happens when a
 * subscription is lost (redis_cluster.c's top comment has the design).
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/slot.h"

/* -------------------------------------------------------------- rooms */

/* Every room (being) subscribed on n loses it: back to SUB_NONE, lost when
 * open and subscribed, subscribing again after RC_REDIS_CL_RESUB_MS. Waiters of
 * open rooms keep waiting; those of closed rooms fail (after the walk). */
static void detach_rooms(redis_adapter_t *r, cnode_t *n)
{
    rc_htab_it_t it = {0, NULL};
    rc_hnode_t *hn;
    rc_list_t failed;
    uint64_t now = now_of(r);

    rc_list_init(&failed);
    while ((hn = rc_htab_iter(&r->rooms, &it))) {
        rroom_t *rm = rc_container_of(hn, rroom_t, node);
        if (rm->slink != n)
            continue;
        rm->slink = NULL;
        if (rm->state == SUB_ON && r->m_subscribed)
            r->m_subscribed--;
        if (rm->token && (rm->state == SUB_ON || rm->state == SUB_LEAVING))
            rm->lost = 1;
        rm->state = SUB_NONE;
        rc_list_remove(&rm->in_batch);
        if (rm->token) {
            rm->retry_at = now + RC_REDIS_CL_RESUB_MS;
            continue;
        }
        rc__redis_list_move(&failed, &rm->waiters);
        rc__redis_room_maybe_free(r, rm);
    }
    rc__redis_fail_list(r, &failed);
}

void rc__redis_cl_lost(redis_adapter_t *r, rroom_t *rm)
{
    rm->slink = NULL;
    rm->retry_at = now_of(r) + RC_REDIS_CL_RESUB_MS;
    rc_cluster_refresh(r->cl->c);
}

bool rc__redis_cl_sub_error(redis_adapter_t *r, const char *text, size_t len,
                            const rc_sublink_cmd_t *cmd)
{
    static const char *const moving[] = {
        "MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"};
    bool redirect = false;

    for (size_t i = 0; i < RC_ARRAY_LEN(moving); i++)
        if (len >= strlen(moving[i]) &&
            memcmp(text, moving[i], strlen(moving[i])) == 0)
            redirect = true;
    if (!redirect || cmd->op != RC_SUBLINK_SSUBSCRIBE)
        return false;
    /* Not a refusal: the map was stale. The rooms wait (their joins too)
     * and subscribe again once the map is refreshed. */
    rc_log(RC_LOG_INFO, "redis_cluster_resubscribe",
           "channels=%zu err=\"%.*s\"", cmd->n, (int)(len > 100 ? 100 : len),
           text);
    for (size_t i = cmd->confirmed; i < cmd->n; i++) {
        size_t rlen;
        const char *room =
            rc_keys_room_of(r->prefix, cmd->channels[i], cmd->lens[i], &rlen);
        rroom_t *rm = room ? rc__redis_room_find(r, room, rlen, false) : NULL;
        if (!rm || rm->state != SUB_PENDING)
            continue;
        rm->state = SUB_NONE;
        if (rm->token) {
            rc__redis_cl_lost(r, rm);
        } else {
            rm->slink = NULL;
            rc__redis_room_maybe_free(r, rm);
        }
    }
    rc_cluster_refresh(r->cl->c);
    return true;
}

typedef struct pick {
    rroom_t *rm;
    cnode_t *n;
    unsigned slot;
} pick_t;

static int pick_cmp(const void *a, const void *b)
{
    const pick_t *x = a, *y = b;

    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return (int)x->slot - (int)y->slot;
}

void rc__redis_cl_node_down(redis_adapter_t *r, cnode_t *n, const char *why);

/* Sends one run of picks (one node, one slot, at most RC_REDIS_SUB_BATCH). */
static void send_run(redis_adapter_t *r, bool subscribe, pick_t *p, size_t n,
                     sub_state_t next)
{
    const char *argv[RC_REDIS_SUB_BATCH];
    size_t lens[RC_REDIS_SUB_BATCH];
    char *chans[RC_REDIS_SUB_BATCH];
    size_t k = 0;
    cnode_t *node = p[0].n;
    rc_err_t err;

    for (size_t i = 0; i < n; i++) {
        char ch[RC_KEYS_MAX];
        if (rc_keys_room(ch, sizeof(ch), r->prefix, p[i].rm->name) != RC_OK)
            continue;
        chans[k] = rc_xstrdup(ch);
        argv[k] = chans[k];
        lens[k] = strlen(ch);
        p[i].rm->state = (uint8_t)next;
        p[i].rm->slink = node;
        k++;
    }
    if (!k)
        return;
    err = subscribe ? rc_sublink_subscribe(node->sub, argv, lens, k, true, 0)
                    : rc_sublink_unsubscribe(node->sub, argv, lens, k, true, 0);
    for (size_t i = 0; i < k; i++)
        free(chans[i]);
    if (err != RC_OK) {
        rc_log(RC_LOG_WARN, "redis_batch_failed", "verb=%s err=%s addr=%s:%d",
               subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE", rc_err_str(err),
               node->addr.ip, node->addr.port);
        rc__redis_cl_node_down(r, node, "subscription batch failed");
    }
}

void rc__redis_cl_send_batch(redis_adapter_t *r, bool subscribe,
                             rc_list_t *batch, sub_state_t next)
{
    rcl_t *cl = r->cl;
    size_t cap = 0, n = 0;
    rc_list_t *it;
    pick_t *p;
    uint64_t now = now_of(r);
    bool refresh = false;

    rc_list_foreach(it, batch)
    {
        cap++;
    }
    if (!cap)
        return;
    p = rc_xmalloc(cap * sizeof(*p));
    while (!rc_list_empty(batch)) {
        rroom_t *rm = rc_container_of(batch->next, rroom_t, in_batch);
        char ch[RC_KEYS_MAX];
        cnode_t *node = NULL;
        rc_list_remove(&rm->in_batch);
        if (rc_keys_room(ch, sizeof(ch), r->prefix, rm->name) != RC_OK)
            continue;
        if (subscribe) {
            rc_cluster_addr_t a;
            if (rc_cluster_master_of_slot(cl->c, rc_slot_of(ch, strlen(ch)),
                                          &a))
                node = rc__redis_cl_node_find(cl, a.ip, a.port);
            if (!node || !node->sub) {
                /* No owner known, or its link is down: later. */
                rm->retry_at = now + RC_REDIS_CL_RESUB_MS * 2;
                refresh = true;
                continue;
            }
        } else {
            node = rm->slink;
            if (!node || !node->sub) {
                /* Its link is gone, and the subscription with it. */
                rm->state = SUB_NONE;
                rm->slink = NULL;
                if (r->m_subscribed)
                    r->m_subscribed--;
                rc__redis_room_maybe_free(r, rm);
                continue;
            }
        }
        p[n].rm = rm;
        p[n].n = node;
        p[n].slot = rc_slot_of(ch, strlen(ch));
        n++;
    }
    qsort(p, n, sizeof(*p), pick_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && j - i < RC_REDIS_SUB_BATCH && p[j].n == p[i].n &&
               p[j].slot == p[i].slot)
            j++;
        /* a rc__redis_cl_node_down() of an earlier run cleared this node's link
         */
        if (p[i].n->sub)
            send_run(r, subscribe, p + i, j - i, next);
        else
            for (size_t k = i; k < j; k++)
                p[k].rm->retry_at = now + RC_REDIS_CL_RESUB_MS;
        i = j;
    }
    free(p);
    if (refresh)
        rc_cluster_refresh(cl->c);
}

/* -------------------------------------------------------------- links */

void rc__redis_cl_node_down(redis_adapter_t *r, cnode_t *n, const char *why)
{
    rcl_t *cl = r->cl;

    if (!n->sub)
        return;
    rc_log(RC_LOG_WARN, "redis_cluster_sublink_down", "addr=%s:%d why=\"%s\"",
           n->addr.ip, n->addr.port, why ? why : "");
    rc_sublink_destroy(n->sub);
    n->sub = NULL;
    n->ready = false;
    n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : RC_REDIS_BACKOFF_MIN_MS;
    if (n->backoff_ms > RC_REDIS_BACKOFF_MAX_MS)
        n->backoff_ms = RC_REDIS_BACKOFF_MAX_MS;
    n->retry_at = now_of(r) + n->backoff_ms;
    if (cl->ctl == n) {
        cl->ctl = NULL;
        if (r->state != LINK_UP)
            r->sub_connected = r->ctl_subscribed = 0;
    }
    detach_rooms(r, n);
    rc_cluster_refresh(cl->c);
}

static void on_n_ready(void *ctx)
{
    cnode_t *n = ctx;
    redis_adapter_t *r = n->r;

    n->ready = true;
    n->backoff_ms = 0;
    n->last_rx = now_of(r);
    if (r->cl->ctl == n) {
        r->sub_connected = 1;
        rc__redis_maybe_up(r);
    }
}

static void on_n_message(void *ctx, const char *ch, size_t chlen,
                         const char *payload, size_t plen, bool sharded)
{
    cnode_t *n = ctx;

    n->last_rx = now_of(n->r);
    rc__redis_on_message(n->r, ch, chlen, payload, plen, sharded);
}

static void on_n_subscribed(void *ctx, const char *ch, size_t len, bool sharded,
                            long long count)
{
    cnode_t *n = ctx;

    n->last_rx = now_of(n->r);
    rc__redis_on_subscribed(n->r, ch, len, sharded, count);
}

static void on_n_unsubscribed(void *ctx, const char *ch, size_t len,
                              bool sharded, bool solicited)
{
    cnode_t *n = ctx;
    redis_adapter_t *r = n->r;
    size_t rlen;
    const char *room = rc_keys_room_of(r->prefix, ch, len, &rlen);
    rroom_t *rm = room ? rc__redis_room_find(r, room, rlen, false) : NULL;

    n->last_rx = now_of(r);
    /* Only the link the room is on speaks for it. */
    if (rm && rm->slink != n)
        return;
    rc__redis_on_unsubscribed(r, ch, len, sharded, solicited);
    /* The room (if still there) is on no link once it is unsubscribed. */
    rm = room ? rc__redis_room_find(r, room, rlen, false) : NULL;
    if (rm && rm->state == SUB_NONE && rm->slink == n)
        rm->slink = NULL;
}

static void on_n_pong(void *ctx)
{
    cnode_t *n = ctx;

    n->last_rx = now_of(n->r);
}

static void on_n_error(void *ctx, const char *text, size_t len,
                       const rc_sublink_cmd_t *cmd)
{
    cnode_t *n = ctx;

    n->last_rx = now_of(n->r);
    rc__redis_on_sub_error(n->r, text, len, cmd);
}

static void on_n_close(void *ctx, const char *reason)
{
    cnode_t *n = ctx;

    rc__redis_cl_node_down(n->r, n, reason);
}

void rc__redis_cl_subscribe_ctl(redis_adapter_t *r, cnode_t *n)
{
    const char *ch = r->ch_ctl;
    size_t len = strlen(ch);

    r->cl->ctl = n;
    r->ctl_subscribed = 0;
    if (rc_sublink_subscribe(n->sub, &ch, &len, 1, false, 0) != RC_OK) {
        rc__redis_cl_node_down(r, n, "control channel SUBSCRIBE not sent");
        return;
    }
    if (n->ready) {
        r->sub_connected = 1;
        rc__redis_maybe_up(r);
    }
}

void rc__redis_cl_node_connect(redis_adapter_t *r, cnode_t *n)
{
    const rc_sublink_cbs_t cbs = {
        .on_ready = on_n_ready,
        .on_message = on_n_message,
        .on_subscribed = on_n_subscribed,
        .on_unsubscribed = on_n_unsubscribed,
        .on_pong = on_n_pong,
        .on_error = on_n_error,
        .on_close = on_n_close,
    };
    rc_sublink_cfg_t cfg = {
        .ip = n->addr.ip,
        .port = (uint16_t)n->addr.port,
        .user = r->url.user[0] ? r->url.user : NULL,
        .password = r->url.password[0] ? r->url.password : NULL,
    };

    n->sub = rc_sublink_create(r->loop, &cfg, &cbs, n);
    n->ready = false;
    n->last_rx = n->last_probe = now_of(r);
    if (!n->sub)
        n->retry_at = now_of(r) + RC_REDIS_BACKOFF_MAX_MS;
}

void rc__redis_cl_node_free(redis_adapter_t *r, cnode_t *n)
{
    if (n->sub)
        rc__redis_cl_node_down(r, n, "no longer a master");
    detach_rooms(r, n);
    if (r->cl->ctl == n)
        r->cl->ctl = NULL;
    rc_list_remove(&n->link);
    free(n);
}

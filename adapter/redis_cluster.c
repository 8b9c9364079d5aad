/* The Redis adapter on Redis Cluster (redis-cluster://): what replaces the
 * single command link and the single subscription link of redis_link.c.
 *
 * Commands go through one rc_cluster_t (adapter/cluster.c): each names a
 * key (a room's P{room}, a session's Psess:{sid}, the registry entry) and
 * goes to the master owning its slot; MOVED, ASK and TRYAGAIN are followed
 * there. rc__redis_cmd_key() keeps the hiredis callback shape the rest of
 * the adapter uses: a trampoline calls cb(&cl->ac, reply, pd), with a
 * NULL reply when the command failed (timeout, dropped link, destroy), as
 * hiredis does when a link dies. An FCALL answered "Function not found"
 * (a master that joined before our next map refresh) loads the library on
 * every master and is sent once more.
 *
 * Subscriptions: one rc_sublink_t per master (cnode_t), made and dropped
 * as the map's masters change. A room SSUBSCRIBEs on the master owning its
 * slot; a batch holds the channels of one slot only (CROSSSLOT otherwise).
 * rroom.slink names the cnode a room is (being) subscribed on. When the
 * subscription goes (an unsolicited sunsubscribe: the slot left that
 * master; a MOVED answer; the link dropped or went silent), the room goes
 * back to SUB_NONE (lost when it was on), the map is refreshed, and the
 * room subscribes again after RC_REDIS_CL_RESUB_MS on the owner the map then
 * names; its confirmation calls the sink's resync (redis_sub.c), which reads
 * the history the keys brought along with the slot. History requests waiting
 * for the subscription keep waiting, at most RC_REDIS_CL_WAITER_MS.
 *
 * The control channel Pctl:<id> is a classic SUBSCRIBE on one master's
 * link (a classic PUBLISH reaches every node over the cluster bus); it
 * moves to another master when that link drops.
 *
 * Up: the map is known, the envelope key was read, the library is loaded
 * on every master and the control channel is confirmed. After that the
 * adapter stays up while single masters fail over: their commands fail
 * one by one (RC_EBACKEND) and their rooms resubscribe.
 *
 * Lifetimes: a cnode is freed only by on_masters_changed or destroy, after
 * every room pointing at it was detached. rc_cluster calls no callback
 * after rc_cluster_destroy() returns, which runs before the adapter goes
 * (rc__redis_cl_close), so every trampoline finds r alive.
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

/* One command through the trampoline. */
typedef struct ccall {
    redis_adapter_t *r;
    redisCallbackFn *cb;
    void *pd;
    bool retried;
    int argc;      /* FCALL only: kept to send it once more */
    char **argv;   /* owned copies */
    size_t *lens;  /* owned */
    size_t keylen; /* the key is argv[keyi] */
    const char *key;
    char *keycopy; /* owned */
} ccall_t;

/* ----------------------------------------------------------- commands */

static void ccall_free(ccall_t *k)
{
    for (int i = 0; i < k->argc; i++)
        free(k->argv[i]);
    free(k->argv);
    free(k->lens);
    free(k->keycopy);
    free(k);
}

static void on_ccall(void *arg, const redisReply *reply, rc_err_t err);

static rc_err_t ccall_send(ccall_t *k, int argc, const char **argv,
                           const size_t *lens)
{
    rcl_t *cl = k->r->cl;

    return rc_cluster_command(cl->c, k->key, k->keylen, argc, argv, lens,
                              on_ccall, k);
}

static void on_ccall(void *arg, const redisReply *reply, rc_err_t err)
{
    ccall_t *k = arg;
    redis_adapter_t *r = k->r;
    rcl_t *cl = r->cl;

    if (err == RC_OK && reply && reply->type == REDIS_REPLY_ERROR && k->argc &&
        !k->retried && !r->closing &&
        strstr(reply->str, "Function not found")) {
        /* A master that has not got the library yet: load it everywhere,
         * then send this once more (behind the load on the same link). */
        rc_list_t *it;
        k->retried = true;
        rc_log(RC_LOG_WARN, "redis_cluster_function_missing", "what=reload");
        rc_list_foreach(it, &cl->nodes)
        {
            cnode_t *n = rc_container_of(it, cnode_t, link);
            n->lib_sent = false;
            rc__redis_cl_load_library(r, n);
        }
        if (ccall_send(k, k->argc, (const char **)k->argv, k->lens) == RC_OK)
            return;
    }
    if (err != RC_OK)
        reply = NULL;
    if (k->cb)
        k->cb(&cl->ac, (void *)reply, k->pd);
    else
        rc__redis_cmd_done(r);
    ccall_free(k);
}

rc_err_t rc__redis_cmd_key(redis_adapter_t *r, const char *key, size_t keylen,
                           redisCallbackFn *cb, void *pd, int argc,
                           const char **argv, const size_t *lens)
{
    ccall_t *k;

    if (!r->cl)
        return rc__redis_cmd(r, cb, pd, argc, argv, lens);
    if (r->closing && !r->cl->draining)
        return RC_EBACKEND;
    k = rc_xcalloc(1, sizeof(*k));
    k->r = r;
    k->cb = cb;
    k->pd = pd;
    k->keycopy = rc_xmalloc(keylen + 1);
    memcpy(k->keycopy, key, keylen);
    k->keycopy[keylen] = '\0';
    k->key = k->keycopy;
    k->keylen = keylen;
    if (lens[0] == 5 && memcmp(argv[0], "FCALL", 5) == 0) {
        k->argc = argc;
        k->argv = rc_xcalloc((size_t)argc, sizeof(*k->argv));
        k->lens = rc_xcalloc((size_t)argc, sizeof(*k->lens));
        for (int i = 0; i < argc; i++) {
            k->argv[i] = rc_xmalloc(lens[i] + 1);
            memcpy(k->argv[i], argv[i], lens[i]);
            k->argv[i][lens[i]] = '\0';
            k->lens[i] = lens[i];
        }
    }
    if (ccall_send(k, argc, argv, lens) != RC_OK) {
        ccall_free(k);
        return RC_EBACKEND;
    }
    r->inflight++;
    return RC_OK;
}

/* ------------------------------------------------------------ library */

typedef struct libcall {
    redis_adapter_t *r;
    rc_cluster_addr_t addr;
} libcall_t;

cnode_t *rc__redis_cl_node_find(rcl_t *cl, const char *ip, int port)
{
    rc_list_t *it;

    rc_list_foreach(it, &cl->nodes)
    {
        cnode_t *n = rc_container_of(it, cnode_t, link);
        if (n->addr.port == port && strcmp(n->addr.ip, ip) == 0)
            return n;
    }
    return NULL;
}

static void check_lib_loaded(redis_adapter_t *r)
{
    rc_list_t *it;

    if (r->lib_loaded)
        return;
    rc_list_foreach(it, &r->cl->nodes)
    {
        if (!rc_container_of(it, cnode_t, link)->lib_ok)
            return;
    }
    if (rc_list_empty(&r->cl->nodes))
        return;
    r->lib_loaded = 1;
    rc__redis_maybe_up(r);
}

static void on_lib_loaded(void *arg, const redisReply *reply, rc_err_t err)
{
    libcall_t *lc = arg;
    redis_adapter_t *r = lc->r;
    cnode_t *n =
        r->closing ? NULL
                   : rc__redis_cl_node_find(r->cl, lc->addr.ip, lc->addr.port);
    bool ok = err == RC_OK && reply && reply->type != REDIS_REPLY_ERROR;

    free(lc);
    if (!n)
        return;
    if (!ok) {
        rc_log(RC_LOG_ERROR, "redis_function_load", "addr=%s:%d err=\"%s\"",
               n->addr.ip, n->addr.port,
               reply && err == RC_OK ? reply->str : rc_err_str(err));
        n->lib_sent = false; /* the tick tries again */
        return;
    }
    n->lib_ok = true;
    check_lib_loaded(r);
}

void rc__redis_cl_load_library(redis_adapter_t *r, cnode_t *n)
{
    const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", r->library};
    size_t lens[4];
    libcall_t *lc;

    if (!r->library || n->lib_sent)
        return;
    lens[0] = 8;
    lens[1] = 4;
    lens[2] = 7;
    lens[3] = strlen(r->library);
    lc = rc_xcalloc(1, sizeof(*lc));
    lc->r = r;
    lc->addr = n->addr;
    if (rc_cluster_command_to(r->cl->c, n->addr.ip, n->addr.port, 4, argv, lens,
                              on_lib_loaded, lc) != RC_OK) {
        free(lc);
        return;
    }
    n->lib_sent = true;
}

/* GET Penvkey answered: the library can be built and loaded. */
static void on_envkey(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;
    rc_list_t *it;
    (void)pd;

    rc__redis_cmd_done(r);
    if (r->closing)
        return;
    if (!rep || rep->type != REDIS_REPLY_STRING ||
        rep->len != RC_REDIS_ENVKEY_HEX ||
        strspn(rep->str, "0123456789abcdef") != RC_REDIS_ENVKEY_HEX) {
        rc_log(RC_LOG_ERROR, "redis_envkey", "key=%s err=\"%s\"", r->k_envkey,
               rep && rep->type == REDIS_REPLY_ERROR
                   ? rep->str
                   : "missing or not 64 hex digits");
        r->cl->envkey_asked = false; /* the tick asks again */
        return;
    }
    memcpy(r->envkey, rep->str, RC_REDIS_ENVKEY_HEX);
    r->envkey[RC_REDIS_ENVKEY_HEX] = '\0';
    free(r->library);
    r->library =
        rc__redis_library(r->prefix, r->history_size, r->history_ttl_ms,
                          r->max_publish, r->envkey, true);
    rc_list_foreach(it, &r->cl->nodes)
    {
        rc__redis_cl_load_library(r, rc_container_of(it, cnode_t, link));
    }
}

static void ask_envkey(redis_adapter_t *r)
{
    unsigned char raw[RC_REDIS_ENVKEY_HEX / 2];
    char key[RC_REDIS_ENVKEY_HEX + 1];
    size_t kl = strlen(r->k_envkey);
    const char *set[4] = {"SET", r->k_envkey, key, "NX"};
    size_t setl[4] = {3, kl, RC_REDIS_ENVKEY_HEX, 2};
    const char *get[2] = {"GET", r->k_envkey};
    size_t getl[2] = {3, kl};

    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw))
        return; /* the tick asks again */
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(key + 2 * i, 3, "%02x", raw[i]);
    (void)rc__redis_cmd_key(r, r->k_envkey, kl, rc__redis_on_void_reply,
                            (void *)"envkey", 4, set, setl);
    if (rc__redis_cmd_key(r, r->k_envkey, kl, on_envkey, NULL, 2, get, getl) ==
        RC_OK)
        r->cl->envkey_asked = true;
}

static void on_masters_changed(void *ctx, const rc_cluster_addr_t *m, size_t nm)
{
    redis_adapter_t *r = ctx;
    rcl_t *cl = r->cl;
    rc_list_t *it, *tmp;

    if (r->closing)
        return;
    rc_list_foreach(it, &cl->nodes)
    {
        rc_container_of(it, cnode_t, link)->seen = false;
    }
    for (size_t i = 0; i < nm; i++) {
        cnode_t *n = rc__redis_cl_node_find(cl, m[i].ip, m[i].port);
        if (!n) {
            n = rc_xcalloc(1, sizeof(*n));
            n->r = r;
            n->addr = m[i];
            rc_list_push(&cl->nodes, &n->link);
            rc__redis_cl_node_connect(r, n);
            rc__redis_cl_load_library(r, n);
            /* a new master: the library is loaded again everywhere it
             * counts, and up waits for it the first time only */
        }
        n->seen = true;
    }
    rc_list_foreach_safe(it, tmp, &cl->nodes)
    {
        cnode_t *n = rc_container_of(it, cnode_t, link);
        if (!n->seen)
            rc__redis_cl_node_free(r, n);
    }
    rc_log(RC_LOG_INFO, "redis_cluster_masters", "masters=%zu", nm);
    if (!cl->have_map) {
        cl->have_map = true;
        r->cmd_connected = 1;
    }
    if (!cl->envkey_asked && !r->library)
        ask_envkey(r);
    if (!cl->ctl && !rc_list_empty(&cl->nodes)) {
        cnode_t *n = rc_container_of(cl->nodes.next, cnode_t, link);
        if (n->sub)
            rc__redis_cl_subscribe_ctl(r, n);
    }
    check_lib_loaded(r);
}

void rc__redis_cl_tick(redis_adapter_t *r, uint64_t now)
{
    rcl_t *cl = r->cl;
    rc_list_t *it;

    rc_list_foreach(it, &cl->nodes)
    {
        cnode_t *n = rc_container_of(it, cnode_t, link);
        if (!n->sub) {
            if (now >= n->retry_at)
                rc__redis_cl_node_connect(r, n);
            continue;
        }
        if (!n->lib_sent)
            rc__redis_cl_load_library(r, n);
        if (!n->ready) {
            if (now - n->last_rx > RC_REDIS_CMD_TIMEOUT_MS)
                rc__redis_cl_node_down(r, n, "connect timeout");
            continue;
        }
        /* Each master's link is probed as the single link is. */
        if (now - n->last_rx > RC_REDIS_PROBE_DEAD_MS) {
            r->m_probe_fail++;
            rc__redis_cl_node_down(r, n, "pubsub probe lost");
            break; /* the list is intact, but start over next tick */
        }
        if (now - n->last_rx > RC_REDIS_PROBE_IDLE_MS &&
            now - n->last_probe > RC_REDIS_PROBE_IDLE_MS) {
            n->last_probe = now;
            if (rc_sublink_ping(n->sub) != RC_OK) {
                rc__redis_cl_node_down(r, n, "pubsub ping not sent");
                break;
            }
        }
    }
    if (!cl->envkey_asked && cl->have_map && !r->library)
        ask_envkey(r);
    if (!cl->ctl && !rc_list_empty(&cl->nodes)) {
        rc_list_foreach(it, &cl->nodes)
        {
            cnode_t *n = rc_container_of(it, cnode_t, link);
            if (n->sub) {
                rc__redis_cl_subscribe_ctl(r, n);
                break;
            }
        }
    }
    if (r->state != LINK_UP)
        return;
    if (now - r->last_registry >= RC_REDIS_REGISTRY_MS)
        rc__redis_announce(&r->base);
    /* Open rooms waiting to subscribe again, after a loss or a MOVED;
     * history reads that waited too long for a subscription fail. */
    {
        rc_htab_it_t hit = {0, NULL};
        rc_hnode_t *hn;
        rc_list_t failed;
        rc_list_init(&failed);
        while ((hn = rc_htab_iter(&r->rooms, &hit))) {
            rroom_t *rm = rc_container_of(hn, rroom_t, node);
            if (rm->state == SUB_NONE && !rc_list_empty(&rm->waiters) &&
                rm->unsub_at == 0 && rm->retry_at == 0)
                rm->retry_at = now + RC_REDIS_CL_RESUB_MS;
            if (rm->state != SUB_ON && !rc_list_empty(&rm->waiters)) {
                rreq_t *h = rc_container_of(rm->waiters.next, rreq_t, link);
                if (h->since_ms && now - h->since_ms > RC_REDIS_CL_WAITER_MS)
                    rc__redis_list_move(&failed, &rm->waiters);
            }
        }
        rc__redis_fail_list(r, &failed);
    }
    rc__redis_rooms_sweep(r, now);
    rc__redis_flush_batches(r);
}

/* ---------------------------------------------------------- lifecycle */

void rc__redis_cl_start(redis_adapter_t *r)
{
    const rc_cluster_cbs_t cbs = {
        .on_masters_changed = on_masters_changed,
        .ctx = r,
    };
    rcl_t *cl = rc_xcalloc(1, sizeof(*cl));

    r->cl = cl;
    cl->ac.data = r;
    rc_list_init(&cl->nodes);
    r->state = LINK_CONNECTING;
    r->connect_ms = now_of(r);
    cl->c = rc_cluster_create(r->loop, &r->url, NULL, &cbs);
}

void rc__redis_cl_teardown(redis_adapter_t *r, const char *why)
{
    rcl_t *cl = r->cl;
    bool was_up = r->state == LINK_UP;
    rc_list_t *it;

    /* Every master's link restarts (from the tick); the command routing
     * stays. */
    rc_log(was_up && !r->closing ? RC_LOG_WARN : RC_LOG_INFO, "redis_down",
           "why=\"%s\"", why ? why : "");
    rc_list_foreach(it, &cl->nodes)
    {
        cnode_t *n = rc_container_of(it, cnode_t, link);
        if (n->sub) {
            rc_sublink_destroy(n->sub);
            n->sub = NULL;
            n->ready = false;
            n->retry_at = now_of(r) + RC_REDIS_BACKOFF_MIN_MS;
        }
    }
    cl->ctl = NULL;
    r->state = LINK_DOWN;
    r->sub_connected = r->ctl_subscribed = 0;
    rc__redis_rooms_down(r);
    {
        rc_htab_it_t hit = {0, NULL};
        rc_hnode_t *hn;
        while ((hn = rc_htab_iter(&r->rooms, &hit)))
            rc_container_of(hn, rroom_t, node)->slink = NULL;
    }
    if (r->closing)
        return;
    if (was_up)
        r->base.sink.state(r->base.sink.ctx, false);
    if (r->state == LINK_DOWN && !r->closing)
        r->state = LINK_CONNECTING;
}

static void cl_finish(redis_adapter_t *r)
{
    rcl_t *cl = r->cl;

    while (!rc_list_empty(&cl->nodes)) {
        cnode_t *n = rc_container_of(cl->nodes.next, cnode_t, link);
        rc_sublink_destroy(n->sub);
        n->sub = NULL;
        rc_list_remove(&n->link);
        free(n);
    }
    /* Callbacks still owed run here, with r alive. */
    rc_cluster_destroy(cl->c);
    cl->c = NULL;
}

static void on_cl_grace(uv_timer_t *t)
{
    redis_adapter_t *r = t->data;

    r->cl->draining = false;
    cl_finish(r);
    uv_close((uv_handle_t *)&r->retry, rc__redis_on_handle_closed);
}

static void on_leave_done(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    (void)reply;
    (void)pd;

    rc__redis_cmd_done(r);
    if (!r->cl->draining)
        return;
    /* The registry entry is gone: finish from the loop (never inside an
     * rc_cluster callback: cl_finish destroys it). */
    uv_timer_stop(&r->retry);
    uv_timer_start(&r->retry, on_cl_grace, 0, 0);
}

bool rc__redis_cl_close(redis_adapter_t *r)
{
    rcl_t *cl = r->cl;
    bool was_up = r->state == LINK_UP;

    uv_timer_stop(&r->retry);
    r->state = LINK_CONNECTING;
    rc__redis_cl_teardown(r, "shutdown");
    r->state = LINK_DOWN;
    if (was_up && cl->c) {
        /* Leave the registry at once, within RC_REDIS_CLOSE_GRACE_MS. */
        const char *argv[2] = {"DEL", r->k_node};
        size_t lens[2] = {3, strlen(r->k_node)};
        cl->draining = true;
        if (rc__redis_cmd_key(r, r->k_node, lens[1], on_leave_done, NULL, 2,
                              argv, lens) == RC_OK) {
            uv_timer_start(&r->retry, on_cl_grace, RC_REDIS_CLOSE_GRACE_MS, 0);
            return true;
        }
        cl->draining = false;
    }
    cl_finish(r);
    return false;
}

void rc__redis_cl_free(redis_adapter_t *r)
{
    free(r->cl);
    r->cl = NULL;
}

void rc__redis_cl_metrics(const redis_adapter_t *r, rc_metric_emit_fn emit,
                          void *ctx)
{
    rc_cluster_stats_t st;
    rc_list_t *it;
    uint64_t links = 0, masters = 0;

    rc_cluster_stats(r->cl->c, &st);
    rc_list_foreach(it, &r->cl->nodes)
    {
        const cnode_t *n = rc_container_of(it, cnode_t, link);
        masters++;
        links += n->ready;
    }
#define CM(name, kind, help, v)                                                \
    emit(ctx, kind, "redis_cluster_" name, help, (uint64_t)(v))
    CM("masters", RC_METRIC_GAUGE, "Masters in the Redis Cluster slot map.",
       masters);
    CM("sublinks_up", RC_METRIC_GAUGE, "Masters whose subscription link is up.",
       links);
    CM("map_refreshes_total", RC_METRIC_COUNTER,
       "Slot maps learned and applied.", st.refreshes);
    CM("moved_total", RC_METRIC_COUNTER, "Commands redirected by MOVED.",
       st.moved);
    CM("ask_total", RC_METRIC_COUNTER,
       "Commands redirected by ASK (a slot being migrated).", st.ask);
    CM("tryagain_total", RC_METRIC_COUNTER,
       "Commands sent again after TRYAGAIN, CLUSTERDOWN, LOADING or "
       "MASTERDOWN.",
       st.tryagain);
    CM("link_drops_total", RC_METRIC_COUNTER,
       "Command links to cluster nodes that dropped or stalled.",
       st.link_drops);
#undef CM
}

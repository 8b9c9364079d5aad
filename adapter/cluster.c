/* Redis Cluster command routing on the loop (see cluster.h).
 *
 * Objects:
 *   node  one address we talk to (a master of the map, an ASK target, a
 *         seed asked for the map, a command_to target) and its hiredis link.
 *         A link is usable ("up") once the first reply (to PING, after AUTH)
 *         came back: hiredis 0.14 only notices a completed connect on an I/O
 *         event, and its libuv adapter never reports a refused one, so a
 *         link that is not up by its connect deadline is dropped.
 *   req   one command: its formatted bytes, routing (slot, or fixed
 *         address, or an ASK target), deadline, and the link it is in
 *         flight on. It sits on c->waiting (not written yet: no map, no
 *         link, a TRYAGAIN backoff) or c->inflight.
 *   map   owner[slot] -> node, rebuilt by each refresh.
 *
 * Lifetimes (STYLE rule 16). hiredis holds a req as the privdata of each
 * reply callback it was written with; req->hold counts them, and a req is
 * freed only when it is done (its callback ran) and hold is 0. A reply whose
 * ac is not the req's current ac is stale (the req was failed, or moved to
 * another link) and only drops the hold. A link is dropped by detaching
 * its in-flight reqs first (req->ac = NULL, to c->dying), clearing ac->data,
 * and then freeing it: the NULL replies hiredis then hands out are stale,
 * and its disconnect callback finds no node. Requests that must fail are
 * collected on c->dying and failed one at a time from there, so a callback
 * that calls rc_cluster_destroy() finds every one of them: destroy fails
 * whatever is left with RC_ECLOSED and nothing runs after it. c itself is
 * freed in the tick timer's close callback (and after the last name
 * resolution came back), so code running on after a user callback may
 * still read c->closing.
 *
 * The tick (TICK_MS) enforces deadlines (commands, connects), starts
 * refreshes (periodic, asked for, or throttled retries), dispatches
 * requests whose backoff ended, and frees idle non-master nodes.
 * SPDX-License-Identifier: MIT */
#include "adapter/cluster.h"
#include "adapter/cluster_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/slot.h"

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *pd);

/* ---------------------------------------------------------------- reqs */

static void req_free(req_t *q)
{
    redisFreeCommand(q->cmd);
    free(q);
}

/* The req's one callback; then it is freed unless hiredis still holds it. */
static void finish(req_t *q, const redisReply *r, rc_err_t err)
{
    rc_cluster_t *c = q->c;

    rc_list_remove(&q->in_c);
    q->done = true;
    q->ac = NULL;
    q->node = NULL;
    if (!q->internal)
        c->npending--;
    q->cb(q->arg, r, err);
    if (q->hold == 0)
        req_free(q);
}

/* Fails every req on c->dying, one at a time (see the file comment). */
static void fail_dying(rc_cluster_t *c, rc_err_t err)
{
    while (!rc_list_empty(&c->dying)) {
        req_t *q = rc_container_of(c->dying.next, req_t, in_c);
        finish(q, NULL, c->closing ? RC_ECLOSED : err);
    }
}

static void requeue(rc_cluster_t *c, req_t *q, uint64_t wake)
{
    rc_list_remove(&q->in_c);
    q->wake = wake;
    rc_list_push(&c->waiting, &q->in_c);
}

/* --------------------------------------------------------------- nodes */

static node_t *find_node(rc_cluster_t *c, const char *ip, int port)
{
    rc_list_t *it;

    rc_list_foreach(it, &c->nodes)
    {
        node_t *n = rc_container_of(it, node_t, in_c);
        if (n->addr.port == port && strcmp(n->addr.ip, ip) == 0)
            return n;
    }
    return NULL;
}

node_t *rc__cl_get_node(rc_cluster_t *c, const char *ip, int port)
{
    node_t *n = find_node(c, ip, port);

    if (n)
        return n;
    n = rc_xcalloc(1, sizeof(*n));
    n->c = c;
    snprintf(n->addr.ip, sizeof(n->addr.ip), "%s", ip);
    n->addr.port = port;
    n->last_used = now_ms(c);
    rc_list_push(&c->nodes, &n->in_c);
    return n;
}

/* Drops n's link (if any): its in-flight reqs go to c->dying, for the
 * caller to fail with fail_dying(). */
static void drop_link(node_t *n)
{
    rc_cluster_t *c = n->c;
    redisAsyncContext *ac = n->ac;
    rc_list_t *it, *tmp;

    rc_list_foreach_safe(it, tmp, &c->inflight)
    {
        req_t *q = rc_container_of(it, req_t, in_c);
        if (q->node != n)
            continue;
        q->ac = NULL;
        q->node = NULL;
        rc_list_remove(&q->in_c);
        rc_list_push(&c->dying, &q->in_c);
    }
    n->inflight = 0;
    n->ac = NULL;
    n->up = false;
    if (!ac) /* redisAsyncFree(NULL) crashes */
        return;
    ac->data = NULL;
    /* Inside one of ac's reply callbacks hiredis frees it once that
     * returns; elsewhere now. Either way the NULL replies are stale. */
    redisAsyncFree(ac);
}

/* A link failed (or was given up on): wait before the next (100 ms,
 * doubling per failure in a row, at most 3.2 s), and learn the map again,
 * since a master that fails is often being replaced. */
static void node_failed(node_t *n, const char *why)
{
    rc_cluster_t *c = n->c;

    c->st.link_drops++;
    n->retry_after = now_ms(c) + ((uint64_t)RECONNECT_GAP_MS
                                  << (n->fails < 5 ? n->fails : 5));
    n->fails++;
    c->want_refresh = true;
    rc_log(RC_LOG_INFO, "cluster_link_down", "addr=%s:%d why=\"%s\"",
           n->addr.ip, n->addr.port, why ? why : "");
}

void rc__cl_node_free(node_t *n)
{
    drop_link(n);
    rc_list_remove(&n->in_c);
    free(n);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    node_t *n = ac->data;

    (void)status;
    if (!n)
        return;
    ((redisAsyncContext *)ac)->data = NULL;
    n->ac = NULL;
    n->up = false;
    node_failed(n, ac->errstr[0] ? ac->errstr : "disconnected");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    node_t *n = ac->data;

    if (!n || status == REDIS_OK)
        return; /* "up" waits for the first reply */
    /* hiredis frees ac after this returns: never free it here. */
    ((redisAsyncContext *)ac)->data = NULL;
    n->ac = NULL;
    n->up = false;
    node_failed(n, ac->errstr);
}

void rc__cl_dispatch_all(rc_cluster_t *c);

static void on_hello_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    node_t *n = ac->data;
    redisReply *r = reply;

    (void)pd;
    if (!n)
        return;
    if (!r) { /* the link is going down on its own */
        ac->data = NULL;
        n->ac = NULL;
        n->up = false;
        node_failed(n, "closed before ready");
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) { /* NOAUTH, WRONGPASS, LOADING */
        rc_log(RC_LOG_WARN, "cluster_link_refused", "addr=%s:%d err=\"%s\"",
               n->addr.ip, n->addr.port, r->str);
        drop_link(n); /* nothing in flight yet */
        node_failed(n, "refused");
        return;
    }
    n->up = true;
    n->fails = 0;
    rc__cl_dispatch_all(n->c);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    node_t *n = ac->data;
    redisReply *r = reply;

    (void)pd;
    if (!n || !r || r->type != REDIS_REPLY_ERROR)
        return; /* a NULL reply: the PING's callback handles the loss */
    /* Refused: never carry on as the default user. */
    rc_log(RC_LOG_WARN, "cluster_auth_refused", "addr=%s:%d err=\"%s\"",
           n->addr.ip, n->addr.port, r->str);
    drop_link(n); /* nothing in flight yet */
    node_failed(n, "AUTH refused");
}

static void open_link(node_t *n)
{
    rc_cluster_t *c = n->c;
    redisAsyncContext *ac = redisAsyncConnect(n->addr.ip, n->addr.port);

    if (!ac || ac->err || redisLibuvAttach(ac, c->loop) != REDIS_OK) {
        if (ac) /* never connected: no callback runs */
            redisAsyncFree(ac);
        node_failed(n, "cannot connect");
        return;
    }
    ac->data = n;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    n->ac = ac;
    n->up = false;
    n->connect_deadline = now_ms(c) + c->connect_timeout_ms;
    if (c->url.password[0]) {
        const char *argv[3] = {"AUTH", c->url.user, c->url.password};
        size_t lens[3] = {4, strlen(c->url.user), strlen(c->url.password)};
        if (c->url.user[0])
            (void)redisAsyncCommandArgv(ac, on_auth_reply, NULL, 3, argv, lens);
        else
            (void)redisAsyncCommandArgv(ac, on_auth_reply, NULL, 2,
                                        (const char *[]){"AUTH", argv[2]},
                                        (size_t[]){4, lens[2]});
    }
    if (redisAsyncCommand(ac, on_hello_reply, NULL, "PING") != REDIS_OK) {
        drop_link(n);
        node_failed(n, "cannot send");
    }
}

/* ------------------------------------------------------------ dispatch */

/* Writes q to its node if that node's link is up; otherwise leaves it
 * waiting (opening the link when there is none). Never calls back. */
static void dispatch_one(rc_cluster_t *c, req_t *q)
{
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    uint64_t now = now_ms(c);
    node_t *n;

    if (q->wake > now)
        return;
    if (q->routed && !q->asking) {
        n = c->owner[q->slot];
        if (!n) { /* no map yet, or nobody serves the slot */
            c->want_refresh = true;
            return;
        }
    } else {
        n = rc__cl_get_node(c, q->to.ip, q->to.port);
    }
    n->last_used = now;
    if (!n->ac) {
        if (now < n->retry_after)
            return;
        open_link(n);
        return;
    }
    if (!n->up)
        return;
    if (q->asking && redisAsyncFormattedCommand(n->ac, NULL, NULL, asking,
                                                sizeof(asking) - 1) != REDIS_OK)
        return;
    if (redisAsyncFormattedCommand(n->ac, on_cmd_reply, q, q->cmd, q->len) !=
        REDIS_OK)
        return; /* the link is going away: its callbacks will tell */
    q->asking = false;
    q->ac = n->ac;
    q->node = n;
    q->hold++;
    n->inflight++;
    rc_list_remove(&q->in_c);
    rc_list_push(&c->inflight, &q->in_c);
}

void rc__cl_dispatch_all(rc_cluster_t *c)
{
    rc_list_t *it, *tmp;

    rc_list_foreach_safe(it, tmp, &c->waiting)
    {
        dispatch_one(c, rc_container_of(it, req_t, in_c));
    }
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the slot and the address (the
 * last ':' splits it, so a bare v6 address works; an empty host means the
 * node that answered). */
static bool parse_redirect(const char *s, const node_t *from, unsigned *slot,
                           rc_cluster_addr_t *to)
{
    const char *sp = strchr(s, ' '), *addr, *colon;
    char *end;
    long v;

    if (!sp)
        return false;
    v = strtol(sp + 1, &end, 10);
    if (end == sp + 1 || *end != ' ' || v < 0 || v >= RC_SLOT_COUNT)
        return false;
    *slot = (unsigned)v;
    addr = end + 1;
    colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(to->ip))
        return false;
    v = strtol(colon + 1, &end, 10);
    if (*end || v < 1 || v > 65535)
        return false;
    to->port = (int)v;
    if (colon == addr)
        snprintf(to->ip, sizeof(to->ip), "%s", from->addr.ip);
    else
        snprintf(to->ip, sizeof(to->ip), "%.*s", (int)(colon - addr), addr);
    return true;
}

static bool starts(const char *s, const char *word)
{
    return strncmp(s, word, strlen(word)) == 0;
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    req_t *q = pd;
    redisReply *r = reply;
    rc_cluster_t *c;
    node_t *n;
    rc_cluster_addr_t to;
    unsigned slot;
    uint64_t now;

    q->hold--;
    if (q->done || q->ac != ac) { /* stale: failed, or moved on */
        if (q->done && q->hold == 0)
            req_free(q);
        return;
    }
    c = q->c;
    n = q->node;
    q->ac = NULL;
    q->node = NULL;
    n->inflight--;
    now = now_ms(c);
    if (!r) {
        if (ac->data) { /* the link is going down on its own */
            ac->data = NULL;
            n->ac = NULL;
            n->up = false;
            node_failed(n, "closed");
        }
        finish(q, NULL, RC_EBACKEND);
        return;
    }
    if (r->type != REDIS_REPLY_ERROR || !r->str) {
        finish(q, r, RC_OK);
        return;
    }
    if (starts(r->str, "MOVED ") || starts(r->str, "ASK ")) {
        bool moved = r->str[0] == 'M';
        if (!parse_redirect(r->str, n, &slot, &to)) {
            finish(q, r, RC_OK);
            return;
        }
        if (++q->redirects > c->max_redirects) {
            finish(q, NULL, RC_ELIMIT);
            return;
        }
        if (moved) {
            node_t *owner = rc__cl_get_node(c, to.ip, to.port);
            c->st.moved++;
            owner->master = true;
            c->owner[slot] = owner;
            c->want_refresh = true;
            q->asking = false;
        } else {
            c->st.ask++;
            q->to = to;
            q->asking = true;
        }
        requeue(c, q, now);
        dispatch_one(c, q);
        return;
    }
    if (starts(r->str, "TRYAGAIN") || starts(r->str, "CLUSTERDOWN") ||
        starts(r->str, "LOADING") || starts(r->str, "MASTERDOWN")) {
        uint64_t back = (uint64_t)c->retry_ms
                        << (q->retries < 5 ? q->retries : 5);
        c->st.tryagain++;
        q->retries++;
        if (back > MAX_BACKOFF_MS)
            back = MAX_BACKOFF_MS;
        if (!starts(r->str, "TRYAGAIN"))
            c->want_refresh = true;
        requeue(c, q, now + back);
        return;
    }
    finish(q, r, RC_OK);
}

/* ------------------------------------------------------------- rc__cl_submit
 */

rc_err_t rc__cl_submit(rc_cluster_t *c, req_t *tmpl, int argc,
                       const char **argv, const size_t *lens, uint32_t tmo)
{
    req_t *q;
    char *cmd = NULL;
    int len;

    if (c->closing)
        return RC_ECLOSED;
    if (argc < 1)
        return RC_EINVAL;
    if (!tmpl->internal && c->npending >= c->max_pending)
        return RC_ELIMIT;
    len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        return RC_ENOMEM;
    q = rc_xmalloc(sizeof(*q));
    *q = *tmpl;
    rc_list_init(&q->in_c);
    q->c = c;
    q->cmd = cmd;
    q->len = (size_t)len;
    q->deadline = now_ms(c) + tmo;
    q->wake = 0;
    if (!q->internal)
        c->npending++;
    rc_list_push(&c->waiting, &q->in_c);
    dispatch_one(c, q);
    return RC_OK;
}

rc_err_t rc_cluster_command(rc_cluster_t *c, const char *key, size_t keylen,
                            int argc, const char **argv, const size_t *lens,
                            rc_cluster_reply_cb cb, void *arg)
{
    req_t t;

    memset(&t, 0, sizeof(t));
    t.routed = true;
    t.slot = rc_slot_of(key, keylen);
    t.cb = cb;
    t.arg = arg;
    return rc__cl_submit(c, &t, argc, argv, lens, c->timeout_ms);
}

rc_err_t rc_cluster_command_to(rc_cluster_t *c, const char *ip, int port,
                               int argc, const char **argv, const size_t *lens,
                               rc_cluster_reply_cb cb, void *arg)
{
    req_t t;

    if (strlen(ip) >= sizeof(t.to.ip) || port < 1 || port > 65535)
        return RC_EINVAL;
    memset(&t, 0, sizeof(t));
    snprintf(t.to.ip, sizeof(t.to.ip), "%s", ip);
    t.to.port = port;
    t.cb = cb;
    t.arg = arg;
    return rc__cl_submit(c, &t, argc, argv, lens, c->timeout_ms);
}

/* ---------------------------------------------------------------- tick */

static void on_tick(uv_timer_t *t)
{
    rc_cluster_t *c = t->data;
    uint64_t now = now_ms(c);
    rc_list_t *it, *tmp;

    /* Deadlines of waiting commands: fail them, nothing else. */
    rc_list_foreach_safe(it, tmp, &c->waiting)
    {
        req_t *q = rc_container_of(it, req_t, in_c);
        if (q->deadline <= now) {
            if (!q->internal)
                c->st.timeouts++;
            rc_list_remove(&q->in_c);
            rc_list_push(&c->dying, &q->in_c);
        }
    }
    /* An in-flight command past its deadline: its link is stalled. */
    rc_list_foreach_safe(it, tmp, &c->inflight)
    {
        req_t *q = rc_container_of(it, req_t, in_c);
        node_t *n;
        if (q->deadline > now)
            continue;
        n = q->node;
        if (!q->internal)
            c->st.timeouts++;
        rc_log(RC_LOG_WARN, "cluster_cmd_timeout", "addr=%s:%d", n->addr.ip,
               n->addr.port);
        drop_link(n); /* q and its neighbours go to c->dying */
        node_failed(n, "command timeout");
        tmp = c->inflight.next; /* the list changed under us */
    }
    rc_list_foreach(it, &c->nodes)
    {
        node_t *n = rc_container_of(it, node_t, in_c);
        if (n->ac && !n->up && n->connect_deadline <= now) {
            drop_link(n);
            node_failed(n, "connect timeout");
        }
    }
    fail_dying(c, RC_EBACKEND);
    if (c->closing)
        return;
    if (!c->refreshing && ((c->want_refresh && now >= c->refresh_not_before) ||
                           now >= c->next_refresh))
        rc__cl_refresh_start(c);
    rc__cl_dispatch_all(c);
    rc_list_foreach_safe(it, tmp, &c->nodes)
    {
        node_t *n = rc_container_of(it, node_t, in_c);
        if (!n->master && n->inflight == 0 &&
            n->last_used + IDLE_NODE_MS <= now)
            rc__cl_node_free(n);
    }
}

/* ----------------------------------------------------------- lifecycle */

rc_cluster_t *rc_cluster_create(uv_loop_t *loop, const rc_redis_url_t *url,
                                const rc_cluster_opts_t *opts,
                                const rc_cluster_cbs_t *cbs)
{
    rc_cluster_t *c;

    if (url->topo != RC_REDIS_CLUSTER || url->nhosts < 1 ||
        url->nhosts > RC_REDIS_URL_MAX_HOSTS)
        return NULL;
    c = rc_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->url = *url;
    if (cbs)
        c->cbs = *cbs;
#define OPT(f, d) (opts && opts->f ? opts->f : (d))
    c->timeout_ms = OPT(timeout_ms, DEFAULT_TIMEOUT_MS);
    c->connect_timeout_ms = OPT(connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    c->refresh_ms = OPT(refresh_ms, DEFAULT_REFRESH_MS);
    c->retry_ms = OPT(retry_ms, DEFAULT_RETRY_MS);
    c->max_redirects = OPT(max_redirects, DEFAULT_MAX_REDIRECTS);
    c->max_pending = OPT(max_pending, DEFAULT_MAX_PENDING);
#undef OPT
    rc_list_init(&c->nodes);
    rc_list_init(&c->waiting);
    rc_list_init(&c->inflight);
    rc_list_init(&c->dying);
    c->want_refresh = true;
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, 0, TICK_MS);
    return c;
}

static void on_tick_closed(uv_handle_t *h)
{
    rc_cluster_t *c = h->data;

    if (--c->handles == 0 && c->gai_pending == 0)
        free(c);
}

void rc_cluster_destroy(rc_cluster_t *c)
{
    rc_list_t *it, *tmp;

    if (!c || c->closing)
        return;
    c->closing = true;
    c->gen++; /* a resolution in flight finds another generation */
    /* Detach every command first: the callbacks may call back in. */
    rc_list_foreach_safe(it, tmp, &c->inflight)
    {
        req_t *q = rc_container_of(it, req_t, in_c);
        q->ac = NULL;
        q->node = NULL;
        rc_list_remove(&q->in_c);
        rc_list_push(&c->dying, &q->in_c);
    }
    rc_list_foreach_safe(it, tmp, &c->waiting)
    {
        req_t *q = rc_container_of(it, req_t, in_c);
        rc_list_remove(&q->in_c);
        rc_list_push(&c->dying, &q->in_c);
    }
    fail_dying(c, RC_ECLOSED);
    rc_list_foreach_safe(it, tmp, &c->nodes)
    {
        rc__cl_node_free(rc_container_of(it, node_t, in_c));
    }
    free(c->reported);
    c->reported = NULL;
    free(c->cand);
    c->cand = NULL;
    c->handles = 1;
    uv_close((uv_handle_t *)&c->tick, on_tick_closed);
}

bool rc_cluster_master_of_slot(const rc_cluster_t *c, unsigned slot,
                               rc_cluster_addr_t *out)
{
    if (slot >= RC_SLOT_COUNT || !c->owner[slot])
        return false;
    *out = c->owner[slot]->addr;
    return true;
}

size_t rc_cluster_masters(const rc_cluster_t *c, rc_cluster_addr_t *out,
                          size_t cap)
{
    size_t n = c->nreported < cap ? c->nreported : cap;

    if (n)
        memcpy(out, c->reported, n * sizeof(*out));
    return c->nreported;
}

void rc_cluster_stats(const rc_cluster_t *c, rc_cluster_stats_t *out)
{
    *out = c->st;
}

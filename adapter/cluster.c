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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>

#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/slot.h"

#define TICK_MS 20
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_REFRESH_MS 5000
#define DEFAULT_RETRY_MS 25
#define DEFAULT_MAX_REDIRECTS 16
#define DEFAULT_MAX_PENDING 65536
#define MAX_BACKOFF_MS 500
#define REFRESH_GAP_MS 100   /* between two refreshes, at least */
#define RECONNECT_GAP_MS 100 /* after a failed link, before the next */
#define IDLE_NODE_MS 10000   /* a non-master node's link lives this long */

typedef struct node {
    rc_list_t in_c; /* c->nodes */
    rc_cluster_t *c;
    rc_cluster_addr_t addr;
    redisAsyncContext *ac; /* NULL: no link */
    bool up;               /* the link answered its first PING */
    bool master;           /* owns slots in the map (or a MOVED said so) */
    uint64_t connect_deadline;
    uint64_t retry_after; /* no new link before */
    unsigned fails;       /* links in a row that failed before ready */
    uint64_t last_used;
    unsigned inflight;
} node_t;

typedef struct req {
    rc_list_t in_c; /* c->waiting, c->inflight or c->dying; or none */
    rc_cluster_t *c;
    char *cmd; /* formatted (redisFreeCommand) */
    size_t len;
    bool routed; /* by slot; else to `to` */
    bool asking; /* send ASKING first, to `to` (an ASK redirect) */
    bool internal;
    unsigned slot;
    rc_cluster_addr_t to;
    rc_cluster_reply_cb cb;
    void *arg;
    uint64_t deadline, wake;
    redisAsyncContext *ac; /* in flight on; NULL while waiting */
    node_t *node;
    unsigned redirects, retries;
    int hold; /* hiredis callbacks still to come */
    bool done;
} req_t;

typedef struct gai_req {
    uv_getaddrinfo_t req;
    rc_cluster_t *c;
    unsigned gen;
    int port;
} gai_req_t;

struct rc_cluster {
    uv_loop_t *loop;
    rc_redis_url_t url;
    rc_cluster_cbs_t cbs;
    uint32_t timeout_ms, connect_timeout_ms, refresh_ms, retry_ms;
    uint32_t max_redirects, max_pending;

    uv_timer_t tick;
    rc_list_t nodes;
    rc_list_t waiting, inflight, dying;
    size_t npending; /* user commands not yet answered */

    node_t *owner[RC_SLOT_COUNT];
    bool have_map;
    rc_cluster_addr_t *reported; /* masters last reported, sorted */
    size_t nreported;

    /* refresh */
    bool refreshing, want_refresh, use_slots;
    uint64_t next_refresh, refresh_not_before;
    rc_redis_hostport_t *cand; /* candidates of the round in flight */
    size_t ncand, icand;
    char cand_ip[RC_CLUSTER_IP_CAP]; /* the candidate asked, resolved */
    unsigned gen;                    /* bumped when a step ends */
    unsigned gai_pending;

    rc_cluster_stats_t st;
    bool closing;
    int handles;
};

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *pd);
static void on_probe_reply(void *arg, const redisReply *r, rc_err_t err);
static void refresh_step(rc_cluster_t *c);

static uint64_t now_ms(const rc_cluster_t *c)
{
    return uv_now(c->loop);
}

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

static node_t *get_node(rc_cluster_t *c, const char *ip, int port)
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

static void node_free(node_t *n)
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

static void dispatch_all(rc_cluster_t *c);

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
    dispatch_all(n->c);
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
        n = get_node(c, q->to.ip, q->to.port);
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

static void dispatch_all(rc_cluster_t *c)
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
            node_t *owner = get_node(c, to.ip, to.port);
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

/* ------------------------------------------------------------- submit */

static rc_err_t submit(rc_cluster_t *c, req_t *tmpl, int argc,
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
    return submit(c, &t, argc, argv, lens, c->timeout_ms);
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
    return submit(c, &t, argc, argv, lens, c->timeout_ms);
}

/* ---------------------------------------------------------------- map */

typedef struct newmap {
    rc_cluster_addr_t *m; /* masters */
    size_t n;
    uint16_t *own; /* [RC_SLOT_COUNT]: index into m, or UINT16_MAX */
} newmap_t;

static bool is_str(const redisReply *r)
{
    return r &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static long add_master(newmap_t *nm, const char *ip, size_t iplen,
                       long long port, const char *asked)
{
    if (port < 1 || port > 65535 || iplen >= RC_CLUSTER_IP_CAP)
        return -1;
    if (iplen == 0 || (iplen == 1 && ip[0] == '?')) { /* "the node asked" */
        ip = asked;
        iplen = strlen(asked);
    }
    for (size_t i = 0; i < nm->n; i++)
        if (nm->m[i].port == port && strlen(nm->m[i].ip) == iplen &&
            memcmp(nm->m[i].ip, ip, iplen) == 0)
            return (long)i;
    if (nm->n >= RC_CLUSTER_MAX_MASTERS)
        return -1;
    snprintf(nm->m[nm->n].ip, RC_CLUSTER_IP_CAP, "%.*s", (int)iplen, ip);
    nm->m[nm->n].port = (int)port;
    return (long)nm->n++;
}

static bool own_range(newmap_t *nm, long long a, long long b, long idx)
{
    if (a < 0 || b >= RC_SLOT_COUNT || a > b || idx < 0)
        return false;
    for (long long s = a; s <= b; s++)
        nm->own[s] = (uint16_t)idx;
    return true;
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id, ...], replicas...], ...] */
static bool parse_slots(const redisReply *r, newmap_t *nm, const char *asked)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *m;
        long idx;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER)
            return false;
        m = e->element[2];
        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            !is_str(m->element[0]) ||
            m->element[1]->type != REDIS_REPLY_INTEGER)
            return false;
        idx = add_master(nm, m->element[0]->str, m->element[0]->len,
                         m->element[1]->integer, asked);
        if (!own_range(nm, e->element[0]->integer, e->element[1]->integer, idx))
            return false;
    }
    return true;
}

/* A RESP2 map (flat key/value array): the value of key, or NULL. */
static const redisReply *field(const redisReply *map, const char *key)
{
    if (map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (is_str(map->element[i]) && strcmp(map->element[i]->str, key) == 0)
            return map->element[i + 1];
    return NULL;
}

/* CLUSTER SHARDS (7.0): [{slots: [a, b, ...], nodes: [{id, port, ip,
 * endpoint, role, replication-offset, health}, ...]}, ...]. A shard counts
 * when it has slots and an online master; a failed master's slots are left
 * unowned, so commands wait for its replica's promotion instead of
 * knocking at a dead address. */
static bool parse_shards(const redisReply *r, newmap_t *nm, const char *asked)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *sh = r->element[i];
        const redisReply *slots = field(sh, "slots"),
                         *nodes = field(sh, "nodes");
        long idx = -1;
        if (!slots || !nodes || slots->type != REDIS_REPLY_ARRAY ||
            nodes->type != REDIS_REPLY_ARRAY || slots->elements % 2)
            return false;
        if (slots->elements == 0)
            continue;
        for (size_t j = 0; j < nodes->elements && idx < 0; j++) {
            const redisReply *nd = nodes->element[j];
            const redisReply *role = field(nd, "role"),
                             *health = field(nd, "health");
            const redisReply *ip = field(nd, "ip"), *port = field(nd, "port");
            if (!is_str(role) || strcmp(role->str, "master") != 0 ||
                !is_str(health) || strcmp(health->str, "online") != 0 ||
                !is_str(ip) || !port || port->type != REDIS_REPLY_INTEGER)
                continue;
            idx = add_master(nm, ip->str, ip->len, port->integer, asked);
            if (idx < 0)
                return false;
        }
        if (idx < 0)
            continue;
        for (size_t k = 0; k < slots->elements; k += 2) {
            if (slots->element[k]->type != REDIS_REPLY_INTEGER ||
                slots->element[k + 1]->type != REDIS_REPLY_INTEGER ||
                !own_range(nm, slots->element[k]->integer,
                           slots->element[k + 1]->integer, idx))
                return false;
        }
    }
    return true;
}

static int addr_cmp(const void *a, const void *b)
{
    const rc_cluster_addr_t *x = a, *y = b;
    int d = strcmp(x->ip, y->ip);

    return d ? d : x->port - y->port;
}

/* Installs a parsed map; reports the masters when their set changed. May
 * call back (on_masters_changed), so callers return right after. */
static void apply(rc_cluster_t *c, newmap_t *nm)
{
    node_t **byidx = rc_xcalloc(nm->n ? nm->n : 1, sizeof(*byidx));
    rc_list_t *it, *tmp;
    bool changed;

    rc_list_foreach(it, &c->nodes)
    {
        rc_container_of(it, node_t, in_c)->master = false;
    }
    for (size_t i = 0; i < nm->n; i++) {
        byidx[i] = get_node(c, nm->m[i].ip, nm->m[i].port);
        byidx[i]->master = true;
    }
    for (unsigned s = 0; s < RC_SLOT_COUNT; s++)
        c->owner[s] = nm->own[s] == UINT16_MAX ? NULL : byidx[nm->own[s]];
    free(byidx);
    c->have_map = true;
    c->st.refreshes++;
    /* Links to nodes that stopped being masters go once idle; the tick
     * frees the idle ones too. */
    rc_list_foreach_safe(it, tmp, &c->nodes)
    {
        node_t *n = rc_container_of(it, node_t, in_c);
        if (!n->master && n->inflight == 0)
            node_free(n);
    }
    qsort(nm->m, nm->n, sizeof(*nm->m), addr_cmp);
    changed = nm->n != c->nreported ||
              (nm->n && memcmp(nm->m, c->reported, nm->n * sizeof(*nm->m)));
    dispatch_all(c);
    if (!changed)
        return;
    free(c->reported);
    c->reported = rc_xmalloc((nm->n ? nm->n : 1) * sizeof(*nm->m));
    memcpy(c->reported, nm->m, nm->n * sizeof(*nm->m));
    c->nreported = nm->n;
    rc_log(RC_LOG_INFO, "cluster_masters", "masters=%zu", nm->n);
    if (c->cbs.on_masters_changed)
        c->cbs.on_masters_changed(c->cbs.ctx, c->reported, c->nreported);
}

/* ------------------------------------------------------------- refresh */

static void refresh_end(rc_cluster_t *c, bool ok)
{
    uint64_t now = now_ms(c);

    c->refreshing = false;
    c->gen++;
    free(c->cand);
    c->cand = NULL;
    c->ncand = c->icand = 0;
    c->next_refresh = now + c->refresh_ms;
    if (!ok) { /* nobody answered: again soon */
        c->want_refresh = true;
        c->refresh_not_before = now + 10 * REFRESH_GAP_MS;
        rc_log(RC_LOG_WARN, "cluster_refresh_failed", "seeds=%u",
               c->url.nhosts);
    }
}

static void probe(rc_cluster_t *c, const char *ip, int port)
{
    const char *shards[2] = {"CLUSTER", "SHARDS"};
    const char *slots[2] = {"CLUSTER", "SLOTS"};
    size_t lens[2] = {7, c->use_slots ? 5u : 6u};
    req_t t;

    memset(&t, 0, sizeof(t));
    snprintf(t.to.ip, sizeof(t.to.ip), "%s", ip);
    t.to.port = port;
    t.internal = true;
    t.cb = on_probe_reply;
    t.arg = c;
    snprintf(c->cand_ip, sizeof(c->cand_ip), "%s", ip);
    if (submit(c, &t, 2, c->use_slots ? slots : shards, lens,
               c->connect_timeout_ms) != RC_OK) {
        c->icand++;
        refresh_step(c);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gai_req_t *g = rc_container_of(req, gai_req_t, req);
    rc_cluster_t *c = g->c;
    char ip[RC_CLUSTER_IP_CAP] = "";
    bool current = !c->closing && g->gen == c->gen;
    int port = g->port;

    if (status == 0 && res)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    free(g);
    c->gai_pending--;
    if (c->closing) {
        if (c->handles == 0 && c->gai_pending == 0)
            free(c);
        return;
    }
    if (!current)
        return;
    if (!ip[0]) {
        c->icand++;
        refresh_step(c);
        return;
    }
    probe(c, ip, port);
}

/* Asks candidate icand (resolving a name first), or ends the round. */
static void refresh_step(rc_cluster_t *c)
{
    unsigned char buf[sizeof(struct in6_addr)];
    const rc_redis_hostport_t *h;
    struct addrinfo hints;
    gai_req_t *g;

    c->gen++;
    if (c->icand >= c->ncand) {
        refresh_end(c, false);
        return;
    }
    h = &c->cand[c->icand];
    if (uv_inet_pton(AF_INET, h->host, buf) == 0 ||
        uv_inet_pton(AF_INET6, h->host, buf) == 0) {
        probe(c, h->host, h->port);
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    g = rc_xcalloc(1, sizeof(*g));
    g->c = c;
    g->gen = c->gen;
    g->port = h->port;
    if (uv_getaddrinfo(c->loop, &g->req, on_resolved, h->host, NULL, &hints)) {
        free(g);
        c->icand++;
        refresh_step(c);
        return;
    }
    c->gai_pending++;
}

/* A round asks the masters whose links are up, then the other masters,
 * then the seeds, one at a time, until one answers with a map. */
static void refresh_start(rc_cluster_t *c)
{
    size_t cap = c->url.nhosts, n = 0;
    rc_list_t *it;

    rc_list_foreach(it, &c->nodes)
    {
        cap++;
    }
    c->cand = rc_xcalloc(cap, sizeof(*c->cand));
    for (int pass = 0; pass < 2; pass++) {
        rc_list_foreach(it, &c->nodes)
        {
            node_t *nd = rc_container_of(it, node_t, in_c);
            if (!nd->master || nd->up != (pass == 0))
                continue;
            snprintf(c->cand[n].host, sizeof(c->cand[n].host), "%s",
                     nd->addr.ip);
            c->cand[n++].port = nd->addr.port;
        }
    }
    for (unsigned i = 0; i < c->url.nhosts; i++)
        c->cand[n++] = c->url.hosts[i];
    c->ncand = n;
    c->icand = 0;
    c->refreshing = true;
    c->want_refresh = false;
    c->refresh_not_before = now_ms(c) + REFRESH_GAP_MS;
    refresh_step(c);
}

static void on_probe_reply(void *arg, const redisReply *r, rc_err_t err)
{
    rc_cluster_t *c = arg;
    newmap_t nm;
    bool ok;

    if (c->closing || !c->refreshing)
        return;
    if (err == RC_OK && r->type == REDIS_REPLY_ERROR && !c->use_slots &&
        (strstr(r->str, "nknown subcommand") ||
         strstr(r->str, "nknown command"))) {
        c->use_slots = true; /* before Redis 7.0: ask the same node again */
        probe(c, c->cand_ip, c->cand[c->icand].port);
        return;
    }
    if (err != RC_OK || r->type == REDIS_REPLY_ERROR) {
        rc_log(RC_LOG_DEBUG, "cluster_probe_fail", "addr=%s:%d err=\"%s\"",
               c->cand_ip, c->cand[c->icand].port,
               err != RC_OK ? rc_err_str(err) : r->str);
        c->icand++;
        refresh_step(c);
        return;
    }
    nm.n = 0;
    nm.m = rc_xmalloc(RC_CLUSTER_MAX_MASTERS * sizeof(*nm.m));
    nm.own = rc_xmalloc(RC_SLOT_COUNT * sizeof(*nm.own));
    memset(nm.own, 0xff, RC_SLOT_COUNT * sizeof(*nm.own));
    ok = c->use_slots ? parse_slots(r, &nm, c->cand_ip)
                      : parse_shards(r, &nm, c->cand_ip);
    if (!ok || nm.n == 0) {
        /* A node that knows no masters (not yet joined) is no answer. */
        free(nm.m);
        free(nm.own);
        c->icand++;
        refresh_step(c);
        return;
    }
    refresh_end(c, true);
    apply(c, &nm); /* may call back: nothing after it */
    free(nm.m);
    free(nm.own);
}

void rc_cluster_refresh(rc_cluster_t *c)
{
    if (c && !c->closing)
        c->want_refresh = true;
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
        refresh_start(c);
    dispatch_all(c);
    rc_list_foreach_safe(it, tmp, &c->nodes)
    {
        node_t *n = rc_container_of(it, node_t, in_c);
        if (!n->master && n->inflight == 0 &&
            n->last_used + IDLE_NODE_MS <= now)
            node_free(n);
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
        node_free(rc_container_of(it, node_t, in_c));
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

/* The slot map of the loop's Cluster routing (see cluster.h and
 * cluster_internal.h): CLUSTER SHARDS (CLUSTER SLOTS before Redis 7.0)
 * parsed into a new map and applied, and the refresh rounds that ask the
 * masters whose links are up, then the other masters, then the seeds
 * (resolved off the loop), one at a time, until one answers.
 * SPDX-License-Identifier: MIT */
#include "adapter/cluster.h"
#include "adapter/cluster_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

static void refresh_step(rc_cluster_t *c);
static void on_probe_reply(void *arg, const redisReply *r, rc_err_t err);

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
        byidx[i] = rc__cl_get_node(c, nm->m[i].ip, nm->m[i].port);
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
            rc__cl_node_free(n);
    }
    qsort(nm->m, nm->n, sizeof(*nm->m), addr_cmp);
    changed = nm->n != c->nreported ||
              (nm->n && memcmp(nm->m, c->reported, nm->n * sizeof(*nm->m)));
    rc__cl_dispatch_all(c);
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
    if (rc__cl_submit(c, &t, 2, c->use_slots ? slots : shards, lens,
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
void rc__cl_refresh_start(rc_cluster_t *c)
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

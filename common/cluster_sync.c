/* Blocking Redis Cluster access (see cluster_sync.h).
 * SPDX-License-Identifier: MIT */
#include "common/cluster_sync.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/mem.h"
#include "common/slot.h"

#define MAX_NODES 64 /* masters remembered (and cached connections) */
#define IP_CAP 64

typedef struct sync_node {
    char ip[IP_CAP];
    int port;
    redisContext *ctx; /* NULL until first used */
} sync_node_t;

struct rc_cluster_sync {
    rc_redis_url_t url;
    sync_node_t nodes[MAX_NODES];
    unsigned nnodes;
    int16_t owner[RC_SLOT_COUNT]; /* index into nodes, or -1 */
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t cap,
                                                          const char *fmt, ...)
{
    va_list ap;

    if (!err || !cap)
        return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static redisContext *dial(const rc_cluster_sync_t *cs, const char *host,
                          int port, char *err, size_t cap)
{
    struct timeval tv = {RC_CLUSTER_SYNC_TIMEOUT_MS / 1000,
                         (RC_CLUSTER_SYNC_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    redisReply *r = NULL;

    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        set_err(err, cap, "%s:%d: %s", host, port,
                c ? c->errstr : "out of memory");
        goto fail;
    }
    if (cs->url.password[0]) {
        r = cs->url.user[0]
                ? redisCommand(c, "AUTH %s %s", cs->url.user, cs->url.password)
                : redisCommand(c, "AUTH %s", cs->url.password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            set_err(err, cap, "%s:%d: AUTH: %s", host, port,
                    r ? r->str : c->errstr);
            goto fail;
        }
        freeReplyObject(r);
    }
    return c;
fail:
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return NULL;
}

static int node_index(rc_cluster_sync_t *cs, const char *ip, size_t iplen,
                      long long port)
{
    if (iplen >= IP_CAP || port < 1 || port > 65535)
        return -1;
    for (unsigned i = 0; i < cs->nnodes; i++)
        if (cs->nodes[i].port == port && strlen(cs->nodes[i].ip) == iplen &&
            memcmp(cs->nodes[i].ip, ip, iplen) == 0)
            return (int)i;
    if (cs->nnodes == MAX_NODES)
        return -1;
    /* ip may be one of cs's own (the address asked): memmove. */
    memmove(cs->nodes[cs->nnodes].ip, ip, iplen);
    cs->nodes[cs->nnodes].ip[iplen] = '\0';
    cs->nodes[cs->nnodes].port = (int)port;
    cs->nodes[cs->nnodes].ctx = NULL;
    return (int)cs->nnodes++;
}

/* CLUSTER SLOTS from one node: [[start, end, [ip, port, id...], ...], ...].
 * An empty ip means the node asked. */
static bool load_from(rc_cluster_sync_t *cs, redisContext *c, const char *asked,
                      char *err, size_t cap)
{
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int16_t *own = rc_xmalloc(RC_SLOT_COUNT * sizeof(*own));
    bool ok = false;

    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        set_err(err, cap, "%s: CLUSTER SLOTS: %s", asked,
                !r                             ? c->errstr
                : r->type == REDIS_REPLY_ERROR ? r->str
                                               : "no slots");
        goto out;
    }
    for (unsigned s = 0; s < RC_SLOT_COUNT; s++)
        own[s] = -1; /* the map is replaced only once all of it parsed */
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i], *m;
        const char *ip;
        size_t iplen;
        int idx;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            goto bad;
        m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad;
        ip = m->element[0]->str;
        iplen = m->element[0]->len;
        if (iplen == 0 || (iplen == 1 && ip[0] == '?')) {
            ip = asked;
            iplen = strlen(asked);
        }
        idx = node_index(cs, ip, iplen, m->element[1]->integer);
        if (idx < 0 || e->element[0]->integer < 0 ||
            e->element[1]->integer >= RC_SLOT_COUNT)
            goto bad;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer;
             s++)
            own[s] = (int16_t)idx;
    }
    memcpy(cs->owner, own, sizeof(cs->owner));
    ok = true;
    goto out;
bad:
    set_err(err, cap, "%s: bad CLUSTER SLOTS reply", asked);
out:
    free(own);
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Known masters first (their connections are open), then the seeds. */
static bool load_map(rc_cluster_sync_t *cs, char *err, size_t cap)
{
    for (unsigned i = 0; i < cs->nnodes; i++) {
        if (cs->nodes[i].ctx &&
            load_from(cs, cs->nodes[i].ctx, cs->nodes[i].ip, err, cap))
            return true;
    }
    for (unsigned i = 0; i < cs->url.nhosts; i++) {
        const rc_redis_hostport_t *h = &cs->url.hosts[i];
        redisContext *c = dial(cs, h->host, h->port, err, cap);
        bool ok;
        if (!c)
            continue;
        ok = load_from(cs, c, h->host, err, cap);
        redisFree(c);
        if (ok)
            return true;
    }
    return false;
}

rc_cluster_sync_t *rc_cluster_sync_open(const rc_redis_url_t *url, char *err,
                                        size_t errcap)
{
    rc_cluster_sync_t *cs;

    if (url->topo != RC_REDIS_CLUSTER || url->nhosts < 1) {
        set_err(err, errcap, "not a redis-cluster:// URL");
        return NULL;
    }
    cs = rc_xcalloc(1, sizeof(*cs));
    cs->url = *url;
    if (!load_map(cs, err, errcap)) {
        rc_cluster_sync_close(cs);
        return NULL;
    }
    return cs;
}

void rc_cluster_sync_close(rc_cluster_sync_t *cs)
{
    if (!cs)
        return;
    for (unsigned i = 0; i < cs->nnodes; i++)
        if (cs->nodes[i].ctx)
            redisFree(cs->nodes[i].ctx);
    free(cs);
}

rc_err_t rc_cluster_sync_master_of(rc_cluster_sync_t *cs, const char *key,
                                   size_t len, char *ip, size_t cap, int *port)
{
    int idx = cs->owner[rc_slot_of(key, len)];

    if (idx < 0)
        return RC_ENOENT;
    if (strlen(cs->nodes[idx].ip) >= cap)
        return RC_EINVAL;
    snprintf(ip, cap, "%s", cs->nodes[idx].ip);
    *port = cs->nodes[idx].port;
    return RC_OK;
}

size_t rc_cluster_sync_masters(const rc_cluster_sync_t *cs, const char **ips,
                               int *ports, size_t cap)
{
    bool used[MAX_NODES] = {false};
    size_t n = 0;

    for (unsigned s = 0; s < RC_SLOT_COUNT; s++)
        if (cs->owner[s] >= 0)
            used[cs->owner[s]] = true;
    for (unsigned i = 0; i < cs->nnodes; i++) {
        if (!used[i])
            continue;
        if (n < cap) {
            ips[n] = cs->nodes[i].ip;
            ports[n] = cs->nodes[i].port;
        }
        n++;
    }
    return n;
}

static redisContext *conn(rc_cluster_sync_t *cs, int idx, char *err, size_t cap)
{
    sync_node_t *n = &cs->nodes[idx];

    if (!n->ctx)
        n->ctx = dial(cs, n->ip, n->port, err, cap);
    return n->ctx;
}

static void drop(rc_cluster_sync_t *cs, int idx)
{
    if (cs->nodes[idx].ctx)
        redisFree(cs->nodes[idx].ctx);
    cs->nodes[idx].ctx = NULL;
}

/* "MOVED 3999 127.0.0.1:6381": the slot and the node's index. */
static int redirect_target(rc_cluster_sync_t *cs, const char *s, int from,
                           unsigned *slot)
{
    const char *sp = strchr(s, ' '), *addr, *colon;
    char *end;
    long v;

    if (!sp)
        return -1;
    v = strtol(sp + 1, &end, 10);
    if (*end != ' ' || v < 0 || v >= RC_SLOT_COUNT)
        return -1;
    *slot = (unsigned)v;
    addr = end + 1;
    colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    v = strtol(colon + 1, &end, 10);
    if (*end)
        return -1;
    if (colon == addr)
        return node_index(cs, cs->nodes[from].ip, strlen(cs->nodes[from].ip),
                          v);
    return node_index(cs, addr, (size_t)(colon - addr), v);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

redisReply *rc_cluster_sync_command(rc_cluster_sync_t *cs, const char *key,
                                    size_t keylen, int argc, const char **argv,
                                    const size_t *lens, char *err,
                                    size_t errcap)
{
    unsigned slot = rc_slot_of(key, keylen);
    int ask = -1; /* an ASK target for the next try */

    for (int tries = 0; tries < RC_CLUSTER_SYNC_MAX_TRIES; tries++) {
        int idx = ask >= 0 ? ask : cs->owner[slot];
        redisContext *c;
        redisReply *r = NULL;
        void *rep = NULL;
        unsigned s;
        int to;

        if (idx < 0) { /* nobody serves it (yet): learn the map again */
            set_err(err, errcap, "slot %u is not served", slot);
            nap_ms(50L << (tries < 4 ? tries : 4));
            (void)load_map(cs, NULL, 0);
            continue;
        }
        c = conn(cs, idx, err, errcap);
        if (!c) {
            ask = -1;
            cs->owner[slot] = -1;
            continue;
        }
        if (ask >= 0) {
            ask = -1;
            if (redisAppendCommand(c, "ASKING") != REDIS_OK ||
                redisGetReply(c, &rep) != REDIS_OK) {
                drop(cs, idx);
                continue;
            }
            freeReplyObject(rep);
        }
        r = redisCommandArgv(c, argc, argv, lens);
        if (!r) {
            /* The node died or stalled: the command may have run, so it
             * is not resent. */
            set_err(err, errcap, "%s:%d: %s", cs->nodes[idx].ip,
                    cs->nodes[idx].port, c->errstr);
            drop(cs, idx);
            return NULL;
        }
        if (r->type != REDIS_REPLY_ERROR)
            return r;
        if (strncmp(r->str, "MOVED ", 6) == 0 &&
            (to = redirect_target(cs, r->str, idx, &s)) >= 0) {
            cs->owner[s] = (int16_t)to;
            freeReplyObject(r);
            (void)load_map(cs, NULL, 0);
            cs->owner[slot] = (int16_t)to; /* the newest word wins */
            continue;
        }
        if (strncmp(r->str, "ASK ", 4) == 0 &&
            (to = redirect_target(cs, r->str, idx, &s)) >= 0) {
            ask = to;
            freeReplyObject(r);
            continue;
        }
        if (strncmp(r->str, "TRYAGAIN", 8) == 0 ||
            strncmp(r->str, "CLUSTERDOWN", 11) == 0 ||
            strncmp(r->str, "LOADING", 7) == 0) {
            freeReplyObject(r);
            nap_ms(25L << (tries < 4 ? tries : 4));
            continue;
        }
        return r; /* an ordinary error reply */
    }
    set_err(err, errcap, "slot %u: too many redirections", slot);
    return NULL;
}

redisReply *rc_cluster_sync_command_to(rc_cluster_sync_t *cs, const char *ip,
                                       int port, int argc, const char **argv,
                                       const size_t *lens, char *err,
                                       size_t errcap)
{
    int idx = node_index(cs, ip, strlen(ip), port);
    redisContext *c;
    redisReply *r;

    if (idx < 0) {
        set_err(err, errcap, "%s:%d: not a usable address", ip, port);
        return NULL;
    }
    c = conn(cs, idx, err, errcap);
    if (!c)
        return NULL;
    r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        set_err(err, errcap, "%s:%d: %s", ip, port, c->errstr);
        drop(cs, idx);
    }
    return r;
}

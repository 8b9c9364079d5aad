/* The roomcast CLI on Redis Cluster (see cli_cluster.h).
 * SPDX-License-Identifier: MIT */
#include "clients/cli_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cluster_sync.h"
#include "common/keys.h"
#include "common/mem.h"

#define MAX_MASTERS 1024

static rc_cluster_sync_t *open_cluster(const char *who, const rc_redis_url_t *u)
{
    char err[256] = "";
    rc_cluster_sync_t *cs = rc_cluster_sync_open(u, err, sizeof(err));

    if (!cs)
        fprintf(stderr, "roomcast %s: Redis Cluster: %s\n", who, err);
    return cs;
}

int rc_cli_cluster_publish(const rc_redis_url_t *u, const char *prefix,
                           const char *room, const char *data, size_t dlen,
                           bool ephemeral)
{
    char key[RC_KEYS_MAX], err[256] = "";
    rc_cluster_sync_t *cs;
    redisReply *rep;
    int rc = 1;

    if (rc_keys_room(key, sizeof(key), prefix, room) != RC_OK)
        return 1;
    cs = open_cluster("publish", u);
    if (!cs)
        return 1;
    if (ephemeral) {
        const char *av[3] = {"SPUBLISH", key, data};
        size_t lens[3] = {8, strlen(key), dlen};
        rep = rc_cluster_sync_command(cs, key, lens[1], 3, av, lens, err,
                                      sizeof(err));
    } else {
        /* The room's key: a real key, so the cluster routes by it. */
        const char *av[5] = {"FCALL", "roomcast_publish", "1", key, data};
        size_t lens[5] = {5, 16, 1, strlen(key), dlen};
        rep = rc_cluster_sync_command(cs, key, lens[3], 5, av, lens, err,
                                      sizeof(err));
    }
    if (!rep) {
        fprintf(stderr, "roomcast publish: Redis Cluster: %s\n", err);
        goto done;
    }
    if (rep->type != REDIS_REPLY_INTEGER) {
        const char *e =
            rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply";
        fprintf(stderr, "roomcast publish: Redis %s: %s\n",
                ephemeral ? "SPUBLISH" : "FCALL", e);
        goto done;
    }
    if (ephemeral) {
        if (rep->integer == 0)
            fprintf(stderr,
                    "roomcast publish: note: no node has members in '%s'; "
                    "nobody got the message\n",
                    room);
    } else {
        printf("%lld\n", rep->integer);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (rep)
        freeReplyObject(rep);
    rc_cluster_sync_close(cs);
    return rc;
}

/* The masters' addresses, copied (cs may change its own on later calls). */
static size_t masters(rc_cluster_sync_t *cs, char (*ips)[64], int *ports)
{
    const char *p[MAX_MASTERS];
    size_t n = rc_cluster_sync_masters(cs, p, ports, MAX_MASTERS);

    if (n > MAX_MASTERS)
        n = MAX_MASTERS;
    for (size_t i = 0; i < n; i++)
        snprintf(ips[i], 64, "%s", p[i]);
    return n;
}

int rc_cli_cluster_drain(const rc_redis_url_t *u, const char *prefix,
                         const char *node)
{
    char chan[RC_KEYS_MAX], err[256] = "", (*ips)[64];
    int *ports, rc = 1;
    size_t n;
    rc_cluster_sync_t *cs;

    if (rc_keys_ctl(chan, sizeof(chan), prefix, node) != RC_OK)
        return 1;
    cs = open_cluster("drain", u);
    if (!cs)
        return 1;
    ips = rc_xcalloc(MAX_MASTERS, sizeof(*ips));
    ports = rc_xcalloc(MAX_MASTERS, sizeof(*ports));
    n = masters(cs, ips, ports);
    for (size_t i = 0; i < n && rc != 0; i++) {
        const char *num[3] = {"PUBSUB", "NUMSUB", chan};
        size_t numl[3] = {6, 6, strlen(chan)};
        const char *pub[3] = {"PUBLISH", chan, "drain"};
        size_t publ[3] = {7, strlen(chan), 5};
        redisReply *rep = rc_cluster_sync_command_to(
            cs, ips[i], ports[i], 3, num, numl, err, sizeof(err));
        bool here = rep && rep->type == REDIS_REPLY_ARRAY &&
                    rep->elements == 2 &&
                    rep->element[1]->type == REDIS_REPLY_INTEGER &&
                    rep->element[1]->integer > 0;
        if (rep)
            freeReplyObject(rep);
        if (!here)
            continue;
        rep = rc_cluster_sync_command_to(cs, ips[i], ports[i], 3, pub, publ,
                                         err, sizeof(err));
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0) {
            printf("drain sent to %s\n", node);
            rc = fflush(stdout) == 0 ? 0 : 1;
        }
        if (rep)
            freeReplyObject(rep);
    }
    if (rc != 0)
        fprintf(stderr,
                "roomcast drain: no node '%s' is listening on %s on any "
                "master (see `roomcast nodes`)%s%s\n",
                node, chan, err[0] ? ": " : "", err);
    free(ips);
    free(ports);
    rc_cluster_sync_close(cs);
    return rc;
}

int rc_cli_cluster_registry(const rc_redis_url_t *u, const char *pattern,
                            size_t max, char ***keys, redisReply ***vals,
                            size_t *n)
{
    char err[256] = "", (*ips)[64];
    int *ports, rc = 1;
    size_t nm, cap = 0;
    rc_cluster_sync_t *cs = open_cluster("nodes", u);

    *keys = NULL;
    *vals = NULL;
    *n = 0;
    if (!cs)
        return 1;
    ips = rc_xcalloc(MAX_MASTERS, sizeof(*ips));
    ports = rc_xcalloc(MAX_MASTERS, sizeof(*ports));
    nm = masters(cs, ips, ports);
    /* The registry spreads over every master: SCAN each of them. */
    for (size_t m = 0; m < nm; m++) {
        char cursor[32] = "0";
        do {
            const char *av[6] = {"SCAN",  cursor,  "MATCH",
                                 pattern, "COUNT", "1000"};
            size_t lens[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
            redisReply *rep = rc_cluster_sync_command_to(
                cs, ips[m], ports[m], 6, av, lens, err, sizeof(err));
            redisReply *page;
            if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING ||
                rep->element[1]->type != REDIS_REPLY_ARRAY) {
                fprintf(stderr, "roomcast nodes: Redis SCAN on %s:%d: %s\n",
                        ips[m], ports[m],
                        !rep                             ? err
                        : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                         : "unexpected reply");
                if (rep)
                    freeReplyObject(rep);
                goto done;
            }
            snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
            page = rep->element[1];
            for (size_t k = 0; k < page->elements; k++) {
                redisReply *e = page->element[k];
                bool dup = false;
                if (e->type != REDIS_REPLY_STRING)
                    continue;
                for (size_t d = 0; d < *n && !dup; d++)
                    dup = strcmp((*keys)[d], e->str) == 0;
                if (dup)
                    continue;
                if (*n >= max) {
                    fprintf(stderr,
                            "roomcast nodes: more than %zu registry "
                            "entries; stopping\n",
                            max);
                    freeReplyObject(rep);
                    goto done;
                }
                if (*n == cap) {
                    cap = cap ? cap * 2 : 16;
                    *keys = rc_xrealloc(*keys, cap * sizeof(**keys));
                    *vals = rc_xrealloc(*vals, cap * sizeof(**vals));
                }
                (*keys)[*n] = rc_xstrdup(e->str);
                (*vals)[*n] = NULL;
                (*n)++;
            }
            freeReplyObject(rep);
        } while (strcmp(cursor, "0") != 0);
    }
    for (size_t k = 0; k < *n; k++) {
        const char *av[2] = {"GET", (*keys)[k]};
        size_t lens[2] = {3, strlen((*keys)[k])};
        (*vals)[k] = rc_cluster_sync_command(cs, (*keys)[k], lens[1], 2, av,
                                             lens, err, sizeof(err));
        if (!(*vals)[k]) {
            fprintf(stderr, "roomcast nodes: Redis GET %s: %s\n", (*keys)[k],
                    err);
            goto done;
        }
    }
    rc = 0;
done:
    free(ips);
    free(ports);
    rc_cluster_sync_close(cs);
    return rc;
}

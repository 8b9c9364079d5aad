/* Blocking Sentinel lookup for the CLI (see sentinel_sync.h).
 * SPDX-License-Identifier: MIT */
#include "common/sentinel_sync.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

static redisContext *dial(const char *host, int port, char *err, size_t cap)
{
    struct timeval tv = {RC_SENTINEL_SYNC_TIMEOUT_MS / 1000,
                         (RC_SENTINEL_SYNC_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);

    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, cap, "%s:%d: %s", host, port,
                 c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

static bool is_str(const redisReply *r)
{
    return r &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static const char *reply_err(redisContext *c, const redisReply *r)
{
    if (!r)
        return c->errstr[0] ? c->errstr : "no reply";
    if (r->type == REDIS_REPLY_ERROR)
        return r->str;
    return NULL;
}

/* Asks one sentinel; fills mip/mport. */
static bool ask(const rc_redis_hostport_t *h, const char *name, char *mip,
                size_t cap, int *mport, char *err, size_t errcap)
{
    redisContext *c = dial(h->host, h->port, err, errcap);
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", name};
    size_t lens[3] = {8, 23, strlen(name)};
    redisReply *r;
    bool ok = false;
    char *end;
    long p;

    if (!c)
        return false;
    r = redisCommandArgv(c, 3, argv, lens);
    if (reply_err(c, r)) {
        snprintf(err, errcap, "sentinel %s:%d: %s", h->host, h->port,
                 reply_err(c, r));
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(err, errcap, "sentinel %s:%d: unknown master name %s", h->host,
                 h->port, name);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               !is_str(r->element[0]) || !is_str(r->element[1]) ||
               r->element[0]->len >= cap ||
               (p = strtol(r->element[1]->str, &end, 10)) < 1 || p > 65535 ||
               *end) {
        snprintf(err, errcap, "sentinel %s:%d: bad reply", h->host, h->port);
    } else {
        snprintf(mip, cap, "%s", r->element[0]->str);
        *mport = (int)p;
        ok = true;
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* [AUTH and] ROLE at the address a sentinel named. */
static bool confirm(const rc_redis_url_t *url, const char *mip, int mport,
                    char *err, size_t errcap)
{
    redisContext *c = dial(mip, mport, err, errcap);
    redisReply *r;
    bool ok = false;

    if (!c)
        return false;
    if (url->password[0]) {
        const char *argv[3] = {"AUTH", url->user, url->password};
        size_t lens[3] = {4, strlen(url->user), strlen(url->password)};
        if (url->user[0]) {
            r = redisCommandArgv(c, 3, argv, lens);
        } else {
            argv[1] = url->password;
            lens[1] = lens[2];
            r = redisCommandArgv(c, 2, argv, lens);
        }
        if (reply_err(c, r)) {
            snprintf(err, errcap, "master %s:%d: AUTH: %s", mip, mport,
                     reply_err(c, r));
            goto done;
        }
        freeReplyObject(r);
    }
    r = redisCommand(c, "ROLE");
    if (reply_err(c, r))
        snprintf(err, errcap, "master %s:%d: ROLE: %s", mip, mport,
                 reply_err(c, r));
    else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
             !is_str(r->element[0]))
        snprintf(err, errcap, "master %s:%d: bad ROLE reply", mip, mport);
    else if (strcmp(r->element[0]->str, "master") != 0)
        snprintf(err, errcap, "%s:%d is a %s, not a master", mip, mport,
                 r->element[0]->str);
    else
        ok = true;
done:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

rc_err_t rc_sentinel_resolve_sync(const rc_redis_url_t *url, char *ip,
                                  size_t cap, int *port, char *err,
                                  size_t errcap)
{
    char mip[256], scratch[256];
    int mport = 0;

    if (!err || !errcap) {
        err = scratch;
        errcap = sizeof(scratch);
    }
    err[0] = '\0';
    if (url->topo != RC_REDIS_SENTINEL || !url->nhosts || !cap) {
        snprintf(err, errcap, "not a redis-sentinel:// URL");
        return RC_EINVAL;
    }
    for (unsigned i = 0; i < url->nhosts && i < RC_REDIS_URL_MAX_HOSTS; i++) {
        if (!ask(&url->hosts[i], url->master, mip, sizeof(mip), &mport, err,
                 errcap) ||
            !confirm(url, mip, mport, err, errcap))
            continue;
        if (strlen(mip) >= cap) {
            snprintf(err, errcap, "address too long");
            return RC_EINVAL;
        }
        snprintf(ip, cap, "%s", mip);
        *port = mport;
        return RC_OK;
    }
    return RC_ENOENT;
}

/* Redis URL parsing (the three topologies of PROTOCOL.md 5.1) and key prefix
 * checks.
 * SPDX-License-Identifier: MIT */
#include "common/redis_url.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *scheme;
    rc_redis_topo_t topo;
    int port; /* default port of a listed host */
} schemes[] = {
    {"redis://", RC_REDIS_SINGLE, 6379},
    {"redis-sentinel://", RC_REDIS_SENTINEL, RC_REDIS_SENTINEL_PORT},
    {"redis-cluster://", RC_REDIS_CLUSTER, 6379},
};

static int copy_part(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return RC_EINVAL;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* host[:port] or [v6][:port] in [p, end). */
static rc_err_t parse_hostport(const char *p, const char *end, int defport,
                               rc_redis_hostport_t *hp)
{
    const char *colon;
    char *e;
    long v;

    hp->port = defport;
    if (*p == '[') { /* [::1]:6379 */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || rb == p + 1 ||
            copy_part(hp->host, sizeof(hp->host), p + 1, (size_t)(rb - p - 1)))
            return RC_EINVAL;
        if (rb + 1 != end && rb[1] != ':')
            return RC_EINVAL;
        colon = rb + 1 < end ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        if ((colon ? colon : end) == p ||
            copy_part(hp->host, sizeof(hp->host), p,
                      (size_t)((colon ? colon : end) - p)))
            return RC_EINVAL;
    }
    /* A comma separates hosts; no host name or address holds one. */
    if (strchr(hp->host, ','))
        return RC_EINVAL;
    if (colon) {
        errno = 0;
        v = strtol(colon + 1, &e, 10);
        if (errno || e != end || e == colon + 1 || v < 1 || v > 65535)
            return RC_EINVAL;
        hp->port = (int)v;
    }
    return RC_OK;
}

/* A master name travels as one argument of SENTINEL commands and in the
 * space-separated +switch-master payload: printable, no spaces. */
static bool master_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return false;
    return true;
}

rc_err_t rc_redis_url_parse(const char *url, rc_redis_url_t *out)
{
    const char *p = NULL, *end, *at, *slash, *hend, *h;
    rc_redis_url_t parsed, *u = &parsed;
    int defport = 6379;
    char *e;
    long v;

    memset(u, 0, sizeof(*u));
    for (size_t i = 0; i < RC_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(url, schemes[i].scheme, n) == 0) {
            p = url + n;
            u->topo = schemes[i].topo;
            defport = schemes[i].port;
            break;
        }
    }
    if (!p)
        return RC_EINVAL;
    end = p + strlen(p);
    if (u->topo == RC_REDIS_SENTINEL) {
        const char *hash = strrchr(p, '#');
        if (!hash ||
            copy_part(u->master, sizeof(u->master), hash + 1,
                      (size_t)(end - hash - 1)) ||
            !master_ok(u->master))
            return RC_EINVAL;
        end = hash;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    at = memchr(p, '@', (size_t)(end - p));
    if (at && (!slash || at < slash)) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (c) {
            if (copy_part(u->user, sizeof(u->user), p, (size_t)(c - p)) ||
                copy_part(u->password, sizeof(u->password), c + 1,
                          (size_t)(at - c - 1)))
                return RC_EINVAL;
        } else if (copy_part(u->password, sizeof(u->password), p,
                             (size_t)(at - p))) {
            return RC_EINVAL;
        }
        p = at + 1;
    }
    hend = slash ? slash : end;
    if (p == hend)
        return RC_EINVAL;
    for (h = p;;) {
        const char *comma = memchr(h, ',', (size_t)(hend - h));
        if (comma && u->topo == RC_REDIS_SINGLE)
            return RC_EINVAL; /* one server only */
        if (u->nhosts == RC_REDIS_URL_MAX_HOSTS ||
            parse_hostport(h, comma ? comma : hend, defport,
                           &u->hosts[u->nhosts]) != RC_OK)
            return RC_EINVAL;
        u->nhosts++;
        if (!comma)
            break;
        h = comma + 1;
    }
    memcpy(u->host, u->hosts[0].host, sizeof(u->host));
    u->port = u->hosts[0].port;
    if (slash && u->topo == RC_REDIS_CLUSTER)
        return RC_EINVAL; /* a cluster has db 0 only */
    if (slash && slash + 1 < end) {
        errno = 0;
        v = strtol(slash + 1, &e, 10);
        if (errno || e != end || v < 0 || v > 65535)
            return RC_EINVAL;
        u->db = (int)v;
    }
    *out = parsed;
    return RC_OK;
}

bool rc_redis_prefix_ok(const char *prefix)
{
    if (strlen(prefix) > 64)
        return false;
    for (const char *p = prefix; *p; p++)
        if (*p == '\'' || *p == '\\' || *p == '{' || *p == '}' ||
            (unsigned char)*p < 0x20)
            return false;
    return true;
}

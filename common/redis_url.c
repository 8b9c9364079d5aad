/* redis:// URL parsing and key prefix checks.
 * SPDX-License-Identifier: MIT */
#include "common/redis_url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int copy_part(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        return RC_EINVAL;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

rc_err_t rc_redis_url_parse(const char *url, rc_redis_url_t *out)
{
    const char *p, *at, *slash, *colon, *hend;
    rc_redis_url_t parsed, *u = &parsed;
    char *end;
    long v;

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis://", 8) != 0)
        return RC_EINVAL;
    p = url + 8;
    slash = strchr(p, '/');
    at = strchr(p, '@');
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
    hend = slash ? slash : p + strlen(p);
    if (*p == '[') { /* [::1]:6379 */
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (!rb || rb == p + 1 ||
            copy_part(u->host, sizeof(u->host), p + 1, (size_t)(rb - p - 1)))
            return RC_EINVAL;
        if (rb + 1 != hend && rb[1] != ':')
            return RC_EINVAL;
        colon = rb + 1 < hend ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        if ((colon ? colon : hend) == p ||
            copy_part(u->host, sizeof(u->host), p,
                      (size_t)((colon ? colon : hend) - p)))
            return RC_EINVAL;
    }
    if (colon) {
        errno = 0;
        v = strtol(colon + 1, &end, 10);
        if (errno || end != hend || end == colon + 1 || v < 1 || v > 65535)
            return RC_EINVAL;
        u->port = (int)v;
    }
    if (slash && slash[1]) {
        errno = 0;
        v = strtol(slash + 1, &end, 10);
        if (errno || *end || v < 0 || v > 65535)
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

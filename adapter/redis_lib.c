/* The Redis function library for one node's config: the text of
 * adapter/roomcast.lua (embedded at build time as rc__redis_lua) with its
 * @...@ placeholders replaced by the key prefix, the history sizes and
 * the envelope key (docs/REDIS.md, "Envelopes"), and the publish command
 * (SPUBLISH on Redis Cluster).
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

/* adapter/roomcast.lua, generated into the build directory. */
extern const char rc__redis_lua[];

typedef struct subst {
    const char *name, *value;
} subst_t;

/* Writes the expanded text into out (when not NULL) and returns its length:
 * called once to measure, once to write. */
static size_t expand(char *out, const subst_t *sub, size_t nsub)
{
    const char *s = rc__redis_lua;
    size_t n = 0;

    while (*s) {
        size_t i;
        for (i = 0; i < nsub; i++) {
            size_t nl = strlen(sub[i].name), vl = strlen(sub[i].value);
            if (strncmp(s, sub[i].name, nl) != 0)
                continue;
            if (out)
                memcpy(out + n, sub[i].value, vl);
            n += vl;
            s += nl;
            break;
        }
        if (i < nsub)
            continue;
        if (out)
            out[n] = *s;
        n++;
        s++;
    }
    return n;
}

char *rc__redis_library(const char *prefix, uint32_t history_size,
                        int64_t history_ttl_ms, uint32_t max_publish,
                        const char *envkey, bool sharded)
{
    char hsize[16], ttl[24], maxb[16];
    const char *key = envkey ? envkey : "";
    /* The prefix is pasted into a Lua string literal: rc_redis_prefix_ok()
     * refuses quotes and backslashes. */
    const subst_t sub[] = {
        {"@PREFIX@", prefix},
        {"@HISTORY_SIZE@", hsize},
        {"@HISTORY_TTL_MS@", ttl},
        {"@MAX_PUBLISH@", maxb},
        {"@ENVKEY@", key},
        {"@PUBCMD@", sharded ? "SPUBLISH" : "PUBLISH"},
    };
    size_t len;
    char *lib;

    if (!rc_redis_prefix_ok(prefix) ||
        strspn(key, "0123456789abcdef") != strlen(key))
        return NULL;
    snprintf(hsize, sizeof(hsize), "%" PRIu32, history_size);
    snprintf(ttl, sizeof(ttl), "%" PRId64, history_ttl_ms);
    snprintf(maxb, sizeof(maxb), "%" PRIu32, max_publish);
    len = expand(NULL, sub, RC_ARRAY_LEN(sub));
    lib = rc_xmalloc(len + 1);
    expand(lib, sub, RC_ARRAY_LEN(sub));
    lib[len] = '\0';
    return lib;
}

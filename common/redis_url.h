/* redis:// URLs and key prefixes, as roomcastd (redis_url, key_prefix)
 * and the roomcast CLI read them: one parser for both.
 * SPDX-License-Identifier: MIT */
#ifndef RC_REDIS_URL_H
#define RC_REDIS_URL_H

#include <stdbool.h>

#include "common/err.h"

typedef struct rc_redis_url {
    char host[256];
    int port; /* 6379 when absent */
    int db;
    char user[128];     /* "" when absent */
    char password[256]; /* "" when absent */
} rc_redis_url_t;

/* redis://[[user]:password@]host[:port][/db], host may be [v6]. RC_EINVAL
 * (out untouched) on anything else. */
RC_MUST_CHECK rc_err_t rc_redis_url_parse(const char *url, rc_redis_url_t *out);

/* A key prefix is pasted into Lua source and into hash-tagged key names:
 * at most 64 bytes, no quotes, braces, backslashes or control bytes. */
bool rc_redis_prefix_ok(const char *prefix);

#endif /* RC_REDIS_URL_H */

/* Redis URLs and key prefixes, as roomcastd (redis_url, key_prefix) and the
 * roomcast CLI read them: one parser for the three topologies of PROTOCOL.md
 * section 5.1.
 * SPDX-License-Identifier: MIT */
#ifndef RC_REDIS_URL_H
#define RC_REDIS_URL_H

#include <stdbool.h>

#include "common/err.h"

#define RC_REDIS_URL_MAX_HOSTS 16    /* sentinels or cluster seeds */
#define RC_REDIS_SENTINEL_PORT 26379 /* default port of a sentinel */

typedef enum rc_redis_topo {
    RC_REDIS_SINGLE = 0, /* redis:// */
    RC_REDIS_SENTINEL,   /* redis-sentinel:// */
    RC_REDIS_CLUSTER,    /* redis-cluster:// */
} rc_redis_topo_t;

typedef struct rc_redis_hostport {
    char host[256]; /* name or IP; a v6 address without its brackets */
    int port;
} rc_redis_hostport_t;

typedef struct rc_redis_url {
    /* The first listed host: the server itself for redis://, the first
     * sentinel or seed otherwise. Kept for callers that know one host. */
    char host[256];
    int port;           /* 6379 when absent (26379 for a sentinel) */
    int db;             /* 0 when absent; always 0 for redis-cluster:// */
    char user[128];     /* "" when absent; the Redis servers' user */
    char password[256]; /* "" when absent; never the sentinels' */
    rc_redis_topo_t topo;
    unsigned nhosts; /* 1..RC_REDIS_URL_MAX_HOSTS, in URL order */
    rc_redis_hostport_t hosts[RC_REDIS_URL_MAX_HOSTS];
    char master[128]; /* sentinel's master name; "" otherwise */
} rc_redis_url_t;

/* Parses one of
 *   redis://[[user]:password@]host[:port][/db]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#name
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]...]
 * where a host may be [v6]. RC_EINVAL (out untouched) on anything else:
 * another scheme, an empty host, a bad port or db, more than
 * RC_REDIS_URL_MAX_HOSTS hosts, a list on redis://, a db on a cluster, a
 * sentinel URL without its master name. */
RC_MUST_CHECK rc_err_t rc_redis_url_parse(const char *url, rc_redis_url_t *out);

/* A key prefix is pasted into Lua source and into hash-tagged key names:
 * at most 64 bytes, no quotes, braces, backslashes or control bytes. */
bool rc_redis_prefix_ok(const char *prefix);

#endif /* RC_REDIS_URL_H */

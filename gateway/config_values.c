/* What a config value looks like: the text parsers (integer, boolean,
 * host:port) and the per-key checks the key table in config.c names. Pure
 * functions of text, no loader state.
 * SPDX-License-Identifier: MIT */
#include "gateway/config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/redis_url.h"

const char *rc__config_check_ws_path(const char *s)
{
    if (s[0] != '/')
        return "must start with \"/\"";
    for (; *s; s++)
        if (!isgraph((unsigned char)*s) || *s == '?' || *s == '#')
            return "must be a path without spaces, \"?\" or \"#\"";
    return NULL;
}

const char *rc__config_check_node_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RC_CONFIG_MAX_NODE_ID)
        return "must be 1..128 printable characters without spaces";
    for (; *s; s++)
        if (!isgraph((unsigned char)*s))
            return "must be 1..128 printable characters without spaces";
    return NULL;
}

const char *rc__config_check_redis_url(const char *s)
{
    rc_redis_url_t url;

    if (rc_redis_url_parse(s, &url) != RC_OK)
        return "must be redis://[[user]:password@]host[:port][/db]";
    return NULL;
}

const char *rc__config_check_key_prefix(const char *s)
{
    if (!rc_redis_prefix_ok(s))
        return "at most 64 bytes, no quotes, braces, backslashes or control "
               "characters";
    return NULL;
}

static const char *const jwt_algs[] = {"HS256", "HS384", "HS512", "RS256",
                                       "RS384", "RS512", "ES256", "ES384"};

const char *rc__config_check_jwt_alg(const char *s)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(jwt_algs); i++)
        if (strcmp(s, jwt_algs[i]) == 0)
            return NULL;
    return "must be one of HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384";
}

const char *rc__config_check_tls_min_version(const char *s)
{
    if (strcmp(s, "1.2") == 0 || strcmp(s, "1.3") == 0)
        return NULL;
    return "must be 1.2 or 1.3 (older versions are not offered)";
}

const char *rc__config_check_tls_ciphers(const char *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int ok = ctx && s[0] && SSL_CTX_set_cipher_list(ctx, s) == 1;

    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok ? NULL
              : "is not a cipher list OpenSSL takes (see `openssl "
                "ciphers`)";
}

const char *rc__config_check_log_level(const char *s)
{
    if (rc_log_level_parse(s) < 0)
        return "must be one of debug info warn error";
    return NULL;
}

/* Decimal integer, optional '-', nothing else (no spaces, no '+', no 0x). */
bool rc__config_parse_int(const char *s, int64_t *out)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    char *end;
    long long v;

    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool rc__config_parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* "host:port" or "[v6]:port"; host non-empty, port 1..65535. On success
 * *host is owned. */
bool rc__config_parse_addr(const char *s, char **host, int *port)
{
    const char *h, *p, *colon;
    size_t hlen;
    long v = 0;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':')
            return false;
        h = s + 1;
        hlen = (size_t)(close - h);
        p = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return false;
        h = s;
        hlen = (size_t)(colon - s);
        /* Another colon means an IPv6 address without brackets: ambiguous. */
        if (memchr(s, ':', hlen))
            return false;
        p = colon + 1;
    }
    if (hlen == 0 || hlen >= INET6_ADDRSTRLEN)
        return false;
    /* An address, not a name: both listeners bind with no resolver (the
     * loop never waits on DNS); "localhost" is the one name taken, as
     * 127.0.0.1. */
    {
        char ip[INET6_ADDRSTRLEN];
        unsigned char sa[sizeof(struct in6_addr)];

        memcpy(ip, h, hlen);
        ip[hlen] = '\0';
        if (strcmp(ip, "localhost") == 0) {
            h = "127.0.0.1";
            hlen = strlen(h);
        } else if (inet_pton(AF_INET, ip, sa) != 1 &&
                   inet_pton(AF_INET6, ip, sa) != 1) {
            return false;
        }
    }
    if (*p == '\0' || strlen(p) > 5)
        return false;
    for (const char *q = p; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return false;
        v = v * 10 + (*q - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *host = rc_xstrndup(h, hlen);
    *port = (int)v;
    return true;
}

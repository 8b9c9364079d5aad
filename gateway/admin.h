/* The admin HTTP listener (healthz, readyz, metrics, stats, drain): plain
 * HTTP on libuv, answered as HTTP/1.1 with Connection: close (one request
 * per connection; the request line and the Authorization header are read),
 * separate from the client port so that load balancers and scrapers never
 * compete with clients. Bounded in connections and in the time a request
 * may take to arrive; POST routes can require a Bearer token.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADMIN_H
#define RC_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"

/* Fills body and *ctype (static string); returns the HTTP status. */
typedef int (*rc_admin_handler)(void *ctx, const char *method, const char *path,
                                rc_buf_t *body, const char **ctype);

typedef struct rc_admin rc_admin_t;

#define RC_ADMIN_METHOD_MAX 7 /* "OPTIONS"; a longer method is refused */
#define RC_ADMIN_PATH_MAX 255 /* bytes of path, the query excluded */

/* The request line of an admin request, parsed. */
typedef struct rc_admin_head {
    char method[RC_ADMIN_METHOD_MAX + 1]; /* 1..7 of A-Z */
    char path[RC_ADMIN_PATH_MAX + 1];     /* "/..." visible ASCII, no "?" */
} rc_admin_head_t;

/* Parses the request line at the start of buf (len bytes, NUL not needed):
 * METHOD SP /path[?query] [SP HTTP/1.x] (CR)LF. Pure: no I/O, reads no
 * byte past len. The query is dropped. RC_EINVAL when the line is
 * malformed or incomplete (no LF within len); RC_ELIMIT when the method or
 * the path is longer than its bound (never cut: a cut path could name
 * another route). On failure *out is zeroed. */
RC_MUST_CHECK rc_err_t rc_admin_parse_head(const char *buf, size_t len,
                                           rc_admin_head_t *out);

/* Who may do what on the admin port, and its bounds. */
typedef struct rc_admin_policy {
    /* Bearer token (borrowed; must outlive the listener), or NULL: no
     * request needs one. With a token, every method but GET and HEAD
     * (POST /drain) needs `Authorization: Bearer <token>`, and so does
     * GET /stats when protect_stats; /healthz, /readyz and /metrics stay
     * open for probes and scrapers. */
    const char *token;
    size_t token_len;
    bool protect_stats;
    /* Connections open at once; one more is closed unanswered. */
    uint32_t max_conns;
    /* A request not whole within this many ms is closed, and so is an
     * answer not written out within this many ms more (a client that
     * never reads): slow clients cannot hold the listener's slots. */
    uint64_t timeout_ms;
} rc_admin_policy_t;

/* The policy the config asks for (admin_token*, admin_max_conns,
 * admin_timeout_ms); the token stays cfg's. In admin_routes.c. */
struct rc_config;
rc_admin_policy_t rc_admin_policy_of(const struct rc_config *cfg);

/* Whether the request head (len bytes: request line and headers, NUL not
 * needed) carries `Authorization: Bearer <token>` with exactly token
 * (tlen bytes), compared in constant time. Pure: no I/O, reads no byte
 * past len, nor past the blank line that ends the head (a body is not
 * headers). The header name is case-insensitive, as is "Bearer". */
bool rc_admin_bearer_ok(const char *head, size_t len, const char *token,
                        size_t tlen);

/* Listens on host:port under policy (copied; NULL: no token, 64
 * connections, 5 s). Returns NULL with a reason in err on failure. */
rc_admin_t *rc_admin_create(uv_loop_t *loop, const char *host, int port,
                            rc_admin_handler handler, void *ctx,
                            const rc_admin_policy_t *policy, char *err,
                            size_t errlen);
/* Closes the listener and open requests; frees once the loop closed them.
 * NULL is a no-op. */
void rc_admin_destroy(rc_admin_t *a);

#endif /* RC_ADMIN_H */

/* The admin HTTP listener (healthz, readyz, metrics, stats, drain): plain
 * HTTP on libuv, answered as HTTP/1.1 with Connection: close (one request
 * per connection; only the request line is read), separate from the client
 * port so that load balancers and scrapers never compete with clients.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADMIN_H
#define RC_ADMIN_H

#include <stddef.h>
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

/* Listens on host:port. Returns NULL with a reason in err on failure. */
rc_admin_t *rc_admin_create(uv_loop_t *loop, const char *host, int port,
                            rc_admin_handler handler, void *ctx, char *err,
                            size_t errlen);
/* Closes the listener and open requests; frees once the loop closed them.
 * NULL is a no-op. */
void rc_admin_destroy(rc_admin_t *a);

#endif /* RC_ADMIN_H */

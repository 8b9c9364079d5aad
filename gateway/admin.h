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

/* Listens on host:port. Returns NULL with a reason in err on failure. */
rc_admin_t *rc_admin_create(uv_loop_t *loop, const char *host, int port,
                            rc_admin_handler handler, void *ctx, char *err,
                            size_t errlen);
/* Closes the listener and open requests; frees once the loop closed them.
 * NULL is a no-op. */
void rc_admin_destroy(rc_admin_t *a);

#endif /* RC_ADMIN_H */

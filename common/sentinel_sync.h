/* Blocking Sentinel lookup for the roomcast CLI (never on the gateway's
 * loop: it connects and waits with blocking hiredis calls).
 * SPDX-License-Identifier: MIT */
#ifndef RC_SENTINEL_SYNC_H
#define RC_SENTINEL_SYNC_H

#include <stddef.h>

#include "common/err.h"
#include "common/redis_url.h"

#define RC_SENTINEL_SYNC_TIMEOUT_MS 1000 /* per connect and per reply */

/* Asks the sentinels of url (RC_REDIS_SENTINEL) in URL order for the master
 * of url->master, and confirms each answer with [AUTH and] ROLE on the
 * server itself. On RC_OK writes the master's address to ip (cap bytes) and
 * *port. On failure returns RC_EINVAL (not a sentinel URL, ip too small) or
 * RC_ENOENT (no sentinel named a confirmed master) and writes a one-line
 * reason into err (errcap bytes; err may be NULL). Names are resolved by the
 * system resolver, blocking. Each step waits at most
 * RC_SENTINEL_SYNC_TIMEOUT_MS. */
RC_MUST_CHECK rc_err_t rc_sentinel_resolve_sync(const rc_redis_url_t *url,
                                                char *ip, size_t cap, int *port,
                                                char *err, size_t errcap);

#endif /* RC_SENTINEL_SYNC_H */

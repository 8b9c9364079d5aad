/* Redis Cluster command routing on the loop: the slot map and one hiredis
 * command link per master, for the Redis adapter in redis-cluster:// mode.
 *
 * The map is learned from the URL's seeds (then from the masters it names)
 * with CLUSTER SHARDS (Redis 7.0; CLUSTER SLOTS on older servers), refreshed
 * every refresh_ms, after a MOVED, and whenever a link to a master drops.
 * A command names its key; it goes to the master owning the key's slot
 * (common/slot.h), and the redirections of a cluster in motion are followed
 * here, so the caller sees only the final answer:
 *   MOVED slot ip:port   the slot has a new owner: the map entry is updated,
 *                        a refresh is asked for, the command is sent there;
 *   ASK slot ip:port     the key is (being) migrated: ASKING + the command on
 *                        that node, once, the map left as it is;
 *   TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN: sent again after a short
 *                        backoff (retry_ms, doubling, at most 500 ms).
 * Each of these only happens to a command that did not run, so resending is
 * safe. A command that was written to a link that then dropped may or may
 * not have run: it is failed (RC_EBACKEND), never resent.
 *
 * Every command carries one deadline (timeout_ms from the call, redirects
 * and retries included): hiredis 0.14 has none. A command past it fails with
 * RC_EBACKEND; if it was in flight, its link is declared stalled and
 * dropped (the other commands in flight on it fail too) and the map is
 * refreshed. Connects have a deadline too (connect_timeout_ms): hiredis
 * 0.14's libuv adapter never reports a refused connect.
 *
 * Loop thread only (STYLE rule 5). Seeds given by name are resolved with
 * uv_getaddrinfo; map entries are numeric. The URL's user/password are sent
 * with AUTH first on every link.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CLUSTER_H
#define RC_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "common/err.h"
#include "common/redis_url.h"

typedef struct rc_cluster rc_cluster_t; /* defined in cluster.c */

#define RC_CLUSTER_IP_CAP 64        /* a numeric v4 or v6 address */
#define RC_CLUSTER_MAX_MASTERS 1024 /* Redis's own recommended ceiling */

/* A master's address. */
typedef struct rc_cluster_addr {
    char ip[RC_CLUSTER_IP_CAP];
    int port;
} rc_cluster_addr_t;

typedef struct rc_cluster_opts {
    uint32_t timeout_ms;         /* one command, end to end; 0: 5000 */
    uint32_t connect_timeout_ms; /* a connect; a refresh step; 0: 1000 */
    uint32_t refresh_ms;         /* periodic map refresh; 0: 5000 */
    uint32_t retry_ms;           /* first TRYAGAIN backoff; 0: 25 */
    uint32_t max_redirects;      /* MOVED + ASK per command; 0: 16 */
    uint32_t max_pending;        /* commands not yet answered; 0: 65536 */
} rc_cluster_opts_t;

/* The answer to one command. reply (borrowed, valid until the callback
 * returns) is the final reply, which may be an error reply other than the
 * redirections above, with err RC_OK. Otherwise reply is NULL and err is
 * RC_EBACKEND (timeout, or the link dropped with it in flight), RC_ELIMIT
 * (max_redirects passed) or RC_ECLOSED (rc_cluster_destroy()). Called
 * exactly once, never from inside the call that sent the command, never
 * after rc_cluster_destroy() returned. May call any rc_cluster_* function,
 * rc_cluster_destroy() included. */
typedef void (*rc_cluster_reply_cb)(void *arg, const redisReply *reply,
                                    rc_err_t err);

typedef struct rc_cluster_cbs {
    /* The set of masters changed (the first map learned counts). masters
     * (n entries, sorted by ip then port) is borrowed, valid until the
     * callback returns. May call any rc_cluster_* function, destroy
     * included. May be NULL. */
    void (*on_masters_changed)(void *ctx, const rc_cluster_addr_t *masters,
                               size_t n);
    void *ctx; /* borrowed, passed back as is */
} rc_cluster_cbs_t;

/* Starts learning the map of url (which must be RC_REDIS_CLUSTER: else
 * NULL). url and cbs are copied; opts may be NULL (defaults). The first
 * refresh starts on the next loop iteration: no callback runs inside
 * create. Returns an owned handle (rc_cluster_destroy()). */
rc_cluster_t *rc_cluster_create(uv_loop_t *loop, const rc_redis_url_t *url,
                                const rc_cluster_opts_t *opts,
                                const rc_cluster_cbs_t *cbs);

/* Every command not yet answered gets cb(RC_ECLOSED) here, once; then the
 * links close and no callback runs after this returns. The memory goes
 * once the loop has closed the handles (run the loop on). Safe from inside
 * any callback. NULL is a no-op. */
void rc_cluster_destroy(rc_cluster_t *c);

/* Sends argv (argc strings of lens bytes; borrowed, copied) to the master
 * owning key's slot (key: keylen bytes, borrowed, usually one of argv). The
 * command waits while the map is unknown or that master's link connects.
 * Returns RC_OK (cb runs later, once), RC_EINVAL (argc < 1), RC_ECLOSED
 * (destroying), RC_ELIMIT (max_pending commands wait): then cb never runs. */
RC_MUST_CHECK rc_err_t rc_cluster_command(rc_cluster_t *c, const char *key,
                                          size_t keylen, int argc,
                                          const char **argv, const size_t *lens,
                                          rc_cluster_reply_cb cb, void *arg);

/* The same, to one node by address (ip numeric, borrowed): no routing, no
 * redirections followed. For commands every master needs (FUNCTION LOAD,
 * PING) or that address no key. */
RC_MUST_CHECK rc_err_t rc_cluster_command_to(rc_cluster_t *c, const char *ip,
                                             int port, int argc,
                                             const char **argv,
                                             const size_t *lens,
                                             rc_cluster_reply_cb cb, void *arg);

/* Asks for a map refresh (e.g. after an unsolicited sunsubscribe): starts
 * one soon, or right after the one in flight. Never calls back inside. */
void rc_cluster_refresh(rc_cluster_t *c);

/* The master that owns slot in the current map: copies it to *out and
 * returns true; false when no map is known or no master serves the slot. */
bool rc_cluster_master_of_slot(const rc_cluster_t *c, unsigned slot,
                               rc_cluster_addr_t *out);

/* The masters of the current map (as last reported): copies up to cap into
 * out and returns their count. */
size_t rc_cluster_masters(const rc_cluster_t *c, rc_cluster_addr_t *out,
                          size_t cap);

/* Counters, for metrics and tests. */
typedef struct rc_cluster_stats {
    uint64_t refreshes; /* maps learned and applied */
    uint64_t moved, ask, tryagain;
    uint64_t timeouts;
    uint64_t link_drops;
} rc_cluster_stats_t;
void rc_cluster_stats(const rc_cluster_t *c, rc_cluster_stats_t *out);

#endif /* RC_CLUSTER_H */

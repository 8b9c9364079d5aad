/* adapter/cluster.c and adapter/cluster_map.c share these: the objects
 * of the loop's Cluster routing (see cluster.c's top comment for their
 * lifetimes). cluster.c: nodes, links, requests, dispatch, redirections,
 * the tick and the lifecycle; cluster_map.c: the slot map (CLUSTER SHARDS
 * or CLUSTER SLOTS parsed and applied) and its refresh rounds.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CLUSTER_INTERNAL_H
#define RC_CLUSTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <uv.h>

#include "adapter/cluster.h"
#include "common/list.h"
#include "common/slot.h"

#define TICK_MS 20
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_REFRESH_MS 5000
#define DEFAULT_RETRY_MS 25
#define DEFAULT_MAX_REDIRECTS 16
#define DEFAULT_MAX_PENDING 65536
#define MAX_BACKOFF_MS 500
#define REFRESH_GAP_MS 100   /* between two refreshes, at least */
#define RECONNECT_GAP_MS 100 /* after a failed link, before the next */
#define IDLE_NODE_MS 10000   /* a non-master node's link lives this long */

typedef struct node {
    rc_list_t in_c; /* c->nodes */
    rc_cluster_t *c;
    rc_cluster_addr_t addr;
    redisAsyncContext *ac; /* NULL: no link */
    bool up;               /* the link answered its first PING */
    bool master;           /* owns slots in the map (or a MOVED said so) */
    uint64_t connect_deadline;
    uint64_t retry_after; /* no new link before */
    unsigned fails;       /* links in a row that failed before ready */
    uint64_t last_used;
    unsigned inflight;
} node_t;

typedef struct req {
    rc_list_t in_c; /* c->waiting, c->inflight or c->dying; or none */
    rc_cluster_t *c;
    char *cmd; /* formatted (redisFreeCommand) */
    size_t len;
    bool routed; /* by slot; else to `to` */
    bool asking; /* send ASKING first, to `to` (an ASK redirect) */
    bool internal;
    unsigned slot;
    rc_cluster_addr_t to;
    rc_cluster_reply_cb cb;
    void *arg;
    uint64_t deadline, wake;
    redisAsyncContext *ac; /* in flight on; NULL while waiting */
    node_t *node;
    unsigned redirects, retries;
    int hold; /* hiredis callbacks still to come */
    bool done;
} req_t;

typedef struct gai_req {
    uv_getaddrinfo_t req;
    rc_cluster_t *c;
    unsigned gen;
    int port;
} gai_req_t;

struct rc_cluster {
    uv_loop_t *loop;
    rc_redis_url_t url;
    rc_cluster_cbs_t cbs;
    uint32_t timeout_ms, connect_timeout_ms, refresh_ms, retry_ms;
    uint32_t max_redirects, max_pending;

    uv_timer_t tick;
    rc_list_t nodes;
    rc_list_t waiting, inflight, dying;
    size_t npending; /* user commands not yet answered */

    node_t *owner[RC_SLOT_COUNT];
    bool have_map;
    rc_cluster_addr_t *reported; /* masters last reported, sorted */
    size_t nreported;

    /* refresh */
    bool refreshing, want_refresh, use_slots;
    uint64_t next_refresh, refresh_not_before;
    rc_redis_hostport_t *cand; /* candidates of the round in flight */
    size_t ncand, icand;
    char cand_ip[RC_CLUSTER_IP_CAP]; /* the candidate asked, resolved */
    unsigned gen;                    /* bumped when a step ends */
    unsigned gai_pending;

    rc_cluster_stats_t st;
    bool closing;
    int handles;
};

static inline uint64_t now_ms(const rc_cluster_t *c)
{
    return uv_now(c->loop);
}

/* ---- cluster.c */

/* The node of that address, made (no link yet) when new. */
node_t *rc__cl_get_node(rc_cluster_t *c, const char *ip, int port);
/* Drops n's link and frees n; its in-flight reqs go to c->dying. */
void rc__cl_node_free(node_t *n);
/* Sends every waiting req that can go. */
void rc__cl_dispatch_all(rc_cluster_t *c);
/* Queues a copy of tmpl with argv formatted, deadline tmo ms from now. */
rc_err_t rc__cl_submit(rc_cluster_t *c, req_t *tmpl, int argc,
                       const char **argv, const size_t *lens, uint32_t tmo);

/* ---- cluster_map.c */

/* Starts a refresh round (the tick calls it). */
void rc__cl_refresh_start(rc_cluster_t *c);

#endif /* RC_CLUSTER_INTERNAL_H */

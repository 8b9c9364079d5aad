/* What adapter/redis_cluster.c (commands, the library, the masters, the
 * tick, the lifecycle) and adapter/redis_csub.c (one subscription link per
 * master, rooms subscribed by slot) share; see redis_cluster.c's top
 * comment for the design and the lifetimes.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_REDIS_CLUSTER_H
#define RC_ADAPTER_REDIS_CLUSTER_H

#include "adapter/cluster.h"
#include "adapter/redis_internal.h"
#include "adapter/sublink.h"

#define RC_REDIS_CL_RESUB_MS 100 /* a lost room subscribes again after this */
#define RC_REDIS_CL_WAITER_MS                                                  \
    8000 /* a history read waits this long for SUB_ON */

typedef struct cnode {
    rc_list_t link; /* rcl.nodes */
    redis_adapter_t *r;
    rc_cluster_addr_t addr;
    rc_sublink_t *sub; /* NULL while down */
    bool ready, lib_ok, lib_sent, seen;
    uint64_t last_rx, last_probe, retry_at;
    uint32_t backoff_ms;
} cnode_t;

typedef struct rcl {
    rc_cluster_t *c;
    redisAsyncContext ac; /* only .data (r): handed to the callbacks */
    rc_list_t nodes;      /* cnode_t */
    cnode_t *ctl;         /* the link the control channel is on, or NULL */
    bool envkey_asked, have_map;
    bool draining; /* destroy: the registry DEL still in flight */
} rcl_t;

static inline uint64_t now_of(const redis_adapter_t *r)
{
    return uv_now(r->loop);
}

/* ---- redis_cluster.c */

/* The master of that address, or NULL. */
cnode_t *rc__redis_cl_node_find(rcl_t *cl, const char *ip, int port);
/* FUNCTION LOAD REPLACE on n (once the library is built; not again while
 * one is in flight or done: n->lib_sent). */
void rc__redis_cl_load_library(redis_adapter_t *r, cnode_t *n);

/* ---- redis_csub.c */

/* n's subscription link connects (and the control channel goes on it
 * when it has none yet). */
void rc__redis_cl_node_connect(redis_adapter_t *r, cnode_t *n);
/* n's link is gone (why borrowed): its rooms lose their subscription and
 * subscribe again; the link reconnects after a backoff; map refresh. */
void rc__redis_cl_node_down(redis_adapter_t *r, cnode_t *n, const char *why);
/* n is no longer a master: down, and freed. */
void rc__redis_cl_node_free(redis_adapter_t *r, cnode_t *n);
/* SUBSCRIBE of this node's control channel on n. */
void rc__redis_cl_subscribe_ctl(redis_adapter_t *r, cnode_t *n);

#endif /* RC_ADAPTER_REDIS_CLUSTER_H */

/* Blocking Redis Cluster access for the roomcast CLI and the load tool
 * (never on the gateway's loop: it connects and waits with blocking hiredis
 * calls; the gateway uses adapter/cluster.c).
 *
 * rc_cluster_sync_open() learns the slot map from the seeds of a
 * redis-cluster:// URL (CLUSTER SLOTS); commands are sent to the master of
 * their key's slot over cached connections, following MOVED (map updated
 * and reloaded), ASK (ASKING + the command on the target, once) and
 * TRYAGAIN/CLUSTERDOWN (a short sleep, then again).
 * SPDX-License-Identifier: MIT */
#ifndef RC_CLUSTER_SYNC_H
#define RC_CLUSTER_SYNC_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "common/err.h"
#include "common/redis_url.h"

#define RC_CLUSTER_SYNC_TIMEOUT_MS 1000 /* per connect and per reply */
#define RC_CLUSTER_SYNC_MAX_TRIES 16    /* redirects + retries per command */

typedef struct rc_cluster_sync rc_cluster_sync_t; /* in cluster_sync.c */

/* Learns the map of url (RC_REDIS_CLUSTER) from its seeds in URL order,
 * sending [AUTH and] CLUSTER SLOTS. Returns an owned handle
 * (rc_cluster_sync_close()), or NULL with a one-line reason in err (errcap
 * bytes; err may be NULL): not a cluster URL, or no seed gave a map. */
rc_cluster_sync_t *rc_cluster_sync_open(const rc_redis_url_t *url, char *err,
                                        size_t errcap);

/* Closes every connection and frees cs. NULL is a no-op. */
void rc_cluster_sync_close(rc_cluster_sync_t *cs);

/* The master that owns key's slot in the current map (key: len bytes,
 * borrowed): RC_OK with its address in ip (cap bytes) and *port; RC_ENOENT
 * when no master serves the slot; RC_EINVAL when ip is too small. */
RC_MUST_CHECK rc_err_t rc_cluster_sync_master_of(rc_cluster_sync_t *cs,
                                                 const char *key, size_t len,
                                                 char *ip, size_t cap,
                                                 int *port);

/* The masters of the current map, for commands every master must see
 * (SCAN of the registry, FUNCTION LOAD): copies up to cap addresses (ip
 * borrowed from cs, valid until the next call on cs) into ips/ports and
 * returns how many masters own slots. */
size_t rc_cluster_sync_masters(const rc_cluster_sync_t *cs, const char **ips,
                               int *ports, size_t cap);

/* Sends argv (argc strings of lens bytes, borrowed) to the master of key's
 * slot and follows redirections. Returns the final reply, owned
 * (freeReplyObject()); it may be an error reply. NULL when no node
 * answered, or after RC_CLUSTER_SYNC_MAX_TRIES redirections and retries,
 * with the reason in err (errcap bytes; err may be NULL). */
redisReply *rc_cluster_sync_command(rc_cluster_sync_t *cs, const char *key,
                                    size_t keylen, int argc, const char **argv,
                                    const size_t *lens, char *err,
                                    size_t errcap);

/* Sends argv to the node at ip:port (ip borrowed; e.g. one of
 * rc_cluster_sync_masters()), following nothing: for commands a node
 * answers for itself (SCAN, PUBSUB NUMSUB). The reply is owned
 * (freeReplyObject()), or NULL with the reason in err. */
redisReply *rc_cluster_sync_command_to(rc_cluster_sync_t *cs, const char *ip,
                                       int port, int argc, const char **argv,
                                       const size_t *lens, char *err,
                                       size_t errcap);

#endif /* RC_CLUSTER_SYNC_H */

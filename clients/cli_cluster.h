/* The roomcast CLI's Redis Cluster side (redis-cluster:// URLs): publish,
 * drain and the registry scan of `roomcast nodes`, through the blocking
 * slot routing of common/cluster_sync.c. clients/roomcast.c parses the
 * arguments and hands over here when the URL names a cluster. Every
 * function prints its own error message (prefixed "roomcast <who>:") and
 * returns an exit status: 0 done, 1 failed.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CLI_CLUSTER_H
#define RC_CLI_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "common/redis_url.h"

/* Durable: FCALL roomcast_publish 1 P{room} <data> on the room's master
 * (the seq is printed); ephemeral: SPUBLISH P{room} <data>. Strings
 * borrowed; prefix and room already checked. */
int rc_cli_cluster_publish(const rc_redis_url_t *u, const char *prefix,
                           const char *room, const char *data, size_t dlen,
                           bool ephemeral);

/* PUBLISH "drain" on Pctl:<node> through a master where a node listens
 * (PUBSUB NUMSUB, asked of every master: a classic PUBLISH reaches the
 * whole cluster over its bus, but its count is the local receivers'). */
int rc_cli_cluster_drain(const rc_redis_url_t *u, const char *prefix,
                         const char *node);

/* Every registry key matching pattern, SCANned on every master, with its
 * value (GET, routed by slot): *keys (owned strings) and *vals (owned
 * replies, freeReplyObject()), *n of each; free both arrays. Keys seen
 * twice are skipped; at most max keys. */
int rc_cli_cluster_registry(const rc_redis_url_t *u, const char *pattern,
                            size_t max, char ***keys, redisReply ***vals,
                            size_t *n);

#endif /* RC_CLI_CLUSTER_H */

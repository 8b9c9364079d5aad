/* Test harness: a real Redis Cluster of 3 masters and 3 replicas
 * (redis-server --cluster-enabled yes) on free loopback ports in a temp dir,
 * created with `redis-cli --cluster create ... --cluster-replicas 1`, and
 * stopped by PID. For tests only: it blocks, forks and sleeps.
 * SPDX-License-Identifier: MIT */
#ifndef RC_TEST_CLUSTER_SERVER_H
#define RC_TEST_CLUSTER_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#define CS_NODES 6 /* 3 masters, 3 replicas */

typedef struct cs_node {
    int port; /* the client port; the bus is port + 10000 */
    pid_t pid;
    char id[48]; /* CLUSTER MYID */
} cs_node_t;

typedef struct cs_cluster {
    char dir[64]; /* the temp dir, removed by cs_stop() */
    cs_node_t n[CS_NODES];
} cs_cluster_t;

/* Starts the six servers (cluster-node-timeout node_timeout_ms,
 * cluster-require-full-coverage no), creates the cluster and waits until
 * every node says cluster_state:ok and agrees on the slot map. Returns 0, or
 * -1 with everything started already stopped. At most about 30 s. */
int cs_start(cs_cluster_t *c, int node_timeout_ms);

/* Stops every server still running (SIGCONT, SIGKILL, waitpid) and removes
 * the temp dir. Safe twice. */
void cs_stop(cs_cluster_t *c);

/* SIGKILL (sig SIGKILL) or SIGSTOP/SIGCONT node i; after SIGKILL the pid is
 * reaped and cleared. */
void cs_signal(cs_cluster_t *c, int i, int sig);

/* One blocking command on 127.0.0.1:port (1 s timeout): an owned reply
 * (freeReplyObject()), or NULL when the node does not answer. */
redisReply *cs_cmd(int port, const char *fmt, ...);

/* The client port of the master owning slot, as node at port sees it (0 if
 * none). */
int cs_owner_of(int port, unsigned slot);

/* Index of the node with that client port, or -1. */
int cs_index_of(const cs_cluster_t *c, int port);

/* True when every running node reports cluster_state:ok. */
bool cs_all_ok(const cs_cluster_t *c);

/* Moves slot from the master at src to the master at dst the way
 * redis-cli --cluster reshard does: SETSLOT IMPORTING on dst, MIGRATING on
 * src, MIGRATE every key, SETSLOT NODE on dst, src and the others. With
 * finish false it stops after the MIGRATE of the keys (a half-moved slot).
 * Returns 0 or -1. */
int cs_move_slot(cs_cluster_t *c, unsigned slot, int src, int dst, bool finish);

/* The steps cs_move_slot() leaves out with finish false: SETSLOT NODE dst on
 * every master. */
int cs_finish_slot(cs_cluster_t *c, unsigned slot, int dst);

/* Milliseconds on the monotonic clock; a sleep. */
long long cs_now_ms(void);
void cs_nap_ms(int ms);

#endif /* RC_TEST_CLUSTER_SERVER_H */

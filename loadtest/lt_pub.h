/* loadtest/lt_pub.h: how roomcast-load injects messages, behind one small
 * interface so the path can be chosen per run (--via):
 *   ws    a WebSocket client of the gateway with pub rights, sending
 *         {"op":"publish"} frames (lt_pub_ws.c, implemented);
 *   redis FCALL roomcast_publish 1 <room> <data> (or PUBLISH with
 *         --ephemeral) pipelined in raw RESP (lt_pub_redis.c); with
 *         --proto socketio, PUBLISH socket.io#/#<room># <msgpack> as
 *         @socket.io/redis-adapter writes it, seq assigned by us.
 * A publisher lives on the parent's epoll loop: the parent polls fd() for
 * events() and calls io(); it never blocks. publish() only queues; io()
 * writes. Each accepted publish is answered once through on_ack.
 * SPDX-License-Identifier: MIT */
#ifndef LT_PUB_H
#define LT_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "loadtest/lt.h"

typedef struct lt_pub lt_pub_t;

/* Called from io() for each reply: room is the index given to publish(),
 * seq the message's seq (0 when ok is false; for --proto socketio the seq
 * the publisher itself put into the message). */
typedef void (*lt_pub_ack_cb)(void *ud, uint32_t room, uint64_t seq, bool ok);

/* One message. Each publisher writes it in its own wire format: for
 * roomcast the data is {"t":<t_ns>,"pad":"<pad>"} (the gateway adds room
 * and seq); for socketio {"r":"<room>","seq":<seq>,"t":<t_ns>,
 * "pad":"<pad>"}. */
typedef struct lt_pub_msg {
    uint64_t t_ns;   /* send time, CLOCK_MONOTONIC */
    const char *pad; /* borrowed: padlen bytes */
    size_t padlen;
} lt_pub_msg_t;

typedef struct lt_pub_stats {
    uint64_t sent;       /* publishes written to the socket */
    uint64_t acked;      /* ok replies */
    uint64_t errors;     /* error replies */
    uint64_t skipped;    /* refused by publish(): queue over its bound */
    uint64_t queued_max; /* highest unsent bytes seen */
} lt_pub_stats_t;

typedef struct lt_pub_ops {
    const char *name;
    /* The socket to poll, or -1 while there is none. */
    int (*fd)(const lt_pub_t *p);
    /* EPOLLIN and/or EPOLLOUT. */
    uint32_t (*events)(const lt_pub_t *p);
    /* Drive I/O after epoll reported events (0 for a timer tick).
     * RC_EIO: the publisher is dead (reason in its error text). */
    rc_err_t (*io)(lt_pub_t *p, uint32_t events);
    /* Connected and authenticated: publish() may be called. */
    bool (*ready)(const lt_pub_t *p);
    /* Queue one publish of m (borrowed) to room index room
     * ("<prefix><room>"). RC_ELIMIT: queue full (or m too large), counted
     * as skipped. */
    rc_err_t (*publish)(lt_pub_t *p, uint32_t room, const lt_pub_msg_t *m);
    /* Try to write what is queued now (the parent calls it after a batch of
     * publish() calls so the timestamps in them stay fresh). */
    rc_err_t (*flush)(lt_pub_t *p);
    /* Publishes sent but not answered yet. */
    uint64_t (*in_flight)(const lt_pub_t *p);
    void (*stats)(const lt_pub_t *p, lt_pub_stats_t *out);
    const char *(*error)(const lt_pub_t *p); /* static or owned by p */
    void (*destroy)(lt_pub_t *p);            /* NULL is a no-op */
} lt_pub_ops_t;

/* Every publisher struct starts with this. */
struct lt_pub {
    const lt_pub_ops_t *ops;
};

/* Create the publisher named by cfg->via. Returns an owned publisher
 * (p->ops->destroy()) that starts connecting at once, or NULL with the
 * reason in err. cfg must outlive it; on_ack/ud are borrowed. */
lt_pub_t *lt_pub_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                        char *err, size_t errlen);

/* m as roomcast publish data, {"t":<t_ns>,"pad":"<pad>"}, into out.
 * Returns its length, or 0 when cap is too small. */
size_t lt_pub_data_json(char *out, size_t cap, const lt_pub_msg_t *m);

/* The implementations, for lt_pub_create(). */
lt_pub_t *lt_pub_ws_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                           char *err, size_t errlen);
lt_pub_t *lt_pub_redis_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                              void *ud, char *err, size_t errlen);
/* Redis Cluster (cfg->redis_url redis-cluster://, lt_pub_rcluster.c): one
 * Redis publisher per master (lt_pub_redis_create_at(), in cluster form)
 * behind an epoll fd of its own; each room's publishes go to the master
 * owning its key's slot when the publisher started (a slot that moves
 * later answers MOVED: counted as errors, not followed). */
lt_pub_t *lt_pub_rcluster_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                                 void *ud, char *err, size_t errlen);
lt_pub_t *lt_pub_redis_create_at(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                                 void *ud, const char *ip, int port, char *err,
                                 size_t errlen);

#endif /* LT_PUB_H */

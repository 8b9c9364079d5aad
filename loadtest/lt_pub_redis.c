/* loadtest/lt_pub_redis.c: the Redis publisher of roomcast-load (--via
 * redis). Not built yet: the gateway's Redis adapter is not merged, so
 * nothing would deliver what we wrote. The plan, for whoever adds it: one
 * hiredis redisContext in non-blocking mode (redisConnectNonBlock), fd()
 * is c->fd, publish() appends "FCALL roomcast_publish 1 <key-prefixed room>
 * <data>" with redisAppendCommand (pipelined), flush() calls
 * redisBufferWrite, io(EPOLLIN) calls redisBufferRead then redisGetReply
 * until it has none, and each integer reply is one on_ack(room, seq) in
 * order (keep a ring of the room indexes in flight).
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"

#include <stdio.h>

lt_pub_t *lt_pub_redis_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                              void *ud, char *err, size_t errlen)
{
    (void)cfg;
    (void)on_ack;
    (void)ud;
    snprintf(err, errlen,
             "--via redis is not implemented yet (needs the Redis adapter); "
             "use --via ws");
    return NULL;
}

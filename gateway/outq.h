/* A connection's outbound queue: a ring of refs to shared frames, bounded in
 * bytes and in frames (STYLE rule 9). An idle connection's queue lives inline
 * in the connection (RC_OUTQ_INLINE slots, no allocation); a backlog grows
 * into a heap ring that is released when the queue drains.
 * SPDX-License-Identifier: MIT */
#ifndef RC_OUTQ_H
#define RC_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"

#define RC_OUTQ_INLINE 4

/* Embedded in its owner; members are private to outq.c. */
typedef struct rc_outq {
    rc_msg_t **_slots; /* _inl, or a heap ring of _cap slots */
    rc_msg_t *_inl[RC_OUTQ_INLINE];
    uint32_t _head;
    uint32_t _count;
    uint32_t _cap; /* a power of two */
    uint32_t _bytes;
} rc_outq_t;

void rc_outq_init(rc_outq_t *q);
/* Drops every queued ref and any heap ring. */
void rc_outq_dispose(rc_outq_t *q);

/* Steals the ref m. RC_ELIMIT when the queue would pass max_bytes or
 * max_msgs: the ref is then dropped, and the caller closes the connection
 * (slow consumer). RC_ENOMEM when the ring could not grow (ref dropped). */
RC_MUST_CHECK rc_err_t rc_outq_push(rc_outq_t *q, rc_msg_t *m,
                                    uint64_t max_bytes, uint32_t max_msgs);

/* Borrowed head (NULL when empty), valid until the next pop/dispose. */
rc_msg_t *rc_outq_peek(const rc_outq_t *q, uint32_t i);

/* Removes the first n frames, dropping their refs. */
void rc_outq_pop(rc_outq_t *q, uint32_t n);

static inline uint32_t rc_outq_count(const rc_outq_t *q)
{
    return q->_count;
}

static inline uint32_t rc_outq_bytes(const rc_outq_t *q)
{
    return q->_bytes;
}

#endif /* RC_OUTQ_H */

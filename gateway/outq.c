/* Bounded ring of shared frames, inline while short.
 * SPDX-License-Identifier: MIT */
#include "gateway/outq.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

void rc_outq_init(rc_outq_t *q)
{
    memset(q, 0, sizeof(*q));
    q->_slots = q->_inl;
    q->_cap = RC_OUTQ_INLINE;
}

static void release_ring(rc_outq_t *q)
{
    if (q->_slots != q->_inl) {
        free(q->_slots);
        q->_slots = q->_inl;
        q->_cap = RC_OUTQ_INLINE;
    }
    q->_head = 0;
}

void rc_outq_dispose(rc_outq_t *q)
{
    rc_outq_pop(q, q->_count);
    release_ring(q);
}

static rc_err_t grow(rc_outq_t *q)
{
    uint32_t ncap = q->_cap * 2;
    rc_msg_t **ns = rc_trymalloc(sizeof(*ns) * ncap);

    if (!ns)
        return RC_ENOMEM;
    /* Unroll the ring into the new array, head first. */
    for (uint32_t i = 0; i < q->_count; i++)
        ns[i] = q->_slots[(q->_head + i) & (q->_cap - 1)];
    if (q->_slots != q->_inl)
        free(q->_slots);
    q->_slots = ns;
    q->_cap = ncap;
    q->_head = 0;
    return RC_OK;
}

rc_err_t rc_outq_push(rc_outq_t *q, rc_msg_t *m, uint64_t max_bytes,
                      uint32_t max_msgs)
{
    if ((uint64_t)q->_bytes + m->len > max_bytes || q->_count >= max_msgs) {
        rc_msg_unref(m);
        return RC_ELIMIT;
    }
    if (q->_count == q->_cap && grow(q) != RC_OK) {
        rc_msg_unref(m);
        return RC_ENOMEM;
    }
    q->_slots[(q->_head + q->_count) & (q->_cap - 1)] = m;
    q->_count++;
    q->_bytes += m->len;
    return RC_OK;
}

rc_msg_t *rc_outq_peek(const rc_outq_t *q, uint32_t i)
{
    if (i >= q->_count)
        return NULL;
    return q->_slots[(q->_head + i) & (q->_cap - 1)];
}

void rc_outq_pop(rc_outq_t *q, uint32_t n)
{
    if (n > q->_count)
        n = q->_count;
    for (uint32_t i = 0; i < n; i++) {
        rc_msg_t *m = q->_slots[q->_head];
        q->_bytes -= m->len;
        rc_msg_unref(m);
        q->_head = (q->_head + 1) & (q->_cap - 1);
    }
    q->_count -= n;
    /* A drained backlog gives its ring back: idle connections stay small. */
    if (q->_count == 0)
        release_ring(q);
}

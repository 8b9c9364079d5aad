/* Refcounted, pre-framed WebSocket messages.
 * SPDX-License-Identifier: MIT */
#include "common/msg.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

size_t rc_msg_frame_header(unsigned char *hdr, int opcode, uint64_t plen)
{
    hdr[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (plen <= 125) {
        hdr[1] = (unsigned char)plen;
        return 2;
    }
    if (plen <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(plen >> 8);
        hdr[3] = (unsigned char)plen;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(plen >> (56 - 8 * i));
    return 10;
}

rc_msg_t *rc_msg_alloc(size_t cap, unsigned char **payload)
{
    rc_msg_t *m;

    /* Payload sizes come from clients and Redis: callers bound them first
     * (max_frame, max_publish), so a failed allocation fails one message. */
    m = rc_trymalloc(sizeof(*m) + RC_MSG_MAX_HDR + cap);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = 0;
    m->seq = 0;
    m->t_pub_ns = 0;
    m->_off = RC_MSG_MAX_HDR;
    m->room_off = 0;
    m->room_len = 0;
    *payload = m->_buf + RC_MSG_MAX_HDR;
    return m;
}

void rc_msg_finish(rc_msg_t *m, int opcode, size_t plen)
{
    unsigned char hdr[RC_MSG_MAX_HDR];
    size_t h = rc_msg_frame_header(hdr, opcode, plen);

    /* The header goes right before the payload, so the frame is contiguous. */
    m->_off = (uint16_t)(RC_MSG_MAX_HDR - h);
    memcpy(m->_buf + m->_off, hdr, h);
    m->len = (uint32_t)(h + plen);
}

rc_msg_t *rc_msg_create(int opcode, const void *payload, size_t plen)
{
    unsigned char *p;
    rc_msg_t *m = rc_msg_alloc(plen, &p);

    if (!m)
        return NULL;
    if (plen)
        memcpy(p, payload, plen);
    rc_msg_finish(m, opcode, plen);
    return m;
}

void rc_msg_unref(rc_msg_t *m)
{
    if (m && --m->refs == 0)
        free(m);
}

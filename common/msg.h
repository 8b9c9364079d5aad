/* A server-to-client WebSocket frame, built once and shared by refcount
 * (STYLE rule 11): the fan-out path frames a message once per node and every
 * recipient's queue points at the same bytes.
 *
 * The frame is complete (RFC 6455 header + payload) so it is written with
 * LWS_WRITE_RAW: no LWS_PRE headroom is needed, and many queued frames can be
 * copied back to back into one write.
 * SPDX-License-Identifier: MIT */
#ifndef RC_MSG_H
#define RC_MSG_H

#include <stddef.h>
#include <stdint.h>

#define RC_MSG_MAX_HDR 10 /* 2 + 8 bytes: FIN/opcode, len 127, 64-bit len */
/* The largest seq a client ever sees: 2^53-1 (JavaScript's
 * Number.MAX_SAFE_INTEGER; docs/REDIS.md, "Seqs and epochs"). */
#define RC_MSG_MAX_SEQ 9007199254740991ULL

enum {
    RC_WS_OP_TEXT = 0x1,
    RC_WS_OP_CLOSE = 0x8,
    RC_WS_OP_PING = 0x9,
};

typedef struct rc_msg {
    uint32_t refs;
    uint32_t len;      /* bytes of the whole frame, header included */
    uint64_t seq;      /* room seq of a durable msg, 0 otherwise */
    uint64_t t_pub_ns; /* CLOCK_MONOTONIC publish time, 0 when unknown */
    uint16_t _off;     /* where the frame starts in _buf */
    uint16_t room_off; /* a `msg` frame: its room name within the frame */
    uint8_t room_len;  /* (0 for other frames) */
    unsigned char _buf[];
} rc_msg_t;

/* Write the header of an unmasked, final server frame carrying plen bytes
 * into hdr (RC_MSG_MAX_HDR bytes). Returns the header length (2, 4 or 10). */
size_t rc_msg_frame_header(unsigned char *hdr, int opcode, uint64_t plen);

/* Returns an owned ref (rc_msg_unref()) on a text frame holding a copy of
 * payload, or NULL when the allocation failed. */
rc_msg_t *rc_msg_create(int opcode, const void *payload, size_t plen);

/* Two-step build for payloads written in place (snprintf, memcpy of parts):
 * rc_msg_alloc() reserves room for up to cap payload bytes and returns a
 * pointer to write them to; rc_msg_finish() frames the first plen of them.
 * NULL when the allocation failed. */
rc_msg_t *rc_msg_alloc(size_t cap, unsigned char **payload);
void rc_msg_finish(rc_msg_t *m, int opcode, size_t plen);

/* Frame bytes; valid while a ref is held. */
static inline const unsigned char *rc_msg_bytes(const rc_msg_t *m)
{
    return m->_buf + m->_off;
}

static inline rc_msg_t *rc_msg_ref(rc_msg_t *m)
{
    m->refs++;
    return m;
}

void rc_msg_unref(rc_msg_t *m); /* NULL is a no-op */

#endif /* RC_MSG_H */

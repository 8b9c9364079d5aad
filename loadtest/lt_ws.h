/* loadtest/lt_ws.h: the client side of RFC 6455 as roomcast-load needs it,
 * with no I/O and no allocation: build the upgrade request, check the 101
 * response, parse server frames (unmasked), build masked client frames, and
 * scan JSON text for a few known keys without a JSON library.
 * SPDX-License-Identifier: MIT */
#ifndef LT_WS_H
#define LT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    LT_WS_CONT = 0x0,
    LT_WS_TEXT = 0x1,
    LT_WS_BIN = 0x2,
    LT_WS_CLOSE = 0x8,
    LT_WS_PING = 0x9,
    LT_WS_PONG = 0xA,
};

#define LT_WS_KEY_LEN 24    /* base64 of 16 bytes */
#define LT_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */
#define LT_WS_MAX_HDR 14    /* client frame header with 64-bit length */
#define LT_WS_MAX_HTTP 16384

typedef struct lt_ws_frame {
    uint8_t fin, opcode;
    const uint8_t *payload; /* borrowed: points into the parsed buffer */
    uint64_t len;
} lt_ws_frame_t;

/* Key for a connection, derived from (a, b) so it can be recomputed when
 * the response arrives instead of being stored. key gets LT_WS_KEY_LEN
 * chars + NUL; accept (optional) gets the expected Sec-WebSocket-Accept
 * (LT_WS_ACCEPT_LEN + NUL). */
void lt_ws_key(uint32_t a, uint32_t b, char key[LT_WS_KEY_LEN + 1],
               char accept[LT_WS_ACCEPT_LEN + 1]);

/* Write the upgrade request into out. subproto (Sec-WebSocket-Protocol,
 * e.g. "roomcast.v1") and token (Authorization: Bearer) may be NULL: not
 * sent. Returns its length, or -1 if cap is too small. */
int lt_ws_request(char *out, size_t cap, const char *host, unsigned port,
                  const char *path, const char *key, const char *subproto,
                  const char *token);

/* Look at the response head in buf[0..len). Returns 0 while "\r\n\r\n" has
 * not arrived; -1 when it is malformed; otherwise the head's length, with
 * *status set (101 on success) and *accept_ok telling whether
 * Sec-WebSocket-Accept matched accept. */
ssize_t lt_ws_response(const char *buf, size_t len, const char *accept,
                       int *status, bool *accept_ok);

/* Parse one server frame at buf[0..len). Returns the bytes it spans, 0 if
 * incomplete, -1 if invalid (masked, reserved bits, or payload > max). */
ssize_t lt_ws_parse(const uint8_t *buf, size_t len, uint64_t max,
                    lt_ws_frame_t *f);

/* Write a masked client frame (header, mask key, masked payload) into out,
 * which must hold len + LT_WS_MAX_HDR bytes. Returns its length. */
size_t lt_ws_build(uint8_t *out, uint8_t opcode, const void *payload,
                   size_t len, uint32_t mask);

/* Unsigned decimal right after the first occurrence of key (e.g.
 * "\"seq\":") in p[0..len). Returns false when absent or not a number.
 * *after (optional) points past the digits. */
bool lt_ws_scan_u64(const char *p, size_t len, const char *key, size_t klen,
                    uint64_t *out, const char **after);

#endif /* LT_WS_H */

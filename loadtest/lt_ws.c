/* loadtest/lt_ws.c: RFC 6455 client pieces (see lt_ws.h).
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_ws.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void lt_ws_key(uint32_t a, uint32_t b, char key[LT_WS_KEY_LEN + 1],
               char accept[LT_WS_ACCEPT_LEN + 1])
{
    unsigned char raw[16], md[EVP_MAX_MD_SIZE];
    char cat[LT_WS_KEY_LEN + sizeof(WS_GUID)];
    unsigned int mdlen = 0;
    uint32_t x = a * 2654435761u ^ b;
    int i;

    /* Not secret, only distinct: the server merely echoes a hash of it. */
    for (i = 0; i < 16; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        raw[i] = (unsigned char)(x ^ (a >> (i % 4 * 8)) ^ b);
    }
    EVP_EncodeBlock((unsigned char *)key, raw, 16);
    if (!accept)
        return;
    memcpy(cat, key, LT_WS_KEY_LEN);
    memcpy(cat + LT_WS_KEY_LEN, WS_GUID, sizeof(WS_GUID));
    if (!EVP_Digest(cat, LT_WS_KEY_LEN + sizeof(WS_GUID) - 1, md, &mdlen,
                    EVP_sha1(), NULL)) {
        accept[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
}

int lt_ws_request(char *out, size_t cap, const char *host, unsigned port,
                  const char *path, const char *key, const char *subproto,
                  const char *token)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s"
                     "%s%s%s"
                     "\r\n",
                     path, host, port, key,
                     subproto ? "Sec-WebSocket-Protocol: " : "",
                     subproto ? subproto : "", subproto ? "\r\n" : "",
                     token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");

    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* Case-insensitive search of a header name at a line start. */
static const char *find_header(const char *buf, size_t len, const char *name)
{
    size_t nlen = strlen(name), i;

    for (i = 0; i + 2 + nlen <= len; i++) {
        if (buf[i] != '\n')
            continue;
        size_t j;
        for (j = 0; j < nlen; j++) {
            char c = buf[i + 1 + j];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c != name[j])
                break;
        }
        if (j == nlen)
            return buf + i + 1 + nlen;
    }
    return NULL;
}

ssize_t lt_ws_response(const char *buf, size_t len, const char *accept,
                       int *status, bool *accept_ok)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *v;
    size_t hlen;
    int st = 0, i;

    *status = 0;
    *accept_ok = false;
    if (!end)
        return 0;
    hlen = (size_t)(end - buf) + 4;
    if (hlen < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    for (i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        st = st * 10 + (buf[i] - '0');
    }
    *status = st;
    v = find_header(buf, hlen, "sec-websocket-accept:");
    if (v && accept) {
        while (*v == ' ' || *v == '\t')
            v++;
        *accept_ok = (size_t)(buf + hlen - v) >= LT_WS_ACCEPT_LEN &&
                     memcmp(v, accept, LT_WS_ACCEPT_LEN) == 0;
    }
    return (ssize_t)hlen;
}

ssize_t lt_ws_parse(const uint8_t *buf, size_t len, uint64_t max,
                    lt_ws_frame_t *f)
{
    uint64_t plen;
    size_t hdr = 2;

    if (len < 2)
        return 0;
    if ((buf[0] & 0x70) || (buf[1] & 0x80))
        return -1; /* reserved bits, or a masked server frame */
    plen = buf[1] & 0x7f;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        hdr = 4;
    } else if (plen == 127) {
        int i;
        if (len < 10)
            return 0;
        plen = 0;
        for (i = 0; i < 8; i++)
            plen = (plen << 8) | buf[2 + i];
        hdr = 10;
    }
    if (plen > max)
        return -1;
    if (len - hdr < plen)
        return 0;
    f->fin = buf[0] >> 7;
    f->opcode = buf[0] & 0x0f;
    f->payload = buf + hdr;
    f->len = plen;
    return (ssize_t)(hdr + plen);
}

size_t lt_ws_build(uint8_t *out, uint8_t opcode, const void *payload,
                   size_t len, uint32_t mask)
{
    const uint8_t *src = payload;
    uint8_t m[4];
    size_t hdr, i;

    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80 | len);
        hdr = 2;
    } else if (len <= 0xffff) {
        out[1] = 0x80 | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        hdr = 4;
    } else {
        out[1] = 0x80 | 127;
        for (i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hdr = 10;
    }
    memcpy(m, &mask, 4);
    memcpy(out + hdr, m, 4);
    hdr += 4;
    for (i = 0; i < len; i++)
        out[hdr + i] = src[i] ^ m[i & 3];
    return hdr + len;
}

bool lt_ws_scan_u64(const char *p, size_t len, const char *key, size_t klen,
                    uint64_t *out, const char **after)
{
    const char *k = memmem(p, len, key, klen);
    const char *end = p + len;
    uint64_t v = 0;

    if (!k)
        return false;
    k += klen;
    if (k >= end || *k < '0' || *k > '9')
        return false;
    while (k < end && *k >= '0' && *k <= '9')
        v = v * 10 + (uint64_t)(*k++ - '0');
    *out = v;
    if (after)
        *after = k;
    return true;
}

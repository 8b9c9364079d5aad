/* Strict base64url for JWS segments and sealed tokens. Strict on purpose:
 * one token has exactly one spelling, so "the same token" means the same
 * bytes everywhere (caches, replay checks, logs of hashes), and nothing that
 * a lenient decoder would accept differently reaches libjwt.
 * SPDX-License-Identifier: MIT */
#include "auth/auth_internal.h"

#include <stdint.h>

static const char enc_table[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63 for alphabet characters, -1 for everything else (NUL included). */
static const signed char dec_table[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, 52, 53, 54, 55, 56, 57, 58, 59, 60,
    61, -1, -1, -1, -1, -1, -1, -1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1,
    63, -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

size_t rc__auth_b64url_len(size_t n)
{
    static const size_t tail[3] = {0, 2, 3};
    if (n / 3 > (SIZE_MAX - 3) / 4)
        return SIZE_MAX;
    return n / 3 * 4 + tail[n % 3];
}

size_t rc__auth_b64url_decoded_len(size_t n)
{
    /* A group of 4 characters is 3 bytes; 2 leftovers are 1, 3 are 2. */
    return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
}

size_t rc__auth_b64url_encode(const void *src, size_t n, char *out)
{
    const unsigned char *p = src;
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = enc_table[v >> 18];
        out[o++] = enc_table[(v >> 12) & 63];
        out[o++] = enc_table[(v >> 6) & 63];
        out[o++] = enc_table[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = enc_table[v >> 18];
        out[o++] = enc_table[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = enc_table[v >> 18];
        out[o++] = enc_table[(v >> 12) & 63];
        out[o++] = enc_table[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

bool rc__auth_b64url_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    int last;

    if (n % 4 == 1)
        return false;
    for (size_t i = 0; i < n; i++)
        if (dec_table[p[i]] < 0)
            return false;
    if (n == 0)
        return true;
    /* The last character of a short group carries bits no byte uses (4 of
     * them after 2 characters, 2 after 3); canonical means they are zero. */
    last = dec_table[p[n - 1]];
    if (n % 4 == 2)
        return (last & 0x0f) == 0;
    if (n % 4 == 3)
        return (last & 0x03) == 0;
    return true;
}

rc_err_t rc__auth_b64url_decode(const char *s, size_t n, void *out,
                                size_t outlen, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char *d = out;
    size_t need, o = 0, i = 0;

    if (out_len)
        *out_len = 0;
    if (!rc__auth_b64url_valid(s, n))
        return RC_EINVAL;
    need = rc__auth_b64url_decoded_len(n);
    if (need > outlen)
        return RC_ELIMIT;

    for (; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)dec_table[p[i]] << 18 |
                     (uint32_t)dec_table[p[i + 1]] << 12 |
                     (uint32_t)dec_table[p[i + 2]] << 6 |
                     (uint32_t)dec_table[p[i + 3]];
        d[o++] = (unsigned char)(v >> 16);
        d[o++] = (unsigned char)(v >> 8);
        d[o++] = (unsigned char)v;
    }
    if (n - i >= 2) {
        uint32_t v = (uint32_t)dec_table[p[i]] << 18 |
                     (uint32_t)dec_table[p[i + 1]] << 12;
        if (n - i == 3)
            v |= (uint32_t)dec_table[p[i + 2]] << 6;
        d[o++] = (unsigned char)(v >> 16);
        if (n - i == 3)
            d[o++] = (unsigned char)(v >> 8);
    }
    if (out_len)
        *out_len = o;
    return RC_OK;
}

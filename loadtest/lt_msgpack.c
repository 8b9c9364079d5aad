/* loadtest/lt_msgpack.c: a MessagePack writer for a handful of types (see
 * lt_msgpack.h and https://github.com/msgpack/msgpack/blob/master/spec.md).
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_msgpack.h"

#include <string.h>

static size_t be(uint8_t *out, uint64_t v, unsigned bytes)
{
    unsigned i;

    for (i = 0; i < bytes; i++)
        out[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return bytes;
}

size_t lt_mp_fixarray(uint8_t *out, unsigned n)
{
    out[0] = (uint8_t)(0x90 | (n & 0x0f));
    return 1;
}

size_t lt_mp_fixmap(uint8_t *out, unsigned n)
{
    out[0] = (uint8_t)(0x80 | (n & 0x0f));
    return 1;
}

size_t lt_mp_str(uint8_t *out, const char *s, size_t len)
{
    size_t h;

    if (len < 32) {
        out[0] = (uint8_t)(0xa0 | len);
        h = 1;
    } else if (len <= 0xff) {
        out[0] = 0xd9;
        h = 1 + be(out + 1, len, 1);
    } else if (len <= 0xffff) {
        out[0] = 0xda;
        h = 1 + be(out + 1, len, 2);
    } else {
        out[0] = 0xdb;
        h = 1 + be(out + 1, len, 4);
    }
    memcpy(out + h, s, len);
    return h + len;
}

size_t lt_mp_cstr(uint8_t *out, const char *s)
{
    return lt_mp_str(out, s, strlen(s));
}

size_t lt_mp_uint(uint8_t *out, uint64_t v)
{
    if (v < 0x80) {
        out[0] = (uint8_t)v;
        return 1;
    }
    if (v <= 0xff) {
        out[0] = 0xcc;
        return 1 + be(out + 1, v, 1);
    }
    if (v <= 0xffff) {
        out[0] = 0xcd;
        return 1 + be(out + 1, v, 2);
    }
    if (v <= 0xffffffffu) {
        out[0] = 0xce;
        return 1 + be(out + 1, v, 4);
    }
    out[0] = 0xcf;
    return 1 + be(out + 1, v, 8);
}

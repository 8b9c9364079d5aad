/* loadtest/lt_msgpack.h: the few MessagePack encodings roomcast-load needs
 * to write what @socket.io/redis-adapter reads (lt_pub_redis.c, --proto
 * socketio): fixarray, fixmap, strings and unsigned integers. No decoder,
 * no allocation, no bounds checks: each function writes at most the bytes
 * its comment names into out, which the caller must have room for, and
 * returns how many it wrote.
 * SPDX-License-Identifier: MIT */
#ifndef LT_MSGPACK_H
#define LT_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

/* Array or map header for n < 16 elements (pairs): 1 byte. */
size_t lt_mp_fixarray(uint8_t *out, unsigned n);
size_t lt_mp_fixmap(uint8_t *out, unsigned n);

/* String of len bytes (fixstr, str8, str16 or str32): len + 5 at most. */
size_t lt_mp_str(uint8_t *out, const char *s, size_t len);

/* NUL-terminated string: strlen(s) + 5 at most. */
size_t lt_mp_cstr(uint8_t *out, const char *s);

/* Non-negative integer in its shortest form (positive fixint, uint8, 16,
 * 32 or 64): 9 bytes at most. */
size_t lt_mp_uint(uint8_t *out, uint64_t v);

#endif /* LT_MSGPACK_H */

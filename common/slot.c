/* Redis Cluster key slots (see slot.h).
 * SPDX-License-Identifier: MIT */
#include "common/slot.h"

#include <string.h>

uint16_t rc_slot_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;

    /* Bitwise rather than Redis's 256-entry table: keys are short, and this
     * is the definition the table was generated from. */
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

const char *rc_slot_tag(const char *key, size_t len, size_t *taglen)
{
    const char *open = memchr(key, '{', len);
    const char *close;

    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        close = memchr(open + 1, '}', rest);
        if (close && close > open + 1) {
            *taglen = (size_t)(close - open - 1);
            return open + 1;
        }
    }
    *taglen = len;
    return key;
}

unsigned rc_slot_of(const char *key, size_t len)
{
    size_t n;
    const char *tag = rc_slot_tag(key, len, &n);

    return rc_slot_crc16(tag, n) & (RC_SLOT_COUNT - 1);
}

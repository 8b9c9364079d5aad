/* Redis Cluster key slots: CRC16 (XMODEM, the polynomial 0x1021 with initial
 * value 0, as Redis's crc16.c) of the key's hash tag, modulo 16384.
 *
 * The hash tag follows Redis's keyHashSlot() exactly: when the key holds a
 * '{', and after that first '{' a '}', and the bytes between them are not
 * empty, only those bytes are hashed; otherwise the whole key is. So
 * "roomcast:{chat:lobby}" and "roomcast:{chat:lobby}:hist" share a slot,
 * "a{}{b}" hashes the whole key and "a{{b}}" hashes "{b".
 * SPDX-License-Identifier: MIT */
#ifndef RC_SLOT_H
#define RC_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define RC_SLOT_COUNT 16384

/* CRC16/XMODEM of len bytes at buf (borrowed; may hold any byte). */
uint16_t rc_slot_crc16(const void *buf, size_t len);

/* The slot (0..16383) of a key of len bytes (borrowed; any byte). */
unsigned rc_slot_of(const char *key, size_t len);

/* The bytes rc_slot_of() hashes: the hash tag, or the whole key. Returns a
 * pointer into key (borrowed from it) and writes their count to *taglen. */
const char *rc_slot_tag(const char *key, size_t len, size_t *taglen);

#endif /* RC_SLOT_H */

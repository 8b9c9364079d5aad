/* The Redis key and channel layout of roomcast, in one place: the Redis
 * adapter, the roomcast CLI and the load tool build and read every name
 * through these functions (adapter/roomcast.lua, the function library,
 * builds the same names in Lua; docs/REDIS.md has the table).
 *
 * P is the key prefix (key_prefix, default "roomcast:"; checked with
 * rc_redis_prefix_ok(), so it holds no braces). A room's names carry the
 * hash tag {room}, so they share one slot:
 *   P{room}             channel: "d|seq|t_us|mac|data" or raw JSON (ephemeral);
 *                       and the key FCALL roomcast_publish names: a stream
 *                       holding the room's whole durable state, entry id
 *                       "<seq>-0", fields t, e (epoch), d (Lua only)
 *   Psess:{sid}         a session snapshot for resume
 *   Psess:{sid}:used    set once its resume token was used (Lua only)
 *   Pnode:<id>          node <id>'s registry entry (JSON)
 *   Pctl:<id>           channel: control commands for node <id>
 *   Pprobe:<id>         channel: node <id>'s pub/sub liveness probe
 *
 * Builders write a NUL-terminated name into buf (cap bytes) and return
 * RC_OK, or RC_ELIMIT (buf then holds "") when it does not fit; a buffer of
 * RC_KEYS_MAX bytes always fits a checked prefix and a name of at most
 * RC_KEYS_NAME_MAX bytes. All strings are borrowed for the call.
 * SPDX-License-Identifier: MIT */
#ifndef RC_KEYS_H
#define RC_KEYS_H

#include <stddef.h>

#include "common/err.h"

#define RC_KEYS_NAME_MAX 256 /* a room, node id or session id */
/* 2 * 64 (an escaped prefix) + "probe:"/"sess:{}:used" + a name + NUL */
#define RC_KEYS_MAX 512

/* "P{room}": the room's channel, and the key of its durable state. */
RC_MUST_CHECK rc_err_t rc_keys_room(char *buf, size_t cap, const char *prefix,
                                    const char *room);

/* "Psess:{sid}" */
RC_MUST_CHECK rc_err_t rc_keys_session(char *buf, size_t cap,
                                       const char *prefix, const char *sid);

/* "Pnode:<id>" */
RC_MUST_CHECK rc_err_t rc_keys_node(char *buf, size_t cap, const char *prefix,
                                    const char *id);

/* "Pctl:<id>" */
RC_MUST_CHECK rc_err_t rc_keys_ctl(char *buf, size_t cap, const char *prefix,
                                   const char *id);

/* "Pprobe:<id>" */
RC_MUST_CHECK rc_err_t rc_keys_probe(char *buf, size_t cap, const char *prefix,
                                     const char *id);

/* The SCAN MATCH pattern of every registry entry: "Pnode:*" with the glob
 * characters of P escaped. */
RC_MUST_CHECK rc_err_t rc_keys_registry_pattern(char *buf, size_t cap,
                                                const char *prefix);

/* Reads "P{room}" (name, len bytes, not NUL-terminated): returns a pointer
 * to the room inside name (*room_len bytes, borrowed from name), or NULL
 * when name is not a room channel of prefix. */
const char *rc_keys_room_of(const char *prefix, const char *name, size_t len,
                            size_t *room_len);

/* Reads "Pnode:<id>" (NUL-terminated): returns the id inside key (borrowed
 * from key), or NULL when key is not a registry entry of prefix. */
const char *rc_keys_node_id_of(const char *prefix, const char *key);

#endif /* RC_KEYS_H */

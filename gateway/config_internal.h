/* Shared by the files of the config module: config.c (the key table and
 * the loader) and config_values.c (value parsers and checks). Nothing
 * outside gateway/config*.c includes it.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CONFIG_INTERNAL_H
#define RC_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#define RC_CONFIG_MAX_NODE_ID 128 /* bytes of node_id */

/* Key checks: NULL when s is acceptable, else the reason (static text). */
const char *rc__config_check_ws_path(const char *s);
const char *rc__config_check_node_id(const char *s);
const char *rc__config_check_redis_url(const char *s);
const char *rc__config_check_key_prefix(const char *s);
const char *rc__config_check_jwt_alg(const char *s);
const char *rc__config_check_log_level(const char *s);

/* Decimal integer, optional '-', nothing else (no spaces, no '+', no 0x). */
bool rc__config_parse_int(const char *s, int64_t *out);
/* "true"/"1" or "false"/"0". */
bool rc__config_parse_bool(const char *s, bool *out);
/* "host:port" or "[v6]:port"; host non-empty, port 1..65535. On success
 * *host is owned (free()). */
bool rc__config_parse_addr(const char *s, char **host, int *port);

#endif /* RC_CONFIG_INTERNAL_H */

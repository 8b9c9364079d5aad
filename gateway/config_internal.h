/* Shared by the files of the config module: config.c (the key table and
 * the loader) and config_values.c (value parsers and checks). Nothing
 * outside gateway/config*.c includes it.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CONFIG_INTERNAL_H
#define RC_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_CONFIG_MAX_NODE_ID 128 /* bytes of node_id */

/* The key table (config_keys.c): every key, its kind, where it goes in
 * rc_config_t, its default, bounds, check and help. */
typedef enum key_kind {
    KIND_STR,    /* char * at off */
    KIND_SECRET, /* char * at off, its size_t length at off2 */
    KIND_FILE,   /* a path; the file's text goes to the char * at off */
    KIND_ADDR,   /* "host:port": char * host at off, int port at off2 */
    KIND_BOOL,   /* bool at off */
    KIND_I64,    /* int64_t at off, min..max */
    KIND_U32,    /* uint32_t at off, min..max */
    KIND_U64,    /* uint64_t at off, min..max */
} key_kind_t;

#define F_NULLABLE 0x1u  /* may be unset: "" or JSON null unsets it */
#define F_LEN 0x2u       /* KIND_FILE: size_t length at off2, strip one \n */
#define F_PEM 0x4u       /* KIND_FILE: must hold a PEM block */
#define F_READABLE 0x8u  /* KIND_STR path: must be readable at load */
#define F_COMPUTED 0x10u /* default computed at load (node_id) */
#define F_AUTO 0x20u     /* KIND_U32: "auto" stores 0 (resolved at load) */

typedef struct key_def {
    const char *name; /* file key; flag and env names derive from it */
    key_kind_t kind;
    size_t off;
    size_t off2;
    int64_t min, max;                    /* numeric kinds */
    const char *def;                     /* text default; NULL: none */
    unsigned flags;                      /* F_* */
    const char *(*check)(const char *s); /* NULL or the reason s is bad */
    const char *help;
} key_def_t;

#define RC__CONFIG_MAX_KEYS 64
extern const key_def_t rc__config_keys[];
extern const size_t rc__config_nkeys;

/* Key checks: NULL when s is acceptable, else the reason (static text). */
const char *rc__config_check_ws_path(const char *s);
const char *rc__config_check_node_id(const char *s);
const char *rc__config_check_redis_url(const char *s);
const char *rc__config_check_key_prefix(const char *s);
const char *rc__config_check_jwt_alg(const char *s);
const char *rc__config_check_log_level(const char *s);
const char *rc__config_check_tls_min_version(const char *s);
const char *rc__config_check_tls_ciphers(const char *s);

/* Decimal integer, optional '-', nothing else (no spaces, no '+', no 0x). */
bool rc__config_parse_int(const char *s, int64_t *out);
/* "true"/"1" or "false"/"0". */
bool rc__config_parse_bool(const char *s, bool *out);
/* "host:port" or "[v6]:port"; host non-empty, port 1..65535. On success
 * *host is owned (free()). */
bool rc__config_parse_addr(const char *s, char **host, int *port);

#endif /* RC_CONFIG_INTERNAL_H */

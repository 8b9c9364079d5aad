/* Node configuration: defaults, then the JSON file (--config), then the
 * environment (ROOMCAST_<KEY>), then flags (--<key-with-dashes>); a later
 * source beats an earlier one. Immutable once loaded (STYLE rule 8).
 * SPDX-License-Identifier: MIT */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD
 * only (TLS 1.3 suites are OpenSSL's defaults, all of that kind). */
#define RC_CONFIG_TLS_CIPHERS                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"               \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                     \
    "DHE-RSA-CHACHA20-POLY1305"

typedef struct rc_config {
    /* listeners: host and port split from "host:port" */
    char *listen_host; /* "0.0.0.0" */
    int listen_port;   /* 8080 */
    char *admin_host;  /* "127.0.0.1" */
    int admin_port;    /* 9090 */
    char *ws_path;     /* "/ws" */
    char *node_id;     /* host name + "-" + pid */

    /* redis */
    char *redis_url;  /* NULL: local (single node) adapter */
    char *key_prefix; /* "roomcast:" */

    /* auth */
    char *jwt_alg;             /* "HS256" */
    char *jwt_secret;          /* from jwt_secret or jwt_secret_file */
    size_t jwt_secret_len;     /* bytes of jwt_secret (a file may hold NULs) */
    char *jwt_public_key;      /* PEM text read from jwt_public_key_file */
    char *jwt_issuer;          /* NULL: not checked */
    char *jwt_audience;        /* NULL: not checked */
    int64_t jwt_leeway_ms;     /* 30000 */
    int64_t auth_timeout_ms;   /* 5000 */
    uint32_t max_pending_auth; /* 1024: sockets waiting for an auth frame */
    uint32_t max_pending_per_source; /* 0: off; sockets still sending their
                                        request, per source address */
    bool dev_no_auth; /* false; true accepts anyone (logged loudly) */

    /* admin port */
    char *admin_token;        /* from admin_token or admin_token_file */
    size_t admin_token_len;   /* 0: no token (loopback admin_listen only) */
    bool admin_token_stats;   /* false: GET /stats needs no token */
    uint32_t admin_max_conns; /* 64 connections at once */
    int64_t admin_timeout_ms; /* 5000: a request must arrive within it */

    /* tls: wss when both are set; PEM file paths (reloaded on SIGHUP) */
    char *tls_cert;
    char *tls_key;
    char *tls_min_version; /* "1.2" (default) or "1.3" */
    char *tls_ciphers;     /* TLS <= 1.2 suites: RC_CONFIG_TLS_CIPHERS */

    /* limits */
    uint32_t max_frame;            /* 65536 bytes per inbound frame */
    uint32_t max_rooms;            /* 256 rooms per connection */
    uint32_t max_connections;      /* 0: unlimited (the fd limit rules) */
    uint64_t outbound_queue_bytes; /* 1048576 */
    uint32_t outbound_queue_msgs;  /* 4096 frames */
    uint32_t rate_limit;           /* 100 frames/s */
    uint32_t rate_burst;           /* 200 frames */
    uint32_t max_publish; /* 65536 bytes of data; framed, fits the queue */

    /* timing, milliseconds */
    int64_t heartbeat_ms; /* 25000 */

    /* history and resume */
    uint32_t history_size;         /* 100 */
    int64_t history_ttl_ms;        /* 300000 */
    uint32_t redis_wait_replicas;  /* 0: no WAIT after a durable publish */
    int64_t redis_wait_timeout_ms; /* 1000 */
    int64_t resume_ttl_ms;         /* 120000 */
    /* From resume_secret or resume_secret_file: NULL, or the 32-byte key
     * (a secret under 32 bytes is refused; a longer one is replaced by its
     * SHA-256, so every byte of it counts). */
    char *resume_secret;
    size_t resume_secret_len; /* 0 or 32 */
    int64_t drain_window_ms;  /* 10000 */
    int64_t drain_timeout_ms; /* 30000 */

    /* process */
    char *log_level;  /* "info" */
    uint32_t workers; /* 1; "auto" (0 in the table) resolved at load to the
                         CPUs this process may run on: always >= 1 */
} rc_config_t;

/* Parse argv (flags, including --config FILE, --help, --version), the
 * environment and the file. On success *out is owned (rc_config_destroy()).
 * On failure returns RC_EINVAL and writes one line naming the key and the
 * problem into err (always NUL-terminated). --help and --version print to
 * stdout and return RC_ECLOSED so main exits 0. envp may be NULL (use
 * environ). */
RC_MUST_CHECK rc_err_t rc_config_load(int argc, char **argv, char **envp,
                                      rc_config_t **out, char *err,
                                      size_t errlen);

/* Defaults only; owned. Tests and embedders use it. */
rc_config_t *rc_config_create_default(void);

void rc_config_destroy(rc_config_t *cfg); /* NULL is a no-op */

/* Writes the usage text (every key with its default) to f (a FILE *). */
void rc_config_usage(void *f);

#endif /* RC_CONFIG_H */

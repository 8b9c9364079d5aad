/* The config key table: one row per key (name, kind, place in rc_config_t,
 * default, bounds, check, help). The loader (config.c) derives the JSON
 * key, the ROOMCAST_* variable and the --flag from each name; adding a key
 * is one row here and one field in config.h.
 * SPDX-License-Identifier: MIT */
#include <stddef.h>

#include "common/mem.h"
#include "gateway/config.h"
#include "gateway/config_internal.h"

#define DAY_MS INT64_C(86400000)
#define MAX_DURATION_MS (7 * DAY_MS)

/* One constructor per kind, so each table entry stays one line of intent.
 * clang-format would split the braces of these bodies into a mess. */
/* clang-format off */
#define OFF(f) offsetof(rc_config_t, f)
#define STR(k, d, fl, chk, h)                                                  \
    {.name = #k, .kind = KIND_STR, .off = OFF(k), .def = d, .flags = fl,      \
     .check = chk, .help = h}
#define SECRET(k, len, h)                                                      \
    {.name = #k, .kind = KIND_SECRET, .off = OFF(k), .off2 = OFF(len),        \
     .flags = F_NULLABLE, .help = h}
#define FILEKEY(k, dst, len_off, fl, h)                                        \
    {.name = #k, .kind = KIND_FILE, .off = OFF(dst), .off2 = len_off,         \
     .flags = F_NULLABLE | (fl), .help = h}
#define ADDR(k, host, port, d, h)                                              \
    {.name = #k, .kind = KIND_ADDR, .off = OFF(host), .off2 = OFF(port),      \
     .def = d, .help = h}
#define BOOL(k, d, h)                                                          \
    {.name = #k, .kind = KIND_BOOL, .off = OFF(k), .def = d, .help = h}
#define NUM(k, kd, lo, hi, d, h)                                               \
    {.name = #k, .kind = kd, .off = OFF(k), .min = lo, .max = hi, .def = d,   \
     .help = h}
/* clang-format on */

/* The keys of PROTOCOL section 7 plus the gateway's own. Adding a key is one
 * line here and a field in rc_config_t. */
const key_def_t rc__config_keys[] = {
    ADDR(listen, listen_host, listen_port, "0.0.0.0:8080",
         "client WebSocket listener, ip:port ([v6addr]:port for IPv6; "
         "localhost is 127.0.0.1, other names are refused)"),
    ADDR(admin_listen, admin_host, admin_port, "127.0.0.1:9090",
         "admin HTTP listener, ip:port (as listen)"),
    SECRET(admin_token, admin_token_len,
           "Bearer token for the admin port's POST routes (16+ visible "
           "ASCII bytes; prefer admin_token_file); needed when admin_listen "
           "is not loopback"),
    FILEKEY(admin_token_file, admin_token, OFF(admin_token_len), F_LEN,
            "file holding admin_token; one trailing newline is stripped"),
    BOOL(admin_token_stats, "false", "GET /stats needs admin_token too"),
    NUM(admin_max_conns, KIND_U32, 1, 65536, "64",
        "admin connections at once; one more is closed unanswered"),
    NUM(admin_timeout_ms, KIND_I64, 100, 600000, "5000",
        "time for an admin request to arrive whole, and then for its "
        "answer to be written out, ms"),
    STR(ws_path, "/ws", 0, rc__config_check_ws_path, "WebSocket upgrade path"),
    STR(node_id, NULL, F_COMPUTED, rc__config_check_node_id,
        "this node's id in the registry (1..128 printable, no spaces)"),
    STR(redis_url, NULL, F_NULLABLE, rc__config_check_redis_url,
        "redis://[[user]:password@]host[:port][/db]; unset: single node"),
    STR(key_prefix, "roomcast:", 0, rc__config_check_key_prefix,
        "prefix of every Redis key and channel"),
    STR(jwt_alg, "HS256", 0, rc__config_check_jwt_alg,
        "the one accepted JWT alg: HS256 HS384 HS512 RS256 RS384 RS512 "
        "ES256 ES384"),
    SECRET(jwt_secret, jwt_secret_len,
           "HMAC secret for HS* (prefer jwt_secret_file: flags show in ps)"),
    FILEKEY(jwt_secret_file, jwt_secret, OFF(jwt_secret_len), F_LEN,
            "file holding the HMAC secret; one trailing newline is stripped"),
    FILEKEY(jwt_public_key_file, jwt_public_key, 0, F_PEM,
            "PEM public key file for RS*/ES*"),
    STR(jwt_issuer, NULL, F_NULLABLE, NULL, "required iss; unset: not checked"),
    STR(jwt_audience, NULL, F_NULLABLE, NULL,
        "required aud; unset: not checked"),
    NUM(jwt_leeway_ms, KIND_I64, 0, DAY_MS, "30000",
        "clock skew allowed on exp/nbf/iat, ms"),
    NUM(auth_timeout_ms, KIND_I64, 1, MAX_DURATION_MS, "5000",
        "wait for the auth frame, ms"),
    NUM(max_pending_auth, KIND_U32, 1, 1000000, "1024",
        "sockets waiting for an auth frame"),
    NUM(max_pending_per_source, KIND_U32, 0, 65536, "0",
        "sockets still sending their request head, per source address "
        "(IPv4, IPv6 /64); one more is closed at accept; 0: off (behind a "
        "load balancer every client has its address)"),
    BOOL(dev_no_auth, "false", "accept anyone without a token (development)"),
    STR(tls_cert, NULL, F_NULLABLE | F_READABLE, NULL,
        "PEM certificate file; wss when tls_cert and tls_key are set"),
    STR(tls_key, NULL, F_NULLABLE | F_READABLE, NULL,
        "PEM private key file; wss when tls_cert and tls_key are set"),
    STR(tls_min_version, "1.2", 0, rc__config_check_tls_min_version,
        "lowest TLS version accepted: 1.2 or 1.3"),
    STR(tls_ciphers, RC_CONFIG_TLS_CIPHERS, 0, rc__config_check_tls_ciphers,
        "OpenSSL cipher list for TLS 1.2 (default: Mozilla intermediate, "
        "forward-secret AEAD only)"),
    NUM(max_frame, KIND_U32, 128, 16777216, "65536", "bytes per inbound frame"),
    NUM(max_rooms, KIND_U32, 1, 65536, "256", "rooms per connection"),
    NUM(max_connections, KIND_U32, 0, 16777216, "0",
        "client connections; 0: unlimited (the fd limit rules)"),
    NUM(outbound_queue_bytes, KIND_U64, 4096, INT64_C(1) << 30, "1048576",
        "queued bytes per connection, then close 4009"),
    NUM(outbound_queue_msgs, KIND_U32, 1, 16777216, "4096",
        "queued frames per connection, then close 4009"),
    NUM(rate_limit, KIND_U32, 1, 1000000, "100",
        "inbound frames per second per connection"),
    NUM(rate_burst, KIND_U32, 1, 1000000, "200",
        "inbound frame burst per connection"),
    NUM(max_publish, KIND_U32, 1, 16777216, "65536",
        "bytes of data in one publish"),
    NUM(heartbeat_ms, KIND_I64, 100, 3600000, "25000", "ping interval, ms"),
    NUM(history_size, KIND_U32, 1, 100000, "100", "messages kept per room"),
    NUM(history_ttl_ms, KIND_I64, 1, MAX_DURATION_MS, "300000",
        "how long history is kept, ms"),
    NUM(redis_wait_replicas, KIND_U32, 0, 64, "0",
        "replicas that must confirm a durable publish (Redis WAIT); 0: none"),
    NUM(redis_wait_timeout_ms, KIND_I64, 1, 60000, "1000",
        "how long a durable publish waits for redis_wait_replicas, ms"),
    NUM(resume_ttl_ms, KIND_I64, 1, MAX_DURATION_MS, "120000",
        "resume token lifetime, ms"),
    SECRET(resume_secret, resume_secret_len,
           "key signing resume tokens (32+ bytes), shared by all nodes"),
    FILEKEY(resume_secret_file, resume_secret, OFF(resume_secret_len), F_LEN,
            "file holding resume_secret; one trailing newline is stripped"),
    NUM(drain_window_ms, KIND_I64, 1, MAX_DURATION_MS, "10000",
        "drain pacing window, ms"),
    NUM(drain_timeout_ms, KIND_I64, 1, MAX_DURATION_MS, "30000",
        "drain hard stop, ms"),
    STR(log_level, "info", 0, rc__config_check_log_level,
        "debug, info, warn or error"),
    {.name = "workers",
     .kind = KIND_U32,
     .off = OFF(workers),
     .min = 1,
     .max = 256,
     .def = "1",
     .flags = F_AUTO,
     .help = "worker processes sharing the client port (auto: one per CPU; "
             "more than 1 needs redis_url)"},
};

const size_t rc__config_nkeys = RC_ARRAY_LEN(rc__config_keys);

_Static_assert(RC_ARRAY_LEN(rc__config_keys) <= RC__CONFIG_MAX_KEYS,
               "raise RC__CONFIG_MAX_KEYS");

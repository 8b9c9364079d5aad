/* auth/: who may hold a connection, and which rooms it may join or publish
 * to. Verifies a JWT with libjwt 1.10 (signature, pinned algorithm) and
 * checks its claims itself (libjwt 1.10 checks none).
 * Loop-safe: no I/O after rc_auth_create().
 * SPDX-License-Identifier: MIT */
#ifndef RC_AUTH_H
#define RC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define RC_AUTH_MAX_TOKEN 8192 /* bytes; longer tokens are refused unread */
#define RC_AUTH_MAX_SUB 256    /* bytes of the sub claim */

/* Why a token was refused. Each has a stable name (rc_auth_reason_str()),
 * used in metrics labels, logs and HTTP 401 bodies. */
typedef enum rc_auth_reason {
    RC_AUTH_OK = 0,
    RC_AUTH_MISSING,       /* "missing": no token at all */
    RC_AUTH_TOO_LONG,      /* "too_long": over RC_AUTH_MAX_TOKEN */
    RC_AUTH_MALFORMED,     /* "malformed": not three base64url JSON parts */
    RC_AUTH_BAD_ALG,       /* "bad_alg": header alg is not the pinned one */
    RC_AUTH_BAD_SIGNATURE, /* "bad_signature" */
    RC_AUTH_EXPIRED,       /* "expired": exp + leeway <= now */
    RC_AUTH_NO_EXP,        /* "no_exp": exp missing or not a number */
    RC_AUTH_NOT_YET_VALID, /* "not_yet_valid": nbf or iat in the future */
    RC_AUTH_BAD_ISSUER,    /* "bad_issuer" */
    RC_AUTH_BAD_AUDIENCE,  /* "bad_audience" */
    RC_AUTH_BAD_SUB,       /* "bad_sub": missing, empty, too long, not str */
    RC_AUTH_BAD_CLAIMS,    /* "bad_claims": rooms/pub not arrays of strings */
    RC_AUTH_REASON_COUNT
} rc_auth_reason_t;

const char *rc_auth_reason_str(rc_auth_reason_t r); /* static, never NULL */

typedef struct rc_auth_config {
    /* "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
     * "ES384"; borrowed */
    const char *alg;
    const unsigned char *secret; /* HS*: borrowed */
    size_t secret_len;
    const char *public_key_pem; /* RS*, ES*: PEM text; borrowed */
    const char *issuer;         /* NULL: not checked; borrowed */
    const char *audience;       /* NULL: not checked; borrowed */
    int64_t leeway_ms;          /* clock skew allowed on exp/nbf/iat */
} rc_auth_config_t;

typedef struct rc_auth rc_auth_t;

/* Returns an owned verifier (rc_auth_destroy()), or NULL with a one-line
 * reason in err (unknown alg, missing secret, unreadable key, ...). cfg is
 * copied; nothing in it needs to outlive the call. */
rc_auth_t *rc_auth_create(const rc_auth_config_t *cfg, char *err,
                          size_t errlen);
void rc_auth_destroy(rc_auth_t *a); /* NULL is a no-op */

/* What a valid token grants. One compact heap block (sub and patterns packed
 * in it): it is kept per connection, so its size matters. */
typedef struct rc_identity rc_identity_t;

/* Verify token (len bytes, need not be NUL-terminated) at now_ms (Unix ms).
 * On RC_AUTH_OK *out is owned (rc_identity_destroy()); otherwise *out is
 * NULL. Never reads past len; never logs the token. */
RC_MUST_CHECK rc_auth_reason_t rc_auth_verify(const rc_auth_t *a,
                                              const char *token, size_t len,
                                              int64_t now_ms,
                                              rc_identity_t **out);

void rc_identity_destroy(rc_identity_t *id); /* NULL is a no-op */

/* Borrowed, valid until rc_identity_destroy(). */
const char *rc_identity_sub(const rc_identity_t *id);
/* exp claim in Unix ms (without leeway). */
int64_t rc_identity_exp_ms(const rc_identity_t *id);
/* Bytes of the identity's block as requested from malloc (for memory
 * accounting: one identity is kept per connection). */
size_t rc_identity_size(const rc_identity_t *id);
/* Rights: exact name, "prefix*", or "*". */
bool rc_identity_may_join(const rc_identity_t *id, const char *room);
bool rc_identity_may_publish(const rc_identity_t *id, const char *room);

/* One pattern against one room name (exposed for tests and the CLI). */
bool rc_auth_pattern_match(const char *pattern, const char *room);

/* Mint an HS* token (development, tests, demo). rooms/pub are arrays of
 * nrooms/npub patterns (may be 0). Returns an owned string (free()) or NULL
 * with the reason in err. */
char *rc_auth_mint(const char *alg, const unsigned char *secret,
                   size_t secret_len, const char *sub, const char *const *rooms,
                   size_t nrooms, const char *const *pub, size_t npub,
                   int64_t iat_s, int64_t ttl_s, char *err, size_t errlen);

#endif /* RC_AUTH_H */

/* Signed opaque tokens (resume tokens and the like): payload bytes plus an
 * HMAC-SHA256 tag, base64url, compared in constant time. Key rotation: seal
 * with the current key, open with the current or the previous one.
 * Format: base64url(payload) "." base64url(tag).
 * SPDX-License-Identifier: MIT */
#ifndef RC_SEALED_H
#define RC_SEALED_H

#include <stddef.h>

#include "common/err.h"

typedef struct rc_sealed_keys {
    const unsigned char *current; /* borrowed; required */
    size_t current_len;
    const unsigned char *previous; /* borrowed; NULL when none */
    size_t previous_len;
} rc_sealed_keys_t;

/* Writes a NUL-terminated token into out. RC_ELIMIT when outlen is too
 * small (rc_sealed_len(payload_len) bytes are enough). */
RC_MUST_CHECK rc_err_t rc_sealed_seal(const rc_sealed_keys_t *keys,
                                      const void *payload, size_t payload_len,
                                      char *out, size_t outlen);
size_t rc_sealed_len(size_t payload_len);

/* Verifies token (len bytes) and writes the payload into out (*out_len set).
 * RC_EAUTH when the tag matches neither key or the token is malformed;
 * RC_ELIMIT when outlen is too small. */
RC_MUST_CHECK rc_err_t rc_sealed_open(const rc_sealed_keys_t *keys,
                                      const char *token, size_t len, void *out,
                                      size_t outlen, size_t *out_len);

#endif /* RC_SEALED_H */

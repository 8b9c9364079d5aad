/* Helpers shared by the files of auth/ (STYLE rule 1): strict base64url
 * (RFC 4648 section 5, no padding), as JWS and sealed tokens use it.
 * Not part of the public API.
 * SPDX-License-Identifier: MIT */
#ifndef RC_AUTH_INTERNAL_H
#define RC_AUTH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Characters needed to encode n bytes, without padding or NUL. Saturates at
 * SIZE_MAX for absurd n. */
size_t rc__auth_b64url_len(size_t n);

/* Bytes that n valid base64url characters decode to. */
size_t rc__auth_b64url_decoded_len(size_t n);

/* Writes rc__auth_b64url_len(n) characters and a NUL into out, which the
 * caller sized (unchecked precondition). Returns the characters written. */
size_t rc__auth_b64url_encode(const void *src, size_t n, char *out);

/* True when s (n bytes, need not be NUL-terminated) is canonical unpadded
 * base64url: only A-Z a-z 0-9 - _, n % 4 != 1, unused trailing bits zero.
 * The empty string is valid (zero bytes). */
bool rc__auth_b64url_valid(const char *s, size_t n);

/* Strict decode of s (n bytes) into out. RC_EINVAL when s is not canonical
 * base64url, RC_ELIMIT when outlen < rc__auth_b64url_decoded_len(n). */
RC_MUST_CHECK rc_err_t rc__auth_b64url_decode(const char *s, size_t n,
                                              void *out, size_t outlen,
                                              size_t *out_len);

#endif /* RC_AUTH_INTERNAL_H */

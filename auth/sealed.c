/* Sealed tokens: base64url(payload) "." base64url(HMAC-SHA256(key, the
 * first segment as text)). The tag covers the encoded text, so a token is
 * authenticated before a byte of it is decoded. No encryption: the payload
 * is readable by whoever holds the token.
 * SPDX-License-Identifier: MIT */
#include "auth/sealed.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth_internal.h"

#define RC__SEALED_TAG 32 /* HMAC-SHA256 bytes */
#define RC__SEALED_TAG_B64 43

size_t rc_sealed_len(size_t payload_len)
{
    size_t n = rc__auth_b64url_len(payload_len);
    size_t extra = 1 + RC__SEALED_TAG_B64 + 1; /* ".", tag, NUL */

    return n > SIZE_MAX - extra ? SIZE_MAX : n + extra;
}

static bool key_ok(const unsigned char *key, size_t len)
{
    return key && len > 0 && len <= INT_MAX;
}

static bool tag(const unsigned char *key, size_t key_len, const char *text,
                size_t n, unsigned char out[RC__SEALED_TAG])
{
    unsigned int len = 0;

    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)text, n,
                out, &len) &&
           len == RC__SEALED_TAG;
}

rc_err_t rc_sealed_seal(const rc_sealed_keys_t *keys, const void *payload,
                        size_t payload_len, char *out, size_t outlen)
{
    unsigned char t[RC__SEALED_TAG];
    size_t n;

    if (!keys || !key_ok(keys->current, keys->current_len) || !out ||
        (!payload && payload_len))
        return RC_EINVAL;
    if (rc_sealed_len(payload_len) > outlen)
        return RC_ELIMIT;
    n = rc__auth_b64url_encode(payload, payload_len, out);
    if (!tag(keys->current, keys->current_len, out, n, t))
        return RC_EIO;
    out[n] = '.';
    rc__auth_b64url_encode(t, sizeof t, out + n + 1);
    return RC_OK;
}

rc_err_t rc_sealed_open(const rc_sealed_keys_t *keys, const char *token,
                        size_t len, void *out, size_t outlen, size_t *out_len)
{
    unsigned char got[RC__SEALED_TAG], want[RC__SEALED_TAG];
    const char *dot;
    size_t n, got_len;
    bool ok;

    if (out_len)
        *out_len = 0;
    if (!keys || !key_ok(keys->current, keys->current_len) || !out_len ||
        (!out && outlen) ||
        (keys->previous && !key_ok(keys->previous, keys->previous_len)))
        return RC_EINVAL;
    if (!token || len < 1 + RC__SEALED_TAG_B64)
        return RC_EAUTH;

    /* The tag is the fixed-size tail; anything else (a second dot, a short
     * or padded tag) fails its strict decode or the payload check below. */
    dot = token + len - RC__SEALED_TAG_B64 - 1;
    if (*dot != '.')
        return RC_EAUTH;
    n = (size_t)(dot - token);
    if (rc__auth_b64url_decode(dot + 1, RC__SEALED_TAG_B64, got, sizeof got,
                               &got_len) != RC_OK ||
        got_len != RC__SEALED_TAG || !rc__auth_b64url_valid(token, n))
        return RC_EAUTH;

    ok = tag(keys->current, keys->current_len, token, n, want) &&
         CRYPTO_memcmp(want, got, sizeof got) == 0;
    if (!ok && keys->previous)
        ok = tag(keys->previous, keys->previous_len, token, n, want) &&
             CRYPTO_memcmp(want, got, sizeof got) == 0;
    OPENSSL_cleanse(want, sizeof want);
    if (!ok)
        return RC_EAUTH;

    if (rc__auth_b64url_decoded_len(n) > outlen)
        return RC_ELIMIT;
    if (rc__auth_b64url_decode(token, n, out, outlen, out_len) != RC_OK)
        return RC_EAUTH; /* unreachable: checked above */
    return RC_OK;
}

/* TLS for the client port: the profile every listener starts with
 * (Mozilla's "intermediate": TLS 1.2 with forward-secret AEAD suites only,
 * and TLS 1.3) and the reload of the certificate and key on SIGHUP.
 * SPDX-License-Identifier: MIT */
#ifndef RC_TLS_H
#define RC_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "common/err.h"

/* SSL_OP_* bits for a listener whose lowest version is min_version
 * ("1.2" or "1.3", checked at config load): older versions off, no
 * renegotiation, no compression. */
long rc_tls_options(const char *min_version);

/* Applies min_version to a listener's SSL_CTX (borrowed). */
void rc_tls_configure(SSL_CTX *ctx, const char *min_version);

/* Loads cert (a PEM chain) and key (PEM) from their files into a scratch
 * context and checks that they belong together; only then puts them into
 * live (borrowed), where new handshakes use them; connections already open
 * keep theirs. On failure live is untouched and why (whylen bytes, always
 * NUL-ended) says what was wrong. On success why holds the new
 * certificate's subject and expiry, for the log. */
RC_MUST_CHECK rc_err_t rc_tls_reload(SSL_CTX *live, const char *cert,
                                     const char *key, char *why, size_t whylen);

#endif /* RC_TLS_H */

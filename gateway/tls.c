/* TLS profile and certificate reload (tls.h).
 * SPDX-License-Identifier: MIT */
#include "gateway/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

static int min_proto(const char *min_version)
{
    return min_version && strcmp(min_version, "1.3") == 0 ? TLS1_3_VERSION
                                                          : TLS1_2_VERSION;
}

long rc_tls_options(const char *min_version)
{
    long o = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
             SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION |
             SSL_OP_NO_RENEGOTIATION;

    if (min_proto(min_version) == TLS1_3_VERSION)
        o |= SSL_OP_NO_TLSv1_2;
    return o;
}

void rc_tls_configure(SSL_CTX *ctx, const char *min_version)
{
    if (!ctx)
        return;
    SSL_CTX_set_min_proto_version(ctx, min_proto(min_version));
    SSL_CTX_set_options(ctx, (uint64_t)rc_tls_options(min_version));
}

/* The first queued OpenSSL error as text (the queue is emptied). */
static void ossl_err(char *why, size_t whylen, const char *what)
{
    char e[200] = "";
    unsigned long code = ERR_peek_last_error();

    if (code)
        ERR_error_string_n(code, e, sizeof(e));
    ERR_clear_error();
    snprintf(why, whylen, "%s%s%s", what, e[0] ? ": " : "", e);
}

rc_err_t rc_tls_reload(SSL_CTX *live, const char *cert, const char *key,
                       char *why, size_t whylen)
{
    SSL_CTX *s = NULL;
    X509 *x;
    EVP_PKEY *k;
    STACK_OF(X509) *chain = NULL;
    char subject[160] = "", until[64] = "";
    BIO *b = NULL;

    why[0] = '\0';
    if (!live || !cert || !key) {
        snprintf(why, whylen, "TLS is not configured");
        return RC_EINVAL;
    }
    ERR_clear_error();
    s = SSL_CTX_new(TLS_server_method());
    if (!s) {
        ossl_err(why, whylen, "no scratch context");
        return RC_ENOMEM;
    }
    if (SSL_CTX_use_certificate_chain_file(s, cert) != 1) {
        ossl_err(why, whylen, "certificate unreadable");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1) {
        ossl_err(why, whylen, "key unreadable or not the certificate's");
        goto fail;
    }
    if (SSL_CTX_check_private_key(s) != 1) {
        ossl_err(why, whylen, "key does not match the certificate");
        goto fail;
    }
    x = SSL_CTX_get0_certificate(s);
    k = SSL_CTX_get0_privatekey(s);
    if (!x || !k || SSL_CTX_get0_chain_certs(s, &chain) != 1) {
        ossl_err(why, whylen, "certificate or key missing after load");
        goto fail;
    }
    /* The pair is good: now the live context. These take references and
     * cannot fail on a checked pair short of running out of memory. */
    if (SSL_CTX_use_certificate(live, x) != 1 ||
        SSL_CTX_use_PrivateKey(live, k) != 1 ||
        SSL_CTX_set1_chain(live, chain) != 1) {
        ossl_err(why, whylen, "the live context refused the new pair");
        goto fail;
    }
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(b, until, (int)sizeof(until) - 1);
        until[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    snprintf(why, whylen, "subject=%s not_after=%s", subject, until);
    SSL_CTX_free(s);
    return RC_OK;
fail:
    SSL_CTX_free(s);
    return RC_EINVAL;
}

/* bench_auth: nanoseconds per rc_auth_verify() (plus rc_identity_destroy),
 * the work done on the event loop for every connect. Not a test: it prints
 * one key=value line per case and always exits 0.
 *   bench_auth [N]   N HS256 iterations (default 200000); the public-key
 *                    cases run N/20.
 * Keys are made at start with OpenSSL; tokens are signed with libjwt.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"

#define NOW_S 1700000000LL
#define SECRET "0123456789abcdef0123456789abcdef"
#define PAYLOAD                                                                \
    "{\"sub\":\"user-42\",\"rooms\":[\"chat:*\",\"lobby\"],"                   \
    "\"pub\":[\"chat:42\"],\"iat\":1699999990,\"exp\":1700003600}"

static char *pem_of(EVP_PKEY *k, int priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *s;
    long n;

    if (priv)
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, k);
    n = BIO_get_mem_data(b, &data);
    s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static char *sign(jwt_alg_t alg, const char *key)
{
    jwt_t *j = NULL;
    char *t;

    if (jwt_new(&j) || jwt_add_grants_json(j, PAYLOAD) ||
        jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key))) {
        fprintf(stderr, "bench_auth: libjwt cannot sign\n");
        exit(1);
    }
    t = jwt_encode_str(j);
    jwt_free(j);
    return t;
}

static rc_auth_t *make(const char *alg, const char *secret, const char *pem)
{
    char err[256];
    rc_auth_config_t c = {.alg = alg,
                          .secret = (const unsigned char *)secret,
                          .secret_len = secret ? strlen(secret) : 0,
                          .public_key_pem = pem,
                          .leeway_ms = 30000};
    rc_auth_t *a = rc_auth_create(&c, err, sizeof err);

    if (!a) {
        fprintf(stderr, "bench_auth: %s: %s\n", alg, err);
        exit(1);
    }
    return a;
}

static void run(const char *name, const rc_auth_t *a, const char *tok, long n,
                rc_auth_reason_t want)
{
    struct timespec t0, t1;
    size_t len = strlen(tok);
    double ns;

    for (long i = 0; i < n / 10 + 1; i++) { /* warm up */
        rc_identity_t *id = NULL;
        if (rc_auth_verify(a, tok, len, NOW_S * 1000, &id) != want) {
            fprintf(stderr, "bench_auth: %s: unexpected result\n", name);
            exit(1);
        }
        rc_identity_destroy(id);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        rc_identity_t *id = NULL;
        rc_auth_reason_t r = rc_auth_verify(a, tok, len, NOW_S * 1000, &id);
        (void)r;
        rc_identity_destroy(id);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
          (double)(t1.tv_nsec - t0.tv_nsec)) /
         (double)n;
    printf("case=%s result=%s iterations=%ld token_bytes=%zu "
           "ns_per_verify=%.0f verifies_per_s=%.0f\n",
           name, rc_auth_reason_str(want), n, len, ns, 1e9 / ns);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char *ec_priv = pem_of(ec, 1), *ec_pub = pem_of(ec, 0);
    char *rsa_priv = pem_of(rsa, 1), *rsa_pub = pem_of(rsa, 0);
    rc_auth_t *hs = make("HS256", SECRET, NULL);
    rc_auth_t *es = make("ES256", NULL, ec_pub);
    rc_auth_t *rs = make("RS256", NULL, rsa_pub);
    char *t_hs = sign(JWT_ALG_HS256, SECRET);
    char *t_es = sign(JWT_ALG_ES256, ec_priv);
    char *t_rs = sign(JWT_ALG_RS256, rsa_priv);
    char *t_forged = strdup(t_hs);

    if (n < 20)
        n = 20;
    /* A signature character changed (not the last: it stays canonical). */
    t_forged[strlen(t_forged) - 10] =
        t_forged[strlen(t_forged) - 10] == 'A' ? 'B' : 'A';

    run("HS256", hs, t_hs, n, RC_AUTH_OK);
    run("HS256-forged", hs, t_forged, n, RC_AUTH_BAD_SIGNATURE);
    run("ES256", es, t_es, n / 20, RC_AUTH_OK);
    run("RS256", rs, t_rs, n / 20, RC_AUTH_OK);

    free(t_hs);
    free(t_es);
    free(t_rs);
    free(t_forged);
    rc_auth_destroy(hs);
    rc_auth_destroy(es);
    rc_auth_destroy(rs);
    free(ec_priv);
    free(ec_pub);
    free(rsa_priv);
    free(rsa_pub);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    return 0;
}

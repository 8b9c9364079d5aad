/* Unit tests of auth/auth.c: a table of refused tokens, each with the exact
 * reason; good tokens for every supported algorithm (RSA and EC keys made
 * here with OpenSSL, tokens signed with libjwt); leeway edges; patterns and
 * rights; identity size; configuration errors; minting.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h> /* 1.1.5 needs the four above first */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/auth.h"
#include "common/mem.h"

#define NOW_S 1700000000LL
#define NOW_MS (NOW_S * 1000)
#define LEEWAY_MS 30000
#define SECRET "0123456789abcdef0123456789abcdef"
#define ISSUER "https://issuer.example"
#define AUDIENCE "roomcast"

/* exp one hour after NOW, iat ten seconds before. */
#define GOOD_PAYLOAD                                                           \
    "{\"sub\":\"user-1\",\"rooms\":[\"chat:*\",\"lobby\"],"                    \
    "\"pub\":[\"chat:news\"],\"iat\":1699999990,\"exp\":1700003600}"
#define TIMES "\"iat\":1699999990,\"exp\":1700003600"
#define A10 "aaaaaaaaaa"
#define A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
#define A128 A100 A10 A10 "aaaaaaaa"
#define A256 A100 A100 A10 A10 A10 A10 A10 "aaaaaa"

/* ---- fixture: keys and verifiers made once for the group -------------- */

typedef enum cfg_id {
    C_HS256,
    C_HS256_CLAIMS, /* with issuer and audience */
    C_RS256,
    C_ES256,
    C_COUNT
} cfg_id_t;

typedef struct fixture {
    char *rsa_priv, *rsa_pub;   /* 2048 bits */
    char *rsa2_priv, *rsa2_pub; /* another key: "wrong key" */
    char *rsa1024_pub;          /* too short for a config */
    char *ec256_priv, *ec256_pub;
    char *ec256b_priv; /* another P-256 key */
    char *ec384_priv, *ec384_pub;
    rc_auth_t *cfg[C_COUNT];
} fixture_t;

static char *pem_of(EVP_PKEY *k, int priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *s;
    long n;

    assert_non_null(b);
    if (priv)
        assert_int_equal(
            PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    n = BIO_get_mem_data(b, &data);
    s = malloc((size_t)n + 1);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static void keypair(EVP_PKEY *k, char **priv, char **pub)
{
    assert_non_null(k);
    if (priv)
        *priv = pem_of(k, 1);
    if (pub)
        *pub = pem_of(k, 0);
    EVP_PKEY_free(k);
}

static rc_auth_t *make_auth(const char *alg, const char *secret,
                            const char *pem, const char *iss, const char *aud,
                            int64_t leeway)
{
    char err[256];
    rc_auth_config_t c = {
        .alg = alg,
        .secret = (const unsigned char *)secret,
        .secret_len = secret ? strlen(secret) : 0,
        .public_key_pem = pem,
        .issuer = iss,
        .audience = aud,
        .leeway_ms = leeway,
    };
    rc_auth_t *a = rc_auth_create(&c, err, sizeof err);
    if (!a)
        print_error("rc_auth_create(%s): %s\n", alg, err);
    assert_non_null(a);
    return a;
}

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), &f->rsa_priv,
            &f->rsa_pub);
    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), &f->rsa2_priv,
            &f->rsa2_pub);
    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024), NULL,
            &f->rsa1024_pub);
    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), &f->ec256_priv,
            &f->ec256_pub);
    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), &f->ec256b_priv,
            NULL);
    keypair(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), &f->ec384_priv,
            &f->ec384_pub);

    f->cfg[C_HS256] = make_auth("HS256", SECRET, NULL, NULL, NULL, LEEWAY_MS);
    f->cfg[C_HS256_CLAIMS] =
        make_auth("HS256", SECRET, NULL, ISSUER, AUDIENCE, LEEWAY_MS);
    f->cfg[C_RS256] =
        make_auth("RS256", NULL, f->rsa_pub, NULL, NULL, LEEWAY_MS);
    f->cfg[C_ES256] =
        make_auth("ES256", NULL, f->ec256_pub, NULL, NULL, LEEWAY_MS);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;

    for (int i = 0; i < C_COUNT; i++)
        rc_auth_destroy(f->cfg[i]);
    free(f->rsa_priv);
    free(f->rsa_pub);
    free(f->rsa2_priv);
    free(f->rsa2_pub);
    free(f->rsa1024_pub);
    free(f->ec256_priv);
    free(f->ec256_pub);
    free(f->ec256b_priv);
    free(f->ec384_priv);
    free(f->ec384_pub);
    free(f);
    return 0;
}

/* ---- token builders (independent of auth/'s own base64url) ------------ */

static char *b64url(const void *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    int j = 0;

    for (int i = 0; i < len && out[i] != '='; i++)
        out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[j] = '\0';
    return out;
}

static char *cat3(const char *a, const char *sep, const char *b)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);

    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

/* b64(header).b64(payload).b64(HMAC(key, the first two)); md NULL leaves
 * the signature empty (alg none). */
static char *hs_token(const EVP_MD *md, const void *key, size_t keylen,
                      const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    char *signing = cat3(h, ".", p), *sig, *tok;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (md)
        assert_non_null(HMAC(md, key, (int)keylen,
                             (const unsigned char *)signing, strlen(signing),
                             mac, &maclen));
    sig = b64url(mac, maclen);
    tok = cat3(signing, ".", sig);
    free(h);
    free(p);
    free(signing);
    free(sig);
    return tok;
}

/* A token signed by libjwt: header {"alg":...,"typ":"JWT"}. */
static char *jwt_token(jwt_alg_t alg, const char *key, size_t keylen,
                       const char *payload)
{
    jwt_t *j = NULL;
    char *t;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, payload), 0);
    assert_int_equal(
        jwt_set_alg(j, alg, (const unsigned char *)key, (int)keylen), 0);
    t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static rc_auth_reason_t verify(const rc_auth_t *a, const char *tok, int64_t now,
                               rc_identity_t **out)
{
    rc_identity_t *id = NULL;
    rc_auth_reason_t r =
        rc_auth_verify(a, tok, tok ? strlen(tok) : 0, now, out ? out : &id);
    if (r != RC_AUTH_OK)
        assert_null(out ? *out : id);
    rc_identity_destroy(id);
    return r;
}

/* ---- refused tokens --------------------------------------------------- */

typedef enum signer {
    S_HS,         /* HMAC-SHA256 with SECRET */
    S_HS512,      /* HMAC-SHA512 with SECRET */
    S_HS_WRONG,   /* HMAC-SHA256 with another secret */
    S_HS_RSA_PUB, /* HMAC-SHA256 keyed with the RSA public key PEM */
    S_NONE,       /* empty signature */
    S_RS,         /* libjwt RS256, the configured key */
    S_RS_WRONG,   /* libjwt RS256, another key */
    S_ES,         /* libjwt ES256, the configured key */
    S_ES_WRONG,   /* libjwt ES256, another key */
    S_RAW,        /* the header field is the whole token */
} signer_t;

typedef enum mutation {
    M_NONE,
    M_TAMPER_SIG,   /* first signature char changed */
    M_SIG_SHORT,    /* signature cut to whole groups of 4 chars */
    M_EMPTY_SIG,    /* "h.p." */
    M_TWO_SEGS,     /* "h.p" */
    M_FOUR_SEGS,    /* "h.p.s.AAAA" */
    M_TRAILING_DOT, /* "h.p.s." */
    M_CUT_HALF,     /* cut inside the payload */
    M_EMPTY_HEADER, /* ".p.s" */
    M_EMPTY_PAYLOAD,
    M_PLUS,          /* a '+' in the header (base64, not base64url) */
    M_PAD,           /* "==" after the signature */
    M_NONCANONICAL,  /* unused trailing bits of the signature set */
    M_LEADING_SPACE, /* " h.p.s" */
    M_NUL,           /* a NUL byte inside the payload (len covers it) */
    M_SWAP_PAYLOAD,  /* payload replaced by alt, signature kept */
    M_SWAP_HEADER,   /* header replaced by alt, signature kept */
    M_SIG_ZEROS,     /* signature of the right size, all 0x00 */
    M_SIG_ONES,      /* signature of the right size, all 0xff */
    M_OVERSIZE,      /* RC_AUTH_MAX_TOKEN + 1 bytes */
    M_MAX_SIZE,      /* RC_AUTH_MAX_TOKEN bytes of junk: not too long */
} mutation_t;

typedef struct bad_case {
    const char *name;
    cfg_id_t cfg;
    signer_t signer;
    const char *header;  /* NULL: {"alg":"HS256","typ":"JWT"} (HS*) */
    const char *payload; /* NULL: GOOD_PAYLOAD */
    mutation_t mut;
    const char *alt; /* M_SWAP_*: replacement JSON */
    rc_auth_reason_t want;
} bad_case_t;

#define HS_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define CLAIMS_OK "\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\""

static const bad_case_t bad_cases[] = {
    /* size */
    {"empty", C_HS256, S_RAW, "", NULL, M_NONE, NULL, RC_AUTH_MISSING},
    {"oversized", C_HS256, S_HS, NULL, NULL, M_OVERSIZE, NULL,
     RC_AUTH_TOO_LONG},
    {"max size junk", C_HS256, S_HS, NULL, NULL, M_MAX_SIZE, NULL,
     RC_AUTH_MALFORMED},
    /* structure and encoding */
    {"two segments", C_HS256, S_HS, NULL, NULL, M_TWO_SEGS, NULL,
     RC_AUTH_MALFORMED},
    {"four segments", C_HS256, S_HS, NULL, NULL, M_FOUR_SEGS, NULL,
     RC_AUTH_MALFORMED},
    {"trailing dot", C_HS256, S_HS, NULL, NULL, M_TRAILING_DOT, NULL,
     RC_AUTH_MALFORMED},
    {"truncated in payload", C_HS256, S_HS, NULL, NULL, M_CUT_HALF, NULL,
     RC_AUTH_MALFORMED},
    {"truncated signature", C_HS256, S_HS, NULL, NULL, M_SIG_SHORT, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"empty header segment", C_HS256, S_HS, NULL, NULL, M_EMPTY_HEADER, NULL,
     RC_AUTH_MALFORMED},
    {"empty payload segment", C_HS256, S_HS, NULL, NULL, M_EMPTY_PAYLOAD, NULL,
     RC_AUTH_MALFORMED},
    {"base64 '+' in header", C_HS256, S_HS, NULL, NULL, M_PLUS, NULL,
     RC_AUTH_MALFORMED},
    {"padding", C_HS256, S_HS, NULL, NULL, M_PAD, NULL, RC_AUTH_MALFORMED},
    {"non-canonical base64url", C_HS256, S_HS, NULL, NULL, M_NONCANONICAL, NULL,
     RC_AUTH_MALFORMED},
    {"segment of 4n+1 chars", C_HS256, S_RAW, "A.eyJ9.AAAA", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"leading space", C_HS256, S_HS, NULL, NULL, M_LEADING_SPACE, NULL,
     RC_AUTH_MALFORMED},
    {"NUL byte inside", C_HS256, S_HS, NULL, NULL, M_NUL, NULL,
     RC_AUTH_MALFORMED},
    {"header not JSON", C_HS256, S_HS, "alg: HS256", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"payload not JSON", C_HS256, S_HS, NULL, "sub=user-1", M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"header is an array", C_HS256, S_HS, "[\"HS256\"]", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"payload is an array", C_HS256, S_HS, NULL, "[]", M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"payload is a string", C_HS256, S_HS, NULL, "\"user-1\"", M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"payload is a number", C_HS256, S_HS, NULL, "42", M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"header with trailing junk", C_HS256, S_HS, HS_HDR "x", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"duplicate alg", C_HS256, S_HS, "{\"alg\":\"HS256\",\"alg\":\"none\"}",
     NULL, M_NONE, NULL, RC_AUTH_MALFORMED},
    {"duplicate sub", C_HS256, S_HS, NULL,
     "{\"sub\":\"user-1\",\"sub\":\"admin\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"\\u0000 in header", C_HS256, S_HS,
     "{\"alg\":\"HS256\",\"kid\":\"a\\u0000b\"}", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    {"typ not JWT", C_HS256, S_HS, "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}",
     NULL, M_NONE, NULL, RC_AUTH_MALFORMED},
    {"crit header", C_HS256, S_HS,
     "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", NULL, M_NONE, NULL,
     RC_AUTH_MALFORMED},
    /* algorithm */
    {"alg none", C_HS256, S_NONE, "{\"alg\":\"none\",\"typ\":\"JWT\"}", NULL,
     M_NONE, NULL, RC_AUTH_BAD_ALG},
    {"alg None", C_HS256, S_NONE, "{\"alg\":\"None\"}", NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"alg none, HMAC signature", C_HS256, S_HS, "{\"alg\":\"none\"}", NULL,
     M_NONE, NULL, RC_AUTH_BAD_ALG},
    {"alg none under RS256", C_RS256, S_NONE, "{\"alg\":\"none\"}", NULL,
     M_NONE, NULL, RC_AUTH_BAD_ALG},
    {"alg missing", C_HS256, S_HS, "{\"typ\":\"JWT\"}", NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"alg not a string", C_HS256, S_HS, "{\"alg\":256}", NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"alg lower case", C_HS256, S_HS, "{\"alg\":\"hs256\"}", NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"alg HS512 under HS256", C_HS256, S_HS512, "{\"alg\":\"HS512\"}", NULL,
     M_NONE, NULL, RC_AUTH_BAD_ALG},
    {"alg confusion: HS256 keyed with RSA public PEM", C_RS256, S_HS_RSA_PUB,
     HS_HDR, NULL, M_NONE, NULL, RC_AUTH_BAD_ALG},
    {"ES256 token under RS256", C_RS256, S_ES, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"RS256 token under ES256", C_ES256, S_RS, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    {"HS256 token under ES256", C_ES256, S_HS, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_ALG},
    /* signature */
    {"wrong secret", C_HS256, S_HS_WRONG, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"wrong RSA key", C_RS256, S_RS_WRONG, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"wrong EC key", C_ES256, S_ES_WRONG, NULL, NULL, M_NONE, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"tampered signature (HS256)", C_HS256, S_HS, NULL, NULL, M_TAMPER_SIG,
     NULL, RC_AUTH_BAD_SIGNATURE},
    {"tampered payload (HS256)", C_HS256, S_HS, NULL, NULL, M_SWAP_PAYLOAD,
     "{\"sub\":\"admin\",\"rooms\":[\"*\"]," TIMES "}", RC_AUTH_BAD_SIGNATURE},
    {"tampered header (HS256)", C_HS256, S_HS, NULL, NULL, M_SWAP_HEADER,
     "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k\"}",
     RC_AUTH_BAD_SIGNATURE},
    {"empty signature (HS256)", C_HS256, S_HS, NULL, NULL, M_EMPTY_SIG, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"tampered signature (RS256)", C_RS256, S_RS, NULL, NULL, M_TAMPER_SIG,
     NULL, RC_AUTH_BAD_SIGNATURE},
    {"tampered payload (RS256)", C_RS256, S_RS, NULL, NULL, M_SWAP_PAYLOAD,
     "{\"sub\":\"admin\"," TIMES "}", RC_AUTH_BAD_SIGNATURE},
    {"tampered signature (ES256)", C_ES256, S_ES, NULL, NULL, M_TAMPER_SIG,
     NULL, RC_AUTH_BAD_SIGNATURE},
    {"tampered payload (ES256)", C_ES256, S_ES, NULL, NULL, M_SWAP_PAYLOAD,
     "{\"sub\":\"admin\"," TIMES "}", RC_AUTH_BAD_SIGNATURE},
    {"short signature (ES256)", C_ES256, S_ES, NULL, NULL, M_SIG_SHORT, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"empty signature (ES256)", C_ES256, S_ES, NULL, NULL, M_EMPTY_SIG, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"r = s = 0 (ES256)", C_ES256, S_ES, NULL, NULL, M_SIG_ZEROS, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"r, s >= n (ES256)", C_ES256, S_ES, NULL, NULL, M_SIG_ONES, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"zero signature (RS256)", C_RS256, S_RS, NULL, NULL, M_SIG_ZEROS, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"all-ones signature (RS256)", C_RS256, S_RS, NULL, NULL, M_SIG_ONES, NULL,
     RC_AUTH_BAD_SIGNATURE},
    {"zero signature (HS256)", C_HS256, S_HS, NULL, NULL, M_SIG_ZEROS, NULL,
     RC_AUTH_BAD_SIGNATURE},
    /* exp, nbf, iat */
    {"exp past", C_HS256, S_HS, NULL, "{\"sub\":\"u\",\"exp\":1699990000}",
     M_NONE, NULL, RC_AUTH_EXPIRED},
    {"exp + leeway == now", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"exp\":1699999970}", M_NONE, NULL, RC_AUTH_EXPIRED},
    {"exp very negative", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"exp\":-9223372036854775807}", M_NONE, NULL,
     RC_AUTH_EXPIRED},
    {"exp missing", C_HS256, S_HS, NULL, "{\"sub\":\"u\"}", M_NONE, NULL,
     RC_AUTH_NO_EXP},
    {"exp a string", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"exp\":\"1700003600\"}", M_NONE, NULL, RC_AUTH_NO_EXP},
    {"exp a short string", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"exp\":\"123\"}", M_NONE, NULL, RC_AUTH_NO_EXP},
    {"exp null", C_HS256, S_HS, NULL, "{\"sub\":\"u\",\"exp\":null}", M_NONE,
     NULL, RC_AUTH_NO_EXP},
    {"exp true", C_HS256, S_HS, NULL, "{\"sub\":\"u\",\"exp\":true}", M_NONE,
     NULL, RC_AUTH_NO_EXP},
    {"exp an array", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"exp\":[1700003600]}", M_NONE, NULL, RC_AUTH_NO_EXP},
    {"nbf future", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"nbf\":1700000031," TIMES "}", M_NONE, NULL,
     RC_AUTH_NOT_YET_VALID},
    {"nbf a string", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"nbf\":\"0\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"exp -1e300", C_HS256, S_HS, NULL, "{\"sub\":\"u\",\"exp\":-1e300}",
     M_NONE, NULL, RC_AUTH_EXPIRED},
    {"iat a string", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"iat\":\"now\",\"exp\":1700003600}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"iat future", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"iat\":1700000100,\"exp\":1700003600}", M_NONE, NULL,
     RC_AUTH_NOT_YET_VALID},
    /* iss, aud */
    {"iss mismatch", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"https://evil.example\",\"aud\":\"" AUDIENCE
     "\"," TIMES "}",
     M_NONE, NULL, RC_AUTH_BAD_ISSUER},
    {"iss missing", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"aud\":\"" AUDIENCE "\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_ISSUER},
    {"iss not a string", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":1,\"aud\":\"" AUDIENCE "\"," TIMES "}", M_NONE,
     NULL, RC_AUTH_BAD_ISSUER},
    {"aud string mismatch", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":\"other\"," TIMES "}",
     M_NONE, NULL, RC_AUTH_BAD_AUDIENCE},
    {"aud array mismatch", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":[\"a\",\"b\"]," TIMES "}",
     M_NONE, NULL, RC_AUTH_BAD_AUDIENCE},
    {"aud empty array", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":[]," TIMES "}", M_NONE,
     NULL, RC_AUTH_BAD_AUDIENCE},
    {"aud array with a number", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":[\"" AUDIENCE "\",7]," TIMES
     "}",
     M_NONE, NULL, RC_AUTH_BAD_AUDIENCE},
    {"aud missing", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_AUDIENCE},
    {"aud a number", C_HS256_CLAIMS, S_HS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":1," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_AUDIENCE},
    /* sub */
    {"sub missing", C_HS256, S_HS, NULL, "{" TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_SUB},
    {"sub empty", C_HS256, S_HS, NULL, "{\"sub\":\"\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_SUB},
    {"sub 257 bytes", C_HS256, S_HS, NULL, "{\"sub\":\"" A256 "a\"," TIMES "}",
     M_NONE, NULL, RC_AUTH_BAD_SUB},
    {"sub a number", C_HS256, S_HS, NULL, "{\"sub\":42," TIMES "}", M_NONE,
     NULL, RC_AUTH_BAD_SUB},
    {"sub null", C_HS256, S_HS, NULL, "{\"sub\":null," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_SUB},
    {"sub an array", C_HS256, S_HS, NULL, "{\"sub\":[\"u\"]," TIMES "}", M_NONE,
     NULL, RC_AUTH_BAD_SUB},
    {"sub with a newline", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\\nlevel=error\"," TIMES "}", M_NONE, NULL, RC_AUTH_BAD_SUB},
    /* rooms, pub */
    {"rooms not an array", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":\"chat:*\"," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"rooms null", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":null," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"rooms with a number", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":[\"a\",1]," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"rooms with an object", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":[{}]," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"rooms with an empty pattern", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":[\"\"]," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"rooms with a 129-byte pattern", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"rooms\":[\"" A128 "a\"]," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"pub not an array", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"pub\":{\"room\":\"x\"}," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
    {"pub with null", C_HS256, S_HS, NULL,
     "{\"sub\":\"u\",\"pub\":[null]," TIMES "}", M_NONE, NULL,
     RC_AUTH_BAD_CLAIMS},
};

/* Splits a token at its first and last dots (header, payload, signature). */
static void split3(const char *tok, size_t *d1, size_t *d2)
{
    const char *a = strchr(tok, '.'), *b = strrchr(tok, '.');

    assert_non_null(a);
    assert_true(b > a);
    *d1 = (size_t)(a - tok);
    *d2 = (size_t)(b - tok);
}

static char *replace_segment(const char *tok, int which, const char *json)
{
    size_t d1, d2, n = strlen(tok);
    char *seg = b64url(json, strlen(json));
    size_t ls = strlen(seg);
    char *out = malloc(n + ls + 1);

    split3(tok, &d1, &d2);
    if (which == 0) {
        memcpy(out, seg, ls);
        memcpy(out + ls, tok + d1, n - d1 + 1);
    } else {
        memcpy(out, tok, d1 + 1);
        memcpy(out + d1 + 1, seg, ls);
        memcpy(out + d1 + 1 + ls, tok + d2, n - d2 + 1);
    }
    free(seg);
    return out;
}

static int b64val(char c)
{
    const char *alpha =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    return (int)(strchr(alpha, c) - alpha);
}

/* Applies m to tok (owned); returns the new token and sets *len. */
static char *mutate(char *tok, mutation_t m, const char *alt, size_t *len)
{
    const char *alpha =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t d1, d2, n = strlen(tok);
    char *out;

    split3(tok, &d1, &d2);
    *len = n;
    switch (m) {
    case M_NONE:
        return tok;
    case M_TAMPER_SIG:
        tok[d2 + 1] = tok[d2 + 1] == 'A' ? 'B' : 'A';
        return tok;
    case M_SIG_SHORT: {
        /* Whole groups of 4 only, so the shorter one is still canonical. */
        size_t sl = n - d2 - 1, keep = sl % 4 ? sl / 4 * 4 : sl - 4;
        tok[d2 + 1 + keep] = '\0';
        *len = d2 + 1 + keep;
        return tok;
    }
    case M_EMPTY_SIG:
        tok[d2 + 1] = '\0';
        *len = d2 + 1;
        return tok;
    case M_TWO_SEGS:
        tok[d2] = '\0';
        *len = d2;
        return tok;
    case M_FOUR_SEGS:
        out = cat3(tok, ".", "AAAA");
        break;
    case M_TRAILING_DOT:
        out = cat3(tok, ".", "");
        break;
    case M_CUT_HALF:
        tok[d1 + 1 + (d2 - d1) / 2] = '\0';
        *len = strlen(tok);
        return tok;
    case M_EMPTY_HEADER:
        out = strdup(tok + d1);
        break;
    case M_EMPTY_PAYLOAD:
        memmove(tok + d1 + 1, tok + d2, n - d2 + 1);
        *len = strlen(tok);
        return tok;
    case M_PLUS:
        tok[1] = '+';
        return tok;
    case M_PAD:
        out = cat3(tok, "==", "");
        break;
    case M_NONCANONICAL: {
        /* 32 bytes are 43 chars; the last one has 2 unused low bits. */
        assert_int_equal(n - d2 - 1, 43);
        tok[n - 1] = alpha[b64val(tok[n - 1]) | 1];
        return tok;
    }
    case M_LEADING_SPACE:
        out = cat3(" ", "", tok);
        break;
    case M_NUL:
        tok[d1 + 3] = '\0';
        return tok; /* *len still covers the whole token */
    case M_SIG_ZEROS:
    case M_SIG_ONES: {
        size_t bytes = (n - d2 - 1) * 3 / 4;
        unsigned char *raw = malloc(bytes);
        char *sig;
        memset(raw, m == M_SIG_ZEROS ? 0x00 : 0xff, bytes);
        sig = b64url(raw, bytes);
        tok[d2] = '\0';
        out = cat3(tok, ".", sig);
        free(raw);
        free(sig);
        break;
    }
    case M_SWAP_PAYLOAD:
        out = replace_segment(tok, 1, alt);
        break;
    case M_SWAP_HEADER:
        out = replace_segment(tok, 0, alt);
        break;
    case M_OVERSIZE:
    case M_MAX_SIZE:
        *len = RC_AUTH_MAX_TOKEN + (m == M_OVERSIZE);
        out = malloc(*len + 1);
        memset(out, 'A', *len);
        out[*len] = '\0';
        break;
    default:
        fail();
        return NULL;
    }
    free(tok);
    if (m != M_OVERSIZE && m != M_MAX_SIZE)
        *len = strlen(out);
    return out;
}

static char *build(const fixture_t *f, const bad_case_t *c)
{
    const char *hdr = c->header ? c->header : HS_HDR;
    const char *pl = c->payload ? c->payload : GOOD_PAYLOAD;
    const char *other = "another secret, 32 bytes long...";

    switch (c->signer) {
    case S_HS:
        return hs_token(EVP_sha256(), SECRET, strlen(SECRET), hdr, pl);
    case S_HS512:
        return hs_token(EVP_sha512(), SECRET, strlen(SECRET), hdr, pl);
    case S_HS_WRONG:
        return hs_token(EVP_sha256(), other, strlen(other), hdr, pl);
    case S_HS_RSA_PUB:
        return hs_token(EVP_sha256(), f->rsa_pub, strlen(f->rsa_pub), hdr, pl);
    case S_NONE:
        return hs_token(NULL, NULL, 0, hdr, pl);
    case S_RS:
        return jwt_token(JWT_ALG_RS256, f->rsa_priv, strlen(f->rsa_priv), pl);
    case S_RS_WRONG:
        return jwt_token(JWT_ALG_RS256, f->rsa2_priv, strlen(f->rsa2_priv), pl);
    case S_ES:
        return jwt_token(JWT_ALG_ES256, f->ec256_priv, strlen(f->ec256_priv),
                         pl);
    case S_ES_WRONG:
        return jwt_token(JWT_ALG_ES256, f->ec256b_priv, strlen(f->ec256b_priv),
                         pl);
    case S_RAW:
        return strdup(hdr);
    }
    fail();
    return NULL;
}

static void test_bad_tokens(void **state)
{
    const fixture_t *f = *state;
    int failures = 0;

    assert_true(RC_ARRAY_LEN(bad_cases) >= 40);
    for (size_t i = 0; i < RC_ARRAY_LEN(bad_cases); i++) {
        const bad_case_t *c = &bad_cases[i];
        char *tok = build(f, c);
        rc_identity_t *id = (rc_identity_t *)&failures; /* must be reset */
        rc_auth_reason_t r;
        size_t len = 0;

        if (c->signer != S_RAW || c->mut != M_NONE)
            tok = mutate(tok, c->mut, c->alt, &len);
        else
            len = strlen(tok);
        r = rc_auth_verify(f->cfg[c->cfg], tok, len, NOW_MS, &id);
        if (r != c->want || id != NULL) {
            print_error("case \"%s\": got %s, want %s\n", c->name,
                        rc_auth_reason_str(r), rc_auth_reason_str(c->want));
            failures++;
        }
        if (r == RC_AUTH_OK)
            rc_identity_destroy(id);
        free(tok);
    }
    print_message("%zu refused tokens checked\n", RC_ARRAY_LEN(bad_cases));
    assert_int_equal(failures, 0);
}

/* Why the pinning exists: libjwt 1.10 on its own takes the alg from the
 * token. Informational (a later libjwt may refuse these itself); the
 * assertion is that rc_auth_verify() refuses them whatever libjwt does. */
static void test_libjwt_alone(void **state)
{
    const fixture_t *f = *state;
    char *confused = hs_token(EVP_sha256(), f->rsa_pub, strlen(f->rsa_pub),
                              HS_HDR, GOOD_PAYLOAD);
    char *none = hs_token(NULL, NULL, 0, "{\"alg\":\"none\"}", GOOD_PAYLOAD);
    jwt_t *j = NULL;
    int rc;

    rc = jwt_decode(&j, confused, (const unsigned char *)f->rsa_pub,
                    (int)strlen(f->rsa_pub));
    print_message("libjwt alone, HS256 keyed with the RSA public key: %s\n",
                  rc == 0 ? "ACCEPTED" : "refused");
    jwt_free(j);
    j = NULL;
    rc = jwt_decode(&j, none, NULL, 0);
    print_message("libjwt alone, alg none without a key: %s\n",
                  rc == 0 ? "ACCEPTED" : "refused");
    jwt_free(j);
    assert_int_equal(verify(f->cfg[C_RS256], confused, NOW_MS, NULL),
                     RC_AUTH_BAD_ALG);
    assert_int_equal(verify(f->cfg[C_HS256], none, NOW_MS, NULL),
                     RC_AUTH_BAD_ALG);
    free(confused);
    free(none);
}

static void test_null_and_missing(void **state)
{
    const fixture_t *f = *state;
    rc_identity_t *id = NULL;

    assert_int_equal(rc_auth_verify(f->cfg[C_HS256], NULL, 0, NOW_MS, &id),
                     RC_AUTH_MISSING);
    assert_int_equal(rc_auth_verify(f->cfg[C_HS256], "", 0, NOW_MS, &id),
                     RC_AUTH_MISSING);
    assert_int_equal(rc_auth_verify(NULL, "a.b.c", 5, NOW_MS, &id),
                     RC_AUTH_MISSING);
    assert_null(id);
    assert_int_equal(rc_auth_verify(f->cfg[C_HS256], "a.b.c", 5, NOW_MS, NULL),
                     RC_AUTH_MISSING);
    rc_auth_destroy(NULL);
    rc_identity_destroy(NULL);
}

/* ---- good tokens ------------------------------------------------------ */

static void check_good_identity(const rc_identity_t *id)
{
    assert_non_null(id);
    assert_string_equal(rc_identity_sub(id), "user-1");
    assert_int_equal(rc_identity_exp_ms(id), 1700003600000LL);
    assert_true(rc_identity_may_join(id, "chat:general"));
    assert_true(rc_identity_may_join(id, "lobby"));
    assert_false(rc_identity_may_join(id, "lobby2"));
    assert_false(rc_identity_may_join(id, "news"));
    assert_true(rc_identity_may_publish(id, "chat:news"));
    assert_false(rc_identity_may_publish(id, "chat:general"));
    assert_false(rc_identity_may_publish(id, "lobby"));
}

static void test_good_every_alg(void **state)
{
    const fixture_t *f = *state;
    const struct {
        const char *alg;
        jwt_alg_t jalg;
        const char *sign_key; /* secret or private PEM */
        const char *verify_key;
        int hs;
    } algs[] = {
        {"HS256", JWT_ALG_HS256, SECRET, SECRET, 1},
        {"HS384", JWT_ALG_HS384, SECRET SECRET, SECRET SECRET, 1},
        {"HS512", JWT_ALG_HS512, SECRET SECRET, SECRET SECRET, 1},
        {"RS256", JWT_ALG_RS256, f->rsa_priv, f->rsa_pub, 0},
        {"RS384", JWT_ALG_RS384, f->rsa_priv, f->rsa_pub, 0},
        {"RS512", JWT_ALG_RS512, f->rsa_priv, f->rsa_pub, 0},
        {"ES256", JWT_ALG_ES256, f->ec256_priv, f->ec256_pub, 0},
        {"ES384", JWT_ALG_ES384, f->ec384_priv, f->ec384_pub, 0},
    };

    for (size_t i = 0; i < RC_ARRAY_LEN(algs); i++) {
        rc_auth_t *a = make_auth(
            algs[i].alg, algs[i].hs ? algs[i].verify_key : NULL,
            algs[i].hs ? NULL : algs[i].verify_key, NULL, NULL, LEEWAY_MS);
        char *tok = jwt_token(algs[i].jalg, algs[i].sign_key,
                              strlen(algs[i].sign_key), GOOD_PAYLOAD);
        rc_identity_t *id = NULL;
        rc_auth_reason_t r = verify(a, tok, NOW_MS, &id);

        if (r != RC_AUTH_OK)
            print_error("%s: %s\n", algs[i].alg, rc_auth_reason_str(r));
        assert_int_equal(r, RC_AUTH_OK);
        check_good_identity(id);
        rc_identity_destroy(id);
        /* The same token is refused by every other configuration. */
        for (size_t j = 0; j < RC_ARRAY_LEN(algs); j++) {
            rc_auth_t *b;
            if (j == i)
                continue;
            b = make_auth(algs[j].alg, algs[j].hs ? algs[j].verify_key : NULL,
                          algs[j].hs ? NULL : algs[j].verify_key, NULL, NULL,
                          LEEWAY_MS);
            r = verify(b, tok, NOW_MS, NULL);
            /* RS256/384/512 share a key, ES384 is another curve: the header
             * alg differs from every other config, so always bad_alg. */
            assert_int_equal(r, RC_AUTH_BAD_ALG);
            rc_auth_destroy(b);
        }
        free(tok);
        rc_auth_destroy(a);
    }
}

/* ECDSA signatures are random: many of them exercise R or S with leading
 * zero bytes, which must survive the R || S to DER conversion. */
static void test_es_many(void **state)
{
    const fixture_t *f = *state;

    for (int i = 0; i < 128; i++) {
        char *tok = jwt_token(JWT_ALG_ES256, f->ec256_priv,
                              strlen(f->ec256_priv), GOOD_PAYLOAD);
        assert_int_equal(verify(f->cfg[C_ES256], tok, NOW_MS, NULL),
                         RC_AUTH_OK);
        free(tok);
    }
}

typedef struct good_case {
    const char *name;
    cfg_id_t cfg;
    const char *header; /* NULL: HS_HDR */
    const char *payload;
    const char *sub;
    int64_t exp_ms;
} good_case_t;

static const good_case_t good_cases[] = {
    {"minimal", C_HS256, NULL, "{\"sub\":\"u\",\"exp\":1700003600}", "u",
     1700003600000LL},
    {"typ in lower case", C_HS256, "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
     "{\"sub\":\"u\",\"exp\":1700003600}", "u", 1700003600000LL},
    {"no typ, a kid", C_HS256, "{\"kid\":\"k1\",\"alg\":\"HS256\"}",
     "{\"sub\":\"u\",\"exp\":1700003600}", "u", 1700003600000LL},
    {"fractional exp", C_HS256, NULL, "{\"sub\":\"u\",\"exp\":1700003600.5}",
     "u", 1700003600500LL},
    {"exp int64 max (clamped)", C_HS256, NULL,
     "{\"sub\":\"u\",\"exp\":9223372036854775807}", "u", 9000000000000000000LL},
    {"exp 1e300 (clamped)", C_HS256, NULL, "{\"sub\":\"u\",\"exp\":1e300}", "u",
     9000000000000000000LL},
    {"nbf and iat in the past", C_HS256, NULL,
     "{\"sub\":\"u\",\"nbf\":1699999000,\"iat\":1699999000,\"exp\":"
     "1700003600}",
     "u", 1700003600000LL},
    {"nbf within leeway", C_HS256, NULL,
     "{\"sub\":\"u\",\"nbf\":1700000030,\"exp\":1700003600}", "u",
     1700003600000LL},
    {"unknown claims ignored", C_HS256, NULL,
     "{\"sub\":\"u\",\"exp\":1700003600,\"jti\":\"x\",\"role\":[1,2],"
     "\"aud\":42}",
     "u", 1700003600000LL},
    {"empty rooms and pub", C_HS256, NULL,
     "{\"sub\":\"u\",\"rooms\":[],\"pub\":[],\"exp\":1700003600}", "u",
     1700003600000LL},
    {"sub of 256 bytes, pattern of 128", C_HS256, NULL,
     "{\"sub\":\"" A256 "\",\"rooms\":[\"" A128 "\"],\"exp\":1700003600}", A256,
     1700003600000LL},
    {"sub in UTF-8", C_HS256, NULL,
     "{\"sub\":\"J\\u00f6rg \\u2603\",\"exp\":1700003600}",
     "J\xc3\xb6rg \xe2\x98\x83", 1700003600000LL},
    {"iss and aud string", C_HS256_CLAIMS, NULL,
     "{\"sub\":\"u\"," CLAIMS_OK ",\"exp\":1700003600}", "u", 1700003600000LL},
    {"aud array", C_HS256_CLAIMS, NULL,
     "{\"sub\":\"u\",\"iss\":\"" ISSUER "\",\"aud\":[\"x\",\"" AUDIENCE
     "\"],\"exp\":1700003600}",
     "u", 1700003600000LL},
};

static void test_good_tokens(void **state)
{
    const fixture_t *f = *state;

    for (size_t i = 0; i < RC_ARRAY_LEN(good_cases); i++) {
        const good_case_t *c = &good_cases[i];
        char *tok = hs_token(EVP_sha256(), SECRET, strlen(SECRET),
                             c->header ? c->header : HS_HDR, c->payload);
        rc_identity_t *id = NULL;
        rc_auth_reason_t r = verify(f->cfg[c->cfg], tok, NOW_MS, &id);

        if (r != RC_AUTH_OK)
            print_error("case \"%s\": %s\n", c->name, rc_auth_reason_str(r));
        assert_int_equal(r, RC_AUTH_OK);
        assert_string_equal(rc_identity_sub(id), c->sub);
        assert_int_equal(rc_identity_exp_ms(id), c->exp_ms);
        rc_identity_destroy(id);
        free(tok);
    }
}

/* The token is read through len only: a heap buffer without a NUL (ASan
 * and valgrind catch an over-read), and a prefix of a longer buffer. */
static void test_length_bounded(void **state)
{
    const fixture_t *f = *state;
    char *tok =
        hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR, GOOD_PAYLOAD);
    size_t n = strlen(tok);
    char *exact = malloc(n), *longer = cat3(tok, "", ".junk");
    rc_identity_t *id = NULL;

    memcpy(exact, tok, n);
    assert_int_equal(rc_auth_verify(f->cfg[C_HS256], exact, n, NOW_MS, &id),
                     RC_AUTH_OK);
    check_good_identity(id);
    rc_identity_destroy(id);
    assert_int_equal(rc_auth_verify(f->cfg[C_HS256], longer, n, NOW_MS, &id),
                     RC_AUTH_OK);
    rc_identity_destroy(id);
    assert_int_equal(
        rc_auth_verify(f->cfg[C_HS256], longer, strlen(longer), NOW_MS, &id),
        RC_AUTH_MALFORMED);
    free(exact);
    free(longer);
    free(tok);
}

static void test_leeway_edges(void **state)
{
    const fixture_t *f = *state;
    rc_auth_t *strict = make_auth("HS256", SECRET, NULL, NULL, NULL, 0);
    const int64_t exp = 1700003600000LL, nbf = 1700001000000LL,
                  iat = 1700002000000LL;
    char *t_exp = hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR,
                           "{\"sub\":\"u\",\"exp\":1700003600}");
    char *t_nbf =
        hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR,
                 "{\"sub\":\"u\",\"nbf\":1700001000,\"exp\":1800000000}");
    char *t_iat =
        hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR,
                 "{\"sub\":\"u\",\"iat\":1700002000,\"exp\":1800000000}");
    const rc_auth_t *lw = f->cfg[C_HS256];

    /* exp: valid while exp + leeway > now. */
    assert_int_equal(verify(lw, t_exp, exp + LEEWAY_MS - 1, NULL), RC_AUTH_OK);
    assert_int_equal(verify(lw, t_exp, exp + LEEWAY_MS, NULL), RC_AUTH_EXPIRED);
    assert_int_equal(verify(strict, t_exp, exp - 1, NULL), RC_AUTH_OK);
    assert_int_equal(verify(strict, t_exp, exp, NULL), RC_AUTH_EXPIRED);
    /* nbf: valid once nbf - leeway <= now. */
    assert_int_equal(verify(lw, t_nbf, nbf - LEEWAY_MS, NULL), RC_AUTH_OK);
    assert_int_equal(verify(lw, t_nbf, nbf - LEEWAY_MS - 1, NULL),
                     RC_AUTH_NOT_YET_VALID);
    assert_int_equal(verify(strict, t_nbf, nbf, NULL), RC_AUTH_OK);
    assert_int_equal(verify(strict, t_nbf, nbf - 1, NULL),
                     RC_AUTH_NOT_YET_VALID);
    /* iat: the same rule as nbf. */
    assert_int_equal(verify(lw, t_iat, iat - LEEWAY_MS, NULL), RC_AUTH_OK);
    assert_int_equal(verify(lw, t_iat, iat - LEEWAY_MS - 1, NULL),
                     RC_AUTH_NOT_YET_VALID);
    assert_int_equal(verify(strict, t_iat, iat, NULL), RC_AUTH_OK);
    assert_int_equal(verify(strict, t_iat, iat - 1, NULL),
                     RC_AUTH_NOT_YET_VALID);
    free(t_exp);
    free(t_nbf);
    free(t_iat);
    rc_auth_destroy(strict);
}

/* ---- patterns and rights ---------------------------------------------- */

static void test_pattern_match(void **state)
{
    const struct {
        const char *pattern, *room;
        bool want;
    } cases[] = {
        {"lobby", "lobby", true},
        {"lobby", "lobby2", false},
        {"lobby", "lobb", false},
        {"lobby", "Lobby", false},
        {"chat:*", "chat:x", true},
        {"chat:*", "chat:general:thread-1", true},
        {"chat:*", "chat:", true},
        {"chat:*", "chat", false},
        {"chat:*", "chatx", false},
        {"chat:*", "news:chat:x", false},
        {"*", "anything", true},
        {"*", "a", true},
        {"", "lobby", false},
        {"", "", false},
        {"chat:general", "chat", false}, /* pattern longer than the room */
        {"chat:general:*", "chat:general", false},
        {"a*b", "a*b", true}, /* '*' is a wildcard only at the end */
        {"a*b", "axb", false},
        {"chat:**", "chat:*x", true},
        {"chat:**", "chat:x", false},
        {NULL, "lobby", false},
        {"lobby", NULL, false},
    };

    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        bool got = rc_auth_pattern_match(cases[i].pattern, cases[i].room);
        if (got != cases[i].want)
            print_error("pattern \"%s\" room \"%s\": got %d\n",
                        cases[i].pattern ? cases[i].pattern : "(null)",
                        cases[i].room ? cases[i].room : "(null)", got);
        assert_true(got == cases[i].want);
    }
}

static rc_identity_t *identity_of(const fixture_t *f, const char *payload)
{
    char *tok = hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR, payload);
    rc_identity_t *id = NULL;

    assert_int_equal(verify(f->cfg[C_HS256], tok, NOW_MS, &id), RC_AUTH_OK);
    free(tok);
    return id;
}

static void test_identity_rights(void **state)
{
    const fixture_t *f = *state;
    rc_identity_t *id =
        identity_of(f, "{\"sub\":\"u\",\"rooms\":[\"lobby\",\"chat:*\",\"a\"],"
                       "\"pub\":[\"chat:news\",\"*\"],\"exp\":1700003600}");
    rc_identity_t *none = identity_of(f, "{\"sub\":\"u\",\"exp\":1700003600}");
    rc_identity_t *all =
        identity_of(f, "{\"sub\":\"u\",\"rooms\":[\"*\"],\"exp\":1700003600}");

    assert_true(rc_identity_may_join(id, "lobby"));
    assert_true(rc_identity_may_join(id, "a"));
    assert_true(rc_identity_may_join(id, "chat:x"));
    assert_false(rc_identity_may_join(id, "ab"));
    assert_false(rc_identity_may_join(id, "news"));
    assert_false(rc_identity_may_join(id, ""));
    assert_false(rc_identity_may_join(id, NULL));
    assert_true(rc_identity_may_publish(id, "chat:news"));
    assert_true(rc_identity_may_publish(id, "anything")); /* "*" */

    assert_false(rc_identity_may_join(none, "lobby"));
    assert_false(rc_identity_may_publish(none, "lobby"));
    assert_true(rc_identity_may_join(all, "x"));
    assert_false(rc_identity_may_publish(all, "x"));

    rc_identity_destroy(id);
    rc_identity_destroy(none);
    rc_identity_destroy(all);
}

/* One identity is kept per connection: a typical one stays small. */
static void test_identity_compact(void **state)
{
    const fixture_t *f = *state;
    rc_identity_t *id = identity_of(
        f, "{\"sub\":\"user-42\",\"rooms\":[\"chat:*\",\"lobby\"],"
           "\"pub\":[\"chat:42\"],\"iat\":1699999990,\"exp\":1700003600,"
           "\"iss\":\"https://issuer.example\",\"jti\":\"0123456789\"}");

    print_message("typical identity: %zu bytes\n", rc_identity_size(id));
    assert_true(rc_identity_size(id) <= 100);
    /* header + "user-42\0" + [6]chat:* [5]lobby + [7]chat:42 */
    assert_int_equal(rc_identity_size(id) - 16, 8 + 7 + 6 + 8);
    rc_identity_destroy(id);
}

/* An allocation failure refuses the token (only it) and leaks nothing. */
static void test_identity_oom(void **state)
{
    const fixture_t *f = *state;
    char *tok =
        hs_token(EVP_sha256(), SECRET, strlen(SECRET), HS_HDR, GOOD_PAYLOAD);
    rc_identity_t *id = NULL;

    rc_mem_fail_after(1);
    assert_int_not_equal(verify(f->cfg[C_HS256], tok, NOW_MS, &id), RC_AUTH_OK);
    assert_null(id);
    rc_mem_fail_after(0);
    assert_int_equal(verify(f->cfg[C_HS256], tok, NOW_MS, &id), RC_AUTH_OK);
    rc_identity_destroy(id);
    free(tok);
}

/* ---- configuration ---------------------------------------------------- */

static void test_create_errors(void **state)
{
    const fixture_t *f = *state;
    const struct {
        const char *name;
        rc_auth_config_t cfg;
        const char *err_has;
    } cases[] = {
        {"no alg",
         {.secret = (const unsigned char *)SECRET, .secret_len = 32},
         "jwt_alg"},
        {"alg none",
         {.alg = "none",
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32},
         "not supported"},
        {"alg lower case",
         {.alg = "hs256",
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32},
         "not supported"},
        {"alg ES512",
         {.alg = "ES512", .public_key_pem = f->ec384_pub},
         "not supported"},
        {"HS256 without secret", {.alg = "HS256"}, "jwt_secret"},
        {"HS256 empty secret",
         {.alg = "HS256", .secret = (const unsigned char *)"", .secret_len = 0},
         "jwt_secret"},
        {"HS256 with a public key",
         {.alg = "HS256",
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32,
          .public_key_pem = f->rsa_pub},
         "jwt_public_key_file"},
        {"RS256 without key", {.alg = "RS256"}, "jwt_public_key_file"},
        {"RS256 with a secret too",
         {.alg = "RS256",
          .public_key_pem = f->rsa_pub,
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32},
         "jwt_secret"},
        {"RS256 garbage PEM",
         {.alg = "RS256", .public_key_pem = "hello"},
         "PEM public key"},
        {"RS256 private key PEM",
         {.alg = "RS256", .public_key_pem = f->rsa_priv},
         "PEM public key"},
        {"RS256 EC key",
         {.alg = "RS256", .public_key_pem = f->ec256_pub},
         "RSA"},
        {"RS256 1024-bit key",
         {.alg = "RS256", .public_key_pem = f->rsa1024_pub},
         "2048"},
        {"ES256 RSA key",
         {.alg = "ES256", .public_key_pem = f->rsa_pub},
         "P-256"},
        {"ES256 P-384 key",
         {.alg = "ES256", .public_key_pem = f->ec384_pub},
         "P-256"},
        {"ES384 P-256 key",
         {.alg = "ES384", .public_key_pem = f->ec256_pub},
         "P-384"},
        {"ES256 private key",
         {.alg = "ES256", .public_key_pem = f->ec256_priv},
         "PEM public key"},
        {"negative leeway",
         {.alg = "HS256",
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32,
          .leeway_ms = -1},
         "jwt_leeway_ms"},
        {"leeway over a day",
         {.alg = "HS256",
          .secret = (const unsigned char *)SECRET,
          .secret_len = 32,
          .leeway_ms = 86400001},
         "jwt_leeway_ms"},
    };
    char err[256];

    assert_null(rc_auth_create(NULL, err, sizeof err));
    assert_null(rc_auth_create(NULL, NULL, 0));
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        rc_auth_t *a;
        err[0] = '\0';
        a = rc_auth_create(&cases[i].cfg, err, sizeof err);
        if (a || !strstr(err, cases[i].err_has))
            print_error("case \"%s\": err \"%s\"\n", cases[i].name, err);
        assert_null(a);
        assert_non_null(strstr(err, cases[i].err_has));
    }
}

/* A secret shorter than the hash is accepted (with a logged warning). */
static void test_short_secret(void **state)
{
    rc_auth_t *a = make_auth("HS256", "short", NULL, NULL, NULL, 0);
    char *tok = hs_token(EVP_sha256(), "short", 5, HS_HDR,
                         "{\"sub\":\"u\",\"exp\":1700003600}");

    (void)state;
    assert_int_equal(verify(a, tok, NOW_MS, NULL), RC_AUTH_OK);
    free(tok);
    rc_auth_destroy(a);
}

static void test_reason_names(void **state)
{
    static const char *const want[RC_AUTH_REASON_COUNT] = {
        "ok",         "missing",      "too_long",
        "malformed",  "bad_alg",      "bad_signature",
        "expired",    "no_exp",       "not_yet_valid",
        "bad_issuer", "bad_audience", "bad_sub",
        "bad_claims",
    };

    for (int r = 0; r < RC_AUTH_REASON_COUNT; r++)
        assert_string_equal(rc_auth_reason_str((rc_auth_reason_t)r), want[r]);
    assert_string_equal(rc_auth_reason_str(RC_AUTH_REASON_COUNT), "unknown");
    assert_string_equal(rc_auth_reason_str((rc_auth_reason_t)-1), "unknown");
}

/* ---- minting ---------------------------------------------------------- */

static void test_mint_roundtrip(void **state)
{
    const char *algs[] = {"HS256", "HS384", "HS512"};
    const char *rooms[] = {"chat:*", "lobby"};
    const char *pub[] = {"chat:news"};
    char err[128];

    (void)state;
    for (size_t i = 0; i < RC_ARRAY_LEN(algs); i++) {
        rc_auth_t *a = make_auth(algs[i], SECRET SECRET, NULL, NULL, NULL, 0);
        rc_auth_t *hs256 =
            make_auth("HS256", SECRET SECRET, NULL, NULL, NULL, 0);
        char *tok = rc_auth_mint(algs[i], (const unsigned char *)SECRET SECRET,
                                 64, "user-1", rooms, 2, pub, 1, NOW_S - 10,
                                 3610, err, sizeof err);
        rc_identity_t *id = NULL;

        assert_non_null(tok);
        assert_int_equal(verify(a, tok, NOW_MS, &id), RC_AUTH_OK);
        check_good_identity(id);
        rc_identity_destroy(id);
        /* iat is checked too: minted 10 s in the future is refused. */
        assert_int_equal(verify(a, tok, NOW_MS - 10000 - 1, NULL),
                         RC_AUTH_NOT_YET_VALID);
        assert_int_equal(verify(a, tok, 1700003600000LL, NULL),
                         RC_AUTH_EXPIRED);
        if (i > 0)
            assert_int_equal(verify(hs256, tok, NOW_MS, NULL), RC_AUTH_BAD_ALG);
        free(tok);
        rc_auth_destroy(a);
        rc_auth_destroy(hs256);
    }
}

static void test_mint_no_rights(void **state)
{
    const fixture_t *f = *state;
    char err[128];
    char *tok = rc_auth_mint("HS256", (const unsigned char *)SECRET, 32, "u",
                             NULL, 0, NULL, 0, NOW_S, 60, err, sizeof err);
    rc_identity_t *id = NULL;

    assert_non_null(tok);
    assert_int_equal(verify(f->cfg[C_HS256], tok, NOW_MS, &id), RC_AUTH_OK);
    assert_string_equal(rc_identity_sub(id), "u");
    assert_int_equal(rc_identity_exp_ms(id), NOW_MS + 60000);
    assert_false(rc_identity_may_join(id, "lobby"));
    assert_false(rc_identity_may_publish(id, "lobby"));
    rc_identity_destroy(id);
    free(tok);
}

static void test_mint_errors(void **state)
{
    const unsigned char *k = (const unsigned char *)SECRET;
    const char *ok[] = {"lobby"};
    const char *empty[] = {""};
    const char *longp[] = {A128 "a"};
    const char *nullp[] = {NULL};
    const char *bad_utf8[] = {"caf\xe9"};
    char err[128];

    (void)state;
    assert_null(rc_auth_mint("RS256", k, 32, "u", ok, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_non_null(strstr(err, "HS256"));
    assert_null(rc_auth_mint(NULL, k, 32, "u", ok, 1, NULL, 0, NOW_S, 60, err,
                             sizeof err));
    assert_null(rc_auth_mint("HS256", k, 0, "u", ok, 1, NULL, 0, NOW_S, 60, err,
                             sizeof err));
    assert_null(rc_auth_mint("HS256", NULL, 32, "u", ok, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_null(rc_auth_mint("HS256", k, 32, "", ok, 1, NULL, 0, NOW_S, 60, err,
                             sizeof err));
    assert_non_null(strstr(err, "sub"));
    assert_null(rc_auth_mint("HS256", k, 32, NULL, ok, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_null(rc_auth_mint("HS256", k, 32, "caf\xe9", ok, 1, NULL, 0, NOW_S,
                             60, err, sizeof err));
    assert_non_null(strstr(err, "UTF-8"));
    assert_null(rc_auth_mint("HS256", k, 32, "a\nb", ok, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_null(rc_auth_mint("HS256", k, 32, "u", empty, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_non_null(strstr(err, "rooms"));
    assert_null(rc_auth_mint("HS256", k, 32, "u", ok, 1, longp, 1, NOW_S, 60,
                             err, sizeof err));
    assert_non_null(strstr(err, "pub"));
    assert_null(rc_auth_mint("HS256", k, 32, "u", nullp, 1, NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_null(rc_auth_mint("HS256", k, 32, "u", bad_utf8, 1, NULL, 0, NOW_S,
                             60, err, sizeof err));
    assert_non_null(strstr(err, "UTF-8"));
    assert_null(rc_auth_mint("HS256", k, 32, "u", ok, 1, NULL, 0, NOW_S, 0, err,
                             sizeof err));
    assert_non_null(strstr(err, "ttl"));
    assert_null(rc_auth_mint("HS256", k, 32, "u", ok, 1, NULL, 0, -1, 60, err,
                             sizeof err));
    assert_null(rc_auth_mint("HS256", k, 32, "u", ok, 1, NULL, 0, NOW_S,
                             INT64_MAX, err, sizeof err));
    /* err may be NULL */
    assert_null(
        rc_auth_mint("HS256", k, 32, "", ok, 1, NULL, 0, NOW_S, 60, NULL, 0));
}

/* Too many patterns for one token: refused by mint, not truncated. */
static void test_mint_too_long(void **state)
{
    const char *rooms[200];
    char err[128];

    (void)state;
    for (size_t i = 0; i < RC_ARRAY_LEN(rooms); i++)
        rooms[i] = "chat:some-rather-long-room-name:*";
    assert_null(rc_auth_mint("HS256", (const unsigned char *)SECRET, 32, "u",
                             rooms, RC_ARRAY_LEN(rooms), NULL, 0, NOW_S, 60,
                             err, sizeof err));
    assert_non_null(strstr(err, "limit"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_tokens),
        cmocka_unit_test(test_libjwt_alone),
        cmocka_unit_test(test_null_and_missing),
        cmocka_unit_test(test_good_every_alg),
        cmocka_unit_test(test_es_many),
        cmocka_unit_test(test_good_tokens),
        cmocka_unit_test(test_length_bounded),
        cmocka_unit_test(test_leeway_edges),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_identity_rights),
        cmocka_unit_test(test_identity_compact),
        cmocka_unit_test(test_identity_oom),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_short_secret),
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_mint_no_rights),
        cmocka_unit_test(test_mint_errors),
        cmocka_unit_test(test_mint_too_long),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

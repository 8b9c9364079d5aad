/* JWT verification with a pinned algorithm, claim checks, compact
 * identities, and HS* minting.
 *
 * libjwt 1.10 trusts the token's own header: without a key it accepts
 * alg=none, and given an RSA public key PEM it happily uses it as an HMAC
 * secret. So nothing is verified before this file has split the token
 * itself, decoded the header strictly and compared its alg with the
 * configured one.
 *
 * Signatures: HS* are checked twice, by our constant-time HMAC and then by
 * jwt_decode() (whose jwt_get_alg() must be the pinned alg). RS* and ES*
 * are checked with OpenSSL against the key parsed once in rc_auth_create():
 * libjwt 1.10 takes PEM bytes and parses them on every decode, which costs
 * about 250 us with OpenSSL 3 (five times the ES256 verification itself),
 * too much on the loop in a reconnect storm. See docs/AUTH.md.
 *
 * libjwt 1.10 checks no claims: exp, nbf, iat, iss, aud, sub, rooms and pub
 * are all checked here, from our own parse of the payload (the same bytes
 * the signature covers).
 * SPDX-License-Identifier: MIT */
#include "auth/auth.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/auth_internal.h"
#include "common/log.h"
#include "common/mem.h"

#define RC__AUTH_MAX_PATTERN 128 /* bytes, as a room name (PROTOCOL 2) */
/* Largest leeway a config may ask for: one day. It also keeps the time
 * arithmetic below far from int64 overflow. */
#define RC__AUTH_MAX_LEEWAY_MS (24LL * 3600 * 1000)
/* NumericDates are clamped to +-9e15 s (285 million years) so that
 * seconds * 1000 +- leeway never overflows int64. */
#define RC__AUTH_MAX_DATE_S 9000000000000000LL
/* Decoded header or payload: a segment of at most RC_AUTH_MAX_TOKEN chars. */
#define RC__AUTH_MAX_DECODED (RC_AUTH_MAX_TOKEN / 4 * 3)
/* RSA keys up to 8192 bits: signatures up to 1024 bytes. */
#define RC__AUTH_MAX_RSA_BITS 8192
#define RC__AUTH_MAX_SIG (RC__AUTH_MAX_RSA_BITS / 8)

typedef enum alg_kind { KIND_HS, KIND_RS, KIND_ES } alg_kind_t;

typedef struct alg_info {
    const char *name;  /* as in the JWS header, case-sensitive */
    jwt_alg_t jwt;     /* libjwt's id for it */
    alg_kind_t kind;   /* what the key is */
    const char *curve; /* ES*: OpenSSL group name of the key */
    size_t sig_len;    /* signature bytes; 0: from the key (RS*) */
    const char *md;    /* digest name for OpenSSL */
} alg_info_t;

static const alg_info_t alg_table[] = {
    {"HS256", JWT_ALG_HS256, KIND_HS, NULL, 32, "SHA256"},
    {"HS384", JWT_ALG_HS384, KIND_HS, NULL, 48, "SHA384"},
    {"HS512", JWT_ALG_HS512, KIND_HS, NULL, 64, "SHA512"},
    {"RS256", JWT_ALG_RS256, KIND_RS, NULL, 0, "SHA256"},
    {"RS384", JWT_ALG_RS384, KIND_RS, NULL, 0, "SHA384"},
    {"RS512", JWT_ALG_RS512, KIND_RS, NULL, 0, "SHA512"},
    {"ES256", JWT_ALG_ES256, KIND_ES, "prime256v1", 64, "SHA256"},
    {"ES384", JWT_ALG_ES384, KIND_ES, "secp384r1", 96, "SHA384"},
};

struct rc_auth {
    const alg_info_t *alg; /* static */
    EVP_MD *md;            /* fetched once: no lookup per verification */
    unsigned char *key;    /* HS*: the secret */
    size_t key_len;
    EVP_PKEY *pkey; /* RS*, ES*: the public key, parsed once */
    size_t sig_len; /* exact signature bytes the key produces */
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway_ms;
};

/* One block per connection: the header below, then data[]: sub and its NUL,
 * then the join patterns, then the publish patterns, each pattern one length
 * byte (1..128) and its bytes, unterminated. A typical identity (a short sub,
 * two patterns) is under 64 bytes. */
struct rc_identity {
    int64_t exp_ms;
    uint16_t nrooms;   /* join patterns */
    uint16_t npub;     /* publish patterns */
    uint16_t pub_off;  /* offset of the first publish pattern in data */
    uint16_t data_len; /* bytes of data */
    char data[];
};

static const char *const reason_names[RC_AUTH_REASON_COUNT] = {
    [RC_AUTH_OK] = "ok",
    [RC_AUTH_MISSING] = "missing",
    [RC_AUTH_TOO_LONG] = "too_long",
    [RC_AUTH_MALFORMED] = "malformed",
    [RC_AUTH_BAD_ALG] = "bad_alg",
    [RC_AUTH_BAD_SIGNATURE] = "bad_signature",
    [RC_AUTH_EXPIRED] = "expired",
    [RC_AUTH_NO_EXP] = "no_exp",
    [RC_AUTH_NOT_YET_VALID] = "not_yet_valid",
    [RC_AUTH_BAD_ISSUER] = "bad_issuer",
    [RC_AUTH_BAD_AUDIENCE] = "bad_audience",
    [RC_AUTH_BAD_SUB] = "bad_sub",
    [RC_AUTH_BAD_CLAIMS] = "bad_claims",
};

const char *rc_auth_reason_str(rc_auth_reason_t r)
{
    if ((unsigned)r >= RC_AUTH_REASON_COUNT)
        return "unknown";
    return reason_names[r];
}

__attribute__((format(printf, 3, 4))) static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const alg_info_t *find_alg(const char *name)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(alg_table); i++)
        if (strcmp(alg_table[i].name, name) == 0)
            return &alg_table[i];
    return NULL;
}

/* sub: 1..RC_AUTH_MAX_SUB bytes, no control characters, so that it can be
 * logged as one quoted value and never splits a log line. */
static bool sub_ok(const char *s, size_t len)
{
    if (len == 0 || len > RC_AUTH_MAX_SUB)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* ---- configuration ---------------------------------------------------- */

/* Parses the PEM once, at startup, and keeps the key. A wrong key type, a
 * wrong curve or a short RSA modulus is refused here with a clear message
 * instead of as a refusal of every token later. */
static bool load_public_key(rc_auth_t *a, const char *pem, char *err,
                            size_t errlen)
{
    size_t len = strlen(pem);
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    bool ok = false;

    if (len > INT_MAX) {
        set_err(err, errlen, "jwt_public_key is too large");
        goto fail;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        set_err(err, errlen, "jwt_public_key: out of memory");
        goto fail;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        set_err(err, errlen,
                "jwt_public_key is not a PEM public key (\"BEGIN PUBLIC "
                "KEY\"; a private key or a certificate will not do)");
        goto fail;
    }
    if (a->alg->kind == KIND_RS) {
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            set_err(err, errlen, "jwt_alg %s needs an RSA public key",
                    a->alg->name);
            goto fail;
        }
        if (EVP_PKEY_get_bits(pkey) < 2048 ||
            EVP_PKEY_get_bits(pkey) > RC__AUTH_MAX_RSA_BITS) {
            set_err(err, errlen,
                    "jwt_public_key: RSA key of %d bits; 2048 (RFC 7518 "
                    "3.3) to %d are supported",
                    EVP_PKEY_get_bits(pkey), RC__AUTH_MAX_RSA_BITS);
            goto fail;
        }
        a->sig_len = (size_t)EVP_PKEY_get_size(pkey);
    } else {
        char group[64];
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            !EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) ||
            strcmp(group, a->alg->curve) != 0) {
            set_err(err, errlen, "jwt_alg %s needs an EC public key on %s",
                    a->alg->name,
                    a->alg->jwt == JWT_ALG_ES256 ? "P-256" : "P-384");
            goto fail;
        }
        a->sig_len = a->alg->sig_len;
    }
    a->pkey = pkey;
    pkey = NULL;
    ok = true;
fail:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return ok;
}

rc_auth_t *rc_auth_create(const rc_auth_config_t *cfg, char *err, size_t errlen)
{
    rc_auth_t *a = NULL;
    const alg_info_t *alg;

    set_err(err, errlen, "ok");
    if (!cfg || !cfg->alg) {
        set_err(err, errlen, "jwt_alg is not set");
        goto fail;
    }
    alg = find_alg(cfg->alg);
    if (!alg) {
        set_err(err, errlen,
                "jwt_alg \"%.32s\" is not supported (HS256, HS384, HS512, "
                "RS256, RS384, RS512, ES256, ES384)",
                cfg->alg);
        goto fail;
    }
    if (cfg->leeway_ms < 0 || cfg->leeway_ms > RC__AUTH_MAX_LEEWAY_MS) {
        set_err(err, errlen, "jwt_leeway_ms must be 0..%lld",
                (long long)RC__AUTH_MAX_LEEWAY_MS);
        goto fail;
    }

    a = rc_xcalloc(1, sizeof *a);
    a->alg = alg;
    a->leeway_ms = cfg->leeway_ms;
    a->md = EVP_MD_fetch(NULL, alg->md, NULL);
    if (!a->md) {
        set_err(err, errlen, "OpenSSL has no %s", alg->md);
        goto fail;
    }

    if (alg->kind == KIND_HS) {
        if (!cfg->secret || cfg->secret_len == 0) {
            set_err(err, errlen,
                    "jwt_alg %s needs jwt_secret or jwt_secret_file",
                    alg->name);
            goto fail;
        }
        if (cfg->public_key_pem) {
            set_err(err, errlen,
                    "jwt_public_key_file is set but jwt_alg is %s (an HMAC "
                    "algorithm); set jwt_alg to RS* or ES*, or drop the key",
                    alg->name);
            goto fail;
        }
        if (cfg->secret_len > INT_MAX) {
            set_err(err, errlen, "jwt_secret is too large");
            goto fail;
        }
        a->key = rc_xmalloc(cfg->secret_len);
        memcpy(a->key, cfg->secret, cfg->secret_len);
        a->key_len = cfg->secret_len;
        a->sig_len = alg->sig_len;
        /* RFC 7518 3.2: the key must be at least as long as the hash. A
         * warning, not a refusal, so that a demo secret still works. */
        if (cfg->secret_len < alg->sig_len)
            rc_log(RC_LOG_WARN, "auth_weak_secret",
                   "alg=%s secret_bytes=%zu wanted_bytes=%zu", alg->name,
                   cfg->secret_len, alg->sig_len);
    } else {
        if (!cfg->public_key_pem || !cfg->public_key_pem[0]) {
            set_err(err, errlen, "jwt_alg %s needs jwt_public_key_file",
                    alg->name);
            goto fail;
        }
        if (cfg->secret) {
            set_err(err, errlen,
                    "jwt_secret is set but jwt_alg is %s (a public key "
                    "algorithm); drop the secret or pin an HS* algorithm",
                    alg->name);
            goto fail;
        }
        if (!load_public_key(a, cfg->public_key_pem, err, errlen))
            goto fail;
    }
    /* An empty string is "not configured", as an unset variable would be. */
    if (cfg->issuer && cfg->issuer[0])
        a->issuer = rc_xstrdup(cfg->issuer);
    if (cfg->audience && cfg->audience[0])
        a->audience = rc_xstrdup(cfg->audience);
    return a;

fail:
    rc_auth_destroy(a);
    return NULL;
}

void rc_auth_destroy(rc_auth_t *a)
{
    if (!a)
        return;
    if (a->key) {
        OPENSSL_cleanse(a->key, a->key_len);
        free(a->key);
    }
    EVP_PKEY_free(a->pkey);
    EVP_MD_free(a->md);
    free(a->issuer);
    free(a->audience);
    free(a);
}

/* ---- verification ----------------------------------------------------- */

/* Decodes one base64url segment and parses it as a JSON object. NULL when it
 * is not one (bad JSON, another type, a duplicate key, out of memory).
 * Duplicate keys are refused so that no other JSON parser (libjwt's, a
 * proxy's) can read a different alg or sub out of the same bytes. */
static json_t *segment_object(const char *s, size_t n, unsigned char *buf,
                              size_t buflen)
{
    size_t len;
    json_t *j;

    if (rc__auth_b64url_decode(s, n, buf, buflen, &len) != RC_OK)
        return NULL;
    j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static rc_auth_reason_t check_header(const rc_auth_t *a, const json_t *hdr)
{
    const json_t *alg = json_object_get(hdr, "alg");
    const json_t *typ = json_object_get(hdr, "typ");

    if (!json_is_string(alg) || strcmp(json_string_value(alg), a->alg->name))
        return RC_AUTH_BAD_ALG;
    /* libjwt 1.10 refuses a typ other than "JWT" (any case); say so here
     * rather than as a bad signature. */
    if (typ &&
        (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT")))
        return RC_AUTH_MALFORMED;
    /* RFC 7515 4.1.11: extensions the recipient does not understand must be
     * refused, and we understand none. */
    if (json_object_get(hdr, "crit"))
        return RC_AUTH_MALFORMED;
    return RC_AUTH_OK;
}

/* NumericDate (RFC 7519 2: integer or not) to Unix ms, clamped. False when
 * v is not a number. */
static bool date_ms(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s > RC__AUTH_MAX_DATE_S)
            s = RC__AUTH_MAX_DATE_S;
        if (s < -RC__AUTH_MAX_DATE_S)
            s = -RC__AUTH_MAX_DATE_S;
        *ms = (int64_t)s * 1000;
        return true;
    }
    if (json_is_real(v)) {
        /* jansson never yields NaN or infinities. */
        double s = json_real_value(v);
        if (s > (double)RC__AUTH_MAX_DATE_S)
            s = (double)RC__AUTH_MAX_DATE_S;
        if (s < -(double)RC__AUTH_MAX_DATE_S)
            s = -(double)RC__AUTH_MAX_DATE_S;
        *ms = (int64_t)(s * 1000.0);
        return true;
    }
    return false;
}

static bool audience_ok(const json_t *aud, const char *want)
{
    size_t i;
    const json_t *v;
    bool found = false;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (!json_is_array(aud))
        return false;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return false; /* a malformed aud is refused, not skipped */
        if (strcmp(json_string_value(v), want) == 0)
            found = true;
    }
    return found;
}

/* rooms or pub: absent, or an array of 1..128-byte strings. Adds the count
 * and packed bytes to *n and *bytes. */
static bool patterns_ok(const json_t *arr, size_t *n, size_t *bytes)
{
    size_t i;
    const json_t *v;

    if (!arr)
        return true;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, v)
    {
        size_t len;
        if (!json_is_string(v))
            return false;
        len = json_string_length(v);
        /* jansson refuses \u0000 unless asked, so len == strlen here. */
        if (len == 0 || len > RC__AUTH_MAX_PATTERN)
            return false;
        *bytes += 1 + len;
    }
    *n += json_array_size(arr);
    return true;
}

static char *pack_patterns(char *p, const json_t *arr)
{
    size_t i;
    const json_t *v;

    json_array_foreach(arr, i, v)
    {
        size_t len = json_string_length(v);
        *p++ = (char)(unsigned char)len;
        memcpy(p, json_string_value(v), len);
        p += len;
    }
    return p;
}

static rc_auth_reason_t check_claims(const rc_auth_t *a, const json_t *c,
                                     int64_t now_ms, rc_identity_t **out)
{
    const json_t *v, *sub, *rooms, *pub;
    int64_t exp_ms, t_ms;
    size_t sub_len, bytes = 0, nrooms = 0, npub = 0, total;
    rc_identity_t *id;
    char *p;

    v = json_object_get(c, "exp");
    if (!v || !date_ms(v, &exp_ms))
        return RC_AUTH_NO_EXP;
    if (exp_ms + a->leeway_ms <= now_ms)
        return RC_AUTH_EXPIRED;
    v = json_object_get(c, "nbf");
    if (v) {
        if (!date_ms(v, &t_ms))
            return RC_AUTH_BAD_CLAIMS;
        if (t_ms - a->leeway_ms > now_ms)
            return RC_AUTH_NOT_YET_VALID;
    }
    v = json_object_get(c, "iat");
    if (v) {
        if (!date_ms(v, &t_ms))
            return RC_AUTH_BAD_CLAIMS;
        if (t_ms - a->leeway_ms > now_ms)
            return RC_AUTH_NOT_YET_VALID;
    }
    if (a->issuer) {
        v = json_object_get(c, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), a->issuer))
            return RC_AUTH_BAD_ISSUER;
    }
    if (a->audience && !audience_ok(json_object_get(c, "aud"), a->audience))
        return RC_AUTH_BAD_AUDIENCE;

    sub = json_object_get(c, "sub");
    if (!json_is_string(sub))
        return RC_AUTH_BAD_SUB;
    sub_len = json_string_length(sub);
    if (!sub_ok(json_string_value(sub), sub_len))
        return RC_AUTH_BAD_SUB;

    rooms = json_object_get(c, "rooms");
    pub = json_object_get(c, "pub");
    if (!patterns_ok(rooms, &nrooms, &bytes) ||
        !patterns_ok(pub, &npub, &bytes))
        return RC_AUTH_BAD_CLAIMS;
    /* The token is at most 8 KiB, so these always fit; checked anyway. */
    total = sub_len + 1 + bytes;
    if (nrooms > UINT16_MAX || npub > UINT16_MAX || total > UINT16_MAX)
        return RC_AUTH_BAD_CLAIMS;

    /* Client-sized (bounded above): rc_trymalloc, and failure refuses only
     * this token (STYLE rule 12). */
    id = rc_trymalloc(sizeof *id + total);
    if (!id)
        return RC_AUTH_MALFORMED;
    id->exp_ms = exp_ms;
    id->nrooms = (uint16_t)nrooms;
    id->npub = (uint16_t)npub;
    id->data_len = (uint16_t)total;
    memcpy(id->data, json_string_value(sub), sub_len + 1);
    p = id->data + sub_len + 1;
    if (rooms)
        p = pack_patterns(p, rooms);
    id->pub_off = (uint16_t)(p - id->data);
    if (pub)
        pack_patterns(p, pub);
    *out = id;
    return RC_AUTH_OK;
}

/* Our own constant-time HMAC check runs before libjwt's: a forged HS token
 * is refused without libjwt's allocations, and an older libjwt whose compare
 * is strcmp() (CVE-2024-25189) only ever compares genuine signatures. */
static bool hmac_ok(const rc_auth_t *a, const char *signed_part, size_t n,
                    const char *sig_b64, size_t sig_b64_len)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    unsigned int want_len = 0;
    size_t got_len;

    if (rc__auth_b64url_decode(sig_b64, sig_b64_len, got, sizeof got,
                               &got_len) != RC_OK)
        return false;
    if (!HMAC(a->md, a->key, (int)a->key_len,
              (const unsigned char *)signed_part, n, want, &want_len))
        return false;
    return got_len == want_len && CRYPTO_memcmp(want, got, want_len) == 0;
}

/* RS*: RSASSA-PKCS1-v1_5. ES*: the JWS signature is R || S, each half the
 * curve size (RFC 7518 3.4); OpenSSL wants DER. */
static bool pk_ok(const rc_auth_t *a, const char *signed_part, size_t n,
                  const char *sig_b64, size_t sig_b64_len)
{
    unsigned char raw[RC__AUTH_MAX_SIG], der[RC__AUTH_MAX_SIG];
    const unsigned char *sig = raw;
    size_t sig_len, half;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    EVP_MD_CTX *ctx = NULL;
    bool ok = false;

    if (rc__auth_b64url_decode(sig_b64, sig_b64_len, raw, sizeof raw,
                               &sig_len) != RC_OK ||
        sig_len != a->sig_len)
        goto fail;
    if (a->alg->kind == KIND_ES) {
        unsigned char *p = der;
        int der_len;
        half = sig_len / 2;
        es = ECDSA_SIG_new();
        r = BN_bin2bn(raw, (int)half, NULL);
        s = BN_bin2bn(raw + half, (int)half, NULL);
        if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
            goto fail;
        r = s = NULL; /* owned by es now */
        /* At most 2 * (1 + 2 + 49) + 3 bytes for P-384: fits der. */
        der_len = i2d_ECDSA_SIG(es, &p);
        if (der_len <= 0)
            goto fail;
        sig = der;
        sig_len = (size_t)der_len;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, a->md, NULL, a->pkey) != 1)
        goto fail;
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)signed_part,
                          n) == 1;
fail:
    EVP_MD_CTX_free(ctx);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    if (!ok)
        ERR_clear_error(); /* leave OpenSSL's queue empty for the loop */
    return ok;
}

rc_auth_reason_t rc_auth_verify(const rc_auth_t *a, const char *token,
                                size_t len, int64_t now_ms, rc_identity_t **out)
{
    /* Both buffers live on the loop's stack (14 KiB): no allocation for a
     * token that is refused before the JSON parse. */
    char tok[RC_AUTH_MAX_TOKEN + 1];
    unsigned char buf[RC__AUTH_MAX_DECODED];
    size_t dot1 = 0, dot2 = 0, ndots = 0, sig_len;
    const char *sig;
    json_t *hdr = NULL, *claims = NULL;
    jwt_t *jwt = NULL;
    rc_auth_reason_t r;

    if (out)
        *out = NULL;
    if (!a || !out)
        return RC_AUTH_MISSING; /* a caller bug; fail closed */
    if (!token || len == 0)
        return RC_AUTH_MISSING;
    if (len > RC_AUTH_MAX_TOKEN)
        return RC_AUTH_TOO_LONG;

    /* Exactly three segments; header and payload not empty. */
    for (size_t i = 0; i < len; i++) {
        if (token[i] != '.')
            continue;
        if (++ndots == 1)
            dot1 = i;
        else if (ndots == 2)
            dot2 = i;
        else
            return RC_AUTH_MALFORMED;
    }
    if (ndots != 2 || dot1 == 0 || dot2 == dot1 + 1)
        return RC_AUTH_MALFORMED;
    sig = token + dot2 + 1;
    sig_len = len - dot2 - 1;
    /* Every byte is now checked to be base64url or one of the two dots,
     * so the NUL-terminated copy for libjwt below means the same token. */
    if (!rc__auth_b64url_valid(token, dot1) ||
        !rc__auth_b64url_valid(token + dot1 + 1, dot2 - dot1 - 1) ||
        !rc__auth_b64url_valid(sig, sig_len))
        return RC_AUTH_MALFORMED;

    hdr = segment_object(token, dot1, buf, sizeof buf);
    if (!hdr) {
        r = RC_AUTH_MALFORMED;
        goto fail;
    }
    r = check_header(a, hdr);
    if (r != RC_AUTH_OK)
        goto fail;
    claims = segment_object(token + dot1 + 1, dot2 - dot1 - 1, buf, sizeof buf);
    if (!claims) {
        r = RC_AUTH_MALFORMED;
        goto fail;
    }

    r = RC_AUTH_BAD_SIGNATURE;
    if (rc__auth_b64url_decoded_len(sig_len) != a->sig_len)
        goto fail;
    if (a->alg->kind != KIND_HS) {
        if (!pk_ok(a, token, dot2, sig, sig_len))
            goto fail;
    } else {
        if (!hmac_ok(a, token, dot2, sig, sig_len))
            goto fail;
        /* Second opinion from libjwt, which wants a C string. */
        memcpy(tok, token, len);
        tok[len] = '\0';
        if (jwt_decode(&jwt, tok, a->key, (int)a->key_len) != 0 || !jwt) {
            ERR_clear_error(); /* libjwt leaves OpenSSL's queue to us */
            goto fail;
        }
        if (jwt_get_alg(jwt) != a->alg->jwt) {
            r = RC_AUTH_BAD_ALG; /* cannot happen after check_header */
            goto fail;
        }
    }

    r = check_claims(a, claims, now_ms, out);

fail:
    jwt_free(jwt);
    json_decref(claims);
    json_decref(hdr);
    return r;
}

/* ---- identities ------------------------------------------------------- */

void rc_identity_destroy(rc_identity_t *id)
{
    free(id);
}

const char *rc_identity_sub(const rc_identity_t *id)
{
    return id->data;
}

int64_t rc_identity_exp_ms(const rc_identity_t *id)
{
    return id->exp_ms;
}

size_t rc_identity_size(const rc_identity_t *id)
{
    return sizeof *id + id->data_len;
}

static bool match_one(const char *pat, size_t plen, const char *room,
                      size_t rlen)
{
    if (plen == 0)
        return false;
    if (pat[plen - 1] == '*')
        return rlen >= plen - 1 && memcmp(pat, room, plen - 1) == 0;
    return rlen == plen && memcmp(pat, room, plen) == 0;
}

static bool match_packed(const char *p, unsigned n, const char *room)
{
    size_t rlen;

    if (!room)
        return false;
    rlen = strlen(room);
    for (unsigned i = 0; i < n; i++) {
        size_t plen = (unsigned char)*p++;
        if (match_one(p, plen, room, rlen))
            return true;
        p += plen;
    }
    return false;
}

bool rc_identity_may_join(const rc_identity_t *id, const char *room)
{
    const char *sub_end = id->data + strlen(id->data) + 1;
    return match_packed(sub_end, id->nrooms, room);
}

bool rc_identity_may_publish(const rc_identity_t *id, const char *room)
{
    return match_packed(id->data + id->pub_off, id->npub, room);
}

bool rc_auth_pattern_match(const char *pattern, const char *room)
{
    if (!pattern || !room)
        return false;
    return match_one(pattern, strlen(pattern), room, strlen(room));
}

/* ---- minting ---------------------------------------------------------- */

static json_t *pattern_array(const char *what, const char *const *v, size_t n,
                             char *err, size_t errlen)
{
    json_t *arr = json_array();

    set_err(err, errlen, "out of memory");
    for (size_t i = 0; arr && i < n; i++) {
        size_t len = v[i] ? strlen(v[i]) : 0;
        json_t *s;
        if (len == 0 || len > RC__AUTH_MAX_PATTERN) {
            set_err(err, errlen, "%s pattern %zu must be 1..%d bytes", what,
                    i + 1, RC__AUTH_MAX_PATTERN);
            goto fail;
        }
        s = json_string(v[i]);
        if (!s) {
            set_err(err, errlen, "%s pattern %zu is not valid UTF-8", what,
                    i + 1);
            goto fail;
        }
        if (json_array_append_new(arr, s) != 0)
            goto fail;
    }
    return arr;
fail:
    json_decref(arr);
    return NULL;
}

char *rc_auth_mint(const char *alg, const unsigned char *secret,
                   size_t secret_len, const char *sub, const char *const *rooms,
                   size_t nrooms, const char *const *pub, size_t npub,
                   int64_t iat_s, int64_t ttl_s, char *err, size_t errlen)
{
    char header[64];
    const alg_info_t *ai = alg ? find_alg(alg) : NULL;
    json_t *claims = NULL, *arr;
    char *payload = NULL, *tok = NULL, *p;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    EVP_MD *md = NULL;
    size_t hlen, plen, total;

    set_err(err, errlen, "ok");
    if (!ai || ai->kind != KIND_HS) {
        set_err(err, errlen, "alg must be HS256, HS384 or HS512");
        goto fail;
    }
    if (!secret || secret_len == 0 || secret_len > INT_MAX) {
        set_err(err, errlen, "a non-empty secret is needed");
        goto fail;
    }
    if (!sub || !sub_ok(sub, strlen(sub))) {
        set_err(err, errlen,
                "sub must be 1..%d bytes without control characters",
                RC_AUTH_MAX_SUB);
        goto fail;
    }
    if (iat_s < 0 || iat_s > RC__AUTH_MAX_DATE_S || ttl_s <= 0 ||
        ttl_s > RC__AUTH_MAX_DATE_S - iat_s) {
        set_err(err, errlen, "iat must be >= 0 and ttl > 0");
        goto fail;
    }

    claims = json_object();
    if (!claims || json_object_set_new(claims, "sub", json_string(sub)) != 0) {
        set_err(err, errlen, "sub is not valid UTF-8");
        goto fail;
    }
    if (nrooms) {
        arr = pattern_array("rooms", rooms, nrooms, err, errlen);
        if (!arr || json_object_set_new(claims, "rooms", arr) != 0)
            goto fail;
    }
    if (npub) {
        arr = pattern_array("pub", pub, npub, err, errlen);
        if (!arr || json_object_set_new(claims, "pub", arr) != 0)
            goto fail;
    }
    if (json_object_set_new(claims, "iat", json_integer(iat_s)) != 0 ||
        json_object_set_new(claims, "exp", json_integer(iat_s + ttl_s)) != 0) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    payload = json_dumps(claims, JSON_COMPACT);
    if (!payload) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }

    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}",
             ai->name);
    hlen = rc__auth_b64url_len(strlen(header));
    plen = rc__auth_b64url_len(strlen(payload));
    total = hlen + 1 + plen + 1 + rc__auth_b64url_len(ai->sig_len);
    if (total > RC_AUTH_MAX_TOKEN) {
        set_err(err, errlen,
                "the token would be %zu bytes, over the %d-byte limit", total,
                RC_AUTH_MAX_TOKEN);
        goto fail;
    }
    tok = rc_xmalloc(total + 1);
    p = tok + rc__auth_b64url_encode(header, strlen(header), tok);
    *p++ = '.';
    p += rc__auth_b64url_encode(payload, strlen(payload), p);
    md = EVP_MD_fetch(NULL, ai->md, NULL);
    if (!md || !HMAC(md, secret, (int)secret_len, (unsigned char *)tok,
                     (size_t)(p - tok), mac, &mac_len)) {
        set_err(err, errlen, "HMAC-%s failed", ai->md);
        goto fail;
    }
    *p++ = '.';
    rc__auth_b64url_encode(mac, mac_len, p);
    OPENSSL_cleanse(mac, sizeof mac);
    EVP_MD_free(md);
    free(payload);
    json_decref(claims);
    set_err(err, errlen, "ok");
    return tok;

fail:
    EVP_MD_free(md);
    free(tok);
    free(payload);
    json_decref(claims);
    return NULL;
}

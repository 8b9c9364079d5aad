/* libFuzzer target: untrusted bytes into rc_auth_verify() under an HS256
 * and an ES256 configuration, into rc_sealed_open(), and into
 * rc_auth_pattern_match(). A signature stops almost every mutated token, so
 * the input is also used as the JSON payload, then as the JSON header, of a
 * token this harness signs itself: that fuzzes the header and claim checks
 * behind the signature. Checks invariants beyond "no crash": a refusal
 * yields no identity, an accepted identity holds a valid sub and a live exp,
 * and a sealed token that opens re-seals to the same bytes (one spelling
 * per token). Seed corpus: tests/fuzz/corpus/token/ (made for NOW_MS below,
 * with SECRET and the private half of ES_PUBLIC_KEY, which is not kept).
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"
#include "auth/sealed.h"

#define NOW_MS 1700000000000LL
#define LEEWAY_MS 30000
#define SECRET "roomcast fuzz secret, 32 bytes!!"
#define SEAL_KEY "roomcast fuzz sealing key, 32 b."
#define SEAL_OLD "roomcast fuzz old sealing key..."
#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD_CLAIMS "{\"sub\":\"u\",\"rooms\":[\"*\"],\"exp\":1700003600}"

static const char ES_PUBLIC_KEY[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEtcEduNrcdMYGuJMMc6neaBpkEUXC\n"
    "6lRzjO+8RYicOzmyPhxsJKG9E0i8mWenTo6BDpcVaEuydsVDFujz4O02Hg==\n"
    "-----END PUBLIC KEY-----\n";

/* libFuzzer's entry points take no context, so the verifiers live here,
 * made once in LLVMFuzzerInitialize() (a harness, not gateway code: STYLE
 * rule 8 is about the daemon). */
static rc_auth_t *hs_auth, *es_auth;
static const rc_sealed_keys_t seal_keys = {
    (const unsigned char *)SEAL_KEY, sizeof SEAL_KEY - 1,
    (const unsigned char *)SEAL_OLD, sizeof SEAL_OLD - 1};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rc_auth_t *make(const rc_auth_config_t *cfg)
{
    char err[256];
    rc_auth_t *a = rc_auth_create(cfg, err, sizeof err);

    if (!a) {
        fprintf(stderr, "fuzz_token: rc_auth_create: %s\n", err);
        abort();
    }
    return a;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rc_auth_config_t hs = {.alg = "HS256",
                           .secret = (const unsigned char *)SECRET,
                           .secret_len = sizeof SECRET - 1,
                           .leeway_ms = LEEWAY_MS};
    rc_auth_config_t es = {.alg = "ES256",
                           .public_key_pem = ES_PUBLIC_KEY,
                           .audience = "roomcast",
                           .leeway_ms = LEEWAY_MS};

    (void)argc;
    (void)argv;
    hs_auth = make(&hs);
    es_auth = make(&es);
    return 0;
}

static void check_verify(const rc_auth_t *a, const uint8_t *data, size_t size)
{
    rc_identity_t *id = (rc_identity_t *)&id; /* must be reset */
    rc_auth_reason_t r =
        rc_auth_verify(a, (const char *)data, size, NOW_MS, &id);
    size_t sub_len;

    if ((unsigned)r >= RC_AUTH_REASON_COUNT)
        abort();
    if (r != RC_AUTH_OK) {
        if (id != NULL)
            abort();
        return;
    }
    if (!id)
        abort();
    sub_len = strlen(rc_identity_sub(id));
    if (sub_len == 0 || sub_len > RC_AUTH_MAX_SUB)
        abort();
    if (rc_identity_exp_ms(id) + LEEWAY_MS <= NOW_MS)
        abort();
    if (rc_identity_size(id) > size + 64)
        abort(); /* an identity is never bigger than its token */
    (void)rc_identity_may_join(id, "chat:x");
    (void)rc_identity_may_publish(id, "chat:x");
    rc_identity_destroy(id);
}

static void check_sealed(const uint8_t *data, size_t size)
{
    unsigned char out[RC_AUTH_MAX_TOKEN];
    char again[RC_AUTH_MAX_TOKEN * 2];
    size_t n = 0;
    rc_err_t rc;

    rc = rc_sealed_open(&seal_keys, (const char *)data, size, out, sizeof out,
                        &n);
    if (rc != RC_OK) {
        if (rc != RC_EAUTH && rc != RC_ELIMIT)
            abort();
        return;
    }
    /* Tokens sealed with the previous key open too but re-seal differently;
     * only compare when the current key opens it. */
    {
        const rc_sealed_keys_t cur = {seal_keys.current, seal_keys.current_len,
                                      NULL, 0};
        size_t m;
        if (rc_sealed_open(&cur, (const char *)data, size, out, sizeof out,
                           &m) != RC_OK)
            return;
        if (rc_sealed_seal(&cur, out, m, again, sizeof again) != RC_OK ||
            strlen(again) != size || memcmp(again, data, size) != 0)
            abort();
    }
}

/* pattern NUL room: both as C strings. */
static void check_pattern(const uint8_t *data, size_t size)
{
    char buf[512];
    const char *room;
    size_t plen;

    if (size >= sizeof buf)
        return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    plen = strlen(buf);
    room = plen < size ? buf + plen + 1 : "";
    if (rc_auth_pattern_match(buf, room) && plen == 0)
        abort(); /* the empty pattern matches nothing */
    if (plen && buf[plen - 1] != '*' &&
        rc_auth_pattern_match(buf, room) != (strcmp(buf, room) == 0))
        abort();
}

/* b64url(header).b64url(payload).HMAC-SHA256 with SECRET, then verified. */
static void check_signed(const void *header, size_t hlen, const void *payload,
                         size_t plen)
{
    static char tok[RC_AUTH_MAX_TOKEN * 2];
    unsigned char mac[32];
    unsigned int maclen = 0;
    size_t n;

    if (rc__auth_b64url_len(hlen) + rc__auth_b64url_len(plen) + 46 > sizeof tok)
        return;
    n = rc__auth_b64url_encode(header, hlen, tok);
    tok[n++] = '.';
    n += rc__auth_b64url_encode(payload, plen, tok + n);
    if (!HMAC(EVP_sha256(), SECRET, sizeof SECRET - 1,
              (const unsigned char *)tok, n, mac, &maclen))
        abort();
    tok[n++] = '.';
    n += rc__auth_b64url_encode(mac, maclen, tok + n);
    check_verify(hs_auth, (const uint8_t *)tok, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_verify(hs_auth, data, size);
    check_verify(es_auth, data, size);
    check_signed(HS_HEADER, sizeof HS_HEADER - 1, data, size);
    check_signed(data, size, GOOD_CLAIMS, sizeof GOOD_CLAIMS - 1);
    check_sealed(data, size);
    check_pattern(data, size);
    return 0;
}

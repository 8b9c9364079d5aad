/* Unit tests of auth/sealed.c: round trips, the exact format, tampering,
 * wrong and rotated keys, truncation, malformed tokens, buffer limits.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h> /* 1.1.5 needs the four above first */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/sealed.h"

#define K1 "key one: 32 bytes of secret data"
#define K2 "key two: 32 bytes of secret data"
#define K3 "key three, never used to seal..."

static const rc_sealed_keys_t keys1 = {(const unsigned char *)K1, 32, NULL, 0};
static const rc_sealed_keys_t keys2 = {(const unsigned char *)K2, 32, NULL, 0};
static const rc_sealed_keys_t keys21 = {(const unsigned char *)K2, 32,
                                        (const unsigned char *)K1, 32};
static const rc_sealed_keys_t keys3 = {(const unsigned char *)K3, 32, NULL, 0};

/* Seals payload with k into a fresh buffer of exactly rc_sealed_len(). */
static char *seal(const rc_sealed_keys_t *k, const void *payload, size_t n)
{
    size_t cap = rc_sealed_len(n);
    char *out = malloc(cap);

    assert_int_equal(rc_sealed_seal(k, payload, n, out, cap), RC_OK);
    assert_int_equal(strlen(out), cap - 1);
    return out;
}

static rc_err_t open_str(const rc_sealed_keys_t *k, const char *tok,
                         unsigned char *out, size_t outlen, size_t *n)
{
    return rc_sealed_open(k, tok, strlen(tok), out, outlen, n);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131 + i * 71 + (i >> 3));
}

static void test_roundtrip(void **state)
{
    unsigned char payload[300] = {0}, out[300];

    (void)state;
    for (size_t n = 0; n <= sizeof payload; n += n < 70 ? 1 : 23) {
        char *tok;
        size_t got = 999;
        fill(payload, n, (unsigned)n);
        tok = seal(&keys1, payload, n);
        assert_int_equal(open_str(&keys1, tok, out, sizeof out, &got), RC_OK);
        assert_int_equal(got, n);
        assert_memory_equal(out, payload, n);
        /* Deterministic: the same payload and key give the same token. */
        {
            char *again = seal(&keys1, payload, n);
            assert_string_equal(tok, again);
            free(again);
        }
        free(tok);
    }
}

/* The format is pinned: base64url(payload) "." base64url(HMAC-SHA256(key,
 * the first segment)), computed here with OpenSSL directly. */
static void b64url(const unsigned char *p, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n), j = 0;

    for (int i = 0; i < len && out[i] != '='; i++)
        out[j++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[j] = '\0';
}

static void test_known_format(void **state)
{
    const char *payload = "resume:user-1:\xff\xfe?>";
    char seg[64], tag[64], want[160];
    unsigned char mac[32];
    unsigned int maclen = 0;
    char *tok;

    (void)state;
    b64url((const unsigned char *)payload, strlen(payload), seg);
    assert_non_null(HMAC(EVP_sha256(), K1, 32, (const unsigned char *)seg,
                         strlen(seg), mac, &maclen));
    b64url(mac, maclen, tag);
    strcpy(want, seg);
    strcat(want, ".");
    strcat(want, tag);
    tok = seal(&keys1, payload, strlen(payload));
    assert_string_equal(tok, want);
    assert_null(strpbrk(tok, "+/= ")); /* url alphabet, unpadded */
    free(tok);
}

static void test_tamper_every_char(void **state)
{
    const char *payload = "session=abc;rooms=3";
    char *tok = seal(&keys1, payload, strlen(payload));
    size_t n = strlen(tok), got;
    unsigned char out[64];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const char subst[] = {'A', 'B', '.', '-', '='};
        for (size_t s = 0; s < sizeof subst; s++) {
            char saved = tok[i];
            if (saved == subst[s])
                continue;
            tok[i] = subst[s];
            if (rc_sealed_open(&keys1, tok, n, out, sizeof out, &got) !=
                RC_EAUTH)
                print_error("position %zu '%c' -> '%c' not refused\n", i, saved,
                            subst[s]);
            assert_int_equal(
                rc_sealed_open(&keys1, tok, n, out, sizeof out, &got),
                RC_EAUTH);
            assert_int_equal(got, 0);
            tok[i] = saved;
        }
    }
    assert_int_equal(rc_sealed_open(&keys1, tok, n, out, sizeof out, &got),
                     RC_OK);
    free(tok);
}

static void test_keys_and_rotation(void **state)
{
    const char *payload = "p";
    char *t1 = seal(&keys1, payload, 1), *t2 = seal(&keys21, payload, 1);
    unsigned char out[8];
    size_t got;

    (void)state;
    assert_string_not_equal(t1, t2);
    /* wrong key */
    assert_int_equal(open_str(&keys3, t1, out, sizeof out, &got), RC_EAUTH);
    assert_int_equal(open_str(&keys2, t1, out, sizeof out, &got), RC_EAUTH);
    /* sealed with the old key, opened after rotation */
    assert_int_equal(open_str(&keys21, t1, out, sizeof out, &got), RC_OK);
    assert_int_equal(got, 1);
    assert_int_equal(out[0], 'p');
    /* sealed with the current key (seal ignores previous) */
    assert_int_equal(open_str(&keys2, t2, out, sizeof out, &got), RC_OK);
    assert_int_equal(open_str(&keys21, t2, out, sizeof out, &got), RC_OK);
    assert_int_equal(open_str(&keys1, t2, out, sizeof out, &got), RC_EAUTH);
    free(t1);
    free(t2);
}

static void test_truncated(void **state)
{
    const char *payload = "0123456789abcdef";
    char *tok = seal(&keys1, payload, strlen(payload));
    size_t n = strlen(tok), got;
    unsigned char out[64];

    (void)state;
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(
            rc_sealed_open(&keys1, tok, len, out, sizeof out, &got), RC_EAUTH);
        /* and with the head cut instead of the tail */
        assert_int_equal(
            rc_sealed_open(&keys1, tok + n - len, len, out, sizeof out, &got),
            RC_EAUTH);
    }
    free(tok);
}

static void test_malformed(void **state)
{
    char *empty = seal(&keys1, "", 0);
    const struct {
        const char *name;
        const char *tok;
    } cases[] = {
        {"empty", ""},
        {"no dot", "cGF5bG9hZA"},
        {"dot only", "."},
        {"no tag", "cGF5bG9hZA."},
        {"tag of 42 chars",
         "cGF5bG9hZA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"tag of 44 chars",
         "cGF5bG9hZA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"tag padded",
         "cGF5bG9hZA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
        {"two dots", "cGF5.bG9hZA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"base64 alphabet",
         "cGF5+G9hZA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"space", " .AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        {"zero tag", ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    };
    unsigned char out[64];
    size_t got;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc_err_t rc = open_str(&keys1, cases[i].tok, out, sizeof out, &got);
        if (rc != RC_EAUTH)
            print_error("case \"%s\": %s\n", cases[i].name, rc_err_str(rc));
        assert_int_equal(rc, RC_EAUTH);
    }
    assert_int_equal(rc_sealed_open(&keys1, NULL, 5, out, sizeof out, &got),
                     RC_EAUTH);
    /* the empty payload itself is fine, even into a NULL buffer */
    assert_int_equal(open_str(&keys1, empty, NULL, 0, &got), RC_OK);
    assert_int_equal(got, 0);
    free(empty);
}

static void test_buffer_limits(void **state)
{
    unsigned char payload[40], out[40];
    char tok[128];
    size_t need = rc_sealed_len(sizeof payload), got = 99;

    (void)state;
    fill(payload, sizeof payload, 7);
    assert_true(need <= sizeof tok);
    assert_int_equal(rc_sealed_len(0), 45);
    assert_int_equal(rc_sealed_len(1), 47);
    assert_int_equal(rc_sealed_len(SIZE_MAX), SIZE_MAX);
    /* seal: one byte short fails, exact fits */
    assert_int_equal(
        rc_sealed_seal(&keys1, payload, sizeof payload, tok, need - 1),
        RC_ELIMIT);
    assert_int_equal(rc_sealed_seal(&keys1, payload, sizeof payload, tok, 0),
                     RC_ELIMIT);
    assert_int_equal(rc_sealed_seal(&keys1, payload, sizeof payload, tok, need),
                     RC_OK);
    /* open: too small after a valid tag is RC_ELIMIT; exact fits */
    assert_int_equal(open_str(&keys1, tok, out, sizeof payload - 1, &got),
                     RC_ELIMIT);
    assert_int_equal(got, 0);
    assert_int_equal(open_str(&keys1, tok, out, sizeof payload, &got), RC_OK);
    assert_int_equal(got, sizeof payload);
    assert_memory_equal(out, payload, sizeof payload);
    /* a forged token is RC_EAUTH whatever the buffer */
    tok[0] = tok[0] == 'A' ? 'B' : 'A';
    assert_int_equal(open_str(&keys1, tok, out, 1, &got), RC_EAUTH);
}

static void test_bad_arguments(void **state)
{
    const rc_sealed_keys_t nokey = {NULL, 0, NULL, 0};
    const rc_sealed_keys_t emptykey = {(const unsigned char *)K1, 0, NULL, 0};
    const rc_sealed_keys_t emptyprev = {(const unsigned char *)K1, 32,
                                        (const unsigned char *)K2, 0};
    char tok[64];
    unsigned char out[8];
    size_t got;

    (void)state;
    assert_int_equal(rc_sealed_seal(NULL, "x", 1, tok, sizeof tok), RC_EINVAL);
    assert_int_equal(rc_sealed_seal(&nokey, "x", 1, tok, sizeof tok),
                     RC_EINVAL);
    assert_int_equal(rc_sealed_seal(&emptykey, "x", 1, tok, sizeof tok),
                     RC_EINVAL);
    assert_int_equal(rc_sealed_seal(&keys1, NULL, 1, tok, sizeof tok),
                     RC_EINVAL);
    assert_int_equal(rc_sealed_seal(&keys1, "x", 1, NULL, sizeof tok),
                     RC_EINVAL);
    assert_int_equal(rc_sealed_seal(&keys1, "x", 1, tok, sizeof tok), RC_OK);
    assert_int_equal(open_str(NULL, tok, out, sizeof out, &got), RC_EINVAL);
    assert_int_equal(open_str(&nokey, tok, out, sizeof out, &got), RC_EINVAL);
    assert_int_equal(open_str(&emptyprev, tok, out, sizeof out, &got),
                     RC_EINVAL);
    assert_int_equal(open_str(&keys1, tok, out, sizeof out, NULL), RC_EINVAL);
    assert_int_equal(open_str(&keys1, tok, NULL, sizeof out, &got), RC_EINVAL);
    assert_int_equal(open_str(&keys1, tok, out, sizeof out, &got), RC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_known_format),
        cmocka_unit_test(test_tamper_every_char),
        cmocka_unit_test(test_keys_and_rotation),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_buffer_limits),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

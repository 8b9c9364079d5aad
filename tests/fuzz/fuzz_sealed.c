/* libFuzzer target: resume tokens (auth/sealed.c). Two properties:
 * 1. Arbitrary bytes as a token: rc_sealed_open() returns RC_OK, RC_EAUTH
 *    or RC_ELIMIT, writes no byte past outlen (the output buffer is exactly
 *    outlen bytes, so ASan sees any overrun), with the current key or the
 *    previous one, and a token that opens
 *    re-seals to the very same bytes (one spelling per token).
 * 2. The input as a payload: a seal is at most rc_sealed_len() bytes, opens
 *    to the same payload with the current key and with the previous one
 *    (rotation), is refused under an unrelated key, and is refused after
 *    a one-byte change or a truncation (where: chosen by the input).
 * Seed corpus: tests/fuzz/corpus/sealed/.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sealed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY_A "roomcast fuzz sealing key, 32 b."
#define KEY_B "roomcast fuzz old sealing key..."
#define KEY_C "an unrelated key of 32 bytes...."
#define MAX_PAYLOAD 4096

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_sealed: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static const rc_sealed_keys_t keys_a = {(const unsigned char *)KEY_A,
                                        sizeof KEY_A - 1, NULL, 0};
static const rc_sealed_keys_t keys_b_then_a = {
    (const unsigned char *)KEY_B, sizeof KEY_B - 1,
    (const unsigned char *)KEY_A, sizeof KEY_A - 1};
static const rc_sealed_keys_t keys_c = {(const unsigned char *)KEY_C,
                                        sizeof KEY_C - 1, NULL, 0};

/* Opens token into a heap buffer of exactly outlen bytes. */
static rc_err_t open_exact(const rc_sealed_keys_t *k, const char *token,
                           size_t len, size_t outlen, unsigned char **out,
                           size_t *out_len)
{
    rc_err_t rc;

    *out = malloc(outlen ? outlen : 1);
    CHECK(*out != NULL);
    rc = rc_sealed_open(k, token, len, outlen ? *out : NULL, outlen, out_len);
    CHECK(rc == RC_OK || rc == RC_EAUTH || rc == RC_ELIMIT);
    if (rc != RC_OK)
        CHECK(*out_len == 0);
    else
        CHECK(*out_len <= outlen);
    return rc;
}

static void arbitrary_token(const uint8_t *data, size_t size)
{
    /* An exact-size copy: a read past size is an ASan report. */
    char *token = malloc(size ? size : 1);
    unsigned char *out;
    size_t out_len;
    rc_err_t rc;

    CHECK(token != NULL);
    memcpy(token, data, size);
    /* Too small for most payloads, then enough for any. */
    rc = open_exact(&keys_b_then_a, token, size, size / 4, &out, &out_len);
    free(out);
    rc = open_exact(&keys_a, token, size, size, &out, &out_len);
    if (rc == RC_OK) {
        size_t cap = rc_sealed_len(out_len);
        char *again = malloc(cap);

        CHECK(again != NULL);
        CHECK(rc_sealed_seal(&keys_a, out, out_len, again, cap) == RC_OK);
        CHECK(strlen(again) == size && memcmp(again, token, size) == 0);
        free(again);
    }
    free(out);
    free(token);
}

static void payload_round_trip(const uint8_t *data, size_t size)
{
    size_t plen = size > MAX_PAYLOAD ? MAX_PAYLOAD : size;
    size_t cap = rc_sealed_len(plen), tlen, out_len, pos;
    char *token = malloc(cap);
    unsigned char *out;

    CHECK(token != NULL);
    /* One byte short of enough is refused, and writes nothing past it. */
    CHECK(rc_sealed_seal(&keys_a, data, plen, token, cap - 1) == RC_ELIMIT);
    CHECK(rc_sealed_seal(&keys_a, plen ? data : NULL, plen, token, cap) ==
          RC_OK);
    tlen = strlen(token);
    CHECK(tlen + 1 == cap);

    CHECK(open_exact(&keys_a, token, tlen, plen, &out, &out_len) == RC_OK);
    CHECK(out_len == plen && memcmp(out, data, plen) == 0);
    free(out);
    /* Rotation: sealed under A, opened where A is the previous key. */
    CHECK(open_exact(&keys_b_then_a, token, tlen, plen, &out, &out_len) ==
          RC_OK);
    CHECK(out_len == plen && memcmp(out, data, plen) == 0);
    free(out);
    CHECK(open_exact(&keys_c, token, tlen, plen, &out, &out_len) == RC_EAUTH);
    free(out);
    if (plen > 0)
        CHECK(open_exact(&keys_a, token, tlen, plen - 1, &out, &out_len) ==
              RC_ELIMIT);
    else
        out = NULL;
    free(out);

    /* Any one-byte change, at a position the input picks. */
    pos = size ? (data[0] | (size > 1 ? data[1] << 8 : 0)) % tlen : 0;
    for (unsigned delta = 1; delta < 256; delta += 127) {
        char saved = token[pos];

        token[pos] = (char)(token[pos] ^ delta);
        CHECK(open_exact(&keys_a, token, tlen, plen, &out, &out_len) ==
              RC_EAUTH);
        free(out);
        token[pos] = saved;
    }
    /* Truncations, from the changed position on. */
    for (size_t n = pos; n < tlen; n += 1 + tlen / 2) {
        CHECK(open_exact(&keys_a, token, n, plen, &out, &out_len) == RC_EAUTH);
        free(out);
    }
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arbitrary_token(data, size);
    payload_round_trip(data, size);
    return 0;
}

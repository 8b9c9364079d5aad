/* libFuzzer target: the admin listener's request line, through
 * rc_admin_parse_head(). Invariants: the result is RC_OK, RC_EINVAL or
 * RC_ELIMIT; no byte past size is read (the input is an exact-size copy);
 * on RC_OK the method is 1..7 of A-Z and a prefix of the input followed by
 * one space, the path starts with "/", holds only visible ASCII without
 * "?", and is exactly the bytes after that space (never a cut copy); on
 * failure both are empty.
 * Then the Authorization check over the same bytes (rc_admin_bearer_ok):
 * true only when the token follows, never for an empty token.
 * Seed corpus: tests/fuzz/corpus/admin/.
 * SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_admin: invariant failed: %s (line %d)\n",    \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    rc_admin_head_t h;
    size_t m, p;
    rc_err_t rc;

    CHECK(buf != NULL);
    memcpy(buf, data, size);
    rc = rc_admin_parse_head(buf, size, &h);
    m = strnlen(h.method, sizeof(h.method));
    p = strnlen(h.path, sizeof(h.path));
    CHECK(m < sizeof(h.method) && p < sizeof(h.path));
    if (rc == RC_OK) {
        CHECK(m >= 1 && m <= RC_ADMIN_METHOD_MAX);
        for (size_t i = 0; i < m; i++)
            CHECK(h.method[i] >= 'A' && h.method[i] <= 'Z');
        CHECK(memcmp(buf, h.method, m) == 0 && buf[m] == ' ');
        CHECK(p >= 1 && h.path[0] == '/');
        for (size_t i = 0; i < p; i++)
            CHECK(h.path[i] > ' ' && h.path[i] < 0x7f && h.path[i] != '?');
        CHECK(m + 1 + p <= size && memcmp(buf + m + 1, h.path, p) == 0);
        /* What follows the path ends it: never a cut. */
        CHECK(m + 1 + p < size);
        CHECK(memchr("? \r\n", buf[m + 1 + p], 4) != NULL);
        CHECK(memchr(buf, '\n', size) != NULL);
    } else {
        CHECK(rc == RC_EINVAL || rc == RC_ELIMIT);
        CHECK(m == 0 && p == 0);
    }
    /* The Authorization check reads the same head: never past size, and
     * true only when the token's exact bytes follow "Bearer ". */
    if (rc_admin_bearer_ok(buf, size, "0123456789abcdef", 16)) {
        CHECK(size >= 16 + 7);
        CHECK(memmem(buf, size, "0123456789abcdef", 16) != NULL);
    }
    CHECK(!rc_admin_bearer_ok(buf, size, "", 0));
    free(buf);
    return 0;
}

/* Unit tests of gateway/admin.c's request-line parser, rc_admin_parse_head:
 * what it accepts, what it refuses, and that it never cuts a method or a
 * path to fit (sscanf("%7s %255s") used to, so a long path was matched by
 * its first 255 bytes and a long method split into method and path).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"

static rc_err_t parse(const char *s, rc_admin_head_t *h)
{
    return rc_admin_parse_head(s, strlen(s), h);
}

static void check_ok(const char *s, const char *method, const char *path)
{
    rc_admin_head_t h;

    if (parse(s, &h) != RC_OK)
        fail_msg("refused: \"%s\"", s);
    assert_string_equal(h.method, method);
    assert_string_equal(h.path, path);
}

static void check_refused(const char *s, rc_err_t want)
{
    rc_admin_head_t h;

    memset(&h, 'x', sizeof(h));
    assert_int_equal(parse(s, &h), want);
    assert_string_equal(h.method, "");
    assert_string_equal(h.path, "");
}

static void test_accepts(void **state)
{
    (void)state;
    check_ok("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/healthz");
    check_ok("GET /metrics HTTP/1.0\r\n\r\n", "GET", "/metrics");
    check_ok("POST /drain HTTP/1.1\n\n", "POST", "/drain");
    check_ok("GET /stats?pretty=1&x=%20 HTTP/1.1\r\n\r\n", "GET", "/stats");
    check_ok("GET /\r\n", "GET", "/");
    check_ok("OPTIONS /readyz HTTP/1.1\r\n", "OPTIONS", "/readyz");
}

static void test_refuses_malformed(void **state)
{
    (void)state;
    check_refused("", RC_EINVAL);
    check_refused("GET", RC_EINVAL);
    check_refused("GET /healthz", RC_EINVAL);          /* no line end */
    check_refused("GET /healthz HTTP/1.1", RC_EINVAL); /* no line end */
    check_refused("get /healthz HTTP/1.1\r\n", RC_EINVAL);
    check_refused("GET  /healthz HTTP/1.1\r\n", RC_EINVAL);
    check_refused("GET healthz HTTP/1.1\r\n", RC_EINVAL);
    check_refused(" GET /healthz HTTP/1.1\r\n", RC_EINVAL);
    check_refused("GET /heal\tthz HTTP/1.1\r\n", RC_EINVAL);
    check_refused("GET /healthz HTTP/2.0\r\n", RC_EINVAL);
    check_refused("GET /healthz HTTP/1.\r\n", RC_EINVAL);
    check_refused("GET /healthz FOO\r\n", RC_EINVAL);
    check_refused("GET /a\x7f HTTP/1.1\r\n", RC_EINVAL);
    check_refused("GET /\xc3\xa9 HTTP/1.1\r\n", RC_EINVAL);
}

/* A NUL inside the line is data, not an end: it is refused, and the
 * parser reads len bytes, not a C string. */
static void test_nul_and_len(void **state)
{
    rc_admin_head_t h;
    static const char nul[] = "GET /drain\0 HTTP/1.1\r\n";

    (void)state;
    assert_int_equal(rc_admin_parse_head(nul, sizeof(nul) - 1, &h), RC_EINVAL);
    /* The LF past len does not count. */
    assert_int_equal(rc_admin_parse_head("GET /x\n", 6, &h), RC_EINVAL);
    assert_int_equal(rc_admin_parse_head("GET /x\n", 7, &h), RC_OK);
    assert_int_equal(rc_admin_parse_head(NULL, 0, &h), RC_EINVAL);
}

static void test_never_cuts(void **state)
{
    char line[600];
    rc_admin_head_t h;

    (void)state;
    /* A 255-byte path is the longest taken... */
    memset(line, 0, sizeof(line));
    memcpy(line, "GET /", 5);
    memset(line + 5, 'a', 254);
    strcat(line, " HTTP/1.1\r\n");
    assert_int_equal(parse(line, &h), RC_OK);
    assert_int_equal(strlen(h.path), 255);
    /* ...one more byte is refused, not cut to a path that may match. */
    memset(line, 0, sizeof(line));
    memcpy(line, "GET /", 5);
    memset(line + 5, 'a', 255);
    strcat(line, " HTTP/1.1\r\n");
    check_refused(line, RC_ELIMIT);
    /* An 8-letter method is refused, not split into "POSTPOS" and "T". */
    check_refused("POSTPOST /drain HTTP/1.1\r\n", RC_ELIMIT);
    /* The query does not count against the path. */
    memset(line, 0, sizeof(line));
    memcpy(line, "GET /metrics?", 13);
    memset(line + 13, 'q', 400);
    strcat(line, " HTTP/1.1\r\n");
    check_ok(line, "GET", "/metrics");
}

static bool bearer(const char *head, const char *tok)
{
    return rc_admin_bearer_ok(head, strlen(head), tok, strlen(tok));
}

static void test_bearer(void **state)
{
    static const char tok[] = "0123456789abcdef";

    (void)state;
    assert_true(bearer("POST /drain HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer 0123456789abcdef\r\n\r\n",
                       tok));
    /* header name and scheme in any case, spaces around the value */
    assert_true(bearer("POST /drain HTTP/1.1\r\nauthorization:   bearer  "
                       "0123456789abcdef  \r\n\r\n",
                       tok));
    /* a bare LF ends lines too */
    assert_true(
        bearer("POST /d\nAuthorization: Bearer 0123456789abcdef\n\n", tok));
    /* wrong, shorter, longer, another scheme, none, empty token */
    assert_false(bearer("POST /d\r\nAuthorization: Bearer 0123456789abcdeX"
                        "\r\n\r\n",
                        tok));
    assert_false(bearer("POST /d\r\nAuthorization: Bearer 0123456789abcde"
                        "\r\n\r\n",
                        tok));
    assert_false(bearer("POST /d\r\nAuthorization: Bearer 0123456789abcdef0"
                        "\r\n\r\n",
                        tok));
    assert_false(bearer("POST /d\r\nAuthorization: Basic 0123456789abcdef"
                        "\r\n\r\n",
                        tok));
    assert_false(bearer("POST /d\r\nX-Authorization: Bearer 0123456789abcdef"
                        "\r\n\r\n",
                        tok));
    assert_false(bearer("POST /d\r\n\r\n", tok));
    assert_false(bearer("POST /d\r\nAuthorization: Bearer \r\n\r\n", ""));
    /* the request line is not a header, even when it looks like one */
    assert_false(bearer("Authorization: Bearer 0123456789abcdef\r\n\r\n", tok));
    /* the bytes past len do not count */
    assert_false(rc_admin_bearer_ok(
        "P /\nAuthorization: Bearer 0123456789abcdef", 30, tok, 16));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses_malformed),
        cmocka_unit_test(test_nul_and_len),
        cmocka_unit_test(test_never_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

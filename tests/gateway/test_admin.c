/* Unit tests of gateway/admin.c's request-line parser, rc_admin_parse_head:
 * what it accepts, what it refuses, and that it never cuts a method or a
 * path to fit (sscanf("%7s %255s") used to, so a long path was matched by
 * its first 255 bytes and a long method split into method and path); of
 * its Authorization check; and of the listener's write deadline, on a
 * real loop with real loopback sockets.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    /* a body is not headers: nothing past the blank line counts */
    assert_false(bearer("POST /d HTTP/1.1\r\nHost: x\r\n\r\n"
                        "Authorization: Bearer 0123456789abcdef\r\n",
                        tok));
    assert_false(bearer(
        "POST /d\nHost: x\n\nAuthorization: Bearer 0123456789abcdef\n", tok));
    /* the bytes past len do not count */
    assert_false(rc_admin_bearer_ok(
        "P /\nAuthorization: Bearer 0123456789abcdef", 30, tok, 16));
}

/* ---- the listener on a real loop ---------------------------------------- */

#define BIG_BODY (8u << 20) /* more than loopback buffers hold */

static int big_handler(void *ctx, const char *method, const char *path,
                       rc_buf_t *body, const char **ctype)
{
    (void)ctx;
    (void)method;
    *ctype = "text/plain";
    if (strcmp(path, "/big") == 0) {
        char *fill = malloc(BIG_BODY);

        assert_non_null(fill);
        memset(fill, 'x', BIG_BODY);
        rc_buf_append(body, fill, BIG_BODY);
        free(fill);
    } else {
        rc_buf_append(body, "ok\n", 3);
    }
    return 200;
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sl), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A client socket connected to port, with a small receive buffer; sends
 * req. The listener accepts it when the loop next runs. */
static int client(int port, const char *req, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    return fd;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;

    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(2);
        uv_update_time(loop);
    }
}

/* Everything the socket holds now, without waiting. */
static size_t drain_now(int fd, char *first, size_t firstlen)
{
    char buf[65536];
    size_t total = 0;
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        if (total < firstlen) {
            size_t k =
                (size_t)n < firstlen - total ? (size_t)n : firstlen - total;
            memcpy(first + total, buf, k);
        }
        total += (size_t)n;
    }
    return total;
}

/* A client that asks for a big answer and never reads it held its slot
 * for ever: the sweep only cut requests not yet answered. With one slot,
 * the next client was refused unanswered. Now the answer has timeout_ms
 * to be written out; then the connection is closed and the slot is free. */
static void test_unread_answer_frees_its_slot(void **state)
{
    uv_loop_t loop;
    rc_admin_policy_t pol = {.max_conns = 1, .timeout_ms = 200};
    char err[128], head[16] = {0};
    int port = free_port(), slow, next;
    rc_admin_t *a;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    a = rc_admin_create(&loop, "127.0.0.1", port, big_handler, NULL, &pol, err,
                        sizeof(err));
    assert_non_null(a);
    slow = client(port, "GET /big HTTP/1.1\r\n\r\n", 4096);
    run_for(&loop, 100); /* accepted, answered, the write stuck */
    run_for(&loop, 500); /* past the write deadline */
    next = client(port, "GET /healthz HTTP/1.1\r\n\r\n", 0);
    run_for(&loop, 100);
    assert_true(drain_now(next, head, sizeof(head) - 1) > 0);
    assert_memory_equal(head, "HTTP/1.1 200", 12);
    /* the slow one got part of its answer, not all, then the close */
    assert_true(drain_now(slow, head, sizeof(head) - 1) < BIG_BODY);
    close(slow);
    close(next);
    rc_admin_destroy(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses_malformed),
        cmocka_unit_test(test_nul_and_len),
        cmocka_unit_test(test_never_cuts),
        cmocka_unit_test(test_unread_answer_frees_its_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

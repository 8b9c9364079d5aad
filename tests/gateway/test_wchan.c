/* Unit tests of gateway/wchan.c: the framed supervisor <-> worker channel
 * over a real socketpair on a real libuv loop. One end is always an
 * rc_wchan; the other is either another rc_wchan (messages whole, up to the
 * 4 MiB bound) or a raw descriptor the test writes bytes into by hand
 * (frames split across reads, broken framing, the peer closing).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "gateway/wchan.h"

#define MAX_MSGS 16
#define WAIT_MS 5000 /* every wait is bounded by this */

typedef struct msg {
    char type;
    char *data; /* owned copy */
    size_t len;
} msg_t;

/* What one channel end received. */
typedef struct sink {
    msg_t msgs[MAX_MSGS];
    size_t n;
    int eofs;
    rc_wchan_t *destroy_on_msg; /* destroy this channel in the callback */
} sink_t;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps the loop alive: channels never do */
    rc_wchan_t *a, *b;
    int raw; /* the other end, by hand, or -1 */
    sink_t sa, sb;
} fixture_t;

static void on_msg(void *ctx, char type, const char *data, size_t len)
{
    sink_t *s = ctx;

    assert_true(s->n < MAX_MSGS);
    s->msgs[s->n].type = type;
    s->msgs[s->n].data = malloc(len ? len : 1);
    assert_non_null(s->msgs[s->n].data);
    if (len)
        memcpy(s->msgs[s->n].data, data, len);
    s->msgs[s->n].len = len;
    s->n++;
    if (s->destroy_on_msg) {
        rc_wchan_destroy(s->destroy_on_msg);
        s->destroy_on_msg = NULL;
    }
}

static void on_eof(void *ctx)
{
    ((sink_t *)ctx)->eofs++;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int fx_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    int sv[2];

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
    assert_int_equal(uv_timer_start(&fx->tick, on_tick, 2, 2), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fx->a = rc_wchan_create(&fx->loop);
    assert_int_equal(rc_wchan_open(fx->a, sv[0]), RC_OK);
    assert_int_equal(rc_wchan_start(fx->a, on_msg, on_eof, &fx->sa), RC_OK);
    fx->raw = sv[1];
    *state = fx;
    return 0;
}

/* The other end as a second channel instead of a raw descriptor. */
static void fx_pair(fixture_t *fx)
{
    fx->b = rc_wchan_create(&fx->loop);
    assert_int_equal(rc_wchan_open(fx->b, fx->raw), RC_OK);
    fx->raw = -1;
    assert_int_equal(rc_wchan_start(fx->b, on_msg, on_eof, &fx->sb), RC_OK);
}

static void spin(fixture_t *fx, int ms)
{
    uint64_t until = uv_now(&fx->loop) + (uint64_t)ms;

    while (uv_now(&fx->loop) < until)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Run the loop until *count reaches want (or WAIT_MS). */
static void wait_for(fixture_t *fx, const size_t *count, size_t want)
{
    uint64_t until = uv_now(&fx->loop) + WAIT_MS;

    while (*count < want && uv_now(&fx->loop) < until)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(*count, want);
}

static void wait_eof(fixture_t *fx, const int *eofs)
{
    uint64_t until = uv_now(&fx->loop) + WAIT_MS;

    while (*eofs == 0 && uv_now(&fx->loop) < until)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(*eofs, 1);
}

static void sink_free(sink_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->msgs[i].data);
}

static int fx_teardown(void **state)
{
    fixture_t *fx = *state;

    rc_wchan_destroy(fx->a);
    rc_wchan_destroy(fx->b);
    if (fx->raw >= 0)
        close(fx->raw);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    for (int i = 0; i < 100 && uv_loop_alive(&fx->loop); i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    /* Every handle closed and every write request freed. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    sink_free(&fx->sa);
    sink_free(&fx->sb);
    free(fx);
    return 0;
}

static void raw_write(fixture_t *fx, const void *p, size_t n)
{
    assert_int_equal(write(fx->raw, p, n), (ssize_t)n);
}

/* One frame by hand into buf; returns its length. */
static size_t frame(char *buf, char type, const char *data, uint32_t len)
{
    buf[0] = type;
    buf[1] = (char)(len >> 24);
    buf[2] = (char)(len >> 16);
    buf[3] = (char)(len >> 8);
    buf[4] = (char)len;
    memcpy(buf + 5, data, len);
    return 5 + (size_t)len;
}

static void assert_msg(const sink_t *s, size_t i, char type, const char *data,
                       size_t len)
{
    assert_true(i < s->n);
    assert_int_equal(s->msgs[i].type, type);
    assert_int_equal(s->msgs[i].len, len);
    assert_memory_equal(s->msgs[i].data, data, len);
}

static void test_messages_whole_both_ways(void **state)
{
    fixture_t *fx = *state;
    char big[1000];

    fx_pair(fx);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)i;
    assert_int_equal(rc_wchan_send(fx->a, 'P', NULL, 0), RC_OK);
    assert_int_equal(rc_wchan_send(fx->a, 'R', "hello", 5), RC_OK);
    assert_int_equal(rc_wchan_send(fx->a, 'N', big, sizeof(big)), RC_OK);
    wait_for(fx, &fx->sb.n, 3);
    assert_msg(&fx->sb, 0, 'P', "", 0);
    assert_msg(&fx->sb, 1, 'R', "hello", 5);
    assert_msg(&fx->sb, 2, 'N', big, sizeof(big));
    /* And back. */
    assert_int_equal(rc_wchan_send(fx->b, 'D', "x", 1), RC_OK);
    wait_for(fx, &fx->sa.n, 1);
    assert_msg(&fx->sa, 0, 'D', "x", 1);
    spin(fx, 20);
    assert_int_equal(fx->sb.n, 3); /* nothing more, no EOF */
    assert_int_equal(fx->sa.eofs + fx->sb.eofs, 0);
}

static void test_max_message_whole(void **state)
{
    fixture_t *fx = *state;
    size_t n = RC_WCHAN_MAX_MSG;
    char *big = malloc(n + 1);

    fx_pair(fx);
    assert_non_null(big);
    for (size_t i = 0; i <= n; i++)
        big[i] = (char)(i * 7 + (i >> 12));
    /* Exactly the bound passes, whole, between two small messages; one
     * byte more is refused by the sender. */
    assert_int_equal(rc_wchan_send(fx->a, 'P', NULL, 0), RC_OK);
    assert_int_equal(rc_wchan_send(fx->a, 'R', big, n), RC_OK);
    assert_int_equal(rc_wchan_send(fx->a, 'R', big, n + 1), RC_ELIMIT);
    assert_int_equal(rc_wchan_send(fx->a, 'P', "z", 1), RC_OK);
    wait_for(fx, &fx->sb.n, 3);
    assert_msg(&fx->sb, 0, 'P', "", 0);
    assert_msg(&fx->sb, 1, 'R', big, n);
    assert_msg(&fx->sb, 2, 'P', "z", 1);
    assert_int_equal(fx->sb.eofs, 0);
    free(big);
}

static void test_split_across_reads(void **state)
{
    fixture_t *fx = *state;
    char buf[256];
    size_t n = frame(buf, 'R', "abcdef", 6);

    /* Byte by byte: nothing until the last byte, then the message. */
    for (size_t i = 0; i < n; i++) {
        raw_write(fx, buf + i, 1);
        spin(fx, 5);
        assert_int_equal(fx->sa.n, i + 1 == n ? 1 : 0);
    }
    assert_msg(&fx->sa, 0, 'R', "abcdef", 6);
    /* Two whole frames and the header of a third in one write, the rest
     * of the third later. */
    n = frame(buf, 'A', "1", 1);
    n += frame(buf + n, 'B', "22", 2);
    n += frame(buf + n, 'C', "333", 3);
    raw_write(fx, buf, n - 3);
    wait_for(fx, &fx->sa.n, 3);
    spin(fx, 10);
    assert_int_equal(fx->sa.n, 3);
    raw_write(fx, buf + n - 3, 3);
    wait_for(fx, &fx->sa.n, 4);
    assert_msg(&fx->sa, 1, 'A', "1", 1);
    assert_msg(&fx->sa, 2, 'B', "22", 2);
    assert_msg(&fx->sa, 3, 'C', "333", 3);
    assert_int_equal(fx->sa.eofs, 0);
}

static void test_over_bound_breaks_channel(void **state)
{
    fixture_t *fx = *state;
    char buf[64];
    size_t n = frame(buf, 'R', "ok", 2);
    uint32_t len = RC_WCHAN_MAX_MSG + 1;

    /* A good frame, then a header announcing one byte over the bound: the
     * first is delivered, then EOF once, and no message after it. */
    buf[n] = 'R';
    buf[n + 1] = (char)(len >> 24);
    buf[n + 2] = (char)(len >> 16);
    buf[n + 3] = (char)(len >> 8);
    buf[n + 4] = (char)len;
    raw_write(fx, buf, n + 5);
    wait_eof(fx, &fx->sa.eofs);
    assert_int_equal(fx->sa.n, 1);
    assert_msg(&fx->sa, 0, 'R', "ok", 2);
    n = frame(buf, 'R', "late", 4);
    raw_write(fx, buf, n);
    spin(fx, 20);
    assert_int_equal(fx->sa.n, 1);
    assert_int_equal(fx->sa.eofs, 1);
    assert_int_equal(rc_wchan_send(fx->a, 'P', NULL, 0), RC_ECLOSED);
}

static void test_peer_closed(void **state)
{
    fixture_t *fx = *state;
    char buf[64];
    size_t n = frame(buf, 'D', "", 0);

    /* A whole frame and half of another, then the peer goes away. */
    n += frame(buf + n, 'R', "half", 4);
    raw_write(fx, buf, n - 2);
    close(fx->raw);
    fx->raw = -1;
    wait_eof(fx, &fx->sa.eofs);
    spin(fx, 20);
    assert_int_equal(fx->sa.eofs, 1);
    assert_int_equal(fx->sa.n, 1);
    assert_msg(&fx->sa, 0, 'D', "", 0);
    assert_int_equal(rc_wchan_send(fx->a, 'P', "x", 1), RC_ECLOSED);
}

static void test_peer_channel_destroyed(void **state)
{
    fixture_t *fx = *state;

    /* The supervisor side destroys its channel: the worker side sees EOF
     * (the parent died), once. */
    fx_pair(fx);
    rc_wchan_destroy(fx->b);
    fx->b = NULL;
    wait_eof(fx, &fx->sa.eofs);
    spin(fx, 20);
    assert_int_equal(fx->sa.eofs, 1);
    assert_int_equal(fx->sa.n, 0);
}

static void test_destroy_in_callback(void **state)
{
    fixture_t *fx = *state;
    char buf[64];
    size_t n = frame(buf, 'A', "1", 1);

    /* Three frames in one read; the first callback destroys the channel:
     * no later message, no EOF, and the memory outlives the read
     * callback (a sanitizer build checks the touches after it). */
    n += frame(buf + n, 'B', "2", 1);
    n += frame(buf + n, 'C', "3", 1);
    fx->sa.destroy_on_msg = fx->a;
    fx->a = NULL;
    raw_write(fx, buf, n);
    wait_for(fx, &fx->sa.n, 1);
    spin(fx, 20);
    assert_int_equal(fx->sa.n, 1);
    assert_int_equal(fx->sa.eofs, 0);
    assert_msg(&fx->sa, 0, 'A', "1", 1);
}

static void test_destroy_with_writes_queued(void **state)
{
    fixture_t *fx = *state;
    size_t n = RC_WCHAN_MAX_MSG;
    char *big = calloc(1, n);

    /* Writes larger than the socket buffer still queued when the channel
     * is destroyed: cancelled and freed (the loop closes cleanly in the
     * teardown), the channel gone before their callbacks. */
    assert_non_null(big);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rc_wchan_send(fx->a, 'R', big, n), RC_OK);
    free(big);
    rc_wchan_destroy(fx->a);
    fx->a = NULL;
    spin(fx, 10);
    assert_int_equal(fx->sa.eofs, 0);
}

static void test_send_before_start(void **state)
{
    fixture_t *fx = *state;
    rc_wchan_t *c = rc_wchan_create(&fx->loop);
    (void)state;

    assert_int_equal(rc_wchan_send(c, 'P', NULL, 0), RC_ECLOSED);
    rc_wchan_destroy(c);
    rc_wchan_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages_whole_both_ways, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_max_message_whole, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_split_across_reads, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_over_bound_breaks_channel,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_peer_closed, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_peer_channel_destroyed, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_callback, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_writes_queued,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_before_start, fx_setup,
                                        fx_teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* a write to a closed peer is EPIPE */
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of gateway/conn.c: init/dispose and the token bucket
 * (burst, refusal, refill, the cap, clock wrap-around).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/conn.h"

/* How the node arms a fresh connection's bucket (ws.c, on_established):
 * full, as of now. */
static void arm(rc_conn_t *c, uint32_t now_ms, uint32_t burst)
{
    rc_conn_init(c);
    c->refill_ms = now_ms;
    c->tokens = burst * 1000;
}

/* Takes tokens at now_ms until refused; returns how many were granted. */
static unsigned drain(rc_conn_t *c, uint32_t now_ms, uint32_t rate,
                      uint32_t burst)
{
    unsigned n = 0;

    while (rc_conn_rate_take(c, now_ms, rate, burst)) {
        n++;
        assert_true(n <= burst); /* never more than the bucket holds */
    }
    return n;
}

static void test_init(void **state)
{
    rc_conn_t c;

    (void)state;
    memset(&c, 0xff, sizeof(c));
    rc_conn_init(&c);
    assert_int_equal(c.state, RC_CONN_PENDING_AUTH);
    assert_null(c.wsi);
    assert_null(c.id);
    assert_null(c.rx);
    assert_null(c.resume);
    assert_int_equal(c.rx_len, 0);
    assert_int_equal(c.nrooms, 0);
    assert_int_equal(c.tokens, 0);
    assert_true(rc_list_empty(&c.members));
    assert_true(rc_list_empty(&c.in_server));
    assert_true(rc_list_empty(&c.in_timer));
    assert_true(rc_list_empty(&c.ops));
    assert_int_equal(rc_outq_count(&c.outq), 0);
    assert_int_equal(rc_outq_bytes(&c.outq), 0);
    rc_conn_dispose(&c);
}

static void test_dispose_releases(void **state)
{
    rc_conn_t c;
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, "x", 1);

    (void)state;
    assert_non_null(m);
    rc_conn_init(&c);
    for (int i = 0; i < 6; i++) /* past the inline slots */
        assert_int_equal(
            rc_outq_push(&c.outq, rc_msg_ref(m), UINT64_MAX, UINT32_MAX),
            RC_OK);
    c.rx = malloc(32);
    assert_non_null(c.rx);
    c.rx_len = 32;
    c.resume = malloc(16);
    assert_non_null(c.resume);
    rc_conn_dispose(&c);
    assert_null(c.rx);
    assert_null(c.resume);
    assert_int_equal(c.rx_len, 0);
    assert_int_equal(rc_outq_count(&c.outq), 0);
    assert_int_equal(m->refs, 1);
    rc_msg_unref(m);
}

static void test_rate_burst_then_refuse(void **state)
{
    rc_conn_t c;

    (void)state;
    arm(&c, 5000, 3);
    assert_true(rc_conn_rate_take(&c, 5000, 10, 3));
    assert_true(rc_conn_rate_take(&c, 5000, 10, 3));
    assert_true(rc_conn_rate_take(&c, 5000, 10, 3));
    assert_false(rc_conn_rate_take(&c, 5000, 10, 3));
    assert_false(rc_conn_rate_take(&c, 5000, 10, 3));
    rc_conn_dispose(&c);
}

static void test_rate_default_burst(void **state)
{
    rc_conn_t c;

    (void)state;
    /* The documented defaults: 100 frames/s, bursts of 200. */
    arm(&c, 1, 200);
    assert_int_equal(drain(&c, 1, 100, 200), 200);
    rc_conn_dispose(&c);
}

static void test_rate_fresh_bucket_empty(void **state)
{
    rc_conn_t c;

    (void)state;
    /* rc_conn_init alone leaves the bucket empty: the node must arm it. */
    rc_conn_init(&c);
    assert_false(rc_conn_rate_take(&c, 0, 10, 3));
    rc_conn_dispose(&c);
}

static void test_rate_refill(void **state)
{
    rc_conn_t c;

    (void)state;
    arm(&c, 1000, 2);
    assert_int_equal(drain(&c, 1000, 10, 2), 2);
    /* 10 frames/s: one token per 100 ms. 99 ms is not enough... */
    assert_false(rc_conn_rate_take(&c, 1099, 10, 2));
    /* ...but the partial token was kept: one more ms completes it. */
    assert_true(rc_conn_rate_take(&c, 1100, 10, 2));
    assert_false(rc_conn_rate_take(&c, 1100, 10, 2));
    /* 250 ms later: two and a half tokens' worth, capped at the burst. */
    assert_true(rc_conn_rate_take(&c, 1350, 10, 2));
    assert_true(rc_conn_rate_take(&c, 1350, 10, 2));
    assert_false(rc_conn_rate_take(&c, 1350, 10, 2));
    rc_conn_dispose(&c);
}

static void test_rate_refill_fractional(void **state)
{
    rc_conn_t c;

    (void)state;
    /* 3 frames/s: a token every 333.3 ms, accumulated in thousandths. */
    arm(&c, 0, 1);
    assert_true(rc_conn_rate_take(&c, 0, 3, 1));
    assert_false(rc_conn_rate_take(&c, 333, 3, 1)); /* 999/1000 */
    assert_true(rc_conn_rate_take(&c, 334, 3, 1));  /* 1002/1000 */
    rc_conn_dispose(&c);
}

static void test_rate_refill_capped_at_burst(void **state)
{
    rc_conn_t c;

    (void)state;
    arm(&c, 0, 5);
    assert_int_equal(drain(&c, 0, 100, 5), 5);
    /* An hour idle refills to the burst, no more. */
    assert_int_equal(drain(&c, 3600000, 100, 5), 5);
    rc_conn_dispose(&c);
}

static void test_rate_zero_never_refills(void **state)
{
    rc_conn_t c;

    (void)state;
    arm(&c, 0, 2);
    assert_int_equal(drain(&c, 0, 0, 2), 2);
    assert_false(rc_conn_rate_take(&c, 1000000, 0, 2));
    rc_conn_dispose(&c);
}

static void test_rate_steady(void **state)
{
    rc_conn_t c;
    unsigned granted = 0;

    (void)state;
    arm(&c, 0, 1);
    assert_true(rc_conn_rate_take(&c, 0, 50, 1));
    /* A frame every ms for 10 s at 50/s: 20 ms per token, 500 granted. */
    for (uint32_t t = 1; t <= 10000; t++)
        granted += rc_conn_rate_take(&c, t, 50, 1);
    assert_int_equal(granted, 500);
    rc_conn_dispose(&c);
}

static void test_rate_clock_wrap(void **state)
{
    rc_conn_t c;

    (void)state;
    /* The loop clock is 32-bit ms and wraps every ~49.7 days. */
    arm(&c, UINT32_MAX - 49, 2);
    assert_int_equal(drain(&c, UINT32_MAX - 49, 10, 2), 2);
    /* 99 ms later, across the wrap: 990 thousandths, not a frame. */
    assert_false(rc_conn_rate_take(&c, 49, 10, 2));
    /* 100 ms after the drain: exactly one token. */
    assert_true(rc_conn_rate_take(&c, 50, 10, 2));
    assert_false(rc_conn_rate_take(&c, 50, 10, 2));
    rc_conn_dispose(&c);
}

static void test_rate_clock_wrap_exact(void **state)
{
    rc_conn_t c;

    (void)state;
    arm(&c, UINT32_MAX, 1);
    assert_true(rc_conn_rate_take(&c, UINT32_MAX, 1000, 1));
    assert_false(rc_conn_rate_take(&c, UINT32_MAX, 1000, 1));
    /* UINT32_MAX -> 0 is 1 ms: 1000 frames/s gives exactly one token. */
    assert_true(rc_conn_rate_take(&c, 0, 1000, 1));
    assert_false(rc_conn_rate_take(&c, 0, 1000, 1));
    rc_conn_dispose(&c);
}

static void test_rate_limits_of_config(void **state)
{
    rc_conn_t c;

    (void)state;
    /* config.c caps rate and burst at 1000000: no overflow there. */
    arm(&c, 7, 1000000);
    assert_int_equal(c.tokens, 1000000000u);
    for (int i = 0; i < 1000; i++)
        assert_true(rc_conn_rate_take(&c, 7, 1000000, 1000000));
    /* Refill after a long (wrapped) gap caps at the burst. */
    assert_true(rc_conn_rate_take(&c, 6, 1000000, 1000000));
    assert_int_equal(c.tokens, 1000000000u - 1000);
    rc_conn_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_dispose_releases),
        cmocka_unit_test(test_rate_burst_then_refuse),
        cmocka_unit_test(test_rate_default_burst),
        cmocka_unit_test(test_rate_fresh_bucket_empty),
        cmocka_unit_test(test_rate_refill),
        cmocka_unit_test(test_rate_refill_fractional),
        cmocka_unit_test(test_rate_refill_capped_at_burst),
        cmocka_unit_test(test_rate_zero_never_refills),
        cmocka_unit_test(test_rate_steady),
        cmocka_unit_test(test_rate_clock_wrap),
        cmocka_unit_test(test_rate_clock_wrap_exact),
        cmocka_unit_test(test_rate_limits_of_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

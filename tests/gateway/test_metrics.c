/* Unit tests of gateway/metrics.c: latency bucketing, and the Prometheus
 * and /stats renderings (counters, gauges, labelled families, the adapter's
 * metrics through its emit callback).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gateway/metrics.h"

static const rc_metrics_gauges_t gauges = {
    .node_id = "n1",
    .state = "draining",
    .adapter = "fake",
    .connections = 7,
    .pending_auth = 2,
    .rooms = 3,
    .memberships = 5,
    .queue_bytes = 1234,
    .ready = false,
    .draining = true,
};

/* A stand-in adapter that reports one counter and one gauge. */
static void fake_metrics(const rc_adapter_t *ad, rc_metric_emit_fn emit,
                         void *ctx)
{
    (void)ad;
    emit(ctx, RC_METRIC_COUNTER, "fake_events_total", "Events.", 11);
    emit(ctx, RC_METRIC_GAUGE, "fake_up", "Up.", 1);
}

static void assert_has(const rc_buf_t *b, const char *line)
{
    if (!b->data || !strstr(b->data, line))
        fail_msg("missing: %s", line);
}

static void test_render_counters_and_gauges(void **state)
{
    rc_metrics_t m;
    rc_buf_t b = {0};

    (void)state;
    memset(&m, 0, sizeof(m));
    m.auth_timeouts = 3;
    m.drops[RC_DROP_NO_MEMORY] = 2;
    m.drops[RC_DROP_TOO_BIG] = 4;
    m.drain_clients_moved = 9;
    m.auth_failures[RC_AUTH_MISSING] = 3;
    rc_metrics_render(&m, &gauges, NULL, &b);
    assert_has(&b, "# TYPE roomcast_connections gauge\n"
                   "roomcast_connections 7\n");
    assert_has(&b, "roomcast_queue_bytes 1234\n");
    assert_has(&b, "roomcast_ready 0\n");
    assert_has(&b, "roomcast_draining 1\n");
    assert_has(&b, "# TYPE roomcast_auth_timeouts_total counter\n"
                   "roomcast_auth_timeouts_total 3\n");
    assert_has(&b, "roomcast_drain_clients_moved_total 9\n");
    assert_has(&b, "roomcast_drops_total{reason=\"no_memory\"} 2\n");
    assert_has(&b, "roomcast_drops_total{reason=\"too_big\"} 4\n");
    assert_has(&b, "roomcast_auth_failures_total{reason=\"missing\"} 3\n");
    assert_null(strstr(b.data, "bad_json"));
    assert_null(strstr(b.data, "fake_"));
    rc_buf_dispose(&b);
}

static void test_render_histogram_cumulative(void **state)
{
    rc_metrics_t m;
    rc_buf_t b = {0};

    (void)state;
    memset(&m, 0, sizeof(m));
    rc_metrics_observe_latency(&m, 50000);        /* 50 us: first bucket */
    rc_metrics_observe_latency(&m, 2000000);      /* 2 ms */
    rc_metrics_observe_latency(&m, 20000000000u); /* 20 s: +Inf */
    rc_metrics_render(&m, &gauges, NULL, &b);
    assert_has(&b,
               "roomcast_publish_deliver_seconds_bucket{le=\"0.0001\"} 1\n");
    assert_has(&b,
               "roomcast_publish_deliver_seconds_bucket{le=\"0.0025\"} 2\n");
    assert_has(&b, "roomcast_publish_deliver_seconds_bucket{le=\"10\"} 2\n");
    assert_has(&b, "roomcast_publish_deliver_seconds_bucket{le=\"+Inf\"} 3\n");
    assert_has(&b, "roomcast_publish_deliver_seconds_count 3\n");
    rc_buf_dispose(&b);
}

static void test_render_adapter_metrics(void **state)
{
    static const rc_adapter_ops_t ops = {.name = "fake",
                                         .metrics = fake_metrics};
    rc_adapter_t ad;
    rc_metrics_t m;
    rc_buf_t b = {0};

    (void)state;
    memset(&ad, 0, sizeof(ad));
    ad.ops = &ops;
    memset(&m, 0, sizeof(m));
    rc_metrics_render(&m, &gauges, &ad, &b);
    assert_has(&b, "# HELP roomcast_fake_events_total Events.\n"
                   "# TYPE roomcast_fake_events_total counter\n"
                   "roomcast_fake_events_total 11\n");
    assert_has(&b, "# TYPE roomcast_fake_up gauge\nroomcast_fake_up 1\n");
    rc_buf_dispose(&b);
}

static void test_render_stats(void **state)
{
    rc_metrics_t m;
    rc_buf_t b = {0};

    (void)state;
    memset(&m, 0, sizeof(m));
    m.deliveries = 40;
    m.frames_out = 30;
    m.writes = 20;
    rc_metrics_render_stats(&m, &gauges, &b);
    assert_has(&b, "\"node\":\"n1\"");
    assert_has(&b, "\"state\":\"draining\"");
    assert_has(&b, "\"adapter\":\"fake\"");
    assert_has(&b, "\"connections\":7");
    assert_has(&b, "\"memberships\":5");
    assert_has(&b, "\"deliveries\":40");
    assert_has(&b, "\"writes\":20");
    assert_int_equal(b.data[b.len - 1], '\n');
    rc_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_counters_and_gauges),
        cmocka_unit_test(test_render_histogram_cumulative),
        cmocka_unit_test(test_render_adapter_metrics),
        cmocka_unit_test(test_render_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

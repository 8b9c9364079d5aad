/* Unit tests of gateway/agg.c: Prometheus text summed over workers
 * (counters, gauges, histograms, labels), the yes/no gauges the supervisor
 * sets instead of summing, the monotonic (retired) mode, and input it must
 * skip without losing the good lines around it.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "gateway/agg.h"

/* The rendering of the sum of texts (each added with monotonic mono). */
static char *sum_of(bool mono, const char *const *texts, size_t n)
{
    rc_agg_t *a = rc_agg_create();
    rc_buf_t out = {0};
    char *s;

    for (size_t i = 0; i < n; i++)
        rc_agg_add(a, texts[i], strlen(texts[i]), mono);
    rc_agg_render(a, &out);
    rc_agg_destroy(a);
    s = strndup(out.data ? out.data : "", out.len);
    assert_non_null(s);
    rc_buf_dispose(&out);
    return s;
}

#define SUM(mono, ...)                                                         \
    sum_of(mono, (const char *const[]){__VA_ARGS__},                           \
           sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

static void expect(char *got, const char *want)
{
    assert_string_equal(got, want);
    free(got);
}

static void test_counters_summed(void **state)
{
    const char *w = "# HELP rc_msgs_total Messages.\n"
                    "# TYPE rc_msgs_total counter\n"
                    "rc_msgs_total 3\n";
    const char *w2 = "# HELP rc_msgs_total Messages.\n"
                     "# TYPE rc_msgs_total counter\n"
                     "rc_msgs_total 4\n";
    (void)state;

    expect(SUM(false, w, w2), "# HELP rc_msgs_total Messages.\n"
                              "# TYPE rc_msgs_total counter\n"
                              "rc_msgs_total 7\n");
    /* One worker alone: the same text back. */
    expect(SUM(false, w), w);
}

static void test_gauges_summed(void **state)
{
    const char *w = "# HELP rc_conns Connections.\n# TYPE rc_conns gauge\n"
                    "rc_conns 15000\n";
    const char *w2 = "# HELP rc_conns Connections.\n# TYPE rc_conns gauge\n"
                     "rc_conns 16001\n";
    (void)state;

    expect(SUM(false, w, w2, w),
           "# HELP rc_conns Connections.\n# TYPE rc_conns gauge\n"
           "rc_conns 46001\n");
}

static void test_histogram_summed(void **state)
{
    const char *w = "# HELP rc_lat_seconds Latency.\n"
                    "# TYPE rc_lat_seconds histogram\n"
                    "rc_lat_seconds_bucket{le=\"0.001\"} 1\n"
                    "rc_lat_seconds_bucket{le=\"0.01\"} 3\n"
                    "rc_lat_seconds_bucket{le=\"+Inf\"} 4\n"
                    "rc_lat_seconds_sum 0.25\n"
                    "rc_lat_seconds_count 4\n";
    const char *w2 = "# HELP rc_lat_seconds Latency.\n"
                     "# TYPE rc_lat_seconds histogram\n"
                     "rc_lat_seconds_bucket{le=\"0.001\"} 0\n"
                     "rc_lat_seconds_bucket{le=\"0.01\"} 2\n"
                     "rc_lat_seconds_bucket{le=\"+Inf\"} 5\n"
                     "rc_lat_seconds_sum 0.5\n"
                     "rc_lat_seconds_count 5\n";
    (void)state;

    expect(SUM(false, w, w2), "# HELP rc_lat_seconds Latency.\n"
                              "# TYPE rc_lat_seconds histogram\n"
                              "rc_lat_seconds_bucket{le=\"0.001\"} 1\n"
                              "rc_lat_seconds_bucket{le=\"0.01\"} 5\n"
                              "rc_lat_seconds_bucket{le=\"+Inf\"} 9\n"
                              "rc_lat_seconds_sum 0.75\n"
                              "rc_lat_seconds_count 9\n");
}

static void test_labels(void **state)
{
    /* Same labels sum, others stay apart; a quoted value may hold spaces,
     * braces and escaped quotes. */
    const char *w = "# TYPE rc_drops_total counter\n"
                    "rc_drops_total{reason=\"slow\"} 2\n"
                    "rc_drops_total{reason=\"a b} \\\"c\\\"\"} 1\n";
    const char *w2 = "# TYPE rc_drops_total counter\n"
                     "rc_drops_total{reason=\"limit\"} 5\n"
                     "rc_drops_total{reason=\"slow\"} 3\n"
                     "rc_drops_total{reason=\"a b} \\\"c\\\"\"} 10\n";
    (void)state;

    expect(SUM(false, w, w2), "# TYPE rc_drops_total counter\n"
                              "rc_drops_total{reason=\"slow\"} 5\n"
                              "rc_drops_total{reason=\"a b} \\\"c\\\"\"} 11\n"
                              "rc_drops_total{reason=\"limit\"} 5\n");
}

static void test_families_first_seen(void **state)
{
    /* Families keep the order they were first seen in, each whole, with
     * its HELP and TYPE once; a family only the second worker has comes
     * last. */
    const char *w = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
                    "# HELP b B.\n# TYPE b gauge\nb 2\n";
    const char *w2 = "# HELP c C.\n# TYPE c gauge\nc 7\n"
                     "# HELP b B.\n# TYPE b gauge\nb 3\n"
                     "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
    (void)state;

    expect(SUM(false, w, w2), "# HELP a_total A.\n# TYPE a_total counter\n"
                              "a_total 2\n"
                              "# HELP b B.\n# TYPE b gauge\nb 5\n"
                              "# HELP c C.\n# TYPE c gauge\nc 7\n");
}

static void test_yes_no_gauges_set(void **state)
{
    /* The supervisor does not sum ready, draining and redis_up: it sets
     * them after the sum (supervisor.c render_metrics). */
    const char *w = "# TYPE roomcast_ready gauge\nroomcast_ready 1\n"
                    "# TYPE roomcast_draining gauge\nroomcast_draining 0\n"
                    "# TYPE roomcast_redis_up gauge\nroomcast_redis_up 1\n"
                    "# TYPE roomcast_connections gauge\n"
                    "roomcast_connections 10\n";
    const char *w2 = "# TYPE roomcast_ready gauge\nroomcast_ready 1\n"
                     "# TYPE roomcast_draining gauge\nroomcast_draining 0\n"
                     "# TYPE roomcast_redis_up gauge\nroomcast_redis_up 0\n"
                     "# TYPE roomcast_connections gauge\n"
                     "roomcast_connections 12\n";
    rc_agg_t *a = rc_agg_create();
    rc_buf_t out = {0};
    (void)state;

    rc_agg_add(a, w, strlen(w), false);
    rc_agg_add(a, w2, strlen(w2), false);
    rc_agg_set(a, "roomcast_ready", 1);
    rc_agg_set(a, "roomcast_draining", 0);
    rc_agg_set(a, "roomcast_redis_up", 0);
    rc_agg_set(a, "roomcast_absent", 5); /* not there: nothing added */
    rc_agg_render(a, &out);
    assert_non_null(out.data);
    assert_string_equal(out.data,
                        "# TYPE roomcast_ready gauge\nroomcast_ready 1\n"
                        "# TYPE roomcast_draining gauge\nroomcast_draining 0\n"
                        "# TYPE roomcast_redis_up gauge\nroomcast_redis_up 0\n"
                        "# TYPE roomcast_connections gauge\n"
                        "roomcast_connections 22\n");
    rc_buf_dispose(&out);
    rc_agg_destroy(a);
}

static void test_monotonic_keeps_counters_and_histograms(void **state)
{
    /* What a dead worker leaves behind: its counters and histograms, not
     * its gauges. */
    const char *w = "# TYPE c_total counter\nc_total 5\n"
                    "# TYPE g gauge\ng 100\n"
                    "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                    "h_count 2\n"
                    "untyped_x 9\n";
    (void)state;

    expect(SUM(true, w), "# TYPE c_total counter\nc_total 5\n"
                         "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\n"
                         "h_sum 1\nh_count 2\n");
}

static void test_retired_sum_rendered_and_added(void **state)
{
    /* The supervisor renders its retired sum and adds it to the live
     * workers' text: the rendering must read back as the same series. */
    const char *dead = "# HELP c_total C.\n# TYPE c_total counter\n"
                       "c_total{k=\"v\"} 5\n# TYPE g gauge\ng 3\n";
    const char *live = "# HELP c_total C.\n# TYPE c_total counter\n"
                       "c_total{k=\"v\"} 2\n# TYPE g gauge\ng 4\n";
    rc_agg_t *retired = rc_agg_create(), *a = rc_agg_create();
    rc_buf_t r = {0}, out = {0};
    (void)state;

    rc_agg_add(retired, dead, strlen(dead), true);
    rc_agg_render(retired, &r);
    rc_agg_add(a, live, strlen(live), false);
    rc_agg_add(a, r.data, r.len, true);
    rc_agg_render(a, &out);
    assert_string_equal(out.data, "# HELP c_total C.\n# TYPE c_total counter\n"
                                  "c_total{k=\"v\"} 7\n# TYPE g gauge\ng 4\n");
    rc_buf_dispose(&r);
    rc_buf_dispose(&out);
    rc_agg_destroy(retired);
    rc_agg_destroy(a);
}

static void test_untyped_sample_is_its_own_family(void **state)
{
    /* A sample whose name only starts with the current family's name is
     * not one of its series (those are name, name_bucket, name_sum,
     * name_count): it must not render under that family's TYPE, nor count
     * as a counter in monotonic mode. */
    const char *w = "# TYPE rc_conns gauge\nrc_conns 1\nrc_conns_peak 9\n";
    const char *c = "# TYPE rc_msgs_total counter\nrc_msgs_total 1\n"
                    "rc_msgs_total_extra 4\n";
    (void)state;

    expect(SUM(false, w, w),
           "# TYPE rc_conns gauge\nrc_conns 2\nrc_conns_peak 18\n");
    expect(SUM(true, c), "# TYPE rc_msgs_total counter\nrc_msgs_total 1\n");
}

static void test_malformed_lines_skipped(void **state)
{
    char longline[2048];
    char *text;
    size_t n;
    (void)state;

    memset(longline, 'x', sizeof(longline));
    memcpy(longline + sizeof(longline) - 4, " 1\n", 4);
    n = strlen("# TYPE ok_total counter\n") + sizeof(longline) + 1024;
    text = malloc(n);
    assert_non_null(text);
    snprintf(text, n,
             "# TYPE ok_total counter\n"
             "ok_total 1\n"
             "\n"
             "# a comment\n"
             "#TYPE ok_total gauge\n"
             "# TYPE\n"
             "# TYPE broken\n"
             "novalue\n"
             "novalue2 \n"
             "word abc\n"
             "trailing 12abc\n"
             "two 1 2 3\n"
             "{x=\"1\"} 4\n"
             "open{x=\"1\" 4\n"
             "openq{x=\"1} 4\n"
             "%s"
             "ok_total 2",
             longline); /* the last line has no newline */
    expect(SUM(false, text), "# TYPE ok_total counter\nok_total 3\n");
    free(text);
    /* Nothing at all, or only junk. */
    expect(SUM(false, ""), "");
    expect(SUM(false, "\n\n# x\n"), "");
}

static void test_timestamps_crlf_and_specials(void **state)
{
    /* An optional timestamp after the value is not the value; CR before
     * LF is whitespace; NaN and infinities keep the exposition's
     * spelling. */
    const char *w = "# TYPE t gauge\r\nt 2 1700000000000\r\n"
                    "# TYPE n gauge\nn NaN\n"
                    "# TYPE i gauge\ni +Inf\n"
                    "# TYPE m gauge\nm -Inf\n"
                    "# TYPE f gauge\nf 0.125\n";
    (void)state;

    expect(SUM(false, w, w), "# TYPE t gauge\nt 4\n"
                             "# TYPE n gauge\nn NaN\n"
                             "# TYPE i gauge\ni +Inf\n"
                             "# TYPE m gauge\nm -Inf\n"
                             "# TYPE f gauge\nf 0.25\n");
}

static void test_destroy_null(void **state)
{
    (void)state;
    rc_agg_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_summed),
        cmocka_unit_test(test_gauges_summed),
        cmocka_unit_test(test_histogram_summed),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_families_first_seen),
        cmocka_unit_test(test_yes_no_gauges_set),
        cmocka_unit_test(test_monotonic_keeps_counters_and_histograms),
        cmocka_unit_test(test_retired_sum_rendered_and_added),
        cmocka_unit_test(test_untyped_sample_is_its_own_family),
        cmocka_unit_test(test_malformed_lines_skipped),
        cmocka_unit_test(test_timestamps_crlf_and_specials),
        cmocka_unit_test(test_destroy_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

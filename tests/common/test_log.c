/* Unit tests of common/log.c: every value rc_log prints is escaped, so one
 * call is one line whatever the data (control-channel payloads and Redis
 * error strings reach the log). stderr is redirected to a temp file.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

typedef struct capture {
    int saved;
    FILE *tmp;
    char out[4096];
} capture_t;

static int cap_setup(void **state)
{
    capture_t *c = calloc(1, sizeof(*c));

    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), STDERR_FILENO) >= 0);
    rc_log_set_level(RC_LOG_DEBUG);
    *state = c;
    return 0;
}

static int cap_teardown(void **state)
{
    capture_t *c = *state;

    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    fclose(c->tmp);
    free(c);
    rc_log_set_level(RC_LOG_INFO);
    return 0;
}

/* Everything written since the last call, without the "ts=... level=..."
 * head: from "event=" on. */
static const char *captured(capture_t *c)
{
    size_t n;
    char *ev;

    fflush(c->tmp);
    rewind(c->tmp);
    n = fread(c->out, 1, sizeof(c->out) - 1, c->tmp);
    c->out[n] = '\0';
    rewind(c->tmp);
    assert_int_equal(ftruncate(fileno(c->tmp), 0), 0);
    ev = strstr(c->out, "event=");
    assert_non_null(ev);
    return ev;
}

static size_t count_char(const char *s, char ch)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == ch;
    return n;
}

static void test_plain_values_unchanged(void **state)
{
    capture_t *c = *state;

    rc_log(RC_LOG_INFO, "conn_open",
           "peer=%s conns=%u id=%016" PRIx64 " n=%zu d=%d", "127.0.0.1:5000",
           7u, (uint64_t)0xabc, (size_t)42, -3);
    assert_string_equal(captured(c), "event=conn_open peer=127.0.0.1:5000 "
                                     "conns=7 id=0000000000000abc n=42 d=-3\n");
}

/* The forged-line attack: a control payload with a newline and a fake
 * key=value line after it. */
static void test_newline_in_unquoted_value(void **state)
{
    capture_t *c = *state;
    const char *out;

    rc_log(RC_LOG_INFO, "redis_control", "cmd=%s",
           "drain\nts=2026 level=error event=pwned");
    out = captured(c);
    assert_string_equal(out, "event=redis_control cmd=\"drain\\nts=2026 "
                             "level=error event=pwned\"\n");
    assert_int_equal(count_char(out, '\n'), 1);
}

static void test_quoted_value_escaped(void **state)
{
    capture_t *c = *state;

    rc_log(RC_LOG_WARN, "redis_error", "what=%s err=\"%s\"", "command",
           "ERR \"bad\" \\ \r\n\t\x01\x7f end");
    assert_string_equal(
        captured(c), "event=redis_error what=command "
                     "err=\"ERR \\\"bad\\\" \\\\ \\r\\n\\t\\x01\\x7f end\"\n");
}

static void test_unquoted_value_with_space_or_equals(void **state)
{
    capture_t *c = *state;

    rc_log(RC_LOG_INFO, "x", "a=%s b=%s c=%s d=%s", "two words", "k=v", "",
           "ok");
    assert_string_equal(captured(c),
                        "event=x a=\"two words\" b=\"k=v\" c=\"\" d=ok\n");
}

static void test_precision_char_and_percent(void **state)
{
    capture_t *c = *state;

    rc_log(RC_LOG_INFO, "x", "s=%.*s t=%.3s ch=%c pct=100%% p=%5d", 4,
           "ab\ncdef", "xyzzy", '\n', 12);
    assert_string_equal(captured(c),
                        "event=x s=\"ab\\nc\" t=xyz ch=\"\\n\" pct=100% "
                        "p=\"   12\"\n");
}

static void test_null_string(void **state)
{
    capture_t *c = *state;
    /* volatile: gcc would (rightly) refuse a literal NULL for %s. */
    const char *volatile none = NULL;

    rc_log(RC_LOG_INFO, "x", "s=%s", none);
    assert_string_equal(captured(c), "event=x s=(null)\n");
}

/* A value past the line bound is cut on a whole escape, the quote closed,
 * and the line still ends in exactly one newline. */
static void test_truncation_keeps_one_line(void **state)
{
    capture_t *c = *state;
    char big[3000];
    const char *out;
    size_t n;

    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = i % 3 == 0 ? '\n' : 'a';
    big[sizeof(big) - 1] = '\0';
    rc_log(RC_LOG_INFO, "x", "v=\"%s\" tail=%d", big, 1);
    out = captured(c);
    n = strlen(c->out);
    assert_true(n <= 1024);
    assert_int_equal(count_char(c->out, '\n'), 1);
    assert_int_equal(c->out[n - 1], '\n');
    assert_int_equal(c->out[n - 2], '"');
    /* No half escape before the closing quote: "\\" then 'n' or 'a'. */
    assert_true(c->out[n - 3] == 'n' || c->out[n - 3] == 'a');
    assert_null(strstr(out, "tail="));
}

static void test_level_threshold(void **state)
{
    capture_t *c = *state;

    rc_log_set_level(RC_LOG_WARN);
    rc_log(RC_LOG_INFO, "hidden", "a=%d", 1);
    rc_log(RC_LOG_WARN, "shown", "a=%d", 2);
    assert_string_equal(captured(c), "event=shown a=2\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_values_unchanged, cap_setup,
                                        cap_teardown),
        cmocka_unit_test_setup_teardown(test_newline_in_unquoted_value,
                                        cap_setup, cap_teardown),
        cmocka_unit_test_setup_teardown(test_quoted_value_escaped, cap_setup,
                                        cap_teardown),
        cmocka_unit_test_setup_teardown(
            test_unquoted_value_with_space_or_equals, cap_setup, cap_teardown),
        cmocka_unit_test_setup_teardown(test_precision_char_and_percent,
                                        cap_setup, cap_teardown),
        cmocka_unit_test_setup_teardown(test_null_string, cap_setup,
                                        cap_teardown),
        cmocka_unit_test_setup_teardown(test_truncation_keeps_one_line,
                                        cap_setup, cap_teardown),
        cmocka_unit_test_setup_teardown(test_level_threshold, cap_setup,
                                        cap_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

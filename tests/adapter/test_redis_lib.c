/* Unit tests of adapter/redis_lib.c: the function library built from the
 * embedded adapter/roomcast.lua has every placeholder filled in with the
 * node's prefix and sizes, keeps its shebang first, and is refused for a
 * prefix that could break out of its Lua string. (Redis itself runs it in
 * tests/integration/test_redis.py.)
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "adapter/redis_internal.h"

static void test_filled_in(void **state)
{
    char *lib = rc__redis_library("pre:", 100, 300000, 65536, "00ff", false);

    (void)state;
    assert_non_null(lib);
    assert_int_equal(strncmp(lib, "#!lua name=roomcast\n", 20), 0);
    assert_non_null(strstr(lib, "local P = 'pre:'"));
    assert_non_null(strstr(lib, "local HSIZE = 100 "));
    assert_non_null(strstr(lib, "local TTL = 300000 "));
    assert_non_null(strstr(lib, "local MAXB = 65536 "));
    assert_non_null(strstr(lib, "local K = '00ff'"));
    assert_non_null(strstr(lib, "local PUB = 'PUBLISH'"));
    /* no placeholder is left: "@" + an upper-case name + "@" */
    for (const char *p = strchr(lib, '@'); p; p = strchr(p + 1, '@'))
        assert_false(p[1] >= 'A' && p[1] <= 'Z');
    assert_non_null(strstr(lib, "'roomcast_publish'"));
    assert_non_null(strstr(lib, "'roomcast_resume'"));
    assert_non_null(strstr(lib, "function_name='roomcast_history'"));
    free(lib);
}

static void test_empty_prefix_and_large_sizes(void **state)
{
    char *lib =
        rc__redis_library("", 4294967295u, INT64_MAX, 16777216, NULL, true);

    (void)state;
    assert_non_null(lib);
    assert_non_null(strstr(lib, "local P = ''"));
    /* Redis Cluster: sharded pub/sub */
    assert_non_null(strstr(lib, "local PUB = 'SPUBLISH'"));
    assert_non_null(strstr(lib, "local HSIZE = 4294967295 "));
    assert_non_null(strstr(lib, "local TTL = 9223372036854775807 "));
    free(lib);
}

static void test_bad_prefix(void **state)
{
    (void)state;
    assert_null(rc__redis_library("a'b", 1, 1, 1, NULL, false));
    assert_null(rc__redis_library("a\\b", 1, 1, 1, NULL, false));
    assert_null(rc__redis_library("a{b", 1, 1, 1, NULL, false));
    assert_null(rc__redis_library("p:", 1, 1, 1, "zz'", false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filled_in),
        cmocka_unit_test(test_empty_prefix_and_large_sizes),
        cmocka_unit_test(test_bad_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

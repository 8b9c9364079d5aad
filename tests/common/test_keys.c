/* Unit tests of common/keys.c: every name of the key layout (docs/REDIS.md),
 * the bound on the caller's buffer, the registry pattern's escaping, and
 * reading a room channel and a registry key back.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/keys.h"

static void test_names(void **state)
{
    char b[RC_KEYS_MAX];

    (void)state;
    assert_int_equal(rc_keys_room(b, sizeof(b), "roomcast:", "chat:lobby"),
                     RC_OK);
    assert_string_equal(b, "roomcast:{chat:lobby}");
    assert_int_equal(rc_keys_session(b, sizeof(b), "p:", "00ff"), RC_OK);
    assert_string_equal(b, "p:sess:{00ff}");
    assert_int_equal(rc_keys_node(b, sizeof(b), "p:", "web-1"), RC_OK);
    assert_string_equal(b, "p:node:web-1");
    assert_int_equal(rc_keys_ctl(b, sizeof(b), "p:", "web-1"), RC_OK);
    assert_string_equal(b, "p:ctl:web-1");
    assert_int_equal(rc_keys_probe(b, sizeof(b), "", "web-1"), RC_OK);
    assert_string_equal(b, "probe:web-1");
}

static void test_bound(void **state)
{
    char b[8];

    (void)state;
    /* "p:{abcd}" is 8 bytes: no room for the NUL */
    assert_int_equal(rc_keys_room(b, sizeof(b), "p:", "abcd"), RC_ELIMIT);
    assert_string_equal(b, "");
    assert_int_equal(rc_keys_room(b, sizeof(b), "p:", "abc"), RC_OK);
    assert_string_equal(b, "p:{abc}");
    assert_int_equal(rc_keys_registry_pattern(b, sizeof(b), "a*b"), RC_ELIMIT);
    assert_int_equal(rc_keys_registry_pattern(b, 0, "a"), RC_ELIMIT);
}

static void test_registry_pattern(void **state)
{
    char b[RC_KEYS_MAX];

    (void)state;
    assert_int_equal(rc_keys_registry_pattern(b, sizeof(b), "roomcast:"),
                     RC_OK);
    assert_string_equal(b, "roomcast:node:*");
    assert_int_equal(rc_keys_registry_pattern(b, sizeof(b), "a*b?[-]^\\"),
                     RC_OK);
    assert_string_equal(b, "a\\*b\\?\\[\\-\\]\\^\\\\node:*");
}

static void test_read_back(void **state)
{
    const char *ch = "roomcast:{chat:lobby}", *room;
    size_t rlen = 0;

    (void)state;
    room = rc_keys_room_of("roomcast:", ch, strlen(ch), &rlen);
    assert_non_null(room);
    assert_int_equal(rlen, 10);
    assert_memory_equal(room, "chat:lobby", 10);
    assert_null(rc_keys_room_of("other:", ch, strlen(ch), &rlen));
    assert_null(rc_keys_room_of("roomcast:", "roomcast:ctl:a", 14, &rlen));
    assert_null(rc_keys_room_of("roomcast:", "roomcast:{}", 11, &rlen));
    assert_string_equal(rc_keys_node_id_of("roomcast:", "roomcast:node:w1"),
                        "w1");
    assert_null(rc_keys_node_id_of("roomcast:", "roomcast:ctl:w1"));
    assert_null(rc_keys_node_id_of("x:", "roomcast:node:w1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_registry_pattern),
        cmocka_unit_test(test_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

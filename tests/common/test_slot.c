/* Tests of common/slot.c: CRC16/XMODEM and key -> slot with hash tags. The
 * expected slots were read from a real redis-server 7.0.15 with
 * --cluster-enabled yes (`CLUSTER KEYSLOT <key>`).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/slot.h"

static void test_crc16_check_value(void **state)
{
    (void)state;
    /* The CRC-16/XMODEM check value, and Redis's own crc16 test vector. */
    assert_int_equal(rc_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(rc_slot_crc16("", 0), 0);
}

static const struct {
    const char *key;
    unsigned slot;
} vectors[] = {
    {"foo", 12182},
    {"bar", 5061},
    {"", 0},
    {"123456789", 12739},
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"foo{}{bar}", 8363},    /* empty tag: the whole key */
    {"foo{{bar}}zap", 4015}, /* the tag is "{bar" */
    {"foo{bar}{zap}", 5061}, /* the first tag only: "bar" */
    {"{}", 15257},
    {"{", 4092},
    {"}", 12090},
    {"a{b", 13340}, /* no closing brace: the whole key */
    {"roomcast:{chat:lobby}", 9590},
    {"roomcast:{chat:lobby}:hist", 9590},
    {"roomcast:sess:{abc}", 7638},
    {"x{y}", 12222},
    {"{a}{b}", 15495},
    {"}{a}", 15495}, /* a '}' before the first '{' is no closer */
    {"hello world", 15332},
    {"key:0", 2592},
    {"key:1", 6657},
    {"key:2", 10850},
};

static void test_known_slots(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        unsigned got = rc_slot_of(vectors[i].key, strlen(vectors[i].key));
        if (got != vectors[i].slot)
            fail_msg("key \"%s\": slot %u, Redis says %u", vectors[i].key, got,
                     vectors[i].slot);
    }
}

static void test_tag(void **state)
{
    size_t n;
    const char *t;

    (void)state;
    t = rc_slot_tag("roomcast:{chat:lobby}:hist", 26, &n);
    assert_int_equal(n, 10);
    assert_memory_equal(t, "chat:lobby", 10);
    t = rc_slot_tag("foo{}{bar}", 10, &n);
    assert_int_equal(n, 10); /* the whole key */
    t = rc_slot_tag("foo{{bar}}zap", 13, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(t, "{bar", 4);
}

static void test_binary_and_length(void **state)
{
    static const char k[] = {'a', '\0', '{', 'y', '}', 'z'};

    (void)state;
    /* Bytes after len are not read; NUL is an ordinary byte. */
    assert_int_equal(rc_slot_of("x{y}zzz", 4), 12222);
    assert_int_equal(rc_slot_of(k, sizeof(k)), rc_slot_of("y", 1));
    assert_int_equal(rc_slot_of("{y", 2), rc_slot_of("{y", 2));
    assert_true(rc_slot_of("{y", 2) != rc_slot_of("y", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_known_slots),
        cmocka_unit_test(test_tag),
        cmocka_unit_test(test_binary_and_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

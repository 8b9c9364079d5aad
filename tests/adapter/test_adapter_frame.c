/* Unit tests of adapter/adapter.c: the `msg` frame every adapter shares,
 * durable and ephemeral, byte for byte.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/adapter.h"
#include "common/mem.h"

/* m is one unmasked final text frame whose payload is want[0..wlen). */
static void assert_frame(const rc_msg_t *m, const char *want, size_t wlen)
{
    const unsigned char *b = rc_msg_bytes(m);
    size_t h;

    assert_int_equal(b[0], 0x81);
    if (wlen <= 125) {
        assert_int_equal(b[1], wlen);
        h = 2;
    } else if (wlen <= 0xffff) {
        assert_int_equal(b[1], 126);
        assert_int_equal(((size_t)b[2] << 8) | b[3], wlen);
        h = 4;
    } else {
        uint64_t n = 0;
        assert_int_equal(b[1], 127);
        for (int i = 0; i < 8; i++)
            n = (n << 8) | b[2 + i];
        assert_int_equal(n, wlen);
        h = 10;
    }
    assert_int_equal(m->len, h + wlen);
    if (memcmp(b + h, want, wlen) != 0)
        fail_msg("payload \"%.*s\", expected \"%.*s\"", (int)wlen,
                 (const char *)b + h, (int)wlen, want);
}

static void test_durable(void **state)
{
    const char *data = "{\"text\":\"hi\"}";
    rc_msg_t *m =
        rc_adapter_frame_msg("chat:1", 42, data, strlen(data), 123456789);
    const char *want =
        "{\"op\":\"msg\",\"room\":\"chat:1\",\"seq\":42,\"data\":{\"text\":"
        "\"hi\"}}";

    (void)state;
    assert_non_null(m);
    assert_frame(m, want, strlen(want));
    assert_int_equal(m->seq, 42);
    assert_int_equal(m->t_pub_ns, 123456789);
    assert_int_equal(m->refs, 1);
    rc_msg_unref(m);
}

static void test_ephemeral(void **state)
{
    const char *data = "[1,2,3]";
    rc_msg_t *m = rc_adapter_frame_msg("typing/42", 0, data, strlen(data), 0);
    const char *want =
        "{\"op\":\"msg\",\"room\":\"typing/42\",\"data\":[1,2,3]}";

    (void)state;
    assert_non_null(m);
    /* seq 0: ephemeral, no seq field at all. */
    assert_frame(m, want, strlen(want));
    assert_int_equal(m->seq, 0);
    assert_int_equal(m->t_pub_ns, 0);
    rc_msg_unref(m);
}

static void test_scalar_data(void **state)
{
    rc_msg_t *m = rc_adapter_frame_msg("r", 1, "\"s\"", 3, 0);
    rc_msg_t *n = rc_adapter_frame_msg("r", 0, "null", 4, 0);
    const char *want_m =
        "{\"op\":\"msg\",\"room\":\"r\",\"seq\":1,\"data\":\"s\"}";
    const char *want_n = "{\"op\":\"msg\",\"room\":\"r\",\"data\":null}";

    (void)state;
    assert_non_null(m);
    assert_non_null(n);
    assert_frame(m, want_m, strlen(want_m));
    assert_frame(n, want_n, strlen(want_n));
    rc_msg_unref(m);
    rc_msg_unref(n);
}

static void test_data_is_len_bytes(void **state)
{
    /* data is len bytes, not a C string: nothing past len is copied. */
    const char data[] = "{\"a\":1}TRAILING";
    rc_msg_t *m = rc_adapter_frame_msg("r", 7, data, 7, 0);
    const char *want =
        "{\"op\":\"msg\",\"room\":\"r\",\"seq\":7,\"data\":{\"a\":1}}";

    (void)state;
    assert_non_null(m);
    assert_frame(m, want, strlen(want));
    rc_msg_unref(m);
}

static void test_widest_seq_and_room(void **state)
{
    char room[129], want[512];
    rc_msg_t *m;

    (void)state;
    /* The largest fixed parts: 20-digit seq, 128-byte room. */
    memset(room, 'R', 128);
    room[128] = '\0';
    m = rc_adapter_frame_msg(room, UINT64_MAX, "0", 1, UINT64_MAX);
    assert_non_null(m);
    snprintf(want, sizeof(want),
             "{\"op\":\"msg\",\"room\":\"%s\",\"seq\":18446744073709551615,"
             "\"data\":0}",
             room);
    assert_frame(m, want, strlen(want));
    assert_int_equal(m->seq, UINT64_MAX);
    assert_int_equal(m->t_pub_ns, UINT64_MAX);
    rc_msg_unref(m);
}

static void test_large_data(void **state)
{
    /* 70000 bytes of data: a 64-bit length header. */
    size_t n = 70000;
    char *data = malloc(n);
    char *want;
    size_t wlen;
    rc_msg_t *m;

    (void)state;
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'd', n - 2);
    data[n - 1] = '"';
    want = malloc(n + 64);
    assert_non_null(want);
    wlen = (size_t)snprintf(want, 64,
                            "{\"op\":\"msg\",\"room\":\"big\","
                            "\"seq\":3,\"data\":");
    memcpy(want + wlen, data, n);
    want[wlen + n] = '}';
    wlen += n + 1;
    m = rc_adapter_frame_msg("big", 3, data, n, 0);
    assert_non_null(m);
    assert_frame(m, want, wlen);
    rc_msg_unref(m);
    free(want);
    free(data);
}

static void test_shared_by_refcount(void **state)
{
    rc_msg_t *m = rc_adapter_frame_msg("r", 5, "{}", 2, 0);

    (void)state;
    assert_non_null(m);
    /* Framed once, shared: a second holder takes a ref, not a copy. */
    assert_ptr_equal(rc_msg_ref(m), m);
    assert_int_equal(m->refs, 2);
    rc_msg_unref(m);
    rc_msg_unref(m);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    rc_mem_fail_after(1);
    assert_null(rc_adapter_frame_msg("r", 1, "{}", 2, 0));
    rc_mem_fail_after(0);
}

static void test_destroy_null(void **state)
{
    (void)state;
    rc_adapter_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durable),
        cmocka_unit_test(test_ephemeral),
        cmocka_unit_test(test_scalar_data),
        cmocka_unit_test(test_data_is_len_bytes),
        cmocka_unit_test(test_widest_seq_and_room),
        cmocka_unit_test(test_large_data),
        cmocka_unit_test(test_shared_by_refcount),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_destroy_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

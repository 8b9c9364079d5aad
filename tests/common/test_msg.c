/* Unit tests of gateway/msg.c: RFC 6455 server frame headers at every length
 * boundary, the one-step and two-step builds, and refcounting.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/msg.h"

#define SENTINEL 0xa5

/* Frames a header into a sentinel-filled buffer, checks its exact bytes and
 * that nothing past the returned length was written. */
static void check_header(int opcode, uint64_t plen, const unsigned char *want,
                         size_t want_len)
{
    unsigned char hdr[RC_MSG_MAX_HDR + 4];
    size_t n;

    memset(hdr, SENTINEL, sizeof(hdr));
    n = rc_msg_frame_header(hdr, opcode, plen);
    assert_int_equal(n, want_len);
    assert_memory_equal(hdr, want, want_len);
    for (size_t i = want_len; i < sizeof(hdr); i++)
        assert_int_equal(hdr[i], SENTINEL);
}

static void test_header_len_0(void **state)
{
    const unsigned char want[] = {0x81, 0x00};

    (void)state;
    check_header(RC_WS_OP_TEXT, 0, want, sizeof(want));
}

static void test_header_len_125(void **state)
{
    const unsigned char want[] = {0x81, 125};

    (void)state;
    check_header(RC_WS_OP_TEXT, 125, want, sizeof(want));
}

static void test_header_len_126(void **state)
{
    const unsigned char want[] = {0x81, 126, 0x00, 0x7e};

    (void)state;
    check_header(RC_WS_OP_TEXT, 126, want, sizeof(want));
}

static void test_header_len_65535(void **state)
{
    const unsigned char want[] = {0x81, 126, 0xff, 0xff};

    (void)state;
    check_header(RC_WS_OP_TEXT, 65535, want, sizeof(want));
}

static void test_header_len_65536(void **state)
{
    const unsigned char want[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};

    (void)state;
    check_header(RC_WS_OP_TEXT, 65536, want, sizeof(want));
}

static void test_header_len_64bit(void **state)
{
    /* Network byte order, most significant byte first. */
    const unsigned char want[] = {0x81, 127,  0x01, 0x23, 0x45,
                                  0x67, 0x89, 0xab, 0xcd, 0xef};
    const unsigned char want_max[] = {0x81, 127,  0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff};
    const unsigned char want_4g[] = {0x81, 127, 0, 0, 0, 0x01, 0, 0, 0, 0};

    (void)state;
    check_header(RC_WS_OP_TEXT, 0x0123456789abcdefULL, want, sizeof(want));
    check_header(RC_WS_OP_TEXT, UINT64_MAX, want_max, sizeof(want_max));
    check_header(RC_WS_OP_TEXT, 0x100000000ULL, want_4g, sizeof(want_4g));
}

static void test_header_opcodes(void **state)
{
    const unsigned char close_hdr[] = {0x88, 2};
    const unsigned char ping_hdr[] = {0x89, 0};
    /* Only the low 4 bits are the opcode: RSV bits stay clear. */
    const unsigned char masked[] = {0x8f, 1};

    (void)state;
    check_header(RC_WS_OP_CLOSE, 2, close_hdr, sizeof(close_hdr));
    check_header(RC_WS_OP_PING, 0, ping_hdr, sizeof(ping_hdr));
    check_header(0xff, 1, masked, sizeof(masked));
}

/* A payload of n bytes with a recognisable pattern. */
static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);

    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + 7);
    return p;
}

static void check_create(size_t plen, const unsigned char *hdr, size_t hlen)
{
    unsigned char *payload = pattern(plen);
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, payload, plen);

    assert_non_null(m);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->seq, 0);
    assert_int_equal(m->t_pub_ns, 0);
    assert_int_equal(m->len, hlen + plen);
    assert_memory_equal(rc_msg_bytes(m), hdr, hlen);
    if (plen)
        assert_memory_equal(rc_msg_bytes(m) + hlen, payload, plen);
    rc_msg_unref(m);
    free(payload);
}

static void test_create_len_0(void **state)
{
    const unsigned char hdr[] = {0x81, 0};

    (void)state;
    check_create(0, hdr, sizeof(hdr));
}

static void test_create_len_0_null_payload(void **state)
{
    rc_msg_t *m = rc_msg_create(RC_WS_OP_PING, NULL, 0);

    (void)state;
    assert_non_null(m);
    assert_int_equal(m->len, 2);
    assert_int_equal(rc_msg_bytes(m)[0], 0x89);
    assert_int_equal(rc_msg_bytes(m)[1], 0);
    rc_msg_unref(m);
}

static void test_create_len_125(void **state)
{
    const unsigned char hdr[] = {0x81, 125};

    (void)state;
    check_create(125, hdr, sizeof(hdr));
}

static void test_create_len_126(void **state)
{
    const unsigned char hdr[] = {0x81, 126, 0x00, 0x7e};

    (void)state;
    check_create(126, hdr, sizeof(hdr));
}

static void test_create_len_65535(void **state)
{
    const unsigned char hdr[] = {0x81, 126, 0xff, 0xff};

    (void)state;
    check_create(65535, hdr, sizeof(hdr));
}

static void test_create_len_65536(void **state)
{
    const unsigned char hdr[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};

    (void)state;
    check_create(65536, hdr, sizeof(hdr));
}

static void test_create_len_100000(void **state)
{
    /* 100000 = 0x000186a0 */
    const unsigned char hdr[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x86, 0xa0};

    (void)state;
    check_create(100000, hdr, sizeof(hdr));
}

static void test_create_close_opcode(void **state)
{
    const unsigned char want[] = {0x88, 0x02, 0x0f, 0xa9}; /* 4009 */
    rc_msg_t *m = rc_msg_create(RC_WS_OP_CLOSE, want + 2, 2);

    (void)state;
    assert_non_null(m);
    assert_int_equal(m->len, sizeof(want));
    assert_memory_equal(rc_msg_bytes(m), want, sizeof(want));
    rc_msg_unref(m);
}

static void test_create_alloc_failure(void **state)
{
    (void)state;
    rc_mem_fail_after(1);
    assert_null(rc_msg_create(RC_WS_OP_TEXT, "x", 1));
    /* The injection is spent: the next allocation works. */
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, "x", 1);
    assert_non_null(m);
    rc_msg_unref(m);
}

static void test_alloc_finish_short(void **state)
{
    const unsigned char want[] = {0x81, 5, 'h', 'e', 'l', 'l', 'o'};
    unsigned char *p = NULL;
    rc_msg_t *m = rc_msg_alloc(300, &p);

    (void)state;
    assert_non_null(m);
    assert_non_null(p);
    assert_int_equal(m->refs, 1);
    assert_int_equal(m->seq, 0);
    assert_int_equal(m->t_pub_ns, 0);
    /* The whole reserved capacity is writable. */
    memset(p, 'z', 300);
    memcpy(p, "hello", 5);
    rc_msg_finish(m, RC_WS_OP_TEXT, 5);
    assert_int_equal(m->len, sizeof(want));
    assert_memory_equal(rc_msg_bytes(m), want, sizeof(want));
    /* Header and payload are contiguous: the payload did not move. */
    assert_ptr_equal(rc_msg_bytes(m) + 2, p);
    rc_msg_unref(m);
}

static void test_alloc_finish_extended(void **state)
{
    unsigned char *p = NULL;
    rc_msg_t *m = rc_msg_alloc(70000, &p);
    const unsigned char hdr16[] = {0x81, 126, 0x01, 0x2c}; /* 300 */
    const unsigned char hdr64[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70};

    (void)state;
    assert_non_null(m);
    for (size_t i = 0; i < 70000; i++)
        p[i] = (unsigned char)i;
    rc_msg_finish(m, RC_WS_OP_TEXT, 300);
    assert_int_equal(m->len, 4 + 300);
    assert_memory_equal(rc_msg_bytes(m), hdr16, sizeof(hdr16));
    assert_ptr_equal(rc_msg_bytes(m) + 4, p);

    /* Framing again with another length rewrites the header in place. */
    rc_msg_finish(m, RC_WS_OP_TEXT, 70000);
    assert_int_equal(m->len, 10 + 70000);
    assert_memory_equal(rc_msg_bytes(m), hdr64, sizeof(hdr64));
    assert_ptr_equal(rc_msg_bytes(m) + 10, p);
    assert_int_equal(rc_msg_bytes(m)[10 + 69999], (unsigned char)69999);
    rc_msg_unref(m);
}

static void test_alloc_finish_empty(void **state)
{
    unsigned char *p = NULL;
    rc_msg_t *m = rc_msg_alloc(0, &p);

    (void)state;
    assert_non_null(m);
    rc_msg_finish(m, RC_WS_OP_TEXT, 0);
    assert_int_equal(m->len, 2);
    assert_int_equal(rc_msg_bytes(m)[0], 0x81);
    assert_int_equal(rc_msg_bytes(m)[1], 0);
    rc_msg_unref(m);
}

static void test_alloc_failure(void **state)
{
    unsigned char *p = NULL;

    (void)state;
    rc_mem_fail_after(1);
    assert_null(rc_msg_alloc(16, &p));
    rc_mem_fail_after(0);
}

static void test_refcount(void **state)
{
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, "abc", 3);

    (void)state;
    assert_non_null(m);
    assert_int_equal(m->refs, 1);
    assert_ptr_equal(rc_msg_ref(m), m);
    assert_int_equal(m->refs, 2);
    assert_ptr_equal(rc_msg_ref(m), m);
    assert_int_equal(m->refs, 3);
    rc_msg_unref(m);
    assert_int_equal(m->refs, 2);
    rc_msg_unref(m);
    assert_int_equal(m->refs, 1);
    /* The bytes stay valid while a ref is held. */
    assert_memory_equal(rc_msg_bytes(m) + 2, "abc", 3);
    rc_msg_unref(m); /* the last ref frees it: ASan/valgrind see no leak */
}

static void test_unref_null(void **state)
{
    (void)state;
    rc_msg_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_len_0),
        cmocka_unit_test(test_header_len_125),
        cmocka_unit_test(test_header_len_126),
        cmocka_unit_test(test_header_len_65535),
        cmocka_unit_test(test_header_len_65536),
        cmocka_unit_test(test_header_len_64bit),
        cmocka_unit_test(test_header_opcodes),
        cmocka_unit_test(test_create_len_0),
        cmocka_unit_test(test_create_len_0_null_payload),
        cmocka_unit_test(test_create_len_125),
        cmocka_unit_test(test_create_len_126),
        cmocka_unit_test(test_create_len_65535),
        cmocka_unit_test(test_create_len_65536),
        cmocka_unit_test(test_create_len_100000),
        cmocka_unit_test(test_create_close_opcode),
        cmocka_unit_test(test_create_alloc_failure),
        cmocka_unit_test(test_alloc_finish_short),
        cmocka_unit_test(test_alloc_finish_extended),
        cmocka_unit_test(test_alloc_finish_empty),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_unref_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

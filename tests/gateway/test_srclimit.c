/* Unit tests of gateway/srclimit.c: sockets per source address still
 * sending their request head (max_pending_per_source).
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "gateway/srclimit.h"

static struct sockaddr_storage v4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void test_bound_per_source(void **state)
{
    rc_srclimit_t t;
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");

    (void)state;
    rc_srclimit_init(&t, 3, 4000);
    for (int fd = 10; fd < 13; fd++)
        assert_true(rc_srclimit_admit(&t, fd, SA(a), 0));
    assert_false(rc_srclimit_admit(&t, 13, SA(a), 0)); /* the fourth */
    assert_int_equal(rc_srclimit_of_fd(&t, 10), 3);
    assert_int_equal(rc_srclimit_of_fd(&t, 13), 0); /* refused: not kept */
    /* another source is not held back */
    assert_true(rc_srclimit_admit(&t, 20, SA(b), 0));
    assert_int_equal(rc_srclimit_of_fd(&t, 20), 1);
    /* a whole head frees the slot; done twice, or for an unknown fd, is
     * a no-op */
    rc_srclimit_done(&t, 11);
    rc_srclimit_done(&t, 11);
    rc_srclimit_done(&t, 999);
    rc_srclimit_done(&t, -1);
    assert_int_equal(rc_srclimit_of_fd(&t, 10), 2);
    assert_true(rc_srclimit_admit(&t, 13, SA(a), 0));
    assert_false(rc_srclimit_admit(&t, 14, SA(a), 0));
    assert_int_equal(t.pending, 4);
    rc_srclimit_dispose(&t);
}

static void test_fd_reuse_and_age_release(void **state)
{
    rc_srclimit_t t;
    struct sockaddr_storage a = v4("10.0.0.1"), b = v4("10.0.0.2");

    (void)state;
    rc_srclimit_init(&t, 2, 4000);
    assert_true(rc_srclimit_admit(&t, 10, SA(a), 0));
    assert_true(rc_srclimit_admit(&t, 11, SA(a), 100));
    assert_false(rc_srclimit_admit(&t, 12, SA(a), 200));
    /* fd 10 closed unseen and accepted again, from b: a's count drops */
    assert_true(rc_srclimit_admit(&t, 10, SA(b), 300));
    assert_int_equal(rc_srclimit_of_fd(&t, 11), 1);
    assert_int_equal(rc_srclimit_of_fd(&t, 10), 1);
    /* past hold_ms the oldest no longer count (lws has cut them) */
    assert_true(rc_srclimit_admit(&t, 12, SA(a), 4150));
    assert_int_equal(rc_srclimit_of_fd(&t, 11), 0); /* admitted at 100 */
    assert_int_equal(rc_srclimit_of_fd(&t, 12), 1);
    assert_int_equal(rc_srclimit_of_fd(&t, 10), 1); /* admitted at 300 */
    assert_int_equal(t.pending, 2);
    rc_srclimit_dispose(&t);
}

static void test_address_forms(void **state)
{
    rc_srclimit_t t;
    struct sockaddr_storage a = v6("2001:db8:1:2::1"),
                            same64 = v6("2001:db8:1:2:ffff::9"),
                            other64 = v6("2001:db8:1:3::1"),
                            mapped = v6("::ffff:10.0.0.1"),
                            plain = v4("10.0.0.1");
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};

    (void)state;
    rc_srclimit_init(&t, 1, 4000);
    assert_true(rc_srclimit_admit(&t, 1, SA(a), 0));
    assert_false(rc_srclimit_admit(&t, 2, SA(same64), 0)); /* one /64 */
    assert_true(rc_srclimit_admit(&t, 3, SA(other64), 0));
    assert_true(rc_srclimit_admit(&t, 4, SA(mapped), 0));
    assert_false(rc_srclimit_admit(&t, 5, SA(plain), 0)); /* the same v4 */
    /* no IP address: never refused, not counted */
    assert_true(rc_srclimit_admit(&t, 6, &unix_sa, 0));
    assert_true(rc_srclimit_admit(&t, 7, NULL, 0));
    assert_int_equal(t.pending, 3);
    rc_srclimit_dispose(&t);
}

static void test_off_records_nothing(void **state)
{
    rc_srclimit_t t;
    struct sockaddr_storage a = v4("10.0.0.1");

    (void)state;
    rc_srclimit_init(&t, 0, 4000);
    for (int fd = 0; fd < 1000; fd++)
        assert_true(rc_srclimit_admit(&t, fd, SA(a), 0));
    assert_int_equal(t.pending, 0);
    assert_int_equal(rc_srclimit_of_fd(&t, 5), 0);
    rc_srclimit_done(&t, 5);
    rc_srclimit_dispose(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_per_source),
        cmocka_unit_test(test_fd_reuse_and_age_release),
        cmocka_unit_test(test_address_forms),
        cmocka_unit_test(test_off_records_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

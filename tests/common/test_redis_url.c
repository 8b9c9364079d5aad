/* Unit tests of common/redis_url.c: the three URL forms of PROTOCOL.md 5.1
 * (redis://, redis-sentinel://, redis-cluster://), good and bad, and the key
 * prefix check.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/redis_url.h"

static rc_redis_url_t parse_ok(const char *s)
{
    rc_redis_url_t u;

    memset(&u, 0x5a, sizeof(u));
    if (rc_redis_url_parse(s, &u) != RC_OK)
        fail_msg("refused: %s", s);
    return u;
}

static void test_single(void **state)
{
    rc_redis_url_t u = parse_ok("redis://127.0.0.1");

    (void)state;
    assert_int_equal(u.topo, RC_REDIS_SINGLE);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
    assert_int_equal(u.nhosts, 1);
    assert_string_equal(u.hosts[0].host, "127.0.0.1");
    assert_int_equal(u.hosts[0].port, 6379);
    assert_string_equal(u.master, "");

    u = parse_ok("redis://alice:s3cret@redis.example:6380/2");
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "s3cret");

    u = parse_ok("redis://:pw@h");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    u = parse_ok("redis://pw@h/");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 0);

    u = parse_ok("redis://[::1]:7000/15");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 15);
    u = parse_ok("redis://[fe80::1]");
    assert_string_equal(u.host, "fe80::1");
    assert_int_equal(u.port, 6379);
}

static void test_sentinel(void **state)
{
    rc_redis_url_t u = parse_ok("redis-sentinel://10.0.0.1#mymaster");

    (void)state;
    assert_int_equal(u.topo, RC_REDIS_SENTINEL);
    assert_int_equal(u.nhosts, 1);
    assert_string_equal(u.hosts[0].host, "10.0.0.1");
    assert_int_equal(u.hosts[0].port, 26379);
    assert_string_equal(u.host, "10.0.0.1");
    assert_int_equal(u.port, 26379);
    assert_string_equal(u.master, "mymaster");
    assert_int_equal(u.db, 0);

    u = parse_ok("redis-sentinel://bob:pw@s1:5000,[::1],s3:5002/3#m");
    assert_int_equal(u.nhosts, 3);
    assert_string_equal(u.hosts[0].host, "s1");
    assert_int_equal(u.hosts[0].port, 5000);
    assert_string_equal(u.hosts[1].host, "::1");
    assert_int_equal(u.hosts[1].port, 26379);
    assert_string_equal(u.hosts[2].host, "s3");
    assert_int_equal(u.hosts[2].port, 5002);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.master, "m");

    /* A '#' in the password: the master name follows the last one. */
    u = parse_ok("redis-sentinel://:p#w@h#m-1.x");
    assert_string_equal(u.password, "p#w");
    assert_string_equal(u.master, "m-1.x");

    /* Sixteen sentinels fit. */
    {
        char url[512] = "redis-sentinel://";
        for (int i = 0; i < RC_REDIS_URL_MAX_HOSTS; i++)
            snprintf(url + strlen(url), sizeof(url) - strlen(url), "%sh%d:%d",
                     i ? "," : "", i, 1000 + i);
        strcat(url, "#m");
        u = parse_ok(url);
        assert_int_equal(u.nhosts, RC_REDIS_URL_MAX_HOSTS);
        assert_string_equal(u.hosts[15].host, "h15");
        assert_int_equal(u.hosts[15].port, 1015);
    }
}

static void test_cluster(void **state)
{
    rc_redis_url_t u = parse_ok("redis-cluster://127.0.0.1:7000");

    (void)state;
    assert_int_equal(u.topo, RC_REDIS_CLUSTER);
    assert_int_equal(u.nhosts, 1);
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.master, "");

    u = parse_ok("redis-cluster://u:p@a,b:7001,[::1]:7002");
    assert_int_equal(u.nhosts, 3);
    assert_string_equal(u.hosts[0].host, "a");
    assert_int_equal(u.hosts[0].port, 6379);
    assert_string_equal(u.hosts[1].host, "b");
    assert_int_equal(u.hosts[1].port, 7001);
    assert_string_equal(u.hosts[2].host, "::1");
    assert_int_equal(u.hosts[2].port, 7002);
    assert_string_equal(u.user, "u");
    assert_string_equal(u.password, "p");
    assert_int_equal(u.db, 0);
}

static void test_bad(void **state)
{
    static const char *const bad[] = {
        /* schemes */
        "",
        "http://h",
        "rediss://h",
        "redis:/h",
        "REDIS://h",
        "redis-sentinel:/h#m",
        "sentinel://h#m",
        /* redis:// */
        "redis://",
        "redis:///2",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:",
        "redis://h:12x",
        "redis://h/x",
        "redis://h/-1",
        "redis://h/70000",
        "redis://[::1",
        "redis://[]:6379",
        "redis://[::1]x",
        "redis://a,b",
        "redis://:pw@",
        /* redis-sentinel:// */
        "redis-sentinel://h",
        "redis-sentinel://h#",
        "redis-sentinel://h#my master",
        "redis-sentinel://#m",
        "redis-sentinel://h,#m",
        "redis-sentinel://,h#m",
        "redis-sentinel://a,,b#m",
        "redis-sentinel://h:0#m",
        "redis-sentinel://h:99999#m",
        "redis-sentinel://h/x#m",
        "redis-sentinel://h/1x#m",
        "redis-sentinel://[::1#m",
        "redis-sentinel://pw@#m",
        "redis-sentinel://h0,h1,h2,h3,h4,h5,h6,h7,h8,h9,h10,h11,h12,h13,h14,"
        "h15,h16#m",
        /* redis-cluster:// */
        "redis-cluster://",
        "redis-cluster://a,",
        "redis-cluster://a,,b",
        "redis-cluster://a/0",
        "redis-cluster://a/",
        "redis-cluster://a:0,b",
        "redis-cluster://a,b:x",
        "redis-cluster://[::1]:7000,[::2",
        "redis-cluster://h0,h1,h2,h3,h4,h5,h6,h7,h8,h9,h10,h11,h12,h13,h14,"
        "h15,h16",
    };
    (void)state;
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        rc_redis_url_t u;
        memset(&u, 0x5a, sizeof(u));
        if (rc_redis_url_parse(bad[i], &u) != RC_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        /* out is untouched on failure */
        assert_int_equal(((unsigned char *)&u)[0], 0x5a);
        assert_int_equal(((unsigned char *)&u)[sizeof(u) - 1], 0x5a);
    }
}

static void test_long_parts(void **state)
{
    char url[1024];
    char big[300];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(url, sizeof(url), "redis://%s", big);
    rc_redis_url_t u;
    assert_int_equal(rc_redis_url_parse(url, &u), RC_EINVAL);
    snprintf(url, sizeof(url), "redis://:%s@h", big);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_EINVAL);
    snprintf(url, sizeof(url), "redis-sentinel://h#%.200s", big);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_EINVAL);
    snprintf(url, sizeof(url), "redis-sentinel://h#%.127s", big);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    assert_int_equal(strlen(u.master), 127);
}

static void test_prefix(void **state)
{
    (void)state;
    assert_true(rc_redis_prefix_ok("roomcast:"));
    assert_true(rc_redis_prefix_ok(""));
    assert_false(rc_redis_prefix_ok("a{b"));
    assert_false(rc_redis_prefix_ok("a'b"));
    assert_false(rc_redis_prefix_ok("a\nb"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),     cmocka_unit_test(test_sentinel),
        cmocka_unit_test(test_cluster),    cmocka_unit_test(test_bad),
        cmocka_unit_test(test_long_parts), cmocka_unit_test(test_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

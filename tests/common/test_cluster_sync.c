/* Tests of common/cluster_sync.c against a real Redis Cluster (3 masters,
 * 3 replicas; tests/adapter/cluster_server.c): the map from the seeds (a
 * dead first seed is skipped), routing (the key lands on the owner only),
 * MOVED after a finished slot move, ASK on a half-moved slot, ordinary
 * error replies, and a URL that is not a cluster's.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/cluster_sync.h"
#include "common/slot.h"
#include "tests/adapter/cluster_server.h"

static cs_cluster_t CS;

static rc_cluster_sync_t *open_cs(void)
{
    rc_redis_url_t u;
    char url[160], err[256] = "";
    rc_cluster_sync_t *cs;

    /* Port 1 refuses: the next seed answers. */
    snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:1,127.0.0.1:%d",
             CS.n[4].port);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    cs = rc_cluster_sync_open(&u, err, sizeof(err));
    if (!cs)
        fail_msg("open: %s", err);
    return cs;
}

static redisReply *run(rc_cluster_sync_t *cs, const char *key, int argc,
                       const char **argv)
{
    size_t lens[4];
    char err[256] = "";
    redisReply *r;

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r = rc_cluster_sync_command(cs, key, strlen(key), argc, argv, lens, err,
                                sizeof(err));
    if (!r)
        fail_msg("command: %s", err);
    return r;
}

static long long countkeys(int port, unsigned slot)
{
    redisReply *r = cs_cmd(port, "CLUSTER COUNTKEYSINSLOT %u", slot);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    if (r)
        freeReplyObject(r);
    return n;
}

static void key_on(int port, char *buf, size_t cap, int from)
{
    for (int i = from; i < from + 100000; i++) {
        snprintf(buf, cap, "sk:%d", i);
        if (cs_owner_of(port, rc_slot_of(buf, strlen(buf))) == port)
            return;
    }
    fail_msg("no key for %d", port);
}

static void test_routing(void **state)
{
    rc_cluster_sync_t *cs = open_cs();
    char ip[64];
    int port;

    (void)state;
    for (int i = 0; i < 30; i++) {
        char key[32];
        unsigned slot;
        redisReply *r;
        snprintf(key, sizeof(key), "sync:%d", i);
        slot = rc_slot_of(key, strlen(key));
        assert_int_equal(rc_cluster_sync_master_of(cs, key, strlen(key), ip,
                                                   sizeof(ip), &port),
                         RC_OK);
        assert_string_equal(ip, "127.0.0.1");
        assert_int_equal(port, cs_owner_of(CS.n[0].port, slot));
        r = run(cs, key, 3, (const char *[]){"SET", key, "x"});
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
        for (int n = 0; n < 3; n++) /* the first three are the masters */
            assert_int_equal(countkeys(CS.n[n].port, slot),
                             CS.n[n].port == port ? 1 : 0);
    }
    {
        redisReply *r =
            run(cs, "sync:0", 2, (const char *[]){"LPOP", "sync:0"});
        assert_int_equal(r->type, REDIS_REPLY_ERROR); /* WRONGTYPE */
        freeReplyObject(r);
    }
    assert_int_equal(rc_cluster_sync_master_of(cs, "k", 1, ip, 4, &port),
                     RC_EINVAL);
    {
        const char *ips[4];
        int ports[4];
        assert_int_equal(rc_cluster_sync_masters(cs, ips, ports, 4), 3);
        for (int i = 0; i < 3; i++) {
            bool found = false;
            for (int j = 0; j < 3; j++)
                found |= ports[j] == CS.n[i].port;
            assert_true(found);
        }
    }
    rc_cluster_sync_close(cs);
}

static void test_moved_and_ask(void **state)
{
    rc_cluster_sync_t *cs = open_cs();
    char key[32], ip[64];
    int src = CS.n[0].port, dst = CS.n[1].port, port;
    unsigned slot;
    redisReply *r;

    (void)state;
    key_on(src, key, sizeof(key), 100);
    slot = rc_slot_of(key, strlen(key));
    r = run(cs, key, 3, (const char *[]){"SET", key, "v1"});
    freeReplyObject(r);

    /* Half-moved: ASK, and the map stays. */
    assert_int_equal(cs_move_slot(&CS, slot, src, dst, false), 0);
    r = run(cs, key, 2, (const char *[]){"GET", key});
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v1");
    freeReplyObject(r);
    assert_int_equal(
        rc_cluster_sync_master_of(cs, key, strlen(key), ip, sizeof(ip), &port),
        RC_OK);
    assert_int_equal(port, src);

    /* Finished: MOVED, and the map follows. */
    assert_int_equal(cs_finish_slot(&CS, slot, dst), 0);
    r = run(cs, key, 3, (const char *[]){"SET", key, "v2"});
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_int_equal(countkeys(dst, slot), 1);
    assert_int_equal(
        rc_cluster_sync_master_of(cs, key, strlen(key), ip, sizeof(ip), &port),
        RC_OK);
    assert_int_equal(port, dst);
    assert_int_equal(cs_move_slot(&CS, slot, dst, src, true), 0);
    rc_cluster_sync_close(cs);
}

static void test_not_cluster(void **state)
{
    rc_redis_url_t u;
    char err[128] = "";

    (void)state;
    assert_int_equal(rc_redis_url_parse("redis://127.0.0.1:1", &u), RC_OK);
    assert_null(rc_cluster_sync_open(&u, err, sizeof(err)));
    assert_true(err[0] != '\0');
    assert_int_equal(rc_redis_url_parse("redis-cluster://127.0.0.1:1", &u),
                     RC_OK);
    assert_null(rc_cluster_sync_open(&u, err, sizeof(err)));
    assert_non_null(strstr(err, "127.0.0.1:1"));
}

static int group_setup(void **state)
{
    (void)state;
    return cs_start(&CS, 5000);
}

static int group_teardown(void **state)
{
    (void)state;
    cs_stop(&CS);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_cluster),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_moved_and_ask),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

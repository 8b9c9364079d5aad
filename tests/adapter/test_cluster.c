/* Tests of adapter/cluster.c against a real Redis Cluster (3 masters, 3
 * replicas; tests/adapter/cluster_server.c) started once for the group:
 * routing to the owning master, MOVED after a finished slot move, ASK on a
 * half-moved slot, timeouts and destroy with commands in flight to a
 * SIGSTOPped master (each callback once, none after destroy), destroy from
 * inside a reply callback, and a SIGKILLed master replaced by its replica.
 * The failover runs last: it leaves the cluster with a dead node.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "adapter/cluster.h"
#include "common/log.h"
#include "common/redis_url.h"
#include "common/slot.h"
#include "tests/adapter/cluster_server.h"

#define NODE_TIMEOUT_MS 2000 /* cluster-node-timeout */

static cs_cluster_t CS;

/* ------------------------------------------------------------- helpers */

typedef struct obs {
    uv_loop_t loop;
    rc_cluster_t *c;
    int masters_calls;
    size_t nmasters;
    rc_cluster_addr_t masters[8];
} obs_t;

typedef struct call {
    obs_t *o;
    int calls;
    rc_err_t err;
    int type; /* reply type, -1 none */
    char str[128];
    bool destroy_in_cb;
} call_t;

static void on_masters(void *ctx, const rc_cluster_addr_t *m, size_t n)
{
    obs_t *o = ctx;

    o->masters_calls++;
    o->nmasters = n;
    memcpy(o->masters, m, (n < 8 ? n : 8) * sizeof(*m));
}

static void on_reply(void *arg, const redisReply *r, rc_err_t err)
{
    call_t *k = arg;

    k->calls++;
    k->err = err;
    k->type = r ? r->type : -1;
    k->str[0] = '\0';
    if (r && r->str)
        snprintf(k->str, sizeof(k->str), "%s", r->str);
    else if (r && r->type == REDIS_REPLY_INTEGER)
        snprintf(k->str, sizeof(k->str), "%lld", r->integer);
    if (k->destroy_in_cb && k->o->c) {
        rc_cluster_destroy(k->o->c);
        k->o->c = NULL;
    }
}

static void url_of(char *buf, size_t cap, int a, int b)
{
    snprintf(buf, cap, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", a, b);
}

static void obs_start(obs_t *o, const rc_cluster_opts_t *opts)
{
    rc_redis_url_t u;
    char url[128];
    rc_cluster_cbs_t cbs = {on_masters, o};

    memset(o, 0, sizeof(*o));
    assert_int_equal(uv_loop_init(&o->loop), 0);
    /* A replica as the first seed: it answers CLUSTER SHARDS too. */
    url_of(url, sizeof(url), CS.n[3].port, CS.n[0].port);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    o->c = rc_cluster_create(&o->loop, &u, opts, &cbs);
    assert_non_null(o->c);
}

/* Runs the loop until pred(o, a) or ms pass. */
static bool run_until(obs_t *o, bool (*pred)(obs_t *, void *), void *a, int ms)
{
    long long end = cs_now_ms() + ms;

    while (cs_now_ms() < end) {
        if (pred && pred(o, a))
            return true;
        uv_run(&o->loop, UV_RUN_ONCE); /* the tick wakes it every 20 ms */
    }
    return pred ? pred(o, a) : true;
}

static bool have_masters(obs_t *o, void *a)
{
    return o->nmasters == (size_t)(intptr_t)a;
}

static bool answered(obs_t *o, void *a)
{
    call_t *k = a;

    (void)o;
    return k->calls > 0;
}

static void obs_stop(obs_t *o)
{
    rc_cluster_destroy(o->c);
    o->c = NULL;
    uv_run(&o->loop, UV_RUN_DEFAULT); /* handles close */
    assert_int_equal(uv_loop_close(&o->loop), 0);
}

/* Sends one command by key and waits for its answer. */
static void send_wait(obs_t *o, call_t *k, const char *key, int argc,
                      const char **argv, int ms)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    memset(k, 0, sizeof(*k));
    k->o = o;
    assert_int_equal(rc_cluster_command(o->c, key, strlen(key), argc, argv,
                                        lens, on_reply, k),
                     RC_OK);
    assert_int_equal(k->calls, 0); /* never inside the call */
    assert_true(run_until(o, answered, k, ms));
    assert_int_equal(k->calls, 1);
}

/* A key whose slot the master at port owns (as that node sees the map). */
static void key_on(int port, char *buf, size_t cap, int from)
{
    for (int i = from; i < from + 100000; i++) {
        snprintf(buf, cap, "rk:%d", i);
        if (cs_owner_of(port, rc_slot_of(buf, strlen(buf))) == port)
            return;
    }
    fail_msg("no key found for %d", port);
}

static int master_ports(int *out)
{
    int n = 0;

    for (int i = 0; i < CS_NODES; i++) {
        redisReply *r;
        if (CS.n[i].pid <= 0)
            continue;
        r = cs_cmd(CS.n[i].port, "ROLE");
        if (r && r->type == REDIS_REPLY_ARRAY &&
            strcmp(r->element[0]->str, "master") == 0)
            out[n++] = CS.n[i].port;
        if (r)
            freeReplyObject(r);
    }
    return n;
}

static long long countkeys(int port, unsigned slot)
{
    redisReply *r = cs_cmd(port, "CLUSTER COUNTKEYSINSLOT %u", slot);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    if (r)
        freeReplyObject(r);
    return n;
}

/* --------------------------------------------------------------- tests */

static void test_routing(void **state)
{
    obs_t o;
    call_t k;
    rc_cluster_stats_t st;
    rc_cluster_addr_t a;
    int seen[3] = {0}, masters[CS_NODES];

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    obs_start(&o, NULL);
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    assert_int_equal(o.masters_calls, 1);
    for (int i = 0; i < 3; i++) {
        bool found = false;
        for (size_t j = 0; j < o.nmasters; j++)
            found |= o.masters[j].port == masters[i];
        assert_true(found);
    }
    for (int i = 0; i < 60; i++) {
        char key[32], val[32];
        unsigned slot;
        int owner;
        snprintf(key, sizeof(key), "route:%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        slot = rc_slot_of(key, strlen(key));
        send_wait(&o, &k, key, 3, (const char *[]){"SET", key, val}, 2000);
        assert_int_equal(k.err, RC_OK);
        assert_string_equal(k.str, "OK");
        /* The key landed on the master that owns its slot, only there. */
        owner = cs_owner_of(CS.n[0].port, slot);
        assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
        assert_int_equal(a.port, owner);
        for (int m = 0; m < 3; m++) {
            long long n = countkeys(masters[m], slot);
            assert_int_equal(n, masters[m] == owner ? 1 : 0);
            if (masters[m] == owner)
                seen[m]++;
        }
        send_wait(&o, &k, key, 2, (const char *[]){"GET", key}, 2000);
        assert_string_equal(k.str, val);
    }
    for (int m = 0; m < 3; m++)
        assert_true(seen[m] > 0); /* 60 keys reach all three */
    rc_cluster_stats(o.c, &st);
    assert_int_equal(st.moved, 0);
    assert_int_equal(st.ask, 0);
    /* A reply that is an error (not a redirection) is handed back as is. */
    send_wait(&o, &k, "route:0", 2, (const char *[]){"LPOP", "route:0"}, 2000);
    assert_int_equal(k.err, RC_OK);
    assert_int_equal(k.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(k.str, "WRONGTYPE"));
    obs_stop(&o);
}

static void test_moved(void **state)
{
    obs_t o;
    call_t k;
    rc_cluster_stats_t st;
    rc_cluster_addr_t a;
    int masters[CS_NODES], src, dst;
    char key[32];
    unsigned slot;

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    src = masters[0];
    dst = masters[1];
    key_on(src, key, sizeof(key), 1000);
    slot = rc_slot_of(key, strlen(key));
    obs_start(&o, &(rc_cluster_opts_t){.refresh_ms = 60000});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k, key, 3, (const char *[]){"SET", key, "before"}, 2000);
    assert_string_equal(k.str, "OK");
    assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
    assert_int_equal(a.port, src);

    /* The slot moves, finished, behind the client's back. */
    assert_int_equal(cs_move_slot(&CS, slot, src, dst, true), 0);
    assert_int_equal(countkeys(dst, slot), 1);

    send_wait(&o, &k, key, 2, (const char *[]){"GET", key}, 3000);
    assert_int_equal(k.err, RC_OK);
    assert_string_equal(k.str, "before");
    rc_cluster_stats(o.c, &st);
    assert_true(st.moved >= 1);
    assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
    assert_int_equal(a.port, dst);
    /* The refresh a MOVED asks for comes, and agrees. */
    {
        uint64_t before = st.refreshes;
        long long end = cs_now_ms() + 3000;
        while (cs_now_ms() < end) {
            rc_cluster_stats(o.c, &st);
            if (st.refreshes > before)
                break;
            uv_run(&o.loop, UV_RUN_ONCE);
        }
        assert_true(st.refreshes > before);
        assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
        assert_int_equal(a.port, dst);
    }
    /* Back home, so later tests see the original layout. */
    assert_int_equal(cs_move_slot(&CS, slot, dst, src, true), 0);
    obs_stop(&o);
}

static void test_ask(void **state)
{
    obs_t o;
    call_t k;
    rc_cluster_stats_t st;
    rc_cluster_addr_t a;
    int masters[CS_NODES], src, dst;
    char key[32], other[64];
    unsigned slot;

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    src = masters[1];
    dst = masters[2];
    key_on(src, key, sizeof(key), 2000);
    slot = rc_slot_of(key, strlen(key));
    snprintf(other, sizeof(other), "{%s}:new", key); /* same slot */
    assert_int_equal(rc_slot_of(other, strlen(other)), slot);
    obs_start(&o, &(rc_cluster_opts_t){.refresh_ms = 60000});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k, key, 3, (const char *[]){"SET", key, "v-ask"}, 2000);
    assert_string_equal(k.str, "OK");

    /* Half-moved: MIGRATING/IMPORTING set and the key migrated, the slot
     * still src's. src answers ASK for keys it no longer has. */
    assert_int_equal(cs_move_slot(&CS, slot, src, dst, false), 0);
    assert_int_equal(countkeys(dst, slot), 1);
    assert_int_equal(countkeys(src, slot), 0);

    send_wait(&o, &k, key, 2, (const char *[]){"GET", key}, 3000);
    assert_int_equal(k.err, RC_OK);
    assert_string_equal(k.str, "v-ask");
    send_wait(&o, &k, other, 3, (const char *[]){"SET", other, "x"}, 3000);
    assert_string_equal(k.str, "OK");
    assert_int_equal(countkeys(dst, slot), 2); /* created on the target */
    rc_cluster_stats(o.c, &st);
    assert_true(st.ask >= 2);
    assert_int_equal(st.moved, 0);
    /* ASK leaves the map alone. */
    assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
    assert_int_equal(a.port, src);

    assert_int_equal(cs_finish_slot(&CS, slot, dst), 0);
    assert_int_equal(cs_move_slot(&CS, slot, dst, src, true), 0);
    obs_stop(&o);
}

/* A multi-key command on a slot whose keys are split between the two sides
 * of a migration gets TRYAGAIN: the client retries with backoff, and once
 * the rest of the keys moved, src answers ASK and the target serves both. */
static void test_tryagain(void **state)
{
    obs_t o;
    call_t k;
    rc_cluster_stats_t st;
    int masters[CS_NODES], src, dst, si, di;
    char key[32], a[64], b[64];
    unsigned slot;
    size_t lens[3];
    const char *argv[3] = {"MGET", a, b};
    redisReply *r;

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    src = masters[0];
    dst = masters[2];
    si = cs_index_of(&CS, src);
    di = cs_index_of(&CS, dst);
    key_on(src, key, sizeof(key), 9000);
    slot = rc_slot_of(key, strlen(key));
    snprintf(a, sizeof(a), "{%s}:a", key);
    snprintf(b, sizeof(b), "{%s}:b", key);
    obs_start(&o, &(rc_cluster_opts_t){.refresh_ms = 60000});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k, a, 3, (const char *[]){"SET", a, "A"}, 2000);
    send_wait(&o, &k, b, 3, (const char *[]){"SET", b, "B"}, 2000);

    r = cs_cmd(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, CS.n[si].id);
    assert_non_null(r);
    freeReplyObject(r);
    r = cs_cmd(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, CS.n[di].id);
    assert_non_null(r);
    freeReplyObject(r);
    r = cs_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst, a);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    lens[0] = 4;
    lens[1] = strlen(a);
    lens[2] = strlen(b);
    memset(&k, 0, sizeof(k));
    k.o = &o;
    assert_int_equal(
        rc_cluster_command(o.c, a, lens[1], 3, argv, lens, on_reply, &k),
        RC_OK);
    run_until(&o, NULL, NULL, 300);
    assert_int_equal(k.calls, 0); /* retrying */
    rc_cluster_stats(o.c, &st);
    assert_true(st.tryagain >= 2);
    r = cs_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst, b);
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(run_until(&o, answered, &k, 2000));
    assert_int_equal(k.err, RC_OK);
    assert_int_equal(k.type, REDIS_REPLY_ARRAY);
    rc_cluster_stats(o.c, &st);
    assert_true(st.ask >= 1);

    assert_int_equal(cs_finish_slot(&CS, slot, dst), 0);
    assert_int_equal(cs_move_slot(&CS, slot, dst, src, true), 0);
    obs_stop(&o);
}

/* Commands to a SIGSTOPped master: with a short timeout they fail with
 * RC_EBACKEND; with a long one, destroy fails them with RC_ECLOSED. Every
 * callback runs once, none after destroy. The stop stays well under
 * cluster-node-timeout, so no failover starts. */
static void test_stalled_master(void **state)
{
    obs_t o;
    call_t k[6];
    int masters[CS_NODES], victim, vi;
    char key[32];
    long long t0;

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    victim = masters[2];
    vi = cs_index_of(&CS, victim);
    key_on(victim, key, sizeof(key), 3000);

    /* Timeout. */
    obs_start(&o, &(rc_cluster_opts_t){.timeout_ms = 300});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k[0], key, 2, (const char *[]){"GET", key}, 2000);
    assert_int_equal(k[0].err, RC_OK); /* the link is up */
    cs_signal(&CS, vi, SIGSTOP);
    t0 = cs_now_ms();
    send_wait(&o, &k[0], key, 2, (const char *[]){"GET", key}, 2000);
    assert_int_equal(k[0].err, RC_EBACKEND);
    assert_true(cs_now_ms() - t0 < 900);
    cs_signal(&CS, vi, SIGCONT);
    /* And it recovers: a new link once the node answers again. */
    send_wait(&o, &k[0], key, 2, (const char *[]){"GET", key}, 3000);
    assert_int_equal(k[0].err, RC_OK);
    obs_stop(&o);

    /* Destroy with commands in flight. */
    obs_start(&o, &(rc_cluster_opts_t){.timeout_ms = 10000});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k[0], key, 2, (const char *[]){"GET", key}, 2000);
    cs_signal(&CS, vi, SIGSTOP);
    for (int i = 0; i < 6; i++) {
        char kk[32];
        const char *argv[2] = {"GET", i < 4 ? key : kk};
        size_t lens[2] = {3, 0};
        if (i >= 4)
            key_on(masters[i - 4], kk, sizeof(kk), 4000 + i);
        lens[1] = strlen(argv[1]);
        memset(&k[i], 0, sizeof(k[i]));
        k[i].o = &o;
        assert_int_equal(rc_cluster_command(o.c, argv[1], lens[1], 2, argv,
                                            lens, on_reply, &k[i]),
                         RC_OK);
    }
    run_until(&o, NULL, NULL, 300);
    for (int i = 0; i < 4; i++)
        assert_int_equal(k[i].calls, 0); /* stalled */
    for (int i = 4; i < 6; i++) {
        assert_int_equal(k[i].calls, 1); /* the other masters answered */
        assert_int_equal(k[i].err, RC_OK);
    }
    rc_cluster_destroy(o.c);
    o.c = NULL;
    for (int i = 0; i < 6; i++)
        assert_int_equal(k[i].calls, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(k[i].err, RC_ECLOSED);
    cs_signal(&CS, vi, SIGCONT);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 6; i++)
        assert_int_equal(k[i].calls, 1); /* nothing after destroy */
    assert_int_equal(uv_loop_close(&o.loop), 0);
}

/* destroy from inside the first reply: the other in-flight commands (on
 * the same link and on others) get RC_ECLOSED inside that call, once. */
static void test_destroy_in_callback(void **state)
{
    obs_t o;
    call_t k[8];
    int masters[CS_NODES];

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    obs_start(&o, NULL);
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    for (int i = 0; i < 8; i++) {
        char key[32];
        const char *argv[2] = {"GET", key};
        size_t lens[2] = {3, 0};
        key_on(masters[i % 3], key, sizeof(key), 5000 + 10 * i);
        lens[1] = strlen(key);
        memset(&k[i], 0, sizeof(k[i]));
        k[i].o = &o;
        k[i].destroy_in_cb = true;
        assert_int_equal(rc_cluster_command(o.c, key, lens[1], 2, argv, lens,
                                            on_reply, &k[i]),
                         RC_OK);
    }
    run_until(&o, NULL, NULL, 50);
    while (o.c)
        uv_run(&o.loop, UV_RUN_ONCE);
    {
        int ok = 0, closed = 0;
        for (int i = 0; i < 8; i++) {
            assert_int_equal(k[i].calls, 1);
            ok += k[i].err == RC_OK;
            closed += k[i].err == RC_ECLOSED;
        }
        assert_true(ok >= 1);
        assert_int_equal(ok + closed, 8);
    }
    uv_run(&o.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 8; i++)
        assert_int_equal(k[i].calls, 1);
    assert_int_equal(uv_loop_close(&o.loop), 0);
}

/* The URL's user and password: AUTH on every link (the map included);
 * a wrong password never falls back to the default user. */
static void test_auth(void **state)
{
    obs_t o;
    call_t k;
    rc_redis_url_t u;
    char url[160];
    rc_cluster_cbs_t cbs = {on_masters, &o};

    (void)state;
    for (int i = 0; i < CS_NODES; i++) {
        redisReply *r =
            cs_cmd(CS.n[i].port, "ACL SETUSER rcuser on >s3cret ~* &* +@all");
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    for (int pass = 0; pass < 2; pass++) {
        memset(&o, 0, sizeof(o));
        assert_int_equal(uv_loop_init(&o.loop), 0);
        snprintf(url, sizeof(url), "redis-cluster://rcuser:%s@127.0.0.1:%d",
                 pass == 0 ? "s3cret" : "wrong", CS.n[1].port);
        assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
        o.c = rc_cluster_create(
            &o.loop, &u,
            &(rc_cluster_opts_t){.timeout_ms = 1500, .connect_timeout_ms = 300},
            &cbs);
        assert_non_null(o.c);
        if (pass == 0) {
            char ip[] = "127.0.0.1";
            assert_true(run_until(&o, have_masters, (void *)3, 5000));
            send_wait(&o, &k, "auth:k", 3,
                      (const char *[]){"SET", "auth:k", "v"}, 2000);
            assert_string_equal(k.str, "OK");
            memset(&k, 0, sizeof(k));
            k.o = &o;
            assert_int_equal(
                rc_cluster_command_to(o.c, ip, o.masters[0].port, 2,
                                      (const char *[]){"ACL", "WHOAMI"},
                                      (const size_t[]){3, 6}, on_reply, &k),
                RC_OK);
            assert_true(run_until(&o, answered, &k, 2000));
            assert_string_equal(k.str, "rcuser");
        } else {
            send_wait(&o, &k, "auth:k", 2, (const char *[]){"GET", "auth:k"},
                      3000);
            assert_int_equal(k.err, RC_EBACKEND); /* waited, timed out */
            assert_int_equal(o.masters_calls, 0); /* no map either */
        }
        obs_stop(&o);
    }
}

/* A master SIGKILLed: its replica is promoted; the client learns the new
 * map and commands to the dead master's slots succeed again in bounded
 * time. */
static void test_failover(void **state)
{
    obs_t o;
    call_t k;
    rc_cluster_addr_t a;
    int masters[CS_NODES], victim, vi, after[CS_NODES];
    char key[32];
    unsigned slot;
    long long t_kill, t_ok = 0;
    int fails = 0;

    (void)state;
    assert_int_equal(master_ports(masters), 3);
    victim = masters[0];
    vi = cs_index_of(&CS, victim);
    key_on(victim, key, sizeof(key), 7000);
    slot = rc_slot_of(key, strlen(key));
    obs_start(&o, &(rc_cluster_opts_t){.timeout_ms = 1000, .refresh_ms = 1000});
    assert_true(run_until(&o, have_masters, (void *)3, 5000));
    send_wait(&o, &k, key, 3, (const char *[]){"SET", key, "pre"}, 2000);
    assert_string_equal(k.str, "OK");

    cs_signal(&CS, vi, SIGKILL);
    t_kill = cs_now_ms();
    while (cs_now_ms() - t_kill < 20000) {
        send_wait(&o, &k, key, 3, (const char *[]){"SET", key, "post"}, 3000);
        if (k.err == RC_OK && k.type == REDIS_REPLY_STATUS) {
            t_ok = cs_now_ms();
            break;
        }
        fails++;
        run_until(&o, NULL, NULL, 50);
    }
    assert_true(t_ok > 0);
    fprintf(stderr,
            "# failover: commands succeed again %lld ms after "
            "SIGKILL (%d failed meanwhile; node timeout %d ms)\n",
            t_ok - t_kill, fails, NODE_TIMEOUT_MS);
    assert_true(t_ok - t_kill < 15000);
    assert_true(rc_cluster_master_of_slot(o.c, slot, &a));
    assert_true(a.port != victim);
    assert_int_equal(master_ports(after), 3);
    assert_true(run_until(&o, have_masters, (void *)3, 3000));
    for (size_t j = 0; j < o.nmasters; j++)
        assert_true(o.masters[j].port != victim);
    assert_true(o.masters_calls >= 2);
    obs_stop(&o);
}

static int group_setup(void **state)
{
    (void)state;
    rc_log_set_level(RC_LOG_WARN);
    return cs_start(&CS, NODE_TIMEOUT_MS);
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
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_moved),
        cmocka_unit_test(test_ask),
        cmocka_unit_test(test_tryagain),
        cmocka_unit_test(test_stalled_master),
        cmocka_unit_test(test_destroy_in_callback),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_failover),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

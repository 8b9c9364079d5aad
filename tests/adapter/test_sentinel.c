/* Tests of adapter/sentinel.c (and common/sentinel_sync.c) against real
 * processes: a redis-server master, one replica and three redis-sentinel on
 * free loopback ports in a temp dir, all stopped by PID at the end. Cases:
 * find the master, skip a refusing and a hung first sentinel, an unknown
 * master name, destroy while a command waits on a SIGSTOPped sentinel,
 * destroy from inside on_master, the blocking resolver, SENTINEL FAILOVER,
 * and a SIGKILLed master promoted away by the sentinels.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "adapter/sentinel.h"
#include "common/log.h"
#include "common/sentinel_sync.h"

#define NSENT 3

typedef struct env {
    char dir[64];
    int mport, rport; /* first master, first replica */
    int sport[NSENT]; /* sentinels */
    pid_t mpid, rpid, spid[NSENT];
    int dead_port, hung_port; /* nothing listens / never answers */
    int hung_fd;
    char url[512]; /* the three sentinels, #m */
} env_t;

static env_t E;

/* ------------------------------------------------------------ helpers */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static int listen_port(int *keep_fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    if (keep_fd) {
        assert_int_equal(listen(fd, 16), 0); /* never accept()ed */
        *keep_fd = fd;
    } else {
        close(fd);
    }
    return port;
}

static pid_t spawn(const char *log, char *const argv[], char *const alt[])
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        if (alt)
            execvp(alt[0], alt);
        _exit(127);
    }
    return pid;
}

static pid_t start_redis(int port, int replicaof)
{
    char p[16], of[32], log[128];

    snprintf(p, sizeof(p), "%d", port);
    snprintf(of, sizeof(of), "127.0.0.1 %d", replicaof);
    snprintf(log, sizeof(log), "%s/redis-%d.log", E.dir, port);
    char *argv[] = {"redis-server",
                    "--port",
                    p,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    E.dir,
                    "--repl-diskless-sync-delay",
                    "0",
                    replicaof ? "--replicaof" : NULL,
                    of,
                    NULL};
    return spawn(log, argv, NULL);
}

static pid_t start_sentinel(int port)
{
    char conf[128], log[128];
    FILE *f;

    snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", E.dir, port);
    snprintf(log, sizeof(log), "%s/sentinel-%d.log", E.dir, port);
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
            "sentinel resolve-hostnames no\n"
            "sentinel monitor m 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds m 1000\n"
            "sentinel failover-timeout m 5000\n"
            "sentinel parallel-syncs m 1\n",
            port, E.dir, E.mport);
    fclose(f);
    char *argv[] = {"redis-sentinel", conf, NULL};
    char *alt[] = {"redis-server", conf, "--sentinel", NULL};
    return spawn(log, argv, alt);
}

static void stop(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGCONT);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* One blocking command; NULL when the server does not answer in 500 ms. */
static redisReply *cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    va_list ap;

    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        if (c)
            redisFree(c);
        return NULL;
    }
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* Does sentinel sport name master_port as m's master? */
static bool sentinel_says(int sport, int master_port)
{
    redisReply *r = cmd(sport, "SENTINEL get-master-addr-by-name m");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              atoi(r->element[1]->str) == master_port;

    if (r)
        freeReplyObject(r);
    return ok;
}

/* Does sentinel sport see port as a healthy replica of m? */
static bool sentinel_sees_replica(int sport, int port)
{
    redisReply *r = cmd(sport, "SENTINEL replicas m");
    bool ok = false;

    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements;
         i++) {
        redisReply *kv = r->element[i];
        const char *p = NULL, *flags = NULL, *link = NULL;
        for (size_t j = 0; j + 1 < kv->elements; j += 2) {
            if (!strcmp(kv->element[j]->str, "port"))
                p = kv->element[j + 1]->str;
            if (!strcmp(kv->element[j]->str, "flags"))
                flags = kv->element[j + 1]->str;
            if (!strcmp(kv->element[j]->str, "master-link-status"))
                link = kv->element[j + 1]->str;
        }
        if (p && atoi(p) == port && flags && !strcmp(flags, "slave") && link &&
            !strcmp(link, "ok"))
            ok = true;
    }
    if (r)
        freeReplyObject(r);
    return ok;
}

static int sentinel_peers(int sport)
{
    redisReply *r = cmd(sport, "SENTINEL sentinels m");
    int n = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;

    if (r)
        freeReplyObject(r);
    return n;
}

static bool all_agree(int master, int replica)
{
    for (int i = 0; i < NSENT; i++)
        if (!sentinel_says(E.sport[i], master) ||
            !sentinel_sees_replica(E.sport[i], replica) ||
            sentinel_peers(E.sport[i]) != NSENT - 1)
            return false;
    return true;
}

static bool wait_for(bool (*pred)(int, int), int a, int b, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;

    do {
        if (pred(a, b))
            return true;
        nap_ms(100);
    } while (now_ms() < end);
    return false;
}

static bool replica_synced(int port, int unused)
{
    redisReply *r = cmd(port, "INFO replication");
    bool ok = r && r->type == REDIS_REPLY_STRING &&
              strstr(r->str, "master_link_status:up");

    (void)unused;
    if (r)
        freeReplyObject(r);
    return ok;
}

/* ---------------------------------------------------------- the finder */

typedef struct obs {
    rc_sentinel_t *s;
    int masters, losts;
    char ip[64];
    int port;
    int want_port;        /* stop the loop when on_master reports this */
    bool want_lost;       /* ... or when on_lost runs */
    bool destroy_in_cb;   /* destroy s from inside on_master */
    uint64_t t0, t_event; /* loop ms */
    uv_loop_t *loop;
} obs_t;

static void on_master(void *ctx, const char *ip, int port)
{
    obs_t *o = ctx;

    o->masters++;
    snprintf(o->ip, sizeof(o->ip), "%s", ip);
    o->port = port;
    if (port == o->want_port) {
        o->t_event = now_ms();
        uv_stop(o->loop);
    }
    if (o->destroy_in_cb) {
        rc_sentinel_destroy(o->s);
        o->s = NULL;
    }
}

static void on_lost(void *ctx)
{
    obs_t *o = ctx;

    o->losts++;
    if (o->want_lost) {
        o->t_event = now_ms();
        uv_stop(o->loop);
    }
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop until a callback stops it or ms pass; true if stopped by a
 * callback. */
static bool run_for(uv_loop_t *loop, int ms)
{
    uv_timer_t t;
    bool by_cb;

    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    by_cb = uv_is_active((uv_handle_t *)&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return by_cb;
}

static rc_sentinel_t *start_finder(obs_t *o, uv_loop_t *loop, const char *url,
                                   const rc_sentinel_opts_t *opts)
{
    rc_redis_url_t u;
    rc_sentinel_cbs_t cbs = {on_master, on_lost, o};

    memset(o, 0, sizeof(*o));
    o->loop = loop;
    o->t0 = now_ms();
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    o->s = rc_sentinel_create(loop, &u, opts, &cbs);
    assert_non_null(o->s);
    return o->s;
}

/* Destroys what is left and runs the loop dry: every handle closed. */
static void finish(obs_t *o, uv_loop_t *loop)
{
    uint64_t t = now_ms();

    rc_sentinel_destroy(o->s);
    o->s = NULL;
    uv_run(loop, UV_RUN_DEFAULT);
    assert_true(now_ms() - t < 1000);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* --------------------------------------------------------------- cases */

static void test_finds_master(void **state)
{
    uv_loop_t loop;
    obs_t o;

    (void)state;
    uv_loop_init(&loop);
    start_finder(&o, &loop, E.url, NULL);
    o.want_port = E.mport;
    assert_true(run_for(&loop, 5000));
    assert_int_equal(o.masters, 1);
    assert_int_equal(o.losts, 0);
    assert_string_equal(o.ip, "127.0.0.1");
    assert_int_equal(o.port, E.mport);
    {
        char ip[64];
        int port;
        assert_true(rc_sentinel_master(o.s, ip, sizeof(ip), &port));
        assert_string_equal(ip, "127.0.0.1");
        assert_int_equal(port, E.mport);
    }
    /* Re-checks (every 100 ms here) find the same master: no new report. */
    rc_sentinel_destroy(o.s);
    {
        rc_sentinel_opts_t opts = {.recheck_ms = 100};
        start_finder(&o, &loop, E.url, &opts);
    }
    o.want_port = -1;
    assert_false(run_for(&loop, 800));
    assert_int_equal(o.masters, 1);
    rc_sentinel_recheck(o.s);
    assert_false(run_for(&loop, 200));
    assert_int_equal(o.masters, 1);
    assert_int_equal(o.losts, 0);
    finish(&o, &loop);
}

static void test_destroy_in_callback(void **state)
{
    uv_loop_t loop;
    obs_t o;

    (void)state;
    uv_loop_init(&loop);
    start_finder(&o, &loop, E.url, NULL);
    o.destroy_in_cb = true;
    o.want_port = -1;
    /* Nothing stops the loop: it ends by itself once destroy closed all. */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o.masters, 1);
    assert_null(o.s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_first_sentinel_down(void **state)
{
    rc_sentinel_opts_t opts = {.timeout_ms = 300};
    char url[600];
    uv_loop_t loop;
    obs_t o;

    (void)state;
    /* First refuses, second accepts the connection and never answers. */
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#m",
             E.dead_port, E.hung_port, E.sport[1]);
    uv_loop_init(&loop);
    start_finder(&o, &loop, url, &opts);
    o.want_port = E.mport;
    assert_true(run_for(&loop, 3000));
    assert_int_equal(o.masters, 1);
    assert_int_equal(o.losts, 0);
    /* the hung one cost one step timeout */
    assert_true(o.t_event - o.t0 >= 300);
    print_message("first sentinel down: master after %llu ms\n",
                  (unsigned long long)(o.t_event - o.t0));
    /* Later rounds start at the sentinel that answered: no more timeouts,
     * and no report while the master stays. */
    o.want_port = -1;
    assert_false(run_for(&loop, 2500));
    assert_int_equal(o.masters, 1);
    finish(&o, &loop);
}

static void test_unknown_name(void **state)
{
    rc_sentinel_opts_t opts = {.retry_ms = 100};
    char url[600];
    uv_loop_t loop;
    obs_t o;

    (void)state;
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d#nosuch", E.sport[0],
             E.sport[1]);
    uv_loop_init(&loop);
    start_finder(&o, &loop, url, &opts);
    o.want_lost = true;
    assert_true(run_for(&loop, 3000));
    assert_int_equal(o.losts, 1);
    /* Rounds go on every 100 ms; on_lost is not repeated. */
    o.want_lost = false;
    assert_false(run_for(&loop, 600));
    assert_int_equal(o.losts, 1);
    assert_int_equal(o.masters, 0);
    finish(&o, &loop);
}

static void test_hostname(void **state)
{
    char url[600];
    uv_loop_t loop;
    obs_t o;

    (void)state;
    /* A name is resolved off the loop (uv_getaddrinfo) first. */
    snprintf(url, sizeof(url), "redis-sentinel://localhost:%d#m", E.sport[0]);
    uv_loop_init(&loop);
    start_finder(&o, &loop, url, NULL);
    o.want_port = E.mport;
    assert_true(run_for(&loop, 5000));
    assert_int_equal(o.masters, 1);
    rc_sentinel_destroy(o.s);
    /* Destroyed while the resolution is in flight: its answer comes back
     * to nobody, and nothing leaks. */
    start_finder(&o, &loop, url, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* the round starts: getaddrinfo queued */
    finish(&o, &loop);
    assert_int_equal(o.masters, 0);
    assert_int_equal(o.losts, 0);
}

static void on_destroy_timer(uv_timer_t *t)
{
    obs_t *o = t->data;

    rc_sentinel_destroy(o->s);
    o->s = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void test_destroy_in_flight(void **state)
{
    rc_sentinel_opts_t opts = {.timeout_ms = 5000};
    char url[600];
    uv_loop_t loop;
    uv_timer_t t;
    uint64_t t0;
    obs_t o;

    (void)state;
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d#m", E.sport[2]);
    assert_int_equal(kill(E.spid[2], SIGSTOP), 0);
    uv_loop_init(&loop);
    start_finder(&o, &loop, url, &opts);
    /* The command is sent at once and waits: destroy it 300 ms later. */
    uv_timer_init(&loop, &t);
    t.data = &o;
    uv_timer_start(&t, on_destroy_timer, 300, 0);
    t0 = now_ms();
    uv_run(&loop, UV_RUN_DEFAULT);
    kill(E.spid[2], SIGCONT);
    assert_true(now_ms() - t0 < 1500); /* nothing waited for the sentinel */
    assert_int_equal(o.masters, 0);
    assert_int_equal(o.losts, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_resolve_sync(void **state)
{
    rc_redis_url_t u;
    char url[600], ip[64], err[256];
    int port = 0;

    (void)state;
    snprintf(url, sizeof(url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#m",
             E.dead_port, E.hung_port, E.sport[0]);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    assert_int_equal(
        rc_sentinel_resolve_sync(&u, ip, sizeof(ip), &port, err, sizeof(err)),
        RC_OK);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(port, E.mport);

    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d#nosuch",
             E.sport[0]);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    assert_int_equal(
        rc_sentinel_resolve_sync(&u, ip, sizeof(ip), &port, err, sizeof(err)),
        RC_ENOENT);
    assert_non_null(strstr(err, "unknown master name"));

    /* The master has no password: AUTH fails, nothing is confirmed. */
    snprintf(url, sizeof(url), "redis-sentinel://:nope@127.0.0.1:%d#m",
             E.sport[0]);
    assert_int_equal(rc_redis_url_parse(url, &u), RC_OK);
    assert_int_equal(
        rc_sentinel_resolve_sync(&u, ip, sizeof(ip), &port, err, sizeof(err)),
        RC_ENOENT);
    assert_non_null(strstr(err, "AUTH"));

    assert_int_equal(rc_redis_url_parse("redis://127.0.0.1", &u), RC_OK);
    assert_int_equal(
        rc_sentinel_resolve_sync(&u, ip, sizeof(ip), &port, err, sizeof(err)),
        RC_EINVAL);
}

/* A blocking subscriber on port: was its connection closed? */
static redisContext *subscriber(int port)
{
    struct timeval tv = {0, 500000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;

    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    r = redisCommand(c, "SUBSCRIBE probe");
    assert_non_null(r);
    freeReplyObject(r);
    return c;
}

static const char *subscriber_fate(redisContext *c)
{
    redisReply *r = NULL;
    const char *fate;

    if (redisGetReply(c, (void **)&r) == REDIS_OK)
        fate = "got a message";
    else if (c->err == REDIS_ERR_EOF)
        fate = "closed by the server";
    else
        fate = "still open";
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return fate;
}

static void test_master_killed(void **state)
{
    uv_loop_t loop;
    uint64_t t0;
    obs_t o;

    (void)state;
    uv_loop_init(&loop);
    start_finder(&o, &loop, E.url, NULL);
    o.want_port = E.mport;
    assert_true(run_for(&loop, 5000));
    t0 = now_ms();
    stop(&E.mpid); /* SIGKILL the master */
    o.want_port = E.rport;
    assert_true(run_for(&loop, 20000));
    assert_int_equal(o.port, E.rport);
    print_message("master SIGKILLed: on_master(new) after %llu ms, "
                  "%d on_lost\n",
                  (unsigned long long)(o.t_event - t0), o.losts);
    assert_true(o.t_event - t0 < 15000);
    finish(&o, &loop);
}

static bool role_is(int port, int want_master)
{
    redisReply *r = cmd(port, "ROLE");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              !strcmp(r->element[0]->str, want_master ? "master" : "slave");

    if (r)
        freeReplyObject(r);
    return ok;
}

/* Runs after test_master_killed: the replica (rport) is the master. The old
 * master comes back as its replica, then SENTINEL FAILOVER swaps them. */
static void test_failover_command(void **state)
{
    int promoted = E.mport, demoted = E.rport;
    redisContext *sub_p, *sub_d;
    redisReply *r = NULL;
    uint64_t t0, end;
    uv_loop_t loop;
    obs_t o;

    (void)state;
    E.mpid = start_redis(E.mport, E.rport);
    assert_true(wait_for(replica_synced, E.mport, 0, 10000));
    uv_loop_init(&loop);
    start_finder(&o, &loop, E.url, NULL);
    o.want_port = demoted;
    assert_true(run_for(&loop, 5000));
    sub_p = subscriber(promoted);
    sub_d = subscriber(demoted);

    /* -NOGOODSLAVE until a sentinel has seen the replica come back. */
    t0 = now_ms();
    end = t0 + 15000;
    for (;;) {
        r = cmd(E.sport[0], "SENTINEL FAILOVER m");
        if (r && r->type == REDIS_REPLY_STATUS)
            break;
        if (r)
            freeReplyObject(r);
        assert_true(now_ms() < end);
        nap_ms(100);
    }
    freeReplyObject(r);
    print_message("SENTINEL FAILOVER accepted %llu ms after the replica "
                  "came back\n",
                  (unsigned long long)(now_ms() - t0));
    t0 = now_ms();
    o.want_port = promoted;
    assert_true(run_for(&loop, 15000));
    assert_int_equal(o.port, promoted);
    print_message("SENTINEL FAILOVER: on_master(new) after %llu ms, "
                  "%d on_lost\n",
                  (unsigned long long)(o.t_event - t0), o.losts);
    print_message("pub/sub client of the promoted replica: %s\n",
                  subscriber_fate(sub_p));
    /* The demoted master is told REPLICAOF only later: until then it still
     * says master. The finder never reports it (the sentinels name the new
     * one) and its re-checks do not flap. */
    o.want_port = demoted;
    end = now_ms() + 20000;
    while (role_is(demoted, 1) && now_ms() < end)
        assert_false(run_for(&loop, 200));
    print_message("demoted master says slave %llu ms after the switch\n",
                  (unsigned long long)(now_ms() - o.t_event));
    print_message("pub/sub client of the demoted master: %s\n",
                  subscriber_fate(sub_d));
    assert_int_equal(o.port, promoted);
    finish(&o, &loop);
}

/* ------------------------------------------------------------ fixtures */

static int env_up(void **state)
{
    uint64_t t0 = now_ms();

    (void)state;
    snprintf(E.dir, sizeof(E.dir), "/tmp/rc_sentinel_XXXXXX");
    assert_non_null(mkdtemp(E.dir));
    E.mport = listen_port(NULL);
    E.rport = listen_port(NULL);
    for (int i = 0; i < NSENT; i++)
        E.sport[i] = listen_port(NULL);
    E.dead_port = listen_port(NULL);
    E.hung_port = listen_port(&E.hung_fd);
    E.mpid = start_redis(E.mport, 0);
    E.rpid = start_redis(E.rport, E.mport);
    if (!wait_for(replica_synced, E.rport, 0, 10000))
        return -1;
    for (int i = 0; i < NSENT; i++)
        E.spid[i] = start_sentinel(E.sport[i]);
    snprintf(E.url, sizeof(E.url),
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#m",
             E.sport[0], E.sport[1], E.sport[2]);
    if (!wait_for(all_agree, E.mport, E.rport, 20000))
        return -1;
    print_message("setup: sentinels agree after %llu ms\n",
                  (unsigned long long)(now_ms() - t0));
    return 0;
}

static int env_down(void **state)
{
    DIR *d;
    struct dirent *de;
    char path[400];

    (void)state;
    for (int i = 0; i < NSENT; i++)
        stop(&E.spid[i]);
    stop(&E.rpid);
    stop(&E.mpid);
    if (E.hung_fd > 0)
        close(E.hung_fd);
    if (getenv("RC_KEEP_TMP"))
        return 0;
    d = opendir(E.dir);
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", E.dir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(E.dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_master),
        cmocka_unit_test(test_destroy_in_callback),
        cmocka_unit_test(test_first_sentinel_down),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_hostname),
        cmocka_unit_test(test_destroy_in_flight),
        cmocka_unit_test(test_resolve_sync),
        cmocka_unit_test(test_master_killed),
        cmocka_unit_test(test_failover_command),
    };
    signal(SIGPIPE, SIG_IGN);
    if (getenv("RC_TEST_DEBUG"))
        rc_log_set_level(RC_LOG_DEBUG);
    return cmocka_run_group_tests(tests, env_up, env_down);
}

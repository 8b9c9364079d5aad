/* Tests of adapter/sublink.c against a real redis-server that each test
 * starts on a free loopback port (fork/exec, stopped by PID in teardown),
 * driving a real libuv loop. The publisher is a blocking hiredis context:
 * the test is not the loop's code, so blocking is fine here.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "adapter/sublink.h"

#define MAX_REC 16
#define START_TIMEOUT_MS 10000
#define WAIT_MS 5000

typedef struct rec {
    char chan[128];
    size_t len;
    bool sharded;
    bool solicited;
    long long count;
} rec_t;

typedef struct err_rec {
    char text[256];
    rc_sublink_op_t op;
    uint64_t cookie;
    size_t n;
    char chans[4][64];
} err_rec_t;

typedef struct fx fx_t;
typedef bool (*pred_fn)(const fx_t *f);

struct fx {
    uv_loop_t loop;
    pid_t redis_pid;
    int port;
    char dir[64];
    redisContext *pub;
    rc_sublink_t *link;

    /* what the callbacks saw */
    int ready, closes, pongs, after_destroy;
    bool destroyed; /* the test destroyed the link: nothing may fire now */
    char reason[256];
    rec_t subs[MAX_REC];
    int nsubs;
    rec_t unsubs[MAX_REC];
    int nunsubs;
    rec_t msgs[MAX_REC];
    int nmsgs;
    char *payload; /* the last one, owned */
    size_t payload_len;
    bool check_seq; /* payloads are 0, 1, 2, ...: count the ones out of order */
    long seq_bad;
    err_rec_t errs[MAX_REC];
    int nerrs;

    /* what the callbacks do */
    bool destroy_in_message, destroy_in_close;

    /* run_until */
    pred_fn pred;
    int want;
    uint64_t deadline;
};

/* ---- redis-server --------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    assert_true(s >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static redisReply *cmd(fx_t *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->pub, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

/* A command whose reply must be +OK. */
static void cmd_ok(fx_t *f, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(f->pub, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        fail_msg("expected OK, got type %d: %s", r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

/* Receivers of one (S)PUBLISH. */
static long long publish(fx_t *f, bool sharded, const char *chan,
                         const char *payload, size_t len)
{
    redisReply *r = cmd(f, sharded ? "SPUBLISH %s %b" : "PUBLISH %s %b", chan,
                        payload, len);
    long long n;

    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* One try on a fresh free port; false when redis-server exited (the port
 * was taken meanwhile: ports are only free "a moment ago"). */
static bool try_start_redis(fx_t *f, bool cluster)
{
    char port[16];
    uint64_t deadline;
    pid_t pid;

    f->port = free_port();
    /* Cluster mode also binds the bus port, port + 10000. */
    while (cluster && f->port > 65535 - 10000)
        f->port = free_port();
    snprintf(port, sizeof(port), "%d", f->port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        if (cluster)
            execlp("redis-server", "redis-server", "--port", port, "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                   f->dir, "--daemonize", "no", "--protected-mode", "no",
                   "--logfile", "", "--cluster-enabled", "yes",
                   "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", "1000", (char *)NULL);
        else
            execlp("redis-server", "redis-server", "--port", port, "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                   f->dir, "--daemonize", "no", "--protected-mode", "no",
                   "--logfile", "", (char *)NULL);
        _exit(127);
    }
    f->redis_pid = pid;
    deadline = now_ms() + START_TIMEOUT_MS;
    while (now_ms() < deadline) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);

        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool up = r && r->type == REDIS_REPLY_STATUS;

            freeReplyObject(r);
            if (up) {
                f->pub = c;
                return true;
            }
        }
        redisFree(c);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->redis_pid = 0;
            return false;
        }
        sleep_ms(20);
    }
    fail_msg("redis-server did not answer on port %d", f->port);
    return false;
}

static void start_redis(fx_t *f, bool cluster)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/rc_sublink.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (int i = 0; i < 5; i++)
        if (try_start_redis(f, cluster))
            return;
    fail_msg("redis-server exited at start 5 times (last port %d)", f->port);
}

static void stop_redis(fx_t *f)
{
    DIR *d;
    struct dirent *e;
    char path[512];

    if (f->pub)
        redisFree(f->pub);
    f->pub = NULL;
    if (f->redis_pid > 0) {
        kill(f->redis_pid, SIGKILL); /* also ends a SIGSTOPped one */
        waitpid(f->redis_pid, NULL, 0);
        f->redis_pid = 0;
    }
    if (!f->dir[0])
        return;
    d = opendir(f->dir);
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    f->dir[0] = '\0';
}

/* ---- the link's callbacks: record --------------------------------------- */

static void rec_set(rec_t *r, const char *chan, size_t len)
{
    size_t n = len < sizeof(r->chan) - 1 ? len : sizeof(r->chan) - 1;

    memcpy(r->chan, chan, n);
    r->chan[n] = '\0';
    r->len = len;
}

static void seen(fx_t *f)
{
    if (f->destroyed)
        f->after_destroy++;
}

static void on_ready(void *ctx)
{
    fx_t *f = ctx;

    seen(f);
    f->ready++;
}

static void on_message(void *ctx, const char *chan, size_t clen,
                       const char *payload, size_t plen, bool sharded)
{
    fx_t *f = ctx;

    seen(f);
    if (f->check_seq) {
        char buf[32];
        size_t n = plen < sizeof(buf) - 1 ? plen : sizeof(buf) - 1;

        memcpy(buf, payload, n);
        buf[n] = '\0';
        if (strtol(buf, NULL, 10) != f->nmsgs)
            f->seq_bad++;
    }
    if (f->nmsgs < MAX_REC) {
        rec_set(&f->msgs[f->nmsgs], chan, clen);
        f->msgs[f->nmsgs].sharded = sharded;
    }
    f->nmsgs++;
    free(f->payload);
    f->payload = malloc(plen ? plen : 1);
    assert_non_null(f->payload);
    memcpy(f->payload, payload, plen);
    f->payload_len = plen;
    if (f->destroy_in_message) {
        rc_sublink_destroy(f->link);
        f->link = NULL;
        f->destroyed = true;
    }
}

static void on_subscribed(void *ctx, const char *chan, size_t len, bool sharded,
                          long long count)
{
    fx_t *f = ctx;

    seen(f);
    assert_true(f->nsubs < MAX_REC);
    rec_set(&f->subs[f->nsubs], chan, len);
    f->subs[f->nsubs].sharded = sharded;
    f->subs[f->nsubs].count = count;
    f->nsubs++;
}

static void on_unsubscribed(void *ctx, const char *chan, size_t len,
                            bool sharded, bool solicited)
{
    fx_t *f = ctx;

    seen(f);
    assert_true(f->nunsubs < MAX_REC);
    rec_set(&f->unsubs[f->nunsubs], chan, len);
    f->unsubs[f->nunsubs].sharded = sharded;
    f->unsubs[f->nunsubs].solicited = solicited;
    f->nunsubs++;
}

static void on_pong(void *ctx)
{
    fx_t *f = ctx;

    seen(f);
    f->pongs++;
}

static void on_error(void *ctx, const char *text, size_t len,
                     const rc_sublink_cmd_t *c)
{
    fx_t *f = ctx;
    err_rec_t *e;

    seen(f);
    assert_true(f->nerrs < MAX_REC);
    e = &f->errs[f->nerrs++];
    snprintf(e->text, sizeof(e->text), "%.*s", (int)len, text);
    e->op = c->op;
    e->cookie = c->cookie;
    e->n = c->n;
    for (size_t i = 0; i < c->n && i < 4; i++)
        snprintf(e->chans[i], sizeof(e->chans[i]), "%.*s", (int)c->lens[i],
                 c->channels[i]);
}

static void on_close(void *ctx, const char *reason)
{
    fx_t *f = ctx;

    seen(f);
    f->closes++;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
    if (f->destroy_in_close) {
        rc_sublink_destroy(f->link);
        f->link = NULL;
        f->destroyed = true;
    }
}

static const rc_sublink_cbs_t cbs = {
    .on_ready = on_ready,
    .on_message = on_message,
    .on_subscribed = on_subscribed,
    .on_unsubscribed = on_unsubscribed,
    .on_pong = on_pong,
    .on_error = on_error,
    .on_close = on_close,
};

static rc_sublink_t *link_open(fx_t *f, const char *user, const char *pass,
                               size_t max_outbuf)
{
    rc_sublink_cfg_t cfg = {
        .ip = "127.0.0.1",
        .port = (uint16_t)f->port,
        .user = user,
        .password = pass,
        .max_outbuf = max_outbuf,
    };

    f->link = rc_sublink_create(&f->loop, &cfg, &cbs, f);
    assert_non_null(f->link);
    return f->link;
}

/* ---- driving the loop ---------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    fx_t *f = t->data;

    if ((f->pred && f->pred(f)) || uv_now(&f->loop) >= f->deadline)
        uv_stop(&f->loop);
}

/* Runs the loop until pred holds or ms pass (pred NULL: just ms). */
static bool run_until(fx_t *f, pred_fn pred, int want, uint64_t ms)
{
    uv_timer_t t;

    f->pred = pred;
    f->want = want;
    uv_update_time(&f->loop);
    f->deadline = uv_now(&f->loop) + ms;
    uv_timer_init(&f->loop, &t);
    t.data = f;
    uv_timer_start(&t, on_tick, 1, 1);
    if (!pred || !pred(f))
        uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* lets the timer's close finish */
    f->pred = NULL;
    return pred ? pred(f) : true;
}

static bool p_ready(const fx_t *f)
{
    return f->ready >= 1 || f->closes > 0;
}

static bool p_subs(const fx_t *f)
{
    return f->nsubs >= f->want || f->closes > 0;
}

static bool p_unsubs(const fx_t *f)
{
    return f->nunsubs >= f->want || f->closes > 0;
}

static bool p_msgs(const fx_t *f)
{
    return f->nmsgs >= f->want || f->closes > 0;
}

static bool p_pongs(const fx_t *f)
{
    return f->pongs >= f->want || f->closes > 0;
}

static bool p_errs(const fx_t *f)
{
    return f->nerrs >= f->want || f->closes > 0;
}

static bool p_closed(const fx_t *f)
{
    return f->closes >= 1;
}

static void wait_ready(fx_t *f)
{
    assert_true(run_until(f, p_ready, 1, WAIT_MS));
    assert_int_equal(f->closes, 0);
    assert_int_equal(f->ready, 1);
}

static void sub1(fx_t *f, const char *chan, bool sharded, uint64_t cookie)
{
    const char *chans[1] = {chan};
    size_t lens[1] = {strlen(chan)};

    assert_int_equal(
        rc_sublink_subscribe(f->link, chans, lens, 1, sharded, cookie), RC_OK);
}

/* ---- fixtures ----------------------------------------------------------- */

static int setup_common(void **state, bool cluster)
{
    fx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    start_redis(f, cluster);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_common(state, false);
}

static int setup_cluster(void **state)
{
    return setup_common(state, true);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int before;

    if (f->link) {
        rc_sublink_destroy(f->link);
        f->link = NULL;
        f->destroyed = true;
    }
    before = f->after_destroy;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until the link's handle closed */
    assert_int_equal(f->after_destroy, before);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    stop_redis(f);
    free(f->payload);
    free(f);
    return 0;
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_subscribe_message(void **state)
{
    fx_t *f = *state;

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "news", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    assert_string_equal(f->subs[0].chan, "news");
    assert_false(f->subs[0].sharded);
    assert_int_equal(f->subs[0].count, 1);
    assert_int_equal(rc_sublink_pending(f->link), 0);

    assert_int_equal(publish(f, false, "news", "hello", 5), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_int_equal(f->nmsgs, 1);
    assert_string_equal(f->msgs[0].chan, "news");
    assert_false(f->msgs[0].sharded);
    assert_int_equal(f->payload_len, 5);
    assert_memory_equal(f->payload, "hello", 5);
    assert_int_equal(f->closes, 0);
}

/* The case that aborts hiredis 0.14's async dispatcher. */
static void test_ssubscribe_smessage(void **state)
{
    fx_t *f = *state;
    const char *chans[2] = {"shard:{a}1", "shard:{a}2"};
    size_t lens[2] = {10, 10};

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    assert_int_equal(rc_sublink_subscribe(f->link, chans, lens, 2, true, 7),
                     RC_OK);
    assert_true(run_until(f, p_subs, 2, WAIT_MS));
    assert_int_equal(f->nsubs, 2);
    assert_string_equal(f->subs[0].chan, "shard:{a}1");
    assert_string_equal(f->subs[1].chan, "shard:{a}2");
    assert_true(f->subs[0].sharded && f->subs[1].sharded);
    assert_int_equal(f->subs[1].count, 2);

    assert_int_equal(publish(f, true, "shard:{a}2", "sharded!", 8), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_string_equal(f->msgs[0].chan, "shard:{a}2");
    assert_true(f->msgs[0].sharded);
    assert_memory_equal(f->payload, "sharded!", 8);
    assert_int_equal(f->closes, 0);
}

static void test_ping_while_subscribed(void **state)
{
    fx_t *f = *state;

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    /* Not subscribed yet: +PONG. */
    assert_int_equal(rc_sublink_ping(f->link), RC_OK);
    assert_true(run_until(f, p_pongs, 1, WAIT_MS));
    assert_int_equal(f->pongs, 1);
    /* Subscribed: ["pong", ""], which hiredis 0.14 misparses. */
    sub1(f, "c", false, 1);
    sub1(f, "s", true, 2);
    assert_int_equal(rc_sublink_ping(f->link), RC_OK);
    assert_int_equal(rc_sublink_ping(f->link), RC_OK);
    assert_true(run_until(f, p_pongs, 3, WAIT_MS));
    assert_int_equal(f->pongs, 3);
    assert_int_equal(f->nsubs, 2);
    run_until(f, NULL, 0, 100);
    assert_int_equal(f->nmsgs, 0); /* no bogus message */
    assert_int_equal(f->nerrs, 0);
    assert_int_equal(f->pongs, 3);
    assert_int_equal(rc_sublink_pending(f->link), 0);
    /* The link is still in step: a real message comes through. */
    assert_int_equal(publish(f, false, "c", "x", 1), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_int_equal(f->nmsgs, 1);
    assert_string_equal(f->msgs[0].chan, "c");
    assert_int_equal(f->closes, 0);
}

/* Errors come one per command and land on that command's batch; the
 * confirmations of the batches around it still land where they belong.
 * All sent before on_ready: they wait behind AUTH. */
static void test_error_attributed(void **state)
{
    fx_t *f = *state;
    const char *bad[2] = {"forbidden:x", "allowed:y"};
    size_t badlen[2] = {11, 9};

    cmd_ok(f, "ACL SETUSER limited on >pw ~* &allowed:* +@all");
    link_open(f, "limited", "pw", 0);
    sub1(f, "allowed:a", false, 1);
    assert_int_equal(rc_sublink_subscribe(f->link, bad, badlen, 2, false, 2),
                     RC_OK);
    sub1(f, "forbidden:s", true, 3);
    sub1(f, "allowed:b", false, 4);
    assert_int_equal(rc_sublink_ping(f->link), RC_OK);
    assert_int_equal(rc_sublink_pending(f->link), 6); /* AUTH too */
    wait_ready(f);
    assert_true(run_until(f, p_pongs, 1, WAIT_MS));

    assert_int_equal(f->nerrs, 2);
    assert_int_equal(f->errs[0].op, RC_SUBLINK_SUBSCRIBE);
    assert_int_equal(f->errs[0].cookie, 2);
    assert_int_equal(f->errs[0].n, 2);
    assert_string_equal(f->errs[0].chans[0], "forbidden:x");
    assert_string_equal(f->errs[0].chans[1], "allowed:y");
    assert_true(strncmp(f->errs[0].text, "NOPERM", 6) == 0);
    assert_int_equal(f->errs[1].op, RC_SUBLINK_SSUBSCRIBE);
    assert_int_equal(f->errs[1].cookie, 3);
    assert_int_equal(f->errs[1].n, 1);
    assert_string_equal(f->errs[1].chans[0], "forbidden:s");
    assert_true(strncmp(f->errs[1].text, "NOPERM", 6) == 0);

    assert_int_equal(f->nsubs, 2);
    assert_string_equal(f->subs[0].chan, "allowed:a");
    assert_string_equal(f->subs[1].chan, "allowed:b");
    assert_int_equal(f->subs[1].count, 2);
    assert_int_equal(f->pongs, 1);
    assert_int_equal(f->closes, 0);
    assert_int_equal(rc_sublink_pending(f->link), 0);
    /* The failed batch really is not subscribed, the others are. */
    assert_int_equal(publish(f, false, "allowed:y", "n", 1), 0);
    assert_int_equal(publish(f, false, "allowed:b", "y", 1), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_string_equal(f->msgs[0].chan, "allowed:b");
}

static void test_wrong_password(void **state)
{
    fx_t *f = *state;

    cmd_ok(f, "ACL SETUSER limited on >pw ~* &allowed:* +@all");
    link_open(f, "limited", "not-the-password", 0);
    sub1(f, "allowed:a", false, 1); /* waits behind AUTH; never confirmed */
    assert_true(run_until(f, p_closed, 1, WAIT_MS));
    run_until(f, NULL, 0, 100);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->ready, 0);
    assert_int_equal(f->nsubs, 0);
    assert_int_equal(f->nerrs, 0);
    assert_non_null(strstr(f->reason, "AUTH"));
    assert_non_null(strstr(f->reason, "WRONGPASS"));
    assert_int_equal(rc_sublink_ping(f->link), RC_ECLOSED);
}

static void test_unsubscribe_solicited(void **state)
{
    fx_t *f = *state;
    const char *ab[2] = {"a", "b"};
    size_t ablen[2] = {1, 1};

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    assert_int_equal(rc_sublink_subscribe(f->link, ab, ablen, 2, false, 1),
                     RC_OK);
    sub1(f, "s", true, 2);
    assert_true(run_until(f, p_subs, 3, WAIT_MS));
    assert_int_equal(rc_sublink_unsubscribe(f->link, ab, ablen, 1, false, 3),
                     RC_OK);
    assert_true(run_until(f, p_unsubs, 1, WAIT_MS));
    assert_int_equal(f->nunsubs, 1);
    assert_string_equal(f->unsubs[0].chan, "a");
    assert_true(f->unsubs[0].solicited);
    assert_false(f->unsubs[0].sharded);

    const char *s[1] = {"s"};
    size_t slen[1] = {1};
    assert_int_equal(rc_sublink_unsubscribe(f->link, s, slen, 1, true, 4),
                     RC_OK);
    assert_true(run_until(f, p_unsubs, 2, WAIT_MS));
    assert_string_equal(f->unsubs[1].chan, "s");
    assert_true(f->unsubs[1].solicited);
    assert_true(f->unsubs[1].sharded);
    assert_int_equal(rc_sublink_unsubscribe(f->link, ab, ablen, 0, false, 5),
                     RC_EINVAL);

    assert_int_equal(publish(f, false, "a", "no", 2), 0);
    assert_int_equal(publish(f, false, "b", "yes", 3), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_string_equal(f->msgs[0].chan, "b");
    assert_int_equal(f->closes, 0);
    assert_int_equal(f->nerrs, 0);
}

/* Redis Cluster drops shard channels of a slot that leaves the node and
 * tells the subscriber with a `sunsubscribe` nobody asked for. */
static void test_unsolicited_sunsubscribe(void **state)
{
    fx_t *f = *state;
    redisReply *r;
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;
    long long slot;
    bool ok = false;

    cmd_ok(f, "CLUSTER ADDSLOTSRANGE 0 16383");
    while (!ok && now_ms() < deadline) {
        r = cmd(f, "CLUSTER INFO");
        ok = r->type == REDIS_REPLY_STRING &&
             strstr(r->str, "cluster_state:ok") != NULL;
        freeReplyObject(r);
        if (!ok)
            sleep_ms(50);
    }
    assert_true(ok);
    r = cmd(f, "CLUSTER KEYSLOT room:1");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    slot = r->integer;
    freeReplyObject(r);

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "room:1", true, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    cmd_ok(f, "CLUSTER DELSLOTS %lld", slot);
    assert_true(run_until(f, p_unsubs, 1, WAIT_MS));
    assert_int_equal(f->nunsubs, 1);
    assert_string_equal(f->unsubs[0].chan, "room:1");
    assert_true(f->unsubs[0].sharded);
    assert_false(f->unsubs[0].solicited);
    /* The slot is gone: SSUBSCRIBE now fails, attributed to its batch. */
    sub1(f, "room:1", true, 42);
    assert_true(run_until(f, p_errs, 1, WAIT_MS));
    assert_int_equal(f->errs[0].cookie, 42);
    assert_true(strncmp(f->errs[0].text, "CLUSTERDOWN", 11) == 0);
    assert_int_equal(f->closes, 0);
}

static void test_big_payload(void **state)
{
    fx_t *f = *state;
    size_t n = 1024 * 1024;
    char *big = malloc(n);

    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "big", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    assert_int_equal(publish(f, false, "big", big, n), 1);
    assert_int_equal(publish(f, false, "big", "after", 5), 1);
    assert_true(run_until(f, p_msgs, 2, WAIT_MS));
    assert_int_equal(f->nmsgs, 2);
    /* the big one came whole, the one after it intact */
    assert_int_equal(f->payload_len, 5);
    assert_memory_equal(f->payload, "after", 5);
    f->nmsgs = 0;
    assert_int_equal(publish(f, false, "big", big, n), 1);
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    assert_int_equal(f->payload_len, n);
    assert_memory_equal(f->payload, big, n);
    assert_int_equal(f->closes, 0);
    free(big);
}

static void test_many_in_order(void **state)
{
    fx_t *f = *state;
    const int n = 10000;
    redisReply *r;

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "seq", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    f->check_seq = true;
    for (int i = 0; i < n; i++)
        assert_int_equal(redisAppendCommand(f->pub, "PUBLISH seq %d", i),
                         REDIS_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(redisGetReply(f->pub, (void **)&r), REDIS_OK);
        assert_int_equal(r->integer, 1);
        freeReplyObject(r);
    }
    assert_true(run_until(f, p_msgs, n, 20000));
    assert_int_equal(f->nmsgs, n);
    assert_int_equal(f->seq_bad, 0);
    assert_int_equal(f->closes, 0);
}

static void test_server_killed_closed_once(void **state)
{
    fx_t *f = *state;
    const char *c[1] = {"x"};
    size_t cl[1] = {1};

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "k", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    kill(f->redis_pid, SIGKILL);
    waitpid(f->redis_pid, NULL, 0);
    f->redis_pid = 0;
    assert_true(run_until(f, p_closed, 1, WAIT_MS));
    run_until(f, NULL, 0, 200);
    assert_int_equal(f->closes, 1);
    assert_true(f->reason[0] != '\0');
    assert_int_equal(rc_sublink_ping(f->link), RC_ECLOSED);
    assert_int_equal(rc_sublink_subscribe(f->link, c, cl, 1, false, 1),
                     RC_ECLOSED);
}

/* Nothing listens: on_close reports it, and destroy inside on_close. */
static void test_refused_destroy_in_close(void **state)
{
    fx_t *f = *state;
    int port = f->port;

    stop_redis(f);
    f->port = port;
    f->destroy_in_close = true;
    link_open(f, NULL, NULL, 0);
    assert_true(run_until(f, p_closed, 1, WAIT_MS));
    run_until(f, NULL, 0, 100);
    assert_null(f->link);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->ready, 0);
    assert_non_null(strstr(f->reason, "connect"));
    assert_int_equal(f->after_destroy, 0);
}

/* A stalled Redis with commands in flight, then destroy: nothing fires
 * after it, nothing leaks (ASan / valgrind), queued writes are freed. */
static void test_sigstop_destroy(void **state)
{
    fx_t *f = *state;
    size_t clen = 64 * 1024;
    char *chan = malloc(clen);
    const char *chans[1] = {chan};
    int before;

    assert_non_null(chan);
    memset(chan, 'q', clen);
    link_open(f, NULL, NULL, 64u * 1024 * 1024);
    wait_ready(f);
    sub1(f, "live", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    kill(f->redis_pid, SIGSTOP);
    for (int i = 0; i < 256; i++) { /* 16 MiB: more than the socket takes */
        chan[0] = (char)('a' + i % 26);
        assert_int_equal(
            rc_sublink_subscribe(f->link, chans, &clen, 1, false, (uint64_t)i),
            RC_OK);
        assert_int_equal(rc_sublink_ping(f->link), RC_OK);
    }
    run_until(f, NULL, 0, 200);
    assert_true(rc_sublink_queued_bytes(f->link) > 0); /* writes in flight */
    assert_int_equal(rc_sublink_pending(f->link), 512);
    assert_int_equal(f->closes, 0);
    before = f->nsubs + f->pongs + f->nerrs;
    rc_sublink_destroy(f->link);
    f->link = NULL;
    f->destroyed = true;
    kill(f->redis_pid, SIGCONT);
    run_until(f, NULL, 0, 300);
    assert_int_equal(f->after_destroy, 0);
    assert_int_equal(f->nsubs + f->pongs + f->nerrs, before);
    assert_int_equal(f->closes, 0);
    free(chan);
}

/* The outbound bound: a stalled Redis and a small max_outbuf close the
 * link (once), and the call that passed the bound says so. */
static void test_outbuf_bound(void **state)
{
    fx_t *f = *state;
    size_t clen = 16 * 1024;
    char *chan = malloc(clen);
    const char *chans[1] = {chan};
    rc_err_t err = RC_OK;
    int i;

    assert_non_null(chan);
    memset(chan, 'o', clen);
    link_open(f, NULL, NULL, 256 * 1024);
    wait_ready(f);
    kill(f->redis_pid, SIGSTOP);
    for (i = 0; i < 4096 && err == RC_OK; i++) {
        err = rc_sublink_subscribe(f->link, chans, &clen, 1, false, 1);
        if (i % 16 == 15)
            run_until(f, NULL, 0, 5); /* let libuv write what it can */
    }
    assert_int_equal(err, RC_ELIMIT);
    assert_true(run_until(f, p_closed, 1, WAIT_MS));
    run_until(f, NULL, 0, 100);
    assert_int_equal(f->closes, 1);
    assert_non_null(strstr(f->reason, "outbound"));
    assert_int_equal(f->nsubs, 0);
    assert_int_equal(rc_sublink_subscribe(f->link, chans, &clen, 1, false, 1),
                     RC_ECLOSED);
    free(chan);
}

static void test_destroy_in_on_message(void **state)
{
    fx_t *f = *state;
    redisReply *r;

    link_open(f, NULL, NULL, 0);
    wait_ready(f);
    sub1(f, "d", false, 1);
    assert_true(run_until(f, p_subs, 1, WAIT_MS));
    /* Pipelined, so they tend to arrive in one read: the dispatch loop
     * must stop after the callback that destroyed the link. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(redisAppendCommand(f->pub, "PUBLISH d %d", i),
                         REDIS_OK);
    assert_int_equal(redisAppendCommand(f->pub, "PING"), REDIS_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(redisGetReply(f->pub, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }
    f->destroy_in_message = true;
    assert_true(run_until(f, p_msgs, 1, WAIT_MS));
    run_until(f, NULL, 0, 200);
    assert_null(f->link);
    assert_int_equal(f->nmsgs, 1);
    assert_int_equal(f->after_destroy, 0);
    assert_int_equal(f->closes, 0);
}

static void test_destroy_before_connect(void **state)
{
    fx_t *f = *state;

    link_open(f, "u", "p", 0);
    sub1(f, "early", false, 1);
    rc_sublink_destroy(f->link);
    f->link = NULL;
    f->destroyed = true;
    run_until(f, NULL, 0, 100);
    assert_int_equal(f->after_destroy, 0);
    assert_int_equal(f->ready + f->closes + f->nsubs, 0);
}

static void test_bad_config(void **state)
{
    fx_t *f = *state;
    rc_sublink_cfg_t cfg = {.ip = "localhost", .port = 6379};

    /* names are the caller's to resolve */
    assert_null(rc_sublink_create(&f->loop, &cfg, &cbs, f));
    cfg.ip = NULL;
    assert_null(rc_sublink_create(&f->loop, &cfg, &cbs, f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subscribe_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ssubscribe_smessage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ping_while_subscribed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_attributed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_solicited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unsolicited_sunsubscribe,
                                        setup_cluster, teardown),
        cmocka_unit_test_setup_teardown(test_big_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_closed_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_destroy_in_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigstop_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbuf_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_on_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_before_connect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

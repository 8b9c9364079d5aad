/* The adapter conformance suite: one set of tests that every adapter must
 * pass before the node may trust it, run here against the `local` adapter,
 * the Redis adapter (a real redis-server on a free loopback port), and the
 * Redis adapter on Redis Cluster (a real 3-master, 3-replica cluster,
 * tests/adapter/cluster_server.c, started once for the run; each test
 * gets a key prefix of its own).
 *
 * What an adapter promises (adapter/adapter.h), checked below:
 * - every callback given to an op is called exactly once, and never after
 *   rc_adapter_destroy() returned (also with requests in flight to a stalled
 *   backend);
 * - deliver() carries the token of an open room, never one that was closed;
 * - a publish is delivered once to an open room; publishes from one node are
 *   delivered in seq order, seqs consecutive;
 * - history after `since` holds exactly the messages after it, in order, with
 *   `recovered` false once the history lost some, and the seam: every
 *   message after the `latest` that history reported is delivered live;
 * - a session snapshot is taken once.
 * A new adapter (NATS, say) is added to backends[] and must pass all of it.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "adapter/adapter.h"
#include "tests/adapter/cluster_server.h"
#include "tests/adapter/redis_server.h"

#define MAXREC 4096
#define TIMEOUT_MS 5000

/* The cluster every cluster setup shares (main starts it when the group
 * runs), and its URL. */
static cs_cluster_t cluster;
static char cluster_url[256];
static unsigned cluster_runs; /* makes each test's prefix */

typedef struct fixture {
    uv_loop_t loop;
    rc_test_redis_t redis; /* pid 0 for the local adapter */
    bool use_redis;
    bool use_cluster; /* the shared cluster (cluster_url) */
    char prefix[24];  /* the key prefix */
    rc_adapter_t *ad;
    /* what the sink saw */
    void *tok[MAXREC];
    uint64_t seq[MAXREC];
    size_t ndeliver;
    int ups, downs;
    size_t resync_at[MAXREC]; /* ndeliver when each resync came */
    size_t nresync;
    /* what the op callbacks saw */
    int pub_calls, hist_calls, save_calls, take_calls;
    rc_err_t pub_err[MAXREC];
    uint64_t pub_seq[MAXREC];
    uint64_t hist_latest;
    bool hist_recovered;
    uint64_t hist_seqs[MAXREC];
    size_t hist_n;
    rc_err_t hist_err, save_err, take_err;
    bool take_used;
    char take_json[256];
    int metrics;
    /* Redis setups */
    uint32_t wait_replicas;
    int64_t wait_timeout_ms;
    bool close_on_hist_err; /* on_history(error) closes rooms x0..x7 */
    int hist_errs;
} fixture_t;

/* ------------------------------------------------------------- sink */

static void on_deliver(void *ctx, void *token, rc_msg_t *m)
{
    fixture_t *fx = ctx;

    assert_non_null(token);
    if (fx->ndeliver < MAXREC) {
        fx->tok[fx->ndeliver] = token;
        fx->seq[fx->ndeliver] = m->seq;
    }
    fx->ndeliver++;
}

/* The sink's resync: when it came, in deliveries seen so far. */
static void on_resync(void *ctx, void *token)
{
    fixture_t *fx = ctx;

    assert_non_null(token);
    if (fx->nresync < MAXREC)
        fx->resync_at[fx->nresync++] = fx->ndeliver;
}

static void on_state(void *ctx, bool up)
{
    fixture_t *fx = ctx;
    if (up)
        fx->ups++;
    else
        fx->downs++;
}

static void on_control(void *ctx, const char *cmd)
{
    (void)ctx;
    (void)cmd;
}

static size_t on_node_info(void *ctx, char *buf, size_t len)
{
    (void)ctx;
    return (size_t)snprintf(buf, len, "{\"clients\":0}");
}

/* --------------------------------------------------------- op callbacks */

static void on_published(void *arg, rc_err_t err, uint64_t seq)
{
    fixture_t *fx = arg;
    int i = fx->pub_calls++;

    if (i < MAXREC) {
        fx->pub_err[i] = err;
        fx->pub_seq[i] = seq;
    }
}

static void on_history(void *arg, rc_err_t err, uint64_t latest, bool recovered,
                       rc_msg_t *const *msgs, size_t n)
{
    fixture_t *fx = arg;

    fx->hist_calls++;
    fx->hist_err = err;
    if (err != RC_OK) {
        fx->hist_errs++;
        /* A node whose last member of every room leaves on the error:
         * rooms are closed (and freed) while the adapter fails the rest. */
        if (fx->close_on_hist_err)
            for (int i = 0; i < 8; i++) {
                char room[8];
                snprintf(room, sizeof(room), "x%d", i);
                fx->ad->ops->room_close(fx->ad, room);
            }
    }
    fx->hist_latest = latest;
    fx->hist_recovered = recovered;
    fx->hist_n = n;
    for (size_t i = 0; i < n && i < MAXREC; i++)
        fx->hist_seqs[i] = msgs[i]->seq;
}

static void on_saved(void *arg, rc_err_t err)
{
    fixture_t *fx = arg;
    fx->save_calls++;
    fx->save_err = err;
}

static void on_taken(void *arg, rc_err_t err, bool used, const char *json,
                     size_t len)
{
    fixture_t *fx = arg;

    fx->take_calls++;
    fx->take_err = err;
    fx->take_used = used;
    snprintf(fx->take_json, sizeof(fx->take_json), "%.*s", (int)len,
             json ? json : "");
}

static void on_metric(void *ctx, rc_metric_kind_t kind, const char *name,
                      const char *help, uint64_t value)
{
    fixture_t *fx = ctx;

    (void)value;
    assert_true(kind == RC_METRIC_COUNTER || kind == RC_METRIC_GAUGE);
    assert_true(name[0] != '\0' && help[0] != '\0');
    for (const char *p = name; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || *p == '_' ||
                    (*p >= '0' && *p <= '9'));
    fx->metrics++;
}

/* ------------------------------------------------------------- driving */

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

typedef bool (*cond_fn)(fixture_t *fx, uintptr_t arg);

/* Runs the loop until cond holds or ms passed; returns cond. */
static bool run_until(fixture_t *fx, cond_fn cond, uintptr_t arg, int ms)
{
    uv_timer_t t;
    bool expired = false;

    uv_timer_init(&fx->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (!cond(fx, arg) && !expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return cond(fx, arg);
}

static bool is_ready(fixture_t *fx, uintptr_t arg)
{
    (void)arg;
    return fx->ad->ops->ready(fx->ad);
}

static bool pubs_at_least(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->pub_calls >= n;
}

static bool delivers_at_least(fixture_t *fx, uintptr_t n)
{
    return fx->ndeliver >= n;
}

static bool hist_at_least(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->hist_calls >= n;
}

static bool never(fixture_t *fx, uintptr_t arg)
{
    (void)fx;
    (void)arg;
    return false;
}

static rc_adapter_t *make_adapter(fixture_t *fx, uint32_t history_size)
{
    rc_adapter_sink_t sink = {.deliver = on_deliver,
                              .resync = on_resync,
                              .state = on_state,
                              .control = on_control,
                              .node_info = on_node_info,
                              .ctx = fx};
    rc_adapter_config_t cfg = {
        .url = fx->use_cluster ? cluster_url
               : fx->use_redis ? fx->redis.url
                               : NULL,
        .prefix = fx->prefix,
        .node_id = "conformance",
        .history_size = history_size,
        .history_ttl_ms = 60000,
        .max_publish = 65536,
        .unsubscribe_delay_ms = 2000,
        .wait_replicas = fx->wait_replicas,
        .wait_timeout_ms = fx->wait_timeout_ms,
    };
    char err[256] = "";
    rc_adapter_t *ad =
        rc_adapter_create(&fx->loop, &sink, &cfg, err, sizeof(err));

    if (!ad)
        fail_msg("rc_adapter_create: %s", err);
    return ad;
}

/* Open a room the way the node joins its first member: room_open, then a
 * history read, whose reply marks the seam. */
static void open_room(fixture_t *fx, const char *room, void *token)
{
    int before = fx->hist_calls;

    fx->ad->ops->room_open(fx->ad, room, token);
    assert_int_equal(
        fx->ad->ops->history(fx->ad, room, false, 0, on_history, fx), RC_OK);
    assert_true(
        run_until(fx, hist_at_least, (uintptr_t)before + 1, TIMEOUT_MS));
    assert_int_equal(fx->hist_err, RC_OK);
}

static void publish(fixture_t *fx, const char *room, const char *data)
{
    assert_int_equal(fx->ad->ops->publish(fx->ad, room, data, strlen(data),
                                          on_published, fx),
                     RC_OK);
}

/* ------------------------------------------------------------- fixtures */

static int setup_with(void **state, bool use_redis, uint32_t history_size)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->use_redis = use_redis;
    snprintf(fx->prefix, sizeof(fx->prefix), "conf:");
    uv_loop_init(&fx->loop);
    if (use_redis && !rc_test_redis_start(&fx->redis))
        fail_msg("redis-server did not start");
    fx->ad = make_adapter(fx, history_size);
    assert_true(run_until(fx, is_ready, 0, TIMEOUT_MS));
    *state = fx;
    return 0;
}

static int setup_local(void **state)
{
    return setup_with(state, false, 100);
}

static int setup_redis(void **state)
{
    return setup_with(state, true, 100);
}

static int setup_local_small(void **state)
{
    return setup_with(state, false, 5);
}

/* Every durable publish waits 3 s for a replica that does not exist: the
 * command link is blocked behind it for that long. */
static int setup_redis_wait(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->use_redis = true;
    fx->wait_replicas = 1;
    fx->wait_timeout_ms = 3000;
    snprintf(fx->prefix, sizeof(fx->prefix), "conf:");
    uv_loop_init(&fx->loop);
    if (!rc_test_redis_start(&fx->redis))
        fail_msg("redis-server did not start");
    fx->ad = make_adapter(fx, 100);
    assert_true(run_until(fx, is_ready, 0, TIMEOUT_MS));
    *state = fx;
    return 0;
}

static int setup_redis_small(void **state)
{
    return setup_with(state, true, 5);
}

static int setup_cluster_with(void **state, uint32_t history_size)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    assert_true(cluster_url[0] != '\0');
    fx->use_redis = fx->use_cluster = true;
    snprintf(fx->prefix, sizeof(fx->prefix), "cc%u:", ++cluster_runs);
    uv_loop_init(&fx->loop);
    fx->ad = make_adapter(fx, history_size);
    assert_true(run_until(fx, is_ready, 0, 3 * TIMEOUT_MS));
    *state = fx;
    return 0;
}

static int setup_cluster(void **state)
{
    return setup_cluster_with(state, 100);
}

static int setup_cluster_small(void **state)
{
    return setup_cluster_with(state, 5);
}

static void report_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "left open: %s active=%d closing=%d\n",
            uv_handle_type_name(h->type), uv_is_active(h), uv_is_closing(h));
}

static int teardown(void **state)
{
    fixture_t *fx = *state;

    rc_adapter_destroy(fx->ad);
    fx->ad = NULL;
    rc_test_redis_stop(&fx->redis);
    /* Everything the adapter owned closes within a bounded time. */
    for (int i = 0; i < 2000 && uv_run(&fx->loop, UV_RUN_NOWAIT); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    uv_walk(&fx->loop, report_handle, NULL);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* ---------------------------------------------------------------- tests */

static int tok_a, tok_b;

static void test_publish_delivered_once(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "r", &tok_a);
    publish(fx, "r", "{\"n\":1}");
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    assert_true(run_until(fx, pubs_at_least, 1, TIMEOUT_MS));
    /* Nothing more arrives: once, not twice. */
    run_until(fx, never, 0, 200);
    assert_int_equal(fx->pub_calls, 1);
    assert_int_equal(fx->pub_err[0], RC_OK);
    assert_true(fx->pub_seq[0] > 0);
    assert_int_equal(fx->ndeliver, 1);
    assert_ptr_equal(fx->tok[0], &tok_a);
    assert_int_equal(fx->seq[0], fx->pub_seq[0]);
}

static void test_order(void **state)
{
    fixture_t *fx = *state;
    const int n = 500;

    open_room(fx, "r", &tok_a);
    for (int i = 0; i < n; i++)
        publish(fx, "r", "{\"k\":\"v\"}");
    assert_true(run_until(fx, delivers_at_least, (uintptr_t)n, TIMEOUT_MS));
    assert_true(run_until(fx, pubs_at_least, (uintptr_t)n, TIMEOUT_MS));
    run_until(fx, never, 0, 100);
    assert_int_equal(fx->ndeliver, n);
    assert_int_equal(fx->pub_calls, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(fx->pub_err[i], RC_OK);
        assert_int_equal(fx->seq[i], fx->pub_seq[i]);
        if (i)
            assert_int_equal(fx->seq[i], fx->seq[i - 1] + 1);
    }
}

static void test_history_seam(void **state)
{
    fixture_t *fx = *state;
    uint64_t since;

    open_room(fx, "r", &tok_a);
    for (int i = 0; i < 10; i++)
        publish(fx, "r", "[1,2]");
    assert_true(run_until(fx, pubs_at_least, 10, TIMEOUT_MS));
    since = fx->pub_seq[2];
    assert_int_equal(
        fx->ad->ops->history(fx->ad, "r", true, since, on_history, fx), RC_OK);
    assert_true(run_until(fx, hist_at_least, 2, TIMEOUT_MS));
    assert_int_equal(fx->hist_err, RC_OK);
    assert_true(fx->hist_recovered);
    assert_int_equal(fx->hist_latest, fx->pub_seq[9]);
    assert_int_equal(fx->hist_n, 7);
    for (size_t i = 0; i < fx->hist_n; i++)
        assert_int_equal(fx->hist_seqs[i], since + 1 + i);
    /* The seam: what comes after `latest` arrives live. */
    publish(fx, "r", "true");
    assert_true(run_until(fx, delivers_at_least, 11, TIMEOUT_MS));
    assert_int_equal(fx->seq[10], fx->hist_latest + 1);
}

static void test_history_gap(void **state)
{
    fixture_t *fx = *state; /* history_size 5 */

    open_room(fx, "r", &tok_a);
    for (int i = 0; i < 10; i++)
        publish(fx, "r", "0");
    assert_true(run_until(fx, pubs_at_least, 10, TIMEOUT_MS));
    assert_int_equal(
        fx->ad->ops->history(fx->ad, "r", true, fx->pub_seq[0], on_history, fx),
        RC_OK);
    assert_true(run_until(fx, hist_at_least, 2, TIMEOUT_MS));
    assert_int_equal(fx->hist_err, RC_OK);
    assert_false(fx->hist_recovered);
    assert_int_equal(fx->hist_latest, fx->pub_seq[9]);
    /* What is kept is the newest, in order, ending at latest. */
    assert_true(fx->hist_n <= 5 && fx->hist_n > 0);
    assert_int_equal(fx->hist_seqs[fx->hist_n - 1], fx->pub_seq[9]);
}

static void test_closed_room_gets_nothing(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "r", &tok_a);
    publish(fx, "r", "1");
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    fx->ad->ops->room_close(fx->ad, "r");
    publish(fx, "r", "2");
    assert_true(run_until(fx, pubs_at_least, 2, TIMEOUT_MS));
    run_until(fx, never, 0, 300);
    assert_int_equal(fx->pub_err[1], RC_OK);
    assert_int_equal(fx->ndeliver, 1);
}

static void test_reopen_new_token(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "r", &tok_a);
    fx->ad->ops->room_close(fx->ad, "r");
    open_room(fx, "r", &tok_b);
    publish(fx, "r", "1");
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    run_until(fx, never, 0, 100);
    assert_int_equal(fx->ndeliver, 1);
    assert_ptr_equal(fx->tok[0], &tok_b);
}

static void test_rooms_apart(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "a", &tok_a);
    open_room(fx, "b", &tok_b);
    publish(fx, "a", "1");
    publish(fx, "b", "2");
    publish(fx, "a", "3");
    assert_true(run_until(fx, delivers_at_least, 3, TIMEOUT_MS));
    run_until(fx, never, 0, 100);
    assert_int_equal(fx->ndeliver, 3);
    assert_true(run_until(fx, pubs_at_least, 3, TIMEOUT_MS));
    if (fx->use_cluster) {
        /* Rooms live on different shards: order holds per room only (and
         * the publish replies come back in any order). */
        uint64_t last_a = 0;
        int na = 0, nb = 0;
        for (size_t i = 0; i < 3; i++) {
            bool published = false;
            for (size_t j = 0; j < 3; j++)
                published = published || fx->pub_seq[j] == fx->seq[i];
            assert_true(published);
            if (fx->tok[i] == &tok_a) {
                assert_true(fx->seq[i] > last_a);
                last_a = fx->seq[i];
                na++;
            } else {
                assert_ptr_equal(fx->tok[i], &tok_b);
                nb++;
            }
        }
        assert_int_equal(na, 2);
        assert_int_equal(nb, 1);
        return;
    }
    /* One publisher, one Redis: its messages arrive in the order it sent
     * them. */
    assert_ptr_equal(fx->tok[0], &tok_a);
    assert_ptr_equal(fx->tok[1], &tok_b);
    assert_ptr_equal(fx->tok[2], &tok_a);
    assert_int_equal(fx->seq[0], fx->pub_seq[0]);
    assert_int_equal(fx->seq[1], fx->pub_seq[1]);
    assert_int_equal(fx->seq[2], fx->pub_seq[2]);
}

static bool saved(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->save_calls >= n;
}

static bool taken(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->take_calls >= n;
}

static void test_session_taken_once(void **state)
{
    fixture_t *fx = *state;
    const char *json = "{\"sub\":\"u\",\"rooms\":[]}";

    fx->ad->ops->session_save(fx->ad, "s1", json, strlen(json), 60000, on_saved,
                              fx);
    assert_true(run_until(fx, saved, 1, TIMEOUT_MS));
    assert_int_equal(fx->save_err, RC_OK);
    assert_int_equal(
        fx->ad->ops->session_take(fx->ad, "s1", 60000, on_taken, fx), RC_OK);
    assert_true(run_until(fx, taken, 1, TIMEOUT_MS));
    assert_int_equal(fx->take_err, RC_OK);
    assert_false(fx->take_used);
    assert_string_equal(fx->take_json, json);
    assert_int_equal(
        fx->ad->ops->session_take(fx->ad, "s1", 60000, on_taken, fx), RC_OK);
    assert_true(run_until(fx, taken, 2, TIMEOUT_MS));
    assert_true(fx->take_used);
    run_until(fx, never, 0, 100);
    assert_int_equal(fx->save_calls, 1);
    assert_int_equal(fx->take_calls, 2);
}

static void test_metrics_emitted(void **state)
{
    fixture_t *fx = *state;

    fx->ad->ops->metrics(fx->ad, on_metric, fx);
    if (fx->use_redis)
        assert_true(fx->metrics > 0);
}

/* Requests in flight when the adapter is destroyed: each callback runs
 * once, before rc_adapter_destroy() returns, and nothing runs after. */
static void destroy_with_requests(fixture_t *fx, bool stall)
{
    const char *json = "{}";
    int pubs, hists, saves, takes;

    open_room(fx, "r", &tok_a);
    if (stall)
        rc_test_redis_signal(&fx->redis, SIGSTOP);
    publish(fx, "r", "1");
    assert_int_equal(fx->ad->ops->history(fx->ad, "r", true, 1, on_history, fx),
                     RC_OK);
    fx->ad->ops->session_save(fx->ad, "s2", json, 2, 60000, on_saved, fx);
    assert_int_equal(
        fx->ad->ops->session_take(fx->ad, "s3", 60000, on_taken, fx), RC_OK);
    run_until(fx, never, 0, 50);
    rc_adapter_destroy(fx->ad);
    fx->ad = NULL;
    pubs = fx->pub_calls;
    hists = fx->hist_calls;
    saves = fx->save_calls;
    takes = fx->take_calls;
    assert_int_equal(pubs, 1);
    assert_int_equal(hists, 2); /* open_room's and this one */
    assert_int_equal(saves, 1);
    assert_int_equal(takes, 1);
    if (stall)
        rc_test_redis_signal(&fx->redis, SIGCONT);
    for (int i = 0; i < 200 && uv_run(&fx->loop, UV_RUN_NOWAIT); i++)
        run_until(fx, never, 0, 5);
    assert_int_equal(fx->pub_calls, pubs);
    assert_int_equal(fx->hist_calls, hists);
    assert_int_equal(fx->save_calls, saves);
    assert_int_equal(fx->take_calls, takes);
}

static void test_destroy_with_requests(void **state)
{
    destroy_with_requests(*state, false);
}

static void test_destroy_stalled(void **state)
{
    destroy_with_requests(*state, true);
}

/* Redis only: a raw PUBLISH is ephemeral (no seq) and reaches the room. */
static void test_redis_raw_publish_ephemeral(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "r", &tok_a);
    assert_true(rc_test_redis_cmd(&fx->redis, "PUBLISH %s %s", "conf:{r}",
                                  "{\"typing\":1}") >= 1);
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    assert_ptr_equal(fx->tok[0], &tok_a);
    assert_int_equal(fx->seq[0], 0);
}

static bool downs_at_least(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->downs >= n;
}

static bool ups_at_least(fixture_t *fx, uintptr_t n)
{
    return (uintptr_t)fx->ups >= n;
}

static bool resyncs_at_least(fixture_t *fx, uintptr_t n)
{
    return fx->nresync >= n;
}

/* Redis only: a lost subscription (the pub/sub link killed) confirmed
 * again calls resync for the open room, before any live message after
 * it; the adapter itself recovers nothing. */
static void test_redis_resync_after_lost_subscription(void **state)
{
    fixture_t *fx = *state;
    int ups = fx->ups;

    open_room(fx, "r", &tok_a);
    assert_int_equal(fx->nresync, 0);
    assert_true(rc_test_redis_cmd(&fx->redis, "CLIENT KILL TYPE pubsub") >= 1);
    assert_true(run_until(fx, downs_at_least, 1, TIMEOUT_MS));
    assert_true(run_until(fx, ups_at_least, (uintptr_t)ups + 1, TIMEOUT_MS));
    assert_true(run_until(fx, resyncs_at_least, 1, TIMEOUT_MS));
    publish(fx, "r", "1");
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    assert_int_equal(fx->nresync, 1);
    assert_int_equal(fx->resync_at[0], 0); /* before the live message */
    assert_ptr_equal(fx->tok[0], &tok_a);
}

/* Cluster only: every node drops its pub/sub clients (the gateway's link
 * per master): the adapter stays up, subscribes the room again on its
 * owner and calls resync before any live message after it. */
static void test_cluster_resync_after_lost_links(void **state)
{
    fixture_t *fx = *state;

    open_room(fx, "r", &tok_a);
    assert_int_equal(fx->nresync, 0);
    for (int i = 0; i < CS_NODES; i++) {
        redisReply *rep = cs_cmd(cluster.n[i].port, "CLIENT KILL TYPE pubsub");
        if (rep)
            freeReplyObject(rep);
    }
    assert_true(run_until(fx, resyncs_at_least, 1, 3 * TIMEOUT_MS));
    assert_true(fx->ad->ops->ready(fx->ad));
    publish(fx, "r", "1");
    assert_true(run_until(fx, delivers_at_least, 1, TIMEOUT_MS));
    assert_int_equal(fx->resync_at[0], 0); /* before the live message */
    assert_ptr_equal(fx->tok[0], &tok_a);
    assert_int_equal(fx->seq[0], fx->pub_seq[0]);
}

/* Redis only: a history read whose reply comes after its room was closed
 * and its unsubscribe (2 s later) confirmed: the read holds the room. The
 * command link is blocked behind a publish's 3 s WAIT, the subscription
 * link is not. */
static void test_redis_history_reply_after_room_freed(void **state)
{
    fixture_t *fx = *state;
    int hists;

    open_room(fx, "r", &tok_a);
    hists = fx->hist_calls;
    publish(fx, "r", "1");
    assert_int_equal(fx->ad->ops->history(fx->ad, "r", true, 0, on_history, fx),
                     RC_OK);
    fx->ad->ops->room_close(fx->ad, "r");
    assert_true(run_until(fx, hist_at_least, (uintptr_t)hists + 1, 8000));
    assert_int_equal(fx->hist_calls, hists + 1);
    assert_int_equal(fx->pub_calls, 1);
    assert_int_equal(fx->pub_err[0], RC_EREPLICA);
    /* the room works again */
    open_room(fx, "r", &tok_b);
}

/* Redis only: teardown fails the waiters of many rooms while the node's
 * callbacks close (and so free) those rooms. */
static void test_redis_teardown_callbacks_free_rooms(void **state)
{
    fixture_t *fx = *state;

    fx->close_on_hist_err = true;
    rc_test_redis_signal(&fx->redis, SIGSTOP);
    for (int i = 0; i < 8; i++) {
        char room[8];
        snprintf(room, sizeof(room), "x%d", i);
        fx->ad->ops->room_open(fx->ad, room, &tok_a);
        assert_int_equal(
            fx->ad->ops->history(fx->ad, room, false, 0, on_history, fx),
            RC_OK);
    }
    /* the probe finds the stalled server (3.5 s) and tears down */
    assert_true(run_until(fx, downs_at_least, 1, 8000));
    rc_test_redis_signal(&fx->redis, SIGCONT);
    assert_int_equal(fx->hist_calls, 8);
    assert_int_equal(fx->hist_errs, 8);
    assert_true(run_until(fx, is_ready, 0, 8000));
}

#define BOTH(f)                                                                \
    cmocka_unit_test_setup_teardown(f, setup_local, teardown),                 \
        cmocka_unit_test_setup_teardown(f, setup_redis, teardown),             \
        cmocka_unit_test_setup_teardown(f, setup_cluster, teardown)

static int group_setup(void **state)
{
    (void)state;
    if (cs_start(&cluster, 2000) != 0)
        return -1;
    snprintf(cluster_url, sizeof(cluster_url),
             "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", cluster.n[0].port,
             cluster.n[1].port);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cs_stop(&cluster);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_publish_delivered_once),
        BOTH(test_order),
        BOTH(test_history_seam),
        cmocka_unit_test_setup_teardown(test_history_gap, setup_local_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_gap, setup_redis_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_gap, setup_cluster_small,
                                        teardown),
        BOTH(test_closed_room_gets_nothing),
        BOTH(test_reopen_new_token),
        BOTH(test_rooms_apart),
        BOTH(test_session_taken_once),
        BOTH(test_metrics_emitted),
        BOTH(test_destroy_with_requests),
        cmocka_unit_test_setup_teardown(test_destroy_stalled, setup_redis,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_redis_raw_publish_ephemeral,
                                        setup_redis, teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_resync_after_lost_subscription, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_history_reply_after_room_freed, setup_redis_wait,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_redis_teardown_callbacks_free_rooms, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_resync_after_lost_links,
                                        setup_cluster, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* The Redis adapter's two links on the node's loop: one for commands
 * (pipelined), one for subscriptions. Resolving the host off the loop,
 * connecting, AUTH and SELECT, loading the function library, coming up
 * (rooms resubscribe and catch up), going down (teardown), reconnecting
 * with capped, jittered backoff, and the tick that finds a stuck command
 * link or a silent subscription link (the probe).
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/adapters/libuv.h>

#include "common/log.h"

/* ----------------------------------------------------------- commands */

static void cmd_sent(redis_adapter_t *r)
{
    if (r->inflight++ == 0)
        r->progress_ms = uv_now(r->loop);
}

void rc__redis_cmd_done(redis_adapter_t *r)
{
    if (r->inflight)
        r->inflight--;
    r->progress_ms = uv_now(r->loop);
}

rc_err_t rc__redis_cmd(redis_adapter_t *r, redisCallbackFn *cb, void *pd,
                       int argc, const char **argv, const size_t *lens)
{
    if (!r->cmd || r->state == LINK_DOWN)
        return RC_EBACKEND;
    if (redisAsyncCommandArgv(r->cmd, cb, pd, argc, argv, lens) != REDIS_OK)
        return RC_EBACKEND;
    cmd_sent(r);
    return RC_OK;
}

void rc__redis_on_void_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;

    if (!r)
        return;
    rc__redis_cmd_done(r);
    if (rep && rep->type == REDIS_REPLY_ERROR)
        rc_log(RC_LOG_WARN, "redis_error", "what=%s err=\"%s\"",
               pd ? (const char *)pd : "command", rep->str);
}

/* ------------------------------------------------------------ up/down */

void rc__redis_maybe_up(redis_adapter_t *r)
{
    if (r->state != LINK_CONNECTING || !r->cmd_connected || !r->sub_connected ||
        !r->lib_loaded || !r->ctl_subscribed)
        return;
    r->state = LINK_UP;
    r->backoff_ms = RC_REDIS_BACKOFF_MIN_MS;
    r->last_sub_rx = uv_now(r->loop);
    r->m_reconnects++;
    rc_log(RC_LOG_INFO, "redis_up", "host=%s port=%d", r->url.host,
           r->url.port);
    rc__redis_rooms_up(r);
    rc__redis_announce(&r->base);
    r->base.sink.state(r->base.sink.ctx, true);
}

static void on_retry(uv_timer_t *t);

void rc__redis_teardown(redis_adapter_t *r, const char *why)
{
    redisAsyncContext *cmd = r->cmd, *sub = r->sub;
    bool was_up = r->state == LINK_UP;
    uint32_t jitter;

    if (r->state == LINK_DOWN)
        return;
    r->state = LINK_DOWN;
    r->cmd = r->sub = NULL;
    rc_log(was_up ? RC_LOG_WARN : RC_LOG_INFO, "redis_down", "why=\"%s\"",
           why ? why : "");
    /* Pending replies get NULL (callbacks handle it); ours are detached
     * first so the disconnect callbacks do not come back here. */
    if (cmd) {
        cmd->data = NULL;
        redisAsyncFree(cmd);
    }
    if (sub) {
        sub->data = NULL;
        redisAsyncFree(sub);
    }
    r->inflight = 0;
    rc__redis_rooms_down(r);
    if (was_up)
        r->base.sink.state(r->base.sink.ctx, false);
    if (r->closing)
        return;
    /* Capped exponential backoff with jitter, so a fleet of nodes does not
     * hammer a Redis that just came back. */
    if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
        jitter = (uint32_t)uv_now(r->loop);
    uv_timer_start(&r->retry, on_retry,
                   r->backoff_ms / 2 + jitter % (r->backoff_ms / 2 + 1), 0);
    r->backoff_ms = r->backoff_ms * 2 > RC_REDIS_BACKOFF_MAX_MS
                        ? RC_REDIS_BACKOFF_MAX_MS
                        : r->backoff_ms * 2;
}

/* -------------------------------------------------------- connecting */

static void on_lib_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;
    (void)pd;

    if (!r)
        return;
    rc__redis_cmd_done(r);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rc_log(RC_LOG_ERROR, "redis_function_load", "err=\"%s\"",
               rep ? rep->str : "no reply");
        rc__redis_teardown(r, "function load failed");
        return;
    }
    r->lib_loaded = 1;
    rc__redis_maybe_up(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_adapter_t *r = ac->data;

    if (!r)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (ac == r->cmd)
            r->cmd = NULL;
        if (ac == r->sub)
            r->sub = NULL;
        rc__redis_teardown(r, ac->errstr);
        return;
    }
    if (ac == r->cmd)
        r->cmd_connected = 1;
    else
        r->sub_connected = 1;
    rc__redis_maybe_up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_adapter_t *r = ac->data;

    (void)status;
    if (!r)
        return; /* we freed it ourselves */
    if (ac == r->cmd)
        r->cmd = NULL;
    if (ac == r->sub)
        r->sub = NULL;
    rc__redis_teardown(r, ac->errstr[0] ? ac->errstr : "disconnected");
}

static redisAsyncContext *open_link(redis_adapter_t *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->url.port);

    if (!ac)
        return NULL;
    if (ac->err) {
        rc_log(RC_LOG_WARN, "redis_connect", "err=\"%s\"", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    redisLibuvAttach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void auth_link(redis_adapter_t *r, redisAsyncContext *ac)
{
    if (!r->url.password[0])
        return;
    if (r->url.user[0]) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        redisAsyncCommandArgv(ac, rc__redis_on_void_reply, (void *)"auth", 3,
                              argv, lens);
    } else {
        const char *argv[2] = {"AUTH", r->url.password};
        size_t lens[2] = {4, strlen(r->url.password)};
        redisAsyncCommandArgv(ac, rc__redis_on_void_reply, (void *)"auth", 2,
                              argv, lens);
    }
    if (ac == r->cmd)
        cmd_sent(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_adapter_t *r = req->data;
    char ip[64] = "";

    r->gai_busy = 0;
    if (r->closing) {
        uv_freeaddrinfo(res);
        return;
    }
    if (status == 0 && res)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (!ip[0]) {
        rc__redis_teardown(r, "cannot resolve host");
        return;
    }
    r->cmd = open_link(r, ip);
    r->sub = open_link(r, ip);
    if (!r->cmd || !r->sub) {
        rc__redis_teardown(r, "cannot connect");
        return;
    }
    auth_link(r, r->cmd);
    auth_link(r, r->sub);
    if (r->url.db) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2];
        snprintf(db, sizeof(db), "%d", r->url.db);
        lens[0] = 6;
        lens[1] = strlen(db);
        redisAsyncCommandArgv(r->cmd, rc__redis_on_void_reply, (void *)"select",
                              2, argv, lens);
        cmd_sent(r);
    }
    {
        const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", r->library};
        size_t lens[4] = {8, 4, 7, strlen(r->library)};
        redisAsyncCommandArgv(r->cmd, on_lib_reply, NULL, 4, argv, lens);
        cmd_sent(r);
    }
    {
        const char *argv[3] = {"SUBSCRIBE", r->ch_ctl, r->ch_probe};
        size_t lens[3] = {9, strlen(r->ch_ctl), strlen(r->ch_probe)};
        redisAsyncCommandArgv(r->sub, rc__redis_on_sub_reply, NULL, 3, argv,
                              lens);
    }
}

static void start_connect(redis_adapter_t *r)
{
    struct addrinfo hints;

    if (r->closing || r->gai_busy || r->state != LINK_DOWN)
        return;
    r->state = LINK_CONNECTING;
    r->cmd_connected = r->sub_connected = r->lib_loaded = 0;
    r->ctl_subscribed = 0;
    r->inflight = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r->gai.data = r;
    /* Resolve off the loop: hiredis would call getaddrinfo() in place. */
    if (uv_getaddrinfo(r->loop, &r->gai, on_resolved, r->url.host, NULL,
                       &hints) == 0)
        r->gai_busy = 1;
    else
        rc__redis_teardown(r, "cannot resolve host");
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

/* --------------------------------------------------------------- tick */

static void on_tick(uv_timer_t *t)
{
    redis_adapter_t *r = t->data;
    uint64_t now = uv_now(r->loop);

    if (r->state != LINK_UP) {
        if (r->state == LINK_CONNECTING && r->inflight &&
            now - r->progress_ms > RC_REDIS_CMD_TIMEOUT_MS)
            rc__redis_teardown(r, "connect timeout");
        return;
    }
    if (r->inflight && now - r->progress_ms > RC_REDIS_CMD_TIMEOUT_MS) {
        rc__redis_teardown(r, "command timeout");
        return;
    }
    /* The pub/sub link can die silently (a proxy, a half-open socket): a
     * quiet link gets a probe through itself, and a link that does not
     * deliver its own probe is restarted. */
    if (now - r->last_sub_rx > RC_REDIS_PROBE_DEAD_MS) {
        r->m_probe_fail++;
        rc__redis_teardown(r, "pubsub probe lost");
        return;
    }
    if (now - r->last_sub_rx > RC_REDIS_PROBE_IDLE_MS &&
        now - r->last_probe > RC_REDIS_PROBE_IDLE_MS) {
        const char *argv[3] = {"PUBLISH", r->ch_probe, "probe"};
        size_t lens[3] = {7, strlen(r->ch_probe), 5};
        r->last_probe = now;
        (void)rc__redis_cmd(r, rc__redis_on_void_reply, (void *)"probe", 3,
                            argv, lens);
    }
    if (now - r->last_registry >= RC_REDIS_REGISTRY_MS)
        rc__redis_announce(&r->base);
    rc__redis_rooms_sweep(r, now);
    rc__redis_flush_batches(r);
}

/* ---------------------------------------------------------- lifecycle */

void rc__redis_link_start(redis_adapter_t *r)
{
    uv_timer_start(&r->tick, on_tick, RC_REDIS_TICK_MS, RC_REDIS_TICK_MS);
    start_connect(r);
}

void rc__redis_link_close(redis_adapter_t *r)
{
    if (r->gai_busy)
        uv_cancel((uv_req_t *)&r->gai);
    /* A connected link sends what is queued, then closes. One still
     * connecting has nothing worth sending and would wait for its queued
     * replies (or its connect timeout) past the loop's end: teardown frees
     * it now, like the subscription link. */
    if (r->cmd && r->cmd_connected) {
        r->cmd->data = NULL;
        redisAsyncDisconnect(r->cmd);
        r->cmd = NULL;
    }
    r->state = LINK_UP; /* so teardown runs its cleanup */
    rc__redis_teardown(r, "shutdown");
}

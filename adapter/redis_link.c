/* The Redis adapter's two links on the node's loop: one for commands
 * (hiredis async, pipelined), one for subscriptions (adapter/sublink.c).
 * Resolving the host off the loop, connecting, AUTH and SELECT, reading
 * the envelope key, loading the function library, coming up (rooms
 * resubscribe and catch up), going down (teardown), reconnecting with
 * capped, jittered backoff, and the tick that finds a stuck command link
 * or a silent subscription link (a PING that gets no pong).
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"
#include "adapter/sentinel.h"
#include "adapter/sublink.h"

#include <stdio.h>
#include <stdlib.h>
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
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        rc_log(RC_LOG_WARN, "redis_error", "what=%s err=\"%s\"",
               pd ? (const char *)pd : "command", rep->str);
        rc__redis_reply_error(r, rep->str);
    }
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
    rc_log(RC_LOG_INFO, "redis_up", "host=%s port=%d",
           r->sentinel ? r->master_ip : r->url.host, r->link_port);
    rc__redis_rooms_up(r);
    rc__redis_announce(&r->base);
    r->base.sink.state(r->base.sink.ctx, true);
}

static void on_retry(uv_timer_t *t);

void rc__redis_teardown(redis_adapter_t *r, const char *why)
{
    redisAsyncContext *cmd;
    rc_sublink_t *sub;
    bool was_up;
    uint32_t jitter;

    if (r->cl) {
        rc__redis_cl_teardown(r, why);
        return;
    }
    /* Redis wrote the subscribers' messages before it went away (a crash
     * closes both links at once, and the loop may see the command link's
     * EOF first): take what already arrived before the link goes, or a
     * Redis that restarts empty has no history to catch them up from.
     * What it dispatches may come back here; the inner call does the rest. */
    if (r->state == LINK_UP && r->sub && !r->sub_draining && !r->closing) {
        r->sub_draining = 1;
        rc_sublink_drain(r->sub);
        r->sub_draining = 0;
    }
    if (r->state == LINK_DOWN)
        return;
    cmd = r->cmd;
    sub = r->sub;
    was_up = r->state == LINK_UP;
    r->state = LINK_DOWN;
    r->cmd = NULL;
    r->sub = NULL;
    r->wrong_role = 0;
    rc_log(was_up && !r->closing ? RC_LOG_WARN : RC_LOG_INFO, "redis_down",
           "why=\"%s\"", why ? why : "");
    /* Pending replies get NULL (callbacks handle it); ours are detached
     * first so the disconnect callback does not come back here. The
     * subscription link calls nothing after its destroy. */
    if (cmd) {
        cmd->data = NULL;
        redisAsyncFree(cmd);
    }
    rc_sublink_destroy(sub);
    r->inflight = 0;
    rc__redis_rooms_down(r);
    if (r->closing)
        return;
    if (was_up)
        r->base.sink.state(r->base.sink.ctx, false);
    if (r->state != LINK_DOWN || r->closing)
        return; /* a callback above started something else */
    /* Sentinel: a dropped link to the master may be a failover: ask
     * again (the answer comes later, through on_master or on_lost). */
    if (r->sentinel && !r->in_finder)
        rc_sentinel_recheck(r->sentinel);
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
    if (r->closing)
        return;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rc_log(RC_LOG_ERROR, "redis_function_load", "err=\"%s\"",
               rep ? rep->str : "no reply");
        rc__redis_teardown(r, "function load failed");
        return;
    }
    r->lib_loaded = 1;
    rc__redis_maybe_up(r);
}

static void on_select_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;
    char why[160];
    (void)pd;

    if (!r)
        return;
    rc__redis_cmd_done(r);
    if (r->closing || (rep && rep->type != REDIS_REPLY_ERROR))
        return;
    /* Running on db 0 instead would mix this cluster's keys with another's:
     * the link is not ready. */
    snprintf(why, sizeof(why), "SELECT %d failed: %s", r->url.db,
             rep ? rep->str : "no reply");
    rc_log(RC_LOG_ERROR, "redis_select_failed", "db=%d err=\"%s\"", r->url.db,
           rep ? rep->str : "no reply");
    rc__redis_teardown(r, why);
}

/* GET Penvkey answered: the key every node shares. Now the library, with
 * the key in its text, can be loaded. */
static void on_envkey_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    redis_adapter_t *r = ac->data;
    redisReply *rep = reply;
    (void)pd;

    if (!r)
        return;
    rc__redis_cmd_done(r);
    if (r->closing || r->state != LINK_CONNECTING)
        return;
    if (!rep || rep->type != REDIS_REPLY_STRING ||
        rep->len != RC_REDIS_ENVKEY_HEX ||
        strspn(rep->str, "0123456789abcdef") != RC_REDIS_ENVKEY_HEX) {
        rc_log(RC_LOG_ERROR, "redis_envkey", "key=%s err=\"%s\"", r->k_envkey,
               rep && rep->type == REDIS_REPLY_ERROR
                   ? rep->str
                   : "missing or not 64 hex digits");
        rc__redis_teardown(r, "envelope key unreadable");
        return;
    }
    memcpy(r->envkey, rep->str, RC_REDIS_ENVKEY_HEX);
    r->envkey[RC_REDIS_ENVKEY_HEX] = '\0';
    free(r->library);
    r->library =
        rc__redis_library(r->prefix, r->history_size, r->history_ttl_ms,
                          r->max_publish, r->envkey, false);
    {
        const char *argv[4] = {"FUNCTION", "LOAD", "REPLACE", r->library};
        size_t lens[4] = {8, 4, 7, strlen(r->library)};
        if (rc__redis_cmd(r, on_lib_reply, NULL, 4, argv, lens) != RC_OK)
            rc__redis_teardown(r, "function load not sent");
    }
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
        rc__redis_teardown(r, ac->errstr);
        return;
    }
    if (ac == r->cmd)
        r->cmd_connected = 1;
    rc__redis_maybe_up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_adapter_t *r = ac->data;

    (void)status;
    if (!r)
        return; /* we freed it ourselves */
    if (ac == r->draining) {
        /* destroy's graceful close is done: the adapter may go (when this
         * came at once, inside rc__redis_link_close, its caller closes the
         * timer). */
        r->draining = NULL;
        if (r->grace_armed) {
            uv_timer_stop(&r->retry);
            uv_close((uv_handle_t *)&r->retry, rc__redis_on_handle_closed);
        }
        return;
    }
    if (ac == r->cmd)
        r->cmd = NULL;
    rc__redis_teardown(r, ac->errstr[0] ? ac->errstr : "disconnected");
}

static redisAsyncContext *open_link(redis_adapter_t *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->link_port);

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

static void auth_cmd_link(redis_adapter_t *r)
{
    if (!r->url.password[0])
        return;
    if (r->url.user[0]) {
        const char *argv[3] = {"AUTH", r->url.user, r->url.password};
        size_t lens[3] = {4, strlen(r->url.user), strlen(r->url.password)};
        (void)rc__redis_cmd(r, rc__redis_on_void_reply, (void *)"auth", 3, argv,
                            lens);
    } else {
        const char *argv[2] = {"AUTH", r->url.password};
        size_t lens[2] = {4, strlen(r->url.password)};
        (void)rc__redis_cmd(r, rc__redis_on_void_reply, (void *)"auth", 2, argv,
                            lens);
    }
}

/* ---- the subscription link's own callbacks (the rest: redis_sub.c) */

static void on_sub_ready(void *ctx)
{
    redis_adapter_t *r = ctx;

    r->sub_connected = 1;
    r->last_sub_rx = uv_now(r->loop);
    rc__redis_maybe_up(r);
}

static void on_sub_pong(void *ctx)
{
    redis_adapter_t *r = ctx;

    r->last_sub_rx = uv_now(r->loop);
}

static void on_sub_close(void *ctx, const char *reason)
{
    rc__redis_teardown(ctx, reason);
}

static rc_sublink_t *open_sub(redis_adapter_t *r, const char *ip)
{
    const rc_sublink_cbs_t cbs = {
        .on_ready = on_sub_ready,
        .on_message = rc__redis_on_message,
        .on_subscribed = rc__redis_on_subscribed,
        .on_unsubscribed = rc__redis_on_unsubscribed,
        .on_pong = on_sub_pong,
        .on_error = rc__redis_on_sub_error,
        .on_close = on_sub_close,
    };
    rc_sublink_cfg_t cfg = {
        .ip = ip,
        .port = (uint16_t)r->link_port,
        .user = r->url.user[0] ? r->url.user : NULL,
        .password = r->url.password[0] ? r->url.password : NULL,
    };
    rc_sublink_t *l = rc_sublink_create(r->loop, &cfg, &cbs, r);
    const char *ch = r->ch_ctl;
    size_t len = strlen(ch);

    if (l && rc_sublink_subscribe(l, &ch, &len, 1, false, 0) != RC_OK) {
        rc_sublink_destroy(l);
        l = NULL;
    }
    return l;
}

static void connect_ip(redis_adapter_t *r, const char *ip);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_adapter_t *r = req->data;
    char ip[64] = "";

    r->gai_busy = 0;
    if (r->closing) {
        uv_freeaddrinfo(res);
        rc__redis_release(r); /* destroy counted this request */
        return;
    }
    if (status == 0 && res)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (!ip[0]) {
        rc__redis_teardown(r, "cannot resolve host");
        return;
    }
    connect_ip(r, ip);
}

/* Opens both links to ip:r->link_port (a numeric address), then AUTH,
 * SELECT, the envelope key and the library. */
static void connect_ip(redis_adapter_t *r, const char *ip)
{
    r->cmd = open_link(r, ip);
    r->sub = open_sub(r, ip);
    if (!r->cmd || !r->sub) {
        rc__redis_teardown(r, "cannot connect");
        return;
    }
    auth_cmd_link(r);
    if (r->url.db) {
        char db[16];
        const char *argv[2] = {"SELECT", db};
        size_t lens[2];
        snprintf(db, sizeof(db), "%d", r->url.db);
        lens[0] = 6;
        lens[1] = strlen(db);
        (void)rc__redis_cmd(r, on_select_reply, NULL, 2, argv, lens);
    }
    {
        /* The envelope key: made by the first node (NX), read by all. */
        unsigned char raw[RC_REDIS_ENVKEY_HEX / 2];
        char key[RC_REDIS_ENVKEY_HEX + 1];
        const char *set[4] = {"SET", r->k_envkey, key, "NX"};
        size_t setl[4] = {3, strlen(r->k_envkey), RC_REDIS_ENVKEY_HEX, 2};
        const char *get[2] = {"GET", r->k_envkey};
        size_t getl[2] = {3, strlen(r->k_envkey)};
        if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) !=
            (ssize_t)sizeof(raw)) {
            rc__redis_teardown(r, "no randomness for the envelope key");
            return;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(key + 2 * i, 3, "%02x", raw[i]);
        (void)rc__redis_cmd(r, rc__redis_on_void_reply, (void *)"envkey", 4,
                            set, setl);
        (void)rc__redis_cmd(r, on_envkey_reply, NULL, 2, get, getl);
    }
}

static void start_connect(redis_adapter_t *r)
{
    struct addrinfo hints;

    if (r->closing || r->gai_busy || r->state != LINK_DOWN)
        return;
    if (r->sentinel && !r->master_ip[0])
        return; /* no master: on_master starts the connect */
    r->state = LINK_CONNECTING;
    r->cmd_connected = r->sub_connected = r->lib_loaded = 0;
    r->ctl_subscribed = 0;
    r->inflight = 0;
    r->connect_ms = uv_now(r->loop);
    if (r->sentinel) {
        /* The finder resolved and confirmed the master: connect to it. */
        char ip[sizeof(r->master_ip)];
        snprintf(ip, sizeof(ip), "%s", r->master_ip);
        connect_ip(r, ip);
        return;
    }
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

    if (r->cl) {
        rc__redis_cl_tick(r, now);
        return;
    }
    if (r->wrong_role && r->state != LINK_DOWN) {
        rc__redis_teardown(r, "the server is not a master (READONLY or "
                              "LOADING)");
        return;
    }
    if (r->state != LINK_UP) {
        if (r->state == LINK_CONNECTING &&
            now - r->connect_ms > RC_REDIS_CMD_TIMEOUT_MS)
            rc__redis_teardown(r, "connect timeout");
        return;
    }
    if (r->inflight && now - r->progress_ms > RC_REDIS_CMD_TIMEOUT_MS) {
        rc__redis_teardown(r, "command timeout");
        return;
    }
    /* The pub/sub link can die silently (a proxy, a half-open socket, a
     * stopped server): a quiet link gets a PING through itself, and a link
     * that answers nothing for RC_REDIS_PROBE_DEAD_MS is restarted. */
    if (now - r->last_sub_rx > RC_REDIS_PROBE_DEAD_MS) {
        r->m_probe_fail++;
        rc__redis_teardown(r, "pubsub probe lost");
        return;
    }
    if (now - r->last_sub_rx > RC_REDIS_PROBE_IDLE_MS &&
        now - r->last_probe > RC_REDIS_PROBE_IDLE_MS) {
        r->last_probe = now;
        if (rc_sublink_ping(r->sub) != RC_OK) {
            rc__redis_teardown(r, "pubsub ping not sent");
            return;
        }
    }
    if (now - r->last_registry >= RC_REDIS_REGISTRY_MS)
        rc__redis_announce(&r->base);
    rc__redis_rooms_sweep(r, now);
    rc__redis_flush_batches(r);
}

/* ----------------------------------------------------------- Sentinel */

void rc__redis_reply_error(redis_adapter_t *r, const char *err)
{
    if (!r->sentinel || r->closing || !err)
        return;
    if (strncmp(err, "READONLY", 8) != 0 && strncmp(err, "LOADING", 7) != 0)
        return;
    if (!r->wrong_role)
        rc_log(RC_LOG_WARN, "redis_not_master", "host=%s port=%d err=\"%.80s\"",
               r->master_ip, r->link_port, err);
    r->wrong_role = 1; /* the tick drops the links: not inside a reply */
    rc_sentinel_recheck(r->sentinel);
}

/* A confirmed master that differs from the last one (or the first): move
 * both links there now, without backoff. */
static void on_master(void *ctx, const char *ip, int port)
{
    redis_adapter_t *r = ctx;
    bool moved = r->master_ip[0] &&
                 (strcmp(r->master_ip, ip) != 0 || r->link_port != port);

    if (r->closing)
        return;
    rc_log(RC_LOG_INFO, "redis_master", "host=%s port=%d%s", ip, port,
           moved ? " moved=1" : "");
    snprintf(r->master_ip, sizeof(r->master_ip), "%s", ip);
    r->link_port = port;
    r->in_finder = 1;
    if (r->state != LINK_DOWN)
        rc__redis_teardown(r, "new master");
    r->in_finder = 0;
    if (r->closing || r->state != LINK_DOWN)
        return;
    uv_timer_stop(&r->retry);
    r->backoff_ms = RC_REDIS_BACKOFF_MIN_MS;
    start_connect(r);
}

/* No sentinel confirms a master: drop the links (writes there would be
 * lost) and wait for on_master; /readyz is 503 meanwhile. */
static void on_lost(void *ctx)
{
    redis_adapter_t *r = ctx;

    if (r->closing)
        return;
    rc_log(RC_LOG_WARN, "redis_master_lost", "master=%s", r->url.master);
    r->master_ip[0] = '\0';
    r->in_finder = 1;
    if (r->state != LINK_DOWN)
        rc__redis_teardown(r, "no master");
    r->in_finder = 0;
}

rc_err_t rc__redis_sentinel_start(redis_adapter_t *r)
{
    const rc_sentinel_cbs_t cbs = {
        .on_master = on_master,
        .on_lost = on_lost,
        .ctx = r,
    };

    if (r->url.topo != RC_REDIS_SENTINEL)
        return RC_OK;
    r->sentinel = rc_sentinel_create(r->loop, &r->url, NULL, &cbs);
    return r->sentinel ? RC_OK : RC_ENOMEM;
}

/* ---------------------------------------------------------- lifecycle */

void rc__redis_link_start(redis_adapter_t *r)
{
    uv_timer_start(&r->tick, on_tick, RC_REDIS_TICK_MS, RC_REDIS_TICK_MS);
    if (r->url.topo == RC_REDIS_CLUSTER) {
        rc__redis_cl_start(r);
        return;
    }
    start_connect(r);
}

static void on_grace(uv_timer_t *t)
{
    redis_adapter_t *r = t->data;
    redisAsyncContext *ac = r->draining;

    /* The command link did not finish in time (a stalled Redis): free it;
     * its pending callbacks get NULL and find nothing owed. */
    r->draining = NULL;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&r->retry, rc__redis_on_handle_closed);
}

bool rc__redis_link_close(redis_adapter_t *r)
{
    if (r->cl)
        return rc__redis_cl_close(r);
    if (r->gai_busy) {
        /* on_resolved still runs (UV_ECANCELED or done): it releases. */
        r->handles++;
        uv_cancel((uv_req_t *)&r->gai);
    }
    uv_timer_stop(&r->retry);
    /* A connected link sends what is queued (the registry DEL), then
     * closes, within RC_REDIS_CLOSE_GRACE_MS. One still connecting has
     * nothing worth sending: teardown frees it now, like the subscription
     * link. */
    if (r->cmd && r->cmd_connected) {
        redisAsyncContext *ac = r->cmd;
        r->cmd = NULL;
        r->draining = ac;
        redisAsyncDisconnect(ac); /* may call on_disconnect at once */
    }
    r->state = LINK_CONNECTING; /* so teardown runs its cleanup */
    rc__redis_teardown(r, "shutdown");
    if (!r->draining)
        return false;
    r->grace_armed = 1;
    uv_timer_start(&r->retry, on_grace, RC_REDIS_CLOSE_GRACE_MS, 0);
    return true;
}

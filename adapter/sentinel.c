/* Sentinel master finder (see sentinel.h).
 *
 * A round asks the sentinels one at a time, starting with the one that
 * answered last: SENTINEL get-master-addr-by-name on a fresh connection,
 * then, at the address it names, [AUTH and] ROLE on a fresh connection. The
 * first address whose ROLE says master ends the round; a sentinel that
 * fails, does not know the name, or names a server that is not (or no
 * longer) a master passes the turn to the next one. hiredis 0.14 has no
 * command timeout, so every step runs under step_timer.
 *
 * Lifetimes (STYLE rule 16): each hiredis context points at s through
 * ac->data while s wants its replies. Dropping a link clears ac->data first
 * and then frees it, so the NULL replies hiredis hands to pending callbacks
 * (and its disconnect callback) find no owner and return. Name resolution
 * runs in a heap request that carries a generation, so a late answer to a
 * step that already timed out is ignored, and s lives until it came back.
 * SPDX-License-Identifier: MIT */
#include "adapter/sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>

#include "common/log.h"
#include "common/mem.h"

#define DEFAULT_RECHECK_MS 2000
#define DEFAULT_RETRY_MS 500
#define DEFAULT_TIMEOUT_MS 1000
#define IP_CAP 64 /* INET6_ADDRSTRLEN and then some */

typedef enum step {
    STEP_IDLE = 0,
    STEP_ASK,   /* asking sentinel cur for the master's address */
    STEP_CHECK, /* asking that address for its ROLE */
} step_t;

typedef struct gai_req {
    uv_getaddrinfo_t req;
    rc_sentinel_t *s;
    unsigned gen;
} gai_req_t;

struct rc_sentinel {
    uv_loop_t *loop;
    rc_redis_url_t url;
    rc_sentinel_cbs_t cbs;
    uint32_t recheck_ms, retry_ms, timeout_ms;

    uv_timer_t round_timer; /* starts the next round */
    uv_timer_t step_timer;  /* deadline of the step in flight */
    redisAsyncContext *q;   /* the step's link (sentinel, then master) */
    redisAsyncContext *sub; /* +switch-master subscription */
    gai_req_t *gai;         /* the step's resolution, if in flight */
    unsigned gen;           /* bumped when a step ends */
    unsigned gai_pending;   /* resolutions not yet called back */

    step_t step;
    bool again;           /* a re-check was asked during a round */
    unsigned start, cur;  /* first sentinel of the round, the one asked */
    unsigned tried;       /* sentinels asked in this round */
    uint32_t failed;      /* bit i: sentinel i failed in this round */
    unsigned sub_idx;     /* sentinel the subscription is on */
    char cur_ip[IP_CAP];  /* address of sentinel cur */
    char cand_ip[IP_CAP]; /* address sentinel cur named (maybe a name) */
    int cand_port;

    char ip[IP_CAP]; /* the master last reported */
    int port;
    bool have, lost; /* on_master / on_lost was the last report */

    bool closing;
    int handles; /* uv handles not yet closed, once closing */
};

static void step_fail(rc_sentinel_t *s, const char *why);
static void ask_next(rc_sentinel_t *s);
static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *pd);
static void on_round_timer(uv_timer_t *t);

/* --------------------------------------------------------------- links */

static void drop_link(redisAsyncContext **pac)
{
    redisAsyncContext *ac = *pac;

    *pac = NULL;
    if (!ac) /* redisAsyncFree(NULL) crashes */
        return;
    ac->data = NULL;
    /* Inside one of ac's reply callbacks hiredis defers the free until it
     * returns; elsewhere pending callbacks run now, with NULL, and find no
     * owner. */
    redisAsyncFree(ac);
}

static redisAsyncContext *open_link(rc_sentinel_t *s, const char *ip, int port)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);

    if (!ac)
        return NULL;
    if (ac->err) {
        rc_log(RC_LOG_DEBUG, "sentinel_connect", "addr=%s:%d err=\"%s\"", ip,
               port, ac->errstr);
        redisAsyncFree(ac); /* never connected: no callback runs */
        return NULL;
    }
    if (redisLibuvAttach(ac, s->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rc_sentinel_t *s = ac->data;

    if (!s || status == REDIS_OK)
        return;
    /* hiredis frees ac after this returns and hands its pending callbacks
     * NULL: detach them, and never free ac here (this callback does not
     * defer a free the way reply callbacks do). */
    ((redisAsyncContext *)ac)->data = NULL;
    if (ac == s->sub) {
        s->sub = NULL;
        rc_sentinel_recheck(s);
    } else if (ac == s->q) {
        s->q = NULL;
        step_fail(s, ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rc_sentinel_t *s = ac->data;

    (void)status;
    if (!s)
        return;
    ((redisAsyncContext *)ac)->data = NULL;
    if (ac == s->sub) {
        s->sub = NULL;
        rc_sentinel_recheck(s);
    } else if (ac == s->q) {
        s->q = NULL;
        step_fail(s, ac->errstr[0] ? ac->errstr : "disconnected");
    }
}

static bool is_str(const redisReply *r)
{
    return r &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* -------------------------------------------------------------- rounds */

static void schedule(rc_sentinel_t *s, uint64_t ms)
{
    uv_timer_start(&s->round_timer, on_round_timer, ms, 0);
}

static void subscribe_on(rc_sentinel_t *s, unsigned idx)
{
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    size_t lens[2] = {9, 14};

    s->sub = open_link(s, s->cur_ip, s->url.hosts[idx].port);
    if (!s->sub)
        return;
    s->sub_idx = idx;
    if (redisAsyncCommandArgv(s->sub, on_sub_reply, NULL, 2, argv, lens) !=
        REDIS_OK)
        drop_link(&s->sub);
}

/* Ends the round; may call back, so callers return right after. */
static void round_end(rc_sentinel_t *s, bool found)
{
    bool again = s->again;

    s->step = STEP_IDLE;
    s->again = false;
    uv_timer_stop(&s->step_timer);
    /* The subscription sits on a sentinel that answers. */
    if (s->sub && (s->failed & (1u << s->sub_idx)))
        drop_link(&s->sub);
    if (found && !s->sub)
        subscribe_on(s, s->cur);
    schedule(s, again ? 0 : found ? s->recheck_ms : s->retry_ms);
    if (found) {
        s->start = s->cur; /* ask the one that answered first next time */
        if (s->have && s->port == s->cand_port &&
            strcmp(s->ip, s->cand_ip) == 0)
            return;
        snprintf(s->ip, sizeof(s->ip), "%s", s->cand_ip);
        s->port = s->cand_port;
        s->have = true;
        s->lost = false;
        rc_log(RC_LOG_INFO, "sentinel_master", "master=%s addr=%s:%d",
               s->url.master, s->ip, s->port);
        s->cbs.on_master(s->cbs.ctx, s->ip, s->port);
    } else if (s->have || !s->lost) {
        s->have = false;
        s->lost = true;
        s->ip[0] = '\0';
        s->port = 0;
        rc_log(RC_LOG_WARN, "sentinel_lost", "master=%s", s->url.master);
        s->cbs.on_lost(s->cbs.ctx);
    }
}

/* Ends the step in flight (its link, its resolution, its deadline). */
static void step_clear(rc_sentinel_t *s)
{
    s->gen++;
    drop_link(&s->q);
    if (s->gai) {
        /* Its callback still comes (UV_ECANCELED or a late answer) and
         * finds another generation. */
        uv_cancel((uv_req_t *)&s->gai->req);
        s->gai = NULL;
    }
    uv_timer_stop(&s->step_timer);
}

static void step_fail(rc_sentinel_t *s, const char *why)
{
    rc_log(RC_LOG_DEBUG, "sentinel_step_fail",
           "sentinel=%s:%d step=%s why=\"%s\"", s->url.hosts[s->cur].host,
           s->url.hosts[s->cur].port, s->step == STEP_ASK ? "ask" : "role",
           why ? why : "");
    if (s->step == STEP_ASK)
        s->failed |= 1u << s->cur;
    step_clear(s);
    s->tried++;
    s->cur = (s->cur + 1) % s->url.nhosts;
    ask_next(s);
}

static void on_step_timeout(uv_timer_t *t)
{
    step_fail(t->data, "timeout");
}

static void step_connected(rc_sentinel_t *s, const char *ip);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    gai_req_t *g = rc_container_of(req, gai_req_t, req);
    rc_sentinel_t *s = g->s;
    char ip[IP_CAP] = "";

    if (status == 0 && res)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    s->gai_pending--;
    if (s->closing || g->gen != s->gen) {
        free(g);
        if (s->closing && s->handles == 0 && s->gai_pending == 0)
            free(s);
        return;
    }
    free(g);
    s->gai = NULL;
    if (!ip[0]) {
        step_fail(s, status ? uv_strerror(status) : "no address");
        return;
    }
    step_connected(s, ip);
}

/* Starts a step towards host:port: resolve if it is a name, then connect
 * and send the step's commands. */
static void step_start(rc_sentinel_t *s, step_t step, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    struct addrinfo hints;
    gai_req_t *g;

    s->step = step;
    uv_timer_start(&s->step_timer, on_step_timeout, s->timeout_ms, 0);
    if (uv_inet_pton(AF_INET, host, buf) == 0 ||
        uv_inet_pton(AF_INET6, host, buf) == 0) {
        step_connected(s, host);
        return;
    }
    /* A name: resolve off the loop (hiredis would block in getaddrinfo). */
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    g = rc_xcalloc(1, sizeof(*g));
    g->s = s;
    g->gen = s->gen;
    if (uv_getaddrinfo(s->loop, &g->req, on_resolved, host, NULL, &hints)) {
        free(g);
        step_fail(s, "cannot resolve");
        return;
    }
    s->gai = g;
    s->gai_pending++;
}

static void on_ask_reply(redisAsyncContext *ac, void *reply, void *pd);
static void on_auth_reply(redisAsyncContext *ac, void *reply, void *pd);
static void on_role_reply(redisAsyncContext *ac, void *reply, void *pd);

static void step_connected(rc_sentinel_t *s, const char *ip)
{
    int port;

    if (s->step == STEP_ASK) {
        snprintf(s->cur_ip, sizeof(s->cur_ip), "%s", ip);
        port = s->url.hosts[s->cur].port;
    } else {
        if (ip != s->cand_ip) /* a name, now resolved */
            snprintf(s->cand_ip, sizeof(s->cand_ip), "%s", ip);
        port = s->cand_port;
    }
    s->q = open_link(s, ip, port);
    if (!s->q) {
        step_fail(s, "cannot connect");
        return;
    }
    if (s->step == STEP_ASK) {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name",
                               s->url.master};
        size_t lens[3] = {8, 23, strlen(s->url.master)};
        if (redisAsyncCommandArgv(s->q, on_ask_reply, NULL, 3, argv, lens) !=
            REDIS_OK)
            step_fail(s, "cannot send");
        return;
    }
    if (s->url.password[0]) {
        const char *argv[3] = {"AUTH", s->url.user, s->url.password};
        size_t lens[3] = {4, strlen(s->url.user), strlen(s->url.password)};
        int ok = s->url.user[0] ? redisAsyncCommandArgv(s->q, on_auth_reply,
                                                        NULL, 3, argv, lens)
                                : redisAsyncCommandArgv(
                                      s->q, on_auth_reply, NULL, 2,
                                      (const char *[]){"AUTH", s->url.password},
                                      (size_t[]){4, lens[2]});
        if (ok != REDIS_OK) {
            step_fail(s, "cannot send");
            return;
        }
    }
    {
        const char *argv[1] = {"ROLE"};
        size_t lens[1] = {4};
        if (redisAsyncCommandArgv(s->q, on_role_reply, NULL, 1, argv, lens) !=
            REDIS_OK)
            step_fail(s, "cannot send");
    }
}

static void ask_next(rc_sentinel_t *s)
{
    if (s->tried >= s->url.nhosts) {
        round_end(s, false);
        return;
    }
    step_start(s, STEP_ASK, s->url.hosts[s->cur].host);
}

static void on_round_timer(uv_timer_t *t)
{
    rc_sentinel_t *s = t->data;

    if (s->step != STEP_IDLE) {
        s->again = true;
        return;
    }
    s->tried = 0;
    s->failed = 0;
    s->cur = s->start;
    ask_next(s);
}

/* ------------------------------------------------------------- replies */

static void on_ask_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rc_sentinel_t *s = ac->data;
    redisReply *r = reply;
    char *end;
    long port;

    (void)pd;
    if (!s)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        /* nil: this sentinel does not monitor that name */
        step_fail(s, !r                           ? "no reply"
                     : r->type == REDIS_REPLY_NIL ? "unknown master name"
                     : is_str(r)                  ? r->str
                                                  : "bad reply");
        return;
    }
    if (r->elements != 2 || !is_str(r->element[0]) || !is_str(r->element[1]) ||
        r->element[0]->len >= IP_CAP) {
        step_fail(s, "bad reply");
        return;
    }
    port = strtol(r->element[1]->str, &end, 10);
    if (*end || port < 1 || port > 65535) {
        step_fail(s, "bad port");
        return;
    }
    snprintf(s->cand_ip, sizeof(s->cand_ip), "%s", r->element[0]->str);
    s->cand_port = (int)port;
    step_clear(s); /* frees ac once this callback returns */
    step_start(s, STEP_CHECK, s->cand_ip);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rc_sentinel_t *s = ac->data;
    redisReply *r = reply;

    (void)pd;
    if (!s)
        return;
    if (!r || r->type == REDIS_REPLY_ERROR)
        step_fail(s, r ? r->str : "no reply");
}

static void on_role_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rc_sentinel_t *s = ac->data;
    redisReply *r = reply;

    (void)pd;
    if (!s)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        !is_str(r->element[0])) {
        step_fail(s, r && r->type == REDIS_REPLY_ERROR ? r->str : "no role");
        return;
    }
    if (strcmp(r->element[0]->str, "master") != 0) {
        step_fail(s, r->element[0]->str); /* "slave" during a failover */
        return;
    }
    step_clear(s);
    round_end(s, true);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rc_sentinel_t *s = ac->data;
    redisReply *r = reply;
    size_t n;

    (void)pd;
    if (!s)
        return;
    if (!r) { /* the link went away */
        ac->data = NULL;
        s->sub = NULL;
        rc_sentinel_recheck(s);
        return;
    }
    /* message +switch-master "<name> <old-ip> <old-port> <new-ip> <new-port>"
     * The payload is a hint: the round confirms the new master with ROLE. */
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        !is_str(r->element[0]) || strcmp(r->element[0]->str, "message") != 0 ||
        !is_str(r->element[2]))
        return;
    n = strlen(s->url.master);
    if (strncmp(r->element[2]->str, s->url.master, n) != 0 ||
        r->element[2]->str[n] != ' ')
        return;
    rc_log(RC_LOG_INFO, "sentinel_switch", "event=\"%s\"", r->element[2]->str);
    /* A round in flight may be waiting on the dead master (hiredis 0.14's
     * libuv adapter does not report a refused connect, so that costs a step
     * timeout): drop it and start over at the sentinel that just spoke. */
    step_clear(s);
    s->step = STEP_IDLE;
    s->again = false;
    s->start = s->sub_idx;
    schedule(s, 0);
}

/* ----------------------------------------------------------- lifecycle */

rc_sentinel_t *rc_sentinel_create(uv_loop_t *loop, const rc_redis_url_t *url,
                                  const rc_sentinel_opts_t *opts,
                                  const rc_sentinel_cbs_t *cbs)
{
    rc_sentinel_t *s;

    if (url->topo != RC_REDIS_SENTINEL || url->nhosts < 1 ||
        url->nhosts > RC_REDIS_URL_MAX_HOSTS || !url->master[0] ||
        !cbs->on_master || !cbs->on_lost)
        return NULL;
    s = rc_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->url = *url;
    s->cbs = *cbs;
    s->recheck_ms =
        opts && opts->recheck_ms ? opts->recheck_ms : DEFAULT_RECHECK_MS;
    s->retry_ms = opts && opts->retry_ms ? opts->retry_ms : DEFAULT_RETRY_MS;
    s->timeout_ms =
        opts && opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    uv_timer_init(loop, &s->round_timer);
    uv_timer_init(loop, &s->step_timer);
    s->round_timer.data = s;
    s->step_timer.data = s;
    schedule(s, 0);
    return s;
}

void rc_sentinel_recheck(rc_sentinel_t *s)
{
    if (s->closing)
        return;
    if (s->step != STEP_IDLE)
        s->again = true;
    else
        schedule(s, 0);
}

bool rc_sentinel_master(const rc_sentinel_t *s, char *ip, size_t cap, int *port)
{
    if (cap)
        snprintf(ip, cap, "%s", s->have ? s->ip : "");
    *port = s->have ? s->port : 0;
    return s->have;
}

static void on_handle_closed(uv_handle_t *h)
{
    rc_sentinel_t *s = h->data;

    if (--s->handles == 0 && s->gai_pending == 0)
        free(s);
}

void rc_sentinel_destroy(rc_sentinel_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    step_clear(s);
    drop_link(&s->sub);
    s->handles = 2;
    uv_close((uv_handle_t *)&s->round_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->step_timer, on_handle_closed);
}

/* The Redis pub/sub link: a RESP2 connection on a uv_tcp_t of its own that
 * dispatches pushes and matches replies to commands itself, because hiredis
 * 0.14's async pub/sub aborts on `smessage`/`ssubscribe`, misparses a PING
 * while subscribed and hands unmatched replies to the wrong callback (see
 * sublink.h). hiredis is used only to encode (redisFormatCommandArgv) and
 * to parse (redisReader).
 *
 * Lifetime (STYLE rules 7 and 16): everything is freed in one place, the
 * uv_close callback of the TCP handle. Failure and destroy both only mark
 * the link, stop reading and close the handle; libuv then calls pending
 * write and connect callbacks with UV_ECANCELED, and the close callback
 * last. The read loop re-checks the state after every callback it makes,
 * so a callback that destroys the link ends the dispatch.
 * SPDX-License-Identifier: MIT */
#include "adapter/sublink.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

/* One read buffer per link, reused: the reader copies what it is fed. */
#define READ_BUF_SIZE (64 * 1024)

/* AUTH is on the FIFO like the others but not a public op. */
#define OP_AUTH ((int)RC_SUBLINK_PING + 1)

typedef enum state {
    ST_CONNECTING = 0, /* uv_tcp_connect in flight; writes wait in unsent */
    ST_AUTHING,        /* connected, AUTH sent, its reply not yet read */
    ST_READY,
    ST_CLOSING, /* uv_close called; nothing is dispatched any more */
    ST_CLOSED,  /* close callback ran; only destroy is left */
} state_t;

/* A command awaiting replies. One allocation: the struct, then the channel
 * pointers, the lengths and the channel bytes. */
typedef struct pending {
    rc_list_t node; /* rc_sublink.pending, oldest first */
    int op;         /* rc_sublink_op_t or OP_AUTH */
    uint64_t cookie;
    size_t n;    /* channels */
    size_t next; /* confirmations received so far */
    const char **channels;
    size_t *lens;
} pending_t;

/* A write handed to libuv (or waiting for the connect). Owns cmd. */
typedef struct wreq {
    uv_write_t req;
    rc_list_t node; /* rc_sublink.unsent, only before the connect */
    rc_sublink_t *l;
    char *cmd; /* from redisFormatCommandArgv or rc_xstrdup: free() */
    uv_buf_t buf;
} wreq_t;

struct rc_sublink {
    uv_tcp_t tcp;
    uv_connect_t connect;
    rc_sublink_cbs_t cbs;
    void *ctx;
    redisReader *reader;
    rc_list_t pending; /* pending_t, oldest first */
    size_t npending;
    rc_list_t unsent; /* wreq_t queued before the connect completed */
    size_t queued;    /* bytes in unsent and in libuv's write queue */
    size_t max_outbuf, max_inbuf, max_pending;
    state_t state;
    bool authing;     /* AUTH was queued: go through ST_AUTHING */
    bool destroyed;   /* rc_sublink_destroy() was called */
    bool in_close_cb; /* inside on_close: destroy must not free */
    char reason[192];
    char rbuf[READ_BUF_SIZE];
};

static void on_closed(uv_handle_t *h);

static bool alive(const rc_sublink_t *l)
{
    return l->state < ST_CLOSING;
}

static void begin_close(rc_sublink_t *l)
{
    l->state = ST_CLOSING;
    uv_read_stop((uv_stream_t *)&l->tcp);
    uv_close((uv_handle_t *)&l->tcp, on_closed);
}

/* Marks the link failed with a reason; on_close fires from the close
 * callback. A second failure keeps the first reason. */
static void fail(rc_sublink_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(rc_sublink_t *l, const char *fmt, ...)
{
    va_list ap;

    if (!alive(l))
        return;
    va_start(ap, fmt);
    vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
    va_end(ap);
    begin_close(l);
}

static void free_lists(rc_sublink_t *l)
{
    rc_list_t *it, *tmp;

    rc_list_foreach_safe(it, tmp, &l->pending)
    {
        rc_list_remove(it);
        free(rc_container_of(it, pending_t, node));
    }
    l->npending = 0;
    rc_list_foreach_safe(it, tmp, &l->unsent)
    {
        wreq_t *w = rc_container_of(it, wreq_t, node);
        rc_list_remove(it);
        free(w->cmd);
        free(w);
    }
    l->queued = 0;
}

static void on_closed(uv_handle_t *h)
{
    rc_sublink_t *l = rc_container_of(h, rc_sublink_t, tcp);

    /* libuv has run every write and connect callback by now. */
    free_lists(l);
    if (l->reader)
        redisReaderFree(l->reader);
    l->reader = NULL;
    l->state = ST_CLOSED;
    if (!l->destroyed && l->cbs.on_close) {
        l->in_close_cb = true;
        l->cbs.on_close(l->ctx, l->reason);
        l->in_close_cb = false;
    }
    if (l->destroyed)
        free(l);
}

/* ---- writes ---------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    wreq_t *w = rc_container_of(req, wreq_t, req);
    rc_sublink_t *l = w->l;

    l->queued -= w->buf.len;
    free(w->cmd);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        fail(l, "write: %s", uv_strerror(status));
}

static rc_err_t submit(rc_sublink_t *l, wreq_t *w)
{
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &w->buf, 1, on_written);

    if (rc < 0) {
        l->queued -= w->buf.len;
        free(w->cmd);
        free(w);
        fail(l, "write: %s", uv_strerror(rc));
        return RC_EIO;
    }
    return RC_OK;
}

/* Steals cmd (len bytes). Tries the socket first, queues the rest. */
static rc_err_t send_cmd(rc_sublink_t *l, char *cmd, size_t len)
{
    size_t off = 0;
    wreq_t *w;

    if (len > l->max_outbuf || l->queued > l->max_outbuf - len) {
        free(cmd);
        fail(l, "outbound buffer full (%zu bytes queued)", l->queued);
        return RC_ELIMIT;
    }
    if (l->state != ST_CONNECTING) {
        uv_buf_t b = uv_buf_init(cmd, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);

        if (n >= 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            free(cmd);
            fail(l, "write: %s", uv_strerror(n));
            return RC_EIO;
        }
        if (off == len) {
            free(cmd);
            return RC_OK;
        }
    }
    w = rc_xmalloc(sizeof(*w));
    w->l = l;
    w->cmd = cmd;
    w->buf = uv_buf_init(cmd + off, (unsigned)(len - off));
    rc_list_init(&w->node);
    l->queued += w->buf.len;
    if (l->state == ST_CONNECTING) {
        rc_list_push(&l->unsent, &w->node);
        return RC_OK;
    }
    return submit(l, w);
}

/* ---- the FIFO ---------------------------------------------------------- */

static pending_t *head(rc_sublink_t *l)
{
    if (rc_list_empty(&l->pending))
        return NULL;
    return rc_container_of(l->pending.next, pending_t, node);
}

static void pop(rc_sublink_t *l, pending_t *p)
{
    rc_list_remove(&p->node);
    l->npending--;
}

/* NULL when the bounded size cannot be allocated. */
static pending_t *pending_new(int op, uint64_t cookie,
                              const char *const *channels, const size_t *lens,
                              size_t n, size_t bytes)
{
    size_t size =
        sizeof(pending_t) + n * (sizeof(char *) + sizeof(size_t)) + bytes;
    pending_t *p = rc_trymalloc(size);
    char *data;

    if (!p)
        return NULL;
    rc_list_init(&p->node);
    p->op = op;
    p->cookie = cookie;
    p->n = n;
    p->next = 0;
    p->channels = (const char **)(void *)(p + 1);
    p->lens = (size_t *)(void *)(p->channels + n);
    data = (char *)(p->lens + n);
    for (size_t i = 0; i < n; i++) {
        memcpy(data, channels[i], lens[i]);
        p->channels[i] = data;
        p->lens[i] = lens[i];
        data += lens[i];
    }
    return p;
}

static bool next_is(const pending_t *p, int op, const redisReply *chan)
{
    return p && p->op == op && p->next < p->n &&
           chan->type == REDIS_REPLY_STRING && p->lens[p->next] == chan->len &&
           memcmp(p->channels[p->next], chan->str, chan->len) == 0;
}

/* Encodes argv0 + channels, queues a FIFO entry. keep: the entry keeps a
 * copy of the channels (for on_error); AUTH's arguments are not kept. */
static rc_err_t command(rc_sublink_t *l, int op, const char *argv0,
                        const char *const *channels, const size_t *lens,
                        size_t n, uint64_t cookie, bool keep)
{
    const char **argv = NULL;
    size_t *argvlen = NULL;
    size_t bytes = 0;
    char *cmd = NULL;
    pending_t *p = NULL;
    int len;
    rc_err_t err;

    if (!alive(l))
        return RC_ECLOSED;
    if ((op != RC_SUBLINK_PING && n == 0) || n > (size_t)INT_MAX - 1)
        return RC_EINVAL;
    if (l->npending >= l->max_pending)
        return RC_ELIMIT;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > l->max_outbuf - bytes) {
            fail(l, "outbound buffer full (a command of over %zu bytes)",
                 l->max_outbuf);
            return RC_ELIMIT;
        }
        bytes += lens[i];
    }
    argv = rc_trymalloc((n + 1) * sizeof(*argv));
    argvlen = rc_trymalloc((n + 1) * sizeof(*argvlen));
    p = keep ? pending_new(op, cookie, channels, lens, n, bytes)
             : pending_new(op, cookie, NULL, NULL, 0, 0);
    err = RC_ENOMEM;
    if (!argv || !argvlen || !p)
        goto fail;
    argv[0] = argv0;
    argvlen[0] = strlen(argv0);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = channels[i];
        argvlen[i + 1] = lens[i];
    }
    len = redisFormatCommandArgv(&cmd, (int)n + 1, argv, argvlen);
    if (len < 0)
        goto fail;
    err = send_cmd(l, cmd, (size_t)len); /* steals cmd */
    if (err != RC_OK)
        goto fail;
    rc_list_push(&l->pending, &p->node);
    l->npending++;
    free(argv);
    free(argvlen);
    return RC_OK;
fail:
    free(p);
    free(argv);
    free(argvlen);
    return err;
}

/* ---- dispatch -------------------------------------------------------- */

static bool is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);

    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == n && memcmp(r->str, s, n) == 0;
}

static void desync(rc_sublink_t *l, const char *what)
{
    rc_log(RC_LOG_WARN, "sublink_desync", "what=\"%s\" pending=%zu", what,
           l->npending);
    fail(l, "lost sync with Redis: %s", what);
}

static void on_error_reply(rc_sublink_t *l, const redisReply *r)
{
    pending_t *p = head(l);
    rc_sublink_cmd_t cmd;

    if (!p) {
        fail(l, "error reply to no command: %.*s", (int)r->len, r->str);
        return;
    }
    if (p->op == OP_AUTH) {
        fail(l, "AUTH refused: %.*s", (int)r->len, r->str);
        return;
    }
    pop(l, p);
    cmd.op = (rc_sublink_op_t)p->op;
    cmd.cookie = p->cookie;
    cmd.n = p->n;
    cmd.channels = p->channels;
    cmd.lens = p->lens;
    cmd.confirmed = p->next;
    if (l->cbs.on_error)
        l->cbs.on_error(l->ctx, r->str, r->len, &cmd);
    free(p);
}

static void on_status(rc_sublink_t *l, const redisReply *r)
{
    pending_t *p = head(l);

    if (p && p->op == OP_AUTH && is(r, "OK")) {
        pop(l, p);
        free(p);
        l->state = ST_READY;
        if (l->cbs.on_ready)
            l->cbs.on_ready(l->ctx);
    } else if (p && p->op == RC_SUBLINK_PING && is(r, "PONG")) {
        pop(l, p);
        free(p);
        if (l->cbs.on_pong)
            l->cbs.on_pong(l->ctx);
    } else {
        desync(l, "unexpected status reply");
    }
}

static void on_confirm(rc_sublink_t *l, const redisReply *r, bool sharded,
                       bool sub)
{
    const redisReply *chan = r->element[1];
    int op = sub ? (sharded ? RC_SUBLINK_SSUBSCRIBE : RC_SUBLINK_SUBSCRIBE)
                 : (sharded ? RC_SUBLINK_SUNSUBSCRIBE : RC_SUBLINK_UNSUBSCRIBE);
    pending_t *p = head(l);
    bool ours = next_is(p, op, chan);

    if (r->element[2]->type != REDIS_REPLY_INTEGER ||
        chan->type != REDIS_REPLY_STRING) {
        desync(l, "malformed (un)subscribe reply");
        return;
    }
    if (!ours && sub) {
        desync(l, "subscribe confirmation for no command");
        return;
    }
    if (ours && ++p->next == p->n)
        pop(l, p);
    else
        p = NULL; /* not ours to free */
    if (sub && l->cbs.on_subscribed)
        l->cbs.on_subscribed(l->ctx, chan->str, chan->len, sharded,
                             r->element[2]->integer);
    else if (!sub && l->cbs.on_unsubscribed)
        l->cbs.on_unsubscribed(l->ctx, chan->str, chan->len, sharded, ours);
    free(p);
}

static void on_push(rc_sublink_t *l, const redisReply *r)
{
    const redisReply *kind;
    pending_t *p;

    if (r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING) {
        desync(l, "unexpected array reply");
        return;
    }
    kind = r->element[0];
    if ((is(kind, "message") || is(kind, "smessage")) && r->elements == 3 &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[2]->type == REDIS_REPLY_STRING) {
        if (l->cbs.on_message)
            l->cbs.on_message(l->ctx, r->element[1]->str, r->element[1]->len,
                              r->element[2]->str, r->element[2]->len,
                              kind->len == 8);
    } else if (r->elements == 3 &&
               (is(kind, "subscribe") || is(kind, "ssubscribe"))) {
        on_confirm(l, r, kind->len == 10, true);
    } else if (r->elements == 3 &&
               (is(kind, "unsubscribe") || is(kind, "sunsubscribe"))) {
        on_confirm(l, r, kind->len == 12, false);
    } else if (is(kind, "pong") && r->elements == 2) {
        p = head(l);
        if (!p || p->op != RC_SUBLINK_PING) {
            desync(l, "pong for no PING");
            return;
        }
        pop(l, p);
        free(p);
        if (l->cbs.on_pong)
            l->cbs.on_pong(l->ctx);
    } else {
        desync(l, "unexpected push");
    }
}

static void dispatch(rc_sublink_t *l, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_ERROR:
        on_error_reply(l, r);
        break;
    case REDIS_REPLY_STATUS:
        on_status(l, r);
        break;
    case REDIS_REPLY_ARRAY:
        if (head(l) && head(l)->op == OP_AUTH)
            desync(l, "array reply before AUTH's");
        else
            on_push(l, r);
        break;
    default:
        desync(l, "unexpected reply type");
        break;
    }
}

/* ---- reads and connect ------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rc_sublink_t *l = rc_container_of(h, rc_sublink_t, tcp);

    *buf = uv_buf_init(l->rbuf, sizeof(l->rbuf));
}

static void feed(rc_sublink_t *l, const char *bytes, size_t len);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    rc_sublink_t *l = rc_container_of(s, rc_sublink_t, tcp);

    if (!alive(l))
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            fail(l, "connection closed by Redis");
        else
            fail(l, "read: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    feed(l, buf->base, (size_t)nread);
}

/* Parses and dispatches what one read brought. */
static void feed(rc_sublink_t *l, const char *bytes, size_t len)
{
    redisReader *rd = l->reader;
    void *reply;

    if (redisReaderFeed(rd, bytes, len) != REDIS_OK) {
        fail(l, "reader: %s", rd->errstr);
        return;
    }
    /* Bounded: one read's worth of replies (STYLE rule 6). */
    while (alive(l)) {
        reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
            fail(l, "protocol error: %s", rd->errstr);
            return;
        }
        if (!reply)
            break;
        dispatch(l, reply);
        freeReplyObject(reply);
    }
    if (alive(l) && rd->len - rd->pos > l->max_inbuf)
        fail(l, "inbound reply over %zu bytes", l->max_inbuf);
}

static void on_connect(uv_connect_t *req, int status)
{
    rc_sublink_t *l = rc_container_of(req, rc_sublink_t, connect);
    rc_list_t *it;
    int rc;

    if (!alive(l))
        return; /* UV_ECANCELED: closing */
    if (status < 0) {
        fail(l, "connect: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
    if (rc < 0) {
        fail(l, "read start: %s", uv_strerror(rc));
        return;
    }
    l->state = l->authing ? ST_AUTHING : ST_READY;
    while (alive(l) && !rc_list_empty(&l->unsent)) {
        it = l->unsent.next;
        rc_list_remove(it);
        if (submit(l, rc_container_of(it, wreq_t, node)) != RC_OK)
            return;
    }
    if (l->state == ST_READY && l->cbs.on_ready)
        l->cbs.on_ready(l->ctx);
}

/* ---- API ------------------------------------------------------------- */

rc_sublink_t *rc_sublink_create(uv_loop_t *loop, const rc_sublink_cfg_t *cfg,
                                const rc_sublink_cbs_t *cbs, void *ctx)
{
    struct sockaddr_storage addr;
    rc_sublink_t *l;
    int rc;

    if (!loop || !cfg || !cfg->ip || !cbs)
        return NULL;
    memset(&addr, 0, sizeof(addr));
    if (uv_ip4_addr(cfg->ip, cfg->port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(cfg->ip, cfg->port, (struct sockaddr_in6 *)&addr) != 0)
        return NULL;
    l = rc_xcalloc(1, sizeof(*l));
    l->cbs = *cbs;
    l->ctx = ctx;
    l->max_outbuf =
        cfg->max_outbuf ? cfg->max_outbuf : RC_SUBLINK_DEFAULT_MAX_OUTBUF;
    l->max_inbuf =
        cfg->max_inbuf ? cfg->max_inbuf : RC_SUBLINK_DEFAULT_MAX_INBUF;
    l->max_pending =
        cfg->max_pending ? cfg->max_pending : RC_SUBLINK_DEFAULT_MAX_PENDING;
    rc_list_init(&l->pending);
    rc_list_init(&l->unsent);
    l->state = ST_CONNECTING;
    l->reader = redisReaderCreate();
    if (!l->reader || uv_tcp_init(loop, &l->tcp) != 0) {
        if (l->reader)
            redisReaderFree(l->reader);
        free(l);
        return NULL;
    }
    if (cfg->password) {
        const char *user = cfg->user;
        const char *pass = cfg->password;
        rc_err_t err;

        l->authing = true;
        err = user ? command(l, OP_AUTH, "AUTH", (const char *[]){user, pass},
                             (const size_t[]){strlen(user), strlen(pass)}, 2, 0,
                             false)
                   : command(l, OP_AUTH, "AUTH", &pass,
                             (const size_t[]){strlen(pass)}, 1, 0, false);
        if (err != RC_OK) {
            fail(l, "AUTH: %s", rc_err_str(err));
            return l; /* on_close reports it from the loop */
        }
    }
    rc = uv_tcp_connect(&l->connect, &l->tcp, (struct sockaddr *)&addr,
                        on_connect);
    if (rc < 0)
        fail(l, "connect: %s", uv_strerror(rc));
    return l;
}

void rc_sublink_drain(rc_sublink_t *l)
{
    uv_os_fd_t fd;
    size_t total = 0;
    ssize_t got;

    if (!l || !alive(l) || l->state != ST_READY ||
        uv_fileno((const uv_handle_t *)&l->tcp, &fd) != 0)
        return;
    /* Straight from the socket, without waiting: libuv finds nothing left
     * later, or an EOF, which it reports as usual. */
    while (alive(l) && total < RC_SUBLINK_DRAIN_MAX) {
        got = recv(fd, l->rbuf, sizeof(l->rbuf), MSG_DONTWAIT);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        total += (size_t)got;
        feed(l, l->rbuf, (size_t)got);
    }
}

void rc_sublink_destroy(rc_sublink_t *l)
{
    if (!l || l->destroyed)
        return;
    l->destroyed = true;
    if (alive(l))
        begin_close(l);
    else if (l->state == ST_CLOSED && !l->in_close_cb)
        free(l);
    /* ST_CLOSING, or inside on_close: on_closed() frees it. */
}

rc_err_t rc_sublink_subscribe(rc_sublink_t *l, const char *const *channels,
                              const size_t *lens, size_t n, bool sharded,
                              uint64_t cookie)
{
    return command(l, sharded ? RC_SUBLINK_SSUBSCRIBE : RC_SUBLINK_SUBSCRIBE,
                   sharded ? "SSUBSCRIBE" : "SUBSCRIBE", channels, lens, n,
                   cookie, true);
}

rc_err_t rc_sublink_unsubscribe(rc_sublink_t *l, const char *const *channels,
                                const size_t *lens, size_t n, bool sharded,
                                uint64_t cookie)
{
    return command(l,
                   sharded ? RC_SUBLINK_SUNSUBSCRIBE : RC_SUBLINK_UNSUBSCRIBE,
                   sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE", channels, lens, n,
                   cookie, true);
}

rc_err_t rc_sublink_ping(rc_sublink_t *l)
{
    return command(l, RC_SUBLINK_PING, "PING", NULL, NULL, 0, 0, true);
}

size_t rc_sublink_queued_bytes(const rc_sublink_t *l)
{
    return l->queued;
}

size_t rc_sublink_pending(const rc_sublink_t *l)
{
    return l->npending;
}

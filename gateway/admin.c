/* Minimal HTTP server for the admin endpoints, on the node's loop (and the
 * supervisor's, with workers): reads one request head, answers HTTP/1.1
 * with Connection: close. Bounded: max_conns connections at once (one more
 * is closed unanswered; a closing one no longer counts), each closed when
 * its request is not whole within timeout_ms, or its answer not written
 * within timeout_ms more (a peer that never reads; one sweep timer, not
 * one per request); with a token, methods other than GET/HEAD (and GET
 * /stats when asked) need `Authorization: Bearer <token>`.
 * SPDX-License-Identifier: MIT */
#include "gateway/admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

#define REQ_MAX 8192 /* bytes of request head; more is refused */

struct rc_admin {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep; /* closes requests older than timeout_ms */
    rc_admin_handler handler;
    void *ctx;
    rc_admin_policy_t policy;
    rc_list_t reqs; /* oldest first */
    uint32_t nreqs;
    int closing;
    int open_handles; /* listener and sweep: a is freed when both closed */
};

typedef struct admin_req {
    uv_tcp_t tcp;
    uv_write_t wr;
    rc_list_t link;
    rc_admin_t *admin;
    uint64_t started_ms;
    uint64_t responded_ms; /* when the answer was queued */
    size_t len;
    char *out;
    int responded;
    int counted; /* holds one of admin->nreqs until req_close() */
    char buf[REQ_MAX];
} admin_req_t;

static void on_req_closed(uv_handle_t *h)
{
    admin_req_t *r = h->data;

    rc_list_remove(&r->link);
    free(r->out);
    free(r);
}

/* The slot is free from here: the socket is closed by the time the loop
 * runs the callback, and a client that reconnects at once must not be
 * refused for a connection that is already gone. */
static void req_close(admin_req_t *r)
{
    if (r->counted && r->admin) {
        r->counted = 0;
        r->admin->nreqs--;
    }
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, on_req_closed);
}

static void on_written(uv_write_t *w, int status)
{
    admin_req_t *r = w->data;
    (void)status;
    req_close(r);
}

static const char *status_text(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 414:
        return "URI Too Long";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void respond(admin_req_t *r, int code, const char *ctype,
                    const char *body, size_t blen)
{
    rc_buf_t out = {0};
    uv_buf_t b;

    r->responded = 1;
    r->responded_ms = uv_now(r->admin->loop);
    uv_read_stop((uv_stream_t *)&r->tcp);
    rc_buf_printf(
        &out,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
        "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
        code, status_text(code), ctype, blen,
        code == 401 ? "WWW-Authenticate: Bearer realm=\"roomcast\"\r\n" : "");
    rc_buf_append(&out, body, blen);
    r->out = out.data;
    b = uv_buf_init(out.data, (unsigned)out.len);
    r->wr.data = r;
    if (uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_written) != 0)
        req_close(r);
}

rc_err_t rc_admin_parse_head(const char *buf, size_t len, rc_admin_head_t *out)
{
    size_t i = 0, m = 0, p = 0;

    memset(out, 0, sizeof(*out));
    if (!buf)
        return RC_EINVAL;
    for (; i < len && buf[i] >= 'A' && buf[i] <= 'Z'; i++, m++)
        if (m == RC_ADMIN_METHOD_MAX)
            goto too_long;
    if (m == 0 || i >= len || buf[i] != ' ')
        goto bad;
    memcpy(out->method, buf, m);
    i++;
    if (i >= len || buf[i] != '/')
        goto bad;
    /* The path: visible ASCII up to "?", a space or the line's end. */
    for (; i < len && buf[i] > ' ' && buf[i] < 0x7f && buf[i] != '?'; i++) {
        if (p == RC_ADMIN_PATH_MAX)
            goto too_long;
        out->path[p++] = buf[i];
    }
    /* The query: visible ASCII, ignored. */
    if (i < len && buf[i] == '?')
        while (++i < len && buf[i] > ' ' && buf[i] < 0x7f)
            ;
    if (i < len && buf[i] == ' ') {
        static const char ver[] = "HTTP/1.";

        i++;
        if (len - i < sizeof(ver) || memcmp(buf + i, ver, sizeof(ver) - 1) ||
            buf[i + sizeof(ver) - 1] < '0' || buf[i + sizeof(ver) - 1] > '9')
            goto bad;
        i += sizeof(ver);
    }
    if (i < len && buf[i] == '\r')
        i++;
    if (i < len && buf[i] == '\n')
        return RC_OK;
bad:
    memset(out, 0, sizeof(*out));
    return RC_EINVAL;
too_long:
    memset(out, 0, sizeof(*out));
    return RC_ELIMIT;
}

/* The value of the first Authorization header of a request head (the
 * request line skipped, nothing read past the blank line that ends the
 * head), trimmed; NULL when there is none. */
static const char *auth_header(const char *head, size_t len, size_t *vlen)
{
    static const char name[] = "authorization:";
    size_t i = 0;

    while (head && i < len) {
        const char *line = head + i, *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        const char *v, *end;

        i += ll + 1;
        if (line != head && (ll == 0 || (ll == 1 && line[0] == '\r')))
            break; /* the head ends; what follows is a body */
        if (line == head || ll < sizeof(name) - 1 ||
            strncasecmp(line, name, sizeof(name) - 1) != 0)
            continue;
        v = line + sizeof(name) - 1;
        end = line + ll;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v &&
               (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *vlen = (size_t)(end - v);
        return v;
    }
    return NULL;
}

bool rc_admin_bearer_ok(const char *head, size_t len, const char *token,
                        size_t tlen)
{
    size_t vl = 0;
    const char *v = auth_header(head, len, &vl);

    if (!v || !token || tlen == 0 || vl < 7 || strncasecmp(v, "Bearer ", 7))
        return false;
    v += 7;
    vl -= 7;
    while (vl && *v == ' ') {
        v++;
        vl--;
    }
    /* Constant time in the token's bytes: a length mismatch still compares
     * tlen bytes (the token against itself). */
    return CRYPTO_memcmp(vl == tlen ? v : token, token, tlen) == 0 &&
           vl == tlen;
}

/* Whether this request needs the token under the policy. */
static bool needs_token(const rc_admin_policy_t *p, const rc_admin_head_t *h)
{
    if (!p->token)
        return false;
    if (strcmp(h->method, "GET") != 0 && strcmp(h->method, "HEAD") != 0)
        return true;
    return p->protect_stats && strcmp(h->path, "/stats") == 0;
}

static void handle(admin_req_t *r)
{
    rc_admin_head_t head;
    rc_buf_t body = {0};
    const char *ctype = "text/plain; charset=utf-8";
    rc_err_t err;
    int code;

    err = rc_admin_parse_head(r->buf, r->len, &head);
    if (err == RC_ELIMIT) {
        respond(r, 414, ctype, "request line too long\n", 22);
        return;
    }
    if (err != RC_OK) {
        respond(r, 400, ctype, "bad request\n", 12);
        return;
    }
    if (needs_token(&r->admin->policy, &head) &&
        !rc_admin_bearer_ok(r->buf, r->len, r->admin->policy.token,
                            r->admin->policy.token_len)) {
        static const char msg[] = "{\"error\":\"unauthorized\"}\n";
        size_t vl;
        rc_log(RC_LOG_WARN, "admin_refused", "method=%s path=%s reason=%s",
               head.method, head.path,
               auth_header(r->buf, r->len, &vl) ? "bad_token" : "no_token");
        respond(r, 401, "application/json", msg, sizeof(msg) - 1);
        return;
    }
    code =
        r->admin->handler(r->admin->ctx, head.method, head.path, &body, &ctype);
    respond(r, code, ctype, body.data ? body.data : "", body.len);
    free(body.data);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    admin_req_t *r = h->data;
    (void)hint;
    buf->base = r->buf + r->len;
    buf->len = sizeof(r->buf) - 1 - r->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    admin_req_t *r = s->data;
    (void)buf;

    if (n < 0) {
        req_close(r);
        return;
    }
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    if (strstr(r->buf, "\r\n\r\n") || strstr(r->buf, "\n\n")) {
        handle(r);
        return;
    }
    if (r->len >= sizeof(r->buf) - 1)
        respond(r, 400, "text/plain", "request too large\n", 18);
}

static void on_conn(uv_stream_t *srv, int status)
{
    rc_admin_t *a = srv->data;
    admin_req_t *r;

    if (status < 0 || a->closing)
        return;
    r = rc_xcalloc(1, sizeof(*r));
    r->admin = a;
    r->started_ms = uv_now(a->loop);
    uv_tcp_init(a->loop, &r->tcp);
    r->tcp.data = r;
    rc_list_push(&a->reqs, &r->link);
    a->nreqs++;
    r->counted = 1;
    if (uv_accept(srv, (uv_stream_t *)&r->tcp) != 0) {
        req_close(r);
        return;
    }
    if (a->nreqs > a->policy.max_conns) {
        /* Closed at once, unread: an answer written before the request is
         * read would be lost to the reset anyway, and reading it would hold
         * the slot the bound is about. */
        rc_log(RC_LOG_WARN, "admin_busy", "open=%u max=%u", a->nreqs - 1,
               a->policy.max_conns);
        req_close(r);
        return;
    }
    if (uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) != 0)
        req_close(r);
}

/* Requests are listed oldest first: close those past the bound. A request
 * answered is given timeout_ms from its answer to be written out (one
 * answered later than another started no earlier, so the walk still stops
 * at the first request younger than the bound). */
static void on_sweep(uv_timer_t *t)
{
    rc_admin_t *a = t->data;
    uint64_t now = uv_now(a->loop);
    rc_list_t *it, *tmp;

    rc_list_foreach_safe(it, tmp, &a->reqs)
    {
        admin_req_t *r = rc_container_of(it, admin_req_t, link);
        uint64_t since;

        if (now - r->started_ms < a->policy.timeout_ms)
            break;
        if (uv_is_closing((uv_handle_t *)&r->tcp))
            continue;
        since = r->responded ? r->responded_ms : r->started_ms;
        if (now - since < a->policy.timeout_ms)
            continue;
        rc_log(RC_LOG_INFO, "admin_timeout", "after_ms=%" PRIu64 " phase=%s",
               now - r->started_ms, r->responded ? "write" : "read");
        req_close(r);
    }
}

rc_admin_t *rc_admin_create(uv_loop_t *loop, const char *host, int port,
                            rc_admin_handler handler, void *ctx,
                            const rc_admin_policy_t *policy, char *err,
                            size_t errlen)
{
    rc_admin_t *a = rc_xcalloc(1, sizeof(*a));
    struct sockaddr_storage ss;
    int rc;

    a->loop = loop;
    a->handler = handler;
    a->ctx = ctx;
    if (policy)
        a->policy = *policy;
    if (!a->policy.max_conns)
        a->policy.max_conns = 64;
    if (!a->policy.timeout_ms)
        a->policy.timeout_ms = 5000;
    if (!a->policy.token || !a->policy.token_len) {
        a->policy.token = NULL;
        a->policy.token_len = 0;
    }
    rc_list_init(&a->reqs);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "admin_listen: bad address %s", host);
        free(a);
        return NULL;
    }
    uv_tcp_init(loop, &a->listener);
    a->listener.data = a;
    rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->listener, 128, on_conn);
    if (rc != 0) {
        snprintf(err, errlen, "admin_listen: %s:%d: %s", host, port,
                 uv_strerror(rc));
        a->closing = 1;
        /* The handle must be closed on the loop; free after that. */
        uv_close((uv_handle_t *)&a->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(a);
        return NULL;
    }
    uv_timer_init(loop, &a->sweep);
    a->sweep.data = a;
    {
        uint64_t every = a->policy.timeout_ms / 4;
        every = every < 50 ? 50 : every > 1000 ? 1000 : every;
        uv_timer_start(&a->sweep, on_sweep, every, every);
    }
    a->open_handles = 2;
    return a;
}

static void on_listener_closed(uv_handle_t *h)
{
    rc_admin_t *a = h->data;

    if (--a->open_handles == 0)
        free(a);
}

void rc_admin_destroy(rc_admin_t *a)
{
    rc_list_t *it, *tmp;

    if (!a)
        return;
    a->closing = 1;
    /* Unlink first: libuv may run the listener's close callback (which
     * frees a) before the requests' ones. */
    rc_list_foreach_safe(it, tmp, &a->reqs)
    {
        admin_req_t *r = rc_container_of(it, admin_req_t, link);
        rc_list_remove(it); /* self-linked: on_req_closed's remove is a no-op */
        r->admin = NULL;
        req_close(r);
    }
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    uv_close((uv_handle_t *)&a->sweep, on_listener_closed);
}

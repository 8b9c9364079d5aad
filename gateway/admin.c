/* Minimal HTTP server for the admin endpoints, on the node's loop: reads
 * one request line, answers HTTP/1.1 with Connection: close.
 * SPDX-License-Identifier: MIT */
#include "gateway/admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/list.h"
#include "common/log.h"
#include "common/mem.h"

#define REQ_MAX 8192 /* bytes of request head; more is refused */

struct rc_admin {
    uv_loop_t *loop;
    uv_tcp_t listener;
    rc_admin_handler handler;
    void *ctx;
    rc_list_t reqs;
    int closing;
};

typedef struct admin_req {
    uv_tcp_t tcp;
    uv_write_t wr;
    rc_list_t link;
    rc_admin_t *admin;
    size_t len;
    char *out;
    int responded;
    char buf[REQ_MAX];
} admin_req_t;

static void on_req_closed(uv_handle_t *h)
{
    admin_req_t *r = h->data;

    rc_list_remove(&r->link);
    free(r->out);
    free(r);
}

static void req_close(admin_req_t *r)
{
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
    uv_read_stop((uv_stream_t *)&r->tcp);
    rc_buf_printf(&out,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  code, status_text(code), ctype, blen);
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
    uv_tcp_init(a->loop, &r->tcp);
    r->tcp.data = r;
    rc_list_push(&a->reqs, &r->link);
    if (uv_accept(srv, (uv_stream_t *)&r->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) != 0)
        req_close(r);
}

rc_admin_t *rc_admin_create(uv_loop_t *loop, const char *host, int port,
                            rc_admin_handler handler, void *ctx, char *err,
                            size_t errlen)
{
    rc_admin_t *a = rc_xcalloc(1, sizeof(*a));
    struct sockaddr_storage ss;
    int rc;

    a->loop = loop;
    a->handler = handler;
    a->ctx = ctx;
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
    return a;
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
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
        rc_list_remove(it);
        req_close(rc_container_of(it, admin_req_t, link));
    }
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
}

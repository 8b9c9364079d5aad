/* The client port as lws sees it: the protocol callback, the upgrade and
 * its refusals (path, subprotocol, capacity, token; written whole as
 * HTTP/1.1), a connection's birth (on_confirm_upgrade, on_established) and
 * its one place of death (conn_free, from CLOSED or WSI_DESTROY). Frames in
 * go to session.c, WRITEABLE to writer.c.
 * SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"
#include "gateway/node_internal.h"
#include "gateway/tls.h"

/* Header values lws keeps for us (rc__ws_token_limits): the longest we
 * accept is one less; a value that reaches its limit was truncated. */
#define WS_AUTH_LIMIT (RC_AUTH_MAX_TOKEN + 16) /* "Bearer " + token */
#define WS_ARG_LIMIT (RC_AUTH_MAX_TOKEN + 16)  /* "token=" + token */
/* lws 4.1 itself drops an upgrade whose Sec-WebSocket-Protocol list is
 * 127 bytes or more, or names a protocol of 63 bytes or more: those are
 * refused here first, with an answer (431, 400). */
#define WS_PROTO_LIMIT 127
#define WS_PROTO_NAME_MAX 62

static uint64_t next_session(rc_node_t *n)
{
    /* splitmix64 over a random seed: unique per node, unguessable enough
     * for a log correlation id (resume tokens are signed separately). */
    uint64_t z = n->session_seed + (++n->session_ctr) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char *http_reason(unsigned int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Refuse an HTTP request (or an upgrade before it happens) with a short
 * JSON body, then close. The response is written whole, status line
 * included: lws would answer HTTP/1.0 this early in the request, which
 * strict WebSocket clients reject. */
static int http_refuse(struct lws *wsi, unsigned int status, const char *body)
{
    unsigned char buf[LWS_PRE + 768];
    char *p = (char *)buf + LWS_PRE;
    size_t cap = sizeof(buf) - LWS_PRE;
    int n;

    n = snprintf(p, cap,
                 "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\n"
                 "content-length: %zu\r\n%sconnection: close\r\n\r\n%s",
                 status, http_reason(status), strlen(body),
                 status == 503 ? "retry-after: 1\r\n" : "", body);
    if (n > 0 && (size_t)n < cap)
        (void)lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP);
    /* Refused: close after the response instead of keeping it alive. */
    return -1;
}

/* The Sec-WebSocket-Protocol list read in full: up to WS_PROTO_LIMIT
 * bytes (lws truncates it there, rc__ws_token_limits); a longer one is
 * refused (431) rather than read as "none offered". */
static bool offers_subprotocol(struct lws *wsi, bool *offered_any)
{
    char buf[WS_PROTO_LIMIT + 1], *tok, *save = NULL;

    *offered_any = false;
    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_PROTOCOL) <= 0)
        return false;
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t l = strlen(tok);
        while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
            tok[--l] = '\0';
        if (l)
            *offered_any = true;
        if (l > WS_PROTO_NAME_MAX)
            return false; /* lws would fail the upgrade: refuse it */
        if (strcmp(tok, RC_NODE_SUBPROTOCOL) == 0)
            return true;
    }
    return false;
}

/* True when a `token=` query argument is present but longer than any
 * token we take (lws truncated it at WS_ARG_LIMIT). */
static bool query_token_too_long(struct lws *wsi)
{
    for (int i = 0;; i++) {
        int l = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (l <= 0)
            return false;
        if (l < WS_ARG_LIMIT)
            continue;
        /* lws_hdr_copy_fragment copies whole fragments only: look at the
         * start through a buffer of the fragment's size. */
        {
            char *f = rc_trymalloc((size_t)l + 1);
            bool tok;
            if (!f)
                return true; /* cannot tell: refuse */
            tok = lws_hdr_copy_fragment(wsi, f, l + 1, WSI_TOKEN_HTTP_URI_ARGS,
                                        i) > 0 &&
                  strncmp(f, "token=", 6) == 0;
            free(f);
            if (tok)
                return true;
        }
    }
}

void rc__ws_refused_at_accept(rc_node_t *n)
{
    n->metrics.bounds_hit[RC_BOUND_PENDING_SOURCE]++;
    n->metrics.upgrades_refused++;
    rc_log(RC_LOG_DEBUG, "refused_at_accept", "reason=pending_per_source");
}

void rc__ws_token_limits(struct lws_token_limits *tl)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(tl->token_limit); i++)
        tl->token_limit[i] = 65535;
    /* Longer values are truncated by lws (not stored, so the request
     * still fits its header buffer) and refused here with an answer,
     * where lws would drop the connection without one. */
    tl->token_limit[WSI_TOKEN_HTTP_AUTHORIZATION] = WS_AUTH_LIMIT;
    tl->token_limit[WSI_TOKEN_HTTP_URI_ARGS] = WS_ARG_LIMIT;
    /* lws parses the arguments in the URI's state: its limit applies to
     * each argument; the path is refused past 255 bytes anyway. */
    tl->token_limit[WSI_TOKEN_GET_URI] = WS_ARG_LIMIT;
    tl->token_limit[WSI_TOKEN_PROTOCOL] = WS_PROTO_LIMIT;
    /* Never read here, and the one header browsers make big: every cookie
     * of the site rides on the upgrade. Kept (a byte and the lws limit
     * marker), it would fill the header buffer and lws would drop the
     * socket unanswered; skipped, the client connects. */
    tl->token_limit[WSI_TOKEN_HTTP_COOKIE] = 1;
}

static int refuse_auth(rc_node_t *n, struct lws *wsi, rc_auth_reason_t r,
                       const char *source)
{
    char body[160];

    rc__session_count_auth_failure(n, r);
    n->metrics.upgrades_refused++;
    rc_log(RC_LOG_INFO, "auth_refused", "source=%s reason=%s", source,
           rc_auth_reason_str(r));
    snprintf(body, sizeof(body),
             "{\"error\":\"unauthorized\",\"reason\":\"%s\"}",
             rc_auth_reason_str(r));
    return http_refuse(wsi, 401, body);
}

/* Decide an upgrade before it happens: path, subprotocol, capacity, token.
 * On success the new conn hangs off the wsi's opaque pointer. */
static int on_confirm_upgrade(rc_node_t *n, struct lws *wsi)
{
    /* The token buffer is on the stack only here, for one call. */
    char path[256], tok[RC_AUTH_MAX_TOKEN + 64];
    const char *token = NULL, *source = NULL;
    size_t token_len = 0;
    rc_identity_t *id = NULL;
    rc_conn_t *c;
    bool any;
    int l;

    if (n->stopping || n->draining) {
        n->metrics.upgrades_refused++;
        return http_refuse(wsi, 503, "{\"error\":\"draining\"}");
    }
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0 ||
        strcmp(path, n->cfg->ws_path) != 0) {
        n->metrics.upgrades_refused++;
        return http_refuse(wsi, 404, "{\"error\":\"not_found\"}");
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) >= WS_PROTO_LIMIT) {
        n->metrics.upgrades_refused++;
        return http_refuse(wsi, 431,
                           "{\"error\":\"header_too_large\","
                           "\"header\":\"sec-websocket-protocol\"}");
    }
    if (!offers_subprotocol(wsi, &any) && any) {
        n->metrics.upgrades_refused++;
        return http_refuse(
            wsi, 400,
            "{\"error\":\"bad_subprotocol\",\"expected\":\"" RC_NODE_SUBPROTOCOL
            "\"}");
    }
    if (n->cfg->max_connections && n->nconns >= n->cfg->max_connections) {
        n->metrics.upgrades_refused++;
        return http_refuse(wsi, 503, "{\"error\":\"full\"}");
    }

    /* Token sources in the contract's order: header, query, first frame. */
    l = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (l > 0) {
        if (l >= WS_AUTH_LIMIT) {
            n->metrics.bounds_hit[RC_BOUND_TOKEN_TOO_LONG]++;
            return refuse_auth(n, wsi, RC_AUTH_TOO_LONG, "header");
        }
        lws_hdr_copy(wsi, tok, sizeof(tok), WSI_TOKEN_HTTP_AUTHORIZATION);
        if (strncasecmp(tok, "Bearer ", 7) == 0) {
            token = tok + 7;
            while (*token == ' ')
                token++;
            token_len = strlen(token);
            source = "header";
        }
    }
    if (!token && query_token_too_long(wsi)) {
        /* lws_get_urlarg_by_name would not find it (it does not fit its
         * buffer): refused as the contract says, not upgraded. */
        n->metrics.bounds_hit[RC_BOUND_TOKEN_TOO_LONG]++;
        return refuse_auth(n, wsi, RC_AUTH_TOO_LONG, "query");
    }
    if (!token) {
        const char *q =
            lws_get_urlarg_by_name(wsi, "token=", tok, (int)sizeof(tok) - 1);
        if (q) {
            token = q;
            token_len = strlen(q);
            source = "query";
        }
    }
    if (token && n->auth) {
        rc_auth_reason_t r =
            rc_auth_verify(n->auth, token, token_len, rc__node_wall_ms(), &id);
        if (r != RC_AUTH_OK)
            return refuse_auth(n, wsi, r, source);
    }
    if (!token && n->auth && n->npending >= n->cfg->max_pending_auth) {
        n->metrics.upgrades_refused++;
        return http_refuse(wsi, 503, "{\"error\":\"too_many_pending\"}");
    }

    c = rc_xmalloc(sizeof(*c));
    rc_conn_init(c);
    c->id = id;
    {
        const char *rq =
            lws_get_urlarg_by_name(wsi, "resume=", tok, (int)sizeof(tok) - 1);
        if (rq && *rq && strlen(rq) < 1024)
            c->resume = rc_xstrdup(rq);
    }
    c->session = next_session(n);
    c->state = (id || !n->auth) ? RC_CONN_OPEN : RC_CONN_PENDING_AUTH;
    lws_set_opaque_user_data(wsi, c);
    return 0;
}

static void conn_free(rc_node_t *n, rc_conn_t *c)
{
    if (n->hb_cursor == c) {
        rc_list_t *next = c->in_server.next;
        n->hb_cursor = next == &n->conns
                           ? NULL
                           : rc_container_of(next, rc_conn_t, in_server);
    }
    if (!rc_list_empty(&c->in_server)) {
        rc_list_remove(&c->in_server);
        n->nconns--;
        n->metrics.conns_closed++;
    }
    rc__timers_pending_remove(n, c);
    rc__timers_exp_remove(n, c);
    rc__writer_unlist(n, c);
    if (c->id && c->state != RC_CONN_PENDING_AUTH)
        rc__resume_index_remove(n, c);
    /* A client that goes away can resume on any node within resume_ttl. */
    (void)rc__resume_save(n, c, false, NULL, NULL);
    rc_hub_leave_all(n->hub, c);
    /* Ops still waiting for the adapter outlive the conn; cut them loose. */
    while (!rc_list_empty(&c->ops)) {
        rc__session_op_t *op =
            rc_container_of(c->ops.next, rc__session_op_t, in_conn);
        if (op->replay) {
            rc__session_op_destroy(op); /* a paced replay: nobody to wait */
            continue;
        }
        rc_list_remove(&op->in_conn);
        op->c = NULL;
    }
    rc_identity_destroy(c->id);
    rc_conn_dispose(c);
    free(c);
}

static void on_established(rc_node_t *n, rc_conn_t *c, struct lws *wsi)
{
    c->wsi = wsi;
    c->last_rx_ms = c->refill_ms = rc__node_loop_ms(n);
    c->tokens = n->cfg->rate_burst * 1000;
    rc_list_push(&n->conns, &c->in_server);
    n->nconns++;
    n->metrics.conns_opened++;
    if (c->state == RC_CONN_PENDING_AUTH) {
        rc__timers_pending_add(n, c);
        return;
    }
    rc__session_open(n, c);
}

int rc__ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    rc_node_t *n = lws_context_user(ctx);
    rc_conn_t *c = lws_get_opaque_user_data(wsi);

    if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS) {
        /* lws built the listener's SSL_CTX (user): the lowest version,
         * and keep it for the SIGHUP reload. */
        if (n && user) {
            n->ssl_ctx = user;
            rc_tls_configure(user, n->cfg->tls_min_version);
        }
        return 0;
    }
    if (reason == LWS_CALLBACK_FILTER_NETWORK_CONNECTION) {
        /* lws's own listener accepted a socket (listen.c does this for
         * workers): may its source hold one more request head? */
        const struct lws_filter_network_conn_args *fa = user;

        if (!n || !fa ||
            rc_srclimit_admit(&n->srclimit, fa->accept_fd,
                              (const struct sockaddr *)&fa->cli_addr,
                              uv_now(n->loop)))
            return 0;
        rc__ws_refused_at_accept(n);
        return 1;
    }
    /* The head is whole, or the socket is gone: it no longer counts. */
    if (n &&
        (reason == LWS_CALLBACK_HTTP_CONFIRM_UPGRADE ||
         reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_WSI_DESTROY))
        rc_srclimit_done(&n->srclimit, lws_get_socket_fd(wsi));
    if (rc__client_js_is_state(c)) {
        /* A GET /roomcast.js in progress (client_js.c), never a client. */
        if (reason == LWS_CALLBACK_HTTP_WRITEABLE)
            return rc__client_js_writeable(wsi);
        if (reason == LWS_CALLBACK_CLOSED_HTTP ||
            reason == LWS_CALLBACK_WSI_DESTROY)
            lws_set_opaque_user_data(wsi, NULL);
        return 0;
    }
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (strcmp((const char *)in, "websocket") != 0)
            return http_refuse(wsi, 400, "{\"error\":\"bad_upgrade\"}");
        return on_confirm_upgrade(n, wsi);
    case LWS_CALLBACK_HTTP:
        /* Plain HTTP on the client port: upgrades, and the JS client. */
        if (in && strcmp((const char *)in, "/roomcast.js") == 0 &&
            lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
            return rc__client_js_http(wsi);
        return http_refuse(wsi, 426, "{\"error\":\"upgrade_required\"}");
    case LWS_CALLBACK_ESTABLISHED:
        if (!c)
            return -1;
        on_established(n, c, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (!c)
            return -1;
        return rc__session_receive(n, c, wsi, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws answers the close; from now on only WRITEABLE writes. */
        if (c)
            c->peer_closed = 1;
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c)
            c->last_rx_ms = rc__node_loop_ms(n);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (!c)
            return -1;
        return rc__writer_writeable(n, c, wsi);
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        /* CLOSED for clients that were upgraded; WSI_DESTROY catches the
         * ones refused between CONFIRM_UPGRADE and ESTABLISHED. */
        if (c) {
            lws_set_opaque_user_data(wsi, NULL);
            c->wsi = NULL;
            conn_free(n, c);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

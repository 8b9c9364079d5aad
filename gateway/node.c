/* The node's lifecycle: rc_node_create (the hub, the adapter through
 * rc_adapter_create, the verifier, the admin listener, the lws context on
 * the node's loop), rc_node_stop, rc_node_destroy, and the glue between
 * the adapter and the hub (the adapter's sink, the hub's room_open and
 * room_close). The rest of the node is one concern per file; see
 * node_internal.h for the list.
 *
 * Path of a message (see docs/ARCHITECTURE.md): the adapter frames it once
 * (rc_adapter_frame_msg) and calls on_adapter_deliver -> rc_hub_deliver,
 * which pushes one ref onto each member's queue; a queue that was empty
 * puts its client on the flush list (writer.c), written once at the end of
 * the loop iteration, so everything queued for a client leaves in one
 * lws_write(LWS_WRITE_RAW); WRITEABLE is used only when the socket is full.
 * SPDX-License-Identifier: MIT */
#include "gateway/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "adapter/adapter.h"
#include "auth/auth.h"
#include "common/log.h"
#include "common/mem.h"
#include "gateway/admin.h"
#include "gateway/hub.h"
#include "gateway/node_internal.h"
#include "gateway/tls.h"

/* lws reads ws payload into a per-connection buffer of this size; larger
 * frames arrive in several RECEIVE calls and are reassembled (session.c).
 * Small, because it is paid by every idle client. */
#define RX_CHUNK 128
/* Seconds from a socket's first byte to a whole request head (lws's
 * timeout_secs_ah_idle; its default 10 s let trickled headers hold every
 * slot). */
#define AH_IDLE_SECS 3
/* uv handles the node owns: five timers, the flush check and its idle. */
#define NODE_HANDLES 7

int64_t rc__node_wall_ms(void)
{
    uv_timeval64_t tv;

    if (uv_gettimeofday(&tv) != 0)
        return 0; /* only with a NULL argument */
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *rc__node_state(const rc_node_t *n)
{
    return n->stopping ? "stopping" : n->draining ? "draining" : "serving";
}

/* ------------------------------------------- adapter sink and hub glue */

static void hub_room_open(void *ctx, rc_room_t *room)
{
    rc_node_t *n = ctx;
    n->adapter->ops->room_open(n->adapter, room->name, room);
}

static void hub_room_close(void *ctx, rc_room_t *room)
{
    rc_node_t *n = ctx;

    rc__catchup_room_closed(room);
    if (n->adapter) /* NULL once the node stopped */
        n->adapter->ops->room_close(n->adapter, room->name);
}

static const rc_hub_ops_t hub_ops = {
    .wake = rc__writer_wake,
    .slow = rc__writer_slow,
    .room_open = hub_room_open,
    .room_close = hub_room_close,
    .cancel = rc__session_cancel,
};

static void on_adapter_deliver(void *ctx, void *token, rc_msg_t *m)
{
    rc_node_t *n = ctx;
    n->metrics.deliveries += rc_hub_deliver_room(n->hub, token, m);
}

static void on_adapter_state(void *ctx, bool up)
{
    (void)ctx;
    rc_log(up ? RC_LOG_INFO : RC_LOG_WARN, "backend_state", "up=%d", up);
}

static void on_adapter_control(void *ctx, const char *cmd)
{
    rc_node_t *n = ctx;

    if (n->role.control) {
        n->role.control(n->role.ctx, cmd);
        return;
    }
    if (strcmp(cmd, "drain") == 0)
        rc_node_drain(n);
    else
        rc_log(RC_LOG_WARN, "unknown_control", "cmd=%s", cmd);
}

static size_t on_adapter_node_info(void *ctx, char *buf, size_t len)
{
    rc_node_t *n = ctx;
    json_t *o;
    char *txt;
    size_t l = 0;
    char addr[300];

    if (n->role.node_info)
        return n->role.node_info(n->role.ctx, buf, len);
    snprintf(addr, sizeof(addr), "%s:%d", n->cfg->listen_host,
             n->cfg->listen_port);
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", n->cfg->node_id,
                  "addr", addr, "state", rc__node_state(n), "connections",
                  (json_int_t)n->nconns, "rooms",
                  (json_int_t)rc_hub_room_count(n->hub), "ts",
                  (json_int_t)rc__node_wall_ms());
    txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (txt && strlen(txt) < len) {
        l = strlen(txt);
        memcpy(buf, txt, l + 1);
    }
    free(txt);
    json_decref(o);
    return l;
}

/* ----------------------------------------------------------- lifecycle */

static const struct lws_protocols protocols[] = {
    /* tx_packet_size: lws caps one send at it, or at rx_buffer_size
     * (+ LWS_PRE + 4) when it is 0: a coalesced write would go out in
     * 276-byte pieces, each through lws's buffer and a POLLOUT. */
    {RC_NODE_SUBPROTOCOL, rc__ws_callback, 0, RX_CHUNK, 0, NULL,
     RC_NODE_WBUF_CAP},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_bridge(int level, const char *line)
{
    char buf[512];
    size_t l = strlen(line);

    if (l >= sizeof(buf))
        l = sizeof(buf) - 1;
    memcpy(buf, line, l);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        l--;
    buf[l] = '\0';
    /* A header over the limit we set (rc__ws_token_limits) is ours to
     * answer, or skipped on purpose (Cookie: every browser upgrade): not
     * a warning each time. */
    if (strstr(buf, "exceeds limit")) {
        rc_log(RC_LOG_DEBUG, "lws", "msg=\"%s\"", buf);
        return;
    }
    rc_log(level & LLL_ERR ? RC_LOG_ERROR : RC_LOG_WARN, "lws", "msg=\"%s\"",
           buf);
}

/* No lws validity timers: the node runs its own heartbeat (on_hb_timer).
 * lws 4.1's default policy re-inserts a per-connection timer into a sorted
 * list on every pong, O(clients) each: at 10k clients a heartbeat wave
 * stalled the loop for ~150 ms. */
static const lws_retry_bo_t no_validity = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

static rc_err_t start_lws(rc_node_t *n, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    void *foreign[1] = {n->loop};

    memset(&info, 0, sizeof(info));
    /* Explicit vhost: lws would otherwise carry on without its listener
     * when the port is taken. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.port = n->cfg->listen_port;
    info.iface = n->cfg->listen_host;
    /* Workers listen themselves (listen.c) and hand sockets to lws. */
    if (n->role.share_port) {
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
        info.iface = NULL;
    }
    info.protocols = protocols;
    info.user = n;
    info.vhost_name = "roomcast";
    info.retry_and_idle_policy = &no_validity;
    /* Authorization headers carry tokens up to RC_AUTH_MAX_TOKEN. */
    info.max_http_header_data = RC_AUTH_MAX_TOKEN + 2048;
    rc__ws_token_limits(&n->token_limits); /* long values answered, ws.c */
    info.token_limits = &n->token_limits;
    /* Header slots: a socket holds one from its first byte until its
     * request is whole, for at most timeout_secs_ah_idle (lws's default
     * is 10 s: 64 sockets sending a byte every 2 s held every slot).
     * Slots are allocated on use (each max_http_header_data): 300 sockets
     * holding 256 slots cost +0.7 MiB RSS (docs/CONFIG.md). lws on Debian
     * has no per-address slot limit (LWS_WITH_PEER_LIMITS is off). */
    info.max_http_header_pool = 256;
    info.timeout_secs_ah_idle = AH_IDLE_SECS;
    info.fd_limit_per_thread = 0;
    info.timeout_secs = 10;
    if (n->cfg->tls_cert && n->cfg->tls_key) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = n->cfg->tls_cert;
        info.ssl_private_key_filepath = n->cfg->tls_key;
        /* Mozilla intermediate by default (tls.h); ws.c sets the lowest
         * version on the context lws builds. */
        info.ssl_cipher_list = n->cfg->tls_ciphers;
        info.ssl_options_set = rc_tls_options(n->cfg->tls_min_version);
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_bridge);
    n->lws = lws_create_context(&info);
    if (n->lws && !(n->vhost = lws_create_vhost(n->lws, &info))) {
        snprintf(err, errlen, "listen: cannot serve on %s:%d (%s)",
                 n->cfg->listen_host, n->cfg->listen_port,
                 n->cfg->tls_cert ? "address in use or bad TLS files"
                                  : "address in use");
        return RC_EIO;
    }
    if (!n->lws) {
        snprintf(err, errlen,
                 "listen: cannot serve on %s:%d (address in use, bad TLS "
                 "files, or no libuv event lib)",
                 n->cfg->listen_host, n->cfg->listen_port);
        return RC_EIO;
    }
    return RC_OK;
}

rc_node_t *rc_node_create(uv_loop_t *loop, const rc_config_t *cfg, char *err,
                          size_t errlen)
{
    return rc_node_create_role(loop, cfg, NULL, err, errlen);
}

int rc_node_admin(rc_node_t *n, const char *method, const char *path,
                  rc_buf_t *body, const char **ctype)
{
    if (n->stopping || !n->adapter) {
        rc_buf_printf(body, "stopping\n");
        return 503;
    }
    return rc__admin_routes_handle(n, method, path, body, ctype);
}

void rc_node_announce(rc_node_t *n)
{
    if (n->adapter && !n->stopping)
        n->adapter->ops->announce(n->adapter);
}

rc_node_t *rc_node_create_role(uv_loop_t *loop, const rc_config_t *cfg,
                               const rc_node_role_t *role, char *err,
                               size_t errlen)
{
    rc_node_t *n = rc_xcalloc(1, sizeof(*n));
    rc_hub_limits_t limits = {cfg->outbound_queue_bytes,
                              cfg->outbound_queue_msgs};
    rc_adapter_sink_t sink = {
        .deliver = on_adapter_deliver,
        .resync = rc__catchup_resync,
        .state = on_adapter_state,
        .control = on_adapter_control,
        .node_info = on_adapter_node_info,
        .ctx = n,
    };

    n->loop = loop;
    n->cfg = cfg;
    n->listen_fd = -1;
    if (role)
        n->role = *role;
    rc_list_init(&n->conns);
    rc_list_init(&n->pending);
    n->wbuf = rc_xmalloc(RC_NODE_WBUF_CAP);
    /* Not empty: lws 4.1 does not pass zero-length pongs to the protocol
     * rc__ws_callback, and the pong is how a quiet client proves it is alive.
     */
    n->ping = rc_msg_create(RC_WS_OP_PING, "rc", 2);
    if (!n->ping)
        abort(); /* a dozen bytes at startup */
    if (getrandom(&n->session_seed, sizeof(n->session_seed), 0) !=
        (ssize_t)sizeof(n->session_seed))
        n->session_seed = (uint64_t)rc__node_wall_ms();
    if (cfg->resume_secret && cfg->resume_secret_len) {
        n->resume_key_len = cfg->resume_secret_len < sizeof(n->resume_key)
                                ? cfg->resume_secret_len
                                : sizeof(n->resume_key);
        memcpy(n->resume_key, cfg->resume_secret, n->resume_key_len);
    } else {
        /* Without a shared secret, resume tokens only verify on this
         * node; the README says to set resume_secret for migration. */
        n->resume_key_len = sizeof(n->resume_key);
        if (getrandom(n->resume_key, sizeof(n->resume_key), 0) < 0)
            memset(n->resume_key, 0x5a, sizeof(n->resume_key));
    }

    if (!cfg->dev_no_auth) {
        rc_auth_config_t ac = {
            .alg = cfg->jwt_alg,
            .secret = (const unsigned char *)cfg->jwt_secret,
            .secret_len = cfg->jwt_secret_len,
            .public_key_pem = cfg->jwt_public_key,
            .issuer = cfg->jwt_issuer,
            .audience = cfg->jwt_audience,
            .leeway_ms = cfg->jwt_leeway_ms,
        };
        n->auth = rc_auth_create(&ac, err, errlen);
        if (!n->auth)
            goto fail;
    } else {
        rc_log(RC_LOG_WARN, "dev_no_auth",
               "msg=\"DEVELOPMENT MODE: clients are not authenticated and may "
               "join and publish anywhere; never run this in production\"");
    }

    n->hub = rc_hub_create(&hub_ops, n, &limits);
    /* A head not whole within timeout_secs_ah_idle is closed by lws: an
     * entry older than that (and a second) no longer counts. */
    rc_srclimit_init(&n->srclimit, cfg->max_pending_per_source,
                     (AH_IDLE_SECS + 1) * 1000);
    {
        rc_adapter_config_t acfg = {
            .url = cfg->redis_url,
            .prefix = cfg->key_prefix,
            .node_id = n->role.adapter_id ? n->role.adapter_id : cfg->node_id,
            .history_size = cfg->history_size,
            .history_ttl_ms = cfg->history_ttl_ms,
            .max_publish = cfg->max_publish,
            .unsubscribe_delay_ms = 2000,
            .wait_replicas = cfg->redis_wait_replicas,
            .wait_timeout_ms = cfg->redis_wait_timeout_ms,
        };
        n->adapter = rc_adapter_create(loop, &sink, &acfg, err, errlen);
        if (!n->adapter)
            goto fail;
    }

    uv_timer_init(loop, &n->hb_timer);
    uv_timer_init(loop, &n->auth_timer);
    uv_timer_init(loop, &n->exp_timer);
    uv_timer_init(loop, &n->drain_timer);
    uv_timer_init(loop, &n->reap_timer);
    n->hb_timer.data = n->auth_timer.data = n->exp_timer.data = n;
    n->drain_timer.data = n->reap_timer.data = n;
    uv_check_init(loop, &n->flush_check);
    uv_idle_init(loop, &n->flush_idle);
    n->flush_check.data = n->flush_idle.data = n;
    n->handles_open = NODE_HANDLES;
    rc__timers_start(n);

    if (!n->role.no_admin) {
        const rc_admin_policy_t pol = rc_admin_policy_of(cfg);
        n->admin =
            rc_admin_create(loop, cfg->admin_host, cfg->admin_port,
                            rc__admin_routes_handle, n, &pol, err, errlen);
        if (!n->admin)
            goto fail;
    }
    if (start_lws(n, err, errlen) != RC_OK)
        goto fail;
    if (n->role.share_port && rc__listen_start(n, err, errlen) != RC_OK)
        goto fail;
    rc_log(RC_LOG_INFO, "node_started",
           "node=%s listen=%s:%d admin=%s:%d tls=%d adapter=%s",
           n->role.adapter_id ? n->role.adapter_id : cfg->node_id,
           cfg->listen_host, cfg->listen_port, cfg->admin_host, cfg->admin_port,
           cfg->tls_cert != NULL, n->adapter->ops->name);
    return n;
fail:
    rc_node_stop(n);
    uv_run(loop, UV_RUN_DEFAULT);
    rc_node_destroy(n);
    uv_run(loop, UV_RUN_DEFAULT);
    return NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    rc_node_t *n = h->data;
    n->handles_open--;
}

static void on_reap(uv_timer_t *t)
{
    rc_node_t *n = t->data;

    if (n->nconns && uv_now(n->loop) - n->stop_started < 2000)
        return;
    rc_adapter_destroy(n->adapter);
    n->adapter = NULL;
    uv_close((uv_handle_t *)t, on_handle_closed);
}

void rc_node_stop(rc_node_t *n)
{
    rc_list_t *it;

    if (n->stopping)
        return;
    n->stopping = 1;
    rc_log(RC_LOG_INFO, "node_stopping", "connections=%u", n->nconns);
    /* Tell clients we are going away; lws flushes the close frames while it
     * tears its context down. */
    rc_list_foreach(it, &n->conns)
    {
        rc_conn_t *c = rc_container_of(it, rc_conn_t, in_server);
        if (c->wsi && c->state != RC_CONN_CLOSING)
            rc__writer_close(n, c, LWS_CLOSE_STATUS_GOINGAWAY);
    }
    rc_admin_destroy(n->admin);
    n->admin = NULL;
    rc__listen_stop(n);
    if (n->lws)
        lws_context_destroy(n->lws);
    if (n->handles_open == NODE_HANDLES) {
        uv_close((uv_handle_t *)&n->flush_check, on_handle_closed);
        uv_close((uv_handle_t *)&n->flush_idle, on_handle_closed);
        uv_close((uv_handle_t *)&n->hb_timer, on_handle_closed);
        uv_close((uv_handle_t *)&n->auth_timer, on_handle_closed);
        uv_close((uv_handle_t *)&n->exp_timer, on_handle_closed);
        uv_close((uv_handle_t *)&n->drain_timer, on_handle_closed);
        /* The adapter's links keep the loop alive: let it go once lws has
         * closed the clients (their last snapshots are queued by then). */
        n->stop_started = uv_now(n->loop);
        uv_timer_start(&n->reap_timer, on_reap, 0, 10);
    }
}

void rc_node_tls_reload(rc_node_t *n)
{
    char why[320];

    if (!n->cfg->tls_cert || !n->ssl_ctx) {
        rc_log(RC_LOG_INFO, "tls_reload", "result=skipped why=\"no TLS\"");
        return;
    }
    if (rc_tls_reload(n->ssl_ctx, n->cfg->tls_cert, n->cfg->tls_key, why,
                      sizeof(why)) != RC_OK) {
        n->metrics.tls_reload_errors++;
        rc_log(RC_LOG_ERROR, "tls_reload",
               "result=error cert=%s key=%s why=\"%s\" (the old pair stays)",
               n->cfg->tls_cert, n->cfg->tls_key, why);
        return;
    }
    n->metrics.tls_reloads++;
    rc_log(RC_LOG_INFO, "tls_reload", "result=ok cert=%s detail=\"%s\"",
           n->cfg->tls_cert, why);
}

void rc_node_destroy(rc_node_t *n)
{
    if (!n)
        return;
    if (n->lws)
        lws_context_destroy(n->lws);
    n->lws = NULL;
    rc_adapter_destroy(n->adapter);
    rc_hub_destroy(n->hub);
    rc_srclimit_dispose(&n->srclimit);
    rc_auth_destroy(n->auth);
    rc_msg_unref(n->ping);
    free(n->exp_heap);
    free(n->wbuf);
    free(n->flush);
    free(n);
}

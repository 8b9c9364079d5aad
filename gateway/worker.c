/* A worker process (worker.h): the node with its worker role, and the
 * worker's end of the supervisor channel (wchan.h).
 *
 * The supervisor polls ('P'); the reply ('R') carries what the admin
 * routes would answer: "<readyz status>\n<stats JSON>\n<metrics text>".
 * 'D' drains the node, 'N' hands worker 0 the node's registry figures
 * (a JSON object summed over every worker, see supervisor.c), which it
 * writes as the one registry entry of the node. A drain that arrives on
 * the worker's control channel goes up to the supervisor (the whole node
 * drains); a lost supervisor drains this worker.
 * SPDX-License-Identifier: MIT */
#include "gateway/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "gateway/wchan.h"

struct rc_worker {
    uv_loop_t *loop;
    const rc_config_t *cfg;
    unsigned index;
    char adapter_id[160];
    rc_node_t *node;
    rc_wchan_t *ch;
    json_t *agg; /* the supervisor's last 'N' (worker 0), owned */
};

static int64_t wall_ms(void)
{
    uv_timeval64_t tv;

    if (uv_gettimeofday(&tv) != 0)
        return 0;
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The node's one registry entry, written by worker 0 only, from the
 * figures the supervisor summed over all workers. */
static size_t node_info(void *ctx, char *buf, size_t len)
{
    rc_worker_t *w = ctx;
    char addr[300];
    json_t *o;
    char *txt;
    size_t l = 0;

    if (w->index != 0 || !w->agg)
        return 0;
    snprintf(addr, sizeof(addr), "%s:%d", w->cfg->listen_host,
             w->cfg->listen_port);
    o = json_deep_copy(w->agg);
    if (!o)
        return 0;
    json_object_set_new(o, "id", json_string(w->cfg->node_id));
    json_object_set_new(o, "addr", json_string(addr));
    json_object_set_new(o, "ts", json_integer(wall_ms()));
    txt = json_dumps(o, JSON_COMPACT);
    if (txt && strlen(txt) < len) {
        l = strlen(txt);
        memcpy(buf, txt, l + 1);
    }
    free(txt);
    json_decref(o);
    return l;
}

static void on_control(void *ctx, const char *cmd)
{
    rc_worker_t *w = ctx;

    if (strcmp(cmd, "drain") != 0) {
        rc_log(RC_LOG_WARN, "unknown_control", "cmd=%s", cmd);
        return;
    }
    /* The node drains as one: the supervisor tells every worker. */
    if (rc_wchan_send(w->ch, 'D', NULL, 0) != RC_OK)
        rc_node_drain(w->node);
}

static void answer_poll(rc_worker_t *w)
{
    rc_buf_t out = {0}, body = {0};
    const char *ctype = "";
    int code;

    code = rc_node_admin(w->node, "GET", "/readyz", &body, &ctype);
    rc_buf_printf(&out, "%d\n", code);
    rc_buf_dispose(&body);
    if (rc_node_admin(w->node, "GET", "/stats", &body, &ctype) == 200 &&
        body.data)
        rc_buf_append(&out, body.data, body.len);
    else
        rc_buf_append(&out, "{}\n", 3);
    rc_buf_dispose(&body);
    if (rc_node_admin(w->node, "GET", "/metrics", &body, &ctype) == 200 &&
        body.data)
        rc_buf_append(&out, body.data, body.len);
    rc_buf_dispose(&body);
    if (rc_wchan_send(w->ch, 'R', out.data, out.len) != RC_OK)
        rc_log(RC_LOG_WARN, "wchan_send_failed", "worker=%u", w->index);
    rc_buf_dispose(&out);
}

static void on_msg(void *ctx, char type, const char *data, size_t len)
{
    rc_worker_t *w = ctx;
    json_t *agg, *old_state;
    const char *was;

    switch (type) {
    case 'P':
        answer_poll(w);
        break;
    case 'D':
        rc_node_drain(w->node);
        break;
    case 'N':
        agg = json_loadb(data, len, 0, NULL);
        if (!json_is_object(agg)) {
            json_decref(agg);
            break;
        }
        old_state = w->agg ? json_object_get(w->agg, "state") : NULL;
        was = old_state ? json_string_value(old_state) : NULL;
        {
            const char *now = json_string_value(json_object_get(agg, "state"));
            bool changed = !was || !now || strcmp(was, now) != 0;

            json_decref(w->agg);
            w->agg = agg;
            if (changed)
                rc_node_announce(w->node);
        }
        break;
    default:
        rc_log(RC_LOG_WARN, "wchan_unknown", "type=%d", type);
    }
}

static void on_eof(void *ctx)
{
    rc_worker_t *w = ctx;

    rc_log(RC_LOG_WARN, "supervisor_gone",
           "worker=%u msg=\"channel closed; draining\"", w->index);
    rc_node_drain(w->node);
}

rc_worker_t *rc_worker_create(uv_loop_t *loop, const rc_config_t *cfg,
                              unsigned index, char *err, size_t errlen)
{
    rc_worker_t *w = rc_xcalloc(1, sizeof(*w));
    rc_node_role_t role = {
        .share_port = true,
        .no_admin = true,
        .control = on_control,
        .node_info = node_info,
        .ctx = w,
    };

    w->loop = loop;
    w->cfg = cfg;
    w->index = index;
    /* Worker 0 carries the node's own id, so `roomcast drain <node_id>`
     * reaches it; the others get their own control and probe channels. */
    if (index == 0)
        snprintf(w->adapter_id, sizeof(w->adapter_id), "%s", cfg->node_id);
    else
        snprintf(w->adapter_id, sizeof(w->adapter_id), "%s/w%u", cfg->node_id,
                 index);
    role.adapter_id = w->adapter_id;
    w->ch = rc_wchan_create(loop);
    if (rc_wchan_open(w->ch, RC_WORKER_FD) != RC_OK) {
        snprintf(err, errlen,
                 "worker %u: no supervisor channel on fd %d (%s is set only "
                 "by roomcastd for its workers)",
                 index, RC_WORKER_FD, RC_WORKER_ENV);
        goto fail;
    }
    w->node = rc_node_create_role(loop, cfg, &role, err, errlen);
    if (!w->node)
        goto fail;
    if (rc_wchan_start(w->ch, on_msg, on_eof, w) != RC_OK) {
        snprintf(err, errlen, "worker %u: cannot read the supervisor channel",
                 index);
        rc_node_stop(w->node);
        uv_run(loop, UV_RUN_DEFAULT);
        goto fail;
    }
    return w;
fail:
    rc_worker_destroy(w);
    uv_run(loop, UV_RUN_DEFAULT);
    return NULL;
}

rc_node_t *rc_worker_node(rc_worker_t *w)
{
    return w->node;
}

void rc_worker_destroy(rc_worker_t *w)
{
    if (!w)
        return;
    rc_wchan_destroy(w->ch);
    rc_node_destroy(w->node);
    json_decref(w->agg);
    free(w);
}

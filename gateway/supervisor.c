/* The supervisor (supervisor.h): the parent of a node's workers.
 *
 * Workers are this binary again (/proc/self/exe, the same argv), spawned
 * with uv_spawn: the environment adds RC_WORKER_INDEX=<i> and
 * ROOMCAST_NODE_ID=<the node's id> (so a default id, made of the host name
 * and the pid, is the parent's and not each worker's), and file descriptor
 * 3 is the worker's end of a socketpair (wchan.h). Every POLL_MS the
 * supervisor polls each worker ('P'); the replies are what its admin
 * routes would answer, kept until the next one, and the admin listener
 * answers from them: /metrics sums them (agg.h), /stats sums and lists,
 * /readyz is 200 only while every worker answered ready within STALE_MS.
 * Worker 0 writes the node's one registry entry, from figures the
 * supervisor sends it after each poll ('N').
 *
 * A worker that exits while the node is not draining is started again
 * after a backoff (BACKOFF_MIN_MS, doubling per quick death up to
 * BACKOFF_MAX_MS; a worker that lived STABLE_MS starts from the minimum);
 * its last polled counters are kept (retired) so the node's counters never
 * go back. A worker that fails before any worker was ever ready ends the
 * node with exit code 1 (a config or port problem, not a crash). A drain
 * (signal, POST /drain, or a worker that got `drain` on its control
 * channel) goes to every worker; the supervisor exits once every worker
 * has, and kills what is left drain_timeout_ms + DRAIN_GRACE_MS after the
 * drain began.
 * SPDX-License-Identifier: MIT */
#include "gateway/supervisor.h"

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "gateway/admin.h"
#include "gateway/agg.h"
#include "gateway/wchan.h"
#include "gateway/worker.h"

#define POLL_MS 250
#define STALE_MS 2000 /* a worker silent this long is not ready */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 10000 /* lived this long: the backoff starts over */
#define DRAIN_GRACE_MS                                                         \
    3000 /* after drain_timeout_ms: the workers' teardown                      \
          */

extern char **environ;

typedef struct slot {
    rc_supervisor_t *sv;
    unsigned index;
    uv_process_t proc;
    bool alive;     /* the process runs */
    bool proc_open; /* proc is a handle to close */
    rc_wchan_t *ch;
    bool polling; /* a 'P' waits for its 'R' */
    bool ready, ever_ready;
    int pid;
    uint64_t started, replied; /* loop ms */
    unsigned fails;            /* quick deaths in a row */
    uint64_t restarts;
    uv_timer_t restart;
    char *metrics; /* the last polled /metrics text, owned, NUL-ended */
    size_t metrics_len;
    json_t *stats; /* the last polled /stats, owned */
    char env_index[32];
} slot_t;

struct rc_supervisor {
    uv_loop_t *loop;
    const rc_config_t *cfg;
    char **argv;    /* borrowed */
    char **env;     /* owned array; its strings borrowed but env_node */
    size_t nenv;    /* entries before the RC_WORKER_INDEX slot */
    char *env_node; /* "ROOMCAST_NODE_ID=..." owned */
    rc_admin_t *admin;
    slot_t *slots;
    unsigned n;
    uv_timer_t poll, deadline;
    rc_agg_t *retired; /* counters of workers gone */
    uint64_t restarts_total;
    bool draining, finished, any_ready;
    int exit_code;
};

static void spawn(slot_t *s);
static int admin_handle(void *ctx, const char *method, const char *path,
                        rc_buf_t *body, const char **ctype);

static const char *sv_state(const rc_supervisor_t *sv)
{
    return sv->draining ? "draining" : "serving";
}

static bool slot_ready(const rc_supervisor_t *sv, const slot_t *s)
{
    return s->alive && s->ready && s->ch &&
           uv_now(sv->loop) - s->replied < STALE_MS;
}

static unsigned alive_count(const rc_supervisor_t *sv)
{
    unsigned k = 0;

    for (unsigned i = 0; i < sv->n; i++)
        k += sv->slots[i].alive;
    return k;
}

static int64_t stat_int(const slot_t *s, const char *key)
{
    json_t *v = s->stats ? json_object_get(s->stats, key) : NULL;
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* -------------------------------------------------------- the end */

static void finish(rc_supervisor_t *sv)
{
    if (sv->finished)
        return;
    sv->finished = true;
    rc_log(RC_LOG_INFO, "supervisor_done", "code=%d restarts=%" PRIu64,
           sv->exit_code, sv->restarts_total);
    rc_admin_destroy(sv->admin);
    sv->admin = NULL;
    uv_close((uv_handle_t *)&sv->poll, NULL);
    uv_close((uv_handle_t *)&sv->deadline, NULL);
    for (unsigned i = 0; i < sv->n; i++)
        uv_close((uv_handle_t *)&sv->slots[i].restart, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    rc_supervisor_t *sv = t->data;

    rc_log(RC_LOG_WARN, "drain_deadline", "workers_left=%u", alive_count(sv));
    rc_supervisor_kill(sv);
}

/* ----------------------------------------------------------- workers */

static void send_node_info(rc_supervisor_t *sv)
{
    slot_t *s0 = &sv->slots[0];
    int64_t conns = 0, rooms = 0;
    json_t *o;
    char *txt;

    if (!s0->alive || !s0->ch)
        return;
    for (unsigned i = 0; i < sv->n; i++) {
        if (!sv->slots[i].alive)
            continue;
        conns += stat_int(&sv->slots[i], "connections");
        rooms += stat_int(&sv->slots[i], "rooms");
    }
    o = json_pack("{s:s, s:I, s:I, s:i, s:i}", "state", sv_state(sv),
                  "connections", (json_int_t)conns, "rooms", (json_int_t)rooms,
                  "workers", (int)sv->n, "workers_up", (int)alive_count(sv));
    txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (txt)
        if (rc_wchan_send(s0->ch, 'N', txt, strlen(txt)) != RC_OK)
            rc_log(RC_LOG_WARN, "wchan_send_failed", "worker=0");
    free(txt);
    json_decref(o);
}

static void on_poll(uv_timer_t *t)
{
    rc_supervisor_t *sv = t->data;

    for (unsigned i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];

        if (!s->alive || !s->ch)
            continue;
        /* A reply still missing after STALE_MS: ask again (it shows as
         * not ready meanwhile). */
        if (s->polling && uv_now(sv->loop) - s->replied < STALE_MS)
            continue;
        s->polling = rc_wchan_send(s->ch, 'P', NULL, 0) == RC_OK;
    }
    send_node_info(sv);
}

/* 'R': "<readyz status>\n<stats JSON>\n<metrics text>" */
static void on_reply(slot_t *s, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len), *nl2;
    json_t *st;

    s->polling = false;
    s->replied = uv_now(s->sv->loop);
    if (!nl)
        return;
    s->ready = strtol(data, NULL, 10) == 200;
    if (s->ready && !s->ever_ready) {
        s->ever_ready = true;
        s->sv->any_ready = true;
        rc_log(RC_LOG_INFO, "worker_ready", "worker=%u pid=%d", s->index,
               s->pid);
    }
    nl2 = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - data));
    if (!nl2)
        return;
    st = json_loadb(nl + 1, (size_t)(nl2 - nl - 1), 0, NULL);
    if (json_is_object(st) && json_object_size(st) > 0) {
        json_decref(s->stats);
        s->stats = st;
    } else {
        json_decref(st);
    }
    if ((size_t)(nl2 + 1 - data) < len) {
        free(s->metrics);
        s->metrics_len = len - (size_t)(nl2 + 1 - data);
        s->metrics = rc_xmalloc(s->metrics_len + 1);
        memcpy(s->metrics, nl2 + 1, s->metrics_len);
        s->metrics[s->metrics_len] = '\0';
    }
}

static void on_worker_msg(void *ctx, char type, const char *data, size_t len)
{
    slot_t *s = ctx;

    switch (type) {
    case 'R':
        on_reply(s, data, len);
        break;
    case 'D':
        rc_log(RC_LOG_INFO, "drain_requested", "worker=%u via=control_channel",
               s->index);
        rc_supervisor_drain(s->sv);
        break;
    default:
        rc_log(RC_LOG_WARN, "wchan_unknown", "worker=%u type=%d", s->index,
               type);
    }
}

static void on_worker_eof(void *ctx)
{
    slot_t *s = ctx;
    /* The exit callback follows; until then it is not ready. */
    s->ready = false;
}

static void on_restart(uv_timer_t *t)
{
    slot_t *s = t->data;

    if (s->sv->draining || s->sv->finished)
        return;
    if (s->proc_open) { /* the old handle is still closing */
        uv_timer_start(&s->restart, on_restart, 10, 0);
        return;
    }
    s->restarts++;
    s->sv->restarts_total++;
    spawn(s);
}

static void on_proc_closed(uv_handle_t *h)
{
    slot_t *s = h->data;
    s->proc_open = false;
}

static void on_worker_exit(uv_process_t *p, int64_t status, int sig)
{
    slot_t *s = p->data;
    rc_supervisor_t *sv = s->sv;
    uint64_t lived = uv_now(sv->loop) - s->started;
    uint64_t delay;

    rc_log(status == 0 && sig == 0 ? RC_LOG_INFO : RC_LOG_WARN, "worker_exit",
           "worker=%u pid=%d status=%" PRId64 " signal=%d lived_ms=%" PRIu64,
           s->index, s->pid, status, sig, lived);
    s->alive = s->ready = s->polling = false;
    if (s->metrics) {
        rc_agg_add(sv->retired, s->metrics, s->metrics_len, true);
        free(s->metrics);
        s->metrics = NULL;
    }
    json_decref(s->stats);
    s->stats = NULL;
    rc_wchan_destroy(s->ch);
    s->ch = NULL;
    uv_close((uv_handle_t *)&s->proc, on_proc_closed);
    if (sv->draining) {
        if (alive_count(sv) == 0)
            finish(sv);
        return;
    }
    if (!s->ever_ready && !sv->any_ready && (status != 0 || sig != 0)) {
        rc_log(RC_LOG_ERROR, "worker_failed_to_start",
               "worker=%u status=%" PRId64 " signal=%d msg=\"no worker ever "
               "became ready; stopping the node\"",
               s->index, status, sig);
        sv->exit_code = 1;
        rc_supervisor_drain(sv);
        return;
    }
    if (lived >= STABLE_MS)
        s->fails = 0;
    delay = (uint64_t)BACKOFF_MIN_MS << (s->fails < 7 ? s->fails : 7);
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    s->fails++;
    rc_log(RC_LOG_INFO, "worker_restart", "worker=%u in_ms=%" PRIu64, s->index,
           delay);
    uv_timer_start(&s->restart, on_restart, delay, 0);
}

static void spawn(slot_t *s)
{
    rc_supervisor_t *sv = s->sv;
    uv_process_options_t o;
    uv_stdio_container_t io[4];
    int rc;

    memset(&o, 0, sizeof(o));
    memset(io, 0, sizeof(io));
    s->ch = rc_wchan_create(sv->loop);
    io[0].flags = UV_IGNORE;
    io[1].flags = UV_INHERIT_FD;
    io[1].data.fd = 1;
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = 2;
    io[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    io[3].data.stream = rc_wchan_stream(s->ch);
    snprintf(s->env_index, sizeof(s->env_index), RC_WORKER_ENV "=%u", s->index);
    sv->env[sv->nenv] = s->env_index;
    sv->env[sv->nenv + 1] = NULL;
    o.file = "/proc/self/exe";
    o.args = sv->argv;
    o.env = sv->env;
    o.stdio = io;
    o.stdio_count = 4;
    o.exit_cb = on_worker_exit;
    s->proc.data = s;
    s->started = uv_now(sv->loop);
    rc = uv_spawn(sv->loop, &s->proc, &o);
    s->proc_open = true;
    if (rc != 0) {
        rc_log(RC_LOG_ERROR, "worker_spawn_failed", "worker=%u err=%s",
               s->index, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->proc, on_proc_closed);
        rc_wchan_destroy(s->ch);
        s->ch = NULL;
        s->fails++;
        uv_timer_start(&s->restart, on_restart, BACKOFF_MAX_MS, 0);
        return;
    }
    s->alive = true;
    s->pid = s->proc.pid;
    s->replied = s->started;
    s->ready = s->polling = false;
    if (rc_wchan_start(s->ch, on_worker_msg, on_worker_eof, s) != RC_OK)
        rc_log(RC_LOG_ERROR, "wchan_start_failed", "worker=%u", s->index);
    rc_log(RC_LOG_INFO, "worker_started", "worker=%u pid=%d", s->index, s->pid);
}

/* ---------------------------------------------------------- lifecycle */

rc_supervisor_t *rc_supervisor_create(uv_loop_t *loop, const rc_config_t *cfg,
                                      char **argv, char *err, size_t errlen)
{
    rc_supervisor_t *sv = rc_xcalloc(1, sizeof(*sv));
    size_t ne = 0, k = 0;

    sv->loop = loop;
    sv->cfg = cfg;
    sv->argv = argv;
    sv->n = cfg->workers;
    sv->retired = rc_agg_create();
    for (char **e = environ; *e; e++)
        ne++;
    sv->env = rc_xcalloc(ne + 3, sizeof(char *));
    for (char **e = environ; *e; e++)
        if (strncmp(*e, RC_WORKER_ENV "=", sizeof(RC_WORKER_ENV)) != 0 &&
            strncmp(*e, "ROOMCAST_NODE_ID=", 17) != 0)
            sv->env[k++] = *e;
    sv->env_node = rc_xmalloc(strlen(cfg->node_id) + 18);
    sprintf(sv->env_node, "ROOMCAST_NODE_ID=%s", cfg->node_id);
    sv->env[k++] = sv->env_node;
    sv->nenv = k;

    {
        const rc_admin_policy_t pol = rc_admin_policy_of(cfg);
        sv->admin = rc_admin_create(loop, cfg->admin_host, cfg->admin_port,
                                    admin_handle, sv, &pol, err, errlen);
    }
    if (!sv->admin) {
        rc_agg_destroy(sv->retired);
        free(sv->env);
        free(sv->env_node);
        free(sv);
        return NULL;
    }
    uv_timer_init(loop, &sv->poll);
    uv_timer_init(loop, &sv->deadline);
    sv->poll.data = sv->deadline.data = sv;
    sv->slots = rc_xcalloc(sv->n, sizeof(slot_t));
    for (unsigned i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];

        s->sv = sv;
        s->index = i;
        uv_timer_init(loop, &s->restart);
        s->restart.data = s;
    }
    rc_log(RC_LOG_INFO, "supervisor_started",
           "node=%s workers=%u listen=%s:%d admin=%s:%d", cfg->node_id, sv->n,
           cfg->listen_host, cfg->listen_port, cfg->admin_host,
           cfg->admin_port);
    for (unsigned i = 0; i < sv->n; i++)
        spawn(&sv->slots[i]);
    uv_timer_start(&sv->poll, on_poll, 0, POLL_MS);
    return sv;
}

void rc_supervisor_drain(rc_supervisor_t *sv)
{
    if (sv->draining || sv->finished)
        return;
    sv->draining = true;
    rc_log(RC_LOG_INFO, "drain_start",
           "workers=%u window_ms=%" PRId64 " timeout_ms=%" PRId64,
           alive_count(sv), sv->cfg->drain_window_ms,
           sv->cfg->drain_timeout_ms);
    send_node_info(sv); /* the registry says draining first */
    for (unsigned i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];

        uv_timer_stop(&s->restart);
        if (s->alive && s->ch && rc_wchan_send(s->ch, 'D', NULL, 0) != RC_OK)
            uv_process_kill(&s->proc, SIGTERM);
    }
    if (alive_count(sv) == 0) {
        finish(sv);
        return;
    }
    uv_timer_start(&sv->deadline, on_deadline,
                   (uint64_t)sv->cfg->drain_timeout_ms + DRAIN_GRACE_MS, 0);
}

void rc_supervisor_forward(rc_supervisor_t *sv, int signum)
{
    for (unsigned i = 0; i < sv->n; i++)
        if (sv->slots[i].alive)
            uv_process_kill(&sv->slots[i].proc, signum);
}

void rc_supervisor_kill(rc_supervisor_t *sv)
{
    for (unsigned i = 0; i < sv->n; i++)
        if (sv->slots[i].alive)
            uv_process_kill(&sv->slots[i].proc, SIGKILL);
}

int rc_supervisor_exit_code(const rc_supervisor_t *sv)
{
    return sv->exit_code;
}

void rc_supervisor_destroy(rc_supervisor_t *sv)
{
    if (!sv)
        return;
    for (unsigned i = 0; i < sv->n; i++) {
        free(sv->slots[i].metrics);
        json_decref(sv->slots[i].stats);
        rc_wchan_destroy(sv->slots[i].ch);
    }
    rc_admin_destroy(sv->admin);
    rc_agg_destroy(sv->retired);
    free(sv->slots);
    free(sv->env);
    free(sv->env_node);
    free(sv);
}

/* ------------------------------------------------------- admin routes */

static bool node_ready(const rc_supervisor_t *sv)
{
    if (sv->draining)
        return false;
    for (unsigned i = 0; i < sv->n; i++)
        if (!slot_ready(sv, &sv->slots[i]))
            return false;
    return true;
}

static void render_metrics(rc_supervisor_t *sv, rc_buf_t *body)
{
    rc_agg_t *a = rc_agg_create();
    rc_buf_t retired = {0};
    unsigned up = alive_count(sv), redis_up = 0;
    bool have_redis = false;

    for (unsigned i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];

        if (s->alive && s->metrics)
            rc_agg_add(a, s->metrics, s->metrics_len, false);
    }
    rc_agg_render(sv->retired, &retired);
    if (retired.data)
        rc_agg_add(a, retired.data, retired.len, true);
    rc_buf_dispose(&retired);
    /* Gauges that say yes or no for the node: yes only when every worker
     * says yes. */
    for (unsigned i = 0; i < sv->n; i++) {
        const slot_t *s = &sv->slots[i];
        const char *p;

        if (!s->alive || !s->metrics)
            continue;
        p = strstr(s->metrics, "\nroomcast_redis_up ");
        if (p) {
            have_redis = true;
            redis_up += p[19] == '1';
        }
    }
    if (have_redis)
        rc_agg_set(a, "roomcast_redis_up", redis_up == sv->n);
    rc_agg_set(a, "roomcast_ready", node_ready(sv));
    rc_agg_set(a, "roomcast_draining", sv->draining);
    rc_agg_render(a, body);
    rc_agg_destroy(a);
    rc_buf_printf(body,
                  "# HELP roomcast_workers Worker processes configured.\n"
                  "# TYPE roomcast_workers gauge\nroomcast_workers %u\n"
                  "# HELP roomcast_workers_up Worker processes running.\n"
                  "# TYPE roomcast_workers_up gauge\nroomcast_workers_up %u\n"
                  "# HELP roomcast_worker_restarts_total Workers started "
                  "again after they exited.\n"
                  "# TYPE roomcast_worker_restarts_total counter\n"
                  "roomcast_worker_restarts_total %" PRIu64 "\n",
                  sv->n, up, sv->restarts_total);
}

static void render_stats(rc_supervisor_t *sv, rc_buf_t *body)
{
    json_t *top = json_object(), *list = json_array();
    char *txt;

    for (unsigned i = 0; i < sv->n; i++) {
        slot_t *s = &sv->slots[i];
        json_t *w =
            s->stats && s->alive ? json_deep_copy(s->stats) : json_object();
        const char *key;
        json_t *v;

        if (s->alive && s->stats) {
            json_object_foreach(s->stats, key, v)
            {
                json_t *cur = json_object_get(top, key);

                if (json_is_integer(v))
                    json_object_set_new(
                        top, key,
                        json_integer(json_integer_value(v) +
                                     (json_is_integer(cur)
                                          ? json_integer_value(cur)
                                          : 0)));
                else if (!cur)
                    json_object_set(top, key, v);
            }
        }
        json_object_set_new(w, "index", json_integer(i));
        json_object_set_new(w, "pid", json_integer(s->alive ? s->pid : 0));
        json_object_set_new(w, "alive", json_boolean(s->alive));
        json_object_set_new(w, "ready", json_boolean(slot_ready(sv, s)));
        json_object_set_new(w, "restarts",
                            json_integer((json_int_t)s->restarts));
        json_array_append_new(list, w);
    }
    json_object_set_new(top, "node", json_string(sv->cfg->node_id));
    json_object_set_new(top, "state", json_string(sv_state(sv)));
    json_object_set_new(top, "ready", json_boolean(node_ready(sv)));
    json_object_set_new(top, "worker_restarts",
                        json_integer((json_int_t)sv->restarts_total));
    json_object_set_new(top, "workers", list);
    txt = json_dumps(top, JSON_COMPACT);
    if (txt) {
        rc_buf_append(body, txt, strlen(txt));
        rc_buf_append(body, "\n", 1);
    }
    free(txt);
    json_decref(top);
}

static int admin_handle(void *ctx, const char *method, const char *path,
                        rc_buf_t *body, const char **ctype)
{
    rc_supervisor_t *sv = ctx;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    if (strcmp(path, "/healthz") == 0 && get) {
        rc_buf_printf(body, "ok\n");
        return 200;
    }
    if (strcmp(path, "/readyz") == 0 && get) {
        if (sv->draining) {
            rc_buf_printf(body, "draining\n");
            return 503;
        }
        for (unsigned i = 0; i < sv->n; i++)
            if (!slot_ready(sv, &sv->slots[i])) {
                rc_buf_printf(body, "worker %u not ready\n", i);
                return 503;
            }
        rc_buf_printf(body, "ready\n");
        return 200;
    }
    if (strcmp(path, "/metrics") == 0 && get) {
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(sv, body);
        return 200;
    }
    if (strcmp(path, "/stats") == 0 && get) {
        *ctype = "application/json";
        render_stats(sv, body);
        return 200;
    }
    if (strcmp(path, "/drain") == 0) {
        if (strcmp(method, "POST") != 0) {
            rc_buf_printf(body, "use POST\n");
            return 405;
        }
        rc_supervisor_drain(sv);
        rc_buf_printf(body, "draining\n");
        return 202;
    }
    rc_buf_printf(body, "not found\n");
    return 404;
}

/* roomcastd: load the config, run one node on one libuv loop, stop cleanly
 * on SIGINT/SIGTERM by draining (a second one exits at once), reload the
 * TLS certificate on SIGHUP. With
 * `workers` > 1 this process is the supervisor (supervisor.c) and runs
 * the node in worker processes: this binary again, with RC_WORKER_INDEX
 * set (worker.c). docs/WORKERS.md.
 * SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "gateway/config.h"
#include "gateway/node.h"
#include "gateway/supervisor.h"
#include "gateway/worker.h"

typedef struct app {
    rc_node_t *node;     /* the node, or the worker's node */
    rc_worker_t *worker; /* set in a worker process */
    rc_supervisor_t *sv; /* set in a supervisor */
    uv_signal_t sigint, sigterm, sighup;
    int signals;
} app_t;

/* SIGHUP: the certificate and key again (rc_node_tls_reload); a
 * supervisor passes it on to every worker, each with its own listener. */
static void on_sighup(uv_signal_t *s, int signum)
{
    app_t *app = s->data;

    rc_log(RC_LOG_INFO, "signal", "signal=%d", signum);
    if (app->sv)
        rc_supervisor_forward(app->sv, signum);
    else if (app->node)
        rc_node_tls_reload(app->node);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;

    if (++app->signals > 1) {
        rc_log(RC_LOG_WARN, "exit_now", "signal=%d", signum);
        if (app->sv)
            rc_supervisor_kill(app->sv);
        _exit(0);
    }
    rc_log(RC_LOG_INFO, "signal", "signal=%d", signum);
    if (app->sv)
        rc_supervisor_drain(app->sv);
    else
        rc_node_drain(app->node);
}

/* RC_WORKER_INDEX: -1 when unset (not a worker), else the index. */
static int worker_index(const rc_config_t *cfg)
{
    const char *s = getenv(RC_WORKER_ENV);
    char *end;
    long i;

    if (!s)
        return -1;
    i = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || i < 0 || i >= (long)cfg->workers)
        return -2;
    return (int)i;
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    rc_config_t *cfg = NULL;
    char err[512] = "";
    app_t app = {0};
    int lvl, widx, code = 0;

    signal(SIGPIPE, SIG_IGN);
    switch (rc_config_load(argc, argv, NULL, &cfg, err, sizeof(err))) {
    case RC_OK:
        break;
    case RC_ECLOSED: /* --help, --version */
        return 0;
    default:
        fprintf(stderr, "roomcastd: %s\n", err);
        return 2;
    }
    lvl = rc_log_level_parse(cfg->log_level);
    rc_log_set_level(lvl < 0 ? RC_LOG_INFO : (rc_log_level_t)lvl);

    widx = worker_index(cfg);
    uv_loop_init(&loop);
    if (widx == -2) {
        snprintf(err, sizeof(err), "%s must be 0..workers-1", RC_WORKER_ENV);
    } else if (widx >= 0) {
        app.worker =
            rc_worker_create(&loop, cfg, (unsigned)widx, err, sizeof(err));
        app.node = app.worker ? rc_worker_node(app.worker) : NULL;
    } else if (cfg->workers > 1) {
        app.sv = rc_supervisor_create(&loop, cfg, argv, err, sizeof(err));
    } else {
        app.node = rc_node_create(&loop, cfg, err, sizeof(err));
    }
    if (!app.node && !app.sv) {
        fprintf(stderr, "roomcastd: %s\n", err);
        uv_loop_close(&loop);
        rc_config_destroy(cfg);
        return 1;
    }
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sighup);
    app.sigint.data = app.sigterm.data = app.sighup.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sighup, on_sighup, SIGHUP);
    /* Signals never keep the loop alive: it ends when the node has closed
     * everything, whichever way the drain began (signal, POST /drain, or
     * the Redis control channel). */
    uv_unref((uv_handle_t *)&app.sigint);
    uv_unref((uv_handle_t *)&app.sigterm);
    uv_unref((uv_handle_t *)&app.sighup);

    uv_run(&loop, UV_RUN_DEFAULT);

    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_close((uv_handle_t *)&app.sighup, NULL);
    if (app.sv)
        code = rc_supervisor_exit_code(app.sv);
    rc_supervisor_destroy(app.sv);
    if (app.worker)
        rc_worker_destroy(app.worker);
    else
        rc_node_destroy(app.node);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        rc_log(RC_LOG_WARN, "loop_not_empty", "msg=\"handles left open\"");
    rc_config_destroy(cfg);
    rc_log(RC_LOG_INFO, "exit", "code=%d", code);
    return code;
}

/* roomcastd: load the config, run one node on one libuv loop, stop cleanly
 * on SIGINT/SIGTERM by draining (a second one exits at once).
 * SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "gateway/config.h"
#include "gateway/node.h"

typedef struct app {
    rc_node_t *node;
    uv_signal_t sigint, sigterm;
    int signals;
} app_t;

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;

    if (++app->signals > 1) {
        rc_log(RC_LOG_WARN, "exit_now", "signal=%d", signum);
        _exit(0);
    }
    rc_log(RC_LOG_INFO, "signal", "signal=%d", signum);
    rc_node_drain(app->node);
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    rc_config_t *cfg = NULL;
    char err[512] = "";
    app_t app = {0};
    int lvl;

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

    uv_loop_init(&loop);
    app.node = rc_node_create(&loop, cfg, err, sizeof(err));
    if (!app.node) {
        fprintf(stderr, "roomcastd: %s\n", err);
        uv_loop_close(&loop);
        rc_config_destroy(cfg);
        return 1;
    }
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    /* Signals never keep the loop alive: it ends when the node has closed
     * everything, whichever way the drain began (signal, POST /drain, or
     * the Redis control channel). */
    uv_unref((uv_handle_t *)&app.sigint);
    uv_unref((uv_handle_t *)&app.sigterm);

    uv_run(&loop, UV_RUN_DEFAULT);

    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    rc_node_destroy(app.node);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        rc_log(RC_LOG_WARN, "loop_not_empty", "msg=\"handles left open\"");
    rc_config_destroy(cfg);
    rc_log(RC_LOG_INFO, "exit", "code=0");
    return 0;
}

/* The parent process of a node run with `workers` > 1 (docs/WORKERS.md):
 * starts the workers (this binary again, with RC_WORKER_INDEX set),
 * restarts one that dies (with backoff), serves the node's admin listener
 * from what it polls of every worker, and drains them all together.
 * Everything runs on the loop main.c owns; nothing here blocks it.
 * SPDX-License-Identifier: MIT */
#ifndef RC_SUPERVISOR_H
#define RC_SUPERVISOR_H

#include <stddef.h>
#include <uv.h>

#include "gateway/config.h"

typedef struct rc_supervisor rc_supervisor_t;

/* Listens on admin_listen and starts cfg->workers workers, each run as
 * argv (borrowed, must outlive the supervisor; argv[0] is kept, the
 * program is /proc/self/exe). Returns NULL with a reason in err. */
rc_supervisor_t *rc_supervisor_create(uv_loop_t *loop, const rc_config_t *cfg,
                                      char **argv, char *err, size_t errlen);
/* Drain every worker (PROTOCOL.md section 4); the loop ends once every
 * worker exited, or drain_timeout_ms (plus a grace for their teardown)
 * after which the rest are killed. Safe to call twice. */
void rc_supervisor_drain(rc_supervisor_t *sv);
/* Kill every worker (SIGKILL) now: a second signal. */
void rc_supervisor_kill(rc_supervisor_t *sv);
/* Sends signum to every live worker (SIGHUP: each reloads its TLS pair). */
void rc_supervisor_forward(rc_supervisor_t *sv, int signum);
/* The process exit code: 0, or 1 when a worker could not start at all. */
int rc_supervisor_exit_code(const rc_supervisor_t *sv);
/* After uv_run() returned; run the loop once more afterwards. NULL is a
 * no-op. */
void rc_supervisor_destroy(rc_supervisor_t *sv);

#endif /* RC_SUPERVISOR_H */

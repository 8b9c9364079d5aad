/* One worker process of a node run with `workers` > 1 (docs/WORKERS.md):
 * a whole node (rc_node_t) on its own loop, listening on the shared client
 * port, without the admin listener, and answering its supervisor over the
 * private channel inherited as file descriptor RC_WORKER_FD.
 * SPDX-License-Identifier: MIT */
#ifndef RC_WORKER_H
#define RC_WORKER_H

#include <stddef.h>
#include <uv.h>

#include "gateway/config.h"
#include "gateway/node.h"

/* The environment variable that makes roomcastd a worker: its index. */
#define RC_WORKER_ENV "RC_WORKER_INDEX"
/* The descriptor the supervisor hands its end of the channel to. */
#define RC_WORKER_FD 3

typedef struct rc_worker rc_worker_t;

/* Builds worker index (0-based) with its node. cfg is borrowed and must
 * outlive the worker. Returns NULL with a one-line reason in err. */
rc_worker_t *rc_worker_create(uv_loop_t *loop, const rc_config_t *cfg,
                              unsigned index, char *err, size_t errlen);
/* Borrowed; valid until rc_worker_destroy. */
rc_node_t *rc_worker_node(rc_worker_t *w);
/* After uv_run() returned: release the node and the channel. Run the loop
 * once more afterwards. NULL is a no-op. */
void rc_worker_destroy(rc_worker_t *w);

#endif /* RC_WORKER_H */

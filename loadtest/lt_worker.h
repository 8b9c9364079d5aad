/* loadtest/lt_worker.h: one client worker process of roomcast-load. It
 * owns clients [first, first + count), talks WebSocket to the gateway on
 * its own epoll loop, and reports to the parent through rep_fd
 * (lt.h records); the parent drives its phases through cmd_fd.
 * SPDX-License-Identifier: MIT */
#ifndef LT_WORKER_H
#define LT_WORKER_H

#include <stdint.h>

#include "loadtest/lt.h"

/* Runs in the forked child until the parent says LT_CMD_CLOSE (fanout-like
 * modes) or the churn duration is over, or deadline_ns passes. cfg is
 * borrowed (the child's copy of the parent's). Returns the exit status:
 * 0 done, 2 setup failed, 3 deadline. */
int lt_worker_run(const lt_cfg_t *cfg, uint32_t wid, uint32_t first,
                  uint32_t count, int cmd_fd, int rep_fd, uint64_t deadline_ns);

#endif /* LT_WORKER_H */

/* loadtest/lt_run.h: the two kinds of run roomcast-load does. Each prints
 * one JSON object on stdout and returns the process exit status:
 * 0 the run completed (the report says how well), 1 it could not start,
 * 3 the global deadline (--timeout) cut it short (a report is still
 * printed, with "timed_out": true).
 * SPDX-License-Identifier: MIT */
#ifndef LT_RUN_H
#define LT_RUN_H

#include <signal.h>

#include "loadtest/lt.h"

/* fanout, idle, broadcast, churn, soak: against a running gateway. stop is
 * borrowed: main's flag, set by SIGINT/SIGTERM, ends the run early. */
int lt_run(const lt_cfg_t *cfg, const volatile sig_atomic_t *stop);

/* calibrate: the same traffic shape over plain loopback TCP, no gateway. */
int lt_calib_run(const lt_cfg_t *cfg, const volatile sig_atomic_t *stop);

#endif /* LT_RUN_H */

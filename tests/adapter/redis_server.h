/* Test support: a real redis-server on a free loopback port in a temp dir,
 * started and stopped by the test (never a mock). Blocking; tests only.
 * SPDX-License-Identifier: MIT */
#ifndef RC_TEST_REDIS_SERVER_H
#define RC_TEST_REDIS_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct rc_test_redis {
    pid_t pid;
    int port;
    char dir[64];
    char url[96]; /* redis://127.0.0.1:PORT */
} rc_test_redis_t;

/* Starts redis-server and waits (up to 10 s) until it answers PING.
 * Returns false when it could not. */
bool rc_test_redis_start(rc_test_redis_t *r);
/* SIGKILL, reap, remove the temp dir. Safe on a stopped server. */
void rc_test_redis_stop(rc_test_redis_t *r);
/* Send a signal (SIGSTOP/SIGCONT) to the server. */
void rc_test_redis_signal(rc_test_redis_t *r, int sig);
/* Run one command (blocking hiredis) and return its reply as an integer
 * (for integer replies), or 0; -1 on a failed command. */
long long rc_test_redis_cmd(rc_test_redis_t *r, const char *fmt, ...);

#endif /* RC_TEST_REDIS_SERVER_H */

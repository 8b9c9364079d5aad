/* Test support: start and stop a real redis-server.
 * SPDX-License-Identifier: MIT */
#include "tests/adapter/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static int free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool answers(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep;
    bool ok = false;

    if (!c)
        return false;
    if (!c->err) {
        rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return ok;
}

bool rc_test_redis_start(rc_test_redis_t *r)
{
    char port[16];

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/rc-test-redis-XXXXXX");
    if (!mkdtemp(r->dir))
        return false;
    for (int attempt = 0; attempt < 3; attempt++) {
        r->port = free_port();
        snprintf(port, sizeof(port), "%d", r->port);
        r->pid = fork();
        if (r->pid < 0)
            return false;
        if (r->pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) {
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
            }
            execlp("redis-server", "redis-server", "--port", port, "--bind",
                   "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                   r->dir, "--loglevel", "warning", (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 100; i++) {
            if (answers(r->port)) {
                snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d",
                         r->port);
                return true;
            }
            if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
                break; /* port taken meanwhile: try another */
            nap_ms(100);
        }
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
    return false;
}

void rc_test_redis_signal(rc_test_redis_t *r, int sig)
{
    if (r->pid > 0)
        kill(r->pid, sig);
}

void rc_test_redis_stop(rc_test_redis_t *r)
{
    char cmd[128];

    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
    if (r->dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
}

long long rc_test_redis_cmd(rc_test_redis_t *r, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *rep;
    long long v = -1;
    va_list ap;

    if (!c || c->err) {
        if (c)
            redisFree(c);
        return -1;
    }
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (rep) {
        v = rep->type == REDIS_REPLY_INTEGER ? rep->integer
            : rep->type == REDIS_REPLY_ERROR ? -1
                                             : 0;
        freeReplyObject(rep);
    }
    redisFree(c);
    return v;
}

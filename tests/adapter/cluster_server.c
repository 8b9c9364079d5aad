/* Test harness: a real Redis Cluster on loopback (see cluster_server.h).
 * SPDX-License-Identifier: MIT */
#include "tests/adapter/cluster_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

long long cs_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cs_nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static bool port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    bool ok;

    if (fd < 0)
        return false;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A port whose cluster bus port (+10000) is free as well. Random below the
 * usual ephemeral range, so neither collides with outgoing connections. */
static int pick_port(const cs_cluster_t *c, int upto)
{
    for (int tries = 0; tries < 1000; tries++) {
        int p = 20000 + rand() % 12000; /* bus at 30000..41999 */
        bool taken = false;
        for (int i = 0; i < upto; i++)
            if (c->n[i].port == p)
                taken = true;
        if (!taken && port_free(p) && port_free(p + 10000))
            return p;
    }
    return 0;
}

static pid_t spawn(const char *log, char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphans if the test dies */
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

redisReply *cs_cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {1, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;
    va_list ap;

    if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        if (rc)
            redisFree(rc);
        return NULL;
    }
    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    redisFree(rc);
    return r;
}

static bool node_ok(int port)
{
    redisReply *r = cs_cmd(port, "CLUSTER INFO");
    bool ok = r && r->type == REDIS_REPLY_STRING &&
              strstr(r->str, "cluster_state:ok") &&
              strstr(r->str, "cluster_slots_ok:16384");

    if (r)
        freeReplyObject(r);
    return ok;
}

bool cs_all_ok(const cs_cluster_t *c)
{
    for (int i = 0; i < CS_NODES; i++)
        if (c->n[i].pid > 0 && !node_ok(c->n[i].port))
            return false;
    return true;
}

int cs_owner_of(int port, unsigned slot)
{
    redisReply *r = cs_cmd(port, "CLUSTER SLOTS");
    int owner = 0;

    if (!r || r->type != REDIS_REPLY_ARRAY)
        goto out;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2)
            continue;
        if ((unsigned)e->element[0]->integer <= slot &&
            slot <= (unsigned)e->element[1]->integer)
            owner = (int)e->element[2]->element[1]->integer;
    }
out:
    if (r)
        freeReplyObject(r);
    return owner;
}

int cs_index_of(const cs_cluster_t *c, int port)
{
    for (int i = 0; i < CS_NODES; i++)
        if (c->n[i].port == port)
            return i;
    return -1;
}

/* Every running node names the same owner for a few sample slots. */
static bool agree(const cs_cluster_t *c)
{
    static const unsigned probe[] = {0, 5000, 5461, 10922, 10923, 16383};

    for (size_t s = 0; s < sizeof(probe) / sizeof(probe[0]); s++) {
        int first = -1;
        for (int i = 0; i < CS_NODES; i++) {
            int o;
            if (c->n[i].pid <= 0)
                continue;
            o = cs_owner_of(c->n[i].port, probe[s]);
            if (o == 0 || (first >= 0 && o != first))
                return false;
            first = o;
        }
    }
    return true;
}

void cs_signal(cs_cluster_t *c, int i, int sig)
{
    if (c->n[i].pid <= 0)
        return;
    kill(c->n[i].pid, sig);
    if (sig == SIGKILL) {
        waitpid(c->n[i].pid, NULL, 0);
        c->n[i].pid = 0;
    }
}

void cs_stop(cs_cluster_t *c)
{
    char cmd[128];

    for (int i = 0; i < CS_NODES; i++) {
        if (c->n[i].pid <= 0)
            continue;
        kill(c->n[i].pid, SIGCONT);
        cs_signal(c, i, SIGKILL);
    }
    if (c->dir[0] && strncmp(c->dir, "/tmp/rc-cluster-", 16) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cs_stop: could not remove %s\n", c->dir);
    }
    c->dir[0] = '\0';
}

static pid_t start_node(const cs_cluster_t *c, int port, int timeout_ms)
{
    char p[16], to[16], conf[64], log[128];

    snprintf(p, sizeof(p), "%d", port);
    snprintf(to, sizeof(to), "%d", timeout_ms);
    snprintf(conf, sizeof(conf), "nodes-%d.conf", port);
    snprintf(log, sizeof(log), "%s/redis-%d.log", c->dir, port);
    char *argv[] = {"redis-server",
                    "--port",
                    p,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    (char *)c->dir,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf,
                    "--cluster-node-timeout",
                    to,
                    "--cluster-require-full-coverage",
                    "no",
                    "--repl-diskless-sync-delay",
                    "0",
                    NULL};
    return spawn(log, argv);
}

static bool wait_ping(int port, int ms)
{
    long long end = cs_now_ms() + ms;

    while (cs_now_ms() < end) {
        redisReply *r = cs_cmd(port, "PING");
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (ok)
            return true;
        cs_nap_ms(20);
    }
    return false;
}

int cs_start(cs_cluster_t *c, int node_timeout_ms)
{
    char *argv[6 + CS_NODES + 1];
    char addr[CS_NODES][32], log[128];
    int status;
    long long end;
    pid_t pid;

    memset(c, 0, sizeof(*c));
    srand((unsigned)getpid() ^ (unsigned)cs_now_ms());
    snprintf(c->dir, sizeof(c->dir), "/tmp/rc-cluster-XXXXXX");
    if (!mkdtemp(c->dir)) {
        c->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < CS_NODES; i++) {
        c->n[i].port = pick_port(c, i);
        if (!c->n[i].port)
            goto fail;
        c->n[i].pid = start_node(c, c->n[i].port, node_timeout_ms);
        if (c->n[i].pid <= 0)
            goto fail;
    }
    for (int i = 0; i < CS_NODES; i++) {
        redisReply *r;
        if (!wait_ping(c->n[i].port, 5000))
            goto fail;
        r = cs_cmd(c->n[i].port, "CLUSTER MYID");
        if (!r || r->type != REDIS_REPLY_STRING) {
            if (r)
                freeReplyObject(r);
            goto fail;
        }
        snprintf(c->n[i].id, sizeof(c->n[i].id), "%s", r->str);
        freeReplyObject(r);
    }
    /* redis-cli makes the first three masters and the last three their
     * replicas (with an anti-affinity shuffle on one host: which replica
     * serves which master is read back from the cluster, never assumed). */
    argv[0] = "redis-cli";
    argv[1] = "--cluster";
    argv[2] = "create";
    for (int i = 0; i < CS_NODES; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", c->n[i].port);
        argv[3 + i] = addr[i];
    }
    argv[3 + CS_NODES] = "--cluster-replicas";
    argv[4 + CS_NODES] = "1";
    argv[5 + CS_NODES] = "--cluster-yes";
    argv[6 + CS_NODES] = NULL;
    snprintf(log, sizeof(log), "%s/create.log", c->dir);
    pid = spawn(log, argv);
    if (pid <= 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        goto fail;
    end = cs_now_ms() + 30000;
    while (cs_now_ms() < end) {
        if (cs_all_ok(c) && agree(c))
            return 0;
        cs_nap_ms(100);
    }
fail:
    fprintf(stderr, "cs_start: cluster did not come up (logs in %s)\n", c->dir);
    cs_stop(c);
    return -1;
}

static int node_cmd_ok(int port, const char *fmt, ...)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;
    va_list ap;
    int ok;

    if (!rc || rc->err) {
        if (rc)
            redisFree(rc);
        return -1;
    }
    redisSetTimeout(rc, tv);
    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ok = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (ok)
        fprintf(stderr, "cs: command on %d failed: %s\n", port,
                r ? r->str : rc->errstr);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok;
}

int cs_finish_slot(cs_cluster_t *c, unsigned slot, int dst)
{
    int di = cs_index_of(c, dst);

    if (di < 0)
        return -1;
    /* The importing side first, as redis-cli does: it then owns the slot
     * whatever happens next. */
    if (node_cmd_ok(dst, "CLUSTER SETSLOT %u NODE %s", slot, c->n[di].id))
        return -1;
    for (int i = 0; i < CS_NODES; i++) {
        redisReply *r;
        bool master;
        if (i == di || c->n[i].pid <= 0)
            continue;
        /* Replicas refuse SETSLOT (they follow their master). */
        r = cs_cmd(c->n[i].port, "ROLE");
        master = r && r->type == REDIS_REPLY_ARRAY &&
                 strcmp(r->element[0]->str, "master") == 0;
        if (r)
            freeReplyObject(r);
        if (master && node_cmd_ok(c->n[i].port, "CLUSTER SETSLOT %u NODE %s",
                                  slot, c->n[di].id) != 0)
            return -1;
    }
    return 0;
}

int cs_move_slot(cs_cluster_t *c, unsigned slot, int src, int dst, bool finish)
{
    int si = cs_index_of(c, src), di = cs_index_of(c, dst);

    if (si < 0 || di < 0)
        return -1;
    if (node_cmd_ok(dst, "CLUSTER SETSLOT %u IMPORTING %s", slot,
                    c->n[si].id) ||
        node_cmd_ok(src, "CLUSTER SETSLOT %u MIGRATING %s", slot, c->n[di].id))
        return -1;
    for (;;) {
        redisReply *r = cs_cmd(src, "CLUSTER GETKEYSINSLOT %u 100", slot);
        size_t n;
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        n = r->elements;
        for (size_t i = 0; i < n; i++) {
            if (node_cmd_ok(src, "MIGRATE 127.0.0.1 %d %b 0 5000", dst,
                            r->element[i]->str, r->element[i]->len)) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
        if (n == 0)
            break;
    }
    return finish ? cs_finish_slot(c, slot, dst) : 0;
}

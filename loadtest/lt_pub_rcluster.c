/* loadtest/lt_pub_rcluster.c: roomcast-load's Redis publisher on Redis
 * Cluster (--via redis --redis-url redis-cluster://h:p,...; see lt_pub.h).
 * At creation the slot map is learned (blocking, common/cluster_sync.c:
 * the run has not started) and each room is given the master owning
 * roomcast:{<prefix><room>}; one lt_pub_redis publisher per master writes
 * that master's share, pipelined. The parent polls one fd: an epoll fd of
 * our own on which every master's socket is registered with the events it
 * wants, re-armed after every call that may change them.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"
#include "common/cluster_sync.h"
#include "common/keys.h"
#include "common/redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_MASTERS 64
#define KEY_PREFIX "roomcast:" /* roomcastd's default key_prefix */

typedef struct sub {
    lt_pub_t *p;
    int fd;
    uint32_t armed; /* events registered; 0: not registered */
} sub_t;

typedef struct pub_rcl {
    lt_pub_t base;
    int epfd;
    sub_t subs[MAX_MASTERS];
    size_t n;
    uint8_t *owner; /* per room: index into subs */
    uint32_t rooms;
    char err[200];
} pub_rcl_t;

static pub_rcl_t *of(lt_pub_t *p)
{
    return rc_container_of(p, pub_rcl_t, base);
}

static const pub_rcl_t *cof(const lt_pub_t *p)
{
    return rc_container_of(p, const pub_rcl_t, base);
}

/* Registers s's socket with the events it wants now. */
static void arm(pub_rcl_t *w, sub_t *s)
{
    int fd = s->p->ops->fd(s->p);
    uint32_t ev = fd >= 0 ? s->p->ops->events(s->p) : 0;
    struct epoll_event e = {.events = ev, .data.ptr = s};

    if (fd != s->fd && s->armed) {
        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        s->armed = 0;
    }
    s->fd = fd;
    if (fd < 0 || ev == s->armed)
        return;
    if (epoll_ctl(w->epfd, s->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) ==
        0)
        s->armed = ev ? ev : 0;
}

static rc_err_t dead(pub_rcl_t *w, const sub_t *s)
{
    snprintf(w->err, sizeof(w->err), "%s", s->p->ops->error(s->p));
    return RC_EIO;
}

static int c_fd(const lt_pub_t *p)
{
    return cof(p)->epfd;
}

static uint32_t c_events(const lt_pub_t *p)
{
    (void)p;
    return EPOLLIN;
}

static rc_err_t c_io(lt_pub_t *p, uint32_t events)
{
    pub_rcl_t *w = of(p);
    struct epoll_event evs[MAX_MASTERS];
    int n;

    (void)events;
    if (w->err[0])
        return RC_EIO;
    n = epoll_wait(w->epfd, evs, MAX_MASTERS, 0);
    for (int i = 0; i < n; i++) {
        sub_t *s = evs[i].data.ptr;
        if (s->p->ops->io(s->p, evs[i].events) != RC_OK)
            return dead(w, s);
        arm(w, s);
    }
    if (n == 0) /* a timer tick: let each connect or flush move on */
        for (size_t i = 0; i < w->n; i++) {
            if (w->subs[i].p->ops->io(w->subs[i].p, 0) != RC_OK)
                return dead(w, &w->subs[i]);
            arm(w, &w->subs[i]);
        }
    return RC_OK;
}

static bool c_ready(const lt_pub_t *p)
{
    const pub_rcl_t *w = cof(p);

    for (size_t i = 0; i < w->n; i++)
        if (!w->subs[i].p->ops->ready(w->subs[i].p))
            return false;
    return w->n > 0;
}

static rc_err_t c_publish(lt_pub_t *p, uint32_t room, const lt_pub_msg_t *m)
{
    pub_rcl_t *w = of(p);
    sub_t *s;
    rc_err_t e;

    if (room >= w->rooms)
        return RC_EINVAL;
    s = &w->subs[w->owner[room]];
    e = s->p->ops->publish(s->p, room, m);
    arm(w, s);
    return e;
}

static rc_err_t c_flush(lt_pub_t *p)
{
    pub_rcl_t *w = of(p);
    rc_err_t out = RC_OK;

    for (size_t i = 0; i < w->n; i++) {
        rc_err_t e = w->subs[i].p->ops->flush(w->subs[i].p);
        arm(w, &w->subs[i]);
        if (e == RC_AGAIN)
            out = RC_AGAIN;
        else if (e != RC_OK)
            return dead(w, &w->subs[i]);
    }
    return out;
}

static uint64_t c_in_flight(const lt_pub_t *p)
{
    const pub_rcl_t *w = cof(p);
    uint64_t n = 0;

    for (size_t i = 0; i < w->n; i++)
        n += w->subs[i].p->ops->in_flight(w->subs[i].p);
    return n;
}

static void c_stats(const lt_pub_t *p, lt_pub_stats_t *out)
{
    const pub_rcl_t *w = cof(p);

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < w->n; i++) {
        lt_pub_stats_t st;
        w->subs[i].p->ops->stats(w->subs[i].p, &st);
        out->sent += st.sent;
        out->acked += st.acked;
        out->errors += st.errors;
        out->skipped += st.skipped;
        if (st.queued_max > out->queued_max)
            out->queued_max = st.queued_max;
    }
}

static const char *c_error(const lt_pub_t *p)
{
    return cof(p)->err;
}

static void c_destroy(lt_pub_t *p)
{
    pub_rcl_t *w;

    if (!p)
        return;
    w = of(p);
    for (size_t i = 0; i < w->n; i++)
        w->subs[i].p->ops->destroy(w->subs[i].p);
    if (w->epfd >= 0)
        close(w->epfd);
    free(w->owner);
    free(w);
}

static const lt_pub_ops_t rcluster_ops = {
    .name = "redis-cluster",
    .fd = c_fd,
    .events = c_events,
    .io = c_io,
    .ready = c_ready,
    .publish = c_publish,
    .flush = c_flush,
    .in_flight = c_in_flight,
    .stats = c_stats,
    .error = c_error,
    .destroy = c_destroy,
};

lt_pub_t *lt_pub_rcluster_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                                 void *ud, char *err, size_t errlen)
{
    rc_redis_url_t u;
    rc_cluster_sync_t *cs = NULL;
    const char *ips[MAX_MASTERS];
    int ports[MAX_MASTERS];
    char mip[MAX_MASTERS][64];
    size_t nm;
    pub_rcl_t *w = calloc(1, sizeof(*w));

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base.ops = &rcluster_ops;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->rooms = cfg->rooms;
    w->owner = calloc(cfg->rooms ? cfg->rooms : 1, 1);
    if (w->epfd < 0 || !w->owner ||
        rc_redis_url_parse(cfg->redis_url, &u) != RC_OK ||
        cfg->proto == LT_PROTO_SOCKETIO) {
        snprintf(err, errlen,
                 "redis-cluster publisher: setup failed (the socketio "
                 "protocol has no cluster form)");
        goto fail;
    }
    cs = rc_cluster_sync_open(&u, err, errlen);
    if (!cs)
        goto fail;
    nm = rc_cluster_sync_masters(cs, ips, ports, MAX_MASTERS);
    if (nm == 0 || nm > MAX_MASTERS) {
        snprintf(err, errlen, "redis-cluster publisher: %zu masters", nm);
        goto fail;
    }
    for (size_t i = 0; i < nm; i++)
        snprintf(mip[i], sizeof(mip[i]), "%s", ips[i]);
    for (size_t i = 0; i < nm; i++) {
        w->subs[i].fd = -1;
        w->subs[i].p = lt_pub_redis_create_at(cfg, on_ack, ud, mip[i], ports[i],
                                              err, errlen);
        if (!w->subs[i].p)
            goto fail;
        w->n++;
        arm(w, &w->subs[i]);
    }
    for (uint32_t r = 0; r < cfg->rooms; r++) {
        char name[160], key[RC_KEYS_MAX], ip[64];
        int port;
        size_t k;
        snprintf(name, sizeof(name), "%s%u", cfg->room_prefix, r);
        if (rc_keys_room(key, sizeof(key), KEY_PREFIX, name) != RC_OK ||
            rc_cluster_sync_master_of(cs, key, strlen(key), ip, sizeof(ip),
                                      &port) != RC_OK) {
            snprintf(err, errlen, "redis-cluster publisher: no master for %s",
                     name);
            goto fail;
        }
        for (k = 0; k < nm; k++)
            if (ports[k] == port && strcmp(mip[k], ip) == 0)
                break;
        if (k == nm) {
            snprintf(err, errlen, "redis-cluster publisher: %s:%d unknown", ip,
                     port);
            goto fail;
        }
        w->owner[r] = (uint8_t)k;
    }
    rc_cluster_sync_close(cs);
    return &w->base;
fail:
    rc_cluster_sync_close(cs);
    c_destroy(&w->base);
    return NULL;
}

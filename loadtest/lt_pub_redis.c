/* loadtest/lt_pub_redis.c: the Redis publisher of roomcast-load (--via
 * redis). No hiredis: one non-blocking TCP socket on the parent's epoll
 * loop, commands written in raw RESP and pipelined:
 *   durable    FCALL roomcast_publish 1 <prefix><room> <data>
 *              (the bare-room form; integer reply: the message's seq)
 *   ephemeral  PUBLISH roomcast:{<prefix><room>} <data>   (--ephemeral;
 *              integer reply: subscribers, reported as seq 0; the channel
 *              from common/keys.h with roomcastd's default key_prefix)
 *   socketio   PUBLISH socket.io#/#<prefix><room># <msgpack>   (--proto
 *              socketio): what @socket.io/redis-adapter publishes for
 *              io.to(room).emit("m", data) in namespace "/", with a uid
 *              ("emitter") no server has, so every node delivers it. Socket.IO
 *              has no seq: we number each room's messages from 1 and put
 *              room and seq into the data; the integer reply (subscribers)
 *              acks it and the ack reports our seq.
 * Replies come back in order, so a ring of the room indexes in flight maps
 * each one to its publish. Only integer, simple-string and error replies
 * are expected; anything else kills the publisher (its error says why).
 * --redis-url redis://HOST[:PORT][/db] (read by common/redis_url.h; HOST
 * a numeric IPv4 address or localhost; no AUTH; the db is not selected).
 * On Redis Cluster (redis-cluster://, lt_pub_rcluster.c) one of these per
 * master, each in cluster form: durable FCALL names the room's key
 * roomcast:{<prefix><room>} (so the cluster can route it), ephemeral is
 * SPUBLISH.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"
#include "loadtest/lt_msgpack.h"
#include "common/keys.h"
#include "common/redis_url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_MAX (16u * 1024 * 1024) /* unsent bytes; then publish() refuses */
#define IN_CAP (1024u * 1024)
#define RING (1u << 20)              /* publishes in flight, at most */
#define SCRATCH (LT_MAX_SIZE + 1024) /* one message's data */
#define SIO_UID "emitter"            /* not any server's uid2(6) */
#define KEY_PREFIX "roomcast:"       /* roomcastd's default key_prefix */

enum { S_CONNECTING, S_OPEN, S_DEAD };

typedef struct pub_redis {
    lt_pub_t base;
    const lt_cfg_t *cfg;
    lt_pub_ack_cb on_ack;
    void *ud;
    int fd, state;
    uint8_t *in;
    size_t inlen;
    uint8_t *out;
    size_t outlen, outoff, outcap;
    uint64_t sent, answered;
    uint32_t *ring;     /* room of publish k at k % RING */
    uint64_t *seqs;     /* socketio: seq of publish k at k % RING */
    uint64_t *next_seq; /* socketio: per room, the last seq sent */
    uint8_t *scratch;
    bool cluster; /* key form and SPUBLISH (Redis Cluster) */
    lt_pub_stats_t st;
    char err[200];
} pub_redis_t;

static pub_redis_t *of(lt_pub_t *p)
{
    return rc_container_of(p, pub_redis_t, base);
}

static const pub_redis_t *cof(const lt_pub_t *p)
{
    return rc_container_of(p, const pub_redis_t, base);
}

static rc_err_t die(pub_redis_t *w, const char *why)
{
    if (w->state != S_DEAD) {
        snprintf(w->err, sizeof(w->err), "redis publisher: %s", why);
        w->state = S_DEAD;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    return RC_EIO;
}

static rc_err_t out_reserve(pub_redis_t *w, size_t n)
{
    size_t need, cap;
    uint8_t *nb;

    if (w->outoff > 0 && w->outoff == w->outlen)
        w->outoff = w->outlen = 0;
    need = w->outlen + n;
    if (need <= w->outcap)
        return RC_OK;
    if (w->outoff > 0) {
        memmove(w->out, w->out + w->outoff, w->outlen - w->outoff);
        w->outlen -= w->outoff;
        w->outoff = 0;
        need = w->outlen + n;
        if (need <= w->outcap)
            return RC_OK;
    }
    if (need > OUT_MAX)
        return RC_ELIMIT;
    cap = w->outcap ? w->outcap : 65536;
    while (cap < need)
        cap *= 2;
    nb = realloc(w->out, cap);
    if (!nb)
        return RC_ENOMEM;
    w->out = nb;
    w->outcap = cap;
    return RC_OK;
}

static rc_err_t r_flush(lt_pub_t *p)
{
    pub_redis_t *w = of(p);

    while (w->state == S_OPEN && w->outoff < w->outlen) {
        ssize_t s = send(w->fd, w->out + w->outoff, w->outlen - w->outoff,
                         MSG_NOSIGNAL);
        if (s < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return RC_AGAIN;
            return die(w, strerror(errno));
        }
        w->outoff += (size_t)s;
    }
    if (w->outoff == w->outlen)
        w->outoff = w->outlen = 0;
    return w->state == S_DEAD ? RC_EIO : RC_OK;
}

static void answer(pub_redis_t *w, bool ok, uint64_t seq, const char *line,
                   size_t n)
{
    uint32_t room;

    if (w->answered >= w->sent) {
        die(w, "reply without a request");
        return;
    }
    room = w->ring[w->answered % RING];
    if (w->seqs)
        seq = w->seqs[w->answered % RING];
    w->answered++;
    if (ok) {
        w->st.acked++;
    } else {
        w->st.errors++;
        if (w->st.errors <= 3)
            fprintf(stderr, "roomcast-load: redis refused a publish: %.*s\n",
                    (int)(n > 300 ? 300 : n), line);
    }
    if (w->on_ack)
        w->on_ack(w->ud, room, ok ? seq : 0, ok);
}

/* Parse complete replies in w->in; returns bytes used or -1 (dead). */
static ssize_t parse(pub_redis_t *w)
{
    size_t pos = 0;

    while (pos < w->inlen) {
        const char *s = (const char *)w->in + pos;
        const char *nl = memchr(s, '\n', w->inlen - pos);
        size_t n;

        if (!nl)
            break;
        n = (size_t)(nl - s) + 1; /* the line with its \r\n */
        if (n < 3 || s[n - 2] != '\r') {
            die(w, "malformed reply");
            return -1;
        }
        switch (s[0]) {
        case ':': {
            char *end;
            long long v = strtoll(s + 1, &end, 10);

            answer(w, true, v > 0 ? (uint64_t)v : 0, s, n - 2);
            break;
        }
        case '+':
            answer(w, true, 0, s, n - 2);
            break;
        case '-':
            answer(w, false, 0, s, n - 2);
            break;
        default: {
            char why[96];

            snprintf(why, sizeof(why), "unexpected reply type '%c'", s[0]);
            die(w, why);
            return -1;
        }
        }
        if (w->state == S_DEAD)
            return -1;
        pos += n;
    }
    if (pos == 0 && w->inlen >= IN_CAP) {
        die(w, "reply line over its bound");
        return -1;
    }
    return (ssize_t)pos;
}

static rc_err_t r_io(lt_pub_t *p, uint32_t events)
{
    pub_redis_t *w = of(p);
    int reads;

    if (w->state == S_DEAD)
        return RC_EIO;
    if (w->state == S_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return RC_OK;
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
            return die(w, soerr ? strerror(soerr) : "connect failed");
        w->state = S_OPEN;
        events |= EPOLLOUT;
    }
    if (events & EPOLLOUT) {
        rc_err_t e = r_flush(p);

        if (e != RC_OK && e != RC_AGAIN)
            return e;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return RC_OK;
    for (reads = 0; reads < 16; reads++) {
        ssize_t r, used;

        r = recv(w->fd, w->in + w->inlen, IN_CAP - w->inlen, 0);
        if (r == 0)
            return die(w, "redis hung up");
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return die(w, strerror(errno));
        }
        w->inlen += (size_t)r;
        used = parse(w);
        if (used < 0)
            return RC_EIO;
        memmove(w->in, w->in + used, w->inlen - (size_t)used);
        w->inlen -= (size_t)used;
    }
    return RC_OK;
}

static int r_fd(const lt_pub_t *p)
{
    return cof(p)->fd;
}

static uint32_t r_events(const lt_pub_t *p)
{
    const pub_redis_t *w = cof(p);

    if (w->state == S_CONNECTING)
        return EPOLLOUT;
    return EPOLLIN | (w->outoff < w->outlen ? EPOLLOUT : 0);
}

static bool r_ready(const lt_pub_t *p)
{
    return cof(p)->state == S_OPEN;
}

/* The socketio message for room (name, nl bytes) into out (SCRATCH). */
static size_t sio_encode(uint8_t *out, const char *name, size_t nl,
                         uint64_t seq, const lt_pub_msg_t *m)
{
    size_t n = 0;

    n += lt_mp_fixarray(out + n, 3);
    n += lt_mp_cstr(out + n, SIO_UID);
    n += lt_mp_fixmap(out + n, 3); /* the packet */
    n += lt_mp_cstr(out + n, "type");
    n += lt_mp_uint(out + n, 2); /* EVENT */
    n += lt_mp_cstr(out + n, "data");
    n += lt_mp_fixarray(out + n, 2);
    n += lt_mp_cstr(out + n, "m");
    n += lt_mp_fixmap(out + n, 4); /* JSON.stringify keeps this order */
    n += lt_mp_cstr(out + n, "r");
    n += lt_mp_str(out + n, name, nl);
    n += lt_mp_cstr(out + n, "seq");
    n += lt_mp_uint(out + n, seq);
    n += lt_mp_cstr(out + n, "t");
    n += lt_mp_uint(out + n, m->t_ns);
    n += lt_mp_cstr(out + n, "pad");
    n += lt_mp_str(out + n, m->pad ? m->pad : "", m->padlen);
    n += lt_mp_cstr(out + n, "nsp");
    n += lt_mp_cstr(out + n, "/");
    n += lt_mp_fixmap(out + n, 3); /* the broadcast options */
    n += lt_mp_cstr(out + n, "rooms");
    n += lt_mp_fixarray(out + n, 1);
    n += lt_mp_str(out + n, name, nl);
    n += lt_mp_cstr(out + n, "except");
    n += lt_mp_fixarray(out + n, 0);
    n += lt_mp_cstr(out + n, "flags");
    n += lt_mp_fixmap(out + n, 0);
    return n;
}

static rc_err_t r_publish(lt_pub_t *p, uint32_t room, const lt_pub_msg_t *m)
{
    pub_redis_t *w = of(p);
    const lt_cfg_t *cfg = w->cfg;
    bool sio = cfg->proto == LT_PROTO_SOCKETIO;
    char name[160], key[RC_KEYS_MAX], head[640];
    const uint8_t *data = w->scratch;
    size_t len;
    int nl, kl, hl;

    if (w->state != S_OPEN)
        return RC_ECLOSED;
    if (w->sent - w->answered >= RING || m->padlen > LT_MAX_SIZE) {
        w->st.skipped++;
        return RC_ELIMIT;
    }
    nl = snprintf(name, sizeof(name), "%s%u", cfg->room_prefix, room);
    if (sio) {
        kl = snprintf(key, sizeof(key), "socket.io#/#%s#", name);
        len =
            sio_encode(w->scratch, name, (size_t)nl, w->next_seq[room] + 1, m);
    } else {
        if (cfg->ephemeral || w->cluster) {
            /* name is at most 159 bytes: it fits */
            if (rc_keys_room(key, sizeof(key), KEY_PREFIX, name) != RC_OK) {
                w->st.skipped++;
                return RC_ELIMIT;
            }
            kl = (int)strlen(key);
        } else {
            kl = snprintf(key, sizeof(key), "%s", name);
        }
        len = lt_pub_data_json((char *)w->scratch, SCRATCH, m);
    }
    if (!sio && cfg->ephemeral && w->cluster)
        hl = snprintf(head, sizeof(head),
                      "*3\r\n$8\r\nSPUBLISH\r\n$%d\r\n%s\r\n$%zu\r\n", kl, key,
                      len);
    else if (sio || cfg->ephemeral)
        hl = snprintf(head, sizeof(head),
                      "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%zu\r\n", kl, key,
                      len);
    else
        hl = snprintf(head, sizeof(head),
                      "*5\r\n$5\r\nFCALL\r\n$16\r\nroomcast_publish\r\n"
                      "$1\r\n1\r\n$%d\r\n%s\r\n$%zu\r\n",
                      kl, key, len);
    if (len == 0 || out_reserve(w, (size_t)hl + len + 2) != RC_OK) {
        w->st.skipped++;
        return RC_ELIMIT;
    }
    memcpy(w->out + w->outlen, head, (size_t)hl);
    memcpy(w->out + w->outlen + hl, data, len);
    memcpy(w->out + w->outlen + hl + len, "\r\n", 2);
    w->outlen += (size_t)hl + len + 2;
    if (w->outlen - w->outoff > w->st.queued_max)
        w->st.queued_max = w->outlen - w->outoff;
    w->ring[w->sent % RING] = room;
    if (sio)
        w->seqs[w->sent % RING] = ++w->next_seq[room];
    w->sent++;
    w->st.sent++;
    return RC_OK;
}

static uint64_t r_in_flight(const lt_pub_t *p)
{
    const pub_redis_t *w = cof(p);

    return w->sent - w->answered;
}

static void r_stats(const lt_pub_t *p, lt_pub_stats_t *out)
{
    *out = cof(p)->st;
}

static const char *r_error(const lt_pub_t *p)
{
    return cof(p)->err;
}

static void r_destroy(lt_pub_t *p)
{
    pub_redis_t *w;

    if (!p)
        return;
    w = of(p);
    if (w->fd >= 0)
        close(w->fd);
    free(w->in);
    free(w->out);
    free(w->ring);
    free(w->seqs);
    free(w->next_seq);
    free(w->scratch);
    free(w);
}

static const lt_pub_ops_t redis_ops = {
    .name = "redis",
    .fd = r_fd,
    .events = r_events,
    .io = r_io,
    .ready = r_ready,
    .publish = r_publish,
    .flush = r_flush,
    .in_flight = r_in_flight,
    .stats = r_stats,
    .error = r_error,
    .destroy = r_destroy,
};

/* redis://HOST[:PORT][/db] -> dst: HOST a numeric IPv4 address (or
 * localhost), no user or password. */
static bool parse_url(const char *url, struct sockaddr_in *dst)
{
    rc_redis_url_t u;
    const char *host;

    if (!url || rc_redis_url_parse(url, &u) != RC_OK)
        return false;
    if (u.user[0] || u.password[0])
        return false; /* no AUTH support */
    host = strcmp(u.host, "localhost") == 0 ? "127.0.0.1" : u.host;
    dst->sin_family = AF_INET;
    dst->sin_port = htons((uint16_t)u.port);
    return inet_pton(AF_INET, host, &dst->sin_addr) == 1;
}

static lt_pub_t *redis_new(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                           const struct sockaddr_in *to, bool cluster,
                           char *err, size_t errlen);

lt_pub_t *lt_pub_redis_create_at(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                                 void *ud, const char *ip, int port, char *err,
                                 size_t errlen)
{
    struct sockaddr_in dst = {.sin_family = AF_INET};

    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &dst.sin_addr) != 1) {
        snprintf(err, errlen, "redis publisher: %s is not an IPv4 address", ip);
        return NULL;
    }
    return redis_new(cfg, on_ack, ud, &dst, true, err, errlen);
}

lt_pub_t *lt_pub_redis_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack,
                              void *ud, char *err, size_t errlen)
{
    struct sockaddr_in dst = {.sin_family = AF_INET};
    rc_redis_url_t u;

    if (cfg->redis_url && rc_redis_url_parse(cfg->redis_url, &u) == RC_OK &&
        u.topo == RC_REDIS_CLUSTER)
        return lt_pub_rcluster_create(cfg, on_ack, ud, err, errlen);
    if (!parse_url(cfg->redis_url, &dst)) {
        snprintf(err, errlen,
                 "--via redis needs --redis-url redis://HOST:PORT (IPv4, no "
                 "AUTH), not '%s'",
                 cfg->redis_url ? cfg->redis_url : "");
        return NULL;
    }
    return redis_new(cfg, on_ack, ud, &dst, false, err, errlen);
}

static lt_pub_t *redis_new(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                           const struct sockaddr_in *to, bool cluster,
                           char *err, size_t errlen)
{
    pub_redis_t *w;
    struct sockaddr_in dst = *to;
    int one = 1;

    w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base.ops = &redis_ops;
    w->cluster = cluster;
    w->cfg = cfg;
    w->on_ack = on_ack;
    w->ud = ud;
    w->in = malloc(IN_CAP);
    w->ring = malloc(RING * sizeof(uint32_t));
    w->scratch = malloc(SCRATCH);
    if (cfg->proto == LT_PROTO_SOCKETIO) {
        w->seqs = malloc(RING * sizeof(uint64_t));
        w->next_seq = calloc(cfg->rooms, sizeof(uint64_t));
    }
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!w->in || !w->ring || !w->scratch || w->fd < 0 ||
        (cfg->proto == LT_PROTO_SOCKETIO && (!w->seqs || !w->next_seq))) {
        snprintf(err, errlen, "redis publisher setup failed");
        r_destroy(&w->base);
        return NULL;
    }
    (void)setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(w->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
        errno != EINPROGRESS) {
        snprintf(err, errlen, "redis connect: %s", strerror(errno));
        r_destroy(&w->base);
        return NULL;
    }
    w->state = S_CONNECTING;
    return &w->base;
}

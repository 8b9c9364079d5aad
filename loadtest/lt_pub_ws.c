/* loadtest/lt_pub_ws.c: the WebSocket publisher of roomcast-load (--via
 * ws): one connection to the gateway whose token grants pub on
 * "<prefix>*"; each publish is {"op":"publish","id":N,"room":R,"data":D}
 * and its ok reply carries the seq. Publishes are appended to one bounded
 * output buffer and written in batches, so a high rate costs few syscalls.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_pub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "loadtest/lt_ws.h"

#define OUT_MAX (16u * 1024 * 1024) /* unsent bytes; then publish() refuses */
#define IN_MAX (4u * 1024 * 1024)
#define READ_CHUNK (256 * 1024)
#define ID_RING (1u << 18) /* publishes in flight, at most */
#define PUB_KEY_A 0xfffffff0u

enum { S_CONNECTING, S_UPGRADING, S_WELCOME, S_OPEN, S_DEAD };

typedef struct pub_ws {
    lt_pub_t base;
    const lt_cfg_t *cfg;
    lt_pub_ack_cb on_ack;
    void *ud;
    int fd, state;
    uint8_t *in; /* unparsed input */
    size_t inlen;
    uint8_t *out; /* unsent output */
    size_t outlen, outoff, outcap;
    uint8_t *scratch;
    uint64_t next_id;  /* ids 1, 2, ... */
    uint64_t answered; /* replies seen */
    uint32_t *id_room; /* ID_RING: room of id % ID_RING */
    uint32_t mask;
    lt_pub_stats_t st;
    char err[160];
} pub_ws_t;

static pub_ws_t *of(lt_pub_t *p)
{
    return rc_container_of(p, pub_ws_t, base);
}

static const pub_ws_t *cof(const lt_pub_t *p)
{
    return rc_container_of(p, const pub_ws_t, base);
}

static rc_err_t die(pub_ws_t *w, const char *why)
{
    if (w->state != S_DEAD) {
        snprintf(w->err, sizeof(w->err), "publisher: %s", why);
        w->state = S_DEAD;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    return RC_EIO;
}

static uint32_t next_mask(pub_ws_t *w)
{
    w->mask ^= w->mask << 13;
    w->mask ^= w->mask >> 17;
    w->mask ^= w->mask << 5;
    return w->mask;
}

/* Append bytes to the output buffer, growing it up to OUT_MAX. */
static rc_err_t out_reserve(pub_ws_t *w, size_t n)
{
    size_t need, cap;
    uint8_t *nb;

    if (w->outoff > 0 && w->outoff == w->outlen)
        w->outoff = w->outlen = 0;
    need = w->outlen + n;
    if (need <= w->outcap)
        return RC_OK;
    if (w->outoff > 0) { /* compact before growing */
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

static rc_err_t out_frame(pub_ws_t *w, uint8_t opcode, const void *p,
                          size_t len)
{
    rc_err_t e = out_reserve(w, len + LT_WS_MAX_HDR);

    if (e != RC_OK)
        return e;
    w->outlen += lt_ws_build(w->out + w->outlen, opcode, p, len, next_mask(w));
    if (w->outlen - w->outoff > w->st.queued_max)
        w->st.queued_max = w->outlen - w->outoff;
    return RC_OK;
}

static rc_err_t ws_flush(lt_pub_t *p)
{
    pub_ws_t *w = of(p);

    while (w->state != S_DEAD && w->state != S_CONNECTING &&
           w->outoff < w->outlen) {
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

static void on_reply(pub_ws_t *w, const char *t, size_t n, bool ok)
{
    uint64_t id, seq = 0;
    uint32_t room;

    if (!lt_ws_scan_u64(t, n, "\"id\":", 5, &id, NULL) || id == 0 ||
        id >= w->next_id || w->next_id - id > ID_RING)
        return; /* not one of ours, or too old to map */
    room = w->id_room[id % ID_RING];
    w->answered++;
    if (ok) {
        w->st.acked++;
        (void)lt_ws_scan_u64(t, n, "\"seq\":", 6, &seq, NULL);
    } else {
        w->st.errors++;
        if (w->st.errors <= 3)
            fprintf(stderr, "roomcast-load: publish refused: %.*s\n",
                    (int)(n > 300 ? 300 : n), t);
    }
    if (w->on_ack)
        w->on_ack(w->ud, room, seq, ok);
}

/* Parse what is in w->in; returns bytes used, or -1 when the link died. */
static ssize_t process(pub_ws_t *w)
{
    size_t pos = 0;

    if (w->state == S_UPGRADING) {
        char key[LT_WS_KEY_LEN + 1], accept[LT_WS_ACCEPT_LEN + 1];
        int status;
        bool acc;
        ssize_t h;

        lt_ws_key(PUB_KEY_A, 1, key, accept);
        h = lt_ws_response((const char *)w->in, w->inlen, accept, &status,
                           &acc);
        if (h == 0)
            return 0;
        if (h < 0 || status != 101 || !acc) {
            char why[96];

            snprintf(why, sizeof(why), "upgrade refused (HTTP %d)", status);
            die(w, why);
            return -1;
        }
        w->state = S_WELCOME;
        pos = (size_t)h;
    }
    while (pos < w->inlen) {
        lt_ws_frame_t f;
        ssize_t r = lt_ws_parse(w->in + pos, w->inlen - pos, IN_MAX, &f);
        const char *t = (const char *)f.payload;

        if (r == 0)
            break;
        if (r < 0) {
            die(w, "bad frame from the gateway");
            return -1;
        }
        pos += (size_t)r;
        if (f.opcode == LT_WS_PING) {
            if (out_frame(w, LT_WS_PONG, f.payload,
                          f.len > 125 ? 125 : (size_t)f.len) != RC_OK) {
                die(w, "cannot queue a pong");
                return -1;
            }
        } else if (f.opcode == LT_WS_CLOSE) {
            char why[64];

            snprintf(why, sizeof(why), "gateway closed it (%u)",
                     f.len >= 2 ? ((unsigned)f.payload[0] << 8) | f.payload[1]
                                : 1005u);
            die(w, why);
            return -1;
        } else if (f.opcode == LT_WS_TEXT && f.len > 8) {
            if (memcmp(t, "{\"op\":\"ok\"", 10) == 0)
                on_reply(w, t, (size_t)f.len, true);
            else if (memcmp(t, "{\"op\":\"error\"", 13) == 0)
                on_reply(w, t, (size_t)f.len, false);
            else if (memcmp(t, "{\"op\":\"welcome\"", 15) == 0)
                w->state = S_OPEN;
        }
    }
    return (ssize_t)pos;
}

static rc_err_t connected(pub_ws_t *w)
{
    const lt_cfg_t *cfg = w->cfg;
    char pat[160], err[128], key[LT_WS_KEY_LEN + 1], req[2048];
    const char *pats[1] = {pat};
    int soerr = 0, n;
    socklen_t sl = sizeof(soerr);
    char *tok;

    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
        return die(w, soerr ? strerror(soerr) : "connect failed");
    snprintf(pat, sizeof(pat), "%s*", cfg->room_prefix);
    tok = rc_auth_mint(cfg->alg, (const unsigned char *)cfg->secret,
                       strlen(cfg->secret), "load-publisher", pats, 1, pats, 1,
                       (int64_t)time(NULL), cfg->ttl_s, err, sizeof(err));
    if (!tok)
        return die(w, err);
    lt_ws_key(PUB_KEY_A, 1, key, NULL);
    n = lt_ws_request(req, sizeof(req), cfg->host, cfg->port, cfg->path, key,
                      "roomcast.v1", tok);
    free(tok);
    if (n < 0 || out_reserve(w, (size_t)n) != RC_OK)
        return die(w, "request too long");
    memcpy(w->out + w->outlen, req, (size_t)n);
    w->outlen += (size_t)n;
    w->state = S_UPGRADING;
    return RC_OK;
}

static rc_err_t ws_io(lt_pub_t *p, uint32_t events)
{
    pub_ws_t *w = of(p);
    int reads;

    if (w->state == S_DEAD)
        return RC_EIO;
    if (w->state == S_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return RC_OK;
        if (connected(w) != RC_OK)
            return RC_EIO;
        events |= EPOLLOUT;
    }
    if (events & EPOLLOUT) {
        rc_err_t e = ws_flush(p);

        if (e != RC_OK && e != RC_AGAIN)
            return e;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return RC_OK;
    for (reads = 0; reads < 16; reads++) {
        ssize_t r, used;

        if (w->inlen + READ_CHUNK > IN_MAX + READ_CHUNK)
            return die(w, "input over its bound");
        r = recv(w->fd, w->in + w->inlen, READ_CHUNK, 0);
        if (r == 0)
            return die(w, "the gateway hung up");
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return die(w, strerror(errno));
        }
        w->inlen += (size_t)r;
        used = process(w);
        if (used < 0)
            return RC_EIO;
        memmove(w->in, w->in + used, w->inlen - (size_t)used);
        w->inlen -= (size_t)used;
        if (r < READ_CHUNK)
            break;
    }
    /* Pongs may have been queued. */
    if (w->outoff < w->outlen) {
        rc_err_t e = ws_flush(p);

        if (e != RC_OK && e != RC_AGAIN)
            return e;
    }
    return RC_OK;
}

static int ws_fd(const lt_pub_t *p)
{
    return cof(p)->fd;
}

static uint32_t ws_events(const lt_pub_t *p)
{
    const pub_ws_t *w = cof(p);

    if (w->state == S_CONNECTING)
        return EPOLLOUT;
    return EPOLLIN | (w->outoff < w->outlen ? EPOLLOUT : 0);
}

static bool ws_ready(const lt_pub_t *p)
{
    return cof(p)->state == S_OPEN;
}

static rc_err_t ws_publish(lt_pub_t *p, uint32_t room, const lt_pub_msg_t *m)
{
    pub_ws_t *w = of(p);
    uint8_t *s = w->scratch;
    size_t len;
    int n;

    if (w->state != S_OPEN)
        return RC_ECLOSED;
    if (m->padlen > LT_MAX_SIZE || w->next_id - w->answered >= ID_RING) {
        w->st.skipped++;
        return RC_ELIMIT;
    }
    n = snprintf((char *)s, 256,
                 "{\"op\":\"publish\",\"id\":%llu,\"room\":\"%s%u\",\"data\":",
                 (unsigned long long)w->next_id, w->cfg->room_prefix, room);
    len = lt_pub_data_json((char *)s + n, LT_MAX_SIZE + 512, m);
    if (len == 0) {
        w->st.skipped++;
        return RC_ELIMIT;
    }
    s[(size_t)n + len] = '}';
    if (out_frame(w, LT_WS_TEXT, s, (size_t)n + len + 1) != RC_OK) {
        w->st.skipped++;
        return RC_ELIMIT;
    }
    w->id_room[w->next_id % ID_RING] = room;
    w->next_id++;
    w->st.sent++;
    return RC_OK;
}

static uint64_t ws_in_flight(const lt_pub_t *p)
{
    const pub_ws_t *w = cof(p);

    return w->next_id - 1 - w->answered;
}

static void ws_stats(const lt_pub_t *p, lt_pub_stats_t *out)
{
    *out = cof(p)->st;
}

static const char *ws_error(const lt_pub_t *p)
{
    return cof(p)->err;
}

static void ws_destroy(lt_pub_t *p)
{
    pub_ws_t *w;

    if (!p)
        return;
    w = of(p);
    if (w->fd >= 0)
        close(w->fd);
    free(w->in);
    free(w->out);
    free(w->scratch);
    free(w->id_room);
    free(w);
}

static const lt_pub_ops_t ws_ops = {
    .name = "ws",
    .fd = ws_fd,
    .events = ws_events,
    .io = ws_io,
    .ready = ws_ready,
    .publish = ws_publish,
    .flush = ws_flush,
    .in_flight = ws_in_flight,
    .stats = ws_stats,
    .error = ws_error,
    .destroy = ws_destroy,
};

lt_pub_t *lt_pub_ws_create(const lt_cfg_t *cfg, lt_pub_ack_cb on_ack, void *ud,
                           char *err, size_t errlen)
{
    pub_ws_t *w = calloc(1, sizeof(*w));
    struct sockaddr_in dst = {.sin_family = AF_INET};
    int one = 1;

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base.ops = &ws_ops;
    w->cfg = cfg;
    w->on_ack = on_ack;
    w->ud = ud;
    w->next_id = 1;
    w->mask = 0x2545f491u;
    w->in = malloc(IN_MAX + READ_CHUNK);
    w->scratch = malloc(LT_MAX_SIZE + 1024);
    w->id_room = malloc(ID_RING * sizeof(uint32_t));
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!w->in || !w->scratch || !w->id_room || w->fd < 0) {
        snprintf(err, errlen, "publisher setup failed");
        ws_destroy(&w->base);
        return NULL;
    }
    (void)setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    dst.sin_port = htons(cfg->port);
    inet_pton(AF_INET, cfg->host, &dst.sin_addr);
    if (connect(w->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
        errno != EINPROGRESS) {
        snprintf(err, errlen, "publisher connect: %s", strerror(errno));
        ws_destroy(&w->base);
        return NULL;
    }
    w->state = S_CONNECTING;
    return &w->base;
}

/* loadtest/lt_worker.c: a client worker of roomcast-load: many plain-ws
 * connections on one epoll loop, with as little work per received frame as
 * we can manage, because this process must never be what limits a run.
 *
 * Per connection we keep 48 bytes plus one last-seq per joined room; read
 * buffers are shared (one per process) and only a partial frame left at the
 * end of a read is copied into a per-connection heap block until the rest
 * arrives. Received JSON is not parsed: "seq":, "t": and "id": are found by
 * scanning, since the gateway writes msg frames in one fixed layout.
 *
 * --proto socketio speaks Engine.IO v4 / Socket.IO v5 over the same
 * framing instead: GET <path>?EIO=4&transport=websocket&token=<jwt>, open
 * packet "0{...}", "40" -> "40{"sid":..}" (established), joins as
 * 42<id>["join","<room>"] acked by 43<id>[{"ok":true}], Engine.IO pings
 * "2" answered "3", deliveries 42["m",{"r":"<room>","seq":N,"t":T,...}]
 * (room and seq put there by our publisher: Socket.IO has neither).
 *
 * --tls runs each connection through an OpenSSL client (no certificate
 * verification, no session reuse: every connect is a full handshake)
 * between the TCP connect and the upgrade request; io_send/io_recv hide
 * it from the rest.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "auth/auth.h"
#include "loadtest/lt_hist.h"
#include "loadtest/lt_ws.h"

#define READ_BUF (256 * 1024)
#define MAX_LEFTOVER                                                           \
    (128 * 1024)               /* partial frame kept per connection;           \
                                  must stay below READ_BUF */
#define MAX_WBUF (1024 * 1024) /* unsent client bytes per connection */
#define MAX_FRAME MAX_LEFTOVER
#define MAX_EVENTS 1024
#define READS_PER_EVENT 4    /* then let other sockets have a turn */
#define OPENS_PER_TICK 512   /* new connections per loop turn, at most */
#define JOINS_PER_TICK 1024  /* connections sent their joins per loop turn */
#define PROGRESS_NS 50000000 /* progress record every 50 ms when changed */
#define SWEEP_NS 200000000   /* handshake/cycle timeout sweep */
#define CMD_TAG UINT64_MAX   /* epoll data of the command pipe */
#define SEQ_NONE UINT64_MAX  /* room slot not joined */
#define SEQ_ANY (UINT64_MAX - 1) /* joined, base seq unknown */
#define BCAST_RING 64

enum conn_state {
    ST_FREE = 0,
    ST_CONNECTING, /* non-blocking connect in flight */
    ST_TLS,        /* --tls: TLS handshake in flight */
    ST_UPGRADING,  /* request sent, waiting for 101 */
    ST_WELCOME,    /* 101 read, waiting for the welcome frame */
    ST_OPEN,       /* authenticated */
    ST_JOINING,    /* joins sent, replies outstanding */
    ST_JOINED,
    ST_LEAVING, /* churn: leaves sent */
    ST_CLOSING, /* churn: close frame sent, waiting for the server's */
    ST_MOVING,  /* drain: told to reconnect, waiting out after_ms */
};

enum phase {
    PH_RAMP = 0,
    PH_IDLE,
    PH_JOIN,
    PH_CHURN,
    PH_CHURN_DRAIN,
};

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t wantout;  /* EPOLLOUT is registered */
    uint16_t pending; /* replies outstanding */
    uint32_t gen;     /* connection generation (churn reuses slots) */
    uint32_t rlen;    /* bytes in rbuf */
    uint32_t wlen;    /* bytes in wbuf */
    uint8_t *rbuf;    /* partial frame left by the last read; owned */
    uint8_t *wbuf;    /* bytes the socket did not take yet; owned */
    uint64_t t_start; /* when this connection (or cycle) began */
    char *resume;     /* drain: resume token while moving; owned */
    uint64_t move_at; /* drain: reconnect when the clock passes this */
    SSL *ssl;         /* --tls: the connection's TLS state; owned */
} conn_t;

typedef struct bslot {
    uint64_t seq, count, min, max;
} bslot_t;

typedef struct worker {
    const lt_cfg_t *cfg;
    uint32_t wid, first, count, M, R;
    int ep, cmd_fd, rep_fd;
    conn_t *conns;
    uint64_t *last_seq; /* count * M */
    uint32_t *members;  /* R: joined clients per room, this worker */
    uint8_t *buf;       /* shared read buffer */
    uint8_t *scratch;   /* frames being built */
    size_t scratch_cap;
    size_t pfxlen;
    uint32_t rng;
    lt_counters_t c;
    lt_hist_t hist;
    /* --sample-interval: this window's latencies, sent and reset every
     * interval while measuring (LT_IPC_WINDOW); NULL otherwise */
    lt_hist_t *win;
    uint64_t next_window;
    struct sockaddr_in dst[LT_MAX_TARGETS];
    struct sockaddr_in resume_dst;
    uint32_t moving; /* connections in ST_MOVING */
    uint64_t next_move_scan, mark_ns;
    enum phase phase;
    uint64_t t0, deadline;
    /* ramp / churn */
    uint64_t opened;     /* connections started since t0 */
    uint32_t next_local; /* ramp: next slot to open */
    uint32_t pending_hs; /* connections in a handshake state */
    uint32_t *freelist;  /* churn: free slots */
    uint32_t nfree;
    uint64_t churn_end, drain_end;
    /* join */
    uint32_t join_cursor;
    uint64_t pending_replies, join_t0;
    /* measure */
    int measuring;
    uint64_t cpu0, wall0, next_progress, last_progress;
    uint64_t next_sweep;
    uint64_t last_est; /* when the last connection was established */
    bslot_t ring[BCAST_RING];
    SSL_CTX *tls; /* --tls; owned */
    int done;
    int rc;
} worker_t;

static uint32_t rnd(worker_t *w)
{
    uint32_t x = w->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->rng = x;
    return x;
}

static void report(worker_t *w, uint32_t type, const void *p, size_t len)
{
    if (lt_ipc_send(w->rep_fd, type, p, len) != RC_OK) {
        /* The parent is gone: nobody wants our numbers any more. */
        w->done = 1;
        w->rc = 2;
    }
}

static void ep_mod(worker_t *w, conn_t *c, uint32_t events)
{
    struct epoll_event ev = {.events = events,
                             .data.u64 = (uint64_t)(c - w->conns)};

    (void)epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int in_handshake(const conn_t *c)
{
    return c->state == ST_CONNECTING || c->state == ST_TLS ||
           c->state == ST_UPGRADING || c->state == ST_WELCOME;
}

/* The one place a connection's resources are released. */
static void conn_release(worker_t *w, conn_t *c)
{
    if (c->state == ST_FREE)
        return;
    if (in_handshake(c))
        w->pending_hs--;
    if (c->state == ST_JOINING && w->phase == PH_JOIN)
        w->pending_replies -= c->pending;
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    free(c->rbuf);
    free(c->wbuf);
    free(c->resume);
    c->resume = NULL;
    c->fd = -1;
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->wlen = 0;
    c->pending = 0;
    c->wantout = 0;
    c->state = ST_FREE;
    if (w->cfg->mode == LT_CHURN)
        w->freelist[w->nfree++] = (uint32_t)(c - w->conns);
}

enum fail_kind { F_CONNECT, F_HTTP, F_TIMEOUT, F_PROTO };

/* A connection that never became established. */
static void conn_fail(worker_t *w, conn_t *c, enum fail_kind k)
{
    if (c->resume)
        w->c.move_failed++;
    w->c.failed++;
    if (k == F_CONNECT)
        w->c.fail_connect++;
    else if (k == F_HTTP)
        w->c.fail_http++;
    else if (k == F_TIMEOUT)
        w->c.fail_timeout++;
    else
        w->c.fail_proto++;
    if (w->cfg->mode == LT_CHURN)
        w->c.cycles_failed++;
    conn_release(w, c);
}

/* An established connection went away without us asking. */
/* drain: a connection told to reconnect lost its old link; keep its room
 * slots (last seqs) and reconnect at move_at. */
static void conn_park(worker_t *w, conn_t *c, uint32_t code)
{
    lt_counters_close(&w->c, code);
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    free(c->rbuf);
    free(c->wbuf);
    c->fd = -1;
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->wlen = 0;
    c->pending = 0;
    c->wantout = 0;
    c->state = ST_MOVING;
    w->moving++;
}

static void conn_lost(worker_t *w, conn_t *c, uint32_t code)
{
    if (c->state == ST_MOVING)
        return; /* already parked */
    if (c->resume && !in_handshake(c) && c->state != ST_MOVING) {
        conn_park(w, c, code);
        return;
    }
    if (in_handshake(c)) {
        conn_fail(w, c, F_PROTO);
        return;
    }
    if (code == 1006)
        w->c.lost_eof++;
    lt_counters_close(&w->c, code);
    if (w->cfg->mode == LT_CHURN) {
        if (c->state == ST_CLOSING)
            w->c.cycles_done++; /* the server hung up after our close */
        else
            w->c.cycles_failed++;
    }
    conn_release(w, c);
}

/* send()/recv() on the connection, through TLS with --tls: the same
 * results (-1 with errno EAGAIN when it would block, 0 on EOF). */
static ssize_t tls_result(conn_t *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0)
            return 0; /* EOF without close_notify */
        return -1;
    default:
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t io_send(conn_t *c, const void *p, size_t len)
{
    int r;

    if (!c->ssl)
        return send(c->fd, p, len, MSG_NOSIGNAL);
    if (len == 0)
        return 0;
    errno = 0;
    r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    return r > 0 ? r : tls_result(c, r);
}

static ssize_t io_recv(conn_t *c, void *p, size_t len)
{
    int r;

    if (!c->ssl)
        return recv(c->fd, p, len, 0);
    errno = 0;
    r = SSL_read(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
    return r > 0 ? r : tls_result(c, r);
}

static void conn_send(worker_t *w, conn_t *c, const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t *nb;

    if (c->wlen == 0) {
        ssize_t s = io_send(c, b, len);

        if (s == (ssize_t)len)
            return;
        if (s < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_lost(w, c, 1006);
                return;
            }
            s = 0;
        }
        b += s;
        len -= (size_t)s;
    }
    if (c->wlen + len > MAX_WBUF) {
        conn_lost(w, c, 1006); /* the gateway stopped reading us */
        return;
    }
    nb = realloc(c->wbuf, c->wlen + len);
    if (!nb) {
        conn_lost(w, c, 1006);
        return;
    }
    memcpy(nb + c->wlen, b, len);
    c->wbuf = nb;
    c->wlen += (uint32_t)len;
    if (!c->wantout) {
        c->wantout = 1;
        ep_mod(w, c, EPOLLIN | EPOLLOUT);
    }
}

static void conn_flush(worker_t *w, conn_t *c)
{
    ssize_t s = io_send(c, c->wbuf, c->wlen);

    if (s < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_lost(w, c, 1006);
        return;
    }
    if ((uint32_t)s < c->wlen) {
        memmove(c->wbuf, c->wbuf + s, c->wlen - (size_t)s);
        c->wlen -= (uint32_t)s;
        return;
    }
    free(c->wbuf);
    c->wbuf = NULL;
    c->wlen = 0;
    c->wantout = 0;
    ep_mod(w, c, EPOLLIN);
}

static uint32_t conn_idx(const worker_t *w, const conn_t *c)
{
    return w->first + (uint32_t)(c - w->conns);
}

static void send_room_ops(worker_t *w, conn_t *c, const char *op,
                          uint64_t id_base)
{
    const lt_cfg_t *cfg = w->cfg;
    uint32_t i = conn_idx(w, c), k;
    size_t off = 0;

    for (k = 0; k < w->M; k++) {
        char p[256];
        int n = cfg->proto == LT_PROTO_SOCKETIO
                    ? snprintf(p, sizeof(p), "42%llu[\"%s\",\"%s%u\"]",
                               (unsigned long long)(id_base + k), op,
                               cfg->room_prefix, lt_room_of(i, k, w->R, w->M))
                    : snprintf(p, sizeof(p),
                               "{\"op\":\"%s\",\"id\":%llu,\"room\":\"%s%u\"}",
                               op, (unsigned long long)(id_base + k),
                               cfg->room_prefix, lt_room_of(i, k, w->R, w->M));
        off += lt_ws_build(w->scratch + off, LT_WS_TEXT, p, (size_t)n, rnd(w));
    }
    c->pending = (uint16_t)w->M;
    conn_send(w, c, w->scratch, off);
}

static void send_joins(worker_t *w, conn_t *c)
{
    c->state = ST_JOINING;
    if (w->phase == PH_JOIN)
        w->pending_replies += w->M;
    send_room_ops(w, c, "join", 1);
}

static void send_leaves(worker_t *w, conn_t *c)
{
    c->state = ST_LEAVING;
    send_room_ops(w, c, "leave", LT_LEAVE_ID_BASE + 1);
}

static void send_close(worker_t *w, conn_t *c, uint16_t code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code}, f[16];
    size_t n = lt_ws_build(f, LT_WS_CLOSE, p, 2, rnd(w));

    conn_send(w, c, f, n);
}

/* A reply to one of this connection's joins or leaves arrived. */
static void reply_done(worker_t *w, conn_t *c)
{
    if (c->pending == 0)
        return;
    c->pending--;
    if (c->state == ST_JOINING && w->phase == PH_JOIN)
        w->pending_replies--;
    if (c->pending != 0)
        return;
    if (c->state == ST_JOINING) {
        c->state = ST_JOINED;
        w->c.clients_joined++;
        if (w->cfg->mode == LT_CHURN)
            send_leaves(w, c);
    } else if (c->state == ST_LEAVING) {
        c->state = ST_CLOSING;
        send_close(w, c, 1000);
    }
}

/* Which of client i's room slots is room number n? -1: none. */
static int room_slot(const worker_t *w, uint32_t i, uint64_t n)
{
    uint64_t R = w->R, M = w->M, d, k;

    if (n >= R)
        return -1;
    d = (n + R - i % R) % R;
    k = (d * M + R - 1) / R; /* smallest k with k*R/M >= d */
    if (k < M && k * R / M == d)
        return (int)k;
    return -1;
}

/* A delivery: the room name follows key ("room":" in roomcast's msg
 * frame, "r":" in the data our socketio publisher writes), then "seq":
 * and "t":. */
static void on_msg(worker_t *w, conn_t *c, const char *p, size_t n,
                   uint64_t now, const char *key, size_t klen)
{
    const char *end = p + n, *r, *after;
    uint64_t room = 0, seq, t, *ls;
    uint32_t i = conn_idx(w, c);
    int k;

    r = memmem(p, n, key, klen);
    if (!r || (size_t)(end - r) < klen + w->pfxlen) {
        w->c.unexpected++;
        return;
    }
    r += klen;
    if (memcmp(r, w->cfg->room_prefix, w->pfxlen) != 0) {
        w->c.unexpected++;
        return;
    }
    r += w->pfxlen;
    while (r < end && *r >= '0' && *r <= '9')
        room = room * 10 + (uint64_t)(*r++ - '0');
    if (!lt_ws_scan_u64(r, (size_t)(end - r), "\"seq\":", 6, &seq, &after)) {
        if (!w->cfg->ephemeral) {
            w->c.unexpected++; /* ephemeral, and we did not send those */
            return;
        }
        /* --ephemeral: no seq, so no order check; count and time it */
        w->c.deliveries++;
        if (lt_ws_scan_u64(r, (size_t)(end - r), "\"t\":", 4, &t, NULL)) {
            uint64_t lat = now > t ? now - t : 0;

            lt_hist_add(&w->hist, lat);
            if (w->win)
                lt_hist_add(w->win, lat);
        }
        return;
    }
    w->c.deliveries++;
    if (lt_ws_scan_u64(after, (size_t)(end - after), "\"t\":", 4, &t, NULL)) {
        uint64_t lat = now > t ? now - t : 0;

        lt_hist_add(&w->hist, lat);
        if (w->win)
            lt_hist_add(w->win, lat);
        if (w->cfg->mode == LT_BROADCAST) {
            bslot_t *b = &w->ring[seq % BCAST_RING];

            if (b->seq != seq) {
                b->seq = seq;
                b->count = 0;
                b->min = UINT64_MAX;
                b->max = 0;
            }
            b->count++;
            if (lat < b->min)
                b->min = lat;
            if (lat > b->max)
                b->max = lat;
            if (b->count == w->members[0]) {
                lt_bcast_report_t br = {seq, b->count, b->min, b->max};
                report(w, LT_IPC_BCAST, &br, sizeof(br));
            }
        }
    }
    k = room_slot(w, i, room);
    if (k < 0) {
        w->c.unexpected++;
        return;
    }
    ls = &w->last_seq[(size_t)(c - w->conns) * w->M + (size_t)k];
    if (*ls == SEQ_NONE) {
        w->c.unexpected++; /* a message for a room we have not joined */
    } else if (*ls == SEQ_ANY || seq == *ls + 1) {
        *ls = seq;
    } else if (seq > *ls) {
        w->c.gaps += seq - *ls - 1;
        *ls = seq;
    } else {
        w->c.dups++;
    }
}

/* The reply to request id: join k is id 1+k, leave k LT_LEAVE_ID_BASE+1+k.
 * start: a joined room slot's last seq (SEQ_ANY: the first message sets
 * it). Returns false when id is none of ours. */
static bool answered(worker_t *w, conn_t *c, uint64_t id, bool ok,
                     uint64_t start)
{
    uint32_t i = conn_idx(w, c);
    size_t slot = (size_t)(c - w->conns) * w->M;

    if (id >= 1 && id <= w->M) {
        uint32_t k = (uint32_t)(id - 1);

        if (ok) {
            w->last_seq[slot + k] = start;
            w->c.joins_ok++;
            w->members[lt_room_of(i, k, w->R, w->M)]++;
        } else {
            w->c.joins_err++;
        }
    } else if (id > LT_LEAVE_ID_BASE && id <= LT_LEAVE_ID_BASE + w->M) {
        if (ok) {
            w->last_seq[slot + (id - LT_LEAVE_ID_BASE - 1)] = SEQ_NONE;
            w->c.leaves_ok++;
        } else {
            w->c.leaves_err++;
        }
    } else {
        return false;
    }
    reply_done(w, c);
    return true;
}

static void on_ok(worker_t *w, conn_t *c, const char *p, size_t n)
{
    uint64_t id, seq;

    if (!lt_ws_scan_u64(p, n, "\"id\":", 5, &id, NULL)) {
        w->c.unexpected++;
        return;
    }
    /* seq 0: the room has no message yet. Through Redis the first seq is
     * the room's epoch base (~9.5e13), not 1: take the first message's
     * seq as the start. */
    if (!lt_ws_scan_u64(p, n, "\"seq\":", 6, &seq, NULL) || seq == 0)
        seq = SEQ_ANY;
    if (!answered(w, c, id, true, seq))
        w->c.unexpected++;
}

static void on_error(worker_t *w, conn_t *c, const char *p, size_t n)
{
    uint64_t id;

    w->c.errors++;
    if (w->cfg->verbose && w->c.errors <= 5)
        fprintf(stderr, "roomcast-load: worker %u: %.*s\n", w->wid,
                (int)(n > 300 ? 300 : n), p);
    if (lt_ws_scan_u64(p, n, "\"id\":", 5, &id, NULL))
        (void)answered(w, c, id, false, 0);
}

/* drain: {"op":"reconnect","reason":"drain","after_ms":N,"resume":"T"}.
 * Remember T and when to move; the server's close follows. */
static void on_reconnect(worker_t *w, conn_t *c, const char *p, size_t n,
                         uint64_t now)
{
    const char *r = memmem(p, n, "\"resume\":\"", 10), *e;
    uint64_t after = 0;
    size_t tl, i;

    if (!r) {
        w->c.unexpected++;
        return;
    }
    r += 10;
    e = memchr(r, '"', (size_t)(p + n - r));
    if (!e || e == r || e - r > 1000) {
        w->c.unexpected++;
        return;
    }
    tl = (size_t)(e - r);
    for (i = 0; i < tl; i++) { /* base64url "." base64url: URL-safe */
        char ch = r[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
              ch == '.')) {
            w->c.unexpected++;
            return;
        }
    }
    (void)lt_ws_scan_u64(p, n, "\"after_ms\":", 11, &after, NULL);
    if (after > 600000)
        after = 600000;
    c->resume = malloc(tl + 1);
    if (!c->resume)
        return;
    memcpy(c->resume, r, tl);
    c->resume[tl] = '\0';
    c->move_at = now + after * 1000000u;
    w->c.moves++;
}

/* drain: the welcome on the node we moved to. */
static void on_resumed(worker_t *w, conn_t *c, const char *p, size_t n,
                       uint64_t now)
{
    const char *q = p, *end = p + n;

    w->pending_hs--;
    free(c->resume);
    c->resume = NULL;
    if (!memmem(p, n, "\"resumed\":true", 14)) {
        w->c.resume_refused++;
        if (w->mark_ns && now >= w->mark_ns) {
            uint64_t b = (now - w->mark_ns) / LT_RC_BUCKET_NS;
            w->c.rf_hist[b < LT_RC_BUCKETS ? b : LT_RC_BUCKETS - 1]++;
        }
        c->state = ST_OPEN;
        return;
    }
    w->c.resumed++;
    c->state = ST_JOINED;
    while ((q = memmem(q, (size_t)(end - q), "\"recovered\":false", 17))) {
        w->c.not_recovered++;
        q += 17;
    }
    if (w->mark_ns && now >= w->mark_ns) {
        uint64_t b = (now - w->mark_ns) / LT_RC_BUCKET_NS;
        w->c.rc_hist[b < LT_RC_BUCKETS ? b : LT_RC_BUCKETS - 1]++;
    }
}

/* The welcome (roomcast) or the CONNECT answer (socketio) arrived. */
static void established(worker_t *w, conn_t *c, uint64_t now)
{
    c->state = ST_OPEN;
    w->pending_hs--;
    w->c.established++;
    w->last_est = now;
    if (w->cfg->mode == LT_CHURN)
        send_joins(w, c);
}

static void send_text(worker_t *w, conn_t *c, const char *p, size_t n)
{
    uint8_t f[LT_WS_MAX_HDR + 128];

    conn_send(w, c, f, lt_ws_build(f, LT_WS_TEXT, p, n, rnd(w)));
}

/* --proto socketio: one Engine.IO packet per text frame. */
static void on_sio_text(worker_t *w, conn_t *c, const char *p, size_t n,
                        uint64_t now)
{
    uint64_t id = 0;
    size_t j;

    if (n == 0) {
        w->c.unexpected++;
        return;
    }
    switch (p[0]) {
    case '0': /* Engine.IO open: connect to namespace "/" */
        if (c->state == ST_WELCOME)
            send_text(w, c, "40", 2);
        else
            w->c.unexpected++;
        return;
    case '2': /* Engine.IO ping: pong with the same payload */
        w->c.pings++;
        if (n <= 100) {
            char pong[101];

            memcpy(pong, p, n);
            pong[0] = '3';
            send_text(w, c, pong, n);
        }
        return;
    case '4': /* Engine.IO message: a Socket.IO packet */
        break;
    default:
        w->c.unexpected++;
        return;
    }
    if (n < 2) {
        w->c.unexpected++;
        return;
    }
    switch (p[1]) {
    case '0': /* CONNECT answered: established */
        if (c->state == ST_WELCOME)
            established(w, c, now);
        else
            w->c.unexpected++;
        break;
    case '2': /* EVENT: 42["m",{...}] */
        if (n > 7 && memcmp(p, "42[\"m\",", 7) == 0)
            on_msg(w, c, p + 7, n - 7, now, "\"r\":\"", 5);
        else
            w->c.unexpected++;
        break;
    case '3': /* ACK: 43<id>[{"ok":true}] */
        for (j = 2; j < n && j < 22 && p[j] >= '0' && p[j] <= '9'; j++)
            id = id * 10 + (uint64_t)(p[j] - '0');
        if (j == 2) {
            w->c.unexpected++;
            break;
        }
        if (memmem(p + j, n - j, "\"ok\":true", 9)) {
            /* our publisher numbers each room's messages from 1 */
            if (!answered(w, c, id, true, 0))
                w->c.unexpected++;
        } else {
            w->c.errors++;
            if (w->cfg->verbose && w->c.errors <= 5)
                fprintf(stderr, "roomcast-load: worker %u: %.*s\n", w->wid,
                        (int)(n > 300 ? 300 : n), p);
            (void)answered(w, c, id, false, 0);
        }
        break;
    case '4': /* CONNECT_ERROR: the middleware refused the token */
        if (c->state == ST_WELCOME) {
            w->c.http_401++;
            if (w->cfg->verbose && w->c.fail_http < 3)
                fprintf(stderr, "roomcast-load: connect refused: %.*s\n",
                        (int)(n > 300 ? 300 : n), p);
            conn_fail(w, c, F_HTTP);
        } else {
            w->c.errors++;
        }
        break;
    default: /* DISCONNECT and the binary types: not expected */
        w->c.unexpected++;
        break;
    }
}

static void on_text(worker_t *w, conn_t *c, const char *p, size_t n,
                    uint64_t now)
{
    if (w->cfg->proto == LT_PROTO_SOCKETIO) {
        on_sio_text(w, c, p, n, now);
        return;
    }
    if (n < 9 || memcmp(p, "{\"op\":\"", 7) != 0) {
        w->c.unexpected++;
        return;
    }
    switch (p[7]) {
    case 'm':
        on_msg(w, c, p, n, now, "\"room\":\"", 8);
        break;
    case 'o':
        on_ok(w, c, p, n);
        break;
    case 'e':
        on_error(w, c, p, n);
        break;
    case 'w':
        if (c->state == ST_WELCOME && c->resume) {
            on_resumed(w, c, p, n, now);
        } else if (c->state == ST_WELCOME) {
            established(w, c, now);
        }
        break;
    case 'r':
        w->c.reconnects++;
        if (w->cfg->mode == LT_DRAIN && !c->resume)
            on_reconnect(w, c, p, n, now);
        break;
    default:
        w->c.unexpected++;
    }
}

/* Consume what buf holds for c. Returns the bytes used (the rest is a
 * partial frame or response head to keep); c may be FREE afterwards. */
static size_t conn_process(worker_t *w, conn_t *c, uint8_t *buf, size_t len,
                           uint64_t now)
{
    size_t pos = 0;

    if (c->state == ST_UPGRADING) {
        char key[LT_WS_KEY_LEN + 1], accept[LT_WS_ACCEPT_LEN + 1];
        int status;
        bool acc;
        ssize_t h;

        if (!memmem(buf, len, "\r\n\r\n", 4)) {
            if (len > LT_WS_MAX_HTTP)
                conn_fail(w, c, F_PROTO);
            return 0;
        }
        lt_ws_key(conn_idx(w, c), c->gen, key, accept);
        h = lt_ws_response((const char *)buf, len, accept, &status, &acc);
        if (h <= 0) {
            conn_fail(w, c, F_PROTO);
            return len;
        }
        if (status != 101) {
            if (status == 401)
                w->c.http_401++;
            else
                w->c.http_other++;
            if (w->cfg->verbose && w->c.fail_http < 3)
                fprintf(stderr, "roomcast-load: upgrade refused: %.*s\n",
                        (int)(len > 400 ? 400 : len), (const char *)buf);
            conn_fail(w, c, F_HTTP);
            return len;
        }
        if (!acc) {
            conn_fail(w, c, F_PROTO);
            return len;
        }
        c->state = ST_WELCOME;
        pos = (size_t)h;
    }
    while (pos < len) {
        lt_ws_frame_t f;
        ssize_t r = lt_ws_parse(buf + pos, len - pos, MAX_FRAME, &f);

        if (r == 0)
            break;
        if (r < 0) {
            conn_lost(w, c, 1002);
            return len;
        }
        pos += (size_t)r;
        switch (f.opcode) {
        case LT_WS_TEXT:
            on_text(w, c, (const char *)f.payload, (size_t)f.len, now);
            break;
        case LT_WS_PING: {
            uint8_t pong[LT_WS_MAX_HDR + 125];
            size_t pl = f.len > 125 ? 125 : (size_t)f.len;

            w->c.pings++;
            conn_send(w, c, pong,
                      lt_ws_build(pong, LT_WS_PONG, f.payload, pl, rnd(w)));
            break;
        }
        case LT_WS_CLOSE: {
            uint32_t code = f.len >= 2
                                ? ((uint32_t)f.payload[0] << 8) | f.payload[1]
                                : 1005;
            if (c->state == ST_CLOSING) {
                w->c.cycles_done++;
                conn_release(w, c);
            } else {
                conn_lost(w, c, code);
            }
            return len;
        }
        default:
            break; /* binary, continuation, pong: not ours */
        }
        if (c->state == ST_FREE || c->state == ST_MOVING)
            return len;
    }
    return pos;
}

static void conn_readable(worker_t *w, conn_t *c)
{
    int iter;

    for (iter = 0; iter < READS_PER_EVENT; iter++) {
        size_t have = c->rlen, room = READ_BUF - have, used, left;
        ssize_t r;

        if (have)
            memcpy(w->buf, c->rbuf, have);
        r = io_recv(c, w->buf + have, room);
        if (r == 0) {
            if (c->state == ST_CLOSING) {
                w->c.cycles_done++;
                conn_release(w, c);
            } else {
                conn_lost(w, c, 1006);
            }
            return;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                conn_lost(w, c, 1006);
            return;
        }
        w->c.bytes_in += (uint64_t)r;
        used = conn_process(w, c, w->buf, have + (size_t)r, lt_now_ns());
        if (c->state == ST_FREE || c->state == ST_MOVING)
            return;
        left = have + (size_t)r - used;
        if (left == 0) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rlen = 0;
        } else if (left > MAX_LEFTOVER) {
            conn_lost(w, c, 1009);
            return;
        } else {
            uint8_t *nb = realloc(c->rbuf, left);

            if (!nb) {
                conn_lost(w, c, 1006);
                return;
            }
            memcpy(nb, w->buf + used, left);
            c->rbuf = nb;
            c->rlen = (uint32_t)left;
        }
        /* drained; level-triggered epoll will call again (TLS hands out
         * one record per read: keep reading) */
        if ((size_t)r < room && !c->ssl)
            return;
    }
}

static void conn_start(worker_t *w, uint32_t local, uint64_t now)
{
    conn_t *c = &w->conns[local];
    uint32_t i = w->first + local;
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = local};
    int one = 1, fd;

    const struct sockaddr_in *dst =
        c->resume ? &w->resume_dst : &w->dst[i % w->cfg->ntargets];

    c->gen++;
    c->t_start = now;
    c->state = ST_CONNECTING;
    c->fd = -1;
    w->pending_hs++;
    if (!c->resume) {
        w->opened++;
        w->c.attempted++;
    }
    if (w->cfg->mode == LT_CHURN)
        w->c.cycles_started++;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(w, c, F_CONNECT);
        return;
    }
    c->fd = fd;
    /* Defer the port choice to connect(): ports are then unique per
     * 4-tuple, not per source address. */
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(lt_src_addr(i, w->cfg->src_addrs));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 &&
         errno != EINPROGRESS) ||
        epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (w->cfg->verbose && w->c.fail_connect < 3)
            fprintf(stderr, "roomcast-load: connect: %s\n", strerror(errno));
        conn_fail(w, c, F_CONNECT);
    }
}

static void conn_upgrade(worker_t *w, conn_t *c);

/* --tls: one step of the handshake; the upgrade request once it is done. */
static void conn_tls_step(worker_t *w, conn_t *c)
{
    int r = SSL_do_handshake(c->ssl);

    if (r == 1) {
        conn_upgrade(w, c);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        ep_mod(w, c, EPOLLIN);
        return;
    case SSL_ERROR_WANT_WRITE:
        ep_mod(w, c, EPOLLOUT);
        return;
    default:
        if (w->cfg->verbose && w->c.fail_connect < 3) {
            char e[160];

            ERR_error_string_n(ERR_peek_error(), e, sizeof(e));
            fprintf(stderr, "roomcast-load: tls: %s\n", e);
        }
        ERR_clear_error();
        conn_fail(w, c, F_CONNECT);
    }
}

static void conn_connected(worker_t *w, conn_t *c)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
        if (w->cfg->verbose && w->c.fail_connect < 3)
            fprintf(stderr, "roomcast-load: connect: %s\n", strerror(soerr));
        conn_fail(w, c, F_CONNECT);
        return;
    }
    if (!w->tls) {
        conn_upgrade(w, c);
        return;
    }
    c->ssl = SSL_new(w->tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_fail(w, c, F_CONNECT);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = ST_TLS;
    conn_tls_step(w, c);
}

static void conn_upgrade(worker_t *w, conn_t *c)
{
    const lt_cfg_t *cfg = w->cfg;
    uint32_t i = conn_idx(w, c);
    char key[LT_WS_KEY_LEN + 1], sub[48], pat[160], err[128], req[4096];
    char path[2048];
    const char *rooms[1] = {pat};
    const lt_target_t *tg =
        c->resume ? &cfg->resume_target : &cfg->targets[i % cfg->ntargets];
    char *tok;
    int n;

    snprintf(sub, sizeof(sub), "load-%u", i);
    snprintf(pat, sizeof(pat), "%s*", cfg->room_prefix);
    tok = rc_auth_mint(cfg->alg, (const unsigned char *)cfg->secret,
                       strlen(cfg->secret), sub, rooms, 1, NULL, 0,
                       (int64_t)time(NULL), cfg->ttl_s, err, sizeof(err));
    if (!tok) {
        fprintf(stderr, "roomcast-load: mint: %s\n", err);
        conn_fail(w, c, F_PROTO);
        return;
    }
    lt_ws_key(i, c->gen, key, NULL);
    if (cfg->proto == LT_PROTO_SOCKETIO) {
        /* The token goes in the handshake query: the JWT alphabet
         * (base64url and '.') needs no escaping. */
        n = snprintf(path, sizeof(path),
                     "%s?EIO=4&transport=websocket&token=%s", cfg->path, tok);
        n = n > 0 && (size_t)n < sizeof(path)
                ? lt_ws_request(req, sizeof(req), tg->host, tg->port, path, key,
                                NULL, NULL)
                : -1;
    } else {
        if (c->resume)
            snprintf(path, sizeof(path), "%s?resume=%s", cfg->path, c->resume);
        else
            snprintf(path, sizeof(path), "%s", cfg->path);
        n = lt_ws_request(req, sizeof(req), tg->host, tg->port, path, key,
                          "roomcast.v1", tok);
    }
    free(tok);
    if (n < 0) {
        conn_fail(w, c, F_PROTO);
        return;
    }
    c->state = ST_UPGRADING;
    ep_mod(w, c, EPOLLIN);
    conn_send(w, c, req, (size_t)n);
}

static void on_event(worker_t *w, uint32_t local, uint32_t events)
{
    conn_t *c = &w->conns[local];

    if (c->state == ST_FREE || c->state == ST_MOVING)
        return;
    if (c->state == ST_CONNECTING) {
        conn_connected(w, c);
        return;
    }
    if (c->state == ST_TLS) {
        conn_tls_step(w, c);
        return;
    }
    if (events & EPOLLOUT && c->wlen)
        conn_flush(w, c);
    if (c->state != ST_FREE && c->state != ST_MOVING &&
        (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        conn_readable(w, c);
}

static void send_joined(worker_t *w)
{
    lt_joined_report_t jr = {
        .joins_ok = w->c.joins_ok,
        .joins_err = w->c.joins_err,
        .joins_timeout = w->pending_replies,
        .clients_joined = w->c.clients_joined,
        .rooms = w->R,
    };

    w->c.joins_timeout = w->pending_replies;
    if (lt_ipc_send2(w->rep_fd, LT_IPC_JOINED, &jr, sizeof(jr), w->members,
                     (size_t)w->R * sizeof(uint32_t)) != RC_OK) {
        w->done = 1;
        w->rc = 2;
    }
    w->phase = PH_IDLE;
}

static void send_final(worker_t *w)
{
    char *blob = malloc(sizeof(lt_counters_t) + sizeof(lt_hist_t));

    if (w->measuring == 1) { /* no MEASURE_END came: end it here */
        w->c.cpu_measure_ns = lt_cpu_self_ns() - w->cpu0;
        w->c.wall_measure_ns = lt_now_ns() - w->wall0;
    }
    w->c.cpu_total_ns = lt_cpu_self_ns();
    if (!blob) {
        w->done = 1;
        w->rc = 2;
        return;
    }
    memcpy(blob, &w->c, sizeof(lt_counters_t));
    memcpy(blob + sizeof(lt_counters_t), &w->hist, sizeof(lt_hist_t));
    report(w, LT_IPC_FINAL, blob, sizeof(lt_counters_t) + sizeof(lt_hist_t));
    free(blob);
}

static void close_all(worker_t *w, int polite)
{
    uint32_t j;

    for (j = 0; j < w->count; j++) {
        conn_t *c = &w->conns[j];

        if (c->state == ST_FREE)
            continue;
        if (c->state == ST_MOVING) {
            c->state = ST_FREE;
            continue;
        }
        if (polite && c->state >= ST_OPEN && c->wlen == 0) {
            uint8_t p[2] = {0x03, 0xe8}, f[16]; /* 1000 */
            size_t n = lt_ws_build(f, LT_WS_CLOSE, p, 2, rnd(w));

            (void)io_send(c, f, n);
        }
        if (w->cfg->mode != LT_CHURN) {
            SSL_free(c->ssl);
            c->ssl = NULL;
            close(c->fd);
            c->fd = -1;
            c->state = ST_FREE;
        } else {
            w->c.cycles_aborted++;
            c->state = ST_OPEN; /* not a handshake or a failure */
            conn_release(w, c);
        }
    }
}

static void on_cmd(worker_t *w)
{
    uint32_t cmd[16];
    ssize_t r = read(w->cmd_fd, cmd, sizeof(cmd));
    ssize_t i;

    if (r == 0) { /* the parent is gone */
        w->done = 1;
        w->rc = 2;
        return;
    }
    if (r < 0)
        return;
    for (i = 0; i < r / (ssize_t)sizeof(uint32_t); i++) {
        switch (cmd[i]) {
        case LT_CMD_JOIN:
            w->phase = PH_JOIN;
            w->join_cursor = 0;
            w->pending_replies = 0;
            w->join_t0 = lt_now_ns();
            break;
        case LT_CMD_MEASURE:
            w->measuring = 1;
            w->cpu0 = lt_cpu_self_ns();
            w->wall0 = lt_now_ns();
            w->next_progress = w->wall0 + PROGRESS_NS;
            if (w->win) {
                lt_hist_init(w->win);
                w->next_window =
                    w->wall0 + (uint64_t)(w->cfg->sample_interval * 1e9);
            }
            break;
        case LT_CMD_MEASURE_END:
            if (w->measuring == 1) {
                w->c.cpu_measure_ns = lt_cpu_self_ns() - w->cpu0;
                w->c.wall_measure_ns = lt_now_ns() - w->wall0;
                w->measuring = 2;
            }
            break;
        case LT_CMD_MARK:
            w->mark_ns = lt_now_ns();
            break;
        case LT_CMD_CLOSE:
            send_final(w);
            close_all(w, 1);
            w->done = 1;
            break;
        default:
            break;
        }
    }
}

static void tick(worker_t *w, uint64_t now)
{
    const lt_cfg_t *cfg = w->cfg;
    double rate_w = cfg->ramp / cfg->workers;
    uint64_t due = (uint64_t)(rate_w * lt_ns_s(now - w->t0)) + 1;
    uint32_t opens = 0;

    switch (w->phase) {
    case PH_RAMP:
        while (w->next_local < w->count && w->opened < due &&
               opens++ < OPENS_PER_TICK)
            conn_start(w, w->next_local++, now);
        if (w->next_local == w->count && w->pending_hs == 0) {
            lt_ramp_report_t rr = {
                w->c.attempted,    w->c.established, w->c.failed,
                w->c.fail_connect, w->c.fail_http,   w->c.fail_timeout,
                w->c.fail_proto,   w->c.http_401,    w->c.http_other,
                w->last_est,
            };
            report(w, LT_IPC_RAMP_DONE, &rr, sizeof(rr));
            w->phase = PH_IDLE;
        }
        break;
    case PH_JOIN: {
        uint32_t sent = 0;

        while (w->join_cursor < w->count && sent < JOINS_PER_TICK) {
            conn_t *c = &w->conns[w->join_cursor++];

            if (c->state == ST_OPEN) {
                send_joins(w, c);
                sent++;
            }
        }
        if (w->join_cursor == w->count &&
            (w->pending_replies == 0 ||
             now - w->join_t0 > (uint64_t)(cfg->join_timeout * 1e9)))
            send_joined(w);
        break;
    }
    case PH_CHURN:
        if (now >= w->churn_end) {
            w->phase = PH_CHURN_DRAIN;
            w->drain_end = now + (uint64_t)(cfg->drain * 1e9);
            break;
        }
        while (w->nfree > 0 && w->opened < due && opens++ < OPENS_PER_TICK)
            conn_start(w, w->freelist[--w->nfree], now);
        break;
    case PH_CHURN_DRAIN:
        if (w->nfree == w->count || now >= w->drain_end) {
            close_all(w, 0);
            w->c.cpu_measure_ns = lt_cpu_self_ns() - w->cpu0;
            w->c.wall_measure_ns = now - w->wall0;
            w->measuring = 2;
            send_final(w);
            w->done = 1;
        }
        break;
    case PH_IDLE:
        break;
    }

    if (w->moving > 0 && now >= w->next_move_scan) {
        uint32_t j, started = 0;

        w->next_move_scan = now + 2000000; /* every 2 ms */
        for (j = 0; j < w->count && started < OPENS_PER_TICK; j++) {
            conn_t *c = &w->conns[j];

            if (c->state == ST_MOVING && now >= c->move_at) {
                w->moving--;
                started++;
                conn_start(w, j, now);
            }
        }
    }

    if (w->measuring == 1 && w->win && now >= w->next_window) {
        report(w, LT_IPC_WINDOW, w->win, sizeof(*w->win));
        lt_hist_init(w->win);
        w->next_window = now + (uint64_t)(w->cfg->sample_interval * 1e9);
    }
    if (w->measuring == 1 && now >= w->next_progress &&
        w->c.deliveries != w->last_progress) {
        lt_progress_t pr = {w->c.deliveries};

        report(w, LT_IPC_PROGRESS, &pr, sizeof(pr));
        w->last_progress = w->c.deliveries;
        w->next_progress = now + PROGRESS_NS;
    }

    if (now >= w->next_sweep) {
        uint64_t hs = (uint64_t)(cfg->connect_timeout * 1e9);
        uint64_t cyc = hs + (uint64_t)(cfg->join_timeout * 1e9);
        uint32_t j;

        w->next_sweep = now + SWEEP_NS;
        if (w->pending_hs > 0 || cfg->mode == LT_CHURN) {
            for (j = 0; j < w->count; j++) {
                conn_t *c = &w->conns[j];

                if (in_handshake(c) && now - c->t_start > hs)
                    conn_fail(w, c, F_TIMEOUT);
                else if (cfg->mode == LT_CHURN && c->state != ST_FREE &&
                         now - c->t_start > cyc)
                    conn_fail(w, c, F_TIMEOUT);
            }
        }
    }
}

/* How long epoll may sleep: until the next connection is due while
 * ramping, else a short beat for progress and timeouts. */
static int wait_ms(const worker_t *w, uint64_t now)
{
    double rate_w = w->cfg->ramp / w->cfg->workers;
    int ms = 20;

    if ((w->phase == PH_RAMP && w->next_local < w->count) ||
        (w->phase == PH_CHURN && w->nfree > 0)) {
        double next_s = (double)w->opened / rate_w;
        double in_s = next_s - lt_ns_s(now - w->t0);

        ms = in_s <= 0 ? 0 : (int)(in_s * 1000) + 1;
        if (ms > 20)
            ms = 20;
    } else if (w->phase == PH_JOIN && w->join_cursor < w->count) {
        ms = 0;
    }
    if (w->moving > 0 && ms > 2)
        ms = 2;
    return ms;
}

int lt_worker_run(const lt_cfg_t *cfg, uint32_t wid, uint32_t first,
                  uint32_t count, int cmd_fd, int rep_fd, uint64_t deadline_ns)
{
    worker_t *w = calloc(1, sizeof(*w));
    struct epoll_event ev, *evs = NULL;
    uint32_t j;
    int rc;

    /* Die with the parent: a killed run must not leave clients behind. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    if (!w)
        return 2;
    w->cfg = cfg;
    w->wid = wid;
    w->first = first;
    w->count = count;
    w->M = cfg->per_client;
    w->R = cfg->rooms;
    w->cmd_fd = cmd_fd;
    w->rep_fd = rep_fd;
    w->pfxlen = strlen(cfg->room_prefix);
    w->rng = 0x9e3779b9u ^ (wid * 7919u + 1);
    w->deadline = deadline_ns;
    for (j = 0; j < cfg->ntargets; j++) {
        w->dst[j].sin_family = AF_INET;
        w->dst[j].sin_port = htons(cfg->targets[j].port);
        inet_pton(AF_INET, cfg->targets[j].host, &w->dst[j].sin_addr);
    }
    w->resume_dst.sin_family = AF_INET;
    w->resume_dst.sin_port = htons(cfg->resume_target.port);
    if (cfg->resume_target.port)
        inet_pton(AF_INET, cfg->resume_target.host, &w->resume_dst.sin_addr);
    lt_hist_init(&w->hist);
    if (cfg->sample_interval > 0) {
        w->win = malloc(sizeof(*w->win));
        if (w->win)
            lt_hist_init(w->win);
    }
    w->conns = calloc(count ? count : 1, sizeof(conn_t));
    w->last_seq = malloc((size_t)(count ? count : 1) * w->M * sizeof(uint64_t));
    w->members = calloc(w->R, sizeof(uint32_t));
    w->buf = malloc(READ_BUF);
    w->scratch_cap = (size_t)w->M * 160 + 64;
    w->scratch = malloc(w->scratch_cap);
    w->freelist = malloc((size_t)(count ? count : 1) * sizeof(uint32_t));
    evs = malloc(MAX_EVENTS * sizeof(*evs));
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!w->conns || !w->last_seq || !w->members || !w->buf || !w->scratch ||
        !w->freelist || !evs || w->ep < 0) {
        fprintf(stderr, "roomcast-load: worker %u: setup failed\n", wid);
        return 2;
    }
    for (j = 0; j < count; j++)
        w->conns[j].fd = -1;
    if (cfg->tls) {
        w->tls = SSL_CTX_new(TLS_client_method());
        if (!w->tls) {
            fprintf(stderr, "roomcast-load: worker %u: no TLS context\n", wid);
            return 2;
        }
        SSL_CTX_set_verify(w->tls, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(w->tls, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_mode(w->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
    }
    for (j = 0; j < count * w->M; j++)
        w->last_seq[j] = SEQ_NONE;
    ev.events = EPOLLIN;
    ev.data.u64 = CMD_TAG;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, cmd_fd, &ev) != 0)
        return 2;

    w->t0 = lt_now_ns();
    if (cfg->mode == LT_CHURN) {
        for (j = 0; j < count; j++)
            w->freelist[j] = count - 1 - j;
        w->nfree = count;
        w->phase = PH_CHURN;
        w->churn_end = w->t0 + (uint64_t)(cfg->duration * 1e9);
        w->measuring = 1;
        w->cpu0 = lt_cpu_self_ns();
        w->wall0 = w->t0;
        w->next_progress = w->t0 + PROGRESS_NS;
    } else {
        w->phase = PH_RAMP;
    }

    while (!w->done) {
        uint64_t now = lt_now_ns();
        int n, e;

        if (now >= w->deadline) {
            w->rc = 3;
            break;
        }
        tick(w, now);
        if (w->done)
            break;
        n = epoll_wait(w->ep, evs, MAX_EVENTS, wait_ms(w, lt_now_ns()));
        if (n < 0 && errno != EINTR)
            break;
        for (e = 0; e < n && !w->done; e++) {
            if (evs[e].data.u64 == CMD_TAG)
                on_cmd(w);
            else
                on_event(w, (uint32_t)evs[e].data.u64, evs[e].events);
        }
    }
    rc = w->rc;
    /* The process exits next: the kernel reclaims sockets and memory. */
    return rc;
}

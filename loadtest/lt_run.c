/* loadtest/lt_run.c: the parent process of a roomcast-load run against a
 * gateway. It forks the client workers, drives their phases (connect ramp
 * -> join -> settle -> measure -> drain -> close), runs the publisher on
 * its own epoll loop, samples the gateway through /proc, merges the
 * workers' counters and histograms, and prints the report.
 * Every wait is bounded by the run's global deadline.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loadtest/lt_hist.h"
#include "loadtest/lt_json.h"
#include "loadtest/lt_pub.h"
#include "loadtest/lt_worker.h"

#define PUB_TAG (UINT64_MAX - 1)
#define REC_MAX (64u * 1024 * 1024) /* bytes of one worker record */
#define BC_SLOTS 64
#define MAX_SERIES 8192
#define PUB_BATCH 20000 /* publishes per loop turn, at most */
#define POLL_MS 5
#define MIN_SAT_NS 200000000 /* shorter measure phases say nothing of CPU */

typedef struct wk {
    pid_t pid;
    int cmd_fd, rep_fd;
    uint8_t *in;
    size_t inlen, incap;
    bool ramp_done, joined, final, eof;
    lt_ramp_report_t ramp;
    lt_joined_report_t jr;
    uint32_t room0; /* its clients that joined room 0 */
    uint64_t deliveries;
    lt_counters_t fin;
    lt_hist_t *hist;
} wk_t;

typedef struct bc {
    uint64_t seq;
    uint32_t reports;
    uint64_t count, min, max;
} bc_t;

typedef struct sample {
    lt_proc_sample_t g;
    uint64_t deliveries;
    /* delivery latency over the workers' windows merged since the last
     * sample (ns; count 0: none arrived) */
    uint64_t lat_count, lat_p50, lat_p99, lat_max;
} sample_t;

typedef struct run {
    const lt_cfg_t *cfg;
    int ep;
    uint32_t K;
    wk_t *w;
    lt_pub_t *pub;
    uint32_t pub_ev;
    bool pub_reg;
    uint64_t *members; /* R: joined clients per room, all workers */
    uint64_t *acked;   /* R: acknowledged publishes per room */
    uint64_t last_ack_seq, acks;
    bc_t bc[BC_SLOTS];
    uint64_t deadline;
    bool timed_out;
    sample_t *series;
    size_t nseries;
    lt_hist_t *win; /* LT_IPC_WINDOW records merged since the last sample */
    uint64_t next_sample, t_measure0;
    int sampling;
    char *pad;
    size_t padlen;
    uint32_t frame_est;      /* estimated bytes of one delivered msg frame */
    uint64_t bc_acks_before; /* broadcast: acks before this message */
    uint32_t bc_expect;      /* broadcast: workers with members */
    const volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM (main) */
    /* drain: when SIGTERM went to cfg->term_pid, when it was seen gone */
    uint64_t t_term, t_term_exit;
} run_t;

/* drain: is pid gone (no /proc entry, or a zombie)? */
static bool proc_gone(int pid)
{
    char path[64], buf[256], *rp;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return true;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

static void send_cmd(run_t *r, uint32_t cmd)
{
    uint32_t k;

    for (k = 0; k < r->K; k++) {
        if (!r->w[k].eof && write(r->w[k].cmd_fd, &cmd, sizeof(cmd)) < 0)
            r->w[k].eof = true;
    }
}

static void on_record(run_t *r, wk_t *w, uint32_t type, const uint8_t *p,
                      size_t len)
{
    switch (type) {
    case LT_IPC_RAMP_DONE:
        if (len == sizeof(w->ramp)) {
            memcpy(&w->ramp, p, len);
            w->ramp_done = true;
        }
        break;
    case LT_IPC_JOINED: {
        uint32_t i, *m;

        if (len < sizeof(w->jr))
            break;
        memcpy(&w->jr, p, sizeof(w->jr));
        if (w->jr.rooms != r->cfg->rooms ||
            len != sizeof(w->jr) + (size_t)w->jr.rooms * sizeof(uint32_t))
            break;
        m = malloc((size_t)w->jr.rooms * sizeof(uint32_t));
        if (!m)
            break;
        memcpy(m, p + sizeof(w->jr), (size_t)w->jr.rooms * sizeof(uint32_t));
        for (i = 0; i < w->jr.rooms; i++)
            r->members[i] += m[i];
        w->room0 = m[0];
        free(m);
        w->joined = true;
        break;
    }
    case LT_IPC_PROGRESS:
        if (len == sizeof(lt_progress_t)) {
            lt_progress_t pr;
            memcpy(&pr, p, len);
            w->deliveries = pr.deliveries;
        }
        break;
    case LT_IPC_BCAST:
        if (len == sizeof(lt_bcast_report_t)) {
            lt_bcast_report_t br;
            bc_t *b;

            memcpy(&br, p, len);
            b = &r->bc[br.seq % BC_SLOTS];
            if (b->seq != br.seq) {
                memset(b, 0, sizeof(*b));
                b->seq = br.seq;
                b->min = UINT64_MAX;
            }
            b->reports++;
            b->count += br.count;
            if (br.min_ns < b->min)
                b->min = br.min_ns;
            if (br.max_ns > b->max)
                b->max = br.max_ns;
        }
        break;
    case LT_IPC_WINDOW:
        if (len == sizeof(lt_hist_t) && r->win) {
            lt_hist_t *h = malloc(sizeof(*h));
            if (h) {
                memcpy(h, p, len);
                lt_hist_merge(r->win, h);
                free(h);
            }
        }
        break;
    case LT_IPC_FINAL:
        if (len == sizeof(lt_counters_t) + sizeof(lt_hist_t)) {
            memcpy(&w->fin, p, sizeof(lt_counters_t));
            memcpy(w->hist, p + sizeof(lt_counters_t), sizeof(lt_hist_t));
            w->deliveries = w->fin.deliveries;
            w->final = true;
        }
        break;
    default:
        break;
    }
}

static void wk_read(run_t *r, wk_t *w)
{
    for (;;) {
        size_t off = 0;
        ssize_t n;

        if (w->incap - w->inlen < 65536) {
            size_t cap = w->incap ? w->incap * 2 : 262144;
            uint8_t *nb = cap <= REC_MAX ? realloc(w->in, cap) : NULL;

            if (!nb) {
                w->eof = true; /* a record over its bound: give up on it */
                return;
            }
            w->in = nb;
            w->incap = cap;
        }
        n = read(w->rep_fd, w->in + w->inlen, w->incap - w->inlen);
        if (n == 0) {
            w->eof = true;
            (void)epoll_ctl(r->ep, EPOLL_CTL_DEL, w->rep_fd, NULL);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                w->eof = true;
                (void)epoll_ctl(r->ep, EPOLL_CTL_DEL, w->rep_fd, NULL);
            }
            return;
        }
        w->inlen += (size_t)n;
        while (w->inlen - off >= sizeof(lt_ipc_hdr_t)) {
            lt_ipc_hdr_t h;

            memcpy(&h, w->in + off, sizeof(h));
            if (w->inlen - off - sizeof(h) < h.len)
                break;
            on_record(r, w, h.type, w->in + off + sizeof(h), h.len);
            off += sizeof(h) + h.len;
        }
        memmove(w->in, w->in + off, w->inlen - off);
        w->inlen -= off;
    }
}

static void pub_sync(run_t *r)
{
    struct epoll_event ev;
    int fd;

    if (!r->pub)
        return;
    fd = r->pub->ops->fd(r->pub);
    if (fd < 0)
        return; /* closed: the kernel took it out of the set */
    ev.events = r->pub->ops->events(r->pub);
    ev.data.u64 = PUB_TAG;
    if (!r->pub_reg) {
        if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
            r->pub_reg = true;
            r->pub_ev = ev.events;
        }
    } else if (ev.events != r->pub_ev) {
        (void)epoll_ctl(r->ep, EPOLL_CTL_MOD, fd, &ev);
        r->pub_ev = ev.events;
    }
}

static void take_sample(run_t *r, uint64_t now)
{
    sample_t *s;
    uint32_t k;

    if (r->nseries >= MAX_SERIES)
        return;
    s = &r->series[r->nseries++];
    lt_proc_sample_sum(r->cfg->gateway_pids, r->cfg->ngateway_pids, true,
                       &s->g);
    s->deliveries = 0;
    for (k = 0; k < r->K; k++)
        s->deliveries += r->w[k].deliveries;
    if (r->win) {
        s->lat_count = r->win->count;
        s->lat_p50 = lt_hist_quantile(r->win, 0.50);
        s->lat_p99 = lt_hist_quantile(r->win, 0.99);
        s->lat_max = r->win->count ? r->win->max : 0;
        lt_hist_init(r->win);
    }
    r->next_sample = now + (uint64_t)(r->cfg->sample_interval * 1e9);
}

static void poll_once(run_t *r, int ms)
{
    struct epoll_event evs[LT_MAX_WORKERS + 2];
    int n, i;
    uint64_t now = lt_now_ns();

    if (r->sampling && r->cfg->sample_interval > 0 && now >= r->next_sample)
        take_sample(r, now);
    if (r->t_term && !r->t_term_exit && proc_gone(r->cfg->term_pid))
        r->t_term_exit = lt_now_ns();
    pub_sync(r);
    n = epoll_wait(r->ep, evs, LT_MAX_WORKERS + 2, ms);
    for (i = 0; i < n; i++) {
        if (evs[i].data.u64 == PUB_TAG) {
            if (r->pub->ops->io(r->pub, evs[i].events) != RC_OK)
                r->pub_reg = false;
        } else if (evs[i].data.u64 < r->K) {
            wk_read(r, &r->w[evs[i].data.u64]);
        }
    }
    pub_sync(r);
}

/* Bounded wait: true once cond holds; false at until_ns, the deadline or a
 * signal. */
static bool wait_for(run_t *r, bool (*cond)(const run_t *), uint64_t until_ns)
{
    for (;;) {
        uint64_t now = lt_now_ns();

        if (cond && cond(r))
            return true;
        if (*r->stop || now >= r->deadline) {
            r->timed_out = true;
            return false;
        }
        if (until_ns && now >= until_ns)
            return cond == NULL;
        poll_once(r, POLL_MS);
    }
}

static bool all_ramp_done(const run_t *r)
{
    uint32_t k;

    for (k = 0; k < r->K; k++)
        if (!r->w[k].ramp_done && !r->w[k].eof)
            return false;
    return true;
}

static bool all_joined(const run_t *r)
{
    uint32_t k;

    for (k = 0; k < r->K; k++)
        if (!r->w[k].joined && !r->w[k].eof)
            return false;
    return true;
}

static bool all_final(const run_t *r)
{
    uint32_t k;

    for (k = 0; k < r->K; k++)
        if (!r->w[k].final && !r->w[k].eof)
            return false;
    return true;
}

static bool pub_ready(const run_t *r)
{
    return r->pub->ops->ready(r->pub) || r->pub->ops->fd(r->pub) < 0;
}

static uint64_t expected_deliveries(const run_t *r)
{
    uint64_t e = 0;
    uint32_t i;

    for (i = 0; i < r->cfg->rooms; i++)
        e += r->acked[i] * r->members[i];
    return e;
}

static uint64_t progress(const run_t *r)
{
    uint64_t d = 0;
    uint32_t k;

    for (k = 0; k < r->K; k++)
        d += r->w[k].deliveries;
    return d;
}

static bool drained(const run_t *r)
{
    if (r->t_term && !r->t_term_exit)
        return false; /* drain: also wait for the drained gateway to exit */
    return (!r->pub || r->pub->ops->in_flight(r->pub) == 0 ||
            r->pub->ops->fd(r->pub) < 0) &&
           progress(r) >= expected_deliveries(r);
}

static void on_ack(void *ud, uint32_t room, uint64_t seq, bool ok)
{
    run_t *r = ud;

    if (!ok)
        return;
    if (room < r->cfg->rooms)
        r->acked[room]++;
    r->last_ack_seq = seq;
    r->acks++;
}

static unsigned digits(uint64_t v)
{
    unsigned d = 1;

    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Pick the pad so a delivered msg frame is about cfg->size bytes:
 *   roomcast {"op":"msg","room":"<room>","seq":<seq>,"data":{"t":<t>,
 *            "pad":"<pad>"}}
 *   socketio 42["m",{"r":"<room>","seq":<seq>,"t":<t>,"pad":"<pad>"}] */
static void plan_pad(run_t *r)
{
    const lt_cfg_t *cfg = r->cfg;
    uint64_t per_room = (uint64_t)(cfg->rate * cfg->duration / cfg->rooms);
    size_t room = strlen(cfg->room_prefix) + digits(cfg->rooms - 1);
    size_t seq = digits(per_room ? per_room : 1), t = digits(lt_now_ns());
    size_t fixed = cfg->proto == LT_PROTO_SOCKETIO
                       ? 12 + room + 8 + seq + 5 + t + 8 + 3
                       : 20 + room + 8 + seq + 8 + 5 + t + 8 + 2 + 1;
    size_t hdr = 2, want = cfg->size;

    if (want > 125 + 2)
        hdr = want > 65535 + 4 ? 10 : 4;
    r->padlen = want > hdr + fixed ? want - hdr - fixed : 0;
    r->frame_est = (uint32_t)(hdr + fixed + r->padlen);
    r->pad = malloc(r->padlen + 1);
    if (r->pad) {
        memset(r->pad, 'x', r->padlen);
        r->pad[r->padlen] = '\0';
    }
}

static rc_err_t publish_one(run_t *r, uint32_t room)
{
    lt_pub_msg_t m = {lt_now_ns(), r->pad ? r->pad : "",
                      r->pad ? r->padlen : 0};

    return r->pub->ops->publish(r->pub, room, &m);
}

/* Steady rate for duration seconds: a token bucket holding at most 10 ms of
 * publishes (at least 2), so a stall is not followed by a burst. With
 * --burst B, each tick takes B tokens and sends B messages to one room back
 * to back, written together: the rate is still messages/s in total. */
static void publish_steady(run_t *r)
{
    const lt_cfg_t *cfg = r->cfg;
    uint64_t t0 = lt_now_ns(), end = t0 + (uint64_t)(cfg->duration * 1e9);
    uint64_t last = t0;
    /* Hold 10 ms of tokens, and never less than 2: with a cap of 1, every
     * late wake-up (timer slack, ms-granular epoll) would lose a fraction
     * of a token and the achieved rate would fall a few % short. */
    double B = cfg->burst > 1 ? cfg->burst : 1;
    double tokens = B, cap = cfg->rate / 100 > 2 * B ? cfg->rate / 100 : 2 * B;
    uint32_t room = 0, b;

    for (;;) {
        uint64_t now = lt_now_ns();
        uint32_t batch = 0;
        int ms;

        if (now >= end || *r->stop || now >= r->deadline)
            break;
        if (cfg->mode == LT_DRAIN && !r->t_term &&
            now >= t0 + (uint64_t)(cfg->term_after * 1e9)) {
            send_cmd(r, LT_CMD_MARK);
            r->t_term = lt_now_ns();
            if (kill(cfg->term_pid, SIGTERM) != 0)
                fprintf(stderr, "roomcast-load: SIGTERM %d: %s\n",
                        cfg->term_pid, strerror(errno));
            if (cfg->verbose)
                fprintf(stderr, "roomcast-load: SIGTERM sent to %d\n",
                        cfg->term_pid);
        }
        if (r->pub->ops->fd(r->pub) < 0)
            break; /* the publisher died; the report says why */
        tokens += cfg->rate * lt_ns_s(now - last);
        last = now;
        if (tokens > cap)
            tokens = cap;
        while (tokens >= B && batch < PUB_BATCH) {
            for (b = 0; b < (uint32_t)B; b++)
                (void)publish_one(r, room);
            room = room + 1 == cfg->rooms ? 0 : room + 1;
            tokens -= B;
            batch += (uint32_t)B;
        }
        if (batch) {
            (void)r->pub->ops->flush(r->pub);
        }
        /* Round up: sleeping 0 ms until the next token would spin. */
        ms = tokens >= B ? 0 : (int)ceil((B - tokens) / cfg->rate * 1000);
        if (ms > POLL_MS)
            ms = POLL_MS;
        poll_once(r, ms);
    }
}

typedef struct bres {
    uint32_t sent, complete;
    double first_ms[1024], last_ms[1024];
    uint64_t delivered[1024];
    uint32_t n;
} bres_t;

static bool bcast_done_cond(const run_t *r)
{
    const bc_t *b;

    if (r->acks <= r->bc_acks_before)
        return r->pub->ops->fd(r->pub) < 0;
    b = &r->bc[r->last_ack_seq % BC_SLOTS];
    return b->seq == r->last_ack_seq && b->reports >= r->bc_expect;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(const double *v, uint32_t n)
{
    double tmp[1024];

    if (n == 0)
        return NAN;
    memcpy(tmp, v, n * sizeof(double));
    qsort(tmp, n, sizeof(double), cmp_dbl);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* One message at a time to room 0; each waits for every member. */
static void publish_broadcast(run_t *r, bres_t *br)
{
    const lt_cfg_t *cfg = r->cfg;
    uint32_t m, k;

    r->bc_expect = 0;
    for (k = 0; k < r->K; k++)
        if (r->w[k].room0 > 0)
            r->bc_expect++;
    for (m = 0; m < cfg->messages && m < 1024; m++) {
        uint64_t until;
        const bc_t *b;

        if (*r->stop || lt_now_ns() >= r->deadline ||
            r->pub->ops->fd(r->pub) < 0)
            break;
        r->bc_acks_before = r->acks;
        if (publish_one(r, 0) != RC_OK)
            break;
        (void)r->pub->ops->flush(r->pub);
        br->sent++;
        until = lt_now_ns() + (uint64_t)(cfg->msg_timeout * 1e9);
        if (wait_for(r, bcast_done_cond, until))
            br->complete++;
        if (r->acks > r->bc_acks_before) {
            b = &r->bc[r->last_ack_seq % BC_SLOTS];
            if (b->seq == r->last_ack_seq && b->reports > 0) {
                br->first_ms[br->n] = (double)b->min / 1e6;
                br->last_ms[br->n] = (double)b->max / 1e6;
                br->delivered[br->n] = b->count;
                br->n++;
            }
        }
        if (cfg->interval > 0)
            (void)wait_for(r, NULL,
                           lt_now_ns() + (uint64_t)(cfg->interval * 1e9));
    }
}

static void kill_workers(run_t *r)
{
    uint32_t k;

    for (k = 0; k < r->K; k++)
        if (r->w[k].pid > 0)
            kill(r->w[k].pid, SIGKILL);
}

static void reap(run_t *r)
{
    uint32_t k;

    for (k = 0; k < r->K; k++) {
        if (r->w[k].pid > 0) {
            (void)waitpid(r->w[k].pid, NULL, 0);
            r->w[k].pid = 0;
        }
    }
}

static rc_err_t fork_workers(run_t *r)
{
    const lt_cfg_t *cfg = r->cfg;
    uint32_t k, j, first = 0;
    int cmdp[2], repp[2];

    for (k = 0; k < r->K; k++) {
        uint32_t count =
            (uint32_t)(((uint64_t)cfg->n * (k + 1)) / r->K) - first;
        pid_t pid;

        if (pipe2(cmdp, O_CLOEXEC) != 0)
            return RC_EIO;
        if (pipe2(repp, O_CLOEXEC) != 0) {
            close(cmdp[0]);
            close(cmdp[1]);
            return RC_EIO;
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            close(cmdp[0]);
            close(cmdp[1]);
            close(repp[0]);
            close(repp[1]);
            return RC_EIO;
        }
        if (pid == 0) {
            int rc;

            for (j = 0; j < k; j++) {
                close(r->w[j].cmd_fd);
                close(r->w[j].rep_fd);
            }
            close(cmdp[1]);
            close(repp[0]);
            (void)fcntl(cmdp[0], F_SETFL, O_NONBLOCK);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            rc = lt_worker_run(cfg, k, first, count, cmdp[0], repp[1],
                               r->deadline + 5000000000u);
            _exit(rc);
        }
        close(cmdp[0]);
        close(repp[1]);
        (void)fcntl(repp[0], F_SETFL, O_NONBLOCK);
        r->w[k].pid = pid;
        r->w[k].cmd_fd = cmdp[1];
        r->w[k].rep_fd = repp[0];
        first += count;
    }
    return RC_OK;
}

static void json_hist(lt_json_t *j, const char *key, const lt_hist_t *h)
{
    lt_json_obj(j, key);
    lt_json_u64(j, "count", h->count);
    if (h->count) {
        lt_json_dbl(j, "p50", (double)lt_hist_quantile(h, 0.50) / 1e3);
        lt_json_dbl(j, "p90", (double)lt_hist_quantile(h, 0.90) / 1e3);
        lt_json_dbl(j, "p99", (double)lt_hist_quantile(h, 0.99) / 1e3);
        lt_json_dbl(j, "p999", (double)lt_hist_quantile(h, 0.999) / 1e3);
        lt_json_dbl(j, "max", (double)h->max / 1e3);
        lt_json_dbl(j, "min", (double)h->min / 1e3);
        lt_json_dbl(j, "mean", (double)h->sum / (double)h->count / 1e3);
    }
    lt_json_end(j, false);
}

static void json_gw(lt_json_t *j, const char *key, const lt_proc_sample_t *s)
{
    lt_json_obj(j, key);
    lt_json_bool(j, "ok", s->ok);
    lt_json_u64(j, "rss_bytes", s->rss_bytes);
    lt_json_dbl(j, "cpu_s", lt_ns_s(s->cpu_ns));
    if (s->fds)
        lt_json_u64(j, "fds", s->fds);
    lt_json_end(j, false);
}

int lt_run(const lt_cfg_t *cfg, const volatile sig_atomic_t *stop)
{
    run_t *r = calloc(1, sizeof(*r));
    lt_counters_t tot;
    lt_hist_t *hist = malloc(sizeof(lt_hist_t));
    lt_proc_sample_t g_before, g_settled, g_end, g_after;
    uint64_t t_start, t_ramp_end = 0, t_meas0 = 0, t_meas1 = 0, t_pub_end = 0;
    uint64_t host0_t = 0, host0_i = 0, host1_t = 0, host1_i = 0;
    uint64_t cpu_parent0 = 0, cpu_parent1 = 0, last_est = 0;
    lt_pub_stats_t ps = {0};
    bres_t *br = calloc(1, sizeof(*br));
    bool need_pub =
        cfg->mode == LT_BROADCAST ||
        (cfg->rate > 0 && cfg->mode != LT_IDLE && cfg->mode != LT_CHURN);
    char err[256] = "";
    lt_json_t j;
    uint32_t k;
    int rc = 0;
    bool drained_ok = false;

    if (!r || !hist || !br)
        return 1;
    r->cfg = cfg;
    r->K = cfg->workers;
    r->w = calloc(r->K, sizeof(wk_t));
    r->members = calloc(cfg->rooms, sizeof(uint64_t));
    r->acked = calloc(cfg->rooms, sizeof(uint64_t));
    r->series = calloc(MAX_SERIES, sizeof(sample_t));
    if (cfg->sample_interval > 0) {
        r->win = malloc(sizeof(*r->win));
        if (r->win)
            lt_hist_init(r->win);
    }
    if (!r->w || !r->members || !r->acked || !r->series)
        return 1;
    for (k = 0; k < r->K; k++) {
        r->w[k].hist = malloc(sizeof(lt_hist_t));
        if (!r->w[k].hist)
            return 1;
        lt_hist_init(r->w[k].hist);
    }
    r->stop = stop;

    t_start = lt_now_ns();
    r->deadline = t_start + (uint64_t)(cfg->timeout * 1e9);
    lt_proc_sample_sum(cfg->gateway_pids, cfg->ngateway_pids, true, &g_before);
    if (fork_workers(r) != RC_OK) {
        fprintf(stderr, "roomcast-load: fork: %s\n", strerror(errno));
        kill_workers(r);
        reap(r);
        return 1;
    }
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    for (k = 0; k < r->K; k++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = k};

        (void)epoll_ctl(r->ep, EPOLL_CTL_ADD, r->w[k].rep_fd, &ev);
    }

    if (cfg->mode == LT_CHURN) {
        /* Workers churn on their own for cfg->duration, then report. */
        r->sampling = cfg->sample_interval > 0;
        r->next_sample = t_start;
        t_meas0 = t_start;
        cpu_parent0 = lt_cpu_self_ns();
        lt_host_cpu(&host0_t, &host0_i);
        (void)wait_for(r, all_final, 0);
        t_meas1 = lt_now_ns();
        lt_host_cpu(&host1_t, &host1_i);
        cpu_parent1 = lt_cpu_self_ns();
        r->sampling = 0;
        g_settled = g_before;
        /* Let the gateway finish closing before looking at it again. */
        (void)wait_for(r, NULL, lt_now_ns() + (uint64_t)(cfg->settle * 1e9));
        lt_proc_sample_sum(cfg->gateway_pids, cfg->ngateway_pids, true, &g_end);
        goto report;
    }

    if (need_pub) {
        r->pub = lt_pub_create(cfg, on_ack, r, err, sizeof(err));
        if (!r->pub) {
            fprintf(stderr, "roomcast-load: %s\n", err);
            kill_workers(r);
            reap(r);
            return 1;
        }
        plan_pad(r);
    }

    /* connect (ramp) */
    if (cfg->verbose)
        fprintf(stderr, "roomcast-load: ramp: %u connections at %.0f/s\n",
                cfg->n, cfg->ramp);
    (void)wait_for(r, all_ramp_done, 0);
    t_ramp_end = lt_now_ns();
    for (k = 0; k < r->K; k++)
        if (r->w[k].ramp.last_est_ns > last_est)
            last_est = r->w[k].ramp.last_est_ns;

    /* join */
    if (!r->timed_out) {
        if (cfg->verbose)
            fprintf(stderr, "roomcast-load: join\n");
        send_cmd(r, LT_CMD_JOIN);
        (void)wait_for(r, all_joined, 0);
    }
    /* settle */
    if (!r->timed_out) {
        if (cfg->verbose)
            fprintf(stderr, "roomcast-load: settle %.1f s\n", cfg->settle);
        (void)wait_for(r, NULL, lt_now_ns() + (uint64_t)(cfg->settle * 1e9));
    }
    if (r->pub && !r->timed_out)
        (void)wait_for(r, pub_ready,
                       lt_now_ns() + (uint64_t)(cfg->connect_timeout * 1e9));
    lt_proc_sample_sum(cfg->gateway_pids, cfg->ngateway_pids, true, &g_settled);

    /* measure */
    if (!r->timed_out) {
        if (cfg->verbose)
            fprintf(stderr, "roomcast-load: measure\n");
        lt_host_cpu(&host0_t, &host0_i);
        cpu_parent0 = lt_cpu_self_ns();
        t_meas0 = lt_now_ns();
        send_cmd(r, LT_CMD_MEASURE);
        r->sampling = cfg->sample_interval > 0;
        r->next_sample = t_meas0;
        if (r->pub && r->pub->ops->ready(r->pub)) {
            if (cfg->mode == LT_BROADCAST)
                publish_broadcast(r, br);
            else
                publish_steady(r);
        } else if (!r->pub && cfg->duration > 0) {
            (void)wait_for(r, NULL,
                           lt_now_ns() + (uint64_t)(cfg->duration * 1e9));
        }
        t_pub_end = lt_now_ns();
        /* drain: bounded wait for every acked publish to be delivered */
        drained_ok =
            wait_for(r, drained, lt_now_ns() + (uint64_t)(cfg->drain * 1e9));
        send_cmd(r, LT_CMD_MEASURE_END);
        t_meas1 = lt_now_ns();
        cpu_parent1 = lt_cpu_self_ns();
        lt_host_cpu(&host1_t, &host1_i);
        r->sampling = 0;
        if (cfg->sample_interval > 0)
            take_sample(r, t_meas1);
    }
    lt_proc_sample_sum(cfg->gateway_pids, cfg->ngateway_pids, true, &g_end);

    /* close */
    send_cmd(r, LT_CMD_CLOSE);
    {
        uint64_t saved = r->deadline, bound = lt_now_ns() + 10000000000u;

        /* Collecting reports gets its own short bound even past the
         * deadline, so a timed-out run still says what it saw. */
        r->deadline = bound;
        (void)wait_for(r, all_final, 0);
        r->deadline = saved;
    }

report:
    kill_workers(r); /* they have exited or been told to; make sure */
    reap(r);
    lt_proc_sample_sum(cfg->gateway_pids, cfg->ngateway_pids, true, &g_after);
    if (r->pub) {
        r->pub->ops->stats(r->pub, &ps);
    }

    memset(&tot, 0, sizeof(tot));
    lt_hist_init(hist);
    {
        double max_frac = 0;
        uint32_t finals = 0;
        uint64_t exp_del = expected_deliveries(r);
        double meas_s = lt_ns_s(t_meas1 - t_meas0);
        double pub_s = lt_ns_s(t_pub_end - t_meas0);
        double parent_frac = t_meas1 - t_meas0 >= MIN_SAT_NS
                                 ? lt_ns_s(cpu_parent1 - cpu_parent0) / meas_s
                                 : 0;
        double host_busy = host1_t > host0_t
                               ? 1.0 - (double)(host1_i - host0_i) /
                                           (double)(host1_t - host0_t)
                               : 0;
        lt_ramp_report_t ramp = {0};
        uint64_t ramp_ns = last_est > t_start ? last_est - t_start : 0;
        uint64_t i;

        for (k = 0; k < r->K; k++) {
            wk_t *w = &r->w[k];

            if (w->final) {
                finals++;
                lt_counters_merge(&tot, &w->fin);
                lt_hist_merge(hist, w->hist);
                if (w->fin.wall_measure_ns >= MIN_SAT_NS) {
                    double f = (double)w->fin.cpu_measure_ns /
                               (double)w->fin.wall_measure_ns;
                    if (f > max_frac)
                        max_frac = f;
                }
            } else if (w->ramp_done) {
                /* Only a ramp report: still count its connections. */
                ramp = w->ramp;
                tot.attempted += ramp.attempted;
                tot.established += ramp.established;
                tot.failed += ramp.failed;
            }
        }

        lt_json_init(&j, stdout);
        lt_json_obj(&j, NULL);
        lt_json_str(&j, "scenario", cfg->mode_name);
        lt_json_bool(&j, "ok",
                     !r->timed_out && finals == r->K && tot.failed == 0 &&
                         tot.gaps == 0 && tot.dups == 0 &&
                         tot.deliveries == exp_del && ps.errors == 0 &&
                         tot.joins_err == 0 && tot.joins_timeout == 0 &&
                         (cfg->mode != LT_DRAIN ||
                          (r->t_term_exit && tot.resumed == tot.moves &&
                           tot.moves == tot.established)));
        lt_json_bool(&j, "timed_out", r->timed_out);
        lt_json_obj(&j, "config");
        {
            char tgt[96];

            snprintf(tgt, sizeof(tgt), "%s:%u%s", cfg->host, cfg->port,
                     cfg->path);
            lt_json_str(&j, "target", tgt);
            lt_json_arr(&j, "targets");
            for (k = 0; k < cfg->ntargets; k++) {
                snprintf(tgt, sizeof(tgt), "%s:%u", cfg->targets[k].host,
                         cfg->targets[k].port);
                lt_json_str(&j, NULL, tgt);
            }
            lt_json_end(&j, true);
            if (cfg->mode == LT_DRAIN) {
                snprintf(tgt, sizeof(tgt), "%s:%u", cfg->resume_target.host,
                         cfg->resume_target.port);
                lt_json_str(&j, "resume_target", tgt);
                lt_json_i64(&j, "term_pid", cfg->term_pid);
                lt_json_dbl(&j, "term_after_s", cfg->term_after);
            }
        }
        if (cfg->redis_url && strcmp(cfg->via, "redis") == 0)
            lt_json_bool(&j, "ephemeral", cfg->ephemeral);
        lt_json_str(&j, "via", cfg->via);
        lt_json_bool(&j, "tls", cfg->tls);
        lt_json_str(&j, "proto",
                    cfg->proto == LT_PROTO_SOCKETIO ? "socketio" : "roomcast");
        lt_json_u64(&j, "connections", cfg->n);
        lt_json_u64(&j, "workers", cfg->workers);
        lt_json_u64(&j, "src_addrs", cfg->src_addrs);
        lt_json_dbl(&j, "ramp_per_s", cfg->ramp);
        lt_json_u64(&j, "rooms", cfg->rooms);
        lt_json_u64(&j, "rooms_per_client", cfg->per_client);
        lt_json_dbl(&j, "rate_per_s", cfg->rate);
        lt_json_dbl(&j, "duration_s", cfg->duration);
        lt_json_u64(&j, "size", cfg->size);
        lt_json_u64(&j, "burst", cfg->burst);
        if (r->pub)
            lt_json_u64(&j, "msg_frame_bytes_est", r->frame_est);
        lt_json_end(&j, false);

        lt_json_obj(&j, "connections");
        lt_json_u64(&j, "attempted", tot.attempted);
        lt_json_u64(&j, "established", tot.established);
        lt_json_u64(&j, "failed", tot.failed);
        lt_json_u64(&j, "failed_connect", tot.fail_connect);
        lt_json_u64(&j, "failed_http", tot.fail_http);
        lt_json_u64(&j, "failed_http_401", tot.http_401);
        lt_json_u64(&j, "failed_timeout", tot.fail_timeout);
        lt_json_u64(&j, "failed_protocol", tot.fail_proto);
        lt_json_u64(&j, "lost_without_close", tot.lost_eof);
        if (cfg->mode != LT_CHURN) {
            lt_json_dbl(&j, "ramp_s", lt_ns_s(ramp_ns));
            lt_json_dbl(&j, "connect_rate_per_s",
                        ramp_ns ? (double)tot.established / lt_ns_s(ramp_ns)
                                : 0);
            lt_json_dbl(&j, "ramp_wall_s", lt_ns_s(t_ramp_end - t_start));
        }
        lt_json_end(&j, false);

        lt_json_obj(&j, "joins");
        lt_json_u64(&j, "ok", tot.joins_ok);
        lt_json_u64(&j, "error", tot.joins_err);
        lt_json_u64(&j, "timeout", tot.joins_timeout);
        lt_json_u64(&j, "clients_joined", tot.clients_joined);
        if (cfg->mode == LT_CHURN) {
            lt_json_u64(&j, "leaves_ok", tot.leaves_ok);
            lt_json_u64(&j, "leaves_error", tot.leaves_err);
        }
        lt_json_end(&j, false);

        if (cfg->mode == LT_CHURN) {
            lt_json_obj(&j, "churn");
            lt_json_u64(&j, "cycles_started", tot.cycles_started);
            lt_json_u64(&j, "cycles_completed", tot.cycles_done);
            lt_json_u64(&j, "cycles_failed", tot.cycles_failed);
            lt_json_u64(&j, "cycles_aborted_at_end", tot.cycles_aborted);
            lt_json_dbl(&j, "cycles_per_s",
                        meas_s > 0 ? (double)tot.cycles_done / meas_s : 0);
            lt_json_end(&j, false);
        }

        lt_json_obj(&j, "publishes");
        lt_json_u64(&j, "sent", ps.sent);
        lt_json_u64(&j, "acked", ps.acked);
        lt_json_u64(&j, "errors", ps.errors);
        lt_json_u64(&j, "skipped", ps.skipped);
        lt_json_u64(&j, "queued_max_bytes", ps.queued_max);
        lt_json_dbl(&j, "rate_per_s", pub_s > 0 ? (double)ps.sent / pub_s : 0);
        if (r->pub && r->pub->ops->error(r->pub)[0])
            lt_json_str(&j, "publisher_error", r->pub->ops->error(r->pub));
        lt_json_end(&j, false);

        lt_json_u64(&j, "deliveries", tot.deliveries);
        lt_json_u64(&j, "expected_deliveries", exp_del);
        lt_json_bool(&j, "drained", drained_ok);
        lt_json_dbl(&j, "deliveries_per_s",
                    meas_s > 0 ? (double)tot.deliveries / meas_s : 0);
        lt_json_dbl(&j, "measure_s", meas_s);
        json_hist(&j, "latency_us", hist);
        lt_json_u64(&j, "gaps", tot.gaps);
        lt_json_u64(&j, "duplicates", tot.dups);
        lt_json_u64(&j, "unexpected_frames", tot.unexpected);
        lt_json_u64(&j, "error_replies", tot.errors);
        lt_json_u64(&j, "reconnect_frames", tot.reconnects);
        lt_json_u64(&j, "pings", tot.pings);
        lt_json_obj(&j, "closes");
        for (i = 0; i < LT_CLOSE_SLOTS; i++) {
            char code[16];

            if (!tot.close_count[i])
                continue;
            snprintf(code, sizeof(code), "%u", tot.close_code[i]);
            lt_json_u64(&j, code, tot.close_count[i]);
        }
        lt_json_end(&j, false);

        if (cfg->mode == LT_DRAIN) {
            uint32_t last = 0, b;
            uint64_t peak = 0;

            for (b = 0; b < LT_RC_BUCKETS; b++) {
                if (tot.rc_hist[b])
                    last = b + 1;
                if (tot.rc_hist[b] > peak)
                    peak = tot.rc_hist[b];
            }
            lt_json_obj(&j, "drain");
            lt_json_bool(&j, "term_sent", r->t_term != 0);
            lt_json_bool(&j, "gateway_exited", r->t_term_exit != 0);
            if (r->t_term_exit)
                lt_json_dbl(&j, "term_to_exit_s",
                            lt_ns_s(r->t_term_exit - r->t_term));
            else
                lt_json_null(&j, "term_to_exit_s");
            lt_json_u64(&j, "reconnect_frames", tot.reconnects);
            lt_json_u64(&j, "moves", tot.moves);
            lt_json_u64(&j, "resumed", tot.resumed);
            lt_json_u64(&j, "resume_refused", tot.resume_refused);
            lt_json_u64(&j, "move_failed", tot.move_failed);
            lt_json_u64(&j, "rooms_not_recovered", tot.not_recovered);
            lt_json_u64(&j, "lost", tot.gaps);
            /* what never arrived: also counts messages missed by a client
             * whose resume was refused (no later seq shows a gap) */
            lt_json_u64(&j, "undelivered",
                        exp_del > tot.deliveries ? exp_del - tot.deliveries
                                                 : 0);
            lt_json_u64(&j, "duplicated", tot.dups);
            lt_json_dbl(&j, "bucket_s", LT_RC_BUCKET_NS / 1e9);
            lt_json_dbl(&j, "peak_resumes_per_s",
                        (double)peak * 1e9 / LT_RC_BUCKET_NS);
            lt_json_arr(&j, "resumes_per_bucket");
            for (b = 0; b < last; b++)
                lt_json_u64(&j, NULL, tot.rc_hist[b]);
            lt_json_end(&j, true);
            lt_json_obj(&j, "refused_by_bucket"); /* bucket index: count */
            for (b = 0; b < LT_RC_BUCKETS; b++) {
                char key[16];

                if (!tot.rf_hist[b])
                    continue;
                snprintf(key, sizeof(key), "%u", b);
                lt_json_u64(&j, key, tot.rf_hist[b]);
            }
            lt_json_end(&j, false);
            lt_json_end(&j, false);
        }

        if (cfg->mode == LT_BROADCAST) {
            lt_json_obj(&j, "broadcast");
            lt_json_u64(&j, "members", r->members[0]);
            lt_json_u64(&j, "messages", br->sent);
            lt_json_u64(&j, "complete", br->complete);
            lt_json_dbl(&j, "median_last_delivery_ms",
                        median(br->last_ms, br->n));
            lt_json_dbl(&j, "median_first_delivery_ms",
                        median(br->first_ms, br->n));
            lt_json_arr(&j, "last_delivery_ms");
            for (i = 0; i < br->n; i++)
                lt_json_dbl(&j, NULL, br->last_ms[i]);
            lt_json_end(&j, true);
            lt_json_arr(&j, "first_delivery_ms");
            for (i = 0; i < br->n; i++)
                lt_json_dbl(&j, NULL, br->first_ms[i]);
            lt_json_end(&j, true);
            lt_json_arr(&j, "delivered");
            for (i = 0; i < br->n; i++)
                lt_json_u64(&j, NULL, br->delivered[i]);
            lt_json_end(&j, true);
            lt_json_end(&j, false);
        }

        lt_json_obj(&j, "gateway");
        lt_json_i64(&j, "pid", cfg->gateway_pid);
        lt_json_arr(&j, "pids"); /* every sample is the sum over these */
        for (k = 0; k < cfg->ngateway_pids; k++)
            lt_json_i64(&j, NULL, cfg->gateway_pids[k]);
        lt_json_end(&j, true);
        if (cfg->ngateway_pids > 0) {
            json_gw(&j, "before_connect", &g_before);
            json_gw(&j, "measure_start", &g_settled);
            json_gw(&j, "measure_end", &g_end);
            json_gw(&j, "after_close", &g_after);
            if (cfg->mode != LT_CHURN && g_settled.ok && g_before.ok &&
                tot.established > 0)
                lt_json_dbl(
                    &j, "rss_per_conn_bytes",
                    ((double)g_settled.rss_bytes - (double)g_before.rss_bytes) /
                        (double)tot.established);
            lt_json_dbl(&j, "cpu_measure_s",
                        lt_ns_s(g_end.cpu_ns - g_settled.cpu_ns));
            if (meas_s > 0)
                lt_json_dbl(&j, "cpu_measure_frac",
                            lt_ns_s(g_end.cpu_ns - g_settled.cpu_ns) / meas_s);
            if (tot.deliveries > 0 && g_end.cpu_ns > g_settled.cpu_ns)
                lt_json_dbl(&j, "deliveries_per_cpu_s",
                            (double)tot.deliveries /
                                lt_ns_s(g_end.cpu_ns - g_settled.cpu_ns));
        }
        lt_json_end(&j, false);

        lt_json_obj(&j, "tool");
        lt_json_dbl(&j, "cpu_s", lt_ns_s(lt_cpu_all_ns()));
        if (t_meas1 - t_meas0 >= MIN_SAT_NS)
            lt_json_dbl(&j, "parent_cpu_measure_frac", parent_frac);
        else
            lt_json_null(&j, "parent_cpu_measure_frac");
        lt_json_arr(&j, "worker_cpu_measure_frac");
        for (k = 0; k < r->K; k++) {
            const wk_t *w = &r->w[k];

            if (w->final && w->fin.wall_measure_ns >= MIN_SAT_NS)
                lt_json_dbl(&j, NULL,
                            (double)w->fin.cpu_measure_ns /
                                (double)w->fin.wall_measure_ns);
            else
                lt_json_null(&j, NULL);
        }
        lt_json_end(&j, true);
        lt_json_dbl(&j, "host_cpu_busy_frac", host_busy);
        lt_json_bool(&j, "load_saturated", max_frac > 0.9 || parent_frac > 0.9);
        /* Tool and gateway share the machine: when it has no idle CPU
         * left, neither number is a ceiling of the gateway alone. */
        lt_json_bool(&j, "host_saturated", host_busy > 0.95);
        lt_json_u64(&j, "workers_reported", finals);
        lt_json_end(&j, false);

        if (r->nseries > 0) {
            lt_json_arr(&j, "series");
            for (i = 0; i < r->nseries; i++) {
                const sample_t *s = &r->series[i];

                lt_json_obj(&j, NULL);
                lt_json_dbl(&j, "t_s",
                            s->g.at_ns > t_meas0 ? lt_ns_s(s->g.at_ns - t_meas0)
                                                 : 0);
                lt_json_u64(&j, "rss_bytes", s->g.rss_bytes);
                lt_json_u64(&j, "fds", s->g.fds);
                lt_json_dbl(&j, "cpu_s", lt_ns_s(s->g.cpu_ns));
                lt_json_u64(&j, "deliveries", s->deliveries);
                if (r->win) {
                    lt_json_u64(&j, "lat_count", s->lat_count);
                    lt_json_dbl(&j, "p50_ms", (double)s->lat_p50 / 1e6);
                    lt_json_dbl(&j, "p99_ms", (double)s->lat_p99 / 1e6);
                    lt_json_dbl(&j, "max_ms", (double)s->lat_max / 1e6);
                }
                lt_json_end(&j, false);
            }
            lt_json_end(&j, true);
        }
        lt_json_dbl(&j, "wall_s", lt_ns_s(lt_now_ns() - t_start));
        lt_json_end(&j, false);
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (r->timed_out)
        rc = 3;

    if (r->pub)
        r->pub->ops->destroy(r->pub);
    for (k = 0; k < r->K; k++) {
        if (r->w[k].cmd_fd > 0)
            close(r->w[k].cmd_fd);
        if (r->w[k].rep_fd > 0)
            close(r->w[k].rep_fd);
        free(r->w[k].in);
        free(r->w[k].hist);
    }
    if (r->ep > 0)
        close(r->ep);
    free(r->w);
    free(r->members);
    free(r->acked);
    free(r->series);
    free(r->win);
    free(r->pad);
    free(r);
    free(hist);
    free(br);
    return rc;
}

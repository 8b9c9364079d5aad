/* loadtest/lt_calib.c: roomcast-load calibrate: the physical ceiling of the
 * same traffic shape with no gateway. The parent (the "writer") listens on
 * 127.0.0.1 and accepts N loopback TCP connections that reader worker
 * processes open from the rotating source addresses (so the writer holds
 * N server-side sockets, and the readers the client sides, under the
 * per-process fd cap). The writer then writes pre-built frames of the
 * delivered-message size, one send() per frame per socket, and we report
 * send()s per CPU-second of the writer; with --broadcast, the time to write
 * one frame to all N sockets and until every reader has read it.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loadtest/lt_json.h"

#define LISTEN_TAG (UINT64_MAX - 1)
#define CMD_TAG UINT64_MAX
#define READ_BUF (256 * 1024)
#define CONNECTS_IN_FLIGHT 512 /* per reader, so the accept queue keeps up */
#define MAX_MSGS 1024

typedef struct reader {
    pid_t pid;
    int cmd_fd, rep_fd;
    uint8_t in[4096];
    size_t inlen;
    bool ready, final, eof;
    lt_cal_ready_t rd;
    lt_cal_final_t fin;
    uint64_t marks;     /* broadcast messages it has read completely */
    uint64_t last_mark; /* at_ns of the latest */
} reader_t;

/* ---- reader worker (child) ---- */

static int reader_main(const lt_cfg_t *cfg, uint32_t wid, uint32_t first,
                       uint32_t count, uint16_t port, int cmd_fd, int rep_fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC), one = 1;
    int *fds = calloc(count ? count : 1, sizeof(int));
    uint8_t *buf = malloc(READ_BUF);
    struct epoll_event ev, evs[1024];
    struct sockaddr_in dst = {.sin_family = AF_INET};
    uint64_t bytes = 0, per_msg = (uint64_t)count * cfg->size, next_mark = 1;
    uint32_t opened = 0, done = 0, inflight = 0, j;
    lt_cal_ready_t rd = {0};
    bool closing = false;

    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1 || ep < 0 || !fds || !buf)
        return 2;
    (void)wid;
    dst.sin_port = htons(port);
    dst.sin_addr.s_addr = htonl(0x7f000001u);
    ev.events = EPOLLIN;
    ev.data.u64 = CMD_TAG;
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, cmd_fd, &ev);

    /* Connect everything, CONNECTS_IN_FLIGHT at a time. */
    while (done < count) {
        int n, e;

        while (opened < count && inflight < CONNECTS_IN_FLIGHT) {
            struct sockaddr_in src = {.sin_family = AF_INET};
            int fd =
                socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

            fds[opened] = fd;
            if (fd < 0) {
                rd.failed++;
                done++;
                opened++;
                continue;
            }
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                             sizeof(one));
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            src.sin_addr.s_addr =
                htonl(lt_src_addr(first + opened, cfg->src_addrs));
            ev.events = EPOLLOUT;
            ev.data.u64 = opened;
            if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
                (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
                 errno != EINPROGRESS) ||
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                close(fd);
                fds[opened] = -1;
                rd.failed++;
                done++;
            } else {
                inflight++;
            }
            opened++;
        }
        n = epoll_wait(ep, evs, 1024, 100);
        for (e = 0; e < n; e++) {
            uint64_t t = evs[e].data.u64;
            int err = 0;
            socklen_t sl = sizeof(err);

            if (t == CMD_TAG) {
                uint32_t c;
                if (read(cmd_fd, &c, sizeof(c)) == 0)
                    return 2; /* parent gone */
                continue;
            }
            if (getsockopt(fds[t], SOL_SOCKET, SO_ERROR, &err, &sl) != 0 ||
                err) {
                close(fds[t]);
                fds[t] = -1;
                rd.failed++;
            } else {
                ev.events = EPOLLIN;
                ev.data.u64 = t;
                (void)epoll_ctl(ep, EPOLL_CTL_MOD, fds[t], &ev);
                rd.connected++;
            }
            inflight--;
            done++;
        }
    }
    if (lt_ipc_send(rep_fd, LT_IPC_CAL_READY, &rd, sizeof(rd)) != RC_OK)
        return 2;

    /* Drain until told to close; then one last pass over every socket,
     * since on loopback what was sent is already in our receive queues. */
    for (;;) {
        bool pass = closing; /* the final pass visits every socket */
        int n = pass ? (int)count : epoll_wait(ep, evs, 1024, 100), e;

        for (e = 0; e < n; e++) {
            uint64_t t = pass ? (uint64_t)e : evs[e].data.u64;
            int it;

            if (!pass && t == CMD_TAG) {
                uint32_t c;
                ssize_t r = read(cmd_fd, &c, sizeof(c));

                if (r == 0)
                    return 2;
                if (r == sizeof(c) && c == LT_CMD_CLOSE)
                    closing = true;
                continue;
            }
            if (fds[t] < 0)
                continue;
            for (it = 0; it < 64; it++) {
                ssize_t r = recv(fds[t], buf, READ_BUF, MSG_DONTWAIT);

                if (r <= 0)
                    break;
                bytes += (uint64_t)r;
            }
        }
        if (cfg->cal_broadcast && per_msg > 0) {
            while (bytes >= next_mark * per_msg) {
                lt_cal_mark_t m = {next_mark - 1, lt_now_ns()};

                if (lt_ipc_send(rep_fd, LT_IPC_CAL_MARK, &m, sizeof(m)) !=
                    RC_OK)
                    return 2;
                next_mark++;
            }
        }
        if (pass)
            break;
    }
    {
        lt_cal_final_t fin = {bytes, lt_cpu_self_ns()};

        if (lt_ipc_send(rep_fd, LT_IPC_CAL_FINAL, &fin, sizeof(fin)) != RC_OK)
            return 2;
    }
    for (j = 0; j < count; j++)
        if (fds[j] >= 0)
            close(fds[j]);
    return 0;
}

/* ---- writer (parent) ---- */

typedef struct cal {
    const lt_cfg_t *cfg;
    const volatile sig_atomic_t *stop;
    int ep, lfd;
    uint32_t K;
    reader_t *rd;
    int *fds; /* accepted server-side sockets */
    uint32_t nfds;
    uint64_t deadline;
    bool timed_out;
} cal_t;

static void cal_read(cal_t *c, reader_t *r)
{
    ssize_t n = read(r->rep_fd, r->in + r->inlen, sizeof(r->in) - r->inlen);
    size_t off = 0;

    if (n == 0) {
        r->eof = true;
        (void)epoll_ctl(c->ep, EPOLL_CTL_DEL, r->rep_fd, NULL);
        return;
    }
    if (n < 0)
        return;
    r->inlen += (size_t)n;
    while (r->inlen - off >= sizeof(lt_ipc_hdr_t)) {
        lt_ipc_hdr_t h;
        const uint8_t *p;

        memcpy(&h, r->in + off, sizeof(h));
        if (r->inlen - off - sizeof(h) < h.len)
            break;
        p = r->in + off + sizeof(h);
        if (h.type == LT_IPC_CAL_READY && h.len == sizeof(r->rd)) {
            memcpy(&r->rd, p, h.len);
            r->ready = true;
        } else if (h.type == LT_IPC_CAL_MARK &&
                   h.len == sizeof(lt_cal_mark_t)) {
            lt_cal_mark_t m;
            memcpy(&m, p, h.len);
            r->marks = m.index + 1;
            r->last_mark = m.at_ns;
        } else if (h.type == LT_IPC_CAL_FINAL && h.len == sizeof(r->fin)) {
            memcpy(&r->fin, p, h.len);
            r->final = true;
        }
        off += sizeof(h) + h.len;
    }
    memmove(r->in, r->in + off, r->inlen - off);
    r->inlen -= off;
}

static void cal_poll(cal_t *c, int ms)
{
    struct epoll_event evs[LT_MAX_WORKERS + 2];
    int n = epoll_wait(c->ep, evs, LT_MAX_WORKERS + 2, ms), i;

    for (i = 0; i < n; i++) {
        if (evs[i].data.u64 == LISTEN_TAG) {
            int a, k;

            for (k = 0; k < 1024; k++) {
                a = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (a < 0)
                    break;
                if (c->nfds >= c->cfg->n) {
                    close(a);
                    continue;
                }
                {
                    int one = 1;
                    (void)setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one,
                                     sizeof(one));
                }
                c->fds[c->nfds++] = a;
            }
        } else if (evs[i].data.u64 < c->K) {
            cal_read(c, &c->rd[evs[i].data.u64]);
        }
    }
}

/* One send() of a whole frame, counted as sent, refused (socket full) or
 * partly written. */
static void cal_send(int fd, const uint8_t *frame, size_t size, uint64_t *sends,
                     uint64_t *eagain, uint64_t *partial)
{
    ssize_t s = send(fd, frame, size, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (s == (ssize_t)size)
        (*sends)++;
    else if (s < 0)
        (*eagain)++;
    else
        (*partial)++;
}

static bool cal_alive(cal_t *c)
{
    if (*c->stop || lt_now_ns() >= c->deadline) {
        c->timed_out = true;
        return false;
    }
    return true;
}

static bool all_ready(const cal_t *c)
{
    uint64_t want = 0;
    uint32_t k;

    for (k = 0; k < c->K; k++) {
        if (!c->rd[k].ready && !c->rd[k].eof)
            return false;
        want += c->rd[k].rd.connected;
    }
    return c->nfds >= want;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(const double *v, uint32_t n)
{
    double tmp[MAX_MSGS];

    if (n == 0)
        return NAN;
    memcpy(tmp, v, n * sizeof(double));
    qsort(tmp, n, sizeof(double), cmp_dbl);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

int lt_calib_run(const lt_cfg_t *cfg, const volatile sig_atomic_t *stop)
{
    cal_t c = {.cfg = cfg, .stop = stop, .K = cfg->workers};
    struct sockaddr_in la = {.sin_family = AF_INET};
    socklen_t sl = sizeof(la);
    struct epoll_event ev;
    uint8_t *frame = malloc(cfg->size + 16);
    double *write_ms = calloc(MAX_MSGS, sizeof(double));
    double *deliver_ms = calloc(MAX_MSGS, sizeof(double));
    uint64_t t_start = lt_now_ns(), t_conn = 0, sends = 0, eagain = 0,
             partial = 0, target = 0, cpu0, cpu1, w0, w1, bytes = 0,
             cpu_write = 0;
    uint32_t k, first = 0, nmsg = 0, ncomplete = 0;
    double dur = cfg->duration > 0 ? cfg->duration : 5, write_sum_ms = 0;
    lt_json_t j;
    uint16_t port;
    size_t hdr;
    int one = 1;

    if (!frame || !write_ms || !deliver_ms)
        return 1;
    if (cfg->n + 64 > lt_raise_nofile()) {
        fprintf(stderr,
                "roomcast-load: calibrate holds all %u server sockets in one "
                "process: the open-files limit (%llu) is too low\n",
                cfg->n, (unsigned long long)lt_raise_nofile());
        return 1;
    }
    c.deadline = t_start + (uint64_t)(cfg->timeout * 1e9);
    c.rd = calloc(c.K, sizeof(reader_t));
    c.fds = malloc(cfg->n * sizeof(int));
    if (!c.rd || !c.fds)
        return 1;

    /* The frame the gateway would write: text, payload padded to size. */
    hdr = cfg->size > 127 ? 4 : 2;
    frame[0] = 0x81;
    if (hdr == 2) {
        frame[1] = (uint8_t)(cfg->size - 2);
    } else {
        frame[1] = 126;
        frame[2] = (uint8_t)((cfg->size - 4) >> 8);
        frame[3] = (uint8_t)(cfg->size - 4);
    }
    memset(frame + hdr, 'x', cfg->size - hdr);

    c.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    la.sin_addr.s_addr = htonl(0x7f000001u);
    (void)setsockopt(c.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (c.lfd < 0 || bind(c.lfd, (struct sockaddr *)&la, sizeof(la)) != 0 ||
        listen(c.lfd, 4096) != 0 ||
        getsockname(c.lfd, (struct sockaddr *)&la, &sl) != 0) {
        fprintf(stderr, "roomcast-load: listen: %s\n", strerror(errno));
        return 1;
    }
    port = ntohs(la.sin_port);

    for (k = 0; k < c.K; k++) {
        uint32_t count = (uint32_t)(((uint64_t)cfg->n * (k + 1)) / c.K) - first;
        int cmdp[2], repp[2];
        pid_t pid;

        if (pipe2(cmdp, O_CLOEXEC) != 0 || pipe2(repp, O_CLOEXEC) != 0)
            return 1;
        fflush(NULL);
        pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            uint32_t q;

            for (q = 0; q < k; q++) {
                close(c.rd[q].cmd_fd);
                close(c.rd[q].rep_fd);
            }
            close(c.lfd);
            close(cmdp[1]);
            close(repp[0]);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            _exit(reader_main(cfg, k, first, count, port, cmdp[0], repp[1]));
        }
        close(cmdp[0]);
        close(repp[1]);
        (void)fcntl(repp[0], F_SETFL, O_NONBLOCK);
        c.rd[k].pid = pid;
        c.rd[k].cmd_fd = cmdp[1];
        c.rd[k].rep_fd = repp[0];
        first += count;
    }
    c.ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.u64 = LISTEN_TAG;
    (void)epoll_ctl(c.ep, EPOLL_CTL_ADD, c.lfd, &ev);
    for (k = 0; k < c.K; k++) {
        ev.data.u64 = k;
        (void)epoll_ctl(c.ep, EPOLL_CTL_ADD, c.rd[k].rep_fd, &ev);
    }

    while (!all_ready(&c) && cal_alive(&c))
        cal_poll(&c, 50);
    t_conn = lt_now_ns();
    if (cfg->verbose)
        fprintf(stderr, "roomcast-load: calibrate: %u sockets connected\n",
                c.nfds);

    if (cfg->deliveries > 0)
        target = cfg->deliveries;
    else if (cfg->rate > 0 && cfg->duration > 0 && !cfg->cal_broadcast &&
             !cfg->cal_paced)
        target = (uint64_t)(cfg->rate * cfg->duration *
                            ((double)cfg->n * cfg->per_client / cfg->rooms));

    cpu0 = lt_cpu_self_ns();
    w0 = lt_now_ns();
    if (c.nfds > 0 && !c.timed_out && cfg->cal_broadcast) {
        uint32_t m;

        for (m = 0; m < cfg->messages && m < MAX_MSGS && cal_alive(&c); m++) {
            uint64_t c0 = lt_cpu_self_ns(), t0 = lt_now_ns(), t1, until;
            uint32_t i;
            bool all;

            for (i = 0; i < c.nfds; i++) {
                cal_send(c.fds[i], frame, cfg->size, &sends, &eagain, &partial);
            }
            t1 = lt_now_ns();
            cpu_write += lt_cpu_self_ns() - c0;
            write_ms[nmsg] = (double)(t1 - t0) / 1e6;
            write_sum_ms += write_ms[nmsg];
            until = t1 + (uint64_t)(cfg->msg_timeout * 1e9);
            do {
                uint64_t last = 0;

                all = true;
                for (k = 0; k < c.K; k++) {
                    if (c.rd[k].eof)
                        continue;
                    if (c.rd[k].marks <= m)
                        all = false;
                    else if (c.rd[k].last_mark > last)
                        last = c.rd[k].last_mark;
                }
                if (all) {
                    deliver_ms[nmsg] = (double)(last - t0) / 1e6;
                    ncomplete++;
                    break;
                }
                cal_poll(&c, 1);
            } while (lt_now_ns() < until && cal_alive(&c));
            if (!all)
                deliver_ms[nmsg] = NAN;
            nmsg++;
            if (cfg->interval > 0) {
                uint64_t pause = lt_now_ns() + (uint64_t)(cfg->interval * 1e9);
                while (lt_now_ns() < pause && cal_alive(&c))
                    cal_poll(&c, 5);
            }
        }
        cpu1 = lt_cpu_self_ns();
        w1 = lt_now_ns();
    } else if (c.nfds > 0 && !c.timed_out && cfg->cal_paced && cfg->rate > 0) {
        /* The fanout's shape: --rate messages/s, rooms round-robin, one
         * send() to every socket of the message's room (socket i is in
         * room i % R), then sleep until the next message is due, so the
         * readers sleep between bursts as they do behind a gateway. Only
         * the send()s cost the writer CPU. */
        uint32_t R = cfg->rooms ? cfg->rooms : 1, room = 0, n = c.nfds, i;
        uint64_t end = w0 + (uint64_t)(dur * 1e9), next = w0;
        uint64_t step = (uint64_t)(1e9 / cfg->rate);

        while (cal_alive(&c) && next < end) {
            struct timespec ts = {(time_t)(next / 1000000000u),
                                  (long)(next % 1000000000u)};

            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
                   EINTR)
                ;
            for (i = room % n; i < n; i += R) {
                cal_send(c.fds[i], frame, cfg->size, &sends, &eagain, &partial);
            }
            room = (room + 1) % R;
            next += step;
        }
        cpu1 = lt_cpu_self_ns();
        w1 = lt_now_ns();
    } else if (c.nfds > 0 && !c.timed_out) {
        uint64_t end = w0 + (uint64_t)(dur * 1e9), i = 0;
        uint32_t n = c.nfds;

        for (;;) {
            if (target && sends >= target)
                break;
            if ((i & 4095) == 0 &&
                (!cal_alive(&c) || (!target && lt_now_ns() >= end)))
                break;
            cal_send(c.fds[i % n], frame, cfg->size, &sends, &eagain, &partial);
            i++;
        }
        cpu1 = lt_cpu_self_ns();
        w1 = lt_now_ns();
    } else {
        cpu1 = cpu0;
        w1 = w0;
    }

    /* Close: readers make a last pass and report. */
    for (k = 0; k < c.K; k++) {
        uint32_t cmd = LT_CMD_CLOSE;

        if (write(c.rd[k].cmd_fd, &cmd, sizeof(cmd)) < 0)
            c.rd[k].eof = true;
    }
    {
        uint64_t bound = lt_now_ns() + 10000000000u;

        for (;;) {
            bool all = true;

            for (k = 0; k < c.K; k++)
                if (!c.rd[k].final && !c.rd[k].eof)
                    all = false;
            if (all || lt_now_ns() >= bound)
                break;
            cal_poll(&c, 10);
        }
    }
    for (k = 0; k < c.K; k++) {
        kill(c.rd[k].pid, SIGKILL);
        (void)waitpid(c.rd[k].pid, NULL, 0);
        bytes += c.rd[k].fin.bytes;
    }

    {
        /* broadcast: only the write loops count, not the pauses */
        double cpu_s = cfg->cal_broadcast ? lt_ns_s(cpu_write)
                                          : lt_ns_s(cpu1 - cpu0),
               wall_s =
                   cfg->cal_broadcast ? write_sum_ms / 1e3 : lt_ns_s(w1 - w0);
        uint64_t connected = 0, failed = 0;

        for (k = 0; k < c.K; k++) {
            connected += c.rd[k].rd.connected;
            failed += c.rd[k].rd.failed;
        }
        lt_json_init(&j, stdout);
        lt_json_obj(&j, NULL);
        lt_json_str(&j, "scenario", "calibrate");
        lt_json_str(&j, "mode",
                    cfg->cal_broadcast ? "broadcast"
                    : cfg->cal_paced   ? "paced"
                                       : "stream");
        lt_json_bool(&j, "ok",
                     !c.timed_out && failed == 0 &&
                         bytes == sends * cfg->size && partial == 0);
        lt_json_bool(&j, "timed_out", c.timed_out);
        lt_json_obj(&j, "config");
        lt_json_u64(&j, "connections", cfg->n);
        lt_json_u64(&j, "workers", c.K);
        lt_json_u64(&j, "src_addrs", cfg->src_addrs);
        lt_json_u64(&j, "size", cfg->size);
        if (target)
            lt_json_u64(&j, "target_sends", target);
        lt_json_end(&j, false);
        lt_json_obj(&j, "connections");
        lt_json_u64(&j, "connected", connected);
        lt_json_u64(&j, "failed", failed);
        lt_json_u64(&j, "accepted", c.nfds);
        lt_json_dbl(&j, "connect_s", lt_ns_s(t_conn - t_start));
        lt_json_end(&j, false);
        lt_json_u64(&j, "sends", sends);
        lt_json_u64(&j, "eagain", eagain);
        lt_json_u64(&j, "partial", partial);
        lt_json_u64(&j, "bytes_sent", sends * cfg->size);
        lt_json_u64(&j, "bytes_received", bytes);
        lt_json_dbl(&j, "writer_cpu_s", cpu_s);
        lt_json_dbl(&j, "wall_s", wall_s);
        lt_json_dbl(&j, "sends_per_cpu_s",
                    cpu_s > 0 ? (double)sends / cpu_s : 0);
        lt_json_dbl(&j, "sends_per_s", wall_s > 0 ? (double)sends / wall_s : 0);
        if (cfg->cal_broadcast) {
            uint32_t i;

            lt_json_obj(&j, "broadcast");
            lt_json_u64(&j, "messages", nmsg);
            lt_json_u64(&j, "complete", ncomplete);
            lt_json_dbl(&j, "median_write_all_ms", median(write_ms, nmsg));
            {
                double ok[MAX_MSGS];
                uint32_t q = 0;

                for (i = 0; i < nmsg; i++)
                    if (!isnan(deliver_ms[i]))
                        ok[q++] = deliver_ms[i];
                lt_json_dbl(&j, "median_deliver_all_ms", median(ok, q));
            }
            lt_json_arr(&j, "write_all_ms");
            for (i = 0; i < nmsg; i++)
                lt_json_dbl(&j, NULL, write_ms[i]);
            lt_json_end(&j, true);
            lt_json_arr(&j, "deliver_all_ms");
            for (i = 0; i < nmsg; i++)
                lt_json_dbl(&j, NULL, deliver_ms[i]);
            lt_json_end(&j, true);
            lt_json_end(&j, false);
        }
        lt_json_obj(&j, "tool");
        lt_json_dbl(&j, "cpu_s", lt_ns_s(lt_cpu_all_ns()));
        {
            uint64_t rc = 0;
            for (k = 0; k < c.K; k++)
                rc += c.rd[k].fin.cpu_ns;
            lt_json_dbl(&j, "readers_cpu_s", lt_ns_s(rc));
        }
        lt_json_end(&j, false);
        lt_json_dbl(&j, "total_wall_s", lt_ns_s(lt_now_ns() - t_start));
        lt_json_end(&j, false);
        fputc('\n', stdout);
        fflush(stdout);
    }
    {
        uint32_t i;
        for (i = 0; i < c.nfds; i++)
            close(c.fds[i]);
    }
    for (k = 0; k < c.K; k++) {
        close(c.rd[k].cmd_fd);
        close(c.rd[k].rep_fd);
    }
    close(c.lfd);
    close(c.ep);
    free(c.fds);
    free(c.rd);
    free(frame);
    free(write_ms);
    free(deliver_ms);
    return c.timed_out ? 3 : 0;
}

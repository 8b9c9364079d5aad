/* loadtest/lt.c: small shared helpers of roomcast-load: pipe records,
 * counter merging, CPU accounting of the tool itself, and /proc sampling of
 * the gateway.
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

static rc_err_t write_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return RC_EIO;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return RC_OK;
}

rc_err_t lt_ipc_send2(int fd, uint32_t type, const void *a, size_t alen,
                      const void *b, size_t blen)
{
    lt_ipc_hdr_t h = {type, (uint32_t)(alen + blen)};
    struct iovec iov[3] = {
        {&h, sizeof(h)},
        {(void *)(uintptr_t)a, alen},
        {(void *)(uintptr_t)b, blen},
    };

    return write_all(fd, iov, blen ? 3 : 2);
}

rc_err_t lt_ipc_send(int fd, uint32_t type, const void *p, size_t len)
{
    return lt_ipc_send2(fd, type, p, len, NULL, 0);
}

static void close_add(lt_counters_t *c, uint32_t code, uint64_t n)
{
    size_t i;

    for (i = 0; i < LT_CLOSE_SLOTS; i++) {
        if (c->close_count[i] == 0 || c->close_code[i] == code) {
            c->close_code[i] = code;
            c->close_count[i] += n;
            return;
        }
    }
    /* Table full: fold into the last slot rather than lose the count. */
    c->close_count[LT_CLOSE_SLOTS - 1] += n;
}

void lt_counters_close(lt_counters_t *c, uint32_t code)
{
    close_add(c, code, 1);
}

void lt_counters_merge(lt_counters_t *dst, const lt_counters_t *src)
{
    /* Every field before the close table is a uint64_t counter. */
    const size_t nfirst = offsetof(lt_counters_t, close_code) / 8;
    uint64_t *d = (uint64_t *)(void *)dst;
    const uint64_t *s = (const uint64_t *)(const void *)src;
    size_t i;

    for (i = 0; i < nfirst; i++)
        d[i] += s[i];
    for (i = 0; i < LT_CLOSE_SLOTS; i++) {
        if (src->close_count[i])
            close_add(dst, src->close_code[i], src->close_count[i]);
    }
    dst->cycles_started += src->cycles_started;
    dst->cycles_done += src->cycles_done;
    dst->cycles_failed += src->cycles_failed;
    dst->cycles_aborted += src->cycles_aborted;
    dst->cpu_measure_ns += src->cpu_measure_ns;
    if (src->wall_measure_ns > dst->wall_measure_ns)
        dst->wall_measure_ns = src->wall_measure_ns;
    dst->cpu_total_ns += src->cpu_total_ns;
}

static uint64_t tv_ns(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000000000u + (uint64_t)tv->tv_usec * 1000u;
}

uint64_t lt_cpu_self_ns(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime);
}

uint64_t lt_cpu_all_ns(void)
{
    struct rusage ru;
    uint64_t t = lt_cpu_self_ns();

    if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
        t += tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime);
    return t;
}

uint64_t lt_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

void lt_proc_sample(int pid, bool count_fds, lt_proc_sample_t *out)
{
    char path[64], buf[4096];
    FILE *f;
    size_t n;

    memset(out, 0, sizeof(*out));
    out->at_ns = lt_now_ns();
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(buf, sizeof(buf), f)) {
        unsigned long long kb;

        if (sscanf(buf, "VmRSS: %llu kB", &kb) == 1) {
            out->rss_bytes = (uint64_t)kb * 1024u;
            out->ok = true;
        }
    }
    fclose(f);

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* comm may hold spaces and parens: fields start after the last ')'.
         * utime and stime are fields 14 and 15; after ')' comes field 3. */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                        &ut, &st) == 2) {
            long hz = sysconf(_SC_CLK_TCK);
            out->cpu_ns = (uint64_t)(ut + st) * (1000000000u / (uint64_t)hz);
        }
    }

    if (count_fds) {
        DIR *d;
        struct dirent *e;

        snprintf(path, sizeof(path), "/proc/%d/fd", pid);
        d = opendir(path);
        if (d) {
            while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] != '.')
                    out->fds++;
            }
            closedir(d);
        }
    }
}

void lt_proc_sample_sum(const int *pids, uint32_t n, bool count_fds,
                        lt_proc_sample_t *out)
{
    uint32_t i;

    memset(out, 0, sizeof(*out));
    out->at_ns = lt_now_ns();
    out->ok = n > 0;
    for (i = 0; i < n; i++) {
        lt_proc_sample_t s;

        lt_proc_sample(pids[i], count_fds, &s);
        out->ok = out->ok && s.ok;
        out->rss_bytes += s.rss_bytes;
        out->cpu_ns += s.cpu_ns;
        out->fds += s.fds;
    }
}

void lt_host_cpu(uint64_t *total, uint64_t *idle)
{
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int i;

    *total = *idle = 0;
    if (!f)
        return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
               &v[9]) >= 4) {
        /* guest time (8, 9) is already inside user time */
        for (i = 0; i < 8; i++)
            *total += v[i];
        *idle = v[3] + v[4];
    }
    fclose(f);
}

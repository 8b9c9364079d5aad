/* loadtest/lt.h: what every part of roomcast-load shares: the run
 * configuration (immutable after option parsing), the monotonic clock, and
 * the fixed-layout records worker processes send their parent over a pipe.
 * Parent and workers are the same binary (fork without exec), so the records
 * are plain structs copied byte for byte.
 * SPDX-License-Identifier: MIT */
#ifndef LT_H
#define LT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

#define LT_MAX_WORKERS 64
#define LT_MAX_CONNS_PER_PROC 19000 /* the hard open-files cap is 20000 */
#define LT_MAX_SRC_ADDRS 250        /* 127.0.0.2 .. 127.0.0.251 */
#define LT_MAX_SIZE 60000           /* bytes of one delivered msg frame */
#define LT_MAX_ROOMS 1000000
#define LT_MAX_TARGETS 16 /* gateways clients are spread over */
#define LT_MAX_GW_PIDS 16 /* --gateway-pid, repeated */
#define LT_RC_BUCKETS 240 /* drain: resumed welcomes per 0.5 s, 120 s */
#define LT_RC_BUCKET_NS 500000000u
#define LT_LEAVE_ID_BASE                                                       \
    1000000 /* request ids: join k -> 1+k, leave -> base+k */

typedef enum lt_mode {
    LT_FANOUT = 0,
    LT_IDLE,
    LT_BROADCAST,
    LT_CHURN,
    LT_SOAK,
    LT_CALIBRATE,
    LT_DRAIN,
} lt_mode_t;

/* What the clients speak (--proto). */
typedef enum lt_proto {
    LT_PROTO_ROOMCAST = 0, /* roomcast.v1 (PROTOCOL.md) */
    LT_PROTO_SOCKETIO,     /* Engine.IO v4 / Socket.IO v5 over websocket */
} lt_proto_t;

typedef struct lt_target {
    char host[64]; /* IPv4 address */
    uint16_t port;
} lt_target_t;

typedef struct lt_cfg {
    lt_mode_t mode;
    const char *mode_name;
    lt_proto_t proto;
    char host[64]; /* gateway IPv4 address: targets[0] */
    uint16_t port;
    /* Client i connects to targets[i % ntargets] (--target repeated or
     * --targets a,b); ntargets >= 1, targets[0] == host:port. */
    lt_target_t targets[LT_MAX_TARGETS];
    uint32_t ntargets;
    /* drain: where clients told to reconnect go (--resume-target), when
     * the parent sends SIGTERM to term_pid (seconds into the measure
     * phase; < 0: never). */
    lt_target_t resume_target;
    int term_pid;
    double term_after;
    bool ephemeral;          /* --via redis: PUBLISH instead of FCALL */
    bool tls;                /* --tls: clients speak wss (no verification) */
    const char *path;        /* upgrade path, "/ws" */
    const char *room_prefix; /* "load:" */
    uint32_t n;              /* client connections */
    uint32_t workers;        /* worker processes (K) */
    uint32_t src_addrs;      /* source addresses 127.0.0.2.. */
    double ramp;             /* new connections/s, all workers together */
    uint32_t rooms;          /* R */
    uint32_t per_client;     /* M: rooms each client joins */
    double rate;             /* publishes/s */
    uint32_t burst;          /* messages per publish tick, one room (1) */
    double duration;         /* measure (or churn / soak) seconds */
    double settle, drain, timeout, connect_timeout, join_timeout;
    uint32_t size;      /* bytes of a delivered msg frame (approximate) */
    const char *secret; /* borrowed from argv/env */
    const char *alg;    /* "HS256" */
    int64_t ttl_s;      /* token lifetime */
    const char *via;    /* "ws" or "redis" */
    const char *redis_url;
    /* Processes sampled as "the gateway": RSS, CPU and fds are summed
     * over all of them (--gateway-pid, repeatable). gateway_pid is
     * gateway_pids[0], or 0 when there is none (no sampling). */
    int gateway_pid;
    int gateway_pids[LT_MAX_GW_PIDS];
    uint32_t ngateway_pids;
    double sample_interval; /* seconds between gateway samples; 0: none */
    uint32_t messages;      /* broadcast: messages (one at a time) */
    double interval;        /* broadcast: pause between messages, seconds */
    double msg_timeout;     /* broadcast: give up on one message after */
    bool cal_broadcast;     /* calibrate --broadcast */
    bool cal_paced;         /* calibrate --paced: the fanout's shape */
    uint64_t deliveries;    /* calibrate: frames to write; 0: derive */
    bool verbose;
} lt_cfg_t;

static inline uint64_t lt_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Seconds as a double, for reports. */
static inline double lt_ns_s(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* Client i joins room (i + k*R/M) % R for k in 0..M-1. */
static inline uint32_t lt_room_of(uint32_t i, uint32_t k, uint32_t rooms,
                                  uint32_t per_client)
{
    return (uint32_t)(((uint64_t)i + (uint64_t)k * rooms / per_client) % rooms);
}

/* Source address of client i: 127.0.0.(2 + i % src_addrs), host order. */
static inline uint32_t lt_src_addr(uint32_t i, uint32_t src_addrs)
{
    return (127u << 24) | (2u + i % src_addrs);
}

/* ---- worker -> parent records (lt_ipc_send) ---- */

enum lt_ipc_type {
    LT_IPC_RAMP_DONE = 1, /* lt_ramp_report_t */
    LT_IPC_JOINED,        /* lt_joined_report_t + uint32_t members[rooms] */
    LT_IPC_PROGRESS,      /* lt_progress_t */
    LT_IPC_BCAST,         /* lt_bcast_report_t */
    LT_IPC_FINAL,         /* lt_final_t */
    LT_IPC_CAL_READY,     /* lt_cal_ready_t */
    LT_IPC_CAL_MARK,      /* lt_cal_mark_t */
    LT_IPC_CAL_FINAL,     /* lt_cal_final_t */
    LT_IPC_WINDOW,        /* lt_hist_t: latencies since the last one */
};

/* parent -> worker commands: one uint32_t each. */
enum lt_cmd {
    LT_CMD_JOIN = 1,
    LT_CMD_MEASURE,     /* measure phase starts: sample own CPU */
    LT_CMD_MEASURE_END, /* measure phase ends: sample own CPU */
    LT_CMD_CLOSE,       /* send LT_IPC_FINAL, close everything, exit */
    LT_CMD_MARK,        /* drain: SIGTERM sent now; histogram origin */
};

typedef struct lt_ramp_report {
    uint64_t attempted, established, failed;
    uint64_t fail_connect, fail_http, fail_timeout, fail_proto;
    uint64_t http_401, http_other; /* refused upgrades by status */
    uint64_t last_est_ns;          /* when the last one was established */
} lt_ramp_report_t;

typedef struct lt_joined_report {
    uint64_t joins_ok, joins_err, joins_timeout, clients_joined;
    uint32_t rooms; /* members[] follows: joined clients per room */
} lt_joined_report_t;

typedef struct lt_progress {
    uint64_t deliveries;
} lt_progress_t;

typedef struct lt_bcast_report {
    uint64_t seq, count, min_ns, max_ns; /* latencies of one message */
} lt_bcast_report_t;

#define LT_CLOSE_SLOTS 24

typedef struct lt_counters {
    /* connections */
    uint64_t attempted, established, failed;
    uint64_t fail_connect, fail_http, fail_timeout, fail_proto;
    uint64_t http_401, http_other;
    /* requests */
    uint64_t joins_ok, joins_err, joins_timeout, leaves_ok, leaves_err;
    uint64_t clients_joined;
    /* traffic */
    uint64_t deliveries, gaps, dups, unexpected, errors, reconnects;
    uint64_t pings, bytes_in;
    /* drain: reconnect frames acted on, resumed welcomes (resumed:true),
     * welcomes without it, reconnects that failed, rooms the welcome
     * said were not fully recovered, and resumed welcomes per 0.5 s
     * since LT_CMD_MARK */
    uint64_t moves, resumed, resume_refused, move_failed, not_recovered;
    uint64_t rc_hist[LT_RC_BUCKETS];
    uint64_t rf_hist[LT_RC_BUCKETS]; /* the same for refused resumes */
    /* connections lost after establishment */
    uint64_t lost_eof; /* no close frame (counted as close code 1006) */
    uint32_t close_code[LT_CLOSE_SLOTS];
    uint64_t close_count[LT_CLOSE_SLOTS];
    /* churn */
    uint64_t cycles_started, cycles_done, cycles_failed, cycles_aborted;
    /* own CPU during the measure phase */
    uint64_t cpu_measure_ns, wall_measure_ns;
    uint64_t cpu_total_ns;
} lt_counters_t;

/* ---- calibrate records ---- */
typedef struct lt_cal_ready {
    uint64_t connected, failed;
} lt_cal_ready_t;

typedef struct lt_cal_mark {
    uint64_t index; /* broadcast message index */
    uint64_t at_ns; /* when this reader had read all of it */
} lt_cal_mark_t;

typedef struct lt_cal_final {
    uint64_t bytes, cpu_ns;
} lt_cal_final_t;

/* Write one record (header + len bytes) to a pipe, blocking until all of it
 * is written. Returns RC_OK or RC_EIO (the parent is gone). */
RC_MUST_CHECK rc_err_t lt_ipc_send(int fd, uint32_t type, const void *p,
                                   size_t len);
RC_MUST_CHECK rc_err_t lt_ipc_send2(int fd, uint32_t type, const void *a,
                                    size_t alen, const void *b, size_t blen);

typedef struct lt_ipc_hdr {
    uint32_t type;
    uint32_t len;
} lt_ipc_hdr_t;

/* Add one close code to a counters table. */
void lt_counters_close(lt_counters_t *c, uint32_t code);
/* Add src into dst (all fields; close codes merged). */
void lt_counters_merge(lt_counters_t *dst, const lt_counters_t *src);

/* CPU time (user + system) of this process, ns. */
uint64_t lt_cpu_self_ns(void);
/* CPU time of this process plus its waited-for children, ns. */
uint64_t lt_cpu_all_ns(void);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the limit. */
uint64_t lt_raise_nofile(void);

/* One look at another process through /proc. Fields it could not read are
 * left 0 and ok is false. */
typedef struct lt_proc_sample {
    bool ok;
    uint64_t at_ns;     /* lt_now_ns() when taken */
    uint64_t rss_bytes; /* VmRSS */
    uint64_t cpu_ns;    /* utime + stime */
    uint64_t fds;       /* entries of /proc/<pid>/fd; 0 when not counted */
} lt_proc_sample_t;

void lt_proc_sample(int pid, bool count_fds, lt_proc_sample_t *out);
/* The sum of lt_proc_sample() over n pids (n may be 0: all zero, not ok);
 * ok only when every one could be read. */
void lt_proc_sample_sum(const int *pids, uint32_t n, bool count_fds,
                        lt_proc_sample_t *out);

/* Host CPU counters from /proc/stat (all CPUs): total and idle jiffies. */
void lt_host_cpu(uint64_t *total, uint64_t *idle);

#endif /* LT_H */

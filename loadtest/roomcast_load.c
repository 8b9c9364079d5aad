/* loadtest/roomcast_load.c: main() of roomcast-load, the load generator of
 * roomcast (issue 5): parses the command line into an immutable lt_cfg_t
 * and hands it to lt_run() or lt_calib_run(). See loadtest/README.md.
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/lt.h"
#include "loadtest/lt_run.h"

/* The one file-scope mutable: set by SIGINT/SIGTERM, read by the run. */
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: roomcast-load SCENARIO [options]\n"
        "Scenarios: fanout idle broadcast churn soak calibrate drain\n"
        "\n"
        "  --target HOST:PORT     gateway client listener (127.0.0.1:8080);\n"
        "                         repeat it to spread clients round-robin\n"
        "  --targets H:P,H:P,...  the same as a list\n"
        "  --proto roomcast|socketio  client protocol (roomcast); socketio:\n"
        "                         Engine.IO v4 / Socket.IO v5, --via redis\n"
        "  --path PATH            upgrade path (/ws; socketio /socket.io/)\n"
        "  -n, --connections N    client connections (1000)\n"
        "  --workers K            worker processes (ceil(N/19000))\n"
        "  --src-addrs S          source addresses 127.0.0.2.. (N/20000+1)\n"
        "  --ramp R               new connections per second (2000)\n"
        "  --rooms R              rooms (fanout/soak/churn 100, idle 100,\n"
        "                         broadcast 1)\n"
        "  --per-client M         rooms each client joins (1)\n"
        "  --room-prefix P        room names are P<n> (load:)\n"
        "  --rate X               publishes per second (100)\n"
        "  --burst B              B messages to one room per tick, written\n"
        "                         together (1); rate stays messages/s\n"
        "  --duration S           measure seconds (10; soak 60; idle 0)\n"
        "  --size B               bytes of a delivered msg frame (100)\n"
        "  --settle S             pause after joins (1; idle 2)\n"
        "  --drain S              max wait for in-flight deliveries (2)\n"
        "  --timeout S            global deadline (derived)\n"
        "  --connect-timeout S    per connection handshake bound (10)\n"
        "  --join-timeout S       bound on the join phase (10)\n"
        "  --secret S             HS* JWT secret (or ROOMCAST_JWT_SECRET)\n"
        "  --secret-file PATH     file holding the secret\n"
        "  --alg ALG              HS256 | HS384 | HS512 (HS256)\n"
        "  --ttl S                token lifetime (86400)\n"
        "  --via ws|redis         publish path (ws)\n"
        "  --redis-url URL        for --via redis: redis://HOST:PORT\n"
        "  --redis URL            the same\n"
        "  --ephemeral            --via redis: PUBLISH, not FCALL\n"
        "  --tls                  clients connect over TLS (wss; the\n"
        "                         certificate is not verified); publishing\n"
        "                         --via redis only\n"
        "  --resume-target H:P    drain: where told clients reconnect\n"
        "  --term-pid PID         drain: SIGTERM this (default --gateway-pid)\n"
        "  --term-after S         drain: seconds into the measure phase (2)\n"
        "  --gateway-pid PID      sample this process's RSS/CPU/fds; repeat\n"
        "                         it (up to 16): samples are summed\n"
        "  --sample-interval S    gateway sample period (soak 5; else 0)\n"
        "  --messages N           broadcast messages, one at a time (5)\n"
        "  --interval S           pause between broadcast messages (0.2)\n"
        "  --msg-timeout S        give up on one broadcast message (5)\n"
        "  --paced                calibrate: the fanout's shape: --rate "
        "msgs/s,\n"
        "                         one send() to each socket of the room\n"
        "  --broadcast            calibrate: time one frame to all N\n"
        "  --deliveries D         calibrate: frames to write (derived)\n"
        "  -v, --verbose          progress on stderr\n"
        "  -h, --help\n");
}

enum {
    O_TARGET = 256,
    O_PATH,
    O_WORKERS,
    O_SRC,
    O_RAMP,
    O_ROOMS,
    O_PER,
    O_PREFIX,
    O_RATE,
    O_DUR,
    O_SIZE,
    O_SETTLE,
    O_DRAIN,
    O_TIMEOUT,
    O_CTIMEOUT,
    O_JTIMEOUT,
    O_SECRET,
    O_SECRET_FILE,
    O_ALG,
    O_TTL,
    O_VIA,
    O_REDIS,
    O_GWPID,
    O_SAMPLE,
    O_MESSAGES,
    O_INTERVAL,
    O_MSGTIMEOUT,
    O_BROADCAST,
    O_PACED,
    O_DELIVERIES,
    O_TARGETS,
    O_EPHEMERAL,
    O_TLS,
    O_RESUME_TARGET,
    O_TERM_PID,
    O_TERM_AFTER,
    O_BURST,
    O_PROTO,
};

static const struct option opts[] = {
    {"target", required_argument, NULL, O_TARGET},
    {"path", required_argument, NULL, O_PATH},
    {"proto", required_argument, NULL, O_PROTO},
    {"connections", required_argument, NULL, 'n'},
    {"workers", required_argument, NULL, O_WORKERS},
    {"src-addrs", required_argument, NULL, O_SRC},
    {"ramp", required_argument, NULL, O_RAMP},
    {"rooms", required_argument, NULL, O_ROOMS},
    {"per-client", required_argument, NULL, O_PER},
    {"room-prefix", required_argument, NULL, O_PREFIX},
    {"rate", required_argument, NULL, O_RATE},
    {"burst", required_argument, NULL, O_BURST},
    {"duration", required_argument, NULL, O_DUR},
    {"size", required_argument, NULL, O_SIZE},
    {"settle", required_argument, NULL, O_SETTLE},
    {"drain", required_argument, NULL, O_DRAIN},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
    {"join-timeout", required_argument, NULL, O_JTIMEOUT},
    {"secret", required_argument, NULL, O_SECRET},
    {"secret-file", required_argument, NULL, O_SECRET_FILE},
    {"alg", required_argument, NULL, O_ALG},
    {"ttl", required_argument, NULL, O_TTL},
    {"via", required_argument, NULL, O_VIA},
    {"redis-url", required_argument, NULL, O_REDIS},
    {"redis", required_argument, NULL, O_REDIS},
    {"targets", required_argument, NULL, O_TARGETS},
    {"ephemeral", no_argument, NULL, O_EPHEMERAL},
    {"tls", no_argument, NULL, O_TLS},
    {"resume-target", required_argument, NULL, O_RESUME_TARGET},
    {"term-pid", required_argument, NULL, O_TERM_PID},
    {"term-after", required_argument, NULL, O_TERM_AFTER},
    {"gateway-pid", required_argument, NULL, O_GWPID},
    {"sample-interval", required_argument, NULL, O_SAMPLE},
    {"messages", required_argument, NULL, O_MESSAGES},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"msg-timeout", required_argument, NULL, O_MSGTIMEOUT},
    {"broadcast", no_argument, NULL, O_BROADCAST},
    {"paced", no_argument, NULL, O_PACED},
    {"deliveries", required_argument, NULL, O_DELIVERIES},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int num(const char *name, const char *s, double lo, double hi,
               double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "roomcast-load: --%s wants a number in [%g, %g]\n",
                name, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int read_secret(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f) {
        fprintf(stderr, "roomcast-load: %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return n > 0 ? 0 : -1;
}

static const struct {
    const char *name;
    lt_mode_t mode;
} modes[] = {
    {"fanout", LT_FANOUT}, {"idle", LT_IDLE}, {"broadcast", LT_BROADCAST},
    {"churn", LT_CHURN},   {"soak", LT_SOAK}, {"calibrate", LT_CALIBRATE},
    {"drain", LT_DRAIN},
};

/* "HOST:PORT" (len bytes of s) -> t. 0 ok, -1 bad. */
static int parse_target(const char *s, size_t len, lt_target_t *t)
{
    char buf[96], *end;
    const char *colon;
    size_t hl;
    long port;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    colon = strrchr(buf, ':');
    hl = colon ? (size_t)(colon - buf) : 0;
    if (!colon || hl == 0 || hl >= sizeof(t->host))
        return -1;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return -1;
    memcpy(t->host, buf, hl);
    t->host[hl] = '\0';
    t->port = (uint16_t)port;
    return 0;
}

static int add_targets(lt_cfg_t *cfg, const char *list)
{
    const char *p = list;

    while (*p) {
        size_t n = strcspn(p, ",");

        if (cfg->ntargets >= LT_MAX_TARGETS ||
            parse_target(p, n, &cfg->targets[cfg->ntargets]) != 0) {
            fprintf(stderr, "roomcast-load: bad target (or over %d): %.*s\n",
                    LT_MAX_TARGETS, (int)n, p);
            return -1;
        }
        cfg->ntargets++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    lt_cfg_t cfg;
    char secret_buf[1024];
    bool set_dur = false, set_rooms = false, set_settle = false,
         set_sample = false, set_timeout = false, set_workers = false,
         set_src = false, set_rate = false, set_path = false;
    double v;
    size_t i;
    int c;

    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 &&
            (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 1;
    }
    memset(&cfg, 0, sizeof(cfg));
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            cfg.mode = modes[i].mode;
            cfg.mode_name = modes[i].name;
        }
    }
    if (!cfg.mode_name) {
        fprintf(stderr, "roomcast-load: unknown scenario '%s'\n", argv[1]);
        usage(stderr);
        return 1;
    }
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 8080;
    cfg.path = "/ws";
    cfg.room_prefix = "load:";
    cfg.n = 1000;
    cfg.ramp = 2000;
    cfg.rooms = 100;
    cfg.per_client = 1;
    cfg.rate = 100;
    cfg.burst = 1;
    cfg.duration = 10;
    cfg.size = 100;
    cfg.settle = 1;
    cfg.drain = 2;
    cfg.connect_timeout = 10;
    cfg.join_timeout = 10;
    cfg.alg = "HS256";
    cfg.ttl_s = 86400;
    cfg.via = "ws";
    cfg.messages = 5;
    cfg.interval = 0.2;
    cfg.msg_timeout = 5;
    cfg.secret = getenv("ROOMCAST_JWT_SECRET");
    cfg.term_after = -1;

    optind = 2;
    while ((c = getopt_long(argc, argv, "n:vh", opts, NULL)) != -1) {
        switch (c) {
        case O_TARGET:
            if (strchr(optarg, ',') ||
                parse_target(optarg, strlen(optarg),
                             &cfg.targets[cfg.ntargets < LT_MAX_TARGETS
                                              ? cfg.ntargets
                                              : LT_MAX_TARGETS - 1]) != 0 ||
                cfg.ntargets >= LT_MAX_TARGETS) {
                fprintf(stderr, "roomcast-load: bad --target '%s'\n", optarg);
                return 1;
            }
            cfg.ntargets++;
            break;
        case O_TARGETS:
            if (add_targets(&cfg, optarg) != 0)
                return 1;
            break;
        case O_EPHEMERAL:
            cfg.ephemeral = true;
            break;
        case O_TLS:
            cfg.tls = true;
            break;
        case O_RESUME_TARGET:
            if (parse_target(optarg, strlen(optarg), &cfg.resume_target) != 0) {
                fprintf(stderr, "roomcast-load: bad --resume-target '%s'\n",
                        optarg);
                return 1;
            }
            break;
        case O_TERM_PID:
            if (num("term-pid", optarg, 1, 1e9, &v))
                return 1;
            cfg.term_pid = (int)v;
            break;
        case O_TERM_AFTER:
            if (num("term-after", optarg, 0, 3600, &v))
                return 1;
            cfg.term_after = v;
            break;
        case O_PATH:
            cfg.path = optarg;
            set_path = true;
            break;
        case O_PROTO:
            if (strcmp(optarg, "roomcast") == 0) {
                cfg.proto = LT_PROTO_ROOMCAST;
            } else if (strcmp(optarg, "socketio") == 0) {
                cfg.proto = LT_PROTO_SOCKETIO;
            } else {
                fprintf(stderr,
                        "roomcast-load: --proto is roomcast or socketio\n");
                return 1;
            }
            break;
        case 'n':
            if (num("connections", optarg, 1, 1e7, &v))
                return 1;
            cfg.n = (uint32_t)v;
            break;
        case O_WORKERS:
            if (num("workers", optarg, 1, LT_MAX_WORKERS, &v))
                return 1;
            cfg.workers = (uint32_t)v;
            set_workers = true;
            break;
        case O_SRC:
            if (num("src-addrs", optarg, 1, LT_MAX_SRC_ADDRS, &v))
                return 1;
            cfg.src_addrs = (uint32_t)v;
            set_src = true;
            break;
        case O_RAMP:
            if (num("ramp", optarg, 1, 1e7, &v))
                return 1;
            cfg.ramp = v;
            break;
        case O_ROOMS:
            if (num("rooms", optarg, 1, LT_MAX_ROOMS, &v))
                return 1;
            cfg.rooms = (uint32_t)v;
            set_rooms = true;
            break;
        case O_PER:
            if (num("per-client", optarg, 1, 65536, &v))
                return 1;
            cfg.per_client = (uint32_t)v;
            break;
        case O_PREFIX:
            cfg.room_prefix = optarg;
            break;
        case O_RATE:
            if (num("rate", optarg, 0, 1e7, &v))
                return 1;
            cfg.rate = v;
            set_rate = true;
            break;
        case O_BURST:
            if (num("burst", optarg, 1, 10000, &v))
                return 1;
            cfg.burst = (uint32_t)v;
            break;
        case O_DUR:
            if (num("duration", optarg, 0, 1e6, &v))
                return 1;
            cfg.duration = v;
            set_dur = true;
            break;
        case O_SIZE:
            if (num("size", optarg, 16, LT_MAX_SIZE, &v))
                return 1;
            cfg.size = (uint32_t)v;
            break;
        case O_SETTLE:
            if (num("settle", optarg, 0, 3600, &v))
                return 1;
            cfg.settle = v;
            set_settle = true;
            break;
        case O_DRAIN:
            if (num("drain", optarg, 0, 3600, &v))
                return 1;
            cfg.drain = v;
            break;
        case O_TIMEOUT:
            if (num("timeout", optarg, 1, 1e6, &v))
                return 1;
            cfg.timeout = v;
            set_timeout = true;
            break;
        case O_CTIMEOUT:
            if (num("connect-timeout", optarg, 0.1, 3600, &v))
                return 1;
            cfg.connect_timeout = v;
            break;
        case O_JTIMEOUT:
            if (num("join-timeout", optarg, 0.1, 3600, &v))
                return 1;
            cfg.join_timeout = v;
            break;
        case O_SECRET:
            cfg.secret = optarg;
            break;
        case O_SECRET_FILE:
            if (read_secret(optarg, secret_buf, sizeof(secret_buf)) != 0)
                return 1;
            cfg.secret = secret_buf;
            break;
        case O_ALG:
            cfg.alg = optarg;
            break;
        case O_TTL:
            if (num("ttl", optarg, 60, 1e8, &v))
                return 1;
            cfg.ttl_s = (int64_t)v;
            break;
        case O_VIA:
            cfg.via = optarg;
            break;
        case O_REDIS:
            cfg.redis_url = optarg;
            break;
        case O_GWPID:
            if (num("gateway-pid", optarg, 1, 1e9, &v))
                return 1;
            if (cfg.ngateway_pids >= LT_MAX_GW_PIDS) {
                fprintf(stderr, "roomcast-load: at most %d --gateway-pid\n",
                        LT_MAX_GW_PIDS);
                return 1;
            }
            cfg.gateway_pids[cfg.ngateway_pids++] = (int)v;
            cfg.gateway_pid = cfg.gateway_pids[0];
            break;
        case O_SAMPLE:
            if (num("sample-interval", optarg, 0, 3600, &v))
                return 1;
            cfg.sample_interval = v;
            set_sample = true;
            break;
        case O_MESSAGES:
            if (num("messages", optarg, 1, 1024, &v))
                return 1;
            cfg.messages = (uint32_t)v;
            break;
        case O_INTERVAL:
            if (num("interval", optarg, 0, 3600, &v))
                return 1;
            cfg.interval = v;
            break;
        case O_MSGTIMEOUT:
            if (num("msg-timeout", optarg, 0.01, 3600, &v))
                return 1;
            cfg.msg_timeout = v;
            break;
        case O_BROADCAST:
            cfg.cal_broadcast = true;
            break;
        case O_PACED:
            cfg.cal_paced = true;
            break;
        case O_DELIVERIES:
            if (num("deliveries", optarg, 1, 1e12, &v))
                return 1;
            cfg.deliveries = (uint64_t)v;
            break;
        case 'v':
            cfg.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "roomcast-load: unexpected argument '%s'\n",
                argv[optind]);
        return 1;
    }

    if (cfg.ntargets == 0) {
        snprintf(cfg.targets[0].host, sizeof(cfg.targets[0].host), "127.0.0.1");
        cfg.targets[0].port = 8080;
        cfg.ntargets = 1;
    }
    memcpy(cfg.host, cfg.targets[0].host, sizeof(cfg.host));
    cfg.port = cfg.targets[0].port;

    /* Scenario defaults the flags did not override. */
    switch (cfg.mode) {
    case LT_DRAIN:
        if (!cfg.resume_target.port) {
            fprintf(stderr, "roomcast-load: drain needs --resume-target\n");
            return 1;
        }
        if (!cfg.term_pid)
            cfg.term_pid = cfg.gateway_pid;
        if (!cfg.term_pid) {
            fprintf(stderr, "roomcast-load: drain needs --term-pid or "
                            "--gateway-pid\n");
            return 1;
        }
        if (cfg.term_after < 0)
            cfg.term_after = 2;
        if (!set_dur)
            cfg.duration = 30;
        break;
    case LT_IDLE:
        if (!set_dur)
            cfg.duration = 0;
        if (!set_settle)
            cfg.settle = 2;
        cfg.rate = 0;
        break;
    case LT_BROADCAST:
        cfg.rooms = 1;
        cfg.per_client = 1;
        break;
    case LT_SOAK:
        if (!set_dur)
            cfg.duration = 60;
        if (!set_sample)
            cfg.sample_interval = 5;
        break;
    case LT_CALIBRATE:
        if (!set_rate)
            cfg.rate = 0; /* time-bound by --duration instead */
        break;
    default:
        break;
    }
    (void)set_rooms;
    if (cfg.tls &&
        (cfg.mode == LT_FANOUT || cfg.mode == LT_SOAK ||
         cfg.mode == LT_BROADCAST || cfg.mode == LT_DRAIN) &&
        strcmp(cfg.via, "redis") != 0) {
        fprintf(stderr, "roomcast-load: --tls publishes --via redis only (the "
                        "ws publisher speaks plain ws)\n");
        return 1;
    }
    if (cfg.proto == LT_PROTO_SOCKETIO) {
        if (!set_path)
            cfg.path = "/socket.io/";
        if (cfg.mode == LT_DRAIN || cfg.ephemeral) {
            fprintf(stderr, "roomcast-load: --proto socketio has no drain "
                            "and no --ephemeral\n");
            return 1;
        }
        if ((cfg.mode == LT_FANOUT || cfg.mode == LT_SOAK ||
             cfg.mode == LT_BROADCAST) &&
            strcmp(cfg.via, "redis") != 0) {
            fprintf(stderr, "roomcast-load: --proto socketio publishes "
                            "--via redis only\n");
            return 1;
        }
    }
    if (cfg.per_client > cfg.rooms) {
        fprintf(stderr, "roomcast-load: --per-client (%u) > --rooms (%u)\n",
                cfg.per_client, cfg.rooms);
        return 1;
    }
    if (!set_workers)
        cfg.workers =
            (cfg.n + LT_MAX_CONNS_PER_PROC - 1) / LT_MAX_CONNS_PER_PROC;
    if (cfg.workers > LT_MAX_WORKERS ||
        (uint64_t)cfg.workers * LT_MAX_CONNS_PER_PROC < cfg.n) {
        fprintf(stderr,
                "roomcast-load: %u connections need at least %u workers "
                "(at most %u each; max %u workers)\n",
                cfg.n,
                (cfg.n + LT_MAX_CONNS_PER_PROC - 1) / LT_MAX_CONNS_PER_PROC,
                LT_MAX_CONNS_PER_PROC, LT_MAX_WORKERS);
        return 1;
    }
    if (cfg.workers > cfg.n)
        cfg.workers = cfg.n;
    if (!set_src) {
        cfg.src_addrs = cfg.n / 20000 + 1;
        if (cfg.src_addrs > LT_MAX_SRC_ADDRS)
            cfg.src_addrs = LT_MAX_SRC_ADDRS;
    }
    if (strlen(cfg.room_prefix) > 100) {
        fprintf(stderr, "roomcast-load: --room-prefix is too long\n");
        return 1;
    }
    if (cfg.mode != LT_CALIBRATE && (!cfg.secret || !cfg.secret[0])) {
        fprintf(stderr, "roomcast-load: a JWT secret is required (--secret, "
                        "--secret-file or ROOMCAST_JWT_SECRET)\n");
        return 1;
    }
    if (!set_timeout) {
        cfg.timeout = cfg.n / cfg.ramp + cfg.connect_timeout +
                      cfg.join_timeout + cfg.settle * 2 + cfg.duration +
                      cfg.drain + 30;
        if (cfg.mode == LT_BROADCAST || cfg.cal_broadcast)
            cfg.timeout += cfg.messages * (cfg.msg_timeout + cfg.interval);
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    (void)lt_raise_nofile();
    if (cfg.mode == LT_CALIBRATE)
        return lt_calib_run(&cfg, &g_stop);
    return lt_run(&cfg, &g_stop);
}

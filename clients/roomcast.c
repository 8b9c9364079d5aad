/* roomcast: the command-line companion of roomcastd. main() only dispatches
 * to a subcommand (`token`, `publish`, `nodes`, `drain`), each of which
 * parses its own flags with getopt_long (cli_next()). Exit status: 0 done, 1
 * failed, 2 bad arguments (message on stderr). The Redis commands talk to Redis
 * with the synchronous hiredis API: a CLI may block. SPDX-License-Identifier:
 * MIT */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "auth/auth.h"
#include "clients/cli_cluster.h"
#include "common/keys.h"
#include "common/mem.h"
#include "common/redis_url.h"
#include "common/sentinel_sync.h"

#define RC_EXIT_OK 0
#define RC_EXIT_FAIL 1
#define RC_EXIT_USAGE 2

/* A secret file larger than this is surely the wrong file. */
#define RC_CLI_MAX_SECRET (64 * 1024)

typedef struct rc_cli_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} rc_cli_cmd_t;

static int cmd_token(int argc, char **argv);
static int cmd_publish(int argc, char **argv);
static int cmd_nodes(int argc, char **argv);
static int cmd_drain(int argc, char **argv);

static const rc_cli_cmd_t commands[] = {
    {"token", "mint an HS256/HS384/HS512 JWT (development and tests)",
     cmd_token},
    {"publish", "publish a message to a room through Redis", cmd_publish},
    {"nodes", "list the live roomcastd nodes registered in Redis", cmd_nodes},
    {"drain", "ask one node (by id) to drain, through Redis", cmd_drain},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: roomcast <command> [options]\n"
               "       roomcast <command> --help\n"
               "       roomcast --version\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* Options: long ones ("--name value", "--name=value") and -h. Every other
 * word is a positional argument, also one that starts with a single '-':
 * "-5" is JSON data, "-" is stdin, "-x" may be a node id. getopt_long
 * would read such a word as short options, so it parses a copy of argv in
 * which those words are masked, in RETURN_IN_ORDER mode ("-" first in the
 * optstring: no permutation, words come back in place), and a word is read
 * back from the real argv by its index. */
enum {
    CLI_END = -1,     /* no more arguments */
    CLI_BAD = -2,     /* a value is missing (message printed) */
    CLI_UNKNOWN = -3, /* *val: an option that is not one of the command's */
    CLI_WORD = 1,     /* *val: a positional argument (getopt's in-order 1) */
    CLI_HELP = 'h',
};

typedef struct cli_args {
    int argc;
    char **argv;   /* borrowed; argv[0] is the subcommand name */
    char **masked; /* owned: what getopt_long sees */
    const struct option *opts;
    int rest; /* after "--": the next word, or 0 */
} cli_args_t;

static void cli_begin(cli_args_t *g, int argc, char **argv,
                      const struct option *opts)
{
    static char masked_word[] = "word";

    g->argc = argc;
    g->argv = argv;
    g->opts = opts;
    g->rest = 0;
    g->masked = rc_xcalloc((size_t)argc + 1, sizeof(*g->masked));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool short_like =
            i > 0 && a[0] == '-' && a[1] && a[1] != '-' && strcmp(a, "-h") != 0;
        g->masked[i] = short_like ? masked_word : argv[i];
    }
    optind = 0; /* glibc: start over (a fresh scan of this argv) */
    opterr = 0; /* the commands print their own messages */
}

static void cli_end(cli_args_t *g)
{
    free(g->masked);
    g->masked = NULL;
}

/* The next option (its val), word, or CLI_END/CLI_BAD/CLI_UNKNOWN. *val is
 * the option's value, the word, or the unknown option (borrowed from
 * argv). */
static int cli_next(cli_args_t *g, const char **val)
{
    int c;

    *val = NULL;
    if (g->rest) {
        if (g->rest >= g->argc)
            return CLI_END;
        *val = g->argv[g->rest++];
        return CLI_WORD;
    }
    c = getopt_long(g->argc, g->masked, "-:h", g->opts, NULL);
    switch (c) {
    case -1:
        /* The end, or "--": every word after it is positional. */
        if (optind < g->argc) {
            g->rest = optind;
            return cli_next(g, val);
        }
        return CLI_END;
    case CLI_WORD:
        *val = g->argv[optind - 1];
        return CLI_WORD;
    case ':':
        fprintf(stderr, "roomcast %s: %s needs a value\n", g->argv[0],
                g->argv[optind - 1]);
        return CLI_BAD;
    case '?':
        *val = g->argv[optind - 1];
        return CLI_UNKNOWN;
    default:
        *val = optarg;
        return c;
    }
}

/* Reads the secret file as roomcastd reads jwt_secret_file: its bytes, less
 * one trailing newline ("\n" or "\r\n", as editors and echo add), so that
 * both sides sign with the same key. "-" is stdin. */
static unsigned char *read_secret(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n;

    if (!f) {
        fprintf(stderr, "roomcast token: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = rc_xmalloc(RC_CLI_MAX_SECRET + 1);
    n = fread(buf, 1, RC_CLI_MAX_SECRET + 1, f);
    if (ferror(f)) {
        fprintf(stderr, "roomcast token: %s: read error\n", path);
        goto fail;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n == 0 || n > RC_CLI_MAX_SECRET) {
        fprintf(stderr, "roomcast token: %s: the secret must be 1..%d bytes\n",
                path, RC_CLI_MAX_SECRET);
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    *len = n;
    return buf;
fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return NULL;
}

static void token_usage(FILE *f)
{
    fprintf(f,
            "usage: roomcast token (--secret S | --secret-file F) --sub ID\n"
            "                      --rooms PATTERN [--rooms PATTERN ...]\n"
            "                      [--pub PATTERN ...] --ttl SECONDS\n"
            "                      [--alg HS256|HS384|HS512]\n\n"
            "Prints a signed JWT with claims sub, rooms, pub, iat and exp.\n"
            "A pattern is a room name, a prefix ending in '*' (\"chat:*\"),\n"
            "or \"*\". --secret is visible to other users in ps(1); prefer\n"
            "--secret-file (read as roomcastd reads jwt_secret_file: one\n"
            "trailing newline is dropped; \"-\" is stdin).\n");
}

enum {
    OPT_SECRET = 256,
    OPT_SECRET_FILE,
    OPT_ALG,
    OPT_SUB,
    OPT_ROOMS,
    OPT_PUB,
    OPT_TTL,
    OPT_REDIS,
    OPT_PREFIX,
    OPT_EPHEMERAL,
    OPT_JSON,
    OPT_WAIT,
    OPT_WAIT_TIMEOUT,
};

static const struct option token_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"secret", required_argument, NULL, OPT_SECRET},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"alg", required_argument, NULL, OPT_ALG},
    {"sub", required_argument, NULL, OPT_SUB},
    {"rooms", required_argument, NULL, OPT_ROOMS},
    {"pub", required_argument, NULL, OPT_PUB},
    {"ttl", required_argument, NULL, OPT_TTL},
    {NULL, 0, NULL, 0},
};

static int cmd_token(int argc, char **argv)
{
    const char *alg = "HS256", *secret = NULL, *secret_file = NULL;
    const char *sub = NULL, *ttl_arg = NULL, *val;
    const char **rooms = rc_xcalloc((size_t)argc, sizeof *rooms);
    const char **pub = rc_xcalloc((size_t)argc, sizeof *pub);
    size_t nrooms = 0, npub = 0, secret_len = 0;
    unsigned char *file_secret = NULL;
    char err[160], *tok = NULL, *end;
    long long ttl;
    int rc = RC_EXIT_USAGE, opt;
    cli_args_t g;

    cli_begin(&g, argc, argv, token_opts);
    while ((opt = cli_next(&g, &val)) != CLI_END) {
        switch (opt) {
        case CLI_HELP:
            token_usage(stdout);
            rc = RC_EXIT_OK;
            goto done;
        case OPT_SECRET_FILE:
            secret_file = val;
            break;
        case OPT_SECRET:
            secret = val;
            break;
        case OPT_ALG:
            alg = val;
            break;
        case OPT_SUB:
            sub = val;
            break;
        case OPT_ROOMS:
            rooms[nrooms++] = val;
            break;
        case OPT_PUB:
            pub[npub++] = val;
            break;
        case OPT_TTL:
            ttl_arg = val;
            break;
        case CLI_BAD:
            goto usage;
        default: /* a word, or an unknown option */
            fprintf(stderr, "roomcast token: unknown argument '%s'\n", val);
            goto usage;
        }
    }

    if (!!secret == !!secret_file) {
        fprintf(stderr, "roomcast token: give exactly one of --secret and "
                        "--secret-file\n");
        goto usage;
    }
    if (!sub || !nrooms || !ttl_arg) {
        fprintf(stderr, "roomcast token: --sub, --rooms and --ttl are "
                        "required\n");
        goto usage;
    }
    errno = 0;
    ttl = strtoll(ttl_arg, &end, 10);
    if (errno || end == ttl_arg || *end || ttl <= 0) {
        fprintf(stderr, "roomcast token: --ttl must be a positive number of "
                        "seconds\n");
        goto usage;
    }
    if (strcmp(alg, "HS256") && strcmp(alg, "HS384") && strcmp(alg, "HS512")) {
        fprintf(stderr, "roomcast token: --alg must be HS256, HS384 or HS512 "
                        "(RS*/ES* tokens come from your identity provider)\n");
        goto usage;
    }
    if (secret_file) {
        file_secret = read_secret(secret_file, &secret_len);
        if (!file_secret) {
            rc = RC_EXIT_FAIL;
            goto done;
        }
    } else {
        secret_len = strlen(secret);
    }

    tok = rc_auth_mint(
        alg, file_secret ? file_secret : (const unsigned char *)secret,
        secret_len, sub, rooms, nrooms, pub, npub, (int64_t)time(NULL),
        (int64_t)ttl, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "roomcast token: %s\n", err);
        goto done; /* every mint refusal is about the arguments */
    }
    printf("%s\n", tok);
    rc = fflush(stdout) == 0 ? RC_EXIT_OK : RC_EXIT_FAIL;
    goto done;

usage:
    token_usage(stderr);
done:
    free(tok);
    if (file_secret) {
        OPENSSL_cleanse(file_secret, secret_len);
        free(file_secret);
    }
    free(rooms);
    free(pub);
    cli_end(&g);
    return rc;
}

/* ------------------------------------------------------------- Redis */

#define RC_CLI_DEFAULT_REDIS "redis://127.0.0.1:6379"
#define RC_CLI_DEFAULT_PREFIX "roomcast:"
#define RC_CLI_REDIS_TIMEOUT_S 5
#define RC_CLI_WAIT_TIMEOUT_MS 1000 /* --wait-timeout-ms default */
#define RC_CLI_WAIT_MAX_REPLICAS 1000
#define RC_CLI_WAIT_MAX_MS 3600000
/* The largest data roomcastd accepts (max_publish's upper bound). */
#define RC_CLI_MAX_DATA (16 * 1024 * 1024)
#define RC_CLI_ROOM_MAX 128
#define RC_CLI_NODE_ID_MAX 128
#define RC_CLI_PREFIX_MAX 64
/* SCAN pages at most this many registry keys; a fleet is far smaller. */
#define RC_CLI_MAX_NODES 100000

/* Where a Redis subcommand talks to: --redis, else $ROOMCAST_REDIS_URL, else
 * RC_CLI_DEFAULT_REDIS; --prefix, else "roomcast:" (roomcastd's key_prefix
 * default). Both borrowed from argv or the environment. */
typedef struct cli_redis {
    const char *url;
    const char *prefix;
} cli_redis_t;

static void cli_redis_defaults(cli_redis_t *o)
{
    const char *env = getenv("ROOMCAST_REDIS_URL");

    o->url = env && *env ? env : RC_CLI_DEFAULT_REDIS;
    o->prefix = RC_CLI_DEFAULT_PREFIX;
}

/* Takes --redis and --prefix, which every Redis subcommand has; false when
 * opt is another option. */
static bool cli_redis_opt(cli_redis_t *o, int opt, const char *val)
{
    if (opt == OPT_REDIS)
        o->url = val;
    else if (opt == OPT_PREFIX)
        o->prefix = val;
    else
        return false;
    return true;
}

/* PROTOCOL section 2: 1..128 bytes of A-Z a-z 0-9 _ - . : / @ */
static bool room_ok(const char *room)
{
    size_t n = strlen(room);

    if (n == 0 || n > RC_CLI_ROOM_MAX)
        return false;
    for (const char *p = room; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("_-.:/@", *p)))
            return false;
    return true;
}

/* As roomcastd checks node_id: 1..128 printable bytes, no spaces. */
static bool node_id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > RC_CLI_NODE_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

/* Checks the options; returns RC_EXIT_OK or RC_EXIT_USAGE, with a message
 * printed. */
static int cli_redis_check(const char *who, const cli_redis_t *o,
                           rc_redis_url_t *u)
{
    if (rc_redis_url_parse(o->url, u) != RC_OK) {
        fprintf(stderr,
                "roomcast %s: bad Redis URL (expected "
                "redis://[[user]:password@]host[:port][/db] or "
                "redis-sentinel://[[user]:password@]host[:port][,host[:port]"
                "...][/db]#master or redis-cluster://host[:port][,...])\n",
                who);
        return RC_EXIT_USAGE;
    }
    if (!rc_redis_prefix_ok(o->prefix)) {
        fprintf(stderr,
                "roomcast %s: --prefix: at most %d bytes, no quotes, braces, "
                "backslashes or control characters\n",
                who, RC_CLI_PREFIX_MAX);
        return RC_EXIT_USAGE;
    }
    return RC_EXIT_OK;
}

/* Runs one command; returns an owned reply (freeReplyObject()), or NULL
 * with a message printed when the connection failed. An error reply is
 * returned as such. */
static redisReply *cli_cmd(redisContext *c, const char *who, int argc,
                           const char **argv, const size_t *lens)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, lens);

    if (!rep)
        fprintf(stderr, "roomcast %s: Redis %s: %s\n", who, argv[0],
                c->errstr[0] ? c->errstr : "no reply");
    return rep;
}

/* Connects (for redis-sentinel://, to the master the sentinels name and
 * ROLE confirms), authenticates and selects the database; returns an owned
 * context (redisFree()) or NULL with a message printed. */
static redisContext *cli_connect(const char *who, const rc_redis_url_t *u)
{
    struct timeval tv = {RC_CLI_REDIS_TIMEOUT_S, 0};
    redisContext *c = NULL;
    redisReply *rep = NULL;
    const char *host = u->host;
    int port = u->port;
    char db[16], mip[256], serr[256];

    if (u->topo == RC_REDIS_SENTINEL) {
        if (rc_sentinel_resolve_sync(u, mip, sizeof(mip), &port, serr,
                                     sizeof(serr)) != RC_OK) {
            fprintf(stderr,
                    "roomcast %s: no sentinel named a master for '%s' (last: "
                    "%s)\n",
                    who, u->master, serr[0] ? serr : "no answer");
            return NULL;
        }
        host = mip;
    }
    c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        fprintf(stderr, "roomcast %s: cannot connect to Redis at %s:%d: %s\n",
                who, host, port, c ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fprintf(stderr, "roomcast %s: cannot set the Redis timeout\n", who);
        goto fail;
    }
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user, u->password};
        size_t lens[3] = {4, strlen(u->user), strlen(u->password)};
        int off = u->user[0] ? 0 : 1; /* AUTH password | AUTH user password */
        if (off) {
            argv[1] = u->password;
            lens[1] = lens[2];
        }
        rep = cli_cmd(c, who, 3 - off, argv, lens);
        if (!rep)
            goto fail;
        if (rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "roomcast %s: Redis AUTH: %s\n", who, rep->str);
            goto fail;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    if (u->db) {
        const char *argv[2] = {"SELECT", db};
        size_t lens[2];
        snprintf(db, sizeof(db), "%d", u->db);
        lens[0] = 6;
        lens[1] = strlen(db);
        rep = cli_cmd(c, who, 2, argv, lens);
        if (!rep)
            goto fail;
        if (rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "roomcast %s: Redis SELECT: %s\n", who, rep->str);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return c;
fail:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    return NULL;
}

static char *strprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* An owned (free()) formatted string. */
static char *strprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = rc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Reads all of stdin, at most RC_CLI_MAX_DATA bytes; owned, or NULL with a
 * message printed. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0, got;
    char *buf = rc_xmalloc(cap);

    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n > RC_CLI_MAX_DATA) {
            fprintf(stderr, "roomcast publish: data over %d bytes\n",
                    RC_CLI_MAX_DATA);
            free(buf);
            return NULL;
        }
        if (n == cap) {
            cap *= 2;
            buf = rc_xrealloc(buf, cap);
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "roomcast publish: cannot read stdin\n");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void publish_usage(FILE *f)
{
    fprintf(f,
            "usage: roomcast publish ROOM JSON|- [--ephemeral]\n"
            "                        [--wait N [--wait-timeout-ms MS]]\n"
            "                        [--redis URL] [--prefix P]\n\n"
            "Publishes JSON (\"-\": read it from stdin) to ROOM through "
            "Redis.\n"
            "Durable (default): FCALL roomcast_publish; prints the new seq.\n"
            "--ephemeral: PUBLISH P{ROOM}; no seq, no history.\n"
            "--wait N: then WAIT N MS (default %d ms): the message is on N\n"
            "replicas, so a failover keeps it. Fewer in time: the seq is\n"
            "still printed (it was published) and the exit status is 1.\n"
            "Data that is not valid JSON is refused here (exit 2).\n"
            "--redis defaults to $ROOMCAST_REDIS_URL, else %s;\n"
            "--prefix to \"%s\" (roomcastd's key_prefix).\n",
            RC_CLI_WAIT_TIMEOUT_MS, RC_CLI_DEFAULT_REDIS,
            RC_CLI_DEFAULT_PREFIX);
}

/* A count or duration option: 0..max, decimal; false when it is not. */
static bool parse_uint_opt(const char *s, long long max, long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* Sends WAIT nrep timeout_ms after the FCALL that gave seq; RC_EXIT_OK when
 * at least nrep replicas confirmed, else RC_EXIT_FAIL (message printed). */
static int publish_wait(redisContext *c, long long seq, long long nrep,
                        long long timeout_ms)
{
    char n[24], t[24];
    const char *av[3] = {"WAIT", n, t};
    size_t lens[3] = {4, 0, 0};
    redisReply *rep;
    int rc = RC_EXIT_FAIL;

    snprintf(n, sizeof(n), "%lld", nrep);
    snprintf(t, sizeof(t), "%lld", timeout_ms);
    lens[1] = strlen(n);
    lens[2] = strlen(t);
    /* WAIT blocks on the server for up to timeout_ms: the socket timeout
     * must outlast it. */
    {
        struct timeval tv = {(time_t)(timeout_ms / 1000) +
                                 RC_CLI_REDIS_TIMEOUT_S,
                             (suseconds_t)(timeout_ms % 1000) * 1000};
        if (redisSetTimeout(c, tv) != REDIS_OK) {
            fprintf(stderr, "roomcast publish: cannot set the Redis "
                            "timeout\n");
            return RC_EXIT_FAIL;
        }
    }
    rep = cli_cmd(c, "publish", 3, av, lens);
    if (!rep)
        return RC_EXIT_FAIL;
    if (rep->type != REDIS_REPLY_INTEGER)
        fprintf(stderr, "roomcast publish: Redis WAIT: %s\n",
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    else if (rep->integer < nrep)
        fprintf(stderr,
                "roomcast publish: seq %lld was published but only %lld of "
                "%lld replicas confirmed it within %lld ms: a failover now "
                "may lose it\n",
                seq, rep->integer, nrep, timeout_ms);
    else
        rc = RC_EXIT_OK;
    freeReplyObject(rep);
    return rc;
}

static const struct option publish_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"ephemeral", no_argument, NULL, OPT_EPHEMERAL},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"wait-timeout-ms", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {NULL, 0, NULL, 0},
};

static int cmd_publish(int argc, char **argv)
{
    cli_redis_t o;
    rc_redis_url_t u;
    const char *pos[2] = {NULL, NULL}, *val;
    int npos = 0, opt, rc = RC_EXIT_USAGE;
    bool ephemeral = false;
    long long wait_n = -1, wait_ms = RC_CLI_WAIT_TIMEOUT_MS;
    const char *wait_ms_arg = NULL;
    char *stdin_data = NULL, chan[RC_KEYS_MAX];
    const char *data;
    size_t dlen;
    json_error_t jerr;
    json_t *j;
    redisContext *c = NULL;
    redisReply *rep = NULL;
    cli_args_t g;

    cli_redis_defaults(&o);
    cli_begin(&g, argc, argv, publish_opts);
    while ((opt = cli_next(&g, &val)) != CLI_END) {
        if (cli_redis_opt(&o, opt, val))
            continue;
        switch (opt) {
        case CLI_HELP:
            publish_usage(stdout);
            rc = RC_EXIT_OK;
            goto done;
        case OPT_EPHEMERAL:
            ephemeral = true;
            break;
        case OPT_WAIT:
            if (!parse_uint_opt(val, RC_CLI_WAIT_MAX_REPLICAS, &wait_n)) {
                fprintf(stderr,
                        "roomcast publish: --wait takes a number of "
                        "replicas, 0 to %d\n",
                        RC_CLI_WAIT_MAX_REPLICAS);
                goto usage;
            }
            break;
        case OPT_WAIT_TIMEOUT:
            wait_ms_arg = val;
            if (!parse_uint_opt(val, RC_CLI_WAIT_MAX_MS, &wait_ms) ||
                wait_ms == 0) {
                fprintf(stderr,
                        "roomcast publish: --wait-timeout-ms takes 1 to %d "
                        "milliseconds (WAIT's 0 would block forever)\n",
                        RC_CLI_WAIT_MAX_MS);
                goto usage;
            }
            break;
        case CLI_WORD:
            if (npos == 2) {
                fprintf(stderr, "roomcast publish: unexpected argument '%s'\n",
                        val);
                goto usage;
            }
            pos[npos++] = val;
            break;
        case CLI_UNKNOWN:
            fprintf(stderr, "roomcast publish: unknown option '%s'\n", val);
            goto usage;
        default:
            goto usage;
        }
    }
    if (npos != 2) {
        fprintf(stderr, "roomcast publish: ROOM and JSON are required\n");
        goto usage;
    }
    if (ephemeral && (wait_n >= 0 || wait_ms_arg)) {
        fprintf(stderr, "roomcast publish: --wait is for durable messages "
                        "(an ephemeral one is kept nowhere)\n");
        goto usage;
    }
    if (wait_ms_arg && wait_n < 0) {
        fprintf(stderr, "roomcast publish: --wait-timeout-ms needs --wait\n");
        goto usage;
    }
    if (!room_ok(pos[0])) {
        fprintf(stderr,
                "roomcast publish: bad room name '%s' (1 to %d bytes of "
                "A-Z a-z 0-9 _ - . : / @)\n",
                pos[0], RC_CLI_ROOM_MAX);
        goto done;
    }
    if ((rc = cli_redis_check("publish", &o, &u)) != RC_EXIT_OK)
        goto done;
    rc = RC_EXIT_USAGE; /* until the data is read and checked */
    if (!strcmp(pos[1], "-")) {
        stdin_data = read_stdin(&dlen);
        if (!stdin_data) {
            rc = RC_EXIT_FAIL;
            goto done;
        }
        data = stdin_data;
    } else {
        data = pos[1];
        dlen = strlen(data);
    }
    /* The same check roomcastd makes before a message reaches clients:
     * refusing here beats a message that is silently dropped (and, when
     * durable, a seq that no client ever sees). */
    j = json_loadb(data, dlen, JSON_DECODE_ANY, &jerr);
    if (!j) {
        fprintf(stderr,
                "roomcast publish: data is not valid JSON: %s (line %d, "
                "column %d)\n",
                jerr.text, jerr.line, jerr.column);
        goto done;
    }
    json_decref(j);

    if (u.topo == RC_REDIS_CLUSTER) { /* routed by the room's slot */
        rc =
            rc_cli_cluster_publish(&u, o.prefix, pos[0], data, dlen, ephemeral);
        goto done;
    }
    c = cli_connect("publish", &u);
    if (!c) {
        rc = RC_EXIT_FAIL;
        goto done;
    }
    rc = RC_EXIT_FAIL;
    if (ephemeral) {
        const char *av[3] = {"PUBLISH", chan, data};
        size_t lens[3] = {7, 0, dlen};
        /* prefix and room are checked: it fits */
        if (rc_keys_room(chan, sizeof(chan), o.prefix, pos[0]) != RC_OK)
            goto done;
        lens[1] = strlen(chan);
        rep = cli_cmd(c, "publish", 3, av, lens);
        if (!rep)
            goto done;
        if (rep->type != REDIS_REPLY_INTEGER) {
            fprintf(stderr, "roomcast publish: Redis PUBLISH: %s\n",
                    rep->type == REDIS_REPLY_ERROR ? rep->str
                                                   : "unexpected reply");
            goto done;
        }
        if (rep->integer == 0)
            fprintf(stderr,
                    "roomcast publish: note: no node has members in '%s'; "
                    "nobody got the message\n",
                    pos[0]);
        rc = RC_EXIT_OK;
    } else {
        const char *av[5] = {"FCALL", "roomcast_publish", "1", pos[0], data};
        size_t lens[5] = {5, 16, 1, strlen(pos[0]), dlen};
        rep = cli_cmd(c, "publish", 5, av, lens);
        if (!rep)
            goto done;
        if (rep->type != REDIS_REPLY_INTEGER) {
            const char *e = rep->type == REDIS_REPLY_ERROR ? rep->str
                                                           : "unexpected "
                                                             "reply";
            fprintf(stderr, "roomcast publish: Redis FCALL: %s\n", e);
            if (strstr(e, "Function not found"))
                fprintf(stderr,
                        "roomcast publish: roomcastd loads the function "
                        "library when it starts: is a node running against "
                        "this Redis (and database)?\n");
            goto done;
        }
        printf("%lld\n", rep->integer);
        rc = fflush(stdout) == 0 ? RC_EXIT_OK : RC_EXIT_FAIL;
        if (rc == RC_EXIT_OK && wait_n > 0)
            rc = publish_wait(c, rep->integer, wait_n, wait_ms);
    }
    goto done;

usage:
    publish_usage(stderr);
done:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    free(stdin_data);
    cli_end(&g);
    return rc;
}

static int64_t wall_ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One registry entry, as a node wrote it: {"id","addr","state",
 * "connections","rooms","ts"}. */
typedef struct node_row {
    json_t *obj; /* owned; with "age_ms" added */
    char *id, *addr, *state, *workers, *conns, *rooms, *age;
} node_row_t;

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const node_row_t *)a)->id, ((const node_row_t *)b)->id);
}

static char *json_field_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (json_is_string(v))
        return rc_xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return strprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return rc_xstrdup("-");
}

/* Fills row from the key's name and its value (which may be gone: the
 * entry expired between SCAN and GET). Returns false to skip it. */
static bool row_fill(node_row_t *row, const char *key, const char *prefix,
                     const redisReply *val, int64_t now)
{
    const char *id = rc_keys_node_id_of(prefix, key);
    json_t *ts;

    memset(row, 0, sizeof(*row));
    if (val->type != REDIS_REPLY_STRING || !id)
        return false;
    row->obj = json_loadb(val->str, val->len, 0, NULL);
    if (!json_is_object(row->obj)) {
        /* Not ours, or damaged: show it, do not hide it. */
        json_decref(row->obj);
        row->obj = json_pack("{s:s, s:s}", "id", id, "state", "invalid");
    }
    if (!json_is_string(json_object_get(row->obj, "id")))
        json_object_set_new(row->obj, "id", json_string(id));
    ts = json_object_get(row->obj, "ts");
    if (json_is_integer(ts))
        json_object_set_new(row->obj, "age_ms",
                            json_integer(now - json_integer_value(ts)));
    row->id = json_field_str(row->obj, "id");
    row->addr = json_field_str(row->obj, "addr");
    row->state = json_field_str(row->obj, "state");
    /* Worker processes of the node (docs/WORKERS.md); 1 when not said. */
    row->workers = json_object_get(row->obj, "workers")
                       ? json_field_str(row->obj, "workers")
                       : rc_xstrdup("1");
    row->conns = json_field_str(row->obj, "connections");
    row->rooms = json_field_str(row->obj, "rooms");
    if (json_is_integer(ts))
        row->age =
            strprintf("%.1fs", (double)(now - json_integer_value(ts)) / 1000.0);
    else
        row->age = rc_xstrdup("-");
    return true;
}

static void row_free(node_row_t *row)
{
    json_decref(row->obj);
    free(row->id);
    free(row->addr);
    free(row->state);
    free(row->workers);
    free(row->conns);
    free(row->rooms);
    free(row->age);
}

static void nodes_usage(FILE *f)
{
    fprintf(f,
            "usage: roomcast nodes [--json] [--redis URL] [--prefix P]\n\n"
            "Lists the live roomcastd nodes from their registry entries in\n"
            "Redis (Pnode:<id>, written every 2 s, deleted when a node\n"
            "stops, expired 10 s after one died): id, client address, state\n"
            "(serving, draining, stopping), worker processes, client\n"
            "connections, rooms, and\n"
            "the age of the entry.\n"
            "--json prints the entries as a JSON array (with age_ms).\n"
            "--redis defaults to $ROOMCAST_REDIS_URL, else %s;\n"
            "--prefix to \"%s\".\n",
            RC_CLI_DEFAULT_REDIS, RC_CLI_DEFAULT_PREFIX);
}

static void print_cell(const char *s, int width, bool last)
{
    if (last)
        printf("%s\n", s);
    else
        printf("%-*s  ", width, s);
}

static const struct option nodes_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"json", no_argument, NULL, OPT_JSON},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {NULL, 0, NULL, 0},
};

static int cmd_nodes(int argc, char **argv)
{
    static const char *const head[7] = {"ID",    "ADDR",  "STATE", "WORKERS",
                                        "CONNS", "ROOMS", "AGE"};
    cli_redis_t o;
    rc_redis_url_t u;
    bool as_json = false;
    int opt, rc = RC_EXIT_USAGE, width[7];
    char **keys = NULL, pattern[RC_KEYS_MAX], cursor[32] = "0";
    const char *val;
    size_t nkeys = 0, capkeys = 0, nrows = 0;
    node_row_t *rows = NULL;
    redisContext *c = NULL;
    redisReply *rep = NULL;
    int64_t now;
    cli_args_t g;

    cli_redis_defaults(&o);
    cli_begin(&g, argc, argv, nodes_opts);
    while ((opt = cli_next(&g, &val)) != CLI_END) {
        if (cli_redis_opt(&o, opt, val))
            continue;
        switch (opt) {
        case CLI_HELP:
            nodes_usage(stdout);
            rc = RC_EXIT_OK;
            goto done;
        case OPT_JSON:
            as_json = true;
            break;
        case CLI_BAD:
            goto usage;
        default: /* a word, or an unknown option */
            fprintf(stderr, "roomcast nodes: unknown argument '%s'\n", val);
            goto usage;
        }
    }
    if ((rc = cli_redis_check("nodes", &o, &u)) != RC_EXIT_OK)
        goto done;
    rc = RC_EXIT_FAIL;
    /* a checked prefix (64 bytes at most) always fits */
    if (rc_keys_registry_pattern(pattern, sizeof(pattern), o.prefix) != RC_OK)
        goto done;
    if (u.topo == RC_REDIS_CLUSTER) {
        /* the registry spreads over every master */
        redisReply **vals = NULL;
        if (rc_cli_cluster_registry(&u, pattern, RC_CLI_MAX_NODES, &keys, &vals,
                                    &nkeys) == RC_EXIT_OK) {
            rows = rc_xcalloc(nkeys ? nkeys : 1, sizeof(*rows));
            now = wall_ms_now();
            for (size_t k = 0; k < nkeys; k++)
                if (row_fill(&rows[nrows], keys[k], o.prefix, vals[k], now))
                    nrows++;
        }
        for (size_t k = 0; k < nkeys; k++)
            if (vals[k])
                freeReplyObject(vals[k]);
        free(vals);
        if (!rows)
            goto done;
        goto print;
    }
    c = cli_connect("nodes", &u);
    if (!c)
        goto done;

    /* SCAN, not KEYS: it never blocks a busy Redis. It may return a key
     * twice, so duplicates are skipped. */
    do {
        const char *av[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        size_t lens[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 4};
        redisReply *page;
        rep = cli_cmd(c, "nodes", 6, av, lens);
        if (!rep)
            goto done;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "roomcast nodes: Redis SCAN: %s\n",
                    rep->type == REDIS_REPLY_ERROR ? rep->str
                                                   : "unexpected reply");
            goto done;
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        page = rep->element[1];
        for (size_t k = 0; k < page->elements; k++) {
            redisReply *e = page->element[k];
            bool dup = false;
            if (e->type != REDIS_REPLY_STRING)
                continue;
            for (size_t d = 0; d < nkeys && !dup; d++)
                dup = strcmp(keys[d], e->str) == 0;
            if (dup)
                continue;
            if (nkeys >= RC_CLI_MAX_NODES) {
                fprintf(stderr,
                        "roomcast nodes: more than %d registry "
                        "entries; stopping\n",
                        RC_CLI_MAX_NODES);
                goto done;
            }
            if (nkeys == capkeys) {
                capkeys = capkeys ? capkeys * 2 : 16;
                keys = rc_xrealloc(keys, capkeys * sizeof(*keys));
            }
            keys[nkeys++] = rc_xstrdup(e->str);
        }
        freeReplyObject(rep);
        rep = NULL;
    } while (strcmp(cursor, "0") != 0);

    rows = rc_xcalloc(nkeys ? nkeys : 1, sizeof(*rows));
    now = wall_ms_now();
    for (size_t k = 0; k < nkeys; k++) {
        const char *av[2] = {"GET", keys[k]};
        size_t lens[2] = {3, strlen(keys[k])};
        rep = cli_cmd(c, "nodes", 2, av, lens);
        if (!rep)
            goto done;
        if (rep->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "roomcast nodes: Redis GET %s: %s\n", keys[k],
                    rep->str);
            goto done;
        }
        if (row_fill(&rows[nrows], keys[k], o.prefix, rep, now))
            nrows++;
        freeReplyObject(rep);
        rep = NULL;
    }
print:
    qsort(rows, nrows, sizeof(*rows), row_cmp);

    if (as_json) {
        json_t *arr = json_array();
        char *txt;
        for (size_t k = 0; k < nrows; k++)
            json_array_append(arr, rows[k].obj);
        txt = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(arr);
        if (!txt)
            goto done;
        printf("%s\n", txt);
        free(txt);
    } else {
        for (int col = 0; col < 7; col++)
            width[col] = (int)strlen(head[col]);
        for (size_t k = 0; k < nrows; k++) {
            const char *cells[7] = {
                rows[k].id,    rows[k].addr,  rows[k].state, rows[k].workers,
                rows[k].conns, rows[k].rooms, rows[k].age};
            for (int col = 0; col < 7; col++)
                if ((int)strlen(cells[col]) > width[col])
                    width[col] = (int)strlen(cells[col]);
        }
        for (int col = 0; col < 7; col++)
            print_cell(head[col], width[col], col == 6);
        for (size_t k = 0; k < nrows; k++) {
            const char *cells[7] = {
                rows[k].id,    rows[k].addr,  rows[k].state, rows[k].workers,
                rows[k].conns, rows[k].rooms, rows[k].age};
            for (int col = 0; col < 7; col++)
                print_cell(cells[col], width[col], col == 6);
        }
        if (nrows == 0)
            fprintf(stderr, "roomcast nodes: no live node is registered "
                            "under this prefix\n");
    }
    rc = fflush(stdout) == 0 ? RC_EXIT_OK : RC_EXIT_FAIL;
    goto done;

usage:
    nodes_usage(stderr);
done:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    for (size_t k = 0; k < nrows; k++)
        row_free(&rows[k]);
    free(rows);
    for (size_t k = 0; k < nkeys; k++)
        free(keys[k]);
    free(keys);
    cli_end(&g);
    return rc;
}

static void drain_usage(FILE *f)
{
    fprintf(f,
            "usage: roomcast drain NODE [--redis URL] [--prefix P]\n\n"
            "Asks node NODE (its node_id; see `roomcast nodes`) to drain: it\n"
            "stops taking clients, sends its clients `reconnect`, and exits\n"
            "when they are gone. Fails (exit 1) when no node of that id\n"
            "listens on its control channel.\n"
            "--redis defaults to $ROOMCAST_REDIS_URL, else %s;\n"
            "--prefix to \"%s\".\n",
            RC_CLI_DEFAULT_REDIS, RC_CLI_DEFAULT_PREFIX);
}

static const struct option drain_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {NULL, 0, NULL, 0},
};

static int cmd_drain(int argc, char **argv)
{
    cli_redis_t o;
    rc_redis_url_t u;
    const char *node = NULL, *val;
    int opt, rc = RC_EXIT_USAGE;
    char chan[RC_KEYS_MAX];
    redisContext *c = NULL;
    redisReply *rep = NULL;
    cli_args_t g;

    cli_redis_defaults(&o);
    cli_begin(&g, argc, argv, drain_opts);
    while ((opt = cli_next(&g, &val)) != CLI_END) {
        if (cli_redis_opt(&o, opt, val))
            continue;
        switch (opt) {
        case CLI_HELP:
            drain_usage(stdout);
            rc = RC_EXIT_OK;
            goto done;
        case CLI_WORD:
            if (node) {
                fprintf(stderr, "roomcast drain: one NODE at a time\n");
                goto usage;
            }
            node = val;
            break;
        case CLI_UNKNOWN:
            fprintf(stderr, "roomcast drain: unknown option '%s'\n", val);
            goto usage;
        default:
            goto usage;
        }
    }
    if (!node) {
        fprintf(stderr, "roomcast drain: NODE is required\n");
        goto usage;
    }
    if (!node_id_ok(node)) {
        fprintf(stderr,
                "roomcast drain: bad node id '%s' (1 to %d printable "
                "bytes, no spaces)\n",
                node, RC_CLI_NODE_ID_MAX);
        goto done;
    }
    if ((rc = cli_redis_check("drain", &o, &u)) != RC_EXIT_OK)
        goto done;
    if (u.topo == RC_REDIS_CLUSTER) {
        rc = rc_cli_cluster_drain(&u, o.prefix, node);
        goto done;
    }
    rc = RC_EXIT_FAIL;
    c = cli_connect("drain", &u);
    if (!c)
        goto done;
    /* prefix and node id are checked: it fits */
    if (rc_keys_ctl(chan, sizeof(chan), o.prefix, node) != RC_OK)
        goto done;
    {
        const char *av[3] = {"PUBLISH", chan, "drain"};
        size_t lens[3] = {7, strlen(chan), 5};
        rep = cli_cmd(c, "drain", 3, av, lens);
    }
    if (!rep)
        goto done;
    if (rep->type != REDIS_REPLY_INTEGER) {
        fprintf(stderr, "roomcast drain: Redis PUBLISH: %s\n",
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        goto done;
    }
    if (rep->integer == 0) {
        /* PUBLISH counts the receivers: nobody listens on that node's
         * control channel, so no node of that id is connected to Redis. */
        fprintf(stderr,
                "roomcast drain: no node '%s' is listening on %s (see "
                "`roomcast nodes`)\n",
                node, chan);
        goto done;
    }
    printf("drain sent to %s\n", node);
    rc = fflush(stdout) == 0 ? RC_EXIT_OK : RC_EXIT_FAIL;
    goto done;

usage:
    drain_usage(stderr);
done:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    cli_end(&g);
    return rc;
}

int main(int argc, char **argv)
{
    const char *name;

    if (argc < 2) {
        usage(stderr);
        return RC_EXIT_USAGE;
    }
    name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") ||
        !strcmp(name, "help")) {
        usage(stdout);
        return RC_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("roomcast %s\n", RC_VERSION);
        return RC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "roomcast: unknown command '%s'\n", name);
    usage(stderr);
    return RC_EXIT_USAGE;
}

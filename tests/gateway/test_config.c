/* Unit tests of gateway/config.c: sources and precedence, every refusal, the
 * *_file keys, --help/--version. The environment is always passed explicitly;
 * files live in a fresh temporary directory per test.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "gateway/config.h"

#define ERRLEN 512
#define MAX_FILES 16
#define MAX_ARGS 64

typedef struct fixture {
    char dir[256];
    char *files[MAX_FILES];
    size_t nfiles;
    char err[ERRLEN];
    rc_config_t *cfg;
} fixture_t;

#define ARGS(...) ((char *[]){__VA_ARGS__, NULL})
#define NONE ((char *[]){NULL})

/* Enough for the HS256 default to load. */
#define SECRET_ENV "ROOMCAST_JWT_SECRET=s3cret"
/* A resume secret of the shortest accepted length. */
#define RESUME32 "0123456789abcdef0123456789abcdef"

static int fx_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "%s/rc_cfg_XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture_t *fx = *state;

    rc_config_destroy(fx->cfg);
    for (size_t i = 0; i < fx->nfiles; i++) {
        unlink(fx->files[i]);
        free(fx->files[i]);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Write len bytes to a new file in the fixture's directory; the path is
 * owned by the fixture. */
static const char *write_file_n(fixture_t *fx, const char *data, size_t len)
{
    char *path = malloc(strlen(fx->dir) + 16);
    int fd;

    assert_non_null(path);
    assert_true(fx->nfiles < MAX_FILES);
    sprintf(path, "%s/f_XXXXXX", fx->dir);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    fx->files[fx->nfiles++] = path;
    return path;
}

static const char *write_file(fixture_t *fx, const char *data)
{
    return write_file_n(fx, data, strlen(data));
}

/* A path in the fixture's directory that does not exist. */
static const char *missing_path(fixture_t *fx)
{
    static char path[300];

    snprintf(path, sizeof(path), "%s/does-not-exist.json", fx->dir);
    return path;
}

static rc_err_t load(fixture_t *fx, char **args, char **env)
{
    char *argv[MAX_ARGS];
    int argc = 0;

    argv[argc++] = "roomcastd";
    for (char **a = args; *a; a++) {
        assert_true(argc < MAX_ARGS - 1);
        argv[argc++] = *a;
    }
    argv[argc] = NULL;
    rc_config_destroy(fx->cfg);
    fx->cfg = NULL;
    memset(fx->err, 'x', sizeof(fx->err));
    return rc_config_load(argc, argv, env, &fx->cfg, fx->err, ERRLEN);
}

static void load_ok(fixture_t *fx, char **args, char **env)
{
    rc_err_t rc = load(fx, args, env);

    if (rc != RC_OK)
        fail_msg("load failed (%d): %s", rc, fx->err);
    assert_non_null(fx->cfg);
}

/* The load must fail with one "config: " line that holds every needle. */
static void load_fails(fixture_t *fx, char **args, char **env, ...)
{
    va_list ap;
    const char *needle;

    assert_int_equal(load(fx, args, env), RC_EINVAL);
    assert_null(fx->cfg);
    assert_true(strlen(fx->err) < ERRLEN);
    assert_int_equal(strncmp(fx->err, "config: ", 8), 0);
    assert_null(strchr(fx->err, '\n'));
    va_start(ap, env);
    while ((needle = va_arg(ap, const char *)) != NULL)
        if (!strstr(fx->err, needle))
            fail_msg("error \"%s\" lacks \"%s\"", fx->err, needle);
    va_end(ap);
}

static char *cfg_arg(fixture_t *fx, const char *json)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "--config=%s", write_file(fx, json));
    return buf;
}

/* ---- defaults ---------------------------------------------------------- */

static void check_defaults(const rc_config_t *c)
{
    char host[256], prefix[300];

    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 8080);
    assert_string_equal(c->admin_host, "127.0.0.1");
    assert_int_equal(c->admin_port, 9090);
    assert_string_equal(c->ws_path, "/ws");
    assert_null(c->redis_url);
    assert_string_equal(c->key_prefix, "roomcast:");
    assert_string_equal(c->jwt_alg, "HS256");
    assert_null(c->jwt_public_key);
    assert_null(c->jwt_issuer);
    assert_null(c->jwt_audience);
    assert_int_equal(c->jwt_leeway_ms, 30000);
    assert_int_equal(c->auth_timeout_ms, 5000);
    assert_int_equal(c->max_pending_auth, 1024);
    assert_int_equal(c->max_pending_per_source, 0);
    assert_false(c->dev_no_auth);
    assert_null(c->tls_cert);
    assert_null(c->tls_key);
    assert_int_equal(c->max_frame, 65536);
    assert_int_equal(c->max_rooms, 256);
    assert_int_equal(c->max_connections, 0);
    assert_int_equal(c->outbound_queue_bytes, 1048576);
    assert_int_equal(c->outbound_queue_msgs, 4096);
    assert_int_equal(c->rate_limit, 100);
    assert_int_equal(c->rate_burst, 200);
    assert_int_equal(c->max_publish, 65536);
    assert_int_equal(c->heartbeat_ms, 25000);
    assert_int_equal(c->history_size, 100);
    assert_int_equal(c->history_ttl_ms, 300000);
    assert_int_equal(c->resume_ttl_ms, 120000);
    assert_null(c->resume_secret);
    assert_int_equal(c->resume_secret_len, 0);
    assert_int_equal(c->drain_window_ms, 10000);
    assert_int_equal(c->drain_timeout_ms, 30000);
    assert_string_equal(c->log_level, "info");

    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    snprintf(prefix, sizeof(prefix), "%.100s-%ld", host, (long)getpid());
    assert_string_equal(c->node_id, prefix);
}

static void test_create_default(void **state)
{
    rc_config_t *c = rc_config_create_default();

    (void)state;
    check_defaults(c);
    assert_null(c->jwt_secret);
    assert_int_equal(c->jwt_secret_len, 0);
    rc_config_destroy(c);
}

static void test_load_defaults(void **state)
{
    fixture_t *fx = *state;

    load_ok(fx, NONE, ARGS(SECRET_ENV, "PATH=/usr/bin", "HOME=/root"));
    check_defaults(fx->cfg);
    assert_string_equal(fx->cfg->jwt_secret, "s3cret");
    assert_int_equal(fx->cfg->jwt_secret_len, 6);
    assert_string_equal(fx->err, "");
}

static void test_destroy_null(void **state)
{
    (void)state;
    rc_config_destroy(NULL);
}

/* ---- sources and precedence -------------------------------------------- */

static void test_file_values(void **state)
{
    fixture_t *fx = *state;
    char *arg = cfg_arg(fx, "{\n"
                            "  \"listen\": \"127.0.0.1:7000\",\n"
                            "  \"admin_listen\": \"[::1]:7001\",\n"
                            "  \"ws_path\": \"/rt\",\n"
                            "  \"node_id\": \"node-a\",\n"
                            "  \"redis_url\": \"redis://127.0.0.1:6379/2\",\n"
                            "  \"key_prefix\": \"t:\",\n"
                            "  \"jwt_alg\": \"HS512\",\n"
                            "  \"jwt_secret\": \"from-file\",\n"
                            "  \"jwt_issuer\": \"iss\",\n"
                            "  \"jwt_audience\": \"aud\",\n"
                            "  \"jwt_leeway_ms\": 0,\n"
                            "  \"auth_timeout_ms\": 1000,\n"
                            "  \"max_pending_auth\": 10,\n"
                            "  \"dev_no_auth\": false,\n"
                            "  \"max_frame\": 128,\n"
                            "  \"max_rooms\": 65536,\n"
                            "  \"max_connections\": 5,\n"
                            "  \"outbound_queue_bytes\": 1073741824,\n"
                            "  \"outbound_queue_msgs\": 7,\n"
                            "  \"rate_limit\": 1,\n"
                            "  \"rate_burst\": 2,\n"
                            "  \"max_publish\": 300,\n"
                            "  \"heartbeat_ms\": 100,\n"
                            "  \"history_size\": 3,\n"
                            "  \"history_ttl_ms\": 4,\n"
                            "  \"resume_ttl_ms\": 5,\n"
                            "  \"resume_secret\": \"" RESUME32 "\",\n"
                            "  \"drain_window_ms\": 6,\n"
                            "  \"drain_timeout_ms\": 7,\n"
                            "  \"log_level\": \"debug\"\n"
                            "}\n");
    const rc_config_t *c;

    load_ok(fx, ARGS(arg), NONE);
    c = fx->cfg;
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 7000);
    assert_string_equal(c->admin_host, "::1");
    assert_int_equal(c->admin_port, 7001);
    assert_string_equal(c->ws_path, "/rt");
    assert_string_equal(c->node_id, "node-a");
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/2");
    assert_string_equal(c->key_prefix, "t:");
    assert_string_equal(c->jwt_alg, "HS512");
    assert_string_equal(c->jwt_secret, "from-file");
    assert_int_equal(c->jwt_secret_len, 9);
    assert_string_equal(c->jwt_issuer, "iss");
    assert_string_equal(c->jwt_audience, "aud");
    assert_int_equal(c->jwt_leeway_ms, 0);
    assert_int_equal(c->auth_timeout_ms, 1000);
    assert_int_equal(c->max_pending_auth, 10);
    assert_false(c->dev_no_auth);
    assert_int_equal(c->max_frame, 128);
    assert_int_equal(c->max_rooms, 65536);
    assert_int_equal(c->max_connections, 5);
    assert_int_equal(c->outbound_queue_bytes, 1073741824);
    assert_int_equal(c->outbound_queue_msgs, 7);
    assert_int_equal(c->rate_limit, 1);
    assert_int_equal(c->rate_burst, 2);
    assert_int_equal(c->max_publish, 300);
    assert_int_equal(c->heartbeat_ms, 100);
    assert_int_equal(c->history_size, 3);
    assert_int_equal(c->history_ttl_ms, 4);
    assert_int_equal(c->resume_ttl_ms, 5);
    assert_string_equal(c->resume_secret, RESUME32);
    assert_int_equal(c->resume_secret_len, 32);
    assert_int_equal(c->drain_window_ms, 6);
    assert_int_equal(c->drain_timeout_ms, 7);
    assert_string_equal(c->log_level, "debug");
}

static void test_config_flag_forms(void **state)
{
    fixture_t *fx = *state;
    const char *path = write_file(fx, "{\"max_rooms\": 9}");

    load_ok(fx, ARGS("--config", (char *)path), ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->max_rooms, 9);
}

static void test_config_from_env(void **state)
{
    fixture_t *fx = *state;
    char env[512], env2[512];

    snprintf(env, sizeof(env), "ROOMCAST_CONFIG=%s",
             write_file(fx, "{\"max_rooms\": 11}"));
    load_ok(fx, NONE, ARGS(env, SECRET_ENV));
    assert_int_equal(fx->cfg->max_rooms, 11);

    /* --config beats ROOMCAST_CONFIG. */
    snprintf(env2, sizeof(env2), "ROOMCAST_CONFIG=%s", missing_path(fx));
    load_ok(fx, ARGS(cfg_arg(fx, "{\"max_rooms\": 12}")),
            ARGS(env2, SECRET_ENV));
    assert_int_equal(fx->cfg->max_rooms, 12);

    /* An empty ROOMCAST_CONFIG means none. */
    load_ok(fx, NONE, ARGS("ROOMCAST_CONFIG=", SECRET_ENV));
    assert_int_equal(fx->cfg->max_rooms, 256);
}

static void test_env_beats_file(void **state)
{
    fixture_t *fx = *state;
    char *arg = cfg_arg(fx, "{\"max_frame\": 1000, \"max_rooms\": 5, "
                            "\"dev_no_auth\": true, \"jwt_issuer\": \"f\"}");

    load_ok(fx, ARGS(arg),
            ARGS("ROOMCAST_MAX_FRAME=2000", "ROOMCAST_DEV_NO_AUTH=false",
                 "ROOMCAST_JWT_ISSUER=", SECRET_ENV));
    assert_int_equal(fx->cfg->max_frame, 2000);
    assert_int_equal(fx->cfg->max_rooms, 5); /* file value kept */
    assert_false(fx->cfg->dev_no_auth);
    assert_null(fx->cfg->jwt_issuer); /* an empty value unsets */
}

static void test_flag_beats_env(void **state)
{
    fixture_t *fx = *state;
    char *arg =
        cfg_arg(fx, "{\"max_frame\": 1000, \"listen\": \"10.0.0.1:1\"}");

    load_ok(fx, ARGS(arg, "--max-frame", "3000", "--listen", "10.0.0.2:2"),
            ARGS("ROOMCAST_MAX_FRAME=2000", "ROOMCAST_LISTEN=10.0.0.3:3",
                 "ROOMCAST_LOG_LEVEL=warn", SECRET_ENV));
    assert_int_equal(fx->cfg->max_frame, 3000);
    assert_string_equal(fx->cfg->listen_host, "10.0.0.2");
    assert_int_equal(fx->cfg->listen_port, 2);
    assert_string_equal(fx->cfg->log_level, "warn");
}

static void test_flag_equals_form(void **state)
{
    fixture_t *fx = *state;

    load_ok(fx,
            ARGS("--max-frame=4096", "--ws-path=/x", "--jwt-secret=a=b",
                 "--redis-url=redis://h:1", "--max-frame=5000"),
            NONE);
    assert_int_equal(fx->cfg->max_frame, 5000); /* the last one wins */
    assert_string_equal(fx->cfg->ws_path, "/x");
    assert_string_equal(fx->cfg->jwt_secret, "a=b");
    assert_string_equal(fx->cfg->redis_url, "redis://h:1");
}

static void test_bool_flag(void **state)
{
    fixture_t *fx = *state;

    load_ok(fx, ARGS("--dev-no-auth"), NONE);
    assert_true(fx->cfg->dev_no_auth);
    load_ok(fx, ARGS("--dev-no-auth=true"), NONE);
    assert_true(fx->cfg->dev_no_auth);
    load_ok(fx, ARGS("--dev-no-auth=false"), ARGS(SECRET_ENV));
    assert_false(fx->cfg->dev_no_auth);
    load_ok(fx, ARGS("--dev-no-auth=false"),
            ARGS("ROOMCAST_DEV_NO_AUTH=true", SECRET_ENV));
    assert_false(fx->cfg->dev_no_auth);
    load_ok(fx, NONE, ARGS("ROOMCAST_DEV_NO_AUTH=1"));
    assert_true(fx->cfg->dev_no_auth);

    load_fails(fx, ARGS("--dev-no-auth=maybe"), NONE, "dev_no_auth", "maybe",
               NULL);
    load_fails(fx, NONE, ARGS("ROOMCAST_DEV_NO_AUTH=yes"), "dev_no_auth",
               "ROOMCAST_DEV_NO_AUTH", NULL);
    /* A bare boolean flag takes no separate value. */
    load_fails(fx, ARGS("--dev-no-auth", "false"), NONE,
               "unexpected argument \"false\"", NULL);
}

static void test_listen_forms(void **state)
{
    fixture_t *fx = *state;

    /* A public admin listener needs a token (and is refused without). */
    load_fails(fx, ARGS("--admin-listen=[::]:1"), ARGS(SECRET_ENV),
               "admin_listen", "not loopback", "admin_token", NULL);
    load_ok(fx,
            ARGS("--listen", "[::1]:8443", "--admin-listen=[::]:1",
                 "--admin-token", "0123456789abcdef"),
            ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->listen_host, "::1");
    assert_int_equal(fx->cfg->listen_port, 8443);
    assert_string_equal(fx->cfg->admin_host, "::");
    assert_int_equal(fx->cfg->admin_port, 1);
    /* localhost is the one name taken (as 127.0.0.1, so the listeners
     * bind it and the admin port counts it as loopback). */
    load_ok(
        fx,
        ARGS("--listen=localhost:65535", "--admin-listen", "localhost:9091"),
        ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->listen_host, "127.0.0.1");
    assert_int_equal(fx->cfg->listen_port, 65535);
    assert_string_equal(fx->cfg->admin_host, "127.0.0.1");

    static const char *const bad[] = {
        "8080",
        ":8080",
        "host:",
        "host:0",
        "host:65536",
        "host:8x",
        "::1:80",
        "[::1]8080",
        "[]:80",
        "[::1]:",
        "h:+80",
        "h: 80",
        "h:080808",
        "a b:80",
        "",
        /* names: no resolver at bind time */
        "example.com:80",
        "host:8080",
        "127.0.0.256:80",
        "[fe80::zz]:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char arg[64];

        snprintf(arg, sizeof(arg), "--listen=%s", bad[i]);
        load_fails(fx, ARGS(arg), ARGS(SECRET_ENV), "listen", "--listen", NULL);
        snprintf(arg, sizeof(arg), "ROOMCAST_ADMIN_LISTEN=%s", bad[i]);
        load_fails(fx, NONE, ARGS(arg, SECRET_ENV), "admin_listen", NULL);
    }
}

/* ---- unknown names ----------------------------------------------------- */

static void test_unknown_file_key(void **state)
{
    fixture_t *fx = *state;
    const char *path = write_file(fx, "{\"max_frmae\": 100}");
    char arg[512], want[512];

    snprintf(arg, sizeof(arg), "--config=%s", path);
    snprintf(want, sizeof(want), "config: unknown key \"max_frmae\" in %s",
             path);
    load_fails(fx, ARGS(arg), ARGS(SECRET_ENV), NULL);
    assert_string_equal(fx->err, want);

    /* "config" itself is not a file key. */
    load_fails(fx, ARGS(cfg_arg(fx, "{\"config\": \"x\"}")), ARGS(SECRET_ENV),
               "unknown key \"config\"", NULL);
}

static void test_unknown_flag(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS("--max-frmae", "1"), ARGS(SECRET_ENV),
               "unknown flag \"--max-frmae\"", NULL);
    load_fails(fx, ARGS("--max_frame=1"), ARGS(SECRET_ENV),
               "unknown flag \"--max_frame\"", NULL);
    load_fails(fx, ARGS("--"), ARGS(SECRET_ENV), "unexpected argument", NULL);
    load_fails(fx, ARGS("-v"), ARGS(SECRET_ENV), "unexpected argument", NULL);
    load_fails(fx, ARGS("stray"), ARGS(SECRET_ENV),
               "unexpected argument \"stray\"", NULL);
    load_fails(fx, ARGS("--help=1"), ARGS(SECRET_ENV), "unknown flag", NULL);
}

static void test_flag_missing_value(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS("--max-frame"), ARGS(SECRET_ENV),
               "flag --max-frame needs a value", NULL);
    load_fails(fx, ARGS("--config"), ARGS(SECRET_ENV),
               "flag --config needs a value", NULL);
    load_fails(fx, ARGS("--config="), ARGS(SECRET_ENV),
               "flag --config needs a file path", NULL);
}

static void test_unknown_env(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_MAX_FRMAE=1"),
               "unknown environment variable ROOMCAST_MAX_FRMAE", NULL);
    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_max_frame=1"),
               "ROOMCAST_max_frame", NULL);
    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_=1"),
               "unknown environment variable ROOMCAST_", NULL);
    /* Other variables, and near misses of the prefix, are not ours. */
    load_ok(fx, NONE,
            ARGS(SECRET_ENV, "ROOMCAST=1", "XROOMCAST_FOO=1", "roomcast_foo=1",
                 "MAX_FRAME=1", "ROOMCAST_NOEQUALS"));
    assert_int_equal(fx->cfg->max_frame, 65536);
}

/* ---- the file itself --------------------------------------------------- */

static void test_bad_json(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS(cfg_arg(fx, "{\n  \"max_frame\": 100,\n  oops\n}")),
               ARGS(SECRET_ENV), "invalid JSON", "line 3", "column", NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "")), ARGS(SECRET_ENV), "invalid JSON",
               NULL);
    load_fails(fx,
               ARGS(cfg_arg(fx, "{\"max_frame\": 200, \"max_frame\": 300}")),
               ARGS(SECRET_ENV), "invalid JSON", "duplicate", NULL);
}

static void test_not_object(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS(cfg_arg(fx, "[1, 2]")), ARGS(SECRET_ENV),
               "must hold a JSON object, got an array", NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "\"x\"")), ARGS(SECRET_ENV),
               "must hold a JSON object", NULL);
}

static void test_missing_config_file(void **state)
{
    fixture_t *fx = *state;
    char arg[512], env[512];

    snprintf(arg, sizeof(arg), "--config=%s", missing_path(fx));
    load_fails(fx, ARGS(arg), ARGS(SECRET_ENV), "cannot open config file",
               missing_path(fx), "No such file or directory", "--config", NULL);
    snprintf(env, sizeof(env), "ROOMCAST_CONFIG=%s", missing_path(fx));
    load_fails(fx, NONE, ARGS(env, SECRET_ENV), "ROOMCAST_CONFIG",
               missing_path(fx), NULL);
}

static void test_wrong_types(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *json, *key, *what;
    } cases[] = {
        {"{\"ws_path\": 5}", "ws_path", "must be a string, got an integer"},
        {"{\"listen\": 8080}", "listen", "got an integer"},
        {"{\"node_id\": null}", "node_id", "must be a string, got null"},
        {"{\"jwt_secret\": 1}", "jwt_secret", "must be a string or null"},
        {"{\"jwt_secret_file\": []}", "jwt_secret_file", "got an array"},
        {"{\"max_frame\": \"1000\"}", "max_frame",
         "must be an integer, got a string"},
        {"{\"max_frame\": 1000.5}", "max_frame", "got a real number"},
        {"{\"heartbeat_ms\": true}", "heartbeat_ms", "got a boolean"},
        {"{\"dev_no_auth\": \"true\"}", "dev_no_auth",
         "must be true or false, got a string"},
        {"{\"dev_no_auth\": 1}", "dev_no_auth", "got an integer"},
        {"{\"log_level\": {}}", "log_level", "got an object"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        load_fails(fx, ARGS(cfg_arg(fx, cases[i].json)), ARGS(SECRET_ENV),
                   cases[i].key, cases[i].what, NULL);
}

static void test_json_null_unsets(void **state)
{
    fixture_t *fx = *state;

    load_ok(fx,
            ARGS(cfg_arg(fx, "{\"redis_url\": null, \"jwt_issuer\": null}")),
            ARGS(SECRET_ENV));
    assert_null(fx->cfg->redis_url);
    assert_null(fx->cfg->jwt_issuer);
}

/* ---- values ------------------------------------------------------------ */

static void test_ranges(void **state)
{
    fixture_t *fx = *state;
    static const struct {
        const char *flag, *value, *key;
    } bad[] = {
        {"--max-frame", "127", "max_frame"},
        {"--max-frame", "16777217", "max_frame"},
        {"--max-rooms", "0", "max_rooms"},
        {"--max-rooms", "65537", "max_rooms"},
        {"--heartbeat-ms", "99", "heartbeat_ms"},
        {"--heartbeat-ms", "3600001", "heartbeat_ms"},
        {"--rate-limit", "0", "rate_limit"},
        {"--rate-burst", "0", "rate_burst"},
        {"--outbound-queue-bytes", "4095", "outbound_queue_bytes"},
        {"--outbound-queue-bytes", "1073741825", "outbound_queue_bytes"},
        {"--outbound-queue-msgs", "0", "outbound_queue_msgs"},
        {"--max-pending-auth", "0", "max_pending_auth"},
        {"--max-publish", "0", "max_publish"},
        {"--max-connections", "-1", "max_connections"},
        {"--history-size", "0", "history_size"},
        {"--jwt-leeway-ms", "-1", "jwt_leeway_ms"},
        {"--auth-timeout-ms", "0", "auth_timeout_ms"},
        {"--history-ttl-ms", "0", "history_ttl_ms"},
        {"--resume-ttl-ms", "0", "resume_ttl_ms"},
        {"--drain-window-ms", "0", "drain_window_ms"},
        {"--drain-timeout-ms", "0", "drain_timeout_ms"},
        /* not integers at all */
        {"--max-frame", "12x", "max_frame"},
        {"--max-frame", "", "max_frame"},
        {"--max-frame", " 200", "max_frame"},
        {"--max-frame", "+200", "max_frame"},
        {"--max-frame", "0x100", "max_frame"},
        {"--max-frame", "1e3", "max_frame"},
        {"--max-frame", "99999999999999999999999", "max_frame"},
        {"--max-frame", "-", "max_frame"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        load_fails(fx, ARGS((char *)bad[i].flag, (char *)bad[i].value),
                   ARGS(SECRET_ENV), bad[i].key, bad[i].flag, NULL);

    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_MAX_FRAME=64"),
               "max_frame must be an integer in 128..16777216, got 64 "
               "(from ROOMCAST_MAX_FRAME)",
               NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "{\"max_frame\": 64}")), ARGS(SECRET_ENV),
               "max_frame", "got 64", NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "{\"max_frame\": -5}")), ARGS(SECRET_ENV),
               "max_frame", "got -5", NULL);

    /* The bounds themselves are accepted. */
    load_ok(fx,
            ARGS("--max-frame=16777216", "--heartbeat-ms=3600000",
                 "--jwt-leeway-ms=0", "--outbound-queue-bytes=4096",
                 "--max-publish=3840", "--max-connections=0", "--max-rooms=1"),
            ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->max_frame, 16777216);
    assert_int_equal(fx->cfg->heartbeat_ms, 3600000);
    assert_int_equal(fx->cfg->jwt_leeway_ms, 0);
    assert_int_equal(fx->cfg->outbound_queue_bytes, 4096);
    assert_int_equal(fx->cfg->max_rooms, 1);
}

static void test_enums(void **state)
{
    fixture_t *fx = *state;
    static const char *const algs[] = {"HS256", "HS384", "HS512", "RS256",
                                       "RS384", "RS512", "ES256", "ES384"};

    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char arg[32];

        snprintf(arg, sizeof(arg), "--jwt-alg=%s", algs[i]);
        load_ok(fx, ARGS(arg, "--dev-no-auth"), NONE);
        assert_string_equal(fx->cfg->jwt_alg, algs[i]);
    }
    load_fails(fx, ARGS("--jwt-alg=none"), ARGS(SECRET_ENV), "jwt_alg",
               "\"none\"", NULL);
    load_fails(fx, ARGS("--jwt-alg=hs256"), ARGS(SECRET_ENV), "jwt_alg", NULL);
    load_fails(fx, ARGS("--jwt-alg=ES512"), ARGS(SECRET_ENV), "jwt_alg", NULL);
    load_fails(fx, ARGS("--jwt-alg="), ARGS(SECRET_ENV), "jwt_alg", NULL);

    load_ok(fx, ARGS("--log-level=error"), ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->log_level, "error");
    load_fails(fx, ARGS("--log-level=trace"), ARGS(SECRET_ENV), "log_level",
               "trace", NULL);
    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_LOG_LEVEL=INFO"),
               "log_level", NULL);
}

static void test_string_checks(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS("--ws-path=ws"), ARGS(SECRET_ENV), "ws_path", NULL);
    load_fails(fx, ARGS("--ws-path=/a b"), ARGS(SECRET_ENV), "ws_path", NULL);
    load_fails(fx, ARGS("--node-id="), ARGS(SECRET_ENV), "node_id", NULL);
    load_fails(fx, ARGS("--node-id=a b"), ARGS(SECRET_ENV), "node_id", NULL);
    load_fails(fx, ARGS("--redis-url=http://h"), ARGS(SECRET_ENV), "redis_url",
               NULL);
    /* Refused at start, not deep in the adapter when it first connects. */
    load_fails(fx, ARGS("--redis-url=redis://h:99999"), ARGS(SECRET_ENV),
               "redis_url", NULL);
    load_fails(fx, ARGS("--redis-url=redis://"), ARGS(SECRET_ENV), "redis_url",
               NULL);
    load_fails(fx, ARGS("--key-prefix=a{b"), ARGS(SECRET_ENV), "key_prefix",
               NULL);
    load_fails(fx, ARGS("--key-prefix=a'b"), ARGS(SECRET_ENV), "key_prefix",
               NULL);
    load_ok(fx, ARGS("--key-prefix="), ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->key_prefix, "");
    /* An empty value unsets an optional key given by an earlier source. */
    load_ok(fx, ARGS("--redis-url="),
            ARGS(SECRET_ENV, "ROOMCAST_REDIS_URL=redis://h:1"));
    assert_null(fx->cfg->redis_url);
}

static void test_tls_pair(void **state)
{
    fixture_t *fx = *state;
    const char *cert = write_file(fx, "-----BEGIN CERTIFICATE-----\n");
    const char *key = write_file(fx, "-----BEGIN PRIVATE KEY-----\n");
    char a1[512], a2[512];

    snprintf(a1, sizeof(a1), "--tls-cert=%s", cert);
    snprintf(a2, sizeof(a2), "--tls-key=%s", key);
    load_fails(fx, ARGS(a1), ARGS(SECRET_ENV), "tls_cert", "tls_key", NULL);
    load_fails(fx, ARGS(a2), ARGS(SECRET_ENV), "tls_cert", "tls_key", NULL);
    load_ok(fx, ARGS(a1, a2), ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->tls_cert, cert);
    assert_string_equal(fx->cfg->tls_key, key);

    snprintf(a2, sizeof(a2), "--tls-key=%s", missing_path(fx));
    load_fails(fx, ARGS(a1, a2), ARGS(SECRET_ENV), "tls_key", missing_path(fx),
               "No such file", NULL);
}

/* ---- *_file keys and auth cross-checks --------------------------------- */

static void test_secret_file(void **state)
{
    fixture_t *fx = *state;
    char arg[512];

    /* Exactly one trailing newline goes. */
    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s",
             write_file(fx, "top\nsecret\n\n"));
    load_ok(fx, ARGS(arg), NONE);
    assert_int_equal(fx->cfg->jwt_secret_len, 11);
    assert_memory_equal(fx->cfg->jwt_secret, "top\nsecret\n", 12);

    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s",
             write_file(fx, "crlf\r\n"));
    load_ok(fx, ARGS(arg), NONE);
    assert_string_equal(fx->cfg->jwt_secret, "crlf");

    /* Binary secrets keep their NULs; the length says how long. */
    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s",
             write_file_n(fx, "a\0b\0c", 5));
    load_ok(fx, ARGS(arg), NONE);
    assert_int_equal(fx->cfg->jwt_secret_len, 5);
    assert_memory_equal(fx->cfg->jwt_secret, "a\0b\0c", 5);

    /* From the JSON file and the environment too. */
    snprintf(arg, sizeof(arg), "{\"jwt_secret_file\": \"%s\"}",
             write_file(fx, "viafile"));
    load_ok(fx, ARGS(cfg_arg(fx, arg)), NONE);
    assert_string_equal(fx->cfg->jwt_secret, "viafile");
    snprintf(arg, sizeof(arg), "ROOMCAST_RESUME_SECRET_FILE=%s",
             write_file(fx, RESUME32 "\n"));
    load_ok(fx, NONE, ARGS(arg, SECRET_ENV));
    assert_string_equal(fx->cfg->resume_secret, RESUME32);
    assert_int_equal(fx->cfg->resume_secret_len, 32);

    /* Empty after the newline is as good as missing. */
    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s", write_file(fx, "\n"));
    load_fails(fx, ARGS(arg), NONE, "jwt_secret_file", "empty", NULL);
}

static void test_secret_and_file_conflict(void **state)
{
    fixture_t *fx = *state;
    char arg[512];

    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s", write_file(fx, "x"));
    load_fails(fx, ARGS(arg), ARGS(SECRET_ENV),
               "jwt_secret and "
               "jwt_secret_file are both set",
               NULL);
    load_fails(fx, ARGS(arg, "--jwt-secret=y"), NONE, "jwt_secret",
               "jwt_secret_file", NULL);
    snprintf(arg, sizeof(arg), "--resume-secret-file=%s", write_file(fx, "x"));
    load_fails(fx, ARGS(arg, "--resume-secret=r"), ARGS(SECRET_ENV),
               "resume_secret and resume_secret_file", NULL);
    /* A later source may unset one with an empty value. */
    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s", write_file(fx, "z"));
    load_ok(fx, ARGS(arg, "--jwt-secret="), ARGS(SECRET_ENV));
    assert_string_equal(fx->cfg->jwt_secret, "z");
}

static void test_unreadable_file(void **state)
{
    fixture_t *fx = *state;
    char arg[512];

    snprintf(arg, sizeof(arg), "--jwt-secret-file=%s", missing_path(fx));
    load_fails(fx, ARGS(arg), NONE, "jwt_secret_file", missing_path(fx),
               "No such file or directory", NULL);
    snprintf(arg, sizeof(arg), "--jwt-public-key-file=%s", fx->dir);
    load_fails(fx, ARGS("--jwt-alg=RS256", arg), NONE, "jwt_public_key_file",
               fx->dir, "Is a directory", NULL);
}

static void test_public_key_file(void **state)
{
    fixture_t *fx = *state;
    static const char pem[] = "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                              "-----END PUBLIC KEY-----\n";
    char arg[512];

    snprintf(arg, sizeof(arg), "--jwt-public-key-file=%s", write_file(fx, pem));
    load_ok(fx, ARGS("--jwt-alg=ES256", arg), NONE);
    assert_string_equal(fx->cfg->jwt_public_key, pem);

    snprintf(arg, sizeof(arg), "--jwt-public-key-file=%s",
             write_file(fx, "not a key\n"));
    load_fails(fx, ARGS("--jwt-alg=RS256", arg), NONE, "jwt_public_key_file",
               "PEM", NULL);
}

static void test_alg_needs_key(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, NONE, NONE, "jwt_alg HS256", "jwt_secret", "jwt_secret_file",
               NULL);
    load_fails(fx, ARGS("--jwt-alg=HS384", "--jwt-secret="), NONE,
               "jwt_alg HS384", "jwt_secret", NULL);
    load_fails(fx, ARGS("--jwt-alg=RS256"), ARGS(SECRET_ENV), "jwt_alg RS256",
               "jwt_public_key_file", NULL);
    load_fails(fx, ARGS("--jwt-alg=ES384"), NONE, "jwt_public_key_file", NULL);
    /* dev_no_auth waives both. */
    load_ok(fx, ARGS("--dev-no-auth"), NONE);
    load_ok(fx, ARGS("--jwt-alg=RS512", "--dev-no-auth"), NONE);
}

/* ---- --help, --version, usage, error buffer ---------------------------- */

/* Run a load with stdout sent to /dev/null. */
static rc_err_t load_quiet(fixture_t *fx, char **args)
{
    int saved, devnull;
    rc_err_t rc;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    devnull = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && devnull >= 0);
    dup2(devnull, STDOUT_FILENO);
    close(devnull);
    rc = load(fx, args, NONE);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return rc;
}

static void test_help_version(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(load_quiet(fx, ARGS("--help")), RC_ECLOSED);
    assert_null(fx->cfg);
    assert_int_equal(load_quiet(fx, ARGS("-h")), RC_ECLOSED);
    assert_int_equal(load_quiet(fx, ARGS("--version")), RC_ECLOSED);
    assert_null(fx->cfg);
    /* They win over a config that would not load. */
    assert_int_equal(load_quiet(fx, ARGS("--max-frame=1", "--help")),
                     RC_ECLOSED);
    assert_int_equal(load_quiet(fx, ARGS("--version", "--bogus")), RC_ECLOSED);
}

static void test_usage_lists_every_key(void **state)
{
    static const char *const names[][3] = {
        {"listen", "--listen", "ROOMCAST_LISTEN"},
        {"admin_listen", "--admin-listen", "ROOMCAST_ADMIN_LISTEN"},
        {"ws_path", "--ws-path", "ROOMCAST_WS_PATH"},
        {"node_id", "--node-id", "ROOMCAST_NODE_ID"},
        {"redis_url", "--redis-url", "ROOMCAST_REDIS_URL"},
        {"key_prefix", "--key-prefix", "ROOMCAST_KEY_PREFIX"},
        {"jwt_alg", "--jwt-alg", "ROOMCAST_JWT_ALG"},
        {"jwt_secret", "--jwt-secret", "ROOMCAST_JWT_SECRET"},
        {"jwt_secret_file", "--jwt-secret-file", "ROOMCAST_JWT_SECRET_FILE"},
        {"jwt_public_key_file", "--jwt-public-key-file",
         "ROOMCAST_JWT_PUBLIC_KEY_FILE"},
        {"jwt_issuer", "--jwt-issuer", "ROOMCAST_JWT_ISSUER"},
        {"jwt_audience", "--jwt-audience", "ROOMCAST_JWT_AUDIENCE"},
        {"jwt_leeway_ms", "--jwt-leeway-ms", "ROOMCAST_JWT_LEEWAY_MS"},
        {"auth_timeout_ms", "--auth-timeout-ms", "ROOMCAST_AUTH_TIMEOUT_MS"},
        {"max_pending_auth", "--max-pending-auth", "ROOMCAST_MAX_PENDING_AUTH"},
        {"max_pending_per_source", "--max-pending-per-source",
         "ROOMCAST_MAX_PENDING_PER_SOURCE"},
        {"dev_no_auth", "--dev-no-auth", "ROOMCAST_DEV_NO_AUTH"},
        {"tls_cert", "--tls-cert", "ROOMCAST_TLS_CERT"},
        {"tls_key", "--tls-key", "ROOMCAST_TLS_KEY"},
        {"max_frame", "--max-frame", "ROOMCAST_MAX_FRAME"},
        {"max_rooms", "--max-rooms", "ROOMCAST_MAX_ROOMS"},
        {"max_connections", "--max-connections", "ROOMCAST_MAX_CONNECTIONS"},
        {"outbound_queue_bytes", "--outbound-queue-bytes",
         "ROOMCAST_OUTBOUND_QUEUE_BYTES"},
        {"outbound_queue_msgs", "--outbound-queue-msgs",
         "ROOMCAST_OUTBOUND_QUEUE_MSGS"},
        {"rate_limit", "--rate-limit", "ROOMCAST_RATE_LIMIT"},
        {"rate_burst", "--rate-burst", "ROOMCAST_RATE_BURST"},
        {"max_publish", "--max-publish", "ROOMCAST_MAX_PUBLISH"},
        {"heartbeat_ms", "--heartbeat-ms", "ROOMCAST_HEARTBEAT_MS"},
        {"history_size", "--history-size", "ROOMCAST_HISTORY_SIZE"},
        {"history_ttl_ms", "--history-ttl-ms", "ROOMCAST_HISTORY_TTL_MS"},
        {"resume_ttl_ms", "--resume-ttl-ms", "ROOMCAST_RESUME_TTL_MS"},
        {"resume_secret", "--resume-secret", "ROOMCAST_RESUME_SECRET"},
        {"resume_secret_file", "--resume-secret-file",
         "ROOMCAST_RESUME_SECRET_FILE"},
        {"drain_window_ms", "--drain-window-ms", "ROOMCAST_DRAIN_WINDOW_MS"},
        {"drain_timeout_ms", "--drain-timeout-ms", "ROOMCAST_DRAIN_TIMEOUT_MS"},
        {"log_level", "--log-level", "ROOMCAST_LOG_LEVEL"},
    };
    FILE *f = tmpfile();
    char *text;
    long n;

    (void)state;
    assert_non_null(f);
    rc_config_usage(f);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char quoted[64];

        snprintf(quoted, sizeof(quoted), "\"%s\"", names[i][0]);
        assert_non_null(strstr(text, quoted));
        assert_non_null(strstr(text, names[i][1]));
        assert_non_null(strstr(text, names[i][2]));
    }
    assert_non_null(strstr(text, "default 0.0.0.0:8080"));
    assert_non_null(strstr(text, "default 65536"));
    assert_non_null(strstr(text, "--config"));
    free(text);
}

static void test_small_err_buffer(void **state)
{
    char *argv[] = {"roomcastd", "--no-such-flag", NULL};
    char small[12];
    rc_config_t *cfg = (rc_config_t *)1;

    (void)state;
    memset(small, 'x', sizeof(small));
    assert_int_equal(rc_config_load(2, argv, NONE, &cfg, small, sizeof(small)),
                     RC_EINVAL);
    assert_null(cfg);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(rc_config_load(2, argv, NONE, &cfg, NULL, 0), RC_EINVAL);
    assert_null(cfg);
}

/* ---- settings that cannot be right ------------------------------------- */

/* A resume secret under 32 bytes is refused from every source; the message
 * names the key that was used. */
static void test_resume_secret_too_short(void **state)
{
    fixture_t *fx = *state;
    char arg[512];

    load_fails(fx, ARGS("--resume-secret=0123456789abcdef0123456789abcde"),
               ARGS(SECRET_ENV), "resume_secret must be at least 32 bytes",
               "got 31", NULL);
    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_RESUME_SECRET=rs"),
               "resume_secret", "got 2", NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "{\"resume_secret\": \"short\"}")),
               ARGS(SECRET_ENV), "resume_secret", "got 5", NULL);
    /* The file form counts what is left after the one stripped newline. */
    snprintf(arg, sizeof(arg), "--resume-secret-file=%s",
             write_file(fx, "0123456789abcdef0123456789abcde\n"));
    load_fails(fx, ARGS(arg), ARGS(SECRET_ENV), "resume_secret_file",
               "holds 31 bytes", "at least 32", NULL);
    /* Exactly 32 is the key as given. */
    load_ok(fx, ARGS("--resume-secret=0123456789abcdef0123456789abcdef"),
            ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->resume_secret_len, 32);
    assert_memory_equal(fx->cfg->resume_secret,
                        "0123456789abcdef0123456789abcdef", 32);
    /* Unset is fine: the node makes a random key of its own. */
    load_ok(fx, ARGS("--resume-secret="), ARGS(SECRET_ENV));
    assert_null(fx->cfg->resume_secret);
}

/* The node keys HMAC with 32 bytes of resume_secret; a longer secret used
 * to be cut there, so two secrets that differ past byte 32 signed alike.
 * Now the loader hashes a long secret down: every byte counts. */
static void test_resume_secret_long_is_hashed(void **state)
{
    fixture_t *fx = *state;
    static const char a[] = "0123456789abcdef0123456789abcdef-node-secret-A";
    static const char b[] = "0123456789abcdef0123456789abcdef-node-secret-B";
    unsigned char want[SHA256_DIGEST_LENGTH], got_a[32];
    char arg[512];

    snprintf(arg, sizeof(arg), "--resume-secret=%s", a);
    load_ok(fx, ARGS(arg), ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->resume_secret_len, 32);
    SHA256((const unsigned char *)a, strlen(a), want);
    assert_memory_equal(fx->cfg->resume_secret, want, 32);
    memcpy(got_a, fx->cfg->resume_secret, 32);

    snprintf(arg, sizeof(arg), "--resume-secret-file=%s", write_file(fx, b));
    load_ok(fx, ARGS(arg), ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->resume_secret_len, 32);
    assert_true(memcmp(fx->cfg->resume_secret, got_a, 32) != 0);
    SHA256((const unsigned char *)b, strlen(b), want);
    assert_memory_equal(fx->cfg->resume_secret, want, 32);
}

/* One publish of max_publish bytes, framed, must fit in an empty outbound
 * queue; else it closes every member of its room with 4009. */
static void test_max_publish_vs_queue(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, ARGS("--outbound-queue-bytes=65536", "--max-publish=65536"),
               ARGS(SECRET_ENV), "max_publish", "outbound_queue_bytes", "4009",
               NULL);
    load_fails(fx, ARGS("--max-publish=2000000"), ARGS(SECRET_ENV),
               "max_publish (2000000)", "outbound_queue_bytes (1048576)", NULL);
    load_fails(fx, ARGS("--outbound-queue-bytes=65536", "--max-publish=65281"),
               ARGS(SECRET_ENV), "max_publish", NULL);
    load_ok(fx, ARGS("--outbound-queue-bytes=65536", "--max-publish=65280"),
            ARGS(SECRET_ENV));
    assert_int_equal(fx->cfg->max_publish, 65280);
}

/* Found by fuzz_config: a refused value was echoed raw, so a newline in it
 * made the "one line" error two. Control bytes are escaped now. */
static void test_error_is_one_line(void **state)
{
    fixture_t *fx = *state;

    load_fails(fx, NONE, ARGS(SECRET_ENV, "ROOMCAST_DEV_NO_AUTH=\n"),
               "dev_no_auth must be true or false, got \"\\n\"", NULL);
    load_fails(fx, ARGS("--ws-path=/a\r\nb\x01\t"), ARGS(SECRET_ENV), "ws_path",
               "got \"/a\\r\\nb\\x01\\t\"", NULL);
    load_fails(fx, ARGS(cfg_arg(fx, "{\"ws_path\": \"/a\\nb\"}")),
               ARGS(SECRET_ENV), "got \"/a\\nb\"", NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_default),
        T(test_load_defaults),
        cmocka_unit_test(test_destroy_null),
        T(test_file_values),
        T(test_config_flag_forms),
        T(test_config_from_env),
        T(test_env_beats_file),
        T(test_flag_beats_env),
        T(test_flag_equals_form),
        T(test_bool_flag),
        T(test_listen_forms),
        T(test_unknown_file_key),
        T(test_unknown_flag),
        T(test_flag_missing_value),
        T(test_unknown_env),
        T(test_bad_json),
        T(test_not_object),
        T(test_missing_config_file),
        T(test_wrong_types),
        T(test_json_null_unsets),
        T(test_ranges),
        T(test_enums),
        T(test_string_checks),
        T(test_tls_pair),
        T(test_secret_file),
        T(test_secret_and_file_conflict),
        T(test_unreadable_file),
        T(test_public_key_file),
        T(test_alg_needs_key),
        T(test_help_version),
        cmocka_unit_test(test_usage_lists_every_key),
        cmocka_unit_test(test_small_err_buffer),
        T(test_resume_secret_too_short),
        T(test_resume_secret_long_is_hashed),
        T(test_max_publish_vs_queue),
        T(test_error_is_one_line),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

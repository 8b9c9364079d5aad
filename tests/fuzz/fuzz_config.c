/* libFuzzer target: the configuration loader, rc_config_load(), on bytes
 * as the JSON config file, and as the value of one ROOMCAST_* variable and
 * of one --flag (the key picked by the first byte). Whatever the bytes, the
 * load returns RC_OK with a config, or RC_EINVAL with no config and one
 * line "config: ..." (no newline, NUL-terminated within the buffer); it
 * never crashes or leaks (LeakSanitizer checks every iteration).
 *
 * Values of path keys (*_file, tls_cert, tls_key) are not used as paths:
 * the harness writes them to a scratch file and passes its path, so the
 * fuzzer exercises the file contents without touching arbitrary files. A
 * JSON config can still name any path; stdin is /dev/null here, so
 * "/dev/stdin" cannot block a run. The scratch files live in /dev/shm when
 * it is writable, else in $TMPDIR or /tmp, and are removed at exit (a
 * crash leaves two small files, fzcfg* and fzval*).
 * Seed corpus: tests/fuzz/corpus/config/.
 * SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "gateway/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define ERRLEN 256
#define SECRET_ENV "ROOMCAST_JWT_SECRET=fuzz-secret-fuzz-secret-fuzz-sec"

/* Every key (PROTOCOL section 7 and docs/CONFIG.md); 1 marks a path. */
static const struct {
    const char *name;
    int path;
} keys[] = {
    {"listen", 0},
    {"admin_listen", 0},
    {"tls_min_version", 0},
    {"tls_ciphers", 0},
    {"admin_token", 0},
    {"admin_token_file", 1},
    {"admin_token_stats", 0},
    {"admin_max_conns", 0},
    {"admin_timeout_ms", 0},
    {"ws_path", 0},
    {"node_id", 0},
    {"redis_url", 0},
    {"key_prefix", 0},
    {"jwt_alg", 0},
    {"jwt_secret", 0},
    {"jwt_secret_file", 1},
    {"jwt_public_key_file", 1},
    {"jwt_issuer", 0},
    {"jwt_audience", 0},
    {"jwt_leeway_ms", 0},
    {"auth_timeout_ms", 0},
    {"max_pending_auth", 0},
    {"dev_no_auth", 0},
    {"tls_cert", 1},
    {"tls_key", 1},
    {"max_frame", 0},
    {"max_rooms", 0},
    {"max_connections", 0},
    {"outbound_queue_bytes", 0},
    {"outbound_queue_msgs", 0},
    {"rate_limit", 0},
    {"rate_burst", 0},
    {"max_publish", 0},
    {"heartbeat_ms", 0},
    {"history_size", 0},
    {"history_ttl_ms", 0},
    {"resume_ttl_ms", 0},
    {"resume_secret", 0},
    {"resume_secret_file", 1},
    {"drain_window_ms", 0},
    {"drain_timeout_ms", 0},
    {"log_level", 0},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* A harness, not gateway code: scratch paths made once (STYLE rule 8 is
 * about the daemon). */
static char json_path[64], value_path[64];

static void remove_scratch(void)
{
    unlink(json_path);
    unlink(value_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    (void)argc;
    (void)argv;
    /* Two files are rewritten per input: tmpfs makes that 15x faster than
     * a disk-backed /tmp. */
    if (access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    snprintf(json_path, sizeof(json_path), "%.40s/fzcfgXXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    snprintf(value_path, sizeof(value_path), "%.40s/fzvalXXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if ((fd = mkstemp(json_path)) < 0 || close(fd) != 0 ||
        (fd = mkstemp(value_path)) < 0 || close(fd) != 0) {
        perror("fuzz_config: mkstemp");
        abort();
    }
    atexit(remove_scratch);
    fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || dup2(fd, STDIN_FILENO) < 0) {
        perror("fuzz_config: /dev/null");
        abort();
    }
    close(fd);
    /* The loader logs only on a bug (a bad default); keep runs quiet. */
    rc_log_set_level(RC_LOG_ERROR);
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *fp = fopen(path, "wb");

    CHECK(fp != NULL);
    CHECK(fwrite(data, 1, size, fp) == size);
    CHECK(fclose(fp) == 0);
}

static void load(int argc, char **argv, char **env)
{
    char err[ERRLEN];
    rc_config_t *cfg = (rc_config_t *)1;
    rc_err_t rc;

    memset(err, 'x', sizeof(err));
    rc = rc_config_load(argc, argv, env, &cfg, err, sizeof(err));
    if (rc == RC_OK) {
        CHECK(cfg != NULL);
        CHECK(cfg->listen_host && cfg->admin_host && cfg->node_id);
        CHECK(cfg->max_publish + (uint64_t)256 <= cfg->outbound_queue_bytes);
        CHECK(!cfg->resume_secret || cfg->resume_secret_len == 32);
        rc_config_destroy(cfg);
        return;
    }
    CHECK(rc == RC_EINVAL);
    CHECK(cfg == NULL);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    CHECK(strncmp(err, "config: ", 8) == 0);
    CHECK(strchr(err, '\n') == NULL);
}

/* The value as text: up to the first NUL (the environment and argv cannot
 * carry one). */
static char *text_of(const uint8_t *data, size_t size)
{
    size_t n = strnlen((const char *)data, size);
    char *s = malloc(n + 1);

    CHECK(s != NULL);
    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char cfgarg[96], *env_var, *flag, *value;
    const char *name;
    size_t k, n;

    /* 1. The whole input as the JSON config file. */
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", json_path);
    write_file(json_path, data, size);
    load(2, (char *[]){"roomcastd", cfgarg, NULL},
         (char *[]){SECRET_ENV, NULL});
    if (size == 0)
        return 0;

    /* 2. and 3. The rest as one key's value, from the environment and as a
     * flag; a path key gets a scratch file holding the bytes instead. */
    k = data[0] % NKEYS;
    name = keys[k].name;
    if (keys[k].path) {
        write_file(value_path, data + 1, size - 1);
        value = strdup(value_path);
        CHECK(value != NULL);
    } else {
        value = text_of(data + 1, size - 1);
    }
    n = strlen("ROOMCAST_") + strlen(name) + 1 + strlen(value) + 1;
    env_var = malloc(n);
    flag = malloc(n);
    CHECK(env_var && flag);
    snprintf(env_var, n, "ROOMCAST_%s=%s", name, value);
    for (char *p = env_var; *p != '='; p++)
        *p = (char)toupper((unsigned char)*p);
    load(1, (char *[]){"roomcastd", NULL},
         (char *[]){SECRET_ENV, env_var, NULL});
    /* One argv entry (--key=value): a value such as "--help" stays a value. */
    snprintf(flag, n, "--%s=%s", name, value);
    for (char *p = flag + 2; *p != '='; p++)
        if (*p == '_')
            *p = '-';
    load(2, (char *[]){"roomcastd", flag, NULL}, (char *[]){SECRET_ENV, NULL});
    free(env_var);
    free(flag);
    free(value);
    return 0;
}

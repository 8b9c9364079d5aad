/* Node configuration loader: defaults, then the JSON file, then ROOMCAST_*
 * environment variables, then --flags, each source beating the one before.
 * Every key is one line of the table below; the loader, the usage text and
 * rc_config_destroy() all walk that table. Anything not understood (unknown
 * key, flag or variable, wrong type, out of range) is refused with one line
 * naming the key (config_values.c says what a valid value looks like).
 * Runs once at startup, before the loop, so blocking file I/O is fine here
 * (STYLE rule 5).
 * SPDX-License-Identifier: MIT */
#include "gateway/config.h"
#include "gateway/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "common/log.h"
#include "common/mem.h"

#ifndef RC_VERSION
#define RC_VERSION "0.0.0" /* the top-level CMake defines the real one */
#endif

/* POSIX declares it but no header has to (unistd.h only under _GNU_SOURCE). */
extern char **environ;

#define ENV_PREFIX "ROOMCAST_"
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)
/* Secrets and keys are small; a bound keeps a wrong path (a log, a device)
 * from being slurped whole. */
#define MAX_FILE_BYTES (1024 * 1024)
/* The resume key is 32 bytes (HMAC-SHA256 strength): a shorter secret is
 * refused; a longer one is hashed down so that every byte of it counts. */
#define RESUME_KEY_BYTES 32
#define ADMIN_TOKEN_MIN 16 /* bytes of admin_token, at least */
/* Bytes a `msg` frame adds around its data: the WebSocket header (10), the
 * envelope text (37), a room name (128) and a seq (20 digits), rounded up. */
#define MSG_FRAME_OVERHEAD 256

#define NKEYS rc__config_nkeys
#define keys rc__config_keys

/* State of one load; lives on the stack of rc_config_load(). */
typedef struct loader {
    rc_config_t *cfg;
    bool set[RC__CONFIG_MAX_KEYS];   /* given a value by a source */
    char *path[RC__CONFIG_MAX_KEYS]; /* KIND_FILE: path to read last; owned */
    char *err;
    size_t errlen;
} loader_t;

static rc_err_t errorf(loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message quotes values as given (a flag, a variable, a JSON string),
 * and those may hold control bytes: they are escaped (\n, \r, \t, \xNN) so
 * the message stays one line, as rc_config_load() promises. An escape is
 * written whole or not at all. */
static rc_err_t errorf(loader_t *ld, const char *fmt, ...)
{
    static const char hex[] = "0123456789abcdef";
    char raw[1024];
    size_t o = 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0)
        raw[0] = '\0';
    for (const char *p = "config: "; *p && o + 1 < ld->errlen; p++)
        ld->err[o++] = *p;
    for (const char *p = raw; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        char esc[4] = {'\\', 'x', hex[ch >> 4], hex[ch & 15]};
        size_t k = 4;

        if (ch >= 0x20 && ch != 0x7f) {
            esc[0] = (char)ch;
            k = 1;
        } else if (ch == '\n' || ch == '\r' || ch == '\t') {
            esc[1] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
            k = 2;
        }
        if (o + k >= ld->errlen)
            break;
        memcpy(ld->err + o, esc, k);
        o += k;
    }
    ld->err[o] = '\0';
    return RC_EINVAL;
}

static char **str_field(rc_config_t *cfg, size_t off)
{
    return (char **)(void *)((char *)cfg + off);
}

static void *field(rc_config_t *cfg, size_t off)
{
    return (char *)cfg + off;
}

/* Overwrite a secret before free() so it does not linger in the heap; the
 * volatile stops the compiler from dropping stores to memory about to die. */
static void wipe(char *p, size_t n)
{
    volatile char *v = p;

    while (n--)
        *v++ = 0;
}

static void set_str(rc_config_t *cfg, size_t off, const char *s)
{
    char **f = str_field(cfg, off);

    free(*f);
    *f = s ? rc_xstrdup(s) : NULL;
}

static void set_secret(rc_config_t *cfg, const key_def_t *k, char *owned,
                       size_t len)
{
    char **f = str_field(cfg, k->off);
    size_t *flen = field(cfg, k->off2);

    if (*f)
        wipe(*f, *flen);
    free(*f);
    *f = owned;
    *flen = owned ? len : 0;
}

/* Names derived from a key: flags use dashes, the environment upper case. */
static void env_name(const key_def_t *k, char *buf, size_t size)
{
    size_t i = 0;

    for (const char *p = ENV_PREFIX; *p && i + 1 < size; p++)
        buf[i++] = *p;
    for (const char *p = k->name; *p && i + 1 < size; p++)
        buf[i++] = (char)toupper((unsigned char)*p);
    buf[i] = '\0';
}

static void flag_name(const key_def_t *k, char *buf, size_t size)
{
    size_t i = 0;

    for (const char *p = "--"; *p && i + 1 < size; p++)
        buf[i++] = *p;
    for (const char *p = k->name; *p && i + 1 < size; p++)
        buf[i++] = *p == '_' ? '-' : *p;
    buf[i] = '\0';
}

static int find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* "max-frame" (n bytes, not NUL-terminated) -> index of max_frame. Only
 * dashes are accepted, so --max_frame is an unknown flag. */
static int find_flag(const char *name, size_t n)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = keys[i].name;
        size_t j = 0;

        for (; j < n && k[j]; j++)
            if (name[j] != (k[j] == '_' ? '-' : k[j]))
                break;
        if (j == n && k[j] == '\0')
            return (int)i;
    }
    return -1;
}

/* "MAX_FRAME" (n bytes) -> index of max_frame; exact upper case only. */
static int find_env(const char *name, size_t n)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const char *k = keys[i].name;
        size_t j = 0;

        for (; j < n && k[j]; j++)
            if (name[j] != (char)toupper((unsigned char)k[j]))
                break;
        if (j == n && k[j] == '\0')
            return (int)i;
    }
    return -1;
}

static rc_err_t set_int(loader_t *ld, const key_def_t *k, int64_t v,
                        const char *shown, const char *where)
{
    if (v < k->min || v > k->max)
        return errorf(ld, "%s must be an integer in %lld..%lld, got %s (%s)",
                      k->name, (long long)k->min, (long long)k->max, shown,
                      where);
    switch (k->kind) {
    case KIND_I64:
        *(int64_t *)field(ld->cfg, k->off) = v;
        break;
    case KIND_U32:
        *(uint32_t *)field(ld->cfg, k->off) = (uint32_t)v;
        break;
    case KIND_U64:
        *(uint64_t *)field(ld->cfg, k->off) = (uint64_t)v;
        break;
    default:
        abort(); /* only numeric kinds reach here */
    }
    return RC_OK;
}

/* Apply one textual value (a default, an env variable or a flag). where
 * names the source for the error message. */
static rc_err_t set_text(loader_t *ld, const key_def_t *k, const char *s,
                         const char *where)
{
    size_t i = (size_t)(k - keys);
    const char *why;
    int64_t v;
    char *host;
    int port;
    bool b;

    ld->set[i] = true;
    switch (k->kind) {
    case KIND_STR:
    case KIND_SECRET:
    case KIND_FILE:
        if (s[0] == '\0' && (k->flags & F_NULLABLE)) {
            ld->set[i] = false;
            s = NULL;
        } else if (k->check && (why = k->check(s)) != NULL) {
            return errorf(ld, "%s %s, got \"%s\" (%s)", k->name, why, s, where);
        }
        if (k->kind == KIND_STR) {
            set_str(ld->cfg, k->off, s);
        } else if (k->kind == KIND_SECRET) {
            set_secret(ld->cfg, k, s ? rc_xstrdup(s) : NULL, s ? strlen(s) : 0);
        } else {
            free(ld->path[i]);
            ld->path[i] = s ? rc_xstrdup(s) : NULL;
        }
        return RC_OK;
    case KIND_ADDR:
        if (!rc__config_parse_addr(s, &host, &port))
            return errorf(ld,
                          "%s must be ip:port ([v6addr]:port for IPv6; "
                          "localhost is 127.0.0.1) with a port in 1..65535, "
                          "got \"%s\" (%s)",
                          k->name, s, where);
        free(*str_field(ld->cfg, k->off));
        *str_field(ld->cfg, k->off) = host;
        *(int *)field(ld->cfg, k->off2) = port;
        return RC_OK;
    case KIND_BOOL:
        if (!rc__config_parse_bool(s, &b))
            return errorf(ld, "%s must be true or false, got \"%s\" (%s)",
                          k->name, s, where);
        *(bool *)field(ld->cfg, k->off) = b;
        return RC_OK;
    case KIND_I64:
    case KIND_U32:
    case KIND_U64:
        if ((k->flags & F_AUTO) && strcmp(s, "auto") == 0) {
            *(uint32_t *)field(ld->cfg, k->off) = 0;
            return RC_OK;
        }
        if (!rc__config_parse_int(s, &v))
            return errorf(ld,
                          "%s must be an integer in %lld..%lld, got \"%s\" "
                          "(%s)",
                          k->name, (long long)k->min, (long long)k->max, s,
                          where);
        return set_int(ld, k, v, s, where);
    }
    abort();
}

static const char *json_kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Apply one value of the JSON file: strings for text kinds, integers for
 * numbers, booleans for flags; nothing is coerced. */
static rc_err_t set_json(loader_t *ld, const key_def_t *k, const json_t *v,
                         const char *where)
{
    char shown[32];

    switch (k->kind) {
    case KIND_STR:
    case KIND_SECRET:
    case KIND_FILE:
    case KIND_ADDR:
        if (json_is_null(v) && (k->flags & F_NULLABLE))
            return set_text(ld, k, "", where);
        if (!json_is_string(v))
            return errorf(ld, "%s must be a string%s, got %s (%s)", k->name,
                          (k->flags & F_NULLABLE) ? " or null" : "",
                          json_kind_name(v), where);
        return set_text(ld, k, json_string_value(v), where);
    case KIND_BOOL:
        if (!json_is_boolean(v))
            return errorf(ld, "%s must be true or false, got %s (%s)", k->name,
                          json_kind_name(v), where);
        ld->set[k - keys] = true;
        *(bool *)field(ld->cfg, k->off) = json_is_true(v);
        return RC_OK;
    case KIND_I64:
    case KIND_U32:
    case KIND_U64:
        if ((k->flags & F_AUTO) && json_is_string(v))
            return set_text(ld, k, json_string_value(v), where);
        if (!json_is_integer(v))
            return errorf(ld, "%s must be an integer, got %s (%s)", k->name,
                          json_kind_name(v), where);
        snprintf(shown, sizeof(shown), "%lld",
                 (long long)json_integer_value(v));
        ld->set[k - keys] = true;
        return set_int(ld, k, json_integer_value(v), shown, where);
    }
    abort();
}

static rc_err_t load_json_file(loader_t *ld, const char *path,
                               const char *where)
{
    json_error_t jerr;
    const char *name;
    json_t *root, *v;
    rc_err_t rc = RC_OK;
    char *src = NULL;
    FILE *fp;

    fp = fopen(path, "r");
    if (!fp)
        return errorf(ld, "cannot open config file \"%s\" (%s): %s", path,
                      where, strerror(errno));
    root = json_loadf(fp, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    fclose(fp);
    if (!root)
        return errorf(ld, "invalid JSON in %s at line %d, column %d: %s", path,
                      jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        rc = errorf(ld, "%s must hold a JSON object, got %s", path,
                    json_kind_name(root));
        goto done;
    }
    src = rc_xmalloc(strlen(path) + 4);
    snprintf(src, strlen(path) + 4, "in %s", path);
    json_object_foreach(root, name, v)
    {
        int i = find_key(name);

        if (i < 0) {
            rc = errorf(ld, "unknown key \"%s\" in %s", name, path);
            goto done;
        }
        rc = set_json(ld, &keys[i], v, src);
        if (rc != RC_OK)
            goto done;
    }
done:
    free(src);
    json_decref(root);
    return rc;
}

/* Apply every ROOMCAST_<KEY> variable; ROOMCAST_CONFIG was used already. */
static rc_err_t apply_env(loader_t *ld, char **envp)
{
    char where[128];

    for (char **e = envp; *e; e++) {
        const char *name, *eq;
        int i;

        if (strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        name = *e + ENV_PREFIX_LEN;
        eq = strchr(name, '=');
        if (!eq)
            continue;
        if ((size_t)(eq - name) == 6 && strncmp(name, "CONFIG", 6) == 0)
            continue;
        i = find_env(name, (size_t)(eq - name));
        if (i < 0)
            return errorf(ld, "unknown environment variable %.*s",
                          (int)(eq - *e), *e);
        snprintf(where, sizeof(where), "from %.*s", (int)(eq - *e), *e);
        if (set_text(ld, &keys[i], eq + 1, where) != RC_OK)
            return RC_EINVAL;
    }
    return RC_OK;
}

typedef struct flag_val {
    int key;
    const char *value; /* borrowed from argv (or a literal) */
} flag_val_t;

/* Split argv into (key, value) pairs without applying them, so --config is
 * known before the file is read. --help and --version end it early. */
static rc_err_t scan_argv(loader_t *ld, int argc, char **argv, flag_val_t *vals,
                          size_t *nvals, const char **config)
{
    *nvals = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *name = arg + 2, *eq, *value;
        size_t n;
        int i;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            rc_config_usage(stdout);
            fflush(stdout);
            return RC_ECLOSED;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("roomcastd %s\n", RC_VERSION);
            fflush(stdout);
            return RC_ECLOSED;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return errorf(ld,
                          "unexpected argument \"%s\" (flags are --key value "
                          "or --key=value)",
                          arg);
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        i = (n == 6 && strncmp(name, "config", 6) == 0) ? -2
                                                        : find_flag(name, n);
        if (i == -1)
            return errorf(ld, "unknown flag \"--%.*s\"", (int)n, name);
        if (eq)
            value = eq + 1;
        else if (i >= 0 && keys[i].kind == KIND_BOOL)
            value = "true"; /* a bare boolean flag turns it on */
        else if (a + 1 < argc)
            value = argv[++a];
        else
            return errorf(ld, "flag --%.*s needs a value", (int)n, name);
        if (i == -2) {
            if (value[0] == '\0')
                return errorf(ld, "flag --config needs a file path");
            *config = value;
            continue;
        }
        vals[*nvals].key = i;
        vals[*nvals].value = value;
        (*nvals)++;
    }
    return RC_OK;
}

static rc_err_t read_whole(loader_t *ld, const key_def_t *k, const char *path,
                           char **out, size_t *outlen)
{
    size_t cap = 4096, len = 0, got;
    char *buf;
    FILE *fp = fopen(path, "rb");

    if (!fp)
        return errorf(ld, "%s: cannot read \"%s\": %s", k->name, path,
                      strerror(errno));
    buf = rc_xmalloc(cap + 1);
    for (;;) {
        got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0 || len > MAX_FILE_BYTES)
            break;
        if (len == cap) {
            cap *= 2;
            buf = rc_xrealloc(buf, cap + 1);
        }
    }
    if (ferror(fp)) {
        int e = errno;

        fclose(fp);
        wipe(buf, len);
        free(buf);
        return errorf(ld, "%s: cannot read \"%s\": %s", k->name, path,
                      strerror(e));
    }
    fclose(fp);
    if (len > MAX_FILE_BYTES) {
        wipe(buf, len);
        free(buf);
        return errorf(ld, "%s: \"%s\" is larger than %d bytes", k->name, path,
                      MAX_FILE_BYTES);
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return RC_OK;
}

/* Read the staged *_file paths into their fields. */
static rc_err_t read_files(loader_t *ld)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        char *buf = NULL;
        size_t len = 0;

        if (k->kind != KIND_FILE || !ld->path[i])
            continue;
        /* The value key sharing this field (jwt_secret for jwt_secret_file)
         * must not be set too: which one should win is anyone's guess. */
        for (size_t j = 0; j < NKEYS; j++)
            if (j != i && keys[j].kind == KIND_SECRET &&
                keys[j].off == k->off && ld->set[j])
                return errorf(ld, "%s and %s are both set; use one",
                              keys[j].name, k->name);
        if (read_whole(ld, k, ld->path[i], &buf, &len) != RC_OK)
            return RC_EINVAL;
        if (k->flags & F_LEN) {
            /* One newline, as editors and `echo` add; "\r\n" counts as one. */
            if (len > 0 && buf[len - 1] == '\n') {
                len--;
                if (len > 0 && buf[len - 1] == '\r')
                    len--;
                buf[len] = '\0';
            }
        }
        if (len == 0) {
            free(buf);
            return errorf(ld, "%s: \"%s\" is empty", k->name, ld->path[i]);
        }
        if ((k->flags & F_PEM) && !strstr(buf, "-----BEGIN ")) {
            free(buf);
            return errorf(ld, "%s: \"%s\" does not hold a PEM key", k->name,
                          ld->path[i]);
        }
        if (k->flags & F_LEN) {
            set_secret(ld->cfg, k, buf, len);
        } else {
            free(*str_field(ld->cfg, k->off));
            *str_field(ld->cfg, k->off) = buf;
        }
    }
    return RC_OK;
}

/* resume_secret (from either key) is at least RESUME_KEY_BYTES; a longer
 * one becomes SHA-256 of itself, so the field always holds the 32-byte key
 * the node signs with and no byte of a long secret is silently ignored. */
static rc_err_t check_resume_secret(loader_t *ld)
{
    rc_config_t *c = ld->cfg;
    int kf = find_key("resume_secret_file");
    unsigned char *key;

    if (!c->resume_secret)
        return RC_OK;
    if (c->resume_secret_len < RESUME_KEY_BYTES) {
        if (kf >= 0 && ld->path[kf])
            return errorf(ld,
                          "resume_secret_file: \"%s\" holds %zu bytes; the "
                          "resume secret needs at least %d (try `openssl rand "
                          "-hex 32`)",
                          ld->path[kf], c->resume_secret_len, RESUME_KEY_BYTES);
        return errorf(ld,
                      "resume_secret must be at least %d bytes, got %zu (try "
                      "`openssl rand -hex 32`)",
                      RESUME_KEY_BYTES, c->resume_secret_len);
    }
    if (c->resume_secret_len == RESUME_KEY_BYTES)
        return RC_OK;
    key = rc_xmalloc(RESUME_KEY_BYTES + 1);
    SHA256((const unsigned char *)c->resume_secret, c->resume_secret_len, key);
    key[RESUME_KEY_BYTES] = '\0';
    wipe(c->resume_secret, c->resume_secret_len);
    free(c->resume_secret);
    c->resume_secret = (char *)key;
    c->resume_secret_len = RESUME_KEY_BYTES;
    return RC_OK;
}

/* Whether an admin_listen host is a loopback address. */
static bool loopback_host(const char *h)
{
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
           strcmp(h, "[::1]") == 0 || strcmp(h, "localhost") == 0;
}

/* admin_token: 16+ visible ASCII bytes; required when the admin port is
 * reachable from elsewhere (POST /drain would be anyone's). */
static rc_err_t check_admin(loader_t *ld)
{
    const rc_config_t *c = ld->cfg;

    if (c->admin_token) {
        if (c->admin_token_len < ADMIN_TOKEN_MIN)
            return errorf(ld,
                          "admin_token must be at least %d bytes, got %zu "
                          "(try `openssl rand -hex 24`)",
                          ADMIN_TOKEN_MIN, c->admin_token_len);
        for (size_t i = 0; i < c->admin_token_len; i++)
            if (c->admin_token[i] <= ' ' || c->admin_token[i] >= 0x7f)
                return errorf(ld, "admin_token: only visible ASCII (no "
                                  "spaces, no control bytes)");
    } else if (c->admin_token_stats) {
        return errorf(ld, "admin_token_stats needs admin_token");
    }
    if (!c->admin_token && !loopback_host(c->admin_host))
        return errorf(ld,
                      "admin_listen %s is not loopback: set admin_token (or "
                      "admin_token_file) so that POST /drain is not anyone's, "
                      "or listen on 127.0.0.1",
                      c->admin_host);
    return RC_OK;
}

/* Checks that span keys, run once every source is applied. */
static rc_err_t cross_check(loader_t *ld)
{
    const rc_config_t *c = ld->cfg;

    if (c->workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        ld->cfg->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (uint32_t)cpus;
    }
    if (c->workers > 1 && !c->redis_url)
        return errorf(ld,
                      "workers %u needs redis_url: the rooms of one node span "
                      "its worker processes through Redis (set redis_url, or "
                      "workers 1)",
                      c->workers);
    /* One message of max_publish bytes must fit an empty queue, or every
     * member of its room is closed with 4009 the moment it is sent. */
    if ((uint64_t)c->max_publish + MSG_FRAME_OVERHEAD > c->outbound_queue_bytes)
        return errorf(ld,
                      "max_publish (%u) plus %d bytes of framing must fit in "
                      "outbound_queue_bytes (%llu): one such message would "
                      "close every member of its room with 4009",
                      c->max_publish, MSG_FRAME_OVERHEAD,
                      (unsigned long long)c->outbound_queue_bytes);
    if (check_resume_secret(ld) != RC_OK)
        return RC_EINVAL;
    if (check_admin(ld) != RC_OK)
        return RC_EINVAL;

    if (!c->tls_cert != !c->tls_key)
        return errorf(ld,
                      "tls_cert and tls_key must be set together (only %s "
                      "is set)",
                      c->tls_cert ? "tls_cert" : "tls_key");
    for (size_t i = 0; i < NKEYS; i++) {
        const char *path;
        FILE *fp;

        if (!(keys[i].flags & F_READABLE))
            continue;
        path = *str_field(ld->cfg, keys[i].off);
        if (!path)
            continue;
        fp = fopen(path, "r");
        if (!fp)
            return errorf(ld, "%s: cannot read \"%s\": %s", keys[i].name, path,
                          strerror(errno));
        fclose(fp);
    }
    if (c->dev_no_auth)
        return RC_OK;
    if (c->jwt_alg[0] == 'H') {
        if (!c->jwt_secret || c->jwt_secret_len == 0)
            return errorf(ld,
                          "jwt_alg %s needs jwt_secret or jwt_secret_file (or "
                          "dev_no_auth for development)",
                          c->jwt_alg);
    } else if (!c->jwt_public_key) {
        return errorf(ld,
                      "jwt_alg %s needs jwt_public_key_file (or dev_no_auth "
                      "for development)",
                      c->jwt_alg);
    }
    return RC_OK;
}

static void apply_defaults(rc_config_t *cfg)
{
    char err[256];
    char host[256];
    char id[RC_CONFIG_MAX_NODE_ID + 1];
    loader_t ld = {.cfg = cfg, .err = err, .errlen = sizeof(err)};

    for (size_t i = 0; i < NKEYS; i++) {
        if (!keys[i].def)
            continue;
        if (set_text(&ld, &keys[i], keys[i].def, "default") != RC_OK) {
            /* A bad default is a bug in the table, not an operator error. */
            rc_log(RC_LOG_ERROR, "config_bad_default", "%s", err);
            abort();
        }
    }
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "roomcast");
    host[sizeof(host) - 1] = '\0';
    /* Keep the pid whole even if the host name is long. */
    snprintf(id, sizeof(id), "%.100s-%ld", host, (long)getpid());
    for (char *p = id; *p; p++)
        if (!isgraph((unsigned char)*p))
            *p = '_';
    set_str(cfg, offsetof(rc_config_t, node_id), id);
}

rc_config_t *rc_config_create_default(void)
{
    rc_config_t *cfg = rc_xcalloc(1, sizeof(*cfg));

    apply_defaults(cfg);
    return cfg;
}

void rc_config_destroy(rc_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        char **f;

        if (k->kind == KIND_BOOL || k->kind == KIND_I64 ||
            k->kind == KIND_U32 || k->kind == KIND_U64)
            continue;
        /* A *_file key shares its field with a secret key; NULL after the
         * first free makes the second one a no-op. */
        f = str_field(cfg, k->off);
        if (*f && (k->kind == KIND_SECRET ||
                   (k->kind == KIND_FILE && (k->flags & F_LEN))))
            wipe(*f, *(size_t *)field(cfg, k->off2));
        free(*f);
        *f = NULL;
    }
    free(cfg);
}

rc_err_t rc_config_load(int argc, char **argv, char **envp, rc_config_t **out,
                        char *err, size_t errlen)
{
    char dummy[1];
    loader_t ld = {.err = err, .errlen = errlen};
    flag_val_t *vals = NULL;
    size_t nvals = 0;
    const char *config = NULL, *config_where = "from --config";
    char flag[64], where[80];
    rc_err_t rc;

    *out = NULL;
    if (!err || errlen == 0) {
        ld.err = dummy;
        ld.errlen = sizeof(dummy);
    }
    ld.err[0] = '\0';
    if (!envp)
        envp = environ;
    vals = rc_xcalloc(argc > 0 ? (size_t)argc : 1, sizeof(*vals));
    rc = scan_argv(&ld, argc, argv, vals, &nvals, &config);
    if (rc != RC_OK)
        goto fail;
    if (!config) {
        for (char **e = envp; *e; e++)
            if (strncmp(*e, ENV_PREFIX "CONFIG=", ENV_PREFIX_LEN + 7) == 0 &&
                (*e)[ENV_PREFIX_LEN + 7] != '\0') {
                config = *e + ENV_PREFIX_LEN + 7;
                config_where = "from ROOMCAST_CONFIG";
            }
    }

    ld.cfg = rc_config_create_default();
    if (config && (rc = load_json_file(&ld, config, config_where)) != RC_OK)
        goto fail;
    if ((rc = apply_env(&ld, envp)) != RC_OK)
        goto fail;
    for (size_t i = 0; i < nvals; i++) {
        const key_def_t *k = &keys[vals[i].key];

        flag_name(k, flag, sizeof(flag));
        snprintf(where, sizeof(where), "from %s", flag);
        if ((rc = set_text(&ld, k, vals[i].value, where)) != RC_OK)
            goto fail;
    }
    if ((rc = read_files(&ld)) != RC_OK)
        goto fail;
    if ((rc = cross_check(&ld)) != RC_OK)
        goto fail;
    for (size_t i = 0; i < NKEYS; i++)
        free(ld.path[i]);
    free(vals);
    *out = ld.cfg;
    return RC_OK;

fail:
    for (size_t i = 0; i < NKEYS; i++)
        free(ld.path[i]);
    free(vals);
    rc_config_destroy(ld.cfg);
    return rc;
}

static const char *value_hint(const key_def_t *k)
{
    switch (k->kind) {
    case KIND_STR:
        return k->flags & F_READABLE ? "PATH" : "TEXT";
    case KIND_SECRET:
        return "SECRET";
    case KIND_FILE:
        return "PATH";
    case KIND_ADDR:
        return "HOST:PORT";
    case KIND_BOOL:
        return "[=true|false]";
    default:
        return "N";
    }
}

void rc_config_usage(void *f)
{
    FILE *fp = f;
    char flag[64], env[64];

    fprintf(fp,
            "Usage: roomcastd [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
            "       roomcastd --help | --version\n"
            "\n"
            "Each key may be set in the JSON config file (--config FILE or\n"
            "ROOMCAST_CONFIG), as ROOMCAST_<KEY> in the environment, or as\n"
            "--<key-with-dashes>. A flag beats the environment, which beats\n"
            "the file, which beats the default. Durations are milliseconds.\n"
            "\n"
            "Keys:\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];

        flag_name(k, flag, sizeof(flag));
        env_name(k, env, sizeof(env));
        fprintf(fp, "  %s %s\n      %s\n      env %s, file key \"%s\", ", flag,
                value_hint(k), k->help, env, k->name);
        if (k->flags & F_COMPUTED)
            fprintf(fp, "default <host name>-<pid>");
        else if (k->flags & F_AUTO)
            fprintf(fp, "default %s, or auto", k->def);
        else if (k->def)
            fprintf(fp, "default %s", k->def);
        else
            fprintf(fp, "default none");
        if (k->kind == KIND_I64 || k->kind == KIND_U32 || k->kind == KIND_U64)
            fprintf(fp, ", range %lld..%lld", (long long)k->min,
                    (long long)k->max);
        fprintf(fp, "\n");
    }
}

/* roomcast: the command-line companion of roomcastd. main() only dispatches
 * to a subcommand (today `token`; `publish`, `nodes` and `drain` come next),
 * each of which parses its own flags. Exit status: 0 done, 1 failed, 2 bad
 * arguments (message on stderr).
 * SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "common/mem.h"

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

static const rc_cli_cmd_t commands[] = {
    {"token", "mint an HS256/HS384/HS512 JWT (development and tests)",
     cmd_token},
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

/* Matches "--name value" and "--name=value". Returns 1 with *val set, 0 when
 * arg is another option, -1 (message printed) when the value is missing. */
static int opt_value(const char *name, int argc, char **argv, int *i,
                     const char **val)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "roomcast %s: %s needs a value\n", argv[0], name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
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
    int rc = RC_EXIT_USAGE, m;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            token_usage(stdout);
            rc = RC_EXIT_OK;
            goto done;
        }
        if ((m = opt_value("--secret-file", argc, argv, &i, &val)) != 0)
            secret_file = val;
        else if ((m = opt_value("--secret", argc, argv, &i, &val)) != 0)
            secret = val;
        else if ((m = opt_value("--alg", argc, argv, &i, &val)) != 0)
            alg = val;
        else if ((m = opt_value("--sub", argc, argv, &i, &val)) != 0)
            sub = val;
        else if ((m = opt_value("--rooms", argc, argv, &i, &val)) != 0)
            rooms[nrooms++] = val;
        else if ((m = opt_value("--pub", argc, argv, &i, &val)) != 0)
            pub[npub++] = val;
        else if ((m = opt_value("--ttl", argc, argv, &i, &val)) != 0)
            ttl_arg = val;
        else {
            fprintf(stderr, "roomcast token: unknown argument '%s'\n", argv[i]);
            goto usage;
        }
        if (m < 0)
            goto usage;
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

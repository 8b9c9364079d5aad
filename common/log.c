/* key=value log lines on stderr, one write(2) each so lines never interleave.
 *
 * The format string is trusted (a literal, checked by the compiler); what
 * its conversions expand to is not. So rc_log walks the format itself:
 * literal text is copied as is, and the text of every conversion (%s, %d,
 * %016" PRIx64 ", ...) is escaped on the way in. A value inside quotes the
 * format wrote (`err=\"%s\"`) has `"`, `\` and control bytes escaped; a
 * value outside quotes (`cmd=%s`) is also quoted when it holds a space, an
 * `=`, a quote, a backslash or a control byte, or is empty, so that no value
 * can end its line or forge another key.
 * SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
/* Room kept for the closing quote and the newline of a truncated line. */
#define LINE_RESERVE 2

static rc_log_level_t threshold = RC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rc_log_set_level(rc_log_level_t level)
{
    threshold = level;
}

rc_log_level_t rc_log_get_level(void)
{
    return threshold;
}

int rc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* The line being built. Once full, every further append is dropped, and an
 * escape sequence is written whole or not at all. */
typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool full;
    bool quoted; /* inside a quote the format opened (or we did) */
} line_t;

static size_t room_left(const line_t *l)
{
    return sizeof(l->buf) - LINE_RESERVE - l->len;
}

static void put_raw(line_t *l, const char *s, size_t n)
{
    if (l->full)
        return;
    if (n > room_left(l)) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static bool needs_escape(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\';
}

static void put_escaped(line_t *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n && !l->full; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[4];
        size_t k = 0;

        if (!needs_escape(ch)) {
            put_raw(l, (const char *)&s[i], 1);
            continue;
        }
        esc[k++] = '\\';
        switch (ch) {
        case '\n':
            esc[k++] = 'n';
            break;
        case '\r':
            esc[k++] = 'r';
            break;
        case '\t':
            esc[k++] = 't';
            break;
        case '"':
        case '\\':
            esc[k++] = (char)ch;
            break;
        default:
            esc[k++] = 'x';
            esc[k++] = hex[ch >> 4];
            esc[k++] = hex[ch & 15];
            break;
        }
        put_raw(l, esc, k);
    }
}

/* One value: escaped; and quoted when it stands outside quotes and would
 * otherwise be ambiguous. */
static void put_value(line_t *l, const char *s, size_t n)
{
    bool quote = false;

    if (!l->quoted) {
        quote = n == 0;
        for (size_t i = 0; i < n && !quote; i++)
            quote =
                s[i] == ' ' || s[i] == '=' || needs_escape((unsigned char)s[i]);
    }
    if (!quote) {
        put_escaped(l, s, n);
        return;
    }
    put_raw(l, "\"", 1);
    if (l->full)
        return;
    put_escaped(l, s, n);
    put_raw(l, "\"", 1);
    if (l->full)
        l->quoted = true; /* the truncation path closes it */
}

/* Literal text of the format: copied as is; its quotes toggle `quoted`. A
 * backslash-quote pair in the literal does not toggle. */
static void put_literal(line_t *l, const char *s, size_t n)
{
    bool flip = false;

    for (size_t i = 0; i < n; i++)
        if (s[i] == '"' && (i == 0 || s[i - 1] != '\\'))
            flip = !flip;
    put_raw(l, s, n);
    /* A literal dropped whole (line full) opened or closed nothing. */
    if (!l->full && flip)
        l->quoted = !l->quoted;
}

typedef enum arg_len {
    LEN_NONE,
    LEN_HH,
    LEN_H,
    LEN_L,
    LEN_LL,
    LEN_J,
    LEN_Z,
    LEN_T,
    LEN_BIG_L,
} arg_len_t;

/* Consume the argument a conversion `conv` with length `len` takes. */
static void skip_arg(va_list *ap, char conv, arg_len_t len)
{
    switch (conv) {
    case 'd':
    case 'i':
    case 'o':
    case 'u':
    case 'x':
    case 'X':
        switch (len) {
        case LEN_L:
            (void)va_arg(*ap, long);
            break;
        case LEN_LL:
            (void)va_arg(*ap, long long);
            break;
        case LEN_J:
            (void)va_arg(*ap, intmax_t);
            break;
        case LEN_Z:
            (void)va_arg(*ap, size_t);
            break;
        case LEN_T:
            (void)va_arg(*ap, ptrdiff_t);
            break;
        default: /* hh and h are promoted to int */
            (void)va_arg(*ap, int);
            break;
        }
        break;
    case 'c':
        (void)va_arg(*ap, int);
        break;
    case 'p':
    case 's': /* %ls: a pointer too */
        (void)va_arg(*ap, void *);
        break;
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (len == LEN_BIG_L)
            (void)va_arg(*ap, long double);
        else
            (void)va_arg(*ap, double);
        break;
    default:
        break;
    }
}

/* Expand one conversion spec (spec[0] == '%', n bytes) that is not %s, by
 * handing it to vsnprintf with a copy of the arguments, then move ap past
 * what it used. */
static void put_conversion(line_t *l, const char *spec, size_t n, va_list *ap,
                           int stars, char conv, arg_len_t len)
{
    char fmt[32], out[512];
    va_list cp;
    int m;

    if (n >= sizeof(fmt)) {
        put_literal(l, "?", 1);
        return;
    }
    memcpy(fmt, spec, n);
    fmt[n] = '\0';
    va_copy(cp, *ap);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
    m = vsnprintf(out, sizeof(out), fmt, cp);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
    va_end(cp);
    for (int i = 0; i < stars; i++)
        (void)va_arg(*ap, int);
    skip_arg(ap, conv, len);
    if (m < 0)
        return;
    put_value(l, out, (size_t)m < sizeof(out) ? (size_t)m : sizeof(out) - 1);
}

/* %s with its optional precision (flags and width are honoured only as far
 * as the precision: a padded string is no use in a key=value line). */
static void put_string(line_t *l, va_list *ap, int stars, bool has_prec,
                       int prec)
{
    const char *s;
    size_t n;

    if (stars >= 1 && has_prec && prec < 0) { /* ".*" */
        if (stars == 2)
            (void)va_arg(*ap, int); /* "*" width */
        prec = va_arg(*ap, int);
    } else {
        for (int i = 0; i < stars; i++)
            (void)va_arg(*ap, int);
    }
    s = va_arg(*ap, const char *);
    if (!s)
        s = "(null)";
    n = has_prec && prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
    put_value(l, s, n);
}

static void format_into(line_t *l, const char *fmt, va_list *ap)
{
    const char *p = fmt, *lit = fmt;

    while (*p) {
        const char *spec;
        int stars = 0, prec = -1;
        bool has_prec = false;
        arg_len_t len = LEN_NONE;

        if (*p != '%') {
            p++;
            continue;
        }
        put_literal(l, lit, (size_t)(p - lit));
        lit = spec = p++;
        if (*p == '%') {
            put_literal(l, "%", 1);
            lit = ++p;
            continue;
        }
        while (*p && strchr("-+ #0", *p))
            p++;
        if (*p == '*') {
            stars++;
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (*p == '.') {
            has_prec = true;
            p++;
            if (*p == '*') {
                stars++;
                p++;
            } else {
                prec = 0;
                for (; *p >= '0' && *p <= '9'; p++)
                    if (prec < 100000)
                        prec = prec * 10 + (*p - '0');
            }
        }
        switch (*p) {
        case 'h':
            len = p[1] == 'h' ? (p++, LEN_HH) : LEN_H;
            p++;
            break;
        case 'l':
            len = p[1] == 'l' ? (p++, LEN_LL) : LEN_L;
            p++;
            break;
        case 'j':
            len = LEN_J;
            p++;
            break;
        case 'z':
            len = LEN_Z;
            p++;
            break;
        case 't':
            len = LEN_T;
            p++;
            break;
        case 'L':
            len = LEN_BIG_L;
            p++;
            break;
        default:
            break;
        }
        if (*p == '\0')
            break; /* a truncated spec: the compiler warned already */
        if (*p == 's' && len == LEN_NONE)
            put_string(l, ap, stars, has_prec, prec);
        else if (*p == 'n')
            (void)va_arg(*ap, void *); /* never written through */
        else
            put_conversion(l, spec, (size_t)(p + 1 - spec), ap, stars, *p, len);
        lit = ++p;
    }
    put_literal(l, lit, (size_t)(p - lit));
}

void rc_log(rc_log_level_t level, const char *event, const char *fmt, ...)
{
    line_t l = {.len = 0};
    struct timespec ts;
    struct tm tm;
    char head[96];
    size_t n;
    int m;
    va_list ap;

    if (level < threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(head, sizeof(head), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(head + n, sizeof(head) - n,
                 ".%03ldZ level=%s event=", ts.tv_nsec / 1000000L,
                 level_names[level & 3]);
    if (m > 0)
        n += (size_t)m < sizeof(head) - n ? (size_t)m : sizeof(head) - n - 1;
    put_raw(&l, head, n);
    put_value(&l, event ? event : "", event ? strlen(event) : 0);
    put_raw(&l, " ", 1);
    va_start(ap, fmt);
    format_into(&l, fmt, &ap);
    va_end(ap);
    /* A truncated line still closes an open quote and ends in a newline:
     * LINE_RESERVE kept room for both. */
    if (l.full && l.quoted)
        l.buf[l.len++] = '"';
    l.buf[l.len++] = '\n';
    /* Best effort: stderr is a pipe or a tty; nothing useful to do on error. */
    if (write(STDERR_FILENO, l.buf, l.len) < 0)
        return;
}

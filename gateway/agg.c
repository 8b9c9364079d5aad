/* Summing Prometheus text (agg.h). A few hundred series at most, summed at
 * scrape time from a handful of workers: linear lookups are enough.
 * SPDX-License-Identifier: MIT */
#include "gateway/agg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define LINE_MAX_BYTES 1024 /* longer lines are skipped */

typedef struct family {
    char *name;
    char *help;     /* the "# HELP ..." line, owned, or NULL */
    char *type;     /* the "# TYPE ..." line, owned, or NULL */
    bool monotonic; /* counter or histogram */
} family_t;

typedef struct series {
    char *key; /* name{labels} */
    size_t family;
    double v;
} series_t;

struct rc_agg {
    family_t *fam;
    size_t nfam, capfam;
    series_t *ser;
    size_t nser, capser;
};

rc_agg_t *rc_agg_create(void)
{
    return rc_xcalloc(1, sizeof(rc_agg_t));
}

void rc_agg_destroy(rc_agg_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nfam; i++) {
        free(a->fam[i].name);
        free(a->fam[i].help);
        free(a->fam[i].type);
    }
    for (size_t i = 0; i < a->nser; i++)
        free(a->ser[i].key);
    free(a->fam);
    free(a->ser);
    free(a);
}

static char *dupn(const char *s, size_t n)
{
    char *d = rc_xmalloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static size_t family_of(rc_agg_t *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->nfam; i++)
        if (strlen(a->fam[i].name) == n && memcmp(a->fam[i].name, name, n) == 0)
            return i;
    if (a->nfam == a->capfam) {
        a->capfam = a->capfam ? a->capfam * 2 : 64;
        a->fam = rc_xrealloc(a->fam, a->capfam * sizeof(*a->fam));
    }
    memset(&a->fam[a->nfam], 0, sizeof(a->fam[0]));
    a->fam[a->nfam].name = dupn(name, n);
    return a->nfam++;
}

static series_t *find_series(const rc_agg_t *a, const char *key, size_t n)
{
    for (size_t i = 0; i < a->nser; i++)
        if (strlen(a->ser[i].key) == n && memcmp(a->ser[i].key, key, n) == 0)
            return &a->ser[i];
    return NULL;
}

/* The family a sample belongs to: the one whose TYPE came last, when the
 * sample is one of its series (its name, or name_bucket, name_sum,
 * name_count), else one named after the sample (an untyped family). */
static size_t sample_family(rc_agg_t *a, size_t cur, bool have_cur,
                            const char *name, size_t n)
{
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};

    if (have_cur) {
        size_t fl = strlen(a->fam[cur].name);

        if (fl <= n && memcmp(a->fam[cur].name, name, fl) == 0)
            for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
                if (strlen(suffixes[i]) == n - fl &&
                    memcmp(suffixes[i], name + fl, n - fl) == 0)
                    return cur;
    }
    return family_of(a, name, n);
}

/* The end of the key of a sample line: past the metric name and, if there
 * is one, past its label set, whose quoted values may hold spaces, braces
 * and backslash escapes. NULL if the line is not name{labels} or name. */
static const char *key_end(const char *line)
{
    const char *p = line;
    bool quoted = false;

    while (*p && *p != '{' && *p != ' ' && *p != '\t')
        p++;
    if (p == line)
        return NULL;
    if (*p != '{')
        return p;
    for (p++; *p; p++) {
        if (quoted) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                quoted = false;
        } else if (*p == '"') {
            quoted = true;
        } else if (*p == '}') {
            return p + 1;
        }
    }
    return NULL; /* the label set never closed */
}

/* The sample value after the key: one number (Go's NaN, +Inf, -Inf
 * spellings included), then at most a timestamp, which is ignored. */
static bool parse_value(const char *p, double *v)
{
    char *ep;

    if (*p != ' ' && *p != '\t')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return false;
    *v = strtod(p, &ep);
    if (ep == p)
        return false;
    while (*ep == ' ' || *ep == '\t' || *ep == '\r')
        ep++;
    if (*ep == '\0')
        return true;
    /* A timestamp: digits, maybe signed. */
    if (*ep == '-')
        ep++;
    if (*ep < '0' || *ep > '9')
        return false;
    while (*ep >= '0' && *ep <= '9')
        ep++;
    while (*ep == ' ' || *ep == '\t' || *ep == '\r')
        ep++;
    return *ep == '\0';
}

void rc_agg_add(rc_agg_t *a, const char *text, size_t len, bool monotonic)
{
    const char *p = text, *end = text + len;
    size_t cur = 0;
    bool have_cur = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        char line[LINE_MAX_BYTES];

        if (ll > 0 && p[ll - 1] == '\r') /* CRLF */
            ll--;
        if (ll == 0 || ll >= sizeof(line))
            goto next;
        memcpy(line, p, ll);
        line[ll] = '\0';
        if (strncmp(line, "# HELP ", 7) == 0 ||
            strncmp(line, "# TYPE ", 7) == 0) {
            const char *name = line + 7, *sp = strchr(name, ' ');
            size_t f;

            if (!sp)
                goto next;
            f = family_of(a, name, (size_t)(sp - name));
            cur = f;
            have_cur = true;
            if (line[2] == 'H' && !a->fam[f].help)
                a->fam[f].help = dupn(line, ll);
            if (line[2] == 'T' && !a->fam[f].type) {
                a->fam[f].type = dupn(line, ll);
                a->fam[f].monotonic = strcmp(sp + 1, "counter") == 0 ||
                                      strcmp(sp + 1, "histogram") == 0;
            }
        } else if (line[0] != '#') {
            /* name{labels} value [timestamp] */
            const char *ke = key_end(line);
            size_t kl, nl2;
            double v;
            series_t *s;
            size_t f;

            if (!ke || !parse_value(ke, &v))
                goto next;
            kl = (size_t)(ke - line);
            nl2 = strcspn(line, "{ \t");
            f = sample_family(a, cur, have_cur, line, nl2);
            if (monotonic && !a->fam[f].monotonic)
                goto next;
            s = find_series(a, line, kl);
            if (!s) {
                if (a->nser == a->capser) {
                    a->capser = a->capser ? a->capser * 2 : 256;
                    a->ser = rc_xrealloc(a->ser, a->capser * sizeof(*a->ser));
                }
                s = &a->ser[a->nser++];
                s->key = dupn(line, kl);
                s->family = f;
                s->v = 0;
            }
            s->v += v;
        }
    next:
        p = nl ? nl + 1 : end;
    }
}

void rc_agg_set(rc_agg_t *a, const char *key, double v)
{
    series_t *s = find_series(a, key, strlen(key));

    if (s)
        s->v = v;
}

void rc_agg_render(const rc_agg_t *a, rc_buf_t *out)
{
    for (size_t f = 0; f < a->nfam; f++) {
        bool any = false;

        for (size_t i = 0; i < a->nser; i++) {
            const series_t *s = &a->ser[i];

            if (s->family != f)
                continue;
            if (!any) {
                if (a->fam[f].help)
                    rc_buf_printf(out, "%s\n", a->fam[f].help);
                if (a->fam[f].type)
                    rc_buf_printf(out, "%s\n", a->fam[f].type);
                any = true;
            }
            /* Counts print as integers; sums of seconds keep 15 digits;
             * NaN and infinities in the exposition's own spelling. */
            if (isnan(s->v))
                rc_buf_printf(out, "%s NaN\n", s->key);
            else if (isinf(s->v))
                rc_buf_printf(out, "%s %cInf\n", s->key, s->v > 0 ? '+' : '-');
            else if (s->v == floor(s->v) && fabs(s->v) < 9e15)
                rc_buf_printf(out, "%s %.0f\n", s->key, s->v);
            else
                rc_buf_printf(out, "%s %.15g\n", s->key, s->v);
        }
    }
}

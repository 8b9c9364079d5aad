/* Allocation wrappers: abort on internal OOM, fail softly on client sizes.
 * SPDX-License-Identifier: MIT */
#include "common/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Failure injection for tests; the process is single-threaded (rule 5). */
static unsigned fail_countdown;

static void oom(size_t n)
{
    fprintf(stderr, "level=fatal event=oom bytes=%zu\n", n);
    abort();
}

void *rc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rc_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *rc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rc_xstrdup(const char *s)
{
    return rc_xstrndup(s, strlen(s));
}

char *rc_xstrndup(const char *s, size_t n)
{
    char *d = rc_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int injected_failure(void)
{
    if (fail_countdown == 0)
        return 0;
    return --fail_countdown == 0;
}

void *rc_trymalloc(size_t n)
{
    if (injected_failure())
        return NULL;
    return malloc(n ? n : 1);
}

void *rc_tryrealloc(void *p, size_t n)
{
    if (injected_failure())
        return NULL;
    return realloc(p, n ? n : 1);
}

void rc_mem_fail_after(unsigned after)
{
    fail_countdown = after;
}

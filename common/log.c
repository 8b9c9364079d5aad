/* key=value log lines on stderr, one write(2) each so lines never interleave.
 * SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

void rc_log(rc_log_level_t level, const char *event, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;
    va_list ap;

    if (level < threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    m = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s event=%s ",
                 ts.tv_nsec / 1000000L, level_names[level & 3], event);
    if (m > 0)
        n += (size_t)m;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    /* A truncated line still ends in a newline. */
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* Best effort: stderr is a pipe or a tty; nothing useful to do on error. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

/* Logging: one line per event, key=value, to stderr.
 *   rc_log(RC_LOG_INFO, "conn_open", "peer=%s conns=%u", peer, n);
 * prints
 *   ts=2026-11-23T21:40:00.123Z level=info event=conn_open peer=... conns=...
 * Values that may hold spaces must be quoted by the caller ("%s" -> "\"%s\"").
 * Never log a token (the README says why).
 * SPDX-License-Identifier: MIT */
#ifndef RC_LOG_H
#define RC_LOG_H

typedef enum rc_log_level {
    RC_LOG_DEBUG = 0,
    RC_LOG_INFO = 1,
    RC_LOG_WARN = 2,
    RC_LOG_ERROR = 3,
} rc_log_level_t;

/* The threshold is process-wide and set once at startup, before the loop
 * runs (the one exception to STYLE rule 8, like syslog's mask). */
void rc_log_set_level(rc_log_level_t level);
rc_log_level_t rc_log_get_level(void);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int rc_log_level_parse(const char *s);

void rc_log(rc_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* RC_LOG_H */

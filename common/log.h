/* Logging: one line per event, key=value, to stderr.
 *   rc_log(RC_LOG_INFO, "conn_open", "peer=%s conns=%u", peer, n);
 * prints
 *   ts=2026-11-23T21:40:00.123Z level=info event=conn_open peer=... conns=...
 *
 * Escaping is rc_log's job, not the caller's, so it cannot be forgotten:
 * the format is trusted text (a string literal; -Wformat checks it) and is
 * copied as is, while the expansion of every conversion in it (%s, %d, ...)
 * is escaped: bytes below 0x20, 0x7f, `"` and `\` become \n \r \t \xNN
 * \" \\. A value the format puts in quotes (`err=\"%s\"`) is escaped inside
 * them; a value outside quotes (`cmd=%s`) is quoted too when it is empty or
 * holds a space, `=`, `"`, `\` or a control byte. So a value can neither end
 * its line nor forge a key: one call is one line, whatever the data. Never
 * pass untrusted text as the format (write "%s"). A line is at most 1 KiB;
 * a longer one is cut on a whole escape, its open quote closed.
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

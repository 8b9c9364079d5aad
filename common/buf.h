/* A growable byte buffer for text built in pieces (Prometheus text, JSON,
 * HTTP bodies). Always NUL-terminated once anything was appended. Internal
 * objects: growth failure aborts (rc_xrealloc, STYLE rule 12).
 * SPDX-License-Identifier: MIT */
#ifndef RC_BUF_H
#define RC_BUF_H

#include <stddef.h>

/* Zero-initialize ({0}); data is owned (rc_buf_dispose()). */
typedef struct rc_buf {
    char *data;
    size_t len, cap;
} rc_buf_t;

void rc_buf_printf(rc_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rc_buf_append(rc_buf_t *b, const char *s, size_t n);
/* Frees data and leaves b empty and reusable. */
void rc_buf_dispose(rc_buf_t *b);

#endif /* RC_BUF_H */

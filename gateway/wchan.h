/* The private channel between the supervisor and one worker process: a
 * socketpair (libuv pipe) carrying framed messages, one type byte and a
 * 32-bit big-endian length, then the payload. The supervisor polls its
 * workers through it ('P' -> 'R'), tells them to drain ('D') and hands
 * worker 0 the node's registry figures ('N'); a worker asks for a drain of
 * the whole node ('D'). See docs/WORKERS.md.
 * SPDX-License-Identifier: MIT */
#ifndef RC_WCHAN_H
#define RC_WCHAN_H

#include <stddef.h>
#include <uv.h>

#include "common/err.h"

/* A message larger than this is a broken peer: the channel closes. */
#define RC_WCHAN_MAX_MSG (4u * 1024 * 1024)

typedef struct rc_wchan rc_wchan_t;

/* One message arrived; data is borrowed for the call. The callback may
 * call rc_wchan_destroy. */
typedef void (*rc_wchan_msg_cb)(void *ctx, char type, const char *data,
                                size_t len);
/* The peer closed the channel, or broke its framing; called once, after
 * which no message callback comes. */
typedef void (*rc_wchan_eof_cb)(void *ctx);

/* An owned channel (rc_wchan_destroy) whose pipe is initialized but not
 * yet open: hand rc_wchan_stream() to uv_spawn (UV_CREATE_PIPE), or call
 * rc_wchan_open() on an inherited descriptor, then rc_wchan_start(). */
rc_wchan_t *rc_wchan_create(uv_loop_t *loop);
/* Borrowed; valid until rc_wchan_destroy. */
uv_stream_t *rc_wchan_stream(rc_wchan_t *ch);
RC_MUST_CHECK rc_err_t rc_wchan_open(rc_wchan_t *ch, int fd);
/* Start reading. The channel never keeps the loop alive by itself. */
RC_MUST_CHECK rc_err_t rc_wchan_start(rc_wchan_t *ch, rc_wchan_msg_cb on_msg,
                                      rc_wchan_eof_cb on_eof, void *ctx);
/* Queue one message (data is copied). RC_ECLOSED once the channel ended. */
RC_MUST_CHECK rc_err_t rc_wchan_send(rc_wchan_t *ch, char type,
                                     const void *data, size_t len);
/* No more callbacks; the memory is freed once the loop closed the pipe.
 * NULL is a no-op. */
void rc_wchan_destroy(rc_wchan_t *ch);

#endif /* RC_WCHAN_H */

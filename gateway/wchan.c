/* The supervisor <-> worker channel (wchan.h): framed messages over a
 * libuv pipe. Reads gather into a buffer that grows to the largest message
 * seen (bounded by RC_WCHAN_MAX_MSG); each write owns a copy of its frame,
 * freed in its write callback, which never touches the channel (a write
 * cancelled by the close finds it gone).
 * SPDX-License-Identifier: MIT */
#include "gateway/wchan.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

#define HDR 5 /* type byte + 32-bit big-endian length */

struct rc_wchan {
    uv_pipe_t pipe;
    rc_wchan_msg_cb on_msg;
    rc_wchan_eof_cb on_eof;
    void *ctx;
    char *rbuf; /* rlen bytes gathered of rcap */
    size_t rlen, rcap;
    bool open, reading, ended, closing;
};

typedef struct wreq {
    uv_write_t req;
    char data[]; /* the frame */
} wreq_t;

rc_wchan_t *rc_wchan_create(uv_loop_t *loop)
{
    rc_wchan_t *ch = rc_xcalloc(1, sizeof(*ch));

    uv_pipe_init(loop, &ch->pipe, 0);
    ch->pipe.data = ch;
    return ch;
}

uv_stream_t *rc_wchan_stream(rc_wchan_t *ch)
{
    return (uv_stream_t *)&ch->pipe;
}

rc_err_t rc_wchan_open(rc_wchan_t *ch, int fd)
{
    if (uv_pipe_open(&ch->pipe, fd) != 0)
        return RC_EIO;
    return RC_OK;
}

static void end(rc_wchan_t *ch)
{
    if (ch->ended)
        return;
    ch->ended = true;
    if (ch->reading)
        uv_read_stop((uv_stream_t *)&ch->pipe);
    ch->reading = false;
    if (ch->on_eof && !ch->closing)
        ch->on_eof(ch->ctx);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    rc_wchan_t *ch = h->data;
    (void)hint;

    if (ch->rcap - ch->rlen < 64 * 1024) {
        ch->rcap = ch->rcap ? ch->rcap * 2 : 128 * 1024;
        ch->rbuf = rc_xrealloc(ch->rbuf, ch->rcap);
    }
    buf->base = ch->rbuf + ch->rlen;
    buf->len = ch->rcap - ch->rlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    rc_wchan_t *ch = s->data;
    size_t off = 0;
    (void)buf;

    if (nread < 0) {
        end(ch);
        return;
    }
    ch->rlen += (size_t)nread;
    while (!ch->closing && !ch->ended && ch->rlen - off >= HDR) {
        const unsigned char *h = (const unsigned char *)ch->rbuf + off;
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
                       (uint32_t)h[3] << 8 | h[4];

        if (len > RC_WCHAN_MAX_MSG) {
            rc_log(RC_LOG_ERROR, "wchan_broken", "len=%u", len);
            end(ch);
            return;
        }
        if (ch->rlen - off < HDR + (size_t)len)
            break;
        ch->on_msg(ch->ctx, (char)h[0], ch->rbuf + off + HDR, len);
        off += HDR + (size_t)len;
    }
    /* The callback may have destroyed the channel: its memory lives until
     * the close callback, so these touches are safe. */
    if (off) {
        memmove(ch->rbuf, ch->rbuf + off, ch->rlen - off);
        ch->rlen -= off;
    }
}

rc_err_t rc_wchan_start(rc_wchan_t *ch, rc_wchan_msg_cb on_msg,
                        rc_wchan_eof_cb on_eof, void *ctx)
{
    ch->on_msg = on_msg;
    ch->on_eof = on_eof;
    ch->ctx = ctx;
    if (uv_read_start((uv_stream_t *)&ch->pipe, on_alloc, on_read) != 0)
        return RC_EIO;
    ch->open = ch->reading = true;
    uv_unref((uv_handle_t *)&ch->pipe);
    return RC_OK;
}

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* a broken pipe shows up as EOF on the read side */
    free(w->data);
}

rc_err_t rc_wchan_send(rc_wchan_t *ch, char type, const void *data, size_t len)
{
    wreq_t *w;
    uv_buf_t b;

    if (ch->closing || ch->ended || !ch->open)
        return RC_ECLOSED;
    if (len > RC_WCHAN_MAX_MSG)
        return RC_ELIMIT;
    w = rc_xmalloc(sizeof(*w) + HDR + len);
    w->data[0] = type;
    w->data[1] = (char)(len >> 24);
    w->data[2] = (char)(len >> 16);
    w->data[3] = (char)(len >> 8);
    w->data[4] = (char)len;
    if (len)
        memcpy(w->data + HDR, data, len);
    w->req.data = w;
    b = uv_buf_init(w->data, (unsigned)(HDR + len));
    if (uv_write(&w->req, (uv_stream_t *)&ch->pipe, &b, 1, on_written) != 0) {
        free(w);
        return RC_EIO;
    }
    return RC_OK;
}

static void on_closed(uv_handle_t *h)
{
    rc_wchan_t *ch = h->data;

    free(ch->rbuf);
    free(ch);
}

void rc_wchan_destroy(rc_wchan_t *ch)
{
    if (!ch || ch->closing)
        return;
    ch->closing = true;
    uv_close((uv_handle_t *)&ch->pipe, on_closed);
}

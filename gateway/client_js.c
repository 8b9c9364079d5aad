/* GET /roomcast.js on the client port: the JavaScript client
 * (clients/js/roomcast.js, embedded at build time), as Socket.IO serves
 * its own, so a page can import the client of the node it talks to.
 *
 * One response per request, written in bounded pieces from WRITEABLE
 * (lws takes one lws_write per callback). The write position is kept in
 * the wsi's opaque pointer as a tagged integer (low bit set): no
 * allocation, and ws.c tells it from an rc_conn_t, which is never odd.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "gateway/node_internal.h"

#define PIECE 8192 /* body bytes per WRITEABLE */

extern const char rc__client_js[];

static size_t js_len(void)
{
    return strlen(rc__client_js);
}

/* A strong ETag: FNV-1a 64 of the module, computed per request (18 KB
 * hashed only when a page loads the module). */
static void js_etag(char *buf, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (const unsigned char *p = (const unsigned char *)rc__client_js; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    snprintf(buf, len, "\"%016llx\"", (unsigned long long)h);
}

bool rc__client_js_is_state(const void *opaque)
{
    return ((uintptr_t)opaque & 1) != 0;
}

static void set_pos(struct lws *wsi, size_t pos)
{
    lws_set_opaque_user_data(wsi, (void *)(((uintptr_t)pos << 1) | 1));
}

static size_t get_pos(struct lws *wsi)
{
    return (size_t)((uintptr_t)lws_get_opaque_user_data(wsi) >> 1);
}

int rc__client_js_http(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start,
                  *end = buf + sizeof(buf) - 1;
    char etag[24], inm[64];
    bool fresh;
    size_t len = js_len();

    js_etag(etag, sizeof(etag));
    fresh =
        lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0 &&
        strcmp(inm, etag) == 0;
    if (lws_add_http_common_headers(
            wsi, fresh ? HTTP_STATUS_NOT_MODIFIED : HTTP_STATUS_OK,
            "text/javascript; charset=utf-8", fresh ? 0 : (lws_filepos_t)len,
            &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"access-control-allow-origin:",
            (const unsigned char *)"*", 1, &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"cache-control:",
            (const unsigned char *)"public, max-age=3600", 20, &p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"etag:", (const unsigned char *)etag,
            (int)strlen(etag), &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    if (fresh)
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    set_pos(wsi, 0);
    lws_callback_on_writable(wsi);
    return 0;
}

int rc__client_js_writeable(struct lws *wsi)
{
    unsigned char buf[LWS_PRE + PIECE];
    size_t len = js_len(), pos = get_pos(wsi), n = len - pos;
    enum lws_write_protocol mode = LWS_WRITE_HTTP_FINAL;

    if (n > PIECE) {
        n = PIECE;
        mode = LWS_WRITE_HTTP;
    }
    memcpy(buf + LWS_PRE, rc__client_js + pos, n);
    if (lws_write(wsi, buf + LWS_PRE, n, mode) != (int)n)
        return -1;
    pos += n;
    if (pos < len) {
        set_pos(wsi, pos);
        lws_callback_on_writable(wsi);
        return 0;
    }
    lws_set_opaque_user_data(wsi, NULL);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

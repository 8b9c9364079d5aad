/* Request parsing and reply framing for the client protocol.
 * SPDX-License-Identifier: MIT */
#include "gateway/proto.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "gateway/hub.h"

static const struct {
    const char *name;
    rc_op_t op;
} ops[] = {
    {"join", RC_OP_JOIN}, {"leave", RC_OP_LEAVE}, {"publish", RC_OP_PUBLISH},
    {"ping", RC_OP_PING}, {"auth", RC_OP_AUTH},   {"refresh", RC_OP_REFRESH},
};

#define BAD(c, m)                                                              \
    do {                                                                       \
        *code = (c);                                                           \
        *message = (m);                                                        \
        return RC_EINVAL;                                                      \
    } while (0)

rc_err_t rc_proto_parse(const char *buf, size_t len, rc_req_t *req,
                        const char **code, const char **message)
{
    json_t *v;
    const char *op;
    size_t i;

    memset(req, 0, sizeof(*req));
    /* JSON_DECODE_ANY off: a frame must be an object; jansson bounds the
     * nesting depth itself. */
    req->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!req->root)
        BAD("bad_request", "frame is not valid JSON");
    if (!json_is_object(req->root))
        BAD("bad_request", "frame is not a JSON object");

    v = json_object_get(req->root, "id");
    if (v) {
        if (!json_is_integer(v))
            BAD("bad_request", "id must be an integer");
        req->has_id = true;
        req->id = json_integer_value(v);
    }
    v = json_object_get(req->root, "op");
    if (!v || !json_is_string(v))
        BAD("bad_request", "op must be a string");
    op = json_string_value(v);
    for (i = 0; i < RC_ARRAY_LEN(ops); i++)
        if (strcmp(op, ops[i].name) == 0)
            break;
    if (i == RC_ARRAY_LEN(ops))
        BAD("bad_request", "unknown op");
    req->op = ops[i].op;

    switch (req->op) {
    case RC_OP_JOIN:
    case RC_OP_LEAVE:
    case RC_OP_PUBLISH:
        v = json_object_get(req->root, "room");
        if (!v || !json_is_string(v))
            BAD("bad_request", "room must be a string");
        if (!rc_room_name_valid(json_string_value(v), json_string_length(v)))
            BAD("bad_room",
                "room must be 1 to 128 bytes of A-Z a-z 0-9 _ - . : / @");
        req->room = json_string_value(v);
        break;
    default:
        break;
    }
    switch (req->op) {
    case RC_OP_JOIN:
        v = json_object_get(req->root, "since");
        if (v && !json_is_null(v)) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                BAD("bad_request", "since must be a non-negative integer");
            req->has_since = true;
            req->since = (uint64_t)json_integer_value(v);
        }
        break;
    case RC_OP_PUBLISH:
        req->data = json_object_get(req->root, "data");
        if (!req->data)
            BAD("bad_request", "publish needs data");
        break;
    case RC_OP_AUTH:
    case RC_OP_REFRESH:
        v = json_object_get(req->root, "token");
        if (!v || !json_is_string(v))
            BAD("bad_request", "token must be a string");
        req->token = json_string_value(v);
        req->token_len = json_string_length(v);
        v = json_object_get(req->root, "resume");
        if (v && !json_is_null(v)) {
            if (!json_is_string(v))
                BAD("bad_request", "resume must be a string");
            req->resume = json_string_value(v);
        }
        break;
    default:
        break;
    }
    return RC_OK;
}

void rc_req_dispose(rc_req_t *req)
{
    json_decref(req->root);
    req->root = NULL;
}

/* Small replies are formatted straight into the frame buffer. */
static rc_msg_t *fmt_msg(size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static rc_msg_t *fmt_msg(size_t cap, const char *fmt, ...)
{
    unsigned char *p;
    rc_msg_t *m = rc_msg_alloc(cap, &p);
    va_list ap;
    int n;

    if (!m)
        return NULL;
    va_start(ap, fmt);
    n = vsnprintf((char *)p, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        rc_msg_unref(m);
        return NULL;
    }
    rc_msg_finish(m, RC_WS_OP_TEXT, (size_t)n);
    return m;
}

static int id_part(char *buf, size_t len, bool has_id, int64_t id)
{
    if (!has_id) {
        buf[0] = '\0';
        return 0;
    }
    return snprintf(buf, len, ",\"id\":%" PRId64, id);
}

rc_msg_t *rc_proto_error(bool has_id, int64_t id, const char *code,
                         const char *message)
{
    char idb[32];

    id_part(idb, sizeof(idb), has_id, id);
    return fmt_msg(96 + strlen(code) + strlen(message),
                   "{\"op\":\"error\"%s,\"code\":\"%s\",\"message\":\"%s\"}",
                   idb, code, message);
}

rc_msg_t *rc_proto_ok(bool has_id, int64_t id)
{
    char idb[32];

    id_part(idb, sizeof(idb), has_id, id);
    return fmt_msg(64, "{\"op\":\"ok\"%s}", idb);
}

rc_msg_t *rc_proto_ok_room(bool has_id, int64_t id, const char *room,
                           bool has_seq, uint64_t seq, int recovered)
{
    char idb[32], seqb[32] = "";

    id_part(idb, sizeof(idb), has_id, id);
    if (has_seq)
        snprintf(seqb, sizeof(seqb), ",\"seq\":%" PRIu64, seq);
    return fmt_msg(128 + strlen(room), "{\"op\":\"ok\"%s,\"room\":\"%s\"%s%s}",
                   idb, room, seqb,
                   recovered < 0 ? ""
                   : recovered   ? ",\"recovered\":true"
                                 : ",\"recovered\":false");
}

rc_msg_t *rc_proto_ok_exp(bool has_id, int64_t id, int64_t exp_s)
{
    char idb[32];

    id_part(idb, sizeof(idb), has_id, id);
    return fmt_msg(96, "{\"op\":\"ok\"%s,\"exp\":%" PRId64 "}", idb, exp_s);
}

rc_msg_t *rc_proto_json(const json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    rc_msg_t *m;

    if (!s)
        return NULL;
    m = rc_msg_create(RC_WS_OP_TEXT, s, strlen(s));
    free(s);
    return m;
}

/* libFuzzer target: client frames (the bytes of one WebSocket text frame)
 * through rc_proto_parse(), then through the reply builders the node would
 * use for them. Invariants beyond "no crash, no leak, no UB":
 * - the result is RC_OK or RC_EINVAL, and a refusal carries the code
 *   "bad_request" or "bad_room" and a message;
 * - a parsed request's fields are within their bounds: op is known; join,
 *   leave and publish carry a room that passes rc_room_name_valid(); publish
 *   carries data; auth and refresh carry a NUL-free token; since fits an
 *   int64; a borrowed string is not cut by an embedded NUL;
 * - every reply frame built from it (error, ok, ok with room) is one
 *   well-formed text frame whose payload is a JSON object that names the
 *   request's id.
 * Seed corpus: tests/fuzz/corpus/frame/.
 * SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/msg.h"
#include "gateway/hub.h"
#include "gateway/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_frame: invariant failed: %s (line %d)\n",    \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The payload of a server frame: FIN + text opcode, unmasked, the length
 * in 7, 16 or 64 bits, matching the frame's size. */
static json_t *frame_json(const rc_msg_t *m)
{
    const unsigned char *b = rc_msg_bytes(m);
    size_t hdr, plen;

    CHECK(m->len >= 2);
    CHECK(b[0] == (0x80 | RC_WS_OP_TEXT));
    CHECK((b[1] & 0x80) == 0);
    if ((b[1] & 0x7f) < 126) {
        hdr = 2;
        plen = b[1] & 0x7f;
    } else if ((b[1] & 0x7f) == 126) {
        hdr = 4;
        plen = (size_t)b[2] << 8 | b[3];
    } else {
        hdr = 10;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | b[2 + i];
    }
    CHECK(hdr + plen == m->len);
    return json_loadb((const char *)b + hdr, plen, JSON_REJECT_DUPLICATES,
                      NULL);
}

static void check_reply(rc_msg_t *m, const rc_req_t *req, const char *op)
{
    json_t *o, *v;

    CHECK(m != NULL);
    o = frame_json(m);
    CHECK(o != NULL && json_is_object(o));
    v = json_object_get(o, "op");
    CHECK(v && json_is_string(v) && strcmp(json_string_value(v), op) == 0);
    v = json_object_get(o, "id");
    if (req->has_id)
        CHECK(v && json_is_integer(v) && json_integer_value(v) == req->id);
    else
        CHECK(v == NULL);
    if (req->room) {
        v = json_object_get(o, "room");
        CHECK(!v || (json_is_string(v) &&
                     strcmp(json_string_value(v), req->room) == 0));
    }
    json_decref(o);
    rc_msg_unref(m);
}

static void check_parsed(const rc_req_t *req)
{
    switch (req->op) {
    case RC_OP_JOIN:
    case RC_OP_LEAVE:
    case RC_OP_PUBLISH:
        CHECK(req->room != NULL);
        CHECK(rc_room_name_valid(req->room, strlen(req->room)));
        CHECK(strlen(req->room) >= 1 && strlen(req->room) <= 128);
        break;
    case RC_OP_AUTH:
    case RC_OP_REFRESH:
        CHECK(req->token != NULL);
        CHECK(strlen(req->token) == req->token_len);
        CHECK(req->room == NULL);
        break;
    case RC_OP_PING:
        CHECK(req->room == NULL && req->token == NULL);
        break;
    default:
        CHECK(!"unknown op");
    }
    if (req->op == RC_OP_PUBLISH)
        CHECK(req->data != NULL);
    else
        CHECK(req->data == NULL);
    if (req->has_since) {
        CHECK(req->op == RC_OP_JOIN);
        CHECK(req->since <= (uint64_t)INT64_MAX);
    }
    if (req->resume)
        CHECK(req->op == RC_OP_AUTH || req->op == RC_OP_REFRESH);
    CHECK(req->root != NULL && json_is_object(req->root));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_req_t req;
    const char *code = NULL, *message = NULL;
    rc_err_t rc;

    rc = rc_proto_parse((const char *)data, size, &req, &code, &message);
    if (rc == RC_OK) {
        check_parsed(&req);
        check_reply(rc_proto_ok(req.has_id, req.id), &req, "ok");
        if (req.room)
            check_reply(rc_proto_ok_room(req.has_id, req.id, req.room,
                                         req.has_since, req.since,
                                         req.has_since ? 1 : -1),
                        &req, "ok");
        check_reply(rc_proto_ok_exp(req.has_id, req.id, req.id), &req, "ok");
    } else {
        CHECK(rc == RC_EINVAL);
        CHECK(code && message && *message);
        CHECK(strcmp(code, "bad_request") == 0 ||
              strcmp(code, "bad_room") == 0);
        req.room = NULL;
        check_reply(rc_proto_error(req.has_id, req.id, code, message), &req,
                    "error");
    }
    rc_req_dispose(&req);
    CHECK(req.root == NULL);
    return 0;
}

/* The client frames of PROTOCOL.md section 2: parse a request, build a
 * reply. Pure functions, no sockets: unit-tested on their own.
 * SPDX-License-Identifier: MIT */
#ifndef RC_PROTO_H
#define RC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "common/msg.h"

typedef enum rc_op {
    RC_OP_AUTH = 1,
    RC_OP_JOIN,
    RC_OP_LEAVE,
    RC_OP_PUBLISH,
    RC_OP_PING,
    RC_OP_REFRESH,
} rc_op_t;

typedef struct rc_req {
    rc_op_t op;
    bool has_id;
    bool has_since;
    int64_t id;
    uint64_t since;
    const char *room;  /* borrowed from root */
    json_t *data;      /* borrowed from root */
    const char *token; /* borrowed from root */
    size_t token_len;
    const char *resume; /* borrowed from root; NULL when absent */
    json_t *root;       /* owned: rc_req_dispose() */
} rc_req_t;

/* Parse one text frame. On RC_OK, req owns the parsed JSON. On RC_EINVAL,
 * *code is "bad_request" or "bad_room" and *message says what (static
 * strings); req->has_id/id are still set when the frame had a usable id so
 * the error can carry it; req needs rc_req_dispose() either way. */
RC_MUST_CHECK rc_err_t rc_proto_parse(const char *buf, size_t len,
                                      rc_req_t *req, const char **code,
                                      const char **message);
void rc_req_dispose(rc_req_t *req);

/* Replies; each returns an owned frame or NULL on allocation failure.
 * room must be a valid room name; code/message must be JSON-safe static
 * text (they are not escaped). */
rc_msg_t *rc_proto_error(bool has_id, int64_t id, const char *code,
                         const char *message);
rc_msg_t *rc_proto_ok(bool has_id, int64_t id);
/* {"op":"ok","id":N,"room":R[,"seq":S][,"recovered":B]}; recovered < 0
 * leaves it out, has_seq false leaves seq out. */
rc_msg_t *rc_proto_ok_room(bool has_id, int64_t id, const char *room,
                           bool has_seq, uint64_t seq, int recovered);
rc_msg_t *rc_proto_ok_exp(bool has_id, int64_t id, int64_t exp_s);
/* Any JSON object, encoded compactly (welcome, rare frames). Borrows obj. */
rc_msg_t *rc_proto_json(const json_t *obj);

#endif /* RC_PROTO_H */

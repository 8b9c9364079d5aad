/* Unit tests of gateway/proto.c: every op parsed with its fields, every
 * refusal with its code and message (and the id kept for the error when it
 * was usable), and the exact bytes of every reply builder.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "gateway/proto.h"

#define MSG_BAD_JSON "frame is not valid JSON"
#define MSG_NOT_OBJECT "frame is not a JSON object"
#define MSG_ID "id must be an integer"
#define MSG_OP "op must be a string"
#define MSG_UNKNOWN_OP "unknown op"
#define MSG_ROOM "room must be a string"
#define MSG_BAD_ROOM "room must be 1 to 128 bytes of A-Z a-z 0-9 _ - . : / @"
#define MSG_SINCE "since must be a non-negative integer"
#define MSG_DATA "publish needs data"
#define MSG_TOKEN "token must be a string"
#define MSG_RESUME "resume must be a string"

/* ---- helpers ---- */

static void parse_ok(const char *text, rc_req_t *req)
{
    const char *code = NULL, *message = NULL;
    rc_err_t err = rc_proto_parse(text, strlen(text), req, &code, &message);

    if (err != RC_OK)
        fail_msg("%s: %s %s", text, code ? code : "-", message ? message : "-");
    assert_non_null(req->root);
}

/* Parses text, expects RC_EINVAL with code/message, and the id state. */
static void check_bad_len(const char *text, size_t len, const char *want_code,
                          const char *want_message, bool want_has_id,
                          int64_t want_id)
{
    rc_req_t req;
    const char *code = NULL, *message = NULL;
    rc_err_t err = rc_proto_parse(text, len, &req, &code, &message);

    if (err != RC_EINVAL)
        fail_msg("%.*s: expected RC_EINVAL, got %d", (int)len, text, err);
    assert_non_null(code);
    assert_non_null(message);
    if (strcmp(code, want_code) != 0 ||
        (want_message && strcmp(message, want_message) != 0))
        fail_msg("%.*s: got %s \"%s\", expected %s \"%s\"", (int)len, text,
                 code, message, want_code,
                 want_message ? want_message : "(any)");
    assert_int_equal(req.has_id, want_has_id);
    if (want_has_id)
        assert_int_equal(req.id, want_id);
    rc_req_dispose(&req);
    assert_null(req.root);
}

static void check_bad(const char *text, const char *want_code,
                      const char *want_message)
{
    check_bad_len(text, strlen(text), want_code, want_message, false, 0);
}

static void check_bad_id(const char *text, const char *want_code,
                         const char *want_message, int64_t id)
{
    check_bad_len(text, strlen(text), want_code, want_message, true, id);
}

/* The frame is one unmasked final text frame whose payload is want. */
static void assert_frame(rc_msg_t *m, const char *want)
{
    size_t plen = strlen(want);
    const unsigned char *b;
    size_t h;

    assert_non_null(m);
    b = rc_msg_bytes(m);
    assert_int_equal(b[0], 0x81);
    if (plen <= 125) {
        assert_int_equal(b[1], plen);
        h = 2;
    } else {
        assert_true(plen <= 0xffff);
        assert_int_equal(b[1], 126);
        assert_int_equal(((size_t)b[2] << 8) | b[3], plen);
        h = 4;
    }
    assert_int_equal(m->len, h + plen);
    if (memcmp(b + h, want, plen) != 0)
        fail_msg("payload \"%.*s\", expected \"%s\"", (int)plen,
                 (const char *)b + h, want);
    assert_int_equal(m->refs, 1);
    rc_msg_unref(m);
}

/* ---- every op, valid ---- */

static void test_parse_auth(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"auth\",\"token\":\"abc.def.ghi\"}", &req);
    assert_int_equal(req.op, RC_OP_AUTH);
    assert_false(req.has_id);
    assert_string_equal(req.token, "abc.def.ghi");
    assert_int_equal(req.token_len, 11);
    assert_null(req.resume);
    assert_null(req.room);
    assert_null(req.data);
    assert_false(req.has_since);
    rc_req_dispose(&req);
}

static void test_parse_auth_resume(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"auth\",\"id\":7,\"token\":\"t\",\"resume\":\"R1\"}",
             &req);
    assert_int_equal(req.op, RC_OP_AUTH);
    assert_true(req.has_id);
    assert_int_equal(req.id, 7);
    assert_string_equal(req.token, "t");
    assert_int_equal(req.token_len, 1);
    assert_string_equal(req.resume, "R1");
    rc_req_dispose(&req);

    /* resume null is the same as absent. */
    parse_ok("{\"op\":\"auth\",\"token\":\"t\",\"resume\":null}", &req);
    assert_null(req.resume);
    rc_req_dispose(&req);
}

static void test_nul_escape_refused(void **state)
{
    (void)state;
    /* The decoder runs without JSON_ALLOW_NUL: a \u0000 anywhere (room,
     * token, op) refuses the frame before any field is looked at, so no
     * field can carry a NUL past the parser. */
    check_bad("{\"op\":\"auth\",\"token\":\"a\\u0000b\"}", "bad_request",
              MSG_BAD_JSON);
    check_bad("{\"op\":\"join\",\"id\":1,\"room\":\"a\\u0000b\"}",
              "bad_request", MSG_BAD_JSON);
    check_bad("{\"op\":\"ping\\u0000x\"}", "bad_request", MSG_BAD_JSON);
}

static void test_parse_refresh(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"refresh\",\"id\":6,\"token\":\"new.jwt\"}", &req);
    assert_int_equal(req.op, RC_OP_REFRESH);
    assert_true(req.has_id);
    assert_int_equal(req.id, 6);
    assert_string_equal(req.token, "new.jwt");
    assert_int_equal(req.token_len, 7);
    rc_req_dispose(&req);
}

static void test_parse_join(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"join\",\"id\":1,\"room\":\"chat:1\"}", &req);
    assert_int_equal(req.op, RC_OP_JOIN);
    assert_true(req.has_id);
    assert_int_equal(req.id, 1);
    assert_string_equal(req.room, "chat:1");
    assert_false(req.has_since);
    assert_null(req.token);
    rc_req_dispose(&req);
}

static void test_parse_join_since(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"join\",\"id\":2,\"room\":\"chat:1\",\"since\":38}",
             &req);
    assert_true(req.has_since);
    assert_int_equal(req.since, 38);
    rc_req_dispose(&req);

    parse_ok("{\"op\":\"join\",\"room\":\"r\",\"since\":0}", &req);
    assert_true(req.has_since);
    assert_int_equal(req.since, 0);
    rc_req_dispose(&req);

    parse_ok("{\"op\":\"join\",\"room\":\"r\",\"since\":9223372036854775807}",
             &req);
    assert_true(req.has_since);
    assert_int_equal(req.since, INT64_MAX);
    rc_req_dispose(&req);

    /* since null is the same as absent. */
    parse_ok("{\"op\":\"join\",\"room\":\"r\",\"since\":null}", &req);
    assert_false(req.has_since);
    rc_req_dispose(&req);
}

static void test_parse_leave(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"leave\",\"id\":3,\"room\":\"a-b_c.d:e/f@g\"}", &req);
    assert_int_equal(req.op, RC_OP_LEAVE);
    assert_int_equal(req.id, 3);
    assert_string_equal(req.room, "a-b_c.d:e/f@g");
    rc_req_dispose(&req);
}

static void test_parse_publish(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"publish\",\"id\":4,\"room\":\"chat:1\","
             "\"data\":{\"text\":\"hi\",\"n\":[1,2]}}",
             &req);
    assert_int_equal(req.op, RC_OP_PUBLISH);
    assert_int_equal(req.id, 4);
    assert_string_equal(req.room, "chat:1");
    assert_non_null(req.data);
    assert_true(json_is_object(req.data));
    assert_string_equal(json_string_value(json_object_get(req.data, "text")),
                        "hi");
    rc_req_dispose(&req);
}

static void test_parse_publish_scalar_data(void **state)
{
    rc_req_t req;

    (void)state;
    /* data may be any JSON value, null included: it is present. */
    parse_ok("{\"op\":\"publish\",\"room\":\"r\",\"data\":\"s\"}", &req);
    assert_true(json_is_string(req.data));
    rc_req_dispose(&req);
    parse_ok("{\"op\":\"publish\",\"room\":\"r\",\"data\":null}", &req);
    assert_true(json_is_null(req.data));
    rc_req_dispose(&req);
}

static void test_parse_ping(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"ping\",\"id\":5}", &req);
    assert_int_equal(req.op, RC_OP_PING);
    assert_true(req.has_id);
    assert_int_equal(req.id, 5);
    rc_req_dispose(&req);

    parse_ok("{\"op\":\"ping\"}", &req);
    assert_int_equal(req.op, RC_OP_PING);
    assert_false(req.has_id);
    rc_req_dispose(&req);
}

static void test_parse_id_range(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"op\":\"ping\",\"id\":0}", &req);
    assert_true(req.has_id);
    assert_int_equal(req.id, 0);
    rc_req_dispose(&req);
    parse_ok("{\"op\":\"ping\",\"id\":-3}", &req);
    assert_int_equal(req.id, -3);
    rc_req_dispose(&req);
    parse_ok("{\"op\":\"ping\",\"id\":9223372036854775807}", &req);
    assert_int_equal(req.id, INT64_MAX);
    rc_req_dispose(&req);
}

static void test_parse_extra_fields_ignored(void **state)
{
    rc_req_t req;

    (void)state;
    parse_ok("{\"x\":[1,{\"y\":2}],\"op\":\"leave\",\"room\":\"r\",\"z\":1}",
             &req);
    assert_int_equal(req.op, RC_OP_LEAVE);
    rc_req_dispose(&req);
}

static void test_parse_len_not_nul(void **state)
{
    /* The frame is buf[0..len): bytes after it are not read. */
    const char text[] = "{\"op\":\"ping\",\"id\":1}GARBAGE";
    rc_req_t req;
    const char *code, *message;

    (void)state;
    assert_int_equal(rc_proto_parse(text, 20, &req, &code, &message), RC_OK);
    assert_int_equal(req.op, RC_OP_PING);
    assert_int_equal(req.id, 1);
    rc_req_dispose(&req);
}

/* ---- refusals ---- */

static void test_bad_json(void **state)
{
    (void)state;
    check_bad("{", "bad_request", MSG_BAD_JSON);
    check_bad("", "bad_request", MSG_BAD_JSON);
    check_bad("{\"op\":\"ping\"", "bad_request", MSG_BAD_JSON);
    check_bad("{op:\"ping\"}", "bad_request", MSG_BAD_JSON);
    check_bad("{\"op\":\"ping\"} {}", "bad_request", MSG_BAD_JSON);
    check_bad("{\"op\":\"ping\",}", "bad_request", MSG_BAD_JSON);
    check_bad("\xff\xfe", "bad_request", MSG_BAD_JSON);
    /* Duplicate keys are refused, not resolved. */
    check_bad("{\"op\":\"ping\",\"op\":\"join\"}", "bad_request", MSG_BAD_JSON);
    /* An embedded NUL inside the frame. */
    check_bad_len("{\"op\":\"ping\"}\0", 14, "bad_request", MSG_BAD_JSON, false,
                  0);
}

static void test_not_object(void **state)
{
    (void)state;
    check_bad("[]", "bad_request", MSG_NOT_OBJECT);
    check_bad("[{\"op\":\"ping\"}]", "bad_request", MSG_NOT_OBJECT);
    /* Scalars at the top level are refused too (by the decoder). */
    check_bad("42", "bad_request", NULL);
    check_bad("\"ping\"", "bad_request", NULL);
    check_bad("null", "bad_request", NULL);
    check_bad("true", "bad_request", NULL);
}

static void test_missing_op(void **state)
{
    (void)state;
    check_bad("{}", "bad_request", MSG_OP);
    check_bad("{\"room\":\"r\"}", "bad_request", MSG_OP);
    check_bad_id("{\"id\":9}", "bad_request", MSG_OP, 9);
}

static void test_op_not_string(void **state)
{
    (void)state;
    check_bad("{\"op\":1}", "bad_request", MSG_OP);
    check_bad("{\"op\":null}", "bad_request", MSG_OP);
    check_bad("{\"op\":[\"ping\"]}", "bad_request", MSG_OP);
    check_bad("{\"op\":{}}", "bad_request", MSG_OP);
    check_bad_id("{\"op\":true,\"id\":4}", "bad_request", MSG_OP, 4);
}

static void test_unknown_op(void **state)
{
    (void)state;
    check_bad("{\"op\":\"subscribe\"}", "bad_request", MSG_UNKNOWN_OP);
    check_bad("{\"op\":\"\"}", "bad_request", MSG_UNKNOWN_OP);
    check_bad("{\"op\":\"PING\"}", "bad_request", MSG_UNKNOWN_OP);
    check_bad("{\"op\":\"ping \"}", "bad_request", MSG_UNKNOWN_OP);
    check_bad("{\"op\":\"msg\"}", "bad_request", MSG_UNKNOWN_OP);
    check_bad_id("{\"id\":12,\"op\":\"nope\"}", "bad_request", MSG_UNKNOWN_OP,
                 12);
}

static void test_id_not_integer(void **state)
{
    (void)state;
    check_bad("{\"op\":\"ping\",\"id\":\"1\"}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":1.5}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":1.0}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":1e3}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":true}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":[1]}", "bad_request", MSG_ID);
    check_bad("{\"op\":\"ping\",\"id\":{}}", "bad_request", MSG_ID);
}

static void test_room_missing(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"join\",\"id\":1}", "bad_request", MSG_ROOM, 1);
    check_bad_id("{\"op\":\"leave\",\"id\":2}", "bad_request", MSG_ROOM, 2);
    check_bad_id("{\"op\":\"publish\",\"id\":3,\"data\":1}", "bad_request",
                 MSG_ROOM, 3);
}

static void test_room_not_string(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"join\",\"id\":1,\"room\":5}", "bad_request",
                 MSG_ROOM, 1);
    check_bad("{\"op\":\"join\",\"room\":null}", "bad_request", MSG_ROOM);
    check_bad("{\"op\":\"leave\",\"room\":[\"r\"]}", "bad_request", MSG_ROOM);
    check_bad("{\"op\":\"publish\",\"room\":{},\"data\":1}", "bad_request",
              MSG_ROOM);
}

static void test_bad_room(void **state)
{
    static const char *const ops[] = {"join", "leave", "publish"};
    static const char *const rooms[] = {
        "",           /* empty */
        "a b",        /* space */
        "caf\\u00e9", /* non-ASCII */
        "chat*",      /* a pattern is not a room */
        "a\\\"b",     /* quote */
    };
    char buf[512];

    (void)state;
    for (size_t o = 0; o < RC_ARRAY_LEN(ops); o++)
        for (size_t r = 0; r < RC_ARRAY_LEN(rooms); r++) {
            snprintf(buf, sizeof(buf),
                     "{\"op\":\"%s\",\"id\":%zu,\"room\":\"%s\",\"data\":1}",
                     ops[o], o * 10 + r, rooms[r]);
            check_bad_id(buf, "bad_room", MSG_BAD_ROOM, (int64_t)(o * 10 + r));
        }
}

static void test_room_128_vs_129(void **state)
{
    char room[130], buf[256];
    rc_req_t req;

    (void)state;
    memset(room, 'r', 128);
    room[128] = '\0';
    snprintf(buf, sizeof(buf), "{\"op\":\"join\",\"room\":\"%s\"}", room);
    parse_ok(buf, &req);
    assert_int_equal(strlen(req.room), 128);
    rc_req_dispose(&req);

    room[128] = 'r';
    room[129] = '\0';
    snprintf(buf, sizeof(buf), "{\"op\":\"join\",\"id\":8,\"room\":\"%s\"}",
             room);
    check_bad_id(buf, "bad_room", MSG_BAD_ROOM, 8);
}

static void test_since_bad(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"join\",\"id\":1,\"room\":\"r\",\"since\":-1}",
                 "bad_request", MSG_SINCE, 1);
    check_bad("{\"op\":\"join\",\"room\":\"r\",\"since\":\"5\"}", "bad_request",
              MSG_SINCE);
    check_bad("{\"op\":\"join\",\"room\":\"r\",\"since\":1.5}", "bad_request",
              MSG_SINCE);
    check_bad("{\"op\":\"join\",\"room\":\"r\",\"since\":true}", "bad_request",
              MSG_SINCE);
    check_bad("{\"op\":\"join\",\"room\":\"r\",\"since\":[]}", "bad_request",
              MSG_SINCE);
    check_bad("{\"op\":\"join\",\"room\":\"r\",\"since\":-9223372036854775808}",
              "bad_request", MSG_SINCE);
}

static void test_publish_without_data(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"publish\",\"id\":4,\"room\":\"r\"}", "bad_request",
                 MSG_DATA, 4);
}

static void test_auth_token_bad(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"auth\",\"id\":1}", "bad_request", MSG_TOKEN, 1);
    check_bad("{\"op\":\"auth\",\"token\":5}", "bad_request", MSG_TOKEN);
    check_bad("{\"op\":\"auth\",\"token\":null}", "bad_request", MSG_TOKEN);
    check_bad("{\"op\":\"auth\",\"token\":{}}", "bad_request", MSG_TOKEN);
    check_bad("{\"op\":\"auth\",\"token\":\"t\",\"resume\":5}", "bad_request",
              MSG_RESUME);
}

static void test_refresh_token_bad(void **state)
{
    (void)state;
    check_bad_id("{\"op\":\"refresh\",\"id\":6}", "bad_request", MSG_TOKEN, 6);
    check_bad("{\"op\":\"refresh\",\"token\":[\"t\"]}", "bad_request",
              MSG_TOKEN);
}

static void test_bad_id_not_kept(void **state)
{
    (void)state;
    /* An unusable id is not echoed, whatever else is wrong. */
    check_bad("{\"op\":\"nope\",\"id\":\"7\"}", "bad_request", MSG_ID);
    check_bad("{\"id\":7", "bad_request", MSG_BAD_JSON);
}

/* ---- replies ---- */

static void test_reply_error(void **state)
{
    (void)state;
    assert_frame(rc_proto_error(false, 0, "bad_request", "unknown op"),
                 "{\"op\":\"error\",\"code\":\"bad_request\","
                 "\"message\":\"unknown op\"}");
    assert_frame(rc_proto_error(true, 5, "forbidden", "not allowed"),
                 "{\"op\":\"error\",\"id\":5,\"code\":\"forbidden\","
                 "\"message\":\"not allowed\"}");
    assert_frame(rc_proto_error(true, INT64_MIN, "internal", ""),
                 "{\"op\":\"error\",\"id\":-9223372036854775808,"
                 "\"code\":\"internal\",\"message\":\"\"}");
}

static void test_reply_error_long(void **state)
{
    (void)state;
    /* The bad_room message makes a frame past 125 bytes. */
    assert_frame(rc_proto_error(true, INT64_MAX, "bad_room", MSG_BAD_ROOM),
                 "{\"op\":\"error\",\"id\":9223372036854775807,"
                 "\"code\":\"bad_room\",\"message\":\"" MSG_BAD_ROOM "\"}");
}

static void test_reply_ok(void **state)
{
    (void)state;
    assert_frame(rc_proto_ok(false, 0), "{\"op\":\"ok\"}");
    assert_frame(rc_proto_ok(false, 99), "{\"op\":\"ok\"}");
    assert_frame(rc_proto_ok(true, 0), "{\"op\":\"ok\",\"id\":0}");
    assert_frame(rc_proto_ok(true, 12), "{\"op\":\"ok\",\"id\":12}");
    assert_frame(rc_proto_ok(true, -1), "{\"op\":\"ok\",\"id\":-1}");
    assert_frame(rc_proto_ok(true, INT64_MIN),
                 "{\"op\":\"ok\",\"id\":-9223372036854775808}");
}

static void test_reply_ok_room(void **state)
{
    (void)state;
    assert_frame(rc_proto_ok_room(true, 3, "chat:1", false, 0, -1),
                 "{\"op\":\"ok\",\"id\":3,\"room\":\"chat:1\"}");
    assert_frame(rc_proto_ok_room(false, 0, "chat:1", false, 0, -1),
                 "{\"op\":\"ok\",\"room\":\"chat:1\"}");
    assert_frame(rc_proto_ok_room(true, 1, "chat:1", true, 41, -1),
                 "{\"op\":\"ok\",\"id\":1,\"room\":\"chat:1\",\"seq\":41}");
    assert_frame(rc_proto_ok_room(true, 1, "r", true, 0, -1),
                 "{\"op\":\"ok\",\"id\":1,\"room\":\"r\",\"seq\":0}");
    assert_frame(rc_proto_ok_room(true, 2, "chat:1", true, 41, 1),
                 "{\"op\":\"ok\",\"id\":2,\"room\":\"chat:1\",\"seq\":41,"
                 "\"recovered\":true}");
    assert_frame(rc_proto_ok_room(true, 2, "chat:1", true, 41, 0),
                 "{\"op\":\"ok\",\"id\":2,\"room\":\"chat:1\",\"seq\":41,"
                 "\"recovered\":false}");
    assert_frame(rc_proto_ok_room(false, 0, "r", false, 0, 7),
                 "{\"op\":\"ok\",\"room\":\"r\",\"recovered\":true}");
}

static void test_reply_ok_room_widest(void **state)
{
    char room[129], want[512];

    (void)state;
    /* Every optional part at its widest, with a 128-byte room. */
    memset(room, 'w', 128);
    room[128] = '\0';
    snprintf(want, sizeof(want),
             "{\"op\":\"ok\",\"id\":-9223372036854775808,\"room\":\"%s\","
             "\"seq\":18446744073709551615,\"recovered\":false}",
             room);
    assert_frame(rc_proto_ok_room(true, INT64_MIN, room, true, UINT64_MAX, 0),
                 want);
}

static void test_reply_ok_exp(void **state)
{
    (void)state;
    assert_frame(rc_proto_ok_exp(true, 6, 1795470591),
                 "{\"op\":\"ok\",\"id\":6,\"exp\":1795470591}");
    assert_frame(rc_proto_ok_exp(false, 0, 0), "{\"op\":\"ok\",\"exp\":0}");
    assert_frame(rc_proto_ok_exp(true, INT64_MIN, INT64_MIN),
                 "{\"op\":\"ok\",\"id\":-9223372036854775808,"
                 "\"exp\":-9223372036854775808}");
}

static void test_reply_json(void **state)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:b}", "op", "welcome", "session",
                          "9f1c", "heartbeat_ms", 25000, "resumed", 0);

    (void)state;
    assert_non_null(o);
    /* Compact, in insertion order. */
    assert_frame(rc_proto_json(o), "{\"op\":\"welcome\",\"session\":\"9f1c\","
                                   "\"heartbeat_ms\":25000,\"resumed\":false}");
    /* Borrowed: still ours. */
    assert_int_equal(o->refcount, 1);
    json_decref(o);
}

static void test_reply_json_escapes(void **state)
{
    json_t *o = json_pack("{s:s}", "s", "a\"b\\c\n");

    (void)state;
    assert_non_null(o);
    assert_frame(rc_proto_json(o), "{\"s\":\"a\\\"b\\\\c\\n\"}");
    json_decref(o);
}

static void test_reply_json_large(void **state)
{
    size_t n = 70000;
    char *big = malloc(n + 1);
    json_t *o;
    rc_msg_t *m;
    const unsigned char *b;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    o = json_pack("{s:s}", "k", big);
    assert_non_null(o);
    m = rc_proto_json(o);
    assert_non_null(m);
    b = rc_msg_bytes(m);
    /* {"k":"..."} is n + 8 bytes: a 64-bit length header. */
    assert_int_equal(b[0], 0x81);
    assert_int_equal(b[1], 127);
    for (int i = 2; i < 7; i++)
        assert_int_equal(b[i], 0);
    assert_int_equal(((uint32_t)b[7] << 16) | ((uint32_t)b[8] << 8) | b[9],
                     n + 8);
    assert_int_equal(m->len, 10 + n + 8);
    assert_memory_equal(b + 10, "{\"k\":\"xxx", 9);
    assert_memory_equal(b + 10 + n + 8 - 5, "xxx\"}", 5);
    rc_msg_unref(m);
    json_decref(o);
    free(big);
}

static void test_reply_alloc_failure(void **state)
{
    json_t *o = json_object();

    (void)state;
    rc_mem_fail_after(1);
    assert_null(rc_proto_ok(true, 1));
    rc_mem_fail_after(1);
    assert_null(rc_proto_error(true, 1, "internal", "x"));
    rc_mem_fail_after(1);
    assert_null(rc_proto_ok_room(true, 1, "r", true, 1, 1));
    rc_mem_fail_after(1);
    assert_null(rc_proto_ok_exp(true, 1, 1));
    rc_mem_fail_after(1);
    assert_null(rc_proto_json(o));
    rc_mem_fail_after(0);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_auth),
        cmocka_unit_test(test_parse_auth_resume),
        cmocka_unit_test(test_nul_escape_refused),
        cmocka_unit_test(test_parse_refresh),
        cmocka_unit_test(test_parse_join),
        cmocka_unit_test(test_parse_join_since),
        cmocka_unit_test(test_parse_leave),
        cmocka_unit_test(test_parse_publish),
        cmocka_unit_test(test_parse_publish_scalar_data),
        cmocka_unit_test(test_parse_ping),
        cmocka_unit_test(test_parse_id_range),
        cmocka_unit_test(test_parse_extra_fields_ignored),
        cmocka_unit_test(test_parse_len_not_nul),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_missing_op),
        cmocka_unit_test(test_op_not_string),
        cmocka_unit_test(test_unknown_op),
        cmocka_unit_test(test_id_not_integer),
        cmocka_unit_test(test_room_missing),
        cmocka_unit_test(test_room_not_string),
        cmocka_unit_test(test_bad_room),
        cmocka_unit_test(test_room_128_vs_129),
        cmocka_unit_test(test_since_bad),
        cmocka_unit_test(test_publish_without_data),
        cmocka_unit_test(test_auth_token_bad),
        cmocka_unit_test(test_refresh_token_bad),
        cmocka_unit_test(test_bad_id_not_kept),
        cmocka_unit_test(test_reply_error),
        cmocka_unit_test(test_reply_error_long),
        cmocka_unit_test(test_reply_ok),
        cmocka_unit_test(test_reply_ok_room),
        cmocka_unit_test(test_reply_ok_room_widest),
        cmocka_unit_test(test_reply_ok_exp),
        cmocka_unit_test(test_reply_json),
        cmocka_unit_test(test_reply_json_escapes),
        cmocka_unit_test(test_reply_json_large),
        cmocka_unit_test(test_reply_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

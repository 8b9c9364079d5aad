/* Unit tests of gateway/hub.c: room name rules, join/leave and the room
 * lifecycle callbacks, fan-out with one shared ref per member, durable seq
 * de-duplication, wake and slow-consumer policy, the history/live seam, and
 * hash growth with many rooms and members. No sockets: connections are
 * plain rc_conn_t and the ops only count.
 * SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "gateway/hub.h"

#define NCONN 6
#define MAXMSG 32
#define BIG_BYTES (1u << 30)
#define BIG_MSGS (1u << 20)

typedef struct fixture {
    rc_hub_t *hub;
    rc_hub_ops_t ops;
    rc_conn_t c[NCONN];
    rc_msg_t *msgs[MAXMSG]; /* the test's own ref on each frame */
    size_t nmsgs;
    unsigned wake[NCONN], slow[NCONN];
    unsigned wake_total, slow_total;
    unsigned opened, closed, cancelled;
    uint32_t open_nmembers, close_nmembers;
    void *cancelled_pending;
    char last_open[RC_ROOM_MAX + 1];
    char last_close[RC_ROOM_MAX + 1];
} fixture_t;

static int conn_index(const fixture_t *fx, const rc_conn_t *c)
{
    for (int i = 0; i < NCONN; i++)
        if (c == &fx->c[i])
            return i;
    return -1;
}

static void on_wake(void *ctx, rc_conn_t *c)
{
    fixture_t *fx = ctx;
    int i = conn_index(fx, c);

    /* Called on the empty -> non-empty edge only. */
    assert_int_equal(rc_outq_count(&c->outq), 1);
    fx->wake_total++;
    if (i >= 0)
        fx->wake[i]++;
}

static void on_slow(void *ctx, rc_conn_t *c)
{
    fixture_t *fx = ctx;
    int i = conn_index(fx, c);

    /* The contract: the hub already emptied the queue and marked it. */
    assert_int_equal(rc_outq_count(&c->outq), 0);
    assert_int_equal(rc_outq_bytes(&c->outq), 0);
    assert_int_equal(c->state, RC_CONN_CLOSING);
    fx->slow_total++;
    if (i >= 0)
        fx->slow[i]++;
}

static void on_room_open(void *ctx, rc_room_t *room)
{
    fixture_t *fx = ctx;

    fx->opened++;
    fx->open_nmembers = room->nmembers;
    assert_int_equal(strlen(room->name), room->len);
    memcpy(fx->last_open, room->name, (size_t)room->len + 1);
}

static void on_room_close(void *ctx, rc_room_t *room)
{
    fixture_t *fx = ctx;

    fx->closed++;
    fx->close_nmembers = room->nmembers;
    memcpy(fx->last_close, room->name, (size_t)room->len + 1);
}

static void on_cancel(void *ctx, rc_member_t *m)
{
    fixture_t *fx = ctx;

    fx->cancelled++;
    fx->cancelled_pending = m->pending;
}

static void make_hub(fixture_t *fx, uint64_t bytes, uint32_t msgs)
{
    rc_hub_limits_t limits = {.queue_bytes = bytes, .queue_msgs = msgs};

    rc_hub_destroy(fx->hub);
    fx->hub = rc_hub_create(&fx->ops, fx, &limits);
    assert_non_null(fx->hub);
}

static int fx_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx->ops.wake = on_wake;
    fx->ops.slow = on_slow;
    fx->ops.room_open = on_room_open;
    fx->ops.room_close = on_room_close;
    fx->ops.cancel = on_cancel;
    for (int i = 0; i < NCONN; i++) {
        rc_conn_init(&fx->c[i]);
        fx->c[i].state = RC_CONN_OPEN;
    }
    make_hub(fx, BIG_BYTES, BIG_MSGS);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture_t *fx = *state;

    rc_mem_fail_after(0);
    for (int i = 0; i < NCONN; i++)
        rc_hub_leave_all(fx->hub, &fx->c[i]);
    assert_int_equal(rc_hub_member_count(fx->hub), 0);
    assert_int_equal(rc_hub_room_count(fx->hub), 0);
    assert_int_equal(fx->opened, fx->closed);
    for (int i = 0; i < NCONN; i++) {
        assert_int_equal(fx->c[i].nrooms, 0);
        rc_conn_dispose(&fx->c[i]);
    }
    rc_hub_destroy(fx->hub);
    /* No ref leaked into a queue, a held list or the hub. */
    for (size_t i = 0; i < fx->nmsgs; i++) {
        assert_int_equal(fx->msgs[i]->refs, 1);
        rc_msg_unref(fx->msgs[i]);
    }
    free(fx);
    return 0;
}

/* A frame owned by the fixture; seq 0 is ephemeral. */
static rc_msg_t *msg(fixture_t *fx, uint64_t seq)
{
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "{\"n\":%zu}", fx->nmsgs);
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, payload, (size_t)n);

    assert_non_null(m);
    assert_true(fx->nmsgs < MAXMSG);
    m->seq = seq;
    fx->msgs[fx->nmsgs++] = m;
    return m;
}

static rc_member_t *join(fixture_t *fx, int ci, const char *room)
{
    rc_member_t *m = NULL;

    assert_int_equal(rc_hub_join(fx->hub, &fx->c[ci], room, &m), RC_OK);
    assert_non_null(m);
    return m;
}

static void assert_queue(fixture_t *fx, int ci, int n, ...)
{
    va_list ap;
    rc_outq_t *q = &fx->c[ci].outq;

    assert_int_equal(rc_outq_count(q), n);
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        assert_ptr_equal(rc_outq_peek(q, (uint32_t)i), va_arg(ap, rc_msg_t *));
    va_end(ap);
}

static void pop_all(fixture_t *fx, int ci)
{
    rc_outq_pop(&fx->c[ci].outq, rc_outq_count(&fx->c[ci].outq));
}

/* ---- room names ---- */

static bool valid(const char *s)
{
    return rc_room_name_valid(s, strlen(s));
}

static void test_name_lower(void **state)
{
    (void)state;
    assert_true(valid("abcdefghijklmnopqrstuvwxyz"));
    for (char ch = 'a'; ch <= 'z'; ch++)
        assert_true(rc_room_name_valid(&ch, 1));
}

static void test_name_upper(void **state)
{
    (void)state;
    assert_true(valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    for (char ch = 'A'; ch <= 'Z'; ch++)
        assert_true(rc_room_name_valid(&ch, 1));
}

static void test_name_digits(void **state)
{
    (void)state;
    assert_true(valid("0123456789"));
    for (char ch = '0'; ch <= '9'; ch++)
        assert_true(rc_room_name_valid(&ch, 1));
}

static void test_name_punct(void **state)
{
    (void)state;
    assert_true(valid("_"));
    assert_true(valid("-"));
    assert_true(valid("."));
    assert_true(valid(":"));
    assert_true(valid("/"));
    assert_true(valid("@"));
    assert_true(valid("chat:room-1/sub_2.x@eu"));
}

static void test_name_every_byte(void **state)
{
    const char *allowed = "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789_-.:/@";

    (void)state;
    /* Every single-byte name: valid exactly for the contract's alphabet. */
    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        bool want = b != 0 && strchr(allowed, b) != NULL;
        if (rc_room_name_valid(&ch, 1) != want)
            fail_msg("byte 0x%02x: expected %s", b, want ? "valid" : "invalid");
    }
}

static void test_name_empty(void **state)
{
    (void)state;
    assert_false(rc_room_name_valid("", 0));
    assert_false(rc_room_name_valid("abc", 0)); /* len rules, not NUL */
}

static void test_name_128_vs_129(void **state)
{
    char name[RC_ROOM_MAX + 2];

    (void)state;
    memset(name, 'a', sizeof(name));
    assert_true(rc_room_name_valid(name, 1));
    assert_true(rc_room_name_valid(name, 127));
    assert_true(rc_room_name_valid(name, 128));
    assert_false(rc_room_name_valid(name, 129));
    assert_false(rc_room_name_valid(name, 130));
    assert_false(rc_room_name_valid(name, SIZE_MAX));
}

static void test_name_space(void **state)
{
    (void)state;
    assert_false(valid(" "));
    assert_false(valid("a b"));
    assert_false(valid(" a"));
    assert_false(valid("a "));
    assert_false(valid("a\tb"));
    assert_false(valid("a\nb"));
}

static void test_name_nul(void **state)
{
    (void)state;
    assert_false(rc_room_name_valid("\0", 1));
    assert_false(rc_room_name_valid("a\0b", 3));
    assert_false(rc_room_name_valid("ab\0", 3));
    /* Only the first len bytes count. */
    assert_true(rc_room_name_valid("ab\0", 2));
    assert_true(rc_room_name_valid("ab cd", 2));
}

static void test_name_non_ascii(void **state)
{
    (void)state;
    assert_false(valid("caf\xc3\xa9"));      /* UTF-8 e-acute */
    assert_false(valid("room\xe2\x80\x8b")); /* zero-width space */
    assert_false(valid("\x80"));
    assert_false(valid("\xff"));
    assert_false(valid("a\x7f"));
}

static void test_name_other_ascii(void **state)
{
    (void)state;
    assert_false(valid("a*"));
    assert_false(valid("a\"b"));
    assert_false(valid("a\\b"));
    assert_false(valid("a,b"));
    assert_false(valid("a+b"));
    assert_false(valid("{}"));
}

/* ---- join / leave ---- */

static void test_join_creates_room(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *m = join(fx, 0, "chat:1");
    rc_room_t *r = rc_hub_room(fx->hub, "chat:1");

    assert_non_null(r);
    assert_ptr_equal(m->room, r);
    assert_ptr_equal(m->conn, &fx->c[0]);
    assert_int_equal(m->last_seq, 0);
    assert_null(m->pending);
    assert_string_equal(r->name, "chat:1");
    assert_int_equal(r->len, 6);
    assert_int_equal(r->nmembers, 1);
    assert_int_equal(fx->opened, 1);
    assert_int_equal(fx->open_nmembers, 1); /* called once the member is in */
    assert_string_equal(fx->last_open, "chat:1");
    assert_int_equal(fx->closed, 0);
    assert_int_equal(rc_hub_room_count(fx->hub), 1);
    assert_int_equal(rc_hub_member_count(fx->hub), 1);
    assert_int_equal(fx->c[0].nrooms, 1);
    assert_ptr_equal(rc_hub_member(fx->hub, &fx->c[0], "chat:1"), m);
    assert_null(rc_hub_member(fx->hub, &fx->c[1], "chat:1"));
    assert_null(rc_hub_member(fx->hub, &fx->c[0], "chat:2"));
    assert_null(rc_hub_room(fx->hub, "chat:2"));
    assert_null(rc_hub_room(fx->hub, "chat:"));
    assert_null(rc_hub_room(fx->hub, "chat:10"));
}

static void test_join_second_member(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *a = join(fx, 0, "r");
    rc_member_t *b = join(fx, 1, "r");

    assert_ptr_not_equal(a, b);
    assert_ptr_equal(a->room, b->room);
    assert_int_equal(fx->opened, 1); /* room_open only for the first */
    assert_int_equal(a->room->nmembers, 2);
    assert_int_equal(rc_hub_room_count(fx->hub), 1);
    assert_int_equal(rc_hub_member_count(fx->hub), 2);
    assert_ptr_equal(rc_hub_member(fx->hub, &fx->c[1], "r"), b);
}

static void test_join_twice(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *a = join(fx, 0, "r");
    rc_member_t *again = NULL;

    assert_int_equal(rc_hub_join(fx->hub, &fx->c[0], "r", &again), RC_EEXIST);
    assert_ptr_equal(again, a);
    assert_int_equal(fx->opened, 1);
    assert_int_equal(a->room->nmembers, 1);
    assert_int_equal(fx->c[0].nrooms, 1);
    assert_int_equal(rc_hub_member_count(fx->hub), 1);
}

static void test_join_distinct_names(void **state)
{
    fixture_t *fx = *state;

    join(fx, 0, "a");
    join(fx, 0, "A");
    join(fx, 0, "aa");
    join(fx, 0, "a:");
    assert_int_equal(rc_hub_room_count(fx->hub), 4);
    assert_int_equal(fx->opened, 4);
    assert_int_equal(fx->c[0].nrooms, 4);
    assert_string_equal(rc_hub_room(fx->hub, "A")->name, "A");
}

static void test_join_max_len_name(void **state)
{
    fixture_t *fx = *state;
    char name[RC_ROOM_MAX + 1];

    memset(name, 'x', RC_ROOM_MAX);
    name[RC_ROOM_MAX] = '\0';
    join(fx, 0, name);
    assert_int_equal(rc_hub_room(fx->hub, name)->len, RC_ROOM_MAX);
    assert_string_equal(fx->last_open, name);
}

static void test_leave_last_closes(void **state)
{
    fixture_t *fx = *state;

    join(fx, 0, "r");
    join(fx, 1, "r");
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "r"), RC_OK);
    assert_int_equal(fx->closed, 0);
    assert_null(rc_hub_member(fx->hub, &fx->c[0], "r"));
    assert_int_equal(rc_hub_room(fx->hub, "r")->nmembers, 1);
    assert_int_equal(fx->c[0].nrooms, 0);
    assert_true(rc_list_empty(&fx->c[0].members));

    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[1], "r"), RC_OK);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(fx->close_nmembers, 0);
    assert_string_equal(fx->last_close, "r");
    assert_null(rc_hub_room(fx->hub, "r"));
    assert_int_equal(rc_hub_room_count(fx->hub), 0);
    assert_int_equal(rc_hub_member_count(fx->hub), 0);
}

static void test_leave_not_joined(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "nowhere"), RC_ENOENT);
    join(fx, 0, "r");
    /* The room exists, but c1 is not in it. */
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[1], "r"), RC_ENOENT);
    assert_int_equal(rc_hub_member_count(fx->hub), 1);
    assert_int_equal(fx->closed, 0);
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "r"), RC_OK);
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "r"), RC_ENOENT);
    assert_int_equal(fx->closed, 1);
}

static void test_rejoin_reopens(void **state)
{
    fixture_t *fx = *state;

    join(fx, 0, "r");
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "r"), RC_OK);
    join(fx, 0, "r");
    assert_int_equal(fx->opened, 2);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(rc_hub_room_count(fx->hub), 1);
}

static void test_leave_all(void **state)
{
    fixture_t *fx = *state;
    char name[8];

    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        join(fx, 0, name);
    }
    join(fx, 1, "r2");
    assert_int_equal(fx->c[0].nrooms, 5);
    rc_hub_leave_all(fx->hub, &fx->c[0]);
    assert_int_equal(fx->c[0].nrooms, 0);
    assert_true(rc_list_empty(&fx->c[0].members));
    assert_int_equal(fx->closed, 4); /* r2 still has c1 */
    assert_int_equal(rc_hub_room_count(fx->hub), 1);
    assert_int_equal(rc_hub_member_count(fx->hub), 1);
    assert_int_equal(rc_hub_room(fx->hub, "r2")->nmembers, 1);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        assert_null(rc_hub_member(fx->hub, &fx->c[0], name));
    }
    /* A connection in no room: a no-op. */
    rc_hub_leave_all(fx->hub, &fx->c[0]);
    rc_hub_leave_all(fx->hub, &fx->c[2]);
    assert_int_equal(rc_hub_member_count(fx->hub), 1);
}

static void test_leave_cancels_pending(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *a = join(fx, 0, "r");
    int op;

    join(fx, 1, "r");
    /* Without a pending op, no cancel. */
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[1], "r"), RC_OK);
    assert_int_equal(fx->cancelled, 0);
    a->pending = &op;
    rc_hub_leave_all(fx->hub, &fx->c[0]);
    assert_int_equal(fx->cancelled, 1);
    assert_ptr_equal(fx->cancelled_pending, &op);
}

static void test_optional_ops_absent(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *a;

    /* room_open, room_close and cancel may be NULL. */
    fx->ops.room_open = NULL;
    fx->ops.room_close = NULL;
    fx->ops.cancel = NULL;
    a = join(fx, 0, "r");
    a->pending = &fx;
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[0], "r"), RC_OK);
    assert_int_equal(rc_hub_room_count(fx->hub), 0);
    assert_int_equal(fx->opened + fx->closed + fx->cancelled, 0);
}

/* config.c accepts max_rooms up to this many rooms per connection. */
#define CONFIG_MAX_ROOMS_BOUND 65536

static void test_nrooms_counts_to_config_bound(void **state)
{
    fixture_t *fx = *state;
    const uint32_t want = CONFIG_MAX_ROOMS_BOUND;
    char name[32];

    /* session.c refuses a join when c->nrooms >= max_rooms, so the count must
     * reach every value max_rooms may take. */
    for (uint32_t i = 0; i < want; i++) {
        rc_member_t *m = NULL;
        snprintf(name, sizeof(name), "r%u", (unsigned)i);
        assert_int_equal(rc_hub_join(fx->hub, &fx->c[0], name, &m), RC_OK);
    }
    assert_int_equal(rc_hub_member_count(fx->hub), want);
    assert_int_equal(fx->c[0].nrooms, want);
}

/* ---- fan-out ---- */

static void test_deliver_shared_ref(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);

    join(fx, 0, "r");
    join(fx, 1, "r");
    join(fx, 2, "r");
    join(fx, 3, "other");
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 3);
    /* One shared frame: the test's ref plus one per member. */
    assert_int_equal(m->refs, 1 + 3);
    for (int i = 0; i < 3; i++) {
        assert_queue(fx, i, 1, m);
        assert_int_equal(fx->wake[i], 1);
    }
    /* Non-members get nothing. */
    assert_queue(fx, 3, 0);
    assert_queue(fx, 4, 0);
    assert_int_equal(fx->wake[3] + fx->wake[4], 0);
    assert_int_equal(fx->slow_total, 0);
}

static void test_deliver_no_room(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);

    join(fx, 0, "r");
    assert_int_equal(rc_hub_deliver(fx->hub, "nope", m), 0);
    assert_int_equal(m->refs, 1);
    assert_queue(fx, 0, 0);
    assert_int_equal(fx->wake_total, 0);
}

static void test_deliver_in_order(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *a = msg(fx, 0), *b = msg(fx, 0), *c = msg(fx, 0);

    join(fx, 0, "r");
    assert_int_equal(rc_hub_deliver(fx->hub, "r", a), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", b), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", c), 1);
    assert_queue(fx, 0, 3, a, b, c);
}

static void test_deliver_seq_dedup(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m5 = msg(fx, 5), *dup5 = msg(fx, 5), *m4 = msg(fx, 4);
    rc_msg_t *m6 = msg(fx, 6), *e = msg(fx, 0);
    rc_member_t *mb = join(fx, 0, "r");

    assert_int_equal(rc_hub_deliver(fx->hub, "r", m5), 1);
    assert_int_equal(mb->last_seq, 5);
    /* seq 5 again (same frame, or another with that seq): skipped. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m5), 0);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", dup5), 0);
    /* An older seq: skipped too. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m4), 0);
    assert_int_equal(m5->refs, 2);
    assert_int_equal(dup5->refs, 1);
    assert_int_equal(m4->refs, 1);
    /* Newer seqs and ephemeral frames (seq 0) pass. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m6), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", e), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", e), 1);
    assert_int_equal(mb->last_seq, 6);
    assert_queue(fx, 0, 4, m5, m6, e, e);
}

static void test_deliver_seq_per_member(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m5 = msg(fx, 5);

    join(fx, 0, "r");
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m5), 1);
    /* c1 joins later: it has not seen seq 5, c0 has. */
    join(fx, 1, "r");
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m5), 1);
    assert_queue(fx, 0, 1, m5);
    assert_queue(fx, 1, 1, m5);
    assert_int_equal(m5->refs, 3);
}

static void test_wake_edge_only(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);

    join(fx, 0, "r");
    for (int i = 0; i < 3; i++)
        assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 1);
    assert_int_equal(fx->wake[0], 1);
    rc_outq_pop(&fx->c[0].outq, 2); /* partly written: still non-empty */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 1);
    assert_int_equal(fx->wake[0], 1);
    pop_all(fx, 0); /* drained */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 1);
    assert_int_equal(fx->wake[0], 2);
    assert_int_equal(fx->wake_total, 2);
}

static void test_slow_consumer_msgs(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m1 = msg(fx, 0), *m2 = msg(fx, 0), *m3 = msg(fx, 0);
    rc_msg_t *m4 = msg(fx, 0);

    make_hub(fx, BIG_BYTES, 2);
    join(fx, 0, "r"); /* never writes */
    join(fx, 1, "r"); /* keeps up */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m1), 2);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m2), 2);
    pop_all(fx, 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m3), 1);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->slow[1], 0);
    assert_int_equal(fx->c[0].state, RC_CONN_CLOSING);
    assert_int_equal(fx->c[1].state, RC_CONN_OPEN);
    /* Its backlog was dropped, refs and all. */
    assert_queue(fx, 0, 0);
    assert_int_equal(rc_outq_bytes(&fx->c[0].outq), 0);
    assert_int_equal(m1->refs, 1);
    assert_int_equal(m2->refs, 1);
    assert_int_equal(m3->refs, 2); /* the test's and c1's */
    assert_queue(fx, 1, 1, m3);

    /* Later deliveries skip it: no queueing, no wake, no second slow. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m4), 1);
    assert_queue(fx, 0, 0);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->wake[0], 1);
    assert_int_equal(m4->refs, 2);
    assert_queue(fx, 1, 2, m3, m4);
    /* Still a member until the owner closes it. */
    assert_non_null(rc_hub_member(fx->hub, &fx->c[0], "r"));
}

/* A durable `msg` frame of room (its name located in the frame, as the
 * adapter frames it). */
static rc_msg_t *room_msg(fixture_t *fx, const char *room, uint64_t seq)
{
    char payload[64];
    int n = snprintf(payload, sizeof(payload), "{\"room\":\"%s\",\"n\":%zu}",
                     room, fx->nmsgs);
    rc_msg_t *m = rc_msg_create(RC_WS_OP_TEXT, payload, (size_t)n);
    const unsigned char *b;

    assert_non_null(m);
    assert_true(fx->nmsgs < MAXMSG);
    b = rc_msg_bytes(m);
    for (uint32_t i = 0; i + strlen(room) <= m->len; i++)
        if (b[i] == '"' && memcmp(b + i + 1, room, strlen(room)) == 0 &&
            b[i + 1 + strlen(room)] == '"' && i > 8) {
            m->room_off = (uint16_t)(i + 1);
            break;
        }
    assert_true(m->room_off > 0);
    m->room_len = (uint8_t)strlen(room);
    m->seq = seq;
    fx->msgs[fx->nmsgs++] = m;
    return m;
}

/* A dropped queue was never written: each room's last_seq goes back to
 * before its first dropped frame (the snapshot a resume starts from). */
static void test_slow_consumer_rewinds_last_seq(void **state)
{
    fixture_t *fx = *state;
    rc_member_t *ra, *rb;

    make_hub(fx, BIG_BYTES, 2);
    ra = join(fx, 0, "ra");
    rb = join(fx, 0, "rb");
    assert_int_equal(rc_hub_deliver(fx->hub, "ra", room_msg(fx, "ra", 5)), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "rb", room_msg(fx, "rb", 7)), 1);
    rc_outq_pop(&fx->c[0].outq, 1); /* ra #5 written */
    assert_int_equal(rc_hub_deliver(fx->hub, "ra", room_msg(fx, "ra", 6)), 1);
    assert_int_equal(ra->last_seq, 6);
    /* rb #8 does not fit: the queue (rb #7, ra #6) and #8 are dropped */
    assert_int_equal(rc_hub_deliver(fx->hub, "rb", room_msg(fx, "rb", 8)), 0);
    assert_int_equal(fx->slow[0], 1);
    assert_queue(fx, 0, 0);
    assert_int_equal(ra->last_seq, 5);
    assert_int_equal(rb->last_seq, 6);
}

static void test_slow_consumer_bytes(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m1 = msg(fx, 0), *m2 = msg(fx, 0), *m3 = msg(fx, 0);

    /* Room for two frames' bytes, one byte short of three. */
    make_hub(fx, (uint64_t)m1->len + m2->len + m3->len - 1, BIG_MSGS);
    join(fx, 0, "r");
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m1), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m2), 1);
    assert_int_equal(fx->slow[0], 0);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m3), 0);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->c[0].state, RC_CONN_CLOSING);
    assert_queue(fx, 0, 0);
    assert_int_equal(m1->refs, 1);
    assert_int_equal(m3->refs, 1);
}

static void test_slow_consumer_no_memory(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);

    join(fx, 0, "r");
    for (int i = 0; i < RC_OUTQ_INLINE; i++)
        assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 1);
    /* The ring cannot grow: treated as a slow consumer too. */
    rc_mem_fail_after(1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 0);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->c[0].state, RC_CONN_CLOSING);
    assert_queue(fx, 0, 0);
    assert_int_equal(m->refs, 1);
}

static void test_send_one(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);

    make_hub(fx, BIG_BYTES, 1);
    /* No room needed. */
    assert_int_equal(rc_hub_send(fx->hub, &fx->c[0], m), RC_OK);
    assert_int_equal(m->refs, 2);
    assert_int_equal(fx->wake[0], 1);
    assert_queue(fx, 0, 1, m);
    /* Past the bound. */
    assert_int_equal(rc_hub_send(fx->hub, &fx->c[0], m), RC_ELIMIT);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(m->refs, 1);
    /* Closing: refused without another slow. */
    assert_int_equal(rc_hub_send(fx->hub, &fx->c[0], m), RC_ECLOSED);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(m->refs, 1);
    assert_queue(fx, 0, 0);
}

/* ---- the history/live seam ---- */

static void test_sync_holds_then_replays(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m1 = msg(fx, 1), *e = msg(fx, 0), *m2 = msg(fx, 2);
    rc_msg_t *m3 = msg(fx, 3);
    rc_member_t *b;

    join(fx, 0, "r");
    b = join(fx, 1, "r");
    rc_hub_sync_begin(fx->hub, b);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m1), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", e), 1);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m2), 1);
    assert_queue(fx, 1, 0);
    assert_int_equal(m1->refs, 3); /* test, c0, held */
    /* History covered seq 1. */
    b->last_seq = 1;
    assert_int_equal(rc_hub_sync_end(fx->hub, b), 2);
    assert_queue(fx, 1, 2, e, m2);
    assert_int_equal(b->last_seq, 2);
    assert_int_equal(m1->refs, 2); /* held refs released */
    assert_int_equal(e->refs, 3);
    /* Live again. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m3), 2);
    assert_queue(fx, 1, 3, e, m2, m3);
    assert_int_equal(rc_hub_sync_end(fx->hub, b), 0); /* not syncing */
}

static void test_sync_leave_releases_held(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);
    rc_member_t *b;

    join(fx, 0, "r");
    b = join(fx, 1, "r");
    rc_hub_sync_begin(fx->hub, b);
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 1);
    assert_int_equal(m->refs, 3);
    assert_int_equal(rc_hub_leave(fx->hub, &fx->c[1], "r"), RC_OK);
    assert_int_equal(m->refs, 2);
}

static void test_sync_hold_bound(void **state)
{
    fixture_t *fx = *state;
    rc_msg_t *m = msg(fx, 0);
    rc_member_t *a = join(fx, 0, "r");

    rc_hub_sync_begin(fx->hub, a);
    for (uint32_t i = 0; i < RC_HUB_MAX_HELD; i++)
        assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 0);
    assert_int_equal(m->refs, 1 + RC_HUB_MAX_HELD);
    assert_int_equal(fx->slow[0], 0);
    /* One more than the room may hold: the syncing member is slow. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 0);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->c[0].state, RC_CONN_CLOSING);
    assert_int_equal(m->refs, 1);
    assert_queue(fx, 0, 0);
}

static void test_sync_hold_bound_bytes(void **state)
{
    fixture_t *fx = *state;
    /* 1 MiB frames: the byte bound bites long before the frame count. */
    size_t big = 1024 * 1024;
    char *payload = calloc(1, big);
    rc_msg_t *m;
    rc_member_t *a = join(fx, 0, "r");
    uint32_t fit;

    assert_non_null(payload);
    m = rc_msg_create(RC_WS_OP_TEXT, payload, big);
    free(payload);
    assert_non_null(m);
    fit = RC_HUB_MAX_HELD_BYTES / m->len;
    rc_hub_sync_begin(fx->hub, a);
    for (uint32_t i = 0; i < fit; i++)
        assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 0);
    assert_int_equal(m->refs, 1 + fit);
    assert_int_equal(fx->slow[0], 0);
    assert_true(fit < RC_HUB_MAX_HELD);
    /* The frame that would pass the byte bound closes the syncing member
     * (the one overflow policy) and releases every held frame. */
    assert_int_equal(rc_hub_deliver(fx->hub, "r", m), 0);
    assert_int_equal(fx->slow[0], 1);
    assert_int_equal(fx->c[0].state, RC_CONN_CLOSING);
    assert_int_equal(m->refs, 1);
    rc_msg_unref(m);
}

/* ---- many rooms and members: both hash tables grow ---- */

#define MANY_CONNS 200
#define MANY_ROOMS 300
#define ROOMS_PER_CONN 20

static void many_name(char *buf, size_t len, int r)
{
    snprintf(buf, len, "room/%d", r);
}

static int many_room_of(int ci, int j)
{
    /* 13 is prime to MANY_ROOMS: distinct rooms for one conn. */
    return (ci * 7 + j * 13) % MANY_ROOMS;
}

static void test_many_rooms_and_members(void **state)
{
    fixture_t *fx = *state;
    rc_conn_t *conns = calloc(MANY_CONNS, sizeof(*conns));
    unsigned want[MANY_ROOMS] = {0}, seen[MANY_ROOMS] = {0};
    size_t nrooms = 0, nmembers = 0;
    rc_msg_t *m = msg(fx, 0);
    rc_htab_it_t it = {0, NULL};
    rc_room_t *r;
    char name[32];

    assert_non_null(conns);
    for (int ci = 0; ci < MANY_CONNS; ci++) {
        rc_conn_init(&conns[ci]);
        conns[ci].state = RC_CONN_OPEN;
        for (int j = 0; j < ROOMS_PER_CONN; j++) {
            rc_member_t *mb = NULL;
            int ri = many_room_of(ci, j);
            many_name(name, sizeof(name), ri);
            assert_int_equal(rc_hub_join(fx->hub, &conns[ci], name, &mb),
                             RC_OK);
            if (want[ri]++ == 0)
                nrooms++;
            nmembers++;
        }
        assert_int_equal(conns[ci].nrooms, ROOMS_PER_CONN);
    }
    assert_int_equal(rc_hub_room_count(fx->hub), nrooms);
    assert_int_equal(rc_hub_member_count(fx->hub), nmembers);
    assert_int_equal(fx->opened, nrooms);

    /* Every membership is found; joining again says so. */
    for (int ci = 0; ci < MANY_CONNS; ci++)
        for (int j = 0; j < ROOMS_PER_CONN; j++) {
            rc_member_t *mb = NULL;
            many_name(name, sizeof(name), many_room_of(ci, j));
            assert_non_null(rc_hub_member(fx->hub, &conns[ci], name));
            assert_int_equal(rc_hub_join(fx->hub, &conns[ci], name, &mb),
                             RC_EEXIST);
            assert_ptr_equal(mb->conn, &conns[ci]);
        }

    /* The iterator visits every room once, with its member count. */
    while ((r = rc_hub_room_iter(fx->hub, &it))) {
        int ri = atoi(r->name + 5);
        assert_true(ri >= 0 && ri < MANY_ROOMS);
        assert_int_equal(seen[ri]++, 0);
        assert_int_equal(r->nmembers, want[ri]);
    }
    for (int ri = 0; ri < MANY_ROOMS; ri++)
        assert_int_equal(seen[ri], want[ri] ? 1 : 0);

    /* Fan-out reaches exactly each room's members. */
    for (int ri = 0; ri < MANY_ROOMS; ri++) {
        many_name(name, sizeof(name), ri);
        assert_int_equal(rc_hub_deliver(fx->hub, name, m), want[ri]);
    }
    assert_int_equal(m->refs, 1 + nmembers);
    for (int ci = 0; ci < MANY_CONNS; ci++)
        assert_int_equal(rc_outq_count(&conns[ci].outq), ROOMS_PER_CONN);
    assert_int_equal(fx->wake_total, MANY_CONNS);
    assert_int_equal(fx->slow_total, 0);

    /* Leave every other room, then everything. */
    for (int ci = 0; ci < MANY_CONNS; ci++)
        for (int j = 0; j < ROOMS_PER_CONN; j += 2) {
            many_name(name, sizeof(name), many_room_of(ci, j));
            assert_int_equal(rc_hub_leave(fx->hub, &conns[ci], name), RC_OK);
            nmembers--;
        }
    assert_int_equal(rc_hub_member_count(fx->hub), nmembers);
    for (int ci = 0; ci < MANY_CONNS; ci++) {
        assert_int_equal(conns[ci].nrooms, ROOMS_PER_CONN / 2);
        rc_hub_leave_all(fx->hub, &conns[ci]);
        rc_conn_dispose(&conns[ci]);
    }
    assert_int_equal(rc_hub_member_count(fx->hub), 0);
    assert_int_equal(rc_hub_room_count(fx->hub), 0);
    assert_int_equal(fx->closed, nrooms);
    assert_int_equal(m->refs, 1);
    free(conns);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_lower),
        cmocka_unit_test(test_name_upper),
        cmocka_unit_test(test_name_digits),
        cmocka_unit_test(test_name_punct),
        cmocka_unit_test(test_name_every_byte),
        cmocka_unit_test(test_name_empty),
        cmocka_unit_test(test_name_128_vs_129),
        cmocka_unit_test(test_name_space),
        cmocka_unit_test(test_name_nul),
        cmocka_unit_test(test_name_non_ascii),
        cmocka_unit_test(test_name_other_ascii),
        cmocka_unit_test_setup_teardown(test_slow_consumer_rewinds_last_seq,
                                        fx_setup, fx_teardown),
        T(test_join_creates_room),
        T(test_join_second_member),
        T(test_join_twice),
        T(test_join_distinct_names),
        T(test_join_max_len_name),
        T(test_leave_last_closes),
        T(test_leave_not_joined),
        T(test_rejoin_reopens),
        T(test_leave_all),
        T(test_leave_cancels_pending),
        T(test_optional_ops_absent),
        T(test_nrooms_counts_to_config_bound),
        T(test_deliver_shared_ref),
        T(test_deliver_no_room),
        T(test_deliver_in_order),
        T(test_deliver_seq_dedup),
        T(test_deliver_seq_per_member),
        T(test_wake_edge_only),
        T(test_slow_consumer_msgs),
        T(test_slow_consumer_bytes),
        T(test_slow_consumer_no_memory),
        T(test_send_one),
        T(test_sync_holds_then_replays),
        T(test_sync_leave_releases_held),
        T(test_sync_hold_bound),
        T(test_sync_hold_bound_bytes),
        T(test_many_rooms_and_members),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

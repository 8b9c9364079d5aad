/* Unit tests of gateway/outq.c: inline slots then heap ring growth, ring
 * wraparound, the byte and frame bounds, refs dropped on pop and refusal,
 * the heap ring given back when the queue drains, and ring-growth failure.
 *
 * The ring's layout is private (STYLE rule 2): these tests observe it only
 * through the API and through allocation failure injection (an allocation
 * happens exactly when the ring grows).
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
#include "gateway/outq.h"

#define NO_BYTES_LIMIT UINT64_MAX
#define NO_MSGS_LIMIT UINT32_MAX
#define MAXM 64

typedef struct fixture {
    rc_outq_t q;
    rc_msg_t *m[MAXM]; /* the test's own ref on each frame */
} fixture_t;

static int fx_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    rc_outq_init(&fx->q);
    for (int i = 0; i < MAXM; i++) {
        char payload[16];
        int n = snprintf(payload, sizeof(payload), "m%d", i);
        fx->m[i] = rc_msg_create(RC_WS_OP_TEXT, payload, (size_t)n);
        assert_non_null(fx->m[i]);
    }
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture_t *fx = *state;

    rc_mem_fail_after(0);
    rc_outq_dispose(&fx->q);
    for (int i = 0; i < MAXM; i++) {
        /* Every queue ref is gone: only the test's own remains. */
        assert_int_equal(fx->m[i]->refs, 1);
        rc_msg_unref(fx->m[i]);
    }
    free(fx);
    return 0;
}

/* Push frame i (a new ref) with no bounds. */
static rc_err_t push(fixture_t *fx, int i)
{
    return rc_outq_push(&fx->q, rc_msg_ref(fx->m[i]), NO_BYTES_LIMIT,
                        NO_MSGS_LIMIT);
}

static uint32_t bytes_of(fixture_t *fx, int from, int to)
{
    uint32_t b = 0;

    for (int i = from; i < to; i++)
        b += fx->m[i]->len;
    return b;
}

/* The queue holds exactly frames first..first+n-1, in order. */
static void assert_queue(fixture_t *fx, int first, int n)
{
    assert_int_equal(rc_outq_count(&fx->q), n);
    assert_int_equal(rc_outq_bytes(&fx->q), bytes_of(fx, first, first + n));
    for (int i = 0; i < n; i++)
        assert_ptr_equal(rc_outq_peek(&fx->q, (uint32_t)i), fx->m[first + i]);
    assert_null(rc_outq_peek(&fx->q, (uint32_t)n));
}

static void test_init_empty(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(rc_outq_count(&fx->q), 0);
    assert_int_equal(rc_outq_bytes(&fx->q), 0);
    assert_null(rc_outq_peek(&fx->q, 0));
    assert_null(rc_outq_peek(&fx->q, UINT32_MAX));
    rc_outq_pop(&fx->q, 0);
    rc_outq_pop(&fx->q, 5); /* popping an empty queue is harmless */
    assert_int_equal(rc_outq_count(&fx->q), 0);
}

static void test_push_takes_ref(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(push(fx, 0), RC_OK);
    assert_int_equal(fx->m[0]->refs, 2);
    assert_ptr_equal(rc_outq_peek(&fx->q, 0), fx->m[0]);
    /* peek borrows: no ref taken. */
    assert_int_equal(fx->m[0]->refs, 2);
    assert_queue(fx, 0, 1);
}

static void test_inline_no_allocation(void **state)
{
    fixture_t *fx = *state;

    /* Arm a failure on the next allocation: the inline slots need none. */
    rc_mem_fail_after(1);
    for (int i = 0; i < RC_OUTQ_INLINE; i++)
        assert_int_equal(push(fx, i), RC_OK);
    assert_queue(fx, 0, RC_OUTQ_INLINE);
    /* One more needs the heap ring: that is the armed allocation. */
    assert_int_equal(push(fx, RC_OUTQ_INLINE), RC_ENOMEM);
    assert_queue(fx, 0, RC_OUTQ_INLINE);
}

static void test_grow_to_heap(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < RC_OUTQ_INLINE + 1; i++)
        assert_int_equal(push(fx, i), RC_OK);
    assert_queue(fx, 0, RC_OUTQ_INLINE + 1);
    for (int i = 0; i < RC_OUTQ_INLINE + 1; i++)
        assert_int_equal(fx->m[i]->refs, 2);
}

static void test_grow_many(void **state)
{
    fixture_t *fx = *state;

    /* 4 inline -> 8 -> 16 -> 32 -> 64 slots. */
    for (int i = 0; i < MAXM; i++)
        assert_int_equal(push(fx, i), RC_OK);
    assert_queue(fx, 0, MAXM);
}

static void test_wrap_inline(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 4; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_pop(&fx->q, 3);
    assert_queue(fx, 3, 1);
    /* The head is at slot 3: these three wrap to slots 0..2. */
    for (int i = 4; i < 7; i++)
        assert_int_equal(push(fx, i), RC_OK);
    assert_queue(fx, 3, 4);
    /* Full and wrapped: growing must unroll from the head, in order. */
    assert_int_equal(push(fx, 7), RC_OK);
    assert_queue(fx, 3, 5);
}

static void test_wrap_heap(void **state)
{
    fixture_t *fx = *state;
    int first = 0, next = 0;

    /* Grow to an 8-slot heap ring. */
    for (; next < 8; next++)
        assert_int_equal(push(fx, next), RC_OK);
    /* Walk the head around the ring twice, keeping it non-empty. */
    for (int round = 0; round < 16; round++) {
        rc_outq_pop(&fx->q, 1);
        first++;
        assert_int_equal(push(fx, next), RC_OK);
        next++;
        assert_queue(fx, first, next - first);
        /* The popped frame's queue ref is gone. */
        assert_int_equal(fx->m[first - 1]->refs, 1);
    }
    /* Full 8-slot ring with the head mid-ring: grow to 16 in order. */
    assert_int_equal(push(fx, next), RC_OK);
    next++;
    assert_queue(fx, first, next - first);
}

static void test_bytes_bound(void **state)
{
    fixture_t *fx = *state;
    /* Exactly two frames fit. */
    uint64_t max_bytes = bytes_of(fx, 0, 2);

    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[0]), max_bytes, NO_MSGS_LIMIT),
        RC_OK);
    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[1]), max_bytes, NO_MSGS_LIMIT),
        RC_OK);
    assert_int_equal(rc_outq_bytes(&fx->q), max_bytes);
    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[2]), max_bytes, NO_MSGS_LIMIT),
        RC_ELIMIT);
    /* Refused: the stolen ref is dropped, the queue is unchanged. */
    assert_int_equal(fx->m[2]->refs, 1);
    assert_queue(fx, 0, 2);
}

static void test_bytes_bound_one_short(void **state)
{
    fixture_t *fx = *state;
    uint64_t max_bytes = fx->m[0]->len - 1;

    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[0]), max_bytes, NO_MSGS_LIMIT),
        RC_ELIMIT);
    assert_int_equal(fx->m[0]->refs, 1);
    assert_queue(fx, 0, 0);
}

static void test_msgs_bound(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 3; i++)
        assert_int_equal(
            rc_outq_push(&fx->q, rc_msg_ref(fx->m[i]), NO_BYTES_LIMIT, 3),
            RC_OK);
    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[3]), NO_BYTES_LIMIT, 3),
        RC_ELIMIT);
    assert_int_equal(fx->m[3]->refs, 1);
    assert_queue(fx, 0, 3);
    /* Room again after a pop. */
    rc_outq_pop(&fx->q, 1);
    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[3]), NO_BYTES_LIMIT, 3), RC_OK);
    assert_queue(fx, 1, 3);
}

static void test_msgs_bound_zero(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[0]), NO_BYTES_LIMIT, 0),
        RC_ELIMIT);
    assert_int_equal(fx->m[0]->refs, 1);
    assert_queue(fx, 0, 0);
}

static void test_bound_past_inline(void **state)
{
    fixture_t *fx = *state;

    /* A bound of 6 frames across the inline -> heap transition. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(
            rc_outq_push(&fx->q, rc_msg_ref(fx->m[i]), NO_BYTES_LIMIT, 6),
            RC_OK);
    assert_int_equal(
        rc_outq_push(&fx->q, rc_msg_ref(fx->m[6]), NO_BYTES_LIMIT, 6),
        RC_ELIMIT);
    assert_int_equal(fx->m[6]->refs, 1);
    assert_queue(fx, 0, 6);
}

static void test_pop_releases_refs(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 6; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_pop(&fx->q, 2);
    assert_int_equal(fx->m[0]->refs, 1);
    assert_int_equal(fx->m[1]->refs, 1);
    assert_int_equal(fx->m[2]->refs, 2);
    assert_queue(fx, 2, 4);
    /* More than queued: pops what there is. */
    rc_outq_pop(&fx->q, 100);
    for (int i = 0; i < 6; i++)
        assert_int_equal(fx->m[i]->refs, 1);
    assert_queue(fx, 0, 0);
}

static void test_pop_zero(void **state)
{
    fixture_t *fx = *state;

    assert_int_equal(push(fx, 0), RC_OK);
    rc_outq_pop(&fx->q, 0);
    assert_queue(fx, 0, 1);
    assert_int_equal(fx->m[0]->refs, 2);
}

static void test_shared_frame_twice(void **state)
{
    fixture_t *fx = *state;

    /* The same frame queued twice holds two refs and counts twice. */
    assert_int_equal(push(fx, 0), RC_OK);
    assert_int_equal(push(fx, 0), RC_OK);
    assert_int_equal(fx->m[0]->refs, 3);
    assert_int_equal(rc_outq_bytes(&fx->q), 2 * fx->m[0]->len);
    rc_outq_pop(&fx->q, 1);
    assert_int_equal(fx->m[0]->refs, 2);
    assert_int_equal(rc_outq_bytes(&fx->q), fx->m[0]->len);
}

static void test_drain_releases_ring(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 10; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_pop(&fx->q, 10);
    assert_queue(fx, 0, 0);
    /* Back to inline: four pushes allocate nothing, the fifth allocates a
     * fresh ring (a kept 16-slot ring would have needed no allocation). */
    rc_mem_fail_after(1);
    for (int i = 0; i < RC_OUTQ_INLINE; i++)
        assert_int_equal(push(fx, 20 + i), RC_OK);
    assert_int_equal(push(fx, 20 + RC_OUTQ_INLINE), RC_ENOMEM);
    assert_queue(fx, 20, RC_OUTQ_INLINE);
}

static void test_partial_pop_keeps_ring(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 8; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_pop(&fx->q, 7);
    /* Still backlogged: the 8-slot ring stays, so refilling it to 8 frames
     * needs no allocation. */
    rc_mem_fail_after(1);
    for (int i = 8; i < 15; i++)
        assert_int_equal(push(fx, i), RC_OK);
    assert_queue(fx, 7, 8);
    /* The ninth needs a 16-slot ring. */
    assert_int_equal(push(fx, 15), RC_ENOMEM);
    assert_queue(fx, 7, 8);
}

static void test_grow_failure_inline(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < RC_OUTQ_INLINE; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_mem_fail_after(1);
    assert_int_equal(push(fx, RC_OUTQ_INLINE), RC_ENOMEM);
    /* The stolen ref is dropped; the queue is intact. */
    assert_int_equal(fx->m[RC_OUTQ_INLINE]->refs, 1);
    assert_queue(fx, 0, RC_OUTQ_INLINE);
    /* The failure was one-shot: the next push grows. */
    assert_int_equal(push(fx, RC_OUTQ_INLINE), RC_OK);
    assert_queue(fx, 0, RC_OUTQ_INLINE + 1);
}

static void test_grow_failure_heap(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 8; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_pop(&fx->q, 3);
    for (int i = 8; i < 11; i++) /* wrap inside the 8-slot ring */
        assert_int_equal(push(fx, i), RC_OK);
    rc_mem_fail_after(1);
    assert_int_equal(push(fx, 11), RC_ENOMEM);
    assert_int_equal(fx->m[11]->refs, 1);
    /* The old heap ring was kept, wrapped, in order. */
    assert_queue(fx, 3, 8);
    assert_int_equal(push(fx, 11), RC_OK);
    assert_queue(fx, 3, 9);
}

static void test_dispose_drops_refs(void **state)
{
    fixture_t *fx = *state;

    for (int i = 0; i < 12; i++)
        assert_int_equal(push(fx, i), RC_OK);
    rc_outq_dispose(&fx->q);
    for (int i = 0; i < 12; i++)
        assert_int_equal(fx->m[i]->refs, 1);
    assert_int_equal(rc_outq_count(&fx->q), 0);
    assert_int_equal(rc_outq_bytes(&fx->q), 0);
    /* Disposed is empty and reusable; teardown disposes again. */
    assert_int_equal(push(fx, 0), RC_OK);
    assert_queue(fx, 0, 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_init_empty),
        T(test_push_takes_ref),
        T(test_inline_no_allocation),
        T(test_grow_to_heap),
        T(test_grow_many),
        T(test_wrap_inline),
        T(test_wrap_heap),
        T(test_bytes_bound),
        T(test_bytes_bound_one_short),
        T(test_msgs_bound),
        T(test_msgs_bound_zero),
        T(test_bound_past_inline),
        T(test_pop_releases_refs),
        T(test_pop_zero),
        T(test_shared_frame_twice),
        T(test_drain_releases_ring),
        T(test_partial_pop_keeps_ring),
        T(test_grow_failure_inline),
        T(test_grow_failure_heap),
        T(test_dispose_drops_refs),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of common/htab.c: insert, lookup through hash chains, remove,
 * iteration with removal, growth, and SipHash-1-3 (known answers from the
 * reference implementation, key and data sensitivity).
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

#include "common/err.h"
#include "common/htab.h"

static const uint64_t key_a[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};

typedef struct item {
    rc_hnode_t node;
    int key;
    bool in;
} item_t;

static uint64_t hash_int(int k)
{
    return rc_hash_bytes(key_a, &k, sizeof(k));
}

static item_t *items_new(int n)
{
    item_t *it = calloc((size_t)n, sizeof(*it));

    assert_non_null(it);
    for (int i = 0; i < n; i++) {
        it[i].key = i;
        it[i].node.hash = hash_int(i);
    }
    return it;
}

/* The owner's lookup: walk the chain of a hash, compare its own keys. */
static item_t *find(const rc_htab_t *t, int k)
{
    for (rc_hnode_t *n = rc_htab_first(t, hash_int(k)); n;
         n = rc_htab_next(n)) {
        item_t *it = rc_container_of(n, item_t, node);
        if (it->key == k)
            return it;
    }
    return NULL;
}

static size_t count_iter(const rc_htab_t *t)
{
    rc_htab_it_t it = {0, NULL};
    size_t n = 0;

    while (rc_htab_iter(t, &it))
        n++;
    return n;
}

static void test_empty(void **state)
{
    rc_htab_t t;
    rc_htab_it_t it = {0, NULL};

    (void)state;
    rc_htab_init(&t);
    assert_int_equal(t.count, 0);
    assert_null(rc_htab_first(&t, 0));
    assert_null(rc_htab_first(&t, hash_int(1)));
    assert_null(rc_htab_iter(&t, &it));
    assert_null(rc_htab_iter(&t, &it)); /* stays at the end */
    rc_htab_dispose(&t);
    assert_int_equal(t.count, 0);
}

static void test_insert_find(void **state)
{
    rc_htab_t t;
    item_t *it = items_new(3);

    (void)state;
    rc_htab_init(&t);
    for (int i = 0; i < 3; i++)
        rc_htab_insert(&t, &it[i].node);
    assert_int_equal(t.count, 3);
    for (int i = 0; i < 3; i++)
        assert_ptr_equal(find(&t, i), &it[i]);
    assert_null(find(&t, 3));
    assert_null(find(&t, -1));
    rc_htab_dispose(&t);
    free(it);
}

static void test_same_hash_chain(void **state)
{
    rc_htab_t t;
    item_t it[3];
    rc_hnode_t *n, *m;

    (void)state;
    rc_htab_init(&t);
    /* Three nodes with one hash: first/next walk all of them. */
    for (int i = 0; i < 3; i++) {
        it[i].key = i;
        it[i].node.hash = 42;
        rc_htab_insert(&t, &it[i].node);
    }
    n = rc_htab_first(&t, 42);
    assert_non_null(n);
    m = rc_htab_next(n);
    assert_non_null(m);
    assert_non_null(rc_htab_next(m));
    assert_null(rc_htab_next(rc_htab_next(m)));
    {
        bool seen[3] = {false, false, false};
        for (n = rc_htab_first(&t, 42); n; n = rc_htab_next(n))
            seen[rc_container_of(n, item_t, node)->key] = true;
        assert_true(seen[0] && seen[1] && seen[2]);
    }
    rc_htab_dispose(&t);
}

static void test_chain_skips_other_hashes(void **state)
{
    rc_htab_t t;
    item_t a, b, c;
    const uint64_t h = 5, h2 = 5 + (1ULL << 40); /* same bucket */
    rc_hnode_t *n;

    (void)state;
    rc_htab_init(&t);
    a.key = 1;
    a.node.hash = h;
    b.key = 2;
    b.node.hash = h2;
    c.key = 3;
    c.node.hash = h;
    rc_htab_insert(&t, &a.node);
    rc_htab_insert(&t, &b.node);
    rc_htab_insert(&t, &c.node);
    /* first/next only return nodes of the exact hash, not bucket-mates. */
    for (n = rc_htab_first(&t, h); n; n = rc_htab_next(n))
        assert_int_equal(n->hash, h);
    n = rc_htab_first(&t, h2);
    assert_ptr_equal(n, &b.node);
    assert_null(rc_htab_next(n));
    assert_null(rc_htab_first(&t, h + (1ULL << 41)));
    assert_non_null(rc_htab_next(rc_htab_first(&t, h)));
    assert_null(rc_htab_next(rc_htab_next(rc_htab_first(&t, h))));
    rc_htab_dispose(&t);
}

static void test_remove(void **state)
{
    rc_htab_t t;
    item_t *it = items_new(5);

    (void)state;
    rc_htab_init(&t);
    for (int i = 0; i < 5; i++)
        rc_htab_insert(&t, &it[i].node);
    rc_htab_remove(&t, &it[2].node);
    assert_int_equal(t.count, 4);
    assert_null(find(&t, 2));
    for (int i = 0; i < 5; i++)
        if (i != 2)
            assert_ptr_equal(find(&t, i), &it[i]);
    /* Reinsert works. */
    rc_htab_insert(&t, &it[2].node);
    assert_ptr_equal(find(&t, 2), &it[2]);
    for (int i = 0; i < 5; i++)
        rc_htab_remove(&t, &it[i].node);
    assert_int_equal(t.count, 0);
    assert_int_equal(count_iter(&t), 0);
    rc_htab_dispose(&t);
    free(it);
}

static void test_remove_within_chain(void **state)
{
    rc_htab_t t;
    item_t it[4];

    (void)state;
    rc_htab_init(&t);
    for (int i = 0; i < 4; i++) {
        it[i].key = i;
        it[i].node.hash = 7; /* one chain */
        rc_htab_insert(&t, &it[i].node);
    }
    /* Head (last inserted), middle and tail of one chain. */
    rc_htab_remove(&t, &it[3].node);
    rc_htab_remove(&t, &it[1].node);
    rc_htab_remove(&t, &it[0].node);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(rc_htab_first(&t, 7), &it[2].node);
    assert_null(rc_htab_next(&it[2].node));
    rc_htab_dispose(&t);
}

static void test_growth(void **state)
{
    enum { N = 5000 };
    rc_htab_t t;
    item_t *it = items_new(N);

    (void)state;
    rc_htab_init(&t);
    for (int i = 0; i < N; i++) {
        rc_htab_insert(&t, &it[i].node);
        /* Everything inserted so far survives each doubling. */
        if ((i & (i + 1)) == 0 || i == N - 1)
            for (int j = 0; j <= i; j++)
                assert_ptr_equal(find(&t, j), &it[j]);
    }
    assert_int_equal(t.count, N);
    assert_int_equal(count_iter(&t), N);
    rc_htab_dispose(&t);
    free(it);
}

static void test_growth_low_bits_collide(void **state)
{
    enum { N = 300 };
    rc_htab_t t;
    item_t *it = calloc(N, sizeof(*it));

    (void)state;
    assert_non_null(it);
    rc_htab_init(&t);
    /* Hashes equal in their low 20 bits: one chain until the table is
     * wide enough, then split across buckets. Lookups work throughout. */
    for (int i = 0; i < N; i++) {
        it[i].key = i;
        it[i].node.hash = (uint64_t)i << 20;
        rc_htab_insert(&t, &it[i].node);
    }
    for (int i = 0; i < N; i++) {
        rc_hnode_t *n = rc_htab_first(&t, (uint64_t)i << 20);
        assert_ptr_equal(n, &it[i].node);
        assert_null(rc_htab_next(n));
    }
    assert_int_equal(count_iter(&t), N);
    rc_htab_dispose(&t);
    free(it);
}

static void test_growth_load_factor(void **state)
{
    enum { N = 1000 };
    rc_htab_t t;
    item_t *it = calloc(N, sizeof(*it));
    rc_htab_it_t i = {0, NULL};
    rc_hnode_t *n;
    uint64_t want = 0;

    (void)state;
    assert_non_null(it);
    rc_htab_init(&t);
    /* Hashes 0..N-1, inserted in a scrambled order (7 is prime to N). */
    for (int k = 0; k < N; k++) {
        int h = (k * 7) % N;
        it[k].key = h;
        it[k].node.hash = (uint64_t)h;
        rc_htab_insert(&t, &it[k].node);
    }
    /* At load factor <= 1 the table has >= N buckets, so each of these
     * hashes has a bucket to itself and the bucket-order walk returns them
     * sorted. Without growth, 16 buckets would interleave them. */
    while ((n = rc_htab_iter(&t, &i)))
        assert_int_equal(n->hash, want++);
    assert_int_equal(want, N);
    rc_htab_dispose(&t);
    free(it);
}

static void test_iter_visits_each_once(void **state)
{
    enum { N = 100 };
    rc_htab_t t;
    item_t *it = items_new(N);
    rc_htab_it_t i = {0, NULL};
    rc_hnode_t *n;
    int seen[N] = {0};

    (void)state;
    rc_htab_init(&t);
    for (int k = 0; k < N; k++)
        rc_htab_insert(&t, &it[k].node);
    while ((n = rc_htab_iter(&t, &i)))
        seen[rc_container_of(n, item_t, node)->key]++;
    for (int k = 0; k < N; k++)
        assert_int_equal(seen[k], 1);
    rc_htab_dispose(&t);
    free(it);
}

static void test_iter_remove_current(void **state)
{
    enum { N = 200 };
    rc_htab_t t;
    item_t *it = items_new(N);
    rc_htab_it_t i = {0, NULL};
    rc_hnode_t *n;
    int seen[N] = {0};

    (void)state;
    rc_htab_init(&t);
    for (int k = 0; k < N; k++)
        rc_htab_insert(&t, &it[k].node);
    /* Remove every even key as it is returned. */
    while ((n = rc_htab_iter(&t, &i))) {
        item_t *x = rc_container_of(n, item_t, node);
        seen[x->key]++;
        if (x->key % 2 == 0)
            rc_htab_remove(&t, n);
    }
    for (int k = 0; k < N; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(t.count, N / 2);
    for (int k = 0; k < N; k++) {
        if (k % 2)
            assert_ptr_equal(find(&t, k), &it[k]);
        else
            assert_null(find(&t, k));
    }

    /* Remove everything while iterating. */
    memset(seen, 0, sizeof(seen));
    i = (rc_htab_it_t){0, NULL};
    while ((n = rc_htab_iter(&t, &i))) {
        seen[rc_container_of(n, item_t, node)->key]++;
        rc_htab_remove(&t, n);
    }
    for (int k = 0; k < N; k++)
        assert_int_equal(seen[k], k % 2);
    assert_int_equal(t.count, 0);
    rc_htab_dispose(&t);
    free(it);
}

static void test_iter_remove_in_one_chain(void **state)
{
    rc_htab_t t;
    item_t it[5];
    rc_htab_it_t i = {0, NULL};
    rc_hnode_t *n;
    int visited = 0;

    (void)state;
    rc_htab_init(&t);
    for (int k = 0; k < 5; k++) {
        it[k].key = k;
        it[k].node.hash = 3; /* one bucket, one chain */
        rc_htab_insert(&t, &it[k].node);
    }
    while ((n = rc_htab_iter(&t, &i))) {
        visited++;
        rc_htab_remove(&t, n);
    }
    assert_int_equal(visited, 5);
    assert_int_equal(t.count, 0);
    rc_htab_dispose(&t);
}

/* ---- SipHash-1-3 ---- */

static void test_siphash_known_answers_zero_key(void **state)
{
    /* Reference SipHash-1-3 (github.com/veorq/SipHash), key all zero,
     * input bytes 00 01 02 ... of each length. */
    static const struct {
        size_t len;
        uint64_t h;
    } kat[] = {
        {0, 0xd1fba762150c532cULL},  {1, 0x68a914128e01e473ULL},
        {7, 0x2f098ab0c751325aULL},  {8, 0xead411e67ebe2eeaULL},
        {15, 0xf30eb725bb91c9eaULL}, {16, 0x8972188433a5c5b7ULL},
    };
    const uint64_t zero[2] = {0, 0};
    unsigned char in[64];

    (void)state;
    for (int i = 0; i < 64; i++)
        in[i] = (unsigned char)i;
    for (size_t i = 0; i < RC_ARRAY_LEN(kat); i++)
        assert_int_equal(rc_hash_bytes(zero, in, kat[i].len), kat[i].h);
    assert_int_equal(rc_hash_bytes(zero, "siphash", 7), 0x8264ceeccb16bcbeULL);
}

static void test_siphash_known_answers_key(void **state)
{
    /* Key bytes 00..0f (k0 = bytes 0-7 little-endian): the low 32 bits of
     * SipHash-1-3, as Linux's 64-bit hsiphash self-test checks them. */
    static const struct {
        size_t len;
        uint32_t lo;
    } kat[] = {
        {0, 0x050fc4dcU},  {1, 0x7d57ca93U},  {7, 0x9bb11140U},
        {8, 0x8d299a8eU},  {15, 0x2a519956U}, {16, 0x7d908b66U},
        {63, 0xb7bbb3a8U},
    };
    const uint64_t key[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    unsigned char in[64];

    (void)state;
    for (int i = 0; i < 64; i++)
        in[i] = (unsigned char)i;
    for (size_t i = 0; i < RC_ARRAY_LEN(kat); i++)
        assert_int_equal((uint32_t)rc_hash_bytes(key, in, kat[i].len),
                         kat[i].lo);
}

static void test_siphash_stable(void **state)
{
    const char *s = "chat:room-1";
    char copy[32];

    (void)state;
    strcpy(copy, s);
    /* Same key and bytes, any buffer: same hash. */
    assert_int_equal(rc_hash_bytes(key_a, s, strlen(s)),
                     rc_hash_bytes(key_a, copy, strlen(copy)));
    assert_int_equal(rc_hash_bytes(key_a, s, strlen(s)),
                     rc_hash_bytes(key_a, s, strlen(s)));
}

static void test_siphash_key_matters(void **state)
{
    const uint64_t key_b[2] = {key_a[0] ^ 1, key_a[1]};
    const uint64_t key_c[2] = {key_a[0], key_a[1] ^ 0x8000000000000000ULL};
    const uint64_t key_swapped[2] = {key_a[1], key_a[0]};
    const char *s = "chat:room-1";
    uint64_t h = rc_hash_bytes(key_a, s, strlen(s));

    (void)state;
    assert_int_not_equal(h, rc_hash_bytes(key_b, s, strlen(s)));
    assert_int_not_equal(h, rc_hash_bytes(key_c, s, strlen(s)));
    assert_int_not_equal(h, rc_hash_bytes(key_swapped, s, strlen(s)));
}

static void test_siphash_data_matters(void **state)
{
    uint64_t h[6];

    (void)state;
    h[0] = rc_hash_bytes(key_a, "a", 1);
    h[1] = rc_hash_bytes(key_a, "b", 1);
    h[2] = rc_hash_bytes(key_a, "a\0", 2); /* length is hashed too */
    h[3] = rc_hash_bytes(key_a, "", 0);
    h[4] = rc_hash_bytes(key_a, "room/12345678", 13);
    h[5] = rc_hash_bytes(key_a, "room/12345679", 13);
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            assert_int_not_equal(h[i], h[j]);
}

static void test_siphash_spread(void **state)
{
    enum { N = 4096, BUCKETS = 64 };
    unsigned hits[BUCKETS] = {0};

    (void)state;
    /* Sequential names spread over the low bits a table masks with. */
    for (int i = 0; i < N; i++) {
        char name[16];
        int n = snprintf(name, sizeof(name), "room/%d", i);
        hits[rc_hash_bytes(key_a, name, (size_t)n) & (BUCKETS - 1)]++;
    }
    for (int b = 0; b < BUCKETS; b++) {
        /* Expect 64 each; a fair hash stays far inside [16, 160]. */
        assert_true(hits[b] >= 16);
        assert_true(hits[b] <= 160);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_find),
        cmocka_unit_test(test_same_hash_chain),
        cmocka_unit_test(test_chain_skips_other_hashes),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_remove_within_chain),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_growth_low_bits_collide),
        cmocka_unit_test(test_growth_load_factor),
        cmocka_unit_test(test_iter_visits_each_once),
        cmocka_unit_test(test_iter_remove_current),
        cmocka_unit_test(test_iter_remove_in_one_chain),
        cmocka_unit_test(test_siphash_known_answers_zero_key),
        cmocka_unit_test(test_siphash_known_answers_key),
        cmocka_unit_test(test_siphash_stable),
        cmocka_unit_test(test_siphash_key_matters),
        cmocka_unit_test(test_siphash_data_matters),
        cmocka_unit_test(test_siphash_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

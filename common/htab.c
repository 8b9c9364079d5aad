/* Chained hash table and SipHash-1-3.
 * SPDX-License-Identifier: MIT */
#include "common/htab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/mem.h"

#define INITIAL_BUCKETS 16

void rc_htab_init(rc_htab_t *t)
{
    t->_buckets = rc_xcalloc(INITIAL_BUCKETS, sizeof(*t->_buckets));
    t->_mask = INITIAL_BUCKETS - 1;
    t->count = 0;
}

void rc_htab_dispose(rc_htab_t *t)
{
    free(t->_buckets);
    t->_buckets = NULL;
    t->count = 0;
}

static void grow(rc_htab_t *t)
{
    size_t nb = (t->_mask + 1) * 2;
    rc_hnode_t **b = rc_xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i <= t->_mask; i++) {
        rc_hnode_t *n = t->_buckets[i], *next;
        for (; n; n = next) {
            next = n->_next;
            n->_next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(t->_buckets);
    t->_buckets = b;
    t->_mask = nb - 1;
}

void rc_htab_insert(rc_htab_t *t, rc_hnode_t *n)
{
    if (t->count >= t->_mask + 1)
        grow(t);
    n->_next = t->_buckets[n->hash & t->_mask];
    t->_buckets[n->hash & t->_mask] = n;
    t->count++;
}

void rc_htab_remove(rc_htab_t *t, rc_hnode_t *n)
{
    rc_hnode_t **pp = &t->_buckets[n->hash & t->_mask];

    for (; *pp; pp = &(*pp)->_next) {
        if (*pp == n) {
            *pp = n->_next;
            n->_next = NULL;
            t->count--;
            return;
        }
    }
}

rc_hnode_t *rc_htab_first(const rc_htab_t *t, uint64_t hash)
{
    rc_hnode_t *n = t->_buckets[hash & t->_mask];

    while (n && n->hash != hash)
        n = n->_next;
    return n;
}

rc_hnode_t *rc_htab_next(const rc_hnode_t *n)
{
    uint64_t h = n->hash;

    for (n = n->_next; n && n->hash != h; n = n->_next)
        ;
    return (rc_hnode_t *)n;
}

rc_hnode_t *rc_htab_iter(const rc_htab_t *t, rc_htab_it_t *it)
{
    rc_hnode_t *n = it->next;

    while (!n && it->bucket <= t->_mask)
        n = t->_buckets[it->bucket++];
    if (n)
        it->next = n->_next;
    return n;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

void rc_hash_key_init(uint64_t key[2], const void *seed)
{
    if (getrandom(key, 2 * sizeof(key[0]), GRND_NONBLOCK) !=
        (ssize_t)(2 * sizeof(key[0]))) {
        key[0] = (uint64_t)(uintptr_t)seed ^ 0x9e3779b97f4a7c15ULL;
        key[1] = (uint64_t)(uintptr_t)&key ^ 0xc2b2ae3d27d4eb4fULL;
    }
}

uint64_t rc_hash_bytes(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
    uint64_t v3 = 0x7465646279746573ULL ^ key[1];
    uint64_t b = (uint64_t)len << 56, m;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        m = 0;
        for (int j = 0; j < 8; j++)
            m |= (uint64_t)p[i + j] << (8 * j);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (int j = 0; i < len; i++, j++)
        b |= (uint64_t)p[i] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

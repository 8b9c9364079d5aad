/* Intrusive chained hash table (STYLE rule 10): the owner embeds an
 * rc_hnode_t, computes the hash (rc_hash_bytes), and compares its own keys
 * while walking a chain. Grows by doubling at load factor 1.
 * SPDX-License-Identifier: MIT */
#ifndef RC_HTAB_H
#define RC_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_hnode {
    struct rc_hnode *_next;
    uint64_t hash;
} rc_hnode_t;

typedef struct rc_htab {
    rc_hnode_t **_buckets;
    size_t _mask;
    size_t count;
} rc_htab_t;

void rc_htab_init(rc_htab_t *t);
/* Frees the bucket array only: the nodes belong to their owners. */
void rc_htab_dispose(rc_htab_t *t);
/* n->hash must be set. */
void rc_htab_insert(rc_htab_t *t, rc_hnode_t *n);
void rc_htab_remove(rc_htab_t *t, rc_hnode_t *n);

/* First node of hash's chain whose hash matches; walk with rc_htab_next. */
rc_hnode_t *rc_htab_first(const rc_htab_t *t, uint64_t hash);
rc_hnode_t *rc_htab_next(const rc_hnode_t *n);

/* Walks every node: start with an iterator set to {0, NULL}, call until
 * NULL. Removing the node just returned is allowed; inserting is not. */
typedef struct rc_htab_it {
    size_t bucket;
    rc_hnode_t *next;
} rc_htab_it_t;
rc_hnode_t *rc_htab_iter(const rc_htab_t *t, rc_htab_it_t *it);

/* A random hash key for a table whose keys others choose (room names,
 * addresses): a fixed key would let them pick colliding keys. If the kernel
 * has no entropy yet, a key derived from seed's address, weaker, beats not
 * starting. */
void rc_hash_key_init(uint64_t key[2], const void *seed);

/* SipHash-1-3 with a 128-bit key: keyed so that clients choosing room names
 * cannot flood one chain. */
uint64_t rc_hash_bytes(const uint64_t key[2], const void *data, size_t len);

#endif /* RC_HTAB_H */

/* Pending sockets per source address (srclimit.h).
 * SPDX-License-Identifier: MIT */
#include "gateway/srclimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

typedef struct src {
    rc_hnode_t node;
    uint8_t addr[9]; /* family byte, then 4 (IPv4) or 8 (IPv6 /64) bytes */
    uint8_t len;
    uint32_t count;
} src_t;

typedef struct pend {
    rc_hnode_t node;
    rc_list_t aged;
    src_t *src;
    int fd;
    uint64_t since_ms;
} pend_t;

void rc_srclimit_init(rc_srclimit_t *t, uint32_t max, uint64_t hold_ms)
{
    memset(t, 0, sizeof(*t));
    t->max = max;
    t->hold_ms = hold_ms;
    rc_hash_key_init(t->key, t);
    rc_htab_init(&t->by_fd);
    rc_htab_init(&t->by_src);
    rc_list_init(&t->aged);
}

static uint64_t fd_hash(const rc_srclimit_t *t, int fd)
{
    return rc_hash_bytes(t->key, &fd, sizeof(fd));
}

static pend_t *find_fd(const rc_srclimit_t *t, int fd)
{
    for (rc_hnode_t *h = rc_htab_first(&t->by_fd, fd_hash(t, fd)); h;
         h = rc_htab_next(h)) {
        pend_t *p = rc_container_of(h, pend_t, node);
        if (p->fd == fd)
            return p;
    }
    return NULL;
}

static void release(rc_srclimit_t *t, pend_t *p)
{
    rc_htab_remove(&t->by_fd, &p->node);
    rc_list_remove(&p->aged);
    t->pending--;
    if (--p->src->count == 0) {
        rc_htab_remove(&t->by_src, &p->src->node);
        free(p->src);
    }
    free(p);
}

void rc_srclimit_dispose(rc_srclimit_t *t)
{
    while (!rc_list_empty(&t->aged))
        release(t, rc_container_of(t->aged.next, pend_t, aged));
    rc_htab_dispose(&t->by_fd);
    rc_htab_dispose(&t->by_src);
}

/* The source of sa: IPv4 whole (also when mapped into IPv6), IPv6 by its
 * /64 (one host gets a /64 and can use every address in it). */
static bool source_of(const struct sockaddr *sa, uint8_t out[9], uint8_t *len)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out[0] = 4;
        memcpy(out + 1, &s4->sin_addr, 4);
        *len = 5;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = s6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            out[0] = 4;
            memcpy(out + 1, b + 12, 4);
            *len = 5;
        } else {
            out[0] = 6;
            memcpy(out + 1, b, 8);
            *len = 9;
        }
        return true;
    }
    return false;
}

static src_t *find_src(const rc_srclimit_t *t, const uint8_t *a, uint8_t len,
                       uint64_t hash)
{
    for (rc_hnode_t *h = rc_htab_first(&t->by_src, hash); h;
         h = rc_htab_next(h)) {
        src_t *s = rc_container_of(h, src_t, node);
        if (s->len == len && memcmp(s->addr, a, len) == 0)
            return s;
    }
    return NULL;
}

bool rc_srclimit_admit(rc_srclimit_t *t, int fd, const struct sockaddr *sa,
                       uint64_t now_ms)
{
    uint8_t a[9], len;
    uint64_t hash;
    src_t *s;
    pend_t *p;

    if (t->max == 0)
        return true;
    /* The fd is new again: whatever held it before is gone. */
    if ((p = find_fd(t, fd)))
        release(t, p);
    while (!rc_list_empty(&t->aged)) {
        p = rc_container_of(t->aged.next, pend_t, aged);
        if (now_ms - p->since_ms < t->hold_ms)
            break;
        release(t, p);
    }
    if (!source_of(sa, a, &len))
        return true;
    hash = rc_hash_bytes(t->key, a, len);
    s = find_src(t, a, len, hash);
    if (s && s->count >= t->max)
        return false;
    if (!s) {
        s = rc_xcalloc(1, sizeof(*s));
        memcpy(s->addr, a, len);
        s->len = len;
        s->node.hash = hash;
        rc_htab_insert(&t->by_src, &s->node);
    }
    s->count++;
    p = rc_xcalloc(1, sizeof(*p));
    p->fd = fd;
    p->src = s;
    p->since_ms = now_ms;
    p->node.hash = fd_hash(t, fd);
    rc_htab_insert(&t->by_fd, &p->node);
    /* Appended: the list stays oldest first. */
    rc_list_push(&t->aged, &p->aged);
    t->pending++;
    return true;
}

void rc_srclimit_done(rc_srclimit_t *t, int fd)
{
    pend_t *p;

    if (t->max == 0 || fd < 0 || !(p = find_fd(t, fd)))
        return;
    release(t, p);
}

uint32_t rc_srclimit_of_fd(const rc_srclimit_t *t, int fd)
{
    pend_t *p = t->max ? find_fd(t, fd) : NULL;
    return p ? p->src->count : 0;
}

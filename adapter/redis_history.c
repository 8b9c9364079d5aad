/* The Redis adapter's reads and writes of a room's durable state, through
 * the function library: history reads for a join (after the room's
 * subscription is confirmed, so nothing falls through the seam; the node's
 * catch-up after a lost subscription reads the same way), durable publish (with
 * WAIT for replicas when configured), and the check of a durable envelope's
 * MAC. SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/mem.h"

static void free_msgs(rc_msg_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rc_msg_unref(msgs[i]);
    free(msgs);
}

/* ----------------------------------------------------------- requests */

rreq_t *rc__redis_req_new(redis_adapter_t *r, rreq_kind_t kind)
{
    rreq_t *q = rc_xcalloc(1, sizeof(*q));

    q->r = r;
    q->kind = (uint8_t)kind;
    q->owed = true;
    rc_list_init(&q->link);
    return q;
}

void rc__redis_req_fail(rreq_t *q, rc_err_t err)
{
    if (!q->owed)
        return;
    q->owed = false;
    rc_list_remove(&q->link);
    switch (q->kind) {
    case REQ_HISTORY:
        if (q->cb.hist)
            q->cb.hist(q->arg, err, 0, false, NULL, 0);
        break;
    case REQ_PUBLISH:
        q->cb.pub(q->arg, err, 0);
        break;
    case REQ_TAKE:
        q->cb.take(q->arg, err, false, NULL, 0);
        break;
    case REQ_SAVE:
        if (q->cb.save)
            q->cb.save(q->arg, err);
        break;
    }
}

void rc__redis_req_free(rreq_t *q)
{
    rroom_t *rm = q->room;
    redis_adapter_t *r = q->r;

    rc_list_remove(&q->link);
    free(q);
    if (rm)
        rc__redis_room_unref(r, rm);
}

void rc__redis_fail_owed(redis_adapter_t *r)
{
    rc_list_t owed;

    /* Detached first: a callback may make or fail other requests. The
     * structs stay with hiredis, whose callbacks free them. */
    rc_list_init(&owed);
    rc__redis_list_move(&owed, &r->owed);
    while (!rc_list_empty(&owed)) {
        rreq_t *q = rc_container_of(owed.next, rreq_t, link);
        rc__redis_req_fail(q, RC_ECLOSED);
    }
}

/* Sends one command for q, routed by key (argv[3], the room's key): q is
 * freed by the last of its callbacks. */
static rc_err_t req_send(redis_adapter_t *r, rreq_t *q, redisCallbackFn *cb,
                         const char *key, int argc, const char **argv,
                         const size_t *lens)
{
    if (rc__redis_cmd_key(r, key, strlen(key), cb, q, argc, argv, lens) !=
        RC_OK)
        return RC_EBACKEND;
    q->hold++;
    if (q->owed && rc_list_empty(&q->link))
        rc_list_push(&r->owed, &q->link);
    return RC_OK;
}

/* A reply (or NULL) for q came back: true when q's callback is still owed
 * (and q is unlinked from the owed list: the caller calls it). */
static bool req_reply(rreq_t *q)
{
    rc__redis_cmd_done(q->r);
    q->hold--;
    return q->owed;
}

/* -------------------------------------------------------------- history */

void rc__redis_fail_list(redis_adapter_t *r, rc_list_t *list)
{
    (void)r;
    while (!rc_list_empty(list)) {
        rreq_t *h = rc_container_of(list->next, rreq_t, link);
        rc_list_remove(&h->link);
        rc__redis_req_fail(h, RC_EBACKEND);
        rc__redis_req_free(h); /* may free its room */
    }
}

bool rc__redis_reply_seq(const redisReply *e, uint64_t *seq)
{
    if (e->type == REDIS_REPLY_INTEGER && e->integer >= 0 &&
        (uint64_t)e->integer <= RC_REDIS_MAX_SEQ) {
        *seq = (uint64_t)e->integer;
        return true;
    }
    return e->type == REDIS_REPLY_STRING &&
           rc__redis_parse_seq(e->str, e->len, seq);
}

bool rc__redis_history_head(const redisReply *rep, uint64_t *latest,
                            uint64_t *epoch)
{
    *latest = *epoch = 0;
    return rep && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
           rc__redis_reply_seq(rep->element[0], latest) &&
           (rep->element[1]->type != REDIS_REPLY_STRING ||
            rc__redis_reply_seq(rep->element[1], epoch));
}

bool rc__redis_history_recovered(uint64_t since, uint64_t latest,
                                 uint64_t epoch, uint64_t first)
{
    /* Everything after since is here when since is the latest, or when the
     * oldest message returned is the very next one; since 0 ("saw nothing
     * yet") is whole when history starts at the epoch's first message. A
     * since of another epoch (lost history) is never recovered. */
    return since == latest || (first && first == since + 1) ||
           (since == 0 && first && first == epoch + 1);
}

static void on_history_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rreq_t *h = pd;
    redis_adapter_t *r = h->r;
    redisReply *rep = reply;
    rroom_t *rm = h->room; /* h holds it: alive until rc__redis_req_free */
    rc_msg_t **msgs = NULL;
    size_t n = 0;
    uint64_t latest = 0, epoch = 0, first = 0;
    bool recovered;

    (void)ac;
    if (!req_reply(h))
        goto out; /* failed already (destroy): nobody to tell */
    if (!rc__redis_history_head(rep, &latest, &epoch)) {
        if (rep && rep->type == REDIS_REPLY_ARRAY)
            r->m_bad_seq++;
        if (rep && rep->type == REDIS_REPLY_ERROR) {
            rc_log(RC_LOG_WARN, "redis_history_error", "room=%s err=\"%s\"",
                   rm->name, rep->str);
            rc__redis_reply_error(r, rep->str);
        }
        rc__redis_req_fail(h, RC_EBACKEND);
        goto out;
    }
    if (rep->elements > 2)
        msgs = rc_xcalloc(rep->elements - 2, sizeof(*msgs));
    for (size_t i = 2; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        uint64_t seq;
        int64_t t_us;
        const char *data;
        size_t dlen;
        rc_msg_t *m;
        if (e->type != REDIS_REPLY_STRING ||
            !rc__redis_parse_entry(e->str, e->len, &seq, &t_us, &data, &dlen)) {
            r->m_bad_seq++;
            continue;
        }
        m = rc__redis_frame(r, rm->name, seq, t_us, data, dlen);
        if (!m)
            continue;
        if (!first)
            first = seq;
        msgs[n++] = m;
    }
    recovered = rc__redis_history_recovered(h->since, latest, epoch, first);
    h->owed = false;
    rc_list_remove(&h->link);
    h->cb.hist(h->arg, RC_OK, latest, h->has_since ? recovered : true, msgs, n);
    free_msgs(msgs, n);
out:
    rc__redis_req_free(h); /* may free rm */
}

void rc__redis_history_issue(redis_adapter_t *r, rreq_t *h)
{
    char since[32], key[RC_KEYS_MAX];
    const char *argv[5] = {"FCALL", "roomcast_history", "1", key, since};
    size_t lens[5];

    /* The room's key (PROTOCOL.md section 5): routable on Cluster. */
    if (rc_keys_room(key, sizeof(key), r->prefix, h->room->name) != RC_OK) {
        rc__redis_req_fail(h, RC_EBACKEND);
        rc__redis_req_free(h);
        return;
    }
    snprintf(since, sizeof(since), "%" PRId64,
             h->has_since ? (int64_t)h->since : (int64_t)-1);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if (req_send(r, h, on_history_reply, key, 5, argv, lens) != RC_OK) {
        rc__redis_req_fail(h, RC_EBACKEND);
        rc__redis_req_free(h);
    }
}

rc_err_t rc__redis_history(rc_adapter_t *ad, const char *room, bool has_since,
                           uint64_t since, rc_adapter_history_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = rc__redis_room_find(r, room, strlen(room), false);
    rreq_t *h;

    if (r->closing || r->state != LINK_UP || !rm)
        return RC_EBACKEND;
    h = rc__redis_req_new(r, REQ_HISTORY);
    h->room = rm;
    rc__redis_room_ref(rm);
    h->has_since = has_since;
    h->since = since;
    h->cb.hist = cb;
    h->arg = arg;
    h->since_ms = uv_now(r->loop);
    /* History is read after the subscription is confirmed, so nothing
     * published in between can fall through the seam. */
    if (rm->state == SUB_ON)
        rc__redis_history_issue(r, h);
    else
        rc_list_push(&rm->waiters, &h->link);
    return RC_OK;
}

/* ----------------------------------------------------------- envelopes */

static void hex(char *out, const unsigned char *d, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
}

bool rc__redis_open_envelope(const char *envkey, const char *room,
                             const char *s, size_t len, uint64_t *seq,
                             int64_t *t_us, const char **data, size_t *dlen,
                             bool *forged)
{
    const char *p1 = memchr(s, '|', len), *p2 = NULL, *p3 = NULL;
    unsigned char d[EVP_MAX_MD_SIZE];
    char inner[2 * 20], want[2 * 20];
    size_t klen = strlen(envkey);
    EVP_MD_CTX *c;
    bool ok;

    *forged = false;
    if (p1)
        p2 = memchr(p1 + 1, '|', len - (size_t)(p1 + 1 - s));
    if (p2)
        p3 = memchr(p2 + 1, '|', len - (size_t)(p2 + 1 - s));
    if (!p3 || (size_t)(p3 - p2 - 1) != RC_REDIS_MAC_HEX || !klen) {
        /* No MAC where one belongs: not from the function library. */
        *forged = true;
        return false;
    }
    /* mac = sha1hex(K || sha1hex(K|room|seq|t_us|data)), as roomcast.lua
     * computes it; the hex digest is what is hashed, as redis.sha1hex
     * returns it. */
    c = EVP_MD_CTX_new();
    if (!c)
        return false;
    ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) &&
         EVP_DigestUpdate(c, envkey, klen) && EVP_DigestUpdate(c, "|", 1) &&
         EVP_DigestUpdate(c, room, strlen(room)) &&
         EVP_DigestUpdate(c, "|", 1) &&
         EVP_DigestUpdate(c, s, (size_t)(p2 - s)) && /* "seq|t_us" */
         EVP_DigestUpdate(c, "|", 1) &&
         EVP_DigestUpdate(c, p3 + 1, len - (size_t)(p3 + 1 - s)) &&
         EVP_DigestFinal_ex(c, d, NULL);
    if (ok) {
        hex(inner, d, 20);
        ok = EVP_DigestInit_ex(c, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(c, envkey, klen) &&
             EVP_DigestUpdate(c, inner, sizeof(inner)) &&
             EVP_DigestFinal_ex(c, d, NULL);
    }
    EVP_MD_CTX_free(c);
    if (!ok)
        return false;
    hex(want, d, 20);
    if (CRYPTO_memcmp(want, p2 + 1, RC_REDIS_MAC_HEX) != 0) {
        *forged = true;
        return false;
    }
    /* Genuine: now the fields (a bad seq from our own function is still
     * refused: nothing above 2^53-1 reaches a client). */
    if (!rc__redis_parse_seq(s, (size_t)(p1 - s), seq) || *seq == 0)
        return false;
    {
        char *end;
        *t_us = strtoll(p1 + 1, &end, 10);
        if (end != p2)
            return false;
    }
    *data = p3 + 1;
    *dlen = len - (size_t)(p3 + 1 - s);
    return true;
}

/* ------------------------------------------------------------ publish */

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rreq_t *p = pd;
    redisReply *rep = reply;
    redis_adapter_t *r = p->r;
    (void)ac;

    req_reply(p);
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 &&
        (uint64_t)rep->integer <= RC_REDIS_MAX_SEQ) {
        p->seq = (uint64_t)rep->integer;
        p->err = RC_OK;
    } else {
        p->err = RC_EBACKEND;
        if (rep && rep->type == REDIS_REPLY_ERROR) {
            rc_log(RC_LOG_WARN, "redis_publish_error", "err=\"%s\"", rep->str);
            rc__redis_reply_error(r, rep->str);
        }
    }
    if (p->hold)
        return; /* WAIT answers next */
    if (p->err != RC_OK)
        r->m_publish_err++;
    if (p->owed) {
        rc_err_t err = p->err;
        uint64_t seq = p->seq;
        p->owed = false;
        rc_list_remove(&p->link);
        p->cb.pub(p->arg, err, seq);
    }
    rc__redis_req_free(p);
}

static void on_wait_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rreq_t *p = pd;
    redisReply *rep = reply;
    redis_adapter_t *r = p->r;
    (void)ac;

    req_reply(p);
    if (p->err == RC_OK && !rep) {
        p->err = RC_EBACKEND; /* the link died: nobody knows */
    } else if (p->err == RC_OK &&
               (rep->type != REDIS_REPLY_INTEGER ||
                rep->integer < (long long)r->wait_replicas)) {
        /* Written on the master, not (yet) on enough replicas: the
         * publisher hears it, the message may still reach clients. */
        r->m_repl_fail++;
        rc_log(RC_LOG_WARN, "redis_wait_replicas", "want=%u got=%lld",
               r->wait_replicas,
               rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1LL);
        p->err = RC_EREPLICA;
    }
    if (p->err != RC_OK)
        r->m_publish_err++;
    if (p->owed) {
        p->owed = false;
        rc_list_remove(&p->link);
        p->cb.pub(p->arg, p->err, p->err == RC_OK ? p->seq : 0);
    }
    rc__redis_req_free(p);
}

rc_err_t rc__redis_publish(rc_adapter_t *ad, const char *room, const char *data,
                           size_t len, rc_adapter_publish_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char key[RC_KEYS_MAX];
    const char *argv[5] = {"FCALL", "roomcast_publish", "1", key, data};
    size_t lens[5] = {5, 16, 1, 0, len};
    rreq_t *p;

    if (r->closing || r->state != LINK_UP)
        return RC_EBACKEND;
    /* The room's key, a real key holding its whole durable state
     * (PROTOCOL.md section 5): Redis Cluster routes by it. */
    if (rc_keys_room(key, sizeof(key), r->prefix, room) != RC_OK)
        return RC_EINVAL;
    lens[3] = strlen(key);
    p = rc__redis_req_new(r, REQ_PUBLISH);
    p->cb.pub = cb;
    p->arg = arg;
    if (req_send(r, p, on_publish_reply, key, 5, argv, lens) != RC_OK) {
        rc_list_remove(&p->link);
        free(p);
        return RC_EBACKEND;
    }
    if (r->wait_replicas) {
        /* Right behind the FCALL on the same link (on Cluster: routed by
         * the same key, to the same master): WAIT counts the replicas that
         * have everything this link wrote so far. */
        char n[16], ms[24];
        const char *wargv[3] = {"WAIT", n, ms};
        size_t wlens[3];
        snprintf(n, sizeof(n), "%u", r->wait_replicas);
        snprintf(ms, sizeof(ms), "%" PRId64, r->wait_timeout_ms);
        wlens[0] = 4;
        wlens[1] = strlen(n);
        wlens[2] = strlen(ms);
        /* Unsent (the link is failing): the FCALL's callback answers. */
        (void)req_send(r, p, on_wait_reply, key, 3, wargv, wlens);
    }
    return RC_OK;
}

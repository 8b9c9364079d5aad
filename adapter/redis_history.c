/* The Redis adapter's reads and writes of a room's durable state, through
 * the function library: history reads for a join (after the room's
 * subscription is confirmed, so nothing falls through the seam), the
 * catch-up of every room after an outage, and durable publish.
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

typedef struct pub_req {
    redis_adapter_t *r;
    rc_adapter_publish_cb cb;
    void *arg;
} pub_req_t;

static void free_msgs(rc_msg_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rc_msg_unref(msgs[i]);
    free(msgs);
}

void rc__redis_fail_waiters(redis_adapter_t *r, rroom_t *rm)
{
    while (!rc_list_empty(&rm->waiters)) {
        hist_req_t *h = rc_container_of(rm->waiters.next, hist_req_t, link);
        rc_list_remove(&h->link);
        if (h->cb)
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        if (h->catchup)
            rm->catching = 0;
        free(h);
    }
    (void)r;
}

void rc__redis_catchup_begin(redis_adapter_t *r, rroom_t *rm)
{
    hist_req_t *h;

    if (rm->catching)
        return;
    h = rc_xcalloc(1, sizeof(*h));
    h->r = r;
    h->room = rm;
    h->catchup = true;
    h->has_since = true;
    /* Members drop what they already have, so starting low is safe;
     * starting high could skip. */
    h->since = rm->last_seq ? rm->last_seq : rm->known_seq;
    rc_list_init(&h->link);
    rm->catching = 1;
    rc_list_push(&rm->waiters, &h->link);
}

static void finish_catchup(redis_adapter_t *r, rroom_t *rm, rc_msg_t **msgs,
                           size_t n)
{
    rm->catching = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->seq > rm->last_seq)
            r->m_recovered++;
        rc__redis_deliver(r, rm, msgs[i]);
    }
    for (uint32_t i = 0; i < rm->nheld; i++)
        rc__redis_deliver(r, rm, rm->held[i]);
    rc__redis_release_held(rm);
}

static void on_history_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    hist_req_t *h = pd;
    redis_adapter_t *r = h->r;
    redisReply *rep = reply;
    rroom_t *rm = h->room;
    rc_msg_t **msgs = NULL;
    size_t n = 0;
    uint64_t latest = 0, epoch = 0, first = 0;
    bool recovered;

    (void)ac;
    rc__redis_cmd_done(r);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        (rep->element[0]->type != REDIS_REPLY_STRING &&
         rep->element[0]->type != REDIS_REPLY_INTEGER)) {
        if (rep && rep->type == REDIS_REPLY_ERROR)
            rc_log(RC_LOG_WARN, "redis_history_error", "room=%s err=\"%s\"",
                   rm->name, rep->str);
        if (h->catchup)
            finish_catchup(r, rm, NULL, 0);
        else
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        goto out;
    }
    latest = rep->element[0]->type == REDIS_REPLY_INTEGER
                 ? (uint64_t)rep->element[0]->integer
                 : strtoull(rep->element[0]->str, NULL, 10);
    if (rep->element[1]->type == REDIS_REPLY_STRING)
        epoch = strtoull(rep->element[1]->str, NULL, 10);
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
            !rc__redis_parse_entry(e->str, e->len, &seq, &t_us, &data, &dlen))
            continue;
        m = rc__redis_frame(r, rm->name, seq, t_us, data, dlen);
        if (!m)
            continue;
        if (!first)
            first = seq;
        msgs[n++] = m;
    }
    /* Everything after since is here when since is the latest, or when the
     * oldest message returned is the very next one; since 0 ("saw nothing
     * yet") is whole when history starts at the epoch's first message. A
     * since of another epoch (lost history) is never recovered. */
    recovered = h->since == latest || (first && first == h->since + 1) ||
                (h->since == 0 && first && first == epoch + 1);
    /* Not last_seq: a message published just before this read may still
     * be on its way on the subscription link, and must not be taken for a
     * duplicate. known_seq only tells a later catch-up where to start. */
    if (latest > rm->known_seq)
        rm->known_seq = latest;
    if (h->catchup)
        finish_catchup(r, rm, msgs, n);
    else
        h->cb(h->arg, RC_OK, latest, h->has_since ? recovered : true, msgs, n);
    free_msgs(msgs, n);
out:
    free(h);
    rc__redis_room_maybe_free(r, rm);
}

void rc__redis_history_issue(redis_adapter_t *r, hist_req_t *h)
{
    char since[32];
    const char *argv[5] = {"FCALL", "roomcast_history", "1", h->room->name,
                           since};
    size_t lens[5];

    snprintf(since, sizeof(since), "%" PRId64,
             h->has_since ? (int64_t)h->since : (int64_t)-1);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    if (rc__redis_cmd(r, on_history_reply, h, 5, argv, lens) != RC_OK) {
        rroom_t *rm = h->room;
        if (h->catchup)
            rm->catching = 0;
        else
            h->cb(h->arg, RC_EBACKEND, 0, false, NULL, 0);
        free(h);
        rc__redis_room_maybe_free(r, rm);
    }
}

rc_err_t rc__redis_history(rc_adapter_t *ad, const char *room, bool has_since,
                           uint64_t since, rc_adapter_history_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    rroom_t *rm = rc__redis_room_find(r, room, strlen(room), false);
    hist_req_t *h;

    if (r->state != LINK_UP || !rm)
        return RC_EBACKEND;
    h = rc_xcalloc(1, sizeof(*h));
    h->r = r;
    h->room = rm;
    h->has_since = has_since;
    h->since = since;
    h->cb = cb;
    h->arg = arg;
    rc_list_init(&h->link);
    /* History is read after the subscription is confirmed, so nothing
     * published in between can fall through the seam. */
    if (rm->state == SUB_ON)
        rc__redis_history_issue(r, h);
    else
        rc_list_push(&rm->waiters, &h->link);
    return RC_OK;
}

/* ------------------------------------------------------------ publish */

static void on_publish_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    pub_req_t *p = pd;
    redisReply *rep = reply;
    (void)ac;

    rc__redis_cmd_done(p->r);
    if (rep && rep->type == REDIS_REPLY_INTEGER) {
        p->cb(p->arg, RC_OK, (uint64_t)rep->integer);
    } else {
        p->r->m_publish_err++;
        if (rep && rep->type == REDIS_REPLY_ERROR)
            rc_log(RC_LOG_WARN, "redis_publish_error", "err=\"%s\"", rep->str);
        p->cb(p->arg, RC_EBACKEND, 0);
    }
    free(p);
}

rc_err_t rc__redis_publish(rc_adapter_t *ad, const char *room, const char *data,
                           size_t len, rc_adapter_publish_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    const char *argv[5] = {"FCALL", "roomcast_publish", "1", room, data};
    size_t lens[5] = {5, 16, 1, strlen(room), len};
    pub_req_t *p;

    if (r->state != LINK_UP)
        return RC_EBACKEND;
    p = rc_xmalloc(sizeof(*p));
    p->r = r;
    p->cb = cb;
    p->arg = arg;
    if (rc__redis_cmd(r, on_publish_reply, p, 5, argv, lens) != RC_OK) {
        free(p);
        return RC_EBACKEND;
    }
    return RC_OK;
}

/* What the Redis adapter keeps for the node as a whole: resume sessions
 * (save a snapshot, take it once through roomcast_resume), the node's
 * registry entry (Pnode:<id>, for `roomcast nodes`), and the node's own
 * control channel (Pctl:<id>, `roomcast drain`).
 * SPDX-License-Identifier: MIT */
#include "adapter/redis_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keys.h"
#include "common/log.h"
#include "common/mem.h"

/* ----------------------------------------------------------- sessions */

static void on_saved(redisAsyncContext *ac, void *reply, void *pd)
{
    rreq_t *q = pd;
    redisReply *rep = reply;
    (void)ac;

    rc__redis_cmd_done(q->r);
    if (q->owed) {
        q->owed = false;
        rc_list_remove(&q->link);
        q->cb.save(q->arg,
                   rep && rep->type != REDIS_REPLY_ERROR ? RC_OK : RC_EBACKEND);
    }
    rc__redis_req_free(q);
}

void rc__redis_session_save(rc_adapter_t *ad, const char *session,
                            const char *json, size_t len, int64_t ttl_ms,
                            rc_adapter_done_cb cb, void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char key[RC_KEYS_MAX], ttl[32];
    const char *argv[5] = {"SET", key, json, "PX", ttl};
    size_t lens[5];
    rreq_t *q = NULL;

    if (rc_keys_session(key, sizeof(key), r->prefix, session) != RC_OK) {
        if (cb)
            cb(arg, RC_ELIMIT);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    lens[0] = 3;
    lens[1] = strlen(key);
    lens[2] = len;
    lens[3] = 2;
    lens[4] = strlen(ttl);
    if (!cb) {
        if (!r->closing)
            (void)rc__redis_cmd_key(r, key, lens[1], rc__redis_on_void_reply,
                                    (void *)"session_save", 5, argv, lens);
        return;
    }
    q = rc__redis_req_new(r, REQ_SAVE);
    q->cb.save = cb;
    q->arg = arg;
    if (r->closing || rc__redis_cmd_key(r, key, lens[1], on_saved, q, 5, argv,
                                        lens) != RC_OK) {
        free(q);
        cb(arg, RC_EBACKEND);
        return;
    }
    rc_list_push(&r->owed, &q->link);
}

static void on_resume_reply(redisAsyncContext *ac, void *reply, void *pd)
{
    rreq_t *q = pd;
    redisReply *rep = reply;
    (void)ac;

    rc__redis_cmd_done(q->r);
    if (!q->owed)
        goto out;
    q->owed = false;
    rc_list_remove(&q->link);
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        q->cb.take(q->arg, RC_EBACKEND, false, NULL, 0);
    else if (rep->type == REDIS_REPLY_NIL)
        q->cb.take(q->arg, RC_OK, true, NULL, 0);
    else if (rep->type == REDIS_REPLY_STRING && rep->len > 0)
        q->cb.take(q->arg, RC_OK, false, rep->str, rep->len);
    else
        q->cb.take(q->arg, RC_OK, false, NULL, 0);
out:
    rc__redis_req_free(q);
}

rc_err_t rc__redis_session_take(rc_adapter_t *ad, const char *session,
                                int64_t ttl_ms, rc_adapter_session_cb cb,
                                void *arg)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char ttl[32], key[RC_KEYS_MAX];
    const char *argv[5] = {"FCALL", "roomcast_resume", "1", session, ttl};
    size_t lens[5];
    rreq_t *q;

    if (r->closing)
        return RC_EBACKEND;
    /* Routed by Psess:{sid}, whose slot is the session id's own. */
    if (rc_keys_session(key, sizeof(key), r->prefix, session) != RC_OK)
        return RC_ELIMIT;
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    q = rc__redis_req_new(r, REQ_TAKE);
    q->cb.take = cb;
    q->arg = arg;
    if (rc__redis_cmd_key(r, key, strlen(key), on_resume_reply, q, 5, argv,
                          lens) != RC_OK) {
        free(q);
        return RC_EBACKEND;
    }
    rc_list_push(&r->owed, &q->link);
    return RC_OK;
}

/* ----------------------------------------------------------- registry */

void rc__redis_announce(rc_adapter_t *ad)
{
    redis_adapter_t *r = (redis_adapter_t *)ad;
    char info[1024], ttl[32];
    size_t n;

    if (r->state != LINK_UP || !r->base.sink.node_info)
        return;
    n = r->base.sink.node_info(r->base.sink.ctx, info, sizeof(info));
    if (!n)
        return;
    snprintf(ttl, sizeof(ttl), "%d", RC_REDIS_REGISTRY_TTL_MS);
    {
        const char *argv[5] = {"SET", r->k_node, info, "PX", ttl};
        size_t lens[5] = {3, strlen(r->k_node), n, 2, strlen(ttl)};
        (void)rc__redis_cmd_key(r, r->k_node, lens[1], rc__redis_on_void_reply,
                                (void *)"registry", 5, argv, lens);
    }
    r->last_registry = uv_now(r->loop);
}

void rc__redis_registry_leave(redis_adapter_t *r)
{
    /* Leave the registry at once instead of waiting for the TTL. */
    if (r->state == LINK_UP && !r->cl) { /* Cluster: rc__redis_cl_close */
        const char *argv[2] = {"DEL", r->k_node};
        size_t lens[2] = {3, strlen(r->k_node)};
        (void)rc__redis_cmd(r, NULL, NULL, 2, argv, lens);
    }
}

/* ---------------------------------------------- this node's channels */

bool rc__redis_node_message(redis_adapter_t *r, const char *ch, size_t chlen,
                            const char *payload, size_t plen)
{
    if (chlen == strlen(r->ch_ctl) && memcmp(ch, r->ch_ctl, chlen) == 0) {
        char cmdb[64];
        snprintf(cmdb, sizeof(cmdb), "%.*s", (int)(plen < 63 ? plen : 63),
                 payload);
        rc_log(RC_LOG_INFO, "redis_control", "cmd=%s", cmdb);
        if (r->base.sink.control)
            r->base.sink.control(r->base.sink.ctx, cmdb);
        return true;
    }
    return false;
}

/* The Redis pub/sub link: one RESP2 connection on a libuv TCP stream of its
 * own that SUBSCRIBEs and SSUBSCRIBEs, and dispatches what comes back itself.
 *
 * Why it exists: hiredis 0.14's async pub/sub dispatcher knows only
 * (p)message and (p)subscribe. An `smessage` or `ssubscribe` reply hits an
 * assert and aborts the process (Debian builds keep asserts); a PING while
 * subscribed (["pong", ""]) is misparsed; and a reply it cannot match is
 * handed to the previous reply's callback. So this module uses hiredis only
 * to encode commands (redisFormatCommandArgv) and to parse replies
 * (redisReader), and does the rest: connect, AUTH, writes, and matching
 * every reply to what we sent.
 *
 * Matching: every command that expects replies (AUTH, (S)SUBSCRIBE,
 * (S)UNSUBSCRIBE, PING) goes on a FIFO. A (un)subscribe of n channels
 * expects n confirmations, one per channel in argument order, or one error
 * for the whole command; a PING expects one pong or one error. An error
 * reply is thus attributed to the command at the head of the FIFO, with its
 * channels and the caller's cookie. `message`/`smessage` pushes never touch
 * the FIFO; an `(s)unsubscribe` that does not match the head is unsolicited
 * (Redis Cluster sends a `sunsubscribe` when a slot leaves the shard). A
 * reply that fits none of these means we lost sync: the link closes.
 *
 * One loop, one thread (STYLE rule 5): every function here is called on
 * the loop's thread. No timeouts: the caller owns liveness (rc_sublink_ping
 * and its own timer) and destroys a link it gave up on.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ADAPTER_SUBLINK_H
#define RC_ADAPTER_SUBLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

typedef struct rc_sublink rc_sublink_t; /* defined in sublink.c */

/* Defaults for the bounds when the config leaves them 0 (STYLE rule 9). */
#define RC_SUBLINK_DEFAULT_MAX_OUTBUF (4u * 1024 * 1024)
#define RC_SUBLINK_DEFAULT_MAX_INBUF (64u * 1024 * 1024)
#define RC_SUBLINK_DEFAULT_MAX_PENDING 65536u

typedef struct rc_sublink_cfg {
    const char *ip;       /* numeric IPv4 or IPv6; borrowed, copied */
    uint16_t port;        /* host order */
    const char *user;     /* NULL: `AUTH password`; borrowed, copied */
    const char *password; /* NULL: no AUTH; borrowed, copied */
    /* Bytes of commands not yet handed to the kernel; past it the link
     * closes (on_close "outbound buffer full"). 0: the default. */
    size_t max_outbuf;
    /* Bytes of one reply still being read (a big message); past it the
     * link closes. 0: the default. */
    size_t max_inbuf;
    /* Commands awaiting replies; past it a call returns RC_ELIMIT and the
     * link stays up. 0: the default. */
    size_t max_pending;
} rc_sublink_cfg_t;

typedef enum rc_sublink_op {
    RC_SUBLINK_SUBSCRIBE = 0,
    RC_SUBLINK_SSUBSCRIBE,
    RC_SUBLINK_UNSUBSCRIBE,
    RC_SUBLINK_SUNSUBSCRIBE,
    RC_SUBLINK_PING,
} rc_sublink_op_t;

/* The command an error reply answered. Everything here is borrowed and
 * valid until on_error returns. */
typedef struct rc_sublink_cmd {
    rc_sublink_op_t op;
    uint64_t cookie;             /* as passed to the call; 0 for PING */
    size_t n;                    /* channels of the command (0 for PING) */
    const char *const *channels; /* n channels, not NUL-terminated */
    const size_t *lens;          /* n lengths */
    size_t confirmed; /* confirmations seen before the error (normally 0) */
} rc_sublink_cmd_t;

/* Every callback gets the ctx given to rc_sublink_create(). Every pointer
 * passed to a callback is borrowed and valid until the callback returns.
 * Any callback may call rc_sublink_destroy() on the link (then no further
 * callback fires) or any other rc_sublink_* function. Each member may be
 * NULL (that event is then ignored). */
typedef struct rc_sublink_cbs {
    /* Connected and, if configured, authenticated. Fires once. */
    void (*on_ready)(void *ctx);
    /* A `message` (sharded false) or `smessage` (sharded true) push. */
    void (*on_message)(void *ctx, const char *channel, size_t channel_len,
                       const char *payload, size_t payload_len, bool sharded);
    /* One per channel of a (s)subscribe: count is Redis' count of
     * subscriptions of that kind after it. */
    void (*on_subscribed)(void *ctx, const char *channel, size_t len,
                          bool sharded, long long count);
    /* One per channel of an (s)unsubscribe we sent (solicited true), or one
     * Redis sent on its own (solicited false: a Cluster slot moved). */
    void (*on_unsubscribed)(void *ctx, const char *channel, size_t len,
                            bool sharded, bool solicited);
    /* The reply to rc_sublink_ping() (`+PONG` or ["pong", ""]). */
    void (*on_pong)(void *ctx);
    /* An error reply (text without the leading '-', e.g. "NOPERM ...") to
     * the command cmd. The link stays up. */
    void (*on_error)(void *ctx, const char *text, size_t len,
                     const rc_sublink_cmd_t *cmd);
    /* The link is down: connect failed, AUTH refused, I/O error, EOF, a
     * protocol error, lost sync, or a bound was hit. Fires at most once,
     * never after rc_sublink_destroy(), and no callback fires after it.
     * The handle stays allocated until rc_sublink_destroy(). */
    void (*on_close)(void *ctx, const char *reason);
} rc_sublink_cbs_t;

/* Starts connecting to cfg->ip:cfg->port on loop (borrowed; must outlive
 * the link's close). cfg and its strings are copied; cbs is copied; ctx is
 * borrowed and handed back to the callbacks. Returns an owned link
 * (rc_sublink_destroy()), or NULL when cfg is invalid (the ip is not
 * numeric, no ip): then no callback ever fires. A failure to connect is
 * reported through on_close, never synchronously. */
rc_sublink_t *rc_sublink_create(uv_loop_t *loop, const rc_sublink_cfg_t *cfg,
                                const rc_sublink_cbs_t *cbs, void *ctx);

/* Reads and dispatches, now, what Redis already wrote to the link and the
 * loop has not read yet (at most RC_SUBLINK_DRAIN_MAX bytes), through the
 * usual callbacks, which may destroy the link. For a caller about to give
 * the link up because another link to the same server died: the messages
 * Redis sent before it went away are not thrown away with the socket. A
 * link not ready, closing or NULL: no-op. */
#define RC_SUBLINK_DRAIN_MAX (4u * 1024 * 1024)
void rc_sublink_drain(rc_sublink_t *l);

/* Closes the link and frees it once libuv is done with its handle. No
 * callback fires after this returns, pending commands are dropped without a
 * callback. Safe inside any of the link's callbacks. NULL is a no-op. */
void rc_sublink_destroy(rc_sublink_t *l);

/* Sends one SUBSCRIBE (sharded: SSUBSCRIBE) of n >= 1 channels: a batch.
 * channels[i] (lens[i] bytes, may hold any byte) and both arrays are
 * borrowed and copied. cookie is the caller's, never read here; it comes
 * back in on_error. May be called before on_ready (the command waits).
 * Returns RC_OK; RC_EINVAL (n == 0); RC_ECLOSED (the link is closing or
 * closed); RC_ELIMIT (max_pending commands wait, or the command would pass
 * max_outbuf: then the link also closes, and on_close follows from the
 * loop); RC_ENOMEM; RC_EIO (the write failed: on_close follows). On any
 * failure the command was not sent. */
RC_MUST_CHECK rc_err_t rc_sublink_subscribe(rc_sublink_t *l,
                                            const char *const *channels,
                                            const size_t *lens, size_t n,
                                            bool sharded, uint64_t cookie);

/* UNSUBSCRIBE (sharded: SUNSUBSCRIBE) of n >= 1 channels: the replies come
 * as on_unsubscribed(solicited true). Same contract as
 * rc_sublink_subscribe(). (No argument-less form: its reply count is not
 * known in advance.) */
RC_MUST_CHECK rc_err_t rc_sublink_unsubscribe(rc_sublink_t *l,
                                              const char *const *channels,
                                              const size_t *lens, size_t n,
                                              bool sharded, uint64_t cookie);

/* PING; the reply comes as on_pong (or on_error). Same errors as above. */
RC_MUST_CHECK rc_err_t rc_sublink_ping(rc_sublink_t *l);

/* Bytes of commands queued in user space (not yet taken by the kernel). */
size_t rc_sublink_queued_bytes(const rc_sublink_t *l);

/* Commands sent and still awaiting their replies (AUTH included). */
size_t rc_sublink_pending(const rc_sublink_t *l);

#endif /* RC_ADAPTER_SUBLINK_H */

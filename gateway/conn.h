/* One client connection's state. The struct is shared by the files of
 * gateway/ (ws.c creates and frees it, hub.c links it into rooms and queues
 * to it, writer.c writes its queue, session.c runs its requests, timers.c
 * tracks its deadlines); nothing outside gateway/ sees it.
 *
 * Its size is paid per client (tens of thousands per node): keep fields
 * small, and put anything rare behind a pointer. 216 bytes now: one more
 * 8 and glibc's chunk for it grows from 224 to 240 bytes.
 * SPDX-License-Identifier: MIT */
#ifndef RC_CONN_H
#define RC_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/list.h"
#include "gateway/outq.h"

struct lws;
struct rc_identity;

typedef enum rc_conn_state {
    RC_CONN_PENDING_AUTH = 0, /* upgraded, waiting for the auth frame */
    RC_CONN_OPEN,             /* authenticated */
    RC_CONN_CLOSING,          /* close requested: no more deliveries */
} rc_conn_state_t;

typedef struct rc_conn {
    struct lws *wsi;        /* borrowed from lws; NULL once lws dropped it */
    rc_outq_t outq;         /* frames waiting to be written */
    rc_list_t members;      /* rc_member.in_conn: the rooms it is in */
    rc_list_t in_server;    /* every conn, for the heartbeat sweep */
    rc_list_t in_timer;     /* pending-auth FIFO */
    rc_list_t ops;          /* requests waiting for the adapter (session.c) */
    struct rc_identity *id; /* owned: rc_identity_destroy() */
    uint64_t session;       /* random id, for logs and welcome */
    int64_t exp_ms;         /* token exp + leeway, loop clock (ms); 0 none */
    char *resume;           /* resume token offered at upgrade, until used;
                               owned */
    unsigned char *rx;      /* inbound reassembly, only while a frame spans
                               several reads; owned */
    uint32_t rx_len;
    uint32_t deadline_ms; /* auth deadline while pending (loop ms, wraps) */
    uint32_t snap_print;  /* fingerprint of its rooms and positions when its
                             snapshot was last refreshed (resume.c); 0 none */
    uint32_t exp_slot;    /* index in the node's expiry heap + 1; 0 out */
    uint32_t last_rx_ms;  /* loop clock (ms, wraps) of the last frame in */
    uint32_t tokens;      /* rate bucket, in thousandths of a frame */
    uint32_t refill_ms;   /* loop clock of the last refill */
    uint32_t strikes;     /* frames refused while the bucket was empty */
    uint32_t nrooms;
    uint32_t flush_slot;     /* index in the node's flush list + 1; 0 out */
    uint16_t close_code;     /* sent when CLOSING reaches WRITEABLE */
    uint8_t state : 2;       /* rc_conn_state_t */
    uint8_t close_sent : 1;  /* our close frame is written */
    uint8_t saved : 1;       /* its session snapshot is stored */
    uint8_t moving : 1;      /* drain: snapshot on its way, no deliveries */
    uint8_t peer_closed : 1; /* the client sent its close: lws answers it */
    uint8_t paced : 1;       /* a replay waits for its queue (session.c) */
    uint8_t resuming : 1;    /* welcome not sent yet: requests wait */
} rc_conn_t;

void rc_conn_init(rc_conn_t *c);
/* Releases the queue and the reassembly buffer; the caller has already
 * left every room (rc_hub_leave_all) and destroyed the identity. */
void rc_conn_dispose(rc_conn_t *c);

/* Token bucket: rate frames/s, burst frames. Returns true when a frame may
 * be handled now (and takes its token). now_ms is the loop clock. */
bool rc_conn_rate_take(rc_conn_t *c, uint32_t now_ms, uint32_t rate,
                       uint32_t burst);

#endif /* RC_CONN_H */

/* Sockets per source address still sending their request head: the bound
 * `max_pending_per_source` (0: off). A socket is admitted at accept,
 * counted against its source (an IPv4 address, an IPv6 /64) until its
 * head is whole, it closes, its fd is reused, or hold_ms passes (lws has
 * closed it by then: timeout_secs_ah_idle); one more from a full source is
 * refused at accept, before it takes a header slot. So one address
 * trickling headers cannot hold every lws header slot while clients from
 * elsewhere wait. No timer: admit() expires the oldest entries itself.
 * SPDX-License-Identifier: MIT */
#ifndef RC_SRCLIMIT_H
#define RC_SRCLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/htab.h"
#include "common/list.h"

typedef struct rc_srclimit {
    uint32_t max;     /* per source; 0: off, nothing recorded */
    uint64_t hold_ms; /* an entry older than this no longer counts */
    uint64_t key[2];  /* hash key, random per process */
    rc_htab_t by_fd;  /* pending sockets */
    rc_htab_t by_src; /* sources with one or more */
    rc_list_t aged;   /* pending sockets, oldest first */
    uint32_t pending; /* entries in by_fd */
} rc_srclimit_t;

void rc_srclimit_init(rc_srclimit_t *t, uint32_t max, uint64_t hold_ms);
void rc_srclimit_dispose(rc_srclimit_t *t);

/* A socket accepted on fd from sa (NULL or not IP: never refused, not
 * counted). False: its source already has max pending; close it. */
bool rc_srclimit_admit(rc_srclimit_t *t, int fd, const struct sockaddr *sa,
                       uint64_t now_ms);
/* fd's head is whole, or fd is closing: it no longer counts. An fd not
 * admitted is a no-op. */
void rc_srclimit_done(rc_srclimit_t *t, int fd);
/* Sockets fd's source has pending (0 when fd is not counted). */
uint32_t rc_srclimit_of_fd(const rc_srclimit_t *t, int fd);

#endif /* RC_SRCLIMIT_H */

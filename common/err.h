/* The one error enum of roomcast: 0 is success, failures are negative.
 * SPDX-License-Identifier: MIT */
#ifndef RC_ERR_H
#define RC_ERR_H

#include <stddef.h>

#define RC_MUST_CHECK __attribute__((warn_unused_result))

/* Recover the struct that embeds a member (intrusive lists, STYLE rule 10). */
#define rc_container_of(ptr, type, member)                                     \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef enum rc_err {
    RC_OK = 0,
    RC_AGAIN = -1,     /* would block: try again when told */
    RC_ENOMEM = -2,    /* a bounded, client-sized allocation failed */
    RC_EINVAL = -3,    /* bad argument or bad input */
    RC_ELIMIT = -4,    /* a named limit was hit */
    RC_EEXIST = -5,    /* already there (join twice) */
    RC_ENOENT = -6,    /* not there (leave a room not joined) */
    RC_EIO = -7,       /* a system call or peer failed */
    RC_ECLOSED = -8,   /* the object is closing */
    RC_EAUTH = -9,     /* authentication refused */
    RC_EFORBID = -10,  /* authenticated, but not allowed */
    RC_EBACKEND = -11, /* the message backend (Redis) failed */
    RC_EREPLICA = -12, /* written, but fewer replicas confirmed than asked */
} rc_err_t;

/* Returns a static string naming err; never NULL. */
const char *rc_err_str(rc_err_t err);

#endif /* RC_ERR_H */

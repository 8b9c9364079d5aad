/* Names of the rc_err_t codes.
 * SPDX-License-Identifier: MIT */
#include "common/err.h"

const char *rc_err_str(rc_err_t err)
{
    switch (err) {
    case RC_OK:
        return "ok";
    case RC_AGAIN:
        return "would block";
    case RC_ENOMEM:
        return "out of memory";
    case RC_EINVAL:
        return "invalid argument";
    case RC_ELIMIT:
        return "limit reached";
    case RC_EEXIST:
        return "already exists";
    case RC_ENOENT:
        return "not found";
    case RC_EIO:
        return "i/o error";
    case RC_ECLOSED:
        return "closed";
    case RC_EAUTH:
        return "unauthorized";
    case RC_EFORBID:
        return "forbidden";
    case RC_EBACKEND:
        return "backend error";
    case RC_EREPLICA:
        return "replication: fewer replicas confirmed than asked";
    }
    return "unknown error";
}

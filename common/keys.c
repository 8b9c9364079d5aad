/* The Redis key and channel names of roomcast (common/keys.h).
 * SPDX-License-Identifier: MIT */
#include "common/keys.h"

#include <stdio.h>
#include <string.h>

/* prefix + head + name + tail into buf, or RC_ELIMIT ("" in buf). */
static rc_err_t build(char *buf, size_t cap, const char *prefix,
                      const char *head, const char *name, const char *tail)
{
    int n;

    if (cap == 0)
        return RC_ELIMIT;
    n = snprintf(buf, cap, "%s%s%s%s", prefix, head, name, tail);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return RC_ELIMIT;
    }
    return RC_OK;
}

rc_err_t rc_keys_room(char *buf, size_t cap, const char *prefix,
                      const char *room)
{
    return build(buf, cap, prefix, "{", room, "}");
}

rc_err_t rc_keys_session(char *buf, size_t cap, const char *prefix,
                         const char *sid)
{
    return build(buf, cap, prefix, "sess:{", sid, "}");
}

rc_err_t rc_keys_node(char *buf, size_t cap, const char *prefix, const char *id)
{
    return build(buf, cap, prefix, "node:", id, "");
}

rc_err_t rc_keys_ctl(char *buf, size_t cap, const char *prefix, const char *id)
{
    return build(buf, cap, prefix, "ctl:", id, "");
}

rc_err_t rc_keys_probe(char *buf, size_t cap, const char *prefix,
                       const char *id)
{
    return build(buf, cap, prefix, "probe:", id, "");
}

rc_err_t rc_keys_registry_pattern(char *buf, size_t cap, const char *prefix)
{
    size_t n = 0;

    for (const char *p = prefix; *p; p++) {
        if (n + 3 > cap)
            goto fail;
        if (strchr("*?[]^-\\", *p))
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + sizeof("node:*") > cap)
        goto fail;
    memcpy(buf + n, "node:*", sizeof("node:*"));
    return RC_OK;
fail:
    if (cap)
        buf[0] = '\0';
    return RC_ELIMIT;
}

const char *rc_keys_room_of(const char *prefix, const char *name, size_t len,
                            size_t *room_len)
{
    size_t pl = strlen(prefix);

    if (len < pl + 3 || memcmp(name, prefix, pl) != 0 || name[pl] != '{' ||
        name[len - 1] != '}')
        return NULL;
    *room_len = len - pl - 2;
    return name + pl + 1;
}

const char *rc_keys_node_id_of(const char *prefix, const char *key)
{
    size_t pl = strlen(prefix);

    if (strncmp(key, prefix, pl) != 0 || strncmp(key + pl, "node:", 5) != 0)
        return NULL;
    return key + pl + 5;
}

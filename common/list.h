/* Intrusive circular doubly linked list (STYLE rule 10). Embed rc_list_t in
 * the owner, recover it with rc_container_of(). A list head is an rc_list_t
 * too; an unlinked node points at itself, so remove is safe twice.
 * SPDX-License-Identifier: MIT */
#ifndef RC_LIST_H
#define RC_LIST_H

#include <stdbool.h>

typedef struct rc_list {
    struct rc_list *next, *prev;
} rc_list_t;

static inline void rc_list_init(rc_list_t *l)
{
    l->next = l->prev = l;
}

static inline bool rc_list_empty(const rc_list_t *l)
{
    return l->next == l;
}

/* Insert n at the tail of head. */
static inline void rc_list_push(rc_list_t *head, rc_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void rc_list_remove(rc_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

#define rc_list_foreach(it, head)                                              \
    for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

/* Safe against removal of `it` inside the body. */
#define rc_list_foreach_safe(it, tmp, head)                                    \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head);              \
         (it) = (tmp), (tmp) = (it)->next)

#endif /* RC_LIST_H */

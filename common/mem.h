/* Allocation with one policy (STYLE rule 12): rc_x* abort on failure and are
 * for fixed-size internal objects; rc_try* may return NULL and are for sizes a
 * client controls, after those sizes were bounded.
 * SPDX-License-Identifier: MIT */
#ifndef RC_MEM_H
#define RC_MEM_H

#include <stddef.h>

/* Never return NULL: log and abort instead. Release with free(). */
void *rc_xmalloc(size_t n);
void *rc_xcalloc(size_t nmemb, size_t size);
void *rc_xrealloc(void *p, size_t n);
char *rc_xstrdup(const char *s);
char *rc_xstrndup(const char *s, size_t n);

/* May return NULL (or an injected failure); release with free(). */
void *rc_trymalloc(size_t n);
void *rc_tryrealloc(void *p, size_t n);

/* Tests only: make the next `after`-th rc_try* call fail (0 disables). */
void rc_mem_fail_after(unsigned after);

#endif /* RC_MEM_H */

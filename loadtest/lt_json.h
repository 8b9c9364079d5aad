/* loadtest/lt_json.h: a tiny streaming JSON writer for the one report
 * object roomcast-load prints (no JSON library needed for output). Keys and
 * strings are written as given: callers pass only plain ASCII names.
 * SPDX-License-Identifier: MIT */
#ifndef LT_JSON_H
#define LT_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LT_JSON_DEPTH 16

typedef struct lt_json {
    FILE *f; /* borrowed */
    int depth;
    bool first[LT_JSON_DEPTH];
} lt_json_t;

void lt_json_init(lt_json_t *j, FILE *f);
/* key may be NULL inside arrays and at the top. */
void lt_json_obj(lt_json_t *j, const char *key);
void lt_json_arr(lt_json_t *j, const char *key);
void lt_json_end(lt_json_t *j, bool is_array);
void lt_json_u64(lt_json_t *j, const char *key, uint64_t v);
void lt_json_i64(lt_json_t *j, const char *key, int64_t v);
void lt_json_dbl(lt_json_t *j, const char *key, double v); /* 3 decimals */
void lt_json_bool(lt_json_t *j, const char *key, bool v);
void lt_json_str(lt_json_t *j, const char *key, const char *v); /* escaped */
void lt_json_null(lt_json_t *j, const char *key);

#endif /* LT_JSON_H */

/* loadtest/lt_json.c: streaming JSON writer (see lt_json.h).
 * SPDX-License-Identifier: MIT */
#include "loadtest/lt_json.h"

#include <inttypes.h>
#include <math.h>

void lt_json_init(lt_json_t *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
}

static void sep(lt_json_t *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key)
        fprintf(j->f, "\"%s\":", key);
}

static void open_(lt_json_t *j, const char *key, char c)
{
    sep(j, key);
    fputc(c, j->f);
    if (j->depth < LT_JSON_DEPTH - 1)
        j->depth++;
    j->first[j->depth] = true;
}

void lt_json_obj(lt_json_t *j, const char *key)
{
    open_(j, key, '{');
}

void lt_json_arr(lt_json_t *j, const char *key)
{
    open_(j, key, '[');
}

void lt_json_end(lt_json_t *j, bool is_array)
{
    fputc(is_array ? ']' : '}', j->f);
    if (j->depth > 0)
        j->depth--;
}

void lt_json_u64(lt_json_t *j, const char *key, uint64_t v)
{
    sep(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void lt_json_i64(lt_json_t *j, const char *key, int64_t v)
{
    sep(j, key);
    fprintf(j->f, "%" PRId64, v);
}

void lt_json_dbl(lt_json_t *j, const char *key, double v)
{
    sep(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.3f", v);
    else
        fputs("null", j->f);
}

void lt_json_bool(lt_json_t *j, const char *key, bool v)
{
    sep(j, key);
    fputs(v ? "true" : "false", j->f);
}

void lt_json_null(lt_json_t *j, const char *key)
{
    sep(j, key);
    fputs("null", j->f);
}

void lt_json_str(lt_json_t *j, const char *key, const char *v)
{
    sep(j, key);
    fputc('"', j->f);
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;

        if (c == '"' || c == '\\')
            fprintf(j->f, "\\%c", c);
        else if (c < 0x20)
            fprintf(j->f, "\\u%04x", c);
        else
            fputc(c, j->f);
    }
    fputc('"', j->f);
}

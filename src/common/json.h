/* JSON: a streaming writer into a struct buf, and a strict parser (RFC 8259) into a
 * small tree. The parser reads untrusted input (API bodies): it bounds nesting depth,
 * rejects invalid UTF-8, lone surrogates, duplicate keys, trailing garbage, and never
 * reads past len. */
#pragma once

#include "common/buf.h"

/* ---- writer ---- */

#define JSON_MAX_DEPTH 64

struct json_writer {
    struct buf *out;       /* borrowed */
    int depth;
    bool first[JSON_MAX_DEPTH]; /* no element written yet at this depth */
    bool after_key;
    int error;             /* first error from buf (-ENOBUFS/-ENOMEM), sticky */
    bool pretty;           /* two-space indentation, for humans */
};

void json_writer_init(struct json_writer *w, struct buf *out, bool pretty);
void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
/* Writes an object key; the next value call writes its value. */
void json_key(struct json_writer *w, const char *key);
void json_string(struct json_writer *w, const char *s);        /* NULL writes null */
void json_string_len(struct json_writer *w, const char *s, size_t len);
void json_int(struct json_writer *w, int64_t v);
void json_uint(struct json_writer *w, uint64_t v);
void json_double(struct json_writer *w, double v);
void json_bool(struct json_writer *w, bool v);
void json_null(struct json_writer *w);
/* Key + value shorthands. */
void json_kv_string(struct json_writer *w, const char *key, const char *s);
void json_kv_int(struct json_writer *w, const char *key, int64_t v);
void json_kv_uint(struct json_writer *w, const char *key, uint64_t v);
void json_kv_bool(struct json_writer *w, const char *key, bool v);
/* Returns w->error (0 when everything fit). */
int json_writer_finish(struct json_writer *w);

/* ---- parser ---- */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
    enum json_type type;
    union {
        bool boolean;
        struct { double value; bool is_integer; int64_t integer; } number;
        struct { char *data; size_t len; } string;     /* NUL-terminated, may hold \u0000 */
        struct { struct json_value **items; size_t n; } array;
        struct { char **keys; struct json_value **values; size_t n; } object;
    };
};

/* Parses text[0..len). On error returns -EINVAL and, if ret_error is not NULL, a
 * static message and the byte offset where it was found. */
int json_parse(const char *text, size_t len, struct json_value **ret,
               const char **ret_error, size_t *ret_offset);
void json_value_free(struct json_value *v);   /* NULL-safe */

/* Lookups on an object (return NULL / false when v is not an object, the key is
 * missing, or the member has another type). */
const struct json_value *json_get(const struct json_value *v, const char *key);
const char *json_get_string(const struct json_value *v, const char *key);
bool json_get_bool(const struct json_value *v, const char *key, bool *ret);
/* Integer members only (no fraction, no exponent outside int64 range). */
bool json_get_int(const struct json_value *v, const char *key, int64_t *ret);

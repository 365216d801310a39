/* JSON: a streaming writer into a struct buf, and a strict parser (RFC 8259) into a
 * small tree. The parser reads untrusted input (API bodies): it bounds nesting depth,
 * rejects invalid UTF-8, lone surrogates, duplicate keys, trailing garbage, and never
 * reads past len. */
#pragma once

#include "common/buf.h"

/* ---- writer ---- */

/* Deepest nesting of arrays and objects, for the writer and the parser alike, so
 * whatever the parser accepts the writer can write back. */
#define JSON_MAX_DEPTH 64

/* Writer state; fill it with json_writer_init, never by hand. Calls that would not
 * form one valid document (a key outside an object, a value without its key in an
 * object, an end that does not match, nesting past JSON_MAX_DEPTH, a second top-level
 * value) write nothing and set error to -EINVAL. */
struct json_writer {
    struct buf *out;       /* borrowed */
    int depth;             /* open arrays and objects */
    bool first[JSON_MAX_DEPTH + 1]; /* no element written yet at this depth (0: top level) */
    uint64_t in_object;    /* bit d-1 set: the container at depth d is an object */
    bool after_key;
    int error;             /* first error from buf (-ENOBUFS/-ENOMEM) or misuse (-EINVAL), sticky */
    bool pretty;           /* two-space indentation, for humans */
};

/* Starts a document written to out (appended after what out already holds). */
void json_writer_init(struct json_writer *w, struct buf *out, bool pretty);
/* Open and close an object / an array. */
void json_object_begin(struct json_writer *w);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w);
void json_array_end(struct json_writer *w);
/* Writes an object key; the next value call writes its value. */
void json_key(struct json_writer *w, const char *key);
/* Strings are escaped as JSON needs (quote, backslash, control characters); valid
 * UTF-8 passes through and each ill-formed UTF-8 sequence becomes U+FFFD. */
void json_string(struct json_writer *w, const char *s);        /* NULL writes null */
void json_string_len(struct json_writer *w, const char *s, size_t len); /* may hold NULs */
/* Numbers. Doubles are written in the "C" locale whatever the process's locale, in
 * the shortest form that reads back as the same double; NaN and infinities as null. */
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
/* Returns w->error (0 when everything fit); -EINVAL too when the document is not
 * complete (no value written, a container left open, a key without its value). */
int json_writer_finish(struct json_writer *w);

/* ---- parser ---- */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

/* A parsed value. The whole tree is owned by its root (see json_value_free). */
struct json_value {
    enum json_type type;
    union {
        bool boolean;
        /* is_integer: written without fraction or exponent and within int64; then
         * integer holds it exactly. value is always the nearest double. */
        struct { double value; bool is_integer; int64_t integer; } number;
        struct { char *data; size_t len; } string;     /* NUL-terminated, may hold \u0000 */
        struct { struct json_value **items; size_t n; } array;
        /* Members in document order; keys are unique and never hold \u0000. */
        struct { char **keys; struct json_value **values; size_t n; } object;
    };
};

/* Parses text[0..len) (need not be NUL-terminated). On error returns -EINVAL (or
 * -ENOMEM) and, if ret_error / ret_offset are not NULL, a static sentence saying what
 * is wrong and the byte offset where it was found. *ret is untouched on failure.
 * Beyond RFC 8259, it refuses: nesting deeper than JSON_MAX_DEPTH, duplicate keys,
 * keys holding \u0000, numbers out of double range or longer than 512 characters. */
int json_parse(const char *text, size_t len, struct json_value **ret,
               const char **ret_error, size_t *ret_offset);
/* Frees a tree returned by json_parse: pass the root only, never a value inside a
 * tree (those are owned by the root). NULL-safe. */
void json_value_free(struct json_value *v);

/* Lookups on an object (return NULL / false when v is not an object, the key is
 * missing, or the member has another type). Results are borrowed from v. */
const struct json_value *json_get(const struct json_value *v, const char *key);
const char *json_get_string(const struct json_value *v, const char *key);
bool json_get_bool(const struct json_value *v, const char *key, bool *ret);
/* Integer members only: number.is_integer (so not 1.0, 1e2, or beyond int64). */
bool json_get_int(const struct json_value *v, const char *key, int64_t *ret);

/* Parses arbitrary bytes; whatever parses is written back (compact and pretty) and
 * must parse again to an equal tree. */
#include <stdio.h>

#include "common/json.h"

static void write_value(struct json_writer *w, const struct json_value *v)
{
    switch (v->type) {
    case JSON_NULL: json_null(w); break;
    case JSON_BOOL: json_bool(w, v->boolean); break;
    case JSON_NUMBER:
        if (v->number.is_integer)
            json_int(w, v->number.integer);
        else
            json_double(w, v->number.value);
        break;
    case JSON_STRING: json_string_len(w, v->string.data, v->string.len); break;
    case JSON_ARRAY:
        json_array_begin(w);
        for (size_t i = 0; i < v->array.n; i++)
            write_value(w, v->array.items[i]);
        json_array_end(w);
        break;
    case JSON_OBJECT:
        json_object_begin(w);
        for (size_t i = 0; i < v->object.n; i++) {
            json_key(w, v->object.keys[i]);
            write_value(w, v->object.values[i]);
        }
        json_object_end(w);
        break;
    }
}

static bool equal(const struct json_value *a, const struct json_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JSON_NULL: return true;
    case JSON_BOOL: return a->boolean == b->boolean;
    case JSON_NUMBER:
        /* A double with no fraction is written without one and reads back as an
         * integer; the value must be the same either way. */
        if (a->number.value != b->number.value)
            return false;
        if (a->number.is_integer && (!b->number.is_integer || a->number.integer != b->number.integer))
            return false;
        return true;
    case JSON_STRING:
        return a->string.len == b->string.len &&
               memcmp(a->string.data, b->string.data, a->string.len) == 0 &&
               b->string.data[b->string.len] == 0;
    case JSON_ARRAY:
        if (a->array.n != b->array.n)
            return false;
        for (size_t i = 0; i < a->array.n; i++)
            if (!equal(a->array.items[i], b->array.items[i]))
                return false;
        return true;
    case JSON_OBJECT:
        if (a->object.n != b->object.n)
            return false;
        for (size_t i = 0; i < a->object.n; i++)
            if (!streq(a->object.keys[i], b->object.keys[i]) ||
                !equal(a->object.values[i], b->object.values[i]) ||
                json_get(b, a->object.keys[i]) != b->object.values[i])
                return false;
        return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_value *v = NULL;
    const char *err = NULL;
    size_t off = SIZE_MAX;

    int r = json_parse((const char *)data, size, &v, &err, &off);
    if (r < 0) {
        if (r != -EINVAL || !err || !*err || off > size || v)
            abort();
        return 0;
    }
    for (int pretty = 0; pretty <= 1; pretty++) {
        struct buf b = BUF_INIT(64u << 20);
        struct json_writer w;
        json_writer_init(&w, &b, pretty);
        write_value(&w, v);
        if (json_writer_finish(&w) != 0)
            abort();
        struct json_value *again = NULL;
        r = json_parse(b.data, b.len, &again, &err, &off);
        if (r < 0) {
            fprintf(stderr, "re-parse failed: %s at %zu\n%s\n", err, off, b.data);
            abort();
        }
        if (!equal(v, again)) {
            fprintf(stderr, "round trip differs:\n%s\n", b.data);
            abort();
        }
        json_value_free(again);
        buf_done(&b);
    }
    json_value_free(v);
    return 0;
}

/* Tests for src/common/json.c: writer output byte for byte, parser acceptance and
 * the exact offset of each refusal, lookups, and write-after-parse round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/json.h"

/* Runs the writer calls in body on a fresh writer and checks the bytes and result. */
#define WRITE_EXPECT(pretty, expect_r, expect_text, body)                                  \
    do {                                                                                   \
        struct buf b_ = BUF_INIT(1 << 20);                                                 \
        struct json_writer w_;                                                             \
        json_writer_init(&w_, &b_, (pretty));                                              \
        struct json_writer *w = &w_;                                                       \
        body;                                                                              \
        assert_int_equal(json_writer_finish(w), (expect_r));                               \
        if ((expect_r) == 0)                                                               \
            assert_string_equal(b_.data ? b_.data : "", (expect_text));                    \
        buf_done(&b_);                                                                     \
    } while (0)

static void test_write_compact(void **state)
{
    WRITE_EXPECT(false, 0, "{\"a\":1,\"b\":[true,false,null,\"x\"],\"c\":{},\"d\":[],\"e\":{\"f\":-2}}", {
        json_object_begin(w);
        json_kv_int(w, "a", 1);
        json_key(w, "b");
        json_array_begin(w);
        json_bool(w, true);
        json_bool(w, false);
        json_null(w);
        json_string(w, "x");
        json_array_end(w);
        json_key(w, "c");
        json_object_begin(w);
        json_object_end(w);
        json_key(w, "d");
        json_array_begin(w);
        json_array_end(w);
        json_key(w, "e");
        json_object_begin(w);
        json_kv_int(w, "f", -2);
        json_object_end(w);
        json_object_end(w);
    });
    WRITE_EXPECT(false, 0, "[-9223372036854775808,9223372036854775807,18446744073709551615,0]", {
        json_array_begin(w);
        json_int(w, INT64_MIN);
        json_int(w, INT64_MAX);
        json_uint(w, UINT64_MAX);
        json_uint(w, 0);
        json_array_end(w);
    });
    WRITE_EXPECT(false, 0, "\"top\"", json_string(w, "top"));
    WRITE_EXPECT(false, 0, "null", json_string(w, NULL));
    WRITE_EXPECT(false, 0, "{\"k\":null,\"t\":true,\"u\":7}", {
        json_object_begin(w);
        json_kv_string(w, "k", NULL);
        json_kv_bool(w, "t", true);
        json_kv_uint(w, "u", 7);
        json_object_end(w);
    });
}

static void test_write_pretty(void **state)
{
    WRITE_EXPECT(true, 0,
                 "{\n"
                 "  \"name\": \"blog\",\n"
                 "  \"domains\": [\n"
                 "    \"a.example\",\n"
                 "    \"b.example\"\n"
                 "  ],\n"
                 "  \"empty\": [],\n"
                 "  \"limits\": {\n"
                 "    \"pids\": 128\n"
                 "  }\n"
                 "}",
                 {
                     json_object_begin(w);
                     json_kv_string(w, "name", "blog");
                     json_key(w, "domains");
                     json_array_begin(w);
                     json_string(w, "a.example");
                     json_string(w, "b.example");
                     json_array_end(w);
                     json_key(w, "empty");
                     json_array_begin(w);
                     json_array_end(w);
                     json_key(w, "limits");
                     json_object_begin(w);
                     json_kv_int(w, "pids", 128);
                     json_object_end(w);
                     json_object_end(w);
                 });
    WRITE_EXPECT(true, 0, "[\n  [\n    {}\n  ]\n]", {
        json_array_begin(w);
        json_array_begin(w);
        json_object_begin(w);
        json_object_end(w);
        json_array_end(w);
        json_array_end(w);
    });
}

static void test_write_escape(void **state)
{
    WRITE_EXPECT(false, 0, "\"q\\\"b\\\\s/\"", json_string(w, "q\"b\\s/"));
    WRITE_EXPECT(false, 0, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\\u0000x\x7f\"",
                 json_string_len(w, "\n\r\t\b\f\x01\x1f\0x\x7f", 10));
    /* Valid UTF-8 of every length passes through untouched. */
    WRITE_EXPECT(false, 0, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"",
                 json_string(w, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
    /* Ill-formed: a stray continuation, 0xFF, a truncated 3-byte sequence (one U+FFFD
     * for its maximal subpart), an overlong '/', an encoded surrogate, a code point
     * past U+10FFFF, and a truncated sequence at the very end. */
    WRITE_EXPECT(false, 0,
                 "\"a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd"
                 "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "f\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                 "g\xef\xbf\xbd\"",
                 json_string(w, "a\x80" "b\xff" "c\xe2\x82" "d\xc0\xaf" "e\xed\xa0\x80"
                                "f\xf4\x90\x80\x80" "g\xf0\x9f\x98"));
    WRITE_EXPECT(false, 0, "{\"\\\"k\\n\":1}", {
        json_object_begin(w);
        json_kv_int(w, "\"k\n", 1);
        json_object_end(w);
    });
}

static void test_write_double(void **state)
{
    WRITE_EXPECT(false, 0, "[0.1,1.5,-2,1e+300,5e-324,0.30000000000000004,null,null,-0]", {
        json_array_begin(w);
        json_double(w, 0.1);
        json_double(w, 1.5);
        json_double(w, -2.0);
        json_double(w, 1e300);
        json_double(w, 5e-324);
        json_double(w, 0.1 + 0.2);
        json_double(w, NAN);
        json_double(w, INFINITY);
        json_double(w, -0.0);
        json_array_end(w);
    });
}

/* A locale whose decimal point is ',' must not leak into JSON. The machine may have
 * no such locale installed, so one is compiled into a temp dir when needed. */
static void test_write_double_locale(void **state)
{
    char dir[] = "/tmp/berth-test-json-XXXXXX";
    bool made = false;
    const char *loc = setlocale(LC_ALL, "de_DE.UTF-8");
    if (!loc && mkdtemp(dir)) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", dir);
        made = true;
        if (system(cmd) == 0) {
            setenv("LOCPATH", dir, 1);
            loc = setlocale(LC_ALL, "de_DE.UTF-8");
        }
    }
    if (!loc || !streq(localeconv()->decimal_point, ",")) {
        const char *must = getenv("BERTH_MUST_WORK");
        if (made) {
            char cmd[256];
            snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
            assert_int_equal(system(cmd), 0);
        }
        if (must && streq(must, "1"))
            fail_msg("no locale with a ',' decimal point could be set up");
        skip();
    }

    WRITE_EXPECT(false, 0, "[1.5,-0.25]", {
        json_array_begin(w);
        json_double(w, 1.5);
        json_double(w, -0.25);
        json_array_end(w);
    });
    struct json_value *v = NULL;
    assert_int_equal(json_parse("2.5", 3, &v, NULL, NULL), 0);
    assert_true(v->number.value == 2.5);
    json_value_free(v);

    setlocale(LC_ALL, "C");
    unsetenv("LOCPATH");
    if (made) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_write_misuse(void **state)
{
    /* A key in an array. */
    WRITE_EXPECT(false, -EINVAL, "", {
        json_array_begin(w);
        json_key(w, "k");
        json_array_end(w);
    });
    /* A value in an object without its key. */
    WRITE_EXPECT(false, -EINVAL, "", {
        json_object_begin(w);
        json_int(w, 1);
        json_object_end(w);
    });
    /* Two keys in a row, and a key left without value. */
    WRITE_EXPECT(false, -EINVAL, "", {
        json_object_begin(w);
        json_key(w, "a");
        json_key(w, "b");
    });
    WRITE_EXPECT(false, -EINVAL, "", {
        json_object_begin(w);
        json_key(w, "a");
        json_object_end(w);
    });
    /* Mismatched and unbalanced ends. */
    WRITE_EXPECT(false, -EINVAL, "", {
        json_object_begin(w);
        json_array_end(w);
    });
    WRITE_EXPECT(false, -EINVAL, "", json_array_end(w));
    WRITE_EXPECT(false, -EINVAL, "", json_array_begin(w));
    /* Two top-level values, or none. */
    WRITE_EXPECT(false, -EINVAL, "", {
        json_int(w, 1);
        json_int(w, 2);
    });
    WRITE_EXPECT(false, -EINVAL, "", {});
    /* JSON_MAX_DEPTH containers nest; one more does not. */
    WRITE_EXPECT(false, 0,
                 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", {
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
            json_array_begin(w);
        for (int i = 0; i < JSON_MAX_DEPTH; i++)
            json_array_end(w);
    });
    WRITE_EXPECT(false, -EINVAL, "", {
        for (int i = 0; i <= JSON_MAX_DEPTH; i++)
            json_array_begin(w);
        for (int i = 0; i <= JSON_MAX_DEPTH; i++)
            json_array_end(w);
    });
}

static void test_write_nobufs(void **state)
{
    struct buf b = BUF_INIT(8);
    struct json_writer w;
    json_writer_init(&w, &b, false);
    json_array_begin(&w);
    json_string(&w, "0123456789");
    json_array_end(&w);
    assert_int_equal(json_writer_finish(&w), -ENOBUFS);
    buf_done(&b);
}

static struct json_value *parse_ok(const char *text)
{
    struct json_value *v = NULL;
    const char *err = NULL;
    size_t off = 0;
    int r = json_parse(text, strlen(text), &v, &err, &off);
    if (r < 0)
        fail_msg("parse of '%s' failed: %s at %zu", text, err, off);
    assert_non_null(v);
    return v;
}

static void test_parse_values(void **state)
{
    struct json_value *v = parse_ok(" {\"s\":\"x\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"t\":true,\"f\":false,"
                                    "\"n\":null,\"a\":[1,[],{}],\"o\":{\"k\":\"v\"}} \r\n\t");
    assert_int_equal(v->type, JSON_OBJECT);
    assert_int_equal(v->object.n, 6);
    assert_string_equal(v->object.keys[0], "s");
    assert_string_equal(v->object.keys[5], "o");
    assert_string_equal(json_get_string(v, "s"), "x\"\\/\b\f\n\r\t");
    bool b = false;
    assert_true(json_get_bool(v, "t", &b));
    assert_true(b);
    assert_true(json_get_bool(v, "f", &b));
    assert_false(b);
    assert_int_equal(json_get(v, "n")->type, JSON_NULL);
    const struct json_value *a = json_get(v, "a");
    assert_int_equal(a->type, JSON_ARRAY);
    assert_int_equal(a->array.n, 3);
    assert_int_equal(a->array.items[1]->type, JSON_ARRAY);
    assert_int_equal(a->array.items[1]->array.n, 0);
    assert_int_equal(a->array.items[2]->type, JSON_OBJECT);
    assert_int_equal(a->array.items[2]->object.n, 0);
    assert_string_equal(json_get_string(json_get(v, "o"), "k"), "v");
    json_value_free(v);

    v = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\xc3\xa9\"");
    assert_int_equal(v->type, JSON_STRING);
    assert_int_equal(v->string.len, 2 + 3 + 4 + 1 + 1 + 2);
    assert_memory_equal(v->string.data, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z\xc3\xa9", 13);
    assert_int_equal(v->string.data[13], 0);
    json_value_free(v);

    v = parse_ok("\"\"");
    assert_int_equal(v->string.len, 0);
    assert_string_equal(v->string.data, "");
    json_value_free(v);

    json_value_free(NULL);
}

static void test_parse_numbers(void **state)
{
    static const struct {
        const char *text;
        bool is_integer;
        int64_t integer;
        double value;
    } cases[] = {
        { "0", true, 0, 0.0 },
        { "-0", true, 0, -0.0 },
        { "42", true, 42, 42.0 },
        { "-17", true, -17, -17.0 },
        { "9223372036854775807", true, INT64_MAX, 9223372036854775807.0 },
        { "-9223372036854775808", true, INT64_MIN, -9223372036854775808.0 },
        { "9223372036854775808", false, 0, 9223372036854775808.0 },
        { "-9223372036854775809", false, 0, -9223372036854775809.0 },
        { "18446744073709551616", false, 0, 18446744073709551616.0 },
        { "1.0", false, 0, 1.0 },
        { "1e2", false, 0, 100.0 },
        { "1E+2", false, 0, 100.0 },
        { "-2.5e-3", false, 0, -0.0025 },
        { "0.1", false, 0, 0.1 },
        { "1e-400", false, 0, 0.0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct json_value *v = parse_ok(cases[i].text);
        assert_int_equal(v->type, JSON_NUMBER);
        if (v->number.is_integer != cases[i].is_integer)
            fail_msg("%s: is_integer %d", cases[i].text, v->number.is_integer);
        if (cases[i].is_integer)
            assert_true(v->number.integer == cases[i].integer);
        assert_true(v->number.value == cases[i].value);
        assert_true(signbit(v->number.value) == signbit(cases[i].value));
        json_value_free(v);
    }

    struct json_value *v = parse_ok("{\"i\":5,\"f\":5.5,\"e\":5e0,\"s\":\"5\",\"big\":1e19}");
    int64_t n = 0;
    assert_true(json_get_int(v, "i", &n));
    assert_int_equal(n, 5);
    n = 99;
    assert_false(json_get_int(v, "f", &n));
    assert_false(json_get_int(v, "e", &n));
    assert_false(json_get_int(v, "s", &n));
    assert_false(json_get_int(v, "big", &n));
    assert_false(json_get_int(v, "missing", &n));
    assert_int_equal(n, 99);
    bool b = true;
    assert_false(json_get_bool(v, "i", &b));
    assert_null(json_get_string(v, "i"));
    assert_null(json_get(v, NULL));
    assert_null(json_get(NULL, "i"));
    assert_null(json_get(json_get(v, "i"), "i"));
    json_value_free(v);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *text;
        size_t offset;
        const char *message; /* NULL: any */
    } cases[] = {
        { "", 0, "the document is empty" },
        { "  \n", 3, "the document is empty" },
        { "nul", 0, NULL },
        { "True", 0, NULL },
        { "[1,]", 3, NULL },
        { "[1 2]", 3, "expected ',' or ']' after an array item" },
        { "{\"a\":1,}", 7, "expected a string as the object key" },
        { "{\"a\" 1}", 5, "expected ':' after an object key" },
        { "{a:1}", 1, "expected a string as the object key" },
        { "{\"a\":1 \"b\":2}", 7, "expected ',' or '}' after an object member" },
        { "[1", 2, "the document ends inside an array" },
        { "{\"a\":1", 6, "the document ends inside an object" },
        { "{\"a\":", 5, "the document ends where a value was expected" },
        { "\"abc", 0, "a string is not terminated" },
        { "\"abc\\\"", 0, "a string is not terminated" },
        { "\"a\tb\"", 2, "a string contains a control character; escape it" },
        { "\"\\x\"", 1, "a string contains an unknown escape" },
        { "\"\\u12\"", 1, "a \\u escape needs four hex digits" },
        { "\"\\u12g4\"", 1, "a \\u escape needs four hex digits" },
        { "\"\\ud800\"", 1, "a \\u escape is a lone surrogate" },
        { "\"\\ud800\\u0041\"", 1, "a \\u escape is a lone surrogate" },
        { "\"x\\udc00\"", 2, "a \\u escape is a lone surrogate" },
        { "\"\\ud83d\\ud83d\"", 1, "a \\u escape is a lone surrogate" },
        { "\"\xff\"", 1, "a string is not valid UTF-8" },
        { "\"ab\xc3\"", 3, "a string is not valid UTF-8" },
        { "\"\xc0\xaf\"", 1, "a string is not valid UTF-8" },
        { "\"\xed\xa0\x80\"", 1, "a string is not valid UTF-8" },
        { "\"\xf4\x90\x80\x80\"", 1, "a string is not valid UTF-8" },
        { "01", 0, "a number has a leading zero" },
        { "-01", 0, "a number has a leading zero" },
        { "-", 0, "a '-' is not followed by a digit" },
        { "-a", 0, "a '-' is not followed by a digit" },
        { "+1", 0, NULL },
        { ".5", 0, NULL },
        { "1.", 2, "a number has no digit after its '.'" },
        { "1.e5", 2, "a number has no digit after its '.'" },
        { "1e", 2, "a number has no digit in its exponent" },
        { "1e+", 3, "a number has no digit in its exponent" },
        { "1e400", 0, "a number is too large" },
        { "-1e400", 0, "a number is too large" },
        { "0x10", 1, "there is more text after the JSON value" },
        { "{} {}", 3, "there is more text after the JSON value" },
        { "1 2", 2, "there is more text after the JSON value" },
        { "\xef\xbb\xbf{}", 0, NULL },
        { "{\"a\":1,\"b\":2,\"a\":3}", 13, "an object has the same key twice" },
        { "[{\"x\":{\"y\":1,\"y\":1}}]", 13, "an object has the same key twice" },
        { "{\"a\\u0000b\":1}", 1, "an object key contains \\u0000" },
        { "NaN", 0, NULL },
        { "[Infinity]", 1, NULL },
        { "'a'", 0, NULL },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct json_value *v = (struct json_value *)0x1;
        const char *err = NULL;
        size_t off = 12345;
        int r = json_parse(cases[i].text, strlen(cases[i].text), &v, &err, &off);
        if (r != -EINVAL)
            fail_msg("'%s': r=%d", cases[i].text, r);
        assert_ptr_equal(v, (struct json_value *)0x1);
        assert_non_null(err);
        if (off != cases[i].offset)
            fail_msg("'%s': offset %zu, expected %zu (%s)", cases[i].text, off, cases[i].offset, err);
        if (cases[i].message && !streq(err, cases[i].message))
            fail_msg("'%s': message '%s'", cases[i].text, err);
    }
    /* The offset and message are optional. */
    struct json_value *v = NULL;
    assert_int_equal(json_parse("[", 1, &v, NULL, NULL), -EINVAL);
    assert_null(v);
}

static void test_parse_depth(void **state)
{
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    struct json_value *v = NULL;
    const char *err = NULL;
    size_t off = 0;

    for (size_t i = 0; i < JSON_MAX_DEPTH; i++) {
        text[i] = '[';
        text[JSON_MAX_DEPTH + i] = ']';
    }
    assert_int_equal(json_parse(text, 2 * JSON_MAX_DEPTH, &v, &err, &off), 0);
    json_value_free(v);

    for (size_t i = 0; i <= JSON_MAX_DEPTH; i++) {
        text[i] = '[';
        text[JSON_MAX_DEPTH + 1 + i] = ']';
    }
    v = NULL;
    assert_int_equal(json_parse(text, 2 * (JSON_MAX_DEPTH + 1), &v, &err, &off), -EINVAL);
    assert_null(v);
    assert_int_equal(off, JSON_MAX_DEPTH);
    assert_string_equal(err, "the document nests deeper than 64 levels");

    /* Objects count too. */
    struct buf b = BUF_INIT(1 << 16);
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        assert_int_equal(buf_append_str(&b, "{\"k\":"), 0);
    assert_int_equal(buf_append_str(&b, "1"), 0);
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        assert_int_equal(buf_append_char(&b, '}'), 0);
    assert_int_equal(json_parse(b.data, b.len, &v, &err, &off), -EINVAL);
    assert_int_equal(off, 5 * JSON_MAX_DEPTH);
    buf_done(&b);
}

/* Big objects take the sorted path of the duplicate check. */
static void test_parse_big_object(void **state)
{
    struct buf b = BUF_INIT(1 << 20);
    struct json_value *v = NULL;
    const char *err = NULL;
    size_t off = 0;

    assert_int_equal(buf_append_char(&b, '{'), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i), 0);
    size_t dup_at = b.len + 1;
    assert_int_equal(buf_append_str(&b, "}"), 0);
    assert_int_equal(json_parse(b.data, b.len, &v, &err, &off), 0);
    assert_int_equal(v->object.n, 1000);
    int64_t n = 0;
    assert_true(json_get_int(v, "k999", &n));
    assert_int_equal(n, 999);
    assert_string_equal(v->object.keys[500], "k500");
    json_value_free(v);

    b.len--;
    assert_int_equal(buf_append_str(&b, ",\"k7\":1,\"k3\":2}"), 0);
    v = NULL;
    assert_int_equal(json_parse(b.data, b.len, &v, &err, &off), -EINVAL);
    assert_null(v);
    assert_string_equal(err, "an object has the same key twice");
    assert_int_equal(off, dup_at);

    /* Many items: the scratch stack and the arena both grow past their first size. */
    buf_clear(&b);
    assert_int_equal(buf_append_char(&b, '['), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(buf_printf(&b, "%s[\"s%d\",%d]", i ? "," : "", i, i), 0);
    assert_int_equal(buf_append_char(&b, ']'), 0);
    assert_int_equal(json_parse(b.data, b.len, &v, &err, &off), 0);
    assert_int_equal(v->array.n, 20000);
    assert_string_equal(v->array.items[19999]->array.items[0]->string.data, "s19999");
    assert_int_equal(v->array.items[12345]->array.items[1]->number.integer, 12345);
    json_value_free(v);
    buf_done(&b);
}

/* The parser reads text[0..len) and not one byte more. */
static void test_parse_len(void **state)
{
    struct json_value *v = NULL;
    const char *err = NULL;
    size_t off = 0;
    char *p = malloc(3);
    assert_non_null(p);

    memcpy(p, "123", 3);
    assert_int_equal(json_parse(p, 2, &v, &err, &off), 0);
    assert_int_equal(v->number.integer, 12);
    json_value_free(v);
    assert_int_equal(json_parse(p, 3, &v, &err, &off), 0);
    assert_int_equal(v->number.integer, 123);
    json_value_free(v);

    memcpy(p, "\"ab", 3);
    assert_int_equal(json_parse(p, 3, &v, &err, &off), -EINVAL);
    memcpy(p, "[tr", 3);
    assert_int_equal(json_parse(p, 3, &v, &err, &off), -EINVAL);
    assert_int_equal(off, 1);
    memcpy(p, "1.5", 3);
    assert_int_equal(json_parse(p, 3, &v, &err, &off), 0);
    assert_true(v->number.value == 1.5);
    json_value_free(v);
    free(p);
}

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

/* Canonical compact documents come back byte for byte; pretty ones parse back. */
static void test_round_trip(void **state)
{
    static const char *docs[] = {
        "{\"name\":\"blog\",\"n\":[1,-2,0.5,1e+300,null,true,false],\"o\":{\"\":{}}}",
        "\"\\u0000\\u001f\xe2\x82\xac\\\"\\\\\"",
        "[[],[[]],{},{\"a\":[{\"b\":\"c\"}]}]",
        "-9223372036854775808",
        "1.2345678901234567e+19",
    };
    for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
        for (int pretty = 0; pretty <= 1; pretty++) {
            struct json_value *v = parse_ok(docs[i]);
            struct buf b = BUF_INIT(1 << 16);
            struct json_writer w;
            json_writer_init(&w, &b, pretty);
            write_value(&w, v);
            assert_int_equal(json_writer_finish(&w), 0);
            if (!pretty)
                assert_string_equal(b.data, docs[i]);
            struct json_value *again = parse_ok(b.data);
            json_value_free(again);
            json_value_free(v);
            buf_done(&b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_compact),
        cmocka_unit_test(test_write_pretty),
        cmocka_unit_test(test_write_escape),
        cmocka_unit_test(test_write_double),
        cmocka_unit_test(test_write_double_locale),
        cmocka_unit_test(test_write_misuse),
        cmocka_unit_test(test_write_nobufs),
        cmocka_unit_test(test_parse_values),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_big_object),
        cmocka_unit_test(test_parse_len),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

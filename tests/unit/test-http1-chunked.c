/* Tests for the chunked decoder (src/http/http1-chunked.c): a table of raw bodies
 * and what they decode to, each fed whole, one byte at a time and in random
 * splits, which must all agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "common/util.h"
#include "http/http1.h"

#define RAW(s) .raw = (s), .len = sizeof(s) - 1
#define OUT(s) .out = (s), .out_len = sizeof(s) - 1
#define EXTRA(s) .extra = (s), .extra_len = sizeof(s) - 1

struct ck_case {
    const char *raw;
    size_t len;
    int want;              /* 1 done, 0 incomplete, -400 */
    const char *out;       /* decoded data (for errors: not checked) */
    size_t out_len;
    const char *extra;     /* bytes after the body */
    size_t extra_len;
};

static const struct ck_case cases[] = {
    { RAW("5\r\nhello\r\n0\r\n\r\n"), 1, OUT("hello"), EXTRA("") },
    { RAW("0\r\n\r\n"), 1, OUT(""), EXTRA("") },
    { RAW("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 1, OUT("hello"), EXTRA("GET / HTTP/1.1\r\n") },
    { RAW("3\r\nabc\r\n2\r\nde\r\n1\r\n\0\r\n0\r\n\r\n"), 1, OUT("abcde\0"), EXTRA("") },
    { RAW("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"), 1,
      OUT("01234567890123456789"), EXTRA("") },
    { RAW("5;name=val;x=\"q s\"\r\nhello\r\n0;last\r\n\r\n"), 1, OUT("hello"), EXTRA("") },
    { RAW("5 ;x\r\nhello\r\n0\t\t;y\r\n\r\n"), 1, OUT("hello"), EXTRA("") },
    { RAW("5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: \r\n\r\nnext"), 1, OUT("hello"), EXTRA("next") },
    { RAW("0005\r\nhello\r\n000\r\n\r\n"), 1, OUT("hello"), EXTRA("") },
    { RAW("0000000000000005\r\nhello\r\n0\r\n\r\n"), 1, OUT("hello"), EXTRA("") },
    { RAW("5\r\nhel"), 0, OUT("hel") },
    { RAW("5\r\nhello\r"), 0, OUT("hello") },
    { RAW("ffffffffffffffff\r\nabc"), 0, OUT("abc") },
    { RAW("5\r\nhello\r\n0\r\nX: 1\r\n"), 0, OUT("hello") },
    { RAW(""), 0, OUT("") },
    /* refused */
    { RAW("00000000000000005\r\nhello\r\n0\r\n\r\n"), -400 },   /* 17 digits */
    { RAW("10000000000000000\r\n"), -400 },                    /* overflow */
    { RAW("5\nhello\r\n0\r\n\r\n"), -400 },                    /* bare LF */
    { RAW("5\r\nhello\n0\r\n\r\n"), -400 },
    { RAW("5\r\nhello\r\n0\n\r\n"), -400 },
    { RAW("5\r\nhello\r\n0\r\n\n"), -400 },
    { RAW("5\r\nhello\r\n0\r\nX: 1\n\r\n"), -400 },
    { RAW("5\rhello\r\n0\r\n\r\n"), -400 },                    /* bare CR */
    { RAW("5\r\nhelloX\r\n0\r\n\r\n"), -400 },                 /* longer than said */
    { RAW("5\r\nhell\r\n0\r\n\r\n"), -400 },                   /* shorter */
    { RAW("\r\nhello\r\n"), -400 },
    { RAW("g\r\n"), -400 },
    { RAW("-5\r\nhello\r\n"), -400 },
    { RAW("+5\r\nhello\r\n"), -400 },
    { RAW("0x5\r\nhello\r\n"), -400 },
    { RAW(" 5\r\nhello\r\n"), -400 },
    { RAW("5 \r\nhello\r\n"), -400 },
    { RAW("5 5\r\nhello\r\n"), -400 },
    { RAW("5;a\x01\r\nhello\r\n"), -400 },
    { RAW("5;a\nhello\r\n"), -400 },
    { RAW("5\r\nhello\r\n0\r\nX: 1\r\n 2\r\n\r\n"), -400 },    /* obs-fold in trailers */
    { RAW("5\r\nhello\r\n0\r\nX : 1\r\n\r\n"), -400 },
    { RAW("5\r\nhello\r\n0\r\nX: \x7f\r\n\r\n"), -400 },
    { RAW("5\r\nhello\r\n0\r\n: 1\r\n\r\n"), -400 },
};

struct result {
    int r;
    char out[8192];
    size_t out_len;
    char extra[8192];
    size_t extra_len;
};

/* Feeds raw cut at the given points, as a connection would: each piece lands in
 * its own buffer, is decoded in place, and what follows the body is collected. */
static void feed(const char *raw, size_t len, const size_t *cuts, size_t n_cuts, struct result *res)
{
    struct http1_chunked c;
    size_t from = 0;

    http1_chunked_init(&c);
    memset(res, 0, sizeof(*res));
    res->r = HTTP1_INCOMPLETE;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t upto = k < n_cuts ? cuts[k] : len;
        if (upto < from)
            continue;
        size_t n = upto - from, extra = 7777;
        char *piece = malloc(n + 1);
        assert_non_null(piece);
        memcpy(piece, raw + from, n);
        if (res->r == 1) {
            /* already finished: the rest is the next message's */
            memcpy(res->extra + res->extra_len, piece, n);
            res->extra_len += n;
        } else {
            int r = http1_chunked_decode(&c, piece, &n, &extra);
            if (r < 0) {
                res->r = r;
                free(piece);
                return;
            }
            assert_true(n <= upto - from);
            memcpy(res->out + res->out_len, piece, n);
            res->out_len += n;
            if (r == 1) {
                memcpy(res->extra + res->extra_len, piece + n, extra);
                res->extra_len += extra;
            } else
                assert_int_equal(extra, 0);
            res->r = r;
        }
        free(piece);
        from = upto;
    }
    assert_int_equal(c.total, res->out_len);
}

static void check(const struct ck_case *t, const struct result *res)
{
    assert_int_equal(res->r, t->want);
    if (t->want < 0)
        return;
    assert_int_equal(res->out_len, t->out_len);
    assert_memory_equal(res->out, t->out, t->out_len);
    assert_int_equal(res->extra_len, t->extra_len);
    if (t->extra_len)
        assert_memory_equal(res->extra, t->extra, t->extra_len);
}

static struct result whole, split;

static void test_chunked_table(void **state)
{
    size_t cuts[512];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct ck_case *t = &cases[i];
        print_message("case %zu\n", i);
        feed(t->raw, t->len, NULL, 0, &whole);
        check(t, &whole);
        /* one byte at a time */
        for (size_t k = 0; k < t->len; k++)
            cuts[k] = k;
        feed(t->raw, t->len, cuts, t->len, &split);
        check(t, &split);
    }
}

static void test_chunked_random_splits(void **state)
{
    size_t cuts[16];
    srand(4242);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct ck_case *t = &cases[i];
        for (int round = 0; round < 100; round++) {
            size_t n = (size_t)rand() % ARRAY_SIZE(cuts);
            size_t at = 0;
            for (size_t k = 0; k < n; k++) {
                at += (size_t)rand() % (t->len / 4 + 2);
                cuts[k] = MIN(at, t->len);
            }
            feed(t->raw, t->len, cuts, n, &split);
            check(t, &split);
        }
    }
}

/* A large body with random chunk sizes, extensions and trailers, in random splits. */
static void test_chunked_generated(void **state)
{
    static char raw[200000], data[100000];
    size_t len = 0, dlen = 0, cuts[64];
    srand(99);
    while (dlen < 90000) {
        size_t n = (size_t)rand() % 3000 + 1;
        len += (size_t)sprintf(raw + len, rand() % 2 ? "%zx\r\n" : "%zX;e=1\r\n", n);
        for (size_t k = 0; k < n; k++)
            data[dlen + k] = raw[len + k] = (char)rand();
        len += n;
        dlen += n;
        memcpy(raw + len, "\r\n", 2);
        len += 2;
    }
    len += (size_t)sprintf(raw + len, "0\r\nA: b\r\n\r\nNEXT");
    for (int round = 0; round < 20; round++) {
        size_t n = ARRAY_SIZE(cuts), at = 0;
        for (size_t k = 0; k < n; k++) {
            at += (size_t)rand() % 8000;
            cuts[k] = MIN(at, len);
        }
        struct http1_chunked c;
        size_t from = 0, got = 0;
        char *out = malloc(dlen);
        http1_chunked_init(&c);
        int last = 0;
        for (size_t k = 0; k <= n && last != 1; k++) {
            size_t upto = k < n ? cuts[k] : len, m = upto - from, extra;
            char *piece = malloc(m + 1);
            memcpy(piece, raw + from, m);
            last = http1_chunked_decode(&c, piece, &m, &extra);
            assert_true(last >= 0);
            memcpy(out + got, piece, m);
            got += m;
            if (last == 1) {
                /* the body ends 4 bytes before the end of raw: "NEXT" follows */
                assert_int_equal(extra, upto - (len - 4));
                assert_memory_equal(piece + m, raw + len - 4, extra);
            }
            free(piece);
            from = upto;
        }
        assert_int_equal(last, 1);
        assert_int_equal(got, dlen);
        assert_memory_equal(out, data, dlen);
        free(out);
    }
}

static void test_chunked_after_done_and_limits(void **state)
{
    struct http1_chunked c;
    char buf[8192];
    size_t n, extra;

    http1_chunked_init(&c);
    memcpy(buf, "0\r\n\r\n", 5);
    n = 5;
    assert_int_equal(http1_chunked_decode(&c, buf, &n, &extra), 1);
    memcpy(buf, "abc", 3);
    n = 3;
    assert_int_equal(http1_chunked_decode(&c, buf, &n, &extra), 1);
    assert_int_equal(n, 0);
    assert_int_equal(extra, 3);

    /* extensions and trailers share one budget */
    http1_chunked_init(&c);
    n = (size_t)sprintf(buf, "1;");
    memset(buf + n, 'x', HTTP1_CHUNKED_MAX_EXTRA - 1);
    n += HTTP1_CHUNKED_MAX_EXTRA - 1;
    memcpy(buf + n, "\r\nA\r\n", 5);
    n += 5;
    assert_int_equal(http1_chunked_decode(&c, buf, &n, &extra), HTTP1_INCOMPLETE);
    assert_int_equal(n, 1);
    memcpy(buf, "0;y\r\n", 5);
    n = 5;
    assert_int_equal(http1_chunked_decode(&c, buf, &n, &extra), -400);

    http1_chunked_init(&c);
    n = (size_t)sprintf(buf, "0\r\nX: ");
    memset(buf + n, 'v', HTTP1_CHUNKED_MAX_EXTRA);
    n += HTTP1_CHUNKED_MAX_EXTRA;
    assert_int_equal(http1_chunked_decode(&c, buf, &n, &extra), -400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_random_splits),
        cmocka_unit_test(test_chunked_generated),
        cmocka_unit_test(test_chunked_after_done_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

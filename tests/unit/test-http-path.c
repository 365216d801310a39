/* Tests for http_path_normalize (src/http/http-path.c): a table of request paths
 * and what the file server must see, or -EINVAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "common/util.h"
#include "http/http1.h"

struct path_case {
    const char *in;
    size_t len;       /* 0: strlen(in) */
    int want;
    const char *out;
};

static const struct path_case cases[] = {
    { "/", 0, 0, "/" },
    { "/index.html", 0, 0, "/index.html" },
    { "/a/b/c", 0, 0, "/a/b/c" },
    { "/a/", 0, 0, "/a/" },
    { "//", 0, 0, "/" },
    { "/a//b///c", 0, 0, "/a/b/c" },
    { "/a//", 0, 0, "/a/" },
    { "/./", 0, 0, "/" },
    { "/.", 0, 0, "/" },
    { "/a/./b", 0, 0, "/a/b" },
    { "/a/.", 0, 0, "/a/" },
    { "/a/../b", 0, 0, "/b" },
    { "/a/b/..", 0, 0, "/a/" },
    { "/a/b/../", 0, 0, "/a/" },
    { "/a/..", 0, 0, "/" },
    { "/a/b/../../c", 0, 0, "/c" },
    { "/a/.../b", 0, 0, "/a/.../b" },
    { "/a/..b/.c/", 0, 0, "/a/..b/.c/" },
    { "/a%20b", 0, 0, "/a b" },
    { "/%41%42%63", 0, 0, "/ABc" },
    { "/caf%C3%A9", 0, 0, "/caf\xc3\xa9" },
    { "/%25", 0, 0, "/%" },
    { "/%2541", 0, 0, "/%41" },          /* decoded once, not twice */
    { "/a/%2e%2E/b", 0, 0, "/b" },       /* encoded dots are dots */
    { "/a/%2e/b", 0, 0, "/a/b" },
    { "/a?b", 0, 0, "/a?b" },            /* the query is the caller's business */
    /* refused */
    { "", 0, -EINVAL, NULL },
    { "a/b", 0, -EINVAL, NULL },
    { "%2Fa", 0, -EINVAL, NULL },
    { "/a%2Fb", 0, -EINVAL, NULL },
    { "/a%2fb", 0, -EINVAL, NULL },
    { "/a%00b", 0, -EINVAL, NULL },
    { "/a\0b", 4, -EINVAL, NULL },
    { "/a%", 0, -EINVAL, NULL },
    { "/a%4", 0, -EINVAL, NULL },
    { "/a%4g", 0, -EINVAL, NULL },
    { "/a%g4", 0, -EINVAL, NULL },
    { "/a%%41", 0, -EINVAL, NULL },
    { "/..", 0, -EINVAL, NULL },
    { "/../a", 0, -EINVAL, NULL },
    { "/a/../..", 0, -EINVAL, NULL },
    { "/a/../../b", 0, -EINVAL, NULL },
    { "/./..", 0, -EINVAL, NULL },
    { "//..", 0, -EINVAL, NULL },
    { "/%2e%2e/etc/passwd", 0, -EINVAL, NULL },
    { "/a/%2e%2e/%2e%2e/etc", 0, -EINVAL, NULL },
};

static void test_path_table(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct path_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->in), out_len = 12345;
        char *out = malloc(len + 1);   /* the smallest size allowed */
        assert_non_null(out);
        print_message("path case %zu\n", i);
        int r = http_path_normalize(c->in, len, out, len + 1, &out_len);
        assert_int_equal(r, c->want);
        if (r == 0) {
            assert_string_equal(out, c->out);
            assert_int_equal(out_len, strlen(c->out));
        } else
            assert_int_equal(out_len, 12345);
        free(out);
    }
}

static void test_path_outsize(void **state)
{
    char out[8];
    size_t n;
    assert_int_equal(http_path_normalize("/abcdefg", 8, out, 8, &n), -ENOBUFS);
    assert_int_equal(http_path_normalize("/abcdef", 7, out, 8, &n), 0);
    assert_string_equal(out, "/abcdef");
}

static void test_segment_decode(void **state)
{
    static const struct { const char *in, *out; } ok[] = {
        { "SHA256%3Aab-_", "SHA256:ab-_" }, { "al%69ces", "alices" }, { "..", ".." }, { "%2e%2E", ".." },
        { "", "" }, { "a%20b", "a b" },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", ok[i].in);
        assert_int_equal(http_segment_decode(buf), 0);
        assert_string_equal(buf, ok[i].out);
    }
    static const char *const bad[] = { "a%2Fb", "a%2f", "x%00y", "%", "%4", "%G1", "ab%" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", bad[i]);
        if (http_segment_decode(buf) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_table),
        cmocka_unit_test(test_path_outsize),
        cmocka_unit_test(test_segment_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

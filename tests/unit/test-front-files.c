/* Tests for src/front/files.c and mime.c: byte ranges, validators,
 * Accept-Encoding, dot segments, MIME types, and the owner-checked open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>

#include "common/fs.h"
#include "front/front-internal.h"

static int range(const char *v, uint64_t size, uint64_t *a, uint64_t *b)
{
    return front_range_parse(v, strlen(v), size, a, b);
}

static void test_range(void **state)
{
    uint64_t a, b;
    assert_int_equal(range("bytes=0-9", 100, &a, &b), 1);
    assert_true(a == 0 && b == 9);
    assert_int_equal(range("bytes=90-", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(range("bytes=90-200", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(range("bytes=-10", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(range("bytes=-1000", 100, &a, &b), 1);
    assert_true(a == 0 && b == 99);
    assert_int_equal(range("Bytes=5-5", 100, &a, &b), 1);
    assert_true(a == 5 && b == 5);
    assert_int_equal(range("bytes=100-", 100, &a, &b), -416);
    assert_int_equal(range("bytes=-0", 100, &a, &b), -416);
    assert_int_equal(range("bytes=0-0", 0, &a, &b), -416);
    /* Ignored: serve the whole file. */
    assert_int_equal(range("bytes=5-4", 100, &a, &b), 0);
    assert_int_equal(range("bytes=0-1,3-4", 100, &a, &b), 0);
    assert_int_equal(range("items=0-1", 100, &a, &b), 0);
    assert_int_equal(range("bytes=a-b", 100, &a, &b), 0);
    assert_int_equal(range("bytes=", 100, &a, &b), 0);
    assert_int_equal(range("bytes=-", 100, &a, &b), 0);
    assert_int_equal(range("bytes=99999999999999999999999-", 100, &a, &b), 0);
}

static void test_etag(void **state)
{
    struct stat st = { .st_size = 255 };
    st.st_mtim.tv_sec = 0x6554;
    char e[48];
    front_etag_format(&st, e, sizeof(e));
    assert_string_equal(e, "\"6554-ff\"");
#define M(v) front_etag_match(v, strlen(v), e, false)
#define S(v) front_etag_match(v, strlen(v), e, true)
    assert_true(M("\"6554-ff\""));
    assert_true(M("W/\"6554-ff\""));
    assert_true(S("\"6554-ff\""));
    assert_true(S("W/\"x\", \"6554-ff\""));
    assert_true(S("*"));
    assert_false(S("W/\"6554-ff\""));   /* a weak tag never matches strongly */
    assert_true(M("\"a\", \"6554-ff\""));
    assert_true(M("*"));
    assert_false(M("\"6554-fe\""));
    assert_false(M(""));
    assert_false(M("\"6554-ff"));
#undef M
#undef S
}

static void test_accept_encoding(void **state)
{
#define A(v, c) front_accepts_encoding(v, strlen(v), c)
    assert_true(A("gzip, deflate, br", "br"));
    assert_true(A("gzip, deflate, br", "gzip"));
    assert_false(A("gzip, deflate", "br"));
    assert_false(A("br;q=0, gzip", "br"));
    assert_false(A("br; q=0.000", "br"));
    assert_true(A("br;q=0.5", "br"));
    assert_true(A("*", "gzip"));
    assert_false(A("*, gzip;q=0", "gzip"));
    assert_false(A("gzipx", "gzip"));
    assert_true(A("GZIP", "gzip"));
    assert_false(A("", "gzip"));
#undef A
}

static void test_dot_segments(void **state)
{
#define D(p) front_path_has_dot_segment(p, strlen(p))
    assert_true(D("/.env"));
    assert_true(D("/a/.git/config"));
    assert_true(D("/.well-known/x"));
    assert_false(D("/a.b/c.d"));
    assert_false(D("/"));
    assert_false(D("/file."));
#undef D
}

static void test_mime(void **state)
{
#define T(p) front_mime_type(p, strlen(p))
    assert_string_equal(T("/index.html"), "text/html; charset=utf-8");
    assert_string_equal(T("/A.CSS"), "text/css; charset=utf-8");
    assert_string_equal(T("/x.js"), "text/javascript; charset=utf-8");
    assert_string_equal(T("/img.webp"), "image/webp");
    assert_string_equal(T("/font.woff2"), "font/woff2");
    assert_string_equal(T("/noext"), "application/octet-stream");
    assert_string_equal(T("/dir.d/noext"), "application/octet-stream");
    assert_string_equal(T("/x.unknownext"), "application/octet-stream");
    assert_string_equal(T("/x."), "application/octet-stream");
    assert_true(front_mime_compressible(T("/a.svg")));
    assert_false(front_mime_compressible(T("/a.png")));
#undef T
}

/* A tree with symlinks of every kind, opened as root: the owner rule must hold
 * whoever runs it, so owners are set explicitly when we can. */
static void test_open_owner(void **state)
{
    char tmpl[] = "/tmp/test-front-files-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char p[512];
    bool root = getuid() == 0;
#define PATH(rel) (snprintf(p, sizeof(p), "%s/%s", tmpl, rel), p)
    assert_int_equal(mkdir_p(PATH("site/public/dir"), 0755), 0);
    assert_int_equal(mkdir_p(PATH("other"), 0755), 0);
    assert_int_equal(write_file_atomic(PATH("site/public/file"), "F", 1, 0644), 0);
    assert_int_equal(write_file_atomic(PATH("site/public/dir/inner"), "I", 1, 0644), 0);
    assert_int_equal(write_file_atomic(PATH("other/secret"), "S", 1, 0644), 0);
    assert_int_equal(symlink("file", PATH("site/public/ok")), 0);
    assert_int_equal(symlink("dir", PATH("site/public/dirlink")), 0);
    assert_int_equal(symlink("../../other/secret", PATH("site/public/escape")), 0);
    assert_int_equal(symlink("/etc/passwd", PATH("site/public/abs")), 0);
    assert_int_equal(symlink("loop", PATH("site/public/loop")), 0);
    assert_int_equal(symlink("dir/../file", PATH("site/public/dotdot")), 0);
    if (root) {
        assert_int_equal(write_file_atomic(PATH("site/public/foreign"), "X", 1, 0644), 0);
        assert_int_equal(chown(p, 4242, 4242), 0);
        assert_int_equal(symlink("foreign", PATH("site/public/foreignlink")), 0);
    }
    int rootfd = open(PATH("site/public"), O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(rootfd >= 0);
    int fd;
    char c;
    assert_int_equal(front_open_beneath_owner(rootfd, "file", O_RDONLY, &fd), 0);
    close(fd);
    assert_int_equal(front_open_beneath_owner(rootfd, "ok", O_RDONLY, &fd), 0);
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'F');
    close(fd);
    assert_int_equal(front_open_beneath_owner(rootfd, "dirlink/inner", O_RDONLY, &fd), 0);
    assert_int_equal(read(fd, &c, 1), 1);
    assert_int_equal(c, 'I');
    close(fd);
    assert_int_equal(front_open_beneath_owner(rootfd, "dotdot", O_RDONLY, &fd), 0);
    close(fd);
    assert_int_equal(front_open_beneath_owner(rootfd, "", O_RDONLY, &fd), 0);
    close(fd);
    assert_int_equal(front_open_beneath_owner(rootfd, "escape", O_RDONLY, &fd), -EACCES);
    assert_int_equal(front_open_beneath_owner(rootfd, "abs", O_RDONLY, &fd), -EACCES);
    assert_int_equal(front_open_beneath_owner(rootfd, "loop", O_RDONLY, &fd), -ELOOP);
    assert_int_equal(front_open_beneath_owner(rootfd, "missing", O_RDONLY, &fd), -ENOENT);
    assert_int_equal(front_open_beneath_owner(rootfd, "../other/secret", O_RDONLY, &fd), -EACCES);
    if (root)
        assert_int_equal(front_open_beneath_owner(rootfd, "foreignlink", O_RDONLY, &fd), -EACCES);
    close(rootfd);
    assert_int_equal(rm_rf(tmpl), 0);
#undef PATH
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_accept_encoding),
        cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_open_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

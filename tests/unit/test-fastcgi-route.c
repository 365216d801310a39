/* Tests for fastcgi_route_resolve (src/fastcgi/fastcgi-route.c) against a temp
 * public directory: what runs, what is served statically, and what is a 404. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/util.h"
#include "fastcgi/fastcgi.h"

static char tmpdir[256];
static int public_fd = -1;

static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/public/%s", tmpdir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    assert_int_equal(mkdir_p(path, 0755), 0);
    *slash = '/';
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void mkdir_in(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/public/%s", tmpdir, rel);
    assert_int_equal(mkdir_p(path, 0755), 0);
}

static void link_in(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/public/%s", tmpdir, rel);
    assert_int_equal(symlink(target, path), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/berth-test-route-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    put("index.php", "<?php front controller");
    put("a.php", "<?php a");
    put("image.png", "PNG<?php evil");
    put("style.css", "body{}");
    put("blog/index.php", "<?php blog");
    put("docs/index.html", "<p>docs");
    put("dir.php/inner.php", "<?php inner");
    put("dir.php/file.txt", "text");
    put(".env", "SECRET=1");
    put(".git/config", "[core]");
    put("sub/.hidden.php", "<?php hidden");
    mkdir_in("empty");
    char outside[512];
    snprintf(outside, sizeof(outside), "%s/private/config.php", tmpdir);
    char priv[512];
    snprintf(priv, sizeof(priv), "%s/private", tmpdir);
    assert_int_equal(mkdir_p(priv, 0755), 0);
    FILE *f = fopen(outside, "we");
    assert_non_null(f);
    fputs("<?php secret", f);
    fclose(f);
    link_in("../private/config.php", "out.php");
    link_in(outside, "abs.php");
    link_in("../private", "privdir");
    link_in("a.php", "alias.php");
    link_in("nowhere.php", "dangling.php");
    char pub[512];
    snprintf(pub, sizeof(pub), "%s/public", tmpdir);
    public_fd = open(pub, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(public_fd >= 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(public_fd);
    rm_rf(tmpdir);
    return 0;
}

struct route_case {
    const char *path;
    bool front_controller;
    enum fastcgi_route_kind kind;
    const char *script;      /* SCRIPT only */
    const char *path_info;
    bool fallback;
};

#define NF FASTCGI_ROUTE_NOT_FOUND
#define ST FASTCGI_ROUTE_STATIC
#define SC FASTCGI_ROUTE_SCRIPT

static const struct route_case cases[] = {
    { "/a.php", true, SC, "/a.php", "" },
    { "/a.php/b/c", true, SC, "/a.php", "/b/c" },
    { "/a.php/", true, SC, "/a.php", "/" },
    { "/alias.php", true, SC, "/alias.php", "" },          /* symlink staying beneath */
    { "/", true, SC, "/index.php", "" },
    { "/index.php", true, SC, "/index.php", "" },
    { "/blog/", true, SC, "/blog/index.php", "" },
    { "/blog", true, ST },                                  /* static code redirects to /blog/ */
    { "/docs/", true, ST },
    { "/style.css", true, ST },
    { "/image.png", true, ST },
    { "/dir.php/inner.php", true, SC, "/dir.php/inner.php", "" },
    { "/dir.php/inner.php/x", true, SC, "/dir.php/inner.php", "/x" },
    { "/dir.php/file.txt", true, ST },
    /* pretty URLs: the front controller, with PATH_INFO empty */
    { "/2024/hello/", true, SC, "/index.php", "", true },
    { "/2024/hello", true, SC, "/index.php", "", true },
    { "/empty/", true, SC, "/index.php", "", true },
    { "/missing.css", true, SC, "/index.php", "", true },
    { "/image.png/x", true, SC, "/index.php", "", true },
    { "/2024/hello/", false, NF },
    /* .php that does not exist: 404, never another file */
    { "/missing.php", true, NF },
    { "/missing.php/x", true, NF },
    { "/image.png/x.php", true, NF },
    { "/style.css/a.php", true, NF },
    { "/nodir/a.php", true, NF },
    { "/blog/x.php", true, NF },
    { "/a.phpx", true, SC, "/index.php", "", true },
    { "/a.PHP", true, SC, "/index.php", "", true },
    /* dotfiles */
    { "/.env", true, NF },
    { "/.git/config", true, NF },
    { "/sub/.hidden.php", true, NF },
    { "/.php", true, NF },
    /* symlinks out of public/ are missing */
    { "/out.php", true, NF },
    { "/abs.php", true, NF },
    { "/privdir/config.php", true, NF },
    { "/privdir/", true, SC, "/index.php", "", true },
    { "/dangling.php", true, NF },
};

static void test_route_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct route_case *c = &cases[i];
        struct fastcgi_route rt;
        size_t len = strlen(c->path);
        /* an exact-size copy: the route's path_info points into it */
        char *path = malloc(len);
        memcpy(path, c->path, len);
        int r = fastcgi_route_resolve(public_fd, path, len, c->front_controller, &rt);
        if (r != 0 || rt.kind != c->kind)
            fail_msg("%s: r=%d kind=%d, want kind %d", c->path, r, rt.kind, c->kind);
        if (c->kind == SC) {
            assert_string_equal(rt.script_name, c->script);
            assert_int_equal(rt.path_info_len, strlen(c->path_info));
            assert_memory_equal(rt.path_info, c->path_info, rt.path_info_len);
            assert_true(rt.path_info >= path && rt.path_info + rt.path_info_len <= path + len);
            if (rt.fallback != c->fallback)
                fail_msg("%s: fallback %d", c->path, rt.fallback);
        }
        free(path);
    }
}

static void test_route_no_index(void **state)
{
    (void)state;
    /* a site without index.php: unknown URLs are 404, directories without an index too */
    char path[512];
    snprintf(path, sizeof(path), "%s/public/index.php", tmpdir);
    char moved[512];
    snprintf(moved, sizeof(moved), "%s/index.php.away", tmpdir);
    assert_int_equal(rename(path, moved), 0);
    struct fastcgi_route rt;
    assert_int_equal(fastcgi_route_resolve(public_fd, "/2024/hello/", 12, true, &rt), 0);
    assert_int_equal(rt.kind, NF);
    assert_int_equal(fastcgi_route_resolve(public_fd, "/", 1, true, &rt), 0);
    assert_int_equal(rt.kind, NF);
    assert_int_equal(fastcgi_route_resolve(public_fd, "/index.php", 10, true, &rt), 0);
    assert_int_equal(rt.kind, NF);
    assert_int_equal(fastcgi_route_resolve(public_fd, "/a.php", 6, true, &rt), 0);
    assert_int_equal(rt.kind, SC);
    assert_int_equal(rename(moved, path), 0);
}

static void test_route_errors(void **state)
{
    (void)state;
    struct fastcgi_route rt = { .kind = ST };
    assert_int_equal(fastcgi_route_resolve(public_fd, "a.php", 5, true, &rt), -EINVAL);
    assert_int_equal(fastcgi_route_resolve(public_fd, "", 0, true, &rt), -EINVAL);
    assert_int_equal(rt.kind, ST);   /* untouched */
    static char longp[FASTCGI_SCRIPT_MAX + 10];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    assert_int_equal(fastcgi_route_resolve(public_fd, longp, sizeof(longp), true, &rt), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_cases),
        cmocka_unit_test(test_route_no_index),
        cmocka_unit_test(test_route_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

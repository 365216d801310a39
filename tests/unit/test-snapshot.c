/* Unit tests for src/snapshot: snapshot names and the settings file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(snapshot_name_valid("blog", "blog-20261201-191500.tar.zst"));
    assert_true(snapshot_name_valid("blog", "blog-20261201-191500-2.tar.zst"));
    assert_true(snapshot_name_valid("blog", "blog-20261201-191500-999.tar.zst"));
    assert_true(snapshot_name_valid("my-site", "my-site-20261201-191500.tar.zst"));
    assert_false(snapshot_name_automatic("blog", "blog-20261201-191500.tar.zst"));
    assert_false(snapshot_name_automatic("blog", "blog-20261201-191500-2.tar.zst"));
    /* Made by a schedule: marked in the name. */
    assert_true(snapshot_name_valid("blog", "blog-20261201-030000-auto.tar.zst"));
    assert_true(snapshot_name_automatic("blog", "blog-20261201-030000-auto.tar.zst"));
    assert_true(snapshot_name_automatic("blog", "blog-20261201-030000-auto-12.tar.zst"));
    assert_true(snapshot_name_automatic("auto", "auto-20261201-030000-auto.tar.zst"));
    assert_false(snapshot_name_automatic("blog-auto", "blog-auto-20261201-030000.tar.zst"));
}

static void test_name_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "../x", "..", ".", "/etc/passwd", "blog/../../x", "blog-20261201-191500.tar.zst/x",
        "../blog-20261201-191500.tar.zst", "blog-20261201-191500.tar.zst/", "blog-20261201-191500.tar",
        "blog-20261201-191500.tar.gz", "blog-2026120-191500.tar.zst", "blog-20261201191500.tar.zst",
        "blog-20261201-19150a.tar.zst", "blog-20261201-191500-0.tar.zst", "blog-20261201-191500-01.tar.zst",
        "blog-20261201-191500-1000.tar.zst", "blog-20261201-191500-.tar.zst", "other-20261201-191500.tar.zst",
        "blogx-20261201-191500.tar.zst", ".blog-20261201-191500.tar.zst", "blog-20261201-191500.tar.zst.tmp",
        "blog-20261201-191500\n.tar.zst", "blog-20261201-191500 .tar.zst",
        "blog-20261201-191500-autox.tar.zst", "blog-20261201-191500-auto-.tar.zst",
        "blog-20261201-191500-auto-0.tar.zst", "blog-20261201-191500-1-auto.tar.zst",
        "blog-20261201-191500-auto-auto.tar.zst", "blog-20261201-191500auto.tar.zst",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (snapshot_name_valid("blog", bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (snapshot_name_automatic("blog", bad[i]))
            fail_msg("took \"%s\" for an automatic snapshot", bad[i]);
    assert_false(snapshot_name_valid("Blog", "Blog-20261201-191500.tar.zst"));
    assert_false(snapshot_name_valid("blog", NULL));
    assert_false(snapshot_name_valid("../x", "../x-20261201-191500.tar.zst"));
}

static void test_name_format(void **state)
{
    (void)state;
    char name[SNAPSHOT_NAME_MAX];
    snapshot_name_format("blog", 1796152500, 0, false, name);   /* 2026-12-01 19:15:00 UTC */
    assert_string_equal(name, "blog-20261201-191500.tar.zst");
    assert_true(snapshot_name_valid("blog", name));
    snapshot_name_format("blog", 1796152500, 3, false, name);
    assert_string_equal(name, "blog-20261201-191500-3.tar.zst");
    assert_true(snapshot_name_valid("blog", name));
    snapshot_name_format("blog", 1796152500, 0, true, name);
    assert_string_equal(name, "blog-20261201-191500-auto.tar.zst");
    assert_true(snapshot_name_automatic("blog", name));
    snapshot_name_format("blog", 1796152500, 2, true, name);
    assert_string_equal(name, "blog-20261201-191500-auto-2.tar.zst");
    assert_true(snapshot_name_automatic("blog", name));
}

static void test_settings_round_trip(void **state)
{
    (void)state;
    char *domains[] = { "a.example.com", "b.example.org" };
    struct store_site site = {
        .name = "blog", .type = "php", .cmd = NULL, .memory_max = 256ull << 20, .cpu_millis = 500,
        .pids_max = 64, .io_read_bps = 50ull << 20, .io_write_bps = 20ull << 20, .network = "nat",
        .always_on = true, .idle_seconds = 600, .php_settings = "{\"memory_limit\":\"128M\"}", .domains = domains, .n_domains = 2,
    };
    struct buf out = BUF_INIT(SNAPSHOT_META_MAX);
    assert_int_equal(snapshot_settings_write(&site, 1796152500, &out), 0);
    struct store_site back = { 0 };
    struct error err = { 0 };
    int r = snapshot_settings_read(out.data, out.len, &back, &err);
    if (r < 0)
        fail_msg("%s", err.message);
    assert_string_equal(back.type, "php");
    assert_null(back.cmd);
    assert_string_equal(back.network, "nat");
    assert_int_equal(back.memory_max, 256ull << 20);
    assert_int_equal(back.cpu_millis, 500);
    assert_int_equal(back.pids_max, 64);
    assert_int_equal(back.io_read_bps, 50ull << 20);
    assert_int_equal(back.io_write_bps, 20ull << 20);
    assert_int_equal(back.idle_seconds, 600);
    assert_true(back.always_on);
    assert_int_equal(back.n_domains, 2);
    assert_string_equal(back.domains[0], "a.example.com");
    assert_string_equal(back.domains[1], "b.example.org");
    assert_non_null(back.php_settings);
    assert_non_null(strstr(back.php_settings, "memory_limit"));
    store_site_done(&back);
    buf_done(&out);
}

static void expect_refused(const char *json, const char *words)
{
    struct store_site back = { 0 };
    struct error err = { 0 };
    int r = snapshot_settings_read(json, strlen(json), &back, &err);
    store_site_done(&back);
    if (r != -EINVAL)
        fail_msg("accepted (%d): %s", r, json);
    if (!strstr(err.message, words))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, words);
}

#define HEAD "{\"format\":\"berth-site\",\"version\":1,\"site\":\"x\",\"settings\":"
#define GOOD_TAIL "\"domains\":[],\"memory_bytes\":0,\"cpu_millis\":0,\"pids\":0,\"idle_seconds\":0," \
                  "\"always_on\":false,\"cmd\":null,\"network\":\"none\"}}"

static void test_settings_refused(void **state)
{
    (void)state;
    expect_refused("not json", "not JSON");
    expect_refused("[]", "not a berth snapshot");
    expect_refused("{\"format\":\"other\",\"version\":1,\"settings\":{}}", "not a berth snapshot");
    expect_refused("{\"format\":\"berth-site\",\"version\":2,\"settings\":{}}", "version");
    expect_refused("{\"format\":\"berth-site\",\"version\":1}", "no \"settings\"");
    expect_refused(HEAD "{\"type\":\"evil\"," GOOD_TAIL, "\"type\"");
    expect_refused(HEAD "{\"type\":\"php\",\"io_write_bps\":-1," GOOD_TAIL, "\"io_write_bps\"");
    expect_refused(HEAD "{\"type\":\"static\",\"domains\":[],\"memory_bytes\":-1,\"cpu_millis\":0,\"pids\":0,"
                   "\"idle_seconds\":0,\"always_on\":false,\"cmd\":null,\"network\":\"none\"}}", "memory_bytes");
    expect_refused(HEAD "{\"type\":\"static\",\"domains\":[],\"memory_bytes\":0,\"cpu_millis\":0,\"pids\":0,"
                   "\"idle_seconds\":0,\"always_on\":false,\"cmd\":null,\"network\":\"moon\"}}", "\"network\"");
    expect_refused(HEAD "{\"type\":\"static\",\"domains\":[\"bad domain!\"],\"memory_bytes\":0,\"cpu_millis\":0,"
                   "\"pids\":0,\"idle_seconds\":0,\"always_on\":false,\"cmd\":null,\"network\":\"none\"}}", "domain");
    expect_refused(HEAD "{\"type\":\"static\",\"domains\":[],\"memory_bytes\":0,\"cpu_millis\":0,\"pids\":0,"
                   "\"idle_seconds\":0,\"always_on\":\"yes\",\"cmd\":null,\"network\":\"none\"}}", "always_on");
    expect_refused(HEAD "{\"type\":\"php\",\"php\":{\"no_such_setting\":\"1\"}," GOOD_TAIL, "no_such_setting");
    /* A good one still passes, so the refusals above are about what they change. */
    const char *good = HEAD "{\"type\":\"static\"," GOOD_TAIL;
    struct store_site back = { 0 };
    struct error err = { 0 };
    assert_int_equal(snapshot_settings_read(good, strlen(good), &back, &err), 0);
    store_site_done(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_name_refused),
        cmocka_unit_test(test_name_format),
        cmocka_unit_test(test_settings_round_trip),
        cmocka_unit_test(test_settings_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

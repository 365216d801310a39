/* berthd's configuration: which listeners it binds when told nothing, or only part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"

static void finish_with(struct berthd_config *cfg, const char *const *argv_tail)
{
    char *argv[16] = { "berthd" };
    int argc = 1;
    while (argv_tail && *argv_tail)
        argv[argc++] = (char *)*argv_tail++;
    memset(berthd_flags_set, 0, sizeof(bool) * SET_MAX);
    optind = 0;   /* getopt starts over for each argv */
    assert_int_equal(berthd_config_parse_args(cfg, argc, argv), 0);
    assert_int_equal(berthd_config_finish(cfg), 0);
}

static void test_defaults_serve_http_and_https_everywhere(void **state)
{
    struct berthd_config cfg = { 0 };
    finish_with(&cfg, NULL);
    assert_int_equal(cfg.n_http, 2);
    assert_string_equal(cfg.http[0], "[::]:80");
    assert_string_equal(cfg.http[1], "0.0.0.0:80");
    assert_int_equal(cfg.n_https, 2);
    assert_string_equal(cfg.https[0], "[::]:443");
    assert_string_equal(cfg.https[1], "0.0.0.0:443");
    berthd_config_done(&cfg);
}

static void test_http_given_means_https_only_where_given(void **state)
{
    struct berthd_config cfg = { 0 };
    const char *args[] = { "--http", "127.0.0.1:8000", NULL };
    finish_with(&cfg, args);
    assert_int_equal(cfg.n_http, 1);
    assert_int_equal(cfg.n_https, 0);
    berthd_config_done(&cfg);

    struct berthd_config cfg2 = { 0 };
    const char *args2[] = { "--https", "127.0.0.1:8443", NULL };
    finish_with(&cfg2, args2);
    assert_int_equal(cfg2.n_https, 1);
    assert_int_equal(cfg2.n_http, 2);   /* HTTP keeps its default */
    berthd_config_done(&cfg2);
}

static void test_dev_serves_loopback_only(void **state)
{
    struct berthd_config cfg = { 0 };
    const char *args[] = { "--dev", NULL };
    finish_with(&cfg, args);
    assert_int_equal(cfg.n_http, 2);
    assert_string_equal(cfg.http[0], "127.0.0.1:8080");
    assert_int_equal(cfg.n_https, 2);
    assert_string_equal(cfg.https[0], "127.0.0.1:8443");
    assert_string_equal(cfg.https[1], "[::1]:8443");
    berthd_config_done(&cfg);
}

static void test_ssh_listeners(void **state)
{
    struct berthd_config cfg = { 0 };
    finish_with(&cfg, NULL);
    assert_int_equal(cfg.n_ssh, 2);
    assert_string_equal(cfg.ssh[0], "[::]:2222");
    assert_string_equal(cfg.ssh[1], "0.0.0.0:2222");
    assert_true(cfg.ssh_default);
    berthd_config_done(&cfg);

    struct berthd_config dev = { 0 };
    const char *dev_args[] = { "--dev", NULL };
    finish_with(&dev, dev_args);
    assert_int_equal(dev.n_ssh, 1);
    assert_string_equal(dev.ssh[0], "127.0.0.1:2222");
    berthd_config_done(&dev);

    /* Repeatable; asked-for ones are not defaults (a failure to bind is fatal). */
    struct berthd_config two = { 0 };
    const char *two_args[] = { "--ssh", "127.0.0.1:0", "--ssh", "[::1]:0", NULL };
    finish_with(&two, two_args);
    assert_int_equal(two.n_ssh, 2);
    assert_string_equal(two.ssh[1], "[::1]:0");
    assert_false(two.ssh_default);
    berthd_config_done(&two);

    struct berthd_config off = { 0 };
    const char *off_args[] = { "--ssh", "off", NULL };
    finish_with(&off, off_args);
    assert_int_equal(off.n_ssh, 0);
    berthd_config_done(&off);
}

/* front_http2 in berth.yaml: on unless false; anything else is refused. */
static void test_front_http2_key(void **state)
{
    char path[] = "/tmp/test-daemon-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const char *cases[][2] = { { "site_max_requests: 1024\n", "1" }, { "front_http2: false\n", "0" },
                               { "front_http2: true\n", "1" }, { "front_http2: maybe\n", "err" } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(cases[i][0], f);
        fclose(f);
        struct berthd_config cfg = { 0 };
        char *argv[] = { "berthd", "--config", path, NULL };
        memset(berthd_flags_set, 0, sizeof(bool) * SET_MAX);
        optind = 0;
        assert_int_equal(berthd_config_parse_args(&cfg, 3, argv), 0);
        /* As berthd does: flags, then the file, then the defaults. */
        char err[512];
        int r = berthd_config_load_file(&cfg, berthd_flags_set, err, sizeof(err));
        if (r == 0)
            assert_int_equal(berthd_config_finish(&cfg), 0);
        if (strcmp(cases[i][1], "err") == 0) {
            assert_true(r < 0);
            assert_non_null(strstr(err, "front_http2"));
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(!cfg.no_http2, cases[i][1][0] == '1');
        }
        berthd_config_done(&cfg);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_serve_http_and_https_everywhere),
        cmocka_unit_test(test_http_given_means_https_only_where_given),
        cmocka_unit_test(test_dev_serves_loopback_only),
        cmocka_unit_test(test_ssh_listeners),
        cmocka_unit_test(test_front_http2_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/sites/php.c: the settings a site may change and how they are
 * checked, the stored JSON round trips, and the php-fpm configuration (managed
 * values present, no injection, accepted by the real php-fpm when it is here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "common/fs.h"
#include "common/util.h"
#include "sites/sites.h"

struct check_case {
    const char *key, *value;
    int want;
    const char *norm;       /* normalised value, or a fragment of the message */
};

static const struct check_case check_cases[] = {
    { "memory_limit", "256M", 0, "256M" },
    { "memory_limit", "256m", 0, "256M" },
    { "memory_limit", "1G", 0, "1G" },
    { "memory_limit", "16777216", 0, "16777216" },
    { "memory_limit", "8M", -EINVAL, "must be a size between 16M and 2G" },
    { "memory_limit", "3G", -EINVAL, "must be a size" },
    { "memory_limit", "-1", -EINVAL, "must be a size" },
    { "memory_limit", "128MB", -EINVAL, "must be a size" },
    { "memory_limit", "", -EINVAL, "must be a size" },
    { "memory_limit", "128M\nphp_admin_value[open_basedir]=/", -EINVAL, "must be a size" },
    { "memory_limit", "128M ", -EINVAL, "must be a size" },
    /* 2^34 + 1 gigabytes wrap to 1G in 64 bits: far past the bound, not 1G. */
    { "memory_limit", "17179869185G", -EINVAL, "must be a size" },
    { "post_max_size", "17179869184G", -EINVAL, "must be a size" },
    { "max_execution_time", "60", 0, "60" },
    { "max_execution_time", "0", -EINVAL, "between 1 and 3600" },
    { "max_execution_time", "3601", -EINVAL, "between 1 and 3600" },
    { "max_execution_time", "1e3", -EINVAL, "whole number" },
    { "max_execution_time", "99999999999999999999", -EINVAL, "whole number" },
    { "upload_max_filesize", "64M", 0, "64M" },
    { "post_max_size", "0", 0, "0" },
    { "max_input_vars", "5000", 0, "5000" },
    { "display_errors", "on", 0, "On" },
    { "display_errors", "0", 0, "Off" },
    { "display_errors", "stderr", -EINVAL, "On or Off" },
    { "date.timezone", "Europe/Paris", 0, "Europe/Paris" },
    { "date.timezone", "UTC", 0, "UTC" },
    { "date.timezone", "Mars/Olympus", -EINVAL, "time zone" },
    { "date.timezone", "../../../etc/passwd", -EINVAL, "time zone" },
    { "date.timezone", "/etc/passwd", -EINVAL, "time zone" },
    { "date.timezone", "Europe/Paris\"", -EINVAL, "time zone" },
    { "session.gc_maxlifetime", "86400", 0, "86400" },
    { "opcache.memory_consumption", "128", 0, "128" },
    { "opcache.validate_timestamps", "Off", 0, "Off" },
    { "pm", "static", 0, "static" },
    { "pm", "dynamic", -EINVAL, "ondemand or static" },
    { "pm.max_children", "20", 0, "20" },
    { "pm.max_children", "0", -EINVAL, "between 1 and 100" },
    { "default_charset", "UTF-8", 0, "UTF-8" },
    { "default_charset", "UTF-8;x", -EINVAL, "character set" },
    /* unknown */
    { "foo", "1", -EINVAL, "unknown PHP setting \"foo\"" },
    { "opcache.foo", "1", -EINVAL, "unknown PHP setting \"opcache.foo\"" },
    /* managed */
    { "open_basedir", "/", -EINVAL, "PHP setting \"open_basedir\" is managed by berth and cannot be changed" },
    { "disable_functions", "", -EINVAL, "is managed by berth" },
    { "allow_url_include", "On", -EINVAL, "is managed by berth" },
    { "auto_prepend_file", "/site/x", -EINVAL, "is managed by berth" },
    { "extension", "x.so", -EINVAL, "is managed by berth" },
    { "zend_extension", "x.so", -EINVAL, "is managed by berth" },
    { "sendmail_path", "/bin/sh", -EINVAL, "is managed by berth" },
    { "opcache.preload", "/site/p.php", -EINVAL, "is managed by berth" },
    { "session.save_path", "/tmp", -EINVAL, "is managed by berth" },
    { "error_log", "/site/public/x", -EINVAL, "is managed by berth" },
    { "php_admin_value", "x", -EINVAL, "is managed by berth" },
    /* names that are not names */
    { "memory_limit]\nphp_admin_value[open_basedir", "/", -EINVAL, "invalid PHP setting name" },
    { "Memory_Limit", "256M", -EINVAL, "invalid PHP setting name" },
    { "", "1", -EINVAL, "invalid PHP setting name" },
};

static void test_check_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(check_cases); i++) {
        const struct check_case *c = &check_cases[i];
        char out[PHP_SETTING_VALUE_MAX + 1] = "";
        struct error err = { 0 };
        int r = php_setting_check(c->key, c->value, out, &err);
        if (r != c->want)
            fail_msg("%s=%s: got %d (%s)", c->key, c->value, r, err.message);
        if (r == 0)
            assert_string_equal(out, c->norm);
        else if (!strstr(err.message, c->norm))
            fail_msg("%s=%s: message \"%s\" lacks \"%s\"", c->key, c->value, err.message, c->norm);
    }
}

static void test_apply_remove(void **state)
{
    (void)state;
    struct error err;
    _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
    assert_int_equal(php_settings_apply(NULL, "memory_limit", "256m", &a, &err), 0);
    assert_string_equal(a, "{\"memory_limit\":\"256M\"}");
    assert_int_equal(php_settings_apply(a, "date.timezone", "Europe/Paris", &b, &err), 0);
    assert_string_equal(b, "{\"memory_limit\":\"256M\",\"date.timezone\":\"Europe/Paris\"}");
    assert_int_equal(php_settings_apply(b, "memory_limit", "512M", &c, &err), 0);
    assert_string_equal(c, "{\"memory_limit\":\"512M\",\"date.timezone\":\"Europe/Paris\"}");
    assert_int_equal(php_settings_remove(c, "memory_limit", &d, &err), 0);
    assert_string_equal(d, "{\"date.timezone\":\"Europe/Paris\"}");
    assert_int_equal(php_settings_remove(d, "memory_limit", &e, &err), -ENOENT);
    assert_non_null(strstr(err.message, "not set"));
    assert_null(e);
    assert_int_equal(php_settings_remove(d, "date.timezone", &e, &err), 0);
    assert_string_equal(e, "{}");

    char *x = NULL;
    assert_int_equal(php_settings_apply(a, "open_basedir", "/", &x, &err), -EINVAL);
    assert_null(x);
    assert_int_equal(php_settings_apply("[1]", "memory_limit", "256M", &x, &err), -EINVAL);
    assert_int_equal(php_settings_apply("{\"a\":1}", "memory_limit", "256M", &x, &err), -EINVAL);
    assert_int_equal(php_settings_apply("{", "memory_limit", "256M", &x, &err), -EINVAL);
    assert_int_equal(php_settings_remove("nope", "memory_limit", &x, &err), -EINVAL);
    assert_null(x);
    /* a typo or a managed key is refused, not taken for "not set" */
    assert_int_equal(php_settings_remove("{}", "memory_limt", &x, &err), -EINVAL);
    assert_non_null(strstr(err.message, "unknown PHP setting \"memory_limt\""));
    assert_int_equal(php_settings_remove("{}", "open_basedir", &x, &err), -EINVAL);
    assert_non_null(strstr(err.message, "managed by berth"));
    assert_null(x);

    /* the listing the panel shows */
    struct php_setting_info info;
    size_t n = 0;
    bool seen_memory = false;
    while (php_setting_info(n, &info)) {
        char norm[PHP_SETTING_VALUE_MAX + 1];
        assert_non_null(info.help);
        assert_true(info.accepts[0] != 0);
        /* every listed key is accepted, and so is its default */
        if (info.default_value)
            assert_int_equal(php_setting_check(info.key, info.default_value, norm, &err), 0);
        if (streq(info.key, "memory_limit")) {
            seen_memory = true;
            assert_string_equal(info.default_value, "128M");
            assert_non_null(strstr(info.accepts, "16M"));
        }
        n++;
    }
    assert_true(seen_memory);
    assert_true(n > 20);

    /* what the front is told */
    assert_int_equal(php_site_time_limit(NULL), 30);
    assert_int_equal(php_site_time_limit("{\"max_execution_time\":\"120\"}"), 120);
    assert_int_equal(php_site_time_limit("not json"), 30);
    assert_int_equal(php_site_body_limit(NULL), PHP_DEFAULT_BODY_LIMIT);
    assert_int_equal(php_site_body_limit("{\"post_max_size\":\"8M\"}"), 8 << 20);
    assert_int_equal(php_site_body_limit("{\"post_max_size\":\"0\"}"), PHP_DEFAULT_BODY_LIMIT);
}

static void buf_donep(struct buf *b)
{
    buf_done(b);
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("config lacks \"%s\":\n%s", line, text);
}

/* No line of the configuration may hold anything but one directive or a comment. */
static void assert_lines_sane(const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        for (const char *q = p; q < nl; q++)
            assert_true((unsigned char)*q >= 0x20 && *q != 0x7f && *q != '"');
        p = nl + 1;
    }
}

static void test_config(void **state)
{
    (void)state;
    struct error err;
    _cleanup_(buf_donep) struct buf out = BUF_INIT(1 << 20);
    struct php_fpm_site site = {
        .name = "blog",
        .max_body = 20 * 1024 * 1024,
        .settings_json = "{\"memory_limit\":\"256M\",\"display_errors\":\"On\",\"pm\":\"static\","
                         "\"pm.max_children\":\"3\",\"max_execution_time\":\"50\"}",
    };
    assert_int_equal(php_fpm_config_write(&site, &out, &err), 0);
    const char *t = out.data;
    assert_lines_sane(t);
    assert_has(t, "\n[global]\n");
    assert_has(t, "\ndaemonize = no\n");
    assert_has(t, "\nerror_log = /proc/self/fd/2\n");
    assert_has(t, "\n[blog]\n");
    assert_has(t, "\nlisten = " PHP_FPM_LISTEN_KEY "\n");
    assert_has(t, "\nclear_env = yes\n");
    assert_has(t, "\ncatch_workers_output = yes\n");
    assert_has(t, "\npm = static\n");
    assert_has(t, "\npm.max_children = 3\n");
    assert_has(t, "\nrequest_terminate_timeout = 60s\n");
    assert_has(t, "\nphp_admin_value[open_basedir] = /site/public:/site/private:/site/tmp\n");
    assert_has(t, "\nphp_admin_flag[allow_url_include] = Off\n");
    assert_has(t, "\nphp_admin_flag[expose_php] = Off\n");
    assert_has(t, "\nphp_admin_value[session.save_path] = /site/tmp/sessions\n");
    assert_has(t, "\nphp_admin_value[upload_tmp_dir] = /site/tmp/uploads\n");
    assert_has(t, "\nphp_admin_value[disable_functions] = exec,passthru,shell_exec,system,proc_open,popen,");
    assert_has(t, "\nphp_value[memory_limit] = 256M\n");
    assert_has(t, "\nphp_flag[display_errors] = On\n");
    assert_has(t, "\nphp_value[upload_max_filesize] = 20M\n");
    assert_has(t, "\nphp_value[post_max_size] = 20M\n");
    /* on by PHP's default; writing it again makes every worker log a warning */
    assert_null(strstr(t, "opcache.enable]"));
    assert_has(t, "\nphp_flag[opcache.validate_timestamps] = On\n");
    assert_null(strstr(t, "\nuser ="));
    assert_null(strstr(t, "\ngroup ="));
    assert_null(strstr(t, "php_admin_value[error_log]"));

    /* defaults */
    buf_clear(&out);
    site.settings_json = NULL;
    site.max_body = 0;
    assert_int_equal(php_fpm_config_write(&site, &out, &err), 0);
    assert_has(out.data, "\npm = ondemand\n");
    assert_has(out.data, "\nphp_value[memory_limit] = 128M\n");
    assert_has(out.data, "\nphp_value[max_execution_time] = 30\n");
    assert_has(out.data, "\nphp_flag[display_errors] = Off\n");
    assert_has(out.data, "\nphp_value[post_max_size] = 16M\n");

    /* stored text that would not pass the checks is refused, never written */
    static const char *const bad[] = {
        "{\"memory_limit\":\"128M\\nphp_admin_value[open_basedir]=/\"}",
        "{\"open_basedir\":\"/\"}",
        "{\"foo\":\"1\"}",
        "{\"date.timezone\":\"UTC\\\"\\n[evil]\"}",
        "{\"memory_limit]\\nphp_admin_value[open_basedir\":\"/\"}",
        "{\"memory_limit\":5}",
        "not json",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        buf_clear(&out);
        if (php_fpm_config_write(&(struct php_fpm_site){ .name = "blog", .settings_json = bad[i] },
                                 &out, &err) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
    }
    site.name = "blog]\n[x";
    assert_int_equal(php_fpm_config_write(&site, &out, &err), -EINVAL);
}

/* php-fpm itself must accept the text: `php-fpm -t` parses it as it would start. */
static void test_config_php_fpm(void **state)
{
    (void)state;
    if (access(PHP_FPM_BINARY, X_OK) < 0) {
        if (getenv("BERTH_MUST_WORK") && streq(getenv("BERTH_MUST_WORK"), "1"))
            fail_msg("%s missing (BERTH_MUST_WORK=1)", PHP_FPM_BINARY);
        skip();
    }
    struct error err;
    _cleanup_(buf_donep) struct buf out = BUF_INIT(1 << 20);
    struct php_fpm_site site = { .name = "blog", .settings_json = "{\"date.timezone\":\"Europe/Paris\"}" };
    assert_int_equal(php_fpm_config_write(&site, &out, &err), 0);
    char dir[] = "/tmp/berth-test-php-XXXXXX", path[128], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/php-fpm.conf", dir);
    assert_int_equal(write_file_atomic(path, out.data, out.len, 0644), 0);
    /* -R: the test may run as root, which php-fpm refuses without it */
    snprintf(cmd, sizeof(cmd), "%s -t -R -y %s > %s/out 2>&1", PHP_FPM_BINARY, path, dir);
    int st = system(cmd);
    snprintf(path, sizeof(path), "%s/out", dir);
    _cleanup_free_ char *log = NULL;
    size_t len;
    assert_int_equal(read_file(path, 1 << 16, &log, &len), 0);
    rm_rf(dir);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(log, "test is successful") ||
        strstr(log, "ERROR") || strstr(log, "WARNING"))
        fail_msg("php-fpm -t refused the configuration:\n%s", log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_apply_remove),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_php_fpm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

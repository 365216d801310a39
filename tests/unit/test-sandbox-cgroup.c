/* Tests for src/sandbox/sandbox-cgroup.c: the pure parts (parsing /proc/self/cgroup
 * and keyed files, formatting limits). No cgroup file system is touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "sandbox/sandbox-internal.h"

static const char hybrid[] =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "4:memory:/process_api/2d1d\n"
    "2:cpu,cpuacct:/user.slice\n"
    "0::/init.scope\n";

static void test_self_path_v1(void **state)
{
    char *path = NULL, *list = NULL;
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "memory", &path, &list), 0);
    assert_string_equal(path, "/process_api/2d1d");
    assert_string_equal(list, "memory");
    free(path);
    free(list);
    /* co-mounted controllers are found by either name, with the whole list */
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "cpuacct", &path, &list), 0);
    assert_string_equal(path, "/user.slice");
    assert_string_equal(list, "cpu,cpuacct");
    free(path);
    free(list);
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "pids", &path, NULL), 0);
    assert_string_equal(path, "/");
    free(path);
    /* "cpu" must not match a prefix of "cpuset" nor a named hierarchy */
    assert_int_equal(sandbox_cgroup_self_path("3:cpuset:/\n", "cpu", &path, NULL), -ENOENT);
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "systemd", &path, NULL), -ENOENT);
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "freezer", &path, NULL), -ENOENT);
}

static void test_self_path_v2(void **state)
{
    char *path = NULL, *list = NULL;
    assert_int_equal(sandbox_cgroup_self_path(hybrid, "", &path, &list), 0);
    assert_string_equal(path, "/init.scope");
    assert_string_equal(list, "");
    free(path);
    free(list);
    /* pure v2, no trailing newline */
    assert_int_equal(sandbox_cgroup_self_path("0::/system.slice/berthd.service", "", &path, NULL), 0);
    assert_string_equal(path, "/system.slice/berthd.service");
    free(path);
    path = (char *)"untouched";
    assert_int_equal(sandbox_cgroup_self_path("garbage\n", "", &path, NULL), -EINVAL);
    assert_int_equal(sandbox_cgroup_self_path("0::relative\n", "", &path, NULL), -EINVAL);
    assert_string_equal(path, "untouched");
    assert_int_equal(sandbox_cgroup_self_path("", "", &path, NULL), -ENOENT);
}

static void test_keyed(void **state)
{
    uint64_t v = 7;
    const char *events = "low 0\nhigh 3\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_int_equal(sandbox_cgroup_keyed_get(events, "oom_kill", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(sandbox_cgroup_keyed_get(events, "oom", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(sandbox_cgroup_keyed_get(events, "max", &v), 0);
    assert_int_equal(v, 12);
    const char *oomc = "oom_kill_disable 0\nunder_oom 0\noom_kill 5";
    assert_int_equal(sandbox_cgroup_keyed_get(oomc, "oom_kill", &v), 0);
    assert_int_equal(v, 5);
    v = 9;
    assert_int_equal(sandbox_cgroup_keyed_get(oomc, "oom_ki", &v), -ENOENT);
    assert_int_equal(sandbox_cgroup_keyed_get("usage_usec x1\n", "usage_usec", &v), -EINVAL);
    assert_int_equal(v, 9);
}

static void test_format(void **state)
{
    char out[32];
    assert_int_equal(sandbox_cgroup_format_limit(0, false, out, sizeof(out)), 0);
    assert_string_equal(out, "max");
    assert_int_equal(sandbox_cgroup_format_limit(0, true, out, sizeof(out)), 0);
    assert_string_equal(out, "-1");
    assert_int_equal(sandbox_cgroup_format_limit(268435456, true, out, sizeof(out)), 0);
    assert_string_equal(out, "268435456");
    assert_int_equal(sandbox_cgroup_format_limit(268435456, false, out, 5), -ENOBUFS);

    assert_int_equal(sandbox_cgroup_format_cpu_max(500, out, sizeof(out)), 0);
    assert_string_equal(out, "50000 100000");
    assert_int_equal(sandbox_cgroup_format_cpu_max(2000, out, sizeof(out)), 0);
    assert_string_equal(out, "200000 100000");
    assert_int_equal(sandbox_cgroup_format_cpu_max(0, out, sizeof(out)), 0);
    assert_string_equal(out, "max 100000");
    /* below the kernel's 1ms minimum quota: clamped, not refused by the kernel later */
    assert_int_equal(sandbox_cgroup_format_cpu_max(1, out, sizeof(out)), 0);
    assert_string_equal(out, "1000 100000");
    assert_int_equal(sandbox_cgroup_format_cpu_max(500, out, 4), -ENOBUFS);
    assert_int_equal(sandbox_cgroup_cfs_quota(0), -1);
    assert_int_equal(sandbox_cgroup_cfs_quota(250), 25000);
}

static void test_names(void **state)
{
    assert_true(sandbox_cgroup_name_valid("blog"));
    assert_true(sandbox_cgroup_name_valid("a-1"));
    assert_false(sandbox_cgroup_name_valid(NULL));
    assert_false(sandbox_cgroup_name_valid(""));
    assert_false(sandbox_cgroup_name_valid(".."));
    assert_false(sandbox_cgroup_name_valid("cgroup.procs"));
    assert_false(sandbox_cgroup_name_valid("a/b"));
    assert_false(sandbox_cgroup_name_valid("-a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_path_v1),
        cmocka_unit_test(test_self_path_v2),
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

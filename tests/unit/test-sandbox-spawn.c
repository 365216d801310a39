/* Tests for src/sandbox/sandbox-spawn.c and sandbox-net.c: what can be checked
 * without privileges (argument checks, step names, network names). The sandbox itself
 * is exercised by tests/integration/test_sandbox.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>

#include "sandbox/sandbox.h"

static void test_step_names(void **state)
{
    assert_string_equal(sandbox_step_to_string(SANDBOX_STEP_PIVOT_ROOT), "pivot-root");
    assert_string_equal(sandbox_step_to_string(SANDBOX_STEP_SECCOMP), "seccomp");
    assert_string_equal(sandbox_step_to_string(-1), "unknown");
    assert_string_equal(sandbox_step_to_string(_SANDBOX_STEP_MAX), "unknown");
    for (int s = 0; s < _SANDBOX_STEP_MAX; s++)
        assert_string_not_equal(sandbox_step_to_string(s), "unknown");
}

static void test_network(void **state)
{
    enum sandbox_network n = SANDBOX_NETWORK_HOST;
    assert_int_equal(sandbox_network_from_string("none", &n), 0);
    assert_int_equal(n, SANDBOX_NETWORK_NONE);
    assert_int_equal(sandbox_network_from_string("host", &n), 0);
    assert_int_equal(n, SANDBOX_NETWORK_HOST);
    assert_int_equal(sandbox_network_from_string("nat", &n), 0);
    assert_int_equal(n, SANDBOX_NETWORK_NAT);
    n = SANDBOX_NETWORK_HOST;
    assert_int_equal(sandbox_network_from_string("bridge", &n), -EINVAL);
    assert_int_equal(n, SANDBOX_NETWORK_HOST);
}

static void test_config_checks(void **state)
{
    const char *argv[] = { "/bin/true", NULL };
    const char *rel[] = { "true", NULL };
    struct sandbox_config cfg;
    pid_t pid = 42;
    int pidfd = 42;
    struct sandbox_error err = { 0 };

    sandbox_config_init(&cfg);
    assert_int_equal(cfg.join_pidfd, -1);
    assert_int_equal(cfg.stdout_fd, -1);
    cfg.name = "blog";
    cfg.uid = cfg.gid = 250001;
    cfg.site_dir = "/nonexistent";
    cfg.argv = argv;

    cfg.uid = 0;   /* never root inside */
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.uid = 250001;
    /* -1 means "unchanged" to setresuid/setresgid: the child would keep root's */
    cfg.gid = (gid_t)-1;
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.gid = 250001;
    cfg.uid = (uid_t)-1;
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.uid = 250001;
    cfg.name = "Bad_Name";
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.name = "blog";
    cfg.argv = rel;   /* no PATH search inside: must be absolute */
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.argv = argv;
    cfg.site_dir = "relative/dir";
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.site_dir = "/nonexistent";
    cfg.n_fds = 1;   /* fds missing */
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    cfg.n_fds = 0;
    cfg.network = SANDBOX_NETWORK_NAT;   /* nat without a bridge to join */
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EOPNOTSUPP);
    cfg.network = (enum sandbox_network)7;
    assert_int_equal(sandbox_spawn(&cfg, &err, &pid, &pidfd), -EINVAL);
    /* out-parameters untouched on failure */
    assert_int_equal(pid, 42);
    assert_int_equal(pidfd, 42);
}

static void test_cgroup_name_checked(void **state)
{
    /* a handle is never created for a name that could escape its parent */
    struct sandbox_cgroup_root *root = NULL;
    int r = sandbox_cgroup_root_open("../x", &root);
    assert_int_equal(r, -EINVAL);
    assert_null(root);
    assert_int_equal(sandbox_cgroup_root_open("/abs", &root), -EINVAL);
    assert_int_equal(sandbox_cgroup_root_open("a/b", &root), -EINVAL);
    assert_int_equal(sandbox_cgroup_root_open("", &root), -EINVAL);
    assert_int_equal(sandbox_cgroup_root_open("..", &root), -EINVAL);
    assert_null(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_names),
        cmocka_unit_test(test_network),
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_cgroup_name_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

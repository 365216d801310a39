/* Tests for sandbox_confine_service: what berth's own services (front workers, the
 * ssh front and its connection children) may no longer do once confined. Each
 * check runs in a forked child, which reports the first refusal that did not come
 * as its exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif

static int seccomp_mode(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int mode = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Seccomp: %d", &mode) == 1)
            break;
    if (f)
        fclose(f);
    return mode;
}

/* 0 when every check held; else the number of the first that did not. */
static int confined_child(void)
{
    if (sandbox_confine_service() < 0)
        return 1;
    if (seccomp_mode() != 2)
        return 2;
    char *const argv[] = { "/bin/true", NULL }, *const envp[] = { NULL };
    if (execve("/bin/true", argv, envp) != -1 || errno != EPERM)
        return 3;
    if (syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, envp, 0) != -1 || errno != EPERM)
        return 4;
    if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
        return 5;
    if (syscall(SYS_io_uring_setup, 1, NULL) != -1 || errno != EPERM)
        return 6;
    if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
        return 7;
    if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
        return 8;
#ifndef SANITIZER_BUILD
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != -1 || errno != EPERM)
        return 9;
#endif
    /* What a service does every day still works: sockets, pipes, fork. */
    int sv[2], p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0)
        return 10;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 11;
    return 0;
}

static void test_confined_service(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(confined_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confined_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

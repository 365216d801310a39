#include "common/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int proc_fork_with_socket(pid_t *ret_pid, int *ret_pidfd, int *ret_sock)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(sv[0]);
        close(sv[1]);
        return r;
    }
    if (pid == 0) {
        close(sv[0]);
        *ret_sock = sv[1];
        return 0;
    }
    close(sv[1]);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        int r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(sv[0]);
        return r;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *ret_pid = pid;
    *ret_pidfd = pidfd;
    *ret_sock = sv[0];
    return 1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void proc_close_fds_except(int *keep, size_t n)
{
    qsort(keep, n, sizeof(*keep), cmp_int);
    unsigned lo = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int)lo)
            continue;   /* below 3, or a duplicate */
        if ((unsigned)keep[i] > lo)
            close_range(lo, (unsigned)keep[i] - 1, 0);
        lo = (unsigned)keep[i] + 1;
    }
    close_range(lo, ~0U, 0);
}

int proc_fds_to_low(const int *fds, size_t n)
{
    /* Up out of the way first: fds[1] may sit where fds[0] goes. */
    int high[16];
    if (n > sizeof(high) / sizeof(high[0]))
        return -E2BIG;
    for (size_t i = 0; i < n; i++)
        if ((high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64)) < 0)
            return -errno;
    for (size_t i = 0; i < n; i++)
        if (dup2(high[i], 3 + (int)i) < 0)
            return -errno;
    close_range(3 + (unsigned)n, ~0U, 0);
    return 0;
}

void proc_kill_wait(int pidfd)
{
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    while (waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){ 0 }, WEXITED) < 0 && errno == EINTR)
        ;
}

void proc_test_gate(const char *env_name)
{
    const char *gate = getenv(env_name);
    for (int i = 0; gate && i < 3000 && access(gate, F_OK) < 0; i++)
        usleep(10 * 1000);
}

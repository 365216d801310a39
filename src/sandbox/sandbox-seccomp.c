/* Installing the seccomp filters. The filters themselves are built at build time by
 * sandbox-seccomp-gen.c (where the rules and their reasons are listed) and compiled
 * into this library as BPF. */
#include "sandbox/sandbox-internal.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "sandbox/sandbox-seccomp-bpf.h"

static int install(const struct sock_filter *filter, size_t len)
{
    const struct sock_fprog prog = {
        .len = (unsigned short)len,
        .filter = (struct sock_filter *)filter,
    };
    /* seccomp(2) rather than prctl: same filter, and the call fails loudly on a
     * kernel without SECCOMP_FILTER instead of silently running unfiltered. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}

int sandbox_seccomp_install(void)
{
    return install(sandbox_seccomp_bpf, ARRAY_SIZE(sandbox_seccomp_bpf));
}

int sandbox_confine_service(void)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return install(service_seccomp_bpf, ARRAY_SIZE(service_seccomp_bpf));
}

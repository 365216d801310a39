/* Installing the seccomp filter. The filter itself is built at build time by
 * sandbox-seccomp-gen.c (where the rules and their reasons are listed) and compiled
 * into this library as BPF. */
#include "sandbox/sandbox-internal.h"

#include <linux/seccomp.h>
#include <sys/syscall.h>

#include "sandbox/sandbox-seccomp-bpf.h"

int sandbox_seccomp_install(void)
{
    const struct sock_fprog prog = {
        .len = (unsigned short)ARRAY_SIZE(sandbox_seccomp_bpf),
        .filter = (struct sock_filter *)sandbox_seccomp_bpf,
    };
    /* seccomp(2) rather than prctl: same filter, and the call fails loudly on a
     * kernel without SECCOMP_FILTER instead of silently running unfiltered. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}

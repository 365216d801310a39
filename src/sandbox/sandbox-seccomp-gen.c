/* sandbox-seccomp-gen: runs at build time. Builds the seccomp filters with
 * libseccomp and writes them as C arrays of BPF instructions, so berthd and the
 * helpers install a precompiled filter: no libseccomp work (about a millisecond and a
 * half, cold) on any start, and no libseccomp in the binaries.
 *
 * The sites' filter: allow by default, refuse with EPERM what Docker's default
 * profile refuses to a container without extra capabilities.
 *
 * The services' filter (berth's own unprivileged processes that parse what the
 * network sends: the front's workers, the ssh front and its connection children):
 * the same, and no execve/execveat, since none of them runs a program: one taken
 * over through a parser flaw cannot start a shell or anything else. Built with
 * --sanitizer (ASan/UBSan builds), it leaves ptrace allowed: LeakSanitizer stops
 * the process with it to look for leaks at exit. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

static const char *const denied[] = {
    /* file system topology: the sandbox's root must stay as built */
    "mount", "umount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    /* other processes' memory and fds */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    /* the kernel itself */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "bpf", "perf_event_open",
    "lookup_dcookie", "iopl", "ioperm", "vm86", "vm86old", "syslog", "uselib",
    "nfsservctl", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    /* the kernel keyring is not namespaced */
    "keyctl", "add_key", "request_key",
    /* userfaultfd makes kernel races easy to win (used by many exploits) */
    "userfaultfd",
    /* io_uring: a large attack surface with a long CVE history; Docker blocks it too */
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* namespaces: no new ones, no joining others */
    "unshare", "setns",
    /* the clock is global to the host */
    "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex",
    "clock_adjtime", "clock_adjtime64",
    /* open_by_handle_at escapes any bind mount by inode handle (CVE-2014-3519,
     * "shocker"); name_to_handle_at feeds it */
    "open_by_handle_at", "name_to_handle_at",
    "vhangup", "fanotify_init",
};

enum filter_kind { FILTER_SITES, FILTER_SERVICES };

static bool sanitizer_build;

static bool denied_for(enum filter_kind kind, const char *name)
{
    return !(kind == FILTER_SERVICES && sanitizer_build && strcmp(name, "ptrace") == 0);
}

static int add_rules(scmp_filter_ctx ctx, enum filter_kind kind)
{
    int r;
    if (kind == FILTER_SERVICES) {
        static const char *const exec_calls[] = { "execve", "execveat" };
        for (size_t i = 0; i < ARRAY_SIZE(exec_calls); i++) {
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), seccomp_syscall_resolve_name(exec_calls[i]), 0);
            if (r < 0 && r != -EDOM)
                return r;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR || !denied_for(kind, denied[i]))
            continue;   /* unknown to this libseccomp, or kept for the sanitizers */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0 && r != -EDOM)
            return r;
    }

    /* clone with a namespace flag is unshare by another name. CLONE_NEWTIME (0x80)
     * is not listed: in clone's flags that bit is part of the exit signal. */
    static const uint64_t ns_flags[] = { CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS,
                                         CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                                         CLONE_NEWNET };
    for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0)
            return r;
    }
    /* clone3 passes its flags in memory, out of BPF's reach: ENOSYS makes glibc
     * fall back to clone, which the rules above can inspect. */
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
        return r;

    /* AF_VSOCK is not confined by network namespaces: from any sandbox, even
     * network none, it reaches the hypervisor host and every vsock service of the
     * machine. EAFNOSUPPORT, as on a kernel without vsock, so programs that probe
     * families fall back quietly. The family is an int: masked to its low 32 bits
     * so junk in the upper half cannot dodge the rule. On i386 libseccomp also
     * refuses socketcall(SYS_SOCKET) as a whole, since its arguments are in memory:
     * an i386 program gets no sockets at all. */
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_VSOCK));
    if (r < 0)
        return r;

    /* TIOCSTI pushes bytes into the input of the terminal the sandbox shares with
     * whoever started it (CVE-2017-5226); TIOCLINUX can too on a VT. The mask makes
     * the match ignore the upper 32 bits, which the kernel ignores as well (an int
     * command), so they cannot be used to dodge it. */
    static const unsigned long ioctls[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < ARRAY_SIZE(ioctls); i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, ioctls[i]));
        if (r < 0)
            return r;
    }

    /* personality: only PER_LINUX (0), PER_LINUX32 (8), UNAME26 (0x20000), their
     * combination and the query 0xffffffff, as Docker allows; flags such as
     * READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE weaken exploit mitigations.
     * libseccomp allows one comparison per argument per rule, so "not one of these"
     * is spelled as a union of two-bit masks: a bit outside 0x20008 set while bit
     * 31 is clear, or bit 31 set while some other bit is clear (not the query). */
    for (unsigned b = 0; b < 31; b++) {
        const uint64_t bit = 1ull << b, top = 1ull << 31;
        if (bit & 0x20008)
            continue;
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, bit | top, bit));
        if (r < 0)
            return r;
    }
    for (unsigned b = 0; b < 31; b++) {
        const uint64_t bit = 1ull << b, top = 1ull << 31;
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, bit | top, top));
        if (r < 0)
            return r;
    }
    return 0;
}

static int compile(enum filter_kind kind, struct sock_fprog *ret)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    struct sock_filter *insns = NULL;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    int r = 0;
    /* A filter for x86_64 alone would let a process switch to the i386 (int 0x80)
     * or x32 ABI, where the syscall numbers differ and no rule matches. Adding
     * those architectures applies every rule to them too; any other architecture
     * is killed (libseccomp's default bad-arch action). */
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
            goto out;
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
            goto out;
    }
    if ((r = add_rules(ctx, kind)) < 0)
        goto out;

    fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        goto out;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
        st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        r = -EINVAL;
        goto out;
    }
    insns = malloc((size_t)st.st_size);
    if (!insns) {
        r = -ENOMEM;
        goto out;
    }
    if (pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
        free(insns);
        r = -EIO;
        goto out;
    }
    ret->filter = insns;
    ret->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
    r = 0;
out:
    seccomp_release(ctx);
    return r;
}

static void write_array(FILE *f, const char *name, const struct sock_fprog *prog)
{
    fprintf(f, "static const struct sock_filter %s[] = {\n", name);
    for (unsigned i = 0; i < prog->len; i++)
        fprintf(f, "    { 0x%04x, %u, %u, 0x%08x },\n", prog->filter[i].code, prog->filter[i].jt,
                prog->filter[i].jf, prog->filter[i].k);
    fprintf(f, "};\n");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "--sanitizer") == 0)
        sanitizer_build = true;
    else if (argc != 2) {
        fprintf(stderr, "usage: sandbox-seccomp-gen OUTPUT.h [--sanitizer]\n");
        return 2;
    }
    struct sock_fprog sites = { 0 }, services = { 0 };
    int r = compile(FILTER_SITES, &sites);
    if (r >= 0)
        r = compile(FILTER_SERVICES, &services);
    if (r < 0) {
        fprintf(stderr, "sandbox-seccomp-gen: %s\n", strerror(-r));
        free(sites.filter);
        return 1;
    }
    FILE *f = fopen(argv[1], "we");
    if (!f) {
        perror(argv[1]);
        free(sites.filter);
        free(services.filter);
        return 1;
    }
    fprintf(f, "/* Generated by sandbox-seccomp-gen at build time: do not edit. */\n"
               "#pragma once\n#include <linux/filter.h>\n");
    write_array(f, "sandbox_seccomp_bpf", &sites);
    write_array(f, "service_seccomp_bpf", &services);
    free(sites.filter);
    free(services.filter);
    return fclose(f) == 0 ? 0 : 1;
}

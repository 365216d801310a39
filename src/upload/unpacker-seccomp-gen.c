/* unpacker-seccomp-gen: runs at build time. Builds the unpacker's seccomp filter with
 * libseccomp and writes it as a C array of BPF instructions (as the sandbox's
 * generator does), so berthd carries no libseccomp.
 *
 * The unpacker parses a hostile archive with libarchive and writes files beneath
 * one directory fd. Whatever a bug in that parsing lets an attacker run, it should
 * find no door a file writer never opens: no new programs, processes or
 * namespaces, no network, no kernel interfaces with long CVE histories, no device
 * nodes, no way to regain or change credentials. Allow by default (glibc, ASan and
 * the libraries' own needs vary), refuse these with EPERM. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

static const char *const denied[] = {
    /* running anything else, or leaving a process behind that outlives the
     * unpacker and keeps changing the tree while root swaps it in */
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    /* the network, and sockets of any family (AF_UNIX reaches host daemons) */
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "socketcall",
    /* file system topology */
    "mount", "umount", "umount2", "pivot_root", "chroot",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    /* device nodes and fifos: an unpacker makes files, folders and links only */
    "mknod", "mknodat",
    /* other processes */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal",
    /* credentials: the unpacker is the site's already and stays so */
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
    "setgroups", "capset", "setuid32", "setgid32", "setreuid32", "setregid32", "setresuid32",
    "setresgid32", "setfsuid32", "setfsgid32", "setgroups32",
    /* the kernel itself */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "create_module", "get_kernel_syms", "query_module", "bpf", "perf_event_open",
    "lookup_dcookie", "iopl", "ioperm", "vm86", "vm86old", "syslog", "uselib",
    "nfsservctl", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "personality",
    /* the kernel keyring is not namespaced */
    "keyctl", "add_key", "request_key",
    /* userfaultfd makes kernel races easy to win (used by many exploits) */
    "userfaultfd",
    /* io_uring runs file operations the filter never sees */
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* namespaces */
    "unshare", "setns",
    /* the clock */
    "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex",
    "clock_adjtime", "clock_adjtime64",
    /* open_by_handle_at reaches any inode by handle (CVE-2014-3519) */
    "open_by_handle_at", "name_to_handle_at",
    "vhangup", "fanotify_init",
};

static int add_rules(scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;   /* unknown to this libseccomp: nothing to deny */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0 && r != -EDOM)
            return r;
    }
    /* The unpacker keeps berthd's stdio for sanitizer reports; TIOCSTI would push
     * bytes into a terminal's input there (CVE-2017-5226). */
    static const unsigned long ioctls[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < ARRAY_SIZE(ioctls); i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, ioctls[i]));
        if (r < 0)
            return r;
    }
    return 0;
}

static int compile(struct sock_fprog *ret)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    struct sock_filter *insns = NULL;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    int r = 0;
    /* Rules for x86_64 alone would leave the i386 and x32 entry points open. */
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
            goto out;
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
            goto out;
    }
    if ((r = add_rules(ctx)) < 0)
        goto out;
    fd = memfd_create("berth-unpacker-seccomp", MFD_CLOEXEC);
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

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: unpacker-seccomp-gen OUTPUT.h\n");
        return 2;
    }
    struct sock_fprog prog = { 0 };
    int r = compile(&prog);
    if (r < 0) {
        fprintf(stderr, "unpacker-seccomp-gen: %s\n", strerror(-r));
        return 1;
    }
    FILE *f = fopen(argv[1], "we");
    if (!f) {
        perror(argv[1]);
        free(prog.filter);
        return 1;
    }
    fprintf(f, "/* Generated by unpacker-seccomp-gen at build time: do not edit. */\n"
               "#pragma once\n#include <linux/filter.h>\n"
               "static const struct sock_filter unpacker_seccomp_bpf[] = {\n");
    for (unsigned i = 0; i < prog.len; i++)
        fprintf(f, "    { 0x%04x, %u, %u, 0x%08x },\n", prog.filter[i].code, prog.filter[i].jt,
                prog.filter[i].jf, prog.filter[i].k);
    fprintf(f, "};\n");
    free(prog.filter);
    return fclose(f) == 0 ? 0 : 1;
}

/* sandbox-probe: run inside a sandbox, attempts one action and prints its exact
 * outcome on stdout, "ACTION ok [detail]" or "ACTION errno=ENAME", so the tests can
 * check the specific reason an action failed (crun's tests/init.c does the same). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *action;

static int report(long r)
{
    if (r < 0) {
        printf("%s errno=%s\n", action, strerrorname_np(errno));
        return 1;
    }
    printf("%s ok\n", action);
    return 0;
}

static long arg_long(int argc, char **argv, int i)
{
    if (argc <= i) {
        fprintf(stderr, "probe: %s needs an argument\n", action);
        exit(2);
    }
    return strtol(argv[i], NULL, 0);
}

/* int 0x80: the i386 ABI from a 64-bit process; a filter that forgot the x86
 * architecture would let the call through. */
static long syscall_i386(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

/* socketcall(SYS_SOCKET, {family, type, 0}) through int 0x80: the i386 way to make a
 * socket, with its arguments in memory the kernel reads through a 32-bit pointer. */
static long socketcall_i386_socket(long family, long type)
{
    unsigned *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (args == MAP_FAILED)
        return -1;
    args[0] = (unsigned)family;
    args[1] = (unsigned)type;
    args[2] = 0;
    return syscall_i386(102, 1, (long)(uintptr_t)args, 0);
}

static int list_pids(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return report(-1);
    printf("%s ok", action);
    struct dirent *de;
    int pids[4096];
    int n = 0;
    while ((de = readdir(d)) && n < 4096)
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
            pids[n++] = atoi(de->d_name);
    closedir(d);
    for (int i = 0; i < n; i++)
        printf(" %d", pids[i]);
    printf("\n");
    return 0;
}

static int show_status(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return report(-1);
    char line[256];
    printf("%s ok", action);
    static const char *keys[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:",
                                  "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:" };
    while (fgets(line, sizeof(line), f)) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            size_t kl = strlen(keys[i]);
            if (strncmp(line, keys[i], kl) != 0)
                continue;
            /* "Uid:\t1\t1\t1\t1" -> " Uid=1,1,1,1" */
            char *v = line + kl;
            while (*v == '\t' || *v == ' ')
                v++;
            v[strcspn(v, "\n")] = 0;
            for (char *p = v; *p; p++)
                if (*p == '\t' || *p == ' ')
                    *p = ',';
            printf(" %.*s=%s", (int)(kl - 1), keys[i], v);
        }
    }
    fclose(f);
    printf(" pid=%d\n", getpid());
    return 0;
}

static int fork_bomb(long max)
{
    pid_t kids[4096];
    long n = 0;
    if (max > 4096)
        max = 4096;
    int err = 0;
    while (n < max) {
        pid_t p = fork();
        if (p < 0) {
            err = errno;
            break;
        }
        if (p == 0) {
            pause();
            _exit(0);
        }
        kids[n++] = p;
    }
    for (long i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    if (err) {
        printf("%s errno=%s after=%ld\n", action, strerrorname_np(err), n);
        return 1;
    }
    printf("%s ok after=%ld\n", action, n);
    return 0;
}

static int alloc_mb(long mb)
{
    /* Touch every page so the memory is really charged to the cgroup. */
    for (long i = 0; i < mb; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return report(-1);
        memset(p, 0x5a, 1 << 20);
    }
    printf("%s ok mb=%ld\n", action, mb);
    return 0;
}

static int net_ifaces(void)
{
    FILE *f = fopen("/proc/net/dev", "re");
    if (!f)
        return report(-1);
    char line[512];
    printf("%s ok", action);
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (++n <= 2)
            continue;
        char *c = strchr(line, ':');
        if (!c)
            continue;
        *c = 0;
        char *s = line;
        while (*s == ' ')
            s++;
        printf(" %s", s);
    }
    fclose(f);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: sandbox-probe ACTION [ARG]...\n");
        return 2;
    }
    action = argv[1];
    const char *a2 = argc > 2 ? argv[2] : "";

    if (!strcmp(action, "read"))
        return report(open(a2, O_RDONLY | O_CLOEXEC));
    if (!strcmp(action, "write"))
        return report(open(a2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!strcmp(action, "mkdir"))
        return report(mkdir(a2, 0755));
    if (!strcmp(action, "stat"))
        {
            struct stat st;
            return report(stat(a2, &st));
        }
    if (!strcmp(action, "mount"))
        return report(mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(action, "umount"))
        return report(umount2("/proc", MNT_DETACH));
    if (!strcmp(action, "ptrace"))
        return report(ptrace(PTRACE_ATTACH, (pid_t)arg_long(argc, argv, 2), 0, 0));
    if (!strcmp(action, "init_module"))
        return report(syscall(SYS_init_module, NULL, 0, ""));
    if (!strcmp(action, "bpf"))
        return report(syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(action, "keyctl"))
        return report(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (!strcmp(action, "clock_settime")) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return report(clock_settime(CLOCK_REALTIME, &ts));
    }
    if (!strcmp(action, "unshare_user"))
        return report(unshare(CLONE_NEWUSER));
    if (!strcmp(action, "unshare_net"))
        return report(unshare(CLONE_NEWNET));
    if (!strcmp(action, "clone_newns") || !strcmp(action, "clone_plain")) {
        long flags = SIGCHLD | (!strcmp(action, "clone_newns") ? CLONE_NEWNS : 0);
        long p = syscall(SYS_clone, flags, 0, NULL, NULL, 0);
        if (p == 0)
            _exit(0);
        if (p > 0)
            waitpid((pid_t)p, NULL, 0);
        return report(p);
    }
    if (!strcmp(action, "clone3")) {
        uint64_t args[11] = { 0 };
        args[4] = SIGCHLD;   /* exit_signal */
        long p = syscall(SYS_clone3, args, 88);
        if (p == 0)
            _exit(0);
        if (p > 0)
            waitpid((pid_t)p, NULL, 0);
        return report(p);
    }
    if (!strcmp(action, "setns"))
        return report(setns(0, 0));
    if (!strcmp(action, "open_by_handle_at"))
        return report(syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    if (!strcmp(action, "tiocsti")) {
        char c = 'x';
        return report(ioctl(0, TIOCSTI, &c));
    }
    if (!strcmp(action, "tiocsti_hi")) {
        /* the same command with junk in the upper 32 bits of the register */
        char c = 'x';
        return report(syscall(SYS_ioctl, 0, 0xdead000000000000ul | TIOCSTI, &c));
    }
    if (!strcmp(action, "personality"))
        return report(personality((unsigned long)arg_long(argc, argv, 2)));
    if (!strcmp(action, "personality_i386"))
        return report(syscall_i386(136, arg_long(argc, argv, 2), 0, 0));
    if (!strcmp(action, "unshare_i386"))
        return report(syscall_i386(310, CLONE_NEWUSER, 0, 0));
    if (!strcmp(action, "socket"))
        return report(socket((int)arg_long(argc, argv, 2), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!strcmp(action, "socket_hi"))
        /* the family with junk in the upper 32 bits, which the kernel drops (int) */
        return report(syscall(SYS_socket, 0x100000000l | arg_long(argc, argv, 2), SOCK_STREAM, 0));
    if (!strcmp(action, "socket_i386"))
        return report(syscall_i386(359, arg_long(argc, argv, 2), SOCK_STREAM, 0));
    if (!strcmp(action, "socketcall_i386"))
        return report(socketcall_i386_socket(arg_long(argc, argv, 2), SOCK_STREAM));
    if (!strcmp(action, "x32"))
        /* the x32 ABI: x86_64's entry with __X32_SYSCALL_BIT in the number. A kernel
         * without x32 answers ENOSYS to what the filter lets through. */
        return report(syscall(0x40000000l | arg_long(argc, argv, 2), argc > 3 ? arg_long(argc, argv, 3) : 0,
                              argc > 4 ? arg_long(argc, argv, 4) : 0, 0, 0, 0));
    if (!strcmp(action, "setuid0"))
        return report(setuid(0));
    if (!strcmp(action, "kill"))
        return report(kill((pid_t)arg_long(argc, argv, 2), 0));
    if (!strcmp(action, "chroot"))
        return report(chroot("/tmp"));
    if (!strcmp(action, "pids"))
        return list_pids();
    if (!strcmp(action, "status"))
        return show_status();
    if (!strcmp(action, "forkbomb"))
        return fork_bomb(arg_long(argc, argv, 2));
    if (!strcmp(action, "alloc"))
        return alloc_mb(arg_long(argc, argv, 2));
    if (!strcmp(action, "net"))
        return net_ifaces();
    if (!strcmp(action, "hostname")) {
        char h[256] = "";
        gethostname(h, sizeof(h));
        char cwd[256] = "";
        if (!getcwd(cwd, sizeof(cwd)))
            cwd[0] = 0;
        printf("%s ok %s cwd=%s\n", action, h, cwd);
        return 0;
    }
    if (!strcmp(action, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        if (!d)
            return report(-1);
        printf("%s ok", action);
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
                printf(" %s", de->d_name);
        closedir(d);
        printf("\n");
        return 0;
    }
    if (!strcmp(action, "env")) {
        const char *v = getenv(a2);
        printf("%s ok %s=%s\n", action, a2, v ? v : "(unset)");
        return 0;
    }
    if (!strcmp(action, "sleep")) {
        printf("%s ok\n", action);
        fflush(stdout);
        sleep((unsigned)arg_long(argc, argv, 2));
        return 0;
    }
    if (!strcmp(action, "exit"))
        return (int)arg_long(argc, argv, 2);
    fprintf(stderr, "probe: unknown action %s\n", action);
    return 2;
}

/* The unpacker: the process that parses an archive and writes its entries, as the
 * site's own uid and nothing more.
 *
 * libarchive parses bytes a user chose. A memory-safety bug there (or in our entry
 * handling) reached by a hostile archive must find a process that can do no more
 * than the site itself: the site's uid and gid, no supplementary groups, no
 * capabilities (bounding set empty too), no_new_privs, a seccomp filter, a root
 * (chroot) where no path resolves, and besides stdio only three fds: the archive
 * (read-only), the tree it fills and the pipe it reports on. The files it makes
 * are the site's because the site's uid makes them; their group comes from the
 * setgid tree root prepared them in (the front's, for public/).
 *
 * Root keeps what needs root: the staging directory, the tree's owner, the swap and
 * removing the old tree, none of which follows a link the unpacker could have made.
 *
 * The sequence, in the child (bubblewrap's order; each step's reason beside it):
 *   close fds → chroot into the staging directory → empty the bounding set →
 *   groups, gid, uid → capabilities cleared and checked → parent-death signal →
 *   not dumpable → umask, file size limit → no_new_privs → seccomp → the work →
 *   one report → _exit. */
#include "upload/upload-internal.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/proc.h"
#include "upload/unpacker-seccomp-bpf.h"

/* The unpacker's report, of fixed size; the reader loops until it has it all. */
struct unpacker_report {
    int r;
    struct error err;
    struct upload_stats stats;
};

int upload_unpacker_creds_check(uid_t uid, gid_t gid)
{
    /* Root, or the "no change" id, would keep root's powers. */
    if (uid == 0 || gid == 0 || uid == (uid_t)-1 || gid == (gid_t)-1)
        return -EINVAL;
    return 0;
}

static int drop_bounding(void)
{
    /* Emptying the bounding set needs CAP_SETPCAP: while still root. The loop stops
     * at the first number the kernel does not know (EINVAL past cap_last_cap). */
    for (unsigned long cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break;
            return -errno;
        }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

static int become(uid_t uid, gid_t gid)
{
    /* Root's supplementary groups (gid 0 among them) survive setresgid. */
    if (setgroups(0, NULL) < 0)
        return -errno;
    if (setresgid(gid, gid, gid) < 0)
        return -errno;
    /* All three uids non-zero: the kernel clears permitted, effective and ambient
     * capabilities (capabilities(7), "Effect of user ID changes"). */
    if (setresuid(uid, uid, uid) < 0)
        return -errno;
    /* The inheritable set is not cleared by that: clear all, then read back. */
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2] = { { 0 } };
    if (syscall(SYS_capset, &hdr, data) < 0 || syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    for (size_t i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return -EPERM;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return -errno;
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid || getgroups(0, NULL) != 0)
        return -EPERM;
    /* Regaining root must be impossible now (bubblewrap checks the same). */
    if (setuid(0) == 0)
        return -EPERM;
    return 0;
}

static int seccomp_install(void)
{
    const struct sock_fprog prog = {
        .len = (unsigned short)ARRAY_SIZE(unpacker_seccomp_bpf),
        .filter = (struct sock_filter *)unpacker_seccomp_bpf,
    };
    /* seccomp(2): fails loudly on a kernel without filters, never runs unfiltered. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}

/* Confines every path lookup to root_fd (the staging directory, root's and 0700):
 * once the uid is the site's, nothing can be found by path at all, only through
 * the tree fd. Never the tree itself as the root: files the archive put at
 * /usr/lib/.../gconv or /etc/nsswitch.conf would be what glibc loads. chroot
 * needs CAP_SYS_CHROOT: while still root. The escape by a second chroot is closed
 * by the lost capability and by seccomp; no fd of a directory outside is kept. */
static int enter_root(int root_fd)
{
    if (fchdir(root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
        return -errno;
    return 0;
}

/* Test hook: with BERTH_TEST_UNPACKER_GATE set, the unpacker, fully confined,
 * waits for its parent to close the write end of a pipe, which the parent does
 * once the gate file exists (proc_test_gate). The parent waits rather than the
 * unpacker: the unpacker can see no path, and a directory fd kept for it would be
 * a way out of its root. */
static void gate_pass(int go_fd)
{
    if (go_fd < 0)
        return;
    char c;
    while (read(go_fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(go_fd);
}

static void report(int fd, const struct unpacker_report *rep)
{
    const char *p = (const char *)rep;
    size_t left = sizeof(*rep);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(1);
        p += n;
        left -= (size_t)n;
    }
}

/* The unpacker's whole life; fds: its root, the tree, the archive, the report pipe
 * (write end), the test gate's pipe (read end; -1 without a gate). */
static _noreturn_ void unpacker_main(int root_fd, int tree_fd, int archive_fd, int pipe_fd, int go_fd, pid_t parent,
                                     uid_t uid, gid_t gid, const struct upload_limits *limits, upload_unpack_fn fn,
                                     void *data)
{
    struct unpacker_report rep = { 0 };
    int r;
    const char *step;

    /* Nothing of berthd's (its database, sockets, other children's ends) may be
     * within reach of a parser bug. 0-2 stay: sanitizer reports go to stderr. */
    proc_close_fds_except((int[]){ root_fd, tree_fd, archive_fd, pipe_fd, go_fd }, 5);
    step = "entering the staging directory as its root";
    if ((r = enter_root(root_fd)) < 0)
        goto fail;
    if (root_fd != tree_fd && root_fd != archive_fd)
        close(root_fd);
    step = "emptying its capability bounding set";
    if ((r = drop_bounding()) < 0)
        goto fail;
    step = "becoming the site's user";
    if ((r = become(uid, gid)) < 0)
        goto fail;
    /* A credential change clears the parent-death signal (commit_creds): set it
     * now, then check the parent did not die before it was set. */
    step = "setting its parent-death signal";
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
        r = -errno;
        goto fail;
    }
    if (getppid() != parent)
        _exit(1);
    /* The site's other processes share its uid: not dumpable keeps them from
     * ptrace and /proc/PID/mem (they cannot see this pid either, in their own
     * pid namespace). */
    step = "making itself not dumpable";
    if (prctl(PR_SET_DUMPABLE, 0) < 0) {
        r = -errno;
        goto fail;
    }
    /* Directories are made 0750 and inherit the setgid bit from their parent; a
     * chmod by a process outside the directory's group would clear that bit. */
    umask(027);
    /* The kernel's own cap on one file, behind extract.c's count. */
    step = "limiting its file sizes";
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit fsize = { limits->max_entry_bytes, limits->max_entry_bytes };
    struct rlimit core = { 0, 0 };
    if (setrlimit(RLIMIT_FSIZE, &fsize) < 0 || setrlimit(RLIMIT_CORE, &core) < 0) {
        r = -errno;
        goto fail;
    }
    /* No execve could grant anything back, and seccomp needs it without
     * CAP_SYS_ADMIN. */
    step = "setting no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        r = -errno;
        goto fail;
    }
    step = "installing its seccomp filter";
    if ((r = seccomp_install()) < 0)
        goto fail;

    gate_pass(go_fd);   /* a test reads /proc/PID/status here */
    rep.r = fn(tree_fd, archive_fd, data, &rep.err, &rep.stats);
    if (rep.r < 0 && rep.err.code == 0)
        error_set(&rep.err, rep.r, "unpacking failed: %s", strerror(-rep.r));
    report(pipe_fd, &rep);
    _exit(0);
fail:
    rep.r = r;
    error_set(&rep.err, r, "cannot start the unpacking process: %s failed: %s", step, strerror(-r));
    report(pipe_fd, &rep);
    _exit(1);
}

/* A read-only fd of the archive at archive_fd's offset: the upload's body is a
 * read-write temp file, and the unpacker has no business writing to it. A fd that
 * is not a regular file is passed on as it is (dup'd). */
static int reopen_read_only(int archive_fd)
{
    struct stat st;
    if (fstat(archive_fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (fcntl(archive_fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
        int fd = fcntl(archive_fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
    }
    off_t pos = lseek(archive_fd, 0, SEEK_CUR);
    if (pos < 0)
        return -errno;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", archive_fd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat again;
    /* The same file, not whatever the magic link resolved to. */
    if (fstat(fd, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino ||
        lseek(fd, pos, SEEK_SET) != pos) {
        close(fd);
        return -EIO;
    }
    return fd;
}

int upload_unpacker_run(int root_fd, int tree_fd, int archive_fd, uid_t uid, gid_t gid,
                        const struct upload_limits *limits, upload_unpack_fn fn, void *data, struct error *err,
                        struct upload_stats *ret_stats)
{
    struct upload_limits defaults;
    if (!limits) {
        upload_limits_default(&defaults);
        limits = &defaults;
    }
    if (upload_unpacker_creds_check(uid, gid) < 0)
        return error_set(err, -EINVAL, "cannot unpack as uid %u, gid %u: the site's own ids are needed",
                         (unsigned)uid, (unsigned)gid);
    _cleanup_close_ int archive = reopen_read_only(archive_fd);
    if (archive < 0)
        return error_set(err, archive, "cannot start the unpacking process: cannot reopen the archive: %s",
                         strerror(-archive));
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return error_set(err, -errno, "cannot start the unpacking process: cannot make a pipe: %m");
    int go[2] = { -1, -1 };
    if (getenv("BERTH_TEST_UNPACKER_GATE") && pipe2(go, O_CLOEXEC) < 0)
        go[0] = go[1] = -1;
    pid_t parent = getpid();
    /* Test hook: a fork that fails, so the error path is seen end to end. */
    pid_t pid = getenv("BERTH_TEST_UNPACKER_FORK_FAIL") ? (errno = EAGAIN, -1) : fork();
    if (pid < 0) {
        int r = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        safe_close(go[0]);
        safe_close(go[1]);
        return error_set(err, r, "cannot start the unpacking process: %s", strerror(-r));
    }
    if (pid == 0) {
        close(pipefd[0]);
        safe_close(go[1]);
        unpacker_main(root_fd, tree_fd, archive, pipefd[1], go[0], parent, uid, gid, limits, fn, data);
    }
    close(pipefd[1]);
    safe_close(go[0]);
    if (go[1] >= 0) {
        proc_test_gate("BERTH_TEST_UNPACKER_GATE");
        close(go[1]);
    }

    struct unpacker_report rep;
    size_t got = 0;
    while (got < sizeof(rep)) {
        ssize_t n = read(pipefd[0], (char *)&rep + got, sizeof(rep) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(rep)) {
        if (WIFSIGNALED(status))
            return error_set(err, -EIO, "the unpacking process was killed by signal %d (%s)", WTERMSIG(status),
                             strsignal(WTERMSIG(status)));
        return error_set(err, -EIO, "the unpacking process ended without a result (exit status %d)",
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    /* Its words are the site's words: a message and counts for the answer, never
     * a reason to trust the tree more. */
    rep.err.message[sizeof(rep.err.message) - 1] = 0;
    if (rep.r < 0) {
        if (err)
            *err = rep.err;
        return rep.r;
    }
    if (ret_stats)
        *ret_stats = rep.stats;
    return 0;
}

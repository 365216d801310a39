/* sandbox_spawn: the one linear sequence that turns a clone of berthd into a site's
 * program. Every step that can fail in the child reports (step, errno) over the sync
 * socket and _exits; the parent turns that into its return value. See
 * docs/internals/sandbox.md for the order and the reasons behind it. */
#include "sandbox/sandbox-internal.h"

#include <fcntl.h>
#include <sched.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/names.h"

#define SYNC_TIMEOUT_MS 10000
#define MAX_PASS_FDS 250

enum { MSG_ERROR = 1, MSG_PID = 2 };

struct sync_msg {
    int32_t kind;
    int32_t step;
    int32_t value;   /* errno for MSG_ERROR, host pid for MSG_PID */
};

/* Prepared by the parent, read (never freed) by the child. */
struct spawn_ctx {
    const struct sandbox_config *cfg;
    struct sandbox_root_plan plan;
    char **envp;                 /* cfg->envp + LISTEN_FDS/LISTEN_PID */
    char listen_fds[32];
    char listen_pid[32];         /* filled in by the child right before execve */
    bool has_listen_pid;
    struct sandbox_nat_plan nat_plan;   /* network nat: eth0's addresses and routes */
    int sock;                    /* child's end of the sync socket pair */
};

static const char *const step_names[] = {
    [SANDBOX_STEP_NONE] = "none",
    [SANDBOX_STEP_CLONE] = "clone",
    [SANDBOX_STEP_CGROUP] = "cgroup",
    [SANDBOX_STEP_SETNS] = "setns",
    [SANDBOX_STEP_MOUNT_PRIVATE] = "mount-private",
    [SANDBOX_STEP_ROOT] = "root",
    [SANDBOX_STEP_BIND] = "bind",
    [SANDBOX_STEP_SITE_DIR] = "site-dir",
    [SANDBOX_STEP_ETC] = "etc",
    [SANDBOX_STEP_DEV] = "dev",
    [SANDBOX_STEP_PROC] = "proc",
    [SANDBOX_STEP_TMP] = "tmp",
    [SANDBOX_STEP_PIVOT_ROOT] = "pivot-root",
    [SANDBOX_STEP_REMOUNT_RO] = "remount-ro",
    [SANDBOX_STEP_HOSTNAME] = "hostname",
    [SANDBOX_STEP_NETWORK] = "network",
    [SANDBOX_STEP_FORK] = "fork",
    [SANDBOX_STEP_FDS] = "fds",
    [SANDBOX_STEP_CAPS] = "caps",
    [SANDBOX_STEP_UID] = "uid",
    [SANDBOX_STEP_NO_NEW_PRIVS] = "no-new-privs",
    [SANDBOX_STEP_SECCOMP] = "seccomp",
    [SANDBOX_STEP_CHDIR] = "chdir",
    [SANDBOX_STEP_EXEC] = "exec",
    [SANDBOX_STEP_TIMEOUT] = "timeout",
};

const char *sandbox_step_to_string(int step)
{
    if (step < 0 || step >= _SANDBOX_STEP_MAX || !step_names[step])
        return "unknown";
    return step_names[step];
}

void sandbox_config_init(struct sandbox_config *cfg)
{
    *cfg = (struct sandbox_config){
        .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1,
        .network = SANDBOX_NETWORK_NONE, .join_pidfd = -1, .join_net_pidfd = -1,
    };
}

/* ---- child ---- */

static _noreturn_ void child_fail(int sock, int step, int error)
{
    struct sync_msg m = { MSG_ERROR, step, error < 0 ? -error : error };
    (void)!send(sock, &m, sizeof(m), MSG_NOSIGNAL);
    _exit(127);
}

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void noop_handler(int sig) { (void)sig; }

/* berthd's ignored signals (SIGPIPE...) would survive execve (signal(7)); the
 * program must start from the defaults with nothing blocked. */
static void reset_signals(void)
{
    struct sigaction sa = { .sa_handler = SIG_DFL };
    for (int sig = 1; sig < _NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Moves the caller's fds to 0, 1, 2 (stdio, /dev/null when -1) and 3.. (cfg->fds),
 * keeps *sock above them, and closes everything else: berthd's database, its API
 * socket and other sites' sockets must not leak into the sandbox. */
static int setup_fds(const struct sandbox_config *cfg, int *sock)
{
    const int n = 3 + (int)cfg->n_fds;
    int src[3 + MAX_PASS_FDS];
    src[0] = cfg->stdin_fd;
    src[1] = cfg->stdout_fd;
    src[2] = cfg->stderr_fd;
    for (size_t i = 0; i < cfg->n_fds; i++)
        src[3 + i] = cfg->fds[i];

    int s = fcntl(*sock, F_DUPFD_CLOEXEC, n);
    if (s < 0)
        return -errno;
    close(*sock);
    *sock = s;

    /* First lift every source above the targets, so that dup2 onto a target never
     * clobbers a source still to be moved. */
    for (int i = 0; i < n; i++) {
        int fd = src[i];
        if (fd < 0) {
            fd = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (fd < 0)
                return -errno;
            if (fd < n) {
                int hi = fcntl(fd, F_DUPFD_CLOEXEC, n);
                if (hi < 0)
                    return -errno;
                close(fd);
                fd = hi;
            }
        } else {
            fd = fcntl(fd, F_DUPFD_CLOEXEC, n);
            if (fd < 0)
                return -errno;
        }
        src[i] = fd;
    }
    for (int i = 0; i < n; i++)
        if (dup2(src[i], i) < 0)   /* dup2 leaves the new fd without FD_CLOEXEC */
            return -errno;
    if (*sock > n && close_range((unsigned)n, (unsigned)*sock - 1, 0) < 0)
        return -errno;
    if (close_range((unsigned)*sock + 1, ~0U, 0) < 0)
        return -errno;
    return 0;
}

/* Files one process of a site may hold open. berthd itself may be allowed far more
 * (the shipped unit gives it 1048576) and would hand that on: each open file is
 * kernel memory. A site's backend sees at most site_max_requests (1024) requests at
 * once, so this leaves ample room. Lowering needs no privilege; the hard limit
 * keeps the site from raising it again. */
#define SANDBOX_MAX_OPEN_FILES 16384

static void cap_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rl.rlim_cur = MIN(rl.rlim_cur, (rlim_t)SANDBOX_MAX_OPEN_FILES);
    rl.rlim_max = MIN(rl.rlim_max, (rlim_t)SANDBOX_MAX_OPEN_FILES);
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* The tail every program goes through: fds, capabilities, uid, no_new_privs,
 * seccomp, execve. Never returns. */
static _noreturn_ void child_exec(struct spawn_ctx *ctx)
{
    const struct sandbox_config *cfg = ctx->cfg;
    int sock = ctx->sock;
    int r, step;

    /* A new session has no controlling terminal, so TIOCSTI on an inherited tty
     * could not type into the caller's shell anyway (CVE-2017-5226). */
    (void)setsid();
    reset_signals();

    if ((r = setup_fds(cfg, &sock)) < 0)
        child_fail(sock, SANDBOX_STEP_FDS, r);
    /* Only a terminal berthd made for this program (a pty slave): the caller's own
     * terminal is never passed in, so this cannot capture it. */
    if (cfg->stdin_ctty && ioctl(0, TIOCSCTTY, 0) < 0)
        child_fail(sock, SANDBOX_STEP_FDS, -errno);
    cap_open_files();

    if ((r = sandbox_caps_drop_bounding()) < 0)
        child_fail(sock, SANDBOX_STEP_CAPS, r);
    if ((r = sandbox_caps_drop_to_user(cfg->uid, cfg->gid, &step)) < 0)
        child_fail(sock, step, r);

    if (chdir("/site") < 0)
        child_fail(sock, SANDBOX_STEP_CHDIR, errno);

    /* no_new_privs: execve of a setuid or file-capability binary cannot raise
     * privileges again, and seccomp may be installed without CAP_SYS_ADMIN. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(sock, SANDBOX_STEP_NO_NEW_PRIVS, errno);

    if (ctx->has_listen_pid)
        snprintf(ctx->listen_pid, sizeof(ctx->listen_pid), "LISTEN_PID=%d", getpid());

    /* Seccomp last: everything above needed mount, setns or prctl calls that the
     * filter refuses. */
    if ((r = sandbox_seccomp_install()) < 0)
        child_fail(sock, SANDBOX_STEP_SECCOMP, r);

    execve(cfg->argv[0], (char *const *)cfg->argv, ctx->envp);
    child_fail(sock, SANDBOX_STEP_EXEC, errno);
}

/* pid 1 of a fresh sandbox: forwards termination signals to the program, reaps
 * every orphan the pid namespace hands it, and exits like the program did. The
 * kernel delivers to a namespace's init only the signals it handles (or blocks),
 * so the forwarded ones get a handler and are then taken with sigwaitinfo. */
static _noreturn_ void reaper_run(struct spawn_ctx *ctx)
{
    const struct sandbox_config *cfg = ctx->cfg;
    int sock = ctx->sock;
    int r, step;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
        sigaddset(&set, forwarded[i]);
    struct sigaction sa = { .sa_handler = noop_handler };
    for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
        (void)sigaction(forwarded[i], &sa, NULL);
    (void)sigaction(SIGCHLD, &sa, NULL);
    /* Blocked before fork, so a SIGCHLD from a program that dies at once waits
     * for sigwaitinfo instead of being lost. */
    (void)sigprocmask(SIG_BLOCK, &set, NULL);
    /* The reaper runs as the site's user too: it gets the program's cap, not
     * berthd's limit. */
    cap_open_files();

    pid_t child = fork();
    if (child < 0)
        child_fail(sock, SANDBOX_STEP_FORK, errno);
    if (child == 0)
        child_exec(ctx);

    /* The reaper keeps nothing: no fds (not even the sync socket: the parent's
     * EOF must come from the program's execve), no capabilities, the site's uid. */
    if (close_range(0, ~0U, 0) < 0)
        _exit(127);
    if (sandbox_caps_drop_bounding() < 0 || sandbox_caps_drop_to_user(cfg->uid, cfg->gid, &step) < 0)
        _exit(127);
    /* Not dumpable: the site's processes, though they share its uid, cannot open
     * its /proc/1/mem and take over the namespace's init. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || sandbox_seccomp_install() < 0)
        _exit(127);
    (void)r;

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            (void)kill(child, sig);
            continue;
        }
        int status;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
            if (p != child)
                continue;
            if (WIFEXITED(status))
                _exit(WEXITSTATUS(status));
            _exit(128 + WTERMSIG(status));
        }
    }
}

/* A fresh nat sandbox that enters the network namespace of another sandbox of
 * its site: one address per site, so a second veth would take the first's away. */
static bool shares_network(const struct sandbox_config *cfg)
{
    return cfg->join_pidfd < 0 && cfg->network == SANDBOX_NETWORK_NAT && cfg->join_net_pidfd >= 0;
}

static _noreturn_ void child_fresh(struct spawn_ctx *ctx)
{
    const struct sandbox_config *cfg = ctx->cfg;
    int sock = ctx->sock;
    int r, step = SANDBOX_STEP_NONE;
    char go;

    /* Sync point 1: wait until the parent has put us into the v1 cgroups (the
     * cgroup namespace below must be rooted at the site's cgroup, not berthd's)
     * and, for network nat, has made our end of the veth pair, eth0, in our
     * network namespace. */
    if (read(sock, &go, 1) != 1)
        _exit(127);
    if (unshare(CLONE_NEWCGROUP) < 0)
        child_fail(sock, SANDBOX_STEP_CGROUP, errno);

    if (sethostname(cfg->name, strlen(cfg->name)) < 0)
        child_fail(sock, SANDBOX_STEP_HOSTNAME, errno);
    if (shares_network(cfg)) {
        /* Configured already, by the sandbox we join. */
        if (setns(cfg->join_net_pidfd, CLONE_NEWNET) < 0)
            child_fail(sock, SANDBOX_STEP_NETWORK, errno);
    } else {
        if (cfg->network != SANDBOX_NETWORK_HOST && (r = sandbox_net_loopback_up()) < 0)
            child_fail(sock, SANDBOX_STEP_NETWORK, r);
        /* eth0 is configured from inside, where we still hold CAP_NET_ADMIN over
         * our own namespace: berthd never has to setns into it. */
        if (cfg->network == SANDBOX_NETWORK_NAT && (r = sandbox_net_nat_configure(&ctx->nat_plan)) < 0)
            child_fail(sock, SANDBOX_STEP_NETWORK, r);
    }

    if ((r = sandbox_mount_build(&ctx->plan, &step)) < 0)
        child_fail(sock, step, r);

    if (cfg->no_reaper)
        child_exec(ctx);
    reaper_run(ctx);
}

static _noreturn_ void child_join(struct spawn_ctx *ctx)
{
    int sock = ctx->sock;
    char go;
    if (read(sock, &go, 1) != 1)
        _exit(127);

    /* setns with a pidfd enters several namespaces atomically (5.8). The pid
     * namespace applies to children only (setns(2)), hence the clone below. */
    if (setns(ctx->cfg->join_pidfd, CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                                        CLONE_NEWNET | CLONE_NEWCGROUP) < 0)
        child_fail(sock, SANDBOX_STEP_SETNS, errno);

    /* CLONE_PARENT: the program becomes berthd's child (not ours), so berthd can
     * reap it and hold a pidfd to it once we are gone. */
    struct clone_args args = { .flags = CLONE_PARENT };
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0)
        child_fail(sock, SANDBOX_STEP_FORK, errno);
    if (pid == 0)
        child_exec(ctx);
    struct sync_msg m = { MSG_PID, 0, pid };
    (void)!send(sock, &m, sizeof(m), MSG_NOSIGNAL);
    _exit(0);
}

/* ---- parent ---- */

static int check_config(const struct sandbox_config *cfg)
{
    if (!cfg->name || !site_name_valid(cfg->name))
        return -EINVAL;
    /* Never root inside; and -1 would mean "unchanged" to setresuid/setresgid,
     * which would leave the child with root's ids. */
    if (cfg->uid == 0 || cfg->gid == 0 || cfg->uid == (uid_t)-1 || cfg->gid == (gid_t)-1)
        return -EINVAL;
    if (!cfg->argv || !cfg->argv[0] || cfg->argv[0][0] != '/')
        return -EINVAL;
    if (cfg->n_fds > MAX_PASS_FDS || (cfg->n_fds && !cfg->fds))
        return -EINVAL;
    if (cfg->join_pidfd < 0 && (!cfg->site_dir || cfg->site_dir[0] != '/'))
        return -EINVAL;
    if (cfg->network != SANDBOX_NETWORK_NONE && cfg->network != SANDBOX_NETWORK_HOST &&
        cfg->network != SANDBOX_NETWORK_NAT)
        return -EINVAL;
    /* A joined sandbox keeps the network of the one it joins. */
    if (cfg->join_pidfd < 0 && cfg->network == SANDBOX_NETWORK_NAT && !cfg->nat)
        return -EOPNOTSUPP;
    return 0;
}

static int build_env(struct spawn_ctx *ctx)
{
    const struct sandbox_config *cfg = ctx->cfg;
    size_t n = 0;
    for (const char *const *e = cfg->envp; e && *e; e++)
        n++;
    ctx->envp = calloc(n + 3, sizeof(char *));
    if (!ctx->envp)
        return -ENOMEM;
    size_t i = 0;
    for (const char *const *e = cfg->envp; e && *e; e++)
        ctx->envp[i++] = (char *)*e;
    if (cfg->listen_env && cfg->n_fds > 0) {
        snprintf(ctx->listen_fds, sizeof(ctx->listen_fds), "LISTEN_FDS=%zu", cfg->n_fds);
        ctx->envp[i++] = ctx->listen_fds;
        ctx->envp[i++] = ctx->listen_pid;
        ctx->has_listen_pid = true;
    }
    return 0;
}

static void reap(int pidfd)
{
    siginfo_t si;
    if (pidfd >= 0)
        while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
}

static void kill_and_reap(int pidfd)
{
    if (pidfd < 0)
        return;
    (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    reap(pidfd);
}

/* Reads the child's reports until EOF (execve closed every copy of the child's
 * end) or an error. Returns 0 on EOF, or the failure as -errno with *ret_step. */
static int sync_wait(int sock, pid_t *pid_msg, int *ret_step)
{
    for (;;) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        int k = poll(&p, 1, SYNC_TIMEOUT_MS);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            *ret_step = SANDBOX_STEP_CLONE;
            return -errno;
        }
        if (k == 0) {
            *ret_step = SANDBOX_STEP_TIMEOUT;
            return -ETIMEDOUT;
        }
        struct sync_msg m;
        ssize_t n = recv(sock, &m, sizeof(m), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return 0;
        if (n != (ssize_t)sizeof(m)) {
            *ret_step = SANDBOX_STEP_CLONE;
            return n < 0 ? -errno : -EPROTO;
        }
        if (m.kind == MSG_PID) {
            *pid_msg = m.value;
            continue;
        }
        *ret_step = m.step;
        return m.value > 0 ? -m.value : -EPROTO;
    }
}

int sandbox_spawn(const struct sandbox_config *cfg, struct sandbox_error *err,
                  pid_t *ret_pid, int *ret_pidfd)
{
    struct spawn_ctx ctx = { .cfg = cfg, .sock = -1 };
    _cleanup_close_ int sock = -1, pidfd = -1;
    pid_t gpid = 0;
    int r, step = SANDBOX_STEP_NONE;
    const bool join = cfg->join_pidfd >= 0;

    if ((r = check_config(cfg)) < 0)
        return r;
    if (!join && (r = sandbox_mount_plan_prepare(cfg, &ctx.plan)) < 0) {
        step = SANDBOX_STEP_ETC;
        goto out;
    }
    if ((r = build_env(&ctx)) < 0)
        goto out;
    if (!join && cfg->network == SANDBOX_NETWORK_NAT &&
        (r = sandbox_nat_plan_prepare(cfg->nat, cfg->uid, &ctx.nat_plan)) < 0) {
        step = SANDBOX_STEP_NETWORK;
        goto out;
    }

    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        r = -errno;
        step = SANDBOX_STEP_CLONE;
        goto out;
    }
    sock = pair[0];
    ctx.sock = pair[1];

    /* Into the namespaces and (v2) the site's cgroup in one step: CLONE_INTO_CGROUP
     * (5.7) means the child never runs, not even for an instant, outside its
     * limits. v1 hierarchies are joined by the parent below before the child goes. */
    int cgfd = cfg->cgroup ? sandbox_cgroup_v2_fd(cfg->cgroup) : -1;
    struct clone_args args = {
        .flags = CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
        .cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
    };
    if (!join) {
        args.flags |= CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
        if (cfg->network != SANDBOX_NETWORK_HOST && !shares_network(cfg))
            args.flags |= CLONE_NEWNET;
    }
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        r = -errno;
        step = SANDBOX_STEP_CLONE;
        safe_close(ctx.sock);
        goto out;
    }
    if (pid == 0) {
        close(sock);
        if (join)
            child_join(&ctx);
        child_fresh(&ctx);
    }
    ctx.sock = safe_close(ctx.sock);

    if (cfg->cgroup && (r = sandbox_cgroup_attach_v1(cfg->cgroup, pid, cgfd >= 0)) < 0) {
        step = SANDBOX_STEP_CGROUP;
        kill_and_reap(pidfd);
        goto out;
    }
    /* Network nat: the veth pair, its sandbox end made directly in the child's
     * fresh namespace (named by its pid, which cannot be reused while we have not
     * reaped it). Before sync point 1, so eth0 exists when the child looks. When
     * the namespace dies with the sandbox's last process, the kernel destroys
     * the pair, host end included (default_device_exit_batch). */
    if (!join && cfg->network == SANDBOX_NETWORK_NAT && !shares_network(cfg) &&
        (r = sandbox_nat_attach(cfg->nat, &ctx.nat_plan, pid)) < 0) {
        step = SANDBOX_STEP_NETWORK;
        kill_and_reap(pidfd);
        goto out;
    }
    /* Sync point 1: release the child. */
    if (send(sock, "g", 1, MSG_NOSIGNAL) != 1) {
        r = -errno;
        step = SANDBOX_STEP_CLONE;
        kill_and_reap(pidfd);
        goto out;
    }
    /* Sync point 2: wait for execve (EOF) or a failure report. */
    r = sync_wait(sock, &gpid, &step);

    if (join) {
        /* The intermediate child exits right after cloning the program. */
        if (r < 0)
            kill_and_reap(pidfd);
        else
            reap(pidfd);
        pidfd = safe_close(pidfd);
        if (gpid > 0) {
            int gfd = (int)syscall(SYS_pidfd_open, gpid, 0);
            if (gfd < 0 && r >= 0) {
                r = -errno;
                step = SANDBOX_STEP_FORK;
            }
            if (r < 0) {
                if (gfd >= 0)
                    kill_and_reap(gfd);
                else
                    (void)waitpid(gpid, NULL, 0);
                safe_close(gfd);
            } else {
                pid = gpid;
                pidfd = gfd;
            }
        } else if (r >= 0) {
            r = -EPROTO;
            step = SANDBOX_STEP_FORK;
        }
    } else if (r < 0) {
        kill_and_reap(pidfd);
    }
    if (r >= 0) {
        *ret_pid = pid;
        *ret_pidfd = TAKE_FD(pidfd);
    }
out:
    if (r < 0 && err)
        *err = (struct sandbox_error){ .step = step, .error = -r };
    free(ctx.envp);
    if (!join)
        sandbox_mount_plan_done(&ctx.plan);
    return r;
}

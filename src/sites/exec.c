/* berthd's side of `berth site exec`: a root-only SOCK_SEQPACKET socket where the
 * CLI hands over its stdio and an argv, and gets the exit status back. Wire format
 * and design in docs/internals/sites-runtime.md. */
#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#include "common/log.h"
#include "common/names.h"
#include "sites/sites.h"

#define EXEC_MSG_MAX 65536
#define EXEC_ARGS_MAX 256

struct exec_conn {
    struct sites_exec *x;
    struct exec_conn *next;
    int fd;                 /* the CLI's connection */
    int stdio[3];           /* the CLI's stdin, stdout, stderr */
    int master;             /* pty master (tty mode), else -1 */
    int out;                /* which of stdio the master's output goes to */
    int out_fd;             /* our own non-blocking opening of it, or -1: use stdio[out] */
    uint32_t master_events; /* what the master is watched for (0: not watched) */
    bool master_eof;        /* no slave left open: nothing more to read */
    bool stdin_watched, out_watched;
    bool exited;            /* the command is reaped; exit_status is its status */
    int exit_status;
    size_t pending_off, pending_len;   /* read from master, not yet written out */
    char pending[8192];
    size_t in_off, in_len;  /* read from the CLI's stdin, not yet written to master */
    char in[4096];
    pid_t pid;
    int pidfd;
    char name[64];
};

struct sites_exec {
    struct evloop *loop;
    struct sites_runtime *rt;
    int fd;
    char *path;
    struct exec_conn *conns;
};

static int output_fd(const struct exec_conn *c)
{
    return c->out_fd >= 0 ? c->out_fd : c->stdio[c->out];
}

static void conn_close(struct exec_conn *c)
{
    struct sites_exec *x = c->x;
    for (struct exec_conn **p = &x->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    if (c->pidfd >= 0) {
        /* The CLI went away (or berthd stops): the command goes too. */
        (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        evloop_del(x->loop, c->pidfd);
        siginfo_t si;
        while (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        safe_close(c->pidfd);
        sites_runtime_exec_done(x->rt, c->name);
    }
    if (c->master_events)
        evloop_del(x->loop, c->master);
    if (c->out_watched)
        evloop_del(x->loop, output_fd(c));
    safe_close(c->out_fd);
    if (c->stdin_watched)
        evloop_del(x->loop, c->stdio[0]);
    safe_close(c->master);
    for (int i = 0; i < 3; i++)
        safe_close(c->stdio[i]);
    evloop_del(x->loop, c->fd);
    safe_close(c->fd);
    free(c);
}

static void conn_answer(struct exec_conn *c, const char *fmt, ...) _printf_(2, 3);
static void conn_answer(struct exec_conn *c, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    (void)send(c->fd, msg, MIN((size_t)n, sizeof(msg) - 1), MSG_NOSIGNAL);
}

/* Writes out what is pending. 1: all written; 0: the output takes nothing now
 * (EAGAIN); -1: the output is gone, and what was pending is dropped. */
static int flush_pending(struct exec_conn *c)
{
    const int out = output_fd(c);
    while (c->pending_off < c->pending_len) {
        ssize_t w = write(out, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return 0;
        if (w <= 0) {
            c->pending_off = c->pending_len = 0;
            return -1;
        }
        c->pending_off += (size_t)w;
    }
    c->pending_off = c->pending_len = 0;
    return 1;
}

static void on_output_ready(struct evloop *loop, int fd, uint32_t events, void *data);

/* Copies what is readable on the pty master to the CLI's stdout. When that
 * takes nothing more (a terminal that is not read: a stalled ssh link, a scroll
 * lock), the master is left unread until it does: the command then waits on
 * its own terminal, and berthd goes on serving everyone else. Returns false
 * once the master has nothing more to give (EIO: no slave left open). */
static bool pump_master(struct exec_conn *c)
{
    for (;;) {
        if (flush_pending(c) == 0) {
            if (!c->out_watched)
                c->out_watched = evloop_add(c->x->loop, output_fd(c), EPOLLOUT, on_output_ready, c) >= 0;
            if (c->out_watched)
                return true;
            c->pending_off = c->pending_len = 0;   /* cannot wait for it: dropped */
            continue;
        }
        ssize_t n = read(c->master, c->pending, sizeof(c->pending));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 && errno == EAGAIN;
        c->pending_len = (size_t)n;
    }
}

/* Writes out what was read from the CLI's stdin; same returns as flush_pending. */
static int flush_input(struct exec_conn *c)
{
    while (c->in_off < c->in_len) {
        ssize_t w = write(c->master, c->in + c->in_off, c->in_len - c->in_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return 0;
        if (w <= 0) {
            c->in_off = c->in_len = 0;
            return -1;
        }
        c->in_off += (size_t)w;
    }
    c->in_off = c->in_len = 0;
    return 1;
}

static void on_master(struct evloop *loop, int fd, uint32_t events, void *data);
static void on_cli_stdin(struct evloop *loop, int fd, uint32_t events, void *data);

/* Watches the master for what is wanted now: reading while the output takes it
 * (and the command runs), writing while input waits. */
static void master_update(struct exec_conn *c)
{
    uint32_t want = 0;
    if (!c->master_eof && !c->out_watched && !c->exited)
        want |= EPOLLIN;
    if (c->in_off < c->in_len)
        want |= EPOLLOUT;
    if (want == c->master_events)
        return;
    int r;
    if (!want)
        r = evloop_del(c->x->loop, c->master);
    else if (!c->master_events)
        r = evloop_add(c->x->loop, c->master, want, on_master, c);
    else
        r = evloop_mod(c->x->loop, c->master, want);
    if (r < 0 && want) {
        /* Unwatchable: stop relaying rather than spin. */
        if (c->master_events)
            (void)evloop_del(c->x->loop, c->master);
        want = 0;
        c->in_off = c->in_len = 0;
    }
    c->master_events = want;
}

static void on_master(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct exec_conn *c = data;
    if ((events & EPOLLOUT) && flush_input(c) != 0 && !c->stdin_watched)
        c->stdin_watched = evloop_add(loop, c->stdio[0], EPOLLIN, on_cli_stdin, c) >= 0;
    if ((c->master_events & EPOLLIN) && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pump_master(c))
        c->master_eof = true;
    master_update(c);
}

static void conn_finish(struct exec_conn *c)
{
    conn_answer(c, "exit %d", c->exit_status);
    conn_close(c);
}

static void on_output_ready(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct exec_conn *c = data;
    if (flush_pending(c) == 0)
        return;
    evloop_del(loop, fd);
    c->out_watched = false;
    if (c->exited) {
        /* What the master still holds, then the status. */
        (void)pump_master(c);
        if (!c->out_watched)
            conn_finish(c);
        return;
    }
    master_update(c);
}

/* The fd the master's output goes to, opened anew so that O_NONBLOCK is ours
 * alone: set on the CLI's own description it would leave the caller's terminal
 * non-blocking for its shell. Only for a terminal or a pipe, the outputs that can
 * block; a file is written as given (a new opening would not share its offset). */
static int open_output(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

/* Copies the CLI's stdin to the master. When the command's terminal takes no
 * more (it does not read yet), the CLI's stdin is left unread until it does:
 * what was typed or pasted waits instead of being lost. */
static void on_cli_stdin(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct exec_conn *c = data;
    ssize_t n = read(fd, c->in, sizeof(c->in));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        evloop_del(loop, fd);
        c->stdin_watched = false;
        return;
    }
    c->in_off = 0;
    c->in_len = (size_t)n;
    if (flush_input(c) == 0) {
        evloop_del(loop, fd);
        c->stdin_watched = false;
        master_update(c);
    }
}

static void on_exit_cmd(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct exec_conn *c = data;
    siginfo_t si = { 0 };
    evloop_del(loop, c->pidfd);
    while (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    c->pidfd = safe_close(c->pidfd);
    sites_runtime_exec_done(c->x->rt, c->name);
    c->exited = true;
    c->exit_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    if (c->master >= 0) {
        c->in_off = c->in_len = 0;   /* nobody reads it any more */
        master_update(c);
        (void)pump_master(c);   /* the last output before the status */
        if (c->out_watched)
            return;             /* on_output_ready answers once it is out */
    }
    conn_finish(c);
}

/* A bare command name is looked up in the PATH the sandbox has; /usr and the
 * merged-usr links are the host's, read-only, so the host's view is the same. */
static int resolve_command(const char *arg0, char *out, size_t n)
{
    if (strchr(arg0, '/')) {
        snprintf(out, n, "%s", arg0);
        return 0;
    }
    static const char *const dirs[] = { "/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin",
                                        "/usr/sbin", "/sbin" };
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(out, n, "%s/%s", dirs[i], arg0);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

static int open_pty(int *ret_master, int *ret_slave)
{
    _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return -errno;
    if (grantpt(master) < 0 || unlockpt(master) < 0)
        return -errno;
    char name[64];
    if (ptsname_r(master, name, sizeof(name)) != 0)
        return -errno;
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return -errno;
    *ret_master = TAKE_FD(master);
    *ret_slave = slave;
    return 0;
}

/* Runs the request: argv in the site's running sandbox, or in a fresh one. */
/* A terminal type from the CLI, if it is a plain name ("xterm-256color"). */
static bool term_name_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr("._+-", t[i]))
            return false;
    return true;
}

static void conn_run(struct exec_conn *c, uint32_t flags, const char *client_term, char **argv, size_t argc)
{
    struct sites_exec *x = c->x;
    int pidfd_target;
    struct sandbox_cgroup *cg;
    uid_t uid;
    enum sandbox_network net;
    struct sandbox_nat *nat = NULL;
    const char *site_dir;
    int net_pidfd;
    int r = sites_runtime_exec_target(x->rt, c->name, &pidfd_target, &cg);
    if (r == -ENOENT) {
        conn_answer(c, "error site %s does not run code (only app and PHP sites have a sandbox)", c->name);
        conn_close(c);
        return;
    }
    if (r >= 0)
        r = sites_runtime_exec_settings(x->rt, c->name, &uid, &net, &nat, &site_dir, &net_pidfd);
    if (r < 0) {
        conn_answer(c, "error site %s: cannot prepare its sandbox: %s", c->name, strerror(-r));
        conn_close(c);
        return;
    }
    char path[4096];
    if (resolve_command(argv[0], path, sizeof(path)) < 0) {
        conn_answer(c, "error %s: command not found in the sandbox", argv[0]);
        conn_close(c);
        return;
    }
    const char *args[EXEC_ARGS_MAX + 1];
    args[0] = path;
    for (size_t i = 1; i < argc; i++)
        args[i] = argv[i];
    args[argc] = NULL;

    char term[64] = "TERM=dumb", site_env[100];
    snprintf(site_env, sizeof(site_env), "BERTH_SITE=%s", c->name);
    const char *const envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
                                 "HOME=/site", "LANG=C.UTF-8", term, site_env, NULL };

    /* The caller's terminal is never handed to the sandbox, whatever the flags
     * say: a terminal is open for reading too, and the command, or anything of
     * the site it forks (which may outlive it), or the site's other processes
     * through /proc/PID/fd, could read what is typed there afterwards, the
     * admin's next password included. A stdio that is a terminal goes through a
     * pty of ours; pipes and files are passed as they are. */
    bool tty[3], any_tty = false;
    for (int i = 0; i < 3; i++) {
        tty[i] = (flags & SITES_EXEC_FLAG_TTY) || isatty(c->stdio[i]);
        any_tty |= tty[i];
    }
    /* Output through our pty: the caller's terminal type, so that colours and
     * full-screen programs work as in the caller's own shell. */
    if (any_tty)
        snprintf(term, sizeof(term), "TERM=%s", client_term && term_name_valid(client_term) ? client_term : "xterm");
    _cleanup_close_ int slave = -1;
    if (any_tty) {
        if ((r = open_pty(&c->master, &slave)) < 0) {
            conn_answer(c, "error cannot allocate a terminal: %s", strerror(-r));
            conn_close(c);
            return;
        }
        c->out = tty[1] ? 1 : tty[2] ? 2 : 0;
        struct winsize ws;
        for (int i = 0; i < 3; i++) {
            if (tty[i] && ioctl(c->stdio[i], TIOCGWINSZ, &ws) == 0) {
                (void)ioctl(c->master, TIOCSWINSZ, &ws);
                break;
            }
        }
        fcntl(c->master, F_SETFL, fcntl(c->master, F_GETFL) | O_NONBLOCK);
        c->out_fd = open_output(c->stdio[c->out]);
    }
    struct sandbox_config cfg;
    sandbox_config_init(&cfg);
    cfg.name = c->name;
    cfg.uid = uid;
    cfg.gid = uid;
    cfg.site_dir = site_dir;
    cfg.argv = args;
    cfg.envp = envp;
    cfg.stdin_fd = tty[0] ? slave : c->stdio[0];
    cfg.stdout_fd = tty[1] ? slave : c->stdio[1];
    cfg.stderr_fd = tty[2] ? slave : c->stdio[2];
    cfg.network = net;
    cfg.nat = nat;
    cfg.cgroup = cg;
    cfg.join_pidfd = pidfd_target;
    cfg.join_net_pidfd = net_pidfd;
    struct sandbox_error se = { 0 };
    r = sandbox_spawn(&cfg, &se, &c->pid, &c->pidfd);
    if (r < 0) {
        c->pidfd = -1;
        sites_runtime_exec_done(x->rt, c->name);
        conn_answer(c, "error site %s: cannot run the command (%s: %s)", c->name,
                    sandbox_step_to_string(se.step), strerror(-r));
        conn_close(c);
        return;
    }
    log_info("site %s: exec %s (pid %d%s)", c->name, path, (int)c->pid,
             pidfd_target >= 0 ? ", in the running sandbox" : ", in a fresh sandbox");
    if (pidfd_target < 0 && net == SANDBOX_NETWORK_NAT)
        sites_runtime_exec_started(x->rt, c->name, c->pidfd);
    if ((r = evloop_add(x->loop, c->pidfd, EPOLLIN, on_exit_cmd, c)) < 0) {
        conn_answer(c, "error cannot watch the command: %s", strerror(-r));
        conn_close(c);
        return;
    }
    if (c->master >= 0) {
        master_update(c);
        c->stdin_watched = tty[0] && evloop_add(x->loop, c->stdio[0], EPOLLIN, on_cli_stdin, c) >= 0;
    }
}

/* First message: u32 flags, then NUL-terminated site name and argv strings, with
 * the CLI's fds 0, 1, 2 attached. Later: nothing is expected; EOF means the CLI is
 * gone. */
static void on_conn(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct exec_conn *c = data;
    if (c->stdio[0] >= 0) {
        /* The command runs: any event here means the CLI went away. */
        char b;
        if (recv(fd, &b, 1, MSG_DONTWAIT) == 0 || (events & (EPOLLHUP | EPOLLERR)))
            conn_close(c);
        return;
    }
    _cleanup_free_ char *buf = malloc(EXEC_MSG_MAX + 1);
    if (!buf) {
        conn_close(c);
        return;
    }
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } cm;
    struct iovec iov = { buf, EXEC_MSG_MAX };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm) };
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN)
        return;
    struct cmsghdr *h = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
    if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[3];
        memcpy(fds, CMSG_DATA(h), MIN(nfd, 3) * sizeof(int));
        for (size_t i = 0; i < nfd && i < 3; i++)
            c->stdio[i] = fds[i];
        for (size_t i = 3; i < nfd; i++) {   /* more than asked for: not ours to keep */
            int extra;
            memcpy(&extra, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
            close(extra);
        }
    }
    if (n <= 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || c->stdio[0] < 0 || c->stdio[1] < 0 ||
        c->stdio[2] < 0 || (size_t)n < sizeof(uint32_t) + 2 || buf[n - 1] != 0) {
        if (n > 0)
            conn_answer(c, "error malformed request");
        conn_close(c);
        return;
    }
    /* A directory would take the command out of the sandbox's mount namespace:
     * /proc/self/fd/0 leads into the tree it was opened in, the host's. */
    static const char *const stdio_names[] = { "stdin", "stdout", "stderr" };
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (fstat(c->stdio[i], &st) < 0) {
            conn_answer(c, "error cannot inspect the %s given: %m", stdio_names[i]);
            conn_close(c);
            return;
        }
        if (S_ISDIR(st.st_mode)) {
            conn_answer(c, "error %s is a directory: a command in a site may not be given one", stdio_names[i]);
            conn_close(c);
            return;
        }
    }
    buf[n] = 0;
    uint32_t flags;
    memcpy(&flags, buf, sizeof(flags));
    char *argv[EXEC_ARGS_MAX + 1];
    size_t argc = 0;
    const char *name = NULL, *client_term = NULL;
    bool term_next = flags & SITES_EXEC_FLAG_TERM;
    for (char *p = buf + sizeof(flags); p < buf + n; p += strlen(p) + 1) {
        if (!name) {
            name = p;
        } else if (term_next) {
            client_term = p;
            term_next = false;
        } else if (argc < EXEC_ARGS_MAX) {
            argv[argc++] = p;
        } else {
            conn_answer(c, "error too many arguments (at most %d)", EXEC_ARGS_MAX);
            conn_close(c);
            return;
        }
    }
    if (!name || !site_name_valid(name) || argc == 0) {
        conn_answer(c, "error a site name and a command are needed");
        conn_close(c);
        return;
    }
    snprintf(c->name, sizeof(c->name), "%s", name);
    argv[argc] = NULL;
    conn_run(c, flags, client_term, argv, argc);
}

static void on_accept(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct sites_exec *x = data;
    for (;;) {
        _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
            return;
        /* The socket is 0600 root's already; the peer check keeps it so even if the
         * mode is changed by hand: exec runs anything as any site. */
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != 0)
            continue;
        struct exec_conn *c = calloc(1, sizeof(*c));
        if (!c)
            continue;
        *c = (struct exec_conn){ .x = x, .fd = cfd, .stdio = { -1, -1, -1 }, .master = -1, .out_fd = -1, .pidfd = -1 };
        if (evloop_add(loop, cfd, EPOLLIN | EPOLLRDHUP, on_conn, c) < 0) {
            free(c);
            continue;
        }
        TAKE_FD(cfd);
        c->next = x->conns;
        x->conns = c;
    }
}

int sites_exec_new(struct evloop *loop, struct sites_runtime *rt, const char *run_dir, struct sites_exec **ret)
{
    struct sites_exec *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->loop = loop;
    x->rt = rt;
    x->fd = -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int r = 0;
    if (asprintf(&x->path, "%s/exec.sock", run_dir) < 0) {
        x->path = NULL;
        r = -ENOMEM;
    } else if (strlen(x->path) >= sizeof(sa.sun_path)) {
        r = -ENAMETOOLONG;
    }
    if (r >= 0) {
        memcpy(sa.sun_path, x->path, strlen(x->path) + 1);
        x->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (x->fd < 0)
            r = -errno;
    }
    if (r >= 0) {
        /* berthd holds the run dir's lock: a socket left here is stale. Bind under a
         * umask so that it is never reachable by others, not even for a moment. */
        (void)unlink(x->path);
        mode_t old = umask(0077);
        if (bind(x->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(x->fd, 64) < 0)
            r = -errno;
        umask(old);
    }
    if (r >= 0)
        r = evloop_add(loop, x->fd, EPOLLIN, on_accept, x);
    if (r < 0) {
        sites_exec_free(x);
        return r;
    }
    *ret = x;
    return 0;
}

void sites_exec_free(struct sites_exec *x)
{
    if (!x)
        return;
    while (x->conns)
        conn_close(x->conns);
    if (x->fd >= 0) {
        evloop_del(x->loop, x->fd);
        close(x->fd);
        unlink(x->path);
    }
    free(x->path);
    free(x);
}

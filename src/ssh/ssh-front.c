/* The ssh front's process: unprivileged, it accepts and forks one child per
 * connection, so that a client who finds a bug in the SSH code can crash or take
 * only its own connection. It counts connections (in all, per address) and
 * refuses past the limits before any SSH byte is read. */
#include <arpa/inet.h>
#include <grp.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/proc.h"
#include "ssh/ssh-internal.h"
#include "sandbox/sandbox.h"

int ssh_send_fds(int sock, const void *p, size_t len, const int *fds, size_t n)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } u;
    if (n > 4)
        return -EINVAL;
    struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    for (;;) {
        ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (w >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t ssh_recv_fds(int sock, void *p, size_t size, int *fds, size_t max, size_t *ret_n_fds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = p, .iov_len = size };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
    for (size_t i = 0; i < max; i++)
        fds[i] = -1;
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    size_t got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int in[8];
        memcpy(in, CMSG_DATA(c), MIN(k, (size_t)8) * sizeof(int));
        for (size_t i = 0; i < MIN(k, (size_t)8); i++) {
            if (got < max)
                fds[got] = in[i];
            else
                close(in[i]);
            got++;
        }
    }
    if (ret_n_fds)
        *ret_n_fds = got;
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (size_t i = 0; i < max; i++)
            fds[i] = safe_close(fds[i]);
        return -EMSGSIZE;
    }
    return n;
}

struct conn {
    pid_t pid;
    char addr[INET6_ADDRSTRLEN];
};

static struct conn *conns;
static size_t n_conns;

static unsigned addr_count(const char *addr)
{
    unsigned n = 0;
    for (size_t i = 0; i < n_conns; i++)
        n += streq(conns[i].addr, addr);
    return n;
}

static void reap(void)
{
    for (;;) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < n_conns; i++) {
            if (conns[i].pid == pid) {
                conns[i] = conns[--n_conns];
                break;
            }
        }
    }
}

/* The client's address as text ("192.0.2.1", "2001:db8::1"; v4-mapped shown as
 * v4) and port. */
static void peer_address(const struct sockaddr_storage *ss, char *addr, size_t n, unsigned *port)
{
    snprintf(addr, n, "unknown");
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)n);
        *port = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr, (socklen_t)n);
        else
            inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)n);
        *port = ntohs(sin6->sin6_port);
    }
}

static void accept_one(const struct ssh_front_config *cfg, ssh_bind bind, int lfd, int ctl, int sigfd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char addr[INET6_ADDRSTRLEN], full[INET6_ADDRSTRLEN + 16];
    unsigned port;
    peer_address(&ss, addr, sizeof(addr), &port);
    snprintf(full, sizeof(full), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
    if (n_conns >= cfg->max_conns || addr_count(addr) >= cfg->max_conns_per_addr) {
        log_warning("ssh: refusing a connection from %s: %s", full,
                    n_conns >= cfg->max_conns ? "too many connections" : "too many connections from this address");
        close(fd);
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        close(fd);
        return;
    }
    /* berthd gets its end first: the child's first question must find it there. */
    uint8_t msg[SSH_MSG_MAX];
    const char *fields[] = { full };
    int len = ssh_msg_encode(SSH_MSG_CONN, fields, 1, msg, sizeof(msg));
    if (len < 0 || ssh_send_fds(ctl, msg, (size_t)len, &sv[0], 1) < 0) {
        close(sv[0]);
        close(sv[1]);
        close(fd);
        return;
    }
    close(sv[0]);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < cfg->n_listen; i++)
            close(cfg->listen_fds[i]);
        close(ctl);
        close(sigfd);
        free(conns);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        ssh_session_main(bind, cfg, fd, sv[1], full);
    }
    close(sv[1]);
    close(fd);
    if (pid < 0)
        return;
    struct conn *grown = realloc(conns, (n_conns + 1) * sizeof(*conns));
    if (!grown)
        return;   /* not counted: the limit is looser, nothing breaks */
    conns = grown;
    conns[n_conns].pid = pid;
    snprintf(conns[n_conns].addr, sizeof(conns[n_conns].addr), "%s", addr);
    n_conns++;
}

/* Everything berthd had open goes: the store, the API socket, the HTTP front's
 * sockets. Only the listeners and the control socket stay (and stdio, for logs). */
static void close_other_fds(const struct ssh_front_config *cfg, int ctl)
{
    int keep[BERTH_SSH_MAX_LISTEN + 1];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_listen && n < BERTH_SSH_MAX_LISTEN; i++)
        keep[n++] = cfg->listen_fds[i];
    keep[n++] = ctl;
    proc_close_fds_except(keep, n);
}

_noreturn_ void ssh_front_main(const struct ssh_front_config *cfg, int ctl)
{
    pid_t parent = getppid();
    log_set_ident("berth-ssh");
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);
    if (cfg->n_listen > BERTH_SSH_MAX_LISTEN)
        _exit(1);
    close_other_fds(cfg, ctl);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    /* Order matters: groups and gid while still root, then uid, which (without
     * SECBIT_KEEP_CAPS) clears every capability set. */
    if (geteuid() == 0) {
        if (setgroups(0, NULL) < 0 || setresgid(cfg->gid, cfg->gid, cfg->gid) < 0 ||
            setresuid(cfg->uid, cfg->uid, cfg->uid) < 0) {
            log_error("ssh front: cannot drop to %u:%u: %m", (unsigned)cfg->uid, (unsigned)cfg->gid);
            _exit(1);
        }
        if (setuid(0) == 0) {
            log_error("ssh front: could regain root, refusing to run");
            _exit(1);
        }
    }
    if (sigfd < 0)
        _exit(1);
    /* Its connection children, where libssh meets the client, inherit the filter. */
    int r = sandbox_confine_service();
    if (r < 0) {
        log_error("ssh front: cannot install its seccomp filter: %s", strerror(-r));
        _exit(1);
    }
    /* The HTTP front's workers share this uid: not dumpable, none of them can
     * ptrace this process or read its memory, where the host key is. */
    prctl(PR_SET_DUMPABLE, 0);

    ssh_init();
    ssh_bind bind = ssh_bind_new();
    ssh_key key = NULL;
    if (!bind || ssh_pki_import_privkey_base64(cfg->host_key_pem, NULL, NULL, NULL, &key) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) != SSH_OK) {
        log_error("ssh front: cannot load the host key");
        _exit(1);
    }
    /* The key now lives in libssh's copy only; this one was berthd's memory. */
    explicit_bzero((void *)cfg->host_key_pem, strlen(cfg->host_key_pem));

    struct pollfd pfds[BERTH_SSH_MAX_LISTEN + 2];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_listen; i++)
        pfds[n++] = (struct pollfd){ .fd = cfg->listen_fds[i], .events = POLLIN };
    pfds[n++] = (struct pollfd){ .fd = ctl, .events = POLLIN };
    pfds[n++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
    log_info("ssh front: serving %zu listener%s as uid %u", cfg->n_listen, cfg->n_listen == 1 ? "" : "s",
             (unsigned)getuid());
    for (;;) {
        if (poll(pfds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (pfds[n - 1].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    /* The connections' children die with us (PR_SET_PDEATHSIG). */
                    _exit(0);
                }
            }
            reap();
        }
        /* berthd closed its end: it is gone, and so are we. */
        if (pfds[n - 2].revents)
            _exit(0);
        for (size_t i = 0; i < cfg->n_listen; i++)
            if (pfds[i].revents & POLLIN)
                accept_one(cfg, bind, pfds[i].fd, ctl, sigfd);
    }
}

/* berthd's side of the ssh front: forks it, hands each connection's broker socket
 * to berthd's broker, and restarts the front when it dies, backing off like the
 * HTTP front's workers (a front that crashes at once would crash again). */
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/evloop.h"
#include "common/proc.h"
#include "common/log.h"
#include "ssh/ssh-internal.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 10000

struct ssh_supervisor {
    struct evloop *loop;
    struct ssh_front_config cfg;   /* listen_fds and host_key_pem are our copies */
    int *listen_fds;
    char *host_key_pem;
    ssh_conn_fn on_conn;
    void *data;
    pid_t pid;
    int pidfd, ctl;
    uint64_t started_ms;
    uint32_t backoff_ms;
    struct ev_timer *restart;
};

static int spawn(struct ssh_supervisor *sup);

static void on_restart(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct ssh_supervisor *sup = data;
    sup->restart = NULL;
    int r = spawn(sup);
    if (r < 0) {
        log_errno(r, "ssh: cannot restart the ssh front");
        sup->backoff_ms = MIN(sup->backoff_ms * 2, (uint32_t)BACKOFF_MAX_MS);
        sup->restart = evloop_timer_add(loop, sup->backoff_ms, on_restart, sup);
    }
}

static void front_gone(struct ssh_supervisor *sup)
{
    evloop_del(sup->loop, sup->pidfd);
    evloop_del(sup->loop, sup->ctl);
    sup->pidfd = safe_close(sup->pidfd);
    sup->ctl = safe_close(sup->ctl);
    sup->pid = 0;
}

static void on_pidfd(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct ssh_supervisor *sup = data;
    siginfo_t si = { 0 };
    if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return;
    if (si.si_code == CLD_EXITED)
        log_warning("ssh: the ssh front (pid %d) exited with status %d", (int)si.si_pid, si.si_status);
    else
        log_warning("ssh: the ssh front (pid %d) was killed by signal %d", (int)si.si_pid, si.si_status);
    uint64_t lived = now_ms() - sup->started_ms;
    front_gone(sup);
    sup->backoff_ms = lived >= STABLE_MS ? BACKOFF_MIN_MS
                                         : MIN(MAX(sup->backoff_ms * 2, (uint32_t)BACKOFF_MIN_MS),
                                               (uint32_t)BACKOFF_MAX_MS);
    sup->restart = evloop_timer_add(loop, lived >= STABLE_MS ? 0 : sup->backoff_ms, on_restart, sup);
}

/* A connection from the front: its address, and its broker socket attached. */
static void on_ctl(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct ssh_supervisor *sup = data;
    for (;;) {
        uint8_t buf[SSH_MSG_MAX];
        int fds[1] = { -1 };
        ssize_t n = ssh_recv_fds(fd, buf, sizeof(buf), fds, 1, NULL);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            /* The front is gone or broken; its pidfd reports the exit. */
            evloop_del(loop, fd);
            return;
        }
        struct ssh_msg m;
        char address[128];
        if (ssh_msg_decode(buf, (size_t)n, &m) < 0 || m.type != SSH_MSG_CONN || fds[0] < 0 ||
            ssh_msg_field(&m, 0, address, sizeof(address)) < 0) {
            log_warning("ssh: the ssh front sent a malformed message; ignored");
            safe_close(fds[0]);
            continue;
        }
        sup->on_conn(sup->data, fds[0], address);
    }
}

static int spawn(struct ssh_supervisor *sup)
{
    pid_t pid;
    int pidfd, ctl;
    int r = proc_fork_with_socket(&pid, &pidfd, &ctl);
    if (r < 0)
        return r;
    if (r == 0)
        ssh_front_main(&sup->cfg, ctl);
    sup->pid = pid;
    sup->pidfd = pidfd;
    sup->ctl = ctl;
    sup->started_ms = now_ms();
    r = evloop_add(sup->loop, pidfd, EPOLLIN, on_pidfd, sup);
    if (r >= 0)
        r = evloop_add(sup->loop, sup->ctl, EPOLLIN, on_ctl, sup);
    if (r < 0) {
        proc_kill_wait(pidfd);
        front_gone(sup);
        return r;
    }
    return 0;
}

int ssh_supervisor_new(struct evloop *loop, const struct ssh_front_config *cfg, ssh_conn_fn on_conn, void *data,
                       struct ssh_supervisor **ret)
{
    if (cfg->n_listen == 0 || !cfg->host_key_pem || cfg->uid == 0)
        return -EINVAL;
    struct ssh_supervisor *sup = calloc(1, sizeof(*sup));
    if (!sup)
        return -ENOMEM;
    sup->loop = loop;
    sup->cfg = *cfg;
    sup->on_conn = on_conn;
    sup->data = data;
    sup->pidfd = sup->ctl = -1;
    sup->backoff_ms = BACKOFF_MIN_MS;
    sup->listen_fds = calloc(cfg->n_listen, sizeof(int));
    sup->host_key_pem = strdup(cfg->host_key_pem);
    if (!sup->listen_fds || !sup->host_key_pem) {
        ssh_supervisor_free(sup);
        return -ENOMEM;
    }
    memcpy(sup->listen_fds, cfg->listen_fds, cfg->n_listen * sizeof(int));
    sup->cfg.listen_fds = sup->listen_fds;
    sup->cfg.host_key_pem = sup->host_key_pem;
    if (!sup->cfg.max_conns)
        sup->cfg.max_conns = SSH_FRONT_MAX_CONNS;
    if (!sup->cfg.max_conns_per_addr)
        sup->cfg.max_conns_per_addr = SSH_FRONT_MAX_CONNS_PER_ADDR;
    if (!sup->cfg.max_auth_tries)
        sup->cfg.max_auth_tries = SSH_FRONT_MAX_AUTH_TRIES;
    if (!sup->cfg.login_grace_s)
        sup->cfg.login_grace_s = SSH_FRONT_LOGIN_GRACE_S;
    int r = spawn(sup);
    if (r < 0) {
        ssh_supervisor_free(sup);
        return r;
    }
    *ret = sup;
    return 0;
}

pid_t ssh_supervisor_pid(const struct ssh_supervisor *sup)
{
    return sup ? sup->pid : 0;
}

void ssh_supervisor_free(struct ssh_supervisor *sup)
{
    if (!sup)
        return;
    evloop_timer_cancel(sup->loop, sup->restart);
    if (sup->pidfd >= 0) {
        (void)syscall(SYS_pidfd_send_signal, sup->pidfd, SIGTERM, NULL, 0);
        struct pollfd p = { .fd = sup->pidfd, .events = POLLIN };
        if (poll(&p, 1, 2000) <= 0)
            (void)syscall(SYS_pidfd_send_signal, sup->pidfd, SIGKILL, NULL, 0);
        waitid(P_PIDFD, (id_t)sup->pidfd, &(siginfo_t){ 0 }, WEXITED);
        front_gone(sup);
    }
    if (sup->host_key_pem) {
        explicit_bzero(sup->host_key_pem, strlen(sup->host_key_pem));
        free(sup->host_key_pem);
    }
    free(sup->listen_fds);
    free(sup);
}

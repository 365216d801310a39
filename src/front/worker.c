/* One worker process: drops privileges, applies route changes from the control
 * socket, accepts connections and keeps the clock (Date header, log timestamps,
 * timeouts, log flushing) on a periodic tick. */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/ssl.h>

#include "common/log.h"
#include "common/proc.h"
#include "front/front-worker.h"
#include "sandbox/sandbox.h"

struct vsite *front_vsite_ref(struct vsite *s)
{
    if (s)
        s->refs++;
    return s;
}

void front_vsite_unref(struct vsite *s)
{
    if (!s || --s->refs > 0)
        return;
    safe_close(s->root_fd);
    front_log_unref(s->access_log);
    front_log_unref(s->error_log);
    front_backend_unref(s->backend);
    SSL_CTX_free(s->tls_ctx);
    free(s->tls_cert);
    free(s->tls_key);
    free(s->hosts);   /* one allocation holds the array and every string */
    free(s);
}

int front_vsite_root(struct worker *w, struct vsite *s)
{
    /* The public dir may be replaced by a rename (an upload swaps it atomically):
     * at most once a second compare the cached fd with what the path names now. */
    if (s->root_fd >= 0 && s->root_checked_s == w->now_s)
        return s->root_fd;
    struct stat a, b;
    if (s->root_fd >= 0 && stat(s->public_dir, &a) == 0 && fstat(s->root_fd, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        s->root_checked_s = w->now_s;
        return s->root_fd;
    }
    int fd = open(s->public_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    static uint64_t root_gen;
    safe_close(s->root_fd);
    s->root_fd = fd;
    s->root_gen = ++root_gen;   /* the open-file cache's entries for the old fd are dead */
    s->root_checked_s = w->now_s;
    return fd;
}

static struct backend *backend_get(struct worker *w, const char *path)
{
    struct backend *b = front_map_get(&w->backends, path, strlen(path));
    if (b) {
        b->refs++;
        return b;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->path = strdup(path);
    if (!b->path || strlen(path) >= sizeof(b->addr.sun_path) ||
        front_map_put(&w->backends, b->path, strlen(b->path), b, NULL) < 0) {
        free(b->path);
        free(b);
        return NULL;
    }
    b->refs = 1;
    b->w = w;
    b->addr.sun_family = AF_UNIX;
    memcpy(b->addr.sun_path, path, strlen(path) + 1);
    b->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    return b;
}

static void site_unlink(struct worker *w, struct vsite *s)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        front_map_del(&w->hosts, s->hosts[i], strlen(s->hosts[i]), s);
    front_map_del(&w->sites, s->name, strlen(s->name), s);
    front_vsite_unref(s);
}

static int open_site_log(struct worker *w, const char *dir, const char *file, struct front_log **ret)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
        return -ENAMETOOLONG;
    return front_log_open(path, w->cfg->log_rotate_size, w->cfg->log_keep, ret);
}

static int site_upsert(struct worker *w, const struct front_site *fs)
{
    /* One allocation for the site's strings, so freeing cannot miss one. */
    size_t size = (fs->n_hosts + 1) * sizeof(char *) + strlen(fs->name) + 1 +
                  strlen(fs->public_dir) + 1;
    for (size_t i = 0; i < fs->n_hosts; i++)
        size += strlen(fs->hosts[i]) + 1;
    struct vsite *s = calloc(1, sizeof(*s));
    char **arr = malloc(size);
    if (!s || !arr) {
        free(s);
        free(arr);
        return -ENOMEM;
    }
    char *p = (char *)(arr + fs->n_hosts + 1);
#define COPY(dst, src) do { size_t n_ = strlen(src) + 1; memcpy(p, src, n_); dst = p; p += n_; } while (0)
    for (size_t i = 0; i < fs->n_hosts; i++)
        COPY(arr[i], fs->hosts[i]);
    arr[fs->n_hosts] = NULL;
    COPY(s->name, fs->name);
    COPY(s->public_dir, fs->public_dir);
#undef COPY
    s->refs = 1;
    s->hosts = arr;
    s->n_hosts = fs->n_hosts;
    s->type = fs->type;
    s->state = fs->state;
    s->uid = fs->uid;
    s->max_body = fs->max_body ? fs->max_body : w->cfg->max_body;
    s->upstream_timeout_ms = fs->upstream_timeout_ms ? fs->upstream_timeout_ms
                                                     : w->cfg->upstream_read_timeout_ms;
    s->root_fd = -1;
    s->https_redirect = fs->https_redirect;
    if (fs->logs_dir) {
        int r = open_site_log(w, fs->logs_dir, "access.log", &s->access_log);
        if (r < 0)
            log_warning_errno(r, "site %s: cannot open %s/access.log", fs->name, fs->logs_dir);
        r = open_site_log(w, fs->logs_dir, "error.log", &s->error_log);
        if (r < 0)
            log_warning_errno(r, "site %s: cannot open %s/error.log", fs->name, fs->logs_dir);
    }
    if (fs->backend)
        s->backend = backend_get(w, fs->backend);
    if (fs->tls_cert && fs->tls_key) {
        s->tls_cert = strdup(fs->tls_cert);
        s->tls_key = strdup(fs->tls_key);
        if (!s->tls_cert || !s->tls_key) {
            front_vsite_unref(s);
            return -ENOMEM;
        }
    }

    struct vsite *old = front_map_get(&w->sites, s->name, strlen(s->name));
    if (old)
        site_unlink(w, old);
    int r = front_map_put(&w->sites, s->name, strlen(s->name), s, NULL);
    for (size_t i = 0; r >= 0 && i < s->n_hosts; i++)
        r = front_map_put(&w->hosts, s->hosts[i], strlen(s->hosts[i]), s, NULL);
    if (r < 0) {
        site_unlink(w, s);
        return r;
    }
    return 0;
}

static void site_remove(struct worker *w, const char *name, size_t len)
{
    struct vsite *s = front_map_get(&w->sites, name, len);
    if (s) {
        /* Requests still in progress end uncounted: a site created again under
         * this name must not inherit them. */
        s->removed = true;
        site_unlink(w, s);
    }
    front_activity_forget(w, name, len);
}

/* An ACME challenge answer: token, NUL, key authorization (len bytes in all). */
static void challenge_set(struct worker *w, const char *p, size_t len)
{
    const char *nul = memchr(p, 0, len);
    if (!nul || !front_challenge_valid(p, (size_t)(nul - p), false) ||
        !front_challenge_valid(nul + 1, len - (size_t)(nul - p) - 1, true)) {
        log_error("front worker: bad challenge message");
        return;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, p, len);
    copy[len] = 0;
    void *old = NULL;
    if (front_map_put(&w->challenges, copy, (size_t)(nul - p), copy, &old) < 0) {
        free(copy);
        return;
    }
    free(old);
}

/* A new default certificate: "CERT PEM\0KEY PEM". */
static void default_cert_set(const char *p, size_t len)
{
    const char *nul = memchr(p, 0, len);
    if (!nul) {
        log_error("front worker: bad default certificate message");
        return;
    }
    size_t key_len = len - (size_t)(nul - p) - 1;
    char *key = malloc(key_len + 1);
    if (!key)
        return;
    memcpy(key, nul + 1, key_len);
    key[key_len] = 0;
    char err[300];
    if (front_tls_default_replace(p, key, err, sizeof(err)) < 0)
        log_error("front worker: the new default certificate cannot be used (%s); keeping the old one", err);
    OPENSSL_cleanse(key, key_len);
    free(key);
}

/* Applies one control message; returns its type. */
static uint32_t handle_msg(struct worker *w, size_t n)
{
    if (n > FRONT_MSG_MAX || n < 4) {
        log_error("front worker: bad control message of %zu bytes", n);
        return 0;
    }
    uint32_t type;
    memcpy(&type, w->ctl_buf, 4);
    if (type == FRONT_MSG_UPSERT) {
        struct front_site_msg m;
        int r = front_msg_site_decode(w->ctl_buf, n, &m);
        if (r >= 0) {
            r = site_upsert(w, &m.site);
            free(m.hosts);
        }
        if (r < 0)
            log_errno(r, "front worker: cannot apply a route");
    } else if (type == FRONT_MSG_REMOVE) {
        site_remove(w, w->ctl_buf + 4, n - 4);
    } else if (type == FRONT_MSG_CHALLENGE_SET) {
        challenge_set(w, w->ctl_buf + 4, n - 4);
    } else if (type == FRONT_MSG_CHALLENGE_REMOVE) {
        void *old = front_map_get(&w->challenges, w->ctl_buf + 4, n - 4);
        if (old) {
            front_map_del(&w->challenges, w->ctl_buf + 4, n - 4, old);
            free(old);
        }
    } else if (type == FRONT_MSG_REOPEN_LOGS) {
        front_log_reopen_all();
    } else if (type == FRONT_MSG_DEFAULT_CERT) {
        default_cert_set(w->ctl_buf + 4, n - 4);
    }
    return type;
}

static _noreturn_ void supervisor_gone(void)
{
    /* berthd is gone: a worker must not go on serving a frozen table. */
    front_log_flush_all();
    _exit(0);
}

static void on_ctl(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct worker *w = data;
    for (;;) {
        ssize_t n = recv(fd, w->ctl_buf, FRONT_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0)
            supervisor_gone();
        handle_msg(w, (size_t)n);
    }
}

/* Blocks until the supervisor's SYNC: the whole table has arrived, so a restarted
 * worker never answers 404 for a site it is about to learn. */
static void read_initial_table(struct worker *w)
{
    for (;;) {
        ssize_t n = recv(w->ctl_fd, w->ctl_buf, FRONT_MSG_MAX, MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            supervisor_gone();
        if (handle_msg(w, (size_t)n) == FRONT_MSG_SYNC)
            return;
    }
}

static void update_clock(struct worker *w)
{
    w->now_ms = now_ms();
    int64_t s = now_s();
    if (s != w->now_s) {
        w->now_s = s;
        http_date_format((time_t)s, w->date);
        front_log_time_format((time_t)s, w->log_time, sizeof(w->log_time));
    }
}

static void help_down_workers(struct worker *w);

static void on_tick(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct worker *w = data;
    static uint64_t last_flush;
    update_clock(w);
    front_conn_check_timeouts(w);
    front_backend_idle_expire(w);
    front_file_cache_sweep(w);
    if (w->now_ms - last_flush >= w->cfg->log_flush_ms) {
        last_flush = w->now_ms;
        front_log_flush_all();
    }
    front_activity_report(w);
    front_spread_beat(w->spread, w->index, w->now_ms);
    help_down_workers(w);
    front_conn_rebalance(w);
    if (!evloop_timer_add(loop, TICK_MS, on_tick, w))
        _exit(1);
}

static void on_signal(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            front_log_reopen_all();
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            front_log_flush_all();
            _exit(0);
        }
    }
}

static void on_listen(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct worker *w = data;
    update_clock(w);
    /* Apply route changes already sent before taking new clients: a site pushed
     * before a connection arrived is then always known to it. */
    on_ctl(loop, w->ctl_fd, EPOLLIN, w);
    front_conn_accept(w, fd);
}

/* Connections another worker accepted and handed over (spread.c). */
static void on_inbox(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct worker *w = data;
    update_clock(w);
    on_ctl(loop, w->ctl_fd, EPOLLIN, w);
    for (int i = 0; i < 64; i++) {
        struct front_handoff h;
        int cfd = front_spread_receive(w->spread, w->index, &h);
        if (cfd < 0)
            return;
        front_conn_adopt(w, cfd, &h);
    }
}

/* Watches the sockets of a worker that is down (crashed, restarting after a
 * backoff, stopped or hung: no tick for a second), so that connections steered to
 * it are served meanwhile; stops once it is back. Run on the tick. */
static void help_down_workers(struct worker *w)
{
    struct front_spread *s = w->spread;
    for (unsigned j = 0; j < s->n_workers; j++) {
        if (j == w->index)
            continue;
        bool want = !front_spread_serving(s, j, w->now_ms);
        if (want == w->helping[j])
            continue;
        for (size_t l = 0; l < s->n_listen; l++) {
            int fd = front_spread_socket(s, l, j);
            if (fd == front_spread_socket(s, l, w->index))
                continue;   /* shared: watched anyway */
            int r = want ? evloop_add(w->loop, fd, EPOLLIN | EPOLLEXCLUSIVE, on_listen, w) : 0;
            if (!want)
                evloop_del(w->loop, fd);
            else if (r < 0 && r != -EEXIST)
                want = false;   /* tried again on the next tick */
        }
        w->helping[j] = want;
    }
}

static void drop_privileges(const struct front_config *cfg)
{
    /* Lift the fd limit while we still may: a busy worker holds many sockets. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (cfg->drop_privileges) {
        /* Order matters: groups and gid while still root, then uid, which (without
         * SECBIT_KEEP_CAPS) clears every capability set. */
        if (setgroups(0, NULL) < 0 || setresgid(cfg->gid, cfg->gid, cfg->gid) < 0 ||
            setresuid(cfg->uid, cfg->uid, cfg->uid) < 0) {
            log_error("front worker: cannot drop to %u:%u: %m", (unsigned)cfg->uid,
                      (unsigned)cfg->gid);
            _exit(1);
        }
        if (cfg->uid != 0 && setuid(0) == 0) {
            log_error("front worker: could regain root, refusing to run");
            _exit(1);
        }
    }
    int r = sandbox_confine_service();
    if (r < 0) {
        log_error("front worker: cannot install its seccomp filter: %s", strerror(-r));
        _exit(1);
    }
}

_noreturn_ void front_worker_main(const struct front_config *cfg, struct front_spread *spread,
                                  unsigned index, int ctl_fd)
{
    static struct worker w;
    pid_t parent = getppid();
    /* Die with berthd; the control socket's EOF covers it too, this is belt and braces. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);

    /* Every listening socket (to help a worker that is down), the own inbox and
     * the others' sending ends, the control socket. */
    size_t n_sockets = spread->n_listen * spread->n_workers;
    int *keep = malloc((n_sockets + spread->n_workers + 1) * sizeof(int));
    w.helping = calloc(spread->n_workers, sizeof(bool));
    if (!keep || !w.helping)
        _exit(1);
    size_t n_keep = 0;
    for (size_t i = 0; i < n_sockets; i++)
        keep[n_keep++] = spread->listen[i];
    for (unsigned j = 0; j < spread->n_workers && spread->n_workers > 1; j++)
        keep[n_keep++] = spread->inbox[2 * j + (j == index ? 0 : 1)];
    keep[n_keep++] = ctl_fd;
    /* Every inherited fd but the ones the worker needs goes: it is a fork of berthd
     * and must not hold its database, API socket or other workers' ends. */
    proc_close_fds_except(keep, n_keep);
    free(keep);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    /* Writes to a closed peer must fail with EPIPE, not kill the worker. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);

    drop_privileges(cfg);

    w.cfg = cfg;
    w.limits = (struct http1_limits){ cfg->max_request_line, cfg->max_head, cfg->max_headers };
    w.spread = spread;
    w.index = index;
    /* Each worker takes an even share: exact when the site's clients are spread
     * evenly, and never more than the limit in all. */
    unsigned n_workers = spread ? MAX(spread->n_workers, 1u) : 1;
    w.site_max_requests = cfg->site_max_requests ? (cfg->site_max_requests + n_workers - 1) / n_workers : 0;
    for (size_t l = 0; l < spread->n_listen && l < 64 && !w.https_port; l++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (((cfg->tls_listeners >> l) & 1) &&
            getsockname(front_spread_socket(spread, l, index), (struct sockaddr *)&ss, &sl) == 0)
            w.https_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                          : ((struct sockaddr_in *)&ss)->sin_port);
    }
    w.ctl_fd = ctl_fd;
    w.ctl_buf = malloc(FRONT_MSG_MAX + 1);
    update_clock(&w);
    if (!w.ctl_buf || evloop_new(&w.loop) < 0)
        _exit(1);
    w.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w.sig_fd < 0 || evloop_add(w.loop, w.sig_fd, EPOLLIN, on_signal, &w) < 0)
        _exit(1);
    if (evloop_add(w.loop, ctl_fd, EPOLLIN, on_ctl, &w) < 0)
        _exit(1);
    if (cfg->global_log) {
        int r = front_log_open(cfg->global_log, cfg->log_rotate_size, cfg->log_keep, &w.global_log);
        if (r < 0)
            log_warning_errno(r, "front worker: cannot open %s", cfg->global_log);
    }
    read_initial_table(&w);
    for (size_t l = 0; l < spread->n_listen; l++)
        /* EPOLLEXCLUSIVE: where workers share a socket, one is woken per new
         * connection, not all of them. */
        if (evloop_add(w.loop, front_spread_socket(spread, l, index), EPOLLIN | EPOLLEXCLUSIVE,
                       on_listen, &w) < 0)
            _exit(1);
    int inbox = front_spread_inbox_fd(spread, index);
    if (inbox >= 0 && evloop_add(w.loop, inbox, EPOLLIN, on_inbox, &w) < 0)
        _exit(1);
    if (!evloop_timer_add(w.loop, TICK_MS, on_tick, &w))
        _exit(1);
    front_spread_set_ready(spread, index, w.now_ms);
    int r = evloop_run(w.loop);
    front_log_flush_all();
    _exit(r < 0 ? 1 : 0);
}

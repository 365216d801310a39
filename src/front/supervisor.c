/* The berthd side of the front: forks the workers, keeps the route table, pushes
 * every change to every worker over its control socket, and restarts a worker
 * that dies. Workers are watched through pidfds, so a reaped pid can never be
 * confused with a recycled one. */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/proc.h"
#include "front/front-internal.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 2000          /* a worker that lived this long restarts at once */
#define STOP_GRACE_MS 3000
#define QUEUE_MAX ((size_t)1 << 30)
#define ACTIVITY_FLUSH_MS 1000
#define ACTIVITY_READS_PER_WAKE 64   /* then back to the loop: no worker can hog berthd */

struct sworker {
    struct front_supervisor *sup;
    unsigned index;
    pid_t pid;                  /* 0 when not running */
    int pidfd;
    int ctl;                    /* our end of the SOCK_SEQPACKET pair */
    struct buf queue;           /* records [u32 len][message] not yet sent */
    size_t qoff;
    uint64_t started_ms;
    uint32_t backoff_ms;
    struct ev_timer *restart;
    bool warned_report;         /* a malformed report was logged for this worker process */
};

/* A site as the supervisor keeps it: its encoded UPSERT message, ready to send to
 * any worker that starts. */
struct blob {
    char *name;
    size_t len;
    char *data;
};

struct front_supervisor {
    struct evloop *loop;
    struct front_config cfg;
    char *base_domain, *global_log;
    struct front_spread *spread; /* each worker's sockets, the inboxes, the shared slots */
    struct front_map sites;     /* name -> blob */
    struct front_map challenges; /* token -> blob (the SET message) */
    struct sworker *workers;
    unsigned n_workers;
    bool stopping;
    front_activity_fn activity_fn;
    void *activity_data;
    struct front_map activity;  /* name -> struct pending_activity, summed over workers */
    struct ev_timer *activity_timer;
    char *activity_buf;         /* FRONT_ACTIVITY_MSG_MAX + 1: one report from a worker */
};

/* A site's figures from every worker since the last call of activity_fn. */
struct pending_activity {
    char name[64];
    struct front_site_activity a;
};

void front_config_init(struct front_config *cfg)
{
    *cfg = (struct front_config){
        .workers = 0,
        .cpu_affinity = true,
        .uid = 199999,
        .gid = 199999,
        .drop_privileges = true,
        .base_domain = "localhost",
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .upstream_connect_timeout_ms = 5000,
        .upstream_read_timeout_ms = 60000,
        .max_conns_per_worker = 10000,
        .max_conns_per_client = 256,
        .site_max_requests = 1024,
        .max_body = 16 << 20,
        .max_request_line = 8192,
        .max_head = 65536,
        .max_headers = 100,
        .log_rotate_size = 64 << 20,
        .log_keep = 5,
        .log_flush_ms = 1000,
        .http2 = true,
    };
}

static void blob_free(struct blob *b)
{
    if (!b)
        return;
    free(b->name);
    free(b->data);
    free(b);
}

static void ctl_flush(struct sworker *sw);

static void activity_flush(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct front_supervisor *sup = data;
    sup->activity_timer = NULL;
    for (size_t i = 0; i < sup->activity.cap; i++) {
        struct pending_activity *p = sup->activity.slots[i].hash ? sup->activity.slots[i].value : NULL;
        if (!p)
            continue;
        /* A site removed meanwhile is not reported: its receiver forgot it already. */
        if (sup->activity_fn && front_map_get(&sup->sites, p->name, strlen(p->name)))
            sup->activity_fn(sup->activity_data, &p->a);
        free(p);
    }
    front_map_done(&sup->activity);
    front_map_init(&sup->activity);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* One checked entry of a worker's report. */
static void activity_add(void *data, const struct front_site_activity *a)
{
    struct front_supervisor *sup = data;
    size_t n = strlen(a->name);
    /* Only sites berthd routes: a worker cannot make berthd keep names of its own. */
    if (!front_map_get(&sup->sites, a->name, n) || n >= sizeof(((struct pending_activity *)0)->name))
        return;
    struct pending_activity *p = front_map_get(&sup->activity, a->name, n);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return;
        memcpy(p->name, a->name, n + 1);
        p->a.name = p->name;
        if (front_map_put(&sup->activity, p->name, n, p, NULL) < 0) {
            free(p);
            return;
        }
    }
    p->a.requests = sat_add(p->a.requests, a->requests);
    for (int k = 0; k < 4; k++)
        p->a.status[k] = sat_add(p->a.status[k], a->status[k]);
    p->a.bytes = sat_add(p->a.bytes, a->bytes);
    p->a.upstream_ok = sat_add(p->a.upstream_ok, a->upstream_ok);
    p->a.upstream_failed = sat_add(p->a.upstream_failed, a->upstream_failed);
    if (!sup->activity_timer)
        sup->activity_timer = evloop_timer_add(sup->loop, ACTIVITY_FLUSH_MS, activity_flush, sup);
}

/* Reads the worker's reports (the only messages a worker sends). */
static void ctl_read(struct sworker *sw)
{
    struct front_supervisor *sup = sw->sup;
    for (int i = 0; i < ACTIVITY_READS_PER_WAKE; i++) {
        ssize_t n = recv(sw->ctl, sup->activity_buf, FRONT_ACTIVITY_MSG_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;   /* EAGAIN, or EOF: the pidfd reports the worker's end */
        if ((size_t)n <= FRONT_ACTIVITY_MSG_MAX &&
            front_msg_activity_decode(sup->activity_buf, (size_t)n, activity_add, sup) >= 0)
            continue;
        /* Once per worker process: a worker gone bad must not flood berthd's log. */
        if (!sw->warned_report)
            log_warning("front: dropped a malformed report of %zd bytes from worker %u (pid %d)", n,
                        sw->index, (int)sw->pid);
        sw->warned_report = true;
    }
}

static void on_ctl(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct sworker *sw = data;
    if (events & EPOLLIN)
        ctl_read(sw);
    if (events & (EPOLLHUP | EPOLLERR)) {
        /* The worker is exiting; its pidfd reports when it is gone. Stop watching
         * so a hung-up socket does not spin the loop meanwhile. */
        evloop_del(loop, fd);
        return;
    }
    if (events & EPOLLOUT)
        ctl_flush(sw);
}

static void ctl_flush(struct sworker *sw)
{
    while (sw->qoff < sw->queue.len) {
        uint32_t len;
        memcpy(&len, sw->queue.data + sw->qoff, 4);
        ssize_t n = send(sw->ctl, sw->queue.data + sw->qoff + 4, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                evloop_mod(sw->sup->loop, sw->ctl, EPOLLIN | EPOLLOUT);
                /* Keep the queue from creeping: drop what was sent already. */
                if (sw->qoff > sw->queue.len / 2) {
                    buf_consume(&sw->queue, sw->qoff);
                    sw->qoff = 0;
                }
                return;
            }
            /* EPIPE and the like: the worker died; the pidfd handles the rest. */
            buf_clear(&sw->queue);
            sw->qoff = 0;
            return;
        }
        sw->qoff += 4 + len;
    }
    buf_clear(&sw->queue);
    sw->qoff = 0;
    evloop_mod(sw->sup->loop, sw->ctl, EPOLLIN);
}

static int enqueue(struct sworker *sw, const void *msg, size_t len)
{
    if (sw->pid <= 0 || sw->ctl < 0)
        return 0;
    uint32_t l = (uint32_t)len;
    int r = buf_append(&sw->queue, &l, 4);
    if (r >= 0)
        r = buf_append(&sw->queue, msg, len);
    return r;
}

static int broadcast(struct front_supervisor *sup, const void *msg, size_t len)
{
    int ret = 0;
    for (unsigned i = 0; i < sup->n_workers; i++) {
        int r = enqueue(&sup->workers[i], msg, len);
        if (r < 0 && ret == 0)
            ret = r;
        ctl_flush(&sup->workers[i]);
    }
    return ret;
}

static int spawn(struct sworker *sw);

static void on_restart(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct sworker *sw = data;
    sw->restart = NULL;
    int r = spawn(sw);
    if (r < 0) {
        log_errno(r, "front: cannot restart worker %u", sw->index);
        sw->backoff_ms = MIN(sw->backoff_ms * 2, (uint32_t)BACKOFF_MAX_MS);
        sw->restart = evloop_timer_add(loop, sw->backoff_ms, on_restart, sw);
    }
}

static void worker_gone(struct sworker *sw)
{
    struct evloop *loop = sw->sup->loop;
    front_spread_set_alive(sw->sup->spread, sw->index, false);
    front_spread_reroute(sw->sup->spread, sw->index);
    evloop_del(loop, sw->pidfd);
    evloop_del(loop, sw->ctl);
    sw->pidfd = safe_close(sw->pidfd);
    sw->ctl = safe_close(sw->ctl);
    sw->pid = 0;
    buf_clear(&sw->queue);
    sw->qoff = 0;
}

static void on_pidfd(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct sworker *sw = data;
    siginfo_t si = { 0 };
    if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return;
    if (si.si_code == CLD_EXITED)
        log_warning("front: worker %u (pid %d) exited with status %d", sw->index, (int)si.si_pid,
                    si.si_status);
    else
        log_warning("front: worker %u (pid %d) killed by signal %d", sw->index, (int)si.si_pid,
                    si.si_status);
    uint64_t lived = now_ms() - sw->started_ms;
    worker_gone(sw);
    if (sw->sup->stopping)
        return;
    /* A worker that crashes at once would crash again: back off, doubling. */
    sw->backoff_ms = lived >= STABLE_MS ? BACKOFF_MIN_MS
                                        : MIN(MAX(sw->backoff_ms * 2, (uint32_t)BACKOFF_MIN_MS),
                                              (uint32_t)BACKOFF_MAX_MS);
    sw->restart = evloop_timer_add(loop, lived >= STABLE_MS ? 0 : sw->backoff_ms, on_restart, sw);
}

/* The CPU worker index runs on when workers are pinned: the index-th CPU berthd
 * may use (round robin), so that cgroup cpusets and a narrower affinity of berthd
 * are respected. -1 when there is nothing to choose (one CPU allowed). */
static int worker_cpu(unsigned index)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        return -1;
    int n = CPU_COUNT(&allowed);
    if (n < 2)
        return -1;
    int want = (int)(index % (unsigned)n);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &allowed) && want-- == 0)
            return cpu;
    return -1;
}

/* Pins the calling worker to its CPU. Best effort: a worker that cannot be pinned
 * runs anywhere. On the 2-core benchmark machine, where wrk shares the cores, it
 * shortened the latency tail whenever the cores had room and never cost
 * requests/s; with connections steered to the worker of their CPU (spread.c) it
 * is what keeps a connection on one core. */
static void pin_worker(const struct front_spread *spread, unsigned index)
{
    /* The CPU the steering program sends this worker's connections to, if any. */
    int cpu = spread->cpus[index] >= 0 ? spread->cpus[index] : worker_cpu(index);
    if (cpu < 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    (void)sched_setaffinity(0, sizeof(one), &one);
}

static int spawn(struct sworker *sw)
{
    struct front_supervisor *sup = sw->sup;
    pid_t pid;
    int pidfd, ctl;
    int r = proc_fork_with_socket(&pid, &pidfd, &ctl);
    if (r < 0)
        return r;
    if (r == 0) {
        if (sup->cfg.cpu_affinity)
            pin_worker(sup->spread, sw->index);
        front_worker_main(&sup->cfg, sup->spread, sw->index, ctl);
    }
    /* Room for a burst of route changes without waiting on the worker. */
    int sz = 4 << 20;
    setsockopt(ctl, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    sw->pid = pid;
    sw->pidfd = pidfd;
    sw->warned_report = false;
    sw->ctl = ctl;
    sw->started_ms = now_ms();
    front_spread_set_alive(sup->spread, sw->index, true);
    r = evloop_add(sup->loop, pidfd, EPOLLIN, on_pidfd, sw);
    if (r >= 0)
        r = evloop_add(sup->loop, sw->ctl, EPOLLIN, on_ctl, sw);
    if (r < 0) {
        proc_kill_wait(pidfd);
        worker_gone(sw);
        return r;
    }
    /* The whole table, then SYNC: the worker accepts only after SYNC. */
    for (size_t i = 0; i < sup->sites.cap && r >= 0; i++) {
        struct blob *b = sup->sites.slots[i].hash ? sup->sites.slots[i].value : NULL;
        if (b)
            r = enqueue(sw, b->data, b->len);
    }
    for (size_t i = 0; i < sup->challenges.cap && r >= 0; i++) {
        struct blob *b = sup->challenges.slots[i].hash ? sup->challenges.slots[i].value : NULL;
        if (b)
            r = enqueue(sw, b->data, b->len);
    }
    uint32_t sync = FRONT_MSG_SYNC;
    if (r >= 0)
        r = enqueue(sw, &sync, sizeof(sync));
    ctl_flush(sw);
    return r < 0 ? r : 0;
}

int front_supervisor_new(struct evloop *loop, const struct front_config *cfg,
                         const int *listen_fds, size_t n_listen, struct front_supervisor **ret)
{
    if (n_listen == 0 || n_listen > 64)
        return -EINVAL;
    struct front_supervisor *sup = calloc(1, sizeof(*sup));
    if (!sup)
        return -ENOMEM;
    sup->loop = loop;
    sup->cfg = *cfg;
    sup->base_domain = cfg->base_domain ? strdup(cfg->base_domain) : NULL;
    sup->global_log = cfg->global_log ? strdup(cfg->global_log) : NULL;
    sup->cfg.base_domain = sup->base_domain;
    sup->cfg.global_log = sup->global_log;
    /* Only the context made from them goes to the workers, not the borrowed PEM. */
    sup->cfg.tls_default_cert = sup->cfg.tls_default_key = NULL;
    front_tls_set_http2(cfg->http2);
    char tls_err[320];
    if (front_tls_prepare(cfg, tls_err, sizeof(tls_err)) < 0) {
        log_error("front: the default HTTPS certificate: %s", tls_err);
        free(sup->base_domain);
        free(sup->global_log);
        free(sup->activity_buf);
        free(sup);
        return -EINVAL;
    }
    sup->activity_buf = malloc(FRONT_ACTIVITY_MSG_MAX + 1);
    unsigned n = cfg->workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned)MIN(cpus, 256L) : 1;
    }
    sup->workers = calloc(n, sizeof(*sup->workers));
    int *cpus = malloc(n * sizeof(int));
    if (!sup->workers || !cpus || !sup->activity_buf || (cfg->base_domain && !sup->base_domain) ||
        (cfg->global_log && !sup->global_log)) {
        free(cpus);
        front_supervisor_free(sup);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        cpus[i] = worker_cpu(i);
    int r = front_spread_new(listen_fds, n_listen, n, cfg->cpu_affinity ? cpus : NULL, &sup->spread);
    free(cpus);
    if (r < 0) {
        front_supervisor_free(sup);
        return r;
    }
    sup->n_workers = n;
    front_map_init(&sup->sites);
    front_map_init(&sup->challenges);
    front_map_init(&sup->activity);
    for (unsigned i = 0; i < n; i++) {
        struct sworker *sw = &sup->workers[i];
        *sw = (struct sworker){ .sup = sup, .index = i, .pidfd = -1, .ctl = -1,
                                .queue = BUF_INIT(QUEUE_MAX), .backoff_ms = BACKOFF_MIN_MS };
    }
    *ret = sup;
    return 0;
}

int front_supervisor_start(struct front_supervisor *sup)
{
    for (unsigned i = 0; i < sup->n_workers; i++) {
        if (sup->workers[i].pid > 0)
            continue;
        int r = spawn(&sup->workers[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

void front_supervisor_free(struct front_supervisor *sup)
{
    if (!sup)
        return;
    sup->stopping = true;
    for (unsigned i = 0; i < sup->n_workers; i++) {
        struct sworker *sw = &sup->workers[i];
        evloop_timer_cancel(sup->loop, sw->restart);
        sw->restart = NULL;
        if (sw->pid > 0)
            syscall(SYS_pidfd_send_signal, sw->pidfd, SIGTERM, NULL, 0);
    }
    /* Wait for all of them together, up to the grace period, then kill the rest. */
    uint64_t deadline = now_ms() + STOP_GRACE_MS;
    for (;;) {
        struct pollfd pfds[256];
        unsigned np = 0;
        for (unsigned i = 0; i < sup->n_workers && np < ARRAY_SIZE(pfds); i++)
            if (sup->workers[i].pid > 0)
                pfds[np++] = (struct pollfd){ .fd = sup->workers[i].pidfd, .events = POLLIN };
        uint64_t now = now_ms();
        if (np == 0 || now >= deadline)
            break;
        if (poll(pfds, np, (int)(deadline - now)) <= 0)
            continue;
        for (unsigned i = 0; i < sup->n_workers; i++) {
            struct sworker *sw = &sup->workers[i];
            siginfo_t si = { 0 };
            if (sw->pid > 0 && waitid(P_PIDFD, (id_t)sw->pidfd, &si, WEXITED | WNOHANG) == 0 &&
                si.si_pid != 0)
                worker_gone(sw);
        }
    }
    for (unsigned i = 0; i < sup->n_workers; i++) {
        struct sworker *sw = &sup->workers[i];
        if (sw->pid > 0) {
            syscall(SYS_pidfd_send_signal, sw->pidfd, SIGKILL, NULL, 0);
            waitid(P_PIDFD, (id_t)sw->pidfd, &(siginfo_t){ 0 }, WEXITED);
            worker_gone(sw);
        }
        buf_done(&sw->queue);
    }
    for (size_t i = 0; i < sup->sites.cap; i++)
        if (sup->sites.slots[i].hash)
            blob_free(sup->sites.slots[i].value);
    front_map_done(&sup->sites);
    for (size_t i = 0; i < sup->challenges.cap; i++)
        if (sup->challenges.slots[i].hash)
            blob_free(sup->challenges.slots[i].value);
    front_map_done(&sup->challenges);
    evloop_timer_cancel(sup->loop, sup->activity_timer);
    for (size_t i = 0; i < sup->activity.cap; i++)
        if (sup->activity.slots[i].hash)
            free(sup->activity.slots[i].value);
    front_map_done(&sup->activity);
    free(sup->activity_buf);
    free(sup->workers);
    front_spread_free(sup->spread);
    free(sup->base_domain);
    free(sup->global_log);
    front_tls_release();
    free(sup);
}

int front_supervisor_site_upsert(struct front_supervisor *sup, const struct front_site *site)
{
    struct blob *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    struct buf msg = BUF_INIT(FRONT_MSG_MAX);
    int r = front_msg_site_encode(site, &msg);
    if (r < 0) {
        buf_done(&msg);
        free(b);
        return r;
    }
    b->len = msg.len;
    b->data = buf_steal(&msg);
    b->name = strdup(site->name);
    void *old = NULL;
    if (!b->name || front_map_put(&sup->sites, b->name, strlen(b->name), b, &old) < 0) {
        blob_free(b);
        return -ENOMEM;
    }
    blob_free(old);
    return broadcast(sup, b->data, b->len);
}

int front_supervisor_site_remove(struct front_supervisor *sup, const char *name)
{
    size_t n = strlen(name);
    struct blob *b = front_map_get(&sup->sites, name, n);
    if (!b)
        return -ENOENT;
    front_map_del(&sup->sites, name, n, b);
    /* Figures summed but not yet passed on belong to the site gone, not to one
     * created under its name before the next flush. */
    struct pending_activity *p = front_map_get(&sup->activity, name, n);
    if (p) {
        front_map_del(&sup->activity, name, n, p);
        free(p);
    }
    char msg[4 + 64];
    uint32_t type = FRONT_MSG_REMOVE;
    memcpy(msg, &type, 4);
    size_t len = MIN(n, (size_t)64);
    memcpy(msg + 4, name, len);
    blob_free(b);
    return broadcast(sup, msg, 4 + len);
}

int front_supervisor_challenge_set(struct front_supervisor *sup, const char *token,
                                   const char *key_authorization)
{
    size_t tn = strlen(token), kn = strlen(key_authorization);
    if (!front_challenge_valid(token, tn, false) || !front_challenge_valid(key_authorization, kn, true))
        return -EINVAL;
    struct blob *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->name = strdup(token);
    b->len = 4 + tn + 1 + kn;
    b->data = malloc(b->len);
    void *old = NULL;
    if (!b->name || !b->data) {
        blob_free(b);
        return -ENOMEM;
    }
    uint32_t type = FRONT_MSG_CHALLENGE_SET;
    memcpy(b->data, &type, 4);
    memcpy(b->data + 4, token, tn + 1);
    memcpy(b->data + 4 + tn + 1, key_authorization, kn);
    if (front_map_put(&sup->challenges, b->name, tn, b, &old) < 0) {
        blob_free(b);
        return -ENOMEM;
    }
    blob_free(old);
    return broadcast(sup, b->data, b->len);
}

int front_supervisor_challenge_remove(struct front_supervisor *sup, const char *token)
{
    size_t tn = strlen(token);
    struct blob *b = front_map_get(&sup->challenges, token, tn);
    if (!b)
        return -ENOENT;
    front_map_del(&sup->challenges, token, tn, b);
    char msg[4 + FRONT_CHALLENGE_MAX];
    uint32_t type = FRONT_MSG_CHALLENGE_REMOVE;
    memcpy(msg, &type, 4);
    memcpy(msg + 4, token, tn);   /* tn <= FRONT_CHALLENGE_MAX: only valid tokens were stored */
    blob_free(b);
    return broadcast(sup, msg, 4 + tn);
}

int front_supervisor_default_cert_set(struct front_supervisor *sup, const char *cert_pem, const char *key_pem)
{
    if (!sup->cfg.tls_listeners)
        return 0;
    size_t cn = strlen(cert_pem), kn = strlen(key_pem);
    if (4 + cn + 1 + kn > FRONT_MSG_MAX)
        return -E2BIG;
    /* Here first: a certificate that cannot be used never reaches a worker, and
     * workers forked from now on inherit the new context. */
    char err[300];
    int r = front_tls_default_replace(cert_pem, key_pem, err, sizeof(err));
    if (r < 0) {
        log_error("front: the new default HTTPS certificate: %s", err);
        return r;
    }
    _cleanup_free_ char *msg = malloc(4 + cn + 1 + kn);
    if (!msg)
        return -ENOMEM;
    uint32_t type = FRONT_MSG_DEFAULT_CERT;
    memcpy(msg, &type, 4);
    memcpy(msg + 4, cert_pem, cn + 1);
    memcpy(msg + 4 + cn + 1, key_pem, kn);
    r = broadcast(sup, msg, 4 + cn + 1 + kn);
    OPENSSL_cleanse(msg, 4 + cn + 1 + kn);
    return r;
}

int front_supervisor_reopen_logs(struct front_supervisor *sup)
{
    uint32_t type = FRONT_MSG_REOPEN_LOGS;
    return broadcast(sup, &type, sizeof(type));
}

size_t front_supervisor_site_count(const struct front_supervisor *sup)
{
    return sup->sites.len;
}

size_t front_supervisor_worker_pids(const struct front_supervisor *sup, pid_t *ret_pids, size_t n)
{
    size_t k = 0;
    for (unsigned i = 0; i < sup->n_workers && k < n; i++)
        if (sup->workers[i].pid > 0)
            ret_pids[k++] = sup->workers[i].pid;
    return k;
}

void front_supervisor_set_activity_handler(struct front_supervisor *sup, front_activity_fn fn, void *data)
{
    sup->activity_fn = fn;
    sup->activity_data = data;
}

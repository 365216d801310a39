/* Spreading connections over the workers.
 *
 * Each listening address berthd hands over with SO_REUSEPORT set becomes a group
 * of sockets, one per worker, so that no two workers wait on the same accept
 * queue. When the workers are pinned one per CPU, a classic BPF program on the
 * group sends each new connection to the socket of the worker on the CPU that
 * took its SYN: that worker's CPU is where the connection's packets are processed
 * (the NIC queue's interrupt, or on loopback the client's own CPU), so the request
 * is read, answered and its reply woken up without a wakeup across CPUs. On the
 * 2-core benchmark machine that cut the 1 KiB p99 from 4-8 ms to under 1 ms
 * (bench/RESULTS.md). A listener that cannot be spread (inherited without
 * SO_REUSEPORT, a unix socket) is shared by every worker as before.
 *
 * Steering alone can pile connections on one worker: a single-queue NIC takes
 * every SYN on one CPU, and a client connecting from one CPU lands on one worker.
 * So every worker publishes how many connections it serves in a shared page, and
 * on its tick a worker that serves clearly more than another live worker hands
 * it connections through that worker's inbox (SCM_RIGHTS on a SOCK_SEQPACKET
 * pair): idle keep-alive ones at once, new ones as it accepts them until the two
 * are even. Only a connection with no byte read and none to write is handed
 * over. Waiting for the tick matters: clients connect in bursts, one CPU after
 * another (wrk's threads do), and evening out each burst as it came moved
 * connections away from their CPU for nothing (p99 back to 4-8 ms).
 * A client whose packets move to another CPU later is handed to that CPU's
 * worker on the tick, as far as the counts allow.
 * While a worker is down or stalled (no tick for a second), the others also watch
 * its sockets, so nothing waits long in its queue. */
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "common/log.h"
#include "front/front-internal.h"

/* A worker hands connections over only while it serves more than this beyond the
 * least loaded live worker: small enough that a pile-up ends up about even, large
 * enough that wrk's 32 + 32 (or 33 + 31) never moves anything. */
static uint32_t handoff_slack(uint32_t mine)
{
    return 2 + mine / 16;
}

static bool spreadable(int fd, int *ret_domain)
{
    int v = 0;
    socklen_t l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &l) < 0 || !v)
        return false;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0 || !v)
        return false;
    /* Bound to a device (systemd's BindToDevice=): a sibling would need the same
     * binding to join the group; simpler to share it as it is. */
    char dev[64];
    l = sizeof(dev);
    if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &l) < 0 || l > 0)
        return false;
    l = sizeof(*ret_domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, ret_domain, &l) < 0)
        return false;
    return *ret_domain == AF_INET || *ret_domain == AF_INET6;
}

/* Another socket in fd's SO_REUSEPORT group: same address, same options. */
static int join_group(int fd, int domain)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    int v6only = 0;
    socklen_t l = sizeof(v6only);
    if (domain == AF_INET6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) < 0)
        return -errno;
    _cleanup_close_ int s = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int one = 1;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (domain == AF_INET6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0) ||
        bind(s, (struct sockaddr *)&ss, sl) < 0 || listen(s, SOMAXCONN) < 0)
        return -errno;
    return TAKE_FD(s);
}

/* The program: load the CPU that runs it (the one that took the SYN), return the
 * index of the worker pinned there; any other CPU gets an index past the group,
 * which makes the kernel fall back to its hash. Group indexes follow the order the
 * sockets started listening: the given socket first, then workers 1, 2, ... */
static int attach_cpu_program(int fd, const int *worker_cpus, unsigned n_workers)
{
    size_t n = 2 * (size_t)n_workers + 2;
    struct sock_filter *code = calloc(n, sizeof(*code));
    if (!code)
        return -ENOMEM;
    code[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
    for (unsigned i = 0; i < n_workers; i++) {
        code[1 + 2 * i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)worker_cpus[i], 0, 1);
        code[2 + 2 * i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, i);
    }
    code[n - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, UINT32_MAX);
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = code };
    int r = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0 ? -errno : 0;
    free(code);
    return r;
}

/* Two workers on one CPU, or one not pinned: the program would mean nothing. */
static bool distinct_cpus(const int *worker_cpus, unsigned n)
{
    if (!worker_cpus)
        return false;
    for (unsigned i = 0; i < n; i++) {
        if (worker_cpus[i] < 0)
            return false;
        for (unsigned j = 0; j < i; j++)
            if (worker_cpus[j] == worker_cpus[i])
                return false;
    }
    return true;
}

int front_spread_new(const int *listen_fds, size_t n_listen, unsigned n_workers,
                     const int *worker_cpus, struct front_spread **ret)
{
    if (n_workers == 0 || n_listen == 0)
        return -EINVAL;
    struct front_spread *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->n_workers = n_workers;
    s->n_listen = n_listen;
    s->listen = calloc(n_listen * n_workers, sizeof(int));   /* all equal: nothing to close yet */
    s->inbox = malloc(2 * (size_t)n_workers * sizeof(int));
    s->cpus = malloc(n_workers * sizeof(int));
    size_t slots_size = n_workers * sizeof(struct front_worker_slot);
    s->slots = mmap(NULL, slots_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->slots == MAP_FAILED)
        s->slots = NULL;
    if (!s->listen || !s->inbox || !s->cpus || !s->slots) {
        front_spread_free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < 2 * n_workers; i++)
        s->inbox[i] = -1;
    for (unsigned i = 0; n_workers > 1 && i < n_workers; i++)
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &s->inbox[2 * i]) < 0) {
            /* Out of fds, say: the workers serve all the same, only never hand
             * connections to one another. */
            log_warning("front: cannot make the workers' inboxes (%m); connections will not be evened out");
            for (unsigned j = 0; j < 2 * n_workers; j++)
                s->inbox[j] = safe_close(s->inbox[j]);
            break;
        }

    bool steer = n_workers > 1 && distinct_cpus(worker_cpus, n_workers);
    if (n_workers > 1 && worker_cpus && !steer)
        log_info("front: %u workers but not one CPU each; connections spread by hash, not by CPU",
                 n_workers);
    for (unsigned i = 0; i < n_workers; i++)
        s->cpus[i] = steer ? worker_cpus[i] : -1;
    for (size_t l = 0; l < n_listen; l++) {
        int *row = &s->listen[l * n_workers];
        for (unsigned i = 0; i < n_workers; i++)
            row[i] = listen_fds[l];
        int domain;
        if (n_workers == 1 || !spreadable(listen_fds[l], &domain))
            continue;
        int r = 0;
        for (unsigned i = 1; i < n_workers && r >= 0; i++) {
            r = join_group(listen_fds[l], domain);
            if (r >= 0)
                row[i] = r;
        }
        if (r < 0) {
            /* Half a group would leave some workers no socket of their own. */
            log_warning_errno(r, "front: cannot give each worker its own listening socket; "
                                 "they share one");
            for (unsigned i = 1; i < n_workers; i++) {
                if (row[i] != row[0])
                    close(row[i]);
                row[i] = row[0];
            }
            continue;
        }
        if (steer) {
            r = attach_cpu_program(listen_fds[l], worker_cpus, n_workers);
            if (r < 0)
                log_debug("front: no CPU steering on a listener (%s); spread by hash", strerror(-r));
            else
                s->steered = true;
        }
    }
    *ret = s;
    return 0;
}

void front_spread_free(struct front_spread *s)
{
    if (!s)
        return;
    /* Worker 0's socket of each listener is the caller's; a different one in its
     * row was made here. */
    for (size_t i = 0; s->listen && i < s->n_listen * s->n_workers; i++)
        if (s->listen[i] != s->listen[i - i % s->n_workers])
            close(s->listen[i]);
    if (s->inbox)
        for (unsigned i = 0; i < 2 * s->n_workers; i++)
            safe_close(s->inbox[i]);
    if (s->slots)
        munmap(s->slots, s->n_workers * sizeof(struct front_worker_slot));
    free(s->listen);
    free(s->inbox);
    free(s->cpus);
    free(s);
}

void front_spread_set_alive(struct front_spread *s, unsigned worker, bool alive)
{
    /* Started or gone, it is not ready: it says so itself once it listens. */
    atomic_store_explicit(&s->slots[worker].ready, 0, memory_order_relaxed);
    atomic_store_explicit(&s->slots[worker].alive, alive ? 1 : 0, memory_order_relaxed);
    if (!alive)
        atomic_store_explicit(&s->slots[worker].conns, 0, memory_order_relaxed);
}

void front_spread_set_ready(struct front_spread *s, unsigned self, uint64_t now)
{
    front_spread_beat(s, self, now);
    atomic_store_explicit(&s->slots[self].ready, 1, memory_order_release);
}

void front_spread_beat(struct front_spread *s, unsigned self, uint64_t now)
{
    atomic_store_explicit(&s->slots[self].beat_ms, now, memory_order_relaxed);
}

bool front_spread_serving(const struct front_spread *s, unsigned worker, uint64_t now)
{
    if (!atomic_load_explicit(&s->slots[worker].alive, memory_order_relaxed) ||
        !atomic_load_explicit(&s->slots[worker].ready, memory_order_acquire))
        return false;
    uint64_t beat = atomic_load_explicit(&s->slots[worker].beat_ms, memory_order_relaxed);
    return now < beat || now - beat < FRONT_WORKER_STALL_MS;
}

void front_spread_set_conns(struct front_spread *s, unsigned self, size_t n)
{
    atomic_store_explicit(&s->slots[self].conns, (uint32_t)MIN(n, (size_t)UINT32_MAX), memory_order_relaxed);
}

static uint32_t load_of(const struct front_spread *s, unsigned i)
{
    return atomic_load_explicit(&s->slots[i].conns, memory_order_relaxed) +
           atomic_load_explicit(&s->slots[i].incoming, memory_order_relaxed);
}

int front_spread_pick(const struct front_spread *s, unsigned self, uint32_t *ret_surplus)
{
    if (s->n_workers < 2)
        return -1;
    uint64_t now = now_ms();
    uint32_t mine = load_of(s, self), best_load = UINT32_MAX;
    int best = -1;
    for (unsigned i = 0; i < s->n_workers; i++) {
        if (i == self || !front_spread_serving(s, i, now))
            continue;
        uint32_t l = load_of(s, i);
        if (l < best_load) {
            best_load = l;
            best = (int)i;
        }
    }
    if (best < 0 || mine <= best_load + handoff_slack(mine))
        return -1;
    if (ret_surplus)
        *ret_surplus = (mine - best_load) / 2;
    return best;
}

int front_spread_worker_on_cpu(const struct front_spread *s, int cpu)
{
    for (unsigned i = 0; cpu >= 0 && i < s->n_workers; i++)
        if (s->cpus[i] == cpu)
            return (int)i;
    return -1;
}

bool front_spread_may_move(const struct front_spread *s, unsigned self, unsigned to)
{
    if (to == self || to >= s->n_workers || !front_spread_serving(s, to, now_ms()))
        return false;
    /* Afterwards `to` must not serve so many more than self that it would hand
     * connections back: the two rules never undo each other. */
    uint32_t mine = load_of(s, self), theirs = load_of(s, to) + 1;
    return mine > 0 && theirs <= mine - 1 + handoff_slack(theirs);
}

int front_spread_handoff(struct front_spread *s, unsigned to, int fd, const struct front_handoff *h)
{
    if (s->inbox[2 * to + 1] < 0)
        return -ENOTCONN;
    struct front_handoff msg = *h;
    struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    /* Counted before it is sent, so that a burst of accepts sees it at once. */
    atomic_fetch_add_explicit(&s->slots[to].incoming, 1, memory_order_relaxed);
    if (sendmsg(s->inbox[2 * to + 1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        int r = -errno;
        atomic_fetch_sub_explicit(&s->slots[to].incoming, 1, memory_order_relaxed);
        return r;
    }
    return 0;
}

int front_spread_inbox_fd(const struct front_spread *s, unsigned self)
{
    return s->n_workers > 1 ? s->inbox[2 * self] : -1;
}

int front_spread_receive(struct front_spread *s, unsigned self, struct front_handoff *ret)
{
    if (s->n_workers < 2 || s->inbox[2 * self] < 0)
        return -EAGAIN;
    for (;;) {
        struct front_handoff msg;
        struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int) * 4)];
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof(ctl.buf) };
        ssize_t n = recvmsg(s->inbox[2 * self], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EAGAIN;
        int got = -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                if (got < 0)
                    got = fd;
                else
                    close(fd);   /* one per message is the protocol */
            }
        }
        uint32_t in = atomic_load_explicit(&s->slots[self].incoming, memory_order_relaxed);
        while (in > 0 && !atomic_compare_exchange_weak_explicit(&s->slots[self].incoming, &in, in - 1,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed))
            ;
        if (got < 0)
            continue;
        if ((size_t)n != sizeof(msg)) {
            close(got);   /* not one of ours */
            continue;
        }
        *ret = msg;
        return got;
    }
}

void front_spread_reroute(struct front_spread *s, unsigned dead)
{
    struct front_handoff h;
    int fd;
    while ((fd = front_spread_receive(s, dead, &h)) >= 0) {
        uint64_t now = now_ms();
        int to = -1;
        for (unsigned i = 0; i < s->n_workers && to < 0; i++)
            if (i != dead && front_spread_serving(s, i, now))
                to = (int)i;
        if (to < 0 || front_spread_handoff(s, (unsigned)to, fd, &h) < 0)
            log_debug("front: a connection handed to worker %u was lost with it", dead);
        close(fd);
    }
    atomic_store_explicit(&s->slots[dead].incoming, 0, memory_order_relaxed);
}

int front_spread_socket(const struct front_spread *s, size_t listener, unsigned worker)
{
    return s->listen[listener * s->n_workers + worker];
}

/* berthd's ACME orders: certificates for the sites' public names from an ACME CA.
 *
 * Each order runs the ACME client (src/acme) in a child process of its own, forked
 * from berthd and dropped to an unprivileged uid with no_new_privs before it talks
 * to the network: the CA's answers are parsed there, never in the root daemon, and
 * an order that hangs is killed without touching berthd's loop. The child asks the
 * parent, over a socket pair, to publish each http-01 answer in the front (and
 * waits until it is live), then sends the certificate or its failure. berthd keeps
 * serving the site with what it has meanwhile; a failed order is retried after a
 * backoff that doubles (5 minutes to a day), as a CA's rate limits want. */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "acme/acme.h"
#include "common/buf.h"
#include "common/evloop.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/daemon.h"

#define ORDER_TIMEOUT_S 600
#define ORDERS_AT_ONCE 4
#define RETRY_FIRST_MS (5 * 60 * 1000ULL)
#define RETRY_MAX_MS (24 * 3600 * 1000ULL)
#define MSG_MAX (256 * 1024)
#define CHILD_UID 65534   /* nobody: the child needs no file and no privilege */

struct acme_site {
    struct acme_site *next;
    struct berthd_acme *owner;
    char *site;
    char *hosts;                  /* the names asked for, '\n'-joined (as certs_hosts_join) */
    bool wanted;                  /* an order for hosts is to run (when a slot is free) */
    unsigned failures;            /* in a row, for the backoff */
    uint64_t retry_at_ms;         /* no new order before (CLOCK_MONOTONIC) */
    /* the running order, if any */
    pid_t pid;
    int pidfd, sock;
    char *order_hosts;            /* what the running order asks for */
    char **published;             /* tokens it had published, withdrawn when it ends */
    size_t n_published;
    bool result_seen;
    struct ev_timer *deadline;
};

struct berthd_acme {
    struct evloop *loop;
    struct acme_config cfg;       /* strings owned here */
    char *account_key_pem;
    struct berthd_acme_callbacks cb;
    struct acme_site *sites;
    unsigned running;
    uint64_t retry_first_ms;
    struct ev_timer *kick;
    uint64_t kick_at;             /* when it comes (now_ms()) */
    bool closing;                 /* being freed: start nothing new */
};

static void order_end(struct berthd_acme *a, struct acme_site *s, const char *error);
static void start_wanted(struct berthd_acme *a);

static struct acme_site *find_site(struct berthd_acme *a, const char *site)
{
    for (struct acme_site *s = a->sites; s; s = s->next)
        if (streq(s->site, site))
            return s;
    return NULL;
}

/* ---- the child ---- */

struct child_ctx {
    int sock;
};

/* Sends one message and, for a publication, waits for the parent's word that the
 * answer is live in the front. */
static int child_challenge(void *data, const char *token, const char *key_authorization, bool publish)
{
    struct child_ctx *ctx = data;
    char msg[1024];
    int len = publish ? snprintf(msg, sizeof(msg), "P%s%c%s", token, 0, key_authorization)
                      : snprintf(msg, sizeof(msg), "W%s", token);
    if (len < 0 || (size_t)len >= sizeof(msg))
        return -E2BIG;
    if (send(ctx->sock, msg, (size_t)len, MSG_NOSIGNAL) < 0)
        return -errno;
    char reply;
    ssize_t n = recv(ctx->sock, &reply, 1, 0);
    if (n != 1)
        return -EPIPE;
    return reply == 'A' ? 0 : -EIO;
}

/* Sends the one-line failure of the order (what, then detail if any) and exits. */
static _noreturn_ void child_fail(int sock, const char *what, const char *detail)
{
    char msg[640];
    int n = snprintf(msg, sizeof(msg), "E%s%s", what, detail ? detail : "");
    (void)!send(sock, msg, (size_t)MIN(MAX(n, 0), (int)sizeof(msg) - 1), MSG_NOSIGNAL);
    _exit(1);
}

/* The order message: 'O', then directory, ca_file, email, account key, hosts
 * ('\n'-joined) and the time limit in seconds, each NUL-terminated ("" for none). */
enum { F_DIRECTORY, F_CA_FILE, F_EMAIL, F_ACCOUNT_KEY, F_HOSTS, F_TIMEOUT, N_FIELDS };

int berthd_acme_order_main(int sock)
{
    char *msg = malloc(MSG_MAX + 1);
    if (!msg)
        return 1;
    ssize_t n = recv(sock, msg, MSG_MAX, MSG_TRUNC);
    if (n < 2 || n > MSG_MAX || msg[0] != 'O')
        child_fail(sock, "berthd sent no order", NULL);
    msg[n] = 0;
    const char *field[N_FIELDS];
    const char *p = msg + 1, *end = msg + n;
    for (int i = 0; i < N_FIELDS; i++) {
        const char *nul = p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
        if (!nul)
            child_fail(sock, "berthd sent a malformed order", NULL);
        field[i] = p;
        p = nul + 1;
    }
    uint64_t timeout;
    if (parse_uint(field[F_TIMEOUT], 1, 3600, &timeout) < 0 || !field[F_DIRECTORY][0] || !field[F_HOSTS][0])
        child_fail(sock, "berthd sent a malformed order", NULL);

    /* The CA file the ACME server is checked against may be readable by root only:
     * read it now, into a file the unprivileged client can still open. */
    char ca_path[64];
    if (field[F_CA_FILE][0]) {
        char *pem;
        size_t len;
        int mfd = memfd_create("acme-ca", 0);
        if (mfd < 0 || read_file(field[F_CA_FILE], 4 << 20, &pem, &len) < 0 || write(mfd, pem, len) != (ssize_t)len)
            child_fail(sock, "cannot read acme.ca_file ", field[F_CA_FILE]);
        free(pem);
        snprintf(ca_path, sizeof(ca_path), "/proc/self/fd/%d", mfd);
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    gid_t gid = CHILD_UID;
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(CHILD_UID, CHILD_UID, CHILD_UID) < 0 ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(sock, "cannot drop privileges for the ACME client", NULL);

    size_t n_hosts = 1;
    for (const char *h = field[F_HOSTS]; *h; h++)
        n_hosts += *h == '\n';
    const char **hosts = calloc(n_hosts, sizeof(char *));
    char *copy = strdup(field[F_HOSTS]);
    if (!hosts || !copy)
        child_fail(sock, "out of memory", NULL);
    n_hosts = 0;
    char *save = NULL;
    for (char *h = strtok_r(copy, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
        hosts[n_hosts++] = h;

    struct acme_config cfg = {
        .directory_url = field[F_DIRECTORY],
        .ca_file = field[F_CA_FILE][0] ? ca_path : NULL,
        .account_key_pem = field[F_ACCOUNT_KEY],
        .contact_email = field[F_EMAIL][0] ? field[F_EMAIL] : NULL,
        .timeout_s = (unsigned)timeout,
    };
    struct child_ctx ctx = { sock };
    char *cert = NULL, *key = NULL, err[512] = "";
    int r = acme_issue(&cfg, hosts, n_hosts, child_challenge, &ctx, &cert, &key, NULL, err, sizeof(err));
    if (r < 0)
        child_fail(sock, err[0] ? err : strerror(-r), NULL);
    size_t cl = strlen(cert), kl = strlen(key);
    char *out = malloc(1 + cl + 1 + kl);
    if (!out)
        _exit(1);
    out[0] = 'D';
    memcpy(out + 1, cert, cl + 1);
    memcpy(out + 1 + cl + 1, key, kl);
    if (send(sock, out, 1 + cl + 1 + kl, MSG_NOSIGNAL) < 0)
        _exit(1);
    _exit(0);
}

/* In the forked child: only the socket to berthd, as fd 3, and a fresh berthd
 * image, so nothing of the daemon's memory (the CA's key, the store's pages, other
 * sites' keys) is there for a compromised client to read. */
static _noreturn_ void child_exec(int sock)
{
    if (sock != 3 && dup2(sock, 3) < 0)
        _exit(1);
    close_range(4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char *argv[] = { "berthd", "--acme-order", NULL };
    execv("/proc/self/exe", argv);
    child_fail(3, "cannot run the ACME client: ", strerror(errno));
}

/* ---- the parent ---- */

static void reply(struct acme_site *s, char c)
{
    (void)!send(s->sock, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void withdraw(struct berthd_acme *a, struct acme_site *s, const char *token)
{
    for (size_t i = 0; i < s->n_published; i++) {
        if (streq(s->published[i], token)) {
            a->cb.challenge(a->cb.data, token, NULL, false);
            free(s->published[i]);
            s->published[i] = s->published[--s->n_published];
            return;
        }
    }
}

/* One message of the child: a challenge to publish or withdraw, or the end. The
 * child is less trusted than berthd: anything malformed ends the order. */
static void handle_child_msg(struct berthd_acme *a, struct acme_site *s, char *msg, size_t n)
{
    msg[n] = 0;
    if (n >= 2 && msg[0] == 'P') {
        const char *token = msg + 1, *nul = memchr(msg + 1, 0, n - 1);
        if (!nul || s->n_published >= 128) {
            order_end(a, s, "the ACME client sent a malformed message");
            return;
        }
        const char *key_auth = nul + 1;
        char **grown = realloc(s->published, (s->n_published + 1) * sizeof(char *));
        if (!grown) {
            reply(s, 'N');
            return;
        }
        s->published = grown;
        int r = a->cb.challenge(a->cb.data, token, key_auth, true);
        if (r < 0) {
            reply(s, 'N');
            return;
        }
        s->published[s->n_published++] = xstrdup(token);
        reply(s, 'A');
    } else if (n >= 2 && msg[0] == 'W') {
        withdraw(a, s, msg + 1);
        reply(s, 'A');
    } else if (n >= 2 && msg[0] == 'D') {
        const char *cert = msg + 1, *nul = memchr(msg + 1, 0, n - 1);
        if (!nul || !nul[1]) {
            order_end(a, s, "the ACME client sent a malformed certificate");
            return;
        }
        s->result_seen = true;
        a->cb.done(a->cb.data, s->site, s->order_hosts, cert, nul + 1, NULL);
        order_end(a, s, NULL);
    } else if (n >= 2 && msg[0] == 'E') {
        s->result_seen = true;
        order_end(a, s, msg + 1);
    } else {
        order_end(a, s, "the ACME client sent a malformed message");
    }
}

static void on_child_msg(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct acme_site *s = data;
    struct berthd_acme *a = s->owner;
    char *buf = malloc(MSG_MAX + 1);
    if (!buf)
        return;
    ssize_t n = recv(fd, buf, MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        free(buf);
        return;
    }
    if (n <= 0 || n > MSG_MAX)
        order_end(a, s, n > MSG_MAX ? "the ACME client sent too large a message" : "the ACME client ended without a result");
    else
        handle_child_msg(a, s, buf, (size_t)n);
    free(buf);
}

static void on_child_exit(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct acme_site *s = data;
    /* An event left from an earlier order of s whose pidfd number the order started
     * at its end now has (both in one epoll batch): that child still runs. */
    siginfo_t si = { 0 };
    if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
        return;
    /* A result still in the socket is read first: exit and message race. Its end
     * may start the next order of s at once, which is not this child's to end. */
    pid_t pid = s->pid;
    if (s->sock >= 0)
        on_child_msg(loop, s->sock, EPOLLIN, s);
    if (s->pid > 0 && s->pid == pid)
        order_end(s->owner, s, "the ACME client exited without a result");
}

static void on_order_deadline(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct acme_site *s = data;
    s->deadline = NULL;
    order_end(s->owner, s, "the order took longer than 10 minutes");
}

/* Ends the running order of s: kills and reaps the child, withdraws what it had
 * published; error NULL: it succeeded. */
static void order_end(struct berthd_acme *a, struct acme_site *s, const char *error)
{
    if (s->pid <= 0)
        return;
    syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
    waitid(P_PIDFD, (id_t)s->pidfd, &(siginfo_t){ 0 }, WEXITED);
    evloop_del(a->loop, s->pidfd);
    evloop_del(a->loop, s->sock);
    close(s->pidfd);
    close(s->sock);
    s->pid = 0;
    s->pidfd = s->sock = -1;
    evloop_timer_cancel(a->loop, s->deadline);
    s->deadline = NULL;
    while (s->n_published > 0)
        withdraw(a, s, s->published[0]);
    a->running--;
    if (error) {
        s->failures = MIN(s->failures + 1, 20u);
        uint64_t wait = a->retry_first_ms << MIN(s->failures - 1, 20u);
        wait = MIN(wait, RETRY_MAX_MS);
        s->retry_at_ms = now_ms() + wait;
        /* The same names are asked for again after the wait, unless they change. */
        s->wanted = true;
        log_warning("ACME: no certificate for site %s (%s): %s; trying again in %llu min", s->site,
                    s->order_hosts, error, (unsigned long long)(wait + 59999) / 60000);
        if (!s->result_seen)
            a->cb.done(a->cb.data, s->site, s->order_hosts, NULL, NULL, error);
    } else {
        s->failures = 0;
        s->retry_at_ms = 0;
    }
    free(s->order_hosts);
    s->order_hosts = NULL;
    s->result_seen = false;
    start_wanted(a);
}

static int order_start(struct berthd_acme *a, struct acme_site *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int sz = MSG_MAX + 4096;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    s->order_hosts = xstrdup(s->hosts);
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(sv[0]);
        close(sv[1]);
        free(s->order_hosts);
        s->order_hosts = NULL;
        return r;
    }
    if (pid == 0) {
        close(sv[0]);
        child_exec(sv[1]);
    }
    close(sv[1]);
    /* The order, queued before the child reads it. */
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%u", a->cfg.timeout_s);
    const char *field[N_FIELDS] = {
        [F_DIRECTORY] = a->cfg.directory_url, [F_CA_FILE] = a->cfg.ca_file ?: "",
        [F_EMAIL] = a->cfg.contact_email ?: "", [F_ACCOUNT_KEY] = a->cfg.account_key_pem,
        [F_HOSTS] = s->order_hosts, [F_TIMEOUT] = timeout,
    };
    struct buf order = BUF_INIT(MSG_MAX);
    int br = buf_append(&order, "O", 1);
    for (int i = 0; i < N_FIELDS && br >= 0; i++)
        br = buf_append(&order, field[i], strlen(field[i]) + 1);
    if (br >= 0 && send(sv[0], order.data, order.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        br = -errno;
    buf_done(&order);
    int pidfd = br >= 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd < 0) {
        /* Not sent, or not watchable: this child is no order of ours. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(sv[0]);
        free(s->order_hosts);
        s->order_hosts = NULL;
        return br < 0 ? br : -errno;
    }
    s->pid = pid;
    s->pidfd = pidfd;
    s->sock = sv[0];
    s->wanted = false;
    a->running++;
    if (evloop_add(a->loop, sv[0], EPOLLIN, on_child_msg, s) < 0 ||
        evloop_add(a->loop, pidfd, EPOLLIN, on_child_exit, s) < 0) {
        order_end(a, s, "cannot watch the ACME client");
        return -EIO;
    }
    s->deadline = evloop_timer_add(a->loop, ORDER_TIMEOUT_S * 1000ULL, on_order_deadline, s);
    log_info("ACME: ordering a certificate for site %s (%s)", s->site, s->hosts);
    return 0;
}

static void on_kick(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct berthd_acme *a = data;
    a->kick = NULL;
    start_wanted(a);
}

/* Starts the orders that are due, as far as the slots allow; sets a timer for the
 * next one waiting out its backoff. */
static void start_wanted(struct berthd_acme *a)
{
    if (a->closing)
        return;
    uint64_t now = now_ms(), next = 0;
    for (struct acme_site *s = a->sites; s && a->running < ORDERS_AT_ONCE; s = s->next) {
        if (!s->wanted || s->pid > 0)
            continue;
        if (s->retry_at_ms > now) {
            next = next ? MIN(next, s->retry_at_ms) : s->retry_at_ms;
            continue;
        }
        int r = order_start(a, s);
        if (r < 0 && r != -EIO) {
            /* fork or a socket failed (a pids or fd limit): tried again after the
             * first wait, not left waiting for something else to push the site. */
            log_warning_errno(r, "ACME: cannot start an order for site %s", s->site);
            s->retry_at_ms = now + a->retry_first_ms;
            next = next ? MIN(next, s->retry_at_ms) : s->retry_at_ms;
        }
    }
    /* A shorter backoff than the one the timer waits for (a new failure) moves it. */
    if (next && (!a->kick || next < a->kick_at)) {
        evloop_timer_cancel(a->loop, a->kick);
        a->kick = evloop_timer_add(a->loop, next - now, on_kick, a);
        a->kick_at = next;
    }
}

int berthd_acme_new(struct evloop *loop, const struct berthd_config *cfg, const char *account_key_pem,
                    const struct berthd_acme_callbacks *cb, struct berthd_acme **ret)
{
    struct berthd_acme *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->loop = loop;
    a->cb = *cb;
    a->account_key_pem = xstrdup(account_key_pem);
    a->cfg = (struct acme_config){
        .directory_url = xstrdup(cfg->acme_directory),
        .ca_file = cfg->acme_ca_file ? xstrdup(cfg->acme_ca_file) : NULL,
        .account_key_pem = a->account_key_pem,
        .contact_email = cfg->acme_email ? xstrdup(cfg->acme_email) : NULL,
        .timeout_s = ORDER_TIMEOUT_S - 10,
    };
    a->retry_first_ms = RETRY_FIRST_MS;
    uint64_t ms;
    const char *test_retry = getenv("BERTH_TEST_ACME_RETRY_MS");
    if (test_retry && parse_uint(test_retry, 1, RETRY_FIRST_MS, &ms) == 0)
        a->retry_first_ms = ms;
    *ret = a;
    return 0;
}

void berthd_acme_request(struct berthd_acme *a, const char *site, const char *hosts)
{
    struct acme_site *s = find_site(a, site);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return;
        s->owner = a;
        s->site = xstrdup(site);
        s->pidfd = s->sock = -1;
        s->next = a->sites;
        a->sites = s;
    }
    /* Asked for the same names again (every push of the site asks): nothing new,
     * whether an order runs, waits for a slot or waits out a failure. */
    if (s->hosts && streq(s->hosts, hosts) && (s->pid > 0 || s->wanted))
        return;
    if (!s->hosts || !streq(s->hosts, hosts)) {
        free(s->hosts);
        s->hosts = xstrdup(hosts);
        s->failures = 0;
        s->retry_at_ms = 0;   /* other names: no reason to wait */
    }
    s->wanted = true;
    if (s->pid <= 0)
        start_wanted(a);
    /* else: the running order ends first (its result may no longer fit the site's
     * names: the done callback checks), then this one runs. */
}

void berthd_acme_forget(struct berthd_acme *a, const char *site)
{
    for (struct acme_site **pp = &a->sites; *pp; pp = &(*pp)->next) {
        struct acme_site *s = *pp;
        if (!streq(s->site, site))
            continue;
        s->wanted = false;
        if (s->pid > 0) {
            s->result_seen = true;   /* nobody to tell */
            order_end(a, s, NULL);
        }
        *pp = s->next;
        free(s->site);
        free(s->hosts);
        free(s->published);
        free(s);
        return;
    }
}

void berthd_acme_cancel(struct berthd_acme *a, const char *site)
{
    struct acme_site *s = find_site(a, site);
    if (!s)
        return;
    s->wanted = false;
    if (s->pid > 0) {
        s->result_seen = true;   /* nobody waits for it */
        order_end(a, s, NULL);
    }
}

void berthd_acme_free(struct berthd_acme *a)
{
    if (!a)
        return;
    a->closing = true;
    while (a->sites)
        berthd_acme_forget(a, a->sites->site);
    evloop_timer_cancel(a->loop, a->kick);
    free((char *)a->cfg.directory_url);
    free((char *)a->cfg.ca_file);
    free((char *)a->cfg.contact_email);
    free(a->account_key_pem);
    free(a);
}

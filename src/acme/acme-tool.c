/* A test tool (not installed): runs acme_issue from the command line and answers the
 * http-01 challenges itself on 127.0.0.1:PORT, one blocking responder thread.
 *
 *   acme-tool --directory URL [--ca-file F] --account-key F [--email E] [--timeout S]
 *             --http-port P --out-cert F --out-key F [--bad-key-authorization] [--parallel N]
 *             [--cancel-after MS] HOST...
 *   acme-tool --new-account-key F
 *
 * --cancel-after MS sets the issuance's cancel flag from another thread after MS.
 * --parallel N runs N issuances at once, each on its own thread (the first one's
 * certificate is written). Prints "account: URL" (one line per issuance) on success.
 * Exit status: 0 issued, 1 failed (one line on stderr: "acme-tool: <reason>"), 2 usage. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "acme/acme.h"
#include "common/buf.h"

#define PREFIX "/.well-known/acme-challenge/"

struct answer {
    char *token, *key_authorization;
};

struct responder {
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    struct answer answers[128];
    size_t n;
    bool bad;            /* serve a wrong key authorization (a test of the failure path) */
    atomic_bool stop;
};

static void serve_one(struct responder *rs, int c)
{
    char req[4096];
    size_t len = 0;
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        ssize_t n = read(c, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = 0;
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = 0;

    char body[1024] = "";
    const char *status = "404 Not Found";
    if (str_startswith(req, "GET " PREFIX)) {
        const char *tok = req + strlen("GET " PREFIX);
        size_t tok_len = strcspn(tok, " ?\r\n");
        pthread_mutex_lock(&rs->lock);
        for (size_t i = 0; i < rs->n; i++)
            if (strlen(rs->answers[i].token) == tok_len && memcmp(rs->answers[i].token, tok, tok_len) == 0) {
                snprintf(body, sizeof(body), "%s", rs->answers[i].key_authorization);
                status = "200 OK";
            }
        pthread_mutex_unlock(&rs->lock);
    }
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, strlen(body));
    if (write(c, head, (size_t)n) < 0 || write(c, body, strlen(body)) < 0)
        return;
}

static void *responder_main(void *arg)
{
    struct responder *rs = arg;
    while (!atomic_load(&rs->stop)) {
        int c = accept4(rs->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        serve_one(rs, c);
        close(c);
    }
    return NULL;
}

static int publish(void *data, const char *token, const char *key_authorization, bool on)
{
    struct responder *rs = data;
    int r = 0;
    pthread_mutex_lock(&rs->lock);
    if (on) {
        if (rs->n == ARRAY_SIZE(rs->answers)) {
            r = -ENOSPC;
            goto out;
        }
        struct answer a = { strdup(token), NULL };
        if (a.token && asprintf(&a.key_authorization, "%s%s", rs->bad ? "x" : "", key_authorization) < 0)
            a.key_authorization = NULL;
        if (!a.token || !a.key_authorization) {
            free(a.token);
            free(a.key_authorization);
            r = -ENOMEM;
            goto out;
        }
        rs->answers[rs->n++] = a;
    } else {
        for (size_t i = 0; i < rs->n; i++)
            if (streq(rs->answers[i].token, token)) {
                free(rs->answers[i].token);
                free(rs->answers[i].key_authorization);
                rs->answers[i] = rs->answers[--rs->n];
                break;
            }
    }
out:
    pthread_mutex_unlock(&rs->lock);
    return r;
}

/* One issuance; --parallel N runs N of them at once, each on a thread of its own,
 * as berthd will. */
struct job {
    const struct acme_config *cfg;
    const char *const *hosts;
    size_t n_hosts;
    struct responder *rs;
    pthread_t thread;
    char *cert, *key, *account;
    char err[1024];
    int r;
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    j->r = acme_issue(j->cfg, j->hosts, j->n_hosts, publish, j->rs, &j->cert, &j->key, &j->account, j->err,
                      sizeof(j->err));
    return NULL;
}

/* --cancel-after MS: sets the issuance's cancel flag after MS, unless woken first
 * through the pipe (the issuance ended). */
struct canceller {
    int pipe[2];
    unsigned ms;
    atomic_bool cancel;
    pthread_t thread;
};

static void *canceller_main(void *arg)
{
    struct canceller *c = arg;
    struct pollfd p = { .fd = c->pipe[0], .events = POLLIN };
    if (poll(&p, 1, (int)c->ms) == 0)
        atomic_store(&c->cancel, true);
    return NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    struct buf b = BUF_INIT(1 << 20);
    char chunk[4096];
    size_t n;
    int r = 0;
    while (r >= 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        r = buf_append(&b, chunk, n);
    bool bad = ferror(f) || r < 0;
    fclose(f);
    if (bad) {
        buf_done(&b);
        return NULL;
    }
    return buf_steal(&b);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int r = n == (ssize_t)len ? 0 : -EIO;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

static _noreturn_ void usage(void)
{
    fprintf(stderr, "usage: acme-tool --directory URL [--ca-file F] --account-key F [--email E] [--timeout S]\n"
                    "                 --http-port P --out-cert F --out-key F [--bad-key-authorization] [--parallel N]\n"
                    "                 [--cancel-after MS] HOST...\n"
                    "       acme-tool --new-account-key F\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "directory", required_argument, NULL, 'd' },
        { "ca-file", required_argument, NULL, 'c' },
        { "account-key", required_argument, NULL, 'k' },
        { "email", required_argument, NULL, 'e' },
        { "timeout", required_argument, NULL, 't' },
        { "http-port", required_argument, NULL, 'p' },
        { "out-cert", required_argument, NULL, 'C' },
        { "out-key", required_argument, NULL, 'K' },
        { "bad-key-authorization", no_argument, NULL, 'b' },
        { "new-account-key", required_argument, NULL, 'n' },
        { "parallel", required_argument, NULL, 'P' },
        { "cancel-after", required_argument, NULL, 'x' },
        {},
    };
    struct acme_config cfg = { .timeout_s = 120 };
    const char *key_path = NULL, *out_cert = NULL, *out_key = NULL, *new_key = NULL;
    uint64_t port = 0, timeout, parallel = 1, cancel_ms = 0;
    static struct canceller canceller = { .pipe = { -1, -1 } };
    static struct responder rs = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
        switch (o) {
        case 'd': cfg.directory_url = optarg; break;
        case 'c': cfg.ca_file = optarg; break;
        case 'k': key_path = optarg; break;
        case 'e': cfg.contact_email = optarg; break;
        case 't':
            if (parse_uint(optarg, 1, 3600, &timeout) < 0)
                usage();
            cfg.timeout_s = (unsigned)timeout;
            break;
        case 'p':
            if (parse_uint(optarg, 1, 65535, &port) < 0)
                usage();
            break;
        case 'C': out_cert = optarg; break;
        case 'K': out_key = optarg; break;
        case 'b': rs.bad = true; break;
        case 'n': new_key = optarg; break;
        case 'x':
            if (parse_uint(optarg, 1, 3600000, &cancel_ms) < 0)
                usage();
            break;
        case 'P':
            if (parse_uint(optarg, 1, 8, &parallel) < 0)
                usage();
            break;
        default: usage();
        }
    }
    if (new_key) {
        char *pem = NULL;
        int r = acme_account_key_generate(&pem);
        if (r >= 0)
            r = write_file(new_key, pem, 0600);
        free(pem);
        if (r < 0) {
            fprintf(stderr, "acme-tool: making %s: %s\n", new_key, strerror(-r));
            return 1;
        }
        return 0;
    }
    if (!cfg.directory_url || !key_path || !port || !out_cert || !out_key || optind >= argc)
        usage();

    char *account_key = read_file(key_path);
    if (!account_key) {
        fprintf(stderr, "acme-tool: reading %s: %s\n", key_path, strerror(errno ? errno : EIO));
        return 1;
    }
    cfg.account_key_pem = account_key;

    rs.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;
    if (rs.fd < 0 || setsockopt(rs.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(rs.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(rs.fd, 64) < 0 ||
        pthread_create(&rs.thread, NULL, responder_main, &rs) != 0) {
        fprintf(stderr, "acme-tool: serving challenges on 127.0.0.1:%u: %m\n", (unsigned)port);
        free(account_key);
        return 1;
    }

    if (cancel_ms) {
        canceller.ms = (unsigned)cancel_ms;
        cfg.cancel = &canceller.cancel;
        if (pipe2(canceller.pipe, O_CLOEXEC) < 0 ||
            pthread_create(&canceller.thread, NULL, canceller_main, &canceller) != 0) {
            fprintf(stderr, "acme-tool: starting the cancel timer: %m\n");
            return 1;
        }
    }

    struct job jobs[8] = {};
    for (size_t i = 0; i < parallel; i++) {
        jobs[i] = (struct job){ .cfg = &cfg, .hosts = (const char *const *)argv + optind,
                                .n_hosts = (size_t)(argc - optind), .rs = &rs, .r = -EIO };
        if (parallel == 1)
            job_main(&jobs[i]);
        else if (pthread_create(&jobs[i].thread, NULL, job_main, &jobs[i]) != 0) {
            snprintf(jobs[i].err, sizeof(jobs[i].err), "starting a thread failed");
            parallel = i + 1;
            break;
        }
    }
    for (size_t i = 0; parallel > 1 && i < parallel; i++)
        if (jobs[i].thread)
            pthread_join(jobs[i].thread, NULL);
    int r = 0;
    char err[1024] = "";
    for (size_t i = 0; i < parallel && r >= 0; i++)
        if (jobs[i].r < 0) {
            r = jobs[i].r;
            snprintf(err, sizeof(err), "%s", jobs[i].err);
        }
    char *cert = jobs[0].cert, *key = jobs[0].key;

    if (cancel_ms) {
        close(canceller.pipe[1]);   /* wakes the timer */
        pthread_join(canceller.thread, NULL);
        close(canceller.pipe[0]);
    }
    atomic_store(&rs.stop, true);
    shutdown(rs.fd, SHUT_RDWR);   /* wakes accept() */
    pthread_join(rs.thread, NULL);
    close(rs.fd);
    for (size_t i = 0; i < rs.n; i++) {
        free(rs.answers[i].token);
        free(rs.answers[i].key_authorization);
    }
    free(account_key);

    if (r >= 0 && ((r = write_file(out_cert, cert, 0644)) < 0 || (r = write_file(out_key, key, 0600)) < 0))
        snprintf(err, sizeof(err), "writing the certificate or its key: %s", strerror(-r));
    for (size_t i = 0; r >= 0 && i < parallel; i++)
        printf("account: %s\n", jobs[i].account);
    if (r < 0)
        fprintf(stderr, "acme-tool: %s\n", err);
    for (size_t i = 0; i < parallel; i++) {
        free(jobs[i].cert);
        free(jobs[i].key);
        free(jobs[i].account);
    }
    return r >= 0 ? 0 : 1;
}

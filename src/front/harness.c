/* front-harness: a TEST AND BENCHMARK TOOL, not part of berthd. It does what
 * berthd does for the front (bind the listeners, run the supervisor, push routes)
 * from a plain route file, so the front can be driven by integration tests and
 * benchmarks before and independently of the daemon.
 *
 *   front-harness --listen 127.0.0.1:0 [--listen [::1]:0 | --listen /abs/unix.sock]... --routes FILE
 *                 [--port-file FILE] [--workers N] [--uid U --gid G | --no-drop]
 *                 [--global-log PATH] [--header-timeout MS] [--idle-timeout MS]
 *                 [--connect-timeout MS] [--read-timeout MS] [--max-conns N]
 *                 [--max-conns-per-client N] [--max-body BYTES]
 *                 [--max-request-line N] [--max-head N] [--max-headers N]
 *                 [--log-rotate-size BYTES] [--log-keep N] [--no-cpu-affinity]
 *                 [--site-max-requests N]
 *                 [--tls-listen ADDR:PORT]... --tls-cert PEM --tls-key PEM
 *
 * Route file: one site per line, "key=value" words separated by spaces:
 *   name=blog type=static|php|app state=serving|stopped public=/abs/public
 *   logs=/abs/logs uid=1001 backend=/abs/app.sock max_body=1048576 timeout_ms=30000
 *   hosts=blog.localhost,www.example.com cert=/abs/cert.pem key=/abs/key.pem redirect=https
 * "challenge TOKEN KEY_AUTHORIZATION" publishes an ACME http-01 answer.
 * Lines starting with '#' are ignored. SIGHUP re-reads the file: new and changed
 * sites are upserted, missing ones removed. SIGUSR1 reopens logs; SIGTERM stops.
 * --port-file receives the bound ports, one per line, once the workers run
 * (--listen ones first, then --tls-listen ones). --tls-cert/--tls-key: the default
 * certificate of the HTTPS listeners; cert=/key= in a route: the site's own. */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/util.h"
#include "front/front.h"

#define MAX_LISTEN 16
#define MAX_SITES 200000

struct harness {
    struct evloop *loop;
    struct front_supervisor *sup;
    const char *routes;
    char **names;          /* sites pushed by the last load */
    size_t n_names;
    char **tokens;         /* ACME challenges published by the last load */
    size_t n_tokens;
};

/* A unix stream socket at an absolute path (as a socket unit may hand berthd),
 * open to every user; its "port" is 0. */
static int bind_unix_listener(const char *path, int *ret_fd, unsigned *ret_port)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(path, 0666) < 0 || listen(fd, 4096) < 0)
        return -errno;
    *ret_port = 0;
    *ret_fd = TAKE_FD(fd);
    return 0;
}

static int bind_listener(const char *spec, int *ret_fd, unsigned *ret_port)
{
    if (spec[0] == '/')
        return bind_unix_listener(spec, ret_fd, ret_port);
    struct sockaddr_storage ss = { 0 };
    socklen_t sl;
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return -EINVAL;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    uint64_t port;
    if (parse_uint(colon + 1, 0, 65535, &port) < 0)
        return -EINVAL;
    if (host[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = 0;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return -EINVAL;
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        sl = sizeof(*a);
    }
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* SO_REUSEPORT only once bound: a port someone else listens on still fails,
     * and the front can then give each worker a socket of its own. */
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 || listen(fd, 4096) < 0)
        return -errno;
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0)
        return -errno;
    *ret_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                : ((struct sockaddr_in *)&got)->sin_port);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* Reads a PEM file named in a route into *ret (freed by the caller). */
static int read_pem(const char *path, const char **ret)
{
    char *data;
    size_t len;
    int r = read_file(path, 1 << 20, &data, &len);
    if (r < 0)
        return r;
    *ret = data;
    return 0;
}

static int parse_line(char *line, struct front_site *s, const char **hosts, size_t max_hosts)
{
    *s = (struct front_site){ .hosts = hosts };
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
        char *eq = strchr(w, '=');
        if (!eq)
            return -EINVAL;
        *eq = 0;
        const char *k = w, *v = eq + 1;
        uint64_t n;
        if (streq(k, "name"))
            s->name = v;
        else if (streq(k, "type"))
            s->type = streq(v, "app") ? FRONT_SITE_APP : streq(v, "php") ? FRONT_SITE_PHP : FRONT_SITE_STATIC;
        else if (streq(k, "state"))
            s->state = streq(v, "stopped") ? FRONT_SITE_STOPPED : FRONT_SITE_SERVING;
        else if (streq(k, "public"))
            s->public_dir = v;
        else if (streq(k, "logs"))
            s->logs_dir = v;
        else if (streq(k, "backend"))
            s->backend = v;
        else if (streq(k, "uid") && parse_uint(v, 0, UINT32_MAX, &n) == 0)
            s->uid = (uid_t)n;
        else if (streq(k, "max_body") && parse_size(v, &n) == 0)
            s->max_body = n;
        else if (streq(k, "redirect") && streq(v, "https"))
            s->https_redirect = true;
        else if (streq(k, "timeout_ms") && parse_uint(v, 0, UINT32_MAX, &n) == 0)
            s->upstream_timeout_ms = (uint32_t)n;
        else if (streq(k, "cert") && !s->tls_cert) {
            if (read_pem(v, &s->tls_cert) < 0)
                return -EINVAL;
        } else if (streq(k, "key") && !s->tls_key) {
            if (read_pem(v, &s->tls_key) < 0)
                return -EINVAL;
        } else if (streq(k, "hosts")) {
            char *save2 = NULL;
            for (char *h = strtok_r(eq + 1, ",", &save2); h; h = strtok_r(NULL, ",", &save2)) {
                if (s->n_hosts == max_hosts)
                    return -E2BIG;
                hosts[s->n_hosts++] = h;
            }
        } else
            return -EINVAL;
    }
    return s->name ? 1 : 0;
}

static void load_routes(struct harness *h)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = read_file(h->routes, 256 << 20, &data, &len);
    if (r < 0) {
        log_errno(r, "read %s", h->routes);
        return;
    }
    size_t cap = 16, n = 0;
    char **names = malloc(cap * sizeof(char *));
    static const char *hosts[4096];
    char **tokens = calloc(256, sizeof(char *));
    size_t n_tokens = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line && names && tokens; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        if (strncmp(line, "challenge ", 10) == 0) {
            char *save2 = NULL, *token = strtok_r(line + 10, " ", &save2), *key_auth = strtok_r(NULL, " ", &save2);
            if (!token || !key_auth || n_tokens == 256 ||
                (r = front_supervisor_challenge_set(h->sup, token, key_auth)) < 0)
                log_error("%s: bad challenge line", h->routes);
            else
                tokens[n_tokens++] = xstrdup(token);
            continue;
        }
        struct front_site s;
        r = parse_line(line, &s, hosts, ARRAY_SIZE(hosts));
        if (r < 0)
            log_error("%s: bad line", h->routes);
        else if (r > 0 && (r = front_supervisor_site_upsert(h->sup, &s)) < 0)
            log_errno(r, "site %s", s.name);
        free((char *)s.tls_cert);
        free((char *)s.tls_key);
        if (r < 0 || !s.name)
            continue;
        if (n == cap) {
            char **p = realloc(names, (cap *= 2) * sizeof(char *));
            if (!p)
                break;
            names = p;
        }
        names[n++] = xstrdup(s.name);
    }
    /* Sites gone from the file are removed. */
    for (size_t i = 0; i < h->n_names; i++) {
        bool kept = false;
        for (size_t k = 0; k < n && !kept; k++)
            kept = streq(h->names[i], names[k]);
        if (!kept)
            front_supervisor_site_remove(h->sup, h->names[i]);
        free(h->names[i]);
    }
    free(h->names);
    h->names = names;
    h->n_names = n;
    for (size_t i = 0; i < h->n_tokens; i++) {
        bool kept = false;
        for (size_t k = 0; k < n_tokens && !kept; k++)
            kept = streq(h->tokens[i], tokens[k]);
        if (!kept)
            front_supervisor_challenge_remove(h->sup, h->tokens[i]);
        free(h->tokens[i]);
    }
    free(h->tokens);
    h->tokens = tokens;
    h->n_tokens = n_tokens;
}

static void on_signal(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct harness *h = data;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            load_routes(h);
        else if (si.ssi_signo == SIGUSR1)
            front_supervisor_reopen_logs(h->sup);
        else
            evloop_quit(loop);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "routes", required_argument, NULL, 'r' },
        { "port-file", required_argument, NULL, 'p' },
        { "workers", required_argument, NULL, 'w' },
        { "uid", required_argument, NULL, 'u' },
        { "gid", required_argument, NULL, 'g' },
        { "no-drop", no_argument, NULL, 'n' },
        { "no-cpu-affinity", no_argument, NULL, 'A' },
        { "global-log", required_argument, NULL, 'G' },
        { "header-timeout", required_argument, NULL, 1 },
        { "idle-timeout", required_argument, NULL, 2 },
        { "connect-timeout", required_argument, NULL, 3 },
        { "read-timeout", required_argument, NULL, 4 },
        { "max-conns", required_argument, NULL, 5 },
        { "max-conns-per-client", required_argument, NULL, 6 },
        { "max-body", required_argument, NULL, 7 },
        { "max-request-line", required_argument, NULL, 8 },
        { "max-head", required_argument, NULL, 9 },
        { "max-headers", required_argument, NULL, 10 },
        { "log-rotate-size", required_argument, NULL, 11 },
        { "log-keep", required_argument, NULL, 12 },
        { "site-max-requests", required_argument, NULL, 13 },
        { "tls-listen", required_argument, NULL, 'L' },
        { "tls-cert", required_argument, NULL, 'C' },
        { "tls-key", required_argument, NULL, 'K' },
        { "no-http2", no_argument, NULL, 'H' },
        {},
    };
    struct front_config cfg;
    front_config_init(&cfg);
    const char *listen_specs[MAX_LISTEN], *tls_specs[MAX_LISTEN];
    size_t n_listen = 0, n_tls = 0;
    _cleanup_free_ char *tls_cert = NULL, *tls_key = NULL;
    const char *port_file = NULL;
    struct harness h = { 0 };
    log_set_ident("front-harness");
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
        uint64_t v = 0;
        if (optarg && c != 'l' && c != 'r' && c != 'p' && c != 'G' && c != 'L' && c != 'C' && c != 'K' &&
            (c == 7 || c == 11 ? parse_size(optarg, &v) : parse_uint(optarg, 0, UINT32_MAX, &v)) < 0) {
            fprintf(stderr, "front-harness: bad value %s\n", optarg);
            return 2;
        }
        switch (c) {
        case 'l':
            if (n_listen == MAX_LISTEN)
                return 2;
            listen_specs[n_listen++] = optarg;
            break;
        case 'L':
            if (n_tls == MAX_LISTEN)
                return 2;
            tls_specs[n_tls++] = optarg;
            break;
        case 'H':
            cfg.http2 = false;
            break;
        case 'C':
        case 'K': {
            char **dst = c == 'C' ? &tls_cert : &tls_key;
            size_t len;
            free(*dst);
            *dst = NULL;
            if (read_file(optarg, 1 << 20, dst, &len) < 0) {
                fprintf(stderr, "front-harness: cannot read %s\n", optarg);
                return 2;
            }
            break;
        }
        case 'r': h.routes = optarg; break;
        case 'p': port_file = optarg; break;
        case 'w': cfg.workers = (unsigned)v; break;
        case 'u': cfg.uid = (uid_t)v; break;
        case 'g': cfg.gid = (gid_t)v; break;
        case 'n': cfg.drop_privileges = false; break;
        case 'A': cfg.cpu_affinity = false; break;
        case 'G': cfg.global_log = optarg; break;
        case 1: cfg.header_timeout_ms = (uint32_t)v; break;
        case 2: cfg.idle_timeout_ms = (uint32_t)v; break;
        case 3: cfg.upstream_connect_timeout_ms = (uint32_t)v; break;
        case 4: cfg.upstream_read_timeout_ms = (uint32_t)v; break;
        case 5: cfg.max_conns_per_worker = (uint32_t)v; break;
        case 6: cfg.max_conns_per_client = (uint32_t)v; break;
        case 7: cfg.max_body = v; break;
        case 8: cfg.max_request_line = v; break;
        case 9: cfg.max_head = v; break;
        case 10: cfg.max_headers = v; break;
        case 11: cfg.log_rotate_size = v; break;
        case 12: cfg.log_keep = (unsigned)v; break;
        case 13: cfg.site_max_requests = (uint32_t)v; break;
        default: return 2;
        }
    }
    if (n_listen + n_tls == 0 || !h.routes) {
        fprintf(stderr, "usage: front-harness --listen ADDR:PORT... --routes FILE [options]\n");
        return 2;
    }
    if (getuid() != 0)
        cfg.drop_privileges = false;
    for (size_t i = 0; i < n_tls && n_listen < MAX_LISTEN; i++) {
        cfg.tls_listeners |= 1ULL << n_listen;
        listen_specs[n_listen++] = tls_specs[i];
    }
    cfg.tls_default_cert = tls_cert;
    cfg.tls_default_key = tls_key;

    int fds[MAX_LISTEN];
    unsigned ports[MAX_LISTEN];
    for (size_t i = 0; i < n_listen; i++) {
        int r = bind_listener(listen_specs[i], &fds[i], &ports[i]);
        if (r < 0) {
            log_errno(r, "listen %s", listen_specs[i]);
            return 1;
        }
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int r = evloop_new(&h.loop);
    if (r < 0 || sfd < 0)
        return 1;
    r = front_supervisor_new(h.loop, &cfg, fds, n_listen, &h.sup);
    if (r < 0) {
        log_errno(r, "start the front");
        return 1;
    }
    load_routes(&h);
    r = front_supervisor_start(h.sup);
    if (r < 0) {
        log_errno(r, "start the front's workers");
        front_supervisor_free(h.sup);
        evloop_free(h.loop);
        return 1;
    }
    evloop_add(h.loop, sfd, EPOLLIN, on_signal, &h);
    if (port_file) {
        char text[MAX_LISTEN * 8] = "";
        size_t len = 0;
        for (size_t i = 0; i < n_listen; i++)
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%u\n", ports[i]);
        r = write_file_atomic(port_file, text, len, 0644);
        if (r < 0)
            log_errno(r, "write %s", port_file);
    }
    r = evloop_run(h.loop);
    front_supervisor_free(h.sup);
    evloop_del(h.loop, sfd);
    evloop_free(h.loop);
    for (size_t i = 0; i < h.n_names; i++)
        free(h.names[i]);
    free(h.names);
    for (size_t i = 0; i < h.n_tokens; i++)
        free(h.tokens[i]);
    free(h.tokens);
    for (size_t i = 0; i < n_listen; i++)
        close(fds[i]);
    return r < 0 ? 1 : 0;
}

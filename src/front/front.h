/* The front: what the internet talks to. berthd binds the listening sockets and
 * runs a supervisor (this header's first half) that forks unprivileged worker
 * processes, one event loop each, and pushes the route table to them over a
 * control socket. Workers route HTTP/1.1 and HTTP/2 (over TLS) requests by Host to a site: they serve its
 * static files beneath its public/ directory, proxy to its backend over a unix
 * socket, and write its access and error logs. See docs/internals/front.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/evloop.h"

/* What a site runs: static files only, PHP (FastCGI to the site's php-fpm pool on a
 * unix socket), or an app that speaks HTTP on a unix socket. */
enum front_site_type {
    FRONT_SITE_STATIC,
    FRONT_SITE_PHP,
    FRONT_SITE_APP,
};

/* Whether requests are served; a stopped site gets 503. */
enum front_site_state {
    FRONT_SITE_SERVING,
    FRONT_SITE_STOPPED,
};

/* One route, as berthd describes it. All pointers are borrowed for the duration of
 * the call that takes it; the front copies what it keeps. */
struct front_site {
    const char *name;              /* site name (a DNS label), unique */
    const char *const *hosts;      /* host names, ASCII lowercase, no port, no trailing dot */
    size_t n_hosts;
    enum front_site_type type;
    enum front_site_state state;
    const char *public_dir;        /* absolute host path of the web root (static files) */
    const char *logs_dir;          /* absolute host path where access.log/error.log go; NULL: none */
    uid_t uid;                     /* site uid: a symlink is followed only to a target the link's owner owns */
    const char *backend;           /* app, php: path of the backend's unix socket (php: the
                                      socket berthd hands php-fpm as fd 3); NULL otherwise */
    uint64_t max_body;             /* request body limit in bytes (413 beyond); 0: config default */
    uint32_t upstream_timeout_ms;  /* backend silent this long: 504; 0: the config's
                                      upstream_read_timeout_ms. For PHP, berthd sets it to
                                      max_execution_time plus a margin */
    const char *tls_cert;          /* PEM: the certificate for the site's hosts, then its chain;
                                      NULL: HTTPS requests for its hosts get the default one */
    const char *tls_key;           /* PEM: the certificate's private key (with tls_cert) */
    bool https_redirect;           /* plain HTTP requests get a 308 to the same URL over HTTPS
                                      (ACME challenges excepted); set it only when tls_cert is
                                      one browsers trust for every host of the site */
};

/* Front-wide settings. Fill with front_config_init(), then override. Strings are
 * borrowed by front_supervisor_new(), which copies them. */
struct front_config {
    unsigned workers;                  /* worker processes; 0: one per online CPU */
    bool cpu_affinity;                 /* default true: worker i runs only on the i-th CPU
                                          berthd may use (round robin), like nginx's
                                          worker_cpu_affinity auto, and each connection goes
                                          to the worker on the CPU that took its SYN (a
                                          listener with SO_REUSEPORT set becomes a socket
                                          per worker; see spread.c). false: workers run
                                          anywhere and connections are spread by hash */
    uid_t uid;                         /* front user and group the workers run as (default 199999) */
    gid_t gid;
    bool drop_privileges;              /* default true; false keeps the caller's ids (unprivileged tests) */
    const char *base_domain;           /* informational ("localhost"); hosts arrive complete */
    const char *global_log;            /* access log path for unknown hosts; NULL: none. Opened by the worker, as the front user */
    uint32_t header_timeout_ms;        /* whole request head must arrive within this (slowloris); 10 s */
    uint32_t idle_timeout_ms;          /* keep-alive idle, and any stall reading a body or writing a response; 60 s */
    uint32_t upstream_connect_timeout_ms; /* 5 s, then 504 */
    uint32_t upstream_read_timeout_ms; /* backend silent this long: 504 (or close once the answer started); 60 s */
    uint32_t max_conns_per_worker;     /* beyond it new connections get a 503 and are closed; 10000 */
    uint32_t max_conns_per_client;     /* per client address, per worker; 256 */
    uint32_t site_max_requests;        /* requests one site may have at its backend at once
                                          (proxied, FastCGI, WebSocket tunnels), shared out
                                          evenly over the workers; beyond it a 503 with
                                          Retry-After, so that one flooded or stuck site
                                          cannot take the front from the others; 1024;
                                          0: no limit */
    uint64_t max_body;                 /* default request body limit; 16 MiB */
    size_t max_request_line;           /* 414 beyond; 8192 */
    size_t max_head;                   /* 431 beyond; 65536 */
    size_t max_headers;                /* 431 beyond; 100 */
    uint64_t log_rotate_size;          /* rotate a log past this size; 64 MiB; 0: never */
    unsigned log_keep;                 /* rotated files kept (access.log.1 .. .N); 5 */
    uint32_t log_flush_ms;             /* buffered log lines hit the file at least this often; 1000 */
    uint64_t tls_listeners;            /* bit i set: listen_fds[i] speaks TLS (HTTPS); 0: none */
    const char *tls_default_cert;      /* PEM certificate (and chain) shown when the client names
                                          no host with a certificate of its own (SNI); required
                                          when tls_listeners is not 0 */
    const char *tls_default_key;       /* PEM private key of tls_default_cert */
    bool http2;                        /* default true: TLS listeners offer h2 in ALPN (before
                                          http/1.1) and run HTTP/2 on connections that pick it */
};

/* Fills cfg with the defaults given above. */
void front_config_init(struct front_config *cfg);

/* The berthd side: owns the workers and the route table. */
struct front_supervisor;

/* Prepares a supervisor for cfg->workers workers on listen_fds (borrowed: the
 * caller keeps and closes them; each should be non-blocking and listening). A
 * listener with SO_REUSEPORT set gets a sibling socket per further worker, which
 * the supervisor owns: set it after bind() so a port in use still fails. No
 * worker runs yet: fill the route table with front_supervisor_site_upsert(), then
 * call front_supervisor_start(), so that no connection waiting in a backlog (say,
 * across a berthd restart) is answered from a half-filled table. */
int front_supervisor_new(struct evloop *loop, const struct front_config *cfg,
                         const int *listen_fds, size_t n_listen, struct front_supervisor **ret);

/* Forks the workers: each gets the whole route table before it accepts, drops to
 * the front uid/gid and serves. Workers are watched through pidfds in the loop and
 * restarted with a backoff when they die. Must be called while the process is
 * single-threaded. */
int front_supervisor_start(struct front_supervisor *sup);

/* Stops the workers (SIGTERM, SIGKILL after a grace period of 3 s), reaps them and
 * frees everything. Blocks for at most the grace period. NULL-safe. */
void front_supervisor_free(struct front_supervisor *sup);

/* Adds or replaces (by name) a site and pushes it to every worker at once; a worker
 * started later gets it too. Connections being served are not interrupted. -EINVAL
 * for a bad name, host or path, -E2BIG when the description is too large. */
int front_supervisor_site_upsert(struct front_supervisor *sup, const struct front_site *site);

/* Removes a site by name from every worker. -ENOENT if unknown. */
int front_supervisor_site_remove(struct front_supervisor *sup, const char *name);

/* Replaces the certificate shown to clients that name no site with one of its own
 * (or no name at all): checked here, then live in every worker, and in workers
 * started later; connections already open keep theirs, and session tickets issued
 * before stay good. Nothing to do without HTTPS listeners. -EINVAL for a
 * certificate or key that cannot be used (the old one stays), -E2BIG. */
int front_supervisor_default_cert_set(struct front_supervisor *sup, const char *cert_pem, const char *key_pem);

/* Tells every worker to flush and reopen its log files (after an outside rotation:
 * what SIGUSR1 does for nginx). */
int front_supervisor_reopen_logs(struct front_supervisor *sup);

/* ACME http-01 (RFC 8555 §8.3): until removed, GET or HEAD
 * /.well-known/acme-challenge/<token> on any host, over HTTP or HTTPS, answers
 * key_authorization as text/plain, before the site's own files or backend. Live in
 * every worker as soon as this returns (a connection accepted after it sees it);
 * workers started later get it too. -EINVAL for a token or key authorization that
 * is not base64url (the key authorization: two base64url parts joined by '.'),
 * longer than 256 bytes. */
int front_supervisor_challenge_set(struct front_supervisor *sup, const char *token,
                                   const char *key_authorization);
/* Withdraws a challenge answer. -ENOENT if unknown. */
int front_supervisor_challenge_remove(struct front_supervisor *sup, const char *token);

/* Number of sites in the table. */
size_t front_supervisor_site_count(const struct front_supervisor *sup);

/* Writes the pids of the running workers into ret_pids (up to n) and returns how
 * many were written (for status output and tests). */
size_t front_supervisor_worker_pids(const struct front_supervisor *sup, pid_t *ret_pids, size_t n);

/* Requests a site answered, as the workers report them to the supervisor. */
struct front_site_activity {
    const char *name;          /* site name, one the route table holds; borrowed for the call */
    uint64_t requests;         /* answers sent (any status, 101 included) */
    uint64_t status[4];        /* of which 2xx, 3xx, 4xx, 5xx */
    uint64_t bytes;            /* body bytes sent, as the access log counts them */
    uint64_t upstream_ok;      /* of requests: answered by the site's backend */
    uint64_t upstream_failed;  /* of requests: the backend failed them (the front's 502 or
                                  504: refused, broken or silent past the timeout) */
};

/* Called by the supervisor with one site's figures since the previous call, summed
 * over every worker. data is what front_supervisor_set_activity_handler() was given. */
typedef void (*front_activity_fn)(void *data, const struct front_site_activity *activity);

/* Registers the receiver of activity reports (one; NULL fn: none). Each worker
 * counts the requests it answers per site and reports the sites that had any about
 * once a second over its control socket (never blocking: a full socket just means
 * the next report carries more). The supervisor checks every report (a worker is
 * less trusted than berthd: a malformed one is dropped whole, a site not in the
 * table skipped), sums the workers' figures and calls fn once per active site about
 * once a second, from the loop. */
void front_supervisor_set_activity_handler(struct front_supervisor *sup, front_activity_fn fn,
                                           void *data);

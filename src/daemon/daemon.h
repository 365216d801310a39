/* berthd's own pieces: its configuration (YAML file overridden by flags) and the
 * listening sockets it binds for the front. */
#pragma once

#include "common/util.h"

struct evloop;

#define BERTHD_DEFAULT_CONFIG "/etc/berth/berth.yaml"
#define BERTHD_MAX_LISTENERS 16
#define BERTHD_MAX_NAT_ALLOW 32

struct berthd_config {
    bool dev;
    char *config_path;          /* NULL: the default path, which may be missing */
    char *state_dir;
    char *run_dir;
    char *base_domain;
    char *api_socket;           /* NULL: <run_dir>/api.sock */
    char *http[BERTHD_MAX_LISTENERS];
    size_t n_http;
    char *https[BERTHD_MAX_LISTENERS];
    size_t n_https;
    char *ssh[BERTHD_MAX_LISTENERS];  /* SFTP listeners; "off" alone: none */
    size_t n_ssh;
    bool ssh_default;               /* ssh holds the defaults (none was asked for): one
                                       that cannot be bound is a warning, not a failure */
    int log_level;
    uint32_t uid_first, uid_last;   /* site uid range */
    uint32_t front_uid, front_gid;  /* the front's workers */
    unsigned workers;               /* 0: one per core */
    bool no_cpu_affinity;           /* front_cpu_affinity: false (the workers may run anywhere) */
    bool no_http2;                  /* front_http2: false (HTTPS offers only http/1.1 in ALPN) */
    bool site_max_requests_set;     /* site_max_requests was given (0 means no limit) */
    uint32_t site_max_requests;     /* requests one site may have at its backend at once */
    /* The most a user who is not an admin may give one of their sites (user_site_limits);
     * 0 until berthd_config_finish fills the defaults. */
    uint64_t user_max_memory;
    uint32_t user_max_cpu_millis, user_max_pids;
    uint32_t user_max_sites;        /* sites a user may own (user_site_limits.sites); 0: no limit */
    /* network nat (see docs/internals/sandbox.md, "Networking") */
    char *nat_bridge;               /* bridge name, default "berth0" */
    char *nat_ipv4;                 /* subnet, default 10.88.0.0/16; "off": no IPv4 */
    char *nat_ipv6;                 /* subnet, default fd8b:e27a:1b5e::/64; "off": no IPv6 */
    char *nat_allow[BERTHD_MAX_NAT_ALLOW + 1];  /* "udp/53": host services sites may
                                                   reach; NULL-terminated, empty by default */
    size_t n_nat_allow;
    /* acme: certificates from an ACME CA (Let's Encrypt) for the sites' public names;
     * NULL directory: berth's local CA only */
    char *acme_directory;           /* the CA's directory URL (https://) */
    char *acme_email;               /* account contact; NULL: none */
    char *acme_ca_file;             /* PEM the ACME server's own certificate is checked
                                       against; NULL: the system's trusted CAs */
};

/* Parses argv into cfg (which must be zeroed). Returns 0, 1 if --help or --version
 * was handled (exit 0), or -EINVAL after printing a usage error (exit 2). */
int berthd_config_parse_args(struct berthd_config *cfg, int argc, char **argv);
/* Reads the YAML file into cfg, keeping values already set by flags (flags win).
 * A missing default file is fine; a missing explicit one, an unknown key or a bad
 * value is an error, described in err (size n). */
int berthd_config_load_file(struct berthd_config *cfg, bool *flags_set, char *err, size_t n);
/* Fills every unset value with its default (--dev defaults when cfg->dev). */
int berthd_config_finish(struct berthd_config *cfg);
void berthd_config_done(struct berthd_config *cfg);

/* Which values flags set, so the file does not override them. */
enum {
    SET_STATE_DIR, SET_RUN_DIR, SET_BASE_DOMAIN, SET_API_SOCKET, SET_HTTP, SET_HTTPS, SET_SSH,
    SET_LOG_LEVEL, SET_NAT_BRIDGE, SET_NAT_IPV4, SET_NAT_IPV6, SET_NAT_ALLOW, SET_MAX
};
extern bool berthd_flags_set[SET_MAX];

/* A bound listening socket. */
struct berthd_listener {
    const char *kind;          /* "http", "https", "ssh" */
    char requested[128];       /* as configured */
    char address[128];         /* as bound, with the real port */
    int fd;
};

/* Takes the listening sockets passed by a service manager (LISTEN_PID/LISTEN_FDS,
 * sd_listen_fds(3): fds 3..3+N-1) and unsets those variables so children do not
 * see them. Returns how many were taken into fds (at most max). */
size_t berthd_listen_fds_take(int *fds, size_t max);

/* Binds "ADDR:PORT" ("0.0.0.0:80", "[::]:80", "127.0.0.1:0") non-blocking, with
 * SO_REUSEADDR and, for IPv6, IPV6_V6ONLY so that [::]:80 and 0.0.0.0:80 can both be
 * bound. -EINVAL for a malformed address (message in err). */
int berthd_listener_bind(const char *kind, const char *spec, struct berthd_listener *ret, char *err, size_t n);
/* Like berthd_listener_bind, but first looks among inherited (-1 entries are
 * skipped) for a listening socket already bound to spec's address and adopts it
 * (the entry is set to -1). Adopted sockets outlive berthd: with socket
 * activation, connections made while berthd restarts wait in their backlog. */
int berthd_listener_open(const char *kind, const char *spec, int *inherited, size_t n_inherited,
                         struct berthd_listener *ret, char *err, size_t n);

/* ---- ACME orders (acme-orders.c) ----
 * Certificates for the sites' public names from the ACME CA of the config's acme:
 * section. Each order runs the ACME client in a child process dropped to an
 * unprivileged uid; a failed order is tried again after a doubling backoff (5 min
 * to a day; BERTH_TEST_ACME_RETRY_MS sets the first wait for tests). */
struct berthd_acme;
struct berthd_acme_callbacks {
    void *data;
    /* Publishes (key_authorization set) or withdraws (NULL) an http-01 answer in
     * the front. Negative errno: the order fails. */
    int (*challenge)(void *data, const char *token, const char *key_authorization, bool publish);
    /* An order ended: the chain and key on success, else error (one line). hosts
     * is what was asked, '\n'-joined; the site may have other names by now. */
    void (*done)(void *data, const char *site, const char *hosts, const char *cert_pem, const char *key_pem,
                 const char *error);
};
int berthd_acme_new(struct evloop *loop, const struct berthd_config *cfg, const char *account_key_pem,
                    const struct berthd_acme_callbacks *cb, struct berthd_acme **ret);
/* Wants a certificate for site's hosts ('\n'-joined, sorted): starts an order at
 * once when a slot is free and the site's backoff allows, else as soon as they do.
 * Asking again for the same names changes nothing. */
void berthd_acme_request(struct berthd_acme *a, const char *site, const char *hosts);
/* The site is gone: its order, if one runs, is killed and its answers withdrawn. */
void berthd_acme_forget(struct berthd_acme *a, const char *site);
/* The site needs no order now (its certificate is current, or it has no public
 * name): one running is ended, one waiting dropped. Unlike forget, safe to call
 * from the done callback. */
void berthd_acme_cancel(struct berthd_acme *a, const char *site);
void berthd_acme_free(struct berthd_acme *a);
/* `berthd --acme-order`: what an order's child execs, so that it holds nothing of
 * the daemon's memory. Reads the order on sock (fd 3), drops to an unprivileged
 * uid, runs it and reports on sock. Returns only on a failure before the order. */
int berthd_acme_order_main(int sock);

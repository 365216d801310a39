/* berthd: the daemon. Owns the state dir (one daemon per state dir, enforced by a
 * lock), the store, the listening sockets and the API, and runs until SIGTERM or
 * SIGINT. */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "api/api.h"
#include "acme/acme.h"
#include "certs/certs.h"
#include "common/fs.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "front/front.h"
#include "sites/sites.h"
#include "ssh/ssh.h"
#include "store/store.h"
#include "snapshot/snapshot.h"
#include "upload/upload.h"

struct berthd {
    struct berthd_config cfg;
    struct evloop *loop;
    struct store *store;
    struct sites *sites;
    struct api_server *api;
    struct api_server *panel;     /* <run>/panel.sock: the panel and the API for browsers */
    struct api_backups *backups;  /* makes the sites' scheduled backups */
    struct sites_runtime *runtime;
    struct sites_exec *exec;
    struct front_supervisor *front;
    struct sites_stats *stats;    /* the last hour of each site's requests and usage */
    struct ev_timer *sample_timer;
    struct ev_timer *stats_save_timer;
    uint64_t stats_save_ms;
    struct certs_ca *ca;          /* berth's local CA, in <state>/tls */
    char ca_path[4200];           /* its certificate, which clients trust */
    struct certs_leaf default_cert; /* shown for names with no certificate of their own */
    struct certs_leaf panel_cert; /* panel.<base>: issued at each start, not stored */
    struct store_certificate panel_acme; /* panel.<base> from the ACME CA, kept in
                                    <state>/acme/panel.pem; empty: none */
    struct ev_timer *cert_timer;
    uint64_t cert_renew_ms;
    struct berthd_acme *acme;     /* orders from the ACME CA of acme: in berth.yaml; NULL: none */
    struct berthd_listener listeners[3 * BERTHD_MAX_LISTENERS];
    struct api_listener api_listeners[3 * BERTHD_MAX_LISTENERS];
    size_t n_listeners;
    size_t n_front_listeners;     /* the first ones: HTTP and HTTPS; the ssh ones follow */
    struct ssh_supervisor *ssh;   /* the ssh front; NULL: no SFTP */
    struct api_ssh_broker *ssh_broker;
    char ssh_fingerprint[SSH_FINGERPRINT_MAX];
    int state_lock_fd, run_lock_fd, signal_fd;
    char *pid_path;
};

/* Takes an exclusive lock on <dir>/<name> and writes our pid into it. A second
 * daemon on the same dir finds the lock held and is told by whom. */
static int take_lock(const char *dir, const char *name, int *ret_fd, char **ret_path)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return log_errno(errno, "cannot open lock file %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        if (n > 0)
            pid[n] = 0;
        pid[strcspn(pid, "\n")] = 0;
        log_error("another berthd%s%s%s is already using %s; stop it first or choose another directory",
                  *pid ? " (pid " : "", pid, *pid ? ")" : "", dir);
        return -EBUSY;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        return log_errno(errno, "cannot write %s", path);
    *ret_fd = TAKE_FD(fd);
    if (ret_path)
        *ret_path = xstrdup(path);
    return 0;
}

static void on_signal(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_info("received %s, shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            evloop_quit(loop);
        } else if (si.ssi_signo == SIGHUP) {
            log_info("received SIGHUP; the configuration is read at start-up only: restart berthd to apply it");
        } else if (si.ssi_signo == SIGUSR1) {
            struct berthd *d = data;
            log_info("received SIGUSR1: reopening logs");
            if (d->front)
                front_supervisor_reopen_logs(d->front);
        }
    }
}

static int setup_signals(struct berthd *d)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->signal_fd < 0)
        return -errno;
    return evloop_add(d->loop, d->signal_fd, EPOLLIN, on_signal, d);
}

/* Binds (or adopts) the listeners of one kind; false when one of them failed. */
static bool bind_kind(struct berthd *d, const char *kind, char *const *specs, size_t n, int *inherited,
                      size_t n_inherited)
{
    char err[256];
    for (size_t i = 0; i < n; i++) {
        struct berthd_listener *l = &d->listeners[d->n_listeners];
        int r = berthd_listener_open(kind, specs[i], inherited, n_inherited, l, err, sizeof(err));
        if (r < 0) {
            log_error("%s", err);
            return false;
        }
        if (r > 0)
            log_info("adopted the inherited socket for %s", l->address);
        d->api_listeners[d->n_listeners] = (struct api_listener){ l->kind, l->requested, l->address };
        d->n_listeners++;
    }
    return true;
}

/* HTTP listeners first, then HTTPS: start_front tells the front which are TLS by
 * their kind. */
static int bind_listeners(struct berthd *d)
{
    int inherited[2 * BERTHD_MAX_LISTENERS];
    size_t n_inherited = berthd_listen_fds_take(inherited, ARRAY_SIZE(inherited));

    bool ok = bind_kind(d, "http", d->cfg.http, d->cfg.n_http, inherited, n_inherited) &&
              bind_kind(d, "https", d->cfg.https, d->cfg.n_https, inherited, n_inherited);
    for (size_t i = 0; i < n_inherited; i++) {
        if (inherited[i] >= 0) {
            log_warning("closing an inherited socket (fd %d) that matches no configured listener", inherited[i]);
            close(inherited[i]);
        }
    }
    if (!ok)
        return -EINVAL;
    d->n_front_listeners = d->n_listeners;
    /* SFTP: a port asked for must be had; the default one (2222) may be taken by
     * another program, and then berthd runs without SFTP rather than not at all. */
    for (size_t i = 0; i < d->cfg.n_ssh; i++) {
        char err[256];
        struct berthd_listener *l = &d->listeners[d->n_listeners];
        int r = berthd_listener_bind("ssh", d->cfg.ssh[i], l, err, sizeof(err));
        if (r < 0 && d->cfg.ssh_default) {
            log_warning("%s; SFTP is not served there (give --ssh ADDR:PORT, or --ssh off)", err);
            continue;
        }
        if (r < 0) {
            log_error("%s", err);
            return -EINVAL;
        }
        d->api_listeners[d->n_listeners] = (struct api_listener){ l->kind, l->requested, l->address };
        d->n_listeners++;
    }
    return 0;
}

/* The SFTP front: the host key (made on the first start, never replaced), the
 * broker that decides logins, and the unprivileged front that carries sessions. */
static int start_ssh(struct berthd *d)
{
    int fds[BERTH_SSH_MAX_LISTEN];
    size_t n = 0;
    for (size_t i = d->n_front_listeners; i < d->n_listeners && n < BERTH_SSH_MAX_LISTEN; i++)
        fds[n++] = d->listeners[i].fd;
    if (n == 0)
        return 0;
    char path[4200], why[600];
    snprintf(path, sizeof(path), "%s/ssh_host_ed25519_key", d->cfg.state_dir);
    char *pem = NULL;
    bool created;
    int r = ssh_hostkey_load_or_create(path, &pem, d->ssh_fingerprint, &created, why, sizeof(why));
    if (r < 0) {
        log_error("%s", why);
        return r;
    }
    if (created)
        log_notice("created the ssh host key %s", path);
    log_info("ssh host key fingerprint: %s (publish it, so that users can check it at their first login)",
             d->ssh_fingerprint);
    r = api_ssh_broker_new(d->loop, d->store, d->runtime, &d->ssh_broker);
    if (r >= 0) {
        struct ssh_front_config scfg = {
            .uid = d->cfg.front_uid, .gid = d->cfg.front_gid, .listen_fds = fds, .n_listen = n,
            .host_key_pem = pem,
        };
        /* Test hooks: a shorter login grace, fewer connections per address. */
        const char *grace = getenv("BERTH_TEST_SSH_LOGIN_GRACE_S"), *per_addr = getenv("BERTH_TEST_SSH_MAX_PER_ADDR");
        uint64_t v;
        if (grace && parse_uint(grace, 1, SSH_FRONT_LOGIN_GRACE_S, &v) == 0)
            scfg.login_grace_s = (unsigned)v;
        if (per_addr && parse_uint(per_addr, 1, SSH_FRONT_MAX_CONNS_PER_ADDR, &v) == 0)
            scfg.max_conns_per_addr = (unsigned)v;
        r = ssh_supervisor_new(d->loop, &scfg, api_ssh_broker_conn, d->ssh_broker, &d->ssh);
    }
    explicit_bzero(pem, strlen(pem));
    free(pem);
    if (r < 0)
        return log_errno(r, "cannot start the ssh front");
    return 0;
}

/* ---- HTTPS certificates ----
 * Every site's hosts get a certificate from berth's local CA, kept in the store and
 * reissued when its hosts change or it nears its end; see docs/internals/certs.md. */

#define CERT_DAYS 90
#define CERT_RENEW_DAYS 30                 /* reissued with less than this left */
#define CERT_RENEW_CHECK_MS (12 * 3600 * 1000ULL)

static bool cert_fresh(int64_t not_after)
{
    return not_after - now_s() > CERT_RENEW_DAYS * 86400;
}

/* The same for a stored certificate, whose CA may issue for less than three times
 * CERT_RENEW_DAYS (short-lived certificates): those have time to spare while more
 * than a third of their life is left; else they would be renewed at every check
 * from the day they came. */
static bool stored_cert_fresh(const struct store_certificate *c)
{
    int64_t margin = CERT_RENEW_DAYS * 86400, life;
    if (certs_pem_lifetime(c->cert_pem, &life) == 0 && life > 0 && life / 3 < margin)
        margin = life / 3;
    return c->not_after - now_s() > margin;
}

/* The host names a site answers to: NAME.<base>, then its domains. */
static size_t site_hosts(struct berthd *d, const struct store_site *site, char *default_host, size_t size,
                         const char **hosts, size_t max)
{
    size_t n = 0;
    sites_default_host(d->sites, site->name, default_host, size);
    hosts[n++] = default_host;
    for (size_t i = 0; i < site->n_domains && n < max; i++)
        hosts[n++] = site->domains[i];
    return n;
}

/* Whether the stored certificate of site covers exactly these hosts, with time to
 * spare. A store that cannot answer is taken as "no": the caller reissues. */
static bool site_cert_current(struct berthd *d, const char *site, const char *const *hosts, size_t n_hosts,
                              struct store_certificate *ret)
{
    _cleanup_free_ char *joined = NULL;
    struct store_certificate c = { 0 };
    if (certs_hosts_join(hosts, n_hosts, &joined) < 0 || store_certificate_get(d->store, site, &c) < 0)
        return false;
    bool current = streq(c.hosts, joined) && stored_cert_fresh(&c);
    if (current && ret)
        *ret = c;
    else
        store_certificate_done(&c);
    return current;
}

/* Whether a public CA could issue for host: not an address, and not under a name
 * reserved for local or test use (RFC 6761, RFC 8375), which ACME CAs refuse. */
static bool publicly_issuable(const char *host)
{
    static const char *const reserved[] = { "localhost", "local", "internal", "test", "invalid", "example",
                                            "home.arpa", "lan" };
    if (strchr(host, ':') || strspn(host, "0123456789.") == strlen(host))
        return false;
    size_t n = strlen(host);
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
        size_t m = strlen(reserved[i]);
        if (streq(host, reserved[i]) || (n > m && host[n - m - 1] == '.' && streq(host + n - m, reserved[i])))
            return false;
    }
    return true;
}

/* The names of hosts an ACME CA is asked for, '\n'-joined into *ret (NULL when
 * none); their number, or negative errno. */
static int public_hosts_join(const char *const *hosts, size_t n_hosts, char **ret)
{
    const char *public[CERTS_MAX_HOSTS];
    size_t n_public = 0;
    *ret = NULL;
    for (size_t i = 0; i < n_hosts && i < CERTS_MAX_HOSTS; i++)
        if (publicly_issuable(hosts[i]))
            public[n_public++] = hosts[i];
    if (n_public == 0)
        return 0;
    int r = certs_hosts_join(public, n_public, ret);
    return r < 0 ? r : (int)n_public;
}

/* With ACME: the site's certificate from the ACME CA into *ret when one is stored
 * and still valid (even for an older set of names: better than none while a new
 * order runs), and an order for its public names when that one is missing, stale
 * or for other names. false: serve a local one meanwhile. */
static bool site_acme_certificate(struct berthd *d, const char *site, const char *const *hosts, size_t n_hosts,
                                  struct store_certificate *ret)
{
    _cleanup_free_ char *joined = NULL;
    int n_public = public_hosts_join(hosts, n_hosts, &joined);
    if (n_public < 0)
        return false;
    if (n_public == 0) {
        /* No name left to order for: an order still running or waiting out its
         * backoff asks for names the site no longer has. */
        berthd_acme_cancel(d->acme, site);
        return false;
    }
    struct store_certificate c = { 0 };
    bool have = store_certificate_get(d->store, site, &c) == 0 && streq(c.issuer, "acme") && c.not_after > now_s();
    if (!have || !streq(c.hosts, joined) || !stored_cert_fresh(&c))
        berthd_acme_request(d->acme, site, joined);
    else
        berthd_acme_cancel(d->acme, site);   /* an order still running or waiting is for other names */
    if (have)
        *ret = c;
    else
        store_certificate_done(&c);
    return have;
}

/* The certificate for a site's hosts into *ret: with ACME, the CA's (see above);
 * else, or until the CA's comes, the stored local one when current, else a new
 * one, stored. On a failure to issue or store, *ret stays empty (the front then
 * shows the default certificate for these hosts) and the failure is logged: a
 * certificate never stops a site or berthd. */
static void site_certificate(struct berthd *d, const char *site, const char *const *hosts, size_t n_hosts,
                             struct store_certificate *ret)
{
    if (n_hosts > CERTS_MAX_HOSTS) {
        log_warning("site %s has %zu host names; its certificate covers the first %d, the others get the "
                    "default certificate", site, n_hosts, CERTS_MAX_HOSTS);
        n_hosts = CERTS_MAX_HOSTS;
    }
    if (d->acme && site_acme_certificate(d, site, hosts, n_hosts, ret))
        return;
    if (site_cert_current(d, site, hosts, n_hosts, ret))
        return;
    struct certs_leaf leaf;
    int r = certs_leaf_issue(d->ca, hosts, n_hosts, CERT_DAYS, &leaf);
    if (r < 0) {
        log_warning_errno(r, "cannot issue an HTTPS certificate for site %s; it gets the default certificate",
                          site);
        return;
    }
    _cleanup_free_ char *joined = NULL;
    struct store_certificate c = {
        .cert_pem = leaf.cert_pem, .key_pem = leaf.key_pem, .not_after = leaf.not_after, .issuer = "local",
    };
    r = certs_hosts_join(hosts, n_hosts, &joined);
    c.hosts = joined;
    if (r >= 0)
        r = store_certificate_put(d->store, site, &c);
    if (r < 0) {
        log_warning_errno(r, "cannot store the HTTPS certificate of site %s (%s); it gets the default certificate",
                          site, store_errmsg(d->store));
        certs_leaf_done(&leaf);
        return;
    }
    log_info("issued an HTTPS certificate for site %s (%zu host name%s, valid %d days)", site, n_hosts,
             n_hosts == 1 ? "" : "s", CERT_DAYS);
    /* Ownership of the strings moves from the leaf to *ret. */
    *ret = (struct store_certificate){
        .hosts = TAKE_PTR(joined), .cert_pem = TAKE_PTR(leaf.cert_pem), .key_pem = TAKE_PTR(leaf.key_pem),
        .not_after = leaf.not_after, .issuer = xstrdup("local"),
    };
}

/* Describes a site to the front: its hosts, its certificate, what it serves and where. */
static int push_site_to_front(struct berthd *d, const struct store_site *site)
{
    char default_host[300], dir[4096], public_dir[4200], logs_dir[4200], backend[4200];
    const char *hosts[1 + 1024];
    size_t n_hosts = site_hosts(d, site, default_host, sizeof(default_host), hosts, ARRAY_SIZE(hosts));
    struct store_certificate cert = { 0 };
    site_certificate(d, site->name, hosts, n_hosts, &cert);
    /* Plain HTTP goes to HTTPS once browsers trust the certificate for every name
     * of the site (an ACME CA's for all of them): with berth's local CA visitors
     * would be sent into a warning. */
    _cleanup_free_ char *all_hosts = NULL;
    bool redirect = cert.issuer && streq(cert.issuer, "acme") &&
                    certs_hosts_join(hosts, MIN(n_hosts, (size_t)CERTS_MAX_HOSTS), &all_hosts) >= 0 &&
                    streq(all_hosts, cert.hosts);
    sites_dir(d->sites, site->name, dir, sizeof(dir));
    snprintf(public_dir, sizeof(public_dir), "%s/public", dir);
    snprintf(logs_dir, sizeof(logs_dir), "%s/logs", dir);
    snprintf(backend, sizeof(backend), "%s/sites/%s.sock", d->cfg.run_dir, site->name);

    struct front_site fs = {
        .name = site->name,
        .hosts = hosts,
        .n_hosts = n_hosts,
        .type = streq(site->type, "app") ? FRONT_SITE_APP : streq(site->type, "php") ? FRONT_SITE_PHP : FRONT_SITE_STATIC,
        .state = streq(site->desired_state, "running") ? FRONT_SITE_SERVING : FRONT_SITE_STOPPED,
        .public_dir = public_dir,
        .logs_dir = logs_dir,
        .uid = site->uid,
        .backend = streq(site->type, "static") ? NULL : backend,
        /* PHP: post_max_size is the body limit, so the front's 413 and PHP agree. */
        .max_body = streq(site->type, "php") ? php_site_body_limit(site->php_settings) : 0,
        /* PHP: a script silent past its max_execution_time gets a 504 (one second
         * more, so PHP's own limit, which counts CPU time, is reported first). */
        .upstream_timeout_ms = streq(site->type, "php") ? (php_site_time_limit(site->php_settings) + 1) * 1000 : 0,
        .tls_cert = cert.cert_pem,
        .tls_key = cert.key_pem,
        .https_redirect = redirect,
    };
    int r = front_supervisor_site_upsert(d->front, &fs);
    store_certificate_done(&cert);
    if (r < 0)
        log_warning_errno(r, "cannot give site %s to the front", site->name);
    return r;
}

#define USAGE_SAMPLE_MS 5000

/* The front's report of a site's requests: into its history, and a sign of life
 * for the idle timer (a site answering requests is never stopped as idle). */
static void on_front_activity(void *data, const struct front_site_activity *a)
{
    struct berthd *d = data;
    if (streq(a->name, "panel"))   /* the panel's own route, not a site */
        return;
    struct sites_stats_requests delta = {
        .requests = a->requests, .status = { a->status[0], a->status[1], a->status[2], a->status[3] },
        .bytes = a->bytes,
    };
    if (d->stats)
        (void)sites_stats_add_requests(d->stats, a->name, now_s(), &delta);
    if (d->runtime) {
        sites_runtime_note_activity(d->runtime, a->name);
        sites_runtime_note_backend(d->runtime, a->name, a->upstream_ok, a->upstream_failed);
    }
}

/* Memory and CPU of every site that runs code, into its history. Every few seconds
 * so that each minute gets several samples (the minute keeps the highest memory). */
static void on_sample_usage(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct berthd *d = data;
    d->sample_timer = evloop_timer_add(loop, USAGE_SAMPLE_MS, on_sample_usage, d);
    struct store_site *list;
    size_t n;
    if (!d->runtime || !d->stats || store_site_list(d->store, NULL, &list, &n) < 0)
        return;
    int64_t now = now_s();
    for (size_t i = 0; i < n; i++) {
        struct sites_runtime_status st;
        if (sites_runtime_get_status(d->runtime, list[i].name, &st) < 0)
            continue;
        (void)sites_stats_add_usage(d->stats, list[i].name, now, st.has_usage ? &st.usage : NULL,
                                    st.cgroup_serial);
    }
    store_site_list_free(list, n);
}

/* The usage history's file: saved every minute (a crash loses at most that) and
 * at shutdown, loaded at start-up. */
#define STATS_SAVE_MS 60000

static void stats_path(const struct berthd *d, char *path, size_t size)
{
    snprintf(path, size, "%s/stats.bin", d->cfg.state_dir);
}

static void save_stats(struct berthd *d)
{
    char path[4096];
    stats_path(d, path, sizeof(path));
    int r = sites_stats_save(d->stats, path);
    if (r < 0)
        log_warning_errno(r, "cannot save the sites' usage history to %s", path);
}

static void on_save_stats(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct berthd *d = data;
    d->stats_save_timer = evloop_timer_add(loop, d->stats_save_ms, on_save_stats, d);
    /* A quiet machine does not rewrite (and fsync) the same bytes every minute. */
    if (sites_stats_dirty(d->stats))
        save_stats(d);
}

/* Keeps a saved site's history only while the store still has the site (it may
 * have been removed by a restored store, or by a berthd that crashed before saving). */
static bool stats_site_exists(void *data, const char *name)
{
    struct berthd *d = data;
    struct store_site site;
    int r = store_site_get(d->store, name, &site);
    if (r < 0)
        return r != -ENOENT;   /* a failing store is no proof the site is gone */
    store_site_done(&site);
    return true;
}

/* The history a previous berthd saved; a file that fails its checks is reported
 * and replaced by the next save (the history then starts empty, as before). */
static void load_stats(struct berthd *d)
{
    char path[4096];
    stats_path(d, path, sizeof(path));
    int r = sites_stats_load(d->stats, path, now_s(), stats_site_exists, d);
    if (r == -EBADMSG)
        log_warning("the usage history in %s is damaged or not berth's; starting an empty history", path);
    else if (r < 0)
        log_warning_errno(r, "cannot read the usage history %s; starting an empty history", path);
    else if (r > 0)
        log_info("loaded the usage history of %d site%s from %s", r, r == 1 ? "" : "s", path);
}

/* The one place every committed site change flows to the parts that act on it. */
static void on_site_change(void *data, enum sites_change change, const struct store_site *site)
{
    struct berthd *d = data;
    if (d->stats && change == SITES_CHANGE_REMOVE)
        sites_stats_remove(d->stats, site->name);
    if (d->runtime)
        sites_runtime_site_changed(d->runtime, change, site);
    if (d->acme && change == SITES_CHANGE_REMOVE)
        berthd_acme_forget(d->acme, site->name);
    if (d->ssh_broker && change == SITES_CHANGE_REMOVE)
        api_ssh_broker_end_sessions(d->ssh_broker, site->name, NULL);
    if (!d->front)
        return;
    if (change == SITES_CHANGE_REMOVE)
        front_supervisor_site_remove(d->front, site->name);
    else
        push_site_to_front(d, site);
}

static int push_panel_to_front(struct berthd *d);

/* ---- the panel's certificate from the ACME CA ----
 * The panel is not a site, so its certificate is not in the store: with acme:
 * configured and a public panel.<base>, it is ordered like a site's (under the
 * reserved name "panel") and kept in <state>/acme/panel.pem, the chain then the
 * key, 0600, written whole or not at all. The local CA's serves until it comes. */

static void panel_acme_path(const struct berthd *d, char *path, size_t size)
{
    snprintf(path, size, "%s/acme/panel.pem", d->cfg.state_dir);
}

/* Reads the kept certificate, if any, into d->panel_acme. One that is damaged, not
 * for host or past its end is dropped with a line in the log (a new one is ordered). */
static void panel_acme_load(struct berthd *d, const char *host)
{
    char path[4200], why[300] = "";
    panel_acme_path(d, path, sizeof(path));
    _cleanup_free_ char *pem = NULL;
    size_t len;
    int r = read_file(path, 256 * 1024, &pem, &len);
    if (r == -ENOENT)
        return;
    if (r < 0) {
        log_warning_errno(r, "ACME: cannot read the panel's certificate %s; ordering a new one", path);
        return;
    }
    const char *key = strstr(pem, "-----BEGIN PRIVATE KEY-----");
    _cleanup_free_ char *chain = key ? strndup(pem, (size_t)(key - pem)) : NULL;
    int64_t not_after = 0;
    if (!chain)
        snprintf(why, sizeof(why), "no private key after the chain");
    else if (certs_pem_check(chain, key, host, why, sizeof(why)) < 0 && !why[0])
        snprintf(why, sizeof(why), "not a certificate and key berth can read");
    else if (!why[0] && certs_pem_not_after(chain, &not_after) < 0)
        snprintf(why, sizeof(why), "no certificate");
    else if (!why[0] && not_after <= now_s())
        snprintf(why, sizeof(why), "expired");
    if (why[0]) {
        log_warning("ACME: the panel's certificate in %s cannot serve %s (%s); ordering a new one", path, host, why);
        return;
    }
    store_certificate_done(&d->panel_acme);
    d->panel_acme = (struct store_certificate){
        .hosts = xstrdup(host), .cert_pem = TAKE_PTR(chain), .key_pem = xstrdup(key), .not_after = not_after,
        .issuer = xstrdup("acme"),
    };
}

/* Whether the panel has a certificate from the ACME CA to show now; orders one
 * when it has none for host, or one near its end. */
static bool panel_acme_certificate(struct berthd *d, const char *host)
{
    if (!d->acme || !publicly_issuable(host))
        return false;
    bool have = d->panel_acme.cert_pem && streq(d->panel_acme.hosts, host) && d->panel_acme.not_after > now_s();
    if (!have || !stored_cert_fresh(&d->panel_acme))
        berthd_acme_request(d->acme, "panel", host);
    return have;
}

/* An order for the panel ended well (checked by the caller): kept, then shown. */
static void panel_acme_done(struct berthd *d, const char *hosts, const char *cert_pem, const char *key_pem,
                            int64_t not_after)
{
    char host[300], path[4200];
    snprintf(host, sizeof(host), "panel.%s", d->cfg.base_domain);
    if (!streq(hosts, host)) {
        log_info("ACME: the panel is no longer at %s; its certificate is not kept", hosts);
        return;
    }
    panel_acme_path(d, path, sizeof(path));
    _cleanup_free_ char *pem = NULL;
    if (asprintf(&pem, "%s%s%s", cert_pem, cert_pem[strlen(cert_pem) - 1] == '\n' ? "" : "\n", key_pem) < 0)
        return;
    int r = write_file_atomic(path, pem, strlen(pem), 0600);
    if (r < 0)
        log_warning_errno(r, "ACME: cannot keep the panel's certificate in %s; it serves until berthd stops",
                          path);
    store_certificate_done(&d->panel_acme);
    d->panel_acme = (struct store_certificate){
        .hosts = xstrdup(host), .cert_pem = xstrdup(cert_pem), .key_pem = xstrdup(key_pem),
        .not_after = not_after, .issuer = xstrdup("acme"),
    };
    log_info("ACME: the panel (%s) has a certificate from its CA, valid %lld days", host,
             (long long)((not_after - now_s()) / 86400));
    if (d->front)
        push_panel_to_front(d);
}

/* The panel is an app route like a site's: panel.<base> proxies to panel.sock, where
 * berthd's API serves the panel's files and the API with cookie sign-in. The name is
 * reserved, so no site can take it. */
static int push_panel_to_front(struct berthd *d)
{
    char host[300], backend[4200];
    snprintf(host, sizeof(host), "panel.%s", d->cfg.base_domain);
    snprintf(backend, sizeof(backend), "%s/panel.sock", d->cfg.run_dir);
    const char *hosts[] = { host };
    /* Browsers trust it once the ACME CA's certificate is here: then plain HTTP is
     * sent to HTTPS, where the panel's sign-in cookie is safe. */
    bool acme = panel_acme_certificate(d, host);
    /* Not a site, so not in the store: issued at each start and by the renewal timer. */
    if (!d->panel_cert.cert_pem || !cert_fresh(d->panel_cert.not_after)) {
        certs_leaf_done(&d->panel_cert);
        int r = certs_leaf_issue(d->ca, hosts, 1, CERT_DAYS, &d->panel_cert);
        if (r < 0)
            log_warning_errno(r, "cannot issue an HTTPS certificate for %s; it gets the default certificate", host);
    }
    struct front_site fs = {
        .name = "panel", .hosts = hosts, .n_hosts = 1, .type = FRONT_SITE_APP, .state = FRONT_SITE_SERVING,
        .public_dir = d->cfg.run_dir,   /* required by the route format; an app route serves no files */
        .backend = backend,
        .max_body = 1ULL << 30,         /* content uploads go through the panel */
        .tls_cert = acme ? d->panel_acme.cert_pem : d->panel_cert.cert_pem,
        .tls_key = acme ? d->panel_acme.key_pem : d->panel_cert.key_pem,
        .https_redirect = acme,
    };
    int r = front_supervisor_site_upsert(d->front, &fs);
    if (r < 0)
        log_warning_errno(r, "cannot route %s to the panel", host);
    return r;
}

_Static_assert(2 * BERTHD_MAX_LISTENERS <= 64, "front_config.tls_listeners has a bit per listener");

/* Re-gives the front every site whose certificate has come near its end (or no
 * longer covers its hosts), which reissues it; the panel's too. */
/* The certificate for names without one of their own (the base domain): issued
 * anew and handed to the front live. On failure the old one stays and the next
 * check tries again. */
static void renew_default_cert(struct berthd *d)
{
    const char *hosts[] = { d->cfg.base_domain };
    struct certs_leaf leaf = { 0 };
    int r = certs_leaf_issue(d->ca, hosts, 1, CERT_DAYS, &leaf);
    if (r >= 0 && d->front)
        r = front_supervisor_default_cert_set(d->front, leaf.cert_pem, leaf.key_pem);
    if (r < 0) {
        log_warning_errno(r, "cannot renew the default HTTPS certificate for %s; the old one serves until "
                          "the next try", d->cfg.base_domain);
        certs_leaf_done(&leaf);
        return;
    }
    certs_leaf_done(&d->default_cert);
    d->default_cert = leaf;
    log_info("renewed the default HTTPS certificate for %s (valid %d days)", d->cfg.base_domain, CERT_DAYS);
}

static void on_cert_renew(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct berthd *d = data;
    d->cert_timer = evloop_timer_add(loop, d->cert_renew_ms, on_cert_renew, d);
    struct store_site *list;
    size_t n;
    int r = store_site_list(d->store, NULL, &list, &n);
    if (r < 0) {
        log_warning_errno(r, "cannot list sites to renew their certificates: %s", store_errmsg(d->store));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char default_host[300];
        const char *hosts[1 + 1024];
        size_t n_hosts = site_hosts(d, &list[i], default_host, sizeof(default_host), hosts, ARRAY_SIZE(hosts));
        if (!site_cert_current(d, list[i].name, hosts, MIN(n_hosts, (size_t)CERTS_MAX_HOSTS), NULL))
            push_site_to_front(d, &list[i]);
    }
    store_site_list_free(list, n);
    if (!cert_fresh(d->panel_cert.not_after) || (d->panel_acme.cert_pem && !stored_cert_fresh(&d->panel_acme)))
        push_panel_to_front(d);
    if (!cert_fresh(d->default_cert.not_after))
        renew_default_cert(d);
}

/* Starts the front's workers on the bound listeners and gives them every site. */
static int start_front(struct berthd *d)
{
    char logs[4096], global_log[4200];
    struct front_config fcfg;
    int fds[2 * BERTHD_MAX_LISTENERS];

    /* The global log (unknown hosts) is written by the workers as the front user. */
    snprintf(logs, sizeof(logs), "%s/logs", d->cfg.state_dir);
    snprintf(global_log, sizeof(global_log), "%s/front-access.log", logs);
    int r = ensure_dir(AT_FDCWD, logs, d->cfg.front_uid, d->cfg.front_gid, 0750);
    if (r < 0)
        return log_errno(r, "cannot create %s", logs);

    front_config_init(&fcfg);
    fcfg.workers = d->cfg.workers;
    fcfg.cpu_affinity = !d->cfg.no_cpu_affinity;
    fcfg.http2 = !d->cfg.no_http2;
    if (d->cfg.site_max_requests_set)
        fcfg.site_max_requests = d->cfg.site_max_requests;
    fcfg.uid = d->cfg.front_uid;
    fcfg.gid = d->cfg.front_gid;
    fcfg.base_domain = d->cfg.base_domain;
    fcfg.global_log = global_log;
    for (size_t i = 0; i < d->n_front_listeners; i++) {
        fds[i] = d->listeners[i].fd;
        if (streq(d->listeners[i].kind, "https"))
            fcfg.tls_listeners |= UINT64_C(1) << i;
    }
    fcfg.tls_default_cert = d->default_cert.cert_pem;
    fcfg.tls_default_key = d->default_cert.key_pem;
    r = front_supervisor_new(d->loop, &fcfg, fds, d->n_front_listeners, &d->front);
    if (r < 0)
        return log_errno(r, "cannot start the front");

    struct store_site *list;
    size_t n;
    r = store_site_list(d->store, NULL, &list, &n);
    if (r < 0)
        return log_errno(r, "cannot list sites: %s", store_errmsg(d->store));
    for (size_t i = 0; i < n; i++)
        push_site_to_front(d, &list[i]);
    store_site_list_free(list, n);
    push_panel_to_front(d);
    front_supervisor_set_activity_handler(d->front, on_front_activity, d);
    sites_set_observer(d->sites, on_site_change, d);
    /* Only now: workers accept with the whole table in hand. */
    r = front_supervisor_start(d->front);
    if (r < 0)
        return log_errno(r, "cannot start the front's workers");
    /* Test hook: BERTH_TEST_CERT_RENEW_MS checks for certificates to renew that often. */
    const char *renew_ms = getenv("BERTH_TEST_CERT_RENEW_MS");
    uint64_t ms;
    d->cert_renew_ms = renew_ms && parse_uint(renew_ms, 1, CERT_RENEW_CHECK_MS, &ms) == 0 ? ms : CERT_RENEW_CHECK_MS;
    d->cert_timer = evloop_timer_add(d->loop, d->cert_renew_ms, on_cert_renew, d);
    return 0;
}

/* berth's local CA, loaded from <state>/tls or created there on the first start,
 * and the default certificate (the base domain), issued anew at each start. A CA
 * that is there but unusable stops berthd: replacing it would break every client
 * that trusts it. */
static int setup_tls(struct berthd *d)
{
    char dir[4096], err[1024], hostname[256] = "";
    bool created;

    snprintf(dir, sizeof(dir), "%s/tls", d->cfg.state_dir);
    int r = ensure_dir(AT_FDCWD, dir, geteuid(), getegid(), 0700);
    if (r < 0)
        return log_errno(r, "cannot create %s", dir);
    (void)gethostname(hostname, sizeof(hostname) - 1);
    r = certs_ca_load_or_create(dir, hostname, &d->ca, &created, err, sizeof(err));
    if (r < 0) {
        log_error("%s; berthd does not start without its CA, and never replaces one", err);
        return r;
    }
    snprintf(d->ca_path, sizeof(d->ca_path), "%s/" CERTS_CA_CERT_FILE, dir);
    if (created)
        log_notice("created berth's local CA in %s", dir);
    log_info("HTTPS certificates are issued by berth's local CA; clients trust it with %s", d->ca_path);

    const char *hosts[] = { d->cfg.base_domain };
    /* Test hook: BERTH_TEST_DEFAULT_CERT_DAYS makes the first one short-lived. */
    const char *test_days = getenv("BERTH_TEST_DEFAULT_CERT_DAYS");
    int days = test_days ? atoi(test_days) : CERT_DAYS;
    r = certs_leaf_issue(d->ca, hosts, 1, days > 0 ? days : CERT_DAYS, &d->default_cert);
    if (r < 0)
        return log_errno(r, "cannot issue the default HTTPS certificate for %s", d->cfg.base_domain);
    return 0;
}

/* ---- ACME ---- */

static int on_acme_challenge(void *data, const char *token, const char *key_authorization, bool publish)
{
    struct berthd *d = data;
    if (!d->front)
        return -ENOTCONN;
    if (!publish) {
        (void)front_supervisor_challenge_remove(d->front, token);
        return 0;
    }
    return front_supervisor_challenge_set(d->front, token, key_authorization);
}

/* An order ended. A certificate is stored only while the site still wants these
 * names (a change meanwhile has ordered another), then the site goes to the front
 * with it. Failures were logged by the orders. */
static void on_acme_done(void *data, const char *site, const char *hosts, const char *cert_pem,
                         const char *key_pem, const char *error)
{
    struct berthd *d = data;
    if (error)
        return;
    int64_t not_after;
    if (certs_pem_not_after(cert_pem, &not_after) < 0 || not_after <= now_s()) {
        log_warning("ACME: the certificate for site %s is not one berth can use; kept the one it had", site);
        return;
    }
    /* The child that ran the order parsed the CA's answers: what it hands over is
     * checked before it is kept (for months) and served, with its key, to the
     * site's visitors; and it must fit in a route (64 KiB of PEM each). */
    char why[300] = "too large";
    if (strlen(cert_pem) > 64 * 1024 || strlen(key_pem) > 64 * 1024 ||
        certs_pem_check(cert_pem, key_pem, hosts, why, sizeof(why)) < 0) {
        log_warning("ACME: the certificate for site %s cannot be used (%s); kept the one it had", site, why);
        return;
    }
    if (streq(site, "panel")) {   /* a reserved name: never a site's */
        panel_acme_done(d, hosts, cert_pem, key_pem, not_after);
        return;
    }
    struct store_site s;
    if (store_site_get(d->store, site, &s) < 0)
        return;   /* removed meanwhile */
    /* Names removed meanwhile: a certificate for them is not the site's to keep. */
    char default_host[300];
    const char *all[1 + 1024];
    size_t n_all = site_hosts(d, &s, default_host, sizeof(default_host), all, ARRAY_SIZE(all));
    _cleanup_free_ char *wanted = NULL;
    if (public_hosts_join(all, n_all, &wanted) <= 0 || !streq(wanted, hosts)) {
        log_info("ACME: site %s no longer has the names of its new certificate; not kept", site);
        store_site_done(&s);
        return;
    }
    struct store_certificate c = {
        .hosts = (char *)hosts, .cert_pem = (char *)cert_pem, .key_pem = (char *)key_pem, .not_after = not_after,
        .issuer = "acme",
    };
    int r = store_certificate_put(d->store, site, &c);
    if (r < 0) {
        log_warning_errno(r, "ACME: cannot store the certificate of site %s (%s)", site, store_errmsg(d->store));
    } else {
        size_t names = 1;
        for (const char *p = hosts; *p; p++)
            names += *p == '\n';
        log_info("ACME: site %s has a certificate from its CA for %zu name%s, valid %lld days", site, names,
                 names == 1 ? "" : "s", (long long)((not_after - now_s()) / 86400));
        if (d->front)
            push_site_to_front(d, &s);
    }
    store_site_done(&s);
}

/* The ACME account key in <state>/acme/account.key, made on the first start with
 * acme: configured, then the orders' runner. */
static int setup_acme(struct berthd *d)
{
    if (!d->cfg.acme_directory)
        return 0;
    char dir[4096], path[4200];
    snprintf(dir, sizeof(dir), "%s/acme", d->cfg.state_dir);
    snprintf(path, sizeof(path), "%s/account.key", dir);
    int r = ensure_dir(AT_FDCWD, dir, geteuid(), getegid(), 0700);
    if (r < 0)
        return log_errno(r, "cannot create %s", dir);
    _cleanup_free_ char *key = NULL;
    size_t len;
    r = read_file(path, 64 * 1024, &key, &len);
    if (r == -ENOENT) {
        r = acme_account_key_generate(&key);
        if (r >= 0)
            r = write_file_atomic(path, key, strlen(key), 0600);
        if (r < 0)
            return log_errno(r, "cannot make the ACME account key %s", path);
        log_notice("made an ACME account key in %s", path);
    } else if (r < 0) {
        return log_errno(r, "cannot read the ACME account key %s", path);
    }
    struct berthd_acme_callbacks cb = { .data = d, .challenge = on_acme_challenge, .done = on_acme_done };
    r = berthd_acme_new(d->loop, &d->cfg, key, &cb, &d->acme);
    if (r < 0)
        return log_errno(r, "cannot set up ACME");
    char panel_host[300];
    snprintf(panel_host, sizeof(panel_host), "panel.%s", d->cfg.base_domain);
    if (publicly_issuable(panel_host))
        panel_acme_load(d, panel_host);
    log_info("ACME: sites' public names get certificates from %s", d->cfg.acme_directory);
    return 0;
}

/* Creates one demo site with one file in its public/. */
static int dev_demo_site(struct berthd *d, const char *name, const char *type, const char *file,
                         const char *text)
{
    struct store_site demo = {
        .name = (char *)name, .type = (char *)type, .network = "none", .desired_state = "running",
        .memory_max = 256ULL << 20, .cpu_millis = 1000, .pids_max = 128, .idle_seconds = 300,
        .backup_hour = STORE_BACKUP_HOUR_DEFAULT, .backup_keep = STORE_BACKUP_KEEP_DEFAULT,
    };
    struct error err = { 0 };
    int r = sites_create(d->sites, &demo, "berthd", &err);
    if (r < 0)
        return log_errno(r, "cannot create the demo site %s: %s", name, err.message);
    char path[4200], dir[4096];
    sites_dir(d->sites, name, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/public/%s", dir, file);
    r = write_file_atomic(path, text, strlen(text), 0640);
    /* Owner the site (PHP reads it as the site's user), group the front's, which
     * reads public/ through it. */
    if (r >= 0 && chown(path, demo.uid, d->cfg.front_gid) < 0)
        r = -errno;
    if (r < 0)
        log_warning_errno(r, "cannot write the demo page %s", path);
    return 0;
}

/* --dev: a newcomer's first run gets an admin account (password printed once) and
 * two demo sites, a static one and a PHP one, so that `make dev` shows something at
 * once. */
static int dev_bootstrap(struct berthd *d)
{
    size_t n;
    int r = store_user_count(d->store, &n);
    if (r < 0)
        return log_errno(r, "cannot count users: %s", store_errmsg(d->store));
    if (n == 0) {
        static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        char password[17], hash[crypto_pwhash_STRBYTES];
        for (size_t i = 0; i < sizeof(password) - 1; i++)
            password[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
        password[sizeof(password) - 1] = 0;
        if (crypto_pwhash_str_alg(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                  crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
            return log_errno(ENOMEM, "cannot hash the admin password");
        r = store_user_insert(d->store, "admin", hash, true, NULL);
        if (r < 0)
            return log_errno(r, "cannot create the admin user: %s", store_errmsg(d->store));
        store_event_append(d->store, "berthd", "user.create", "admin", "{\"admin\":true}");
        fprintf(stderr, "\n  Created the admin account.  user: admin   password: %s\n"
                        "  (shown once; change it with: berth user passwd admin)\n\n", password);
    }
    r = store_site_count(d->store, &n);
    if (r < 0 || n > 0)
        return r;
    static const char page[] =
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>berth demo</title></head>\n"
        "<body><h1>It works.</h1><p>This is the <b>demo</b> site, served by berth.</p>\n"
        "<p>A PHP site is next door: <a href=\"http://hello-php.%s%s/\">hello-php</a>.</p></body></html>\n";
    static const char script[] =
        "<?php\n$me = posix_getpwuid(posix_geteuid());\n?>\n"
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>berth PHP demo</title></head>\n"
        "<body><h1>Hello from PHP <?= htmlspecialchars(PHP_VERSION) ?></h1>\n"
        "<p>This page ran in the <b>hello-php</b> site's own php-fpm, inside its sandbox, as user\n"
        "<?= htmlspecialchars($me['name']) ?> (uid <?= posix_geteuid() ?>), at <?= date('H:i:s') ?>.</p>\n"
        "<p>Try <code>berth site set hello-php --php date.timezone=Europe/Paris</code>.</p></body></html>\n";
    const char *port = d->n_listeners ? strrchr(d->listeners[0].address, ':') : "";
    char text[sizeof(page) + 300];
    snprintf(text, sizeof(text), page, d->cfg.base_domain, port ? port : "");
    if ((r = dev_demo_site(d, "demo", "static", "index.html", text)) < 0 ||
        (r = dev_demo_site(d, "hello-php", "php", "index.php", script)) < 0)
        return r;
    log_info("created the demo sites: http://demo.%s%s/ and http://hello-php.%s%s/", d->cfg.base_domain,
             port ? port : "", d->cfg.base_domain, port ? port : "");
    return 0;
}

/* A restore stopped between its swaps (berthd stopped, its process killed) left a
 * journal: the swaps are finished and the settings it carries stored. */
static void finish_interrupted_restore(struct berthd *d, const char *name, int site_fd)
{
    char *meta = NULL;
    size_t meta_len = 0;
    struct error err = { 0 };
    int r = upload_restore_recover(site_fd, &meta, &meta_len, &err);
    if (r == 0)
        return;
    if (r < 0) {
        log_error("site %s: %s; its journal %s is kept for an operator", name, err.message, UPLOAD_RESTORE_JOURNAL);
        return;
    }
    struct store_site site = { 0 };
    if (meta && ((r = store_site_get(d->store, name, &site)) < 0 ||
                 (r = snapshot_settings_apply(&site, meta, meta_len, &err)) < 0 ||
                 (r = sites_update(d->sites, &site, "berthd", NULL, &err)) < 0))
        log_error("site %s: finished an interrupted restore of its files, but not of its settings: %s", name,
                  err.message[0] ? err.message : strerror(-r));
    else
        log_notice("site %s: finished an interrupted restore%s", name, meta ? " (files and settings)" : "");
    if ((r = upload_restore_journal_remove(site_fd)) < 0)
        log_warning_errno(r, "site %s: cannot remove the restore's journal", name);
    store_site_done(&site);
    free(meta);
}

/* An upload interrupted by a crash leaves its staging tree beside public/. */
static void remove_upload_debris(struct berthd *d)
{
    struct store_site *list;
    size_t n;
    if (store_site_list(d->store, NULL, &list, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char dir[4096];
        sites_dir(d->sites, list[i].name, dir, sizeof(dir));
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            finish_interrupted_restore(d, list[i].name, fd);
        int r = fd < 0 ? 0 : upload_site_cleanup(fd);
        if (r > 0)
            log_notice("removed %d unfinished upload%s of site %s", r, r == 1 ? "" : "s", list[i].name);
    }
    store_site_list_free(list, n);
}

static void berthd_done(struct berthd *d)
{
    api_backups_free(d->backups);   /* cancels a backup being made: before the store */
    api_server_free(d->panel);
    api_server_free(d->api);
    if (d->loop) {
        evloop_timer_cancel(d->loop, d->sample_timer);
        evloop_timer_cancel(d->loop, d->stats_save_timer);
        evloop_timer_cancel(d->loop, d->cert_timer);
    }
    ssh_supervisor_free(d->ssh);
    api_ssh_broker_free(d->ssh_broker);   /* its sessions' sandboxes: before the runtime */
    sites_exec_free(d->exec);
    sites_runtime_free(d->runtime);
    berthd_acme_free(d->acme);   /* withdraws its challenges from the front: before it */
    front_supervisor_free(d->front);
    sites_free(d->sites);
    sites_stats_free(d->stats);
    store_close(d->store);
    certs_leaf_done(&d->panel_cert);
    store_certificate_done(&d->panel_acme);
    certs_leaf_done(&d->default_cert);
    certs_ca_free(d->ca);
    for (size_t i = 0; i < d->n_listeners; i++)
        safe_close(d->listeners[i].fd);
    if (d->signal_fd >= 0) {
        evloop_del(d->loop, d->signal_fd);
        close(d->signal_fd);
    }
    evloop_free(d->loop);
    if (d->pid_path)
        unlink(d->pid_path);
    free(d->pid_path);
    safe_close(d->run_lock_fd);
    safe_close(d->state_lock_fd);
    berthd_config_done(&d->cfg);
}

/* A uid or gid a host account holds (local, LDAP, sssd: asked by number, which works
 * where listing does not) is never handed to a new site: the site would share that
 * account's files and processes. */
static bool uid_free_on_host(uint32_t uid, void *data)
{
    (void)data;
    return !getpwuid((uid_t)uid) && !getgrgid((gid_t)uid);
}

/* A site whose uid a host account took since: said loudly at every start, not a
 * refusal, which would take every site down for one account. */
static void warn_sites_sharing_host_ids(struct berthd *d)
{
    struct store_site *list = NULL;
    size_t n = 0;
    if (store_site_list(d->store, NULL, &list, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct passwd *pw = getpwuid((uid_t)list[i].uid);
        struct group *gr = pw ? NULL : getgrgid((gid_t)list[i].uid);
        if (pw || gr)
            log_warning("site %s has uid %u, which host %s %s also has: the site shares that account's files "
                        "and processes; give the account another id", list[i].name, list[i].uid,
                        pw ? "user" : "group", pw ? pw->pw_name : gr->gr_name);
    }
    store_site_list_free(list, n);
}

static int run(struct berthd *d)
{
    struct berthd_config *cfg = &d->cfg;
    char path[4096], err[512] = "";
    int r;

    r = berthd_config_load_file(cfg, berthd_flags_set, err, sizeof(err));
    if (r < 0) {
        log_error("%s", err);
        return r;
    }
    berthd_config_finish(cfg);
    log_set_max_level(cfg->log_level);
    /* A site given the front's uid or gid would read every site's public/ and write
     * every site's logs: the two must never meet. */
    bool uid_inside = cfg->front_uid >= cfg->uid_first && cfg->front_uid <= cfg->uid_last;
    bool gid_inside = cfg->front_gid >= cfg->uid_first && cfg->front_gid <= cfg->uid_last;
    if (uid_inside || gid_inside) {
        /* Name only what is inside: the other may be a default the operator never set. */
        char what[96];
        if (uid_inside && gid_inside)
            snprintf(what, sizeof(what), "front_uid %u and front_gid %u lie", cfg->front_uid, cfg->front_gid);
        else if (uid_inside)
            snprintf(what, sizeof(what), "front_uid %u lies", cfg->front_uid);
        else
            snprintf(what, sizeof(what), "front_gid %u lies", cfg->front_gid);
        log_error("%s inside site_uid_range %u-%u: a site could be given the front's identity; choose %s outside "
                  "the range", what, cfg->uid_first, cfg->uid_last, uid_inside && gid_inside ? "them" : "it");
        return -EINVAL;
    }
    if (sodium_init() < 0)
        return log_errno(EIO, "cannot initialise libsodium");

    if ((r = mkdir_p(cfg->state_dir, 0755)) < 0)
        return log_errno(r, "cannot create state dir %s", cfg->state_dir);
    if ((r = mkdir_p(cfg->run_dir, 0755)) < 0)
        return log_errno(r, "cannot create run dir %s", cfg->run_dir);
    if ((r = take_lock(cfg->state_dir, "berthd.lock", &d->state_lock_fd, NULL)) < 0)
        return r;
    if ((r = take_lock(cfg->run_dir, "berthd.pid", &d->run_lock_fd, &d->pid_path)) < 0)
        return r;

    snprintf(path, sizeof(path), "%s/berth.db", cfg->state_dir);
    int found = 0;
    r = store_open(path, &d->store, &found);
    if (r == -EPROTONOSUPPORT)
        return log_errno(r, "the store %s has schema version %d, newer than this berthd knows (%d); "
                         "run a newer berthd — the file was left untouched", path, found, STORE_SCHEMA_VERSION);
    if (r < 0)
        return log_errno(r, "cannot open the store %s", path);
    store_set_uid_range(d->store, cfg->uid_first, cfg->uid_last);
    store_set_uid_usable(d->store, uid_free_on_host, NULL);
    warn_sites_sharing_host_ids(d);

    struct sites_config scfg = {
        .state_dir = cfg->state_dir, .base_domain = cfg->base_domain,
        .front_uid = cfg->front_uid, .front_gid = cfg->front_gid,
    };
    if ((r = sites_new(d->store, &scfg, &d->sites)) < 0)
        return log_errno(r, "cannot set up sites");
    struct error e = { 0 };
    r = sites_reconcile(d->sites, &e);
    if (r < 0)
        return log_errno(r, "%s", e.message);
    if (r > 0)
        log_notice("repaired %d site director%s left by an interrupted change", r, r == 1 ? "y" : "ies");
    remove_upload_debris(d);
    if ((r = setup_tls(d)) < 0)
        return r;

    if ((r = evloop_new(&d->loop)) < 0)
        return log_errno(r, "cannot create the event loop");
    if ((r = setup_acme(d)) < 0)
        return r;
    if ((r = sites_stats_new(now_s(), &d->stats)) < 0)
        return log_errno(r, "cannot set up site statistics");
    load_stats(d);
    /* Test hook: BERTH_TEST_STATS_SAVE_MS shortens the save interval so that tests
     * can kill berthd after a periodic save without waiting a minute. */
    const char *save_ms = getenv("BERTH_TEST_STATS_SAVE_MS");
    uint64_t ms;
    d->stats_save_ms = save_ms && parse_uint(save_ms, 1, STATS_SAVE_MS, &ms) == 0 ? ms : STATS_SAVE_MS;
    d->stats_save_timer = evloop_timer_add(d->loop, d->stats_save_ms, on_save_stats, d);
    if ((r = setup_signals(d)) < 0)
        return log_errno(r, "cannot set up signal handling");
    if ((r = bind_listeners(d)) < 0)
        return r;
    if ((r = start_front(d)) < 0)
        return r;
    if (cfg->dev && (r = dev_bootstrap(d)) < 0)
        return r;

    /* Site sandboxes: leftovers of a crashed berthd go first, then always-on sites
     * start. The observer is set again here for when the front did not set it. */
    struct sandbox_nat_config ncfg = {
        .bridge = cfg->nat_bridge,
        .ipv4 = streq(cfg->nat_ipv4, "off") ? NULL : cfg->nat_ipv4,
        .ipv6 = streq(cfg->nat_ipv6, "off") ? NULL : cfg->nat_ipv6,
        .allow = (const char *const *)cfg->nat_allow,
        .uid_base = cfg->uid_first,
    };
    struct sites_runtime_config rcfg = {
        .loop = d->loop, .sites = d->sites, .store = d->store, .run_dir = cfg->run_dir,
        .front_uid = cfg->front_uid, .front_gid = cfg->front_gid,
        /* Both families off: network nat is turned off, and nat sites are refused. */
        .nat = ncfg.ipv4 || ncfg.ipv6 ? &ncfg : NULL,
    };
    r = sites_runtime_new(&rcfg, &d->runtime);
    if (r < 0 && geteuid() != 0)
        log_warning_errno(r, "sites that run code cannot run without root");
    else if (r == -EINVAL)
        return log_errno(r, "invalid network nat settings (nat_bridge %s, nat_ipv4 %s, nat_ipv6 %s, nat_allow entries "
                         "like udp/53)", cfg->nat_bridge, cfg->nat_ipv4, cfg->nat_ipv6);
    else if (r < 0)
        return log_errno(r, "cannot set up site sandboxes (cgroups under /sys/fs/cgroup, %s/sites)", cfg->run_dir);
    if (d->runtime && (r = sites_runtime_start_all(d->runtime)) < 0)
        return log_errno(r, "cannot start sites");
    sites_set_observer(d->sites, on_site_change, d);
    if (d->runtime)
        d->sample_timer = evloop_timer_add(d->loop, USAGE_SAMPLE_MS, on_sample_usage, d);
    if (d->runtime && (r = sites_exec_new(d->loop, d->runtime, cfg->run_dir, &d->exec)) < 0)
        return log_errno(r, "cannot serve site exec on %s/exec.sock", cfg->run_dir);
    if ((r = start_ssh(d)) < 0)
        return r;

    struct api_config acfg = {
        .socket_path = cfg->api_socket, .store = d->store, .sites = d->sites, .runtime = d->runtime, .version = BERTH_VERSION,
        .state_dir = cfg->state_dir, .run_dir = cfg->run_dir, .base_domain = cfg->base_domain,
        .listeners = d->api_listeners, .n_listeners = d->n_listeners, .started_at = now_s(),
        .stats = d->stats, .user_max_memory = cfg->user_max_memory,
        .user_max_cpu_millis = cfg->user_max_cpu_millis, .user_max_pids = cfg->user_max_pids,
        .user_max_sites = cfg->user_max_sites, .tls_ca = d->ca_path,
        .ssh_broker = d->ssh_broker, .ssh_fingerprint = d->ssh ? d->ssh_fingerprint : NULL,
    };
    r = api_server_new(d->loop, &acfg, &d->api);
    if (r == -EADDRINUSE)
        return log_errno(r, "another berthd is answering on %s", cfg->api_socket);
    if (r < 0)
        return log_errno(r, "cannot serve the API on %s", cfg->api_socket);
    snprintf(path, sizeof(path), "%s/panel.sock", cfg->run_dir);
    acfg.socket_path = path;
    acfg.auth = API_AUTH_PANEL;
    acfg.socket_gid = cfg->front_gid;
    r = api_server_new(d->loop, &acfg, &d->panel);
    if (r < 0)
        return log_errno(r, "cannot serve the panel on %s", path);
    /* The api.sock config: its backups are made by "berthd", as root's are. */
    acfg.socket_path = cfg->api_socket;
    acfg.auth = API_AUTH_PEER_ROOT;
    acfg.socket_gid = 0;
    if ((r = api_backups_new(d->loop, &acfg, &d->backups)) < 0)
        return log_errno(r, "cannot schedule the sites' backups");

    for (size_t i = 0; i < d->n_listeners; i++)
        log_info("listening for %s on %s", d->listeners[i].kind, d->listeners[i].address);
    log_info("berthd %s ready; API on %s, state in %s", BERTH_VERSION, cfg->api_socket, cfg->state_dir);

    r = evloop_run(d->loop);
    if (r < 0)
        return log_errno(r, "event loop failed");
    /* Only after a clean run: a berthd that failed to start has nothing to add to
     * the file and must not replace it with an empty history. */
    save_stats(d);
    log_info("berthd stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct berthd d = { .state_lock_fd = -1, .run_lock_fd = -1, .signal_fd = -1 };
    log_set_ident("berthd");
    /* Not for people: the image an ACME order's child execs (acme-orders.c). */
    if (argc == 2 && streq(argv[1], "--acme-order")) {
        log_set_ident("berthd-acme");
        return berthd_acme_order_main(3);
    }
    int r = berthd_config_parse_args(&d.cfg, argc, argv);
    if (r != 0) {
        berthd_config_done(&d.cfg);
        return r > 0 ? 0 : 2;
    }
    if (geteuid() != 0)
        log_warning("berthd is not running as root: sites cannot get their own users and sandboxes");
    r = run(&d);
    berthd_done(&d);
    return r < 0 ? 1 : 0;
}

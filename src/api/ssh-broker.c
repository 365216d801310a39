/* The SFTP broker: berthd decides every ssh login and starts every session, so
 * the ssh front, which faces the internet, never reads the store or a password
 * hash and cannot start anything for a site it was not let into. Design and wire
 * format: docs/internals/ssh.md. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "api/api-internal.h"
#include "common/log.h"
#include "common/names.h"
#include "ssh/ssh.h"

#define THROTTLE_SLOTS 1024
#define PASSWORD_MAX 1024
#define SFTP_SERVER "/usr/lib/openssh/sftp-server"

struct bconn {
    struct api_ssh_broker *b;
    struct bconn *next;
    int fd;
    char address[128];      /* "ADDR:PORT" */
    char throttle_key[136]; /* "a:ADDR" */
    bool authed;
    char site[64];
    char method[16];        /* "publickey", "password" */
    char fingerprint[SSH_FINGERPRINT_MAX];   /* publickey */
    char user[64];          /* password: whose password it was */
    pid_t pid;              /* sftp-server, 0: none */
    int pidfd;
};

struct api_ssh_broker {
    struct evloop *loop;
    struct store *store;
    struct sites_runtime *runtime;
    struct api_throttle *throttle;
    char dummy_hash[crypto_pwhash_STRBYTES];
    struct bconn *conns;
};

static void conn_close(struct bconn *c)
{
    struct api_ssh_broker *b = c->b;
    for (struct bconn **p = &b->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    if (c->pid > 0) {
        (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        evloop_del(b->loop, c->pidfd);
        siginfo_t si;
        while (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        safe_close(c->pidfd);
        if (b->runtime)
            sites_runtime_session_done(b->runtime, c->site);
        log_info("ssh: site %s: session from %s ended", c->site, c->address);
    }
    evloop_del(b->loop, c->fd);
    safe_close(c->fd);
    free(c);
}

static void answer(struct bconn *c, uint8_t type, const char *text, const int *fds, size_t n_fds)
{
    uint8_t msg[SSH_MSG_MAX];
    const char *fields[] = { text };
    int len = ssh_msg_encode(type, fields, 1, msg, sizeof(msg));
    /* The child waits for this answer before it asks anything else: the socket
     * has room. A failure shows on the child's side as berthd gone. */
    if (len >= 0)
        (void)ssh_send_fds(c->fd, msg, (size_t)len, fds, n_fds);
}

static void audit_login(struct bconn *c, const char *actor)
{
    struct buf detail = BUF_INIT(1024);
    struct json_writer w;
    json_writer_init(&w, &detail, false);
    json_object_begin(&w);
    json_kv_string(&w, "method", c->method);
    if (c->fingerprint[0])
        json_kv_string(&w, "fingerprint", c->fingerprint);
    json_kv_string(&w, "client", c->address);
    json_object_end(&w);
    if (json_writer_finish(&w) >= 0 && store_event_append(c->b->store, actor, "ssh.login", c->site, detail.data) < 0)
        log_warning("ssh: cannot record the login to site %s in the audit log: %s", c->site,
                    store_errmsg(c->b->store));
    buf_done(&detail);
}

static void login_failed(struct bconn *c, const char *site, const char *how)
{
    api_throttle_fail(c->b->throttle, c->throttle_key, now_ms());
    log_notice("ssh: failed login to site \"%.63s\" from %s (%s)", site, c->address, how);
    answer(c, SSH_MSG_DENY, "denied", NULL, 0);
}

static bool throttled(struct bconn *c, const char *site)
{
    uint64_t wait = api_throttle_wait(c->b->throttle, c->throttle_key, now_ms());
    if (wait == 0)
        return false;
    log_notice("ssh: login to site \"%.63s\" from %s refused: too many failed logins from this address, locked "
               "for %llu more seconds", site, c->address, (unsigned long long)((wait + 999) / 1000));
    answer(c, SSH_MSG_DENY, "denied", NULL, 0);
    return true;
}

static void auth_key(struct bconn *c, const struct ssh_msg *m)
{
    char site[64], line[SSH_MSG_MAX], mode[8];
    if (m->n_fields != 3 || ssh_msg_field(m, 0, site, sizeof(site)) < 0 ||
        ssh_msg_field(m, 1, line, sizeof(line)) < 0 || ssh_msg_field(m, 2, mode, sizeof(mode)) < 0 ||
        (!streq(mode, "probe") && !streq(mode, "login"))) {
        conn_close(c);
        return;
    }
    if (c->authed) {
        answer(c, SSH_MSG_DENY, "denied", NULL, 0);
        return;
    }
    if (throttled(c, site))
        return;
    struct ssh_pubkey k;
    char why[256];
    bool ok = site_name_valid(site) && ssh_pubkey_parse(line, strlen(line), &k, why, sizeof(why)) == 0;
    char fp[SSH_FINGERPRINT_MAX] = "";
    if (ok) {
        snprintf(fp, sizeof(fp), "%s", k.fingerprint);
        ssh_pubkey_done(&k);
        ok = store_site_key_find(c->b->store, site, fp) == 0;
    }
    if (streq(mode, "probe") && ok) {
        /* Only "would this key do": the client signs next, and that is the login. */
        answer(c, SSH_MSG_OK, "ok", NULL, 0);
        return;
    }
    /* A refused key counts as a failed login whether or not the client signed:
     * a client only signs with a key the server said it would take. */
    if (!ok) {
        char how[128];
        snprintf(how, sizeof(how), "key %s not accepted", fp[0] ? fp : "of a refused type");
        login_failed(c, site, how);
        return;
    }
    c->authed = true;
    snprintf(c->site, sizeof(c->site), "%s", site);
    snprintf(c->method, sizeof(c->method), "publickey");
    snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", fp);
    api_throttle_clear(c->b->throttle, c->throttle_key, now_ms());
    log_info("ssh: site %s: login from %s with key %s", site, c->address, fp);
    audit_login(c, "ssh-key");
    answer(c, SSH_MSG_OK, "ok", NULL, 0);
}

/* The passwords that open a site: its owner's and every admin's (enabled ones).
 * Every candidate is verified, and the dummy hash makes up the count to one per
 * admin plus one, so the time spent says neither which one matched nor whether
 * the site exists (site NULL: it does not). Each is an argon2 verification in
 * berthd's loop, like a panel sign-in; the throttle bounds how often one address
 * can ask. */
static bool password_matches(struct api_ssh_broker *b, const struct store_site *site, const char *password,
                             size_t len, char *ret_user, size_t n)
{
    struct store_user *users = NULL;
    size_t n_users = 0, verified = 0, wanted = 1;
    bool ok = false;
    if (store_user_list(b->store, &users, &n_users) < 0)
        return false;
    for (size_t i = 0; i < n_users; i++) {
        const struct store_user *u = &users[i];
        if (u->disabled)
            continue;
        wanted += u->admin;
        if (!site || !(u->admin || streq_ptr(site->owner, u->name)))
            continue;
        verified++;
        if (crypto_pwhash_str_verify(u->password_hash, password, len) == 0 && !ok) {
            ok = true;
            snprintf(ret_user, n, "%s", u->name);
        }
    }
    store_user_list_free(users, n_users);
    for (; verified < wanted; verified++) {
        int spent = crypto_pwhash_str_verify(b->dummy_hash, password, len);
        (void)spent;
    }
    return ok;
}

static void auth_password(struct bconn *c, const struct ssh_msg *m)
{
    char site_name[64], password[PASSWORD_MAX + 1], user[64] = "";
    if (m->n_fields != 2 || ssh_msg_field(m, 0, site_name, sizeof(site_name)) < 0 ||
        ssh_msg_field(m, 1, password, sizeof(password)) < 0) {
        /* An over-long password is a wrong one, not a broken child. */
        if (m->n_fields == 2 && m->fields[1].len > PASSWORD_MAX)
            login_failed(c, "?", "password too long");
        else
            conn_close(c);
        return;
    }
    if (c->authed) {
        answer(c, SSH_MSG_DENY, "denied", NULL, 0);
    } else if (!throttled(c, site_name)) {
        struct store_site site = { 0 };
        bool found = site_name_valid(site_name) && store_site_get(c->b->store, site_name, &site) == 0;
        bool ok = password_matches(c->b, found ? &site : NULL, password, strlen(password), user, sizeof(user));
        store_site_done(&site);
        if (!ok) {
            login_failed(c, site_name, found ? "wrong password" : "no such site");
        } else {
            c->authed = true;
            snprintf(c->site, sizeof(c->site), "%s", site_name);
            snprintf(c->method, sizeof(c->method), "password");
            snprintf(c->user, sizeof(c->user), "%s", user);
            api_throttle_clear(c->b->throttle, c->throttle_key, now_ms());
            log_info("ssh: site %s: login from %s with the password of user %s", site_name, c->address, user);
            audit_login(c, user);
            answer(c, SSH_MSG_OK, "ok", NULL, 0);
        }
    }
    explicit_bzero(password, sizeof(password));
}

static void on_session_exit(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct bconn *c = data;
    siginfo_t si = { 0 };
    evloop_del(loop, c->pidfd);
    while (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    c->pidfd = safe_close(c->pidfd);
    c->pid = 0;
    if (c->b->runtime)
        sites_runtime_session_done(c->b->runtime, c->site);
    /* The status first (a shell's `exit 3` reaches the client), then the
     * connection ends with its program. */
    char status[16];
    snprintf(status, sizeof(status), "%d", si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
    uint8_t msg[64];
    const char *fields[] = { status };
    int len = ssh_msg_encode(SSH_MSG_EXIT, fields, 1, msg, sizeof(msg));
    if (len >= 0)
        (void)ssh_send_fds(c->fd, msg, (size_t)len, NULL, 0);
    log_info("ssh: site %s: session from %s ended (status %s)", c->site, c->address, status);
    conn_close(c);
}

static int open_pty(int *ret_master, int *ret_slave)
{
    _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0)
        return -errno;
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return -errno;
    *ret_master = TAKE_FD(master);
    *ret_slave = slave;
    return 0;
}

/* A terminal type from the client, if it is a plain name ("xterm-256color"). */
static bool term_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9') ||
              strchr("._+-", t[i])))
            return false;
    return true;
}

/* SPAWN: sftp-server for "sftp"; for "shell" (sites that run code only), a login
 * shell or `sh -c COMMAND`, on a terminal of berthd's when the client asked for
 * one, else on pipes (stderr joins stdout). */
static void spawn_session(struct bconn *c, const struct ssh_msg *m)
{
    struct api_ssh_broker *b = c->b;
    char kind[8], term[48] = "", cols[8] = "", rows[8] = "", command[SSH_MSG_MAX] = "";
    if (m->n_fields < 1 || ssh_msg_field(m, 0, kind, sizeof(kind)) < 0 ||
        (streq(kind, "shell") && (m->n_fields != 5 || ssh_msg_field(m, 1, term, sizeof(term)) < 0 ||
                                  ssh_msg_field(m, 2, cols, sizeof(cols)) < 0 ||
                                  ssh_msg_field(m, 3, rows, sizeof(rows)) < 0 ||
                                  ssh_msg_field(m, 4, command, sizeof(command)) < 0)) ||
        (!streq(kind, "sftp") && !streq(kind, "shell"))) {
        conn_close(c);
        return;
    }
    if (!c->authed || c->pid > 0) {
        answer(c, SSH_MSG_DENY, "not logged in", NULL, 0);
        return;
    }
    if (!b->runtime) {
        log_warning("ssh: site %s: no session possible: berthd runs without sandboxes (not root)", c->site);
        answer(c, SSH_MSG_DENY, "This server cannot start sessions now (its sandboxes are unavailable).", NULL, 0);
        return;
    }
    struct store_site site = { 0 };
    if (store_site_get(b->store, c->site, &site) < 0) {
        conn_close(c);   /* removed since the login */
        return;
    }
    bool shell = streq(kind, "shell");
    bool tty = shell && term[0];
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, master = -1, slave = -1;
    if (shell && !streq(site.type, "php") && !streq(site.type, "app")) {
        log_info("ssh: site %s: shell refused to %s: a static site has no shell", c->site, c->address);
        answer(c, SSH_MSG_DENY, "This server offers SFTP only for static sites: connect with sftp, FileZilla or "
               "WinSCP. PHP and app sites also get a shell.", NULL, 0);
        goto out;
    }
    int r = tty ? open_pty(&master, &slave) : 0;
    if (r >= 0 && !tty && (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0))
        r = -errno;
    if (r < 0) {
        log_warning_errno(r, "ssh: site %s: cannot make the session's %s", c->site, tty ? "terminal" : "pipes");
        answer(c, SSH_MSG_DENY, "This server cannot start the session now.", NULL, 0);
        goto out;
    }
    if (tty) {
        uint64_t w = 0, hgt = 0;
        if (parse_uint(cols, 1, 1000, &w) == 0 && parse_uint(rows, 1, 1000, &hgt) == 0) {
            struct winsize ws = { .ws_col = (unsigned short)w, .ws_row = (unsigned short)hgt };
            (void)ioctl(master, TIOCSWINSZ, &ws);
        }
    }
    /* -d /site: the user starts in the site's directory, where public/, private/
     * and logs/ are. */
    static const char *const sftp_argv[] = { SFTP_SERVER, "-d", "/site", NULL };
    const char *login_argv[] = { "/bin/bash", "-l", NULL };
    const char *command_argv[] = { "/bin/sh", "-c", command, NULL };
    char term_env[64], site_env[100];
    snprintf(term_env, sizeof(term_env), "TERM=%s", tty && term_ok(term) ? term : "dumb");
    snprintf(site_env, sizeof(site_env), "BERTH_SITE=%s", c->site);
    const char *const envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/site", "LANG=C.UTF-8", term_env,
                                 site_env, NULL };
    struct sites_session how = {
        .argv = !shell ? sftp_argv : command[0] ? command_argv : login_argv,
        .envp = shell ? envp : NULL,
        .stdin_fd = tty ? slave : in[0],
        .stdout_fd = tty ? slave : out[1],
        .stderr_fd = tty ? slave : shell ? out[1] : -1,
        .controlling_tty = tty,
    };
    struct sandbox_error se = { 0 };
    r = sites_runtime_session_spawn(b->runtime, &site, &how, &se, &c->pid, &c->pidfd);
    if (r < 0) {
        c->pid = 0;
        log_warning_errno(r, "ssh: site %s: cannot start %s in its sandbox (%s)", c->site, how.argv[0],
                          sandbox_step_to_string(se.step));
        answer(c, SSH_MSG_DENY, "This server cannot start the session now.", NULL, 0);
        goto out;
    }
    if (evloop_add(b->loop, c->pidfd, EPOLLIN, on_session_exit, c) < 0) {
        conn_close(c);
        goto out;
    }
    log_info("ssh: site %s: %s session for %s (%s pid %d)", c->site, shell ? "shell" : "sftp", c->address,
             shell ? how.argv[0] : "sftp-server", (int)c->pid);
    const int fds[2] = { tty ? master : in[1], tty ? master : out[0] };
    answer(c, SSH_MSG_OK, "ok", fds, 2);
out:
    safe_close(in[0]);
    safe_close(in[1]);
    safe_close(out[0]);
    safe_close(out[1]);
    safe_close(master);
    safe_close(slave);
    store_site_done(&site);
}

static void on_conn_readable(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct bconn *c = data;
    uint8_t buf[SSH_MSG_MAX];
    int fds[1];
    size_t n_fds = 0;
    ssize_t n = ssh_recv_fds(fd, buf, sizeof(buf), fds, 1, &n_fds);
    if (n == -EAGAIN)
        return;
    struct ssh_msg m;
    if (n <= 0 || n_fds > 0 || ssh_msg_decode(buf, (size_t)n, &m) < 0) {
        /* Gone, or speaking nonsense: the connection ends, with its session. */
        safe_close(fds[0]);
        conn_close(c);
        return;
    }
    switch (m.type) {
    case SSH_MSG_AUTH_KEY:
        auth_key(c, &m);
        break;
    case SSH_MSG_AUTH_PASSWORD:
        auth_password(c, &m);
        break;
    case SSH_MSG_SPAWN:
        spawn_session(c, &m);
        break;
    default:
        conn_close(c);
    }
}

void api_ssh_broker_conn(void *broker, int fd, const char *address)
{
    struct api_ssh_broker *b = broker;
    struct bconn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->b = b;
    c->fd = fd;
    c->pidfd = -1;
    snprintf(c->address, sizeof(c->address), "%s", address);
    /* The address without its port is what failures are counted against. */
    char host[128];
    snprintf(host, sizeof(host), "%s", address);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = 0;
    snprintf(c->throttle_key, sizeof(c->throttle_key), "a:%s", host);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (evloop_add(b->loop, fd, EPOLLIN, on_conn_readable, c) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = b->conns;
    b->conns = c;
}

unsigned api_ssh_broker_end_sessions(struct api_ssh_broker *b, const char *site, const char *fingerprint)
{
    unsigned n = 0;
    if (!b)
        return 0;
    for (struct bconn *c = b->conns, *next; c; c = next) {
        next = c->next;
        if (!c->authed || !streq(c->site, site) || (fingerprint && !streq(c->fingerprint, fingerprint)))
            continue;
        log_info("ssh: site %s: ending the session from %s (%s)", c->site, c->address,
                 fingerprint ? "its key was removed" : "the site was removed");
        conn_close(c);
        n++;
    }
    return n;
}

int api_ssh_broker_new(struct evloop *loop, struct store *store, struct sites_runtime *runtime,
                       struct api_ssh_broker **ret)
{
    struct api_ssh_broker *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->loop = loop;
    b->store = store;
    b->runtime = runtime;
    uint8_t pw[16];
    randombytes_buf(pw, sizeof(pw));
    if (api_throttle_new(THROTTLE_SLOTS, &b->throttle) < 0 ||
        crypto_pwhash_str_alg(b->dummy_hash, (const char *)pw, sizeof(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        api_ssh_broker_free(b);
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

void api_ssh_broker_free(struct api_ssh_broker *b)
{
    if (!b)
        return;
    while (b->conns)
        conn_close(b->conns);
    api_throttle_free(b->throttle);
    free(b);
}

/* Site runtime: activation, supervision and shutdown of site sandboxes. The why of
 * each choice is in docs/internals/sites-runtime.md. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common/fs.h"
#include "common/log.h"
#include "sites/sites.h"

#define GRACE_MS 5000            /* SIGTERM → SIGKILL */
#define CRASH_WINDOW_MS 60000    /* 5 crashes within this → failed */
#define CRASH_MAX 5
#define TAIL_BYTES 4096          /* read from the end of error.log for `failed` */
#define TAIL_LINES 10

struct rt_site {
    struct sites_runtime *rt;
    struct rt_site *next;
    char *name;
    char *cmd;
    char *site_dir;
    uid_t uid;
    bool runs_code;              /* type app or php: a program runs in a sandbox */
    bool php;                    /* type php: the program is the site's php-fpm */
    char *php_settings;          /* php: the stored settings (JSON), or NULL */
    bool program_changed;        /* cmd, PHP settings or network changed while it ran: restart */
    bool want_running;           /* desired state "running" */
    bool always_on;
    uint32_t idle_seconds;
    char network[16];
    struct sandbox_limits limits;

    enum sites_runtime_state state;
    int listen_fd;               /* -1 when stopped */
    bool watching;               /* listen_fd is in the loop */
    char sock_path[108];
    pid_t pid;
    int pidfd;
    bool nat_started;            /* the running sandbox was started with network nat */
    int *exec_pidfds;            /* fresh nat sandboxes of `site exec` (copies) */
    size_t n_exec_pidfds;
    struct sandbox_cgroup *cg;
    uint64_t cgroup_serial;      /* of cg: new for each cgroup made (its counters restart) */
    struct ev_timer *timer;      /* idle check, backoff or kill grace: one at a time */
    int64_t started_at;
    unsigned restarts;
    int last_exit;
    uint64_t last_activity_ms;
    uint64_t spawned_ms;         /* monotonic time of the current sandbox's start */
    uint64_t backend_failures;   /* requests failed in a row by the running backend */
    uint64_t failure_restart_ms; /* the last restart for backend failures; 0: none */
    uint64_t crashes[CRASH_MAX]; /* monotonic ms of the last crashes, oldest first */
    size_t n_crashes;
    bool stop_requested;         /* an exit now is not a crash */
    bool restart_after_stop;     /* start again once the stop completes */
    bool idle_after_stop;        /* idle stop: go back to watching */
    bool limits_refused;         /* last_error says the running sandbox kept old limits */
    char last_error[256];
    char last_output[2048];
};

struct sites_runtime {
    struct evloop *loop;
    struct sites *sites;
    struct store *store;
    char *run_dir;
    char *sites_run_dir;
    uid_t front_uid;
    gid_t front_gid;
    struct sandbox_cgroup_root *cg_root;
    struct sandbox_nat *nat;     /* NULL: nat sites are refused */
    dev_t io_device;             /* the disk under the sites' trees; 0: none (no disk limits) */
    bool nat_up;                 /* the bridge and table are ours to remove */
    struct rt_site *list;
    uint64_t cgroup_serials;     /* the last cgroup_serial handed out */
    struct session_cg *session_cgs; /* cgroups of static sites' sessions */
};

/* A static site has no sandbox of its own, so its SFTP sessions need a cgroup
 * made for them: kept while at least one runs. */
struct session_cg {
    struct session_cg *next;
    char name[64];
    struct sandbox_cgroup *cg;
    unsigned sessions;
};

static void site_start_sandbox(struct rt_site *s);
static void site_apply(struct rt_site *s);

const char *sites_runtime_state_to_string(enum sites_runtime_state state)
{
    static const char *const names[] = { "stopped", "idle", "starting", "running", "stopping", "failed" };
    return (unsigned)state < ARRAY_SIZE(names) ? names[state] : "unknown";
}

static struct rt_site *site_find(struct sites_runtime *rt, const char *name)
{
    for (struct rt_site *s = rt->list; s; s = s->next)
        if (streq(s->name, name))
            return s;
    return NULL;
}

static void site_cancel_timer(struct rt_site *s)
{
    evloop_timer_cancel(s->rt->loop, s->timer);
    s->timer = NULL;
}

static void site_unwatch(struct rt_site *s)
{
    if (s->watching)
        evloop_del(s->rt->loop, s->listen_fd);
    s->watching = false;
}

static void site_close_socket(struct rt_site *s)
{
    site_unwatch(s);
    if (s->listen_fd >= 0) {
        s->listen_fd = safe_close(s->listen_fd);
        unlink(s->sock_path);
    }
}

/* Binds <run>/sites/<name>.sock: root-owned, group front, 0660, so the unprivileged
 * front can connect and nobody else can. fchmod/fchown on a socket fd do not reach
 * the file, hence the path-based calls right after bind (the directory is root's
 * 0755, so nobody can swap the file in between). */
static int site_open_socket(struct rt_site *s)
{
    if (s->listen_fd >= 0)
        return 0;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(s->sock_path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, s->sock_path, strlen(s->sock_path) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    (void)unlink(s->sock_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    if (chown(s->sock_path, 0, s->rt->front_gid) < 0 || chmod(s->sock_path, 0660) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        int r = -errno;
        unlink(s->sock_path);
        return r;
    }
    s->listen_fd = TAKE_FD(fd);
    return 0;
}

static void on_listen_ready(struct evloop *loop, int fd, uint32_t events, void *data);

static void site_watch(struct rt_site *s)
{
    if (s->watching || s->listen_fd < 0)
        return;
    int r = evloop_add(s->rt->loop, s->listen_fd, EPOLLIN, on_listen_ready, s);
    if (r < 0)
        log_errno(r, "site %s: cannot watch its socket", s->name);
    else
        s->watching = true;
}

/* Reads the last lines of the site's error.log, where its output went. */
static void site_read_tail(struct rt_site *s)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/logs/error.log", s->site_dir);
    s->last_output[0] = 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    char buf[TAIL_BYTES + 1];
    off_t from = st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, TAIL_BYTES, from);
    if (n <= 0)
        return;
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    /* The start of the last TAIL_LINES lines, kept within last_output. */
    char *start = buf;
    int lines = 0;
    for (char *p = buf + n; p > buf; p--) {
        if (p[-1] == '\n' && ++lines == TAIL_LINES) {
            start = p;
            break;
        }
    }
    size_t len = strlen(start);
    if (len >= sizeof(s->last_output))
        start += len - (sizeof(s->last_output) - 1);
    snprintf(s->last_output, sizeof(s->last_output), "%s", start);
}

/* Opens <site>/logs/error.log for the program's stdout and stderr. logs/ belongs to
 * the front's user, so what is at that name is not to be trusted: O_NOFOLLOW (no
 * symlink), O_NONBLOCK (a FIFO without a reader fails instead of blocking berthd),
 * and anything but a regular file with one link (a hard link would have us chown
 * another file to the site) is removed and made anew. The owner is fixed on the
 * file we opened. Group-writable: the program already writes it through the fd it
 * gets, and php-fpm reopens its stderr by path (/proc/self/fd/2). */
static bool plain_file_of_its_own(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
}

static int site_open_log(struct rt_site *s, int *ret_fd)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/logs/error.log", s->site_dir);
    const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
    _cleanup_close_ int fd = open(path, flags, 0660);
    if (fd < 0 && errno != ELOOP && errno != ENXIO)   /* ELOOP: a symlink; ENXIO: a FIFO */
        return -errno;
    if (fd < 0 || !plain_file_of_its_own(fd)) {
        log_warning("site %s: %s was not a plain file of its own: made anew", s->name, path);
        fd = safe_close(fd);
        if (unlink(path) < 0 && errno != ENOENT)
            return -errno;
        fd = open(path, flags | O_EXCL, 0660);
        if (fd < 0)
            return -errno;
        if (!plain_file_of_its_own(fd))
            return -EEXIST;   /* linked again the moment it was made */
    }
    if (fchown(fd, s->rt->front_uid, s->uid) < 0 || fchmod(fd, 0660) < 0 ||
        fcntl(fd, F_SETFL, O_APPEND) < 0)
        return -errno;
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* Whether the process behind pidfd, a child of ours, has not exited. */
static bool pidfd_running(int pidfd)
{
    siginfo_t si = { 0 };
    return waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

/* Network nat gives a site one address, on one veth: a fresh sandbox of the site
 * made while another lives (a `site exec` and the site's start, or two execs) must
 * share that one's network namespace, or its veth would take the other's away. A
 * borrowed pidfd of such a live sandbox, or -1. */
static int site_network_holder(struct rt_site *s)
{
    if (s->pidfd >= 0 && s->nat_started && pidfd_running(s->pidfd))
        return s->pidfd;
    for (size_t i = 0; i < s->n_exec_pidfds; i++)
        if (pidfd_running(s->exec_pidfds[i]))
            return s->exec_pidfds[i];
    return -1;
}

static int site_ensure_cgroup(struct rt_site *s)
{
    if (s->cg)
        return sandbox_cgroup_set_limits(s->cg, &s->limits);
    int r = sandbox_cgroup_create(s->rt->cg_root, s->name, &s->limits, &s->cg);
    if (r >= 0)
        s->cgroup_serial = ++s->rt->cgroup_serials;
    return r;
}

/* Kills what is left in the cgroup and removes it. Failure is logged and left for
 * the next start or berthd's next start-up (create opens an existing cgroup). */
static void site_drop_cgroup(struct rt_site *s)
{
    if (!s->cg)
        return;
    int r = sandbox_cgroup_kill(s->cg);
    if (r >= 0)
        r = sandbox_cgroup_remove(s->cg);
    if (r < 0) {
        log_warning_errno(r, "site %s: cannot remove its cgroup", s->name);
        return;   /* keep the handle: the next stop retries */
    }
    sandbox_cgroup_free(s->cg);
    s->cg = NULL;
}

static void on_sandbox_exit(struct evloop *loop, int fd, uint32_t events, void *data);

/* Network nat's bridge and firewall, made when the first nat sandbox needs them. */
static int runtime_nat_setup(struct sites_runtime *rt, const char *site, struct error *err)
{
    if (!rt->nat)
        return error_set(err, -EOPNOTSUPP, "site %s: network \"nat\" is not configured in this berthd", site);
    int r = sandbox_nat_setup(rt->nat);
    if (r == -ENOENT)
        return error_set(err, r, "site %s: network nat needs nft (install the nftables package)", site);
    if (r < 0)
        return error_set(err, r, "site %s: cannot set up network nat (bridge, addresses, nft table): %s%s", site,
                         strerror(-r), r == -EPROTO ? " (nft refused the ruleset; see berthd's log)" : "");
    rt->nat_up = true;
    return 0;
}

static bool site_type_runs_code(const char *type)
{
    return streq_ptr(type, "app") || streq_ptr(type, "php");
}

/* What a PHP site's sandbox runs: its own php-fpm master, from a configuration that
 * berthd writes outside the site's tree (the site's user owns that tree and could
 * swap a file there) and binds read-only. Valid until the site's next spawn. */
struct php_launch {
    char conf_dir[4200];         /* <run>/php/<name>: root's, bound read-only */
    char command[256];
    const char *argv[4];
    const char *envp[6];
    struct sandbox_bind ro_binds[2];
};

/* Writes <run>/php/<name>/php-fpm.conf from the site's settings (atomically: a
 * reader never sees half a file) and fills *ret. */
static int php_prepare(struct rt_site *s, struct php_launch *ret, struct error *err)
{
    struct buf conf = BUF_INIT(1 << 20);
    struct php_fpm_site site = {
        .name = s->name,
        .max_body = php_site_body_limit(s->php_settings),
        .settings_json = s->php_settings,
    };
    int r = php_fpm_config_write(&site, &conf, err);
    if (r < 0) {
        char why[sizeof(err->message)];
        snprintf(why, sizeof(why), "%s", err->message);
        buf_done(&conf);
        return error_set(err, r, "site %s: %s", s->name, why);
    }
    snprintf(ret->conf_dir, sizeof(ret->conf_dir), "%s/php/%s", s->rt->run_dir, s->name);

    char path[4300];
    snprintf(path, sizeof(path), "%s/php-fpm.conf", ret->conf_dir);
    r = mkdir_p(ret->conf_dir, 0755);
    if (r >= 0)
        r = write_file_atomic(path, conf.data, conf.len, 0644);
    buf_done(&conf);
    if (r < 0)
        return error_set(err, r, "site %s: cannot write %s: %s", s->name, path, strerror(-r));
    /* PHP refuses to start a session or take an upload without these directories;
     * they are made inside the sandbox, as the site's user, so nothing of root's
     * ever walks the site's own tree. */
    snprintf(ret->command, sizeof(ret->command),
             "mkdir -p -m 0700 /site/tmp/sessions /site/tmp/uploads && exec " PHP_FPM_BINARY
             " --nodaemonize --force-stderr --fpm-config " PHP_FPM_CONFIG_DIR "/php-fpm.conf");
    ret->argv[0] = "/bin/sh";
    ret->argv[1] = "-c";
    ret->argv[2] = ret->command;
    ret->argv[3] = NULL;
    ret->envp[0] = "PATH=/usr/local/bin:/usr/bin:/bin";
    ret->envp[1] = "HOME=/site";
    ret->envp[2] = "LANG=C.UTF-8";
    ret->envp[3] = PHP_FPM_SOCKETS_ENV;
    ret->envp[4] = NULL;
    /* /etc/php: php.ini and conf.d, which loads opcache and the other extensions. */
    ret->ro_binds[0] = (struct sandbox_bind){ .source = "/etc/php" };
    ret->ro_binds[1] = (struct sandbox_bind){ .source = ret->conf_dir, .target = PHP_FPM_CONFIG_DIR };
    return 0;
}

static int site_spawn(struct rt_site *s, struct error *err)
{
    enum sandbox_network net;
    int r;
    if (!s->php && (!s->cmd || !*s->cmd))
        return error_set(err, -EINVAL, "site %s is an app site without a command: set one with --cmd", s->name);
    r = sandbox_network_from_string(s->network, &net);
    if (r < 0)
        return error_set(err, -EINVAL, "site %s: unknown network \"%s\"", s->name, s->network);
    if (net == SANDBOX_NETWORK_NAT && (r = runtime_nat_setup(s->rt, s->name, err)) < 0)
        return r;
    if ((r = site_open_socket(s)) < 0)
        return error_set(err, r, "site %s: cannot create its socket %s: %s", s->name, s->sock_path, strerror(-r));
    if ((r = site_ensure_cgroup(s)) < 0)
        return error_set(err, r, "site %s: cannot create its cgroup: %s", s->name, strerror(-r));
    _cleanup_close_ int log_fd = -1;
    if ((r = site_open_log(s, &log_fd)) < 0)
        return error_set(err, r, "site %s: cannot open %s/logs/error.log: %s", s->name, s->site_dir, strerror(-r));

    char listen_env[160], name_env[100];
    snprintf(listen_env, sizeof(listen_env), "BERTH_LISTEN=%s", s->sock_path);
    snprintf(name_env, sizeof(name_env), "BERTH_SITE=%s", s->name);
    const char *const app_argv[] = { "/bin/sh", "-c", s->cmd, NULL };
    const char *const app_envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/site", "LANG=C.UTF-8",
                                     "PYTHONUNBUFFERED=1", listen_env, name_env, NULL };
    struct php_launch php;
    if (s->php && (r = php_prepare(s, &php, err)) < 0)
        return r;
    struct sandbox_config cfg;
    sandbox_config_init(&cfg);
    cfg.name = s->name;
    cfg.uid = s->uid;
    cfg.gid = s->uid;
    cfg.site_dir = s->site_dir;
    cfg.argv = s->php ? php.argv : app_argv;
    cfg.envp = s->php ? php.envp : app_envp;
    cfg.ro_binds = s->php ? php.ro_binds : NULL;
    cfg.n_ro_binds = s->php ? ARRAY_SIZE(php.ro_binds) : 0;
    cfg.fds = &s->listen_fd;
    cfg.n_fds = 1;
    cfg.listen_env = true;
    cfg.stdout_fd = log_fd;
    cfg.stderr_fd = log_fd;
    cfg.network = net;
    cfg.nat = s->rt->nat;
    cfg.join_net_pidfd = net == SANDBOX_NETWORK_NAT ? site_network_holder(s) : -1;
    cfg.cgroup = s->cg;

    struct sandbox_error se = { 0 };
    pid_t pid;
    int pidfd;
    r = sandbox_spawn(&cfg, &se, &pid, &pidfd);
    if (r == -ERANGE && se.step == SANDBOX_STEP_NETWORK)
        return error_set(err, r, "site %s: its uid %u has no address in the nat subnets (make them larger)",
                         s->name, (unsigned)s->uid);
    if (r < 0)
        return error_set(err, r, "site %s: sandbox set-up failed at %s: %s", s->name,
                         sandbox_step_to_string(se.step), strerror(-r));
    r = evloop_add(s->rt->loop, pidfd, EPOLLIN, on_sandbox_exit, s);
    if (r < 0) {
        /* Without a watch nobody would reap it: kill it now. */
        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        (void)waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED);
        close(pidfd);
        return error_set(err, r, "site %s: cannot watch its sandbox: %s", s->name, strerror(-r));
    }
    s->pid = pid;
    s->pidfd = pidfd;
    s->nat_started = net == SANDBOX_NETWORK_NAT;
    s->started_at = now_s();
    s->last_activity_ms = s->spawned_ms = now_ms();
    s->backend_failures = 0;
    s->stop_requested = s->restart_after_stop = s->idle_after_stop = false;
    s->program_changed = false;
    s->limits_refused = false;
    s->last_error[0] = 0;
    return 0;
}

static void site_fail(struct rt_site *s, const char *why)
{
    site_cancel_timer(s);
    site_close_socket(s);
    site_drop_cgroup(s);
    s->state = SITES_RUNTIME_FAILED;
    if (why)
        snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    site_read_tail(s);
    log_error("site %s failed: %s", s->name, s->last_error);
}

static void on_idle_check(struct evloop *loop, struct ev_timer *t, void *data);
static void arm_idle_check(struct rt_site *s, uint64_t ms)
{
    site_cancel_timer(s);
    s->timer = evloop_timer_add(s->rt->loop, ms, on_idle_check, s);
}

static void site_start_sandbox(struct rt_site *s)
{
    struct error err = { 0 };
    site_cancel_timer(s);
    site_unwatch(s);
    int r = site_spawn(s, &err);
    if (r < 0) {
        site_fail(s, err.message);
        return;
    }
    s->state = SITES_RUNTIME_RUNNING;
    log_info("site %s: started (pid %d)", s->name, (int)s->pid);
    if (!s->always_on)
        arm_idle_check(s, (uint64_t)s->idle_seconds * 1000);
}

static void on_kill_grace(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct rt_site *s = data;
    s->timer = NULL;
    log_warning("site %s: did not stop within %d s of SIGTERM; killing it", s->name, GRACE_MS / 1000);
    if (s->cg)
        (void)sandbox_cgroup_kill(s->cg);
    else if (s->pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
}

/* SIGTERM to the sandbox's pid 1 (its reaper forwards it to the program); the exit
 * arrives in on_sandbox_exit. */
static void site_stop_sandbox(struct rt_site *s)
{
    if (s->pidfd < 0 || s->state == SITES_RUNTIME_STOPPING)
        return;
    site_cancel_timer(s);
    s->stop_requested = true;
    s->state = SITES_RUNTIME_STOPPING;
    if (syscall(SYS_pidfd_send_signal, s->pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
        log_warning_errno(errno, "site %s: cannot signal its sandbox", s->name);
    s->timer = evloop_timer_add(s->rt->loop, GRACE_MS, on_kill_grace, s);
}

/* Whether a connection to the site's socket is open now, from /proc/net/unix: the
 * accepted (server-side) sockets carry the listener's path and state 03
 * (connected). One read per idle period: cheap enough for thousands of sites. */
static bool site_has_connections(struct rt_site *s)
{
    _cleanup_free_ char *text = NULL;
    if (read_file("/proc/net/unix", 64 << 20, &text, NULL) < 0)
        return false;
    size_t plen = strlen(s->sock_path);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t len = strlen(line);
        if (len > plen && streq(line + len - plen, s->sock_path) && line[len - plen - 1] == ' ') {
            /* Num RefCount Protocol Flags Type St Inode Path */
            unsigned st = 0;
            if (sscanf(line, "%*s %*s %*s %*s %*s %x", &st) == 1 && st == 3)
                return true;
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

static void on_idle_check(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct rt_site *s = data;
    s->timer = NULL;
    if (s->state != SITES_RUNTIME_RUNNING || s->always_on)
        return;
    uint64_t idle_ms = (uint64_t)s->idle_seconds * 1000, now = now_ms();
    if (now - s->last_activity_ms < idle_ms) {
        arm_idle_check(s, idle_ms - (now - s->last_activity_ms));
        return;
    }
    if (site_has_connections(s)) {
        s->last_activity_ms = now;
        arm_idle_check(s, idle_ms);
        return;
    }
    log_info("site %s: idle for %" PRIu32 " s, stopping its sandbox", s->name, s->idle_seconds);
    site_stop_sandbox(s);
    s->idle_after_stop = true;
}

static void on_backoff(struct evloop *loop, struct ev_timer *t, void *data)
{
    struct rt_site *s = data;
    s->timer = NULL;
    if (s->state == SITES_RUNTIME_STARTING)
        site_start_sandbox(s);
}

static void on_listen_ready(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct rt_site *s = data;
    /* The connection stays in the backlog; the program accepts it. */
    site_unwatch(s);
    if (s->state == SITES_RUNTIME_IDLE) {
        log_info("site %s: a request arrived, starting its sandbox", s->name);
        site_start_sandbox(s);
    }
}

/* Records a crash; true when the site crashed CRASH_MAX times within the window. */
static bool site_count_crash(struct rt_site *s)
{
    uint64_t now = now_ms();
    if (s->n_crashes == CRASH_MAX) {
        memmove(s->crashes, s->crashes + 1, (CRASH_MAX - 1) * sizeof(s->crashes[0]));
        s->n_crashes--;
    }
    s->crashes[s->n_crashes++] = now;
    /* Crashes older than the window no longer count. */
    size_t old = 0;
    while (old < s->n_crashes && now - s->crashes[old] > CRASH_WINDOW_MS)
        old++;
    memmove(s->crashes, s->crashes + old, (s->n_crashes - old) * sizeof(s->crashes[0]));
    s->n_crashes -= old;
    return s->n_crashes >= CRASH_MAX;
}

/* Reaps the sandbox's pid 1. Returns its exit status (128+N for signal N). */
static int site_reap(struct rt_site *s)
{
    siginfo_t si = { 0 };
    int status = -1;
    if (s->pidfd >= 0) {
        evloop_del(s->rt->loop, s->pidfd);
        while (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        s->pidfd = safe_close(s->pidfd);
    }
    s->pid = 0;
    s->last_exit = status;
    return status;
}

/* Whether a connection waits in the site's backlog, accepted by nobody. */
static bool site_has_waiting_connection(struct rt_site *s)
{
    struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
    return s->listen_fd >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

static void site_remove(struct rt_site *s);

/* Fills why with ", out of memory: ..." when the kernel killed a process of the
 * sandbox at its memory limit, else "". The cgroup is the sandbox's own (made at
 * its start, dropped at its exit), so its count is this sandbox's. */
static void site_oom_note(struct rt_site *s, char *why, size_t n)
{
    struct sandbox_usage u;
    why[0] = 0;
    if (!s->cg || sandbox_cgroup_get_usage(s->cg, &u) < 0 || u.oom_kills == SANDBOX_USAGE_UNKNOWN ||
        u.oom_kills == 0)
        return;
    char limit[32] = "";
    if (s->limits.memory_max)
        format_size(s->limits.memory_max, limit, sizeof(limit));
    snprintf(why, n, ", out of memory: killed at %s%s", s->limits.memory_max ? "its memory limit of " : "",
             s->limits.memory_max ? limit : "the host's memory limit");
}

static void on_sandbox_exit(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct rt_site *s = data;
    int status = site_reap(s);
    site_cancel_timer(s);
    char oom[96];
    site_oom_note(s, oom, sizeof(oom));
    /* Anything the program left (exec'd commands, stray children) goes with it. */
    site_drop_cgroup(s);

    if (s->stop_requested) {
        log_info("site %s: sandbox stopped (status %d)", s->name, status);
        bool restart = s->restart_after_stop, idle = s->idle_after_stop;
        s->stop_requested = s->restart_after_stop = s->idle_after_stop = false;
        s->state = SITES_RUNTIME_STOPPED;
        if (!s->runs_code) {
            site_remove(s);   /* turned static: the front serves it alone now */
        } else if (!s->want_running) {
            site_close_socket(s);
        } else if (restart || s->always_on) {
            site_start_sandbox(s);
        } else {
            (void)idle;
            s->state = SITES_RUNTIME_IDLE;
            site_watch(s);
        }
        return;
    }
    if (!s->runs_code) {
        site_remove(s);
        return;
    }
    if (!s->want_running) {
        s->state = SITES_RUNTIME_STOPPED;
        site_close_socket(s);
        return;
    }
    /* An on-demand program may end by itself when it has nothing to do; one that
     * leaves a connection waiting (it daemonized, or is no server) did not, and
     * going back to idle would start it again at once, in a loop, for as long as
     * that connection waits. */
    if (status == 0 && !s->always_on && !site_has_waiting_connection(s)) {
        log_info("site %s: program exited, waiting for the next request", s->name);
        s->state = SITES_RUNTIME_IDLE;
        site_watch(s);
        return;
    }
    if (site_count_crash(s)) {
        char why[256];
        snprintf(why, sizeof(why), "crashed %d times within %d s (last exit status %d%s)%s", CRASH_MAX,
                 CRASH_WINDOW_MS / 1000, status, oom,
                 status == 0 ? ": the program must stay in the foreground and accept on fd 3" : "");
        site_fail(s, why);
        return;
    }
    uint64_t delay = 500ULL << (s->n_crashes - 1);   /* 0.5, 1, 2, 4 s */
    s->restarts++;
    s->state = SITES_RUNTIME_STARTING;
    log_warning("site %s: sandbox exited with status %d%s; restarting in %" PRIu64 " ms", s->name, status, oom,
                delay);
    s->timer = evloop_timer_add(s->rt->loop, delay, on_backoff, s);
}

/* New limits on the running sandbox. One the kernel refuses (v1: a memory limit
 * below what is in use) is said in `site show` until the next start, which
 * makes the cgroup afresh with the record's limits. */
static void site_set_live_limits(struct rt_site *s)
{
    int r = sandbox_cgroup_set_limits(s->cg, &s->limits);
    if (r >= 0) {
        if (s->limits_refused)
            s->last_error[0] = 0;
        s->limits_refused = false;
        return;
    }
    snprintf(s->last_error, sizeof(s->last_error),
             "cannot apply its new limits to the running sandbox (%s%s); they apply from its next start",
             strerror(-r), r == -EBUSY ? ": more memory in use than the new memory limit" : "");
    s->limits_refused = true;
    log_warning("site %s: %s", s->name, s->last_error);
}

/* Brings the site in line with its record. */
static void site_apply(struct rt_site *s)
{
    if (!s->want_running || !s->runs_code) {
        /* While stopping, the timer is the SIGKILL after the grace period: kept,
         * or a program that ignores SIGTERM would never be ended. */
        if (s->state != SITES_RUNTIME_STOPPING)
            site_cancel_timer(s);
        /* A stop ends a crash loop: the next start gets its five tries again. */
        s->n_crashes = 0;
        if (s->pidfd >= 0) {
            site_stop_sandbox(s);
        } else {
            site_close_socket(s);
            site_drop_cgroup(s);
            s->state = SITES_RUNTIME_STOPPED;
        }
        return;
    }
    switch (s->state) {
    case SITES_RUNTIME_FAILED:
    case SITES_RUNTIME_STARTING:
        break;   /* only start/restart clears failed; a backoff runs its course */
    case SITES_RUNTIME_STOPPING:
        break;   /* on_sandbox_exit decides from the record */
    case SITES_RUNTIME_RUNNING:
        if (s->program_changed) {
            /* New command, PHP settings or network: the requests that arrive
             * meanwhile wait in the socket's backlog, as during any start. */
            log_info("site %s: its program or network changed, restarting its sandbox", s->name);
            site_stop_sandbox(s);
            s->restart_after_stop = true;
            break;
        }
        if (s->cg)
            site_set_live_limits(s);
        if (s->always_on) {
            site_cancel_timer(s);
        } else {
            /* Counted from the last activity: a shorter idle time applies now,
             * not once the deadline of the old one has passed. */
            uint64_t idle_ms = (uint64_t)s->idle_seconds * 1000, quiet_ms = now_ms() - s->last_activity_ms;
            arm_idle_check(s, quiet_ms < idle_ms ? idle_ms - quiet_ms : 0);
        }
        break;
    case SITES_RUNTIME_STOPPED:
    case SITES_RUNTIME_IDLE: {
        int r = site_open_socket(s);
        if (r < 0) {
            char why[256];
            snprintf(why, sizeof(why), "cannot create its socket %s: %s", s->sock_path, strerror(-r));
            site_fail(s, why);
            return;
        }
        if (s->always_on) {
            site_start_sandbox(s);
        } else {
            s->state = SITES_RUNTIME_IDLE;
            site_watch(s);
        }
        break;
    }
    }
}

static void site_free(struct rt_site *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_exec_pidfds; i++)
        safe_close(s->exec_pidfds[i]);
    free(s->exec_pidfds);
    free(s->name);
    free(s->cmd);
    free(s->php_settings);
    free(s->site_dir);
    free(s);
}

/* Copies what the runtime uses from a record. */
static int site_update_record(struct rt_site *s, const struct store_site *rec)
{
    char *cmd = rec->cmd ? strdup(rec->cmd) : NULL;
    char *php_settings = rec->php_settings ? strdup(rec->php_settings) : NULL;
    if ((rec->cmd && !cmd) || (rec->php_settings && !php_settings)) {
        free(cmd);
        free(php_settings);
        return -ENOMEM;
    }
    bool php = streq_ptr(rec->type, "php");
    const char *network = rec->network ? rec->network : "none";
    /* A sandbox's network is fixed at its start: a new one (say none, to cut a
     * site off) needs a new sandbox, like a new program does. */
    if (s->pidfd >= 0 && (php != s->php || !streq_ptr(cmd, s->cmd) || !streq_ptr(php_settings, s->php_settings) ||
                          strncmp(network, s->network, sizeof(s->network)) != 0))
        s->program_changed = true;
    free(s->cmd);
    s->cmd = cmd;
    free(s->php_settings);
    s->php_settings = php_settings;
    s->uid = rec->uid;
    s->php = php;
    s->runs_code = php || streq_ptr(rec->type, "app");
    s->want_running = streq_ptr(rec->desired_state, "running");
    s->always_on = rec->always_on;
    s->idle_seconds = rec->idle_seconds ? rec->idle_seconds : 300;
    snprintf(s->network, sizeof(s->network), "%s", network);
    s->limits = (struct sandbox_limits){ rec->memory_max, rec->cpu_millis, rec->pids_max, rec->io_read_bps,
                                         rec->io_write_bps, s->rt->io_device };
    return 0;
}

static int site_add(struct sites_runtime *rt, const struct store_site *rec, struct rt_site **ret)
{
    struct rt_site *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    char dir[4096];
    sites_dir(rt->sites, rec->name, dir, sizeof(dir));
    s->rt = rt;
    s->listen_fd = s->pidfd = -1;
    s->last_exit = -1;
    s->name = strdup(rec->name);
    s->site_dir = strdup(dir);
    if (!s->name || !s->site_dir || site_update_record(s, rec) < 0) {
        site_free(s);
        return -ENOMEM;
    }
    snprintf(s->sock_path, sizeof(s->sock_path), "%s/%s.sock", rt->sites_run_dir, rec->name);
    s->next = rt->list;
    rt->list = s;
    *ret = s;
    return 0;
}

/* Kills the site's sandbox now (site removed, or berthd shutting down past the grace
 * period) and reaps it. */
static void site_kill_now(struct rt_site *s)
{
    site_cancel_timer(s);
    if (s->cg)
        (void)sandbox_cgroup_kill(s->cg);
    else if (s->pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
    if (s->pidfd >= 0)
        (void)site_reap(s);
    site_drop_cgroup(s);
    site_close_socket(s);
    s->state = SITES_RUNTIME_STOPPED;
}

/* Kills what runs, removes what the site left (socket, cgroup, PHP configuration)
 * and forgets it: the site was removed, or no longer runs code. */
static void site_remove(struct rt_site *s)
{
    struct sites_runtime *rt = s->rt;
    site_kill_now(s);
    char path[4300];
    snprintf(path, sizeof(path), "%s/php/%s/php-fpm.conf", rt->run_dir, s->name);
    (void)unlink(path);
    *strrchr(path, '/') = 0;
    (void)rmdir(path);
    for (struct rt_site **p = &rt->list; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    site_free(s);
}

int sites_runtime_new(const struct sites_runtime_config *cfg, struct sites_runtime **ret)
{
    struct sites_runtime *rt = calloc(1, sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    rt->loop = cfg->loop;
    rt->sites = cfg->sites;
    rt->store = cfg->store;
    rt->front_uid = cfg->front_uid;
    rt->front_gid = cfg->front_gid;
    rt->run_dir = strdup(cfg->run_dir);
    if (!rt->run_dir || asprintf(&rt->sites_run_dir, "%s/sites", cfg->run_dir) < 0) {
        rt->sites_run_dir = NULL;
        sites_runtime_free(rt);
        return -ENOMEM;
    }
    char parent[32];
    if (cfg->cgroup_parent) {
        snprintf(parent, sizeof(parent), "%s", cfg->cgroup_parent);
    } else if (streq(cfg->run_dir, "/run/berth")) {
        snprintf(parent, sizeof(parent), "berth");
    } else {
        uint32_t h = 2166136261u;   /* FNV-1a */
        for (const char *p = cfg->run_dir; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(parent, sizeof(parent), "berth-%08x", h);
    }
    int r = cfg->nat ? sandbox_nat_new(cfg->nat, &rt->nat) : 0;
    if (r < 0) {
        sites_runtime_free(rt);
        return r;
    }
    r = mkdir_p(rt->sites_run_dir, 0755);
    if (r >= 0 && chmod(rt->sites_run_dir, 0755) < 0)
        r = -errno;
    if (r >= 0)
        r = sandbox_cgroup_root_open(parent, &rt->cg_root);
    if (r < 0) {
        sites_runtime_free(rt);
        return r;
    }
    char sites_root[4096];
    sites_dir(rt->sites, "", sites_root, sizeof(sites_root));
    if (sandbox_block_device(sites_root, &rt->io_device) < 0)
        rt->io_device = 0;
    *ret = rt;
    return 0;
}

int sites_runtime_start_all(struct sites_runtime *rt)
{
    struct store_site *list;
    size_t n;
    int r = store_site_list(rt->store, NULL, &list, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        /* A berthd killed with SIGKILL leaves its sandboxes running (their pid 1 was
         * re-parented): their cgroup finds them all. */
        struct sandbox_cgroup *cg = NULL;
        if (sandbox_cgroup_create(rt->cg_root, list[i].name, NULL, &cg) >= 0) {
            struct sandbox_usage u;
            bool busy = sandbox_cgroup_get_usage(cg, &u) >= 0 && u.pids_current > 0 &&
                        u.pids_current != SANDBOX_USAGE_UNKNOWN;
            if (busy)
                log_notice("site %s: killing the sandbox a previous berthd left running", list[i].name);
            r = sandbox_cgroup_kill(cg);
            /* The killed pid 1 is re-parented to init, which reaps it a moment later;
             * until then the v1 hierarchies may refuse the rmdir. */
            for (int tries = 0; r >= 0 && tries < 50; tries++) {
                r = sandbox_cgroup_remove(cg);
                if (r != -EBUSY)
                    break;
                usleep(20000);
            }
            if (r < 0)
                log_warning_errno(r, "site %s: cannot remove a leftover cgroup", list[i].name);
            sandbox_cgroup_free(cg);
        }
        if (!site_type_runs_code(list[i].type))
            continue;
        struct rt_site *s;
        if ((r = site_add(rt, &list[i], &s)) < 0)
            break;
        site_apply(s);
    }
    /* Network nat: a bridge left by a berthd that was killed is taken over (made
     * afresh, table reloaded) so that it is removed at our shutdown; with nat sites
     * in the store it is made now, so their first request does not pay for it. */
    bool want_nat = false;
    for (size_t i = 0; i < n; i++)
        want_nat |= site_type_runs_code(list[i].type) && streq_ptr(list[i].network, "nat");
    if (r >= 0 && rt->nat && (want_nat || sandbox_nat_leftover(rt->nat))) {
        struct error err = { 0 };
        if (runtime_nat_setup(rt, "(start-up)", &err) < 0)
            log_error("%s", err.message);
    }
    store_site_list_free(list, n);
    return r < 0 ? r : 0;
}

void sites_runtime_site_changed(struct sites_runtime *rt, enum sites_change change,
                                const struct store_site *rec)
{
    struct rt_site *s = site_find(rt, rec->name);
    if (change == SITES_CHANGE_REMOVE) {
        if (s)
            site_remove(s);
        return;
    }
    if (!s) {
        if (!site_type_runs_code(rec->type))
            return;
        if (site_add(rt, rec, &s) < 0) {
            log_error("site %s: out of memory", rec->name);
            return;
        }
    } else if (site_update_record(s, rec) < 0) {
        log_error("site %s: out of memory", rec->name);
        return;
    }
    site_apply(s);
    /* Turned static with nothing running: the runtime forgets it (with a sandbox,
     * on_sandbox_exit does once it is gone). */
    if (!s->runs_code && s->pidfd < 0)
        site_remove(s);
}

int sites_runtime_start(struct sites_runtime *rt, const char *name, struct error *err)
{
    struct rt_site *s = site_find(rt, name);
    if (!s || !s->runs_code)
        return 0;
    if (s->state == SITES_RUNTIME_FAILED || s->state == SITES_RUNTIME_STARTING) {
        site_cancel_timer(s);
        s->state = SITES_RUNTIME_STOPPED;
        s->n_crashes = 0;
        s->restarts = 0;
    }
    s->last_error[0] = 0;
    site_apply(s);
    if (s->state == SITES_RUNTIME_FAILED)
        return error_set(err, -EIO, "%s", s->last_error);
    return 0;
}

int sites_runtime_restart(struct sites_runtime *rt, const char *name, struct error *err)
{
    struct rt_site *s = site_find(rt, name);
    if (!s || !s->runs_code)
        return 0;
    if (s->pidfd >= 0 && s->want_running) {
        s->n_crashes = 0;
        s->restarts = 0;
        site_stop_sandbox(s);
        s->restart_after_stop = true;
        return 0;
    }
    return sites_runtime_start(rt, name, err);
}

bool sites_runtime_io_limits_available(const struct sites_runtime *rt, char *why, size_t n)
{
    if (!rt->io_device) {
        snprintf(why, n, "the sites' directory is not on a disk berth can limit (tmpfs, overlay or a network "
                 "file system)");
        return false;
    }
    if (!sandbox_cgroup_root_has_io(rt->cg_root)) {
        snprintf(why, n, "the kernel's io cgroup controller (blkio on cgroup v1) is not available to berthd");
        return false;
    }
    return true;
}

int sites_runtime_set_limits(struct sites_runtime *rt, const char *name, const struct sandbox_limits *limits)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return -ENOENT;
    s->limits = *limits;
    return s->cg ? sandbox_cgroup_set_limits(s->cg, limits) : 0;
}

void sites_runtime_note_activity(struct sites_runtime *rt, const char *name)
{
    struct rt_site *s = site_find(rt, name);
    if (s)
        s->last_activity_ms = now_ms();
}

void sites_runtime_note_backend(struct sites_runtime *rt, const char *name, uint64_t answered,
                                uint64_t failed)
{
    struct rt_site *s = site_find(rt, name);
    if (!s || !s->runs_code)
        return;
    if (answered > 0) {
        s->backend_failures = 0;
        return;
    }
    s->backend_failures += failed;
    uint64_t now = now_ms();
    /* A fresh sandbox gets time to come up; a site restarted for this recently
     * is not restarted again and again (its crash handling still applies). */
    if (s->state != SITES_RUNTIME_RUNNING || s->backend_failures < SITES_BACKEND_FAILURES_MAX ||
        now - s->spawned_ms < 5000 ||
        (s->failure_restart_ms && now - s->failure_restart_ms < SITES_BACKEND_RESTART_MIN_MS))
        return;
    log_warning("site %s: its %s failed %" PRIu64 " requests in a row and answered none; restarting it",
                s->name, s->php ? "PHP pool" : "program", s->backend_failures);
    s->backend_failures = 0;
    s->failure_restart_ms = now;
    s->restarts++;
    site_stop_sandbox(s);
    s->restart_after_stop = true;
}

int sites_runtime_get_status(struct sites_runtime *rt, const char *name, struct sites_runtime_status *ret)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return -ENOENT;
    struct sites_runtime_status st = {
        .state = s->state, .pid = s->pid, .started_at = s->started_at, .restarts = s->restarts,
        .last_exit = s->last_exit,
    };
    if (s->cg && sandbox_cgroup_get_usage(s->cg, &st.usage) >= 0)
        st.has_usage = true;
    st.cgroup_serial = s->cgroup_serial;
    snprintf(st.socket_path, sizeof(st.socket_path), "%s", s->sock_path);
    snprintf(st.last_error, sizeof(st.last_error), "%s", s->last_error);
    if (s->state == SITES_RUNTIME_FAILED)
        snprintf(st.last_output, sizeof(st.last_output), "%s", s->last_output);
    *ret = st;
    return 0;
}

int sites_runtime_exec_target(struct sites_runtime *rt, const char *name, int *ret_pidfd,
                              struct sandbox_cgroup **ret_cgroup)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return -ENOENT;
    /* A cgroup that exists has its limits already (sites_runtime_set_limits
     * writes them as they change): a command joining the sandbox only needs it. */
    int r = s->cg ? 0 : site_ensure_cgroup(s);
    if (r < 0)
        return r;
    *ret_pidfd = s->state == SITES_RUNTIME_RUNNING ? s->pidfd : -1;
    *ret_cgroup = s->cg;
    return 0;
}

int sites_runtime_exec_settings(struct sites_runtime *rt, const char *name, uid_t *ret_uid,
                                enum sandbox_network *ret_network, struct sandbox_nat **ret_nat,
                                const char **ret_site_dir, int *ret_net_pidfd)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return -ENOENT;
    enum sandbox_network net;
    int r = sandbox_network_from_string(s->network, &net);
    if (r < 0)
        return r;
    struct error err = { 0 };
    if (net == SANDBOX_NETWORK_NAT && (r = runtime_nat_setup(rt, name, &err)) < 0) {
        log_error("%s", err.message);
        return r;
    }
    *ret_uid = s->uid;
    *ret_network = net;
    *ret_nat = rt->nat;
    *ret_site_dir = s->site_dir;
    *ret_net_pidfd = net == SANDBOX_NETWORK_NAT ? site_network_holder(s) : -1;
    return 0;
}

void sites_runtime_exec_started(struct sites_runtime *rt, const char *name, int pidfd)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return;
    int *grown = realloc(s->exec_pidfds, (s->n_exec_pidfds + 1) * sizeof(int));
    if (!grown)
        return;   /* the next fresh sandbox makes a veth of its own: worse, not wrong */
    s->exec_pidfds = grown;
    int fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
    if (fd >= 0)
        s->exec_pidfds[s->n_exec_pidfds++] = fd;
}

void sites_runtime_exec_done(struct sites_runtime *rt, const char *name)
{
    struct rt_site *s = site_find(rt, name);
    if (!s)
        return;
    /* Forget the exec sandboxes that are gone (reaped, or exited). */
    size_t kept = 0;
    for (size_t i = 0; i < s->n_exec_pidfds; i++) {
        if (pidfd_running(s->exec_pidfds[i]))
            s->exec_pidfds[kept++] = s->exec_pidfds[i];
        else
            safe_close(s->exec_pidfds[i]);
    }
    s->n_exec_pidfds = kept;
    if (s->pidfd >= 0 || !s->cg)
        return;
    /* Other commands may still run in it: then it stays until the last one ends. */
    struct sandbox_usage u;
    if (sandbox_cgroup_get_usage(s->cg, &u) >= 0 && u.pids_current > 0 && u.pids_current != SANDBOX_USAGE_UNKNOWN)
        return;
    if (sandbox_cgroup_remove(s->cg) >= 0) {
        sandbox_cgroup_free(s->cg);
        s->cg = NULL;
    }
}

int sites_runtime_session_spawn(struct sites_runtime *rt, const struct store_site *site,
                                const struct sites_session *how, struct sandbox_error *err, pid_t *ret_pid,
                                int *ret_pidfd)
{
    struct sandbox_config cfg;
    sandbox_config_init(&cfg);
    cfg.name = site->name;
    cfg.uid = site->uid;
    cfg.gid = site->uid;
    cfg.argv = how->argv;
    static const char *const envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/site", "LANG=C.UTF-8", NULL };
    cfg.envp = how->envp ? how->envp : envp;
    cfg.stdin_fd = how->stdin_fd;
    cfg.stdout_fd = how->stdout_fd;
    cfg.stderr_fd = how->stderr_fd;
    cfg.stdin_ctty = how->controlling_tty;
    char dir[4096];
    struct rt_site *s = site_find(rt, site->name);
    if (s) {
        /* A site that runs code: like `site exec`, in its running sandbox when
         * there is one, else a fresh one with the site's network. */
        int target, net_pidfd;
        struct sandbox_cgroup *cg;
        uid_t uid;
        enum sandbox_network net;
        struct sandbox_nat *nat;
        const char *site_dir;
        int r = sites_runtime_exec_target(rt, site->name, &target, &cg);
        if (r >= 0)
            r = sites_runtime_exec_settings(rt, site->name, &uid, &net, &nat, &site_dir, &net_pidfd);
        if (r < 0)
            return r;
        cfg.site_dir = site_dir;
        cfg.network = net;
        cfg.nat = nat;
        cfg.cgroup = cg;
        cfg.join_pidfd = target;
        cfg.join_net_pidfd = net_pidfd;
        r = sandbox_spawn(&cfg, err, ret_pid, ret_pidfd);
        if (r < 0) {
            sites_runtime_exec_done(rt, site->name);
            return r;
        }
        if (target < 0 && net == SANDBOX_NETWORK_NAT)
            sites_runtime_exec_started(rt, site->name, *ret_pidfd);
        return 0;
    }
    /* A static site: a fresh sandbox without network, in a cgroup of the site's
     * limits that lives as long as its sessions. */
    struct session_cg *sc = rt->session_cgs;
    while (sc && !streq(sc->name, site->name))
        sc = sc->next;
    if (!sc) {
        sc = calloc(1, sizeof(*sc));
        if (!sc)
            return -ENOMEM;
        snprintf(sc->name, sizeof(sc->name), "%s", site->name);
        struct sandbox_limits limits = { .memory_max = site->memory_max, .cpu_millis = site->cpu_millis,
                                         .pids_max = site->pids_max, .io_read_bps = site->io_read_bps,
                                         .io_write_bps = site->io_write_bps, .io_device = rt->io_device };
        int r = sandbox_cgroup_create(rt->cg_root, site->name, &limits, &sc->cg);
        if (r < 0) {
            free(sc);
            return r;
        }
        sc->next = rt->session_cgs;
        rt->session_cgs = sc;
    }
    sites_dir(rt->sites, site->name, dir, sizeof(dir));
    cfg.site_dir = dir;
    cfg.network = SANDBOX_NETWORK_NONE;
    cfg.cgroup = sc->cg;
    sc->sessions++;
    int r = sandbox_spawn(&cfg, err, ret_pid, ret_pidfd);
    if (r < 0)
        sites_runtime_session_done(rt, site->name);
    return r;
}

void sites_runtime_session_done(struct sites_runtime *rt, const char *name)
{
    for (struct session_cg **p = &rt->session_cgs; *p; p = &(*p)->next) {
        struct session_cg *sc = *p;
        if (!streq(sc->name, name))
            continue;
        if (sc->sessions > 0 && --sc->sessions > 0)
            return;
        *p = sc->next;
        /* The site may run code by now (its type changed during the session): its
         * runtime owns the cgroup then. */
        if (!site_find(rt, name)) {
            int r = sandbox_cgroup_kill(sc->cg);
            if (r >= 0)
                r = sandbox_cgroup_remove(sc->cg);
            if (r < 0)
                log_warning_errno(r, "site %s: cannot remove its sessions' cgroup", name);
        }
        sandbox_cgroup_free(sc->cg);
        free(sc);
        return;
    }
    sites_runtime_exec_done(rt, name);
}

void sites_runtime_free(struct sites_runtime *rt)
{
    if (!rt)
        return;
    /* SIGTERM to every sandbox at once, then wait for all of them together, so a
     * shutdown with many sites takes one grace period, not one per site. */
    size_t n = 0;
    for (struct rt_site *s = rt->list; s; s = s->next) {
        site_cancel_timer(s);
        if (s->pidfd >= 0) {
            (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGTERM, NULL, 0);
            n++;
        }
    }
    struct pollfd *pfds = n ? calloc(n, sizeof(*pfds)) : NULL;
    uint64_t deadline = now_ms() + GRACE_MS;
    while (pfds) {
        size_t k = 0;
        for (struct rt_site *s = rt->list; s; s = s->next)
            if (s->pidfd >= 0)
                pfds[k++] = (struct pollfd){ .fd = s->pidfd, .events = POLLIN };
        uint64_t now = now_ms();
        if (k == 0 || now >= deadline)
            break;
        if (poll(pfds, k, (int)(deadline - now)) < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < k; i++) {
            if (!(pfds[i].revents & POLLIN))
                continue;
            for (struct rt_site *s = rt->list; s; s = s->next)
                if (s->pidfd == pfds[i].fd)
                    (void)site_reap(s);
        }
    }
    free(pfds);
    /* Static sites' sessions that outlived their broker go with their cgroups. */
    while (rt->session_cgs) {
        struct session_cg *sc = rt->session_cgs;
        rt->session_cgs = sc->next;
        if (sandbox_cgroup_kill(sc->cg) >= 0)
            (void)sandbox_cgroup_remove(sc->cg);
        sandbox_cgroup_free(sc->cg);
        free(sc);
    }
    /* What is left is killed; sockets and PHP configurations go with the sites. */
    while (rt->list)
        site_remove(rt->list);
    char php_dir[4200];
    snprintf(php_dir, sizeof(php_dir), "%s/php", rt->run_dir);
    (void)rmdir(php_dir);   /* fails, harmlessly, unless empty */
    /* Every sandbox is gone, and with their namespaces their veths. */
    if (rt->nat_up) {
        int r = sandbox_nat_teardown(rt->nat);
        if (r < 0)
            log_warning_errno(r, "cannot remove network nat's bridge and nft table");
    }
    sandbox_nat_free(rt->nat);
    /* The sites' cgroups went with them: their parent goes too, or every berthd
     * with a run dir of its own would leave one behind in each hierarchy. */
    int r = sandbox_cgroup_root_remove(rt->cg_root);
    if (r < 0)
        log_warning_errno(r, "cannot remove the sites' parent cgroup");
    sandbox_cgroup_root_free(rt->cg_root);
    free(rt->sites_run_dir);
    free(rt->run_dir);
    free(rt);
}

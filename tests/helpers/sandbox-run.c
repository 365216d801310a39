/* sandbox-run: a small command line over the sandbox library, for tests and
 * benchmarks. Prints nothing of its own on success and exits with the program's
 * status (128+N when a signal N killed it); 125 when the sandbox could not start. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common/fs.h"
#include "common/util.h"
#include "sandbox/sandbox.h"

static _noreturn_ void usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: sandbox-run --name N --uid U [--gid G] --site-dir D [--memory M] [--cpu C]\n"
            "                   [--pids N] [--network none|host] [--cgroup-parent P]\n"
            "                   [--ro-bind PATH]... [--env K=V]... [--no-reaper] [--join-pid PID]\n"
            "                   [--pass-fd FD]... [--listen-env] [--pid-file F] [--usage-file F]\n"
            "                   [--keep-cgroup] [--timeout MS] -- CMD [ARG]...\n"
            "                   [--bench N]\n"
            "--timeout: after MS milliseconds, kill every process of the site's cgroup\n"
            "--bench: start and reap the sandbox N times in this process (as berthd does) and\n"
            "         print the median and 90th percentile start-to-exit time\n");
    exit(status);
}

static int fail(int r, const char *what)
{
    fprintf(stderr, "sandbox-run: %s: %s\n", what, strerror(-r));
    return 125;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_msf(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run_bench(const struct sandbox_config *cfg, uint64_t n, struct sandbox_cgroup *cg,
                     struct sandbox_cgroup_root *root)
{
    double *t = calloc(n, sizeof(double));
    int ret = 0;
    if (!t)
        return 125;
    for (uint64_t i = 0; i < n; i++) {
        struct sandbox_error err = { 0 };
        pid_t pid;
        int pidfd;
        double t0 = now_msf();
        int r = sandbox_spawn(cfg, &err, &pid, &pidfd);
        if (r < 0) {
            fprintf(stderr, "sandbox-run: spawn failed at step %s: %s\n",
                    sandbox_step_to_string(err.step), strerror(err.error));
            ret = 125;
            break;
        }
        siginfo_t si;
        while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        close(pidfd);
        t[i] = now_msf() - t0;
    }
    if (ret == 0) {
        qsort(t, n, sizeof(double), cmp_double);
        printf("sandbox start-to-exit over %" PRIu64 " runs: median %.2f ms, p90 %.2f ms\n", n,
               t[n / 2], t[n * 9 / 10]);
    }
    free(t);
    if (cg) {
        (void)sandbox_cgroup_kill(cg);
        (void)sandbox_cgroup_remove(cg);
    }
    sandbox_cgroup_free(cg);
    sandbox_cgroup_root_free(root);
    return ret;
}

int main(int argc, char **argv)
{
    enum { O_NAME = 256, O_UID, O_GID, O_SITE, O_MEM, O_CPU, O_PIDS, O_NET, O_PARENT, O_RO,
           O_ENV, O_NOREAP, O_JOIN, O_PASS, O_LISTEN, O_PIDFILE, O_USAGE, O_KEEP, O_TIMEOUT, O_BENCH };
    static const struct option opts[] = {
        { "name", required_argument, NULL, O_NAME }, { "uid", required_argument, NULL, O_UID },
        { "gid", required_argument, NULL, O_GID }, { "site-dir", required_argument, NULL, O_SITE },
        { "memory", required_argument, NULL, O_MEM }, { "cpu", required_argument, NULL, O_CPU },
        { "pids", required_argument, NULL, O_PIDS }, { "network", required_argument, NULL, O_NET },
        { "cgroup-parent", required_argument, NULL, O_PARENT },
        { "ro-bind", required_argument, NULL, O_RO }, { "env", required_argument, NULL, O_ENV },
        { "no-reaper", no_argument, NULL, O_NOREAP }, { "join-pid", required_argument, NULL, O_JOIN },
        { "pass-fd", required_argument, NULL, O_PASS }, { "listen-env", no_argument, NULL, O_LISTEN },
        { "pid-file", required_argument, NULL, O_PIDFILE },
        { "usage-file", required_argument, NULL, O_USAGE },
        { "keep-cgroup", no_argument, NULL, O_KEEP }, { "help", no_argument, NULL, 'h' },
        { "timeout", required_argument, NULL, O_TIMEOUT },
        { "bench", required_argument, NULL, O_BENCH },
        { 0 },
    };
    struct sandbox_config cfg;
    struct sandbox_limits limits = { 0 };
    const char *parent = NULL, *pid_file = NULL, *usage_file = NULL;
    struct sandbox_bind ro[64];
    const char *env[64];
    int pass[64];
    size_t n_ro = 0, n_env = 0, n_pass = 0;
    bool want_cgroup = false, keep = false, gid_set = false;
    uint64_t v;
    pid_t join_pid = 0;
    uint64_t timeout_ms = 0, bench = 0;

    sandbox_config_init(&cfg);
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) >= 0) {
        switch (c) {
        case O_NAME: cfg.name = optarg; break;
        case O_UID:
            if (parse_uint(optarg, 1, UINT32_MAX - 1, &v) < 0)
                usage(2);
            cfg.uid = (uid_t)v;
            break;
        case O_GID:
            if (parse_uint(optarg, 1, UINT32_MAX - 1, &v) < 0)
                usage(2);
            cfg.gid = (gid_t)v;
            gid_set = true;
            break;
        case O_SITE: cfg.site_dir = optarg; break;
        case O_MEM:
            if (parse_size(optarg, &limits.memory_max) < 0)
                usage(2);
            want_cgroup = true;
            break;
        case O_CPU:
            if (parse_cpu(optarg, &limits.cpu_millis) < 0)
                usage(2);
            want_cgroup = true;
            break;
        case O_PIDS:
            if (parse_uint(optarg, 1, UINT32_MAX, &limits.pids_max) < 0)
                usage(2);
            want_cgroup = true;
            break;
        case O_NET:
            if (sandbox_network_from_string(optarg, &cfg.network) < 0)
                usage(2);
            break;
        case O_PARENT: parent = optarg; want_cgroup = true; break;
        case O_RO:
            if (n_ro + 1 >= ARRAY_SIZE(ro))
                usage(2);
            ro[n_ro++] = (struct sandbox_bind){ .source = optarg };
            break;
        case O_ENV:
            if (n_env + 1 >= ARRAY_SIZE(env))
                usage(2);
            env[n_env++] = optarg;
            break;
        case O_NOREAP: cfg.no_reaper = true; break;
        case O_JOIN:
            if (parse_uint(optarg, 1, INT32_MAX, &v) < 0)
                usage(2);
            join_pid = (pid_t)v;
            break;
        case O_PASS:
            if (n_pass >= ARRAY_SIZE(pass) || parse_uint(optarg, 0, 1 << 20, &v) < 0)
                usage(2);
            pass[n_pass++] = (int)v;
            break;
        case O_LISTEN: cfg.listen_env = true; break;
        case O_PIDFILE: pid_file = optarg; break;
        case O_USAGE: usage_file = optarg; want_cgroup = true; break;
        case O_KEEP: keep = true; break;
        case O_BENCH:
            if (parse_uint(optarg, 1, 100000, &bench) < 0)
                usage(2);
            break;
        case O_TIMEOUT:
            if (parse_uint(optarg, 1, INT32_MAX, &timeout_ms) < 0)
                usage(2);
            want_cgroup = true;
            break;
        case 'h': usage(0);
        default: usage(2);
        }
    }
    if (optind >= argc || !cfg.name || !cfg.uid || (!cfg.site_dir && !join_pid))
        usage(2);
    if (!gid_set)
        cfg.gid = (gid_t)cfg.uid;
    env[n_env] = NULL;
    cfg.ro_binds = ro;
    cfg.n_ro_binds = n_ro;
    cfg.envp = env;
    cfg.argv = (const char *const *)argv + optind;
    cfg.fds = pass;
    cfg.n_fds = n_pass;
    cfg.stdin_fd = 0;
    cfg.stdout_fd = 1;
    cfg.stderr_fd = 2;

    _cleanup_close_ int join_fd = -1;
    if (join_pid) {
        join_fd = (int)syscall(SYS_pidfd_open, join_pid, 0);
        if (join_fd < 0)
            return fail(-errno, "pidfd_open");
        cfg.join_pidfd = join_fd;
        keep = true;   /* the cgroup belongs to the running sandbox */
    }

    struct sandbox_cgroup_root *root = NULL;
    struct sandbox_cgroup *cg = NULL;
    int r;
    if (want_cgroup) {
        if ((r = sandbox_cgroup_root_open(parent ? parent : "berth-run", &root)) < 0)
            return fail(r, "cgroup root");
        if ((r = sandbox_cgroup_create(root, cfg.name, join_pid ? NULL : &limits, &cg)) < 0) {
            sandbox_cgroup_root_free(root);
            return fail(r, "cgroup create");
        }
        cfg.cgroup = cg;
    }

    struct sandbox_error err = { 0 };
    pid_t pid;
    int pidfd;
    if (bench)
        return run_bench(&cfg, bench, cg, root);
    r = sandbox_spawn(&cfg, &err, &pid, &pidfd);
    if (r < 0) {
        fprintf(stderr, "sandbox-run: spawn failed at step %s: %s\n",
                sandbox_step_to_string(err.step), strerror(err.error));
        if (cg && !keep)
            (void)sandbox_cgroup_remove(cg);
        sandbox_cgroup_free(cg);
        sandbox_cgroup_root_free(root);
        return 125;
    }
    if (pid_file) {
        char line[32];
        int n = snprintf(line, sizeof(line), "%d\n", pid);
        /* atomic, so a reader never sees a half-written pid */
        if ((r = write_file_atomic(pid_file, line, (size_t)n, 0644)) < 0)
            fprintf(stderr, "sandbox-run: %s: %s\n", pid_file, strerror(-r));
    }

    if (timeout_ms) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        if (poll(&p, 1, (int)timeout_ms) == 0 && (r = sandbox_cgroup_kill(cg)) < 0)
            fprintf(stderr, "sandbox-run: cgroup kill: %s\n", strerror(-r));
    }
    siginfo_t si = { 0 };
    while (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    close(pidfd);
    int status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;

    if (cg) {
        if (usage_file) {
            struct sandbox_usage u;
            FILE *f = fopen(usage_file, "we");
            if (f && sandbox_cgroup_get_usage(cg, &u) >= 0)
                fprintf(f, "memory_current=%" PRIu64 " memory_peak=%" PRIu64 " cpu_usec=%" PRIu64
                        " pids_current=%" PRIu64 " oom_kills=%" PRIu64 "\n",
                        u.memory_current, u.memory_peak, u.cpu_usec, u.pids_current, u.oom_kills);
            if (f)
                fclose(f);
        }
        if (!keep) {
            (void)sandbox_cgroup_kill(cg);
            if ((r = sandbox_cgroup_remove(cg)) < 0)
                fprintf(stderr, "sandbox-run: cgroup remove: %s\n", strerror(-r));
        }
    }
    sandbox_cgroup_free(cg);
    sandbox_cgroup_root_free(root);
    return status;
}

/* sandbox: runs a site's program in a fresh sandbox (mount, pid, ipc, uts, net and
 * cgroup namespaces, a root built on a tmpfs, no capabilities, the site's uid,
 * no_new_privs, a seccomp filter) and manages the site's cgroup (v1, hybrid or v2).
 *
 * Used by berthd, which is single-threaded and root while it calls these functions
 * (clone() in a threaded process would copy only the calling thread and any lock held
 * by another one). The design, step by step, is in docs/internals/sandbox.md.
 *
 * All functions return >= 0 on success or a negative errno; out-parameters (ret_*)
 * are left untouched on failure. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- cgroups ---------------------------------------------------------------- */

/* How the host's cgroup file systems are laid out, detected once at start-up. */
enum sandbox_cgroup_mode {
    SANDBOX_CGROUP_V1,      /* only v1 hierarchies (kill by freeze + SIGKILL loop) */
    SANDBOX_CGROUP_HYBRID,  /* v1 controllers + a controller-less v2 at .../unified,
                               used for membership, CLONE_INTO_CGROUP and cgroup.kill */
    SANDBOX_CGROUP_V2,      /* unified hierarchy only */
};

/* Resource limits of one site. A zero field means "no limit". */
struct sandbox_limits {
    uint64_t memory_max;    /* bytes of memory (swap is not allowed on top) */
    uint32_t cpu_millis;    /* CPU bandwidth in thousandths of one CPU (500 = half) */
    uint64_t pids_max;      /* tasks (processes + threads) */
    uint64_t io_read_bps;   /* reads from io_device, bytes per second */
    uint64_t io_write_bps;  /* writes to io_device, bytes per second */
    dev_t io_device;        /* the disk the site's files are on (sandbox_block_device);
                             * 0: unknown, and then no disk limit can be set */
};

/* The whole disk (not the partition) holding path, as the io and blkio
 * controllers want it. -ENODEV when path is on no block device (tmpfs, overlay,
 * a network file system). */
int sandbox_block_device(const char *path, dev_t *ret);

/* Value of a usage field the kernel does not provide (e.g. memory.peak before 5.19). */
#define SANDBOX_USAGE_UNKNOWN UINT64_MAX

/* Resource usage of one site's cgroup, read live. */
struct sandbox_usage {
    uint64_t memory_current;   /* bytes charged now */
    uint64_t memory_peak;      /* highest bytes charged since creation */
    uint64_t cpu_usec;         /* CPU time used, user + system, microseconds */
    uint64_t pids_current;     /* tasks now */
    uint64_t oom_kills;        /* processes the OOM killer killed in this cgroup */
};

/* berthd's place in the cgroup trees: where site cgroups are created. */
struct sandbox_cgroup_root;
/* One site's cgroup (a directory in each hierarchy that matters). */
struct sandbox_cgroup;

/* Detects the cgroup layout, finds berthd's own cgroup from /proc/self/cgroup and
 * prepares <own>/<parent> as the place for site cgroups (parent: one directory
 * name such as "sites", or NULL for <own> itself; -EINVAL for a path). On v2, where a cgroup with processes
 * may not delegate controllers ("no internal processes" rule, cgroup-v2.rst), the
 * calling process first moves into the leaf <own>/berthd, then memory, cpu and pids
 * are enabled in subtree_control down to <parent>. -EOPNOTSUPP when no cgroup file
 * system is mounted at /sys/fs/cgroup. */
int sandbox_cgroup_root_open(const char *parent, struct sandbox_cgroup_root **ret);
/* Frees the handle; cgroups on disk are left alone. NULL-safe. */
void sandbox_cgroup_root_free(struct sandbox_cgroup_root *root);
/* Whether site cgroups get the disk controller (v2 "io", v1 "blkio"). */
bool sandbox_cgroup_root_has_io(const struct sandbox_cgroup_root *root);
/* Removes the <own>/<parent> directories root_open made, in every hierarchy, once
 * the site cgroups beneath are gone (one that remains keeps its parent: not an
 * error). Nothing without a parent. NULL-safe. */
int sandbox_cgroup_root_remove(struct sandbox_cgroup_root *root);
/* The detected layout. */
enum sandbox_cgroup_mode sandbox_cgroup_root_mode(const struct sandbox_cgroup_root *root);

/* Creates (or opens, if it exists) the cgroup of site `name` (a DNS label) beneath
 * root and applies limits (NULL: leave the current ones). The directory is named
 * after the site, except "tasks.site" for a site "tasks" (v1's file of that name).
 * The returned handle borrows root, which must outlive it. */
int sandbox_cgroup_create(struct sandbox_cgroup_root *root, const char *name,
                          const struct sandbox_limits *limits, struct sandbox_cgroup **ret);
/* Frees the handle; the cgroup stays on disk (see sandbox_cgroup_remove). NULL-safe. */
void sandbox_cgroup_free(struct sandbox_cgroup *cg);
/* Sets every limit of the site live; running processes are affected at once
 * (lowering memory below the current use makes the kernel reclaim, then OOM-kill
 * on v2; v1 refuses it with -EBUSY and keeps the old limit). Every limit is
 * attempted even when one is refused; returns the first error. */
int sandbox_cgroup_set_limits(struct sandbox_cgroup *cg, const struct sandbox_limits *limits);
/* Reads the current usage. Fields the kernel does not offer are
 * SANDBOX_USAGE_UNKNOWN. */
int sandbox_cgroup_get_usage(struct sandbox_cgroup *cg, struct sandbox_usage *ret);
/* Moves process pid (all its threads) into the site's cgroup in every hierarchy. */
int sandbox_cgroup_attach(struct sandbox_cgroup *cg, pid_t pid);
/* Sends SIGKILL to every process in the cgroup and waits (up to about a second)
 * until none is left: cgroup.kill where the kernel has it (5.14), otherwise freeze,
 * kill each listed process, thaw, and repeat until cgroup.procs is empty, so a
 * fork bomb cannot outrun the loop. Returns 0 when empty, -EBUSY if processes
 * remain (e.g. stuck in D state). Zombies whose parent is the caller must still be
 * reaped by the caller. */
int sandbox_cgroup_kill(struct sandbox_cgroup *cg);
/* Removes the cgroup directories (it must be empty: kill and reap first). Missing
 * directories are success; -EBUSY if processes remain. The handle stays valid for
 * sandbox_cgroup_free only. */
int sandbox_cgroup_remove(struct sandbox_cgroup *cg);

/* ---- spawning ---------------------------------------------------------------- */

enum sandbox_network {
    SANDBOX_NETWORK_NONE,   /* own net namespace with only loopback, up (default) */
    SANDBOX_NETWORK_HOST,   /* the host's network namespace */
    SANDBOX_NETWORK_NAT,    /* own net namespace with loopback and eth0, a veth on
                               berth's bridge (see struct sandbox_nat) */
};

/* Parses "none", "nat" or "host". -EINVAL otherwise. */
int sandbox_network_from_string(const char *s, enum sandbox_network *ret);

/* ---- network nat: the bridge, the firewall table, one veth per sandbox ------ */

/* Where nat sandboxes live. Everything is borrowed for the duration of
 * sandbox_nat_new only. */
struct sandbox_nat_config {
    const char *bridge;          /* bridge name (IFNAMSIZ-1 chars at most), "berth0" */
    const char *ipv4;            /* "10.88.0.0/16": the bridge takes .1, sites from .2;
                                    NULL or "": no IPv4 */
    const char *ipv6;            /* "fd8b:e27a:1b5e::/64" likewise; NULL or "": no IPv6 */
    const char *const *allow;    /* NULL-terminated host services sites may reach on
                                    the bridge, "udp/53", "tcp/53"; NULL: none */
    uint32_t uid_base;           /* first site uid: uid_base+k gets host number k+2 */
};

/* The bridge and the firewall of network nat. Opaque. */
struct sandbox_nat;

/* Checks the configuration and makes a handle; touches nothing on the host (a
 * berthd without nat sites never creates a bridge). -EINVAL for a bad subnet,
 * bridge name or allow entry. */
int sandbox_nat_new(const struct sandbox_nat_config *cfg, struct sandbox_nat **ret);
/* True when the bridge (or berth's firewall table) exists on the host, e.g. left by
 * a berthd that was killed: the caller should then call sandbox_nat_setup to take
 * it over (or sandbox_nat_teardown to remove it). */
bool sandbox_nat_leftover(const struct sandbox_nat *nat);
/* Creates the bridge afresh (deleting one of the same name first: a previous
 * berthd's, whose ports are released with it), gives it the gateway addresses, turns on
 * forwarding and loads the firewall table "inet berth-<bridge>" atomically with
 * `nft -f -`. Idempotent: once done, later calls return 0 at once. -ENOENT when
 * nft is not installed, -EPROTO when nft refused the ruleset. */
int sandbox_nat_setup(struct sandbox_nat *nat);
/* Deletes the firewall table, then the bridge (call once every nat sandbox is gone:
 * their veths go with their network namespaces). Missing ones are success. */
int sandbox_nat_teardown(struct sandbox_nat *nat);
/* Frees the handle; the bridge and table stay (see sandbox_nat_teardown). NULL-safe. */
void sandbox_nat_free(struct sandbox_nat *nat);
/* The sandbox address of uid in text ("10.88.0.2", "fd8b:e27a:1b5e::2"); "" for a
 * family that is not configured. -ERANGE when the uid falls outside the subnet. */
int sandbox_nat_address(const struct sandbox_nat *nat, uid_t uid, char ret_v4[46], char ret_v6[46]);
/* The name of the host end of uid's veth ("bv<uid>"); it exists while a nat sandbox
 * of that uid runs, and goes with its network namespace. */
void sandbox_nat_host_ifname(uid_t uid, char ret[16]);

/* A host path bound read-only into the sandbox. */
struct sandbox_bind {
    const char *source;          /* absolute host path: a directory or a file */
    const char *target;          /* absolute path inside; NULL: the same as source.
                                    It must not lie under /tmp, /run, /proc, /dev or
                                    /site, which the sandbox mounts on its own */
};

/* What to run and how. Everything is borrowed for the duration of the call only. */
struct sandbox_config {
    const char *name;            /* site name (DNS label): host name inside the sandbox */
    uid_t uid;                   /* site uid; not 0 nor -1; needs no passwd entry */
    gid_t gid;                   /* site gid; not 0 nor -1 */
    const char *site_dir;        /* absolute host path, bound read-write at /site */
    const char *const *argv;     /* argv[0] is looked up as given: an absolute path
                                    inside the sandbox (e.g. "/usr/bin/php-fpm8.2") */
    const char *const *envp;     /* NULL: empty environment */
    const int *fds;              /* n_fds fds passed as 3, 4, ... (LISTEN_FDS style) */
    size_t n_fds;
    bool listen_env;             /* also set LISTEN_FDS=n_fds and LISTEN_PID=<program's
                                    pid inside> in the environment */
    int stdin_fd;                /* -1: /dev/null */
    int stdout_fd;               /* -1: /dev/null */
    int stderr_fd;               /* -1: /dev/null; may equal stdout_fd */
    enum sandbox_network network;
    struct sandbox_nat *nat;     /* network nat: the bridge to join, already set up
                                    (sandbox_nat_setup); borrowed */
    struct sandbox_cgroup *cgroup;   /* NULL: stay in the caller's cgroup */
    uint64_t tmp_size;           /* size of /tmp (tmpfs); 0: 64 MiB */
    const struct sandbox_bind *ro_binds; /* n_ro_binds read-only binds, e.g. /etc/php */
    size_t n_ro_binds;
    bool no_reaper;              /* the program itself is pid 1 (see below) */
    bool stdin_ctty;             /* stdin_fd is a terminal (a pty slave of berthd's): it
                                    becomes the program's controlling terminal, so that
                                    ^C and job control work in an interactive shell */
    int join_pidfd;              /* >= 0: run inside the running sandbox whose pid 1
                                    this pidfd names (setns) instead of a fresh one;
                                    -1: a fresh sandbox (sandbox_config_init sets -1) */
    int join_net_pidfd;          /* fresh sandbox with network nat: >= 0 shares the
                                    network namespace of the process this pidfd names
                                    (a live sandbox of the same site, which holds the
                                    site's one address and veth) instead of making a
                                    veth of its own; -1 (the default): its own */
};

/* Fills cfg with defaults: no fds, /dev/null stdio, network none, join_pidfd and
 * join_net_pidfd -1. */
void sandbox_config_init(struct sandbox_config *cfg);

/* The step of the set-up that failed, reported by the child over the sync socket. */
enum sandbox_step {
    SANDBOX_STEP_NONE,
    SANDBOX_STEP_CLONE,
    SANDBOX_STEP_CGROUP,
    SANDBOX_STEP_SETNS,
    SANDBOX_STEP_MOUNT_PRIVATE,
    SANDBOX_STEP_ROOT,
    SANDBOX_STEP_BIND,
    SANDBOX_STEP_SITE_DIR,
    SANDBOX_STEP_ETC,
    SANDBOX_STEP_DEV,
    SANDBOX_STEP_PROC,
    SANDBOX_STEP_TMP,
    SANDBOX_STEP_PIVOT_ROOT,
    SANDBOX_STEP_REMOUNT_RO,
    SANDBOX_STEP_HOSTNAME,
    SANDBOX_STEP_NETWORK,
    SANDBOX_STEP_FORK,
    SANDBOX_STEP_FDS,
    SANDBOX_STEP_CAPS,
    SANDBOX_STEP_UID,
    SANDBOX_STEP_NO_NEW_PRIVS,
    SANDBOX_STEP_SECCOMP,
    SANDBOX_STEP_CHDIR,
    SANDBOX_STEP_EXEC,
    SANDBOX_STEP_TIMEOUT,
    _SANDBOX_STEP_MAX,
};

/* Names a step ("pivot-root"); "unknown" for an out-of-range value. */
const char *sandbox_step_to_string(int step);

/* Details of a failed sandbox_spawn: which step and the errno it failed with. */
struct sandbox_error {
    int step;      /* enum sandbox_step */
    int error;     /* positive errno */
};

/* Starts cfg->argv in a sandbox (or, with join_pidfd, in a running one).
 *
 * Fresh sandbox: pid 1 inside is a small reaper that forks the program (pid 2),
 * forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it, reaps orphans, and
 * exits with the program's status (128+N if a signal N killed it). When pid 1 exits
 * the kernel kills the rest of the pid namespace. With no_reaper the program is
 * pid 1 itself (which then must reap, and ignores signals it has no handler for).
 *
 * Joined sandbox: the process enters the namespaces of the one join_pidfd names
 * and is placed in cfg->cgroup; it is a child of the caller like a fresh one;
 * site_dir, network, nat, tmp_size and ro_binds are ignored (the running sandbox's are
 * used).
 *
 * Returns once the program was exec'd (or failed to be): ret_pid (host pid) and
 * ret_pidfd (O_CLOEXEC; poll it for exit, reap with waitid(P_PIDFD)) belong to the
 * caller. SIGCHLD keeps its default. On failure the child is reaped, err (may be
 * NULL) says which step failed and the return value is that step's -errno. */
int sandbox_spawn(const struct sandbox_config *cfg, struct sandbox_error *err,
                  pid_t *ret_pid, int *ret_pidfd);

/* ---- berth's own services ------------------------------------------------------ */

/* Confines the calling process, an unprivileged service of berth that reads what
 * the network sends (a front worker, the ssh front, which passes it on to its
 * connection children): no_new_privs and a seccomp filter refusing what the sites'
 * filter refuses (kernel modules, bpf, io_uring, keyrings, new namespaces, mounts,
 * ptrace, ...) and execve/execveat, since no service runs a program. Call after
 * dropping privileges; it holds for the rest of the process and its children.
 * Sanitizer builds leave ptrace allowed (LeakSanitizer needs it at exit). */
int sandbox_confine_service(void);

/* Internal interface between the files of the sandbox component (and its unit tests).
 * Not for other components: they include only sandbox/sandbox.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <linux/limits.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

/* ---- sandbox-cgroup.c: pure helpers (unit-tested) ---- */

/* Finds, in the text of /proc/self/cgroup, the path of the hierarchy whose
 * controller list holds `controller` ("memory" matches "4:memory:/x" and
 * "2:cpu,memory:/x"); controller "" selects the v2 line "0::/path". Returns the path
 * (malloc'd) in ret_path and the line's controller list (malloc'd, "" for v2) in
 * ret_list (may be NULL). -ENOENT if no line matches, -EINVAL on a malformed line. */
int sandbox_cgroup_self_path(const char *text, const char *controller, char **ret_path,
                             char **ret_list);
/* Looks `key` up in "key value\n" text (memory.events, cpu.stat, memory.oom_control).
 * -ENOENT if absent, -EINVAL if the value is not a number. */
int sandbox_cgroup_keyed_get(const char *text, const char *key, uint64_t *ret);
/* Formats a limit for the kernel: 0 means unlimited, written "max" (v2, and pids
 * in v1) or "-1" (v1 memory and cpu quota). -ENOBUFS if n is too small. */
int sandbox_cgroup_format_limit(uint64_t value, bool v1_minus_one, char *out, size_t n);
/* Formats v2 cpu.max for a share in thousandths of a CPU: "50000 100000" for 500,
 * "max 100000" for 0. The quota is at least 1000us (the kernel's minimum). */
int sandbox_cgroup_format_cpu_max(uint32_t millis, char *out, size_t n);
/* The v1 cpu.cfs_quota_us for a period of 100000us: -1 for 0, at least 1000. */
int64_t sandbox_cgroup_cfs_quota(uint32_t millis);
/* True if name is a usable cgroup directory name for a site (a DNS label, also
 * rejecting "." ".." and names the kernel reserves like "cgroup.x"). */
bool sandbox_cgroup_name_valid(const char *name);

/* ---- sandbox-cgroup.c: used by sandbox-spawn.c ---- */

/* An O_PATH|O_DIRECTORY fd of the cgroup in the v2 (or hybrid unified) hierarchy for
 * clone3(CLONE_INTO_CGROUP), or -1 when there is none. Borrowed. */
int sandbox_cgroup_v2_fd(const struct sandbox_cgroup *cg);
/* Attaches pid to the hierarchies that CLONE_INTO_CGROUP does not cover (every v1
 * one; all when skip_v2 is false). */
int sandbox_cgroup_attach_v1(struct sandbox_cgroup *cg, pid_t pid, bool skip_v2);

/* ---- sandbox-mount.c ---- */

/* Everything the child needs to build its root, prepared by the parent before
 * clone (reading host files, formatting /etc) so the child only mounts and writes. */
struct sandbox_root_plan {
    const char *site_dir;          /* borrowed */
    const struct sandbox_bind *ro_binds;   /* borrowed */
    size_t n_ro_binds;
    char *passwd;                  /* owned, generated */
    char *group;
    char *hosts;
    char *hostname_file;
    char *resolv_conf;             /* copy of the host's, or NULL (network none) */
    char tmp_opts[64];             /* "mode=1777,size=N" */
    /* the merged-usr entries of / (bin, sbin, lib, lib32, lib64, libx32) */
    struct {
        const char *name;
        char *link;                /* symlink target, or NULL: bind the directory */
    } top[6];
    size_t n_top;
};

/* Fills plan from cfg (runs in the parent). */
int sandbox_mount_plan_prepare(const struct sandbox_config *cfg, struct sandbox_root_plan *plan);
/* Frees what plan owns. */
void sandbox_mount_plan_done(struct sandbox_root_plan *plan);
/* In the child, in its new mount and pid namespaces: makes / private, builds the
 * new root on a tmpfs, pivots into it, detaches the old root and makes the root
 * read-only. On failure returns -errno and stores the step in *ret_step. */
int sandbox_mount_build(const struct sandbox_root_plan *plan, int *ret_step);

/* ---- sandbox-seccomp.c ---- */

/* Loads the filter (BPF generated at build time by sandbox-seccomp-gen.c) into the
 * calling thread; needs no_new_privs set first. */
int sandbox_seccomp_install(void);

/* ---- sandbox-caps.c ---- */

/* Empties the capability bounding set and the ambient set (needs CAP_SETPCAP: call
 * while still root). */
int sandbox_caps_drop_bounding(void);
/* setgroups(0), setresgid, setresuid to the site user, then clears every remaining
 * capability set (permitted, effective, inheritable) and checks it stuck. */
int sandbox_caps_drop_to_user(uid_t uid, gid_t gid, int *ret_step);

/* ---- sandbox-net.c ---- */

/* Brings "lo" up in the current (fresh) network namespace. */
int sandbox_net_loopback_up(void);

/* Site cgroups across v1, hybrid and v2 layouts. Limits are written to whichever
 * hierarchy holds the controller; membership and killing use the v2 tree where one
 * exists (even the controller-less "unified" tree of a hybrid host has cgroup.kill
 * and CLONE_INTO_CGROUP). */
#include "sandbox/sandbox-internal.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/names.h"

#define CGROUP_FS "/sys/fs/cgroup"
#define CPU_PERIOD_US 100000u
#define MAX_HIER 8

enum {
    CG_MEMORY = 1 << 0,
    CG_CPU = 1 << 1,
    CG_CPUACCT = 1 << 2,
    CG_PIDS = 1 << 3,
    CG_FREEZER = 1 << 4,
    CG_IO = 1 << 5,       /* v2 "io", v1 "blkio" */
};

struct hier {
    char *base;         /* <mount><own>[/<parent>]: where site cgroups are created */
    unsigned ctrl;      /* CG_* this hierarchy carries (v2: those enabled for sites) */
    bool v2;
};

struct sandbox_cgroup_root {
    enum sandbox_cgroup_mode mode;
    bool own_parent;    /* h[].base are <own>/<parent>, made by us (not <own> itself) */
    struct hier h[MAX_HIER];
    size_t n;
};

struct sandbox_cgroup {
    struct sandbox_cgroup_root *root;   /* borrowed */
    char *path[MAX_HIER];               /* same index as root->h */
    int v2fd;
};

/* ---- pure helpers ---- */

int sandbox_cgroup_self_path(const char *text, const char *controller, char **ret_path,
                             char **ret_list)
{
    for (const char *line = text; line && *line;) {
        const char *eol = strchrnul(line, '\n');
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (!c2)
            return -EINVAL;
        const char *list = c1 + 1;
        size_t list_len = (size_t)(c2 - list);
        bool match = false;
        if (controller[0] == 0) {
            match = list_len == 0;
        } else {
            size_t cl = strlen(controller);
            for (const char *p = list; p < c2;) {
                const char *comma = memchr(p, ',', (size_t)(c2 - p));
                const char *end = comma ? comma : c2;
                if ((size_t)(end - p) == cl && memcmp(p, controller, cl) == 0)
                    match = true;
                p = end + 1;
            }
        }
        if (match) {
            const char *path = c2 + 1;
            if (path >= eol || *path != '/')
                return -EINVAL;
            char *rp = strndup(path, (size_t)(eol - path));
            char *rl = strndup(list, list_len);
            if (!rp || !rl) {
                free(rp);
                free(rl);
                return -ENOMEM;
            }
            *ret_path = rp;
            if (ret_list)
                *ret_list = rl;
            else
                free(rl);
            return 0;
        }
        line = *eol ? eol + 1 : eol;
    }
    return -ENOENT;
}

int sandbox_cgroup_keyed_get(const char *text, const char *key, uint64_t *ret)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *eol = strchrnul(line, '\n');
        if ((size_t)(eol - line) > kl && memcmp(line, key, kl) == 0 && line[kl] == ' ') {
            char num[32];
            size_t n = (size_t)(eol - line - (ptrdiff_t)kl - 1);
            if (n == 0 || n >= sizeof(num))
                return -EINVAL;
            memcpy(num, line + kl + 1, n);
            num[n] = 0;
            return parse_uint(num, 0, UINT64_MAX, ret) < 0 ? -EINVAL : 0;
        }
        line = *eol ? eol + 1 : eol;
    }
    return -ENOENT;
}

int sandbox_cgroup_format_limit(uint64_t value, bool v1_minus_one, char *out, size_t n)
{
    int k;
    if (value == 0)
        k = snprintf(out, n, "%s", v1_minus_one ? "-1" : "max");
    else
        k = snprintf(out, n, "%" PRIu64, value);
    return k < 0 || (size_t)k >= n ? -ENOBUFS : 0;
}

int64_t sandbox_cgroup_cfs_quota(uint32_t millis)
{
    if (millis == 0)
        return -1;
    /* The kernel refuses quotas under 1ms (tg_set_cfs_bandwidth: min_cfs_quota_period). */
    return MAX((int64_t)millis * (CPU_PERIOD_US / 1000), 1000);
}

int sandbox_cgroup_format_cpu_max(uint32_t millis, char *out, size_t n)
{
    int k;
    if (millis == 0)
        k = snprintf(out, n, "max %u", CPU_PERIOD_US);
    else
        k = snprintf(out, n, "%" PRId64 " %u", sandbox_cgroup_cfs_quota(millis), CPU_PERIOD_US);
    return k < 0 || (size_t)k >= n ? -ENOBUFS : 0;
}

bool sandbox_cgroup_name_valid(const char *name)
{
    /* A DNS label can never be "." or "..", nor contain '/', nor the '.' of the
     * kernel's "cgroup.*" and "<controller>.*" file names; v1's "tasks" is the one
     * clash, which sandbox_cgroup_create avoids with another directory name. */
    return name && site_name_valid(name);
}

/* ---- file access ---- */

static int write_str(const char *dir, const char *file, const char *value)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t k = write(fd, value, len);
    if (k < 0)
        return -errno;
    return (size_t)k == len ? 0 : -EIO;
}

static int read_str(const char *dir, const char *file, char **ret)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    return read_file(path, 1 << 20, ret, NULL);
}

static int read_u64(const char *dir, const char *file, uint64_t *ret)
{
    _cleanup_free_ char *s = NULL;
    int r = read_str(dir, file, &s);
    if (r < 0)
        return r;
    s[strcspn(s, "\n")] = 0;
    return parse_uint(s, 0, UINT64_MAX, ret);
}

static int read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret)
{
    _cleanup_free_ char *s = NULL;
    int r = read_str(dir, file, &s);
    if (r < 0)
        return r;
    return sandbox_cgroup_keyed_get(s, key, ret);
}

static bool is_fs(const char *path, long magic)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == magic;
}

/* ---- root ---- */

void sandbox_cgroup_root_free(struct sandbox_cgroup_root *root)
{
    if (!root)
        return;
    for (size_t i = 0; i < root->n; i++)
        free(root->h[i].base);
    free(root);
}

int sandbox_cgroup_root_remove(struct sandbox_cgroup_root *root)
{
    if (!root || !root->own_parent)
        return 0;   /* sites live directly in <own>: never ours to remove */
    int ret = 0;
    for (size_t i = 0; i < root->n; i++) {
        /* EBUSY: a site cgroup is still there (or a process): it stays. */
        if (rmdir(root->h[i].base) < 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY &&
            ret == 0)
            ret = -errno;
    }
    return ret;
}

enum sandbox_cgroup_mode sandbox_cgroup_root_mode(const struct sandbox_cgroup_root *root)
{
    return root->mode;
}

static int join_path(const char *a, const char *b, const char *c, char **ret)
{
    struct buf bf = BUF_INIT(PATH_MAX);
    int r = buf_printf(&bf, "%s%s%s%s", a, streq(b, "/") ? "" : b,
                       c && c[0] ? "/" : "", c ? c : "");
    if (r < 0) {
        buf_done(&bf);
        return r;
    }
    *ret = buf_steal(&bf);
    return 0;
}

static unsigned ctrl_bits(const char *list)
{
    unsigned bits = 0;
    static const struct { const char *n; unsigned b; } map[] = {
        { "memory", CG_MEMORY }, { "cpu", CG_CPU }, { "cpuacct", CG_CPUACCT },
        { "pids", CG_PIDS }, { "freezer", CG_FREEZER }, { "io", CG_IO }, { "blkio", CG_IO },
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        size_t l = strlen(map[i].n);
        for (const char *p = list; *p;) {
            const char *e = strchrnul(p, ',');
            if ((size_t)(e - p) == l && memcmp(p, map[i].n, l) == 0)
                bits |= map[i].b;
            p = *e ? e + 1 : e;
        }
    }
    return bits;
}

/* v2: the "no internal processes" rule (Documentation/admin-guide/cgroup-v2.rst)
 * makes writing "+memory" to <own>/cgroup.subtree_control fail with EBUSY while
 * <own> holds processes, so berthd moves itself into the leaf <own>/berthd first. */
static int v2_delegate(const char *own, const char *parent, char **ret_base, unsigned *ret_ctrl)
{
    _cleanup_free_ char *avail = NULL;
    int r = read_str(own, "cgroup.controllers", &avail);
    if (r < 0)
        return r;
    unsigned want = 0;
    char enable[64] = "";
    static const char *names[] = { "memory", "cpu", "pids", "io" };
    static const unsigned bits[] = { CG_MEMORY, CG_CPU | CG_CPUACCT, CG_PIDS, CG_IO };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (ctrl_bits(avail) & (i == 1 ? CG_CPU : bits[i])) {
            want |= bits[i];
            strcat(enable, enable[0] ? " +" : "+");
            strcat(enable, names[i]);
        }
    }

    if (want) {
        _cleanup_free_ char *procs = NULL;
        r = read_str(own, "cgroup.procs", &procs);
        if (r < 0)
            return r;
        if (procs[0]) {
            _cleanup_free_ char *leaf = NULL;
            if ((r = join_path(own, "", "berthd", &leaf)) < 0)
                return r;
            if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
                return -errno;
            /* Every process of <own> is berthd's (its service cgroup): move them all,
             * one write per pid as cgroup.procs requires. */
            for (char *p = procs, *end; *p; p = end) {
                long pid = strtol(p, &end, 10);
                if (end == p)
                    break;
                while (*end == '\n')
                    end++;
                char v[32];
                snprintf(v, sizeof(v), "%ld", pid);
                r = write_str(leaf, "cgroup.procs", v);
                if (r < 0 && r != -ESRCH)
                    return r;
            }
        }
        if ((r = write_str(own, "cgroup.subtree_control", enable)) < 0)
            return r;
    }

    _cleanup_free_ char *base = NULL;
    if ((r = join_path(own, "", parent, &base)) < 0)
        return r;
    if (parent && parent[0]) {
        if ((r = mkdir_p(base, 0755)) < 0)
            return r;
        if (want && (r = write_str(base, "cgroup.subtree_control", enable)) < 0)
            return r;
    }
    *ret_base = TAKE_PTR(base);
    *ret_ctrl = want;
    return 0;
}

static int root_add(struct sandbox_cgroup_root *root, const char *mount, const char *own,
                    const char *parent, unsigned ctrl, bool v2)
{
    if (root->n >= MAX_HIER)
        return -E2BIG;
    _cleanup_free_ char *own_full = NULL;
    int r = join_path(mount, own, NULL, &own_full);
    if (r < 0)
        return r;
    struct hier *h = &root->h[root->n];
    if (v2) {
        r = v2_delegate(own_full, parent, &h->base, &h->ctrl);
        if (r < 0)
            return r;
        if (root->mode == SANDBOX_CGROUP_HYBRID)
            h->ctrl = 0;   /* the controllers live in the v1 trees */
    } else {
        if ((r = join_path(own_full, "", parent, &h->base)) < 0)
            return r;
        if ((r = mkdir_p(h->base, 0755)) < 0) {
            free(h->base);
            h->base = NULL;
            return r;
        }
        h->ctrl = ctrl;
    }
    h->v2 = v2;
    root->n++;
    return 0;
}

int sandbox_cgroup_root_open(const char *parent, struct sandbox_cgroup_root **ret)
{
    /* One directory name: each level of a deeper path would need its own
     * subtree_control on v2. */
    if (parent && (!parent[0] || strchr(parent, '/') || streq(parent, ".") || streq(parent, "..")))
        return -EINVAL;
    _cleanup_free_ char *self = NULL;
    int r = read_file("/proc/self/cgroup", 1 << 16, &self, NULL);
    if (r < 0)
        return r;

    struct sandbox_cgroup_root *root = calloc(1, sizeof(*root));
    if (!root)
        return -ENOMEM;
    root->own_parent = parent && parent[0];

    if (is_fs(CGROUP_FS, CGROUP2_SUPER_MAGIC))
        root->mode = SANDBOX_CGROUP_V2;
    else if (is_fs(CGROUP_FS "/unified", CGROUP2_SUPER_MAGIC))
        root->mode = SANDBOX_CGROUP_HYBRID;
    else if (is_fs(CGROUP_FS, TMPFS_MAGIC))
        root->mode = SANDBOX_CGROUP_V1;
    else {
        free(root);
        return -EOPNOTSUPP;
    }

    if (root->mode != SANDBOX_CGROUP_V1) {
        _cleanup_free_ char *own = NULL;
        r = sandbox_cgroup_self_path(self, "", &own, NULL);
        /* A second call (or a restarted berthd) finds itself in the leaf the first
         * one made: the place to delegate from is its parent. */
        char *leaf = r >= 0 ? strrchr(own, '/') : NULL;
        if (leaf && streq(leaf, "/berthd"))
            *(leaf == own ? leaf + 1 : leaf) = 0;
        if (r >= 0)
            r = root_add(root, root->mode == SANDBOX_CGROUP_V2 ? CGROUP_FS : CGROUP_FS "/unified",
                         own, parent, 0, true);
        if (r < 0)
            goto fail;
    }
    if (root->mode != SANDBOX_CGROUP_V2) {
        static const char *want[] = { "memory", "cpu", "cpuacct", "pids", "freezer", "blkio" };
        unsigned have = 0;
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
            _cleanup_free_ char *own = NULL, *list = NULL, *mnt = NULL;
            if (have & ctrl_bits(want[i]))
                continue;   /* co-mounted with one seen already (cpu,cpuacct) */
            if (sandbox_cgroup_self_path(self, want[i], &own, &list) < 0)
                continue;   /* controller not mounted: its limits are unavailable */
            if ((r = join_path(CGROUP_FS "/", list, NULL, &mnt)) < 0)
                goto fail;
            if (!is_fs(mnt, CGROUP_SUPER_MAGIC))
                continue;
            if ((r = root_add(root, mnt, own, parent, ctrl_bits(list), false)) < 0)
                goto fail;
            have |= ctrl_bits(list);
        }
    }
    *ret = root;
    return 0;
fail:
    sandbox_cgroup_root_free(root);
    return r;
}

bool sandbox_cgroup_root_has_io(const struct sandbox_cgroup_root *root)
{
    for (size_t i = 0; i < root->n; i++)
        if (root->h[i].ctrl & CG_IO)
            return true;
    return false;
}

/* ---- site cgroups ---- */

void sandbox_cgroup_free(struct sandbox_cgroup *cg)
{
    if (!cg)
        return;
    for (size_t i = 0; i < MAX_HIER; i++)
        free(cg->path[i]);
    safe_close(cg->v2fd);
    free(cg);
}

int sandbox_cgroup_v2_fd(const struct sandbox_cgroup *cg)
{
    return cg->v2fd;
}

static bool root_has(const struct sandbox_cgroup *cg, unsigned bit, size_t *ret_i)
{
    for (size_t i = 0; i < cg->root->n; i++)
        if (cg->root->h[i].ctrl & bit) {
            *ret_i = i;
            return true;
        }
    return false;
}

/* The directory name of a site's cgroup. Every v1 cgroup directory holds a file
 * named "tasks", a valid DNS label: a site of that name would find the file
 * where its directory should be. A dot never occurs in a site name, so the
 * suffixed name is no other site's, and no kernel file is named so. */
static const char *leaf_name(const char *name)
{
    return streq(name, "tasks") ? "tasks.site" : name;
}

int sandbox_cgroup_create(struct sandbox_cgroup_root *root, const char *name,
                          const struct sandbox_limits *limits, struct sandbox_cgroup **ret)
{
    if (!sandbox_cgroup_name_valid(name))
        return -EINVAL;
    struct sandbox_cgroup *cg = calloc(1, sizeof(*cg));
    if (!cg)
        return -ENOMEM;
    cg->root = root;
    cg->v2fd = -1;
    int r = 0;
    for (size_t i = 0; i < root->n; i++) {
        if ((r = join_path(root->h[i].base, "", leaf_name(name), &cg->path[i])) < 0)
            goto fail;
        if (mkdir(cg->path[i], 0755) < 0 && errno != EEXIST) {
            r = -errno;
            goto fail;
        }
        if (root->h[i].v2) {
            cg->v2fd = open(cg->path[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (cg->v2fd < 0) {
                r = -errno;
                goto fail;
            }
            if (root->h[i].ctrl & CG_MEMORY) {
                /* An OOM kills the whole site rather than one worker at random, so a
                 * php-fpm master never survives with half its children. */
                (void)write_str(cg->path[i], "memory.oom.group", "1");
            }
        }
    }
    if (limits && (r = sandbox_cgroup_set_limits(cg, limits)) < 0)
        goto fail;
    *ret = cg;
    return 0;
fail:
    sandbox_cgroup_free(cg);
    return r;
}

int sandbox_cgroup_set_limits(struct sandbox_cgroup *cg, const struct sandbox_limits *limits)
{
    char v[64];
    size_t i;
    int r, ret = 0;
#define KEEP_FIRST(x) do { if ((r = (x)) < 0 && ret == 0) ret = r; } while (0)

    if (root_has(cg, CG_MEMORY, &i)) {
        const char *dir = cg->path[i];
        if (cg->root->h[i].v2) {
            sandbox_cgroup_format_limit(limits->memory_max, false, v, sizeof(v));
            KEEP_FIRST(write_str(dir, "memory.max", v));
            /* Swap would let a site exceed memory.max by paging out; forbid it. */
            r = write_str(dir, "memory.swap.max", limits->memory_max ? "0" : "max");
            if (r != -ENOENT)
                KEEP_FIRST(r);
        } else {
            /* v1 requires limit_in_bytes <= memsw.limit_in_bytes at every moment
             * (mem_cgroup_resize_max returns EINVAL), so open memsw first, then set
             * the limit, then close memsw down to the limit in force: the new one,
             * or the old one when the kernel kept it. */
            bool memsw = write_str(dir, "memory.memsw.limit_in_bytes", "-1") == 0;
            sandbox_cgroup_format_limit(limits->memory_max, true, v, sizeof(v));
            int set = write_str(dir, "memory.limit_in_bytes", v);
            KEEP_FIRST(set);
            if (memsw && set < 0) {
                _cleanup_free_ char *kept = NULL;
                KEEP_FIRST(read_str(dir, "memory.limit_in_bytes", &kept));
                if (kept) {
                    kept[strcspn(kept, "\n")] = 0;
                    KEEP_FIRST(write_str(dir, "memory.memsw.limit_in_bytes", kept));
                }
            } else if (memsw) {
                KEEP_FIRST(write_str(dir, "memory.memsw.limit_in_bytes", v));
            }
        }
    } else if (limits->memory_max) {
        KEEP_FIRST(-EOPNOTSUPP);
    }

    if (root_has(cg, CG_CPU, &i)) {
        if (cg->root->h[i].v2) {
            sandbox_cgroup_format_cpu_max(limits->cpu_millis, v, sizeof(v));
            KEEP_FIRST(write_str(cg->path[i], "cpu.max", v));
        } else {
            snprintf(v, sizeof(v), "%u", CPU_PERIOD_US);
            KEEP_FIRST(write_str(cg->path[i], "cpu.cfs_period_us", v));
            snprintf(v, sizeof(v), "%" PRId64, sandbox_cgroup_cfs_quota(limits->cpu_millis));
            KEEP_FIRST(write_str(cg->path[i], "cpu.cfs_quota_us", v));
        }
    } else if (limits->cpu_millis) {
        KEEP_FIRST(-EOPNOTSUPP);
    }

    if (root_has(cg, CG_PIDS, &i)) {
        sandbox_cgroup_format_limit(limits->pids_max, false, v, sizeof(v));
        KEEP_FIRST(write_str(cg->path[i], "pids.max", v));
    } else if (limits->pids_max) {
        KEEP_FIRST(-EOPNOTSUPP);
    }

    bool io_wanted = limits->io_read_bps || limits->io_write_bps;
    if (io_wanted && !limits->io_device) {
        KEEP_FIRST(-ENODEV);
    } else if (limits->io_device && root_has(cg, CG_IO, &i)) {
        unsigned maj = major(limits->io_device), min = minor(limits->io_device);
        if (cg->root->h[i].v2) {
            char rd[24] = "max", wr[24] = "max";
            if (limits->io_read_bps)
                snprintf(rd, sizeof(rd), "%" PRIu64, limits->io_read_bps);
            if (limits->io_write_bps)
                snprintf(wr, sizeof(wr), "%" PRIu64, limits->io_write_bps);
            snprintf(v, sizeof(v), "%u:%u rbps=%s wbps=%s", maj, min, rd, wr);
            r = write_str(cg->path[i], "io.max", v);
        } else {
            /* 0 removes the device's rule. */
            snprintf(v, sizeof(v), "%u:%u %" PRIu64, maj, min, limits->io_read_bps);
            r = write_str(cg->path[i], "blkio.throttle.read_bps_device", v);
            snprintf(v, sizeof(v), "%u:%u %" PRIu64, maj, min, limits->io_write_bps);
            int w = write_str(cg->path[i], "blkio.throttle.write_bps_device", v);
            r = r < 0 ? r : w;
        }
        /* Clearing limits nobody set must not fail a site on a kernel without
         * throttling (no such file) or a disk it cannot throttle. */
        if (io_wanted)
            KEEP_FIRST(r);
    } else if (io_wanted) {
        KEEP_FIRST(-EOPNOTSUPP);
    }
#undef KEEP_FIRST
    return ret;
}

int sandbox_block_device(const char *path, dev_t *ret)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    /* Major 0 is the anonymous devices: tmpfs, overlay, NFS, btrfs subvolumes. */
    if (major(st.st_dev) == 0)
        return -ENODEV;
    char sys[PATH_MAX], real[PATH_MAX];
    snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
    if (!realpath(sys, real))
        return -ENODEV;
    /* A partition's directory sits in its disk's, and holds a "partition" file. */
    char probe[PATH_MAX + 16];
    snprintf(probe, sizeof(probe), "%s/partition", real);
    if (access(probe, F_OK) < 0) {
        *ret = st.st_dev;
        return 0;
    }
    char *slash = strrchr(real, '/');
    if (!slash)
        return -ENODEV;
    *slash = 0;
    _cleanup_free_ char *dev = NULL;
    int r = read_str(real, "dev", &dev);
    unsigned maj, min;
    if (r < 0 || sscanf(dev, "%u:%u", &maj, &min) != 2)
        return -ENODEV;
    *ret = makedev(maj, min);
    return 0;
}

int sandbox_cgroup_get_usage(struct sandbox_cgroup *cg, struct sandbox_usage *ret)
{
    struct sandbox_usage u = {
        SANDBOX_USAGE_UNKNOWN, SANDBOX_USAGE_UNKNOWN, SANDBOX_USAGE_UNKNOWN,
        SANDBOX_USAGE_UNKNOWN, SANDBOX_USAGE_UNKNOWN,
    };
    size_t i;
    int r;
    if (root_has(cg, CG_MEMORY, &i)) {
        const char *d = cg->path[i];
        if (cg->root->h[i].v2) {
            if ((r = read_u64(d, "memory.current", &u.memory_current)) < 0)
                return r;
            (void)read_u64(d, "memory.peak", &u.memory_peak);   /* 5.19+ */
            (void)read_keyed(d, "memory.events", "oom_kill", &u.oom_kills);
        } else {
            if ((r = read_u64(d, "memory.usage_in_bytes", &u.memory_current)) < 0)
                return r;
            (void)read_u64(d, "memory.max_usage_in_bytes", &u.memory_peak);
            (void)read_keyed(d, "memory.oom_control", "oom_kill", &u.oom_kills);  /* 4.13+ */
        }
    }
    if (root_has(cg, CG_CPUACCT, &i) && !cg->root->h[i].v2) {
        uint64_t ns;
        if (read_u64(cg->path[i], "cpuacct.usage", &ns) >= 0)
            u.cpu_usec = ns / 1000;
    } else {
        /* cpu.stat's usage_usec exists in every v2 cgroup, controller or not. */
        for (i = 0; i < cg->root->n; i++)
            if (cg->root->h[i].v2)
                (void)read_keyed(cg->path[i], "cpu.stat", "usage_usec", &u.cpu_usec);
    }
    if (root_has(cg, CG_PIDS, &i))
        (void)read_u64(cg->path[i], "pids.current", &u.pids_current);
    *ret = u;
    return 0;
}

static int attach_one(const char *dir, pid_t pid)
{
    char v[32];
    snprintf(v, sizeof(v), "%d", pid);
    return write_str(dir, "cgroup.procs", v);
}

int sandbox_cgroup_attach_v1(struct sandbox_cgroup *cg, pid_t pid, bool skip_v2)
{
    for (size_t i = 0; i < cg->root->n; i++) {
        if (skip_v2 && cg->root->h[i].v2)
            continue;
        int r = attach_one(cg->path[i], pid);
        if (r < 0)
            return r;
    }
    return 0;
}

int sandbox_cgroup_attach(struct sandbox_cgroup *cg, pid_t pid)
{
    return sandbox_cgroup_attach_v1(cg, pid, false);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

/* Returns the number of pids listed in dir/cgroup.procs, SIGKILLing each. */
static int kill_listed(const char *dir)
{
    _cleanup_free_ char *procs = NULL;
    int r = read_str(dir, "cgroup.procs", &procs);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    int n = 0;
    for (char *p = procs, *end; *p; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        while (*end == '\n')
            end++;
        if (pid > 0) {
            (void)kill((pid_t)pid, SIGKILL);
            n++;
        }
    }
    return n;
}

int sandbox_cgroup_kill(struct sandbox_cgroup *cg)
{
    const char *kill_dir = NULL, *freezer = NULL;
    for (size_t i = 0; i < cg->root->n; i++) {
        if (cg->root->h[i].v2)
            kill_dir = cg->path[i];
        if (cg->root->h[i].ctrl & CG_FREEZER)
            freezer = cg->path[i];
    }
    /* cgroup.kill (5.14) kills atomically, including tasks forked meanwhile. */
    bool have_kill = kill_dir && write_str(kill_dir, "cgroup.kill", "1") == 0;
    const char *list_dir = kill_dir ? kill_dir : cg->root->n ? cg->path[0] : NULL;
    if (!list_dir)
        return 0;

    for (int round = 0; round < 200; round++) {
        int n;
        if (have_kill) {
            _cleanup_free_ char *procs = NULL;
            int r = read_str(list_dir, "cgroup.procs", &procs);
            if (r < 0)
                return r == -ENOENT ? 0 : r;
            n = procs[0] != 0;
        } else {
            /* Without cgroup.kill a fork bomb can create tasks faster than a
             * read-and-kill loop finds them: freeze first so the list is stable. */
            if (freezer)
                (void)write_str(freezer, "freezer.state", "FROZEN");
            n = kill_listed(list_dir);
            if (freezer)
                (void)write_str(freezer, "freezer.state", "THAWED");
            if (n < 0)
                return n;
        }
        if (n == 0)
            return 0;
        sleep_ms(5);
    }
    return -EBUSY;
}

int sandbox_cgroup_remove(struct sandbox_cgroup *cg)
{
    int ret = 0;
    for (size_t i = 0; i < cg->root->n; i++) {
        if (!cg->path[i])
            continue;
        int r = 0;
        /* An exited task can linger in the cgroup for a moment after its parent
         * reaped it (css_set release is deferred), making rmdir fail with EBUSY. */
        for (int tries = 0; tries < 100; tries++) {
            r = rmdir(cg->path[i]) < 0 ? -errno : 0;
            if (r != -EBUSY)
                break;
            sleep_ms(10);
        }
        if (r < 0 && r != -ENOENT && ret == 0)
            ret = r;
    }
    return ret;
}

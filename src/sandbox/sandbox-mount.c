/* The sandbox's file system: a root built on a tmpfs inside the new mount namespace,
 * so nothing is ever created on the host. The parent prepares every byte the child
 * will write (sandbox_mount_plan_prepare); the child only mounts (sandbox_mount_build). */
#include "sandbox/sandbox-internal.h"

#include <fcntl.h>
#include <linux/limits.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common/buf.h"
#include "common/fs.h"

#define DEFAULT_TMP_SIZE (64ull << 20)

/* ---- parent side ---- */

static char *xasprintf_or_null(const char *fmt, ...) _printf_(1, 2);
static char *xasprintf_or_null(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

void sandbox_mount_plan_done(struct sandbox_root_plan *plan)
{
    free(plan->passwd);
    free(plan->group);
    free(plan->hosts);
    free(plan->hostname_file);
    free(plan->resolv_conf);
    for (size_t i = 0; i < plan->n_top; i++)
        free(plan->top[i].link);
    *plan = (struct sandbox_root_plan){ 0 };
}

int sandbox_mount_plan_prepare(const struct sandbox_config *cfg, struct sandbox_root_plan *plan)
{
    *plan = (struct sandbox_root_plan){ .site_dir = cfg->site_dir, .ro_binds = cfg->ro_binds,
                                        .n_ro_binds = cfg->n_ro_binds };

    /* Only the site user and the two ids every tool expects: the host's accounts
     * (and their names, home directories, shells) stay invisible. */
    plan->passwd = xasprintf_or_null(
        "root:x:0:0:root:/:/usr/sbin/nologin\n"
        "site:x:%u:%u:site:/site:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        (unsigned)cfg->uid, (unsigned)cfg->gid);
    plan->group = xasprintf_or_null("root:x:0:\nsite:x:%u:\nnogroup:x:65534:\n",
                                    (unsigned)cfg->gid);
    plan->hosts = xasprintf_or_null("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost %s\n",
                                    cfg->name, cfg->name);
    plan->hostname_file = xasprintf_or_null("%s\n", cfg->name);
    if (!plan->passwd || !plan->group || !plan->hosts || !plan->hostname_file)
        goto oom;

    if (cfg->network != SANDBOX_NETWORK_NONE) {
        /* Read here, not in the child: /etc/resolv.conf is often an absolute
         * symlink (systemd-resolved) that would not resolve from /oldroot. */
        int r = read_file("/etc/resolv.conf", 64 << 10, &plan->resolv_conf, NULL);
        if (r < 0 && r != -ENOENT)
            goto fail_r;
        (void)r;
    }

    uint64_t tmp = cfg->tmp_size ? cfg->tmp_size : DEFAULT_TMP_SIZE;
    snprintf(plan->tmp_opts, sizeof(plan->tmp_opts), "mode=1777,size=%llu",
             (unsigned long long)tmp);

    static const char *tops[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
    for (size_t i = 0; i < ARRAY_SIZE(tops); i++) {
        char path[16], target[PATH_MAX];
        snprintf(path, sizeof(path), "/%s", tops[i]);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        char *link = NULL;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(path, target, sizeof(target) - 1);
            if (n <= 0)
                continue;
            target[n] = 0;
            if (!(link = strdup(target)))
                goto oom;
        } else if (!S_ISDIR(st.st_mode)) {
            continue;
        }
        plan->top[plan->n_top].name = tops[i];
        plan->top[plan->n_top].link = link;
        plan->n_top++;
    }
    return 0;
oom:
    sandbox_mount_plan_done(plan);
    return -ENOMEM;
fail_r:
    sandbox_mount_plan_done(plan);
    return -EIO;
}

/* ---- child side ---- */

static int set_attr(const char *path, uint64_t attr, bool recursive)
{
    struct mount_attr ma = { .attr_set = attr };
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0,
                &ma, sizeof(ma)) == 0)
        return 0;
    if (errno != ENOSYS)
        return -errno;
    /* Before 5.12: a bind remount changes the per-mount flags of the top mount only. */
    unsigned long fl = MS_REMOUNT | MS_BIND;
    if (attr & MOUNT_ATTR_RDONLY) fl |= MS_RDONLY;
    if (attr & MOUNT_ATTR_NOSUID) fl |= MS_NOSUID;
    if (attr & MOUNT_ATTR_NODEV) fl |= MS_NODEV;
    if (attr & MOUNT_ATTR_NOEXEC) fl |= MS_NOEXEC;
    return mount(NULL, path, NULL, fl, NULL) < 0 ? -errno : 0;
}

/* Creates the mount point dst like src (directory or empty file). */
static int make_target(const char *src, const char *dst)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode)) {
        int r = mkdir_p(dst, 0755);
        return r;
    }
    _cleanup_free_ char *parent = strdup(dst);
    if (!parent)
        return -ENOMEM;
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        int r = mkdir_p(parent, 0755);
        if (r < 0)
            return r;
    }
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int bind(const char *src, const char *dst, uint64_t attr, bool optional)
{
    int r = make_target(src, dst);
    if (r == -ENOENT && optional)
        return 0;
    if (r < 0)
        return r;
    /* MS_REC: a bind without it would drop submounts of src and show what lies
     * beneath them, which may differ from what the host sees. */
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    return set_attr(dst, attr, true);
}

static int write_text(const char *path, const char *text)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

static int build_etc(const struct sandbox_root_plan *plan)
{
    int r;
    if (mkdir("/newroot/etc", 0755) < 0)
        return -errno;
    if ((r = write_text("/newroot/etc/passwd", plan->passwd)) < 0 ||
        (r = write_text("/newroot/etc/group", plan->group)) < 0 ||
        (r = write_text("/newroot/etc/hosts", plan->hosts)) < 0 ||
        (r = write_text("/newroot/etc/hostname", plan->hostname_file)) < 0 ||
        (r = write_text("/newroot/etc/nsswitch.conf",
                        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n")) < 0)
        return r;
    if (plan->resolv_conf && (r = write_text("/newroot/etc/resolv.conf", plan->resolv_conf)) < 0)
        return r;
    /* The dynamic linker works without its cache, only slower; certificates let
     * programs speak TLS; Debian's /usr/bin/awk and friends point into
     * /etc/alternatives. */
    static const char *ro[] = { "ld.so.cache", "ssl/certs", "alternatives", "mime.types" };
    const uint64_t attr = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    for (size_t i = 0; i < ARRAY_SIZE(ro); i++) {
        char src[64], dst[64];
        snprintf(src, sizeof(src), "/oldroot/etc/%s", ro[i]);
        snprintf(dst, sizeof(dst), "/newroot/etc/%s", ro[i]);
        if ((r = bind(src, dst, attr, true)) < 0)
            return r;
    }
    /* localtime is an absolute symlink into /usr/share/zoneinfo: it resolves only
     * inside the new root, so copy the link rather than bind its target. */
    char zone[PATH_MAX];
    ssize_t n = readlink("/oldroot/etc/localtime", zone, sizeof(zone) - 1);
    if (n > 0) {
        zone[n] = 0;
        if (symlink(zone, "/newroot/etc/localtime") < 0)
            return -errno;
    }
    return 0;
}

static int build_dev(const char *shm_opts)
{
    int r;
    /* A tmpfs of our own instead of the host's devtmpfs: only the harmless nodes
     * exist, so no disk or /dev/mem can be opened even by a bug that gave root. */
    if (mkdir("/newroot/dev", 0755) < 0)
        return -errno;
    if (mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
        return -errno;
    static const char *nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
        char src[32], dst[32];
        snprintf(src, sizeof(src), "/oldroot/dev/%s", nodes[i]);
        snprintf(dst, sizeof(dst), "/newroot/dev/%s", nodes[i]);
        if ((r = bind(src, dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false)) < 0)
            return r;
    }
    /* newinstance: a private pts instance, so the site cannot open the host's
     * terminals through /dev/pts/N (devpts.rst, "multi-instance"). */
    if (mkdir("/newroot/dev/pts", 0755) < 0 ||
        mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620") < 0 ||
        symlink("pts/ptmx", "/newroot/dev/ptmx") < 0)
        return -errno;
    if (mkdir("/newroot/dev/shm", 01777) < 0 ||
        mount("tmpfs", "/newroot/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm_opts) < 0)
        return -errno;
    if (symlink("/proc/self/fd", "/newroot/dev/fd") < 0 ||
        symlink("/proc/self/fd/0", "/newroot/dev/stdin") < 0 ||
        symlink("/proc/self/fd/1", "/newroot/dev/stdout") < 0 ||
        symlink("/proc/self/fd/2", "/newroot/dev/stderr") < 0)
        return -errno;
    return 0;
}

#define TRY(st, expr) do { int _r = (expr); if (_r < 0) { *ret_step = (st); return _r; } } while (0)
#define TRY_ERRNO(st, expr) do { if ((expr) < 0) { *ret_step = (st); return -errno; } } while (0)

int sandbox_mount_build(const struct sandbox_root_plan *plan, int *ret_step)
{
    const uint64_t ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

    /* 1. With systemd, / is MS_SHARED: without this every mount below would
     *    propagate back to the host's namespace (mount_namespaces(7)). */
    TRY_ERRNO(SANDBOX_STEP_MOUNT_PRIVATE, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));

    /* 2. A scratch tmpfs that becomes / for a moment, with the host's tree below
     *    it at /oldroot: every bind source is then named "/oldroot/...", and a
     *    site dir anywhere (even under /tmp) stays reachable. The mount point
     *    /tmp is only borrowed: pivot_root moves the tmpfs away from it. */
    TRY_ERRNO(SANDBOX_STEP_ROOT, mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                                       "mode=0755,size=64k"));
    TRY_ERRNO(SANDBOX_STEP_ROOT, mkdir("/tmp/newroot", 0755));
    TRY_ERRNO(SANDBOX_STEP_ROOT, mkdir("/tmp/oldroot", 0755));
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, syscall(SYS_pivot_root, "/tmp", "/tmp/oldroot"));
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, chdir("/"));

    /* 3. The sandbox's root: its own tmpfs, made read-only at the end. */
    TRY_ERRNO(SANDBOX_STEP_ROOT, mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV,
                                       "mode=0755,size=1m"));
    TRY(SANDBOX_STEP_BIND, bind("/oldroot/usr", "/newroot/usr", ro, false));
    for (size_t i = 0; i < plan->n_top; i++) {
        char src[32], dst[32];
        snprintf(src, sizeof(src), "/oldroot/%s", plan->top[i].name);
        snprintf(dst, sizeof(dst), "/newroot/%s", plan->top[i].name);
        if (plan->top[i].link)
            TRY_ERRNO(SANDBOX_STEP_BIND, symlink(plan->top[i].link, dst));
        else
            TRY(SANDBOX_STEP_BIND, bind(src, dst, ro, false));
    }
    TRY(SANDBOX_STEP_ETC, build_etc(plan));
    /* Extra binds after the generated /etc, so that one may land in it (/etc/php). */
    for (size_t i = 0; i < plan->n_ro_binds; i++) {
        const char *from = plan->ro_binds[i].source;
        const char *to = plan->ro_binds[i].target ? plan->ro_binds[i].target : from;
        char src[PATH_MAX], dst[PATH_MAX];
        if (from[0] != '/' || to[0] != '/' || strstr(from, "/..") || strstr(to, "/..") ||
            snprintf(src, sizeof(src), "/oldroot%s", from) >= (int)sizeof(src) ||
            snprintf(dst, sizeof(dst), "/newroot%s", to) >= (int)sizeof(dst)) {
            *ret_step = SANDBOX_STEP_BIND;
            return -EINVAL;
        }
        TRY(SANDBOX_STEP_BIND, bind(src, dst, ro, false));
    }

    /* 4. The site's directory, writable, but nosuid/nodev: a site that plants a
     *    setuid file or device node there gains nothing from it. */
    {
        char src[PATH_MAX];
        if (snprintf(src, sizeof(src), "/oldroot%s", plan->site_dir) >= (int)sizeof(src)) {
            *ret_step = SANDBOX_STEP_SITE_DIR;
            return -ENAMETOOLONG;
        }
        TRY_ERRNO(SANDBOX_STEP_SITE_DIR, mkdir("/newroot/site", 0755));
        TRY_ERRNO(SANDBOX_STEP_SITE_DIR, mount(src, "/newroot/site", NULL, MS_BIND | MS_REC, NULL));
        TRY(SANDBOX_STEP_SITE_DIR, set_attr("/newroot/site", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true));
    }

    TRY(SANDBOX_STEP_DEV, build_dev(plan->tmp_opts));

    /* 5. A proc of the new pid namespace (we are its pid 1, so this proc shows only
     *    sandbox processes). /proc/sys is made read-only on top of it, as Docker does:
     *    sysctls are global to the host for most of their names. */
    TRY_ERRNO(SANDBOX_STEP_PROC, mkdir("/newroot/proc", 0555));
    TRY_ERRNO(SANDBOX_STEP_PROC, mount("proc", "/newroot/proc", "proc",
                                       MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
    TRY_ERRNO(SANDBOX_STEP_PROC, mount("/newroot/proc/sys", "/newroot/proc/sys", NULL,
                                       MS_BIND | MS_REC, NULL));
    TRY(SANDBOX_STEP_PROC, set_attr("/newroot/proc/sys", ro | MOUNT_ATTR_NOEXEC, true));

    TRY_ERRNO(SANDBOX_STEP_TMP, mkdir("/newroot/tmp", 01777));
    TRY_ERRNO(SANDBOX_STEP_TMP, mount("tmpfs", "/newroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
                                      plan->tmp_opts));
    TRY_ERRNO(SANDBOX_STEP_TMP, mkdir("/newroot/run", 0755));

    /* 6. Drop the host's tree: MNT_DETACH because its mounts may be busy; once
     *    detached nothing in the namespace can reach them again. */
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, umount2("/oldroot", MNT_DETACH));
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, chdir("/newroot"));
    /* pivot_root(".", ".") stacks the scratch root on top of the new one; unmounting
     * "." then leaves the new root alone (pivot_root(2), NOTES). */
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, syscall(SYS_pivot_root, ".", "."));
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, umount2(".", MNT_DETACH));
    TRY_ERRNO(SANDBOX_STEP_PIVOT_ROOT, chdir("/"));

    /* 7. Read-only root and /dev (their own mounts below stay as they are). */
    TRY(SANDBOX_STEP_REMOUNT_RO, set_attr("/", ro, false));
    TRY(SANDBOX_STEP_REMOUNT_RO, set_attr("/dev", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                          MOUNT_ATTR_NOEXEC, false));
    return 0;
}

#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/syscall.h>

int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int ensure_dir(int dirfd, const char *name, uid_t uid, gid_t gid, mode_t mode)
{
    if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
        return -errno;
    /* O_NOFOLLOW|O_DIRECTORY: a symlink planted in place of the directory fails with
     * ENOTDIR/ELOOP instead of letting us chown its target. */
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0)
        return -errno;
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
        return -errno;
    return 0;
}

/* Levels rm_rf holds open at once. A tree can be nested far deeper (a site's
 * program can nest directories without limit); below this a directory is moved
 * up to the top of the tree being removed and emptied by a later pass, so the
 * fds and stack in use stay bounded. */
#define RM_RF_MAX_DEPTH 64
/* Passes over the top: each empties RM_RF_MAX_DEPTH more levels of every deep
 * branch, so this allows trees millions of levels deep, while a tree that
 * keeps growing under us (someone holds an fd inside it) cannot keep the
 * caller busy for ever. */
#define RM_RF_MAX_PASSES 65536

/* Moves dir's entry name to a fresh name in top, never replacing anything. */
static int rm_rf_hoist(int dir, const char *name, int top)
{
    static unsigned counter;
    for (int tries = 0; tries < 1000; tries++) {
        char fresh[32];
        snprintf(fresh, sizeof(fresh), ".rm-rf-%u", counter++);
        if (renameat2(dir, name, top, fresh, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

/* Removes what is inside fd (taken over and closed), depth levels below top;
 * sets *hoisted when it moved a directory up to top instead of entering it. */
static int rm_rf_children(int fd, dev_t dev, int top, unsigned depth, bool *hoisted)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    int ret = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT && ret == 0)
                ret = -errno;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev)   /* a mount point: never descend into it */
                continue;
            if (depth + 1 >= RM_RF_MAX_DEPTH) {
                int r = rm_rf_hoist(dirfd(d), de->d_name, top);
                if (r == 0)
                    *hoisted = true;
                else if (ret == 0)
                    ret = r;
                continue;
            }
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                int r = rm_rf_children(sub, dev, top, depth + 1, hoisted);
                if (r < 0 && ret == 0)
                    ret = r;
            }
            if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && ret == 0)
                ret = -errno;
        } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && ret == 0) {
            ret = -errno;
        }
    }
    closedir(d);
    return ret;
}

int rm_rf_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    _cleanup_close_ int top = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0)
        return -errno;
    int r = 0;
    bool hoisted = true;
    for (int pass = 0; r == 0 && hoisted; pass++) {
        if (pass == RM_RF_MAX_PASSES) {
            r = -ELOOP;
            break;
        }
        hoisted = false;
        /* Each pass reads top afresh: its own open, so its own offset. */
        int fd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = fd < 0 ? -errno : rm_rf_children(fd, st.st_dev, top, 0, &hoisted);
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
        r = -errno;
    return r;
}

int rm_rf(const char *path)
{
    return rm_rf_at(AT_FDCWD, path);
}

int fsync_dir(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return fsync(fd) < 0 ? -errno : 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
        return -ENAMETOOLONG;
    return write_file_atomic_via(path, tmp, data, len, mode);
}

int write_file_atomic_via(const char *path, const char *tmp, const void *data, size_t len, mode_t mode)
{
    char dir[4096];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    const char *p = data;
    size_t left = len;
    int r = 0;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    return fsync_dir(dir);
}

int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Read up to max+1 bytes: one byte past max is how we know the file is too big. */
    size_t cap = MIN((size_t)4096, max + 1), len = 0;
    _cleanup_free_ char *data = malloc(cap + 1);
    if (!data)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap > max)
                return -EFBIG;
            cap = MIN(cap * 2, max + 1);
            char *p = realloc(data, cap + 1);
            if (!p)
                return -ENOMEM;
            data = p;
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max)
        return -EFBIG;
    data[len] = 0;
    if (ret_len)
        *ret_len = len;
    *ret = TAKE_PTR(data);
    return 0;
}

int open_beneath(int rootfd, const char *path, int flags, mode_t mode, uint64_t extra_resolve)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra_resolve,
    };
    long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

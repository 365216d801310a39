/* Restoring a snapshot: the upload's extraction and swap, for several directories.
 *
 *   .upload-XXXXXX/          root:root 0700, as for an upload
 *     tree/                  the whole snapshot
 *       public/  private/    each swapped with the site's one of that name
 *       berth-site.json      read, never swapped
 *
 * Nothing of the site changes until every entry of the archive has passed the
 * upload's checks, every link has been judged from the directory it will live in,
 * and the new trees are on disk. Two directories cannot be exchanged in one
 * rename: the swaps follow each other, and a failed one undoes those before it. */
#include "upload/upload-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/fs.h"

struct upload_restore {
    int site_fd;                 /* borrowed */
    char staging[32];            /* name in site_fd; "" when none was made */
    int tree_fd;                 /* staging/tree */
    struct upload_restore_dir dirs[UPLOAD_RESTORE_MAX_DIRS];
    char names[UPLOAD_RESTORE_MAX_DIRS][NAME_MAX + 1];
    struct stat current[UPLOAD_RESTORE_MAX_DIRS];
    size_t n_dirs;
    char *meta;
    size_t meta_len;
    struct upload_stats stats;
    bool committed;
};

void upload_restore_free(struct upload_restore *r)
{
    if (!r)
        return;
    safe_close(r->tree_fd);
    if (r->staging[0])
        rm_rf_at(r->site_fd, r->staging);
    free(r->meta);
    free(r);
}

/* Gives everything beneath dir_fd (itself included) uid:gid. The tree is in the
 * root-only staging directory, so nothing can change it under us; links are never
 * followed all the same. Its depth is bounded by the extraction's max_depth. */
static int chown_tree(int dir_fd, uid_t uid, gid_t gid)
{
    if (fchown(dir_fd, uid, gid) < 0)
        return -errno;
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    int r = 0;
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                r = -errno;
                break;
            }
            r = chown_tree(sub, uid, gid);
            close(sub);
        } else if (fchownat(dir_fd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
        }
    }
    closedir(d);
    return r;
}

/* The top level of the unpacked tree is a snapshot's: only the named directories
 * and the meta file. */
static int check_top(struct upload_restore *rs, const char *meta_name, struct error *err)
{
    bool seen[UPLOAD_RESTORE_MAX_DIRS] = { 0 };
    int fd = openat(rs->tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, -errno, "cannot read the unpacked snapshot: %m");
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return error_set(err, r, "cannot read the unpacked snapshot: %s", strerror(-r));
    }
    int r = 0;
    struct dirent *de;
    char q[UPLOAD_QUOTE_MAX];
    while (r >= 0 && (de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(rs->tree_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = error_set(err, -errno, "cannot read the unpacked snapshot: %m");
            break;
        }
        bool known = false;
        for (size_t i = 0; i < rs->n_dirs && !known; i++) {
            if (!streq(de->d_name, rs->dirs[i].name))
                continue;
            known = true;
            if (!S_ISDIR(st.st_mode))
                r = error_set(err, -EINVAL, "not a berth snapshot: its '%s' is not a folder", de->d_name);
            seen[i] = true;
        }
        if (!known && meta_name && streq(de->d_name, meta_name)) {
            known = true;
            if (!S_ISREG(st.st_mode))
                r = error_set(err, -EINVAL, "not a berth snapshot: its '%s' is not a file", de->d_name);
        }
        if (!known)
            r = error_set(err, -EINVAL, "not a berth snapshot: it holds '%s' beside the site's folders",
                          upload_name_quote(de->d_name, q));
    }
    closedir(d);
    for (size_t i = 0; r >= 0 && i < rs->n_dirs; i++)
        if (!seen[i])
            r = error_set(err, -EINVAL, "not a berth snapshot: it has no '%s' folder", rs->dirs[i].name);
    return r;
}

static int read_meta(struct upload_restore *rs, const char *meta_name, size_t meta_max, struct error *err)
{
    _cleanup_close_ int fd = open_beneath(rs->tree_fd, meta_name, O_RDONLY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return error_set(err, fd, "cannot read the snapshot's %s: %s", meta_name, strerror(-fd));
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, -errno, "cannot read the snapshot's %s: %m", meta_name);
    if ((uint64_t)st.st_size > meta_max)
        return error_set(err, -EINVAL, "the snapshot's %s is larger than %zu bytes", meta_name, meta_max);
    rs->meta = malloc((size_t)st.st_size + 1);
    if (!rs->meta)
        return error_set(err, -ENOMEM, "out of memory");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, rs->meta + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return error_set(err, n < 0 ? -errno : -EIO, "cannot read the snapshot's %s", meta_name);
        got += (size_t)n;
    }
    rs->meta[got] = 0;
    rs->meta_len = got;
    /* The stats tell what lands in the site: the meta file never does. */
    if (rs->stats.files > 0)
        rs->stats.files--;
    rs->stats.bytes -= MIN(rs->stats.bytes, (uint64_t)got);
    return 0;
}

static int prepare(struct upload_restore *rs, int archive_fd, const struct upload_limits *limits,
                   const char *meta_name, size_t meta_max, struct error *err)
{
    int r = upload_staging_make(rs->site_fd, rs->staging);
    if (r < 0) {
        rs->staging[0] = 0;
        return error_set(err, r, "cannot create the restore's staging directory: %s", strerror(-r));
    }
    _cleanup_close_ int staging = open_beneath(rs->site_fd, rs->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                                               RESOLVE_NO_SYMLINKS);
    if (staging < 0)
        return error_set(err, staging, "cannot open the restore's staging directory: %s", strerror(-staging));
    if (mkdirat(staging, "tree", 0700) < 0)
        return error_set(err, -errno, "cannot create the restore's staging directory: %m");
    rs->tree_fd = open_beneath(staging, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    if (rs->tree_fd < 0)
        return error_set(err, rs->tree_fd, "cannot open the restore's staging directory: %s", strerror(-rs->tree_fd));

    struct upload_links links = { 0 };
    r = upload_extract_links(rs->tree_fd, archive_fd, limits, rs->dirs[0].uid, rs->dirs[0].gid, err, &rs->stats,
                             &links);
    if (r >= 0)
        r = check_top(rs, meta_name, err);
    /* Each directory is a root of its own once swapped in: a link in public/ that
     * reaches into private/ through the snapshot's top would leave public/. */
    for (size_t i = 0; r >= 0 && i < rs->n_dirs; i++) {
        _cleanup_close_ int root = open_beneath(rs->tree_fd, rs->dirs[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                                0, RESOLVE_NO_SYMLINKS);
        if (root < 0) {
            r = error_set(err, root, "cannot open the unpacked '%s': %s", rs->dirs[i].name, strerror(-root));
            break;
        }
        r = upload_links_check(root, &links, rs->dirs[i].name, err);
        if (r >= 0 && (rs->dirs[i].uid != rs->dirs[0].uid || rs->dirs[i].gid != rs->dirs[0].gid)) {
            r = chown_tree(root, rs->dirs[i].uid, rs->dirs[i].gid);
            if (r < 0)
                r = error_set(err, r, "cannot set the owner of the restored '%s': %s", rs->dirs[i].name,
                              strerror(-r));
        }
        if (r >= 0 && (fchown(root, rs->current[i].st_uid, rs->current[i].st_gid) < 0 ||
                       fchmod(root, rs->current[i].st_mode & 07777) < 0))
            r = error_set(err, -errno, "cannot set the owner of the restored '%s': %m", rs->dirs[i].name);
    }
    upload_links_done(&links);
    if (r >= 0 && meta_name)
        r = read_meta(rs, meta_name, meta_max, err);
    return r;
}

int upload_restore_prepare(int site_dir_fd, int archive_fd, const struct upload_limits *limits,
                           const struct upload_restore_dir *dirs, size_t n_dirs, const char *meta_name,
                           size_t meta_max, struct error *err, struct upload_restore **ret)
{
    if (n_dirs == 0 || n_dirs > UPLOAD_RESTORE_MAX_DIRS)
        return error_set(err, -EINVAL, "a restore replaces 1 to %d directories", UPLOAD_RESTORE_MAX_DIRS);
    struct upload_restore *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return error_set(err, -ENOMEM, "out of memory");
    rs->site_fd = site_dir_fd;
    rs->tree_fd = -1;
    rs->n_dirs = n_dirs;
    int r = 0;
    for (size_t i = 0; i < n_dirs && r >= 0; i++) {
        snprintf(rs->names[i], sizeof(rs->names[i]), "%s", dirs[i].name);
        rs->dirs[i] = dirs[i];
        rs->dirs[i].name = rs->names[i];
        if (fstatat(site_dir_fd, dirs[i].name, &rs->current[i], AT_SYMLINK_NOFOLLOW) < 0)
            r = error_set(err, -errno, "the site has no %s directory: %m", dirs[i].name);
        else if (!S_ISDIR(rs->current[i].st_mode))
            r = error_set(err, -ENOTDIR, "the site's %s is not a directory", dirs[i].name);
    }
    if (r >= 0)
        r = prepare(rs, archive_fd, limits, meta_name, meta_max, err);
    if (r < 0) {
        upload_restore_free(rs);
        return r;
    }
    *ret = rs;
    return 0;
}

const char *upload_restore_meta(const struct upload_restore *r, size_t *ret_len)
{
    if (ret_len)
        *ret_len = r->meta_len;
    return r->meta;
}

void upload_restore_stats(const struct upload_restore *r, struct upload_stats *ret)
{
    *ret = r->stats;
}

int upload_restore_commit(struct upload_restore *rs, struct error *err)
{
    if (rs->committed)
        return error_set(err, -EALREADY, "the restore was made already");
    /* The data must be on disk before the names point at it. */
    if (syncfs(rs->tree_fd) < 0)
        return error_set(err, -errno, "cannot flush the restored trees to disk: %m");
    for (size_t i = 0; i < rs->n_dirs; i++) {
        const char *name = rs->dirs[i].name;
        if (renameat2(rs->tree_fd, name, rs->site_fd, name, RENAME_EXCHANGE) == 0)
            continue;
        int r = error_set(err, -errno, "cannot swap the restored %s in: %m", name);
        /* Undo in reverse: the site gets its old directories back. */
        while (i-- > 0)
            renameat2(rs->tree_fd, rs->dirs[i].name, rs->site_fd, rs->dirs[i].name, RENAME_EXCHANGE);
        return r;
    }
    fsync(rs->site_fd);
    rs->committed = true;
    return 0;
}

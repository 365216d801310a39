/* Restoring a snapshot: the upload's extraction and swap, for several directories.
 *
 *   .upload-XXXXXX/          root:root 0700, as for an upload
 *     tree/                  the whole snapshot, filled by the unpacker as the
 *                            site (site uid : public/'s group, 02750)
 *       public/  private/    each swapped with the site's one of that name
 *       berth-site.json      read, never swapped
 *
 * Nothing of the site changes until every entry of the archive has passed the
 * upload's checks, every link has been judged from the directory it will live in,
 * and the new trees are on disk. Two directories cannot be exchanged in one
 * rename: the swaps follow each other, and a failed one undoes those before it. */
#include "upload/upload-internal.h"
#include "common/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/util.h"

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

/* Gives everything beneath dir_fd (itself included) the group gid; links are never
 * followed. Runs in the unpacker, which owns all of it and has gid as its own
 * group, so the kernel lets it (and a directory keeps its setgid bit through a
 * chown). Its depth is bounded by the extraction's max_depth. */
static int chgrp_tree(int dir_fd, gid_t gid)
{
    if (fchown(dir_fd, (uid_t)-1, gid) < 0)
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
            r = chgrp_tree(sub, gid);
            close(sub);
        } else if (fchownat(dir_fd, de->d_name, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
        }
    }
    closedir(d);
    return r;
}

/* The top level of the unpacked tree is a snapshot's: only the named directories
 * and the meta file. */
static int check_top(const struct upload_restore *rs, int tree_fd, const char *meta_name, struct error *err)
{
    bool seen[UPLOAD_RESTORE_MAX_DIRS] = { 0 };
    int fd = openat(tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
        if (fstatat(tree_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
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
    /* The unpacker (the site) made this file: O_NONBLOCK, so a fifo in its place
     * cannot hold this open, and only a regular file is read. */
    _cleanup_close_ int fd = open_beneath(rs->tree_fd, meta_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0,
                                          RESOLVE_NO_SYMLINKS);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return error_set(err, fd, "cannot read the snapshot's %s: %s", meta_name, strerror(-fd));
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, -errno, "cannot read the snapshot's %s: %m", meta_name);
    if (!S_ISREG(st.st_mode))
        return error_set(err, -EINVAL, "not a berth snapshot: its '%s' is not a file", meta_name);
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

/* What the unpacker needs beyond the archive. */
struct restore_unpack {
    const struct upload_restore *rs;
    const struct upload_limits *limits;
    const char *meta_name;
};

/* In the unpacker: extracts the snapshot, checks its top level and its links, and
 * gives each directory its group (the extraction gave everything the tree's, the
 * first directory's). */
static int unpack_restore(int tree_fd, int archive_fd, void *data, struct error *err, struct upload_stats *ret_stats)
{
    const struct restore_unpack *u = data;
    const struct upload_restore *rs = u->rs;
    struct upload_links links = { 0 };
    int r = upload_extract_links(tree_fd, archive_fd, u->limits, (uid_t)-1, (gid_t)-1, err, ret_stats, &links);
    if (r >= 0)
        r = check_top(rs, tree_fd, u->meta_name, err);
    /* Each directory is a root of its own once swapped in: a link in public/ that
     * reaches into private/ through the snapshot's top would leave public/. */
    for (size_t i = 0; r >= 0 && i < rs->n_dirs; i++) {
        _cleanup_close_ int root = open_beneath(tree_fd, rs->dirs[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                                0, RESOLVE_NO_SYMLINKS);
        if (root < 0) {
            r = error_set(err, root, "cannot open the unpacked '%s': %s", rs->dirs[i].name, strerror(-root));
            break;
        }
        r = upload_links_check(root, &links, rs->dirs[i].name, err);
        if (r >= 0 && rs->dirs[i].gid != rs->dirs[0].gid && (r = chgrp_tree(root, rs->dirs[i].gid)) < 0)
            r = error_set(err, r, "cannot set the owner of the restored '%s': %s", rs->dirs[i].name, strerror(-r));
    }
    upload_links_done(&links);
    return r < 0 ? r : 0;
}

static int prepare(struct upload_restore *rs, int archive_fd, const struct upload_limits *limits, uid_t uid,
                   gid_t gid, const char *meta_name, size_t meta_max, struct error *err)
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
    rs->tree_fd = upload_tree_make(staging, "tree", uid, rs->dirs[0].gid);
    if (rs->tree_fd < 0)
        return error_set(err, rs->tree_fd, "cannot create the restore's staging directory: %s",
                         strerror(-rs->tree_fd));

    struct restore_unpack u = { .rs = rs, .limits = limits, .meta_name = meta_name };
    r = upload_unpacker_run(staging, rs->tree_fd, archive_fd, uid, gid, limits, unpack_restore, &u, err, &rs->stats);
    if (r < 0)
        return r;
    /* The unpacker has exited; what it made is the site's. Root gives each new
     * directory the current one's owner and mode (a chmod that keeps public/'s
     * setgid bit needs root), on an fd that is a real directory, never a link. */
    for (size_t i = 0; i < rs->n_dirs; i++) {
        _cleanup_close_ int root = open_beneath(rs->tree_fd, rs->dirs[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                                0, RESOLVE_NO_SYMLINKS);
        if (root < 0)
            return error_set(err, root, "cannot open the unpacked '%s': %s", rs->dirs[i].name, strerror(-root));
        if (fchown(root, rs->current[i].st_uid, rs->current[i].st_gid) < 0 ||
            fchmod(root, rs->current[i].st_mode & 07777) < 0)
            return error_set(err, -errno, "cannot set the owner of the restored '%s': %m", rs->dirs[i].name);
    }
    if (meta_name)
        r = read_meta(rs, meta_name, meta_max, err);
    return r;
}

int upload_restore_prepare(int site_dir_fd, int archive_fd, const struct upload_limits *limits, uid_t uid,
                           gid_t gid, const struct upload_restore_dir *dirs, size_t n_dirs, const char *meta_name,
                           size_t meta_max, struct error *err, struct upload_restore **ret)
{
    if (n_dirs == 0 || n_dirs > UPLOAD_RESTORE_MAX_DIRS)
        return error_set(err, -EINVAL, "a restore replaces 1 to %d directories", UPLOAD_RESTORE_MAX_DIRS);
    if (upload_unpacker_creds_check(uid, gid) < 0)
        return error_set(err, -EINVAL, "cannot unpack as uid %u, gid %u: the site's own ids are needed",
                         (unsigned)uid, (unsigned)gid);
    /* The unpacker makes every file as uid: it cannot give another owner. */
    for (size_t i = 0; i < n_dirs; i++)
        if (dirs[i].uid != uid)
            return error_set(err, -EINVAL, "the restored %s would be owned by uid %u, not the site's %u",
                             dirs[i].name, (unsigned)dirs[i].uid, (unsigned)uid);
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
        r = prepare(rs, archive_fd, limits, uid, gid, meta_name, meta_max, err);
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

/* ---- the journal ----
 *
 * Two directories cannot be exchanged in one rename. Before the first swap the
 * commit links RESTORE_JOURNAL into the site's directory (root's, never the
 * site's): which staging directory holds the new trees, the device and inode of
 * each, and the settings to store. A crash, or a kill of the process doing the
 * swaps, at any point after that is finished forward by upload_restore_recover:
 * a directory whose inode is not yet the new one is swapped in. Before the
 * journal exists nothing of the site has changed. */

static int write_fully(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#define JOURNAL_MAGIC "berth-restore 1\n"
#define JOURNAL_MAX (UPLOAD_RESTORE_META_MAX + 4096)

static int journal_write(struct upload_restore *rs, const char *meta, size_t meta_len, struct error *err)
{
    struct buf b = BUF_INIT(JOURNAL_MAX);
    int r = buf_printf(&b, JOURNAL_MAGIC "staging %s\n", rs->staging);
    for (size_t i = 0; r >= 0 && i < rs->n_dirs; i++) {
        struct stat st;
        if (fstatat(rs->tree_fd, rs->dirs[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = -errno;
            break;
        }
        r = buf_printf(&b, "dir %s %" PRIu64 " %" PRIu64 "\n", rs->dirs[i].name, (uint64_t)st.st_dev,
                       (uint64_t)st.st_ino);
    }
    if (r >= 0 && meta)
        r = buf_printf(&b, "meta %zu\n", meta_len);
    if (r >= 0 && meta)
        r = buf_append(&b, meta, meta_len);
    if (r < 0) {
        buf_done(&b);
        return error_set(err, r, "cannot write the restore's journal: %s", strerror(-r));
    }
    int fd = openat(rs->site_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
    } else {
        r = write_fully(fd, b.data, b.len);
        if (r >= 0 && fsync(fd) < 0)
            r = -errno;
        if (r >= 0) {
            char proc[64];
            snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
            /* linkat never replaces: a journal already there is an earlier restore
             * that nobody finished, and must not be lost. */
            if (linkat(AT_FDCWD, proc, rs->site_fd, UPLOAD_RESTORE_JOURNAL, AT_SYMLINK_FOLLOW) < 0)
                r = -errno;
        }
        close(fd);
    }
    buf_done(&b);
    if (r == -EEXIST)
        return error_set(err, r, "an earlier restore of this site was interrupted and is not finished: restart "
                         "berthd to finish it");
    if (r < 0)
        return error_set(err, r, "cannot write the restore's journal: %s", strerror(-r));
    if (fsync(rs->site_fd) < 0) {
        r = -errno;
        unlinkat(rs->site_fd, UPLOAD_RESTORE_JOURNAL, 0);
        return error_set(err, r, "cannot write the restore's journal: %s", strerror(-r));
    }
    return 0;
}

int upload_restore_journal_remove(int site_dir_fd)
{
    if (unlinkat(site_dir_fd, UPLOAD_RESTORE_JOURNAL, 0) < 0)
        return errno == ENOENT ? 0 : -errno;
    return fsync(site_dir_fd) < 0 ? -errno : 0;
}

int upload_restore_commit(struct upload_restore *rs, const char *meta, size_t meta_len, struct error *err)
{
    if (rs->committed)
        return error_set(err, -EALREADY, "the restore was made already");
    if (meta && meta_len > UPLOAD_RESTORE_META_MAX)
        return error_set(err, -EFBIG, "the settings to restore are larger than %d bytes", UPLOAD_RESTORE_META_MAX);
    /* The data must be on disk before the names point at it. */
    if (syncfs(rs->tree_fd) < 0)
        return error_set(err, -errno, "cannot flush the restored trees to disk: %m");
    int r = journal_write(rs, meta, meta_len, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < rs->n_dirs; i++) {
        const char *name = rs->dirs[i].name;
        if (i == 1)
            proc_test_gate("BERTH_TEST_RESTORE_SWAP_GATE");   /* a test kills the commit here */
        if (renameat2(rs->tree_fd, name, rs->site_fd, name, RENAME_EXCHANGE) == 0)
            continue;
        r = error_set(err, -errno, "cannot swap the restored %s in: %m", name);
        /* Undo in reverse: the site gets its old directories back. */
        while (i-- > 0)
            renameat2(rs->tree_fd, rs->dirs[i].name, rs->site_fd, rs->dirs[i].name, RENAME_EXCHANGE);
        upload_restore_journal_remove(rs->site_fd);
        return r;
    }
    fsync(rs->site_fd);
    rs->committed = true;
    return 0;
}

/* The journal's contents, parsed. Names point into text. */
struct journal {
    char *text;
    const char *staging;
    struct {
        const char *name;
        uint64_t dev, ino;
    } dirs[UPLOAD_RESTORE_MAX_DIRS];
    size_t n_dirs;
    const char *meta;   /* NULL: no settings to store */
    size_t meta_len;
};

static bool simple_name(const char *s)
{
    return *s && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..") && strlen(s) <= NAME_MAX;
}

/* Cuts the next line off *p (NUL in place of its '\n'); NULL when there is none. */
static char *next_line(char **p, char *end)
{
    char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return NULL;
    char *line = *p;
    *nl = 0;
    *p = nl + 1;
    return line;
}

static int journal_read(int site_fd, struct journal *j)
{
    _cleanup_close_ int fd = open_beneath(site_fd, UPLOAD_RESTORE_JOURNAL, O_RDONLY | O_NOFOLLOW, 0,
                                          RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size > JOURNAL_MAX)
        return -EBADMSG;
    j->text = malloc((size_t)st.st_size + 1);
    if (!j->text)
        return -ENOMEM;
    ssize_t n = pread(fd, j->text, (size_t)st.st_size, 0);
    if (n != st.st_size)
        return n < 0 ? -errno : -EBADMSG;
    j->text[n] = 0;
    char *p = j->text, *end = j->text + n, *line;
    if (strncmp(p, JOURNAL_MAGIC, strlen(JOURNAL_MAGIC)) != 0)
        return -EBADMSG;
    p += strlen(JOURNAL_MAGIC);
    while ((line = next_line(&p, end))) {
        if (str_startswith(line, "staging ")) {
            j->staging = line + strlen("staging ");
            if (!str_startswith(j->staging, UPLOAD_STAGING_PREFIX) || !simple_name(j->staging))
                return -EBADMSG;
        } else if (str_startswith(line, "dir ")) {
            if (j->n_dirs == UPLOAD_RESTORE_MAX_DIRS)
                return -EBADMSG;
            char *name = line + strlen("dir ");
            char *sp = strchr(name, ' ');
            if (!sp)
                return -EBADMSG;
            *sp = 0;
            char *after;
            errno = 0;
            uint64_t dev = strtoull(sp + 1, &after, 10);
            if (errno || *after != ' ')
                return -EBADMSG;
            uint64_t ino = strtoull(after + 1, &after, 10);
            if (errno || *after || !simple_name(name))
                return -EBADMSG;
            j->dirs[j->n_dirs].name = name;
            j->dirs[j->n_dirs].dev = dev;
            j->dirs[j->n_dirs].ino = ino;
            j->n_dirs++;
        } else if (str_startswith(line, "meta ")) {
            char *after;
            errno = 0;
            unsigned long long len = strtoull(line + strlen("meta "), &after, 10);
            if (errno || *after || len != (unsigned long long)(end - p))
                return -EBADMSG;
            j->meta = p;
            j->meta_len = (size_t)len;
            break;
        } else {
            return -EBADMSG;
        }
    }
    return j->staging && j->n_dirs > 0 ? 0 : -EBADMSG;
}

static bool same_inode(int dir_fd, const char *name, uint64_t dev, uint64_t ino)
{
    struct stat st;
    return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
           (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int upload_restore_recover(int site_dir_fd, char **ret_meta, size_t *ret_meta_len, struct error *err)
{
    struct journal j = { 0 };
    int r = journal_read(site_dir_fd, &j);
    if (r == -ENOENT) {
        free(j.text);
        return 0;
    }
    if (r < 0) {
        free(j.text);
        return error_set(err, r, "cannot read the journal of an interrupted restore (%s): %s",
                         UPLOAD_RESTORE_JOURNAL, r == -EBADMSG ? "it is damaged" : strerror(-r));
    }
    _cleanup_close_ int tree = -1;
    char path[NAME_MAX + 8];
    snprintf(path, sizeof(path), "%s/tree", j.staging);
    for (size_t i = 0; r >= 0 && i < j.n_dirs; i++) {
        if (same_inode(site_dir_fd, j.dirs[i].name, j.dirs[i].dev, j.dirs[i].ino))
            continue;   /* swapped before the interruption */
        if (tree < 0)
            tree = open_beneath(site_dir_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
        if (tree < 0 || !same_inode(tree, j.dirs[i].name, j.dirs[i].dev, j.dirs[i].ino))
            r = error_set(err, -ESTALE, "cannot finish an interrupted restore: the restored %s is neither in "
                          "place nor in %s", j.dirs[i].name, path);
        else if (renameat2(tree, j.dirs[i].name, site_dir_fd, j.dirs[i].name, RENAME_EXCHANGE) < 0)
            r = error_set(err, -errno, "cannot finish an interrupted restore: cannot swap %s in: %m",
                          j.dirs[i].name);
    }
    if (r >= 0 && fsync(site_dir_fd) < 0)
        r = error_set(err, -errno, "cannot finish an interrupted restore: %m");
    if (r >= 0 && j.meta) {
        char *meta = malloc(j.meta_len + 1);
        if (!meta) {
            r = error_set(err, -ENOMEM, "out of memory");
        } else {
            memcpy(meta, j.meta, j.meta_len);
            meta[j.meta_len] = 0;
            *ret_meta = meta;
            *ret_meta_len = j.meta_len;
        }
    } else if (r >= 0) {
        *ret_meta = NULL;
        *ret_meta_len = 0;
    }
    free(j.text);
    return r < 0 ? r : 1;
}

int upload_restore_journal_staging(int site_dir_fd, char ret_name[static NAME_MAX + 1])
{
    struct journal j = { 0 };
    int r = journal_read(site_dir_fd, &j);
    if (r >= 0)
        snprintf(ret_name, NAME_MAX + 1, "%s", j.staging);
    free(j.text);
    return r;
}

/* Writing a snapshot: a walk of the site's folders into a pax tar through zstd.
 *
 * The site owns public/ and private/ and may change them while the walk runs: every
 * step opens beneath the directory fd it came from with O_NOFOLLOW, so a folder
 * swapped for a link is stored as that link, never followed; a file is opened
 * O_NONBLOCK and stored only if the open fd is a regular file (a fifo would hang
 * the daemon). A file that shrinks while read is padded with zeros to the size its
 * header announced; one that grows is cut there. */
#include "snapshot/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

struct walk {
    struct archive *a;
    struct error *err;
    uint64_t bytes;
    char path[PATH_MAX];    /* the entry's path in the archive */
};

/* The error of a failed archive call: its errno when it has one (ENOSPC). */
static int archive_failed(struct walk *w, const char *what)
{
    int e = archive_errno(w->a);
    return error_set(w->err, e > 0 ? -e : -EIO, "cannot write the snapshot (%s %s): %s", what, w->path,
                     archive_error_string(w->a) ?: "unknown error");
}

static struct archive_entry *entry_new(const char *path, const struct stat *st, mode_t type)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return NULL;
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, st->st_mode & 07777);
    archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    archive_entry_set_uid(e, st->st_uid);
    archive_entry_set_gid(e, st->st_gid);
    return e;
}

static int write_header(struct walk *w, struct archive_entry *e)
{
    if (!e)
        return error_set(w->err, -ENOMEM, "out of memory");
    int r = archive_write_header(w->a, e);
    archive_entry_free(e);
    return r < ARCHIVE_WARN ? archive_failed(w, "header of") : 0;
}

static int write_data(struct walk *w, const void *p, size_t n)
{
    while (n > 0) {
        la_ssize_t k = archive_write_data(w->a, p, n);
        if (k <= 0)
            return archive_failed(w, "data of");
        p = (const char *)p + k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_file(struct walk *w, int dir_fd, const char *name)
{
    _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : error_set(w->err, -errno, "cannot read %s: %m", w->path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(w->err, -errno, "cannot read %s: %m", w->path);
    if (!S_ISREG(st.st_mode))
        return 0;   /* changed under us into something not stored */
    struct archive_entry *e = entry_new(w->path, &st, AE_IFREG);
    if (e)
        archive_entry_set_size(e, st.st_size);
    int r = write_header(w, e);
    if (r < 0)
        return r;
    static char block[128 * 1024];
    uint64_t left = (uint64_t)st.st_size;
    while (left > 0) {
        ssize_t n = read(fd, block, (size_t)MIN((uint64_t)sizeof(block), left));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return error_set(w->err, -errno, "cannot read %s: %m", w->path);
        if (n == 0) {
            /* Shrunk: the header promised more. */
            memset(block, 0, (size_t)MIN((uint64_t)sizeof(block), left));
            n = (ssize_t)MIN((uint64_t)sizeof(block), left);
        }
        if ((r = write_data(w, block, (size_t)n)) < 0)
            return r;
        left -= (uint64_t)n;
        w->bytes += (uint64_t)n;
    }
    return 0;
}

static int write_link(struct walk *w, int dir_fd, const char *name, const struct stat *st)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(dir_fd, name, target, sizeof(target) - 1);
    if (n < 0)
        return errno == ENOENT || errno == EINVAL ? 0 : error_set(w->err, -errno, "cannot read %s: %m", w->path);
    target[n] = 0;
    struct archive_entry *e = entry_new(w->path, st, AE_IFLNK);
    if (e)
        archive_entry_set_symlink(e, target);
    return write_header(w, e);
}

static int walk_dir(struct walk *w, int dir_fd, const struct stat *st, unsigned depth)
{
    if (depth > SNAPSHOT_MAX_DEPTH)
        return error_set(w->err, -ELOOP, "cannot write the snapshot: %s is nested more than %d folders deep",
                         w->path, SNAPSHOT_MAX_DEPTH);
    size_t len = strlen(w->path);
    int r = write_header(w, entry_new(w->path, st, AE_IFDIR));
    if (r < 0)
        return r;
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return error_set(w->err, -errno, "cannot read %s: %m", w->path);
    DIR *d = fdopendir(fd);
    if (!d) {
        r = -errno;
        close(fd);
        return error_set(w->err, r, "cannot read %s: %s", w->path, strerror(-r));
    }
    struct dirent *de;
    while (r >= 0 && (de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        if (len + strlen(de->d_name) + 2 >= sizeof(w->path)) {
            r = error_set(w->err, -ENAMETOOLONG, "cannot write the snapshot: a path in %s is too long", w->path);
            break;
        }
        snprintf(w->path + len, sizeof(w->path) - len, "%s", de->d_name);
        struct stat cst;
        if (fstatat(dir_fd, de->d_name, &cst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                r = error_set(w->err, -errno, "cannot read %s: %m", w->path);
        } else if (S_ISDIR(cst.st_mode)) {
            int sub = openat(dir_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                strcat(w->path, "/");
                r = walk_dir(w, sub, &cst, depth + 1);
                close(sub);
            } else if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR) {
                r = error_set(w->err, -errno, "cannot read %s: %m", w->path);
            }
        } else if (S_ISREG(cst.st_mode)) {
            r = write_file(w, dir_fd, de->d_name);
        } else if (S_ISLNK(cst.st_mode)) {
            r = write_link(w, dir_fd, de->d_name, &cst);
        }
        /* Sockets, fifos and devices are not content: skipped. */
        w->path[len] = 0;
    }
    closedir(d);
    return r;
}

static int write_meta(struct walk *w, const char *meta, size_t meta_len)
{
    snprintf(w->path, sizeof(w->path), "%s", SNAPSHOT_META);
    struct stat st = { .st_mode = 0644 };
    st.st_mtim.tv_sec = time(NULL);
    struct archive_entry *e = entry_new(w->path, &st, AE_IFREG);
    if (e)
        archive_entry_set_size(e, (la_int64_t)meta_len);
    int r = write_header(w, e);
    return r < 0 ? r : write_data(w, meta, meta_len);
}

int snapshot_write(int site_dir_fd, const char *const *dirs, size_t n_dirs, const char *meta, size_t meta_len,
                   int out_fd, struct error *err, uint64_t *ret_bytes)
{
    struct walk w = { .err = err };
    w.a = archive_write_new();
    if (!w.a)
        return error_set(err, -ENOMEM, "out of memory");
    int r = 0;
    if (archive_write_set_format_pax_restricted(w.a) != ARCHIVE_OK || archive_write_add_filter_zstd(w.a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w.a, 1) != ARCHIVE_OK || archive_write_open_fd(w.a, out_fd) != ARCHIVE_OK)
        r = archive_failed(&w, "start of");
    if (r >= 0)
        r = write_meta(&w, meta, meta_len);
    for (size_t i = 0; r >= 0 && i < n_dirs; i++) {
        int fd = openat(site_dir_fd, dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        snprintf(w.path, sizeof(w.path), "%s/", dirs[i]);
        if (fd < 0 || fstat(fd, &st) < 0)
            r = error_set(err, -errno, "cannot read the site's %s: %m", dirs[i]);
        else
            r = walk_dir(&w, fd, &st, 1);
        safe_close(fd);
    }
    /* Close flushes the compressor's last blocks: a full disk may show only here. */
    if (archive_write_close(w.a) != ARCHIVE_OK && r >= 0)
        r = archive_failed(&w, "end of");
    archive_write_free(w.a);
    if (r >= 0 && ret_bytes)
        *ret_bytes = w.bytes;
    return r;
}

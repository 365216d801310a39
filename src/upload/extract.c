/* Unpacking one archive beneath a directory fd. Each entry is judged on its own
 * (path, type, link target) before anything is written for it, and the tree built
 * so far is the only thing ever opened: parents are opened with RESOLVE_NO_SYMLINKS,
 * so a symlink an earlier entry made is never followed by a later one (the classic
 * "a -> /etc" then "a/passwd"). */
#include "upload/upload-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/fs.h"

/* All the names we keep (for directory times and the final symlink check) share
 * one budget, so a hundred thousand 4 KiB names cannot eat the daemon's memory. */
#define MAX_NAME_BYTES (64ULL << 20)

struct dir_time {
    char *path;
    struct timespec mtime;
};

struct extract {
    int tree_fd;                       /* borrowed */
    const struct upload_limits *lim;   /* borrowed */
    struct archive *a;
    struct upload_source *src;
    uid_t uid;
    gid_t gid;
    uint64_t archive_size;             /* 0: not a regular file, ask libarchive */
    uint64_t entries;
    uint64_t name_bytes;
    uint64_t unpacked;                 /* data bytes read, written or skipped: what the limits count */
    struct upload_stats stats;
    struct dir_time *dirs;
    size_t n_dirs, cap_dirs;
    struct upload_links links;
};

void upload_limits_default(struct upload_limits *ret)
{
    *ret = (struct upload_limits){
        .max_total_bytes = 1ULL << 30,
        .max_entry_bytes = 512ULL << 20,
        .max_entries = 100000,
        .max_depth = 128,
        .max_header_bytes = 4ULL << 20,
        .max_ratio = 100,
        .ratio_floor_bytes = 8ULL << 20,
    };
}

const char *upload_name_quote(const char *s, char out[static UPLOAD_QUOTE_MAX])
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o + 4 >= UPLOAD_QUOTE_MAX - 4) {
            /* Cut before a character the limit split: drop its continuation
             * bytes and the byte that led them. */
            size_t keep = o;
            while (keep > 0 && ((unsigned char)out[keep - 1] & 0xc0) == 0x80)
                keep--;
            if (keep > 0 && (unsigned char)out[keep - 1] >= 0xc0) {
                unsigned char lead = (unsigned char)out[keep - 1];
                size_t want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
                if (o - (keep - 1) < want)
                    o = keep - 1;
            }
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        /* A terminal must not receive an archive's escape sequences through an
         * error line. */
        out[o++] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
    }
    out[o] = 0;
    return out;
}

void upload_links_done(struct upload_links *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    *l = (struct upload_links){ 0 };
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* Cleans an archive path into out ("./a//b/" is "a/b"; "" is the root itself),
 * refusing what may not name a place inside the tree. what is "entry" or the like,
 * for the message. */
static int path_clean(const char *raw, const char *what, char *out, size_t outsize, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    if (!raw)
        return error_set(err, -EINVAL, "an %s has no name", what);
    size_t len = strlen(raw);
    if (len >= PATH_MAX || len >= outsize)
        return error_set(err, -EINVAL, "%s '%s' has a path longer than %d bytes", what,
                         upload_name_quote(raw, q), PATH_MAX - 1);
    if (has_control(raw))
        return error_set(err, -EINVAL, "%s '%s' has a control character in its name", what,
                         upload_name_quote(raw, q));
    if (raw[0] == '/')
        return error_set(err, -EINVAL, "%s '%s' has an absolute path", what, upload_name_quote(raw, q));

    size_t o = 0;
    long depth = 0;
    bool dotdot = false;
    for (const char *p = raw; *p;) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            dotdot = true;
            if (--depth < 0)
                return error_set(err, -EINVAL, "%s '%s' climbs out of the site", what, upload_name_quote(raw, q));
        } else if (n > NAME_MAX) {
            return error_set(err, -EINVAL, "%s '%s' has a name longer than %d bytes", what,
                             upload_name_quote(raw, q), NAME_MAX);
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = *end ? end + 1 : end;
    }
    out[o] = 0;
    /* "a/../b" stays inside, but no honest archive writes it, and accepting it
     * would make every later check reason about ".." too. */
    if (dotdot)
        return error_set(err, -EINVAL, "%s '%s' has a '..' in its path", what, upload_name_quote(raw, q));
    return 0;
}

/* A symlink may only be relative and, read from the directory it sits in, stay
 * inside the tree. Lexical here; upload_links_check later resolves each one for
 * real, which also catches chains through other links. */
static int symlink_target_check(const char *path, const char *target, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX], qt[UPLOAD_QUOTE_MAX];
    if (!target || !*target)
        return error_set(err, -EINVAL, "symlink '%s' has no target", upload_name_quote(path, q));
    if (strlen(target) >= PATH_MAX)
        return error_set(err, -EINVAL, "symlink '%s' has a target longer than %d bytes",
                         upload_name_quote(path, q), PATH_MAX - 1);
    if (has_control(target))
        return error_set(err, -EINVAL, "symlink '%s' has a control character in its target",
                         upload_name_quote(path, q));
    if (target[0] == '/')
        return error_set(err, -EINVAL, "symlink '%s' points to the absolute path '%s': only relative "
                         "links that stay inside the site are allowed",
                         upload_name_quote(path, q), upload_name_quote(target, qt));
    long depth = 0;
    for (const char *p = path; *p; p++)   /* the directories the link sits in */
        depth += *p == '/';
    for (const char *p = target; *p;) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return error_set(err, -EINVAL, "symlink '%s' -> '%s' climbs out of the site",
                                 upload_name_quote(path, q), upload_name_quote(target, qt));
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            depth++;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Whether owners are left to the kernel: an unprivileged unpacker's files are its
 * uid's, with the group of the setgid directory they are made in. */
static bool keeps_owner(const struct extract *x)
{
    return x->uid == (uid_t)-1 && x->gid == (gid_t)-1;
}

static int set_owner_mode(int fd, const struct extract *x, mode_t mode)
{
    /* chown first: it clears set-id bits, and the mode must be the last word. */
    if (!keeps_owner(x) && fchown(fd, x->uid, x->gid) < 0)
        return -errno;
    /* A directory made in a setgid one already has its mode; a chmod by a process
     * outside the directory's group (the unpacker and the front's group) would
     * silently clear its setgid bit. */
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
        return -errno;
    return 0;
}

static int keep_name(struct extract *x, const char *path, char **ret, struct error *err)
{
    size_t n = strlen(path) + 1;
    if (x->name_bytes + n > MAX_NAME_BYTES)
        return error_set(err, -E2BIG, "the archive's names take more than %llu MiB",
                         (unsigned long long)(MAX_NAME_BYTES >> 20));
    char *p = strdup(path);
    if (!p)
        return error_set(err, -ENOMEM, "out of memory");
    x->name_bytes += n;
    *ret = p;
    return 0;
}

static int count_entry(struct extract *x, struct error *err)
{
    if (++x->entries > x->lim->max_entries)
        return error_set(err, -E2BIG, "the archive has more than %" PRIu64 " entries", x->lim->max_entries);
    return 0;
}

/* Opens (creating as needed) the directory holding path's last component; the
 * leaf name is returned in ret_leaf (pointing into path). */
static int open_parent(struct extract *x, char *path, struct error *err, const char **ret_leaf)
{
    char q[UPLOAD_QUOTE_MAX];
    char *slash = strrchr(path, '/');
    if (!slash) {
        int fd = fcntl(x->tree_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return error_set(err, -errno, "cannot duplicate a directory fd: %m");
        *ret_leaf = path;
        return fd;
    }
    *slash = 0;
    int fd = open_beneath(x->tree_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    *slash = '/';
    if (fd >= 0) {
        *ret_leaf = slash + 1;
        return fd;
    }
    if (fd != -ENOENT && fd != -ELOOP && fd != -ENOTDIR)
        return error_set(err, fd, "cannot open the directory of '%s': %s", upload_name_quote(path, q),
                         strerror(-fd));

    /* Walk one component at a time, making what is missing, so that the failure
     * names the exact component that is in the way. */
    _cleanup_close_ int dir = fcntl(x->tree_fd, F_DUPFD_CLOEXEC, 3);
    if (dir < 0)
        return error_set(err, -errno, "cannot duplicate a directory fd: %m");
    for (char *p = path; p < slash;) {
        char *end = strchr(p, '/');
        *end = 0;
        bool made = mkdirat(dir, p, UPLOAD_DIR_MODE & 0777) == 0;
        if (!made && errno != EEXIST) {
            int r = -errno;
            *end = '/';
            return error_set(err, r, "cannot create the directory for '%s': %s", upload_name_quote(path, q),
                             strerror(-r));
        }
        int sub = open_beneath(dir, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
        struct stat st;
        /* O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR or ELOOP: ask. */
        if ((sub == -ENOTDIR || sub == -ELOOP) && fstatat(dir, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
            sub = S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
        *end = '/';
        if (sub == -ELOOP)
            return error_set(err, -EINVAL, "entry '%s' would be written through the symlink '%.*s'",
                             upload_name_quote(path, q), (int)MIN(end - path, 200), path);
        if (sub == -ENOTDIR)
            return error_set(err, -EINVAL, "entry '%s' needs '%.*s' to be a directory, but the archive made it a file",
                             upload_name_quote(path, q), (int)MIN(end - path, 200), path);
        if (sub < 0)
            return error_set(err, sub, "cannot open the directory for '%s': %s", upload_name_quote(path, q),
                             strerror(-sub));
        close(dir);
        dir = sub;
        if (made) {
            int r = count_entry(x, err);
            if (r < 0)
                return r;
            if ((r = set_owner_mode(dir, x, UPLOAD_DIR_MODE)) < 0)
                return error_set(err, r, "cannot set the owner of a directory: %s", strerror(-r));
            x->stats.dirs++;
        }
        p = end + 1;
    }
    *ret_leaf = slash + 1;
    return TAKE_FD(dir);
}

static const char *type_name(mode_t m)
{
    return S_ISDIR(m) ? "directory" : S_ISLNK(m) ? "symlink" : "file";
}

/* An entry may repeat an earlier one (tar appends) but not change its type: a
 * directory turned file would drop whatever was checked beneath it. The earlier
 * non-directory is removed so the new one is made afresh (never written through),
 * and leaves the stats, which describe what is on disk. Returns 1 if a directory
 * is already there. */
static int replace_existing(struct extract *x, int dir, const char *leaf, const char *path, mode_t type,
                            struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    struct stat st;
    if (fstatat(dir, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : error_set(err, -errno, "cannot inspect '%s': %m", upload_name_quote(path, q));
    if ((st.st_mode & S_IFMT) != type)
        return error_set(err, -EINVAL, "entry '%s' appears twice, first as a %s, then as a %s",
                         upload_name_quote(path, q), type_name(st.st_mode), type_name(type));
    if (S_ISDIR(type))
        return 1;
    if (unlinkat(dir, leaf, 0) < 0)
        return error_set(err, -errno, "cannot replace '%s': %m", upload_name_quote(path, q));
    if (S_ISLNK(st.st_mode)) {
        x->stats.symlinks--;
    } else {
        x->stats.files--;
        if (st.st_nlink == 1)   /* its last name: the data is gone too */
            x->stats.bytes -= MIN((uint64_t)st.st_size, x->stats.bytes);
    }
    return 0;
}

static struct timespec entry_mtime(struct archive_entry *e)
{
    if (!archive_entry_mtime_is_set(e))
        return (struct timespec){ .tv_nsec = UTIME_NOW };
    long ns = archive_entry_mtime_nsec(e);
    return (struct timespec){ .tv_sec = archive_entry_mtime(e), .tv_nsec = ns >= 0 && ns < 1000000000 ? ns : 0 };
}

/* An entry's data grows from file_end to end; written says whether it lands on
 * disk (and in the stats) or is only read past. */
static int check_growth(struct extract *x, const char *path, uint64_t file_end, uint64_t end, bool written,
                        struct error *err)
{
    char q[UPLOAD_QUOTE_MAX], a[16], b[16];
    const struct upload_limits *lim = x->lim;
    if (end > lim->max_entry_bytes) {
        format_size(lim->max_entry_bytes, a, sizeof(a));
        return error_set(err, -EFBIG, "entry '%s' is larger than %s", upload_name_quote(path, q), a);
    }
    if (end > file_end) {
        x->unpacked += end - file_end;
        if (written)
            x->stats.bytes += end - file_end;
    }
    if (x->unpacked > lim->max_total_bytes) {
        format_size(lim->max_total_bytes, a, sizeof(a));
        return error_set(err, -EFBIG, "the archive unpacks to more than %s", a);
    }
    uint64_t packed = x->archive_size ? x->archive_size : upload_source_packed_bytes(x->src, x->a);
    uint64_t allowed;
    if (x->unpacked > lim->ratio_floor_bytes && lim->max_ratio > 0 &&
        !__builtin_mul_overflow(packed, lim->max_ratio, &allowed) && x->unpacked > allowed) {
        format_size(x->unpacked, a, sizeof(a));
        format_size(packed, b, sizeof(b));
        return error_set(err, -EFBIG, "the archive expands more than %" PRIu64 " times (%s from %s): "
                         "refused as a likely zip bomb", lim->max_ratio, a, b);
    }
    return 0;
}

static int write_all_at(int fd, const char *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Reads the current entry's data, each block counted against the limits before it
 * is written at its offset into fd (or dropped when fd is -1: metadata read only to
 * be counted); *ret_end gets where the data stops. */
static int read_data(struct extract *x, const char *path, int fd, uint64_t *ret_end, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    uint64_t file_end = 0;
    for (;;) {
        const void *block;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(x->a, &block, &size, &offset);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return error_set(err, -EBADMSG, "cannot read entry '%s' from the archive: %s",
                             upload_name_quote(path, q), archive_error_string(x->a) ?: "damaged data");
        /* A warning while reading data is libarchive finding it damaged (a zip's
         * bad CRC or wrong size, with the last block): serving it would publish a
         * corrupt file as if the upload had worked. */
        if (r == ARCHIVE_WARN)
            return error_set(err, -EBADMSG, "entry '%s' is damaged: %s", upload_name_quote(path, q),
                             archive_error_string(x->a) ?: "its data does not match the archive's record of it");
        uint64_t end;
        if (offset < 0 || __builtin_add_overflow((uint64_t)offset, size, &end))
            return error_set(err, -EBADMSG, "entry '%s' has a bad data offset", upload_name_quote(path, q));
        /* Counted before writing: a bomb stops at the block that crosses a limit. */
        if ((r = check_growth(x, path, file_end, end, fd >= 0, err)) < 0)
            return r;
        file_end = MAX(file_end, end);
        if (fd >= 0 && size > 0 && (r = write_all_at(fd, block, size, (uint64_t)offset)) < 0)
            return error_set(err, r, "cannot write '%s': %s", upload_name_quote(path, q), strerror(-r));
    }
    *ret_end = file_end;
    return 0;
}

static int extract_file(struct extract *x, struct archive_entry *e, int dir, const char *leaf,
                        const char *path, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    _cleanup_close_ int fd = open_beneath(dir, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600,
                                          RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        return error_set(err, fd, "cannot create '%s': %s", upload_name_quote(path, q), strerror(-fd));
    uint64_t file_end = 0;
    int r = read_data(x, path, fd, &file_end, err);
    if (r < 0)
        return r;
    /* A sparse file may end in a hole: its size is the header's, not where the
     * data stops. The hole is checked against the limits like data before the
     * file grows to it. */
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
        (uint64_t)archive_entry_size(e) > file_end) {
        uint64_t size = (uint64_t)archive_entry_size(e);
        if ((r = check_growth(x, path, file_end, size, true, err)) < 0)
            return r;
        file_end = size;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < file_end && ftruncate(fd, (off_t)file_end) < 0)
        return error_set(err, -errno, "cannot size '%s': %m", upload_name_quote(path, q));
    mode_t mode = archive_entry_perm(e) & 0111 ? UPLOAD_EXEC_MODE : UPLOAD_FILE_MODE;
    r = set_owner_mode(fd, x, mode);
    if (r < 0)
        return error_set(err, r, "cannot set the owner of '%s': %s", upload_name_quote(path, q), strerror(-r));
    struct timespec ts[2] = { entry_mtime(e), entry_mtime(e) };
    futimens(fd, ts);
    x->stats.files++;
    return 0;
}

static int extract_dir(struct extract *x, struct archive_entry *e, int dir, const char *leaf,
                       const char *path, bool existed, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    if (!existed && mkdirat(dir, leaf, UPLOAD_DIR_MODE & 0777) < 0)
        return error_set(err, -errno, "cannot create '%s': %m", upload_name_quote(path, q));
    _cleanup_close_ int fd = open_beneath(dir, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        return error_set(err, fd, "cannot open '%s': %s", upload_name_quote(path, q), strerror(-fd));
    int r = set_owner_mode(fd, x, UPLOAD_DIR_MODE);
    if (r < 0)
        return error_set(err, r, "cannot set the owner of '%s': %s", upload_name_quote(path, q), strerror(-r));
    if (!existed)
        x->stats.dirs++;
    /* Its time is set at the end: every entry made inside it changes it. */
    if (x->n_dirs == x->cap_dirs) {
        size_t cap = x->cap_dirs ? x->cap_dirs * 2 : 64;
        struct dir_time *d = reallocarray(x->dirs, cap, sizeof(*d));
        if (!d)
            return error_set(err, -ENOMEM, "out of memory");
        x->dirs = d;
        x->cap_dirs = cap;
    }
    char *kept = NULL;
    if ((r = keep_name(x, path, &kept, err)) < 0)
        return r;
    x->dirs[x->n_dirs++] = (struct dir_time){ .path = kept, .mtime = entry_mtime(e) };
    return 0;
}

static int extract_symlink(struct extract *x, struct archive_entry *e, int dir, const char *leaf,
                           const char *path, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    const char *target = archive_entry_symlink_utf8(e) ?: archive_entry_symlink(e);
    int r = symlink_target_check(path, target, err);
    if (r < 0)
        return r;
    if (symlinkat(target, dir, leaf) < 0)
        return error_set(err, -errno, "cannot create the symlink '%s': %m", upload_name_quote(path, q));
    if (!keeps_owner(x) && fchownat(dir, leaf, x->uid, x->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return error_set(err, -errno, "cannot set the owner of '%s': %m", upload_name_quote(path, q));
    struct timespec ts[2] = { entry_mtime(e), entry_mtime(e) };
    utimensat(dir, leaf, ts, AT_SYMLINK_NOFOLLOW);
    if (x->links.n == x->links.cap) {
        size_t cap = x->links.cap ? x->links.cap * 2 : 16;
        char **p = reallocarray(x->links.paths, cap, sizeof(*p));
        if (!p)
            return error_set(err, -ENOMEM, "out of memory");
        x->links.paths = p;
        x->links.cap = cap;
    }
    if ((r = keep_name(x, path, &x->links.paths[x->links.n], err)) < 0)
        return r;
    x->links.n++;
    x->stats.symlinks++;
    return 0;
}

/* A hard link may only name a regular file this archive already put in the tree:
 * anything else would reach outside it or make the link a door to a later entry. */
static int extract_hardlink(struct extract *x, const char *raw_target, int dir, const char *leaf,
                            const char *path, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX], qt[UPLOAD_QUOTE_MAX], target[PATH_MAX];
    struct error sub = { 0 };
    if (path_clean(raw_target, "hard link target", target, sizeof(target), &sub) < 0 || !*target)
        return error_set(err, -EINVAL, "hard link '%s' points to '%s', outside the site",
                         upload_name_quote(path, q), upload_name_quote(raw_target ?: "", qt));
    char *slash = strrchr(target, '/');
    const char *tleaf = target;
    _cleanup_close_ int tdir = -1;
    if (slash) {
        *slash = 0;
        tdir = open_beneath(x->tree_fd, target, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
        *slash = '/';
        tleaf = slash + 1;
    } else {
        tdir = fcntl(x->tree_fd, F_DUPFD_CLOEXEC, 3);
    }
    struct stat st;
    if (tdir < 0 || fstatat(tdir, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
        streq(target, path))
        return error_set(err, -EINVAL, "hard link '%s' points to '%s', which is not a file the archive holds before it",
                         upload_name_quote(path, q), upload_name_quote(target, qt));
    int r = replace_existing(x, dir, leaf, path, S_IFREG, err);
    if (r < 0)
        return r;
    if (linkat(tdir, tleaf, dir, leaf, 0) < 0)
        return error_set(err, -errno, "cannot create the hard link '%s': %m", upload_name_quote(path, q));
    x->stats.files++;
    return 0;
}

/* macOS's Finder zips a folder with its extended attributes as "._" files under a
 * top-level __MACOSX/ folder. They are never content, and beside the site's own
 * folder they would stop it being unwrapped. */
static bool is_macos_metadata(const char *path)
{
    return str_startswith(path, "__MACOSX") && (path[8] == 0 || path[8] == '/');
}

static int extract_entry(struct extract *x, struct archive_entry *e, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX], path[PATH_MAX];
    const char *raw = archive_entry_pathname_utf8(e) ?: archive_entry_pathname(e);
    int r = path_clean(raw, "entry", path, sizeof(path), err);
    if (r < 0)
        return r;
    const char *hardlink = archive_entry_hardlink_utf8(e) ?: archive_entry_hardlink(e);
    mode_t type = hardlink ? AE_IFREG : archive_entry_filetype(e);
    switch (type) {
    case AE_IFREG: case AE_IFDIR: case AE_IFLNK:
        break;
    case AE_IFCHR: case AE_IFBLK:
        return error_set(err, -EINVAL, "entry '%s' is a device", upload_name_quote(raw, q));
    case AE_IFIFO:
        return error_set(err, -EINVAL, "entry '%s' is a fifo", upload_name_quote(raw, q));
    case AE_IFSOCK:
        return error_set(err, -EINVAL, "entry '%s' is a socket", upload_name_quote(raw, q));
    default:
        return error_set(err, -EINVAL, "entry '%s' has an unknown type", upload_name_quote(raw, q));
    }
    if (!*path) {
        /* "./" is the root itself; it has nothing to make. */
        if (type != AE_IFDIR)
            return error_set(err, -EINVAL, "entry '%s' names the site's root but is not a directory",
                             upload_name_quote(raw, q));
        return 0;
    }
    if ((r = count_entry(x, err)) < 0)
        return r;
    if (is_macos_metadata(path)) {
        /* Read, not skipped inside libarchive, which would decompress it unmetered. */
        uint64_t end = 0;
        return type == AE_IFREG && !hardlink ? read_data(x, path, -1, &end, err) : 0;
    }
    /* Each entry's parent is walked from the tree's root: without a bound on the
     * nesting, a small archive of deep paths costs thousands of lookups per entry
     * while berthd waits. No honest site nests this deep. */
    uint64_t depth = 1;
    for (const char *p = path; *p; p++)
        depth += *p == '/';
    if (depth > x->lim->max_depth)
        return error_set(err, -EINVAL, "entry '%s' is nested more than %" PRIu64 " levels deep",
                         upload_name_quote(raw, q), x->lim->max_depth);

    const char *leaf = NULL;
    _cleanup_close_ int dir = open_parent(x, path, err, &leaf);
    if (dir < 0)
        return dir;
    if (hardlink)
        return extract_hardlink(x, hardlink, dir, leaf, path, err);
    r = replace_existing(x, dir, leaf, path, type, err);
    if (r < 0)
        return r;
    if (type == AE_IFDIR)
        return extract_dir(x, e, dir, leaf, path, r > 0, err);
    if (type == AE_IFLNK)
        return extract_symlink(x, e, dir, leaf, path, err);
    return extract_file(x, e, dir, leaf, path, err);
}

static void extract_done(struct extract *x)
{
    for (size_t i = 0; i < x->n_dirs; i++)
        free(x->dirs[i].path);
    free(x->dirs);
    upload_links_done(&x->links);
    /* The reader first: it holds the source until it is freed. */
    if (x->a)
        archive_read_free(x->a);
    upload_source_free(x->src);
}

static int open_archive(struct extract *x, int archive_fd, struct error *err)
{
    x->a = archive_read_new();
    if (!x->a)
        return error_set(err, -ENOMEM, "out of memory");
    /* Only the formats we promise: every other reader is attack surface no user
     * asked for. The filters are the source's. */
    if (archive_read_support_format_zip(x->a) < ARCHIVE_WARN ||
        archive_read_support_format_tar(x->a) < ARCHIVE_WARN ||
        archive_read_support_format_gnutar(x->a) < ARCHIVE_WARN)
        return error_set(err, -ENOTSUP, "libarchive lacks a needed format: %s", archive_error_string(x->a));
    struct stat st;
    if (fstat(archive_fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t pos = lseek(archive_fd, 0, SEEK_CUR);
        x->archive_size = (uint64_t)MAX(st.st_size - MAX(pos, 0), 1);
    }
    return upload_source_open(x->a, archive_fd, x->lim->max_header_bytes, err, &x->src);
}

int upload_extract_links(int tree_fd, int archive_fd, const struct upload_limits *limits, uid_t uid, gid_t gid,
                         struct error *err, struct upload_stats *ret_stats, struct upload_links *ret_links)
{
    struct upload_limits defaults;
    if (!limits) {
        upload_limits_default(&defaults);
        limits = &defaults;
    }
    struct extract x = { .tree_fd = tree_fd, .lim = limits, .uid = uid, .gid = gid };
    int r = open_archive(&x, archive_fd, err);
    for (bool first = true; r >= 0; first = false) {
        struct archive_entry *e;
        upload_source_header_begin(x.src);
        int h = archive_read_next_header(x.a, &e);
        upload_source_header_end(x.src);
        if (h < ARCHIVE_WARN && upload_source_header_too_large(x.src)) {
            char max[16];
            format_size(limits->max_header_bytes, max, sizeof(max));
            r = error_set(err, -EFBIG, "an entry's headers unpack to more than %s (a sparse map or "
                          "metadata that large): refused as a likely zip bomb", max);
            break;
        }
        if (h == ARCHIVE_EOF) {
            if (x.entries == 0)
                r = error_set(err, -EINVAL, "the archive is empty");
            break;
        }
        if (h < ARCHIVE_WARN) {
            const char *why = archive_error_string(x.a) ?: "unreadable";
            r = first ? error_set(err, -EBADMSG, "not a zip or tar archive (or a damaged one): %s", why)
                      : error_set(err, -EBADMSG, "the archive is damaged: %s", why);
            break;
        }
        r = extract_entry(&x, e, err);
    }
    /* Directory times last: making entries inside them moved their mtimes. */
    for (size_t i = 0; r >= 0 && i < x.n_dirs; i++) {
        _cleanup_close_ int fd = open_beneath(tree_fd, x.dirs[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                                              RESOLVE_NO_SYMLINKS);
        struct timespec ts[2] = { x.dirs[i].mtime, x.dirs[i].mtime };
        if (fd >= 0)
            futimens(fd, ts);
    }
    if (r >= 0) {
        if (ret_stats)
            *ret_stats = x.stats;
        if (ret_links) {
            *ret_links = x.links;
            x.links = (struct upload_links){ 0 };
        }
    }
    extract_done(&x);
    return r;
}

/* The lexical rule of symlink_target_check again, for a link now at path beneath
 * root_fd (its parents are real directories: nothing is written through a link). */
static int symlink_recheck(int root_fd, const char *path, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX], target[PATH_MAX];
    const char *slash = strrchr(path, '/');
    _cleanup_close_ int dir = -1;
    if (slash) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
        dir = open_beneath(root_fd, parent, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    } else {
        dir = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
    }
    /* open_beneath and fcntl both leave errno set when they fail. */
    ssize_t n = dir < 0 ? -1 : readlinkat(dir, slash ? slash + 1 : path, target, sizeof(target) - 1);
    if (n < 0)
        return error_set(err, -errno, "cannot check the symlink '%s': %m", upload_name_quote(path, q));
    target[n] = 0;
    return symlink_target_check(path, target, err);
}

int upload_links_check(int root_fd, const struct upload_links *links, const char *strip, struct error *err)
{
    char q[UPLOAD_QUOTE_MAX];
    size_t strip_len = strip ? strlen(strip) : 0;
    for (size_t i = 0; i < links->n; i++) {
        const char *path = links->paths[i];
        if (strip_len) {
            if (strncmp(path, strip, strip_len) != 0 || path[strip_len] != '/')
                continue;   /* cannot happen when strip is the only top folder */
            path += strip_len + 1;
            /* Unwrapped, each link sits one level higher than when it was judged:
             * "w/a -> d/../../x" stayed in the tree but leaves the new root, and if
             * d is missing the resolution below stops at ENOENT and never sees it. */
            int r = symlink_recheck(root_fd, path, err);
            if (r < 0)
                return r;
        }
        /* Resolving the link for real (O_PATH follows it) under RESOLVE_BENEATH:
         * EXDEV is the kernel saying the walk left the tree, whatever chain of
         * links it went through. Dangling links and loops lead nowhere. */
        int fd = -EAGAIN;
        for (int tries = 0; fd == -EAGAIN && tries < 8; tries++)
            fd = open_beneath(root_fd, path, O_PATH, 0, 0);
        if (fd >= 0) {
            close(fd);
            continue;
        }
        if (fd == -EXDEV)
            return error_set(err, -EINVAL, "symlink '%s' leads out of the site", upload_name_quote(path, q));
        if (fd != -ENOENT && fd != -ELOOP && fd != -ENOTDIR)
            return error_set(err, fd, "cannot check the symlink '%s': %s", upload_name_quote(path, q), strerror(-fd));
    }
    return 0;
}

int upload_extract(int tree_fd, int archive_fd, const struct upload_limits *limits,
                   uid_t uid, gid_t gid, struct error *err, struct upload_stats *ret_stats)
{
    struct upload_links links = { 0 };
    struct upload_stats stats;
    int r = upload_extract_links(tree_fd, archive_fd, limits, uid, gid, err, &stats, &links);
    if (r >= 0)
        r = upload_links_check(tree_fd, &links, NULL, err);
    upload_links_done(&links);
    if (r >= 0 && ret_stats)
        *ret_stats = stats;
    return r;
}

/* Swapping a freshly unpacked tree in for a site's public/.
 *
 * Layout while an upload runs, inside the site's directory:
 *
 *   public/                  still serving, never touched until the swap
 *   .upload-XXXXXX/          root:root 0700: the site's sandbox sees the site
 *     tree/                  directory, so nothing of it may be reachable before
 *                            it is complete and checked. site uid : public/'s
 *                            group, 02750: the unpacker (unpacker.c), running
 *                            as the site, fills it
 *
 * The swap is one renameat2(RENAME_EXCHANGE): the front sees the old tree or the
 * new one, never a missing or half-filled public/. The old tree then sits inside the
 * staging directory and goes with it. A crash at any point leaves public/ whole
 * (old or new) plus a staging directory that upload_site_cleanup removes. */
#include "upload/upload-internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/fs.h"

#define STAGING_TRIES 16

int upload_staging_make(int site_fd, char name[static 32])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int tries = 0; tries < STAGING_TRIES; tries++) {
        unsigned char rnd[8];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return -errno ?: -EIO;
        char suffix[sizeof(rnd) + 1];
        for (size_t i = 0; i < sizeof(rnd); i++)
            suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
        suffix[sizeof(rnd)] = 0;
        snprintf(name, 32, UPLOAD_STAGING_PREFIX "%s", suffix);
        if (mkdirat(site_fd, name, 0700) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int upload_tree_make(int staging_fd, const char *name, uid_t uid, gid_t gid)
{
    if (mkdirat(staging_fd, name, 0700) < 0)
        return -errno;
    int fd = open_beneath(staging_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        return fd;
    /* chown before chmod: chown may clear the set-id bits. */
    if (fchown(fd, uid, gid) < 0 || fchmod(fd, UPLOAD_DIR_MODE) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int upload_single_folder(int tree_fd, char out[static NAME_MAX + 1])
{
    int fd = openat(tree_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    int n = 0;
    bool is_dir = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        if (++n > 1)
            break;
        struct stat st;
        is_dir = fstatat(tree_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        snprintf(out, NAME_MAX + 1, "%s", de->d_name);
    }
    closedir(d);
    return n == 1 && is_dir;
}

/* In the unpacker: extracts, then judges every link against the root the tree will
 * really have (after unwrapping, "mysite/a -> ../x" would leave public/). */
static int unpack_upload(int tree_fd, int archive_fd, void *data, struct error *err, struct upload_stats *ret_stats)
{
    const struct upload_limits *limits = data;
    struct upload_links links = { 0 };
    struct upload_stats stats;
    int r = upload_extract_links(tree_fd, archive_fd, limits, (uid_t)-1, (gid_t)-1, err, &stats, &links);
    char top[NAME_MAX + 1];
    if (r >= 0 && (r = upload_single_folder(tree_fd, top)) < 0)
        r = error_set(err, r, "cannot read the unpacked tree: %s", strerror(-r));
    bool unwrap = r > 0;
    _cleanup_close_ int root = -1;
    if (r >= 0) {
        root = open_beneath(tree_fd, unwrap ? top : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                            RESOLVE_NO_SYMLINKS);
        if (root < 0)
            r = error_set(err, root, "cannot open the unpacked tree: %s", strerror(-root));
    }
    if (r >= 0)
        r = upload_links_check(root, &links, unwrap ? top : NULL, err);
    upload_links_done(&links);
    if (r >= 0)
        *ret_stats = stats;
    return r < 0 ? r : 0;
}

/* Everything from the staging directory's creation to the swap. On success the
 * old public/ is inside staging, ready to be removed with it. From the unpacker
 * on, the tree is the site's: nothing here follows a link in it or reads a file
 * of it, and the unpacker has exited before anything here looks at it. */
static int fill_and_swap(int site_fd, int staging_fd, int archive_fd, const struct upload_limits *limits,
                         uid_t uid, gid_t gid, const struct stat *pub, struct error *err,
                         struct upload_stats *ret_stats)
{
    _cleanup_close_ int tree = upload_tree_make(staging_fd, "tree", uid, pub->st_gid);
    if (tree < 0)
        return error_set(err, tree, "cannot create the upload's staging directory: %s", strerror(-tree));

    struct upload_stats stats;
    int r = upload_unpacker_run(staging_fd, tree, archive_fd, uid, gid, limits, unpack_upload, (void *)limits, err, &stats);
    if (r < 0)
        return r;

    /* Found again here rather than taken from the unpacker's word: it decides
     * which directory becomes public/. */
    char top[NAME_MAX + 1];
    r = upload_single_folder(tree, top);
    if (r < 0)
        return error_set(err, r, "cannot read the unpacked tree: %s", strerror(-r));
    bool unwrap = r > 0;
    /* The parent and name of the directory that becomes public/. */
    int root_parent = unwrap ? tree : staging_fd;
    const char *root_name = unwrap ? top : "tree";
    _cleanup_close_ int root = open_beneath(root_parent, root_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                                            RESOLVE_NO_SYMLINKS);
    if (root < 0)
        return error_set(err, root, "cannot open the unpacked tree: %s", strerror(-root));
    if (fchown(root, pub->st_uid, pub->st_gid) < 0 || fchmod(root, pub->st_mode & 07777) < 0)
        return error_set(err, -errno, "cannot set the owner of the new tree: %m");
    /* The data must be on disk before the name points at it, or a power cut after
     * the swap could serve empty files. */
    if (syncfs(root) < 0)
        return error_set(err, -errno, "cannot flush the new tree to disk: %m");
    if (renameat2(root_parent, root_name, site_fd, "public", RENAME_EXCHANGE) < 0)
        return error_set(err, -errno, "cannot swap the new tree in: %m");
    fsync(site_fd);
    *ret_stats = stats;
    return 0;
}

int upload_site_replace(int site_dir_fd, int archive_fd, const struct upload_limits *limits, uid_t uid,
                        gid_t gid, struct error *err, struct upload_stats *ret_stats)
{
    if (upload_unpacker_creds_check(uid, gid) < 0)
        return error_set(err, -EINVAL, "cannot unpack as uid %u, gid %u: the site's own ids are needed",
                         (unsigned)uid, (unsigned)gid);
    struct stat pub;
    if (fstatat(site_dir_fd, "public", &pub, AT_SYMLINK_NOFOLLOW) < 0)
        return error_set(err, -errno, "the site has no public directory: %m");
    if (!S_ISDIR(pub.st_mode))
        return error_set(err, -ENOTDIR, "the site's public is not a directory");

    char name[32];
    int r = upload_staging_make(site_dir_fd, name);
    if (r < 0)
        return error_set(err, r, "cannot create the upload's staging directory: %s", strerror(-r));
    int staging = open_beneath(site_dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
    struct upload_stats stats = { 0 };
    if (staging < 0)
        r = error_set(err, staging, "cannot open the upload's staging directory: %s", strerror(-staging));
    else
        r = fill_and_swap(site_dir_fd, staging, archive_fd, limits, uid, gid, &pub, err, &stats);
    safe_close(staging);
    /* Success or not, the staging directory goes: it holds either the refused new
     * tree or, after the swap, the old one. */
    rm_rf_at(site_dir_fd, name);
    if (r >= 0 && ret_stats)
        *ret_stats = stats;
    return r;
}

int upload_site_cleanup(int site_dir_fd)
{
    /* Its own open, not a dup: a dup shares the offset a previous reader of
     * site_dir_fd left, perhaps at the end. */
    int fd = openat(site_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    char journaled[NAME_MAX + 1] = "";
    if (upload_restore_journal_staging(site_dir_fd, journaled) < 0)
        journaled[0] = 0;
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!str_startswith(de->d_name, UPLOAD_STAGING_PREFIX) || streq(de->d_name, journaled))
            continue;
        if (rm_rf_at(site_dir_fd, de->d_name) >= 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* Content upload: unpacks a zip or tar archive (plain, gzip, zstd or xz; detected
 * by content, never by name) into a site's public/ tree and swaps it in atomically.
 *
 * The archive is hostile until proven otherwise. Every entry is checked before
 * anything is written for it, every write goes beneath a directory fd through
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and sizes are counted as bytes
 * are written, never read from headers. A refusal names the entry and the rule.
 *
 * Failure classes (struct error's code, which the API maps to a status):
 *   -EBADMSG  not a zip or tar archive, or damaged          (400)
 *   -EINVAL   an entry is refused (path, depth, type, link  (422)
 *             target)
 *   -EFBIG    a size or compression-ratio limit was passed  (413)
 *   -E2BIG    more entries than the limit                   (413)
 *   other     an internal failure (disk full, I/O)          (500, 507) */
#pragma once

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Prefix of the staging directories upload_site_replace makes beside public/. */
#define UPLOAD_STAGING_PREFIX ".upload-"

struct upload_limits {
    uint64_t max_total_bytes;   /* file data of the whole tree; default 1 GiB */
    uint64_t max_entry_bytes;   /* one file's size (holes included); default 512 MiB */
    uint64_t max_entries;       /* entries of every kind; default 100000 */
    uint64_t max_depth;         /* components in an entry's path ("a/b/c" is 3); default 128 */
    uint64_t max_header_bytes;  /* what one entry's headers unpack to (pax records, sparse
                                 * map); default 4 MiB */
    uint64_t max_ratio;         /* data bytes per archive byte; default 100 */
    uint64_t ratio_floor_bytes; /* the ratio counts only past this much data; default 8 MiB */
};

/* What an extraction produced. */
struct upload_stats {
    uint64_t files;     /* regular files, hard links included */
    uint64_t dirs;
    uint64_t symlinks;
    uint64_t bytes;     /* file data written */
};

/* The defaults above. */
void upload_limits_default(struct upload_limits *ret);

/* Extracts the archive read from archive_fd (read from its current offset to its
 * end; a regular file lets zip use its central directory) into the empty directory
 * tree_fd. Files get uid:gid and mode 0640 (0750 when executable in the archive),
 * directories uid:gid 02750; no setuid, setgid (but the directories'), sticky bits.
 * uid and gid (uid_t)-1: owners are left as the kernel gives them (the caller's uid
 * and the group of a setgid tree_fd), which is how an unprivileged unpacker runs;
 * modification times are kept. Refused: absolute paths, "..", names with control
 * characters, too long or nested too deep, devices, fifos, sockets, symlinks that
 * are absolute or lead out of tree_fd, hard links to anything but a regular file
 * extracted before, an entry written through a symlink the archive made, an entry
 * that changes the type of an earlier one, data the archive shows damaged, and an
 * archive with no entries. A top-level __MACOSX/ tree (Finder's metadata) is read
 * past, counted against the limits, never written. On failure the tree holds
 * whatever was written so far: the caller removes it. err (may be NULL) says why. */
int upload_extract(int tree_fd, int archive_fd, const struct upload_limits *limits,
                   uid_t uid, gid_t gid, struct error *err, struct upload_stats *ret_stats);

/* Replaces site_dir_fd's public/ with the archive's contents: makes a new staging
 * directory beside it (root-only while it is filled) holding a tree owned by uid
 * with public/'s group, setgid; an unpacker process running as uid:gid (the site's
 * own ids, never root: upload_unpacker_run) extracts into it and checks its links;
 * then a single top folder is unwrapped, the new root gets public/'s owner and mode
 * and is swapped in with renameat2(RENAME_EXCHANGE), and the old tree is removed.
 * Files end up uid's with public/'s group. Any failure before the swap (a failure to
 * start the unpacker too) leaves public/ untouched and removes the staging
 * directory. limits NULL means the defaults. Blocks until done: its cost is bounded
 * by the limits. Must run as root. */
int upload_site_replace(int site_dir_fd, int archive_fd, const struct upload_limits *limits, uid_t uid,
                        gid_t gid, struct error *err, struct upload_stats *ret_stats);

/* Removes staging directories a crash left in site_dir_fd (".upload-*"), but the
 * one a restore's journal names (finish it first: upload_restore_recover). Call at
 * start-up for every site, before the site serves. Returns how many it removed. */
int upload_site_cleanup(int site_dir_fd);

/* ---- restoring a site snapshot (restore.c) ----
 *
 * A snapshot holds several of a site's top-level directories (public/, private/)
 * and a small settings file beside them. A restore unpacks it with the same checks
 * as an upload (upload_extract), into one staging directory, and only when every
 * entry has passed swaps each directory in with renameat2(RENAME_EXCHANGE). */

/* The most directories one restore swaps. */
#define UPLOAD_RESTORE_MAX_DIRS 4

/* One directory a restore replaces: the archive's top-level folder of that name
 * becomes the site's directory of that name. */
struct upload_restore_dir {
    const char *name;   /* "public", "private"; borrowed for the call */
    uid_t uid;          /* owner of everything restored beneath it */
    gid_t gid;
};

/* A restore unpacked and checked, not yet swapped in. */
struct upload_restore;

/* Unpacks archive_fd into a staging directory in site_dir_fd (root-only, like an
 * upload's), in an unpacker process running as uid:gid (the site's own ids, never
 * root; every dirs[i].uid must be uid), and checks it is a snapshot: its top level holds exactly the folders
 * dirs names (each a real directory) and, optionally, a regular file meta_name (at
 * most meta_max bytes, read into memory). Every link is judged against the
 * directory it will live in. Each of dirs must exist in site_dir_fd: its owner and
 * mode are kept for the new one. On failure nothing of the site is touched and
 * err says why (the classes of upload.h, -EINVAL for a file that is no snapshot).
 * limits NULL: the defaults. Blocks, bounded by the limits. */
int upload_restore_prepare(int site_dir_fd, int archive_fd, const struct upload_limits *limits, uid_t uid,
                           gid_t gid, const struct upload_restore_dir *dirs, size_t n_dirs, const char *meta_name,
                           size_t meta_max, struct error *err, struct upload_restore **ret);
/* The meta file's contents (NUL-terminated, *ret_len bytes), or NULL when the
 * snapshot had none. Borrowed from r. */
const char *upload_restore_meta(const struct upload_restore *r, size_t *ret_len);
/* What the unpacking produced. */
void upload_restore_stats(const struct upload_restore *r, struct upload_stats *ret);
/* The journal a commit leaves in the site's directory until
 * upload_restore_journal_remove. */
#define UPLOAD_RESTORE_JOURNAL ".restore-journal"
/* The most settings bytes a journal carries. */
#define UPLOAD_RESTORE_META_MAX (64 * 1024)

/* Swaps every directory in (flushed to disk first). First it links a journal
 * (UPLOAD_RESTORE_JOURNAL) into site_dir_fd naming the new trees and holding meta
 * (the settings the caller will store; NULL: none), so that a crash or a kill
 * between the swaps is finished forward by upload_restore_recover. If one swap
 * fails the ones made before it are swapped back and the journal removed, so the
 * site keeps its old directories. The journal stays after a success: remove it
 * with upload_restore_journal_remove once the settings are stored. Call once. */
int upload_restore_commit(struct upload_restore *r, const char *meta, size_t meta_len, struct error *err);
/* Removes the journal (0 also when there is none). */
int upload_restore_journal_remove(int site_dir_fd);
/* Finishes a commit a crash or a kill interrupted: 0 when site_dir_fd holds no
 * journal; 1 when every directory it names is now the restored one, with
 * *ret_meta (malloc'd, NUL-terminated; NULL when none) the settings still to store
 * — store them, then remove the journal; negative with err set when the journal is
 * damaged or a restored tree is gone (the journal stays, for an operator). */
int upload_restore_recover(int site_dir_fd, char **ret_meta, size_t *ret_meta_len, struct error *err);
/* The staging directory a journal names (upload_site_cleanup keeps it). */
int upload_restore_journal_staging(int site_dir_fd, char ret_name[static NAME_MAX + 1]);
/* Removes the staging directory (the refused new trees, or the old ones after a
 * commit) and frees r. NULL-safe. */
void upload_restore_free(struct upload_restore *r);

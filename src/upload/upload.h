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
 * directories uid:gid 02750; no setuid, setgid (but the directories'), sticky bits;
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

/* Replaces site_dir_fd's public/ with the archive's contents: extracts into a new
 * staging directory beside it (root-only while it is filled), unwraps a single top
 * folder, gives the new root public/'s owner and mode, swaps the two with
 * renameat2(RENAME_EXCHANGE) and removes the old tree. Files get public/'s owner and
 * group. Any failure before the swap leaves public/ untouched and removes the staging
 * directory. limits NULL means the defaults. Blocks until done: its cost is bounded
 * by the limits. */
int upload_site_replace(int site_dir_fd, int archive_fd, const struct upload_limits *limits,
                        struct error *err, struct upload_stats *ret_stats);

/* Removes staging directories a crash left in site_dir_fd (".upload-*"). Call at
 * start-up for every site, before the site serves. Returns how many it removed. */
int upload_site_cleanup(int site_dir_fd);

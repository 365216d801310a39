/* Shared between the upload component's files, and its tests. */
#pragma once

#include "upload/upload.h"

/* Modes every extracted entry gets, whatever the archive says: the front reads
 * through the group, nobody else reads, nothing is set-id or sticky. Directories
 * keep setgid so files the site makes later inherit the front's group too. */
#define UPLOAD_FILE_MODE 0640
#define UPLOAD_EXEC_MODE 0750
#define UPLOAD_DIR_MODE 02750

/* Room for an archive name quoted into a message (truncated with "..."). */
#define UPLOAD_QUOTE_MAX 160

/* The symlinks an extraction made, as cleaned paths relative to the tree. */
struct upload_links {
    char **paths;
    size_t n, cap;
};

/* Copies s into out for a message: control characters become '?', long names are
 * cut with "...". Returns out. */
const char *upload_name_quote(const char *s, char out[static UPLOAD_QUOTE_MAX]);
/* Makes a new staging directory (root-only 0700) named UPLOAD_STAGING_PREFIX and a
 * random suffix in site_fd; its name goes to name. */
int upload_staging_make(int site_fd, char name[static 32]);
/* Frees the paths; l can be reused. */
void upload_links_done(struct upload_links *l);
/* upload_extract without the final symlink check: the symlinks made are returned in
 * ret_links (the caller frees them with upload_links_done) so the caller can check
 * them against the root the tree will really have. */
int upload_extract_links(int tree_fd, int archive_fd, const struct upload_limits *limits, uid_t uid, gid_t gid,
                         struct error *err, struct upload_stats *ret_stats, struct upload_links *ret_links);
/* Resolves every symlink beneath root_fd (after removing the leading folder strip,
 * if not NULL, from each path) and refuses one whose resolution leaves root_fd. */
int upload_links_check(int root_fd, const struct upload_links *links, const char *strip, struct error *err);

/* ---- the unpacker (unpacker.c) ---- */

/* The work an unpacker does once it is the site's: fills tree_fd from archive_fd
 * (and may check what it wrote). Runs in the unpacker, whose memory is a copy. */
typedef int (*upload_unpack_fn)(int tree_fd, int archive_fd, void *data, struct error *err,
                                struct upload_stats *ret_stats);

/* Whether uid and gid may run an unpacker: never root's, never -1. 0 or -EINVAL. */
int upload_unpacker_creds_check(uid_t uid, gid_t gid);

/* Forks an unpacker that keeps only tree_fd, archive_fd and a report pipe, makes
 * root_fd (the root-only staging directory holding tree_fd) its root, becomes
 * uid:gid with no supplementary groups and no capabilities, sets no_new_privs,
 * limits one file to limits->max_entry_bytes (RLIMIT_FSIZE), installs the
 * unpacker's seccomp filter and runs fn; waits for it and returns fn's result,
 * with err and *ret_stats as fn set them. A failure to start it or to set any of
 * that up fails with "cannot start the unpacking process: ..."; an unpacker that
 * dies without reporting fails with -EIO. Nothing the unpacker reports is trusted
 * beyond the answer it makes. Test hooks: BERTH_TEST_UNPACKER_FORK_FAIL (set: the
 * fork fails with EAGAIN) and BERTH_TEST_UNPACKER_GATE (proc_test_gate, once
 * every step above is done). */
int upload_unpacker_run(int root_fd, int tree_fd, int archive_fd, uid_t uid, gid_t gid,
                        const struct upload_limits *limits, upload_unpack_fn fn, void *data, struct error *err,
                        struct upload_stats *ret_stats);

/* Makes name in staging_fd a directory for an unpacker to fill: owned by uid,
 * group gid, mode 02750 (setgid, so everything the unpacker makes inside gets gid
 * whatever the unpacker's own group), and opens it. Returns the fd or -errno. */
int upload_tree_make(int staging_fd, const char *name, uid_t uid, gid_t gid);

/* The single real directory at the top of tree_fd, if that is all there is: 1 with
 * its name in out; 0 when the tree holds anything else. Never follows a link. */
int upload_single_folder(int tree_fd, char out[static NAME_MAX + 1]);

struct archive;

/* Feeds a format reader from an archive fd, decompressing (gzip, zstd, xz) itself
 * so that the bytes each header unpacks to can be counted: libarchive builds
 * large structures (sparse maps) from a header before the caller sees it. */
struct upload_source;
/* Sets a's callbacks to read fd (from its current offset) and opens a, whose
 * formats are registered but no filters. *ret is set (the caller frees it with
 * upload_source_free, after archive_read_free(a)) once a holds it, even if
 * opening a then fails. */
int upload_source_open(struct archive *a, int fd, uint64_t max_header_bytes, struct error *err,
                       struct upload_source **ret);
/* Bracket archive_read_next_header: what is fed in between counts against
 * max_header_bytes, past which reading fails. */
void upload_source_header_begin(struct upload_source *s);
void upload_source_header_end(struct upload_source *s);
/* Whether the last failure was that limit. */
bool upload_source_header_too_large(const struct upload_source *s);
/* Bytes read from fd so far (compressed), at least 1. */
uint64_t upload_source_packed_bytes(const struct upload_source *s, struct archive *a);
/* Accepts NULL. */
void upload_source_free(struct upload_source *s);

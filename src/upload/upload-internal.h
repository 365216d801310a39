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

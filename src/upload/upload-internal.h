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

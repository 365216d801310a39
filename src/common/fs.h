/* Safe file-system helpers. Anything beneath a site's root is opened through
 * openat2(RESOLVE_BENEATH) so that a symlink or ".." planted by a site can never
 * lead outside it. */
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include "common/util.h"

/* Creates path and its missing parents with mode (existing ones are left alone). */
int mkdir_p(const char *path, mode_t mode);
/* Creates or fixes one directory: exists, is a directory (not a symlink), has the
 * owner and mode given. Never follows a symlink at the last component. */
int ensure_dir(int dirfd, const char *name, uid_t uid, gid_t gid, mode_t mode);
/* Removes a tree without following symlinks, staying on one file system.
 * Missing path is success. */
int rm_rf_at(int dirfd, const char *name);
int rm_rf(const char *path);
/* Writes data to path atomically: a temp file in the same directory, fsync, rename,
 * fsync of the directory. A crash leaves the old contents or the new. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same through a temp file named by the caller (in path's directory), for a
 * writer that owns the directory alone: a crash mid-write leaves one temp file
 * that the next write truncates, instead of one per pid. */
int write_file_atomic_via(const char *path, const char *tmp, const void *data, size_t len, mode_t mode);
/* Reads a whole (small) file into a NUL-terminated malloc'd string. -EFBIG past max. */
int read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (| extra resolve flags). */
int open_beneath(int rootfd, const char *path, int flags, mode_t mode, uint64_t extra_resolve);
/* fsync a directory by path. */
int fsync_dir(const char *path);

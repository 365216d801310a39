/* Internal interfaces of the front, shared by its .c files and its unit tests.
 * Nothing outside src/front and tests/unit/test-front-*.c includes this. */
#pragma once

#include <sys/stat.h>
#include <time.h>

#include "common/buf.h"
#include "common/evloop.h"
#include "front/front.h"

/* ---- map: string key -> pointer, open addressing, O(1) ---- */

struct front_map_entry {
    uint64_t hash;      /* 0 marks an empty slot */
    const char *key;    /* borrowed from the value's owner */
    size_t key_len;
    void *value;
};

struct front_map {
    struct front_map_entry *slots;
    size_t cap;         /* power of two */
    size_t len;
};

/* Hash used by the map (seeded per process so lookups cannot be predicted). */
uint64_t front_hash(const char *key, size_t len);
void front_map_init(struct front_map *m);
void front_map_done(struct front_map *m);
/* Inserts or replaces key (the key memory must outlive the entry). Returns the
 * previous value through ret_old (NULL if none). -ENOMEM. */
int front_map_put(struct front_map *m, const char *key, size_t len, void *value, void **ret_old);
void *front_map_get(const struct front_map *m, const char *key, size_t len);
/* Removes key if it maps to value (or to anything when value is NULL). Returns true
 * if an entry was removed. */
bool front_map_del(struct front_map *m, const char *key, size_t len, const void *value);

/* ---- host names ---- */

#define FRONT_HOST_MAX 253

/* Normalises a Host field or absolute-form authority for lookup: lowercases,
 * strips the port and one trailing dot, keeps IPv6 literals in brackets. Writes to
 * out (FRONT_HOST_MAX + 3 bytes, NUL-terminated). -EINVAL for bytes no host name
 * may hold, an empty name, or a bad port. */
int front_host_normalize(const char *in, size_t len, char *out, size_t *ret_len);

/* ---- control protocol (supervisor -> worker, one SOCK_SEQPACKET message each) ---- */

enum {
    FRONT_MSG_UPSERT = 1,
    FRONT_MSG_REMOVE = 2,
    FRONT_MSG_REOPEN_LOGS = 3,
    FRONT_MSG_SYNC = 4,          /* the whole table was sent: a new worker may accept */
};
#define FRONT_MSG_MAX (256 * 1024)

/* Serialises a site as an UPSERT message into out. -EINVAL, -E2BIG. */
int front_msg_site_encode(const struct front_site *site, struct buf *out);
/* Decoded form of an UPSERT message: strings point into the message, hosts into
 * an array the caller frees with free(). */
struct front_site_msg {
    struct front_site site;
    const char **hosts;
};
int front_msg_site_decode(const char *msg, size_t len, struct front_site_msg *ret);

/* ---- MIME types ---- */

/* Content-Type for a file name, from its extension (case-insensitive);
 * "application/octet-stream" when unknown. Text types carry "; charset=utf-8". */
const char *front_mime_type(const char *path, size_t len);
/* True when the type benefits from compression (so a .gz/.br sibling may exist
 * and responses carry Vary: Accept-Encoding). */
bool front_mime_compressible(const char *type);

/* ---- static file helpers ---- */

/* Parses a Range field against a representation of size bytes. Returns 1 and the
 * inclusive [first,last] for one satisfiable range, 0 when the field must be
 * ignored (not bytes=, several ranges, bad syntax: serve 200), -416 when the range
 * cannot be satisfied. */
int front_range_parse(const char *value, size_t len, uint64_t size, uint64_t *ret_first,
                      uint64_t *ret_last);
/* Formats the strong validator for a file: "\"<mtime hex>-<size hex>\"" into out[48]. */
void front_etag_format(const struct stat *st, char *out, size_t n);
/* True when an If-None-Match value matches etag (weak comparison, "*" matches). */
bool front_etag_match(const char *value, size_t len, const char *etag);
/* Whether an Accept-Encoding value accepts coding (a token present, q not 0). */
bool front_accepts_encoding(const char *value, size_t len, const char *coding);
/* True when a normalised path has a segment starting with '.' (dotfiles). */
bool front_path_has_dot_segment(const char *path, size_t len);

/* Opens rel (normalised, no leading '/', "" for the root itself) beneath rootfd
 * with open_flags (O_RDONLY variants), following a symlink only when its target
 * stays beneath the root and has the same owner as the link. -ENOENT, -EACCES
 * (symlink owner mismatch or escape), other negative errno. */
int front_open_beneath_owner(int rootfd, const char *rel, int open_flags, int *ret_fd);

/* ---- logs ---- */

struct front_log;

/* Opens (creating, mode 0640, O_APPEND) path. path is copied. */
int front_log_open(const char *path, uint64_t rotate_size, unsigned keep, struct front_log **ret);
/* Drops a reference; the last one flushes and closes. NULL-safe. */
void front_log_unref(struct front_log *log);
struct front_log *front_log_ref(struct front_log *log);
/* Appends bytes (whole lines) to the log's buffer, flushing first when it is full. */
void front_log_append(struct front_log *log, const char *p, size_t n);
/* Writes buffered lines and rotates when the file grew past the size limit. */
int front_log_flush(struct front_log *log);
/* Flushes and reopens the path (after someone else renamed the file). */
int front_log_reopen(struct front_log *log);
/* Flushes, or reopens, every log of this process (the registry is per process). */
void front_log_flush_all(void);
void front_log_reopen_all(void);

/* Formats "[10/Oct/2000:13:55:36 +0000]" for t (UTC) into out (at least 32 bytes). */
void front_log_time_format(time_t t, char *out, size_t n);
/* Appends s[0..n) to b as the inside of a quoted log field: '"', '\\', control and
 * non-ASCII bytes become \xHH so that a client cannot forge log lines. NULL: "-". */
int front_log_escape(struct buf *b, const char *s, size_t n);

/* ---- worker ---- */

/* Runs one worker in the current (forked) process; never returns. */
_noreturn_ void front_worker_main(const struct front_config *cfg, const int *listen_fds,
                                  size_t n_listen, int ctl_fd);

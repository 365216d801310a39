/* Internal interfaces of the front, shared by its .c files and its unit tests.
 * Nothing outside src/front and tests/unit/test-front-*.c includes this. */
#pragma once

#include <stdatomic.h>
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
    FRONT_MSG_ACTIVITY = 5,      /* worker -> supervisor: requests per site since the last report */
    FRONT_MSG_CHALLENGE_SET = 6, /* u32 type, token, NUL, key authorization (no NUL) */
    FRONT_MSG_CHALLENGE_REMOVE = 7, /* u32 type, token */
    FRONT_MSG_DEFAULT_CERT = 8,  /* u32 type, certificate PEM, NUL, key PEM (no NUL) */
};
#define FRONT_CHALLENGE_MAX 256
#define FRONT_CHALLENGE_PREFIX "/.well-known/acme-challenge/"

/* Whether s (len bytes) is a token or key authorization the front answers
 * challenges with: base64url, and for a key authorization two such parts joined
 * by one '.'; 1..FRONT_CHALLENGE_MAX bytes. */
bool front_challenge_valid(const char *s, size_t len, bool key_authorization);
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

/* ACTIVITY (activity.c): u32 type, u32 n, then n entries of u32 name length, the
 * name (1..63 bytes), u64 requests, u64 2xx, 3xx, 4xx, 5xx, u64 bytes, u64 answered
 * by the backend, u64 failed by the backend. Host byte
 * order (both ends are the same binary). A report never exceeds this size: a worker
 * with more active sites sends several. */
#define FRONT_ACTIVITY_MSG_MAX (16 * 1024)
/* Appends one site's figures to the report being built in out (its header written
 * when out is empty). -ENOBUFS when the entry would take the report past
 * FRONT_ACTIVITY_MSG_MAX (send it and start another), -EINVAL for a bad name. */
int front_msg_activity_append(struct buf *out, const struct front_site_activity *a);
/* Checks a whole report first (sizes, lengths, 2xx+3xx+4xx+5xx <= requests, no
 * trailing bytes), and only then calls fn for each entry; a.name points into a
 * NUL-terminated copy valid for the call. -EBADMSG when anything is wrong (fn was
 * not called). */
int front_msg_activity_decode(const char *msg, size_t len,
                              void (*fn)(void *data, const struct front_site_activity *a), void *data);

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
/* True when a list of entity tags (If-None-Match, If-Match) matches etag, a strong
 * one: "*" matches; W/ tags match only with weak comparison (strong: false, as for
 * If-None-Match), never with strong (If-Match). */
bool front_etag_match(const char *value, size_t len, const char *etag, bool strong);
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

/* ---- spreading connections over the workers (spread.c) ---- */

/* One worker's figures, in a page the supervisor maps shared before the workers
 * fork. conns is written by its worker, incoming by whoever hands it a connection,
 * alive by the supervisor. A line of its own each: workers write theirs often. */
struct front_worker_slot {
    _Atomic uint32_t conns;      /* connections the worker serves */
    _Atomic uint32_t incoming;   /* handed to it, not yet picked up from its inbox */
    _Atomic uint32_t alive;      /* 1 while the worker runs (the supervisor's) */
    _Atomic uint32_t ready;      /* 1 once it listens and reads its inbox (the worker's) */
    _Atomic uint64_t beat_ms;    /* its last tick (CLOCK_MONOTONIC ms): a stopped or
                                    hung worker stops beating */
    char pad[40];
};

/* What a worker says of a connection it hands over (the inbox message). */
struct front_handoff {
    bool admitted;               /* passed a worker's connection limits already */
    bool tls;                    /* came in on an HTTPS listener (such a connection
                                    moves only before its handshake began) */
    uint64_t deadline_ms;        /* CLOCK_MONOTONIC ms at which it times out as it
                                    stands: the head timeout while no request came,
                                    else the keep-alive idle timeout */
};

/* A worker whose tick is this late is taken for stalled: the others watch its
 * sockets and hand it nothing. */
#define FRONT_WORKER_STALL_MS 1000

struct front_spread {
    unsigned n_workers;
    size_t n_listen;
    int *listen;                 /* [listener * n_workers + worker]: that worker's socket;
                                    worker 0's is the caller's, one that differs was made here */
    int *inbox;                  /* [2 * worker]: the worker receives on it; [2 * worker + 1]: others send */
    struct front_worker_slot *slots;
    int *cpus;                   /* [worker]: its CPU when connections are steered by CPU, else -1 */
    bool steered;                /* a listener has the CPU program */
};

/* Gives each of n_workers its own socket of every listener that has SO_REUSEPORT
 * set (the given socket is worker 0's; the others join its group), and when
 * worker_cpus names a distinct CPU per worker, steers each connection to the
 * worker on the CPU that took its SYN. Other listeners are shared. Also makes the
 * shared slots and, for two workers or more, the inboxes. listen_fds stay the
 * caller's. */
int front_spread_new(const int *listen_fds, size_t n_listen, unsigned n_workers,
                     const int *worker_cpus, struct front_spread **ret);
void front_spread_free(struct front_spread *s);
/* Worker worker's socket for listener (the same fd for several workers when shared). */
int front_spread_socket(const struct front_spread *s, size_t listener, unsigned worker);
/* Supervisor: the worker started or died (a dead worker serves nothing). */
void front_spread_set_alive(struct front_spread *s, unsigned worker, bool alive);
/* Worker: it listens and reads its inbox now; until then the others cover its
 * sockets and hand it nothing. */
void front_spread_set_ready(struct front_spread *s, unsigned self, uint64_t now_ms);
/* Supervisor, when a worker died: passes the connections left in its inbox to a
 * worker that serves (or closes them when none does). */
void front_spread_reroute(struct front_spread *s, unsigned dead);
/* Worker: still here, on each tick. */
void front_spread_beat(struct front_spread *s, unsigned self, uint64_t now_ms);
/* Alive, ready and beating: it takes connections from its sockets and inbox. */
bool front_spread_serving(const struct front_spread *s, unsigned worker, uint64_t now_ms);
/* Worker: publishes how many connections it serves. */
void front_spread_set_conns(struct front_spread *s, unsigned self, size_t n);
/* Worker: the live worker serving the fewest connections when self serves clearly
 * more than it (and through ret_surplus, NULL-safe, how many to move to even them
 * out); -1 when the spread is even enough. */
int front_spread_pick(const struct front_spread *s, unsigned self, uint32_t *ret_surplus);
/* The worker pinned to cpu when connections are steered by CPU, else -1. */
int front_spread_worker_on_cpu(const struct front_spread *s, int cpu);
/* Whether self may hand one connection to worker to (alive) without leaving `to`
 * clearly more loaded than self: used to move a connection to the worker of the
 * CPU its packets now arrive on. */
bool front_spread_may_move(const struct front_spread *s, unsigned self, unsigned to);
/* Passes fd to worker to's inbox with what h says of it (the caller then closes
 * its copy). Negative errno, the inbox being full say, when it could not. */
int front_spread_handoff(struct front_spread *s, unsigned to, int fd, const struct front_handoff *h);
/* The fd a worker watches for connections handed to it; -1 with one worker. */
int front_spread_inbox_fd(const struct front_spread *s, unsigned self);
/* One connection from self's inbox (O_CLOEXEC, non-blocking as accepted) and
 * what its sender said of it, or negative errno (-EAGAIN: none waiting). */
int front_spread_receive(struct front_spread *s, unsigned self, struct front_handoff *ret);

/* ---- HTTPS (tls.c) ---- */

/* In berthd, before the workers fork: makes the default TLS context from cfg's PEM
 * (when it has TLS listeners), which every worker inherits, with the same session
 * ticket keys. -EINVAL with the reason in err. */
int front_tls_prepare(const struct front_config *cfg, char *err, size_t n);
/* In berthd and in each worker: a new default certificate for the connections
 * accepted from now on, keeping the session ticket keys. Does nothing when there
 * is no default context (no TLS listener). -EINVAL with the reason in err; the
 * old certificate then stays. */
int front_tls_default_replace(const char *cert_pem, const char *key_pem, char *err, size_t n);
void front_tls_release(void);
/* Whether TLS listeners offer h2 in ALPN (cfg->http2): set in berthd before the
 * workers fork, so every worker and context offers the same. */
void front_tls_set_http2(bool on);

/* ---- worker ---- */

/* Runs worker index of spread's workers in the current (forked) process; never
 * returns. */
_noreturn_ void front_worker_main(const struct front_config *cfg, struct front_spread *spread,
                                  unsigned index, int ctl_fd);

/* ---- HTTP/2 request and answer fields (h2-head.c) ---- */

/* An HTTP/1.1 request head built from the fields of one HTTP/2 request (which
 * nghttp2 checked: pseudo-fields first, lowercase names, no connection-specific
 * fields, no CR, LF or NUL). The head goes to the connection that serves the
 * stream, whose HTTP/1.1 parser applies every limit it applies to any request. */
struct front_h2_head {
    struct buf head;         /* request line once known, then fields */
    struct buf method, path, authority;
    struct buf cookie;       /* the crumbs of every cookie field, "; "-joined */
    size_t list_size;        /* names + values + 32 per field (RFC 9113 §6.5.2) */
    size_t max;              /* the HTTP/1.1 head limit (max_head) */
    bool line_done;          /* the request line and Host are in head */
    bool too_big;            /* over max: fields past it are dropped */
    bool has_length;         /* content-length came */
};

/* Prepares h for a request whose head may take max bytes. */
void front_h2_head_init(struct front_h2_head *h, size_t max);
/* Frees h's buffers. NULL-safe. */
void front_h2_head_done(struct front_h2_head *h);
/* Adds one field, pseudo (":method", ":path", ":authority"; ":scheme" is always
 * https here and dropped) or regular. host gives way to :authority; cookie crumbs
 * are joined; te, expect and the like are dropped (the front answers for itself).
 * Past max, marks h too_big and keeps nothing more. Negative errno (-ENOMEM). */
int front_h2_head_field(struct front_h2_head *h, const char *name, size_t nlen, const char *value,
                        size_t vlen);
/* Ends the head: Host, Cookie, "Transfer-Encoding: chunked" when a body follows
 * with no content-length, the blank line. A head that grew
 * too big is instead left unterminated past max bytes, so that the HTTP/1.1
 * parser answers 431 as it does on HTTP/1.1 (and logs it the same way).
 * Negative errno. */
int front_h2_head_finish(struct front_h2_head *h, bool body);
/* Whether an answer's field may go into HTTP/2 HEADERS: not the connection-specific
 * ones (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE). */
bool front_h2_answer_field_passes(const char *name, size_t len);

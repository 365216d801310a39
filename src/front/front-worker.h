/* State shared by the worker's files (worker.c, conn.c, static.c, proxy.c, fcgi.c): one
 * worker process, its sites and its connections. Internal to src/front. */
#pragma once

#include <netinet/in.h>
#include <sys/un.h>

#include "front/front-internal.h"
#include "http/http1.h"

struct worker;
struct proxy;
struct fcgi;
struct fastcgi_route;
struct cached_file;
struct h2_session;

/* A backend (app or php-fpm socket path) and its idle keep-alive connections.
 * Shared by the versions of a site that name the same path. */
struct backend {
    unsigned refs;
    struct worker *w;
    char *path;
    struct sockaddr_un addr;
    socklen_t addr_len;
    struct upstream *idle;      /* idle keep-alive connections, newest first */
    size_t n_idle;
    unsigned active;            /* requests of this worker at it: proxied (tunnels
                                   included) or FastCGI */
    uint64_t refused_logged_ms; /* when a refusal over the site's limit was last logged */
};

/* One site as the worker knows it. Reference-counted: a connection holds its site
 * until the request ends, so an update or removal never pulls a site from under a
 * request being served. */
struct vsite {
    unsigned refs;
    char *name;
    char **hosts;
    size_t n_hosts;
    enum front_site_type type;
    enum front_site_state state;
    uid_t uid;
    uint64_t max_body;
    uint32_t upstream_timeout_ms; /* never 0: the config's default filled in */
    char *public_dir;
    int root_fd;                 /* O_PATH of public_dir; -1 until needed */
    int64_t root_checked_s;      /* when root_fd was last checked against the path */
    uint64_t root_gen;           /* new for each root_fd opened: keys the open-file cache */
    struct front_log *access_log;
    struct front_log *error_log;
    struct backend *backend;     /* NULL when the site has none */
    bool removed;                /* removed from berthd: its requests count for nobody */
    char *tls_cert, *tls_key;    /* PEM from the route; NULL: the default certificate */
    struct ssl_ctx_st *tls_ctx;  /* made from them on the first handshake naming the site */
    bool tls_ctx_failed;         /* they could not be used (logged once) */
    bool https_redirect;         /* plain HTTP gets a 308 to HTTPS */
};

struct client {
    char addr[INET6_ADDRSTRLEN];
    unsigned conns;
};

enum conn_state {
    CS_HEAD,      /* reading a request head, or idle between requests */
    CS_RESPOND,   /* writing an answer the front made (buffer, then file) */
    CS_PROXY,     /* the request is with the proxy */
    CS_FCGI,      /* the request is with the FastCGI client */
    CS_LINGER,    /* write side shut; draining input briefly so the peer reads our answer */
    CS_H2,        /* TLS with ALPN h2: an HTTP/2 session runs the connection (h2.c) */
};

struct conn {
    struct worker *w;
    struct conn *prev, *next;    /* the worker's list, for timeouts */
    int fd;
    enum conn_state state;
    struct client *client;
    bool tcp;
    struct ssl_st *tls;          /* HTTPS: the TLS session; NULL on plain HTTP */
    bool tls_ready;              /* its handshake is done */
    bool tls_gathering;          /* its write buffer is the large one (a file goes out) */
    uint16_t remote_port;        /* for REMOTE_PORT / SERVER_PORT (0 on unix sockets) */
    uint16_t local_port;
    struct buf in;               /* raw bytes from the client; the head being parsed starts at 0 */
    struct http1_parser parser;
    struct http1_request req;
    size_t head_len;             /* length of the parsed head in `in` */
    size_t consumed;             /* bytes of `in` the current request owns (head + body) */
    struct buf out;              /* answer bytes not yet written, from out_off */
    size_t out_off;
    int file_fd;                 /* file being sent after `out`, or -1 */
    struct cached_file *file_cf; /* referenced when file_fd is the cache's, else NULL */
    uint64_t file_off, file_left;
    bool file_yielded;           /* the file has had its first slice and yielded once */
    struct ev_defer send_turn;   /* pending: the file's next slice waits for the loop's next pass */
    uint64_t deadline;           /* ms; what it means depends on state */
    int64_t cpu_checked_s;       /* when the CPU its packets arrive on was last looked at */
    bool head_started;           /* bytes of a next request have arrived */
    bool readable;               /* epoll said readable and no short read since */
    bool keep_alive;
    bool linger;                 /* unread input may remain: drain before closing */
    int status;                  /* for the access log */
    uint64_t bytes_sent;
    uint64_t req_start_ms;
    int64_t upstream_ms;         /* -1: no upstream */
    bool upstream_failed;        /* the backend failed this request (our 502/504) */
    struct buf logline;          /* the request's log line, completed when it ends */
    size_t log_split;            /* where status and bytes go in logline */
    struct vsite *site;          /* referenced while a request runs */
    struct front_log *log;       /* where this request's line goes (borrowed via site or worker) */
    struct proxy *px;
    struct fcgi *fc;
    /* Last, so that the fields HTTP/1.1 uses on every request keep their places. */
    struct h2_session *h2s;      /* CS_H2: the session */
    struct h2_stream *h2_peer;   /* h2: the stream relaying the current request (NULL while
                                    idle); a file answer's body goes to it (no copy through
                                    the pair) */
    uint32_t gen;                /* new for each connection this struct serves */
    bool h2;                     /* serves one HTTP/2 stream's request, relayed over a socket
                                    pair by the stream (h2-stream.c): HTTPS, logged HTTP/2.0,
                                    never handed to another worker */
};

struct worker {
    struct evloop *loop;
    const struct front_config *cfg;
    struct http1_limits limits;
    struct front_map sites;      /* name -> vsite */
    struct front_map hosts;      /* host -> vsite */
    struct front_map backends;   /* socket path -> backend */
    struct front_map clients;    /* address -> client */
    struct front_map challenges; /* ACME token -> key authorization (one allocation: the
                                    token, NUL, the key authorization, NUL) */
    int ctl_fd;
    int sig_fd;
    struct front_spread *spread; /* this worker's sockets, the others' inboxes, the shared slots */
    unsigned index;              /* which of spread's workers this is */
    bool *helping;               /* [worker]: its sockets are watched here while it is down */
    bool evening_out;            /* serving clearly more than another worker: hand it new connections */
    struct conn *conns;
    struct conn *free_conns;
    size_t n_conns;
    uint64_t now_ms;
    int64_t now_s;
    char date[30];               /* IMF-fixdate of now_s, for Date: */
    char log_time[32];           /* "[..]" of now_s, for access logs */
    struct front_log *global_log;
    char *ctl_buf;
    struct front_map activity;   /* site name -> struct site_activity, sites with requests not yet reported */
    struct site_activity *activity_list; /* the same entries, for walking while removing */
    uint64_t activity_sent_ms;   /* when the last report went out */
    uint32_t site_max_requests;  /* this worker's share of cfg->site_max_requests; 0: no limit */
    uint16_t https_port;         /* of the first HTTPS listener, for redirects; 0: none */
};

/* The worker's tick: timeouts, cached clock, log flushes, spreading. */
#define TICK_MS 100

/* conn.c */
void front_conn_accept(struct worker *w, int lfd);
/* Takes a client socket another worker accepted and handed over, with what that
 * worker said of it. */
void front_conn_adopt(struct worker *w, int fd, const struct front_handoff *h);
/* Makes fd (the other end of a stream's socket pair) a connection that serves the
 * requests an HTTP/2 stream of parent relays to it: the client's address and
 * ports are parent's, it counts in the worker's connections but not the client's
 * (the caller checks the worker's cap: parent's client was admitted), and it is
 * never handed over. *ret: the connection (valid while its gen is unchanged).
 * Negative errno (fd is closed then). */
int front_conn_adopt_stream(struct worker *w, int fd, const struct conn *parent, struct conn **ret);
/* Whether the request came over TLS (HTTPS), directly or on an HTTP/2 stream. */
static inline bool front_conn_https(const struct conn *c)
{
    return c->tls || c->h2;
}
/* On the tick: when this worker serves clearly more connections than another,
 * hands that one its idle keep-alive connections, and new ones until even; then,
 * with connections steered by CPU, hands idle ones whose packets now arrive on
 * another worker's CPU to that worker, as far as the counts allow. */
void front_conn_rebalance(struct worker *w);
/* Drives a connection until it must wait for I/O again. */
void front_conn_run(struct conn *c);
/* Bytes were just written to c (waiting for a request): reads and serves them now
 * instead of after a round through epoll. */
void front_conn_poke(struct conn *c);
void front_conn_close(struct conn *c);
/* Closes after what was written: shuts the write side and reads what the client
 * still sends for a short while, so that our last words (a GOAWAY) are not lost
 * to a reset for unread input. */
void front_conn_linger(struct conn *c);
void front_conn_check_timeouts(struct worker *w);
/* Starts a front-made answer: status line and the common headers (Server, Date,
 * Connection). The caller appends its own headers, then the blank line. */
int front_conn_head_begin(struct conn *c, int status);
/* The proxy or the FastCGI client took the request and reads its body: the
 * connection may stay open after it as the client asked (dispatch closes after
 * any other answer to a request with a body). */
void front_conn_body_taken(struct conn *c);
/* Appends a small HTML page for status as the whole answer (head and body). */
int front_conn_error(struct conn *c, int status, const char *extra_headers);
/* Appends "Name: value\r\n" to the answer. */
int front_conn_header(struct conn *c, const char *name, const char *value, size_t vlen);
/* Ends the request: access log line, site reference, then the next request or close. */
void front_conn_request_done(struct conn *c);
/* Writes out, then the file. 1 when everything went out, 0 when the socket is
 * full (EPOLLOUT is armed), negative errno when the peer is gone. */
int front_conn_flush(struct conn *c);
/* Writes to the error log of the connection's site (or to stderr). */
void front_conn_log_error(struct conn *c, const char *fmt, ...) _printf_(2, 3);
/* Watches the client socket for these events (only when they change). */
void front_conn_want(struct conn *c, uint32_t events);

/* Reads what the client sent (through TLS on HTTPS) into b, up to
 * FRONT_READ_CHUNK: as front_read_into(). */
ssize_t front_conn_read_into(struct conn *c, struct buf *b);

/* tls.c: HTTPS. */
/* The site's own context, made on first use from its PEM; NULL when it has none
 * or they cannot be used (then the default certificate serves its hosts). */
struct ssl_ctx_st *front_tls_site_ctx(struct vsite *s);
/* Begins a server-side TLS session on c's socket. Negative errno. */
int front_tls_start(struct conn *c);
/* Goes on with the handshake: 1 done, 0 waiting (the right event is armed),
 * negative when it failed (close the connection). */
int front_tls_handshake(struct conn *c);
/* Plaintext in and out: bytes, 0 at the end of input (read), -EAGAIN, or
 * another negative errno when the session broke. */
ssize_t front_tls_read(struct conn *c, void *p, size_t n);
ssize_t front_tls_write(struct conn *c, const void *p, size_t n);
/* Sends what writes gathered: 1 all gone, 0 the socket is full (wait for
 * EPOLLOUT), negative errno. */
int front_tls_flush(struct conn *c);
/* Gives the session's write buffer room for several records (large: a file goes
 * out) or takes it back (the answer is out), when nothing is waiting in it. */
void front_tls_gather(struct conn *c, bool large);
/* Sends close_notify if it can without waiting. */
void front_tls_close_notify(struct conn *c);
void front_tls_free(struct conn *c);

/* Whether the client picked h2 by ALPN on c's finished handshake. */
bool front_tls_alpn_h2(const struct conn *c);

/* h2-stream.c: takes over the file c is about to send as its answer's body (c
 * keeps only the head to write): the stream reads it into DATA frames as the
 * client's window allows. */
void front_h2_stream_take_file(struct h2_stream *st, struct conn *c);
/* c, which served a stream, closes: the stream must not reach it any more. */
void front_h2_stream_unlink(struct h2_stream *st);

/* h2.c: an HTTP/2 session on a TLS connection (see docs/internals/front.md). */
/* Turns c, whose handshake picked h2, into a session: sends our SETTINGS and
 * reads the client's preface. Closes c on failure. */
void front_h2_start(struct conn *c);
/* Client socket events of a CS_H2 connection. */
void front_h2_event(struct conn *c, uint32_t events);
/* Called by the tick: settings, idle and write-stall timeouts. */
void front_h2_timeout(struct conn *c);
/* Frees the session and its streams (their relay sockets close). NULL-safe on c->h2s. */
void front_h2_free(struct conn *c);

/* static.c: answers a GET/HEAD (or refuses other methods) from the site's public dir. */
void front_static_handle(struct conn *c, const char *path, size_t path_len, const char *query,
                         size_t query_len);

/* filecache.c: the worker's open-file cache (see the file's comment for the
 * rules). Opens rel, relative and normalised, beneath root (the site's root fd):
 * from the cache while its entry is under a second old and the path still names
 * the same inode, else through front_open_beneath_owner(). Negative errno as that
 * function. On success *ret_st describes the file now, and either *ret_cf is set
 * and *ret_fd is borrowed from it (valid until the cache is next used; take a
 * reference to keep it longer) or *ret_cf is NULL and the caller owns *ret_fd.
 * Only regular files are cached. */
int front_file_open(struct worker *w, const struct vsite *s, int root, const char *rel,
                    int *ret_fd, struct stat *ret_st, struct cached_file **ret_cf);
struct cached_file *front_cached_file_ref(struct cached_file *f);
/* Drops a reference; the fd closes with the last one. NULL-safe. */
void front_cached_file_unref(struct cached_file *f);
/* Closes the entries past their second; called from the worker's tick. */
void front_file_cache_sweep(struct worker *w);

/* proxy.c */
void front_proxy_start(struct conn *c);
/* Client socket events while the connection is proxied. */
void front_proxy_client_event(struct conn *c, uint32_t events);
void front_proxy_free(struct conn *c);
/* Called by the timeout scan; returns true if the proxy handled a due deadline. */
void front_proxy_timeout(struct conn *c);
void front_backend_unref(struct backend *b);
void front_backend_idle_check(struct backend *b);
/* Reads of a connection's buffers take at most this much at a time. */
#define FRONT_READ_CHUNK (16 * 1024)
/* One read of up to FRONT_READ_CHUNK from fd, appended to b. Bytes read (0: EOF),
 * -EAGAIN when nothing is there (or EINTR), -ENOBUFS when b is at its maximum, or
 * another negative errno. */
ssize_t front_read_into(int fd, struct buf *b);
/* Starts a non-blocking connection to b's socket in *fd (made when < 0; the caller
 * owns it either way and watches it). 1: connected or in progress; 0: the backend's
 * backlog is full (a unix socket gives no event for this: retry on the tick until
 * the connect timeout); negative errno: refused or missing. */
int front_backend_connect(struct backend *b, int *fd);
/* An idle connection to b from its pool (the caller owns it), or -1 when none. It
 * is still watched by the loop (for the pool): the caller takes it over with
 * evloop_set, so a reused connection costs no epoll_ctl. */
int front_backend_pool_get(struct backend *b);
/* Parks a connection that finished a request cleanly in b's pool; takes ownership
 * of fd (closed when the pool already holds max_idle). fd must be watched by the
 * loop: the pool hands it to its own callback. idle_ms > 0: closed after that long
 * unused (front_backend_idle_expire). */
void front_backend_pool_put(struct backend *b, int fd, size_t max_idle, uint32_t idle_ms);
/* Closes an upstream connection we own (watched by the loop) and sets *fd to -1.
 * NULL-safe for *fd < 0. */
void front_upstream_close(struct worker *w, int *fd);
/* Ends c's request after its backend failed: marks it failed for the activity
 * report, then closes the connection when part of the backend's answer went out
 * already (answer_started), else answers status with berth's page and lets the
 * connection linger closed. Returns true when c still exists (to be run). */
bool front_conn_upstream_failed(struct conn *c, int status, bool answer_started);
/* Whether c's request may go to its site's backend: true while this worker has
 * fewer than its share of the site's request limit there; otherwise answers 503
 * with Retry-After and returns false. */
bool front_backend_admit(struct conn *c);
/* Closes the pooled connections of every backend whose idle time ran out (tick). */
void front_backend_idle_expire(struct worker *w);

/* fcgi.c: PHP sites. */
/* Runs the script a route named (FASTCGI_ROUTE_SCRIPT) through the site's php-fpm
 * socket. route and its path_info are read before this returns (borrowed). */
void front_fcgi_start(struct conn *c, const struct fastcgi_route *route);
/* Client socket events while the request is with the FastCGI client. */
void front_fcgi_client_event(struct conn *c, uint32_t events);
/* Drops the request's upstream connection (not reused) and state. NULL-safe on c->fc. */
void front_fcgi_free(struct conn *c);
/* Called by the timeout scan: connect retries and the upstream deadline (504). */
void front_fcgi_timeout(struct conn *c);

/* activity.c: requests per site, reported to the supervisor */
struct site_activity;
/* Counts one answered request of site s (status and body bytes of c). */
void front_activity_count(struct worker *w, const struct conn *c);
/* Sends what was counted since the last report, if a second has passed; called
 * from the tick. Never blocks: what does not fit in the socket stays counted. */
void front_activity_report(struct worker *w);
/* Drops what was counted for site name and not yet reported: the site was
 * removed, and a new site may take its name. */
void front_activity_forget(struct worker *w, const char *name, size_t len);

/* worker.c */
struct vsite *front_vsite_ref(struct vsite *s);
void front_vsite_unref(struct vsite *s);
/* The O_PATH fd of the site's public dir, opened (or reopened after the directory
 * was replaced) on demand. Negative errno. Borrowed. */
int front_vsite_root(struct worker *w, struct vsite *s);

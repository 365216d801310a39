/* fastcgi: the client side of FastCGI 1.0 as the front speaks it to a site's
 * php-fpm pool, and the PHP routing rules that decide what reaches the pool.
 *
 * - Encoding: BEGIN_REQUEST, PARAMS, STDIN and ABORT_REQUEST records appended to a
 *   struct buf (or just a record header, for a writev of body bytes in place).
 * - Decoding: a resumable, zero-copy, byte-level parser of the records php-fpm
 *   sends back; STDOUT bytes are handed to the caller as they arrive, STDERR is
 *   collected with a hard bound, END_REQUEST ends the exchange.
 * - The CGI response head inside STDOUT (RFC 3875 §6): status, headers, redirects.
 * - The CGI/1.1 parameters for one request (RFC 3875 §4.1 + what PHP reads).
 * - Routing a request path to a static file, a script (+ PATH_INFO) or nothing,
 *   so that no request ever runs a file it did not name (cgi.fix_pathinfo trap).
 *
 * Nothing here logs or does I/O on sockets. All functions return >= 0 on success or
 * a negative errno; ret_* out-parameters are untouched on failure. Design notes:
 * docs/internals/fastcgi.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* ---- records (FastCGI 1.0 §3, §8) ------------------------------------------ */

/* Bytes of a record header. */
#define FASTCGI_HEADER_LEN 8
/* Largest contentLength a record can carry (16-bit field). */
#define FASTCGI_MAX_CONTENT 65535
/* The only protocol version there is. */
#define FASTCGI_VERSION 1

/* Record types. */
enum fastcgi_type {
    FASTCGI_BEGIN_REQUEST = 1,
    FASTCGI_ABORT_REQUEST = 2,
    FASTCGI_END_REQUEST = 3,
    FASTCGI_PARAMS = 4,
    FASTCGI_STDIN = 5,
    FASTCGI_STDOUT = 6,
    FASTCGI_STDERR = 7,
    FASTCGI_DATA = 8,
    FASTCGI_GET_VALUES = 9,
    FASTCGI_GET_VALUES_RESULT = 10,
    FASTCGI_UNKNOWN_TYPE = 11,
};

/* protocolStatus of END_REQUEST. */
enum fastcgi_protocol_status {
    FASTCGI_REQUEST_COMPLETE = 0,
    FASTCGI_CANT_MPX_CONN = 1,
    FASTCGI_OVERLOADED = 2,
    FASTCGI_UNKNOWN_ROLE = 3,
};

/* Writes the 8-byte header of a record with content_len bytes of content and the
 * padding that rounds the record up to a multiple of 8 (what the spec recommends
 * and php-fpm expects nothing less of), into out. Returns the padding length
 * (0..7). -EINVAL when content_len > FASTCGI_MAX_CONTENT. For sending body bytes
 * with writev without copying them: header, data, then that many zero bytes. */
int fastcgi_header_encode(uint8_t out[static FASTCGI_HEADER_LEN], enum fastcgi_type type,
                          uint16_t request_id, size_t content_len);

/* Appends BEGIN_REQUEST with role RESPONDER. keep_conn sets FCGI_KEEP_CONN so the
 * application leaves the connection open after END_REQUEST (pooled connections).
 * -EINVAL for request_id 0 (reserved for management records). */
int fastcgi_begin_request_write(struct buf *out, uint16_t request_id, bool keep_conn);

/* Appends ABORT_REQUEST (the client went away: php-fpm ends the script). */
int fastcgi_abort_request_write(struct buf *out, uint16_t request_id);

/* Appends data as STDIN records of at most FASTCGI_MAX_CONTENT bytes each. len 0
 * appends nothing (an empty STDIN record would end the stream: see below). */
int fastcgi_stdin_write(struct buf *out, uint16_t request_id, const void *data, size_t len);

/* Appends the empty STDIN record that ends the request body. */
int fastcgi_stdin_end(struct buf *out, uint16_t request_id);

/* Writer of the PARAMS stream into a buf. php-fpm decodes each PARAMS record on its
 * own (a name-value pair split across two records is lost), so every pair lives
 * whole in one record: a new record starts when the next pair does not fit, and a
 * pair that cannot fit in any record (over 65535 bytes encoded) is refused. Fill with
 * fastcgi_params_init; fields are internal. */
struct fastcgi_params {
    struct buf *out;        /* borrowed */
    uint16_t request_id;
    size_t record_start;    /* offset in out of the open record's header; SIZE_MAX: none */
    int error;              /* first failure, sticky: later calls do nothing */
};

/* Starts a PARAMS stream appended to out (borrowed, must outlive p). */
void fastcgi_params_init(struct fastcgi_params *p, struct buf *out, uint16_t request_id);

/* Appends one name-value pair (lengths of 1 or 4 bytes as the spec encodes them).
 * -E2BIG when the pair alone cannot fit in a record, -ENOBUFS/-ENOMEM from out; the
 * first error is kept and returned by every later call and by fastcgi_params_end. */
int fastcgi_params_add(struct fastcgi_params *p, const char *name, size_t name_len,
                       const char *value, size_t value_len);

/* Like fastcgi_params_add with NUL-terminated name and value. */
int fastcgi_params_add_str(struct fastcgi_params *p, const char *name, const char *value);

/* Closes the open record and appends the empty PARAMS record that ends the stream.
 * Returns the first error met since fastcgi_params_init, if any. */
int fastcgi_params_end(struct fastcgi_params *p);

/* ---- response parser ------------------------------------------------------- */

/* What one call of fastcgi_response_parse found. */
enum fastcgi_event {
    FASTCGI_EVENT_NONE,     /* bytes consumed (header, padding, STDERR): nothing to hand over */
    FASTCGI_EVENT_STDOUT,   /* data/len: STDOUT bytes, pointing into the caller's input */
    FASTCGI_EVENT_END,      /* END_REQUEST read: see app_status, protocol_status */
};

/* Resumable parser state for the records of one request. Initialise with
 * fastcgi_response_init; read the public fields, do not write them. */
struct fastcgi_response {
    uint16_t request_id;    /* records for any other id are refused */
    /* END_REQUEST, valid once ended is true: */
    bool ended;
    uint32_t app_status;    /* the script's exit status */
    uint8_t protocol_status; /* enum fastcgi_protocol_status */
    bool stdout_closed;     /* the empty STDOUT record arrived */
    /* STDERR collected (PHP warnings and fatals for the site's error log). Bytes
     * beyond its maximum are dropped and counted, never an error. */
    struct buf stderr_buf;
    uint64_t stderr_dropped;
    uint64_t stdout_total;  /* STDOUT bytes handed over so far */
    /* internal: */
    int state;
    uint8_t hdr[FASTCGI_HEADER_LEN];
    uint8_t end_body[8];
    size_t got;             /* bytes of hdr / end_body gathered so far */
    uint8_t type;
    size_t content_left;
    size_t padding_left;
};

/* Prepares r for the answer to request_id; max_stderr bounds the STDERR kept. */
void fastcgi_response_init(struct fastcgi_response *r, uint16_t request_id, size_t max_stderr);

/* Frees the STDERR buffer. NULL-safe; r may be reused after fastcgi_response_init. */
void fastcgi_response_done(struct fastcgi_response *r);

/* Parses data[0..len), never reading past len. Returns how many bytes it consumed
 * (> 0 whenever len > 0) and what they held in *ret_event; for
 * FASTCGI_EVENT_STDOUT, *ret_data and *ret_len point into data. The caller calls again
 * with the rest until nothing is left. A record can be split at any byte: the
 * same STDOUT bytes (perhaps in more pieces), STDERR and END come out.
 *
 * -EPROTO (the backend is broken: 502, close the connection) for: a version other
 * than 1; a request id other than ours; a type other than STDOUT, STDERR or
 * END_REQUEST; END_REQUEST whose contentLength is not 8; STDOUT or STDERR after
 * their empty record; any byte after END_REQUEST (with FCGI_KEEP_CONN the
 * connection then carries the next request: nothing may be pending); len 0.
 * -ENOMEM when the STDERR buffer cannot grow (its maximum is not an error). */
int fastcgi_response_parse(struct fastcgi_response *r, const char *data, size_t len,
                           enum fastcgi_event *ret_event, const char **ret_data, size_t *ret_len);

/* ---- CGI response head (RFC 3875 §6) ---------------------------------------- */

/* Fields at most in one head. */
#define FASTCGI_MAX_HEADERS 100
/* Default bound of the head (all header lines and the blank line). */
#define FASTCGI_MAX_HEAD_DEFAULT 65536

/* One header line passed on to the client. Pointers into the caller's buffer. */
struct fastcgi_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;   /* surrounding whitespace stripped */
};

/* Which response RFC 3875 §6.2 says the script gave. */
enum fastcgi_cgi_kind {
    FASTCGI_CGI_DOCUMENT,          /* a document (Status or 200) */
    FASTCGI_CGI_LOCAL_REDIRECT,    /* Location is a local path ("/x") and no Status: the
                                      server would re-run the request for it. berth does
                                      no internal redirects: the front answers 302 with
                                      that Location (a relative reference, RFC 9110
                                      §10.2.2), which status holds. */
    FASTCGI_CGI_CLIENT_REDIRECT,   /* Location is an absolute URI: 302 unless Status says
                                      otherwise (PHP always sends a Status with it) */
};

/* The parsed head. */
struct fastcgi_cgi_head {
    int status;                    /* 200..599; 200 when absent, 302 for redirects */
    const char *reason; size_t reason_len; /* from Status, may be empty (NULL when absent) */
    enum fastcgi_cgi_kind kind;
    const char *content_type; size_t content_type_len;  /* NULL when absent */
    const char *location; size_t location_len;          /* NULL when absent */
    bool has_content_length;       /* a valid Content-Length was sent; it is not in
                                      headers: the front frames the body itself and may
                                      use it only if the body has that length */
    uint64_t content_length;
    /* Every field to pass on, in order, Content-Type and Location included. Never
     * in it: Status, Content-Length, and the hop-by-hop fields a backend cannot
     * decide for the client's connection (Connection, Keep-Alive, Proxy-Connection,
     * Transfer-Encoding, TE, Trailer, Upgrade), which are dropped. */
    struct fastcgi_header headers[FASTCGI_MAX_HEADERS];
    size_t n_headers;
};

/* Resumable state of one head being parsed; fields are internal. */
struct fastcgi_cgi_parser {
    size_t max_head;
    size_t scanned;        /* bytes of the buffer already checked */
    size_t line_start;
    size_t n_lines;
    bool seen_status;
};

/* Prepares p; max_head 0 means FASTCGI_MAX_HEAD_DEFAULT. */
void fastcgi_cgi_parser_init(struct fastcgi_cgi_parser *p, size_t max_head);

/* Parses the head at the start of the STDOUT stream. As http1_parse_request: buf
 * holds every STDOUT byte so far, contiguous (it may move and grow between calls);
 * returns the head's length (> 0: the body starts at buf + that) with ret_head
 * filled (pointers into buf), 0 when more bytes are needed, or -502 (bad gateway)
 * for: a head larger than max_head or with more than FASTCGI_MAX_HEADERS fields
 * (the 431 of a backend), a line without ':' or with an invalid name, a control
 * byte in a value, obs-fold, a Status that is not "NNN[ reason]" in 200..599 (a
 * 1xx cannot be relayed from CGI), no field at all, a
 * repeated Status, Location or Content-Type, an invalid or conflicting
 * Content-Length. Lines end in CRLF or LF (RFC 3875 allows both). Call it with the
 * same ret_head every time; read it only after a return > 0. */
int fastcgi_cgi_head_parse(struct fastcgi_cgi_parser *p, const char *buf, size_t len,
                           struct fastcgi_cgi_head *ret_head);

/* ---- CGI parameters ----------------------------------------------------------- */

/* A request header as the front parsed it (the same layout as fastcgi_header). */
struct fastcgi_request_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;
};

/* Everything needed to describe one request to the application. Strings are
 * borrowed; NUL-terminated unless a length goes with them. */
struct fastcgi_request_info {
    const char *method; size_t method_len;           /* REQUEST_METHOD */
    const char *request_uri; size_t request_uri_len; /* REQUEST_URI: the target as the client
                                                        sent it (path and query), also after
                                                        a front-controller fallback */
    const char *query; size_t query_len;             /* QUERY_STRING: after '?', "" if none */
    const char *document_root;   /* DOCUMENT_ROOT as seen in the sandbox: "/site/public" */
    const char *script_name;     /* SCRIPT_NAME: "/a.php" (decoded, normalised, from the route) */
    const char *path_info; size_t path_info_len;     /* PATH_INFO ("" or "/b/c") */
    const char *server_protocol; /* "HTTP/1.1" */
    bool https;                  /* HTTPS=on */
    const char *remote_addr;     /* "203.0.113.7" or "2001:db8::1" */
    uint16_t remote_port;
    const char *server_addr;     /* SERVER_ADDR; NULL: not sent */
    const char *server_name;     /* host the request was routed by */
    const char *host; size_t host_len; /* HTTP_HOST: the authority as the client gave
                                    the one the request was routed by (an absolute-form
                                    target's, which wins over the Host field; RFC 9112
                                    3.2.2); NULL: none. The Host field itself is
                                    never passed on */
    uint16_t server_port;
    const char *content_type; size_t content_type_len; /* NULL: none */
    bool has_content_length;     /* CONTENT_LENGTH: the body's length (known, or
                                    counted when the front spooled a chunked body) */
    uint64_t content_length;
    const struct fastcgi_request_header *headers;    /* borrowed, n_headers of them */
    size_t n_headers;
};

/* Appends the whole PARAMS stream for info (ended by the empty record): the CGI/1.1
 * variables, SCRIPT_FILENAME = document_root + script_name (and never
 * PATH_TRANSLATED: with cgi.fix_pathinfo=0 php-fpm would run that file instead),
 * GATEWAY_INTERFACE=CGI/1.1, SERVER_SOFTWARE=berth/<version>,
 * REDIRECT_STATUS=200 (php-cgi's force_redirect check), and every request header as
 * HTTP_<NAME> (uppercased, '-' as '_'), except: Proxy (httpoxy, CVE-2016-5385),
 * Host (HTTP_HOST is info->host), Content-Type and Content-Length (already
 * CONTENT_*), and names holding '_' (they
 * would collide with the '-' spelling: "X_Real_IP" could forge HTTP_X_REAL_IP, as
 * nginx's underscores_in_headers off). Repeated fields are joined into one variable
 * with ", " ("; " for Cookie), in order. -E2BIG when one variable is too long for a
 * record, -EINVAL for a missing required string, -ENOBUFS/-ENOMEM from out; on
 * failure out may hold part of the stream and must be discarded. REQUEST_SCHEME
 * (http/https) is sent too, as nginx's fastcgi_params do. */
int fastcgi_params_build(struct buf *out, uint16_t request_id,
                         const struct fastcgi_request_info *info);

/* ---- routing a PHP site's request -------------------------------------------- */

/* Longest script name a route can hold, NUL included. */
#define FASTCGI_SCRIPT_MAX 4096

/* What the front does with a request to a PHP site. */
enum fastcgi_route_kind {
    FASTCGI_ROUTE_NOT_FOUND,   /* 404; nothing runs */
    FASTCGI_ROUTE_STATIC,      /* serve the path as a static file (or the directory
                                  redirect/index the static code does) */
    FASTCGI_ROUTE_SCRIPT,      /* run script_name with path_info */
};

/* Result of fastcgi_route_resolve. */
struct fastcgi_route {
    enum fastcgi_route_kind kind;
    char script_name[FASTCGI_SCRIPT_MAX];  /* SCRIPT: "/a.php", "/blog/index.php" */
    const char *path_info;     /* SCRIPT: the rest of the request path ("" or "/b/c"),
                                  pointing into the path given (borrowed) */
    size_t path_info_len;
    bool fallback;             /* SCRIPT: reached through the front controller
                                  (/index.php for a URL naming no file) */
};

/* Decides what a request path names beneath the site's public directory.
 * path[0..len) is the decoded, normalised path (http_path_normalize: starts with
 * '/', no "." or ".." segments, no query). public_fd is an fd (O_PATH is enough)
 * of the public directory; every lookup goes through openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), so a symlink leading out of it is treated as missing.
 *
 * 1. A segment starting with '.' (dotfiles, .git, .env): NOT_FOUND.
 * 2. Segments are walked from the left; the first one ending in ".php" that is a
 *    regular file is the script, the rest of the path its PATH_INFO. One ending in
 *    ".php" that is a directory is walked through. One ending in ".php" that does
 *    not exist (or is not a file or directory, or lies beneath a non-directory like
 *    "/image.png/x.php") is NOT_FOUND: a .php request never falls back to another
 *    file, and nothing but the named script ever runs.
 * 3. Otherwise, try_files $uri $uri/ /index.php (front_controller true):
 *    an existing regular file is STATIC; an existing directory asked without its
 *    trailing slash is STATIC (the static code redirects); a directory with
 *    index.php is that SCRIPT; with index.html, STATIC; anything else is
 *    /index.php (fallback true) if that file exists, else NOT_FOUND.
 *    Without front_controller, the last step is NOT_FOUND.
 * -ENAMETOOLONG when a script name would not fit in FASTCGI_SCRIPT_MAX, -EINVAL
 * for a path not starting with '/'; I/O errors other than "missing" are returned. */
int fastcgi_route_resolve(int public_fd, const char *path, size_t len, bool front_controller,
                          struct fastcgi_route *ret);

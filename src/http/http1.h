/* HTTP/1.1 message parsing and writing (RFC 9110, RFC 9112), strict enough for the
 * open internet: the front, the API server and the CLI's client all use it.
 *
 * The head parser is incremental and zero-copy: the caller keeps every byte of the
 * head received so far in one contiguous buffer and calls the parser again with the
 * (possibly moved and grown) buffer whenever more bytes arrive. The parser resumes
 * where it stopped (it keeps offsets, not pointers), never reads past len, and on
 * completion fills the message with pointers into that buffer.
 *
 * Anything ambiguous is refused, never guessed at: a message must never be read one
 * way by berth and another way by a backend behind it (request smuggling). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"

#define HTTP1_MAX_HEADERS 100

/* Parser results besides "bytes consumed". */
#define HTTP1_INCOMPLETE 0          /* more bytes needed */
/* Errors are returned as the negated HTTP status the peer should get:
 *   -400 malformed or ambiguous, -414 request line too long, -431 header section too
 *   large or too many fields, -501 unsupported transfer coding, -505 bad version.
 * For responses, every error is -502 (bad gateway). */

struct http1_limits {
    size_t max_request_line;   /* bytes, CRLF excluded; default 8192 */
    size_t max_head;           /* whole head incl. request line; default 65536 */
    size_t max_headers;        /* field count, <= HTTP1_MAX_HEADERS; default 100 */
};
#define HTTP1_LIMITS_DEFAULT ((struct http1_limits){ 8192, 65536, 100 })

struct http1_header {
    const char *name;  size_t name_len;
    const char *value; size_t value_len;   /* leading/trailing OWS stripped */
};

enum http_method {
    HTTP_METHOD_OTHER = 0,  /* a valid token we do not know; see method/method_len */
    HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_PATCH,
    HTTP_OPTIONS, HTTP_CONNECT, HTTP_TRACE,
};

enum http1_body {
    HTTP1_BODY_NONE,       /* no body */
    HTTP1_BODY_LENGTH,     /* content_length bytes follow */
    HTTP1_BODY_CHUNKED,    /* chunked transfer coding; decode with http1_chunked_* */
    HTTP1_BODY_UNTIL_CLOSE /* responses only: body runs until the peer closes */
};

struct http1_request {
    enum http_method method;
    const char *method_str; size_t method_len;
    const char *target; size_t target_len;     /* as sent: origin-, absolute-, authority- or asterisk-form */
    const char *path; size_t path_len;         /* origin-form path incl. query ("/a?b"); for absolute-form the part after the authority ("/" if empty) */
    int minor_version;                          /* 0 or 1 */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t n_headers;
    /* Derived while parsing: */
    const char *host; size_t host_len;          /* authority from absolute-form, else the Host field; NULL if none (HTTP/1.0) */
    enum http1_body body;
    uint64_t content_length;                    /* valid when body == HTTP1_BODY_LENGTH */
    bool keep_alive;                            /* after version default and Connection */
    bool expect_continue;                       /* Expect: 100-continue */
    bool upgrade;                               /* Connection: upgrade with an Upgrade field */
};

struct http1_response {
    int status;
    int minor_version;
    const char *reason; size_t reason_len;
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t n_headers;
    enum http1_body body;
    uint64_t content_length;
    bool keep_alive;
};

/* Resumable state of one head being parsed. Initialise before each message. */
struct http1_parser {
    struct http1_limits limits;
    size_t scanned;        /* bytes of the buffer already checked */
    size_t line_start;     /* offset where the current line begins */
    int state;             /* internal */
    size_t n_lines;        /* header lines seen so far */
    unsigned flags;        /* internal: fields seen so far (Host, Content-Length...) */
};

/* Prepares p for one message. limits NULL means HTTP1_LIMITS_DEFAULT; max_headers is
 * capped at HTTP1_MAX_HEADERS, max_head and max_request_line at INT_MAX (the head
 * length is returned as an int). For responses, max_request_line bounds the status
 * line. */
void http1_parser_init(struct http1_parser *p, const struct http1_limits *limits);

/* Parses a request head from buf[0..len). Returns the head's length in bytes (> 0)
 * when it is complete (req filled, pointers into buf), HTTP1_INCOMPLETE when more is
 * needed, or a negated status (see above). Header-section validation includes:
 * bare LF, obs-fold, whitespace before ':', invalid token or field-value bytes, a
 * missing or repeated Host in HTTP/1.1, Content-Length that is not 1*DIGIT, repeated
 * or overflowing, Transfer-Encoding together with Content-Length, a Transfer-Encoding
 * other than "chunked" (-501) or in HTTP/1.0 (-400). Empty lines before the request
 * line are ignored (RFC 9112 §2.2), at most a few.
 *
 * Transfer-Encoding (a list, case-insensitive, OWS around elements allowed): "chunked"
 * is accepted; chunked not last, chunked twice, an empty element or a repeated
 * Transfer-Encoding field is -400 (the length cannot be known, RFC 9112 §6.3);
 * other codings before a final chunked ("gzip, chunked") are -501.
 * The request target may hold any VCHAR but '#'; absolute-form is accepted only for
 * http and https, without userinfo, and with a path-abempty that is empty or starts
 * with '/'.
 *
 * req holds the progress between calls: pass the same req on every call for one
 * message, and read it only after a return > 0. After an error, do not call again:
 * answer with the status and close the connection. */
int http1_parse_request(struct http1_parser *p, const char *buf, size_t len,
                        struct http1_request *req);

/* Parses a response head (1xx included: the caller loops). request_method decides
 * whether a body follows (HEAD, 2xx to CONNECT, 1xx/204/304 have none). Returns as
 * http1_parse_request; every error is -502. The reason phrase may be empty, with or
 * without the SP before it; the status must be 100..599; Transfer-Encoding must be
 * exactly "chunked" (a proxy cannot pass other codings on safely); a body with
 * neither Content-Length nor Transfer-Encoding runs until close (keep_alive false).
 * Like requests, res holds the progress between calls. */
int http1_parse_response(struct http1_parser *p, const char *buf, size_t len,
                         enum http_method request_method, struct http1_response *res);

/* Finds a header by case-insensitive name; returns it or NULL. */
const struct http1_header *http1_find_header(const struct http1_header *headers, size_t n,
                                             const char *name);

/* True when a comma-separated field value contains token (case-insensitive), e.g.
 * http1_value_has_token("keep-alive, Upgrade", 20, "upgrade"). */
bool http1_value_has_token(const char *value, size_t len, const char *token);

/* ---- chunked transfer coding ---- */

/* Bytes of chunk extensions and trailer fields allowed in one body, all together. */
#define HTTP1_CHUNKED_MAX_EXTRA 4096

struct http1_chunked {
    int state;
    uint64_t remaining;   /* bytes left in the current chunk */
    size_t ext_len;       /* bytes of chunk extensions/trailers seen, bounded */
    uint64_t total;       /* decoded body bytes so far */
    unsigned digits;      /* internal: hex digits in the current chunk-size (<= 16) */
};

/* Prepares c for one body. */
void http1_chunked_init(struct http1_chunked *c);
/* Decodes in place: buf[0..*len) holds raw bytes; on return buf[0..*len) holds the
 * decoded data found in them. Every raw byte is consumed (a partial chunk-size line
 * is remembered in c), so the caller never keeps raw bytes back. A chunk-size has at
 * most 16 hex digits; extensions and trailers are checked and discarded. Called
 * again after it returned 1, it decodes nothing and reports every byte as extra. Returns 1 when the terminating chunk and trailers were
 * consumed (*ret_extra = raw bytes after the body, which were moved to follow the
 * decoded data at buf[*len], so they are not lost: the next pipelined message),
 * HTTP1_INCOMPLETE when more input is needed, -400 on malformed input (also
 * chunk-size overflow, bare LF, oversized extensions or trailers). */
int http1_chunked_decode(struct http1_chunked *c, char *buf, size_t *len, size_t *ret_extra);

/* ---- writing ---- */

/* The reason phrase for a status ("Not Found"), "Unknown" if none. */
const char *http_status_reason(int status);

/* RFC 9110 9.2.2: GET, HEAD, PUT, DELETE, OPTIONS and TRACE may be sent twice with
 * the effect of once; POST, PATCH, CONNECT and unknown methods may not. */
bool http_method_idempotent(enum http_method m);
/* Formats t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into out[30]. */
void http_date_format(time_t t, char out[static 30]);
/* Parses an IMF-fixdate (the only form we accept for If-Modified-Since): exactly 29
 * bytes, a real calendar date whose weekday matches. -EINVAL otherwise. */
int http_date_parse(const char *s, size_t len, time_t *ret);

/* Appends "HTTP/1.1 <status> <reason>\r\n". -EINVAL unless 100 <= status <= 999;
 * -ENOBUFS/-ENOMEM from the buffer. */
int http1_write_status_line(struct buf *out, int status);
/* Appends "Name: value\r\n". The caller guarantees name and value hold no CR/LF;
 * it is checked anyway (-EINVAL, nothing appended), as a slip here is a response
 * splitting hole. */
int http1_write_header(struct buf *out, const char *name, const char *value);
/* Appends one chunk of the chunked coding ("<hex>\r\n<data>\r\n"); len 0 writes the
 * last chunk "0\r\n\r\n". */
int http1_write_chunk(struct buf *out, const void *data, size_t len);

/* Percent-decodes path[0..len) into out (outsize >= len+1, else -ENOBUFS; out is
 * NUL-terminated), refusing a path not starting with '/', encoded '/', NUL and
 * invalid escapes (-EINVAL); then normalises "." and ".." segments (decoded ones
 * too: "%2e%2e" is "..") and duplicate slashes, keeping a trailing slash
 * ("/a/b/.." is "/a/"); refuses a path that climbs above "/" (-EINVAL). The query
 * (from '?') is not part of path and must be split off by the caller. */
int http_path_normalize(const char *path, size_t len, char *out, size_t outsize, size_t *ret_len);
/* Percent-decodes one path segment (no '/' in it) in place. -EINVAL for a broken
 * escape, or one that decodes to '/' or NUL. Dot segments stay as they are. */
int http_segment_decode(char *seg);

/* Internal to src/http: what the request and response head parsers share. */
#pragma once

#include "http/http1.h"

/* Character classes (RFC 9110 §5.6.2, §5.5; RFC 3986), one table lookup per byte. */
enum {
    HTTP1_CC_TCHAR  = 1 << 0, /* token: method, field name */
    HTTP1_CC_VALUE  = 1 << 1, /* field value and reason phrase: VCHAR, SP, HTAB, obs-text */
    HTTP1_CC_TARGET = 1 << 2, /* request target: VCHAR but '#' */
    HTTP1_CC_HOST   = 1 << 3, /* Host / authority: unreserved, pct, sub-delims, ':', '[', ']' */
    HTTP1_CC_DIGIT  = 1 << 4,
    HTTP1_CC_HEX    = 1 << 5,
};
extern const uint8_t http1_cc[256];

static inline bool http1_cc_is(char c, unsigned cls)
{
    return http1_cc[(uint8_t)c] & cls;
}

/* Parser states. The request- and status-line states come before the field states,
 * so `state < HTTP1_ST_F_LINE` means "still on the first line". */
enum {
    HTTP1_ST_INIT = 0,
    HTTP1_ST_RL_START, HTTP1_ST_RL_EMPTY_LF, HTTP1_ST_RL_METHOD, HTTP1_ST_RL_TARGET,
    HTTP1_ST_RL_VERSION, HTTP1_ST_RL_LF,
    HTTP1_ST_SL_VERSION, HTTP1_ST_SL_CODE, HTTP1_ST_SL_REASON, HTTP1_ST_SL_LF,
    HTTP1_ST_F_LINE, HTTP1_ST_F_NAME, HTTP1_ST_F_OWS, HTTP1_ST_F_VALUE, HTTP1_ST_F_LF,
    HTTP1_ST_F_END_LF,
    HTTP1_ST_DONE,
};

/* The caller's buffer may move between calls, so until a head is complete every
 * pointer in the message holds an offset into the buffer; they become pointers once,
 * at completion. */
static inline const char *http1_off_ptr(size_t off)
{
    return (const char *)(uintptr_t)off;
}
static inline size_t http1_ptr_off(const char *p)
{
    return (size_t)(uintptr_t)p;
}

#define HTTP1_FIELDS_LINE 1   /* one field line complete: headers[p->n_lines - 1] */
#define HTTP1_FIELDS_END 2    /* the empty line ending the head was consumed */

/* Scans field lines from p->scanned, storing offsets in headers[]. Returns
 * HTTP1_FIELDS_LINE, HTTP1_FIELDS_END, HTTP1_INCOMPLETE, -400 or -431. */
int http1_fields_scan(struct http1_parser *p, const char *buf, size_t len,
                      struct http1_header *headers);

/* Iterates the elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed.
 * Returns false at the end; empty elements are returned as such (len 0). */
bool http1_list_next(const char **cur, const char *end, const char **ret_elem, size_t *ret_len);

/* Content-Length: 1*DIGIT that fits in 63 bits (so it always fits an off_t). -1 else. */
int http1_content_length_parse(const char *v, size_t len, uint64_t *ret);

/* Parses "HTTP/d.d" exactly: -1 malformed, -2 well-formed but not 1.0/1.1. */
int http1_version_parse(const char *v, size_t len, int *ret_minor);

/* Marks the final pointers of the header array (see http1_off_ptr). */
void http1_headers_fixup(struct http1_header *h, size_t n, const char *buf);

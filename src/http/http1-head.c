/* What request and response heads share: the character table, the field-line
 * scanner, list and number syntax, header look-ups. */
#include <limits.h>

#include "http/http1-internal.h"

/* Generated from the ABNF (bits as in HTTP1_CC_*); tests/unit/test-http1.c checks
 * every entry against the grammar written out as predicates. */
const uint8_t http1_cc[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  /* 0x00 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  /* 0x10 */
    0x02, 0x0f, 0x06, 0x03, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x06,  /* 0x20 */
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x0e, 0x0e, 0x06, 0x0e, 0x06, 0x06,  /* 0x30 */
    0x06, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,  /* 0x40 */
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x06, 0x0e, 0x07, 0x0f,  /* 0x50 */
    0x07, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,  /* 0x60 */
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x07, 0x06, 0x0f, 0x00,  /* 0x70 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0x80 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0x90 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xa0 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xb0 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xc0 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xd0 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xe0 */
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,  /* 0xf0 */
};

void http1_parser_init(struct http1_parser *p, const struct http1_limits *limits)
{
    *p = (struct http1_parser){ .limits = limits ? *limits : HTTP1_LIMITS_DEFAULT };
    if (p->limits.max_headers > HTTP1_MAX_HEADERS)
        p->limits.max_headers = HTTP1_MAX_HEADERS;
    if (p->limits.max_head > INT_MAX)
        p->limits.max_head = INT_MAX;
    /* Past max_head it cannot matter, and this keeps line_start + limit from wrapping. */
    if (p->limits.max_request_line > INT_MAX)
        p->limits.max_request_line = INT_MAX;
}

int http1_fields_scan(struct http1_parser *p, const char *buf, size_t len,
                      struct http1_header *headers)
{
    /* Never look past max_head: reaching it without the end of the head is -431,
     * decided as soon as the bytes are there, not when the head ends. */
    size_t end = MIN(len, p->limits.max_head);
    size_t i = p->scanned;
    int st = p->state;
    struct http1_header *h = &headers[p->n_lines < HTTP1_MAX_HEADERS ? p->n_lines : 0];

    for (;;) {
        switch (st) {
        case HTTP1_ST_F_LINE:
            if (i >= end)
                goto more;
            if (buf[i] == '\r') {
                i++;
                st = HTTP1_ST_F_END_LF;
                break;
            }
            /* SP/HTAB here is obs-fold (or whitespace before the first field), which
             * RFC 9112 §5.2 lets a server refuse; anything but a token is garbage. */
            if (!http1_cc_is(buf[i], HTTP1_CC_TCHAR))
                return -400;
            if (p->n_lines >= p->limits.max_headers)
                return -431;
            h = &headers[p->n_lines];
            h->name = http1_off_ptr(i);
            i++;
            st = HTTP1_ST_F_NAME;
            break;
        case HTTP1_ST_F_NAME:
            while (i < end && http1_cc_is(buf[i], HTTP1_CC_TCHAR))
                i++;
            if (i >= end)
                goto more;
            /* Whitespace before ':' is a classic smuggling vector (RFC 9112 §5.1). */
            if (buf[i] != ':')
                return -400;
            h->name_len = i - p->line_start;
            i++;
            st = HTTP1_ST_F_OWS;
            break;
        case HTTP1_ST_F_OWS:
            while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
                i++;
            if (i >= end)
                goto more;
            h->value = http1_off_ptr(i);
            st = HTTP1_ST_F_VALUE;
            break;
        case HTTP1_ST_F_VALUE: {
            while (i < end && http1_cc_is(buf[i], HTTP1_CC_VALUE))
                i++;
            if (i >= end)
                goto more;
            if (buf[i] != '\r')
                return -400;   /* bare LF, NUL or another CTL */
            size_t v = http1_ptr_off(h->value), e = i;
            while (e > v && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
                e--;
            h->value_len = e - v;
            i++;
            st = HTTP1_ST_F_LF;
            break;
        }
        case HTTP1_ST_F_LF:
            if (i >= end)
                goto more;
            if (buf[i] != '\n')
                return -400;   /* bare CR */
            i++;
            p->line_start = i;
            p->n_lines++;
            p->scanned = i;
            p->state = HTTP1_ST_F_LINE;
            return HTTP1_FIELDS_LINE;
        case HTTP1_ST_F_END_LF:
            if (i >= end)
                goto more;
            if (buf[i] != '\n')
                return -400;
            i++;
            p->scanned = i;
            p->state = HTTP1_ST_DONE;
            return HTTP1_FIELDS_END;
        default:
            return -400;   /* called in a state that is not ours: a caller bug */
        }
    }
more:
    p->scanned = i;
    p->state = st;
    return end == p->limits.max_head ? -431 : HTTP1_INCOMPLETE;
}

bool http1_list_next(const char **cur, const char *end, const char **ret_elem, size_t *ret_len)
{
    const char *s = *cur;
    if (!s)
        return false;
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *e = comma ? comma : end;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    const char *t = e;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
        t--;
    *ret_elem = s;
    *ret_len = (size_t)(t - s);
    *cur = comma ? comma + 1 : NULL;
    return true;
}

int http1_content_length_parse(const char *v, size_t len, uint64_t *ret)
{
    uint64_t n = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!http1_cc_is(v[i], HTTP1_CC_DIGIT))
            return -1;
        unsigned d = (unsigned)(v[i] - '0');
        if (n > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *ret = n;
    return 0;
}

int http1_version_parse(const char *v, size_t len, int *ret_minor)
{
    if (len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
        !http1_cc_is(v[5], HTTP1_CC_DIGIT) || !http1_cc_is(v[7], HTTP1_CC_DIGIT))
        return -1;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return -2;
    *ret_minor = v[7] - '0';
    return 0;
}

void http1_headers_fixup(struct http1_header *h, size_t n, const char *buf)
{
    for (size_t k = 0; k < n; k++) {
        h[k].name = buf + http1_ptr_off(h[k].name);
        h[k].value = buf + http1_ptr_off(h[k].value);
    }
}

const struct http1_header *http1_find_header(const struct http1_header *headers, size_t n,
                                             const char *name)
{
    size_t len = strlen(name);
    for (size_t k = 0; k < n; k++)
        if (headers[k].name_len == len && ascii_case_eq(headers[k].name, name, len))
            return &headers[k];
    return NULL;
}

bool http1_value_has_token(const char *value, size_t len, const char *token)
{
    const char *cur = value, *elem;
    size_t n;
    while (http1_list_next(&cur, value + len, &elem, &n))
        if (mem_case_eq(elem, n, token))
            return true;
    return false;
}

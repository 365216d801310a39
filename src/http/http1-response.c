/* Response heads (RFC 9112 §4, §6.3): read by the proxy's client side, where a
 * backend that frames its answer ambiguously gets 502 rather than the benefit of
 * the doubt. */
#include "http/http1-internal.h"

enum {
    F_CL = 1 << 0,
    F_TE = 1 << 1,
    F_CONN_CLOSE = 1 << 2,
    F_CONN_KEEP_ALIVE = 1 << 3,
};

static int response_field(struct http1_parser *p, const char *buf, struct http1_response *res,
                          struct http1_header *h)
{
    const char *name = buf + http1_ptr_off(h->name);
    const char *v = buf + http1_ptr_off(h->value);
    size_t n = h->value_len;

    switch (h->name_len) {
    case 14:
        if (!mem_case_eq(name, 14, "content-length"))
            break;
        if ((p->flags & F_CL) || http1_content_length_parse(v, n, &res->content_length) < 0)
            return -502;
        p->flags |= F_CL;
        break;
    case 17:
        if (!mem_case_eq(name, 17, "transfer-encoding"))
            break;
        if ((p->flags & F_TE) || !mem_case_eq(v, n, "chunked"))
            return -502;
        p->flags |= F_TE;
        break;
    case 10:
        if (!mem_case_eq(name, 10, "connection"))
            break;
        if (http1_value_has_token(v, n, "close"))
            p->flags |= F_CONN_CLOSE;
        if (http1_value_has_token(v, n, "keep-alive"))
            p->flags |= F_CONN_KEEP_ALIVE;
        break;
    default:
        break;
    }
    return 0;
}

static int response_finish(struct http1_parser *p, const char *buf, enum http_method method,
                           struct http1_response *res)
{
    unsigned f = p->flags;
    int s = res->status;

    if ((f & F_CL) && (f & F_TE))
        return -502;

    res->keep_alive = !(f & F_CONN_CLOSE) && (res->minor_version == 1 || (f & F_CONN_KEEP_ALIVE));
    /* RFC 9112 §6.3, in its order: these never have a body, whatever they say. */
    if (method == HTTP_HEAD || s < 200 || s == 204 || s == 304 ||
        (method == HTTP_CONNECT && s < 300))
        res->body = HTTP1_BODY_NONE;
    else if (f & F_TE)
        res->body = HTTP1_BODY_CHUNKED;
    else if (f & F_CL)
        res->body = HTTP1_BODY_LENGTH;
    else {
        res->body = HTTP1_BODY_UNTIL_CLOSE;
        res->keep_alive = false;
    }
    if (res->body != HTTP1_BODY_LENGTH)
        res->content_length = 0;

    res->reason = buf + http1_ptr_off(res->reason);
    res->n_headers = p->n_lines;
    http1_headers_fixup(res->headers, res->n_headers, buf);
    return (int)p->scanned;
}

/* "HTTP/1.x SP 3DIGIT [SP reason] CRLF", byte by byte. 1 when complete. */
static int status_line_scan(struct http1_parser *p, const char *buf, size_t len,
                            struct http1_response *res)
{
    size_t end = MIN(len, p->limits.max_head);
    size_t lim = MIN(end, p->limits.max_request_line + 1);
    size_t i = p->scanned;
    int st = p->state;

    for (;;) {
        switch (st) {
        case HTTP1_ST_SL_VERSION:
            while (i < lim && buf[i] != ' ') {
                if (i >= 8)
                    return -502;
                i++;
            }
            if (i >= lim)
                goto more;
            if (http1_version_parse(buf, i, &res->minor_version) < 0)
                return -502;
            i++;
            st = HTTP1_ST_SL_CODE;
            break;
        case HTTP1_ST_SL_CODE:
            while (i < lim && http1_cc_is(buf[i], HTTP1_CC_DIGIT)) {
                if (i >= 12)
                    return -502;
                i++;
            }
            if (i >= lim)
                goto more;
            if (i != 12 || (buf[i] != ' ' && buf[i] != '\r'))
                return -502;
            res->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
            if (res->status < 100 || res->status > 599)
                return -502;
            res->reason = http1_off_ptr(buf[i] == ' ' ? 13 : 12);
            st = buf[i] == ' ' ? HTTP1_ST_SL_REASON : HTTP1_ST_SL_LF;
            i++;
            break;
        case HTTP1_ST_SL_REASON:
            while (i < lim && http1_cc_is(buf[i], HTTP1_CC_VALUE))
                i++;
            if (i >= lim)
                goto more;
            if (buf[i] != '\r')
                return -502;
            res->reason_len = i - 13;
            i++;
            st = HTTP1_ST_SL_LF;
            break;
        case HTTP1_ST_SL_LF:
            if (i >= end)
                goto more;
            if (buf[i] != '\n')
                return -502;
            i++;
            p->line_start = i;
            p->n_lines = 0;
            p->scanned = i;
            p->state = HTTP1_ST_F_LINE;
            return 1;
        default:
            return -502;
        }
    }
more:
    /* Responses come from our own backends: one limit, one answer. */
    if (i > p->limits.max_request_line && st != HTTP1_ST_SL_LF)
        return -502;
    p->scanned = i;
    p->state = st;
    return end == p->limits.max_head ? -502 : HTTP1_INCOMPLETE;
}

int http1_parse_response(struct http1_parser *p, const char *buf, size_t len,
                         enum http_method request_method, struct http1_response *res)
{
    int r;

    if (p->state == HTTP1_ST_INIT) {
        res->status = 0;
        res->minor_version = 0;
        res->reason = NULL;
        res->reason_len = 0;
        res->n_headers = 0;
        res->body = HTTP1_BODY_NONE;
        res->content_length = 0;
        res->keep_alive = false;
        p->state = HTTP1_ST_SL_VERSION;
    }
    if (p->state < HTTP1_ST_F_LINE) {
        if (p->state < HTTP1_ST_SL_VERSION)
            return -502;   /* a request parser's state */
        r = status_line_scan(p, buf, len, res);
        if (r <= 0)
            return r;
    }
    for (;;) {
        r = http1_fields_scan(p, buf, len, res->headers);
        if (r == HTTP1_FIELDS_LINE) {
            r = response_field(p, buf, res, &res->headers[p->n_lines - 1]);
            if (r < 0)
                return r;
        } else if (r == HTTP1_FIELDS_END)
            return response_finish(p, buf, request_method, res);
        else
            return r < 0 ? -502 : r;
    }
}

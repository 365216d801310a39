/* Request heads (RFC 9112 §3): the request line, request-target forms, and the
 * fields that decide framing and the connection's fate. */
#include "http/http1-internal.h"

/* RFC 9112 §2.2 lets a server skip CRLFs before a request (left by clients that
 * count a body's trailing CRLF wrongly); a handful is plenty. */
#define MAX_EMPTY_LINES 4

enum {
    F_HOST = 1 << 0,
    F_CL = 1 << 1,
    F_TE = 1 << 2,
    F_CONN_CLOSE = 1 << 3,
    F_CONN_KEEP_ALIVE = 1 << 4,
    F_CONN_UPGRADE = 1 << 5,
    F_UPGRADE = 1 << 6,
    F_EXPECT = 1 << 7,
    F_ABSOLUTE = 1 << 8,   /* host comes from the target, not from Host */
    F_PATH_SLASH = 1 << 9, /* absolute-form with an empty path: path is "/" */
};

static enum http_method method_lookup(const char *s, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
    switch (n) {
    case 3:
        return IS("GET") ? HTTP_GET : IS("PUT") ? HTTP_PUT : HTTP_METHOD_OTHER;
    case 4:
        return IS("HEAD") ? HTTP_HEAD : IS("POST") ? HTTP_POST : HTTP_METHOD_OTHER;
    case 5:
        return IS("PATCH") ? HTTP_PATCH : IS("TRACE") ? HTTP_TRACE : HTTP_METHOD_OTHER;
    case 6:
        return IS("DELETE") ? HTTP_DELETE : HTTP_METHOD_OTHER;
    case 7:
        return IS("OPTIONS") ? HTTP_OPTIONS : IS("CONNECT") ? HTTP_CONNECT : HTTP_METHOD_OTHER;
    default:
        return HTTP_METHOD_OTHER;
    }
#undef IS
}

static bool all_in_class(const char *s, size_t n, unsigned cls)
{
    for (size_t i = 0; i < n; i++)
        if (!http1_cc_is(s[i], cls))
            return false;
    return true;
}

/* authority = host [":" port] with the host-class bytes only (so no userinfo: "@"
 * in an authority is how a URL is made to look like another host). */
static bool authority_valid(const char *s, size_t n, bool need_port)
{
    if (n == 0 || !all_in_class(s, n, HTTP1_CC_HOST))
        return false;
    if (!need_port)
        return true;
    const char *colon = memrchr(s, ':', n);
    if (!colon || colon == s || colon[-1] == ':')
        return false;
    size_t plen = n - (size_t)(colon + 1 - s);
    return plen > 0 && all_in_class(colon + 1, plen, HTTP1_CC_DIGIT);
}

/* RFC 9112 §3.2: which target forms go with which method. */
static int target_classify(struct http1_parser *p, const char *buf, struct http1_request *req)
{
    size_t off = http1_ptr_off(req->target);
    const char *s = buf + off;
    size_t n = req->target_len;

    if (req->method == HTTP_CONNECT) {
        if (!authority_valid(s, n, true))
            return -400;
        req->path = NULL;
        req->path_len = 0;
        return 0;
    }
    if (s[0] == '/') {
        req->path = http1_off_ptr(off);
        req->path_len = n;
        return 0;
    }
    if (n == 1 && s[0] == '*') {
        if (req->method != HTTP_OPTIONS)
            return -400;
        req->path = http1_off_ptr(off);
        req->path_len = 1;
        return 0;
    }

    size_t k;
    if (n > 7 && mem_case_eq(s, 7, "http://"))
        k = 7;
    else if (n > 8 && mem_case_eq(s, 8, "https://"))
        k = 8;
    else
        return -400;
    size_t a = k;
    while (k < n && s[k] != '/' && s[k] != '?')
        k++;
    if (!authority_valid(s + a, k - a, false))
        return -400;
    if (k < n && s[k] == '?')
        return -400;   /* "http://h?q" has no path to point at; see http1.h */
    p->flags |= F_ABSOLUTE;
    req->host = http1_off_ptr(off + a);
    req->host_len = k - a;
    if (k == n) {
        p->flags |= F_PATH_SLASH;
        req->path_len = 1;
    } else {
        req->path = http1_off_ptr(off + k);
        req->path_len = n - k;
    }
    return 0;
}

static int transfer_encoding_check(const char *v, size_t len)
{
    const char *cur = v, *elem;
    size_t n;
    bool chunked = false, unknown = false;

    if (len == 0)
        return -400;
    while (http1_list_next(&cur, v + len, &elem, &n)) {
        if (n == 0)
            return -400;
        /* After chunked nothing may follow, and chunked must not come twice
         * (RFC 9112 §6.1): both leave the body's end open to interpretation. */
        if (chunked)
            return -400;
        if (mem_case_eq(elem, n, "chunked"))
            chunked = true;
        else
            unknown = true;
    }
    if (!chunked)
        return -400;   /* RFC 9112 §6.3: final coding not chunked in a request */
    return unknown ? -501 : 0;
}

static int request_field(struct http1_parser *p, const char *buf, struct http1_request *req,
                         struct http1_header *h)
{
    const char *name = buf + http1_ptr_off(h->name);
    const char *v = buf + http1_ptr_off(h->value);
    size_t n = h->value_len;
    int r;

    /* Dispatch on length first: most fields are none of these and cost one switch. */
    switch (h->name_len) {
    case 4:
        if (!mem_case_eq(name, 4, "host"))
            break;
        if ((p->flags & F_HOST) || !all_in_class(v, n, HTTP1_CC_HOST))
            return -400;
        p->flags |= F_HOST;
        if (!(p->flags & F_ABSOLUTE)) {
            req->host = h->value;
            req->host_len = n;
        }
        break;
    case 14:
        if (!mem_case_eq(name, 14, "content-length"))
            break;
        /* Even an identical repeat is refused: a "5, 5" folded by some hop and a
         * second field seen by another are how framings diverge. */
        if ((p->flags & F_CL) || http1_content_length_parse(v, n, &req->content_length) < 0)
            return -400;
        p->flags |= F_CL;
        break;
    case 17:
        if (!mem_case_eq(name, 17, "transfer-encoding"))
            break;
        /* HTTP/1.0 has no chunked coding: a 1.0 hop would frame by close or CL. */
        if (req->minor_version == 0 || (p->flags & F_TE))
            return -400;
        r = transfer_encoding_check(v, n);
        if (r < 0)
            return r;
        p->flags |= F_TE;
        break;
    case 10:
        if (!mem_case_eq(name, 10, "connection"))
            break;
        if (http1_value_has_token(v, n, "close"))
            p->flags |= F_CONN_CLOSE;
        if (http1_value_has_token(v, n, "keep-alive"))
            p->flags |= F_CONN_KEEP_ALIVE;
        if (http1_value_has_token(v, n, "upgrade"))
            p->flags |= F_CONN_UPGRADE;
        break;
    case 7:
        if (mem_case_eq(name, 7, "upgrade"))
            p->flags |= F_UPGRADE;
        break;
    case 6:
        if (mem_case_eq(name, 6, "expect") && mem_case_eq(v, n, "100-continue"))
            p->flags |= F_EXPECT;
        break;
    default:
        break;
    }
    return 0;
}

static int request_finish(struct http1_parser *p, const char *buf, struct http1_request *req)
{
    unsigned f = p->flags;

    if (req->minor_version == 1 && !(f & F_HOST))
        return -400;   /* RFC 9112 §3.2 */
    if ((f & F_CL) && (f & F_TE))
        return -400;   /* RFC 9112 §6.1: the oldest smuggling trick */

    req->body = (f & F_TE) ? HTTP1_BODY_CHUNKED : (f & F_CL) ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    if (!(f & F_CL))
        req->content_length = 0;
    req->keep_alive = !(f & F_CONN_CLOSE) && (req->minor_version == 1 || (f & F_CONN_KEEP_ALIVE));
    req->upgrade = (f & F_CONN_UPGRADE) && (f & F_UPGRADE);
    /* RFC 9110 §10.1.1: a 1.0 client would not understand a 100 answer. */
    req->expect_continue = (f & F_EXPECT) && req->minor_version == 1;

    req->method_str = buf + http1_ptr_off(req->method_str);
    req->target = buf + http1_ptr_off(req->target);
    if (f & F_PATH_SLASH)
        req->path = "/";
    else if (req->method != HTTP_CONNECT)
        req->path = buf + http1_ptr_off(req->path);
    if (f & (F_HOST | F_ABSOLUTE))
        req->host = buf + http1_ptr_off(req->host);
    req->n_headers = p->n_lines;
    http1_headers_fixup(req->headers, req->n_headers, buf);
    return (int)p->scanned;
}

static void request_reset(struct http1_request *req)
{
    /* Not the header array: only n_headers entries are ever read. */
    req->method = HTTP_METHOD_OTHER;
    req->method_str = req->target = req->path = req->host = NULL;
    req->method_len = req->target_len = req->path_len = req->host_len = 0;
    req->minor_version = 0;
    req->n_headers = 0;
    req->body = HTTP1_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = req->expect_continue = req->upgrade = false;
}

/* The request line, byte by byte. Returns 1 when it is complete, else a result. */
static int request_line_scan(struct http1_parser *p, const char *buf, size_t len,
                             struct http1_request *req)
{
    size_t end = MIN(len, p->limits.max_head);
    size_t i = p->scanned;
    int st = p->state;
    int r;

    for (;;) {
        /* The line may take max_request_line bytes before its CR; seeing one more
         * byte that is not the CR is -414 right away. */
        size_t rl_lim = p->line_start + p->limits.max_request_line + 1;
        size_t lim = MIN(end, rl_lim);
        size_t start;

        switch (st) {
        case HTTP1_ST_RL_START:
            if (i >= lim)
                goto more;
            if (buf[i] == '\r') {
                i++;
                st = HTTP1_ST_RL_EMPTY_LF;
                break;
            }
            if (!http1_cc_is(buf[i], HTTP1_CC_TCHAR))
                return -400;
            i++;
            st = HTTP1_ST_RL_METHOD;
            break;
        case HTTP1_ST_RL_EMPTY_LF:
            /* n_lines counts these empty lines until the field lines begin. */
            if (i >= end)
                goto more;
            if (buf[i] != '\n' || ++p->n_lines > MAX_EMPTY_LINES)
                return -400;
            i++;
            p->line_start = i;
            st = HTTP1_ST_RL_START;
            break;
        case HTTP1_ST_RL_METHOD:
            while (i < lim && http1_cc_is(buf[i], HTTP1_CC_TCHAR))
                i++;
            if (i >= lim)
                goto more;
            if (buf[i] != ' ')
                return -400;
            req->method_str = http1_off_ptr(p->line_start);
            req->method_len = i - p->line_start;
            req->method = method_lookup(buf + p->line_start, req->method_len);
            i++;
            req->target = http1_off_ptr(i);
            st = HTTP1_ST_RL_TARGET;
            break;
        case HTTP1_ST_RL_TARGET:
            start = http1_ptr_off(req->target);
            while (i < lim && http1_cc_is(buf[i], HTTP1_CC_TARGET))
                i++;
            if (i >= lim)
                goto more;
            if (buf[i] != ' ' || i == start)
                return -400;
            req->target_len = i - start;
            i++;
            st = HTTP1_ST_RL_VERSION;
            break;
        case HTTP1_ST_RL_VERSION:
            start = http1_ptr_off(req->target) + req->target_len + 1;
            while (i < lim && buf[i] != '\r') {
                if (i - start >= 8)
                    return -400;   /* longer than "HTTP/1.1" */
                i++;
            }
            if (i >= lim)
                goto more;
            r = http1_version_parse(buf + start, i - start, &req->minor_version);
            if (r < 0)
                return r == -2 ? -505 : -400;
            i++;
            st = HTTP1_ST_RL_LF;
            break;
        case HTTP1_ST_RL_LF:
            if (i >= end)
                goto more;
            if (buf[i] != '\n')
                return -400;
            i++;
            r = target_classify(p, buf, req);
            if (r < 0)
                return r;
            p->line_start = i;
            p->n_lines = 0;
            p->scanned = i;
            p->state = HTTP1_ST_F_LINE;
            return 1;
        default:
            return -400;
        }
        continue;
    more:
        if (i >= rl_lim && st != HTTP1_ST_RL_LF && st != HTTP1_ST_RL_EMPTY_LF)
            return -414;
        p->scanned = i;
        p->state = st;
        return end == p->limits.max_head ? -431 : HTTP1_INCOMPLETE;
    }
}

int http1_parse_request(struct http1_parser *p, const char *buf, size_t len,
                        struct http1_request *req)
{
    int r;

    if (p->state == HTTP1_ST_INIT) {
        request_reset(req);
        p->state = HTTP1_ST_RL_START;
    }
    if (p->state < HTTP1_ST_F_LINE) {
        if (p->state >= HTTP1_ST_SL_VERSION)
            return -400;   /* a response parser's state */
        r = request_line_scan(p, buf, len, req);
        if (r <= 0)
            return r;
    }
    for (;;) {
        r = http1_fields_scan(p, buf, len, req->headers);
        if (r == HTTP1_FIELDS_LINE) {
            r = request_field(p, buf, req, &req->headers[p->n_lines - 1]);
            if (r < 0)
                return r;
        } else if (r == HTTP1_FIELDS_END)
            return request_finish(p, buf, req);
        else
            return r;
    }
}

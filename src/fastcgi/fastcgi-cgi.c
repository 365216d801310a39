/* The CGI response head at the start of STDOUT (RFC 3875 §6). The scan for the blank
 * line resumes where it stopped; the lines are only interpreted once the head is
 * complete, when their pointers into the caller's buffer are final. */
#include <errno.h>

#include "fastcgi/fastcgi.h"

#define BAD (-502)

void fastcgi_cgi_parser_init(struct fastcgi_cgi_parser *p, size_t max_head)
{
    *p = (struct fastcgi_cgi_parser){ .max_head = max_head ? max_head : FASTCGI_MAX_HEAD_DEFAULT };
}

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_value_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Fields a backend cannot set for the client's connection: they describe one hop. */
static bool is_hop_by_hop(const char *n, size_t len)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
        "trailer", "upgrade",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (mem_case_eq(n, len, names[i]))
            return true;
    return false;
}

static int parse_status(const char *v, size_t len, struct fastcgi_cgi_head *h)
{
    if (len < 3 || (len > 3 && v[3] != ' '))
        return BAD;
    int status = 0;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return BAD;
        status = status * 10 + (v[i] - '0');
    }
    if (status < 200 || status > 599)
        return BAD;
    h->status = status;
    h->reason = len > 3 ? v + 4 : v + 3;
    h->reason_len = len > 3 ? len - 4 : 0;
    return 0;
}

static int parse_content_length(const char *v, size_t len, struct fastcgi_cgi_head *h)
{
    if (len == 0 || len > 18)
        return BAD;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return BAD;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (h->has_content_length && h->content_length != n)
        return BAD;
    h->has_content_length = true;
    h->content_length = n;
    return 0;
}

/* Interprets one complete line [s, s+len) (line ending removed). */
static int parse_line(const char *s, size_t len, struct fastcgi_cgi_head *h, bool *seen_status)
{
    if (s[0] == ' ' || s[0] == '\t')
        return BAD;   /* obs-fold */
    const char *colon = memchr(s, ':', len);
    if (!colon || colon == s)
        return BAD;
    size_t name_len = (size_t)(colon - s);
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return BAD;
    const char *v = colon + 1, *end = s + len;
    for (const char *q = v; q < end; q++)
        if (!is_value_byte((unsigned char)*q))
            return BAD;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t value_len = (size_t)(end - v);

    if (mem_case_eq(s, name_len, "status")) {
        if (*seen_status)
            return BAD;
        *seen_status = true;
        return parse_status(v, value_len, h);
    }
    if (mem_case_eq(s, name_len, "content-length"))
        return parse_content_length(v, value_len, h);
    if (is_hop_by_hop(s, name_len))
        return 0;
    if (mem_case_eq(s, name_len, "location")) {
        if (h->location || value_len == 0)
            return BAD;
        h->location = v;
        h->location_len = value_len;
    } else if (mem_case_eq(s, name_len, "content-type")) {
        if (h->content_type)
            return BAD;
        h->content_type = v;
        h->content_type_len = value_len;
    }
    if (h->n_headers == FASTCGI_MAX_HEADERS)
        return BAD;
    h->headers[h->n_headers++] = (struct fastcgi_header){ s, name_len, v, value_len };
    return 0;
}

/* Fills h from the complete head buf[0..head_len), which ends in the blank line. */
static int head_interpret(const char *buf, size_t head_len, struct fastcgi_cgi_head *h)
{
    *h = (struct fastcgi_cgi_head){ .status = 200 };
    bool seen_status = false;
    size_t fields = 0;
    const char *p = buf, *end = buf + head_len;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len == 0)
            break;
        int r = parse_line(p, len, h, &seen_status);
        if (r < 0)
            return r;
        fields++;
        p = nl + 1;
    }
    if (fields == 0)
        return BAD;
    if (h->location) {
        bool local = h->location[0] == '/' && (h->location_len == 1 || h->location[1] != '/');
        if (!seen_status) {
            h->status = 302;
            h->kind = local ? FASTCGI_CGI_LOCAL_REDIRECT : FASTCGI_CGI_CLIENT_REDIRECT;
        } else {
            h->kind = FASTCGI_CGI_CLIENT_REDIRECT;
        }
    }
    return 0;
}

int fastcgi_cgi_head_parse(struct fastcgi_cgi_parser *p, const char *buf, size_t len,
                           struct fastcgi_cgi_head *ret_head)
{
    size_t limit = MIN(len, p->max_head);
    for (size_t i = p->scanned; i < limit; i++) {
        char c = buf[i];
        if (c == '\r') {
            /* A CR is allowed only right before LF. */
            if (i + 1 < len && buf[i + 1] != '\n')
                return BAD;
            continue;
        }
        if (c != '\n')
            continue;
        size_t line_len = i - p->line_start;
        if (line_len > 0 && buf[i - 1] == '\r')
            line_len--;
        if (line_len == 0) {
            int r = head_interpret(buf, i + 1, ret_head);
            p->scanned = i + 1;
            return r < 0 ? r : (int)(i + 1);
        }
        if (++p->n_lines > FASTCGI_MAX_HEADERS)
            return BAD;
        p->line_start = i + 1;
    }
    /* A CR at the very end is checked again when its next byte arrives. */
    p->scanned = limit > p->scanned && buf[limit - 1] == '\r' ? limit - 1 : limit;
    if (len >= p->max_head)
        return BAD;
    return 0;
}

/* The CGI/1.1 variables for one request (RFC 3875 §4.1, plus what PHP reads). They
 * are written straight into the PARAMS records, so building them allocates nothing
 * beyond the output buffer. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "fastcgi/fastcgi.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "0"
#endif

/* "HTTP_" + the longest field name we pass on. */
#define VAR_NAME_MAX 256

static bool skip_header(const struct fastcgi_request_header *h)
{
    if (mem_case_eq(h->name, h->name_len, "proxy") ||        /* httpoxy */
        mem_case_eq(h->name, h->name_len, "host") ||         /* info->host instead */
        mem_case_eq(h->name, h->name_len, "content-type") ||
        mem_case_eq(h->name, h->name_len, "content-length"))
        return true;
    if (h->name_len == 0 || h->name_len > VAR_NAME_MAX - 5 || memchr(h->name, '_', h->name_len))
        return true;
    return false;
}

static bool same_name(const struct fastcgi_request_header *a, const struct fastcgi_request_header *b)
{
    return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

/* Writes HTTP_<NAME> for headers[i] and every later field of the same name, joined.
 * The pair is built in place: the value's length is known before it is written. */
static int add_header(struct fastcgi_params *p, const struct fastcgi_request_header *headers,
                      size_t n, size_t i, struct buf *scratch)
{
    const struct fastcgi_request_header *h = &headers[i];
    char name[VAR_NAME_MAX];
    memcpy(name, "HTTP_", 5);
    for (size_t k = 0; k < h->name_len; k++) {
        char c = h->name[k];
        name[5 + k] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    bool repeated = false;
    for (size_t k = i + 1; k < n && !repeated; k++)
        repeated = same_name(h, &headers[k]);
    if (!repeated)
        return fastcgi_params_add(p, name, 5 + h->name_len, h->value, h->value_len);

    const char *sep = mem_case_eq(h->name, h->name_len, "cookie") ? "; " : ", ";
    buf_clear(scratch);
    int r = 0;
    for (size_t k = i; k < n && r >= 0; k++) {
        if (!same_name(h, &headers[k]))
            continue;
        if (k > i)
            r = buf_append_str(scratch, sep);
        if (r >= 0)
            r = buf_append(scratch, headers[k].value, headers[k].value_len);
    }
    if (r < 0)
        return r == -ENOBUFS ? -E2BIG : r;
    return fastcgi_params_add(p, name, 5 + h->name_len, scratch->data ? scratch->data : "",
                              scratch->len);
}

static void buf_donep(struct buf *b)
{
    buf_done(b);
}

int fastcgi_params_build(struct buf *out, uint16_t request_id,
                         const struct fastcgi_request_info *info)
{
    if (!info->method || !info->request_uri || !info->document_root || !info->script_name ||
        !info->server_protocol || !info->remote_addr || !info->server_name ||
        (!info->query && info->query_len) || (!info->path_info && info->path_info_len))
        return -EINVAL;

    struct fastcgi_params p;
    fastcgi_params_init(&p, out, request_id);
    /* One variable holds at most a record's worth: the join of repeated fields is
     * bounded the same way. */
    _cleanup_(buf_donep) struct buf scratch = BUF_INIT(FASTCGI_MAX_CONTENT);
    char num[32];
    const char *pi = info->path_info ? info->path_info : "";
    const char *q = info->query ? info->query : "";

    /* SCRIPT_FILENAME: document root + script name. No PATH_TRANSLATED: with
     * cgi.fix_pathinfo=0 php-fpm runs PATH_TRANSLATED instead of SCRIPT_FILENAME
     * when it is given, so "/a.php/uploads/x.php" would run x.php; with 1 PHP
     * derives it itself. */
    _cleanup_(buf_donep) struct buf joined = BUF_INIT(FASTCGI_MAX_CONTENT);
    int r = buf_append_str(&joined, info->document_root);
    if (r >= 0)
        r = buf_append_str(&joined, info->script_name);
    if (r < 0)
        return r == -ENOBUFS ? -E2BIG : r;
    fastcgi_params_add(&p, "SCRIPT_FILENAME", 15, joined.data, joined.len);

    fastcgi_params_add_str(&p, "SCRIPT_NAME", info->script_name);
    fastcgi_params_add(&p, "PATH_INFO", 9, pi, info->path_info_len);
    fastcgi_params_add_str(&p, "DOCUMENT_ROOT", info->document_root);
    fastcgi_params_add(&p, "REQUEST_URI", 11, info->request_uri, info->request_uri_len);
    fastcgi_params_add(&p, "QUERY_STRING", 12, q, info->query_len);
    fastcgi_params_add(&p, "REQUEST_METHOD", 14, info->method, info->method_len);
    fastcgi_params_add_str(&p, "SERVER_PROTOCOL", info->server_protocol);
    fastcgi_params_add_str(&p, "GATEWAY_INTERFACE", "CGI/1.1");
    fastcgi_params_add_str(&p, "SERVER_SOFTWARE", "berth/" BERTH_VERSION);
    if (info->https)
        fastcgi_params_add_str(&p, "HTTPS", "on");
    fastcgi_params_add_str(&p, "REQUEST_SCHEME", info->https ? "https" : "http");
    fastcgi_params_add_str(&p, "REMOTE_ADDR", info->remote_addr);
    snprintf(num, sizeof(num), "%u", (unsigned)info->remote_port);
    fastcgi_params_add_str(&p, "REMOTE_PORT", num);
    if (info->server_addr)
        fastcgi_params_add_str(&p, "SERVER_ADDR", info->server_addr);
    fastcgi_params_add_str(&p, "SERVER_NAME", info->server_name);
    snprintf(num, sizeof(num), "%u", (unsigned)info->server_port);
    fastcgi_params_add_str(&p, "SERVER_PORT", num);
    if (info->content_type)
        fastcgi_params_add(&p, "CONTENT_TYPE", 12, info->content_type, info->content_type_len);
    if (info->has_content_length) {
        snprintf(num, sizeof(num), "%" PRIu64, info->content_length);
        fastcgi_params_add_str(&p, "CONTENT_LENGTH", num);
    }
    fastcgi_params_add_str(&p, "REDIRECT_STATUS", "200");
    if (info->host)
        fastcgi_params_add(&p, "HTTP_HOST", 9, info->host, info->host_len);

    for (size_t i = 0; i < info->n_headers && p.error >= 0; i++) {
        const struct fastcgi_request_header *h = &info->headers[i];
        if (skip_header(h))
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = same_name(h, &info->headers[k]);
        if (seen)
            continue;
        r = add_header(&p, info->headers, info->n_headers, i, &scratch);
        if (r < 0)
            return r;
    }
    return fastcgi_params_end(&p);
}

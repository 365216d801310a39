/* Writing HTTP/1.1 heads and chunks into a struct buf. */
#include <stdio.h>

#include "http/http1-internal.h"

bool http_method_idempotent(enum http_method m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_PUT || m == HTTP_DELETE || m == HTTP_OPTIONS ||
           m == HTTP_TRACE;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
}

int http1_write_status_line(struct buf *out, int status)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    return buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
}

int http1_write_header(struct buf *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    int r;

    if (nl == 0 || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -EINVAL;
    r = buf_reserve(out, nl + vl + 4);
    if (r < 0)
        return r;
    /* Cannot fail now: the room is reserved. */
    (void)buf_append(out, name, nl);
    (void)buf_append(out, ": ", 2);
    (void)buf_append(out, value, vl);
    (void)buf_append(out, "\r\n", 2);
    return 0;
}

int http1_write_chunk(struct buf *out, const void *data, size_t len)
{
    char head[24];
    int n, r;

    if (len == 0)
        return buf_append(out, "0\r\n\r\n", 5);
    n = snprintf(head, sizeof(head), "%zx\r\n", len);
    r = buf_reserve(out, (size_t)n + len + 2);
    if (r < 0)
        return r;
    (void)buf_append(out, head, (size_t)n);
    (void)buf_append(out, data, len);
    (void)buf_append(out, "\r\n", 2);
    return 0;
}

/* HTTP/2 request fields into an HTTP/1.1 head, and the answer fields HTTP/2 may
 * carry. Pure: no worker, no I/O (tests/unit/test-front-h2.c). */
#include <strings.h>

#include "front/front-internal.h"

/* A request line holds method, path and " HTTP/1.1\r\n"; the parser bounds it. */
#define PSEUDO_MAX (64 * 1024)
#define COOKIE_MAX (64 * 1024)

void front_h2_head_init(struct front_h2_head *h, size_t max)
{
    *h = (struct front_h2_head){
        /* Room to pad a too big head past max (finish). */
        .head = BUF_INIT(max + 4096),
        .method = BUF_INIT(PSEUDO_MAX),
        .path = BUF_INIT(PSEUDO_MAX),
        .authority = BUF_INIT(PSEUDO_MAX),
        .cookie = BUF_INIT(COOKIE_MAX),
        .max = max,
    };
}

void front_h2_head_done(struct front_h2_head *h)
{
    if (!h)
        return;
    buf_done(&h->head);
    buf_done(&h->method);
    buf_done(&h->path);
    buf_done(&h->authority);
    buf_done(&h->cookie);
}

static bool name_is(const char *name, size_t nlen, const char *lit)
{
    return nlen == strlen(lit) && memcmp(name, lit, nlen) == 0;
}

/* The request line and Host, once the pseudo-fields are all in (they come first). */
static int begin_line(struct front_h2_head *h)
{
    if (h->line_done)
        return 0;
    h->line_done = true;
    /* CONNECT names an authority, not a path (RFC 9113 §8.5). */
    const struct buf *target = h->path.len ? &h->path : &h->authority;
    int r = buf_append(&h->head, h->method.data ? h->method.data : "", h->method.len);
    if (r >= 0)
        r = buf_append_char(&h->head, ' ');
    if (r >= 0)
        r = buf_append(&h->head, target->data ? target->data : "", target->len);
    if (r >= 0)
        r = buf_append_str(&h->head, " HTTP/1.1\r\n");
    if (r >= 0 && h->authority.len) {
        r = buf_append_str(&h->head, "Host: ");
        if (r >= 0)
            r = buf_append(&h->head, h->authority.data, h->authority.len);
        if (r >= 0)
            r = buf_append_str(&h->head, "\r\n");
    }
    return r == -ENOBUFS ? (h->too_big = true, 0) : r;
}

int front_h2_head_field(struct front_h2_head *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    h->list_size += nlen + vlen + 32;
    if (h->list_size > h->max)
        h->too_big = true;
    if (h->too_big)
        return 0;
    if (nlen > 0 && name[0] == ':') {
        struct buf *b = name_is(name, nlen, ":method")      ? &h->method
                        : name_is(name, nlen, ":path")      ? &h->path
                        : name_is(name, nlen, ":authority") ? &h->authority
                                                            : NULL;
        if (!b)
            return 0;   /* :scheme: the front knows it is https */
        buf_clear(b);
        int r = buf_append(b, value, vlen);
        return r == -ENOBUFS ? (h->too_big = true, 0) : r;
    }
    int r = begin_line(h);
    if (r < 0 || h->too_big)
        return r;
    if (name_is(name, nlen, "cookie")) {
        /* Crumbs are one field again for HTTP/1.1 (RFC 9113 §8.2.3). */
        if (h->cookie.len)
            r = buf_append(&h->cookie, "; ", 2);
        if (r >= 0)
            r = buf_append(&h->cookie, value, vlen);
        return r == -ENOBUFS ? (h->too_big = true, 0) : r;
    }
    /* The authority wins over host, as the absolute form wins over Host. Expect:
     * the front never sends 100 Continue over HTTP/2 (the client sends the body
     * as the window allows). te: only "trailers" passes nghttp2, and means nothing
     * to the front. The connection-specific fields never pass nghttp2. */
    if ((name_is(name, nlen, "host") && h->authority.len) || name_is(name, nlen, "expect") ||
        name_is(name, nlen, "te"))
        return 0;
    if (name_is(name, nlen, "content-length"))
        h->has_length = true;
    r = buf_append(&h->head, name, nlen);
    if (r >= 0)
        r = buf_append(&h->head, ": ", 2);
    if (r >= 0)
        r = buf_append(&h->head, value, vlen);
    if (r >= 0)
        r = buf_append(&h->head, "\r\n", 2);
    return r == -ENOBUFS ? (h->too_big = true, 0) : r;
}

int front_h2_head_finish(struct front_h2_head *h, bool body)
{
    int r = begin_line(h);
    if (r < 0)
        return r;
    if (h->too_big) {
        /* A field line to carry the head past max: the parser stops there with 431
         * (or 414 for the request line, as over HTTP/1.1). */
        static const char pad[] = "x-berth-too-big: ";
        if (h->head.len + 1024 > h->head.max)
            h->head.len = h->head.max - 1024;   /* cut inside the last fields: never sent whole */
        r = buf_append(&h->head, pad, sizeof(pad) - 1);
        while (r >= 0 && h->head.len <= h->max + 1) {
            size_t n = MIN(h->max + 2 - h->head.len, (size_t)512);
            r = buf_reserve(&h->head, n);
            if (r >= 0) {
                memset(h->head.data + h->head.len, 'x', n);
                h->head.len += n;
                h->head.data[h->head.len] = 0;
            }
        }
        return r;
    }
    if (h->cookie.len) {
        r = buf_append_str(&h->head, "cookie: ");
        if (r >= 0)
            r = buf_append(&h->head, h->cookie.data, h->cookie.len);
        if (r >= 0)
            r = buf_append(&h->head, "\r\n", 2);
    }
    if (r >= 0 && body && !h->has_length)
        r = buf_append_str(&h->head, "transfer-encoding: chunked\r\n");
    /* Kept alive, not "Connection: close": the stream closes its end once the
     * answer is in, and the connection then ends (a close from the client would
     * also reach the proxy's upstream request). */
    if (r >= 0)
        r = buf_append(&h->head, "\r\n", 2);
    if (r == -ENOBUFS) {
        h->too_big = true;
        return front_h2_head_finish(h, body);
    }
    return r;
}

bool front_h2_answer_field_passes(const char *name, size_t len)
{
    static const char *const refused[] = { "connection", "keep-alive", "proxy-connection",
                                           "transfer-encoding", "upgrade", "te" };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (len == strlen(refused[i]) && strncasecmp(name, refused[i], len) == 0)
            return false;
    return true;
}

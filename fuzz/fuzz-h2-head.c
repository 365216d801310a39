/* libFuzzer target for the HTTP/2 fields -> HTTP/1.1 head translation (h2-head.c).
 * The input is a body flag, then fields "name\0value\0" as nghttp2 would pass them
 * (fields it refuses, with CR, LF or NUL in them or uppercase names, are skipped).
 * The head built must parse as the same request or be refused by the parser with a
 * status, and its body framing must be the one the translation meant: never a
 * request the serving connection could read another way. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/front-internal.h"
#include "http/http1.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

static bool acceptable(const char *p, size_t n, bool name)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == 0 || (name && isupper((unsigned char)p[i])))
            return false;
    return !name || n > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool body = data[0] & 1;
    size_t max = 256 + (size_t)(data[0] >> 1) * 64;
    struct front_h2_head h;
    front_h2_head_init(&h, max);
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    bool length = false;
    while (p < end) {
        const char *nend = memchr(p, 0, (size_t)(end - p));
        if (!nend)
            break;
        const char *v = nend + 1;
        const char *vend = v < end ? memchr(v, 0, (size_t)(end - v)) : NULL;
        if (!vend)
            break;
        size_t nlen = (size_t)(nend - p), vlen = (size_t)(vend - v);
        if (acceptable(p, nlen, true) && acceptable(v, vlen, false)) {
            CHECK(front_h2_head_field(&h, p, nlen, v, vlen) == 0);
            length |= nlen == 14 && memcmp(p, "content-length", 14) == 0;
        }
        p = vend + 1;
    }
    bool too_big = h.too_big;
    CHECK(front_h2_head_finish(&h, body) == 0);
    struct http1_limits lim = { 8192, max, 100 };
    struct http1_parser parser;
    struct http1_request req;
    http1_parser_init(&parser, &lim);
    int r = http1_parse_request(&parser, h.head.data, h.head.len, &req);
    if (too_big)
        CHECK(r < 0);   /* never a request built from a cut list */
    if (r > 0) {
        CHECK((size_t)r == h.head.len);   /* nothing after the head: it is all ours */
        if (length)
            CHECK(req.body == HTTP1_BODY_LENGTH);
        else if (body)
            CHECK(req.body == HTTP1_BODY_CHUNKED);
        else
            CHECK(req.body == HTTP1_BODY_NONE);
    } else {
        CHECK(r == HTTP1_INCOMPLETE || r == -400 || r == -414 || r == -431 || r == -501 || r == -505);
    }
    front_h2_head_done(&h);
    return 0;
}

/* libFuzzer target for the HTTP/1.1 head parsers: each input is parsed as a request
 * and as a response, whole and in two pieces split at a point the fuzzer chooses
 * (each piece in its own exact-size allocation, so ASan sees any read past len);
 * both ways must reach the same result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

static char *dup_bytes(const uint8_t *d, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    if (n)
        memcpy(p, d, n);
    return p;
}

static void span_check(const char *buf, int r, const char *p, size_t n)
{
    CHECK(p >= buf && p + n <= buf + r);
}

static void headers_equal(const struct http1_header *a, const char *ba,
                          const struct http1_header *b, const char *bb, size_t n, int r)
{
    for (size_t k = 0; k < n; k++) {
        span_check(ba, r, a[k].name, a[k].name_len);
        span_check(ba, r, a[k].value, a[k].value_len);
        CHECK(a[k].name - ba == b[k].name - bb && a[k].name_len == b[k].name_len);
        CHECK(a[k].value - ba == b[k].value - bb && a[k].value_len == b[k].value_len);
    }
}

/* Offsets, not pointers: the two parses saw different buffers. Path "/" and NULL
 * are compared as strings. */
static void opt_equal(const char *pa, const char *ba, size_t la, const char *pb, const char *bb, size_t lb)
{
    CHECK(la == lb && !pa == !pb);
    if (pa)
        CHECK(memcmp(pa, pb, la) == 0);
    (void)ba;
    (void)bb;
}

static int parse_request(const struct http1_limits *lim, const uint8_t *d, size_t n, size_t cut,
                         char **ret_buf, struct http1_request *req)
{
    struct http1_parser p;
    int r = HTTP1_INCOMPLETE;
    http1_parser_init(&p, lim);
    if (cut < n) {
        char *b = dup_bytes(d, cut);
        r = http1_parse_request(&p, b, cut, req);
        CHECK(p.scanned <= cut);
        if (r != HTTP1_INCOMPLETE) {
            *ret_buf = b;
            return r;
        }
        free(b);
    }
    char *b = dup_bytes(d, n);
    r = http1_parse_request(&p, b, n, req);
    CHECK(p.scanned <= n);
    *ret_buf = b;
    return r;
}

static int parse_response(const struct http1_limits *lim, enum http_method m, const uint8_t *d,
                          size_t n, size_t cut, char **ret_buf, struct http1_response *res)
{
    struct http1_parser p;
    int r = HTTP1_INCOMPLETE;
    http1_parser_init(&p, lim);
    if (cut < n) {
        char *b = dup_bytes(d, cut);
        r = http1_parse_response(&p, b, cut, m, res);
        if (r != HTTP1_INCOMPLETE) {
            *ret_buf = b;
            return r;
        }
        free(b);
    }
    char *b = dup_bytes(d, n);
    r = http1_parse_response(&p, b, n, m, res);
    *ret_buf = b;
    return r;
}

static struct http1_request req_a, req_b;
static struct http1_response res_a, res_b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    /* data[0]: limits and method; data[1..2]: where to split */
    uint8_t ctl = data[0];
    size_t cut = (size_t)data[1] << 8 | data[2];
    data += 3;
    size = size - 3;
    cut = size ? cut % (size + 1) : 0;
    struct http1_limits lim = HTTP1_LIMITS_DEFAULT;
    if (ctl & 1)
        lim = (struct http1_limits){ .max_request_line = 40, .max_head = 200, .max_headers = 4 };

    char *ba, *bb;
    int ra = parse_request(&lim, data, size, size, &ba, &req_a);
    int rb = parse_request(&lim, data, size, cut, &bb, &req_b);
    CHECK(ra == rb);
    CHECK(ra == HTTP1_INCOMPLETE || ra == -400 || ra == -414 || ra == -431 || ra == -501 ||
          ra == -505 || (ra > 0 && (size_t)ra <= size && (size_t)ra <= lim.max_head));
    if (ra > 0) {
        CHECK(req_a.method == req_b.method && req_a.minor_version == req_b.minor_version);
        CHECK(req_a.minor_version == 0 || req_a.minor_version == 1);
        span_check(ba, ra, req_a.method_str, req_a.method_len);
        span_check(ba, ra, req_a.target, req_a.target_len);
        CHECK(req_a.target - ba == req_b.target - bb && req_a.target_len == req_b.target_len);
        CHECK(req_a.method_len == req_b.method_len && req_a.method_len > 0);
        opt_equal(req_a.path, ba, req_a.path_len, req_b.path, bb, req_b.path_len);
        opt_equal(req_a.host, ba, req_a.host_len, req_b.host, bb, req_b.host_len);
        if (req_a.host)
            span_check(ba, ra, req_a.host, req_a.host_len);
        CHECK(req_a.minor_version == 0 || req_a.host);
        CHECK(req_a.body == req_b.body && req_a.content_length == req_b.content_length);
        CHECK(req_a.keep_alive == req_b.keep_alive && req_a.upgrade == req_b.upgrade &&
              req_a.expect_continue == req_b.expect_continue);
        CHECK(req_a.n_headers == req_b.n_headers && req_a.n_headers <= lim.max_headers);
        CHECK(req_a.body != HTTP1_BODY_UNTIL_CLOSE);
        headers_equal(req_a.headers, ba, req_b.headers, bb, req_a.n_headers, ra);
        /* nothing ambiguous got through */
        CHECK(!(http1_find_header(req_a.headers, req_a.n_headers, "content-length") &&
                http1_find_header(req_a.headers, req_a.n_headers, "transfer-encoding")));
    }
    free(ba);
    free(bb);

    static const enum http_method methods[] = { HTTP_GET, HTTP_HEAD, HTTP_CONNECT, HTTP_POST };
    enum http_method m = methods[(ctl >> 1) & 3];
    ra = parse_response(&lim, m, data, size, size, &ba, &res_a);
    rb = parse_response(&lim, m, data, size, cut, &bb, &res_b);
    CHECK(ra == rb);
    CHECK(ra == HTTP1_INCOMPLETE || ra == -502 || (ra > 0 && (size_t)ra <= size));
    if (ra > 0) {
        CHECK(res_a.status >= 100 && res_a.status <= 599 && res_a.status == res_b.status);
        CHECK(res_a.reason - ba == res_b.reason - bb && res_a.reason_len == res_b.reason_len);
        span_check(ba, ra, res_a.reason, res_a.reason_len);
        CHECK(res_a.body == res_b.body && res_a.content_length == res_b.content_length);
        CHECK(res_a.keep_alive == res_b.keep_alive);
        CHECK(res_a.n_headers == res_b.n_headers && res_a.n_headers <= lim.max_headers);
        headers_equal(res_a.headers, ba, res_b.headers, bb, res_a.n_headers, ra);
    }
    free(ba);
    free(bb);
    return 0;
}

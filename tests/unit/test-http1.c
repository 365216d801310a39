/* Tests for src/http heads: requests and responses as tables of raw bytes and the
 * result berth must reach, each parsed whole, one byte at a time and in random
 * splits (in a fresh buffer each call, as a growing connection buffer moves); the
 * smuggling suite; limits; pipelining; the writers, dates and reason phrases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <time.h>

#include "common/buf.h"
#include "common/util.h"
#include "http/http1-internal.h"
#include "http/http1.h"

#define RAW(s) .raw = (s), .len = sizeof(s) - 1
#define WHOLE 0x7fffffff   /* want: the head is all of raw */

struct req_case {
    const char *raw;
    size_t len;
    int want;              /* WHOLE, or the negated status */
    enum http_method method;
    const char *path;      /* NULL: path must be NULL */
    const char *host;      /* NULL: host must be NULL */
    enum http1_body body;
    uint64_t cl;
    bool keep_alive, upgrade, expect;
    int minor;
    size_t n_headers;
};

#define OK11 .want = WHOLE, .minor = 1, .keep_alive = true

static const struct req_case req_cases[] = {
    /* ---- accepted ---- */
    { RAW("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), OK11, .method = HTTP_GET, .path = "/",
      .host = "a", .n_headers = 1 },
    { RAW("GET /x?y=1 HTTP/1.0\r\n\r\n"), .want = WHOLE, .method = HTTP_GET, .path = "/x?y=1" },
    { RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), .want = WHOLE, .keep_alive = true,
      .method = HTTP_GET, .path = "/", .n_headers = 1 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), .want = WHOLE, .minor = 1,
      .method = HTTP_GET, .path = "/", .host = "a", .n_headers = 2 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n"), .want = WHOLE,
      .minor = 1, .method = HTTP_GET, .path = "/", .host = "a", .n_headers = 2 },
    { RAW("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), OK11, .method = HTTP_POST,
      .path = "/p", .host = "a", .body = HTTP1_BODY_LENGTH, .cl = 5, .n_headers = 2 },
    { RAW("POST /p HTTP/1.1\r\nHost: a\r\ncontent-length:0\r\n\r\n"), OK11, .method = HTTP_POST,
      .path = "/p", .host = "a", .body = HTTP1_BODY_LENGTH, .cl = 0, .n_headers = 2 },
    { RAW("PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length:  9223372036854775807 \r\n\r\n"), OK11,
      .method = HTTP_PUT, .path = "/p", .host = "a", .body = HTTP1_BODY_LENGTH,
      .cl = 9223372036854775807ULL, .n_headers = 2 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), OK11,
      .method = HTTP_POST, .path = "/", .host = "a", .body = HTTP1_BODY_CHUNKED, .n_headers = 2 },
    /* Case-insensitive coding, OWS around it: every reader agrees on these. */
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t Chunked \r\n\r\n"), OK11,
      .method = HTTP_POST, .path = "/", .host = "a", .body = HTTP1_BODY_CHUNKED, .n_headers = 2 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
      OK11, .method = HTTP_POST, .path = "/", .host = "a", .body = HTTP1_BODY_LENGTH, .cl = 1,
      .expect = true, .n_headers = 3 },
    { RAW("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), .want = WHOLE,
      .method = HTTP_POST, .path = "/", .n_headers = 1 },
    { RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      OK11, .method = HTTP_GET, .path = "/ws", .host = "a", .upgrade = true, .n_headers = 3 },
    { RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"), OK11,
      .method = HTTP_GET, .path = "/ws", .host = "a", .n_headers = 2 },
    { RAW("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), OK11,
      .method = HTTP_GET, .path = "/ws", .host = "a", .n_headers = 2 },
    { RAW("GET http://Example.com:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n"), OK11,
      .method = HTTP_GET, .path = "/p?q", .host = "Example.com:80", .n_headers = 1 },
    { RAW("GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n"), OK11, .method = HTTP_GET, .path = "/",
      .host = "h", .n_headers = 1 },
    { RAW("GET http://[::1]:8080/ HTTP/1.1\r\nHost: x\r\n\r\n"), OK11, .method = HTTP_GET,
      .path = "/", .host = "[::1]:8080", .n_headers = 1 },
    { RAW("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), OK11, .method = HTTP_CONNECT,
      .path = NULL, .host = "h:443", .n_headers = 1 },
    { RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), OK11, .method = HTTP_OPTIONS, .path = "*",
      .host = "a", .n_headers = 1 },
    { RAW("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), OK11, .method = HTTP_METHOD_OTHER,
      .path = "/x", .host = "a", .n_headers = 1 },
    { RAW("get /x HTTP/1.1\r\nHost: a\r\n\r\n"), OK11, .method = HTTP_METHOD_OTHER,
      .path = "/x", .host = "a", .n_headers = 1 },
    { RAW("\r\n\r\nDELETE /x HTTP/1.1\r\nHost: a\r\n\r\n"), OK11, .method = HTTP_DELETE,
      .path = "/x", .host = "a", .n_headers = 1 },
    { RAW("GET / HTTP/1.1\r\nHost:\r\nX-E:\r\nX-O: caf\xc3\xa9 \t \r\n\r\n"), OK11,
      .method = HTTP_GET, .path = "/", .host = "", .n_headers = 3 },
    { RAW("GET /a%20b;c=d!$&'()*+,=:@~[]{}|^`\"<>\\ HTTP/1.1\r\nHost: a\r\n\r\n"), OK11,
      .method = HTTP_GET, .path = "/a%20b;c=d!$&'()*+,=:@~[]{}|^`\"<>\\", .host = "a",
      .n_headers = 1 },

    /* ---- request line ---- */
    { RAW("GET / HTTP/1.1\nHost: a\r\n\r\n"), .want = -400 },          /* bare LF */
    { RAW("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },       /* bare CR */
    { RAW("GET / HTTP/1.1\rHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },      /* space in target */
    { RAW("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET /\r\n\r\n"), .want = -400 },                              /* HTTP/0.9 */
    { RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), .want = -505 },
    { RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), .want = -505 },
    { RAW("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), .want = -505 },
    { RAW("\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    /* ---- target forms ---- */
    { RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("CONNECT h HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("CONNECT h: HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("CONNECT http://h:80/ HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET h:80 HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .want = -400 },
    { RAW("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), .want = -400 },
    { RAW("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n"), .want = -400 },
    { RAW("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n"), .want = -400 },
    { RAW("GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n"), .want = -400 },
    { RAW("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), .want = -400 },
    /* ---- field syntax ---- */
    { RAW("GET / HTTP/1.1\r\nHost: a\n\r\n"), .want = -400 },           /* bare LF */
    { RAW("GET / HTTP/1.1\r\nHost: a\r\n\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), .want = -400 }, /* bare CR */
    { RAW("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), .want = -400 },   /* obs-fold */
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX(y: 1\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX\0: 1\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: 1\0\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: 1\x7f\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[1m\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), .want = -400 },
    /* ---- Host ---- */
    { RAW("GET / HTTP/1.1\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nX: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), .want = -400 },
    { RAW("GET / HTTP/1.1\r\nHost: a\"\r\n\r\n"), .want = -400 },
    { RAW("GET http://h/ HTTP/1.1\r\n\r\n"), .want = -400 },
    { RAW("GET http://h/ HTTP/1.1\r\nHost: \xff\r\n\r\n"), .want = -400 },
    /* ---- smuggling: Content-Length ---- */
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \x0b" "5\r\n\r\n"), .want = -400 },
    /* ---- smuggling: Transfer-Encoding ---- */
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), .want = -400 },
    { RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), .want = -501 },
    { RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), .want = -400 },
};

static void req_check_expected(const struct req_case *c, const char *buf, int r,
                               const struct http1_request *req)
{
    int want = c->want == WHOLE ? (int)c->len : c->want;
    assert_int_equal(r, want);
    if (r <= 0)
        return;
    assert_int_equal(req->method, c->method);
    assert_int_equal(req->minor_version, c->minor);
    assert_ptr_equal(req->method_str + req->method_len + 1, req->target);
    if (c->path) {
        assert_non_null(req->path);
        assert_int_equal(req->path_len, strlen(c->path));
        assert_memory_equal(req->path, c->path, req->path_len);
    } else
        assert_null(req->path);
    if (c->host) {
        assert_non_null(req->host);
        assert_int_equal(req->host_len, strlen(c->host));
        assert_memory_equal(req->host, c->host, req->host_len);
        assert_true(req->host >= buf && req->host + req->host_len <= buf + r);
    } else
        assert_null(req->host);
    assert_int_equal(req->body, c->body);
    assert_int_equal(req->content_length, c->cl);
    assert_int_equal(req->keep_alive, c->keep_alive);
    assert_int_equal(req->upgrade, c->upgrade);
    assert_int_equal(req->expect_continue, c->expect);
    assert_int_equal(req->n_headers, c->n_headers);
    for (size_t k = 0; k < req->n_headers; k++) {
        const struct http1_header *h = &req->headers[k];
        assert_true(h->name >= buf && h->name + h->name_len <= buf + r);
        assert_true(h->value >= buf && h->value + h->value_len <= buf + r);
        assert_int_equal(h->name[h->name_len], ':');
        if (h->value_len > 0) {
            assert_true(h->value[0] != ' ' && h->value[0] != '\t');
            assert_true(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
        }
    }
}

/* Feeds c->raw growing by the given cut points; each call sees a fresh copy of
 * the bytes so far at a new address. */
static void req_feed(const struct req_case *c, const size_t *cuts, size_t n_cuts)
{
    struct http1_parser p;
    struct http1_request req;
    char *buf = NULL;
    int r = HTTP1_INCOMPLETE;

    http1_parser_init(&p, NULL);
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t upto = k < n_cuts ? cuts[k] : c->len;
        free(buf);
        buf = malloc(upto ? upto : 1);
        assert_non_null(buf);
        memcpy(buf, c->raw, upto);
        r = http1_parse_request(&p, buf, upto, &req);
        /* Never consumes more than it was given, and only advances. */
        assert_true(p.scanned <= upto);
        if (r != HTTP1_INCOMPLETE)
            break;
    }
    req_check_expected(c, buf, r, &req);
    free(buf);
}

static void test_request_table_whole(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(req_cases); i++) {
        print_message("case %zu\n", i);
        req_feed(&req_cases[i], NULL, 0);
    }
}

static void test_request_table_bytewise(void **state)
{
    size_t cuts[512];
    for (size_t i = 0; i < ARRAY_SIZE(req_cases); i++) {
        const struct req_case *c = &req_cases[i];
        assert_true(c->len <= ARRAY_SIZE(cuts));
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k;
        req_feed(c, cuts, c->len);
    }
}

static void test_request_table_random_splits(void **state)
{
    size_t cuts[8];
    srand(12345);
    for (size_t i = 0; i < ARRAY_SIZE(req_cases); i++) {
        const struct req_case *c = &req_cases[i];
        for (int round = 0; round < 50; round++) {
            size_t n = (size_t)rand() % ARRAY_SIZE(cuts);
            for (size_t k = 0; k < n; k++)
                cuts[k] = (size_t)rand() % (c->len + 1);
            /* sorted, so the buffer only grows */
            for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++)
                    if (cuts[b] < cuts[a]) {
                        size_t t = cuts[a];
                        cuts[a] = cuts[b];
                        cuts[b] = t;
                    }
            req_feed(c, cuts, n);
        }
    }
}

static void test_request_fields(void **state)
{
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Trim:  \t v a l \t \r\nX-Empty:\r\n\r\n";
    struct http1_parser p;
    struct http1_request req;

    http1_parser_init(&p, NULL);
    assert_int_equal(http1_parse_request(&p, raw, sizeof(raw) - 1, &req), sizeof(raw) - 1);
    assert_int_equal(req.n_headers, 3);
    assert_int_equal(req.headers[1].name_len, 6);
    assert_memory_equal(req.headers[1].name, "X-Trim", 6);
    assert_int_equal(req.headers[1].value_len, 5);
    assert_memory_equal(req.headers[1].value, "v a l", 5);
    assert_int_equal(req.headers[2].value_len, 0);
    assert_memory_equal(req.method_str, "GET", req.method_len);
    assert_int_equal(req.target_len, 1);

    const struct http1_header *h = http1_find_header(req.headers, req.n_headers, "x-trim");
    assert_ptr_equal(h, &req.headers[1]);
    assert_null(http1_find_header(req.headers, req.n_headers, "x-tri"));
    assert_null(http1_find_header(req.headers, req.n_headers, "x-trims"));

    assert_true(http1_value_has_token("keep-alive, Upgrade", 19, "upgrade"));
    assert_true(http1_value_has_token(" a ,\tb\t", 7, "b"));
    assert_false(http1_value_has_token("keep-alive, Upgrades", 20, "upgrade"));
    assert_false(http1_value_has_token("upgrade", 6, "upgrade"));
    assert_false(http1_value_has_token("", 0, "upgrade"));
}

static void test_request_pipelined(void **state)
{
#define HEAD1 "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
#define HEAD2 "GET /b HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    static const char raw[] = HEAD1 "abc" HEAD2 "GET /c HTTP/1.1\r\nHost: c";
    struct http1_parser p;
    struct http1_request req;
    size_t off = 0;
    int r;

    http1_parser_init(&p, NULL);
    r = http1_parse_request(&p, raw, sizeof(raw) - 1, &req);
    assert_int_equal(r, sizeof(HEAD1) - 1);
    assert_int_equal(req.body, HTTP1_BODY_LENGTH);
    assert_int_equal(req.content_length, 3);
    off = (size_t)r + req.content_length;

    http1_parser_init(&p, NULL);
    r = http1_parse_request(&p, raw + off, sizeof(raw) - 1 - off, &req);
    assert_int_equal(r, sizeof(HEAD2) - 1);
    assert_memory_equal(req.path, "/b", 2);
    assert_memory_equal(req.host, "b", 1);
    assert_false(req.keep_alive);
    off += (size_t)r;

    http1_parser_init(&p, NULL);
    r = http1_parse_request(&p, raw + off, sizeof(raw) - 1 - off, &req);
    assert_int_equal(r, HTTP1_INCOMPLETE);
    /* resumes on the remaining bytes without rescanning what it has checked */
    assert_int_equal(p.scanned, sizeof(raw) - 1 - off);
}

static char *repeat(const char *head, char fill, size_t n, const char *tail, size_t *ret_len)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    memset(s + hl, fill, n);
    memcpy(s + hl + n, tail, tl + 1);
    *ret_len = hl + n + tl;
    return s;
}

static int parse_once(const char *buf, size_t len, const struct http1_limits *lim)
{
    struct http1_parser p;
    struct http1_request req;
    http1_parser_init(&p, lim);
    return http1_parse_request(&p, buf, len, &req);
}

static void test_request_limits(void **state)
{
    size_t len;
    char *s;

    /* request line: "GET /" + fill + " HTTP/1.1" is 14 + n bytes before CRLF */
    s = repeat("GET /", 'a', 8192 - 14, " HTTP/1.1\r\nHost: a\r\n\r\n", &len);
    assert_int_equal(parse_once(s, len, NULL), (int)len);
    free(s);
    s = repeat("GET /", 'a', 8192 - 13, " HTTP/1.1\r\nHost: a\r\n\r\n", &len);
    assert_int_equal(parse_once(s, len, NULL), -414);
    free(s);
    /* -414 as soon as the line is too long, without its end */
    s = repeat("GET /", 'a', 8192, "", &len);
    assert_int_equal(parse_once(s, len, NULL), -414);
    assert_int_equal(parse_once(s, 8192, NULL), HTTP1_INCOMPLETE);
    assert_int_equal(parse_once(s, 8193, NULL), -414);
    free(s);
    s = repeat("", 'G', 9000, "", &len);   /* endless method */
    assert_int_equal(parse_once(s, len, NULL), -414);
    free(s);

    /* header section: -431 once past max_head, complete or not */
    s = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'v', 70000, "\r\n\r\n", &len);
    assert_int_equal(parse_once(s, len, NULL), -431);
    assert_int_equal(parse_once(s, 65535, NULL), HTTP1_INCOMPLETE);
    assert_int_equal(parse_once(s, 65536, NULL), -431);
    free(s);

    /* exactly max_head is fine */
    static const char small[] = "GET / HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n";
    const int n = (int)sizeof(small) - 1;
    struct http1_limits lim = { .max_request_line = 100, .max_head = 100, .max_headers = 3 };
    assert_int_equal(parse_once(small, n, &lim), n);
    lim.max_head = n;
    assert_int_equal(parse_once(small, n, &lim), n);
    lim.max_head = n - 1;
    assert_int_equal(parse_once(small, n, &lim), -431);
    assert_int_equal(parse_once(small, n - 1, &lim), -431);
    assert_int_equal(parse_once(small, n - 2, &lim), HTTP1_INCOMPLETE);

    /* too many fields: -431 at the first field over, before the head ends */
    lim = (struct http1_limits){ .max_request_line = 100, .max_head = 1000, .max_headers = 2 };
    static const char three[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB";
    assert_int_equal(parse_once(three, sizeof(three) - 2, &lim), HTTP1_INCOMPLETE);
    assert_int_equal(parse_once(three, sizeof(three) - 1, &lim), -431);
    static const char two[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n";
    assert_int_equal(parse_once(two, sizeof(two) - 1, &lim), sizeof(two) - 1);

    /* the default and the hard cap: HTTP1_MAX_HEADERS fields pass, one more does not */
    struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(buf_append_str(&b, "GET / HTTP/1.1\r\nHost: a\r\n"), 0);
    for (int k = 1; k < HTTP1_MAX_HEADERS; k++)
        assert_int_equal(buf_printf(&b, "X-%d: %d\r\n", k, k), 0);
    assert_int_equal(buf_append_str(&b, "\r\n"), 0);
    lim = (struct http1_limits){ .max_request_line = 100, .max_head = 1 << 20, .max_headers = 1000 };
    assert_int_equal(parse_once(b.data, b.len, &lim), (int)b.len);
    b.len -= 2;
    assert_int_equal(buf_append_str(&b, "X-Last: 1\r\n\r\n"), 0);
    assert_int_equal(parse_once(b.data, b.len, &lim), -431);
    assert_int_equal(parse_once(b.data, b.len, NULL), -431);
    buf_done(&b);

    /* a few leading CRLFs are skipped, counting against max_head */
    static const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    lim = (struct http1_limits){ .max_request_line = 14, .max_head = 1000, .max_headers = 10 };
    assert_int_equal(parse_once(lead, sizeof(lead) - 1, &lim), sizeof(lead) - 1);
    lim.max_request_line = 13;   /* "GET / HTTP/1.1" is 14 */
    assert_int_equal(parse_once(lead, sizeof(lead) - 1, &lim), -414);
    lim = (struct http1_limits){ .max_request_line = 14, .max_head = sizeof(lead) - 2, .max_headers = 10 };
    assert_int_equal(parse_once(lead, sizeof(lead) - 1, &lim), -431);
}

/* A 300-byte head must parse in well under a microsecond; under the sanitizers it
 * is slower, so this only catches something quadratic or allocating. */
static void test_request_speed(void **state)
{
    static const char raw[] =
        "GET /static/css/site.css?v=12345 HTTP/1.1\r\n"
        "Host: blog.example.com\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        "Accept: text/css,*/*;q=0.1\r\n"
        "Accept-Language: en-US,en;q=0.5\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n"
        "Connection: keep-alive\r\n"
        "Referer: https://blog.example.com/\r\n"
        "\r\n";
    struct http1_parser p;
    struct http1_request req;
    struct timespec a, b;
    const int rounds = 200000;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int k = 0; k < rounds; k++) {
        http1_parser_init(&p, NULL);
        assert_int_equal(http1_parse_request(&p, raw, sizeof(raw) - 1, &req), sizeof(raw) - 1);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / rounds;
    print_message("%zu-byte head: %.0f ns per parse\n", sizeof(raw) - 1, ns);
    assert_true(ns < 20000);
}

/* ---- responses ---- */

struct res_case {
    const char *raw;
    size_t len;
    enum http_method method;
    int want;
    int status;
    const char *reason;
    enum http1_body body;
    uint64_t cl;
    bool keep_alive;
    int minor;
};

static const struct res_case res_cases[] = {
    { RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP_GET, WHOLE, 200, "OK",
      HTTP1_BODY_LENGTH, 5, true, 1 },
    { RAW("HTTP/1.1 404 Not  Found \r\nContent-Length: 0\r\n\r\n"), HTTP_GET, WHOLE, 404,
      "Not  Found ", HTTP1_BODY_LENGTH, 0, true, 1 },
    { RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"), HTTP_GET, WHOLE, 200, "OK",
      HTTP1_BODY_CHUNKED, 0, true, 1 },
    { RAW("HTTP/1.1 200 OK\r\n\r\n"), HTTP_GET, WHOLE, 200, "OK", HTTP1_BODY_UNTIL_CLOSE, 0, false, 1 },
    { RAW("HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n"), HTTP_GET, WHOLE, 200, "",
      HTTP1_BODY_LENGTH, 1, true, 1 },
    { RAW("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n"), HTTP_GET, WHOLE, 200, "",
      HTTP1_BODY_LENGTH, 1, true, 1 },
    { RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP_HEAD, WHOLE, 200, "OK",
      HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 204 No Content\r\n\r\n"), HTTP_GET, WHOLE, 204, "No Content", HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"), HTTP_GET, WHOLE, 304,
      "Not Modified", HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_POST, WHOLE, 100, "Continue", HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
      HTTP_GET, WHOLE, 101, "Switching Protocols", HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 200 Connection established\r\n\r\n"), HTTP_CONNECT, WHOLE, 200,
      "Connection established", HTTP1_BODY_NONE, 0, true, 1 },
    { RAW("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n"), HTTP_CONNECT, WHOLE, 407, "Auth",
      HTTP1_BODY_LENGTH, 2, true, 1 },
    { RAW("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"), HTTP_GET, WHOLE, 200, "OK",
      HTTP1_BODY_LENGTH, 2, false, 0 },
    { RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"), HTTP_GET,
      WHOLE, 200, "OK", HTTP1_BODY_LENGTH, 2, true, 0 },
    { RAW("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"), HTTP_GET,
      WHOLE, 200, "OK", HTTP1_BODY_LENGTH, 2, false, 1 },
    { RAW("HTTP/1.1 500 caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n"), HTTP_GET, WHOLE, 500,
      "caf\xc3\xa9", HTTP1_BODY_LENGTH, 0, true, 1 },
    /* every error is -502 */
    { RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/2 200 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/2.0 200 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 20 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 099 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 600 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1  200 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nX: 1\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 O\0K\r\n\r\n"), HTTP_GET, -502 },
    { RAW("HTTP/1.1 200 OK\r\nX : 1\r\n\r\n"), HTTP_GET, -502 },
    { RAW("\r\nHTTP/1.1 200 OK\r\n\r\n"), HTTP_GET, -502 },
    { RAW("http/1.1 200 OK\r\n\r\n"), HTTP_GET, -502 },
};

static void res_feed(const struct res_case *c, const size_t *cuts, size_t n_cuts)
{
    struct http1_parser p;
    struct http1_response res;
    char *buf = NULL;
    int r = HTTP1_INCOMPLETE;

    http1_parser_init(&p, NULL);
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t upto = k < n_cuts ? cuts[k] : c->len;
        free(buf);
        buf = malloc(upto ? upto : 1);
        assert_non_null(buf);
        memcpy(buf, c->raw, upto);
        r = http1_parse_response(&p, buf, upto, c->method, &res);
        assert_true(p.scanned <= upto);
        if (r != HTTP1_INCOMPLETE)
            break;
    }
    assert_int_equal(r, c->want == WHOLE ? (int)c->len : c->want);
    if (r > 0) {
        assert_int_equal(res.status, c->status);
        assert_int_equal(res.minor_version, c->minor);
        assert_int_equal(res.reason_len, strlen(c->reason));
        assert_memory_equal(res.reason, c->reason, res.reason_len);
        assert_true(res.reason >= buf && res.reason <= buf + r);
        assert_int_equal(res.body, c->body);
        assert_int_equal(res.content_length, c->cl);
        assert_int_equal(res.keep_alive, c->keep_alive);
    }
    free(buf);
}

static void test_response_table(void **state)
{
    size_t cuts[512];
    for (size_t i = 0; i < ARRAY_SIZE(res_cases); i++) {
        const struct res_case *c = &res_cases[i];
        print_message("response case %zu\n", i);
        res_feed(c, NULL, 0);
        assert_true(c->len <= ARRAY_SIZE(cuts));
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k;
        res_feed(c, cuts, c->len);
    }
}

static void test_response_limits(void **state)
{
    struct http1_parser p;
    struct http1_response res;
    struct http1_limits lim = { .max_request_line = 20, .max_head = 60, .max_headers = 2 };
    static const char ok[] = "HTTP/1.1 200 abcdefg\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char longline[] = "HTTP/1.1 200 abcdefgh\r\n\r\n";
    static const char many[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    http1_parser_init(&p, &lim);
    assert_int_equal(http1_parse_response(&p, ok, sizeof(ok) - 1, HTTP_GET, &res), sizeof(ok) - 1);
    assert_int_equal(res.n_headers, 2);
    http1_parser_init(&p, &lim);
    assert_int_equal(http1_parse_response(&p, longline, 20, HTTP_GET, &res), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_response(&p, longline, 21, HTTP_GET, &res), -502);
    http1_parser_init(&p, &lim);
    assert_int_equal(http1_parse_response(&p, many, sizeof(many) - 1, HTTP_GET, &res), -502);
    /* a request parser state is not a response parser state */
    http1_parser_init(&p, NULL);
    struct http1_request req;
    assert_int_equal(http1_parse_request(&p, "GET", 3, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_response(&p, "GET", 3, HTTP_GET, &res), -502);
}

/* ---- the character table against the grammar ---- */

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static void test_char_table(void **state)
{
    for (int c = 0; c < 256; c++) {
        bool tchar = is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
        bool value = (c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80;
        bool target = c >= 0x21 && c <= 0x7e && c != '#';
        bool host = is_alpha(c) || is_digit(c) || (c && strchr("-._~%!$&'()*+,;=:[]", c));
        bool hex = is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_TCHAR), tchar);
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_VALUE), value);
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_TARGET), target);
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_HOST), host);
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_DIGIT), is_digit(c));
        assert_int_equal(!!(http1_cc[c] & HTTP1_CC_HEX), hex);
    }
}

/* ---- writing ---- */

static void test_write(void **state)
{
    struct buf b = BUF_INIT(1024);

    assert_int_equal(http1_write_status_line(&b, 404), 0);
    assert_int_equal(http1_write_status_line(&b, 299), 0);
    assert_int_equal(http1_write_status_line(&b, 99), -EINVAL);
    assert_int_equal(http1_write_status_line(&b, 1000), -EINVAL);
    assert_int_equal(http1_write_header(&b, "Content-Type", "text/html"), 0);
    assert_int_equal(http1_write_header(&b, "X-Empty", ""), 0);
    assert_int_equal(http1_write_header(&b, "X-Bad", "a\r\nSet-Cookie: x"), -EINVAL);
    assert_int_equal(http1_write_header(&b, "X-Bad\n", "a"), -EINVAL);
    assert_int_equal(http1_write_header(&b, "X:Bad", "a"), -EINVAL);
    assert_int_equal(http1_write_header(&b, "", "a"), -EINVAL);
    assert_int_equal(http1_write_chunk(&b, "hello world!!!!!", 16), 0);
    assert_int_equal(http1_write_chunk(&b, "x", 1), 0);
    assert_int_equal(http1_write_chunk(&b, NULL, 0), 0);
    assert_string_equal(b.data,
                        "HTTP/1.1 404 Not Found\r\n"
                        "HTTP/1.1 299 Unknown\r\n"
                        "Content-Type: text/html\r\n"
                        "X-Empty: \r\n"
                        "10\r\nhello world!!!!!\r\n"
                        "1\r\nx\r\n"
                        "0\r\n\r\n");
    buf_done(&b);

    /* the buffer's hard maximum holds, and nothing half-written is left */
    b = BUF_INIT(10);
    assert_int_equal(http1_write_header(&b, "Name", "value!"), -ENOBUFS);
    assert_int_equal(b.len, 0);
    assert_int_equal(http1_write_chunk(&b, "0123456789", 10), -ENOBUFS);
    assert_int_equal(b.len, 0);
    buf_done(&b);
}

static void test_status_reason(void **state)
{
    assert_string_equal(http_status_reason(100), "Continue");
    assert_string_equal(http_status_reason(200), "OK");
    assert_string_equal(http_status_reason(304), "Not Modified");
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(413), "Content Too Large");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(503), "Service Unavailable");
    assert_string_equal(http_status_reason(511), "Network Authentication Required");
    assert_string_equal(http_status_reason(299), "Unknown");
    assert_string_equal(http_status_reason(0), "Unknown");
    /* every status the parser returns has a phrase */
    static const int ours[] = { 400, 414, 431, 501, 502, 505 };
    for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
        assert_string_not_equal(http_status_reason(ours[i]), "Unknown");
}

static void test_date(void **state)
{
    char out[30];
    time_t t;

    http_date_format(784111777, out);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_date_format(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    http_date_format(951782400, out);   /* a leap day */
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");

    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(http_date_parse("Tue, 29 Feb 2000 00:00:00 GMT", 29, &t), 0);
    assert_int_equal(t, 951782400);
    for (time_t x = 0; x < 4102444800; x += 86400 * 37 + 3607) {
        http_date_format(x, out);
        assert_int_equal(http_date_parse(out, strlen(out), &t), 0);
        assert_int_equal(t, x);
    }

    static const char *bad[] = {
        "Sunday, 06-Nov-94 08:49:37 GMT",   /* RFC 850 */
        "Sun Nov  6 08:49:37 1994",         /* asctime */
        "Mon, 06 Nov 1994 08:49:37 GMT",    /* wrong weekday */
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08:60:37 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Wed, 31 Nov 1994 08:49:37 GMT",    /* 31 Nov is 1 Dec */
        "Tue, 29 Feb 2001 00:00:00 GMT",
        "Sun, 06 Nov 19x4 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:3",
        "",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        t = 42;
        assert_int_equal(http_date_parse(bad[i], strlen(bad[i]), &t), -EINVAL);
        assert_int_equal(t, 42);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_table_whole),
        cmocka_unit_test(test_request_table_bytewise),
        cmocka_unit_test(test_request_table_random_splits),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_request_pipelined),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_request_speed),
        cmocka_unit_test(test_response_table),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_char_table),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

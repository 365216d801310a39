/* Tests for src/fastcgi (records, CGI head, params): the exact bytes berth sends for
 * known requests, and php-fpm-like byte streams with what they must parse to, each
 * fed whole, one byte at a time and in random splits, which must all agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"
#include "fastcgi/fastcgi.h"

#define BYTES(s) (s), sizeof(s) - 1

static void buf_donep(struct buf *b)
{
    buf_done(b);
}

static void assert_bytes(const struct buf *b, const char *want, size_t want_len)
{
    assert_int_equal(b->len, want_len);
    assert_memory_equal(b->data, want, want_len);
}

/* ---- encoding ---- */

static void test_known_request(void **state)
{
    (void)state;
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(fastcgi_begin_request_write(&b, 1, true), 0);
    struct fastcgi_params p;
    fastcgi_params_init(&p, &b, 1);
    assert_int_equal(fastcgi_params_add_str(&p, "A", "b"), 0);
    assert_int_equal(fastcgi_params_add_str(&p, "QUERY_STRING", ""), 0);
    assert_int_equal(fastcgi_params_end(&p), 0);
    assert_int_equal(fastcgi_stdin_write(&b, 1, "hello", 5), 0);
    assert_int_equal(fastcgi_stdin_write(&b, 1, "", 0), 0);
    assert_int_equal(fastcgi_stdin_end(&b, 1), 0);
    assert_int_equal(fastcgi_abort_request_write(&b, 1), 0);
    static const char want[] =
        /* BEGIN_REQUEST id 1, role RESPONDER, FCGI_KEEP_CONN */
        "\x01\x01\x00\x01\x00\x08\x00\x00" "\x00\x01\x01\x00\x00\x00\x00\x00"
        /* PARAMS: 4 + 14 = 18 bytes of pairs, 6 of padding */
        "\x01\x04\x00\x01\x00\x12\x06\x00"
        "\x01\x01" "Ab" "\x0c\x00" "QUERY_STRING" "\x00\x00\x00\x00\x00\x00"
        "\x01\x04\x00\x01\x00\x00\x00\x00"
        /* STDIN "hello" + 3 padding, then the empty STDIN */
        "\x01\x05\x00\x01\x00\x05\x03\x00" "hello" "\x00\x00\x00"
        "\x01\x05\x00\x01\x00\x00\x00\x00"
        /* ABORT_REQUEST */
        "\x01\x02\x00\x01\x00\x00\x00\x00";
    assert_bytes(&b, BYTES(want));

    buf_clear(&b);
    assert_int_equal(fastcgi_begin_request_write(&b, 0x1234, false), 0);
    assert_bytes(&b, BYTES("\x01\x01\x12\x34\x00\x08\x00\x00" "\x00\x01\x00\x00\x00\x00\x00\x00"));
    assert_int_equal(fastcgi_begin_request_write(&b, 0, false), -EINVAL);

    uint8_t hdr[8];
    assert_int_equal(fastcgi_header_encode(hdr, FASTCGI_STDIN, 7, 65535), 1);
    assert_memory_equal(hdr, "\x01\x05\x00\x07\xff\xff\x01\x00", 8);
    assert_int_equal(fastcgi_header_encode(hdr, FASTCGI_STDIN, 7, 65536), -EINVAL);
}

static void test_long_lengths(void **state)
{
    (void)state;
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 20);
    char name[200], value[128];
    memset(name, 'N', sizeof(name));
    memset(value, 'v', sizeof(value));
    struct fastcgi_params p;
    fastcgi_params_init(&p, &b, 1);
    assert_int_equal(fastcgi_params_add(&p, name, sizeof(name), value, 127), 0);
    assert_int_equal(fastcgi_params_add(&p, name, 1, value, 128), 0);
    assert_int_equal(fastcgi_params_end(&p), 0);
    const uint8_t *d = (const uint8_t *)b.data;
    /* content: 4+1+200+127 = 332, then 1+4+1+128 = 134: 466 bytes, padding 6 */
    assert_memory_equal(d, "\x01\x04\x00\x01\x01\xd2\x06\x00", 8);
    assert_memory_equal(d + 8, "\x80\x00\x00\xc8\x7f", 5);
    assert_memory_equal(d + 8 + 332, "\x01\x80\x00\x00\x80N", 6);
    assert_int_equal(b.len, 8 + 466 + 6 + 8);
}

/* Decodes a PARAMS stream as php-fpm does: each record's pairs whole in it. */
struct pair { char name[256]; char *value; size_t value_len; };

static size_t read_len(const uint8_t **p, const uint8_t *end)
{
    assert_true(*p < end);
    if (!(**p & 0x80))
        return *(*p)++;
    assert_true(end - *p >= 4);
    size_t n = ((size_t)((*p)[0] & 0x7f) << 24) | (size_t)(*p)[1] << 16 | (size_t)(*p)[2] << 8 | (*p)[3];
    *p += 4;
    return n;
}

static size_t decode_params(const struct buf *b, size_t start, struct pair *pairs, size_t max,
                            size_t *ret_records)
{
    const uint8_t *d = (const uint8_t *)b->data + start, *end = (const uint8_t *)b->data + b->len;
    size_t n = 0, records = 0;
    for (;;) {
        assert_true(end - d >= 8);
        assert_int_equal(d[0], 1);
        assert_int_equal(d[1], FASTCGI_PARAMS);
        size_t clen = (size_t)d[4] << 8 | d[5], pad = d[6];
        assert_int_equal((clen + pad) % 8, 0);
        d += 8;
        if (clen == 0)
            break;
        records++;
        const uint8_t *p = d, *rend = d + clen;
        while (p < rend) {
            size_t nl = read_len(&p, rend), vl = read_len(&p, rend);
            assert_true((size_t)(rend - p) >= nl + vl);   /* whole in this record */
            assert_true(n < max && nl < sizeof(pairs[n].name));
            memcpy(pairs[n].name, p, nl);
            pairs[n].name[nl] = '\0';
            pairs[n].value = (char *)p + nl;
            pairs[n].value_len = vl;
            p += nl + vl;
            n++;
        }
        d = rend + pad;
    }
    assert_ptr_equal(d, end);
    *ret_records = records;
    return n;
}

static void test_params_split(void **state)
{
    (void)state;
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 20);
    static char value[30000];
    static char big[65536];
    memset(value, 'x', sizeof(value));
    struct fastcgi_params p;
    fastcgi_params_init(&p, &b, 3);
    char name[16];
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "V%d", i);
        assert_int_equal(fastcgi_params_add(&p, name, strlen(name), value, sizeof(value) - (size_t)i), 0);
    }
    /* the largest pair that fits one record: 1+4+1+65529 = 65535 */
    assert_int_equal(fastcgi_params_add(&p, "L", 1, big, 65529), 0);
    assert_int_equal(fastcgi_params_end(&p), 0);
    struct pair pairs[16];
    size_t records;
    size_t n = decode_params(&b, 0, pairs, 16, &records);
    assert_int_equal(n, 8);
    assert_int_equal(records, 5);   /* 2 + 2 + 2 + 1 pairs of 30 KB, then L alone */
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "V%d", i);
        assert_string_equal(pairs[i].name, name);
        assert_int_equal(pairs[i].value_len, sizeof(value) - (size_t)i);
    }
    assert_int_equal(pairs[7].value_len, 65529);

    /* a pair too large for any record is refused, and the error sticks */
    fastcgi_params_init(&p, &b, 3);
    assert_int_equal(fastcgi_params_add(&p, "L", 1, big, 65530), -E2BIG);
    assert_int_equal(fastcgi_params_add_str(&p, "A", "b"), -E2BIG);
    assert_int_equal(fastcgi_params_end(&p), -E2BIG);

    /* a full buffer is reported, not overrun */
    _cleanup_(buf_donep) struct buf small = BUF_INIT(64);
    fastcgi_params_init(&p, &small, 1);
    assert_int_equal(fastcgi_params_add(&p, "N", 1, value, 100), -ENOBUFS);
    assert_int_equal(fastcgi_params_end(&p), -ENOBUFS);
}

static void test_stdin_split(void **state)
{
    (void)state;
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 20);
    static char body[150000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7);
    assert_int_equal(fastcgi_stdin_write(&b, 9, body, sizeof(body)), 0);
    const uint8_t *d = (const uint8_t *)b.data;
    size_t off = 0, got = 0;
    static const size_t want[] = { 65535, 65535, 18930 };
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(d[off + 1], FASTCGI_STDIN);
        assert_int_equal(d[off + 3], 9);
        size_t clen = (size_t)d[off + 4] << 8 | d[off + 5];
        assert_int_equal(clen, want[k]);
        assert_memory_equal(d + off + 8, body + got, clen);
        got += clen;
        off += 8 + clen + d[off + 6];
    }
    assert_int_equal(off, b.len);
    _cleanup_(buf_donep) struct buf small = BUF_INIT(100);
    assert_int_equal(fastcgi_stdin_write(&small, 1, body, 200), -ENOBUFS);
    assert_int_equal(small.len, 0);
}

/* ---- CGI params ---- */

static const struct pair *find(const struct pair *pairs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (streq(pairs[i].name, name))
            return &pairs[i];
    return NULL;
}

#define ASSERT_VAR(name, want)                                                    \
    do {                                                                          \
        const struct pair *v_ = find(pairs, n, name);                             \
        assert_non_null(v_);                                                      \
        assert_int_equal(v_->value_len, strlen(want));                            \
        assert_memory_equal(v_->value, want, strlen(want));                       \
    } while (0)

#define H(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void test_params_build(void **state)
{
    (void)state;
    static const struct fastcgi_request_header headers[] = {
        H("Host", "evil.example"),   /* an absolute-form target named another authority */
        H("User-Agent", "curl/8"),
        H("Proxy", "http://evil:8080"),
        H("Content-Type", "application/x-www-form-urlencoded"),
        H("Content-Length", "11"),
        H("X_Real_IP", "6.6.6.6"),
        H("X-Real-IP", "203.0.113.7"),
        H("Cookie", "a=1"),
        H("accept", "text/html"),
        H("Cookie", "b=2"),
        H("X-Multi", "1"),
        H("x-multi", "2"),
    };
    struct fastcgi_request_info info = {
        .method = "POST", .method_len = 4,
        .request_uri = "/a.php/b/c?x=1&y", .request_uri_len = 16,
        .query = "x=1&y", .query_len = 5,
        .document_root = "/site/public",
        .script_name = "/a.php",
        .path_info = "/b/c?junk", .path_info_len = 4,
        .server_protocol = "HTTP/1.1",
        .https = true,
        .remote_addr = "2001:db8::1", .remote_port = 54321,
        .server_name = "blog.example", .server_port = 443,
        .host = "blog.example:443", .host_len = 16,
        .content_type = "application/x-www-form-urlencoded", .content_type_len = 33,
        .has_content_length = true, .content_length = 11,
        .headers = headers, .n_headers = ARRAY_SIZE(headers),
    };
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(fastcgi_params_build(&b, 1, &info), 0);
    struct pair pairs[64];
    size_t records;
    size_t n = decode_params(&b, 0, pairs, 64, &records);
    ASSERT_VAR("SCRIPT_FILENAME", "/site/public/a.php");
    ASSERT_VAR("SCRIPT_NAME", "/a.php");
    ASSERT_VAR("PATH_INFO", "/b/c");
    assert_null(find(pairs, n, "PATH_TRANSLATED"));   /* php-fpm would run it */
    ASSERT_VAR("DOCUMENT_ROOT", "/site/public");
    ASSERT_VAR("REQUEST_URI", "/a.php/b/c?x=1&y");
    ASSERT_VAR("QUERY_STRING", "x=1&y");
    ASSERT_VAR("REQUEST_METHOD", "POST");
    ASSERT_VAR("SERVER_PROTOCOL", "HTTP/1.1");
    ASSERT_VAR("GATEWAY_INTERFACE", "CGI/1.1");
    ASSERT_VAR("SERVER_SOFTWARE", "berth/" BERTH_VERSION);
    ASSERT_VAR("HTTPS", "on");
    ASSERT_VAR("REQUEST_SCHEME", "https");
    ASSERT_VAR("REMOTE_ADDR", "2001:db8::1");
    ASSERT_VAR("REMOTE_PORT", "54321");
    ASSERT_VAR("SERVER_NAME", "blog.example");
    ASSERT_VAR("SERVER_PORT", "443");
    ASSERT_VAR("CONTENT_TYPE", "application/x-www-form-urlencoded");
    ASSERT_VAR("CONTENT_LENGTH", "11");
    ASSERT_VAR("REDIRECT_STATUS", "200");
    ASSERT_VAR("HTTP_HOST", "blog.example:443");   /* the routed authority, not the Host field */
    ASSERT_VAR("HTTP_USER_AGENT", "curl/8");
    ASSERT_VAR("HTTP_X_REAL_IP", "203.0.113.7");   /* not the underscore spelling */
    ASSERT_VAR("HTTP_COOKIE", "a=1; b=2");
    ASSERT_VAR("HTTP_ACCEPT", "text/html");
    ASSERT_VAR("HTTP_X_MULTI", "1, 2");
    assert_null(find(pairs, n, "HTTP_PROXY"));
    assert_null(find(pairs, n, "HTTP_CONTENT_TYPE"));
    assert_null(find(pairs, n, "HTTP_CONTENT_LENGTH"));
    assert_null(find(pairs, n, "SERVER_ADDR"));
    /* each variable once */
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            assert_string_not_equal(pairs[i].name, pairs[k].name);

    /* plain HTTP, no body, no path info */
    info.https = false;
    info.path_info_len = 0;
    info.content_type = NULL;
    info.has_content_length = false;
    info.n_headers = 1;
    info.query = NULL;
    info.query_len = 0;
    buf_clear(&b);
    assert_int_equal(fastcgi_params_build(&b, 1, &info), 0);
    n = decode_params(&b, 0, pairs, 64, &records);
    assert_null(find(pairs, n, "HTTPS"));
    assert_null(find(pairs, n, "PATH_TRANSLATED"));
    assert_null(find(pairs, n, "CONTENT_TYPE"));
    assert_null(find(pairs, n, "CONTENT_LENGTH"));
    ASSERT_VAR("PATH_INFO", "");
    ASSERT_VAR("QUERY_STRING", "");
    ASSERT_VAR("REQUEST_SCHEME", "http");

    info.script_name = NULL;
    assert_int_equal(fastcgi_params_build(&b, 1, &info), -EINVAL);
}

/* ---- response records ---- */

struct resp_case {
    const char *name;
    const char *raw;
    size_t len;
    int want;                 /* 1 ended, 0 incomplete, or the error */
    const char *out;          /* STDOUT bytes */
    const char *err;          /* STDERR kept */
    uint32_t app_status;
    uint8_t protocol_status;
    size_t max_stderr;
};

#define RAW(s) .raw = (s), .len = sizeof(s) - 1

static const struct resp_case resp_cases[] = {
    { "simple", RAW("\x01\x06\x00\x01\x00/\x01\x00""Content-type: text/html; charset=UTF-8\x0d\x0a\x0d\x0ahello\x00\x01\x06\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
      1, "Content-type: text/html; charset=UTF-8\r\n\r\nhello", "", 0, 0, 1024 },
    { "stderr", RAW("\x01\x07\x00\x01\x00#\x05\x00PHP message: PHP Fatal error:  boom\x00\x00\x00\x00\x00\x01\x06\x00\x01\x00M\x03\x00Status: 500 Internal Server Error\x0d\x0a""Content-type: text/html; charset=UTF-8\x0d\x0a\x0d\x0a\x00\x00\x00\x01\x06\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\xff\x00\x00\x00\x00"),
      1, "Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\n",
      "PHP message: PHP Fatal error:  boom", 255, 0, 1024 },
    { "stderr bounded", RAW("\x01\x07\x00\x01\x00#\x05\x00PHP message: PHP Fatal error:  boom\x00\x00\x00\x00\x00\x01\x06\x00\x01\x00M\x03\x00Status: 500 Internal Server Error\x0d\x0a""Content-type: text/html; charset=UTF-8\x0d\x0a\x0d\x0a\x00\x00\x00\x01\x06\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\xff\x00\x00\x00\x00"),
      1, "Status: 500 Internal Server Error\r\nContent-type: text/html; charset=UTF-8\r\n\r\n",
      "PHP message", 255, 0, 11 },
    { "multi", RAW("\x01\x06\x00\x01\x00\x1e\x02\x00""Content-type: text/plain\x0d\x0a\x0d\x0a""ab\x00\x00\x01\x06\x00\x01\x00\x02\x00\x00""cd\x01\x06\x00\x01\x00\x03\x07\x00""efg\x00\x00\x00\x00\x00\x00\x00\x01\x06\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00"),
      1, "Content-type: text/plain\r\n\r\nabcdefg", "", 3, 0, 1024 },
    { "overloaded", RAW("\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00"),
      1, "", "", 0, FASTCGI_OVERLOADED, 1024 },
    { "end padded", RAW("\x01\x03\x00\x01\x00\x08\x03\x00\x01\x02\x03\x04\x00\x00\x00\x00\x00\x00\x00"),
      1, "", "", 0x01020304, 0, 1024 },
    { "truncated", RAW("\x01\x06\x00\x01\x00\x05\x03\x00hel"), 0, "hel", "", 0, 0, 1024 },
    { "end truncated", RAW("\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00"), 0, "", "", 0, 0, 1024 },
    { "bad version", RAW("\x02\x06\x00\x01\x00\x01\x07\x00x\x00\x00\x00\x00\x00\x00\x00"), -EPROTO, "" },
    { "bad id", RAW("\x01\x06\x00\x02\x00\x01\x07\x00x\x00\x00\x00\x00\x00\x00\x00"), -EPROTO, "" },
    { "management", RAW("\x01\x0b\x00\x00\x00\x08\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00"), -EPROTO, "" },
    { "data type", RAW("\x01\x08\x00\x01\x00\x01\x07\x00x\x00\x00\x00\x00\x00\x00\x00"), -EPROTO, "" },
    { "stdin type", RAW("\x01\x05\x00\x01\x00\x00\x00\x00"), -EPROTO, "" },
    { "unknown type", RAW("\x01\x63\x00\x01\x00\x00\x00\x00"), -EPROTO, "" },
    { "end short", RAW("\x01\x03\x00\x01\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00"), -EPROTO, "" },
    { "after close", RAW("\x01\x06\x00\x01\x00\x02\x06\x00ok\x00\x00\x00\x00\x00\x00\x01\x06\x00\x01\x00\x00\x00\x00\x01\x06\x00\x01\x00\x01\x07\x00x\x00\x00\x00\x00\x00\x00\x00"),
      -EPROTO, "ok" },
    { "after end", RAW("\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), -EPROTO, "" },
};

struct resp_result {
    int r;
    char out[512];
    size_t out_len;
    char err[512];
    size_t err_len;
    uint32_t app_status;
    uint8_t protocol_status;
};

/* Feeds raw cut at the given points; each piece in its own exact-size allocation. */
static void resp_run(const struct resp_case *c, const size_t *cuts, size_t n_cuts,
                     struct resp_result *res)
{
    struct fastcgi_response r;
    fastcgi_response_init(&r, 1, c->max_stderr);
    memset(res, 0, sizeof(*res));
    size_t pos = 0;
    for (size_t k = 0; k <= n_cuts && res->r >= 0; k++) {
        size_t end = k < n_cuts ? cuts[k] : c->len;
        if (end <= pos)
            continue;
        size_t plen = end - pos;
        char *piece = malloc(plen);
        assert_non_null(piece);
        memcpy(piece, c->raw + pos, plen);
        const char *p = piece;
        while (plen > 0) {
            enum fastcgi_event ev;
            const char *d;
            size_t dl;
            int e = fastcgi_response_parse(&r, p, plen, &ev, &d, &dl);
            if (e < 0) {
                res->r = e;
                break;
            }
            assert_true(e > 0 && (size_t)e <= plen);
            assert_int_equal(res->r, 0);   /* nothing is accepted after END */
            if (ev == FASTCGI_EVENT_STDOUT) {
                assert_true(d >= p && d + dl <= p + e);
                assert_true(res->out_len + dl <= sizeof(res->out));
                memcpy(res->out + res->out_len, d, dl);
                res->out_len += dl;
            } else if (ev == FASTCGI_EVENT_END) {
                assert_true(r.ended);
                res->r = 1;
            }
            p += e;
            plen -= (size_t)e;
        }
        free(piece);
        pos = end;
    }
    if (res->r == 1) {
        res->app_status = r.app_status;
        res->protocol_status = r.protocol_status;
    }
    res->err_len = r.stderr_buf.len;
    memcpy(res->err, r.stderr_buf.data ? r.stderr_buf.data : "", res->err_len);
    fastcgi_response_done(&r);
}

static void resp_check(const struct resp_case *c, const struct resp_result *res)
{
    if (res->r != c->want)
        fail_msg("case \"%s\": got %d, want %d", c->name, res->r, c->want);
    assert_int_equal(res->out_len, strlen(c->out));
    assert_memory_equal(res->out, c->out, res->out_len);
    if (c->want >= 0) {
        assert_int_equal(res->err_len, strlen(c->err));
        assert_memory_equal(res->err, c->err, res->err_len);
    }
    if (c->want == 1) {
        assert_int_equal(res->app_status, c->app_status);
        assert_int_equal(res->protocol_status, c->protocol_status);
    }
}

static void test_response_cases(void **state)
{
    (void)state;
    srand(5);
    for (size_t i = 0; i < ARRAY_SIZE(resp_cases); i++) {
        const struct resp_case *c = &resp_cases[i];
        struct resp_result res;
        resp_run(c, NULL, 0, &res);
        resp_check(c, &res);

        size_t *cuts = malloc((c->len + 1) * sizeof(size_t));
        assert_non_null(cuts);
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k + 1;
        resp_run(c, cuts, c->len, &res);
        resp_check(c, &res);

        for (int round = 0; round < 200; round++) {
            size_t n = (size_t)rand() % 6, last = 0;
            for (size_t k = 0; k < n; k++) {
                last += (size_t)rand() % (c->len / 3 + 1);
                cuts[k] = MIN(last, c->len);
            }
            resp_run(c, cuts, n, &res);
            resp_check(c, &res);
        }
        free(cuts);
    }
}

static void test_response_after_end(void **state)
{
    (void)state;
    struct fastcgi_response r;
    fastcgi_response_init(&r, 1, 16);
    enum fastcgi_event ev;
    const char *d;
    size_t dl;
    static const char end[] = "\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00";
    assert_int_equal(fastcgi_response_parse(&r, end, 8, &ev, &d, &dl), 8);
    assert_int_equal(ev, FASTCGI_EVENT_NONE);
    assert_int_equal(fastcgi_response_parse(&r, end + 8, 8, &ev, &d, &dl), 8);
    assert_int_equal(ev, FASTCGI_EVENT_END);
    assert_int_equal(r.app_status, 7);
    assert_int_equal(fastcgi_response_parse(&r, end, 1, &ev, &d, &dl), -EPROTO);
    fastcgi_response_done(&r);
    fastcgi_response_done(NULL);
}

/* ---- CGI head ---- */

struct head_case {
    const char *raw;
    size_t len;
    int want;                 /* head length, 0, -502 */
    int status;
    enum fastcgi_cgi_kind kind;
    const char *headers;      /* "name=value|name=value" as passed on */
    const char *reason;
};

static const struct head_case head_cases[] = {
    { RAW("Content-type: text/html; charset=UTF-8\r\n\r\nbody"), 42, 200, FASTCGI_CGI_DOCUMENT,
      "Content-type=text/html; charset=UTF-8" },
    { RAW("Status: 404 Not Found\r\nContent-type: text/html\r\n\r\n"), 50, 404, FASTCGI_CGI_DOCUMENT,
      "Content-type=text/html", "Not Found" },
    { RAW("Status: 503\nRetry-After: 5\n\nx"), 28, 503, FASTCGI_CGI_DOCUMENT, "Retry-After=5", "" },
    { RAW("Location: /login\r\n\r\n"), 20, 302, FASTCGI_CGI_LOCAL_REDIRECT, "Location=/login" },
    { RAW("Location: //evil.example/\r\n\r\n"), 29, 302, FASTCGI_CGI_CLIENT_REDIRECT,
      "Location=//evil.example/" },
    { RAW("Location: https://example.com/\r\n\r\n"), 34, 302, FASTCGI_CGI_CLIENT_REDIRECT,
      "Location=https://example.com/" },
    { RAW("Status: 301 Moved Permanently\r\nLocation: /new\r\nContent-type: text/html\r\n\r\n"), 74,
      301, FASTCGI_CGI_CLIENT_REDIRECT, "Location=/new|Content-type=text/html", "Moved Permanently" },
    { RAW("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
          "Keep-Alive: 5\r\nUpgrade: h2c\r\nTE: x\r\nTrailer: y\r\nProxy-Connection: z\r\n"
          "Content-Length: 3\r\nContent-Length: 3\r\nX-Empty:\r\n\r\nabc"), 200, 200, FASTCGI_CGI_DOCUMENT,
      "Set-Cookie=a=1|Set-Cookie=b=2|X-Empty=" },
    { RAW("X-Powered-By:   PHP/8.2 \t\r\n\r\n"), 29, 200, FASTCGI_CGI_DOCUMENT,
      "X-Powered-By=PHP/8.2" },
    { RAW("Content-type: text/html\r\n"), 0 },
    { RAW("Content-type: text/html\r\n\r"), 0 },
    { RAW(""), 0 },
    /* refused */
    { RAW("\r\n"), -502 },
    { RAW("Status: 99 x\r\n\r\n"), -502 },
    { RAW("Status: 600\r\n\r\n"), -502 },
    { RAW("Status: 101 Switching\r\n\r\n"), -502 },
    { RAW("Status: 2000\r\n\r\n"), -502 },
    { RAW("Status: 20x\r\n\r\n"), -502 },
    { RAW("Status: 200\r\nStatus: 404\r\n\r\n"), -502 },
    { RAW("Location: /a\r\nLocation: /b\r\n\r\n"), -502 },
    { RAW("Location:\r\n\r\n"), -502 },
    { RAW("Content-Type: a\r\nContent-type: b\r\n\r\n"), -502 },
    { RAW("Content-Length: 3\r\nContent-Length: 4\r\n\r\n"), -502 },
    { RAW("Content-Length: -1\r\n\r\n"), -502 },
    { RAW("Content-Length: 1234567890123456789\r\n\r\n"), -502 },
    { RAW("NoColon\r\n\r\n"), -502 },
    { RAW(": v\r\n\r\n"), -502 },
    { RAW("Bad Name: v\r\n\r\n"), -502 },
    { RAW("X: a\r\n folded\r\n\r\n"), -502 },
    { RAW("X: a\rb\r\n\r\n"), -502 },
    { RAW("X: a\x01\r\n\r\n"), -502 },
    { RAW("X: a\x7f\r\n\r\n"), -502 },
};

static void head_check(const struct head_case *c, int r, const struct fastcgi_cgi_head *h)
{
    if (r != c->want)
        fail_msg("head \"%.*s\": got %d, want %d", (int)c->len, c->raw, r, c->want);
    if (r <= 0)
        return;
    assert_int_equal(h->status, c->status);
    assert_int_equal(h->kind, c->kind);
    char list[1024] = "";
    for (size_t i = 0; i < h->n_headers; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%.*s=%.*s", i ? "|" : "",
                 (int)h->headers[i].name_len, h->headers[i].name, (int)h->headers[i].value_len,
                 h->headers[i].value);
    assert_string_equal(list, c->headers);
    if (c->reason) {
        assert_non_null(h->reason);
        assert_int_equal(h->reason_len, strlen(c->reason));
        assert_memory_equal(h->reason, c->reason, h->reason_len);
    }
}

static void test_cgi_head_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(head_cases); i++) {
        const struct head_case *c = &head_cases[i];
        struct fastcgi_cgi_parser p;
        struct fastcgi_cgi_head h;
        char *b = malloc(c->len + 1);
        memcpy(b, c->raw, c->len);
        fastcgi_cgi_parser_init(&p, 0);
        head_check(c, fastcgi_cgi_head_parse(&p, b, c->len, &h), &h);
        free(b);

        /* grown one byte at a time, in a fresh exact-size buffer each time */
        fastcgi_cgi_parser_init(&p, 0);
        int r = 0;
        for (size_t n = 0; n <= c->len && r == 0; n++) {
            b = malloc(n + 1);
            memcpy(b, c->raw, n);
            r = fastcgi_cgi_head_parse(&p, b, n, &h);
            if (r != 0 || n == c->len) {
                head_check(c, r, &h);
                r = r ? r : 1;
            }
            free(b);
        }
    }
}

static void test_cgi_head_limits(void **state)
{
    (void)state;
    struct fastcgi_cgi_parser p;
    struct fastcgi_cgi_head h;
    static const char head[] = "Content-type: text/html\r\nX-A: 0123456789\r\n\r\n";
    size_t len = sizeof(head) - 1;
    fastcgi_cgi_parser_init(&p, len);
    assert_int_equal(fastcgi_cgi_head_parse(&p, head, len, &h), (int)len);
    fastcgi_cgi_parser_init(&p, len - 1);
    assert_int_equal(fastcgi_cgi_head_parse(&p, head, len, &h), -502);
    fastcgi_cgi_parser_init(&p, len - 1);
    assert_int_equal(fastcgi_cgi_head_parse(&p, head, len - 2, &h), 0);
    assert_int_equal(fastcgi_cgi_head_parse(&p, head, len - 1, &h), -502);

    /* more fields than FASTCGI_MAX_HEADERS */
    _cleanup_(buf_donep) struct buf b = BUF_INIT(1 << 16);
    for (int i = 0; i <= FASTCGI_MAX_HEADERS; i++)
        assert_int_equal(buf_printf(&b, "X-%d: v\r\n", i), 0);
    fastcgi_cgi_parser_init(&p, 0);
    assert_int_equal(fastcgi_cgi_head_parse(&p, b.data, b.len, &h), -502);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_request),
        cmocka_unit_test(test_long_lengths),
        cmocka_unit_test(test_params_split),
        cmocka_unit_test(test_stdin_split),
        cmocka_unit_test(test_params_build),
        cmocka_unit_test(test_response_cases),
        cmocka_unit_test(test_response_after_end),
        cmocka_unit_test(test_cgi_head_cases),
        cmocka_unit_test(test_cgi_head_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

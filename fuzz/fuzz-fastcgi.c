/* libFuzzer target for the FastCGI response parsers (src/fastcgi): each input is a
 * record stream parsed whole and cut at points the fuzzer chooses (each piece in
 * its own exact-size allocation, so ASan sees any read past len); both ways must
 * hand over the same STDOUT bytes, STDERR and END_REQUEST, or fail alike. The
 * STDOUT bytes then go through the CGI head parser, whole and grown byte by byte,
 * which must agree too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastcgi/fastcgi.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); abort(); } } while (0)

struct outcome {
    int r;                 /* 1 ended, 0 incomplete, negative error */
    struct buf out;
    struct buf err;
    uint64_t dropped;
    uint32_t app_status;
    uint8_t protocol_status;
};

static void run(const uint8_t *d, size_t n, const size_t *cuts, size_t n_cuts, size_t max_stderr,
                struct outcome *o)
{
    struct fastcgi_response r;
    fastcgi_response_init(&r, 1, max_stderr);
    o->r = 0;
    buf_init(&o->out, 1 << 20);
    size_t pos = 0;
    for (size_t k = 0; k <= n_cuts && o->r >= 0; k++) {
        size_t end = k < n_cuts ? cuts[k] : n;
        if (end <= pos)
            continue;
        size_t len = end - pos;
        char *piece = malloc(len);
        CHECK(piece);
        memcpy(piece, d + pos, len);
        const char *p = piece;
        while (len > 0) {
            enum fastcgi_event ev;
            const char *data;
            size_t dl;
            int e = fastcgi_response_parse(&r, p, len, &ev, &data, &dl);
            if (e < 0) {
                o->r = e;
                break;
            }
            CHECK(e > 0 && (size_t)e <= len);
            if (ev == FASTCGI_EVENT_STDOUT) {
                CHECK(data >= p && data + dl <= p + e && dl > 0);
                CHECK(buf_append(&o->out, data, dl) == 0);
            } else if (ev == FASTCGI_EVENT_END) {
                CHECK(r.ended);
                o->r = 1;
            }
            p += e;
            len -= (size_t)e;
        }
        free(piece);
        pos = end;
    }
    CHECK(r.stderr_buf.len <= max_stderr);
    CHECK(r.stdout_total == o->out.len);
    o->dropped = r.stderr_dropped;
    o->app_status = r.app_status;
    o->protocol_status = r.protocol_status;
    o->err = r.stderr_buf;
    r.stderr_buf = (struct buf){ 0 };
    fastcgi_response_done(&r);
}

static void head_check(const char *body, size_t n)
{
    struct fastcgi_cgi_parser pa, pb;
    struct fastcgi_cgi_head ha, hb;
    fastcgi_cgi_parser_init(&pa, 512);
    fastcgi_cgi_parser_init(&pb, 512);
    char *whole = malloc(n ? n : 1);
    CHECK(whole);
    memcpy(whole, body, n);
    int ra = fastcgi_cgi_head_parse(&pa, whole, n, &ha);
    int rb = 0;
    char *grown = NULL;
    for (size_t k = 0; k <= n && rb == 0; k++) {
        free(grown);
        grown = malloc(k ? k : 1);
        CHECK(grown);
        memcpy(grown, body, k);
        rb = fastcgi_cgi_head_parse(&pb, grown, k, &hb);
    }
    CHECK(ra == rb);
    CHECK(ra == 0 || ra == -502 || (ra > 0 && (size_t)ra <= n && ra <= 512));
    if (ra > 0) {
        CHECK(ha.status == hb.status && ha.status >= 200 && ha.status <= 599);
        CHECK(ha.kind == hb.kind && ha.n_headers == hb.n_headers);
        CHECK(ha.has_content_length == hb.has_content_length && ha.content_length == hb.content_length);
        for (size_t i = 0; i < ha.n_headers; i++) {
            CHECK(ha.headers[i].name - whole == hb.headers[i].name - grown);
            CHECK(ha.headers[i].name_len == hb.headers[i].name_len && ha.headers[i].name_len > 0);
            CHECK(ha.headers[i].value_len == hb.headers[i].value_len);
            CHECK(ha.headers[i].value + ha.headers[i].value_len <= whole + ra);
            CHECK(memchr(ha.headers[i].value, '\n', ha.headers[i].value_len) == NULL);
            CHECK(memchr(ha.headers[i].value, '\r', ha.headers[i].value_len) == NULL);
        }
    }
    free(whole);
    free(grown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    /* data[0]: stderr bound; data[1..3]: three cut points */
    size_t max_stderr = data[0];
    size_t cuts[3];
    const uint8_t *d = data + 4;
    size_t n = size - 4;
    for (int k = 0; k < 3; k++)
        cuts[k] = n ? (size_t)data[1 + k] * (n + 1) / 256 : 0;
    if (cuts[1] < cuts[0])
        cuts[1] = cuts[0];
    if (cuts[2] < cuts[1])
        cuts[2] = cuts[1];

    struct outcome a, b;
    run(d, n, NULL, 0, max_stderr, &a);
    run(d, n, cuts, 3, max_stderr, &b);
    CHECK(a.r == b.r);
    CHECK(a.r == 1 || a.r == 0 || a.r == -EPROTO);
    CHECK(a.out.len == b.out.len && (a.out.len == 0 || memcmp(a.out.data, b.out.data, a.out.len) == 0));
    CHECK(a.err.len == b.err.len && (a.err.len == 0 || memcmp(a.err.data, b.err.data, a.err.len) == 0));
    CHECK(a.dropped == b.dropped);
    if (a.r == 1)
        CHECK(a.app_status == b.app_status && a.protocol_status == b.protocol_status);
    head_check(a.out.data ? a.out.data : "", MIN(a.out.len, 600));
    buf_done(&a.out);
    buf_done(&b.out);
    buf_done(&a.err);
    buf_done(&b.err);
    return 0;
}

/* Tests for src/front/h2-head.c: HTTP/2 request fields into an HTTP/1.1 head, and
 * the answer fields HTTP/2 refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "front/front-internal.h"
#include "http/http1.h"

static void add(struct front_h2_head *h, const char *name, const char *value)
{
    assert_int_equal(front_h2_head_field(h, name, strlen(name), value, strlen(value)), 0);
}

static void test_basic(void **state)
{
    (void)state;
    struct front_h2_head h;
    front_h2_head_init(&h, 65536);
    add(&h, ":method", "GET");
    add(&h, ":scheme", "https");
    add(&h, ":authority", "Blog.example:443");
    add(&h, ":path", "/a?b=1");
    add(&h, "host", "other.example");
    add(&h, "cookie", "a=1");
    add(&h, "user-agent", "t");
    add(&h, "cookie", "b=2");
    add(&h, "te", "trailers");
    add(&h, "expect", "100-continue");
    assert_int_equal(front_h2_head_finish(&h, false), 0);
    assert_string_equal(h.head.data, "GET /a?b=1 HTTP/1.1\r\nHost: Blog.example:443\r\nuser-agent: t\r\n"
                                     "cookie: a=1; b=2\r\n\r\n");
    /* And the HTTP/1.1 parser takes it as the same request. */
    struct http1_parser p;
    struct http1_request req;
    http1_parser_init(&p, NULL);
    assert_int_equal(http1_parse_request(&p, h.head.data, h.head.len, &req), (int)h.head.len);
    assert_int_equal(req.method, HTTP_GET);
    assert_int_equal(req.host_len, 16);
    assert_int_equal(req.keep_alive, true);
    front_h2_head_done(&h);
}

static void test_body_framing(void **state)
{
    (void)state;
    struct front_h2_head h;
    front_h2_head_init(&h, 65536);
    add(&h, ":method", "POST");
    add(&h, ":path", "/up");
    add(&h, ":authority", "x");
    assert_int_equal(front_h2_head_finish(&h, true), 0);
    assert_non_null(strstr(h.head.data, "transfer-encoding: chunked\r\n"));
    front_h2_head_done(&h);

    front_h2_head_init(&h, 65536);
    add(&h, ":method", "POST");
    add(&h, ":path", "/up");
    add(&h, ":authority", "x");
    add(&h, "content-length", "5");
    assert_int_equal(front_h2_head_finish(&h, true), 0);
    assert_null(strstr(h.head.data, "transfer-encoding"));
    assert_non_null(strstr(h.head.data, "content-length: 5\r\n"));
    front_h2_head_done(&h);
}

static void test_host_without_authority(void **state)
{
    (void)state;
    struct front_h2_head h;
    front_h2_head_init(&h, 65536);
    add(&h, ":method", "GET");
    add(&h, ":path", "/");
    add(&h, "host", "h.example");
    assert_int_equal(front_h2_head_finish(&h, false), 0);
    assert_string_equal(h.head.data, "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n");
    front_h2_head_done(&h);
}

/* Past the limit the head is never finished, and the HTTP/1.1 parser says 431. */
static void test_too_big(void **state)
{
    (void)state;
    struct front_h2_head h;
    front_h2_head_init(&h, 8192);
    add(&h, ":method", "GET");
    add(&h, ":path", "/");
    add(&h, ":authority", "x");
    char big[3000];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    for (int i = 0; i < 4; i++)
        add(&h, "x-big", big);
    assert_true(h.too_big);
    assert_int_equal(front_h2_head_finish(&h, false), 0);
    assert_true(h.head.len > 8192);
    assert_null(strstr(h.head.data, "\r\n\r\n"));
    struct http1_parser p;
    struct http1_request req;
    struct http1_limits lim = { 8192, 8192, 100 };
    http1_parser_init(&p, &lim);
    assert_int_equal(http1_parse_request(&p, h.head.data, h.head.len, &req), -431);
    front_h2_head_done(&h);
}

static void test_answer_fields(void **state)
{
    (void)state;
    assert_false(front_h2_answer_field_passes("Connection", 10));
    assert_false(front_h2_answer_field_passes("transfer-encoding", 17));
    assert_false(front_h2_answer_field_passes("Keep-Alive", 10));
    assert_false(front_h2_answer_field_passes("Upgrade", 7));
    assert_true(front_h2_answer_field_passes("Content-Length", 14));
    assert_true(front_h2_answer_field_passes("Set-Cookie", 10));
    assert_true(front_h2_answer_field_passes("te-x", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_body_framing),
        cmocka_unit_test(test_host_without_authority),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_answer_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

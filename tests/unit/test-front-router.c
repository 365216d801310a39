/* Tests for src/front/router.c: the host map (incl. 100,000 domains), host
 * normalisation, and the control-message encoding of routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/front-internal.h"

static void test_map_basic(void **state)
{
    struct front_map m;
    front_map_init(&m);
    int a = 1, b = 2;
    void *old = &a;
    assert_null(front_map_get(&m, "x", 1));
    assert_int_equal(front_map_put(&m, "blog.localhost", 14, &a, &old), 0);
    assert_null(old);
    assert_ptr_equal(front_map_get(&m, "blog.localhost", 14), &a);
    assert_null(front_map_get(&m, "blog.localhos", 13));
    assert_int_equal(front_map_put(&m, "blog.localhost", 14, &b, &old), 0);
    assert_ptr_equal(old, &a);
    assert_int_equal(m.len, 1);
    /* Deleting with the wrong value must leave a newer owner alone. */
    assert_false(front_map_del(&m, "blog.localhost", 14, &a));
    assert_true(front_map_del(&m, "blog.localhost", 14, &b));
    assert_null(front_map_get(&m, "blog.localhost", 14));
    assert_int_equal(m.len, 0);
    front_map_done(&m);
}

static void test_map_100k_domains(void **state)
{
    enum { N = 100000 };
    struct front_map m;
    front_map_init(&m);
    char(*names)[32] = malloc(sizeof(*names) * N);
    assert_non_null(names);
    for (int i = 0; i < N; i++) {
        int n = snprintf(names[i], sizeof(names[i]), "site%d.example.com", i);
        assert_int_equal(front_map_put(&m, names[i], (size_t)n, names[i], NULL), 0);
    }
    assert_int_equal(m.len, N);
    /* O(1): the longest probe run stays short at load <= 1/2. */
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < m.cap; i++) {
        run = m.slots[i].hash ? run + 1 : 0;
        longest = MAX(longest, run);
    }
    assert_true(longest < 64);
    uint64_t t0 = now_ms();
    for (int k = 0; k < 10; k++)
        for (int i = 0; i < N; i++)
            assert_ptr_equal(front_map_get(&m, names[i], strlen(names[i])), names[i]);
    uint64_t dt = now_ms() - t0;
    /* One million lookups: well under a second even under sanitizers. */
    assert_true(dt < 3000);
    assert_null(front_map_get(&m, "site100000.example.com", 22));
    /* Delete every other one; the rest must stay reachable (backward shift). */
    for (int i = 0; i < N; i += 2)
        assert_true(front_map_del(&m, names[i], strlen(names[i]), NULL));
    for (int i = 0; i < N; i++) {
        void *v = front_map_get(&m, names[i], strlen(names[i]));
        if (i % 2)
            assert_ptr_equal(v, names[i]);
        else
            assert_null(v);
    }
    front_map_done(&m);
    free(names);
}

static void norm_ok(const char *in, const char *want)
{
    char out[FRONT_HOST_MAX + 3];
    size_t n;
    assert_int_equal(front_host_normalize(in, strlen(in), out, &n), 0);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void norm_bad(const char *in)
{
    char out[FRONT_HOST_MAX + 3];
    size_t n;
    assert_int_equal(front_host_normalize(in, strlen(in), out, &n), -EINVAL);
}

static void test_host_normalize(void **state)
{
    norm_ok("blog.localhost", "blog.localhost");
    norm_ok("BLOG.LocalHost", "blog.localhost");
    norm_ok("blog.localhost:8080", "blog.localhost");
    norm_ok("blog.localhost.", "blog.localhost");
    norm_ok("blog.localhost.:80", "blog.localhost");
    norm_ok("blog.localhost:", "blog.localhost");
    norm_ok("[::1]:8080", "[::1]");
    norm_ok("[FE80::1]", "[fe80::1]");
    norm_ok("127.0.0.1:80", "127.0.0.1");
    norm_bad("");
    norm_bad(":80");
    norm_bad(".");
    norm_bad("a/b");
    norm_bad("a b");
    norm_bad("blog.localhost:80x");
    norm_bad("blog.localhost:123456");
    norm_bad("a:1:2");
    norm_bad("[::1");
    norm_bad("[::g]");
    norm_bad("caf\xc3\xa9.test");
}

static void test_msg_roundtrip(void **state)
{
    const char *hosts[] = { "blog.localhost", "www.example.com" };
    struct front_site s = { .name = "blog", .hosts = hosts, .n_hosts = 2, .type = FRONT_SITE_APP,
                            .state = FRONT_SITE_STOPPED, .public_dir = "/srv/blog/public",
                            .logs_dir = NULL, .uid = 1234, .backend = "/run/blog.sock",
                            .max_body = 777, .upstream_timeout_ms = 31000 };
    struct buf b = BUF_INIT(FRONT_MSG_MAX);
    assert_int_equal(front_msg_site_encode(&s, &b), 0);
    struct front_site_msg m;
    assert_int_equal(front_msg_site_decode(b.data, b.len, &m), 0);
    assert_string_equal(m.site.name, "blog");
    assert_int_equal(m.site.n_hosts, 2);
    assert_string_equal(m.site.hosts[1], "www.example.com");
    assert_int_equal(m.site.type, FRONT_SITE_APP);
    assert_int_equal(m.site.state, FRONT_SITE_STOPPED);
    assert_string_equal(m.site.public_dir, "/srv/blog/public");
    assert_null(m.site.logs_dir);
    assert_string_equal(m.site.backend, "/run/blog.sock");
    assert_int_equal(m.site.uid, 1234);
    assert_int_equal(m.site.max_body, 777);
    assert_int_equal(m.site.upstream_timeout_ms, 31000);
    assert_null(m.site.tls_cert);
    assert_null(m.site.tls_key);
    free(m.hosts);
    /* Every truncation of a valid message is refused, never read past. */
    for (size_t n = 0; n < b.len; n++)
        assert_int_not_equal(front_msg_site_decode(b.data, n, &m), 0);
    buf_done(&b);

    /* A certificate travels with its key, longer than any path may be. */
    char *pem = malloc(10001);
    memset(pem, 'C', 10000);
    pem[10000] = 0;
    s.tls_cert = pem;
    s.tls_key = "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n";
    s.https_redirect = true;
    struct buf b3 = BUF_INIT(FRONT_MSG_MAX);
    assert_int_equal(front_msg_site_encode(&s, &b3), 0);
    assert_int_equal(front_msg_site_decode(b3.data, b3.len, &m), 0);
    assert_string_equal(m.site.tls_cert, pem);
    assert_string_equal(m.site.tls_key, s.tls_key);
    assert_true(m.site.https_redirect);
    assert_string_equal(m.site.hosts[0], "blog.localhost");
    free(m.hosts);
    for (size_t n = 0; n < b3.len; n++)
        assert_int_not_equal(front_msg_site_decode(b3.data, n, &m), 0);
    buf_done(&b3);
    /* One without the other is refused. */
    s.tls_key = NULL;
    struct buf b4 = BUF_INIT(FRONT_MSG_MAX);
    assert_int_equal(front_msg_site_encode(&s, &b4), -EINVAL);
    buf_done(&b4);
    s.tls_cert = NULL;
    free(pem);

    /* Hosts must arrive normalised; relative paths are refused. */
    const char *bad_hosts[] = { "Blog.localhost" };
    s.hosts = bad_hosts;
    s.n_hosts = 1;
    struct buf b2 = BUF_INIT(FRONT_MSG_MAX);
    assert_int_equal(front_msg_site_encode(&s, &b2), -EINVAL);
    s.n_hosts = 0;
    s.public_dir = "relative/public";
    assert_int_equal(front_msg_site_encode(&s, &b2), -EINVAL);
    buf_done(&b2);
}

static void test_challenge_valid(void **state)
{
    assert_true(front_challenge_valid("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", 43, false));
    assert_true(front_challenge_valid("tok_en-1.thumb_print-2", 22, true));
    assert_false(front_challenge_valid("", 0, false));
    assert_false(front_challenge_valid("a.b", 3, false));      /* a token has no dot */
    assert_false(front_challenge_valid("ab", 2, true));        /* a key authorization has one */
    assert_false(front_challenge_valid("a.b.c", 5, true));
    assert_false(front_challenge_valid(".b", 2, true));
    assert_false(front_challenge_valid("a.", 2, true));
    assert_false(front_challenge_valid("../etc", 6, false));
    assert_false(front_challenge_valid("a b", 3, false));
    assert_false(front_challenge_valid("a/b", 3, false));
    assert_false(front_challenge_valid("a=", 2, false));       /* no padding in base64url */
    char long_token[FRONT_CHALLENGE_MAX + 2];
    memset(long_token, 'a', sizeof(long_token));
    assert_true(front_challenge_valid(long_token, FRONT_CHALLENGE_MAX, false));
    assert_false(front_challenge_valid(long_token, FRONT_CHALLENGE_MAX + 1, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_basic),
        cmocka_unit_test(test_map_100k_domains),
        cmocka_unit_test(test_host_normalize),
        cmocka_unit_test(test_msg_roundtrip),
        cmocka_unit_test(test_challenge_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/common/names.c: site and user names, punycode (RFC 3492 section 7.1
 * samples), host name normalisation and the reason given for each refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "common/names.h"

static void test_site_name(void **state)
{
    static const char *good[] = { "blog", "a", "0", "my-site", "a1-b2",
        "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyza" /* 63 */ };
    static const char *bad[] = { "", "-blog", "blog-", "Blog", "my_site", "my.site",
        "blög", "a b", "a/b", "..", "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyzab" /* 64 */ };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        if (!site_name_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (site_name_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(site_name_valid(NULL));
}

static void test_user_name(void **state)
{
    static const char *good[] = { "alice", "_svc", "a", "a.b", "a-b_c9", "x.y-z",
        "abcdefghijklmnopqrstuvwxyz012345" /* 32 */ };
    static const char *bad[] = { "", "Alice", "1abc", "-abc", ".abc", "abc.", "a b", "a/b",
        "a@b", "élan", "abcdefghijklmnopqrstuvwxyz0123456" /* 33 */ };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        if (!user_name_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (user_name_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(user_name_valid(NULL));
}

static void expect_puny(const uint32_t *cps, size_t n, const char *expect)
{
    char out[128];
    int r = punycode_encode(cps, n, out, sizeof(out));
    if (r < 0)
        fail_msg("punycode of '%s' failed: %d", expect, r);
    assert_string_equal(out, expect);
}

#define PUNY(expect, ...)                                                                  \
    do {                                                                                   \
        static const uint32_t cps_[] = { __VA_ARGS__ };                                    \
        expect_puny(cps_, ARRAY_SIZE(cps_), expect);                                       \
    } while (0)

static void test_punycode(void **state)
{
    PUNY("bcher-kva", 'b', 0xFC, 'c', 'h', 'e', 'r');
    PUNY("mnchen-3ya", 'm', 0xFC, 'n', 'c', 'h', 'e', 'n');
    PUNY("tda", 0xFC);
    /* RFC 3492 7.1 (A) Arabic (Egyptian) */
    PUNY("egbpdaj6bu4bxfgehfvwxn", 0x0644, 0x064A, 0x0647, 0x0645, 0x0627, 0x0628, 0x062A,
         0x0643, 0x0644, 0x0645, 0x0648, 0x0634, 0x0639, 0x0631, 0x0628, 0x064A, 0x061F);
    /* (B) Chinese (simplified) */
    PUNY("ihqwcrb4cv8a8dqg056pqjye", 0x4ED6, 0x4EEC, 0x4E3A, 0x4EC0, 0x4E48, 0x4E0D, 0x8BF4,
         0x4E2D, 0x6587);
    /* (C) Chinese (traditional) */
    PUNY("ihqwctvzc91f659drss3x8bo0yb", 0x4ED6, 0x5011, 0x7232, 0x4EC0, 0x9EBD, 0x4E0D,
         0x8AAA, 0x4E2D, 0x6587);
    /* (D) Czech: basic code points keep their case */
    PUNY("Proprostnemluvesky-uyb24dma41a", 'P', 'r', 'o', 0x010D, 'p', 'r', 'o', 's', 't',
         0x011B, 'n', 'e', 'm', 'l', 'u', 'v', 0x00ED, 0x010D, 'e', 's', 'k', 'y');
    /* (L) 3<nen>B<gumi><kinpachi><sensei> */
    PUNY("3B-ww4c5e180e575a65lsy2b", '3', 0x5E74, 'B', 0x7D44, 0x91D1, 0x516B, 0x5148, 0x751F);
    /* (M) <amuro><namie>-with-SUPER-MONKEYS */
    PUNY("-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n", 0x5B89, 0x5BA4, 0x5948, 0x7F8E, 0x6075,
         '-', 'w', 'i', 't', 'h', '-', 'S', 'U', 'P', 'E', 'R', '-', 'M', 'O', 'N', 'K', 'E',
         'Y', 'S');
    /* (S) all basic: a trailing '-' separates them from the (empty) deltas */
    PUNY("-> $1.00 <--", '-', '>', ' ', '$', '1', '.', '0', '0', ' ', '<', '-');
    /* Extremes of the code space, in decreasing order. */
    PUNY("a0391k26x0i", 0x10FFFF, 0x80, 0x10000);

    char out[64];
    assert_int_equal(punycode_encode(NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");

    static const uint32_t bucher[] = { 'b', 0xFC, 'c', 'h', 'e', 'r' };
    /* "bcher-kva" needs 10 bytes with its NUL. */
    assert_int_equal(punycode_encode(bucher, 6, out, 10), 0);
    assert_string_equal(out, "bcher-kva");
    for (size_t size = 0; size < 10; size++)
        assert_int_equal(punycode_encode(bucher, 6, out, size), -ERANGE);

    static const uint32_t surrogate[] = { 'a', 0xD800 };
    static const uint32_t too_big[] = { 0x110000 };
    assert_int_equal(punycode_encode(surrogate, 2, out, sizeof(out)), -EINVAL);
    assert_int_equal(punycode_encode(too_big, 1, out, sizeof(out)), -EINVAL);
}

static void expect_domain(const char *input, const char *expect)
{
    char *out = NULL;
    const char *why = NULL;
    int r = domain_normalize(input, &out, &why);
    if (r < 0)
        fail_msg("'%s' refused: %s", input, why);
    assert_string_equal(out, expect);
    free(out);
}

static void expect_refused(const char *input, const char *reason)
{
    char *out = (char *)0x1;
    const char *why = NULL;
    int r = domain_normalize(input, &out, &why);
    if (r == 0) {
        fprintf(stderr, "'%s' accepted as '%s'\n", input, out);
        free(out);
    }
    if (r != -EINVAL)
        fail_msg("'%s': r=%d, expected -EINVAL", input, r);
    assert_ptr_equal(out, (char *)0x1);
    assert_non_null(why);
    if (!streq(why, reason))
        fail_msg("'%s': reason '%s', expected '%s'", input, why, reason);
}

static void test_domain_ok(void **state)
{
    expect_domain("example.com", "example.com");
    expect_domain("Example.COM.", "example.com");
    expect_domain("blog.localhost", "blog.localhost");
    expect_domain("a-b.c-d.example", "a-b.c-d.example");
    expect_domain("1.2.3.example", "1.2.3.example");
    expect_domain("xn--bcher-kva.example", "xn--bcher-kva.example");
    expect_domain("b\xc3\xbc" "cher.example", "xn--bcher-kva.example");
    expect_domain("M\xc3\xbc" "nchen.DE", "xn--mnchen-3ya.de");
    expect_domain("\xc3\xbc.example", "xn--tda.example");
    /* Ideographic and fullwidth full stops separate labels (RFC 3490 3.1). */
    expect_domain("\xe4\xbe\x8b\xe3\x80\x82\xe6\xb5\x8b\xe8\xaf\x95", "xn--fsq.xn--0zwm56d");
    expect_domain("b\xc3\xbc" "cher\xef\xbc\x8e" "de", "xn--bcher-kva.de");
    expect_domain("\xf0\x9f\x98\x80.example", "xn--e28h.example");
    /* 20 ideographs U+4E00 + 97i: 57 characters once encoded (Python's codec agrees). */
    expect_domain("\xe4\xb8\x80\xe4\xb9\xa1\xe4\xbb\x82\xe4\xbc\xa3\xe4\xbe\x84\xe4\xbf\xa5\xe5\x81\x86"
                  "\xe5\x82\xa7\xe5\x84\x88\xe5\x85\xa9\xe5\x87\x8a\xe5\x88\xab\xe5\x8a\x8c\xe5\x8b\xad"
                  "\xe5\x8d\x8e\xe5\x8e\xaf\xe5\x90\x90\xe5\x91\xb1\xe5\x93\x92\xe5\x94\xb3.example",
                  "xn--4gq0ilk2mupyshviyp0az1ar4aj7abzb20bu3bm5be8b5xcxycp1c.example");

    /* 63-character label and a 253-character name are the limits, not past them. */
    char name[300];
    memset(name, 'a', 63);
    strcpy(name + 63, ".com");
    expect_domain(name, name);
    /* 4 labels of 63 + "." x 3 = 255; trim to 253 with a shorter last label of 61. */
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        memset(name + n, 'a' + i, 63);
        n += 63;
        name[n++] = '.';
    }
    memset(name + n, 'x', 61);
    n += 61;
    name[n] = 0;
    assert_int_equal(strlen(name), 253);
    expect_domain(name, name);
    /* A root dot is not counted. */
    name[n] = '.';
    name[n + 1] = 0;
    char *out = NULL;
    assert_int_equal(domain_normalize(name, &out, NULL), 0);
    assert_int_equal(strlen(out), 253);
    free(out);
}

static void test_domain_refused(void **state)
{
    expect_refused("", "the domain name is empty");
    expect_refused(".", "the domain name is empty");
    expect_refused(NULL, "the domain name is empty");
    expect_refused("localhost", "the domain name needs at least two labels, like example.com");
    expect_refused("b\xc3\xbc" "cher", "the domain name needs at least two labels, like example.com");
    expect_refused("a..com", "a label is empty (two dots in a row, or a leading dot)");
    expect_refused(".a.com", "a label is empty (two dots in a row, or a leading dot)");
    expect_refused("a.com..", "a label is empty (two dots in a row, or a leading dot)");
    expect_refused("-a.com", "a label starts or ends with '-'");
    expect_refused("a-.com", "a label starts or ends with '-'");
    expect_refused("a.-\xc3\xbc", "a label starts or ends with '-'");
    expect_refused("1.2.3.4", "the last label is all digits, which reads as an IP address");
    expect_refused("example.123", "the last label is all digits, which reads as an IP address");
    expect_refused("a_b.com", "an underscore is not allowed in host names");
    expect_refused("_dmarc.example.com", "an underscore is not allowed in host names");
    expect_refused("a b.com", "the domain name contains a space");
    expect_refused("a\tb.com", "the domain name contains a control character");
    expect_refused("a\x7f.com", "the domain name contains a control character");
    expect_refused("evil.com/x.example", "the domain name contains a character not allowed in host names");
    expect_refused("user@host.com", "the domain name contains a character not allowed in host names");
    expect_refused("host.com:80", "the domain name contains a character not allowed in host names");
    expect_refused("a%2e.com", "the domain name contains a character not allowed in host names");
    expect_refused("[::1].com", "the domain name contains a character not allowed in host names");
    expect_refused("a\xc2\x85.com", "the domain name contains a control character");
    expect_refused("a\xc2\xa0" "b.com", "the domain name contains a space");
    expect_refused("a\xe3\x80\x80" "b.com", "the domain name contains a space");
    expect_refused("a\xe2\x80\x8b" "b.com", "the domain name contains an invisible or formatting character");
    expect_refused("a\xe2\x80\xae" "b.com", "the domain name contains an invisible or formatting character");
    /* FULLWIDTH SOLIDUS: reads as '/' once a browser applies NFKC. */
    expect_refused("evil.com\xef\xbc\x8f" "x.example", "the domain name contains a character not allowed in host names");
    expect_refused("a\xee\x80\x80.com", "the domain name contains a private-use or non-character code point");
    expect_refused("\xff.com", "the domain name is not valid UTF-8");
    expect_refused("a\xc3.com", "the domain name is not valid UTF-8");
    expect_refused("\xc0\xae\xc0\xae.com", "the domain name is not valid UTF-8");
    expect_refused("\xed\xa0\x80.com", "the domain name is not valid UTF-8");
    expect_refused("ab--\xc3\xbc.com", "a label with non-ASCII letters has '--' in its third and fourth places");

    char name[1200];
    memset(name, 'a', 64);
    strcpy(name + 64, ".com");
    expect_refused(name, "a label is longer than 63 characters");
    /* 30 ideographs are fewer than 63 code points but more than 59 punycode characters
     * (83, checked against Python's codec). */
    size_t n = 0;
    for (uint32_t i = 0; i < 30; i++) {
        uint32_t cp = 0x4E00 + i * 97;
        name[n++] = (char)(0xE0 | cp >> 12);
        name[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
        name[n++] = (char)(0x80 | (cp & 0x3F));
    }
    strcpy(name + n, ".com");
    expect_refused(name, "a label is longer than 63 characters once converted to ASCII");
    /* 254 characters. */
    n = 0;
    for (int i = 0; i < 3; i++) {
        memset(name + n, 'a', 63);
        n += 63;
        name[n++] = '.';
    }
    memset(name + n, 'x', 62);
    name[n + 62] = 0;
    assert_int_equal(strlen(name), 254);
    expect_refused(name, "the domain name is longer than 253 characters");
    memset(name, 'a', 1100);
    name[1100] = 0;
    expect_refused(name, "the domain name is longer than 253 characters");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_name),
        cmocka_unit_test(test_user_name),
        cmocka_unit_test(test_punycode),
        cmocka_unit_test(test_domain_ok),
        cmocka_unit_test(test_domain_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/certs: the local CA on disk (created once, loaded after, never
 * replaced when damaged) and the server certificates it issues, checked with
 * OpenSSL's own verifier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "certs/certs.h"
#include "common/fs.h"

struct fixture {
    char dir[64];
    char key[128], cert[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/berth-certs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->key, sizeof(f->key), "%s/ca.key", f->dir);
    snprintf(f->cert, sizeof(f->cert), "%s/ca.pem", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rm_rf(f->dir), 0);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    assert_int_equal(read_file(path, 1 << 20, &data, NULL), 0);
    return data;
}

static void put(const char *path, const char *text, mode_t mode)
{
    assert_int_equal(write_file_atomic(path, text, strlen(text), mode), 0);
}

static X509 *parse_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    assert_non_null(b);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static struct certs_ca *ca_new(const char *dir, bool expect_created)
{
    struct certs_ca *ca = NULL;
    bool created = !expect_created;
    char err[512] = "";
    int r = certs_ca_load_or_create(dir, "testhost", &ca, &created, err, sizeof(err));
    if (r < 0)
        fail_msg("certs_ca_load_or_create: %s", err);
    assert_true(created == expect_created);
    return ca;
}

static void test_ca_created_then_loaded(void **state)
{
    struct fixture *f = *state;
    struct certs_ca *ca = ca_new(f->dir, true);
    struct stat st;
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(f->cert, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    char *on_disk = slurp(f->cert);
    assert_string_equal(on_disk, certs_ca_cert_pem(ca));

    /* What a CA certificate must say for clients to accept it as a root. */
    X509 *x = parse_cert(on_disk);
    assert_true(X509_check_ca(x) >= 1);
    assert_true(X509_get_extension_flags(x) & EXFLAG_CA);
    assert_int_equal(X509_get_pathlen(x), 0);
    assert_int_equal(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(x));
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
    char cn[128];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "berth local CA (testhost)");
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);   /* not V_ASN1_NEG_INTEGER */
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)), 1);
    assert_true(days >= 3649 && days <= 3650);
    X509_free(x);
    certs_ca_free(ca);

    /* The second time: the same CA, from the files. */
    ca = ca_new(f->dir, false);
    assert_string_equal(certs_ca_cert_pem(ca), on_disk);
    char *again = slurp(f->cert);
    assert_string_equal(again, on_disk);
    free(again);
    free(on_disk);
    certs_ca_free(ca);
}

/* Expects a refusal that names path, with both files as they were. */
static void assert_refused(struct fixture *f, int expected, const char *path, const char *says)
{
    char *key_before = access(f->key, F_OK) == 0 ? slurp(f->key) : NULL;
    char *cert_before = access(f->cert, F_OK) == 0 ? slurp(f->cert) : NULL;
    struct certs_ca *ca = NULL;
    char err[512] = "";
    assert_int_equal(certs_ca_load_or_create(f->dir, "testhost", &ca, NULL, err, sizeof(err)), expected);
    assert_null(ca);
    if (!strstr(err, path))
        fail_msg("the error does not name %s: %s", path, err);
    if (says && !strstr(err, says))
        fail_msg("the error does not say \"%s\": %s", says, err);
    if (key_before) {
        char *key_after = slurp(f->key);
        assert_string_equal(key_after, key_before);
        free(key_after);
    } else {
        assert_int_not_equal(access(f->key, F_OK), 0);
    }
    if (cert_before) {
        char *cert_after = slurp(f->cert);
        assert_string_equal(cert_after, cert_before);
        free(cert_after);
    } else {
        assert_int_not_equal(access(f->cert, F_OK), 0);
    }
    free(key_before);
    free(cert_before);
}

static void test_ca_damaged_refused(void **state)
{
    struct fixture *f = *state;
    certs_ca_free(ca_new(f->dir, true));
    char *key = slurp(f->key), *cert = slurp(f->cert);

    put(f->key, "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", 0600);
    assert_refused(f, -EBADMSG, f->key, "is damaged");
    put(f->key, "", 0600);
    assert_refused(f, -EBADMSG, f->key, "is damaged");
    put(f->key, key, 0600);

    /* A certificate cut in half. */
    char *half = strndup(cert, strlen(cert) / 2);
    put(f->cert, half, 0644);
    assert_refused(f, -EBADMSG, f->cert, "is damaged");
    free(half);
    put(f->cert, cert, 0644);

    certs_ca_free(ca_new(f->dir, false));
    free(key);
    free(cert);
}

static void test_ca_half_present_refused(void **state)
{
    struct fixture *f = *state;
    certs_ca_free(ca_new(f->dir, true));
    char *key = slurp(f->key), *cert = slurp(f->cert);

    assert_int_equal(unlink(f->cert), 0);
    assert_refused(f, -ENOENT, f->cert, "without its certificate");
    put(f->cert, cert, 0644);
    assert_int_equal(unlink(f->key), 0);
    assert_refused(f, -ENOENT, f->key, "without its key");
    put(f->key, key, 0600);

    certs_ca_free(ca_new(f->dir, false));
    free(key);
    free(cert);
}

static void test_ca_mismatched_key_refused(void **state)
{
    struct fixture *f = *state;
    certs_ca_free(ca_new(f->dir, true));
    char other[128], other_key[160];
    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    certs_ca_free(ca_new(other, true));
    snprintf(other_key, sizeof(other_key), "%s/ca.key", other);
    char *foreign = slurp(other_key);
    put(f->key, foreign, 0600);
    assert_refused(f, -EKEYREJECTED, f->key, "does not match");
    free(foreign);
}

/* Verifies leaf against the CA as a TLS client would, for a server. */
static int verify_leaf(struct certs_ca *ca, X509 *leaf)
{
    X509_STORE *store = X509_STORE_new();
    X509 *root = parse_cert(certs_ca_cert_pem(ca));
    assert_int_equal(X509_STORE_add_cert(store, root), 1);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_message("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(root);
    return ok;
}

static void test_leaf_issued(void **state)
{
    struct fixture *f = *state;
    struct certs_ca *ca = ca_new(f->dir, true);
    const char *hosts[] = { "blog.localhost", "www.example.com", "*.example.org", "127.0.0.1", "::1" };
    struct certs_leaf leaf = { 0 };
    int64_t before = (int64_t)time(NULL);
    assert_int_equal(certs_leaf_issue(ca, hosts, ARRAY_SIZE(hosts), 90, &leaf), 0);
    int64_t after = (int64_t)time(NULL);
    assert_non_null(strstr(leaf.key_pem, "-----BEGIN PRIVATE KEY-----"));   /* PKCS#8 */

    X509 *x = parse_cert(leaf.cert_pem);
    assert_int_equal(verify_leaf(ca, x), 1);
    assert_true(!(X509_get_extension_flags(x) & EXFLAG_CA));
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
    assert_non_null(X509_get0_authority_key_id(x));
    char cn[300];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "blog.localhost");

    /* Exactly the names asked, addresses as IP entries. */
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 5);
    for (int i = 0; i < 3; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        assert_int_equal(g->type, GEN_DNS);
        assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), hosts[i]);
    }
    const GENERAL_NAME *v4 = sk_GENERAL_NAME_value(gens, 3), *v6 = sk_GENERAL_NAME_value(gens, 4);
    assert_int_equal(v4->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(v4->d.iPAddress), 4);
    assert_memory_equal(ASN1_STRING_get0_data(v4->d.iPAddress), "\x7f\x00\x00\x01", 4);
    assert_int_equal(v6->type, GEN_IPADD);
    assert_int_equal(ASN1_STRING_length(v6->d.iPAddress), 16);
    GENERAL_NAMES_free(gens);
    assert_int_equal(X509_check_host(x, "blog.localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "a.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.localhost", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);

    /* The key is the certificate's. */
    BIO *b = BIO_new_mem_buf(leaf.key_pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(key);
    assert_int_equal(X509_check_private_key(x, key), 1);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    EVP_PKEY_free(key);

    /* Validity: from an hour ago to 90 days from now. */
    assert_true(leaf.not_after >= before + 90 * 86400 && leaf.not_after <= after + 90 * 86400);
    int64_t not_after;
    assert_int_equal(certs_pem_not_after(leaf.cert_pem, &not_after), 0);
    assert_int_equal(not_after, leaf.not_after);
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm), 1);
    int64_t not_before = (int64_t)timegm(&tm);
    assert_true(not_before >= before - 3600 && not_before <= after - 3600);

    X509_free(x);
    certs_leaf_done(&leaf);
    certs_leaf_done(&leaf);   /* idempotent */
    certs_ca_free(ca);
}

/* A name too long for a CN is left to the (then critical) subjectAltName. */
static void test_leaf_long_name(void **state)
{
    struct fixture *f = *state;
    struct certs_ca *ca = ca_new(f->dir, true);
    char name[200];
    snprintf(name, sizeof(name), "%s.%s.localhost",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    const char *hosts[] = { name };
    struct certs_leaf leaf;
    assert_int_equal(certs_leaf_issue(ca, hosts, 1, 30, &leaf), 0);
    X509 *x = parse_cert(leaf.cert_pem);
    assert_int_equal(verify_leaf(ca, x), 1);
    assert_int_equal(X509_check_host(x, name, 0, 0, NULL), 1);
    int crit = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    assert_int_equal(crit, 1);
    GENERAL_NAMES_free(gens);
    X509_free(x);
    certs_leaf_done(&leaf);
    certs_ca_free(ca);
}

static void test_leaf_bad_hosts(void **state)
{
    struct fixture *f = *state;
    struct certs_ca *ca = ca_new(f->dir, true);
    struct certs_leaf leaf = { .not_after = 42 };
    const char *good[] = { "ok.localhost" };
    assert_int_equal(certs_leaf_issue(ca, good, 0, 90, &leaf), -EINVAL);
    assert_int_equal(certs_leaf_issue(ca, good, 1, 0, &leaf), -EINVAL);

    const char *many[CERTS_MAX_HOSTS + 1];
    char names[CERTS_MAX_HOSTS + 1][32];
    for (size_t i = 0; i < ARRAY_SIZE(many); i++) {
        snprintf(names[i], sizeof(names[i]), "h%zu.localhost", i);
        many[i] = names[i];
    }
    assert_int_equal(certs_leaf_issue(ca, many, CERTS_MAX_HOSTS + 1, 90, &leaf), -EINVAL);
    assert_int_equal(leaf.not_after, 42);   /* untouched on failure */
    assert_int_equal(certs_leaf_issue(ca, many, CERTS_MAX_HOSTS, 90, &leaf), 0);
    certs_leaf_done(&leaf);

    char too_long[300];
    memset(too_long, 'a', sizeof(too_long));
    for (size_t i = 60; i < 254; i += 61)
        too_long[i] = '.';
    too_long[254] = 0;   /* 254 bytes, labels of 60 */
    static const char *const bad[] = {
        "", "a b.localhost", "bad_name.localhost", "foo..localhost", ".localhost", "localhost.",
        "*", "*.", "a.*.localhost", "**.localhost", "blog.localhost:8443", "ünicode.localhost",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.localhost",   /* label of 64 */
        "[::1]", NULL,
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *hosts[] = { "fine.localhost", bad[i] };
        if (certs_leaf_issue(ca, hosts, 2, 90, &leaf) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i] ? bad[i] : "(null)");
        assert_false(certs_host_valid(bad[i]));
    }
    assert_false(certs_host_valid(too_long));
    too_long[253] = 0;
    assert_true(certs_host_valid(too_long));
    assert_true(certs_host_valid("*.localhost"));
    assert_true(certs_host_valid("localhost"));
    assert_true(certs_host_valid("xn--bcher-kva.example"));
    assert_true(certs_host_valid("10.0.0.1"));
    assert_true(certs_host_valid("fe80::1"));
    certs_ca_free(ca);
}

static void test_pem_check(void **state)
{
    struct fixture *f = *state;
    struct certs_ca *ca = ca_new(f->dir, true);
    const char *hosts[] = { "blog.example.org", "*.example.net" };
    struct certs_leaf a = { 0 }, b = { 0 };
    assert_int_equal(certs_leaf_issue(ca, hosts, 2, 90, &a), 0);
    assert_int_equal(certs_leaf_issue(ca, hosts, 1, 90, &b), 0);
    char err[300] = "";
    assert_int_equal(certs_pem_check(a.cert_pem, a.key_pem, "blog.example.org\nwww.example.net", err, sizeof(err)), 0);
    assert_int_equal(certs_pem_check(a.cert_pem, a.key_pem, "blog.example.org", err, sizeof(err)), 0);
    /* Another certificate's key, a name it does not have, garbage. */
    assert_int_equal(certs_pem_check(a.cert_pem, b.key_pem, "blog.example.org", err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "the certificate is not for its key");
    assert_int_equal(certs_pem_check(b.cert_pem, b.key_pem, "blog.example.org\nx.example.net", err, sizeof(err)),
                     -EBADMSG);
    assert_string_equal(err, "the certificate does not name x.example.net");
    assert_int_equal(certs_pem_check(a.cert_pem, a.key_pem, "other.example.org", err, sizeof(err)), -EBADMSG);
    assert_int_equal(certs_pem_check("junk", a.key_pem, "blog.example.org", err, sizeof(err)), -EBADMSG);
    assert_int_equal(certs_pem_check(a.cert_pem, "junk", "blog.example.org", err, sizeof(err)), -EBADMSG);
    assert_int_equal(ERR_peek_error(), 0);
    certs_leaf_done(&a);
    certs_leaf_done(&b);
    certs_ca_free(ca);
}

static void test_pem_not_after_and_hosts_join(void **state)
{
    int64_t t = 7;
    assert_int_equal(certs_pem_not_after("not a certificate", &t), -EBADMSG);
    assert_int_equal(certs_pem_not_after("", &t), -EBADMSG);
    assert_int_equal(t, 7);
    assert_int_equal(ERR_peek_error(), 0);   /* no stale OpenSSL errors left behind */

    const char *hosts[] = { "b.localhost", "a.example", "b.localhost", "*.a.example" };
    char *joined;
    assert_int_equal(certs_hosts_join(hosts, ARRAY_SIZE(hosts), &joined), 0);
    assert_string_equal(joined, "*.a.example\na.example\nb.localhost");
    free(joined);
    assert_int_equal(certs_hosts_join(hosts, 0, &joined), 0);
    assert_string_equal(joined, "");
    free(joined);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_created_then_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_damaged_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_half_present_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_mismatched_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_issued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_long_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_bad_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pem_check, setup, teardown),
        cmocka_unit_test(test_pem_not_after_and_hosts_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/acme: the pieces that need no network. base64url against RFC 4648's
 * vectors, the JWK thumbprint against RFC 7638's example, JWS signatures verified by
 * OpenSSL, the CSR's SANs, and the parsers of server documents against good,
 * truncated, ill-typed, hostile and huge answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "acme/acme-internal.h"

static char *b64(const void *p, size_t n)
{
    struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(acme_base64url(&b, p, n), 0);
    return buf_steal(&b);
}

/* The test's own decoder, so the encoder is not checked against itself. */
static size_t unb64(const char *s, unsigned char *out, size_t max)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s; s++) {
        const char *p = strchr(a, *s);
        assert_non_null(p);
        acc = acc << 6 | (uint32_t)(p - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            assert_true(n < max);
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static void test_base64url(void **state)
{
    static const char *const vec[][2] = {
        { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(vec); i++) {
        char *s = b64(vec[i][0], strlen(vec[i][0]));
        assert_string_equal(s, vec[i][1]);
        free(s);
    }
    /* The URL alphabet: - and _ where base64 has + and /. */
    char *s = b64("\xfb\xff\xbf", 3);
    assert_string_equal(s, "-_-_");
    free(s);
    assert_true(acme_token_valid("abc-_XYZ09", 10));
    assert_false(acme_token_valid("", 0));
    assert_false(acme_token_valid("a/b", 3));
    assert_false(acme_token_valid("a=", 2));
    assert_false(acme_token_valid("a.b", 3));
}

static void test_thumbprint_rfc7638(void **state)
{
    /* RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1. */
    const char *names[] = { "e", "kty", "n" };
    const char *values[] = {
        "AQAB", "RSA",
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw",
    };
    char t[ACME_THUMBPRINT_LEN + 1];
    assert_int_equal(acme_thumbprint_members(names, values, 3, t), 0);
    assert_string_equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = NULL;
    assert_int_equal(acme_key_new(&k), 0);
    return k;
}

static void test_jwk_and_key_pem(void **state)
{
    EVP_PKEY *k = new_key();
    struct buf b = BUF_INIT(4096);
    struct json_writer w;
    json_writer_init(&w, &b, false);
    assert_int_equal(acme_jwk_write(&w, k), 0);
    assert_int_equal(json_writer_finish(&w), 0);
    /* Members in RFC 7638 order, nothing else: the thumbprint hashes exactly this. */
    assert_true(str_startswith(b.data, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""));
    struct json_value *v = NULL;
    assert_int_equal(json_parse(b.data, b.len, &v, NULL, NULL), 0);
    assert_int_equal(v->object.n, 4);
    const char *x = json_get_string(v, "x"), *y = json_get_string(v, "y");
    assert_int_equal(strlen(x), 43);
    assert_int_equal(strlen(y), 43);

    char t1[ACME_THUMBPRINT_LEN + 1], t2[ACME_THUMBPRINT_LEN + 1];
    const char *names[] = { "crv", "kty", "x", "y" };
    const char *values[] = { "P-256", "EC", x, y };
    assert_int_equal(acme_thumbprint_members(names, values, 4, t1), 0);
    assert_int_equal(acme_jwk_thumbprint(k, t2), 0);
    assert_string_equal(t1, t2);

    /* The PEM round-trips to the same key, hence the same thumbprint. */
    char *pem = NULL;
    EVP_PKEY *k2 = NULL;
    assert_int_equal(acme_key_pem(k, &pem), 0);
    assert_true(str_startswith(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(acme_key_load(pem, &k2), 0);
    assert_int_equal(acme_jwk_thumbprint(k2, t1), 0);
    assert_string_equal(t1, t2);
    free(pem);
    EVP_PKEY_free(k2);

    /* Not P-256: refused. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_int_equal(acme_key_pem(p384, &pem), 0);
    assert_int_equal(acme_key_load(pem, &k2), -EINVAL);
    free(pem);
    EVP_PKEY_free(p384);
    assert_int_equal(acme_key_load("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &k2), -EINVAL);
    assert_int_equal(acme_key_load("", &k2), -EINVAL);

    json_value_free(v);
    buf_done(&b);
    EVP_PKEY_free(k);
}

/* Verifies a flattened JWS with OpenSSL and returns its decoded protected header. */
static struct json_value *verify_jws(EVP_PKEY *k, const char *jws, const char *expect_payload)
{
    struct json_value *v = NULL, *h = NULL;
    assert_int_equal(json_parse(jws, strlen(jws), &v, NULL, NULL), 0);
    assert_int_equal(v->object.n, 3);
    const char *prot = json_get_string(v, "protected"), *payload = json_get_string(v, "payload"),
               *sig = json_get_string(v, "signature");
    assert_non_null(prot);
    assert_non_null(payload);
    assert_non_null(sig);
    for (const char *p = sig; *p; p++)
        assert_true(*p != '=');

    unsigned char raw[128], text[4096];
    assert_int_equal(unb64(sig, raw, sizeof(raw)), 64);   /* r||s, not DER */
    size_t n = unb64(payload, text, sizeof(text) - 1);
    text[n] = 0;
    assert_string_equal((char *)text, expect_payload);

    ECDSA_SIG *es = ECDSA_SIG_new();
    assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    assert_true(der_len > 0);
    char input[8192];
    snprintf(input, sizeof(input), "%s.%s", prot, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(ctx, der, (size_t)der_len, (unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);

    n = unb64(prot, text, sizeof(text) - 1);
    assert_int_equal(json_parse((char *)text, n, &h, NULL, NULL), 0);
    json_value_free(v);
    return h;
}

static void test_jws(void **state)
{
    EVP_PKEY *k = new_key();
    struct buf b = BUF_INIT(1 << 20);

    assert_int_equal(acme_jws_sign(k, NULL, "nonce1", "https://ca/new-acct", "{\"a\":1}", &b), 0);
    struct json_value *h = verify_jws(k, b.data, "{\"a\":1}");
    assert_string_equal(json_get_string(h, "alg"), "ES256");
    assert_string_equal(json_get_string(h, "nonce"), "nonce1");
    assert_string_equal(json_get_string(h, "url"), "https://ca/new-acct");
    assert_null(json_get(h, "kid"));
    const struct json_value *jwk = json_get(h, "jwk");
    assert_non_null(jwk);
    assert_string_equal(json_get_string(jwk, "kty"), "EC");
    json_value_free(h);

    /* With a kid, and POST-as-GET: an empty payload, no jwk. */
    buf_clear(&b);
    assert_int_equal(acme_jws_sign(k, "https://ca/acct/1", "n2", "https://ca/order/1", NULL, &b), 0);
    h = verify_jws(k, b.data, "");
    assert_string_equal(json_get_string(h, "kid"), "https://ca/acct/1");
    assert_null(json_get(h, "jwk"));
    assert_non_null(strstr(b.data, "\"payload\":\"\""));
    json_value_free(h);

    buf_done(&b);
    EVP_PKEY_free(k);
}

static void test_ecdsa_der_to_raw(void **state)
{
    unsigned char raw[64];
    /* r = 1, s = 0x80 (needs a leading zero in DER): left-padded to 32 bytes each. */
    static const unsigned char der[] = { 0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80 };
    assert_int_equal(acme_ecdsa_der_to_raw(der, sizeof(der), raw), 0);
    for (int i = 0; i < 31; i++) {
        assert_int_equal(raw[i], 0);
        assert_int_equal(raw[32 + i], 0);
    }
    assert_int_equal(raw[31], 1);
    assert_int_equal(raw[63], 0x80);
    assert_int_equal(acme_ecdsa_der_to_raw(der, sizeof(der) - 1, raw), -EINVAL);
    /* An r of 33 significant bytes cannot be a P-256 signature. */
    unsigned char big[2 + 2 + 33 + 3] = { 0x30, 2 + 33 + 3, 0x02, 33, 0x01 };
    big[2 + 2 + 33] = 0x02;
    big[2 + 2 + 33 + 1] = 1;
    big[2 + 2 + 33 + 2] = 1;
    assert_int_equal(acme_ecdsa_der_to_raw(big, sizeof(big), raw), -EINVAL);
}

static void test_csr(void **state)
{
    EVP_PKEY *k = new_key();
    struct buf b = BUF_INIT(1 << 20);
    const char *hosts[] = { "a.example.org", "b.example.org" };
    assert_int_equal(acme_csr_b64(k, hosts, 2, &b), 0);
    unsigned char der[8192];
    size_t n = unb64(b.data, der, sizeof(der));
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)n);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 2);
    for (int i = 0; i < 2; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        assert_int_equal(g->type, GEN_DNS);
        assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), hosts[i]);
    }
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    buf_done(&b);
    EVP_PKEY_free(k);
}

/* A self-signed certificate for key, as PEM. */
static char *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(bio);
    X509_free(x);
    return s;
}

static void test_chain_check(void **state)
{
    EVP_PKEY *k = new_key(), *other = new_key();
    char *leaf = self_signed(k), *ca = self_signed(other), *out = NULL, err[256];
    char chain[65536], expect[16384];
    snprintf(chain, sizeof(chain), "junk before\n%s\ntext between\n%s", leaf, ca);
    snprintf(expect, sizeof(expect), "%s%s", leaf, ca);
    assert_int_equal(acme_chain_check(chain, strlen(chain), k, &out, err, sizeof(err)), 0);
    assert_string_equal(out, expect);   /* certificates only, re-encoded */
    free(out);
    out = NULL;

    /* Leaf for another key, no certificate, a truncated one, too many. */
    assert_int_equal(acme_chain_check(chain, strlen(chain), other, &out, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "not for the key"));
    assert_int_equal(acme_chain_check("hello", 5, NULL, &out, err, sizeof(err)), -EPROTO);
    assert_int_equal(acme_chain_check(leaf, strlen(leaf) / 2, NULL, &out, err, sizeof(err)), -EPROTO);
    chain[0] = 0;
    for (int i = 0; i < 11; i++)
        strcat(chain, ca);
    assert_int_equal(acme_chain_check(chain, strlen(chain), NULL, &out, err, sizeof(err)), -EPROTO);
    assert_null(out);
    free(leaf);
    free(ca);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}


#define DIR_OK "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":\"https://ca/acct\",\"newOrder\":\"https://ca/order\"," \
               "\"meta\":{\"termsOfService\":\"https://ca/tos\"},\"x-unknown\":[1,2,{}]}"

static void test_directory(void **state)
{
    struct acme_directory d;
    char err[256];
    assert_int_equal(acme_directory_parse(DIR_OK, strlen(DIR_OK), &d, err, sizeof(err)), 0);
    assert_string_equal(d.new_nonce, "https://ca/nonce");
    assert_string_equal(d.new_account, "https://ca/acct");
    assert_string_equal(d.new_order, "https://ca/order");
    acme_directory_done(&d);

    static const struct { const char *body, *why; } bad[] = {
        { "", "not JSON" },
        { "[]", "not a JSON object" },
        { "\"x\"", "not a JSON object" },
        { "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":\"https://ca/acct\"}", "no \"newOrder\"" },
        { "{\"newNonce\":\"http://ca/nonce\",\"newAccount\":\"https://ca/acct\",\"newOrder\":\"https://ca/o\"}",
          "\"newNonce\" is not an https URL" },
        { "{\"newNonce\":5,\"newAccount\":\"https://ca/acct\",\"newOrder\":\"https://ca/o\"}", "not an https URL" },
        { "{\"newNonce\":\"https://ca/n\\u0000x\",\"newAccount\":\"https://ca/acct\",\"newOrder\":\"https://ca/o\"}",
          "not an https URL" },
        { "{\"newNonce\":\"https://ca/n x\",\"newAccount\":\"https://ca/acct\",\"newOrder\":\"https://ca/o\"}",
          "not an https URL" },
        { "{\"newNonce\":\"https://ca/nonce\",\"newNonce\":\"https://ca/nonce\"}", "not JSON" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err[0] = 0;
        assert_int_equal(acme_directory_parse(bad[i].body, strlen(bad[i].body), &d, err, sizeof(err)), -EPROTO);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: %s", bad[i].body, err);
        assert_null(d.new_nonce);
    }
    /* Every truncation of a good directory is refused, cleanly. */
    for (size_t n = 0; n < strlen(DIR_OK); n++)
        assert_int_equal(acme_directory_parse(DIR_OK, n, &d, err, sizeof(err)), -EPROTO);

    /* Huge: more than 1 MiB, refused before parsing; deep nesting refused by the parser. */
    size_t huge = ACME_BODY_MAX + 10;
    char *h = malloc(huge);
    memset(h, ' ', huge);
    memcpy(h, DIR_OK, strlen(DIR_OK));
    assert_int_equal(acme_directory_parse(h, huge, &d, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "too large"));
    memset(h, '[', 100000);
    assert_int_equal(acme_directory_parse(h, 100000, &d, err, sizeof(err)), -EPROTO);
    /* A URL longer than ACME_URL_MAX. */
    int n = snprintf(h, huge, "{\"newNonce\":\"https://");
    memset(h + n, 'a', ACME_URL_MAX);
    snprintf(h + n + ACME_URL_MAX, 200, "\",\"newAccount\":\"https://ca/a\",\"newOrder\":\"https://ca/o\"}");
    assert_int_equal(acme_directory_parse(h, strlen(h), &d, err, sizeof(err)), -EPROTO);
    free(h);
}

static void test_problem(void **state)
{
    struct acme_problem p;
    char line[1024];
    const char *body = "{\"type\":\"urn:ietf:params:acme:error:unauthorized\",\"status\":403,"
                       "\"detail\":\"no\\u001b[31m match\\n\\r\\n\"}";
    assert_int_equal(acme_problem_parse(body, strlen(body), &p), 0);
    assert_string_equal(p.type, "urn:ietf:params:acme:error:unauthorized");
    assert_string_equal(p.detail, "no?[31m match");   /* one line, no escape sequence */
    acme_problem_format(&p, line, sizeof(line));
    assert_string_equal(line, "urn:ietf:params:acme:error:unauthorized: no?[31m match");
    assert_int_equal(acme_problem_errno(&p), -EACCES);
    acme_problem_done(&p);

    body = "{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"detail\":\"Order refused\","
           "\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
           "\"identifier\":{\"type\":\"dns\",\"value\":\"blog.example.org\"}}]}";
    assert_int_equal(acme_problem_parse(body, strlen(body), &p), 0);
    acme_problem_format(&p, line, sizeof(line));
    assert_string_equal(line, "urn:ietf:params:acme:error:rejectedIdentifier: Order refused for blog.example.org");
    assert_int_equal(acme_problem_errno(&p), -EINVAL);
    acme_problem_done(&p);

    body = "{\"type\":\"urn:ietf:params:acme:error:rateLimited\"}";
    assert_int_equal(acme_problem_parse(body, strlen(body), &p), 0);
    assert_null(p.detail);
    assert_int_equal(acme_problem_errno(&p), -EAGAIN);
    acme_problem_format(&p, line, 8);   /* truncated, still terminated */
    assert_string_equal(line, "urn:iet");
    acme_problem_done(&p);

    /* A long detail is cut to 512 bytes. */
    char big[4096];
    int n = snprintf(big, sizeof(big), "{\"detail\":\"");
    memset(big + n, 'x', 3000);
    strcpy(big + n + 3000, "\"}");
    assert_int_equal(acme_problem_parse(big, strlen(big), &p), 0);
    assert_int_equal(strlen(p.detail), 512);
    assert_int_equal(acme_problem_errno(&p), -EPROTO);
    acme_problem_done(&p);

    static const char *const bad[] = { "", "<html>", "{}", "{\"type\":1}", "{\"detail\":[]}", "[{\"type\":\"x\"}]",
                                       "{\"type\":\"x\"" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_true(acme_problem_parse(bad[i], strlen(bad[i]), &p) < 0);
}

#define ORDER_OK "{\"status\":\"pending\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}]," \
                 "\"authorizations\":[\"https://ca/authz/1\",\"https://ca/authz/2\"],\"finalize\":\"https://ca/fin/1\"}"

static void test_order(void **state)
{
    struct acme_order o;
    char err[256];
    assert_int_equal(acme_order_parse(ORDER_OK, strlen(ORDER_OK), &o, err, sizeof(err)), 0);
    assert_int_equal(o.status, ACME_STATUS_PENDING);
    assert_int_equal(o.n_authorizations, 2);
    assert_string_equal(o.authorizations[1], "https://ca/authz/2");
    assert_string_equal(o.finalize, "https://ca/fin/1");
    assert_null(o.certificate);
    assert_false(o.has_error);
    acme_order_done(&o);

    const char *body = "{\"status\":\"invalid\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\","
                       "\"error\":{\"type\":\"urn:ietf:params:acme:error:badCSR\",\"detail\":\"bad\"}}";
    assert_int_equal(acme_order_parse(body, strlen(body), &o, err, sizeof(err)), 0);
    assert_int_equal(o.status, ACME_STATUS_INVALID);
    assert_true(o.has_error);
    assert_string_equal(o.error.detail, "bad");
    acme_order_done(&o);

    body = "{\"status\":\"valid\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\","
           "\"certificate\":\"https://ca/cert/1\"}";
    assert_int_equal(acme_order_parse(body, strlen(body), &o, err, sizeof(err)), 0);
    assert_string_equal(o.certificate, "https://ca/cert/1");
    acme_order_done(&o);

    static const struct { const char *body, *why; } bad[] = {
        { "{\"status\":\"weird\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\"}", "status" },
        { "{\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\"}", "status" },
        { "{\"status\":\"ready\",\"authorizations\":[],\"finalize\":\"https://ca/f\"}", "authorizations" },
        { "{\"status\":\"ready\",\"authorizations\":\"https://ca/a\",\"finalize\":\"https://ca/f\"}", "authorizations" },
        { "{\"status\":\"ready\",\"authorizations\":[\"https://ca/a\",7],\"finalize\":\"https://ca/f\"}", "not an https URL" },
        { "{\"status\":\"ready\",\"authorizations\":[\"https://ca/a\"]}", "no \"finalize\"" },
        { "{\"status\":\"ready\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"file:///etc/passwd\"}", "https" },
        { "{\"status\":\"ready\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\",\"certificate\":{}}",
          "\"certificate\"" },
        { "{\"status\":\"invalid\",\"authorizations\":[\"https://ca/a\"],\"finalize\":\"https://ca/f\",\"error\":\"x\"}",
          "problem document" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err[0] = 0;
        assert_int_equal(acme_order_parse(bad[i].body, strlen(bad[i].body), &o, err, sizeof(err)), -EPROTO);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: %s", bad[i].body, err);
        assert_null(o.authorizations);
    }
    for (size_t n = 0; n < strlen(ORDER_OK); n++)
        assert_int_equal(acme_order_parse(ORDER_OK, n, &o, err, sizeof(err)), -EPROTO);

    /* More authorizations than an order may hold. */
    struct buf b = BUF_INIT(1 << 20);
    buf_append_str(&b, "{\"status\":\"pending\",\"finalize\":\"https://ca/f\",\"authorizations\":[");
    for (int i = 0; i <= ACME_HOSTS_MAX; i++)
        buf_printf(&b, "%s\"https://ca/a/%d\"", i ? "," : "", i);
    buf_append_str(&b, "]}");
    assert_int_equal(acme_order_parse(b.data, b.len, &o, err, sizeof(err)), -EPROTO);
    buf_done(&b);
}

static void test_authz(void **state)
{
    struct acme_authz a;
    char err[256];
    const char *body = "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\"},"
                       "\"challenges\":[{\"type\":\"dns-01\",\"url\":\"https://ca/c/1\",\"token\":\"t/1\"},"
                       "{\"type\":\"http-01\",\"url\":\"https://ca/c/2\",\"token\":\"tok_2-X\",\"status\":\"pending\"}]}";
    assert_int_equal(acme_authz_parse(body, strlen(body), &a, err, sizeof(err)), 0);
    assert_int_equal(a.status, ACME_STATUS_PENDING);
    assert_string_equal(a.identifier, "a.example");
    assert_string_equal(a.http01_url, "https://ca/c/2");
    assert_string_equal(a.http01_token, "tok_2-X");
    assert_int_equal(a.http01_status, ACME_STATUS_PENDING);
    assert_false(a.wildcard);
    acme_authz_done(&a);

    body = "{\"status\":\"invalid\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\"},"
           "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://ca/c/2\",\"token\":\"tok\",\"status\":\"invalid\","
           "\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\",\"detail\":\"refused\"}}]}";
    assert_int_equal(acme_authz_parse(body, strlen(body), &a, err, sizeof(err)), 0);
    assert_true(a.has_error);
    assert_string_equal(a.error.type, "urn:ietf:params:acme:error:connection");
    acme_authz_done(&a);

    /* Only dns-01 on a wildcard: parsed, no http-01. */
    body = "{\"status\":\"pending\",\"wildcard\":true,\"identifier\":{\"type\":\"dns\",\"value\":\"example.org\"},"
           "\"challenges\":[{\"type\":\"dns-01\",\"url\":\"https://ca/c/1\",\"token\":\"t\"}]}";
    assert_int_equal(acme_authz_parse(body, strlen(body), &a, err, sizeof(err)), 0);
    assert_true(a.wildcard);
    assert_null(a.http01_url);
    acme_authz_done(&a);

    static const struct { const char *body, *why; } bad[] = {
        /* A token that would walk out of /.well-known/acme-challenge/. */
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
          "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://ca/c\",\"token\":\"../../etc/passwd\",\"status\":\"pending\"}]}",
          "token" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
          "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://ca/c\",\"token\":\"\",\"status\":\"pending\"}]}",
          "token" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},"
          "\"challenges\":[{\"type\":\"http-01\",\"token\":\"t\",\"status\":\"pending\"}]}", "\"url\"" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"ip\",\"value\":\"1.2.3.4\"},\"challenges\":[]}",
          "dns identifier" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\\u0000b\"},\"challenges\":[]}",
          "dns identifier" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":{}}", "challenges" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"challenges\":[1]}", "not an object" },
        { "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a\"},\"wildcard\":1,\"challenges\":[]}",
          "wildcard" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err[0] = 0;
        assert_int_equal(acme_authz_parse(bad[i].body, strlen(bad[i].body), &a, err, sizeof(err)), -EPROTO);
        if (!strstr(err, bad[i].why))
            fail_msg("%s: %s", bad[i].body, err);
        assert_null(a.identifier);
    }
}

static void test_account_status(void **state)
{
    enum acme_status s;
    char err[256];
    assert_int_equal(acme_account_parse("{\"status\":\"valid\"}", 18, &s, err, sizeof(err)), 0);
    assert_int_equal(s, ACME_STATUS_VALID);
    assert_int_equal(acme_account_parse("{\"status\":\"deactivated\"}", 24, &s, err, sizeof(err)), 0);
    assert_int_equal(s, ACME_STATUS_DEACTIVATED);
    assert_int_equal(acme_account_parse("", 0, &s, err, sizeof(err)), 0);
    assert_int_equal(s, ACME_STATUS_VALID);
    assert_int_equal(acme_account_parse("{\"status\":3}", 12, &s, err, sizeof(err)), -EPROTO);
    assert_int_equal(acme_account_parse("nope", 4, &s, err, sizeof(err)), -EPROTO);
}

static void test_retry_after(void **state)
{
    unsigned s = 99;
    time_t now = 1700000000;   /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(acme_retry_after_parse("5", 1, now, &s), 0);
    assert_int_equal(s, 5);
    assert_int_equal(acme_retry_after_parse(" 0 ", 3, now, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(acme_retry_after_parse("86400", 5, now, &s), 0);
    assert_int_equal(s, ACME_RETRY_AFTER_MAX);
    assert_int_equal(acme_retry_after_parse("99999999999999999999999", 23, now, &s), 0);
    assert_int_equal(s, ACME_RETRY_AFTER_MAX);
    assert_int_equal(acme_retry_after_parse("Tue, 14 Nov 2023 22:13:27 GMT", 29, now, &s), 0);
    assert_int_equal(s, 7);
    assert_int_equal(acme_retry_after_parse("Tue, 14 Nov 2023 22:13:00 GMT", 29, now, &s), 0);
    assert_int_equal(s, 0);
    static const char *const bad[] = { "", " ", "-1", "5s", "1.5", "tomorrow", "Tue, 14 Nov 2023 22:13:27" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(acme_retry_after_parse(bad[i], strlen(bad[i]), now, &s), -EINVAL);
}

static void test_host_and_url(void **state)
{
    static const char *const good[] = { "a", "blog.example.org", "*.example.org", "xn--bcher-kva.example",
                                        "127.0.0.1", "localhost", "A-1.b" };
    static const char *const bad[] = { "", ".", "a..b", "-a.b", "a-.b", "a.b.", "a b", "a/b", "*.", "a.*.b",
                                       "a_b.c", "é.example", "a:80" };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        assert_true(acme_host_valid(good[i]));
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (acme_host_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    char label[80];
    memset(label, 'a', 64);
    label[64] = 0;
    assert_false(acme_host_valid(label));
    label[63] = 0;
    assert_true(acme_host_valid(label));

    assert_true(acme_url_valid("https://ca/x", 12));
    assert_false(acme_url_valid("https://", 8));
    assert_false(acme_url_valid("http://ca/x", 11));
    assert_false(acme_url_valid("https://ca/\x7f", 12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_thumbprint_rfc7638),
        cmocka_unit_test(test_jwk_and_key_pem),
        cmocka_unit_test(test_jws),
        cmocka_unit_test(test_ecdsa_der_to_raw),
        cmocka_unit_test(test_csr),
        cmocka_unit_test(test_chain_check),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_problem),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_authz),
        cmocka_unit_test(test_account_status),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_host_and_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

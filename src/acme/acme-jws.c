/* Keys, JWK (RFC 7517/7638), JWS with ES256 (RFC 7515/7518), CSRs and the check of a
 * downloaded chain: everything of ACME that is cryptography and needs no network. */
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#include "acme/acme-internal.h"

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int acme_base64url(struct buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    int r = buf_reserve(out, (len + 2) / 3 * 4);
    if (r < 0)
        return r;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = { b64url_alphabet[v >> 18], b64url_alphabet[(v >> 12) & 63],
                      b64url_alphabet[(v >> 6) & 63], b64url_alphabet[v & 63] };
        buf_append(out, q, 4);
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[2] = { b64url_alphabet[v >> 18], b64url_alphabet[(v >> 12) & 63] };
        buf_append(out, q, 2);
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[3] = { b64url_alphabet[v >> 18], b64url_alphabet[(v >> 12) & 63],
                      b64url_alphabet[(v >> 6) & 63] };
        buf_append(out, q, 3);
    }
    return 0;
}

bool acme_token_valid(const char *s, size_t len)
{
    if (len == 0 || len > ACME_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool key_is_p256(EVP_PKEY *key)
{
    char group[64];
    if (!EVP_PKEY_is_a(key, "EC"))
        return false;
    if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
        return false;
    return streq(group, "prime256v1") || streq(group, "P-256");
}

/* An encrypted key must fail, never prompt on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

int acme_key_load(const char *pem, EVP_PKEY **ret)
{
    if (!pem)
        return -EINVAL;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        return -ENOMEM;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!key)
        return -EINVAL;
    if (!key_is_p256(key)) {
        EVP_PKEY_free(key);
        return -EINVAL;
    }
    *ret = key;
    return 0;
}

int acme_key_new(EVP_PKEY **ret)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key) {
        ERR_clear_error();
        return -EIO;
    }
    *ret = key;
    return 0;
}

/* The contents of a memory BIO as a NUL-terminated string. */
static int bio_steal(BIO *bio, char **ret)
{
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    if (n <= 0)
        return -EIO;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, p, (size_t)n);
    s[n] = 0;
    *ret = s;
    return 0;
}

int acme_key_pem(EVP_PKEY *key, char **ret_pem)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return -ENOMEM;
    int r = -EIO;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        r = bio_steal(bio, ret_pem);
    BIO_free(bio);
    ERR_clear_error();
    return r;
}

int acme_account_key_generate(char **ret_pem)
{
    EVP_PKEY *key = NULL;
    int r = acme_key_new(&key);
    if (r < 0)
        return r;
    r = acme_key_pem(key, ret_pem);
    EVP_PKEY_free(key);
    return r;
}

/* x and y of an EC P-256 public key, base64url of their 32-byte big-endian forms. */
static int ec_coordinates(EVP_PKEY *key, char x[static 44], char y[static 44])
{
    BIGNUM *bx = NULL, *by = NULL;
    unsigned char raw[32];
    int r = -EIO;
    if (!key_is_p256(key))
        return -EINVAL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by))
        goto out;
    for (int i = 0; i < 2; i++) {
        struct buf b = BUF_INIT(64);
        if (BN_bn2binpad(i == 0 ? bx : by, raw, sizeof(raw)) != (int)sizeof(raw))
            goto out;
        r = acme_base64url(&b, raw, sizeof(raw));
        if (r < 0 || b.len != 43) {
            buf_done(&b);
            r = r < 0 ? r : -EIO;
            goto out;
        }
        memcpy(i == 0 ? x : y, b.data, 44);
        buf_done(&b);
    }
    r = 0;
out:
    BN_free(bx);
    BN_free(by);
    ERR_clear_error();
    return r;
}

int acme_jwk_write(struct json_writer *w, EVP_PKEY *key)
{
    char x[44], y[44];
    int r = ec_coordinates(key, x, y);
    if (r < 0)
        return r;
    json_object_begin(w);
    json_kv_string(w, "crv", "P-256");
    json_kv_string(w, "kty", "EC");
    json_kv_string(w, "x", x);
    json_kv_string(w, "y", y);
    json_object_end(w);
    return 0;
}

int acme_thumbprint_members(const char *const *names, const char *const *values, size_t n,
                            char ret[static ACME_THUMBPRINT_LEN + 1])
{
    struct buf json = BUF_INIT(64 * 1024), b64 = BUF_INIT(64);
    struct json_writer w;
    unsigned char digest[32];
    int r;

    json_writer_init(&w, &json, false);
    json_object_begin(&w);
    for (size_t i = 0; i < n; i++)
        json_kv_string(&w, names[i], values[i]);
    json_object_end(&w);
    r = json_writer_finish(&w);
    if (r < 0)
        goto out;
    if (!EVP_Digest(json.data, json.len, digest, NULL, EVP_sha256(), NULL)) {
        r = -EIO;
        goto out;
    }
    r = acme_base64url(&b64, digest, sizeof(digest));
    if (r < 0)
        goto out;
    memcpy(ret, b64.data, ACME_THUMBPRINT_LEN + 1);
out:
    buf_done(&json);
    buf_done(&b64);
    return r;
}

int acme_jwk_thumbprint(EVP_PKEY *key, char ret[static ACME_THUMBPRINT_LEN + 1])
{
    char x[44], y[44];
    int r = ec_coordinates(key, x, y);
    if (r < 0)
        return r;
    const char *names[] = { "crv", "kty", "x", "y" };
    const char *values[] = { "P-256", "EC", x, y };
    return acme_thumbprint_members(names, values, 4, ret);
}

int acme_ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char ret[static 64])
{
    const unsigned char *p = der;
    if (len > 256)
        return -EINVAL;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig || p != der + len) {
        ECDSA_SIG_free(sig);
        ERR_clear_error();
        return -EINVAL;
    }
    const BIGNUM *r_, *s_;
    ECDSA_SIG_get0(sig, &r_, &s_);
    int r = 0;
    if (BN_bn2binpad(r_, ret, 32) != 32 || BN_bn2binpad(s_, ret + 32, 32) != 32)
        r = -EINVAL;
    ECDSA_SIG_free(sig);
    ERR_clear_error();
    return r;
}

static int sign_es256(EVP_PKEY *key, const char *data, size_t len, unsigned char raw[static 64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[160];
    size_t der_len = sizeof(der);
    int r = -EIO;
    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)data, len) == 1)
        r = acme_ecdsa_der_to_raw(der, der_len, raw);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return r < 0 ? -EIO : 0;
}

int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, struct buf *out)
{
    struct buf header = BUF_INIT(16 * 1024), input = BUF_INIT(2 * ACME_BODY_MAX), sig = BUF_INIT(128);
    struct json_writer w;
    unsigned char raw[64];
    int r;

    json_writer_init(&w, &header, false);
    json_object_begin(&w);
    json_kv_string(&w, "alg", "ES256");
    if (kid)
        json_kv_string(&w, "kid", kid);
    else {
        json_key(&w, "jwk");
        r = acme_jwk_write(&w, key);
        if (r < 0)
            goto out;
    }
    json_kv_string(&w, "nonce", nonce);
    json_kv_string(&w, "url", url);
    json_object_end(&w);
    r = json_writer_finish(&w);
    if (r < 0)
        goto out;

    /* The signing input is BASE64URL(header) "." BASE64URL(payload). */
    r = acme_base64url(&input, header.data, header.len);
    size_t header_b64_len = input.len;
    if (r >= 0)
        r = buf_append_char(&input, '.');
    if (r >= 0 && payload)
        r = acme_base64url(&input, payload, strlen(payload));
    if (r < 0)
        goto out;
    r = sign_es256(key, input.data, input.len, raw);
    if (r < 0)
        goto out;
    r = acme_base64url(&sig, raw, sizeof(raw));
    if (r < 0)
        goto out;

    input.data[header_b64_len] = 0;
    json_writer_init(&w, out, false);
    json_object_begin(&w);
    json_kv_string(&w, "protected", input.data);
    json_kv_string(&w, "payload", input.data + header_b64_len + 1);
    json_kv_string(&w, "signature", sig.data);
    json_object_end(&w);
    r = json_writer_finish(&w);
out:
    buf_done(&header);
    buf_done(&input);
    buf_done(&sig);
    return r;
}

int acme_csr_b64(EVP_PKEY *key, const char *const *hosts, size_t n_hosts, struct buf *out)
{
    X509_REQ *req = X509_REQ_new();
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext = NULL;
    unsigned char *der = NULL;
    int r = -ENOMEM;

    if (!req || !names || !exts || n_hosts == 0)
        goto out;
    r = -EIO;
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req, key))
        goto out;
    /* The CN is optional for ACME CAs; keep it for old software that shows it. */
    if (strlen(hosts[0]) <= 64 &&
        !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                                    (const unsigned char *)hosts[0], -1, -1, 0))
        goto out;
    for (size_t i = 0; i < n_hosts; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!g || !s || !ASN1_STRING_set(s, hosts[i], (int)strlen(hosts[i]))) {
            GENERAL_NAME_free(g);
            ASN1_IA5STRING_free(s);
            goto out;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        if (!sk_GENERAL_NAME_push(names, g)) {
            GENERAL_NAME_free(g);
            goto out;
        }
    }
    ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
    if (!ext || !sk_X509_EXTENSION_push(exts, ext))
        goto out;
    ext = NULL;   /* owned by exts now */
    if (!X509_REQ_add_extensions(req, exts) || !X509_REQ_sign(req, key, EVP_sha256()))
        goto out;
    int n = i2d_X509_REQ(req, &der);
    if (n <= 0)
        goto out;
    r = acme_base64url(out, der, (size_t)n);
out:
    OPENSSL_free(der);
    X509_EXTENSION_free(ext);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(names);
    X509_REQ_free(req);
    ERR_clear_error();
    return r;
}

int acme_chain_check(const char *pem, size_t len, EVP_PKEY *leaf_key, char **ret_pem,
                     char *err, size_t err_size)
{
    BIO *in = NULL, *outb = BIO_new(BIO_s_mem());
    X509 *leaf = NULL;
    int r = -ENOMEM, n = 0;

    if (len > ACME_BODY_MAX || len > INT32_MAX) {
        snprintf(err, err_size, "the certificate chain is too large");
        r = -EPROTO;
        goto out;
    }
    in = BIO_new_mem_buf(pem, (int)len);
    if (!in || !outb)
        goto out;
    for (;;) {
        X509 *x = PEM_read_bio_X509(in, NULL, no_password, NULL);
        if (!x)
            break;
        if (++n > 10) {
            X509_free(x);
            snprintf(err, err_size, "the certificate chain holds more than 10 certificates");
            r = -EPROTO;
            goto out;
        }
        if (!PEM_write_bio_X509(outb, x)) {
            X509_free(x);
            r = -EIO;
            goto out;
        }
        if (!leaf)
            leaf = x;
        else
            X509_free(x);
    }
    if (n == 0) {
        snprintf(err, err_size, "the server sent no PEM certificate");
        r = -EPROTO;
        goto out;
    }
    if (leaf_key && EVP_PKEY_eq(X509_get0_pubkey(leaf), leaf_key) != 1) {
        snprintf(err, err_size, "the server's certificate is not for the key of the request");
        r = -EPROTO;
        goto out;
    }
    r = bio_steal(outb, ret_pem);
out:
    X509_free(leaf);
    BIO_free(in);
    BIO_free(outb);
    ERR_clear_error();
    return r;
}

/* The local CA and the certificates it issues. Every certificate is built by
 * cert_new() (version, serial, validity, names, key) and then given its extensions;
 * the subjectAltName is built as GENERAL_NAMES rather than through a configuration
 * string, so that no host name is ever parsed as configuration syntax. */
#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "certs/certs.h"
#include "common/fs.h"

#define CA_DAYS 3650
#define CA_FILE_MAX (64 * 1024)
#define X509_CN_MAX 64   /* ub-common-name, RFC 5280 */

struct certs_ca {
    EVP_PKEY *key;
    X509 *cert;
    char *cert_pem;
};

static void x509_freep(X509 **p) { X509_free(*p); }
static void pkey_freep(EVP_PKEY **p) { EVP_PKEY_free(*p); }
static void bio_freep(BIO **p) { BIO_free(*p); }
static void gens_freep(GENERAL_NAMES **p) { GENERAL_NAMES_free(*p); }

/* Key material is wiped before its memory goes back to the allocator. */
static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}
static void free_secretp(char **p) { free_secret(*p); }

/* Writes the message into err, with OpenSSL's reason for the last failure when it
 * has one, and empties OpenSSL's error queue (it is per thread and would otherwise
 * be blamed on a later call). */
_printf_(4, 5) static int fail(int r, char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    if (e) {
        char reason[256];
        size_t len = strlen(err);
        ERR_error_string_n(e, reason, sizeof(reason));
        snprintf(err + len, n - len, " (%s)", reason);
    }
    ERR_clear_error();
    return r;
}

/* An encrypted key is not ours: never let OpenSSL prompt for a passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *data)
{
    return -1;
}

static int bio_to_string(BIO *b, char **ret)
{
    char *data;
    long len = BIO_get_mem_data(b, &data);
    if (len <= 0)
        return -EIO;
    char *s = malloc((size_t)len + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, data, (size_t)len);
    s[len] = 0;
    *ret = s;
    return 0;
}

static int cert_to_pem(X509 *x, char **ret)
{
    _cleanup_(bio_freep) BIO *b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_X509(b, x))
        return -ENOMEM;
    return bio_to_string(b, ret);
}

/* PKCS#8, unencrypted. The memory BIO's buffer is cleared when freed. */
static int key_to_pem(EVP_PKEY *key, char **ret)
{
    _cleanup_(bio_freep) BIO *b = BIO_new(BIO_s_secmem());
    if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL))
        return -ENOMEM;
    return bio_to_string(b, ret);
}

static int asn1_time_to_unix(const ASN1_TIME *t, int64_t *ret)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return -EBADMSG;
    *ret = (int64_t)timegm(&tm);
    return 0;
}

/* 128 random bits, the top one cleared (a serial is a positive INTEGER) and the next
 * one set so that every serial has the same 16-byte length. */
static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -EIO;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    if (!bn)
        return -ENOMEM;
    ASN1_INTEGER *ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -EIO;
}

/* A certificate without extensions or signature: subject CN cn (none when NULL),
 * issued by issuer (NULL: self-issued), valid from an hour ago to days from now. */
static int cert_new(EVP_PKEY *key, const char *cn, X509 *issuer, long days, X509 **ret)
{
    _cleanup_(x509_freep) X509 *x = X509_new();
    if (!x)
        return -ENOMEM;
    int r = set_random_serial(x);
    if (r < 0)
        return r;
    X509_NAME *subject = X509_get_subject_name(x);
    if (!X509_set_version(x, X509_VERSION_3) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
        (cn && !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0)) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject) ||
        !X509_set_pubkey(x, key))
        return -EIO;
    *ret = TAKE_PTR(x);
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!e)
        return -EIO;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -EIO;
}

/* ---- the CA ---- */

void certs_ca_free(struct certs_ca *ca)
{
    if (!ca)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca->cert_pem);
    free(ca);
}

static void certs_ca_freep(struct certs_ca **ca)
{
    certs_ca_free(*ca);
}

const char *certs_ca_cert_pem(const struct certs_ca *ca)
{
    return ca->cert_pem;
}

static int ca_create(struct certs_ca *ca, const char *key_path, const char *cert_path, const char *hostname,
                     char *err, size_t n)
{
    char cn[X509_CN_MAX + 1];
    snprintf(cn, sizeof(cn), "berth local CA (%.*s)", X509_CN_MAX - 17, hostname && *hostname ? hostname : "?");

    ca->key = EVP_EC_gen("P-256");
    if (!ca->key)
        return fail(-EIO, err, n, "cannot generate the CA's key");
    int r = cert_new(ca->key, cn, NULL, CA_DAYS, &ca->cert);
    if (r < 0)
        return fail(r, err, n, "cannot build the CA certificate");
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->cert, ca->cert, NULL, NULL, 0);
    if ((r = add_ext(ca->cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
        (r = add_ext(ca->cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
        (r = add_ext(ca->cert, &ctx, NID_subject_key_identifier, "hash")) < 0)
        return fail(r, err, n, "cannot add the CA certificate's extensions");
    if (X509_sign(ca->cert, ca->key, EVP_sha256()) <= 0)
        return fail(-EIO, err, n, "cannot sign the CA certificate");

    _cleanup_(free_secretp) char *key_pem = NULL;
    if ((r = key_to_pem(ca->key, &key_pem)) < 0 || (r = cert_to_pem(ca->cert, &ca->cert_pem)) < 0)
        return fail(r, err, n, "cannot encode the CA");
    /* The key first: a ca.pem on disk always has its key beside it. */
    r = write_file_atomic(key_path, key_pem, strlen(key_pem), 0600);
    if (r < 0)
        return fail(r, err, n, "cannot write %s: %s", key_path, strerror(-r));
    r = write_file_atomic(cert_path, ca->cert_pem, strlen(ca->cert_pem), 0644);
    if (r < 0) {
        /* No client can trust a CA whose certificate was never written: the next
         * start may create a new one instead of finding a key alone. */
        (void)unlink(key_path);
        return fail(r, err, n, "cannot write %s: %s", cert_path, strerror(-r));
    }
    return 0;
}

static int ca_load(struct certs_ca *ca, const char *key_path, const char *cert_path, char *err, size_t n)
{
    _cleanup_(free_secretp) char *key_pem = NULL;
    _cleanup_free_ char *cert_pem = NULL;
    size_t key_len, cert_len;

    int r = read_file(key_path, CA_FILE_MAX, &key_pem, &key_len);
    if (r < 0)
        return fail(r, err, n, "cannot read the CA key %s: %s", key_path, strerror(-r));
    r = read_file(cert_path, CA_FILE_MAX, &cert_pem, &cert_len);
    if (r < 0)
        return fail(r, err, n, "cannot read the CA certificate %s: %s", cert_path, strerror(-r));

    _cleanup_(bio_freep) BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
    _cleanup_(bio_freep) BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
    if (!kb || !cb)
        return -ENOMEM;
    ca->key = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL);
    if (!ca->key)
        return fail(-EBADMSG, err, n, "the CA key %s is damaged or not an unencrypted PEM private key", key_path);
    ca->cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    if (!ca->cert)
        return fail(-EBADMSG, err, n, "the CA certificate %s is damaged or not a PEM certificate", cert_path);
    if (X509_check_ca(ca->cert) < 1)
        return fail(-EBADMSG, err, n, "the CA certificate %s is not a CA certificate", cert_path);
    if (X509_check_private_key(ca->cert, ca->key) != 1)
        return fail(-EKEYREJECTED, err, n, "the CA key %s does not match the CA certificate %s", key_path,
                    cert_path);
    if ((r = cert_to_pem(ca->cert, &ca->cert_pem)) < 0)
        return fail(r, err, n, "cannot encode the CA certificate %s", cert_path);
    return 0;
}

static int file_present(const char *path, bool *ret, char *err, size_t n)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        *ret = true;
        return 0;
    }
    if (errno != ENOENT)
        return fail(-errno, err, n, "cannot look at %s: %m", path);
    *ret = false;
    return 0;
}

int certs_ca_load_or_create(const char *dir, const char *hostname, struct certs_ca **ret,
                            bool *ret_created, char *err, size_t n)
{
    char key_path[4096], cert_path[4096];
    bool has_key = false, has_cert = false;
    int r;

    snprintf(key_path, sizeof(key_path), "%s/" CERTS_CA_KEY_FILE, dir);
    snprintf(cert_path, sizeof(cert_path), "%s/" CERTS_CA_CERT_FILE, dir);
    if ((r = file_present(key_path, &has_key, err, n)) < 0 || (r = file_present(cert_path, &has_cert, err, n)) < 0)
        return r;
    if (has_key && !has_cert)
        return fail(-ENOENT, err, n, "the CA key %s is there without its certificate %s (a CA creation was "
                    "interrupted, or the certificate was removed); no client can trust a CA without it, so "
                    "remove %s to have a new CA created", key_path, cert_path, key_path);
    if (has_cert && !has_key)
        return fail(-ENOENT, err, n, "the CA certificate %s is there without its key %s; restore the key, or "
                    "remove %s to have a new CA created (clients that trust the old one must then trust the new)",
                    cert_path, key_path, cert_path);

    _cleanup_(certs_ca_freep) struct certs_ca *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return -ENOMEM;
    r = has_key ? ca_load(ca, key_path, cert_path, err, n) : ca_create(ca, key_path, cert_path, hostname, err, n);
    if (r < 0)
        return r;
    if (ret_created)
        *ret_created = !has_key;
    *ret = TAKE_PTR(ca);
    return 0;
}

/* ---- leaves ---- */

static bool ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

bool certs_host_valid(const char *host)
{
    if (!host)
        return false;
    size_t len = strlen(host), label = 0;
    if (len == 0 || len > 253)
        return false;
    if (ip_literal(host))
        return true;
    const char *p = host;
    if (p[0] == '*' && p[1] == '.')
        p += 2;
    for (;; p++) {
        if (*p == '.' || *p == 0) {
            if (label == 0 || label > 63)
                return false;
            if (*p == 0)
                return true;
            label = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-') {
            label++;
        } else {
            return false;
        }
    }
}

static int san_add(GENERAL_NAMES *gens, const char *host)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    if (!g)
        return -ENOMEM;
    if (ip_literal(host)) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
        if (!ip) {
            GENERAL_NAME_free(g);
            return -EINVAL;
        }
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
        if (!dns || !ASN1_STRING_set(dns, host, -1)) {
            ASN1_IA5STRING_free(dns);
            GENERAL_NAME_free(g);
            return -ENOMEM;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, dns);
    }
    if (!sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return -ENOMEM;
    }
    return 0;
}

static int leaf_issue(struct certs_ca *ca, const char *const *hosts, size_t n_hosts, unsigned days,
                      struct certs_leaf *ret)
{
    _cleanup_(pkey_freep) EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key)
        return -EIO;
    /* A longer name cannot be a CN; the subjectAltName, which clients use, has it. */
    bool has_cn = strlen(hosts[0]) <= X509_CN_MAX;
    _cleanup_(x509_freep) X509 *x = NULL;
    int r = cert_new(key, has_cn ? hosts[0] : NULL, ca->cert, (long)days, &x);
    if (r < 0)
        return r;
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
    if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
        (r = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature")) < 0 ||
        (r = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth")) < 0 ||
        (r = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) < 0 ||
        (r = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) < 0)
        return r;
    _cleanup_(gens_freep) GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens)
        return -ENOMEM;
    for (size_t i = 0; i < n_hosts; i++)
        if ((r = san_add(gens, hosts[i])) < 0)
            return r;
    /* RFC 5280 4.2.1.6: with an empty subject the subjectAltName is critical. */
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, has_cn ? 0 : 1, X509V3_ADD_DEFAULT) != 1)
        return -EIO;
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
        return -EIO;

    struct certs_leaf leaf = { 0 };
    if ((r = asn1_time_to_unix(X509_get0_notAfter(x), &leaf.not_after)) < 0 ||
        (r = cert_to_pem(x, &leaf.cert_pem)) < 0 || (r = key_to_pem(key, &leaf.key_pem)) < 0) {
        certs_leaf_done(&leaf);
        return r;
    }
    *ret = leaf;
    return 0;
}

int certs_leaf_issue(struct certs_ca *ca, const char *const *hosts, size_t n_hosts, unsigned days,
                     struct certs_leaf *ret)
{
    if (!ca || n_hosts == 0 || n_hosts > CERTS_MAX_HOSTS || days == 0 || days > 100 * 366)
        return -EINVAL;
    for (size_t i = 0; i < n_hosts; i++)
        if (!certs_host_valid(hosts[i]))
            return -EINVAL;
    int r = leaf_issue(ca, hosts, n_hosts, days, ret);
    ERR_clear_error();
    return r;
}

void certs_leaf_done(struct certs_leaf *leaf)
{
    if (!leaf)
        return;
    free(leaf->cert_pem);
    free_secret(leaf->key_pem);
    *leaf = (struct certs_leaf){ 0 };
}

/* notBefore and notAfter of the first certificate in pem, as unix seconds. */
static int pem_validity(const char *pem, int64_t *ret_from, int64_t *ret_to)
{
    if (!pem)
        return -EBADMSG;
    _cleanup_(bio_freep) BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b)
        return -ENOMEM;
    _cleanup_(x509_freep) X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    int r = x ? asn1_time_to_unix(X509_get0_notBefore(x), ret_from) : -EBADMSG;
    if (r >= 0)
        r = asn1_time_to_unix(X509_get0_notAfter(x), ret_to);
    ERR_clear_error();
    return r;
}

int certs_pem_not_after(const char *pem, int64_t *ret)
{
    int64_t from;
    return pem_validity(pem, &from, ret);
}

int certs_pem_check(const char *cert_pem, const char *key_pem, const char *hosts, char *err, size_t err_size)
{
    _cleanup_(bio_freep) BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    _cleanup_(bio_freep) BIO *kb = BIO_new_mem_buf(key_pem, -1);
    if (!cb || !kb) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    _cleanup_(x509_freep) X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    int r = 0;
    if (!x || !key)
        r = snprintf(err, err_size, "%s", !x ? "no certificate" : "no private key");
    else if (X509_check_private_key(x, key) != 1)
        r = snprintf(err, err_size, "the certificate is not for its key");
    for (const char *h = hosts; r == 0 && h && *h;) {
        size_t n = strcspn(h, "\n");
        unsigned char ip[16];
        char name[300];
        snprintf(name, sizeof(name), "%.*s", (int)MIN(n, sizeof(name) - 1), h);
        int family = strchr(name, ':') ? AF_INET6 : AF_INET;
        int ok = inet_pton(family, name, ip) == 1
                     ? X509_check_ip(x, ip, family == AF_INET6 ? 16 : 4, 0)
                     : X509_check_host(x, name, strlen(name), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
        if (ok != 1)
            r = snprintf(err, err_size, "the certificate does not name %.255s", name);
        h += n + (h[n] == '\n');
    }
    EVP_PKEY_free(key);
    ERR_clear_error();
    return r == 0 ? 0 : -EBADMSG;
}

int certs_pem_lifetime(const char *pem, int64_t *ret)
{
    int64_t from = 0, to = 0;
    int r = pem_validity(pem, &from, &to);
    if (r >= 0)
        *ret = to - from;
    return r;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int certs_hosts_join(const char *const *hosts, size_t n_hosts, char **ret)
{
    _cleanup_free_ const char **sorted = malloc(MAX(n_hosts, (size_t)1) * sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    size_t len = 1;
    for (size_t i = 0; i < n_hosts; i++) {
        sorted[i] = hosts[i];
        len += strlen(hosts[i]) + 1;
    }
    qsort(sorted, n_hosts, sizeof(*sorted), cmp_str);
    char *s = malloc(len), *p = s;
    if (!s)
        return -ENOMEM;
    for (size_t i = 0; i < n_hosts; i++) {
        if (i > 0 && streq(sorted[i], sorted[i - 1]))
            continue;
        if (p != s)
            *p++ = '\n';
        size_t l = strlen(sorted[i]);
        memcpy(p, sorted[i], l);
        p += l;
    }
    *p = 0;
    *ret = s;
    return 0;
}

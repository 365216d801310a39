/* berth's local certificate authority: the CA berthd keeps in <state>/tls/ and the
 * server certificates it issues to sites from it (EC P-256, SHA-256, OpenSSL 3 EVP
 * and X509 APIs). The front serves what comes out of here; clients trust the CA
 * once, by its ca.pem. See docs/internals/certs.md.
 *
 * Library code: nothing here logs. Functions that read or write files describe a
 * failure in a caller-given err buffer, naming the file; the caller logs it. */
#pragma once

#include "common/util.h"

/* Inside the CA directory. */
#define CERTS_CA_KEY_FILE "ca.key"     /* PKCS#8 PEM, mode 0600 */
#define CERTS_CA_CERT_FILE "ca.pem"    /* PEM, mode 0644: what clients trust */

/* The most host names one certificate covers. */
#define CERTS_MAX_HOSTS 100

struct certs_ca;

/* Loads the CA from dir/ca.key and dir/ca.pem, or creates both when neither exists
 * (ret_created, may be NULL, says which). dir must exist; its owner and mode are the
 * caller's business. A new CA: EC P-256 key, subject CN "berth local CA (<hostname>)"
 * (hostname cut to fit), CA:TRUE with pathlen 0, keyCertSign+cRLSign, valid 10 years;
 * the key is written first and the certificate last, each atomically (temp file,
 * fsync, rename), so a present ca.pem implies a complete key.
 * An existing CA is never replaced: one file without the other, a file that cannot
 * be read or parsed, a certificate that is not a CA, or a key that does not match
 * the certificate is an error (-ENOENT, -EBADMSG, -EKEYREJECTED, or the errno of
 * the failing read) described in err (size n), with the files left as they were. */
int certs_ca_load_or_create(const char *dir, const char *hostname, struct certs_ca **ret,
                            bool *ret_created, char *err, size_t n);
/* NULL-safe. */
void certs_ca_free(struct certs_ca *ca);
/* The CA certificate as PEM (borrowed from ca). */
const char *certs_ca_cert_pem(const struct certs_ca *ca);

/* A host name a certificate may name: an IPv4 or IPv6 literal, or labels of letters,
 * digits and '-' joined by '.', optionally after a leading "*.", at most 253 bytes
 * (labels 1..63 bytes). */
bool certs_host_valid(const char *host);

/* An issued server certificate; free its contents with certs_leaf_done. */
struct certs_leaf {
    char *cert_pem;        /* the leaf certificate alone (the CA is the trust anchor) */
    char *key_pem;         /* its private key, PKCS#8 PEM, unencrypted */
    int64_t not_after;     /* unix seconds */
};

/* Issues a server certificate for hosts (n_hosts 1..CERTS_MAX_HOSTS, each
 * certs_host_valid, else -EINVAL) with a new EC P-256 key: subject CN the first
 * host (left out when longer than X.509's 64 bytes), subjectAltName a DNS entry per
 * host or an IP entry per address literal, CA:FALSE, digitalSignature, serverAuth,
 * valid from an hour ago (clocks differ) to days from now. ret is untouched on
 * failure (-EINVAL, -ENOMEM, -EIO for an OpenSSL failure). */
int certs_leaf_issue(struct certs_ca *ca, const char *const *hosts, size_t n_hosts, unsigned days,
                     struct certs_leaf *ret);
/* Frees the strings of leaf and zeroes it. NULL-safe. */
void certs_leaf_done(struct certs_leaf *leaf);

/* The notAfter of the first certificate in pem, as unix seconds. -EBADMSG if pem
 * holds no certificate. */
int certs_pem_not_after(const char *pem, int64_t *ret);
/* Whether a certificate chain and key that came from outside (an ACME order) can
 * serve hosts ('\n'-joined): the first certificate in cert_pem is for key_pem's
 * key and names every one of hosts. 0, or -EBADMSG with why in err. */
int certs_pem_check(const char *cert_pem, const char *key_pem, const char *hosts, char *err, size_t err_size);

/* How long the first certificate in pem was issued for (notAfter - notBefore), in
 * seconds. -EBADMSG if pem holds no certificate. */
int certs_pem_lifetime(const char *pem, int64_t *ret);

/* The canonical form of a host list, as the store keeps it to tell whether a stored
 * certificate still covers a site's hosts: sorted, duplicates dropped, joined by
 * '\n'. Returns 0 and a malloc'd string, or -ENOMEM. */
int certs_hosts_join(const char *const *hosts, size_t n_hosts, char **ret);

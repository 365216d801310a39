/* Internal interfaces of the ACME client, shared by its .c files, its unit tests and
 * its fuzzer. Nothing outside src/acme, tests/unit/test-acme.c and fuzz/fuzz-acme-*.c
 * includes this. */
#pragma once

#include <openssl/evp.h>
#include <time.h>

#include "acme/acme.h"
#include "common/buf.h"
#include "common/json.h"

#define ACME_BODY_MAX (1u << 20)       /* any response body */
#define ACME_HEADER_MAX 8192           /* one response header line */
#define ACME_URL_MAX 2048              /* a URL the server hands us */
#define ACME_TOKEN_MAX 256             /* a challenge token or a nonce */
#define ACME_HOSTS_MAX 100
#define ACME_HOST_MAX 253
#define ACME_RETRY_AFTER_MAX 30        /* seconds: the longest wait a server can ask */
#define ACME_THUMBPRINT_LEN 43         /* base64url of a SHA-256, no padding */

/* ---- encoding and keys (acme-jws.c) ---- */

/* Appends base64url (RFC 4648 §5) of data[0..len), without padding. */
int acme_base64url(struct buf *out, const void *data, size_t len);
/* True if s[0..len) is 1..ACME_TOKEN_MAX base64url characters (tokens and nonces). */
bool acme_token_valid(const char *s, size_t len);
/* Loads a PEM private key; -EINVAL unless it is an EC P-256 key. */
int acme_key_load(const char *pem, EVP_PKEY **ret);
/* A new EC P-256 key. */
int acme_key_new(EVP_PKEY **ret);
/* The key's private half as PKCS#8 PEM (caller frees). */
int acme_key_pem(EVP_PKEY *key, char **ret_pem);
/* Writes the public JWK of an EC P-256 key, members in RFC 7638 order
 * ({"crv","kty","x","y"}), as one value on w. */
int acme_jwk_write(struct json_writer *w, EVP_PKEY *key);
/* RFC 7638 thumbprint of a JWK given as its required members: names[i]/values[i]
 * (string values), names already in lexicographic order. ret gets
 * ACME_THUMBPRINT_LEN characters and a NUL. */
int acme_thumbprint_members(const char *const *names, const char *const *values, size_t n,
                            char ret[static ACME_THUMBPRINT_LEN + 1]);
/* RFC 7638 thumbprint of an EC P-256 key. */
int acme_jwk_thumbprint(EVP_PKEY *key, char ret[static ACME_THUMBPRINT_LEN + 1]);
/* Converts a DER ECDSA-Sig-Value into JWS's fixed r||s (RFC 7518 §3.4): ret gets
 * 64 bytes. -EINVAL for a malformed or out-of-range signature. */
int acme_ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char ret[static 64]);
/* A flattened JWS (RFC 7515 §7.2.2) signed with ES256: protected header
 * {"alg":"ES256", then "kid":kid or (kid NULL) "jwk":<key's JWK>, "nonce", "url"};
 * payload is the JSON text, or NULL for POST-as-GET (empty payload). Appends to out. */
int acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                  const char *payload, struct buf *out);
/* A DER CSR for key with every host as a DNS subjectAltName (and the first as CN
 * when it fits in 64 bytes), appended to out as base64url. */
int acme_csr_b64(EVP_PKEY *key, const char *const *hosts, size_t n_hosts, struct buf *out);
/* Checks a PEM chain from the server: 1..10 certificates, nothing else but text
 * between them; when leaf_key is not NULL, the first certificate's public key must
 * be it. Returns the certificates re-encoded as PEM (caller frees). -EPROTO with a
 * reason in err otherwise. */
int acme_chain_check(const char *pem, size_t len, EVP_PKEY *leaf_key, char **ret_pem,
                     char *err, size_t err_size);

/* ---- server documents (acme-parse.c) ---- */

enum acme_status {
    ACME_STATUS_UNKNOWN,
    ACME_STATUS_PENDING,
    ACME_STATUS_READY,
    ACME_STATUS_PROCESSING,
    ACME_STATUS_VALID,
    ACME_STATUS_INVALID,
    ACME_STATUS_DEACTIVATED,
    ACME_STATUS_EXPIRED,
    ACME_STATUS_REVOKED,
};
const char *acme_status_name(enum acme_status s);

struct acme_directory {
    char *new_nonce, *new_account, *new_order;   /* owned, https:// URLs */
};
void acme_directory_done(struct acme_directory *d);

/* An ACME problem document (RFC 7807 / RFC 8555 §6.7): type and detail, each
 * sanitized to one line of printable ASCII (may be NULL when absent). */
struct acme_problem {
    char *type;
    char *detail;
    char *sub_identifier;   /* the first subproblem's identifier value, if any */
};
void acme_problem_done(struct acme_problem *p);

struct acme_order {
    enum acme_status status;
    char **authorizations;  /* n_authorizations URLs */
    size_t n_authorizations;
    char *finalize;
    char *certificate;      /* NULL until valid */
    struct acme_problem error;
    bool has_error;
};
void acme_order_done(struct acme_order *o);

struct acme_authz {
    enum acme_status status;
    char *identifier;       /* the dns identifier's value */
    bool wildcard;
    /* The http-01 challenge (NULL url when the server offered none). */
    char *http01_url;
    char *http01_token;
    enum acme_status http01_status;
    /* The first error any challenge carries. */
    struct acme_problem error;
    bool has_error;
};
void acme_authz_done(struct acme_authz *a);

/* Each parser reads untrusted bytes body[0..len): it checks every type, bounds every
 * string, and on failure returns -EPROTO (or -ENOMEM) with a reason in err, leaving
 * *ret zeroed. On success the caller owns *ret (free with its _done). */
int acme_directory_parse(const char *body, size_t len, struct acme_directory *ret, char *err, size_t err_size);
int acme_problem_parse(const char *body, size_t len, struct acme_problem *ret);
int acme_order_parse(const char *body, size_t len, struct acme_order *ret, char *err, size_t err_size);
int acme_authz_parse(const char *body, size_t len, struct acme_authz *ret, char *err, size_t err_size);
/* The account object's status (newAccount's answer): -EPROTO unless it is an object
 * whose status, when present, is a known status; an empty body counts as valid. */
int acme_account_parse(const char *body, size_t len, enum acme_status *ret, char *err, size_t err_size);
/* Writes "<type>: <detail>" (or what of it exists) into out; "for <identifier>" is
 * added when a subproblem named one. */
void acme_problem_format(const struct acme_problem *p, char *out, size_t n);
/* Maps a problem type to the errno acme_issue returns for it. */
int acme_problem_errno(const struct acme_problem *p);
/* Parses a Retry-After value (delta-seconds or IMF-fixdate, relative to now) into
 * seconds, capped at ACME_RETRY_AFTER_MAX. -EINVAL when it is neither. */
int acme_retry_after_parse(const char *s, size_t len, time_t now, unsigned *ret);
/* True for an https:// URL of at most ACME_URL_MAX printable ASCII bytes. */
bool acme_url_valid(const char *s, size_t len);
/* Checks a host name as acme_issue's documentation says. */
bool acme_host_valid(const char *s);

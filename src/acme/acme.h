/* ACME (RFC 8555) client: gets a certificate for a set of host names from an ACME
 * CA (Let's Encrypt, pebble) by answering http-01 challenges.
 *
 * The interface is blocking: berthd runs an issuance on a thread of its own. Nothing
 * here touches process-wide state that is not thread-safe: no signals (libcurl runs
 * with CURLOPT_NOSIGNAL), no exit, no environment, no locale; libcurl's global set-up
 * is done once, under pthread_once. Several issuances may run at the same time on
 * different threads. The caller should ignore SIGPIPE (berthd does) as with any
 * socket code, although libcurl already sends with MSG_NOSIGNAL.
 *
 * Every server answer is treated as hostile: bodies are capped at 1 MiB, headers at
 * 8 KiB, JSON is parsed strictly and every member's type is checked, waits the server
 * asks for (Retry-After) are capped, and the whole issuance ends at a deadline. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct acme_config {
    const char *directory_url;   /* https://... e.g. https://acme-v02.api.letsencrypt.org/directory */
    const char *ca_file;         /* PEM bundle to trust for the ACME server itself; NULL: the system's */
    const char *account_key_pem; /* the account's private key (EC P-256), PEM */
    const char *contact_email;   /* NULL: none */
    unsigned timeout_s;          /* whole-issuance limit (0: 300); each request gets at most 30 s of it */
    /* NULL: none. Another thread sets it to true to stop the issuance: it ends within
     * about a second (between requests, in a wait, or inside a request) with -ECANCELED. */
    const atomic_bool *cancel;
};

/* Publishes (publish=true) the key authorization of an http-01 challenge so that
 * GET http://<host>/.well-known/acme-challenge/<token> answers it (the body is exactly
 * key_authorization), and withdraws it (publish=false, key_authorization NULL) once
 * the order is done, failed or not. Returns 0 once the answer is live, or a negative
 * errno (which ends the issuance; the return value of a withdrawal is ignored).
 * token holds only base64url characters, so it is safe in a path. Called on the
 * thread that runs acme_issue. */
typedef int (*acme_challenge_fn)(void *data, const char *token, const char *key_authorization, bool publish);

/* Makes a new EC P-256 private key for an account. Returns 0 and the key as PKCS#8
 * PEM in *ret_pem (caller frees), or -ENOMEM/-EIO. */
int acme_account_key_generate(char **ret_pem);

/* Registers the account of cfg->account_key_pem (or finds it: newAccount with the
 * same key returns the existing one; the terms of service are agreed to), orders a
 * certificate for hosts[0..n_hosts), answers each authorization's http-01 challenge
 * through fn, polls (honouring Retry-After, capped at 30 s a wait), finalizes with a
 * CSR for a new EC P-256 key holding every host as a DNS subjectAltName, and
 * downloads the chain.
 *
 * hosts are DNS names (letters, digits, '-', '.', a leading "*." allowed; at most 253
 * bytes; 1..100 of them); which names the CA accepts is the CA's policy, and its
 * refusal comes back as its problem document. A wildcard needs dns-01, which this
 * client does not answer: such an order fails with -EPROTO, saying so.
 *
 * Returns 0 with *ret_cert_pem (the chain as PEM, leaf first, re-encoded from what
 * the server sent: certificates only), *ret_key_pem (the certificate's PKCS#8 key)
 * and, when ret_account_url is not NULL, *ret_account_url (the account's URL, the same
 * for every issuance with one key); the caller frees them. On failure returns a
 * negative errno, leaves the ret_* untouched, and writes a one-line human reason into
 * err (if err_size > 0): what was being done and, when the server sent an ACME
 * problem document, its type and detail, e.g. "authorization for blog.example.org
 * failed: urn:ietf:params:acme:error:unauthorized: ...". The errno says the class:
 *   -EINVAL     bad arguments or a key that is not EC P-256; or the CA refused the
 *               request as malformed / rejected an identifier
 *   -EACCES     the CA refused: unauthorized (a challenge failed), or another
 *               problem about the account or the order's authorizations
 *   -EAGAIN     the CA is rate-limiting or asked to come back later
 *   -ETIMEDOUT  the deadline passed (the server did not answer, or polls never ended)
 *   -ECANCELED  cfg->cancel became true
 *   -ECONNREFUSED / -EHOSTUNREACH  the server could not be reached
 *   -EPROTO     the server answered something RFC 8555 does not allow, or TLS failed
 *   -ENOMEM, -EIO  local failures
 * fn's own negative errno is returned as it is. */
int acme_issue(const struct acme_config *cfg, const char *const *hosts, size_t n_hosts,
               acme_challenge_fn fn, void *data, char **ret_cert_pem, char **ret_key_pem,
               char **ret_account_url, char *err, size_t err_size);

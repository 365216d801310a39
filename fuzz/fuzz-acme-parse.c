/* Feeds arbitrary bytes, as an ACME server's answer, to every parser of server
 * documents: directory, account, order, authorization, problem, Retry-After, and the
 * PEM chain check. None may crash or leak; what parses must satisfy the invariants
 * the issuance relies on (https URLs, base64url tokens, one-line problem text). */
#include <stdio.h>

#include "acme/acme-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[256], line[1024];

    struct acme_directory d;
    if (acme_directory_parse(text, size, &d, err, sizeof(err)) >= 0) {
        if (!acme_url_valid(d.new_nonce, strlen(d.new_nonce)) || !acme_url_valid(d.new_order, strlen(d.new_order)) ||
            !acme_url_valid(d.new_account, strlen(d.new_account)))
            abort();
        acme_directory_done(&d);
    }

    enum acme_status st;
    (void)acme_account_parse(text, size, &st, err, sizeof(err));

    struct acme_problem p;
    if (acme_problem_parse(text, size, &p) >= 0) {
        check_line(p.type);
        check_line(p.detail);
        check_line(p.sub_identifier);
        acme_problem_format(&p, line, sizeof(line));
        check_line(line);
        (void)acme_problem_errno(&p);
        acme_problem_done(&p);
    }

    struct acme_order o;
    if (acme_order_parse(text, size, &o, err, sizeof(err)) >= 0) {
        if (o.n_authorizations == 0 || o.n_authorizations > ACME_HOSTS_MAX || !o.finalize ||
            o.status == ACME_STATUS_UNKNOWN)
            abort();
        for (size_t i = 0; i < o.n_authorizations; i++)
            if (!acme_url_valid(o.authorizations[i], strlen(o.authorizations[i])))
                abort();
        acme_order_done(&o);
    }

    struct acme_authz a;
    if (acme_authz_parse(text, size, &a, err, sizeof(err)) >= 0) {
        check_line(a.identifier);
        if (a.http01_url && (!a.http01_token || !acme_token_valid(a.http01_token, strlen(a.http01_token))))
            abort();
        acme_authz_done(&a);
    }

    unsigned s;
    if (acme_retry_after_parse(text, size, 1700000000, &s) >= 0 && s > ACME_RETRY_AFTER_MAX)
        abort();

    char *pem = NULL;
    if (acme_chain_check(text, size, NULL, &pem, err, sizeof(err)) >= 0) {
        if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----"))
            abort();
        free(pem);
    }
    return 0;
}

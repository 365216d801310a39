/* The ACME issuance (RFC 8555 §7): directory → nonce → account → order → http-01
 * challenges → polls → finalize → certificate. One linear sequence; every step's
 * failure becomes one line in err naming the step and, when the server said why,
 * its problem document. */
#include <stdio.h>
#include <time.h>

#include "acme/acme-http.h"

#define DEFAULT_TIMEOUT_S 300
/* RFC 8555 §6.5 says to retry with the fresh nonce from a badNonce error. Once is
 * what a well-behaved server needs; a few more keep a server that rejects nonces at
 * random (pebble's PEBBLE_WFE_NONCEREJECT) from failing a whole issuance, and the
 * count stays bounded so a hostile server cannot loop us. */
#define BADNONCE_RETRIES 8
#define POLL_FIRST_MS 250
#define POLL_MAX_MS 4000
#define PEM_CHAIN "application/pem-certificate-chain"

struct issuance {
    const struct acme_config *cfg;
    struct acme_http http;
    struct acme_directory dir;
    EVP_PKEY *account_key;
    char thumbprint[ACME_THUMBPRINT_LEN + 1];
    char *kid;               /* the account URL */
    char *nonce;             /* the next nonce to use, if we have one */
    acme_challenge_fn fn;
    void *data;
    char **published;        /* tokens published through fn, withdrawn at the end */
    size_t n_published;
    char *err;
    size_t err_size;
};

static int fail(struct issuance *is, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(struct issuance *is, int r, const char *fmt, ...)
{
    va_list ap;
    if (is->err_size > 0) {
        va_start(ap, fmt);
        vsnprintf(is->err, is->err_size, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Prefixes what is already in err with "what: ". */
static int fail_prefix(struct issuance *is, int r, const char *what)
{
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", is->err_size > 0 ? is->err : "");
    return fail(is, r, "%s: %s", what, tmp);
}

static int fail_problem(struct issuance *is, const char *what, const struct acme_problem *p)
{
    char text[1024];
    acme_problem_format(p, text, sizeof(text));
    return fail(is, acme_problem_errno(p), "%s: %s", what, text);
}

/* Keeps the answer's Replay-Nonce for the next request, if it is one. */
static void take_nonce(struct issuance *is, struct acme_response *resp)
{
    if (resp->nonce && acme_token_valid(resp->nonce, strlen(resp->nonce))) {
        free(is->nonce);
        is->nonce = TAKE_PTR(resp->nonce);
    }
}

/* A non-2xx answer as an error line: the problem document when there is one. */
static int fail_status(struct issuance *is, const char *what, struct acme_response *resp)
{
    struct acme_problem p;
    if (acme_problem_parse(resp->body.data ? resp->body.data : "", resp->body.len, &p) >= 0) {
        int r = fail_problem(is, what, &p);
        acme_problem_done(&p);
        return r;
    }
    return fail(is, -EPROTO, "%s: the server answered HTTP %ld", what, resp->status);
}

static int get_nonce(struct issuance *is)
{
    struct acme_response resp;
    int r = acme_http_request(&is->http, "HEAD", is->dir.new_nonce, NULL, NULL, &resp, is->err, is->err_size);
    if (r < 0)
        return fail_prefix(is, r, "getting a nonce");
    take_nonce(is, &resp);
    if (resp.status != 200 && resp.status != 204)
        r = fail_status(is, "getting a nonce", &resp);
    else if (!is->nonce)
        r = fail(is, -EPROTO, "getting a nonce: the server sent no valid Replay-Nonce");
    acme_response_done(&resp);
    return r;
}

/* A signed POST (payload NULL: POST-as-GET) with the account's kid, or with its jwk
 * when there is no kid yet. On a 2xx answer returns 0 and resp (caller frees it). */
static int post(struct issuance *is, const char *url, const char *payload, const char *accept,
                struct acme_response *resp, const char *what)
{
    for (int attempt = 0;; attempt++) {
        struct buf body = BUF_INIT(2 * ACME_BODY_MAX + 4096);
        int r = 0;
        if (!is->nonce)
            r = get_nonce(is);
        if (r < 0)
            return fail_prefix(is, r, what);
        r = acme_jws_sign(is->account_key, is->kid, is->nonce, url, payload, &body);
        free(is->nonce);
        is->nonce = NULL;   /* a nonce is good for one request, whatever happens to it */
        if (r < 0) {
            buf_done(&body);
            return fail(is, r, "%s: signing the request failed", what);
        }
        r = acme_http_request(&is->http, "POST", url, &body, accept, resp, is->err, is->err_size);
        buf_done(&body);
        if (r < 0)
            return fail_prefix(is, r, what);
        take_nonce(is, resp);
        if (resp->status >= 200 && resp->status < 300)
            return 0;
        struct acme_problem p;
        bool bad_nonce = false;
        if (resp->status == 400 &&
            acme_problem_parse(resp->body.data ? resp->body.data : "", resp->body.len, &p) >= 0) {
            bad_nonce = streq_ptr(p.type, "urn:ietf:params:acme:error:badNonce");
            acme_problem_done(&p);
        }
        if (!bad_nonce || attempt >= BADNONCE_RETRIES) {
            r = fail_status(is, what, resp);
            acme_response_done(resp);
            return r;
        }
        acme_response_done(resp);
    }
}

/* Sleeps before the next poll: the server's Retry-After (capped) or *backoff_ms,
 * which doubles up to POLL_MAX_MS. -ETIMEDOUT if the deadline comes first. */
static int wait_poll(struct issuance *is, const struct acme_response *resp, unsigned *backoff_ms,
                     const char *what, enum acme_status status)
{
    uint64_t ms = *backoff_ms;
    unsigned s;
    if (resp->retry_after &&
        acme_retry_after_parse(resp->retry_after, strlen(resp->retry_after), time(NULL), &s) >= 0)
        ms = MAX((uint64_t)s * 1000, (uint64_t)POLL_FIRST_MS);
    else
        *backoff_ms = MIN(*backoff_ms * 2, (unsigned)POLL_MAX_MS);
    uint64_t until = now_ms() + ms;
    if (until >= is->http.deadline_ms)
        return fail(is, -ETIMEDOUT, "%s: still %s when the time limit of %u s ran out", what,
                    acme_status_name(status), is->cfg->timeout_s ? is->cfg->timeout_s : DEFAULT_TIMEOUT_S);
    /* In slices, so that a cancellation is seen within a tenth of a second. */
    for (uint64_t now = now_ms(); now < until; now = now_ms()) {
        if (acme_http_cancelled(&is->http))
            return fail(is, -ECANCELED, "%s: cancelled while %s", what, acme_status_name(status));
        uint64_t slice = MIN(until - now, (uint64_t)100);
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)slice * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    return 0;
}

static int fetch_directory(struct issuance *is)
{
    struct acme_response resp;
    const char *url = is->cfg->directory_url;
    int r = acme_http_request(&is->http, "GET", url, NULL, NULL, &resp, is->err, is->err_size);
    if (r < 0)
        return fail_prefix(is, r, "fetching the ACME directory");
    if (resp.status != 200)
        r = fail_status(is, "fetching the ACME directory", &resp);
    else {
        r = acme_directory_parse(resp.body.data ? resp.body.data : "", resp.body.len, &is->dir, is->err,
                                 is->err_size);
        if (r < 0)
            r = fail_prefix(is, r, "fetching the ACME directory");
    }
    acme_response_done(&resp);
    return r;
}

static int new_account(struct issuance *is)
{
    struct buf payload = BUF_INIT(64 * 1024);
    struct json_writer w;
    struct acme_response resp;
    enum acme_status status;

    json_writer_init(&w, &payload, false);
    json_object_begin(&w);
    json_kv_bool(&w, "termsOfServiceAgreed", true);
    if (is->cfg->contact_email) {
        json_key(&w, "contact");
        json_array_begin(&w);
        struct buf mailto = BUF_INIT(4096);
        int r = buf_printf(&mailto, "mailto:%s", is->cfg->contact_email);
        json_string(&w, r >= 0 ? mailto.data : "");
        buf_done(&mailto);
        if (r < 0) {
            buf_done(&payload);
            return fail(is, -EINVAL, "the contact address is too long");
        }
        json_array_end(&w);
    }
    json_object_end(&w);
    int r = json_writer_finish(&w);
    if (r < 0) {
        buf_done(&payload);
        return fail(is, r, "writing the account request failed");
    }
    r = post(is, is->dir.new_account, payload.data, NULL, &resp, "registering the account");
    buf_done(&payload);
    if (r < 0)
        return r;
    if (!resp.location || !acme_url_valid(resp.location, strlen(resp.location)))
        r = fail(is, -EPROTO, "registering the account: the server sent no account URL");
    else if (acme_account_parse(resp.body.data ? resp.body.data : "", resp.body.len, &status, is->err,
                                is->err_size) < 0)
        r = fail_prefix(is, -EPROTO, "registering the account");
    else if (status != ACME_STATUS_VALID)
        r = fail(is, -EACCES, "registering the account: the account is %s", acme_status_name(status));
    else
        is->kid = TAKE_PTR(resp.location);
    acme_response_done(&resp);
    return r;
}

static int new_order(struct issuance *is, const char *const *hosts, size_t n_hosts, char **ret_url,
                     struct acme_order *ret)
{
    struct buf payload = BUF_INIT(64 * 1024);
    struct json_writer w;
    struct acme_response resp;

    json_writer_init(&w, &payload, false);
    json_object_begin(&w);
    json_key(&w, "identifiers");
    json_array_begin(&w);
    for (size_t i = 0; i < n_hosts; i++) {
        json_object_begin(&w);
        json_kv_string(&w, "type", "dns");
        json_kv_string(&w, "value", hosts[i]);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    int r = json_writer_finish(&w);
    if (r < 0) {
        buf_done(&payload);
        return fail(is, r, "writing the order failed");
    }
    r = post(is, is->dir.new_order, payload.data, NULL, &resp, "ordering the certificate");
    buf_done(&payload);
    if (r < 0)
        return r;
    if (!resp.location || !acme_url_valid(resp.location, strlen(resp.location)))
        r = fail(is, -EPROTO, "ordering the certificate: the server sent no order URL");
    else if (acme_order_parse(resp.body.data ? resp.body.data : "", resp.body.len, ret, is->err,
                              is->err_size) < 0)
        r = fail_prefix(is, -EPROTO, "ordering the certificate");
    else
        *ret_url = TAKE_PTR(resp.location);
    acme_response_done(&resp);
    return r;
}

static int get_authz(struct issuance *is, const char *url, struct acme_authz *ret, struct acme_response *resp)
{
    int r = post(is, url, NULL, NULL, resp, "fetching an authorization");
    if (r < 0)
        return r;
    r = acme_authz_parse(resp->body.data ? resp->body.data : "", resp->body.len, ret, is->err, is->err_size);
    if (r < 0) {
        acme_response_done(resp);
        return fail_prefix(is, r, "fetching an authorization");
    }
    return 0;
}

/* Publishes the answer of an authorization's http-01 challenge and tells the server
 * to check it. An authorization already valid (a recent order for the same name)
 * needs nothing. */
static int answer_authz(struct issuance *is, const char *url)
{
    struct acme_authz a;
    struct acme_response resp;
    char what[512], failed[520];
    int r = get_authz(is, url, &a, &resp);
    if (r < 0)
        return r;
    acme_response_done(&resp);
    snprintf(what, sizeof(what), "authorization for %s", a.identifier);
    snprintf(failed, sizeof(failed), "%s failed", what);
    if (a.status == ACME_STATUS_VALID)
        goto out;
    if (a.status != ACME_STATUS_PENDING) {
        r = a.has_error ? fail_problem(is, failed, &a.error)
                        : fail(is, -EACCES, "%s: it is %s", what, acme_status_name(a.status));
        goto out;
    }
    if (!a.http01_url) {
        r = fail(is, -EPROTO, "%s: the server offers no http-01 challenge%s", what,
                 a.wildcard ? " (a wildcard name needs dns-01)" : "");
        goto out;
    }
    struct buf ka = BUF_INIT(ACME_TOKEN_MAX + ACME_THUMBPRINT_LEN + 2);
    r = buf_printf(&ka, "%s.%s", a.http01_token, is->thumbprint);
    char **grown = r >= 0 ? realloc(is->published, (is->n_published + 1) * sizeof(char *)) : NULL;
    if (!grown) {
        buf_done(&ka);
        r = fail(is, -ENOMEM, "%s: out of memory", what);
        goto out;
    }
    is->published = grown;
    r = is->fn(is->data, a.http01_token, ka.data, true);
    buf_done(&ka);
    if (r < 0) {
        char buf[128];
        r = fail(is, r, "%s: publishing the http-01 answer failed: %s", what, strerror_r(-r, buf, sizeof(buf)));
        goto out;
    }
    is->published[is->n_published++] = TAKE_PTR(a.http01_token);
    if (a.http01_status == ACME_STATUS_PENDING) {
        r = post(is, a.http01_url, "{}", NULL, &resp, what);
        if (r < 0)
            goto out;
        acme_response_done(&resp);
    }
out:
    acme_authz_done(&a);
    return r;
}

static int poll_authz(struct issuance *is, const char *url)
{
    unsigned backoff = POLL_FIRST_MS;
    char what[512], failed[520];
    for (;;) {
        struct acme_authz a;
        struct acme_response resp;
        int r = get_authz(is, url, &a, &resp);
        if (r < 0)
            return r;
        snprintf(what, sizeof(what), "authorization for %s", a.identifier);
        snprintf(failed, sizeof(failed), "%s failed", what);
        if (a.status == ACME_STATUS_VALID)
            r = 1;
        else if (a.status != ACME_STATUS_PENDING)
            r = a.has_error ? fail_problem(is, failed, &a.error)
                            : fail(is, -EACCES, "%s: it is %s", what, acme_status_name(a.status));
        else
            r = wait_poll(is, &resp, &backoff, what, a.status);
        acme_authz_done(&a);
        acme_response_done(&resp);
        if (r != 0)
            return r < 0 ? r : 0;
    }
}

/* Fetches the order until its status is none of those in `waiting`. */
static int poll_order(struct issuance *is, const char *url, struct acme_order *o, enum acme_status waiting)
{
    unsigned backoff = POLL_FIRST_MS;
    for (;;) {
        struct acme_response resp;
        int r = post(is, url, NULL, NULL, &resp, "fetching the order");
        if (r < 0)
            return r;
        acme_order_done(o);
        r = acme_order_parse(resp.body.data ? resp.body.data : "", resp.body.len, o, is->err, is->err_size);
        if (r < 0) {
            acme_response_done(&resp);
            return fail_prefix(is, r, "fetching the order");
        }
        if (o->status != waiting && o->status != ACME_STATUS_PENDING) {
            acme_response_done(&resp);
            return 0;
        }
        r = wait_poll(is, &resp, &backoff, "the order", o->status);
        acme_response_done(&resp);
        if (r < 0)
            return r;
    }
}

static int order_failed(struct issuance *is, const struct acme_order *o)
{
    if (o->has_error)
        return fail_problem(is, "the order failed", &o->error);
    return fail(is, -EPROTO, "the order is %s", acme_status_name(o->status));
}

static int finalize(struct issuance *is, const char *order_url, struct acme_order *o,
                    const char *const *hosts, size_t n_hosts, EVP_PKEY *cert_key)
{
    struct buf csr = BUF_INIT(64 * 1024), payload = BUF_INIT(128 * 1024);
    struct json_writer w;
    struct acme_response resp;
    int r = acme_csr_b64(cert_key, hosts, n_hosts, &csr);
    if (r < 0) {
        buf_done(&csr);
        return fail(is, r, "making the certificate request failed");
    }
    json_writer_init(&w, &payload, false);
    json_object_begin(&w);
    json_kv_string(&w, "csr", csr.data);
    json_object_end(&w);
    r = json_writer_finish(&w);
    buf_done(&csr);
    if (r >= 0)
        r = post(is, o->finalize, payload.data, NULL, &resp, "finalizing the order");
    buf_done(&payload);
    if (r < 0)
        return r;
    acme_response_done(&resp);
    /* The finalize answer is the order too, but fetching it again also covers a
     * server that answers before the status moved on. */
    return poll_order(is, order_url, o, ACME_STATUS_PROCESSING);
}

static int download(struct issuance *is, const char *url, EVP_PKEY *cert_key, char **ret_pem)
{
    struct acme_response resp;
    int r = post(is, url, NULL, PEM_CHAIN, &resp, "downloading the certificate");
    if (r < 0)
        return r;
    if (resp.content_type && !ascii_case_eq(resp.content_type, PEM_CHAIN, strlen(PEM_CHAIN)))
        r = fail(is, -EPROTO, "downloading the certificate: the server sent %.100s, not " PEM_CHAIN,
                 resp.content_type);
    else if (acme_chain_check(resp.body.data ? resp.body.data : "", resp.body.len, cert_key, ret_pem, is->err,
                              is->err_size) < 0)
        r = fail_prefix(is, -EPROTO, "downloading the certificate");
    acme_response_done(&resp);
    return r;
}

static int check_args(struct issuance *is, const struct acme_config *cfg, const char *const *hosts,
                      size_t n_hosts, acme_challenge_fn fn)
{
    if (!cfg || !fn || !cfg->directory_url)
        return fail(is, -EINVAL, "no ACME directory URL or no challenge function");
    if (!acme_url_valid(cfg->directory_url, strlen(cfg->directory_url)))
        return fail(is, -EINVAL, "the ACME directory URL is not an https URL: %.200s", cfg->directory_url);
    if (!hosts || n_hosts == 0 || n_hosts > ACME_HOSTS_MAX)
        return fail(is, -EINVAL, "a certificate needs 1 to %d host names", ACME_HOSTS_MAX);
    for (size_t i = 0; i < n_hosts; i++)
        if (!hosts[i] || !acme_host_valid(hosts[i]))
            return fail(is, -EINVAL, "not a host name: %.260s", hosts[i] ? hosts[i] : "(null)");
    if (cfg->contact_email && (strlen(cfg->contact_email) > 254 || strpbrk(cfg->contact_email, ",\r\n") ||
                               !strchr(cfg->contact_email, '@')))
        return fail(is, -EINVAL, "not an e-mail address: %.260s", cfg->contact_email);
    return 0;
}

int acme_issue(const struct acme_config *cfg, const char *const *hosts, size_t n_hosts,
               acme_challenge_fn fn, void *data, char **ret_cert_pem, char **ret_key_pem,
               char **ret_account_url, char *err, size_t err_size)
{
    struct issuance is = { .cfg = cfg, .fn = fn, .data = data, .err = err, .err_size = err_size };
    struct acme_order order = {};
    char *order_url = NULL, *cert_pem = NULL, *key_pem = NULL;
    EVP_PKEY *cert_key = NULL;
    int r;

    if (err_size > 0)
        err[0] = 0;
    r = check_args(&is, cfg, hosts, n_hosts, fn);
    if (r < 0)
        return r;
    if (acme_key_load(cfg->account_key_pem, &is.account_key) < 0)
        return fail(&is, -EINVAL, "the account key is not an EC P-256 private key in PEM");
    r = acme_jwk_thumbprint(is.account_key, is.thumbprint);
    if (r < 0) {
        r = fail(&is, r, "computing the account key's thumbprint failed");
        goto out;
    }
    unsigned timeout = cfg->timeout_s ? cfg->timeout_s : DEFAULT_TIMEOUT_S;
    r = acme_http_init(&is.http, cfg->ca_file, now_ms() + (uint64_t)timeout * 1000, cfg->cancel);
    if (r < 0) {
        r = fail(&is, r, "starting libcurl failed");
        goto out;
    }

    r = fetch_directory(&is);
    if (r >= 0)
        r = new_account(&is);
    if (r >= 0)
        r = new_order(&is, hosts, n_hosts, &order_url, &order);
    if (r < 0)
        goto out;
    if (order.status == ACME_STATUS_PENDING) {
        for (size_t i = 0; i < order.n_authorizations && r >= 0; i++)
            r = answer_authz(&is, order.authorizations[i]);
        for (size_t i = 0; i < order.n_authorizations && r >= 0; i++)
            r = poll_authz(&is, order.authorizations[i]);
        if (r >= 0)
            r = poll_order(&is, order_url, &order, ACME_STATUS_PENDING);
        if (r < 0)
            goto out;
    }
    if (order.status == ACME_STATUS_READY) {
        r = acme_key_new(&cert_key);
        if (r < 0) {
            r = fail(&is, r, "making the certificate's key failed");
            goto out;
        }
        r = finalize(&is, order_url, &order, hosts, n_hosts, cert_key);
        if (r < 0)
            goto out;
    }
    if (order.status != ACME_STATUS_VALID || !order.certificate || !cert_key) {
        /* valid without our CSR would be a certificate for someone else's key */
        r = order.status == ACME_STATUS_INVALID || order.has_error ? order_failed(&is, &order)
            : fail(&is, -EPROTO, "the order is %s%s", acme_status_name(order.status),
                   order.status == ACME_STATUS_VALID ? " before it was finalized, or has no certificate URL" : "");
        goto out;
    }
    r = download(&is, order.certificate, cert_key, &cert_pem);
    if (r < 0)
        goto out;
    r = acme_key_pem(cert_key, &key_pem);
    if (r < 0) {
        r = fail(&is, r, "writing the certificate's key failed");
        goto out;
    }
    if (ret_account_url) {
        *ret_account_url = strdup(is.kid);
        if (!*ret_account_url) {
            r = fail(&is, -ENOMEM, "out of memory");
            goto out;
        }
    }
    *ret_cert_pem = TAKE_PTR(cert_pem);
    *ret_key_pem = TAKE_PTR(key_pem);
    r = 0;
out:
    for (size_t i = 0; i < is.n_published; i++) {
        (void)fn(data, is.published[i], NULL, false);
        free(is.published[i]);
    }
    free(is.published);
    free(cert_pem);
    if (key_pem)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    free(order_url);
    acme_order_done(&order);
    EVP_PKEY_free(cert_key);
    EVP_PKEY_free(is.account_key);
    acme_directory_done(&is.dir);
    acme_http_done(&is.http);
    free(is.kid);
    free(is.nonce);
    return r;
}

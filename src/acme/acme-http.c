/* The HTTPS transport of the ACME client: one libcurl easy handle per issuance (so
 * the connection is reused), every answer bounded, every request inside the
 * issuance's deadline. */
#include <pthread.h>
#include <stdio.h>

#include "acme/acme-http.h"

#define REQUEST_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define HEADERS_MAX (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_result;

/* curl_global_init is not thread-safe on every libcurl build: run it exactly once,
 * whichever thread comes first. It is never undone (berthd lives until it exits). */
static void curl_global(void)
{
    curl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int acme_http_init(struct acme_http *h, const char *ca_file, uint64_t deadline_ms, const atomic_bool *cancel)
{
    pthread_once(&curl_once, curl_global);
    if (curl_global_result != CURLE_OK)
        return -EIO;
    *h = (struct acme_http){ .ca_file = ca_file, .deadline_ms = deadline_ms, .cancel = cancel };
    h->curl = curl_easy_init();
    return h->curl ? 0 : -ENOMEM;
}

void acme_http_done(struct acme_http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    h->curl = NULL;
}

void acme_response_done(struct acme_response *r)
{
    buf_done(&r->body);
    free(r->nonce);
    free(r->location);
    free(r->content_type);
    free(r->retry_after);
    *r = (struct acme_response){};
}

bool acme_http_cancelled(const struct acme_http *h)
{
    return h->cancel && atomic_load(h->cancel);
}

/* libcurl calls this about once a second even while nothing moves (connecting, a
 * silent server), so a cancellation lands inside a request too. */
static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    return acme_http_cancelled(data) ? 1 : 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    struct acme_response *r = data;
    if (buf_append(&r->body, p, n) < 0) {
        r->too_large = true;
        return 0;   /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

static int set_field(char **field, const char *v, size_t len)
{
    char *s = strndup(v, len);
    if (!s)
        return -ENOMEM;
    free(*field);
    *field = s;
    return 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    struct acme_response *r = data;
    r->headers_len += n;
    if (r->headers_len > HEADERS_MAX) {
        r->too_large = true;
        return 0;
    }
    /* A new status line (after a 100 Continue) starts a new set of fields. */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        free(r->nonce);
        free(r->location);
        free(r->content_type);
        free(r->retry_after);
        r->nonce = r->location = r->content_type = r->retry_after = NULL;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon || n > ACME_HEADER_MAX)
        return n;
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t len = (size_t)(end - v);
    if (memchr(v, 0, len))
        return n;
    char **field = NULL;
    if (mem_case_eq(p, name_len, "Replay-Nonce"))
        field = &r->nonce;
    else if (mem_case_eq(p, name_len, "Location"))
        field = &r->location;
    else if (mem_case_eq(p, name_len, "Content-Type"))
        field = &r->content_type;
    else if (mem_case_eq(p, name_len, "Retry-After"))
        field = &r->retry_after;
    if (field && set_field(field, v, len) < 0)
        return 0;
    return n;
}

static int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    default: return -EPROTO;
    }
}

int acme_http_request(struct acme_http *h, const char *method, const char *url, const struct buf *post,
                      const char *accept, struct acme_response *resp, char *err, size_t err_size)
{
    char curl_err[CURL_ERROR_SIZE] = "";
    char accept_line[128];
    struct curl_slist *headers = NULL, *tmp;
    CURL *c = h->curl;
    int r;

    *resp = (struct acme_response){ .body = BUF_INIT(ACME_BODY_MAX) };
    uint64_t now = now_ms();
    if (now >= h->deadline_ms) {
        snprintf(err, err_size, "%s %s: the time limit ran out", method, url);
        return -ETIMEDOUT;
    }
    uint64_t left = h->deadline_ms - now;
    if (acme_http_cancelled(h)) {
        snprintf(err, err_size, "%s %s: cancelled", method, url);
        return -ECANCELED;
    }

    curl_easy_reset(c);
    snprintf(accept_line, sizeof(accept_line), "Accept: %s", accept ? accept : "application/json");
    tmp = curl_slist_append(headers, accept_line);
    if (tmp)
        headers = tmp;
    /* No "Expect: 100-continue" round trip for a large finalize body. */
    tmp = tmp ? curl_slist_append(headers, "Expect:") : NULL;
    if (tmp)
        headers = tmp;
    if (tmp && post) {
        tmp = curl_slist_append(headers, "Content-Type: application/jose+json");
        if (tmp)
            headers = tmp;
    }
    if (!tmp) {
        curl_slist_free_all(headers);
        return -ENOMEM;
    }

    CURLcode cc = CURLE_OK;
#define SET(opt, val) do { if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val); } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_USERAGENT, "berth-acme/" BERTH_VERSION);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_ERRORBUFFER, curl_err);
    SET(CURLOPT_TIMEOUT_MS, (long)MIN(left, (uint64_t)REQUEST_TIMEOUT_MS));
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)MIN(left, (uint64_t)CONNECT_TIMEOUT_MS));
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)ACME_BODY_MAX);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, resp);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, resp);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, h);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file)
        SET(CURLOPT_CAINFO, h->ca_file);
    if (streq(method, "HEAD"))
        SET(CURLOPT_NOBODY, 1L);
    else if (post) {
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, post->data ? post->data : "");
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post->len);
    }
#undef SET
    if (cc == CURLE_OK)
        cc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (cc != CURLE_OK) {
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            snprintf(err, err_size, "%s %s: cancelled", method, url);
            r = -ECANCELED;
        } else if (resp->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(err, err_size, "%s %s: the server's answer is too large", method, url);
            r = -EPROTO;
        } else {
            snprintf(err, err_size, "%s %s: %s%s%s%s", method, url, curl_easy_strerror(cc),
                     curl_err[0] ? " (" : "", curl_err, curl_err[0] ? ")" : "");
            r = curl_errno(cc);
        }
        acme_response_done(resp);
        return r;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    return 0;
}

/* The HTTPS transport of the ACME client (acme-http.c). Internal to src/acme. */
#pragma once

#include <curl/curl.h>

#include "acme/acme-internal.h"

struct acme_http {
    CURL *curl;
    const char *ca_file;     /* borrowed; NULL: the system's trust store */
    uint64_t deadline_ms;    /* now_ms() clock: no request runs past it */
    const atomic_bool *cancel; /* borrowed, may be NULL: true stops the request */
};

/* One answer; fields are NULL when the header was absent. */
struct acme_response {
    long status;
    struct buf body;         /* at most ACME_BODY_MAX */
    char *nonce, *location, *content_type, *retry_after;
    size_t headers_len;
    bool too_large;
};

int acme_http_init(struct acme_http *h, const char *ca_file, uint64_t deadline_ms, const atomic_bool *cancel);
/* True once the caller asked the issuance to stop. */
bool acme_http_cancelled(const struct acme_http *h);
void acme_http_done(struct acme_http *h);
void acme_response_done(struct acme_response *r);
/* Sends method ("GET", "HEAD" or "POST" with post as a JOSE body) to url and fills
 * resp (the caller frees it with acme_response_done, whatever the result). Any HTTP
 * status is a success here; a failure to get an answer returns a negative errno
 * (-ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ECANCELED, -EPROTO) with a reason in err. */
int acme_http_request(struct acme_http *h, const char *method, const char *url, const struct buf *post,
                      const char *accept, struct acme_response *resp, char *err, size_t err_size);

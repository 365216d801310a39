/* Parsing of what an ACME server sends: directory, account, order, authorization,
 * problem documents, Retry-After. All of it is untrusted: each member's type is
 * checked, strings are bounded, and an unexpected shape is a -EPROTO with a reason,
 * never a crash. Unknown members are ignored, as RFC 8555 §7 asks of clients. */
#include <stdio.h>

#include "acme/acme-internal.h"
#include "http/http1.h"

#define PROBLEM_TEXT_MAX 512
#define CHALLENGES_MAX 32
#define ACME_ERROR_PREFIX "urn:ietf:params:acme:error:"

static const char *const status_names[] = {
    [ACME_STATUS_UNKNOWN] = "unknown",
    [ACME_STATUS_PENDING] = "pending",
    [ACME_STATUS_READY] = "ready",
    [ACME_STATUS_PROCESSING] = "processing",
    [ACME_STATUS_VALID] = "valid",
    [ACME_STATUS_INVALID] = "invalid",
    [ACME_STATUS_DEACTIVATED] = "deactivated",
    [ACME_STATUS_EXPIRED] = "expired",
    [ACME_STATUS_REVOKED] = "revoked",
};

const char *acme_status_name(enum acme_status s)
{
    return (size_t)s < ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

static enum acme_status status_from(const char *s)
{
    for (size_t i = 1; s && i < ARRAY_SIZE(status_names); i++)
        if (streq(s, status_names[i]))
            return (enum acme_status)i;
    return ACME_STATUS_UNKNOWN;
}

bool acme_url_valid(const char *s, size_t len)
{
    if (len <= strlen("https://") || len > ACME_URL_MAX || strncmp(s, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

bool acme_host_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > ACME_HOST_MAX)
        return false;
    if (str_startswith(s, "*.")) {
        s += 2;
        len -= 2;
    }
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = s[i];
        if (c == '.' || c == 0) {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
            label++;
        else
            return false;
    }
    return true;
}

/* One line of printable ASCII from a string the server chose, at most
 * PROBLEM_TEXT_MAX bytes: a log line or a CLI line can carry it safely. */
static char *sanitized(const struct json_value *v)
{
    if (!v || v->type != JSON_STRING)
        return NULL;
    size_t n = MIN(v->string.len, (size_t)PROBLEM_TEXT_MAX);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    /* Whitespace (a detail often ends in a newline) becomes a space and is trimmed
     * at the end; anything else unprintable, or beyond ASCII, becomes '?'. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->string.data[i];
        s[i] = c >= 0x20 && c < 0x7f ? (char)c : c == '\n' || c == '\r' || c == '\t' ? ' ' : '?';
    }
    while (n > 0 && s[n - 1] == ' ')
        n--;
    s[n] = 0;
    return s;
}

/* A URL member: NULL (and *bad set) when present but not a valid URL, or absent and required. */
static int get_url(const struct json_value *obj, const char *key, bool required, char **ret,
                   char *err, size_t err_size)
{
    const struct json_value *v = json_get(obj, key);
    if (!v) {
        if (!required)
            return 0;
        snprintf(err, err_size, "the server's answer has no \"%s\"", key);
        return -EPROTO;
    }
    if (v->type != JSON_STRING || !acme_url_valid(v->string.data, v->string.len)) {
        snprintf(err, err_size, "the server's \"%s\" is not an https URL", key);
        return -EPROTO;
    }
    *ret = strdup(v->string.data);
    return *ret ? 0 : -ENOMEM;
}

static int parse_object(const char *body, size_t len, struct json_value **ret, const char *what,
                        char *err, size_t err_size)
{
    const char *why = NULL;
    size_t off = 0;
    if (len > ACME_BODY_MAX) {
        snprintf(err, err_size, "the server's %s is too large", what);
        return -EPROTO;
    }
    int r = json_parse(body, len, ret, &why, &off);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        snprintf(err, err_size, "the server's %s is not JSON: %s at byte %zu", what, why ? why : "?", off);
        return -EPROTO;
    }
    if ((*ret)->type != JSON_OBJECT) {
        json_value_free(*ret);
        *ret = NULL;
        snprintf(err, err_size, "the server's %s is not a JSON object", what);
        return -EPROTO;
    }
    return 0;
}

static int get_status(const struct json_value *obj, enum acme_status *ret, const char *what, char *err,
                      size_t err_size)
{
    const char *s = json_get_string(obj, "status");
    *ret = status_from(s);
    if (*ret == ACME_STATUS_UNKNOWN) {
        snprintf(err, err_size, "the server's %s has no known status", what);
        return -EPROTO;
    }
    return 0;
}

void acme_directory_done(struct acme_directory *d)
{
    free(d->new_nonce);
    free(d->new_account);
    free(d->new_order);
    *d = (struct acme_directory){};
}

int acme_directory_parse(const char *body, size_t len, struct acme_directory *ret, char *err, size_t err_size)
{
    struct json_value *v = NULL;
    struct acme_directory d = {};
    *ret = (struct acme_directory){};
    int r = parse_object(body, len, &v, "directory", err, err_size);
    if (r < 0)
        return r;
    r = get_url(v, "newNonce", true, &d.new_nonce, err, err_size);
    if (r >= 0)
        r = get_url(v, "newAccount", true, &d.new_account, err, err_size);
    if (r >= 0)
        r = get_url(v, "newOrder", true, &d.new_order, err, err_size);
    json_value_free(v);
    if (r < 0) {
        acme_directory_done(&d);
        return r;
    }
    *ret = d;
    return 0;
}

void acme_problem_done(struct acme_problem *p)
{
    free(p->type);
    free(p->detail);
    free(p->sub_identifier);
    *p = (struct acme_problem){};
}

static int problem_from(const struct json_value *v, struct acme_problem *ret)
{
    struct acme_problem p = {};
    if (!v || v->type != JSON_OBJECT)
        return -EPROTO;
    const struct json_value *type = json_get(v, "type"), *detail = json_get(v, "detail");
    if ((type && type->type != JSON_STRING) || (detail && detail->type != JSON_STRING) || (!type && !detail))
        return -EPROTO;
    p.type = sanitized(type);
    p.detail = sanitized(detail);
    const struct json_value *subs = json_get(v, "subproblems");
    if (subs && subs->type == JSON_ARRAY && subs->array.n > 0) {
        const struct json_value *id = json_get(subs->array.items[0], "identifier");
        p.sub_identifier = sanitized(json_get(id, "value"));
    }
    if ((type && !p.type) || (detail && !p.detail)) {
        acme_problem_done(&p);
        return -ENOMEM;
    }
    *ret = p;
    return 0;
}

int acme_problem_parse(const char *body, size_t len, struct acme_problem *ret)
{
    struct json_value *v = NULL;
    char err[256];   /* unused: a body that is not a problem is just that */
    *ret = (struct acme_problem){};
    int r = parse_object(body, len, &v, "problem", err, sizeof(err));
    if (r < 0)
        return r;
    r = problem_from(v, ret);
    json_value_free(v);
    return r;
}

void acme_problem_format(const struct acme_problem *p, char *out, size_t n)
{
    if (n == 0)
        return;
    snprintf(out, n, "%s%s%s%s%s", p->type ? p->type : "", p->type && p->detail ? ": " : "",
             p->detail ? p->detail : "", p->sub_identifier ? " for " : "",
             p->sub_identifier ? p->sub_identifier : "");
}

int acme_problem_errno(const struct acme_problem *p)
{
    static const struct { const char *name; int error; } map[] = {
        { "malformed", -EINVAL }, { "rejectedIdentifier", -EINVAL }, { "unsupportedIdentifier", -EINVAL },
        { "badCSR", -EINVAL }, { "invalidContact", -EINVAL }, { "unsupportedContact", -EINVAL },
        { "badSignatureAlgorithm", -EINVAL }, { "badPublicKey", -EINVAL },
        { "rateLimited", -EAGAIN }, { "serverInternal", -EPROTO }, { "badNonce", -EPROTO },
    };
    if (!p->type || !str_startswith(p->type, ACME_ERROR_PREFIX))
        return -EPROTO;
    const char *name = p->type + strlen(ACME_ERROR_PREFIX);
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (streq(name, map[i].name))
            return map[i].error;
    /* unauthorized, caa, dns, connection, incorrectResponse, tls, userActionRequired,
     * accountDoesNotExist, externalAccountRequired, ...: the CA said no. */
    return -EACCES;
}

int acme_account_parse(const char *body, size_t len, enum acme_status *ret, char *err, size_t err_size)
{
    struct json_value *v = NULL;
    if (len == 0) {
        /* An existing account may come back as a bare 200 with its Location. */
        *ret = ACME_STATUS_VALID;
        return 0;
    }
    int r = parse_object(body, len, &v, "account", err, err_size);
    if (r < 0)
        return r;
    if (json_get(v, "status"))
        r = get_status(v, ret, "account", err, err_size);
    else
        *ret = ACME_STATUS_VALID;   /* the status is required, but nothing depends on it */
    json_value_free(v);
    return r;
}

void acme_order_done(struct acme_order *o)
{
    for (size_t i = 0; i < o->n_authorizations; i++)
        free(o->authorizations[i]);
    free(o->authorizations);
    free(o->finalize);
    free(o->certificate);
    acme_problem_done(&o->error);
    *o = (struct acme_order){};
}

int acme_order_parse(const char *body, size_t len, struct acme_order *ret, char *err, size_t err_size)
{
    struct json_value *v = NULL;
    struct acme_order o = {};
    *ret = (struct acme_order){};
    int r = parse_object(body, len, &v, "order", err, err_size);
    if (r < 0)
        return r;
    r = get_status(v, &o.status, "order", err, err_size);
    if (r < 0)
        goto out;
    const struct json_value *authz = json_get(v, "authorizations");
    if (!authz || authz->type != JSON_ARRAY || authz->array.n == 0 || authz->array.n > ACME_HOSTS_MAX) {
        snprintf(err, err_size, "the server's order has no list of 1 to %d authorizations", ACME_HOSTS_MAX);
        r = -EPROTO;
        goto out;
    }
    o.authorizations = calloc(authz->array.n, sizeof(char *));
    if (!o.authorizations) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < authz->array.n; i++) {
        const struct json_value *u = authz->array.items[i];
        if (u->type != JSON_STRING || !acme_url_valid(u->string.data, u->string.len)) {
            snprintf(err, err_size, "the server's order lists an authorization that is not an https URL");
            r = -EPROTO;
            goto out;
        }
        o.authorizations[i] = strdup(u->string.data);
        if (!o.authorizations[i]) {
            r = -ENOMEM;
            goto out;
        }
        o.n_authorizations++;
    }
    r = get_url(v, "finalize", true, &o.finalize, err, err_size);
    if (r >= 0)
        r = get_url(v, "certificate", false, &o.certificate, err, err_size);
    if (r < 0)
        goto out;
    const struct json_value *e = json_get(v, "error");
    if (e) {
        r = problem_from(e, &o.error);
        if (r < 0) {
            snprintf(err, err_size, "the server's order has an error that is not a problem document");
            goto out;
        }
        o.has_error = true;
    }
out:
    json_value_free(v);
    if (r < 0) {
        acme_order_done(&o);
        return r;
    }
    *ret = o;
    return 0;
}

void acme_authz_done(struct acme_authz *a)
{
    free(a->identifier);
    free(a->http01_url);
    free(a->http01_token);
    acme_problem_done(&a->error);
    *a = (struct acme_authz){};
}

int acme_authz_parse(const char *body, size_t len, struct acme_authz *ret, char *err, size_t err_size)
{
    struct json_value *v = NULL;
    struct acme_authz a = {};
    *ret = (struct acme_authz){};
    int r = parse_object(body, len, &v, "authorization", err, err_size);
    if (r < 0)
        return r;
    r = get_status(v, &a.status, "authorization", err, err_size);
    if (r < 0)
        goto out;
    const struct json_value *id = json_get(v, "identifier");
    const char *type = json_get_string(id, "type");
    const struct json_value *value = json_get(id, "value");
    if (!type || !streq(type, "dns") || !value || value->type != JSON_STRING ||
        value->string.len > ACME_HOST_MAX || strlen(value->string.data) != value->string.len) {
        snprintf(err, err_size, "the server's authorization has no dns identifier");
        r = -EPROTO;
        goto out;
    }
    a.identifier = sanitized(value);
    if (!a.identifier) {
        r = -ENOMEM;
        goto out;
    }
    const struct json_value *wildcard = json_get(v, "wildcard");
    if (wildcard && (wildcard->type != JSON_BOOL)) {
        snprintf(err, err_size, "the server's authorization has a \"wildcard\" that is not a boolean");
        r = -EPROTO;
        goto out;
    }
    a.wildcard = wildcard && wildcard->boolean;
    const struct json_value *chals = json_get(v, "challenges");
    if (!chals || chals->type != JSON_ARRAY || chals->array.n > CHALLENGES_MAX) {
        snprintf(err, err_size, "the server's authorization has no list of challenges");
        r = -EPROTO;
        goto out;
    }
    for (size_t i = 0; i < chals->array.n; i++) {
        const struct json_value *c = chals->array.items[i];
        if (c->type != JSON_OBJECT) {
            snprintf(err, err_size, "the server's authorization has a challenge that is not an object");
            r = -EPROTO;
            goto out;
        }
        const struct json_value *e = json_get(c, "error");
        if (e && !a.has_error) {
            r = problem_from(e, &a.error);
            if (r == -ENOMEM)
                goto out;
            a.has_error = r >= 0;
            r = 0;
        }
        const char *ctype = json_get_string(c, "type");
        if (!ctype || !streq(ctype, "http-01") || a.http01_url)
            continue;
        const struct json_value *token = json_get(c, "token");
        if (!token || token->type != JSON_STRING || !acme_token_valid(token->string.data, token->string.len)) {
            snprintf(err, err_size, "the server's http-01 challenge has no valid token");
            r = -EPROTO;
            goto out;
        }
        r = get_status(c, &a.http01_status, "http-01 challenge", err, err_size);
        if (r < 0)
            goto out;
        r = get_url(c, "url", true, &a.http01_url, err, err_size);
        if (r < 0)
            goto out;
        a.http01_token = strdup(token->string.data);
        if (!a.http01_token) {
            r = -ENOMEM;
            goto out;
        }
    }
out:
    json_value_free(v);
    if (r < 0) {
        acme_authz_done(&a);
        return r;
    }
    *ret = a;
    return 0;
}

int acme_retry_after_parse(const char *s, size_t len, time_t now, unsigned *ret)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    if (len == 0)
        return -EINVAL;
    if (s[0] >= '0' && s[0] <= '9') {
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -EINVAL;
            v = MIN(v * 10 + (uint64_t)(s[i] - '0'), (uint64_t)UINT32_MAX);
        }
        *ret = (unsigned)MIN(v, (uint64_t)ACME_RETRY_AFTER_MAX);
        return 0;
    }
    time_t t;
    if (http_date_parse(s, len, &t) < 0)
        return -EINVAL;
    *ret = t <= now ? 0 : (unsigned)MIN((uint64_t)(t - now), (uint64_t)ACME_RETRY_AFTER_MAX);
    return 0;
}

/* Who is asking. On api.sock the kernel says (SO_PEERCRED: root is the admin
 * "root"). On panel.sock the peer is always the front, so identity comes from the
 * request: a bearer token, or the session cookie the login answer set.
 *
 * Secrets (session cookies, API tokens) are 32 random bytes; the store keeps only
 * their SHA-256, so a copy of the database lets nobody in. A plain hash suffices (no
 * argon2): the secrets have 256 bits of entropy, nothing to guess.
 *
 * Login throttling is kept in memory, per server, not in the store: it only has to
 * outlive a burst of guesses, a restart of berthd costs an attacker more than it
 * gains, and a table in the store would turn every failed guess into a disk write.
 * Failures are counted per client address and per account name (known or not, so
 * that the lockout itself does not reveal which names exist); from the fifth on, each
 * failure locks that key for 30 s, doubling up to an hour; a key forgets after 15
 * minutes without failures, and a success clears the account's key (not the
 * address's: see api_auth_login). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "api/api-internal.h"
#include "common/log.h"
#include "common/names.h"

#define COOKIE_NAME "berth_session"
/* Behind HTTPS: browsers accept a __Host- cookie only from the host itself (Secure,
 * no Domain, Path=/), so no site under the same parent domain can plant one. Over
 * plain HTTP the prefix cannot be set at all. */
#define COOKIE_NAME_HTTPS "__Host-berth_session"
#define SESSION_IDLE_SECONDS (12 * 3600)
#define SESSION_MAX_SECONDS (7 * 24 * 3600)
/* last_seen is written at most this often: a page load makes several requests. */
#define SESSION_TOUCH_SECONDS 60
#define SECRET_BYTES 32

#define THROTTLE_SLOTS 4096

struct api_auth {
    const struct api_config *cfg;
    struct api_throttle *throttle;  /* panel.sock only */
    char dummy_hash[crypto_pwhash_STRBYTES];
};

int api_auth_new(const struct api_config *cfg, struct api_auth **ret)
{
    struct api_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->cfg = cfg;
    if (cfg->auth == API_AUTH_PANEL) {
        /* The hash of a random password nobody knows: verifying against it costs what
         * verifying a real user's costs, so timing does not tell unknown names. */
        unsigned char pw[SECRET_BYTES];
        randombytes_buf(pw, sizeof(pw));
        if (api_throttle_new(THROTTLE_SLOTS, &a->throttle) < 0 || crypto_pwhash_str_alg(a->dummy_hash, (const char *)pw, sizeof(pw),
                                               crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                               crypto_pwhash_MEMLIMIT_INTERACTIVE,
                                               crypto_pwhash_ALG_ARGON2ID13) != 0) {
            api_auth_free(a);
            return -ENOMEM;
        }
    }
    *ret = a;
    return 0;
}

void api_auth_free(struct api_auth *a)
{
    if (!a)
        return;
    api_throttle_free(a->throttle);
    free(a);
}

void api_auth_hash(const char *secret, char out[static 65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
    sodium_bin2hex(out, 65, h, sizeof(h));
}

/* A fresh random secret, URL-safe base64 without padding (43 characters). */
static void new_secret(char out[static 48])
{
    unsigned char raw[SECRET_BYTES];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, 48, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

/* ---- reading the request ---- */

int api_reply_header(struct api_response *res, const char *fmt, ...)
{
    size_t used = strlen(res->headers);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || used + (size_t)n + 2 >= sizeof(res->headers))
        return -ENOBUFS;
    memcpy(res->headers + used, line, (size_t)n);
    memcpy(res->headers + used + n, "\r\n", 3);
    return 0;
}

static const struct http1_header *header(const struct api_request *req, const char *name)
{
    if (!req->http)
        return NULL;
    return http1_find_header(req->http->headers, req->http->n_headers, name);
}

/* Whether the front says the browser came over HTTPS. */
static bool behind_https(const struct api_request *req)
{
    const struct http1_header *proto = header(req, "x-forwarded-proto");
    return proto && mem_case_eq(proto->value, proto->value_len, "https");
}

static const char *cookie_name(const struct api_request *req)
{
    return behind_https(req) ? COOKIE_NAME_HTTPS : COOKIE_NAME;
}

/* The value of the session cookie called name into out: 1, or 0 if absent or implausible, or -EEXIST
 * when the request carries it twice. A site on the same parent domain can set
 * berth_session for the whole domain with a longer Path, which browsers send first:
 * taking the first would let it sign the panel in as an account of its choosing. Which
 * of two is the panel's own cannot be told, so neither is used. */
static int cookie_value(const struct api_request *req, const char *name, char *out, size_t n)
{
    const size_t klen = strlen(name);
    int found = 0;
    for (size_t i = 0; req->http && i < req->http->n_headers; i++) {
        const struct http1_header *h = &req->http->headers[i];
        if (!mem_case_eq(h->name, h->name_len, "cookie"))
            continue;
        const char *p = h->value, *end = h->value + h->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            if ((size_t)(stop - p) >= klen + 1 && memcmp(p, name, klen) == 0 && p[klen] == '=') {
                if (found)
                    return -EEXIST;
                size_t vlen = (size_t)(stop - p) - klen - 1;
                found = -1;   /* seen, implausible until copied */
                if (vlen > 0 && vlen < n) {
                    memcpy(out, p + klen + 1, vlen);
                    out[vlen] = 0;
                    found = 1;
                }
            }
            p = stop;
        }
    }
    return found > 0 ? 1 : 0;
}

/* The client's address as the front forwarded it: the last X-Forwarded-For element
 * (the front replaces whatever the client sent), else Forwarded's for=. */
static void forwarded_client(const struct api_request *req, char *out, size_t n)
{
    const struct http1_header *h = header(req, "x-forwarded-for");
    snprintf(out, n, "unknown");
    if (h) {
        const char *start = h->value, *comma;
        size_t len = h->value_len;
        while ((comma = memchr(start, ',', len))) {
            len -= (size_t)(comma + 1 - start);
            start = comma + 1;
        }
        while (len && *start == ' ') {
            start++;
            len--;
        }
        if (len > 0 && len < n) {
            memcpy(out, start, len);
            out[len] = 0;
        }
        return;
    }
    h = header(req, "forwarded");
    if (h) {
        char v[256];
        snprintf(v, sizeof(v), "%.*s", (int)h->value_len, h->value);
        char *f = strstr(v, "for=");
        if (f) {
            f += 4;
            f += strspn(f, "\"[");
            f[strcspn(f, "\"];,")] = 0;
            if (*f)
                snprintf(out, n, "%s", f);
        }
    }
}

static bool state_changing(enum http_method m)
{
    return m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS;
}

/* The request's own host (what the browser addressed: the front passes Host on) must
 * be the host of Origin, or failing that of Referer. Absent both, true: the CSRF
 * token is the defence that counts; this is the second. */
static bool same_origin(const struct api_request *req)
{
    const struct http1_header *h = header(req, "origin");
    bool referer = false;
    if (!h) {
        h = header(req, "referer");
        referer = true;
    }
    if (!h)
        return true;
    if (!req->http->host)
        return false;
    const char *v = h->value;
    size_t len = h->value_len;
    if (len >= 7 && strncasecmp(v, "http://", 7) == 0) {
        v += 7;
        len -= 7;
    } else if (len >= 8 && strncasecmp(v, "https://", 8) == 0) {
        v += 8;
        len -= 8;
    } else {
        return false;   /* "null" (sandboxed frames, file:) and anything odd */
    }
    if (referer) {
        const char *slash = memchr(v, '/', len);
        if (slash)
            len = (size_t)(slash - v);
    }
    return len == req->http->host_len && strncasecmp(v, req->http->host, len) == 0;
}

static void refuse(struct api_response *res, int status, const char *message)
{
    api_reply_error(res, status, "%s", message);
    if (status == 401)
        api_reply_header(res, "WWW-Authenticate: Bearer realm=\"berth\"");
}

/* Loads the user behind a session or token: false (and nothing kept) when the
 * account is gone or disabled. */
static bool load_user(struct api_auth *a, const char *name, struct api_request *req)
{
    struct store_user u = { 0 };
    if (store_user_get(a->cfg->store, name, &u) < 0)
        return false;
    bool ok = !u.disabled && strlen(u.name) < sizeof(req->actor_buf);
    if (ok) {
        snprintf(req->actor_buf, sizeof(req->actor_buf), "%s", u.name);
        req->actor = req->actor_buf;
        req->admin = u.admin;
    }
    store_user_done(&u);
    return ok;
}

static bool auth_bearer(struct api_auth *a, const char *token, struct api_request *req, struct api_response *res)
{
    char hash[65];
    struct store_token t = { 0 };
    api_auth_hash(token, hash);
    int r = store_token_find(a->cfg->store, hash, &t);
    bool ok = r == 0 && !t.revoked && load_user(a, t.user, req);
    if (ok) {
        req->token_id = t.id;
        if (now_s() - t.last_used >= SESSION_TOUCH_SECONDS)
            store_token_touch(a->cfg->store, t.id, now_s());
    } else if (r < 0 && r != -ENOENT) {
        api_reply_error(res, 500, "cannot read tokens: %s", store_errmsg(a->cfg->store));
        store_token_done(&t);
        return false;
    }
    store_token_done(&t);
    if (!ok)
        refuse(res, 401, "this API token is not valid: it may have been revoked");
    return ok;
}

static bool auth_session(struct api_auth *a, struct api_request *req, struct api_response *res)
{
    char cookie[128], id[65];
    int found = cookie_value(req, cookie_name(req), cookie, sizeof(cookie));
    if (found == -EEXIST) {
        refuse(res, 401, "the browser sent two session cookies, one of them set by another site under the "
                         "same domain: clear this site's cookies and sign in again");
        return false;
    }
    if (found == 0) {
        refuse(res, 401, "sign in first");
        return false;
    }
    api_auth_hash(cookie, id);
    struct store_session s = { 0 };
    int r = store_session_get(a->cfg->store, id, &s);
    if (r == -ENOENT) {
        refuse(res, 401, "your session has ended: sign in again");
        return false;
    }
    if (r < 0) {
        api_reply_error(res, 500, "cannot read sessions: %s", store_errmsg(a->cfg->store));
        return false;
    }
    int64_t now = now_s();
    bool ok = now < s.expires_at && now - s.last_seen < SESSION_IDLE_SECONDS;
    if (ok && !load_user(a, s.user, req)) {
        /* Disabled meanwhile: its sessions end now, not at their expiry. */
        api_auth_end_sessions(a->cfg, s.user, NULL);
        ok = false;
    } else if (!ok) {
        store_session_delete(a->cfg->store, id);
    }
    if (!ok) {
        store_session_done(&s);
        refuse(res, 401, "your session has ended: sign in again");
        return false;
    }
    if (state_changing(req->method)) {
        const struct http1_header *h = header(req, "x-csrf-token");
        size_t want = strlen(s.csrf);
        if (!h || h->value_len != want || sodium_memcmp(h->value, s.csrf, want) != 0) {
            store_session_done(&s);
            refuse(res, 403, "this change was refused: the request did not carry the session's CSRF token "
                             "(reload the panel and try again)");
            return false;
        }
    }
    if (now - s.last_seen >= SESSION_TOUCH_SECONDS)
        store_session_touch(a->cfg->store, id, now);
    req->via_session = true;
    snprintf(req->session_id, sizeof(req->session_id), "%s", id);
    snprintf(req->csrf, sizeof(req->csrf), "%s", s.csrf);
    store_session_done(&s);
    return true;
}

bool api_auth_request(struct api_auth *a, uid_t peer_uid, struct api_request *req, struct api_response *res)
{
    req->auth = a;
    if (a->cfg->auth == API_AUTH_PEER_ROOT) {
        if (peer_uid != 0) {
            api_reply_error(res, 403, "only root may use the API socket");
            return false;
        }
        req->actor = "root";
        req->admin = true;
        req->client = "local";
        return true;
    }
    req->actor = NULL;
    req->admin = false;
    forwarded_client(req, req->client_buf, sizeof(req->client_buf));
    req->client = req->client_buf;
    if (state_changing(req->method) && !same_origin(req)) {
        refuse(res, 403, "cross-site request refused: it did not come from the panel's own page");
        return false;
    }
    const struct http1_header *h = header(req, "authorization");
    if (h) {
        char token[128];
        if (h->value_len < 8 || strncasecmp(h->value, "Bearer ", 7) != 0 || h->value_len - 7 >= sizeof(token)) {
            refuse(res, 401, "the Authorization field must be \"Bearer <token>\"");
            return false;
        }
        snprintf(token, sizeof(token), "%.*s", (int)(h->value_len - 7), h->value + 7);
        return auth_bearer(a, token, req, res);
    }
    if (req->n_segments == 1 && streq(req->segments[0], "login"))
        return true;
    return auth_session(a, req, res);
}

int api_auth_end_sessions(const struct api_config *cfg, const char *user, const char *keep_id)
{
    return store_session_delete_user(cfg->store, user, keep_id);
}

/* ---- login and logout ---- */

static void set_cookie(const struct api_request *req, struct api_response *res, const char *value, int max_age)
{
    bool secure = behind_https(req);
    api_reply_header(res, "Set-Cookie: %s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s", cookie_name(req),
                     value, max_age, secure ? "; Secure" : "");
}

/* The throttle keys of a password guess as name from req's client. */
static void guess_keys(const struct api_request *req, const char *name, char key_addr[static 80],
                       char key_user[static 80])
{
    snprintf(key_addr, 80, "a:%s", req->client ? req->client : "unknown");
    snprintf(key_user, 80, "u:%.64s", name);
}

/* Answers 429 and returns true while either key is locked. */
static bool guess_locked(struct api_auth *a, const char *key_addr, const char *key_user, struct api_response *res)
{
    uint64_t now = now_ms();
    uint64_t wait = MAX(api_throttle_wait(a->throttle, key_addr, now), api_throttle_wait(a->throttle, key_user, now));
    if (wait == 0)
        return false;
    uint64_t seconds = (wait + 999) / 1000;
    api_reply_error(res, 429, "too many failed sign-ins: try again in %" PRIu64 " seconds", seconds);
    api_reply_header(res, "Retry-After: %" PRIu64, seconds);
    return true;
}

bool api_auth_check_password(struct api_auth *a, const struct api_request *req, const char *password_hash,
                             const char *password, size_t len, struct api_response *res)
{
    char key_addr[80], key_user[80];
    /* api.sock keeps no throttle table: its only peer is root. */
    bool throttled = a && a->throttle;
    if (throttled) {
        guess_keys(req, req->actor, key_addr, key_user);
        if (guess_locked(a, key_addr, key_user, res))
            return false;
    }
    if (crypto_pwhash_str_verify(password_hash, password, len) == 0)
        return true;
    if (throttled) {
        api_throttle_fail(a->throttle, key_addr, now_ms());
        api_throttle_fail(a->throttle, key_user, now_ms());
    }
    api_reply_error(res, 403, "the current password is wrong");
    return false;
}

void api_auth_login(struct api_auth *a, const struct api_request *req, struct api_response *res)
{
    const struct api_config *cfg = a->cfg;
    const char *name = json_get_string(req->body, "name");
    const struct json_value *pw = json_get(req->body, "password");
    if (!name || !pw || pw->type != JSON_STRING) {
        api_reply_error(res, 400, "give a user name and a password");
        return;
    }
    char key_addr[80], key_user[80];
    guess_keys(req, name, key_addr, key_user);
    if (guess_locked(a, key_addr, key_user, res))
        return;

    struct store_user u = { 0 };
    bool found = user_name_valid(name) && store_user_get(cfg->store, name, &u) == 0;
    /* Verify even when there is no such user, against the dummy hash: the answer and
     * its timing are the same for an unknown name and a wrong password. */
    bool ok = crypto_pwhash_str_verify(found ? u.password_hash : a->dummy_hash, pw->string.data,
                                       pw->string.len) == 0;
    ok = ok && found && !u.disabled;
    if (!ok) {
        store_user_done(&u);
        api_throttle_fail(a->throttle, key_addr, now_ms());
        api_throttle_fail(a->throttle, key_user, now_ms());
        log_info("panel: failed sign-in as \"%.64s\" from %s", name, req->client);
        api_reply_error(res, 401, "wrong user name or password");
        return;
    }
    /* Only the account's count: the address's stays, or anyone with an account of
     * their own could sign in to it between rounds of guesses at everyone else's. */
    api_throttle_clear(a->throttle, key_user, now_ms());

    char secret[48], csrf[48], id[65];
    new_secret(secret);
    new_secret(csrf);
    api_auth_hash(secret, id);
    int64_t now = now_s();
    struct store_session s = {
        .id = id, .user = u.name, .created_at = now, .expires_at = now + SESSION_MAX_SECONDS,
        .last_seen = now, .csrf = csrf, .client = (char *)req->client,
    };
    store_session_prune(cfg->store, now, now - SESSION_IDLE_SECONDS);
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_session_insert(cfg->store, &s);
    if (r >= 0) {
        struct buf detail = BUF_INIT(512);
        struct json_writer w;
        json_writer_init(&w, &detail, false);
        json_object_begin(&w);
        json_kv_string(&w, "client", req->client);
        json_object_end(&w);
        r = json_writer_finish(&w);
        if (r >= 0)
            r = store_event_append(cfg->store, u.name, "user.login", u.name, detail.data);
        buf_done(&detail);
    }
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r < 0) {
        api_reply_error(res, 500, "cannot start a session: %s", store_errmsg(cfg->store));
    } else {
        api_reply(res, 200);
        json_object_begin(&res->json);
        json_kv_string(&res->json, "user", u.name);
        json_kv_bool(&res->json, "admin", u.admin);
        json_kv_string(&res->json, "csrf", csrf);
        json_kv_string(&res->json, "base_domain", cfg->base_domain);
        json_object_end(&res->json);
        set_cookie(req, res, secret, SESSION_MAX_SECONDS);
    }
    sodium_memzero(secret, sizeof(secret));
    store_user_done(&u);
}

void api_auth_logout(struct api_auth *a, const struct api_request *req, struct api_response *res)
{
    if (!req->via_session) {
        api_reply_error(res, 400, "only a browser session signs out; revoke an API token instead");
        return;
    }
    int r = store_session_delete(a->cfg->store, req->session_id);
    if (r < 0 && r != -ENOENT) {
        api_reply_error(res, 500, "cannot end the session: %s", store_errmsg(a->cfg->store));
        return;
    }
    store_event_append(a->cfg->store, req->actor, "user.logout", req->actor, NULL);
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_bool(&res->json, "signed_out", true);
    json_object_end(&res->json);
    set_cookie(req, res, "", 0);
}

/* The signed-in account: /api/v1/login, /logout, /me, /me/password, and its API
 * tokens under /api/v1/tokens. A token is shown once, when created; the store keeps
 * its SHA-256 only. */
#include <inttypes.h>
#include <stdio.h>

#include "api/api-internal.h"
#include "common/names.h"

#define TOKEN_PREFIX "berth_"
#define TOKEN_NAME_MAX 64

static void write_me(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "user", req->actor);
    json_kv_bool(&res->json, "admin", req->admin);
    json_kv_string(&res->json, "via", req->via_session ? "session" : req->token_id ? "token" : "socket");
    json_kv_string(&res->json, "csrf", req->via_session ? req->csrf : NULL);
    json_kv_string(&res->json, "base_domain", cfg->base_domain);
    json_object_end(&res->json);
}

static void change_password(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    const struct json_value *cur = json_get(req->body, "current"), *new = json_get(req->body, "new");
    struct store_user u = { 0 };
    struct error err = { 0 };
    char hash[crypto_pwhash_STRBYTES];

    if (!cur || cur->type != JSON_STRING || !new || new->type != JSON_STRING) {
        api_reply_error(res, 400, "give the current password and the new one");
        return;
    }
    if (store_user_get(cfg->store, req->actor, &u) < 0) {
        /* root over api.sock has no account: it resets passwords with PUT /users/NAME/password. */
        api_reply_error(res, 400, "%s has no password here: use PUT /api/v1/users/NAME/password", req->actor);
        return;
    }
    bool ok = api_auth_check_password(req->auth, req, u.password_hash, cur->string.data, cur->string.len, res);
    store_user_done(&u);
    if (!ok)
        return;
    if (api_password_hash(new->string.data, new->string.len, hash, &err) < 0) {
        api_reply_failure(res, &err);
        return;
    }
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_user_set_password(cfg->store, req->actor, hash);
    /* Every other session ends: a changed password should lock out whoever had it. */
    if (r >= 0)
        r = api_auth_end_sessions(cfg, req->actor, req->via_session ? req->session_id : NULL);
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, "user.passwd", req->actor, NULL);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r < 0) {
        api_reply_error(res, 500, "cannot change the password: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "updated", req->actor);
    json_object_end(&res->json);
}

void api_handle_account(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    const char *what = req->segments[0];
    bool panel = cfg->auth == API_AUTH_PANEL && req->auth;
    if (streq(what, "login") || streq(what, "logout")) {
        if (req->n_segments != 1)
            api_reply_error(res, 404, "no such API endpoint");
        else if (!panel)
            api_reply_error(res, 404, "sign in through the panel's socket; the API socket needs none");
        else if (req->method != HTTP_POST)
            api_reply_error(res, 405, "use POST on /api/v1/%s", what);
        else if (streq(what, "login"))
            api_auth_login(req->auth, req, res);
        else
            api_auth_logout(req->auth, req, res);
        return;
    }
    /* "me" */
    if (req->n_segments == 1) {
        if (req->method == HTTP_GET)
            write_me(cfg, req, res);
        else
            api_reply_error(res, 405, "use GET on /api/v1/me");
    } else if (req->n_segments == 2 && streq(req->segments[1], "password")) {
        if (req->method == HTTP_PUT)
            change_password(cfg, req, res);
        else
            api_reply_error(res, 405, "use PUT on /api/v1/me/password");
    } else {
        api_reply_error(res, 404, "no such API endpoint");
    }
}

/* ---- tokens ---- */

static void write_token(struct json_writer *w, const struct store_token *t)
{
    json_object_begin(w);
    json_kv_int(w, "id", t->id);
    json_kv_string(w, "name", t->name);
    json_kv_string(w, "user", t->user);
    json_kv_int(w, "created_at", t->created_at);
    json_key(w, "last_used");
    if (t->last_used)
        json_int(w, t->last_used);
    else
        json_null(w);
    json_kv_bool(w, "revoked", t->revoked);
    json_object_end(w);
}

static void list_tokens(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    char user[64];
    const char *who = req->actor;
    if (req->admin)
        who = api_query_get(req->query, "user", user, sizeof(user)) ? user : NULL;
    struct store_token *list;
    size_t n;
    if (store_token_list(cfg->store, who, &list, &n) < 0) {
        api_reply_error(res, 500, "cannot list tokens: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_key(&res->json, "tokens");
    json_array_begin(&res->json);
    for (size_t i = 0; i < n; i++)
        write_token(&res->json, &list[i]);
    json_array_end(&res->json);
    json_object_end(&res->json);
    store_token_list_free(list, n);
}

static bool token_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TOKEN_NAME_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static void create_token(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    const char *name = json_get_string(req->body, "name");
    const char *user = json_get_string(req->body, "user");
    if (!name || !token_name_valid(name)) {
        api_reply_error(res, 400, "give the token a name of 1 to %d characters (say what it is for)", TOKEN_NAME_MAX);
        return;
    }
    if (user && !streq(user, req->actor) && !req->admin) {
        api_reply_error(res, 403, "only an admin may create tokens for another user");
        return;
    }
    if (!user)
        user = req->actor;
    struct store_user u = { 0 };
    int r = user_name_valid(user) ? store_user_get(cfg->store, user, &u) : -ENOENT;
    store_user_done(&u);
    if (r == -ENOENT && streq(user, "root")) {
        api_reply_error(res, 400, "root has no account to hold tokens: name the user the token is for");
        return;
    }
    if (r == -ENOENT) {
        api_reply_error(res, 404, "no user named \"%s\"", user);
        return;
    }
    if (r < 0) {
        api_reply_error(res, 500, "cannot read the user: %s", store_errmsg(cfg->store));
        return;
    }

    unsigned char raw[32];
    char token[sizeof(TOKEN_PREFIX) + 48], hash[65];
    randombytes_buf(raw, sizeof(raw));
    memcpy(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
    sodium_bin2base64(token + sizeof(TOKEN_PREFIX) - 1, 48, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    api_auth_hash(token, hash);

    int64_t id = 0;
    struct buf detail = BUF_INIT(1024);
    r = store_begin(cfg->store);
    if (r >= 0)
        r = store_token_insert(cfg->store, user, name, hash, &id);
    if (r >= 0) {
        struct json_writer w;
        json_writer_init(&w, &detail, false);
        json_object_begin(&w);
        json_kv_int(&w, "id", id);
        json_kv_string(&w, "name", name);
        json_object_end(&w);
        r = json_writer_finish(&w);
    }
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, "token.create", user, detail.data);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    buf_done(&detail);
    struct store_token t = { 0 };
    if (r >= 0)
        r = store_token_get(cfg->store, id, &t);
    if (r < 0) {
        api_reply_error(res, 500, "cannot create the token: %s", store_errmsg(cfg->store));
    } else {
        api_reply(res, 201);
        json_object_begin(&res->json);
        json_kv_int(&res->json, "id", t.id);
        json_kv_string(&res->json, "name", t.name);
        json_kv_string(&res->json, "user", t.user);
        json_kv_int(&res->json, "created_at", t.created_at);
        json_kv_string(&res->json, "token", token);
        json_object_end(&res->json);
    }
    sodium_memzero(token, sizeof(token));
    store_token_done(&t);
}

static void revoke_token(const struct api_config *cfg, const struct api_request *req, const char *id_text,
                         struct api_response *res)
{
    uint64_t id;
    struct store_token t = { 0 };
    int r = parse_uint(id_text, 1, INT64_MAX, &id) < 0 ? -ENOENT : store_token_get(cfg->store, (int64_t)id, &t);
    /* Someone else's token is as unknown as a missing one. */
    if (r == 0 && !req->admin && !streq(t.user, req->actor))
        r = -ENOENT;
    if (r == 0) {
        r = store_begin(cfg->store);
        if (r >= 0)
            r = store_token_revoke(cfg->store, t.id);
        if (r >= 0) {
            char detail[64];
            snprintf(detail, sizeof(detail), "{\"id\":%" PRId64 "}", t.id);
            r = store_event_append(cfg->store, req->actor, "token.revoke", t.user, detail);
        }
        if (r >= 0)
            r = store_commit(cfg->store);
        else
            store_rollback(cfg->store);
    }
    if (r == -ENOENT) {
        api_reply_error(res, 404, "no token with id %s", id_text);
    } else if (r < 0) {
        api_reply_error(res, 500, "cannot revoke the token: %s", store_errmsg(cfg->store));
    } else {
        api_reply(res, 200);
        json_object_begin(&res->json);
        json_kv_int(&res->json, "revoked", t.id);
        json_object_end(&res->json);
    }
    store_token_done(&t);
}

void api_handle_tokens(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    if (req->n_segments == 1) {
        if (req->method == HTTP_GET)
            list_tokens(cfg, req, res);
        else if (req->method == HTTP_POST)
            create_token(cfg, req, res);
        else
            api_reply_error(res, 405, "use GET or POST on /api/v1/tokens");
    } else if (req->n_segments == 2) {
        if (req->method == HTTP_DELETE)
            revoke_token(cfg, req, req->segments[1], res);
        else
            api_reply_error(res, 405, "use DELETE on a token");
    } else {
        api_reply_error(res, 404, "no such API endpoint");
    }
}

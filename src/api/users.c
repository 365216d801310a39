/* /api/v1/users and /api/v1/events. Passwords are hashed with argon2id (libsodium)
 * here, in the daemon: the cleartext never reaches the store or the audit log. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>

#include "api/api-internal.h"
#include "common/names.h"

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

int api_password_hash(const char *password, size_t len, char out[static crypto_pwhash_STRBYTES],
                      struct error *err)
{
    if (len < PASSWORD_MIN)
        return error_set(err, -EINVAL, "the password is too short: use at least %d characters", PASSWORD_MIN);
    if (len > PASSWORD_MAX)
        return error_set(err, -EINVAL, "the password is too long: use at most %d characters", PASSWORD_MAX);
    if (crypto_pwhash_str_alg(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return error_set(err, -ENOMEM, "cannot hash the password: out of memory");
    return 0;
}

static void write_user(struct json_writer *w, const struct store_user *u)
{
    json_object_begin(w);
    json_kv_string(w, "name", u->name);
    json_kv_bool(w, "admin", u->admin);
    json_kv_bool(w, "disabled", u->disabled);
    json_kv_int(w, "created_at", u->created_at);
    json_object_end(w);
}

static void create_user(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    const struct json_value *body = req->body;
    const char *name = json_get_string(body, "name");
    const struct json_value *pw = json_get(body, "password");
    bool admin = false;
    struct error err = { 0 };
    char hash[crypto_pwhash_STRBYTES];

    if (!name || !user_name_valid(name)) {
        api_reply_error(res, 400, "invalid user name \"%s\": use up to 32 lowercase letters, digits, '_', '-' "
                        "or '.', starting with a letter or '_'", name ?: "");
        return;
    }
    /* Root is the operator on the API socket, with no account: in the event log and
     * as the maker of unowned sites (sites.c) the name must mean only that. */
    if (streq(name, "root")) {
        api_reply_error(res, 400, "the user name \"root\" is reserved for the operator on the API socket; "
                        "choose another");
        return;
    }
    if (!pw || pw->type != JSON_STRING) {
        api_reply_error(res, 400, "a password is required");
        return;
    }
    if (json_get(body, "admin") && !json_get_bool(body, "admin", &admin)) {
        api_reply_error(res, 400, "admin must be true or false");
        return;
    }
    if (api_password_hash(pw->string.data, pw->string.len, hash, &err) < 0) {
        api_reply_failure(res, &err);
        return;
    }
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_user_insert(cfg->store, name, hash, admin, NULL);
    if (r == -EEXIST) {
        store_rollback(cfg->store);
        api_reply_error(res, 409, "a user named \"%s\" already exists", name);
        return;
    }
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, "user.create", name, admin ? "{\"admin\":true}" : NULL);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r < 0) {
        api_reply_error(res, 500, "cannot create the user: %s", store_errmsg(cfg->store));
        return;
    }
    struct store_user u = { 0 };
    if (store_user_get(cfg->store, name, &u) == 0) {
        api_reply(res, 201);
        write_user(&res->json, &u);
    } else {
        api_reply_error(res, 500, "cannot read the user back");
    }
    store_user_done(&u);
}

static void list_users(const struct api_config *cfg, struct api_response *res)
{
    struct store_user *list;
    size_t n;
    if (store_user_list(cfg->store, &list, &n) < 0) {
        api_reply_error(res, 500, "cannot list users: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_key(&res->json, "users");
    json_array_begin(&res->json);
    for (size_t i = 0; i < n; i++)
        write_user(&res->json, &list[i]);
    json_array_end(&res->json);
    json_object_end(&res->json);
    store_user_list_free(list, n);
}

static void remove_user(const struct api_config *cfg, const struct api_request *req, const char *name,
                        struct api_response *res)
{
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_user_delete(cfg->store, name);
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, "user.remove", name, NULL);
    if (r < 0) {
        store_rollback(cfg->store);
        if (r == -ENOENT) {
            api_reply_error(res, 404, "no user named \"%s\"", name);
        } else if (r == -EBUSY) {
            struct store_site *list;
            size_t n;
            char names[256] = "";
            if (store_site_list(cfg->store, name, &list, &n) == 0) {
                for (size_t i = 0; i < n; i++)
                    snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "",
                             list[i].name);
                store_site_list_free(list, n);
            }
            api_reply_error(res, 409, "user %s still owns sites (%s): remove them or give them to another owner first",
                            name, names);
        } else {
            api_reply_error(res, 500, "cannot remove the user: %s", store_errmsg(cfg->store));
        }
        return;
    }
    if (store_commit(cfg->store) < 0) {
        api_reply_error(res, 500, "cannot remove the user: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "removed", name);
    json_object_end(&res->json);
}

/* Revokes every live API token of user; *ret_n says how many. */
static int revoke_tokens(const struct api_config *cfg, const char *user, size_t *ret_n)
{
    struct store_token *list = NULL;
    size_t n = 0;
    int r = store_token_list(cfg->store, user, &list, &n);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        if (list[i].revoked)
            continue;
        r = store_token_revoke(cfg->store, list[i].id);
        if (r >= 0)
            (*ret_n)++;
    }
    store_token_list_free(list, n);
    return r;
}

static void set_password(const struct api_config *cfg, const struct api_request *req, const char *name,
                         struct api_response *res)
{
    const struct json_value *pw = json_get(req->body, "password");
    struct error err = { 0 };
    char hash[crypto_pwhash_STRBYTES];
    if (!pw || pw->type != JSON_STRING) {
        api_reply_error(res, 400, "a password is required");
        return;
    }
    if (api_password_hash(pw->string.data, pw->string.len, hash, &err) < 0) {
        api_reply_failure(res, &err);
        return;
    }
    int r = store_begin(cfg->store);
    size_t revoked = 0;
    if (r >= 0)
        r = store_user_set_password(cfg->store, name, hash);
    /* A reset is how an admin locks out whoever learnt the old password: their
     * sessions end with it (as on PUT /me/password, the asker's own goes on), and
     * so do the API tokens they could have made with it. The user's own change
     * keeps their tokens (their scripts). */
    if (r >= 0)
        r = api_auth_end_sessions(cfg, name, req->via_session ? req->session_id : NULL);
    if (r >= 0 && !streq(name, req->actor))
        r = revoke_tokens(cfg, name, &revoked);
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, "user.passwd", name, NULL);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    if (r == -ENOENT)
        api_reply_error(res, 404, "no user named \"%s\"", name);
    else if (r < 0)
        api_reply_error(res, 500, "cannot change the password: %s", store_errmsg(cfg->store));
    else {
        api_reply(res, 200);
        json_object_begin(&res->json);
        json_kv_string(&res->json, "updated", name);
        json_kv_uint(&res->json, "tokens_revoked", revoked);
        json_object_end(&res->json);
    }
}

/* PATCH {disabled}: a disabled user cannot sign in, and their sessions end now. */
static void change_user(const struct api_config *cfg, const struct api_request *req, const char *name,
                        struct api_response *res)
{
    bool disabled;
    if (!req->body || req->body->object.n != 1 || !json_get_bool(req->body, "disabled", &disabled)) {
        api_reply_error(res, 400, "give {\"disabled\": true} or {\"disabled\": false}");
        return;
    }
    if (disabled && streq(name, req->actor)) {
        api_reply_error(res, 409, "you cannot disable your own account");
        return;
    }
    int r = store_begin(cfg->store);
    if (r >= 0)
        r = store_user_set_disabled(cfg->store, name, disabled);
    if (r >= 0 && disabled)
        r = api_auth_end_sessions(cfg, name, NULL);
    if (r >= 0)
        r = store_event_append(cfg->store, req->actor, disabled ? "user.disable" : "user.enable", name, NULL);
    if (r >= 0)
        r = store_commit(cfg->store);
    else
        store_rollback(cfg->store);
    struct store_user u = { 0 };
    if (r >= 0)
        r = store_user_get(cfg->store, name, &u);
    if (r == -ENOENT) {
        api_reply_error(res, 404, "no user named \"%s\"", name);
    } else if (r < 0) {
        api_reply_error(res, 500, "cannot change the user: %s", store_errmsg(cfg->store));
    } else {
        api_reply(res, 200);
        write_user(&res->json, &u);
    }
    store_user_done(&u);
}

void api_handle_users(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    if (!req->admin) {
        api_reply_error(res, 403, "only an admin may manage users");
        return;
    }
    if (req->n_segments == 1) {
        if (req->method == HTTP_GET)
            list_users(cfg, res);
        else if (req->method == HTTP_POST)
            create_user(cfg, req, res);
        else
            api_reply_error(res, 405, "use GET or POST on /api/v1/users");
        return;
    }
    const char *name = req->segments[1];
    if (req->n_segments == 2 && req->method == HTTP_DELETE)
        remove_user(cfg, req, name, res);
    else if (req->n_segments == 2 && req->method == HTTP_PATCH)
        change_user(cfg, req, name, res);
    else if (req->n_segments == 3 && streq(req->segments[2], "password") && req->method == HTTP_PUT)
        set_password(cfg, req, name, res);
    else if (req->n_segments <= 3)
        api_reply_error(res, 405, "use PATCH or DELETE on a user, or PUT on its password");
    else
        api_reply_error(res, 404, "no such API endpoint");
}

void api_handle_events(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    char value[128];
    uint64_t limit = 50, before = 0;
    const char *target = NULL;
    if (!req->admin) {
        api_reply_error(res, 403, "only an admin may read the event log");
        return;
    }
    if (req->method != HTTP_GET || req->n_segments != 1) {
        api_reply_error(res, req->n_segments == 1 ? 405 : 404, "use GET on /api/v1/events");
        return;
    }
    if (api_query_get(req->query, "limit", value, sizeof(value)) && parse_uint(value, 1, 1000, &limit) < 0) {
        api_reply_error(res, 400, "limit must be a number from 1 to 1000");
        return;
    }
    if (api_query_get(req->query, "before", value, sizeof(value)) && parse_uint(value, 1, INT64_MAX, &before) < 0) {
        api_reply_error(res, 400, "before must be an event id");
        return;
    }
    if (api_query_get(req->query, "target", value, sizeof(value)))
        target = value;
    struct store_event *list;
    size_t n;
    if (store_event_list(cfg->store, (int64_t)before, (size_t)limit, target, &list, &n) < 0) {
        api_reply_error(res, 500, "cannot read events: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_key(&res->json, "events");
    json_array_begin(&res->json);
    for (size_t i = 0; i < n; i++) {
        json_object_begin(&res->json);
        json_kv_int(&res->json, "id", list[i].id);
        json_kv_int(&res->json, "at", list[i].at);
        json_kv_string(&res->json, "actor", list[i].actor);
        json_kv_string(&res->json, "action", list[i].action);
        json_kv_string(&res->json, "target", list[i].target);
        json_kv_string(&res->json, "detail", list[i].detail);
        json_object_end(&res->json);
    }
    json_array_end(&res->json);
    json_object_end(&res->json);
    store_event_list_free(list, n);
}

void api_handle_status(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    size_t n_sites = 0, n_users = 0;
    if (!req->admin) {
        /* It shows the daemon's directories and counts: the operator's business. */
        api_reply_error(res, 403, "only an admin may read the daemon's status");
        return;
    }
    if (req->method != HTTP_GET || req->n_segments != 1) {
        api_reply_error(res, req->n_segments == 1 ? 405 : 404, "use GET on /api/v1/status");
        return;
    }
    if (store_site_count(cfg->store, &n_sites) < 0 || store_user_count(cfg->store, &n_users) < 0) {
        api_reply_error(res, 500, "cannot read the store: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    struct json_writer *w = &res->json;
    json_object_begin(w);
    json_kv_string(w, "version", cfg->version);
    json_kv_int(w, "pid", getpid());
    json_kv_int(w, "uptime_seconds", now_s() - cfg->started_at);
    json_kv_string(w, "state_dir", cfg->state_dir);
    json_kv_string(w, "run_dir", cfg->run_dir);
    json_kv_string(w, "api_socket", cfg->socket_path);
    json_kv_string(w, "base_domain", cfg->base_domain);
    if (cfg->tls_ca)
        json_kv_string(w, "tls_ca", cfg->tls_ca);
    if (cfg->ssh_fingerprint)
        json_kv_string(w, "ssh_host_key", cfg->ssh_fingerprint);
    json_kv_int(w, "schema_version", store_schema_version(cfg->store));
    json_key(w, "listeners");
    json_array_begin(w);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        json_object_begin(w);
        json_kv_string(w, "kind", cfg->listeners[i].kind);
        json_kv_string(w, "requested", cfg->listeners[i].requested);
        json_kv_string(w, "address", cfg->listeners[i].address);
        json_object_end(w);
    }
    json_array_end(w);
    json_key(w, "counts");
    json_object_begin(w);
    json_kv_uint(w, "sites", n_sites);
    json_kv_uint(w, "users", n_users);
    json_object_end(w);
    json_object_end(w);
}

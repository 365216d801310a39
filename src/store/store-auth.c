/* Sessions and API tokens: only hashes of the secrets, never the secrets. */
#include "store/store-internal.h"

void store_session_done(struct store_session *session)
{
    if (!session)
        return;
    free(session->id);
    free(session->user);
    free(session->csrf);
    free(session->client);
    *session = (struct store_session){};
}

void store_token_done(struct store_token *token)
{
    if (!token)
        return;
    free(token->user);
    free(token->name);
    *token = (struct store_token){};
}

void store_token_list_free(struct store_token *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        store_token_done(&list[i]);
    free(list);
}

int store_session_insert(struct store *s, const struct store_session *session)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SESSION_INSERT,
                           "INSERT INTO sessions (id, user, created_at, expires_at, last_seen, csrf, client) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, session->id)) < 0 || (r = store_bind_text(s, st, 2, session->user)) < 0 ||
        (r = store_bind_text(s, st, 6, session->csrf)) < 0 || (r = store_bind_text(s, st, 7, session->client)) < 0)
        return r;
    sqlite3_bind_int64(st, 3, session->created_at);
    sqlite3_bind_int64(st, 4, session->expires_at);
    sqlite3_bind_int64(st, 5, session->last_seen);
    r = store_stmt_step(s, st);
    return r < 0 ? r : 0;
}

int store_session_get(struct store *s, const char *id, struct store_session *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SESSION_GET,
                           "SELECT id, user, created_at, expires_at, last_seen, csrf, client "
                           "FROM sessions WHERE id = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, id)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no such session");
    struct store_session x = {
        .created_at = sqlite3_column_int64(st, 2),
        .expires_at = sqlite3_column_int64(st, 3),
        .last_seen = sqlite3_column_int64(st, 4),
    };
    if (store_column_strdup(st, 0, &x.id) < 0 || store_column_strdup(st, 1, &x.user) < 0 ||
        store_column_strdup(st, 5, &x.csrf) < 0 || store_column_strdup(st, 6, &x.client) < 0) {
        store_session_done(&x);
        return -ENOMEM;
    }
    *ret = x;
    return 0;
}

/* Runs a statement that deletes rows keyed by one or two text values (?2 only when
 * the statement has it); returns how many rows went. */
static int change_by_text(struct store *s, enum store_stmt_id id, const char *sql, const char *key,
                          const char *second)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, id, sql, &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, key)) < 0)
        return r;
    if (sqlite3_bind_parameter_count(st) >= 2 && (r = store_bind_text(s, st, 2, second)) < 0)
        return r;
    r = store_stmt_step(s, st);
    return r < 0 ? r : sqlite3_changes(s->db);
}

int store_session_touch(struct store *s, const char *id, int64_t last_seen)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SESSION_TOUCH, "UPDATE sessions SET last_seen = ?2 WHERE id = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, id)) < 0)
        return r;
    sqlite3_bind_int64(st, 2, last_seen);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    return sqlite3_changes(s->db) == 0 ? store_error_set(s, ENOENT, "no such session") : 0;
}

int store_session_delete(struct store *s, const char *id)
{
    int r = change_by_text(s, STMT_SESSION_DELETE, "DELETE FROM sessions WHERE id = ?1", id, NULL);
    if (r < 0)
        return r;
    return r == 0 ? store_error_set(s, ENOENT, "no such session") : 0;
}

int store_session_delete_user(struct store *s, const char *user, const char *keep_id)
{
    return change_by_text(s, STMT_SESSION_DELETE_USER,
                          "DELETE FROM sessions WHERE user = ?1 AND (?2 IS NULL OR id <> ?2)", user, keep_id);
}

int store_session_prune(struct store *s, int64_t now, int64_t idle_before)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SESSION_PRUNE,
                           "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen < ?2", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, idle_before);
    r = store_stmt_step(s, st);
    return r < 0 ? r : sqlite3_changes(s->db);
}

#define TOKEN_COLUMNS "id, user, name, created_at, last_used, revoked"

static int token_from_row(sqlite3_stmt *st, struct store_token *ret)
{
    struct store_token t = {
        .id = sqlite3_column_int64(st, 0),
        .created_at = sqlite3_column_int64(st, 3),
        .last_used = sqlite3_column_int64(st, 4),   /* NULL reads as 0: never */
        .revoked = sqlite3_column_int(st, 5) != 0,
    };
    if (store_column_strdup(st, 1, &t.user) < 0 || store_column_strdup(st, 2, &t.name) < 0) {
        store_token_done(&t);
        return -ENOMEM;
    }
    *ret = t;
    return 0;
}

int store_token_insert(struct store *s, const char *user, const char *name, const char *hash,
                       int64_t *ret_id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_TOKEN_INSERT,
                           "INSERT INTO api_tokens (user, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, user)) < 0 || (r = store_bind_text(s, st, 2, name)) < 0 ||
        (r = store_bind_text(s, st, 3, hash)) < 0)
        return r;
    sqlite3_bind_int64(st, 4, now_s());
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (ret_id)
        *ret_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int token_one(struct store *s, sqlite3_stmt *st, struct store_token *ret)
{
    int r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no such token");
    return token_from_row(st, ret);
}

int store_token_find(struct store *s, const char *hash, struct store_token *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_TOKEN_FIND, "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE hash = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, hash)) < 0)
        return r;
    return token_one(s, st, ret);
}

int store_token_get(struct store *s, int64_t id, struct store_token *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_TOKEN_GET, "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE id = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    return token_one(s, st, ret);
}

int store_token_list(struct store *s, const char *user, struct store_token **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct store_token *list = NULL;
    size_t n = 0, cap = 0;
    int r = user ? store_stmt_get(s, STMT_TOKEN_LIST_USER,
                                  "SELECT " TOKEN_COLUMNS " FROM api_tokens WHERE user = ?1 ORDER BY id", &st)
                 : store_stmt_get(s, STMT_TOKEN_LIST, "SELECT " TOKEN_COLUMNS " FROM api_tokens ORDER BY id", &st);
    if (r < 0 || (user && (r = store_bind_text(s, st, 1, user)) < 0))
        return r;
    while ((r = store_stmt_step(s, st)) > 0) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct store_token *nl = reallocarray(list, ncap, sizeof(*nl));
            if (!nl) {
                r = -ENOMEM;
                break;
            }
            list = nl;
            cap = ncap;
        }
        if ((r = token_from_row(st, &list[n])) < 0)
            break;
        n++;
    }
    if (r < 0) {
        store_token_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int store_token_revoke(struct store *s, int64_t id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_TOKEN_REVOKE, "UPDATE api_tokens SET revoked = 1 WHERE id = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    return sqlite3_changes(s->db) == 0 ? store_error_set(s, ENOENT, "no such token") : 0;
}

int store_token_touch(struct store *s, int64_t id, int64_t at)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_TOKEN_TOUCH, "UPDATE api_tokens SET last_used = ?2 WHERE id = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    r = store_stmt_step(s, st);
    return r < 0 ? r : 0;
}

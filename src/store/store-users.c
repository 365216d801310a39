/* Users: the accounts that log in to the panel and the API. */
#include "store/store-internal.h"

#define USER_COLUMNS "id, name, password_hash, admin, disabled, created_at"

void store_user_done(struct store_user *u)
{
    if (!u)
        return;
    free(u->name);
    free(u->password_hash);
    *u = (struct store_user){};
}

void store_user_list_free(struct store_user *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        store_user_done(&list[i]);
    free(list);
}

static int user_from_row(sqlite3_stmt *st, struct store_user *ret)
{
    struct store_user u = {
        .id = sqlite3_column_int64(st, 0),
        .admin = sqlite3_column_int(st, 3) != 0,
        .disabled = sqlite3_column_int(st, 4) != 0,
        .created_at = sqlite3_column_int64(st, 5),
    };
    if (store_column_strdup(st, 1, &u.name) < 0 || store_column_strdup(st, 2, &u.password_hash) < 0) {
        store_user_done(&u);
        return -ENOMEM;
    }
    *ret = u;
    return 0;
}

int store_user_insert(struct store *s, const char *name, const char *password_hash,
                      bool admin, int64_t *ret_id)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_USER_INSERT,
                           "INSERT INTO users (name, password_hash, admin, disabled, created_at) "
                           "VALUES (?1, ?2, ?3, 0, ?4)", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, name)) < 0 || (r = store_bind_text(s, st, 2, password_hash)) < 0)
        return r;
    sqlite3_bind_int(st, 3, admin);
    sqlite3_bind_int64(st, 4, now_s());
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (ret_id)
        *ret_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_user_get(struct store *s, const char *name, struct store_user *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_USER_GET, "SELECT " USER_COLUMNS " FROM users WHERE name = ?1", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, name)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no user %s", name);
    return user_from_row(st, ret);
}

int store_user_list(struct store *s, struct store_user **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct store_user *list = NULL;
    size_t n = 0, cap = 0;
    int r = store_stmt_get(s, STMT_USER_LIST, "SELECT " USER_COLUMNS " FROM users ORDER BY name", &st);
    if (r < 0)
        return r;
    while ((r = store_stmt_step(s, st)) > 0) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct store_user *nl = reallocarray(list, ncap, sizeof(*nl));
            if (!nl) {
                r = -ENOMEM;
                break;
            }
            list = nl;
            cap = ncap;
        }
        r = user_from_row(st, &list[n]);
        if (r < 0)
            break;
        n++;
    }
    if (r < 0) {
        store_user_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

static int user_update(struct store *s, enum store_stmt_id id, const char *sql, const char *name,
                       sqlite3_stmt **ret_st)
{
    int r = store_stmt_get(s, id, sql, ret_st);
    if (r < 0)
        return r;
    return store_bind_text(s, *ret_st, 1, name);
}

int store_user_set_password(struct store *s, const char *name, const char *password_hash)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = user_update(s, STMT_USER_SET_PASSWORD,
                        "UPDATE users SET password_hash = ?2 WHERE name = ?1", name, &st);
    if (r < 0 || (r = store_bind_text(s, st, 2, password_hash)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no user %s", name);
    return 0;
}

int store_user_set_disabled(struct store *s, const char *name, bool disabled)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = user_update(s, STMT_USER_SET_DISABLED,
                        "UPDATE users SET disabled = ?2 WHERE name = ?1", name, &st);
    if (r < 0)
        return r;
    sqlite3_bind_int(st, 2, disabled);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no user %s", name);
    return 0;
}

int store_user_delete(struct store *s, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = user_update(s, STMT_USER_DELETE, "DELETE FROM users WHERE name = ?1", name, &st);
    if (r < 0)
        return r;
    r = store_stmt_step(s, st);
    /* The constraint that fails here is sites.owner's ON DELETE RESTRICT. */
    if (r < 0 && (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_TRIGGER ||
                  sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY))
        return store_error_set(s, EBUSY, "user %s still owns sites", name);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no user %s", name);
    return 0;
}

int store_user_count(struct store *s, size_t *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_USER_COUNT, "SELECT count(*) FROM users", &st);
    if (r < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, EIO, "count returned no row");
    *ret = (size_t)sqlite3_column_int64(st, 0);
    return 0;
}

/* Sites' SSH keys. Rows are keyed by the site's id, so a key goes with its site
 * (ON DELETE CASCADE) and a new site of the same name starts without any. */
#include "store/store-internal.h"

static void key_done(struct store_site_key *k)
{
    free(k->algorithm);
    free(k->key);
    free(k->fingerprint);
    free(k->comment);
    *k = (struct store_site_key){ 0 };
}

void store_site_key_list_free(struct store_site_key *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        key_done(&list[i]);
    free(list);
}

int store_site_key_insert(struct store *s, const char *site, const struct store_site_key *key)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* The SELECT yields no row for an unknown site: nothing is written, 0 changes. */
    int r = store_stmt_get(s, STMT_KEY_INSERT,
                           "INSERT INTO site_keys (site_id, algorithm, key, fingerprint, comment, created_at) "
                           "SELECT id, ?2, ?3, ?4, ?5, ?6 FROM sites WHERE name = ?1", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, site)) < 0 || (r = store_bind_text(s, st, 2, key->algorithm)) < 0 ||
        (r = store_bind_text(s, st, 3, key->key)) < 0 || (r = store_bind_text(s, st, 4, key->fingerprint)) < 0 ||
        (r = store_bind_text(s, st, 5, key->comment ? key->comment : "")) < 0)
        return r;
    sqlite3_bind_int64(st, 6, key->created_at ? key->created_at : now_s());
    r = store_stmt_step(s, st);
    if (r == -EEXIST)
        return store_error_set(s, EEXIST, "site %s already has the key %s", site, key->fingerprint);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no site %s", site);
    return 0;
}

int store_site_key_list(struct store *s, const char *site, struct store_site_key **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_KEY_LIST,
                           "SELECT k.algorithm, k.key, k.fingerprint, k.comment, k.created_at FROM site_keys k "
                           "JOIN sites s ON s.id = k.site_id WHERE s.name = ?1 ORDER BY k.id", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0)
        return r;
    struct store_site_key *list = NULL;
    size_t n = 0;
    while ((r = store_stmt_step(s, st)) > 0) {
        struct store_site_key *grown = realloc(list, (n + 1) * sizeof(*list));
        if (!grown) {
            r = store_error_set(s, ENOMEM, "out of memory");
            break;
        }
        list = grown;
        struct store_site_key *k = &list[n++];
        *k = (struct store_site_key){ .created_at = sqlite3_column_int64(st, 4) };
        if (store_column_strdup(st, 0, &k->algorithm) < 0 || store_column_strdup(st, 1, &k->key) < 0 ||
            store_column_strdup(st, 2, &k->fingerprint) < 0 || store_column_strdup(st, 3, &k->comment) < 0) {
            r = store_error_set(s, ENOMEM, "out of memory");
            break;
        }
    }
    if (r < 0) {
        store_site_key_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

int store_site_key_find(struct store *s, const char *site, const char *fingerprint)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_KEY_FIND,
                           "SELECT 1 FROM site_keys k JOIN sites s ON s.id = k.site_id "
                           "WHERE s.name = ?1 AND k.fingerprint = ?2", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0 || (r = store_bind_text(s, st, 2, fingerprint)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    return r == 0 ? store_error_set(s, ENOENT, "site %s has no key %s", site, fingerprint) : 0;
}

int store_site_key_delete(struct store *s, const char *site, const char *fingerprint)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_KEY_DELETE,
                           "DELETE FROM site_keys WHERE fingerprint = ?2 AND "
                           "site_id = (SELECT id FROM sites WHERE name = ?1)", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0 || (r = store_bind_text(s, st, 2, fingerprint)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "site %s has no key %s", site, fingerprint);
    return 0;
}

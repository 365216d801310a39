/* Sites' HTTPS certificates. A row is keyed by the site's id, so a certificate goes
 * with its site (ON DELETE CASCADE) and a new site of the same name starts without. */
#include "store/store-internal.h"

void store_certificate_done(struct store_certificate *cert)
{
    if (!cert)
        return;
    free(cert->hosts);
    free(cert->cert_pem);
    if (cert->key_pem) {
        /* A key is wiped, not just freed: the allocator hands the memory on. */
        explicit_bzero(cert->key_pem, strlen(cert->key_pem));
        free(cert->key_pem);
    }
    free(cert->issuer);
    *cert = (struct store_certificate){ 0 };
}

int store_certificate_get(struct store *s, const char *site, struct store_certificate *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_CERT_GET,
                           "SELECT c.hosts, c.cert_pem, c.key_pem, c.not_after, c.issuer, c.updated_at "
                           "FROM certificates c JOIN sites s ON s.id = c.site_id WHERE s.name = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "site %s has no certificate", site);
    struct store_certificate c = {
        .not_after = sqlite3_column_int64(st, 3),
        .updated_at = sqlite3_column_int64(st, 5),
    };
    if ((r = store_column_strdup(st, 0, &c.hosts)) < 0 || (r = store_column_strdup(st, 1, &c.cert_pem)) < 0 ||
        (r = store_column_strdup(st, 2, &c.key_pem)) < 0 || (r = store_column_strdup(st, 4, &c.issuer)) < 0) {
        store_certificate_done(&c);
        return store_error_set(s, r, "out of memory");
    }
    *ret = c;
    return 0;
}

int store_certificate_summary_get(struct store *s, const char *site, struct store_certificate *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_CERT_SUMMARY_GET,
                           "SELECT c.hosts, c.not_after, c.issuer, c.updated_at "
                           "FROM certificates c JOIN sites s ON s.id = c.site_id WHERE s.name = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "site %s has no certificate", site);
    struct store_certificate c = {
        .not_after = sqlite3_column_int64(st, 1),
        .updated_at = sqlite3_column_int64(st, 3),
    };
    if ((r = store_column_strdup(st, 0, &c.hosts)) < 0 || (r = store_column_strdup(st, 2, &c.issuer)) < 0) {
        store_certificate_done(&c);
        return store_error_set(s, r, "out of memory");
    }
    *ret = c;
    return 0;
}

int store_certificate_put(struct store *s, const char *site, const struct store_certificate *cert)
{
    if (!cert->hosts || !*cert->hosts || !cert->cert_pem || !*cert->cert_pem || !cert->key_pem || !*cert->key_pem)
        return store_error_set(s, EINVAL, "a certificate needs its hosts, certificate and key");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* The SELECT yields no row for an unknown site: nothing is written, 0 changes. */
    int r = store_stmt_get(s, STMT_CERT_PUT,
                           "INSERT INTO certificates (site_id, hosts, cert_pem, key_pem, not_after, issuer, updated_at) "
                           "SELECT id, ?2, ?3, ?4, ?5, ?6, ?7 FROM sites WHERE name = ?1 "
                           "ON CONFLICT (site_id) DO UPDATE SET hosts = excluded.hosts, cert_pem = excluded.cert_pem, "
                           "key_pem = excluded.key_pem, not_after = excluded.not_after, issuer = excluded.issuer, "
                           "updated_at = excluded.updated_at", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0 || (r = store_bind_text(s, st, 2, cert->hosts)) < 0 ||
        (r = store_bind_text(s, st, 3, cert->cert_pem)) < 0 || (r = store_bind_text(s, st, 4, cert->key_pem)) < 0 ||
        (r = store_bind_text(s, st, 6, cert->issuer ? cert->issuer : "local")) < 0)
        return r;
    int rc;
    if ((rc = sqlite3_bind_int64(st, 5, cert->not_after)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 7, now_s())) != SQLITE_OK)
        return store_error_sqlite(s, rc);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no site %s", site);
    return 0;
}

int store_certificate_delete(struct store *s, const char *site)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_CERT_DELETE,
                           "DELETE FROM certificates WHERE site_id = (SELECT id FROM sites WHERE name = ?1)", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "site %s has no certificate", site);
    return 0;
}

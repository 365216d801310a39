/* Sites, their domains, and the allocation of site uids. */
#include <inttypes.h>

#include "store/store-internal.h"

#define SITE_COLUMNS                                                                   \
    "id, name, type, owner, uid, cmd, memory_max, cpu_millis, pids_max, network, "     \
    "always_on, idle_seconds, desired_state, php_settings, created_at, updated_at, io_read_bps, io_write_bps, " \
    "backup_every, backup_hour, backup_keep, backup_since"

void store_site_done(struct store_site *site)
{
    if (!site)
        return;
    free(site->name);
    free(site->type);
    free(site->owner);
    free(site->cmd);
    free(site->network);
    free(site->desired_state);
    free(site->php_settings);
    for (size_t i = 0; site->domains && i < site->n_domains; i++)
        free(site->domains[i]);
    free(site->domains);
    *site = (struct store_site){};
}

void store_site_list_free(struct store_site *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        store_site_done(&list[i]);
    free(list);
}

static int site_domains_load(struct store *s, struct store_site *site)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SITE_DOMAINS,
                           "SELECT domain FROM domains WHERE site_id = ?1 ORDER BY domain", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, site->id);
    while ((r = store_stmt_step(s, st)) > 0) {
        char **nd = reallocarray(site->domains, site->n_domains + 1, sizeof(*nd));
        if (!nd)
            return -ENOMEM;
        site->domains = nd;
        r = store_column_strdup(st, 0, &site->domains[site->n_domains]);
        if (r < 0)
            return r;
        site->n_domains++;
    }
    return r;
}

/* Fills ret from a row of SITE_COLUMNS and loads its domains. On failure ret is
 * left empty. */
static int site_from_row(struct store *s, sqlite3_stmt *st, struct store_site *ret)
{
    struct store_site site = {
        .id = sqlite3_column_int64(st, 0),
        .uid = (uint32_t)sqlite3_column_int64(st, 4),
        .memory_max = (uint64_t)sqlite3_column_int64(st, 6),
        .cpu_millis = (uint32_t)sqlite3_column_int64(st, 7),
        .pids_max = (uint32_t)sqlite3_column_int64(st, 8),
        .always_on = sqlite3_column_int(st, 10) != 0,
        .idle_seconds = (uint32_t)sqlite3_column_int64(st, 11),
        .created_at = sqlite3_column_int64(st, 14),
        .updated_at = sqlite3_column_int64(st, 15),
        .io_read_bps = (uint64_t)sqlite3_column_int64(st, 16),
        .io_write_bps = (uint64_t)sqlite3_column_int64(st, 17),
        .backup_every = store_backup_every_from_string((const char *)sqlite3_column_text(st, 18)),
        .backup_hour = (uint32_t)sqlite3_column_int64(st, 19),
        .backup_keep = (uint32_t)sqlite3_column_int64(st, 20),
        .backup_since = sqlite3_column_int64(st, 21),
    };
    int r = 0;
    if (store_column_strdup(st, 1, &site.name) < 0 || store_column_strdup(st, 2, &site.type) < 0 ||
        store_column_strdup(st, 3, &site.owner) < 0 || store_column_strdup(st, 5, &site.cmd) < 0 ||
        store_column_strdup(st, 9, &site.network) < 0 ||
        store_column_strdup(st, 12, &site.desired_state) < 0 ||
        store_column_strdup(st, 13, &site.php_settings) < 0)
        r = -ENOMEM;
    if (r == 0)
        r = site_domains_load(s, &site);
    if (r < 0) {
        store_site_done(&site);
        return r;
    }
    *ret = site;
    return 0;
}

/* Binds the fields insert and update share: ?1 name, ?2..?12 the mutable fields,
 * ?13 the current time, ?15 and ?16 the disk limits (?14 is the insert's uid),
 * ?17..?19 the backup schedule. */
static int site_bind(struct store *s, sqlite3_stmt *st, const struct store_site *site)
{
    int r;
    /* sqlite integers are signed 64-bit; a larger limit would come back negative. */
    if (site->memory_max > INT64_MAX)
        return store_error_set(s, EINVAL, "memory limit %" PRIu64 " is too large", site->memory_max);
    if (site->io_read_bps > INT64_MAX || site->io_write_bps > INT64_MAX)
        return store_error_set(s, EINVAL, "disk limit is too large");
    const char *every = store_backup_every_to_string(site->backup_every);
    if (!every)
        return store_error_set(s, EINVAL, "invalid backup schedule %d", (int)site->backup_every);
    if ((r = store_bind_text(s, st, 1, site->name)) < 0 ||
        (r = store_bind_text(s, st, 2, site->type)) < 0 ||
        (r = store_bind_text(s, st, 3, site->owner)) < 0 ||
        (r = store_bind_text(s, st, 4, site->cmd)) < 0 ||
        (r = store_bind_text(s, st, 8, site->network)) < 0 ||
        (r = store_bind_text(s, st, 11, site->desired_state)) < 0 ||
        (r = store_bind_text(s, st, 12, site->php_settings)) < 0)
        return r;
    sqlite3_bind_int64(st, 5, (int64_t)site->memory_max);
    sqlite3_bind_int64(st, 6, site->cpu_millis);
    sqlite3_bind_int64(st, 7, site->pids_max);
    sqlite3_bind_int(st, 9, site->always_on);
    sqlite3_bind_int64(st, 10, site->idle_seconds);
    sqlite3_bind_int64(st, 13, now_s());
    sqlite3_bind_int64(st, 15, (int64_t)site->io_read_bps);
    sqlite3_bind_int64(st, 16, (int64_t)site->io_write_bps);
    sqlite3_bind_text(st, 17, every, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 18, site->backup_hour);
    sqlite3_bind_int64(st, 19, site->backup_keep);
    return 0;
}

/* A domain insert hit an existing row: 0 if that row is this site's own (the domain
 * was listed twice), else -EADDRINUSE with a copy in *ret_conflict. */
static int domain_conflict(struct store *s, int64_t site_id, const char *domain, char **ret_conflict)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_DOMAIN_OWNER,
                           "SELECT d.site_id, s.name FROM domains d JOIN sites s ON s.id = d.site_id "
                           "WHERE d.domain = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, domain)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, EIO, "domain %s conflicts but has no owner", domain);
    if (sqlite3_column_int64(st, 0) == site_id)
        return 0;
    if (ret_conflict) {
        char *c = strdup(domain);
        if (!c)
            return -ENOMEM;
        *ret_conflict = c;
    }
    return store_error_set(s, EADDRINUSE, "domain %s belongs to site %s", domain,
                           (const char *)sqlite3_column_text(st, 1));
}

/* Inserts the domains of site_id. A domain listed twice is stored once; a domain
 * another site holds fails with -EADDRINUSE and a copy in *ret_conflict. */
static int site_domains_insert(struct store *s, int64_t site_id, char *const *domains, size_t n,
                               char **ret_conflict)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = store_stmt_get(s, STMT_DOMAIN_INSERT,
                               "INSERT INTO domains (domain, site_id) VALUES (?1, ?2)", &st);
        if (r < 0 || (r = store_bind_text(s, st, 1, domains[i])) < 0)
            return r;
        sqlite3_bind_int64(st, 2, site_id);
        r = store_stmt_step(s, st);
        if (r == -EEXIST)
            r = domain_conflict(s, site_id, domains[i], ret_conflict);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- uid allocation ----
 *
 * meta.next_uid counts upwards through the range, so a deleted site's uid is not
 * handed to a new site while the counter has room: files the old site left behind
 * (a backup, a stray file in /tmp) must not become the new site's. Once the counter
 * passes the end of the range it stays there and every allocation takes the lowest
 * uid no site holds. */

static int uid_held(struct store *s, uint32_t uid, bool *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_UID_HELD, "SELECT 1 FROM sites WHERE uid = ?1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, uid);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    *ret = r > 0;
    return 0;
}

/* The lowest uid in [from, last] that no site holds, or -ENOSPC. */
static int uid_lowest_unheld(struct store *s, uint32_t from, uint32_t last, uint32_t *ret)
{
    bool held;
    if (from > last)
        return -ENOSPC;
    int r = uid_held(s, from, &held);
    if (r < 0)
        return r;
    if (!held) {
        *ret = from;
        return 0;
    }
    /* from is held, so the lowest free uid above it is one past the end of the run of
     * held uids that starts at from: the first held uid >= from whose successor is
     * free. The UNIQUE index on uid serves both the scan and the probe. */
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    r = store_stmt_get(s, STMT_UID_GAP,
                       "SELECT a.uid + 1 FROM sites a WHERE a.uid >= ?1 AND "
                       "NOT EXISTS (SELECT 1 FROM sites b WHERE b.uid = a.uid + 1) "
                       "ORDER BY a.uid LIMIT 1", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, from);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, EIO, "uid %" PRIu32 " is held but no gap follows it", from);
    int64_t uid = sqlite3_column_int64(st, 0);
    if (uid > last)
        return -ENOSPC;
    *ret = (uint32_t)uid;
    return 0;
}

/* Uids the owner says no (a host account's) are passed over, one probe each: they
 * are few, and the range of a site is never wider than 2^32. */
static int uid_lowest_free(struct store *s, uint32_t from, uint32_t last, uint32_t *ret)
{
    for (;;) {
        int r = uid_lowest_unheld(s, from, last, ret);
        if (r < 0 || !s->uid_usable || s->uid_usable(*ret, s->uid_usable_data))
            return r;
        if (*ret == last)
            return -ENOSPC;
        from = *ret + 1;
    }
}

static int meta_next_uid_get(struct store *s, int64_t *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_META_GET, "SELECT value FROM meta WHERE key = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, "next_uid")) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    *ret = r > 0 ? sqlite3_column_int64(st, 0) : 0;
    return 0;
}

static int meta_next_uid_set(struct store *s, int64_t value)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_META_SET,
                           "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, "next_uid")) < 0)
        return r;
    sqlite3_bind_int64(st, 2, value);
    r = store_stmt_step(s, st);
    return r < 0 ? r : 0;
}

/* Must run inside the transaction that inserts the site, so that a failed insert
 * does not consume a uid and two inserts cannot take the same one. */
static int uid_allocate(struct store *s, uint32_t *ret)
{
    uint32_t first = s->uid_first, last = s->uid_last, uid;
    int64_t next;
    int r;

    if (first == 0 || first > last)
        return store_error_set(s, EINVAL, "bad uid range %" PRIu32 "..%" PRIu32, first, last);
    r = meta_next_uid_get(s, &next);
    if (r < 0)
        return r;
    if (next < first)
        next = first;    /* first allocation, or the range moved up */

    if (next <= last) {
        r = uid_lowest_free(s, (uint32_t)next, last, &uid);
        if (r >= 0) {
            r = meta_next_uid_set(s, (int64_t)uid + 1);
            if (r < 0)
                return r;
            *ret = uid;
            return 0;
        }
        if (r != -ENOSPC)
            return r;
    }

    r = uid_lowest_free(s, first, last, &uid);
    if (r == -ENOSPC)
        return store_error_set(s, ENOSPC, "every uid in %" PRIu32 "..%" PRIu32 " is taken", first, last);
    if (r < 0)
        return r;
    r = meta_next_uid_set(s, MAX(next, (int64_t)last + 1));
    if (r < 0)
        return r;
    *ret = uid;
    return 0;
}

/* ---- sites ---- */

static int site_insert_locked(struct store *s, struct store_site *site, char **ret_conflict)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    uint32_t uid = 0;   /* set by uid_allocate; -O3 cannot see that */
    int r;

    r = uid_allocate(s, &uid);
    if (r < 0)
        return r;
    r = store_stmt_get(s, STMT_SITE_INSERT,
                       "INSERT INTO sites (name, type, owner, cmd, memory_max, cpu_millis, pids_max, "
                       "network, always_on, idle_seconds, desired_state, php_settings, created_at, "
                       "updated_at, uid, io_read_bps, io_write_bps, backup_every, backup_hour, backup_keep, "
                       "backup_since) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                       "?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?13) RETURNING id, created_at", &st);
    if (r < 0 || (r = site_bind(s, st, site)) < 0)
        return r;
    sqlite3_bind_int64(st, 14, uid);
    r = store_stmt_step(s, st);
    if (r == -EEXIST)
        return store_error_set(s, EEXIST, "site %s exists", site->name);
    if (r == -ENXIO)
        return store_error_set(s, ENXIO, "owner %s is not a user", site->owner);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, EIO, "insert of site %s returned no row", site->name);
    int64_t id = sqlite3_column_int64(st, 0), now = sqlite3_column_int64(st, 1);
    /* RETURNING made every change at the first step; finish the statement before
     * the next ones run. */
    store_stmt_resetp(&st);

    r = site_domains_insert(s, id, site->domains, site->n_domains, ret_conflict);
    if (r < 0)
        return r;
    site->id = id;
    site->uid = uid;
    site->created_at = site->updated_at = site->backup_since = now;
    return 0;
}

int store_site_insert(struct store *s, struct store_site *site, char **ret_conflict)
{
    int r = store_begin(s);
    if (r < 0)
        return r;
    r = site_insert_locked(s, site, ret_conflict);
    if (r < 0) {
        store_rollback(s);
        return r;
    }
    return store_commit(s);
}

int store_site_get(struct store *s, const char *name, struct store_site *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SITE_GET, "SELECT " SITE_COLUMNS " FROM sites WHERE name = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, name)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no site %s", name);
    return site_from_row(s, st, ret);
}

int store_site_list(struct store *s, const char *owner, struct store_site **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct store_site *list = NULL;
    size_t n = 0, cap = 0;
    int r = store_stmt_get(s, STMT_SITE_LIST,
                           "SELECT " SITE_COLUMNS " FROM sites WHERE ?1 IS NULL OR owner = ?1 "
                           "ORDER BY name", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, owner)) < 0)
        return r;
    while ((r = store_stmt_step(s, st)) > 0) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct store_site *nl = reallocarray(list, ncap, sizeof(*nl));
            if (!nl) {
                r = -ENOMEM;
                break;
            }
            list = nl;
            cap = ncap;
        }
        r = site_from_row(s, st, &list[n]);
        if (r < 0)
            break;
        n++;
    }
    if (r < 0) {
        store_site_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

static int site_update_locked(struct store *s, struct store_site *site, char **ret_conflict)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SITE_UPDATE,
                           "UPDATE sites SET type = ?2, owner = ?3, cmd = ?4, memory_max = ?5, "
                           "cpu_millis = ?6, pids_max = ?7, network = ?8, always_on = ?9, "
                           "idle_seconds = ?10, desired_state = ?11, php_settings = ?12, "
                           "updated_at = ?13, io_read_bps = ?15, io_write_bps = ?16, "
                           /* The right-hand sides see the old row. */
                           "backup_since = CASE WHEN backup_every = ?17 AND backup_hour = ?18 "
                           "THEN backup_since ELSE ?13 END, "
                           "backup_every = ?17, backup_hour = ?18, backup_keep = ?19 "
                           "WHERE name = ?1 RETURNING id, uid, created_at, updated_at, backup_since",
                           &st);
    if (r < 0 || (r = site_bind(s, st, site)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r == -ENXIO)
        return store_error_set(s, ENXIO, "owner %s is not a user", site->owner);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no site %s", site->name);
    int64_t id = sqlite3_column_int64(st, 0);
    uint32_t uid = (uint32_t)sqlite3_column_int64(st, 1);
    int64_t created = sqlite3_column_int64(st, 2), updated = sqlite3_column_int64(st, 3);
    int64_t since = sqlite3_column_int64(st, 4);
    store_stmt_resetp(&st);

    _cleanup_stmt_ sqlite3_stmt *clear = NULL;
    r = store_stmt_get(s, STMT_DOMAIN_CLEAR, "DELETE FROM domains WHERE site_id = ?1", &clear);
    if (r < 0)
        return r;
    sqlite3_bind_int64(clear, 1, id);
    r = store_stmt_step(s, clear);
    if (r < 0)
        return r;
    r = site_domains_insert(s, id, site->domains, site->n_domains, ret_conflict);
    if (r < 0)
        return r;
    site->id = id;
    site->uid = uid;
    site->created_at = created;
    site->updated_at = updated;
    site->backup_since = since;
    return 0;
}

int store_site_update(struct store *s, struct store_site *site, char **ret_conflict)
{
    int r = store_begin(s);
    if (r < 0)
        return r;
    r = site_update_locked(s, site, ret_conflict);
    if (r < 0) {
        store_rollback(s);
        return r;
    }
    return store_commit(s);
}

int store_site_delete(struct store *s, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* The domains go with it: domains.site_id is ON DELETE CASCADE. */
    int r = store_stmt_get(s, STMT_SITE_DELETE, "DELETE FROM sites WHERE name = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, name)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no site %s", name);
    return 0;
}

int store_domain_lookup(struct store *s, const char *domain, char **ret_site)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_DOMAIN_LOOKUP,
                           "SELECT s.name FROM domains d JOIN sites s ON s.id = d.site_id "
                           "WHERE d.domain = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, domain)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "no site has domain %s", domain);
    char *name;
    r = store_column_strdup(st, 0, &name);
    if (r < 0)
        return r;
    *ret_site = name;
    return 0;
}

int store_site_count(struct store *s, size_t *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_SITE_COUNT, "SELECT count(*) FROM sites", &st);
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

/* Automatic backups: the names of the cadences, the outcome of each site's last
 * automatic backup, and the list the scheduler walks. Rows are keyed by the site's
 * id, so a run goes with its site and a new site of the same name starts afresh. */
#include <stdio.h>

#include "store/store-internal.h"

static const char *const every_names[] = {
    [STORE_BACKUP_OFF] = "off",
    [STORE_BACKUP_DAILY] = "daily",
    [STORE_BACKUP_WEEKLY] = "weekly",
};

const char *store_backup_every_to_string(enum store_backup_every every)
{
    return (unsigned)every < ARRAY_SIZE(every_names) ? every_names[every] : NULL;
}

bool store_backup_every_valid(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(every_names); i++)
        if (streq(s, every_names[i]))
            return true;
    return false;
}

enum store_backup_every store_backup_every_from_string(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(every_names); i++)
        if (streq(s, every_names[i]))
            return (enum store_backup_every)i;
    return STORE_BACKUP_OFF;
}

void store_backup_run_done(struct store_backup_run *run)
{
    if (!run)
        return;
    free(run->snapshot);
    free(run->error);
    *run = (struct store_backup_run){ 0 };
}

int store_backup_run_get(struct store *s, const char *site, struct store_backup_run *ret)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_BACKUP_RUN_GET,
                           "SELECT r.at, r.ok, r.snapshot, r.error FROM site_backup_runs r "
                           "JOIN sites s ON s.id = r.site_id WHERE s.name = ?1", &st);
    if (r < 0 || (r = store_bind_text(s, st, 1, site)) < 0)
        return r;
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (r == 0)
        return store_error_set(s, ENOENT, "site %s has had no automatic backup", site);
    struct store_backup_run run = { .at = sqlite3_column_int64(st, 0), .ok = sqlite3_column_int(st, 1) != 0 };
    if (store_column_strdup(st, 2, &run.snapshot) < 0 || store_column_strdup(st, 3, &run.error) < 0) {
        store_backup_run_done(&run);
        return store_error_set(s, ENOMEM, "out of memory");
    }
    *ret = run;
    return 0;
}

int store_backup_run_put(struct store *s, const char *site, const struct store_backup_run *run)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    /* The SELECT yields no row for an unknown site: nothing is written, 0 changes. */
    int r = store_stmt_get(s, STMT_BACKUP_RUN_PUT,
                           "INSERT INTO site_backup_runs (site_id, at, ok, snapshot, error) "
                           "SELECT id, ?2, ?3, ?4, ?5 FROM sites WHERE name = ?1 "
                           "ON CONFLICT (site_id) DO UPDATE SET at = excluded.at, ok = excluded.ok, "
                           "snapshot = excluded.snapshot, error = excluded.error", &st);
    if (r < 0)
        return r;
    if ((r = store_bind_text(s, st, 1, site)) < 0 || (r = store_bind_text(s, st, 4, run->snapshot)) < 0 ||
        (r = store_bind_text(s, st, 5, run->error)) < 0)
        return r;
    sqlite3_bind_int64(st, 2, run->at);
    sqlite3_bind_int(st, 3, run->ok);
    r = store_stmt_step(s, st);
    if (r < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return store_error_set(s, ENOENT, "no site %s", site);
    return 0;
}

int store_backup_schedule_list(struct store *s, struct store_backup_schedule **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_BACKUP_SCHEDULE_LIST,
                           "SELECT s.name, s.backup_every, s.backup_hour, s.backup_keep, s.backup_since, "
                           "coalesce(r.at, 0) FROM sites s LEFT JOIN site_backup_runs r ON r.site_id = s.id "
                           "WHERE s.backup_every <> 'off' ORDER BY s.name", &st);
    if (r < 0)
        return r;
    struct store_backup_schedule *list = NULL;
    size_t n = 0;
    while ((r = store_stmt_step(s, st)) > 0) {
        struct store_backup_schedule *grown = realloc(list, (n + 1) * sizeof(*list));
        if (!grown) {
            r = store_error_set(s, ENOMEM, "out of memory");
            break;
        }
        list = grown;
        struct store_backup_schedule *e = &list[n++];
        *e = (struct store_backup_schedule){
            .every = store_backup_every_from_string((const char *)sqlite3_column_text(st, 1)),
            .hour = (uint32_t)sqlite3_column_int64(st, 2),
            .keep = (uint32_t)sqlite3_column_int64(st, 3),
            .since = sqlite3_column_int64(st, 4),
            .last_at = sqlite3_column_int64(st, 5),
        };
        /* Names are 1-63 characters (the table's CHECK). */
        snprintf(e->name, sizeof(e->name), "%s", (const char *)sqlite3_column_text(st, 0));
    }
    if (r < 0) {
        free(list);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

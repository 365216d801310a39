/* Events: the audit log, appended to by every change and read newest first. */
#include "store/store-internal.h"


void store_event_list_free(struct store_event *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++) {
        free(list[i].actor);
        free(list[i].action);
        free(list[i].target);
        free(list[i].detail);
    }
    free(list);
}

int store_event_append(struct store *s, const char *actor, const char *action,
                       const char *target, const char *detail_json)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, STMT_EVENT_INSERT,
                           "INSERT INTO events (at, actor, action, target, detail) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)", &st);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 1, now_s());
    if ((r = store_bind_text(s, st, 2, actor)) < 0 || (r = store_bind_text(s, st, 3, action)) < 0 ||
        (r = store_bind_text(s, st, 4, target)) < 0 || (r = store_bind_text(s, st, 5, detail_json)) < 0)
        return r;
    r = store_stmt_step(s, st);
    return r < 0 ? r : 0;
}

static int event_from_row(sqlite3_stmt *st, struct store_event *ret)
{
    struct store_event e = {
        .id = sqlite3_column_int64(st, 0),
        .at = sqlite3_column_int64(st, 1),
    };
    if (store_column_strdup(st, 2, &e.actor) < 0 || store_column_strdup(st, 3, &e.action) < 0 ||
        store_column_strdup(st, 4, &e.target) < 0 || store_column_strdup(st, 5, &e.detail) < 0) {
        free(e.actor);
        free(e.action);
        free(e.target);
        free(e.detail);
        return -ENOMEM;
    }
    *ret = e;
    return 0;
}

int store_event_list(struct store *s, int64_t before_id, size_t limit, const char *target,
                     struct store_event **ret, size_t *ret_n)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    struct store_event *list = NULL;
    size_t n = 0;
    /* Two statements rather than "?2 IS NULL OR target = ?2", which would stop the
     * planner from using events_target (target, id) for the filtered form. */
    int r = target ? store_stmt_get(s, STMT_EVENT_LIST_TARGET,
                                    "SELECT id, at, actor, action, target, detail FROM events "
                                    "WHERE target = ?2 AND id < ?1 ORDER BY id DESC LIMIT ?3", &st)
                   : store_stmt_get(s, STMT_EVENT_LIST,
                                    "SELECT id, at, actor, action, target, detail FROM events "
                                    "WHERE id < ?1 ORDER BY id DESC LIMIT ?3", &st);
    if (r < 0)
        return r;
    limit = MIN(limit, (size_t)STORE_EVENT_LIST_MAX);
    if (limit > 0) {
        list = calloc(limit, sizeof(*list));
        if (!list)
            return -ENOMEM;
    }
    sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
    if (target && (r = store_bind_text(s, st, 2, target)) < 0) {
        free(list);
        return r;
    }
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    while (n < limit && (r = store_stmt_step(s, st)) > 0) {
        r = event_from_row(st, &list[n]);
        if (r < 0)
            break;
        n++;
    }
    if (r < 0) {
        store_event_list_free(list, n);
        return r;
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

/* Private to src/store: the struct behind the opaque handle, the statement cache and
 * the error plumbing shared by the store*.c files, and the hook the unit test uses to
 * run the migration runner over its own migration lists. Other components include
 * only store.h. */
#pragma once

#include <sqlite3.h>

#include "store/store.h"

/* One slot per cached statement. The SQL text lives next to the code that runs it
 * (see store_stmt_get); this enum only sizes the cache. */
enum store_stmt_id {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_META_GET,
    STMT_META_SET,
    STMT_USER_INSERT,
    STMT_USER_GET,
    STMT_USER_LIST,
    STMT_USER_SET_PASSWORD,
    STMT_USER_SET_DISABLED,
    STMT_USER_DELETE,
    STMT_USER_COUNT,
    STMT_SITE_INSERT,
    STMT_SITE_GET,
    STMT_SITE_LIST,
    STMT_SITE_UPDATE,
    STMT_SITE_DELETE,
    STMT_SITE_COUNT,
    STMT_SITE_DOMAINS,
    STMT_UID_HELD,
    STMT_UID_GAP,
    STMT_DOMAIN_INSERT,
    STMT_DOMAIN_OWNER,
    STMT_DOMAIN_CLEAR,
    STMT_DOMAIN_LOOKUP,
    STMT_EVENT_INSERT,
    STMT_EVENT_LIST,
    STMT_EVENT_LIST_TARGET,
    STMT_SESSION_INSERT,
    STMT_SESSION_GET,
    STMT_SESSION_TOUCH,
    STMT_SESSION_DELETE,
    STMT_SESSION_DELETE_USER,
    STMT_SESSION_PRUNE,
    STMT_TOKEN_INSERT,
    STMT_TOKEN_FIND,
    STMT_TOKEN_GET,
    STMT_TOKEN_LIST,
    STMT_TOKEN_LIST_USER,
    STMT_TOKEN_REVOKE,
    STMT_TOKEN_TOUCH,
    STMT_CERT_GET,
    STMT_CERT_SUMMARY_GET,
    STMT_CERT_PUT,
    STMT_CERT_DELETE,
    STMT_KEY_INSERT,
    STMT_KEY_LIST,
    STMT_KEY_FIND,
    STMT_KEY_DELETE,
    STMT_BACKUP_RUN_GET,
    STMT_BACKUP_RUN_PUT,
    STMT_BACKUP_SCHEDULE_LIST,
    _STMT_MAX,
};

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmts[_STMT_MAX];
    unsigned n_prepares;       /* how many statements were compiled: the test checks the cache */
    int schema_version;
    uint32_t uid_first, uid_last;
    store_uid_usable_fn uid_usable;
    void *uid_usable_data;
    unsigned txn_depth;        /* store_begin() nesting; 0 = no transaction */
    bool txn_poisoned;         /* an inner level rolled back: the outer commit must fail */
    char errmsg[256];          /* copied at failure time: later calls overwrite sqlite's own */
};

/* The schema, one SQL script per version: store_migrations[N-1] brings the schema
 * from N-1 to N. STORE_SCHEMA_VERSION equals the count. */
extern const char *const store_migrations[];
extern const size_t store_n_migrations;

/* store_open() with a caller-chosen migration list (its length is the schema version
 * this store knows). store_open() passes store_migrations; the unit test passes
 * longer or broken lists to exercise the runner. */
int store_open_with_migrations(const char *path, const char *const *migrations,
                               size_t n_migrations, struct store **ret,
                               int *ret_found_version);

/* Returns the cached statement for id, compiling sql the first time. The statement
 * comes back reset with no bindings; declare the variable with _cleanup_stmt_ so that
 * it is reset again on every path out (an unreset statement keeps its read snapshot,
 * which stops WAL checkpoints). */
int store_stmt_get(struct store *s, enum store_stmt_id id, const char *sql,
                   sqlite3_stmt **ret);

/* Resets a borrowed cached statement (the cache keeps ownership). NULL-safe. */
void store_stmt_resetp(sqlite3_stmt **st);
#define _cleanup_stmt_ _cleanup_(store_stmt_resetp)

/* sqlite3_step: 1 for a row, 0 when done, or a negative errno (store_error_sqlite). */
int store_stmt_step(struct store *s, sqlite3_stmt *st);

/* Records sqlite3_errmsg() for store_errmsg() and maps the extended result code rc to
 * an errno: UNIQUE/PRIMARY KEY -> -EEXIST, FOREIGN KEY (no such parent) -> -ENXIO,
 * RESTRICT (still referenced) -> -EBUSY, CHECK/NOT NULL -> -EINVAL, BUSY/LOCKED -> -EBUSY, FULL -> -ENOSPC, READONLY -> -EROFS, NOMEM -> -ENOMEM,
 * I/O and open failures -> the system errno when sqlite saw one, else -EIO. */
int store_error_sqlite(struct store *s, int rc);

/* Records a message of our own for store_errmsg() and returns -abs(error). */
int store_error_set(struct store *s, int error, const char *fmt, ...) _printf_(3, 4);

/* strdup of a text column: 0 and NULL for SQL NULL, -ENOMEM. */
int store_column_strdup(sqlite3_stmt *st, int col, char **ret);

/* Binds a C string, or SQL NULL when s is NULL; SQLITE_STATIC because every caller
 * steps and resets the statement before the string can go away. */
int store_bind_text(struct store *s, sqlite3_stmt *st, int idx, const char *text);

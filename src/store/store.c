/* Opening the store, the migration runner, transactions, the statement cache and the
 * mapping of sqlite's result codes to errnos. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store/store-internal.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_UID_FIRST_DEFAULT 200000u
#define STORE_UID_LAST_DEFAULT 299999u

int store_error_set(struct store *s, int error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return error < 0 ? error : -error;
}

static int errno_from_sqlite(sqlite3 *db, int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return -EEXIST;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return -ENXIO;
    case SQLITE_CONSTRAINT_TRIGGER:
        /* sqlite enforces ON DELETE RESTRICT through an internal trigger: the row is
         * still referenced. The schema has no triggers of its own. */
        return -EBUSY;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_DATATYPE:
        return -EINVAL;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CONSTRAINT:
        return -EINVAL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
        return -EINVAL;
    case SQLITE_NOTADB:
        /* Not an SQLite file at all: refuse to treat it as ours. */
        return -ENOTSUP;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
        int e = db ? sqlite3_system_errno(db) : 0;
        return e > 0 ? -e : -EIO;
    }
    default:
        return -EIO;
    }
}

int store_error_sqlite(struct store *s, int rc)
{
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", sqlite3_errmsg(s->db));
    return errno_from_sqlite(s->db, rc);
}

const char *store_errmsg(struct store *s)
{
    return s ? s->errmsg : "no store";
}

int store_schema_version(struct store *s)
{
    return s->schema_version;
}

void store_set_uid_range(struct store *s, uint32_t first, uint32_t last)
{
    s->uid_first = first;
    s->uid_last = last;
}

void store_set_uid_usable(struct store *s, store_uid_usable_fn fn, void *data)
{
    s->uid_usable = fn;
    s->uid_usable_data = data;
}

/* ---- statement cache ---- */

int store_stmt_get(struct store *s, enum store_stmt_id id, const char *sql, sqlite3_stmt **ret)
{
    if (!s->stmts[id]) {
        sqlite3_stmt *st = NULL;
        /* PERSISTENT: these live as long as the store, so sqlite keeps them out of
         * its short-lived lookaside memory. */
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK)
            return store_error_sqlite(s, rc);
        s->stmts[id] = st;
        s->n_prepares++;
    }
    *ret = s->stmts[id];
    return 0;
}

void store_stmt_resetp(sqlite3_stmt **st)
{
    if (!*st)
        return;
    /* sqlite3_reset() repeats the last step's error, which the caller has handled. */
    (void)sqlite3_reset(*st);
    (void)sqlite3_clear_bindings(*st);
}

int store_stmt_step(struct store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return store_error_sqlite(s, rc);
}

int store_column_strdup(sqlite3_stmt *st, int col, char **ret)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t) {
        /* NULL text with SQLITE_NULL type is a real NULL; otherwise sqlite ran out of memory. */
        if (sqlite3_column_type(st, col) != SQLITE_NULL)
            return -ENOMEM;
        *ret = NULL;
        return 0;
    }
    char *c = strdup((const char *)t);
    if (!c)
        return -ENOMEM;
    *ret = c;
    return 0;
}

int store_bind_text(struct store *s, sqlite3_stmt *st, int idx, const char *text)
{
    int rc = text ? sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
    return rc == SQLITE_OK ? 0 : store_error_sqlite(s, rc);
}

/* ---- transactions ---- */

static int exec_cached(struct store *s, enum store_stmt_id id, const char *sql)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = store_stmt_get(s, id, sql, &st);
    if (r < 0)
        return r;
    r = store_stmt_step(s, st);
    return r < 0 ? r : 0;
}

static void rollback_now(struct store *s)
{
    /* A failed COMMIT may have ended the transaction itself (sqlite rolls back on
     * some errors); only roll back what is still open. */
    if (!sqlite3_get_autocommit(s->db))
        (void)exec_cached(s, STMT_ROLLBACK, "ROLLBACK");
}

int store_begin(struct store *s)
{
    if (s->txn_depth == 0) {
        /* IMMEDIATE takes the write lock now: a deferred transaction that reads first
         * and writes later can fail with SQLITE_BUSY at the write, which the busy
         * timeout cannot retry. */
        int r = exec_cached(s, STMT_BEGIN, "BEGIN IMMEDIATE");
        if (r < 0)
            return r;
        s->txn_poisoned = false;
    }
    s->txn_depth++;
    return 0;
}

int store_commit(struct store *s)
{
    if (s->txn_depth == 0)
        return store_error_set(s, EINVAL, "commit without a transaction");
    if (--s->txn_depth > 0)
        return s->txn_poisoned ? store_error_set(s, ECANCELED, "an inner transaction was rolled back") : 0;

    if (s->txn_poisoned) {
        rollback_now(s);
        s->txn_poisoned = false;
        return store_error_set(s, ECANCELED, "an inner transaction was rolled back");
    }
    int r = exec_cached(s, STMT_COMMIT, "COMMIT");
    if (r < 0)
        rollback_now(s);
    return r;
}

void store_rollback(struct store *s)
{
    if (s->txn_depth == 0)
        return;
    if (--s->txn_depth > 0) {
        s->txn_poisoned = true;
        return;
    }
    rollback_now(s);
    s->txn_poisoned = false;
}

/* ---- open, migrations ---- */

static int exec_sql(struct store *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_error_sqlite(s, rc);
}

static int read_int(struct store *s, const char *sql, int *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_error_sqlite(s, rc);
    int r = store_stmt_step(s, st);
    if (r == 1)
        *ret = sqlite3_column_int(st, 0);
    else if (r == 0)
        r = store_error_set(s, EIO, "no result from: %s", sql);
    sqlite3_finalize(st);
    return r < 0 ? r : 0;
}

static int check_foreign_keys(struct store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA foreign_key_check", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_error_sqlite(s, rc);
    int r = store_stmt_step(s, st);
    if (r == 1)
        r = store_error_set(s, EINVAL, "migration broke a foreign key in table %s",
                            (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return r;
}

/* Applies migration version+1 in its own transaction. Returns 1 if it applied one,
 * 0 if the schema is already current. */
static int migrate_one(struct store *s, const char *const *migrations, size_t n)
{
    int version, r;

    r = exec_sql(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    /* Read the version again under the write lock: another process opening the same
     * file at the same time may have applied this step already. */
    r = read_int(s, "PRAGMA user_version", &version);
    if (r < 0)
        goto fail;
    if (version < 0 || (size_t)version > n) {
        r = store_error_set(s, EPROTONOSUPPORT, "schema version %d is newer than %zu", version, n);
        goto fail;
    }
    if ((size_t)version == n) {
        (void)exec_sql(s, "ROLLBACK");
        return 0;
    }
    r = exec_sql(s, migrations[version]);
    if (r < 0)
        goto fail;
    r = check_foreign_keys(s);
    if (r < 0)
        goto fail;
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
    r = exec_sql(s, sql);
    if (r < 0)
        goto fail;
    r = exec_sql(s, "COMMIT");
    if (r < 0)
        goto fail;
    return 1;

fail:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

static int configure_and_migrate(struct store *s, const char *const *migrations, size_t n,
                                 int *ret_found_version)
{
    int version, r;

    /* The version check comes before anything that writes: PRAGMA journal_mode=WAL
     * rewrites the file header, and a newer berth's file must stay exactly as it was
     * so that berth can still open it after a downgrade attempt. */
    r = read_int(s, "PRAGMA user_version", &version);
    if (r < 0)
        return r;
    *ret_found_version = version;
    if (version < 0 || (size_t)version > n)
        return store_error_set(s, EPROTONOSUPPORT, "schema version %d is newer than %zu", version, n);

    /* WAL: readers never block the writer, and a commit is one append to the log. */
    char mode[16] = "";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_error_sqlite(s, rc);
    r = store_stmt_step(s, st);
    if (r == 1 && sqlite3_column_text(st, 0))
        snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (r < 0)
        return r;
    if (!streq(mode, "wal"))
        return store_error_set(s, ENOTSUP, "cannot use WAL mode (journal mode stays \"%s\")", mode);

    /* synchronous=NORMAL in WAL mode syncs the log only at checkpoints, not at every
     * commit. A commit is then safe against the process dying (kill -9, a crash of
     * berthd): the data is in the WAL file in the page cache. Only a power loss or a
     * kernel crash can lose the last few commits, never corrupt the file; that is the
     * trade we want for an API that writes on every request. */
    r = exec_sql(s, "PRAGMA synchronous = NORMAL");
    if (r < 0)
        return r;

    /* Foreign keys stay off while migrating, as sqlite's documented procedure for
     * schema changes requires (rebuilding a table would otherwise cascade deletes);
     * each migration is checked with foreign_key_check before it commits. */
    r = exec_sql(s, "PRAGMA foreign_keys = OFF");
    if (r < 0)
        return r;
    while ((r = migrate_one(s, migrations, n)) > 0)
        ;
    if (r < 0)
        return r;
    r = exec_sql(s, "PRAGMA foreign_keys = ON");
    if (r < 0)
        return r;
    /* The pragma is silently ignored in some builds: make sure it took. */
    int on;
    r = read_int(s, "PRAGMA foreign_keys", &on);
    if (r < 0)
        return r;
    if (on != 1)
        return store_error_set(s, ENOTSUP, "sqlite was built without foreign key support");

    s->schema_version = (int)n;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < _STMT_MAX; i++)
        sqlite3_finalize(s->stmts[i]);
    /* close_v2 also copes with a half-opened handle; an open transaction is rolled back. */
    sqlite3_close_v2(s->db);
    free(s);
}

static void store_closep(struct store **s)
{
    store_close(*s);
}

/* The database holds password hashes, session ids and the private keys of sites'
 * certificates: owner only. It is created 0600 before sqlite opens it, since sqlite
 * creates it with its default 0644; the -wal and -shm files sqlite creates take the
 * database's mode. A file made looser by an older berthd is tightened, with its
 * -wal and -shm. */
static int restrict_mode(struct store *s, const char *path)
{
    if (!*path || streq(path, ":memory:"))
        return 0;
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return store_error_set(s, errno, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0)
        return store_error_set(s, errno, "cannot look at %s: %s", path, strerror(errno));
    if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0)
        return store_error_set(s, errno, "cannot make %s private (mode 0600): %s", path, strerror(errno));
    static const char *const suffixes[] = { "-wal", "-shm" };
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        char side[4200];
        snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        if (stat(side, &st) < 0 || (st.st_mode & 07777) == 0600)
            continue;
        if (chmod(side, 0600) < 0)
            return store_error_set(s, errno, "cannot make %s private (mode 0600): %s", side, strerror(errno));
    }
    return 0;
}

int store_open_with_migrations(const char *path, const char *const *migrations,
                               size_t n_migrations, struct store **ret, int *ret_found_version)
{
    _cleanup_(store_closep) struct store *s = NULL;
    int found = 0, r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->uid_first = STORE_UID_FIRST_DEFAULT;
    s->uid_last = STORE_UID_LAST_DEFAULT;
    snprintf(s->errmsg, sizeof(s->errmsg), "no error");
    if ((r = restrict_mode(s, path)) < 0)
        return r;

    /* berthd forks sandboxes, which must not inherit the database fds. sqlite has no
     * open flag for that: its unix VFS opens the database, -wal, -shm and journals
     * with O_CLOEXEC itself (robust_open() in os_unix.c); the unit test checks every
     * fd. NOMUTEX: a store handle is used by one thread. EXRESCODE: extended codes
     * tell a UNIQUE conflict from a foreign key one. */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                             SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK)
        return s->db ? store_error_sqlite(s, rc) : -ENOMEM;

    rc = sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return store_error_sqlite(s, rc);

    r = configure_and_migrate(s, migrations, n_migrations, &found);
    if (r == -EPROTONOSUPPORT && ret_found_version)
        *ret_found_version = found;
    if (r < 0)
        return r;

    if (ret_found_version)
        *ret_found_version = found;
    *ret = TAKE_PTR(s);
    return 0;
}

int store_open(const char *path, struct store **ret, int *ret_found_version)
{
    return store_open_with_migrations(path, store_migrations, store_n_migrations, ret,
                                      ret_found_version);
}

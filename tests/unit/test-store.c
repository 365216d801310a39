/* Tests for src/store: open and migrations, users, sites and domains, uid allocation,
 * events, nested transactions. Every test gets its own temp dir and database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "store/store-internal.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/berth-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/berth.db", f->dir);
    int found = -1;
    assert_int_equal(store_open(f->path, &f->s, &found), 0);
    assert_int_equal(found, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    assert_int_equal(rm_rf(f->dir), 0);
    free(f);
    return 0;
}

/* A site whose strings are borrowed literals: never passed to store_site_done. */
static struct store_site site_make(const char *name, const char *owner, char **domains, size_t n)
{
    return (struct store_site){
        .name = (char *)name,
        .type = (char *)"static",
        .owner = (char *)owner,
        .network = (char *)"none",
        .desired_state = (char *)"running",
        .domains = domains,
        .n_domains = n,
        .backup_hour = 3,
        .backup_keep = 7,
    };
}

/* Runs one query through a separate plain sqlite connection and returns its first
 * column as an integer, so the tests see the file, not the store's view of it. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static bool site_exists(struct store *s, const char *name)
{
    struct store_site site = {};
    int r = store_site_get(s, name, &site);
    assert_true(r == 0 || r == -ENOENT);
    store_site_done(&site);
    return r == 0;
}

static bool user_exists(struct store *s, const char *name)
{
    struct store_user u = {};
    int r = store_user_get(s, name, &u);
    assert_true(r == 0 || r == -ENOENT);
    store_user_done(&u);
    return r == 0;
}

/* ---- open, migrations ---- */

static void test_open_reopen_keeps_data(void **state)
{
    struct fixture *f = *state;
    char *doms[] = { "www.blog.example", "blog.example" };
    struct store_site site = site_make("blog", "alice", doms, 2);
    site.type = (char *)"app";
    site.cmd = (char *)"/site/bin/server --port 3";
    site.memory_max = (uint64_t)INT64_MAX;
    site.cpu_millis = 1500;
    site.pids_max = 64;
    site.network = (char *)"nat";
    site.always_on = true;
    site.idle_seconds = 600;
    site.php_settings = (char *)"{\"memory_limit\":\"128M\"}";

    assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
    assert_int_equal(store_user_insert(f->s, "alice", "$argon2id$x", true, NULL), 0);
    assert_int_equal(store_site_insert(f->s, &site, NULL), 0);
    assert_int_equal(store_event_append(f->s, "root", "site.create", "blog", "{\"a\":1}"), 0);
    store_close(f->s);
    f->s = NULL;

    /* The file is in WAL mode for everyone who opens it. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    int found = -1;
    assert_int_equal(store_open(f->path, &f->s, &found), 0);
    assert_int_equal(found, STORE_SCHEMA_VERSION);

    struct store_user u = {};
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.password_hash, "$argon2id$x");
    assert_true(u.admin);
    assert_false(u.disabled);
    assert_true(u.created_at > 0);
    store_user_done(&u);

    struct store_site got = {};
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.id, site.id);
    assert_int_equal(got.uid, site.uid);
    assert_int_equal(got.uid, 200000);
    assert_string_equal(got.type, "app");
    assert_string_equal(got.owner, "alice");
    assert_string_equal(got.cmd, "/site/bin/server --port 3");
    assert_true(got.memory_max == (uint64_t)INT64_MAX);
    assert_int_equal(got.cpu_millis, 1500);
    assert_int_equal(got.pids_max, 64);
    assert_string_equal(got.network, "nat");
    assert_true(got.always_on);
    assert_int_equal(got.idle_seconds, 600);
    assert_string_equal(got.desired_state, "running");
    assert_string_equal(got.php_settings, "{\"memory_limit\":\"128M\"}");
    assert_int_equal(got.created_at, site.created_at);
    assert_int_equal(got.n_domains, 2);
    assert_string_equal(got.domains[0], "blog.example");    /* sorted */
    assert_string_equal(got.domains[1], "www.blog.example");
    store_site_done(&got);

    struct store_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(f->s, 0, 10, NULL, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].action, "site.create");
    assert_string_equal(ev[0].detail, "{\"a\":1}");
    store_event_list_free(ev, n);
}

/* berthd forks sandboxes: no fd of the database may survive an exec. */
static void test_fds_cloexec(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);    /* opens -wal, -shm */

    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    unsigned seen = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[300], target[PATH_MAX];
        if (de->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
            continue;
        target[len] = 0;
        if (!str_startswith(target, f->path))
            continue;
        int flags = fcntl(atoi(de->d_name), F_GETFD);
        assert_true(flags >= 0);
        if (!(flags & FD_CLOEXEC))
            fail_msg("%s is open without O_CLOEXEC", target);
        seen++;
    }
    closedir(d);
    assert_true(seen >= 2);    /* the database and its WAL at least */
}

/* One migration past this build's, on a table of the test's own. */
static const char migration_extra[] =
    "CREATE TABLE extra_test (id INTEGER PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name)) STRICT;";

#define N_REAL STORE_SCHEMA_VERSION

/* This build's migrations, then the given ones (up to two). */
static size_t migrations_plus(const char **out, const char *a, const char *b)
{
    size_t n = 0;
    for (; n < N_REAL; n++)
        out[n] = store_migrations[n];
    if (a)
        out[n++] = a;
    if (b)
        out[n++] = b;
    return n;
}

static void test_migrations(void **state)
{
    struct fixture *f = *state;
    const char *more[N_REAL + 2];
    size_t n_more = migrations_plus(more, migration_extra, NULL);
    struct store *s2 = NULL;
    int found = -1;

    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);
    store_close(f->s);
    f->s = NULL;

    /* Reopening with the same list applies nothing (CREATE TABLE would fail if it did). */
    assert_int_equal(store_open(f->path, &f->s, &found), 0);
    assert_int_equal(found, N_REAL);
    store_close(f->s);
    f->s = NULL;

    /* A build with one more migration brings the file one version up and keeps the data. */
    assert_int_equal(store_open_with_migrations(f->path, more, n_more, &s2, &found), 0);
    assert_int_equal(found, N_REAL);
    assert_int_equal(store_schema_version(s2), N_REAL + 1);
    assert_true(user_exists(s2, "alice"));
    store_close(s2);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), N_REAL + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'extra_test'"), 1);

    assert_int_equal(store_open_with_migrations(f->path, more, n_more, &s2, &found), 0);
    assert_int_equal(found, N_REAL + 1);
    store_close(s2);

    /* This build refuses the file now. */
    found = -1;
    assert_int_equal(store_open(f->path, &f->s, &found), -EPROTONOSUPPORT);
    assert_null(f->s);
    assert_int_equal(found, N_REAL + 1);

    /* A failing migration leaves nothing of itself and the version where it was. */
    const char *broken[N_REAL + 2];
    size_t n_broken = migrations_plus(broken, migration_extra,
                                      "CREATE TABLE t3 (a ANY) STRICT; INSERT INTO nosuch VALUES (1);");
    assert_true(store_open_with_migrations(f->path, broken, n_broken, &s2, &found) < 0);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), N_REAL + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 't3'"), 0);

    /* A migration that leaves a dangling foreign key is refused before it commits. */
    const char *dangling[N_REAL + 2];
    size_t n_dangling = migrations_plus(dangling, migration_extra,
                                        "INSERT INTO extra_test (id, user) VALUES (1, 'ghost');");
    assert_int_equal(store_open_with_migrations(f->path, dangling, n_dangling, &s2, &found), -EINVAL);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), N_REAL + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM extra_test"), 0);
}

static char *file_slurp(const char *path, size_t *ret_len)
{
    char *data = NULL;
    assert_int_equal(read_file(path, 1 << 20, &data, ret_len), 0);
    return data;
}

static void check_newer_refused(const char *path, const char *journal_mode)
{
    char sql[256], wal[160];
    snprintf(sql, sizeof(sql),
             "PRAGMA journal_mode = %s; CREATE TABLE future (a); INSERT INTO future VALUES (1);"
             "PRAGMA user_version = 99;", journal_mode);
    raw_exec(path, sql);
    snprintf(wal, sizeof(wal), "%s-wal", path);

    size_t len_before, len_after;
    _cleanup_free_ char *before = file_slurp(path, &len_before);
    struct stat st_before, st_after;
    assert_int_equal(stat(path, &st_before), 0);
    assert_int_equal(access(wal, F_OK), -1);

    struct store *s = NULL;
    int found = -1;
    assert_int_equal(store_open(path, &s, &found), -EPROTONOSUPPORT);
    assert_null(s);
    assert_int_equal(found, 99);

    /* No WAL was left behind (one would mean we switched the journal mode). */
    assert_int_equal(access(wal, F_OK), -1);
    _cleanup_free_ char *after = file_slurp(path, &len_after);
    assert_int_equal(stat(path, &st_after), 0);
    assert_int_equal(len_before, len_after);
    assert_memory_equal(before, after, len_before);
    assert_int_equal(st_before.st_mtim.tv_sec, st_after.st_mtim.tv_sec);
    assert_int_equal(st_before.st_mtim.tv_nsec, st_after.st_mtim.tv_nsec);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 99);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof(path), "%s/future.db", f->dir);
    check_newer_refused(path, "DELETE");
    snprintf(path, sizeof(path), "%s/future-wal.db", f->dir);
    check_newer_refused(path, "WAL");
}

static void test_open_failures(void **state)
{
    struct fixture *f = *state;
    struct store *s = NULL;
    char path[160];
    int found = -7;

    snprintf(path, sizeof(path), "%s/missing/berth.db", f->dir);
    assert_int_equal(store_open(path, &s, &found), -ENOENT);
    assert_null(s);
    assert_int_equal(found, -7);    /* untouched on failure */

    /* Not a database: refused, and left as it was. */
    static const char junk[] = "this is not an sqlite database, but it is long enough to look like one";
    snprintf(path, sizeof(path), "%s/junk.db", f->dir);
    assert_int_equal(write_file_atomic(path, junk, sizeof(junk), 0600), 0);
    assert_int_equal(store_open(path, &s, &found), -ENOTSUP);
    assert_null(s);
    size_t len;
    _cleanup_free_ char *after = file_slurp(path, &len);
    assert_int_equal(len, sizeof(junk));
    assert_memory_equal(after, junk, len);
}

/* ---- users ---- */

static void test_users(void **state)
{
    struct fixture *f = *state;
    int64_t id = 0;
    size_t n = 0;

    assert_int_equal(store_user_insert(f->s, "bob", "hb", false, &id), 0);
    assert_true(id > 0);
    assert_int_equal(store_user_insert(f->s, "alice", "ha", true, NULL), 0);
    assert_int_equal(store_user_insert(f->s, "alice", "other", false, NULL), -EEXIST);
    assert_non_null(strstr(store_errmsg(f->s), "UNIQUE"));
    assert_int_equal(store_user_count(f->s, &n), 0);
    assert_int_equal(n, 2);

    struct store_user u = {};
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    assert_string_equal(u.password_hash, "ha");    /* the failed insert changed nothing */
    assert_true(u.admin);
    store_user_done(&u);
    assert_int_equal(store_user_get(f->s, "carol", &u), -ENOENT);
    assert_null(u.name);

    struct store_user *list = NULL;
    assert_int_equal(store_user_list(f->s, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "bob");
    assert_int_equal(list[1].id, id);
    store_user_list_free(list, n);

    assert_int_equal(store_user_set_password(f->s, "bob", "hb2"), 0);
    assert_int_equal(store_user_set_disabled(f->s, "bob", true), 0);
    assert_int_equal(store_user_get(f->s, "bob", &u), 0);
    assert_string_equal(u.password_hash, "hb2");
    assert_true(u.disabled);
    assert_false(u.admin);
    store_user_done(&u);
    assert_int_equal(store_user_set_password(f->s, "carol", "x"), -ENOENT);
    assert_int_equal(store_user_set_disabled(f->s, "carol", true), -ENOENT);

    /* A user who owns a site cannot go. */
    struct store_site site = site_make("blog", "bob", NULL, 0);
    assert_int_equal(store_site_insert(f->s, &site, NULL), 0);
    assert_int_equal(store_user_delete(f->s, "bob"), -EBUSY);
    assert_true(user_exists(f->s, "bob"));
    assert_true(site_exists(f->s, "blog"));
    assert_int_equal(store_site_delete(f->s, "blog"), 0);
    assert_int_equal(store_user_delete(f->s, "bob"), 0);
    assert_false(user_exists(f->s, "bob"));
    assert_int_equal(store_user_delete(f->s, "bob"), -ENOENT);
    assert_int_equal(store_user_count(f->s, &n), 0);
    assert_int_equal(n, 1);
}

/* ---- sites ---- */

static void test_sites_crud(void **state)
{
    struct fixture *f = *state;
    size_t n = 0;
    char *site_name = NULL;

    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);
    char *doms[] = { "b.example", "a.example", "a.example" };    /* one listed twice */
    struct store_site blog = site_make("blog", "alice", doms, 3);
    assert_int_equal(store_site_insert(f->s, &blog, NULL), 0);
    assert_true(blog.id > 0);
    assert_true(blog.created_at > 0);
    assert_int_equal(blog.created_at, blog.updated_at);
    struct store_site shop = site_make("shop", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &shop, NULL), 0);
    assert_int_not_equal(shop.uid, blog.uid);

    struct store_site got = {};
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.n_domains, 2);
    assert_string_equal(got.domains[0], "a.example");
    assert_string_equal(got.domains[1], "b.example");
    assert_null(got.cmd);
    assert_null(got.php_settings);
    store_site_done(&got);
    assert_int_equal(store_site_get(f->s, "nope", &got), -ENOENT);

    struct store_site *list = NULL;
    assert_int_equal(store_site_list(f->s, NULL, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "blog");
    assert_int_equal(list[0].n_domains, 2);
    assert_string_equal(list[1].name, "shop");
    assert_null(list[1].owner);
    assert_int_equal(list[1].n_domains, 0);
    store_site_list_free(list, n);
    assert_int_equal(store_site_list(f->s, "alice", &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "blog");
    store_site_list_free(list, n);
    assert_int_equal(store_site_list(f->s, "nobody", &list, &n), 0);
    assert_int_equal(n, 0);
    store_site_list_free(list, n);
    assert_int_equal(store_site_count(f->s, &n), 0);
    assert_int_equal(n, 2);

    assert_int_equal(store_domain_lookup(f->s, "b.example", &site_name), 0);
    assert_string_equal(site_name, "blog");
    free(site_name);
    assert_int_equal(store_domain_lookup(f->s, "c.example", &site_name), -ENOENT);

    /* Bad values are refused by the schema's CHECKs and references. */
    struct store_site bad = site_make("bad", NULL, NULL, 0);
    bad.type = (char *)"java";
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    bad = site_make("bad", NULL, NULL, 0);
    bad.network = NULL;
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    bad = site_make("bad", NULL, NULL, 0);
    bad.desired_state = (char *)"paused";
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    bad = site_make("bad", NULL, NULL, 0);
    bad.php_settings = (char *)"{not json";
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    bad = site_make("bad", "ghost", NULL, 0);
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -ENXIO);
    char *upper[] = { "Bad.Example" };
    bad = site_make("bad", NULL, upper, 1);
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    bad = site_make("bad", NULL, NULL, 0);
    bad.memory_max = UINT64_MAX;
    assert_int_equal(store_site_insert(f->s, &bad, NULL), -EINVAL);
    assert_false(site_exists(f->s, "bad"));

    assert_int_equal(store_site_delete(f->s, "blog"), 0);
    assert_false(site_exists(f->s, "blog"));
    assert_int_equal(store_site_delete(f->s, "blog"), -ENOENT);
    /* Its domains went with it. */
    assert_int_equal(store_domain_lookup(f->s, "a.example", &site_name), -ENOENT);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM domains"), 0);
    assert_int_equal(store_site_count(f->s, &n), 0);
    assert_int_equal(n, 1);
}

static void test_site_insert_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    char *conflict = NULL, *site_name = NULL;

    char *blog_doms[] = { "x.example" };
    struct store_site blog = site_make("blog", NULL, blog_doms, 1);
    assert_int_equal(store_site_insert(f->s, &blog, NULL), 0);

    struct store_site again = site_make("blog", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &again, &conflict), -EEXIST);
    assert_null(conflict);

    char *shop_doms[] = { "shop.example", "x.example" };
    struct store_site shop = site_make("shop", NULL, shop_doms, 2);
    assert_int_equal(store_site_insert(f->s, &shop, &conflict), -EADDRINUSE);
    assert_string_equal(conflict, "x.example");
    free(conflict);
    conflict = NULL;
    assert_non_null(strstr(store_errmsg(f->s), "blog"));
    /* Nothing of the failed insert remains: no site row, no domain. */
    assert_false(site_exists(f->s, "shop"));
    assert_int_equal(store_domain_lookup(f->s, "shop.example", &site_name), -ENOENT);
    assert_int_equal(store_domain_lookup(f->s, "x.example", &site_name), 0);
    assert_string_equal(site_name, "blog");
    free(site_name);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sites"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM domains"), 1);

    /* ...and it did not use up a uid. */
    shop.n_domains = 1;
    assert_int_equal(store_site_insert(f->s, &shop, NULL), 0);
    assert_int_equal(shop.uid, blog.uid + 1);

    /* An update that would steal a domain changes nothing either. */
    char *steal[] = { "x.example", "blog2.example", "shop.example" };
    blog.domains = steal;
    blog.n_domains = 3;
    blog.memory_max = 1 << 20;
    assert_int_equal(store_site_update(f->s, &blog, &conflict), -EADDRINUSE);
    assert_string_equal(conflict, "shop.example");
    free(conflict);
    struct store_site got = {};
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.n_domains, 1);
    assert_string_equal(got.domains[0], "x.example");
    assert_int_equal(got.memory_max, 0);
    store_site_done(&got);
    assert_int_equal(store_domain_lookup(f->s, "blog2.example", &site_name), -ENOENT);
}

static void test_site_update(void **state)
{
    struct fixture *f = *state;
    char *site_name = NULL;

    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);
    char *doms[] = { "a.example", "b.example" };
    struct store_site blog = site_make("blog", NULL, doms, 2);
    assert_int_equal(store_site_insert(f->s, &blog, NULL), 0);
    int64_t id = blog.id;
    uint32_t uid = blog.uid;

    char *newdoms[] = { "c.example", "b.example" };
    struct store_site upd = site_make("blog", "alice", newdoms, 2);
    upd.type = (char *)"php";
    upd.desired_state = (char *)"stopped";
    upd.network = (char *)"host";
    upd.pids_max = 32;
    upd.io_read_bps = 7ull << 20;
    upd.io_write_bps = 3ull << 20;
    upd.idle_seconds = 30;
    upd.php_settings = (char *)"{\"upload_max_filesize\":\"8M\"}";
    assert_int_equal(store_site_update(f->s, &upd, NULL), 0);
    assert_int_equal(upd.id, id);
    assert_int_equal(upd.uid, uid);
    assert_true(upd.updated_at >= blog.created_at);

    struct store_site got = {};
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.id, id);
    assert_int_equal(got.uid, uid);
    assert_string_equal(got.type, "php");
    assert_string_equal(got.owner, "alice");
    assert_string_equal(got.desired_state, "stopped");
    assert_string_equal(got.network, "host");
    assert_int_equal(got.pids_max, 32);
    assert_int_equal(got.io_read_bps, 7ull << 20);
    assert_int_equal(got.io_write_bps, 3ull << 20);
    assert_int_equal(got.idle_seconds, 30);
    assert_string_equal(got.php_settings, "{\"upload_max_filesize\":\"8M\"}");
    assert_int_equal(got.n_domains, 2);
    assert_string_equal(got.domains[0], "b.example");
    assert_string_equal(got.domains[1], "c.example");
    store_site_done(&got);
    assert_int_equal(store_domain_lookup(f->s, "a.example", &site_name), -ENOENT);
    assert_int_equal(store_domain_lookup(f->s, "c.example", &site_name), 0);
    assert_string_equal(site_name, "blog");
    free(site_name);

    /* Clearing the owner and every domain. */
    upd.owner = NULL;
    upd.n_domains = 0;
    assert_int_equal(store_site_update(f->s, &upd, NULL), 0);
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_null(got.owner);
    assert_int_equal(got.n_domains, 0);
    store_site_done(&got);
    assert_int_equal(store_user_delete(f->s, "alice"), 0);

    struct store_site missing = site_make("nope", NULL, NULL, 0);
    assert_int_equal(store_site_update(f->s, &missing, NULL), -ENOENT);
    upd.owner = (char *)"ghost";
    assert_int_equal(store_site_update(f->s, &upd, NULL), -ENXIO);
}

static uint32_t insert_uid(struct store *s, const char *name)
{
    struct store_site site = site_make(name, NULL, NULL, 0);
    int r = store_site_insert(s, &site, NULL);
    if (r < 0)
        fail_msg("insert %s: %s (%s)", name, strerror(-r), store_errmsg(s));
    return site.uid;
}

static void test_uid_allocation(void **state)
{
    struct fixture *f = *state;
    store_set_uid_range(f->s, 1000, 1004);

    assert_int_equal(insert_uid(f->s, "a"), 1000);
    assert_int_equal(insert_uid(f->s, "b"), 1001);
    assert_int_equal(store_site_delete(f->s, "b"), 0);
    /* The counter has room: 1001 is not handed out again. */
    assert_int_equal(insert_uid(f->s, "c"), 1002);
    assert_int_equal(insert_uid(f->s, "d"), 1003);
    assert_int_equal(insert_uid(f->s, "e"), 1004);

    /* The counter passed the end: the lowest free uid (b's old one) is taken. */
    assert_int_equal(insert_uid(f->s, "f"), 1001);

    /* Full: -ENOSPC, and nothing of the attempt remains. */
    struct store_site g = site_make("g", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &g, NULL), -ENOSPC);
    assert_non_null(strstr(store_errmsg(f->s), "1000..1004"));
    assert_false(site_exists(f->s, "g"));

    /* Freed ones are found wherever they are, lowest first. */
    assert_int_equal(store_site_delete(f->s, "d"), 0);
    assert_int_equal(store_site_delete(f->s, "c"), 0);
    assert_int_equal(insert_uid(f->s, "g"), 1002);
    assert_int_equal(insert_uid(f->s, "h"), 1003);

    /* A larger range resumes the counter where it stopped. */
    store_set_uid_range(f->s, 1000, 1010);
    assert_int_equal(insert_uid(f->s, "i"), 1005);
    /* The counter survives a reopen (it lives in the store, not in memory). */
    assert_int_equal(store_site_delete(f->s, "i"), 0);
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, NULL), 0);
    store_set_uid_range(f->s, 1000, 1010);
    assert_int_equal(insert_uid(f->s, "j"), 1006);

    /* A range moved above the counter starts at its first uid. */
    store_set_uid_range(f->s, 5000, 5000);
    assert_int_equal(insert_uid(f->s, "k"), 5000);
    struct store_site l = site_make("l", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &l, NULL), -ENOSPC);
}

/* Host accounts at 2001 and 2003..2004. */
static bool uid_not_on_host(uint32_t uid, void *data)
{
    (void)data;
    return uid != 2001 && uid != 2003 && uid != 2004;
}

static void test_uid_allocation_passes_over_host_accounts(void **state)
{
    struct fixture *f = *state;
    store_set_uid_range(f->s, 2000, 2005);
    store_set_uid_usable(f->s, uid_not_on_host, NULL);
    assert_int_equal(insert_uid(f->s, "a"), 2000);
    assert_int_equal(insert_uid(f->s, "b"), 2002);
    assert_int_equal(insert_uid(f->s, "c"), 2005);
    /* Counter past the end, the lowest free uids are host accounts': full. */
    struct store_site d = site_make("d", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &d, NULL), -ENOSPC);
    assert_int_equal(store_site_delete(f->s, "b"), 0);
    assert_int_equal(insert_uid(f->s, "d"), 2002);
    store_set_uid_usable(f->s, NULL, NULL);
    assert_int_equal(store_site_delete(f->s, "d"), 0);
    assert_int_equal(insert_uid(f->s, "e"), 2001);
}

/* ---- events ---- */

static void test_events(void **state)
{
    struct fixture *f = *state;
    struct store_event *ev = NULL;
    size_t n = 0;

    for (int i = 0; i < 25; i++) {
        char detail[32];
        snprintf(detail, sizeof(detail), "{\"i\":%d}", i);
        const char *target = i % 3 == 0 ? "blog" : i % 3 == 1 ? "shop" : NULL;
        assert_int_equal(store_event_append(f->s, "root", "site.set", target, detail), 0);
    }
    assert_int_equal(store_event_append(f->s, "root", "x", NULL, "{nope"), -EINVAL);

    /* Newest first, paged. */
    assert_int_equal(store_event_list(f->s, 0, 10, NULL, &ev, &n), 0);
    assert_int_equal(n, 10);
    assert_string_equal(ev[0].detail, "{\"i\":24}");
    assert_string_equal(ev[9].detail, "{\"i\":15}");
    for (size_t i = 1; i < n; i++)
        assert_true(ev[i].id < ev[i - 1].id);
    assert_true(ev[0].at > 0);
    assert_string_equal(ev[0].actor, "root");
    int64_t last = ev[9].id;
    store_event_list_free(ev, n);

    assert_int_equal(store_event_list(f->s, last, 10, NULL, &ev, &n), 0);
    assert_int_equal(n, 10);
    assert_string_equal(ev[0].detail, "{\"i\":14}");
    last = ev[9].id;
    store_event_list_free(ev, n);
    assert_int_equal(store_event_list(f->s, last, 10, NULL, &ev, &n), 0);
    assert_int_equal(n, 5);
    assert_string_equal(ev[4].detail, "{\"i\":0}");
    last = ev[4].id;
    store_event_list_free(ev, n);
    assert_int_equal(store_event_list(f->s, last, 10, NULL, &ev, &n), 0);
    assert_int_equal(n, 0);
    store_event_list_free(ev, n);

    /* One target only: i = 0, 3, ..., 24 (9 events). */
    assert_int_equal(store_event_list(f->s, 0, 100, "blog", &ev, &n), 0);
    assert_int_equal(n, 9);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ev[i].target, "blog");
    assert_string_equal(ev[0].detail, "{\"i\":24}");
    assert_string_equal(ev[8].detail, "{\"i\":0}");
    last = ev[3].id;    /* i = 15 */
    store_event_list_free(ev, n);
    assert_int_equal(store_event_list(f->s, last, 2, "blog", &ev, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ev[0].detail, "{\"i\":12}");
    assert_string_equal(ev[1].detail, "{\"i\":9}");
    store_event_list_free(ev, n);

    assert_int_equal(store_event_list(f->s, 0, 0, NULL, &ev, &n), 0);
    assert_int_equal(n, 0);
    store_event_list_free(ev, n);

    /* NULL target and detail come back NULL. */
    assert_int_equal(store_event_append(f->s, "berthd", "start", NULL, NULL), 0);
    assert_int_equal(store_event_list(f->s, 0, 1, NULL, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].action, "start");
    assert_null(ev[0].target);
    assert_null(ev[0].detail);
    store_event_list_free(ev, n);
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
    struct fixture *f = *state;
    struct store *other = NULL;

    assert_int_equal(store_commit(f->s), -EINVAL);
    store_rollback(f->s);    /* no-op */

    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "a", "h", false, NULL), 0);
    assert_int_equal(store_commit(f->s), 0);
    assert_true(user_exists(f->s, "a"));

    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "b", "h", false, NULL), 0);
    store_rollback(f->s);
    assert_false(user_exists(f->s, "b"));

    /* Nested: only the outermost commit reaches the database. */
    assert_int_equal(store_open(f->path, &other, NULL), 0);
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "c", "h", false, NULL), 0);
    assert_int_equal(store_commit(f->s), 0);
    assert_false(user_exists(other, "c"));    /* still uncommitted */
    assert_int_equal(store_commit(f->s), 0);
    assert_true(user_exists(other, "c"));
    store_close(other);

    /* An inner rollback poisons the outer commit: nothing of either level stays. */
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "d", "h", false, NULL), 0);
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "e", "h", false, NULL), 0);
    store_rollback(f->s);
    assert_int_equal(store_commit(f->s), -ECANCELED);
    assert_false(user_exists(f->s, "d"));
    assert_false(user_exists(f->s, "e"));

    /* A store function that fails inside a caller's transaction poisons it too. */
    struct store_site s1 = site_make("s1", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &s1, NULL), 0);
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "g", "h", false, NULL), 0);
    struct store_site dup = site_make("s1", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &dup, NULL), -EEXIST);
    assert_int_equal(store_commit(f->s), -ECANCELED);
    assert_false(user_exists(f->s, "g"));

    /* The counting is back at zero: a fresh transaction works normally. */
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "h", "h", false, NULL), 0);
    assert_int_equal(store_commit(f->s), 0);
    assert_true(user_exists(f->s, "h"));

    /* Closing with a transaction open rolls it back. */
    assert_int_equal(store_begin(f->s), 0);
    assert_int_equal(store_user_insert(f->s, "i", "h", false, NULL), 0);
    store_close(f->s);
    assert_int_equal(store_open(f->path, &f->s, NULL), 0);
    assert_false(user_exists(f->s, "i"));
    assert_true(user_exists(f->s, "h"));
}

/* The API runs these on every request: statements are compiled once per store. */
/* ---- certificates ---- */

static void test_certificates(void **state)
{
    struct fixture *f = *state;
    struct store_site site = site_make("blog", NULL, NULL, 0), other = site_make("shop", NULL, NULL, 0);
    struct store_certificate c = { 0 };
    struct store_certificate put = {
        .hosts = (char *)"blog.example\nblog.localhost", .cert_pem = (char *)"CERT 1",
        .key_pem = (char *)"KEY 1", .not_after = 1900000000,
    };

    assert_int_equal(store_certificate_put(f->s, "blog", &put), -ENOENT);   /* no such site */
    assert_int_equal(store_site_insert(f->s, &site, NULL), 0);
    assert_int_equal(store_site_insert(f->s, &other, NULL), 0);
    assert_int_equal(store_certificate_get(f->s, "blog", &c), -ENOENT);
    assert_int_equal(store_certificate_delete(f->s, "blog"), -ENOENT);

    assert_int_equal(store_certificate_put(f->s, "blog", &put), 0);
    assert_int_equal(store_certificate_get(f->s, "blog", &c), 0);
    assert_string_equal(c.hosts, "blog.example\nblog.localhost");
    assert_string_equal(c.cert_pem, "CERT 1");
    assert_string_equal(c.key_pem, "KEY 1");
    assert_int_equal(c.not_after, 1900000000);
    assert_string_equal(c.issuer, "local");
    assert_true(c.updated_at > 0);
    store_certificate_done(&c);
    assert_null(c.hosts);
    store_certificate_done(&c);   /* twice is fine */
    assert_int_equal(store_certificate_get(f->s, "shop", &c), -ENOENT);   /* one site's, not another's */
    /* A listing's summary: the same facts, no PEM. */
    assert_int_equal(store_certificate_summary_get(f->s, "blog", &c), 0);
    assert_string_equal(c.hosts, "blog.example\nblog.localhost");
    assert_null(c.cert_pem);
    assert_null(c.key_pem);
    assert_int_equal(c.not_after, 1900000000);
    assert_string_equal(c.issuer, "local");
    assert_true(c.updated_at > 0);
    store_certificate_done(&c);
    assert_int_equal(store_certificate_summary_get(f->s, "shop", &c), -ENOENT);

    /* Replaced, not added. */
    put.hosts = (char *)"blog.localhost";
    put.cert_pem = (char *)"CERT 2";
    put.key_pem = (char *)"KEY 2";
    put.not_after = 1950000000;
    assert_int_equal(store_certificate_put(f->s, "blog", &put), 0);
    assert_int_equal(store_certificate_get(f->s, "blog", &c), 0);
    assert_string_equal(c.hosts, "blog.localhost");
    assert_string_equal(c.cert_pem, "CERT 2");
    assert_string_equal(c.key_pem, "KEY 2");
    assert_int_equal(c.not_after, 1950000000);
    store_certificate_done(&c);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM certificates"), 1);

    put.key_pem = (char *)"";
    assert_int_equal(store_certificate_put(f->s, "blog", &put), -EINVAL);
    put.key_pem = (char *)"KEY 2";
    put.hosts = NULL;
    assert_int_equal(store_certificate_put(f->s, "blog", &put), -EINVAL);
    put.hosts = (char *)"blog.localhost";

    /* Deleted on its own, and gone with its site. */
    assert_int_equal(store_certificate_put(f->s, "shop", &put), 0);
    assert_int_equal(store_certificate_delete(f->s, "shop"), 0);
    assert_int_equal(store_certificate_get(f->s, "shop", &c), -ENOENT);
    assert_int_equal(store_site_delete(f->s, "blog"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM certificates"), 0);
    /* A new site of the same name starts without one. */
    site = site_make("blog", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &site, NULL), 0);
    assert_int_equal(store_certificate_get(f->s, "blog", &c), -ENOENT);
}

/* The database holds private keys and password hashes: owner only, with its -wal
 * and -shm, and an older looser file is tightened at open. */
static void test_backups(void **state)
{
    struct fixture *f = *state;
    struct store_site blog = site_make("blog", NULL, NULL, 0), got = {};
    struct store_backup_schedule *list = NULL;
    struct store_backup_run run = {};
    size_t n = 99;

    assert_int_equal(store_site_insert(f->s, &blog, NULL), 0);
    assert_int_equal(blog.backup_since, blog.created_at);
    assert_int_equal(store_backup_schedule_list(f->s, &list, &n), 0);
    assert_int_equal(n, 0);
    free(list);
    assert_int_equal(store_backup_run_get(f->s, "blog", &run), -ENOENT);

    /* Setting a schedule moves backup_since; changing only the keep count does not. */
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.backup_every, STORE_BACKUP_OFF);
    got.backup_every = STORE_BACKUP_WEEKLY;
    got.backup_hour = 5;
    got.backup_keep = 2;
    assert_int_equal(store_site_update(f->s, &got, NULL), 0);
    int64_t since = got.backup_since;
    assert_true(since >= blog.created_at);
    store_site_done(&got);
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    assert_int_equal(got.backup_every, STORE_BACKUP_WEEKLY);
    assert_int_equal(got.backup_hour, 5);
    assert_int_equal(got.backup_keep, 2);
    assert_int_equal(got.backup_since, since);
    store_site_done(&got);

    /* Out of range: refused by the schema, nothing changed. */
    assert_int_equal(store_site_get(f->s, "blog", &got), 0);
    got.backup_keep = 0;
    assert_int_equal(store_site_update(f->s, &got, NULL), -EINVAL);
    got.backup_keep = 2;
    got.backup_hour = 24;
    assert_int_equal(store_site_update(f->s, &got, NULL), -EINVAL);
    got.backup_hour = 5;
    got.backup_every = (enum store_backup_every)7;
    assert_int_equal(store_site_update(f->s, &got, NULL), -EINVAL);
    store_site_done(&got);

    assert_int_equal(store_backup_schedule_list(f->s, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "blog");
    assert_int_equal(list[0].every, STORE_BACKUP_WEEKLY);
    assert_int_equal(list[0].hour, 5);
    assert_int_equal(list[0].keep, 2);
    assert_int_equal(list[0].last_at, 0);
    free(list);

    /* The last run: replaced by the next, gone with its site. */
    struct store_backup_run failed = { .at = 1000, .ok = false, .error = (char *)"the disk is full" };
    assert_int_equal(store_backup_run_put(f->s, "blog", &failed), 0);
    struct store_backup_run done = { .at = 2000, .ok = true, .snapshot = (char *)"blog-x.tar.zst" };
    assert_int_equal(store_backup_run_put(f->s, "blog", &done), 0);
    assert_int_equal(store_backup_run_get(f->s, "blog", &run), 0);
    assert_int_equal(run.at, 2000);
    assert_true(run.ok);
    assert_string_equal(run.snapshot, "blog-x.tar.zst");
    assert_null(run.error);
    store_backup_run_done(&run);
    assert_int_equal(store_backup_schedule_list(f->s, &list, &n), 0);
    assert_int_equal(list[0].last_at, 2000);
    free(list);
    assert_int_equal(store_backup_run_put(f->s, "nope", &done), -ENOENT);
    assert_int_equal(store_site_delete(f->s, "blog"), 0);
    assert_int_equal(store_backup_run_get(f->s, "blog", &run), -ENOENT);

    assert_string_equal(store_backup_every_to_string(STORE_BACKUP_DAILY), "daily");
    assert_null(store_backup_every_to_string((enum store_backup_every)3));
    assert_int_equal(store_backup_every_from_string("weekly"), STORE_BACKUP_WEEKLY);
    assert_true(store_backup_every_valid("off"));
    assert_false(store_backup_every_valid("hourly"));
    assert_false(store_backup_every_valid(NULL));
}

static void test_file_mode(void **state)
{
    struct fixture *f = *state;
    char side[200];
    struct stat st;
    struct store_site site = site_make("blog", NULL, NULL, 0);
    assert_int_equal(store_site_insert(f->s, &site, NULL), 0);   /* a write makes the -wal */
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(side, sizeof(side), "%s-wal", f->path);
    assert_int_equal(stat(side, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(side, sizeof(side), "%s-shm", f->path);
    assert_int_equal(stat(side, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(chmod(side, 0644), 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->path, &f->s, NULL), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(side, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_statement_cache(void **state)
{
    struct fixture *f = *state;
    struct store_user u = {};

    assert_int_equal(store_user_insert(f->s, "alice", "h", false, NULL), 0);
    assert_int_equal(store_user_get(f->s, "alice", &u), 0);
    store_user_done(&u);
    unsigned prepared = f->s->n_prepares;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(store_user_get(f->s, "alice", &u), 0);
        store_user_done(&u);
        assert_int_equal(store_user_get(f->s, "nobody", &u), -ENOENT);
    }
    assert_int_equal(f->s->n_prepares, prepared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fds_cloexec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_insert_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_site_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uid_allocation_passes_over_host_accounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

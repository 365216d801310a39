#include "sites/sites.h"

#include <assert.h>
#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/names.h"
#include "common/proc.h"

/* What a batch does only once it commits, in the order its steps came. */
enum deferred_kind { DEFERRED_CREATED, DEFERRED_UPDATED, DEFERRED_REMOVED };
struct deferred {
    enum deferred_kind kind;
    char *name;
    struct store_site removed;       /* DEFERRED_REMOVED: the record, for the observer */
};

struct sites {
    struct store *store;             /* borrowed */
    char *state_dir;
    char *sites_root;                /* <state>/sites */
    char *base_domain;
    uid_t front_uid;
    gid_t front_gid;
    sites_observer_fn observer;
    void *observer_data;
    bool in_batch, batch_dry_run, batch_failed;
    struct deferred *deferred;
    size_t n_deferred;
};

/* The tree every site has. Modes and owners are part of the isolation model: the
 * site's root is root-owned so the site cannot replace its own logs/ or backups/;
 * public/ is readable by the front through its group (setgid so new files inherit
 * it); logs/ is written by the front and only read by the site. */
enum owner { OWNER_ROOT, OWNER_SITE, OWNER_FRONT };
static const struct tree_entry {
    const char *name;
    enum owner user, group;
    mode_t mode;
} site_tree[] = {
    { "public",  OWNER_SITE,  OWNER_FRONT, 02750 },
    { "private", OWNER_SITE,  OWNER_SITE,  0700 },
    { "logs",    OWNER_FRONT, OWNER_SITE,  0750 },
    { "tmp",     OWNER_SITE,  OWNER_SITE,  0700 },
    { "backups", OWNER_ROOT,  OWNER_SITE,  0750 },
};

void sites_crash_point(const char *point)
{
    const char *want = getenv("BERTH_TEST_CRASH");
    if (want && streq(want, point))
        raise(SIGKILL);
}

int sites_new(struct store *store, const struct sites_config *cfg, struct sites **ret)
{
    struct sites *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->store = store;
    s->state_dir = strdup(cfg->state_dir);
    s->base_domain = strdup(cfg->base_domain);
    s->front_uid = cfg->front_uid;
    s->front_gid = cfg->front_gid;
    if (!s->state_dir || !s->base_domain || asprintf(&s->sites_root, "%s/sites", cfg->state_dir) < 0) {
        s->sites_root = NULL;
        sites_free(s);
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

void sites_free(struct sites *s)
{
    if (!s)
        return;
    free(s->state_dir);
    free(s->sites_root);
    free(s->base_domain);
    free(s);
}

void sites_set_observer(struct sites *s, sites_observer_fn fn, void *data)
{
    s->observer = fn;
    s->observer_data = data;
}

static void notify(struct sites *s, enum sites_change change, const struct store_site *site)
{
    if (s->observer)
        s->observer(s->observer_data, change, site);
}

void sites_default_host(const struct sites *s, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s.%s", name, s->base_domain);
}

void sites_dir(const struct sites *s, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", s->sites_root, name);
}

static uid_t owner_uid(const struct sites *s, enum owner o, uid_t site_uid)
{
    return o == OWNER_SITE ? site_uid : o == OWNER_FRONT ? s->front_uid : 0;
}

static gid_t owner_gid(const struct sites *s, enum owner o, gid_t site_gid)
{
    return o == OWNER_SITE ? site_gid : o == OWNER_FRONT ? s->front_gid : 0;
}

/* Creates or repairs the whole tree of one site under sites_root/dirname. */
static int build_tree(struct sites *s, const char *dirname, uid_t uid)
{
    _cleanup_close_ int root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -errno;
    int r = ensure_dir(root, dirname, 0, uid, 0751);
    if (r < 0)
        return r;
    _cleanup_close_ int site = openat(root, dirname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (site < 0)
        return -errno;
    for (size_t i = 0; i < ARRAY_SIZE(site_tree); i++) {
        const struct tree_entry *e = &site_tree[i];
        r = ensure_dir(site, e->name, owner_uid(s, e->user, uid), owner_gid(s, e->group, uid), e->mode);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool one_of(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v && streq(v, set[i]))
            return true;
    return false;
}

/* Normalises spec->domains in place and refuses what no site may hold. */
static int check_domains(struct sites *s, struct store_site *spec, struct error *err)
{
    size_t base_len = strlen(s->base_domain);
    char own[300];
    sites_default_host(s, spec->name, own, sizeof(own));

    for (size_t i = 0; i < spec->n_domains; i++) {
        char *ascii;
        const char *reason;
        if (domain_normalize(spec->domains[i], &ascii, &reason) < 0)
            return error_set(err, -EINVAL, "invalid domain \"%s\": %s", spec->domains[i], reason);
        free(spec->domains[i]);
        spec->domains[i] = ascii;
        if (streq(ascii, own))
            return error_set(err, -EINVAL, "%s is already the default address of site %s", ascii, spec->name);
        /* NAME.<base> belongs to whichever site is called NAME, now or later. */
        size_t n = strlen(ascii);
        if (n > base_len + 1 && ascii[n - base_len - 1] == '.' && streq(ascii + n - base_len, s->base_domain) &&
            !memchr(ascii, '.', n - base_len - 1))
            return error_set(err, -EINVAL, "%s is reserved for a site named \"%.*s\"; choose another domain",
                             ascii, (int)(n - base_len - 1), ascii);
        if (streq(ascii, s->base_domain))
            return error_set(err, -EINVAL, "%s is the base domain itself", ascii);
        for (size_t j = 0; j < i; j++)
            if (streq(spec->domains[j], ascii))
                return error_set(err, -EINVAL, "domain %s is given twice", ascii);
    }
    return 0;
}

static int check_spec(struct sites *s, struct store_site *spec, struct error *err)
{
    static const char *const types[] = { "static", "php", "app" };
    static const char *const networks[] = { "none", "nat", "host" };
    static const char *const states[] = { "running", "stopped" };

    if (!spec->name || !site_name_valid(spec->name))
        return error_set(err, -EINVAL,
                         "invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-', "
                         "not starting or ending with '-'", spec->name ?: "");
    if (site_name_reserved(spec->name))
        return error_set(err, -EINVAL, "the site name \"%s\" is reserved", spec->name);
    if (!one_of(spec->type, types, ARRAY_SIZE(types)))
        return error_set(err, -EINVAL, "invalid site type \"%s\": use static, php or app", spec->type ?: "");
    if (!one_of(spec->network, networks, ARRAY_SIZE(networks)))
        return error_set(err, -EINVAL, "invalid network \"%s\": use none, nat or host", spec->network ?: "");
    if (!one_of(spec->desired_state, states, ARRAY_SIZE(states)))
        return error_set(err, -EINVAL, "invalid state \"%s\"", spec->desired_state ?: "");
    if (streq(spec->type, "app") && (!spec->cmd || !*spec->cmd))
        return error_set(err, -EINVAL, "an app site needs a command (--cmd \"...\")");
    if (!streq(spec->type, "app") && spec->cmd)
        return error_set(err, -EINVAL, "only app sites take a command; this site is %s", spec->type);
    if (spec->memory_max != 0 && spec->memory_max < (16ULL << 20))
        return error_set(err, -EINVAL, "memory limit must be at least 16M");
    if (spec->pids_max != 0 && spec->pids_max < 8)
        return error_set(err, -EINVAL, "process limit must be at least 8");
    /* Below this a site cannot even load its own program in reasonable time. */
    if ((spec->io_read_bps != 0 && spec->io_read_bps < (1ULL << 20)) ||
        (spec->io_write_bps != 0 && spec->io_write_bps < (1ULL << 20)))
        return error_set(err, -EINVAL, "disk limits must be at least 1M per second");
    /* php-fpm forks its workers in the site's cgroup; past pids.max a static
     * pool's master exits at the first failed fork. Reaper + master + workers. */
    if (streq(spec->type, "php") && spec->pids_max != 0 &&
        php_site_max_children(spec->php_settings) + 2 > spec->pids_max)
        return error_set(err, -EINVAL,
                         "PHP's pm.max_children (%u) with php-fpm's master and the sandbox's init need %u "
                         "processes, more than the site's process limit of %u: lower pm.max_children or raise --pids",
                         php_site_max_children(spec->php_settings), php_site_max_children(spec->php_settings) + 2,
                         (unsigned)spec->pids_max);
    if (!store_backup_every_to_string(spec->backup_every))
        return error_set(err, -EINVAL, "invalid backup schedule: use off, daily or weekly");
    if (spec->backup_hour > 23)
        return error_set(err, -EINVAL, "the backup hour must be from 0 to 23 (UTC)");
    if (spec->backup_keep < 1 || spec->backup_keep > STORE_BACKUP_KEEP_MAX)
        return error_set(err, -EINVAL, "the backups to keep must be from 1 to %d", STORE_BACKUP_KEEP_MAX);
    if (spec->idle_seconds < 10 || spec->idle_seconds > 7 * 86400)
        return error_set(err, -EINVAL, "idle time must be between 10 seconds and 7 days");
    if (spec->owner) {
        struct store_user u = { 0 };
        int r = store_user_get(s->store, spec->owner, &u);
        store_user_done(&u);
        if (r == -ENOENT)
            return error_set(err, -EINVAL, "no user named \"%s\"", spec->owner);
        if (r < 0)
            return error_set(err, r, "cannot read user %s: %s", spec->owner, store_errmsg(s->store));
    }
    return check_domains(s, spec, err);
}

/* The site's default host must not already be someone's custom domain. */
static int check_default_host_free(struct sites *s, const char *name, struct error *err)
{
    char host[300];
    _cleanup_free_ char *holder = NULL;
    sites_default_host(s, name, host, sizeof(host));
    int r = store_domain_lookup(s->store, host, &holder);
    if (r == 0 && !streq(holder, name))
        return error_set(err, -EADDRINUSE, "%s is already a domain of site %s", host, holder);
    return 0;
}

/* The new site's tree goes in place only after the commit, when nothing can be
 * refused any more: a directory already there (a removal that could not finish, a
 * hand-made one) would make the rename fail, and a batch would keep a site served
 * from whatever that directory holds. So it is refused before anything is made. */
static int check_tree_free(const char *final, struct error *err)
{
    struct stat st;
    if (lstat(final, &st) == 0)
        return error_set(err, -EEXIST, "%s is in the way of the new site: no site owns it; move it away, or "
                         "restart berthd, which removes what no site owns", final);
    if (errno != ENOENT)
        return error_set(err, -errno, "cannot check %s: %s", final, strerror(errno));
    return 0;
}

int sites_check(struct sites *s, struct store_site *spec, bool create, struct error *err)
{
    int r = check_spec(s, spec, err);
    if (r < 0 || !create)
        return r;
    struct store_site existing = { 0 };
    r = store_site_get(s->store, spec->name, &existing);
    store_site_done(&existing);
    if (r == 0)
        return error_set(err, -EEXIST, "a site named \"%s\" already exists", spec->name);
    if (r != -ENOENT)
        return error_set(err, r, "cannot read the site: %s", store_errmsg(s->store));
    r = check_default_host_free(s, spec->name, err);
    if (r < 0)
        return r;
    char final[4096];
    sites_dir(s, spec->name, final, sizeof(final));
    return check_tree_free(final, err);
}

static char *site_detail_json(const struct store_site *site)
{
    struct buf b = BUF_INIT(64 * 1024);
    struct json_writer w;
    json_writer_init(&w, &b, false);
    json_object_begin(&w);
    json_kv_string(&w, "type", site->type);
    json_kv_uint(&w, "uid", site->uid);
    json_key(&w, "domains");
    json_array_begin(&w);
    for (size_t i = 0; i < site->n_domains; i++)
        json_string(&w, site->domains[i]);
    json_array_end(&w);
    json_object_end(&w);
    if (json_writer_finish(&w) < 0) {
        buf_done(&b);
        return NULL;
    }
    return buf_steal(&b);
}

static int store_failure(struct sites *s, int r, const char *what, struct error *err)
{
    return error_set(err, r, "%s: %s", what, store_errmsg(s->store));
}

/* A step of a batch failed: the whole batch will be undone. Returns r. */
static int batch_refused(struct sites *s, int r)
{
    s->batch_failed = true;
    return r;
}

/* Records what the batch does after its commit. removed (DEFERRED_REMOVED) is taken
 * over, and freed on failure. */
static int defer(struct sites *s, enum deferred_kind kind, const char *name, struct store_site *removed)
{
    for (size_t i = 0; kind == DEFERRED_UPDATED && i < s->n_deferred; i++)
        if (s->deferred[i].kind != DEFERRED_REMOVED && streq(s->deferred[i].name, name))
            return 0;   /* told once, with the record as it ends up */
    struct deferred *grown = realloc(s->deferred, (s->n_deferred + 1) * sizeof(*grown));
    char *copy = strdup(name);
    if (grown)
        s->deferred = grown;
    if (!grown || !copy) {
        free(copy);
        if (removed)
            store_site_done(removed);
        return -ENOMEM;
    }
    struct deferred *d = &s->deferred[s->n_deferred++];
    *d = (struct deferred){ .kind = kind, .name = copy };
    if (removed) {
        d->removed = *removed;
        *removed = (struct store_site){ 0 };
    }
    return 0;
}

/* Moves the backups/ of tree (a removed site's, in root) to
 * <state>/removed/SITE-YYYYMMDD-HHMMSS when it holds anything: one rename, so a
 * crash leaves the snapshots either in the tree or kept, never lost. *ret_kept
 * (malloc'd; may be NULL) is where they went, NULL when there was nothing. */
static int keep_snapshots(struct sites *s, int root, const char *tree, const char *site_name, char **ret_kept)
{
    _cleanup_close_ int tree_fd = openat(root, tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tree_fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int fd = openat(tree_fd, "backups", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    bool empty = true;
    struct dirent *de;
    while (empty && (de = readdir(d)))
        empty = streq(de->d_name, ".") || streq(de->d_name, "..");
    closedir(d);
    if (empty)
        return 0;

    _cleanup_free_ char *kept_root = NULL;
    if (asprintf(&kept_root, "%s/removed", s->state_dir) < 0)
        return -ENOMEM;
    /* Root's alone: the files keep the removed site's group, which a new site may
     * be given. */
    int r = mkdir(kept_root, 0700) < 0 && errno != EEXIST ? -errno : 0;
    _cleanup_close_ int kept_fd = r < 0 ? -1 : open(kept_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r < 0 || kept_fd < 0)
        return r < 0 ? r : -errno;
    char stamp[32], name[128];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", gmtime_r(&now, &tm));
    r = -EEXIST;
    for (unsigned i = 0; r == -EEXIST && i < 1000; i++) {
        if (i == 0)
            snprintf(name, sizeof(name), "%s-%s", site_name, stamp);
        else
            snprintf(name, sizeof(name), "%s-%s-%u", site_name, stamp, i);
        r = renameat2(tree_fd, "backups", kept_fd, name, RENAME_NOREPLACE) < 0 ? -errno : 0;
    }
    if (r < 0)
        return r;
    fsync(kept_fd);
    if (ret_kept && asprintf(ret_kept, "%s/%s", kept_root, name) < 0)
        *ret_kept = NULL;
    return 1;
}

/* Removes root/trash in a process of its own: a site of a million files takes
 * minutes to remove, and berthd must go on answering meanwhile. The process is a
 * grandchild (its parent exits at once and is reaped here), so nobody has to wait
 * for it; it holds nothing of berthd's but the sites' directory, so a restarted
 * berthd binds its ports as before. If it dies half-way the next start removes
 * the rest of the trash. */
static void remove_in_background(int root, const char *trash)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() != 0)
            _exit(0);
        if (proc_fds_to_low(&root, 1) < 0)
            _exit(1);
        proc_test_gate("BERTH_TEST_REMOVE_GATE");   /* a test sees berthd answer meanwhile */
        (void)rm_rf_at(3, trash);
        _exit(0);
    }
    if (pid < 0) {
        rm_rf_at(root, trash);
        return;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The tree of a removed site goes to a trash name first, so that a crash half-way
 * through the removal leaves an orphan start-up removes, not a half site. Its
 * snapshots are kept unless purge. */
static void remove_tree(struct sites *s, const struct store_site *site, bool purge, char **ret_kept)
{
    char trash[300];
    snprintf(trash, sizeof(trash), ".trash-%s-%" PRId64, site->name, site->id);
    _cleanup_close_ int root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return;   /* start-up will clean up */
    if (renameat(root, site->name, root, trash) < 0)
        return;
    int r = purge ? 0 : keep_snapshots(s, root, trash, site->name, ret_kept);
    if (r < 0) {
        /* Left in the trash: the next start tries again before removing it. */
        log_errno(r, "site %s: cannot keep its snapshots; its removed tree stays as %s/%s", site->name,
                  s->sites_root, trash);
        return;
    }
    remove_in_background(root, trash);
}

int sites_create(struct sites *s, struct store_site *spec, const char *actor, struct error *err)
{
    char staging[300], final[4096];
    _cleanup_free_ char *conflict = NULL, *detail = NULL;
    /* Declared before any goto: a jump past a cleanup variable's initialisation
     * would leave it holding garbage that the cleanup then closes. */
    _cleanup_close_ int root = -1;

    int r = check_spec(s, spec, err);
    if (r >= 0)
        r = check_default_host_free(s, spec->name, err);
    snprintf(staging, sizeof(staging), ".staging-%s", spec->name);
    sites_dir(s, spec->name, final, sizeof(final));
    if (r < 0)
        return s->in_batch ? batch_refused(s, r) : r;

    if (s->in_batch) {
        for (size_t i = 0; i < s->n_deferred; i++)
            if (s->deferred[i].kind == DEFERRED_REMOVED && streq(s->deferred[i].name, spec->name))
                return batch_refused(s, error_set(err, -EINVAL, "site %s is removed and created again in one "
                                                  "batch: remove it, then create it in a second one", spec->name));
    } else {
        r = store_begin(s->store);
        if (r < 0)
            return store_failure(s, r, "cannot start a transaction", err);
    }
    r = store_site_insert(s->store, spec, &conflict);
    if (r == -EEXIST) {
        error_set(err, r, "a site named \"%s\" already exists", spec->name);
        goto fail;
    }
    if (r == -EADDRINUSE) {
        _cleanup_free_ char *holder = NULL;
        store_domain_lookup(s->store, conflict, &holder);
        error_set(err, r, "domain %s already belongs to site %s", conflict, holder ?: "?");
        goto fail;
    }
    if (r == -ENOSPC) {
        error_set(err, r, "no free uid is left in the site uid range");
        goto fail;
    }
    if (r < 0) {
        store_failure(s, r, "cannot record the site", err);
        goto fail;
    }
    /* The name is no site's (the insert says so): a directory of that name is a stray. */
    r = check_tree_free(final, err);
    if (r < 0)
        goto fail;
    /* The tree is built under a staging name while the row is uncommitted: a crash
     * here leaves only the staging tree, which start-up removes. */
    root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->batch_dry_run) {
        /* A dry run stages nothing. */
    } else if (root < 0 || (r = rm_rf_at(root, staging)) < 0 || (r = build_tree(s, staging, spec->uid)) < 0) {
        if (root < 0)
            r = -errno;
        error_set(err, r, "cannot create the site's directories in %s: %s", s->sites_root, strerror(-r));
        rm_rf_at(root, staging);
        goto fail;
    }
    sites_crash_point("site-create:staged");
    detail = site_detail_json(spec);
    r = store_event_append(s->store, actor, "site.create", spec->name, detail);
    if (r < 0) {
        store_failure(s, r, "cannot record the event", err);
        rm_rf_at(root, staging);
        goto fail;
    }
    if (s->in_batch) {
        r = defer(s, DEFERRED_CREATED, spec->name, NULL);
        if (r < 0) {
            error_set(err, r, "out of memory");
            rm_rf_at(root, staging);
            goto fail;
        }
        return 0;
    }
    r = store_commit(s->store);
    if (r < 0) {
        rm_rf_at(root, staging);
        return store_failure(s, r, "cannot commit the site", err);
    }
    /* Committed: from here the site exists, and start-up would finish the rename. */
    sites_crash_point("site-create:stored");
    if (renameat(root, staging, root, spec->name) < 0) {
        r = -errno;
        /* Undo the row so that the caller's failure is the whole truth. */
        if (store_site_delete(s->store, spec->name) >= 0)
            rm_rf_at(root, staging);
        return error_set(err, r, "cannot move the site's directory into place: %s", strerror(-r));
    }
    fsync(root);
    notify(s, SITES_CHANGE_UPSERT, spec);
    return 0;

fail:
    if (s->in_batch)
        return batch_refused(s, r);
    store_rollback(s->store);
    return r;
}

int sites_update(struct sites *s, struct store_site *update, const char *actor,
                 const char *what_json, struct error *err)
{
    _cleanup_free_ char *conflict = NULL;
    int r = check_spec(s, update, err);
    if (r < 0)
        return s->in_batch ? batch_refused(s, r) : r;
    if (!s->in_batch) {
        r = store_begin(s->store);
        if (r < 0)
            return store_failure(s, r, "cannot start a transaction", err);
    }
    r = store_site_update(s->store, update, &conflict);
    if (r == -ENOENT) {
        error_set(err, r, "no site named \"%s\"", update->name);
        goto fail;
    }
    if (r == -EADDRINUSE) {
        _cleanup_free_ char *holder = NULL;
        store_domain_lookup(s->store, conflict, &holder);
        error_set(err, r, "domain %s already belongs to site %s", conflict, holder ?: "?");
        goto fail;
    }
    if (r < 0) {
        store_failure(s, r, "cannot update the site", err);
        goto fail;
    }
    r = store_event_append(s->store, actor, "site.update", update->name, what_json);
    if (r < 0) {
        store_failure(s, r, "cannot record the event", err);
        goto fail;
    }
    if (s->in_batch) {
        r = defer(s, DEFERRED_UPDATED, update->name, NULL);
        if (r < 0) {
            error_set(err, r, "out of memory");
            goto fail;
        }
        return 0;
    }
    r = store_commit(s->store);
    if (r < 0)
        return store_failure(s, r, "cannot commit the change", err);
    notify(s, SITES_CHANGE_UPSERT, update);
    return 0;
fail:
    if (s->in_batch)
        return batch_refused(s, r);
    store_rollback(s->store);
    return r;
}

int sites_set_desired_state(struct sites *s, const char *name, const char *state,
                            const char *actor, struct error *err)
{
    struct store_site site = { 0 };
    int r = store_site_get(s->store, name, &site);
    if (r == -ENOENT)
        r = error_set(err, r, "no site named \"%s\"", name);
    else if (r < 0)
        r = store_failure(s, r, "cannot read the site", err);
    if (r < 0)
        return s->in_batch ? batch_refused(s, r) : r;
    free(site.desired_state);
    site.desired_state = strdup(state);
    char detail[64];
    snprintf(detail, sizeof(detail), "{\"state\":\"%s\"}", state);
    if (!site.desired_state)
        r = error_set(err, -ENOMEM, "out of memory");
    else
        r = sites_update(s, &site, actor, detail, err);
    store_site_done(&site);
    return r;
}

int sites_remove(struct sites *s, const char *name, const char *actor, bool purge, struct error *err,
                 char **ret_kept)
{
    struct store_site site = { 0 };
    int r = store_site_get(s->store, name, &site);
    if (r == -ENOENT)
        r = error_set(err, r, "no site named \"%s\"", name);
    else if (r < 0)
        r = store_failure(s, r, "cannot read the site", err);
    if (r < 0)
        return s->in_batch ? batch_refused(s, r) : r;

    if (!s->in_batch) {
        r = store_begin(s->store);
        if (r < 0) {
            store_site_done(&site);
            return store_failure(s, r, "cannot start a transaction", err);
        }
    }
    if ((r = store_site_delete(s->store, name)) < 0 ||
        (r = store_event_append(s->store, actor, "site.remove", name, NULL)) < 0) {
        store_failure(s, r, "cannot remove the site", err);
        store_site_done(&site);
        if (s->in_batch)
            return batch_refused(s, r);
        store_rollback(s->store);
        return r;
    }
    if (s->in_batch) {
        r = defer(s, DEFERRED_REMOVED, name, &site);   /* takes site, even on failure */
        return r < 0 ? batch_refused(s, error_set(err, r, "out of memory")) : 0;
    }
    r = store_commit(s->store);
    if (r < 0) {
        store_site_done(&site);
        return store_failure(s, r, "cannot commit the removal", err);
    }
    /* The row is gone: the tree is an orphan now, and start-up removes orphans, so a
     * crash from here on cannot bring the site back half-way. */
    sites_crash_point("site-rm:stored");
    notify(s, SITES_CHANGE_REMOVE, &site);
    remove_tree(s, &site, purge, ret_kept);
    store_site_done(&site);
    return 0;
}

int sites_batch_begin(struct sites *s, bool dry_run, struct error *err)
{
    assert(!s->in_batch);
    int r = store_begin(s->store);
    if (r < 0)
        return store_failure(s, r, "cannot start a transaction", err);
    s->in_batch = true;
    s->batch_dry_run = dry_run;
    s->batch_failed = false;
    return 0;
}

bool sites_batch_active(const struct sites *s)
{
    return s->in_batch;
}

static void batch_clear(struct sites *s)
{
    for (size_t i = 0; i < s->n_deferred; i++) {
        free(s->deferred[i].name);
        store_site_done(&s->deferred[i].removed);
    }
    free(s->deferred);
    s->deferred = NULL;
    s->n_deferred = 0;
    s->in_batch = s->batch_dry_run = s->batch_failed = false;
}

static void remove_staged_trees(struct sites *s)
{
    _cleanup_close_ int root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char staging[300];
    for (size_t i = 0; root >= 0 && i < s->n_deferred; i++) {
        if (s->deferred[i].kind != DEFERRED_CREATED)
            continue;
        snprintf(staging, sizeof(staging), ".staging-%s", s->deferred[i].name);
        rm_rf_at(root, staging);
    }
}

int sites_batch_end(struct sites *s, bool commit, struct error *err)
{
    assert(s->in_batch);
    if (!commit || s->batch_failed || s->batch_dry_run) {
        store_rollback(s->store);
        if (!s->batch_dry_run)
            remove_staged_trees(s);
        bool failed = commit && s->batch_failed;
        batch_clear(s);
        return failed ? error_set(err, -ECANCELED, "a change was refused: nothing was changed") : 0;
    }
    sites_crash_point("sites-batch:staged");
    int r = store_commit(s->store);
    if (r < 0) {
        remove_staged_trees(s);
        batch_clear(s);
        return store_failure(s, r, "cannot commit the changes", err);
    }
    /* Committed: from here start-up would finish the renames and removals. */
    sites_crash_point("sites-batch:stored");
    _cleanup_close_ int root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char staging[300];
    for (size_t i = 0; i < s->n_deferred; i++) {
        struct deferred *d = &s->deferred[i];
        if (d->kind == DEFERRED_REMOVED) {
            notify(s, SITES_CHANGE_REMOVE, &d->removed);
            _cleanup_free_ char *kept = NULL;
            remove_tree(s, &d->removed, false, &kept);
            if (kept)
                log_notice("site %s removed; its snapshots are kept in %s", d->removed.name, kept);
            continue;
        }
        if (d->kind == DEFERRED_CREATED) {
            snprintf(staging, sizeof(staging), ".staging-%s", d->name);
            if (root < 0 || renameat(root, staging, root, d->name) < 0)
                log_warning_errno(root < 0 ? -EBADF : -errno,
                                  "cannot move the directory of new site %s into place; start-up will", d->name);
        }
        struct store_site site = { 0 };
        if (store_site_get(s->store, d->name, &site) == 0)
            notify(s, SITES_CHANGE_UPSERT, &site);
        store_site_done(&site);
    }
    if (root >= 0)
        fsync(root);
    batch_clear(s);
    return 0;
}

int sites_reconcile(struct sites *s, struct error *err)
{
    struct store_site *list = NULL;
    size_t n = 0;
    int repairs = 0;

    int r = mkdir_p(s->sites_root, 0755);
    if (r < 0)
        return error_set(err, r, "cannot create %s: %s", s->sites_root, strerror(-r));
    r = store_site_list(s->store, NULL, &list, &n);
    if (r < 0)
        return store_failure(s, r, "cannot list sites", err);

    _cleanup_close_ int root = open(s->sites_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = root >= 0 ? fdopendir(dup(root)) : NULL;
    if (!d) {
        r = error_set(err, -errno, "cannot read %s: %m", s->sites_root);
        store_site_list_free(list, n);
        return r;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (streq(de->d_name, ".") || streq(de->d_name, ".."))
            continue;
        const char *name = de->d_name;
        bool known = false;
        if (str_startswith(name, ".staging-")) {
            /* Committed but not yet renamed: finish the rename; else it is debris. */
            const char *site_name = name + strlen(".staging-");
            for (size_t i = 0; i < n && !known; i++)
                known = streq(list[i].name, site_name);
            struct stat st;
            if (known && fstatat(root, site_name, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
                renameat(root, name, root, site_name) == 0) {
                repairs++;
                continue;
            }
            rm_rf_at(root, name);
            repairs++;
            continue;
        }
        for (size_t i = 0; i < n && !known; i++)
            known = streq(list[i].name, name);
        if (!known) {
            /* Trash from an interrupted removal, or the tree of a site the store no
             * longer has: the store is the truth. Its snapshots are kept all the
             * same (a removal with --purge that a crash cut short keeps them too:
             * better than losing some that were meant to stay). */
            char site_name[256];
            snprintf(site_name, sizeof(site_name), "%s", name);
            if (str_startswith(name, ".trash-")) {
                snprintf(site_name, sizeof(site_name), "%s", name + strlen(".trash-"));
                char *dash = strrchr(site_name, '-');
                if (dash)
                    *dash = 0;
            }
            _cleanup_free_ char *kept = NULL;
            r = keep_snapshots(s, root, name, site_name, &kept);
            if (r < 0) {
                log_errno(r, "cannot keep the snapshots of removed site %s; %s/%s stays", site_name,
                          s->sites_root, name);
                continue;
            }
            if (kept)
                log_notice("removed site %s: its snapshots are kept in %s", site_name, kept);
            rm_rf_at(root, name);
            repairs++;
        }
    }
    closedir(d);

    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (fstatat(root, list[i].name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            repairs++;
        r = build_tree(s, list[i].name, list[i].uid);
        if (r < 0) {
            error_set(err, r, "cannot repair the directory of site %s: %s", list[i].name, strerror(-r));
            store_site_list_free(list, n);
            return r;
        }
    }
    store_site_list_free(list, n);
    return repairs;
}

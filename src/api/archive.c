/* Site snapshots over the API: making, listing, downloading, deleting, restoring.
 *
 * A kept snapshot is written to an O_TMPFILE in the site's backups/ and linked
 * under its name only once complete and on disk: a full disk or a crash leaves no
 * file at all, never a half snapshot under a snapshot's name. It is root's, group
 * the site's, mode 0640: the site (and SFTP) read it, nobody but berthd changes it.
 *
 * A snapshot is written by a forked child while berthd's loop goes on (below); a
 * restore too (src/api/restore.c). */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "api/api-internal.h"
#include "common/proc.h"
#include "common/fs.h"
#include "common/log.h"
#include "snapshot/snapshot.h"
#include "upload/upload.h"

#define KEEP_MAX STORE_BACKUP_KEEP_MAX   /* `--keep`: the bounds a schedule's count has */
#define CONTENT_TYPE "application/zstd"

static const char *const site_dirs[] = { "public", "private" };

int api_snapshot_status(int code)
{
    switch (code) {
    case -EBADMSG: return 400;
    case -EINVAL: return 422;
    case -EPERM: case -EACCES: return 403;
    case -ENOENT: return 404;
    case -EEXIST: case -EADDRINUSE: case -EBUSY: return 409;
    case -EFBIG: case -E2BIG: return 413;
    case -ENOSPC: case -EDQUOT: return 507;
    default: return 500;
    }
}

static int open_site_dir(const struct api_config *cfg, const char *name)
{
    char dir[512];
    sites_dir(cfg->sites, name, dir, sizeof(dir));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int open_backups(int site_fd)
{
    return open_beneath(site_fd, "backups", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, RESOLVE_NO_SYMLINKS);
}

void api_site_event(const struct api_config *cfg, const char *actor, const char *action, const char *site,
                    const char *detail)
{
    int r = store_event_append(cfg->store, actor, action, site, detail);
    if (r < 0)
        log_warning_errno(r, "site %s: cannot record the event %s: %s", site, action, store_errmsg(cfg->store));
}

/* Gives the O_TMPFILE fd a name in dir_fd. AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH,
 * which berthd has as root; /proc/self/fd works without it. */
static int link_tmpfile(int fd, int dir_fd, const char *name)
{
    if (linkat(fd, "", dir_fd, name, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno == EEXIST)
        return -EEXIST;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, dir_fd, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

/* Removes the snapshots of one kind (automatic, or made by hand) beyond the keep
 * newest of that kind: each kind has its own count, so a schedule never removes a
 * snapshot an operator made, nor `--keep` one the schedule made. The names removed
 * are added to w (if not NULL); *ret_n counts them. */
static int prune(int backups_fd, const char *site, uint64_t keep, bool automatic, struct json_writer *w,
                 unsigned *ret_n)
{
    struct snapshot_info *list = NULL;
    size_t n = 0;
    uint64_t seen = 0;
    *ret_n = 0;
    int r = snapshot_list(backups_fd, site, &list, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (snapshot_name_automatic(site, list[i].name) != automatic || ++seen <= keep)
            continue;
        if (unlinkat(backups_fd, list[i].name, 0) < 0) {
            r = -errno;
            continue;
        }
        (*ret_n)++;
        if (w)
            json_string(w, list[i].name);
    }
    free(list);
    return r;
}

/* ---- making a snapshot: in a forked child, so berthd's loop goes on ----
 *
 * The child holds only the site's directory, the unnamed output file and a pipe;
 * it walks, compresses, fsyncs, writes one result record to the pipe and exits.
 * berthd answers when the pipe is readable: it names the file (or sends it), prunes
 * and records. A client that goes away cancels the job (the child is killed and the
 * unnamed file goes with its fd). One job per site at a time.
 *
 * An automatic snapshot (api_archive_auto_start) is the same job with no
 * connection: berthd's loop watches its pipe, and the outcome goes to the store
 * (the site's last automatic backup) and the audit log instead of to a client. */

struct job_result {
    int code;                      /* 0, or the negative errno */
    uint64_t bytes;
    char message[sizeof(((struct error *)0)->message)];
};

/* What a job came to. */
struct job_outcome {
    int status;                    /* 0: done; else the HTTP status of the failure */
    char message[600];             /* the failure, a sentence */
    char name[SNAPSHOT_NAME_MAX];  /* the snapshot's name once linked */
    uint64_t size, bytes;
};

struct archive_job {
    struct api_pending base;       /* base.fd: the pipe's read end */
    const struct api_config *cfg;  /* borrowed */
    pid_t pid;                     /* 0 once reaped */
    int site_fd, backups_fd, out_fd;
    bool download;
    bool automatic;                /* made by the schedule: no connection waits for it */
    uint64_t keep;
    time_t now;
    int64_t at;                    /* automatic: the scheduler's time, recorded as the run's */
    struct evloop *loop;           /* automatic: the loop watching base.fd; NULL once removed */
    api_archive_done_fn on_done;   /* automatic: called once it is recorded */
    void *done_data;
    uint32_t uid;
    char site[64];
    char actor[128];
    struct archive_job *next, **pprev;
};

static struct archive_job *jobs;

static bool archive_running(const char *site)
{
    for (const struct archive_job *j = jobs; j; j = j->next)
        if (streq(j->site, site))
            return true;
    return false;
}

static void job_free(struct api_pending *p)
{
    struct archive_job *j = (struct archive_job *)p;
    if (j->loop && j->base.fd >= 0)
        evloop_del(j->loop, j->base.fd);
    if (j->pid > 0) {
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (j->pprev) {
        *j->pprev = j->next;
        if (j->next)
            j->next->pprev = j->pprev;
    }
    safe_close(j->base.fd);
    safe_close(j->site_fd);
    safe_close(j->backups_fd);
    safe_close(j->out_fd);
    free(j);
}

static bool _printf_(3, 4) outcome_fail(struct job_outcome *o, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->status = status;
    vsnprintf(o->message, sizeof(o->message), fmt, ap);
    va_end(ap);
    return false;
}

/* In the child: only what the walk needs, as fds 3, 4 and 5. */
static _noreturn_ void job_child(int site_fd, int out_fd, int pipe_fd, const char *meta, size_t meta_len,
                                 bool download)
{
    if (proc_fds_to_low((int[]){ site_fd, out_fd, pipe_fd }, 3) < 0)
        _exit(1);
    proc_test_gate("BERTH_TEST_ARCHIVE_GATE");   /* a test looks while a snapshot is under way */
    struct job_result jr = { 0 };
    struct error err = { 0 };
    int r = snapshot_write(3, site_dirs, ARRAY_SIZE(site_dirs), meta, meta_len, 4, &err, &jr.bytes);
    /* On disk before it gets a name: a crash after the link must not leave a
     * snapshot of holes. */
    if (r >= 0 && !download && fsync(4) < 0)
        r = error_set(&err, -errno, "cannot flush the snapshot to disk: %m");
    jr.code = r < 0 ? (err.code ? err.code : r) : 0;
    memcpy(jr.message, err.message, sizeof(jr.message));
    ssize_t w = write(5, &jr, sizeof(jr));
    _exit(w == (ssize_t)sizeof(jr) ? 0 : 1);
}

/* Reads the child's result and reaps it; false with o set when it failed. */
static bool job_collect(struct archive_job *j, struct job_outcome *o, struct stat *st)
{
    struct job_result jr;
    ssize_t n;
    do
        n = read(j->base.fd, &jr, sizeof(jr));
    while (n < 0 && errno == EINTR);
    int status = 0;
    while (waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
        ;
    j->pid = 0;
    if (n != (ssize_t)sizeof(jr)) {
        log_error("archive of site %s: the snapshot writer ended without an answer (status %d)", j->site, status);
        return outcome_fail(o, 500, "cannot archive site %s: the snapshot writer failed", j->site);
    }
    jr.message[sizeof(jr.message) - 1] = 0;
    if (jr.code < 0) {
        if (jr.code == -ENOSPC || jr.code == -EDQUOT)
            outcome_fail(o, 507, "cannot archive site %s: the disk is full (%s); nothing was kept", j->site,
                         jr.message);
        else
            outcome_fail(o, api_snapshot_status(jr.code), "cannot archive site %s: %s", j->site, jr.message);
        if (o->status >= 500)
            log_error("archive of site %s failed: %s", j->site, jr.message);
        return false;
    }
    if (fstat(j->out_fd, st) < 0)
        return outcome_fail(o, 500, "cannot read the snapshot of site %s back: %s", j->site, strerror(errno));
    o->bytes = jr.bytes;
    o->size = (uint64_t)st->st_size;
    return true;
}

/* Gives the finished snapshot its owner, mode and name (o->name) in backups/. */
static bool job_link(struct archive_job *j, struct job_outcome *o)
{
    int r = fchown(j->out_fd, 0, j->uid) < 0 || fchmod(j->out_fd, 0640) < 0 ? -errno : -EEXIST;
    /* Two snapshots in one second get "-1", "-2"...: linkat never replaces. */
    for (unsigned i = 0; r == -EEXIST && i < 1000; i++) {
        snapshot_name_format(j->site, j->now, i, j->automatic, o->name);
        r = link_tmpfile(j->out_fd, j->backups_fd, o->name);
    }
    if (r < 0) {
        o->name[0] = 0;
        return outcome_fail(o, api_snapshot_status(r), "cannot store the snapshot of site %s: %s", j->site,
                            strerror(-r));
    }
    fsync(j->backups_fd);
    return true;
}

static void job_finish(struct api_pending *p, struct api_response *res)
{
    struct archive_job *j = (struct archive_job *)p;
    struct job_outcome o = { 0 };
    struct stat st;
    char detail[256];
    if (!job_collect(j, &o, &st)) {
        api_reply_error(res, o.status, "%s", o.message);
        return;
    }
    if (j->download) {
        snapshot_name_format(j->site, j->now, 0, false, o.name);
        if (lseek(j->out_fd, 0, SEEK_SET) < 0) {
            api_reply_error(res, 500, "cannot read the snapshot back: %m");
            return;
        }
        snprintf(detail, sizeof(detail), "{\"name\":\"%s\",\"size\":%" PRIu64 ",\"download\":true}", o.name, o.size);
        api_site_event(j->cfg, j->actor, "site.archive", j->site, detail);
        api_reply_file(res, 200, TAKE_FD(j->out_fd), o.size, CONTENT_TYPE);
        api_reply_header(res, "Content-Disposition: attachment; filename=\"%s\"", o.name);
        return;
    }
    if (!job_link(j, &o)) {
        api_reply_error(res, o.status, "%s", o.message);
        return;
    }

    api_reply(res, 200);
    struct json_writer *w = &res->json;
    json_object_begin(w);
    json_kv_string(w, "site", j->site);
    json_kv_string(w, "name", o.name);
    json_kv_uint(w, "size", o.size);
    json_kv_uint(w, "bytes", o.bytes);
    json_kv_int(w, "created_at", j->now);
    json_key(w, "pruned");
    json_array_begin(w);
    unsigned n_pruned;
    int r;
    if (j->keep && (r = prune(j->backups_fd, j->site, j->keep, false, w, &n_pruned)) < 0)
        log_warning_errno(r, "site %s: cannot remove its oldest snapshots", j->site);
    json_array_end(w);
    json_object_end(w);
    snprintf(detail, sizeof(detail), "{\"name\":\"%s\",\"size\":%" PRIu64 "}", o.name, o.size);
    api_site_event(j->cfg, j->actor, "site.archive", j->site, detail);
}

/* Opens what the job needs and forks its child; false with o set on failure. */
static struct archive_job *job_start(const struct api_config *cfg, const char *actor, const struct store_site *site,
                                     bool download, bool automatic, uint64_t keep, struct job_outcome *o)
{
    struct archive_job *j = calloc(1, sizeof(*j));
    if (!j) {
        outcome_fail(o, 500, "out of memory");
        return NULL;
    }
    j->base = (struct api_pending){ .fd = -1, .finish = job_finish, .free = job_free };
    j->cfg = cfg;
    j->site_fd = j->backups_fd = j->out_fd = -1;
    j->download = download;
    j->automatic = automatic;
    j->keep = keep;
    j->now = time(NULL);
    j->uid = site->uid;
    snprintf(j->site, sizeof(j->site), "%s", site->name);
    snprintf(j->actor, sizeof(j->actor), "%s", actor);

    j->site_fd = open_site_dir(cfg, site->name);
    if (j->site_fd < 0) {
        outcome_fail(o, 500, "cannot open the directory of site %s: %s", site->name, strerror(-j->site_fd));
        goto fail;
    }
    if (!download && (j->backups_fd = open_backups(j->site_fd)) < 0) {
        outcome_fail(o, 500, "cannot open the backups of site %s: %s", site->name, strerror(-j->backups_fd));
        goto fail;
    }
    /* A download is written beside the site's folders (root's directory, no name
     * anyone could open) and sent from there; a kept one where it will live. */
    j->out_fd = openat(download ? j->site_fd : j->backups_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (j->out_fd < 0) {
        int r = -errno;
        if (r == -ENOSPC || r == -EDQUOT)
            outcome_fail(o, 507, "cannot archive site %s: the disk is full (%s); nothing was kept", site->name,
                         strerror(-r));
        else
            outcome_fail(o, api_snapshot_status(r), "cannot create the snapshot of site %s: %s", site->name,
                         strerror(-r));
        goto fail;
    }
    struct buf meta = BUF_INIT(SNAPSHOT_META_MAX);
    int r = snapshot_settings_write(site, j->now, &meta);
    if (r < 0) {
        buf_done(&meta);
        outcome_fail(o, 500, "cannot write the settings of site %s: %s", site->name, strerror(-r));
        goto fail;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        buf_done(&meta);
        outcome_fail(o, 500, "cannot start the snapshot writer: %s", strerror(errno));
        goto fail;
    }
    pid_t pid = fork();
    if (pid == 0)
        job_child(j->site_fd, j->out_fd, pipefd[1], meta.data ? meta.data : "", meta.len, download);
    buf_done(&meta);
    close(pipefd[1]);
    j->base.fd = pipefd[0];
    if (pid < 0) {
        outcome_fail(o, 500, "cannot start the snapshot writer: %s", strerror(errno));
        goto fail;
    }
    j->pid = pid;
    j->next = jobs;
    if (jobs)
        jobs->pprev = &j->next;
    j->pprev = &jobs;
    jobs = j;
    return j;
fail:
    job_free(&j->base);
    return NULL;
}

/* ---- automatic snapshots ---- */

/* Records an automatic backup's outcome: the site's last run in the store, an audit
 * event by "berthd", and the log. */
static void auto_record(const struct api_config *cfg, const char *site, int64_t at, const struct job_outcome *o,
                        unsigned n_pruned)
{
    bool ok = o->status == 0;
    struct store_backup_run run = {
        .at = at, .ok = ok, .snapshot = ok ? (char *)o->name : NULL, .error = ok ? NULL : (char *)o->message,
    };
    int r = store_backup_run_put(cfg->store, site, &run);
    if (r < 0)
        log_warning_errno(r, "site %s: cannot record its automatic backup: %s", site, store_errmsg(cfg->store));
    struct buf detail = BUF_INIT(4096);
    struct json_writer w;
    json_writer_init(&w, &detail, false);
    json_object_begin(&w);
    if (ok) {
        json_kv_string(&w, "name", o->name);
        json_kv_uint(&w, "size", o->size);
        json_kv_uint(&w, "pruned", n_pruned);
    } else {
        json_kv_string(&w, "error", o->message);
    }
    json_object_end(&w);
    if (json_writer_finish(&w) == 0)
        api_site_event(cfg, "berthd", ok ? "site.backup" : "site.backup_failed", site, detail.data);
    buf_done(&detail);
    if (ok)
        log_info("site %s: automatic backup %s made (%" PRIu64 " bytes), %u older one%s removed", site, o->name,
                 o->size, n_pruned, n_pruned == 1 ? "" : "s");
    else
        log_error("site %s: automatic backup failed: %s", site, o->message);
}

static void auto_on_pipe(struct evloop *loop, int fd, uint32_t events, void *data)
{
    (void)events;
    struct archive_job *j = data;
    evloop_del(loop, fd);
    j->loop = NULL;
    struct job_outcome o = { 0 };
    struct stat st;
    unsigned n_pruned = 0;
    if (job_collect(j, &o, &st) && job_link(j, &o)) {
        int r = prune(j->backups_fd, j->site, j->keep, true, NULL, &n_pruned);
        if (r < 0)
            log_warning_errno(r, "site %s: cannot remove its oldest automatic snapshots", j->site);
    }
    auto_record(j->cfg, j->site, j->at, &o, n_pruned);
    api_archive_done_fn done = j->on_done;
    void *done_data = j->done_data;
    job_free(&j->base);
    done(done_data);
}

int api_archive_auto_start(const struct api_config *cfg, struct evloop *loop, const char *name, int64_t at,
                           api_archive_done_fn done, void *data, struct api_archive_job **ret)
{
    /* Its trees may be swapped or removed meanwhile: the next look tries again. */
    if (archive_running(name) || api_upload_busy(name) || api_restore_running(name))
        return -EBUSY;
    struct store_site site = { 0 };
    int r = store_site_get(cfg->store, name, &site);
    if (r < 0)
        return r;   /* removed since the list was read */
    struct job_outcome o = { 0 };
    struct archive_job *j = job_start(cfg, "berthd", &site, false, true, site.backup_keep, &o);
    store_site_done(&site);
    if (j) {
        j->at = at;
        j->on_done = done;
        j->done_data = data;
        r = evloop_add(loop, j->base.fd, EPOLLIN, auto_on_pipe, j);
        if (r < 0) {
            outcome_fail(&o, 500, "cannot watch the snapshot writer: %s", strerror(-r));
            job_free(&j->base);
            j = NULL;
        } else {
            j->loop = loop;
        }
    }
    if (!j) {
        auto_record(cfg, name, at, &o, 0);
        return -EIO;
    }
    *ret = (struct api_archive_job *)j;
    return 0;
}

bool api_archive_auto_running(const char *site)
{
    for (const struct archive_job *j = jobs; j; j = j->next)
        if (j->automatic && streq(j->site, site))
            return true;
    return false;
}

void api_archive_auto_cancel(struct api_archive_job *job)
{
    if (job)
        job_free(&((struct archive_job *)job)->base);
}

static void create_archive(const struct api_config *cfg, const struct api_request *req,
                           const struct store_site *site, struct api_response *res)
{
    uint64_t keep = 0;
    bool download = false;
    const struct json_value *body = req->body;
    if (body) {
        for (size_t i = 0; i < body->object.n; i++) {
            const char *k = body->object.keys[i];
            const struct json_value *v = body->object.values[i];
            if (streq(k, "keep")) {
                if (v->type != JSON_NUMBER || !v->number.is_integer || v->number.integer < 1 ||
                    v->number.integer > KEEP_MAX) {
                    api_reply_error(res, 400, "\"keep\" must be a number of snapshots from 1 to %d", KEEP_MAX);
                    return;
                }
                keep = (uint64_t)v->number.integer;
            } else if (streq(k, "download")) {
                if (v->type != JSON_BOOL) {
                    api_reply_error(res, 400, "\"download\" must be true or false");
                    return;
                }
                download = v->boolean;
            } else {
                api_reply_error(res, 400, "unknown field \"%s\"", k);
                return;
            }
        }
    }
    if (download && keep) {
        api_reply_error(res, 400, "a downloaded snapshot is not kept: \"keep\" does not apply to it");
        return;
    }
    if (archive_running(site->name)) {
        api_reply_error(res, 409, "a snapshot of site %s is being made: wait for it to end, then try again",
                        site->name);
        return;
    }
    /* An upload's or a restore's child may be swapping trees and removing old ones. */
    if (api_upload_busy(site->name)) {
        api_reply_error(res, 409, "an upload to site %s is in progress: wait for it to end, then archive it",
                        site->name);
        return;
    }
    if (api_restore_running(site->name)) {
        api_reply_error(res, 409, "site %s is being restored: wait for it to end, then archive it", site->name);
        return;
    }
    struct job_outcome o = { 0 };
    struct archive_job *j = job_start(cfg, req->actor, site, download, false, keep, &o);
    if (j)
        api_reply_later(res, &j->base);
    else
        api_reply_error(res, o.status, "%s", o.message);
}

static void list_archives(const struct api_config *cfg, const struct store_site *site, struct api_response *res)
{
    _cleanup_close_ int site_fd = open_site_dir(cfg, site->name);
    _cleanup_close_ int backups = site_fd >= 0 ? open_backups(site_fd) : site_fd;
    struct snapshot_info *list = NULL;
    size_t n = 0;
    int r = backups < 0 ? backups : snapshot_list(backups, site->name, &list, &n);
    if (r < 0) {
        api_reply_error(res, 500, "cannot list the snapshots of site %s: %s", site->name, strerror(-r));
        return;
    }
    api_reply(res, 200);
    struct json_writer *w = &res->json;
    json_object_begin(w);
    json_kv_string(w, "site", site->name);
    json_key(w, "archives");
    json_array_begin(w);
    for (size_t i = 0; i < n; i++) {
        json_object_begin(w);
        json_kv_string(w, "name", list[i].name);
        json_kv_uint(w, "size", list[i].size);
        json_kv_int(w, "created_at", list[i].mtime);
        json_object_end(w);
    }
    json_array_end(w);
    json_object_end(w);
    free(list);
}

/* Opens snapshot name of site for reading; answers the failure in res. */
static int open_snapshot(const struct api_config *cfg, const struct store_site *site, const char *name,
                         struct api_response *res)
{
    if (!snapshot_name_valid(site->name, name)) {
        api_reply_error(res, 400, "invalid snapshot name \"%.80s\": use a name `berth site archives %s` lists",
                        name, site->name);
        return -EINVAL;
    }
    _cleanup_close_ int site_fd = open_site_dir(cfg, site->name);
    _cleanup_close_ int backups = site_fd >= 0 ? open_backups(site_fd) : site_fd;
    int fd = backups < 0 ? backups : openat(backups, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && backups >= 0)
        fd = -errno;
    if (fd == -ENOENT)
        api_reply_error(res, 404, "site %s has no snapshot named \"%s\"", site->name, name);
    else if (fd < 0)
        api_reply_error(res, 500, "cannot open snapshot %s: %s", name, strerror(-fd));
    return fd;
}

static void one_archive(const struct api_config *cfg, const struct api_request *req, const struct store_site *site,
                        const char *name, struct api_response *res)
{
    if (req->method == HTTP_DELETE) {
        _cleanup_close_ int fd = open_snapshot(cfg, site, name, res);
        if (fd < 0)
            return;
        _cleanup_close_ int site_fd = open_site_dir(cfg, site->name);
        _cleanup_close_ int backups = site_fd >= 0 ? open_backups(site_fd) : site_fd;
        if (backups < 0 || unlinkat(backups, name, 0) < 0) {
            api_reply_error(res, 500, "cannot delete snapshot %s: %m", name);
            return;
        }
        char detail[256];
        snprintf(detail, sizeof(detail), "{\"name\":\"%s\"}", name);
        api_site_event(cfg, req->actor, "site.archive_delete", site->name, detail);
        api_reply(res, 200);
        json_object_begin(&res->json);
        json_kv_string(&res->json, "site", site->name);
        json_kv_string(&res->json, "deleted", name);
        json_object_end(&res->json);
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        api_reply_error(res, 405, "use GET or DELETE on a snapshot");
        return;
    }
    int fd = open_snapshot(cfg, site, name, res);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        api_reply_error(res, 500, "cannot read snapshot %s", name);
        return;
    }
    api_reply_file(res, 200, fd, (uint64_t)st.st_size, CONTENT_TYPE);
    api_reply_header(res, "Content-Disposition: attachment; filename=\"%s\"", name);
}

void api_handle_site_archives(const struct api_config *cfg, const struct api_request *req,
                              const struct store_site *site, struct api_response *res)
{
    if (req->n_segments == 4) {
        one_archive(cfg, req, site, req->segments[3], res);
    } else if (req->method == HTTP_GET) {
        list_archives(cfg, site, res);
    } else if (req->method == HTTP_POST) {
        create_archive(cfg, req, site, res);
    } else {
        api_reply_error(res, 405, "use GET to list a site's snapshots, POST to make one");
    }
}

/* A POST restore's connection waits on an eventfd the job's end writes. */
struct restore_wait {
    struct api_pending base;
    struct api_restore *job;
};

static void restore_wait_done(void *data)
{
    struct restore_wait *w = data;
    (void)!write(w->base.fd, &(uint64_t){ 1 }, sizeof(uint64_t));
}

static void restore_wait_finish(struct api_pending *p, struct api_response *res)
{
    api_restore_answer(((struct restore_wait *)p)->job, res);
}

static void restore_wait_free(struct api_pending *p)
{
    struct restore_wait *w = (struct restore_wait *)p;
    api_restore_release(w->job);
    safe_close(w->base.fd);
    free(w);
}

void api_handle_site_restore(const struct api_config *cfg, const struct api_request *req,
                             const struct store_site *site, struct api_response *res)
{
    if (req->method != HTTP_POST) {
        api_reply_error(res, 405, "use POST with {\"snapshot\": NAME} (or PUT with a snapshot file) to restore");
        return;
    }
    const char *name = req->body ? json_get_string(req->body, "snapshot") : NULL;
    bool settings = false;
    const struct json_value *s = req->body ? json_get(req->body, "settings") : NULL;
    if (!name) {
        api_reply_error(res, 400, "name the snapshot to restore: {\"snapshot\": NAME}");
        return;
    }
    if (s && s->type != JSON_BOOL) {
        api_reply_error(res, 400, "\"settings\" must be true or false");
        return;
    }
    settings = s && s->boolean;
    for (size_t i = 0; i < req->body->object.n; i++) {
        if (!streq(req->body->object.keys[i], "snapshot") && !streq(req->body->object.keys[i], "settings")) {
            api_reply_error(res, 400, "unknown field \"%s\"", req->body->object.keys[i]);
            return;
        }
    }
    if (archive_running(site->name)) {
        api_reply_error(res, 409, "a snapshot of site %s is being made: wait for it to end, then restore",
                        site->name);
        return;
    }
    if (api_upload_busy(site->name)) {
        api_reply_error(res, 409, "an upload to site %s is in progress: wait for it to end, then restore",
                        site->name);
        return;
    }
    _cleanup_close_ int fd = open_snapshot(cfg, site, name, res);
    if (fd < 0)
        return;
    struct restore_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        api_reply_error(res, 500, "out of memory");
        return;
    }
    w->base = (struct api_pending){ .finish = restore_wait_finish, .free = restore_wait_free };
    w->base.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->base.fd < 0) {
        api_reply_error(res, 500, "cannot start the restore: %m");
        free(w);
        return;
    }
    w->job = api_restore_start(cfg, req->loop, req->actor, req->admin, site->name, fd, settings, restore_wait_done,
                               w, res);
    if (!w->job) {
        restore_wait_free(&w->base);
        return;
    }
    api_reply_later(res, &w->base);
}

bool api_archive_running(const char *site)
{
    return archive_running(site);
}

/* Restoring a site from a snapshot, in a child process.
 *
 * The child (a fork of berthd holding only the site's directory, the snapshot and
 * a socket) unpacks the snapshot into a staging directory with every upload check,
 * checks the snapshot's settings when they are to be restored, swaps the trees in
 * (upload_restore_commit: journaled, so a kill between the two swaps is finished
 * forward), reports, then removes the old trees. berthd's loop goes on meanwhile;
 * when the report comes it stores the settings, removes the journal, restarts a
 * running site and answers.
 *
 * A restore is not cancelled by its client going away: once started it runs to
 * the end (the job is detached and frees itself when the child exits). Stopping
 * berthd kills the child; whatever it had done is either nothing of the site (the
 * staging directory goes at the next start) or a journaled swap that the next
 * start finishes, settings included. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "api/api-internal.h"
#include "common/proc.h"
#include "common/log.h"
#include "snapshot/snapshot.h"
#include "upload/upload.h"

/* The child's report: this header, then meta_len bytes of the snapshot's settings
 * file (when it had one), in one SOCK_SEQPACKET message. */
struct restore_report {
    int code;                     /* 0: swapped in; else negative errno, err says why */
    struct error err;
    struct upload_stats stats;
    uint32_t meta_len;
};

struct api_restore {
    const struct api_config *cfg;   /* borrowed */
    struct evloop *loop;            /* borrowed */
    char site[64];
    char actor[128];
    bool admin;
    bool settings;
    int site_fd;
    int sock;                       /* our end of the child's socket; -1 once it hung up */
    pid_t pid;                      /* 0: reaped */
    int pidfd;
    api_restore_done_fn on_done;
    void *done_data;
    bool reported;                  /* the child's report was dealt with */
    bool answered;                  /* the child is reaped, the answer below final */
    bool detached;                  /* its owner let go: free when the child is reaped */
    /* The answer: */
    int status;
    char message[600];
    struct upload_stats stats;
    bool stats_known;
    bool restarted;
    struct api_restore *next, **pprev;
};

static struct api_restore *jobs;

bool api_restore_running(const char *site)
{
    for (const struct api_restore *j = jobs; j; j = j->next)
        if (j->pid > 0 && streq(j->site, site))
            return true;
    return false;
}

/* What only an admin may give a site, as `site set` judges it (api/sites.c): s is
 * the site with the snapshot's settings, io_read/io_write its disk limits before. */
static int check_ceilings(const struct api_config *cfg, bool admin, const struct store_site *s, uint64_t io_read,
                          uint64_t io_write, struct error *err)
{
    if (admin)
        return 0;
    if (s->io_read_bps != io_read || s->io_write_bps != io_write)
        return error_set(err, -EPERM, "only an admin may change a site's disk limits, and the snapshot's differ");
    if (streq_ptr(s->network, "host"))
        return error_set(err, -EPERM, "only an admin may give a site the host's network");
    if (cfg->user_max_memory && (s->memory_max == 0 || s->memory_max > cfg->user_max_memory))
        return error_set(err, -EPERM, "only an admin may give a site the snapshot's memory limit");
    if (cfg->user_max_cpu_millis && (s->cpu_millis == 0 || s->cpu_millis > cfg->user_max_cpu_millis))
        return error_set(err, -EPERM, "only an admin may give a site the snapshot's CPU limit");
    if (cfg->user_max_pids && (s->pids_max == 0 || s->pids_max > cfg->user_max_pids))
        return error_set(err, -EPERM, "only an admin may give a site the snapshot's process limit");
    return 0;
}

/* ---- the child ---- */

static void child_report(int sock, int code, const struct error *err, const struct upload_stats *stats,
                         const char *meta, size_t meta_len)
{
    struct restore_report rep = { .code = code, .meta_len = (uint32_t)meta_len };
    if (err)
        rep.err = *err;
    if (stats)
        rep.stats = *stats;
    struct iovec iov[2] = { { &rep, sizeof(rep) }, { (void *)meta, meta_len } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = meta_len ? 2 : 1 };
    while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

/* In the child: fds 3 (the site's directory), 4 (the snapshot), 5 (the socket). */
static _noreturn_ void child_run(const struct api_config *cfg, struct store_site *site, bool admin,
                                 bool settings, const struct upload_restore_dir *dirs, size_t n_dirs,
                                 const struct upload_limits *limits)
{
    struct error err = { 0 };
    struct upload_restore *rs = NULL;
    proc_test_gate("BERTH_TEST_RESTORE_GATE");   /* a test acts while a restore is under way */
    /* The snapshot is parsed and written by an unpacker running as the site
     * (upload_unpacker_run); this child keeps root for the staging, the swap and
     * removing the old trees. */
    int r = upload_restore_prepare(3, 4, limits, (uid_t)site->uid, (gid_t)site->uid, dirs, n_dirs, SNAPSHOT_META,
                                   SNAPSHOT_META_MAX, &err, &rs);
    if (r < 0) {
        child_report(5, err.code ? err.code : r, &err, NULL, NULL, 0);
        _exit(0);
    }
    size_t meta_len = 0;
    const char *meta = upload_restore_meta(rs, &meta_len);
    uint64_t io_read = site->io_read_bps, io_write = site->io_write_bps;
    if (settings) {
        if (!meta) {
            r = error_set(&err, -EINVAL, "the snapshot has no " SNAPSHOT_META);
        } else if ((r = snapshot_settings_apply(site, meta, meta_len, &err)) >= 0 &&
                   (r = check_ceilings(cfg, admin, site, io_read, io_write, &err)) >= 0) {
            /* The owner stays what it is, so it needs no check: and looking it up
             * would use berthd's database connection, which a child must not. */
            free(TAKE_PTR(site->owner));
            r = sites_check(cfg->sites, site, false, &err);
        }
        if (r < 0) {
            char why[sizeof(err.message)];
            snprintf(why, sizeof(why), "%s", err.message);
            error_set(&err, r, "cannot restore the settings: %s", why);
            child_report(5, r, &err, NULL, NULL, 0);
            upload_restore_free(rs);
            _exit(0);
        }
    }
    r = upload_restore_commit(rs, settings ? meta : NULL, meta_len, &err);
    struct upload_stats stats;
    upload_restore_stats(rs, &stats);
    child_report(5, r < 0 ? (err.code ? err.code : r) : 0, &err, &stats, r < 0 ? NULL : meta,
                 r < 0 || !meta ? 0 : meta_len);
    /* The old trees (or the refused new ones) go last; the answer waits for them,
     * so that the site is free for the next change once it comes. */
    upload_restore_free(rs);
    _exit(0);
}

/* ---- berthd's side ---- */

static void job_unlink(struct api_restore *j)
{
    if (j->pprev) {
        *j->pprev = j->next;
        if (j->next)
            j->next->pprev = j->pprev;
        j->pprev = NULL;
    }
}

static void job_free(struct api_restore *j)
{
    if (!j)
        return;
    job_unlink(j);
    if (j->sock >= 0)
        evloop_del(j->loop, j->sock);
    if (j->pid > 0)
        proc_kill_wait(j->pidfd);
    safe_close(j->sock);
    safe_close(j->pidfd);
    safe_close(j->site_fd);
    free(j);
}

static void answer_error(struct api_restore *j, int status, const char *fmt, ...) _printf_(3, 4);
static void answer_error(struct api_restore *j, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof(j->message), fmt, ap);
    va_end(ap);
    j->status = status;
}

/* Restarts a running app or PHP site so it sees its new files. */
static bool restart_if_running(const struct api_config *cfg, const struct store_site *site)
{
    struct sites_runtime_status st;
    if (!cfg->runtime || streq_ptr(site->type, "static") ||
        sites_runtime_get_status(cfg->runtime, site->name, &st) < 0 ||
        (st.state != SITES_RUNTIME_RUNNING && st.state != SITES_RUNTIME_STARTING))
        return false;
    struct error err = { 0 };
    if (sites_runtime_restart(cfg->runtime, site->name, &err) < 0) {
        log_warning("restore of site %s: cannot restart it: %s", site->name, err.message);
        return false;
    }
    return true;
}

/* The trees are swapped in: stores the settings (meta, when they are restored),
 * ends the journal, restarts the site, records the event. */
static void finish_swapped(struct api_restore *j, const char *meta, size_t meta_len)
{
    struct store_site site = { 0 };
    struct error err = { 0 };
    int r = store_site_get(j->cfg->store, j->site, &site);
    uint64_t io_read = site.io_read_bps, io_write = site.io_write_bps;
    if (r < 0) {
        answer_error(j, 500, "site %s: its files were restored but it cannot be read back: %s", j->site,
                     store_errmsg(j->cfg->store));
    } else if (j->settings && !meta) {
        answer_error(j, 500, "site %s: its files were restored but the settings to store were lost", j->site);
    } else if (j->settings && ((r = snapshot_settings_apply(&site, meta, meta_len, &err)) < 0 ||
                               (r = check_ceilings(j->cfg, j->admin, &site, io_read, io_write, &err)) < 0 ||
                               (r = sites_update(j->cfg->sites, &site, j->actor, NULL, &err)) < 0)) {
        answer_error(j, api_snapshot_status(err.code), "site %s: its files were restored but its settings were "
                     "not: %s", j->site, err.message);
    } else {
        j->status = 200;
        j->restarted = restart_if_running(j->cfg, &site);
        char detail[160];
        if (j->stats_known)
            snprintf(detail, sizeof(detail), "{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"settings\":%s}",
                     j->stats.files, j->stats.bytes, j->settings ? "true" : "false");
        else
            snprintf(detail, sizeof(detail), "{\"settings\":%s}", j->settings ? "true" : "false");
        api_site_event(j->cfg, j->actor, "site.restore", j->site, detail);
    }
    /* Settings that could not be stored now will not be later either. */
    if ((r = upload_restore_journal_remove(j->site_fd)) < 0)
        log_warning_errno(r, "site %s: cannot remove the restore's journal", j->site);
    store_site_done(&site);
}

/* The child hung up without a report (killed: the OOM killer, an operator). */
static void finish_lost(struct api_restore *j)
{
    char *meta = NULL;
    size_t meta_len = 0;
    struct error err = { 0 };
    int r = upload_restore_recover(j->site_fd, &meta, &meta_len, &err);
    if (r == 0) {
        log_error("restore of site %s: the restore process ended without a report", j->site);
        answer_error(j, 500, "cannot restore site %s: the restore process ended before it swapped anything in; the "
                     "site keeps its files", j->site);
    } else if (r < 0) {
        log_error("restore of site %s: %s", j->site, err.message);
        answer_error(j, 500, "cannot restore site %s: %s", j->site, err.message);
    } else {
        log_warning("restore of site %s: the restore process ended during the swap; berthd finished it", j->site);
        finish_swapped(j, meta, meta_len);
    }
    free(meta);
}

static void on_report(struct api_restore *j)
{
    struct restore_report *rep = malloc(sizeof(*rep) + UPLOAD_RESTORE_META_MAX + 1);
    if (!rep) {
        answer_error(j, 500, "out of memory");
        return;
    }
    ssize_t n;
    do
        n = recv(j->sock, rep, sizeof(*rep) + UPLOAD_RESTORE_META_MAX + 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof(*rep) || rep->meta_len > UPLOAD_RESTORE_META_MAX ||
        (size_t)n != sizeof(*rep) + rep->meta_len) {
        finish_lost(j);
    } else if (rep->code < 0) {
        rep->err.message[sizeof(rep->err.message) - 1] = 0;
        int status = api_snapshot_status(rep->code);
        if (status >= 500)
            log_error("restore of site %s failed: %s", j->site, rep->err.message);
        answer_error(j, status, "cannot restore site %s: %s", j->site, rep->err.message);
    } else {
        j->stats = rep->stats;
        j->stats_known = true;
        finish_swapped(j, rep->meta_len ? (const char *)(rep + 1) : NULL, rep->meta_len);
    }
    free(rep);
}

static void on_child(struct evloop *loop, int fd, uint32_t events, void *data)
{
    struct api_restore *j = data;
    (void)events;
    if (!j->reported) {
        /* The trees are swapped (or refused): the settings, the journal and the
         * site's restart are dealt with at once. */
        on_report(j);
        j->reported = true;
        return;
    }
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    /* The child removed the old trees and exited: the site is free again, and the
     * answer goes out. */
    evloop_del(loop, fd);
    j->sock = safe_close(j->sock);
    while (waitid(P_PIDFD, (id_t)j->pidfd, &(siginfo_t){ 0 }, WEXITED) < 0 && errno == EINTR)
        ;
    j->pid = 0;
    j->pidfd = safe_close(j->pidfd);
    j->answered = true;
    if (!j->detached) {
        j->on_done(j->done_data);
        return;
    }
    if (j->status != 200)
        log_warning("restore of site %s (its client went away): %s", j->site, j->message);
    job_free(j);
}

struct api_restore *api_restore_start(const struct api_config *cfg, struct evloop *loop, const char *actor,
                                      bool admin, const char *name, int archive_fd, bool settings,
                                      api_restore_done_fn on_done, void *done_data, struct api_response *res)
{
    if (api_restore_running(name)) {
        api_reply_error(res, 409, "site %s is being restored already: wait for it to end", name);
        return NULL;
    }
    if (api_archive_running(name)) {
        api_reply_error(res, 409, "a snapshot of site %s is being made: wait for it to end, then restore", name);
        return NULL;
    }
    struct store_site site = { 0 };
    int r = store_site_get(cfg->store, name, &site);
    if (r < 0) {
        store_site_done(&site);
        api_reply_error(res, r == -ENOENT ? 404 : 500, "cannot read site %s", name);
        return NULL;
    }
    struct api_restore *j = calloc(1, sizeof(*j));
    if (!j) {
        store_site_done(&site);
        api_reply_error(res, 500, "out of memory");
        return NULL;
    }
    *j = (struct api_restore){ .cfg = cfg, .loop = loop, .admin = admin, .settings = settings, .site_fd = -1,
                               .sock = -1, .pidfd = -1, .on_done = on_done, .done_data = done_data };
    snprintf(j->site, sizeof(j->site), "%s", name);
    snprintf(j->actor, sizeof(j->actor), "%s", actor);

    char dir[512];
    sites_dir(cfg->sites, name, dir, sizeof(dir));
    j->site_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat pub, priv;
    if (j->site_fd < 0 || fstatat(j->site_fd, "public", &pub, AT_SYMLINK_NOFOLLOW) < 0 ||
        fstatat(j->site_fd, "private", &priv, AT_SYMLINK_NOFOLLOW) < 0) {
        api_reply_error(res, 500, "cannot open the directory of site %s: %m", name);
        goto fail;
    }
    /* Owners come from the site as it is, never from the archive. */
    const struct upload_restore_dir dirs[] = {
        { "public", pub.st_uid, pub.st_gid },
        { "private", priv.st_uid, priv.st_gid },
    };
    struct upload_limits limits;
    api_upload_limits(&limits);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        api_reply_error(res, 500, "cannot start the restore: %m");
        goto fail;
    }
    /* The report carries up to 64 KiB of settings in one message. */
    int sndbuf = (int)(sizeof(struct restore_report) + UPLOAD_RESTORE_META_MAX) * 2;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (proc_fds_to_low((int[]){ j->site_fd, archive_fd, sv[1] }, 3) < 0)
            _exit(1);
        child_run(cfg, &site, admin, settings, dirs, ARRAY_SIZE(dirs), &limits);
    }
    close(sv[1]);
    j->sock = sv[0];
    store_site_done(&site);
    if (pid < 0) {
        api_reply_error(res, 500, "cannot start the restore: %m");
        goto fail;
    }
    j->pid = pid;
    j->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (j->pidfd < 0 || evloop_add(loop, j->sock, EPOLLIN, on_child, j) < 0) {
        if (j->pidfd < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            j->pid = 0;
        }
        j->sock = safe_close(j->sock);   /* not registered: job_free must not evloop_del it */
        api_reply_error(res, 500, "cannot start the restore: %m");
        goto fail;
    }
    j->next = jobs;
    if (jobs)
        jobs->pprev = &j->next;
    j->pprev = &jobs;
    jobs = j;
    return j;
fail:
    store_site_done(&site);
    job_free(j);
    return NULL;
}

void api_restore_answer(struct api_restore *j, struct api_response *res)
{
    if (!j->answered) {
        api_reply_error(res, 500, "internal error: the restore has not ended");
        return;
    }
    if (j->status != 200) {
        api_reply_error(res, j->status, "%s", j->message);
        return;
    }
    api_reply(res, 200);
    struct json_writer *w = &res->json;
    json_object_begin(w);
    json_kv_string(w, "site", j->site);
    if (j->stats_known) {
        json_kv_uint(w, "files", j->stats.files);
        json_kv_uint(w, "bytes", j->stats.bytes);
    }
    json_kv_bool(w, "settings", j->settings);
    json_kv_bool(w, "restarted", j->restarted);
    json_object_end(w);
}

void api_restore_release(struct api_restore *j)
{
    if (!j)
        return;
    if (j->pid == 0) {
        job_free(j);
        return;
    }
    /* Once started a restore runs to its end: what it swaps in is whole either way,
     * and killing it would only leave the staging directory behind. */
    j->detached = true;
    if (!j->answered)
        log_notice("restore of site %s: its client went away; the restore goes on", j->site);
}

void api_restore_stop_all(void)
{
    for (struct api_restore *j = jobs, *next; j; j = next) {
        next = j->next;
        if (j->pid > 0) {
            log_warning("restore of site %s: stopped by berthd's stop; the next start finishes or drops it",
                        j->site);
            proc_kill_wait(j->pidfd);
            j->pid = 0;
            j->pidfd = safe_close(j->pidfd);
        }
        if (j->sock >= 0) {
            evloop_del(j->loop, j->sock);
            j->sock = safe_close(j->sock);
        }
        job_unlink(j);
        if (j->detached)
            job_free(j);
    }
}

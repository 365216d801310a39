/* PUT /api/v1/sites/NAME/content: the archive streams into an O_TMPFILE in the
 * site's directory (root-only, never visible by name, gone with its fd whatever
 * happens) and is unpacked when it is complete.
 *
 * The unpacking (up to 1 GiB and 100k entries: seconds) runs in a child process
 * forked for it, so berthd's loop goes on serving the API, the panel and the
 * supervision meanwhile. The child only touches the file system: it reports
 * through a pipe, and the audit event and the answer are written here once it
 * has. It stays root only to prepare the staging directory, swap and remove the
 * old tree: the archive is parsed by its own child, the unpacker, running as the
 * site (upload_site_replace). If no child can be started the upload fails:
 * nothing is ever unpacked in berthd itself. A child killed half-way (berthd stopping) leaves public/ as it was and a
 * staging directory that the next start removes (upload_site_cleanup). */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "api/api-internal.h"
#include "common/proc.h"
#include "common/log.h"
#include "upload/upload.h"

#define CONTENT_SUFFIX "/content"
#define RESTORE_SUFFIX "/restore"
#define SITES_PREFIX "/api/v1/sites/"

/* What the child reports: one write, smaller than PIPE_BUF, so it arrives whole. */
struct unpack_result {
    int r;
    struct error err;
    struct upload_stats stats;
};
_Static_assert(sizeof(struct unpack_result) <= 4096, "one atomic pipe write");

struct api_upload {
    const struct api_config *cfg;   /* borrowed */
    char site[64];
    uid_t uid;                      /* the site's, also its gid: the unpacker's ids */
    char actor[128];
    bool admin;
    bool restore;                   /* PUT .../restore: a snapshot for api_site_restore_fd */
    bool settings;                  /* ...?settings=1 */
    int site_fd;
    int body_fd;
    bool chunked;
    struct http1_chunked ch;
    uint64_t remaining;             /* Content-Length bytes still to come */
    uint64_t received;
    struct upload_limits limits;
    bool keep_alive;
    struct api_upload *next_in_flight, **pprev_in_flight;
    /* While the child unpacks: */
    struct evloop *loop;            /* borrowed */
    pid_t pid;                      /* 0: no child */
    int pidfd;
    int result_fd;                  /* the pipe the child reports on */
    api_upload_done_fn on_done;
    void *done_data;
    struct unpack_result result;    /* what the unpacking ended with */
    struct api_restore *restore_job; /* a restore's child (restore.c) instead */
};


/* Every upload whose body is arriving, over both sockets (api.sock and panel.sock
 * are two servers in one loop): a site takes one at a time. */
static struct api_upload *in_flight;

static bool upload_in_flight(const char *site)
{
    for (const struct api_upload *u = in_flight; u; u = u->next_in_flight)
        if (streq(u->site, site))
            return true;
    return false;
}

bool api_upload_wanted(const struct http1_request *http)
{
    const char *p = http->path;
    size_t len = http->path_len;
    const char *q = memchr(p, '?', len);
    if (q)
        len = (size_t)(q - p);
    size_t pre = strlen(SITES_PREFIX), suf = strlen(CONTENT_SUFFIX);
    bool content = len > pre + suf && memcmp(p + len - suf, CONTENT_SUFFIX, suf) == 0;
    if (!content && http->method == HTTP_PUT) {
        suf = strlen(RESTORE_SUFFIX);
        content = len > pre + suf && memcmp(p + len - suf, RESTORE_SUFFIX, suf) == 0;
    }
    if (!content || strncmp(p, SITES_PREFIX, pre) != 0)
        return false;
    /* Exactly one segment (the site's name) between the two. */
    return !memchr(p + pre, '/', len - pre - suf);
}

/* The limits, with the operator's overrides from the environment until berth.yaml
 * grows an upload section: BERTH_UPLOAD_MAX_SIZE ("1G": the archive and what it
 * unpacks to), BERTH_UPLOAD_MAX_FILES. */
void api_upload_limits(struct upload_limits *lim)
{
    upload_limits_default(lim);
    const char *s = getenv("BERTH_UPLOAD_MAX_SIZE");
    uint64_t v;
    if (s && parse_size(s, &v) == 0 && v > 0)
        lim->max_total_bytes = lim->max_entry_bytes = v;
    s = getenv("BERTH_UPLOAD_MAX_FILES");
    if (s && parse_uint(s, 1, UINT32_MAX, &v) == 0)
        lim->max_entries = v;
    lim->max_entry_bytes = MIN(lim->max_entry_bytes, lim->max_total_bytes);
}

void api_upload_free(struct api_upload *u)
{
    if (!u)
        return;
    if (u->pprev_in_flight) {
        *u->pprev_in_flight = u->next_in_flight;
        if (u->next_in_flight)
            u->next_in_flight->pprev_in_flight = u->pprev_in_flight;
    }
    if (u->pid > 0) {
        /* berthd stops, or the connection was evicted: public/ stays as it was. */
        proc_kill_wait(u->pidfd);
        log_warning("upload to site %s: stopped while unpacking; the site keeps its old content", u->site);
    }
    api_restore_release(u->restore_job);
    if (u->result_fd >= 0)
        evloop_del(u->loop, u->result_fd);
    safe_close(u->result_fd);
    safe_close(u->pidfd);
    safe_close(u->site_fd);
    safe_close(u->body_fd);
    free(u);
}

bool api_upload_keep_alive(const struct api_upload *u)
{
    return u->keep_alive;
}

bool api_upload_busy(const char *site)
{
    return upload_in_flight(site);
}

int api_upload_begin(const struct api_config *cfg, struct evloop *loop, const struct api_request *req,
                     const struct http1_request *http, struct api_response *res, api_upload_done_fn on_done,
                     void *done_data, struct api_upload **ret)
{
    const char *name = req->n_segments == 3 ? req->segments[1] : "";
    bool restore = req->n_segments == 3 && streq(req->segments[2], "restore");
    if (req->method != HTTP_PUT) {
        api_reply_error(res, 405, "use PUT with the archive as the body to upload a site's content");
        return -EINVAL;
    }
    struct store_site site = { 0 };
    int r = store_site_get(cfg->store, name, &site);
    /* Someone else's site is as unknown as a missing one. */
    bool visible = r == 0 && (req->admin || streq_ptr(site.owner, req->actor));
    uint32_t site_uid = site.uid;
    store_site_done(&site);
    if (r < 0 && r != -ENOENT) {
        api_reply_error(res, 500, "cannot read site %s: %s", name, store_errmsg(cfg->store));
        return r;
    }
    if (!visible) {
        api_reply_error(res, 404, "no site named \"%s\"", name);
        return -ENOENT;
    }
    if (http->body == HTTP1_BODY_NONE) {
        api_reply_error(res, 411, "send the archive as the request body, with Content-Length or chunked");
        return -EINVAL;
    }
    /* Two at once would each hold up to the size limit on disk, and the last to
     * finish would silently win. */
    if (api_archive_running(name)) {
        api_reply_error(res, 409, "a snapshot of site %s is being made: wait for it to end, then try again", name);
        return -EBUSY;
    }
    if (api_restore_running(name)) {
        api_reply_error(res, 409, "site %s is being restored: wait for it to end, then try again", name);
        return -EBUSY;
    }
    if (upload_in_flight(name)) {
        api_reply_error(res, 409, "another upload to site %s is in progress: wait for it to end, then try again",
                        name);
        return -EBUSY;
    }

    _cleanup_free_ struct api_upload *u = calloc(1, sizeof(*u));
    if (!u) {
        api_reply_error(res, 500, "out of memory");
        return -ENOMEM;
    }
    u->site_fd = u->body_fd = u->pidfd = u->result_fd = -1;
    u->cfg = cfg;
    u->loop = loop;
    u->on_done = on_done;
    u->done_data = done_data;
    snprintf(u->site, sizeof(u->site), "%s", name);
    u->uid = site_uid;
    snprintf(u->actor, sizeof(u->actor), "%s", req->actor);
    u->admin = req->admin;
    u->restore = restore;
    char v[8];
    u->settings = restore && api_query_get(req->query, "settings", v, sizeof(v)) && (streq(v, "1") || streq(v, "true"));
    api_upload_limits(&u->limits);
    u->keep_alive = http->keep_alive;
    u->chunked = http->body == HTTP1_BODY_CHUNKED;
    u->remaining = http->content_length;
    http1_chunked_init(&u->ch);
    if (!u->chunked && u->remaining > u->limits.max_total_bytes) {
        char max[16];
        format_size(u->limits.max_total_bytes, max, sizeof(max));
        api_reply_error(res, 413, "the archive is larger than the upload limit of %s", max);
        return -EFBIG;
    }

    char dir[512];
    sites_dir(cfg->sites, name, dir, sizeof(dir));
    u->site_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* The body waits in the site's own directory (root's, not the site's): the same
     * file system as public/, and no name anyone could open. */
    if (u->site_fd >= 0)
        u->body_fd = openat(u->site_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (u->body_fd < 0) {
        r = -errno;
        api_upload_free(TAKE_PTR(u));
        log_errno(r, "upload to site %s: cannot make a temp file in %s", name, dir);
        api_reply_error(res, 500, "cannot store the upload: %s", strerror(-r));
        return r;
    }
    u->next_in_flight = in_flight;
    if (in_flight)
        in_flight->pprev_in_flight = &u->next_in_flight;
    u->pprev_in_flight = &in_flight;
    in_flight = u;
    *ret = TAKE_PTR(u);
    return 0;
}

static int write_body(struct api_upload *u, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(u->body_fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int status_for(int code)
{
    switch (code) {
    case -EBADMSG: return 400;
    case -EINVAL: return 422;
    case -EFBIG: case -E2BIG: return 413;
    case -ENOSPC: case -EDQUOT: return 507;
    default: return 500;
    }
}

/* The unpacking ended (the child's report, or a failure to start one): record it and
 * answer. Always 1: the request was answered, with an error or not. */
static int answer(struct api_upload *u, const struct unpack_result *result, struct api_response *res)
{
    if (result->r < 0) {
        int status = status_for(result->err.code);
        if (status >= 500)
            log_error("upload to site %s failed: %s", u->site, result->err.message);
        api_reply_error(res, status, "%s", result->err.message);
        return 1;
    }
    char detail[128];
    snprintf(detail, sizeof(detail), "{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 "}", result->stats.files,
             result->stats.bytes);
    /* The content is live already; a missing audit line is logged, not failed. */
    int r = store_event_append(u->cfg->store, u->actor, "site.upload", u->site, detail);
    if (r < 0)
        log_warning_errno(r, "upload to site %s: cannot record the event: %s", u->site,
                          store_errmsg(u->cfg->store));
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "site", u->site);
    json_kv_uint(&res->json, "files", result->stats.files);
    json_kv_uint(&res->json, "bytes", result->stats.bytes);
    json_object_end(&res->json);
    return 1;
}

static void unpack(struct api_upload *u, struct unpack_result *result)
{
    proc_test_gate("BERTH_TEST_UPLOAD_GATE");   /* a test acts while an unpacking is under way */
    *result = (struct unpack_result){ 0 };
    result->r = upload_site_replace(u->site_fd, u->body_fd, &u->limits, u->uid, (gid_t)u->uid, &result->err,
                                    &result->stats);
}

static void on_unpacked(struct evloop *loop, int fd, uint32_t events, void *data)
{
    (void)loop;
    (void)events;
    struct api_upload *u = data;
    struct unpack_result result;
    ssize_t n;
    while ((n = read(fd, &result, sizeof(result))) < 0 && errno == EINTR)
        ;
    if (n < 0 && errno == EAGAIN)
        return;
    if (n != (ssize_t)sizeof(result)) {
        /* Killed (the OOM killer, an operator): the swap is atomic, so public/ is
         * either the old tree or the new one; the next start removes the staging. */
        result = (struct unpack_result){ .r = -EIO };
        error_set(&result.err, -EIO, "the unpacking process ended without a result; the site keeps its content "
                  "as it was before or after the swap");
    }
    while (waitid(P_PIDFD, (id_t)u->pidfd, &(siginfo_t){ 0 }, WEXITED) < 0 && errno == EINTR)
        ;
    evloop_del(u->loop, fd);
    u->result_fd = safe_close(u->result_fd);
    u->pidfd = safe_close(u->pidfd);
    u->pid = 0;
    u->result = result;
    u->on_done(u->done_data);
}

/* No process could be started for the unpacking: the upload fails. Unpacking in
 * berthd's own loop instead would parse a hostile archive in the daemon itself. */
static int cannot_start(struct api_upload *u, int r, struct api_response *res)
{
    log_errno(r, "upload to site %s: cannot start a process to unpack it", u->site);
    api_reply_error(res, 500, "cannot start the process that unpacks the upload: %s; the site keeps its content, "
                    "try again", strerror(-r));
    return 1;
}

/* The body is complete: starts the child that unpacks it and swaps it in.
 * API_UPLOAD_UNPACKING, or 1 with the answer in res when no child could be
 * started (public/ is untouched then). */
static int finish(struct api_upload *u, struct api_response *res)
{
    if (lseek(u->body_fd, 0, SEEK_SET) < 0) {
        api_reply_error(res, 500, "cannot read the upload back: %m");
        return 1;
    }
    /* A snapshot for a restore: restore.c runs it in its own child. */
    if (u->restore) {
        u->restore_job = api_restore_start(u->cfg, u->loop, u->actor, u->admin, u->site, u->body_fd, u->settings,
                                           u->on_done, u->done_data, res);
        return u->restore_job ? API_UPLOAD_UNPACKING : 1;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
        return cannot_start(u, -errno, res);
    /* Test hook: a fork that fails. */
    pid_t pid = getenv("BERTH_TEST_UPLOAD_FORK_FAIL") ? (errno = EAGAIN, -1) : fork();
    if (pid == 0) {
        close(pipefd[0]);
        /* Only what the unpacking needs: the site's directory, the body, the pipe.
         * Not berthd's database, sockets or other children's ends. */
        proc_close_fds_except((int[]){ u->site_fd, u->body_fd, pipefd[1] }, 3);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        struct unpack_result result;
        unpack(u, &result);
        ssize_t n;
        do
            n = write(pipefd[1], &result, sizeof(result));
        while (n < 0 && errno == EINTR);
        _exit(n == (ssize_t)sizeof(result) ? 0 : 1);
    }
    close(pipefd[1]);
    if (pid < 0) {
        int r = -errno;
        close(pipefd[0]);
        return cannot_start(u, r, res);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        int r = -errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(pipefd[0]);
        return cannot_start(u, r, res);
    }
    int r = evloop_add(u->loop, pipefd[0], EPOLLIN, on_unpacked, u);
    if (r < 0) {
        proc_kill_wait(pidfd);
        close(pidfd);
        close(pipefd[0]);
        return cannot_start(u, r, res);
    }
    u->pid = pid;
    u->pidfd = pidfd;
    u->result_fd = pipefd[0];
    return API_UPLOAD_UNPACKING;
}

int api_upload_answer(struct api_upload *u, struct api_response *res)
{
    if (u->restore_job) {
        api_restore_answer(u->restore_job, res);
        return 1;
    }
    return answer(u, &u->result, res);
}

static int too_large(struct api_upload *u, struct api_response *res)
{
    char max[16];
    format_size(u->limits.max_total_bytes, max, sizeof(max));
    api_reply_error(res, 413, "the archive is larger than the upload limit of %s", max);
    return -EFBIG;
}

int api_upload_feed(struct api_upload *u, char *data, size_t len, struct api_response *res, size_t *ret_used)
{
    size_t n = len, extra = 0;
    int done = 0;
    if (u->chunked) {
        int r = http1_chunked_decode(&u->ch, data, &n, &extra);
        if (r < 0) {
            *ret_used = len;
            api_reply_error(res, 400, "bad chunked request body");
            return -EINVAL;
        }
        done = r == 1;
        /* The next request's bytes follow the decoded data; put them where the
         * caller's consume of ret_used leaves them. */
        if (done)
            memmove(data + len - extra, data + n, extra);
    } else {
        n = (size_t)MIN((uint64_t)len, u->remaining);
        extra = len - n;
        u->remaining -= n;
        done = u->remaining == 0;
    }
    *ret_used = len - extra;
    u->received += n;
    if (u->received > u->limits.max_total_bytes)
        return too_large(u, res);
    int r = write_body(u, data, n);
    if (r < 0) {
        log_errno(r, "upload to site %s: cannot store the body", u->site);
        api_reply_error(res, r == -ENOSPC || r == -EDQUOT ? 507 : 500, "cannot store the upload: %s", strerror(-r));
        return r;
    }
    return done ? finish(u, res) : 0;
}

/* Shared between the API's connection handling and its handlers. */
#pragma once

#include <sodium.h>

#include "api/api.h"
#include "common/buf.h"
#include "common/error.h"
#include "common/json.h"
#include "http/http1.h"

struct api_request {
    enum http_method method;
    const char *segments[8];       /* path after /api/v1/, split at '/', %XX-decoded */
    size_t n_segments;
    const char *query;             /* after '?', or "" */
    const struct json_value *body; /* parsed JSON body, or NULL if none */
    const char *actor;             /* who is asking: "root" or a user name */
    bool admin;
    struct evloop *loop;           /* the server's, for work that answers later */
    /* Set by the connection code for auth.c (zero in requests built elsewhere): */
    const struct http1_request *http; /* the head, for its fields; borrowed */
    struct api_auth *auth;         /* the server's sessions and throttling; borrowed */
    /* Filled by api_auth_request: */
    const char *client;            /* client address (the front's X-Forwarded-For on panel.sock) */
    bool via_session;              /* authenticated by the session cookie */
    int64_t token_id;              /* by this bearer token; 0 if not */
    char actor_buf[64];            /* storage behind actor */
    char client_buf[64];           /* storage behind client */
    char session_id[65];           /* SHA-256 hex of the cookie, when via_session */
    char csrf[64];                 /* the session's CSRF token, when via_session */
};

struct api_response {
    int status;
    struct buf body;               /* JSON, or raw bytes when content_type is set */
    struct json_writer json;       /* writes into body */
    const char *content_type;      /* NULL: body is a JSON document; else a static type */
    char headers[768];             /* extra header lines, each ending in CRLF (api_reply_header) */
    struct api_pending *pending;   /* the answer comes later (api_reply_later) */
    bool has_file;                 /* the body is file_len bytes of file_fd (api_reply_file) */
    int file_fd;                   /* owned by the response until the connection takes it */
    uint64_t file_len;
};

/* Starts a JSON answer with status. */
void api_reply(struct api_response *res, int status);
/* Answers status with a body read from fd (takes ownership; read from its current
 * offset, len bytes) as content_type (static). The connection sends it in blocks
 * as the peer reads, never whole in memory, and closes after it. */
void api_reply_file(struct api_response *res, int status, int fd, uint64_t len, const char *content_type);
/* Work a handler started that answers later: when fd becomes readable (or hangs
 * up), the connection calls finish to fill the answer, then free. If the connection
 * ends first, free alone is called (it cancels the work). */
struct api_pending {
    int fd;
    void (*finish)(struct api_pending *p, struct api_response *res);
    void (*free)(struct api_pending *p);
};
/* Answers later: takes ownership of p. The connection reads no other request
 * meanwhile, and closes after the answer. */
void api_reply_later(struct api_response *res, struct api_pending *p);
/* Answers an error: {"error": {"status":..., "message":...}}. */
void api_reply_error(struct api_response *res, int status, const char *fmt, ...) _printf_(3, 4);
/* Answers an error from a struct error, mapping its code to a status. */
void api_reply_failure(struct api_response *res, const struct error *err);
/* The HTTP status for a negative errno (-EINVAL 400, -ENOENT 404, -EEXIST 409...). */
int api_status_for(int code);
/* Reads a query parameter into out; false if absent. */
bool api_query_get(const char *query, const char *key, char *out, size_t n);

/* Adds one header line ("Name: value") to res; a line that does not fit is dropped
 * and returns -ENOBUFS. */
int api_reply_header(struct api_response *res, const char *fmt, ...) _printf_(2, 3);

/* ---- the login throttle (throttle.c) ---- */

/* Failed password guesses per key ("a:<address>", "u:<name>"), in a table of a fixed
 * number of slots. Times are monotonic milliseconds (now_ms()). */
struct api_throttle;

int api_throttle_new(size_t n_slots, struct api_throttle **ret);
void api_throttle_free(struct api_throttle *t);   /* NULL-safe */
/* Milliseconds until key may try again; 0: now. */
uint64_t api_throttle_wait(struct api_throttle *t, const char *key, uint64_t now);
/* Counts a failure of key: from the fifth on, each locks it for 30 s, doubling up
 * to an hour. A key forgets after 15 minutes without failures. */
void api_throttle_fail(struct api_throttle *t, const char *key, uint64_t now);
/* Forgets key (a success). */
void api_throttle_clear(struct api_throttle *t, const char *key, uint64_t now);

/* ---- authentication (auth.c) ---- */

struct api_auth;

/* Per-server authentication state: the mode, and on panel.sock the login throttle
 * table and a dummy password hash (so an unknown user costs the same argon2 time as
 * a wrong password). cfg is borrowed and outlives it. */
int api_auth_new(const struct api_config *cfg, struct api_auth **ret);
void api_auth_free(struct api_auth *auth);   /* NULL-safe */
/* Decides who req is (req->http, ->auth, ->segments and ->method set): on api.sock a
 * root peer is the admin "root"; on panel.sock the bearer token or session cookie
 * names a user (disabled users and expired sessions are refused). For a state-changing
 * cookie request it also checks X-CSRF-Token and the Origin/Referer host. Login needs
 * no identity: it passes with actor NULL. Returns true to go on; false when res holds
 * the refusal (401/403). */
bool api_auth_request(struct api_auth *auth, uid_t peer_uid, struct api_request *req, struct api_response *res);
/* /api/v1/login, /logout, /me, /me/password (account.c). */
void api_handle_account(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* /api/v1/tokens (account.c). */
void api_handle_tokens(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* Logs in: checks throttling, verifies the password (or the dummy hash), creates the
 * session and sets its cookie. Used by api_handle_account. */
void api_auth_login(struct api_auth *auth, const struct api_request *req, struct api_response *res);
/* Verifies the asker's own password (PUT /me/password's "current") against
 * password_hash. A wrong one counts as a failed sign-in of req->actor from
 * req->client, and while either is locked out nothing is verified: a session left
 * open must not be a way to guess the password faster than the sign-in page allows.
 * Returns true to go on; false when res holds the refusal (403, or 429). */
bool api_auth_check_password(struct api_auth *auth, const struct api_request *req, const char *password_hash,
                             const char *password, size_t len, struct api_response *res);
/* Ends the request's session and clears the cookie. */
void api_auth_logout(struct api_auth *auth, const struct api_request *req, struct api_response *res);
/* SHA-256 of a secret as 64 hex digits (+ NUL) into out. */
void api_auth_hash(const char *secret, char out[static 65]);
/* Hashes a new password with argon2id; -EINVAL with a sentence when it is too short
 * or too long (users.c and account.c share the rule). */
int api_password_hash(const char *password, size_t len, char out[static crypto_pwhash_STRBYTES],
                      struct error *err);
/* Ends every session of user but keep_id (NULL: all): on disable, password change. */
int api_auth_end_sessions(const struct api_config *cfg, const char *user, const char *keep_id);

/* ---- the panel's pages, and site logs (panel.c) ---- */

/* Answers a GET/HEAD for one of the panel's embedded files ("/", "/assets/..."),
 * with ETag/If-None-Match, Cache-Control and a strict Content-Security-Policy. */
void api_panel_serve(const struct http1_request *http, struct api_response *res);
/* GET /api/v1/sites/NAME/logs?kind=access|error&lines=N for a site the asker may see
 * (the caller checked). Reads the tail of <site>/logs/<kind>.log beneath the site's
 * directory, bounded. */
void api_handle_site_logs(const struct api_config *cfg, const struct api_request *req,
                          const char *site, struct api_response *res);

/* /api/v1/sites/NAME/keys[/FINGERPRINT] for a site the asker may manage (the caller
 * checked): list, add, remove its SSH keys (keys.c). */
void api_handle_site_keys(const struct api_config *cfg, const struct api_request *req, const char *site,
                          struct api_response *res);

void api_handle_status(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_sites(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* GET /api/v1/php/settings: the PHP settings a site's owner may change, with
 * berth's defaults, what each accepts and a sentence about it (for the panel). */
void api_handle_php(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* POST /api/v1/apply: several site changes made as one, all or nothing (sites.c). */
void api_handle_apply(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_users(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
void api_handle_events(const struct api_config *cfg, const struct api_request *req, struct api_response *res);
/* ---- figures (stats.c) ---- */

/* Writes the member "requests": {"last_minute", "last_hour", "total"} of a site (null
 * when berthd keeps no figures). */
void api_write_site_requests(const struct api_config *cfg, struct json_writer *w, const char *name);
/* GET /api/v1/sites/NAME/stats for a site the asker may see (the caller checked): the
 * last hour, one entry per minute oldest first, and the totals since berthd started. */
void api_handle_site_stats(const struct api_config *cfg, const struct api_request *req, const char *site,
                           struct api_response *res);

/* Writes a site record as a JSON object (the shape `site show --json` prints). */
void api_write_site(const struct api_config *cfg, struct json_writer *w, const struct store_site *site);

/* ---- upload (src/api/upload.c) ---- */

/* PUT /api/v1/sites/NAME/content: the one request whose body is not buffered in
 * memory (the API caps those at 1 MiB) but streamed to an unlinked temp file as it
 * arrives, then unpacked into the site's public/ (src/upload). The connection code
 * (server.c) hands such a request over here after its head, feeds the raw body
 * bytes as they come, and writes the answer this file prepares. */


struct api_upload;
struct upload_limits;

/* The upload limits, with the operator's overrides from the environment
 * (BERTH_UPLOAD_MAX_SIZE, BERTH_UPLOAD_MAX_FILES). Restores use them too. */
void api_upload_limits(struct upload_limits *ret);

/* True when the request head names the upload endpoint, or PUT
 * /api/v1/sites/NAME/restore (a snapshot file sent for a restore) (any method: the wrong one
 * is answered by api_upload_begin, before its body is read). */
bool api_upload_wanted(const struct http1_request *http);
/* Called when the unpacking that api_upload_feed started has ended: then
 * api_upload_answer gives the answer. */
typedef void (*api_upload_done_fn)(void *data);

/* Starts an upload for req (its path already split, its actor decided). Returns 0
 * and the upload in *ret, whose body bytes api_upload_feed then takes; or a negative
 * errno with the error answer in res, sent before the body: the connection must
 * close after it. Copies what it needs from http. on_done(done_data) is called from
 * loop when an unpacking in the background ends. */
int api_upload_begin(const struct api_config *cfg, struct evloop *loop, const struct api_request *req,
                     const struct http1_request *http, struct api_response *res, api_upload_done_fn on_done,
                     void *done_data, struct api_upload **ret);
/* api_upload_feed: the body is complete and a child process unpacks it; feed no more
 * bytes, wait for on_done, then call api_upload_answer. */
#define API_UPLOAD_UNPACKING 2
/* Takes raw body bytes data[0..len) (chunked coding is decoded here, in place).
 * Returns 0 when more are needed (all of them used); API_UPLOAD_UNPACKING when the
 * body is complete and is being unpacked; 1 when res holds the answer (the body was
 * complete and unpacked here, because no child could be started); a negative errno
 * when the request failed and res holds the error (close the connection: the rest
 * of the body is not read). *ret_used is how many bytes of data belonged to this
 * body; bytes after them (the next pipelined request) are left at data[*ret_used..len). */
int api_upload_feed(struct api_upload *u, char *data, size_t len, struct api_response *res, size_t *ret_used);
/* After on_done: records the upload and writes its answer (success or the reason it
 * was refused) into res. Returns 1. */
int api_upload_answer(struct api_upload *u, struct api_response *res);
/* Whether an upload to site is arriving or being unpacked (the site must not be
 * removed under it). */
bool api_upload_busy(const char *site);
/* Whether the connection may stay open after the answer. */
bool api_upload_keep_alive(const struct api_upload *u);
/* Closes the temp file (its data goes with it) and frees u; an unpacking still
 * running is killed (public/ stays as it was). NULL-safe. */
void api_upload_free(struct api_upload *u);

/* ---- snapshots (src/api/archive.c) ----
 *
 *   POST   /api/v1/sites/NAME/archives        {"keep": N, "download": bool}
 *   GET    /api/v1/sites/NAME/archives        newest first
 *   GET    /api/v1/sites/NAME/archives/SNAP   the file
 *   DELETE /api/v1/sites/NAME/archives/SNAP
 *   POST   /api/v1/sites/NAME/restore         {"snapshot": SNAP, "settings": bool}
 *   PUT    /api/v1/sites/NAME/restore?settings=1   the snapshot file as the body
 *                                             (streamed by upload.c)
 *
 * The caller checked that the asker may see site. A snapshot is written, and a
 * restore made, by a forked child (the answer comes when it ends). */
void api_handle_site_archives(const struct api_config *cfg, const struct api_request *req,
                              const struct store_site *site, struct api_response *res);
void api_handle_site_restore(const struct api_config *cfg, const struct api_request *req,
                             const struct store_site *site, struct api_response *res);
/* Whether a snapshot of site is being written (its trees must not be swapped). */
bool api_archive_running(const char *site);
/* An automatic snapshot being made (archive.c), owned by the scheduler (backups.c). */
struct api_archive_job;
typedef void (*api_archive_done_fn)(void *data);
/* Starts an automatic snapshot of site (the same forked writer as POST .../archives,
 * named "-auto", pruned to the site's backup_keep automatic ones) with its pipe
 * watched on loop. at: the scheduler's time, recorded as the run's. Returns 0 with
 * the job in *ret: once it ended and its outcome is recorded (the site's last
 * automatic backup, an audit event, the log), it frees itself and calls
 * done(data). -EBUSY when a snapshot, an upload or a restore of site is under way
 * (nothing recorded: try again later); -ENOENT when the site is gone; -EIO when it
 * could not start, which is recorded as a failed run. */
int api_archive_auto_start(const struct api_config *cfg, struct evloop *loop, const char *site, int64_t at,
                           api_archive_done_fn done, void *data, struct api_archive_job **ret);
/* Whether an automatic snapshot of site is being made. */
bool api_archive_auto_running(const char *site);
/* Kills a job's writer (its unnamed file goes with it: nothing is kept or
 * recorded) and frees it; done is not called. NULL-safe. */
void api_archive_auto_cancel(struct api_archive_job *job);
/* The HTTP status for a snapshot's or a restore's failure code (-EBADMSG 400,
 * -EINVAL 422, -EFBIG 413, -ENOSPC 507...). */
int api_snapshot_status(int code);
/* Appends an audit event about site; the change is made already, so a failure is
 * logged, not answered. */
void api_site_event(const struct api_config *cfg, const char *actor, const char *action, const char *site,
                    const char *detail);

/* ---- restores (src/api/restore.c) ----
 *
 * A restore runs in a forked child: it unpacks the snapshot with the upload's
 * checks, checks the settings, swaps public/ and private/ in (journaled: a kill
 * between the swaps is finished forward) and removes the old trees; berthd then
 * stores the settings and restarts the site. */
struct api_restore;
typedef void (*api_restore_done_fn)(void *data);
/* Starts restoring site from archive_fd (read from its current offset; the child
 * gets its own copy, the caller keeps the fd). actor/admin: who asked; settings:
 * store the snapshot's berth-site.json too. on_done(data) is called once, from the
 * loop, when the answer is ready. NULL with the refusal in res when it cannot start
 * (a restore, a snapshot of the site running: 409). */
struct api_restore *api_restore_start(const struct api_config *cfg, struct evloop *loop, const char *actor,
                                      bool admin, const char *site, int archive_fd, bool settings,
                                      api_restore_done_fn on_done, void *data, struct api_response *res);
/* After on_done: writes the answer into res. */
void api_restore_answer(struct api_restore *r, struct api_response *res);
/* The owner lets go. A restore still running goes on to its end and frees itself
 * (it is never cancelled half-way). NULL-safe. */
void api_restore_release(struct api_restore *r);
/* Whether a restore of site runs (its trees must not be read, replaced or removed). */
bool api_restore_running(const char *site);
/* berthd stops: kills every restore's child (a journaled swap is finished by the
 * next start) and frees the jobs nobody owns. */
void api_restore_stop_all(void);

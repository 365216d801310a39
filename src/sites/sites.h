/* Site lifecycle: the one place that creates, changes and removes sites, keeping the
 * store (the truth) and each site's directory tree in agreement. The API, the CLI's
 * `apply` and berthd's start-up all go through here.
 *
 * Crash safety: a site's tree is built under a staging name, the store row is
 * committed, and only then is the tree renamed into place. Removal deletes the row
 * first, then the tree. sites_reconcile() at start-up finishes or undoes whatever a
 * crash interrupted, from the store's truth: no trace, or a whole site. A batch does
 * the same for several changes in one transaction (sites_batch_begin). */
#pragma once

#include <sys/types.h>

#include "common/buf.h"
#include "common/error.h"
#include "common/evloop.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

struct sites;

struct sites_config {
    const char *state_dir;     /* sites live in <state_dir>/sites/<name> */
    const char *base_domain;   /* default host of site NAME is NAME.<base_domain> */
    uid_t front_uid;           /* the front's workers: read public/, write logs/ */
    gid_t front_gid;
};

/* What changed, for observers (the front's route table, later the supervisor). */
enum sites_change { SITES_CHANGE_UPSERT, SITES_CHANGE_REMOVE };
typedef void (*sites_observer_fn)(void *data, enum sites_change change,
                                  const struct store_site *site);

/* store is borrowed and must outlive the manager. */
int sites_new(struct store *store, const struct sites_config *cfg, struct sites **ret);
void sites_free(struct sites *s);   /* NULL-safe */
/* Called for every successful change, after it is committed. One observer. */
void sites_set_observer(struct sites *s, sites_observer_fn fn, void *data);

/* Brings the disk in line with the store: removes staging, trash and orphan trees,
 * recreates missing site trees and repairs owners and modes of existing ones.
 * Returns the number of repairs made (>= 0). */
int sites_reconcile(struct sites *s, struct error *err);

/* The default host name of a site, "NAME.<base>", into out. */
void sites_default_host(const struct sites *s, const char *name, char *out, size_t n);
/* The host path of a site's directory, "<state>/sites/NAME", into out. */
void sites_dir(const struct sites *s, const char *name, char *out, size_t n);

/* Validates spec, normalises its domains, inserts it (allocating its uid) and
 * creates its tree, atomically. spec->name/type/... are read; id, uid, created_at
 * and domains (normalised) are filled in on success. actor names who asked, for the
 * audit log. */
int sites_create(struct sites *s, struct store_site *spec, const char *actor, struct error *err);
/* Applies changes: `update` is the site as it should be (read it with store_site_get,
 * change fields, pass it back). Validated as create; the name and uid never change. */
int sites_update(struct sites *s, struct store_site *update, const char *actor,
                 const char *what_json, struct error *err);
/* Runs the checks sites_create (create true) or sites_update would run on spec, and
 * changes nothing but the normalisation of spec->domains: the values, the owner, and
 * for a create that the name and its default host are free. Whether another site
 * holds one of the domains is not checked, since a caller planning several changes
 * may free it first. */
int sites_check(struct sites *s, struct store_site *spec, bool create, struct error *err);
/* Records the desired state ("running" or "stopped"). */
int sites_set_desired_state(struct sites *s, const char *name, const char *state,
                            const char *actor, struct error *err);
/* Removes the site from the store, then its tree. Its snapshots (backups/, when
 * not empty) are kept, moved to <state>/removed/NAME-YYYYMMDD-HHMMSS (root's, 0700
 * above them), unless purge; *ret_kept (may be NULL; malloc'd) is where, NULL when
 * nothing was kept. Inside a batch they are always kept (and logged). */
int sites_remove(struct sites *s, const char *name, const char *actor, bool purge, struct error *err,
                 char **ret_kept);

/* Batches: between sites_batch_begin and sites_batch_end, sites_create, sites_update,
 * sites_set_desired_state and sites_remove join one store transaction and see each
 * other's changes. Trees of created sites are staged; nothing is renamed, removed or
 * told to the observer until sites_batch_end(commit true) commits the whole batch:
 * a refusal at any step, or a crash at any point, leaves all of it undone or all of
 * it made (start-up finishes the renames). dry_run: trees are not even staged, and
 * the end always undoes. A site removed in a batch cannot be created again in it. */
int sites_batch_begin(struct sites *s, bool dry_run, struct error *err);
bool sites_batch_active(const struct sites *s);
/* Commits (commit true, no step refused, not a dry run) or undoes the batch. A commit
 * refused by the store undoes it and fails. */
int sites_batch_end(struct sites *s, bool commit, struct error *err);

/* Test hook: when the environment variable BERTH_TEST_CRASH names a point
 * ("site-create:staged", "site-create:stored", "site-rm:stored", "sites-batch:staged",
 * "sites-batch:stored"), berthd kills itself
 * with SIGKILL there, so tests can check crash recovery at each step. */
void sites_crash_point(const char *point);

/* ==== Runtime: running sites' programs (src/sites/runtime.c, exec.c) ==== */

/* Site runtime: runs the program of every site that runs code (type app) in its
 * sandbox, on demand or always on, and supervises it. berthd owns each such site's
 * listening unix socket <run>/sites/<name>.sock (root:<front gid> 0660); the program
 * gets it as fd 3 (LISTEN_FDS=1, LISTEN_PID), so a request that arrives while the
 * sandbox starts waits in the kernel's backlog.
 *
 * States: stopped (desired state stopped: no socket, no sandbox), idle (socket
 * watched, no sandbox: the first connection starts it), starting (waiting out a
 * crash backoff), running, stopping (SIGTERM sent, SIGKILL after a grace period),
 * failed (5 crashes within 60 s; `site start`/`restart` clears it).
 *
 * The design is in docs/internals/sites-runtime.md. Everything runs on berthd's
 * event loop; berthd is single-threaded (sandbox_spawn needs that). Functions return
 * >= 0 or a negative errno; nothing here logs except the supervision itself, which
 * has no caller to report to. */



struct sites_runtime;

/* What the runtime needs from berthd. Everything is borrowed and outlives it. */
struct sites_runtime_config {
    struct evloop *loop;
    struct sites *sites;       /* for the site directories */
    struct store *store;       /* to list sites at start-up */
    const char *run_dir;       /* sockets go to <run_dir>/sites/ */
    const char *cgroup_parent; /* site cgroups: <berthd's cgroup>/<parent>/<site>; NULL:
                                  "berth" for the default run dir /run/berth, else
                                  "berth-<hash of run_dir>" so daemons side by side
                                  (tests) never touch each other's sandboxes */
    uid_t front_uid;           /* owner of the error.log files berthd creates */
    gid_t front_gid;           /* group of the site sockets, so the front can connect */
    const struct sandbox_nat_config *nat;  /* network nat: bridge, subnets, allow-list
                                              (borrowed during sites_runtime_new); NULL:
                                              nat sites are refused */
};

enum sites_runtime_state {
    SITES_RUNTIME_STOPPED,
    SITES_RUNTIME_IDLE,
    SITES_RUNTIME_STARTING,
    SITES_RUNTIME_RUNNING,
    SITES_RUNTIME_STOPPING,
    SITES_RUNTIME_FAILED,
};

/* "stopped", "idle", "starting", "running", "stopping", "failed". */
const char *sites_runtime_state_to_string(enum sites_runtime_state state);

/* A site's runtime status, as `site show` prints it. */
struct sites_runtime_status {
    enum sites_runtime_state state;
    pid_t pid;                 /* host pid of the sandbox's pid 1; 0 when none runs */
    int64_t started_at;        /* unix seconds of the current (or last) start; 0 never */
    unsigned restarts;         /* crash restarts since the last start/restart command */
    int last_exit;             /* exit status of the last sandbox (128+N for signal N);
                                  -1 if none exited yet */
    bool has_usage;            /* usage is valid (a cgroup exists) */
    uint64_t cgroup_serial;    /* changes whenever the site's cgroup is made anew */
    struct sandbox_usage usage;
    char socket_path[108];     /* the site's listening socket */
    char last_error[256];      /* why the last start failed, or "" */
    char last_output[2048];    /* for failed: the last lines of logs/error.log */
};

/* Opens berth's cgroup root (once per berthd) and prepares <run_dir>/sites (0755).
 * Does not start anything: see sites_runtime_start_all. */
int sites_runtime_new(const struct sites_runtime_config *cfg, struct sites_runtime **ret);
/* Stops every sandbox (SIGTERM, SIGKILL after the grace period), removes their
 * cgroups and sockets, and frees the runtime. Blocks up to the grace period. NULL-safe. */
void sites_runtime_free(struct sites_runtime *rt);

/* Start-up: kills and removes leftover cgroups of every site in the store (the
 * sandboxes of a berthd that died), then takes up every site: always-on ones start,
 * on-demand ones get their socket watched. */
int sites_runtime_start_all(struct sites_runtime *rt);

/* Takes a change of the store: a new or changed site is brought in line with its
 * record (desired state, on demand/always on, limits live); a removed one is killed
 * at once and its socket removed. For the sites observer. */
void sites_runtime_site_changed(struct sites_runtime *rt, enum sites_change change,
                                const struct store_site *site);

/* `site start`: clears failed and brings the site to its desired state (call after
 * recording desired state "running"): an always-on site starts, an on-demand one is
 * idle. Errors (e.g. no cmd, a nat bridge that cannot be set up) are described in err. Sites that run no code
 * are accepted and ignored. */
int sites_runtime_start(struct sites_runtime *rt, const char *name, struct error *err);
/* `site restart`: clears failed; a running sandbox is stopped and started again, an
 * always-on one is started, an idle one stays idle. */
int sites_runtime_restart(struct sites_runtime *rt, const char *name, struct error *err);
/* Applies limits live to a running site's cgroup (also kept for its next start). */
/* Whether sites may be given disk limits here: the sites' trees are on a block
 * device and the kernel's io (v1: blkio) controller is there. When not, why (a
 * sentence) goes to why. */
bool sites_runtime_io_limits_available(const struct sites_runtime *rt, char *why, size_t n);
int sites_runtime_set_limits(struct sites_runtime *rt, const char *name,
                             const struct sandbox_limits *limits);
/* The front saw a request for the site: it is not idle. Unknown names are ignored. */
void sites_runtime_note_activity(struct sites_runtime *rt, const char *name);
/* How the site's backend did since the last call: requests it answered and
 * requests it failed (the front's 502/504: refused, broken, silent past the
 * timeout). A running sandbox that fails SITES_BACKEND_FAILURES_MAX requests in a
 * row with none answered (a hung php-fpm, an app that stopped accepting) is
 * restarted: at most once per SITES_BACKEND_RESTART_MIN_MS, and not within its
 * first seconds. Unknown names are ignored. */
void sites_runtime_note_backend(struct sites_runtime *rt, const char *name, uint64_t answered,
                                uint64_t failed);
#define SITES_BACKEND_FAILURES_MAX 3
#define SITES_BACKEND_RESTART_MIN_MS 30000
/* Fills *ret. -ENOENT for a site the runtime does not manage (one that runs no code). */
int sites_runtime_get_status(struct sites_runtime *rt, const char *name,
                             struct sites_runtime_status *ret);

/* For `site exec`: where to run a command of site `name`. *ret_pidfd gets a borrowed
 * pidfd of the running sandbox's pid 1, or -1 when none runs (then the command gets a
 * fresh sandbox). *ret_cgroup is the site's cgroup (borrowed; created if needed).
 * -ENOENT for a site the runtime does not manage. */
int sites_runtime_exec_target(struct sites_runtime *rt, const char *name, int *ret_pidfd,
                              struct sandbox_cgroup **ret_cgroup);
/* The site's settings a fresh exec sandbox needs; strings are borrowed from the
 * runtime and valid until the next change of the site. For network nat the bridge is
 * set up first and *ret_nat (borrowed) names it; -EOPNOTSUPP or the set-up's error
 * when it cannot be. *ret_net_pidfd: for nat, a borrowed pidfd of a live sandbox of
 * the site whose network (the site's one address) the new one must share, else -1. */
int sites_runtime_exec_settings(struct sites_runtime *rt, const char *name, uid_t *ret_uid,
                                enum sandbox_network *ret_network, struct sandbox_nat **ret_nat,
                                const char **ret_site_dir, int *ret_net_pidfd);
/* A fresh nat sandbox for `site exec` started (pidfd: its pid 1, a child of the
 * caller): the runtime keeps a copy, so that the site's next fresh sandboxes share
 * its network while it lives. */
void sites_runtime_exec_started(struct sites_runtime *rt, const char *name, int pidfd);
/* An exec'd process of the site ended (and was reaped): if no sandbox runs, the
 * site's cgroup is removed once nothing else uses it. */
void sites_runtime_exec_done(struct sites_runtime *rt, const char *name);

/* What a session runs (an SFTP login's sftp-server, or its shell). Borrowed. */
struct sites_session {
    const char *const *argv;     /* argv[0]: an absolute path inside the sandbox */
    const char *const *envp;     /* NULL: PATH, HOME=/site, LANG=C.UTF-8 */
    int stdin_fd, stdout_fd, stderr_fd;   /* -1: /dev/null */
    bool controlling_tty;        /* stdin is a pty slave: make it the program's terminal */
};

/* A session's program in the site's sandbox: for a site that runs code as `site
 * exec` does (its running sandbox, else a fresh one); for a static site a fresh
 * sandbox without network in a cgroup of the site's limits, kept while its
 * sessions run. The site's uid, /site, no capabilities, seccomp. ret_pid and
 * ret_pidfd belong to the caller, who calls sites_runtime_session_done once it has
 * reaped the program. err (may be NULL) says which step failed. */
int sites_runtime_session_spawn(struct sites_runtime *rt, const struct store_site *site,
                                const struct sites_session *how, struct sandbox_error *err, pid_t *ret_pid,
                                int *ret_pidfd);
/* A session's program ended and was reaped: a static site's cgroup goes with its
 * last session. */
void sites_runtime_session_done(struct sites_runtime *rt, const char *name);

/* ---- site exec (exec.c) ---- */

/* Flags of the CLI's message (docs/internals/sites-runtime.md). */
#define SITES_EXEC_FLAG_TTY 1u    /* the CLI's stdin is a terminal */
#define SITES_EXEC_FLAG_TERM 2u   /* the string after NAME is the CLI's TERM */

struct sites_exec;

/* Serves `berth site exec` on <run_dir>/exec.sock (0600, root only): the CLI sends
 * the site name, the argv and its own stdin/stdout/stderr (SCM_RIGHTS); berthd runs
 * the command in the site's sandbox and answers with its exit status. The wire
 * format is in docs/internals/sites-runtime.md. rt and loop are borrowed. */
int sites_exec_new(struct evloop *loop, struct sites_runtime *rt, const char *run_dir,
                   struct sites_exec **ret);
/* Kills every running command, closes the socket and unlinks it. NULL-safe. */
void sites_exec_free(struct sites_exec *x);

/* ==== PHP settings and php-fpm configuration (src/sites/php.c) ==== */

/* PHP sites: per-site PHP settings (safe defaults for shared hosting, the keys a
 * site's owner may change and how they are checked) and the php-fpm configuration
 * berthd generates for a site's own php-fpm master and pool.
 *
 * Settings are stored per site as a JSON object of strings (store_site.php_settings,
 * e.g. {"memory_limit":"256M","date.timezone":"Europe/Paris"}). Only allow-listed
 * keys with checked values ever reach it, and the generator checks them again, so
 * no stored text can add a line to the php-fpm configuration.
 *
 * Listening socket: berthd owns the site's unix socket and passes it as fd 3.
 * php-fpm (8.2, checked on Debian's php8.2-fpm) adopts inherited sockets named in
 * the FPM_SOCKETS environment variable, "ADDRESS=FD[,ADDRESS=FD...]": a pool whose
 * `listen` equals ADDRESS accepts on FD without binding or unlinking anything
 * ("using inherited socket fd=3" in its log). ADDRESS is only a key: it need not
 * exist inside the sandbox. See PHP_FPM_LISTEN_KEY and php_fpm_environment(). */



/* The php-fpm binary, as seen inside the sandbox (/usr is bound read-only). */
#define PHP_FPM_BINARY "/usr/sbin/php-fpm8.2"
/* Where the site's generated configuration is bound read-only inside its sandbox
 * (php-fpm.conf in it). */
#define PHP_FPM_CONFIG_DIR "/etc/berth-php"
/* The pool's `listen` value, matched against FPM_SOCKETS; the socket is fd 3. */
#define PHP_FPM_LISTEN_KEY "/run/berth/php-fpm.sock"
/* The environment berthd gives php-fpm: the inherited socket and a PATH. */
#define PHP_FPM_SOCKETS_ENV "FPM_SOCKETS=" PHP_FPM_LISTEN_KEY "=3"

/* Longest key and value accepted in a setting. */
#define PHP_SETTING_KEY_MAX 64
#define PHP_SETTING_VALUE_MAX 64

/* Checks one setting a site's owner asks for (`berth site set NAME --php KEY=VALUE`)
 * and writes its normalised value ("on" -> "On", "256m" -> "256M") into
 * ret_value (PHP_SETTING_VALUE_MAX + 1 bytes). -EINVAL with a sentence in err for an
 * unknown key ("unknown PHP setting \"foo\""), a key berth manages ("PHP setting
 * \"open_basedir\" is managed by berth and cannot be changed") or a bad value
 * ("PHP setting \"memory_limit\" must be a size between 16M and 2G, like 256M"). */
int php_setting_check(const char *key, const char *value, char *ret_value, struct error *err);

/* One key a site's owner may change, for people (the panel, `berth site show`). */
struct php_setting_info {
    const char *key;             /* "memory_limit" */
    const char *default_value;   /* berth's default ("128M"); NULL: PHP's own */
    const char *help;            /* one sentence */
    char accepts[128];           /* "a size between 16M and 2G, like 256M" */
};

/* Fills *ret with the index-th changeable key (a stable order) and returns true;
 * false once index is past the last. */
bool php_setting_info(size_t index, struct php_setting_info *ret);

/* Returns current_json (NULL or "" for none: {}) with key set to value, checked as
 * php_setting_check does, as a new malloc'd JSON object in *ret_json. -EINVAL also
 * when current_json is not an object of strings. */
int php_settings_apply(const char *current_json, const char *key, const char *value,
                       char **ret_json, struct error *err);

/* Returns current_json without key in *ret_json. -ENOENT (with a sentence) when the
 * key is not set; -EINVAL for a bad current_json, and for a key that is unknown or
 * managed by berth (the sentences of php_setting_check), so a typo is never taken
 * for "already at its default". */
int php_settings_remove(const char *current_json, const char *key, char **ret_json,
                        struct error *err);

/* A PHP site's request body limit when post_max_size is not set: what hosting
 * panels commonly give WordPress media uploads. */
#define PHP_DEFAULT_BODY_LIMIT ((uint64_t)64 << 20)

/* The request body limit of a PHP site: its post_max_size setting (the front answers
 * 413 beyond it, so PHP never has to drop a body silently), else
 * PHP_DEFAULT_BODY_LIMIT. settings_json may be NULL. */
uint64_t php_site_body_limit(const char *settings_json);

/* A PHP site's max_execution_time in seconds (its setting, else berth's default of
 * 30): the front answers 504 when a script has said nothing for this long (plus a
 * second), and php-fpm's request_terminate_timeout ends the script 10 s later. */
uint32_t php_site_time_limit(const char *settings_json);

/* A PHP site's pm.max_children (its setting, else berth's default of 5): with the
 * sandbox's reaper and php-fpm's master, the processes its pool may need. */
uint32_t php_site_max_children(const char *settings_json);

/* What the generated configuration depends on. Strings are borrowed. */
struct php_fpm_site {
    const char *name;            /* site name (DNS label): the pool's name */
    uint64_t max_body;           /* the site's request body limit: upload_max_filesize and
                                    post_max_size default to it; 0: 16 MiB */
    const char *settings_json;   /* the site's stored settings; NULL: none */
};

/* Appends the php-fpm configuration for one site to out: a [global] section (no
 * daemon, pid in the sandbox's private /tmp, the master's log on stderr, which
 * berthd appends to the site's logs/error.log) and one pool listening on
 * PHP_FPM_LISTEN_KEY. The pool has no user/group lines: the sandbox already runs
 * php-fpm as the site's uid (php-fpm only switches users when started as root).
 *
 * Managed settings are php_admin_value / php_admin_flag (ini_set cannot undo them):
 * disable_functions, open_basedir (/site/public:/site/private:/site/tmp),
 * allow_url_include Off, expose_php Off, log_errors On with no error_log (so PHP's
 * errors travel in FastCGI STDERR records to the front, which writes them to the
 * site's logs/error.log, never into a page), sessions in /site/tmp/sessions, uploads
 * in /site/tmp/uploads, cgi.fix_pathinfo 1 (see php.c), opcache on with timestamp checks (each
 * site has its own master, so its own opcache). The site's settings and the
 * defaults of the changeable keys are php_value / php_flag; pm.* are pool
 * directives (pm = ondemand by default). request_terminate_timeout follows
 * max_execution_time so a script stuck in I/O ends too.
 *
 * The file written from this text holds the managed settings: it must live outside
 * the site's tree (which the site's user owns and could replace files in), be
 * owned by root and be bound read-only into the sandbox (sandbox ro_binds).
 * -EINVAL with a sentence when a stored setting no longer passes the checks. */
int php_fpm_config_write(const struct php_fpm_site *site, struct buf *out, struct error *err);

/* ==== Usage history: requests, bytes, memory, CPU per site (src/sites/stats.c) ==== */

/* berthd keeps, per site, the last hour as 60 one-minute samples (a ring indexed by
 * the minute), a 60-entry ring of seconds for "requests in the last minute", and
 * totals since the history began (`since`). Requests and bytes come from the front's
 * reports (sums of every worker); memory and CPU from the site's cgroup, sampled by
 * berthd.
 * It lives in memory; berthd saves it to <state_dir>/stats.bin every minute and at
 * shutdown and loads it at start-up, so a restart keeps the hour and the totals (the
 * seconds ring is not saved). Time is passed in by the caller (unix seconds), so the
 * ring is testable without a clock. Not thread-safe; berthd uses it from its event
 * loop only. */

#define SITES_STATS_MINUTES 60

struct sites_stats;

/* Requests answered for a site since the last report (deltas). */
struct sites_stats_requests {
    uint64_t requests;         /* every answer, whatever its status */
    uint64_t status[4];        /* of which 2xx, 3xx, 4xx, 5xx */
    uint64_t bytes;            /* bytes sent to clients (head and body) */
};

/* One minute of a site's history. */
struct sites_stats_minute {
    int64_t time;              /* unix time of the minute's first second */
    uint64_t requests;
    uint64_t errors;           /* 5xx answers */
    uint64_t bytes;
    bool has_memory;           /* a sample was taken in this minute (the site ran) */
    uint64_t memory;           /* highest memory sample of the minute, bytes */
    uint64_t cpu_usec;         /* CPU time the site's cgroup used in this minute */
};

/* What sites_stats_get() reports for a site. */
struct sites_stats_report {
    int64_t since;             /* when the history started (kept across restarts), unix s */
    struct sites_stats_minute minutes[SITES_STATS_MINUTES]; /* oldest first; the last is the current minute */
    uint64_t last_minute;      /* requests in the last 60 seconds */
    uint64_t last_hour;        /* requests in the 60 minutes shown */
    struct sites_stats_requests totals; /* since `since` */
    uint64_t total_cpu_usec;   /* CPU seconds (µs) seen since `since` */
};

/* An empty history that starts at now (unix seconds). */
int sites_stats_new(int64_t now, struct sites_stats **ret);
/* NULL-safe. */
void sites_stats_free(struct sites_stats *st);
/* Adds a report's figures (deltas) for site `name` at time now. -EINVAL for a name
 * that is not a site name, -ENOMEM. */
int sites_stats_add_requests(struct sites_stats *st, const char *name, int64_t now,
                             const struct sites_stats_requests *delta);
/* Records a sample of the site's cgroup at time now. cgroup_id names the cgroup
 * it was read from (sites_runtime_status.cgroup_serial): a sample of another
 * cgroup counts its CPU from zero, as a new cgroup's counter starts there, even
 * when that counter is already past the old one's. usage NULL means no cgroup
 * (the site is not running): the next sample then counts from zero too. Fields
 * equal to SANDBOX_USAGE_UNKNOWN are ignored. -EINVAL for a bad name, -ENOMEM. */
int sites_stats_add_usage(struct sites_stats *st, const char *name, int64_t now,
                          const struct sandbox_usage *usage, uint64_t cgroup_id);
/* Forgets a site (removed, or renamed away). Unknown names are ignored. */
void sites_stats_remove(struct sites_stats *st, const char *name);
/* Fills *ret with the site's history as seen at time now; an unknown site reads as
 * all zeros (it had no requests since `since`). */
void sites_stats_get(const struct sites_stats *st, const char *name, int64_t now,
                     struct sites_stats_report *ret);

/* ---- Persistence: the history in one file (format in docs/internals/sites-runtime.md) ---- */

/* The largest history file read back (about 40,000 busy sites); a bigger one is
 * refused as corrupt rather than read into memory. */
#define SITES_STATS_FILE_MAX ((size_t)128 << 20)

/* Whether the history changed since it was created, loaded or last saved: a timer
 * need not rewrite an unchanged file. */
bool sites_stats_dirty(const struct sites_stats *st);
/* Appends the whole history (minute slots that hold anything, totals, since; not
 * the seconds ring) to out in the stats.bin format. -ENOBUFS past out's max, -ENOMEM. */
int sites_stats_encode(const struct sites_stats *st, struct buf *out);
/* Decides whether a loaded site's record is kept (berthd: the site still exists).
 * name is borrowed for the call. */
typedef bool (*sites_stats_keep_fn)(void *data, const char *name);
/* Replaces st's history with the one encoded in data[0..len), as seen at time now:
 * minutes older than the hour ending at now, and minutes after now (a clock that
 * went back), are dropped; records keep() refuses are skipped (keep NULL: all
 * kept). The bytes are untrusted: anything inconsistent (magic, checksum, a length
 * or count past the data, a bad name, a name twice, two slots of one ring entry)
 * refuses the whole input with -EBADMSG, an unknown version with -EPROTONOSUPPORT,
 * and st is then left untouched. Returns the number of sites kept. */
int sites_stats_decode(struct sites_stats *st, const void *data, size_t len, int64_t now,
                       sites_stats_keep_fn keep, void *keep_data);
/* Writes the history to path atomically (<path>.tmp, fsync, rename over path,
 * fsync of the directory), mode 0600, and marks it clean. One writer per path.
 * -errno. */
int sites_stats_save(struct sites_stats *st, const char *path);
/* sites_stats_decode() of the file at path. A missing file is no history: 0.
 * -EBADMSG also for a file larger than SITES_STATS_FILE_MAX; -errno on I/O. */
int sites_stats_load(struct sites_stats *st, const char *path, int64_t now,
                     sites_stats_keep_fn keep, void *keep_data);

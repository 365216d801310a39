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
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/evloop.h"
#include "sandbox/sandbox.h"
#include "sites/sites.h"
#include "store/store.h"

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
 * idle. Errors (e.g. network nat, no cmd) are described in err. Sites that run no code
 * are accepted and ignored. */
int sites_runtime_start(struct sites_runtime *rt, const char *name, struct error *err);
/* `site restart`: clears failed; a running sandbox is stopped and started again, an
 * always-on one is started, an idle one stays idle. */
int sites_runtime_restart(struct sites_runtime *rt, const char *name, struct error *err);
/* Applies limits live to a running site's cgroup (also kept for its next start). */
int sites_runtime_set_limits(struct sites_runtime *rt, const char *name,
                             const struct sandbox_limits *limits);
/* The front saw a request for the site: it is not idle. Unknown names are ignored. */
void sites_runtime_note_activity(struct sites_runtime *rt, const char *name);
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
 * runtime and valid until the next change of the site. */
int sites_runtime_exec_settings(struct sites_runtime *rt, const char *name, uid_t *ret_uid,
                                enum sandbox_network *ret_network, const char **ret_site_dir);
/* An exec'd process of the site ended: if no sandbox runs, the site's cgroup is
 * removed once nothing else uses it. */
void sites_runtime_exec_done(struct sites_runtime *rt, const char *name);

/* ---- site exec (exec.c) ---- */

struct sites_exec;

/* Serves `berth site exec` on <run_dir>/exec.sock (0600, root only): the CLI sends
 * the site name, the argv and its own stdin/stdout/stderr (SCM_RIGHTS); berthd runs
 * the command in the site's sandbox and answers with its exit status. The wire
 * format is in docs/internals/sites-runtime.md. rt and loop are borrowed. */
int sites_exec_new(struct evloop *loop, struct sites_runtime *rt, const char *run_dir,
                   struct sites_exec **ret);
/* Kills every running command, closes the socket and unlinks it. NULL-safe. */
void sites_exec_free(struct sites_exec *x);

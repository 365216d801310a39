/* berthd's JSON API: HTTP/1.1 on a unix socket, versioned under /api/v1/. The CLI
 * and (through the front) the panel both use it. A peer connecting as root over the
 * socket is an admin acting as "root".
 *
 *   GET    /api/v1/status
 *   GET    /api/v1/sites                     POST /api/v1/sites
 *   GET    /api/v1/sites/NAME                PATCH /api/v1/sites/NAME
 *   DELETE /api/v1/sites/NAME
 *   POST   /api/v1/sites/NAME/start|stop|restart
 *   GET    /api/v1/users                     POST /api/v1/users
 *   DELETE /api/v1/users/NAME                PUT  /api/v1/users/NAME/password
 *   GET    /api/v1/events?limit=N&before=ID&target=NAME
 *   GET    /api/v1/sites/NAME/logs?kind=access|error&lines=N
 *   GET    /api/v1/sites/NAME/stats          the last hour, minute by minute, and totals
 *   PATCH  /api/v1/users/NAME {disabled}
 *   POST   /api/v1/login {name, password}     POST /api/v1/logout
 *   GET    /api/v1/me                        PUT  /api/v1/me/password {current, new}
 *   GET    /api/v1/tokens                    POST /api/v1/tokens {name[, user]}
 *   DELETE /api/v1/tokens/ID
 *   GET    /api/v1/sites/NAME/archives       POST /api/v1/sites/NAME/archives {keep, download}
 *   GET    /api/v1/sites/NAME/archives/SNAP  DELETE /api/v1/sites/NAME/archives/SNAP
 *   POST   /api/v1/sites/NAME/restore {snapshot, settings}
 *   PUT    /api/v1/sites/NAME/restore?settings=1   (a snapshot file as the body)
 *   GET    /api/v1/sites/NAME/keys           POST /api/v1/sites/NAME/keys {key}
 *   DELETE /api/v1/sites/NAME/keys/FPR       (SFTP keys; FPR URL-safe: '_' '-' for '/' '+')
 *
 * Two kinds of socket serve it (enum api_auth_mode): api.sock, where a root peer is
 * the admin "root" and nobody else gets in; and panel.sock, where the peer is the
 * front and identity comes from the request: a session cookie (set by login) or a
 * bearer token. panel.sock also serves the panel's pages at / (src/panel). A user
 * who is not an admin sees only the sites they own: any other is a 404.
 *
 * Answers are JSON. Failures are {"error": {"status": N, "message": "..."}} with the
 * HTTP status: 400 bad input, 403, 404 unknown, 405, 409 conflict, 413, 500. */
#pragma once

#include "common/evloop.h"
#include "sites/sites.h"
#include "store/store.h"

struct api_ssh_broker;

/* One listening socket of berthd, as `berth status` shows it. */
struct api_listener {
    const char *kind;        /* "http", "https", "ssh" */
    const char *requested;   /* as configured, e.g. "127.0.0.1:0" */
    const char *address;     /* as bound, with the real port, e.g. "127.0.0.1:41234" */
};

/* Who a socket's peers are. */
enum api_auth_mode {
    API_AUTH_PEER_ROOT,   /* api.sock: mode 0600, a root peer is the admin "root" */
    API_AUTH_PANEL,       /* panel.sock: mode 0660 root:socket_gid; cookie or bearer token,
                             client address from the front's X-Forwarded-For */
};

/* What the API needs from berthd. Everything is borrowed and outlives the server. */
struct api_config {
    const char *socket_path;
    struct store *store;
    struct sites *sites;
    struct sites_runtime *runtime;   /* NULL when sandboxes are unavailable (not root) */
    struct sites_stats *stats;       /* requests and usage history; NULL: none kept */
    const char *version;
    const char *state_dir;
    const char *run_dir;
    const char *base_domain;
    const char *tls_ca;              /* the local CA's certificate (PEM file), shown by status */
    const struct api_listener *listeners;
    size_t n_listeners;
    int64_t started_at;
    enum api_auth_mode auth;         /* zero (API_AUTH_PEER_ROOT) for api.sock */
    gid_t socket_gid;                /* API_AUTH_PANEL: the socket's group (the front's) */
    /* The most a user who is not an admin may give one of their sites; 0: no ceiling. */
    uint64_t user_max_memory;
    uint32_t user_max_cpu_millis, user_max_pids;
    uint32_t user_max_sites;         /* sites a user who is not an admin may own; 0: no limit */
    struct api_ssh_broker *ssh_broker; /* SFTP logins; NULL: no ssh front */
    const char *ssh_fingerprint;     /* the ssh host key's "SHA256:...", shown by status; NULL: none */
};

struct api_server;

/* Binds socket_path (mode 0600, or 0660 root:socket_gid for the panel; a stale socket
 * is replaced, a live one is -EADDRINUSE) and serves it on loop. */
int api_server_new(struct evloop *loop, const struct api_config *cfg, struct api_server **ret);
/* Closes every connection and the socket, and unlinks it. NULL-safe. */
void api_server_free(struct api_server *server);

/* ---- automatic backups (backups.c) ----
 * berthd looks every minute for sites whose scheduled backup is due
 * (snapshot_schedule_due: daily or weekly at an hour, UTC; a run missed while
 * berthd was down is due once) and makes them one at a time, most overdue first,
 * through the same forked writer as `site archive`. */
struct api_backups;

/* Starts looking on loop. cfg is copied; what it points to is borrowed and
 * outlives it. Test hooks, read once:
 * BERTH_TEST_BACKUP_TICK_MS (how often to look; default a minute) and
 * BERTH_TEST_BACKUP_CLOCK_FILE (a file holding the unix time the scheduler takes
 * as now, read at each look). */
int api_backups_new(struct evloop *loop, const struct api_config *cfg, struct api_backups **ret);
/* Stops looking; a backup being made is cancelled (its unnamed file goes, nothing is
 * recorded, and it is due again at the next start). NULL-safe. */
void api_backups_free(struct api_backups *b);

/* ---- the SFTP broker (ssh-broker.c) ----
 * berthd's side of each ssh connection: the connection's child asks, over its own
 * SOCK_SEQPACKET socket (src/ssh/ssh.h's messages), whether a key or a password may
 * log in as a site, and for the site's sftp-server; the broker decides from the
 * store, throttles failed logins per client address, logs and audits logins, and
 * starts sftp-server in the site's sandbox (sites_runtime_session_spawn). */
struct api_ssh_broker;

/* store and runtime (NULL: no sandboxes, every session refused) are borrowed. */
int api_ssh_broker_new(struct evloop *loop, struct store *store, struct sites_runtime *runtime,
                       struct api_ssh_broker **ret);
/* A new connection (an ssh_conn_fn: data is the broker): takes ownership of fd. */
void api_ssh_broker_conn(void *broker, int fd, const char *address);
/* Ends the sessions logged in to site (with the key of this fingerprint only, or
 * all when NULL): their sftp-server is killed and their connection closed. Returns
 * how many ended. */
unsigned api_ssh_broker_end_sessions(struct api_ssh_broker *b, const char *site, const char *fingerprint);
/* Ends every session. NULL-safe. */
void api_ssh_broker_free(struct api_ssh_broker *b);

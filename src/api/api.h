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
 *
 * Answers are JSON. Failures are {"error": {"status": N, "message": "..."}} with the
 * HTTP status: 400 bad input, 403, 404 unknown, 405, 409 conflict, 413, 500. */
#pragma once

#include "common/evloop.h"
#include "sites/sites.h"
#include "store/store.h"

/* One listening socket of berthd, as `berth status` shows it. */
struct api_listener {
    const char *kind;        /* "http", "https", "ssh" */
    const char *requested;   /* as configured, e.g. "127.0.0.1:0" */
    const char *address;     /* as bound, with the real port, e.g. "127.0.0.1:41234" */
};

/* What the API needs from berthd. Everything is borrowed and outlives the server. */
struct api_config {
    const char *socket_path;
    struct store *store;
    struct sites *sites;
    const char *version;
    const char *state_dir;
    const char *run_dir;
    const char *base_domain;
    const struct api_listener *listeners;
    size_t n_listeners;
    int64_t started_at;
};

struct api_server;

/* Binds socket_path (mode 0600; a stale socket is replaced, a live one is -EADDRINUSE)
 * and serves it on loop. */
int api_server_new(struct evloop *loop, const struct api_config *cfg, struct api_server **ret);
/* Closes every connection and the socket, and unlinks it. NULL-safe. */
void api_server_free(struct api_server *server);

/* berth's store: users, sites, domains, certificates, events (the audit log). SQLite in WAL mode
 * with numbered migrations applied at open. Every caller goes through this header so
 * that another back end (PostgreSQL, for several nodes sharing state) can replace
 * the SQLite one without touching them.
 *
 * Strings in records are owned by the record and freed by its _done() function.
 * Functions return 0 (or a positive count) on success and a negative errno on
 * failure; store_errmsg() then says what the database said, for the caller's log. */
#pragma once

#include "common/util.h"

struct store;

/* The schema version this build knows. */
#define STORE_SCHEMA_VERSION 6

/* Opens (creating if missing) the store at path, sets WAL mode, foreign keys and a
 * busy timeout, and applies pending migrations in one transaction each. Returns
 * -EPROTONOSUPPORT if the file's schema is newer than this build knows (the file is
 * not touched; *ret_found_version says which), -EIO/-ENOTSUP... on other failures.
 * On success *ret_found_version (may be NULL) is the version the file had before
 * migrating (0 for a new file). The database fds are O_CLOEXEC. */
int store_open(const char *path, struct store **ret, int *ret_found_version);
/* Closes the store; an open transaction is rolled back. NULL-safe. */
void store_close(struct store *s);
/* What the database (or the store) said about the last failure; valid until the next
 * call on s. Meant for the caller's log line, not for users. */
const char *store_errmsg(struct store *s);
/* The schema version of the open file (STORE_SCHEMA_VERSION once open succeeded). */
int store_schema_version(struct store *s);

/* Sets the range site uids/gids are allocated from (inclusive). Default 200000..299999.
 * Not stored: berthd sets it after every open. */
void store_set_uid_range(struct store *s, uint32_t first, uint32_t last);
/* Asks fn before a uid is handed to a new site; a uid it answers false for (an id a
 * host account holds) is passed over as if a site held it. NULL: every free uid. */
typedef bool (*store_uid_usable_fn)(uint32_t uid, void *data);
void store_set_uid_usable(struct store *s, store_uid_usable_fn fn, void *data);

/* Transactions nest by counting: only the outermost commit/rollback reaches the
 * database. Rollback of an inner one poisons the outer one (its commit fails).
 * store_begin takes the write lock at once (BEGIN IMMEDIATE). store_commit always
 * ends its level: when it fails (-ECANCELED for a poisoned transaction, or the
 * database's error) the outermost level has been rolled back, so the caller must not
 * call store_rollback after it. The store_*_insert/update/delete functions join an
 * open transaction; one that fails poisons it. */
int store_begin(struct store *s);
/* Ends one level; see above. -EINVAL without a transaction. */
int store_commit(struct store *s);
/* Ends one level, rolling back if it was the outermost. No-op without a transaction. */
void store_rollback(struct store *s);

/* ---- users ---- */

struct store_user {
    int64_t id;
    char *name;
    char *password_hash;   /* argon2id string from libsodium */
    bool admin;
    bool disabled;
    int64_t created_at;    /* unix seconds */
};

/* Adds an enabled user; *ret_id (may be NULL) gets its id. -EEXIST if the name is
 * taken. The store does not validate the name: callers use user_name_valid(). */
int store_user_insert(struct store *s, const char *name, const char *password_hash,
                      bool admin, int64_t *ret_id);
/* Fills *ret (free with store_user_done). -ENOENT if missing. */
int store_user_get(struct store *s, const char *name, struct store_user *ret);
/* All users ordered by name (free with store_user_list_free). */
int store_user_list(struct store *s, struct store_user **ret, size_t *ret_n);
/* Replaces the password hash. -ENOENT if missing. */
int store_user_set_password(struct store *s, const char *name, const char *password_hash);
/* Disables or enables the account. -ENOENT if missing. */
int store_user_set_disabled(struct store *s, const char *name, bool disabled);
/* -ENOENT if missing, -EBUSY if the user still owns sites. */
int store_user_delete(struct store *s, const char *name);
/* How many users there are. */
int store_user_count(struct store *s, size_t *ret);
/* Frees the strings of u and zeroes it. NULL-safe. */
void store_user_done(struct store_user *u);
/* Frees a list from store_user_list. NULL-safe. */
void store_user_list_free(struct store_user *list, size_t n);

/* ---- sites ---- */

/* How often a site's automatic backup runs (UTC). */
enum store_backup_every {
    STORE_BACKUP_OFF,      /* no automatic backups (the default) */
    STORE_BACKUP_DAILY,    /* every day at backup_hour */
    STORE_BACKUP_WEEKLY,   /* every Sunday at backup_hour */
};

/* A schedule's bounds and defaults (the schema checks the bounds). */
#define STORE_BACKUP_KEEP_MAX 1000
#define STORE_BACKUP_KEEP_DEFAULT 7
#define STORE_BACKUP_HOUR_DEFAULT 3

/* "off", "daily", "weekly"; NULL for a value out of the enum. */
const char *store_backup_every_to_string(enum store_backup_every every);
/* The enum of "off", "daily", "weekly"; STORE_BACKUP_OFF for anything else. */
enum store_backup_every store_backup_every_from_string(const char *s);
/* Whether s is one of "off", "daily", "weekly". */
bool store_backup_every_valid(const char *s);

struct store_site {
    int64_t id;
    char *name;
    char *type;            /* "static", "php", "app" */
    char *owner;           /* user name, or NULL for none (admin-managed) */
    uint32_t uid;          /* also the gid; allocated by store_site_insert */
    char *cmd;             /* app command line, or NULL */
    uint64_t memory_max;   /* bytes, 0 = unlimited */
    uint32_t cpu_millis;   /* thousandths of a CPU, 0 = unlimited */
    uint32_t pids_max;     /* 0 = unlimited */
    uint64_t io_read_bps;  /* disk reads, bytes per second, 0 = unlimited */
    uint64_t io_write_bps; /* disk writes, bytes per second, 0 = unlimited */
    char *network;         /* "none", "nat", "host" */
    bool always_on;
    uint32_t idle_seconds; /* stop after this long without requests (on-demand sites) */
    char *desired_state;   /* "running" or "stopped" */
    char *php_settings;    /* JSON object of KEY: VALUE strings, or NULL */
    int64_t created_at, updated_at;
    enum store_backup_every backup_every;
    uint32_t backup_hour;  /* 0-23, UTC */
    uint32_t backup_keep;  /* automatic snapshots kept, 1-1000 */
    int64_t backup_since;  /* when backup_every or backup_hour last changed: set by the store */
    char **domains;        /* extra domains (the default NAME.<base> is implied), sorted */
    size_t n_domains;
};

/* Inserts site with its domains in one transaction, allocating a uid that no site
 * holds and none has held since (a counter in the store, wrapping to the lowest free
 * one when the range is used up). Sets site->id, site->uid, created_at, updated_at.
 * -EEXIST if the name is taken; -EADDRINUSE if one of the domains belongs to another
 * site (*ret_conflict, if not NULL, gets a malloc'd copy of that domain); -ENOSPC if
 * the uid range is exhausted. Also -ENXIO if owner names no user, -EINVAL if type,
 * network or desired_state is NULL or not one of its values, php_settings is not
 * JSON, memory_max is above INT64_MAX, or a domain is not lowercase (pass names
 * through domain_normalize()). A domain listed twice is stored once. Nothing of a
 * failed insert remains. */
int store_site_insert(struct store *s, struct store_site *site, char **ret_conflict);
/* Fills *ret (free with store_site_done). -ENOENT if missing. */
int store_site_get(struct store *s, const char *name, struct store_site *ret);
/* All sites ordered by name; owner NULL lists everyone's (free with
 * store_site_list_free). */
int store_site_list(struct store *s, const char *owner, struct store_site **ret, size_t *ret_n);
/* Updates every mutable field (type, owner, cmd, limits, network, always_on,
 * idle_seconds, desired_state, php_settings, the backup schedule) and replaces the
 * domain set, bumping updated_at (and backup_since when the cadence or the hour
 * changes). The name, id and uid never change; site->id, uid, created_at and
 * updated_at are set from the store. -ENOENT, -EADDRINUSE, -ENXIO, -EINVAL as insert;
 * all or nothing. */
int store_site_update(struct store *s, struct store_site *site, char **ret_conflict);
/* Deletes the site, its domains, its certificate and its SSH keys. -ENOENT if missing. */
int store_site_delete(struct store *s, const char *name);
/* Which site a domain belongs to: 0 and a malloc'd site name, or -ENOENT. */
int store_domain_lookup(struct store *s, const char *domain, char **ret_site);
/* How many sites there are. */
int store_site_count(struct store *s, size_t *ret);
/* Frees the strings and domains of site and zeroes it. NULL-safe. */
void store_site_done(struct store_site *site);
/* Frees a list from store_site_list. NULL-safe. */
void store_site_list_free(struct store_site *list, size_t n);

/* ---- automatic backups (store-backups.c) ---- */

/* The outcome of a site's last automatic backup. */
struct store_backup_run {
    int64_t at;            /* when it started, unix seconds */
    bool ok;
    char *snapshot;        /* the snapshot made (ok), or NULL */
    char *error;           /* why it failed (not ok), or NULL */
};

/* Fills *ret (free with store_backup_run_done). -ENOENT if the site has had none
 * (or there is no such site). */
int store_backup_run_get(struct store *s, const char *site, struct store_backup_run *ret);
/* Records run as site's last automatic backup, replacing the one before. -ENOENT if
 * there is no such site. It goes with its site. */
int store_backup_run_put(struct store *s, const char *site, const struct store_backup_run *run);
/* Frees the strings of run and zeroes it. NULL-safe. */
void store_backup_run_done(struct store_backup_run *run);

/* A site with a backup schedule, as the scheduler needs it. */
struct store_backup_schedule {
    char name[64];
    enum store_backup_every every;
    uint32_t hour, keep;
    int64_t since;         /* backup_since */
    int64_t last_at;       /* the last automatic backup's start; 0: none yet */
};

/* The sites whose backup_every is not off, ordered by name. *ret is malloc'd
 * (free() it); NULL with n 0 when there are none. */
int store_backup_schedule_list(struct store *s, struct store_backup_schedule **ret, size_t *ret_n);

/* ---- events (audit log) ---- */

struct store_event {
    int64_t id;
    int64_t at;            /* unix seconds */
    char *actor;           /* "root" (API socket), a user name, or "berthd" */
    char *action;          /* "site.create", "user.passwd", ... */
    char *target;          /* what it acted on ("blog"), may be NULL */
    char *detail;          /* JSON object with the change, may be NULL */
};

/* The most events one store_event_list call returns, whatever limit says. */
#define STORE_EVENT_LIST_MAX 1000

/* Appends an event stamped with the current time. -EINVAL if detail_json is not
 * JSON. Event ids only grow, and are never reused. */
int store_event_append(struct store *s, const char *actor, const char *action,
                       const char *target, const char *detail_json);
/* Newest first: events with id < before_id (0 = from the newest), at most limit
 * (capped at STORE_EVENT_LIST_MAX); target non-NULL restricts to one target. To page,
 * pass the id of the last event of one page as before_id of the next. */
int store_event_list(struct store *s, int64_t before_id, size_t limit, const char *target,
                     struct store_event **ret, size_t *ret_n);
/* Frees a list from store_event_list. NULL-safe. */
void store_event_list_free(struct store_event *list, size_t n);

/* ---- sessions and API tokens ----
 * Secrets never reach the store: a session's id and a token's hash are the SHA-256
 * (64 lowercase hex digits) of what the client holds, computed by the caller. */

struct store_session {
    char *id;              /* SHA-256 hex of the cookie's value */
    char *user;
    int64_t created_at;    /* unix seconds */
    int64_t expires_at;    /* absolute end, whatever the activity */
    int64_t last_seen;     /* for the idle limit, which the caller enforces */
    char *csrf;            /* the token state-changing requests must echo */
    char *client;          /* client address at sign-in, may be NULL */
};

/* Adds a session (every field but client is required). -ENXIO if the user does not
 * exist, -EEXIST for an id already in use. */
int store_session_insert(struct store *s, const struct store_session *session);
/* Fills *ret (free with store_session_done). -ENOENT if missing. */
int store_session_get(struct store *s, const char *id, struct store_session *ret);
/* Sets last_seen. -ENOENT if missing. */
int store_session_touch(struct store *s, const char *id, int64_t last_seen);
/* Ends one session. -ENOENT if missing. */
int store_session_delete(struct store *s, const char *id);
/* Ends every session of user except keep_id (NULL: all). Returns how many ended. */
int store_session_delete_user(struct store *s, const char *user, const char *keep_id);
/* Removes sessions past expires_at or idle since before idle_before. Returns how many. */
int store_session_prune(struct store *s, int64_t now, int64_t idle_before);
/* Frees the strings of session and zeroes it. NULL-safe. */
void store_session_done(struct store_session *session);

struct store_token {
    int64_t id;
    char *user;
    char *name;            /* what the user called it ("deploy from CI") */
    int64_t created_at;
    int64_t last_used;     /* 0: never */
    bool revoked;
};

/* Adds a token for user; *ret_id (may be NULL) gets its id. -ENXIO if the user does
 * not exist, -EEXIST if the hash is taken. */
int store_token_insert(struct store *s, const char *user, const char *name, const char *hash,
                       int64_t *ret_id);
/* The token whose hash is hash, revoked or not (the caller decides). -ENOENT. */
int store_token_find(struct store *s, const char *hash, struct store_token *ret);
/* Tokens of user (NULL: everyone's), oldest first (free with store_token_list_free). */
int store_token_list(struct store *s, const char *user, struct store_token **ret, size_t *ret_n);
/* One token by id. -ENOENT if missing. */
int store_token_get(struct store *s, int64_t id, struct store_token *ret);
/* Marks a token revoked (it stays listed so its use can be audited). -ENOENT. */
int store_token_revoke(struct store *s, int64_t id);
/* Sets last_used. */
int store_token_touch(struct store *s, int64_t id, int64_t at);
/* Frees the strings of token and zeroes it. NULL-safe. */
void store_token_done(struct store_token *token);
/* Frees a list from store_token_list. NULL-safe. */
void store_token_list_free(struct store_token *list, size_t n);

/* ---- certificates ----
 * One HTTPS certificate per site, with its private key: the database file is 0600. */

struct store_certificate {
    char *hosts;           /* the names it covers: sorted, joined by '\n' */
    char *cert_pem;        /* the certificate, then its chain */
    char *key_pem;         /* its private key */
    int64_t not_after;     /* unix seconds */
    char *issuer;          /* who signed it: "local" (berth's CA); NULL on put means "local" */
    int64_t updated_at;    /* set by the store on put */
};

/* Fills *ret with site's certificate (free with store_certificate_done). -ENOENT if
 * the site has none (or there is no such site). */
int store_certificate_get(struct store *s, const char *site, struct store_certificate *ret);
/* The same without the PEM (cert_pem and key_pem stay NULL): what a listing shows,
 * with no key material copied out of the database. */
int store_certificate_summary_get(struct store *s, const char *site, struct store_certificate *ret);
/* Sets or replaces site's certificate. -ENOENT if there is no such site, -EINVAL if
 * hosts, cert_pem or key_pem is NULL or empty. A certificate goes with its site
 * (store_site_delete). */
int store_certificate_put(struct store *s, const char *site, const struct store_certificate *cert);
/* Removes site's certificate. -ENOENT if it has none. */
int store_certificate_delete(struct store *s, const char *site);
/* Frees the strings of cert (wiping the key) and zeroes it. NULL-safe. */
void store_certificate_done(struct store_certificate *cert);

/* ---- SSH keys of sites (SFTP logins) ----
 * Checked and fingerprinted by the caller (ssh_pubkey_parse); the store keeps them. */

struct store_site_key {
    char *algorithm;       /* "ssh-ed25519", ... */
    char *key;             /* the blob, base64 */
    char *fingerprint;     /* "SHA256:..." */
    char *comment;         /* "" when none */
    int64_t created_at;
};

/* Adds a key to site. -ENOENT if there is no such site, -EEXIST if the site has a
 * key with this fingerprint already. */
int store_site_key_insert(struct store *s, const char *site, const struct store_site_key *key);
/* The site's keys, oldest first (free with store_site_key_list_free). An unknown
 * site has none. */
int store_site_key_list(struct store *s, const char *site, struct store_site_key **ret, size_t *ret_n);
/* 0 if site has a key with this fingerprint, -ENOENT if not. */
int store_site_key_find(struct store *s, const char *site, const char *fingerprint);
/* Removes it. -ENOENT if the site has no key with this fingerprint. */
int store_site_key_delete(struct store *s, const char *site, const char *fingerprint);
/* Frees a list from store_site_key_list. NULL-safe. */
void store_site_key_list_free(struct store_site_key *list, size_t n);

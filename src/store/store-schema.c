/* The schema as numbered migrations. Never edit a migration that has shipped: add the
 * next one. A migration runs in its own transaction with foreign keys off (so that it
 * may rebuild a table the way sqlite's ALTER TABLE documentation describes) and is
 * checked with PRAGMA foreign_key_check before it commits.
 *
 * Tables are STRICT so that a value of the wrong type is refused instead of being
 * stored as whatever sqlite's type affinity makes of it. */
#include "store/store-internal.h"

static const char migration_1[] =
    "CREATE TABLE users (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE CHECK (name <> ''),\n"
    "  password_hash TEXT NOT NULL,\n"
    "  admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),\n"
    "  disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),\n"
    "  created_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    "CREATE TABLE sites (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),\n"
    "  type TEXT NOT NULL CHECK (type IN ('static', 'php', 'app')),\n"
    "  owner TEXT REFERENCES users(name) ON DELETE RESTRICT,\n"
    "  uid INTEGER NOT NULL UNIQUE CHECK (uid > 0),\n"
    "  cmd TEXT,\n"
    "  memory_max INTEGER NOT NULL DEFAULT 0 CHECK (memory_max >= 0),\n"
    "  cpu_millis INTEGER NOT NULL DEFAULT 0 CHECK (cpu_millis >= 0),\n"
    "  pids_max INTEGER NOT NULL DEFAULT 0 CHECK (pids_max >= 0),\n"
    "  network TEXT NOT NULL DEFAULT 'none' CHECK (network IN ('none', 'nat', 'host')),\n"
    "  always_on INTEGER NOT NULL DEFAULT 0 CHECK (always_on IN (0, 1)),\n"
    "  idle_seconds INTEGER NOT NULL DEFAULT 0 CHECK (idle_seconds >= 0),\n"
    "  desired_state TEXT NOT NULL DEFAULT 'stopped'\n"
    "    CHECK (desired_state IN ('running', 'stopped')),\n"
    "  php_settings TEXT CHECK (php_settings IS NULL OR json_valid(php_settings)),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL\n"
    ") STRICT;\n"
    /* Without it every user delete scans sites to enforce RESTRICT. */
    "CREATE INDEX sites_owner ON sites(owner);\n"
    /* Lowercase only: the front matches host names case-insensitively, so two rows
     * differing in case would let two sites claim one host. */
    "CREATE TABLE domains (\n"
    "  domain TEXT PRIMARY KEY CHECK (domain <> '' AND domain = lower(domain)),\n"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE\n"
    ") STRICT;\n"
    "CREATE INDEX domains_site ON domains(site_id, domain);\n"
    /* AUTOINCREMENT: ids are never reused, even after old events are pruned, so a
     * client paging with before_id never sees an event twice. */
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  at INTEGER NOT NULL,\n"
    "  actor TEXT NOT NULL,\n"
    "  action TEXT NOT NULL,\n"
    "  target TEXT,\n"
    "  detail TEXT CHECK (detail IS NULL OR json_valid(detail))\n"
    ") STRICT;\n"
    "CREATE INDEX events_target ON events(target, id);\n"
    /* next_uid: the next site uid to hand out (see store-sites.c). */
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value ANY\n"
    ") STRICT;\n";

/* Browser sessions and API tokens. Neither is ever stored in clear: the id of a
 * session and the hash of a token are the SHA-256 (hex) of the secret the client
 * holds, so a copy of the database does not let anyone in. Both go with their user.
 * Login throttling is kept in berthd's memory, not here (see src/api/auth.c). */
static const char migration_2[] =
    "CREATE TABLE sessions (\n"
    "  id TEXT PRIMARY KEY CHECK (length(id) = 64),\n"
    "  user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  expires_at INTEGER NOT NULL,\n"
    "  last_seen INTEGER NOT NULL,\n"
    "  csrf TEXT NOT NULL,\n"
    "  client TEXT\n"
    ") STRICT;\n"
    "CREATE INDEX sessions_user ON sessions(user);\n"
    "CREATE TABLE api_tokens (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),\n"
    "  hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_used INTEGER,\n"
    "  revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))\n"
    ") STRICT;\n"
    "CREATE INDEX api_tokens_user ON api_tokens(user, id);\n";

/* One certificate per site, covering the site's host names at the time it was
 * issued (hosts: sorted, newline-joined, compared by berthd with the site's current
 * ones). It goes with its site. The table holds private keys: the file is 0600.
 * issuer says who signed it ('local': berth's own CA), leaving room for ACME. */
static const char migration_3[] =
    "CREATE TABLE certificates (\n"
    "  site_id INTEGER PRIMARY KEY REFERENCES sites(id) ON DELETE CASCADE,\n"
    "  hosts TEXT NOT NULL CHECK (hosts <> ''),\n"
    "  cert_pem TEXT NOT NULL CHECK (cert_pem <> ''),\n"
    "  key_pem TEXT NOT NULL CHECK (key_pem <> ''),\n"
    "  not_after INTEGER NOT NULL,\n"
    "  issuer TEXT NOT NULL DEFAULT 'local' CHECK (issuer <> ''),\n"
    "  updated_at INTEGER NOT NULL\n"
    ") STRICT;\n";

/* Disk bandwidth limits of a site's sandbox, bytes per second (0: none). */
static const char migration_4[] =
    "ALTER TABLE sites ADD COLUMN io_read_bps INTEGER NOT NULL DEFAULT 0 CHECK (io_read_bps >= 0);\n"
    "ALTER TABLE sites ADD COLUMN io_write_bps INTEGER NOT NULL DEFAULT 0 CHECK (io_write_bps >= 0);\n";

/* SSH public keys that may log in to a site over SFTP. A key goes with its site;
 * the same key may serve several sites (one row each). The fingerprint is the
 * SHA-256 one ssh-keygen -l prints, computed by berthd from the checked blob. */
static const char migration_5[] =
    "CREATE TABLE site_keys (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  site_id INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,\n"
    "  algorithm TEXT NOT NULL CHECK (algorithm <> ''),\n"
    "  key TEXT NOT NULL CHECK (key <> ''),\n"
    "  fingerprint TEXT NOT NULL CHECK (fingerprint LIKE 'SHA256:%'),\n"
    "  comment TEXT NOT NULL DEFAULT '',\n"
    "  created_at INTEGER NOT NULL,\n"
    "  UNIQUE (site_id, fingerprint)\n"
    ") STRICT;\n";

/* Automatic backups. The schedule is part of the site's settings (changed with
 * them, in the same transaction); backup_since is when its cadence or hour last
 * changed, so that a schedule set at 10:00 for 03:00 first runs the next night,
 * not at once. The outcome of a site's last automatic backup is berthd's to write,
 * apart from the settings (it does not bump updated_at); it goes with its site. */
static const char migration_6[] =
    "ALTER TABLE sites ADD COLUMN backup_every TEXT NOT NULL DEFAULT 'off'\n"
    "  CHECK (backup_every IN ('off', 'daily', 'weekly'));\n"
    "ALTER TABLE sites ADD COLUMN backup_hour INTEGER NOT NULL DEFAULT 3 CHECK (backup_hour BETWEEN 0 AND 23);\n"
    "ALTER TABLE sites ADD COLUMN backup_keep INTEGER NOT NULL DEFAULT 7 CHECK (backup_keep BETWEEN 1 AND 1000);\n"
    "ALTER TABLE sites ADD COLUMN backup_since INTEGER NOT NULL DEFAULT 0;\n"
    "CREATE TABLE site_backup_runs (\n"
    "  site_id INTEGER PRIMARY KEY REFERENCES sites(id) ON DELETE CASCADE,\n"
    "  at INTEGER NOT NULL,\n"
    "  ok INTEGER NOT NULL CHECK (ok IN (0, 1)),\n"
    "  snapshot TEXT,\n"
    "  error TEXT\n"
    ") STRICT;\n";

const char *const store_migrations[] = {
    migration_1,
    migration_2,
    migration_3,
    migration_4,
    migration_5,
    migration_6,
};
const size_t store_n_migrations = ARRAY_SIZE(store_migrations);

_Static_assert(ARRAY_SIZE(store_migrations) == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION must count the migrations");

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
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/error.h"

/* The php-fpm binary, as seen inside the sandbox (/usr is bound read-only). */
#define PHP_FPM_BINARY "/usr/sbin/php-fpm8.2"
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

/* Returns current_json (NULL or "" for none: {}) with key set to value, checked as
 * php_setting_check does, as a new malloc'd JSON object in *ret_json. -EINVAL also
 * when current_json is not an object of strings. */
int php_settings_apply(const char *current_json, const char *key, const char *value,
                       char **ret_json, struct error *err);

/* Returns current_json without key in *ret_json. -ENOENT (with a sentence) when the
 * key is not set; -EINVAL for a bad current_json. */
int php_settings_remove(const char *current_json, const char *key, char **ret_json,
                        struct error *err);

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

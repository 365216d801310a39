/* Per-site PHP settings and the php-fpm configuration of a site (see sites.h).
 *
 * Every value that reaches the configuration text comes from this file's tables or
 * passed a checker that admits only a small alphabet (digits, letters, '/', '_',
 * '+', '-', '.'), so no setting can end a line or open a new section. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/json.h"
#include "sites/sites.h"

#define KIB ((uint64_t)1024)
#define MIB ((uint64_t)1024 * 1024)
#define GIB ((uint64_t)1024 * 1024 * 1024)

enum kind {
    K_SIZE,      /* "128M": bytes within [min, max] */
    K_INT,       /* decimal within [min, max] */
    K_BOOL,      /* On/Off */
    K_TIMEZONE,  /* a zone the system's zoneinfo knows */
    K_PM,        /* ondemand | static */
    K_CHARSET,   /* default_charset */
};

/* Where a user setting goes in the configuration. */
enum place { P_INI, P_POOL };

struct setting {
    const char *key;
    enum kind kind;
    uint64_t min, max;
    const char *def;     /* written when the site does not set it; NULL: PHP's default */
    enum place place;
    const char *help;    /* one line for people (the panel) */
};

/* The keys a site's owner may change, with their bounds and berth's defaults. */
static const struct setting user_settings[] = {
    { "memory_limit",             K_SIZE, 16 * MIB, 2 * GIB, "128M", P_INI, "Most memory one script may use" },
    { "max_execution_time",       K_INT, 1, 3600, "30", P_INI, "Seconds of CPU time a script may run; a request also ends after this many seconds plus a margin (504)" },
    { "max_input_time",           K_INT, 1, 3600, "60", P_INI, "Seconds a script may spend reading its request" },
    { "upload_max_filesize",      K_SIZE, 0, 4 * GIB, NULL, P_INI, "Largest uploaded file (default: the site's request body limit)" },
    { "post_max_size",            K_SIZE, 0, 4 * GIB, NULL, P_INI, "Largest POST body (default: the site's request body limit)" },
    { "max_file_uploads",         K_INT, 1, 1000, "20", P_INI, "Files one request may upload" },
    { "max_input_vars",           K_INT, 100, 100000, "1000", P_INI, "Form and query variables one request may send" },
    { "max_input_nesting_level",  K_INT, 8, 1024, NULL, P_INI, "Deepest nesting of form variables" },
    { "display_errors",           K_BOOL, 0, 0, "Off", P_INI, "Show PHP errors in pages (keep Off on a public site)" },
    { "display_startup_errors",   K_BOOL, 0, 0, "Off", P_INI, "Show PHP start-up errors in pages" },
    { "html_errors",              K_BOOL, 0, 0, NULL, P_INI, "Format error messages as HTML" },
    { "error_reporting",          K_INT, 0, 65535, NULL, P_INI, "Which errors are reported (a bit mask, like 32767 for E_ALL)" },
    { "short_open_tag",           K_BOOL, 0, 0, NULL, P_INI, "Accept <? as well as <?php" },
    { "output_buffering",         K_INT, 0, 16 * MIB, "4096", P_INI, "Bytes of output buffered before sending (0: none)" },
    { "zlib.output_compression",  K_BOOL, 0, 0, NULL, P_INI, "Let PHP gzip its own output" },
    { "default_charset",          K_CHARSET, 0, 0, NULL, P_INI, "Character set sent with text pages" },
    { "date.timezone",            K_TIMEZONE, 0, 0, "UTC", P_INI, "Time zone of date functions" },
    /* On: apps fetch URLs with file_get_contents; whether anything is reachable is
     * the sandbox's network setting, not PHP's. Sites may turn it off. */
    { "allow_url_fopen",          K_BOOL, 0, 0, "On", P_INI, "Let file functions open http:// URLs" },
    { "session.gc_maxlifetime",   K_INT, 60, 30 * 86400, "1440", P_INI, "Seconds a session lives without use" },
    { "session.cookie_lifetime",  K_INT, 0, 365 * 86400, NULL, P_INI, "Seconds the session cookie lives (0: until the browser closes)" },
    { "session.cookie_secure",    K_BOOL, 0, 0, NULL, P_INI, "Send the session cookie over HTTPS only" },
    { "session.cookie_httponly",  K_BOOL, 0, 0, "On", P_INI, "Hide the session cookie from JavaScript" },
    { "session.use_strict_mode",  K_BOOL, 0, 0, "On", P_INI, "Refuse session ids the server did not create" },
    { "opcache.enable",           K_BOOL, 0, 0, "On", P_INI, "Cache compiled scripts in memory" },
    { "opcache.validate_timestamps", K_BOOL, 0, 0, "On", P_INI, "Notice changed scripts" },
    { "opcache.revalidate_freq",  K_INT, 0, 3600, "2", P_INI, "Seconds between checks for changed scripts" },
    { "opcache.memory_consumption", K_INT, 16, 1024, "64", P_INI, "Megabytes of the script cache" },
    { "opcache.interned_strings_buffer", K_INT, 1, 256, "8", P_INI, "Megabytes for interned strings" },
    { "opcache.max_accelerated_files", K_INT, 200, 1000000, "10000", P_INI, "Most scripts kept in the cache" },
    { "opcache.jit_buffer_size",  K_SIZE, 0, 256 * MIB, NULL, P_INI, "Memory for the JIT (0: JIT off)" },
    { "pm",                       K_PM, 0, 0, "ondemand", P_POOL, "Process manager: ondemand starts workers when requests come, static keeps them all running" },
    { "pm.max_children",          K_INT, 1, 100, "5", P_POOL, "Most PHP workers at once (requests beyond wait)" },
    { "pm.process_idle_timeout",  K_INT, 1, 3600, "10", P_POOL, "Seconds an ondemand worker waits idle before it exits" },   /* seconds */
    { "pm.max_requests",          K_INT, 0, 100000, "500", P_POOL, "Requests a worker serves before it is replaced (0: no limit)" },
};

/* Keys berth decides: named here so that asking for one gets a precise refusal. */
static const char *const managed_keys[] = {
    "disable_functions", "disable_classes", "open_basedir", "allow_url_include",
    "auto_prepend_file", "auto_append_file", "extension", "zend_extension",
    "extension_dir", "sendmail_path", "sendmail_from", "mail.log", "mail.add_x_header",
    "error_log", "log_errors", "expose_php", "include_path", "doc_root", "user_dir",
    "session.save_path", "session.save_handler", "upload_tmp_dir", "sys_temp_dir",
    "file_uploads", "cgi.fix_pathinfo", "cgi.force_redirect", "user_ini.filename",
    "enable_dl", "ffi.enable", "ffi.preload", "opcache.preload", "opcache.preload_user",
    "opcache.restrict_api", "opcache.file_cache", "opcache.file_cache_only",
    "opcache.blacklist_filename", "opcache.error_log", "opcache.lockfile_path",
    "opcache.enable_cli", "phar.readonly", "security.limit_extensions", "listen",
    "listen.owner", "listen.group", "listen.mode", "user", "group", "chroot", "chdir",
    "prefix", "env", "clear_env", "catch_workers_output", "access.log", "slowlog",
    "pm.status_path", "ping.path", "request_terminate_timeout", "rlimit_files",
    "rlimit_core", "process.dumpable",
};

/* Functions that start programs or change the process: the usual shared-hosting
 * list. putenv goes too: with LD_PRELOAD it turns mail()'s sendmail into code
 * execution even with exec() disabled. */
static const char disabled_functions[] =
    "exec,passthru,shell_exec,system,proc_open,popen,proc_nice,proc_terminate,"
    "proc_get_status,proc_close,pcntl_exec,pcntl_fork,pcntl_rfork,pcntl_unshare,"
    "dl,putenv,posix_setuid,posix_setgid,posix_seteuid,posix_setegid,posix_setpgid,"
    "posix_setsid,posix_mkfifo,posix_kill,apache_child_terminate";

/* Managed values: php_admin_value / php_admin_flag, in this order. */
static const struct { const char *key, *value; bool flag; } managed_values[] = {
    { "disable_functions", disabled_functions, false },
    { "open_basedir", "/site/public:/site/private:/site/tmp", false },
    { "allow_url_include", "Off", true },
    { "expose_php", "Off", true },
    { "log_errors", "On", true },
    { "enable_dl", "Off", true },
    { "file_uploads", "On", true },
    { "sys_temp_dir", "/site/tmp", false },
    { "upload_tmp_dir", "/site/tmp/uploads", false },
    { "session.save_handler", "files", false },
    { "session.save_path", "/site/tmp/sessions", false },
    /* 1, PHP's default: with 0 php-fpm sets PHP_SELF to PATH_INFO alone and runs
     * PATH_TRANSLATED when given (both seen with php8.2-fpm). The trap 1 opens
     * (walking back from a missing SCRIPT_FILENAME) cannot happen: the front only
     * sends scripts that exist, and never PATH_TRANSLATED. */
    { "cgi.fix_pathinfo", "1", false },
    { "user_ini.filename", "", false },
    { "opcache.enable_cli", "Off", true },
    { "ffi.enable", "Off", false },
};

static const struct setting *setting_find(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(user_settings); i++)
        if (streq(user_settings[i].key, key))
            return &user_settings[i];
    return NULL;
}

static bool is_managed(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(managed_keys); i++)
        if (streq(managed_keys[i], key))
            return true;
    /* php_admin_value[...] spelled as a key, or anything pool-level we do not list */
    return str_startswith(key, "php_") || str_startswith(key, "listen.");
}

static bool key_chars_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > PHP_SETTING_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static int check_size(const char *v, uint64_t min, uint64_t max, char *out)
{
    size_t n = strlen(v), digits = 0;
    uint64_t x = 0;
    while (digits < n && v[digits] >= '0' && v[digits] <= '9') {
        if (digits == 12)
            return -EINVAL;
        x = x * 10 + (uint64_t)(v[digits] - '0');
        digits++;
    }
    if (digits == 0 || n - digits > 1)
        return -EINVAL;
    char unit = n > digits ? (char)(v[digits] & ~0x20) : 0;
    uint64_t mult = unit == 0 ? 1 : unit == 'K' ? KIB : unit == 'M' ? MIB : unit == 'G' ? GIB : 0;
    /* x > max / mult first: twelve digits times a gigabyte wrap around 64 bits. */
    if (mult == 0 || x > max / mult || x * mult < min)
        return -EINVAL;
    snprintf(out, PHP_SETTING_VALUE_MAX + 1, "%" PRIu64 "%.1s", x, unit ? &unit : "");
    return 0;
}

static int check_int(const char *v, uint64_t min, uint64_t max, char *out)
{
    uint64_t x;
    if (parse_uint(v, min, max, &x) < 0 || strlen(v) > 12)
        return -EINVAL;
    snprintf(out, PHP_SETTING_VALUE_MAX + 1, "%" PRIu64, x);
    return 0;
}

static int check_bool(const char *v, char *out)
{
    static const char *const on[] = { "on", "1", "true", "yes" };
    static const char *const off[] = { "off", "0", "false", "no" };
    for (size_t i = 0; i < ARRAY_SIZE(on); i++) {
        if (strcasecmp(v, on[i]) == 0) {
            strcpy(out, "On");
            return 0;
        }
        if (strcasecmp(v, off[i]) == 0) {
            strcpy(out, "Off");
            return 0;
        }
    }
    return -EINVAL;
}

/* A zone name as zoneinfo spells them ("Europe/Paris", "America/Argentina/Salta",
 * "Etc/GMT+5", "UTC"), that names a file under /usr/share/zoneinfo. */
static int check_timezone(const char *v, char *out)
{
    size_t n = strlen(v);
    if (n == 0 || n > PHP_SETTING_VALUE_MAX)
        return -EINVAL;
    bool seg_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '/') {
            if (seg_start)
                return -EINVAL;
            seg_start = true;
            continue;
        }
        if (seg_start && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return -EINVAL;   /* no "..", no leading '-' or '.' */
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '+'))
            return -EINVAL;
        seg_start = false;
    }
    if (seg_start)
        return -EINVAL;
    char path[128];
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", v);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return -EINVAL;
    strcpy(out, v);
    return 0;
}

static int check_charset(const char *v, char *out)
{
    size_t n = strlen(v);
    if (n == 0 || n > 32)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return -EINVAL;
    }
    strcpy(out, v);
    return 0;
}

static const char *kind_hint(const struct setting *s, char *buf, size_t n)
{
    char lo[32], hi[32];
    switch (s->kind) {
    case K_SIZE:
        format_size(s->min, lo, sizeof(lo));
        format_size(s->max, hi, sizeof(hi));
        snprintf(buf, n, "a size between %s and %s, like 256M", s->min ? lo : "0", hi);
        break;
    case K_INT:
        snprintf(buf, n, "a whole number between %" PRIu64 " and %" PRIu64, s->min, s->max);
        break;
    case K_BOOL:
        snprintf(buf, n, "On or Off");
        break;
    case K_TIMEZONE:
        snprintf(buf, n, "a time zone such as Europe/Paris or UTC");
        break;
    case K_PM:
        snprintf(buf, n, "ondemand or static");
        break;
    case K_CHARSET:
        snprintf(buf, n, "a character set name such as UTF-8");
        break;
    }
    return buf;
}

bool php_setting_info(size_t index, struct php_setting_info *ret)
{
    if (index >= ARRAY_SIZE(user_settings))
        return false;
    const struct setting *s = &user_settings[index];
    ret->key = s->key;
    ret->default_value = s->def;
    /* Their default is the site's body limit, PHP_DEFAULT_BODY_LIMIT unless
     * post_max_size says otherwise. */
    if (!s->def && (streq(s->key, "upload_max_filesize") || streq(s->key, "post_max_size")))
        ret->default_value = "64M";
    _Static_assert(PHP_DEFAULT_BODY_LIMIT == (uint64_t)64 << 20, "the default above");
    ret->help = s->help;
    kind_hint(s, ret->accepts, sizeof(ret->accepts));
    return true;
}

/* The changeable setting key names, or -EINVAL with the sentence php_setting_check
 * promises. */
static int key_find(const char *key, const struct setting **ret, struct error *err)
{
    if (!key_chars_ok(key))
        return error_set(err, -EINVAL, "invalid PHP setting name (use lowercase letters, digits, '_' and '.')");
    const struct setting *s = setting_find(key);
    if (!s) {
        if (is_managed(key))
            return error_set(err, -EINVAL,
                             "PHP setting \"%s\" is managed by berth and cannot be changed", key);
        return error_set(err, -EINVAL, "unknown PHP setting \"%s\"", key);
    }
    *ret = s;
    return 0;
}

int php_setting_check(const char *key, const char *value, char *ret_value, struct error *err)
{
    const struct setting *s;
    int k = key_find(key, &s, err);
    if (k < 0)
        return k;
    char out[PHP_SETTING_VALUE_MAX + 1];
    int r = -EINVAL;
    if (strlen(value) <= PHP_SETTING_VALUE_MAX) {
        switch (s->kind) {
        case K_SIZE: r = check_size(value, s->min, s->max, out); break;
        case K_INT: r = check_int(value, s->min, s->max, out); break;
        case K_BOOL: r = check_bool(value, out); break;
        case K_TIMEZONE: r = check_timezone(value, out); break;
        case K_CHARSET: r = check_charset(value, out); break;
        case K_PM:
            if (streq(value, "ondemand") || streq(value, "static")) {
                strcpy(out, value);
                r = 0;
            }
            break;
        }
    }
    if (r < 0) {
        char hint[128];
        return error_set(err, -EINVAL, "PHP setting \"%s\" must be %s", key,
                         kind_hint(s, hint, sizeof(hint)));
    }
    memcpy(ret_value, out, strlen(out) + 1);
    return 0;
}

/* ---- the stored JSON object ---- */

static void json_value_freep(struct json_value **v)
{
    json_value_free(*v);
}

static int settings_parse(const char *json, struct json_value **ret, struct error *err)
{
    if (!json || !*json)
        json = "{}";
    struct json_value *v = NULL;
    if (json_parse(json, strlen(json), &v, NULL, NULL) < 0 || v->type != JSON_OBJECT) {
        json_value_free(v);
        return error_set(err, -EINVAL, "stored PHP settings are not a JSON object");
    }
    for (size_t i = 0; i < v->object.n; i++)
        if (v->object.values[i]->type != JSON_STRING) {
            int r = error_set(err, -EINVAL, "stored PHP setting \"%.64s\" is not a string",
                              v->object.keys[i]);
            json_value_free(v);
            return r;
        }
    *ret = v;
    return 0;
}

static void buf_donep(struct buf *b)
{
    buf_done(b);
}

/* Writes v's members, with key skipped (skip) or replaced by value, in order;
 * a new key goes last. */
static int settings_write(const struct json_value *v, const char *key, const char *value,
                          char **ret_json)
{
    _cleanup_(buf_donep) struct buf out = BUF_INIT(1 << 20);
    struct json_writer w;
    json_writer_init(&w, &out, false);
    json_object_begin(&w);
    bool done = false;
    for (size_t i = 0; i < v->object.n; i++) {
        if (streq(v->object.keys[i], key)) {
            if (value)
                json_kv_string(&w, key, value);
            done = true;
            continue;
        }
        json_kv_string(&w, v->object.keys[i], v->object.values[i]->string.data);
    }
    if (!done && value)
        json_kv_string(&w, key, value);
    json_object_end(&w);
    int r = json_writer_finish(&w);
    if (r < 0)
        return r;
    *ret_json = buf_steal(&out);
    return 0;
}

int php_settings_apply(const char *current_json, const char *key, const char *value,
                       char **ret_json, struct error *err)
{
    char norm[PHP_SETTING_VALUE_MAX + 1];
    int r = php_setting_check(key, value, norm, err);
    if (r < 0)
        return r;
    _cleanup_(json_value_freep) struct json_value *v = NULL;
    r = settings_parse(current_json, &v, err);
    if (r < 0)
        return r;
    r = settings_write(v, key, norm, ret_json);
    if (r < 0)
        return error_set(err, r, "cannot write PHP settings");
    return 0;
}

int php_settings_remove(const char *current_json, const char *key, char **ret_json,
                        struct error *err)
{
    const struct setting *s;
    int r = key_find(key, &s, err);
    if (r < 0)
        return r;
    _cleanup_(json_value_freep) struct json_value *v = NULL;
    r = settings_parse(current_json, &v, err);
    if (r < 0)
        return r;
    if (!json_get(v, key))
        return error_set(err, -ENOENT, "PHP setting \"%s\" is not set", key);
    r = settings_write(v, key, NULL, ret_json);
    if (r < 0)
        return error_set(err, r, "cannot write PHP settings");
    return 0;
}

uint64_t php_site_body_limit(const char *settings_json)
{
    struct json_value *v = NULL;
    uint64_t limit = PHP_DEFAULT_BODY_LIMIT;
    if (settings_json && json_parse(settings_json, strlen(settings_json), &v, NULL, NULL) == 0) {
        const char *post = json_get_string(v, "post_max_size");
        char norm[PHP_SETTING_VALUE_MAX + 1];
        uint64_t bytes;
        if (post && check_size(post, 0, 4 * GIB, norm) == 0 && parse_size(norm, &bytes) == 0 && bytes > 0)
            limit = bytes;
    }
    json_value_free(v);
    return limit;
}

uint32_t php_site_time_limit(const char *settings_json)
{
    struct json_value *v = NULL;
    uint64_t seconds = 30;
    const struct setting *s = setting_find("max_execution_time");
    if (s && s->def)
        (void)parse_uint(s->def, 1, 3600, &seconds);
    if (settings_json && json_parse(settings_json, strlen(settings_json), &v, NULL, NULL) == 0) {
        const char *stored = json_get_string(v, "max_execution_time");
        uint64_t x;
        if (stored && parse_uint(stored, 1, 3600, &x) == 0)
            seconds = x;
    }
    json_value_free(v);
    return (uint32_t)seconds;
}

uint32_t php_site_max_children(const char *settings_json)
{
    const struct setting *s = setting_find("pm.max_children");
    uint64_t children = 5;
    (void)parse_uint(s->def, s->min, s->max, &children);
    struct json_value *v = NULL;
    if (settings_json && json_parse(settings_json, strlen(settings_json), &v, NULL, NULL) == 0) {
        const char *stored = json_get_string(v, "pm.max_children");
        uint64_t x;
        if (stored && parse_uint(stored, s->min, s->max, &x) == 0)
            children = x;
    }
    json_value_free(v);
    return (uint32_t)children;
}

/* ---- php-fpm configuration ---- */

static void size_format(uint64_t bytes, char *out, size_t n)
{
    if (bytes % MIB == 0)
        snprintf(out, n, "%" PRIu64 "M", bytes / MIB);
    else
        snprintf(out, n, "%" PRIu64 "K", (bytes + KIB - 1) / KIB);
}

/* The effective value of a user setting: the site's (checked again), else berth's
 * default; NULL when neither. */
static int effective(const struct json_value *v, const struct setting *s, const char *body_default,
                     char *out, struct error *err)
{
    const char *stored = json_get_string(v, s->key);
    if (stored) {
        struct error e;
        if (php_setting_check(s->key, stored, out, &e) < 0)
            return error_set(err, -EINVAL, "stored %s", e.message);
        return 1;
    }
    const char *def = s->def;
    if (!def && (streq(s->key, "upload_max_filesize") || streq(s->key, "post_max_size")))
        def = body_default;
    if (!def)
        return 0;
    strcpy(out, def);
    return 1;
}

/* buf_printf with a sticky error, so the text is written in one readable run. */
static void _printf_(3, 4) emit(int *error, struct buf *out, const char *fmt, ...)
{
    if (*error < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vprintf(out, fmt, ap);
    va_end(ap);
    if (r < 0)
        *error = r;
}

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
            return false;
    return true;
}

int php_fpm_config_write(const struct php_fpm_site *site, struct buf *out, struct error *err)
{
    if (!name_ok(site->name))
        return error_set(err, -EINVAL, "invalid site name");
    _cleanup_(json_value_freep) struct json_value *v = NULL;
    int r = settings_parse(site->settings_json, &v, err);
    if (r < 0)
        return r;
    /* Every stored key must still be one we know: a stale or planted key is an
     * error rather than silently ignored. */
    for (size_t i = 0; i < v->object.n; i++)
        if (!setting_find(v->object.keys[i])) {
            char tmp[PHP_SETTING_VALUE_MAX + 1];
            struct error e;
            php_setting_check(v->object.keys[i], "", tmp, &e);
            return error_set(err, -EINVAL, "stored %s", e.message);
        }

    char body[32];
    size_format(site->max_body ? site->max_body : 16 * MIB, body, sizeof(body));

    int werr = 0;
    emit(&werr, out,
               "; generated by berthd for site %s: do not edit, `berth site set %s --php` instead\n"
               "[global]\n"
               "pid = /tmp/php-fpm.pid\n"
               "error_log = /proc/self/fd/2\n"
               "log_level = notice\n"
               "daemonize = no\n"
               "process_control_timeout = 10s\n"
               "\n[%s]\n"
               "listen = " PHP_FPM_LISTEN_KEY "\n"
               "catch_workers_output = yes\n"
               "decorate_workers_output = no\n"
               "clear_env = yes\n"
               "env[PATH] = /usr/local/bin:/usr/bin:/bin\n"
               "env[TMPDIR] = /site/tmp\n"
               "env[HOME] = /site\n"
               "security.limit_extensions = .php\n",
               site->name, site->name, site->name);

    char val[PHP_SETTING_VALUE_MAX + 1];
    uint64_t max_exec = 30;
    for (size_t i = 0; i < ARRAY_SIZE(user_settings); i++) {
        const struct setting *s = &user_settings[i];
        if (s->place != P_POOL)
            continue;
        r = effective(v, s, body, val, err);
        if (r < 0)
            return r;
        if (r > 0)
            emit(&werr, out, "%s = %s\n", s->key, val);
    }
    /* static needs no more; ondemand reads process_idle_timeout in seconds */
    r = effective(v, setting_find("max_execution_time"), body, val, err);
    if (r < 0)
        return r;
    if (r > 0)
        (void)parse_uint(val, 1, 3600, &max_exec);
    emit(&werr, out, "request_terminate_timeout = %" PRIu64 "s\n", max_exec + 10);

    emit(&werr, out, "\n; managed by berth\n");
    for (size_t i = 0; i < ARRAY_SIZE(managed_values); i++)
        emit(&werr, out, "php_admin_%s[%s] = %s\n", managed_values[i].flag ? "flag" : "value",
                   managed_values[i].key, managed_values[i].value);

    emit(&werr, out, "\n; the site's settings and berth's defaults for them\n");
    for (size_t i = 0; i < ARRAY_SIZE(user_settings); i++) {
        const struct setting *s = &user_settings[i];
        if (s->place != P_INI)
            continue;
        r = effective(v, s, body, val, err);
        if (r < 0)
            return r;
        /* opcache.enable can only be turned off in a pool: PHP is started with it on
         * (its default) and logs "can't be temporary enabled" in every worker told
         * to turn it on again. */
        if (r > 0 && streq(s->key, "opcache.enable") && streq(val, "On"))
            continue;
        if (r > 0)
            emit(&werr, out, "php_%s[%s] = %s\n", s->kind == K_BOOL ? "flag" : "value", s->key, val);
    }
    if (werr < 0)
        return error_set(err, werr, "php-fpm configuration does not fit its buffer");
    return 0;
}

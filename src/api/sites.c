/* /api/v1/sites: list, create, show, change, remove, start/stop/restart. */
#include <inttypes.h>
#include <stdio.h>

#include "api/api-internal.h"
#include "common/names.h"
#include "snapshot/snapshot.h"

#define DEFAULT_MEMORY (256ULL << 20)
#define DEFAULT_CPU_MILLIS 1000
#define DEFAULT_PIDS 128
#define DEFAULT_IDLE_SECONDS 300

static void write_usage_field(struct json_writer *w, const char *key, uint64_t v)
{
    json_key(w, key);
    if (v == SANDBOX_USAGE_UNKNOWN)
        json_null(w);
    else
        json_uint(w, v);
}

/* The "runtime" member: what the site's sandbox does now, and its usage. */
/* "php": the site's own PHP settings (overrides of berth's defaults), an object of
 * strings. A stored text that does not parse is shown as an empty object: the
 * generator refuses it with a sentence at the site's next start. */
static void write_php_settings(struct json_writer *w, const char *stored)
{
    struct json_value *v = NULL;
    json_key(w, "php");
    json_object_begin(w);
    if (stored && json_parse(stored, strlen(stored), &v, NULL, NULL) == 0 && v->type == JSON_OBJECT)
        for (size_t i = 0; i < v->object.n; i++)
            if (v->object.values[i]->type == JSON_STRING)
                json_kv_string(w, v->object.keys[i], v->object.values[i]->string.data);
    json_object_end(w);
    json_value_free(v);
}

static void write_runtime(struct json_writer *w, const struct sites_runtime_status *st)
{
    json_key(w, "runtime");
    json_object_begin(w);
    json_kv_string(w, "state", sites_runtime_state_to_string(st->state));
    json_key(w, "pid");
    if (st->pid > 0)
        json_int(w, st->pid);
    else
        json_null(w);
    json_kv_int(w, "started_at", st->started_at);
    json_kv_uint(w, "restarts", st->restarts);
    json_key(w, "last_exit");
    if (st->last_exit >= 0)
        json_int(w, st->last_exit);
    else
        json_null(w);
    json_kv_string(w, "socket", st->socket_path);
    json_kv_string(w, "error", st->last_error[0] ? st->last_error : NULL);
    json_kv_string(w, "last_output", st->state == SITES_RUNTIME_FAILED ? st->last_output : NULL);
    json_key(w, "usage");
    if (st->has_usage) {
        json_object_begin(w);
        write_usage_field(w, "memory_current", st->usage.memory_current);
        write_usage_field(w, "memory_peak", st->usage.memory_peak);
        json_key(w, "cpu_seconds");
        if (st->usage.cpu_usec == SANDBOX_USAGE_UNKNOWN)
            json_null(w);
        else
            json_double(w, (double)st->usage.cpu_usec / 1e6);
        write_usage_field(w, "processes", st->usage.pids_current);
        write_usage_field(w, "oom_kills", st->usage.oom_kills);
        json_object_end(w);
    } else {
        json_null(w);
    }
    json_object_end(w);
}

/* Thousandths of a CPU as people write them: 500 → "0.5", 2000 → "2". */
static void format_cpu(uint32_t millis, char *out, size_t n)
{
    snprintf(out, n, "%u.%03u", millis / 1000, millis % 1000);
    char *e = out + strlen(out) - 1;
    while (*e == '0')
        *e-- = 0;
    if (*e == '.')
        *e = 0;
}

/* "backups": the schedule, when it is next due (null when off; in the past when
 * overdue: berthd makes it within a minute) and the last automatic backup. */
static void write_backups(const struct api_config *cfg, struct json_writer *w, const struct store_site *site)
{
    struct store_backup_run run = { 0 };
    bool has_run = cfg->store && store_backup_run_get(cfg->store, site->name, &run) == 0;
    json_key(w, "backups");
    json_object_begin(w);
    json_kv_string(w, "every", store_backup_every_to_string(site->backup_every));
    json_kv_uint(w, "hour", site->backup_hour);
    json_kv_uint(w, "keep", site->backup_keep);
    json_key(w, "next_due");
    if (site->backup_every != STORE_BACKUP_OFF)
        json_int(w, snapshot_schedule_due(site->backup_every, site->backup_hour, site->backup_since,
                                          has_run ? run.at : 0));
    else
        json_null(w);
    json_kv_bool(w, "running", api_archive_auto_running(site->name));
    json_key(w, "last");
    if (has_run) {
        json_object_begin(w);
        json_kv_int(w, "at", run.at);
        json_kv_bool(w, "ok", run.ok);
        json_kv_string(w, "snapshot", run.snapshot);
        json_kv_string(w, "error", run.error);
        json_object_end(w);
    } else {
        json_null(w);
    }
    json_object_end(w);
    store_backup_run_done(&run);
}

void api_write_site(const struct api_config *cfg, struct json_writer *w, const struct store_site *site)
{
    struct sites_runtime_status rst;
    bool managed = cfg->runtime && sites_runtime_get_status(cfg->runtime, site->name, &rst) == 0;
    char host[300], dir[400], size[32];
    sites_default_host(cfg->sites, site->name, host, sizeof(host));
    sites_dir(cfg->sites, site->name, dir, sizeof(dir));

    json_object_begin(w);
    json_kv_string(w, "name", site->name);
    json_kv_string(w, "type", site->type);
    json_kv_string(w, "owner", site->owner);
    json_kv_uint(w, "uid", site->uid);
    json_kv_string(w, "state", managed ? sites_runtime_state_to_string(rst.state) : site->desired_state);
    json_kv_string(w, "desired_state", site->desired_state);
    if (managed)
        write_runtime(w, &rst);
    api_write_site_requests(cfg, w, site->name);
    json_kv_string(w, "host", host);
    json_key(w, "domains");
    json_array_begin(w);
    for (size_t i = 0; i < site->n_domains; i++)
        json_string(w, site->domains[i]);
    json_array_end(w);
    json_key(w, "urls");
    json_array_begin(w);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct api_listener *l = &cfg->listeners[i];
        const char *colon = strrchr(l->address, ':');
        const char *scheme = streq(l->kind, "https") ? "https" : streq(l->kind, "http") ? "http" : NULL;
        if (!scheme || !colon)
            continue;
        const char *port = colon + 1;
        bool default_port = (streq(scheme, "http") && streq(port, "80")) || (streq(scheme, "https") && streq(port, "443"));
        char url[400];
        snprintf(url, sizeof(url), "%s://%s%s%s/", scheme, host, default_port ? "" : ":", default_port ? "" : port);
        json_string(w, url);
        break;   /* one URL per scheme is enough for people; the first listener wins */
    }
    json_array_end(w);
    /* The HTTPS certificate berthd keeps for the site: whose, until when, for which names. */
    json_key(w, "certificate");
    struct store_certificate cert;
    if (cfg->store && store_certificate_summary_get(cfg->store, site->name, &cert) == 0) {
        json_object_begin(w);
        json_kv_string(w, "issuer", cert.issuer);
        json_kv_int(w, "not_after", cert.not_after);
        json_key(w, "hosts");
        json_array_begin(w);
        char *save = NULL;
        for (char *h = strtok_r(cert.hosts, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
            json_string(w, h);
        json_array_end(w);
        json_object_end(w);
        store_certificate_done(&cert);
    } else {
        json_null(w);
    }
    json_key(w, "limits");
    json_object_begin(w);
    format_size(site->memory_max, size, sizeof(size));
    json_kv_string(w, "memory", site->memory_max ? size : "unlimited");
    json_kv_uint(w, "memory_bytes", site->memory_max);
    if (site->cpu_millis) {
        char cpu[32];
        format_cpu(site->cpu_millis, cpu, sizeof(cpu));
        json_kv_string(w, "cpu", cpu);
    } else {
        json_kv_string(w, "cpu", "unlimited");
    }
    json_kv_uint(w, "cpu_millis", site->cpu_millis);
    json_kv_uint(w, "pids", site->pids_max);
    static const char *const io_keys[2][2] = { { "io_read", "io_read_bps" }, { "io_write", "io_write_bps" } };
    for (int i = 0; i < 2; i++) {
        uint64_t bps = i == 0 ? site->io_read_bps : site->io_write_bps;
        char per_s[40];
        format_size(bps, size, sizeof(size));
        snprintf(per_s, sizeof(per_s), "%s/s", size);
        json_kv_string(w, io_keys[i][0], bps ? per_s : "unlimited");
        json_kv_uint(w, io_keys[i][1], bps);
    }
    json_object_end(w);
    json_kv_string(w, "network", site->network);
    json_kv_bool(w, "always_on", site->always_on);
    json_kv_uint(w, "idle_seconds", site->idle_seconds);
    json_kv_string(w, "cmd", site->cmd);
    if (streq_ptr(site->type, "php"))
        write_php_settings(w, site->php_settings);
    write_backups(cfg, w, site);
    json_kv_string(w, "dir", dir);
    json_kv_int(w, "created_at", site->created_at);
    json_kv_int(w, "updated_at", site->updated_at);
    json_object_end(w);
}

/* Reads a size member given as "256M", "unlimited" or a number of bytes. */
static int read_size_member(const struct json_value *body, const char *key, uint64_t *ret, struct error *err)
{
    const struct json_value *v = json_get(body, key);
    if (!v)
        return 0;
    if (v->type == JSON_NUMBER && v->number.is_integer && v->number.integer >= 0) {
        *ret = (uint64_t)v->number.integer;
        return 1;
    }
    if (v->type == JSON_STRING) {
        if (streq(v->string.data, "unlimited") || streq(v->string.data, "0")) {
            *ret = 0;
            return 1;
        }
        if (parse_size(v->string.data, ret) == 0)
            return 1;
    }
    if (streq(key, "memory"))
        return error_set(err, -EINVAL, "invalid memory limit: use a size such as 256M or 1G, or \"unlimited\"");
    return error_set(err, -EINVAL, "invalid %s limit: use a size per second such as 20M, or \"unlimited\"", key);
}

static int read_cpu(const struct json_value *body, uint32_t *ret, struct error *err)
{
    const struct json_value *v = json_get(body, "cpu");
    if (!v)
        return 0;
    char text[32] = "";
    if (v->type == JSON_STRING)
        snprintf(text, sizeof(text), "%s", v->string.data);
    else if (v->type == JSON_NUMBER)
        snprintf(text, sizeof(text), "%.3f", v->number.value);
    /* 0 as a number means unlimited, as it does for memory and pids. */
    if (streq(text, "unlimited") || streq(text, "0") || (v->type == JSON_NUMBER && v->number.value == 0)) {
        *ret = 0;
        return 1;
    }
    /* "%.3f" leaves trailing zeros parse_cpu accepts. */
    if (parse_cpu(text, ret) == 0)
        return 1;
    return error_set(err, -EINVAL, "invalid CPU limit: use a number of CPUs such as 0.5 or 2");
}

static int read_uint_member(const struct json_value *body, const char *key, uint64_t max,
                            uint32_t *ret, struct error *err)
{
    const struct json_value *v = json_get(body, key);
    if (!v)
        return 0;
    if (v->type == JSON_NUMBER && v->number.is_integer && v->number.integer >= 0 &&
        (uint64_t)v->number.integer <= max) {
        *ret = (uint32_t)v->number.integer;
        return 1;
    }
    return error_set(err, -EINVAL, "invalid %s: use a whole number from 0 to %" PRIu64, key, max);
}

static int read_bool_member(const struct json_value *body, const char *key, bool *ret, struct error *err)
{
    const struct json_value *v = json_get(body, key);
    if (!v)
        return 0;
    if (v->type != JSON_BOOL)
        return error_set(err, -EINVAL, "%s must be true or false", key);
    *ret = v->boolean;
    return 1;
}

static int read_string_member(const struct json_value *body, const char *key, char **field, struct error *err)
{
    const struct json_value *v = json_get(body, key);
    if (!v)
        return 0;
    if (v->type == JSON_NULL) {
        free(*field);
        *field = NULL;
        return 1;
    }
    if (v->type != JSON_STRING || strlen(v->string.data) != v->string.len)
        return error_set(err, -EINVAL, "%s must be a string", key);
    char *copy = strdup(v->string.data);
    if (!copy)
        return error_set(err, -ENOMEM, "out of memory");
    free(*field);
    *field = copy;
    return 1;
}

/* Reads an array of strings; returns its count, or a negative errno. */
static int read_string_array(const struct json_value *body, const char *key, char ***ret, size_t *ret_n,
                             struct error *err)
{
    const struct json_value *v = json_get(body, key);
    *ret = NULL;
    *ret_n = 0;
    if (!v)
        return 0;
    if (v->type != JSON_ARRAY || v->array.n > 1000)
        return error_set(err, -EINVAL, "%s must be a list of at most 1000 strings", key);
    char **list = calloc(v->array.n + 1, sizeof(char *));
    if (!list)
        return error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < v->array.n; i++) {
        const struct json_value *item = v->array.items[i];
        if (item->type != JSON_STRING || !(list[i] = strdup(item->string.data))) {
            for (size_t j = 0; j < i; j++)
                free(list[j]);
            free(list);
            return error_set(err, -EINVAL, "%s must be a list of strings", key);
        }
    }
    *ret = list;
    *ret_n = v->array.n;
    return 1;
}

static void free_strings(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* A size in the largest unit that holds it exactly ("1500M", "1G", "12345"): what
 * a message names as a limit must be the limit itself, in a form the API takes. */
static void format_size_exact(uint64_t bytes, char *out, size_t n)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (u < 3 && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, n, "%" PRIu64, bytes);
    else
        snprintf(out, n, "%" PRIu64 "%c", bytes, units[u]);
}

/* What only an admin may ask for a site: the host's network (its local services
 * and abstract sockets, every port), or a limit above what berth.yaml's
 * user_site_limits lets a user give (0, unlimited, is above any), either of which
 * would let one user's site touch the host or starve the other sites. Checked on
 * what the request body sets, after it was read into site; on a create, a limit
 * the body leaves out is brought down to the ceiling. */
static int check_user_may(const struct api_config *cfg, const struct api_request *req,
                          const struct json_value *body, struct store_site *site, bool create, struct error *err)
{
    char why[200];
    if ((json_get(body, "io_read") || json_get(body, "io_write")) && (site->io_read_bps || site->io_write_bps) &&
        (!cfg->runtime || !sites_runtime_io_limits_available(cfg->runtime, why, sizeof(why))))
        return error_set(err, -EINVAL, "disk limits are not available on this host: %s",
                         cfg->runtime ? why : "berthd runs no sandboxes (it is not root)");
    if (req->admin)
        return 0;
    if (json_get(body, "network") && streq_ptr(site->network, "host"))
        return error_set(err, -EPERM, "only an admin may give a site the host's network");
    /* The disk is shared by every site: how much of it one gets is the host's call. */
    if (json_get(body, "io_read") || json_get(body, "io_write"))
        return error_set(err, -EPERM, "only an admin may set a site's disk limits");
    uint64_t max_memory = cfg->user_max_memory ? cfg->user_max_memory : UINT64_MAX;
    uint32_t max_cpu = cfg->user_max_cpu_millis ? cfg->user_max_cpu_millis : UINT32_MAX;
    uint32_t max_pids = cfg->user_max_pids ? cfg->user_max_pids : UINT32_MAX;
    if (create && !json_get(body, "memory"))
        site->memory_max = MIN(site->memory_max ? site->memory_max : UINT64_MAX, max_memory);
    if (create && !json_get(body, "cpu"))
        site->cpu_millis = MIN(site->cpu_millis ? site->cpu_millis : UINT32_MAX, max_cpu);
    if (create && !json_get(body, "pids"))
        site->pids_max = MIN(site->pids_max ? site->pids_max : UINT32_MAX, max_pids);
    char most[32];
    if (json_get(body, "memory") && (site->memory_max == 0 || site->memory_max > max_memory)) {
        format_size_exact(max_memory, most, sizeof(most));
        return error_set(err, -EPERM, "only an admin may give a site more than %s of memory "
                         "(user_site_limits in berth.yaml)", most);
    }
    if (json_get(body, "cpu") && (site->cpu_millis == 0 || site->cpu_millis > max_cpu)) {
        format_cpu(max_cpu, most, sizeof(most));
        return error_set(err, -EPERM, "only an admin may give a site more than %s CPU%s "
                         "(user_site_limits in berth.yaml)", most, max_cpu == 1000 ? "" : "s");
    }
    if (json_get(body, "pids") && (site->pids_max == 0 || site->pids_max > max_pids))
        return error_set(err, -EPERM, "only an admin may give a site more than %u processes "
                         "(user_site_limits in berth.yaml)", max_pids);
    return 0;
}

/* A user who is not an admin owns at most user_site_limits.sites sites. Counted in
 * the store as it is now, so the sites a batch made before this one count too. */
static int check_user_site_count(const struct api_config *cfg, const struct api_request *req, struct error *err)
{
    if (req->admin || !cfg->user_max_sites)
        return 0;
    struct store_site *list = NULL;
    size_t n = 0;
    int r = store_site_list(cfg->store, req->actor, &list, &n);
    store_site_list_free(list, n);
    if (r < 0)
        return error_set(err, r, "cannot count your sites: %s", store_errmsg(cfg->store));
    if (n >= cfg->user_max_sites)
        return error_set(err, -EPERM, "you have %zu site%s, the most a user may own (user_site_limits in "
                         "berth.yaml): remove one, or ask an admin", n, n == 1 ? "" : "s");
    return 0;
}

/* Fields common to create and change. */
static int read_settings(const struct json_value *body, struct store_site *site, struct error *err)
{
    uint32_t idle = site->idle_seconds, pids = site->pids_max;
    int r;
    if ((r = read_size_member(body, "memory", &site->memory_max, err)) < 0 ||
        (r = read_size_member(body, "io_read", &site->io_read_bps, err)) < 0 ||
        (r = read_size_member(body, "io_write", &site->io_write_bps, err)) < 0 ||
        (r = read_cpu(body, &site->cpu_millis, err)) < 0 ||
        (r = read_uint_member(body, "pids", 1000000, &pids, err)) < 0 ||
        (r = read_uint_member(body, "idle_seconds", UINT32_MAX, &idle, err)) < 0 ||
        (r = read_bool_member(body, "always_on", &site->always_on, err)) < 0)
        return r;
    site->pids_max = pids;
    site->idle_seconds = idle;
    return 0;
}

/* Applies a "backups" member, {"every": "off"|"daily"|"weekly", "hour": 0-23,
 * "keep": 1-1000}, to site; a member left out keeps the site's value. All or
 * nothing. */
static int read_backups(const struct json_value *body, struct store_site *site, struct error *err)
{
    const struct json_value *b = json_get(body, "backups");
    if (!b)
        return 0;
    if (b->type != JSON_OBJECT)
        return error_set(err, -EINVAL, "\"backups\" must be an object: {\"every\": \"daily\", \"hour\": 3, "
                         "\"keep\": 7}");
    struct store_site next = *site;
    for (size_t i = 0; i < b->object.n; i++) {
        const char *k = b->object.keys[i];
        const struct json_value *v = b->object.values[i];
        if (streq(k, "every")) {
            if (v->type != JSON_STRING || !store_backup_every_valid(v->string.data))
                return error_set(err, -EINVAL, "\"backups\": \"every\" is off, daily or weekly");
            next.backup_every = store_backup_every_from_string(v->string.data);
        } else if (streq(k, "hour")) {
            if (v->type != JSON_NUMBER || !v->number.is_integer || v->number.integer < 0 || v->number.integer > 23)
                return error_set(err, -EINVAL, "\"backups\": \"hour\" is an hour of the day from 0 to 23 (UTC)");
            next.backup_hour = (uint32_t)v->number.integer;
        } else if (streq(k, "keep")) {
            if (v->type != JSON_NUMBER || !v->number.is_integer || v->number.integer < 1 ||
                v->number.integer > STORE_BACKUP_KEEP_MAX)
                return error_set(err, -EINVAL, "\"backups\": \"keep\" is a number of snapshots from 1 to %d",
                                 STORE_BACKUP_KEEP_MAX);
            next.backup_keep = (uint32_t)v->number.integer;
        } else {
            return error_set(err, -EINVAL, "\"backups\": unknown field \"%s\" (known: every, hour, keep)", k);
        }
    }
    site->backup_every = next.backup_every;
    site->backup_hour = next.backup_hour;
    site->backup_keep = next.backup_keep;
    return 0;
}

/* Applies a "php" member, {"KEY": "VALUE" | null, ...}, to site->php_settings: a
 * string sets (checked, normalised), null removes an override (also when none was
 * set, so a declarative caller can always send it). All or nothing: the first bad
 * key leaves the site untouched and names that key. */
static int read_php_settings(const struct json_value *body, struct store_site *site, struct error *err)
{
    const struct json_value *php = json_get(body, "php");
    if (!php)
        return 0;
    if (php->type != JSON_OBJECT)
        return error_set(err, -EINVAL, "\"php\" must be an object of setting names and values");
    if (!streq_ptr(site->type, "php"))
        return error_set(err, -EINVAL, "site %s is not a PHP site: PHP settings apply only to --type php",
                         site->name);
    _cleanup_free_ char *settings = site->php_settings ? strdup(site->php_settings) : NULL;
    if (site->php_settings && !settings)
        return error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < php->object.n; i++) {
        const char *key = php->object.keys[i];
        const struct json_value *value = php->object.values[i];
        char *next = NULL;
        int r;
        if (value->type == JSON_STRING) {
            r = php_settings_apply(settings, key, value->string.data, &next, err);
        } else if (value->type == JSON_NULL) {
            r = php_settings_remove(settings, key, &next, err);
            if (r == -ENOENT)
                continue;
        } else {
            return error_set(err, -EINVAL, "PHP setting \"%.64s\" must be a string, or null to reset it", key);
        }
        if (r < 0)
            return r;
        free(settings);
        settings = next;
    }
    free(site->php_settings);
    site->php_settings = TAKE_PTR(settings);
    return 0;
}

/* Refuses a body with a member the endpoint does not know (a typo would otherwise
 * be silently ignored). Answers 400 and returns false. */
static bool only_known_fields(const struct json_value *body, const char *const *known, size_t n_known,
                              struct api_response *res)
{
    for (size_t i = 0; i < body->object.n; i++) {
        bool ok = false;
        for (size_t k = 0; k < n_known && !ok; k++)
            ok = streq(body->object.keys[i], known[k]);
        if (!ok) {
            api_reply_error(res, 400, "unknown field \"%s\"", body->object.keys[i]);
            return false;
        }
    }
    return true;
}

/* ?dry_run=1 on a create or a change: every check runs, nothing is changed, and the
 * answer is {"dry_run": true, "site": NAME}. berth apply checks a whole file this way
 * before it makes the first change. */
static bool dry_run_asked(const struct api_request *req)
{
    char v[8];
    return api_query_get(req->query, "dry_run", v, sizeof(v)) && (streq(v, "1") || streq(v, "true"));
}

static void reply_checked(struct api_response *res, const char *name)
{
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_bool(&res->json, "dry_run", true);
    json_kv_string(&res->json, "site", name);
    json_object_end(&res->json);
}

static void create_site(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    struct error err = { 0 };
    struct store_site site = {
        .memory_max = DEFAULT_MEMORY,
        .cpu_millis = DEFAULT_CPU_MILLIS,
        .pids_max = DEFAULT_PIDS,
        .idle_seconds = DEFAULT_IDLE_SECONDS,
        .backup_hour = STORE_BACKUP_HOUR_DEFAULT,
        .backup_keep = STORE_BACKUP_KEEP_DEFAULT,
    };
    static const char *const known[] = { "name", "type", "domains", "cmd", "memory", "cpu", "pids", "io_read",
                                         "io_write", "network", "owner", "always_on", "idle_seconds", "php",
                                         "state", "backups" };
    const struct json_value *body = req->body;
    int r = 0;

    if (!body) {
        api_reply_error(res, 400, "a JSON body with at least a name is required");
        return;
    }
    if (!only_known_fields(body, known, ARRAY_SIZE(known), res))
        return;
    site.type = strdup("static");
    site.network = strdup("none");
    site.desired_state = strdup("running");
    if (!site.type || !site.network || !site.desired_state)
        r = error_set(&err, -ENOMEM, "out of memory");
    if (r >= 0 && !json_get_string(body, "name"))
        r = error_set(&err, -EINVAL, "the site needs a name");
    if (r >= 0)
        r = read_string_member(body, "name", &site.name, &err);
    if (r >= 0)
        r = read_string_member(body, "type", &site.type, &err);
    if (r >= 0)
        r = read_string_member(body, "cmd", &site.cmd, &err);
    if (r >= 0)
        r = read_string_member(body, "network", &site.network, &err);
    if (r >= 0)   /* "stopped": made stopped, never running for an instant */
        r = read_string_member(body, "state", &site.desired_state, &err);
    if (r >= 0)
        r = read_string_member(body, "owner", &site.owner, &err);
    /* A user creates sites for themselves; root (no account) makes unowned ones. */
    if (r >= 0 && !req->admin && site.owner && !streq(site.owner, req->actor))
        r = error_set(&err, -EPERM, "only an admin may create a site for another user");
    if (r >= 0 && !site.owner && !streq(req->actor, "root") && !(site.owner = strdup(req->actor)))
        r = error_set(&err, -ENOMEM, "out of memory");
    if (r >= 0)
        r = read_string_array(body, "domains", &site.domains, &site.n_domains, &err);
    if (r >= 0)
        r = read_settings(body, &site, &err);
    if (r >= 0)
        r = check_user_may(cfg, req, body, &site, true, &err);
    if (r >= 0)
        r = check_user_site_count(cfg, req, &err);
    if (r >= 0)
        r = read_php_settings(body, &site, &err);
    if (r >= 0)
        r = read_backups(body, &site, &err);
    bool dry_run = dry_run_asked(req);
    if (r >= 0)
        r = dry_run ? sites_check(cfg->sites, &site, true, &err) : sites_create(cfg->sites, &site, req->actor, &err);
    if (r < 0) {
        api_reply_failure(res, &err);
    } else if (dry_run) {
        reply_checked(res, site.name);
    } else {
        /* Answer with the record as stored (sorted, normalised domains). */
        struct store_site stored = { 0 };
        if (store_site_get(cfg->store, site.name, &stored) == 0) {
            api_reply(res, 201);
            api_write_site(cfg, &res->json, &stored);
        } else {
            api_reply_error(res, 500, "site created but cannot be read back: %s", store_errmsg(cfg->store));
        }
        store_site_done(&stored);
    }
    store_site_done(&site);
}

static void list_sites(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    struct store_site *list;
    size_t n;
    int r = store_site_list(cfg->store, req->admin ? NULL : req->actor, &list, &n);
    if (r < 0) {
        api_reply_error(res, 500, "cannot list sites: %s", store_errmsg(cfg->store));
        return;
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_key(&res->json, "sites");
    json_array_begin(&res->json);
    for (size_t i = 0; i < n; i++)
        api_write_site(cfg, &res->json, &list[i]);
    json_array_end(&res->json);
    json_object_end(&res->json);
    store_site_list_free(list, n);
}

/* Loads the site a request names, answering 404 (also for sites the asker may not
 * see, so that their existence does not leak). */
static bool load_site(const struct api_config *cfg, const struct api_request *req, struct api_response *res,
                      struct store_site *site)
{
    const char *name = req->segments[1];
    int r = site_name_valid(name) ? store_site_get(cfg->store, name, site) : -ENOENT;
    if (r == 0 && !req->admin && !streq_ptr(site->owner, req->actor)) {
        store_site_done(site);
        r = -ENOENT;
    }
    if (r == -ENOENT) {
        api_reply_error(res, 404, "no site named \"%s\"", name);
        return false;
    }
    if (r < 0) {
        api_reply_error(res, 500, "cannot read site %s: %s", name, store_errmsg(cfg->store));
        return false;
    }
    return true;
}

static void change_site(const struct api_config *cfg, const struct api_request *req, struct api_response *res,
                        struct store_site *site)
{
    static const char *const known[] = { "memory", "cpu", "pids", "io_read", "io_write", "idle_seconds",
                                         "always_on", "add_domains",
                                         "remove_domains", "type", "cmd", "network", "owner", "php",
                                         "backups" };
    const struct json_value *body = req->body;
    struct error err = { 0 };
    char **add = NULL, **drop = NULL;
    size_t n_add = 0, n_drop = 0;
    bool dry_run = dry_run_asked(req);
    int r = 0;

    if (!body) {
        api_reply_error(res, 400, "a JSON body with the changes is required");
        return;
    }
    if (!only_known_fields(body, known, ARRAY_SIZE(known), res))
        return;
    if (json_get(body, "owner") && !req->admin) {
        api_reply_error(res, 403, "only an admin may change a site's owner");
        return;
    }
    if ((r = read_settings(body, site, &err)) < 0 ||
        (r = read_string_member(body, "type", &site->type, &err)) < 0 ||
        (r = read_string_member(body, "cmd", &site->cmd, &err)) < 0 ||
        (r = read_string_member(body, "network", &site->network, &err)) < 0 ||
        (r = read_string_member(body, "owner", &site->owner, &err)) < 0 ||
        (r = read_string_array(body, "add_domains", &add, &n_add, &err)) < 0 ||
        (r = read_string_array(body, "remove_domains", &drop, &n_drop, &err)) < 0 ||
        (r = check_user_may(cfg, req, body, site, false, &err)) < 0 ||
        (r = read_php_settings(body, site, &err)) < 0 ||
        (r = read_backups(body, site, &err)) < 0)
        goto out;

    /* Removals first (by normalised name), then additions. */
    for (size_t i = 0; i < n_drop; i++) {
        _cleanup_free_ char *ascii = NULL;
        const char *reason;
        bool found = false;
        if (domain_normalize(drop[i], &ascii, &reason) < 0) {
            r = error_set(&err, -EINVAL, "invalid domain \"%s\": %s", drop[i], reason);
            goto out;
        }
        for (size_t j = 0; j < site->n_domains; j++) {
            if (streq(site->domains[j], ascii)) {
                free(site->domains[j]);
                site->domains[j] = site->domains[--site->n_domains];
                found = true;
                break;
            }
        }
        if (!found) {
            r = error_set(&err, -ENOENT, "site %s has no domain %s", site->name, ascii);
            goto out;
        }
    }
    if (n_add > 0) {
        char **grown = realloc(site->domains, (site->n_domains + n_add) * sizeof(char *));
        if (!grown) {
            r = error_set(&err, -ENOMEM, "out of memory");
            goto out;
        }
        site->domains = grown;
        for (size_t i = 0; i < n_add; i++) {
            _cleanup_free_ char *ascii = NULL;
            const char *reason;
            bool dup = false;
            if (domain_normalize(add[i], &ascii, &reason) < 0) {
                r = error_set(&err, -EINVAL, "invalid domain \"%s\": %s", add[i], reason);
                goto out;
            }
            for (size_t j = 0; j < site->n_domains && !dup; j++)
                dup = streq(site->domains[j], ascii);
            if (!dup)
                site->domains[site->n_domains++] = TAKE_PTR(ascii);
        }
    }
    r = dry_run ? sites_check(cfg->sites, site, false, &err) : sites_update(cfg->sites, site, req->actor, NULL, &err);
out:
    free_strings(add, n_add);
    free_strings(drop, n_drop);
    if (r < 0) {
        api_reply_failure(res, &err);
        return;
    }
    if (dry_run) {
        reply_checked(res, site->name);
        return;
    }
    struct store_site stored = { 0 };
    if (store_site_get(cfg->store, site->name, &stored) == 0) {
        api_reply(res, 200);
        api_write_site(cfg, &res->json, &stored);
    } else {
        api_reply_error(res, 500, "cannot read the site back: %s", store_errmsg(cfg->store));
    }
    store_site_done(&stored);
}

void api_handle_php(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    (void)cfg;
    if (req->n_segments != 2 || !streq(req->segments[1], "settings")) {
        api_reply_error(res, 404, "no such API endpoint");
        return;
    }
    if (req->method != HTTP_GET) {
        api_reply_error(res, 405, "use GET on /api/v1/php/settings");
        return;
    }
    api_reply(res, 200);
    struct json_writer *w = &res->json;
    struct php_setting_info info;
    json_object_begin(w);
    json_key(w, "settings");
    json_array_begin(w);
    for (size_t i = 0; php_setting_info(i, &info); i++) {
        json_object_begin(w);
        json_kv_string(w, "key", info.key);
        json_kv_string(w, "default", info.default_value);
        json_kv_string(w, "accepts", info.accepts);
        json_kv_string(w, "help", info.help);
        json_object_end(w);
    }
    json_array_end(w);
    json_object_end(w);
}

/* DELETE's query: nothing, or purge=1|true (purge=0|false also means keep). */
static bool remove_query_valid(const char *query, bool *ret_purge)
{
    char v[8];
    *ret_purge = false;
    if (!query || !*query)
        return true;
    if (!api_query_get(query, "purge", v, sizeof(v)))
        return false;
    *ret_purge = streq(v, "1") || streq(v, "true");
    return *ret_purge || streq(v, "0") || streq(v, "false");
}

void api_handle_sites(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    if (req->n_segments == 1) {
        if (req->method == HTTP_GET)
            list_sites(cfg, req, res);
        else if (req->method == HTTP_POST)
            create_site(cfg, req, res);
        else
            api_reply_error(res, 405, "use GET or POST on /api/v1/sites");
        return;
    }
    if (req->n_segments > 4 ||
        (req->n_segments == 4 && !streq(req->segments[2], "archives") && !streq(req->segments[2], "keys"))) {
        api_reply_error(res, 404, "no such API endpoint");
        return;
    }
    struct store_site site = { 0 };
    if (!load_site(cfg, req, res, &site))
        return;
    struct error err = { 0 };
    bool purge = false;
    _cleanup_free_ char *kept = NULL;
    if (req->n_segments >= 3 && streq(req->segments[2], "archives")) {
        api_handle_site_archives(cfg, req, &site, res);
    } else if (req->n_segments == 3 && streq(req->segments[2], "restore")) {
        api_handle_site_restore(cfg, req, &site, res);
    } else if (req->n_segments >= 3 && streq(req->segments[2], "keys")) {
        api_handle_site_keys(cfg, req, site.name, res);
    } else if (req->n_segments == 3 && streq(req->segments[2], "logs")) {
        api_handle_site_logs(cfg, req, site.name, res);
    } else if (req->n_segments == 3 && streq(req->segments[2], "stats")) {
        api_handle_site_stats(cfg, req, site.name, res);
    } else if (req->n_segments == 3) {
        const char *action = req->segments[2];
        const char *state = streq(action, "stop") ? "stopped"
                          : streq(action, "start") || streq(action, "restart") ? "running" : NULL;
        if (!state) {
            api_reply_error(res, 404, "no such action \"%s\": use start, stop or restart", action);
        } else if (req->method != HTTP_POST) {
            api_reply_error(res, 405, "use POST to %s a site", action);
        } else if (sites_set_desired_state(cfg->sites, site.name, state, req->actor, &err) < 0) {
            api_reply_failure(res, &err);
        } else if (cfg->runtime && streq(action, "start") && !sites_batch_active(cfg->sites) &&
                   sites_runtime_start(cfg->runtime, site.name, &err) < 0) {
            api_reply_failure(res, &err);
        } else if (cfg->runtime && streq(action, "restart") &&
                   sites_runtime_restart(cfg->runtime, site.name, &err) < 0) {
            api_reply_failure(res, &err);
        } else {
            store_site_done(&site);
            if (store_site_get(cfg->store, req->segments[1], &site) == 0) {
                api_reply(res, 200);
                api_write_site(cfg, &res->json, &site);
            } else {
                api_reply_error(res, 500, "cannot read the site back");
            }
        }
    } else if (req->method == HTTP_GET) {
        api_reply(res, 200);
        api_write_site(cfg, &res->json, &site);
    } else if (req->method == HTTP_PATCH) {
        change_site(cfg, req, res, &site);
    } else if (req->method == HTTP_DELETE) {
        if (api_upload_busy(site.name)) {
            /* Its files are being replaced by a process of berthd's own. */
            api_reply_error(res, 409, "an upload to site %s is in progress: wait for it to end, then remove the "
                            "site", site.name);
        } else if (api_restore_running(site.name)) {
            api_reply_error(res, 409, "site %s is being restored: wait for it to end, then remove it", site.name);
        } else if (api_archive_running(site.name)) {
            api_reply_error(res, 409, "a snapshot of site %s is being made: wait for it to end, then remove the "
                            "site", site.name);
        } else if (!remove_query_valid(req->query, &purge)) {
            api_reply_error(res, 400, "purge is 1 (remove the site's snapshots too) or absent");
        } else if (sites_remove(cfg->sites, site.name, req->actor, purge, &err, &kept) < 0) {
            api_reply_failure(res, &err);
        } else {
            api_reply(res, 200);
            json_object_begin(&res->json);
            json_kv_string(&res->json, "removed", site.name);
            json_key(&res->json, "snapshots_kept_in");
            if (kept)
                json_string(&res->json, kept);
            else
                json_null(&res->json);
            json_object_end(&res->json);
        }
    } else {
        api_reply_error(res, 405, "use GET, PATCH or DELETE on a site");
    }
    store_site_done(&site);
}

/* Whether msg speaks of site name: as `site NAME` or `"NAME"`, whole words. */
static bool names_site(const char *msg, const char *name)
{
    char quoted[80], word[80];
    snprintf(quoted, sizeof(quoted), "\"%s\"", name);
    snprintf(word, sizeof(word), "site %s", name);
    if (strstr(msg, quoted))
        return true;
    size_t n = strlen(word);
    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
        char next = p[n];
        if (!(next >= 'a' && next <= 'z') && !(next >= '0' && next <= '9') && next != '-')
            return true;
    }
    return false;
}

/* The message of an error answer a step wrote into scratch. */
static void step_message(const struct api_response *scratch, char *out, size_t n)
{
    struct json_value *v = NULL;
    const char *msg = NULL;
    if (json_parse(scratch->body.data ? scratch->body.data : "", scratch->body.len, &v, NULL, NULL) == 0)
        msg = json_get_string(json_get(v, "error"), "message");
    snprintf(out, n, "%s", msg ? msg : "refused");
    json_value_free(v);
}

/* Builds the request one step of a batch stands for, as if it came on its own. Returns
 * false, answering 400 in res, when the step is not one of the four forms. */
static bool step_request(const struct json_value *step, struct api_request *sub, const char **ret_site,
                         bool *ret_start, struct api_response *res)
{
    static const char *const known[] = { "site", "create", "change", "state", "remove" };
    if (step->type != JSON_OBJECT) {
        api_reply_error(res, 400, "each change is a JSON object");
        return false;
    }
    if (!only_known_fields(step, known, ARRAY_SIZE(known), res))
        return false;
    const struct json_value *create = json_get(step, "create"), *change = json_get(step, "change");
    const char *state = json_get_string(step, "state"), *site = json_get_string(step, "site");
    bool remove = false;
    int forms = !!create + !!change + !!json_get(step, "state") + !!json_get(step, "remove");
    if (forms != 1) {
        api_reply_error(res, 400, "each change has exactly one of \"create\", \"change\", \"state\" and \"remove\"");
        return false;
    }
    if (create) {
        if (create->type != JSON_OBJECT || json_get(step, "site")) {
            api_reply_error(res, 400, "\"create\" takes the new site's fields as an object, and no \"site\"");
            return false;
        }
        sub->method = HTTP_POST;
        sub->body = create;
        sub->segments[0] = "sites";
        sub->n_segments = 1;
        *ret_site = json_get_string(create, "name");
        return true;
    }
    if (!site) {
        api_reply_error(res, 400, "a \"change\", \"state\" or \"remove\" needs the \"site\" it applies to");
        return false;
    }
    sub->segments[0] = "sites";
    sub->segments[1] = site;
    sub->n_segments = 2;
    sub->body = NULL;
    *ret_site = site;
    if (change) {
        if (change->type != JSON_OBJECT) {
            api_reply_error(res, 400, "\"change\" takes the fields to change as an object");
            return false;
        }
        sub->method = HTTP_PATCH;
        sub->body = change;
    } else if (state) {
        if (!streq(state, "running") && !streq(state, "stopped")) {
            api_reply_error(res, 400, "\"state\" is \"running\" or \"stopped\"");
            return false;
        }
        sub->method = HTTP_POST;
        sub->segments[2] = streq(state, "running") ? "start" : "stop";
        sub->n_segments = 3;
        *ret_start = streq(state, "running");
    } else if (json_get_bool(step, "remove", &remove) && remove) {
        sub->method = HTTP_DELETE;
    } else {
        api_reply_error(res, 400, "\"remove\" is true or absent");
        return false;
    }
    return true;
}

/* Most steps one batch takes: a fleet file of this many sites is already one a
 * person cannot review. */
#define MAX_BATCH_STEPS 10000

void api_handle_apply(const struct api_config *cfg, const struct api_request *req, struct api_response *res)
{
    static const char *const known[] = { "changes" };
    if (req->n_segments != 1) {
        api_reply_error(res, 404, "no such API endpoint");
        return;
    }
    if (req->method != HTTP_POST) {
        api_reply_error(res, 405, "use POST on /api/v1/apply");
        return;
    }
    const struct json_value *changes = req->body ? json_get(req->body, "changes") : NULL;
    if (!changes || changes->type != JSON_ARRAY) {
        api_reply_error(res, 400, "a JSON body {\"changes\": [...]} is required");
        return;
    }
    if (!only_known_fields(req->body, known, ARRAY_SIZE(known), res))
        return;
    size_t n = changes->array.n;
    if (n > MAX_BATCH_STEPS) {
        api_reply_error(res, 413, "%zu changes in one batch; at most %d", n, MAX_BATCH_STEPS);
        return;
    }
    bool dry_run = dry_run_asked(req);
    struct error err = { 0 };
    _cleanup_free_ const char **to_start = calloc(n ? n : 1, sizeof(*to_start));
    size_t n_start = 0;
    if (!to_start) {
        api_reply_error(res, 500, "out of memory");
        return;
    }
    if (sites_batch_begin(cfg->sites, dry_run, &err) < 0) {
        api_reply_failure(res, &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct api_request sub = *req;
        struct api_response scratch = { .body = BUF_INIT(1 << 20) };
        const char *site = NULL;
        bool start = false;
        sub.query = "";   /* a dry run of the batch runs every step for real, then undoes them */
        if (step_request(changes->array.items[i], &sub, &site, &start, &scratch)) {
            if (sub.n_segments == 1)
                create_site(cfg, &sub, &scratch);
            else
                api_handle_sites(cfg, &sub, &scratch);
        }
        if (scratch.status >= 400) {
            char msg[600];
            step_message(&scratch, msg, sizeof(msg));
            sites_batch_end(cfg->sites, false, &err);
            /* "site NAME: " unless the sentence names the site already. */
            bool named = !site || names_site(msg, site);
            api_reply_error(res, scratch.status, "%s%s%s%s; nothing was changed", named ? "" : "site ",
                            named ? "" : site, named ? "" : ": ", msg);
            buf_done(&scratch.body);
            return;
        }
        buf_done(&scratch.body);
        if (start)
            to_start[n_start++] = site;
    }
    if (sites_batch_end(cfg->sites, true, &err) < 0) {
        api_reply_failure(res, &err);
        return;
    }
    /* Committed: every site is tried even after one fails, so that the answer names
     * all that did not start rather than leaving the rest untried and unmentioned. */
    struct buf failures = BUF_INIT(64 * 1024);
    int first_failure = 0;
    for (size_t i = 0; !dry_run && cfg->runtime && i < n_start; i++) {
        err = (struct error){ 0 };
        if (sites_runtime_start(cfg->runtime, to_start[i], &err) >= 0)
            continue;
        if (!first_failure)
            first_failure = err.code;
        bool named = names_site(err.message, to_start[i]);
        buf_printf(&failures, "%s%s%s%s%s", failures.len ? "; " : "", named ? "" : "site ",
                   named ? "" : to_start[i], named ? "" : ": ", err.message);
    }
    if (first_failure) {
        api_reply_error(res, api_status_for(first_failure), "the changes were made, but not every site started: %.*s",
                        (int)failures.len, failures.data);
        buf_done(&failures);
        return;
    }
    buf_done(&failures);
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_bool(&res->json, "dry_run", dry_run);
    json_kv_uint(&res->json, "changes", n);
    json_object_end(&res->json);
}

/* The settings file of a snapshot (berth-site.json):
 *
 *   {"format": "berth-site", "version": 1, "site": NAME, "created_at": SECONDS,
 *    "settings": {"type", "domains", "memory_bytes", "cpu_millis", "pids",
 *                 "io_read_bps", "io_write_bps" (optional: snapshots made before disk
 *                 limits have none, which reads as unlimited),
 *                 "idle_seconds", "always_on", "cmd", "network", "php": {KEY: VALUE}}}
 *
 * A snapshot may come from anywhere (`site restore --file`): the reader checks
 * every member's type and range; the site's own checks (sites_check) still run when
 * the settings are applied. */
#include "snapshot/snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/names.h"
#include "common/util.h"
#include "sites/sites.h"

#define FORMAT_NAME "berth-site"
#define FORMAT_VERSION 1
/* More domains than a site can sensibly hold is not a settings file. */
#define MAX_DOMAINS 1000

int snapshot_settings_write(const struct store_site *site, int64_t now, struct buf *out)
{
    struct json_writer w;
    json_writer_init(&w, out, true);
    json_object_begin(&w);
    json_kv_string(&w, "format", FORMAT_NAME);
    json_kv_int(&w, "version", FORMAT_VERSION);
    json_kv_string(&w, "site", site->name);
    json_kv_int(&w, "created_at", now);
    json_key(&w, "settings");
    json_object_begin(&w);
    json_kv_string(&w, "type", site->type);
    json_key(&w, "domains");
    json_array_begin(&w);
    for (size_t i = 0; i < site->n_domains; i++)
        json_string(&w, site->domains[i]);
    json_array_end(&w);
    json_kv_uint(&w, "memory_bytes", site->memory_max);
    json_kv_uint(&w, "cpu_millis", site->cpu_millis);
    json_kv_uint(&w, "pids", site->pids_max);
    json_kv_uint(&w, "io_read_bps", site->io_read_bps);
    json_kv_uint(&w, "io_write_bps", site->io_write_bps);
    json_kv_uint(&w, "idle_seconds", site->idle_seconds);
    json_kv_bool(&w, "always_on", site->always_on);
    json_kv_string(&w, "cmd", site->cmd);
    json_kv_string(&w, "network", site->network);
    json_key(&w, "php");
    json_object_begin(&w);
    struct json_value *php = NULL;
    if (site->php_settings && json_parse(site->php_settings, strlen(site->php_settings), &php, NULL, NULL) == 0 &&
        php->type == JSON_OBJECT)
        for (size_t i = 0; i < php->object.n; i++)
            if (php->object.values[i]->type == JSON_STRING)
                json_kv_string(&w, php->object.keys[i], php->object.values[i]->string.data);
    json_value_free(php);
    json_object_end(&w);
    json_object_end(&w);
    json_object_end(&w);
    return json_writer_finish(&w);
}

static int read_uint(const struct json_value *s, const char *key, uint64_t max, uint64_t *ret, struct error *err)
{
    const struct json_value *v = json_get(s, key);
    if (!v)
        return error_set(err, -EINVAL, "the snapshot's settings have no \"%s\"", key);
    if (v->type != JSON_NUMBER || !v->number.is_integer || v->number.integer < 0 ||
        (uint64_t)v->number.integer > max)
        return error_set(err, -EINVAL, "the snapshot's \"%s\" must be a whole number from 0 to %llu", key,
                         (unsigned long long)max);
    *ret = (uint64_t)v->number.integer;
    return 0;
}

/* A string member, one of allowed (NULL: any) or null when nullable. */
static int read_string(const struct json_value *s, const char *key, const char *const *allowed, bool nullable,
                       char **ret, struct error *err)
{
    const struct json_value *v = json_get(s, key);
    if (!v || (v->type == JSON_NULL && !nullable) || (v->type != JSON_NULL && v->type != JSON_STRING))
        return error_set(err, -EINVAL, "the snapshot's settings need \"%s\" as a string", key);
    if (v->type == JSON_NULL)
        return 0;
    if (strlen(v->string.data) != v->string.len)
        return error_set(err, -EINVAL, "the snapshot's \"%s\" holds a NUL", key);
    if (allowed) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = streq(v->string.data, allowed[i]);
        if (!ok)
            return error_set(err, -EINVAL, "the snapshot's \"%s\" is not one berth knows: \"%.64s\"", key,
                             v->string.data);
    }
    char *copy = strdup(v->string.data);
    if (!copy)
        return error_set(err, -ENOMEM, "out of memory");
    free(*ret);
    *ret = copy;
    return 0;
}

static int read_domains(const struct json_value *s, struct store_site *ret, struct error *err)
{
    const struct json_value *v = json_get(s, "domains");
    if (!v || v->type != JSON_ARRAY)
        return error_set(err, -EINVAL, "the snapshot's settings need \"domains\" as a list");
    if (v->array.n > MAX_DOMAINS)
        return error_set(err, -EINVAL, "the snapshot lists more than %d domains", MAX_DOMAINS);
    ret->domains = calloc(v->array.n ? v->array.n : 1, sizeof(char *));
    if (!ret->domains)
        return error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < v->array.n; i++) {
        const struct json_value *d = v->array.items[i];
        if (d->type != JSON_STRING || strlen(d->string.data) != d->string.len)
            return error_set(err, -EINVAL, "the snapshot's domains must be strings");
        char *ascii = NULL;
        const char *reason;
        if (domain_normalize(d->string.data, &ascii, &reason) < 0)
            return error_set(err, -EINVAL, "the snapshot's domain \"%.64s\" is invalid: %s", d->string.data,
                             reason);
        bool dup = false;
        for (size_t j = 0; j < ret->n_domains && !dup; j++)
            dup = streq(ret->domains[j], ascii);
        if (dup)
            free(ascii);
        else
            ret->domains[ret->n_domains++] = ascii;
    }
    return 0;
}

static int read_php(const struct json_value *s, struct store_site *ret, struct error *err)
{
    const struct json_value *v = json_get(s, "php");
    if (!v)
        return 0;
    if (v->type != JSON_OBJECT)
        return error_set(err, -EINVAL, "the snapshot's \"php\" must be an object of settings");
    for (size_t i = 0; i < v->object.n; i++) {
        const struct json_value *value = v->object.values[i];
        if (value->type != JSON_STRING)
            return error_set(err, -EINVAL, "the snapshot's PHP setting \"%.64s\" must be a string",
                             v->object.keys[i]);
        char *next = NULL;
        int r = php_settings_apply(ret->php_settings, v->object.keys[i], value->string.data, &next, err);
        if (r < 0)
            return r;
        free(ret->php_settings);
        ret->php_settings = next;
    }
    return 0;
}

int snapshot_settings_read(const char *json, size_t len, struct store_site *ret, struct error *err)
{
    static const char *const types[] = { "static", "php", "app", NULL };
    static const char *const networks[] = { "none", "nat", "host", NULL };
    struct json_value *doc = NULL;
    const char *msg = NULL;
    size_t off = 0;
    if (json_parse(json, len, &doc, &msg, &off) < 0)
        return error_set(err, -EINVAL, "the snapshot's settings are not JSON: %s at byte %zu",
                         msg ? msg : "out of memory", off);
    int r = 0;
    int64_t version = 0;
    const struct json_value *s = json_get(doc, "settings");
    if (doc->type != JSON_OBJECT || !streq_ptr(json_get_string(doc, "format"), FORMAT_NAME))
        r = error_set(err, -EINVAL, "not a berth snapshot's settings (no \"format\": \"" FORMAT_NAME "\")");
    else if (!json_get_int(doc, "version", &version) || version != FORMAT_VERSION)
        r = error_set(err, -EINVAL, "the snapshot's settings are of a version this berth does not read");
    else if (!s || s->type != JSON_OBJECT)
        r = error_set(err, -EINVAL, "the snapshot has no \"settings\" object");
    uint64_t memory = 0, cpu = 0, pids = 0, idle = 0, io_read = 0, io_write = 0;
    if (r >= 0 &&
        ((r = read_string(s, "type", types, false, &ret->type, err)) < 0 ||
         (r = read_string(s, "network", networks, false, &ret->network, err)) < 0 ||
         (r = read_string(s, "cmd", NULL, true, &ret->cmd, err)) < 0 ||
         (r = read_uint(s, "memory_bytes", INT64_MAX, &memory, err)) < 0 ||
         (r = read_uint(s, "cpu_millis", UINT32_MAX, &cpu, err)) < 0 ||
         (r = read_uint(s, "pids", 1000000, &pids, err)) < 0 ||
         (json_get(s, "io_read_bps") && (r = read_uint(s, "io_read_bps", INT64_MAX, &io_read, err)) < 0) ||
         (json_get(s, "io_write_bps") && (r = read_uint(s, "io_write_bps", INT64_MAX, &io_write, err)) < 0) ||
         (r = read_uint(s, "idle_seconds", UINT32_MAX, &idle, err)) < 0 ||
         (r = read_domains(s, ret, err)) < 0 ||
         (r = read_php(s, ret, err)) < 0))
        goto out;
    if (r >= 0) {
        const struct json_value *on = json_get(s, "always_on");
        if (!on || on->type != JSON_BOOL)
            r = error_set(err, -EINVAL, "the snapshot's settings need \"always_on\" as true or false");
        else
            ret->always_on = on->boolean;
    }
    ret->memory_max = memory;
    ret->cpu_millis = (uint32_t)cpu;
    ret->pids_max = (uint32_t)pids;
    ret->io_read_bps = io_read;
    ret->io_write_bps = io_write;
    ret->idle_seconds = (uint32_t)idle;
out:
    json_value_free(doc);
    return r;
}

int snapshot_settings_apply(struct store_site *site, const char *json, size_t len, struct error *err)
{
    struct store_site snap = { 0 };
    int r = snapshot_settings_read(json, len, &snap, err);
    if (r < 0) {
        store_site_done(&snap);
        return r;
    }
#define MOVE(f) do { free(site->f); site->f = TAKE_PTR(snap.f); } while (0)
    MOVE(type);
    MOVE(cmd);
    MOVE(network);
    MOVE(php_settings);
#undef MOVE
    site->memory_max = snap.memory_max;
    site->cpu_millis = snap.cpu_millis;
    site->pids_max = snap.pids_max;
    site->io_read_bps = snap.io_read_bps;
    site->io_write_bps = snap.io_write_bps;
    site->idle_seconds = snap.idle_seconds;
    site->always_on = snap.always_on;
    for (size_t i = 0; i < site->n_domains; i++)
        free(site->domains[i]);
    free(site->domains);
    site->domains = TAKE_PTR(snap.domains);
    site->n_domains = snap.n_domains;
    snap.n_domains = 0;
    store_site_done(&snap);
    return 0;
}

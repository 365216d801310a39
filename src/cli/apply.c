/* berth apply FILE.yaml [--prune] [--dry-run]: brings the sites berthd holds in line
 * with a YAML file, through the same API as every other command.
 *
 *   sites:
 *     blog:
 *       type: php
 *       domains: [blog.example.org]
 *       memory: 512M
 *       php: {memory_limit: 256M}
 *       backups: {every: daily, hour: 3, keep: 7}
 *     docs: {}
 *
 * The whole file is read and checked here first. A field the file names is managed:
 * its value is made so (domains and php exactly, extra ones are removed); a field it
 * leaves out keeps whatever the site has, but for backups: a site without them has
 * no automatic backups (the file says which sites are backed up, and a line
 * removed turns them off). The changes go to the daemon as one batch
 * (POST /api/v1/apply), which makes all of them or none: removals (--prune) first,
 * then domain removals, then creates and changes, so a domain can move from one site
 * to another in one apply. --dry-run sends the same batch with ?dry_run=1. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdarg.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/names.h"

#define MAX_LIST 256

struct want {
    const char *name;
    const char *type, *cmd, *network, *owner, *memory, *cpu, *state, *io_read, *io_write;
    int64_t pids, idle;          /* -1: not given */
    int always_on;               /* -1: not given */
    bool has_domains, has_php;
    const char *domains[MAX_LIST];
    size_t n_domains;
    const char *php_keys[MAX_LIST], *php_values[MAX_LIST];
    size_t n_php;
    const char *backups;         /* "off" (also when not given), "daily", "weekly" */
    int64_t backup_hour, backup_keep;
};

struct plan_step {
    const struct want *want;
    const struct json_value *current;   /* NULL: create */
    struct buf patch;                   /* the PATCH body, when something changes */
    struct buf removals;                /* {"remove_domains": [...]}, sent first */
    struct buf summary;                 /* "memory 256M -> 512M; domains +a" */
    const char *action;                 /* "start" / "stop" / NULL */
};

static void usage(FILE *f)
{
    fputs("Usage: berth apply FILE.yaml [--prune] [--dry-run]\n"
          "  Creates and changes sites so that they match FILE (a mapping \"sites\" of\n"
          "  NAME: {type, domains, cmd, memory, cpu, pids, io_read, io_write, network, owner, always_on,\n"
          "  idle, state, php, backups: {every: daily|weekly|off, hour: 0-23, keep: 1-1000}}); a site\n"
          "  without backups has none. --prune also removes the sites FILE does not name;\n"
          "  --dry-run prints what would change and changes nothing.\n", f);
}

/* ---- reading the file ---- */

static const char *scalar(struct fy_node *n)
{
    return n && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

/* "FILE: /sites/blog/memory: why" on stderr. */
static int _printf_(3, 4) file_error(const char *file, struct fy_node *at, const char *fmt, ...)
{
    char *where = at ? fy_node_get_path(at) : NULL;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int r = cli_fail("%s: %s%s%s", file, where ? where : "", where ? ": " : "", msg);
    free(where);
    return r;
}

static int read_uint(const char *file, struct fy_node *v, uint64_t max, int64_t *ret)
{
    uint64_t x;
    const char *s = scalar(v);
    if (!s || parse_uint(s, 0, max, &x) < 0)
        return file_error(file, v, "must be a whole number from 0 to %" PRIu64, max);
    *ret = (int64_t)x;
    return 0;
}

static int read_bool(const char *file, struct fy_node *v, int *ret)
{
    const char *s = scalar(v);
    if (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0))
        *ret = 1;
    else if (s && (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0))
        *ret = 0;
    else
        return file_error(file, v, "must be true or false");
    return 0;
}

static bool backups_every_valid(const char *s)
{
    return s && (streq(s, "off") || streq(s, "daily") || streq(s, "weekly"));
}

/* backups: {every: daily|weekly|off, hour: 0-23, keep: 1-1000} (hour 3 and keep 7
 * when left out), or backups: off|daily|weekly alone. */
static int read_backups(const char *file, struct fy_node *v, struct want *w)
{
    const char *s = scalar(v);
    if (s) {
        if (!backups_every_valid(s))
            return file_error(file, v, "must be off, daily, weekly or {every: daily, hour: 3, keep: 7}");
        w->backups = s;
        return 0;
    }
    if (!fy_node_is_mapping(v))
        return file_error(file, v, "must be a mapping like {every: daily, hour: 3, keep: 7}");
    w->backups = NULL;
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(v, &iter))) {
        const char *key = scalar(fy_node_pair_key(pair));
        struct fy_node *val = fy_node_pair_value(pair);
        uint64_t x;
        if (key && streq(key, "every")) {
            if (!backups_every_valid(scalar(val)))
                return file_error(file, val, "must be daily, weekly or off");
            w->backups = scalar(val);
        } else if (key && streq(key, "hour")) {
            if (!scalar(val) || parse_uint(scalar(val), 0, 23, &x) < 0)
                return file_error(file, val, "must be an hour of the day from 0 to 23 (UTC)");
            w->backup_hour = (int64_t)x;
        } else if (key && streq(key, "keep")) {
            if (!scalar(val) || parse_uint(scalar(val), 1, 1000, &x) < 0)
                return file_error(file, val, "must be a number of snapshots from 1 to 1000");
            w->backup_keep = (int64_t)x;
        } else {
            return file_error(file, val, "unknown setting \"%s\" (known: every, hour, keep)", key ? key : "?");
        }
    }
    if (!w->backups)
        return file_error(file, v, "needs \"every\": daily, weekly or off");
    return 0;
}

static void write_backups(struct json_writer *w, const struct want *want)
{
    json_key(w, "backups");
    json_object_begin(w);
    json_kv_string(w, "every", want->backups);
    if (!streq(want->backups, "off")) {
        json_kv_int(w, "hour", want->backup_hour);
        json_kv_int(w, "keep", want->backup_keep);
    }
    json_object_end(w);
}

static int read_site(const char *file, const char *name, struct fy_node *spec, struct want *w)
{
    *w = (struct want){ .name = name, .pids = -1, .idle = -1, .always_on = -1, .backups = "off",
                        .backup_hour = 3, .backup_keep = 7 };
    if (!site_name_valid(name))
        return file_error(file, spec, "\"%s\" is not a valid site name (1 to 63 lowercase letters, digits "
                          "and '-')", name);
    if (site_name_reserved(name))
        return file_error(file, spec, "the site name \"%s\" is reserved (panel, api and www are berth's)", name);
    if (!spec || (fy_node_is_scalar(spec) && !*fy_node_get_scalar0(spec)))
        return 0;   /* "blog:" alone: a static site with berth's defaults */
    if (!fy_node_is_mapping(spec))
        return file_error(file, spec, "a site is a mapping of settings");
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(spec, &iter))) {
        const char *key = scalar(fy_node_pair_key(pair));
        struct fy_node *v = fy_node_pair_value(pair);
        const char **str = !key ? NULL
                         : streq(key, "type") ? &w->type : streq(key, "cmd") ? &w->cmd
                         : streq(key, "network") ? &w->network : streq(key, "owner") ? &w->owner
                         : streq(key, "memory") ? &w->memory : streq(key, "cpu") ? &w->cpu
                         : streq(key, "io_read") ? &w->io_read : streq(key, "io_write") ? &w->io_write
                         : streq(key, "state") ? &w->state : NULL;
        int r = 0;
        if (str) {
            if (!(*str = scalar(v)))
                return file_error(file, v, "must be a single value");
        } else if (key && streq(key, "pids")) {
            r = read_uint(file, v, 1000000, &w->pids);
        } else if (key && streq(key, "idle")) {
            r = read_uint(file, v, UINT32_MAX, &w->idle);
        } else if (key && streq(key, "always_on")) {
            r = read_bool(file, v, &w->always_on);
        } else if (key && streq(key, "domains")) {
            w->has_domains = true;
            if (!fy_node_is_sequence(v))
                return file_error(file, v, "must be a list of domain names");
            void *it = NULL;
            struct fy_node *item;
            while ((item = fy_node_sequence_iterate(v, &it))) {
                if (!scalar(item))
                    return file_error(file, item, "must be a domain name");
                if (w->n_domains == MAX_LIST)
                    return file_error(file, v, "more than %d domains", MAX_LIST);
                w->domains[w->n_domains++] = scalar(item);
            }
        } else if (key && streq(key, "backups")) {
            r = read_backups(file, v, w);
        } else if (key && streq(key, "php")) {
            w->has_php = true;
            if (!fy_node_is_mapping(v))
                return file_error(file, v, "must be a mapping of PHP settings, like memory_limit: 256M");
            void *it = NULL;
            struct fy_node_pair *p;
            while ((p = fy_node_mapping_iterate(v, &it))) {
                const char *k = scalar(fy_node_pair_key(p)), *val = scalar(fy_node_pair_value(p));
                if (!k || !val || !*val)
                    return file_error(file, fy_node_pair_value(p), "a PHP setting needs a value");
                if (w->n_php == MAX_LIST)
                    return file_error(file, v, "more than %d PHP settings", MAX_LIST);
                w->php_keys[w->n_php] = k;
                w->php_values[w->n_php++] = val;
            }
        } else {
            return file_error(file, v, "unknown setting \"%s\" (known: type, domains, cmd, memory, cpu, pids, "
                              "io_read, io_write, network, owner, always_on, idle, state, php, backups)", key ? key : "?");
        }
        if (r != 0)
            return r;
    }
    if (w->state && !streq(w->state, "running") && !streq(w->state, "stopped"))
        return file_error(file, fy_node_mapping_lookup_by_string(spec, "state", FY_NT), "must be running or stopped");
    return 0;
}

/* Refuses, where they stand, the nodes that would be read as something else:
 * an alias (*name) is a pointer to another node that the document keeps as it is,
 * so read as a plain value it would be its name ("memory: *m" a memory of "m"; a
 * fleet file gains little from them); a value holding a NUL byte ("x\0y") would
 * be read as what comes before it. */
static int refuse_misread_nodes(const char *file, struct fy_node *n)
{
    if (!n)
        return 0;
    if (fy_node_get_style(n) == FYNS_ALIAS)
        return file_error(file, n, "YAML aliases (*%s) are not supported here; write the value out",
                          fy_node_get_scalar0(n) ?: "?");
    size_t len = 0;
    const char *text = fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
    if (text && memchr(text, 0, len))
        return file_error(file, n, "a value may not hold a NUL byte (\\0)");
    void *iter = NULL;
    if (fy_node_is_mapping(n)) {
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(n, &iter))) {
            int r = refuse_misread_nodes(file, fy_node_pair_key(pair));
            if (r == 0)
                r = refuse_misread_nodes(file, fy_node_pair_value(pair));
            if (r != 0)
                return r;
        }
    } else if (fy_node_is_sequence(n)) {
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(n, &iter))) {
            int r = refuse_misread_nodes(file, item);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

static void fy_diag_destroyp(struct fy_diag **d)
{
    if (*d)
        fy_diag_destroy(*d);
}

/* Keeps the parser's first error ("3:9: flow sequence without a closing bracket"). */
static void keep_first_error(struct fy_diag *diag, void *user, const char *text, size_t len)
{
    char *first = user;
    if (first[0] || len == 0)
        return;
    snprintf(first, 256, "%.*s", (int)len, text);
    first[strcspn(first, "\n")] = 0;
}

/* Parses the file into *ret_doc and the sites into wants (n of them). */
static int read_file_sites(const char *file, struct fy_document **ret_doc, struct want **ret_wants, size_t *ret_n)
{
    char first_error[256] = "";
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = keep_first_error;
    dcfg.user = first_error;
    dcfg.level = FYET_ERROR;
    dcfg.colorize = dcfg.show_source = dcfg.show_type = dcfg.show_module = false;
    dcfg.show_position = true;
    dcfg.position_width = 0;
    _cleanup_(fy_diag_destroyp) struct fy_diag *diag = fy_diag_create(&dcfg);
    struct fy_parse_cfg pcfg = { .flags = FYPCF_QUIET, .diag = diag };
    if (access(file, R_OK) < 0)
        return cli_fail("cannot read %s: %s", file, strerror(errno));
    struct fy_document *doc = fy_document_build_from_file(&pcfg, file);
    if (!doc) {
        if (first_error[0])
            return cli_fail("not valid YAML: %s", first_error);
        return cli_fail("%s is not valid YAML", file);
    }
    struct fy_node *root = fy_document_root(doc);
    struct fy_node *sites = NULL;
    int r = refuse_misread_nodes(file, root);
    if (r == 0 && root && !fy_node_is_mapping(root)) {
        r = file_error(file, root, "the top level must be a mapping with \"sites\"");
    } else if (r == 0 && root) {
        void *iter = NULL;
        struct fy_node_pair *pair;
        while (r == 0 && (pair = fy_node_mapping_iterate(root, &iter))) {
            const char *key = scalar(fy_node_pair_key(pair));
            if (key && streq(key, "sites"))
                sites = fy_node_pair_value(pair);
            else
                r = file_error(file, fy_node_pair_value(pair), "unknown key \"%s\" (the file holds \"sites\")",
                               key ? key : "?");
        }
    }
    if (r == 0 && sites && !fy_node_is_mapping(sites) && !(fy_node_is_scalar(sites) && !*fy_node_get_scalar0(sites)))
        r = file_error(file, sites, "must be a mapping of site names to their settings");
    size_t n = sites && fy_node_is_mapping(sites) ? (size_t)fy_node_mapping_item_count(sites) : 0;
    struct want *wants = r == 0 ? calloc(n ? n : 1, sizeof(*wants)) : NULL;
    if (r == 0 && !wants)
        r = cli_fail("out of memory");
    void *iter = NULL;
    struct fy_node_pair *pair;
    for (size_t i = 0; r == 0 && i < n && (pair = fy_node_mapping_iterate(sites, &iter)); i++) {
        const char *name = scalar(fy_node_pair_key(pair));
        r = name ? read_site(file, name, fy_node_pair_value(pair), &wants[i])
                 : file_error(file, sites, "a site name must be a plain word");
    }
    if (r != 0) {
        free(wants);
        fy_document_destroy(doc);
        return r;
    }
    *ret_doc = doc;
    *ret_wants = wants;
    *ret_n = n;
    return 0;
}

/* ---- comparing with what berthd holds ---- */

/* "0.5" → 500, "2" → 2000, "unlimited" → 0; -1 when it is not a CPU amount (the
 * daemon then says why). */
static int64_t cpu_millis(const char *s)
{
    if (streq(s, "unlimited") || streq(s, "0"))
        return 0;
    uint64_t whole = 0, frac = 0, scale = 1000;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9' && whole < 1000000)
        whole = whole * 10 + (uint64_t)(*p++ - '0');
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && scale > 1) {
            scale /= 10;
            frac += (uint64_t)(*p++ - '0') * scale;
        }
    }
    return *p ? -1 : (int64_t)(whole * 1000 + frac);
}

static int64_t memory_bytes(const char *s)
{
    uint64_t b;
    if (streq(s, "unlimited"))
        return 0;
    return parse_size(s, &b) < 0 ? -1 : (int64_t)b;
}

static void note(struct buf *summary, const char *fmt, ...) _printf_(2, 3);
static void note(struct buf *summary, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (summary->len)
        (void)buf_append(summary, "; ", 2);
    (void)buf_vprintf(summary, fmt, ap);
    va_end(ap);
}

static void diff_string(struct json_writer *w, struct buf *summary, const char *key, const char *want,
                        const char *cur)
{
    if (want && !streq_ptr(want, cur)) {
        json_kv_string(w, key, want);
        note(summary, "%s %s -> %s", key, cur ? cur : "-", want);
    }
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, list[i]) == 0)
            return true;
    return false;
}

/* Fills step->patch (a JSON object, empty "{}" when nothing changes), removals and
 * summary from the difference between want and the site berthd holds. */
static void diff_site(struct plan_step *step)
{
    const struct want *want = step->want;
    const struct json_value *cur = step->current;
    const struct json_value *limits = json_get(cur, "limits");
    struct json_writer w;
    json_writer_init(&w, &step->patch, false);
    json_object_begin(&w);
    diff_string(&w, &step->summary, "type", want->type, json_get_string(cur, "type"));
    diff_string(&w, &step->summary, "cmd", want->cmd, json_get_string(cur, "cmd"));
    diff_string(&w, &step->summary, "network", want->network, json_get_string(cur, "network"));
    diff_string(&w, &step->summary, "owner", want->owner, json_get_string(cur, "owner"));
    int64_t v;
    if (want->memory && (!json_get_int(limits, "memory_bytes", &v) || memory_bytes(want->memory) != v)) {
        json_kv_string(&w, "memory", want->memory);
        note(&step->summary, "memory %s -> %s", json_get_string(limits, "memory") ?: "-", want->memory);
    }
    static const char *const io_keys[2][2] = { { "io_read", "io_read_bps" }, { "io_write", "io_write_bps" } };
    for (int i = 0; i < 2; i++) {
        const char *io = i == 0 ? want->io_read : want->io_write;
        if (io && (!json_get_int(limits, io_keys[i][1], &v) || memory_bytes(io) != v)) {
            json_kv_string(&w, io_keys[i][0], io);
            note(&step->summary, "%s %s -> %s", io_keys[i][0], json_get_string(limits, io_keys[i][0]) ?: "-", io);
        }
    }
    if (want->cpu && (!json_get_int(limits, "cpu_millis", &v) || cpu_millis(want->cpu) != v)) {
        json_kv_string(&w, "cpu", want->cpu);
        note(&step->summary, "cpu %s -> %s", json_get_string(limits, "cpu") ?: "-", want->cpu);
    }
    if (want->pids >= 0 && (!json_get_int(limits, "pids", &v) || v != want->pids)) {
        json_kv_int(&w, "pids", want->pids);
        note(&step->summary, "pids -> %" PRId64, want->pids);
    }
    if (want->idle >= 0 && (!json_get_int(cur, "idle_seconds", &v) || v != want->idle)) {
        json_kv_int(&w, "idle_seconds", want->idle);
        note(&step->summary, "idle %" PRId64 "s -> %" PRId64 "s", v, want->idle);
    }
    bool on;
    if (want->always_on >= 0 && (!json_get_bool(cur, "always_on", &on) || on != (want->always_on == 1))) {
        json_kv_bool(&w, "always_on", want->always_on == 1);
        note(&step->summary, "%s", want->always_on ? "always on" : "on demand");
    }
    if (want->has_domains) {
        const struct json_value *have = json_get(cur, "domains");
        const char *have_list[MAX_LIST];
        size_t n_have = 0;
        for (size_t i = 0; have && have->type == JSON_ARRAY && i < have->array.n && n_have < MAX_LIST; i++)
            if (have->array.items[i]->type == JSON_STRING)
                have_list[n_have++] = have->array.items[i]->string.data;
        bool any = false;
        for (size_t i = 0; i < want->n_domains; i++) {
            if (in_list(want->domains[i], have_list, n_have))
                continue;
            if (!any)
                json_key(&w, "add_domains"), json_array_begin(&w);
            any = true;
            json_string(&w, want->domains[i]);
            note(&step->summary, "domain +%s", want->domains[i]);
        }
        if (any)
            json_array_end(&w);
        struct json_writer rw;
        json_writer_init(&rw, &step->removals, false);
        json_object_begin(&rw);
        any = false;
        for (size_t i = 0; i < n_have; i++) {
            if (in_list(have_list[i], want->domains, want->n_domains))
                continue;
            if (!any)
                json_key(&rw, "remove_domains"), json_array_begin(&rw);
            any = true;
            json_string(&rw, have_list[i]);
            note(&step->summary, "domain -%s", have_list[i]);
        }
        if (any)
            json_array_end(&rw);
        json_object_end(&rw);
        (void)json_writer_finish(&rw);
    }
    if (want->has_php) {
        const struct json_value *have = json_get(cur, "php");
        bool any = false;
        for (size_t i = 0; i < want->n_php; i++) {
            const char *h = json_get_string(have, want->php_keys[i]);
            if (h && strcasecmp(h, want->php_values[i]) == 0)
                continue;
            if (!any)
                json_key(&w, "php"), json_object_begin(&w);
            any = true;
            json_kv_string(&w, want->php_keys[i], want->php_values[i]);
            note(&step->summary, "php %s=%s", want->php_keys[i], want->php_values[i]);
        }
        for (size_t i = 0; have && have->type == JSON_OBJECT && i < have->object.n; i++) {
            if (in_list(have->object.keys[i], want->php_keys, want->n_php))
                continue;
            if (!any)
                json_key(&w, "php"), json_object_begin(&w);
            any = true;
            json_key(&w, have->object.keys[i]);
            json_null(&w);
            note(&step->summary, "php %s back to default", have->object.keys[i]);
        }
        if (any)
            json_object_end(&w);
    }
    /* Backups are managed whether the file names them or not (none: off). */
    const struct json_value *cb = json_get(cur, "backups");
    const char *cur_every = json_get_string(cb, "every") ?: "off";
    int64_t cur_hour = -1, cur_keep = -1;
    json_get_int(cb, "hour", &cur_hour);
    json_get_int(cb, "keep", &cur_keep);
    bool off = streq(want->backups, "off");
    if (!streq(want->backups, cur_every) || (!off && (cur_hour != want->backup_hour || cur_keep != want->backup_keep))) {
        write_backups(&w, want);
        if (off)
            note(&step->summary, "backups %s -> off", cur_every);
        else if (streq(cur_every, "off"))
            note(&step->summary, "backups off -> %s at %02" PRId64 ":00 UTC, keep %" PRId64, want->backups,
                 want->backup_hour, want->backup_keep);
        else
            note(&step->summary, "backups %s at %02" PRId64 ":00 UTC, keep %" PRId64 " -> %s at %02" PRId64
                 ":00 UTC, keep %" PRId64, cur_every, cur_hour, cur_keep, want->backups, want->backup_hour,
                 want->backup_keep);
    }
    json_object_end(&w);
    (void)json_writer_finish(&w);
    const char *desired = json_get_string(cur, "desired_state");
    if (want->state && !streq_ptr(desired, want->state)) {
        step->action = streq(want->state, "running") ? "start" : "stop";
        note(&step->summary, "%s", streq(want->state, "running") ? "start" : "stop");
    }
}

/* The POST body creating want's site. */
static void create_body(const struct want *want, struct buf *out)
{
    struct json_writer w;
    json_writer_init(&w, out, false);
    json_object_begin(&w);
    json_kv_string(&w, "name", want->name);
    static const char *const keys[] = { "type", "cmd", "network", "owner", "memory", "cpu", "state", "io_read",
                                        "io_write" };
    const char *const vals[] = { want->type,  want->cmd, want->network, want->owner, want->memory,
                                 want->cpu, want->state, want->io_read, want->io_write };
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (vals[i])
            json_kv_string(&w, keys[i], vals[i]);
    if (want->pids >= 0)
        json_kv_int(&w, "pids", want->pids);
    if (want->idle >= 0)
        json_kv_int(&w, "idle_seconds", want->idle);
    if (want->always_on >= 0)
        json_kv_bool(&w, "always_on", want->always_on == 1);
    if (want->n_domains) {
        json_key(&w, "domains");
        json_array_begin(&w);
        for (size_t i = 0; i < want->n_domains; i++)
            json_string(&w, want->domains[i]);
        json_array_end(&w);
    }
    if (want->n_php) {
        json_key(&w, "php");
        json_object_begin(&w);
        for (size_t i = 0; i < want->n_php; i++)
            json_kv_string(&w, want->php_keys[i], want->php_values[i]);
        json_object_end(&w);
    }
    if (!streq(want->backups, "off"))
        write_backups(&w, want);
    json_object_end(&w);
    (void)json_writer_finish(&w);
}

/* ---- applying ---- */

/* Appends one step to the batch body being built in batch ("{"changes":[" so far):
 * {"create": VALUE} when site is NULL, else {"site": SITE, KEY: VALUE}; VALUE is JSON. */
static void add_step(struct buf *batch, size_t *n_steps, const char *site, const char *key, const char *value)
{
    struct buf name = BUF_INIT(1024);
    struct json_writer w;
    json_writer_init(&w, &name, false);
    json_string(&w, site);
    (void)json_writer_finish(&w);
    if (site)
        buf_printf(batch, "%s{\"site\":%s,\"%s\":%s}", *n_steps ? "," : "", name.data, key, value);
    else
        buf_printf(batch, "%s{\"%s\":%s}", *n_steps ? "," : "", key, value);
    (*n_steps)++;
    buf_done(&name);
}

/* One domain of the file or of a site berthd holds, by its normalised form (a
 * name that does not normalise goes as written, in lowercase: the daemon refuses
 * it with the reason). */
struct domain_entry {
    char *key;
    size_t want;                        /* index in wants; SIZE_MAX: a site that keeps it */
    const char *keeper, *held;          /* that site and the domain as it holds it */
    size_t order;                       /* wants' domains come first, in the file's order */
};

static int compare_domain_entries(const void *a, const void *b)
{
    const struct domain_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->order < y->order ? -1 : x->order > y->order;
}

static bool add_domain_entry(struct domain_entry **list, size_t *n, size_t *cap, const char *domain,
                             struct domain_entry e)
{
    const char *reason;
    if (*n == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 256;
        struct domain_entry *grown = realloc(*list, grown_cap * sizeof(*grown));
        if (!grown)
            return false;
        *list = grown;
        *cap = grown_cap;
    }
    if (domain_normalize(domain, &e.key, &reason) < 0) {
        if (!(e.key = strdup(domain)))
            return false;
        for (char *p = e.key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    e.order = *n;
    (*list)[(*n)++] = e;
    return true;
}

/* A domain the file gives to a site while another site still holds it once the
 * apply is done (two sites of the file list it, or a site keeps it that the file
 * leaves out without --prune or names without "domains") can only fail at that
 * site's turn, after the changes before it. Finds that first: prints "berth: ...;
 * nothing was changed" and returns false. The domains are sorted once, so that a
 * fleet of thousands of sites is checked in a moment, not pair by pair; the clash
 * named is the one at the file's first such domain. */
static bool domains_unique(const struct want *wants, size_t n_wants, const struct json_value *have, bool prune)
{
    size_t n_have = have && have->type == JSON_ARRAY ? have->array.n : 0;
    struct domain_entry *list = NULL;
    size_t n = 0, cap = 0, n_wanted = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n_wants; i++)
        for (size_t d = 0; ok && d < wants[i].n_domains; d++)
            ok = add_domain_entry(&list, &n, &cap, wants[i].domains[d], (struct domain_entry){ .want = i });
    n_wanted = n;
    for (size_t k = 0; ok && k < n_have; k++) {
        const struct json_value *site = have->array.items[k];
        const char *name = json_get_string(site, "name");
        if (!name)
            continue;
        const struct want *named = NULL;
        for (size_t j = 0; j < n_wants && !named; j++)
            if (streq(wants[j].name, name))
                named = &wants[j];
        if (named ? named->has_domains : prune)
            continue;   /* its domains go as the file says */
        const struct json_value *held = json_get(site, "domains");
        for (size_t m = 0; ok && held && held->type == JSON_ARRAY && m < held->array.n; m++)
            if (held->array.items[m]->type == JSON_STRING)
                ok = add_domain_entry(&list, &n, &cap, held->array.items[m]->string.data,
                                      (struct domain_entry){ .want = SIZE_MAX, .keeper = name,
                                                             .held = held->array.items[m]->string.data });
    }
    if (!ok) {
        cli_fail("out of memory");
    } else if (n > 0) {
        /* For each of the file's domains (by its order), the clash it meets: the
         * next site of the file that lists it, else the first site that keeps it. */
        size_t *dup_with = malloc(n_wanted * sizeof(*dup_with) + 1);
        const struct domain_entry **kept_by = calloc(n_wanted + 1, sizeof(*kept_by));
        ok = dup_with && kept_by;
        qsort(list, n, sizeof(*list), compare_domain_entries);
        for (size_t a = 0, b; ok && a < n; a = b) {
            for (b = a + 1; b < n && streq(list[b].key, list[a].key); b++)
                ;
            for (size_t e = a; e < b && list[e].want != SIZE_MAX; e++) {
                size_t next = SIZE_MAX;
                const struct domain_entry *keeper = NULL;
                for (size_t f = a; f < b; f++) {
                    if (list[f].want != SIZE_MAX && list[f].want > list[e].want && list[f].want < next)
                        next = list[f].want;
                    if (list[f].want == SIZE_MAX && !streq(list[f].keeper, wants[list[e].want].name) &&
                        (!keeper || list[f].order < keeper->order))
                        keeper = &list[f];
                }
                dup_with[list[e].order] = next;
                kept_by[list[e].order] = keeper;
            }
        }
        for (size_t o = 0, i = 0, d = 0; ok && o < n_wanted; o++, d++) {
            while (d >= wants[i].n_domains)
                i++, d = 0;
            if (dup_with[o] != SIZE_MAX) {
                cli_fail("domain %s is given to both site %s and site %s; nothing was changed", wants[i].domains[d],
                         wants[i].name, wants[dup_with[o]].name);
                ok = false;
            } else if (kept_by[o]) {
                cli_fail("domain %s is given to site %s but site %s keeps it; nothing was changed", kept_by[o]->held,
                         wants[i].name, kept_by[o]->keeper);
                ok = false;
            }
        }
        if (!dup_with || !kept_by)
            cli_fail("out of memory");
        free(dup_with);
        free(kept_by);
    }
    for (size_t e = 0; e < n; e++)
        free(list[e].key);
    free(list);
    return ok;
}

int cli_apply(const struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "prune", no_argument, NULL, 'p' },
        { "dry-run", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    bool prune = false, dry_run = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'p': prune = true; break;
        case 'n': dry_run = true; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: return cli_usage_error("apply ", "unknown option %s for 'apply'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("apply ", "'apply' takes one YAML file");
    const char *file = argv[optind];

    struct fy_document *doc = NULL;
    struct want *wants = NULL;
    size_t n_wants = 0;
    int r = read_file_sites(file, &doc, &wants, &n_wants);
    if (r != 0)
        return r;

    struct cli_response current = { 0 };
    struct plan_step *steps = calloc(n_wants ? n_wants : 1, sizeof(*steps));
    const struct json_value **gone = NULL;
    size_t n_gone = 0, n_changes = 0, n_unchanged = 0, done = 0;
    r = EXIT_FAILED;
    if (!steps)
        goto out;
    if (cli_request(cli, "GET", "/api/v1/sites", NULL, &current) < 0)
        goto out;
    if (current.status != 200) {
        cli_finish(cli, &current);
        goto out;
    }
    const struct json_value *have = json_get(current.json, "sites");
    size_t n_have = have && have->type == JSON_ARRAY ? have->array.n : 0;
    gone = calloc(n_have ? n_have : 1, sizeof(*gone));
    if (!gone)
        goto out;
    for (size_t i = 0; i < n_wants; i++) {
        struct plan_step *st = &steps[i];
        st->want = &wants[i];
        st->patch = (struct buf)BUF_INIT(1 << 20);
        st->removals = (struct buf)BUF_INIT(1 << 20);
        st->summary = (struct buf)BUF_INIT(1 << 16);
        for (size_t k = 0; k < n_have; k++)
            if (streq_ptr(json_get_string(have->array.items[k], "name"), wants[i].name))
                st->current = have->array.items[k];
        if (st->current) {
            diff_site(st);
        } else {
            create_body(st->want, &st->patch);   /* a stopped site is made stopped */
        }
    }
    for (size_t k = 0; prune && k < n_have; k++) {
        const char *name = json_get_string(have->array.items[k], "name");
        bool named = false;
        for (size_t i = 0; i < n_wants && !named; i++)
            named = streq_ptr(wants[i].name, name);
        if (!named)
            gone[n_gone++] = have->array.items[k];
    }

    /* One batch, in the order below: the daemon makes all of it or none of it, so a
     * refusal late in the file leaves the sites before it and the pruned ones as they
     * were. A dry run is the same batch, checked and undone. */
    if (!domains_unique(wants, n_wants, have, prune))
        goto out;
    struct buf batch = BUF_INIT(64 << 20);
    size_t n_steps = 0;
    buf_printf(&batch, "{\"changes\":[");
    for (size_t k = 0; k < n_gone; k++)
        add_step(&batch, &n_steps, json_get_string(gone[k], "name"), "remove", "true");
    /* Domains leave their old site before any site takes them. */
    for (size_t i = 0; i < n_wants; i++)
        if (steps[i].current && steps[i].removals.len > 2)
            add_step(&batch, &n_steps, wants[i].name, "change", steps[i].removals.data);
    for (size_t i = 0; i < n_wants; i++) {
        struct plan_step *st = &steps[i];
        if (!st->current)
            add_step(&batch, &n_steps, NULL, "create", st->patch.data);
        else if (st->patch.len > 2)
            add_step(&batch, &n_steps, wants[i].name, "change", st->patch.data);
        if (st->current && st->action)
            add_step(&batch, &n_steps, wants[i].name, "state",
                     streq(st->action, "start") ? "\"running\"" : "\"stopped\"");
    }
    buf_printf(&batch, "]}");
    bool ok = true;
    if (n_steps > 0) {
        struct cli_response res;
        ok = cli_request(cli, "POST", dry_run ? "/api/v1/apply?dry_run=1" : "/api/v1/apply", batch.data, &res) >= 0;
        /* Refused: the daemon's error document (with --json) and its one line. */
        if (ok && !(res.status >= 200 && res.status < 300)) {
            cli_finish(cli, &res);
            ok = false;
        }
        cli_response_done(&res);
    }
    buf_done(&batch);
    if (!ok)
        goto out;

    /* The plan, in the order it is carried out. */
    struct buf report = BUF_INIT(16 << 20);
    struct json_writer jw;
    json_writer_init(&jw, &report, true);
    json_object_begin(&jw);
    json_kv_bool(&jw, "dry_run", dry_run);
    json_key(&jw, "changes");
    json_array_begin(&jw);
    for (size_t k = 0; k < n_gone; k++) {
        const char *name = json_get_string(gone[k], "name");
        if (!cli->json)
            printf("- %s: remove\n", name);
        json_object_begin(&jw), json_kv_string(&jw, "site", name), json_kv_string(&jw, "change", "remove"),
            json_object_end(&jw);
        n_changes++;
    }
    for (size_t i = 0; i < n_wants; i++) {
        struct plan_step *st = &steps[i];
        bool changes = !st->current || st->patch.len > 2 || st->removals.len > 2 || st->action;
        if (!changes) {
            n_unchanged++;
            continue;
        }
        n_changes++;
        const char *kind = st->current ? "update" : "create";
        if (!cli->json) {
            if (st->current)
                printf("~ %s: %.*s\n", st->want->name, (int)st->summary.len, st->summary.data);
            else
                printf("+ %s: create (%s)\n", st->want->name, st->want->type ? st->want->type : "static");
        }
        json_object_begin(&jw);
        json_kv_string(&jw, "site", st->want->name);
        json_kv_string(&jw, "change", kind);
        if (st->current) {
            json_key(&jw, "summary");
            json_string_len(&jw, st->summary.data ? st->summary.data : "", st->summary.len);
        }
        json_object_end(&jw);
    }
    json_array_end(&jw);
    json_kv_uint(&jw, "unchanged", n_unchanged);
    if (!cli->json)
        printf("%s%zu change%s, %zu site%s unchanged\n", dry_run ? "dry run: " : "", n_changes,
               n_changes == 1 ? "" : "s", n_unchanged, n_unchanged == 1 ? "" : "s");

    done = dry_run ? 0 : n_changes;
    json_kv_uint(&jw, "applied", done);
    json_object_end(&jw);
    if (json_writer_finish(&jw) == 0 && cli->json)
        printf("%s\n", report.data);
    buf_done(&report);
    r = EXIT_OK;
out:
    for (size_t i = 0; steps && i < n_wants; i++) {
        buf_done(&steps[i].patch);
        buf_done(&steps[i].removals);
        buf_done(&steps[i].summary);
    }
    free(steps);
    free(gone);
    cli_response_done(&current);
    free(wants);
    fy_document_destroy(doc);
    return r;
}

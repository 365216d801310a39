/* berth site create | ls | show | set | start | stop | restart | rm | logs */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("Usage: berth site create NAME [--type static|php|app] [--domain D]... [--cmd \"CMD\"]\n"
          "                         [--memory 256M] [--cpu 0.5] [--pids 128]\n"
          "                         [--io-read 50M] [--io-write 20M]   (disk, per second; admins)\n"
          "                         [--network none|nat|host] [--owner USER] [--always-on]\n"
          "                         [--idle SECONDS] [--php KEY=VALUE]...\n"
          "                         [--backups daily|weekly|off] [--backup-hour H] [--backup-keep N]\n"
          "       berth site ls\n"
          "       berth site show NAME\n"
          "       berth site set NAME [--memory M] [--cpu C] [--pids N] [--idle SECONDS]\n"
          "                           [--io-read R] [--io-write W]   (\"unlimited\" lifts one)\n"
          "                           [--always-on|--on-demand] [--domain D]... [--no-domain D]...\n"
          "                           [--php KEY=VALUE]... [--no-php KEY]... [--cmd \"CMD\"]\n"
          "                           [--network none|nat|host] [--owner USER]\n"
          "                           [--backups daily|weekly|off] [--backup-hour H] [--backup-keep N]\n"
          "                           (automatic backups at H:00 UTC, 3 by default, the N newest kept,\n"
          "                           7 by default; weekly ones on Sundays)\n"
          "       berth site php-settings        (the PHP settings a site may change)\n"
          "       berth site start|stop|restart NAME\n"
          "       berth site rm NAME [--purge]   (its snapshots are kept unless --purge)\n"
          "       berth site logs NAME [--error] [--lines N] [--follow]\n"
          "       berth site exec NAME -- CMD [ARG]...\n"
          "       berth site upload NAME PATH   (a zip, a tar, .tar.gz/.zst/.xz, or a folder)\n"
          "       berth site archive NAME [--keep N] | berth site archive NAME --output FILE|-\n"
          "       berth site archives NAME [--download SNAPSHOT [--output FILE|-]] [--delete SNAPSHOT]\n"
          "       berth site restore NAME SNAPSHOT|--file PATH [--settings]\n"
          "       berth site key add NAME KEY|--file PATH | key ls NAME | key rm NAME FINGERPRINT\n", f);
}

enum {
    OPT_TYPE = 256, OPT_DOMAIN, OPT_NO_DOMAIN, OPT_CMD, OPT_MEMORY, OPT_CPU, OPT_PIDS, OPT_NETWORK,
    OPT_OWNER, OPT_ALWAYS_ON, OPT_ON_DEMAND, OPT_IDLE, OPT_PHP, OPT_NO_PHP, OPT_ERROR, OPT_LINES, OPT_FOLLOW,
    OPT_PURGE, OPT_IO_READ, OPT_IO_WRITE, OPT_BACKUPS, OPT_BACKUP_HOUR, OPT_BACKUP_KEEP, OPT_HELP,
};

struct site_opts {
    const char *type, *cmd, *memory, *cpu, *network, *owner, *io_read, *io_write;
    const char *domains[64], *no_domains[64];
    size_t n_domains, n_no_domains;
    const char *php[64];     /* "KEY=VALUE" */
    const char *no_php[64];  /* "KEY" */
    size_t n_php, n_no_php;
    int64_t pids, idle;      /* -1 unset */
    int always_on;           /* -1 unset, 0 on demand, 1 always on */
    int64_t lines;           /* site logs: -1 unset */
    bool error_log, follow;  /* site logs */
    bool purge;              /* site rm */
    const char *backups;     /* "off", "daily", "weekly" */
    int64_t backup_hour, backup_keep;   /* -1 unset */
};

/* Which options each verb takes. */
static bool allowed(const char *verb, int opt)
{
    if (opt == OPT_HELP)
        return true;
    if (streq(verb, "logs"))
        return opt == OPT_ERROR || opt == OPT_LINES || opt == OPT_FOLLOW;
    if (opt == OPT_ERROR || opt == OPT_LINES || opt == OPT_FOLLOW)
        return false;
    if (streq(verb, "rm"))
        return opt == OPT_PURGE;
    if (opt == OPT_PURGE)
        return false;
    if (streq(verb, "create"))
        return opt != OPT_NO_DOMAIN && opt != OPT_ON_DEMAND && opt != OPT_NO_PHP;
    if (streq(verb, "set"))
        return opt != OPT_TYPE;
    return false;
}

/* Returns 0, 1 when --help was printed, or -EXIT_USAGE after a usage error. */
static int parse_opts(const char *verb, int argc, char **argv, struct site_opts *o, int *ret_optind)
{
    static const struct option opts[] = {
        { "type", required_argument, NULL, OPT_TYPE },
        { "domain", required_argument, NULL, OPT_DOMAIN },
        { "no-domain", required_argument, NULL, OPT_NO_DOMAIN },
        { "cmd", required_argument, NULL, OPT_CMD },
        { "memory", required_argument, NULL, OPT_MEMORY },
        { "io-read", required_argument, NULL, OPT_IO_READ },
        { "io-write", required_argument, NULL, OPT_IO_WRITE },
        { "cpu", required_argument, NULL, OPT_CPU },
        { "pids", required_argument, NULL, OPT_PIDS },
        { "network", required_argument, NULL, OPT_NETWORK },
        { "owner", required_argument, NULL, OPT_OWNER },
        { "always-on", no_argument, NULL, OPT_ALWAYS_ON },
        { "on-demand", no_argument, NULL, OPT_ON_DEMAND },
        { "idle", required_argument, NULL, OPT_IDLE },
        { "php", required_argument, NULL, OPT_PHP },
        { "no-php", required_argument, NULL, OPT_NO_PHP },
        { "error", no_argument, NULL, OPT_ERROR },
        { "lines", required_argument, NULL, OPT_LINES },
        { "follow", no_argument, NULL, OPT_FOLLOW },
        { "purge", no_argument, NULL, OPT_PURGE },
        { "backups", required_argument, NULL, OPT_BACKUPS },
        { "backup-hour", required_argument, NULL, OPT_BACKUP_HOUR },
        { "backup-keep", required_argument, NULL, OPT_BACKUP_KEEP },
        { "help", no_argument, NULL, OPT_HELP },
        { 0 },
    };
    *o = (struct site_opts){ .pids = -1, .idle = -1, .always_on = -1, .lines = -1, .backup_hour = -1,
                             .backup_keep = -1 };
    optind = 1;
    opterr = 0;
    int c;
    /* Options may come before or after NAME (GNU getopt permutes). */
    int opt_index = 0;
    while ((c = getopt_long(argc, argv, ":", opts, &opt_index)) != -1) {
        uint64_t v;
        if (c == '?') {
            if (optopt)
                return -cli_usage_error("site ", "unknown option -%c for 'site %s'", optopt, verb);
            return -cli_usage_error("site ", "unknown option %s for 'site %s'", argv[optind - 1], verb);
        }
        if (c == ':')
            return -cli_usage_error("site ", "option %s needs a value", argv[optind - 1]);
        if (!allowed(verb, c))
            return -cli_usage_error("site ", "option --%s does not apply to 'site %s'", opts[opt_index].name, verb);
        switch (c) {
        case OPT_HELP: usage(stdout); return 1;
        case OPT_TYPE: o->type = optarg; break;
        case OPT_CMD: o->cmd = optarg; break;
        case OPT_MEMORY: o->memory = optarg; break;
        case OPT_IO_READ: o->io_read = optarg; break;
        case OPT_IO_WRITE: o->io_write = optarg; break;
        case OPT_CPU: o->cpu = optarg; break;
        case OPT_NETWORK: o->network = optarg; break;
        case OPT_OWNER: o->owner = optarg; break;
        case OPT_ALWAYS_ON:
        case OPT_ON_DEMAND:
            if (o->always_on == (c == OPT_ON_DEMAND))
                return -cli_usage_error("site ", "--always-on and --on-demand contradict each other: give one");
            o->always_on = c == OPT_ALWAYS_ON;
            break;
        case OPT_ERROR: o->error_log = true; break;
        case OPT_FOLLOW: o->follow = true; break;
        case OPT_PURGE: o->purge = true; break;
        case OPT_LINES:
            if (parse_uint(optarg, 1, 1000, &v) < 0)
                return -cli_usage_error("site ", "--lines takes a number of lines from 1 to 1000, not \"%s\"", optarg);
            o->lines = (int64_t)v;
            break;
        case OPT_DOMAIN:
            if (o->n_domains == ARRAY_SIZE(o->domains))
                return -cli_usage_error("site ", "too many --domain options");
            o->domains[o->n_domains++] = optarg;
            break;
        case OPT_NO_DOMAIN:
            if (o->n_no_domains == ARRAY_SIZE(o->no_domains))
                return -cli_usage_error("site ", "too many --no-domain options");
            o->no_domains[o->n_no_domains++] = optarg;
            break;
        case OPT_PHP: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return -cli_usage_error("site ", "--php takes KEY=VALUE, like --php memory_limit=256M");
            if (o->n_php == ARRAY_SIZE(o->php))
                return -cli_usage_error("site ", "too many --php options");
            o->php[o->n_php++] = optarg;
            break;
        }
        case OPT_NO_PHP:
            if (!*optarg || strchr(optarg, '='))
                return -cli_usage_error("site ", "--no-php takes a setting name, like --no-php memory_limit");
            if (o->n_no_php == ARRAY_SIZE(o->no_php))
                return -cli_usage_error("site ", "too many --no-php options");
            o->no_php[o->n_no_php++] = optarg;
            break;
        case OPT_PIDS:
            if (parse_uint(optarg, 0, 1000000, &v) < 0)
                return -cli_usage_error("site ", "--pids takes a number of processes, not \"%s\"", optarg);
            o->pids = (int64_t)v;
            break;
        case OPT_IDLE:
            if (parse_uint(optarg, 0, UINT32_MAX, &v) < 0)
                return -cli_usage_error("site ", "--idle takes a number of seconds, not \"%s\"", optarg);
            o->idle = (int64_t)v;
            break;
        case OPT_BACKUPS:
            if (!streq(optarg, "off") && !streq(optarg, "daily") && !streq(optarg, "weekly"))
                return -cli_usage_error("site ", "--backups takes daily, weekly or off, not \"%s\"", optarg);
            o->backups = optarg;
            break;
        case OPT_BACKUP_HOUR:
            if (parse_uint(optarg, 0, 23, &v) < 0)
                return -cli_usage_error("site ", "--backup-hour takes an hour of the day from 0 to 23 (UTC), "
                                        "not \"%s\"", optarg);
            o->backup_hour = (int64_t)v;
            break;
        case OPT_BACKUP_KEEP:
            if (parse_uint(optarg, 1, 1000, &v) < 0)
                return -cli_usage_error("site ", "--backup-keep takes a number of snapshots from 1 to 1000, "
                                        "not \"%s\"", optarg);
            o->backup_keep = (int64_t)v;
            break;
        default:
            return -cli_usage_error("site ", "unknown option for 'site %s'", verb);
        }
    }
    /* A key named twice would be a duplicate member, refused without naming it. */
    for (size_t i = 0; i < o->n_php + o->n_no_php; i++) {
        const char *a = i < o->n_php ? o->php[i] : o->no_php[i - o->n_php];
        size_t alen = strcspn(a, "=");
        for (size_t j = i + 1; j < o->n_php + o->n_no_php; j++) {
            const char *b = j < o->n_php ? o->php[j] : o->no_php[j - o->n_php];
            if (strcspn(b, "=") == alen && strncmp(a, b, alen) == 0)
                return -cli_usage_error("site ", "PHP setting \"%.*s\" is given twice", (int)alen, a);
        }
    }
    *ret_optind = optind;
    return 0;
}

static void write_opts(struct json_writer *w, const struct site_opts *o, bool create)
{
    if (o->type)
        json_kv_string(w, "type", o->type);
    if (o->cmd)
        json_kv_string(w, "cmd", o->cmd);
    if (o->memory)
        json_kv_string(w, "memory", o->memory);
    if (o->io_read)
        json_kv_string(w, "io_read", o->io_read);
    if (o->io_write)
        json_kv_string(w, "io_write", o->io_write);
    if (o->cpu)
        json_kv_string(w, "cpu", o->cpu);
    if (o->network)
        json_kv_string(w, "network", o->network);
    if (o->owner)
        json_kv_string(w, "owner", o->owner);
    if (o->pids >= 0)
        json_kv_int(w, "pids", o->pids);
    if (o->idle >= 0)
        json_kv_int(w, "idle_seconds", o->idle);
    if (o->always_on >= 0)
        json_kv_bool(w, "always_on", o->always_on);
    if (o->n_domains) {
        json_key(w, create ? "domains" : "add_domains");
        json_array_begin(w);
        for (size_t i = 0; i < o->n_domains; i++)
            json_string(w, o->domains[i]);
        json_array_end(w);
    }
    if (o->n_no_domains) {
        json_key(w, "remove_domains");
        json_array_begin(w);
        for (size_t i = 0; i < o->n_no_domains; i++)
            json_string(w, o->no_domains[i]);
        json_array_end(w);
    }
    if (o->backups || o->backup_hour >= 0 || o->backup_keep >= 0) {
        /* What is left out keeps the site's value. */
        json_key(w, "backups");
        json_object_begin(w);
        if (o->backups)
            json_kv_string(w, "every", o->backups);
        if (o->backup_hour >= 0)
            json_kv_int(w, "hour", o->backup_hour);
        if (o->backup_keep >= 0)
            json_kv_int(w, "keep", o->backup_keep);
        json_object_end(w);
    }
    if (o->n_php || o->n_no_php) {
        /* One object, so a key given twice is refused by the daemon as a duplicate. */
        json_key(w, "php");
        json_object_begin(w);
        for (size_t i = 0; i < o->n_no_php; i++) {
            json_key(w, o->no_php[i]);
            json_null(w);
        }
        for (size_t i = 0; i < o->n_php; i++) {
            const char *eq = strchr(o->php[i], '=');
            char key[128];
            snprintf(key, sizeof(key), "%.*s", (int)MIN((size_t)(eq - o->php[i]), sizeof(key) - 1), o->php[i]);
            json_key(w, key);
            json_string(w, eq + 1);
        }
        json_object_end(w);
    }
}

static const char *first_url(const struct json_value *site)
{
    const struct json_value *urls = json_get(site, "urls");
    if (urls && urls->type == JSON_ARRAY && urls->array.n > 0 && urls->array.items[0]->type == JSON_STRING)
        return urls->array.items[0]->string.data;
    return json_get_string(site, "host");
}

/* The sandbox part of `site show`: only for sites that run code. */
static void print_runtime(const struct json_value *rt)
{
    if (!rt || rt->type != JSON_OBJECT)
        return;
    const struct json_value *u = json_get(rt, "usage");
    int64_t pid = 0, restarts = 0, last_exit = -1, v;
    json_get_int(rt, "pid", &pid);
    json_get_int(rt, "restarts", &restarts);
    json_get_int(rt, "last_exit", &last_exit);
    if (pid > 0)
        printf("pid          %" PRId64 "\n", pid);
    printf("restarts     %" PRId64 "\n", restarts);
    if (last_exit >= 0)
        printf("last exit    %" PRId64 "\n", last_exit);
    if (u && u->type == JSON_OBJECT) {
        char now[32] = "?", peak[32] = "?";
        if (json_get_int(u, "memory_current", &v))
            format_size((uint64_t)v, now, sizeof(now));
        if (json_get_int(u, "memory_peak", &v))
            format_size((uint64_t)v, peak, sizeof(peak));
        printf("memory used  %s (peak %s)\n", now, peak);
        const struct json_value *cpu = json_get(u, "cpu_seconds");
        if (cpu && cpu->type == JSON_NUMBER)
            printf("cpu time     %.2fs\n", cpu->number.value);
        if (json_get_int(u, "processes", &v))
            printf("processes    %" PRId64 "\n", v);
        if (json_get_int(u, "oom_kills", &v))
            printf("oom kills    %" PRId64 "\n", v);
    }
    if (json_get_string(rt, "error"))
        printf("error        %s\n", json_get_string(rt, "error"));
    const char *out = json_get_string(rt, "last_output");
    if (out && *out) {
        printf("last output:\n");
        for (const char *line = out; line && *line;) {
            const char *nl = strchr(line, '\n');
            int len = nl ? (int)(nl - line) : (int)strlen(line);
            printf("  | %.*s\n", len, line);
            line = nl ? nl + 1 : NULL;
        }
    }
}

static void format_utc(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(out, n, "?");
}

/* The automatic backups part of `site show`. */
static void print_backups(const struct json_value *b)
{
    const char *every = json_get_string(b, "every");
    int64_t hour = 0, keep = 0, due = 0, at = 0;
    bool running = false, ok = false;
    if (!every)
        return;
    json_get_int(b, "hour", &hour);
    json_get_int(b, "keep", &keep);
    json_get_bool(b, "running", &running);
    if (streq(every, "off")) {
        printf("backups      off\n");
    } else {
        char when[40] = "?";
        if (json_get_int(b, "next_due", &due))
            format_utc(due, when, sizeof(when));
        printf("backups      %s at %02" PRId64 ":00 UTC%s, the %" PRId64 " newest kept\n", every, hour,
               streq(every, "weekly") ? " on Sundays" : "", keep);
        if (running)
            printf("next backup  being made now\n");
        else
            printf("next backup  %s%s\n", when, due > 0 && due <= (int64_t)time(NULL) ? " (overdue: due now)" : "");
    }
    const struct json_value *last = json_get(b, "last");
    if (last && last->type == JSON_OBJECT && json_get_int(last, "at", &at) && json_get_bool(last, "ok", &ok)) {
        char when[40];
        format_utc(at, when, sizeof(when));
        if (ok)
            printf("last backup  %s, ok: %s\n", when, json_get_string(last, "snapshot") ?: "?");
        else
            printf("last backup  %s, FAILED: %s\n", when, json_get_string(last, "error") ?: "?");
    }
}

static void print_site(const struct json_value *s)
{
    const struct json_value *limits = json_get(s, "limits"), *domains = json_get(s, "domains");
    int64_t uid = 0, pids = 0, idle = 0;
    bool always_on = false;
    json_get_int(s, "uid", &uid);
    json_get_int(limits, "pids", &pids);
    json_get_int(s, "idle_seconds", &idle);
    json_get_bool(s, "always_on", &always_on);
    printf("name         %s\n", json_get_string(s, "name") ?: "?");
    printf("type         %s\n", json_get_string(s, "type") ?: "?");
    printf("state        %s\n", json_get_string(s, "state") ?: "?");
    printf("address      %s\n", first_url(s) ?: "?");
    printf("domains      ");
    for (size_t i = 0; domains && domains->type == JSON_ARRAY && i < domains->array.n; i++)
        printf("%s%s", i ? ", " : "", domains->array.items[i]->string.data);
    printf("%s\n", domains && domains->type == JSON_ARRAY && domains->array.n ? "" : "-");
    const struct json_value *cert = json_get(s, "certificate");
    int64_t not_after = 0;
    if (cert && cert->type == JSON_OBJECT && json_get_int(cert, "not_after", &not_after)) {
        const struct json_value *names = json_get(cert, "hosts");
        char day[32] = "?";
        time_t t = (time_t)not_after;
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        const char *issuer = json_get_string(cert, "issuer");
        printf("certificate  %s, until %s, for ", issuer && streq(issuer, "acme") ? "from the ACME CA" :
                                                  "from berth's local CA", day);
        for (size_t i = 0; names && names->type == JSON_ARRAY && i < names->array.n; i++)
            if (names->array.items[i]->type == JSON_STRING)
                printf("%s%s", i ? ", " : "", names->array.items[i]->string.data);
        printf("\n");
    }
    printf("owner        %s\n", json_get_string(s, "owner") ?: "-");
    printf("uid          %" PRId64 "\n", uid);
    printf("memory       %s\n", json_get_string(limits, "memory") ?: "?");
    printf("cpu          %s\n", json_get_string(limits, "cpu") ?: "?");
    if (pids)
        printf("pids         %" PRId64 "\n", pids);
    else
        printf("pids         unlimited\n");
    printf("disk         read %s, write %s\n", json_get_string(limits, "io_read") ?: "?",
           json_get_string(limits, "io_write") ?: "?");
    printf("network      %s\n", json_get_string(s, "network") ?: "?");
    printf("runs         %s", always_on ? "always on\n" : "on demand");
    if (!always_on)
        printf(", stops after %" PRId64 "s idle\n", idle);
    if (json_get_string(s, "cmd"))
        printf("command      %s\n", json_get_string(s, "cmd"));
    printf("directory    %s\n", json_get_string(s, "dir") ?: "?");
    print_backups(json_get(s, "backups"));
    const struct json_value *req = json_get(s, "requests");
    int64_t hour = 0, minute = 0;
    if (req && req->type == JSON_OBJECT && json_get_int(req, "last_hour", &hour) &&
        json_get_int(req, "last_minute", &minute))
        printf("requests     %" PRId64 " in the last hour, %" PRId64 " in the last minute\n", hour, minute);
    const struct json_value *php = json_get(s, "php");
    if (php && php->type == JSON_OBJECT) {
        printf("php          %s\n", php->object.n ? "" : "berth's defaults");
        for (size_t i = 0; i < php->object.n; i++)
            if (php->object.values[i]->type == JSON_STRING)
                printf("  %s = %s\n", php->object.keys[i], php->object.values[i]->string.data);
    }
    print_runtime(json_get(s, "runtime"));
}

static int request_and_print(const struct cli *cli, const char *method, const char *path, const char *body,
                             const char *done_fmt, const char *name)
{
    struct cli_response res;
    if (cli_request(cli, method, path, body, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        if (done_fmt)
            printf("%s site %s\n", done_fmt, name);
        else
            print_site(res.json);
    }
    cli_response_done(&res);
    return r;
}

static int remove_site(const struct cli *cli, const char *path, const char *name, bool purge)
{
    char url[700];
    snprintf(url, sizeof(url), "%s%s", path, purge ? "?purge=1" : "");
    struct cli_response res;
    if (cli_request(cli, "DELETE", url, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        const char *kept = json_get_string(res.json, "snapshots_kept_in");
        printf("removed site %s\n", name);
        if (kept)
            printf("its snapshots are kept in %s (bring it back: berth site create %s, then "
                   "berth site restore %s --file %s/SNAPSHOT --settings)\n", kept, name, name, kept);
    }
    cli_response_done(&res);
    return r;
}

static int list_sites(const struct cli *cli)
{
    struct cli_response res;
    if (cli_request(cli, "GET", "/api/v1/sites", NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        struct cli_table t;
        cli_table_init(&t, 6, "NAME", "TYPE", "STATE", "ADDRESS", "OWNER", "REQ/HOUR");
        const struct json_value *sites = json_get(res.json, "sites");
        for (size_t i = 0; sites && sites->type == JSON_ARRAY && i < sites->array.n; i++) {
            const struct json_value *s = sites->array.items[i];
            char hour[24] = "-";
            int64_t v;
            if (json_get_int(json_get(s, "requests"), "last_hour", &v))
                snprintf(hour, sizeof(hour), "%" PRId64, v);
            cli_table_row(&t, json_get_string(s, "name"), json_get_string(s, "type"), json_get_string(s, "state"),
                          first_url(s), json_get_string(s, "owner"), hour);
        }
        cli_table_print(&t);
    }
    cli_response_done(&res);
    return r;
}

static int list_php_settings(const struct cli *cli)
{
    struct cli_response res;
    if (cli_request(cli, "GET", "/api/v1/php/settings", NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        struct cli_table t;
        cli_table_init(&t, 3, "SETTING", "DEFAULT", "ACCEPTS");
        const struct json_value *list = json_get(res.json, "settings");
        for (size_t i = 0; list && list->type == JSON_ARRAY && i < list->array.n; i++) {
            const struct json_value *e = list->array.items[i];
            cli_table_row(&t, json_get_string(e, "key"), json_get_string(e, "default") ?: "-",
                          json_get_string(e, "accepts"));
        }
        cli_table_print(&t);
    }
    cli_response_done(&res);
    return r;
}

/* Prints the lines of a logs answer; *next gets where the log is read up to. */
static void print_log_lines(const struct json_value *j, int64_t *next)
{
    const struct json_value *lines = json_get(j, "lines");
    for (size_t i = 0; lines && lines->type == JSON_ARRAY && i < lines->array.n; i++)
        if (lines->array.items[i]->type == JSON_STRING)
            puts(lines->array.items[i]->string.data);
    json_get_int(j, "next", next);
    fflush(stdout);
}

/* site logs NAME: the last lines of the access (or error) log, then with --follow
 * the lines written since, once a second, until interrupted or the site goes. */
static int show_logs(const struct cli *cli, const char *name, const struct site_opts *o)
{
    const char *kind = o->error_log ? "error" : "access";
    char path[600];
    if (o->follow && cli->json)
        return cli_usage_error("site ", "--follow prints lines as they come and cannot be combined with --json");
    if (o->lines > 0)
        snprintf(path, sizeof(path), "/api/v1/sites/%s/logs?kind=%s&lines=%" PRId64, name, kind, o->lines);
    else
        snprintf(path, sizeof(path), "/api/v1/sites/%s/logs?kind=%s", name, kind);
    struct cli_response res;
    if (cli_request(cli, "GET", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    int64_t next = 0;
    if (r == EXIT_OK && !cli->json)
        print_log_lines(res.json, &next);
    cli_response_done(&res);
    while (r == EXIT_OK && o->follow) {
        nanosleep(&(struct timespec){ .tv_sec = 1 }, NULL);
        snprintf(path, sizeof(path), "/api/v1/sites/%s/logs?kind=%s&after=%" PRId64, name, kind, next);
        if (cli_request(cli, "GET", path, NULL, &res) < 0)
            return EXIT_FAILED;
        r = cli_finish(cli, &res);
        if (r == EXIT_OK)
            print_log_lines(res.json, &next);
        cli_response_done(&res);
    }
    return r;
}

int cli_site(const struct cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (streq(verb, "--help") || streq(verb, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (streq(verb, "exec"))
        return cli_site_exec(cli, argc - 1, argv + 1);
    if (streq(verb, "key"))
        return cli_site_key(cli, argc - 1, argv + 1);
    if (streq(verb, "archive") || streq(verb, "archives") || streq(verb, "restore"))
        return cli_site_archive(cli, argc - 1, argv + 1);
    static const char *const verbs[] = { "create", "ls", "show", "set", "start", "stop", "restart", "rm", "upload",
                                         "php-settings", "logs" };
    bool known = false;
    for (size_t i = 0; i < ARRAY_SIZE(verbs) && !known; i++)
        known = streq(verb, verbs[i]);
    if (!known)
        return cli_usage_error("site ", "unknown command 'site %s'", verb);

    struct site_opts o;
    int first_arg = 0;
    int r = parse_opts(verb, argc - 1, argv + 1, &o, &first_arg);
    if (r != 0)
        return r > 0 ? EXIT_OK : -r;
    int rest = argc - 1 - first_arg;
    char **args = argv + 1 + first_arg;

    if (streq(verb, "ls")) {
        if (rest != 0)
            return cli_usage_error("site ", "'site ls' takes no arguments");
        return list_sites(cli);
    }
    if (streq(verb, "upload"))
        return cli_site_upload(cli, rest, args);
    if (streq(verb, "php-settings")) {
        if (rest != 0)
            return cli_usage_error("site ", "'site php-settings' takes no arguments");
        return list_php_settings(cli);
    }
    if (rest != 1)
        return cli_usage_error("site ", "'site %s' takes one site name%s", verb, rest > 1 ? ", got more" : "");
    const char *name = args[0];
    /* The daemon validates names; refuse here only what cannot be put in a URL path. */
    if (!*name || strlen(name) > 253 || strpbrk(name, "/?#% "))
        return cli_fail("invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-'", name);

    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sites/%s", name);

    if (streq(verb, "create") || streq(verb, "set")) {
        bool create = streq(verb, "create");
        struct buf body = BUF_INIT(1 << 20);
        struct json_writer w;
        json_writer_init(&w, &body, false);
        json_object_begin(&w);
        if (create)
            json_kv_string(&w, "name", name);
        write_opts(&w, &o, create);
        json_object_end(&w);
        if (!create && body.len <= 2) {
            buf_done(&body);
            return cli_usage_error("site ", "'site set' needs at least one setting to change");
        }
        r = request_and_print(cli, create ? "POST" : "PATCH", create ? "/api/v1/sites" : path, body.data,
                              NULL, name);
        buf_done(&body);
        return r;
    }
    if (streq(verb, "show"))
        return request_and_print(cli, "GET", path, NULL, NULL, name);
    if (streq(verb, "logs"))
        return show_logs(cli, name, &o);
    if (streq(verb, "rm"))
        return remove_site(cli, path, name, o.purge);

    /* start | stop | restart */
    char action[600];
    snprintf(action, sizeof(action), "%s/%s", path, verb);
    const char *done = streq(verb, "stop") ? "stopped" : streq(verb, "start") ? "started" : "restarted";
    return request_and_print(cli, "POST", action, NULL, done, name);
}

/* berth site archive | archives | restore: site snapshots.
 *
 *   site archive NAME [--keep N]            berthd keeps a snapshot in the site's backups/
 *   site archive NAME --output FILE|-       the snapshot comes here instead of being kept
 *   site archives NAME                      the kept snapshots, newest first
 *   site archives NAME --download SNAP [--output FILE|-]
 *   site archives NAME --delete SNAP
 *   site restore NAME SNAP [--settings]     from a kept snapshot
 *   site restore NAME --file PATH [--settings]   from a snapshot file made by berth
 *
 * Snapshots are streamed: a download is copied from the socket to its file as it
 * comes; a --file restore is sent with Content-Length, like an upload. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "http/http1.h"

#define MAX_HEAD (64 * 1024)

static bool site_arg_ok(const char *name)
{
    return *name && strlen(name) <= 63 && !strpbrk(name, "/?#% ");
}

static int bad_site(const char *name)
{
    return cli_fail("invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-'", name);
}

/* A snapshot name goes into a URL path: anything but the characters berth's names
 * use is refused here (berthd checks the name again). */
static bool snapshot_arg_ok(const char *name)
{
    if (!*name || strlen(name) > 127 || streq(name, ".") || streq(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    return true;
}

static int bad_snapshot(const char *site, const char *name)
{
    return cli_fail("invalid snapshot name \"%s\": use a name `berth site archives %s` lists", name, site);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends method path (with a JSON body or none) and copies a 200 answer's body to
 * output ("-": stdout); any other answer is reported as cli_finish does. */
static int fetch_to(const struct cli *cli, const char *method, const char *path, const char *body,
                    const char *output)
{
    _cleanup_close_ int sock = cli_connect_api(cli);
    if (sock < 0)
        return EXIT_FAILED;
    struct buf req = BUF_INIT(64 * 1024);
    size_t body_len = body ? strlen(body) : 0;
    int r = buf_printf(&req, "%s %s HTTP/1.1\r\nHost: berthd\r\nUser-Agent: berth/%s\r\nConnection: close\r\n",
                       method, path, BERTH_VERSION);
    if (r >= 0 && body)
        r = buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", body_len, body);
    else if (r >= 0)
        r = buf_append_str(&req, "\r\n");
    if (r >= 0)
        r = cli_send_all(sock, req.data, req.len);
    buf_done(&req);
    if (r < 0)
        return cli_fail("cannot send the request to berthd: %s", strerror(-r));

    /* The head first (it fits in MAX_HEAD), with whatever body came along. */
    static char in[MAX_HEAD];
    size_t len = 0;
    int head = 0;
    struct http1_parser p;
    struct http1_response res;
    http1_parser_init(&p, NULL);
    while (head == 0 || head == HTTP1_INCOMPLETE) {
        if (len == sizeof(in))
            return cli_fail("berthd's answer has a head too large");
        ssize_t n = recv(sock, in + len, sizeof(in) - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cli_fail("berthd closed the connection without a valid answer");
        len += (size_t)n;
        http1_parser_init(&p, NULL);
        head = http1_parse_response(&p, in, len, HTTP_GET, &res);
        if (head < 0 && head != HTTP1_INCOMPLETE)
            return cli_fail("berthd sent an answer that is not HTTP");
    }
    if (res.status != 200) {
        /* An error: small JSON, read whole. */
        struct buf all = BUF_INIT(1024 * 1024);
        buf_append(&all, in, len);
        for (;;) {
            if (buf_reserve(&all, 16 * 1024) < 0)
                break;
            ssize_t n = recv(sock, all.data + all.len, all.cap - all.len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            all.len += (size_t)n;
        }
        struct cli_response cr = { .status = res.status, .raw = strndup(all.data + head, all.len - (size_t)head) };
        buf_done(&all);
        if (cr.raw && json_parse(cr.raw, strlen(cr.raw), &cr.json, NULL, NULL) < 0)
            cr.json = NULL;
        r = cli_finish(cli, &cr);
        cli_response_done(&cr);
        return r == EXIT_OK ? EXIT_FAILED : r;
    }
    if (res.body != HTTP1_BODY_LENGTH)
        return cli_fail("berthd sent a snapshot without its length");

    bool to_stdout = streq(output, "-");
    char part[4096];
    snprintf(part, sizeof(part), "%s.part", output);
    _cleanup_close_ int out = to_stdout ? dup(STDOUT_FILENO)
                                        : open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0)
        return cli_fail("cannot write %s: %m", to_stdout ? "to stdout" : part);
    uint64_t left = res.content_length;
    size_t have = MIN((uint64_t)(len - (size_t)head), left);
    r = write_all(out, in + head, have);
    left -= have;
    while (r >= 0 && left > 0) {
        ssize_t n = recv(sock, in, (size_t)MIN((uint64_t)sizeof(in), left), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = -EPIPE;
            break;
        }
        r = write_all(out, in, (size_t)n);
        left -= (uint64_t)n;
    }
    if (r >= 0 && !to_stdout && (fsync(out) < 0 || rename(part, output) < 0))
        r = -errno;
    if (r < 0) {
        if (!to_stdout)
            unlink(part);
        return cli_fail("cannot save the snapshot%s%s: %s", to_stdout ? "" : " to ", to_stdout ? "" : output,
                        r == -EPIPE ? "berthd ended the transfer early" : strerror(-r));
    }
    if (!to_stdout && !cli->json)
        printf("saved %s (%" PRIu64 " bytes)\n", output, res.content_length);
    return EXIT_OK;
}

static void print_size(uint64_t bytes, char *out, size_t n)
{
    format_size(bytes, out, n);
    if (bytes < 1024)
        snprintf(out + strlen(out), n - strlen(out), " bytes");
}

static int archive(const struct cli *cli, const char *site, const char *keep, const char *output)
{
    char path[256], body[64];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/archives", site);
    if (output) {
        if (keep)
            return cli_usage_error("site ", "--keep prunes kept snapshots: it does not apply with --output");
        return fetch_to(cli, "POST", path, "{\"download\":true}", output);
    }
    uint64_t k = 0;
    if (keep && parse_uint(keep, 1, 1000, &k) < 0)
        return cli_usage_error("site ", "--keep takes a number of snapshots from 1 to 1000, not \"%s\"", keep);
    if (k)
        snprintf(body, sizeof(body), "{\"keep\":%" PRIu64 "}", k);
    else
        snprintf(body, sizeof(body), "{}");
    struct cli_response res;
    if (cli_request(cli, "POST", path, body, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        int64_t size = 0;
        json_get_int(res.json, "size", &size);
        char sz[32];
        print_size((uint64_t)size, sz, sizeof(sz));
        printf("%s\t%s\n", json_get_string(res.json, "name") ?: "?", sz);
        const struct json_value *pruned = json_get(res.json, "pruned");
        for (size_t i = 0; pruned && pruned->type == JSON_ARRAY && i < pruned->array.n; i++)
            if (pruned->array.items[i]->type == JSON_STRING)
                printf("removed %s\n", pruned->array.items[i]->string.data);
    }
    cli_response_done(&res);
    return r;
}

static int list(const struct cli *cli, const char *site)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/archives", site);
    struct cli_response res;
    if (cli_request(cli, "GET", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        const struct json_value *a = json_get(res.json, "archives");
        struct cli_table t;
        cli_table_init(&t, 3, "NAME", "SIZE", "DATE");
        for (size_t i = 0; a && a->type == JSON_ARRAY && i < a->array.n; i++) {
            const struct json_value *e = a->array.items[i];
            int64_t size = 0, at = 0;
            json_get_int(e, "size", &size);
            json_get_int(e, "created_at", &at);
            char sz[32], date[32];
            print_size((uint64_t)size, sz, sizeof(sz));
            time_t tt = (time_t)at;
            struct tm tm;
            gmtime_r(&tt, &tm);
            strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", &tm);
            cli_table_row(&t, json_get_string(e, "name"), sz, date);
        }
        cli_table_print(&t);
    }
    cli_response_done(&res);
    return r;
}

static int delete(const struct cli *cli, const char *site, const char *snap)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/archives/%s", site, snap);
    struct cli_response res;
    if (cli_request(cli, "DELETE", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json)
        printf("deleted %s\n", snap);
    cli_response_done(&res);
    return r;
}

static void report_restore(const struct cli *cli, const char *site, const struct cli_response *res)
{
    if (cli->json)
        return;
    int64_t files = 0, bytes = 0;
    bool settings = false, restarted = false;
    json_get_bool(res->json, "settings", &settings);
    json_get_bool(res->json, "restarted", &restarted);
    /* No counts: the restore's process was killed after its swap and berthd
     * finished the restore from its journal. */
    if (!json_get_int(res->json, "files", &files) || !json_get_int(res->json, "bytes", &bytes)) {
        printf("restored site %s%s%s\n", site, settings ? ", with its settings" : "",
               restarted ? "; restarted it" : "");
        return;
    }
    char sz[32];
    print_size((uint64_t)bytes, sz, sizeof(sz));
    printf("restored %lld file%s (%s) to site %s%s%s\n", (long long)files, files == 1 ? "" : "s", sz, site,
           settings ? ", with its settings" : "", restarted ? "; restarted it" : "");
}

static int restore_file(const struct cli *cli, const char *site, const char *file, bool settings)
{
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return cli_fail("cannot open %s: %m", file);
    if (!S_ISREG(st.st_mode))
        return cli_fail("cannot restore from %s: not a file", file);
    _cleanup_close_ int sock = cli_connect_api(cli);
    if (sock < 0)
        return EXIT_FAILED;
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/restore%s", site, settings ? "?settings=1" : "");
    if (cli_send_file(sock, path, fd, (uint64_t)st.st_size) != 0)
        return EXIT_FAILED;
    struct cli_response res;
    if (cli_read_answer(sock, &res) != 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK)
        report_restore(cli, site, &res);
    cli_response_done(&res);
    return r;
}

static int restore_snapshot(const struct cli *cli, const char *site, const char *snap, bool settings)
{
    char path[256], body[256];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/restore", site);
    snprintf(body, sizeof(body), "{\"snapshot\":\"%s\",\"settings\":%s}", snap, settings ? "true" : "false");
    struct cli_response res;
    if (cli_request(cli, "POST", path, body, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK)
        report_restore(cli, site, &res);
    cli_response_done(&res);
    return r;
}

int cli_site_archive(const struct cli *cli, int argc, char **argv)
{
    const char *verb = argv[0];
    const char *keep = NULL, *output = NULL, *download = NULL, *del = NULL, *file = NULL;
    bool settings = false;
    const char *pos[3];
    size_t n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = streq(a, "--keep") ? &keep : streq(a, "--output") || streq(a, "-o") ? &output
                          : streq(a, "--download") ? &download : streq(a, "--delete") ? &del
                          : streq(a, "--file") ? &file : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return cli_usage_error("site ", "option %s needs a value", a);
            *slot = argv[++i];
        } else if (streq(a, "--settings")) {
            settings = true;
        } else if (streq(a, "--help")) {
            fputs("Usage: berth site archive NAME [--keep N] | berth site archive NAME --output FILE|-\n"
                  "       berth site archives NAME [--download SNAPSHOT [--output FILE|-]] [--delete SNAPSHOT]\n"
                  "       berth site restore NAME SNAPSHOT [--settings]\n"
                  "       berth site restore NAME --file PATH [--settings]\n", stdout);
            return EXIT_OK;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("site ", "unknown option %s for 'site %s'", a, verb);
        } else if (n_pos < ARRAY_SIZE(pos)) {
            pos[n_pos++] = a;
        } else {
            return cli_usage_error("site ", "too many arguments for 'site %s'", verb);
        }
    }
    if (n_pos < 1)
        return cli_usage_error("site ", "'site %s' needs a site name", verb);
    const char *site = pos[0];
    if (!site_arg_ok(site))
        return bad_site(site);

    if (streq(verb, "archive")) {
        if (n_pos != 1 || download || del || file || settings)
            return cli_usage_error("site ", "'site archive' takes a site name, and --keep N or --output FILE");
        return archive(cli, site, keep, output);
    }
    if (streq(verb, "archives")) {
        if (n_pos != 1 || keep || file || settings || (download && del) || (output && !download))
            return cli_usage_error("site ", "'site archives' takes a site name, and --download SNAPSHOT "
                                   "[--output FILE] or --delete SNAPSHOT");
        const char *snap = download ? download : del;
        if (snap && !snapshot_arg_ok(snap))
            return bad_snapshot(site, snap);
        if (del)
            return delete(cli, site, del);
        if (download) {
            char path[512];
            snprintf(path, sizeof(path), "/api/v1/sites/%s/archives/%s", site, download);
            return fetch_to(cli, "GET", path, NULL, output ? output : download);
        }
        return list(cli, site);
    }
    /* restore */
    if (keep || output || download || del || (file && n_pos != 1) || (!file && n_pos != 2))
        return cli_usage_error("site ", "'site restore' takes a site name and a snapshot name, or --file PATH");
    if (file)
        return restore_file(cli, site, file, settings);
    if (!snapshot_arg_ok(pos[1]))
        return bad_snapshot(site, pos[1]);
    return restore_snapshot(cli, site, pos[1], settings);
}

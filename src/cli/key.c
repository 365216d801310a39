/* berth site key add|ls|rm: the SSH keys that may log in to a site over SFTP
 * (user: the site's name, port: berthd's --ssh). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"

#define KEY_FILE_MAX 16384

static void usage(FILE *f)
{
    fputs("Usage: berth site key add NAME KEY        KEY: \"ssh-ed25519 AAAA... comment\"\n"
          "       berth site key add NAME --file PATH   (e.g. ~/.ssh/id_ed25519.pub)\n"
          "       berth site key ls NAME\n"
          "       berth site key rm NAME FINGERPRINT   (SHA256:..., as `key ls` shows it)\n"
          "\n"
          "Keys log in over SFTP as user NAME. Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521,\n"
          "ssh-rsa of 2048 bits or more.\n", f);
}

static bool name_ok(const char *name)
{
    return *name && strlen(name) <= 63 && !strpbrk(name, "/?#% ");
}

/* The key from a file: its first line that is not blank or a comment. */
static int read_key_file(const char *path, char **ret)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_fail("cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(KEY_FILE_MAX + 1);
    if (!buf)
        return cli_fail("out of memory");
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return cli_fail("cannot read %s: %s", path, strerror(errno));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > KEY_FILE_MAX) {
            free(buf);
            return cli_fail("%s is larger than %d bytes: not a public key file", path, KEY_FILE_MAX);
        }
    }
    buf[len] = 0;
    char *line = buf, *next;
    for (; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *p = line + strspn(line, " \t\r");
        if (*p && *p != '#') {
            char *out = strdup(p);
            free(buf);
            if (!out)
                return cli_fail("out of memory");
            *ret = out;
            return EXIT_OK;
        }
    }
    free(buf);
    return cli_fail("%s holds no key", path);
}

static int key_add(const struct cli *cli, const char *name, const char *key)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/keys", name);
    struct buf body = BUF_INIT(64 * 1024);
    struct json_writer w;
    json_writer_init(&w, &body, false);
    json_object_begin(&w);
    json_kv_string(&w, "key", key);
    json_object_end(&w);
    struct cli_response res;
    int r = json_writer_finish(&w) < 0 ? -EINVAL : cli_request(cli, "POST", path, body.data, &res);
    buf_done(&body);
    if (r < 0)
        return EXIT_FAILED;
    r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json)
        printf("added key %s (%s%s%s) to site %s\n", json_get_string(res.json, "fingerprint"),
               json_get_string(res.json, "algorithm"), *json_get_string(res.json, "comment") ? ", " : "",
               json_get_string(res.json, "comment"), name);
    cli_response_done(&res);
    return r;
}

static int key_ls(const struct cli *cli, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/sites/%s/keys", name);
    struct cli_response res;
    if (cli_request(cli, "GET", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        struct cli_table t;
        cli_table_init(&t, 4, "FINGERPRINT", "TYPE", "COMMENT", "ADDED");
        const struct json_value *list = json_get(res.json, "keys");
        for (size_t i = 0; list && list->type == JSON_ARRAY && i < list->array.n; i++) {
            const struct json_value *k = list->array.items[i];
            int64_t created = 0;
            json_get_int(k, "created_at", &created);
            char when[32];
            time_t tt = (time_t)created;
            struct tm tm;
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M", localtime_r(&tt, &tm));
            const char *comment = json_get_string(k, "comment");
            cli_table_row(&t, json_get_string(k, "fingerprint"), json_get_string(k, "algorithm"),
                          comment && *comment ? comment : NULL, when);
        }
        cli_table_print(&t);
    }
    cli_response_done(&res);
    return r;
}

static int key_rm(const struct cli *cli, const char *name, const char *fingerprint)
{
    /* The URL-safe spelling of the fingerprint: '/' and '+' would not survive a path. */
    char id[128], path[512];
    size_t i = 0;
    for (; fingerprint[i] && i + 1 < sizeof(id); i++)
        id[i] = fingerprint[i] == '/' ? '_' : fingerprint[i] == '+' ? '-' : fingerprint[i];
    id[i] = 0;
    if (strpbrk(id, "?#% "))
        return cli_fail("\"%s\" is not a key fingerprint (SHA256:... as `berth site key ls %s` shows it)",
                        fingerprint, name);
    snprintf(path, sizeof(path), "/api/v1/sites/%s/keys/%s", name, id);
    struct cli_response res;
    if (cli_request(cli, "DELETE", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        int64_t ended = 0;
        json_get_int(res.json, "sessions_ended", &ended);
        printf("removed key %s from site %s", json_get_string(res.json, "removed"), name);
        if (ended > 0)
            printf(" (ended %lld open session%s)", (long long)ended, ended == 1 ? "" : "s");
        putchar('\n');
    }
    cli_response_done(&res);
    return r;
}

int cli_site_key(const struct cli *cli, int argc, char **argv)
{
    if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *verb = argv[1];
    if (!streq(verb, "add") && !streq(verb, "ls") && !streq(verb, "rm"))
        return cli_usage_error("site key ", "unknown command 'site key %s'", verb);
    if (argc < 3)
        return cli_usage_error("site key ", "'site key %s' needs a site name", verb);
    const char *name = argv[2];
    if (!name_ok(name))
        return cli_fail("invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-'", name);
    if (streq(verb, "ls")) {
        if (argc != 3)
            return cli_usage_error("site key ", "'site key ls' takes one site name");
        return key_ls(cli, name);
    }
    if (streq(verb, "rm")) {
        if (argc != 4)
            return cli_usage_error("site key ", "'site key rm' takes a site name and a key fingerprint");
        return key_rm(cli, name, argv[3]);
    }
    if (argc == 5 && streq(argv[3], "--file")) {
        char *key = NULL;
        int r = read_key_file(argv[4], &key);
        if (r != EXIT_OK)
            return r;
        r = key_add(cli, name, key);
        free(key);
        return r;
    }
    /* An option-like word is a misspelt option; a key (or a pasted private key,
     * which the daemon explains) has spaces. */
    if (argc != 4 || (str_startswith(argv[3], "--") && !strpbrk(argv[3], " \n")))
        return cli_usage_error("site key ", "'site key add' takes a site name and a key (in quotes), or --file PATH");
    return key_add(cli, name, argv[3]);
}

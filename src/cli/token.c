/* berth token create | ls | rm: API tokens for scripts. Over the API socket the
 * caller is root, who has no account: a token belongs to a user, named with --user. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("Usage: berth token create NAME --user USER   a token for USER's scripts (shown once)\n"
          "       berth token ls [--user USER]\n"
          "       berth token rm ID\n"
          "\n"
          "Scripts send the token to the panel's address as \"Authorization: Bearer TOKEN\".\n", f);
}

/* Writes key: value, unless value is NULL (the member is then left out). */
static void kv(struct json_writer *w, const char *key, const char *value)
{
    if (value)
        json_kv_string(w, key, value);
}

static void print_time(int64_t t, char *out, size_t n)
{
    if (t <= 0) {
        snprintf(out, n, "never");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    strftime(out, n, "%Y-%m-%d %H:%M", localtime_r(&tt, &tm));
}

static int token_create(const struct cli *cli, const char *name, const char *user)
{
    struct buf body = BUF_INIT(4096);
    struct json_writer w;
    json_writer_init(&w, &body, false);
    json_object_begin(&w);
    kv(&w, "name", name);
    kv(&w, "user", user);
    json_object_end(&w);
    struct cli_response res;
    int r = json_writer_finish(&w) < 0 ? -EINVAL : cli_request(cli, "POST", "/api/v1/tokens", body.data, &res);
    buf_done(&body);
    if (r < 0)
        return EXIT_FAILED;
    r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        int64_t id = 0;
        json_get_int(res.json, "id", &id);
        printf("%s\n", json_get_string(res.json, "token"));
        fprintf(stderr, "created token %" PRId64 " \"%s\" for %s; it is shown only this once\n", id, name,
                json_get_string(res.json, "user"));
    }
    cli_response_done(&res);
    return r;
}

static int token_ls(const struct cli *cli, const char *user)
{
    char path[256];
    if (user)
        snprintf(path, sizeof(path), "/api/v1/tokens?user=%s", user);
    else
        snprintf(path, sizeof(path), "/api/v1/tokens");
    struct cli_response res;
    if (cli_request(cli, "GET", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        struct cli_table t;
        cli_table_init(&t, 6, "ID", "USER", "NAME", "CREATED", "LAST USED", "STATE");
        const struct json_value *list = json_get(res.json, "tokens");
        for (size_t i = 0; list && list->type == JSON_ARRAY && i < list->array.n; i++) {
            const struct json_value *tok = list->array.items[i];
            int64_t id = 0, created = 0, used = 0;
            bool revoked = false;
            char ids[32], c[32], u[32];
            json_get_int(tok, "id", &id);
            json_get_int(tok, "created_at", &created);
            json_get_int(tok, "last_used", &used);
            json_get_bool(tok, "revoked", &revoked);
            snprintf(ids, sizeof(ids), "%" PRId64, id);
            print_time(created, c, sizeof(c));
            print_time(used, u, sizeof(u));
            cli_table_row(&t, ids, json_get_string(tok, "user"), json_get_string(tok, "name"), c, u,
                          revoked ? "revoked" : "active");
        }
        cli_table_print(&t);
    }
    cli_response_done(&res);
    return r;
}

int cli_token(const struct cli *cli, int argc, char **argv)
{
    enum { OPT_USER = 256, OPT_HELP };
    static const struct option opts[] = {
        { "user", required_argument, NULL, OPT_USER },
        { "help", no_argument, NULL, OPT_HELP },
        { 0 },
    };
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *verb = argv[1], *user = NULL;
    if (streq(verb, "--help") || streq(verb, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, ":", opts, NULL)) != -1) {
        if (c == ':') {
            return cli_usage_error("token ", "option %s needs a value", argv[optind]);
        } else if (c == OPT_USER && !streq(verb, "rm")) {
            user = optarg;
        } else if (c == OPT_HELP) {
            usage(stdout);
            return EXIT_OK;
        } else {
            return cli_usage_error("token ", "unknown option %s for 'token %s'", argv[optind], verb);
        }
    }
    int rest = argc - 1 - optind;
    char **args = argv + 1 + optind;
    if (user && (strlen(user) > 64 || strpbrk(user, "/?#%&= ")))
        return cli_fail("invalid user name \"%s\"", user);

    if (streq(verb, "ls")) {
        if (rest != 0)
            return cli_usage_error("token ", "'token ls' takes no arguments");
        return token_ls(cli, user);
    }
    if (streq(verb, "create")) {
        if (rest != 1)
            return cli_usage_error("token ", "'token create' takes one token name");
        return token_create(cli, args[0], user);
    }
    if (streq(verb, "rm")) {
        uint64_t id;
        if (rest != 1 || parse_uint(args[0], 1, INT64_MAX, &id) < 0)
            return cli_usage_error("token ", "'token rm' takes the token's id (see 'berth token ls')");
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/tokens/%" PRIu64, id);
        struct cli_response res;
        if (cli_request(cli, "DELETE", path, NULL, &res) < 0)
            return EXIT_FAILED;
        int r = cli_finish(cli, &res);
        if (r == EXIT_OK && !cli->json)
            printf("revoked token %" PRIu64 "\n", id);
        cli_response_done(&res);
        return r;
    }
    return cli_usage_error("token ", "unknown command 'token %s'", verb);
}

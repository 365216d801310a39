/* berth user add | ls | rm | passwd */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fputs("Usage: berth user add NAME [--admin] [--password-stdin]\n"
          "       berth user ls\n"
          "       berth user rm NAME\n"
          "       berth user passwd NAME [--password-stdin]\n"
          "       berth user disable NAME | berth user enable NAME\n"
          "\n"
          "Passwords are read from the terminal, or from the first line of standard input\n"
          "with --password-stdin; never from the command line.\n", f);
}

static int send_password(const struct cli *cli, const char *method, const char *path, const char *name,
                         bool admin, bool from_stdin)
{
    char *password = cli_read_password(from_stdin, name, true);
    if (!password)
        return EXIT_FAILED;
    struct buf body = BUF_INIT(1 << 20);
    struct json_writer w;
    json_writer_init(&w, &body, false);
    json_object_begin(&w);
    if (streq(method, "POST")) {
        json_kv_string(&w, "name", name);
        json_kv_bool(&w, "admin", admin);
    }
    json_kv_string(&w, "password", password);
    json_object_end(&w);
    explicit_bzero(password, strlen(password));
    free(password);

    struct cli_response res;
    int r = cli_request(cli, method, path, body.data, &res);
    explicit_bzero(body.data, body.len);
    buf_done(&body);
    if (r < 0)
        return EXIT_FAILED;
    r = cli_finish(cli, &res);
    int64_t revoked = 0;
    if (r == EXIT_OK && !cli->json && streq(method, "POST"))
        printf("created user %s\n", name);
    else if (r == EXIT_OK && !cli->json && json_get_int(res.json, "tokens_revoked", &revoked) && revoked > 0)
        printf("changed the password of %s; revoked %" PRId64 " API token%s\n", name, revoked,
               revoked == 1 ? "" : "s");
    else if (r == EXIT_OK && !cli->json)
        printf("changed the password of %s\n", name);
    cli_response_done(&res);
    return r;
}

int cli_user(const struct cli *cli, int argc, char **argv)
{
    enum { OPT_ADMIN = 256, OPT_STDIN, OPT_HELP };
    static const struct option opts[] = {
        { "admin", no_argument, NULL, OPT_ADMIN },
        { "password-stdin", no_argument, NULL, OPT_STDIN },
        { "help", no_argument, NULL, OPT_HELP },
        { 0 },
    };
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (streq(verb, "--help") || streq(verb, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    bool admin = false, from_stdin = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == OPT_ADMIN && streq(verb, "add"))
            admin = true;
        else if (c == OPT_STDIN && (streq(verb, "add") || streq(verb, "passwd")))
            from_stdin = true;
        else if (c == OPT_HELP) {
            usage(stdout);
            return EXIT_OK;
        } else
            return cli_usage_error("user ", "unknown option %s for 'user %s'", argv[optind], verb);
    }
    int rest = argc - 1 - optind;
    char **args = argv + 1 + optind;
    char path[512];

    if (streq(verb, "ls")) {
        if (rest != 0)
            return cli_usage_error("user ", "'user ls' takes no arguments");
        struct cli_response res;
        if (cli_request(cli, "GET", "/api/v1/users", NULL, &res) < 0)
            return EXIT_FAILED;
        int r = cli_finish(cli, &res);
        if (r == EXIT_OK && !cli->json) {
            struct cli_table t;
            cli_table_init(&t, 3, "NAME", "ROLE", "STATE");
            const struct json_value *users = json_get(res.json, "users");
            for (size_t i = 0; users && users->type == JSON_ARRAY && i < users->array.n; i++) {
                const struct json_value *u = users->array.items[i];
                bool is_admin = false, disabled = false;
                json_get_bool(u, "admin", &is_admin);
                json_get_bool(u, "disabled", &disabled);
                cli_table_row(&t, json_get_string(u, "name"), is_admin ? "admin" : "user",
                              disabled ? "disabled" : "active");
            }
            cli_table_print(&t);
        }
        cli_response_done(&res);
        return r;
    }
    if (!streq(verb, "add") && !streq(verb, "rm") && !streq(verb, "passwd") && !streq(verb, "disable") &&
        !streq(verb, "enable"))
        return cli_usage_error("user ", "unknown command 'user %s'", verb);
    if (rest != 1)
        return cli_usage_error("user ", "'user %s' takes one user name", verb);
    const char *name = args[0];
    if (strlen(name) > 64 || strpbrk(name, "/?#%"))
        return cli_fail("invalid user name \"%s\"", name);

    if (streq(verb, "add"))
        return send_password(cli, "POST", "/api/v1/users", name, admin, from_stdin);
    if (streq(verb, "passwd")) {
        snprintf(path, sizeof(path), "/api/v1/users/%s/password", name);
        return send_password(cli, "PUT", path, name, false, from_stdin);
    }
    snprintf(path, sizeof(path), "/api/v1/users/%s", name);
    struct cli_response res;
    if (streq(verb, "disable") || streq(verb, "enable")) {
        bool off = streq(verb, "disable");
        if (cli_request(cli, "PATCH", path, off ? "{\"disabled\":true}" : "{\"disabled\":false}", &res) < 0)
            return EXIT_FAILED;
        int r = cli_finish(cli, &res);
        if (r == EXIT_OK && !cli->json)
            printf("%s user %s\n", off ? "disabled" : "enabled", name);
        cli_response_done(&res);
        return r;
    }
    if (cli_request(cli, "DELETE", path, NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json)
        printf("removed user %s\n", name);
    cli_response_done(&res);
    return r;
}

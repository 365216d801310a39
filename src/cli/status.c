/* berth status */
#include <inttypes.h>
#include <stdio.h>

#include "cli/cli.h"

int cli_status(const struct cli *cli, int argc, char **argv)
{
    if (argc > 1) {
        if (streq(argv[1], "--help")) {
            puts("Usage: berth status\n\nShows berthd's version, listeners (with the real port when 0 was asked) and counts.");
            return EXIT_OK;
        }
        return cli_usage_error("status ", "status takes no arguments, got \"%s\"", argv[1]);
    }
    struct cli_response res;
    if (cli_request(cli, "GET", "/api/v1/status", NULL, &res) < 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        const struct json_value *j = res.json;
        int64_t pid = 0, uptime = 0, schema = 0;
        json_get_int(j, "pid", &pid);
        json_get_int(j, "uptime_seconds", &uptime);
        json_get_int(j, "schema_version", &schema);
        printf("berthd %s (pid %" PRId64 "), up %" PRId64 "s\n", json_get_string(j, "version") ?: "?", pid, uptime);
        printf("state dir    %s\n", json_get_string(j, "state_dir") ?: "?");
        if (json_get_string(j, "run_dir"))
            printf("run dir      %s\n", json_get_string(j, "run_dir"));
        printf("api socket   %s\n", json_get_string(j, "api_socket") ?: "?");
        printf("base domain  %s\n", json_get_string(j, "base_domain") ?: "?");
        if (json_get_string(j, "tls_ca"))
            printf("tls ca       %s\n", json_get_string(j, "tls_ca"));
        if (json_get_string(j, "ssh_host_key"))
            printf("ssh host key %s\n", json_get_string(j, "ssh_host_key"));
        const struct json_value *ls = json_get(j, "listeners");
        for (size_t i = 0; ls && ls->type == JSON_ARRAY && i < ls->array.n; i++) {
            const struct json_value *l = ls->array.items[i];
            const char *addr = json_get_string(l, "address"), *asked = json_get_string(l, "requested");
            printf("%-12s %s %s", i == 0 ? "listeners" : "", json_get_string(l, "kind") ?: "?", addr ?: "?");
            if (asked && addr && !streq(asked, addr))
                printf(" (asked %s)", asked);
            putchar('\n');
        }
        const struct json_value *counts = json_get(j, "counts");
        int64_t sites = 0, users = 0;
        json_get_int(counts, "sites", &sites);
        json_get_int(counts, "users", &users);
        printf("sites        %" PRId64 "\n", sites);
        printf("users        %" PRId64 "\n", users);
    }
    cli_response_done(&res);
    return r;
}

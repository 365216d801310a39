/* berth: the command-line client of berthd. */
#include <stdio.h>

#include "cli/cli.h"

#define DEFAULT_SOCKET "/run/berth/api.sock"

static void usage(FILE *f)
{
    fputs("Usage: berth [--socket PATH] [--json] COMMAND\n"
          "\n"
          "Commands:\n"
          "  status                              daemon version, listeners, counts\n"
          "  site create NAME [--type static|php|app] [--domain D]... [--cmd CMD]\n"
          "                   [--memory 256M] [--cpu 0.5] [--pids 128] [--network none|nat|host]\n"
          "                   [--owner USER] [--always-on] [--idle SECONDS] [--php KEY=VALUE]...\n"
          "  site ls | site show NAME\n"
          "  site set NAME [--memory M] [--cpu C] [--pids N] [--idle SECONDS]\n"
          "                [--always-on|--on-demand] [--domain D]... [--no-domain D]...\n"
          "                [--php KEY=VALUE]... [--no-php KEY]...\n"
          "  site php-settings                   the PHP settings a site may change\n"
          "  site start NAME | site stop NAME | site restart NAME | site rm NAME [--purge]\n"
          "  site logs NAME [--error] [--lines N] [--follow]  the site's access (or error) log\n"
          "  site exec NAME -- CMD [ARG]...      run a command in the site's sandbox\n"
          "  site upload NAME PATH               zip, tar(.gz/.zst/.xz) or a folder; replaces public/\n"
          "  site key add|ls|rm NAME ...         SSH keys that log in over SFTP as user NAME\n"
          "  site archive NAME [--keep N] [--output FILE|-]  snapshot public/, private/ and settings\n"
          "  site archives NAME [--download SNAP [--output FILE|-]] [--delete SNAP]\n"
          "  site restore NAME SNAP|--file PATH [--settings]  bring a snapshot back\n"
          "  user add NAME [--admin] [--password-stdin] | user ls | user rm NAME\n"
          "  user passwd NAME [--password-stdin] | user disable NAME | user enable NAME\n"
          "  token create NAME --user USER | token ls [--user USER] | token rm ID\n"
          "  apply FILE.yaml [--prune] [--dry-run] make the sites match a YAML file\n"
          "\n"
          "Options:\n"
          "  --socket PATH   berthd's API socket (default $BERTH_SOCKET or " DEFAULT_SOCKET ")\n"
          "  --json          print the API's JSON answer on stdout (also after the command)\n"
          "  --help          this text; 'berth site --help' for one family\n"
          "  --version       the client's version\n"
          "\n"
          "Exit status: 0 done, 1 failed (with one line on stderr), 2 usage error.\n", f);
}

int main(int argc, char **argv)
{
    struct cli cli = { .socket_path = getenv("BERTH_SOCKET") };
    if (!cli.socket_path || !*cli.socket_path)
        cli.socket_path = DEFAULT_SOCKET;

    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (streq(a, "--json")) {
            cli.json = true;
        } else if (streq(a, "--socket") || str_startswith(a, "--socket=")) {
            if (a[8] == '=') {
                cli.socket_path = a + 9;
            } else if (i + 1 < argc) {
                cli.socket_path = argv[++i];
            } else {
                return cli_usage_error(NULL, "--socket needs a path");
            }
        } else if (streq(a, "--help") || streq(a, "-h")) {
            usage(stdout);
            return EXIT_OK;
        } else if (streq(a, "--version")) {
            printf("berth %s\n", BERTH_VERSION);
            return EXIT_OK;
        } else {
            return cli_usage_error(NULL, "unknown option %s", a);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* --json may also come after the command ("berth site ls --json"), as long as
     * it is not part of what `site exec` runs (after its "--"). */
    for (int k = i + 1; k < argc && !streq(argv[k], "--"); k++) {
        if (streq(argv[k], "--json")) {
            cli.json = true;
            memmove(&argv[k], &argv[k + 1], (size_t)(argc - k) * sizeof(*argv));   /* argv[argc] is NULL */
            argc--;
            k--;
        }
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    if (streq(cmd, "status"))
        return cli_status(&cli, sub_argc, sub_argv);
    if (streq(cmd, "site"))
        return cli_site(&cli, sub_argc, sub_argv);
    if (streq(cmd, "user"))
        return cli_user(&cli, sub_argc, sub_argv);
    if (streq(cmd, "token"))
        return cli_token(&cli, sub_argc, sub_argv);
    if (streq(cmd, "apply"))
        return cli_apply(&cli, sub_argc, sub_argv);
    if (streq(cmd, "help")) {
        usage(stdout);
        return EXIT_OK;
    }
    return cli_usage_error(NULL, "unknown command \"%s\"", cmd);
}

/* The berth command: shared pieces of its command families. */
#pragma once

#include "common/buf.h"
#include "common/json.h"

/* Exit statuses of the interface contract. */
#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

struct cli {
    const char *socket_path;
    bool json;               /* --json: stdout is one JSON document */
};

/* A response from the API. */
struct cli_response {
    int status;
    struct json_value *json;   /* parsed body (NULL if not JSON) */
    char *raw;                 /* body as received */
};

/* Sends one request (body may be NULL) and reads the answer. On a transport failure
 * prints "berth: ..." and returns -errno. */
int cli_request(const struct cli *cli, const char *method, const char *path, const char *body,
                struct cli_response *ret);
void cli_response_done(struct cli_response *res);
/* Sends all n bytes on a socket (no SIGPIPE). 0 or -errno. */
int cli_send_all(int fd, const char *p, size_t n);
/* Connects to berthd's API socket; -1 after printing why. */
int cli_connect_api(const struct cli *cli);
/* Sends PUT path with size bytes of body_fd as the body. 0, or EXIT_FAILED after
 * printing why. */
int cli_send_file(int sock, const char *path, int body_fd, uint64_t size);
/* Reads berthd's whole answer (at most 1 MiB) from sock into ret. 0 or EXIT_FAILED. */
int cli_read_answer(int sock, struct cli_response *ret);
/* berth site key add|ls|rm (key.c; argv[0] is "key"). */
int cli_site_key(const struct cli *cli, int argc, char **argv);
/* berth site archive|archives|restore (archive.c). */
int cli_site_archive(const struct cli *cli, int argc, char **argv);
/* Reports a response: with --json prints the body to stdout; on an error status
 * prints "berth: <message>" to stderr. Returns EXIT_OK for 2xx, else EXIT_FAILED. */
int cli_finish(const struct cli *cli, const struct cli_response *res);

/* Prints "berth: <message>" on stderr and returns EXIT_USAGE, adding a hint. */
int cli_usage_error(const char *command, const char *fmt, ...) _printf_(2, 3);
/* Prints "berth: <message>" on stderr and returns EXIT_FAILED. */
int cli_fail(const char *fmt, ...) _printf_(1, 2);

/* An aligned text table. */
struct cli_table {
    size_t n_cols, n_rows;
    char **cells;   /* row-major, owned */
};
void cli_table_init(struct cli_table *t, size_t n_cols, ...);   /* header names */
void cli_table_row(struct cli_table *t, ...);                     /* n_cols strings (NULL prints "-") */
void cli_table_print(struct cli_table *t);                        /* prints and frees */

/* Reads a password: from stdin's first line with from_stdin, else from the terminal
 * (twice, echo off). Returns a malloc'd string or NULL after printing why. */
char *cli_read_password(bool from_stdin, const char *prompt_name, bool confirm);

int cli_status(const struct cli *cli, int argc, char **argv);
int cli_site(const struct cli *cli, int argc, char **argv);
/* berth site exec NAME -- CMD [ARG]... (argv[0] is "exec"); returns the command's exit status. */
int cli_site_exec(const struct cli *cli, int argc, char **argv);
int cli_user(const struct cli *cli, int argc, char **argv);
/* berth site upload NAME PATH. argv holds NAME and PATH (argc 2); PATH is a zip or
 * tar(.gz/.zst/.xz) file sent as it is, or a folder packed into a tar on the fly.
 * Prints "uploaded N files (SIZE) to site NAME". Returns an exit status. */
int cli_site_upload(const struct cli *cli, int argc, char **argv);
/* berth apply FILE.yaml [--prune] [--dry-run] (argv[0] is "apply"): makes the sites
 * match the file, printing one line per change. */
int cli_apply(const struct cli *cli, int argc, char **argv);
/* berth token create | ls | rm (argv[0] is "token"). */
int cli_token(const struct cli *cli, int argc, char **argv);

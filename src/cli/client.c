/* The CLI's side of the API: one HTTP/1.1 request per connection over the unix
 * socket, the answer parsed with the same parser the daemon uses. */
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

#include "cli/cli.h"
#include "http/http1.h"

#define MAX_RESPONSE (64 * 1024 * 1024)

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("berth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAILED;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("berth: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'berth %s--help')\n", command ? command : "");
    va_end(ap);
    return EXIT_USAGE;
}

int cli_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cli_request(const struct cli *cli, const char *method, const char *path, const char *body,
                struct cli_response *ret)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    *ret = (struct cli_response){ 0 };
    if (strlen(cli->socket_path) >= sizeof(sa.sun_path)) {
        cli_fail("socket path too long: %s", cli->socket_path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, cli->socket_path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        cli_fail("cannot reach berthd at %s: %s%s", cli->socket_path, strerror(e),
                 e == ENOENT || e == ECONNREFUSED ? " (is berthd running? the socket can be named with --socket or BERTH_SOCKET)"
                 : e == EACCES ? " (the API socket is for root)" : "");
        return -e;
    }
    struct buf req = BUF_INIT(2 * 1024 * 1024);
    size_t body_len = body ? strlen(body) : 0;
    int r = buf_printf(&req, "%s %s HTTP/1.1\r\nHost: berthd\r\nUser-Agent: berth/%s\r\nConnection: close\r\n",
                       method, path, BERTH_VERSION);
    if (r >= 0 && body)
        r = buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    if (r >= 0)
        r = buf_append_str(&req, "\r\n");
    if (r >= 0 && body)
        r = buf_append(&req, body, body_len);
    if (r >= 0)
        r = cli_send_all(fd, req.data, req.len);
    buf_done(&req);
    if (r < 0) {
        cli_fail("cannot send the request to berthd: %s", strerror(-r));
        return r;
    }

    struct buf in = BUF_INIT(MAX_RESPONSE);
    for (;;) {
        if ((r = buf_reserve(&in, 64 * 1024)) < 0)
            break;
        ssize_t n = recv(fd, in.data + in.len, in.cap - in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        in.len += (size_t)n;
        in.data[in.len] = 0;
    }
    if (r < 0) {
        buf_done(&in);
        cli_fail("cannot read berthd's answer: %s", strerror(-r));
        return r;
    }
    struct http1_parser p;
    struct http1_response res;
    http1_parser_init(&p, NULL);
    int head = http1_parse_response(&p, in.data ? in.data : "", in.len, HTTP_GET, &res);
    if (head <= 0) {
        buf_done(&in);
        cli_fail("berthd closed the connection without a valid answer%s",
                 in.len == 0 ? " (did it stop or crash? see its log)" : "");
        return -EPROTO;
    }
    size_t len = in.len - (size_t)head;
    if (res.body == HTTP1_BODY_LENGTH && res.content_length < len)
        len = (size_t)res.content_length;
    ret->status = res.status;
    ret->raw = strndup(in.data + head, len);
    buf_done(&in);
    if (!ret->raw)
        return -ENOMEM;
    if (json_parse(ret->raw, strlen(ret->raw), &ret->json, NULL, NULL) < 0)
        ret->json = NULL;
    return 0;
}

void cli_response_done(struct cli_response *res)
{
    json_value_free(res->json);
    free(res->raw);
    *res = (struct cli_response){ 0 };
}

int cli_finish(const struct cli *cli, const struct cli_response *res)
{
    if (cli->json)
        fputs(res->raw ? res->raw : "{}\n", stdout);
    if (res->status >= 200 && res->status < 300)
        return EXIT_OK;
    const struct json_value *error = json_get(res->json, "error");
    const char *msg = json_get_string(error, "message");
    cli_fail("%s", msg ? msg : "berthd answered with an error");
    return EXIT_FAILED;
}

/* ---- tables ---- */

void cli_table_init(struct cli_table *t, size_t n_cols, ...)
{
    va_list ap;
    *t = (struct cli_table){ .n_cols = n_cols };
    t->cells = calloc(n_cols, sizeof(char *));
    if (!t->cells)
        abort();
    va_start(ap, n_cols);
    for (size_t i = 0; i < n_cols; i++)
        t->cells[i] = xstrdup(va_arg(ap, const char *));
    va_end(ap);
    t->n_rows = 1;
}

void cli_table_row(struct cli_table *t, ...)
{
    va_list ap;
    char **cells = realloc(t->cells, (t->n_rows + 1) * t->n_cols * sizeof(char *));
    if (!cells)
        abort();
    t->cells = cells;
    va_start(ap, t);
    for (size_t i = 0; i < t->n_cols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->n_rows * t->n_cols + i] = xstrdup(s && *s ? s : "-");
    }
    va_end(ap);
    t->n_rows++;
}

void cli_table_print(struct cli_table *t)
{
    size_t width[16] = { 0 };
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols && c < ARRAY_SIZE(width); c++)
            width[c] = MAX(width[c], strlen(t->cells[r * t->n_cols + c]));
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *s = t->cells[r * t->n_cols + c];
            if (c + 1 == t->n_cols)
                printf("%s\n", s);
            else
                printf("%-*s  ", (int)width[c], s);
        }
    }
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct cli_table){ 0 };
}

/* ---- passwords ---- */

static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    return line;
}

static char *prompt_hidden(const char *prompt)
{
    struct termios old, quiet;
    FILE *tty = fopen("/dev/tty", "r+e");
    if (!tty)
        return NULL;
    /* Echo goes off before the prompt appears, and without flushing input, so that an
     * answer typed (or sent) right after the prompt is neither echoed nor lost. */
    bool restore = tcgetattr(fileno(tty), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSANOW, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char *line = read_line(tty);
    if (restore)
        tcsetattr(fileno(tty), TCSANOW, &old);
    fputc('\n', tty);
    fclose(tty);
    return line;
}

char *cli_read_password(bool from_stdin, const char *name, bool confirm)
{
    if (from_stdin) {
        char *line = read_line(stdin);
        if (!line || !*line) {
            free(line);
            cli_fail("no password on standard input");
            return NULL;
        }
        return line;
    }
    if (!isatty(STDIN_FILENO)) {
        cli_fail("no terminal to ask for the password on; pass it on standard input with --password-stdin");
        return NULL;
    }
    char prompt[128];
    snprintf(prompt, sizeof(prompt), "Password for %s: ", name);
    char *first = prompt_hidden(prompt);
    if (!first) {
        cli_fail("cannot read the password from the terminal");
        return NULL;
    }
    if (confirm) {
        char *again = prompt_hidden("Again: ");
        bool same = again && streq(first, again);
        free(again);
        if (!same) {
            free(first);
            cli_fail("the passwords do not match");
            return NULL;
        }
    }
    return first;
}

/* berth site exec NAME -- CMD [ARG]...
 *
 * Not an API call: the command's stdio must be this process's own, so the CLI hands
 * its fds 0, 1, 2 to berthd over <run dir>/exec.sock (root only,
 * SOCK_SEQPACKET, SCM_RIGHTS) and waits for "exit N" or "error MESSAGE". When this
 * process goes away berthd kills the command. On a terminal berthd gives the command
 * a pty and relays it; the terminal is put in raw mode meanwhile. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>

#include "cli/cli.h"
#include "sites/sites.h"


/* The exec socket is in berthd's run dir, which holds the API socket too unless
 * --api-socket put that elsewhere: status names the run dir. Returns 0, or -errno
 * after printing why. */
static int exec_socket_path(const struct cli *cli, char *out, size_t n)
{
    const char *env = getenv("BERTH_EXEC_SOCKET");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return 0;
    }
    struct cli_response res;
    int r = cli_request(cli, "GET", "/api/v1/status", NULL, &res);
    if (r < 0)
        return r;
    const char *run_dir = json_get_string(res.json, "run_dir");
    if (run_dir) {
        snprintf(out, n, "%s/exec.sock", run_dir);
    } else {
        _cleanup_free_ char *copy = strdup(cli->socket_path);
        if (!copy) {
            cli_response_done(&res);
            cli_fail("out of memory");
            return -ENOMEM;
        }
        snprintf(out, n, "%s/exec.sock", dirname(copy));
    }
    cli_response_done(&res);
    return 0;
}

int cli_site_exec(const struct cli *cli, int argc, char **argv)
{
    /* argv[0] is "exec". */
    if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
        puts("Usage: berth site exec NAME -- CMD [ARG]...\n"
             "Runs CMD inside the site's sandbox as the site's user, in /site; exits with its status.");
        return EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cli_usage_error("site ", "'site exec' needs a site name: berth site exec NAME -- CMD [ARG]...");
    const char *name = argv[1];
    int first = 2;
    if (first < argc && streq(argv[first], "--"))
        first++;
    if (first >= argc)
        return cli_usage_error("site ", "'site exec' needs a command after the site name and '--'");
    if (strlen(name) > 253 || strpbrk(name, "/?#% "))
        return cli_fail("invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-'", name);

    /* The exec socket knows only the sites that run code: a site that does not
     * exist at all is named as such by the API. */
    char site_path[512];
    snprintf(site_path, sizeof(site_path), "/api/v1/sites/%s", name);
    struct cli_response res;
    if (cli_request(cli, "GET", site_path, NULL, &res) < 0)
        return EXIT_FAILED;
    if (res.status == 404) {
        cli_fail("%s", json_get_string(json_get(res.json, "error"), "message") ?: "no such site");
        cli_response_done(&res);
        return EXIT_FAILED;
    }
    cli_response_done(&res);

    struct buf msg = BUF_INIT(65536);
    const char *term = getenv("TERM");
    uint32_t flags = (isatty(0) ? SITES_EXEC_FLAG_TTY : 0) | (term && *term ? SITES_EXEC_FLAG_TERM : 0);
    int r = buf_append(&msg, &flags, sizeof(flags));
    if (r >= 0)
        r = buf_append(&msg, name, strlen(name) + 1);
    if (r >= 0 && (flags & SITES_EXEC_FLAG_TERM))
        r = buf_append(&msg, term, strlen(term) + 1);
    for (int i = first; r >= 0 && i < argc; i++)
        r = buf_append(&msg, argv[i], strlen(argv[i]) + 1);
    if (r < 0) {
        buf_done(&msg);
        return cli_fail("the command line is too long");
    }

    char path[4200];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (exec_socket_path(cli, path, sizeof(path)) < 0) {
        buf_done(&msg);
        return EXIT_FAILED;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        buf_done(&msg);
        return cli_fail("the exec socket path %s is too long", path);
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        buf_done(&msg);
        if (e == EACCES)
            return cli_fail("cannot connect to %s: only root may run commands in a site", path);
        return cli_fail("cannot connect to %s: %s (is berthd running?)", path, strerror(e));
    }

    int fds[3] = { 0, 1, 2 };
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(fds))];
    } cm = { 0 };
    struct iovec iov = { msg.data, msg.len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm) };
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(h), fds, sizeof(fds));

    /* Raw mode before sending: keystrokes go to the command's pty untouched (^C
     * interrupts the command, not this client). */
    struct termios saved;
    bool raw = (flags & SITES_EXEC_FLAG_TTY) && tcgetattr(0, &saved) == 0;
    if (raw) {
        struct termios t = saved;
        cfmakeraw(&t);
        (void)tcsetattr(0, TCSANOW, &t);
    }
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    int send_errno = errno;
    buf_done(&msg);
    char answer[1024];
    ssize_t got = -1;
    if (n >= 0) {
        do
            got = recv(fd, answer, sizeof(answer) - 1, 0);
        while (got < 0 && errno == EINTR);
    }
    if (raw)
        (void)tcsetattr(0, TCSANOW, &saved);
    if (n < 0)
        return cli_fail("cannot send the command to berthd: %s", strerror(send_errno));
    if (got <= 0)
        return cli_fail("berthd closed the connection before the command ended");
    answer[got] = 0;
    int status;
    if (sscanf(answer, "exit %d", &status) == 1 && status >= 0 && status <= 255)
        return status;
    if (str_startswith(answer, "error "))
        return cli_fail("%s", answer + 6);
    return cli_fail("unexpected answer from berthd: %s", answer);
}

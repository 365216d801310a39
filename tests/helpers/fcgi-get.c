/* fcgi-get: sends one request to a FastCGI server with berth's fastcgi library, as
 * the front would, and prints what came back. For the live php-fpm tests.
 *
 *   fcgi-get SOCKET ROOT [-X METHOD] [-d BODY] [-H "Name: value"]... [--no-front-controller]
 *            [--document-root DIR] TARGET
 *
 * ROOT is the public directory (the route is resolved in it, and it is also sent as
 * DOCUMENT_ROOT unless --document-root names the path the server sees, as
 * "/site/public" for a php-fpm inside a site's sandbox). Output on stdout:
 *   route script|static|not-found [SCRIPT PATH_INFO]
 *   status N
 *   kind document|local-redirect|client-redirect
 *   header Name: value          (one line each)
 *   app-status N
 *   <empty line>
 *   body bytes
 * STDERR records go to stderr. Exit 0 when the exchange completed, 3 when the route
 * ran nothing (no connection is made), 1 on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fastcgi/fastcgi.h"

#define MAX_HEADERS 32

static void buf_donep(struct buf *b)
{
    buf_done(b);
}

static _noreturn_ void fail(const char *what, int r)
{
    fprintf(stderr, "fcgi-get: %s: %s\n", what, strerror(r < 0 ? -r : r));
    exit(1);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
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

int main(int argc, char **argv)
{
    const char *method = "GET", *body = NULL;
    bool front_controller = true;
    struct fastcgi_request_header headers[MAX_HEADERS];
    size_t n_headers = 0;
    int i = 3;
    if (argc < 4) {
        fprintf(stderr, "usage: fcgi-get SOCKET ROOT [-X M] [-d BODY] [-H 'N: v']... TARGET\n");
        return 2;
    }
    const char *sock = argv[1], *root = argv[2], *document_root = argv[2];
    for (; i < argc - 1; i++) {
        if (streq(argv[i], "-X") && i + 1 < argc - 1) {
            method = argv[++i];
        } else if (streq(argv[i], "-d") && i + 1 < argc - 1) {
            body = argv[++i];
        } else if (streq(argv[i], "-H") && i + 1 < argc - 1 && n_headers < MAX_HEADERS) {
            const char *h = argv[++i], *colon = strchr(h, ':');
            if (!colon)
                return 2;
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            headers[n_headers++] = (struct fastcgi_request_header){ h, (size_t)(colon - h), v, strlen(v) };
        } else if (streq(argv[i], "--document-root") && i + 1 < argc - 1) {
            document_root = argv[++i];
        } else if (streq(argv[i], "--no-front-controller")) {
            front_controller = false;
        } else {
            return 2;
        }
    }
    const char *target = argv[argc - 1];
    const char *q = strchr(target, '?');
    size_t path_len = q ? (size_t)(q - target) : strlen(target);

    /* The route, as the front decides it (the tests give already-normal paths). */
    _cleanup_close_ int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        fail("open root", errno);
    static struct fastcgi_route rt;
    int r = fastcgi_route_resolve(root_fd, target, path_len, front_controller, &rt);
    if (r < 0)
        fail("route", r);
    if (rt.kind != FASTCGI_ROUTE_SCRIPT) {
        printf("route %s\n", rt.kind == FASTCGI_ROUTE_STATIC ? "static" : "not-found");
        return 3;
    }
    printf("route script %s %.*s\n", rt.script_name, (int)rt.path_info_len, rt.path_info);

    size_t body_len = body ? strlen(body) : 0;
    struct fastcgi_request_info info = {
        .method = method, .method_len = strlen(method),
        .request_uri = target, .request_uri_len = strlen(target),
        .query = q ? q + 1 : "", .query_len = q ? strlen(q + 1) : 0,
        .document_root = document_root,
        .script_name = rt.script_name,
        .path_info = rt.path_info, .path_info_len = rt.path_info_len,
        .server_protocol = "HTTP/1.1",
        .remote_addr = "127.0.0.1", .remote_port = 40000,
        .server_name = "test.berth", .server_port = 80,
        .content_type = body ? "application/x-www-form-urlencoded" : NULL,
        .content_type_len = body ? 33 : 0,
        .has_content_length = body != NULL, .content_length = body_len,
        .headers = headers, .n_headers = n_headers,
    };
    _cleanup_(buf_donep) struct buf out = BUF_INIT(1 << 24);
    if ((r = fastcgi_begin_request_write(&out, 1, true)) < 0 ||
        (r = fastcgi_params_build(&out, 1, &info)) < 0 ||
        (r = fastcgi_stdin_write(&out, 1, body ? body : "", body_len)) < 0 ||
        (r = fastcgi_stdin_end(&out, 1)) < 0)
        fail("encode", r);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (fd < 0 || strlen(sock) >= sizeof(sa.sun_path))
        fail("socket", fd < 0 ? errno : ENAMETOOLONG);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        fail("connect", errno);
    if ((r = write_all(fd, out.data, out.len)) < 0)
        fail("write", r);

    /* Read records; STDOUT goes into one buffer until the CGI head is complete. */
    struct fastcgi_response resp;
    fastcgi_response_init(&resp, 1, 64 * 1024);
    _cleanup_(buf_donep) struct buf head = BUF_INIT(FASTCGI_MAX_HEAD_DEFAULT + 65536);
    _cleanup_(buf_donep) struct buf rest = BUF_INIT(1 << 26);
    struct fastcgi_cgi_parser cp;
    static struct fastcgi_cgi_head h;
    fastcgi_cgi_parser_init(&cp, 0);
    int head_len = 0;
    bool ended = false;
    char in[4096];
    while (!ended) {
        ssize_t n = read(fd, in, sizeof(in));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("read (connection closed before END_REQUEST)", n < 0 ? errno : EPIPE);
        const char *p = in;
        size_t left = (size_t)n;
        while (left > 0) {
            enum fastcgi_event ev;
            const char *d;
            size_t dl;
            r = fastcgi_response_parse(&resp, p, left, &ev, &d, &dl);
            if (r < 0)
                fail("records", r);
            if (ev == FASTCGI_EVENT_STDOUT) {
                if (head_len == 0) {
                    if (buf_append(&head, d, dl) < 0)
                        fail("head too large", ENOBUFS);
                    head_len = fastcgi_cgi_head_parse(&cp, head.data, head.len, &h);
                    if (head_len < 0)
                        fail("CGI head", EPROTO);
                } else if (buf_append(&rest, d, dl) < 0) {
                    fail("body too large", ENOBUFS);
                }
            } else if (ev == FASTCGI_EVENT_END) {
                ended = true;
            }
            p += r;
            left -= (size_t)r;
        }
    }
    if (resp.stderr_buf.len)
        fwrite(resp.stderr_buf.data, 1, resp.stderr_buf.len, stderr);
    if (head_len <= 0)
        fail("no complete CGI head", EPROTO);
    static const char *const kinds[] = { "document", "local-redirect", "client-redirect" };
    printf("status %d\nkind %s\n", h.status, kinds[h.kind]);
    for (size_t k = 0; k < h.n_headers; k++)
        printf("header %.*s: %.*s\n", (int)h.headers[k].name_len, h.headers[k].name,
               (int)h.headers[k].value_len, h.headers[k].value);
    printf("app-status %u\n\n", resp.app_status);
    fwrite(head.data + head_len, 1, head.len - (size_t)head_len, stdout);
    fwrite(rest.data ? rest.data : "", 1, rest.len, stdout);
    fastcgi_response_done(&resp);
    return 0;
}

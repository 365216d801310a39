/* berth site upload NAME PATH: sends a zip or tar (gz/zst/xz) file as it is, or
 * packs a folder into a tar first, to PUT /api/v1/sites/NAME/content. The body is
 * streamed from a file with Content-Length, never held in memory: archives may be
 * up to the daemon's limit (1 GiB by default). A folder is packed into an unlinked
 * temp file rather than sent chunked, so the daemon knows the size up front and can
 * refuse a too-large upload before any of it is sent. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "cli/cli.h"
#include "http/http1.h"

#define MAX_ANSWER (1024 * 1024)

static const char *tmp_dir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* Copies one file's data from the disk reader into the tar writer. The reader
 * skips a sparse file's holes (its blocks jump ahead by offset) while the writer
 * takes the whole stream and drops the holes itself: a hole must be sent as the
 * zeros it reads as, or the data after it is lost. */
static int copy_data(struct archive *disk, struct archive *w, const char *path)
{
    static const char zeros[64 * 1024];
    int64_t written = 0;
    for (;;) {
        const void *block;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(disk, &block, &size, &offset);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return cli_fail("cannot read %s: %s", path, archive_error_string(disk));
        while (written < offset) {
            size_t n = (size_t)MIN((int64_t)sizeof(zeros), offset - written);
            if (archive_write_data(w, zeros, n) < 0)
                return cli_fail("cannot pack %s: %s", path, archive_error_string(w));
            written += (int64_t)n;
        }
        if (size > 0 && archive_write_data(w, block, size) < 0)
            return cli_fail("cannot pack %s: %s", path, archive_error_string(w));
        written += (int64_t)size;
    }
}

/* Packs the folder at path (its contents at the archive's root; symlinks inside
 * it kept as links, never followed) into a tar in an unlinked temp file. Returns the fd,
 * rewound, or -1 after printing why. */
static int pack_folder(const char *path)
{
    _cleanup_close_ int fd = open(tmp_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_fail("cannot create a temp file in %s to pack %s: %m", tmp_dir(), path);
        return -1;
    }
    char root[4096];
    snprintf(root, sizeof(root), "%s", path);
    size_t root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/')
        root[--root_len] = 0;

    struct archive *disk = archive_read_disk_new();
    struct archive *w = archive_write_new();
    int failed = !disk || !w;
    if (!failed) {
        /* Hybrid: the folder itself may be given through a symlink (~/www ->
         * /srv/www), as tar -H allows; links inside it stay links. */
        archive_read_disk_set_symlink_hybrid(disk);
        archive_read_disk_set_standard_lookup(disk);
        archive_write_set_format_pax_restricted(w);
        failed = archive_write_open_fd(w, fd) != ARCHIVE_OK;
        if (failed)
            cli_fail("cannot pack %s: %s", path, archive_error_string(w));
    }
    if (!failed && archive_read_disk_open(disk, root) != ARCHIVE_OK) {
        cli_fail("cannot read %s: %s", path, archive_error_string(disk));
        failed = 1;
    }
    struct archive_entry *e = archive_entry_new();
    while (!failed) {
        archive_entry_clear(e);
        int r = archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            failed = cli_fail("cannot read %s: %s", path, archive_error_string(disk));
            break;
        }
        archive_read_disk_descend(disk);
        const char *name = archive_entry_pathname(e);
        const char *rel = name && strncmp(name, root, root_len) == 0 ? name + root_len : NULL;
        if (!rel || (*rel && *rel != '/' && !streq(root, "/")))
            continue;   /* not beneath the folder: cannot happen */
        while (*rel == '/')
            rel++;
        if (!*rel)
            continue;   /* the folder itself is the archive's root */
        mode_t type = archive_entry_filetype(e);
        if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
            failed = cli_fail("cannot upload %s/%s: only files, folders and symlinks can be uploaded", root, rel);
            break;
        }
        archive_entry_copy_pathname(e, rel);
        if (archive_write_header(w, e) < ARCHIVE_WARN) {
            failed = cli_fail("cannot pack %s/%s: %s", root, rel, archive_error_string(w));
            break;
        }
        if (type == AE_IFREG && archive_entry_size(e) > 0 && copy_data(disk, w, name) != 0)
            failed = 1;
    }
    archive_entry_free(e);
    if (!failed && archive_write_close(w) != ARCHIVE_OK)
        failed = cli_fail("cannot pack %s: %s", path, archive_error_string(w));
    if (w)
        archive_write_free(w);
    if (disk)
        archive_read_free(disk);
    if (failed)
        return -1;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        cli_fail("cannot rewind the packed folder: %m");
        return -1;
    }
    return TAKE_FD(fd);
}

/* Sends the head and the body. A send that fails because berthd already answered
 * (it refuses an unknown site or a too-large upload from the head alone, then
 * closes) is not an error: its answer is read next. */
int cli_send_file(int sock, const char *path, int body_fd, uint64_t size)
{
    char head[1024];
    snprintf(head, sizeof(head),
             "PUT %s HTTP/1.1\r\nHost: berthd\r\nUser-Agent: berth/%s\r\n"
             "Connection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
             path, BERTH_VERSION, (unsigned long long)size);
    int r = cli_send_all(sock, head, strlen(head));
    static char block[256 * 1024];
    for (uint64_t sent = 0; r >= 0 && sent < size;) {
        ssize_t n = read(body_fd, block, (size_t)MIN((uint64_t)sizeof(block), size - sent));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cli_fail("cannot read the archive: %s", n < 0 ? strerror(errno) : "it shrank while being sent");
        r = cli_send_all(sock, block, (size_t)n);
        sent += (uint64_t)n;
    }
    if (r == -EPIPE || r == -ECONNRESET)
        return 0;
    if (r < 0)
        return cli_fail("cannot send the archive to berthd: %s", strerror(-r));
    return 0;
}

/* Reads berthd's answer into ret (the shape cli_finish takes). */
int cli_read_answer(int sock, struct cli_response *ret)
{
    struct buf in = BUF_INIT(MAX_ANSWER);
    int r = 0;
    for (;;) {
        if ((r = buf_reserve(&in, 16 * 1024)) < 0)
            break;
        ssize_t n = recv(sock, in.data + in.len, in.cap - in.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET && in.len > 0)
            break;   /* berthd closed with our unread body in its queue: the answer is here */
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
        return cli_fail("cannot read berthd's answer: %s", strerror(-r));
    }
    struct http1_parser p;
    struct http1_response res;
    http1_parser_init(&p, NULL);
    int head = http1_parse_response(&p, in.data ? in.data : "", in.len, HTTP_PUT, &res);
    if (head <= 0) {
        buf_done(&in);
        return cli_fail("berthd closed the connection without a valid answer%s",
                        in.len == 0 ? " (did it stop or crash? see its log)" : "");
    }
    size_t len = in.len - (size_t)head;
    if (res.body == HTTP1_BODY_LENGTH && res.content_length < len)
        len = (size_t)res.content_length;
    *ret = (struct cli_response){ .status = res.status, .raw = strndup(in.data + head, len) };
    buf_done(&in);
    if (!ret->raw)
        return cli_fail("out of memory");
    if (json_parse(ret->raw, strlen(ret->raw), &ret->json, NULL, NULL) < 0)
        ret->json = NULL;
    return 0;
}

int cli_connect_api(const struct cli *cli)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(cli->socket_path) >= sizeof(sa.sun_path)) {
        cli_fail("socket path too long: %s", cli->socket_path);
        return -1;
    }
    strcpy(sa.sun_path, cli->socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        safe_close(fd);
        cli_fail("cannot reach berthd at %s: %s%s", cli->socket_path, strerror(e),
                 e == ENOENT || e == ECONNREFUSED ? " (is berthd running? the socket can be named with --socket or BERTH_SOCKET)"
                 : e == EACCES ? " (the API socket is for root)" : "");
        return -1;
    }
    return fd;
}

int cli_site_upload(const struct cli *cli, int argc, char **argv)
{
    if (argc != 2)
        return cli_usage_error("site ", "'site upload' takes a site name and a file or folder");
    const char *name = argv[0], *path = argv[1];
    if (!*name || strlen(name) > 253 || strpbrk(name, "/?#% "))
        return cli_fail("invalid site name \"%s\": use 1 to 63 lowercase letters, digits and '-'", name);

    struct stat st;
    if (stat(path, &st) < 0)
        return cli_fail("cannot upload %s: %m", path);
    _cleanup_close_ int body = -1;
    if (S_ISDIR(st.st_mode)) {
        body = pack_folder(path);
        if (body < 0)
            return EXIT_FAILED;
        if (fstat(body, &st) < 0)
            return cli_fail("cannot read the packed folder: %m");
    } else if (S_ISREG(st.st_mode)) {
        body = open(path, O_RDONLY | O_CLOEXEC);
        if (body < 0 || fstat(body, &st) < 0)
            return cli_fail("cannot open %s: %m", path);
    } else {
        return cli_fail("cannot upload %s: not a file or a folder", path);
    }

    _cleanup_close_ int sock = cli_connect_api(cli);
    if (sock < 0)
        return EXIT_FAILED;
    char url[512];
    snprintf(url, sizeof(url), "/api/v1/sites/%s/content", name);
    if (cli_send_file(sock, url, body, (uint64_t)st.st_size) != 0)
        return EXIT_FAILED;
    struct cli_response res;
    if (cli_read_answer(sock, &res) != 0)
        return EXIT_FAILED;
    int r = cli_finish(cli, &res);
    if (r == EXIT_OK && !cli->json) {
        int64_t files = 0, bytes = 0;
        json_get_int(res.json, "files", &files);
        json_get_int(res.json, "bytes", &bytes);
        char size[16];
        format_size((uint64_t)bytes, size, sizeof(size));
        /* format_size writes bytes bare ("3"), as sizes are given: say what they are. */
        printf("uploaded %lld file%s (%s%s) to site %s\n", (long long)files, files == 1 ? "" : "s", size,
               bytes < 1024 ? " bytes" : "", name);
    }
    cli_response_done(&res);
    return r;
}

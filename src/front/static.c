/* Static files from a site's public/ directory: GET and HEAD, index.html, the
 * trailing-slash redirect, validators and 304, one byte range, precompressed
 * siblings. Every open goes through front_open_beneath_owner() on the site's
 * cached root fd, so no path, "..", or symlink reaches outside the site or into
 * files the site's owner does not own. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>

#include "fastcgi/fastcgi.h"
#include "front/front-worker.h"

/* Files up to this size are read into the answer buffer and leave in the same
 * write(2) as the head; bigger ones go by sendfile(2). */
#define SMALL_FILE (16 * 1024)

static int out_str(struct conn *c, const char *s)
{
    return buf_append_str(&c->out, s);
}

static int out_u64(struct conn *c, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(&c->out, tmp + i, sizeof(tmp) - i);
}

/* Writes p (a decoded path) as a URL path: bytes outside the unreserved and
 * sub-delimiter characters, ':', '@' and '/' as %XX. Returns the length written,
 * at most 3 * n. */
static size_t put_path_escaped(char *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr("-._~!$&'()*+,;=:@/", ch)) {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    return k;
}

static bool ends_with_ci(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && mem_case_eq(s + len - n, n, suffix);
}

static void refuse_open(struct conn *c, int r, const char *path)
{
    if (r == -EACCES)
        front_conn_log_error(c, "refused \"%s\": a symlink leaves the site or changes owner", path);
    else if (r != -ENOENT && r != -ENOTDIR && r != -ENAMETOOLONG)
        front_conn_log_error(c, "open \"%s\": %s", path, strerror(-r));
    front_conn_error(c, 404, NULL);
}

/* A file opened for this request: the cache's (we hold a reference) or our own fd. */
static void release_file(int fd, struct cached_file *cf)
{
    if (cf)
        front_cached_file_unref(cf);
    else
        close(fd);
}

/* Opens rel through the open-file cache; on success the caller holds the file
 * (release_file). */
static int open_file(struct conn *c, int root, const char *rel, int *ret_fd, struct stat *ret_st,
                     struct cached_file **ret_cf)
{
    int r = front_file_open(c->w, c->site, root, rel, ret_fd, ret_st, ret_cf);
    if (r >= 0)
        front_cached_file_ref(*ret_cf);
    return r;
}

/* Tries the precompressed sibling path+suffix; on success replaces *fd, *st, *cf. */
static bool try_sibling(struct conn *c, int root, char *rel, size_t rel_len, const char *suffix,
                        int *fd, struct stat *st, struct cached_file **cf)
{
    size_t n = strlen(suffix);
    if (rel_len + n >= PATH_MAX)
        return false;
    memcpy(rel + rel_len, suffix, n + 1);
    int sfd;
    struct stat sst;
    struct cached_file *scf;
    int r = open_file(c, root, rel, &sfd, &sst, &scf);
    rel[rel_len] = 0;
    if (r < 0)
        return false;
    if (!S_ISREG(sst.st_mode)) {
        release_file(sfd, scf);
        return false;
    }
    release_file(*fd, *cf);
    *fd = sfd;
    *st = sst;
    *cf = scf;
    return true;
}

static const struct http1_header *hdr(struct conn *c, const char *name)
{
    return http1_find_header(c->req.headers, c->req.n_headers, name);
}

/* If-Match, else If-Unmodified-Since: the client's change or download was meant
 * for another version of the file, 412 (RFC 9110 §13.2.2, checked first). */
static bool precondition_failed(struct conn *c, const struct stat *st, const char *etag)
{
    const struct http1_header *im = hdr(c, "if-match");
    if (im)
        return !front_etag_match(im->value, im->value_len, etag, true);
    const struct http1_header *ius = hdr(c, "if-unmodified-since");
    time_t t;
    return ius && http_date_parse(ius->value, ius->value_len, &t) == 0 && st->st_mtim.tv_sec > t;
}

/* If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2). */
static bool not_modified(struct conn *c, const struct stat *st, const char *etag)
{
    const struct http1_header *inm = hdr(c, "if-none-match");
    if (inm)
        return front_etag_match(inm->value, inm->value_len, etag, false);
    const struct http1_header *ims = hdr(c, "if-modified-since");
    time_t t;
    return ims && http_date_parse(ims->value, ims->value_len, &t) == 0 && st->st_mtim.tv_sec <= t;
}

/* If-Range: the range applies only while the client's validator still matches
 * (strongly for an entity tag, exactly for a date). */
static bool if_range_ok(struct conn *c, const struct stat *st, const char *etag)
{
    const struct http1_header *ir = hdr(c, "if-range");
    if (!ir)
        return true;
    if (ir->value_len > 0 && (ir->value[0] == '"' || ir->value[0] == 'W'))
        return ir->value_len == strlen(etag) && memcmp(ir->value, etag, ir->value_len) == 0;
    time_t t;
    return http_date_parse(ir->value, ir->value_len, &t) == 0 && t == st->st_mtim.tv_sec;
}

/* Takes the file (fd, or cf's reference) and answers with it. */
static void serve_file(struct conn *c, int fd, const struct stat *st0, struct cached_file *cf, char *rel,
                       size_t rel_len)
{
    struct stat st = *st0;
    int root = c->site->root_fd;
    const char *type = front_mime_type(rel, rel_len);
    bool compressible = front_mime_compressible(type);
    const char *encoding = NULL;
    const struct http1_header *ae = compressible ? hdr(c, "accept-encoding") : NULL;
    if (ae) {
        if (front_accepts_encoding(ae->value, ae->value_len, "br") &&
            try_sibling(c, root, rel, rel_len, ".br", &fd, &st, &cf))
            encoding = "br";
        else if (front_accepts_encoding(ae->value, ae->value_len, "gzip") &&
                 try_sibling(c, root, rel, rel_len, ".gz", &fd, &st, &cf))
            encoding = "gzip";
    }
    char etag[48], lastmod[30];
    front_etag_format(&st, etag, sizeof(etag));
    http_date_format((time_t)st.st_mtim.tv_sec, lastmod);
    uint64_t size = (uint64_t)st.st_size, first = 0, last = size ? size - 1 : 0;
    int status = 200;

    if (precondition_failed(c, &st, etag)) {
        release_file(fd, cf);
        front_conn_error(c, 412, NULL);
        return;
    }
    if (not_modified(c, &st, etag)) {
        release_file(fd, cf);
        front_conn_head_begin(c, 304);
        out_str(c, "ETag: ");
        out_str(c, etag);
        out_str(c, "\r\nLast-Modified: ");
        out_str(c, lastmod);
        out_str(c, compressible ? "\r\nVary: Accept-Encoding\r\n\r\n" : "\r\n\r\n");
        c->state = CS_RESPOND;
        return;
    }
    const struct http1_header *range = hdr(c, "range");
    if (range && if_range_ok(c, &st, etag)) {
        int r = front_range_parse(range->value, range->value_len, size, &first, &last);
        if (r == -416) {
            release_file(fd, cf);
            char extra[64];
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
            front_conn_error(c, 416, extra);
            return;
        }
        if (r == 1)
            status = 206;
    }
    uint64_t len = size == 0 ? 0 : last - first + 1;

    size_t mark = c->out.len;
    int r = front_conn_head_begin(c, status);
    out_str(c, "Content-Type: ");
    out_str(c, type);
    out_str(c, "\r\nContent-Length: ");
    out_u64(c, len);
    out_str(c, "\r\nLast-Modified: ");
    out_str(c, lastmod);
    out_str(c, "\r\nETag: ");
    out_str(c, etag);
    out_str(c, "\r\nAccept-Ranges: bytes\r\n");
    if (status == 206) {
        out_str(c, "Content-Range: bytes ");
        out_u64(c, first);
        out_str(c, "-");
        out_u64(c, last);
        out_str(c, "/");
        out_u64(c, size);
        out_str(c, "\r\n");
    }
    if (encoding) {
        out_str(c, "Content-Encoding: ");
        out_str(c, encoding);
        out_str(c, "\r\n");
    }
    if (compressible)
        out_str(c, "Vary: Accept-Encoding\r\n");
    r = out_str(c, "\r\n");
    c->state = CS_RESPOND;
    if (r < 0) {
        release_file(fd, cf);
        c->out.len = mark;
        c->keep_alive = false;
        front_conn_error(c, 500, NULL);
        return;
    }
    if (c->req.method == HTTP_HEAD || len == 0) {
        release_file(fd, cf);
        return;
    }
    c->bytes_sent = len;
    if (len <= SMALL_FILE && buf_reserve(&c->out, len) >= 0) {
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(fd, c->out.data + c->out.len + got, len - got, (off_t)(first + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        release_file(fd, cf);
        if (got < len) {
            /* The file shrank between fstat and read: say so rather than send a
             * body shorter than its Content-Length. */
            c->out.len = mark;
            c->keep_alive = false;
            front_conn_error(c, 500, NULL);
            return;
        }
        c->out.len += len;
        c->out.data[c->out.len] = 0;
        return;
    }
    c->file_fd = fd;
    c->file_cf = cf;   /* our reference goes with it */
    c->file_off = first;
    c->file_left = len;
}

/* A PHP site: fastcgi_route_resolve decides (see fastcgi.h). A script goes to
 * fcgi.c; a static file comes back here, so a PHP site's images never reach PHP.
 * Returns true when the request was answered. */
static bool php_route(struct conn *c, const char *norm, size_t nlen)
{
    /* 4 KiB: one per worker process (one thread), not on the stack. */
    static struct fastcgi_route route;
    struct vsite *s = c->site;
    int root = front_vsite_root(c->w, s);
    if (root < 0) {
        front_conn_log_error(c, "open public dir %s: %s", s->public_dir, strerror(-root));
        front_conn_error(c, 404, NULL);
        return true;
    }
    int r = fastcgi_route_resolve(root, norm, nlen, true, &route);
    if (r < 0 && r != -ENAMETOOLONG)
        front_conn_log_error(c, "route \"%s\": %s", norm, strerror(-r));
    if (r >= 0 && route.kind == FASTCGI_ROUTE_SCRIPT) {
        front_fcgi_start(c, &route);
        return true;
    }
    if (r < 0 || route.kind == FASTCGI_ROUTE_NOT_FOUND) {
        front_conn_error(c, 404, NULL);
        return true;
    }
    return false;
}

void front_static_handle(struct conn *c, const char *path, size_t path_len, const char *query,
                         size_t query_len)
{
    struct vsite *s = c->site;
    bool php = s->type == FRONT_SITE_PHP;
    if (!php && c->req.method != HTTP_GET && c->req.method != HTTP_HEAD) {
        front_conn_error(c, 405, "Allow: GET, HEAD\r\n");
        return;
    }
    char norm[PATH_MAX + 16];
    size_t nlen;
    if (path_len >= PATH_MAX || http_path_normalize(path, path_len, norm, PATH_MAX, &nlen) < 0) {
        front_conn_error(c, 400, NULL);
        return;
    }
    /* .git, .env, .htaccess, .well-known... no dotfile is served as a file. */
    if (front_path_has_dot_segment(norm, nlen)) {
        front_conn_error(c, 404, NULL);
        return;
    }
    if (php) {
        if (php_route(c, norm, nlen))
            return;
        if (c->req.method != HTTP_GET && c->req.method != HTTP_HEAD) {
            front_conn_error(c, 405, "Allow: GET, HEAD\r\n");
            return;
        }
    }
    int root = front_vsite_root(c->w, s);
    if (root < 0) {
        front_conn_log_error(c, "open public dir %s: %s", s->public_dir, strerror(-root));
        front_conn_error(c, 404, NULL);
        return;
    }
    char *rel = norm + 1;
    size_t rel_len = nlen - 1;
    int fd;
    struct stat st;
    struct cached_file *cf;
    int r;
    if (rel_len == 0 || rel[rel_len - 1] == '/') {
        /* A directory's index.html straight from the open-file cache (the usual
         * request for "/"); on any failure the walk below decides, as it did. */
        memcpy(rel + rel_len, "index.html", sizeof("index.html"));
        r = open_file(c, root, rel, &fd, &st, &cf);
        if (r >= 0 && S_ISREG(st.st_mode)) {
            serve_file(c, fd, &st, cf, rel, rel_len + sizeof("index.html") - 1);
            return;
        }
        if (r >= 0)
            release_file(fd, cf);
        rel[rel_len] = 0;
    }
    r = open_file(c, root, rel, &fd, &st, &cf);
    if (r < 0) {
        refuse_open(c, r, norm);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        release_file(fd, cf);
        if (path[path_len - 1] != '/') {
            /* Relative links inside an index.html need the slash. The Location is
             * made from the normalised path, never the raw one: "//images" or
             * "/\\evil.example/../images" would send a browser to another host. */
            char loc[3 * PATH_MAX + 1100];
            size_t n = sizeof("Location: ") - 1;
            memcpy(loc, "Location: ", n);
            n += put_path_escaped(loc + n, norm, nlen);
            loc[n++] = '/';
            size_t qn = MIN(query_len, (size_t)1024);
            memcpy(loc + n, query, qn);
            n += qn;
            memcpy(loc + n, "\r\n", 3);
            front_conn_error(c, 301, loc);
            return;
        }
        if (rel_len > 0 && rel[rel_len - 1] != '/')
            rel[rel_len++] = '/';
        memcpy(rel + rel_len, "index.html", sizeof("index.html"));
        rel_len += sizeof("index.html") - 1;
        r = open_file(c, root, rel, &fd, &st, &cf);
        if (r == -ENOENT) {
            front_conn_error(c, 403, NULL);   /* no directory listings */
            return;
        }
        if (r < 0) {
            refuse_open(c, r, norm);
            return;
        }
    }
    if (!S_ISREG(st.st_mode) ||
        (php && (ends_with_ci(rel, rel_len, ".php") || ends_with_ci(rel, rel_len, ".phar") ||
                 ends_with_ci(rel, rel_len, ".phps")))) {
        /* Never hand out PHP source (X.PHP, an archive) as a file. */
        release_file(fd, cf);
        front_conn_error(c, 404, NULL);
        return;
    }
    serve_file(c, fd, &st, cf, rel, rel_len);
}

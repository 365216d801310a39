/* The panel's pages, served from memory on panel.sock, and the tail of a site's logs
 * for the panel's site page. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>

#include "api/api-internal.h"
#include "common/fs.h"
#include "panel/panel.h"

/* Scripts and styles only from the panel's own files: no inline script can run, so
 * an injected string stays text. */
#define PANEL_CSP "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
/* The tail read of a log: enough for LOG_LINES_MAX lines of any sane length. */
#define LOG_TAIL_BYTES (256 * 1024)
#define LOG_LINES_MAX 1000
#define LOG_LINES_DEFAULT 100

static void security_headers(struct api_response *res)
{
    api_reply_header(res, "Content-Security-Policy: " PANEL_CSP);
    api_reply_header(res, "X-Frame-Options: DENY");
    api_reply_header(res, "Referrer-Policy: same-origin");
}

static void html_page(struct api_response *res, int status, const char *title, const char *text)
{
    api_reply(res, status);
    res->content_type = "text/html; charset=utf-8";
    buf_printf(&res->body, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title></head>"
               "<body><h1>%s</h1><p>%s</p><p><a href=\"/\">Go to the panel</a></p></body></html>\n",
               title, title, text);
    api_reply_header(res, "Cache-Control: no-store");
    security_headers(res);
}

void api_panel_serve(const struct http1_request *http, struct api_response *res)
{
    char path[256];
    size_t len = strcspn(http->path, "?");
    len = MIN(len, http->path_len);
    if (len >= sizeof(path)) {
        html_page(res, 404, "Not found", "There is no such page in the panel.");
        return;
    }
    memcpy(path, http->path, len);
    path[len] = 0;
    const struct panel_asset *a = panel_asset_find(path);
    if (!a) {
        html_page(res, 404, "Not found", "There is no such page in the panel.");
        return;
    }
    /* HEAD is answered as GET: the server leaves the body out. */
    if (http->method != HTTP_GET && http->method != HTTP_HEAD) {
        html_page(res, 405, "Method not allowed", "The panel's pages are read with GET.");
        api_reply_header(res, "Allow: GET, HEAD");
        return;
    }
    const struct http1_header *inm = http1_find_header(http->headers, http->n_headers, "if-none-match");
    bool fresh = inm && inm->value_len == strlen(a->etag) && memcmp(inm->value, a->etag, inm->value_len) == 0;
    api_reply(res, fresh ? 304 : 200);
    res->content_type = a->content_type;
    if (!fresh && buf_append(&res->body, a->data, a->len) < 0) {
        html_page(res, 500, "Internal error", "The page does not fit in the answer.");
        return;
    }
    api_reply_header(res, "ETag: %s", a->etag);
    /* Revalidate every time: the ETag makes that a 304 with no body, and an upgraded
     * berthd's new panel is never mixed with a cached old script. */
    api_reply_header(res, "Cache-Control: no-cache");
    security_headers(res);
}

/* Reads a regular file at fd into b: its last LOG_TAIL_BYTES when from is negative,
 * else at most LOG_TAIL_BYTES from offset from (from 0 again if the file is now
 * shorter: it was rotated). *ret_cut says whether the start was cut (the first,
 * partial line is then dropped by the caller); *ret_start is the offset read from. */
static int read_log(int fd, int64_t from, struct buf *b, bool *ret_cut, int64_t *ret_start)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    off_t start = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
    if (from >= 0)
        start = from <= st.st_size ? (off_t)from : 0;
    size_t want = MIN((size_t)(st.st_size - start), (size_t)LOG_TAIL_BYTES);
    int r = buf_reserve(b, want);
    if (r < 0)
        return r;
    while (b->len < want) {
        ssize_t n = pread(fd, b->data + b->len, want - b->len, start + (off_t)b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;   /* truncated (rotated) while we read: what we have will do */
        b->len += (size_t)n;
    }
    b->data[b->len] = 0;
    *ret_cut = from < 0 && start > 0;
    *ret_start = start;
    return 0;
}

void api_handle_site_logs(const struct api_config *cfg, const struct api_request *req, const char *site,
                          struct api_response *res)
{
    char kind[16] = "access", value[32], dir[4096], rel[32];
    uint64_t lines = LOG_LINES_DEFAULT, after = 0;
    bool follow = false;
    if (req->method != HTTP_GET) {
        api_reply_error(res, 405, "use GET on a site's logs");
        return;
    }
    api_query_get(req->query, "kind", kind, sizeof(kind));
    if (!streq(kind, "access") && !streq(kind, "error")) {
        api_reply_error(res, 400, "kind must be access or error");
        return;
    }
    if (api_query_get(req->query, "lines", value, sizeof(value)) &&
        parse_uint(value, 1, LOG_LINES_MAX, &lines) < 0) {
        api_reply_error(res, 400, "lines must be a number from 1 to %d", LOG_LINES_MAX);
        return;
    }
    /* after=OFFSET (the "next" of an earlier answer): the whole lines written since. */
    if (api_query_get(req->query, "after", value, sizeof(value))) {
        if (parse_uint(value, 0, INT64_MAX, &after) < 0) {
            api_reply_error(res, 400, "after must be an offset in the log, as \"next\" gave it");
            return;
        }
        follow = true;
    }
    sites_dir(cfg->sites, site, dir, sizeof(dir));
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) {
        api_reply_error(res, 500, "cannot open the site's directory: %s", strerror(errno));
        return;
    }
    /* The site's own programs can write beneath logs/: no symlink is followed and
     * only a regular file is read (a fifo would block berthd). */
    snprintf(rel, sizeof(rel), "logs/%s.log", kind);
    _cleanup_close_ int fd = open_beneath(dfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0,
                                          RESOLVE_NO_SYMLINKS);
    struct buf text = BUF_INIT(LOG_TAIL_BYTES);
    bool cut = false;
    int64_t start = 0;
    int r = fd < 0 ? fd : read_log(fd, follow ? (int64_t)after : -1, &text, &cut, &start);
    if (r < 0 && r != -ENOENT) {
        buf_done(&text);
        api_reply_error(res, 500, "cannot read the site's %s log: %s", kind, strerror(-r));
        return;
    }
    /* Walk back from the end to find where the last `lines` lines start. */
    const char *const base = text.data ? text.data : "";
    const char *begin = base, *end = base + text.len;
    if (cut) {
        const char *nl = memchr(begin, '\n', text.len);
        begin = nl ? nl + 1 : end;
    }
    if (follow) {
        /* Only whole lines: a line still being written comes in the next answer. */
        while (end > begin && end[-1] != '\n')
            end--;
        if (end == begin && text.len == LOG_TAIL_BYTES)
            end = begin + text.len;   /* one line longer than a read: give it as it is */
    }
    int64_t next = start + (end - base);
    while (end > begin && end[-1] == '\n')
        end--;
    const char *first = follow ? begin : end;
    for (uint64_t count = 0; !follow && count < lines && first > begin; count++) {
        const char *q = first;   /* just past the end of the line being counted */
        while (q > begin && q[-1] != '\n')
            q--;
        first = q;
        if (count + 1 < lines && first > begin)
            first--;             /* onto the newline that ends the line before */
    }
    api_reply(res, 200);
    json_object_begin(&res->json);
    json_kv_string(&res->json, "site", site);
    json_kv_string(&res->json, "kind", kind);
    json_kv_int(&res->json, "next", next);
    json_key(&res->json, "lines");
    json_array_begin(&res->json);
    for (const char *s = first; s < end;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        json_string_len(&res->json, s, (size_t)(e - s));
        s = e + 1;
    }
    json_array_end(&res->json);
    json_object_end(&res->json);
    buf_done(&text);
}

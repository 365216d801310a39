/* Buffered log files. Lines collect in a per-file buffer and reach the file when
 * it fills or on the worker's flush timer, so a request costs a memcpy and not a
 * write(2). Files are opened O_APPEND: every worker appends whole buffers of whole
 * lines to the same file, and the kernel keeps each write(2) together.
 *
 * Rotation by size is shared by the workers: whoever sees the file too big takes
 * flock() on it, checks that the path still names the file it holds (else another
 * worker rotated already and it only reopens), shifts the numbered files and
 * reopens. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/uio.h>

#include "front/front-internal.h"

#define LOG_BUF_SIZE (64 * 1024)

struct front_log {
    unsigned refs;
    char *path;
    int fd;
    char *buf;
    size_t len;
    uint64_t rotate_size;
    unsigned keep;
    struct front_log *prev, *next;
};

/* Every open log of this process: lets a site updated in place keep its log
 * object (opening by path returns the same one) and lets timers flush them all. */
static struct front_log *registry;

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0640);
    return fd < 0 ? -errno : fd;
}

int front_log_open(const char *path, uint64_t rotate_size, unsigned keep, struct front_log **ret)
{
    for (struct front_log *l = registry; l; l = l->next)
        if (streq(l->path, path)) {
            l->refs++;
            l->rotate_size = rotate_size;
            l->keep = keep;
            *ret = l;
            return 0;
        }
    struct front_log *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->path = strdup(path);
    l->buf = malloc(LOG_BUF_SIZE);
    if (!l->path || !l->buf) {
        free(l->path);
        free(l->buf);
        free(l);
        return -ENOMEM;
    }
    l->fd = open_path(path);
    if (l->fd < 0) {
        int r = l->fd;
        free(l->path);
        free(l->buf);
        free(l);
        return r;
    }
    l->refs = 1;
    l->rotate_size = rotate_size;
    l->keep = keep;
    l->next = registry;
    if (registry)
        registry->prev = l;
    registry = l;
    *ret = l;
    return 0;
}

struct front_log *front_log_ref(struct front_log *l)
{
    if (l)
        l->refs++;
    return l;
}

void front_log_unref(struct front_log *l)
{
    if (!l || --l->refs > 0)
        return;
    front_log_flush(l);
    if (l->prev)
        l->prev->next = l->next;
    else
        registry = l->next;
    if (l->next)
        l->next->prev = l->prev;
    safe_close(l->fd);
    free(l->buf);
    free(l->path);
    free(l);
}

static int rotate(struct front_log *l)
{
    if (flock(l->fd, LOCK_EX | LOCK_NB) < 0)
        return 0;   /* another worker is rotating right now */
    struct stat a, b;
    bool same = stat(l->path, &a) == 0 && fstat(l->fd, &b) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino;
    if (same) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        size_t n = sizeof(to);
        for (unsigned i = l->keep; i >= 1; i--) {
            snprintf(to, n, "%s.%u", l->path, i);
            if (i == 1)
                snprintf(from, n, "%s", l->path);
            else
                snprintf(from, n, "%s.%u", l->path, i - 1);
            if (i == l->keep)
                unlink(to);
            (void)rename(from, to);
        }
        if (l->keep == 0)
            (void)unlink(l->path);
    }
    int fd = open_path(l->path);
    if (fd < 0) {
        flock(l->fd, LOCK_UN);
        return fd;
    }
    safe_close(l->fd);   /* releases the lock */
    l->fd = fd;
    return 0;
}

int front_log_flush(struct front_log *l)
{
    if (!l || l->len == 0)
        return 0;
    size_t off = 0;
    int r = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;   /* a full disk loses lines; it must not stall the worker */
            break;
        }
        off += (size_t)n;
    }
    l->len = 0;
    struct stat st;
    if (l->rotate_size > 0 && fstat(l->fd, &st) == 0 && (uint64_t)st.st_size > l->rotate_size) {
        int k = rotate(l);
        if (r == 0)
            r = k;
    }
    return r;
}

void front_log_append(struct front_log *l, const char *p, size_t n)
{
    if (!l)
        return;
    if (l->len + n > LOG_BUF_SIZE)
        front_log_flush(l);
    if (n > LOG_BUF_SIZE) {
        /* One oversized line: written directly rather than truncated. */
        (void)!write(l->fd, p, n);
        return;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

int front_log_reopen(struct front_log *l)
{
    front_log_flush(l);
    int fd = open_path(l->path);
    if (fd < 0)
        return fd;
    safe_close(l->fd);
    l->fd = fd;
    return 0;
}

void front_log_flush_all(void)
{
    for (struct front_log *l = registry; l; l = l->next)
        front_log_flush(l);
}

void front_log_reopen_all(void)
{
    for (struct front_log *l = registry; l; l = l->next)
        front_log_reopen(l);
}

void front_log_time_format(time_t t, char *out, size_t n)
{
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, n, "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int front_log_escape(struct buf *b, const char *s, size_t n)
{
    if (!s)
        return buf_append_char(b, '-');
    static const char hex[] = "0123456789abcdef";
    int r = buf_reserve(b, n * 4);
    if (r < 0)
        return r;
    char *o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
    return 0;
}

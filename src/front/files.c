/* Static-file helpers that need no HTTP parser: byte ranges, validators,
 * Accept-Encoding, dotfile checks, and the owner-checked open beneath a site's
 * root. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>

#include "common/fs.h"
#include "front/front-internal.h"

static bool parse_u64(const char **p, const char *end, uint64_t *ret)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || !isdigit((unsigned char)*s))
        return false;
    for (; s < end && isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *ret = v;
    return true;
}

int front_range_parse(const char *value, size_t len, uint64_t size, uint64_t *ret_first,
                      uint64_t *ret_last)
{
    if (len < 6 || !mem_case_eq(value, 6, "bytes="))
        return 0;
    const char *p = value + 6, *end = value + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    /* Several ranges would need multipart/byteranges; RFC 9110 lets us ignore the
     * field and send the whole representation instead. */
    if (memchr(p, ',', (size_t)(end - p)))
        return 0;
    uint64_t first, last;
    if (p < end && *p == '-') {
        p++;
        uint64_t suffix;
        if (!parse_u64(&p, end, &suffix) || p != end)
            return 0;
        if (suffix == 0 || size == 0)
            return -416;
        first = suffix >= size ? 0 : size - suffix;
        last = size - 1;
    } else {
        if (!parse_u64(&p, end, &first) || p == end || *p != '-')
            return 0;
        p++;
        if (p == end) {
            last = UINT64_MAX;
        } else if (!parse_u64(&p, end, &last) || p != end || last < first) {
            return 0;
        }
        if (first >= size)
            return -416;
        if (last >= size)
            last = size - 1;
    }
    *ret_first = first;
    *ret_last = last;
    return 1;
}

/* Lowercase hex of v, no leading zeros, at p; returns the length. */
static size_t put_hex(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

void front_etag_format(const struct stat *st, char *out, size_t n)
{
    /* By hand rather than snprintf: this runs for every file answer. */
    char tmp[40];
    size_t k = 0;
    tmp[k++] = '"';
    k += put_hex(tmp + k, (uint64_t)st->st_mtim.tv_sec);
    tmp[k++] = '-';
    k += put_hex(tmp + k, (uint64_t)st->st_size);
    tmp[k++] = '"';
    if (n == 0)
        return;
    k = MIN(k, n - 1);
    memcpy(out, tmp, k);
    out[k] = 0;
}

bool front_etag_match(const char *value, size_t len, const char *etag, bool strong)
{
    size_t elen = strlen(etag);
    const char *p = value, *end = value + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        if (*p == '*')
            return true;
        bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        const char *s = p;
        if (p < end && *p == '"') {
            const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
            if (!q)
                return false;
            p = q + 1;
        } else {
            while (p < end && *p != ',')
                p++;
        }
        if ((size_t)(p - s) == elen && memcmp(s, etag, elen) == 0 && !(weak && strong))
            return true;
    }
    return false;
}

/* True when a q parameter value means "not acceptable" (0, 0.0, 0.00, 0.000). */
static bool q_is_zero(const char *p, const char *end)
{
    if (p == end || *p != '0')
        return false;
    for (p++; p < end; p++)
        if (*p != '.' && *p != '0')
            return false;
    return true;
}

/* Looks for token in an Accept-Encoding list; *ret_zero tells whether its q is 0. */
static bool find_coding(const char *value, size_t len, const char *token, bool *ret_zero)
{
    const char *p = value, *end = value + len;
    while (p < end) {
        const char *item_end = memchr(p, ',', (size_t)(end - p));
        if (!item_end)
            item_end = end;
        const char *s = p;
        while (s < item_end && (*s == ' ' || *s == '\t'))
            s++;
        const char *t = s;
        while (t < item_end && *t != ';' && *t != ' ' && *t != '\t')
            t++;
        if (mem_case_eq(s, (size_t)(t - s), token)) {
            bool zero = false;
            for (const char *q = t; q < item_end;) {
                while (q < item_end && (*q == ';' || *q == ' ' || *q == '\t'))
                    q++;
                const char *ve = q;
                while (ve < item_end && *ve != ';' && *ve != ' ' && *ve != '\t')
                    ve++;
                if (ve - q >= 2 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=')
                    zero = q_is_zero(q + 2, ve);
                q = ve;
            }
            *ret_zero = zero;
            return true;
        }
        p = item_end + 1;
    }
    return false;
}

bool front_accepts_encoding(const char *value, size_t len, const char *coding)
{
    bool zero;
    /* The coding's own entry decides; "*" speaks only for codings not named. */
    if (find_coding(value, len, coding, &zero))
        return !zero;
    if (find_coding(value, len, "*", &zero))
        return !zero;
    return false;
}

bool front_path_has_dot_segment(const char *path, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (path[i] == '.' && (i == 0 || path[i - 1] == '/'))
            return true;
    return false;
}

/* Joins dir (resolved, relative) and a symlink target lexically into out,
 * resolving "." and "..". -EACCES when the result would climb above the root:
 * the link points outside the site. */
static int join_lexical(const char *dir, const char *target, char *out, size_t size)
{
    size_t n = 0;
    const char *parts[2] = { dir, target };
    for (int k = 0; k < 2; k++) {
        const char *p = parts[k];
        while (*p) {
            const char *e = strchrnul(p, '/');
            size_t len = (size_t)(e - p);
            if (len == 0 || (len == 1 && p[0] == '.')) {
                /* skip */
            } else if (len == 2 && p[0] == '.' && p[1] == '.') {
                if (n == 0)
                    return -EACCES;
                while (n > 0 && out[n - 1] != '/')
                    n--;
                if (n > 0)
                    n--;   /* the separator */
            } else {
                if (n + len + 2 > size)
                    return -ENAMETOOLONG;
                if (n > 0)
                    out[n++] = '/';
                memcpy(out + n, p, len);
                n += len;
            }
            p = *e ? e + 1 : e;
        }
    }
    out[n] = 0;
    return 0;
}

#define MAX_SYMLINK_HOPS 16

static int resolve(int rootfd, const char *rel, int flags, int *hops, int *ret_fd);

/* The slow path: component by component, each opened O_NOFOLLOW from the one
 * before, so nothing can be swapped between a check and its use. A symlink is
 * read, joined lexically with the directory it lives in, resolved from the root
 * again, and followed only if what it reaches has the link's owner. */
static int walk(int rootfd, const char *rel, int flags, int *hops, int *ret_fd)
{
    char done[PATH_MAX] = "";
    size_t done_len = 0;
    _cleanup_close_ int cur = -1;
    const char *p = rel;
    while (*p) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        const char *next = *e ? e + 1 : e;
        if (n == 0) {
            p = next;
            continue;
        }
        char comp[NAME_MAX + 1];
        if (n > NAME_MAX)
            return -ENAMETOOLONG;
        memcpy(comp, p, n);
        comp[n] = 0;
        if (streq(comp, ".") || streq(comp, ".."))
            return -EACCES;
        bool last = true;
        for (const char *q = next; *q; q++)
            if (*q != '/') {
                last = false;
                break;
            }
        int dirfd = cur >= 0 ? cur : rootfd;
        int nfd = openat(dirfd, comp, (last ? flags : O_PATH) | O_NOFOLLOW | O_CLOEXEC);
        bool is_link = false;
        if (nfd < 0) {
            if (errno != ELOOP || !last)
                return -errno;
            nfd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (nfd < 0)
                return -errno;
            is_link = true;
        } else if (!last || (flags & O_PATH)) {
            /* O_PATH|O_NOFOLLOW opens a symlink itself instead of failing. */
            struct stat st;
            if (fstat(nfd, &st) < 0) {
                int r = -errno;
                close(nfd);
                return r;
            }
            is_link = S_ISLNK(st.st_mode);
        }
        if (is_link) {
            _cleanup_close_ int lnk = nfd;
            struct stat lst;
            char target[PATH_MAX], sub[PATH_MAX];
            if (++*hops > MAX_SYMLINK_HOPS)
                return -ELOOP;
            if (fstat(lnk, &lst) < 0)
                return -errno;
            ssize_t tl = readlinkat(lnk, "", target, sizeof(target) - 1);
            if (tl < 0)
                return -errno;
            target[tl] = 0;
            if (target[0] == '/')
                return -EACCES;   /* absolute: never beneath the site's root */
            int r = join_lexical(done, target, sub, sizeof(sub));
            if (r < 0)
                return r;
            int tfd;
            r = resolve(rootfd, sub, last ? flags : O_PATH, hops, &tfd);
            if (r < 0)
                return r;
            struct stat tst;
            if (fstat(tfd, &tst) < 0 || tst.st_uid != lst.st_uid) {
                close(tfd);
                return -EACCES;
            }
            nfd = tfd;
            done_len = strlen(sub);
            memcpy(done, sub, done_len + 1);
        } else {
            if (done_len + n + 2 > sizeof(done)) {
                close(nfd);
                return -ENAMETOOLONG;
            }
            if (done_len > 0)
                done[done_len++] = '/';
            memcpy(done + done_len, comp, n + 1);
            done_len += n;
        }
        safe_close(cur);
        cur = nfd;
        p = next;
    }
    if (cur < 0) {
        cur = openat(rootfd, ".", flags | O_CLOEXEC);
        if (cur < 0)
            return -errno;
    }
    *ret_fd = TAKE_FD(cur);
    return 0;
}

static int resolve(int rootfd, const char *rel, int flags, int *hops, int *ret_fd)
{
    /* Fast path: one openat2 that refuses every symlink; nearly all requests end
     * here. Only a path that holds a symlink takes the walk. */
    int fd = open_beneath(rootfd, rel[0] ? rel : ".", flags | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS);
    if (fd >= 0) {
        *ret_fd = fd;
        return 0;
    }
    if (fd != -ELOOP)
        return fd == -EXDEV ? -EACCES : fd;
    return walk(rootfd, rel, flags, hops, ret_fd);
}

int front_open_beneath_owner(int rootfd, const char *rel, int open_flags, int *ret_fd)
{
    int hops = 0;
    while (*rel == '/')
        rel++;
    return resolve(rootfd, rel, open_flags, &hops, ret_fd);
}

/* What a PHP site's request path names. The rule exists because of php-fpm's
 * cgi.fix_pathinfo: handed SCRIPT_FILENAME=/site/public/image.png/x.php, PHP walks
 * back to the first existing file and runs image.png (an uploaded "image" holding
 * PHP code). berth therefore decides the script itself, from files that exist, and
 * sends php-fpm only a script it found. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "fastcgi/fastcgi.h"

enum found { FOUND_NONE, FOUND_FILE, FOUND_DIR, FOUND_OTHER };

/* Looks rel (no leading '/', "" for the root) up beneath the public directory. A
 * symlink is followed only while it stays beneath (RESOLVE_BENEATH); one leading
 * out, a loop, a missing or unreadable component all count as "nothing there". */
static int lookup(int public_fd, const char *rel, enum found *ret)
{
    if (rel[0] == '\0') {
        *ret = FOUND_DIR;
        return 0;
    }
    _cleanup_close_ int fd = open_beneath(public_fd, rel, O_PATH | O_CLOEXEC, 0, 0);
    if (fd < 0) {
        switch (-fd) {
        case ENOENT: case ENOTDIR: case EXDEV: case ELOOP: case EACCES: case ENAMETOOLONG:
            *ret = FOUND_NONE;
            return 0;
        default:
            return fd;
        }
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *ret = S_ISREG(st.st_mode) ? FOUND_FILE : S_ISDIR(st.st_mode) ? FOUND_DIR : FOUND_OTHER;
    return 0;
}

/* Copies path[1..end) + suffix into out as a relative path ("" for the root). */
static int rel_path(const char *path, size_t end, const char *suffix, char *out, size_t size)
{
    size_t n = end > 1 ? end - 1 : 0;
    size_t sl = strlen(suffix);
    if (n + sl + 1 > size)
        return -ENAMETOOLONG;
    memcpy(out, path + 1, n);
    memcpy(out + n, suffix, sl + 1);
    return 0;
}

/* Sets rt to run prefix[0..prefix_len) + suffix, with the PATH_INFO given. */
static int script_set(struct fastcgi_route *rt, const char *prefix, size_t prefix_len,
                      const char *suffix, const char *path_info, size_t path_info_len,
                      bool fallback)
{
    size_t sl = strlen(suffix);
    if (prefix_len + sl + 1 > sizeof(rt->script_name))
        return -ENAMETOOLONG;
    memcpy(rt->script_name, prefix, prefix_len);
    memcpy(rt->script_name + prefix_len, suffix, sl + 1);
    rt->kind = FASTCGI_ROUTE_SCRIPT;
    rt->fallback = fallback;
    rt->path_info = path_info;
    rt->path_info_len = path_info_len;
    return 0;
}

static bool ends_with_php(const char *seg, size_t n)
{
    return n > 4 && memcmp(seg + n - 4, ".php", 4) == 0;
}

int fastcgi_route_resolve(int public_fd, const char *path, size_t len, bool front_controller,
                          struct fastcgi_route *ret)
{
    if (len == 0 || path[0] != '/')
        return -EINVAL;
    if (len >= FASTCGI_SCRIPT_MAX)
        return -ENAMETOOLONG;
    struct fastcgi_route rt = { .kind = FASTCGI_ROUTE_NOT_FOUND, .path_info = path + len };
    char rel[FASTCGI_SCRIPT_MAX];
    enum found f;
    int r;

    /* 1. dot segments (the front refuses them for static files too) */
    for (size_t i = 0; i + 1 < len; i++)
        if (path[i] == '/' && path[i + 1] == '.') {
            *ret = rt;
            return 0;
        }

    /* 2. the first segment ending in .php decides, whatever follows it */
    size_t seg = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (ends_with_php(path + seg, i - seg)) {
            r = rel_path(path, i, "", rel, sizeof(rel));
            if (r >= 0)
                r = lookup(public_fd, rel, &f);
            if (r < 0)
                return r;
            if (f == FOUND_FILE) {
                r = script_set(&rt, path, i, "", path + i, len - i, false);
                if (r < 0)
                    return r;
                *ret = rt;
                return 0;
            }
            if (f != FOUND_DIR) {
                *ret = rt;
                return 0;
            }
        }
        seg = i + 1;
    }

    /* 3. try_files $uri $uri/ /index.php */
    if (path[len - 1] == '/') {
        r = rel_path(path, len - 1, "", rel, sizeof(rel));
        if (r >= 0)
            r = lookup(public_fd, rel, &f);
        if (r < 0)
            return r;
        if (f == FOUND_DIR) {
            r = rel_path(path, len, "index.php", rel, sizeof(rel));
            if (r >= 0)
                r = lookup(public_fd, rel, &f);
            if (r < 0)
                return r;
            if (f == FOUND_FILE) {
                /* a directory index: the request path is not the script's, so
                 * PATH_INFO is empty (the application reads REQUEST_URI) */
                r = script_set(&rt, path, len, "index.php", path + len, 0, false);
                if (r < 0)
                    return r;
                *ret = rt;
                return 0;
            }
            r = rel_path(path, len, "index.html", rel, sizeof(rel));
            if (r >= 0)
                r = lookup(public_fd, rel, &f);
            if (r < 0)
                return r;
            if (f == FOUND_FILE) {
                rt.kind = FASTCGI_ROUTE_STATIC;
                *ret = rt;
                return 0;
            }
        }
    } else {
        r = rel_path(path, len, "", rel, sizeof(rel));
        if (r >= 0)
            r = lookup(public_fd, rel, &f);
        if (r < 0)
            return r;
        if (f == FOUND_FILE || f == FOUND_DIR) {
            rt.kind = FASTCGI_ROUTE_STATIC;
            *ret = rt;
            return 0;
        }
    }
    if (front_controller) {
        r = lookup(public_fd, "index.php", &f);
        if (r < 0)
            return r;
        if (f == FOUND_FILE) {
            r = script_set(&rt, "/", 1, "index.php", path + len, 0, true);
            if (r < 0)
                return r;
        }
    }
    *ret = rt;
    return 0;
}

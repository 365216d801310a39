/* Snapshot names and the list of a site's snapshots. A name reaches berthd from a
 * request path: only the exact shape berth writes is accepted, so no name can
 * point anywhere but a snapshot file in the site's backups/. */
#include "snapshot/snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/names.h"
#include "common/util.h"

static bool digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

#define AUTO_MARK "-auto"

/* 1 for a valid name made by hand, 2 for a valid automatic one, 0 if invalid. */
static int name_kind(const char *site, const char *name)
{
    if (!site || !name || !site_name_valid(site))
        return 0;
    size_t len = strlen(name), site_len = strlen(site), suffix_len = strlen(SNAPSHOT_SUFFIX);
    if (len >= SNAPSHOT_NAME_MAX || len < site_len + 1 + 15 + suffix_len)
        return 0;
    if (strncmp(name, site, site_len) != 0 || name[site_len] != '-')
        return 0;
    const char *p = name + site_len + 1;
    /* YYYYMMDD-HHMMSS */
    if (!digits(p, 8) || p[8] != '-' || !digits(p + 9, 6))
        return 0;
    p += 15;
    const char *end = name + len - suffix_len;
    if (!streq(end, SNAPSHOT_SUFFIX))
        return 0;
    int kind = 1;
    if ((size_t)(end - p) >= strlen(AUTO_MARK) && strncmp(p, AUTO_MARK, strlen(AUTO_MARK)) == 0) {
        kind = 2;
        p += strlen(AUTO_MARK);
    }
    if (p == end)
        return kind;
    /* "-N", N 1 to 999 without a leading zero */
    size_t n = (size_t)(end - p);
    return n >= 2 && n <= 4 && p[0] == '-' && p[1] != '0' && digits(p + 1, n - 1) ? kind : 0;
}

bool snapshot_name_valid(const char *site, const char *name)
{
    return name_kind(site, name) != 0;
}

bool snapshot_name_automatic(const char *site, const char *name)
{
    return name_kind(site, name) == 2;
}

void snapshot_name_format(const char *site, time_t t, unsigned n, bool automatic,
                          char out[static SNAPSHOT_NAME_MAX])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char stamp[32], extra[16] = "";
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    if (n > 0)
        snprintf(extra, sizeof(extra), "-%u", n);
    snprintf(out, SNAPSHOT_NAME_MAX, "%s-%s%s%s" SNAPSHOT_SUFFIX, site, stamp, automatic ? AUTO_MARK : "", extra);
}

static int newest_first(const void *a, const void *b)
{
    const struct snapshot_info *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime > y->mtime ? -1 : 1;
    /* Same second: the names order them ("-2" after "-1" after none). */
    size_t lx = strlen(x->name), ly = strlen(y->name);
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return -strcmp(x->name, y->name);
}

int snapshot_list(int backups_fd, const char *site, struct snapshot_info **ret, size_t *ret_n)
{
    int fd = openat(backups_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int r = -errno;
        close(fd);
        return r;
    }
    struct snapshot_info *list = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!snapshot_name_valid(site, de->d_name))
            continue;
        struct stat st;
        if (fstatat(backups_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct snapshot_info *grown = realloc(list, ncap * sizeof(*list));
            if (!grown) {
                r = -ENOMEM;
                break;
            }
            list = grown;
            cap = ncap;
        }
        /* A valid name fits: snapshot_name_valid checked its length. */
        memcpy(list[n].name, de->d_name, strlen(de->d_name) + 1);
        list[n].size = (uint64_t)st.st_size;
        list[n].mtime = st.st_mtim.tv_sec;
        n++;
    }
    closedir(d);
    if (r < 0) {
        free(list);
        return r;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), newest_first);
    *ret = list;
    *ret_n = n;
    return 0;
}

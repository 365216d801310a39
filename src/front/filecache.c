/* The worker's open-file cache: an fd per recently served file, so a hit costs
 * one fstatat(2) instead of openat2 + fstat + close.
 *
 * An entry is keyed by the site's root generation (a new one each time the root
 * fd is opened, so a swapped public/ tree never meets the old tree's entries) and
 * the normalised path. It is made only by front_open_beneath_owner(), so every
 * symlink and owner rule applied when it was opened. On each use the path is
 * stat'ed again (no symlink followed at the last component) and the entry is used
 * only while the path still names the same inode: a file replaced by a rename is
 * served fresh at once, and a file changed in place is served with its new size
 * and validators since the stat is fresh. An entry is never used past
 * FILE_TTL_MS after it was opened; then the path goes through the full open again,
 * as nginx's open_file_cache_valid does, which bounds how long a change to a
 * symlink along the path or to an owner can go unseen. The tick closes entries
 * past that age, so the files of an idle worker are not held open. */
#include <fcntl.h>
#include <stdio.h>

#include "front/front-worker.h"

#define FILE_SLOTS 1024   /* direct-mapped; a collision replaces the older entry */
#define FILE_TTL_MS 1000

struct cached_file {
    unsigned refs;        /* the cache's slot, and connections sending from it */
    int fd;
    uint64_t root_gen;
    uint64_t opened_ms;
    uint64_t hash;
    dev_t dev;
    ino_t ino;
    size_t path_len;
    char path[];
};

static struct cached_file **slots;

static uint64_t key_hash(uint64_t root_gen, const char *path, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (root_gen * 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)path[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

struct cached_file *front_cached_file_ref(struct cached_file *f)
{
    if (f)
        f->refs++;
    return f;
}

void front_cached_file_unref(struct cached_file *f)
{
    if (!f || --f->refs > 0)
        return;
    safe_close(f->fd);
    free(f);
}

static void slot_clear(size_t i)
{
    front_cached_file_unref(slots[i]);
    slots[i] = NULL;
}

int front_file_open(struct worker *w, const struct vsite *s, int root, const char *rel,
                    int *ret_fd, struct stat *ret_st, struct cached_file **ret_cf)
{
    size_t len = strlen(rel);
    uint64_t h = key_hash(s->root_gen, rel, len);
    size_t i = h & (FILE_SLOTS - 1);
    struct cached_file *f = slots ? slots[i] : NULL;
    struct stat st;
    if (f && f->hash == h && f->root_gen == s->root_gen && f->path_len == len &&
        memcmp(f->path, rel, len) == 0) {
        if (w->now_ms - f->opened_ms < FILE_TTL_MS && len > 0 &&
            fstatat(root, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_dev == f->dev && st.st_ino == f->ino) {
            *ret_fd = f->fd;
            *ret_st = st;
            *ret_cf = f;
            return 0;
        }
        slot_clear(i);   /* too old, gone, or another file now: open afresh */
    }

    int fd;
    int r = front_open_beneath_owner(root, rel, O_RDONLY | O_NONBLOCK, &fd);
    if (r < 0)
        return r;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    *ret_st = st;
    *ret_cf = NULL;
    *ret_fd = fd;
    if (!S_ISREG(st.st_mode) || len == 0)
        return 0;   /* directories and the rest are the caller's, uncached */
    if (!slots) {
        slots = calloc(FILE_SLOTS, sizeof(*slots));
        if (!slots)
            return 0;
    }
    f = malloc(sizeof(*f) + len + 1);
    if (!f)
        return 0;
    *f = (struct cached_file){ .refs = 1, .fd = fd, .root_gen = s->root_gen, .opened_ms = w->now_ms,
                               .hash = h, .dev = st.st_dev, .ino = st.st_ino, .path_len = len };
    memcpy(f->path, rel, len + 1);
    slot_clear(i);
    slots[i] = f;
    *ret_cf = f;
    return 0;
}

void front_file_cache_sweep(struct worker *w)
{
    if (!slots)
        return;
    for (size_t i = 0; i < FILE_SLOTS; i++)
        if (slots[i] && w->now_ms - slots[i]->opened_ms >= FILE_TTL_MS)
            slot_clear(i);
}

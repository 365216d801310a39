/* Per-site usage history: a ring of one-minute slots and a ring of seconds per
 * site, in a chained hash table keyed by name. A slot carries the minute (or
 * second) it belongs to, so a slot last written an hour ago reads as empty without
 * any sweeping: a quiet site costs nothing until it is read. */
#include <inttypes.h>
#include <stdio.h>

#include "common/fs.h"
#include "common/names.h"
#include "common/util.h"
#include "sites/sites.h"

struct slot {
    int64_t minute;            /* unix time / 60; a slot of another minute is empty */
    uint64_t requests, errors, bytes, memory, cpu_usec;
    bool has_memory;
};

struct second {
    int64_t second;
    uint64_t requests;
};

struct site_stats {
    struct site_stats *next;   /* hash chain */
    char name[64];
    struct slot minutes[SITES_STATS_MINUTES];
    struct second seconds[60];
    struct sites_stats_requests totals;
    uint64_t total_cpu_usec;
    uint64_t last_cpu_usec;    /* the cgroup's counter at the last sample */
    uint64_t last_cgroup_id;   /* the cgroup of that sample */
    bool has_last_cpu;
};

struct sites_stats {
    int64_t since;
    struct site_stats **buckets;
    size_t n_buckets;          /* power of two */
    size_t n;
    bool dirty;                /* changed since created, loaded or saved */
};

static uint64_t hash_name(const char *name)
{
    /* FNV-1a: names are site names the front reported for sites berthd routes, not
     * chosen by an outside peer, so no seed is needed against collisions. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

int sites_stats_new(int64_t now, struct sites_stats **ret)
{
    struct sites_stats *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->n_buckets = 64;
    st->buckets = calloc(st->n_buckets, sizeof(*st->buckets));
    if (!st->buckets) {
        free(st);
        return -ENOMEM;
    }
    st->since = now;
    *ret = st;
    return 0;
}

void sites_stats_free(struct sites_stats *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_buckets; i++)
        for (struct site_stats *s = st->buckets[i], *next; s; s = next) {
            next = s->next;
            free(s);
        }
    free(st->buckets);
    free(st);
}

static struct site_stats *find(const struct sites_stats *st, const char *name)
{
    for (struct site_stats *s = st->buckets[hash_name(name) & (st->n_buckets - 1)]; s; s = s->next)
        if (streq(s->name, name))
            return s;
    return NULL;
}

static void grow(struct sites_stats *st)
{
    size_t n = st->n_buckets * 2;
    struct site_stats **b = calloc(n, sizeof(*b));
    if (!b)
        return;   /* longer chains, still correct */
    for (size_t i = 0; i < st->n_buckets; i++)
        for (struct site_stats *s = st->buckets[i], *next; s; s = next) {
            next = s->next;
            size_t k = hash_name(s->name) & (n - 1);
            s->next = b[k];
            b[k] = s;
        }
    free(st->buckets);
    st->buckets = b;
    st->n_buckets = n;
}

static int get_or_add(struct sites_stats *st, const char *name, struct site_stats **ret)
{
    if (!name || !site_name_valid(name))
        return -EINVAL;
    struct site_stats *s = find(st, name);
    if (!s) {
        if (st->n >= st->n_buckets)
            grow(st);
        s = calloc(1, sizeof(*s));
        if (!s)
            return -ENOMEM;
        snprintf(s->name, sizeof(s->name), "%s", name);
        size_t k = hash_name(name) & (st->n_buckets - 1);
        s->next = st->buckets[k];
        st->buckets[k] = s;
        st->n++;
    }
    *ret = s;
    return 0;
}

/* The slot of the minute containing now, emptied if it held an older minute. */
static struct slot *minute_slot(struct site_stats *s, int64_t now)
{
    int64_t m = now / 60;
    struct slot *sl = &s->minutes[m % SITES_STATS_MINUTES];
    if (sl->minute != m)
        *sl = (struct slot){ .minute = m };
    return sl;
}

/* The site's entry, made if new, about to change at *now (a clock before 1970
 * counts as 1970): the history is now unsaved. */
static int entry_to_update(struct sites_stats *st, const char *name, int64_t *now, struct site_stats **ret)
{
    int r = get_or_add(st, name, ret);
    if (r < 0)
        return r;
    if (*now < 0)
        *now = 0;
    st->dirty = true;
    return 0;
}

int sites_stats_add_requests(struct sites_stats *st, const char *name, int64_t now,
                             const struct sites_stats_requests *d)
{
    struct site_stats *s;
    int r = entry_to_update(st, name, &now, &s);
    if (r < 0)
        return r;
    struct slot *sl = minute_slot(s, now);
    sl->requests += d->requests;
    sl->errors += d->status[3];
    sl->bytes += d->bytes;
    struct second *sec = &s->seconds[now % 60];
    if (sec->second != now)
        *sec = (struct second){ .second = now };
    sec->requests += d->requests;
    s->totals.requests += d->requests;
    for (size_t i = 0; i < ARRAY_SIZE(d->status); i++)
        s->totals.status[i] += d->status[i];
    s->totals.bytes += d->bytes;
    return 0;
}

int sites_stats_add_usage(struct sites_stats *st, const char *name, int64_t now,
                          const struct sandbox_usage *u, uint64_t cgroup_id)
{
    if (!u) {
        /* Do not create an entry for every site that never ran. */
        struct site_stats *s = name ? find(st, name) : NULL;
        if (s)
            s->has_last_cpu = false;
        return 0;
    }
    struct site_stats *s;
    int r = entry_to_update(st, name, &now, &s);
    if (r < 0)
        return r;
    struct slot *sl = minute_slot(s, now);
    if (u->memory_current != SANDBOX_USAGE_UNKNOWN) {
        sl->memory = sl->has_memory ? MAX(sl->memory, u->memory_current) : u->memory_current;
        sl->has_memory = true;
    }
    if (u->cpu_usec != SANDBOX_USAGE_UNKNOWN) {
        /* Another cgroup (the site was stopped and started between two samples),
         * or a counter that went backwards: a new counter, counted from zero. */
        bool same = s->has_last_cpu && s->last_cgroup_id == cgroup_id && u->cpu_usec >= s->last_cpu_usec;
        uint64_t used = same ? u->cpu_usec - s->last_cpu_usec : u->cpu_usec;
        sl->cpu_usec += used;
        s->total_cpu_usec += used;
        s->last_cpu_usec = u->cpu_usec;
        s->last_cgroup_id = cgroup_id;
        s->has_last_cpu = true;
    }
    return 0;
}

void sites_stats_remove(struct sites_stats *st, const char *name)
{
    if (!name)
        return;
    for (struct site_stats **p = &st->buckets[hash_name(name) & (st->n_buckets - 1)]; *p; p = &(*p)->next)
        if (streq((*p)->name, name)) {
            struct site_stats *s = *p;
            *p = s->next;
            free(s);
            st->n--;
            st->dirty = true;
            return;
        }
}

void sites_stats_get(const struct sites_stats *st, const char *name, int64_t now,
                     struct sites_stats_report *ret)
{
    *ret = (struct sites_stats_report){ .since = st->since };
    if (now < 0)
        now = 0;
    int64_t cur = now / 60;
    const struct site_stats *s = name ? find(st, name) : NULL;
    for (int k = 0; k < SITES_STATS_MINUTES; k++) {
        int64_t m = cur - (SITES_STATS_MINUTES - 1) + k;
        struct sites_stats_minute *out = &ret->minutes[k];
        out->time = m * 60;
        const struct slot *sl = s && m >= 0 ? &s->minutes[m % SITES_STATS_MINUTES] : NULL;
        if (!sl || sl->minute != m)
            continue;
        out->requests = sl->requests;
        out->errors = sl->errors;
        out->bytes = sl->bytes;
        out->has_memory = sl->has_memory;
        out->memory = sl->memory;
        out->cpu_usec = sl->cpu_usec;
        ret->last_hour += sl->requests;
    }
    if (!s)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(s->seconds); i++)
        if (s->seconds[i].second > now - 60 && s->seconds[i].second <= now)
            ret->last_minute += s->seconds[i].requests;
    ret->totals = s->totals;
    ret->total_cpu_usec = s->total_cpu_usec;
}

/* ---- Persistence ----
 *
 * The file is read back by a later berthd, possibly of another version, after a
 * crash, a full disk or a hand edit: it is parsed as untrusted bytes, every field
 * checked against what is left, and one inconsistency refuses all of it (a history
 * half right is worse than none, as nobody can tell which half). Integers are
 * little-endian, written byte by byte so the file does not depend on the host. */

#define FILE_MAGIC "BERTHSTS"
#define FILE_VERSION 1
#define HEADER_SIZE (8 + 4 + 4 + 8)                     /* magic, version, n_sites, since */
#define TRAILER_SIZE 8                                   /* FNV-1a 64 of everything before */
#define TOTALS_SIZE (7 * 8)                              /* requests, 2xx..5xx, bytes, cpu */
#define SLOT_SIZE (8 + 5 * 8 + 1)                        /* minute, 5 figures, has_memory */
#define RECORD_MIN_SIZE (1 + 1 + 1 + TOTALS_SIZE)        /* a one-letter name, no slots */

bool sites_stats_dirty(const struct sites_stats *st)
{
    return st->dirty;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void put_le(uint8_t *p, uint64_t v, size_t width)
{
    for (size_t i = 0; i < width; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int append_le(struct buf *out, uint64_t v, size_t width)
{
    uint8_t b[8];
    put_le(b, v, width);
    return buf_append(out, b, width);
}

static bool slot_empty(const struct slot *sl)
{
    return !sl->requests && !sl->errors && !sl->bytes && !sl->cpu_usec && !sl->has_memory;
}

static int encode_site(const struct site_stats *s, struct buf *out)
{
    size_t name_len = strlen(s->name);
    uint8_t n_slots = 0;
    for (size_t i = 0; i < ARRAY_SIZE(s->minutes); i++)
        n_slots += !slot_empty(&s->minutes[i]);
    int r;
    if ((r = append_le(out, name_len, 1)) < 0 || (r = buf_append(out, s->name, name_len)) < 0 ||
        (r = append_le(out, n_slots, 1)) < 0)
        return r;
    const uint64_t totals[7] = {
        s->totals.requests, s->totals.status[0], s->totals.status[1], s->totals.status[2],
        s->totals.status[3], s->totals.bytes, s->total_cpu_usec,
    };
    for (size_t i = 0; i < ARRAY_SIZE(totals); i++)
        if ((r = append_le(out, totals[i], 8)) < 0)
            return r;
    for (size_t i = 0; i < ARRAY_SIZE(s->minutes); i++) {
        const struct slot *sl = &s->minutes[i];
        if (slot_empty(sl))
            continue;
        const uint64_t fields[6] = {
            (uint64_t)sl->minute, sl->requests, sl->errors, sl->bytes, sl->memory, sl->cpu_usec,
        };
        for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
            if ((r = append_le(out, fields[k], 8)) < 0)
                return r;
        if ((r = append_le(out, sl->has_memory, 1)) < 0)
            return r;
    }
    return 0;
}

int sites_stats_encode(const struct sites_stats *st, struct buf *out)
{
    size_t start = out->len;
    /* One reservation for a full hour of every site: the common case appends
     * without reallocating (2,000 sites are about 6 MB). */
    size_t need = HEADER_SIZE + TRAILER_SIZE + st->n * (RECORD_MIN_SIZE + 63 + SITES_STATS_MINUTES * SLOT_SIZE);
    int r = buf_reserve(out, MIN(need, SITES_STATS_FILE_MAX));
    if (r < 0)
        return r;
    if ((r = buf_append(out, FILE_MAGIC, 8)) < 0 || (r = append_le(out, FILE_VERSION, 4)) < 0 ||
        (r = append_le(out, st->n, 4)) < 0 || (r = append_le(out, (uint64_t)st->since, 8)) < 0)
        return r;
    for (size_t i = 0; i < st->n_buckets; i++)
        for (const struct site_stats *s = st->buckets[i]; s; s = s->next)
            if ((r = encode_site(s, out)) < 0)
                return r;
    return append_le(out, fnv1a((const uint8_t *)out->data + start, out->len - start), 8);
}

/* A cursor over untrusted bytes: a read past the end yields zeros and marks the
 * cursor bad, so the parser checks once per record instead of at every field. */
struct reader {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static bool take(struct reader *rd, size_t n, const uint8_t **ret)
{
    if (rd->bad || n > rd->left) {
        rd->bad = true;
        return false;
    }
    *ret = rd->p;
    rd->p += n;
    rd->left -= n;
    return true;
}

static uint64_t get_le(struct reader *rd, size_t width)
{
    const uint8_t *p;
    if (!take(rd, width, &p))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void stats_freep(struct sites_stats **p)
{
    sites_stats_free(*p);
}

/* Moves the entries of from into st, freeing st's own; from is left empty. */
static void replace_entries(struct sites_stats *st, struct sites_stats *from)
{
    for (size_t i = 0; i < st->n_buckets; i++)
        for (struct site_stats *s = st->buckets[i], *next; s; s = next) {
            next = s->next;
            free(s);
        }
    free(st->buckets);
    st->buckets = TAKE_PTR(from->buckets);
    st->n_buckets = from->n_buckets;
    st->n = from->n;
    st->since = from->since;
    from->n = from->n_buckets = 0;
}

/* Parses one site's record into *ret (malloc'd). -EBADMSG when inconsistent. */
static int decode_site(struct reader *rd, int64_t now, struct site_stats **ret)
{
    char name[64];
    size_t name_len = get_le(rd, 1);
    const uint8_t *name_bytes;
    if (name_len == 0 || name_len >= sizeof(name) || !take(rd, name_len, &name_bytes))
        return -EBADMSG;
    /* A NUL inside would cut the name short into another, valid, name. */
    if (memchr(name_bytes, 0, name_len))
        return -EBADMSG;
    memcpy(name, name_bytes, name_len);
    name[name_len] = 0;
    if (!site_name_valid(name))
        return -EBADMSG;
    size_t n_slots = get_le(rd, 1);
    if (rd->bad || n_slots > SITES_STATS_MINUTES || rd->left < TOTALS_SIZE + n_slots * SLOT_SIZE)
        return -EBADMSG;

    _cleanup_free_ struct site_stats *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    memcpy(s->name, name, name_len + 1);
    s->totals.requests = get_le(rd, 8);
    for (size_t i = 0; i < ARRAY_SIZE(s->totals.status); i++)
        s->totals.status[i] = get_le(rd, 8);
    s->totals.bytes = get_le(rd, 8);
    s->total_cpu_usec = get_le(rd, 8);

    int64_t current = now / 60;
    bool seen[SITES_STATS_MINUTES] = { false };
    for (size_t i = 0; i < n_slots; i++) {
        struct slot sl = { .minute = (int64_t)get_le(rd, 8) };
        sl.requests = get_le(rd, 8);
        sl.errors = get_le(rd, 8);
        sl.bytes = get_le(rd, 8);
        sl.memory = get_le(rd, 8);
        sl.cpu_usec = get_le(rd, 8);
        uint64_t has_memory = get_le(rd, 1);
        if (rd->bad || sl.minute < 0 || has_memory > 1)
            return -EBADMSG;
        sl.has_memory = has_memory;
        /* The writer keeps one slot per ring entry: two for one entry is not a file
         * it wrote. */
        size_t k = (size_t)(sl.minute % SITES_STATS_MINUTES);
        if (seen[k])
            return -EBADMSG;
        seen[k] = true;
        /* Older than the hour ending now, or after now: a clock set back must not
         * make an old slot pass for the current minute once time catches up. */
        if (sl.minute <= current - SITES_STATS_MINUTES || sl.minute > current)
            continue;
        s->minutes[k] = sl;
    }
    *ret = TAKE_PTR(s);
    return 0;
}

int sites_stats_decode(struct sites_stats *st, const void *data, size_t len, int64_t now,
                       sites_stats_keep_fn keep, void *keep_data)
{
    const uint8_t *bytes = data;
    if (!data || len < HEADER_SIZE + TRAILER_SIZE || memcmp(bytes, FILE_MAGIC, 8) != 0)
        return -EBADMSG;
    struct reader trailer = { .p = bytes + len - TRAILER_SIZE, .left = TRAILER_SIZE };
    if (get_le(&trailer, 8) != fnv1a(bytes, len - TRAILER_SIZE))
        return -EBADMSG;
    struct reader rd = { .p = bytes + 8, .left = len - 8 - TRAILER_SIZE };
    if (get_le(&rd, 4) != FILE_VERSION)
        return -EPROTONOSUPPORT;
    uint64_t n_sites = get_le(&rd, 4);
    int64_t since = (int64_t)get_le(&rd, 8);
    /* A count the remaining bytes cannot hold is refused before anything is
     * allocated for it. */
    if (since < 0 || n_sites > rd.left / RECORD_MIN_SIZE)
        return -EBADMSG;
    if (now < 0)
        now = 0;

    _cleanup_(stats_freep) struct sites_stats *loaded = NULL;
    int r = sites_stats_new(MIN(since, now), &loaded);
    if (r < 0)
        return r;
    for (uint64_t i = 0; i < n_sites; i++) {
        _cleanup_free_ struct site_stats *s = NULL;
        if ((r = decode_site(&rd, now, &s)) < 0)
            return r;
        if (find(loaded, s->name))
            return -EBADMSG;
        if (keep && !keep(keep_data, s->name))
            continue;
        if (loaded->n >= loaded->n_buckets)
            grow(loaded);
        size_t k = hash_name(s->name) & (loaded->n_buckets - 1);
        s->next = loaded->buckets[k];
        loaded->buckets[k] = TAKE_PTR(s);
        loaded->n++;
    }
    /* Bytes after the last record are not something the writer produces. */
    if (rd.left != 0)
        return -EBADMSG;
    size_t kept = loaded->n;
    replace_entries(st, loaded);
    st->dirty = false;
    return (int)MIN(kept, (size_t)INT32_MAX);
}

int sites_stats_save(struct sites_stats *st, const char *path)
{
    _cleanup_(buf_done) struct buf out = BUF_INIT(SITES_STATS_FILE_MAX);
    int r = sites_stats_encode(st, &out);
    if (r < 0)
        return r;
    /* berthd alone writes its state dir (it holds the lock), so a fixed temp name
     * is safe, and a save cut short by a crash leaves no more than one. */
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    r = write_file_atomic_via(path, tmp, out.data, out.len, 0600);
    if (r < 0)
        return r;
    st->dirty = false;
    return 0;
}

int sites_stats_load(struct sites_stats *st, const char *path, int64_t now,
                     sites_stats_keep_fn keep, void *keep_data)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = read_file(path, SITES_STATS_FILE_MAX, &data, &len);
    if (r == -ENOENT)
        return 0;
    if (r == -EFBIG)
        return -EBADMSG;
    if (r < 0)
        return r;
    return sites_stats_decode(st, data, len, now, keep, keep_data);
}

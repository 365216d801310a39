/* Per-site usage history: a ring of one-minute slots and a ring of seconds per
 * site, in a chained hash table keyed by name. A slot carries the minute (or
 * second) it belongs to, so a slot last written an hour ago reads as empty without
 * any sweeping: a quiet site costs nothing until it is read. */
#include <inttypes.h>
#include <stdio.h>

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
    bool has_last_cpu;
};

struct sites_stats {
    int64_t since;
    struct site_stats **buckets;
    size_t n_buckets;          /* power of two */
    size_t n;
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

int sites_stats_add_requests(struct sites_stats *st, const char *name, int64_t now,
                             const struct sites_stats_requests *d)
{
    struct site_stats *s;
    int r = get_or_add(st, name, &s);
    if (r < 0)
        return r;
    if (now < 0)
        now = 0;
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
                          const struct sandbox_usage *u)
{
    if (!u) {
        /* Do not create an entry for every site that never ran. */
        struct site_stats *s = name ? find(st, name) : NULL;
        if (s)
            s->has_last_cpu = false;
        return 0;
    }
    struct site_stats *s;
    int r = get_or_add(st, name, &s);
    if (r < 0)
        return r;
    if (now < 0)
        now = 0;
    struct slot *sl = minute_slot(s, now);
    if (u->memory_current != SANDBOX_USAGE_UNKNOWN) {
        sl->memory = sl->has_memory ? MAX(sl->memory, u->memory_current) : u->memory_current;
        sl->has_memory = true;
    }
    if (u->cpu_usec != SANDBOX_USAGE_UNKNOWN) {
        /* A counter that went backwards belongs to a new cgroup (the site was
         * stopped and started between two samples): it counts from zero. */
        uint64_t used = s->has_last_cpu && u->cpu_usec >= s->last_cpu_usec ? u->cpu_usec - s->last_cpu_usec
                                                                           : u->cpu_usec;
        sl->cpu_usec += used;
        s->total_cpu_usec += used;
        s->last_cpu_usec = u->cpu_usec;
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

/* The login throttle's table (the policy is described at the top of auth.c): a
 * fixed number of slots, so that no flood of names or addresses grows memory. Time
 * is the caller's monotonic milliseconds, which keeps the table a plain function of
 * its inputs. */
#include <stdio.h>

#include "api/api-internal.h"

#define THROTTLE_FREE_FAILURES 4
#define THROTTLE_BASE_MS 30000ULL
#define THROTTLE_MAX_MS 3600000ULL
#define THROTTLE_FORGET_MS (15 * 60 * 1000ULL)

struct throttle_entry {
    char key[80];             /* "a:<address>" or "u:<name>"; "" = free slot */
    unsigned failures;
    uint64_t last_failure_ms;
    uint64_t locked_until_ms;
};

struct api_throttle {
    size_t n_slots;
    struct throttle_entry slots[];
};

int api_throttle_new(size_t n_slots, struct api_throttle **ret)
{
    struct api_throttle *t = calloc(1, sizeof(*t) + n_slots * sizeof(t->slots[0]));
    if (!t)
        return -ENOMEM;
    t->n_slots = n_slots;
    *ret = t;
    return 0;
}

void api_throttle_free(struct api_throttle *t)
{
    free(t);
}

static struct throttle_entry *throttle_slot(struct api_throttle *t, const char *key, bool create, uint64_t now)
{
    struct throttle_entry *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < t->n_slots; i++) {
        struct throttle_entry *e = &t->slots[i];
        if (e->key[0] && now - e->last_failure_ms > THROTTLE_FORGET_MS && now >= e->locked_until_ms)
            e->key[0] = 0;   /* forgotten */
        if (!e->key[0]) {
            if (!free_slot)
                free_slot = e;
            continue;
        }
        if (streq(e->key, key))
            return e;
        if (!oldest || e->last_failure_ms < oldest->last_failure_ms)
            oldest = e;
    }
    if (!create || (!free_slot && !oldest))
        return NULL;
    /* A full table drops the stalest key: an attacker filling it with addresses can
     * at worst reset old counters, never grow memory. */
    struct throttle_entry *e = free_slot ? free_slot : oldest;
    *e = (struct throttle_entry){};
    snprintf(e->key, sizeof(e->key), "%s", key);
    return e;
}

uint64_t api_throttle_wait(struct api_throttle *t, const char *key, uint64_t now)
{
    struct throttle_entry *e = throttle_slot(t, key, false, now);
    return e && e->locked_until_ms > now ? e->locked_until_ms - now : 0;
}

void api_throttle_fail(struct api_throttle *t, const char *key, uint64_t now)
{
    struct throttle_entry *e = throttle_slot(t, key, true, now);
    if (!e)
        return;
    e->failures++;
    e->last_failure_ms = now;
    if (e->failures > THROTTLE_FREE_FAILURES) {
        unsigned shift = MIN(e->failures - THROTTLE_FREE_FAILURES - 1, 20u);
        e->locked_until_ms = now + MIN(THROTTLE_BASE_MS << shift, THROTTLE_MAX_MS);
    }
}

void api_throttle_clear(struct api_throttle *t, const char *key, uint64_t now)
{
    struct throttle_entry *e = throttle_slot(t, key, false, now);
    if (e)
        e->key[0] = 0;
}

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

/* Which of two taken slots a full table gives up first: one not locked now before
 * a locked one, then the stalest, among locked ones the lock that ends first. */
static bool evict_before(const struct throttle_entry *a, const struct throttle_entry *b, uint64_t now)
{
    bool a_locked = a->locked_until_ms > now, b_locked = b->locked_until_ms > now;
    if (a_locked != b_locked)
        return !a_locked;
    if (a_locked)
        return a->locked_until_ms < b->locked_until_ms;
    return a->last_failure_ms < b->last_failure_ms;
}

static struct throttle_entry *throttle_slot(struct api_throttle *t, const char *key, bool create, uint64_t now)
{
    struct throttle_entry *free_slot = NULL, *victim = NULL;
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
        if (!victim || evict_before(e, victim, now))
            victim = e;
    }
    if (!create || (!free_slot && !victim))
        return NULL;
    /* A full table drops a key to make room, so memory never grows; but never a
     * running lock while an unlocked key is left. Dropping the stalest key whatever
     * it held let anyone with enough addresses (an IPv6 prefix) push a locked
     * account out with a round of failures and guess again at once. */
    struct throttle_entry *e = free_slot ? free_slot : victim;
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

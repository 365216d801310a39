/* How many connections each worker holds, in one page shared by the workers.
 *
 * Workers share every listener with EPOLLEXCLUSIVE and the kernel wakes the first
 * idle worker in the socket's wait queue, while the one already running wins the
 * accept races: connections do not spread evenly (wrk's 64 went from 34/34 to 2/66
 * between two workers) and the loaded worker's connections make the tail latency.
 * So each worker publishes its count here, and a worker well above the least
 * loaded live one leaves the next connections to the others (worker.c stops
 * watching the listener until its next tick).
 *
 * The supervisor maps the page before it forks, so restarted workers share it too.
 * Each slot is written by one worker only; the others read it (relaxed atomics: a
 * slightly stale count only moves a decision by one connection). A worker that
 * died or hangs stops beating and is left out, so it can never stop the others
 * from accepting. */
#include <stdatomic.h>
#include <sys/mman.h>

#include "front/front-internal.h"

#define SLOT_STALE_MS 1000
#define SLACK 4   /* connections a worker may be ahead before it steps back */

struct front_balance_slot {
    _Atomic uint32_t conns;
    _Atomic uint64_t beat_ms;   /* 0: no worker */
    char pad[64 - sizeof(uint32_t) - sizeof(uint64_t)];
};

static struct front_balance_slot *slots;   /* the worker's view */
static unsigned n_slots, self;

int front_balance_new(unsigned n_workers, struct front_balance_slot **ret)
{
    size_t size = (size_t)n_workers * sizeof(struct front_balance_slot);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    *ret = p;   /* zeroed by the kernel: no worker yet */
    return 0;
}

void front_balance_free(struct front_balance_slot *b, unsigned n_workers)
{
    if (b)
        munmap(b, (size_t)n_workers * sizeof(*b));
}

void front_balance_join(struct front_balance_slot *b, unsigned n_workers, unsigned index)
{
    slots = b;
    n_slots = n_workers;
    self = index;
    if (slots) {
        atomic_store_explicit(&slots[self].conns, 0, memory_order_relaxed);
        atomic_store_explicit(&slots[self].beat_ms, now_ms(), memory_order_relaxed);
    }
}

void front_balance_leave(struct front_balance_slot *b, unsigned index)
{
    if (b)
        atomic_store_explicit(&b[index].beat_ms, 0, memory_order_relaxed);
}

void front_balance_publish(size_t n_conns, uint64_t now)
{
    if (!slots)
        return;
    atomic_store_explicit(&slots[self].conns, (uint32_t)MIN(n_conns, (size_t)UINT32_MAX),
                          memory_order_relaxed);
    atomic_store_explicit(&slots[self].beat_ms, now, memory_order_relaxed);
}

bool front_balance_may_accept(size_t n_conns, uint64_t now)
{
    if (!slots)
        return true;
    uint64_t least = UINT64_MAX;
    for (unsigned i = 0; i < n_slots; i++) {
        if (i == self)
            continue;
        uint64_t beat = atomic_load_explicit(&slots[i].beat_ms, memory_order_relaxed);
        if (beat == 0 || beat + SLOT_STALE_MS < now)
            continue;   /* no worker there, or one that stopped beating */
        uint64_t c = atomic_load_explicit(&slots[i].conns, memory_order_relaxed);
        least = MIN(least, c);
    }
    return least == UINT64_MAX || n_conns <= least + SLACK + least / 8;
}

#include "common/evloop.h"

#include <stdio.h>

struct io_handler {
    ev_io_fn fn;
    void *data;
    uint32_t events;
    bool active;
};

struct ev_timer {
    uint64_t due;
    uint64_t seq;          /* ties fire in the order they were added */
    size_t heap_index;
    ev_timer_fn fn;
    void *data;
};

struct evloop {
    int epfd;
    bool quit;
    struct io_handler *handlers;   /* indexed by fd */
    size_t n_handlers;
    struct ev_timer **heap;
    size_t heap_len, heap_cap;
    uint64_t seq;
    struct ev_defer deferred;      /* circular queue head of pending deferred calls */
};

int evloop_new(struct evloop **ret)
{
    struct evloop *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int r = -errno;
        free(l);
        return r;
    }
    l->deferred.prev = l->deferred.next = &l->deferred;
    *ret = l;
    return 0;
}

void evloop_free(struct evloop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->heap_len; i++)
        free(l->heap[i]);
    free(l->heap);
    free(l->handlers);
    close(l->epfd);
    free(l);
}

int evloop_add(struct evloop *l, int fd, uint32_t events, ev_io_fn fn, void *data)
{
    if (fd < 0)
        return -EBADF;
    if ((size_t)fd >= l->n_handlers) {
        size_t n = MAX((size_t)fd + 1, l->n_handlers * 2);
        struct io_handler *h = realloc(l->handlers, n * sizeof(*h));
        if (!h)
            return -ENOMEM;
        memset(h + l->n_handlers, 0, (n - l->n_handlers) * sizeof(*h));
        l->handlers = h;
        l->n_handlers = n;
    }
    if (l->handlers[fd].active)
        return -EEXIST;
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    l->handlers[fd] = (struct io_handler){ fn, data, events, true };
    return 0;
}

int evloop_mod(struct evloop *l, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= l->n_handlers || !l->handlers[fd].active)
        return -ENOENT;
    if (l->handlers[fd].events == events)
        return 0;
    struct epoll_event ev = { .events = events, .data.fd = fd };
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    l->handlers[fd].events = events;
    return 0;
}

int evloop_set(struct evloop *l, int fd, uint32_t events, ev_io_fn fn, void *data)
{
    int r = evloop_mod(l, fd, events);
    if (r < 0)
        return r;
    l->handlers[fd].fn = fn;
    l->handlers[fd].data = data;
    return 0;
}

int evloop_del(struct evloop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_handlers || !l->handlers[fd].active)
        return -ENOENT;
    l->handlers[fd].active = false;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    return 0;
}

static bool timer_before(const struct ev_timer *a, const struct ev_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_swap(struct evloop *l, size_t a, size_t b)
{
    struct ev_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->heap_index = a;
    l->heap[b]->heap_index = b;
}

static void heap_up(struct evloop *l, size_t i)
{
    while (i > 0 && timer_before(l->heap[i], l->heap[(i - 1) / 2])) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct evloop *l, size_t i)
{
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
        if (a < l->heap_len && timer_before(l->heap[a], l->heap[m]))
            m = a;
        if (b < l->heap_len && timer_before(l->heap[b], l->heap[m]))
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(struct evloop *l, size_t i)
{
    l->heap_len--;
    if (i != l->heap_len) {
        l->heap[i] = l->heap[l->heap_len];
        l->heap[i]->heap_index = i;
        heap_down(l, i);
        heap_up(l, i);
    }
}

struct ev_timer *evloop_timer_add(struct evloop *l, uint64_t ms, ev_timer_fn fn, void *data)
{
    if (l->heap_len == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
        struct ev_timer **h = realloc(l->heap, cap * sizeof(*h));
        if (!h)
            return NULL;
        l->heap = h;
        l->heap_cap = cap;
    }
    struct ev_timer *t = malloc(sizeof(*t));
    if (!t)
        return NULL;
    *t = (struct ev_timer){ .due = now_ms() + ms, .seq = l->seq++, .fn = fn, .data = data };
    t->heap_index = l->heap_len;
    l->heap[l->heap_len++] = t;
    heap_up(l, t->heap_index);
    return t;
}

void evloop_timer_cancel(struct evloop *l, struct ev_timer *t)
{
    if (!t)
        return;
    heap_remove(l, t->heap_index);
    free(t);
}

void evloop_quit(struct evloop *l)
{
    l->quit = true;
}

void evloop_defer(struct evloop *l, struct ev_defer *d, ev_defer_fn fn, void *data)
{
    if (d->next)
        return;
    d->fn = fn;
    d->data = data;
    d->prev = l->deferred.prev;
    d->next = &l->deferred;
    l->deferred.prev->next = d;
    l->deferred.prev = d;
}

void evloop_defer_cancel(struct ev_defer *d)
{
    if (!d->next)
        return;
    d->prev->next = d->next;
    d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

/* Runs the calls queued before this pass; one queued again from its own call (or
 * any queued now) waits for the next pass, after the next poll. */
static void run_deferred(struct evloop *l)
{
    if (l->deferred.next == &l->deferred)
        return;
    struct ev_defer batch = { .prev = l->deferred.prev, .next = l->deferred.next };
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    l->deferred.prev = l->deferred.next = &l->deferred;
    while (batch.next != &batch && !l->quit) {
        struct ev_defer *d = batch.next;
        evloop_defer_cancel(d);
        d->fn(l, d, d->data);
    }
    /* Left by a quit: back to the queue, still pending. */
    while (batch.next != &batch) {
        struct ev_defer *d = batch.next;
        evloop_defer_cancel(d);
        evloop_defer(l, d, d->fn, d->data);
    }
}

static void run_timers(struct evloop *l)
{
    uint64_t now = now_ms();
    while (l->heap_len > 0 && l->heap[0]->due <= now && !l->quit) {
        struct ev_timer *t = l->heap[0];
        heap_remove(l, 0);
        t->fn(l, t, t->data);
        free(t);
    }
}

int evloop_run(struct evloop *l)
{
    struct epoll_event events[64];
    l->quit = false;
    while (!l->quit) {
        int timeout = -1;
        if (l->deferred.next != &l->deferred) {
            timeout = 0;
        } else if (l->heap_len > 0) {
            uint64_t now = now_ms(), due = l->heap[0]->due;
            timeout = due <= now ? 0 : (int)MIN(due - now, (uint64_t)INT32_MAX);
        }
        int n = epoll_wait(l->epfd, events, (int)ARRAY_SIZE(events), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (int i = 0; i < n && !l->quit; i++) {
            int fd = events[i].data.fd;
            /* A callback earlier in this pass may have removed (and even reused) fd. */
            if ((size_t)fd >= l->n_handlers || !l->handlers[fd].active)
                continue;
            struct io_handler h = l->handlers[fd];
            h.fn(l, fd, events[i].events, h.data);
        }
        run_timers(l);
        run_deferred(l);
    }
    return 0;
}

/* A single-threaded epoll loop with millisecond timers (binary heap). berthd runs
 * one; each front worker runs its own. Callbacks may add and remove fds and timers,
 * including their own, while being called. */
#pragma once

#include <sys/epoll.h>

#include "common/util.h"

struct evloop;
struct ev_timer;

typedef void (*ev_io_fn)(struct evloop *loop, int fd, uint32_t events, void *data);
typedef void (*ev_timer_fn)(struct evloop *loop, struct ev_timer *timer, void *data);

int evloop_new(struct evloop **ret);
/* Frees the loop; registered fds are not closed. NULL-safe. */
void evloop_free(struct evloop *loop);
/* Watches fd for events (EPOLLIN, EPOLLOUT, ...). -EEXIST if fd is watched already. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, ev_io_fn fn, void *data);
/* Changes the events watched on fd; no system call when they are unchanged. */
int evloop_mod(struct evloop *loop, int fd, uint32_t events);
/* Hands a watched fd to another callback and sets its events, without taking it out
 * of epoll (a pooled connection changing owner costs no system call). -ENOENT if fd
 * is not watched. */
int evloop_set(struct evloop *loop, int fd, uint32_t events, ev_io_fn fn, void *data);
/* Stops watching fd; safe to call from any callback, also for fds in this pass. */
int evloop_del(struct evloop *loop, int fd);
/* Calls fn once after ms milliseconds. Returns the timer (owned by the loop until it
 * fires or is cancelled), or NULL on OOM. */
struct ev_timer *evloop_timer_add(struct evloop *loop, uint64_t ms, ev_timer_fn fn, void *data);
/* Cancels a pending timer. NULL-safe; invalid after the timer fired. */
void evloop_timer_cancel(struct evloop *loop, struct ev_timer *timer);
/* A call the loop makes once after its next poll for events; while one is pending
 * that poll does not wait. For work that yields its turn so the other ready fds
 * are served first (a big file sent a slice per turn). The caller owns the struct
 * (zeroed: not pending) and cancels it before freeing or reusing it. */
struct ev_defer;
typedef void (*ev_defer_fn)(struct evloop *loop, struct ev_defer *d, void *data);
struct ev_defer {
    struct ev_defer *prev, *next;   /* in the loop's queue while pending, else NULL */
    ev_defer_fn fn;
    void *data;
};
/* Queues d to call fn(data); does nothing while d is pending already. */
void evloop_defer(struct evloop *loop, struct ev_defer *d, ev_defer_fn fn, void *data);
/* Takes d out of the queue; does nothing when it is not pending. Safe from any
 * callback, also for a call due in this pass. */
void evloop_defer_cancel(struct ev_defer *d);

/* Runs until evloop_quit. Returns 0, or a negative errno if epoll fails. */
int evloop_run(struct evloop *loop);
void evloop_quit(struct evloop *loop);

/* Automatic backups: a timer in berthd's loop finds the sites whose backup is due
 * and has them made one at a time (api_archive_auto_start), so five hundred sites
 * due at 03:00 are five hundred snapshots in a row, not five hundred children at
 * once. The most overdue goes first; when one ends the next starts at once. A site
 * busy with a snapshot, an upload or a restore is passed over and tried at the
 * next look. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "api/api-internal.h"
#include "common/log.h"
#include "snapshot/snapshot.h"

#define TICK_MS (60 * 1000)

struct api_backups {
    struct evloop *loop;
    struct api_config cfg;           /* a copy; what it points to is borrowed */
    struct ev_timer *timer;
    uint64_t tick_ms;
    const char *clock_file;          /* test hook; NULL: the real clock */
    struct api_archive_job *job;     /* the backup being made, or NULL */
};

/* The scheduler's now: the real clock, or the test's. */
static int64_t clock_now(const struct api_backups *b)
{
    if (!b->clock_file)
        return now_s();
    char text[32] = "";
    int fd = open(b->clock_file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    safe_close(fd);
    char *end;
    long long t = n > 0 ? strtoll(text, &end, 10) : 0;
    if (n <= 0 || t <= 0) {
        log_warning("BERTH_TEST_BACKUP_CLOCK_FILE %s holds no time; using the real clock", b->clock_file);
        return now_s();
    }
    return (int64_t)t;
}

static void on_done(void *data);

/* Starts the most overdue backup that can start, if none runs. */
static void run_next(struct api_backups *b)
{
    if (b->job)
        return;
    struct store_backup_schedule *list = NULL;
    size_t n = 0;
    int r = store_backup_schedule_list(b->cfg.store, &list, &n);
    if (r < 0) {
        log_warning_errno(r, "cannot list the sites' backup schedules: %s", store_errmsg(b->cfg.store));
        return;
    }
    int64_t now = clock_now(b);
    bool *tried = calloc(n ? n : 1, sizeof(*tried));
    for (size_t round = 0; tried && round < n && !b->job; round++) {
        size_t best = SIZE_MAX;
        int64_t best_due = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t due = snapshot_schedule_due(list[i].every, list[i].hour, list[i].since, list[i].last_at);
            if (!tried[i] && due > 0 && due <= now && (best == SIZE_MAX || due < best_due)) {
                best = i;
                best_due = due;
            }
        }
        if (best == SIZE_MAX)
            break;
        tried[best] = true;
        r = api_archive_auto_start(&b->cfg, b->loop, list[best].name, now, on_done, b, &b->job);
        if (r < 0)
            b->job = NULL;   /* busy (next look), gone, or a failure it recorded */
    }
    free(tried);
    free(list);
}

static void on_done(void *data)
{
    struct api_backups *b = data;
    b->job = NULL;
    run_next(b);
}

static void on_tick(struct evloop *loop, struct ev_timer *t, void *data)
{
    (void)t;
    struct api_backups *b = data;
    b->timer = evloop_timer_add(loop, b->tick_ms, on_tick, b);
    run_next(b);
}

int api_backups_new(struct evloop *loop, const struct api_config *cfg, struct api_backups **ret)
{
    struct api_backups *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->loop = loop;
    b->cfg = *cfg;
    b->tick_ms = TICK_MS;
    /* Test hooks: a schedule fires within a tick of the clock the test sets. */
    const char *tick = getenv("BERTH_TEST_BACKUP_TICK_MS");
    uint64_t ms;
    if (tick && parse_uint(tick, 1, TICK_MS, &ms) == 0)
        b->tick_ms = ms;
    const char *clock = getenv("BERTH_TEST_BACKUP_CLOCK_FILE");
    b->clock_file = clock && *clock ? clock : NULL;
    b->timer = evloop_timer_add(loop, b->tick_ms, on_tick, b);
    if (!b->timer) {
        free(b);
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

void api_backups_free(struct api_backups *b)
{
    if (!b)
        return;
    evloop_timer_cancel(b->loop, b->timer);
    api_archive_auto_cancel(b->job);
    free(b);
}

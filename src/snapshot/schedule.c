/* When automatic backups fall due. Pure arithmetic on unix seconds (UTC), so that
 * the scheduler in berthd and `site show` agree, and the unit test can walk day and
 * week boundaries without a clock. */
#include "snapshot/snapshot.h"

#define DAY (24 * 3600)

/* Days since the epoch, rounded down also before it. */
static int64_t day_of(int64_t t)
{
    return t >= 0 ? t / DAY : -((-t + DAY - 1) / DAY);
}

int64_t snapshot_schedule_next(enum store_backup_every every, unsigned hour, int64_t after)
{
    if (every != STORE_BACKUP_DAILY && every != STORE_BACKUP_WEEKLY)
        return 0;
    if (hour > 23)
        hour = 23;
    int64_t day = day_of(after);
    if (day * DAY + (int64_t)hour * 3600 <= after)
        day++;
    /* 1970-01-01 was a Thursday: day d is a Sunday when (d + 4) % 7 is 0. */
    while (every == STORE_BACKUP_WEEKLY && ((day % 7) + 7 + 4) % 7 != 0)
        day++;
    return day * DAY + (int64_t)hour * 3600;
}

int64_t snapshot_schedule_due(enum store_backup_every every, unsigned hour, int64_t since, int64_t last_at)
{
    return snapshot_schedule_next(every, hour, last_at > since ? last_at : since);
}
